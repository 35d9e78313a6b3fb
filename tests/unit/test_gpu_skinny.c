/* test_gpu_skinny.c — the skinny-M FP8 linear (codegen/kernels/gemm_skinny2.cuh,
 * gemm_skinny.cuh and gemm_skinny_bulk.cuh) against the CPU executor, at decode row counts
 * M = 1, 3, 13, 32 (the last as B = 2 rows of S = 16: M is a product of
 * symbols) on shapes whose
 * K is no multiple of 1024 and whose N is no multiple of a block's rows:
 * kv_a's N = 576 (K = 1536), q_a + kv_a's N = 2112 (K = 512), a ragged
 * N = 100 with K = 720 (a last K block of 80, a last 8-row group of 4), and
 * N = 4224 (two 8-row groups a warp). K split over clusters of CTAs
 * (SK_SPLIT, summed through distributed shared memory): the default
 * choice for N = 40, K = 4096 (5 column blocks: a cluster of 4), and
 * DSCC_SKINNY's split=3, 4, 8 on ragged shapes where some warps get no K
 * block, at M = 1, 3, 8, 9, 17, 32 (the instances for M <= 8 and above);
 * a CTA's part left out of the sum shows as an error of the size of y.
 * A malformed DSCC_SKINNY stops codegen with a message. Exits 77
 * (skipped) without a GPU; emu.test_gpu_skinny runs it on the emulated
 * device.
 *
 * Each graph is `silu(linear(x, w))` through fp8-quant, so the linear is
 * act_scale -> quantize -> fp8_linear as in the model. The CPU takes each
 * value the GPU stored before it computes the next op, so the fp8_linear
 * is checked on exactly the FP8 codes and scales the kernel read. Bounds,
 * rel L2 of y: 4e-3 with bf16 storage (the GPU rounds y to bf16, 2^-9),
 * 1e-5 with f32 storage (FP8 products are exact, only the order of the
 * f32 sums differs). The test also checks that the skinny phase is the one
 * that ran: the program's FP8 linear runs it, and not the tile, at these M;
 * with DSCC_SKINNY_V2=1 (or DSCC_SKINNY's v2=1; BF16 linears by default) at
 * M <= 8 it is gemm_skinny2.cuh's (a persistent grid streaming through a
 * cp.async ring), and for FP8 at M <= 16 too, the tile above; else
 * gemm_skinny.cuh's to 32 rows. The cluster K splits run with
 * DSCC_SKINNY_MAX=32. N = 4000 with K = 2960 (500 column groups over 250
 * blocks: two groups a block of two stages each, the ring running on from
 * one group to the next through all three slots, a last K block of 16
 * bytes), N = 40 with K = 4096, and the latter at u=1 (four stages a
 * group) check the persistent grid; the same at DSCC_SKINNY_V2=0 checks the form
 * before it. A malformed DSCC_SKINNY_V2 stops codegen too. BF16 linears
 * (the MoE router's f32 form and a ragged bf16 one) run the same two
 * kernels with SK_BF16 (mma m16n8k16 BF16, no scales), bound 4e-3: narrow
 * ones on gemm_skinny2.cuh by default, on gemm_skinny.cuh's K split with
 * DSCC_SKINNY_BF16_SPLIT=1, a wide one (1,100 rows) on gemm_skinny2.cuh.
 * DSCC_SKINNY_MAX=16 hands M = 17 to the tile; a malformed one stops codegen.
 * gemm_skinny_bulk.cuh (DSCC_SKINNY_BULK=1, DSCC_SKINNY's bulk=1): hopper.cuh's
 * 1-D bulk copy on its own (test_bulk_copy: the bytes where they belong;
 * on the emulated device a count the mbarrier does not expect, a misaligned
 * address, a count no multiple of 16 and a copy past the shared memory
 * fail the launch, naming the fault), then the GEMM (test_bulk). The pipelined form's cluster K split
 * (DSCC_SKINNY_PSPLIT=1, test_pipe_split: clusters of 2 and 4 at M = 1, 2, 4, 8; test_pipe_split_v3: the split V3's
 * shapes get) and its row kernel folded in (DSCC_SKINNY_FOLD=1, test_fold: at M <= 4 the linear computes x's norm,
 * silu * mul, codes and scales itself and the row kernel launches nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/gen_internal.h" /* cg_skinny_groups: the default rows a column group */
#include "codegen/kernels.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

/* What take_gpu gathers over a run; each error a rel L2 of the GPU's stored value against the CPU's from the same
 * inputs, the largest of its kind. */
typedef struct {
    const IrGraph *g;
    GpuExec *gx;
    IrOp op;    /* the linears counted: IR_OP_FP8_LINEAR, or IR_OP_LINEAR for the BF16 form */
    bool both;  /* fp8_linears and linears alike (a graph of both) */
    double err; /* the linears' */
    int linears;
    double qerr, serr, aerr; /* the quantizes', the act_scales', the adds' and reshapes' */
    uint64_t bits; /* the sum over those values of a hash of the GPU's bits: the same, whichever order they come in */
} Cmp;

/* After the CPU computes node id: its error against the GPU's stored value where it is one of Cmp's; then every
 * value continues from the GPU's. */
static void take_gpu(void *ctx, int id, float *c, int64_t nc) {
    Cmp *m = ctx;
    const IrNode *n = m->g->nodes[id];
    const float *gv = tu_gpu_value(m->gx, n, nc);
    if (!gv) return;
    const IrOp op = n->op;
    const bool lin = op == m->op || (m->both && (op == IR_OP_FP8_LINEAR || op == IR_OP_LINEAR));
    double *at = lin ? &m->err : op == IR_OP_QUANTIZE ? &m->qerr : op == IR_OP_ACT_SCALE ? &m->serr
                 : op == IR_OP_ADD || op == IR_OP_RESHAPE ? &m->aerr : NULL;
    if (at) {
        const double e = tu_rel_l2(gv, c, nc);
        *at = e > *at ? e : *at;
        m->linears += lin;
        uint64_t h = 1469598103934665603ull;
        for (int64_t i = 0; i < nc; i++) {
            uint32_t b;
            memcpy(&b, &gv[i], 4);
            h = (h ^ b) * 1099511628211ull;
        }
        m->bits += h;
    }
    memcpy(c, gv, sizeof(float) * (size_t)nc);
}

/* The pipelined form's K split in the last program phases_at generated (0: no pipelined form), and the one the case
 * must have (0: any) */
static int pipe_split_got, pipe_split;

/* The phases of the program's fp8_linear that run at M rows: whether the skinny one does, and whether any other does;
 * *split: the skinny form's K split (SK_SPLIT of its module). */
static void phases_at(const IrGraph *g, IrOp op, bool f32, int64_t B, int64_t S, bool *skinny, bool *tile, int *split, bool *v2, bool *pipe,
                      bool *bulk, int *bsplit) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgGenOptions o = {.tune = tu_tune(), .f32_storage = f32};
    CgProgram *p = cg_generate(a, d, g, &o);
    assert_non_null(p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "B")] = B, sym[ir_graph_find_dim(g, "S")] = S;
    *skinny = *tile = *v2 = *pipe = *bulk = false;
    *split = *bsplit = pipe_split_got = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        bool lin = false;
        for (int j = 0; j < ck->nnodes; j++) lin |= g->nodes[ck->nodes[j]]->op == op;
        if (!lin) continue;
        const char *m32 = strstr(p->modules[ck->module].source, "#define SK_MROWS 32\n"); /* the M > 8 instance's split */
        const char *sp = m32 ? strstr(m32, "#define SK_SPLIT ") : NULL;
        if (sp) *split = atoi(sp + strlen("#define SK_SPLIT "));
        const char *pm = strstr(p->modules[ck->module].source, "_skinny_pipe_m8\n"); /* the pipelined form's split */
        const char *ps = pm ? strstr(pm, "#define SK_SPLIT ") : NULL;
        if (ps) pipe_split_got = atoi(ps + strlen("#define SK_SPLIT "));
        const char *b1 = strstr(p->modules[ck->module].source, "_skinny_bulk_m1\n"); /* the bulk form's split (M = 1) */
        const char *bs = b1 ? strstr(b1, "#define SK_SPLIT ") : NULL;
        if (bs) *bsplit = atoi(bs + strlen("#define SK_SPLIT "));
        for (int ph = 0; ph < ck->nphases; ph++) {
            const CgPhase *f = &ck->phases[ph];
            if (cg_phase_items(f, sym) <= 0) continue;
            if (strstr(f->fn, "skinny")) *skinny = true;
            if (strstr(f->fn, "skinny2")) *v2 = true;
            if (strstr(f->fn, "skinny_pipe")) *pipe = true;
            if (strstr(f->fn, "skinny_bulk")) *bulk = true;
            if (!strstr(f->fn, "skinny") && f->amin > 0) *tile = true; /* the tile's phases run only above the skinny form's rows */
        }
    }
    arena_free(a);
}

/* gemm_skinny_bulk.cuh's K split the case must have (0: any) */
static int bulk_split;

/* The linear under test: FP8 (fp8-quant makes it an fp8_linear), or BF16 (bf16_y: bf16 y; else the router's form,
 * f32 y of f32 casts of bf16 x and w, which the GEMM reads as bf16) */
static enum { LIN_FP8, LIN_BF16, LIN_BF16_F32 } lin_kind;

/* y = silu(linear(x, w)) with w [N, K] through the fp8 pipeline (or lin_kind's), at each (B, S) of rows, on both
 * executors; the skinny form's K split must be `split` (0: any). */
static void check_split(int64_t N, int64_t K, bool f32, const int64_t (*rows)[2], int nrows, int split) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    const char *lin = lin_kind == LIN_BF16_F32 ? "linear(cast(x, f32), cast(w, f32))" : "linear(x, w)";
    char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, %lld];\nweight w: bf16[%lld, %lld] = \"w\";\noutput y = silu(%s);\n",
                             (long long)K, (long long)N, (long long)K, lin);
    const char *pipe = lin_kind == LIN_FP8 ? "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse" : "shape-infer,fold-constants,dce,cse,dce,fuse";
    IrGraph *g = tu_compile_src(a, d, "skinny.dsl", src, pipe);
    const IrOp op = lin_kind == LIN_FP8 ? IR_OP_FP8_LINEAR : IR_OP_LINEAR;
    uint64_t seed = tu_test_seed() + (uint64_t)(N * 131 + K);
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = 2, .max_seq = 32, .max_ctx = 32, .keep_all = true, .f32_storage = f32, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    Cmp m = {.g = g, .gx = gx, .op = op};
    CpuOptions co = {.threads = 4, .after_node = take_gpu, .hook_ctx = &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * (size_t)(64 * K));
    uint64_t rng = seed;
    for (int r = 0; r < nrows; r++) {
        int64_t B = rows[r][0], S = rows[r][1];
        tu_bf16_rows(xv, B * S, K, &rng); /* fresh values each step */
        CpuInput in[1] = {{"x", 3, {B, S, K}, xv}};
        m.linears = 0;
        m.err = 0.0;
        assert_true(gpu_exec_run(gx, in, 1, d));
        assert_true(cpu_exec_run(cx, in, 1, d));
        bool skinny, tile, v2, piped, bulk;
        int sp, bsp;
        phases_at(g, op, f32, B, S, &skinny, &tile, &sp, &v2, &piped, &bulk, &bsp);
        fprintf(stderr, "N %lld, K %lld, M %lld (%lld x %lld), %s storage: %s rel L2 %.2e%s, K split %d\n", (long long)N, (long long)K,
                (long long)(B * S), (long long)B, (long long)S, f32 ? "f32" : "bf16", op == IR_OP_LINEAR ? "bf16 linear" : "fp8_linear", m.err, skinny && !tile ? " (skinny form)" : "", sp);
        assert_int_equal(m.linears, 1);
        const char *e2 = getenv("DSCC_SKINNY_V2"), *e1 = getenv("DSCC_SKINNY"), *emax = getenv("DSCC_SKINNY_MAX");
        /* gemm_skinny_bulk.cuh at M <= 8: DSCC_SKINNY's bulk, else DSCC_SKINNY_BULK=1 for FP8 (these shapes' rings fit) */
        const char *eb = getenv("DSCC_SKINNY_BULK");
        const bool bulk_on = e1 && strstr(e1, "bulk=") ? strstr(e1, "bulk=1") != NULL : lin_kind == LIN_FP8 && eb && strcmp(eb, "1") == 0;
        assert_int_equal(bulk, bulk_on && B * S <= 8);
        if (bulk_on && bulk_split) assert_int_equal(bsp, bulk_split);
        /* gemm_skinny2.cuh: DSCC_SKINNY's v2, else DSCC_SKINNY_V2, else for BF16 only, and (unless
         * DSCC_SKINNY_BF16_SPLIT=1, opt-in) only where the 8-row groups number 132 or more */
        const char *ebs = getenv("DSCC_SKINNY_BF16_SPLIT");
        const bool narrow = (N + 7) / 8 < 132 && ebs && strcmp(ebs, "1") == 0;
        bool v2_on = e1 && strstr(e1, "v2=") ? strstr(e1, "v2=1") != NULL : e2 && *e2 ? strcmp(e2, "1") == 0 : lin_kind != LIN_FP8 && !narrow;
        /* the tile above `top` rows: DSCC_SKINNY_MAX, else 16 for FP8 on gemm_skinny2.cuh, else 32 */
        const int64_t top = emax ? atoi(emax) : lin_kind == LIN_FP8 && v2_on ? 16 : CG_SKINNY_M;
        assert_true(B * S <= top ? skinny && !tile : tile && !skinny);
        /* gemm_skinny2.cuh at M <= 8, and at M <= 16 when the form stops there (these shapes' 16 rows of x fit) */
        assert_int_equal(v2, v2_on && ((B * S <= 8 && !bulk_on) || (B * S > 8 && B * S <= top && top <= 16)));
        /* gemm_skinny.cuh's persistent pipelined form at M <= 8 unless gemm_skinny2.cuh runs there: DSCC_SKINNY's pipe,
         * else where the column groups number 132 or more, unless DSCC_SKINNY_PIPE=0 */
        const char *ep = getenv("DSCC_SKINNY_PIPE");
        const int rb = e1 && strstr(e1, "rb=") ? atoi(strstr(e1, "rb=") + 3) : cg_skinny_groups(N); /* where 132+ groups */
        bool pipe_on = e1 && strstr(e1, "pipe=") ? strstr(e1, "pipe=1") != NULL : !(ep && strcmp(ep, "0") == 0) && (N + 8 * rb - 1) / (8 * rb) >= 132;
        assert_int_equal(piped, !bulk_on && !v2_on && pipe_on && B * S <= 8);
        if (pipe_split) assert_int_equal(pipe_split_got, pipe_split);
        if (split) assert_int_equal(sp, split);
        assert_true(m.err <= (f32 ? 1e-5 : 4e-3));
    }
    free(xv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static void check_shape(int64_t N, int64_t K, bool f32, const int64_t (*rows)[2], int nrows) { check_split(N, K, f32, rows, nrows, 0); }

static const int64_t ROWS[][2] = {{1, 1}, {1, 3}, {1, 13}, {2, 16}};
static const int64_t SPLIT_ROWS[][2] = {{1, 1}, {1, 3}, {1, 8}, {1, 9}, {1, 17}, {2, 16}};

/* K split over clusters: DSCC_SKINNY's `env` ("" none: codegen's choice) must give `split` (gemm_skinny.cuh at 8 < M <= 32:
 * DSCC_SKINNY_MAX=32). */
static void check_env(int64_t N, int64_t K, bool f32, const char *env, int split) {
    if (*env) setenv("DSCC_SKINNY", env, 1);
    setenv("DSCC_SKINNY_MAX", "32", 1);
    check_split(N, K, f32, SPLIT_ROWS, 6, split);
    unsetenv("DSCC_SKINNY");
    unsetenv("DSCC_SKINNY_MAX");
}

static void test_kv_a(void **state) { (void)state, check_shape(576, 1536, false, ROWS, 4); }
static void test_qkv_a(void **state) { (void)state, check_shape(2112, 512, false, ROWS, 4); }
static void test_ragged_f32(void **state) { (void)state, check_shape(100, 720, true, ROWS, 4); }
static void test_two_groups(void **state) { (void)state, check_shape(4224, 640, false, (const int64_t[][2]){{1, 1}, {2, 16}}, 2); }

/* 5 column blocks and 32 K blocks: codegen's own choice is a cluster of 4 */
static void test_split_default(void **state) { (void)state, check_env(40, 4096, false, "", 4); }
/* a last K block of 16 bytes, 24 K blocks over 32 warps */
static void test_split4(void **state) { (void)state, check_env(576, 2960, false, "split=4", 4); }
/* 6 K blocks over 24 warps, a last K block of 80, two 8-row groups a warp, the last with 4 rows; f32 y */
static void test_split3_ragged(void **state) { (void)state, check_env(100, 720, true, "split=3,u=1,rb=2", 3); }
/* 9 K blocks over 64 warps, four 8-row groups a warp */
static void test_split8(void **state) { (void)state, check_env(264, 1040, false, "rb=4,u=2,split=8,minb=1,u32=1", 8); }

/* gemm_skinny2.cuh's persistent grid: two column groups a block (and the same shapes with gemm_skinny.cuh). M runs
 * at launch, so rows that take the same instance of a form are one path: the wide shape (the costly one to emulate)
 * leaves out M = 17 with gemm_skinny2.cuh (the tile above 16 rows, whose switch-over the narrow shape checks) and
 * M = 16 with gemm_skinny.cuh (its 32-row instance, as 9 and 17 are) */
static const int64_t V2_ROWS[][2] = {{1, 1}, {1, 5}, {1, 9}, {1, 16}, {1, 17}};
static const int64_t V2_WIDE[][2] = {{1, 1}, {1, 5}, {1, 9}, {1, 16}}, V1_WIDE[][2] = {{1, 1}, {1, 5}, {1, 9}, {1, 17}};
static void check_v2(const char *v2) {
    if (*v2) setenv("DSCC_SKINNY_V2", v2, 1);
    check_shape(4000, 2960, true, *v2 == '1' ? V2_WIDE : V1_WIDE, 4);
    check_shape(40, 4096, false, V2_ROWS, 5);
    unsetenv("DSCC_SKINNY_V2");
}
static void test_v2_persistent(void **state) { (void)state, check_v2("1"); }
static void test_v2_off(void **state) { (void)state, check_v2("0"); }
/* DSCC_SKINNY's v2=0 and v2=1, and u for gemm_skinny2.cuh (one K block a stage: four stages a group of 32 K blocks; three) */
static void test_v2_env(void **state) {
    (void)state;
    check_env(40, 4096, false, "v2=0", 4);
    check_env(40, 4096, false, "v2=1,rb=2,u=1", 4);
    check_env(40, 4096, false, "v2=1,rb=1,u=3", 4); /* 4 K blocks a warp in stages of 3: the second one partly empty */
}

/* gemm_skinny.cuh's persistent pipelined form (SK_PIPE) with few CTAs (DSCC_SKINNY's grid), so each runs several column
 * groups and its two register stages run on across group ends: 13 groups of 8 rows on 4 CTAs (4, 3, 3, 3: odd and even
 * step counts), 6 K blocks (warps 6 and 7 load nothing, a last K block of 80 bytes), f32 y; 25 groups on 7 CTAs (4 or 3
 * each) at two steps a group (24 K blocks, u=2: 3 a warp, the second step half empty, a last K block of 16 bytes); two
 * 8-row groups a column group with u=1 (13 on 3 CTAs); codegen's own grid; then DSCC_SKINNY_PIPE=0 (the round form) */
static void test_pipe_grid(void **state) {
    (void)state;
    static const int64_t rows[][2] = {{1, 1}, {1, 8}};
    setenv("DSCC_SKINNY", "pipe=1,rb=1,grid=4", 1);
    check_shape(100, 720, true, rows, 2);
    setenv("DSCC_SKINNY", "pipe=1,rb=1,u=2,grid=7", 1);
    check_shape(200, 2960, false, rows, 2);
    setenv("DSCC_SKINNY", "pipe=1,rb=2,u=1,grid=3", 1);
    check_shape(200, 2960, true, rows, 2);
    unsetenv("DSCC_SKINNY");
    check_shape(4236, 640, false, rows, 2); /* the default: 265 groups of 16 rows (the last of 12) on 133 CTAs, two a CTA */
    setenv("DSCC_SKINNY_PIPE", "0", 1);
    check_shape(4236, 640, false, rows, 2);
    unsetenv("DSCC_SKINNY_PIPE");
}

/* The pipelined form's L2 prefetch (DSCC_SKINNY's pf): 4 CTAs of 3-4 groups at one step a group (pf=3: every step
 * after the two in registers prefetched before the wait, the rest past the CTA's last step), 7 CTAs of 3-4 groups at two steps a group with
 * a half-empty second step (pf=1, and pf=8: far past the end); gemm_skinny2.cuh's at pf=3; the emulated device reads every address prefetched
 * (ASan: none outside w) */
static void test_pipe_pf(void **state) {
    (void)state;
    static const int64_t rows[][2] = {{1, 1}, {1, 8}};
    setenv("DSCC_SKINNY", "pipe=1,rb=1,grid=4,pf=3", 1);
    check_shape(100, 720, true, rows, 2);
    setenv("DSCC_SKINNY", "pipe=1,rb=1,u=2,grid=7,pf=1", 1);
    check_shape(200, 2960, false, rows, 2);
    setenv("DSCC_SKINNY", "pipe=1,rb=1,u=2,grid=7,pf=8", 1);
    check_shape(200, 2960, false, rows, 2);
    setenv("DSCC_SKINNY", "v2=1,rb=1,u=1,pf=3", 1); /* gemm_skinny2.cuh's: 4 stages a group of 32 K blocks */
    check_shape(40, 4096, false, rows, 2);
    unsetenv("DSCC_SKINNY");
}

/* The pipelined form with a cluster splitting K (DSCC_SKINNY_PSPLIT=1), at M = 1, 2, 4, 8: 25 groups of 8 rows on 6
 * slots (DSCC_SKINNY's grid) take clusters of 2 (9, 8, 8 groups: odd and even step counts across group ends), 24 K
 * blocks over 16 warps (warps 4..7 of each CTA get one K block, the rest two; a last K block of 16 bytes), f32 y; 5
 * groups over K = 8,192 take clusters of 4 (64 K blocks: one step a group, 32 warps) with bf16 y (DSCC_SKINNY's
 * psplit=1 alone); then the same shapes with the split off (DSCC_SKINNY's psplit=0 over the switch, the switch unset; a malformed switch stops codegen: test_bad_v2). A CTA's part left out of a sum shows
 * as an error of the size of y. */
static void test_pipe_split(void **state) {
    (void)state;
    static const int64_t rows[][2] = {{1, 1}, {1, 2}, {1, 4}, {1, 8}};
    setenv("DSCC_SKINNY_PSPLIT", "1", 1);
    setenv("DSCC_SKINNY", "pipe=1,grid=6", 1);
    pipe_split = 2;
    check_shape(200, 2960, true, rows, 4);
    setenv("DSCC_SKINNY", "pipe=1,grid=6,pf=2", 1); /* the split's own L2 prefetch: its K blocks, before the wait too */
    check_shape(200, 2960, true, rows, 2);
    unsetenv("DSCC_SKINNY_PSPLIT");
    setenv("DSCC_SKINNY", "pipe=1,psplit=1", 1); /* DSCC_SKINNY's psplit alone */
    pipe_split = 4;
    check_shape(40, 8192, false, rows, 4);
    setenv("DSCC_SKINNY_PSPLIT", "1", 1);
    setenv("DSCC_SKINNY", "pipe=1,psplit=0", 1); /* which overrides the switch */
    pipe_split = 1;
    check_shape(40, 8192, false, rows, 2);
    unsetenv("DSCC_SKINNY_PSPLIT");
    setenv("DSCC_SKINNY", "pipe=1,grid=6", 1);
    check_shape(200, 2960, true, rows, 2);
    unsetenv("DSCC_SKINNY");
    pipe_split = 0;
}

/* DSCC_SKINNY_FOLD=1: at M <= 4 the fp8_linear's pipelined form computes its x (the row group's rmsnorm, silu * mul,
 * slices, act_scale and quantize) itself and the row group's kernel does not run; above, both run as before. `body`
 * is the DSL after the dims (x's K_in values a row, w [N, K]); at each (B, S) of rows: the fp8_linear's error on the
 * codes and scales the GPU stored (CTA 0 stores them), the codes' and scales' against the CPU's from the same inputs
 * (which rounds x to bf16 before its act_scale, as the row kernel does not: ~1e-2 either way), and which kernels ran. */
static const char *fold_passes = "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse"; /* check_fold's pipeline */

static void check_fold(const char *what, const char *body, int64_t N, int64_t K, int64_t K_in, const int64_t (*rows)[2], int nrows) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, %lld];\nweight g: bf16[%lld] = \"g\";\nweight w: bf16[%lld, %lld] = \"w\";\n%s",
                             (long long)K_in, (long long)K, (long long)N, (long long)K, body);
    IrGraph *g = tu_compile_src(a, d, "fold.dsl", src, fold_passes);
    uint64_t seed = tu_test_seed() + (uint64_t)(N * 131 + K);
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = 2, .max_seq = 32, .max_ctx = 32, .keep_all = true, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    Cmp m = {.g = g, .gx = gx, .op = IR_OP_FP8_LINEAR};
    CpuOptions co = {.threads = 4, .after_node = take_gpu, .hook_ctx = &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * (size_t)(64 * K_in));
    uint64_t rng = seed;
    /* the program's kernels: the one with the quantize (the row group) and the linear's */
    Arena *pa = arena_new();
    CgProgram *p = cg_generate(pa, diag_new(pa, stderr), g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int krow = -1, klin = -1;
    for (int k = 0; k < p->nkernels; k++)
        for (int j = 0; j < p->kernels[k].nnodes; j++) {
            IrOp op = g->nodes[p->kernels[k].nodes[j]]->op;
            if (op == IR_OP_QUANTIZE) krow = k;
            if (op == IR_OP_FP8_LINEAR) klin = k;
        }
    assert_true(krow >= 0 && klin >= 0 && krow != klin);
    for (int r = 0; r < nrows; r++) {
        int64_t B = rows[r][0], S = rows[r][1], M = B * S;
        tu_bf16_rows(xv, M, K_in, &rng);
        CpuInput in[1] = {{"x", 3, {B, S, K_in}, xv}};
        m.linears = 0;
        m.qerr = m.serr = -1.0;
        m.err = m.aerr = 0.0;
        assert_true(gpu_exec_run(gx, in, 1, d));
        assert_true(cpu_exec_run(cx, in, 1, d));
        int64_t sym[IR_MAX_DIM_SYMS] = {0};
        sym[ir_graph_find_dim(g, "B")] = B, sym[ir_graph_find_dim(g, "S")] = S;
        int64_t row_items = 0;
        bool folded = false;
        for (int ph = 0; ph < p->kernels[krow].nphases; ph++) row_items += cg_phase_items(&p->kernels[krow].phases[ph], sym);
        for (int ph = 0; ph < p->kernels[klin].nphases; ph++)
            folded |= strstr(p->kernels[klin].phases[ph].fn, "skinny_pipe_fold") && cg_phase_items(&p->kernels[klin].phases[ph], sym) > 0;
        fprintf(stderr, "%s: N %lld, K %lld, M %lld: fp8_linear rel L2 %.2e, codes %.2e, scales %.2e, adds %.2e%s\n", what, (long long)N,
                (long long)K, (long long)M, m.err, m.qerr, m.serr, m.aerr, folded ? " (folded)" : "");
        assert_int_equal(m.linears, 1);
        assert_int_equal(folded, M <= 4);
        assert_int_equal(row_items == 0, M <= 4);
        assert_true(m.err >= 0.0 && m.err <= 4e-3);
        assert_true(m.qerr >= 0.0 && m.qerr <= 5e-2 && m.serr >= 0.0 && m.serr <= 1e-2); /* the CPU rounds x to bf16 first */
        assert_true(m.aerr <= 4e-3); /* a residual add the row group stores (CTA 0 of the folded form does) */
    }
    arena_free(pa);
    free(xv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static const int64_t FOLD_ROWS[][2] = {{1, 1}, {1, 2}, {2, 2}, {1, 5}};

/* The patterns of V3's row kernels before an FP8 linear, on the pipelined form with several groups a CTA (25 groups
 * on 6 CTAs) and K = 2,960 or 1,040 (a last K block of 16), at M = 1, 2, 4 (folded) and 5: the input norm (rmsnorm of
 * x, with the cluster K split), q_a's (rmsnorm of a slice
 * of x), the MLP's silu(gate) * up (two slices), plain act_scale + quantize (o_proj's), a residual add + rmsnorm whose
 * sum the row group stores for a reader after the linear (CTA 0 of the folded form stores it). */
static void test_fold(void **state) {
    (void)state;
    setenv("DSCC_SKINNY_FOLD", "1", 1);
    setenv("DSCC_SKINNY", "pipe=1,grid=6", 1);
    check_fold("slice rmsnorm", "let p, r = split(x, [1040, 64], axis=-1);\noutput y = silu(linear(rmsnorm(p, g, eps=1e-6), w));\n", 200,
               1040, 1104, FOLD_ROWS, 4);
    check_fold("silu mul", "let u, v = split(x, [1040, 1040], axis=-1);\noutput y = silu(linear(silu(u) * v, w));\n", 200, 1040, 2080,
               FOLD_ROWS, 4);
    check_fold("plain", "output y = silu(linear(x, w));\n", 200, 2960, 2960, FOLD_ROWS, 4);
    check_fold("add rmsnorm", "let u, v = split(x, [1040, 1040], axis=-1);\nlet h = u + v;\noutput z = h + linear(rmsnorm(h, g, eps=1e-6), w);\n",
               1040, 1040, 2080, FOLD_ROWS, 4);
    setenv("DSCC_SKINNY_PSPLIT", "1", 1);
    check_fold("rmsnorm split", "output y = silu(linear(rmsnorm(x, g, eps=1e-6), w));\n", 200, 2960, 2960, FOLD_ROWS, 4);
    unsetenv("DSCC_SKINNY_PSPLIT");
    unsetenv("DSCC_SKINNY");
    unsetenv("DSCC_SKINNY_FOLD");
}

/* o_proj's case: the folded linear's x is the output t of another kernel (a BF16 linear here, the einsum in V3) whose
 * last reader in the graph is the row group, under a memory plan. The plan frees t after the row group and, left to
 * itself, puts the linear's output y over t's bytes (x's 8 KB, free by then, are too few for y; checked below
 * without the switch), which the fold, reading t,
 * cannot allow: with DSCC_SKINNY_FOLD=1 the plan keeps t alive until the linear (cg_fold_reads), so the linear folds
 * at M <= 4 and y's bytes stay clear of t's. */
static const char FOLD_PLAN_BODY[] = "weight v: bf16[1040, 64] = \"v\";\nlet t = linear(x, v);\noutput y = silu(linear(t, w));\n";
#define FOLD_PLAN_PASSES "shape-infer,fold-constants,dce,fp8-quant{exclude=v},cse,dce,fuse,plan-memory{batch=2,seq=32,ctx=32}"

/* Whether the plan puts the fp8_linear's output over the BF16 linear's t (FOLD_PLAN_BODY). */
static bool fold_plan_overlaps(void) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, 64];\nweight g: bf16[1040] = \"g\";\nweight w: bf16[1040, 1040] = \"w\";\n%s",
                             FOLD_PLAN_BODY);
    IrGraph *g = tu_compile_src(a, d, "fold_plan.dsl", src, FOLD_PLAN_PASSES);
    const IrNode *t = NULL, *y = NULL;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i]->op == IR_OP_LINEAR) t = g->nodes[i];
        if (g->nodes[i]->op == IR_OP_FP8_LINEAR) y = g->nodes[i];
    }
    assert_true(t && y && t->mem >= 0 && y->mem >= 0);
    int64_t tb, yb;
    assert_true(ir_value_bytes(t, g->mem_dims, &tb) && ir_value_bytes(y, g->mem_dims, &yb));
    const bool over = t->mem < y->mem + yb && y->mem < t->mem + tb;
    arena_free(a);
    return over;
}

static void test_fold_plan(void **state) {
    (void)state;
    setenv("DSCC_SKINNY", "pipe=1,grid=6", 1);
    assert_true(fold_plan_overlaps()); /* the switch off: y over t (what kept o_proj from folding) */
    setenv("DSCC_SKINNY_FOLD", "1", 1);
    assert_false(fold_plan_overlaps());
    fold_passes = FOLD_PLAN_PASSES;
    check_fold("after a kernel, planned", FOLD_PLAN_BODY, 1040, 1040, 64, FOLD_ROWS, 4);
    fold_passes = "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse";
    unsetenv("DSCC_SKINNY");
    unsetenv("DSCC_SKINNY_FOLD");
}

/* DSCC_SKINNY_FOLD_HOIST=1, V3's MoE layer in small: an add + rmsnorm whose normed rows a BF16 router reads (through
 * a cast to f32) and whose codes two FP8 linears read (the experts' and the shared expert's), the router first in the
 * program. Without the switch nothing folds (the row group's x has readers before the linears); with it plan-memory
 * launches the first FP8 linear right after the row group, which computes x itself at M <= 4 and stores the normed
 * rows, the residual sum, the codes and the scales for the router and the other linear after it: every linear, the
 * codes, scales, sum and normed rows against the CPU at M = 1, 2, 4 (folded) and 5 (the row kernel), and their bits
 * against those without the switch. */
static const char HOIST_BODY[] = "weight r: bf16[64, 1040] = \"r\";\nweight w2: bf16[136, 1040] = \"w2\";\n"
                                 "let u, v = split(x, [1040, 1040], axis=-1);\nlet h = u + v;\n"
                                 "let n = reshape(rmsnorm(h, g, eps=1e-6), [B * S, 1040]);\n"
                                 "output s = linear(cast(n, f32), cast(r, f32));\noutput e = linear(n, w2);\n"
                                 "output z = reshape(h, [B * S, 1040]) + linear(n, w);\n";

/* The kernels of g's program that run at B x S: how many hold a quantize (a row group), and whether an FP8 linear's
 * folded phase runs. */
static int hoist_kernels(const IrGraph *g, int64_t B, int64_t S, bool *folded) {
    Arena *pa = arena_new();
    CgProgram *p = cg_generate(pa, diag_new(pa, stderr), g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "B")] = B, sym[ir_graph_find_dim(g, "S")] = S;
    int rows = 0;
    *folded = false;
    for (int k = 0; k < p->nkernels; k++) {
        bool q = false;
        int64_t items = 0;
        for (int j = 0; j < p->kernels[k].nnodes; j++) q |= g->nodes[p->kernels[k].nodes[j]]->op == IR_OP_QUANTIZE;
        for (int ph = 0; ph < p->kernels[k].nphases; ph++) {
            const CgPhase *f = &p->kernels[k].phases[ph];
            items += cg_phase_items(f, sym);
            *folded |= strstr(f->fn, "skinny_pipe_fold") && cg_phase_items(f, sym) > 0;
        }
        rows += q && items > 0;
    }
    arena_free(pa);
    return rows;
}

static uint64_t hoist_bits[4]; /* by row count: Cmp.bits without the switch */

static void check_hoist(bool hoist) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    const int64_t N = 1040, K = 1040;
    char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, 2080];\nweight g: bf16[1040] = \"g\";\nweight w: bf16[1040, 1040] = \"w\";\n%s",
                             HOIST_BODY);
    IrGraph *g = tu_compile_src(a, d, "hoist.dsl", src, "shape-infer,fold-constants,dce,fp8-quant{exclude=r},cse,dce,fuse,plan-memory{batch=2,seq=32,ctx=32}");
    uint64_t seed = tu_test_seed() + (uint64_t)(N * 131 + K); /* the same weights and inputs either way */
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = 2, .max_seq = 32, .max_ctx = 32, .keep_all = true, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    Cmp m = {.g = g, .gx = gx, .both = true};
    CpuOptions co = {.threads = 4, .after_node = take_gpu, .hook_ctx = &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * (size_t)(64 * 2 * K));
    uint64_t rng = seed;
    for (int r = 0; r < 4; r++) {
        int64_t B = FOLD_ROWS[r][0], S = FOLD_ROWS[r][1], M = B * S;
        tu_bf16_rows(xv, M, 2 * K, &rng);
        CpuInput in[1] = {{"x", 3, {B, S, 2 * K}, xv}};
        m.linears = 0;
        m.err = m.qerr = m.serr = m.aerr = 0.0;
        m.bits = 0;
        assert_true(gpu_exec_run(gx, in, 1, d));
        assert_true(cpu_exec_run(cx, in, 1, d));
        bool folded;
        const int rows = hoist_kernels(g, B, S, &folded);
        fprintf(stderr, "hoist %d, M %lld: linears rel L2 %.2e, codes %.2e, scales %.2e, sum and rows %.2e, %d row kernels%s\n", hoist,
                (long long)M, m.err, m.qerr, m.serr, m.aerr, rows, folded ? " (folded)" : "");
        assert_int_equal(m.linears, 3);
        assert_int_equal(folded, hoist && M <= 4);
        assert_int_equal(rows, hoist && M <= 4 ? 0 : 1);
        assert_true(m.err > 0.0 && m.err <= 4e-3);
        assert_true(m.qerr <= 5e-2 && m.serr <= 1e-2); /* the CPU rounds x to bf16 first */
        assert_true(m.aerr > 0.0 && m.aerr <= 4e-3);
        if (!hoist) hoist_bits[r] = m.bits;
        else assert_true(m.bits == hoist_bits[r]); /* the fold's arithmetic is the row kernel's: the same bits */
    }
    free(xv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static void test_fold_hoist(void **state) {
    (void)state;
    setenv("DSCC_SKINNY", "pipe=1,grid=6", 1);
    setenv("DSCC_SKINNY_FOLD", "1", 1);
    unsetenv("DSCC_SKINNY_FOLD_HOIST"); /* the leg without it, whatever the caller's environment says */
    check_hoist(false);
    setenv("DSCC_SKINNY_FOLD_HOIST", "1", 1);
    check_hoist(true);
    unsetenv("DSCC_SKINNY_FOLD_HOIST");
    unsetenv("DSCC_SKINNY_FOLD");
    unsetenv("DSCC_SKINNY");
}

/* Which split DSCC_SKINNY_PSPLIT=1 gives V3's decode linears (codegen alone, nothing runs): o_proj's 7,168 x 16,384
 * and the dense down's 7,168 x 18,432 (448 groups of 16 rows on 224 of 264 slots) clusters of 2; q_b's 24,576 x
 * 1,536 (12 K blocks: no split leaves every warp one) and w13's 36,864 x 7,168 none; without the switch none. */
static int pipe_split_of(int64_t N, int64_t K) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, %lld];\nweight w: bf16[%lld, %lld] = \"w\";\noutput y = silu(linear(x, w));\n",
                             (long long)K, (long long)N, (long long)K);
    IrGraph *g = tu_compile_src(a, d, "skinny.dsl", src, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse");
    bool sk, tile, v2, pipe, bulk;
    int sp, bsp;
    phases_at(g, IR_OP_FP8_LINEAR, false, 1, 1, &sk, &tile, &sp, &v2, &pipe, &bulk, &bsp);
    assert_true(pipe);
    arena_free(a);
    return pipe_split_got;
}

static void test_pipe_split_v3(void **state) {
    (void)state;
    setenv("DSCC_SKINNY_PSPLIT", "1", 1);
    assert_int_equal(pipe_split_of(7168, 16384), 2);
    assert_int_equal(pipe_split_of(7168, 18432), 2);
    assert_int_equal(pipe_split_of(24576, 1536), 1);
    assert_int_equal(pipe_split_of(36864, 7168), 1);
    unsetenv("DSCC_SKINNY_PSPLIT");
    assert_int_equal(pipe_split_of(7168, 16384), 1);
}

/* gemm_skinny_bulk.cuh (DSCC_SKINNY_BULK=1 or DSCC_SKINNY's bulk=1): weights and x through a ring of 1-D bulk copies.
 * Two instances: M = 1 (a stage holds one row of x: the deeper ring) and 1 < M <= 8. A ragged N and K (100 x 720: a
 * last group of 4 rows, a last K block of 80) on codegen's choice (13 groups: a K split over a cluster of 6, one K
 * block each); 25 groups of 8 rows on 3 CTAs (9, 8, 8) with 3 stages a group (K 2960 in
 * stages of 1024: the last of 912) through a ring of 2 (every slot reused many times, both parities); a cluster of 3
 * splitting 6 K blocks (two each); 16-row groups (q_a + kv_a's N = 2112 at a small K: 132 groups, one a CTA) and
 * 32-row ones (rb=4, 9 groups on 5 CTAs, a last K block of 16 bytes); the router's BF16 form (256 x 1536, f32 y: 32
 * groups in clusters of 4), which DSCC_SKINNY_BULK=1 leaves to gemm_skinny2.cuh and DSCC_SKINNY's bulk=1 takes. At M = 1, 3, 8 (and 9: the form for M > 8); the K split each must have. */
static void test_bulk(void **state) {
    (void)state;
    static const int64_t rows[][2] = {{1, 1}, {1, 3}, {1, 8}, {1, 9}};
    setenv("DSCC_SKINNY_BULK", "1", 1);
    bulk_split = 6;
    check_shape(100, 720, true, rows, 4);
    bulk_split = 1;
    check_shape(2112, 512, false, rows, 3);
    lin_kind = LIN_BF16_F32; /* BF16: DSCC_SKINNY_BULK=1 leaves it on gemm_skinny2.cuh, DSCC_SKINNY's bulk=1 takes it */
    check_shape(256, 1536, false, rows, 1);
    setenv("DSCC_SKINNY", "bulk=1", 1);
    bulk_split = 4;
    check_shape(256, 1536, false, rows, 3);
    unsetenv("DSCC_SKINNY");
    lin_kind = LIN_FP8;
    unsetenv("DSCC_SKINNY_BULK");
    setenv("DSCC_SKINNY", "bulk=1,rb=1,u=1,grid=3,stages=2", 1);
    bulk_split = 1;
    check_shape(200, 2960, true, rows, 3);
    setenv("DSCC_SKINNY", "bulk=1,rb=1,u=1,split=3", 1);
    bulk_split = 3;
    check_shape(100, 720, true, rows, 3);
    setenv("DSCC_SKINNY", "bulk=1,rb=4,u=1,grid=5", 1);
    bulk_split = 1;
    check_shape(264, 1040, false, rows, 3);
    bulk_split = 0;
    setenv("DSCC_SKINNY", "bulk=0", 1); /* DSCC_SKINNY's bulk=0 overrides DSCC_SKINNY_BULK=1 */
    setenv("DSCC_SKINNY_BULK", "1", 1);
    check_shape(100, 720, true, rows, 1);
    unsetenv("DSCC_SKINNY_BULK");
    unsetenv("DSCC_SKINNY");
}

/* hopper.cuh's 1-D bulk copy (hp_bulk_g2s) alone: thread 0 expects `expect` bytes on an mbarrier and copies `bytes`
 * from src + soff to dst + doff of a shared buffer filled with 0xee; every thread waits, then the buffer is stored. */
static const char BULK_SRC[] =
    "struct Args { unsigned long long t[64]; long long sym[8]; long long cap, len; unsigned long long err; long long tag; };\n"
    "extern \"C\" __global__ void __launch_bounds__(64) bulk_copy(Args a) {\n"
    "    extern __shared__ __align__(128) unsigned char sm[];\n"
    "    unsigned long long *bar = (unsigned long long *)sm;\n"
    "    unsigned char *buf = sm + 128;\n"
    "    for (int i = threadIdx.x; i < 1024; i += 64) buf[i] = 0xee;\n"
    "    if (threadIdx.x == 0) hp_mbar_init(bar, 1), hp_mbar_fence_init();\n"
    "    __syncthreads();\n"
    "    hp_fence_async();\n"
    "    if (threadIdx.x == 0) {\n"
    "        hp_mbar_expect_tx(bar, (unsigned)a.sym[1]);\n"
    "        hp_bulk_g2s(buf + a.sym[3], (const unsigned char *)a.t[0] + a.sym[2], (unsigned)a.sym[0], bar);\n"
    "    }\n"
    "    hp_mbar_wait(bar, 0);\n"
    "    for (int i = threadIdx.x; i < 1024; i += 64) ((unsigned char *)a.t[1])[i] = buf[i];\n"
    "}\n";

typedef struct {
    long long bytes, expect, soff, doff; /* the copy */
    long long want_doff;                 /* where the check expects it to land */
} BulkCase;

/* The copy on one block, then every byte of the buffer against what it must hold. A valid copy runs in the test's
 * process (on a GPU a forked child cannot initialize CUDA once the parent has), a fault in a child (it poisons the
 * context; the emulated device only). */
static bool bulk_emulated; /* the device of the last case in the test's process */
static int bulk_run(const BulkCase *c, TuModule *m, Arena *a) {
    const bool ok_case = c->bytes == c->expect && c->bytes % 16 == 0 && c->soff % 16 == 0 && c->doff % 16 == 0 && c->doff + c->bytes <= 1024;
    const char *text = arena_printf(a, "%s\n%s", cg_kernel_file("hopper"), BULK_SRC);
    const CgSource src = {"bulk_copy", text, {"test_gpu_skinny.c", 1, 1}};
    TuCase st = tu_module_open(m, &src, !ok_case); /* the faults: emulated only (a GPU would hang or trap) */
    if (st != TU_CASE_OK) return st;
    bulk_emulated = m->emulated;
    RtKernel *k = rt_cuda_kernel(m->gpu, m->d, m->bin.data, "bulk_copy");
    unsigned char host[2048], out[1024];
    for (int i = 0; i < 2048; i++) host[i] = (unsigned char)(i * 7 + 3);
    RtDevPtr in, o;
    if (!k || !rt_cuda_alloc(m->gpu, m->d, sizeof host, &in) || !rt_cuda_alloc(m->gpu, m->d, sizeof out, &o) ||
        !rt_cuda_upload(m->gpu, m->d, in, host, sizeof host))
        return TU_CASE_ERROR;
    CgArgs args = {.sym = {c->bytes, c->expect, c->soff, c->doff}};
    args.t[0] = in, args.t[1] = o;
    void *p[] = {&args};
    if (!rt_cuda_launch(m->gpu, m->d, k, 1, 64, 128 + 1024, p) || !rt_cuda_sync(m->gpu, m->d)) return TU_CASE_LAUNCH_FAILED;
    if (!rt_cuda_download(m->gpu, m->d, out, o, sizeof out)) return TU_CASE_ERROR;
    int wrong = 0;
    for (long long i = 0; i < 1024; i++) {
        const bool in_copy = i >= c->want_doff && i < c->want_doff + c->bytes;
        wrong += out[i] != (in_copy ? host[c->soff + i - c->want_doff] : 0xee);
    }
    fprintf(stderr, "bulk copy of %lld bytes (%lld expected) from +%lld to +%lld: %d of 1024 bytes wrong\n", c->bytes, c->expect, c->soff, c->doff, wrong);
    return wrong ? TU_CASE_WRONG : TU_CASE_OK;
}
static int bulk_case(void *arg) {
    TuModule m = {0};
    Arena *a = arena_new();
    int rc = bulk_run(arg, &m, a);
    if (m.gpu) tu_module_close(&m);
    else if (m.a) arena_free(m.a);
    arena_free(a);
    return rc;
}

/* The copy lands where it should, byte for byte (two offsets); the check sees a copy that lands 16 bytes off; on the
 * emulated device, a byte count the mbarrier does not expect (more or fewer: the wait never completes), a
 * misaligned source, a count no multiple of 16 and a copy past the shared memory are faults that name themselves. */
static void test_bulk_copy(void **state) {
    (void)state;
    static const BulkCase ok[] = {{512, 512, 48, 256, 256}, {16, 16, 2032, 1008, 1008}};
    for (size_t i = 0; i < 2; i++) assert_int_equal(bulk_case((void *)&ok[i]), TU_CASE_OK);
    const BulkCase off = {512, 512, 48, 272, 256};
    assert_int_equal(bulk_case((void *)&off), TU_CASE_WRONG);
    if (!bulk_emulated) return; /* on a GPU: the faults are the emulated device's */
    char dir[] = "/tmp/dscc_bulk_XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *err;
    static const struct {
        BulkCase c;
        const char *want;
    } faults[] = {{{512, 528, 48, 256, 256}, "deadlock: an mbarrier wait"},
                  {{512, 496, 48, 256, 256}, "deadlock: an mbarrier wait"},
                  {{512, 512, 40, 256, 256}, "not 16-byte aligned"},
                  {{520, 520, 48, 256, 256}, "no multiple of 16"},
                  {{512, 512, 48, 768, 768}, "bulk copy to outside the dynamic shared memory"}};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        int rc = tu_child_stderr(bulk_case, (void *)&faults[i].c, dir, &err);
        if (rc != TU_CASE_LAUNCH_FAILED || !strstr(err, faults[i].want))
            fprintf(stderr, "case %zu: exit %d, expected a failed launch saying \"%s\"; it said:\n%s", i, rc, faults[i].want, err);
        assert_int_equal(rc, TU_CASE_LAUNCH_FAILED);
        assert_non_null(strstr(err, faults[i].want));
    }
    rmdir(dir);
}

/* BF16 linears (SK_BF16): the router's shape at a smaller K (256 x 1536, f32 y from the GEMM) and a ragged one with
 * bf16 y (100 x 712: a last K block of 16 bytes), at M = 1, 3, 9, 17, 32 (both narrow: gemm_skinny2.cuh by default,
 * gemm_skinny.cuh's round form with a K split with DSCC_SKINNY_BF16_SPLIT=1); then the same with DSCC_SKINNY_V2=0 */
static void check_bf16(void) {
    static const int64_t rows[][2] = {{1, 1}, {1, 3}, {1, 9}, {1, 17}, {2, 16}};
    lin_kind = LIN_BF16_F32;
    check_shape(256, 1536, false, rows, 5);
    lin_kind = LIN_BF16;
    check_shape(100, 712, false, rows, 5);
    lin_kind = LIN_FP8;
}
static void test_bf16(void **state) { (void)state, check_bf16(); }
/* DSCC_SKINNY_BF16_SPLIT=1: the narrow BF16 linears on gemm_skinny.cuh's K split; and a wide one (1,100 rows: 138 groups,
 * the LM head's kind) on it by default */
static void test_bf16_narrow_v2(void **state) {
    (void)state;
    static const int64_t rows[][2] = {{1, 1}, {1, 3}};
    setenv("DSCC_SKINNY_BF16_SPLIT", "1", 1);
    lin_kind = LIN_BF16_F32;
    check_shape(256, 1536, false, rows, 2);
    lin_kind = LIN_BF16;
    check_shape(100, 712, false, rows, 2);
    unsetenv("DSCC_SKINNY_BF16_SPLIT");
    check_shape(1100, 256, false, rows, 2);
    lin_kind = LIN_FP8;
}
static void test_bf16_v1(void **state) {
    (void)state;
    setenv("DSCC_SKINNY_V2", "0", 1);
    check_bf16();
    unsetenv("DSCC_SKINNY_V2");
}

/* DSCC_SKINNY_MAX=16: the skinny form to 16 rows, the tile from 17 (FP8 and BF16) */
static void test_max16(void **state) {
    (void)state;
    static const int64_t rows[][2] = {{1, 1}, {1, 16}, {1, 17}};
    setenv("DSCC_SKINNY_MAX", "16", 1);
    check_shape(576, 1536, false, rows, 3);
    lin_kind = LIN_BF16_F32;
    check_shape(256, 1536, false, rows, 3);
    lin_kind = LIN_FP8;
    unsetenv("DSCC_SKINNY_MAX");
}

/* A malformed DSCC_SKINNY_MAX: codegen stops and says why (a BOOL switch's: tune_check, test_tune). */
static void test_bad_max(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    static const char src[] = "dim M;\ninput x: bf16[M, 512];\nweight w: bf16[64, 512] = \"w\";\noutput y = silu(linear(x, w));\n";
    IrGraph *g = tu_compile_src(a, d, "k.dsl", src, "shape-infer,fp8-quant,fuse");
    static const char *const bad[][2] = {{"DSCC_SKINNY_MAX", "7"}, {"DSCC_SKINNY_MAX", "33"}, {"DSCC_SKINNY_MAX", "16x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int errs = diag_error_count(d);
        setenv(bad[i][0], bad[i][1], 1);
        CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
        unsetenv(bad[i][0]);
        assert_null(p);
        assert_true(diag_error_count(d) > errs);
    }
    arena_free(a);
}

/* A malformed DSCC_SKINNY: codegen stops and says why. */
static void test_bad_env(void **state) {
    (void)state;
    static const char *const bad[] = {"split=9", "rb=3", "u=0", "minb=5", "split", "split=2,", "depth=2", "u=2x", "v2=2", "pipe=2", "grid=0", "bulk=2", "stages=1", "stages=17", "pf=9", "pf=-1", "psplit=2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, NULL);
        static const char src[] = "dim M;\ninput x: bf16[M, 512];\nweight w: bf16[64, 512] = \"w\";\noutput y = silu(linear(x, w));\n";
        IrGraph *g = tu_compile_src(a, d, "k.dsl", src, "shape-infer,fp8-quant,fuse");
        setenv("DSCC_SKINNY", bad[i], 1);
        CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
        unsetenv("DSCC_SKINNY");
        assert_null(p);
        assert_true(diag_error_count(d) > 0);
        arena_free(a);
    }
}

int main(void) {
    if (!tu_hopper()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kv_a),        cmocka_unit_test(test_qkv_a),         cmocka_unit_test(test_ragged_f32),
                                       cmocka_unit_test(test_two_groups),  cmocka_unit_test(test_split_default), cmocka_unit_test(test_split4),
                                       cmocka_unit_test(test_split3_ragged), cmocka_unit_test(test_split8),      cmocka_unit_test(test_bad_env),
                                       cmocka_unit_test(test_v2_persistent), cmocka_unit_test(test_v2_off),      cmocka_unit_test(test_v2_env),
                                       cmocka_unit_test(test_bad_max),        cmocka_unit_test(test_bf16),         cmocka_unit_test(test_bf16_v1), cmocka_unit_test(test_bf16_narrow_v2),
                                       cmocka_unit_test(test_max16),         cmocka_unit_test(test_pipe_grid), cmocka_unit_test(test_pipe_pf),
                                       cmocka_unit_test(test_pipe_split), cmocka_unit_test(test_pipe_split_v3), cmocka_unit_test(test_fold), cmocka_unit_test(test_fold_plan), cmocka_unit_test(test_fold_hoist),
                                       cmocka_unit_test(test_bulk), cmocka_unit_test(test_bulk_copy)};
    const char *only = getenv("DSCC_TEST_FILTER"); /* e.g. '*bulk*': run the matching tests alone */
    if (only && *only) cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
