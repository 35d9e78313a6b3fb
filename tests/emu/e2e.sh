#!/usr/bin/env bash
# e2e.sh — the tiny fixtures through `dscc run --backend cuda` on the
# emulated CUDA device (CTest emu.e2e sets its environment), against
# transformers' logits with the CUDA issue's bounds: bf16 storage within
# 2e-2 and 99% of the argmaxes at --precision bf16; --storage f32 within the
# CPU executor's bounds (1e-3 from transformers, 1e-4 from the FP8
# emulation); prefill + decode equal to the full forward (both in the
# absorbed form, attn_impl=absorb: the default, auto, takes the naive form
# for a prefill from position 0 only; its prefill + decode is held to
# transformers instead). The same script a GPU would pass, on the CPU.
#   e2e.sh DSCC NPY_COMPARE
set -uo pipefail
dscc=$1 cmp=$2
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
run() { # name, fixture, extra args...
  local name=$1 fx=tests/fixtures/$2; shift 2
  if ! "$dscc" run models/deepseek_v3.dsl --weights "$fx" --tokens "$fx/tokens.npy" --backend cuda \
       --dump-logits "$out/$name.npy" "$@" > "$out/$name.txt" 2> "$out/$name.err"; then
    echo "FAILED to run $name:"; cat "$out/$name.err"; status=1
  fi
}
check() { "$cmp" "$@" || status=1; }
run bf16 tiny_bf16 --precision bf16 --trace "$out/trace.json"
run bf16_f32 tiny_bf16 --precision bf16 --storage f32
run bf16_abs tiny_bf16 --precision bf16 --set attn_impl=absorb
run bf16_dec tiny_bf16 --precision bf16 --prefill 5 --generate 3 --set attn_impl=absorb
run bf16_dec_auto tiny_bf16 --precision bf16 --prefill 5 --generate 3
# Without --dump-logits dscc run compiles the LM head for each step's last
# position alone (logits_last_only): the same next tokens and continuation.
fx=tests/fixtures/tiny_bf16
if "$dscc" run models/deepseek_v3.dsl --weights $fx --tokens $fx/tokens.npy --backend cuda --precision bf16 --prefill 5 \
     --generate 3 --set attn_impl=absorb > "$out/bf16_last.txt" 2> "$out/bf16_last.err"; then
  if ! diff "$out/bf16_dec.txt" "$out/bf16_last.txt"; then echo "FAILED: last-position logits give other tokens"; status=1; fi
  grep -q "generated: " "$out/bf16_last.txt" || { echo "FAILED: no generated tokens"; status=1; }
else echo "FAILED to run bf16_last:"; cat "$out/bf16_last.err"; status=1; fi
run fp8_f32 tiny_fp8 --precision fp8 --storage f32
run fp8deq tiny_fp8 --precision bf16
check "tiny_bf16 --precision bf16 (bf16 storage) vs transformers" "$out/bf16.npy" tests/fixtures/tiny_bf16/logits.npy 2e-2 0.99
check "tiny_bf16 --precision bf16 --storage f32 vs transformers" "$out/bf16_f32.npy" tests/fixtures/tiny_bf16/logits.npy 1e-3 1
check "tiny_bf16 attn_impl=absorb vs transformers" "$out/bf16_abs.npy" tests/fixtures/tiny_bf16/logits.npy 2e-2 0.99
check "tiny_bf16 prefill 5 + decode vs full forward (absorb)" "$out/bf16_dec.npy" "$out/bf16_abs.npy" 1e-6 1
check "tiny_bf16 prefill 5 + decode (auto) vs transformers" "$out/bf16_dec_auto.npy" tests/fixtures/tiny_bf16/logits.npy 2e-2 0.99
check "tiny_fp8 --precision fp8 --storage f32 vs FP8 emulation" "$out/fp8_f32.npy" tests/fixtures/tiny_fp8/logits_fp8.npy 1e-4 1
check "tiny_fp8 --precision bf16 (bf16 storage) vs transformers" "$out/fp8deq.npy" tests/fixtures/tiny_fp8/logits_dequant.npy 2e-2 0.99
# The trace: Chrome JSON that parses, kernel slices ("X", ts/dur >= 0,
# pid/tid, args.ops) named after the generated kernels, one step slice
# (tests/emu/trace.sh checks the trace in depth).
if ! python3 - "$out/trace.json" "$out/bf16.err" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
x = [e for e in t["traceEvents"] if e.get("ph") == "X"]
k = [e for e in x if e.get("cat") in ("kernel", "communication")]
s = [e for e in x if e.get("cat") == "step"]
assert k, "no kernel slices"
assert len(s) == 1 and s[0]["name"] == "prefill" and s[0]["args"]["tokens"] > 0, "no step slice: %r" % s
for e in x:
    assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
    assert e["ts"] >= 0 and e["dur"] >= 0, e
for e in k:
    assert e["name"].startswith("g") and e["args"]["ops"] and "shape" in e["args"], e
    assert e["tid"] != s[0]["tid"], e
assert any(e["dur"] > 0 for e in k), "every kernel has zero duration"
PY
then echo "FAILED: --trace is not a valid Chrome trace"; status=1; fi
exit $status
