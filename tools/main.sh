#!/usr/bin/env bash
# main.sh — the main job: installs missing build dependencies, builds dscc,
# compiles the full DeepSeek-V3 description to verified IR (out/), checks
# that the printed IR reads back byte-identically, and prints the model's
# figures computed from the graph, for the 671B defaults and for the tiny
# configuration in models/tiny/config.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target dscc
mkdir -p out
echo "== dscc compile models/deepseek_v3.dsl =="
build/dscc compile models/deepseek_v3.dsl --time-passes -o out/deepseek_v3.ir
build/dscc compile models/deepseek_v3.dsl --emit=dot -o out/deepseek_v3.dot
build/dscc opt out/deepseek_v3.ir -o out/deepseek_v3.roundtrip.ir
cmp out/deepseek_v3.ir out/deepseek_v3.roundtrip.ir
echo "IR: out/deepseek_v3.ir ($(wc -l <out/deepseek_v3.ir) lines), re-read byte-identically"
echo
echo "== dscc stats models/deepseek_v3.dsl =="
build/dscc stats models/deepseek_v3.dsl
echo
echo "== dscc stats models/deepseek_v3.dsl --config models/tiny/config.json =="
build/dscc stats models/deepseek_v3.dsl --config models/tiny/config.json --seq 64
