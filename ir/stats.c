/* stats.c — figures computed by walking the graph: parameters, parameters
 * activated per token, KV-cache bytes per token, forward FLOPs per token.
 *
 * Nothing here knows DeepSeek. A routed-expert weight is recognised by its
 * use (operand 1 of expert_linear) and counts K/E of its size as active;
 * the cache is whatever kv_cache ops the model declares. FLOPs are 2 per
 * multiply-add of linear, einsum, expert_linear and attention (causal masks
 * count only the visible keys) and 1 per output element of every other
 * compute op: the convention of model cards, where matmuls dominate.
 * On a graph in the world layout (node-limited-routing over W GPUs), the
 * values between a dispatch and its combine hold W row blocks, one per
 * rank that may send here, of which this rank computes, under uniform
 * routing, the slots of its own E/W experts: 1/W of them, its own tokens'
 * worth (tokens x top-k / W rows from each of the W ranks). Those ops count
 * 1/W of their size, so FLOPs per token do not grow with the world. */
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const IrGraph *g;
    int64_t sym[IR_MAX_DIM_SYMS];
    int64_t seq;
} Env;

static double ev(const Env *e, IrDim d) { return (double)ir_dim_eval(d, e->sym); }

static double numel(const Env *e, const IrType *t) {
    double n = 1;
    for (int i = 0; i < t->rank; i++) n *= ev(e, t->dims[i]);
    return n;
}

/* Row index for a scope's first component, adding the row if new. */
static int row_for(IrStats *st, Arena *a, const char *scope, int *cap) {
    size_t len = scope ? strcspn(scope, "/") : 5;
    const char *name = scope ? scope : "model";
    for (int i = 0; i < st->nrows; i++)
        if (strlen(st->rows[i].kind) == len && strncmp(st->rows[i].kind, name, len) == 0) return i;
    if (st->nrows == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        st->rows = arena_realloc(a, st->rows, sizeof(IrStatsRow) * (size_t)*cap, sizeof(IrStatsRow) * (size_t)ncap);
        *cap = ncap;
    }
    IrStatsRow *r = &st->rows[st->nrows];
    memset(r, 0, sizeof *r);
    r->kind = arena_strndup(a, name, len);
    return st->nrows++;
}

/* 2 x multiply-adds of one node, whole batch; 1/element for the rest. */
static double node_flops(const Env *e, const IrNode *n) {
    const IrType *out = &n->type;
    switch (n->op) {
    case IR_OP_INPUT: case IR_OP_WEIGHT: case IR_OP_CONST: case IR_OP_OUTPUT:
    case IR_OP_RESHAPE: case IR_OP_TRANSPOSE: case IR_OP_SLICE: case IR_OP_CONCAT:
    case IR_OP_KV_CACHE: case IR_OP_CAST: case IR_OP_EMBEDDING: case IR_OP_GATHER: case IR_OP_DISPATCH:
        return 0; /* data movement */
    case IR_OP_LINEAR: {
        const IrType *w = &n->ops[1]->type;
        return 2.0 * numel(e, out) * ev(e, w->dims[1]);
    }
    case IR_OP_EXPERT_LINEAR: {
        const IrType *w = &n->ops[1]->type;
        return 2.0 * numel(e, out) * ev(e, w->dims[2]);
    }
    case IR_OP_EINSUM: {
        const char *spec = ir_node_attr_str(n, "spec", "");
        double ext[26] = {0};
        const char *p = spec;
        for (int k = 0; k < 2; k++) {
            const IrType *t = &n->ops[k]->type;
            for (int i = 0; i < t->rank; i++) ext[p[i] - 'a'] = ev(e, t->dims[i]);
            if (k == 0) p = strchr(p, ',') + 1;
        }
        double prod = 1;
        for (int i = 0; i < 26; i++)
            if (ext[i] > 0) prod *= ext[i];
        return 2.0 * prod;
    }
    case IR_OP_ATTENTION: {
        const IrType *q = &n->ops[0]->type, *k = &n->ops[1]->type, *v = &n->ops[2]->type;
        double b = ev(e, q->dims[0]), s = ev(e, q->dims[1]), t = ev(e, k->dims[1]), h = ev(e, q->dims[2]);
        double pairs = ir_node_attr_bool(n, "causal", false) ? s * (t - s) + s * (s + 1) / 2 : s * t;
        return 2.0 * b * h * pairs * (ev(e, q->dims[3]) + ev(e, v->dims[3]));
    }
    default:
        return ir_op_has_result(n->op) ? numel(e, out) : 0;
    }
}

bool ir_stats_compute(const IrGraph *g, DiagEngine *d, int64_t seq_len, IrStats *out) {
    memset(out, 0, sizeof *out);
    if (g->ndims == 0) {
        diag_error(d, (SrcLoc){0}, "graph @%s declares no symbolic dims; cannot bind a batch and a sequence", g->name);
        return false;
    }
    Env e = {.g = g, .seq = seq_len};
    e.sym[0] = 1;
    for (int i = 1; i < IR_MAX_DIM_SYMS; i++) e.sym[i] = seq_len;
    Arena *a = g->arena;
    int cap = 0;
    /* Per weight: the K/E fraction when used by expert_linear, else 1. */
    double *frac = arena_alloc(a, sizeof(double) * (size_t)(g->nnodes + 1));
    for (int i = 0; i < g->nnodes; i++) frac[i] = 1.0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_EXPERT_LINEAR) continue;
        const IrType *w = &n->ops[1]->type, *idx = &n->ops[2]->type;
        double f = ev(&e, idx->dims[1]) / ev(&e, w->dims[0]);
        if (f < frac[n->ops[1]->id]) frac[n->ops[1]->id] = f;
    }
    /* The world layout: per node, the share of its size this rank computes
     * (1/W between a dispatch and its combine, else 1). */
    double *share = arena_alloc(a, sizeof(double) * (size_t)(g->nnodes + 1));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        share[i] = 1.0;
        if (n->op == IR_OP_DISPATCH)
            share[i] = 1.0 / (double)(ir_node_attr_int(n, "nodes", 1) * ir_node_attr_int(n, "gpus_per_node", 1));
        else if (n->op != IR_OP_COMBINE)
            for (int k = 0; k < n->nops; k++)
                if (share[n->ops[k]->id] < share[i]) share[i] = share[n->ops[k]->id];
    }
    /* Two forms of a value (fresh_select: MLA's attn_impl=auto): the step
     * counted has nothing cached (T = S), so only what the first operand
     * needs computes; from the roots back, as the executors pick. */
    bool any = false, *step = arena_alloc(a, (size_t)g->nnodes + 1);
    for (int i = 0; i < g->nnodes; i++) any |= g->nodes[i]->op == IR_OP_FRESH_SELECT;
    for (int i = g->nnodes - 1; i >= 0; i--) {
        const IrNode *n = g->nodes[i];
        IrOpClass c = ir_op_class(n->op);
        step[i] |= !any || c == IR_CLASS_OUTPUT || c == IR_CLASS_STATE || c == IR_CLASS_COMM;
        for (int k = 0; step[i] && k < n->nops; k++)
            if (n->op != IR_OP_FRESH_SELECT || k == 0) step[n->ops[k]->id] = true;
    }
    /* Tokens in a (batch 1) forward: every new position. For KV bytes, the
     * cache entry of one token is the operand's size per (B, S) element. */
    double tokens = (double)seq_len;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        int ri = row_for(out, a, n->scope, &cap); /* may move rows */
        IrStatsRow *r = &out->rows[ri];
        r->nodes++;
        if (n->op == IR_OP_WEIGHT) {
            for (int k = 0; k < n->type.rank; k++)
                if (!ir_dim_is_const(n->type.dims[k])) {
                    diag_error(d, n->loc, "weight %s has a symbolic shape", ir_node_attr_str(n, "name", "?"));
                    return false;
                }
            int64_t cnt;
            if (!ir_type_numel_at(&n->type, NULL, &cnt) || !size_add(r->params, cnt, &r->params) ||
                !size_add(out->total.params, cnt, &out->total.params)) {
                diag_error(d, n->loc, "weight %s: the model's parameter count overflows int64", ir_node_attr_str(n, "name", "?"));
                return false;
            }
            r->active_params += (double)cnt * frac[i];
        } else if (n->op == IR_OP_KV_CACHE) {
            const IrType *x = &n->ops[0]->type;
            double elems = numel(&e, x) / (ev(&e, x->dims[0]) * ev(&e, x->dims[1]));
            double bytes = elems * ir_dtype_bits(x->dtype) / 8;
            if (!(bytes < 0x1p62) || !size_add(r->kv_bytes_per_token, (int64_t)bytes, &r->kv_bytes_per_token) ||
                !size_add(out->total.kv_bytes_per_token, (int64_t)bytes, &out->total.kv_bytes_per_token)) {
                diag_error(d, n->loc, "kv_cache: the cache bytes per token overflow int64");
                return false;
            }
        }
        if (step[i]) r->flops_per_token += node_flops(&e, n) * share[i] / tokens;
    }
    IrStatsRow *t = &out->total;
    t->kind = "total";
    for (int i = 0; i < out->nrows; i++) { /* params were summed, checked, above */
        t->active_params += out->rows[i].active_params;
        t->flops_per_token += out->rows[i].flops_per_token;
        t->nodes += out->rows[i].nodes;
    }
    return true;
}

/* ---- one node at run-time dims (the runtime's per-kernel figures) ------ */

double ir_stats_node_flops(const IrNode *n, const int64_t *sym) {
    Env e = {.g = NULL};
    memcpy(e.sym, sym, sizeof e.sym);
    switch (n->op) { /* the FP8 forms count as the linears they replace: w is operand 2 */
    case IR_OP_FP8_LINEAR:
        return 2.0 * numel(&e, &n->type) * ev(&e, n->ops[2]->type.dims[1]);
    case IR_OP_FP8_EXPERT_LINEAR:
        return 2.0 * numel(&e, &n->type) * ev(&e, n->ops[2]->type.dims[2]);
    default:
        return node_flops(&e, n);
    }
}

double ir_stats_node_bytes(const IrNode *n, int k, const int64_t *sym, int bits) {
    Env e = {.g = NULL};
    memcpy(e.sym, sym, sizeof e.sym);
    if (k < 0) /* the result; a cache stores only the new positions */
        return numel(&e, n->op == IR_OP_KV_CACHE ? &n->ops[0]->type : &n->type) * bits / 8;
    const IrType *t = &n->ops[k]->type;
    double elems = numel(&e, t);
    if ((n->op == IR_OP_EMBEDDING || n->op == IR_OP_GATHER) && k == 0) elems = numel(&e, &n->type);
    int idx = n->op == IR_OP_EXPERT_LINEAR ? 2 : n->op == IR_OP_FP8_EXPERT_LINEAR ? 4 : -1;
    bool stacked = idx >= 0 && (n->op == IR_OP_EXPERT_LINEAR ? k == 1 : k == 2 || k == 3);
    if (stacked && t->rank > 0) { /* at most one slice per (token, choice) */
        double slices = ev(&e, t->dims[0]), used = numel(&e, &n->ops[idx]->type);
        if (slices > 0 && used < slices) elems *= used / slices;
    }
    return elems * bits / 8;
}

/* ---- per-GPU memory ------------------------------------------------------------ */

static int64_t numel_at(const IrType *t, const int64_t *sym) {
    int64_t n = 1;
    for (int k = 0; k < t->rank; k++) n *= ir_dim_eval(t->dims[k], sym);
    return n;
}

static int64_t bytes_of(const IrType *t, const int64_t *sym) { return (numel_at(t, sym) * ir_dtype_bits(t->dtype) + 7) / 8; }

/* plan-memory's bindings: batch, seq, T = ctx, micro-batch dims the batch over the parts (rounded up). */
static void plan_bindings(const IrGraph *g, int64_t batch, int64_t seq, int64_t ctx, int64_t *sym) {
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) sym[i] = seq;
    sym[0] = batch;
    int t = ir_graph_find_dim(g, "T");
    if (t >= 0) sym[t] = ctx ? ctx : seq;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_SPLIT_BATCH) continue;
        int64_t parts = ir_node_attr_int(n, "parts", 2), whole = ir_dim_eval(n->ops[0]->type.dims[0], sym);
        for (int s = 0; s < IR_MAX_DIM_SYMS; s++)
            if (n->type.dims[0].exp[s] == 1 && parts > 0 && n->type.dims[0].coeff > 0) /* the larger part of an odd split */
                sym[s] = ((whole + parts - 1) / parts + n->type.dims[0].coeff - 1) / n->type.dims[0].coeff;
    }
}

bool ir_stats_memory(const IrGraph *g, DiagEngine *d, int gpus, int64_t batch, int64_t seq, int64_t ctx, IrMemStats *out) {
    memset(out, 0, sizeof *out);
    int64_t sym[IR_MAX_DIM_SYMS];
    plan_bindings(g, batch, seq, ctx, sym);
    unsigned char *wv = malloc((size_t)g->nnodes + 1);
    if (!wv || !ir_weight_values(g, NULL, wv)) {
        free(wv);
        diag_error(d, (SrcLoc){0}, "out of host memory sizing the weights");
        return false;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        bool held = wv[i] == IR_WV_DERIVED && (!g->mem_planned || n->mem == IR_MEM_WEIGHTS);
        if (wv[i] == IR_WV_DERIVED && !held) continue; /* computed where it is read */
        if (wv[i] == IR_WV_LOAD || held) {
            int64_t b = bytes_of(&n->type, sym);
            if (wv[i] == IR_WV_LOAD) out->load_only_bytes += b;
            else out->derived_bytes += b, out->replicated_bytes += b;
        } else if (n->op == IR_OP_WEIGHT) {
            int64_t b = bytes_of(&n->type, sym);
            if (!ir_node_attr_str(n, "stack", NULL)) {
                out->replicated_bytes += b;
                continue;
            }
            int64_t count = ir_dim_eval(n->type.dims[0], sym), share = (count + gpus - 1) / gpus;
            if (count % gpus) {
                diag_error(d, n->loc, "weight %s stacks %lld slices, which do not spread evenly over %d GPUs",
                           ir_node_attr_str(n, "name", "?"), (long long)count, gpus);
                free(wv);
                return false;
            }
            out->expert_bytes += b / count * share;
            if (count > out->experts) {
                out->experts = count;
                out->experts_per_gpu = share;
            }
        } else if (n->mem >= 0 && ir_op_has_result(n->op)) {
            int bits = ir_dtype_bits(n->type.dtype); /* as plan-memory sizes a block: 256-byte aligned */
            int64_t numel = numel_at(&n->type, sym);
            int64_t end = n->mem + ((numel * bits / 8 + (bits < 8) + 255) & ~(int64_t)255);
            if (end > out->activation_bytes) out->activation_bytes = end;
        }
    }
    free(wv);
    return true;
}
