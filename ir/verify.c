/* verify.c — checks a whole graph: everything ir_infer_type checks per node
 * (arity, attribute schema, shapes), plus what only the graph knows:
 * dominance, declared types against inferred ones, unique input and output
 * names, weights that share a checkpoint name but disagree on type. Run
 * after lowering, after parsing and (later) after every pass. */
#include "ir/ir.h"

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

int ir_check_schedule(const IrGraph *g, DiagEngine *d) {
    int bad = 0;
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
