dim B, S, T;
input x: bf16[B, S, 16];
weight w: bf16[32, 16] = "w";
weight n: bf16[16] = "n";
let c = kv_cache(rmsnorm(x, n, eps=1e-6), name="c");
output o = linear(c, w);
