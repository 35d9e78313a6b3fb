model tiny;
// seed: a small complete model
param hidden: int = 64;
param layers: int = 2;
param eps: float = 1e-6 from "rms_norm_eps";
dim B, S, T;
input tokens: i32[B, S];
fn mlp(x, l) {
  weight up: bf16[128, hidden] = "model.layers.{l}.mlp.up_proj.weight";
  weight down: bf16[hidden, 128] = "model.layers.{l}.mlp.down_proj.weight";
  return linear(silu(linear(x, up)), down);
}
weight emb: bf16[1000, hidden] = "model.embed_tokens.weight";
let h = embedding(emb, tokens);
for l in 0 .. layers {
  weight n: bf16[hidden] = "model.layers.{l}.norm.weight";
  h = h + mlp(rmsnorm(h, n, eps=eps), l);
}
let a, b = split(h, [32, 32], axis=-1);
output logits = cast(a * 2.0, f32);
