/* dce.c — dead-code elimination: keeps what reaches an output (and every
 * kv_cache append, whose effect outlives the run), drops the rest,
 * weights included, so a later pass that replaced a weight leaves no
 * stale copy behind. */
#include "passes/passes.h"

PassResult pass_dce(PassCtx *c, IrGraph *g) {
    bool *live = arena_alloc(g->arena, (size_t)g->nnodes + 1);
    for (int i = g->nnodes - 1; i >= 0; i--) {
        const IrNode *n = g->nodes[i];
        IrOpClass cls = ir_op_class(n->op);
        if (cls == IR_CLASS_OUTPUT || cls == IR_CLASS_STATE || cls == IR_CLASS_INPUT) live[i] = true;
        if (!live[i]) continue;
        for (int k = 0; k < n->nops; k++) live[n->ops[k]->id] = true;
    }
    int dead = 0;
    for (int i = 0; i < g->nnodes; i++) dead += !live[i];
    if (!dead) return PASS_UNCHANGED;
    IrRewrite rw;
    ir_rewrite_begin(g, &rw);
    for (int i = 0; i < rw.nold; i++)
        if (live[i] && !ir_rewrite_copy(g, &rw, pass_diag(c), rw.old[i])) return PASS_FAILED;
    pass_report(c, "removed %d of %d ops", dead, rw.nold);
    return PASS_CHANGED;
}
