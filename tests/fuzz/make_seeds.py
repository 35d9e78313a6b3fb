#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora of the harnesses that take binary
or multi-file inputs (npy, checkpoint, cache) and the config/run seeds, into
tests/fuzz/corpus/<harness>/. Run from anywhere; files are small and
deterministic. Corpus entries that reproduce a fixed crash are kept by hand
(crash-*), never rewritten here."""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SEP = b"\n#---#\n"


def put(harness, name, data):
    d = os.path.join(ROOT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- .npy ---------------------------------------------------------------------
def npy(descr, shape, payload, version=1, fortran="False", hdr_extra=""):
    shp = "(" + "".join("%d, " % s for s in shape).rstrip(" ") + ")" if shape else "()"
    if len(shape) == 1:
        shp = "(%d,)" % shape[0]
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, %s}" % (descr, fortran, shp, hdr_extra)
    pre = 10 if version == 1 else 12
    pad = (-(pre + len(d) + 1)) % 64
    d = d + " " * pad + "\n"
    size = struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d))
    return b"\x93NUMPY" + bytes([version, 0]) + size + d.encode() + payload


def ints(fmt, vals):
    return b"".join(struct.pack(fmt, v) for v in vals)


put("npy", "i32_2x3.npy", npy("<i4", [2, 3], ints("<i", range(6))))
put("npy", "i64_1x4.npy", npy("<i8", [1, 4], ints("<q", [5, 9, 0, 1])))
put("npy", "f32_3.npy", npy("<f4", [3], ints("<f", [0.5, -1.0, 2.0])))
put("npy", "scalar.npy", npy("<f4", [], ints("<f", [1.0])))
put("npy", "empty_0x3.npy", npy("<i4", [0, 3], b""))
put("npy", "v2.npy", npy("<i4", [2], ints("<i", [1, 2]), version=2))
put("npy", "v3.npy", npy("<i8", [2], ints("<q", [1, 2]), version=3))
put("npy", "fortran.npy", npy("<i4", [2, 2], ints("<i", range(4)), fortran="True"))
put("npy", "big_endian.npy", npy(">i4", [2], ints(">i", [1, 2])))
put("npy", "truncated.npy", npy("<i4", [4, 4], ints("<i", range(5))))
put("npy", "huge_shape.npy", npy("<i8", [1 << 40, 1 << 20], b""))
put("npy", "beyond_2_24.npy", npy("<i8", [2], ints("<q", [1 << 30, 3])))
put("npy", "hlen_past_end.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr': '<i4'")
put("npy", "rank9.npy", npy("<i4", [1] * 9, ints("<i", [7])))

# ---- config.json for models/deepseek_v3.dsl -----------------------------------
here = os.path.dirname(os.path.abspath(__file__))
tiny = json.load(open(os.path.join(here, "..", "..", "models", "tiny", "config.json")))
put("config", "tiny.json", json.dumps(tiny, indent=1))
t = dict(tiny)
del t["rope_scaling"]
t["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 5000.0, "factor": 2.0,
                        "original_max_position_embeddings": 32, "beta_fast": 16, "beta_slow": 1}
put("config", "rope_parameters.json", json.dumps(t))
t = dict(tiny)
del t["rope_scaling"]
t.update(num_hidden_layers=2, first_k_dense_replace=2, tie_word_embeddings=True)
put("config", "dense_plain_rope.json", json.dumps(t))
t = dict(tiny)
t.update(scoring_func="softmax", topk_method="greedy", norm_topk_prob=False, n_group=1, topk_group=1)
put("config", "softmax_greedy.json", json.dumps(t))
t = dict(tiny)
t.update(mtp=True, num_nextn_predict_layers=1)
put("config", "mtp.json", json.dumps(t))
put("config", "empty.json", "{}")
put("config", "not_object.json", "[1, 2, 3]")
put("config", "malformed.json", '{"hidden_size": 64,, }')
t = dict(tiny)
t.update(hidden_size="96", num_attention_heads=4.5, rms_norm_eps=-1)
put("config", "wrong_types.json", json.dumps(t))

# issue 16's hostile values, each must be a located error (item 2, 3)
for name, edit in [("zero_heads", dict(num_attention_heads=0)), ("zero_q_lora", dict(q_lora_rank=0)),
                   ("zero_moe_inter", dict(moe_intermediate_size=0)), ("eps_zero", dict(rms_norm_eps=0)),
                   ("theta_negative", dict(rope_theta=-1.0)), ("rope_scaling_list", dict(rope_scaling=[1, 2])),
                   ("yarn_factor_zero", dict(rope_scaling=dict(tiny["rope_scaling"], factor=0))),
                   ("llama", dict(model_type="llama")), ("hidden_2_50", dict(hidden_size=1 << 50)),
                   ("experts_more_than_groups", dict(n_group=3)), ("topk_over_experts", dict(num_experts_per_tok=99))]:
    t = dict(tiny)
    t.update(edit)
    put("config", name + ".json", json.dumps(t))

# ---- DSL -> default pipeline -> CPU --------------------------------------------
dsl = os.path.join(here, "corpus", "dsl")
os.makedirs(os.path.join(ROOT, "run"), exist_ok=True)
for f in ["tiny.dsl", "attn.dsl", "moe.dsl", "einsum.dsl", "params.dsl", "ranges_tuples.dsl"]:
    shutil.copy(os.path.join(dsl, f), os.path.join(ROOT, "run", f))
put("run", "kv_decode.dsl", """dim B, S, T;
input x: bf16[B, S, 16];
weight w: bf16[32, 16] = "w";
weight n: bf16[16] = "n";
let c = kv_cache(rmsnorm(x, n, eps=1e-6), name="c");
output o = linear(c, w);
""")
put("run", "fp8_linear.dsl", """dim B, S;
input tokens: i32[B, S];
weight emb: bf16[10, 256] = "emb";
weight w: bf16[256, 256] = "w";
weight head: bf16[10, 256] = "head";
let h = embedding(emb, tokens);
output logits = cast(linear(silu(linear(h, w)), head), f32);
""")


# ---- safetensors checkpoint ------------------------------------------------------
def st(tensors):
    """tensors: [(name, dtype, shape, bytes)] -> a safetensors image."""
    hdr, data = {}, b""
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


f32 = lambda *v: ints("<f", v)
bf16 = lambda n: b"\x80\x3f" * n  # 1.0
shard1 = st([("a.weight", "F32", [2, 2], f32(1, 2, 3, 4)), ("b.weight", "BF16", [3], bf16(3))])
shard2 = st([("q.weight", "F8_E4M3", [2, 3], bytes([0x38, 0x40, 0xb8, 0, 1, 0x7e])),
             ("q.weight_scale_inv", "F32", [1, 1], f32(0.5)), ("i.bias", "I64", [1], ints("<q", [3]))])
index = {"metadata": {"total_size": 64},
         "weight_map": {"a.weight": "s1.safetensors", "b.weight": "s1.safetensors", "q.weight": "s2.safetensors",
                        "q.weight_scale_inv": "s2.safetensors", "i.bias": "s2.safetensors"}}
put("checkpoint", "index_two_shards", json.dumps(index).encode() + SEP + shard1 + SEP + shard2)
put("checkpoint", "single_file", shard2)
put("checkpoint", "single_fp8_no_scale", st([("q.weight", "F8_E4M3", [2, 3], bytes(6))]))
put("checkpoint", "fp8_bad_scale_shape",
    st([("q.weight", "F8_E4M3", [200, 1], bytes(200)), ("q.weight_scale_inv", "F32", [1, 1], f32(2))]))
put("checkpoint", "fp8_rank3", st([("q.weight", "F8_E4M3", [1, 1, 2], bytes(2)),
                                   ("q.weight_scale_inv", "F32", [1, 1], f32(2))]))
bad = dict(index, weight_map={"a.weight": "../s1.safetensors"})
put("checkpoint", "index_dotdot", json.dumps(bad).encode() + SEP + shard1)
bad = dict(index, weight_map={"a.weight": "s3.safetensors"})
put("checkpoint", "index_missing_shard", json.dumps(bad).encode() + SEP + shard1)
bad = dict(index, weight_map={"zz.weight": "s1.safetensors"})
put("checkpoint", "index_not_held", json.dumps(bad).encode() + SEP + shard1)
put("checkpoint", "index_not_object", b'{"weight_map": [1]}' + SEP + shard1)
put("checkpoint", "index_empty_map", b'{"weight_map": {}}' + SEP + shard1)
put("checkpoint", "index_dup_across_shards",
    json.dumps({"weight_map": {"a.weight": "s2.safetensors", "q.weight": "s2.safetensors"}}).encode() + SEP +
    shard1 + SEP + st([("a.weight", "F32", [1], f32(9)), ("q.weight", "F32", [1], f32(1))]))

# ---- kernel-cache entries (fuzz_cache.c: a mode byte, then the rest) ------------------
KEY = struct.pack("<QQ", 0x0123456789abcdef, 0xfedcba9876543210)


def xxh64(data, seed=0):
    """XXH64, as xxhash computes it (for entries with a true header)."""
    P1, P2, P3, P4, P5 = 11400714785074694791, 14029467366897019727, 1609587929392839161, \
        9650029242287828579, 2870177450012600261
    M = (1 << 64) - 1
    rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M

    def rnd(acc, lane):
        return (rotl((acc + lane * P2) & M, 31) * P1) & M

    def merge(acc, v):
        return ((acc ^ rnd(0, v)) * P1 + P4) & M
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = rnd(v[k], struct.unpack_from("<Q", data, i + 8 * k)[0])
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4):
            h = merge(h, v[k])
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, struct.unpack_from("<Q", data, i)[0]), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (struct.unpack_from("<I", data, i)[0] * P1) & M, 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (data[i] * P5) & M, 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


def entry(cubin):
    return b"DSCCKC1\n" + KEY + struct.pack("<QQ", len(cubin), xxh64(cubin)) + cubin


elf = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHI", 2, 190, 1) + bytes(40)
put("cache", "raw_valid_entry", b"\x00" + entry(elf))
put("cache", "raw_truncated_entry", b"\x00" + entry(elf)[:-7])
put("cache", "raw_bare_cubin", b"\x00" + elf)
put("cache", "raw_garbage", b"\x00" + b"not a cubin at all\n" * 3)
put("cache", "raw_header_only", b"\x00" + entry(b"")[:40])
for k, what in enumerate(["true", "magic", "key", "length", "xxh64", "cut"]):
    put("cache", "made_%s" % what, bytes([1 + 2 * k]) + elf)
put("cache", "made_true_not_elf", b"\x01" + b"garbage that hashes right")
