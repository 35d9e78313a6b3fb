#!/usr/bin/env bash
# run_golden.sh DSCC FILECHECK FILE — runs a golden test.
# Every `// RUN: pipeline` line of FILE is run with bash from the repo root,
# `%s` replaced by FILE and `dscc` meaning the dscc under test; the output of
# all RUN lines (stdout and stderr, in order) is checked by FILECHECK against
# FILE's CHECK lines. Each RUN line must exit with the status of the
# `// EXIT: N` line (default 0).
set -u
DSCC=$1 FILECHECK=$2 FILE=$3
dscc() { "$DSCC" "$@"; }
export -f dscc 2>/dev/null
export DSCC
# the goldens pin the default generated code: no tile chosen from outside
unset DSCC_GEMM_TILE
want_exit=$(sed -n 's|.*// EXIT: *\([0-9][0-9]*\).*|\1|p' "$FILE" | head -n 1)
want_exit=${want_exit:-0}
mapfile -t runs < <(sed -n 's|.*// RUN: *||p' "$FILE")
if [ ${#runs[@]} -eq 0 ]; then
  echo "$FILE: error: no RUN lines" >&2
  exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
for cmd in "${runs[@]}"; do
  cmd=${cmd//%s/$FILE}
  bash -o pipefail -c "$cmd" >>"$out" 2>&1
  rc=$?
  if [ "$rc" -ne "$want_exit" ]; then
    echo "$FILE: error: RUN line exited $rc, expected $want_exit: $cmd" >&2
    status=1
  fi
done
if ! "$FILECHECK" "$FILE" <"$out"; then
  echo "--- output of the RUN lines ---" >&2
  head -c 20000 "$out" >&2
  status=1
fi
exit $status
