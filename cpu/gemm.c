/* gemm.c — the parallel-for and the one GEMM every matrix op of the
 * executor goes through (linear, expert_linear, their FP8 forms).
 *
 * The design choice: each output element is one dot product summed in
 * order along K (per 128-wide block, then across blocks, for FP8), however
 * the work is split. Threads divide the output columns, never K, so results
 * are bit-identical for any thread count and match the plain triple loop a
 * test would write. Four columns are computed together to give the CPU
 * independent accumulators to overlap, which changes no rounding. */
#include "cpu/internal.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- parallel for -------------------------------------------------------- */

#define MAX_THREADS 256

typedef struct {
    void (*fn)(void *, int64_t, int64_t);
    void *arg;
    int64_t lo, hi;
} Range;

static void *run_range(void *p) {
    Range *r = p;
    r->fn(r->arg, r->lo, r->hi);
    return NULL;
}

void cpu_parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void *, int64_t, int64_t), void *arg) {
    if (n <= 0) return;
    int t = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    if (grain < 1) grain = 1;
    if ((int64_t)t > n / grain) t = (int)(n / grain);
    if (t <= 1) {
        fn(arg, 0, n);
        return;
    }
    pthread_t tid[MAX_THREADS];
    Range r[MAX_THREADS];
    bool started[MAX_THREADS] = {0};
    for (int i = 0; i < t; i++) {
        r[i] = (Range){fn, arg, n * i / t, n * (i + 1) / t};
        if (i > 0) started[i] = pthread_create(&tid[i], NULL, run_range, &r[i]) == 0;
    }
    run_range(&r[0]);
    for (int i = 1; i < t; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else run_range(&r[i]); /* could not start a thread: do its share here */
    }
}

/* ---- GEMM -------------------------------------------------------------- */

#define COLS 4 /* output columns per work item */

/* Rows [r0, r1) of x against columns [o0, o0 + nc) of w, in FP32. */
static void tile_f32(const CpuGemm *g, const float *w, int64_t r0, int64_t r1, int64_t o0, int64_t nc) {
    const int64_t K = g->K;
    const float *w0 = w + o0 * K, *w1 = w0 + (nc > 1 ? K : 0), *w2 = w0 + (nc > 2 ? 2 * K : 0), *w3 = w0 + (nc > 3 ? 3 * K : 0);
    for (int64_t m = r0; m < r1; m++) {
        const float *xr = g->x + m * K;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int64_t k = 0; k < K; k++) {
            float v = xr[k];
            a0 += v * w0[k];
            a1 += v * w1[k];
            a2 += v * w2[k];
            a3 += v * w3[k];
        }
        float acc[COLS] = {a0, a1, a2, a3};
        for (int64_t j = 0; j < nc; j++) g->y[m * g->O + o0 + j] = acc[j];
    }
}

/* The same on E4M3 codes: per K block of 128 the code products are summed
 * in FP32, then scaled by the row tile's and the weight block's scales and
 * added to the FP32 accumulator, as DeepSeek-V3's GEMM promotes them. */
static void tile_fp8(const CpuGemm *g, const float *w, const float *ws, int64_t r0, int64_t r1, int64_t o0, int64_t nc) {
    const int64_t K = g->K, nkb = (K + 127) / 128;
    for (int64_t m = r0; m < r1; m++) {
        const float *xr = g->x + m * K, *xs = g->xs + m * nkb;
        for (int64_t j = 0; j < nc; j++) {
            const float *wr = w + (o0 + j) * K, *wsr = ws + ((o0 + j) / 128) * nkb;
            float acc = 0;
            for (int64_t kb = 0; kb < nkb; kb++) {
                int64_t k0 = kb * 128, k1 = k0 + 128 < K ? k0 + 128 : K;
                float part = 0;
                for (int64_t k = k0; k < k1; k++) part += xr[k] * wr[k];
                acc += part * xs[kb] * wsr[kb];
            }
            g->y[m * g->O + o0 + j] = acc;
        }
    }
}

static void gemm_items(void *p, int64_t lo, int64_t hi) {
    const CpuGemm *g = p;
    int64_t ncb = (g->O + COLS - 1) / COLS, nob = (g->O + 127) / 128, nkb = (g->K + 127) / 128;
    for (int64_t it = lo; it < hi; it++) {
        int64_t e = it / ncb, o0 = (it % ncb) * COLS, nc = g->O - o0 < COLS ? g->O - o0 : COLS;
        int64_t r0 = g->start ? g->start[e] : 0, r1 = g->start ? g->start[e + 1] : g->M;
        if (r0 == r1) continue;
        const float *w = g->w + e * g->O * g->K;
        if (g->xs) tile_fp8(g, w, g->ws + e * nob * nkb, r0, r1, o0, nc);
        else tile_f32(g, w, r0, r1, o0, nc);
    }
}

void cpu_gemm(int threads, const CpuGemm *g) {
    int64_t E = g->start ? g->E : 1, ncb = (g->O + COLS - 1) / COLS, rows = g->start ? g->start[E] : g->M;
    if (rows <= 0 || g->O <= 0) return;
    /* about 2^16 multiply-adds per thread at least, or threads cost more than they save */
    int64_t per_item = (rows / E + 1) * g->K * COLS;
    cpu_parallel_for(threads, E * ncb, 1 + 65536 / (per_item + 1), gemm_items, (void *)g);
}
