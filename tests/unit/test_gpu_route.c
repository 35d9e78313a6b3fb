/* test_gpu_route.c — the fused MoE gate (codegen/kernels/route_topk.cuh:
 * sigmoid, + bias, group top-k, the chosen scores, normalised and scaled,
 * one kernel after the router GEMM) against the CPU executor running the
 * same IR ops one by one. Exits 77 (skipped) without a GPU;
 * emu.test_gpu_route runs it on the emulated device.
 *
 * Logits and bias are inputs the test draws: values on a coarse grid (many
 * exact ties in the scores and in the biased choices), rows whose logits
 * are all equal (every group ties), a few infinities and NaNs, and a bias
 * large enough to change which experts win. The expert ids must equal the
 * CPU's and the weights within 4 ulps of the CPU's (the same f32
 * operations in the same order; a GPU's expf is within 2 ulps of the
 * host's: on an H100 up to 11 weights of a run were not bitwise equal). The test
 * first checks that its data discriminates: in enough rows, dropping the
 * group limit, the bias, or the lower-index tie rule changes the CPU's
 * choice, so a kernel skipping any of them fails. Shapes: V3's gate (256
 * experts, 8 groups, 4 kept, top-8, the fast group form) at M = 1, 3, 32,
 * 300 rows; a gate whose groups fall across lanes (80 experts, 5 groups of
 * 16, group_top 3: the general group form); one without normalisation;
 * one of the chosen scores alone. test_fused: with DSCC_ROUTE_FUSE=1 the
 * router GEMM's last CTA routes at M <= 8, bit for bit the routing kernel. */
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
    int E, K, NG, TG, GT;
    bool norm;
    double scale;
} Gate;

static uint32_t next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

/* Row r of the logits: mostly a grid of 9 values (ties), every 7th row
 * constant, now and then an infinity or a NaN. */
static void draw(uint64_t *s, float *x, int64_t rows, int E) {
    for (int64_t r = 0; r < rows; r++)
        for (int e = 0; e < E; e++) {
            float v = (float)((int)(next(s) % 9) - 4) * 0.5f;
            if (r % 7 == 6) v = 0.25f;
            uint32_t u = next(s) % 400;
            if (r % 7 != 6 && u == 0) v = INFINITY;
            if (r % 7 != 6 && u == 1) v = -INFINITY;
            if (r % 7 != 6 && u == 2 && r % 5 == 3) v = NAN;
            x[r * E + e] = v;
        }
}

/* The CPU's rule (cpu/ops.c), with switches for the test's controls:
 * groups (false: no group limit), bias (false: choose by the scores),
 * lower (false: ties to the higher index). */
static float key(float v) { return isnan(v) ? -INFINITY : v; }
static bool better(float a, int ia, float b, int ib, bool lower) {
    return key(a) > key(b) || (key(a) == key(b) && (lower ? ia < ib : ia > ib));
}
static void ref_route(const Gate *t, const float *x, const float *bias, bool groups, bool use_bias, bool lower, int *idx) {
    int per = t->E / t->NG;
    float c[1024], gs[64];
    bool keep[1024], taken[1024], gk[64] = {0};
    for (int e = 0; e < t->E; e++) c[e] = 1.0f / (1.0f + expf(-x[e])) + (use_bias ? bias[e] : 0.0f);
    for (int g = 0; g < t->NG; g++) {
        memset(taken, 0, sizeof taken);
        gs[g] = 0.0f;
        for (int r = 0; r < t->GT; r++) {
            int b = -1;
            for (int e = g * per; e < g * per + per; e++)
                if (!taken[e] && (b < 0 || better(c[e], e, c[b], b, lower))) b = e;
            taken[b] = true, gs[g] += key(c[b]);
        }
        gs[g] = key(gs[g]);
    }
    for (int r = 0; r < t->TG; r++) {
        int b = -1;
        for (int g = 0; g < t->NG; g++)
            if (!gk[g] && (b < 0 || better(gs[g], g, gs[b], b, lower))) b = g;
        gk[b] = true;
    }
    for (int e = 0; e < t->E; e++) keep[e] = !groups || gk[e / per], taken[e] = false;
    for (int r = 0; r < t->K; r++) {
        int b = -1;
        for (int e = 0; e < t->E; e++)
            if (keep[e] && !taken[e] && (b < 0 || better(c[e], e, c[b], b, lower))) b = e;
        taken[b] = true, idx[r] = b;
    }
}

/* Rows whose ids differ from the CPU's (ids as floats, [rows][K]). */
static int64_t rows_differing(const Gate *t, const float *x, const float *bias, const float *cpu_idx, int64_t rows, bool groups, bool use_bias,
                              bool lower) {
    int64_t n = 0;
    for (int64_t r = 0; r < rows; r++) {
        int idx[32];
        ref_route(t, x + r * t->E, bias, groups, use_bias, lower, idx);
        bool same = true;
        for (int k = 0; k < t->K; k++) same = same && (float)idx[k] == cpu_idx[r * t->K + k];
        n += !same;
    }
    return n;
}

static int node_of(const IrGraph *g, IrOp op) {
    for (int i = g->nnodes - 1; i >= 0; i--)
        if (g->nodes[i]->op == op) return i;
    return -1;
}

/* Whether a and b are within 4 units in the last place (both NaN counts): the
 * device's expf is within 2 ulp of the host's correctly rounded one, so the
 * same operations in the same order may end a few ulps apart; a wrong score,
 * sum or scale is millions of ulps off. */
static bool near_f32(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0)) return a == b; /* +0 and -0 */
    int64_t dist = (int64_t)ia - (int64_t)ib;
    return dist >= -4 && dist <= 4;
}

static void check_gate(const Gate *t, const int64_t (*bs)[2], int nbs) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char *src = arena_printf(a,
                             "dim B, S;\ninput x: f32[B, S, %d];\ninput bias: f32[%d];\n"
                             "let s = sigmoid(x);\n"
                             "let idx = group_topk(s + bias, k=%d, groups=%d, topk_groups=%d, group_top=%d);\n"
                             "let w = gather(s, idx, axis=-1);\n%s"
                             "output ids = idx;\noutput wts = %s;\n",
                             t->E, t->E, t->K, t->NG, t->TG, t->GT, t->norm ? "w = w / (sum(w, axis=-1, keepdim=true) + 1e-20);\n" : "",
                             t->scale != 1.0 ? arena_printf(a, "w * %.9g", t->scale) : "w");
    IrGraph *g = tu_compile_src(a, d, "route.dsl", src, "shape-infer,fold-constants,dce,cse,dce,fuse");
    /* the gate is one kernel of one phase: the route_topk form */
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int gates = 0, phases = 0;
    for (int k = 0; k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++) phases++, gates += strstr(p->kernels[k].phases[f].fn, "route_topk") != NULL;
    assert_int_equal(gates, 1);
    assert_int_equal(phases, 1);
    uint64_t seed = tu_test_seed() + (uint64_t)t->E * 31 + (uint64_t)t->K;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = 4, .max_seq = 100, .max_ctx = 100, .keep_all = true, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    CpuExec *cx = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 2}, d);
    assert_non_null(cx);
    int tid = node_of(g, IR_OP_GROUP_TOPK), wid = g->nodes[node_of(g, IR_OP_OUTPUT)]->ops[0]->id;
    float *bias = malloc(sizeof(float) * (size_t)t->E), *x = malloc(sizeof(float) * 400 * (size_t)t->E);
    uint64_t rng = seed;
    for (int e = 0; e < t->E; e++) bias[e] = (float)((int)(next(&rng) % 5) - 2) * 0.25f; /* moves scores across the grid's steps */
    int64_t total = 0, off_groups = 0, off_bias = 0, off_ties = 0;
    for (int c = 0; c < nbs; c++) {
        int64_t B = bs[c][0], S = bs[c][1], M = B * S;
        draw(&rng, x, M, t->E);
        CpuInput in[2] = {{"x", 3, {B, S, t->E}, x}, {"bias", 1, {t->E}, bias}};
        assert_true(gpu_exec_run(gx, in, 2, d));
        assert_true(cpu_exec_run(cx, in, 2, d));
        int64_t ni = 0, nw = 0, nc = 0, ncw = 0;
        const float *gv = gpu_exec_value(gx, tid, &ni); /* valid until the next call */
        assert_non_null(gv);
        float *gi = malloc(sizeof(float) * (size_t)ni);
        memcpy(gi, gv, sizeof(float) * (size_t)ni);
        const float *gw = gpu_exec_value(gx, wid, &nw);
        float *ci = tu_output_copy(cx, "ids", &nc), *cw = tu_output_copy(cx, "wts", &ncw);
        assert_non_null(gw), assert_non_null(ci), assert_non_null(cw);
        assert_int_equal(ni, M * t->K), assert_int_equal(nc, M * t->K), assert_int_equal(nw, M * t->K), assert_int_equal(ncw, M * t->K);
        int64_t bad_i = 0, bad_w = 0;
        for (int64_t i = 0; i < M * t->K; i++) bad_i += gi[i] != ci[i], bad_w += !near_f32(gw[i], cw[i]);
        /* the data discriminates: the reference reproduces the CPU, its controls do not */
        assert_int_equal(rows_differing(t, x, bias, ci, M, true, true, true), 0);
        total += M;
        off_groups += rows_differing(t, x, bias, ci, M, false, true, true);
        off_bias += rows_differing(t, x, bias, ci, M, true, false, true);
        off_ties += rows_differing(t, x, bias, ci, M, true, true, false);
        fprintf(stderr, "E %d, k %d, %d groups keep %d (top %d), M %lld: %lld ids and %lld weights (by over 4 ulps) differ from the CPU's\n", t->E, t->K, t->NG, t->TG, t->GT,
                (long long)M, (long long)bad_i, (long long)bad_w);
        assert_int_equal(bad_i, 0);
        assert_int_equal(bad_w, 0);
        free(gi), free(ci), free(cw);
    }
    fprintf(stderr, "of %lld rows, %lld change without the group limit, %lld without the bias, %lld with ties to the higher index\n",
            (long long)total, (long long)off_groups, (long long)off_bias, (long long)off_ties);
    assert_true(off_groups * 10 >= total && off_bias * 10 >= total && off_ties * 10 >= total);
    free(bias), free(x);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static const int64_t ROWS[][2] = {{1, 1}, {1, 3}, {2, 16}, {3, 100}};

static void test_v3_gate(void **state) {
    (void)state;
    check_gate(&(Gate){256, 8, 8, 4, 2, true, 2.5}, ROWS, 4);
}

static void test_groups_across_lanes(void **state) {
    (void)state;
    check_gate(&(Gate){80, 6, 5, 2, 3, true, 1.5}, (const int64_t[][2]){{1, 3}, {3, 100}}, 2);
}

static void test_unnormalised(void **state) {
    (void)state;
    check_gate(&(Gate){64, 4, 4, 2, 2, false, 16.0}, (const int64_t[][2]){{1, 1}, {2, 16}}, 2);
}

static void test_bare(void **state) { /* the chosen scores alone: the gather is the last op */
    (void)state;
    check_gate(&(Gate){64, 4, 4, 2, 2, false, 1.0}, (const int64_t[][2]){{1, 3}, {2, 16}}, 2);
}

/* DSCC_ROUTE_FUSE=1: V3's gate after a router GEMM (256 x 1,024 BF16 through f32 casts: gemm_skinny2.cuh at M <= 8,
 * 32 CTAs), run with and without the switch. Without it the routing kernel runs at every row count; with it the
 * router's module takes tickets and the routing kernel runs only above 8 rows, the router's CTA that finishes last
 * routing the rows below: ids and weights bit for bit the run without it, the ids near the CPU's (the GEMM's sums in
 * another order move a few near ties), one launch fewer at M <= 8. */
static const char *FUSED_SRC = "dim B, S;\ninput h: bf16[B, S, 1024];\ninput bias: f32[256];\nweight router: bf16[256, 1024] = \"router\";\n"
                               "let s = sigmoid(linear(cast(h, f32), cast(router, f32)));\n"
                               "let idx = group_topk(s + bias, k=8, groups=8, topk_groups=4, group_top=2);\n"
                               "let w = gather(s, idx, axis=-1);\n"
                               "output ids = idx;\noutput wts = w / (sum(w, axis=-1, keepdim=true) + 1e-20) * 2.5;\n";

/* The routing phase's amin, and whether the router's module routes (its tickets); asserts that its routing (the
 * instance between `#define DSCC_ENTRY p<n>_rfuse` and the next #undef of it) has no entry point, which would never
 * launch. */
static int64_t fused_gate(Arena *a, const IrGraph *g, bool *tickets) {
    CgProgram *p = cg_generate(a, diag_new(a, stderr), g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int64_t amin = -1;
    *tickets = false;
    for (int k = 0; k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++) {
            if (strstr(p->kernels[k].phases[f].fn, "route_topk")) amin = p->kernels[k].phases[f].amin;
            const char *src = p->modules[p->kernels[k].module].source;
            if (!strstr(p->kernels[k].phases[f].fn, "skinny2") || !strstr(src, "#define SK_LAST(a)")) continue;
            *tickets = true;
            const char *at = strstr(src, "_rfuse\n"), *end = at ? strstr(at, "#undef DSCC_ENTRY") : NULL, *gl = at ? strstr(at, "__global__") : NULL;
            assert_non_null(end);
            assert_true(!gl || gl > end);
        }
    return amin;
}

/* Runs M = 1, 3, 8, 12 rows (B = 1): ids and weights of each into ids and wts, launches into nl. */
static void run_fused(float *ids, float *wts, int *nl) {
    static const int64_t MS[] = {1, 3, 8, 12};
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = tu_compile_src(a, d, "router.dsl", FUSED_SRC, "shape-infer,fold-constants,dce,cse,dce,fuse");
    uint64_t seed = 11;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuExec *gx = gpu_exec_new(g, &ws, &(GpuOptions){.tune = tu_tune(), .max_batch = 1, .max_seq = 12, .max_ctx = 12, .no_blas = true}, d);
    assert_non_null(gx);
    CpuExec *cx = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 2}, d);
    assert_non_null(cx);
    float *h = malloc(sizeof(float) * 12 * 1024), bias[256];
    uint64_t rng = 5;
    for (int e = 0; e < 256; e++) bias[e] = (float)((int)(next(&rng) % 5) - 2) * 0.25f;
    int64_t at = 0;
    for (int c = 0; c < 4; c++) {
        const int64_t M = MS[c];
        tu_bf16_rows(h, M, 1024, &rng);
        CpuInput in[2] = {{"h", 3, {1, M, 1024}, h}, {"bias", 1, {256}, bias}};
        assert_true(gpu_exec_run(gx, in, 2, d));
        assert_true(cpu_exec_run(cx, in, 2, d));
        nl[c] = gpu_exec_last_launches(gx);
        int r1, r2;
        int64_t d1[IR_MAX_RANK], d2[IR_MAX_RANK];
        const float *gi = gpu_exec_output(gx, "ids", &r1, d1), *gw = gpu_exec_output(gx, "wts", &r2, d2);
        assert_non_null(gi), assert_non_null(gw);
        memcpy(ids + at, gi, sizeof(float) * (size_t)(M * 8));
        memcpy(wts + at, gw, sizeof(float) * (size_t)(M * 8));
        int64_t nc = 0;
        float *ci = tu_output_copy(cx, "ids", &nc);
        int64_t bad = 0;
        for (int64_t i = 0; i < M * 8; i++) bad += ci[i] != gi[i];
        fprintf(stderr, "router + gate (DSCC_ROUTE_FUSE=%s), M %lld: %d launches, %lld ids differ from the CPU's\n",
                getenv("DSCC_ROUTE_FUSE") ? getenv("DSCC_ROUTE_FUSE") : "unset", (long long)M, nl[c], (long long)bad);
        assert_true(bad * 8 <= M * 8); /* near ties move with the GEMM's order of sums; a wrong routing is far off */
        free(ci);
        at += M * 8;
    }
    free(h);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static void test_fused(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = tu_compile_src(a, d, "router.dsl", FUSED_SRC, "shape-infer,fold-constants,dce,cse,dce,fuse");
    bool tickets;
    unsetenv("DSCC_ROUTE_FUSE");
    assert_int_equal(fused_gate(a, g, &tickets), 0);
    assert_false(tickets);
    setenv("DSCC_ROUTE_FUSE", "1", 1);
    assert_int_equal(fused_gate(a, g, &tickets), 8);
    assert_true(tickets);
    unsetenv("DSCC_ROUTE_FUSE");
    enum { N = (1 + 3 + 8 + 12) * 8 };
    float ids[2][N], wts[2][N];
    int nl[2][4];
    run_fused(ids[0], wts[0], nl[0]);
    setenv("DSCC_ROUTE_FUSE", "1", 1);
    run_fused(ids[1], wts[1], nl[1]);
    unsetenv("DSCC_ROUTE_FUSE");
    assert_memory_equal(ids[0], ids[1], sizeof ids[0]);
    assert_memory_equal(wts[0], wts[1], sizeof wts[0]);
    for (int c = 0; c < 4; c++) assert_int_equal(nl[1][c], nl[0][c] - (c < 3));
    arena_free(a);
}

int main(void) {
    Arena *a = arena_new();
    RtCuda *c = rt_cuda_open(diag_new(a, NULL), 0);
    bool gpu = c != NULL;
    if (!gpu) printf("skipped: no CUDA GPU on this machine\n");
    rt_cuda_close(c);
    arena_free(a);
    if (!gpu) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_v3_gate), cmocka_unit_test(test_groups_across_lanes), cmocka_unit_test(test_unnormalised),
                                       cmocka_unit_test(test_bare), cmocka_unit_test(test_fused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
