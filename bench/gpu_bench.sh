#!/usr/bin/env bash
# gpu_bench.sh — on the GPU machine, in one run: the baselines (HBM copy,
# dense FP8 peak, cuBLASLt block-scaled FP8 at V3 shapes), dscc's CUDA
# FP8 GEMM alone at V3's shapes and M = 1 ... 4096 (bench_gemm), its CUDA
# backend on full-width V3 layers (bench_gpu, given the measured bandwidth
# and peak), and transformers on the same layers; GEMM=0, BASELINES=0,
# PEER=0 and BLAS_MODES=1 leave parts out; TILES (default wgmma; "mma wgmma" both)
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
  for tile in ${TILES:-wgmma}; do echo "== dscc FP8 GEMM sweep, DSCC_GEMM_TILE=$tile"; DSCC_GEMM_TILE=$tile build/bench_gemm --check; done
fi
# dscc: its generated kernels alone (on each tile), then with cuBLASLt for the GEMMs it supports
for blas in ${BLAS_MODES:-0 1}; do
  for tile in $([ "$blas" = 0 ] && echo "${TILES:-wgmma}" || echo "${TILE:-wgmma}"); do
    echo "== dscc, DSCC_CUBLASLT=$blas DSCC_GEMM_TILE=$tile"
    DSCC_CUBLASLT=$blas DSCC_GEMM_TILE=$tile build/bench_gpu --layers "${LAYERS:-2}" --dense "${DENSE:-1}" --prefill "${PREFILL:-1024}" --hbm-gbps "${hbm:-3000}" --peak-tflops "${peak:-1300}"
  done
done
if [ "${PEER:-1}" = 1 ]; then python3 bench/peer_transformers.py --layers "${LAYERS:-2}" --dense "${DENSE:-1}" --prefill "${PREFILL:-1024}"; fi
# speculative decoding with the MTP module (MTP=1): plain decode, verify (k+1 positions) and draft steps at batch 1 and 32, tokens/s at MTP_ACCEPT
if [ "${MTP:-0}" = 1 ]; then echo "== dscc MTP speculative decoding"; build/bench_mtp --layers "${LAYERS:-2}" --dense "${DENSE:-1}" --accept "${MTP_ACCEPT:-0.85}"; fi
