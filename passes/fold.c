/* fold.c — two cleanups. shape-infer re-derives every inferred type from
 * the operands (after hand edits or a pass that changed an operand's type)
 * and reports each change. fold-constants evaluates elementwise ops whose
 * operands are all rank-0 constants — what is left of parameter
 * expressions the DSL could not fold because they met a tensor — and
 * replaces them by a const. */
#include "passes/passes.h"

#include <math.h>

PassResult pass_shape_infer(PassCtx *c, IrGraph *g) {
    int changed = 0;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (ir_op_declares_type(n->op) || !ir_op_has_result(n->op)) continue;
        char err[512];
        IrType t;
        if (!ir_infer_type(g, n, &t, err, sizeof err)) {
            diag_error(pass_diag(c), n->loc, "%s: %s", ir_op_name(n->op), err);
            return PASS_FAILED;
        }
        if (!ir_type_eq(&t, &n->type)) {
            n->type = t;
            changed++;
        }
    }
    if (changed) pass_report(c, "%d types re-derived", changed);
    return changed ? PASS_CHANGED : PASS_UNCHANGED;
}

static bool fold(IrOp op, double a, double b, double *out) {
    switch (op) {
    case IR_OP_ADD: *out = a + b; return true;
    case IR_OP_SUB: *out = a - b; return true;
    case IR_OP_MUL: *out = a * b; return true;
    case IR_OP_DIV: *out = a / b; return b != 0;
    case IR_OP_MAX: *out = a > b ? a : b; return true;
    case IR_OP_NEG: *out = -a; return true;
    case IR_OP_EXP: *out = exp(a); return true;
    case IR_OP_SQRT: *out = sqrt(a); return a >= 0;
    case IR_OP_RSQRT: *out = 1 / sqrt(a); return a > 0;
    case IR_OP_SIGMOID: *out = 1 / (1 + exp(-a)); return true;
    case IR_OP_SILU: *out = a / (1 + exp(-a)); return true;
    case IR_OP_CAST: *out = a; return true;
    default: return false;
    }
}

PassResult pass_fold_constants(PassCtx *c, IrGraph *g) {
    IrRewrite rw;
    ir_rewrite_begin(g, &rw);
    int folded = 0;
    for (int i = 0; i < rw.nold; i++) {
        const IrNode *old = rw.old[i];
        double v[2] = {0, 0}, r;
        bool all_const = old->nops > 0 && old->nops <= 2 && old->type.rank == 0 && !ir_dtype_is_int(old->type.dtype);
        for (int k = 0; k < old->nops && all_const; k++) {
            const IrNode *o = ir_rewrite_map(&rw, old->ops[k]);
            all_const = o->op == IR_OP_CONST;
            if (all_const) v[k] = ir_node_attr_float(o, "value", 0);
        }
        IrNode *n;
        if (all_const && fold(old->op, v[0], v[1], &r) && isfinite(r)) {
            IrAttr at = {.name = "value", .kind = IR_ATTR_FLOAT, .u.f = r};
            n = ir_graph_add_node(g, pass_diag(c), IR_OP_CONST, NULL, 0, &at, 1, &old->type, old->loc, old->scope);
            rw.map[old->id] = n;
            folded++;
        } else {
            n = ir_rewrite_copy(g, &rw, pass_diag(c), old);
        }
        if (!n) return PASS_FAILED;
    }
    if (folded) pass_report(c, "folded %d ops into constants", folded);
    return folded ? PASS_CHANGED : PASS_UNCHANGED;
}
