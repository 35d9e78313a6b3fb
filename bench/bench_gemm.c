/* bench_gemm.c — dscc's block-scaled FP8 GEMM alone, at DeepSeek-V3's
 * linear shapes and M = 1 ... 4096 tokens: the generated tensor-core
 * kernel (DSCC_CUBLASLT=0's path) and, where it has an algorithm, the
 * cuBLASLt path the CUDA backend takes by default.
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
 * weights come from HBM as in the model). With
 * --check the output of both paths at M <= 128 is compared with the CPU
 * executor on the same (bf16) inputs: the worse rel L2 is printed, and one
 * over 2e-2 is marked FAIL and makes the exit status 1. --m and --shape
 * narrow the sweep (the emulated device of tests/emu runs
 * `--check --m 1,3 --shape kv_a` in under a minute). Prints one
 * markdown table; run on the GPU machine
 * (bench/gpu_bench.sh runs it after the baselines, which time cuBLASLt
 * alone at the same shapes). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"

typedef struct {
    const char *name;
    int64_t n, k;
} Shape;

static const Shape SHAPES[] = {{"q_a", 1536, 7168},          {"q_b", 24576, 1536},          {"kv_a", 576, 7168},
                               {"o_proj", 7168, 16384},      {"expert_gate_up", 2048, 7168}, {"expert_down", 7168, 2048},
                               {"dense_gate_up", 18432, 7168}, {"dense_down", 7168, 18432}};
static const int64_t MS[] = {1, 64, 128, 512, 1024, 4096};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

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
    qsort(t, 7, sizeof t[0], cmp_double);
    return t[3];
}

static int usage(void) {
    fprintf(stderr, "usage: bench_gemm [--check] [--m M1,M2,...] [--shape NAME] [--flush-mb N]\n"
                    "  --check        compare both paths with the CPU executor at M <= 128\n"
                    "  --m LIST       the token counts (default 1,64,128,512,1024,4096; at most 8)\n"
                    "  --shape NAME   one shape only: q_a, q_b, kv_a, o_proj, expert_gate_up, expert_down, dense_gate_up, dense_down\n"
                    "  --flush-mb N   MiB of device memory zeroed before each timed repetition, an L2 flush (default 256; 0: none)\n");
    return 2;
}

int main(int argc, char **argv) {
    bool check = false;
    const char *only = NULL;
    int64_t flush = 256ll << 20;
    int64_t ms_list[8];
    int nm = (int)(sizeof MS / sizeof MS[0]);
    memcpy(ms_list, MS, sizeof MS);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0) check = true;
        else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--flush-mb") == 0 && i + 1 < argc) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 0 || v > 65536) {
                fprintf(stderr, "bench_gemm: --flush-mb wants 0..65536 MiB, not '%s'\n", argv[i]);
                return 2;
            }
            flush = (int64_t)v << 20;
        }
        else if (strcmp(argv[i], "--m") == 0 && i + 1 < argc) {
            nm = 0;
            for (char *p = argv[++i], *end; *p; p = *end ? end + 1 : end) {
                long long v = strtoll(p, &end, 10);
                if (end == p || (*end && *end != ',') || v < 1 || v > 65536 || nm == 8) {
                    fprintf(stderr, "bench_gemm: --m wants up to 8 comma-separated token counts in 1..65536, not '%s'\n", argv[i]);
                    return 2;
                }
                ms_list[nm++] = v;
            }
        } else return usage();
    }
    bool known = !only;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) known |= only && strcmp(only, SHAPES[s].name) == 0;
    if (!known) {
        fprintf(stderr, "bench_gemm: no shape '%s'\n", only);
        return usage();
    }
    printf("| shape (N x K) | M | dscc generated FP8 TFLOPS | dscc default (cuBLASLt where it can) TFLOPS | GEMMs by cuBLASLt |%s\n",
           check ? " rel L2 vs CPU |" : "");
    printf("|---|---|---|---|---|%s\n", check ? "---|" : "");
    uint64_t seed = 11, rng = 5;
    int bad = 0; /* --check: outputs further than 2e-2 from the CPU's (bf16 output rounding is 2e-3) */
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const Shape *sh = &SHAPES[s];
        if (only && strcmp(only, sh->name) != 0) continue;
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, stderr);
        char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, %lld];\nweight w: bf16[%lld, %lld] = \"w\";\noutput y = silu(linear(x, w));\n",
                                 (long long)sh->k, (long long)sh->n, (long long)sh->k);
        FeOptions fo = {NULL, NULL, 0};
        IrGraph *g = fe_compile_string(a, d, "bench_gemm.dsl", src, strlen(src), &fo);
        PassPipeline pp;
        PassRunOptions ro = {0};
        if (!g || ir_verify(g, d) || !pass_pipeline_parse(a, d, pass_preset(a, "kernels", &(PassPreset){.fp8 = true}), &pp) ||
            !pass_pipeline_run(&pp, g, &ro, d))
            return 1;
        int64_t Mmax = 1;
        for (int m = 0; m < nm; m++) Mmax = ms_list[m] > Mmax ? ms_list[m] : Mmax;
        float *xv = malloc(sizeof(float) * (size_t)(Mmax * sh->k));
        for (int64_t i = 0; i < Mmax * sh->k; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            /* x is bf16: give both executors the same bf16 values */
            xv[i] = rt_bf16_decode(rt_bf16_encode((float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0)));
        }
        CpuWeightSource ws = cpu_random_weights(&seed);
        double ms[2][8] = {{0}}, err[8] = {-1, -1, -1, -1, -1, -1, -1, -1}; /* err: the worse of the two paths */
        int lib[8] = {0};
        CpuExec *cx = NULL;
        if (check) {
            CpuOptions co = {.threads = 0};
            if (!(cx = cpu_exec_new(g, &ws, &co, d))) return 1;
        }
        for (int mode = 0; mode < 2; mode++) { /* 0: generated kernels only, 1: cuBLASLt where it can */
            /* keep_all: every value keeps its place, so the kernel timed alone reads what it read in the run */
            GpuOptions go = {.max_batch = 1, .max_seq = Mmax, .max_ctx = Mmax, .keep_all = true, .no_blas = mode == 0};
            GpuExec *x = gpu_exec_new(g, &ws, &go, d);
            if (!x) return 1;
            for (int m = 0; m < nm; m++) {
                int64_t M = ms_list[m];
                CpuInput in[1] = {{"x", 3, {1, M, sh->k}, xv}};
                if ((ms[mode][m] = time_gemm(g, x, in, flush, d)) < 0) return 1;
                if (mode == 1) lib[m] = gpu_exec_last_lib_calls(x);
                if (cx && M <= 128) { /* the output of this path against the CPU executor on the same inputs */
                    int rank;
                    int64_t dims[IR_MAX_RANK];
                    const float *gy = gpu_exec_output(x, "y", &rank, dims);
                    if (!gy || !cpu_exec_run(cx, in, 1, d)) return 1;
                    const float *cy = cpu_exec_output(cx, "y", &rank, dims);
                    double num = 0, den = 0;
                    for (int64_t i = 0; i < M * sh->n; i++) num += ((double)gy[i] - cy[i]) * ((double)gy[i] - cy[i]), den += (double)cy[i] * cy[i];
                    double e = sqrt(num / (den > 0 ? den : 1e-30));
                    if (e > err[m]) err[m] = e;
                }
            }
            gpu_exec_free(x);
        }
        for (int m = 0; m < nm; m++) {
            double flop = 2.0 * (double)ms_list[m] * (double)sh->n * (double)sh->k;
            printf("| %s (%lld x %lld) | %lld | %.1f | %.1f | %s |", sh->name, (long long)sh->n, (long long)sh->k, (long long)ms_list[m],
                   flop / (ms[0][m] * 1e-3) / 1e12, flop / (ms[1][m] * 1e-3) / 1e12, lib[m] ? "yes" : "no");
            if (check) printf(err[m] >= 0 ? " %.2e%s |" : " - |", err[m], err[m] > 2e-2 ? " FAIL" : "");
            bad += check && err[m] > 2e-2;
            printf("\n");
        }
        fflush(stdout);
        cpu_exec_free(cx);
        free(xv);
        arena_free(a);
    }
    if (bad) fprintf(stderr, "bench_gemm: %d outputs further than 2e-2 from the CPU executor's\n", bad);
    return bad ? 1 : 0;
}
