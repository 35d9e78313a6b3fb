/* overlap.c — DeepSeek's dual micro-batch overlap.
 *
 * The batch is split into `n` micro-batches (a new symbolic dim, the batch
 * over n): inputs go through split_batch, every batch-dependent op is
 * cloned per micro-batch (caches too: "layer3.kv.mb1"), outputs are joined
 * by merge_batch. Weights and what derives only from them are shared.
 *
 * Scheduling: dispatch and combine run on stream 1 (communication),
 * everything else on stream 0 (compute). An op's stage is the number of
 * communication ops on its deepest dependency path; ops are issued in the
 * order (stage, micro-batch, compute before communication, original
 * order), so micro-batch 0's dispatch is issued right after its attention
 * and travels (stream 1) while stream 0 computes micro-batch 1's attention;
 * likewise combine against the other micro-batch's experts. Every operand produced on the other stream is
 * an explicit wait (an event), which ir_check_schedule verifies. On one
 * process the values are unchanged: the CPU executor ignores streams. */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int stage, comm, mb, orig;
} Key;

static int key_cmp(const void *a, const void *b) {
    const Key *x = a, *y = b;
    if (x->stage != y->stage) return x->stage - y->stage;
    if (x->mb != y->mb) return x->mb - y->mb;
    if (x->comm != y->comm) return x->comm - y->comm;
    return x->orig - y->orig;
}

/* The batch symbol b moved to micro-batch symbol m in every dim. */
static IrType substitute(const IrType *t, int b, int m) {
    IrType r = *t;
    for (int i = 0; i < r.rank; i++) {
        r.dims[i].exp[m] = r.dims[i].exp[b];
        r.dims[i].exp[b] = 0;
    }
    return r;
}

/* Ops that would mix rows of different batch entries cannot be split. */
static const char *mixes_rows(const IrNode *n, int b) {
    const IrType *t = ir_op_has_result(n->op) ? &n->type : &n->ops[0]->type;
    if (t->rank == 0 || t->dims[0].exp[b] != 1) return "its leading axis is not the batch";
    int64_t axis = ir_node_attr_int(n, "axis", 1);
    bool has_axis = ir_node_attr(n, "axis") != NULL;
    if (has_axis && (axis == 0 || axis == -(int64_t)n->ops[0]->type.rank)) return "it works along the batch axis";
    const IrAttr *perm = ir_node_attr(n, "perm");
    if (perm && perm->u.ints.v[0] != 0) return "it moves the batch axis";
    return NULL;
}

/* Each of the first N nodes' share (shared[i]: a weight, a constant, or computed from those alone) and stage (the
 * communication ops on its deepest dependency path; the most in *stages); false, reported, at an op that mixes the
 * rows of batch symbol b's entries. */
static bool classify(IrGraph *g, DiagEngine *d, int N, int b, bool *shared, int *stage, int *stages) {
    for (int i = 0; i < N; i++) {
        const IrNode *n = g->nodes[i];
        shared[i] = ir_op_class(n->op) == IR_CLASS_WEIGHT || ir_op_class(n->op) == IR_CLASS_CONST;
        if (ir_op_computed(n->op) && n->nops) { /* derived only from weights and constants */
            shared[i] = true;
            for (int k = 0; k < n->nops; k++) shared[i] &= shared[n->ops[k]->id];
        }
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            int s = stage[o->id] + ir_op_is_comm(o->op);
            if (s > stage[i]) stage[i] = s;
        }
        if (stage[i] > *stages) *stages = stage[i];
        const char *why = shared[i] || n->op == IR_OP_OUTPUT ? NULL : mixes_rows(n, b);
        if (why) {
            diag_error(d, n->loc, "microbatch-overlap: cannot split %s across micro-batches: %s", ir_op_name(n->op), why);
            return false;
        }
    }
    return true;
}

/* Old node `old`'s copy for micro-batch mb (its operands map[id * parts + mb], or the shared copy), batch symbol b
 * moved to m, on stream 1 when it communicates, else 0, waiting for each operand made on the other stream (counted in
 * *waits); NULL after reporting. */
static IrNode *copy_op(IrGraph *g, DiagEngine *d, IrRewrite *rw, IrNode **map, const bool *shared, const IrNode *old, int mb, int parts,
                       int b, int m, int *waits) {
    IrNode *ops[64];
    for (int j = 0; j < old->nops; j++) {
        const IrNode *o = old->ops[j];
        ops[j] = shared[o->id] ? rw->map[o->id] : map[o->id * parts + mb];
    }
    IrAttr attrs[24];
    memcpy(attrs, old->attrs, sizeof(IrAttr) * (size_t)old->nattrs);
    for (int j = 0; j < old->nattrs; j++)
        if (old->op == IR_OP_KV_CACHE && strcmp(attrs[j].name, "name") == 0)
            attrs[j].u.s = arena_printf(g->arena, "%s.mb%d", attrs[j].u.s, mb);
    IrType t = substitute(&old->type, b, m);
    IrNode *n = ir_graph_add_node(g, d, old->op, ops, old->nops, attrs, old->nattrs, ir_op_declares_type(old->op) ? &t : NULL, old->loc,
                                  old->scope);
    if (!n) return NULL;
    n->stream = ir_op_is_comm(old->op);
    for (int j = 0; j < old->nops; j++)
        if (ops[j]->stream >= 0 && ops[j]->stream != n->stream) {
            bool have = false;
            for (int w = 0; w < n->nwaits; w++) have |= n->waits[w] == ops[j];
            if (have) continue;
            n->waits = arena_realloc(g->arena, n->waits, sizeof(IrNode *) * (size_t)n->nwaits, sizeof(IrNode *) * (size_t)(n->nwaits + 1));
            n->waits[n->nwaits++] = ops[j];
            (*waits)++;
        }
    return n;
}

/* Old output `old`: its value joined from the micro-batches by merge_batch (unless shared), then the output; false
 * after reporting. */
static bool join_output(IrGraph *g, DiagEngine *d, IrRewrite *rw, IrNode **map, const bool *shared, const IrNode *old, int parts) {
    const IrNode *src = old->ops[0];
    IrNode *joined = rw->map[src->id];
    if (!shared[src->id]) {
        IrNode *ops[8];
        for (int mb = 0; mb < parts; mb++) ops[mb] = map[src->id * parts + mb];
        if (!(joined = ir_graph_add_node(g, d, IR_OP_MERGE_BATCH, ops, parts, NULL, 0, &src->type, old->loc, old->scope))) return false;
        joined->stream = 0;
    }
    return ir_graph_add_node(g, d, IR_OP_OUTPUT, &joined, 1, old->attrs, old->nattrs, NULL, old->loc, old->scope) != NULL;
}

PassResult pass_overlap(PassCtx *c, IrGraph *g) {
    DiagEngine *d = pass_diag(c);
    int parts = (int)pass_opt_int(c, "n");
    if (parts < 2 || parts > 8) {
        diag_error(d, ((SrcLoc){"--passes", 0, 0}), "microbatch-overlap: n must be in 2..8");
        return PASS_FAILED;
    }
    if (g->ndims == 0 || g->ndims == IR_MAX_DIM_SYMS) {
        diag_error(d, (SrcLoc){0}, "microbatch-overlap: the graph needs a batch dim and room for one more dim");
        return PASS_FAILED;
    }
    int b = 0;
    char name[40];
    snprintf(name, sizeof name, "%s_mb", g->dim_names[b]);
    int m = ir_graph_add_dim(g, name);
    if (m < 0) {
        diag_error(d, (SrcLoc){0}, "microbatch-overlap: the graph already has a dim named %s (run the pass once)", name);
        return PASS_FAILED;
    }
    int N = g->nnodes;
    bool *shared = arena_alloc(g->arena, (size_t)N + 1);
    int *stage = arena_alloc(g->arena, sizeof(int) * (size_t)(N + 1)), stages = 0;
    if (!classify(g, d, N, b, shared, stage, &stages)) return PASS_FAILED;
    /* issue order */
    Key *keys = malloc(sizeof(Key) * (size_t)(N * parts + 1));
    int nk = 0;
    for (int i = 0; i < N; i++) {
        const IrNode *n = g->nodes[i];
        if (shared[i] || n->op == IR_OP_INPUT || n->op == IR_OP_OUTPUT) continue;
        for (int mb = 0; mb < parts; mb++) keys[nk++] = (Key){stage[i], ir_op_is_comm(n->op), mb, i};
    }
    qsort(keys, (size_t)nk, sizeof(Key), key_cmp);

    IrRewrite rw;
    ir_rewrite_begin(g, &rw);
    IrNode **map = arena_alloc(g->arena, sizeof(IrNode *) * (size_t)(N * parts + 1)); /* old id * parts + mb */
    bool ok = true;
    for (int i = 0; i < N && ok; i++) /* shared ops and inputs first */
        if (shared[i] || rw.old[i]->op == IR_OP_INPUT) ok = ir_rewrite_copy(g, &rw, d, rw.old[i]) != NULL;
    for (int i = 0; i < N && ok; i++) {
        const IrNode *old = rw.old[i];
        if (old->op != IR_OP_INPUT) continue;
        IrType t = substitute(&old->type, b, m);
        for (int mb = 0; mb < parts && ok; mb++) {
            IrAttr at[2] = {{.name = "index", .kind = IR_ATTR_INT, .u.i = mb}, {.name = "parts", .kind = IR_ATTR_INT, .u.i = parts}};
            IrNode *in = rw.map[i];
            ok = (map[i * parts + mb] = ir_graph_add_node(g, d, IR_OP_SPLIT_BATCH, &in, 1, at, 2, &t, old->loc, old->scope)) != NULL;
            if (ok) map[i * parts + mb]->stream = 0;
        }
    }
    int waits = 0;
    for (int k = 0; k < nk && ok; k++)
        ok = (map[keys[k].orig * parts + keys[k].mb] = copy_op(g, d, &rw, map, shared, rw.old[keys[k].orig], keys[k].mb, parts, b, m, &waits)) !=
             NULL;
    for (int i = 0; i < N && ok; i++)
        if (rw.old[i]->op == IR_OP_OUTPUT) ok = join_output(g, d, &rw, map, shared, rw.old[i], parts);
    free(keys);
    if (!ok) return PASS_FAILED;
    int comm = 0, compute = 0;
    for (int i = 0; i < g->nnodes; i++) comm += g->nodes[i]->stream == 1, compute += g->nodes[i]->stream == 0;
    pass_report(c, "%d micro-batches over %s: %d compute ops on stream 0, %d dispatch/combine on stream 1, %d stages, %d cross-stream waits%s",
                parts, name, compute, comm, stages + 1, waits,
                comm ? "" : " (no communication to overlap: run node-limited-routing for more than one GPU first)");
    return PASS_CHANGED;
}
