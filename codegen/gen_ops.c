/* gen_ops.c — template kernels: the ops that are not inlined. Each reads
 * its operands through their loaders (so any stored dtype, and the KV
 * cache's [B, cap, ...] layout, work alike) and computes in f32. GEMMs are
 * in gen_gemm.c, expert GEMMs in gen_expert.c, attention in gen_attn.c,
 * einsum in gen_einsum.c; here: routing (one warp or thread per row), the
 * fused MoE gate (cg_route_chain: codegen/kernels/route_topk.cuh),
 * embedding, gather, cache append, and the data movement of
 * dispatch/combine/split/merge. */
#include "codegen/gen_internal.h"
#include "codegen/kernels.h"

#include <math.h>
#include <string.h>

_Static_assert(IR_OP_COUNT == 42, "a new op needs a kernel in codegen/ (inlined in gen.c or a template here)");

void cg_head_as(Gen *G, const char *form, const char *what) {
    G->next_fn = form ? arena_printf(G->a, "p%d_%s", G->nphases, form) : cg_entry(G, G->nphases);
    sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // %s\n", G->next_fn, what);
}

void cg_head(Gen *G, const char *what) { cg_head_as(G, NULL, what); }

/* Elementwise template: body computes `v` for output index i (or stores itself). */
void cg_elem(Gen *G, const IrNode *n, IrDim count, const char *what, const char *body) {
    cg_head(G, what);
    sb_printf(&G->decl, "    const long long i = ITEM_ELEM();\n    if (i >= %s) return;\n%s}\n", cg_dim(G, count), body);
    cg_phase(G, CG_LAUNCH_ELEM, count, 1, ir_dim_const(1), 1, 0);
}

/* topk and group_topk select exactly as the CPU does: largest first, ties
 * to the lower index, NaN ranked as -inf (cpu/ops.c's top_k). A row of at
 * most 1,024 values is one warp's (each lane holds every 32nd value in
 * registers, one shuffle argmax per pick); longer rows, or selections that
 * could run out of candidates, keep the one-thread-per-row loop. */
#define ROUTE_NEG "__int_as_float(0xff800000)"

static void routing_thread(Gen *G, const IrNode *n, IrDim R, int64_t E, int64_t k, int sx, int so) {
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "    const long long E = %lldLL, K = %lldLL;\n    const long long base = i * E;\n    unsigned char keep[%lld], taken[%lld];\n",
              (long long)E, (long long)k, (long long)E, (long long)E);
    sb_printf(&b, "#define RKEY(e) rkey(L%d(a, base + (e)))\n", sx);
    sb_puts(&b, "    for (long long e = 0; e < E; e++) keep[e] = 1, taken[e] = 0;\n");
    if (n->op == IR_OP_GROUP_TOPK) {
        int64_t ng = ir_node_attr_int(n, "groups", 1), tg = ir_node_attr_int(n, "topk_groups", 1), gt = ir_node_attr_int(n, "group_top", 1);
        sb_printf(&b, "    const long long NG = %lldLL, TG = %lldLL, GT = %lldLL, per = E / NG;\n    float gs[%lld];\n    unsigned char gk[%lld];\n",
                  (long long)ng, (long long)tg, (long long)gt, (long long)ng, (long long)ng);
        sb_puts(&b, "    for (long long g = 0; g < NG; g++) {  // each group's score: the sum of its GT largest\n"
                    "        gs[g] = 0.0f; gk[g] = 0;\n"
                    "        for (long long r = 0; r < GT; r++) {\n"
                    "            long long best = -1; float bv = 0.0f;\n"
                    "            for (long long e = g * per; e < g * per + per; e++) {\n"
                    "                const float v = RKEY(e);\n"
                    "                if (!taken[e] && (best < 0 || v > bv)) best = e, bv = v;\n"
                    "            }\n"
                    "            if (best < 0) best = g * per;\n"
                    "            taken[best] = 1; gs[g] += RKEY(best);\n"
                    "        }\n"
                    "        gs[g] = rkey(gs[g]);\n"
                    "    }\n"
                    "    for (long long e = 0; e < E; e++) taken[e] = 0, keep[e] = 0;\n"
                    "    for (long long r = 0; r < TG; r++) {  // the TG best groups\n"
                    "        long long best = -1;\n"
                    "        for (long long g = 0; g < NG; g++) if (!gk[g] && (best < 0 || gs[g] > gs[best])) best = g;\n"
                    "        if (best < 0) best = 0;\n"
                    "        gk[best] = 1;\n"
                    "        for (long long e = best * per; e < best * per + per; e++) keep[e] = 1;\n"
                    "    }\n");
    }
    sb_printf(&b, "    for (long long r = 0; r < K; r++) {\n"
                  "        long long best = -1; float bv = 0.0f;\n"
                  "        for (long long e = 0; e < E; e++) {\n"
                  "            if (taken[e] || !keep[e]) continue;\n"
                  "            const float v = RKEY(e);\n"
                  "            if (best < 0 || v > bv) best = e, bv = v;\n"
                  "        }\n"
                  "        if (best < 0) best = 0;\n"
                  "        taken[best] = 1;\n"
                  "        S%d(a, i * K + r, (float)best);\n"
                  "    }\n#undef RKEY\n",
              so);
    sb_puts(&G->decl, "__device__ __forceinline__ float rkey(float x) { return x != x ? " ROUTE_NEG " : x; }  // NaN ranks as -inf\n");
    cg_elem(G, n, R, ir_op_name(n->op), b.data);
    sb_free(&b);
}

static void routing_warp(Gen *G, const IrNode *n, IrDim R, int64_t E, int64_t k, int sx, int so) {
    int64_t J = (E + 31) / 32;
    bool grouped = n->op == IR_OP_GROUP_TOPK;
    sb_puts(&G->decl,
            "__device__ __forceinline__ void warp_best(float &bv, int &bi) {  // the warp's largest (value, then lower index)\n"
            "    for (int o = 16; o > 0; o >>= 1) {\n"
            "        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);\n"
            "        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);\n"
            "        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;\n"
            "    }\n"
            "}\n");
    cg_head_as(G, arena_printf(G->a, "%s_rows", ir_op_name(n->op)), arena_printf(G->a, "%s: one warp per row", ir_op_name(n->op)));
    StrBuf *b = &G->decl;
    sb_printf(b, "    const long long it = ITEM_WARP(); const int lane = LANE();\n    if (it >= %s) return;\n", cg_dim(G, R));
    sb_printf(b, "    const int E = %d, K = %d, J = %d;\n    const long long base = it * E;\n", (int)E, (int)k, (int)J);
    sb_printf(b, "    float v[J];  // lane holds value lane + 32 j; NaN ranks as -inf\n"
                 "#pragma unroll\n"
                 "    for (int j = 0; j < J; j++) {\n"
                 "        const int e = lane + 32 * j;\n"
                 "        const float x = e < E ? L%d(a, base + e) : " ROUTE_NEG ";\n"
                 "        v[j] = x != x ? " ROUTE_NEG " : x;\n"
                 "    }\n",
              sx);
    const char *kept = "";
    if (grouped) {
        int64_t ng = ir_node_attr_int(n, "groups", 1), tg = ir_node_attr_int(n, "topk_groups", 1), gt = ir_node_attr_int(n, "group_top", 1);
        sb_printf(b, "    const int NG = %d, TG = %d, GT = %d, per = E / NG;\n    float gs[NG];\n    unsigned gtk = 0u;\n", (int)ng, (int)tg, (int)gt);
        sb_printf(b, "#pragma unroll\n"
                     "    for (int g = 0; g < NG; g++) {  // each group's score: the sum of its GT largest\n"
                     "        float s = 0.0f;\n"
                     "        for (int r = 0; r < GT; r++) {\n"
                     "            float bv = " ROUTE_NEG "; int bi = 0x7fffffff;\n"
                     "#pragma unroll\n"
                     "            for (int j = 0; j < J; j++) {\n"
                     "                const int e = lane + 32 * j;\n"
                     "                if (e >= g * per && e < g * per + per && !(gtk >> j & 1u) && (bi == 0x7fffffff || v[j] > bv)) bv = v[j], bi = e;\n"
                     "            }\n"
                     "            warp_best(bv, bi);\n"
                     "            if ((bi & 31) == lane) gtk |= 1u << (bi >> 5);\n"
                     "            s += bv;\n"
                     "        }\n"
                     "        gs[g] = s != s ? " ROUTE_NEG " : s;\n"
                     "    }\n"
                     "    unsigned long long keep = 0ull;  // the TG best groups (every lane alike)\n"
                     "    for (int r = 0; r < TG; r++) {\n"
                     "        int best = -1; float bg = 0.0f;\n"
                     "#pragma unroll\n"
                     "        for (int g = 0; g < NG; g++) if (!(keep >> g & 1ull) && (best < 0 || gs[g] > bg)) best = g, bg = gs[g];\n"
                     "        keep |= 1ull << best;\n"
                     "    }\n");
        kept = " && (keep >> (e / per) & 1ull)";
    }
    sb_printf(b, "    unsigned tk = 0u;\n"
                 "    for (int r = 0; r < K; r++) {\n"
                 "        float bv = " ROUTE_NEG "; int bi = 0x7fffffff;\n"
                 "#pragma unroll\n"
                 "        for (int j = 0; j < J; j++) {\n"
                 "            const int e = lane + 32 * j;\n"
                 "            if (e < E%s && !(tk >> j & 1u) && (bi == 0x7fffffff || v[j] > bv)) bv = v[j], bi = e;\n"
                 "        }\n"
                 "        warp_best(bv, bi);\n"
                 "        if ((bi & 31) == lane) tk |= 1u << (bi >> 5);\n"
                 "        if (lane == 0) S%d(a, it * K + r, (float)bi);\n"
                 "    }\n}\n",
              kept, so);
    cg_phase(G, CG_LAUNCH_WARP, R, 1, ir_dim_const(1), 1, 0);
}

static bool routing(Gen *G, const IrNode *n) {
    const IrNode *x = n->ops[0];
    int64_t E = x->type.dims[x->type.rank - 1].coeff, k = n->type.dims[n->type.rank - 1].coeff;
    if (E > 4096) {
        G->why = "top-k over more than 4096 values";
        return false;
    }
    IrDim R;
    ir_dim_div(ir_type_numel(&x->type), ir_dim_const(E), &R);
    int sx = cg_slot_value(G, x), so = cg_slot_value(G, n);
    /* The warp form never runs out of candidates: each pick has one left. */
    bool warp = E <= 1024 && k <= E;
    if (warp && n->op == IR_OP_GROUP_TOPK) {
        int64_t ng = ir_node_attr_int(n, "groups", 1), tg = ir_node_attr_int(n, "topk_groups", 1), gt = ir_node_attr_int(n, "group_top", 1);
        warp = ng >= 1 && ng <= 64 && E % ng == 0 && tg >= 1 && tg <= ng && gt >= 1 && gt <= E / ng && k <= tg * (E / ng);
    }
    if (warp) routing_warp(G, n, R, E, k, sx, so);
    else routing_thread(G, n, R, E, k, sx, so);
    return true;
}

/* ---- the fused gate (codegen/kernels/route_topk.cuh) ---------------------- */

static bool route_f32(const IrNode *n, const IrNode *topk) { return n->type.dtype == IR_DT_F32 && n->stream == topk->stream; }

static bool route_scalar_const(const IrNode *n) {
    return n && n->op == IR_OP_CONST && n->type.rank == 0 && n->type.dtype == IR_DT_F32 && isfinite(ir_node_attr_float(n, "value", 0));
}

/* The other operand of binary n when one is x, else NULL. */
static const IrNode *route_other(const IrNode *n, const IrNode *x) {
    return n->nops != 2 ? NULL : n->ops[0] == x ? n->ops[1] : n->ops[1] == x ? n->ops[0] : NULL;
}

static bool route_last_axis(const IrNode *n, const IrType *in) {
    int64_t ax = ir_node_attr_int(n, "axis", 0);
    return ax == -1 || ax == in->rank - 1;
}

static bool route_dims_eq(const IrType *a, const IrType *b) {
    bool eq = a->rank == b->rank;
    for (int k = 0; k < a->rank && eq; k++) eq = ir_dim_eq(a->dims[k], b->dims[k]);
    return eq;
}

/* The shapes route_topk.cuh takes (see its parameters). */
static bool route_shapes(const CgRouteChain *c) {
    const IrNode *t = c->topk, *x = c->logits;
    const IrType *lt = &x->type, *it = &t->type;
    if (lt->rank < 1 || lt->rank != it->rank || !ir_dim_is_const(lt->dims[lt->rank - 1]) || !ir_dim_is_const(it->dims[it->rank - 1])) return false;
    for (int k = 0; k + 1 < lt->rank; k++)
        if (!ir_dim_eq(lt->dims[k], it->dims[k])) return false;
    int64_t E = lt->dims[lt->rank - 1].coeff, K = it->dims[it->rank - 1].coeff;
    int64_t ng = ir_node_attr_int(t, "groups", 1), tg = ir_node_attr_int(t, "topk_groups", 1), gt = ir_node_attr_int(t, "group_top", 1);
    const IrType *bt = &c->bias->type;
    return E >= 1 && E <= 1024 && K >= 1 && K <= 32 && ng >= 1 && ng <= 64 && E % ng == 0 && tg >= 1 && tg <= ng && gt >= 1 &&
           gt <= E / ng && gt <= 8 && K <= tg * (E / ng) && bt->rank == 1 && ir_dim_is_const(bt->dims[0]) && bt->dims[0].coeff == E &&
           route_dims_eq(&c->sig->type, lt) && route_dims_eq(&c->choice->type, lt) && route_dims_eq(&c->gather->type, it);
}

/* After the gather: w / (sum(w) + eps) and w * scale, each optional (the
 * readers of the chain's values are checked by the caller). */
static void route_tail(const IrGraph *g, CgRouteChain *c) {
    const IrNode *w = c->gather;
    for (int i = w->id + 1; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (!c->sum && n->op == IR_OP_SUM && n->nops == 1 && n->ops[0] == w && route_last_axis(n, &w->type) &&
            ir_node_attr_bool(n, "keepdim", false))
            c->sum = n;
        else if (c->sum && !c->den && n->op == IR_OP_ADD && route_other(n, c->sum) && route_scalar_const(route_other(n, c->sum)))
            c->den = n, c->eps = route_other(n, c->sum);
        else if (c->den && !c->div && n->op == IR_OP_DIV && n->nops == 2 && n->ops[0] == w && n->ops[1] == c->den)
            c->div = n;
    }
    if (!c->div) c->sum = c->den = c->eps = NULL;
    const IrNode *x = c->div ? c->div : w;
    for (int i = x->id + 1; i < g->nnodes && !c->scale; i++) {
        const IrNode *n = g->nodes[i], *k = n->op == IR_OP_MUL ? route_other(n, x) : NULL;
        if (k && k != x && route_scalar_const(k)) c->scale = n, c->factor = k;
    }
    c->out = c->scale ? c->scale : x;
}

bool cg_route_chain(const IrGraph *g, const IrNode *topk, CgRouteChain *c) {
    *c = (CgRouteChain){0};
    if (topk->op != IR_OP_GROUP_TOPK || topk->nops != 1 || topk->ops[0]->op != IR_OP_ADD) return false;
    const IrNode *ch = topk->ops[0], *sig = ch->ops[0]->op == IR_OP_SIGMOID ? ch->ops[0] : ch->ops[1];
    if (sig->op != IR_OP_SIGMOID || ch->nops != 2 || ch->ops[0] == ch->ops[1]) return false;
    c->topk = topk, c->choice = ch, c->sig = sig, c->logits = sig->ops[0], c->bias = route_other(ch, sig);
    if (ir_op_fusible(c->logits->op) || ir_op_fusible(c->bias->op)) return false;
    for (int i = topk->id + 1; i < g->nnodes && !c->gather; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == IR_OP_GATHER && n->nops == 2 && n->ops[0] == sig && n->ops[1] == topk && route_last_axis(n, &sig->type)) c->gather = n;
    }
    if (!c->gather) return false;
    route_tail(g, c);
    const IrNode *in[] = {sig, ch, c->gather, c->sum, c->den, c->div, c->scale};
    for (int k = 0; k < 7; k++)
        if (in[k] && !route_f32(in[k], topk)) return false;
    if (!route_shapes(c)) return false;
    const IrNode *ops[] = {sig, ch, topk, c->gather, c->sum, c->den, c->div, c->scale};
    for (int k = 0; k < 8; k++)
        if (ops[k]) c->nodes[c->n++] = ops[k];
    for (int i = sig->id + 1; i < g->nnodes; i++) { /* a value inside the chain is read by the chain alone */
        const IrNode *n = g->nodes[i];
        bool member = false;
        for (int k = 0; k < c->n; k++) member |= c->nodes[k] == n;
        for (int k = 0; k < n->nops && !member; k++)
            for (int m = 0; m < c->n; m++)
                if (n->ops[k] == c->nodes[m] && c->nodes[m] != topk && c->nodes[m] != c->out) return false;
    }
    return true;
}

void cg_route_groups(const IrGraph *g, const int *grp, char *in) {
    for (int i = 0; i < g->nnodes; i++) in[i] = 0;
    for (int i = 0; i < g->nnodes; i++) {
        CgRouteChain c;
        const IrNode *t = g->nodes[i];
        if (t->op != IR_OP_GROUP_TOPK || grp[i] < 0 || !cg_route_chain(g, t, &c)) continue;
        int members = 0, chain = 0; /* the group holds the chain's ops and consts, nothing else */
        for (int k = 0; k < c.n; k++) chain += grp[c.nodes[k]->id] == grp[i];
        for (int j = 0; j < g->nnodes; j++) members += grp[j] == grp[i] && g->nodes[j]->op != IR_OP_CONST;
        if (chain != c.n || members != c.n) continue;
        for (int k = 0; k < c.n; k++) in[c.nodes[k]->id] = c.nodes[k] == t ? 2 : c.nodes[k] == c.out ? 3 : 1;
    }
}

static const char *route_float(Gen *G, const IrNode *k) { return arena_printf(G->a, "%.9ef", (double)(float)ir_node_attr_float(k, "value", 0)); }

/* The chain's rows (the logits' rows). */
static const char *route_rows(Gen *G, const CgRouteChain *c) {
    const IrType *lt = &c->logits->type;
    IrDim R;
    ir_dim_div(ir_type_numel(lt), lt->dims[lt->rank - 1], &R);
    return cg_dim(G, R);
}

/* An instance for chain c named entry of route_topk.cuh (the kernel) or, with row_only, route_topk_row.cuh (the row
 * function entry##_row alone, no entry point), the logits read by `logit` (an expression of i; NULL: through their
 * slot). */
static void route_instance(Gen *G, const CgRouteChain *c, const char *entry, const char *logit, bool row_only) {
    const IrNode *topk = c->topk;
    const IrType *lt = &c->logits->type;
    int64_t E = lt->dims[lt->rank - 1].coeff, K = topk->type.dims[topk->type.rank - 1].coeff, J = (E + 31) / 32;
    int64_t ng = ir_node_attr_int(topk, "groups", 1), per = E / ng, seg = per % J == 0 ? per / J : 0;
    if (E % 32 || (seg & (seg - 1)) || ir_node_attr_int(topk, "group_top", 1) > per) seg = 0; /* the fast group form: whole lanes, a power of two of them */
    int sb = cg_slot_value(G, c->bias), si = cg_slot_value(G, topk), sw = cg_slot_value(G, c->out);
    Arena *a = G->a;
    if (!logit) logit = arena_printf(a, "L%d(a, (i))", cg_slot_value(G, c->logits));
    CgDefine d[] = {{"RT_ROWS", route_rows(G, c)},
                    {"RT_E", arena_printf(a, "%lld", (long long)E)},
                    {"RT_K", arena_printf(a, "%lld", (long long)K)},
                    {"RT_NG", arena_printf(a, "%lld", (long long)ng)},
                    {"RT_TG", arena_printf(a, "%lld", (long long)ir_node_attr_int(topk, "topk_groups", 1))},
                    {"RT_GT", arena_printf(a, "%lld", (long long)ir_node_attr_int(topk, "group_top", 1))},
                    {"RT_SEG", arena_printf(a, "%lld", (long long)seg)},
                    {"RT_LOGIT(i)", logit},
                    {"RT_BIAS(i)", arena_printf(a, "L%d(a, (i))", sb)},
                    {"RT_IDX(i, v)", arena_printf(a, "S%d(a, (i), (v))", si)},
                    {"RT_W(i, v)", arena_printf(a, "S%d(a, (i), (v))", sw)},
                    {"RT_NORM", c->div ? "1" : "0"},
                    {"RT_EPS", c->eps ? route_float(G, c->eps) : "0.0f"},
                    {"RT_SCALE", c->factor ? route_float(G, c->factor) : "1.0f"}};
    sb_printf(&G->decl, "// the MoE gate after the router GEMM: sigmoid, + bias, group top-%lld, the chosen scores%s%s\n", (long long)K,
              c->div ? ", normalised" : "", c->factor ? ", scaled" : "");
    sb_puts(&G->decl, cg_kernel_instance(a, row_only ? "route_topk_row" : "route_topk", entry, d, (int)(sizeof d / sizeof *d)));
}

bool cg_route_kernel(Gen *G, const IrNode *topk) {
    CgRouteChain c;
    if (!cg_route_chain(G->g, topk, &c)) {
        G->why = "not a fused routing chain";
        return false;
    }
    const IrType *lt = &c.logits->type;
    IrDim R;
    ir_dim_div(ir_type_numel(lt), lt->dims[lt->rank - 1], &R);
    const char *entry = arena_printf(G->a, "p%d_route_topk", G->nphases);
    route_instance(G, &c, entry, NULL, false);
    cg_phase(G, CG_LAUNCH_WARP, R, 1, ir_dim_const(1), 1, 0);
    G->phases[G->nphases - 1].fn = entry;
    /* DSCC_ROUTE_FUSE=1: the router's last CTA routed the rows at M <= 8 */
    if (G->rfuse_ok && G->rfuse_ok[G->rfuse_grp[topk->id]]) G->phases[G->nphases - 1].amin = 8;
    return true;
}

/* ---- DSCC_ROUTE_FUSE: the routing in the router GEMM's last CTA ----
 * At a decode step the MoE gate is two launches, the router GEMM (256 x 7,168 BF16, gemm_skinny2.cuh at M <= 8) and
 * route_topk.cuh's kernel over a few rows of 256 logits. With the switch the router's M <= 8 instance holds
 * route_topk_row.cuh (the row function, no entry point) and its CTA that finishes last (a ticket, SK_LAST) routes
 * every row, reading the logits the other CTAs stored from L2; the routing kernel then launches nothing at M <= 8.
 * The same code on the
 * same f32 logits: the same bits. It applies where the routing group launches right after the router's (nothing
 * between them in the launch order), the router's logits are stored f32 and read by that group alone, no op of the
 * group waits for another stream, and the program runs on one stream (the ticket is the module's: one launch of it
 * at a time). */
void cg_rfuse_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups) {
    G->rfuse = NULL;
    G->rfuse_ok = NULL;
    G->rfuse_cur = -1;
    if (!tune_on(G->tune->route_fuse, false) || !G->skinny) return;
    const IrGraph *g = G->g;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->stream > 0) return; /* more than one stream */
    G->rfuse_grp = grp, G->rfuse_tmpl = tmpl;
    G->rfuse = arena_alloc(G->a, sizeof(int) * (size_t)(ngroups + 1));
    G->rfuse_ok = arena_alloc(G->a, (size_t)ngroups + 1);
    for (int k = 0; k < ngroups; k++) G->rfuse[k] = -1, G->rfuse_ok[k] = 0;
    for (int R = 0; R < ngroups; R++) {
        CgRouteChain c;
        if (tmpl[R] < 0 || G->route[tmpl[R]] != 2 || !cg_route_chain(g, g->nodes[tmpl[R]], &c)) continue;
        const IrNode *L = c.logits;
        const int GL = grp[L->id];
        if (L->op != IR_OP_LINEAR || GL < 0 || tmpl[GL] != L->id || pos[GL] < 0 || pos[R] != pos[GL] + 1 || !G->stored[L->id] ||
            G->dtype[L->id] != IR_DT_F32 || G->rfuse[GL] >= 0)
            continue;
        bool ok = true;
        for (int i = 0; i < g->nnodes && ok; i++) {
            const IrNode *n = g->nodes[i];
            if (grp[i] == R && n->nwaits) ok = false; /* a wait the router's kernel would not make */
            for (int k = 0; k < n->nops && ok; k++)
                if (n->ops[k] == L && grp[i] != R) ok = false; /* the logits read elsewhere */
        }
        if (ok) G->rfuse[GL] = R;
    }
}

const char *cg_rfuse_emit(Gen *G, int slot_y) {
    if (G->rfuse_cur < 0) return NULL;
    const IrNode *topk = G->g->nodes[G->rfuse_tmpl[G->rfuse_cur]];
    CgRouteChain c;
    if (!cg_route_chain(G->g, topk, &c) || G->slots[slot_y].node != c.logits->id || G->dtype[c.logits->id] != IR_DT_F32) return NULL;
    const char *entry = arena_printf(G->a, "p%d_rfuse", G->nphases);
    route_instance(G, &c, entry, arena_printf(G->a, "__ldcg((const float *)a.t[%d] + (i))", slot_y), true);
    sb_printf(&G->decl, "// the routing above, every row by the CTA that finishes last (DSCC_ROUTE_FUSE=1): its kernel launches nothing at M <= 8\n"
                        "__device__ __forceinline__ void %s_all(const Args &a) {\n"
                        "    for (long long row = threadIdx.x >> 5; row < %s; row += 8) %s_row(a, row, (int)(threadIdx.x & 31));\n"
                        "}\n",
              entry, route_rows(G, &c), entry);
    G->rfuse_done = true;
    return arena_printf(G->a, "%s_all(a)", entry);
}

void cg_rfuse_gate(Gen *G, int gid) {
    const int R = G->rfuse ? G->rfuse[gid] : -1;
    const bool done = G->rfuse_done;
    G->rfuse_done = false, G->rfuse_cur = -1;
    if (R < 0 || !done) return;
    if (G->lib.kind != CG_LIB_NONE && G->lib.mmin < 8) return; /* the library may run the rows instead (DSCC_GEMM_F32_LIB=2) */
    G->rfuse_ok[R] = 1;
}

bool cg_emit_template(Gen *G, const IrNode *n) {
    Arena *A = G->a;
    switch (n->op) {
    case IR_OP_LINEAR: return cg_gemm(G, n, false);
    case IR_OP_FP8_LINEAR: return cg_gemm(G, n, true);
    case IR_OP_EXPERT_LINEAR: return cg_expert_gemm(G, n, false);
    case IR_OP_FP8_EXPERT_LINEAR: return cg_expert_gemm(G, n, true);
    case IR_OP_EINSUM: return cg_einsum(G, n);
    case IR_OP_ATTENTION: return cg_attention(G, n);
    case IR_OP_TOPK: case IR_OP_GROUP_TOPK: return routing(G, n);
    case IR_OP_EMBEDDING: {
        if (cg_vec_embedding(G, n)) return true;
        const IrNode *tab = n->ops[0], *ids = n->ops[1];
        int st = cg_slot_value(G, tab), si = cg_slot_value(G, ids), so = cg_slot_value(G, n);
        cg_elem(G, n, ir_type_numel(&n->type), "embedding",
             arena_printf(A, "    const long long D = %s, V = %s;\n    const float id = L%d(a, i / D);\n"
                             "    if (!(id >= 0.0f && id < (float)V)) { fail(a, id); S%d(a, i, 0.0f); return; }\n"
                             "    S%d(a, i, L%d(a, (long long)id * D + i %% D));\n",
                          cg_dim(G, tab->type.dims[1]), cg_dim(G, tab->type.dims[0]), si, so, so, st));
        return true;
    }
    case IR_OP_GATHER: {
        const IrNode *x = n->ops[0], *idx = n->ops[1];
        int ax = cg_axis(ir_node_attr_int(n, "axis", 0), x->type.rank);
        int sx = cg_slot_value(G, x), si = cg_slot_value(G, idx), so = cg_slot_value(G, n);
        cg_elem(G, n, ir_type_numel(&n->type), "gather",
             arena_printf(A, "    const long long inner = %s, mid = %s, imid = %s, o = i / (imid * inner);\n"
                             "    const float j = L%d(a, i);\n"
                             "    if (!(j >= 0.0f && j < (float)mid)) { fail(a, j); S%d(a, i, 0.0f); return; }\n"
                             "    S%d(a, i, L%d(a, (o * mid + (long long)j) * inner + i %% inner));\n",
                          cg_dim(G, cg_suffix(&x->type, ax + 1)), cg_dim(G, x->type.dims[ax]), cg_dim(G, idx->type.dims[ax]), si, so,
                          so, sx));
        return true;
    }
    case IR_OP_KV_CACHE: {
        const IrNode *x = n->ops[0];
        int sx = cg_slot_value(G, x), sc = cg_slot_value(G, n);
        cg_elem(G, n, ir_type_numel(&x->type), "kv_cache: append the new positions",
             arena_printf(A, "    const long long per = %s, S = %s, bs = i / per;\n"
                             "    st_%s(a.t[%d], ((bs / S) * a.cap + a.len + bs %% S) * per + i %% per, L%d(a, i));\n",
                          cg_dim(G, cg_suffix(&x->type, 2)), cg_dim(G, x->type.dims[1]), cg_stored_suffix(G, n), sc, sx));
        return true;
    }
    case IR_OP_DISPATCH: { /* one process holds every expert: block 0 is x, the other blocks unsent */
        int sx = cg_slot_value(G, n->ops[0]), so = cg_slot_value(G, n);
        bool ids = n->ops[0] == n->ops[1];
        cg_elem(G, n, ir_type_numel(&n->type), ids ? "dispatch of the expert ids, one process: block 0, the rest -1" : "dispatch, one process: block 0, the rest 0",
             arena_printf(A, "    S%d(a, i, i < %s ? L%d(a, i) : %s);\n", so, cg_dim(G, ir_type_numel(&n->ops[0]->type)), sx, ids ? "-1.0f" : "0.0f"));
        return true;
    }
    case IR_OP_COMBINE: { /* one process: each own token's weighted sum over its slots (block 0) */
        const IrNode *y = n->ops[0];
        int sy = cg_slot_value(G, y), sw = cg_slot_value(G, n->ops[1]), si = cg_slot_value(G, n->ops[2]), so = cg_slot_value(G, n);
        cg_elem(G, n, ir_type_numel(&n->type), "combine, one process: sum of wd * y over the K slots of block 0, in f32",
             arena_printf(A, "    const long long K = %s, O = %s, t = i / O, o = i %% O;\n"
                             "    float acc = 0.0f;\n"
                             "    for (long long k = 0; k < K; k++)\n"
                             "        if (L%d(a, t * K + k) != -1.0f) acc += L%d(a, t * K + k) * L%d(a, (t * K + k) * O + o);\n"
                             "    S%d(a, i, acc);\n",
                          cg_dim(G, y->type.dims[1]), cg_dim(G, cg_suffix(&y->type, 2)), si, sw, sy, so));
        return true;
    }
    case IR_OP_SPLIT_BATCH: {
        int sx = cg_slot_value(G, n->ops[0]), so = cg_slot_value(G, n);
        IrDim cnt = ir_type_numel(&n->type);
        cg_elem(G, n, cnt, "split_batch",
             arena_printf(A, "    S%d(a, i, L%d(a, %lldLL * %s + i));\n", so, sx, (long long)ir_node_attr_int(n, "index", 0), cg_dim(G, cnt)));
        return true;
    }
    case IR_OP_MERGE_BATCH: {
        int so = cg_slot_value(G, n);
        StrBuf b;
        sb_init(&b);
        sb_puts(&b, "    long long at = 0;\n");
        for (int k = 0; k < n->nops; k++) {
            int sk = cg_slot_value(G, n->ops[k]);
            const char *cnt = cg_dim(G, ir_type_numel(&n->ops[k]->type));
            sb_printf(&b, "    if (i < at + %s) { S%d(a, i, L%d(a, i - at)); return; }\n    at += %s;\n", cnt, so, sk, cnt);
        }
        cg_elem(G, n, ir_type_numel(&n->type), "merge_batch", b.data);
        sb_free(&b);
        return true;
    }
    default:
        G->why = "no kernel for this op";
        return false;
    }
}
