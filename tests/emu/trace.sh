#!/usr/bin/env bash
# trace.sh — `dscc run --backend cuda --trace` on the emulated CUDA device
# (CTest emu.trace sets its environment): a prefill and 3 decode steps make
# a Chrome trace (valid JSON) with 4 step slices, "prefill", "decode 1..3",
# one after the other, every kernel slice inside its step's interval, every
# kernel's bytes and FLOPs; a chosen linear kernel's FLOPs (2 M N K) and
# bytes (its input, its weight, its output) and the embedding's (only the
# rows it gathers) as ir/stats.c counts them, from the shapes and dtypes
# the trace lists; --trace-steps 2 traces 2 steps and says in the metadata
# that 2 were left out (and the tokens do not change); with --speculative
# mtp the verify and draft steps are named slices; bench/trace_top.py
# summarises the trace with the roofline columns; a trace that cannot be
# written is an error before anything runs. With NVTX_TOOL (tests/emu/
# nvtx_log.c) and a dscc built with NVTX, the traced run's NVTX ranges:
# each step a range holding one range per layer ("model.layers.N"),
# every push popped.
#   trace.sh DSCC [NVTX_TOOL]
set -uo pipefail
dscc=$1 nvtx_tool=${2:-}
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
fx=tests/fixtures/tiny_bf16
run() { # name, args...: the generated lines in $out/name.txt, stderr in $out/name.err
  local name=$1; shift
  if ! "$dscc" run models/deepseek_v3.dsl --backend cuda --precision bf16 "$@" > "$out/$name.txt" 2> "$out/$name.err"; then
    echo "FAILED to run $name:"; cat "$out/$name.err"; status=1
  fi
}
[ -n "$nvtx_tool" ] && export NVTX_INJECTION64_PATH=$nvtx_tool DSCC_NVTX_LOG=$out/nvtx.log
run full --weights $fx --tokens $fx/tokens.npy --generate 4 --trace "$out/trace.json"
unset NVTX_INJECTION64_PATH DSCC_NVTX_LOG
run capped --weights $fx --tokens $fx/tokens.npy --generate 4 --trace "$out/capped.json" --trace-steps 2
run spec --weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 4 --speculative mtp \
  --trace "$out/spec.json"

if ! python3 - "$out" <<'PY'
import json, math, sys
out = sys.argv[1]
SIZE = {"f32": 4, "bf16": 2, "f16": 2, "i32": 4, "fp8e4m3": 1}

def load(name):
    with open(f"{out}/{name}") as f:
        return json.load(f)  # the whole file must parse

def steps_and_kernels(t, names):
    x = [e for e in t["traceEvents"] if e.get("ph") == "X"]
    s = [e for e in x if e.get("cat") == "step"]
    k = [e for e in x if e.get("cat") in ("kernel", "communication")]
    assert [e["name"] for e in s] == names, "steps %r, want %r" % ([e["name"] for e in s], names)
    for a, b in zip(s, s[1:]):
        assert a["ts"] + a["dur"] <= b["ts"], "step %s overlaps %s" % (a["name"], b["name"])
    per = {e["name"]: 0 for e in s}
    for e in k:
        inside = [st["name"] for st in s if st["ts"] <= e["ts"] and e["ts"] + e["dur"] <= st["ts"] + st["dur"] + 1e-3]
        assert len(inside) == 1, "kernel %s at %.3f+%.3f is in steps %r" % (e["name"], e["ts"], e["dur"], inside)
        per[inside[0]] += 1
        a = e["args"]
        for key in ("flops", "bytes", "bytes_read", "bytes_written", "reads", "ops", "shape"):
            assert key in a, "kernel %s has no %s" % (e["name"], key)
        assert a["bytes"] == a["bytes_read"] + a["bytes_written"], e
        assert math.isclose(a["bytes_read"], sum(r["bytes"] for r in a["reads"]), rel_tol=1e-12), e
        if e["dur"] > 0:
            assert math.isclose(a["GB/s"], a["bytes"] / e["dur"] / 1e3, rel_tol=1e-9), e
            assert math.isclose(a["TFLOPS"], a["flops"] / e["dur"] / 1e6, rel_tol=1e-9), e
    assert all(per.values()), "a step without kernels: %r" % per
    return s, k

t = load("trace.json")
s, k = steps_and_kernels(t, ["prefill", "decode 1", "decode 2", "decode 3"])
assert [e["args"]["tokens"] for e in s] == [16, 2, 2, 2], [e["args"] for e in s]
m = t["otherData"]
assert m["steps_traced"] == 4 and m["steps_left_out"] == 0 and "note" not in m, m
# the chosen kernel: decode 1's first lone linear (q_a_proj): 2 M N K FLOPs;
# its input, weight (whole) and output bytes in their stored dtypes
d1 = s[1]
lin = [e for e in k if e["args"]["ops"] == ["linear"] and d1["ts"] <= e["ts"] <= d1["ts"] + d1["dur"]][0]
a = lin["args"]
w = [r for r in a["reads"] if r["node"].endswith(" weight")][0]
xin = [r for r in a["reads"] if r is not w][0]
M = math.prod(a["shape"][:-1])
N, K = w["shape"]
assert a["shape"][-1] == N and xin["shape"][-1] == K, a
assert a["flops"] == 2 * M * N * K, (a["flops"], 2 * M * N * K)
assert w["bytes"] == N * K * SIZE[w["dtype"]] and xin["bytes"] == M * K * SIZE[xin["dtype"]], a
assert a["bytes_written"] == M * N * SIZE[a["dtype"]], a
assert len(a["reads"]) == 2, a
# the embedding reads the rows of its tokens, not the table
emb = [e for e in k if e["args"]["ops"] == ["embedding"]][0]["args"]
tab = [r for r in emb["reads"] if r["node"].endswith(" weight")][0]
assert tab["bytes"] == math.prod(emb["shape"]) * SIZE[tab["dtype"]] < math.prod(tab["shape"]) * SIZE[tab["dtype"]], emb

c = load("capped.json")
steps_and_kernels(c, ["prefill", "decode 1"])
m = c["otherData"]
assert m["steps_traced"] == 2 and m["steps_left_out"] == 2 and "--trace-steps" in m["note"], m

sp = load("spec.json")
names = [e["name"] for e in sp["traceEvents"] if e.get("cat") == "step"]
assert names[:4] == ["verify prefill", "draft prefill", "verify 1", "draft 1"], names
steps_and_kernels(sp, names)
print("ok: %d steps, %d kernel slices; %s: %d FLOPs, %d bytes" % (len(s), len(k), lin["name"], a["flops"], a["bytes"]))
PY
then echo "FAILED: the trace"; status=1; fi

if ! diff -q "$out/full.txt" "$out/capped.txt" > /dev/null; then
  echo "FAILED: --trace-steps 2 changed the generated tokens"; diff "$out/full.txt" "$out/capped.txt"; status=1
fi
if ! python3 bench/trace_top.py "$out/trace.json" 5 > "$out/top.txt" || ! grep -q "roofline" "$out/top.txt" ||
   ! grep -q "decode 3" "$out/top.txt"; then
  echo "FAILED: bench/trace_top.py on the trace"; cat "$out/top.txt"; status=1
fi
mkdir "$out/dir"
"$dscc" run models/deepseek_v3.dsl --backend cuda --weights $fx --tokens $fx/tokens.npy --trace "$out/dir" > /dev/null 2> "$out/bad.err"
rc=$?
if [ $rc -ne 3 ] || ! grep -q "cannot write the trace '$out/dir'" "$out/bad.err"; then
  echo "FAILED: an unwritable trace: exit $rc"; cat "$out/bad.err"; status=1
fi
if [ -z "$nvtx_tool" ] || ! "$dscc" --version | grep -q '^NVTX: ranges built in'; then
  echo "note: NVTX ranges not checked (no nvtx3 at configure time)"
elif ! python3 - "$out/nvtx.log" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
stack, steps = [], []
for l in lines:
    if l == "pop":
        assert stack, "a pop without a push"
        stack.pop()
        continue
    name = l[len("push "):]
    if not stack:
        steps.append([name])
    else:
        assert len(stack) == 1, "ranges nested deeper than step > layer: %r" % stack
        steps[-1].append(name)
    stack.append(name)
assert not stack, "unpopped ranges %r" % stack
assert [s[0] for s in steps] == ["prefill", "decode 1", "decode 2", "decode 3"], [s[0] for s in steps]
for s in steps:
    layers = [n for n in s[1:] if n.startswith("model.layers.")]
    assert layers == ["model.layers.%d" % i for i in range(len(layers))] and len(layers) >= 2, s
print("ok: NVTX ranges: %d steps, %d layer ranges each" % (len(steps), len(layers)))
PY
then echo "FAILED: the NVTX ranges"; cat "$out/nvtx.log" | head -40; status=1; fi
[ $status -eq 0 ] && echo "ok: trace.sh"
exit $status
