/* test_cpu_ops.c — every CPU executor kernel against a straightforward
 * reference written here, on small fresh random inputs (the seed is printed;
 * DSCC_TEST_SEED=N replays a run). Graphs are written in the DSL, so each
 * test reads like the model code it stands for. References are computed in
 * double from the op definitions (docs/IR.md, the executor brief), never by
 * calling the executor's own helpers, except cpu_fp8_round, which
 * test_cpu_fp8.c holds to the E4M3 definition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"

/* ---- random inputs -------------------------------------------------------- */

static uint64_t rng;

static double urand(void) { /* [0, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) * 0x1.0p-53;
}

/* n values uniform in (-scale, scale); never all zero. */
static float *rnd(int64_t n, double scale) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = (float)((2 * urand() - 1) * scale);
    p[0] = p[0] == 0 ? 0.5f : p[0];
    return p;
}

/* n integers in [0, hi), as the executor holds ids. */
static float *rnd_ids(int64_t n, int hi) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(int)(urand() * hi);
    return p;
}

/* ---- running a DSL snippet ------------------------------------------------ */

typedef struct {
    const char *name;
    const float *data;
} Wt;

typedef struct {
    Arena *a;
    DiagEngine *d;     /* quiet: tests read the diagnostics */
    IrGraph *g;
    CpuExec *x;
    const Wt *w;
    int nw;
} Prog;

/* Weight source over a table: the resolved name must be present. */
static bool table_load(void *ctx, const char *name, const IrType *t, float *dst, DiagEngine *d) {
    const Prog *p = ctx;
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i].coeff;
    for (int i = 0; i < p->nw; i++)
        if (strcmp(p->w[i].name, name) == 0) {
            memcpy(dst, p->w[i].data, sizeof(float) * (size_t)n);
            return true;
        }
    diag_error(d, (SrcLoc){0}, "test has no weight '%s'", name);
    return false;
}

static Prog *prog_new(const char *src, const Wt *w, int nw, int threads, bool fp8) {
    Prog *p = calloc(1, sizeof *p);
    p->a = arena_new();
    p->d = diag_new(p->a, NULL);
    p->w = w;
    p->nw = nw;
    p->g = fe_compile_string(p->a, p->d, "ops.dsl", src, strlen(src), NULL);
    if (!p->g || ir_verify(p->g, p->d)) {
        for (const Diag *e = diag_first(p->d); e; e = e->next) print_message("ops.dsl:%d:%d: %s\n", e->loc.line, e->loc.col, e->msg);
        fail_msg("snippet did not compile");
    }
    CpuWeightSource ws = {table_load, p};
    CpuOptions o = {.threads = threads, .fp8 = fp8};
    p->x = cpu_exec_new(p->g, &ws, &o, p->d);
    assert_non_null(p->x);
    return p;
}

static void prog_free(Prog *p) {
    cpu_exec_free(p->x);
    arena_free(p->a);
    free(p);
}

static void prog_run(Prog *p, const CpuInput *in, int nin) {
    bool ok = cpu_exec_run(p->x, in, nin, p->d);
    if (!ok)
        for (const Diag *e = diag_first(p->d); e; e = e->next) print_message("ops.dsl:%d:%d: %s\n", e->loc.line, e->loc.col, e->msg);
    assert_true(ok);
}

/* Output `name`, whose shape must be exactly dims[0..rank). */
static const float *out(Prog *p, const char *name, int rank, const int64_t *dims) {
    int r = -1;
    int64_t d[IR_MAX_RANK];
    const float *v = cpu_exec_output(p->x, name, &r, d);
    assert_non_null(v);
    assert_int_equal(r, rank);
    for (int i = 0; i < rank; i++) assert_int_equal(d[i], dims[i]);
    return v;
}

/* Every got[i] within tol of ref[i], relative to max(1, |ref[i]|). */
static void close_to(const float *got, const double *ref, int64_t n, double tol) {
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (!(err <= tol)) fail_msg("element %lld: got %.9g, want %.9g (err %.3g > %.3g)", (long long)i, got[i], ref[i], err, tol);
    }
}

static double *dbuf(int64_t n) { return calloc((size_t)n, sizeof(double)); }

/* ---- linear algebra ------------------------------------------------------ */

static void test_linear(void **state) {
    (void)state;
    enum { B = 2, S = 8, K = 300, O = 130 }; /* enough work to split over threads */
    float *x = rnd(B * S * K, 1), *w = rnd(O * K, 0.1);
    Wt wt[] = {{"lin.w", w}};
    const char *src = "dim B, S;\ninput x: f32[B, S, 300];\nweight w: f32[130, 300] = \"lin.w\";\noutput y = linear(x, w);\n";
    CpuInput in = {"x", 3, {B, S, K}, x};
    Prog *p1 = prog_new(src, wt, 1, 1, false), *p3 = prog_new(src, wt, 1, 3, false);
    prog_run(p1, &in, 1);
    prog_run(p3, &in, 1);
    int64_t dims[] = {B, S, O};
    const float *y1 = out(p1, "y", 3, dims), *y3 = out(p3, "y", 3, dims);
    double *ref = dbuf(B * S * O);
    for (int m = 0; m < B * S; m++)
        for (int o = 0; o < O; o++)
            for (int k = 0; k < K; k++) ref[m * O + o] += (double)x[m * K + k] * w[o * K + k];
    close_to(y1, ref, B * S * O, 1e-5);
    assert_memory_equal(y1, y3, sizeof(float) * B * S * O); /* thread count changes no bit */
    free(ref);
    free(x);
    free(w);
    prog_free(p1);
    prog_free(p3);
}

/* DeepSeek FP8 of x[M,K] · w[O,K]ᵀ, in double from the definition. */
static void fp8_ref(const float *x, const float *w, double *y, int M, int K, int O) {
    for (int m = 0; m < M; m++)
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int k0 = 0; k0 < K; k0 += 128) {
                int k1 = k0 + 128 < K ? k0 + 128 : K, o0 = o / 128 * 128, o1 = o0 + 128 < O ? o0 + 128 : O;
                double ax = 0, aw = 0, part = 0;
                for (int k = k0; k < k1; k++) ax = fmax(ax, fabs(x[m * K + k]));
                for (int oo = o0; oo < o1; oo++)
                    for (int k = k0; k < k1; k++) aw = fmax(aw, fabs(w[oo * K + k]));
                float sx = (float)ax / 448.0f, sw = (float)aw / 448.0f;
                for (int k = k0; k < k1; k++) {
                    double qx = sx > 0 ? cpu_fp8_round(x[m * K + k] / sx) : 0, qw = sw > 0 ? cpu_fp8_round(w[o * K + k] / sw) : 0;
                    part += qx * qw;
                }
                acc += part * sx * sw;
            }
            y[m * O + o] = acc;
        }
}

static void test_linear_fp8_emulation(void **state) {
    (void)state;
    enum { M = 6, K = 300, O = 130 };
    float *x = rnd(M * K, 2), *w = rnd(O * K, 0.1);
    for (int k = 128; k < 256; k++) x[2 * K + k] = 0; /* a zero tile: scale 0, codes 0 */
    x[7] = 40.0f;                                     /* an outlier sets its tile's scale */
    Wt wt[] = {{"w", w}};
    /* y is an inner linear (FP8); head makes an output, so it stays FP32 as V3's LM head does */
    const char *src = "dim M;\ninput x: bf16[M, 300];\nweight w: bf16[130, 300] = \"w\";\n"
                      "output y = neg(linear(x, w));\noutput head = linear(x, w);\n";
    Prog *p = prog_new(src, wt, 1, 3, true);
    CpuInput in = {"x", 2, {M, K}, x};
    prog_run(p, &in, 1);
    int64_t dims[] = {M, O};
    const float *y = out(p, "y", 2, dims), *head = out(p, "head", 2, dims);
    double *q = dbuf(M * O), *f = dbuf(M * O);
    fp8_ref(x, w, q, M, K, O);
    for (int m = 0; m < M; m++)
        for (int o = 0; o < O; o++) {
            for (int k = 0; k < K; k++) f[m * O + o] += (double)x[m * K + k] * w[o * K + k];
            q[m * O + o] = -q[m * O + o];
        }
    close_to(y, q, M * O, 2e-5);
    close_to(head, f, M * O, 1e-5);
    double num = 0, den = 0; /* and the quantization really moved the numbers */
    for (int i = 0; i < M * O; i++) {
        num += (y[i] + f[i]) * (y[i] + f[i]);
        den += f[i] * f[i];
    }
    assert_true(sqrt(num / den) > 1e-3 && sqrt(num / den) < 0.1);
    free(q);
    free(f);
    free(x);
    free(w);
    prog_free(p);
}

static void test_einsum(void **state) {
    (void)state;
    enum { B = 2, S = 3, H = 3, D = 16, C = 10, T = 5 };
    float *a = rnd(B * S * H * D, 1), *b = rnd(H * D * C, 1), *q = rnd(B * 4 * S * 8, 1), *k = rnd(B * 4 * T * 8, 1);
    const char *src = "dim B, S;\ninput a: f32[B, S, 3, 16];\ninput b: f32[3, 16, 10];\n"
                      "output y = einsum(\"bshd,hdc->bshc\", a, b);\n"
                      "input q: f32[B, 4, S, 8];\ninput k: f32[B, 4, 5, 8];\n"
                      "output z = einsum(\"bhsd,bhtd->bhts\", q, k);\n";
    Prog *p = prog_new(src, NULL, 0, 3, false);
    CpuInput in[] = {{"a", 4, {B, S, H, D}, a}, {"b", 3, {H, D, C}, b}, {"q", 4, {B, 4, S, 8}, q}, {"k", 4, {B, 4, T, 8}, k}};
    prog_run(p, in, 4);
    double *ry = dbuf(B * S * H * C), *rz = dbuf(B * 4 * T * S);
    for (int bb = 0; bb < B; bb++)
        for (int s = 0; s < S; s++)
            for (int h = 0; h < H; h++)
                for (int c = 0; c < C; c++)
                    for (int d = 0; d < D; d++)
                        ry[((bb * S + s) * H + h) * C + c] += (double)a[((bb * S + s) * H + h) * D + d] * b[(h * D + d) * C + c];
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < 4; h++)
            for (int t = 0; t < T; t++)
                for (int s = 0; s < S; s++)
                    for (int d = 0; d < 8; d++)
                        rz[((bb * 4 + h) * T + t) * S + s] += (double)q[((bb * 4 + h) * S + s) * 8 + d] * k[((bb * 4 + h) * T + t) * 8 + d];
    close_to(out(p, "y", 4, (int64_t[]){B, S, H, C}), ry, B * S * H * C, 1e-5);
    close_to(out(p, "z", 4, (int64_t[]){B, 4, T, S}), rz, B * 4 * T * S, 1e-5);
    free(ry);
    free(rz);
    free(a);
    free(b);
    free(q);
    free(k);
    prog_free(p);
}

static void test_expert_linear(void **state) {
    (void)state;
    enum { N = 7, K = 2, E = 4, O = 6, I = 20 };
    float *w[E], *x = rnd(N * K * I, 1), *xb = rnd(N * I, 1), *idx = rnd_ids(N * K, E);
    Wt wt[E];
    char names[E][32];
    for (int e = 0; e < E; e++) {
        w[e] = rnd(O * I, 0.3);
        snprintf(names[e], sizeof names[e], "experts.%d.w", e);
        wt[e] = (Wt){names[e], w[e]};
    }
    const char *src = "dim N;\ninput x: f32[N, 2, 20];\ninput xb: f32[N, 20];\ninput idx: i32[N, 2];\n"
                      "weight w[e: 4]: f32[6, 20] = \"experts.{e}.w\";\n"
                      "output y = expert_linear(x, w, idx);\noutput yb = expert_linear(xb, w, idx);\n";
    Prog *p = prog_new(src, wt, E, 3, false);
    CpuInput in[] = {{"x", 3, {N, K, I}, x}, {"xb", 2, {N, I}, xb}, {"idx", 2, {N, K}, idx}};
    prog_run(p, in, 3);
    double *ry = dbuf(N * K * O), *rb = dbuf(N * K * O);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < K; j++) {
            const float *we = w[(int)idx[n * K + j]];
            for (int o = 0; o < O; o++)
                for (int i = 0; i < I; i++) {
                    ry[(n * K + j) * O + o] += (double)we[o * I + i] * x[(n * K + j) * I + i];
                    rb[(n * K + j) * O + o] += (double)we[o * I + i] * xb[n * I + i]; /* x[n] for every slot */
                }
        }
    int64_t dims[] = {N, K, O};
    close_to(out(p, "y", 3, dims), ry, N * K * O, 1e-5);
    close_to(out(p, "yb", 3, dims), rb, N * K * O, 1e-5);
    /* an index past the last expert is a located runtime error */
    idx[3] = 4;
    assert_false(cpu_exec_run(p->x, in, 3, p->d));
    const Diag *e = diag_first(p->d);
    assert_non_null(e);
    assert_non_null(strstr(e->msg, "expert index 4 is outside 0..3"));
    assert_int_equal(e->loc.line, 6);
    free(ry);
    free(rb);
    for (int i = 0; i < E; i++) free(w[i]);
    free(x);
    free(xb);
    free(idx);
    prog_free(p);
}

static void test_expert_linear_fp8_emulation(void **state) {
    (void)state;
    enum { N = 5, K = 3, E = 3, O = 140, I = 200 }; /* O and I span partial 128 blocks */
    float *w[E], *x = rnd(N * I, 1), *idx = rnd_ids(N * K, E);
    Wt wt[E];
    char names[E][32];
    for (int e = 0; e < E; e++) {
        w[e] = rnd(O * I, 0.1);
        snprintf(names[e], sizeof names[e], "e%d", e);
        wt[e] = (Wt){names[e], w[e]};
    }
    const char *src = "dim N;\ninput x: bf16[N, 200];\ninput idx: i32[N, 3];\n"
                      "weight w[e: 3]: bf16[140, 200] = \"e{e}\";\noutput y = neg(expert_linear(x, w, idx));\n";
    Prog *p = prog_new(src, wt, E, 2, true);
    CpuInput in[] = {{"x", 2, {N, I}, x}, {"idx", 2, {N, K}, idx}};
    prog_run(p, in, 2);
    double *ref = dbuf(N * K * O), *row = dbuf(O);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < K; j++) {
            fp8_ref(x + n * I, w[(int)idx[n * K + j]], row, 1, I, O); /* each expert's own 128x128 blocks */
            for (int o = 0; o < O; o++) ref[(n * K + j) * O + o] = -row[o];
        }
    close_to(out(p, "y", 3, (int64_t[]){N, K, O}), ref, N * K * O, 2e-5);
    free(ref);
    free(row);
    for (int i = 0; i < E; i++) free(w[i]);
    free(x);
    free(idx);
    prog_free(p);
}

/* ---- normalisation and position -------------------------------------------- */

static void test_rmsnorm(void **state) {
    (void)state;
    enum { B = 3, S = 2, D = 24 };
    float *x = rnd(B * S * D, 3), *w = rnd(D, 0.1);
    for (int i = 0; i < D; i++) w[i] += 1.0f;
    float hand_x[2] = {3, 4}, hand_w[2] = {1, 2};
    Wt wt[] = {{"n.w", w}, {"h.w", hand_w}};
    const char *src = "dim B, S;\ninput x: f32[B, S, 24];\nweight w: f32[24] = \"n.w\";\noutput y = rmsnorm(x, w, eps=1e-6);\n"
                      "input h: f32[1, 2];\nweight hw: f32[2] = \"h.w\";\noutput hy = rmsnorm(h, hw, eps=0.5);\n";
    Prog *p = prog_new(src, wt, 2, 2, false);
    CpuInput in[] = {{"x", 3, {B, S, D}, x}, {"h", 2, {1, 2}, hand_x}};
    prog_run(p, in, 2);
    double *ref = dbuf(B * S * D);
    for (int r = 0; r < B * S; r++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[r * D + i] * x[r * D + i];
        for (int i = 0; i < D; i++) ref[r * D + i] = x[r * D + i] / sqrt(ss / D + 1e-6) * w[i];
    }
    close_to(out(p, "y", 3, (int64_t[]){B, S, D}), ref, B * S * D, 2e-6);
    /* by hand: mean(9, 16) = 12.5, + eps 0.5 = 13, 1/sqrt(13) = 0.27735 */
    const float *hy = out(p, "hy", 2, (int64_t[]){1, 2});
    assert_float_equal(hy[0], 0.8320503f, 1e-6);
    assert_float_equal(hy[1], 2.2188008f, 1e-6);
    free(ref);
    free(x);
    free(w);
    prog_free(p);
}

/* The rope reference, from the description: inv_freq (YaRN when factor > 0)
 * and the cos/sin factor. Independent of cpu/ops.c by construction. */
static double ref_inv_freq(int d, double theta, double factor, double orig, double bf, double bs, double ms, double msa,
                           double *inv) {
    for (int i = 0; i < d / 2; i++) inv[i] = pow(theta, -2.0 * i / d);
    if (factor <= 0) return 1;
    double cl = d * log(orig / (bf * 2 * M_PI)) / (2 * log(theta)), ch = d * log(orig / (bs * 2 * M_PI)) / (2 * log(theta));
    double low = fmax(floor(cl), 0), high = fmin(ceil(ch), d - 1);
    if (high == low) high += 0.001;
    for (int i = 0; i < d / 2; i++) {
        double ramp = fmin(fmax((i - low) / (high - low), 0), 1), extrap = 1 - ramp;
        inv[i] = inv[i] / factor * (1 - extrap) + inv[i] * extrap;
    }
#define MSCALE(s, m) ((s) <= 1 ? 1.0 : 0.1 * (m) * log(s) + 1)
    return ms > 0 && msa > 0 ? MSCALE(factor, ms) / MSCALE(factor, msa) : MSCALE(factor, 1.0);
}

static void ref_rope(const float *x, const float *pos, double *y, int BS, int H, int d, bool inter, const double *inv, double af) {
    for (int r = 0; r < BS; r++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < d / 2; i++) {
                int i0 = inter ? 2 * i : i, i1 = inter ? 2 * i + 1 : i + d / 2;
                double a = pos[r] * inv[i], c = cos(a) * af, s = sin(a) * af;
                const float *v = x + (r * H + h) * d;
                y[(r * H + h) * d + i0] = v[i0] * c - v[i1] * s;
                y[(r * H + h) * d + i1] = v[i1] * c + v[i0] * s;
            }
}

static void test_rope_and_yarn(void **state) {
    (void)state;
    enum { B = 2, S = 5, H = 3, D = 8 };
    float *x = rnd(B * S * H * D, 1), *pos = rnd_ids(B * S, 60);
    const char *src =
        "dim B, S;\ninput x: f32[B, S, 3, 8];\ninput pos: i32[B, S];\n"
        "output inter = rope(x, pos, theta=10000.0, interleave=true);\n"
        "output halves = rope(x, pos, theta=500.0, interleave=false);\n"
        "output yarn = rope(x, pos, theta=10000.0, interleave=true, factor=4.0, original_max_position=4096, beta_fast=32.0, beta_slow=1.0, mscale=0.7, mscale_all_dim=1.0);\n"
        "output yarn1 = rope(x, pos, theta=10000.0, interleave=false, factor=4.0, original_max_position=64, beta_fast=32.0, beta_slow=1.0);\n";
    Prog *p = prog_new(src, NULL, 0, 2, false);
    CpuInput in[] = {{"x", 4, {B, S, H, D}, x}, {"pos", 2, {B, S}, pos}};
    prog_run(p, in, 2);
    int64_t dims[] = {B, S, H, D};
    double inv[D / 2], *ref = dbuf(B * S * H * D);
    static const struct {
        const char *name;
        bool inter;
        double theta, factor, orig, ms, msa;
    } cases[] = {{"inter", true, 10000, 0, 0, 0, 0},
                 {"halves", false, 500, 0, 0, 0, 0},
                 {"yarn", true, 10000, 4, 4096, 0.7, 1.0}, /* correction dims 1.31 and 2.81: ramp from 1 to 3 */
                 {"yarn1", false, 10000, 4, 64, 0, 0}};
    for (int c = 0; c < 4; c++) {
        double af = ref_inv_freq(D, cases[c].theta, cases[c].factor, cases[c].orig, 32, 1, cases[c].ms, cases[c].msa, inv);
        ref_rope(x, pos, ref, B * S, H, D, cases[c].inter, inv, af);
        close_to(out(p, cases[c].name, 4, dims), ref, B * S * H * D, 2e-5);
    }
    /* By hand (d=8, theta 1e4, factor 4, original 64, betas 32/1): correction
     * dims -0.497 and 1.008, so low 0, high 2; ramp (0, .5, 1, 1); inv_freq
     * (1, .5*.1 + .5*.025 = .0625, .0025, .00025); no mscale_all_dim, so the
     * factor is 0.1 ln 4 + 1 = 1.138629. Pair 1 of (1, 0) at position 10
     * turns by 0.625 rad: (cos, sin)(0.625) x 1.138629. */
    double af = ref_inv_freq(D, 10000, 4, 64, 32, 1, 0, 0, inv);
    assert_true(fabs(inv[1] - 0.0625) < 1e-12 && fabs(af - 1.1386294361) < 1e-9);
    float one[B * S * H * D] = {0}, tenpos[B * S];
    for (int i = 0; i < B * S; i++) tenpos[i] = 10;
    for (int i = 0; i < B * S * H; i++) one[i * D + 1] = one[i * D + 2] = 1; /* pair 1 is (x1, x5) in halves, (x2, x3) interleaved */
    CpuInput hin[] = {{"x", 4, {B, S, H, D}, one}, {"pos", 2, {B, S}, tenpos}};
    prog_run(p, hin, 2);
    const float *y = out(p, "yarn1", 4, dims);
    assert_float_equal(y[1], 0.92338648f, 2e-6);
    assert_float_equal(y[5], 0.66620898f, 2e-6);
    /* plain RoPE at position 10, pair 1 of d=8 turns by 10 * 1e4^(-1/4) = 1 rad */
    y = out(p, "inter", 4, dims);
    assert_float_equal(y[2], 0.54030231f, 2e-6);
    assert_float_equal(y[3], 0.84147098f, 2e-6);
    free(ref);
    free(x);
    free(pos);
    prog_free(p);
}

/* ---- attention ------------------------------------------------------------- */

/* softmax(q kᵀ scale) v with kv head h / (Hq/Hk); causal: j <= i + T - S. */
static void ref_attention(const float *q, const float *k, const float *v, double *y, int B, int S, int T, int Hq, int Hk,
                          int Dk, int Dv, double scale, bool causal) {
    double *sc = dbuf(T);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++)
            for (int h = 0; h < Hq; h++) {
                int hk = h / (Hq / Hk), last = causal ? i + T - S : T - 1;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= last; j++) {
                    sc[j] = 0;
                    for (int d = 0; d < Dk; d++) sc[j] += (double)q[((b * S + i) * Hq + h) * Dk + d] * k[((b * T + j) * Hk + hk) * Dk + d];
                    sc[j] *= scale;
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= last; j++) sum += sc[j] = exp(sc[j] - mx);
                for (int d = 0; d < Dv; d++) {
                    double acc = 0;
                    for (int j = 0; j <= last; j++) acc += sc[j] / sum * v[((b * T + j) * Hk + hk) * Dv + d];
                    y[((b * S + i) * Hq + h) * Dv + d] = acc;
                }
            }
    free(sc);
}

static void test_attention_causal_decode_offset(void **state) {
    (void)state;
    enum { B = 2, S = 3, T = 7, Hq = 4, Hk = 2, Dk = 5, Dv = 6 };
    float *q = rnd(B * S * Hq * Dk, 2), *k = rnd(B * T * Hk * Dk, 2), *v = rnd(B * T * Hk * Dv, 1);
    const char *src = "dim B, S, T;\ninput q: f32[B, S, 4, 5];\ninput k: f32[B, T, 2, 5];\ninput v: f32[B, T, 2, 6];\n"
                      "output c = attention(q, k, v, scale=0.37, causal=true);\n"
                      "output f = attention(q, k, v, scale=0.37, causal=false);\n";
    Prog *p = prog_new(src, NULL, 0, 3, false);
    CpuInput in[] = {{"q", 4, {B, S, Hq, Dk}, q}, {"k", 4, {B, T, Hk, Dk}, k}, {"v", 4, {B, T, Hk, Dv}, v}};
    prog_run(p, in, 3);
    int64_t dims[] = {B, S, Hq, Dv};
    double *ref = dbuf(B * S * Hq * Dv);
    ref_attention(q, k, v, ref, B, S, T, Hq, Hk, Dk, Dv, 0.37, true); /* query i sees keys 0 .. i + 4 */
    close_to(out(p, "c", 4, dims), ref, B * S * Hq * Dv, 1e-5);
    ref_attention(q, k, v, ref, B, S, T, Hq, Hk, Dk, Dv, 0.37, false);
    close_to(out(p, "f", 4, dims), ref, B * S * Hq * Dv, 1e-5);
    /* a prefill (T == S): the first query sees only the first key, so its
     * output is exactly that key's v (of its kv head) */
    CpuInput pre[] = {{"q", 4, {B, S, Hq, Dk}, q}, {"k", 4, {B, S, Hk, Dk}, k}, {"v", 4, {B, S, Hk, Dv}, v}};
    prog_run(p, pre, 3);
    const float *c = out(p, "c", 4, dims);
    for (int h = 0; h < Hq; h++)
        for (int d = 0; d < Dv; d++) assert_true(c[h * Dv + d] == v[(h / 2) * Dv + d]);
    free(ref);
    free(q);
    free(k);
    free(v);
    prog_free(p);
}

/* ---- elementwise, reductions ------------------------------------------------ */

static void test_elementwise_broadcast(void **state) {
    (void)state;
    enum { B = 2 };
    float *a = rnd(B * 4, 2), *b = rnd(3, 2), *pz = rnd(B * 5, 4);
    for (int i = 0; i < B * 5; i++) pz[i] = fabsf(pz[i]) + 0.01f;
    const char *src = "dim B;\ninput a: f32[B, 1, 4];\ninput b: f32[3, 1];\ninput pz: f32[B, 5];\n"
                      "output add = a + b;\noutput sub = a - b;\noutput mul = a * b;\noutput div = a / b;\noutput mx = max(a, b);\n"
                      "output sc = a * 2.5;\noutput sig = sigmoid(a);\noutput silu = silu(a);\noutput ex = exp(a);\n"
                      "output ng = neg(a);\noutput sq = sqrt(pz);\noutput rs = rsqrt(pz);\n";
    Prog *p = prog_new(src, NULL, 0, 2, false);
    CpuInput in[] = {{"a", 3, {B, 1, 4}, a}, {"b", 2, {3, 1}, b}, {"pz", 2, {B, 5}, pz}};
    prog_run(p, in, 3);
    int64_t d3[] = {B, 3, 4}, d1[] = {B, 1, 4}, dp[] = {B, 5};
    double r[5][B * 3 * 4];
    for (int i = 0; i < B; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) {
                double x = a[i * 4 + k], y = b[j];
                int o = (i * 3 + j) * 4 + k;
                r[0][o] = x + y, r[1][o] = x - y, r[2][o] = x * y, r[3][o] = x / y, r[4][o] = fmax(x, y);
            }
    const char *bin[] = {"add", "sub", "mul", "div", "mx"};
    for (int i = 0; i < 5; i++) close_to(out(p, bin[i], 3, d3), r[i], B * 12, 1e-6);
    double u[6][B * 5];
    for (int i = 0; i < B * 4; i++) {
        double x = a[i];
        u[0][i] = x * 2.5, u[1][i] = 1 / (1 + exp(-x)), u[2][i] = x / (1 + exp(-x)), u[3][i] = exp(x), u[4][i] = -x;
    }
    const char *un[] = {"sc", "sig", "silu", "ex", "ng"};
    for (int i = 0; i < 5; i++) close_to(out(p, un[i], 3, d1), u[i], B * 4, 1e-6);
    for (int i = 0; i < B * 5; i++) u[0][i] = sqrt(pz[i]), u[1][i] = 1 / sqrt(pz[i]);
    close_to(out(p, "sq", 2, dp), u[0], B * 5, 1e-6);
    close_to(out(p, "rs", 2, dp), u[1], B * 5, 1e-6);
    free(a);
    free(b);
    free(pz);
    prog_free(p);
}

static void test_softmax_sum(void **state) {
    (void)state;
    enum { B = 2, M = 5, N = 7 };
    float *x = rnd(B * M * N, 60); /* scores far beyond exp's range: the max must be subtracted */
    const char *src = "dim B;\ninput x: f32[B, 5, 7];\noutput sm = softmax(x, axis=1);\noutput sl = softmax(x, axis=-1);\n"
                      "output s1 = sum(x, axis=-1);\noutput s0 = sum(x, axis=1, keepdim=true);\n";
    Prog *p = prog_new(src, NULL, 0, 2, false);
    CpuInput in = {"x", 3, {B, M, N}, x};
    prog_run(p, &in, 1);
    double sm[B * M * N], sl[B * M * N], s1[B * M] = {0}, s0[B * N] = {0};
    for (int b = 0; b < B; b++) {
        for (int n = 0; n < N; n++) {
            double mx = -INFINITY, z = 0;
            for (int m = 0; m < M; m++) mx = fmax(mx, x[(b * M + m) * N + n]);
            for (int m = 0; m < M; m++) z += exp(x[(b * M + m) * N + n] - mx);
            for (int m = 0; m < M; m++) {
                sm[(b * M + m) * N + n] = exp(x[(b * M + m) * N + n] - mx) / z;
                s0[b * N + n] += x[(b * M + m) * N + n];
            }
        }
        for (int m = 0; m < M; m++) {
            double mx = -INFINITY, z = 0;
            for (int n = 0; n < N; n++) mx = fmax(mx, x[(b * M + m) * N + n]);
            for (int n = 0; n < N; n++) z += exp(x[(b * M + m) * N + n] - mx);
            for (int n = 0; n < N; n++) {
                sl[(b * M + m) * N + n] = exp(x[(b * M + m) * N + n] - mx) / z;
                s1[b * M + m] += x[(b * M + m) * N + n];
            }
        }
    }
    close_to(out(p, "sm", 3, (int64_t[]){B, M, N}), sm, B * M * N, 1e-5);
    close_to(out(p, "sl", 3, (int64_t[]){B, M, N}), sl, B * M * N, 1e-5);
    close_to(out(p, "s1", 2, (int64_t[]){B, M}), s1, B * M, 1e-5);
    close_to(out(p, "s0", 3, (int64_t[]){B, 1, N}), s0, B * N, 1e-5);
    free(x);
    prog_free(p);
}

/* ---- layout, lookup, casts -------------------------------------------------- */

static void test_layout(void **state) {
    (void)state;
    enum { B = 2 };
    float *x = rnd(B * 6 * 4, 1), *y = rnd(B * 2 * 4, 1), *gi = rnd_ids(B * 6 * 2, 4), *gj = rnd_ids(B * 3 * 4, 6);
    const char *src = "dim B;\ninput x: f32[B, 6, 4];\ninput y: f32[B, 2, 4];\ninput gi: i32[B, 6, 2];\ninput gj: i32[B, 3, 4];\n"
                      "output r = reshape(x, [B, 3, 8]);\noutput t = transpose(x, [2, 0, 1]);\n"
                      "output sl = slice(x, axis=1, start=2, len=3);\noutput c = concat(x, y, x, axis=1);\n"
                      "output g2 = gather(x, gi, axis=2);\noutput g1 = gather(x, gj, axis=1);\n";
    Prog *p = prog_new(src, NULL, 0, 2, false);
    CpuInput in[] = {{"x", 3, {B, 6, 4}, x}, {"y", 3, {B, 2, 4}, y}, {"gi", 3, {B, 6, 2}, gi}, {"gj", 3, {B, 3, 4}, gj}};
    prog_run(p, in, 4);
    assert_memory_equal(out(p, "r", 3, (int64_t[]){B, 3, 8}), x, sizeof(float) * B * 24);
    const float *t = out(p, "t", 3, (int64_t[]){4, B, 6}), *sl = out(p, "sl", 3, (int64_t[]){B, 3, 4});
    const float *c = out(p, "c", 3, (int64_t[]){B, 14, 4}), *g2 = out(p, "g2", 3, (int64_t[]){B, 6, 2});
    const float *g1 = out(p, "g1", 3, (int64_t[]){B, 3, 4});
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < 6; i++)
            for (int k = 0; k < 4; k++) assert_true(t[(k * B + b) * 6 + i] == x[(b * 6 + i) * 4 + k]);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 4; k++) assert_true(sl[(b * 3 + i) * 4 + k] == x[(b * 6 + 2 + i) * 4 + k]);
        for (int i = 0; i < 14; i++)
            for (int k = 0; k < 4; k++) {
                float want = i < 6 ? x[(b * 6 + i) * 4 + k] : i < 8 ? y[(b * 2 + i - 6) * 4 + k] : x[(b * 6 + i - 8) * 4 + k];
                assert_true(c[(b * 14 + i) * 4 + k] == want);
            }
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 2; j++) assert_true(g2[(b * 6 + i) * 2 + j] == x[(b * 6 + i) * 4 + (int)gi[(b * 6 + i) * 2 + j]]);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 4; k++) assert_true(g1[(b * 3 + i) * 4 + k] == x[(b * 6 + (int)gj[(b * 3 + i) * 4 + k]) * 4 + k]);
    }
    gj[5] = 6; /* past the axis */
    assert_false(cpu_exec_run(p->x, in, 4, p->d));
    assert_non_null(strstr(diag_first(p->d)->msg, "index 6 is outside 0..5"));
    assert_int_equal(diag_first(p->d)->loc.line, 11);
    free(x);
    free(y);
    free(gi);
    free(gj);
    prog_free(p);
}

static void test_embedding_cast_const(void **state) {
    (void)state;
    enum { B = 2, S = 3, V = 10, D = 6 };
    float *tab = rnd(V * D, 1), *ids = rnd_ids(B * S, V);
    Wt wt[] = {{"emb", tab}};
    const char *src = "dim B, S;\nweight tab: f32[10, 6] = \"emb\";\ninput ids: i32[B, S];\n"
                      "output e = embedding(tab, ids);\ninput v: f32[B, 4];\n"
                      "output i = cast(v, i32);\noutput h = cast(v, bf16);\noutput k = cast(v, fp8e4m3) + 0.25;\n";
    Prog *p = prog_new(src, wt, 1, 2, false);
    float v[B * 4] = {2.7f, -2.7f, 0.4f, 1.001f, -0.999f, 300.5f, 1e-3f, -7.0f};
    CpuInput in[] = {{"ids", 2, {B, S}, ids}, {"v", 2, {B, 4}, v}};
    prog_run(p, in, 2);
    const float *e = out(p, "e", 3, (int64_t[]){B, S, D});
    for (int r = 0; r < B * S; r++) assert_memory_equal(e + r * D, tab + (int)ids[r] * D, sizeof(float) * D);
    /* to int: toward zero, as C and torch convert; to bf16/fp8: the f32 value unchanged (FP32 reference) */
    const float *i = out(p, "i", 2, (int64_t[]){B, 4}), *h = out(p, "h", 2, (int64_t[]){B, 4}), *k = out(p, "k", 2, (int64_t[]){B, 4});
    float want_i[B * 4] = {2, -2, 0, 1, 0, 300, 0, -7};
    for (int j = 0; j < B * 4; j++) {
        assert_true(i[j] == want_i[j]);
        assert_true(h[j] == v[j]);
        assert_true(k[j] == v[j] + 0.25f);
    }
    ids[4] = 10;
    assert_false(cpu_exec_run(p->x, in, 2, p->d));
    const Diag *d = diag_first(p->d);
    assert_non_null(strstr(d->msg, "token id 10 is outside the vocabulary 0..9"));
    assert_int_equal(d->loc.line, 4);
    assert_true(d->loc.col > 0);
    free(tab);
    free(ids);
    prog_free(p);
}

/* ---- routing ------------------------------------------------------------------ */

/* Indices of the k largest of v[0..n) (masked out where keep is false),
 * largest first, ties to the lower index: a stable selection. */
static void ref_topk(const float *v, const bool *keep, int n, int k, int *idx) {
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool used = false;
            for (int j = 0; j < r; j++) used |= idx[j] == i;
            if (!used && (!keep || keep[i]) && (best < 0 || v[i] > v[best])) best = i;
        }
        idx[r] = best;
    }
}

static void test_topk(void **state) {
    (void)state;
    enum { R = 6, E = 12, K = 4 };
    float *x = rnd(R * E, 1);
    for (int i = 0; i < R * E; i++) x[i] = (float)(int)(x[i] * 3) / 3; /* few distinct values: many ties */
    float tie[E] = {1, 3, 3, 2, 3, 0, 0, 0, 0, 0, 0, 0};
    memcpy(x, tie, sizeof tie);
    /* row 1: NaN ranks as -inf (as the GPU's routing kernels rank it), so it
     * is chosen only after every number, -inf included, and before nothing */
    float nan_row[E] = {NAN, -INFINITY, NAN, 2, -1, -5, NAN, -INFINITY, NAN, NAN, NAN, NAN};
    memcpy(x + E, nan_row, sizeof nan_row);
    const char *src = "dim R;\ninput x: f32[R, 12];\noutput t = topk(x, k=4);\n";
    Prog *p = prog_new(src, NULL, 0, 2, false);
    CpuInput in = {"x", 2, {R, E}, x};
    prog_run(p, &in, 1);
    const float *t = out(p, "t", 2, (int64_t[]){R, K});
    assert_true(t[0] == 1 && t[1] == 2 && t[2] == 4 && t[3] == 3); /* the three 3s by index, then the 2 */
    assert_true(t[4] == 3 && t[5] == 4 && t[6] == 5 && t[7] == 0);  /* 2, -1, -5, then -inf and NaN tie: index 0 */
    for (int r = 2; r < R; r++) {
        int idx[K];
        ref_topk(x + r * E, NULL, E, K, idx);
        for (int j = 0; j < K; j++) assert_true(t[r * K + j] == idx[j]);
    }
    free(x);
    prog_free(p);
}

/* group_topk reference: group score = sum of its group_top largest; keep
 * the topk_groups best groups (ties: lower group); top k among them. */
static void ref_group_topk(const float *v, int E, int k, int G, int TG, int gt, int *idx) {
    int per = E / G, top[16], best_g[16];
    float gs[16];
    bool keep[64] = {0};
    for (int g = 0; g < G; g++) {
        ref_topk(v + g * per, NULL, per, gt, top);
        gs[g] = 0;
        for (int j = 0; j < gt; j++) gs[g] += v[g * per + top[j]];
    }
    ref_topk(gs, NULL, G, TG, best_g);
    for (int j = 0; j < TG; j++)
        for (int e = 0; e < per; e++) keep[best_g[j] * per + e] = true;
    ref_topk(v, keep, E, k, idx);
}

static void test_group_topk(void **state) {
    (void)state;
    enum { R = 5, E = 8 };
    float *x = rnd(R * E, 1);
    /* row 0: groups (0.9, 0) (0.8, 0.75) (0.7, 0.7) (0.1, 0.2): by top-2 sums
     * groups 1 and 2 win, so expert 0 (the largest) is out: 2, 3 — plain topk
     * would give 0, 2. Row 1: three groups tie at 1.0, the lower two are
     * kept, and the 0.5s tie: 0, 1. */
    float lim[E] = {0.9f, 0.0f, 0.8f, 0.75f, 0.7f, 0.7f, 0.1f, 0.2f}, ties[E] = {0.5f, 0.5f, 0.5f, 0.5f, 0.2f, 0.8f, 0.1f, 0.1f};
    memcpy(x, lim, sizeof lim);
    memcpy(x + E, ties, sizeof ties);
    const char *src = "dim R;\ninput x: f32[R, 8];\noutput g2 = group_topk(x, k=2, groups=4, topk_groups=2, group_top=2);\n"
                      "output g1 = group_topk(x, k=3, groups=4, topk_groups=2, group_top=1);\noutput t = topk(x, k=2);\n";
    Prog *p = prog_new(src, NULL, 0, 2, false);
    CpuInput in = {"x", 2, {R, E}, x};
    prog_run(p, &in, 1);
    const float *g2 = out(p, "g2", 2, (int64_t[]){R, 2}), *g1 = out(p, "g1", 2, (int64_t[]){R, 3}), *t = out(p, "t", 2, (int64_t[]){R, 2});
    assert_true(g2[0] == 2 && g2[1] == 3);
    assert_true(t[0] == 0 && t[1] == 2); /* group limiting changed the answer */
    assert_true(g2[2] == 0 && g2[3] == 1);
    /* group_top=1 on row 1: group bests 0.5, 0.5, 0.8, 0.1 keep groups 2 and
     * 0 (0 beats 1 on the tie): experts 5 (0.8), then 0 and 1 (0.5 each) */
    assert_true(g1[3] == 5 && g1[4] == 0 && g1[5] == 1);
    for (int r = 0; r < R; r++) {
        int i2[2], i1[3];
        ref_group_topk(x + r * E, E, 2, 4, 2, 2, i2);
        ref_group_topk(x + r * E, E, 3, 4, 2, 1, i1);
        for (int j = 0; j < 2; j++) assert_true(g2[r * 2 + j] == i2[j]);
        for (int j = 0; j < 3; j++) assert_true(g1[r * 3 + j] == i1[j]);
    }
    free(x);
    prog_free(p);
}

/* ---- FP8 ops of the fp8-quant pass, and input errors -------------------------------- */

static void test_act_scale_quantize(void **state) {
    (void)state;
    enum { M = 3, K = 300, NB = 3 };
    float *x = rnd(M * K, 5);
    for (int k = 0; k < 128; k++) x[K + k] = 0; /* row 1, tile 0: all zero */
    const char *src = "dim M;\ninput x: f32[M, 300];\nlet s = act_scale(x, block=128);\noutput s = s;\n"
                      "output q = quantize(x, s, block=128);\n";
    Prog *p = prog_new(src, NULL, 0, 2, false);
    CpuInput in = {"x", 2, {M, K}, x};
    prog_run(p, &in, 1);
    const float *s = out(p, "s", 2, (int64_t[]){M, NB}), *q = out(p, "q", 2, (int64_t[]){M, K});
    for (int m = 0; m < M; m++)
        for (int b = 0; b < NB; b++) {
            float amax = 0;
            for (int k = b * 128; k < K && k < b * 128 + 128; k++) amax = fmaxf(amax, fabsf(x[m * K + k]));
            assert_true(s[m * NB + b] == amax / 448.0f);
            for (int k = b * 128; k < K && k < b * 128 + 128; k++) {
                float want = amax > 0 ? cpu_fp8_round(x[m * K + k] / (amax / 448.0f)) : 0.0f;
                assert_true(q[m * K + k] == want);
                assert_true(fabsf(q[m * K + k]) <= 448.0f);
            }
        }
    assert_true(s[NB] == 0 && q[K] == 0 && q[K + 127] == 0);
    free(x);
    prog_free(p);
}

static void test_input_errors(void **state) {
    (void)state;
    const char *src = "dim B, S;\ninput x: f32[B, S, 4];\ninput y: f32[B, 4];\noutput z = sum(x, axis=1) + y;\n";
    Prog *p = prog_new(src, NULL, 0, 1, false);
    float x[2 * 3 * 4] = {1}, y[3 * 4] = {1};
    CpuInput miss[] = {{"x", 3, {2, 3, 4}, x}};
    assert_false(cpu_exec_run(p->x, miss, 1, p->d));
    assert_non_null(strstr(diag_first(p->d)->msg, "input 'y' was not given"));
    assert_int_equal(diag_first(p->d)->loc.line, 3);
    CpuInput wrong[] = {{"x", 3, {2, 3, 5}, x}, {"y", 2, {2, 4}, y}};
    assert_false(cpu_exec_run(p->x, wrong, 2, p->d));
    assert_non_null(strstr(diag_first(p->d)->next->msg, "input 'x' has a shape that does not fit its declared type f32[B,S,4]"));
    CpuInput batch[] = {{"x", 3, {2, 3, 4}, x}, {"y", 2, {3, 4}, y}}; /* B = 2 from x, 3 from y */
    assert_false(cpu_exec_run(p->x, batch, 2, p->d));
    assert_int_equal(diag_error_count(p->d), 3);
    CpuInput empty[] = {{"x", 3, {2, 0, 4}, x}, {"y", 2, {2, 4}, y}}; /* S = 0: kernels would divide by it */
    assert_false(cpu_exec_run(p->x, empty, 2, p->d));
    const Diag *e = diag_first(p->d);
    while (e->next) e = e->next;
    assert_non_null(strstr(e->msg, "input: the value has no elements"));
    assert_int_equal(e->loc.line, 2);
    CpuInput good[] = {{"x", 3, {2, 3, 4}, x}, {"y", 2, {2, 4}, y}};
    prog_run(p, good, 2);
    const float *z = out(p, "z", 2, (int64_t[]){2, 4});
    assert_true(z[0] == 2 && z[1] == 0); /* x[0,0,0] + y[0,0]; the rest are zeros */
    prog_free(p);
}

int main(void) {
    const char *env = getenv("DSCC_TEST_SEED");
    rng = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    print_message("test_cpu_ops: DSCC_TEST_SEED=%llu\n", (unsigned long long)rng);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_fp8_emulation),
        cmocka_unit_test(test_einsum),
        cmocka_unit_test(test_expert_linear),
        cmocka_unit_test(test_expert_linear_fp8_emulation),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope_and_yarn),
        cmocka_unit_test(test_attention_causal_decode_offset),
        cmocka_unit_test(test_elementwise_broadcast),
        cmocka_unit_test(test_softmax_sum),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_embedding_cast_const),
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_group_topk),
        cmocka_unit_test(test_act_scale_quantize),
        cmocka_unit_test(test_input_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
