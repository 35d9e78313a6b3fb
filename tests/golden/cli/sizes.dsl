// Sizes are checked (issue 16): a tensor whose element count or byte size
// overflows int64, or exceeds what an executor holds, is a located error
// with exit 1, never a crash or a silent answer.
// RUN: dscc run tests/bad/huge_weight.dsl --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: tests/bad/huge_weight.dsl:7:1: error: weight: f32[4611686018427387904,4] is too large: more than 2^60 bytes
// CHECK: exit=1
// RUN: dscc run tests/bad/huge_embedding.dsl --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: tests/bad/huge_embedding.dsl:5:1: error: weight: f32[4611686018427387904,4] is too large
// CHECK-NOT: next token
// CHECK: exit=1
// RUN: dscc run tests/fixtures/limits/big_table.dsl --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: error: the weights need 4398046511104 f32 values (16384.0 GiB), over the CPU executor's limit of 2147483648
// CHECK: exit=1
// RUN: dscc run tests/fixtures/limits/big_value.dsl --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy; echo "exit=$?"
// CHECK: tests/fixtures/limits/big_value.dsl:10:23: error: mul f32[B,S,4,65536,65536] holds 274877906944 elements, over the CPU executor's limit of 2147483648
// CHECK: exit=1
// hidden_size = 2^50: the embedding alone is 2^68 bytes
// RUN: dscc stats models/deepseek_v3.dsl --set hidden_size=1125899906842624; echo "exit=$?"
// CHECK: error: weight: bf16[129280,1125899906842624] is too large: more than 2^60 bytes
// CHECK-NOT: parameters:
// CHECK: exit=1
// hidden_size = 2^38: every tensor fits, their sum does not
// RUN: dscc stats models/deepseek_v3.dsl --set hidden_size=274877906944; echo "exit=$?"
// CHECK: .mlp.experts.{e}.down_proj.weight: the model's parameter count overflows int64
// CHECK-NOT: parameters:
// CHECK: exit=1
