/* gen_einsum.c — the einsum template: two operands, subscripts by letters;
 * one thread per output element looping over the contracted letters.
 *
 * The per-head matrix products of absorbed MLA, "bshk,hnk->bshn" and
 * "bshk,hkn->bshn" on bf16 values, run on the tensor-core tile of
 * gen_gemm.c instead: x is read as [B*S*H, K] rows (row (b*S + s)*H + h),
 * head h's matrix is weight matrix e = h, the output rows likewise. At a
 * decode step's few rows (up to DSCC_EINSUM_ROWS, default 8; 0: the tile
 * at every row count) the "bshk,hnk->bshn" form runs
 * codegen/kernels/einsum_heads.cuh first: each weight row read once, in one
 * wave, the sums on the CUDA cores; with DSCC_EINSUM_ROWS above 8 (to 128,
 * opt-in until timed), einsum_heads_mma.cuh past 8 rows: the same weight
 * stream, the sums on mma.sync. The decode form issues its first loads of
 * a w of weights alone before its wait for the kernel before it with
 * DSCC_EINSUM_PRE=1 (opt-in until timed; else after it). */
#include "codegen/gen_internal.h"
#include "codegen/kernels.h"

#include <stdlib.h>
#include <string.h>

/* The decode forms of the per-head products: at most CG_EINSUM_ROWS rows by default on the CUDA cores
 * (codegen/kernels/einsum_heads.cuh); with DSCC_EINSUM_ROWS above that, up to CG_EINSUM_ROWS_MAX on the tensor cores
 * past them (einsum_heads_mma.cuh, opt-in until timed). */
#define CG_EINSUM_ROWS 8
#define CG_EINSUM_ROWS_MAX 128

/* The most rows of the decode forms: DSCC_EINSUM_ROWS (0: none, the tile at every row count; 1..128), else
 * CG_EINSUM_ROWS; -1 with G->why on a malformed value. */
static int einsum_rows(Gen *G) {
    const char *e = G->tune->einsum_rows;
    if (!e || !*e) return CG_EINSUM_ROWS;
    char *end = NULL;
    long v = strtol(e, &end, 10);
    if (*end || v < 0 || v > CG_EINSUM_ROWS_MAX) {
        G->why = arena_printf(G->a, "DSCC_EINSUM_ROWS is '%s': expected the most rows of the per-head decode form, 0 (none) to %d", e,
                              CG_EINSUM_ROWS_MAX);
        return -1;
    }
    return (int)v;
}

/* Whether w (value wv) is a value of weights alone that no kernel of a step writes (einsum_heads.cuh's EH_PRE): a
 * weight, or a stored value ir_weight_values keeps with the weights (computed when they load: absorbed MLA's W_UK
 * and W_UV, slices of kv_b_proj). */
static bool einsum_pre(Gen *G, const IrNode *wv) {
    if (wv->op == IR_OP_WEIGHT) return true;
    unsigned char *kind = malloc((size_t)G->g->nnodes + 1);
    bool pre = kind && ir_weight_values(G->g, G->stored, kind) && ir_wv_kept(kind[wv->id]) && G->stored[wv->id];
    free(kind);
    return pre;
}

static bool cg_rope_here(const Gen *G, const IrNode *e);
static const char *cg_rope_emit(Gen *G, const IrNode *e);
static int kvf_here(const Gen *G, const IrNode *e);
static const char *cg_kvf_emit(Gen *G, int P);

/* The decode form at lo < M <= mrows rows of x [M][H][K] and w [H][N][K] (einsum_heads.cuh): a block a 32 * R rows
 * of one head's w, R * (K / 64) <= 8 loads a lane. */
static void einsum_heads_rows(Gen *G, int lo, int mrows, IrDim M, int64_t H, int64_t N, int64_t K, int sx, int sw, int sy, bool pre,
                              const char *side, const char *kv) {
    Arena *a = G->a;
    const int64_t segs = K / 64, r = segs >= 8 ? 1 : 8 / segs, nb = (N + 32 * r - 1) / (32 * r);
    const char *entry = arena_printf(a, "p%d_einsum_heads_m%d", G->nphases, mrows);
    CgDefine d[] = {{"EH_M", cg_dim(G, M)},
                    {"EH_MROWS", arena_printf(a, "%d", mrows)},
                    {"EH_H", arena_printf(a, "%lld", (long long)H)},
                    {"EH_N", arena_printf(a, "%lld", (long long)N)},
                    {"EH_K", arena_printf(a, "%lld", (long long)K)},
                    {"EH_SEGS", arena_printf(a, "%lld", (long long)segs)},
                    {"EH_R", arena_printf(a, "%lld", (long long)r)},
                    {"EH_X(i)", side ? arena_printf(a, "%s_x(a, (i))", side) : arena_printf(a, "L%d(a, (i))", sx)},
                    {"EH_SIDE(a)", arena_printf(a, "%s%s%s%s(void)0", side ? side : "", side ? "_side(a); " : "", kv ? kv : "",
                                                kv ? "_side(a); " : "")},
                    {"EH_W", arena_printf(a, "((const unsigned short *)a.t[%d])", sw)},
                    {"EH_STORE(i, v)", arena_printf(a, "S%d(a, (i), (v))", sy)},
                    {"EH_PRE", pre ? "1" : "0"},
                    {"EH_EARLY", cg_pdl_early(G->tune) ? "1" : "0"}};
    sb_printf(&G->decl, "// the per-head products at %sM <= %d: %lld blocks of %lld rows of one head's w, each weight row read once by 8 lanes,\n"
                        "// x's rows in shared memory, the sums on the CUDA cores%s\n",
              lo ? arena_printf(a, "%d < ", lo) : "", mrows, (long long)(H * nb), (long long)(32 * r),
              pre ? "; w's first loads before the wait (a value of weights alone)" : "");
    if (side) sb_puts(&G->decl, "// x read from q_b's output, and at a cached step the roped q_pe stored too (DSCC_EINSUM_ROPE)\n");
    if (kv) sb_puts(&G->decl, "// at a cached step blocks 0 .. M - 1 also do the latent's row, its norm and the KV cache append (DSCC_EINSUM_KV=1)\n");
    sb_puts(&G->decl, cg_kernel_instance(a, "einsum_heads", entry, d, (int)(sizeof d / sizeof *d)));
    cg_phase(G, CG_LAUNCH_BLOCK, M, mrows, ir_dim_const(H * nb), 1, (int64_t)mrows * K * 2);
    G->phases[G->nphases - 1].fn = entry;
    G->phases[G->nphases - 1].amin = lo;
    G->phases[G->nphases - 1].amax = mrows;
}

/* The batched-over-heads form above, when n is one: false (no code) otherwise. */
/* The tensor-core decode form at lo < M <= mrows rows (einsum_heads_mma.cuh): a block a 64 rows of one head's w. */
static void einsum_heads_tc(Gen *G, int lo, int mrows, IrDim M, int64_t H, int64_t N, int64_t K, int sx, int sw, int sy) {
    Arena *a = G->a;
    const int mt = (mrows + 15) / 16;
    const char *entry = arena_printf(a, "p%d_einsum_heads_mma_m%d", G->nphases, 16 * mt);
    CgDefine d[] = {{"EH_M", cg_dim(G, M)},
                    {"EH_MT", arena_printf(a, "%d", mt)},
                    {"EH_H", arena_printf(a, "%lld", (long long)H)},
                    {"EH_N", arena_printf(a, "%lld", (long long)N)},
                    {"EH_K", arena_printf(a, "%lld", (long long)K)},
                    {"EH_XB", arena_printf(a, "((const unsigned short *)a.t[%d])", sx)},
                    {"EH_W", arena_printf(a, "((const unsigned short *)a.t[%d])", sw)},
                    {"EH_STORE(i, v)", arena_printf(a, "S%d(a, (i), (v))", sy)}};
    cg_mma_helpers(G);
    sb_printf(&G->decl, "// the per-head products at %d < M <= %d: %lld blocks of 64 rows of one head's w, each weight row read once,\n"
                        "// mma.sync m16n8k16 BF16 with x as A read from global memory\n",
              lo, mrows, (long long)(H * ((N + 63) / 64)));
    sb_puts(&G->decl, cg_kernel_instance(a, "einsum_heads_mma", entry, d, (int)(sizeof d / sizeof *d)));
    cg_phase(G, CG_LAUNCH_BLOCK, M, mrows, ir_dim_const(H * ((N + 63) / 64)), 1, 0);
    G->phases[G->nphases - 1].fn = entry;
    G->phases[G->nphases - 1].amin = lo;
    G->phases[G->nphases - 1].amax = mrows;
}

/* The per-head product's shape where einsum n ("bshk,hnk->bshn" or "bshk,hkn->bshn" on bf16 values) takes it: false
 * otherwise; *wt: w[h] stored [K][N]; *mrows: the most rows of its CUDA-core decode form at `rows` (0: none). */
static bool heads_shape(const Gen *G, const IrNode *n, const char *x, const char *w, const char *o, int rows, bool *wt, IrDim *H,
                        IrDim *K, IrDim *N, int *mrows) {
    const IrNode *xv = n->ops[0], *wv = n->ops[1];
    if (strlen(x) != 4 || strlen(w) != 3 || strlen(o) != 4 || xv->type.rank != 4 || wv->type.rank != 3) return false;
    if (xv->op == IR_OP_KV_CACHE || wv->op == IR_OP_KV_CACHE) return false; /* read as dense rows: not a [B, capacity, ...] cache */
    char p0 = x[0], p1 = x[1], h = x[2], k = x[3], nn = o[3];
    if (o[0] != p0 || o[1] != p1 || o[2] != h || w[0] != h || nn == k || nn == h || k == h || p0 == p1) return false;
    if (w[1] == nn && w[2] == k) *wt = false;
    else if (w[1] == k && w[2] == nn) *wt = true;
    else return false;
    const IrType *wty = &wv->type;
    *H = wty->dims[0], *K = wty->dims[*wt ? 1 : 2], *N = wty->dims[*wt ? 2 : 1];
    if (!ir_dim_is_const(*H) || !ir_dim_is_const(*K) || !ir_dim_is_const(*N) || K->coeff >= (1LL << 30) || (*wt && N->coeff % 8)) return false;
    if (!ir_dim_eq(xv->type.dims[2], *H) || !ir_dim_eq(xv->type.dims[3], *K) || G->dtype[xv->id] != IR_DT_BF16 || G->dtype[wv->id] != IR_DT_BF16)
        return false;
    *mrows = *wt || K->coeff % 64 || (G->kblock && G->kblock[wv->id]) ? 0 : rows;
    return true;
}

static bool einsum_heads_mma(Gen *G, const IrNode *n, const char *x, const char *w, const char *o, int rows, bool pre_on) {
    const IrNode *xv = n->ops[0], *wv = n->ops[1];
    bool wt;
    IrDim H, K, N;
    int mrows;
    if (!heads_shape(G, n, x, w, o, rows, &wt, &H, &K, &N, &mrows)) return false;
    IrDim M = ir_dim_mul(xv->type.dims[0], xv->type.dims[1]);
    const bool rope = mrows && cg_rope_here(G, n);
    int sx = cg_slot_value(G, xv), sw = cg_slot_value(G, wv), sy = cg_slot_value(G, n); /* x: the forms above the decode rows */
    /* above CG_EINSUM_ROWS the tensor-core form, its sums 4 registers a 16-row tile */
    const bool pre = mrows && pre_on && einsum_pre(G, wv);
    const char *side = rope ? cg_rope_emit(G, n) : NULL; /* DSCC_EINSUM_ROPE: x from q_b's output, q_pe roped here */
    const int kvp = mrows ? kvf_here(G, n) : -1;
    const char *kv = kvp >= 0 ? cg_kvf_emit(G, kvp) : NULL; /* DSCC_EINSUM_KV=1: the latent's row here at a cached step */
    if (mrows) einsum_heads_rows(G, 0, mrows < CG_EINSUM_ROWS ? mrows : CG_EINSUM_ROWS, M, H.coeff, N.coeff, K.coeff, sx, sw, sy, pre, side, kv);
    if (mrows > CG_EINSUM_ROWS) einsum_heads_tc(G, CG_EINSUM_ROWS, mrows, M, H.coeff, N.coeff, K.coeff, sx, sw, sy);
    cg_head_as(G, "einsum_tile", arena_printf(G->a, "einsum %s,%s->%s per head on the tensor cores (%s), 64x128 tile", x, w, o, cg_tile_insn(G, true)));
    sb_printf(&G->decl, "    extern __shared__ __align__(16) unsigned char sm[];\n"
                        "    __shared__ int srow[64], yrow[64];\n"
                        "    const long long M = %s, H = %lldLL, nb = (%lldLL + 127) / 128, nt = H * nb;\n"
                        "    const long long m0 = blockIdx.x / nt * 64, e = blockIdx.x %% nt / nb, ot = blockIdx.x %% nb;  // e: the head\n"
                        "    if (threadIdx.x < 64)\n"
                        "        srow[threadIdx.x] = yrow[threadIdx.x] = m0 + threadIdx.x < M ? (int)((m0 + threadIdx.x) * H + e) : -1;\n"
                        "    __syncthreads();\n",
              cg_dim(G, M), (long long)H.coeff, (long long)N.coeff);
    cg_mma_tile(G, true, wt, sx, 0, sw, 0, sy, K.coeff, cg_dim(G, N));
    sb_puts(&G->decl, "}\n");
    int64_t nob = (N.coeff + 127) / 128;
    cg_phase(G, CG_LAUNCH_BLOCK, M, 64, ir_dim_const(H.coeff * nob), 1, CG_TILE_SMEM(G));
    G->phases[G->nphases - 1].amin = mrows; /* above the decode form's rows */
    return true;
}

/* ---- DSCC_EINSUM_ROPE (the default; =0 off): the row group before absorbed MLA's first einsum, folded into its
 * decode form ----
 * In V3 q_b's output [B, S, 128 * 192] is split into q_nope (stored for the einsum "bshd,hcd->bshc") and q_pe (roped
 * and stored for the attention) by a row group of its own: a launch of ~50 KB of work at a decode step. With the
 * switch the einsum's decode form reads x through that group's reshape and slice, straight from q_b's output, and,
 * at a step with a cached context (a.len > 0; the runtime's CgPhase.cmin), stores the roped values itself, a
 * grid-stride side job between its wait and its products while its weights are in flight; the row group's phases
 * then launch nothing at the einsum's decode rows. A step with nothing cached (a prefill, whose naive attention reads
 * q_nope and q_pe) runs the row group as before. The same expressions (the rope's v-function, in f32 from the same
 * bf16 values): the same bits. */

/* Nodes a step with a cached context needs (ir_step_needs, kind 1: the runtime's rule). */
static const bool *rope_needed(Gen *G) {
    bool *need = arena_alloc(G->a, (size_t)G->g->nnodes + 1);
    ir_step_needs(G->g, 1, need);
    return need;
}

/* Whether member n of row group P is a view the einsum can read per element (reshape, a slice of the last axis) of a
 * bf16 value stored outside P; marks what it reaches in seen. */
static bool rope_view_ok(const Gen *G, const IrNode *n, int P, const int *grp, char *seen) {
    if (grp[n->id] != P) return G->stored[n->id] && n->op != IR_OP_KV_CACHE && G->dtype[n->id] == IR_DT_BF16;
    seen[n->id] = 1;
    const IrNode *x = n->nops ? n->ops[0] : NULL;
    const int r = n->type.rank;
    if (n->op == IR_OP_RESHAPE) return rope_view_ok(G, x, P, grp, seen);
    if (n->op == IR_OP_SLICE)
        return r >= 1 && cg_axis(ir_node_attr_int(n, "axis", 0), r) == r - 1 && ir_node_attr_int(n, "start", 0) >= 0 &&
               ir_dim_is_const(x->type.dims[r - 1]) && rope_view_ok(G, x, P, grp, seen);
    return false;
}

/* Whether every reader of n a cached step runs, but those in group skip (-1: none), comes after the einsum e on its
 * stream (a value no kernel stores: by its own readers, which compute it). */
static bool rope_after(const Gen *G, const bool *need, const IrNode *n, const IrNode *e, const int *grp, const int *pos, int depth,
                       int skip) {
    if (depth > 4) return false;
    for (int i = n->id + 1; i < G->g->nnodes; i++) {
        const IrNode *m = G->g->nodes[i];
        bool reads = false;
        for (int k = 0; k < m->nops; k++) reads |= m->ops[k] == n;
        if (!reads || !need[i] || (skip >= 0 && grp[i] == skip)) continue;
        if (m->stream != e->stream) return false;
        if (G->stored[i] || !ir_op_has_result(m->op) || m->op == IR_OP_OUTPUT) {
            if (grp[i] < 0 || pos[grp[i]] <= pos[grp[e->id]]) return false;
        } else if (!rope_after(G, need, m, e, grp, pos, depth + 1, skip)) return false;
    }
    return true;
}

/* Whether einsum e reads x ([B, S, H, K], bf16, its decode form's) as a view of a value of row group P, the other
 * values P stores at a cached step being ropes of such views, all read after e: the group e takes the place of. */
static int rope_group(Gen *G, const IrNode *e, const int *grp, const int *tmpl, const int *pos, const bool *need, char *seen) {
    const IrGraph *g = G->g;
    const IrNode *x = e->ops[0];
    const int P = grp[x->id], ge = grp[e->id];
    if (P < 0 || ge < 0 || P == ge || tmpl[P] >= 0 || pos[P] < 0 || pos[P] >= pos[ge] || !G->stored[x->id]) return -1;
    memset(seen, 0, (size_t)g->nnodes + 1);
    if (!rope_view_ok(G, x, P, grp, seen)) return -1;
    for (int i = 0; i < g->nnodes; i++) { /* x: read at a cached step by e alone */
        const IrNode *m = g->nodes[i];
        for (int k = 0; k < m->nops; k++)
            if (m->ops[k] == x && m != e && need[i]) return -1;
    }
    int nr = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (grp[i] != P) continue;
        if (n->nwaits || n->stream != e->stream) return -1; /* a wait e would not make */
        if (!need[i] || seen[i] || !G->stored[i]) continue; /* x's view; or what a cached step never reads; or computed where read */
        const IrNode *v = n->ops[0], *p = n->nops > 1 ? n->ops[1] : NULL;
        if (n->op != IR_OP_ROPE || !p || grp[p->id] == P || !G->stored[p->id] || p->op == IR_OP_KV_CACHE || v->type.rank < 3 ||
            !ir_dim_is_const(v->type.dims[v->type.rank - 1]) || !rope_view_ok(G, v, P, grp, seen) || !rope_after(G, need, n, e, grp, pos, 0, -1))
            return -1;
        nr++;
    }
    for (int i = 0; i < g->nnodes; i++) /* an unstored member a cached step reads: only through the views above */
        if (grp[i] == P && need[i] && !G->stored[i] && !seen[i]) return -1;
    return nr ? P : -1;
}

/* The leaves (values outside P) the views and ropes e computes read, into lv (at most cap). */
static void rope_leaves(const Gen *G, const IrNode *n, int P, const IrNode **lv, int *nl, int cap) {
    const int *grp = G->rope_grp;
    if (grp[n->id] != P) {
        for (int k = 0; k < *nl; k++)
            if (lv[k] == n) return;
        if (*nl < cap) lv[(*nl)++] = n;
        return;
    }
    for (int k = 0; k < n->nops; k++) rope_leaves(G, n->ops[k], P, lv, nl, cap);
}

/* The stored ropes of P a cached step reads (rope_group's), and their leaves with x's, for e. */
static int rope_leaves_of(const Gen *G, const IrNode *e, int P, const IrNode **lv, int cap) {
    int nl = 0;
    rope_leaves(G, e->ops[0], P, lv, &nl, cap);
    for (int i = 0; i < G->g->nnodes; i++)
        if (G->rope_grp[i] == P && G->g->nodes[i]->op == IR_OP_ROPE && G->stored[i]) rope_leaves(G, G->g->nodes[i], P, lv, &nl, cap);
    return nl;
}

/* The einsum's spec split in x, w, o subscripts (each < 8 letters): false otherwise. */
static bool spec_parts(const IrNode *n, char *xs, char *ws, char *os) {
    const char *spec = ir_node_attr_str(n, "spec", ""), *comma = strchr(spec, ','), *arrow = strstr(spec, "->");
    if (!comma || !arrow || arrow < comma || comma - spec >= 8 || arrow - comma - 1 >= 8 || strlen(arrow + 2) >= 8) return false;
    memset(xs, 0, 8), memset(ws, 0, 8), memset(os, 0, 8);
    memcpy(xs, spec, (size_t)(comma - spec));
    memcpy(ws, comma + 1, (size_t)(arrow - comma - 1));
    memcpy(os, arrow + 2, strlen(arrow + 2));
    return true;
}

/* The decode form's rows at e (0: none): what einsum_heads_mma gives it. */
static int rope_rows(Gen *G, const IrNode *e) {
    char xs[8], ws[8], os[8];
    bool wt;
    IrDim H, K, N;
    int mrows;
    const char *why = G->why;
    const int rows = einsum_rows(G);
    G->why = why; /* cg_einsum reports a malformed value */
    if (rows <= 0 || !spec_parts(e, xs, ws, os) || !heads_shape(G, e, xs, ws, os, rows, &wt, &H, &K, &N, &mrows)) return 0;
    return mrows < CG_EINSUM_ROWS ? mrows : CG_EINSUM_ROWS;
}

void cg_rope_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups) {
    G->rope = NULL;
    G->rope_ok = NULL;
    if (!tune_on(G->tune->einsum_rope, true)) return; /* on by default since the eleventh session (=0 off) */
    const IrGraph *g = G->g;
    G->rope_grp = grp;
    G->rope = arena_alloc(G->a, sizeof(int) * (size_t)(ngroups + 1));
    G->rope_ok = arena_alloc(G->a, (size_t)ngroups + 1);
    for (int k = 0; k < ngroups; k++) G->rope[k] = -1, G->rope_ok[k] = 0;
    const bool *need = rope_needed(G);
    char *seen = arena_alloc(G->a, (size_t)g->nnodes + 1);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *e = g->nodes[i];
        if (e->op != IR_OP_EINSUM || !rope_rows(G, e)) continue;
        const int P = rope_group(G, e, grp, tmpl, pos, need, seen);
        if (P < 0 || G->rope[P] >= 0) continue;
        const IrNode *lv[16];
        const int nl = rope_leaves_of(G, e, P, lv, 16);
        /* with a memory plan: the leaves intact from P's place to e's (plan-memory keeps them: cg_rope_also_read) */
        if (nl >= 16 || (g->mem_planned && !G->fold_nomem && !cg_leaves_intact(G, lv, nl, e, pos[P], pos[grp[i]], grp, pos))) continue;
        G->rope[P] = i;
    }
}

void cg_rope_also_read(const Gen *G, int ngroups, int *also) {
    for (int P = 0; G->rope && P < ngroups; P++) {
        if (G->rope[P] < 0) continue;
        const IrNode *e = G->g->nodes[G->rope[P]], *lv[16];
        const int nl = rope_leaves_of(G, e, P, lv, 16);
        for (int k = 0; k < nl && k < 16; k++)
            if (also[lv[k]->id] < e->id) also[lv[k]->id] = e->id;
    }
}

/* The phases of the row group being generated run at a cached step only above einsum e's decode rows (as rows x each
 * phase's constant): true when every phase takes it. */
static bool gate_cached(Gen *G, const IrNode *e) {
    const IrNode *x = e->ops[0];
    const IrDim M = ir_dim_mul(x->type.dims[0], x->type.dims[1]);
    const int rows = rope_rows(G, e);
    int64_t at[64];
    if (G->nphases > 64 || rows <= 0) return false;
    for (int p = 0; p < G->nphases; p++) { /* each over c rows' worth (c constant): at a cached step only above rows c */
        const CgPhase *f = &G->phases[p];
        IrDim c;
        if (f->tma || !ir_dim_div(f->a, M, &c) || !ir_dim_is_const(c) || c.coeff < 1) return false;
        at[p] = rows * c.coeff;
    }
    for (int p = 0; p < G->nphases; p++) G->phases[p].cmin = at[p];
    return true;
}

void cg_rope_gate(Gen *G, int gid) {
    if (G->rope && G->rope[gid] >= 0 && G->nphases && gate_cached(G, G->g->nodes[G->rope[gid]])) G->rope_ok[gid] = 1;
}

static bool cg_rope_here(const Gen *G, const IrNode *e) {
    if (!G->rope) return false;
    const int P = G->rope_grp[e->ops[0]->id];
    return P >= 0 && G->rope[P] == e->id && G->rope_ok[P];
}

/* The helper of member n of P (and of those it reads first), once each: E_r<id>(a, i), n's value at flat index i. */
static void rope_fn(Gen *G, const char *E, const IrNode *n, int P, char *done);
static const char *rope_ref(Gen *G, const char *E, const IrNode *n, int P, const char *idx, const char *done) {
    if (G->rope_grp[n->id] != P) return arena_printf(G->a, "L%d(a, %s)", cg_slot_value(G, n), idx);
    return arena_printf(G->a, "%s_r%d(a, %s)", E, done[n->id] - 1, idx);
}
/* done[id]: 1 + the helper's number (numbered in the order written, so the layers' modules are the same text) */
static void rope_fn(Gen *G, const char *E, const IrNode *n, int P, char *done) {
    if (G->rope_grp[n->id] != P || done[n->id]) return;
    for (int k = 0; k < n->nops; k++) rope_fn(G, E, n->ops[k], P, done);
    int me = 0;
    for (int i = 0; i < G->g->nnodes; i++) me = done[i] > me ? done[i] : me;
    done[n->id] = (char)(me + 1);
    const IrNode *x = n->ops[0];
    StrBuf f;
    sb_init(&f);
    const char *ret;
    if (n->op == IR_OP_RESHAPE) ret = rope_ref(G, E, x, P, "i", done);
    else if (n->op == IR_OP_SLICE) {
        const int r = n->type.rank;
        sb_printf(&f, "    const long long len = %s, mid = %lldLL;\n", cg_dim(G, n->type.dims[r - 1]), (long long)x->type.dims[r - 1].coeff);
        ret = rope_ref(G, E, x, P, arena_printf(G->a, "i / len * mid + %lldLL + i %% len", (long long)ir_node_attr_int(n, "start", 0)), done);
    } else { /* IR_OP_ROPE: gen.c's v-function, its arithmetic in its order */
        const int64_t d = x->type.dims[x->type.rank - 1].coeff;
        double *inv = malloc(sizeof(double) * (size_t)(d / 2 + 1));
        const double af = inv ? ir_rope_freqs(n, d, inv) : 1.0;
        sb_printf(&G->decl, "__device__ const float %s_inv%d[%lld] = {", E, done[n->id] - 1, (long long)(d / 2));
        for (int64_t k = 0; inv && k < d / 2; k++) sb_printf(&G->decl, "%s%.9ef", k ? ", " : "", (double)(float)inv[k]);
        sb_puts(&G->decl, "};\n");
        free(inv);
        sb_printf(&f, "    const long long d = %lldLL, j = i %% d, row = i - j, per = %s;\n", (long long)d, cg_dim(G, cg_suffix(&x->type, 2)));
        if (ir_node_attr_bool(n, "interleave", false)) sb_puts(&f, "    const long long i0 = j & ~1LL, i1 = i0 + 1, fi = j >> 1;\n");
        else sb_puts(&f, "    const long long fi = j % (d / 2), i0 = fi, i1 = fi + d / 2;\n");
        sb_printf(&f, "    const float p = %s, ang = p * %s_inv%d[fi];\n", rope_ref(G, E, n->ops[1], P, "i / per", done), E, done[n->id] - 1);
        sb_printf(&f, "    const float cs = cosf(ang) * %.9ef, sn = sinf(ang) * %.9ef;\n", (double)(float)af, (double)(float)af);
        sb_printf(&f, "    const float x0 = %s, x1 = %s;\n", rope_ref(G, E, x, P, "row + i0", done), rope_ref(G, E, x, P, "row + i1", done));
        ret = "j == i0 ? x0 * cs - x1 * sn : x1 * cs + x0 * sn";
    }
    sb_printf(&G->decl, "__device__ __forceinline__ float %s_r%d(const Args &a, long long i) {  // %s\n%s    return %s;\n}\n", E, done[n->id] - 1,
              ir_op_name(n->op), f.data ? f.data : "", ret);
    sb_free(&f);
}

/* E_x(a, i), x of einsum e read through its row group's views, and E_side(a), the group's stored ropes a cached step
 * reads, stored by the einsum's blocks in turn: the prefix E. */
static const char *cg_rope_emit(Gen *G, const IrNode *e) {
    const int P = G->rope_grp[e->ops[0]->id];
    const char *E = arena_printf(G->a, "p%d_rope", G->nphases);
    char *done = arena_alloc(G->a, (size_t)G->g->nnodes + 1);
    memset(done, 0, (size_t)G->g->nnodes + 1);
    rope_fn(G, E, e->ops[0], P, done);
    sb_printf(&G->decl, "__device__ __forceinline__ float %s_x(const Args &a, long long i) { return %s; }\n", E,
              rope_ref(G, E, e->ops[0], P, "i", done));
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < G->g->nnodes; i++) {
        const IrNode *n = G->g->nodes[i];
        if (G->rope_grp[i] != P || n->op != IR_OP_ROPE || !G->stored[i]) continue;
        rope_fn(G, E, n, P, done);
        sb_printf(&b, "    for (long long i = (long long)blockIdx.x * 256 + threadIdx.x; i < %s; i += (long long)gridDim.x * 256)\n"
                      "        S%d(a, i, %s_r%d(a, i));\n",
                  cg_dim(G, ir_type_numel(&n->type)), cg_slot_value(G, n), E, done[i] - 1);
    }
    sb_printf(&G->decl, "// at a cached step (its row group launches nothing at these rows) the roped values, the blocks in turn\n"
                        "__device__ __forceinline__ void %s_side(const Args &a) {\n"
                        "    if (a.len == 0) return;  // nothing cached: the row group ran (a prefill's naive attention reads it)\n%s}\n",
              E, b.data ? b.data : "");
    sb_free(&b);
    return E;
}

bool cg_einsum(Gen *G, const IrNode *n) {
    const char *spec = ir_node_attr_str(n, "spec", "");
    const char *comma = strchr(spec, ','), *arrow = strstr(spec, "->");
    if (!comma || !arrow || arrow < comma) {
        G->why = "einsum spec must be 'ab,cd->ef'";
        return false;
    }
    const char *sub[2] = {spec, comma + 1}, *osub = arrow + 2;
    int len[2] = {(int)(comma - spec), (int)(arrow - comma - 1)};
    IrDim ext[26];
    bool seen[26] = {0}, in_out[26] = {0};
    StrBuf st[2][26];
    for (int k = 0; k < 2; k++) {
        const IrType *t = &n->ops[k]->type;
        if (len[k] != t->rank) {
            G->why = "einsum subscripts do not match the operand ranks";
            return false;
        }
        for (int l = 0; l < 26; l++) sb_init(&st[k][l]);
        for (int i = 0; i < len[k]; i++) {
            int l = sub[k][i] - 'a';
            if (l < 0 || l >= 26) {
                G->why = "einsum subscripts must be lowercase letters";
                return false;
            }
            seen[l] = true;
            ext[l] = t->dims[i];
            sb_printf(&st[k][l], "%s%s", st[k][l].len ? " + " : "", cg_dim(G, cg_suffix(t, i + 1)));
        }
    }
    for (int i = 0; osub[i]; i++)
        if (osub[i] >= 'a' && osub[i] <= 'z') in_out[osub[i] - 'a'] = true;
    {
        char xs[8] = {0}, ws[8] = {0}, os[8] = {0};
        if (len[0] < 8 && len[1] < 8 && strlen(osub) < 8) {
            memcpy(xs, sub[0], (size_t)len[0]);
            memcpy(ws, sub[1], (size_t)len[1]);
            memcpy(os, osub, strlen(osub));
            /* DSCC_EINSUM_PRE=1: the decode form loads w before its DSCC_PDL_WAIT() where w is a value of weights
             * alone (einsum_pre); unset, after it (opt-in until timed on a GPU) */
            const int rows = einsum_rows(G);
            if (rows < 0 || einsum_heads_mma(G, n, xs, ws, os, rows, tune_on(G->tune->einsum_pre, false))) {
                for (int k = 0; k < 2; k++)
                    for (int l = 0; l < 26; l++) sb_free(&st[k][l]);
                return rows >= 0;
            }
        }
    }
    int sa = cg_slot_value(G, n->ops[0]), sb2 = cg_slot_value(G, n->ops[1]), so = cg_slot_value(G, n);
    StrBuf body;
    sb_init(&body);
    sb_puts(&body, "    long long r = i, ia = 0, ib = 0;\n");
    for (int i = (int)strlen(osub) - 1; i >= 0; i--) {
        int l = osub[i] - 'a';
        sb_printf(&body, "    { const long long c = r %% %s; r /= %s; ia += c * (%s); ib += c * (%s); }\n", cg_dim(G, ext[l]),
                  cg_dim(G, ext[l]), st[0][l].len ? st[0][l].data : "0", st[1][l].len ? st[1][l].data : "0");
    }
    sb_puts(&body, "    float acc = 0.0f;\n");
    int depth = 0;
    for (int l = 0; l < 26; l++)
        if (seen[l] && !in_out[l]) {
            sb_printf(&body, "%*sfor (long long c%c = 0; c%c < %s; c%c++)\n", 4 + 4 * depth, "", 'a' + l, 'a' + l, cg_dim(G, ext[l]),
                      'a' + l);
            depth++;
        }
    StrBuf ia, ib;
    sb_init(&ia);
    sb_init(&ib);
    sb_puts(&ia, "ia");
    sb_puts(&ib, "ib");
    for (int l = 0; l < 26; l++)
        if (seen[l] && !in_out[l]) {
            if (st[0][l].len) sb_printf(&ia, " + c%c * (%s)", 'a' + l, st[0][l].data);
            if (st[1][l].len) sb_printf(&ib, " + c%c * (%s)", 'a' + l, st[1][l].data);
        }
    sb_printf(&body, "%*sacc += L%d(a, %s) * L%d(a, %s);\n", 4 + 4 * depth, "", sa, ia.data, sb2, ib.data);
    sb_printf(&body, "    S%d(a, i, acc);\n", so);
    cg_elem(G, n, ir_type_numel(&n->type), arena_printf(G->a, "einsum %s", spec), body.data);
    sb_free(&body);
    sb_free(&ia);
    sb_free(&ib);
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < 26; l++) sb_free(&st[k][l]);
    return true;
}

/* ---- DSCC_EINSUM_KV: the latent's row group folded into the next einsum's decode form ----
 * In V3 the latent's row group (kv_a's output: the latent's rmsnorm, k_pe's RoPE, their concat and its append to the
 * KV cache) launches right before absorbed MLA's first einsum, which reads none of it: at a decode step a launch for
 * one 576-wide row. With the switch, at a step with a cached context, the einsum's decode form does those rows itself
 * (blocks 0 .. M - 1, a row each, between its wait and its products, under its weights' loads: gen_rows.c's
 * cg_emit_row_side, the norm summed in the row kernel's order) and the row group's phases launch nothing at its rows.
 * A step with nothing cached runs the row group as before. It applies where every value of the group a cached step
 * reads is read after the einsum on its stream, the group stores no scale and has no reduction but its one rmsnorm,
 * its rows are the einsum's, and, with a memory plan, where the group's inputs and stored values keep their bytes
 * until the einsum (plan-memory keeps them: cg_kvf_also_read). */

/* The members of group P, in node order, into m (arena); their count. */
static int kvf_members(const Gen *G, const int *grp, int P, int **m) {
    int n = 0;
    *m = arena_alloc(G->a, sizeof(int) * (size_t)(G->g->nnodes + 1));
    for (int i = 0; i < G->g->nnodes; i++)
        if (grp[i] == P) (*m)[n++] = i;
    return n;
}

/* The values outside P its members read, and the values P stores in the slab, into lv (at most cap): what must keep
 * its bytes from P's place to the einsum's. */
static int kvf_leaves(const Gen *G, const int *grp, int P, const IrNode **lv, int cap) {
    int nl = 0;
    for (int i = 0; i < G->g->nnodes; i++) {
        if (grp[i] != P) continue;
        const IrNode *n = G->g->nodes[i];
        for (int k = 0; k <= n->nops; k++) {
            const IrNode *v = k < n->nops ? n->ops[k] : n;
            if (k < n->nops ? grp[v->id] == P : !G->stored[i] || n->op == IR_OP_KV_CACHE) continue;
            bool dup = false;
            for (int j = 0; j < nl; j++) dup |= lv[j] == v;
            if (dup) continue;
            if (nl == cap) return cap + 1;
            lv[nl++] = v;
        }
    }
    return nl;
}

/* Whether row group P (launched right before einsum e's group) is one e's decode form can take at a cached step. */
static bool kvf_group_ok(Gen *G, const IrNode *e, int P, const int *grp, const int *pos, const bool *need) {
    int *m;
    const int nm = kvf_members(G, grp, P, &m);
    IrDim rows, M = ir_dim_mul(e->ops[0]->type.dims[0], e->ops[0]->type.dims[1]);
    bool cache = false;
    for (int k = 0; k < nm; k++) {
        const IrNode *n = G->g->nodes[m[k]];
        if (n->nwaits || n->stream != e->stream || n->op == IR_OP_ACT_SCALE || n->op == IR_OP_QUANTIZE) return false;
        if (n->op != IR_OP_RMSNORM && cg_has_reduction_phase(n)) return false;
        if (n->op != IR_OP_KV_CACHE && !ir_op_fusible(n->op)) return false;
        cache |= n->op == IR_OP_KV_CACHE;
        if (need[m[k]] && (G->stored[m[k]] || n->op == IR_OP_KV_CACHE) && !rope_after(G, need, n, e, grp, pos, 0, P)) return false;
    }
    if (!cache) return false;
    int nloc = 0; /* cg_row_norm reads the members' local numbers, as where the group is generated */
    for (int k = 0; k < nm; k++)
        if (ir_op_fusible(G->g->nodes[m[k]]->op)) G->local[m[k]] = nloc++;
    const IrNode *act = G->act, *norm = (G->act = NULL, cg_row_norm(G, m, nm, &rows));
    int T;
    const bool ok = norm && ir_dim_eq(rows, M) && cg_row_side_form(G, norm, &T) > 0;
    G->act = act;
    for (int k = 0; k < nm; k++) G->local[m[k]] = -1;
    return ok;
}

void cg_kvf_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups) {
    G->kvf = NULL;
    G->kvf_ok = NULL;
    if (!tune_on(G->tune->einsum_kv, false)) return;
    const IrGraph *g = G->g;
    G->kvf_grp = grp;
    G->kvf_n = ngroups;
    G->kvf = arena_alloc(G->a, sizeof(int) * (size_t)(ngroups + 1));
    G->kvf_ok = arena_alloc(G->a, (size_t)ngroups + 1);
    int *at = arena_alloc(G->a, sizeof(int) * (size_t)(ngroups + 1)); /* by place in the launch order: the group */
    for (int k = 0; k < ngroups; k++) G->kvf[k] = -1, G->kvf_ok[k] = 0, at[k] = -1;
    for (int k = 0; k < ngroups; k++)
        if (pos[k] >= 0) at[pos[k]] = k;
    if (!G->local) { /* cg_fold_reads: no kernel being generated */
        G->local = arena_alloc(G->a, sizeof(int) * (size_t)(g->nnodes + 1));
        for (int i = 0; i < g->nnodes; i++) G->local[i] = -1;
    }
    const bool *need = rope_needed(G);
    /* by group: launched at no cached step (each member a function of the weights alone, run once at load, or one a
     * cached step never reads) */
    bool *wonly = arena_alloc(G->a, (size_t)g->nnodes + 1);
    char *idle = arena_alloc(G->a, (size_t)ngroups + 1);
    ir_weights_only(g, wonly);
    memset(idle, 1, (size_t)ngroups + 1);
    for (int i = 0; i < g->nnodes; i++)
        if (grp[i] >= 0 && need[i] && !wonly[i]) idle[grp[i]] = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *e = g->nodes[i];
        const int ge = grp[i];
        if (e->op != IR_OP_EINSUM || ge < 0 || pos[ge] < 1 || !rope_rows(G, e)) continue;
        int pp = pos[ge] - 1; /* the group launched right before e's at a cached step: nothing between them */
        while (pp > 0 && at[pp] >= 0 && idle[at[pp]]) pp--;
        const int P = at[pp];
        if (P < 0 || tmpl[P] >= 0 || G->kvf[P] >= 0 || !kvf_group_ok(G, e, P, grp, pos, need)) continue;
        const IrNode *lv[16];
        const int nl = kvf_leaves(G, grp, P, lv, 16);
        if (nl > 16 || (g->mem_planned && !G->fold_nomem && !cg_leaves_intact(G, lv, nl, e, pos[P], pos[ge], grp, pos))) continue;
        G->kvf[P] = i;
    }
}

void cg_kvf_also_read(const Gen *G, int ngroups, int *also) {
    for (int P = 0; G->kvf && P < ngroups; P++) {
        if (G->kvf[P] < 0) continue;
        const IrNode *e = G->g->nodes[G->kvf[P]], *lv[16];
        const int nl = kvf_leaves(G, G->kvf_grp, P, lv, 16);
        for (int k = 0; k < nl && k < 16; k++)
            if (also[lv[k]->id] < e->id) also[lv[k]->id] = e->id;
    }
}

void cg_kvf_gate(Gen *G, int gid) {
    if (G->kvf && G->kvf[gid] >= 0 && G->nphases && gate_cached(G, G->g->nodes[G->kvf[gid]])) G->kvf_ok[gid] = 1;
}

/* The row group whose rows einsum e does at a cached step, -1 none. */
static int kvf_here(const Gen *G, const IrNode *e) {
    for (int P = 0; G->kvf && P < G->kvf_n; P++) {
        if (G->kvf[P] == e->id) return G->kvf_ok[P] ? P : -1;
    }
    return -1;
}

/* E_side(a) (E = p<phase>_kv): the rows of row group P that the einsum being generated does at a cached step, P's
 * value functions numbered after the einsum group's own, in the einsum's module (its slots). */
static const char *cg_kvf_emit(Gen *G, int P) {
    int *m;
    const int nm = kvf_members(G, G->kvf_grp, P, &m);
    int nloc = 0;
    for (int i = 0; i < G->g->nnodes; i++) nloc = G->local[i] >= nloc ? G->local[i] + 1 : nloc;
    for (int k = 0; k < nm; k++)
        if (ir_op_fusible(G->g->nodes[m[k]]->op)) G->local[m[k]] = nloc++;
    const IrNode *act = G->act, *rowc = G->rowc, *rown = G->rown;
    G->act = NULL; /* the row group has no act_scale (kvf_group_ok) */
    IrDim rows;
    const IrNode *norm = cg_row_norm(G, m, nm, &rows);
    int T;
    const int C = cg_row_side_form(G, norm, &T);
    const int rparts = G->rparts, rthreads = G->rthreads, rowg = G->rowg;
    const int64_t rowd = G->rowd;
    const IrNode *x = norm->ops[0];
    G->rowc = NULL, G->rowg = 0, G->rown = norm, G->rowd = x->type.dims[x->type.rank - 1].coeff;
    const char *E = arena_printf(G->a, "p%d_kv", G->nphases);
    sb_puts(&G->decl, "__shared__ float rstat;  // the latent row's statistic (DSCC_EINSUM_KV=1)\n");
    for (int k = 0; k < nm; k++)
        if (ir_op_fusible(G->g->nodes[m[k]]->op)) cg_emit_value(G, G->g->nodes[m[k]]);
    cg_emit_row_side(G, E, norm, rows, m, nm, C, T);
    for (int k = 0; k < nm; k++) G->local[m[k]] = -1;
    G->act = act, G->rowc = rowc, G->rown = rown, G->rparts = rparts, G->rthreads = rthreads, G->rowg = rowg, G->rowd = rowd;
    return E;
}
