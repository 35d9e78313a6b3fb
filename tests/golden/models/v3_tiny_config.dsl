// The same model file bound to a tiny Hugging Face config: 3 layers (1
// dense), 16 experts in 4 groups, YaRN factor 4. KV cache: (32 + 16) x 2
// bytes x 3 layers = 288.
// RUN: dscc stats models/deepseek_v3.dsl --config models/tiny/config.json --seq 64
// CHECK: total                        735,920             459,440       776.44K             288     291
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --passes=none
// CHECK: graph @deepseek_v3 dims(B, S, T) {
// CHECK: {theta=10000.0, interleave=true, factor=4.0, original_max_position=64, beta_fast=32.0, beta_slow=1.0, mscale=1.0, mscale_all_dim=1.0}
// The softmax scale carries YaRN's mscale^2: 40^-0.5 x (0.1 ln 4 + 1)^2
// CHECK: = attention %34, %28, %35 {scale=0.20499101155963545, causal=true} : bf16[B,S,4,32]
// CHECK: weight {name="model.layers.1.mlp.experts.{e}.gate_proj.weight", stack="e", count=16} : bf16[16,40,96]
