#!/usr/bin/env bash
# session.sh — on the GPU machine, the whole check in one call: the GPU
# unit tests (run.sh), the fixtures end to end (e2e.sh) and, unless
# BENCH=0, the benchmarks (bench/gpu_bench.sh). Logs go to $OUT (or a
# temporary folder). build/ comes from tools/gpu_stage.sh; the binaries
# were built with this checkout's path baked in (fixtures are found
# through it), so that path is linked to this copy first.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$(mktemp -d)}
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' build/CMakeCache.txt)
if [ -n "$src" ] && [ "$src" != "$PWD" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi
status=0
bash tests/gpu/run.sh > "$out/tests.log" 2>&1 || status=1
grep -E "^==|FAILED|MISMATCH|compared|PASSED|skipped" "$out/tests.log"
OUT=$(mktemp -d) bash tests/gpu/e2e.sh > "$out/e2e.log" 2>&1 || status=1
tail -n 40 "$out/e2e.log"
if [ "${BENCH:-1}" = 1 ]; then
  bash bench/gpu_bench.sh > "$out/bench.log" 2>&1 || status=1
  grep -vE "^(hbm|dense|gemm)" "$out/bench.log" | tail -n 60
fi
exit $status
