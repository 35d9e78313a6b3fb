// node-limited-routing on DeepSeek-V3 at 8 nodes x 8 GPUs: group g on node g,
// so group-limited top-k (4 of 8 groups) reaches at most 4 nodes. Per token
// the FP8 payload is 7168 bytes + 56 f32 scales = 7392 bytes; inter-node
// traffic is bounded by 4 x 7392 = 29,568 bytes against 8 x 7392 = 59,136
// without the limit. Asking for 2 nodes rewrites the routers.
// RUN: dscc compile models/deepseek_v3.dsl --passes='dce,fp8-quant,cse,dce,node-limited-routing{nodes=8,gpus-per-node=8,max-nodes=4}' --pass-report -o - >/dev/null
// CHECK: node-limited-routing: 58 MoE layers: dispatch 7392 B per token copy (FP8 + scales), combine 14336 B; inter-node per token: limited <= 29568 B (expected 23472), unlimited <= 59136 B (expected 34246), one copy per expert 59136 B; NVLink forward <= 59136 B (expected 56739)
// CHECK-NEXT: node-limited-routing: 8 nodes x 8 GPUs, max 4 nodes per token: 116 dispatches, 58 combines
// RUN: dscc compile models/deepseek_v3.dsl --passes='node-limited-routing{nodes=8,gpus-per-node=8,max-nodes=2}' --pass-report 2>&1 | awk '/routers limited/ || (/= group_topk/ && !seen++)'
// CHECK: node-limited-routing: 58 routers limited from topk_groups=4 to 2 (groups = nodes): routing changes
// CHECK: {k=8, groups=8, topk_groups=2, group_top=2}
// RUN: dscc compile models/deepseek_v3.dsl --passes='node-limited-routing{nodes=3,gpus-per-node=8}' -o - >/dev/null; echo "exit=$?"
// CHECK: error: node-limited-routing: 256 experts do not spread evenly over 3 x 8 GPUs
// CHECK: exit=1
// RUN: dscc compile models/deepseek_v3.dsl --passes='node-limited-routing{nodes=16,gpus-per-node=2,max-nodes=4}' -o - >/dev/null; echo "exit=$?"
// CHECK: error: node-limited-routing: tokens may reach 8 nodes; limiting them to 4 needs n_group == nodes
// CHECK: exit=1
