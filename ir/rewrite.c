/* rewrite.c — graph rewriting for passes: the node list is rebuilt in
 * program order, old nodes mapped to new ones, so every pass output goes
 * through ir_graph_add_node and its shape rules again. */
#include "ir/ir.h"

#include <string.h>

void ir_rewrite_begin(IrGraph *g, IrRewrite *rw) {
    rw->old = g->nodes;
    rw->nold = g->nnodes;
    rw->map = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(g->nnodes + 1));
    g->nodes = NULL;
    g->nnodes = g->cap = 0;
}

IrNode *ir_rewrite_map(const IrRewrite *rw, const IrNode *old) {
    return old && old->id >= 0 && old->id < rw->nold && rw->old[old->id] == old ? rw->map[old->id] : NULL;
}

IrNode *ir_rewrite_copy(IrGraph *g, IrRewrite *rw, DiagEngine *d, const IrNode *old) {
    IrNode **ops = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(old->nops ? old->nops : 1));
    for (int i = 0; i < old->nops; i++) {
        ops[i] = ir_rewrite_map(rw, old->ops[i]);
        IR_ASSERT(ops[i] != NULL);
    }
    IrNode *n = ir_graph_add_node(g, d, old->op, ops, old->nops, old->attrs, old->nattrs,
                                  ir_op_declares_type(old->op) ? &old->type : NULL, old->loc, old->scope);
    if (n) {
        n->group = old->group;
        n->mem = old->mem;
        n->stream = old->stream;
        if (old->nwaits) { /* waits on ops already copied follow them */
            n->waits = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)old->nwaits);
            for (int i = 0; i < old->nwaits; i++)
                if ((n->waits[n->nwaits] = ir_rewrite_map(rw, old->waits[i]))) n->nwaits++;
        }
    }
    rw->map[old->id] = n;
    return n;
}

void ir_mark_output_producers(const IrGraph *g, bool *out) {
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_OUTPUT) continue;
        const IrNode *p = n->ops[0];
        while (p->op == IR_OP_CAST || p->op == IR_OP_RESHAPE) p = p->ops[0];
        out[p->id] = true;
    }
}
