// Inputs are regular files of bounded size (issue 16): a device, a FIFO with
// no writer or a directory is an error naming the file, never a hang or a
// read without end; a text input over 64 MiB is refused. Every command runs
// under `timeout` so a regression fails instead of hanging; files are made
// in a mktemp folder.
// RUN: timeout 20 "$DSCC" compile /dev/zero; echo "exit=$?"
// CHECK: /dev/zero: error: is not a regular file (a character device)
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); echo 'import "/dev/zero";' > $d/m.dsl; timeout 20 "$DSCC" compile $d/m.dsl 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: /dev/zero: error: is not a regular file (a character device)
// CHECK-NEXT: DIR/m.dsl:1:1: note: imported here
// CHECK: exit=1
// RUN: d=$(mktemp -d); mkfifo $d/m.dsl; timeout 20 "$DSCC" compile $d/m.dsl 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/m.dsl: error: is not a regular file (a FIFO)
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); mkfifo $d/g.ir; timeout 20 "$DSCC" opt $d/g.ir 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/g.ir: error: is not a regular file (a FIFO)
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); truncate -s 65M $d/big.dsl; timeout 20 "$DSCC" compile $d/big.dsl 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/big.dsl: error: is 68157440 bytes, over the limit of 64 MiB for this input
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); mkfifo $d/config.json; timeout 20 "$DSCC" compile models/deepseek_v3.dsl --config $d/config.json 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/config.json: error: is not a regular file (a FIFO)
// CHECK: exit=1
// RUN: d=$(mktemp -d); mkfifo $d/t.npy; timeout 20 "$DSCC" run models/deepseek_v3.dsl --random-weights 0 --config models/tiny/config.json --tokens $d/t.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/t.npy: error: is not a regular file (a FIFO)
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); mkdir $d/t.npy; timeout 20 "$DSCC" run models/deepseek_v3.dsl --random-weights 0 --config models/tiny/config.json --tokens $d/t.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/t.npy: error: is not a regular file (a directory)
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); cp tests/fixtures/tiny_bf16/config.json $d/; mkfifo $d/model.safetensors; timeout 20 "$DSCC" run models/deepseek_v3.dsl --weights $d --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/model.safetensors: error: is not a regular file (a FIFO)
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); cp tests/fixtures/tiny_bf16/config.json $d/; echo '{"weight_map": {"model.embed_tokens.weight": "shard1.safetensors"}}' > $d/model.safetensors.index.json; mkfifo $d/shard1.safetensors; timeout 20 "$DSCC" run models/deepseek_v3.dsl --weights $d --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/shard1.safetensors: error: is not a regular file (a FIFO)
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); cp tests/fixtures/tiny_bf16/config.json $d/; mkfifo $d/model.safetensors.index.json; timeout 20 "$DSCC" run models/deepseek_v3.dsl --weights $d --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/model.safetensors.index.json: error: is not a regular file (a FIFO)
// CHECK-NEXT: exit=1
// RUN: head -c 70000000 /dev/zero | timeout 20 "$DSCC" opt -; echo "exit=$?"
// CHECK: <stdin>: error: is over the limit of 64 MiB for this input
// CHECK-NEXT: exit=1
