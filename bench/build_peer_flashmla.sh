#!/usr/bin/env bash
# build_peer_flashmla.sh — here, before a GPU call: compiles bench/peer_flashmla.cu against FlashMLA's Hopper dense
# decode kernel (github.com/deepseek-ai/FlashMLA, never committed here) into build/bench/peer_flashmla, which
# tools/gpu_stage.sh --carry then carries with the rest of build/bench.
#
#   bench/build_peer_flashmla.sh [SRC]
#
# SRC (default .peers/flashmla, a folder git ignores) holds FlashMLA's csrc/ with its cutlass submodule's include/
# and tools/util/include/ under csrc/cutlass/, and a file FLASHMLA_COMMIT with the commit it was taken from:
# tools/fetch_peers.sh writes it.
# Needs nvcc (CUDA 12.8 or later for FlashMLA's C++20); ~5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-.peers/flashmla}
for f in csrc/sm90/decode/dense/instantiations/bf16.cu csrc/smxx/decode/combine/combine.cu \
  csrc/smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.cu csrc/cutlass/include/cute/tensor.hpp FLASHMLA_COMMIT; do
  [ -f "$src/$f" ] || { echo "build_peer_flashmla.sh: $src/$f: missing (see this script's header for what SRC holds)" >&2; exit 1; }
done
nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
out=build/bench/peer_flashmla
obj=$(mktemp -d)
trap 'rm -rf "$obj"' EXIT
flags=(-O3 -std=c++20 -DNDEBUG -D_USE_MATH_DEFINES -Wno-deprecated-declarations -U__CUDA_NO_HALF_OPERATORS__
  -U__CUDA_NO_HALF_CONVERSIONS__ -U__CUDA_NO_HALF2_OPERATORS__ -U__CUDA_NO_BFLOAT16_CONVERSIONS__
  --expt-relaxed-constexpr --expt-extended-lambda --use_fast_math -gencode arch=compute_90a,code=sm_90a
  "-DFLASHMLA_COMMIT=\"$(head -c 12 "$src/FLASHMLA_COMMIT")\""
  -I"$src/csrc" -I"$src/csrc/kerutils/include" -I"$src/csrc/sm90" -I"$src/csrc/cutlass/include" -I"$src/csrc/cutlass/tools/util/include")
mkdir -p build/bench
i=0
for f in "$src/csrc/sm90/decode/dense/instantiations/bf16.cu" "$src/csrc/smxx/decode/combine/combine.cu" \
  "$src/csrc/smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.cu" bench/peer_flashmla.cu; do
  echo "nvcc $f"
  "$nvcc" "${flags[@]}" -c "$f" -o "$obj/$i.o" &
  i=$((i + 1))
done
wait_all=0
for job in $(jobs -p); do wait "$job" || wait_all=1; done
[ $wait_all -eq 0 ] || { echo "build_peer_flashmla.sh: a compile failed" >&2; exit 1; }
"$nvcc" -gencode arch=compute_90a,code=sm_90a "$obj"/*.o -o "$out" -lcuda
echo "built $out ($(du -h "$out" | cut -f1))"
