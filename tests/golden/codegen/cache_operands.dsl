// A linear or per-head einsum whose operand is a kv_cache reads it through
// the cache's [B, capacity, ...] layout, so it keeps the generic templates:
// the tensor-core tile and cuBLASLt read dense [M, K] rows.
// RUN: dscc compile %s --emit=cuda | grep -E "^extern"
// CHECK: kv_cache: append the new positions
// CHECK-NEXT: kv_cache: append the new positions
// CHECK-NEXT: linear: 64x64 tile
// CHECK-NEXT: einsum bshk,hnk->bshn
// CHECK-NOT: tensor cores
dim B, S, T;
input x: bf16[B, S, 16];
input y: bf16[B, S, 1, 16];
weight w: bf16[32, 16] = "w";
weight wh: bf16[1, 32, 16] = "wh";
let c = kv_cache(x, name="c");
let ch = kv_cache(y, name="ch");
output o = linear(c, w);
output oh = einsum("bshk,hnk->bshn", ch, wh);
