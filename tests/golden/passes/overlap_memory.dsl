// DeepSeek-V3 placed on 8 nodes x 8 GPUs with the dual micro-batch overlap:
// plan-memory keeps a buffer until the other stream has waited past its
// readers, and the schedule checker (run after every pass) finds every
// pair of values sharing slab bytes ordered. Batch 2: one row per
// micro-batch (the pre-stream-aware plan had 1,910 such hazards here). The
// slab holds the routed experts' world-layout rows, [64*N, ...] at 64 GPUs.
// The plan is the one the CUDA runtime takes: kernel by kernel (a fused
// group's ops read and write while any of them runs), stored values only.
// RUN: d=$(mktemp -d); dscc compile models/deepseek_v3.dsl --passes='shape-infer,fold-constants,dce,fp8-quant,cse,dce,node-limited-routing{nodes=8,gpus-per-node=8},microbatch-overlap,fuse,plan-memory{batch=2}' --verify-each --pass-report -o $d/v3.ir 2>&1; echo "exit=$?"; head -2 $d/v3.ir; rm -rf $d
// CHECK: microbatch-overlap: 2 micro-batches over B_mb
// CHECK: plan-memory: batch 2, seq 4096, ctx 4096: activation slab 88161.35 MB
// CHECK-NOT: error
// CHECK: exit=0
// CHECK: graph @deepseek_v3 dims(B, S, T, B_mb) plan(B=2, S=4096, T=4096, B_mb=1) {
// A batch of 1 splits unequally (1 + 0 rows): the plan holds the larger part,
// and the batch padded to whole micro-batches, as the runtime pads it.
// RUN: d=$(mktemp -d); dscc compile models/deepseek_v3.dsl --passes='shape-infer,fold-constants,dce,fp8-quant,cse,dce,node-limited-routing{nodes=8,gpus-per-node=8},microbatch-overlap,fuse,plan-memory' --verify-each --pass-report -o $d/v3.ir 2>&1; echo "exit=$?"; head -2 $d/v3.ir; rm -rf $d
// CHECK: plan-memory: batch 2, seq 4096, ctx 4096: activation slab 88161.35 MB
// CHECK-NOT: error
// CHECK: exit=0
// CHECK: graph @deepseek_v3 dims(B, S, T, B_mb) plan(B=2, S=4096, T=4096, B_mb=1) {
