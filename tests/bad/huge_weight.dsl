// A weight of 2^64 bytes: its element count times 4 overflows int64 (the
// CPU executor once wrapped it to 0 and read past its buffer).
dim B, S;
input tokens: i32[B, S];
weight emb: f32[1000, 4] = "emb";
// expected-error@+1 {{weight: f32[4611686018427387904,4] is too large: more than 2^60 bytes}}
weight w: f32[4611686018427387904, 4] = "w";
output logits = linear(embedding(emb, tokens), w);
