/* verify.c — checks a whole graph: everything ir_infer_type checks per node
 * (arity, attribute schema, shapes), plus what only the graph knows:
 * dominance, declared types against inferred ones, unique input and output
 * names, weights that share a checkpoint name but disagree on type; and for
 * a scheduled graph, that cross-stream reads are waited for and that no
 * two values sharing slab bytes can be in use at once (happens-before from
 * ir/order.c). Run after lowering, after parsing and after every pass in
 * debug builds (--verify-each). */
#include "ir/ir.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static SrcLoc node_loc(const IrNode *n) { return n->loc; }

static void type_str(const IrGraph *g, const IrType *t, StrBuf *sb) {
    sb_init(sb);
    ir_type_print(g, t, sb);
}

/* Open-addressing set of (op, name) -> first node, so the name checks stay
 * linear: the full model has thousands of weights and verify runs after
 * every pass. */
typedef struct {
    const IrNode **slot;
    size_t mask;
} NameTable;

static size_t name_hash(IrOp op, const char *s) {
    size_t h = 1469598103934665603u ^ (size_t)op;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* The first node of n's op already recorded under n's name, or NULL after
 * recording n. */
static const IrNode *name_first(NameTable *t, const IrNode *n, const char *name) {
    size_t i = name_hash(n->op, name) & t->mask;
    for (; t->slot[i]; i = (i + 1) & t->mask) {
        const IrNode *m = t->slot[i];
        if (m->op == n->op && strcmp(ir_node_attr_str(m, "name", ""), name) == 0) return m;
    }
    t->slot[i] = n;
    return NULL;
}

int ir_verify(const IrGraph *g, DiagEngine *d) {
    int errors = 0, outputs = 0;
    Arena *tmp = arena_new();
    NameTable names = {.mask = 1};
    while (names.mask + 1 < (size_t)g->nnodes * 2) names.mask = names.mask * 2 + 1;
    names.slot = arena_alloc(tmp, sizeof(IrNode *) * (names.mask + 1));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        const char *opn = ir_op_name(n->op);
        if (n->op == IR_OP_OUTPUT) outputs++; /* even a broken one: "no output" would only repeat it */
        if (n->id != i) {
            diag_error(d, node_loc(n), "%s: node id %d does not match its position %d", opn, n->id, i);
            errors++;
            continue;
        }
        bool ok = true;
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            if (!o || o->id < 0 || o->id >= i || g->nodes[o->id] != o) {
                diag_error(d, node_loc(n), "%s: operand %d is not defined before its use", opn, k);
                ok = false;
            }
        }
        if (!ok) { errors++; continue; }
        char err[512];
        IrType t;
        if (!ir_infer_type(g, n, &t, err, sizeof err)) {
            diag_error(d, node_loc(n), "%s: %s", opn, err);
            errors++;
            continue;
        }
        if (ir_op_has_result(n->op) && !ir_type_eq(&t, &n->type)) {
            StrBuf a, b;
            type_str(g, &n->type, &a);
            type_str(g, &t, &b);
            diag_error(d, node_loc(n), "%s: result type is %s but the operands give %s", opn, a.data, b.data);
            sb_free(&a);
            sb_free(&b);
            errors++;
        }
        const char *name = ir_node_attr_str(n, "name", NULL);
        if (name && (n->op == IR_OP_INPUT || n->op == IR_OP_OUTPUT)) {
            const IrNode *m = name_first(&names, n, name);
            if (m) {
                diag_error(d, node_loc(n), "%s: name \"%s\" is used twice", opn, name);
                if (m->loc.file) diag_note(d, m->loc, "first used here");
                errors++;
            }
        }
        if (name && n->op == IR_OP_WEIGHT) {
            const IrNode *m = name_first(&names, n, name);
            if (m && !ir_type_eq(&m->type, &n->type)) {
                StrBuf a, b;
                type_str(g, &n->type, &a);
                type_str(g, &m->type, &b);
                diag_error(d, node_loc(n), "weight \"%s\" is %s here but %s elsewhere", name, a.data, b.data);
                if (m->loc.file) diag_note(d, m->loc, "declared here");
                sb_free(&a);
                sb_free(&b);
                errors++;
            }
        }
    }
    arena_free(tmp);
    errors += ir_check_schedule(g, d);
    if (outputs == 0) {
        diag_error(d, (SrcLoc){0}, "graph @%s has no output", g->name);
        errors++;
    }
    return errors;
}

/* Value numbers as the printer gives them (results only, in order). */
static int *value_numbers(const IrGraph *g) {
    int *v = malloc(sizeof(int) * ((size_t)g->nnodes + 1)), k = 0;
    for (int i = 0; v && i < g->nnodes; i++) v[i] = ir_op_has_result(g->nodes[i]->op) ? k++ : -1;
    return v;
}

static int node_stream(const IrNode *n) { return n->stream < 0 ? 0 : n->stream; }

/* Reports that b's slab bytes overlap those of a, which may still be in use. */
static void report_reuse(const IrGraph *g, DiagEngine *d, const IrOrder *o, const int *vn, int a, int b, const IrSpan *sa) {
    const IrNode *na = g->nodes[a], *nb = g->nodes[b];
    if (o->release[a] == INT_MAX || o->early[a] || o->early[b]) {
        const char *what = o->early[b]                                         ? "also in use then"
                           : na->op == IR_OP_TOPK || na->op == IR_OP_GROUP_TOPK ? "kept past the step"
                           : na->op == IR_OP_INPUT                              ? "written before the step and read after this"
                           : o->early[a]                                        ? "computed from weights alone, kept from the first step on"
                                                                                : "a graph result";
        diag_error(d, nb->loc, "memory plan: %%%d = %s%s overlaps bytes [%lld, %lld) of %%%d = %s, %s", vn[b], ir_op_name(nb->op),
                   o->early[b] ? ", written before the step," : "", (long long)sa->off, (long long)(sa->off + sa->len), vn[a],
                   ir_op_name(na->op), what);
        return;
    }
    int acc = a; /* an access of a not ordered before b */
    for (int t = 0; t < o->nstreams; t++) {
        int l = o->last[(size_t)a * o->nstreams + t];
        if (l > o->before[(size_t)b * o->nstreams + t]) acc = l;
    }
    const IrNode *nx = g->nodes[acc];
    char who[64];
    if (acc == a) snprintf(who, sizeof who, "its own op");
    else snprintf(who, sizeof who, "the kernel of %s", ir_op_name(nx->op));
    diag_error(d, nb->loc,
               "memory plan: %%%d = %s on stream %d is written over bytes [%lld, %lld) of %%%d = %s, which %s on stream %d "
               "may still be accessing: nothing orders that before the write",
               vn[b], ir_op_name(nb->op), node_stream(nb), (long long)sa->off, (long long)(sa->off + sa->len), vn[a],
               ir_op_name(na->op), who, node_stream(nx));
}

typedef struct {
    const IrGraph *g;
    DiagEngine *d;
    const IrOrder *o;
    const int *vn;
    IrSpans *live;
    IrSpan *hit;
    int cap, bad;
} MemCheck;

/* Places value i ([off, off + size)) among the live ones; reports each
 * live value it overlaps that is not done before it is written. */
static bool place(MemCheck *m, int i, int64_t size) {
    const IrNode *nd = m->g->nodes[i];
    int k;
    while ((k = ir_spans_overlapping(m->live, nd->mem, nd->mem + size, m->hit, m->cap)) == m->cap) {
        IrSpan *more = realloc(m->hit, sizeof(IrSpan) * (size_t)m->cap * 2);
        if (!more) break;
        m->hit = more, m->cap *= 2;
    }
    for (int j = 0; j < k; j++)
        if (m->o->early[i] || !ir_order_done_before(m->o, m->hit[j].id, i)) {
            report_reuse(m->g, m->d, m->o, m->vn, m->hit[j].id, i, &m->hit[j]);
            m->bad++;
        }
    if (ir_spans_insert(m->live, nd->mem, size, i)) return true;
    diag_error(m->d, (SrcLoc){0}, "out of host memory checking the memory plan");
    m->bad++;
    return false;
}

int ir_check_memory(const IrGraph *g, const int64_t *bytes, DiagEngine *d) {
    IrOrder o;
    if (!ir_order_compute(g, NULL, d, &o)) return 1;
    int n = g->nnodes;
    MemCheck m = {g, d, &o, value_numbers(g), ir_spans_new(), malloc(sizeof(IrSpan) * 64), 64, 0};
    int *head = malloc(sizeof(int) * ((size_t)n + 1)), *next = malloc(sizeof(int) * ((size_t)n + 1));
    int64_t *size = malloc(sizeof(int64_t) * ((size_t)n + 1));
    bool ok = head && next && m.vn && size && m.hit && m.live;
    if (!ok) {
        diag_error(d, (SrcLoc){0}, "out of host memory checking the memory plan");
        m.bad = 1;
    }
    for (int i = 0; ok && i <= n; i++) head[i] = -1;
    for (int i = 0; ok && i < n; i++) {
        const IrNode *nd = g->nodes[i];
        size[i] = 0;
        if (nd->mem < 0 || !ir_op_has_result(nd->op)) continue;
        if (bytes) size[i] = bytes[i] < 0 ? 0 : bytes[i];
        else if (!ir_value_bytes(nd, g->mem_dims, &size[i])) size[i] = -1;
        if (size[i] < 0 || nd->mem > INT64_MAX - size[i]) {
            diag_error(d, nd->loc, "memory plan: %%%d = %s: its bytes overflow int64", m.vn[i], ir_op_name(nd->op));
            m.bad++;
            size[i] = 0;
        }
    }
    for (int pass = 0; pass < 2; pass++) /* the early values first: they are written before every op */
        for (int i = 0; ok && i < n; i++) {
            if (pass == 1)
                for (int x = head[i]; x >= 0; x = next[x]) ir_spans_remove(m.live, g->nodes[x]->mem, x);
            if (size[i] == 0 || o.early[i] != (pass == 0)) continue;
            ok = place(&m, i, size[i]);
            if (o.release[i] <= n) next[i] = head[o.release[i]], head[o.release[i]] = i;
        }
    free(head), free(next), free((void *)m.vn), free(size), free(m.hit);
    ir_spans_free(m.live);
    ir_order_free(&o);
    return m.bad;
}

int ir_check_schedule(const IrGraph *g, DiagEngine *d) {
    int bad = g->mem_planned ? ir_check_memory(g, NULL, d) : 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->stream < 0) continue;
        for (int k = 0; k < n->nwaits; k++)
            if (n->waits[k]->id >= i || n->waits[k]->stream == n->stream) {
                diag_error(d, n->loc, "%s: waits for %s on %s, which is not an earlier op of another stream",
                           ir_op_name(n->op), ir_op_name(n->waits[k]->op),
                           n->waits[k]->id >= i ? "a later op" : "its own stream");
                bad++;
            }
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            if (o->stream < 0 || o->stream == n->stream) continue; /* unscheduled data, or program order */
            bool ordered = false;
            for (int w = 0; w < n->nwaits && !ordered; w++) ordered = n->waits[w] == o;
            if (!ordered) {
                diag_error(d, n->loc, "%s on stream %d reads %s of stream %d without waiting for it", ir_op_name(n->op),
                           n->stream, ir_op_name(o->op), o->stream);
                bad++;
            }
        }
    }
    return bad;
}
