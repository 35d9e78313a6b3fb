// Routing kernels: a row of at most 1,024 scores is one warp's (values in
// registers, a shuffle argmax per pick); a longer row, or a selection that
// could run out of candidates (more picks than the kept groups hold), is one
// thread's loop. Both rank as the CPU does (NaN as -inf, ties to the lower
// index); every kernel compiles with NVRTC.
// RUN: dscc compile %s --emit=cuda | grep -E "^extern"
// CHECK: group_topk: one warp per row
// CHECK-NEXT: topk: one warp per row
// CHECK-NEXT: group_topk
// CHECK-NOT: one warp
// CHECK-NEXT: topk
// CHECK-NOT: one warp
// RUN: d=$(mktemp -d); DSCC_CACHE_DIR=$d/cache dscc compile %s --emit=cubin -o $d/cubin 2>&1 | tail -1; rm -rf $d
// CHECK: wrote 4 cubins (4 modules, identical ones once) of 4 kernels
dim R;
input s: f32[R, 256];
input l: f32[R, 2048];
output a = group_topk(s, k=8, groups=8, topk_groups=4, group_top=2);
output b = topk(s, k=8);
output c = group_topk(l, k=8, groups=8, topk_groups=4, group_top=2);
output d = topk(l, k=8);
