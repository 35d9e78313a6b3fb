#!/usr/bin/env bash
# speculative.sh — `dscc run --speculative mtp --backend cuda` on the
# emulated CUDA device (CTest emu.speculative sets its environment): greedy
# speculative decoding must print exactly what plain greedy decoding prints
# on the same backend: bf16 on tests/fixtures/tiny_mtp (whose
# drafts are kept at some positions and rejected at others, differently per
# row) and, fp8, on random weights with a batch of 3 (every draft rejected); on
# the fixture at --precision bf16 also transformers' continuation and the
# acceptance the fixture's reference counts (reference.json).
#   speculative.sh DSCC
set -uo pipefail
dscc=$1
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
gen() { # args... -> the generated lines; stderr in $out/err
  "$dscc" run models/deepseek_v3.dsl --backend cuda "$@" 2>"$out/err" | grep generated
}
for what in "tiny_mtp bf16" "random fp8"; do
  set -- $what
  if [ "$1" = tiny_mtp ]; then
    src=(--weights tests/fixtures/tiny_mtp --tokens tests/fixtures/tiny_mtp/tokens.npy --generate 12)
  else
    src=(--config models/tiny/config.json --random-weights 7 --tokens tests/fixtures/tiny_mtp/batch3.npy --generate 9)
  fi
  plain=$(gen "${src[@]}" --precision "$2")
  tokens=$(gen "${src[@]}" --precision "$2" --speculative mtp)
  summary=$(grep 'speculative mtp' "$out/err")
  if [ -z "$plain" ] || [ "$plain" != "$tokens" ]; then
    echo "FAILED: $what: speculative output differs from plain decoding"; echo "plain:"; echo "$plain"
    echo "speculative:"; echo "$tokens"; cat "$out/err"
    status=1
  else
    echo "ok: $what: speculative = plain ($(echo "$tokens" | wc -l) rows); $summary"
  fi
  if [ "$what" = "tiny_mtp bf16" ]; then
    want="row 0 generated: 326 43 378 422 20 78 148 236 399 433 55 494"
    if ! echo "$tokens" | grep -qx "$want" || ! echo "$summary" | grep -q "8 verify steps, 1.44 tokens per step per row; drafts accepted 7 of 12"; then
      echo "FAILED: tiny_mtp bf16 differs from the fixture's reference"; status=1
    fi
  fi
done
exit $status
