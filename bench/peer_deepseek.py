"""peer_deepseek.py — DeepSeek-V3's own inference code as a peer: its
inference/model.py and kernel.py (github.com/deepseek-ai/DeepSeek-V3,
PyTorch with Triton FP8 kernels), world size 1, on the layers bench_gpu
times dscc on: full-width V3 config, --layers L with the first --dense K
dense, FP8 linears (ModelArgs dtype "fp8", the checkpoint's block layout).

Same weights: every tensor is dscc's seeded random tensor of the same
checkpoint name (bench/dscc_random.py reproduces cpu/weights.c and the FP8
block quantization bit for bit; checked against the scalar form at start),
written into the model's state dict under DeepSeek's names (convert.py's
mapping, reversed), every key exactly once. Same tokens: bench_gpu's LCG
stream, so the timed prefill and decode steps see the ids dscc's do.

Timing as peer_transformers.py: CUDA events around whole forward calls
(the code's own host work included: its MoE loops over experts in Python),
best of 3 for prefill (1 x --prefill tokens from position 0), decode steps
at positions 16-19 after a 16-token prefill at batch 1, 32 and 128, best of
8. Configurations (--modes): the module's gemm_impl and attn_impl as shipped
(bf16 GEMMs on weights dequantized per call, absorbed attention), its Triton
FP8 GEMM ("fp8"), and the naive attention. Triton's autotuning of fp8_gemm
(keyed on N and K only) is done for the prefill and for each decode batch
apart, so each gets its own tiles (see tune_for). Prints a markdown table,
with the experts each MoE layer's last step hit (compare bench_gpu's column
of that name: the same weights and tokens should hit about as many).

usage: python3 bench/peer_deepseek.py [--layers 2] [--dense 1] [--prefill 1024]
         [--peer-dir .peers/deepseek_v3] [--modes bf16/absorb,fp8/absorb,fp8/naive] [--dry-run]
--dry-run checks the peer folder, the ModelArgs it would build and the
weight plan without CUDA (and without PyTorch, where it is missing).
Expect minutes: Triton compiles fp8_gemm's 36 configs for each (N, K) of
the model at first use (progress goes to standard error).
"""
import argparse
import ast
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dscc_random  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=2)
p.add_argument("--dense", type=int, default=1)
p.add_argument("--prefill", type=int, default=1024)
p.add_argument("--peer-dir", default=os.path.join(HERE, "..", ".peers", "deepseek_v3"))
p.add_argument("--modes", default="bf16/absorb,fp8/absorb,fp8/naive")
p.add_argument("--seed", type=int, default=1, help="dscc's weight seed (bench_gpu: 1)")
p.add_argument("--dry-run", action="store_true")
a = p.parse_args()

BATCHES = (1, 32, 128)
CTX = 16  # decode context before the timed steps, as bench_gpu
STEPS = 4

peer = os.path.abspath(a.peer_dir)
for f in ("model.py", "kernel.py", "configs/config_671B.json"):
    if not os.path.isfile(os.path.join(peer, f)):
        sys.exit(f"peer_deepseek: {os.path.join(peer, f)} is missing: run tools/fetch_peers.sh first")
modes = []
for m in a.modes.split(","):
    g, _, at = m.partition("/")
    if g not in ("bf16", "fp8") or at not in ("absorb", "naive"):
        sys.exit(f"peer_deepseek: mode '{m}' is not gemm/attn with gemm bf16|fp8 and attn absorb|naive")
    modes.append((g, at))
if a.layers < 1 or not 0 <= a.dense <= a.layers or a.prefill < 1:
    sys.exit("peer_deepseek: want --layers >= 1, 0 <= --dense <= --layers, --prefill >= 1")

with open(os.path.join(peer, "configs/config_671B.json")) as f:
    cfg = json.load(f)
cfg.update(n_layers=a.layers, n_dense_layers=a.dense, dtype="fp8", max_batch_size=1)
commit = open(os.path.join(peer, "COMMIT")).read().strip() if os.path.isfile(os.path.join(peer, "COMMIT")) else "unknown"

# ---- DeepSeek's state-dict names, their HF checkpoint names and shapes (convert.py reversed) ----
REV = {"embed": "embed_tokens", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "wq": "q_proj",
       "wq_a": "q_a_proj", "q_norm": "q_a_layernorm", "wq_b": "q_b_proj", "wkv_a": "kv_a_proj_with_mqa",
       "kv_norm": "kv_a_layernorm", "wkv_b": "kv_b_proj", "wo": "o_proj", "gate": "gate", "w1": "gate_proj",
       "w2": "down_proj", "w3": "up_proj", "norm": "norm", "head": "lm_head"}


def hf_name(key):
    """The HF checkpoint name (dscc's weight name) of DeepSeek state-dict key `key` (a weight or the gate's bias)."""
    parts = key.split(".")
    if len(parts) < 2 or parts[-2] not in REV or parts[-1] not in ("weight", "bias"):
        raise KeyError(f"no checkpoint name for state-dict key '{key}'")
    mod = parts[-2]
    parts[-2] = REV[mod]
    if parts[-1] == "bias":
        if mod != "gate":
            raise KeyError(f"no checkpoint name for state-dict key '{key}'")
        parts[-1] = "e_score_correction_bias"
    parts = ["self_attn" if s == "attn" else "mlp" if s == "ffn" else s for s in parts]
    return ".".join(parts) if mod == "head" else "model." + ".".join(parts)


def plan(c):
    """(key, shape, kind) of every state-dict entry the config makes; kind fp8 / bf16 / f32 / scale."""
    d, H, out = c["dim"], c["n_heads"], []
    qk = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    out.append(("embed.weight", (c["vocab_size"], d), "bf16"))

    def lin(key, o, i):
        out.append((key + ".weight", (o, i), "fp8"))
        out.append((key + ".scale", ((o + 127) // 128, (i + 127) // 128), "scale"))

    for l in range(c["n_layers"]):
        pre = f"layers.{l}"
        lin(f"{pre}.attn.wq_a", c["q_lora_rank"], d)
        out.append((f"{pre}.attn.q_norm.weight", (c["q_lora_rank"],), "bf16"))
        lin(f"{pre}.attn.wq_b", H * qk, c["q_lora_rank"])
        lin(f"{pre}.attn.wkv_a", c["kv_lora_rank"] + c["qk_rope_head_dim"], d)
        out.append((f"{pre}.attn.kv_norm.weight", (c["kv_lora_rank"],), "bf16"))
        lin(f"{pre}.attn.wkv_b", H * (c["qk_nope_head_dim"] + c["v_head_dim"]), c["kv_lora_rank"])
        lin(f"{pre}.attn.wo", d, H * c["v_head_dim"])
        if l < c["n_dense_layers"]:
            for w, o, i in (("w1", c["inter_dim"], d), ("w2", d, c["inter_dim"]), ("w3", c["inter_dim"], d)):
                lin(f"{pre}.ffn.{w}", o, i)
        else:
            out.append((f"{pre}.ffn.gate.weight", (c["n_routed_experts"], d), "bf16"))
            out.append((f"{pre}.ffn.gate.bias", (c["n_routed_experts"],), "f32"))
            I, S = c["moe_inter_dim"], c["n_shared_experts"] * c["moe_inter_dim"]
            for e in range(c["n_routed_experts"]):
                for w, o, i in (("w1", I, d), ("w2", d, I), ("w3", I, d)):
                    lin(f"{pre}.ffn.experts.{e}.{w}", o, i)
            for w, o, i in (("w1", S, d), ("w2", d, S), ("w3", S, d)):
                lin(f"{pre}.ffn.shared_experts.{w}", o, i)
        out.append((f"{pre}.attn_norm.weight", (d,), "bf16"))
        out.append((f"{pre}.ffn_norm.weight", (d,), "bf16"))
    out.append(("norm.weight", (d,), "bf16"))
    out.append(("head.weight", (c["vocab_size"], d), "bf16"))
    return out


def model_args_fields(path):
    """ModelArgs' field names and the module-level names of model.py, read without importing it."""
    tree = ast.parse(open(path).read())
    fields, names = set(), set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "ModelArgs":
            fields = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []):
            if isinstance(t, ast.Name):
                names.add(t.id)
    return fields, names


fields, globals_ = model_args_fields(os.path.join(peer, "model.py"))
unknown = sorted(set(cfg) - fields)
if unknown:
    sys.exit(f"peer_deepseek: ModelArgs in {peer}/model.py has no field(s) {unknown}")
for g in ("gemm_impl", "attn_impl", "world_size"):
    if g not in globals_:
        sys.exit(f"peer_deepseek: {peer}/model.py has no module variable '{g}' (another version of the code?)")
PLAN = plan(cfg)
for key, shape, kind in PLAN:
    if kind != "scale":
        hf_name(key)

try:
    import torch
except ImportError:
    torch = None

if a.dry_run:
    nbytes = sum(math.prod(s) * {"fp8": 1, "bf16": 2, "f32": 4, "scale": 4}[k] for _, s, k in PLAN)
    print(f"dry run: DeepSeek-V3 inference code at {commit} in {peer}")
    print(f"ModelArgs({', '.join(f'{k}={v!r}' for k, v in sorted(cfg.items()))})")
    print(f"{len(PLAN)} state-dict entries, {nbytes / 1e9:.2f} GB; e.g.")
    for key, shape, kind in PLAN[:3] + [x for x in PLAN if ".experts.0.w2." in x[0]][:1] + PLAN[-1:]:
        print(f"  {key} {list(shape)} {kind}" + ("" if kind == "scale" else f" <- dscc's '{hf_name(key)}'"))
    print(f"modes: {', '.join(f'gemm_impl={g} attn_impl={t}' for g, t in modes)}; prefill 1 x {a.prefill}, decode at batch "
          f"{', '.join(map(str, BATCHES))} after {CTX} tokens")
    if torch is None:
        print("PyTorch is not installed here: model.py was read, not imported")
        sys.exit(0)
    sys.path.insert(0, peer)
    try:
        import model as dsm  # noqa: F401  (needs triton too: kernel.py)
    except ImportError as e:
        print(f"model.py does not import here ({e}): the rest of the dry run needs it")
        sys.exit(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("meta"):
        m = dsm.Transformer(dsm.ModelArgs(**cfg))
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    want = {k: s for k, s, _ in PLAN}
    if got != want:
        sys.exit(f"peer_deepseek: the model's state dict differs from the plan: {sorted(set(got) ^ set(want))[:5]} ...")
    print("model.py imported; Transformer built on the meta device; its state dict is the plan's, key for key")
    sys.exit(0)

if torch is None or not torch.cuda.is_available():
    sys.exit("peer_deepseek: wants PyTorch with a CUDA device")

# ---- the model, on the GPU, with dscc's weights ----
sys.path.insert(0, peer)
import kernel as dsk  # noqa: E402
import model as dsm  # noqa: E402
import triton  # noqa: E402
import triton.testing  # noqa: E402

T0 = time.time()


def note(msg):
    print(f"[peer_deepseek {time.time() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


dev = torch.device("cuda")
torch.set_default_dtype(torch.bfloat16)
dscc_random.self_check(torch, dev, a.seed)
args = dsm.ModelArgs(**cfg)
with torch.device(dev):
    model = dsm.Transformer(args)
model.eval()
if dsm.world_size != 1:
    sys.exit(f"peer_deepseek: model.py runs with world size {dsm.world_size}, want 1")


def load_weights():
    sd = model.state_dict()
    want = {k for k, _, _ in PLAN}
    if set(sd) != want:
        sys.exit(f"peer_deepseek: the model's state dict differs from the plan: {sorted(set(sd) ^ want)[:5]} ...")
    done = set()
    with torch.no_grad():
        for key, shape, kind in PLAN:
            if kind == "scale":
                continue
            if tuple(sd[key].shape) != shape:
                sys.exit(f"peer_deepseek: {key} is {list(sd[key].shape)} in the model, {list(shape)} in the plan")
            v = dscc_random.values(torch, a.seed, hf_name(key), shape, dev)
            if kind == "fp8":
                codes, s = dscc_random.fp8_block_quant(torch, v)
                sd[key].copy_(codes)
                sd[key[:-len("weight")] + "scale"].copy_(s)
                done.add(key[:-len("weight")] + "scale")
            else:
                sd[key].copy_(v)
            done.add(key)
            del v
    if done != want:
        sys.exit(f"peer_deepseek: state-dict keys left unfilled: {sorted(want - done)[:5]}")


load_weights()
torch.cuda.synchronize()
note(f"weights in ({torch.cuda.memory_allocated() / 1e9:.1f} GB on the GPU)")
nparams = sum(x.numel() for x in model.state_dict().values())

# ---- bench_gpu's tokens: prefill twice (the second timed), one decode-attention step, then per batch ----
toks = dscc_random.Tokens(args.vocab_size)
toks.skip(a.prefill)
prefill_ids = torch.tensor(toks.draw(a.prefill), device=dev).view(1, a.prefill)
toks.skip(1)
decode_ids = {}
for B in BATCHES:
    ctx = torch.tensor(toks.draw(B * CTX), device=dev).view(B, CTX)
    steps = [torch.tensor(toks.draw(B), device=dev).view(B, 1) for _ in range(STEPS)]
    decode_ids[B] = (ctx, steps)
    toks.skip(3 * (B * CTX + STEPS * B))  # bench_gpu's untimed, graphed and profiled passes of this batch

# the experts each MoE gate picks (the last call's), to compare with bench_gpu's "experts hit"
hits = {}
_gate_forward = dsm.Gate.forward


def gate_forward(self, x):
    w, idx = _gate_forward(self, x)
    hits[id(self)] = idx
    return w, idx


dsm.Gate.forward = gate_forward


def experts_hit():
    n = [torch.unique(v).numel() for v in hits.values()]
    return sum(n) / len(n) if n else 0.0


def set_caches(attn, bsz, seqlen):
    """The MLA caches of attn_impl `attn` for bsz x seqlen (the others freed)."""
    dsm.attn_impl = attn
    dt = torch.get_default_dtype()
    for layer in model.layers:
        m = layer.attn
        for name in ("kv_cache", "pe_cache", "k_cache", "v_cache"):
            m._buffers.pop(name, None)
        torch.cuda.empty_cache()
        if attn == "naive":
            shapes = {"k_cache": (bsz, seqlen, m.n_local_heads, m.qk_head_dim), "v_cache": (bsz, seqlen, m.n_local_heads, m.v_head_dim)}
        else:
            shapes = {"kv_cache": (bsz, seqlen, m.kv_lora_rank), "pe_cache": (bsz, seqlen, m.qk_rope_head_dim)}
        for name, s in shapes.items():
            m.register_buffer(name, torch.zeros(s, dtype=dt, device=dev), persistent=False)


TUNED = {}  # per step shape: fp8_gemm's autotuned tiles


def tune_for(phase):
    """fp8_gemm's autotuner keys its tiles on N and K only, so the first M seen
    would pick them for every M: each step shape (prefill, decode batch B) gets
    its own, tuned at its first call and kept for the other modes. The search
    is the code's own (its 36 configs); each config is measured for 5 + 25 ms
    instead of Triton's default 25 + 100 ms, to keep the run short."""
    at = dsk.fp8_gemm_kernel
    at.cache = TUNED.setdefault(phase, {})
    at.__dict__["do_bench"] = lambda fn, quantiles: triton.testing.do_bench(fn, warmup=5, rep=25, quantiles=quantiles)


def timed(fn):
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    e0.record()
    fn()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1)


def run_mode(gemm, attn):
    note(f"gemm_impl={gemm} attn_impl={attn}")
    dsm.gemm_impl = gemm
    cells, hit_cells = [], []
    with torch.inference_mode():
        set_caches(attn, 1, a.prefill)
        tune_for("prefill")
        model(prefill_ids, 0)  # warm-up (Triton compiles and tunes here)
        ms = min(timed(lambda: model(prefill_ids, 0)) for _ in range(3))
        cells.append(f"{ms:.2f} ({a.prefill / ms * 1e3:,.0f})")
        hit_cells.append(f"{experts_hit():.1f}")
        note(f"  prefill 1 x {a.prefill}: {cells[-1]} ms (tokens/s)")
        for B in BATCHES:
            ctx, steps = decode_ids[B]
            set_caches(attn, B, CTX + STEPS)
            tune_for("prefill")  # untimed: the prefill's tiles do
            model(ctx, 0)
            tune_for(("decode", B))
            model(steps[0], CTX)  # warm-up at M = B
            best = min(timed(lambda: model(steps[s], CTX + s)) for _ in range(2) for s in range(STEPS))
            cells.append(f"{best:.2f} ({B / best * 1e3:,.0f})")
            hit_cells.append(f"{experts_hit():.1f}")
            note(f"  decode batch {B}: {cells[-1]} ms (tokens/s)")
    set_caches("absorb", 1, 1)
    return cells, hit_cells


print(f"DeepSeek-V3 inference code ({commit}), torch {torch.__version__}, triton {triton.__version__}, {torch.cuda.get_device_name()}: "
      f"{a.layers} layers ({a.dense} dense), {nparams / 1e9:.2f} G parameters (linears FP8, 128x128 block scales), "
      f"dscc's seeded weights (seed {a.seed}) and bench_gpu's tokens")
print(f"| DeepSeek inference code, gemm_impl / attn_impl | prefill 1 x {a.prefill} ms (tokens/s) | decode step ms (tokens/s), "
      "batch 1 | batch 32 | batch 128 | experts hit per MoE layer, prefill / batch 1 / 32 / 128 |")
print("|---|---|---|---|---|---|")
for g, at in modes:
    label = f"{g} / {at}" + (" (as shipped)" if (g, at) == ("bf16", "absorb") else "")
    try:
        cells, hit_cells = run_mode(g, at)
        print(f"| {label} | " + " | ".join(cells) + " | " + " / ".join(hit_cells) + " |", flush=True)
    except Exception as e:  # one configuration failing (memory, a Triton build) leaves the others to run
        print(f"| {label} | unavailable: {type(e).__name__}: {str(e)[:160]} | | | | |", flush=True)
        torch.cuda.empty_cache()
