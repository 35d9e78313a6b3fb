/* test_fidelity.c — dscc against an independent implementation.
 *
 * tests/fixtures/ holds a tiny random DeepSeek-V3 and the logits that
 * Hugging Face transformers' DeepseekV3ForCausalLM computed for it in FP32
 * (tools/make_fixtures.py). models/deepseek_v3.dsl, bound to the fixture's
 * config.json and run by the CPU executor from the fixture's safetensors,
 * must reproduce them:
 *   - BF16 checkpoint: relative L2 < 1e-3, argmax agreement 100%;
 *   - prefill of 5 positions then one-token decode steps through the latent
 *     cache (absorbed MLA): the full forward's logits, rel L2 < 1e-5;
 *   - FP8 checkpoint, unquantized linears: the FP32 forward of the
 *     dequantized weights, rel L2 < 1e-3;
 *   - FP8 checkpoint, FP8 linears (1x128 activation tiles): the fixture's
 *     emulation of DeepSeek's scheme, rel L2 < 1e-4 (measured 5e-7: both
 *     sides round the same values to E4M3; what remains is FP32 summation
 *     order). */
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
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/"

typedef struct {
    Arena *a;
    DiagEngine *d;
    RtCheckpoint *ck;
    IrGraph *g;
    RtArray tok;
} Fx;

static Fx *open_fixture(const char *dir) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, stderr);
    f->ck = rt_checkpoint_open(f->a, f->d, dir);
    assert_non_null(f->ck);
    FeOptions o = {rt_checkpoint_config_path(f->ck), NULL, 0};
    assert_non_null(o.config_path);
    f->g = fe_compile_file(f->a, f->d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &o);
    assert_non_null(f->g);
    assert_int_equal(ir_verify(f->g, f->d), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/tokens.npy", dir);
    assert_true(rt_npy_read(f->d, path, &f->tok));
    assert_int_equal(f->tok.rank, 2);
    return f;
}

static void close_fixture(Fx *f) {
    free(f->tok.data);
    rt_checkpoint_close(f->ck);
    arena_free(f->a);
    free(f);
}

/* Logits [B, T, V] for the fixture's tokens; prefill < T runs the rest one
 * position at a time. Caller frees. */
static float *run(Fx *f, bool fp8, int64_t prefill, int64_t *V) {
    CpuWeightSource ws = {rt_checkpoint_read_f32, f->ck};
    CpuOptions o = {.threads = 2, .fp8 = fp8};
    CpuExec *x = cpu_exec_new(f->g, &ws, &o, f->d);
    assert_non_null(x);
    int64_t B = f->tok.shape[0], T = f->tok.shape[1];
    float *all = NULL;
    for (int64_t t0 = 0; t0 < T;) {
        int64_t t1 = t0 == 0 ? prefill : t0 + 1, S = t1 - t0;
        float *tok = malloc(sizeof(float) * (size_t)(B * S)), *pos = malloc(sizeof(float) * (size_t)(B * S));
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++) {
                tok[b * S + s] = f->tok.data[b * T + t0 + s];
                pos[b * S + s] = (float)(t0 + s);
            }
        CpuInput in[2] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}};
        assert_true(cpu_exec_run(x, in, 2, f->d));
        int rank;
        int64_t dims[IR_MAX_RANK];
        const float *lg = cpu_exec_output(x, "logits", &rank, dims);
        *V = dims[2];
        if (!all) all = malloc(sizeof(float) * (size_t)(B * T * *V));
        for (int64_t b = 0; b < B; b++) memcpy(all + (b * T + t0) * *V, lg + b * S * *V, sizeof(float) * (size_t)(S * *V));
        free(tok);
        free(pos);
        t0 = t1;
    }
    cpu_exec_free(x);
    return all;
}

static void test_bf16_checkpoint(void **state) {
    (void)state;
    Fx *f = open_fixture(FIX "tiny_bf16");
    int64_t V, n = f->tok.numel;
    float *full = run(f, false, f->tok.shape[1], &V);
    tu_expect_npy(full, FIX "tiny_bf16/logits.npy", n * V, V, 1e-3, "bf16 checkpoint vs transformers FP32");
    float *inc = run(f, false, 5, &V);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n * V; i++) {
        num += ((double)inc[i] - full[i]) * ((double)inc[i] - full[i]);
        den += (double)full[i] * full[i];
    }
    print_message("prefill 5 + decode vs full forward: rel L2 %.3g\n", sqrt(num / den));
    assert_true(sqrt(num / den) < 1e-5);
    free(full);
    free(inc);
    close_fixture(f);
}

static void test_fp8_checkpoint(void **state) {
    (void)state;
    Fx *f = open_fixture(FIX "tiny_fp8");
    int64_t V, n = f->tok.numel;
    float *deq = run(f, false, f->tok.shape[1], &V);
    tu_expect_npy(deq, FIX "tiny_fp8/logits_dequant.npy", n * V, V, 1e-3, "fp8 checkpoint, bf16 precision vs dequantized reference");
    float *q = run(f, true, 4, &V);
    tu_expect_npy(q, FIX "tiny_fp8/logits_fp8.npy", n * V, V, 1e-4, "fp8 checkpoint, fp8 precision (prefill 4 + decode) vs FP8 emulation");
    free(deq);
    free(q);
    close_fixture(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_checkpoint),
        cmocka_unit_test(test_fp8_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
