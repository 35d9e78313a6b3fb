// DeepSeek-V3's MoE gate after the router GEMM (sigmoid, + bias,
// group_topk, gather, optionally normalised, optionally scaled) is one
// kernel, codegen/kernels/route_topk.cuh: the fast group form when a group
// is a power-of-two run of whole lanes (256 experts in 8 groups: 4 lanes),
// the general one otherwise (80 experts in 5 groups). A chain whose scores
// are read elsewhere too keeps the generic kernels. Every kernel compiles
// with NVRTC.
// RUN: dscc compile %s --emit=cuda | grep -E "^// g[0-9]+_|^#define (DSCC_ENTRY|RT_SEG|RT_NORM|RT_SCALE) |^extern .*p0_[a-z_]*\(Args"
// CHECK: // g0_sigmoid_add_group_topk_gather: 10 IR ops
// CHECK-NEXT: #define DSCC_ENTRY p0_route_topk
// CHECK-NEXT: #define RT_SEG 4
// CHECK-NEXT: #define RT_NORM 1
// CHECK-NEXT: #define RT_SCALE 2.500000000e+00f
// CHECK: // g1_sigmoid_add_group_topk_gather: 4 IR ops
// CHECK-NEXT: #define DSCC_ENTRY p0_route_topk
// CHECK-NEXT: #define RT_SEG 0
// CHECK-NEXT: #define RT_NORM 0
// CHECK-NEXT: #define RT_SCALE 1.0f
// CHECK: // g2_sigmoid_add: 2 IR ops
// CHECK-NEXT: store
// CHECK-NEXT: // g3_group_topk: 1 IR op
// CHECK-NEXT: group_topk: one warp per row
// CHECK-NEXT: // g4_gather: 1 IR op
// CHECK-NOT: route_topk
// RUN: d=$(mktemp -d); DSCC_CACHE_DIR=$d/cache dscc compile %s --emit=cubin -o $d/cubin 2>&1 | tail -1 | sed "s|$d|DIR|"; rm -rf $d
// CHECK: wrote 6 cubins (6 modules, identical ones once) of 6 kernels and manifest.json to DIR/cubin/
dim B, S;
input x: f32[B, S, 256];
input y: f32[B, S, 80];
input z: f32[B, S, 64];
input b1: f32[256];
input b2: f32[80];
input b3: f32[64];
let s1 = sigmoid(x);
let i1 = group_topk(s1 + b1, k=8, groups=8, topk_groups=4, group_top=2);
let w1 = gather(s1, i1, axis=-1);
output ids1 = i1;
output wts1 = w1 / (sum(w1, axis=-1, keepdim=true) + 1e-20) * 2.5;
let s2 = sigmoid(y);
let i2 = group_topk(s2 + b2, k=6, groups=5, topk_groups=2, group_top=3);
output ids2 = i2;
output wts2 = gather(s2, i2, axis=-1);
let s3 = sigmoid(z);
let i3 = group_topk(s3 + b3, k=4, groups=4, topk_groups=2, group_top=2);
output ids3 = i3;
output wts3 = gather(s3, i3, axis=-1) * 2.0;
output scores3 = s3;
