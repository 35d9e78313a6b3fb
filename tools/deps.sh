#!/usr/bin/env bash
# deps.sh — installs, through apt, the Debian packages dscc builds with when
# any is missing; a no-op when all are present. Sourced by main.sh and test.sh.
#   cmake, make, gcc, pkg-config   build
#   g++                            the emulated CUDA device of emu.test_gpu_ops
#   flex, bison                    the DSL's lexer and parser generators
#   libcjson-dev                   config.json and --json output
#   libpcre2-dev                   the tokenizer's pre-tokenizer regexes (Unicode properties)
#   libcmocka-dev                  unit tests
#   libxxhash-dev                  kernel-cache keys
#   help2man                       the man page dscc.1 (from dscc --help)
#   clang                          libFuzzer harnesses (tools/fuzz.sh only)
#   openmpi-bin                    mpirun, one of the launchers emu.dist starts dscc run with
set -euo pipefail
dscc_deps() {
  local pkgs=(cmake make gcc g++ pkg-config flex bison libcjson-dev libpcre2-dev libcmocka-dev libxxhash-dev help2man openmpi-bin)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dscc: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
dscc_deps
