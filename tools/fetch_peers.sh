#!/usr/bin/env bash
# fetch_peers.sh — puts the peers' code into .peers/ (ignored, never
# committed), for bench/peer_deepseek.py and bench/peer_deepgemm.py, and so
# that it can be carried to a GPU machine that has no network:
#   .peers/deepseek_v3/  inference/model.py, kernel.py and configs/ of
#                        github.com/deepseek-ai/DeepSeek-V3, its LICENSE-CODE
#                        and COMMIT (the commit they came from);
#   .peers/whl/          the sgl-deep-gemm wheel (DeepGEMM), for CPython 3.12
#                        on x86-64 Linux (pip download; skipped with WHEEL=0).
#   .peers/flashmla/     FlashMLA's csrc/ (github.com/deepseek-ai/FlashMLA) with
#                        its cutlass submodule's include/ and tools/util/include/
#                        at the submodule's commit, and FLASHMLA_COMMIT, for
#                        bench/build_peer_flashmla.sh (skipped with FLASHMLA=0;
#                        FLASHMLA_SRC, CUTLASS_SRC: a git directory or URL each,
#                        default the GitHub repositories).
# usage: tools/fetch_peers.sh [SOURCE]
#   SOURCE: a git directory holding DeepSeek-V3 (a clone or a bare mirror:
#   files are read with `git --git-dir=SOURCE show REV:path`, REV default
#   HEAD), or a git URL (default the GitHub repository), fetched --depth 1.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-https://github.com/deepseek-ai/DeepSeek-V3}"
rev="${REV:-HEAD}"
out=.peers/deepseek_v3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# gitdir_of SRC NAME [COMMIT]: a git directory holding SRC: a local one as it is, a URL's COMMIT (default its HEAD)
# fetched at depth 1 into $tmp/NAME, where it becomes HEAD
gitdir_of() {
  if [ -d "$1" ]; then if [ -d "$1/.git" ]; then echo "$1/.git"; else echo "$1"; fi; return; fi
  git init -q --bare "$tmp/$2"
  git --git-dir="$tmp/$2" fetch -q --depth 1 "$1" "${3:-HEAD}"
  git --git-dir="$tmp/$2" update-ref HEAD FETCH_HEAD
  echo "$tmp/$2"
}

gitdir=$(gitdir_of "$src" deepseek)
commit=$(git --git-dir="$gitdir" rev-parse "$rev^{commit}")
mkdir -p "$tmp/out/configs"
files=$(git --git-dir="$gitdir" ls-tree -r --name-only "$commit" -- inference)
for f in inference/model.py inference/kernel.py inference/configs/config_671B.json; do
  echo "$files" | grep -qx "$f" || { echo "fetch_peers: $f is not in $src at $commit" >&2; exit 1; }
done
for f in $files; do
  case "$f" in
    inference/*.py | inference/configs/*.json | inference/requirements.txt)
      mkdir -p "$tmp/out/$(dirname "${f#inference/}")"
      git --git-dir="$gitdir" show "$commit:$f" > "$tmp/out/${f#inference/}" ;;
  esac
done
git --git-dir="$gitdir" show "$commit:LICENSE-CODE" > "$tmp/out/LICENSE-CODE" 2>/dev/null || true
echo "deepseek-ai/DeepSeek-V3@${commit:0:12}" > "$tmp/out/COMMIT"
# what model.py and kernel.py import, beyond torch and triton: nothing else may be needed on the GPU machine
extra=$(grep -hE '^(import|from) ' "$tmp/out/model.py" "$tmp/out/kernel.py" | awk '{print $2}' | cut -d. -f1 |
        grep -vxE 'math|dataclasses|typing|torch|triton|kernel' | sort -u || true)
[ -z "$extra" ] || echo "fetch_peers: note: model.py/kernel.py also import: $extra" >&2
rm -rf "$out"
mkdir -p .peers
mv "$tmp/out" "$out"
echo "fetch_peers: $out from deepseek-ai/DeepSeek-V3 at ${commit:0:12}"

if [ "${WHEEL:-1}" = 1 ]; then
  mkdir -p .peers/whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .peers/whl "sgl-deep-gemm${DEEPGEMM_VERSION:+==$DEEPGEMM_VERSION}"
  echo "fetch_peers: .peers/whl: $(cd .peers/whl && ls)"
fi

if [ "${FLASHMLA:-1}" = 1 ]; then
  fg=$(gitdir_of "${FLASHMLA_SRC:-https://github.com/deepseek-ai/FlashMLA}" flashmla)
  fc=$(git --git-dir="$fg" rev-parse "HEAD^{commit}")
  sub=$(git --git-dir="$fg" ls-tree "$fc" csrc/cutlass | awk '$2 == "commit" {print $3}')
  [ -n "$sub" ] || { echo "fetch_peers: FlashMLA at $fc has no csrc/cutlass submodule" >&2; exit 1; }
  cg=$(gitdir_of "${CUTLASS_SRC:-https://github.com/NVIDIA/cutlass}" cutlass "$sub")
  rm -rf "$tmp/fm" && mkdir -p "$tmp/fm/csrc/cutlass"
  git --git-dir="$fg" archive "$fc" csrc | tar x -C "$tmp/fm" --exclude csrc/cutlass
  git --git-dir="$cg" archive "$sub" include tools/util/include | tar x -C "$tmp/fm/csrc/cutlass"
  git --git-dir="$fg" show "$fc:LICENSE" > "$tmp/fm/LICENSE" 2>/dev/null || true
  echo "$fc" > "$tmp/fm/FLASHMLA_COMMIT"
  rm -rf .peers/flashmla && mv "$tmp/fm" .peers/flashmla
  echo "fetch_peers: .peers/flashmla from deepseek-ai/FlashMLA at ${fc:0:12} (cutlass ${sub:0:12})"
fi
