#!/usr/bin/env bash
# run_baselines.sh — builds bench/baselines.cu with nvcc and runs it on the
# GPU of this machine: HBM copy bandwidth, dense FP8 GEMM roofline and
# cuBLASLt's block-scaled FP8 GEMM at DeepSeek-V3 shapes (BENCHMARKS.md).
# Needs a GPU; nvcc may run on another machine (the binary is static in
# cudart and needs libcublasLt.so.13 where it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bench
if [ ! -x build/bench/baselines ] || [ bench/baselines.cu -nt build/bench/baselines ]; then
  "${NVCC:-nvcc}" -O2 -arch=sm_90a -o build/bench/baselines bench/baselines.cu -lcublasLt
fi
echo "date: $(date -u +%F), commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
build/bench/baselines
