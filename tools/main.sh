#!/usr/bin/env bash
# main.sh — the main job: installs missing build dependencies, builds dscc,
# compiles the full DeepSeek-V3 description to verified IR (out/), checks
# that the printed IR reads back byte-identically, prints the model's
# figures computed from the graph (671B defaults and the tiny config), then
# runs the tiny model end to end: from its Hugging Face checkpoint in
# tests/fixtures (logits to out/), and with seeded random weights through a
# prefill, KV-cache decode steps and greedy generation. It runs on any
# machine, so the runs use the CPU reference executor; the CUDA backend
# (--backend cuda) needs a Hopper GPU: tools/gpu_stage.sh, then
# tests/gpu/session.sh there.
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
echo
echo "== dscc run: tiny checkpoint (tests/fixtures/tiny_bf16), FP8 linears =="
build/dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --precision fp8 \
    --tokens tests/fixtures/tiny_bf16/tokens.npy --dump-logits out/tiny_logits.npy
echo "logits: out/tiny_logits.npy"
echo
echo "== dscc run: tiny model, random weights, prefill 6 + decode + 8 generated tokens =="
build/dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 \
    --tokens tests/fixtures/tiny_bf16/tokens.npy --prefill 6 --generate 8
