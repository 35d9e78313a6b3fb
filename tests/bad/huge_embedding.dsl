// An embedding table of 2^64 bytes (once "next token 0" and exit 0).
dim B, S;
input tokens: i32[B, S];
// expected-error@+1 {{weight: f32[4611686018427387904,4] is too large: more than 2^60 bytes}}
weight table: f32[4611686018427387904, 4] = "table";
output logits = embedding(table, tokens);
