/* dispatch.c — the two-hop dispatch plan of node-limited expert
 * parallelism, computed from real routing decisions.
 *
 * A token living on rank (node a, local l) whose experts sit on nodes
 * n1..nm crosses the inter-node network once per remote node, to rank
 * (ni, l), which forwards it over NVLink to each other GPU of that node
 * holding one of its experts. Counting copies this way, per destination
 * rank, is both the count exchange NCCL's all-to-all needs first and the
 * measurement that checks the routing pass's predicted bytes. */
#include "runtime/dist.h"

#include <stdlib.h>
#include <string.h>

int rt_expert_rank(const RtTopology *t, int64_t e) {
    int64_t ranks = (int64_t)t->nodes * t->gpus_per_node;
    return (int)(e / (t->experts / ranks));
}

bool rt_dispatch_plan(DiagEngine *d, const RtTopology *t, int src, const float *idx, int64_t N, int K, RtDispatchPlan *out) {
    memset(out, 0, sizeof *out);
    int ranks = t->nodes * t->gpus_per_node;
    if (ranks < 1 || t->experts % ranks || src < 0 || src >= ranks) {
        diag_error(d, (SrcLoc){0}, "dispatch plan: %lld experts over %d x %d GPUs from rank %d is not a valid placement",
                   (long long)t->experts, t->nodes, t->gpus_per_node, src);
        return false;
    }
    out->recv = calloc((size_t)ranks, sizeof(int64_t));
    bool *gpu_hit = calloc((size_t)ranks, 1), *node_hit = calloc((size_t)t->nodes, 1);
    int src_node = src / t->gpus_per_node, src_local = src % t->gpus_per_node;
    bool ok = true;
    for (int64_t n = 0; n < N && ok; n++) {
        memset(gpu_hit, 0, (size_t)ranks);
        memset(node_hit, 0, (size_t)t->nodes);
        int nodes = 0;
        for (int k = 0; k < K; k++) {
            float e = idx[n * K + k];
            if (!(e >= 0 && e < (float)t->experts)) {
                diag_error(d, (SrcLoc){0}, "dispatch plan: token %lld routes to expert %g, outside 0..%lld", (long long)n, e,
                           (long long)t->experts - 1);
                ok = false;
                break;
            }
            int r = rt_expert_rank(t, (int64_t)e);
            if (r != src) out->per_expert_copies++;
            if (!gpu_hit[r]) {
                gpu_hit[r] = true;
                out->recv[r]++;
            }
            int nd = r / t->gpus_per_node;
            if (!node_hit[nd]) node_hit[nd] = true, nodes++;
        }
        if (nodes > out->max_nodes_per_token) out->max_nodes_per_token = nodes;
        for (int nd = 0; nd < t->nodes; nd++) {
            if (!node_hit[nd]) continue;
            int landing = nd * t->gpus_per_node + src_local; /* hop 1 lands on the same local rank */
            if (nd != src_node) out->inter_node_copies++;
            for (int g = 0; g < t->gpus_per_node; g++) {
                int r = nd * t->gpus_per_node + g;
                if (gpu_hit[r] && r != landing) out->intra_node_copies++;
            }
        }
    }
    free(gpu_hit);
    free(node_hit);
    if (!ok) rt_dispatch_plan_free(out);
    return ok;
}

void rt_dispatch_plan_free(RtDispatchPlan *p) {
    free(p->recv);
    p->recv = NULL;
}
