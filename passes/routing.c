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
 * With more than one GPU each MoE layer is put in the world layout
 * (docs/IR.md): the routed experts run on `dispatch`ed rows [W*N, ...]
 * (payload, its FP8 scales, the expert ids, the routing weights) and the
 * DSL's weighted sum is replaced by `combine`; `hops` = 2 across nodes. The
 * report gives per MoE layer the bytes per token crossing nodes and NVLink
 * for dispatch and combine; pass_routing_traffic is the exact prediction
 * for given routing decisions, which the runtime's counters must match. */
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
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

/* Bytes per token for one MoE layer, worst case and expected (uniform). A
 * token crosses to each remote node its experts use once (dispatch), and
 * one partial sum per such node comes back (combine); within a node the
 * landing GPU forwards to each other GPU holding one of its experts, and
 * each of those returns one partial sum. */
static void layer_text(const IrNode *r, const IrNode *gemm, const Topo *t, int64_t reach, StrBuf *sb) {
    int64_t E = r->ops[0]->type.dims[r->ops[0]->type.rank - 1].coeff, k = ir_node_attr_int(r, "k", 1);
    int64_t G = ir_node_attr_int(r, "groups", 1), TG = ir_node_attr_int(r, "topk_groups", 1);
    const IrType *x = &gemm->ops[0]->type;
    int64_t I = x->dims[x->rank - 1].coeff; /* the hidden size: what goes out comes back, in BF16 */
    bool fp8 = x->dtype == IR_DT_FP8E4M3;
    double payload = (fp8 ? (double)I + 4.0 * (double)((I + 127) / 128) : (double)I * ir_dtype_bits(x->dtype) / 8) + 8.0 * (double)k;
    double back = 2.0 * (double)I, N = (double)t->nodes, gpn = (double)t->gpus, gpus = N * gpn;
    double rk = (double)(reach < k ? reach : k);
    double lim_worst = fmin(rk, N - 1), free_worst = fmin((double)k, N - 1);
    /* uniform routing: unlimited = k of all E; limited = k among TG groups */
    double free_exp = expected_bins(N, (double)E / N, (double)E, (double)k);
    double sel = (double)TG * (double)E / (double)G, per_node = (double)E / N, per_gpu = (double)E / gpus;
    double lim_exp = G % t->nodes == 0 ? expected_bins(fmin(sel / per_node, N), per_node, sel, (double)k) : rk;
    double remote = (N - 1) / N; /* the token's own node is not crossed to */
    bool whole = fmod((double)E / (double)G, per_gpu) == 0; /* a group is whole GPUs */
    double gpu_exp = whole ? expected_bins(sel / per_gpu, per_gpu, sel, (double)k) : expected_bins(gpus, per_gpu, (double)E, (double)k);
    /* a GPU a token uses is its landing GPU (same local rank) one time in gpn */
    double fwd_worst = fmin((double)k, rk * (gpn - 1)), fwd_exp = gpu_exp * (gpn - 1) / gpn;
    sb_printf(sb, "dispatch %.0f B per token copy (%s), combine %.0f B per partial sum (bf16); inter-node per token: "
                  "dispatch <= %.0f B (expected %.0f), combine <= %.0f B (expected %.0f); unlimited routing: dispatch <= %.0f B "
                  "(expected %.0f), one copy per expert %.0f B; NVLink per token: dispatch <= %.0f B (expected %.0f), "
                  "combine <= %.0f B (expected %.0f)",
                payload, fp8 ? "FP8 + scales + ids + weights" : "BF16 + ids + weights", back, lim_worst * payload,
                lim_exp * remote * payload, lim_worst * back, lim_exp * remote * back, free_worst * payload,
                free_exp * remote * payload, (double)k * payload, fwd_worst * payload, fwd_exp * payload, fwd_worst * back,
                fwd_exp * back);
}

/* The DSL's weighted sum of a MoE layer's routed output y, which combine
 * replaces: sum(cast(y, f32) * reshape(w, [N, K, 1]), axis=1). */
typedef struct {
    const IrNode *cast, *mul, *reshape, *w, *sum;
} WSum;

/* Matches the weighted sum reading y (an old node); false after reporting
 * why at y's location. nuse/user: each node's reader count, its last reader. */
static bool match_wsum(DiagEngine *d, const IrNode *y, const int *nuse, IrNode *const *user, WSum *m) {
    const IrType *idx = &y->ops[y->nops - 1]->type;
    const char *why = NULL;
    const IrNode *c = nuse[y->id] == 1 ? user[y->id] : NULL, *mul = NULL, *r = NULL, *s = NULL;
    if (!c || c->op != IR_OP_CAST || c->type.dtype != IR_DT_F32) why = "y is not read once, by a cast to f32";
    else if (!(mul = nuse[c->id] == 1 ? user[c->id] : NULL) || mul->op != IR_OP_MUL) why = "cast(y, f32) is not read once, by a mul";
    else {
        r = mul->ops[0] == c ? mul->ops[1] : mul->ops[0];
        const IrType *rt = &r->type, *wt = r->op == IR_OP_RESHAPE ? &r->ops[0]->type : NULL;
        if (!wt || rt->rank != 3 || !ir_dim_eq(rt->dims[0], idx->dims[0]) || !ir_dim_eq(rt->dims[1], idx->dims[1]) ||
            !ir_dim_eq(rt->dims[2], ir_dim_const(1)) || wt->rank != 2 || !ir_dim_eq(wt->dims[0], idx->dims[0]) ||
            !ir_dim_eq(wt->dims[1], idx->dims[1]) || ir_dtype_is_int(wt->dtype))
            why = "the other factor is not reshape(w, [N, K, 1]) of float weights w[N, K]";
        else if (!ir_type_eq(&mul->type, &c->type)) why = "the product does not keep y's shape";
        else if (!(s = nuse[mul->id] == 1 ? user[mul->id] : NULL) || s->op != IR_OP_SUM ||
                 (ir_node_attr_int(s, "axis", 0) != 1 && ir_node_attr_int(s, "axis", 0) != -2) || ir_node_attr_bool(s, "keepdim", false))
            why = "the product is not read once, by sum(..., axis=1)";
    }
    if (why) {
        diag_error(d, y->loc, "node-limited-routing: cannot put this MoE layer's %s in the world layout: its output must be "
                              "combined as sum(cast(y, f32) * reshape(w, [N, K, 1]), axis=1), but %s",
                   ir_op_name(y->op), why);
        return false;
    }
    *m = (WSum){c, mul, r, r->ops[0], s};
    return true;
}

typedef struct {
    IrGraph *g;
    DiagEngine *d;
    IrRewrite rw;
    IrAttr at[4];
    IrNode **sent; /* per new node id: its dispatch (gate and up share one) */
    int cap, dispatched, combined;
} Wrap;

/* v dispatched along the routing idx (both new nodes); NULL after reporting. */
static IrNode *wrap_send(Wrap *w, IrNode *v, IrNode *idx, const IrNode *at) {
    IR_ASSERT(v->id < w->cap);
    IrNode *have = w->sent[v->id];
    if (have && have->ops[1] == idx) return have;
    IrNode *op[2] = {v, idx};
    IrNode *dn = ir_graph_add_node(w->g, w->d, IR_OP_DISPATCH, op, 2, w->at, 4, NULL, at->loc, at->scope);
    if (dn) w->sent[v->id] = dn, w->dispatched++;
    return dn;
}

/* Re-adds expert GEMM `old` on dispatched rows: its inputs from outside
 * the experts (x, its scales) and its ids are dispatched, and with the
 * layer's first GEMM its routing weights `wold` when already defined. */
static IrNode *wrap_gemm(Wrap *w, const IrNode *old, const bool *inner, const IrNode *wold) {
    IrNode *ops[5];
    for (int k = 0; k < old->nops; k++) ops[k] = ir_rewrite_map(&w->rw, old->ops[k]);
    IrNode *idx = ops[old->nops - 1];
    int ninputs = old->op == IR_OP_FP8_EXPERT_LINEAR ? 2 : 1;
    for (int k = 0; k < ninputs; k++)
        if (!inner[old->ops[k]->id] && !is_expert_gemm(old->ops[k]) && !(ops[k] = wrap_send(w, ops[k], idx, old))) return NULL;
    if (!(ops[old->nops - 1] = wrap_send(w, idx, idx, old))) return NULL;
    IrNode *wn = wold ? ir_rewrite_map(&w->rw, wold) : NULL;
    if (wn && !wrap_send(w, wn, idx, old)) return NULL;
    return ir_graph_add_node(w->g, w->d, old->op, ops, old->nops, old->attrs, old->nattrs, NULL, old->loc, old->scope);
}

/* Puts every MoE layer in the world layout; false after reporting. */
static bool wrap_layers(PassCtx *c, IrGraph *g, const Topo *t, const bool *inner, const bool *feeds) {
    DiagEngine *d = pass_diag(c);
    int nn = g->nnodes;
    int *nuse = arena_alloc(g->arena, sizeof(int) * (size_t)(nn + 1));
    IrNode **user = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++) {
        IrNode *n = g->nodes[i];
        if (n->op == IR_OP_DISPATCH || n->op == IR_OP_COMBINE) {
            diag_error(d, n->loc, "node-limited-routing: the graph already has %s ops (run the pass once)", ir_op_name(n->op));
            return false;
        }
        for (int k = 0; k < n->nops; k++) nuse[n->ops[k]->id]++, user[n->ops[k]->id] = n;
    }
    /* per old node: the weighted sum a final expert GEMM feeds (by the sum's
     * id), nodes it makes dead, and each router's weights (by idx id) */
    const IrNode **final = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(nn + 1));
    const IrNode **wof = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(nn + 1));
    bool *drop = arena_alloc(g->arena, (size_t)nn + 1);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        WSum m;
        if (!is_expert_gemm(n) || feeds[i]) continue;
        if (!match_wsum(d, n, nuse, user, &m)) return false;
        final[m.sum->id] = n;
        wof[n->ops[n->nops - 1]->id] = m.w;
        drop[m.cast->id] = drop[m.mul->id] = true;
        drop[m.reshape->id] = nuse[m.reshape->id] == 1;
    }
    Wrap w = {.g = g, .d = d, .cap = 2 * nn + 64};
    w.at[0] = (IrAttr){.name = "nodes", .kind = IR_ATTR_INT, .u.i = t->nodes};
    w.at[1] = (IrAttr){.name = "gpus_per_node", .kind = IR_ATTR_INT, .u.i = t->gpus};
    w.at[2] = (IrAttr){.name = "max_nodes", .kind = IR_ATTR_INT, .u.i = t->max_nodes};
    w.at[3] = (IrAttr){.name = "hops", .kind = IR_ATTR_INT, .u.i = t->nodes > 1 ? 2 : 1};
    w.sent = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)w.cap);
    ir_rewrite_begin(g, &w.rw);
    for (int i = 0; i < w.rw.nold; i++) {
        const IrNode *old = w.rw.old[i], *y = final[i];
        if (drop[i]) continue;
        if (is_expert_gemm(old)) {
            if (!(w.rw.map[i] = wrap_gemm(&w, old, inner, wof[old->ops[old->nops - 1]->id]))) return false;
        } else if (y) { /* the weighted sum: combine(y, wd, idd, idx) */
            IrNode *idx = ir_rewrite_map(&w.rw, y->ops[y->nops - 1]), *op[4] = {ir_rewrite_map(&w.rw, y), NULL, NULL, idx};
            if (!(op[1] = wrap_send(&w, ir_rewrite_map(&w.rw, wof[y->ops[y->nops - 1]->id]), idx, y)) ||
                !(op[2] = wrap_send(&w, idx, idx, y)) ||
                !(w.rw.map[i] = ir_graph_add_node(g, d, IR_OP_COMBINE, op, 4, w.at, 4, NULL, old->loc, old->scope)))
                return false;
            w.combined++;
        } else if (!ir_rewrite_copy(g, &w.rw, d, old)) {
            return false;
        }
    }
    pass_report(c, "%lld nodes x %lld GPUs, max %lld nodes per token: %d dispatches, %d combines", (long long)t->nodes,
                (long long)t->gpus, (long long)t->max_nodes, w.dispatched, w.combined);
    return true;
}

PassResult pass_routing(PassCtx *c, IrGraph *g) {
    Topo t = {pass_opt_int(c, "nodes"), pass_opt_int(c, "gpus-per-node"), pass_opt_int(c, "max-nodes")};
    if (t.nodes < 1 || t.gpus < 1 || t.max_nodes < 0 || t.nodes > 4096 || t.gpus > 4096) {
        diag_error(pass_diag(c), ((SrcLoc){"--passes", 0, 0}), "node-limited-routing: nodes and gpus-per-node must be in 1..4096");
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
    bool changed = false;
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
    if (t.nodes * t.gpus == 1) return changed ? PASS_CHANGED : PASS_UNCHANGED;
    return wrap_layers(c, g, &t, inner, feeds) ? PASS_CHANGED : PASS_FAILED;
}

/* ---- the exact traffic of given routing decisions ------------------------ */

/* Bytes of one row (all but the leading axis) of a value stored in t's dtype
 * (bf16/f16 as f32 with f32_storage); -1 when a trailing axis is symbolic. */
static int64_t row_bytes(const IrType *t, bool f32_storage) {
    int64_t n = 1;
    for (int i = 1; i < t->rank; i++) {
        if (!ir_dim_is_const(t->dims[i])) return -1;
        n *= t->dims[i].coeff;
    }
    bool wide = f32_storage && (t->dtype == IR_DT_BF16 || t->dtype == IR_DT_F16);
    return n * (wide ? 4 : ir_dtype_bits(t->dtype) / 8);
}

bool pass_routing_row_bytes(const IrGraph *g, const IrNode *combine, bool f32_storage, int64_t *dispatch_row, int64_t *combine_row) {
    if (combine->op != IR_OP_COMBINE) return false;
    const IrNode *idx = combine->ops[3];
    *dispatch_row = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_DISPATCH || n->ops[1] != idx) continue;
        int64_t b = row_bytes(&n->ops[0]->type, f32_storage);
        if (b < 0) return false;
        *dispatch_row += b;
    }
    IrType y = combine->ops[0]->type; /* the partial sums travel in y's stored dtype, one [O] row each */
    y.rank--;
    memmove(y.dims + 1, y.dims + 2, sizeof(IrDim) * (size_t)(y.rank - 1));
    *combine_row = row_bytes(&y, f32_storage);
    return *combine_row >= 0;
}

bool pass_routing_traffic(DiagEngine *d, const PassEpWorld *w, const int64_t *ntok, const float *const *idx, int64_t dispatch_row,
                          int64_t combine_row, PassEpTraffic *sent) {
    int ranks = w->nodes * w->gpus_per_node;
    if (w->nodes < 1 || w->gpus_per_node < 1 || w->experts < ranks || w->experts % ranks || w->k < 1) {
        diag_error(d, (SrcLoc){0}, "routing traffic: %lld experts over %d x %d GPUs with k=%d is not a valid placement",
                   (long long)w->experts, w->nodes, w->gpus_per_node, w->k);
        return false;
    }
    memset(sent, 0, sizeof *sent * (size_t)ranks);
    int64_t per = w->experts / ranks;
    bool *hit = malloc((size_t)ranks);
    for (int src = 0; src < ranks; src++) {
        int snode = src / w->gpus_per_node, slocal = src % w->gpus_per_node;
        for (int64_t n = 0; n < ntok[src]; n++) {
            memset(hit, 0, (size_t)ranks);
            for (int k = 0; k < w->k; k++) {
                float e = idx[src][n * w->k + k];
                if (!(e >= 0 && e < (float)w->experts)) {
                    diag_error(d, (SrcLoc){0}, "routing traffic: token %lld of rank %d routes to expert %g, outside 0..%lld",
                               (long long)n, src, e, (long long)w->experts - 1);
                    free(hit);
                    return false;
                }
                hit[(int64_t)e / per] = true;
            }
            for (int nd = 0; nd < w->nodes; nd++) {
                int land = nd * w->gpus_per_node + slocal; /* hop 1 lands on the same local rank */
                bool used = false;
                for (int gp = 0; gp < w->gpus_per_node; gp++) {
                    int r = nd * w->gpus_per_node + gp;
                    if (!hit[r]) continue;
                    used = true;
                    if (r == land) continue;
                    sent[land].dispatch_intra += dispatch_row; /* NVLink forward of the landed copy */
                    sent[r].combine_intra += combine_row;      /* r's partial sum back to the landing GPU */
                }
                if (!used || nd == snode) continue;
                sent[src].dispatch_inter += dispatch_row; /* one copy per remote node */
                sent[land].combine_inter += combine_row;  /* the node's partial sum, home */
            }
        }
    }
    free(hit);
    return true;
}
