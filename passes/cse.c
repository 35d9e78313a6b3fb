/* cse.c — common-subexpression elimination: two ops with the same op,
 * operands, attributes and type compute the same value, so the second one
 * is replaced by the first. Inputs, weights (already one per checkpoint
 * name), caches and outputs are never merged. A hash on (op, operands)
 * keeps this linear in the graph size. */
#include "passes/passes.h"

#include <string.h>

static bool attr_eq(const IrAttr *a, const IrAttr *b) {
    if (strcmp(a->name, b->name) != 0 || a->kind != b->kind) return false;
    switch (a->kind) {
    case IR_ATTR_INT: return a->u.i == b->u.i;
    case IR_ATTR_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
    case IR_ATTR_BOOL: return a->u.b == b->u.b;
    case IR_ATTR_STR: return strcmp(a->u.s, b->u.s) == 0;
    case IR_ATTR_DTYPE: return a->u.t == b->u.t;
    case IR_ATTR_INTS:
        return a->u.ints.n == b->u.ints.n && memcmp(a->u.ints.v, b->u.ints.v, sizeof(int64_t) * (size_t)a->u.ints.n) == 0;
    }
    return false;
}

static bool same(const IrNode *a, const IrNode *b) {
    if (a->op != b->op || a->nops != b->nops || a->nattrs != b->nattrs || !ir_type_eq(&a->type, &b->type)) return false;
    for (int i = 0; i < a->nops; i++)
        if (a->ops[i] != b->ops[i]) return false;
    for (int i = 0; i < a->nattrs; i++)
        if (!attr_eq(&a->attrs[i], &b->attrs[i])) return false;
    return true;
}

static bool mergeable(IrOp op) {
    return ir_op_computed(op) && ir_op_class(op) != IR_CLASS_STATE; /* inputs, weights, caches: identity by name */
}

PassResult pass_cse(PassCtx *c, IrGraph *g) {
    IrRewrite rw;
    ir_rewrite_begin(g, &rw);
    size_t nb = 1;
    while (nb < (size_t)rw.nold * 2) nb <<= 1;
    IrNode **table = arena_alloc(g->arena, sizeof(IrNode *) * nb);
    int merged = 0;
    for (int i = 0; i < rw.nold; i++) {
        const IrNode *old = rw.old[i];
        IrNode *n = ir_rewrite_copy(g, &rw, pass_diag(c), old);
        if (!n) return PASS_FAILED;
        if (!mergeable(n->op)) continue;
        uint64_t h = (uint64_t)n->op * 0x9e3779b97f4a7c15ull;
        for (int k = 0; k < n->nops; k++) h = (h ^ (uint64_t)n->ops[k]->id) * 0x100000001b3ull;
        for (size_t s = h & (nb - 1);; s = (s + 1) & (nb - 1)) {
            if (!table[s]) {
                table[s] = n;
                break;
            }
            if (same(table[s], n)) {
                /* drop the copy just made: it is the last node */
                g->nnodes--;
                rw.map[old->id] = table[s];
                merged++;
                break;
            }
        }
    }
    if (merged) pass_report(c, "merged %d ops", merged);
    return merged ? PASS_CHANGED : PASS_UNCHANGED;
}
