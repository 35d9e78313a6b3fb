// The fused store passes and the embedding in their vector form (gen_vec.c):
// 8 consecutive elements a thread, 16-byte loads and stores, a RoPE pair's
// cosine and sine once a pair, under a merged act_scale a half-warp a
// 128-wide scale block; DSCC_ELEM_VEC=0 gives the old forms (a thread an
// element, a warp a scale block).
// RUN: dscc compile %s --emit=cuda | grep -E "^// g[0-9]+_|^extern .*p0_[a-z0-9_]*\(Args|^__device__ __forceinline__ void c[0-9]+\("
// RUN: DSCC_ELEM_VEC=0 dscc compile %s --emit=cuda | grep -E "^// g[0-9]+_(slice|embedding)|^extern .*p0_[a-z0-9_]*\(Args" | grep -v DSCC_ENTRY
// CHECK: g0_slice_rope
// CHECK-NEXT: void c0(const Args &a, long long i, float *o) {  // slice: 8 values at i
// CHECK-NEXT: void c1(const Args &a, long long i, float *o) {  // rope: 8 values at i
// CHECK-NEXT: p0_slice_rope(Args a) {  // store: 8 elements a thread
// CHECK-NEXT: g1_slice
// CHECK-NEXT: // slice: 8 values at i
// CHECK-NEXT: p0_slice(Args a) {  // store: 8 elements a thread
// CHECK-NEXT: g2_slice_silu_mul_act_scale
// CHECK: // mul: 8 values at i
// CHECK-NEXT: p0_slice_silu_mul_act_scale(Args a) {  // act_scale and store: 8 elements a thread, a half-warp a 128-wide scale block
// CHECK: g6_embedding
// CHECK-NEXT: p0_embedding(Args a) {  // embedding: 8 elements a thread
// CHECK: g0_slice_rope
// CHECK-NEXT: p0_slice_rope(Args a) {  // store
// CHECK-NOT: 8 elements
// CHECK: g2_slice_silu_mul_act_scale
// CHECK-NEXT: p0_slice_silu_mul_act_scale(Args a) {  // act_scale and store: one warp per 128-wide block
// CHECK: g6_embedding
// CHECK-NEXT: p0_embedding(Args a) {  // embedding
// CHECK-NOT: 8 elements
dim B, S;
input x: bf16[B, S, 4, 96];
input positions: i32[B, S];
input h: bf16[B, S, 512];
input ids: i32[B, S];
weight tab: bf16[1000, 256] = "tab";
weight w: bf16[128, 256] = "w";
let pe = slice(x, axis=-1, start=32, len=64);
output n = slice(x, axis=-1, start=0, len=32);
output q = rope(pe, positions, theta=10000.0, interleave=true);
output y = silu(linear(silu(slice(h, axis=-1, start=0, len=256)) * slice(h, axis=-1, start=256, len=256), w));
output e = embedding(tab, ids);
