#!/usr/bin/env bash
# e2e.sh — on the GPU machine: the tiny fixtures through `dscc run --backend
# cuda`, compared with transformers' logits (made by tools/make_fixtures.py)
# and with the CPU executor on the same graph; prefill + decode through the
# KV cache against the full forward (both absorbed, attn_impl=absorb; the
# default, auto, takes the naive form for a prefill from position 0: its
# prefill + decode is held to transformers). Prints one line per check and exits
# non-zero if any is outside its bound. Expects build/ (see run.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH="$PWD/build/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0 NO_COLOR=1
out=${OUT:-$(mktemp -d)}
status=0
run() { # name, extra args...
  local name=$1; shift
  if ! build/dscc run models/deepseek_v3.dsl "$@" --dump-logits "$out/$name.npy" > "$out/$name.txt" 2> "$out/$name.err"; then
    echo "FAILED to run $name:"; cat "$out/$name.err"; status=1
  fi
  grep -h "GPU time" "$out/$name.err" || true
}
for fx in tiny_bf16 tiny_fp8; do
  f=tests/fixtures/$fx
  for prec in bf16 fp8; do
    run gpu_${fx}_$prec --weights $f --tokens $f/tokens.npy --backend cuda --precision $prec --trace "$out/trace_${fx}_$prec.json"
    run cpu_${fx}_$prec --weights $f --tokens $f/tokens.npy --backend cpu --precision $prec
    run gpudec_${fx}_$prec --weights $f --tokens $f/tokens.npy --backend cuda --precision $prec --prefill 3 --set attn_impl=absorb
    run gpuabs_${fx}_$prec --weights $f --tokens $f/tokens.npy --backend cuda --precision $prec --set attn_impl=absorb
    run gpudecauto_${fx}_$prec --weights $f --tokens $f/tokens.npy --backend cuda --precision $prec --prefill 3
    run gpuf32_${fx}_$prec --weights $f --tokens $f/tokens.npy --backend cuda --precision $prec --storage f32
  done
done
python3 - "$out" <<'PY' || status=1
import sys, numpy as np
out = sys.argv[1]
def load(p):
    try: return np.load(p).astype(np.float64)
    except Exception as e: print("missing", p, e); return None
def rel(a, b): return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
def agree(a, b): return float((a.argmax(-1) == b.argmax(-1)).mean())
bad = 0
print(f"{'check':52s} {'rel L2':>10s} {'argmax':>8s} {'bound':>8s}")
refs = {("tiny_bf16", "bf16"): "logits.npy", ("tiny_fp8", "bf16"): "logits_dequant.npy", ("tiny_fp8", "fp8"): "logits_fp8.npy"}
for fx in ("tiny_bf16", "tiny_fp8"):
    for prec in ("bf16", "fp8"):
        ref = load(f"tests/fixtures/{fx}/{refs[fx, prec]}") if (fx, prec) in refs else None
        g, c, gd, gw, ga, gda = (load(f"{out}/{k}_{fx}_{prec}.npy") for k in ("gpu", "cpu", "gpudec", "gpuf32", "gpuabs", "gpudecauto"))
        if g is None or c is None or gd is None or gw is None or ga is None or gda is None: bad += 1; continue
        # --storage f32 computes what the CPU computes (f32 between kernels):
        # the fidelity bounds of the CPU executor apply (README: 1e-3 vs
        # transformers, 1e-4 vs the FP8 emulation). Declared storage rounds
        # every activation to bf16: the issue's BF16 bound (2e-2, >= 99% of
        # the argmaxes) applies to --precision bf16, which the fixtures'
        # conditioning makes a test of precision, not of near-ties (see
        # tools/make_fixtures.py); bf16 storage under --precision fp8 is
        # reported only (bf16 rounding ahead of E4M3 moves codes, and the
        # FP8 forwards' routing margins are smaller than that).
        checks = [(f"{fx} {prec}: gpu --storage f32 vs cpu", gw, c, 1e-4, 1.0),
                  (f"{fx} {prec}: prefill+decode vs full forward (absorb)", gd, ga, 1e-6, 1.0),
                  (f"{fx} {prec}: gpu (bf16 storage) vs cpu [info]", g, c, 0.5, 0.5)]
        if ref is not None:
            what = "transformers" if prec == "bf16" else "FP8 emulation"
            checks.append((f"{fx} {prec}: gpu --storage f32 vs {what}", gw, ref, 1e-3 if prec == "bf16" else 1e-4, 1.0))
            if prec == "bf16":
                checks.append((f"{fx} {prec}: gpu (bf16 storage) vs {what}", g, ref, 2e-2, 0.99))
                checks.append((f"{fx} {prec}: gpu absorb (bf16 storage) vs {what}", ga, ref, 2e-2, 0.99))
                checks.append((f"{fx} {prec}: gpu prefill+decode (bf16 storage) vs {what}", gda, ref, 2e-2, 0.99))
            else:
                checks.append((f"{fx} {prec}: gpu (bf16 storage) vs {what} [info]", g, ref, 0.5, 0.5))
        for name, a, b, bound, am in checks:
            r, ag = rel(a, b), agree(a, b)
            ok = r <= bound and ag >= am
            bad += not ok
            print(f"{name:52s} {r:10.2e} {ag:8.3f} {bound:8.0e} {'ok' if ok else 'FAIL'}")
sys.exit(1 if bad else 0)
PY
python3 tests/gpu/bf16_floor.py || echo "(bf16_floor.py failed)"
echo "outputs in $out"
exit $status
