#!/usr/bin/env bash
# run.sh — the GPU test suite, on the GPU machine: every test that exits 77
# in CI (no GPU) runs for real here. Expects a build made elsewhere in
# build/ (the GPU machine has no flex/bison) and, in build/gpu-libs, the
# shared libraries it lacks (cmocka, cJSON, xxHash). TILES: the other
# tensor-core tiles test_gpu_ops runs on as well (default "mma wgmma": the
# mma.sync tile with bf16 storage, the wgmma one with f32; "" none).
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH="$PWD/build/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0 NO_COLOR=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
status=0
for t in build/test_gpu_* build/test_codegen; do
  [ -x "$t" ] || continue
  echo "== $t"
  "$t"
  rc=$?
  if [ $rc -eq 77 ]; then echo "skipped: $t"  # test_gpu_ep needs the emulated NCCL; tests/gpu/multi.sh runs ranks here
  elif [ $rc -ne 0 ]; then echo "FAILED: $t (exit $rc)"; status=1; fi
done
# the per-op suite again on each other tensor-core tile (codegen's DSCC_GEMM_TILE)
for tile in ${TILES-mma wgmma}; do
  [ -x build/test_gpu_ops ] || continue
  echo "== build/test_gpu_ops, DSCC_GEMM_TILE=$tile"
  DSCC_GEMM_TILE=$tile build/test_gpu_ops
  rc=$?
  if [ $rc -ne 0 ]; then echo "FAILED: test_gpu_ops with DSCC_GEMM_TILE=$tile (exit $rc)"; status=1; fi
done
exit $status
