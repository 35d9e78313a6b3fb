dim B, S, T;
input x: bf16[B, S, 4, 8];
input pos: i32[B, S];
let q = rope(x, pos, theta=10000.0, interleave=true, factor=4.0, original_max_position=64, beta_fast=32.0, beta_slow=1.0);
let c = kv_cache(slice(q, axis=2, start=0, len=1), name="c");
output o = attention(q, c, c, scale=0.3, causal=true);
