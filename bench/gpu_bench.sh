#!/usr/bin/env bash
# gpu_bench.sh — on the GPU machine, in one run: the baselines (HBM copy,
# dense FP8 peak, cuBLASLt block-scaled FP8 at V3 shapes), dscc's CUDA
# FP8 GEMM alone at V3's shapes and M = 1 ... 4096 (bench_gemm), its CUDA
# backend on full-width V3 layers (bench_gpu, given the measured bandwidth
# and peak), transformers on the same layers (PEER), DeepSeek-V3's own
# inference code on them (PEER_DS, bench/peer_deepseek.py: the same
# weights and tokens as bench_gpu) and DeepGEMM's FP8 GEMM beside bench_gemm
# (PEER_DG, bench/peer_deepgemm.py, from the sgl-deep-gemm wheel); the last
# two need .peers/ (tools/fetch_peers.sh, carried to the GPU machine) and are
# on by default where it is there; and a prefill with MLA's absorbed form
# against attn_impl=auto (MLA). GEMM=0, BASELINES=0, PEER=0, PEER_DS=0,
# PEER_DG=0, MLA=0 and BLAS_MODES=1 leave parts out; TILES (default wgmma; "mma wgmma" both)
# picks the generated tensor-core tiles measured, TILE the one beside cuBLASLt. Expects build/ made elsewhere
# (tools/gpu_stage.sh: build/bench/baselines by nvcc, build/bench_gpu,
# build/bench_gemm, build/gpu-libs).
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/build/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0
echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), date: $(date -u +%F), commit: ${DSCC_COMMIT:-$(cat build/commit.txt 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
base=$(mktemp)
[ "${BASELINES:-1}" = 1 ] && build/bench/baselines | tee "$base"
hbm=$(awk '/^hbm_copy_GBps/ {print $2}' "$base")
peak=$(awk '/^dense_fp8_TFLOPS/ {print $2}' "$base")
# dscc's FP8 GEMM alone at V3's shapes and M = 1 ... 4096 (generated kernel and default path; --check: vs the CPU at M <= 128)
# ... once per tensor-core tile of the generated kernels (TILES: DSCC_GEMM_TILE values)
if [ "${GEMM:-1}" = 1 ]; then
  # ... and the faster path per shape and range of M as a GEMM table (runtime/gemm_table.txt's form), printed after it
  for tile in ${TILES:-wgmma}; do
    echo "== dscc FP8 GEMM sweep, DSCC_GEMM_TILE=$tile"
    tab=$(mktemp)
    DSCC_GEMM_TILE=$tile build/bench_gemm --check --table "$tab" && { echo "== GEMM table, DSCC_GEMM_TILE=$tile"; cat "$tab"; }
    rm -f "$tab"
  done
fi
# dscc: its generated kernels alone (on each tile), then with cuBLASLt for the GEMMs it supports
for blas in ${BLAS_MODES:-0 1}; do
  for tile in $([ "$blas" = 0 ] && echo "${TILES:-wgmma}" || echo "${TILE:-wgmma}"); do
    echo "== dscc, DSCC_CUBLASLT=$blas DSCC_GEMM_TILE=$tile"
    DSCC_CUBLASLT=$blas DSCC_GEMM_TILE=$tile build/bench_gpu --layers "${LAYERS:-2}" --dense "${DENSE:-1}" --prefill "${PREFILL:-1024}" --hbm-gbps "${hbm:-3000}" --peak-tflops "${peak:-1300}"
  done
done
if [ "${PEER:-1}" = 1 ]; then python3 bench/peer_transformers.py --layers "${LAYERS:-2}" --dense "${DENSE:-1}" --prefill "${PREFILL:-1024}"; fi
# MLA attention's two forms on a prefill from position 0 (MLA=0 leaves it out): dscc run on the same
# layers with attn_impl=absorb (the absorbed form every step) and attn_impl=auto (the default: the naive form for
# a step with nothing cached, fresh_select): the step's GPU time and its largest kernels
if [ "${MLA:-1}" = 1 ]; then
  tok=$(mktemp -d)
  python3 -c "import numpy as np, sys; np.save(sys.argv[1], (np.arange(int(sys.argv[2]), dtype=np.int32) * 7919 % 129280).reshape(1, -1))" \
    "$tok/tokens.npy" "${PREFILL:-1024}"
  for m in absorb auto; do
    echo "== dscc, attn_impl=$m: prefill 1 x ${PREFILL:-1024} (dscc run, random weights)"
    build/dscc run models/deepseek_v3.dsl --random-weights 1 --set num_hidden_layers="${LAYERS:-2}" --set first_k_dense_replace="${DENSE:-1}" \
      --set num_nextn_predict_layers=0 --set attn_impl=$m --precision fp8 --backend cuda --tokens "$tok/tokens.npy" \
      --trace "$tok/$m.json" 2>&1 | grep -E "last step|error"
    [ -f "$tok/$m.json" ] && python3 bench/trace_top.py "$tok/$m.json" 12
  done
  rm -rf "$tok"
fi
# DeepSeek's inference code on the same layers, weights and tokens (PEER_DS_MODES: its --modes)
if [ "${PEER_DS:-$([ -f .peers/deepseek_v3/model.py ] && echo 1 || echo 0)}" = 1 ]; then
  echo "== DeepSeek-V3 inference code (peer)"
  python3 bench/peer_deepseek.py --layers "${LAYERS:-2}" --dense "${DENSE:-1}" --prefill "${PREFILL:-1024}" ${PEER_DS_MODES:+--modes "$PEER_DS_MODES"}
fi
# DeepGEMM's FP8 GEMM alone at bench_gemm's shapes (the wheel installed into a scratch folder, not into the system)
if [ "${PEER_DG:-$(ls .peers/whl/sgl_deep_gemm-*.whl >/dev/null 2>&1 && echo 1 || echo 0)}" = 1 ]; then
  echo "== DeepGEMM FP8 GEMM (peer)"
  site=$(mktemp -d)
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .peers/whl/sgl_deep_gemm-*.whl; then
    PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" python3 bench/peer_deepgemm.py ${PEER_DG_M:+--m "$PEER_DG_M"}
  else
    echo "DeepGEMM peer: not run: the wheel did not install"
  fi
  rm -rf "$site"
fi
# speculative decoding with the MTP module (MTP=1): plain decode, verify (k+1 positions) and draft steps at batch 1 and 32, tokens/s at MTP_ACCEPT
if [ "${MTP:-0}" = 1 ]; then echo "== dscc MTP speculative decoding"; build/bench_mtp --layers "${LAYERS:-2}" --dense "${DENSE:-1}" --accept "${MTP_ACCEPT:-0.85}"; fi
