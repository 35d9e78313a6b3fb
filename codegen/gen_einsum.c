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

/* DSCC_EINSUM_PRE: 1 the decode form loads w before its DSCC_PDL_WAIT() where w is a value of weights alone
 * (einsum_pre), 0 (unset: opt-in until timed on a GPU) after it; -1 with G->why on a malformed value. */
static int einsum_pre_env(Gen *G) {
    const char *e = G->tune->einsum_pre;
    if (!e || !*e) return 0;
    if (strcmp(e, "0") && strcmp(e, "1")) {
        G->why = arena_printf(G->a, "DSCC_EINSUM_PRE is '%s': expected 0 or 1", e);
        return -1;
    }
    return e[0] == '1';
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

/* The decode form at lo < M <= mrows rows of x [M][H][K] and w [H][N][K] (einsum_heads.cuh): a block a 32 * R rows
 * of one head's w, R * (K / 64) <= 8 loads a lane. */
static void einsum_heads_rows(Gen *G, int lo, int mrows, IrDim M, int64_t H, int64_t N, int64_t K, int sx, int sw, int sy, bool pre) {
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
                    {"EH_X(i)", arena_printf(a, "L%d(a, (i))", sx)},
                    {"EH_W", arena_printf(a, "((const unsigned short *)a.t[%d])", sw)},
                    {"EH_STORE(i, v)", arena_printf(a, "S%d(a, (i), (v))", sy)},
                    {"EH_PRE", pre ? "1" : "0"},
                    {"EH_EARLY", cg_pdl_early(G->tune) == 1 ? "1" : "0"}};
    sb_printf(&G->decl, "// the per-head products at %sM <= %d: %lld blocks of %lld rows of one head's w, each weight row read once by 8 lanes,\n"
                        "// x's rows in shared memory, the sums on the CUDA cores%s\n",
              lo ? arena_printf(a, "%d < ", lo) : "", mrows, (long long)(H * nb), (long long)(32 * r),
              pre ? "; w's first loads before the wait (a value of weights alone)" : "");
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

static bool einsum_heads_mma(Gen *G, const IrNode *n, const char *x, const char *w, const char *o, int rows, bool pre_on) {
    const IrNode *xv = n->ops[0], *wv = n->ops[1];
    if (strlen(x) != 4 || strlen(w) != 3 || strlen(o) != 4 || xv->type.rank != 4 || wv->type.rank != 3) return false;
    if (xv->op == IR_OP_KV_CACHE || wv->op == IR_OP_KV_CACHE) return false; /* read as dense rows: not a [B, capacity, ...] cache */
    char p0 = x[0], p1 = x[1], h = x[2], k = x[3], nn = o[3];
    if (o[0] != p0 || o[1] != p1 || o[2] != h || w[0] != h || nn == k || nn == h || k == h || p0 == p1) return false;
    bool wt; /* w[h] stored [K][N] */
    if (w[1] == nn && w[2] == k) wt = false;
    else if (w[1] == k && w[2] == nn) wt = true;
    else return false;
    const IrType *wty = &wv->type;
    IrDim H = wty->dims[0], K = wty->dims[wt ? 1 : 2], N = wty->dims[wt ? 2 : 1];
    if (!ir_dim_is_const(H) || !ir_dim_is_const(K) || !ir_dim_is_const(N) || K.coeff >= (1LL << 30) || (wt && N.coeff % 8)) return false;
    if (!ir_dim_eq(xv->type.dims[2], H) || !ir_dim_eq(xv->type.dims[3], K) || G->dtype[xv->id] != IR_DT_BF16 || G->dtype[wv->id] != IR_DT_BF16)
        return false;
    IrDim M = ir_dim_mul(xv->type.dims[0], xv->type.dims[1]);
    int sx = cg_slot_value(G, xv), sw = cg_slot_value(G, wv), sy = cg_slot_value(G, n);
    const int mrows = wt || K.coeff % 64 || (G->kblock && G->kblock[wv->id]) ? 0 : rows;
    /* above CG_EINSUM_ROWS the tensor-core form, its sums 4 registers a 16-row tile */
    const bool pre = mrows && pre_on && einsum_pre(G, wv);
    if (mrows) einsum_heads_rows(G, 0, mrows < CG_EINSUM_ROWS ? mrows : CG_EINSUM_ROWS, M, H.coeff, N.coeff, K.coeff, sx, sw, sy, pre);
    if (mrows > CG_EINSUM_ROWS) einsum_heads_tc(G, CG_EINSUM_ROWS, mrows, M, H.coeff, N.coeff, K.coeff, sx, sw, sy);
    cg_head(G, arena_printf(G->a, "einsum %s,%s->%s per head on the tensor cores (%s), 64x128 tile", x, w, o, cg_tile_insn(G, true)));
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
            const int rows = einsum_rows(G), pre = rows < 0 ? 0 : einsum_pre_env(G);
            if (rows < 0 || pre < 0 || einsum_heads_mma(G, n, xs, ws, os, rows, pre == 1)) {
                for (int k = 0; k < 2; k++)
                    for (int l = 0; l < 26; l++) sb_free(&st[k][l]);
                return rows >= 0 && pre >= 0;
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

