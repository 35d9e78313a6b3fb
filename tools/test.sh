#!/usr/bin/env bash
# test.sh — the test command: installs missing build dependencies, builds,
# runs the whole CTest suite (unit, golden, bad-input, fuzz-corpus replay),
# then builds again with AddressSanitizer + UndefinedBehaviorSanitizer
# (-fno-sanitize-recover=all) and runs the suite once more, then builds with
# ThreadSanitizer and runs the tests whose code runs threads (CTest label
# `threads`; suppressions, for external libraries only, in
# tests/tsan.supp). Tests that need a GPU say that they are skipped. Exit
# status is non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
echo "== build (RelWithDebInfo) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
ctest --test-dir build --output-on-failure -j"$jobs"
echo "== build (Debug, ASan + UBSan) =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDSCC_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan + UBSan =="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
echo "== build (ThreadSanitizer) =="
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSCC_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs"
echo "== threaded tests under TSan =="
TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" -L threads
if grep -q "DSCC_HAVE_NVRTC:INTERNAL=OFF\|^DSCC_NVRTC_LIB:FILEPATH=.*NOTFOUND" build/CMakeCache.txt 2>/dev/null; then
  echo "skipped: unit.test_codegen (no CUDA toolkit with NVRTC, or no libxxhash, on this machine)"
fi
echo "GPU tests (skipped here when the machine has no GPU; tests/gpu/run.sh runs them on one):"
grep -h "Skipped" build/Testing/Temporary/LastTest.log 2>/dev/null | sort -u || true
( cd build && ctest -N 2>/dev/null | grep -o "unit.test_gpu_[a-z_0-9]*" ) | sed 's/^/  /'
echo "all tests passed (plain, ASan + UBSan, and the threaded ones under TSan)"
