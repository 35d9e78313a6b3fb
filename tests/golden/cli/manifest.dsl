// --emit=cubin on the tiny model: each distinct module is written once (no
// two .cubin files alike: module sources that compile to the same bytes
// share a file), with manifest.json naming,
// for every kernel, a module file that exists and entry points that module
// defines (its ELF has their .text sections), and launches at the dims of
// the memory plan.
// RUN: d=$(mktemp -d); DSCC_CACHE_DIR=$d/cache dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --emit=cubin -o $d/out 2>&1 | sed -e 's/in [0-9.]* s/in T s/' -e "s|$d|DIR|"; cd $d/out; echo "files: $(ls *.cubin | wc -l) cubins"; echo "duplicates: $(md5sum *.cubin | cut -c1-32 | sort | uniq -d | wc -l)"; echo "manifest: $(grep -c '"file":' manifest.json) modules, $(grep -c '"name":' manifest.json) kernels"; awk -F'"' '/"module":/ {m = $4} /"entry":/ {print m, $4}' manifest.json | sort -u | while read m e; do grep -aq "\.text\.$e" "$m" || echo "missing: $m $e"; done; echo "kernels of a missing module: $(grep '"module":' manifest.json | cut -d'"' -f4 | sort -u | while read m; do [ -f "$m" ] || echo "$m"; done | wc -l)"; sed -n '/"dims":/,/"dims_from"/p' manifest.json | tr -d '\t\n'; echo; sed -n '/"name":.*"g3_rmsnorm/,/}]/p' manifest.json | tr -d '\t\n'; echo; cd /; rm -rf $d
// CHECK: compiled 34 modules for 87 kernels with NVRTC (0 from the cache, 0 damaged cache entries compiled again) in T s
// CHECK-NEXT: wrote 34 cubins (34 modules, identical ones once) of 87 kernels and manifest.json to DIR/out/
// CHECK-NEXT: files: 34 cubins
// CHECK-NEXT: duplicates: 0
// CHECK-NEXT: manifest: 34 modules, 87 kernels
// CHECK-NOT: missing
// CHECK: kernels of a missing module: 0
// CHECK-NEXT: "dims":{"B":1,"S":4096,"T":4096},"dims_from":"plan-memory",
// CHECK-NEXT: "name":"g3_rmsnorm_act_scale_quantize","module":"g3_rmsnorm_act_scale_quantize.cubin","loc":"models/deepseek_v3.dsl:160:18","phases":[{"entry":"p0_rmsnorm_act_scale_quantize","launch":"block","items":4096,"grid":4096,"block":256,"shared_memory":0}]
