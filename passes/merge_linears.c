/* merge_linears.c — FP8 linears that read the same quantized input become
 * one GEMM over their weights concatenated along the output axis:
 *
 *   ya = fp8_linear(q, s, wa, wsa)       W  = concat(wa, wb, axis=0)
 *   yb = fp8_linear(q, s, wb, wsb)  ->   WS = concat(wsa, wsb, axis=0)
 *                                        y  = fp8_linear(q, s, W, WS)
 *                                        ya = slice(y, -1, 0, Na); yb = slice(y, -1, Na, Nb)
 *
 * In DeepSeek-V3 that is q_a beside kv_a (N = 1,536 + 576) and gate beside
 * up in the dense MLP and the shared expert (w13): one launch (and one
 * split-K sum) instead of two, and the input read once. W and WS are
 * functions of the weights alone, and concats along the output axis of
 * row-major weights each read by them alone (ir_weight_values: JOINED):
 * each part's rows are a contiguous block of the concat, so the CUDA
 * backend loads every weight straight into its rows of W and WS. Nothing
 * computes them, nothing holds a weight twice, and plan-memory gives them
 * no bytes in the activation slab (the CPU executor computes the concat).
 *
 * The 128x128 block scales concatenate along N only where each part but
 * the last starts on a block boundary: every part but the last must have
 * N a multiple of 128 (1,536, 18,432 and 2,048 are; kv_a's 576 goes last).
 * Only unstacked checkpoint weights merge: the routed experts' stacked
 * weights are split over the ranks under expert parallelism, which a
 * concatenated copy of all experts would not respect. Runs after cse
 * (which makes the linears share one quantize of their input). */
#include "passes/passes.h"

#include <stdlib.h>

#define MERGE_MAX 8 /* linears one merge takes at most */

/* A linear this pass may merge: fp8_linear on unstacked checkpoint weights. */
static bool candidate(const IrNode *n) {
    if (n->op != IR_OP_FP8_LINEAR) return false;
    const IrNode *w = n->ops[2], *ws = n->ops[3];
    return w->op == IR_OP_WEIGHT && ws->op == IR_OP_WEIGHT && w->type.rank == 2 && ws->type.rank == 2 &&
           !ir_node_attr_str(w, "stack", NULL) && !ir_node_attr_str(ws, "stack", NULL) && ir_dim_is_const(w->type.dims[0]);
}

static bool same_input(const IrNode *a, const IrNode *b) {
    return a->ops[0] == b->ops[0] && a->ops[1] == b->ops[1] && a->type.dtype == b->type.dtype &&
           ir_dim_eq(a->ops[2]->type.dims[1], b->ops[2]->type.dims[1]);
}

static bool aligned(const IrNode *n) { return n->ops[2]->type.dims[0].coeff % 128 == 0; }

/* The merge sets: set[i] = the index (in program order) of the first
 * member of old node i's set, -1 when it merges with nothing; parts of
 * each set listed in parts[first][...] in the order they concatenate
 * (block-aligned parts in program order, then at most one unaligned). */
typedef struct {
    int *set;
    int (*parts)[MERGE_MAX];
    int *nparts;
} Sets;

static int find_sets(IrNode **old, int n, Sets *s) {
    int merges = 0;
    for (int i = 0; i < n; i++) s->set[i] = -1;
    for (int i = 0; i < n; i++) {
        if (!candidate(old[i]) || s->set[i] >= 0) continue;
        int np = 0, odd = -1;
        for (int j = i; j < n && np < MERGE_MAX; j++) {
            if (s->set[j] >= 0 || !candidate(old[j]) || !same_input(old[i], old[j])) continue;
            if (aligned(old[j])) s->parts[i][np++] = j;
            else if (odd < 0) odd = j;
        }
        if (odd >= 0 && np < MERGE_MAX) s->parts[i][np++] = odd;
        if (np < 2) continue;
        /* keyed by i, the set's first member in program order (j >= i), where the merged GEMM goes */
        s->nparts[i] = np;
        for (int k = 0; k < np; k++) s->set[s->parts[i][k]] = i;
        merges++;
    }
    return merges;
}

static IrAttr int_attr(const char *name, int64_t v) { return (IrAttr){.name = name, .kind = IR_ATTR_INT, .u.i = v}; }

/* The mapped form of old weight node w (copied now if the rewrite has not reached it). */
static IrNode *mapped(IrGraph *g, IrRewrite *rw, DiagEngine *d, const IrNode *w) {
    IrNode *m = ir_rewrite_map(rw, w);
    return m ? m : ir_rewrite_copy(g, rw, d, w);
}

/* Emits the merged GEMM of the set whose parts are old nodes parts[0..np)
 * and maps each part to its slice of it. */
static bool merge(IrGraph *g, IrRewrite *rw, DiagEngine *d, const int *parts, int np) {
    IrNode *w[MERGE_MAX], *ws[MERGE_MAX];
    const IrNode *lead = rw->old[parts[0]];
    for (int k = 0; k < np; k++) {
        const IrNode *o = rw->old[parts[k]];
        if (!(w[k] = mapped(g, rw, d, o->ops[2])) || !(ws[k] = mapped(g, rw, d, o->ops[3]))) return false;
    }
    IrAttr ax0 = int_attr("axis", 0);
    IrNode *W = ir_graph_add_node(g, d, IR_OP_CONCAT, w, np, &ax0, 1, NULL, lead->loc, lead->scope);
    IrNode *WS = W ? ir_graph_add_node(g, d, IR_OP_CONCAT, ws, np, &ax0, 1, NULL, lead->loc, lead->scope) : NULL;
    IrNode *ops[4] = {ir_rewrite_map(rw, lead->ops[0]), ir_rewrite_map(rw, lead->ops[1]), W, WS};
    IrNode *y = WS ? ir_graph_add_node(g, d, IR_OP_FP8_LINEAR, ops, 4, NULL, 0, NULL, lead->loc, lead->scope) : NULL;
    if (!y) return false;
    int64_t at = 0;
    for (int k = 0; k < np; k++) {
        const IrNode *o = rw->old[parts[k]];
        int64_t len = o->ops[2]->type.dims[0].coeff;
        IrAttr a[3] = {int_attr("axis", -1), int_attr("start", at), int_attr("len", len)};
        IrNode *sl = ir_graph_add_node(g, d, IR_OP_SLICE, &y, 1, a, 3, NULL, o->loc, o->scope);
        if (!sl) return false;
        rw->map[o->id] = sl;
        at += len;
    }
    return true;
}

PassResult pass_merge_linears(PassCtx *c, IrGraph *g) {
    DiagEngine *d = pass_diag(c);
    int n = g->nnodes;
    Sets s = {malloc(sizeof(int) * (size_t)(n + 1)), malloc(sizeof(int[MERGE_MAX]) * (size_t)(n + 1)), calloc((size_t)n + 1, sizeof(int))};
    if (!s.set || !s.parts || !s.nparts) {
        free(s.set), free(s.parts), free(s.nparts);
        diag_error(d, (SrcLoc){0}, "merge-linears: out of host memory");
        return PASS_FAILED;
    }
    int merges = find_sets(g->nodes, n, &s), linears = 0;
    PassResult r = merges ? PASS_CHANGED : PASS_UNCHANGED;
    if (merges) {
        IrRewrite rw;
        ir_rewrite_begin(g, &rw);
        for (int i = 0; i < rw.nold && r != PASS_FAILED; i++) {
            const IrNode *old = rw.old[i];
            if (ir_rewrite_map(&rw, old)) continue; /* a weight a merge copied early, or a part already merged */
            if (s.set[i] == i) {
                linears += s.nparts[i];
                if (!merge(g, &rw, d, s.parts[i], s.nparts[i])) r = PASS_FAILED;
            } else if (!ir_rewrite_copy(g, &rw, d, old)) r = PASS_FAILED;
        }
    }
    free(s.set), free(s.parts), free(s.nparts);
    if (r != PASS_FAILED) pass_report(c, "%d FP8 linears merged into %d GEMMs over concatenated weights", linears, merges);
    return r;
}
