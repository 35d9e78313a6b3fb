/* fuse.c — groups ops into kernels and records the group on each node.
 *
 * GEMMs, attention, embedding, routing, cache updates and communication
 * are kernels of their own. Elementwise ops, norms, RoPE, softmax/sum, FP8
 * quantization and layout ops (slice, concat, transpose: a fused kernel
 * indexes through them) join the group of an operand when none of their
 * other operands depends on that group, which keeps the kernel graph
 * acyclic — so add -> rmsnorm -> act_scale -> quantize, or silu * mul ->
 * quantize, become one kernel, while a residual add never joins the norm
 * that feeds the GEMM it waits for. A cast to f32 of a linear it alone
 * reads joins the linear's kernel (the GEMM writes the f32 logits itself).
 * Constants and reshapes go with their reader. One pattern joins
 * templates: DeepSeek-V3's MoE gate after the router GEMM (sigmoid, + bias,
 * group_topk, gather, normalise, scale) is one group, which the code
 * generator emits as one kernel. The pass changes no value: the CPU
 * executor computes identical logits before and after it. */
#include "passes/passes.h"

#include "codegen/gen.h"

#include <stdlib.h>
#include <string.h>

/* Kernels per top-level scope (first component of the scope path), in
 * first-seen order: distinct groups among its ops. Linear: scopes are
 * numbered through a hash table of their names, groups counted with a
 * per-scope stamp after the ops are bucketed by scope. */
static void report_scopes(PassCtx *c, IrGraph *g) {
    int n = g->nnodes;
    size_t mask = 15;
    while (mask + 1 < (size_t)n * 2) mask = mask * 2 + 1;
    int *slot = malloc(sizeof(int) * (mask + 1)), *sc = malloc(sizeof(int) * ((size_t)n + 1));
    int *first = malloc(sizeof(int) * ((size_t)n + 1)), *cnt = calloc((size_t)n + 2, sizeof(int));
    int *order = malloc(sizeof(int) * ((size_t)n + 1)), *stamp = malloc(sizeof(int) * ((size_t)n + 1));
    if (!slot || !sc || !first || !cnt || !order || !stamp) goto done;
    memset(slot, -1, sizeof(int) * (mask + 1));
    int nscopes = 0;
    for (int i = 0; i < n; i++) {
        const char *s = g->nodes[i]->scope ? g->nodes[i]->scope : "model";
        size_t len = strcspn(s, "/"), h = 1469598103934665603u;
        for (size_t k = 0; k < len; k++) h = (h ^ (unsigned char)s[k]) * 1099511628211u;
        for (h &= mask;; h = (h + 1) & mask) {
            if (slot[h] < 0) {
                slot[h] = nscopes;
                first[nscopes++] = i;
                break;
            }
            const char *t = g->nodes[first[slot[h]]]->scope ? g->nodes[first[slot[h]]]->scope : "model";
            if (strcspn(t, "/") == len && strncmp(s, t, len) == 0) break;
        }
        sc[i] = slot[h];
        cnt[sc[i] + 1]++;
    }
    for (int k = 0; k < nscopes; k++) cnt[k + 1] += cnt[k]; /* bucket start of each scope */
    for (int i = 0; i < n; i++) order[cnt[sc[i]]++] = i;  /* cnt[k] is now the end of scope k */
    for (int i = 0; i < n; i++) stamp[i] = -1;
    for (int k = 0, at = 0; k < nscopes; k++) {
        int ops = 0, kern = 0;
        for (; at < cnt[k]; at++) {
            const IrNode *m = g->nodes[order[at]];
            if (!ir_op_own_kernel(m->op) || m->group < 0) continue;
            ops++;
            if (stamp[m->group] != k) kern++, stamp[m->group] = k;
        }
        const char *s = g->nodes[first[k]]->scope ? g->nodes[first[k]]->scope : "model";
        pass_report(c, "  %.*s: %d ops -> %d kernels", (int)strcspn(s, "/"), s, ops, kern);
    }
done:
    free(slot), free(sc), free(first), free(cnt), free(order), free(stamp);
}

/* Dependencies between groups, without an n x n bitset. DEP(n), the groups
 * n depends on, is what the pass needs ("does operand p depend on group
 * G?"); it is the union of its operands' DEP and the groups its operands
 * had when n was placed. Only its maximum is stored per node; a question
 * is answered by walking back from p through the nodes whose maximum
 * reaches G and that come after G's first node: no other node can lead to
 * G. On V3 and on long chains the walk is short or not taken at all (an
 * operand in G's own group needs no question). */
typedef struct {
    const IrGraph *g;
    int *maxdep;    /* largest group in DEP(n); -1: none */
    int *assign_at; /* const or view: the node that placed it in its reader's group; -1: not yet */
    int *first;     /* group -> its first node */
    int *stamp, query;
    const IrNode **stack;
} Deps;

/* The group operand a had when r was placed (consts and views join their
 * reader's group later). */
static int group_at(const Deps *D, const IrNode *a, const IrNode *r) {
    if (!ir_op_goes_with_reader(a->op)) return a->group;
    return D->assign_at[a->id] >= 0 && D->assign_at[a->id] <= r->id ? a->group : -1;
}

/* The group r adds to DEP(r) for its operand a, or -1. */
static int direct_dep(const Deps *D, const IrNode *r, const IrNode *a) {
    int ga = group_at(D, a, r);
    return ga >= 0 && (!ir_op_own_kernel(r->op) || ga != r->group) ? ga : -1;
}

/* Whether group grp is in DEP(p). */
static bool depends_on(Deps *D, const IrNode *p, int grp) {
    if (D->maxdep[p->id] < grp || p->id < D->first[grp]) return false;
    int top = 0;
    D->query++;
    D->stack[top++] = p;
    D->stamp[p->id] = D->query;
    while (top > 0) {
        const IrNode *r = D->stack[--top];
        for (int k = 0; k < r->nops; k++) {
            const IrNode *a = r->ops[k];
            if (direct_dep(D, r, a) == grp) return true;
            if (D->maxdep[a->id] < grp || a->id < D->first[grp] || D->stamp[a->id] == D->query) continue;
            D->stamp[a->id] = D->query;
            D->stack[top++] = a;
        }
    }
    return false;
}

/* A view not yet placed (it joins its reader's group) stands for its
 * operand: act_scale(reshape(rmsnorm)) joins the norm's group as
 * act_scale(rmsnorm) would (MoE's norm, reshaped to [B*S, hidden]). */
static const IrNode *through_views(const IrNode *o) {
    while (o->group < 0 && ir_op_class(o->op) == IR_CLASS_VIEW && o->nops == 1) o = o->ops[0];
    return o;
}

/* The group n joins: that of a fusible operand o when no other operand
 * depends on o's group (which keeps the kernel graph acyclic: a residual
 * add never joins the norm before the GEMM it waits for); -1 for a new one. */
static int join_group(Deps *D, const IrNode *n) {
    if (!ir_op_fusible(n->op)) return -1;
    for (int k = 0; k < n->nops; k++) {
        const IrNode *o = through_views(n->ops[k]);
        if (o->group < 0 || !ir_op_fusible(o->op)) continue;
        bool ok = true;
        for (int m = 0; m < n->nops && ok; m++) {
            const IrNode *p = through_views(n->ops[m]);
            ok = p->group == o->group || !depends_on(D, p, o->group);
        }
        if (ok) return o->group;
    }
    return -1;
}

/* The group of linear o when n is a cast of it to f32 and its only reader
 * (the LM head's logits): the GEMM writes the f32 value (codegen's
 * epilogue cast), no kernel of its own converts it; -1 otherwise. */
static int epilogue_group(const IrNode *n, const int *readers) {
    if (n->op != IR_OP_CAST || n->nops != 1 || n->type.dtype != IR_DT_F32) return -1;
    const IrNode *o = n->ops[0];
    return o->op == IR_OP_LINEAR && o->group >= 0 && readers[o->id] == 1 && o->stream == n->stream ? o->group : -1;
}

/* ---- the MoE gate: one kernel after the router GEMM ---------------------- */

/* Whether the groups of g (numbered below ngroups) depend on each other in
 * a cycle (Kahn's sort over the operand edges between groups). */
static bool groups_cyclic(const IrGraph *g, int ngroups) {
    size_t cap = (size_t)g->nnodes * 4 + 1;
    int *indeg = calloc((size_t)ngroups + 1, sizeof(int)), *first = malloc(sizeof(int) * ((size_t)ngroups + 1));
    int *queue = malloc(sizeof(int) * ((size_t)ngroups + 1)), *to = malloc(sizeof(int) * cap), *next = malloc(sizeof(int) * cap);
    int nedges = 0, seen = 0;
    bool cyclic = true;
    if (!indeg || !first || !queue || !to || !next) goto done;
    for (int k = 0; k < ngroups; k++) first[k] = -1;
    for (int i = 0; i < g->nnodes; i++) { /* edges by source group, linked through next[] */
        const IrNode *n = g->nodes[i];
        for (int k = 0; k < n->nops && n->group >= 0; k++) {
            int o = n->ops[k]->group;
            if (o < 0 || o == n->group) continue;
            if ((size_t)nedges == cap) {
                int *t = realloc(to, sizeof(int) * cap * 2), *x = t ? realloc(next, sizeof(int) * cap * 2) : NULL;
                to = t ? t : to, next = x ? x : next;
                if (!t || !x) goto done;
                cap *= 2;
            }
            to[nedges] = n->group, next[nedges] = first[o], first[o] = nedges++;
            indeg[n->group]++;
        }
    }
    int head = 0, tail = 0;
    for (int k = 0; k < ngroups; k++)
        if (!indeg[k]) queue[tail++] = k;
    while (head < tail) {
        int k = queue[head++];
        seen++;
        for (int e = first[k]; e >= 0; e = next[e])
            if (--indeg[to[e]] == 0) queue[tail++] = to[e];
    }
    cyclic = seen != ngroups;
done:
    free(indeg), free(first), free(queue), free(to), free(next);
    return cyclic;
}

/* DeepSeek-V3's gate (cg_route_chain: sigmoid, + bias, group_topk, gather,
 * normalise, scale) joins its group_topk's group, and the consts its ops
 * read go to the group of a reader outside the chain if there is one (it
 * stores them for that reader), else to the chain's (the kernel reads them
 * as literals): the code generator emits the group as one kernel
 * (codegen/kernels/route_topk.cuh), four launches fewer per MoE layer. The
 * chain reads only values no fusible op computes (the router GEMM's
 * logits, the bias), so no cycle can form; the group graph is checked all
 * the same, and on a cycle nothing changes. Groups are then renumbered
 * densely, in their order. Returns the chains fused, -1 out of memory. */
static int fuse_routing(IrGraph *g, int *ngroups) {
    int n = g->nnodes, fused = 0;
    int *saved = malloc(sizeof(int) * ((size_t)n + 1)), *cgrp = malloc(sizeof(int) * ((size_t)n + 1));
    int *ogrp = malloc(sizeof(int) * ((size_t)n + 1)), *map = malloc(sizeof(int) * ((size_t)*ngroups + 1));
    bool *in = calloc((size_t)n + 1, 1);
    if (!saved || !cgrp || !ogrp || !map || !in) {
        free(saved), free(cgrp), free(ogrp), free(map), free(in);
        return -1;
    }
    for (int i = 0; i < n; i++) saved[i] = g->nodes[i]->group, cgrp[i] = ogrp[i] = -1;
    for (int i = 0; i < n; i++) {
        IrNode *t = g->nodes[i];
        CgRouteChain ch;
        if (t->op != IR_OP_GROUP_TOPK || t->group < 0 || !cg_route_chain(g, t, &ch)) continue;
        for (int k = 0; k < ch.n; k++) g->nodes[ch.nodes[k]->id]->group = t->group, in[ch.nodes[k]->id] = true;
        fused++;
    }
    for (int i = 0; i < n && fused; i++) { /* the consts' first readers, in the chains and outside */
        const IrNode *r = g->nodes[i];
        for (int k = 0; k < r->nops; k++) {
            const IrNode *o = r->ops[k];
            int *at = in[i] ? cgrp : ogrp;
            if (o->op == IR_OP_CONST && r->group >= 0 && at[o->id] < 0) at[o->id] = r->group;
        }
    }
    for (int i = 0; i < n; i++)
        if (cgrp[i] >= 0) g->nodes[i]->group = ogrp[i] >= 0 ? ogrp[i] : cgrp[i];
    if (fused && groups_cyclic(g, *ngroups)) {
        for (int i = 0; i < n; i++) g->nodes[i]->group = saved[i];
        fused = 0;
    }
    int used = 0;
    for (int k = 0; k < *ngroups; k++) map[k] = -1;
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->group >= 0) map[g->nodes[i]->group] = 0;
    for (int k = 0; k < *ngroups; k++)
        if (map[k] == 0) map[k] = used++;
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->group >= 0) g->nodes[i]->group = map[g->nodes[i]->group];
    *ngroups = used;
    free(saved), free(cgrp), free(ogrp), free(map), free(in);
    return fused;
}

PassResult pass_fuse(PassCtx *c, IrGraph *g) {
    size_t n1 = (size_t)g->nnodes + 1;
    Deps D = {g, malloc(sizeof(int) * n1), malloc(sizeof(int) * n1), malloc(sizeof(int) * n1), calloc(n1, sizeof(int)), 0,
              malloc(sizeof(IrNode *) * n1)};
    int *readers = calloc(n1, sizeof(int));
    if (!D.maxdep || !D.assign_at || !D.first || !D.stamp || !D.stack || !readers) {
        free(D.maxdep), free(D.assign_at), free(D.first), free(D.stamp), free(D.stack), free(readers);
        diag_error(pass_diag(c), (SrcLoc){0}, "fuse: out of host memory");
        return PASS_FAILED;
    }
    int groups = 0, before = 0;
    for (int i = 0; i < g->nnodes; i++) g->nodes[i]->group = -1, D.assign_at[i] = -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nops; k++) readers[g->nodes[i]->ops[k]->id]++;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (ir_op_own_kernel(n->op)) { /* others are placed with their reader, but dependencies flow through them */
            before++;
            int grp = join_group(&D, n);
            if (grp < 0) grp = epilogue_group(n, readers);
            if (grp < 0) D.first[grp = groups++] = i;
            n->group = grp;
            for (int k = 0; k < n->nops; k++) {
                IrNode *o = n->ops[k];
                if (ir_op_goes_with_reader(o->op) && o->group < 0) o->group = n->group, D.assign_at[o->id] = i;
            }
        }
        int m = -1;
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            int dd = direct_dep(&D, n, o);
            if (D.maxdep[o->id] > m) m = D.maxdep[o->id];
            if (dd > m) m = dd;
        }
        D.maxdep[i] = m;
    }
    free(D.maxdep), free(D.assign_at), free(D.first), free(D.stamp), free(D.stack), free(readers);
    int routed = fuse_routing(g, &groups);
    if (routed < 0) {
        diag_error(pass_diag(c), (SrcLoc){0}, "fuse: out of host memory");
        return PASS_FAILED;
    }
    pass_report(c, "%d ops with a kernel each before, %d kernels after", before, groups);
    if (routed) pass_report(c, "  %d MoE gate%s (sigmoid .. scale after the router GEMM) in one kernel each", routed, routed == 1 ? "" : "s");
    report_scopes(c, g);
    return PASS_CHANGED;
}
