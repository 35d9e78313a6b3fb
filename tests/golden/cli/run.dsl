// dscc run: the tiny fixture end to end, with random weights, and the
// errors a user meets (CLI values, tokens, corrupt or mismatched checkpoints).
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --precision bf16
// (948 and 125 are also the argmax of transformers' logits.npy at the last positions)
// CHECK: row 0: next token 948
// CHECK-NEXT: row 1: next token 125
// RUN: dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 3 --tokens tests/fixtures/tiny_bf16/tokens.npy --prefill 4 --generate 3
// CHECK: row 1 generated:
// CHECK: prefill + decode
// RUN: dscc run models/deepseek_v3.dsl --random-weights 0 --tokens tests/fixtures/tiny_bf16/tokens.npy --backend cuda; echo "exit=$?"
// CHECK: the GPU backend needs an NVIDIA GPU and driver
// CHECK-NEXT: exit=3
// RUN: dscc run models/deepseek_v3.dsl --random-weights 0 --config models/tiny/config.json; echo "exit=$?"
// CHECK: give the input: --prompt TEXT, --prompt-file F, --chat or --tokens IDS.npy
// CHECK: exit=2
// RUN: dscc run models/deepseek_v3.dsl --random-weights 0 --config models/tiny/config.json --tokens models/tiny/config.json; echo "exit=$?"
// CHECK: models/tiny/config.json: error: not a NumPy .npy file
// CHECK: exit=1
// RUN: dscc run models/deepseek_v3.dsl --random-weights 0 --tokens tests/fixtures/tiny_bf16/tokens.npy --set num_hidden_layers=4; echo "exit=$?"
// CHECK: f32 values (56.3 GiB), over the CPU executor's limit of 2147483648; shrink the model with --config or --set
// CHECK: exit=1
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --set hidden_size=64; echo "exit=$?"
// CHECK: tests/fixtures/tiny_bf16/model.safetensors: error: tensor 'model.embed_tokens.weight' is BF16[1000,96] in the checkpoint but the model expects bf16[1000,64] (does the config match the weights?)
// CHECK: exit=1
// RUN: d=$(mktemp -d); cp tests/fixtures/tiny_bf16/* $d/; head -c 700000 tests/fixtures/tiny_bf16/model.safetensors > $d/model.safetensors; dscc run models/deepseek_v3.dsl --weights $d --tokens $d/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: is past the end of the data (684520 bytes; truncated file?)
// CHECK-NEXT: DIR/model.safetensors: note: 105 more tensors end past the data
// CHECK: exit=1
// RUN: d=$(mktemp -d); printf '\377\377\377\377\377\377\377\177{}' > $d/model.safetensors; dscc run models/deepseek_v3.dsl --weights $d --config models/tiny/config.json --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1 | sed "s|$d|DIR|g"; rm -rf $d
// CHECK: DIR/model.safetensors: error: header length 9223372036854775807 is over the 100 MB limit
// RUN: d=$(mktemp -d); dscc run models/deepseek_v3.dsl --weights $d --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1 | sed "s|$d|DIR|g"; rm -rf $d
// CHECK: DIR: error: no model.safetensors or model.safetensors.index.json in this directory
// Without --dump-logits the run compiles the model with logits_last_only (the
// LM head on each step's last position); asking for every position's logits
// of a model that gives only the last one is an error, not a short file.
// RUN: d=$(mktemp -d); dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --set logits_last_only=true --dump-logits $d/l.npy; echo "exit=$?"; ls $d; rm -rf $d
// CHECK: error: --dump-logits needs every position's logits, but the model gives only the last (logits_last_only)
// CHECK-NEXT: exit=1
