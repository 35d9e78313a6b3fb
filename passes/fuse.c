/* fuse.c — groups ops into kernels and records the group on each node.
 *
 * GEMMs, attention, embedding, routing, cache updates and communication
 * are kernels of their own. Elementwise ops, norms, RoPE, softmax/sum, FP8
 * quantization and layout ops (slice, concat, transpose: a fused kernel
 * indexes through them) join the group of an operand when none of their
 * other operands depends on that group, which keeps the kernel graph
 * acyclic — so add -> rmsnorm -> act_scale -> quantize, or silu * mul ->
 * quantize, become one kernel, while a residual add never joins the norm
 * that feeds the GEMM it waits for. Constants and reshapes go with their
 * reader. The pass changes no value: the CPU executor computes identical
 * logits before and after it. */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

/* Kernels per top-level scope: distinct groups among its ops. */
static void report_scopes(PassCtx *c, IrGraph *g) {
    bool *seen = arena_alloc(g->arena, (size_t)g->nnodes + 1);
    for (int i = 0; i < g->nnodes; i++) {
        const char *s = g->nodes[i]->scope ? g->nodes[i]->scope : "model";
        size_t len = strcspn(s, "/");
        bool first = true;
        for (int j = 0; j < i && first; j++) {
            const char *t = g->nodes[j]->scope ? g->nodes[j]->scope : "model";
            first = !(strcspn(t, "/") == len && strncmp(s, t, len) == 0);
        }
        if (!first) continue;
        memset(seen, 0, (size_t)g->nnodes + 1);
        int ops = 0, kern = 0;
        for (int j = 0; j < g->nnodes; j++) {
            const IrNode *n = g->nodes[j];
            const char *t = n->scope ? n->scope : "model";
            if (strcspn(t, "/") != len || strncmp(s, t, len) != 0 || !ir_op_own_kernel(n->op) || n->group < 0) continue;
            ops++;
            if (!seen[n->group]) kern++, seen[n->group] = true;
        }
        pass_report(c, "  %.*s: %d ops -> %d kernels", (int)len, s, ops, kern);
    }
}

PassResult pass_fuse(PassCtx *c, IrGraph *g) {
    /* deps[n] = the groups n depends on, transitively: a node may join group
     * G only if none of its other operands depends on G, which keeps the
     * kernel graph acyclic (a residual add never joins the norm before the
     * GEMM it waits for). */
    size_t words = ((size_t)g->nnodes + 64) / 64;
    uint64_t *deps = calloc((size_t)g->nnodes * words + 1, sizeof(uint64_t));
    if (!deps) {
        diag_error(pass_diag(c), (SrcLoc){0}, "fuse: out of host memory");
        return PASS_FAILED;
    }
#define DEP(n) (deps + (size_t)(n)->id * words)
#define HAS(n, grp) ((DEP(n)[(grp) / 64] >> ((grp) % 64)) & 1)
    int groups = 0, before = 0;
    for (int i = 0; i < g->nnodes; i++) g->nodes[i]->group = -1;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        uint64_t *dn = DEP(n);
        if (!ir_op_own_kernel(n->op)) { /* placed with their reader, but dependencies flow through them */
            for (int k = 0; k < n->nops; k++) {
                const IrNode *o = n->ops[k];
                for (size_t w = 0; w < words; w++) dn[w] |= DEP(o)[w];
                if (o->group >= 0) dn[o->group / 64] |= 1ull << (o->group % 64);
            }
            continue;
        }
        before++;
        int grp = -1;
        for (int k = 0; k < n->nops && grp < 0 && ir_op_fusible(n->op); k++) {
            const IrNode *o = n->ops[k];
            if (o->group < 0 || !ir_op_fusible(o->op)) continue;
            bool ok = true;
            for (int m = 0; m < n->nops && ok; m++) {
                const IrNode *p = n->ops[m];
                ok = p->group == o->group || !HAS(p, o->group);
            }
            if (ok) grp = o->group;
        }
        n->group = grp >= 0 ? grp : groups++;
        for (int k = 0; k < n->nops; k++) {
            IrNode *o = n->ops[k];
            if (ir_op_goes_with_reader(o->op) && o->group < 0) o->group = n->group;
        }
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            const uint64_t *dop = DEP(o);
            for (size_t w = 0; w < words; w++) dn[w] |= dop[w];
            if (o->group >= 0 && o->group != n->group) dn[o->group / 64] |= 1ull << (o->group % 64);
        }
    }
#undef DEP
#undef HAS
    free(deps);
    pass_report(c, "%d ops with a kernel each before, %d kernels after", before, groups);
    report_scopes(c, g);
    return PASS_CHANGED;
}
