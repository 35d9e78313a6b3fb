/* test_gpu_sample.c — the device sampler (codegen/kernels/sample.cuh through
 * runtime/gpu_sample.c) against the host's (tools/dscc/run_text.c), on a
 * GPU or the emulated device (ctest emu.test_gpu_sample); without either
 * it exits 77 (skipped).
 *  - greedy: exactly the host's argmax over DeepSeek-V3's 129,280 logits,
 *    ties to the lowest id, top-k 1 too; a NaN row answers -1, never an id;
 *  - distribution: thousands of draws from small fixed logits (one launch,
 *    a row each) pass a chi-square test against softmax(l / T) cut to the
 *    top-k and top-p nucleus the host defines, and so do the host's own
 *    draws; the same draws against the wrong temperature fail it (the
 *    control); a token outside the nucleus is never drawn, equal logits at
 *    the cut lowest id first (by count and by mass);
 *  - at 129,280 logits: every draw of 48 inside the host's exact nucleus
 *    (a sampler that ignored the cut would leave it with 10% to 50% a draw);
 *  - the same seed and step the same ids, at block 32 as at 128; another
 *    step, other ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime.h"
#include "runtime/sample.h"
#include "tools/dscc/run_text.h"

#define V3_VOCAB 129280

static RtCuda *gpu;
static Arena *g_arena;
static DiagEngine *g_diag;

/* Draws `rows` tokens, each row the same logits l[V] (stride 0), on a sampler of `block` threads. */
static void device_draws(const float *l, int64_t V, int64_t rows, int64_t stride, int block, const RtSampling *p, uint64_t step,
                         int32_t *ids) {
    RtDevSampler *s = rt_dev_sampler_new(gpu, block, g_diag);
    assert_non_null(s);
    RtDevPtr dl;
    int64_t n = stride ? rows * V : V;
    assert_true(rt_cuda_alloc(gpu, g_diag, sizeof(float) * (size_t)n, &dl));
    assert_true(rt_cuda_upload(gpu, g_diag, dl, l, sizeof(float) * (size_t)n));
    assert_true(rt_dev_sample(s, dl, rows, stride, V, p, 0, step, ids, g_diag));
    rt_cuda_free(gpu, dl);
    rt_dev_sampler_free(s);
}

static const float *g_key;
static int by_prob_desc(const void *x, const void *y) {
    double a = g_key[*(const int *)x], b = g_key[*(const int *)y];
    if (a != b) return a < b ? 1 : -1;
    return *(const int *)x - *(const int *)y;
}

/* The distribution the samplers draw from, as run_text.c defines it (in double). */
static void nucleus(const float *l, int V, double T, long k, double top_p, double *q) {
    int *idx = malloc(sizeof(int) * (size_t)V);
    float mx = l[0];
    for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
    float *w = malloc(sizeof(float) * (size_t)V);
    double sum = 0;
    for (int i = 0; i < V; i++) {
        w[i] = (float)exp((l[i] - mx) / T);
        sum += w[i];
        idx[i] = i;
        q[i] = 0;
    }
    g_key = w;
    qsort(idx, (size_t)V, sizeof(int), by_prob_desc);
    long kk = k > 0 && k < V ? k : V;
    double kept = 0;
    int n = 0;
    while (n < kk) {
        kept += w[idx[n++]];
        if (kept >= top_p * sum) break;
    }
    for (int i = 0; i < n; i++) q[idx[i]] = w[idx[i]] / kept;
    free(w);
    free(idx);
}

/* Pearson's chi-square of counts c[V] (N draws) against q; false when a
 * token of probability 0 was drawn. Bins with an expected count under 5 are
 * pooled. *crit: the 0.1% critical value (Wilson-Hilferty). */
static bool chi_square(const int *c, const double *q, int V, int N, double *stat, double *crit) {
    double s = 0, pool_e = 0, pool_o = 0;
    int bins = 0;
    for (int i = 0; i < V; i++) {
        if (q[i] == 0) {
            if (c[i]) return false;
            continue;
        }
        double e = q[i] * N;
        if (e < 5) {
            pool_e += e, pool_o += c[i];
            continue;
        }
        s += (c[i] - e) * (c[i] - e) / e;
        bins++;
    }
    if (pool_e > 0) s += (pool_o - pool_e) * (pool_o - pool_e) / pool_e, bins++;
    double df = bins - 1, h = 2.0 / (9 * df);
    *stat = s;
    *crit = df * pow(1 - h + 3.0902 * sqrt(h), 3);
    return true;
}

static const float SMALL[10] = {1.2f, 2.9f, -0.4f, 2.1f, 0.3f, 2.1f, -1.5f, 1.7f, 0.8f, -0.1f};

/* N draws of one configuration on the device and on the host, both checked against the nucleus. */
static void check_config_of(const float *logits, double T, long k, double p, bool control) {
    enum { N = 2000, V = 10 };
    RtSampling sp = {.temperature = T, .top_p = p, .top_k = k, .seed = 42};
    int32_t *ids = malloc(sizeof(int32_t) * N);
    device_draws(logits, V, N, 0, 32, &sp, 7, ids);
    double q[V], stat, crit;
    nucleus(logits, V, T, k, p, q);
    int c[V] = {0}, h[V] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(ids[i] >= 0 && ids[i] < V);
        c[ids[i]]++;
    }
    bool inside = chi_square(c, q, V, N, &stat, &crit);
    print_message("T %.2f top-k %ld top-p %.2f: device chi-square %.1f (0.1%% critical %.1f)%s\n", T, k, p, stat, crit,
                  inside ? "" : ", a token outside the nucleus drawn");
    assert_true(inside);
    assert_true(stat < crit);
    RunSampler hs;
    run_sampler_init(&hs, T, p, k, 42, 0);
    for (int i = 0; i < N; i++) h[run_sample(&hs, logits, V)]++;
    run_sampler_free(&hs);
    double hstat, hcrit;
    assert_true(chi_square(h, q, V, N, &hstat, &hcrit));
    print_message("  host chi-square %.1f\n", hstat);
    assert_true(hstat < hcrit);
    if (control) { /* the same draws against softmax at 1.4 T: a sampler with the wrong temperature fails */
        double wrong[V], ws, wc;
        nucleus(logits, V, T * 1.4, k, p, wrong);
        bool in = chi_square(c, wrong, V, N, &ws, &wc);
        print_message("  control at T %.2f: chi-square %.1f\n", T * 1.4, ws);
        assert_true(!in || ws > wc);
    }
    free(ids);
}

static void check_config(double T, long k, double p, bool control) { check_config_of(SMALL, T, k, p, control); }

/* Four equal logits (ids 7, 2, 5, 0) far above the rest: top-p 0.6 needs three, the lowest ids: 7 never drawn. */
static const float TIED[10] = {0.0f, -30.0f, 0.0f, -30.0f, -30.0f, 0.0f, -30.0f, 0.0f, -30.0f, -30.0f};

static void test_distribution(void **state) {
    (void)state;
    check_config_of(TIED, 1.0, 0, 0.6, false);
    check_config(0.7, 0, 1.0, true);  /* softmax alone */
    check_config(1.0, 2, 1.0, false); /* top-k 2: ids 3 and 5 tie at the cut (2.1): 3 only */
    check_config(1.0, 0, 0.8, true);  /* top-p */
    check_config(1.3, 6, 0.9, false); /* both: top-k cuts first */
    check_config(1.0, 6, 0.8, false); /* both: top-p cuts first (4 tokens) */
}

/* Masked tokens (-inf) are never drawn, even when top-k reaches past the
 * finite ones; a row of -inf answers an id without a fault. */
static void test_infinities(void **state) {
    (void)state;
    const float ninf = -INFINITY;
    const float masked[10] = {1.0f, ninf, 0.5f, ninf, 2.0f, ninf, ninf, 0.0f, ninf, 1.5f};
    check_config_of(masked, 1.0, 8, 0.9, false);
    float all[10];
    for (int i = 0; i < 10; i++) all[i] = ninf;
    RtSampling sp = {.temperature = 1.0, .top_p = 0.9, .top_k = 3, .seed = 1};
    int32_t ids[4];
    device_draws(all, 10, 4, 0, 32, &sp, 0, ids);
    for (int r = 0; r < 4; r++) assert_true(ids[r] >= 0 && ids[r] < 10);
}

static void test_greedy_v3(void **state) {
    (void)state;
    enum { R = 4 };
    float *l = malloc(sizeof(float) * R * V3_VOCAB);
    uint64_t s = (uint64_t)time(NULL) * 2654435761u + 1;
    for (int64_t i = 0; i < R * V3_VOCAB; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((int64_t)(s >> 33) % 200001 - 100000) / 8000.0f;
    }
    l[1 * V3_VOCAB + 90000] = l[1 * V3_VOCAB + 500] = 20.0f; /* row 1: two equal maxima, the lower id wins */
    for (int64_t i = 0; i < V3_VOCAB; i++) l[2 * V3_VOCAB + i] = -3.5f; /* row 2: all equal: id 0 */
    RtSampling greedy = {.temperature = 0, .top_p = 1, .seed = 1}, k1 = {.temperature = 1.0, .top_p = 0.9, .top_k = 1, .seed = 1};
    int32_t ids[R], ids_k1[R];
    device_draws(l, V3_VOCAB, R, V3_VOCAB, 256, &greedy, 0, ids);
    device_draws(l, V3_VOCAB, R, V3_VOCAB, 256, &k1, 0, ids_k1);
    RunSampler hs;
    run_sampler_init(&hs, 0, 1, 0, 1, 0);
    for (int r = 0; r < R; r++) {
        int64_t want = run_sample(&hs, l + (int64_t)r * V3_VOCAB, V3_VOCAB);
        assert_int_equal(ids[r], want);
        assert_int_equal(ids_k1[r], want);
    }
    run_sampler_free(&hs);
    assert_int_equal(ids[1], 500);
    assert_int_equal(ids[2], 0);
    l[3 * V3_VOCAB + 77] = NAN; /* a NaN row answers -1 */
    device_draws(l, V3_VOCAB, R, V3_VOCAB, 256, &greedy, 0, ids);
    assert_int_equal(ids[3], -1);
    assert_true(ids[0] >= 0);
    free(l);
}

/* At the full vocabulary: every draw inside the host's nucleus (top-p alone, and with top-k). */
static void test_nucleus_v3(void **state) {
    (void)state;
    enum { R = 48 };
    float *l = malloc(sizeof(float) * V3_VOCAB);
    double *q = malloc(sizeof(double) * V3_VOCAB);
    uint64_t s = (uint64_t)time(NULL) * 2654435761u + 3;
    for (int64_t i = 0; i < V3_VOCAB; i++) { /* a few likely tokens over a long tail */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) * 0x1.0p-53;
        l[i] = (float)(3.0 * sqrt(-2 * log(u + 1e-300)) * cos(6.283185307 * (double)((s >> 20) & 0xffff) / 65536.0));
    }
    const double cfg[][3] = {{0.8, 0, 0.5}, {1.0, 40, 0.95}, {0.6, 0, 0.9}, {0.6, 400, 0.9}}; /* k cuts first; p cuts first */
    for (int c = 0; c < 4; c++) {
        RtSampling sp = {.temperature = cfg[c][0], .top_k = (long)cfg[c][1], .top_p = cfg[c][2], .seed = 9};
        int32_t ids[R];
        device_draws(l, V3_VOCAB, R, 0, 256, &sp, 3, ids);
        nucleus(l, V3_VOCAB, cfg[c][0], (long)cfg[c][1], cfg[c][2], q);
        int64_t n = 0;
        for (int64_t i = 0; i < V3_VOCAB; i++) n += q[i] > 0;
        int distinct = 0;
        for (int r = 0; r < R; r++) {
            bool seen = false;
            for (int j = 0; j < r; j++) seen |= ids[j] == ids[r];
            distinct += !seen;
        }
        print_message("T %.1f top-k %.0f top-p %.2f: nucleus of %lld tokens; %d draws, %d distinct\n", cfg[c][0], cfg[c][1], cfg[c][2],
                      (long long)n, R, distinct);
        for (int r = 0; r < R; r++) assert_true(ids[r] >= 0 && ids[r] < V3_VOCAB && q[ids[r]] > 0);
    }
    free(l);
    free(q);
}

static void test_reproducible(void **state) {
    (void)state;
    enum { N = 200, V = 10 };
    RtSampling sp = {.temperature = 1.0, .top_p = 0.95, .top_k = 0, .seed = 5};
    int32_t a[N], b[N], c[N];
    device_draws(SMALL, V, N, 0, 32, &sp, 11, a);
    device_draws(SMALL, V, N, 0, 128, &sp, 11, b);
    device_draws(SMALL, V, N, 0, 32, &sp, 12, c);
    assert_memory_equal(a, b, sizeof a); /* the draw does not depend on the block */
    int differ = 0;
    for (int i = 0; i < N; i++) differ += a[i] != c[i];
    assert_true(differ > N / 4); /* another step, other draws */
}

/* What one step's draw costs at DeepSeek-V3's vocabulary (launch, kernel
 * and the ids' copy back, as the driver waits for them), 1 and 8 rows:
 * printed for the record; on the emulated device once, meaninglessly. */
static void test_timing_v3(void **state) {
    (void)state;
    enum { R = 8 };
    bool emulated = strstr(rt_cuda_device_name(gpu), "mulated") != NULL;
    int reps = emulated ? 1 : 50;
    float *l = malloc(sizeof(float) * R * V3_VOCAB);
    uint64_t s = 12345;
    for (int64_t i = 0; i < R * V3_VOCAB; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((int64_t)(s >> 33) % 200001 - 100000) / 20000.0f;
    }
    RtDevSampler *smp = rt_dev_sampler_new(gpu, emulated ? 256 : 0, g_diag);
    assert_non_null(smp);
    RtDevPtr dl;
    assert_true(rt_cuda_alloc(gpu, g_diag, sizeof(float) * R * V3_VOCAB, &dl));
    assert_true(rt_cuda_upload(gpu, g_diag, dl, l, sizeof(float) * R * V3_VOCAB));
    const RtSampling cfg[] = {{0, 1, 0, 1}, {0.7, 0.9, 0, 1}, {1.0, 0.95, 50, 1}, {1.0, 1.0, 0, 1}};
    const char *what[] = {"greedy", "T 0.7 top-p 0.9", "T 1 top-k 50 top-p 0.95", "T 1, no cut"};
    float *host = malloc(sizeof(float) * R * V3_VOCAB);
    for (int c = 0; c < 4; c++)
        for (int rows = 1; rows <= (emulated ? 1 : R); rows *= R) {
            int32_t ids[R];
            assert_true(rt_dev_sample(smp, dl, rows, V3_VOCAB, V3_VOCAB, &cfg[c], 0, 0, ids, g_diag)); /* warm */
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (int k = 0; k < reps; k++) assert_true(rt_dev_sample(smp, dl, rows, V3_VOCAB, V3_VOCAB, &cfg[c], 0, (uint64_t)k, ids, g_diag));
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / reps;
            for (int r = 0; r < rows; r++) assert_true(ids[r] >= 0 && ids[r] < V3_VOCAB);
            /* the host's way, for comparison: the logits down, then run_sample per row */
            RunSampler hs;
            run_sampler_init(&hs, cfg[c].temperature, cfg[c].top_p, cfg[c].top_k, 1, 0);
            int hreps = reps < 10 ? reps : 10;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (int k = 0; k < hreps; k++) {
                assert_true(rt_cuda_download(gpu, g_diag, host, dl, sizeof(float) * (size_t)rows * V3_VOCAB));
                for (int r = 0; r < rows; r++) assert_true(run_sample(&hs, host + (int64_t)r * V3_VOCAB, V3_VOCAB) >= 0);
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            run_sampler_free(&hs);
            double hus = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / hreps;
            print_message("%s: %s, %d row%s of 129,280 logits: device %.1f us a step (launch, kernel, ids back); host %.1f us "
                          "(logits down, run_sample)\n", rt_cuda_device_name(gpu), what[c], rows, rows > 1 ? "s" : "", us, hus);
        }
    free(host);
    rt_cuda_free(gpu, dl);
    rt_dev_sampler_free(smp);
    free(l);
}

static void test_bad_block(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    assert_null(rt_dev_sampler_new(gpu, 48, d));
    assert_non_null(strstr(diag_first(d)->msg, "multiple of 32"));
    arena_free(a);
}

int main(void) {
    g_arena = arena_new();
    g_diag = diag_new(g_arena, stderr);
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    gpu = rt_cuda_open(d, 0);
    if (!gpu) {
        printf("SKIPPED: %s\n", diag_first(d) ? diag_first(d)->msg : "no GPU");
        arena_free(a);
        arena_free(g_arena);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_greedy_v3), cmocka_unit_test(test_distribution), cmocka_unit_test(test_infinities),
                                       cmocka_unit_test(test_nucleus_v3), cmocka_unit_test(test_reproducible),
                                       cmocka_unit_test(test_timing_v3), cmocka_unit_test(test_bad_block)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_cuda_close(gpu);
    arena_free(a);
    arena_free(g_arena);
    return rc;
}
