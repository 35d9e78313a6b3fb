/* bench_gemm.c — dscc's block-scaled FP8 GEMM alone, at DeepSeek-V3's
 * linear shapes and M = 1 ... 4096 tokens: the generated kernel
 * (DSCC_CUBLASLT=0 DSCC_GEMM_TMA=0's path: the skinny-M form at M <= 32,
 * the tensor-core tile above), the tile alone at M <= 32
 * (DSCC_GEMM_SKINNY=0), the TMA kernel above M = 32 (codegen/kernels/
 * gemm_tma.cuh, DSCC_GEMM_TMA=all) and, where it has an algorithm,
 * cuBLASLt (no table is read here).
 *
 * Each shape is a one-linear model (`y = silu(linear(x, w))` with x
 * bf16[B, S, K] and w [N, K]; a linear that is itself a graph output stays
 * bf16, as the LM head does) through the default pipeline, so fp8-quant makes it
 * act_scale -> quantize -> fp8_linear exactly as in the full model; random
 * weights, random activations. The fp8_linear kernel's GPU time is the
 * median of 7 repetitions of that kernel alone after 2 runs of the graph
 * (gpu_exec_time_kernel: events right around its launches, no host work
 * between them; before each, outside the timing, a memset of --flush-mb
 * MiB of device memory, default 256, five times an H200's L2, so the
 * weights come from HBM as in the model). The weights' TB/s is N * K bytes
 * over the generated kernel's time (at small M it only streams them). With
 * --check the output of each path at M <= 128 is compared with the CPU
 * executor on the same (bf16) inputs, and above M = 128 (too slow for the
 * CPU) cuBLASLt's and the TMA kernel's output with the generated kernel's
 * (checked against the CPU at the smaller M): the worst rel L2 is printed,
 * and one over 2e-2 is marked FAIL and makes the exit status 1. --m and --shape
 * narrow the sweep (the emulated device of tests/emu runs
 * `--check --m 1,3 --shape kv_a` in under a minute). --table FILE writes
 * the GEMM table (runtime/gemm_table.h) of what was fastest per shape and
 * range of M: each measured M stands for the rows above the one measured
 * before it. Prints one markdown table; run on the GPU machine
 * (bench/gpu_bench.sh runs it after the baselines, which time cuBLASLt
 * alone at the same shapes). --skinny-sweep times instead the skinny
 * form's tuning variants (DSCC_SKINNY values, --variants) per shape at
 * M = 1, 8, 32, the same way, and prints the best per shape and M; above
 * the variants of each shape a row times a pure read of the same bytes
 * (codegen/kernels/stream_read.cuh: 16-byte loads, 8 in flight a thread,
 * every SM, the same flush and events), the least any kernel that reads
 * the weights can take on this GPU, and each best line gives its share. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_tune.h"
#include "bench/bench_util.h"
#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/cuda.h"
#include "runtime/gemm_table.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"

typedef struct {
    const char *name;
    int64_t n, k;
} Shape;

static const Shape SHAPES[] = {{"q_a", 1536, 7168},          {"q_b", 24576, 1536},          {"kv_a", 576, 7168},
                               {"o_proj", 7168, 16384},      {"expert_gate_up", 2048, 7168}, {"expert_down", 7168, 2048},
                               {"dense_gate_up", 18432, 7168}, {"dense_down", 7168, 18432}};
static const int64_t MS[] = {1, 8, 32, 64, 128, 512, 1024, 4096};

/* Median ms of the fp8_linear kernel alone over 7 repetitions, each after
 * an L2 flush of `flush` bytes (the graph run twice first), or -1 after reporting. */
static double time_gemm(const IrGraph *g, GpuExec *x, const CpuInput *in, int64_t flush, DiagEngine *d) {
    double t[7];
    for (int rep = 0; rep < 2; rep++)
        if (!gpu_exec_run(x, in, 1, d)) return -1;
    int k = 0;
    while (k < gpu_exec_kernels(x) && !(gpu_exec_kernel_node(x, k) >= 0 && g->nodes[gpu_exec_kernel_node(x, k)]->op == IR_OP_FP8_LINEAR)) k++;
    if (k == gpu_exec_kernels(x)) {
        fprintf(stderr, "bench_gemm: no fp8_linear kernel in the graph\n");
        return -1;
    }
    if (!gpu_exec_time_kernel(x, k, 7, flush, t, d)) return -1;
    bench_sort_d(t, 7);
    return t[3];
}

static int usage(void) {
    fprintf(stderr, "usage: bench_gemm [--check] [--m M1,M2,...] [--shape NAME] [--flush-mb N] [--table FILE] [--skinny-sweep [--variants 'V1;V2']]\n"
                    "  --check        compare each path with the CPU executor at M <= 128, cuBLASLt and the TMA kernel with the generated kernel above\n"
                    "  --m LIST       the token counts, ascending (default 1,8,32,64,128,512,1024,4096; at most 8)\n"
                    "  --shape NAME   one shape only: q_a, q_b, kv_a, o_proj, expert_gate_up, expert_down, dense_gate_up, dense_down\n"
                    "  --flush-mb N   MiB of device memory zeroed before each timed repetition, an L2 flush (default 256; 0: none)\n"
                    "  --table FILE   write the fastest path per shape and range of M as a GEMM table (DSCC_GEMM_TABLE's form)\n"
                    "  --skinny-sweep time the skinny form's variants (DSCC_SKINNY values) per shape at M = 1, 8, 32 (or --m) and print the best;\n"
                    "                 --shape takes a comma-separated list there (qkv_a, q_a, kv_a, q_b, o_proj, expert_gate_up, expert_down,\n"
                    "                 dense_gate_up, dense_down)\n"
                    "  --variants L   the sweep's variants, ';'-separated DSCC_SKINNY values ('default': codegen's choice)\n");
    return 2;
}

/* The worst rel L2 of the GPU's y against the CPU executor's on `in`, or -1 after reporting. */
static double check_output(GpuExec *x, CpuExec *cx, const CpuInput *in, int64_t n, DiagEngine *d) {
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *gy = gpu_exec_output(x, "y", &rank, dims);
    if (!gy || !cpu_exec_run(cx, in, 1, d)) return -1;
    const float *cy = cpu_exec_output(cx, "y", &rank, dims);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) num += ((double)gy[i] - cy[i]) * ((double)gy[i] - cy[i]), den += (double)cy[i] * cy[i];
    return sqrt(num / (den > 0 ? den : 1e-30));
}

/* The rel L2 of the GPU's y against ref (n values), or -1 after reporting. */
static double check_against(GpuExec *x, const float *ref, int64_t n) {
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *gy = gpu_exec_output(x, "y", &rank, dims);
    if (!gy) return -1;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) num += ((double)gy[i] - ref[i]) * ((double)gy[i] - ref[i]), den += (double)ref[i] * ref[i];
    return sqrt(num / (den > 0 ? den : 1e-30));
}

/* The compute capability of GPU 0 (90 for sm_90), 0 when none opens. */
static int gpu_sm(void) {
    Arena *a = arena_new();
    RtCuda *c = rt_cuda_open(diag_new(a, NULL), 0);
    int sm = c ? rt_cuda_sm(c) : 0;
    rt_cuda_close(c);
    arena_free(a);
    return sm;
}

/* the generated kernel, cuBLASLt where it can, the tile alone at M <= 32, the TMA kernel above */
enum { GENERATED, CUBLASLT, TILE, TMA, NPATHS };

typedef struct {
    double ms[NPATHS][8]; /* 0: not run */
    double err[8];        /* --check: the worst path's, -1 unchecked */
    int lib[8];           /* cuBLASLt ran the GEMM */
    int tma[8];           /* the TMA kernel did */
    float *ref[8];        /* --check above M = 128: the generated kernel's y (malloc'd), the others' reference */
} Times;

/* --check above M = 128, after path `path` ran: the generated kernel's y
 * kept in *ref, another path's compared with it into *err (its worst).
 * False after reporting. */
static bool check_large(GpuExec *x, int path, int64_t n, float **ref, double *err) {
    int rank;
    int64_t dims[IR_MAX_RANK];
    if (path == GENERATED) {
        const float *gy = gpu_exec_output(x, "y", &rank, dims);
        *ref = gy ? malloc(sizeof(float) * (size_t)n) : NULL;
        if (!*ref) {
            fprintf(stderr, "bench_gemm: no room for the generated kernel's %lld outputs\n", (long long)n);
            return false;
        }
        memcpy(*ref, gy, sizeof(float) * (size_t)n);
        return true;
    }
    if (!*ref) return true;
    double e = check_against(x, *ref, n);
    if (e < 0) return false;
    if (e > *err) *err = e;
    return true;
}

/* Times path `path` of graph g at each M (and checks it against cx). False after reporting. */
static bool time_path(const IrGraph *g, const Shape *sh, int path, const int64_t *ms_list, int nm, int64_t flush, float *xv,
                      CpuWeightSource *ws, CpuExec *cx, Times *t, DiagEngine *d) {
    int64_t Mmax = 1;
    for (int m = 0; m < nm; m++) Mmax = ms_list[m] > Mmax ? ms_list[m] : Mmax;
    /* the rule alone (no table) for cuBLASLt's times; the tile at every M for the tile's */
    setenv("DSCC_GEMM_TABLE", "none", 1);
    setenv("DSCC_GEMM_SKINNY", path == TILE ? "0" : "1", 1);
    setenv("DSCC_GEMM_TMA", path == TMA ? "all" : "0", 1);
    /* keep_all: every value keeps its place, so the kernel timed alone reads what it read in the run */
    GpuOptions go = {.tune = bench_tune(), .max_batch = 1, .max_seq = Mmax, .max_ctx = Mmax, .keep_all = true, .no_blas = path != CUBLASLT};
    if (path == TMA && Mmax <= CG_SKINNY_M) return true;
    GpuExec *x = gpu_exec_new(g, ws, &go, d);
    if (!x) return false;
    bool ok = true;
    for (int m = 0; m < nm && ok; m++) {
        int64_t M = ms_list[m];
        if ((path == TILE && M > CG_SKINNY_M) || (path == TMA && M <= CG_SKINNY_M)) continue;
        CpuInput in[1] = {{"x", 3, {1, M, sh->k}, xv}};
        ok = (t->ms[path][m] = time_gemm(g, x, in, flush, d)) > 0;
        if (ok && path == CUBLASLT) t->lib[m] = gpu_exec_last_lib_calls(x);
        if (ok && path == TMA && !(t->tma[m] = gpu_exec_last_tma_calls(x))) t->ms[TMA][m] = 0; /* no tensor maps here: the tile ran */
        if (ok && cx && M <= 128) { /* the output of this path against the CPU executor on the same inputs */
            double e = check_output(x, cx, in, M * sh->n, d);
            ok = e >= 0;
            if (e > t->err[m]) t->err[m] = e;
        } else if (ok && cx) /* above: against the generated kernel's */
            ok = check_large(x, path, M * sh->n, &t->ref[m], &t->err[m]);
    }
    gpu_exec_free(x);
    return ok;
}

/* The GEMM table's lines of one shape: per measured M, the rows above the one measured before it. */
static void write_table(FILE *f, const Shape *sh, const int64_t *ms_list, int nm, const Times *t) {
    for (int m = 0; m < nm; m++) {
        double gen = t->ms[GENERATED][m] * 1e3, lib = t->lib[m] ? t->ms[CUBLASLT][m] * 1e3 : -1, tma = t->tma[m] ? t->ms[TMA][m] * 1e3 : -1;
        RtGemmChoice c = lib >= 0 && lib < gen ? RT_GEMM_CUBLASLT : RT_GEMM_GENERATED;
        if (tma >= 0 && tma < (c == RT_GEMM_CUBLASLT ? lib : gen)) c = RT_GEMM_TMA;
        RtGemmEntry e = {RT_GEMM_FP8, sh->n, sh->k, m ? ms_list[m - 1] + 1 : 1, ms_list[m], c, gen, lib, tma};
        rt_gemm_table_write_entry(f, &e);
    }
}

/* The benchmark's graph of one shape: silu(linear(x, w)) with x [B, S, K]
 * and w [N, K], through the kernels preset with FP8 (NULL after reporting). */
static IrGraph *shape_graph(Arena *a, DiagEngine *d, const Shape *sh) {
    char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, %lld];\nweight w: bf16[%lld, %lld] = \"w\";\noutput y = silu(linear(x, w));\n",
                             (long long)sh->k, (long long)sh->n, (long long)sh->k);
    IrGraph *g = fe_compile_string(a, d, "bench_gemm.dsl", src, strlen(src), &(FeOptions){NULL, NULL, 0});
    PassPipeline pp;
    PassRunOptions ro = {.tune = bench_tune()};
    if (!g || ir_verify(g, d) || !pass_pipeline_parse(a, d, pass_preset(a, "kernels", &(PassPreset){.fp8 = true}), &pp) ||
        !pass_pipeline_run(&pp, g, &ro, d))
        return NULL;
    return g;
}

/* x for M rows of K: the same seeded values each call, rounded to bf16 so
 * both executors see the same inputs (malloc'd). */
static float *shape_input(int64_t M, int64_t K) {
    float *xv = malloc(sizeof(float) * (size_t)(M * K));
    uint64_t rng = 5;
    for (int64_t i = 0; xv && i < M * K; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        xv[i] = rt_bf16_decode(rt_bf16_encode((float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0)));
    }
    return xv;
}

/* What a shape's rows share: its graph, x at the most rows measured, the seeded random weights and, with --check, the
 * CPU executor on them (cx; NULL without, or when it failed: reported). */
typedef struct {
    Arena *a;
    DiagEngine *d;
    IrGraph *g;
    float *xv;
    uint64_t seed; /* ws reads it */
    CpuWeightSource ws;
    CpuExec *cx;
} ShapeBench;

/* Opens s (in place: ws points into it) for shape sh at up to Mmax rows; false after reporting. */
static bool shape_open(ShapeBench *s, const Shape *sh, int64_t Mmax, bool check) {
    s->a = arena_new();
    s->d = diag_new(s->a, stderr);
    s->g = shape_graph(s->a, s->d, sh);
    if (!s->g) {
        arena_free(s->a);
        return false;
    }
    s->xv = shape_input(Mmax, sh->k);
    s->seed = 11;
    s->ws = cpu_random_weights(&s->seed);
    s->cx = check ? cpu_exec_new(s->g, &s->ws, &(CpuOptions){.threads = 0}, s->d) : NULL;
    return true;
}

static void shape_close(ShapeBench *s) {
    cpu_exec_free(s->cx);
    free(s->xv);
    arena_free(s->a);
}

/* One shape's row per M; the number of outputs over 2e-2 from the CPU's, or -1 after reporting. */
static int run_shape(const Shape *sh, const int64_t *ms_list, int nm, int64_t flush, bool check, FILE *table) {
    ShapeBench s;
    if (!shape_open(&s, sh, ms_list[nm - 1], check)) return -1;
    Times t = {.err = {-1, -1, -1, -1, -1, -1, -1, -1}};
    bool ok = !check || s.cx;
    for (int path = 0; path < NPATHS && ok; path++) ok = time_path(s.g, sh, path, ms_list, nm, flush, s.xv, &s.ws, s.cx, &t, s.d);
    int bad = 0;
    for (int m = 0; m < nm && ok; m++) {
        double flop = 2.0 * (double)ms_list[m] * (double)sh->n * (double)sh->k, gen = t.ms[GENERATED][m];
        printf("| %s (%lld x %lld) | %lld | %.1f | %.2f | ", sh->name, (long long)sh->n, (long long)sh->k, (long long)ms_list[m],
               flop / (gen * 1e-3) / 1e12, (double)sh->n * (double)sh->k / (gen * 1e-3) / 1e12);
        if (t.ms[TILE][m] > 0) printf("%.1f |", flop / (t.ms[TILE][m] * 1e-3) / 1e12);
        else printf("- |");
        printf(" %.1f | %s |", flop / (t.ms[CUBLASLT][m] * 1e-3) / 1e12, t.lib[m] ? "yes" : "no");
        if (t.tma[m]) printf(" %.1f |", flop / (t.ms[TMA][m] * 1e-3) / 1e12);
        else printf(" - |");
        if (check) printf(t.err[m] >= 0 ? " %.2e%s |" : " - |", t.err[m], t.err[m] > 2e-2 ? " FAIL" : "");
        bad += check && t.err[m] > 2e-2;
        printf("\n");
    }
    if (ok && table) write_table(table, sh, ms_list, nm, &t);
    fflush(stdout);
    for (int m = 0; m < nm; m++) free(t.ref[m]);
    shape_close(&s);
    return ok ? bad : -1;
}

/* --m's list: up to 8 ascending counts in 1..65536; false when it is not one. */
static bool parse_ms(const char *arg, int64_t *ms_list, int *nm) {
    *nm = 0;
    for (const char *p = arg; *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < 1 || v > 65536 || *nm == 8 || (*nm && v <= ms_list[*nm - 1])) return false;
        ms_list[(*nm)++] = v;
        p = *end ? end + 1 : end;
    }
    return *nm > 0;
}

/* ---- --skinny-sweep: the skinny form's tuning parameters, timed in one run ---- */

/* The variants timed by default (DSCC_SKINNY values; "" is the shape's
 * default of codegen: for FP8 at M <= 8 gemm_skinny.cuh's persistent
 * pipelined form where its column groups number 132 or more, the round
 * form otherwise and above 8 rows): the pipelined form's 8-row groups a
 * column group (rb), K blocks a warp a step (u: two steps in flight) and
 * CTAs an SM (minb: 1 lifts the register budget to 255, no spill at
 * rb x u = 4); the round form (pipe=0) with its own rb, u (u32 for its
 * instance for M > 8 alone, which spills at 128 registers from rb x u = 4
 * on), minb and K split over a cluster of CTAs (split);
 * gemm_skinny2.cuh (v2=1); gemm_skinny_bulk.cuh (bulk=1: its weights and
 * x by 1-D bulk copies into a shared-memory ring) with its rb, u, stages
 * and split. */
static const char *const SWEEP_VARIANTS[] = {"",
                                             /* the pipelined form (M <= 8) */
                                             "pipe=1,rb=1,u=2", "pipe=1,rb=2,u=1", "pipe=1,rb=1,u=1", "pipe=1,rb=1,u=4,minb=1",
                                             "pipe=1,rb=2,u=2,minb=1",
                                             /* the round form (the default before the pipelined one) */
                                             "pipe=0", "pipe=0,rb=1,u=2,minb=2", "pipe=0,rb=2,u=2,u32=1,minb=2", "pipe=0,rb=4,u=1,minb=2",
                                             /* its K split over a cluster of CTAs at M > 8 */
                                             "pipe=0,rb=2,u=2,u32=1,minb=2,split=4",
                                             /* gemm_skinny2.cuh (opt-in for FP8) to 16 rows, the tile above */
                                             "v2=1",
                                             /* gemm_skinny_bulk.cuh (M <= 8; opt-in, DSCC_SKINNY_BULK=1): codegen's shape, then
                                              * 8- or 16-row groups, 1-4 KB of K a stage, a shallower ring, a K split */
                                             "bulk=1", "bulk=1,rb=1,u=2", "bulk=1,rb=2,u=1", "bulk=1,rb=1,u=1", "bulk=1,rb=1,u=4",
                                             "bulk=1,rb=2,u=2", "bulk=1,stages=4", "bulk=1,rb=1,u=1,split=2"};
enum { SWEEP_MAX = 32 };

/* The shapes of the sweep: bench_gemm's and the merged q_a + kv_a (N = 2112). */
static const Shape SWEEP_SHAPES[] = {{"qkv_a", 2112, 7168}, {"q_a", 1536, 7168}, {"kv_a", 576, 7168}, {"q_b", 24576, 1536},
                                     {"o_proj", 7168, 16384}, {"expert_gate_up", 2048, 7168}, {"expert_down", 7168, 2048},
                                     {"dense_gate_up", 18432, 7168}, {"dense_down", 7168, 18432}};

/* The generated kernel's ms at each M with DSCC_SKINNY = var (and, with cx,
 * the worst rel L2 against the CPU in *err); false after reporting. */
static bool sweep_variant(const IrGraph *g, const Shape *sh, const char *var, const int64_t *ms_list, int nm, int64_t flush, float *xv,
                          CpuWeightSource *ws, CpuExec *cx, double *ms, double *err, DiagEngine *d) {
    setenv("DSCC_GEMM_TABLE", "none", 1);
    setenv("DSCC_GEMM_SKINNY", "1", 1);
    setenv("DSCC_GEMM_TMA", "0", 1);
    if (*var) setenv("DSCC_SKINNY", var, 1);
    else unsetenv("DSCC_SKINNY");
    GpuOptions go = {.tune = bench_tune(), .max_batch = 1, .max_seq = ms_list[nm - 1], .max_ctx = ms_list[nm - 1], .keep_all = true, .no_blas = true};
    GpuExec *x = gpu_exec_new(g, ws, &go, d);
    unsetenv("DSCC_SKINNY");
    if (!x) return false;
    bool ok = true;
    for (int m = 0; m < nm && ok; m++) {
        CpuInput in[1] = {{"x", 3, {1, ms_list[m], sh->k}, xv}};
        ok = (ms[m] = time_gemm(g, x, in, flush, d)) > 0;
        if (ok && cx) {
            double e = check_output(x, cx, in, ms_list[m] * sh->n, d);
            ok = e >= 0;
            if (e > *err) *err = e;
        }
    }
    gpu_exec_free(x);
    return ok;
}

/* One shape's sweep: a row per variant (us and weights TB/s at each M) and
 * the best variant per M. The number of variants that failed or are over 2e-2 from the CPU, or -1 after reporting. */
static int sweep_shape(const Shape *sh, const char *const *vars, int nv, const int64_t *ms_list, int nm, int64_t flush, bool check) {
    ShapeBench s;
    if (!shape_open(&s, sh, ms_list[nm - 1], check)) return -1;
    double ms[SWEEP_MAX][8], best[8];
    int bi[8], bad = 0;
    for (int m = 0; m < nm; m++) best[m] = 1e30, bi[m] = -1;
    bool ok = !check || s.cx;
    double ref = ok ? bench_read_ms(sh->n * sh->k, flush, s.d) : -1;
    ok = ref > 0;
    if (ok) { /* the same bytes at every M */
        printf("| %s (%lld x %lld) | pure read of the weights (reference) |", sh->name, (long long)sh->n, (long long)sh->k);
        for (int m = 0; m < nm; m++) printf(" %.2f / %.2f |", ref * 1e3, (double)sh->n * (double)sh->k / (ref * 1e-3) / 1e12);
        printf("%s\n", check ? " - |" : "");
    }
    for (int v = 0; v < nv && ok; v++) {
        double err = -1;
        printf("| %s (%lld x %lld) | %s |", sh->name, (long long)sh->n, (long long)sh->k, *vars[v] ? vars[v] : "default");
        if (!sweep_variant(s.g, sh, vars[v], ms_list, nm, flush, s.xv, &s.ws, s.cx, ms[v], &err, s.d)) { /* reported; the next may run */
            printf(" failed |\n");
            fflush(stdout);
            bad++;
            continue;
        }
        for (int m = 0; m < nm; m++) {
            printf(" %.2f / %.2f |", ms[v][m] * 1e3, (double)sh->n * (double)sh->k / (ms[v][m] * 1e-3) / 1e12);
            if (ms[v][m] < best[m] && !(check && err > 2e-2)) best[m] = ms[v][m], bi[m] = v; /* a wrong one is never the best */
        }
        if (check) printf(" %.2e%s |", err, err > 2e-2 ? " FAIL" : "");
        bad += check && err > 2e-2;
        printf("\n");
        fflush(stdout);
    }
    for (int m = 0; m < nm && ok && bi[m] >= 0; m++)
        printf("best: %s (%lld x %lld) M %lld: %s, %.2f us, %.2f TB/s of weights; pure read %.2f us, %.2f TB/s: %.0f%% of it\n", sh->name,
               (long long)sh->n, (long long)sh->k, (long long)ms_list[m], *vars[bi[m]] ? vars[bi[m]] : "default", best[m] * 1e3,
               (double)sh->n * (double)sh->k / (best[m] * 1e-3) / 1e12, ref * 1e3, (double)sh->n * (double)sh->k / (ref * 1e-3) / 1e12,
               100.0 * ref / best[m]);
    fflush(stdout);
    shape_close(&s);
    return ok ? bad : -1;
}

/* --variants' list: up to SWEEP_MAX DSCC_SKINNY values separated by ';' ("default": codegen's own). */
static int parse_variants(char *arg, const char **vars) {
    int nv = 0;
    for (char *t = strtok(arg, ";"); t && nv < SWEEP_MAX; t = strtok(NULL, ";")) vars[nv++] = strcmp(t, "default") == 0 ? "" : t;
    return nv;
}

/* Whether `name` is one of the comma-separated names of `list`. */
static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == ',' || !p[n])) return true;
    return false;
}

/* The sweep over every shape (or those of `only`, comma-separated); the exit status. */
static int skinny_sweep(const char *only, const char *const *vars, int nv, const int64_t *ms_list, int nm, int64_t flush, bool check) {
    for (const char *p = only; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) { /* every name must be a shape */
        size_t n = strcspn(p, ",");
        bool known = false;
        for (size_t s = 0; s < sizeof SWEEP_SHAPES / sizeof SWEEP_SHAPES[0]; s++)
            known |= strlen(SWEEP_SHAPES[s].name) == n && !strncmp(p, SWEEP_SHAPES[s].name, n);
        if (!known) {
            fprintf(stderr, "bench_gemm: no shape '%.*s' in the sweep\n", (int)n, p);
            return 2;
        }
    }
    printf("| shape (N x K) | DSCC_SKINNY |");
    for (int m = 0; m < nm; m++) printf(" M = %lld: us / weights TB/s |", (long long)ms_list[m]);
    printf("%s\n|---|---|", check ? " rel L2 vs CPU |" : "");
    for (int m = 0; m < nm; m++) printf("---|");
    printf("%s\n", check ? "---|" : "");
    int bad = 0;
    for (size_t s = 0; s < sizeof SWEEP_SHAPES / sizeof SWEEP_SHAPES[0]; s++) {
        if (only && !in_list(only, SWEEP_SHAPES[s].name)) continue;
        int b = sweep_shape(&SWEEP_SHAPES[s], vars, nv, ms_list, nm, flush, check);
        if (b < 0) return 1;
        bad += b;
    }
    if (bad) fprintf(stderr, "bench_gemm: %d variants failed or are further than 2e-2 from the CPU executor's\n", bad);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    bool check = false, sweep = false, ms_given = false;
    const char *only = NULL, *table_path = NULL;
    const char *vars[SWEEP_MAX];
    int nv = (int)(sizeof SWEEP_VARIANTS / sizeof SWEEP_VARIANTS[0]);
    memcpy(vars, SWEEP_VARIANTS, sizeof SWEEP_VARIANTS);
    int64_t flush = 256ll << 20;
    int64_t ms_list[8];
    int nm = (int)(sizeof MS / sizeof MS[0]);
    memcpy(ms_list, MS, sizeof MS);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0) check = true;
        else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--skinny-sweep") == 0) sweep = true;
        else if (strcmp(argv[i], "--variants") == 0 && i + 1 < argc) {
            if (!(nv = parse_variants(argv[++i], vars))) {
                fprintf(stderr, "bench_gemm: --variants wants DSCC_SKINNY values separated by ';'\n");
                return 2;
            }
        }
        else if (strcmp(argv[i], "--table") == 0 && i + 1 < argc) table_path = argv[++i];
        else if (strcmp(argv[i], "--flush-mb") == 0 && i + 1 < argc) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 0 || v > 65536) {
                fprintf(stderr, "bench_gemm: --flush-mb wants 0..65536 MiB, not '%s'\n", argv[i]);
                return 2;
            }
            flush = (int64_t)v << 20;
        } else if (strcmp(argv[i], "--m") == 0 && i + 1 < argc) {
            ms_given = true;
            if (!parse_ms(argv[++i], ms_list, &nm)) {
                fprintf(stderr, "bench_gemm: --m wants up to 8 ascending comma-separated token counts in 1..65536, not '%s'\n", argv[i]);
                return 2;
            }
        } else return usage();
    }
    if (sweep) {
        static const int64_t SWEEP_MS[] = {1, 8, 32};
        if (!ms_given) memcpy(ms_list, SWEEP_MS, sizeof SWEEP_MS), nm = 3;
        if (ms_list[nm - 1] > CG_SKINNY_M) {
            fprintf(stderr, "bench_gemm: --skinny-sweep times M <= %d only\n", CG_SKINNY_M);
            return 2;
        }
        return skinny_sweep(only, vars, nv, ms_list, nm, flush, check);
    }
    bool known = !only;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) known |= only && strcmp(only, SHAPES[s].name) == 0;
    if (!known) {
        fprintf(stderr, "bench_gemm: no shape '%s'\n", only);
        return usage();
    }
    FILE *table = table_path ? fopen(table_path, "w") : NULL;
    if (table_path && !table) {
        fprintf(stderr, "bench_gemm: cannot write the table '%s': %s\n", table_path, strerror(errno));
        return 1;
    }
    if (table)
        fprintf(table, "# GEMM paths measured by bench_gemm (L2 flushed, kernel alone, median of 7)\narch %d\n"
                       "# kind N K M_LO M_HI choice generated_us cublaslt_us [tma_us]\n", gpu_sm());
    printf("| shape (N x K) | M | dscc generated FP8 TFLOPS | its weights TB/s | tile alone (M <= %d) TFLOPS | cuBLASLt where it can TFLOPS | GEMMs by "
           "cuBLASLt | TMA kernel (M > %d) TFLOPS |%s\n",
           CG_SKINNY_M, CG_SKINNY_M, check ? " rel L2 vs CPU (M > 128: vs generated) |" : "");
    printf("|---|---|---|---|---|---|---|---|%s\n", check ? "---|" : "");
    int bad = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        if (only && strcmp(only, SHAPES[s].name) != 0) continue;
        int b = run_shape(&SHAPES[s], ms_list, nm, flush, check, table);
        if (b < 0) {
            if (table) fclose(table);
            return 1;
        }
        bad += b;
    }
    if (table && fclose(table) != 0) {
        fprintf(stderr, "bench_gemm: cannot write the table '%s': %s\n", table_path, strerror(errno));
        return 1;
    }
    if (bad) fprintf(stderr, "bench_gemm: %d outputs further than 2e-2 from the CPU executor's (M > 128: the generated kernel's)\n", bad);
    return bad ? 1 : 0;
}
