// microbatch-overlap on the tiny model over 2 nodes x 2 GPUs: two
// micro-batches, compute on stream 0, dispatch/combine on stream 1, every
// cross-stream read an explicit wait; the schedule view shows micro-batch
// 0's dispatch issued while micro-batch 1's attention computes, and the
// overlapped graph gives the same tokens, through prefill and decode.
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --passes='dce,fp8-quant,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2},microbatch-overlap' --emit=schedule --pass-report 2>&1
// CHECK: microbatch-overlap: 2 micro-batches over B_mb: 445 compute ops on stream 0, 20 dispatch/combine on stream 1, 5 stages, 68 cross-stream waits
// CHECK: stream 0  %115..%245  131 ops: reshape x17 fp8_linear x16
// CHECK-NEXT: stream 1  %246..%249    4 ops: dispatch x4   waits for %238 quantize, %231 group_topk, %237 act_scale, %236 mul
// CHECK-NEXT: stream 0  %250..%376  127 ops: reshape x17 fp8_linear x16
// CHECK-NEXT: stream 1  %377..%380    4 ops: dispatch x4
// CHECK-NEXT: stream 0  %381..%387    7 ops: fp8_expert_linear x3 silu x1 mul x1 act_scale x1   waits for %246 dispatch, %247 dispatch, %248 dispatch
// CHECK-NEXT: stream 1  %388..%388    1 ops: combine x1   waits for %387 fp8_expert_linear, %231 group_topk
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --passes='node-limited-routing{nodes=2,gpus-per-node=2},microbatch-overlap' | grep -m2 -E "= (split_batch|kv_cache)" ; true
// CHECK: = split_batch %0 {index=0, parts=2} : i32[B_mb,S] stream(0)
// RUN: dscc run models/deepseek_v3.dsl --weights tests/fixtures/tiny_bf16 --tokens tests/fixtures/tiny_bf16/tokens.npy --passes='node-limited-routing{nodes=2,gpus-per-node=2},microbatch-overlap' --prefill 5
// CHECK: row 0: next token 948
// CHECK-NEXT: row 1: next token 125
// CHECK-NEXT: prefill + decode
// RUN: dscc compile models/deepseek_v3.dsl --emit=schedule --passes=dce
// CHECK: no op is scheduled: run the microbatch-overlap pass
