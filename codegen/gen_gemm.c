/* gen_gemm.c — the linear and fp8_linear templates: y[M, O] = x[M, K] . w[O, K]^T.
 *
 * By rows: the skinny-M forms (gemm_skinny*.cuh) at few rows, the TMA GEMM
 * (gemm_tma.cuh) at many, and between them, at f32 storage and for the grouped
 * experts and the einsums, the 64 x 128 tensor-core tile of gemm_tile.cuh
 * (wgmma, or mma.sync with f32 storage), which reads its rows of x through
 * srow[] and promotes FP8 products with both block scales every 128 of K, the
 * CPU's FP8 numerics; cuBLASLt where the measured table (or the rule) picks it.
 * Other linears (f32 inputs) use a 64 x 64 FP32-FMA tile. */
#include "codegen/gen_internal.h"
#include "codegen/kernels.h"

#include <stdlib.h>
#include <string.h>

/* The device helpers of the tensor-core templates (codegen/kernels/mma.cuh:
 * cp.async with zero fill, ldmatrix (transposed), one mma), once a module. */
void cg_mma_helpers(Gen *G) {
    if (!G->mma_helpers) sb_puts(&G->ldr, cg_kernel_prelude(G->a, "mma"));
    G->mma_helpers = true;
}

void cg_mma_tile(Gen *G, bool bf16, bool wt, int sx, int sxs, int sw, int sws, int sy, int64_t K, const char *O) {
    cg_mma_tile_part(G, bf16, wt, sx, sxs, sw, sws, sy, K, O, NULL, NULL, -1);
}

const char *cg_tile_insn(const Gen *G, bool bf16) {
    if (G->wgmma) return bf16 ? "wgmma m64n64k16 BF16" : "wgmma m64n64k32 E4M3";
    return bf16 ? "mma m16n8k16 BF16" : "mma m16n8k32 E4M3";
}

/* The tensor-core tile, codegen/kernels/gemm_tile.cuh (Hopper's wgmma where
 * G->wgmma, else mma.sync), written into the phase function the caller has
 * opened; its module-scope helpers (gemm_tile_helpers.cuh: tile_off and the
 * wgmma helpers, after mma.cuh) once a module. K counts x's values; the tile
 * stores through slot sy's S accessor, or with spart >= 0 its K part's
 * partial tile to scratch slot spart (rows kpart * 64 + r). */
void cg_mma_tile_part(Gen *G, bool bf16, bool wt, int sx, int sxs, int sw, int sws, int sy, int64_t K, const char *O, const char *kb0,
                      const char *kb1, int spart) {
    Arena *a = G->a;
    cg_mma_helpers(G); /* file scope, before the phase functions */
    if (!G->tile_off) {
        sb_printf(&G->ldr, "#define GTL_WGMMA %d\n%s#undef GTL_WGMMA\n", G->wgmma ? 1 : 0, cg_kernel_prelude(a, "gemm_tile_helpers"));
        G->tile_off = true;
    }
    const CgDefine d[] = {
        {"GTL_WGMMA", G->wgmma ? "1" : "0"},
        {"GTL_BF16", bf16 ? "1" : "0"},
        {"GTL_WT", wt ? "1" : "0"},
        {"GTL_K", arena_printf(a, "%lldLL", (long long)(K * (bf16 ? 2 : 1)))}, /* bytes */
        {"GTL_O", O},
        {"GTL_X", arena_printf(a, "%d", sx)},
        {"GTL_W", arena_printf(a, "%d", sw)},
        {"GTL_WS(i)", bf16 ? "0.0f" : arena_printf(a, "L%d(a, i)", sws)},
        {"GTL_XS(r, kb)", bf16 ? "0.0f" : cg_scale_at(G, sxs, "r", "kb")},
        {"GTL_KB0", kb0 ? kb0 : "0"},
        {"GTL_KB1", kb1 ? kb1 : "nkb"},
        {"GTL_STORE(r, o, v)", spart < 0 ? arena_printf(a, "S%d(a, (long long)r * O + o, v)", sy)
                                         : arena_printf(a, "st_f32(a.t[%d], (kpart * 64 + r) * O + o, v)", spart)}};
    sb_puts(&G->decl, cg_kernel_fragment(a, "gemm_tile", d, (int)(sizeof d / sizeof *d)));
}

void cg_phase_k(Gen *G, CgItems rule, int64_t nkb) {
    G->phases[G->nphases - 1].rule = rule;
    G->phases[G->nphases - 1].knb = nkb;
}

void cg_k_sum(Gen *G, const char *what, IrDim M, int64_t O, const char *tiles, int64_t nkb, int sp, int sy, int64_t plus) {
    cg_head_as(G, "tile_ksum", what);
    sb_printf(&G->decl, "    const long long i = ITEM_ELEM(), M = %s, O = %lldLL;\n"
                        "    if (i >= M * O) return;\n"
                        "    const long long ns = cg_k_splits(M, %s, %lldLL), m = i / O, o = i %% O;\n"
                        "    float s = 0.0f;\n"
                        "    for (long long p = 0; p < ns; p++) s += ld_f32(a.t[%d], (p * 64 + m) * O + o);\n"
                        "    S%d(a, i, s);\n"
                        "}\n",
              cg_dim(G, M), (long long)O, tiles, (long long)nkb, sp, sy);
    cg_phase(G, CG_LAUNCH_ELEM, M, 64, ir_dim_const(O), 128, 0); /* da, db (and plus) as the tile's: the rule counts its parts alike */
    G->phases[G->nphases - 1].plus = plus;
    cg_phase_k(G, CG_ITEMS_K_SUM, nkb);
}

/* A linear on the tensor-core tile: block = (64-row tile of x, 128-wide
 * output tile); the rows of x and y are the block's own. With at most
 * 396 output tiles and enough K, two more phases split K between blocks
 * when a step has one row tile (cg_k_splits: a decode step, whose whole-K
 * grid would leave SMs idle or too few bytes in flight on a GEMM that only
 * streams its weights): each block's partial tile to scratch, then their
 * sum into y.
 * Returns the number of phases (1 or 3), the first being the whole-K one. */
static int gemm_mma(Gen *G, const IrNode *n, const char *what, bool bf16, IrDim M, int64_t K, IrDim O, int sx, int sxs, int sw, int sws,
                    int sy) {
    cg_head_as(G, arena_printf(G->a, "%s_tile", ir_op_name(n->op)), what);
    sb_printf(&G->decl, "    extern __shared__ __align__(16) unsigned char sm[];\n"
                        "    __shared__ int srow[64], yrow[64];\n"
                        "    const long long M = %s, nt = (%s + 127) / 128, ot = blockIdx.x %% nt, m0 = blockIdx.x / nt * 64, e = 0;\n"
                        "    if (threadIdx.x < 64) srow[threadIdx.x] = yrow[threadIdx.x] = m0 + threadIdx.x < M ? (int)(m0 + threadIdx.x) : -1;\n"
                        "    __syncthreads();\n",
              cg_dim(G, M), cg_dim(G, O));
    cg_mma_tile(G, bf16, false, sx, sxs, sw, sws, sy, K, cg_dim(G, O));
    sb_puts(&G->decl, "}\n");
    cg_phase(G, CG_LAUNCH_BLOCK, M, 64, O, 128, CG_TILE_SMEM(G));
    int64_t nkb = (K * (bf16 ? 2 : 1) + 127) / 128, nt = ir_dim_is_const(O) ? (O.coeff + 127) / 128 : 0;
    int64_t parts = cg_k_splits(1, nt, nkb); /* M = 1 splits the most */
    if (parts < 2) return 1;
    cg_phase_k(G, CG_ITEMS_K_WHOLE, nkb);
    int sp = cg_slot_scratch(G, n, ir_dim_const(parts * 64 * O.coeff));
    sb_puts(&G->ldr, "__device__ __forceinline__ " CG_K_SPLITS_FN(CG_QUOTE) "\n");
    cg_head_as(G, arena_printf(G->a, "%s_tile_ksplit", ir_op_name(n->op)),
               arena_printf(G->a, "%s, K split between blocks (one row tile): partial tiles to scratch", what));
    sb_printf(&G->decl, "    extern __shared__ __align__(16) unsigned char sm[];\n"
                        "    __shared__ int srow[64], yrow[64];\n"
                        "    const long long M = %s, nt = %lldLL, ot = blockIdx.x %% nt, kpart = blockIdx.x / nt, e = 0;\n"
                        "    const long long ns = cg_k_splits(M, nt, %lldLL), kper = (%lldLL + ns - 1) / ns;\n"
                        "    if (threadIdx.x < 64) srow[threadIdx.x] = yrow[threadIdx.x] = threadIdx.x < M ? (int)threadIdx.x : -1;\n"
                        "    __syncthreads();\n",
              cg_dim(G, M), (long long)nt, (long long)nkb, (long long)nkb);
    cg_mma_tile_part(G, bf16, false, sx, sxs, sw, sws, sy, K, cg_dim(G, O), "kpart * kper", "kpart * kper + kper < nkb ? kpart * kper + kper : nkb",
                     sp);
    sb_puts(&G->decl, "}\n");
    cg_phase(G, CG_LAUNCH_BLOCK, M, 64, O, 128, CG_TILE_SMEM(G));
    cg_phase_k(G, CG_ITEMS_K_SPLIT, nkb);
    cg_k_sum(G, "the sum of the K parts", M, O.coeff, arena_printf(G->a, "%lldLL", (long long)nt), nkb, sp, sy, 0);
    return 3;
}

/* 8-row weight groups per warp of the skinny form: two when the blocks
 * still cover an H100/H200's 132 SMs twice (2 x 132 blocks; x's fragment
 * is then used by both groups), else one (q_a's and kv_a's few rows: the
 * most blocks). Four would need more registers than two blocks an SM allow. */
int cg_skinny_groups(int64_t N) { return N >= 2 * 8 * 264 ? 2 : 1; }

/* The skinny form's tuning parameters (gemm_skinny.cuh's SK_RB, SK_U, SK_MINB, SK_SPLIT; u32: SK_U of the instance for M > 8). */
typedef struct {
    int rb, u, minb, split, u32;
    int v2;   /* gemm_skinny2.cuh at M <= 8: 1 yes, 0 no, -1 as DSCC_SKINNY_V2 says */
    int pipe; /* gemm_skinny.cuh's persistent pipelined form at M <= 8 (SK_PIPE): 1 yes, 0 no, -1 as DSCC_SKINNY_PIPE says */
    int grid; /* that form's most CTAs (0: the SMs' slots) */
    int bulk; /* gemm_skinny_bulk.cuh at M <= 8: 1 yes, 0 no, -1 as DSCC_SKINNY_BULK says */
    int stages; /* its ring's stages (0: as many as fit, at most 8) */
    int pf;     /* the L2 prefetch distance in steps of the pipelined form and gemm_skinny2.cuh (SK_PF; 0: none) */
    int psplit; /* the pipelined form's cluster K split: 1 may, 0 no, -1 as DSCC_SKINNY_PSPLIT says */
    const DsccTune *tune; /* the switches the -1s defer to (Gen's) */
} SkinnyParams;

/* The default parameters of an N x K weight, from Little's law on an
 * H200 (132 SMs, 4.25 TB/s, 0.7-1 us from HBM under load): 3-4 MB must be
 * in flight, and every SM must stream; the target is 48 KB an SM (6 MB,
 * margin for the latency under load). Output columns alone give
 * ceil(N / (8 SK_RB)) blocks: kv_a's 576 only 72, q_a's 1536 192, so a
 * cluster of SK_SPLIT CTAs splits K (the smallest split that gives 240+
 * CTAs, ~2 an SM; at most 8, the portable cluster size, and no more than
 * leaves each warp a K block). Two CTAs an SM (SK_MINB, the register
 * budget: 128 a thread) unless one wave of one an SM holds them all. A
 * round of a CTA loads 8 warps x SK_U x SK_RB KB (no more than its K: a
 * round spans 8 SK_SPLIT SK_U K blocks): SK_U is the smallest power of
 * two that reaches the target. The instance for M > 8 holds two rows of
 * x a thread and two row tiles: at 128 registers it spills (NVRTC,
 * sm_90a) from SK_RB x SK_U = 4 on, so it loads half as much a round. */
static SkinnyParams skinny_default(int64_t N, int64_t K) {
    SkinnyParams p = {cg_skinny_groups(N), 1, 2, 1, 1, -1, -1, 0, -1, 0, 0, -1, NULL};
    int64_t blocks = (N + 8 * p.rb - 1) / (8 * p.rb), nkb = (K + 127) / 128;
    while (p.split < 8 && blocks * p.split < 240 && 8 * (p.split + 1) <= nkb) p.split++;
    int64_t ctas = blocks * p.split, kw = 8 * p.split;
    if (ctas <= 132) p.minb = 1;
    while (p.u < 8 && p.minb * 8 * p.u * p.rb < 48 && kw * p.u < nkb) p.u *= 2;
    p.u32 = p.rb * p.u > 2 && p.minb > 1 ? p.u / 2 : p.u;
    return p;
}

/* One value of DSCC_SKINNY ("rb=2,u=4,minb=1,split=4", any subset, in
 * order; u sets both instances', u32 that for M > 8 alone; v2=0|1 as
 * DSCC_SKINNY_V2, which it overrides): false when it is not one. */
static bool skinny_param(const char *key, size_t klen, long v, SkinnyParams *p) {
    if (klen == 2 && !strncmp(key, "rb", 2) && (v == 1 || v == 2 || v == 4)) p->rb = (int)v;
    else if (klen == 1 && key[0] == 'u' && v >= 1 && v <= 8) p->u = p->u32 = (int)v;
    else if (klen == 3 && !strncmp(key, "u32", 3) && v >= 1 && v <= 8) p->u32 = (int)v;
    else if (klen == 4 && !strncmp(key, "minb", 4) && v >= 1 && v <= 4) p->minb = (int)v;
    else if (klen == 5 && !strncmp(key, "split", 5) && v >= 1 && v <= 8) p->split = (int)v;
    else if (klen == 2 && !strncmp(key, "v2", 2) && (v == 0 || v == 1)) p->v2 = (int)v;
    else if (klen == 4 && !strncmp(key, "pipe", 4) && (v == 0 || v == 1)) p->pipe = (int)v;
    else if (klen == 4 && !strncmp(key, "grid", 4) && v >= 1 && v <= 4096) p->grid = (int)v;
    else if (klen == 4 && !strncmp(key, "bulk", 4) && (v == 0 || v == 1)) p->bulk = (int)v;
    else if (klen == 6 && !strncmp(key, "stages", 6) && v >= 2 && v <= 16) p->stages = (int)v;
    else if (klen == 2 && !strncmp(key, "pf", 2) && v >= 0 && v <= 8) p->pf = (int)v;
    else if (klen == 6 && !strncmp(key, "psplit", 6) && (v == 0 || v == 1)) p->psplit = (int)v;
    else return false;
    return true;
}

/* The parameters of an N x K weight: the shape's default, then what
 * DSCC_SKINNY sets (the sweep of bench_gemm --skinny-sweep). False, with
 * G->why, on a malformed value. */
static bool skinny_params(Gen *G, int64_t N, int64_t K, SkinnyParams *p) {
    *p = skinny_default(N, K);
    p->tune = G->tune;
    const char *e = G->tune->skinny;
    if (!e || !*e) return true;
    for (const char *s = e; *s;) {
        const char *eq = strchr(s, '='), *end = strchr(s, ',');
        if (!end) end = s + strlen(s);
        char *vend;
        long v = eq && eq < end ? strtol(eq + 1, &vend, 10) : 0;
        if (!eq || eq > end || vend != end || (*end && !end[1]) || !skinny_param(s, (size_t)(eq - s), v, p)) {
            G->why = arena_printf(G->a, "DSCC_SKINNY is '%s': expected comma-separated rb=1|2|4, u=1..8, u32=1..8, minb=1..4, split=1..8, v2=0|1, pipe=0|1, grid=1..4096, bulk=0|1, stages=2..16, pf=0..8, psplit=0|1", e);
            return false;
        }
        s = *end ? end + 1 : end;
    }
    return true;
}

/* The defines gemm_skinny.cuh and gemm_skinny2.cuh share: the shape, rb
 * weight-row octets a group, the operands' slots (x, x's scales, w, w's
 * scales, y), the BF16 form (no scales) and where the kernel lets the
 * next one launch (DSCC_PDL_EARLY). Into out; their count. */
#define SK_NDEFS 11
static int skinny_defs(Gen *G, IrDim M, int64_t K, int64_t N, int rb, const int *slot, bool bf16, CgDefine *out) {
    const CgDefine d[SK_NDEFS] = {
        {"SK_M", cg_dim(G, M)},
        {"SK_N", arena_printf(G->a, "%lldLL", (long long)N)},
        {"SK_K", arena_printf(G->a, "%lldLL", (long long)K)},
        {"SK_RB", arena_printf(G->a, "%d", rb)},
        {"SK_X", arena_printf(G->a, "((const unsigned char *)a.t[%d])", slot[0])},
        {"SK_W", arena_printf(G->a, "((const unsigned char *)a.t[%d])", slot[2])},
        {"SK_XS(m, kb)", bf16 ? "1.0f" : cg_scale_at(G, slot[1], "m", "kb")},
        {"SK_WS(i)", bf16 ? "1.0f" : arena_printf(G->a, "L%d(a, (i))", slot[3])},
        {"SK_STORE(i, v)", arena_printf(G->a, "S%d(a, (i), (v))", slot[4])},
        {"SK_BF16", bf16 ? "1" : "0"},
        {"SK_EARLY", cg_pdl_early(G->tune) ? "1" : "0"}, /* the trigger first (DSCC_PDL_EARLY=1; gemm_skinny_bulk.cuh keeps its own) */
    };
    memcpy(out, d, sizeof d);
    return SK_NDEFS;
}

/* One instance of gemm_skinny.cuh for M in (lo, hi] (hi 8 or 32): its own
 * phase, so the instance for M <= 8 holds one row of x a thread (the A
 * operand's rows 8..15 are zeros) and gets the registers of that. */
static void skinny_instance(Gen *G, const SkinnyParams *sp, IrDim M, int lo, int hi, int64_t K, int64_t N, const int *slot, bool bf16) {
    int64_t blocks = (N + 8 * sp->rb - 1) / (8 * sp->rb) * sp->split;
    int64_t smem = (int64_t)sizeof(float) * 9 * 8 * sp->rb * (hi + 1); /* each warp's sums and the CTA's */
    const char *entry = arena_printf(G->a, "p%d_%s_skinny_m%d", G->nphases, bf16 ? "linear_bf16" : "fp8_linear", hi);
    CgDefine defs[4 + SK_NDEFS] = {
        {"SK_U", arena_printf(G->a, "%d", hi > 8 ? sp->u32 : sp->u)},
        {"SK_MINB", arena_printf(G->a, "%d", sp->minb)},
        {"SK_MROWS", arena_printf(G->a, "%d", hi)},
        {"SK_SPLIT", arena_printf(G->a, "%d", sp->split)},
    };
    int nd = skinny_defs(G, M, K, N, sp->rb, slot, bf16, defs + 4);
    sb_printf(&G->decl, "// %s at %d < M <= %d: weights streamed in 16-byte loads, mma %s with x as A%s,\n"
                        "// %d weight rows per cluster of %d CTAs, K split between their warps, summed in shared memory (rb=%d u=%d minb=%d split=%d)\n",
              bf16 ? "linear (bf16)" : "fp8_linear", lo, hi, bf16 ? "m16n8k16 BF16" : "m16n8k32 E4M3", bf16 ? "" : ", block scales per K block",
              8 * sp->rb, sp->split, sp->rb, hi > 8 ? sp->u32 : sp->u, sp->minb, sp->split);
    sb_puts(&G->decl, cg_kernel_instance(G->a, "gemm_skinny", entry, defs, 4 + nd));
    cg_phase(G, CG_LAUNCH_BLOCK, M, hi, ir_dim_const(blocks), 1, smem);
    G->phases[G->nphases - 1].fn = entry;
    G->phases[G->nphases - 1].amin = lo;
    G->phases[G->nphases - 1].amax = hi;
}

/* Whether gemm_skinny.cuh's persistent pipelined form (SK_PIPE) runs the
 * M <= 8 rows of an N-row weight: DSCC_SKINNY's pipe, else where its
 * column groups give every one of the 132 SMs a CTA (kv_a's 576 rows, 72
 * groups, keep the round form's cluster split of K) unless
 * DSCC_SKINNY_PIPE=0 (which restores the round form, to time one against
 * the other). */
static bool skinny_pipe_on(const SkinnyParams *sp, int64_t N) {
    if (sp->pipe >= 0) return sp->pipe == 1;
    return tune_on(sp->tune->skinny_pipe, true) && (N + 8 * sp->rb - 1) / (8 * sp->rb) >= 132;
}

/* The M <= 8 instance of gemm_skinny.cuh's persistent pipelined form: rb
 * 8-row weight groups a column group (DSCC_SKINNY's, else the round form's
 * choice), SK_U K blocks a warp a step (DSCC_SKINNY's u, else rb x u = 2:
 * two stages of 2 KB a warp, 32-64 KB an SM in flight at two CTAs an SM),
 * and a grid of at most the CTAs the 132 SMs hold (minb each, 2 unless
 * DSCC_SKINNY sets it; DSCC_SKINNY's grid caps it), balanced so every CTA
 * has the same number of column groups or one fewer (o_proj's 896 groups
 * of 8 rows: 224 CTAs of 4, not 264 of 3 or 4). */
#define CG_FOLD_M 4 /* the most rows of the folded form (DSCC_SKINNY_FOLD, below) */
static void fold_emit(Gen *G, const char *E, const IrNode *L);
static int64_t skinny_pipe_smem(int rb, int split, bool fold, int64_t Kb);

/* The pipelined form's shape: rb, SK_U, the cluster's K split and the
 * balanced grid over `slots` CTA slots. */
typedef struct {
    int rb, u, split;
    int64_t groups, per, grid; /* column groups, the most a cluster owns, CTAs */
} SkinnyPipeShape;

static SkinnyPipeShape skinny_pipe_shape(int rb, int u, int split, int64_t N, int64_t slots) {
    SkinnyPipeShape s = {rb, u, split, (N + 8 * rb - 1) / (8 * rb), 0, 0};
    const int64_t clusters = slots / split;
    s.per = (s.groups + clusters - 1) / clusters;
    s.grid = (s.groups + s.per - 1) / s.per * split;
    return s;
}

/* K blocks the busiest warp of a shape streams, times its 8-row groups: what
 * the shapes are ranked by (ragged K splits count whole steps). */
static int64_t skinny_pipe_load(const SkinnyPipeShape *s, int64_t nkb) {
    const int64_t kw = 8LL * s->split * s->u, steps = (nkb + kw - 1) / kw;
    return s->per * steps * s->u * s->rb;
}

/* Whether the pipelined form may split K over a cluster (DSCC_SKINNY_PSPLIT=1,
 * which DSCC_SKINNY's psplit overrides; read where the code is generated;
 * opt-in until timed on a GPU). */
static bool skinny_psplit_on(const DsccTune *t) { return tune_on(t->skinny_psplit, false); }

/* The pipelined form's shape at rb 8-row groups a column group and SK_U u
 * (DSCC_SKINNY's or the default): with DSCC_SKINNY_PSPLIT=1 or DSCC_SKINNY's
 * psplit=1 (and u not set) a cluster of 2 or 4 CTAs may split K instead (rb
 * 1 or 2, at u = 2 / rb), where that lowers the K blocks the busiest warp streams: a weight
 * whose groups leave slots idle (o_proj's 448 groups of 16 rows on 224 of
 * the 264 slots, 2 a CTA) fills them in halves of groups (896 groups of 8
 * rows on 128 clusters of 2, 3.5 groups' worth a CTA). Every warp keeps a K
 * block (8 x split <= K blocks). */
static SkinnyPipeShape skinny_pipe_pick(int rb, int u, bool set_u, int psplit, int64_t N, int64_t nkb, int64_t slots) {
    SkinnyPipeShape best = skinny_pipe_shape(rb, u, 1, N, slots);
    if (psplit != 1 || set_u) return best;
    int64_t load = skinny_pipe_load(&best, nkb);
    for (int sp = 2; sp <= 4; sp *= 2)
        for (int r = 1; r <= 2; r++) {
            if (8LL * sp > nkb || slots / sp < 1) continue;
            SkinnyPipeShape c = skinny_pipe_shape(r, 2 / r, sp, N, slots);
            const int64_t l = skinny_pipe_load(&c, nkb);
            if (l < load) best = c, load = l;
        }
    return best;
}

/* fold: the instance for M <= CG_FOLD_M that computes x itself (SK_FOLD, fp8_linear G->fold_lin); else the one for
 * M <= 8, above CG_FOLD_M where `after_fold`. */
static void skinny_pipe_instance(Gen *G, const SkinnyParams *sp, bool set_u, bool set_minb, IrDim M, int64_t K, int64_t N, const int *slot,
                                 bool bf16, bool fold, bool after_fold) {
    const int minb = set_minb ? sp->minb : 2;
    int64_t slots = 132LL * minb;
    if (sp->grid > 0 && sp->grid < slots) slots = sp->grid;
    const int64_t nkb = (K * (bf16 ? 2 : 1) + 127) / 128;
    const int psplit = sp->psplit >= 0 ? sp->psplit : skinny_psplit_on(sp->tune);
    const SkinnyPipeShape ps = skinny_pipe_pick(sp->rb, set_u ? sp->u : (sp->rb >= 2 ? 1 : 2), set_u, psplit, N, nkb, slots);
    const int rb = ps.rb, u = ps.u;
    const int64_t groups = ps.groups, per = ps.per, grid = ps.grid;
    const int64_t smem = skinny_pipe_smem(rb, ps.split, fold, K * (bf16 ? 2 : 1));
    const char *entry = arena_printf(G->a, "p%d_%s_skinny_pipe_%s", G->nphases, bf16 ? "linear_bf16" : "fp8_linear", fold ? "fold_m4" : "m8");
    if (fold) fold_emit(G, entry, G->fold_lin);
    CgDefine defs[9 + SK_NDEFS] = {
        {"SK_PF0", arena_printf(G->a, "%d", fold && G->fold_pf > sp->pf ? G->fold_pf : sp->pf)},
        {"SK_PIPE", "1"},
        {"SK_U", arena_printf(G->a, "%d", u)},
        {"SK_MINB", arena_printf(G->a, "%d", minb)},
        {"SK_MROWS", "8"},
        {"SK_GRID", arena_printf(G->a, "%lld", (long long)grid)},
        {"SK_PF", arena_printf(G->a, "%d", sp->pf)},
        {"SK_SPLIT", arena_printf(G->a, "%d", ps.split)},
        {"SK_FOLD", fold ? "1" : "0"},
    };
    int nd = skinny_defs(G, M, K, N, rb, slot, bf16, defs + 9);
    sb_printf(&G->decl, "// %s at M <= %d: a persistent grid of %lld CTAs over %lld groups of %d weight rows (%lld a cluster at most), K split\n"
                        "// between the 8 warps of a cluster's %d CTAs, weights and x streamed through two register stages across group ends\n"
                        "// (rb=%d u=%d minb=%d pf=%d split=%d)\n",
              bf16 ? "linear (bf16)" : "fp8_linear", fold ? CG_FOLD_M : 8, (long long)grid, (long long)groups, 8 * rb, (long long)per, ps.split,
              rb, u, minb, sp->pf, ps.split);
    sb_puts(&G->decl, cg_kernel_instance(G->a, "gemm_skinny", entry, defs, 9 + nd));
    cg_phase(G, CG_LAUNCH_BLOCK, M, 8, ir_dim_const(grid), 1, smem);
    G->phases[G->nphases - 1].fn = entry;
    G->phases[G->nphases - 1].amin = after_fold ? CG_FOLD_M : 0;
    G->phases[G->nphases - 1].amax = fold ? CG_FOLD_M : 8;
}

/* Dynamic shared memory of gemm_skinny2.cuh (its SK2_SMEM) over K bytes a
 * row: the 3-stage weight ring, mrows (8 or 16) rows of x (128-byte K
 * blocks + 64 bytes a row), the warps' sums in two buffers. */
static int64_t skinny2_smem(int rb, int u, int64_t K, int mrows) {
    return 3LL * u * 2 * rb * 256 * 16 + mrows * ((K + 127) / 128 * 128 + 64) + 4LL * 2 * 8 * 8 * rb * (mrows + 1);
}

/* Shared memory an SM of an H100/H200 gives its blocks (228 KB, 1 KB of it
 * reserved a block) and the most one block may have. */
#define CG_SM_SMEM (228 * 1024)
#define CG_BLOCK_SMEM_MAX (227 * 1024)

/* gemm_skinny2.cuh's shape for an N x K weight at rb 8-row groups a warp:
 * SK_U K blocks a stage, the smallest of 1..4 that keeps 64 KB of
 * weights in flight an SM (two stages of every warp of the blocks an SM
 * holds at once: at most two, and no more than the groups give it), or
 * else the largest whose shared memory fits (u_max, when set: the largest
 * of those up to it); a persistent grid of at most the blocks the 132 SMs
 * of an H100/H200 hold, balanced so every block has the same number of
 * column groups or one fewer. */
typedef struct {
    int rb, u, occ;
    int64_t groups, grid, per;
} Skinny2Shape;

static Skinny2Shape skinny2_shape(int rb, int u_max, int64_t N, int64_t K, int mrows) {
    Skinny2Shape s = {rb, 0, 1, (N + 8 * rb - 1) / (8 * rb), 0, 0};
    int64_t fill = (s.groups + 131) / 132; /* blocks an SM gets from the groups */
    for (int c = 1; c <= 4; c++) {
        int64_t sm = skinny2_smem(rb, c, K, mrows);
        if (sm > CG_BLOCK_SMEM_MAX || (u_max && c > u_max)) break;
        int o = (int)(CG_SM_SMEM / (sm + 1024));
        s.u = c, s.occ = o > 2 ? 2 : o;
        if (!u_max && (s.occ < fill ? s.occ : fill) * 2 * c * rb * 8 >= 64) break;
    }
    if (s.u == 0) s.u = 1; /* (skinny2_on keeps such a K on gemm_skinny.cuh) */
    int64_t slots = 132LL * s.occ;
    s.grid = s.groups < slots ? s.groups : slots;
    s.per = (s.groups + s.grid - 1) / s.grid;
    s.grid = (s.groups + s.per - 1) / s.per;
    return s;
}

/* The M <= 8 instance of gemm_skinny2.cuh: rb from DSCC_SKINNY when it
 * sets it, else the one of 2 and 1 whose busiest SM streams the fewest
 * weight rows (blocks an SM x groups a block x rb; 2 on a tie: x's
 * fragment serves both groups), e.g. o_proj's 7,168 rows: 448 groups of
 * 16 on 112 blocks (4 each) against 896 of 8 on 128 (7 each). */
static void skinny2_instance(Gen *G, const SkinnyParams *sp, bool set_rb, bool set_u, IrDim M, int lo, int hi, int64_t K, int64_t N,
                             const int *slot, bool bf16) {
    const int64_t Kb = K * (bf16 ? 2 : 1); /* bytes a row */
    const int mrows = hi > 8 ? 16 : 8;
    int u_max = set_u ? (sp->u >= 4 ? 4 : sp->u) : 0;
    set_rb = set_rb && skinny2_smem(sp->rb, 1, Kb, mrows) <= CG_BLOCK_SMEM_MAX; /* else as if unset */
    Skinny2Shape s = skinny2_shape(set_rb ? sp->rb : 2, u_max, N, Kb, mrows);
    if (!set_rb) {
        Skinny2Shape s1 = skinny2_shape(1, u_max, N, Kb, mrows);
        if (skinny2_smem(2, 1, Kb, mrows) > CG_BLOCK_SMEM_MAX ||
            (s1.grid + 131) / 132 * s1.per * 1 < (s.grid + 131) / 132 * s.per * 2)
            s = s1;
    }
    int rb = s.rb, u = s.u, occ = s.occ;
    int64_t groups = s.groups, grid = s.grid;
    const char *entry = arena_printf(G->a, "p%d_%s_skinny2_m%d", G->nphases, bf16 ? "linear_bf16" : "fp8_linear", mrows);
    CgDefine defs[6 + SK_NDEFS] = {
        {"SK_MROWS", arena_printf(G->a, "%d", mrows)},
        {"SK_U", arena_printf(G->a, "%d", u)},
        {"SK_MINB", arena_printf(G->a, "%d", occ)},
        {"SK_GRID", arena_printf(G->a, "%lld", (long long)grid)},
        {"SK_PF", arena_printf(G->a, "%d", sp->pf)},
    };
    int nd = skinny_defs(G, M, K, N, rb, slot, bf16, defs + 5);
    /* DSCC_ROUTE_FUSE=1: the router's CTA that finishes last routes the logits (cg_rfuse_emit writes the routing first) */
    const char *last = bf16 && lo == 0 && hi == 8 ? cg_rfuse_emit(G, slot[4]) : NULL;
    if (last) defs[5 + nd++] = (CgDefine){"SK_LAST(a)", last};
    sb_printf(&G->decl, "// %s at %d < M <= %d: a persistent grid of %lld blocks over %lld groups of %d weight rows, K split between the 8 warps,\n"
                        "// weights streamed by cp.async through a 3-stage ring (%d K blocks a warp a stage), x in shared memory once (rb=%d u=%d)\n",
              bf16 ? "linear (bf16)" : "fp8_linear", lo, hi, (long long)grid, (long long)groups, 8 * rb, u, rb, u);
    sb_puts(&G->decl, cg_kernel_instance(G->a, "gemm_skinny2", entry, defs, 5 + nd));
    cg_phase(G, CG_LAUNCH_BLOCK, M, mrows, ir_dim_const(grid), 1, skinny2_smem(rb, u, Kb, mrows));
    G->phases[G->nphases - 1].fn = entry;
    G->phases[G->nphases - 1].amin = lo;
    G->phases[G->nphases - 1].amax = hi;
}

/* gemm_skinny_bulk.cuh's shape for an N x K weight (Kb bytes a row): rb
 * 8-row groups a column group (DSCC_SKINNY's, else the one of 1 and 2
 * whose busiest SM streams the fewest rows, 2 on a tie: x's copy serves
 * both), u K blocks a warp a stage (DSCC_SKINNY's, else 16 KB of weights a
 * stage: 2 at rb 1, 1 at rb 2), a K split over clusters of `split` CTAs
 * where the groups number under the 132 SMs (DSCC_SKINNY's split, else
 * the most up to 8 that keeps one wave: the router's 32 groups of 8 rows
 * on 4 x 32 CTAs; never more than the K blocks), else a persistent grid of
 * one CTA an SM (DSCC_SKINNY's grid caps it) balanced so every CTA has the
 * same number of groups or one fewer; and the ring's stages, as many as
 * fit one CTA's shared memory up to 16 (DSCC_SKINNY's stages) with room
 * for mrows rows of x a stage (1 or 8: the instance for M = 1 has the
 * deeper ring). stages 0: no ring of 2 fits. */
typedef struct {
    int rb, u, split, stages, mrows;
    int64_t groups, grid, per, smem;
} SkinnyBulkShape;

static int64_t skinny_bulk_smem(int rb, int u, int mrows, int stages, int64_t per, int64_t nkb) {
    const int64_t sb = (8LL * rb + mrows) * (1024LL * u + 64), red = 2LL * 8 * 8 * (8 * rb + 1);
    return stages * sb + 16LL * stages + 4 * (per * nkb + 8 * nkb + red + 8LL * rb * 8);
}

static SkinnyBulkShape skinny_bulk_shape(const SkinnyParams *sp, bool set_rb, bool set_u, bool set_split, int64_t N, int64_t Kb, int mrows) {
    SkinnyBulkShape s = {0};
    s.mrows = mrows;
    const int64_t nkb = (Kb + 127) / 128, g1 = (N + 7) / 8, g2 = (N + 15) / 16;
    s.rb = set_rb ? sp->rb : g1 < 132 || (g1 + 131) / 132 < (g2 + 131) / 132 * 2 ? 1 : 2;
    s.u = set_u ? (sp->u > 4 ? 4 : sp->u) : s.rb == 1 ? 2 : 1;
    s.groups = (N + 8 * s.rb - 1) / (8 * s.rb);
    s.split = set_split ? sp->split : 1;
    if (!set_split && !sp->grid) /* (DSCC_SKINNY's grid: the persistent grid) */
        while (s.split < 8 && s.groups * (s.split + 1) <= 132) s.split++;
    if (s.split > nkb) s.split = (int)nkb;
    if (s.split > 1) s.grid = s.groups * s.split, s.per = 1;
    else {
        int64_t slots = sp->grid > 0 && sp->grid < 132 ? sp->grid : 132;
        s.per = (s.groups + slots - 1) / slots, s.grid = (s.groups + s.per - 1) / s.per;
    }
    for (int st = sp->stages ? sp->stages : 16; st >= 2; st--)
        if (skinny_bulk_smem(s.rb, s.u, mrows, st, s.per, nkb) <= CG_BLOCK_SMEM_MAX) {
            s.stages = st;
            break;
        }
    s.smem = skinny_bulk_smem(s.rb, s.u, mrows, s.stages, s.per, nkb);
    return s;
}

/* The instance of gemm_skinny_bulk.cuh for M in (lo, s->mrows] (its shape above). */
static void skinny_bulk_instance(Gen *G, const SkinnyBulkShape *s, IrDim M, int lo, int64_t K, int64_t N, const int *slot, bool bf16) {
    const char *entry = arena_printf(G->a, "p%d_%s_skinny_bulk_m%d", G->nphases, bf16 ? "linear_bf16" : "fp8_linear", s->mrows);
    CgDefine defs[6 + SK_NDEFS] = {
        {"SK_MROWS", arena_printf(G->a, "%d", s->mrows)},
        {"SK_U", arena_printf(G->a, "%d", s->u)},
        {"SK_STAGES", arena_printf(G->a, "%d", s->stages)},
        {"SK_GRID", arena_printf(G->a, "%lld", (long long)s->grid)},
        {"SK_SPLIT", arena_printf(G->a, "%d", s->split)},
        {"SK_PER", arena_printf(G->a, "%lld", (long long)s->per)},
    };
    int nd = skinny_defs(G, M, K, N, s->rb, slot, bf16, defs + 6);
    sb_printf(&G->decl, "// %s at %d < M <= %d: %lld groups of %d weight rows on %lld CTAs (%lld a CTA at most, clusters of %d splitting K),\n"
                        "// weights and x streamed by 1-D bulk copies through a ring of %d stages of %d bytes of K (rb=%d u=%d)\n",
              bf16 ? "linear (bf16)" : "fp8_linear", lo, s->mrows, (long long)s->groups, 8 * s->rb, (long long)s->grid, (long long)s->per, s->split,
              s->stages, 1024 * s->u, s->rb, s->u);
    sb_puts(&G->decl, cg_kernel_instance(G->a, "gemm_skinny_bulk", entry, defs, 6 + nd));
    cg_phase(G, CG_LAUNCH_BLOCK, M, 8, ir_dim_const(s->grid), 1, s->smem);
    CgPhase *f = &G->phases[G->nphases - 1];
    f->fn = entry, f->threads = 288, f->amin = lo, f->amax = s->mrows;
}

/* Whether gemm_skinny_bulk.cuh runs the M <= 8 rows: DSCC_SKINNY's bulk,
 * else DSCC_SKINNY_BULK=1 for FP8 linears (BF16 ones only by DSCC_SKINNY's
 * bulk=1: an H100 timed the LM head at M = 1 at 1.271 ms against
 * gemm_skinny2.cuh's 0.660), and only where a ring of two stages fits. Off
 * by default: the same run timed the decode step's FP8 linears at batch 1
 * at 0.383 ms against 0.336 (docs/KERNELS.md). */
static bool skinny_bulk_on(const SkinnyParams *sp, const SkinnyBulkShape *s, bool bf16) {
    bool on = sp->bulk >= 0 ? sp->bulk == 1 : !bf16 && tune_on(sp->tune->skinny_bulk, false);
    return on && s->stages >= 2;
}

/* Whether gemm_skinny2.cuh runs the M <= mrows rows of an N-row linear over K
 * bytes a row: DSCC_SKINNY's v2, else DSCC_SKINNY_V2 (1 or 0), else for
 * BF16 linears only, and of those only where the 8-row column groups give
 * each of the 132 SMs one (the LM head): a narrower one (the MoE router's
 * 256 rows: 32 CTAs of gemm_skinny2.cuh, 3.7 MB at ~0.4 TB/s in a decode
 * step's trace on an H100) takes gemm_skinny.cuh's round form, whose
 * clusters split K (256 CTAs, every load of a warp in one round), with
 * DSCC_SKINNY_BF16_SPLIT=1 (opt-in until timed on a GPU). An
 * H100 (run 1) timed it at 0.75-0.95x gemm_skinny.cuh on V3's FP8 shapes at M = 1 (q_b 1.57 against 2.02 TB/s, o_proj 1.96
 * against 2.40; its scale loads then waited each stage, which they no
 * longer do, untimed), and as fast as the tile on the BF16 router and LM
 * head. False too where mrows rows of x and the smallest ring do not fit a
 * block's shared memory. */
static bool skinny2_on(const SkinnyParams *sp, int64_t N, int64_t K, int mrows, bool bf16) {
    const bool narrow = (N + 7) / 8 < 132 && tune_on(sp->tune->skinny_bf16_split, false);
    bool on = sp->v2 >= 0 ? sp->v2 == 1 : tune_on(sp->tune->skinny_v2, bf16 && !narrow);
    return on && skinny2_smem(1, 1, K, mrows) <= CG_BLOCK_SMEM_MAX;
}

/* ---- DSCC_SKINNY_FOLD: an fp8_linear's M <= 4 form quantizes its own x ----
 *
 * At a decode step's few rows the row kernel before an FP8 linear (the
 * rmsnorm, silu * mul or plain act_scale + quantize of its x) is a launch
 * and a kernel boundary of its own for ~14 KB of work. With the switch
 * the linear's pipelined form gets an instance for M <= 4 whose CTAs, once
 * their first weights are in flight, compute those rows themselves into
 * shared memory (gemm_skinny.cuh's SK_FOLD), and the row kernel's phases
 * skip M <= 4. It applies where the row group stores nothing but x's codes
 * and scales, only the linear reads them, and every op of it is one this
 * file can write per element (reshape, cast, slice of the last axis, silu,
 * add or mul of two values of one shape, one rmsnorm over rows of x), on
 * the linear's stream without a wait for another; and, with a memory plan, where no value the plan lets share the bytes of what
 * the fold reads (the row group's inputs) is written from the row group's
 * place in the launch order to the linear's, or later on another stream:
 * the plan frees those inputs after the row group, which no longer reads
 * them at M <= 4. CTA 0 stores the codes and scales where the row kernel
 * would have (same arithmetic: the same values, but for the order of the
 * norm's sum of squares). */
#define CG_FOLD_GATE_MAX 16 /* phases of a row group the gate handles */

/* DSCC_SKINNY_FOLD_PF: steps (0..8) of weights the folded form prefetches into L2 before its wait, so the HBM stream
 * goes on under the prologue (at two CTAs an SM and 2 KB a warp a step, 4 steps are 128 KB an SM: ~4 us of an
 * H200's stream, about what the prologue's 2-4 round trips to L2 take); -1 a malformed value. */
#define CG_FOLD_PF 4
static int skinny_fold_pf_env(const DsccTune *t) {
    const char *e = t->skinny_fold_pf;
    if (!e || !*e) return CG_FOLD_PF;
    char *end;
    const long v = strtol(e, &end, 10);
    return *end || v < 0 || v > 8 ? -1 : (int)v;
}

bool cg_fold_hoist_on(const DsccTune *t) { return tune_on(t->skinny_fold, false) && tune_on(t->skinny_fold_hoist, false); }

static bool fold_float(IrDType t) { return t == IR_DT_F32 || t == IR_DT_BF16 || t == IR_DT_F16; }

/* Whether member n of row group P (or a value outside it, read from memory) is one the fold computes per element of
 * x's rows (M of them); marks P's members it reaches in `seen`, counts rmsnorms in *norms. */
static bool fold_expr_ok(const Gen *G, const IrNode *n, int P, const int *grp, IrDim M, char *seen, int *norms) {
    if (grp[n->id] != P) return G->stored[n->id] && n->op != IR_OP_KV_CACHE && fold_float(n->type.dtype);
    seen[n->id] = 1;
    const IrNode *x = n->nops ? n->ops[0] : NULL;
    const int r = n->type.rank;
    switch (n->op) {
    case IR_OP_RESHAPE: case IR_OP_SILU: return fold_expr_ok(G, x, P, grp, M, seen, norms);
    case IR_OP_CAST: return fold_float(n->type.dtype) && fold_float(x->type.dtype) && fold_expr_ok(G, x, P, grp, M, seen, norms);
    case IR_OP_ADD: case IR_OP_MUL: case IR_OP_FRESH_SELECT:
        return ir_type_eq(&n->type, &n->ops[0]->type) && ir_type_eq(&n->type, &n->ops[1]->type) &&
               fold_expr_ok(G, n->ops[0], P, grp, M, seen, norms) && fold_expr_ok(G, n->ops[1], P, grp, M, seen, norms);
    case IR_OP_SLICE:
        return r >= 1 && cg_axis(ir_node_attr_int(n, "axis", 0), r) == r - 1 && ir_node_attr_int(n, "start", 0) >= 0 &&
               ir_dim_is_const(x->type.dims[r - 1]) && fold_expr_ok(G, x, P, grp, M, seen, norms);
    case IR_OP_RMSNORM: { /* over the last axis, one statistic a row of x */
        IrDim rows;
        const IrNode *w = n->ops[1];
        if (++*norms > 1 || r < 1 || !ir_dim_is_const(n->type.dims[r - 1]) || !ir_dim_div(ir_type_numel(&n->type), n->type.dims[r - 1], &rows) ||
            !ir_dim_eq(rows, M) || w->type.rank != 1 || grp[w->id] == P || !G->stored[w->id] || !fold_float(w->type.dtype))
            return false;
        return fold_expr_ok(G, x, P, grp, M, seen, norms);
    }
    default: return false;
    }
}

/* The values outside P the fold reads (its leaves), into out (n of them, at most cap). */
static void fold_leaves(const IrNode *n, int P, const int *grp, const IrNode **out, int *n_out, int cap) {
    if (grp[n->id] != P) {
        for (int k = 0; k < *n_out; k++)
            if (out[k] == n) return;
        if (*n_out < cap) out[(*n_out)++] = n;
        return;
    }
    for (int k = 0; k < n->nops; k++) fold_leaves(n->ops[k], P, grp, out, n_out, cap);
}

bool cg_leaves_intact(const Gen *G, const IrNode *const *lv, int nl, const IrNode *L, int pp, int pl, const int *grp, const int *pos) {
    const IrGraph *g = G->g;
    for (int k = 0; k < nl; k++) {
        const IrNode *v = lv[k];
        int64_t vb, wb;
        if (v->mem < 0) continue; /* a weight, or a value held with them: never written during a step */
        if (!ir_value_bytes_as(v, G->dtype[v->id], g->mem_dims, &vb)) return false;
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *w = g->nodes[i];
            if (w == v || w->mem < 0 || !G->stored[i] || !ir_value_bytes_as(w, G->dtype[i], g->mem_dims, &wb)) continue;
            if (w->mem >= v->mem + vb || v->mem >= w->mem + wb) continue; /* apart */
            const int pw = grp[i] >= 0 ? pos[grp[i]] : -1;
            if (pw < 0 || (pw >= pp && pw <= pl) || (pw > pp && w->stream != L->stream)) return false;
        }
    }
    return true;
}

/* With a memory plan: whether the plan keeps the fold's leaves intact until the linear L has run (see above). */
static bool fold_memory_ok(const Gen *G, const IrNode *L, int P, const int *grp, const int *pos) {
    if (!G->g->mem_planned || G->fold_nomem) return true; /* every value its own buffer, or the plan being made (cg_fold_reads) */
    const IrNode *lv[16];
    int nl = 0;
    fold_leaves(L->ops[0]->ops[0], P, grp, lv, &nl, 16);
    return nl < 16 && cg_leaves_intact(G, lv, nl, L, pos[P], pos[grp[L->id]], grp, pos);
}

/* Whether an fp8_linear at M <= 8 over this N x K weight runs gemm_skinny.cuh's pipelined form (as gemm_skinny picks). */
static bool skinny_pipe_form(Gen *G, int64_t N, int64_t K) {
    SkinnyParams sp;
    const char *why = G->why;
    if (!skinny_params(G, N, K, &sp)) {
        G->why = why; /* gemm_skinny reports it */
        return false;
    }
    const char *e = G->tune->skinny;
    SkinnyBulkShape b8 = skinny_bulk_shape(&sp, e && strstr(e, "rb="), e && strstr(e, "u="), e && strstr(e, "split="), N, K, 8);
    return !skinny_bulk_on(&sp, &b8, false) && !skinny2_on(&sp, N, K, 8, false) && skinny_pipe_on(&sp, N);
}

/* Whether reader n of a value L's fold stores runs after L on its stream (pos: by group, its place in the launch order). With
 * DSCC_SKINNY_FOLD_HOIST=1 a value no kernel computes (V3's router reads the normed rows through a cast to f32:
 * grp -1) counts by its own readers. */
static bool fold_after(const Gen *G, const IrNode *n, const IrNode *L, int P, const int *grp, const int *pos, int depth) {
    if (n->stream != L->stream) return false;
    if (grp[n->id] >= 0) return grp[n->id] != P && pos[grp[n->id]] > pos[grp[L->id]];
    if (!G->fold_hoist || depth > 3 || !ir_op_has_result(n->op) || G->stored[n->id] || n->op == IR_OP_OUTPUT) return false;
    for (int i = n->id + 1; i < G->g->nnodes; i++) {
        const IrNode *m = G->g->nodes[i];
        for (int k = 0; k < m->nops; k++)
            if (m->ops[k] == n && !fold_after(G, m, L, P, grp, pos, depth + 1)) return false;
    }
    return true;
}

/* The row group whose x fp8_linear L may compute itself, or -1. */
static int fold_group(Gen *G, const IrNode *L, const int *grp, const int *tmpl, const int *pos, char *seen) {
    const IrGraph *g = G->g;
    const IrNode *q = L->ops[0], *s = L->ops[1];
    if (q->op != IR_OP_QUANTIZE || s->op != IR_OP_ACT_SCALE || q->ops[1] != s || s->ops[0] != q->ops[0] ||
        ir_node_attr_int(q, "block", 128) != 128 || ir_node_attr_int(s, "block", 128) != 128)
        return -1;
    const IrNode *X = q->ops[0], *w = L->ops[2];
    const int P = grp[q->id], r = X->type.rank;
    IrDim M;
    if (P < 0 || grp[s->id] != P || grp[L->id] < 0 || P == grp[L->id] || tmpl[P] >= 0 || tmpl[grp[L->id]] != L->id || r < 2 ||
        w->type.rank != 2 || !ir_dim_is_const(w->type.dims[0]) || !ir_dim_is_const(w->type.dims[1]) ||
        !ir_dim_eq(X->type.dims[r - 1], w->type.dims[1]) || w->type.dims[1].coeff % 16 || w->type.dims[0].coeff >= (1LL << 31) ||
        !ir_dim_div(ir_type_numel(&X->type), X->type.dims[r - 1], &M) || G->dtype[q->id] != IR_DT_FP8E4M3 || pos[P] < 0 || pos[P] > pos[grp[L->id]])
        return -1;
    for (int i = 0; i < g->nnodes; i++) seen[i] = 0;
    int norms = 0;
    if (!fold_expr_ok(G, X, P, grp, M, seen, &norms)) return -1;
    seen[q->id] = seen[s->id] = 1;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (grp[i] == P && (!seen[i] || n->nwaits || n->stream != L->stream))
            return -1; /* another op, or a wait for another stream (which L would not make) */
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            /* x's codes or scales read by another op: with DSCC_SKINNY_FOLD_HOIST=1, by a kernel after L on its stream
             * (the CTAs store them as the row kernel would: the MoE layer's experts beside its shared expert) */
            if ((o == q || o == s) && n != L && n != q && (!G->fold_hoist || !fold_after(G, n, L, P, grp, pos, 0))) return -1;
            /* another value P stores (the residual of an add + rmsnorm), which CTA 0 of L stores instead: read only
             * after L, on its stream */
            if (grp[o->id] == P && grp[i] != P && o != q && o != s && !fold_after(G, n, L, P, grp, pos, 0)) return -1;
        }
    }
    if (!skinny_pipe_form(G, w->type.dims[0].coeff, w->type.dims[1].coeff) || !fold_memory_ok(G, L, P, grp, pos)) return -1;
    return P;
}

bool cg_fold_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups) {
    G->fold = NULL;
    G->fold_ok = NULL;
    if (!tune_on(G->tune->skinny_fold, false) || !G->skinny) return true;
    if ((G->fold_pf = skinny_fold_pf_env(G->tune)) < 0) {
        diag_error(G->d, (SrcLoc){0}, "DSCC_SKINNY_FOLD_PF is '%s': expected 0..8", G->tune->skinny_fold_pf);
        return false;
    }
    G->fold_hoist = cg_fold_hoist_on(G->tune);
    const IrGraph *g = G->g;
    G->fold_grp = grp;
    G->fold = arena_alloc(G->a, sizeof(int) * (size_t)(ngroups + 1));
    G->fold_ok = arena_alloc(G->a, (size_t)g->nnodes + 1);
    char *seen = arena_alloc(G->a, (size_t)g->nnodes + 1);
    for (int k = 0; k < ngroups; k++) G->fold[k] = -1;
    for (int i = 0; i < g->nnodes; i++) {
        G->fold_ok[i] = 0;
        if (g->nodes[i]->op != IR_OP_FP8_LINEAR) continue;
        const int P = fold_group(G, g->nodes[i], grp, tmpl, pos, seen);
        if (P >= 0 && G->fold[P] < 0) G->fold[P] = i;
    }
    return true;
}

int cg_fold_hoist_plan(Gen *G, const int *grp, const int *tmpl, const int *order, int ngroups, int *hoist) {
    const IrGraph *g = G->g;
    int *pos = arena_alloc(G->a, sizeof(int) * (size_t)(ngroups + 1));
    char *seen = arena_alloc(G->a, (size_t)g->nnodes + 1);
    for (int k = 0; k < ngroups; k++) pos[k] = -1;
    for (int k = 0; k < ngroups; k++) pos[order[k]] = 2 * k; /* even: room for one group right after each */
    char *done = arena_alloc(G->a, (size_t)ngroups + 1); /* by row group: one of its linears folds (where it stands) */
    memset(done, 0, (size_t)ngroups + 1);
    for (int i = 0; i < g->nnodes; i++) {
        hoist[i] = -1;
        if (g->nodes[i]->op == IR_OP_FP8_LINEAR) {
            const int P = fold_group(G, g->nodes[i], grp, tmpl, pos, seen);
            if (P >= 0) done[P] = 1;
        }
    }
    int nh = 0;
    for (int i = 0; i < g->nnodes; i++) { /* then the first linear of each other row group that would fold after it */
        const IrNode *L = g->nodes[i];
        if (L->op != IR_OP_FP8_LINEAR || L->ops[0]->op != IR_OP_QUANTIZE) continue;
        const int gl = grp[i], P = grp[L->ops[0]->id];
        if (gl < 0 || P < 0 || gl == P || done[P] || pos[gl] < 0 || pos[P] < 0 || pos[P] > pos[gl]) continue;
        const int was = pos[gl];
        pos[gl] = pos[P] + 1; /* as if launched right after its row group */
        if (fold_group(G, L, grp, tmpl, pos, seen) >= 0) hoist[i] = L->ops[0]->id, nh++, done[P] = 1;
        pos[gl] = was;
    }
    return nh;
}

void cg_fold_also_read(const Gen *G, int ngroups, int *also) {
    for (int k = 0; G->fold && k < ngroups; k++) {
        if (G->fold[k] < 0) continue;
        const IrNode *L = G->g->nodes[G->fold[k]], *lv[16];
        int nl = 0;
        fold_leaves(L->ops[0]->ops[0], k, G->fold_grp, lv, &nl, 16);
        for (int j = 0; j < nl; j++)
            if (also[lv[j]->id] < L->id) also[lv[j]->id] = L->id;
    }
}

void cg_fold_gate(Gen *G, int gid) {
    const IrNode *L = G->g->nodes[G->fold[gid]], *X = L->ops[0]->ops[0];
    IrDim M;
    if (!G->nphases || !ir_dim_div(ir_type_numel(&X->type), X->type.dims[X->type.rank - 1], &M)) return;
    int64_t at[CG_FOLD_GATE_MAX];
    if (G->nphases > CG_FOLD_GATE_MAX) return;
    for (int p = 0; p < G->nphases; p++) { /* each over c rows' worth (c constant): it runs above CG_FOLD_M c (and its own amin) */
        const CgPhase *f = &G->phases[p];
        IrDim c;
        if (f->tma || !ir_dim_div(f->a, M, &c) || !ir_dim_is_const(c) || c.coeff < 1) return;
        at[p] = CG_FOLD_M * c.coeff > f->amin ? CG_FOLD_M * c.coeff : f->amin;
    }
    for (int p = 0; p < G->nphases; p++) G->phases[p].amin = at[p];
    G->fold_ok[L->id] = 1;
}

/* A read of node n at flat index idx inside the fold: a value outside P from memory, else its helper function. */
static const char *fold_ref(Gen *G, const char *E, const IrNode *n, int P, const int *grp, const char *idx) {
    if (grp[n->id] != P) return arena_printf(G->a, "L%d(a, %s)", cg_slot_value(G, n), idx);
    return arena_printf(G->a, "%s_f%d(a, rinv, %s)", E, n->id, idx);
}

/* The helper function of member n (and of the members it reads first), once each (done by node id). */
static void fold_emit_fn(Gen *G, const char *E, const IrNode *n, int P, const int *grp, char *done) {
    if (grp[n->id] != P || done[n->id]) return;
    done[n->id] = 1;
    for (int k = 0; k < n->nops; k++) fold_emit_fn(G, E, n->ops[k], P, grp, done);
    const IrNode *x = n->nops ? n->ops[0] : NULL;
    StrBuf f;
    sb_init(&f);
    const char *ret;
    switch (n->op) {
    case IR_OP_RESHAPE: case IR_OP_CAST: ret = fold_ref(G, E, x, P, grp, "i"); break;
    case IR_OP_SILU:
        sb_printf(&f, "    const float x = %s;\n", fold_ref(G, E, x, P, grp, "i"));
        ret = "x / (1.0f + expf(-x))";
        break;
    case IR_OP_FRESH_SELECT: /* a.len: positions cached before this step; only the chosen operand is read */
        ret = arena_printf(G->a, "a.len == 0 ? %s : %s", fold_ref(G, E, n->ops[0], P, grp, "i"), fold_ref(G, E, n->ops[1], P, grp, "i"));
        break;
    case IR_OP_ADD: case IR_OP_MUL:
        sb_printf(&f, "    const float x = %s, y = %s;\n", fold_ref(G, E, n->ops[0], P, grp, "i"), fold_ref(G, E, n->ops[1], P, grp, "i"));
        ret = n->op == IR_OP_ADD ? "x + y" : "x * y";
        break;
    case IR_OP_SLICE: {
        const int r = n->type.rank;
        sb_printf(&f, "    const long long len = %s, mid = %lldLL;\n", cg_dim(G, n->type.dims[r - 1]), (long long)x->type.dims[r - 1].coeff);
        ret = fold_ref(G, E, x, P, grp, arena_printf(G->a, "i / len * mid + %lldLL + i %% len", (long long)ir_node_attr_int(n, "start", 0)));
        break;
    }
    default: /* IR_OP_RMSNORM: the row's statistic from rinv (its v-function's arithmetic) */
        sb_printf(&f, "    const long long D = %lldLL;\n", (long long)n->type.dims[n->type.rank - 1].coeff);
        ret = arena_printf(G->a, "%s * (%s * rinv[i / D])", fold_ref(G, E, n->ops[1], P, grp, "i % D"), fold_ref(G, E, x, P, grp, "i"));
        break;
    }
    sb_printf(&G->decl, "__device__ __forceinline__ float %s_f%d(const Args &a, const float *rinv, long long i) {  // %s\n%s    return %s;\n}\n",
              E, n->id, ir_op_name(n->op), f.data ? f.data : "", ret);
    sb_free(&f);
}

/* The rmsnorm the fold computes, or NULL. */
static const IrNode *fold_norm(const IrNode *n, int P, const int *grp) {
    if (grp[n->id] != P) return NULL;
    if (n->op == IR_OP_RMSNORM) return n;
    for (int k = 0; k < n->nops; k++) {
        const IrNode *r = fold_norm(n->ops[k], P, grp);
        if (r) return r;
    }
    return NULL;
}

/* E##_foldx (gemm_skinny.cuh's SK_FOLDX) for fp8_linear L: x's rows (at most CG_FOLD_M), the norm's statistic first
 * (each warp's part of each row's sum of squares into sums, added in warp order), then a K block of a row a warp: its
 * value, amax, scale (amax / 448) and codes, as the row kernel computes them, into the shared memory; the CTAs in turn
 * (K block i by CTA i % grid) also store them to x's codes and scales.
 * Every CTA runs this between its wait and its first product while only two register stages of weights are in flight,
 * so its length is the latency of its dependent trips to L2 (264 CTAs reading the same lines). Its loads are issued in
 * batches before any store (CG_FOLD_NB of the norm's per thread, CG_FOLD_QB K blocks a warp): a store through a
 * pointer that may alias them keeps the compiler from hoisting the next iteration's loads, and the first form, one K
 * block a warp an iteration, made a trip to L2 of each (18 in a row for the dense down's K of 18,432). The sums and
 * values are those of the first form, in the same order: the same bits. */
#define CG_FOLD_NB 16
#define CG_FOLD_QB 4
static void fold_emit(Gen *G, const char *E, const IrNode *L) {
    const int *grp = G->fold_grp;
    const IrNode *q = L->ops[0], *s = L->ops[1], *X = q->ops[0];
    const int P = grp[q->id];
    const int64_t K = X->type.dims[X->type.rank - 1].coeff;
    IrDim M;
    ir_dim_div(ir_type_numel(&X->type), X->type.dims[X->type.rank - 1], &M);
    char *done = arena_alloc(G->a, (size_t)G->g->nnodes + 1);
    memset(done, 0, (size_t)G->g->nnodes + 1);
    fold_emit_fn(G, E, X, P, grp, done);
    const IrNode *nrm = fold_norm(X, P, grp);
    const int sq = cg_slot_value(G, q), ss = cg_slot_value(G, s);
    sb_printf(&G->decl, "// x of the fp8_linear at M <= %d, computed here instead of by its row kernel (DSCC_SKINNY_FOLD=1)\n"
                        "__device__ __forceinline__ void %s_foldx(const Args &a, unsigned char *xq, float *xsc, float *sums) {\n"
                        "    const long long M = %s, K = %lldLL, nkb = (K + 127) / 128;\n"
                        "    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;\n"
                        "    float rinv[%d] = {};\n",
              CG_FOLD_M, E, cg_dim(G, M), (long long)K, CG_FOLD_M);
    if (nrm) {
        const int64_t D = nrm->type.dims[nrm->type.rank - 1].coeff;
        sb_printf(&G->decl, "    const long long D = %lldLL;\n"
                            "    for (long long m = 0; m < M; m++) {  // the rmsnorm's sums of squares: each warp's part\n"
                            "        float ss = 0.0f;\n"
                            "        for (long long j0 = threadIdx.x; j0 < D; j0 += 256 * %d) {  // every load of a batch before a sum\n"
                            "            float v[%d];\n"
                            "#pragma unroll\n"
                            "            for (int b = 0; b < %d; b++) {\n"
                            "                const long long j = j0 + 256 * b;\n"
                            "                v[b] = j < D ? %s : 0.0f;\n"
                            "            }\n"
                            "#pragma unroll\n"
                            "            for (int b = 0; b < %d; b++)\n"
                            "                if (j0 + 256 * b < D) ss += v[b] * v[b];\n"
                            "        }\n"
                            "        ss = wsum(ss);\n"
                            "        if (lane == 0) sums[m * 8 + warp] = ss;\n"
                            "    }\n"
                            "    __syncthreads();\n"
                            "    for (long long m = 0; m < M; m++) {\n"
                            "        float ss = 0.0f;\n"
                            "        for (int w = 0; w < 8; w++) ss += sums[m * 8 + w];\n"
                            "        rinv[m] = 1.0f / sqrtf(ss / (float)D + %.9ef);\n"
                            "    }\n",
                  (long long)D, CG_FOLD_NB, CG_FOLD_NB, CG_FOLD_NB, fold_ref(G, E, nrm->ops[0], P, grp, "m * D + j"), CG_FOLD_NB,
                  (double)(float)ir_node_attr_float(nrm, "eps", 1e-6));
    }
    sb_printf(&G->decl, "    for (long long it0 = warp; it0 < M * nkb; it0 += 8 * %d) {  // K blocks it0 + 8 b of rows a warp, 4 values a lane\n"
                        "        float v[%d][4];\n"
                        "#pragma unroll\n"
                        "        for (int b = 0; b < %d; b++) {  // every load of the batch first\n"
                        "            const long long it = it0 + 8 * b, m = it / nkb, kb = it %% nkb, k0 = kb * 128 + lane * 4;\n"
                        "#pragma unroll\n"
                        "            for (int j = 0; j < 4; j++) v[b][j] = it < M * nkb && k0 + j < K ? %s : 0.0f;\n"
                        "        }\n"
                        "#pragma unroll\n"
                        "        for (int b = 0; b < %d; b++) {\n"
                        "            const long long it = it0 + 8 * b, m = it / nkb, kb = it %% nkb, k0 = kb * 128 + lane * 4;\n"
                        "            if (it >= M * nkb) break;  // warp-uniform\n"
                        "            const bool st = it %% gridDim.x == blockIdx.x;  // the CTA that stores this block's codes and scale\n"
                        "            float mx = 0.0f;\n"
                        "#pragma unroll\n"
                        "            for (int j = 0; j < 4; j++) mx = fmaxf(mx, fabsf(v[b][j]));\n"
                        "            mx = wmax(mx);\n"
                        "            const float sc = mx / 448.0f;\n"
                        "            unsigned pk = 0u;\n"
                        "#pragma unroll\n"
                        "            for (int j = 0; j < 4; j++) {\n"
                        "                const float c = sc > 0.0f ? fp8r(v[b][j] / sc) : 0.0f;\n"
                        "                pk |= (unsigned)fe4m3(c) << (8 * j);\n"
                        "                if (st && k0 + j < K) S%d(a, m * K + k0 + j, c);\n"
                        "            }\n"
                        "            if (k0 < K) *(unsigned *)(xq + m * K + k0) = pk;\n"
                        "            if (lane == 0) xsc[m * nkb + kb] = sc;\n"
                        "            if (lane == 0 && st) S%d(a, m * nkb + kb, sc);\n"
                        "        }\n"
                        "    }\n",
              CG_FOLD_QB, CG_FOLD_QB, CG_FOLD_QB, fold_ref(G, E, X, P, grp, "m * K + k0 + j"), CG_FOLD_QB, sq, ss);
    for (int i = 0; i < G->g->nnodes; i++) { /* the row group's other stored values (a residual add), the CTAs in turn */
        const IrNode *n = G->g->nodes[i];
        if (grp[i] != P || !G->stored[i] || n == q || n == s) continue;
        sb_printf(&G->decl, "    // %s, stored for its readers after this kernel\n"
                            "    for (long long i = (long long)blockIdx.x * 256 + threadIdx.x; i < %s; i += (long long)gridDim.x * 256) S%d(a, i, %s);\n",
                  ir_op_name(n->op), cg_dim(G, ir_type_numel(&n->type)), cg_slot_value(G, n), fold_ref(G, E, n, P, grp, "i"));
    }
    sb_puts(&G->decl, "}\n");
}

/* Dynamic shared memory of the pipelined form (gemm_skinny.cuh): two buffers of the warps' sums, two of the CTA's
 * (split), and with fold the norm's sums, x's scales and codes (SK_FOLD_XS, SK_FOLD_XQ). */
static int64_t skinny_pipe_smem(int rb, int split, bool fold, int64_t Kb) {
    const int64_t sums = 2LL * 8 * (8 + (split > 1)) * (8 * rb + 1);
    if (!fold) return (int64_t)sizeof(float) * sums;
    const int64_t nkb = (Kb + 127) / 128, xs = (sums + 3) / 4 * 4 + 32, xq = xs + (4 * nkb + 3) / 4 * 4;
    return (int64_t)sizeof(float) * xq + CG_FOLD_M * Kb;
}

/* The skinny-M form of an fp8_linear, or (bf16) of a linear on BF16 x and
 * w, over K values a row: two phases, one for M <= 8
 * (codegen/kernels/gemm_skinny2.cuh where skinny2_on, else
 * gemm_skinny.cuh's) and one for 8 < M <= CG_SKINNY_M (gemm_skinny.cuh:
 * ceil(N / (8 * SK_RB)) clusters of SK_SPLIT CTAs); the tile's phases
 * (which follow) run only above. *top: the most rows it runs at,
 * DSCC_SKINNY_MAX (8..32) where set; else 16 for an FP8 linear on
 * gemm_skinny2.cuh, whose 8 < M <= 16 phase is then gemm_skinny2.cuh's
 * 16-row instance (where 16 rows of x fit), and CG_SKINNY_M otherwise.
 * False, with G->why, on a malformed DSCC_SKINNY or DSCC_SKINNY_MAX. */
static bool gemm_skinny(Gen *G, IrDim M, int64_t K, int64_t N, const int *slot, bool bf16, int *top) {
    SkinnyParams sp;
    const int64_t Kb = K * (bf16 ? 2 : 1); /* the tuning counts K blocks of 128 bytes */
    if (!skinny_params(G, N, Kb, &sp)) return false;
    const char *mx = G->tune->skinny_max;
    char *end = NULL;
    long t = mx && *mx ? strtol(mx, &end, 10) : 0;
    if (mx && *mx && (*end || t < 8 || t > CG_SKINNY_M)) {
        G->why = arena_printf(G->a, "DSCC_SKINNY_MAX is '%s': expected the most rows of the skinny-M form, 8..%d", mx, CG_SKINNY_M);
        return false;
    }
    bool on8 = skinny2_on(&sp, N, Kb, 8, bf16);
    /* FP8 on gemm_skinny2.cuh (DSCC_SKINNY_V2=1): to 16 rows (the tile measured faster than gemm_skinny.cuh at 32 on every
     * V3 shape) */
    *top = t ? (int)t : on8 && !bf16 ? 16 : CG_SKINNY_M;
    const char *e = G->tune->skinny;
    bool set_rb = e && strstr(e, "rb="), set_u = e && strstr(e, "u="), set_minb = e && strstr(e, "minb=");
    SkinnyBulkShape b1 = skinny_bulk_shape(&sp, set_rb, set_u, e && strstr(e, "split="), N, Kb, 1);
    SkinnyBulkShape b8 = skinny_bulk_shape(&sp, set_rb, set_u, e && strstr(e, "split="), N, Kb, 8);
    cg_mma_helpers(G);
    if (skinny_bulk_on(&sp, &b8, bf16)) { /* M = 1 (the deeper ring), then 1 < M <= 8 */
        skinny_bulk_instance(G, &b1, M, 0, K, N, slot, bf16);
        skinny_bulk_instance(G, &b8, M, 1, K, N, slot, bf16);
    } else if (on8) skinny2_instance(G, &sp, set_rb, set_u, M, 0, 8, K, N, slot, bf16);
    else if (skinny_pipe_on(&sp, N)) {
        if (G->fold_lin) skinny_pipe_instance(G, &sp, set_u, set_minb, M, K, N, slot, bf16, true, false); /* DSCC_SKINNY_FOLD: M <= 4 */
        skinny_pipe_instance(G, &sp, set_u, set_minb, M, K, N, slot, bf16, false, G->fold_lin != NULL);
    } else skinny_instance(G, &sp, M, 0, 8, K, N, slot, bf16);
    if (G->fold_lin && (bf16 || on8 || !skinny_pipe_on(&sp, N) || skinny_bulk_on(&sp, &b8, bf16))) {
        G->why = "DSCC_SKINNY_FOLD: the linear's M <= 8 form is not the pipelined one its row kernel was skipped for"; /* cannot happen */
        return false;
    }
    if (on8 && *top <= 16 && skinny2_on(&sp, N, Kb, 16, bf16)) skinny2_instance(G, &sp, set_rb, set_u, M, 8, 16, K, N, slot, bf16);
    else skinny_instance(G, &sp, M, 8, CG_SKINNY_M, K, N, slot, bf16);
    G->phases[G->nphases - 1].amax = *top > 8 ? *top : 8; /* (at 8: amin = amax, it never runs) */
    return true;
}

/* Dynamic shared memory of gemm_tma.cuh (GT_SMEM) at its default stages:
 * 6 of 32 KB for 128 x 128 tiles, 4 of 48 KB for 128 x 256. */
#define CG_TMA_SMEM_128 (6 * 32768 + 16 * 6 + 1024)
#define CG_TMA_SMEM_256 (4 * 49152 + 16 * 4 + 1024)

/* Whether the TMA GEMM takes the 128 x 256 tile (gemm_tma.cuh's GT_BN 256):
 * unless DSCC_TMA_V2=0, which restores the 128 x 128 form for A/B timing. */
static bool tma_wide(const DsccTune *t) {
    return tune_on(t->tma_v2, true);
}

/* CTAs a cluster of the 128 x 256 form (gemm_tma.cuh's GT_CLUSTER): 2 with
 * DSCC_TMA_CLUSTER=1 (w's boxes multicast to the two row tiles' CTAs),
 * else 1, until GPU timing says which is faster. */
static int tma_cluster(const DsccTune *t) {
    return tune_on(t->tma_cluster, false) ? 2 : 1;
}

/* GT_STORE2 for y in slot sy: both bf16 values of an even index in one
 * 32-bit store where y is stored as bf16; NULL (two GT_STOREs) otherwise. */
static const char *tma_store2(Gen *G, int sy) {
    const IrNode *y = G->g->nodes[G->slots[sy].node];
    if (G->dtype[y->id] != IR_DT_BF16 || (G->kblock && G->kblock[y->id])) return NULL;
    return arena_printf(G->a, "(((unsigned *)a.t[%d])[(i) >> 1] = (unsigned)f2bf(v0) | (unsigned)f2bf(v1) << 16)", sy);
}

/* The large-M form of an fp8_linear (codegen/kernels/gemm_tma.cuh): one
 * phase over the 128 x 256 (DSCC_TMA_V2=0: 128 x 128) output tiles that
 * the runtime runs instead of the tile's phases where the GEMM table (or,
 * without an entry, M >= 256) says so; `after` is set once the tile's
 * phases are known. */
static CgTmaGemm *gemm_tma(Gen *G, const IrNode *n, IrDim M, int64_t K, int64_t N, int sx, int sxs, int sw, int sws, int sy, int top) {
    CgTmaGemm *t = arena_alloc(G->a, sizeof *t);
    *t = (CgTmaGemm){M, N, K, sx, sw, cg_slot_scratch(G, n, ir_dim_const(64)), 0}; /* 64 floats: room for the two 128-byte maps */
    const char *entry = arena_printf(G->a, "p%d_fp8_linear_tma", G->nphases);
    const bool wide = tma_wide(G->tune);
    const int cl = wide ? tma_cluster(G->tune) : 1;
    const char *st2 = tma_store2(G, sy);
    CgDefine defs[] = {
        {"GT_IN_MODULE", "1"},
        {"GT_BN", wide ? "256" : "128"},
        {"GT_CLUSTER", cl == 2 ? "2" : "1"},
        {"GT_M", cg_dim(G, M)},
        {"GT_N", arena_printf(G->a, "%lldLL", (long long)N)},
        {"GT_K", arena_printf(G->a, "%lldLL", (long long)K)},
        {"GT_MAPS", arena_printf(G->a, "((const unsigned char *)a.t[%d])", t->maps)},
        {"GT_XS(m, kb)", cg_scale_at(G, sxs, "m", "kb")},
        {"GT_WS(i)", arena_printf(G->a, "L%d(a, (i))", sws)},
        {"GT_STORE(i, v)", arena_printf(G->a, "S%d(a, (i), (v))", sy)},
        {"GT_STORE2(i, v0, v1)", st2},
    };
    if (wide)
        sb_printf(&G->decl, "// fp8_linear at large M: TMA loads into a 4-stage mbarrier ring, a producer warp and two consumer warpgroups,\n"
                            "// each 64 x 256 of a 128 x 256 tile (wgmma m64n128k32 E4M3 by halves), a persistent grid, block scales promoted per K block%s\n",
                  cl == 2 ? ",\n// clusters of 2 CTAs (two row tiles) whose weight boxes are multicast" : "");
    else
        sb_puts(&G->decl, "// fp8_linear at large M: TMA loads into a 6-stage mbarrier ring, a producer warp and two wgmma m64n128k32 E4M3\n"
                          "// consumer warpgroups over 128 x 128 tiles, a persistent grid, block scales promoted per K block\n");
    sb_puts(&G->decl, cg_kernel_instance(G->a, "gemm_tma", entry, defs, (int)(sizeof defs / sizeof defs[0]) - (st2 == NULL)));
    /* blocks: the tiles, in clusters: cl per unit of cl row tiles (the runtime caps them at the SMs) */
    cg_phase(G, CG_LAUNCH_BLOCK, M, 128 * cl, ir_dim_const((N + (wide ? 255 : 127)) / (wide ? 256 : 128) * cl), 1,
             wide ? CG_TMA_SMEM_256 : CG_TMA_SMEM_128);
    CgPhase *f = &G->phases[G->nphases - 1];
    f->fn = entry;
    f->tma = t;
    f->threads = 384; /* a producer warpgroup and two consumer warpgroups */
    if (top) f->amin = top; /* above the skinny form's rows */
    return t;
}

/* fp8_linear on the tensor cores (its skinny-M form first where the shape
 * allows it, then its TMA form on Hopper's wgmma), and its cuBLASLt form
 * where the shape allows it and the activation scales are stored
 * K-block-major, as cuBLASLt reads them. */
static bool gemm_fp8_mma(Gen *G, const IrNode *n, IrDim M, IrDim K, IrDim O) {
    int sx = cg_slot_value(G, n->ops[0]), sxs = cg_slot_value(G, n->ops[1]);
    int sw = cg_slot_value(G, n->ops[2]), sws = cg_slot_value(G, n->ops[3]), sy = cg_slot_result(G, n);
    bool skinny = G->skinny && K.coeff % 16 == 0 && ir_dim_is_const(O) && O.coeff < (1LL << 31);
    const int slot[5] = {sx, sxs, sw, sws, sy};
    int top = 0; /* the most rows of the skinny form */
    const bool fold = skinny && G->fold_ok && G->fold_ok[n->id]; /* DSCC_SKINNY_FOLD: its row kernel skips M <= 4 */
    G->fold_lin = fold ? n : NULL;
    const bool sk_ok = !skinny || gemm_skinny(G, M, K.coeff, O.coeff, slot, false, &top);
    G->fold_lin = NULL;
    if (!sk_ok) return false;
    bool tma = G->wgmma && K.coeff % 16 == 0 && ir_dim_is_const(O) && O.coeff < (1LL << 31);
    CgTmaGemm *t = tma ? gemm_tma(G, n, M, K.coeff, O.coeff, sx, sxs, sw, sws, sy, top) : NULL;
    int tile = G->nphases;
    int span = gemm_mma(G, n, arena_printf(G->a, "fp8_linear: tensor cores (%s), 64x128 tile, 1x128 / 128x128 block scales per K block", cg_tile_insn(G, false)),
                        false, M, K.coeff, O, sx, sxs, sw, sws, sy);
    if (t) t->span = span;
    if (skinny) {
        for (int p = tile; p < G->nphases; p++) G->phases[p].amin = top;
        span += 2 + fold; /* the skinny form's two phases (three with the folded one) */
    }
    span += tma; /* the library call replaces the TMA form too */
    const IrNode *y = G->g->nodes[G->slots[sy].node];
    if (K.coeff % 512 == 0 && O.coeff % 8 == 0 && G->dtype[y->id] == IR_DT_BF16 && G->kblock[n->ops[1]->id]) /* cuBLASLt's block-scaled FP8 may run it */
        G->lib = (CgLib){CG_LIB_FP8_GEMM, M, O.coeff, K.coeff, sx, sxs, sw, sws, sy, false, G->nphases - span, span, fold ? CG_FOLD_M : 0};
    return true;
}

/* linear on bf16 values x, w on the tensor cores (mma m16n8k16 BF16, f32 accumulation), and its cuBLASLt form. */
static bool gemm_bf16_mma(Gen *G, const IrNode *n, const IrNode *x, const IrNode *w, IrDim M, IrDim K, IrDim O) {
    int sx = cg_slot_value(G, x), sw = cg_slot_value(G, w), sy = cg_slot_result(G, n);
    const int slot[5] = {sx, -1, sw, -1, sy};
    /* the skinny-M form (gemm_skinny2.cuh / gemm_skinny.cuh with SK_BF16) at M <= CG_SKINNY_M, unless DSCC_SKINNY_BF16=0 */
    bool skinny = G->skinny && tune_on(G->tune->skinny_bf16, true) && K.coeff % 8 == 0 && ir_dim_is_const(O) && O.coeff < (1LL << 31);
    int top = 0;
    if (skinny && !gemm_skinny(G, M, K.coeff, O.coeff, slot, true, &top)) return false;
    int tile = G->nphases;
    int span = gemm_mma(G, n,
                        arena_printf(G->a, "linear: tensor cores (%s, f32 accumulation), 64x128 tile%s", cg_tile_insn(G, true),
                                     x == n->ops[0] ? "" : ", on the bf16 values its f32 operands were cast from"),
                        true, M, K.coeff, O, sx, 0, sw, 0, sy);
    if (skinny) {
        for (int p = tile; p < G->nphases; p++) G->phases[p].amin = top;
        span += 2; /* the skinny form's two phases */
    }
    IrDType yt = G->dtype[G->slots[sy].node]; /* bf16, or f32 where the GEMM writes its f32 cast (cuBLASLt's D in f32) */
    /* an f32 linear of bf16 values (the MoE router) too, above the skinny form's rows (DSCC_GEMM_F32_LIB=0: the tile;
     * =2: at every row count, the skinny form's too, for timing). On an H100, 2026-12-06, test_gpu_ops and e2e passed
     * with it, and a 1,024-token prefill's BF16 linears took 0.954 against 1.018 ms: the tile took 96 us, 39 TFLOPS, for
     * the router, and 90.8 us at a batch-128 decode step (62 GB/s) */
    const char *fl = G->tune->gemm_f32_lib;
    if (fl && *fl && strcmp(fl, "0") && strcmp(fl, "1") && strcmp(fl, "2")) {
        G->why = arena_printf(G->a, "DSCC_GEMM_F32_LIB is '%s': expected 0 (the tile), 1 (cuBLASLt above the skinny rows) or 2 (at every row count)", fl);
        return false;
    }
    bool f32 = x != n->ops[0] && G->dtype[n->id] == IR_DT_F32 && yt == IR_DT_F32 && !(fl && strcmp(fl, "0") == 0);
    if (K.coeff % 16 == 0 && O.coeff % 8 == 0 && (f32 || (G->dtype[n->id] == IR_DT_BF16 && (yt == IR_DT_BF16 || yt == IR_DT_F32)))) { /* cuBLASLt may run it */
        G->lib = (CgLib){CG_LIB_BF16_GEMM, M, O.coeff, K.coeff, sx, 0, sw, 0, sy, yt == IR_DT_F32, G->nphases - span, span, 0};
        if (f32) G->lib.mmin = skinny && !(fl && strcmp(fl, "2") == 0) ? top : 0;
    }
    return true;
}

const IrNode *cg_bf16_source(const Gen *G, const IrNode *v) {
    if (v->op != IR_OP_CAST || v->type.dtype != IR_DT_F32) return NULL;
    const IrNode *s = v->ops[0];
    return s->op != IR_OP_KV_CACHE && s->type.dtype == IR_DT_BF16 && G->dtype[s->id] == IR_DT_BF16 ? s : NULL;
}

bool cg_linear_reads_bf16(const Gen *G, const IrNode *n) {
    if (n->op != IR_OP_LINEAR || n->nops != 2 || !cg_bf16_source(G, n->ops[0]) || !cg_bf16_source(G, n->ops[1])) return false;
    const IrType *w = &n->ops[1]->type;
    IrDim M;
    return w->rank == 2 && ir_dim_is_const(w->dims[1]) && w->dims[1].coeff < (1LL << 30) &&
           ir_dim_div(ir_type_numel(&n->ops[0]->type), w->dims[1], &M);
}

bool cg_gemm(Gen *G, const IrNode *n, bool fp8) {
    const IrNode *x = n->ops[0], *w = n->ops[fp8 ? 2 : 1];
    if (!fp8 && cg_linear_reads_bf16(G, n)) {
        const IrNode *xs = cg_bf16_source(G, x), *wsrc = cg_bf16_source(G, w);
        IrDim M;
        ir_dim_div(ir_type_numel(&xs->type), wsrc->type.dims[1], &M);
        return gemm_bf16_mma(G, n, xs, wsrc, M, wsrc->type.dims[1], wsrc->type.dims[0]);
    }
    if (w->type.rank != 2) {
        G->why = "the weight of a linear must be a matrix";
        return false;
    }
    IrDim K = w->type.dims[1], O = w->type.dims[0], M;
    if (!ir_dim_div(ir_type_numel(&x->type), K, &M)) {
        G->why = "rows of x do not divide";
        return false;
    }
    /* the tensor-core tile and cuBLASLt read x as dense [M, K] rows: not a cache ([B, capacity, ...]) */
    bool dense = x->op != IR_OP_KV_CACHE && w->op != IR_OP_KV_CACHE;
    if (fp8 && dense && ir_dim_is_const(K) && K.coeff < (1LL << 31) && G->dtype[x->id] == IR_DT_FP8E4M3 && G->dtype[w->id] == IR_DT_FP8E4M3)
        return gemm_fp8_mma(G, n, M, K, O);
    if (!fp8 && dense && ir_dim_is_const(K) && K.coeff < (1LL << 30) && G->dtype[x->id] == IR_DT_BF16 && G->dtype[w->id] == IR_DT_BF16)
        return gemm_bf16_mma(G, n, x, w, M, K, O);
    int sx = cg_slot_value(G, x), sw = cg_slot_value(G, w), sy = cg_slot_result(G, n);
    int sxs = fp8 ? cg_slot_value(G, n->ops[1]) : 0, sws = fp8 ? cg_slot_value(G, n->ops[3]) : 0;
    cg_head_as(G, fp8 ? "fp8_linear_fma" : "linear_fma", fp8 ? "fp8_linear: 64x64 tile, FP8 codes with 1x128 / 128x128 block scales" : "linear: 64x64 tile");
    StrBuf *b = &G->decl;
    sb_printf(b, "    __shared__ float As[32][68], Bs[32][68];\n"
                 "    const long long M = %s, K = %s, O = %s, nkb = (K + 127) / 128;\n"
                 "    const long long nt = (O + 63) / 64, m0 = blockIdx.x / nt * 64, o0 = blockIdx.x %% nt * 64;\n"
                 "    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;\n"
                 "    float acc[4][4], part[4][4];\n"
                 "    for (int u = 0; u < 4; u++)\n        for (int v = 0; v < 4; v++) acc[u][v] = part[u][v] = 0.0f;\n"
                 "    for (long long k0 = 0; k0 < K; k0 += 32) {\n"
                 "        for (int e = threadIdx.x; e < 2048; e += 256) {\n"
                 "            const int r = e >> 5, c = e & 31;\n"
                 "            const long long k = k0 + c, m = m0 + r, o = o0 + r;\n"
                 "            As[c][r] = m < M && k < K ? L%d(a, m * K + k) : 0.0f;\n"
                 "            Bs[c][r] = o < O && k < K ? L%d(a, o * K + k) : 0.0f;\n"
                 "        }\n"
                 "        __syncthreads();\n"
                 "#pragma unroll 8\n"
                 "        for (int c = 0; c < 32; c++) {\n"
                 "            float av[4], bv[4];\n"
                 "            for (int u = 0; u < 4; u++) av[u] = As[c][ty + 16 * u], bv[u] = Bs[c][tx + 16 * u];\n"
                 "            for (int u = 0; u < 4; u++)\n                for (int v = 0; v < 4; v++) part[u][v] += av[u] * bv[v];\n"
                 "        }\n"
                 "        __syncthreads();\n",
              cg_dim(G, M), cg_dim(G, K), cg_dim(G, O), sx, sw);
    if (fp8)
        sb_printf(b, "        if ((k0 + 32) %% 128 == 0 || k0 + 32 >= K) {  // end of a 128-wide K block: scale and accumulate\n"
                     "            const long long kb = k0 / 128;\n"
                     "            for (int u = 0; u < 4; u++)\n"
                     "                for (int v = 0; v < 4; v++) {\n"
                     "                    const long long m = m0 + ty + 16 * u, o = o0 + tx + 16 * v;\n"
                     "                    if (m < M && o < O) acc[u][v] += part[u][v] * %s * L%d(a, o / 128 * nkb + kb);\n"
                     "                    part[u][v] = 0.0f;\n"
                     "                }\n"
                     "        }\n",
                  cg_scale_at(G, sxs, "m", "kb"), sws);
    sb_puts(b, "    }\n");
    sb_printf(b, "    for (int u = 0; u < 4; u++)\n"
                 "        for (int v = 0; v < 4; v++) {\n"
                 "            const long long m = m0 + ty + 16 * u, o = o0 + tx + 16 * v;\n"
                 "            if (m < M && o < O) S%d(a, m * O + o, %s);\n"
                 "        }\n}\n",
              sy, fp8 ? "acc[u][v]" : "part[u][v]");
    cg_phase(G, CG_LAUNCH_BLOCK, M, 64, O, 64, 0);
    return true;
}

