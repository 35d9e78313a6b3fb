/* test_cpu_model.c — the CPU executor on models/deepseek_v3.dsl bound to the
 * tiny config, with random weights: prefill followed by one-token decode
 * steps through the latent KV cache must give the logits of one full
 * forward, batch rows must be independent, and FP8 emulation must stay
 * close to FP32 while actually changing the numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "tests/unit/testutil.h"

#define B 2
#define T 9
#define V 1000

typedef struct {
    Arena *a;
    DiagEngine *d;
    IrGraph *g;
    float tok[B * T], pos[B * T];
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, stderr);
    FeOptions o = {DSCC_SOURCE_DIR "/models/tiny/config.json", NULL, 0};
    f->g = fe_compile_file(f->a, f->d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &o);
    assert_non_null(f->g);
    assert_int_equal(ir_verify(f->g, f->d), 0);
    uint64_t s = 12345;
    for (int i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        f->tok[i] = (float)((s >> 33) % V);
        f->pos[i] = (float)(i % T);
    }
    *state = f;
    return 0;
}

/* Runs positions [t0, t1) of every row; copies logits into out[B][T][V]. */
static void step(Fx *f, CpuExec *x, int t0, int t1, float *out) {
    int S = t1 - t0;
    float *tok = malloc(sizeof(float) * B * S), *pos = malloc(sizeof(float) * B * S);
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            tok[b * S + s] = f->tok[b * T + t0 + s];
            pos[b * S + s] = f->pos[b * T + t0 + s];
        }
    CpuInput in[2] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}};
    assert_true(cpu_exec_run(x, in, 2, f->d));
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *lg = cpu_exec_output(x, "logits", &rank, dims);
    assert_non_null(lg);
    assert_int_equal(rank, 3);
    assert_int_equal(dims[0], B);
    assert_int_equal(dims[1], S);
    assert_int_equal(dims[2], V);
    for (int b = 0; b < B; b++)
        memcpy(out + ((size_t)b * T + t0) * V, lg + (size_t)b * S * V, sizeof(float) * (size_t)S * V);
    free(tok);
    free(pos);
}

static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

static void test_decode_matches_full_forward(void **state) {
    Fx *f = *state;
    uint64_t seed = 7;
    CpuWeightSource ws = cpu_random_weights(&seed);
    CpuOptions o = {.threads = 2};
    CpuExec *x = cpu_exec_new(f->g, &ws, &o, f->d);
    assert_non_null(x);
    float *full = calloc(B * T * V, sizeof(float)), *inc = calloc(B * T * V, sizeof(float));
    step(f, x, 0, T, full);
    assert_int_equal(cpu_exec_cache_len(x), T);
    cpu_exec_reset(x);
    step(f, x, 0, 4, inc);
    for (int t = 4; t < T; t++) step(f, x, t, t + 1, inc);
    double err = rel_l2(inc, full, B * T * V);
    print_message("prefill 4 + 5 decode steps vs full forward: rel L2 %.3g\n", err);
    assert_true(err < 1e-5);
    /* logits are not degenerate: they vary across the vocabulary */
    float mn = full[0], mx = full[0];
    for (int i = 0; i < V; i++) { mn = fminf(mn, full[i]); mx = fmaxf(mx, full[i]); }
    assert_true(mx - mn > 0.1f);
    free(full);
    free(inc);
    cpu_exec_free(x);
}

/* logits_last_only: the LM head on each row's last position alone gives
 * exactly the last row of the all-positions logits, in prefill and in a
 * decode step through the cache. */
static void test_logits_last_only(void **state) {
    Fx *f = *state;
    FeSetting set = {"logits_last_only", "true"};
    FeOptions fo = {DSCC_SOURCE_DIR "/models/tiny/config.json", &set, 1};
    IrGraph *g1 = fe_compile_file(f->a, f->d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g1);
    assert_int_equal(ir_verify(g1, f->d), 0);
    uint64_t s1 = 7, s2 = 7;
    CpuWeightSource w1 = cpu_random_weights(&s1), w2 = cpu_random_weights(&s2);
    CpuOptions o = {.threads = 2};
    CpuExec *all = cpu_exec_new(f->g, &w1, &o, f->d), *last = cpu_exec_new(g1, &w2, &o, f->d);
    assert_non_null(all);
    assert_non_null(last);
    float *full = calloc(B * T * V, sizeof(float));
    step(f, all, 0, T - 1, full);
    step(f, all, T - 1, T, full);
    const int spans[2][2] = {{0, T - 1}, {T - 1, T}};
    for (int k = 0; k < 2; k++) {
        int S = spans[k][1] - spans[k][0];
        float tok[B * T], pos[B * T];
        for (int b = 0; b < B; b++)
            for (int i = 0; i < S; i++) {
                tok[b * S + i] = f->tok[b * T + spans[k][0] + i];
                pos[b * S + i] = f->pos[b * T + spans[k][0] + i];
            }
        CpuInput in[2] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}};
        assert_true(cpu_exec_run(last, in, 2, f->d));
        int rank;
        int64_t dims[IR_MAX_RANK];
        const float *lg = cpu_exec_output(last, "logits", &rank, dims);
        assert_non_null(lg);
        assert_int_equal(rank, 3);
        assert_int_equal(dims[0], B);
        assert_int_equal(dims[1], 1);
        assert_int_equal(dims[2], V);
        for (int b = 0; b < B; b++)
            assert_memory_equal(lg + (size_t)b * V, full + ((size_t)b * T + spans[k][1] - 1) * V, sizeof(float) * V);
    }
    free(full);
    cpu_exec_free(all);
    cpu_exec_free(last);
}

static void test_fp8_close_but_different(void **state) {
    Fx *f = *state;
    uint64_t seed = 7;
    CpuWeightSource ws = cpu_random_weights(&seed);
    CpuOptions o32 = {.threads = 2}, o8 = {.threads = 2, .fp8 = true};
    CpuExec *x32 = cpu_exec_new(f->g, &ws, &o32, f->d), *x8 = cpu_exec_new(f->g, &ws, &o8, f->d);
    float *a = calloc(B * T * V, sizeof(float)), *b = calloc(B * T * V, sizeof(float));
    step(f, x32, 0, T, a);
    step(f, x8, 0, T, b);
    double err = rel_l2(b, a, B * T * V);
    print_message("fp8 emulation vs fp32: rel L2 %.3g\n", err);
    /* E4M3 keeps 3 mantissa bits (rounding error up to 6.25% per value);
     * over ~20 quantized GEMMs of a random network the logits move by
     * roughly 10%. Far from both zero and noise: */
    assert_true(err > 1e-3); /* quantization happened */
    assert_true(err < 0.3);  /* and stayed an approximation */
    free(a);
    free(b);
    cpu_exec_free(x32);
    cpu_exec_free(x8);
}

static void test_bad_token(void **state) {
    Fx *f = *state;
    uint64_t seed = 1;
    CpuWeightSource ws = cpu_random_weights(&seed);
    CpuExec *x = cpu_exec_new(f->g, &ws, NULL, f->d);
    float tok[2] = {3, 1000}, pos[2] = {0, 1};
    CpuInput in[2] = {{"tokens", 2, {1, 2}, tok}, {"positions", 2, {1, 2}, pos}};
    DiagEngine *quiet = diag_new(f->a, NULL);
    assert_false(cpu_exec_run(x, in, 2, quiet));
    assert_non_null(strstr(diag_first(quiet)->msg, "token id 1000 is outside the vocabulary 0..999"));
    CpuInput missing[1] = {{"tokens", 2, {1, 2}, tok}};
    assert_false(cpu_exec_run(x, missing, 1, quiet));
    assert_non_null(strstr(diag_first(quiet)->next->msg, "input 'positions' was not given"));
    cpu_exec_free(x);
}

/* Random weights depend on (seed, name) only, and follow the documented
 * distribution: matrices uniform in ±1/sqrt(fan_in), vectors 1 ± 0.1. */
static void test_random_weights(void **state) {
    (void)state;
    uint64_t s1 = 42, s2 = 43;
    CpuWeightSource a = cpu_random_weights(&s1), b = cpu_random_weights(&s2);
    IrType mat = {.dtype = IR_DT_BF16, .rank = 2, .dims = {ir_dim_const(30), ir_dim_const(64)}};
    IrType vec = {.dtype = IR_DT_BF16, .rank = 1, .dims = {ir_dim_const(64)}};
    static float m1[30 * 64], m2[30 * 64], m3[30 * 64], m4[30 * 64], v[64];
    assert_true(a.load(a.ctx, "x.weight", &mat, m1, NULL));
    assert_true(a.load(a.ctx, "y.weight", &mat, m2, NULL)); /* another name between */
    assert_true(a.load(a.ctx, "x.weight", &mat, m3, NULL));
    assert_true(b.load(b.ctx, "x.weight", &mat, m4, NULL));
    assert_true(a.load(a.ctx, "n.weight", &vec, v, NULL));
    assert_memory_equal(m1, m3, sizeof m1);
    int same_name = 0, same_seed = 0;
    double lo = 1, hi = -1, mean = 0;
    for (int i = 0; i < 30 * 64; i++) {
        same_name += m1[i] == m2[i];
        same_seed += m1[i] == m4[i];
        lo = fmin(lo, m1[i]);
        hi = fmax(hi, m1[i]);
        mean += m1[i] / (30 * 64);
    }
    assert_true(same_name < 5 && same_seed < 5);
    assert_true(lo >= -0.125 && hi <= 0.125 && lo < -0.11 && hi > 0.11); /* 1/sqrt(64), filled out */
    assert_true(fabs(mean) < 0.01);
    for (int i = 0; i < 64; i++) assert_true(v[i] >= 0.9f && v[i] <= 1.1f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decode_matches_full_forward, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_logits_last_only, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_fp8_close_but_different, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_bad_token, setup, tu_arena_teardown),
        cmocka_unit_test(test_random_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
