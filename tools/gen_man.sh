#!/usr/bin/env bash
# gen_man.sh DSCC HELP2MAN OUT — writes the man page dscc.1 from dscc's own
# help texts (run at build time by CMake): help2man renders `dscc --help`,
# with the version from the first line of `dscc --version` (its other lines
# describe the build machine, not the program), and a COMMANDS section holds
# `dscc help CMD` of every command that --help lists, then `dscc help passes`
# and `dscc help tuning` (support/tune.def's switches).
set -euo pipefail
dscc=$1 help2man=$2 out=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# roff: no-fill text, backslashes escaped, no line taken for a request
roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
cmds=$("$dscc" --help | awk '/^commands:/ {f = 1; next} f && /^$/ {exit} f && $1 != "help" {print $1}')
[ -n "$cmds" ] || { echo "gen_man.sh: no commands in '$dscc --help'" >&2; exit 1; }
{
  echo '[COMMANDS]'
  for c in $cmds; do
    echo ".SS \"dscc $c\""
    echo '.nf'
    "$dscc" help "$c" | roff
    echo '.fi'
  done
  echo '[PASSES]'
  echo '.nf'
  "$dscc" help passes | roff
  echo '.fi'
  echo '[TUNING SWITCHES]'
  echo '.nf'
  "$dscc" help tuning | roff
  echo '.fi'
} >"$tmp/sections.h2m"
version=$("$dscc" --version | head -n 1)
"$help2man" --no-info --name "compiler and runtime for DeepSeek-V3 model graphs (DSL to CUDA)" \
  --version-string "${version#dscc }" --include "$tmp/sections.h2m" --output "$tmp/dscc.1" "$dscc"
mv "$tmp/dscc.1" "$out"
