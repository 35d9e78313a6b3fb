// The default pipeline on the whole of DeepSeek-V3: every pass is shown by
// --print-after-all, timed by --time-passes, and reports what it did.
// RUN: dscc compile models/deepseek_v3.dsl --print-after-all --time-passes --pass-report -o - 2>&1 >/dev/null | grep -E "IR Dump|ms |: [0-9]+ linears|MoE layers|GEMMs over|kernels after|activation slab"
// CHECK: // -----// IR Dump After shape-infer //----- //
// CHECK-NEXT: // -----// IR Dump After fold-constants //----- //
// CHECK-NEXT: // -----// IR Dump After dce //----- //
// CHECK-NEXT: // -----// IR Dump After fp8-quant //----- //
// CHECK-NEXT: // -----// IR Dump After cse //----- //
// CHECK-NEXT: // -----// IR Dump After dce //----- //
// CHECK-NEXT: // -----// IR Dump After merge-linears //----- //
// CHECK-NEXT: // -----// IR Dump After node-limited-routing //----- //
// CHECK-NEXT: // -----// IR Dump After fuse //----- //
// CHECK-NEXT: // -----// IR Dump After plan-memory //----- //
// CHECK: fp8-quant
// CHECK: total (
// CHECK: fp8-quant: 662 linears to FP8 (1 kept in higher precision: head, excluded); converted weights 1336.08 GB -> 668.21 GB
// CHECK: merge-linears: 244 FP8 linears merged into 122 GEMMs over concatenated weights
// CHECK: node-limited-routing: 58 MoE layers: dispatch 7456 B per token copy (FP8 + scales + ids + weights), combine 14336 B per partial sum (bf16)
// CHECK: fuse: 5181 ops with a kernel each before, 2300 kernels after
// CHECK: plan-memory: batch 1, seq 4096, ctx 4096: activation slab
// RUN: d=$(mktemp -d); dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --dump-dir=$d -o - >/dev/null && ls $d; rm -rf $d
// CHECK: 00-input.ir
// CHECK-NEXT: 01-shape-infer.ir
// CHECK-NEXT: 02-fold-constants.ir
// CHECK-NEXT: 03-dce.ir
// CHECK-NEXT: 04-fp8-quant.ir
// CHECK-NEXT: 05-cse.ir
// CHECK-NEXT: 06-dce.ir
// CHECK-NEXT: 07-merge-linears.ir
// CHECK-NEXT: 08-node-limited-routing.ir
// CHECK-NEXT: 09-fuse.ir
// CHECK-NEXT: 10-plan-memory.ir
