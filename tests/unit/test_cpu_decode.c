/* test_cpu_decode.c — the KV cache across runs. A two-layer attention
 * model (RoPE, grouped kv heads, one cache per layer for k and v) written in
 * the DSL runs a whole sequence at once and then as a prefill of P tokens
 * followed by one-token steps; every position's output must agree (the
 * causal mask offset T - S is what makes them agree). Also: the cache yields
 * the whole context, a failed step leaves it as it was, reset empties it,
 * and a graph that appends to one cache twice is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "tests/unit/testutil.h"

#define B 2
#define L 11 /* sequence length */
#define D 16 /* model width */
#define V 50

static const char *model =
    "dim B, S, T;\n"
    "input tokens: i32[B, S];\n"
    "input positions: i32[B, S];\n"
    "weight emb: f32[50, 16] = \"emb\";\n"
    "let h = embedding(emb, tokens);\n"
    "for l in 0 .. 2 {\n"
    "  weight nw: f32[16] = \"l{l}.norm\";\n"
    "  weight wq: f32[16, 16] = \"l{l}.q\";\n"
    "  weight wk: f32[8, 16] = \"l{l}.k\";\n"
    "  weight wv: f32[8, 16] = \"l{l}.v\";\n"
    "  weight wo: f32[16, 16] = \"l{l}.o\";\n"
    "  let x = rmsnorm(h, nw, eps=1e-6);\n"
    "  let q = rope(reshape(linear(x, wq), [B, S, 4, 4]), positions, theta=100.0, interleave=true);\n"
    "  let k = rope(reshape(linear(x, wk), [B, S, 2, 4]), positions, theta=100.0, interleave=true);\n"
    "  let kc = kv_cache(k, name=\"l{l}.k\");\n"
    "  let vc = kv_cache(reshape(linear(x, wv), [B, S, 2, 4]), name=\"l{l}.v\");\n"
    "  let a = attention(q, kc, vc, scale=0.5, causal=true);\n"
    "  h = h + linear(reshape(a, [B, S, 16]), wo);\n"
    "  if l == 1 { output keys = kc; }\n"
    "}\n"
    "weight ptab: f32[16, 16] = \"ptab\";\n"
    "output y = h + embedding(ptab, positions); // after the caches: a bad position fails late\n";

typedef struct {
    Arena *a;
    DiagEngine *d;
    IrGraph *g;
    uint64_t seed;
    float tok[B * L];
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, stderr);
    f->g = fe_compile_string(f->a, f->d, "decode.dsl", model, strlen(model), NULL);
    assert_non_null(f->g);
    assert_int_equal(ir_verify(f->g, f->d), 0);
    uint64_t s = (uint64_t)time(NULL) * 2654435761u + 17;
    f->seed = s;
    print_message("weights and tokens from seed %llu\n", (unsigned long long)s);
    for (int i = 0; i < B * L; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        f->tok[i] = (float)((s >> 33) % V);
    }
    *state = f;
    return 0;
}

/* Runs positions [t0, t1) of every row; copies y into all [B][L][D]. */
static bool step(Fx *f, CpuExec *x, int t0, int t1, float *all, DiagEngine *d) {
    int S = t1 - t0;
    float tok[B * L], pos[B * L];
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            tok[b * S + s] = f->tok[b * L + t0 + s];
            pos[b * S + s] = (float)(t0 + s);
        }
    CpuInput in[2] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}};
    if (!cpu_exec_run(x, in, 2, d)) return false;
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *y = cpu_exec_output(x, "y", &rank, dims);
    assert_non_null(y);
    assert_int_equal(rank, 3);
    assert_true(dims[0] == B && dims[1] == S && dims[2] == D);
    for (int b = 0; b < B; b++) memcpy(all + ((size_t)b * L + t0) * D, y + (size_t)b * S * D, sizeof(float) * (size_t)S * D);
    return true;
}

static void test_prefill_then_steps_equals_full(void **state) {
    Fx *f = *state;
    CpuWeightSource ws = cpu_random_weights(&f->seed);
    CpuOptions o = {.threads = 3};
    CpuExec *x = cpu_exec_new(f->g, &ws, &o, f->d);
    assert_non_null(x);
    static float full[B * L * D], inc[B * L * D];
    assert_true(step(f, x, 0, L, full, f->d));
    assert_int_equal(cpu_exec_cache_len(x), L);
    /* the cache yields the whole context: layer 1's keys of every position */
    int rank;
    int64_t dims[IR_MAX_RANK];
    static float keys_full[B * L * 8];
    const float *kf = cpu_exec_output(x, "keys", &rank, dims);
    assert_true(rank == 4 && dims[0] == B && dims[1] == L && dims[2] == 2 && dims[3] == 4);
    memcpy(keys_full, kf, sizeof keys_full);
    for (int P = 1; P <= 6; P += 5) { /* a one-token prefill, and a longer one */
        cpu_exec_reset(x);
        assert_int_equal(cpu_exec_cache_len(x), 0);
        memset(inc, 0, sizeof inc);
        assert_true(step(f, x, 0, P, inc, f->d));
        for (int t = P; t < L; t++) {
            assert_true(step(f, x, t, t + 1, inc, f->d));
            assert_int_equal(cpu_exec_cache_len(x), t + 1);
        }
        double err = tu_rel_maxdiff(inc, full, B * L * D);
        print_message("prefill %d + %d one-token steps vs one forward: max abs diff / max %.3g\n", P, L - P, err);
        assert_true(err <= 1e-5);
        /* the last step's context is the full run's: T = L */
        const float *k = cpu_exec_output(x, "keys", &rank, dims);
        assert_true(dims[1] == L);
        assert_true(tu_rel_maxdiff(k, keys_full, B * L * 8) <= 1e-6);
    }
    /* outputs depend on the context: a later position differs from a fresh
     * one-token run of the same token at the same position */
    cpu_exec_reset(x);
    static float alone[B * L * D];
    assert_true(step(f, x, L - 1, L, alone, f->d));
    assert_true(tu_rel_maxdiff(alone + (L - 1) * D, full + (L - 1) * D, D) > 1e-3);
    cpu_exec_free(x);
}

static void test_failed_step_and_reset(void **state) {
    Fx *f = *state;
    CpuWeightSource ws = cpu_random_weights(&f->seed);
    CpuExec *x = cpu_exec_new(f->g, &ws, NULL, f->d);
    static float full[B * L * D], inc[B * L * D];
    assert_true(step(f, x, 0, L, full, f->d));
    cpu_exec_reset(x);
    assert_true(step(f, x, 0, 4, inc, f->d));
    /* a position past the table fails the step after every cache appended:
     * none of it stays */
    DiagEngine *quiet = diag_new(f->a, NULL);
    float btok[B] = {1, 2}, bpos[B] = {4, 16};
    CpuInput bad[2] = {{"tokens", 2, {B, 1}, btok}, {"positions", 2, {B, 1}, bpos}};
    assert_false(cpu_exec_run(x, bad, 2, quiet));
    assert_non_null(strstr(diag_first(quiet)->msg, "token id 16 is outside the vocabulary 0..15"));
    assert_int_equal(diag_first(quiet)->loc.line, 22);
    assert_int_equal(cpu_exec_cache_len(x), 4);
    for (int t = 4; t < L; t++) assert_true(step(f, x, t, t + 1, inc, f->d));
    assert_true(tu_rel_maxdiff(inc, full, B * L * D) <= 1e-5);
    /* after reset a different batch size is fine: one row of the sequence */
    cpu_exec_reset(x);
    float pos[L];
    for (int t = 0; t < L; t++) pos[t] = (float)t;
    CpuInput one[2] = {{"tokens", 2, {1, L}, f->tok + L}, {"positions", 2, {1, L}, pos}};
    assert_true(cpu_exec_run(x, one, 2, f->d));
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *y = cpu_exec_output(x, "y", &rank, dims);
    assert_true(dims[0] == 1 && dims[1] == L);
    assert_true(tu_rel_maxdiff(y, full + L * D, L * D) <= 1e-5); /* rows are independent */
    /* without a reset, the batch may not change */
    CpuInput two[2] = {{"tokens", 2, {B, 1}, f->tok}, {"positions", 2, {B, 1}, pos}};
    assert_false(cpu_exec_run(x, two, 2, quiet));
    assert_non_null(strstr(diag_first(quiet)->next->msg, "holds batch 1; reset it before running batch 2"));
    assert_int_equal(cpu_exec_cache_len(x), L);
    cpu_exec_free(x);
}

/* Speculative decoding's rollback: positions run with wrong tokens and then
 * truncated away leave no trace; truncating past the cache is refused. */
static void test_truncate(void **state) {
    Fx *f = *state;
    CpuWeightSource ws = cpu_random_weights(&f->seed);
    CpuExec *x = cpu_exec_new(f->g, &ws, NULL, f->d);
    static float full[B * L * D], inc[B * L * D];
    assert_true(step(f, x, 0, L, full, f->d));
    cpu_exec_reset(x);
    assert_true(step(f, x, 0, 5, inc, f->d));
    float saved[B * L];
    memcpy(saved, f->tok, sizeof saved);
    for (int i = 0; i < B * L; i++) f->tok[i] = (float)(((int)f->tok[i] + 7) % V); /* wrong drafts */
    static float junk[B * L * D];
    assert_true(step(f, x, 5, 7, junk, f->d));
    assert_int_equal(cpu_exec_cache_len(x), 7);
    assert_false(cpu_exec_truncate(x, 8));
    assert_false(cpu_exec_truncate(x, -1));
    assert_int_equal(cpu_exec_cache_len(x), 7);
    assert_true(cpu_exec_truncate(x, 5));
    assert_int_equal(cpu_exec_cache_len(x), 5);
    memcpy(f->tok, saved, sizeof saved);
    assert_true(step(f, x, 5, 7, inc, f->d)); /* two positions at once, as a verify step */
    for (int t = 7; t < L; t++) assert_true(step(f, x, t, t + 1, inc, f->d));
    double err = tu_rel_maxdiff(inc, full, B * L * D);
    print_message("after a rollback of 2 positions vs one forward: max abs diff / max %.3g\n", err);
    assert_true(err <= 1e-5);
    assert_true(tu_rel_maxdiff(junk + 5 * D, full + 5 * D, 2 * D) > 1e-3); /* the wrong tokens did differ */
    cpu_exec_free(x);
}

static void test_one_cache_per_name(void **state) {
    Fx *f = *state;
    const char *src = "dim B, S, T;\ninput x: f32[B, S, 4];\nlet a = kv_cache(x, name=\"c\");\nlet b = kv_cache(x, name=\"c\");\n"
                      "output y = sum(a, axis=1) + sum(b, axis=1);\n";
    DiagEngine *quiet = diag_new(f->a, NULL);
    IrGraph *g = fe_compile_string(f->a, quiet, "dup.dsl", src, strlen(src), NULL);
    assert_non_null(g);
    CpuWeightSource ws = cpu_random_weights(&f->seed);
    assert_null(cpu_exec_new(g, &ws, NULL, quiet));
    assert_non_null(strstr(diag_first(quiet)->msg, "kv_cache 'c' is appended to twice in one graph"));
    assert_int_equal(diag_first(quiet)->loc.line, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefill_then_steps_equals_full, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_failed_step_and_reset, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_one_cache_per_name, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_truncate, setup, tu_arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
