/* routing.c — node-limited routing and two-hop dispatch (DeepSeek-V3 §4).
 *
 * Placement: experts are contiguous, E / (nodes x gpus) per GPU, so expert
 * e lives on GPU e / (E / GPUs) and node GPU / gpus_per_node. With n_group
 * a multiple of nodes, whole groups live on one node (V3: group g on node
 * g) and group-limited top-k reaches at most topk_groups nodes; with nodes
 * a multiple of n_group each group spans nodes/n_group nodes. Any other mix
 * is an error. If that bound exceeds max-nodes and groups == nodes, the
 * router keeps max-nodes groups instead (a change of routing, reported);
 * otherwise the limit cannot be enforced and the pass fails.
 *
 * With more than one GPU, the routed experts' inputs are wrapped in
 * `dispatch` (the FP8 payload and its scales when fp8-quant ran first) and
 * their outputs in `combine`; `hops` = 2 across nodes (one inter-node copy
 * per destination node to the same-local-rank GPU, then NVLink forwarding).
 * On one process both are the identity. The report gives, per MoE layer,
 * the bytes per token that cross nodes and NVLink, limited and unlimited. */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

typedef struct {
    int64_t nodes, gpus, max_nodes;
} Topo;

static bool is_expert_gemm(const IrNode *n) { return n->op == IR_OP_EXPERT_LINEAR || n->op == IR_OP_FP8_EXPERT_LINEAR; }

static bool elementwise(IrOp op) {
    switch (op) {
    case IR_OP_SILU: case IR_OP_SIGMOID: case IR_OP_MUL: case IR_OP_ADD: case IR_OP_SUB: case IR_OP_DIV:
    case IR_OP_MAX: case IR_OP_EXP: case IR_OP_NEG: case IR_OP_CAST: case IR_OP_ACT_SCALE: case IR_OP_QUANTIZE:
        return true;
    default:
        return false;
    }
}

/* log C(n, k), for expected counts under uniform routing. */
static double lchoose(double n, double k) { return k < 0 || k > n ? -INFINITY : lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1); }

/* Expected number of `bins` (of `per` experts each, out of `pool`) hit by k
 * distinct experts drawn uniformly from the pool. */
static double expected_bins(double bins, double per, double pool, double k) {
    return bins * (1 - exp(lchoose(pool - per, k) - lchoose(pool, k)));
}

/* Checks placement and applies the node limit to one router; the bound on
 * nodes a token reaches goes to *reach. False after reporting. */
static bool limit_router(PassCtx *c, IrNode *r, const Topo *t, int64_t *reach, int64_t *limited) {
    int64_t E = r->ops[0]->type.dims[r->ops[0]->type.rank - 1].coeff;
    int64_t G = ir_node_attr_int(r, "groups", 1), TG = ir_node_attr_int(r, "topk_groups", 1);
    DiagEngine *d = pass_diag(c);
    if (E % (t->nodes * t->gpus)) {
        diag_error(d, r->loc, "node-limited-routing: %lld experts do not spread evenly over %lld x %lld GPUs", (long long)E,
                   (long long)t->nodes, (long long)t->gpus);
        return false;
    }
    if (G % t->nodes && t->nodes % G) {
        diag_error(d, r->loc, "node-limited-routing: %lld groups and %lld nodes do not align (one must divide the other)",
                   (long long)G, (long long)t->nodes);
        return false;
    }
    *reach = G % t->nodes == 0 ? (TG < t->nodes ? TG : t->nodes) : TG * (t->nodes / G);
    if (*reach > t->max_nodes) {
        if (G != t->nodes) {
            diag_error(d, r->loc, "node-limited-routing: tokens may reach %lld nodes; limiting them to %lld needs n_group == nodes",
                       (long long)*reach, (long long)t->max_nodes);
            return false;
        }
        for (int i = 0; i < r->nattrs; i++)
            if (strcmp(r->attrs[i].name, "topk_groups") == 0) r->attrs[i].u.i = t->max_nodes;
        char err[256];
        IrType ty;
        if (!ir_infer_type(NULL, r, &ty, err, sizeof err)) {
            diag_error(d, r->loc, "node-limited-routing: %s", err);
            return false;
        }
        *reach = t->max_nodes;
        *limited = TG;
    }
    return true;
}

/* Bytes per token for one MoE layer, worst case and expected (uniform). */
static void layer_text(const IrNode *r, const IrNode *gemm, const Topo *t, int64_t reach, StrBuf *sb) {
    int64_t E = r->ops[0]->type.dims[r->ops[0]->type.rank - 1].coeff, k = ir_node_attr_int(r, "k", 1);
    int64_t G = ir_node_attr_int(r, "groups", 1), TG = ir_node_attr_int(r, "topk_groups", 1);
    const IrType *x = &gemm->ops[0]->type;
    int64_t I = x->dims[x->rank - 1].coeff; /* the hidden size: what goes out comes back, in BF16 */
    double payload = x->dtype == IR_DT_FP8E4M3 ? (double)I + 4.0 * (double)((I + 127) / 128) : 2.0 * (double)I;
    double back = 2.0 * (double)I, N = (double)t->nodes, gpus = N * (double)t->gpus;
    double lim_worst = (double)(reach < k ? reach : k), free_worst = (double)(t->nodes < k ? t->nodes : k);
    /* uniform routing: unlimited = k of all E; limited = k among TG groups */
    double free_exp = expected_bins(N, (double)E / N, (double)E, (double)k);
    double sel = (double)TG * (double)E / (double)G, per_node = (double)E / N;
    double lim_exp = G % t->nodes == 0 ? expected_bins(fmin(sel / per_node, N), per_node, sel, (double)k) : lim_worst;
    double remote = (N - 1) / N; /* the token's own node is not crossed to */
    double gpu_exp = expected_bins(gpus, (double)E / gpus, (double)E, (double)k);
    sb_printf(sb, "dispatch %.0f B per token copy (%s), combine %.0f B; inter-node per token: limited <= %.0f B "
                  "(expected %.0f), unlimited <= %.0f B (expected %.0f), one copy per expert %.0f B; NVLink forward <= %.0f B (expected %.0f)",
                payload, x->dtype == IR_DT_FP8E4M3 ? "FP8 + scales" : "BF16", back,
                lim_worst * payload, lim_exp * remote * payload, free_worst * payload, free_exp * remote * payload,
                (double)k * payload, (double)k * payload, gpu_exp * payload);
}

PassResult pass_routing(PassCtx *c, IrGraph *g) {
    Topo t = {pass_opt_int(c, "nodes"), pass_opt_int(c, "gpus-per-node"), pass_opt_int(c, "max-nodes")};
    if (t.nodes < 1 || t.gpus < 1 || t.max_nodes < 0) {
        diag_error(pass_diag(c), ((SrcLoc){"--passes", 0, 0}), "node-limited-routing: nodes and gpus-per-node must be positive");
        return PASS_FAILED;
    }
    if (!t.max_nodes) t.max_nodes = t.nodes;
    /* inner: computed elementwise from expert GEMM outputs (silu(gate) * up,
     * its FP8 quantization), so already on the experts' GPUs. feeds: an
     * expert GEMM whose output reaches another through inner ops only (gate,
     * up); the others (down) end the expert computation: their results are
     * combined. */
    bool *inner = arena_alloc(g->arena, (size_t)g->nnodes + 1), *feeds = arena_alloc(g->arena, (size_t)g->nnodes + 1);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (!elementwise(n->op)) continue;
        for (int k = 0; k < n->nops; k++)
            if (is_expert_gemm(n->ops[k]) || inner[n->ops[k]->id]) inner[i] = true;
    }
    const IrNode **stack = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(g->nnodes + 1));
    for (int i = 0; i < g->nnodes; i++) {
        if (!is_expert_gemm(g->nodes[i])) continue;
        int top = 0;
        for (int k = 0; k < g->nodes[i]->nops; k++) stack[top++] = g->nodes[i]->ops[k];
        while (top > 0) {
            const IrNode *o = stack[--top];
            if (is_expert_gemm(o)) feeds[o->id] = true;
            else if (inner[o->id])
                for (int k = 0; k < o->nops && top < g->nnodes; k++) stack[top++] = o->ops[k];
        }
    }
    int64_t *reach = arena_alloc(g->arena, sizeof(int64_t) * (size_t)(g->nnodes + 1));
    bool changed = false, multi = t.nodes * t.gpus > 1;
    int nlimited = 0;
    int64_t was = 0;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        int64_t lim = 0;
        if (n->op == IR_OP_GROUP_TOPK && !limit_router(c, n, &t, &reach[i], &lim)) return PASS_FAILED;
        if (lim) nlimited++, was = lim, changed = true;
    }
    if (nlimited)
        pass_report(c, "%d routers limited from topk_groups=%lld to %lld (groups = nodes): routing changes", nlimited,
                    (long long)was, (long long)t.max_nodes);
    StrBuf prev, cur;
    sb_init(&prev);
    bool *done = arena_alloc(g->arena, (size_t)g->nnodes + 1); /* routers reported */
    int same = 0;
    for (int i = 0; i <= g->nnodes; i++) {
        const IrNode *n = i < g->nnodes ? g->nodes[i] : NULL;
        sb_init(&cur);
        if (n) {
            if (!is_expert_gemm(n) || inner[n->ops[0]->id] || is_expert_gemm(n->ops[0])) continue;
            const IrNode *idx = n->ops[n->nops - 1];
            while (idx->op != IR_OP_GROUP_TOPK && idx->op != IR_OP_TOPK && idx->nops) idx = idx->ops[0];
            if (idx->op != IR_OP_GROUP_TOPK || done[idx->id]) continue;
            done[idx->id] = true;
            layer_text(idx, n, &t, reach[idx->id], &cur);
            if (prev.data && strcmp(prev.data, cur.data) == 0) {
                same++;
                sb_free(&cur);
                continue;
            }
        }
        if (prev.data) pass_report(c, "%d MoE layer%s: %s", same, same == 1 ? "" : "s", prev.data);
        sb_free(&prev);
        prev = cur;
        same = 1;
        if (!n) break;
    }
    sb_free(&prev);
    if (!multi) return changed ? PASS_CHANGED : PASS_UNCHANGED;
    IrAttr at[4] = {{.name = "nodes", .kind = IR_ATTR_INT, .u.i = t.nodes},
                    {.name = "gpus_per_node", .kind = IR_ATTR_INT, .u.i = t.gpus},
                    {.name = "max_nodes", .kind = IR_ATTR_INT, .u.i = t.max_nodes},
                    {.name = "hops", .kind = IR_ATTR_INT, .u.i = t.nodes > 1 ? 2 : 1}};
    IrRewrite rw;
    int cap = g->nnodes * 2 + 16; /* new ids: every old node plus dispatches and combines */
    ir_rewrite_begin(g, &rw);
    IrNode **sent = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(cap + rw.nold));
    DiagEngine *d = pass_diag(c);
    int dispatched = 0, combined = 0;
    for (int i = 0; i < rw.nold; i++) {
        const IrNode *old = rw.old[i];
        if (!is_expert_gemm(old)) {
            if (!ir_rewrite_copy(g, &rw, d, old)) return PASS_FAILED;
            continue;
        }
        IrNode *ops[5];
        for (int k = 0; k < old->nops; k++) ops[k] = ir_rewrite_map(&rw, old->ops[k]);
        IrNode *idx = ops[old->nops - 1];
        /* inputs from outside the experts' own computation travel to them */
        int ninputs = old->op == IR_OP_FP8_EXPERT_LINEAR ? 2 : 1;
        for (int k = 0; k < ninputs; k++) {
            if (inner[old->ops[k]->id] || is_expert_gemm(old->ops[k])) continue;
            IrNode *have = sent[ops[k]->id]; /* gate and up share one dispatch */
            if (have && have->ops[1] == idx) {
                ops[k] = have;
                continue;
            }
            IrNode *dop[2] = {ops[k], idx}, *src = ops[k];
            if (!(ops[k] = ir_graph_add_node(g, d, IR_OP_DISPATCH, dop, 2, at, 4, NULL, old->loc, old->scope))) return PASS_FAILED;
            sent[src->id] = ops[k];
            dispatched++;
        }
        IrNode *y = ir_graph_add_node(g, d, old->op, ops, old->nops, old->attrs, old->nattrs, NULL, old->loc, old->scope);
        if (!y) return PASS_FAILED;
        rw.map[old->id] = y;
        if (!feeds[old->id]) { /* the last expert GEMM: results go home */
            IrNode *cop[2] = {y, idx};
            if (!(rw.map[old->id] = ir_graph_add_node(g, d, IR_OP_COMBINE, cop, 2, at, 4, NULL, old->loc, old->scope))) return PASS_FAILED;
            combined++;
        }
    }
    pass_report(c, "%lld nodes x %lld GPUs, max %lld nodes per token: %d dispatches, %d combines", (long long)t.nodes,
                (long long)t.gpus, (long long)t.max_nodes, dispatched, combined);
    return PASS_CHANGED;
}
