/* plan_memory.c — one activation slab: every value that is not a weight
 * or a cache view gets a byte offset, chosen first-fit among the values
 * alive at the same time (liveness from program order: a value lives from
 * its op to its last reader; outputs to the end). Sizes are evaluated at
 * the pass's batch, seq (new tokens) and ctx (context, default = seq). The
 * report gives the slab size, what it would be without reuse, and the KV
 * cache. Offsets are 256-byte aligned. */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t off, size;
    int end; /* last node index reading it */
} Block;

static int64_t align(int64_t v) { return (v + 255) & ~(int64_t)255; }

PassResult pass_plan_memory(PassCtx *c, IrGraph *g) {
    int64_t batch = pass_opt_int(c, "batch"), seq = pass_opt_int(c, "seq"), ctx = pass_opt_int(c, "ctx");
    if (batch < 1 || seq < 1 || ctx < 0) {
        diag_error(pass_diag(c), ((SrcLoc){"--passes", 0, 0}), "plan-memory: batch and seq must be positive");
        return PASS_FAILED;
    }
    int64_t sym[IR_MAX_DIM_SYMS];
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) sym[i] = seq;
    sym[0] = batch;
    int t = ir_graph_find_dim(g, "T");
    if (t >= 0) sym[t] = ctx ? ctx : seq;
    for (int i = 0; i < g->nnodes; i++) { /* micro-batch dims are the batch over the parts */
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_SPLIT_BATCH) continue;
        int64_t parts = ir_node_attr_int(n, "parts", 2), whole = ir_dim_eval(n->ops[0]->type.dims[0], sym);
        for (int s = 0; s < IR_MAX_DIM_SYMS; s++)
            if (n->type.dims[0].exp[s] == 1) sym[s] = whole / parts / n->type.dims[0].coeff;
    }
    int *end = calloc((size_t)g->nnodes + 1, sizeof(int));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        end[i] = i;
        for (int k = 0; k < n->nops; k++) end[n->ops[k]->id] = i;
        if (n->op == IR_OP_OUTPUT) end[n->ops[0]->id] = g->nnodes; /* results outlive the run */
    }
    Block *live = calloc((size_t)g->nnodes + 1, sizeof(Block));
    int nlive = 0;
    int64_t peak = 0, total = 0, kv = 0;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        n->mem = -1;
        if (n->op == IR_OP_KV_CACHE) {
            int64_t b = 1;
            for (int k = 0; k < n->type.rank; k++) b *= ir_dim_eval(n->type.dims[k], sym);
            kv += b * ir_dtype_bits(n->type.dtype) / 8;
        }
        int w = 0; /* drop blocks dead before this op */
        for (int k = 0; k < nlive; k++)
            if (live[k].end >= i) live[w++] = live[k];
        nlive = w;
        if (!ir_op_in_slab(n->op)) continue;
        int64_t size = 1;
        for (int k = 0; k < n->type.rank; k++) size *= ir_dim_eval(n->type.dims[k], sym);
        size = align(size * ir_dtype_bits(n->type.dtype) / 8 + (ir_dtype_bits(n->type.dtype) < 8));
        total += size;
        /* first fit: the lowest offset clear of every live block */
        int64_t off = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int k = 0; k < nlive; k++)
                if (off < live[k].off + live[k].size && live[k].off < off + size) {
                    off = live[k].off + live[k].size;
                    moved = true;
                }
        }
        n->mem = off;
        live[nlive++] = (Block){off, size, end[i]};
        if (off + size > peak) peak = off + size;
    }
    free(end);
    free(live);
    pass_report(c, "batch %lld, seq %lld, ctx %lld: activation slab %.2f MB (%.2f MB without reuse), KV cache %.2f MB",
                (long long)batch, (long long)seq, (long long)(t >= 0 ? sym[t] : 0), (double)peak / 1e6,
                (double)total / 1e6, (double)kv / 1e6);
    return PASS_CHANGED;
}
