#!/usr/bin/env bash
# gpu_stage.sh — here, before a run on the GPU machine (which has no
# flex/bison and no Debian -dev packages): builds build/ (dscc, the tests,
# bench_gpu), the cuBLASLt baselines with nvcc (build/bench/baselines), and
# copies the shared libraries the GPU machine lacks (cmocka, cJSON, xxHash, PCRE2)
# to build/gpu-libs. Then carry `build` and run tests/gpu/session.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
mkdir -p build/bench build/gpu-libs
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x build/bench/baselines ] || [ bench/baselines.cu -nt build/bench/baselines ]; then
  "$nvcc" -O2 -gencode=arch=compute_90a,code=sm_90a -o build/bench/baselines bench/baselines.cu -lcublasLt
fi
for lib in libcmocka.so.0 libcjson.so.1 libxxhash.so.0 libpcre2-8.so.0; do
  # awk reads all of ldconfig's list (an early exit would end ldconfig by SIGPIPE, and pipefail this script)
  p=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && p == "" {p = $NF} END {print p}')
  [ -n "$p" ] && cp -L "$p" build/gpu-libs/
done
# the emulated device's module cache (tests/emu) is not needed there and only grows the carry (64 MiB at most)
rm -rf build/emu-cache
# the commit the binaries were built from (the GPU machine's copy of .git may lag)
echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)" > build/commit.txt
echo "staged build/ ($(du -sh build | cut -f1)) for the GPU machine"
