#!/bin/sh
# cubins.sh — the sm_90a cubins NVRTC builds from the kernels, to show that a
# change meant to leave them alone (a helper moved to a shared header, a
# stand-in replaced by an include) does: run it on the build before and on
# the build after, then compare the two folders.
#
#   tools/cubins.sh BUILD OUT [SET ...]   writes OUT/<set>/ for each switch set: the modules of a two-layer
#                                         V3 (`dscc compile --emit=cubin`, as bench_gpu builds it) and
#                                         files.txt, the kernel files its modules take; and OUT/alone/, every
#                                         kernel file compiled on its own (tools/kernel_cubins.c)
#   tools/cubins.sh --diff A B            compares two such folders' cubins and manifests (exit 1 on a difference);
#                                         for each cubin that differs, every kernel's registers and frame (local
#                                         memory) in both (tools/cubin_regs.py), "ROSE" where B's are higher
#
# A SET is one argument of space-separated words: DSCC_X=V sets that switch,
# name=value sets a model parameter (dscc compile --set), `default` none. With
# no SET, the sets below: each selects kernel files or forms the defaults do
# not. The kernel cache is OUT/../cubins-cache (DSCC_CACHE_DIR overrides):
# it is keyed by the whole text, so only changed modules compile again.
set -eu

if [ "${1:-}" = "--diff" ]; then
    [ $# -eq 3 ] || { echo "usage: tools/cubins.sh --diff A B" >&2; exit 2; }
    a=$2 b=$3 n=0 bad=0
    for f in $(cd "$a" && find . -type f \( -name '*.cubin' -o -name manifest.json \) | sort); do
        n=$((n + 1))
        if [ ! -f "$b/$f" ]; then echo "only in $a: $f"; bad=1
        elif ! cmp -s "$a/$f" "$b/$f"; then
            echo "differs: $f"
            bad=1
            case $f in *.cubin) python3 "$(dirname "$0")/cubin_regs.py" "$a/$f" "$b/$f" | sed 's/^/    /' ;; esac
        fi
    done
    for f in $(cd "$b" && find . -type f \( -name '*.cubin' -o -name manifest.json \) | sort); do
        [ -f "$a/$f" ] || { echo "only in $b: $f"; bad=1; }
    done
    [ $bad -eq 0 ] && echo "identical: $n files"
    exit $bad
fi

[ $# -ge 2 ] || { echo "usage: tools/cubins.sh BUILD OUT [SET ...] | --diff A B" >&2; exit 2; }
build=$(cd "$1" && pwd) out=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
: "${DSCC_CACHE_DIR:=$(dirname "$out")/cubins-cache}"
export DSCC_CACHE_DIR
if [ $# -eq 0 ]; then
    set -- "default" \
        "DSCC_SKINNY_PIPE=0" "DSCC_SKINNY_PIPE=0 DSCC_SKINNY=split=4" "DSCC_SKINNY_V2=1" \
        "DSCC_SKINNY_BULK=1" "DSCC_SKINNY_BULK=1 DSCC_SKINNY=split=2" \
        "DSCC_EXPERT_V2=1" "DSCC_EXPERT_V2=ring=0" "DSCC_EXPERT_TMA=1" "DSCC_EXPERT_TMA=2" "DSCC_EXPERT_TMA=3,mt=2" \
        "DSCC_TMA_V2=0" "DSCC_TMA_CLUSTER=1" \
        "attn_impl=naive" "attn_impl=naive DSCC_ATTN_WGMMA=0" "attn_impl=naive DSCC_ATTN_WGMMA=2" \
        "DSCC_EINSUM_ROWS=64" "DSCC_MLA_V3=3" \
        "DSCC_MLA_V3=0" "DSCC_MLA_V3=2" "DSCC_MLA_V3=4" "DSCC_MLA_TMA=0" "DSCC_MLA_MC=1" "DSCC_MLA_QREG=2" \
        "DSCC_MLA_PP=1 DSCC_MLA_QREG=1" "DSCC_MLA_PP=2" "DSCC_MLA_DSM=1" "DSCC_MLA_FUSE=1" "DSCC_MLA_PREG=1" \
        "DSCC_MLA_LEAN=6" "DSCC_MLA_PART_BF16=1"
fi

# the compile-alone instances
nvrtc=$(sed -n 's/^DSCC_NVRTC_LIB:FILEPATH=//p' "$build/CMakeCache.txt")
cc -std=c11 -O1 -I"$root" "$root/tools/kernel_cubins.c" "$build/libdscc_core.a" -o "$out/.kernel_cubins" \
    -Wl,-rpath,"$(dirname "$nvrtc")" "$nvrtc" -lcjson -lpcre2-8 -lxxhash -lpthread -lm -ldl
mkdir -p "$out/alone"
"$out/.kernel_cubins" "$out/alone"
rm -f "$out/.kernel_cubins"

for s in "$@"; do
    dir=$out/$(printf '%s' "$s" | sed 's/[^A-Za-z0-9_.]/_/g')
    mkdir -p "$dir"
    envs="" sets="--set num_hidden_layers=2 --set first_k_dense_replace=1 --set num_nextn_predict_layers=0 --set logits_last_only=true"
    for w in $s; do
        case $w in
        default) ;;
        DSCC_*=*) envs="$envs $w" ;;
        *=*) sets="$sets --set $w" ;;
        *) echo "cubins.sh: '$w' in set '$s' is neither DSCC_X=V nor name=value" >&2; exit 2 ;;
        esac
    done
    # shellcheck disable=SC2086 # the words are the set's
    env $envs "$build/dscc" compile "$root/models/deepseek_v3.dsl" $sets --emit=cuda \
        | sed -n 's|^// ---- codegen/kernels/\([a-z0-9_]*\)\.cuh$|\1|p' | sort | uniq -c > "$dir/files.txt"
    # shellcheck disable=SC2086
    env $envs "$build/dscc" compile "$root/models/deepseek_v3.dsl" $sets --emit=cubin -o "$dir" > /dev/null
    n=0
    for f in "$dir"/*.cubin; do [ -f "$f" ] && n=$((n + 1)); done
    echo "$s: $n modules; files: $(awk '{printf "%s ", $2}' "$dir/files.txt")"
done
