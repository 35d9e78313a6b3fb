#!/usr/bin/env bash
# fuzz.sh [SECONDS] — builds the libFuzzer harnesses with clang
# (ASan + UBSan) and runs each over its corpus for SECONDS (default 60).
# New inputs go to build-fuzz/corpus-<name>/; crashes are written as
# build-fuzz/crash-* and make the script fail. Copy an interesting input into
# tests/fuzz/corpus/<name>/ to keep it as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
secs=${1:-60}
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 2; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DDSCC_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$(nproc 2>/dev/null || echo 2)"
status=0
for h in tests/fuzz/fuzz_*.c; do
  name=$(basename "$h" .c); corpus=${name#fuzz_}
  mkdir -p "build-fuzz/corpus-$corpus"
  echo "== $name for ${secs}s =="
  (cd build-fuzz && "./$name" -max_total_time="$secs" -max_len=65536 \
      "corpus-$corpus" "../tests/fuzz/corpus/$corpus") || status=1
done
exit $status
