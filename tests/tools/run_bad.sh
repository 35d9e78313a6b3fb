#!/usr/bin/env bash
# run_bad.sh DSCC FILE — a bad input must be rejected cleanly.
# `dscc compile FILE` (for .dsl) or `dscc opt FILE` (for .ir), plus the words
# of an `// ARGS: ...` line, must exit with status 1 — not 0, not a crash —
# and print every expected diagnostic:
#   // expected-error@+N {{text}}   an error at line (this line + N) whose
#                                   message contains text (@-N, or no @ for
#                                   this line)
#   FILE.expected                   one required substring of the output per
#                                   line, for inputs that cannot hold comments
# A file with no expectation at all fails, so no bad-input test is vacuous.
set -u
DSCC=$1 FILE=$2
case "$FILE" in
  *.dsl) sub=compile ;;
  *.ir) sub=opt ;;
  *) echo "$FILE: error: unknown kind of bad input" >&2; exit 1 ;;
esac
args=$(sed -n 's|.*// ARGS: *||p' "$FILE" 2>/dev/null | head -n 1)
# shellcheck disable=SC2086
out=$("$DSCC" "$sub" "$FILE" $args 2>&1)
rc=$?
fail=0
if [ "$rc" -ne 1 ]; then
  echo "$FILE: error: dscc $sub exited $rc, expected 1" >&2
  fail=1
fi
nexpect=0
# Lines of the form "LINE<TAB>TEXT" for each expected-error comment.
while IFS=$'\t' read -r line text; do
  [ -n "$line" ] || continue
  nexpect=$((nexpect + 1))
  if ! grep -F -- "$FILE:$line:" <<<"$out" | grep -F -- "error:" | grep -qF -- "$text"; then
    echo "$FILE:$line: error: expected an error containing '$text' at line $line" >&2
    fail=1
  fi
done < <(LC_ALL=C awk '{
    s = $0
    while (match(s, /expected-error(@[+-][0-9]+)?[ ]*\{\{[^}]*\}\}/)) {
      m = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
      off = 0
      if (match(m, /@[+-][0-9]+/)) off = substr(m, RSTART + 1, RLENGTH - 1) + 0
      match(m, /\{\{[^}]*\}\}/); txt = substr(m, RSTART + 2, RLENGTH - 4)
      printf "%d\t%s\n", NR + off, txt
    }
  }' "$FILE")
if [ -f "$FILE.expected" ]; then
  while IFS= read -r text; do
    [ -n "$text" ] || continue
    nexpect=$((nexpect + 1))
    if ! grep -qF -- "$text" <<<"$out"; then
      echo "$FILE: error: expected output containing '$text'" >&2
      fail=1
    fi
  done <"$FILE.expected"
fi
if [ "$nexpect" -eq 0 ]; then
  echo "$FILE: error: no expected-error comments and no $FILE.expected" >&2
  fail=1
fi
if [ "$fail" -ne 0 ]; then
  echo "--- dscc output ---" >&2
  head -c 8000 <<<"$out" >&2
fi
exit $fail
