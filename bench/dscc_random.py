"""dscc_random.py — dscc's seeded random weights and bench_gpu's token stream,
reproduced bit for bit, so a peer runs on exactly the tensors and tokens that
bench_gpu runs dscc on.

  - cpu/weights.c: each tensor is a function of the seed (bench_gpu: 1) and
    its checkpoint name only: an FNV-1a hash of the name starts a splitmix64
    stream; element i is (2u - 1) * bound with u the stream's 53-bit uniform,
    bound = 1 / sqrt(columns) for a matrix (rank >= 2), else 0.1 around 1.0.
  - cpu/fp8.c (cpu_fp8_weight_quant): an FP8 weight is those float values in
    128 x 128 blocks, scale = amax / 448, code = E4M3(value / scale) rounded
    to nearest even and saturated at 448, the layout of DeepSeek's FP8
    release (the scales are its `weight_scale_inv`).
  - bench_gpu.c (run): token ids from an LCG, state 7, id = (state >> 33) %
    vocab, one draw per token in the order bench_gpu runs its steps.

`values` is the vectorized PyTorch form (int64 arithmetic wraps modulo 2^64;
logical shifts by masking); `values_ref` the scalar pure-Python one, used to
check it (`self_check`) and, without PyTorch, against the C code.
"""
import math
import struct

MASK64 = (1 << 64) - 1
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def name_state(seed, name):
    """The splitmix64 state a tensor's stream starts from (random_load)."""
    s = (seed ^ 0xCBF29CE484222325) & MASK64
    for ch in name.encode():
        s = ((s ^ ch) * 0x100000001B3) & MASK64
    return s


def bound_of(shape):
    return (1.0 / math.sqrt(float(shape[-1]))) if len(shape) >= 2 else 0.1


def _f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def values_ref(seed, name, shape, count):
    """The first `count` values of tensor `name` (shape as in the DSL), as floats."""
    s, b, matrix, out = name_state(seed, name), bound_of(shape), len(shape) >= 2, []
    for _ in range(count):
        s = (s + GOLDEN) & MASK64
        z = s
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        z ^= z >> 31
        v = (2 * ((z >> 11) * 2.0 ** -53) - 1) * b
        out.append(_f32(v if matrix else 1.0 + v))
    return out


def _s64(x):
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


def values(torch, seed, name, shape, device, chunk=1 << 25):
    """Tensor `name` of `shape` as float32 on `device` (PyTorch, chunked)."""
    n = math.prod(shape)
    matrix, b = len(shape) >= 2, bound_of(shape)
    s0, g = _s64(name_state(seed, name)), _s64(GOLDEN)
    m1, m2 = _s64(MIX1), _s64(MIX2)

    def srl(z, k):  # logical right shift of int64 bit patterns
        return (z >> k) & ((1 << (64 - k)) - 1)

    out = torch.empty(n, dtype=torch.float32, device=device)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        z = torch.arange(lo + 1, hi + 1, dtype=torch.int64, device=device) * g + s0
        z = (z ^ srl(z, 30)) * m1
        z = (z ^ srl(z, 27)) * m2
        z = z ^ srl(z, 31)
        v = (srl(z, 11).to(torch.float64) * 2.0 ** -53 * 2 - 1) * b
        out[lo:hi] = (v if matrix else 1.0 + v).to(torch.float32)
        del z, v
    return out.view(*shape)


def fp8_block_quant(torch, w):
    """cpu_fp8_weight_quant on a float32 [O, K] tensor: (E4M3 codes, float32 scales [ceil(O/128), ceil(K/128)])."""
    O, K = w.shape
    ob, kb = (O + 127) // 128, (K + 127) // 128
    if (ob * 128, kb * 128) != (O, K):
        p = torch.zeros(ob * 128, kb * 128, dtype=w.dtype, device=w.device)
        p[:O, :K] = w
    else:
        p = w
    blocks = p.view(ob, 128, kb, 128)
    s = blocks.abs().amax(dim=(1, 3)) / 448.0
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = (blocks / safe[:, None, :, None]).clamp_(-448.0, 448.0)
    q = torch.where((s > 0)[:, None, :, None], q, torch.zeros_like(q))
    codes = q.view(ob * 128, kb * 128)[:O, :K].contiguous().to(torch.float8_e4m3fn)
    return codes, s.contiguous()


def self_check(torch, device, seed=1):
    """values() against values_ref() on a matrix and a vector: raises on any difference."""
    for name, shape in (("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", (576, 7168)),
                        ("model.layers.1.mlp.gate.e_score_correction_bias", (256,))):
        n = min(512, math.prod(shape))
        got = values(torch, seed, name, shape, device).flatten()[:n].cpu().tolist()
        want = values_ref(seed, name, shape, n)
        bad = [i for i in range(n) if got[i] != want[i]]
        if bad:
            raise RuntimeError(f"dscc_random: {name}[{bad[0]}] = {got[bad[0]]!r}, the C generator gives {want[bad[0]]!r}")


class Tokens:
    """bench_gpu's token ids: one LCG draw per token, in bench_gpu's order."""

    def __init__(self, vocab, state=7):
        self.vocab, self.state = vocab, state

    def draw(self, count):
        out = []
        for _ in range(count):
            self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK64
            out.append((self.state >> 33) % self.vocab)
        return out

    def skip(self, count):
        for _ in range(count):
            self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK64


def dequantized(torch, codes, s):
    """The float32 values FP8 codes with 128 x 128 block scales stand for."""
    O, K = codes.shape
    sc = s.repeat_interleave(128, 0)[:O].repeat_interleave(128, 1)[:, :K]
    return codes.float() * sc


def hf_tensor(torch, seed, name, shape, device):
    """Checkpoint tensor `name` as a BF16/F32 model holds it: a linear's matrix
    (`..._proj.weight`) as its FP8 form dequantized, as in DeepSeek's FP8
    release; every other tensor as generated."""
    v = values(torch, seed, name, shape, device)
    if len(shape) == 2 and name.endswith("_proj.weight"):
        v = dequantized(torch, *fp8_block_quant(torch, v))
    return v


def fill_hf_model(torch, model, seed, device):
    """Every tensor of a transformers DeepseekV3 model's state dict from dscc's
    weights, by checkpoint name; fused expert tensors (experts.gate_up_proj
    [E, 2I, H], experts.down_proj [E, H, I], or their transposes) from the
    per-expert ones. Raises on a key it cannot map (nothing is guessed)."""
    import re
    self_check(torch, device, seed)
    H, I = model.config.hidden_size, model.config.moe_intermediate_size
    with torch.no_grad():
        for key, t in model.state_dict().items():
            m = re.match(r"(.*\.experts)\.(gate_up_proj|down_proj)$", key)
            if m and t.dim() == 3:
                base, kind, E = m.group(1), m.group(2), t.shape[0]
                want = (2 * I, H) if kind == "gate_up_proj" else (H, I)
                if tuple(t.shape[1:]) not in (want, want[::-1]):
                    raise KeyError(f"{key} is {list(t.shape)}, not [E, {want[0]}, {want[1]}] or its transpose")
                for e in range(E):
                    if kind == "gate_up_proj":
                        v = torch.cat([hf_tensor(torch, seed, f"{base}.{e}.gate_proj.weight", (I, H), device),
                                       hf_tensor(torch, seed, f"{base}.{e}.up_proj.weight", (I, H), device)], 0)
                    else:
                        v = hf_tensor(torch, seed, f"{base}.{e}.down_proj.weight", (H, I), device)
                    t[e].copy_(v if tuple(t.shape[1:]) == want else v.T)
            elif key.endswith((".weight", ".e_score_correction_bias")):
                t.copy_(hf_tensor(torch, seed, key, tuple(t.shape), device))
            else:
                raise KeyError(f"no checkpoint tensor for '{key}'")
    return f"dscc's seeded weights (seed {seed}; linears as their FP8 form dequantized to BF16)"
