dim B, S;
input tokens: i32[B, S];
weight emb: bf16[10, 256] = "emb";
weight w: bf16[256, 256] = "w";
weight head: bf16[10, 256] = "head";
let h = embedding(emb, tokens);
output logits = cast(linear(silu(linear(h, w)), head), f32);
