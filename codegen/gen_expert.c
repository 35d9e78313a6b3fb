/* gen_expert.c — the expert_linear and fp8_expert_linear templates: each
 * routed row (token, slot) times the weight of the expert idx names.
 *
 * fp8_expert_linear on FP8 codes is a grouped GEMM, one launch for all
 * experts: a first phase (one block, codegen/kernels/expert_sort.cuh)
 * sorts the routed rows by expert (counting sort in shared memory) and
 * cuts each expert's rows into tiles of 64; the second runs the
 * tensor-core FP8 tile of gen_gemm.c on every (tile, 128 outputs),
 * gathering its rows of x through the permutation and
 * scattering results back to their rows. There are at most ceil(R/64) + E
 * tiles for R routed rows and E experts, so that many blocks per output
 * tile are launched and the ones past the real count return at once.
 * By default (level 3 where the tile is wgmma's, not at f32 storage;
 * DSCC_EXPERT_TMA=0: never, 1 or 2: levels 1, 2; see expert_tma_params),
 * above EXPERT_TMA_MINR routed rows (1: every decode step and prefill)
 * the TMA form runs instead of the tile's phases
 * (codegen/kernels/expert_tma.cuh: a persistent grid over (expert, 128
 * outputs) units, each block all of its expert's rows, the weights by TMA
 * through maps the runtime makes, each weight byte read once); the sort
 * then also lists the buckets that have rows, longest first.
 * With DSCC_EXPERT_V2 set (opt-in: slower on an H100, see
 * expert_stream_params), up to maxr routed rows (a decode step) the
 * stream form runs instead (codegen/kernels/expert_stream.cuh: a warp per
 * 16 weight rows and a tile of at most 32 of the expert's rows, which the
 * sort also cuts).
 * Otherwise: one block per routed row and 64 outputs, the row in shared
 * memory. Slots with expert id -1 (dispatched rows whose expert is on
 * another GPU, or that nobody sent: docs/IR.md) are not computed; their
 * outputs are written as 0 (the grouped GEMM sorts them into one more
 * bucket, E, whose tiles only store zeros), as the CPU executor does.
 * Two grouped GEMMs on the same input and routing (gate and up: gen.c
 * pairs them into one group) are one kernel: one sort, and a tile phase
 * whose blocks cover the output tiles of both weights. When gen.c chains
 * the down GEMM into that kernel (after the silu * mul quantize phase), its
 * tiles read the same sort: one sort per MoE layer. */
#include "codegen/gen_internal.h"
#include "codegen/kernels.h"

#include <stdlib.h>
#include <string.h>

#define EB_OF(E) ((E) + 1) /* sort buckets: the experts, then the slots of id -1 */
#define EXPERT_ORD(E) (2 * EB_OF(E) + 2) /* where the sort's ints hold the TMA form's bucket list (EB_OF(E) + 1 ints) */
#define EXPERT_NPASS(E) (EXPERT_ORD(E) + EB_OF(E) + 1) /* ... then its level 3's count of passes */
#define EXPERT_CTR(E) (EXPERT_NPASS(E) + 1)            /* ... then the dynamic units' counter (dyn=1) */

typedef struct ExpertOut ExpertOut;
static void expert_k_sum(Gen *G, IrDim R, int64_t O, int64_t nt, int64_t ntw, int64_t nkb, int64_t EB, const struct ExpertOut *out, int nw);

/* DSCC_EXPERT_SCAN (read at codegen): the sort's bucket offsets and tile numbers by a block-wide scan instead of one
 * thread's walk over the E + 1 buckets. The default since the eleventh session (an H100's batch-1 step 1.272 ->
 * 1.254 ms). Unset or "": 1; "0": the one-thread walk; n = 1..64: the scan, each thread taking at least n
 * consecutive buckets (1: as many as 256 threads need, 2 for V3's 257; more only to test the chunks); -1 a
 * malformed value. */
static int expert_scan_env(const DsccTune *t) {
    const char *e = t->expert_scan;
    if (!e || !*e) return 1;
    char *end;
    const long v = strtol(e, &end, 10);
    return *end || v < 0 || v > 64 ? -1 : (int)v;
}

/* The sort of phase 1 (codegen/kernels/expert_sort.cuh; see the file
 * comment) into scratch slots sc, sp0, st; with s32 >= 0 also the tiles of
 * at most 32 rows the stream form takes (expert_stream.cuh): (first sorted
 * position, expert or -1, rows) of each into s32, their count to
 * C[2 * EB + 1]. With order, the TMA form's bucket list; with bm > 0 also
 * its level 3's passes of at most bm rows into passes (an int * expression),
 * their count to C[EXPERT_NPASS(E)]; with ctr also C[EXPERT_CTR(E)] zeroed
 * (the dynamic units' counter). DSCC_EXPERT_SCAN n > 0: the bucket offsets
 * by the block-wide scan, at least n buckets a thread (as many as 256
 * threads need). */
static void expert_sort(Gen *G, int64_t E, IrDim R, int si, int sc, int sp0, int st, int s32, bool pair, bool order, int bm,
                        const char *passes, bool ctr) {
    Arena *a = G->a;
    const int scan = expert_scan_env(G->tune);
    const int64_t need = (EB_OF(E) + 255) / 256, ch = scan <= 0 ? 0 : need > scan ? need : scan;
    const char *entry = arena_printf(a, "p%d_expert_sort", G->nphases);
    CgDefine d[16] = {{"ES_E", arena_printf(a, "%lld", (long long)E)},
                      {"ES_R", cg_dim(G, R)},
                      {"ES_IDX(r)", arena_printf(a, "L%d(a, (r))", si)},
                      {"ES_FAIL(v)", "fail(a, (v))"},
                      {"ES_C", arena_printf(a, "((int *)a.t[%d])", sc)},
                      {"ES_P", arena_printf(a, "((int *)a.t[%d])", sp0)},
                      {"ES_T", arena_printf(a, "((int *)a.t[%d])", st)},
                      {"ES_SCAN", arena_printf(a, "%lld", (long long)ch)},
                      {"ES_EARLY", cg_pdl_early(G->tune) ? "1" : "0"}};
    int nd = 9;
    if (s32 >= 0) {
        d[nd++] = (CgDefine){"ES_S32", "1"};
        d[nd++] = (CgDefine){"ES_T32", arena_printf(a, "((int *)a.t[%d])", s32)};
    }
    if (order) {
        d[nd++] = (CgDefine){"ES_ORD", "1"};
        d[nd++] = (CgDefine){"ES_ORD_AT", arena_printf(a, "%lld", (long long)EXPERT_ORD(E))};
    }
    if (order && bm > 0) {
        d[nd++] = (CgDefine){"ES_BM", arena_printf(a, "%d", bm)};
        d[nd++] = (CgDefine){"ES_PASSES", passes};
        d[nd++] = (CgDefine){"ES_NPASS_AT", arena_printf(a, "%lld", (long long)EXPERT_NPASS(E))};
        if (ctr) d[nd++] = (CgDefine){"ES_CTR_AT", arena_printf(a, "%lld", (long long)EXPERT_CTR(E))};
    }
    sb_printf(&G->decl, "// fp8_expert_linear%s, phase 1: routed rows sorted by expert (bucket E: id -1), cut into tiles of 64%s%s%s\n",
              pair ? " x 2 (gate and up)" : "", s32 >= 0 ? " and of 32" : "", order ? "; the TMA form's bucket list" : "",
              order && bm > 0 ? " and passes" : "");
    sb_puts(&G->decl, cg_kernel_instance(a, "expert_sort", entry, d, nd));
    cg_phase(G, CG_LAUNCH_BLOCK, ir_dim_const(1), 1, ir_dim_const(1), 1, 0);
    G->phases[G->nphases - 1].fn = entry;
}

/* The output slots of one weight of a grouped GEMM: y (or its partial tiles) and the weight's. */
struct ExpertOut {
    int sw, sws, sy, sp; /* sp: split partial tiles [part][64][O] (-1: none) */
};

/* The zeros of the id -1 bucket's rows, into y or the partial tiles of part kpart. */
static const char *expert_zero(Gen *G, const ExpertOut *o, bool split) {
    return split ? arena_printf(G->a, "st_f32(a.t[%d], (kpart * 64 + r) * O + o, 0.0f)", o->sp) : arena_printf(G->a, "S%d(a, r * O + o, 0.0f)", o->sy);
}

/* The sum of the K parts of a split grouped GEMM into y (each of the nw
 * weights' outputs): one thread per (routed row, output tile), its 128
 * outputs in turn (a split step has at most 64 routed rows). Counted as
 * the tile phase counts its split (rows R in tiles of 64, the experts,
 * ntw output tiles), so host and device agree on the parts. */
static void expert_k_sum(Gen *G, IrDim R, int64_t O, int64_t nt, int64_t ntw, int64_t nkb, int64_t EB, const ExpertOut *out, int nw) {
    cg_head_as(G, "fp8_expert_ksum", "fp8_expert_linear: the sum of the K parts");
    sb_printf(&G->decl, "    const long long i = ITEM_ELEM(), M = %s, O = %lldLL, nt = %lldLL, ntw = %lldLL, EB = %lldLL;\n"
                        "    if (i >= M * ntw) return;\n"
                        "    const long long ns = cg_k_splits(M, ((M + 63) / 64 + (EB < M ? EB : M)) * ntw, %lldLL), m = i / ntw, ot = i %% ntw %% nt, wsel = i %% ntw / nt;\n"
                        "    for (long long o = ot * 128; o < ot * 128 + 128 && o < O; o++) {\n"
                        "        float s = 0.0f;\n",
              cg_dim(G, R), (long long)O, (long long)nt, (long long)ntw, (long long)EB, (long long)nkb);
    for (int k = 0; k < nw; k++)
        sb_printf(&G->decl, "        %sif (wsel == %d) {\n"
                            "            for (long long p = 0; p < ns; p++) s += ld_f32(a.t[%d], (p * 64 + m) * O + o);\n"
                            "            S%d(a, m * O + o, s);\n"
                            "        }\n",
                  k ? "else " : "", k, out[k].sp, out[k].sy);
    sb_puts(&G->decl, "    }\n}\n");
    cg_phase(G, CG_LAUNCH_ELEM, R, 64, ir_dim_const(ntw), 1, 0); /* da, db (and plus) as the tile's: the rule counts its parts alike */
    G->phases[G->nphases - 1].plus = EB;
    cg_phase_k(G, CG_ITEMS_K_SUM, nkb);
}

/* One parameter of an opt-in switch: key=value with lo <= value <= hi
 * (and, where set is not 0, bit value of set on: the values allowed). */
typedef struct {
    const char *key;
    int64_t lo, hi;
    uint64_t set;
    int64_t *dst;
} ExpertKey;

/* The switch `name` of a kernel form, e its text (DsccTune, read once by the main):
 * unset or "": level deflt (0: off); "0": off (*level 0); otherwise
 * comma-separated items, the first of which may be a level 1..maxlevel
 * (without it deflt, or 1 where deflt is 0), the others key=value of
 * keys. A malformed value: false, with G->why naming the variable, its
 * value and `usage`. */
static bool expert_env(Gen *G, const char *name, const char *e, int deflt, int maxlevel, const ExpertKey *keys, int nkeys,
                       const char *usage, int *level) {
    *level = deflt;
    if (!e || !*e) return true;
    *level = 0;
    if (!strcmp(e, "0")) return true;
    *level = deflt ? deflt : 1;
    for (const char *s = e; *s;) {
        const char *end = strchr(s, ',');
        if (!end) end = s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        char *vend = NULL;
        long long v = strtoll(eq ? eq + 1 : s, &vend, 10);
        bool ok = !(*end && !end[1]) && vend == end && (eq ? eq + 1 < end : end > s && s[0] >= '0' && s[0] <= '9');
        if (ok && !eq) ok = s == e && v >= 1 && v <= maxlevel; /* a level: the first item only */
        if (ok && !eq) *level = (int)v;
        for (int k = 0; ok && eq && k <= nkeys; k++) {
            if (k == nkeys) ok = false; /* no such key */
            else if ((size_t)(eq - s) == strlen(keys[k].key) && !strncmp(s, keys[k].key, (size_t)(eq - s))) {
                ok = v >= keys[k].lo && v <= keys[k].hi && (!keys[k].set || (v < 64 && keys[k].set >> v & 1));
                if (ok) *keys[k].dst = v;
                break;
            }
        }
        if (!ok) {
            G->why = arena_printf(G->a, "%s is '%s': expected %s", name, e, usage);
            return false;
        }
        s = *end ? end + 1 : end;
    }
    return true;
}

/* The stream form (codegen/kernels/expert_stream.cuh) of the grouped GEMM
 * at decode, opt-in: off (the tile at every row count) unless
 * DSCC_EXPERT_V2 is set and not 0. Timed on an H100 (2026-12-06, two V3
 * layers, bench_gpu, the ring form below) it was slower than the tile:
 * fp8_expert_linear 0.191 / 2.289 / 4.127 ms against 0.168 / 1.886 /
 * 3.089 ms at batch 1 / 32 / 128, so the tile stays the default.
 * DSCC_EXPERT_V2 is "1" or a comma-separated subset of maxr=N
 * (the most routed rows it runs at, default EXPERT_STREAM_MAXR: the tile's
 * phases run above), u=1..8 (K blocks a warp has in flight), minb=1..4
 * (blocks an SM holds; the grid is 132 of them an SM), ring=0|1 (the
 * weights through d=4|6|8 cp.async stages a warp in shared memory, or u K
 * blocks a warp in registers), d=. Its defaults, ring=1 d=8 minb=1, keep
 * 7 K blocks (14 KB) a warp, 112 KB an SM in flight whatever the
 * registers (164, no spill: ptxas on V3's shapes); the register form at
 * u=4 minb=1 holds 8 KB a warp a round in 252 (minb=2 spills). */
typedef struct {
    bool on;
    int64_t maxr;
    int64_t u, minb;
    int64_t ring, d; /* ring = 1: the weights through a per-warp ring of d cp.async stages in shared memory */
} ExpertStream;
#define EXPERT_STREAM_MAXR 2048 /* a decode step of 256 tokens x 8 experts: ~8 rows an expert */

static bool expert_stream_params(Gen *G, ExpertStream *p) {
    *p = (ExpertStream){true, EXPERT_STREAM_MAXR, 4, 1, 1, 8};
    const ExpertKey keys[] = {{"maxr", 1, 1LL << 30, 0, &p->maxr}, {"u", 1, 8, 0, &p->u}, {"minb", 1, 4, 0, &p->minb},
                              {"ring", 0, 1, 0, &p->ring}, {"d", 4, 8, 1u << 4 | 1u << 6 | 1u << 8, &p->d}};
    int level;
    if (!expert_env(G, "DSCC_EXPERT_V2", G->tune->expert_v2, 0, 1, keys, (int)(sizeof keys / sizeof keys[0]),
                    "0, 1, or comma-separated maxr=N, u=1..8, minb=1..4, ring=0|1, d=4|6|8", &level))
        return false;
    p->on = level > 0;
    return true;
}

/* The stream and TMA forms' WS(s, i): the scale i of weight s (0 or 1) of the nw weights of out. */
static const char *expert_ws(Gen *G, int nw, const ExpertOut *out) {
    return nw > 1 ? arena_printf(G->a, "((s) ? L%d(a, (i)) : L%d(a, (i)))", out[1].sws, out[0].sws) : arena_printf(G->a, "L%d(a, (i))", out[0].sws);
}

/* The stream and TMA forms' STORE(s, i, v): v into y of weight s at index i. */
static const char *expert_store(Gen *G, int nw, const ExpertOut *out) {
    return nw > 1 ? arena_printf(G->a, "((s) ? S%d(a, (i), (v)) : S%d(a, (i), (v)))", out[1].sy, out[0].sy)
                  : arena_printf(G->a, "S%d(a, (i), (v))", out[0].sy);
}

/* The stream form's phase over the nw weights of out (x in slot sx, its
 * scales sxs; the sort's counts sc, rows sp0, tiles of 32 s32): a persistent grid of 132 * minb blocks, run at R <= maxr routed rows. */
static void expert_stream(Gen *G, const ExpertStream *xs, const IrNode *n, int nw, const ExpertOut *out, int sx, int sxs, const char *src,
                          int sc, int sp0, int s32) {
    const IrNode *w = n->ops[2];
    int64_t E = w->type.dims[0].coeff, O = w->type.dims[1].coeff, I = w->type.dims[2].coeff;
    IrDim R = ir_type_numel(&n->ops[4]->type);
    const char *entry = arena_printf(G->a, "p%d_fp8_expert_stream", G->nphases);
    cg_mma_helpers(G);
    CgDefine defs[] = {
        {"EX_E", arena_printf(G->a, "%lld", (long long)E)},
        {"EX_O", arena_printf(G->a, "%lldLL", (long long)O)},
        {"EX_K", arena_printf(G->a, "%lldLL", (long long)I)},
        {"EX_NW", arena_printf(G->a, "%d", nw)},
        {"EX_U", arena_printf(G->a, "%d", (int)xs->u)},
        {"EX_MINB", arena_printf(G->a, "%d", (int)xs->minb)},
        {"EX_RING", arena_printf(G->a, "%d", (int)xs->ring)},
        {"EX_D", arena_printf(G->a, "%d", (int)xs->d)},
        {"EX_X", arena_printf(G->a, "((const unsigned char *)a.t[%d])", sx)},
        {"EX_XS(m, kb)", cg_scale_at(G, sxs, "(m)", "(kb)")},
        {"EX_SRC(r)", src},
        {"EX_W(s)", nw > 1 ? arena_printf(G->a, "((const unsigned char *)((s) ? a.t[%d] : a.t[%d]))", out[1].sw, out[0].sw)
                           : arena_printf(G->a, "((const unsigned char *)a.t[%d])", out[0].sw)},
        {"EX_WS(s, i)", expert_ws(G, nw, out)},
        {"EX_STORE(s, i, v)", expert_store(G, nw, out)},
        {"EX_CNT", arena_printf(G->a, "((const int *)a.t[%d])", sc)},
        {"EX_PERM", arena_printf(G->a, "((const int *)a.t[%d])", sp0)},
        {"EX_TILES", arena_printf(G->a, "((const int *)a.t[%d])", s32)},
        {"EX_NTILES", arena_printf(G->a, "(EX_CNT[%lld])", (long long)(2 * EB_OF(E) + 1))},
    };
    sb_printf(&G->decl, "// fp8_expert_linear%s at <= %lld routed rows: each warp streams 16 rows of an expert's weight over all of K in 16-byte\n"
                        "// loads, mma m16n8k32 E4M3 with the weights as A and up to 32 of the expert's rows as B, a persistent grid\n"
                        "// (%s minb=%d)\n",
              nw > 1 ? " x 2 (gate and up)" : "", (long long)xs->maxr,
              xs->ring ? arena_printf(G->a, "ring of d=%d cp.async stages a warp", (int)xs->d) : arena_printf(G->a, "u=%d", (int)xs->u), (int)xs->minb);
    sb_puts(&G->decl, cg_kernel_instance(G->a, "expert_stream", entry, defs, (int)(sizeof defs / sizeof defs[0])));
    cg_phase(G, CG_LAUNCH_BLOCK, R, (int64_t)1 << 40, ir_dim_const(132 * (int)xs->minb), 1, xs->ring ? 8 * xs->d * 2048 : 0);
    CgPhase *f = &G->phases[G->nphases - 1];
    f->fn = entry;
    f->amax = xs->maxr;
}

/* The TMA form (codegen/kernels/expert_tma.cuh) of the grouped GEMM above
 * minr routed rows (every step's), the tile's phases at or below: by
 * default at level 3 (DSCC_EXPERT_TMA, read once at codegen: 0 the tile
 * at every row count, 1 or 2 levels 1, 2), but not where the GEMM tile is
 * mma.sync's (f32 storage's default: exact) unless DSCC_EXPERT_TMA has f32=1.
 * Its first GPU run (an H200, 2026-12-06)
 * hung: its warpgroups asked setmaxnreg for more registers than the block
 * holds (fixed, and now a static_assert in the file). On an H100
 * (2026-12-06, two V3 layers, bench_gpu) the 1,024-token prefill's
 * fp8_expert_linear took 3.074 ms at level 2 against the tile's 3.895
 * (level 1: 4.156 against 3.865), every GPU test passing, so level 2 is
 * the default; at decode too since (minr=1: batch 1 / 32 / 128
 * fp8_expert_linear 0.164 / 1.738 / 2.815 ms against the tile's 0.178 /
 * 1.980 / 3.176, the graphed step 1.258 / 3.003 / 4.170 against 1.280 /
 * 3.220 / 4.491; one H100 run). Level 2 (DSCC_EXPERT_TMA=2; expert_tma.cuh's XT_LVL)
 * stages the scales in shared memory by the producer and gathers and
 * stores whole sectors (an H100's ncu of level 1 at the 1,024-token
 * prefill: 65% of the stalls on the consumers' scattered 4-byte scale
 * loads); it needs the scales stored as f32 (always so today; else level
 * 1 is generated). Level 3 (DSCC_EXPERT_TMA=3, the default since one
 * H100 run, 2026-12-06: prefill fp8_expert_linear 2.967 against level
 * 2's 3.190 ms, decode 0.160 / 1.757 / 2.835 against 0.167 / 1.814 /
 * 2.907 at batch 1 / 32 / 128) is
 * level 2 with split units (expert_tma.cuh's XT_SPLIT): a unit a pass of
 * at most 128 mt rows, the passes of one weight tile adjacent units that
 * run side by side, so an expert of more rows than a pass reads its
 * weights from HBM once, not once a pass (at the 1,024-token prefill,
 * 1 to ~300 rows an expert: up to 3 passes; level 1's ncu counted ~1.5
 * GB more DRAM reads for gate and up than their weights hold, which such
 * repeats would explain); the sort lists the passes.
 * DSCC_EXPERT_TMA is "0", "1", "2", "3", or comma-separated
 * items: a level first (1, 2 or 3; 3 without it), then any of
 * ef=0|1 (levels 2 and 3: the weights' TMA loads under an L2 evict-first
 * policy, so that the stream of weights read once does not push out the
 * rows of x the units of an expert read again; default 1: an H100's ncu
 * of level 1 counted ~1.5 GB more DRAM reads than gate and up's weights
 * hold; level 3 leaves out the hint where other units read the tile),
 * f32=0|1 (1: the TMA form also at f32 storage, where the exact
 * mma.sync tile runs by default; default 0, whatever else is set),
 * minr=N (N >= 1: the tile at up to N routed rows; default
 * EXPERT_TMA_MINR, minr=2048 the old default: decode on the tile), mt=1|2 (row tiles of 64
 * a consumer warpgroup holds: 128 or 256 of an expert's rows a pass over
 * K, default 1), grid=N (1..1024 blocks, default 132: an H100's or
 * H200's SMs, the runtime caps it at the device's; fewer make each block
 * walk more units, which the emulator's test wants) and dyn=0|1 (level 3
 * only: 1 hands the units out through an atomic counter in the sort's
 * ints, each block's next one taken near the end of its current one, so
 * that the passes of a weight tile start together and read it from HBM
 * once; default 0, the static walk u += grid: an H100's ncu of level 3 at
 * the 1,024-token prefill counted ~4.6 GB of DRAM traffic for gate and up
 * against ~3.7 GB of weights, the blocks of a tile's passes drifting
 * apart over their ~40 units each) and kp=1..3 (levels 2 and 3: the
 * weights' boxes of kp adjacent K blocks issued at once, each weight row's
 * kp 128-byte blocks one burst to HBM; default 1: a box a stage, the same
 * ncu's gate and up at 68.6% of DRAM bandwidth). */
typedef struct {
    bool on;
    int lvl; /* 1: the first form; 2: scales staged by the producer, rows gathered in whole sectors; 3: 2 with split units */
    int64_t minr;
    int64_t mt, grid;
    int64_t ef;  /* level 2: the weights' TMA loads under an L2 evict-first policy */
    int64_t dyn; /* level 3: dynamic units (an atomic counter) */
    int64_t kp;  /* levels 2 and 3: the weights' boxes of kp adjacent K blocks issued at once */
    int64_t bn;  /* levels 2 and 3: outputs of a unit's weight tile, 128 or 256 (two 128-column halves, x read once for both) */
    int64_t f32; /* 1: the TMA form also where the GEMM tile is mma.sync's (f32 storage's default); 0: the tile there */
    int64_t epi; /* levels 2 and 3: gate and up's phase stores silu(gate) x up quantized (the chained down's input) itself */
} ExpertTma;
#define EXPERT_TMA_MINR 1 /* every step of more than one routed row (minr=2048: decode steps on the tile, as before) */
#define EXPERT_TMA_DYN 0  /* dyn where not given: at level 3 with mt=1 (mt=2 spills with it) */
#define EXPERT_TMA_KP 1   /* kp where not given: with dyn (the static walk's producer spills with kp > 1) */
#define EXPERT_TMA_BN 256 /* bn where not given, at level 3 with mt=1, no dyn, kp=1 (else 128): a unit's weight tile of 256
                           * outputs, two halves on x's rows read once (the default since the ninth session: on an H200 the
                           * 1,024-token prefill 4.75 ms against 5.56 with bn=128, decode 2.24 / 3.06 against 2.70 / 3.66
                           * ms at batch 32 / 128, every bf16-storage GPU test passing); bn=128 the old units */

static bool expert_tma_params(Gen *G, ExpertTma *p) {
    *p = (ExpertTma){false, 3, EXPERT_TMA_MINR, 1, 132, 1, -1, -1, -1, 0, 0}; /* dyn, kp, bn: -1 until resolved */
    const ExpertKey keys[] = {{"minr", 1, 1LL << 30, 0, &p->minr}, {"mt", 1, 2, 0, &p->mt}, {"grid", 1, 1024, 0, &p->grid}, {"ef", 0, 1, 0, &p->ef},
                              {"dyn", 0, 1, 0, &p->dyn}, {"kp", 1, 3, 0, &p->kp}, {"bn", 128, 256, 0, &p->bn}, {"f32", 0, 1, 0, &p->f32},
                              {"epi", 0, 1, 0, &p->epi}};
    static const char usage[] = "0, 1, 2, 3, or comma-separated minr=N (N >= 1), mt=1|2, grid=1..1024, ef=0|1, dyn=0|1 (level 3), kp=1..3 "
                                "(levels 2, 3), bn=128|256 (levels 2, 3; bn=256 with mt=1, dyn=0, kp=1), f32=0|1 (the TMA form at f32 "
                                "storage too), epi=0|1 (levels 2, 3 with mt=1, dyn=0, kp=1), after a level 1|2|3 or alone";
    if (!expert_env(G, "DSCC_EXPERT_TMA", G->tune->expert_tma, 3, 3, keys, (int)(sizeof keys / sizeof keys[0]), usage, &p->lvl))
        return false;
    if (p->dyn > 0 && p->lvl != 3) {
        G->why = arena_printf(G->a, "DSCC_EXPERT_TMA is '%s': dyn=1 needs level 3; expected %s", G->tune->expert_tma, usage);
        return false;
    }
    if (p->dyn < 0) p->dyn = p->lvl == 3 && p->mt == 1 ? EXPERT_TMA_DYN : 0;
    if (p->kp < 0) p->kp = p->dyn ? EXPERT_TMA_KP : 1;
    if (p->bn < 0) p->bn = p->lvl == 3 && p->mt == 1 && !p->dyn && p->kp == 1 ? EXPERT_TMA_BN : 128;
    if (p->bn != 128 && (p->bn != 256 || p->lvl < 2 || p->mt != 1 || p->dyn > 0 || p->kp > 1)) {
        G->why = arena_printf(G->a, "DSCC_EXPERT_TMA is '%s': bn=%lld needs 128, or 256 at level 2 or 3 with mt=1, dyn=0, kp=1; expected %s",
                              G->tune->expert_tma, (long long)p->bn, usage);
        return false;
    }
    if (p->epi && (p->lvl < 2 || p->mt != 1 || p->dyn > 0 || p->kp > 1)) {
        G->why = arena_printf(G->a, "DSCC_EXPERT_TMA is '%s': epi=1 needs level 2 or 3 with mt=1, dyn=0, kp=1; expected %s",
                              G->tune->expert_tma, usage);
        return false;
    }
    if (p->kp > 1 && p->lvl < 2) {
        G->why = arena_printf(G->a, "DSCC_EXPERT_TMA is '%s': kp=%lld needs level 2 or 3; expected %s", G->tune->expert_tma,
                              (long long)p->kp, usage);
        return false;
    }
    /* without the wgmma tile (f32 storage's default: the exact mma.sync tile, gen.h's CgGenOptions.tile) the tile unless
     * f32=1: FP8 wgmma sums with fewer bits than f32 (e2e's and test_gpu_plan's f32 fixtures 1.07e-2 of the logits against
     * a 1e-4 bound on an H100 with the TMA form at every row count). Until the ninth session any DSCC_EXPERT_TMA set
     * turned it on there, so a timing switch such as 3,bn=256 failed those f32 checks (1.07e-2 again, on an H200) and
     * read as a fault of the switch; now only f32=1 does. */
    p->on = p->lvl > 0 && (G->wgmma || p->f32);
    return true;
}

/* XT_STORE2 of the TMA form (two bf16 values of an even index in one
 * 32-bit store) where one weight's y (the down's) is stored as bf16; NULL
 * (two XT_STOREs) otherwise: with gate and up the choice between their
 * packed stores cost the consumers 52 bytes of spill (ptxas, V3's shapes,
 * mt=2) where the scalar stores cost 4. */
static const char *expert_store2(Gen *G, int nw, const ExpertOut *out) {
    if (nw > 1 || strcmp(cg_stored_suffix(G, G->g->nodes[G->slots[out[0].sy].node]), "bf16") != 0) return NULL;
    return arena_printf(G->a, "(((unsigned *)a.t[%d])[(i) >> 1] = (unsigned)f2bf(v0) | (unsigned)f2bf(v1) << 16)", out[0].sy);
}

/* XT_STORE4 of the TMA form's level 2 (four values of an index i % 4 ==
 * 0 in one store: 8 bytes of bf16, 16 of f32), where every weight's y is
 * stored as bf16 or f32; NULL otherwise (the two-column stores). */
static const char *expert_store4(Gen *G, int nw, const ExpertOut *out) {
    const char *st[2] = {NULL, NULL};
    for (int k = 0; k < nw; k++) {
        const char *sfx = cg_stored_suffix(G, G->g->nodes[G->slots[out[k].sy].node]);
        if (!strcmp(sfx, "bf16"))
            st[k] = arena_printf(G->a, "((uint2 *)a.t[%d])[(i) >> 2] = make_uint2((unsigned)f2bf(v0) | (unsigned)f2bf(v1) << 16, "
                                       "(unsigned)f2bf(v2) | (unsigned)f2bf(v3) << 16)", out[k].sy);
        else if (!strcmp(sfx, "f32")) st[k] = arena_printf(G->a, "((float4 *)a.t[%d])[(i) >> 2] = make_float4(v0, v1, v2, v3)", out[k].sy);
        else return NULL;
    }
    return nw > 1 ? arena_printf(G->a, "do { if (s) %s; else %s; } while (0)", st[1], st[0]) : arena_printf(G->a, "do { %s; } while (0)", st[0]);
}

/* The address of x's f32 scale of row m, K block kb (slot s, as
 * cg_scale_at reads it), for the TMA form's level 2 to copy; NULL where
 * the scales are not stored as f32. */
static const char *expert_scale_ptr(Gen *G, int s, const char *m, const char *kb) {
    const IrNode *n = G->g->nodes[G->slots[s].node];
    IrDim nkb = n->type.dims[n->type.rank - 1], M;
    if (G->kblock && G->kblock[n->id] && ir_dim_div(ir_type_numel(&n->type), nkb, &M)) /* [kb][M] */
        return arena_printf(G->a, "((const float *)a.t[%d] + (long long)(%s) * %s + (%s))", s, kb, cg_dim(G, M), m);
    if (strcmp(cg_stored_suffix(G, n), "f32") != 0) return NULL;
    return arena_printf(G->a, "((const float *)a.t[%d] + (long long)(%s) * %s + (%s))", s, m, cg_dim(G, nkb), kb);
}

/* What the fused epilogue (epi=1) stores instead of gate and up: slots of
 * h's codes (quantize) and scales (act_scale), the weight silu is of. */
typedef struct {
    int sq, ss, gsel;
} ExpertEpi;

/* Whether gate and up (n, n2) feed only h = silu(gate) * up, whose only
 * readers are q = quantize(h, s) and s = act_scale(h) with 128-blocks,
 * which the down chained after them in this kernel (G->epi_down) reads:
 * then h, s and q are that down's input alone, and the TMA phase of the
 * pair may store q and s itself (the middle group's phase is then run
 * only at the tile's row counts: gen.c). Fills e with the slots. */
static bool expert_epi_match(Gen *G, const IrNode *n, const IrNode *n2, ExpertEpi *e) {
    const IrNode *d = G->epi_down;
    if (!d || !n2 || d->nops != 5) return false;
    const IrNode *q = d->ops[0], *sc = d->ops[1];
    if (q->op != IR_OP_QUANTIZE || sc->op != IR_OP_ACT_SCALE || q->ops[1] != sc || sc->ops[0] != q->ops[0]) return false;
    const IrNode *h = q->ops[0];
    if (h->op != IR_OP_MUL || ir_node_attr_int(q, "block", 0) != 128 || ir_node_attr_int(sc, "block", 0) != 128) return false;
    if (G->dtype[q->id] != IR_DT_FP8E4M3 || G->dtype[sc->id] != IR_DT_F32 || !ir_dim_eq(ir_type_numel(&h->type), ir_type_numel(&n->type)))
        return false;
    int gsel = -1;
    for (int k = 0; k < 2 && gsel < 0; k++) {
        const IrNode *si = h->ops[k], *up = h->ops[1 - k];
        if (si->op == IR_OP_SILU && ((si->ops[0] == n && up == n2) || (si->ops[0] == n2 && up == n))) gsel = si->ops[0] == n2;
    }
    if (gsel < 0) return false;
    const IrNode *si = h->ops[0]->op == IR_OP_SILU && h->ops[0]->ops[0] == (gsel ? n2 : n) ? h->ops[0] : h->ops[1];
    for (int i = 0; i < G->g->nnodes; i++) { /* gate, up, silu, h: no other reader (they are not stored where this runs) */
        const IrNode *r = G->g->nodes[i];
        for (int k = 0; k < r->nops; k++) {
            const IrNode *o = r->ops[k];
            if ((o == n || o == n2) && r != si && r != h) return false;
            if (o == si && r != h) return false;
            if (o == h && r != q && r != sc) return false;
            if (o == q && r != d) return false;
        }
    }
    *e = (ExpertEpi){cg_slot_value(G, q), cg_slot_value(G, sc), gsel};
    return true;
}

/* The TMA form's phase over the nw weights of out (x in slot sx, its
 * scales sxs, src its row of a routed row r; the sort's ints sc, rows
 * sp0): a persistent grid of xt->grid blocks of 384 threads, run above amin
 * routed rows, its weights through tensor maps the runtime makes. With ep
 * (gate and up) at level 2: the fused epilogue; whether it was made. */
static bool expert_tma(Gen *G, const ExpertTma *xt, int64_t amin, const IrNode *n, int nw, const ExpertOut *out, int sx, int sxs,
                       const char *src, int sc, int sp0, const char *passes, const ExpertEpi *ep) {
    const IrNode *w = n->ops[2];
    int64_t E = w->type.dims[0].coeff, O = w->type.dims[1].coeff, I = w->type.dims[2].coeff;
    IrDim R = ir_type_numel(&n->ops[4]->type);
    CgTmaMaps *t = arena_alloc(G->a, sizeof *t);
    *t = (CgTmaMaps){nw, {out[0].sw, nw > 1 ? out[1].sw : out[0].sw}, {E * O, E * O}, {I, I}, cg_slot_scratch(G, n, ir_dim_const(32)), 0};
    const char *entry = arena_printf(G->a, "p%d_fp8_expert_tma", G->nphases);
    /* level 2 copies the scales: their addresses (level 1 where a scale is not stored as f32) */
    const char *xsp = expert_scale_ptr(G, sxs, "(m)", "(kb)"), *wsp = NULL;
    bool wf32 = true;
    for (int k = 0; k < nw; k++) wf32 = wf32 && !strcmp(cg_stored_suffix(G, G->g->nodes[G->slots[out[k].sws].node]), "f32");
    if (wf32)
        wsp = nw > 1 ? arena_printf(G->a, "((const float *)((s) ? a.t[%d] : a.t[%d]) + (i))", out[1].sws, out[0].sws)
                     : arena_printf(G->a, "((const float *)a.t[%d] + (i))", out[0].sws);
    const int lvl = xt->lvl >= 2 && xsp && wsp ? 2 : 1, split = xt->lvl == 3, epi = ep && lvl == 2, wide = lvl == 2 && xt->bn == 256 && !epi;
    const int64_t nkbh = (O + 127) / 128; /* epi: h's 128-column blocks (the down's K blocks) */
    CgDefine defs[] = {
        {"XT_LVL", arena_printf(G->a, "%d", lvl)},
        {"XT_SPLIT", split ? "1" : "0"},
        {"XT_DYN", split && xt->dyn ? "1" : "0"},
        {"XT_KP", arena_printf(G->a, "%d", lvl == 2 ? (int)xt->kp : 1)},
        {"XT_WIDE", wide ? "1" : "0"},
        {"XT_EPI", epi ? "1" : "0"},
        {"XT_EPI_G", epi ? arena_printf(G->a, "%d", ep->gsel) : "0"},
        {"XT_QSTORE(i, v)", epi ? arena_printf(G->a, "S%d(a, (i), (v))", ep->sq) : "((void)0)"},
        {"XT_QSTORE2(i, v0, v1)", epi ? arena_printf(G->a, "(((unsigned short *)a.t[%d])[(i) >> 1] = (unsigned short)(fe4m3(v0) | fe4m3(v1) << 8))", ep->sq)
                                      : "((void)0)"},
        {"XT_SSTORE(r, kb, v)", epi ? arena_printf(G->a, "S%d(a, (r) * %lldLL + (kb), (v))", ep->ss, (long long)nkbh) : "((void)0)"},
        {"XT_CTR", split && xt->dyn ? arena_printf(G->a, "((int *)a.t[%d] + %lld)", sc, (long long)EXPERT_CTR(E)) : "((int *)0)"},
        {"XT_PASSES", split ? passes : "((const int *)0)"},
        {"XT_NPASS", split ? arena_printf(G->a, "(XT_CNT[%lld])", (long long)EXPERT_NPASS(E)) : "0"},
        {"XT_EF", lvl == 2 && xt->ef ? "1" : "0"},
        {"XT_XSP(m, kb)", lvl == 2 ? xsp : "((const float *)0)"},
        {"XT_WSP(s, i)", lvl == 2 ? wsp : "((const float *)0)"},
        {"XT_E", arena_printf(G->a, "%lld", (long long)E)},
        {"XT_N", arena_printf(G->a, "%lldLL", (long long)O)},
        {"XT_K", arena_printf(G->a, "%lldLL", (long long)I)},
        {"XT_NW", arena_printf(G->a, "%d", nw)},
        {"XT_MT", arena_printf(G->a, "%d", (int)xt->mt)},
        {"XT_MAPS", arena_printf(G->a, "((const unsigned char *)a.t[%d])", t->maps)},
        {"XT_X", arena_printf(G->a, "((const unsigned char *)a.t[%d])", sx)},
        {"XT_SRC(r)", src},
        {"XT_XS(m, kb)", cg_scale_at(G, sxs, "(m)", "(kb)")},
        {"XT_WS(s, i)", expert_ws(G, nw, out)},
        {"XT_STORE(s, i, v)", expert_store(G, nw, out)},
        {"XT_CNT", arena_printf(G->a, "((const int *)a.t[%d])", sc)},
        {"XT_PERM", arena_printf(G->a, "((const int *)a.t[%d])", sp0)},
        {"XT_ORD", arena_printf(G->a, "(XT_CNT + %lld)", (long long)EXPERT_ORD(E))},
        {"XT_STORE2(s, i, v0, v1)", expert_store2(G, nw, out)}, /* last two: left out where NULL */
        {"XT_STORE4(s, i, v0, v1, v2, v3)", lvl == 2 ? expert_store4(G, nw, out) : NULL},
    };
    int nd = (int)(sizeof defs / sizeof defs[0]);
    if (!defs[nd - 1].value) nd--;
    if (!defs[nd - 1].value) nd--;
    else if (!defs[nd - 2].value) defs[nd - 2] = defs[nd - 1], nd--;
    sb_printf(&G->decl, "// fp8_expert_linear%s above %lld routed rows: a block per (expert, 128 outputs) takes all of the expert's\n"
                        "// rows, %d a pass; the weights by TMA, the rows gathered by cp.async, into a %d-stage mbarrier ring; a producer\n"
                        "// warpgroup, two wgmma m64n128k32 E4M3 consumer warpgroups; a persistent grid, the longest expert first\n"
                        "// (level %d%s%s%s%s%s%s%s)\n",
              nw > 1 ? " x 2 (gate and up)" : "", (long long)amin, 128 * (int)xt->mt, xt->mt == 2 || wide || epi ? 4 : 6, lvl,
              wide ? "; units of 256 outputs, two 128-column halves on the same rows of x" : "",
              epi ? "; gate's and up's tile j a unit, silu(gate) x up quantized in its epilogue: the down's input" : "",
              lvl == 2 ? ": the scales staged by the producer, the rows gathered in whole sectors" : "",
              split ? "; split units: a block a pass, the passes of a weight tile side by side" : "",
              split && xt->dyn ? ", handed out by an atomic counter" : "",
              lvl == 2 && xt->kp > 1 ? arena_printf(G->a, ", the weights' boxes of %d K blocks issued together", (int)xt->kp) : "",
              lvl == 2 && xt->ef ? ", the weights evict-first in L2" : "");
    sb_puts(&G->decl, cg_kernel_instance(G->a, "expert_tma", entry, defs, nd));
    int64_t stages = xt->mt == 2 || wide || epi ? 4 : 6, smem = stages * 16384 * (1 + wide + epi + xt->mt) + 16 * stages + 1024; /* XT_SMEM */
    if (lvl == 2) smem += 4 * stages * (128 * xt->mt + 4) + 4 * 128 * xt->mt; /* the stages' scales, the pass's rows */
    if (split && xt->dyn) smem += 128;                                          /* XT_UQB: the unit queue */
    cg_phase(G, CG_LAUNCH_BLOCK, R, (int64_t)1 << 40, ir_dim_const((int)xt->grid), 1, smem);
    CgPhase *f = &G->phases[G->nphases - 1];
    f->fn = entry;
    f->amin = amin;
    f->threads = 384; /* a producer warpgroup and two consumer warpgroups */
    f->tmaps = t;
    return epi;
}

/* Where the TMA form's level 3 passes are (an int * expression): slot s32,
 * after the stream form's 3 R ints where it is on. */
static const char *expert_passes(Gen *G, int s32, bool stream, IrDim R) {
    if (s32 < 0) return NULL;
    return stream ? arena_printf(G->a, "((int *)a.t[%d] + 3LL * %s)", s32, cg_dim(G, R)) : arena_printf(G->a, "((int *)a.t[%d])", s32);
}

/* fp8_expert_linear as a grouped tensor-core GEMM (see the file comment);
 * with n2 (gate and up: the same input and routing, weights alike), both
 * in one kernel: one sort, and the tile phase's blocks cover the output
 * tiles of both weights (the weight a block takes: its tile / nt), so a
 * decode step launches two kernels, not six. */
static bool expert_fp8_grouped(Gen *G, const IrNode *n, const IrNode *n2, int64_t I) {
    const IrNode *x = n->ops[0], *w = n->ops[2], *idx = n->ops[4];
    int64_t E = w->type.dims[0].coeff, nw = n2 ? 2 : 1;
    bool bcast = x->type.rank == 2;
    IrDim R = ir_type_numel(&idx->type);
    int sx = cg_slot_value(G, x), sxs = cg_slot_value(G, n->ops[1]), si = cg_slot_value(G, idx);
    ExpertOut out[2] = {{cg_slot_value(G, w), cg_slot_value(G, n->ops[3]), cg_slot_value(G, n), -1}, {0, 0, 0, -1}};
    if (n2) out[1] = (ExpertOut){cg_slot_value(G, n2->ops[2]), cg_slot_value(G, n2->ops[3]), cg_slot_value(G, n2), -1};
    int64_t EB = EB_OF(E);                                   /* buckets: the experts, then the slots of id -1 */
    ExpertStream xs;
    ExpertTma xt;
    if (!expert_stream_params(G, &xs) || !expert_tma_params(G, &xt)) return false;
    if (expert_scan_env(G->tune) < 0) {
        G->why = arena_printf(G->a, "DSCC_EXPERT_SCAN is '%s': expected 0..64", G->tune->expert_scan);
        return false;
    }
    int sc, sp0, st, s32;
    const char *Ks = cg_dim(G, idx->type.dims[1]);
    const bool xsplit = xt.on && xt.lvl == 3; /* the TMA form's passes listed by the sort (at most R: a row each at least) */
    const bool xdyn = xsplit && xt.dyn;        /* ... and its dynamic units' counter, after their count */
    if (G->sorted == idx) { /* an earlier phase of this kernel sorted these rows (the down beside gate and up): reused */
        sc = G->sort_slots[0], sp0 = G->sort_slots[1], st = G->sort_slots[2], s32 = G->sort_slots[3];
    } else {
        /* per bucket: row count, first sorted row; the tile counts; the TMA form's bucket list (and its count of passes) */
        sc = cg_slot_scratch(G, n, ir_dim_const(xt.on ? EXPERT_NPASS(E) + xsplit + xdyn : 2 * EB + (xs.on ? 2 : 1)));
        sp0 = cg_slot_scratch(G, n, R);                       /* sorted position -> routed row */
        st = cg_slot_scratch(G, n, R);                        /* tile -> its first sorted position (tiles <= R) */
        IrDim R7 = R;
        R7.coeff *= (xs.on ? 3 : 0) + (xsplit ? 4 : 0);
        /* the stream form's tiles of 32: (start, expert, rows); after them the TMA form's passes (4 ints each) */
        s32 = xs.on || xsplit ? cg_slot_scratch(G, n, R7) : -1;
        expert_sort(G, E, R, si, sc, sp0, st, xs.on ? s32 : -1, n2 != NULL, xt.on, xsplit ? 128 * (int)xt.mt : 0,
                    expert_passes(G, s32, xs.on, R), xdyn);
        G->sorted = idx;
        G->sort_slots[0] = sc, G->sort_slots[1] = sp0, G->sort_slots[2] = st, G->sort_slots[3] = s32;
    }
    IrDim O = w->type.dims[1];
    int64_t nt = (O.coeff + 127) / 128, ntw = nw * nt, nkb = (I + 127) / 128;
    bool stream = xs.on && I % 16 == 0 && O.coeff * I < (1LL << 40);
    const char *src = bcast ? arena_printf(G->a, "((r) / %s)", Ks) : "(r)";
    if (stream) expert_stream(G, &xs, n, (int)nw, out, sx, sxs, src, sc, sp0, s32);
    /* the TMA form above minr rows (and above the stream form's), the tile's phases between */
    bool tma = xt.on && I % 16 == 0 && E * O.coeff < (1LL << 31);
    int64_t tmin = stream && xs.maxr > xt.minr ? xs.maxr : xt.minr;
    ExpertEpi ep;
    bool epi = tma && xt.epi && expert_epi_match(G, n, n2, &ep); /* silu(gate) x up quantized in the TMA phase */
    if (tma) epi = expert_tma(G, &xt, tmin, n, (int)nw, out, sx, sxs, src, sc, sp0, expert_passes(G, s32, xs.on, R), epi ? &ep : NULL);
    int tile0 = G->nphases; /* the tile's phases from here: they run only above the stream form's rows, up to the TMA form's */
    /* the most parts any step takes: R = 1, 2 tiles at most; none when the stream form takes every step that would split */
    int64_t parts = stream && xs.maxr >= 64 ? 1 : cg_k_splits(1, 2 * ntw, nkb);
    if (parts > 1)
        for (int k = 0; k < nw; k++) out[k].sp = cg_slot_scratch(G, k ? n2 : n, ir_dim_const(parts * 64 * O.coeff));
    if (parts > 1 && !(G->ldr.data && strstr(G->ldr.data, "cg_k_splits("))) /* once per module (a chained down may split too) */
        sb_puts(&G->ldr, "__device__ __forceinline__ " CG_K_SPLITS_FN(CG_QUOTE) "\n");
    for (int split = 0; split < (parts > 1 ? 2 : 1); split++) {
        /* named (pN_fp8_expert_tile[_split]) so that a profiler's kernel filter and a trace tell it from other groups' pN */
        const char *entry = arena_printf(G->a, "p%d_fp8_expert_tile%s", G->nphases, split ? "_split" : "");
        sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // %s\n", entry,
                  split ? "fp8_expert_linear, phase 2, K split between blocks (at most 64 routed rows): partial tiles to scratch"
                        : "fp8_expert_linear, phase 2: tensor-core FP8 tile per (expert tile of 64 rows, 128 outputs)");
        sb_printf(&G->decl, "    extern __shared__ __align__(16) unsigned char sm[];\n"
                            "    __shared__ int srow[64], yrow[64];\n"
                            "    const int E = %lld, EB = E + 1;\n"
                            "    const int *C = (const int *)a.t[%d], *P = (const int *)a.t[%d], *T = (const int *)a.t[%d];\n"
                            "    const long long nt = (%s + 127) / 128, ntw = %lldLL * nt;  // output tiles of a weight, of the kernel's %lld\n",
                  (long long)E, sc, sp0, st, cg_dim(G, O), (long long)nw, (long long)nw);
        if (split)
            sb_printf(&G->decl, "    const long long R = %s, tmax = (R + 63) / 64 + (EB < R ? EB : R);  // the grid's tiles\n"
                                "    const long long ns = cg_k_splits(R, tmax * ntw, %lldLL), kper = (%lldLL + ns - 1) / ns;\n"
                                "    const long long otw = blockIdx.x %% ntw, t = blockIdx.x / ntw %% tmax, kpart = blockIdx.x / ntw / tmax;\n",
                      cg_dim(G, R), (long long)nkb, (long long)nkb);
        else sb_puts(&G->decl, "    const long long otw = blockIdx.x % ntw, t = blockIdx.x / ntw;\n");
        sb_printf(&G->decl, "    const long long ot = otw %% nt, wsel = otw / nt;  // the output tile of weight wsel\n"
                            "    if (t >= C[2 * EB]) return;  // past the tiles this step has\n"
                            "    const int start = T[t];\n"
                            "    const long long e = (long long)L%d(a, P[start]), b = e < 0 ? E : e;\n"
                            "    const int nr = C[EB + b] + C[b] - start < 64 ? C[EB + b] + C[b] - start : 64;\n"
                            "    if (threadIdx.x < 64) {\n"
                            "        const int r = (int)threadIdx.x < nr ? P[start + threadIdx.x] : -1;\n"
                            "        yrow[threadIdx.x] = r;\n"
                            "        srow[threadIdx.x] = r < 0 ? -1 : %s;\n"
                            "    }\n"
                            "    __syncthreads();\n"
                            "    if (e < 0) {  // slots of id -1: zeros, nothing computed\n"
                            "        const long long O = %s;\n"
                            "        for (int k = threadIdx.x; k < nr * 128; k += blockDim.x) {\n"
                            "            const long long r = yrow[k / 128], o = ot * 128 + k %% 128;\n"
                            "            if (o < O) {\n"
                            "                if (wsel == 0) %s;\n",
                  si, bcast ? arena_printf(G->a, "(int)(r / %s)", Ks) : "r", cg_dim(G, O), expert_zero(G, &out[0], split));
        if (n2) sb_printf(&G->decl, "                else %s;\n", expert_zero(G, &out[1], split));
        sb_puts(&G->decl, "            }\n        }\n        return;\n    }\n");
        for (int k = 0; k < nw; k++) {
            sb_printf(&G->decl, "    %sif (wsel == %d) {\n", k ? "else " : "", k);
            const ExpertOut *o = &out[k];
            if (split)
                cg_mma_tile_part(G, false, false, sx, sxs, o->sw, o->sws, o->sy, I, cg_dim(G, O), "kpart * kper",
                                 "kpart * kper + kper < nkb ? kpart * kper + kper : nkb", o->sp); /* yrow < R <= 64: [part][row][O] */
            else cg_mma_tile(G, false, false, sx, sxs, o->sw, o->sws, o->sy, I, cg_dim(G, O));
            sb_puts(&G->decl, "    }\n");
        }
        sb_puts(&G->decl, "}\n");
        /* blocks: (row tiles of 64 + the experts that have rows) x the output tiles of the nw weights */
        cg_phase(G, CG_LAUNCH_BLOCK, R, 64, ir_dim_const(ntw), 1, CG_TILE_SMEM(G));
        G->phases[G->nphases - 1].fn = entry;
        G->phases[G->nphases - 1].plus = EB;
        if (parts > 1) cg_phase_k(G, split ? CG_ITEMS_K_SPLIT : CG_ITEMS_K_WHOLE, nkb);
    }
    if (parts > 1) expert_k_sum(G, R, O.coeff, nt, ntw, nkb, EB, out, nw);
    for (int p = tile0; p < G->nphases; p++) {
        if (stream) G->phases[p].amin = xs.maxr;
        if (tma) G->phases[p].amax = tmin;
    }
    if (epi) { /* (level 2 generated: the scales stored as f32; tmin: the stream form's rows too, which store gate and up) */
        G->epi_q = G->epi_down->ops[0];
        G->epi_gu[0] = n, G->epi_gu[1] = n2, G->epi_tmin = tmin, G->epi_R = R;
    }
    return true;
}

bool cg_expert_grouped(const Gen *G, const IrNode *n) {
    if (n->op != IR_OP_FP8_EXPERT_LINEAR) return false;
    const IrNode *x = n->ops[0], *w = n->ops[2], *idx = n->ops[4];
    return w->type.rank == 3 && idx->type.rank == 2 && ir_dim_is_const(w->type.dims[2]) && w->type.dims[2].coeff <= 12288 &&
           x->op != IR_OP_KV_CACHE && ir_dim_is_const(w->type.dims[0]) && w->type.dims[0].coeff <= 4096 && ir_dim_is_const(w->type.dims[1]) &&
           G->dtype[x->id] == IR_DT_FP8E4M3 && G->dtype[w->id] == IR_DT_FP8E4M3;
}

bool cg_expert_gemm(Gen *G, const IrNode *n, bool fp8) {
    const IrNode *x = n->ops[0], *w = n->ops[fp8 ? 2 : 1], *idx = n->ops[fp8 ? 4 : 2];
    if (w->type.rank != 3 || idx->type.rank != 2 || !ir_dim_is_const(w->type.dims[2]) || w->type.dims[2].coeff > 12288) {
        G->why = "expert weights must be [E, O, I] with I <= 12288";
        return false;
    }
    int64_t I = w->type.dims[2].coeff;
    if (fp8 && cg_expert_grouped(G, n))
        return expert_fp8_grouped(G, n, G->pair && G->pair[n->id] >= 0 ? G->g->nodes[G->pair[n->id]] : NULL, I);
    bool bcast = x->type.rank == 2;
    IrDim R = ir_type_numel(&idx->type);
    int sx = cg_slot_value(G, x), sw = cg_slot_value(G, w), si = cg_slot_value(G, idx), sy = cg_slot_value(G, n);
    int sxs = fp8 ? cg_slot_value(G, n->ops[1]) : 0, sws = fp8 ? cg_slot_value(G, n->ops[3]) : 0;
    cg_head_as(G, fp8 ? "fp8_expert_rows" : "expert_rows",
               fp8 ? "fp8_expert_linear: one block per routed row and 64 outputs" : "expert_linear: one block per routed row and 64 outputs");
    StrBuf *b = &G->decl;
    sb_printf(b, "    extern __shared__ float xr[];\n"
                 "    const long long Ks = %s, I = %lldLL, O = %s, E = %s, nkb = (I + 127) / 128, nob = (O + 127) / 128;\n"
                 "    const long long r = blockIdx.x / ((O + 63) / 64), o0 = blockIdx.x %% ((O + 63) / 64) * 64;  // 64 outputs of one row\n"
                 "    if (r >= %s) return;\n"
                 "    const long long src = %s;\n"
                 "    const float ef = L%d(a, r);\n"
                 "    if (ef == -1.0f) {  // a slot whose expert is elsewhere: zeros, nothing computed\n"
                 "        for (long long o = o0 + threadIdx.x; o < O && o < o0 + 64; o += blockDim.x) S%d(a, r * O + o, 0.0f);\n"
                 "        return;\n"
                 "    }\n"
                 "    if (!(ef >= 0.0f && ef < (float)E)) {\n        if (threadIdx.x == 0) fail(a, ef);\n        return;\n    }\n"
                 "    const long long e = (long long)ef;\n"
                 "    for (long long k = threadIdx.x; k < I; k += 256) xr[k] = L%d(a, src * I + k);\n"
                 "    __syncthreads();\n"
                 "    const int lane = LANE();\n"
                 "    for (long long o = o0 + (threadIdx.x >> 5); o < O && o < o0 + 64; o += 8) {\n"
                 "        const long long wb = (e * O + o) * I;\n"
                 "        float acc = 0.0f;\n",
              cg_dim(G, idx->type.dims[1]), (long long)I, cg_dim(G, w->type.dims[1]), cg_dim(G, w->type.dims[0]), cg_dim(G, R),
              bcast ? "r / Ks" : "r", si, sy, sx);
    (void)sws;
    if (fp8)
        sb_printf(b, "        for (long long kb = 0; kb < nkb; kb++) {\n"
                     "            float part = 0.0f;\n"
                     "            const long long end = kb * 128 + 128 < I ? kb * 128 + 128 : I;\n"
                     "            for (long long k = kb * 128 + lane; k < end; k += 32) part += xr[k] * L%d(a, wb + k);\n"
                     "            acc += part * L%d(a, src * nkb + kb) * L%d(a, (e * nob + o / 128) * nkb + kb);\n"
                     "        }\n",
                  sw, sxs, sws);
    else
        sb_printf(b, "        for (long long k = lane; k < I; k += 32) acc += xr[k] * L%d(a, wb + k);\n", sw);
    sb_printf(b, "        acc = wsum(acc);\n        if (lane == 0) S%d(a, r * O + o, acc);\n    }\n}\n", sy);
    cg_phase(G, CG_LAUNCH_BLOCK, R, 1, w->type.dims[1], 64, I * 4);
    return true;
}

