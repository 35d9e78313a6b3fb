#!/usr/bin/env bash
# fuzz.sh [SECONDS [HARNESS...]] — builds the libFuzzer harnesses with clang
# (ASan + UBSan) and runs each (all of tests/fuzz/fuzz_*.c, or the ones
# named: run, config, npy, ...) over its corpus for SECONDS (default 60),
# one at a time at the lowest priority. A run keeps going past a crash, a
# timeout (10 s) or an out-of-memory (2 GiB) in a forked child (-fork=1
# -ignore_*), so SECONDS is always spent; each finding is written as
# build-fuzz/artifacts-<name>/crash-*|timeout-*|oom-*, the log as
# build-fuzz/log-<name>.txt, and the script fails if any was found. New
# inputs go to build-fuzz/corpus-<name>/. Copy an interesting input into
# tests/fuzz/corpus/<name>/ to keep it as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
secs=${1:-60}
shift || true
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 2; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DDSCC_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$(nproc 2>/dev/null || echo 2)"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for h in build-fuzz/fuzz_*; do [ -x "$h" ] && names+=("$(basename "$h" | sed 's/^fuzz_//')"); done
fi
status=0
for corpus in "${names[@]}"; do
  name=fuzz_$corpus
  mkdir -p "build-fuzz/corpus-$corpus" "build-fuzz/artifacts-$corpus"
  echo "== $name for ${secs}s =="
  # The harnesses' private folders go under build-fuzz/tmp: a child that
  # libFuzzer ends (a crash, a timeout, the end of a fork job) cannot remove
  # its own, so the folder is emptied after each run.
  mkdir -p build-fuzz/tmp
  (cd build-fuzz && TMPDIR="$PWD/tmp" nice -n 19 "./$name" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="artifacts-$corpus/" "corpus-$corpus" "../tests/fuzz/corpus/$corpus" \
      >"log-$corpus.txt" 2>&1) || true
  rm -rf build-fuzz/tmp
  grep -E "^#[0-9]+: " "build-fuzz/log-$corpus.txt" | tail -1 || true
  found=$(find "build-fuzz/artifacts-$corpus" -type f | wc -l)
  echo "$name: $found finding(s) in build-fuzz/artifacts-$corpus/"
  [ "$found" -eq 0 ] || status=1
done
exit $status
