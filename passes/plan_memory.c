/* plan_memory.c — the activation slab of the kernels the CUDA backend
 * runs: one byte offset per stored value, the lowest one clear of every
 * value still alive (first fit), which the runtime takes as they are.
 *
 * First the schedule: the ops are put in the order the kernels run, the
 * ops of each fused group together, groups in a topological order that
 * takes, among the ready ones, the one whose first op came first (the
 * order codegen's order_groups takes, which on the reordered graph is
 * program order). Then which values are stored, and in which dtype: what
 * the code generator decides (cg_stored_values; without codegen, every
 * value in the declared dtype, f32 for 16-bit floats with f32-storage=1).
 * A value is alive until ir_order_compute's release positions: accesses
 * count by kernel, a read of an inlined value reads its operands, and an
 * op of stream t may reuse the block only from the position where every
 * later op of t starts after its accesses (its writer, its readers, on any
 * stream), so a buffer is never reused while an op on another stream may
 * still read or write it. The block goes back to the free gaps at the main
 * stream's (stream 0) position, and stays pending for another stream until
 * its own (Frees below). Values of weights alone that kernels of their
 * own compute (ir_weight_values: DERIVED, JOINED) are not in the slab: the
 * backend holds them with the weights, computed (or loaded in place) at
 * load; their mem is IR_MEM_WEIGHTS. Inputs and the values of weights alone
 * fused with ops of the step are placed before everything else (written
 * before the step); results, routing choices and those values stay to
 * the end. The free gaps are
 * kept in an offset-ordered tree (IrSpans): O(n log n). Sizes are
 * evaluated at the pass's batch (padded to whole micro-batches), seq (new
 * tokens) and ctx (context, default = seq), checked for overflow, and
 * recorded in the graph (g->mem_dims). The report gives the slab size,
 * what it would be without reuse, the KV cache, and the values held with
 * the weights. Offsets are 256-byte
 * aligned. */
#include "passes/passes.h"

#ifdef DSCC_HAVE_NVRTC
#include "codegen/gen.h"
#endif

#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    IrSpans *gaps; /* free ranges below top, coalesced; id 0 */
    int64_t top;   /* end of the highest block in use */
} Slab;

/* Lowest offset for size bytes: the first gap that fits, else the top. */
static bool slab_take(Slab *s, int64_t size, int64_t *off) {
    IrSpan gap;
    if (size == 0) { /* takes no bytes */
        *off = 0;
        return true;
    }
    if (ir_spans_first_fit(s->gaps, size, &gap)) {
        ir_spans_remove(s->gaps, gap.off, 0);
        *off = gap.off;
        return gap.len == size || ir_spans_insert(s->gaps, gap.off + size, gap.len - size, 0);
    }
    *off = s->top;
    return size_add(s->top, size, &s->top);
}

/* Returns [off, off+size) to the free ranges, joined with its neighbours. */
static bool slab_give(Slab *s, int64_t off, int64_t size) {
    if (size == 0) return true;
    int64_t lo = off, hi = off + size;
    IrSpan gap;
    if (ir_spans_before(s->gaps, lo, &gap) && gap.off + gap.len == lo) {
        ir_spans_remove(s->gaps, gap.off, 0);
        lo = gap.off;
    }
    if (ir_spans_at(s->gaps, hi, &gap)) {
        ir_spans_remove(s->gaps, gap.off, 0);
        hi += gap.len;
    }
    if (hi == s->top) {
        s->top = lo;
        return true;
    }
    return ir_spans_insert(s->gaps, lo, hi - lo, 0);
}

/* The lowest x >= *x with [x, x + size) clear of every span of `avoid`
 * and x + size <= end; false when there is none below end. */
static bool clear_of(const IrSpans *avoid, int64_t *x, int64_t size, int64_t end) {
    IrSpan h;
    while (*x <= end - size) {
        if (ir_spans_overlapping(avoid, *x, *x + size, &h, 1) == 0) return true;
        *x = h.off + h.len;
    }
    return false;
}

/* First fit, as slab_take, among bytes clear of `avoid`: the blocks still
 * pending for the allocating op's stream. */
static bool slab_take_avoiding(Slab *s, const IrSpans *avoid, int64_t size, int64_t *off) {
    IrSpan gap;
    if (size == 0) {
        *off = 0;
        return true;
    }
    for (int64_t pos = 0; ir_spans_overlapping(s->gaps, pos, INT64_MAX, &gap, 1) == 1; pos = gap.off + gap.len) {
        int64_t x = gap.off, end = gap.off + gap.len;
        if (!clear_of(avoid, &x, size, end)) continue;
        ir_spans_remove(s->gaps, gap.off, 0);
        *off = x;
        return (x == gap.off || ir_spans_insert(s->gaps, gap.off, x - gap.off, 0)) &&
               (x + size == end || ir_spans_insert(s->gaps, x + size, end - x - size, 0));
    }
    int64_t x = s->top;
    if (!clear_of(avoid, &x, size, INT64_MAX) || (x > s->top && !ir_spans_insert(s->gaps, s->top, x - s->top, 0))) return false;
    *off = x;
    return size_add(x, size, &s->top);
}

/* The value of every dim at the pass's options; false on bad options. */
static bool bind_dims(PassCtx *c, IrGraph *g, int64_t *sym, int *t) {
    int64_t batch = pass_opt_int(c, "batch"), seq = pass_opt_int(c, "seq"), ctx = pass_opt_int(c, "ctx");
    if (batch < 1 || seq < 1 || ctx < 0) {
        diag_error(pass_diag(c), ((SrcLoc){"--passes", 0, 0}), "plan-memory: batch and seq must be positive");
        return false;
    }
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) sym[i] = seq;
    sym[0] = batch;
    *t = ir_graph_find_dim(g, "T");
    if (*t >= 0) sym[*t] = ctx ? ctx : seq;
    /* A micro-batch dim is the batch over the parts, rounded up: an odd
     * batch (or a batch of 1) splits into unequal parts, and the plan holds
     * the larger; the whole batch is padded to whole parts (as the runtime
     * pads it). */
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_SPLIT_BATCH) {
            int64_t parts = ir_node_attr_int(g->nodes[i], "parts", 2);
            if (parts > 1) sym[0] = (batch + parts - 1) / parts * parts;
        }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_SPLIT_BATCH) continue;
        int64_t parts = ir_node_attr_int(n, "parts", 2), whole = ir_dim_eval(n->ops[0]->type.dims[0], sym);
        for (int s = 0; s < IR_MAX_DIM_SYMS; s++)
            if (n->type.dims[0].exp[s] == 1 && parts > 0 && n->type.dims[0].coeff > 0)
                sym[s] = ((whole + parts - 1) / parts + n->type.dims[0].coeff - 1) / n->type.dims[0].coeff;
    }
    return true;
}

/* Bytes of a cache's whole context (not in the slab). */
static bool cache_bytes(const IrNode *n, const int64_t *sym, int64_t *out) {
    int64_t b = 1;
    bool ok = true;
    for (int k = 0; k < n->type.rank; k++) ok = ok && size_mul(b, ir_dim_eval(n->type.dims[k], sym), &b);
    ok = ok && size_mul(b, ir_dtype_bits(n->type.dtype), &b);
    *out = b / 8;
    return ok;
}

/* A binary heap of units keyed by their first op. */
typedef struct {
    int *v, n;
    const int *key;
} Heap;

/* cg_fold_hoists (codegen/gen.h) on the graph before its schedule: NULL in *hoist with nothing to hoist. False after an
 * error. */
static bool fold_hoists(PassCtx *c, const IrGraph *g, int **hoist) {
    *hoist = NULL;
#ifdef DSCC_HAVE_NVRTC
    Arena *a = arena_new();
    CgGenOptions o = {.f32_storage = pass_opt_int(c, "f32-storage") != 0, .tune = pass_tune(c)};
    const int *r = a ? cg_fold_hoists(a, pass_diag(c), g, &o) : NULL;
    int n = g->nnodes, any = 0;
    for (int i = 0; r && i < n; i++) any |= r[i] >= 0;
    if (r && any && (*hoist = malloc(sizeof(int) * ((size_t)n + 1)))) memcpy(*hoist, r, sizeof(int) * (size_t)n);
    arena_free(a);
    if (!r || (any && !*hoist)) {
        if (a && r) diag_error(pass_diag(c), (SrcLoc){0}, "plan-memory: out of host memory");
        return false;
    }
#else
    (void)c, (void)g;
#endif
    return true;
}

static void heap_push(Heap *h, int u) {
    int i = h->n++;
    for (; i > 0 && h->key[h->v[(i - 1) / 2]] > h->key[u]; i = (i - 1) / 2) h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = u;
}

static int heap_pop(Heap *h) {
    int top = h->v[0], u = h->v[--h->n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->key[h->v[c + 1]] < h->key[h->v[c]]) c++;
        if (h->key[h->v[c]] >= h->key[u]) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = u;
    return top;
}

/* The units (a fused group, or one op of none) and their dependences
 * (operands and waits) as lists; false without memory. */
typedef struct {
    int nu, *unit, *first, *mstart, *members, *estart, *edst, *indeg;
} Units;

/* Per group, the group whose kernel runs it: itself, except a kv_cache's
 * group of it alone whose input codegen stores with the append
 * (absorb_caches: the input fusible, in a group without a template, rank
 * >= 2, on the cache's stream, one cache per input): the input's group.
 * The schedule keeps them together, as the kernel is: merge-linears puts
 * the latent's ops (a slice of the merged q_a + kv_a GEMM) before q_b's
 * GEMM, and the cache append after it. NULL without memory. */
static int *cache_groups(const IrGraph *g, int ng) {
    int n = g->nnodes, *alias = malloc(sizeof(int) * ((size_t)ng + 1)), *size = calloc((size_t)ng + 1, sizeof(int));
    bool *tm = calloc((size_t)ng + 1, 1), *taken = calloc((size_t)n + 1, 1);
    if (!alias || !size || !tm || !taken) {
        free(alias), free(size), free(tm), free(taken);
        return NULL;
    }
    for (int k = 0; k < ng; k++) alias[k] = k;
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->group >= 0) {
            size[g->nodes[i]->group]++;
            tm[g->nodes[i]->group] |= !ir_op_fusible(g->nodes[i]->op);
        }
    for (int i = 0; i < n; i++) {
        const IrNode *c = g->nodes[i], *x = c->nops ? c->ops[0] : NULL;
        if (c->op != IR_OP_KV_CACHE || c->group < 0 || size[c->group] != 1 || c->nwaits || !x || x->group < 0 ||
            !ir_op_fusible(x->op) || tm[x->group] || x->type.rank < 2 || c->stream != x->stream || taken[x->id])
            continue;
        taken[x->id] = true;
        alias[c->group] = x->group;
    }
    free(size), free(tm), free(taken);
    return alias;
}

static bool units_build(const IrGraph *g, Units *u) {
    int n = g->nnodes, ng = 0, ne = 0;
    for (int i = 0; i < n; i++) {
        if (g->nodes[i]->group + 1 > ng) ng = g->nodes[i]->group + 1;
        ne += g->nodes[i]->nops + g->nodes[i]->nwaits;
    }
    int *gunit = malloc(sizeof(int) * ((size_t)ng + 1));
    u->unit = malloc(sizeof(int) * ((size_t)n + 1)), u->first = malloc(sizeof(int) * ((size_t)n + 1));
    u->mstart = calloc((size_t)n + 2, sizeof(int)), u->members = malloc(sizeof(int) * ((size_t)n + 1));
    u->estart = calloc((size_t)n + 2, sizeof(int)), u->edst = malloc(sizeof(int) * ((size_t)ne + 1));
    u->indeg = calloc((size_t)n + 1, sizeof(int));
    if (!gunit || !u->unit || !u->first || !u->mstart || !u->members || !u->estart || !u->edst || !u->indeg) {
        free(gunit);
        return false;
    }
    for (int k = 0; k < ng; k++) gunit[k] = -1;
    int *alias = cache_groups(g, ng);
    if (!alias) {
        free(gunit);
        return false;
    }
    u->nu = 0;
    for (int i = 0; i < n; i++) {
        int grp = g->nodes[i]->group >= 0 ? alias[g->nodes[i]->group] : -1;
        if (grp >= 0 && gunit[grp] >= 0) u->unit[i] = gunit[grp];
        else {
            u->unit[i] = u->nu;
            u->first[u->nu++] = i;
            if (grp >= 0) gunit[grp] = u->unit[i];
        }
        u->mstart[u->unit[i] + 1]++;
    }
    free(gunit), free(alias);
    for (int k = 0; k < u->nu; k++) u->mstart[k + 1] += u->mstart[k];
    for (int i = 0, *at = u->indeg; i < n; i++) u->members[u->mstart[u->unit[i]] + at[u->unit[i]]++] = i;
    memset(u->indeg, 0, sizeof(int) * ((size_t)n + 1));
    for (int pass = 0; pass < 2; pass++) /* count, then fill, the edges from each unit */
        for (int i = 0; i < n; i++) {
            const IrNode *x = g->nodes[i];
            for (int k = 0; k < x->nops + x->nwaits; k++) {
                int y = (k < x->nops ? x->ops[k] : x->waits[k - x->nops])->id, from = u->unit[y], to = u->unit[i];
                if (from == to) continue;
                if (pass == 0) u->estart[from + 1]++;
                else u->edst[u->estart[from]++] = to, u->indeg[to]++;
            }
            if (pass == 0 && i == n - 1)
                for (int k = 0; k < u->nu; k++) u->estart[k + 1] += u->estart[k];
        }
    for (int k = u->nu; k > 0; k--) u->estart[k] = u->estart[k - 1]; /* the fill moved each start to its end */
    u->estart[0] = 0;
    return true;
}

static void units_free(Units *u) {
    free(u->unit), free(u->first), free(u->mstart), free(u->members), free(u->estart), free(u->edst), free(u->indeg);
}

/* With hoists (cg_fold_hoists): key[k] of each unit an hoisted linear depends on, itself included, lowered to its x
 * quantize's unit's, so the linear launches as soon as that unit has run, ahead of the other readers of its x. */
static void hoist_keys(const IrGraph *g, const Units *u, const int *hoist, int *key) {
    int n = g->nnodes;
    size_t cap = 1;
    for (int i = 0; i < n; i++) cap += (size_t)(g->nodes[i]->nops + g->nodes[i]->nwaits);
    int *stack = malloc(sizeof(int) * cap); /* each unit is entered once: its members' operands at most once each */
    for (int i = 0; stack && i < n; i++) {
        if (hoist[i] < 0) continue;
        const int kq = key[u->unit[hoist[i]]];
        int top = 0;
        stack[top++] = i;
        while (top > 0) { /* each node at most once: a unit whose key is kq already is not entered again */
            const IrNode *x = g->nodes[stack[--top]];
            if (key[u->unit[x->id]] <= kq) continue;
            key[u->unit[x->id]] = kq;
            for (int m = u->mstart[u->unit[x->id]]; m < u->mstart[u->unit[x->id] + 1]; m++) {
                const IrNode *y = g->nodes[u->members[m]];
                for (int k = 0; k < y->nops + y->nwaits; k++)
                    stack[top++] = (k < y->nops ? y->ops[k] : y->waits[k - y->nops])->id;
            }
        }
    }
    free(stack);
}

/* Puts the ops in kernel order (see the file comment); renumbers them. hoist: NULL, or cg_fold_hoists'. */
static bool schedule(IrGraph *g, DiagEngine *d, const int *hoist) {
    int n = g->nnodes, at = 0;
    Units u;
    memset(&u, 0, sizeof u);
    IrNode **old = malloc(sizeof(IrNode *) * ((size_t)n + 1));
    int *key = malloc(sizeof(int) * ((size_t)n + 1));
    Heap h = {malloc(sizeof(int) * ((size_t)n + 1)), 0, key};
    bool ok = old && key && h.v && units_build(g, &u);
    if (!ok) diag_error(d, (SrcLoc){0}, "plan-memory: out of host memory");
    if (ok) memcpy(key, u.first, sizeof(int) * (size_t)u.nu);
    if (ok && hoist) hoist_keys(g, &u, hoist, key);
    if (ok) memcpy(old, g->nodes, sizeof(IrNode *) * (size_t)n);
    for (int k = 0; ok && k < u.nu; k++)
        if (u.indeg[k] == 0) heap_push(&h, k);
    while (ok && h.n > 0) {
        int k = heap_pop(&h);
        for (int m = u.mstart[k]; m < u.mstart[k + 1]; m++) {
            g->nodes[at] = old[u.members[m]];
            g->nodes[at]->id = at;
            at++;
        }
        for (int e = u.estart[k]; e < u.estart[k + 1]; e++)
            if (--u.indeg[u.edst[e]] == 0) heap_push(&h, u.edst[e]);
    }
    if (ok && at < n) { /* the fuse pass never makes a cycle */
        memcpy(g->nodes, old, sizeof(IrNode *) * (size_t)n);
        for (int i = 0; i < n; i++) g->nodes[i]->id = i;
        diag_error(d, (SrcLoc){0}, "plan-memory: the fused groups depend on each other in a cycle");
        ok = false;
    }
    units_free(&u);
    free(old), free(h.v), free(key);
    return ok;
}

/* What the kernels store (cg_stored_values), less weights and caches. */
static bool slab_values(PassCtx *c, const IrGraph *g, bool wide, bool *stored, IrDType *dtype) {
#ifdef DSCC_HAVE_NVRTC
    Arena *a = arena_new();
    IrDType *dt = NULL;
    CgGenOptions o = {.f32_storage = wide, .tune = pass_tune(c)};
    const bool *st = a ? cg_stored_values(a, g, &o, &dt) : NULL;
    for (int i = 0; st && i < g->nnodes; i++) {
        IrOp op = g->nodes[i]->op;
        stored[i] = st[i] && ir_op_has_result(op) && op != IR_OP_WEIGHT && op != IR_OP_KV_CACHE;
        dtype[i] = dt[i];
    }
    arena_free(a);
    if (st) return true;
    diag_error(pass_diag(c), (SrcLoc){0}, "plan-memory: out of host memory");
    return false;
#else
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        stored[i] = ir_op_in_slab(n->op);
        dtype[i] = wide && (n->type.dtype == IR_DT_BF16 || n->type.dtype == IR_DT_F16) ? IR_DT_F32 : n->type.dtype;
    }
    return true;
#endif
}

/* Which values the kernels store in the slab (a weight or cache has
 * memory of its own, and so do the values of weights alone computed at
 * load: ir_weight_values), and their dtypes. */
static bool storage(PassCtx *c, const IrGraph *g, bool *stored, IrDType *dtype, bool *kept) {
    bool wide = pass_opt_int(c, "f32-storage") != 0;
    unsigned char *wv = malloc((size_t)g->nnodes + 1);
    bool ok = wv && slab_values(c, g, wide, stored, dtype);
    if (ok && !ir_weight_values(g, stored, wv)) {
        diag_error(pass_diag(c), (SrcLoc){0}, "plan-memory: out of host memory");
        ok = false;
    }
    for (int i = 0; ok && i < g->nnodes; i++) {
        kept[i] = stored[i] && ir_wv_kept(wv[i]);
        stored[i] &= !kept[i];
    }
    free(wv);
    return ok;
}

/* Per node, an op whose kernel also reads the value though the graph does
 * not say so (cg_fold_reads: an fp8_linear that computes its x from its
 * row group's inputs), or -1; into also (NULL: none). False after an error. */
static bool also_reads(PassCtx *c, const IrGraph *g, bool wide, int **also) {
    *also = NULL;
#ifdef DSCC_HAVE_NVRTC
    Arena *a = arena_new();
    CgGenOptions o = {.f32_storage = wide, .tune = pass_tune(c)};
    const int *r = a ? cg_fold_reads(a, pass_diag(c), g, &o) : NULL;
    int n = g->nnodes;
    if (r && (*also = malloc(sizeof(int) * ((size_t)n + 1)))) memcpy(*also, r, sizeof(int) * (size_t)n);
    arena_free(a);
    if (!r || !*also) {
        if (a && r) diag_error(pass_diag(c), (SrcLoc){0}, "plan-memory: out of host memory");
        return false;
    }
#else
    (void)c, (void)g, (void)wide;
#endif
    return true;
}

typedef struct {
    Slab s;
    int64_t peak, total;
} Plan;

/* Gives value i of `size` bytes its offset (clear of `avoid` unless NULL);
 * false after reporting an overflow. */
static bool place(PassCtx *c, IrGraph *g, Plan *p, int i, int64_t size, bool sized, const IrSpans *avoid) {
    IrNode *nd = g->nodes[i];
    int64_t off = 0, end = 0;
    if (!sized || !size_add(p->total, size, &p->total) ||
        !(avoid ? slab_take_avoiding(&p->s, avoid, size, &off) : slab_take(&p->s, size, &off)) || !size_add(off, size, &end)) {
        StrBuf ty;
        sb_init(&ty);
        ir_type_print(g, &nd->type, &ty);
        diag_error(pass_diag(c), nd->loc, "plan-memory: %s %s: its bytes, or the slab's, overflow int64 at these sizes",
                   ir_op_name(nd->op), ty.data);
        sb_free(&ty);
        return false;
    }
    nd->mem = off;
    if (end > p->peak) p->peak = end;
    return true;
}

/* Blocks freed, and still pending on the other streams: a value's bytes go
 * back to the slab at its release for the main stream (that of the most
 * ops, stream 0); an op of another stream t may take them only from its
 * release for t on (until then they are in pend[t]). An op starting after
 * every access of the value is all either needs (ir_order_done_before). */
typedef struct {
    IrSpans *pend[IR_ORDER_MAX_STREAMS];
    int *head, *next, *ehead, *enext, *ev, main;
} Frees;

static bool frees_at(IrGraph *g, const IrOrder *o, Slab *s, Frees *f, const int64_t *size, int i) {
    bool ok = true;
    int S = o->nstreams, n = g->nnodes;
    for (int x = f->head[i]; x >= 0 && ok; x = f->next[x]) {
        ok = slab_give(s, g->nodes[x]->mem, size[x]);
        for (int t = 0; t < S && ok; t++) {
            int r = o->release_on[(size_t)x * S + t];
            if (t == f->main || r <= i || size[x] == 0) continue;
            ok = ir_spans_insert(f->pend[t], g->nodes[x]->mem, size[x], x);
            int e = x * S + t; /* its end, at r */
            if (r <= n) f->ev[e] = x, f->enext[e] = f->ehead[r], f->ehead[r] = e;
        }
    }
    for (int e = f->ehead[i]; e >= 0; e = f->enext[e]) ir_spans_remove(f->pend[e % S], g->nodes[f->ev[e]]->mem, f->ev[e]);
    return ok;
}

/* First fit in program order, the early values first; blocks are freed
 * at their releases (see Frees). */
static bool lay_out(PassCtx *c, IrGraph *g, const bool *stored, const IrDType *dtype, const int64_t *sym, Plan *p) {
    DiagEngine *d = pass_diag(c);
    int n = g->nnodes, *also;
    IrOrder ord;
    if (!also_reads(c, g, pass_opt_int(c, "f32-storage") != 0, &also)) return false;
    const bool ordered = ir_order_compute_with(g, stored, also, d, &ord);
    free(also);
    if (!ordered) return false;
    int S = ord.nstreams;
    size_t cells = (size_t)n * (size_t)S + 1;
    Frees f = {.head = malloc(sizeof(int) * ((size_t)n + 1)), .next = malloc(sizeof(int) * ((size_t)n + 1)),
               .ehead = malloc(sizeof(int) * ((size_t)n + 1)), .enext = malloc(sizeof(int) * cells), .ev = malloc(sizeof(int) * cells)};
    int64_t *size = malloc(sizeof(int64_t) * ((size_t)n + 1));
    p->s = (Slab){ir_spans_new(), 0};
    bool ok = f.head && f.next && f.ehead && f.enext && f.ev && size && p->s.gaps;
    for (int i = 0; i < n && ok; i++)
        if (g->nodes[i]->stream <= 0) {
            f.main = ord.stream[i];
            break;
        }
    for (int t = 0; t < S && ok; t++) ok = (f.pend[t] = ir_spans_new()) != NULL;
    if (!ok) diag_error(d, (SrcLoc){0}, "plan-memory: out of host memory");
    for (int i = 0; ok && i <= n; i++) f.head[i] = f.ehead[i] = -1;
    for (int i = 0; ok && i < n; i++) g->nodes[i]->mem = -1, size[i] = 0;
    for (int step = 0; step < 2; step++)
        for (int i = 0; ok && i < n; i++) {
            if (step) ok = frees_at(g, &ord, &p->s, &f, size, i);
            if (!ok || !stored[i] || ord.early[i] != (step == 0)) continue;
            bool sized = ir_value_bytes_as(g->nodes[i], dtype[i], sym, &size[i]);
            int t = ord.stream[i];
            ok = place(c, g, p, i, size[i], sized, t == f.main ? NULL : f.pend[t]);
            int r = ord.release_on[(size_t)i * S + f.main];
            if (r <= n) f.next[i] = f.head[r], f.head[r] = i;
        }
    free(f.head), free(f.next), free(f.ehead), free(f.enext), free(f.ev), free(size);
    for (int t = 0; t < S; t++) ir_spans_free(f.pend[t]);
    ir_spans_free(p->s.gaps);
    ir_order_free(&ord);
    return ok;
}

PassResult pass_plan_memory(PassCtx *c, IrGraph *g) {
    DiagEngine *d = pass_diag(c);
    int64_t sym[IR_MAX_DIM_SYMS], kv = 0;
    int t;
    int *hoist = NULL;
    if (!bind_dims(c, g, sym, &t) || !fold_hoists(c, g, &hoist) || !schedule(g, d, hoist)) {
        free(hoist);
        return PASS_FAILED;
    }
    free(hoist);
    int n = g->nnodes;
    bool *stored = malloc((size_t)n + 1), *kept = malloc((size_t)n + 1);
    IrDType *dtype = malloc(sizeof(IrDType) * ((size_t)n + 1));
    Plan p = {{NULL, 0}, 0, 0};
    bool ok = stored && kept && dtype;
    if (!ok) diag_error(d, (SrcLoc){0}, "plan-memory: out of host memory");
    ok = ok && storage(c, g, stored, dtype, kept) && lay_out(c, g, stored, dtype, sym, &p);
    int64_t held = 0, b;
    for (int i = 0; ok && i < n; i++) /* values of weights alone: with the weights */
        if (kept[i]) {
            g->nodes[i]->mem = IR_MEM_WEIGHTS;
            if (!ir_value_bytes_as(g->nodes[i], dtype[i], sym, &b) || !size_add(held, b, &held)) {
                diag_error(d, g->nodes[i]->loc, "plan-memory: the values of weights alone overflow int64 bytes");
                ok = false;
            }
        }
    for (int i = 0; ok && i < n; i++)
        if (g->nodes[i]->op == IR_OP_KV_CACHE && !(cache_bytes(g->nodes[i], sym, &b) && size_add(kv, b, &kv))) {
            diag_error(d, g->nodes[i]->loc, "plan-memory: the KV cache's size overflows int64 at these sizes");
            ok = false;
        }
    free(stored), free(kept), free(dtype);
    if (!ok) return PASS_FAILED;
    g->mem_planned = true;
    memcpy(g->mem_dims, sym, sizeof sym);
    pass_report(c, "batch %lld, seq %lld, ctx %lld: activation slab %.2f MB (%.2f MB without reuse), KV cache %.2f MB, "
                "values of weights alone held with the weights %.2f MB",
                (long long)sym[0], (long long)pass_opt_int(c, "seq"), (long long)(t >= 0 ? sym[t] : 0), (double)p.peak / 1e6,
                (double)p.total / 1e6, (double)kv / 1e6, (double)held / 1e6);
    return PASS_CHANGED;
}
