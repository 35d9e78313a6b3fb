// Memory per GPU of DeepSeek-V3 with its routed experts spread over the
// GPUs (dscc stats --nodes / --gpus-per-node: dscc run's pipeline for that
// topology, then the graph's weights and plan-memory's slab). Hand check
// of the routed experts: per MoE layer 256 x 3 x 2048 x 7168 FP8 codes =
// 11,274,289,152 bytes plus their 128x128 block scales 256 x 3 x 16 x 56 x
// 4 bytes = 2,752,512; x58 layers = 654,068,416,512 bytes, of which one GPU
// of 64 holds 4 experts per layer, 10,219,819,008 bytes, and one of 8 holds
// 32, 81,758,552,064. The rest (embedding, LM head, attention, dense
// layers, shared experts, routers, norms) is on every GPU. KV cache: 61
// layers x 576 bf16 latent values = 70,272 bytes per token. The
// replicated weights hold MLA's W_UK twice (transposed for the absorbed
// form, as it is for the naive one: 61 x 128 x 128 x 512 x 2 bytes =
// 1,023,410,176) and the naive form's ones[128, 1] (61 x 256 bytes).
// RUN: dscc stats models/deepseek_v3.dsl --nodes 8 --gpus-per-node 8
// CHECK: per GPU: 8 nodes x 8 GPUs, precision fp8, batch 1 (1 row per GPU), sequence 4096
// CHECK-NEXT: weights:            31,348,600,416 bytes (31.35 GB): replicated 21.13 GB + routed experts 10.22 GB (4 of 256 per GPU)
// CHECK-NEXT: KV cache per token: 70,272 bytes
// CHECK-NEXT: KV cache:           287,834,112 bytes (0.29 GB) for 1 row x 4096 positions
// CHECK-NEXT: activation slab:
// CHECK-NEXT: total:
// RUN: dscc stats models/deepseek_v3.dsl --nodes 1 --gpus-per-node 8 --json
// CHECK: "per_gpu":
// CHECK: "gpus_per_node":	8,
// CHECK: "weight_bytes":	102887333472,
// CHECK-NEXT: "replicated_weight_bytes":	21128781408,
// CHECK-NEXT: "expert_weight_bytes":	81758552064,
// CHECK-NEXT: "experts_per_gpu":	32,
// CHECK-NEXT: "kv_bytes_per_token":	70272,
// The same split at batch 128 over 64 GPUs: 2 rows each, twice the cache.
// RUN: dscc stats models/deepseek_v3.dsl --nodes 8 --batch 128 --seq 4096
// CHECK: per GPU: 8 nodes x 8 GPUs, precision fp8, batch 128 (2 rows per GPU), sequence 4096
// CHECK: KV cache:           575,668,224 bytes (0.58 GB) for 2 rows x 4096 positions
// Errors: a topology the experts do not spread over, bad values.
// RUN: dscc stats models/deepseek_v3.dsl --nodes 3 --gpus-per-node 5; echo "exit=$?"
// CHECK: node-limited-routing: 256 experts do not spread evenly over 3 x 5 GPUs
// CHECK: exit=1
// RUN: dscc stats models/deepseek_v3.dsl --nodes 0; echo "exit=$?"
// CHECK: --nodes expects an integer in 1..4096, got '0'
// CHECK: exit=2
