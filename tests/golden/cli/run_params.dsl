// dscc run compiles a model once: it asks the frontend whether the model
// declares logits_last_only (fe_declares_param) and sets it to true only
// then (and without --dump-logits or a --set of it).
// A model without the parameter runs as given:
// RUN: d=$(mktemp -d); printf 'dim B, S;\ninput tokens: i32[B, S];\nweight emb: f32[1024, 16] = "emb";\nweight head: f32[1024, 16] = "head";\noutput logits = linear(embedding(emb, tokens), head);\n' > $d/m.dsl; dscc run $d/m.dsl --random-weights 0 --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1; echo "exit=$?"; dscc run $d/m.dsl --random-weights 0 --tokens tests/fixtures/tiny_bf16/tokens.npy --dump-logits $d/l.npy 2>&1; echo "exit=$?"; ls $d; rm -rf $d
// CHECK-NOT: error
// CHECK: row 0: next token 988
// CHECK: row 1: next token 909
// CHECK: exit=0
// CHECK: row 0: next token 988
// CHECK: exit=0
// CHECK: l.npy
// A model that declares it (here in a file it imports) gets it set: the
// assert shows the binding (a failed first try no longer falls back to a
// second compile without it); with --dump-logits it keeps its default.
// RUN: d=$(mktemp -d); printf 'param logits_last_only: bool = false;\n' > $d/lib.dsl; printf 'import "lib.dsl";\nassert !logits_last_only, "logits_last_only is set";\ndim B, S;\ninput tokens: i32[B, S];\nweight emb: f32[1024, 16] = "emb";\nweight head: f32[1024, 16] = "head";\noutput logits = linear(embedding(emb, tokens), head);\n' > $d/m.dsl; dscc run $d/m.dsl --random-weights 0 --tokens tests/fixtures/tiny_bf16/tokens.npy 2>&1 | sed "s|$d|DIR|g"; echo "exit=${PIPESTATUS[0]}"; dscc run $d/m.dsl --random-weights 0 --tokens tests/fixtures/tiny_bf16/tokens.npy --dump-logits $d/l.npy 2>&1; echo "exit=$?"; rm -rf $d
// CHECK: DIR/m.dsl:2:1: error: assertion failed: logits_last_only is set
// CHECK: exit=1
// CHECK: row 0: next token 988
// CHECK: exit=0
