#!/usr/bin/env bash
# install_test.sh CMAKE SOURCE BUILD PREFIX MAN — installs BUILD into PREFIX (a
# folder inside the build tree, emptied first) and checks what a user gets:
# the installed dscc compiles and measures a model by name from its own
# share/dscc/models (not the source tree's), finds it by model_type, the
# man page (when MAN is 1: help2man was found) and the bash completion are
# installed and the completion completes commands and options; the git
# describe of --version is "unknown" outside a checkout.
set -euo pipefail
CMAKE=$1 SOURCE=$2 BUILD=$3 PREFIX=$4 MAN=$5
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
rm -rf "$PREFIX"
"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >/dev/null
dscc=$PREFIX/bin/dscc
share=$PREFIX/share
[ -x "$dscc" ] || fail "no $dscc"
for f in dscc/models/deepseek_v3.dsl dscc/models/tiny/config.json bash-completion/completions/dscc; do
  [ -s "$share/$f" ] || fail "no $share/$f"
done
if [ "$MAN" = 1 ]; then
  [ -s "$share/man/man1/dscc.1" ] || fail "no man page"
  grep -q '^\.TH DSCC "1"' "$share/man/man1/dscc.1" || fail "dscc.1 is not a man page"
  grep -q 'dscc compile' "$share/man/man1/dscc.1" || fail "dscc.1 lacks the compile command"
fi
unset DSCC_MODEL_PATH
cd "$PREFIX" # away from the source tree: a relative models/ cannot be found by accident
out=$("$dscc" compile deepseek_v3 --config "$share/dscc/models/tiny/config.json" 2>&1) || fail "compile by name: $out"
grep -q '^graph @deepseek_v3 dims(B, S, T)' <<<"$out" || fail "compile by name printed no graph"
out=$("$dscc" stats deepseek_v3 --set num_hidden_layers=4 2>&1) || fail "stats by name: $out"
real=$(cd "$share/dscc/models" && pwd -P)
grep -qF "model deepseek_v3 ($real/deepseek_v3.dsl)" <<<"$out" || fail "stats did not use the installed model: $(head -n 1 <<<"$out")"
if out=$("$dscc" compile no_such_model 2>&1); then fail "an unknown model name compiled"; fi
grep -qF "model 'no_such_model' not found: no no_such_model.dsl in $real (models there: deepseek_v3)" <<<"$out" ||
  fail "unknown model: $out"
# the completion, as bash would call it
out=$(bash -c 'source "$1"
  c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _dscc; echo "${COMPREPLY[*]}"; }
  c dscc comp; c dscc compile --em; c dscc compile --emit=cu; c dscc stats --j; PATH=$2:$PATH c dscc stats deep' \
  _ "$share/bash-completion/completions/dscc" "$PREFIX/bin")
want=$'compile\n--emit=\n--emit=cuda --emit=cubin\n--json\ndeepseek_v3'
[ "$out" = "$want" ] || fail "completion gave:"$'\n'"$out"$'\nexpected:\n'"$want"
# --version's git describe: "unknown" outside a git checkout (git may not look above PREFIX)
mkdir "$PREFIX/nogit"
GIT_CEILING_DIRECTORIES=$PREFIX "$CMAKE" -DSRC="$PREFIX/nogit" -DOUT="$PREFIX/nogit/git.h" -P "$SOURCE/cmake/git_describe.cmake"
grep -qx '#define DSCC_GIT_DESCRIBE "unknown"' "$PREFIX/nogit/git.h" || fail "git describe outside git: $(cat "$PREFIX/nogit/git.h")"
"$dscc" --version | grep -q '^git: [A-Za-z0-9._+-]*$' || fail "--version has no git line"
echo "install_test: ok ($PREFIX)"
