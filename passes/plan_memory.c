/* plan_memory.c — one activation slab: every value that is not a weight,
 * a cache or a constant gets a byte offset, the lowest one clear of every
 * value still alive (first fit). A value is alive until ir_order_compute's
 * release position: on one stream, up to its last reader; on several, also
 * until each stream has waited past its accesses, so a buffer is never
 * reused while an op on another stream may still read or write it.
 * Results stay to the end. The free gaps are kept in an offset-ordered
 * tree (IrSpans), so planning is O(n log n). Sizes are evaluated at the
 * pass's batch, seq (new tokens) and ctx (context, default = seq), checked
 * for overflow, and recorded in the graph (g->mem_dims). The report gives
 * the slab size, what it would be without reuse, and the KV cache.
 * Offsets are 256-byte aligned. */
#include "passes/passes.h"

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
     * the larger. */
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

PassResult pass_plan_memory(PassCtx *c, IrGraph *g) {
    DiagEngine *d = pass_diag(c);
    int64_t sym[IR_MAX_DIM_SYMS];
    int t, n = g->nnodes;
    if (!bind_dims(c, g, sym, &t)) return PASS_FAILED;
    IrOrder ord;
    if (!ir_order_compute(g, d, &ord)) return PASS_FAILED;
    int *head = malloc(sizeof(int) * ((size_t)n + 1)), *next = malloc(sizeof(int) * ((size_t)n + 1));
    int64_t *size = malloc(sizeof(int64_t) * ((size_t)n + 1));
    Slab s = {ir_spans_new(), 0};
    bool ok = head && next && size && s.gaps;
    if (!ok) diag_error(d, (SrcLoc){0}, "plan-memory: out of host memory");
    for (int i = 0; ok && i <= n; i++) head[i] = -1;
    int64_t peak = 0, total = 0, kv = 0;
    for (int i = 0; ok && i < n; i++) {
        IrNode *nd = g->nodes[i];
        nd->mem = -1;
        for (int x = head[i]; x >= 0 && ok; x = next[x]) ok = slab_give(&s, g->nodes[x]->mem, size[x]);
        int64_t b;
        if (nd->op == IR_OP_KV_CACHE && !(cache_bytes(nd, sym, &b) && size_add(kv, b, &kv))) {
            diag_error(d, nd->loc, "plan-memory: the KV cache's size overflows int64 at these sizes");
            ok = false;
        }
        if (!ok || !ir_op_in_slab(nd->op)) continue;
        int64_t off = 0;
        if (!ir_value_bytes(nd, sym, &size[i]) || !size_add(total, size[i], &total) || !slab_take(&s, size[i], &off) ||
            !size_add(off, size[i], &b)) {
            StrBuf ty;
            sb_init(&ty);
            ir_type_print(g, &nd->type, &ty);
            diag_error(d, nd->loc, "plan-memory: %s %s: its bytes, or the slab's, overflow int64 at these sizes",
                       ir_op_name(nd->op), ty.data);
            sb_free(&ty);
            ok = false;
            break;
        }
        nd->mem = off;
        if (b > peak) peak = b;
        if (ord.release[i] <= n) next[i] = head[ord.release[i]], head[ord.release[i]] = i;
    }
    free(head), free(next), free(size);
    ir_spans_free(s.gaps);
    ir_order_free(&ord);
    if (!ok) return PASS_FAILED;
    g->mem_planned = true;
    memcpy(g->mem_dims, sym, sizeof sym);
    pass_report(c, "batch %lld, seq %lld, ctx %lld: activation slab %.2f MB (%.2f MB without reuse), KV cache %.2f MB",
                (long long)sym[0], (long long)pass_opt_int(c, "seq"), (long long)(t >= 0 ? sym[t] : 0), (double)peak / 1e6,
                (double)total / 1e6, (double)kv / 1e6);
    return PASS_CHANGED;
}
