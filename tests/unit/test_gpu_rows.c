/* test_gpu_rows.c — the wide forms of the fused rmsnorm row kernels
 * (codegen/gen.c, emit_row_kernel) against the CPU executor, at 1 row, a
 * few rows (both: a cluster of CTAs splits each row, their sums of squares
 * added through distributed shared memory) and more rows than
 * CG_ROWS_SPLIT_MAX (one CTA a row). Three groups as V3 has them:
 *   - the residual add, rmsnorm, act_scale and quantize before an FP8
 *     linear (the added row kept in shared memory: the stores read it
 *     there, the residual stored from it, the codes from the warp's
 *     registers), at D = 7,168 (8 CTAs a row) and 1,536 (6), and at
 *     16,384, too wide to keep (the stores recompute the row);
 *   - the MoE combine: sum of 8 f32 rows times their weights, cast, add,
 *     rmsnorm (the sum read once, kept in shared memory), D = 7,168 and 512;
 *   - rmsnorm then a concat along the row (the latent's kv_new), whose
 *     reads of the norm are not at their own index: nothing kept, the
 *     D + 64 wide stores strided over the row's CTAs.
 * The CPU takes each value the GPU stored before it computes the next op,
 * and each stored value is held to the bounds of test_gpu_ops: rel L2
 * 1e-2 for floats and 0.15 for FP8 codes with bf16 storage, 1e-4 and
 * 0.02 with f32 storage (a CTA's part of the row missing or from another
 * row shows far above these). The test also checks which form ran (CTAs
 * a row, threads a CTA), that the kept row is used where it may be, that
 * DSCC_ROWS_WIDE=0 gives the old form, and that a malformed value stops
 * codegen. Exits 77 (skipped) without a GPU; emu.test_gpu_rows runs it on
 * the emulated device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/gen.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

typedef struct {
    const IrGraph *g;
    GpuExec *gx;
    bool f32;
    int checked, failed;
} Cmp;

/* After the CPU computes node id: its error against the GPU's stored value; then every value continues from the GPU's. */
static void take_gpu(void *ctx, int id, float *c, int64_t nc) {
    Cmp *m = ctx;
    const IrNode *n = m->g->nodes[id];
    const float *gv = tu_gpu_value(m->gx, n, nc);
    if (!gv) return;
    double err = tu_rel_l2(gv, c, nc), bound = n->type.dtype == IR_DT_FP8E4M3 ? (m->f32 ? 0.02 : 0.15) : m->f32 ? 1e-4 : 1e-2;
    if (n->op != IR_OP_FP8_LINEAR) m->checked++; /* the GEMM is not this test's business, but is held to the bounds too */
    if (!(err <= bound)) {
        fprintf(stderr, "  MISMATCH %%%d %s %s: rel L2 %.3e (%lld values)\n", id, ir_op_name(n->op), ir_dtype_name(n->type.dtype), err,
                (long long)nc);
        m->failed++;
    }
    memcpy(c, gv, sizeof(float) * (size_t)nc);
}

static IrGraph *compile(Arena *a, DiagEngine *d, const char *src) {
    IrGraph *g = fe_compile_string(a, d, "rows.dsl", src, strlen(src), &(FeOptions){NULL, NULL, 0});
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {0};
    assert_true(pass_pipeline_parse(a, d, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse", &pp) && pass_pipeline_run(&pp, g, &ro, d));
    return g;
}

/* The row kernel's phase that runs at B x S rows: its CTAs a row (*parts), threads a CTA (*threads, 0: 256, the old
 * form), and whether its module reads the kept row (RX). Exactly one phase of the kernel must run. */
static void row_form(const IrGraph *g, bool f32, int64_t B, int64_t S, int *parts, int *threads, int *per, bool *kept) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgGenOptions o = {.f32_storage = f32};
    CgProgram *p = cg_generate(a, d, g, &o);
    assert_non_null(p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "B")] = B, sym[ir_graph_find_dim(g, "S")] = S;
    int runs = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        bool norm = false;
        for (int j = 0; j < ck->nnodes; j++) norm |= g->nodes[ck->nodes[j]]->op == IR_OP_RMSNORM;
        if (!norm) continue;
        *kept = strstr(p->modules[ck->module].source, "RX(i)") != NULL;
        for (int ph = 0; ph < ck->nphases; ph++) {
            const CgPhase *f = &ck->phases[ph];
            if (cg_phase_items(f, sym) <= 0) continue;
            runs++;
            *parts = (int)f->b.coeff, *threads = f->threads, *per = (int)f->da;
            assert_int_equal(cg_phase_items(f, sym), (B * S + f->da - 1) / f->da * f->b.coeff);
        }
    }
    assert_int_equal(runs, 1);
    arena_free(a);
}

typedef struct {
    const char *src;  /* the DSL, D where the row width goes */
    int64_t D;
    bool f32;
    int parts;        /* the cluster form's CTAs a row */
    bool kept;        /* the norm's input is kept in shared memory */
} Case;

/* fresh bf16 values, every 7th row 30 times larger (rows of different scales), f32 weights of the combine in [0, 1) */
static void fill(float *v, int64_t n, int64_t width, uint64_t *rng, bool bf16) {
    for (int64_t i = 0; i < n; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(*rng >> 11) / 9007199254740992.0;
        float x = bf16 ? (float)(u * 2.0 - 1.0) * (i / width % 7 == 3 ? 30.0f : 1.0f) : (float)u;
        v[i] = bf16 ? rt_bf16_decode(rt_bf16_encode(x)) : x;
    }
}

/* The case at each (B, S) of rows on both executors; the inputs are those of its DSL, in the order x, r / z, y, p. */
static void check_case(const Case *c, const int64_t (*rows)[2], int nrows) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char *src = arena_strdup(a, c->src);
    for (char *q; (q = strstr(src, "%D"));) { /* the row width for each %D */
        *q = '\0';
        src = arena_printf(a, "%s%lld%s", src, (long long)c->D, q + 2);
    }
    IrGraph *g = compile(a, d, src);
    uint64_t seed = tu_test_seed() + (uint64_t)c->D * 7919u;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.max_batch = 2, .max_seq = 136, .max_ctx = 136, .keep_all = true, .f32_storage = c->f32, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    Cmp m = {.g = g, .gx = gx, .f32 = c->f32};
    CpuOptions co = {.threads = 4, .after_node = take_gpu, .hook_ctx = &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    uint64_t rng = seed;
    for (int r = 0; r < nrows; r++) {
        int64_t B = rows[r][0], S = rows[r][1], M = B * S, D = c->D;
        CpuInput in[4];
        int nin = 0;
        float *buf[4] = {0};
        struct {
            const char *name;
            int64_t k, w;
            bool bf16;
        } spec[] = {{"x", 1, D, true}, {"r", 1, D, true}, {"z", 1, 64, true}, {"y", 8, D, true}, {"p", 8, 1, false}};
        for (size_t s = 0; s < sizeof spec / sizeof spec[0]; s++) {
            if (!strstr(src, arena_printf(a, "input %s:", spec[s].name))) continue;
            buf[nin] = malloc(sizeof(float) * (size_t)(M * spec[s].k * spec[s].w));
            fill(buf[nin], M * spec[s].k * spec[s].w, spec[s].w, &rng, spec[s].bf16);
            in[nin] = spec[s].k > 1 ? (CpuInput){spec[s].name, 4, {B, S, spec[s].k, spec[s].w}, buf[nin]}
                                    : (CpuInput){spec[s].name, 3, {B, S, spec[s].w}, buf[nin]};
            nin++;
        }
        m.checked = m.failed = 0;
        assert_true(gpu_exec_run(gx, in, nin, d));
        assert_true(cpu_exec_run(cx, in, nin, d));
        int parts = 0, threads = 0, per = 0;
        bool kept = false;
        row_form(g, c->f32, B, S, &parts, &threads, &per, &kept);
        fprintf(stderr, "D %lld, %lld rows (%lld x %lld), %s storage: %d values checked, %d outside bounds; %d CTAs a row of %d threads, "
                        "%d rows a CTA%s\n",
                (long long)D, (long long)M, (long long)B, (long long)S, c->f32 ? "f32" : "bf16", m.checked, m.failed, parts, threads, per,
                kept ? ", the row kept in shared memory" : "");
        for (int k = 0; k < nin; k++) free(buf[k]);
        assert_true(m.checked >= 1);
        assert_int_equal(m.failed, 0);
        assert_int_equal(parts, M <= 64 ? c->parts : 1);
        int64_t want = M <= 64 ? D / c->parts / 4 : D / 8;
        assert_int_equal(threads, want < 32 ? 32 : want > 1024 ? 1024 : want);
        assert_true(kept == c->kept);
        assert_int_equal(per, M > 128 && D >= 4096 ? 2 : 1); /* the prefill form: 2 rows a CTA above 128 rows of 4,096 or more */
    }
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static const char ADD_NORM[] = "dim B, S;\ninput x: bf16[B, S, %D];\ninput r: bf16[B, S, %D];\nweight g: bf16[%D] = \"g\";\n"
                               "weight w: bf16[64, %D] = \"w\";\nlet h = x + r;\noutput hs = h;\n"
                               "output y = linear(rmsnorm(h, g, eps=1e-6), w);\n";
static const char COMBINE[] = "dim B, S;\ninput r: bf16[B, S, %D];\ninput y: bf16[B, S, 8, %D];\ninput p: f32[B, S, 8, 1];\n"
                              "weight g: bf16[%D] = \"g\";\nlet h = cast(sum(cast(y, f32) * p, axis=2), bf16) + r;\noutput hs = h;\n"
                              "output o = rmsnorm(h, g, eps=1e-6);\n";
static const char CONCAT[] = "dim B, S;\ninput x: bf16[B, S, %D];\ninput z: bf16[B, S, 64];\nweight g: bf16[%D] = \"g\";\n"
                             "output c = concat(rmsnorm(x, g, eps=1e-6), z, axis=-1);\n";

/* 1 row, a few, more than CG_ROWS_SPLIT_MAX (64), and more than CG_ROWS_PREFILL_MIN (128), an odd count: the last CTA of the
 * prefill form has one row */
static const int64_t ROWS[][2] = {{1, 1}, {1, 3}, {2, 40}, {1, 131}};

static void test_add_norm_7168(void **state) { (void)state, check_case(&(Case){ADD_NORM, 7168, false, 8, true}, ROWS, 4); }
static void test_add_norm_1536_f32(void **state) {
    (void)state, check_case(&(Case){ADD_NORM, 1536, true, 6, true}, (const int64_t[][2]){{1, 1}, {1, 5}, {2, 35}}, 3);
}
static void test_combine_7168(void **state) { (void)state, check_case(&(Case){COMBINE, 7168, false, 8, true}, ROWS, 4); }
static void test_combine_512_f32(void **state) { (void)state, check_case(&(Case){COMBINE, 512, true, 4, true}, ROWS, 4); }
/* a row too wide to keep in 44 KB of shared memory (16,384: 64 KB): the stores recompute it; 1,024 threads a CTA above 64 rows */
static void test_add_norm_16384(void **state) { (void)state, check_case(&(Case){ADD_NORM, 16384, false, 8, false}, ROWS, 4); }
static void test_concat_512(void **state) { (void)state, check_case(&(Case){CONCAT, 512, false, 4, false}, ROWS, 4); }

/* DSCC_ROWS_WIDE=0: the old form, one 256-thread block a row, at any row count; a malformed value stops codegen. */
static void test_env(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    char *src = arena_strdup(a, ADD_NORM);
    for (char *q; (q = strstr(src, "%D"));) *q = '\0', src = arena_printf(a, "%s512%s", src, q + 2);
    IrGraph *g = compile(a, d, src);
    setenv("DSCC_ROWS_WIDE", "0", 1);
    int parts = 0, threads = -1;
    bool kept = true;
    int per = 0;
    row_form(g, false, 1, 1, &parts, &threads, &per, &kept);
    assert_int_equal(parts, 1);
    assert_int_equal(threads, 0);
    assert_false(kept);
    setenv("DSCC_ROWS_WIDE", "wide", 1);
    assert_null(cg_generate(a, d, g, &(CgGenOptions){0}));
    assert_true(diag_error_count(d) > 0);
    unsetenv("DSCC_ROWS_WIDE");
    arena_free(a);
}

/* DSCC_ROWS_PREFILL=0: one CTA a row above 128 rows of 7,168 too; a malformed value stops codegen. */
static void test_env_prefill(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    char *src = arena_strdup(a, ADD_NORM);
    for (char *q; (q = strstr(src, "%D"));) *q = '\0', src = arena_printf(a, "%s7168%s", src, q + 2);
    IrGraph *g = compile(a, d, src);
    int parts = 0, threads = 0, per = 0;
    bool kept = false;
    row_form(g, false, 1, 200, &parts, &threads, &per, &kept);
    assert_int_equal(per, 2);
    setenv("DSCC_ROWS_PREFILL", "0", 1);
    row_form(g, false, 1, 200, &parts, &threads, &per, &kept);
    assert_int_equal(parts, 1);
    assert_int_equal(threads, 896);
    assert_int_equal(per, 1);
    assert_true(kept);
    setenv("DSCC_ROWS_PREFILL", "yes", 1);
    assert_null(cg_generate(a, d, g, &(CgGenOptions){0}));
    assert_true(diag_error_count(d) > 0);
    unsetenv("DSCC_ROWS_PREFILL");
    arena_free(a);
}

int main(void) {
    if (!tu_hopper()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_add_norm_7168), cmocka_unit_test(test_add_norm_1536_f32),
                                       cmocka_unit_test(test_combine_7168),  cmocka_unit_test(test_combine_512_f32),
                                       cmocka_unit_test(test_add_norm_16384), cmocka_unit_test(test_concat_512),
                                       cmocka_unit_test(test_env), cmocka_unit_test(test_env_prefill)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
