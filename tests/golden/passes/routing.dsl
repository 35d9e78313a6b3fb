// node-limited-routing on DeepSeek-V3 at 8 nodes x 8 GPUs: group g on node g,
// so group-limited top-k (4 of 8 groups) reaches at most 4 nodes. A token
// copy is the FP8 payload, 7168 bytes + 56 f32 scales, plus its 8 expert ids
// and 8 routing weights = 7456 bytes; a token crosses to at most 4 remote
// nodes (29,824 bytes) against 7 without the limit. Combine returns one
// bf16 partial sum (14,336 bytes) per node and per GPU used, as DeepEP does.
// On one node nothing crosses nodes. Asking for 2 nodes rewrites the routers.
// RUN: dscc compile models/deepseek_v3.dsl --passes='dce,fp8-quant,cse,dce,node-limited-routing{nodes=8,gpus-per-node=8,max-nodes=4}' --pass-report -o - >/dev/null
// CHECK: node-limited-routing: 58 MoE layers: dispatch 7456 B per token copy (FP8 + scales + ids + weights), combine 14336 B per partial sum (bf16); inter-node per token: dispatch <= 29824 B (expected 23676), combine <= 57344 B (expected 45522); unlimited routing: dispatch <= 52192 B (expected 34542), one copy per expert 59648 B; NVLink per token: dispatch <= 59648 B (expected 48013), combine <= 114688 B (expected 92316)
// CHECK-NEXT: node-limited-routing: 8 nodes x 8 GPUs, max 4 nodes per token: 232 dispatches, 58 combines
// RUN: d=$(mktemp -d); dscc compile models/deepseek_v3.dsl --passes='dce,fp8-quant,cse,dce,node-limited-routing{nodes=1,gpus-per-node=8}' --pass-report -o $d/v3.ir; rm -rf $d
// CHECK: node-limited-routing: 58 MoE layers: dispatch 7456 B per token copy (FP8 + scales + ids + weights), combine 14336 B per partial sum (bf16); inter-node per token: dispatch <= 0 B (expected 0), combine <= 0 B (expected 0); unlimited routing: dispatch <= 0 B (expected 0), one copy per expert 59648 B; NVLink per token: dispatch <= 52192 B (expected 23676), combine <= 100352 B (expected 45522)
// CHECK-NEXT: node-limited-routing: 1 nodes x 8 GPUs, max 1 nodes per token: 232 dispatches, 58 combines
// The world layout on the tiny model over 2 x 2 GPUs: x, its scales, the ids
// and the weights dispatched to [4*B*S, ...] rows, the expert GEMMs on the
// dispatched ids, the weighted sum replaced by combine.
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --passes='dce,fp8-quant,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2}' | grep -E "= (dispatch|fp8_expert_linear|combine) " | sed -n 1,8p
// CHECK: %184 = dispatch %183, %172 {nodes=2, gpus_per_node=2, max_nodes=2, hops=2} : fp8e4m3[4*B*S,96]
// CHECK-NEXT: %185 = dispatch %182, %172 {nodes=2, gpus_per_node=2, max_nodes=2, hops=2} : f32[4*B*S,1]
// CHECK-NEXT: %186 = dispatch %172, %172 {nodes=2, gpus_per_node=2, max_nodes=2, hops=2} : i32[4*B*S,4]
// CHECK-NEXT: %187 = dispatch %179, %172 {nodes=2, gpus_per_node=2, max_nodes=2, hops=2} : f32[4*B*S,4]
// CHECK-NEXT: %188 = fp8_expert_linear %184, %185, %180, %181, %186 : bf16[4*B*S,4,40]
// CHECK-NEXT: %192 = fp8_expert_linear %184, %185, %190, %191, %186 : bf16[4*B*S,4,40]
// CHECK-NEXT: %198 = fp8_expert_linear %197, %196, %194, %195, %186 : bf16[4*B*S,4,96]
// CHECK-NEXT: %199 = combine %198, %187, %186, %172 {nodes=2, gpus_per_node=2, max_nodes=2, hops=2} : f32[B*S,96]
// RUN: dscc compile models/deepseek_v3.dsl --passes='node-limited-routing{nodes=8,gpus-per-node=8,max-nodes=2}' --pass-report 2>&1 | awk '/routers limited/ || (/= group_topk/ && !seen++)'
// CHECK: node-limited-routing: 58 routers limited from topk_groups=4 to 2 (groups = nodes): routing changes
// CHECK: {k=8, groups=8, topk_groups=2, group_top=2}
// RUN: dscc compile models/deepseek_v3.dsl --passes='node-limited-routing{nodes=3,gpus-per-node=8}' -o - >/dev/null; echo "exit=$?"
// CHECK: error: node-limited-routing: 256 experts do not spread evenly over 3 x 8 GPUs
// CHECK: exit=1
// RUN: dscc compile models/deepseek_v3.dsl --passes='node-limited-routing{nodes=16,gpus-per-node=2,max-nodes=4}' -o - >/dev/null; echo "exit=$?"
// CHECK: error: node-limited-routing: tokens may reach 8 nodes; limiting them to 4 needs n_group == nodes
// CHECK: exit=1
