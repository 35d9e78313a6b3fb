// Numbers (issue 16): a NaN or an infinity in a checkpoint tensor is an
// error naming it, found while loading; NaN logits are an error with exit 3,
// not "next token 0".
// The fixture's last tensor in the file is model.norm.weight, bf16[96]: its
// last element becomes a bf16 NaN (0x7fc0), then -inf (0xff80).
// RUN: d=$(mktemp -d); cp tests/fixtures/tiny_bf16/* $d/; printf '\300\177' | dd of=$d/model.safetensors bs=1 seek=$(( $(wc -c < $d/model.safetensors) - 2 )) conv=notrunc status=none; dscc run models/deepseek_v3.dsl --weights $d --tokens $d/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: error: weight tensor 'model.norm.weight' holds a NaN at element 95 of 96
// CHECK-NOT: next token
// CHECK: exit=1
// RUN: d=$(mktemp -d); cp tests/fixtures/tiny_bf16/* $d/; printf '\200\377' | dd of=$d/model.safetensors bs=1 seek=$(( $(wc -c < $d/model.safetensors) - 2 )) conv=notrunc status=none; dscc run models/deepseek_v3.dsl --weights $d --tokens $d/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: error: weight tensor 'model.norm.weight' holds -inf at element 95 of 96
// CHECK-NOT: next token
// CHECK: exit=1
// Finite weights whose logits are 0 / 0:
// RUN: dscc run tests/fixtures/limits/nan_logits.dsl --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1; echo "exit=$?"
// CHECK: dscc: error: the logits of row 0 at position 0 are NaN (vocabulary entry 0 first)
// CHECK-NOT: next token
// CHECK: exit=3
