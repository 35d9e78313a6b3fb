// A MoE whose routed output is summed without its routing weights cannot be
// put in the world layout: node-limited-routing names the expert GEMM.
// ARGS: --passes=node-limited-routing{nodes=1,gpus-per-node=2}
dim N;
input x: bf16[N, 64];
input scores: f32[N, 16];
weight w_down[e: 16]: bf16[64, 64] = "experts.{e}.down_proj.weight";
let idx = group_topk(scores, k=4, groups=4, topk_groups=2, group_top=2);
// expected-error@+1 {{node-limited-routing: cannot put this MoE layer's expert_linear in the world layout: its output must be combined as sum(cast(y, f32) * reshape(w, [N, K, 1]), axis=1), but cast(y, f32) is not read once, by a mul}}
let y = expert_linear(x, w_down, idx);
output out = sum(cast(y, f32), axis=1);
