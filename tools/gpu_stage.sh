#!/usr/bin/env bash
# gpu_stage.sh — here, before a run on the GPU machine (which has no
# flex/bison and no Debian -dev packages): builds build/ (dscc, the tests,
# bench_gpu), the cuBLASLt baselines with nvcc (build/bench/baselines), and
# copies the shared libraries the GPU machine lacks (cmocka, cJSON, xxHash, PCRE2)
# to build/gpu-libs. Then carry `build` and run tests/gpu/session.sh there.
#
#   tools/gpu_stage.sh [--carry DIR]
#
# --carry DIR: then also writes DIR (relative to the repository's root, a
# folder git ignores: build-gpu, which tests/gpu/rounds.sh renames to build), a
# trimmed copy of build/ for the device tool's carry (64 MiB at most): only
# what tests/gpu/rounds.sh, run.sh and e2e.sh run (dscc, bench_*, test_gpu_*,
# test_codegen, CMakeCache.txt, commit.txt, gpu-libs/, bench/), the programs
# with their debug info stripped; prints its size, and refuses (removes it,
# exit 1) when it is over 50 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: tools/gpu_stage.sh [--carry DIR]" >&2; exit 2; }
carry=""
while [ $# -gt 0 ]; do
  case $1 in
  --carry) if [ $# -lt 2 ] || [ -z "$2" ]; then usage; fi; carry=$2; shift 2 ;;
  --carry=?*) carry=${1#--carry=}; shift ;;
  *) usage ;;
  esac
done
if [ -n "$carry" ]; then # not build/ itself, nor a folder in it or above it, nor outside the repository
  root=$(pwd -P)
  case $(realpath -m "$carry")/ in
  "$root"/ | "$root"/build/*) echo "gpu_stage.sh: --carry $carry: not build/ or a folder in it or above it" >&2; exit 2 ;;
  "$root"/*) ;;
  *) echo "gpu_stage.sh: --carry $carry: not a folder inside the repository (the device tool carries only those)" >&2; exit 2 ;;
  esac
  if git rev-parse --git-dir >/dev/null 2>&1 && ! git check-ignore -q "$carry/"; then
    echo "gpu_stage.sh: --carry $carry: git does not ignore it (the device tool's carry takes ignored paths: build-gpu)" >&2; exit 2
  fi
fi
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
if [ -n "$carry" ]; then
  rm -rf "$carry"
  mkdir -p "$carry"
  for f in build/dscc build/bench_* build/test_gpu_* build/test_codegen; do
    [ -f "$f" ] && [ -x "$f" ] && cp -p "$f" "$carry/"
  done
  cp -p build/CMakeCache.txt build/commit.txt "$carry/"
  cp -pR build/gpu-libs build/bench "$carry/"
  for f in "$carry"/* "$carry"/bench/*; do # the programs (ELF files) without their debug info
    [ -f "$f" ] && [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && strip --strip-debug "$f"
  done
  bytes=$(du -sb "$carry" | cut -f1)
  echo "carry: $carry, $((bytes / 1000000)) MB ($bytes bytes, $(find "$carry" -type f | wc -l) files)"
  if [ "$bytes" -gt 50000000 ]; then
    echo "gpu_stage.sh: $carry is over 50 MB, too close to the device tool's 64 MiB carry limit: removed" >&2
    rm -rf "$carry"
    exit 1
  fi
fi
