/* test_mtp.c — the multi-token-prediction module against an independent
 * implementation. tests/fixtures/tiny_mtp (tools/make_fixtures.py) is a
 * tiny random DeepSeek-V3 checkpoint with its MTP layer (model.layers.3.*,
 * named as in the released checkpoint) and references computed in FP32:
 * the main model's logits and last hidden state by transformers, the MTP
 * module's logits by the fixture script's own PyTorch code written from
 * the V3 technical report (transformers does not run MTP). Checked here:
 *   - `--set mtp=true` (one graph, main model and module): logits and
 *     mtp_logits, rel L2 < 1e-3, every argmax agreeing;
 *   - the two step graphs of speculative decoding: mtp_hidden's `hidden`
 *     output, and mtp_draft fed the reference hidden state (as it is fed
 *     the verify step's), rel L2 < 1e-3;
 *   - the draft graph run as decoding runs it (a prefill, then one and two
 *     positions at a time) equals its full run: its KV cache works. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/tiny_mtp/"

typedef struct {
    TuFixture fx;
    RtArray seq, next, hidden;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    tu_fixture_open(&f->fx, FIX);
    tu_read_npy(&f->fx, FIX "sequence.npy", &f->seq);
    tu_read_npy(&f->fx, FIX "mtp_tokens.npy", &f->next);
    tu_read_npy(&f->fx, FIX "hidden.npy", &f->hidden);
    assert_int_equal(f->seq.rank, 2);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    free(f->seq.data);
    free(f->next.data);
    free(f->hidden.data);
    tu_fixture_close(&f->fx);
    free(f);
    return 0;
}

/* The executor of the model with one setting ("name=value"). */
static CpuExec *make(Fx *f, const char *set) {
    return tu_exec(&f->fx, tu_compile(&f->fx, NULL, &set, 1), &(CpuOptions){.threads = 2});
}

/* Runs positions [t0, t1) of every row with the inputs the graph has. */
static void run_span(Fx *f, CpuExec *x, int64_t t0, int64_t t1, bool mtp_tokens, bool h_main) {
    int64_t B = f->seq.shape[0], T = f->seq.shape[1], S = t1 - t0, H = f->hidden.shape[2];
    const float *tsrc = h_main ? f->next.data : f->seq.data;
    float *tok = malloc(sizeof(float) * (size_t)(B * S)), *pos = malloc(sizeof(float) * (size_t)(B * S));
    float *nxt = malloc(sizeof(float) * (size_t)(B * S)), *h = malloc(sizeof(float) * (size_t)(B * S * H));
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            tok[b * S + s] = tsrc[b * T + t0 + s];
            nxt[b * S + s] = f->next.data[b * T + t0 + s];
            pos[b * S + s] = (float)(t0 + s);
            memcpy(h + (b * S + s) * H, f->hidden.data + (b * T + t0 + s) * H, sizeof(float) * (size_t)H);
        }
    CpuInput in[3] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}, {"mtp_tokens", 2, {B, S}, nxt}};
    if (h_main) in[2] = (CpuInput){"h_main", 3, {B, S, H}, h};
    assert_true(cpu_exec_run(x, in, mtp_tokens || h_main ? 3 : 2, f->fx.d));
    free(tok);
    free(pos);
    free(nxt);
    free(h);
}

static const float *out(CpuExec *x, const char *name, int64_t B, int64_t S, int64_t *W) {
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *v = cpu_exec_output(x, name, &rank, dims);
    assert_non_null(v);
    assert_true(rank == 3 && dims[0] == B && dims[1] == S);
    *W = dims[2];
    return v;
}

static void test_one_graph(void **state) {
    Fx *f = *state;
    int64_t B = f->seq.shape[0], T = f->seq.shape[1], V;
    CpuExec *x = make(f, "mtp=true");
    run_span(f, x, 0, T, true, false);
    const float *v = out(x, "logits", B, T, &V);
    tu_expect_npy(v, FIX "logits.npy", B * T * V, V, 1e-3, "main model vs transformers");
    v = out(x, "mtp_logits", B, T, &V);
    tu_expect_npy(v, FIX "mtp_logits.npy", B * T * V, V, 1e-3, "MTP module vs the fixture's PyTorch");
    cpu_exec_free(x);
}

static void test_step_graphs(void **state) {
    Fx *f = *state;
    int64_t B = f->seq.shape[0], T = f->seq.shape[1], V, H;
    CpuExec *x = make(f, "mtp_hidden=true");
    run_span(f, x, 0, T, false, false);
    const float *h = out(x, "hidden", B, T, &H);
    tu_expect_npy(h, FIX "hidden.npy", B * T * H, 0, 1e-3, "verify graph's hidden state");
    cpu_exec_free(x);
    x = make(f, "mtp_draft=true");
    run_span(f, x, 0, T, false, true);
    const float *full = out(x, "mtp_logits", B, T, &V);
    tu_expect_npy(full, FIX "mtp_logits.npy", B * T * V, V, 1e-3, "draft graph vs the fixture's PyTorch");
    float *all = malloc(sizeof(float) * (size_t)(B * T * V));
    memcpy(all, full, sizeof(float) * (size_t)(B * T * V));
    /* as decoding runs it: a prefill, then steps of 1 and 2 positions */
    cpu_exec_reset(x);
    double worst = 0;
    for (int64_t t0 = 0, S = 5; t0 < T; t0 += S, S = S == 1 ? 2 : 1) {
        int64_t t1 = t0 + S > T ? T : t0 + S;
        run_span(f, x, t0, t1, false, true);
        const float *v = out(x, "mtp_logits", B, t1 - t0, &V);
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < (t1 - t0) * V; i++)
                worst = fmax(worst, fabs((double)v[b * (t1 - t0) * V + i] - all[(b * T + t0) * V + i]));
    }
    print_message("draft graph stepped through its KV cache vs its full run: max abs diff %.3g\n", worst);
    assert_true(worst < 1e-4);
    free(all);
    cpu_exec_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_graph, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_graphs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
