dim B, S;
input x: bf16[B, S, 7168];
weight w: bf16[1536, 7000] = "model.layers.0.self_attn.q_a_proj.weight";
// expected-error@+1 {{linear: x bf16[B,S,7168] has 7168 input features but w is bf16[1536,7000]}}
output y = linear(x, w);
