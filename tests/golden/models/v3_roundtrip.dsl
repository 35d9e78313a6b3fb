// The printed IR of the whole model reads back byte-identically, and a
// config without rope_scaling gives plain RoPE with an unscaled softmax.
// RUN: diff <(dscc compile models/deepseek_v3.dsl) <(dscc compile models/deepseek_v3.dsl | dscc opt) && echo IDENTICAL
// CHECK: IDENTICAL
// RUN: dscc compile models/deepseek_v3.dsl --set num_hidden_layers=1 --set first_k_dense_replace=0 --set rope_type=default --passes=none | grep -E "= (rope|attention) "
// CHECK: = rope %18, %1 {theta=10000.0, interleave=true} : bf16[B,S,128,64]
// CHECK-NOT: factor=
// CHECK: = attention %34, %28, %35 {scale=0.07216878364870322, causal=true} : bf16[B,S,128,512]
