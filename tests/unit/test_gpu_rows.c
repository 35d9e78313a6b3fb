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
 *   - the last layer's combine read through each sequence's last position
 *     (logits_last_only): the sum over the experts at the norm's B rows
 *     only, inside the row kernel (DSCC_ROWS_UPSTREAM=0: the old two
 *     launches);
 *   - rmsnorm then a concat along the row (the latent's kv_new), whose
 *     reads of the norm are not at their own index: nothing kept, the
 *     D + 64 wide stores strided over the row's CTAs.
 * The CPU takes each value the GPU stored before it computes the next op,
 * and each stored value is held to the bounds of test_gpu_ops: rel L2
 * 1e-2 for floats and 0.15 for FP8 codes with bf16 storage, 1e-4 and
 * 0.02 with f32 storage (a CTA's part of the row missing or from another
 * row shows far above these). The test also checks which form ran (CTAs
 * a row, threads a CTA, rows a CTA), that the kept row is used where it
 * may be, that DSCC_ROWS_WIDE=0 gives the old form, and that a malformed
 * value stops codegen. Above 128 rows (131: odd, so the prefill form's
 * last CTA has one row) the prefill form runs; its vector stores store
 * the same bits as one CTA a row (DSCC_ROWS_PREFILL=0) at 7,168 and 1,536,
 * codes, scales, residual and a stored reshape of the norm alike. The
 * linears' silu keeps them from being the LM head, which fp8-quant leaves
 * in bf16: so the act_scale and quantize are the row kernel's. The other fused store passes' vector form (gen_vec.c,
 * 8 elements a thread: RoPE beside the q slices, broadcasts, silu * mul under act_scale + quantize, the embedding) is
 * held to the CPU's bounds and to the old form's bits (DSCC_ELEM_VEC=0). Exits 77 (skipped) without a GPU;
 * emu.test_gpu_rows runs it on the emulated device. */
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
    bool f32;
    int checked, failed;
} Cmp;

/* tu_take_gpu's check: every stored value's error against the GPU's, within its dtype's bound. */
static void check_node(void *ctx, const IrNode *n, const float *gv, const float *c, int64_t nc) {
    Cmp *m = ctx;
    double err = tu_rel_l2(gv, c, nc), bound = n->type.dtype == IR_DT_FP8E4M3 ? (m->f32 ? 0.02 : 0.15) : m->f32 ? 1e-4 : 1e-2;
    if (n->op != IR_OP_FP8_LINEAR) m->checked++; /* the GEMM is not this test's business, but is held to the bounds too */
    if (!(err <= bound)) {
        fprintf(stderr, "  MISMATCH %%%d %s %s: rel L2 %.3e (%lld values)\n", n->id, ir_op_name(n->op), ir_dtype_name(n->type.dtype), err,
                (long long)nc);
        m->failed++;
    }
}

static IrGraph *compile(Arena *a, DiagEngine *d, const char *src) {
    IrGraph *g = tu_compile_src(a, d, "rows.dsl", src, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse");
    return g;
}

static bool vec_stores; /* row_form's kernel has the prefill form's vector loads and stores */

/* The row kernel's phase that runs at B x S rows: its CTAs a row (*parts), threads a CTA (*threads, 0: 256, the old
 * form), and whether its module reads the kept row (RX). Exactly one phase of the kernel must run. */
static void row_form(const IrGraph *g, bool f32, int64_t B, int64_t S, int64_t M, int *parts, int *threads, int *per, bool *kept) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgGenOptions o = {.tune = tu_tune(), .f32_storage = f32};
    CgProgram *p = cg_generate(a, d, g, &o);
    assert_non_null(p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "B")] = B, sym[ir_graph_find_dim(g, "S")] = S;
    int runs = 0;
    vec_stores = false;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        bool norm = false;
        for (int j = 0; j < ck->nnodes; j++) norm |= g->nodes[ck->nodes[j]]->op == IR_OP_RMSNORM;
        if (!norm) continue;
        *kept = strstr(p->modules[ck->module].source, "RX(i)") != NULL;
        vec_stores = strstr(p->modules[ck->module].source, "the vector stores") != NULL &&
                     strstr(p->modules[ck->module].source, "the vector loads") != NULL;
        for (int ph = 0; ph < ck->nphases; ph++) {
            const CgPhase *f = &ck->phases[ph];
            if (cg_phase_items(f, sym) <= 0) continue;
            runs++;
            *parts = (int)f->b.coeff, *threads = f->threads, *per = (int)f->da;
            assert_int_equal(cg_phase_items(f, sym), (M + f->da - 1) / f->da * f->b.coeff);
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
    bool vec;         /* above 128 rows the prefill form (vector loads and stores) runs */
    bool last;        /* the norm's rows are each sequence's last position (B of them), not B x S */
    int64_t maxb, maxs; /* the executor's capacity (0: 2 x 136) */
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
    int64_t mb = c->maxb ? c->maxb : 2, ms = c->maxs ? c->maxs : 136;
    GpuOptions go = {.tune = tu_tune(), .max_batch = mb, .max_seq = ms, .max_ctx = ms, .keep_all = true, .f32_storage = c->f32, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    Cmp m = {.f32 = c->f32};
    TuGpuCmp t = {g, gx, check_node, &m};
    CpuOptions co = {.threads = 4, .after_node = tu_take_gpu, .hook_ctx = &t};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    uint64_t rng = seed;
    for (int r = 0; r < nrows; r++) {
        int64_t B = rows[r][0], S = rows[r][1], M = c->last ? B : B * S, D = c->D;
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
            buf[nin] = malloc(sizeof(float) * (size_t)(B * S * spec[s].k * spec[s].w));
            fill(buf[nin], B * S * spec[s].k * spec[s].w, spec[s].w, &rng, spec[s].bf16);
            in[nin] = spec[s].k > 1 ? (CpuInput){spec[s].name, 4, {B, S, spec[s].k, spec[s].w}, buf[nin]}
                                    : (CpuInput){spec[s].name, 3, {B, S, spec[s].w}, buf[nin]};
            nin++;
        }
        m.checked = m.failed = 0;
        assert_true(gpu_exec_run(gx, in, nin, d));
        assert_true(cpu_exec_run(cx, in, nin, d));
        int parts = 0, threads = 0, per = 0;
        bool kept = false;
        row_form(g, c->f32, B, S, M, &parts, &threads, &per, &kept);
        fprintf(stderr, "D %lld, %lld rows (%lld x %lld), %s storage: %d values checked, %d outside bounds; %d CTAs a row of %d threads, "
                        "%d rows a CTA%s\n",
                (long long)D, (long long)M, (long long)B, (long long)S, c->f32 ? "f32" : "bf16", m.checked, m.failed, parts, threads, per,
                kept ? ", the row kept in shared memory" : "");
        for (int k = 0; k < nin; k++) free(buf[k]);
        assert_true(m.checked >= 1);
        assert_int_equal(m.failed, 0);
        assert_int_equal(parts, M <= 64 ? c->parts : 1);
        bool pre = M > 128 && c->vec; /* the prefill form: 2 rows a CTA of 16 elements a thread at 4,096 or more */
        int64_t want = M <= 64 ? D / c->parts / 4 : pre && D >= 4096 ? D / 16 : D / 8;
        assert_int_equal(threads, want < 32 ? 32 : want > 1024 ? 1024 : want);
        assert_true(kept == c->kept);
        assert_int_equal(per, pre && D >= 4096 ? 2 : 1);
    }
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static const char ADD_NORM[] = "dim B, S;\ninput x: bf16[B, S, %D];\ninput r: bf16[B, S, %D];\nweight g: bf16[%D] = \"g\";\n"
                               "weight w: bf16[128, %D] = \"w\";\nlet h = x + r;\noutput hs = h;\n"
                               "output y = silu(linear(rmsnorm(h, g, eps=1e-6), w));\n";
static const char COMBINE[] = "dim B, S;\ninput r: bf16[B, S, %D];\ninput y: bf16[B, S, 8, %D];\ninput p: f32[B, S, 8, 1];\n"
                              "weight g: bf16[%D] = \"g\";\nlet h = cast(sum(cast(y, f32) * p, axis=2), bf16) + r;\noutput hs = h;\n"
                              "output o = rmsnorm(h, g, eps=1e-6);\n";
/* the last MoE layer's combine under logits_last_only: the norm reads the slice of each sequence's last position, so the
 * products and their sum over the 8 experts (B x S rows, none stored) are computed only at the norm's B rows */
static const char COMBINE_LAST[] = "dim B, S;\ninput r: bf16[B, S, %D];\ninput y: bf16[B, S, 8, %D];\ninput p: f32[B, S, 8, 1];\n"
                                   "weight g: bf16[%D] = \"g\";\nlet h = cast(sum(cast(y, f32) * p, axis=2), bf16) + r;\n"
                                   "output o = rmsnorm(slice(h, axis=1, start=-1, len=1), g, eps=1e-6);\n";
static const char CONCAT[] = "dim B, S;\ninput x: bf16[B, S, %D];\ninput z: bf16[B, S, 64];\nweight g: bf16[%D] = \"g\";\n"
                             "output c = concat(rmsnorm(x, g, eps=1e-6), z, axis=-1);\n";

/* 1 row, a few, more than CG_ROWS_SPLIT_MAX (64), and more than CG_ROWS_PREFILL_MIN (128), an odd count: the last CTA of the
 * prefill form has one row */
static const int64_t ROWS[][2] = {{1, 1}, {1, 3}, {2, 40}, {1, 131}};

static void test_add_norm_7168(void **state) { (void)state, check_case(&(Case){ADD_NORM, 7168, false, 8, true, true, false, 0, 0}, ROWS, 4); }
static void test_add_norm_1536_f32(void **state) {
    (void)state, check_case(&(Case){ADD_NORM, 1536, true, 6, true, false, false, 0, 0}, (const int64_t[][2]){{1, 1}, {1, 5}, {2, 35}}, 3);
}
static void test_add_norm_1536(void **state) { (void)state, check_case(&(Case){ADD_NORM, 1536, false, 6, true, true, false, 0, 0}, ROWS, 4); }
static void test_combine_7168(void **state) { (void)state, check_case(&(Case){COMBINE, 7168, false, 8, true, false, false, 0, 0}, ROWS, 4); }
static void test_combine_512_f32(void **state) { (void)state, check_case(&(Case){COMBINE, 512, true, 4, true, false, false, 0, 0}, ROWS, 4); }
/* the last position of 1, 3 and 5 positions (a wrong position, expert, weight or sum shows far above the bounds), at the
 * cluster's row counts; at 512, more sequences than CG_ROWS_SPLIT_MAX (one CTA a row) */
static void test_combine_last_7168(void **state) {
    (void)state, check_case(&(Case){COMBINE_LAST, 7168, false, 8, true, false, true, 2, 8}, (const int64_t[][2]){{1, 1}, {1, 3}, {2, 5}}, 3);
}
static void test_combine_last_512(void **state) {
    (void)state, check_case(&(Case){COMBINE_LAST, 512, true, 4, true, false, true, 70, 4}, (const int64_t[][2]){{2, 4}, {70, 3}}, 2);
}
/* a row too wide to keep in 44 KB of shared memory (16,384: 64 KB): the stores recompute it; 1,024 threads a CTA above 64 rows */
static void test_add_norm_16384(void **state) { (void)state, check_case(&(Case){ADD_NORM, 16384, false, 8, false, false, false, 0, 0}, ROWS, 4); }
static void test_concat_512(void **state) { (void)state, check_case(&(Case){CONCAT, 512, false, 4, false, false, false, 0, 0}, ROWS, 4); }

/* The graph of a case's DSL with each %D the row width D. */
static IrGraph *compile_at(Arena *a, DiagEngine *d, const char *tmpl, int64_t D) {
    char *src = arena_strdup(a, tmpl);
    for (char *q; (q = strstr(src, "%D"));) *q = '\0', src = arena_printf(a, "%s%lld%s", src, (long long)D, q + 2);
    return compile(a, d, src);
}

/* A switch's test: the graph of tmpl at row width D in an arena of its own; env_done unsets the switch and frees it. */
typedef struct {
    Arena *a;
    DiagEngine *d;
    IrGraph *g;
} EnvCase;

static EnvCase env_case(const char *tmpl, int64_t D) {
    EnvCase c = {arena_new(), NULL, NULL};
    c.d = diag_new(c.a, NULL);
    c.g = compile_at(c.a, c.d, tmpl, D);
    return c;
}

static void env_done(EnvCase *c, const char *name) {
    unsetenv(name);
    arena_free(c->a);
}

/* DSCC_ROWS_WIDE=0: the old form, one 256-thread block a row, at any row count. */
static void test_env(void **state) {
    (void)state;
    EnvCase c = env_case(ADD_NORM, 512);
    setenv("DSCC_ROWS_WIDE", "0", 1);
    int parts = 0, threads = -1;
    bool kept = true;
    int per = 0;
    row_form(c.g, false, 1, 1, 1, &parts, &threads, &per, &kept);
    assert_int_equal(parts, 1);
    assert_int_equal(threads, 0);
    assert_false(kept);
    env_done(&c, "DSCC_ROWS_WIDE");
}

/* Every stored value of g's run at B x S rows (the same seeded inputs each call), the row kernel's prefill form on or off
 * (read when gpu_exec_new generates the code); vals[id] NULL where none. Asserts the codes' place is 16-byte aligned
 * (so the prefill form's vector stores run, not their fallback). */
static void stored_values(DiagEngine *d, const IrGraph *g, int64_t D, int64_t B, int64_t S, bool prefill, float **vals, int64_t *counts) {
    uint64_t seed = 7919u + (uint64_t)D, rng = seed;
    CpuWeightSource ws = cpu_random_weights(&seed);
    if (!prefill) setenv("DSCC_ROWS_PREFILL", "0", 1);
    GpuExec *gx = gpu_exec_new(g, &ws, &(GpuOptions){.tune = tu_tune(), .max_batch = 1, .max_seq = 136, .max_ctx = 136, .keep_all = true, .no_blas = true}, d);
    unsetenv("DSCC_ROWS_PREFILL");
    assert_non_null(gx);
    int64_t M = B * S;
    float *x = malloc(sizeof(float) * (size_t)(M * D)), *r = malloc(sizeof(float) * (size_t)(M * D));
    for (int64_t i = 0; i < M * D; i++) { /* multiples of 1/8 in [-2, 2]: every sum of squares exact, in any order */
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((int)(rng >> 33) % 33 - 16) / 8.0f;
        r[i] = (float)((int)(rng >> 45) % 33 - 16) / 8.0f;
    }
    CpuInput in[2] = {{"x", 3, {B, S, D}, x}, {"r", 3, {B, S, D}, r}};
    assert_true(gpu_exec_run(gx, in, 2, d));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        int64_t nc = 0;
        const float *v = n->op == IR_OP_INPUT || n->op == IR_OP_WEIGHT ? NULL : gpu_exec_value(gx, i, &nc);
        vals[i] = v ? malloc(sizeof(float) * (size_t)nc) : NULL, counts[i] = v ? nc : 0;
        if (v) memcpy(vals[i], v, sizeof(float) * (size_t)nc);
        if (v && nc == M * D) assert_int_equal(gpu_exec_offset(gx, i) % 16, 0); /* the row kernel's stores of the rows */
        if (n->op == IR_OP_INPUT) assert_int_equal(gpu_exec_offset(gx, i) % 16, 0); /* ... and its loads */
    }
    free(x), free(r);
    gpu_exec_free(gx);
}

/* The prefill form (vector loads and stores; two rows a CTA at 7,168) stores the same bits as one CTA a row (its value
 * functions and gen.c's stores): codes, scales, the residual and a stored reshape of the norm, at 131 rows (the last
 * CTA's second row past the end). The inputs make every sum of squares exact, so the forms' orders of summing agree. */
static void check_prefill_exact(const char *tmpl, int64_t D) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char *src = arena_strdup(a, tmpl);
    for (char *q; (q = strstr(src, "%D"));) *q = '\0', src = arena_printf(a, "%s%lld%s", src, (long long)D, q + 2);
    IrGraph *g = compile(a, d, src);
    int parts = 0, threads = 0, per = 0;
    bool kept = false;
    row_form(g, false, 1, 131, 131, &parts, &threads, &per, &kept);
    assert_int_equal(per, D >= 4096 ? 2 : 1);
    assert_true(vec_stores);
    float **on = calloc((size_t)g->nnodes, sizeof(float *)), **off = calloc((size_t)g->nnodes, sizeof(float *));
    int64_t *con = calloc((size_t)g->nnodes, sizeof(int64_t)), *coff = calloc((size_t)g->nnodes, sizeof(int64_t));
    stored_values(d, g, D, 1, 131, true, on, con);
    stored_values(d, g, D, 1, 131, false, off, coff);
    int compared = 0;
    for (int i = 0; i < g->nnodes; i++) {
        assert_true((on[i] == NULL) == (off[i] == NULL));
        if (!on[i]) continue;
        assert_int_equal(con[i], coff[i]);
        int64_t diff = 0;
        for (int64_t k = 0; k < con[i]; k++) diff += memcmp(&on[i][k], &off[i][k], sizeof(float)) != 0;
        fprintf(stderr, "D %lld, %%%d %s: %lld values, %lld differ\n", (long long)D, i, ir_op_name(g->nodes[i]->op), (long long)con[i], (long long)diff);
        assert_int_equal(diff, 0);
        compared++;
        free(on[i]), free(off[i]);
    }
    assert_true(compared >= 3);
    free(on), free(off), free(con), free(coff);
    arena_free(a);
}

static const char ADD_NORM_FLAT[] = "dim B, S;\ninput x: bf16[B, S, %D];\ninput r: bf16[B, S, %D];\nweight g: bf16[%D] = \"g\";\n"
                                    "weight w: bf16[128, %D] = \"w\";\nlet h = x + r;\noutput hs = h;\n"
                                    "let n = reshape(rmsnorm(h, g, eps=1e-6), [B * S, %D]);\noutput ns = n;\noutput y = silu(linear(n, w));\n";

static void test_prefill_exact_7168(void **state) { (void)state, check_prefill_exact(ADD_NORM, 7168); }
static void test_prefill_exact_1536(void **state) { (void)state, check_prefill_exact(ADD_NORM_FLAT, 1536); }
static void test_prefill_exact_7168_flat(void **state) { (void)state, check_prefill_exact(ADD_NORM_FLAT, 7168); }

/* DSCC_ROWS_PREFILL=0: one CTA a row above 128 rows of 7,168 too. */
static void test_env_prefill(void **state) {
    (void)state;
    EnvCase c = env_case(ADD_NORM, 7168);
    int parts = 0, threads = 0, per = 0;
    bool kept = false;
    row_form(c.g, false, 1, 200, 200, &parts, &threads, &per, &kept);
    assert_int_equal(per, 2);
    assert_int_equal(threads, 448);
    setenv("DSCC_ROWS_PREFILL", "0", 1);
    row_form(c.g, false, 1, 200, 200, &parts, &threads, &per, &kept);
    assert_int_equal(parts, 1);
    assert_int_equal(threads, 896);
    assert_int_equal(per, 1);
    assert_true(kept);
    env_done(&c, "DSCC_ROWS_PREFILL");
}

/* DSCC_ROWS_UPSTREAM=0: the last combine's old form, the norm's statistic then a store pass (two launches). */
static int norm_phases(const IrGraph *g, int64_t B, int64_t S, bool *cluster) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "B")] = B, sym[ir_graph_find_dim(g, "S")] = S;
    int runs = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        bool norm = false;
        for (int j = 0; j < ck->nnodes; j++) norm |= g->nodes[ck->nodes[j]]->op == IR_OP_RMSNORM;
        if (!norm) continue;
        *cluster = strstr(p->modules[ck->module].source, "__cluster_dims__") != NULL;
        for (int ph = 0; ph < ck->nphases; ph++) runs += cg_phase_items(&ck->phases[ph], sym) > 0;
    }
    arena_free(a);
    return runs;
}

static void test_env_upstream(void **state) {
    (void)state;
    EnvCase c = env_case(COMBINE_LAST, 7168);
    bool cluster = false;
    assert_int_equal(norm_phases(c.g, 1, 3, &cluster), 1);
    assert_true(cluster);
    setenv("DSCC_ROWS_UPSTREAM", "0", 1);
    assert_int_equal(norm_phases(c.g, 1, 3, &cluster), 2);
    assert_false(cluster);
    env_done(&c, "DSCC_ROWS_UPSTREAM");
}

/* ---- the vector form of the other fused store passes (codegen/gen_vec.c) ----
 *
 * Groups without a norm whose stores take 8 elements a thread: the q slices
 * beside RoPE (interleaved and not, the latter YaRN-scaled), a weight
 * broadcast along the rows and a value along the last axis, the MoE
 * combine's inlined sum; gate * up through silu under a merged act_scale
 * and quantize (a half-warp a 128-wide block); the embedding. Each is held
 * to the CPU's bounds and to the old form's bits (DSCC_ELEM_VEC=0), at 1, 5
 * (a chunk count not a multiple of the warp) and 131 rows. */
static const char VEC_ROPE[] = "dim B, S;\ninput x: bf16[B, S, 4, 96];\ninput positions: i32[B, S];\ninput p: f32[B, S, 4, 1];\n"
                               "weight wv: bf16[96] = \"wv\";\n"
                               "let pe = slice(x, axis=-1, start=32, len=64);\noutput n = slice(x, axis=-1, start=0, len=32);\n"
                               "output q = rope(pe, positions, theta=10000.0, interleave=true);\n"
                               "output k = rope(pe, positions, theta=10000.0, interleave=false, factor=40.0, original_max_position=4096, "
                               "beta_fast=32.0, beta_slow=1.0);\n"
                               "output c = x * wv;\noutput b = cast(x, f32) * p;\n"
                               "output s = cast(sum(cast(x, f32) * p, axis=2), bf16);\n";
static const char VEC_SILU[] = "dim B, S;\ninput x: bf16[B, S, 512];\nweight w: bf16[128, 256] = \"w\";\n"
                               "output y = silu(linear(silu(slice(x, axis=-1, start=0, len=256)) * slice(x, axis=-1, start=256, len=256), w));\n";
static const char VEC_EMB[] = "dim B, S;\ninput ids: i32[B, S];\nweight tab: bf16[1000, 256] = \"tab\";\noutput e = embedding(tab, ids);\n";

/* Whether g's generated modules hold the vector form (the switch as the environment has it). */
static bool vec_form(const IrGraph *g) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    bool vec = false;
    for (int k = 0; k < p->nmodules; k++) vec |= strstr(p->modules[k].source, "8 elements a thread") != NULL;
    arena_free(a);
    return vec;
}

/* g's inputs at B x S: bf16-exact floats in [-2, 2) (every 7th row 30 times larger), ids and positions in [0, 1000). */
static int vec_inputs(const IrGraph *g, int64_t B, int64_t S, uint64_t *rng, CpuInput *in, float **buf) {
    int n = 0;
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "B")] = B, sym[ir_graph_find_dim(g, "S")] = S;
    for (int i = 0; i < g->nnodes && n < 4; i++) {
        const IrNode *x = g->nodes[i];
        if (x->op != IR_OP_INPUT) continue;
        int64_t cnt = 1, w = x->type.dims[x->type.rank - 1].coeff;
        in[n] = (CpuInput){ir_node_attr_str(x, "name", ""), x->type.rank, {0}, NULL};
        for (int k = 0; k < x->type.rank; k++) in[n].dims[k] = ir_dim_eval(x->type.dims[k], sym), cnt *= in[n].dims[k];
        buf[n] = malloc(sizeof(float) * (size_t)cnt);
        for (int64_t j = 0; j < cnt; j++) {
            *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(*rng >> 11) / 9007199254740992.0;
            buf[n][j] = ir_dtype_is_int(x->type.dtype) ? (float)(int)(u * 1000.0)
                                                        : rt_bf16_decode(rt_bf16_encode((float)(u * 4.0 - 2.0) * (j / w % 7 == 3 ? 30.0f : 1.0f)));
        }
        in[n].data = buf[n];
        n++;
    }
    return n;
}

/* Every stored value of one GPU run of g (the vector form on or off) at B x S, checked against the CPU executor; vals[id]
 * NULL where none. */
static void vec_run(DiagEngine *d, const IrGraph *g, bool vec, int64_t B, int64_t S, float **vals, int64_t *counts) {
    uint64_t seed = 4099u, rng = seed;
    CpuWeightSource ws = cpu_random_weights(&seed);
    if (!vec) setenv("DSCC_ELEM_VEC", "0", 1);
    GpuExec *gx = gpu_exec_new(g, &ws, &(GpuOptions){.tune = tu_tune(), .max_batch = 2, .max_seq = 136, .max_ctx = 136, .keep_all = true, .no_blas = true}, d);
    unsetenv("DSCC_ELEM_VEC");
    assert_non_null(gx);
    Cmp m = {0};
    TuGpuCmp tc = {g, gx, check_node, &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 4, .after_node = tu_take_gpu, .hook_ctx = &tc}, d);
    assert_non_null(cx);
    CpuInput in[4];
    float *buf[4] = {0};
    int nin = vec_inputs(g, B, S, &rng, in, buf);
    assert_true(gpu_exec_run(gx, in, nin, d));
    assert_true(cpu_exec_run(cx, in, nin, d));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        int64_t nc = 0;
        const float *v = n->op == IR_OP_INPUT || n->op == IR_OP_WEIGHT ? NULL : gpu_exec_value(gx, i, &nc);
        vals[i] = v ? malloc(sizeof(float) * (size_t)nc) : NULL, counts[i] = v ? nc : 0;
        if (v) memcpy(vals[i], v, sizeof(float) * (size_t)nc);
    }
    fprintf(stderr, "%lld x %lld rows, vector form %s: %d values checked, %d outside bounds\n", (long long)B, (long long)S, vec ? "on" : "off",
            m.checked, m.failed);
    assert_true(m.checked >= 1);
    assert_int_equal(m.failed, 0);
    for (int k = 0; k < nin; k++) free(buf[k]);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
}

static void check_vec(const char *src, int min_compared) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = compile(a, d, src);
    assert_true(vec_form(g));
    setenv("DSCC_ELEM_VEC", "0", 1);
    assert_false(vec_form(g));
    unsetenv("DSCC_ELEM_VEC");
    static const int64_t rows[][2] = {{1, 1}, {1, 5}, {1, 131}};
    for (int r = 0; r < 3; r++) {
        float **on = calloc((size_t)g->nnodes, sizeof(float *)), **off = calloc((size_t)g->nnodes, sizeof(float *));
        int64_t *con = calloc((size_t)g->nnodes, sizeof(int64_t)), *coff = calloc((size_t)g->nnodes, sizeof(int64_t));
        vec_run(d, g, true, rows[r][0], rows[r][1], on, con);
        vec_run(d, g, false, rows[r][0], rows[r][1], off, coff);
        int compared = 0;
        for (int i = 0; i < g->nnodes; i++) {
            assert_true((on[i] == NULL) == (off[i] == NULL));
            if (!on[i]) continue;
            assert_int_equal(con[i], coff[i]);
            int64_t diff = 0;
            for (int64_t k = 0; k < con[i]; k++) diff += memcmp(&on[i][k], &off[i][k], sizeof(float)) != 0;
            if (diff) fprintf(stderr, "  %%%d %s: %lld of %lld values differ from the old form's\n", i, ir_op_name(g->nodes[i]->op), (long long)diff, (long long)con[i]);
            assert_int_equal(diff, 0);
            compared++;
            free(on[i]), free(off[i]);
        }
        assert_true(compared >= min_compared);
        free(on), free(off), free(con), free(coff);
    }
    arena_free(a);
}

static void test_vec_rope(void **state) { (void)state, check_vec(VEC_ROPE, 6); }
static void test_vec_silu_quant(void **state) { (void)state, check_vec(VEC_SILU, 3); }
static void test_vec_embedding(void **state) { (void)state, check_vec(VEC_EMB, 1); }

/* The cluster form's parts of the sum of squares read a lane each (DSCC_ROWS_GATHER=0: one thread, one after the
 * other; the cluster cases above run the default). */
static void test_env_gather(void **state) {
    (void)state;
    EnvCase c = env_case(ADD_NORM, 7168);
    for (int off = 0; off < 2; off++) {
        if (off) setenv("DSCC_ROWS_GATHER", "0", 1);
        CgProgram *p = cg_generate(c.a, c.d, c.g, &(CgGenOptions){.tune = tu_tune()});
        assert_non_null(p);
        bool gather = false, cluster = false;
        for (int k = 0; k < p->nmodules; k++) {
            gather |= strstr(p->modules[k].source, "the parts' reads in flight at once") != NULL;
            cluster |= strstr(p->modules[k].source, "float part_ss[];") != NULL;
        }
        assert_true(cluster);
        assert_true(gather == !off);
    }
    env_done(&c, "DSCC_ROWS_GATHER");
}

int main(void) {
    if (!tu_hopper()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_add_norm_7168), cmocka_unit_test(test_add_norm_1536_f32), cmocka_unit_test(test_add_norm_1536),
                                       cmocka_unit_test(test_combine_7168),  cmocka_unit_test(test_combine_512_f32),
                                       cmocka_unit_test(test_combine_last_7168), cmocka_unit_test(test_combine_last_512),
                                       cmocka_unit_test(test_env_upstream),
                                       cmocka_unit_test(test_add_norm_16384), cmocka_unit_test(test_concat_512),
                                       cmocka_unit_test(test_env), cmocka_unit_test(test_env_prefill),
                                       cmocka_unit_test(test_prefill_exact_7168), cmocka_unit_test(test_prefill_exact_1536),
                                       cmocka_unit_test(test_prefill_exact_7168_flat),
                                       cmocka_unit_test(test_vec_rope), cmocka_unit_test(test_vec_silu_quant),
                                       cmocka_unit_test(test_vec_embedding),
                                       cmocka_unit_test(test_env_gather)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
