/* order.c — happens-before over a scheduled graph, and from it when each
 * value's slab bytes may be reused; shared by the plan-memory pass (which
 * frees blocks there) and the schedule checker (which verifies a plan).
 *
 * Accesses count by kernel (a fused group's accesses at its last op) and
 * through values that are not stored (a reader recomputes them from their
 * operands): see ir.h. Each op records, per stream, the latest op known
 * complete when it starts (a vector clock): its stream's previous op, and each op it waits for
 * with everything that op knew. These clocks only grow along a stream, so
 * the first op of a stream that starts after every access of a value is
 * found by binary search: O(n log n) in all. */
#include "ir/ir.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

bool ir_value_bytes(const IrNode *n, const int64_t *sym, int64_t *out) { return ir_value_bytes_as(n, n->type.dtype, sym, out); }

bool ir_value_bytes_as(const IrNode *n, IrDType dt, const int64_t *sym, int64_t *out) {
    int64_t numel = 1, bits = ir_dtype_bits(dt);
    bool ok = true;
    for (int k = 0; k < n->type.rank; k++) {
        int64_t d = ir_dim_eval(n->type.dims[k], sym);
        ok = ok && d != INT64_MAX && size_mul(numel, d, &numel);
    }
    int64_t b = 0;
    ok = ok && size_mul(numel, bits, &b) && size_add(b / 8, bits < 8, &b) && size_add(b, 255, &b);
    *out = ok ? b & ~(int64_t)255 : INT64_MAX;
    return ok;
}

void ir_order_free(IrOrder *o) {
    free(o->before);
    free(o->last);
    free(o->release);
    free(o->early);
    free(o->release_on);
    free(o->stream);
    memset(o, 0, sizeof *o);
}

/* Stream index of n (stream -1 is stream 0), or -1 past the limit. */
static int stream_index(int *ids, int *nids, int stream) {
    if (stream < 0) stream = 0;
    for (int s = 0; s < *nids; s++)
        if (ids[s] == stream) return s;
    if (*nids == IR_ORDER_MAX_STREAMS) return -1;
    ids[*nids] = stream;
    return (*nids)++;
}

/* Whether op x starts after every access recorded in last[0..S). */
static bool starts_after(const IrOrder *o, int x, const int *last) {
    for (int u = 0; u < o->nstreams; u++)
        if (o->before[(size_t)x * o->nstreams + u] < last[u]) return false;
    return true;
}

/* release[a]: the latest op, over the streams, that may still not start
 * after a's accesses, plus one; release_on[a][t] the same on stream t
 * alone. on[t] lists stream t's ops in order. */
static int release_of(IrOrder *o, int a, int *const *on, const int *non) {
    const int *last = o->last + (size_t)a * o->nstreams;
    int r = a + 1;
    for (int t = 0; t < o->nstreams; t++) {
        int *rt = &o->release_on[(size_t)a * o->nstreams + t];
        int lo = 0, hi = non[t]; /* first op of stream t that starts after every access */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (starts_after(o, on[t][mid], last)) hi = mid;
            else lo = mid + 1;
        }
        *rt = lo > 0 && on[t][lo - 1] + 1 > a + 1 ? on[t][lo - 1] + 1 : a + 1;
        if (*rt > r) r = *rt;
    }
    return r;
}

/* Per node: the last op of its fused group (the kernel's accesses count
 * there), or itself. */
static int *group_ends(const IrGraph *g) {
    int n = g->nnodes, ng = 0;
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->group + 1 > ng) ng = g->nodes[i]->group + 1;
    int *end = malloc(sizeof(int) * ((size_t)n + 1)), *last = malloc(sizeof(int) * ((size_t)ng + 1));
    if (!end || !last) {
        free(end), free(last);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->group >= 0) last[g->nodes[i]->group] = i;
    for (int i = 0; i < n; i++) end[i] = g->nodes[i]->group >= 0 ? last[g->nodes[i]->group] : i;
    free(last);
    return end;
}

/* Which values live from before the first op to the end of the step:
 * early[i] for inputs and values of weights alone (konst[i]). */
static void mark_early(const IrGraph *g, const bool *stored, bool *early, bool *konst) {
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *x = g->nodes[i];
        konst[i] = x->op == IR_OP_WEIGHT;
        if (x->nops > 0 && ir_op_computed(x->op) && x->op != IR_OP_KV_CACHE) {
            konst[i] = true;
            for (int k = 0; k < x->nops; k++) konst[i] &= konst[x->ops[k]->id];
        }
        early[i] = stored[i] && (x->op == IR_OP_INPUT || (konst[i] && x->op != IR_OP_WEIGHT));
    }
}

/* Records that op i (on stream index s, counting at position at) accesses
 * value a: a itself when stored, else (recomputed) its operands, unless a
 * is of the same kernel (whose reads of them count at the same end). */
static void record_read(const IrGraph *g, const bool *stored, const int *end, IrOrder *o, int *stack, int *stamp, int i, int s, int at,
                        int a) {
    int top = 0, S = o->nstreams;
    if (stamp[a] == i) return;
    stamp[a] = i;
    stack[top++] = a;
    while (top > 0) { /* each value pushed once per reader: at most n on the stack */
        int v = stack[--top];
        const IrNode *y = g->nodes[v];
        if (stored[v] || !ir_op_computed(y->op) || !ir_op_in_slab(y->op)) {
            int *lv = o->last + (size_t)v * S;
            if (at > lv[s]) lv[s] = at;
            continue;
        }
        if (end[v] >= at) continue; /* its kernel's reads of its operands count there already */
        for (int k = 0; k < y->nops; k++) {
            int u = y->ops[k]->id;
            if (u >= 0 && u < v && stamp[u] != i) stamp[u] = i, stack[top++] = u;
        }
    }
}

/* Vector clocks (before), per-stream last accesses (last) and the values
 * never released, in one walk over the ops. */
static void walk(const IrGraph *g, const bool *stored, const int *sidx, const int *end, IrOrder *o, int *state, int **on, int *non,
                 int *stack, int *stamp, const int *ahead, const int *anext) {
    int n = g->nnodes, S = o->nstreams;
    for (int i = 0; i < n; i++) {
        const IrNode *x = g->nodes[i];
        int s = sidx[i], *b = o->before + (size_t)i * S, *l = o->last + (size_t)i * S;
        memcpy(b, state + s * S, sizeof(int) * (size_t)S);
        /* a kernel starts after every wait of its ops (the first op of a
         * group takes the group's), and a wait is for a whole kernel */
        bool kstart = x->group >= 0 && (i == 0 || g->nodes[i - 1]->group != x->group);
        for (int j = i; j <= (kstart ? end[i] : i); j++)
            for (int w = 0; j == i || g->nodes[j]->group == x->group ? w < g->nodes[j]->nwaits : false; w++) {
                int y = g->nodes[j]->waits[w]->id;
                if (y < 0 || y >= i) continue; /* the checker reports it */
                if (end[y] < i) y = end[y];
                const int *by = o->before + (size_t)y * S;
                for (int t = 0; t < S; t++) b[t] = by[t] > b[t] ? by[t] : b[t];
                if (y > b[sidx[y]]) b[sidx[y]] = y;
            }
        memcpy(state + s * S, b, sizeof(int) * (size_t)S);
        state[s * S + s] = i;
        on[s][non[s]++] = i;
        if (l[s] < end[i]) l[s] = end[i]; /* its kernel writes it */
        bool keep = x->op == IR_OP_TOPK || x->op == IR_OP_GROUP_TOPK || o->early[i];
        if (keep && x->op != IR_OP_INPUT) o->release[i] = INT_MAX;
        for (int k = 0; k < x->nops; k++) {
            const IrNode *a = x->ops[k];
            if (a->id < 0 || a->id >= i) continue;
            if (x->op == IR_OP_OUTPUT) o->release[a->id] = INT_MAX; /* results outlive the run */
            record_read(g, stored, end, o, stack, stamp, i, s, end[i], a->id);
        }
        for (int v = ahead ? ahead[i] : -1; v >= 0; v = anext[v]) /* reads the graph does not show (also_read) */
            record_read(g, stored, end, o, stack, stamp, i, s, end[i], v);
    }
}

bool ir_order_compute(const IrGraph *g, const bool *stored_in, DiagEngine *d, IrOrder *o) {
    return ir_order_compute_with(g, stored_in, NULL, d, o);
}

bool ir_order_compute_with(const IrGraph *g, const bool *stored_in, const int *also_read, DiagEngine *d, IrOrder *o) {
    memset(o, 0, sizeof *o);
    int n = g->nnodes, ids[IR_ORDER_MAX_STREAMS], S = 0;
    int *sidx = malloc(sizeof(int) * ((size_t)n + 1));
    for (int i = 0; sidx && i < n; i++)
        if ((sidx[i] = stream_index(ids, &S, g->nodes[i]->stream)) < 0) {
            diag_error(d, g->nodes[i]->loc, "%s: more than %d streams in one graph", ir_op_name(g->nodes[i]->op),
                       IR_ORDER_MAX_STREAMS);
            free(sidx);
            return false;
        }
    if (S == 0) S = 1;
    o->n = n;
    o->nstreams = S;
    size_t cells = (size_t)n * (size_t)S + 1;
    o->before = malloc(sizeof(int) * cells);
    o->last = malloc(sizeof(int) * cells);
    o->release = malloc(sizeof(int) * ((size_t)n + 1));
    o->early = calloc((size_t)n + 1, sizeof(bool));
    o->release_on = malloc(sizeof(int) * cells);
    o->stream = malloc(sizeof(int) * ((size_t)n + 1));
    int *state = malloc(sizeof(int) * (size_t)(S * S)), *non = calloc((size_t)S, sizeof(int)), *end = group_ends(g);
    int *stack = malloc(sizeof(int) * ((size_t)n + 1)), *stamp = malloc(sizeof(int) * ((size_t)n + 1));
    bool *stored = malloc((size_t)n + 1), *konst = malloc((size_t)n + 1);
    int **on = calloc((size_t)S, sizeof(int *));
    int *ahead = also_read ? malloc(sizeof(int) * ((size_t)n + 1)) : NULL, *anext = also_read ? malloc(sizeof(int) * ((size_t)n + 1)) : NULL;
    for (int i = 0; ahead && anext && i < n; i++) ahead[i] = -1;
    for (int v = n - 1; ahead && anext && v >= 0; v--) { /* by reader: the values it also reads (only later readers count) */
        const int r = also_read[v];
        anext[v] = -1;
        if (r > v && r < n) anext[v] = ahead[r], ahead[r] = v;
    }
    bool ok = (!also_read || (ahead && anext)) && sidx && o->before && o->last && o->release && o->early && o->release_on && o->stream && state && non && on && end &&
              stack && stamp && stored && konst;
    for (int t = 0; ok && t < S; t++) ok = (on[t] = malloc(sizeof(int) * ((size_t)n + 1))) != NULL;
    if (!ok) diag_error(d, (SrcLoc){0}, "out of host memory ordering %d ops", n);
    for (int i = 0; ok && i < S * S; i++) state[i] = -1;
    for (int i = 0; ok && i < n; i++) {
        const IrNode *x = g->nodes[i];
        stored[i] = ir_op_has_result(x->op) &&
                    (stored_in ? stored_in[i] : g->mem_planned ? x->mem >= 0 : ir_op_in_slab(x->op));
        stamp[i] = -1;
        o->release[i] = 0;
        o->stream[i] = sidx[i];
        for (int t = 0; t < S; t++) o->last[(size_t)i * S + t] = -1;
    }
    if (ok) mark_early(g, stored, o->early, konst);
    if (ok) walk(g, stored, sidx, end, o, state, on, non, stack, stamp, ahead, anext);
    for (int i = 0; ok && i < n; i++)
        if (o->release[i] != INT_MAX) o->release[i] = release_of(o, i, on, non);
        else
            for (int t = 0; t < S; t++) o->release_on[(size_t)i * S + t] = INT_MAX;
    for (int t = 0; on && t < S; t++) free(on[t]);
    free(on), free(non), free(state), free(sidx), free(end), free(stack), free(stamp), free(stored), free(konst), free(ahead), free(anext);
    if (!ok) ir_order_free(o);
    return ok;
}

bool ir_order_done_before(const IrOrder *o, int a, int b) {
    if (o->release[a] == INT_MAX) return false;
    const int *last = o->last + (size_t)a * o->nstreams;
    return starts_after(o, b, last);
}

/* ---- values of weights alone ----------------------------------------------- */

/* An IR_WV_DERIVED concat that the weights it joins can load straight into. */
static bool joinable(const IrNode *c, const int *uses, const int *members, int gid) {
    int64_t axis = ir_node_attr_int(c, "axis", 0);
    if (c->op != IR_OP_CONCAT || c->type.rank < 1 || members[gid] != 1 || ir_dtype_bits(c->type.dtype) < 8 ||
        (axis < 0 ? axis + c->type.rank : axis) != 0)
        return false;
    for (int k = 0; k < c->nops; k++) {
        const IrNode *w = c->ops[k];
        if (w->op != IR_OP_WEIGHT || ir_node_attr_str(w, "stack", NULL) || uses[w->id] != 1 || w->type.dtype != c->type.dtype) return false;
    }
    return true;
}

void ir_step_needs(const IrGraph *g, int f, bool *need) {
    memset(need, 0, (size_t)g->nnodes);
    for (int i = g->nnodes - 1; i >= 0; i--) { /* program order has operands first: readers are seen before them */
        const IrNode *n = g->nodes[i];
        const IrOpClass c = ir_op_class(n->op);
        need[i] |= c == IR_CLASS_OUTPUT || c == IR_CLASS_STATE || c == IR_CLASS_COMM;
        for (int k = 0; need[i] && k < n->nops; k++)
            if (n->op != IR_OP_FRESH_SELECT || k == f) need[n->ops[k]->id] = true;
    }
}

void ir_weights_only(const IrGraph *g, bool *c) {
    for (int i = 0; i < g->nnodes; i++) { /* in program order: operands first */
        const IrNode *n = g->nodes[i];
        c[i] = n->op == IR_OP_WEIGHT;
        if (n->op == IR_OP_INPUT || n->op == IR_OP_WEIGHT || n->op == IR_OP_KV_CACHE || n->op == IR_OP_OUTPUT || n->nops == 0) continue;
        c[i] = true;
        for (int k = 0; k < n->nops; k++) c[i] &= c[n->ops[k]->id];
    }
}

/* Per node, whether a DERIVED value is held in memory: held[i], else as
 * plan-memory marked it (IR_MEM_WEIGHTS), else (no plan) every one. */
static bool is_held(const IrGraph *g, const bool *held, int i) {
    return held ? held[i] : g->mem_planned ? g->nodes[i]->mem == IR_MEM_WEIGHTS : true;
}

bool ir_weight_values(const IrGraph *g, const bool *held, unsigned char *kind) {
    int n = g->nnodes, ng = 0;
    for (int i = 0; i < n; i++) ng = g->nodes[i]->group + 1 > ng ? g->nodes[i]->group + 1 : ng;
    bool *konst = malloc((size_t)n + 1), *ok = malloc((size_t)(ng + n) + 1);
    int *uses = calloc((size_t)n + 1, sizeof(int)), *members = calloc((size_t)(ng + n) + 1, sizeof(int));
    if (!konst || !ok || !uses || !members) {
        free(konst), free(ok), free(uses), free(members);
        return false;
    }
#define GID(x) ((x)->group >= 0 ? (x)->group : ng + (x)->id)
    for (int k = 0; k < ng + n; k++) ok[k] = true;
    for (int i = 0; i < n; i++) { /* konst as mark_early's; a group is a candidate when all of it is */
        const IrNode *x = g->nodes[i];
        konst[i] = x->op == IR_OP_WEIGHT;
        if (x->nops > 0 && ir_op_computed(x->op) && x->op != IR_OP_KV_CACHE) {
            konst[i] = true;
            for (int k = 0; k < x->nops; k++) konst[i] &= konst[x->ops[k]->id];
        }
        for (int k = 0; k < x->nops; k++) uses[x->ops[k]->id]++;
        members[GID(x)]++;
        ok[GID(x)] &= konst[i] && x->op != IR_OP_WEIGHT;
    }
    for (bool changed = true; changed;) { /* a group reads only weights, itself and kept groups: flags only fall */
        changed = false;
        for (int i = 0; i < n; i++) {
            const IrNode *x = g->nodes[i];
            for (int k = 0; k < x->nops && ok[GID(x)]; k++) {
                const IrNode *o = x->ops[k];
                if (o->op != IR_OP_WEIGHT && GID(o) != GID(x) && !ok[GID(o)]) ok[GID(x)] = false, changed = true;
            }
        }
    }
    for (int i = 0; i < n; i++) kind[i] = ok[GID(g->nodes[i])] ? IR_WV_DERIVED : IR_WV_NONE;
    for (int i = 0; i < n; i++) {
        const IrNode *x = g->nodes[i];
        if (kind[i] != IR_WV_DERIVED || !is_held(g, held, i) || !joinable(x, uses, members, GID(x))) continue;
        kind[i] = IR_WV_JOINED;
        for (int k = 0; k < x->nops; k++) kind[x->ops[k]->id] = IR_WV_PART;
    }
#undef GID
    /* read by the step (konst now means that): an operand of an op that is
     * not DERIVED, or of a DERIVED value the step recomputes where it reads
     * it (one not held that the step reads); readers come after operands */
    for (int i = 0; i < n; i++) konst[i] = false;
    for (int i = n - 1; i >= 0; i--) {
        const IrNode *x = g->nodes[i];
        bool step = kind[i] != IR_WV_DERIVED || (konst[i] && !is_held(g, held, i));
        for (int k = 0; k < x->nops && step && kind[i] != IR_WV_JOINED; k++) konst[x->ops[k]->id] = true;
    }
    for (int i = 0; i < n; i++) {
        const IrNode *x = g->nodes[i];
        if (x->op == IR_OP_WEIGHT && kind[i] == IR_WV_NONE && uses[i] > 0 && !konst[i] && !ir_node_attr_str(x, "stack", NULL))
            kind[i] = IR_WV_LOAD;
    }
    free(konst), free(ok), free(uses), free(members);
    return true;
}

/* ---- spans: an offset-ordered set of byte ranges ----------------------- */

/* A treap keyed by (off, id): a pseudo-random priority keeps it balanced in
 * expectation, and each node keeps the longest span and the furthest end
 * of its subtree, for first-fit and overlap queries. */
typedef struct {
    int64_t off, len, maxlen, maxend;
    uint32_t pri;
    int l, r, id;
} SpanNode;

struct IrSpans {
    SpanNode *v; /* v[0] unused: 0 is the empty tree */
    int n, cap, root, free_list;
    uint32_t seed;
};

IrSpans *ir_spans_new(void) {
    IrSpans *t = calloc(1, sizeof *t);
    if (t) t->seed = 2463534242u;
    return t;
}

void ir_spans_free(IrSpans *t) {
    if (t) free(t->v);
    free(t);
}

static void pull(SpanNode *v, int x) {
    SpanNode *p = &v[x];
    p->maxlen = p->len;
    p->maxend = p->off + p->len;
    for (int c = 0; c < 2; c++) {
        int k = c ? p->r : p->l;
        if (!k) continue;
        if (v[k].maxlen > p->maxlen) p->maxlen = v[k].maxlen;
        if (v[k].maxend > p->maxend) p->maxend = v[k].maxend;
    }
}

static bool key_less(const SpanNode *a, int64_t off, int id) { return a->off < off || (a->off == off && a->id < id); }

/* Splits x into keys < (off, id) and the rest. */
static void split(SpanNode *v, int x, int64_t off, int id, int *lo, int *hi) {
    if (!x) {
        *lo = *hi = 0;
        return;
    }
    if (key_less(&v[x], off, id)) {
        split(v, v[x].r, off, id, &v[x].r, hi);
        *lo = x;
    } else {
        split(v, v[x].l, off, id, lo, &v[x].l);
        *hi = x;
    }
    pull(v, x);
}

static int merge(SpanNode *v, int a, int b) {
    if (!a || !b) return a ? a : b;
    if (v[a].pri > v[b].pri) {
        v[a].r = merge(v, v[a].r, b);
        pull(v, a);
        return a;
    }
    v[b].l = merge(v, a, v[b].l);
    pull(v, b);
    return b;
}

bool ir_spans_insert(IrSpans *t, int64_t off, int64_t len, int id) {
    int x = t->free_list;
    if (x) t->free_list = t->v[x].l;
    else {
        if (t->n + 1 >= t->cap) {
            int ncap = t->cap ? t->cap * 2 : 256;
            SpanNode *nv = realloc(t->v, sizeof(SpanNode) * (size_t)ncap);
            if (!nv) return false;
            t->v = nv;
            t->cap = ncap;
        }
        x = ++t->n;
    }
    t->seed ^= t->seed << 13, t->seed ^= t->seed >> 17, t->seed ^= t->seed << 5;
    t->v[x] = (SpanNode){off, len, len, off + len, t->seed, 0, 0, id};
    int a, b;
    split(t->v, t->root, off, id, &a, &b);
    t->root = merge(t->v, merge(t->v, a, x), b);
    return true;
}

bool ir_spans_remove(IrSpans *t, int64_t off, int id) {
    int a, b, m, c;
    split(t->v, t->root, off, id, &a, &b);
    split(t->v, b, off, id + 1, &m, &c);
    t->root = merge(t->v, a, c);
    if (!m) return false;
    t->v[m].l = t->free_list; /* m is a single node: keys are unique */
    t->free_list = m;
    return true;
}

bool ir_spans_first_fit(const IrSpans *t, int64_t len, IrSpan *out) {
    const SpanNode *v = t->v;
    int x = t->root;
    if (!x || v[x].maxlen < len) return false;
    for (;;) {
        if (v[x].l && v[v[x].l].maxlen >= len) x = v[x].l;
        else if (v[x].len >= len) break;
        else x = v[x].r;
    }
    *out = (IrSpan){v[x].off, v[x].len, v[x].id};
    return true;
}

bool ir_spans_before(const IrSpans *t, int64_t pos, IrSpan *out) {
    const SpanNode *v = t->v;
    int best = 0;
    for (int x = t->root; x;)
        if (v[x].off < pos) best = x, x = v[x].r;
        else x = v[x].l;
    if (best) *out = (IrSpan){v[best].off, v[best].len, v[best].id};
    return best != 0;
}

bool ir_spans_at(const IrSpans *t, int64_t pos, IrSpan *out) {
    const SpanNode *v = t->v;
    int best = 0;
    for (int x = t->root; x;)
        if (v[x].off >= pos) best = x, x = v[x].l;
        else x = v[x].r;
    if (!best || v[best].off != pos) return false;
    *out = (IrSpan){v[best].off, v[best].len, v[best].id};
    return true;
}

static int overlapping(const SpanNode *v, int x, int64_t lo, int64_t hi, IrSpan *out, int max, int n) {
    if (!x || n >= max || v[x].maxend <= lo) return n;
    n = overlapping(v, v[x].l, lo, hi, out, max, n);
    if (v[x].off >= hi || n >= max) return n;
    if (v[x].off + v[x].len > lo) out[n++] = (IrSpan){v[x].off, v[x].len, v[x].id};
    return overlapping(v, v[x].r, lo, hi, out, max, n);
}

int ir_spans_overlapping(const IrSpans *t, int64_t lo, int64_t hi, IrSpan *out, int max) {
    return overlapping(t->v, t->root, lo, hi, out, max, 0);
}
