"""peer_deepgemm.py — DeepGEMM's block-scaled FP8 GEMM (the sgl-deep-gemm
wheel: fp8_gemm_nt, or gemm_fp8_fp8_bf16_nt in older releases) alone, at the
shapes and token counts bench_gemm times dscc's at, for rows to read beside
bench_gemm's: DeepSeek-V3's linears (N x K), M = 1 ... 4096, activations
quantized 1 x 128 and weights 128 x 128 with float32 scales (the V3 recipe on
Hopper), BF16 output.

Each GEMM's GPU time is the median of 7 repetitions, each after a 256 MiB
memset (so the weights come from HBM, as bench_gemm's --flush-mb default)
and a ~0.1 ms sleep kernel that keeps the GPU busy while the host issues the
events and DeepGEMM's launch, so the events time the kernel alone. Every
product is checked against the dequantized operands' float32 product: a
relative L2 error over 2e-2 is marked FAIL and makes the exit status 1.
DeepGEMM compiles each kernel on first use (JIT): --budget-s stops the sweep
when that much time has gone, saying which rows were left out; rows come in
the order of --m (default 4096 first, then 1, 128, 1024, 64, 512). Its JIT
uses NVCC (DG_JIT_USE_NVRTC=1 in the environment: NVRTC, which compiles
faster and, DeepGEMM says, may run slower in some cases).

If the wheel does not load with this PyTorch (it is built against one
version), or there is no Hopper GPU, it says so and exits 0.

usage: python3 bench/peer_deepgemm.py [--m 4096,1,...] [--shape NAME] [--budget-s 420]
"""
import argparse
import statistics
import sys
import time

SHAPES = [("q_a", 1536, 7168), ("q_b", 24576, 1536), ("kv_a", 576, 7168), ("o_proj", 7168, 16384),
          ("expert_gate_up", 2048, 7168), ("expert_down", 7168, 2048), ("dense_gate_up", 18432, 7168),
          ("dense_down", 7168, 18432)]

p = argparse.ArgumentParser()
p.add_argument("--m", default="4096,1,128,1024,64,512")
p.add_argument("--shape", default=None)
p.add_argument("--budget-s", type=float, default=420.0)
a = p.parse_args()
try:
    ms = [int(x) for x in a.m.split(",")]
    if not ms or any(m < 1 or m > 65536 for m in ms):
        raise ValueError
except ValueError:
    sys.exit(f"peer_deepgemm: --m wants comma-separated token counts in 1..65536, not '{a.m}'")
shapes = [s for s in SHAPES if a.shape in (None, s[0])]
if not shapes:
    sys.exit(f"peer_deepgemm: no shape '{a.shape}' (one of {', '.join(s[0] for s in SHAPES)})")

try:
    import torch
except ImportError:
    print("DeepGEMM peer: not run: PyTorch is not installed")
    sys.exit(0)
if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
    print("DeepGEMM peer: not run: it wants a Hopper (sm_90) GPU, " +
          (f"this is {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "and CUDA is not available"))
    sys.exit(0)
try:
    import deep_gemm
except Exception as e:  # the wheel is built against one PyTorch: an ABI mismatch shows here
    print(f"DeepGEMM peer: not run: the sgl-deep-gemm wheel does not load with torch {torch.__version__} "
          f"(CUDA {torch.version.cuda}): {type(e).__name__}: {str(e)[:300]}")
    sys.exit(0)

gemm = getattr(deep_gemm, "fp8_gemm_nt", None)
old = gemm is None
if old:
    gemm = getattr(deep_gemm, "gemm_fp8_fp8_bf16_nt", None)
if gemm is None:
    print(f"DeepGEMM peer: not run: deep_gemm {getattr(deep_gemm, '__version__', '?')} has neither fp8_gemm_nt nor gemm_fp8_fp8_bf16_nt")
    sys.exit(0)
dev = torch.device("cuda")
T0 = time.time()


def quant(x, bm):
    """x float32 [R, C] in bm x 128 blocks: (E4M3 codes, float32 scales [R / bm, C / 128]) with scale = amax / 448."""
    R, C = x.shape
    b = x.view(R // bm, bm, C // 128, 128)
    s = b.abs().amax(dim=(1, 3)).clamp(min=1e-4) / 448.0
    q = (b / s[:, None, :, None]).clamp(-448, 448).view(R, C).to(torch.float8_e4m3fn)
    return q, s.contiguous()


def dequant(q, s, bm):
    R, C = q.shape
    return (q.float().view(R // bm, bm, C // 128, 128) * s[:, None, :, None]).view(R, C)


def run(name, N, K, M):
    torch.manual_seed(0)
    x = torch.randn(M, K, device=dev)
    w = torch.randn(N, K, device=dev) / K ** 0.5
    xq, xs = quant(x, 1)
    Np = (N + 127) // 128 * 128
    wp = torch.zeros(Np, K, device=dev)
    wp[:N] = w
    wq_full, ws = quant(wp, 128)  # scales [ceil(N / 128), K / 128]
    wq = wq_full[:N].contiguous()
    out = torch.empty(M, N, dtype=torch.bfloat16, device=dev)
    xs_arg = xs
    if old and hasattr(deep_gemm, "get_col_major_tma_aligned_tensor"):
        xs_arg = deep_gemm.get_col_major_tma_aligned_tensor(xs)

    def call():
        if old:
            gemm((xq, xs_arg), (wq, ws), out)
        else:
            gemm((xq, xs), (wq, ws), out, disable_ue8m0_cast=True)

    t = time.time()
    call()  # compiles the kernel for this shape (JIT)
    torch.cuda.synchronize()
    jit_s = time.time() - t
    ref = dequant(xq, xs, 1) @ dequant(wq_full, ws, 128)[:N].T
    err = ((out.float() - ref).norm() / ref.norm().clamp(min=1e-30)).item()
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    times = []
    for _ in range(7):
        flush.zero_()
        torch.cuda._sleep(200_000)
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        call()
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1))
    ms_ = statistics.median(times)
    return ms_, err, jit_s


print(f"DeepGEMM {getattr(deep_gemm, '__version__', '?')} ({'gemm_fp8_fp8_bf16_nt' if old else 'fp8_gemm_nt'}), "
      f"torch {torch.__version__}, {torch.cuda.get_device_name()}: FP8 GEMM alone, L2 flushed, median of 7")
print("| shape (N x K) | M | DeepGEMM FP8 TFLOPS | ms | weights TB/s | rel L2 vs dequantized float32 |")
print("|---|---|---|---|---|---|")
bad, left = 0, []
for M in ms:
    for name, N, K in shapes:
        if time.time() - T0 > a.budget_s:
            left.append(f"{name} M={M}")
            continue
        try:
            t, err, jit_s = run(name, N, K, M)
        except Exception as e:
            print(f"| {name} ({N} x {K}) | {M} | failed: {type(e).__name__}: {str(e)[:160]} | | | |", flush=True)
            bad += 1
            continue
        flag = " FAIL" if err > 2e-2 else ""
        bad += bool(flag)
        print(f"| {name} ({N} x {K}) | {M} | {2.0 * M * N * K / (t * 1e-3) / 1e12:.1f} | {t:.4f} | "
              f"{N * K / (t * 1e-3) / 1e12:.2f} | {err:.2e}{flag} |", flush=True)
        print(f"[peer_deepgemm {time.time() - T0:6.1f} s] {name} M={M}: first call (JIT) {jit_s:.1f} s", file=sys.stderr, flush=True)
if left:
    print(f"\nleft out after --budget-s {a.budget_s:.0f}: {', '.join(left)}")
if bad:
    print(f"peer_deepgemm: {bad} GEMMs failed or were further than 2e-2 from the float32 product", file=sys.stderr)
sys.exit(1 if bad else 0)
