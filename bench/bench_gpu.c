/* bench_gpu.c — dscc's CUDA backend on full-width DeepSeek-V3 layers
 * (real dimensions, random FP8 weights, as many layers as asked: default
 * one dense layer and one MoE layer with all 256 experts).
 *
 * Measures, with CUDA events around every kernel:
 *   - prefill of one sequence (default 1024 tokens): tokens/s and, per
 *     block-scaled FP8 GEMM, its TFLOPS at M = 1024;
 *   - decode steps at batch 1, 32 and 128 after a 16-token prefill: step
 *     time, time per op kind, the memory floor (weight bytes the step must
 *     read / the HBM bandwidth given with --hbm-gbps), and MLA decode
 *     attention GB/s (latent cache bytes read / its kernel time), also
 *     at batch 32 over 4,096 cached positions.
 * Prints markdown tables. Run on the GPU machine by bench/gpu_bench.sh,
 * which measures the baselines in the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int64_t numel(const IrType *t, const int64_t *sym) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= ir_dim_eval(t->dims[i], sym);
    return n;
}

static const char *kind_of(const IrGraph *g, GpuExec *x, int k) {
    int n = gpu_exec_kernel_node(x, k);
    return n < 0 ? "fused elementwise/norm/quant" : ir_op_name(g->nodes[n]->op);
}

/* GPU time of the last run by op kind, into out. */
static void breakdown(const IrGraph *g, GpuExec *x, StrBuf *out) {
    const char *kinds[32];
    double ms[32];
    int count[32], nk = 0;
    for (int k = 0; k < gpu_exec_kernels(x); k++) {
        const char *kd = kind_of(g, x, k);
        int j = 0;
        while (j < nk && strcmp(kinds[j], kd) != 0) j++;
        if (j == nk && nk < 32) kinds[nk] = kd, ms[nk] = 0, count[nk++] = 0;
        if (j < 32) ms[j] += gpu_exec_kernel_ms(x, k), count[j]++;
    }
    for (int j = 0; j < nk; j++) sb_printf(out, "    %-30s %4d kernels %9.3f ms\n", kinds[j], count[j], ms[j]);
}

/* The attention kernels' GPU time in the last run and the latent cache bytes they read. */
static void attention_time(const IrGraph *g, GpuExec *x, double *ms, double *bytes) {
    *ms = *bytes = 0;
    for (int k = 0; k < gpu_exec_kernels(x); k++) {
        int nid = gpu_exec_kernel_node(x, k);
        if (nid < 0 || g->nodes[nid]->op != IR_OP_ATTENTION) continue;
        *ms += gpu_exec_kernel_ms(x, k);
        *bytes += (double)numel(&g->nodes[nid]->ops[1]->type, gpu_exec_dims(x)) * 2;
    }
}

static bool run(GpuExec *x, int64_t B, int64_t S, int64_t t0, uint64_t *rng, DiagEngine *d) {
    float *tok = malloc(sizeof(float) * (size_t)(B * S)), *pos = malloc(sizeof(float) * (size_t)(B * S));
    for (int64_t i = 0; i < B * S; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (float)((*rng >> 33) % 129280);
        pos[i] = (float)(t0 + i % S);
    }
    CpuInput in[2] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}};
    bool ok = gpu_exec_run(x, in, 2, d);
    free(tok);
    free(pos);
    return ok;
}

#define LONG_CTX 4096 /* the long-context decode attention case */

int main(int argc, char **argv) {
    int layers = 2, dense = 1;
    int64_t prefill = 1024;
    double hbm = 3024, peak = 1388;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dense")) dense = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefill")) prefill = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--hbm-gbps")) hbm = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--peak-tflops")) peak = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_gpu [--layers L] [--dense K] [--prefill N] [--hbm-gbps G] [--peak-tflops P]\n");
            return 2;
        }
    }
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char l1[64], l2[64];
    snprintf(l1, sizeof l1, "%d", layers);
    snprintf(l2, sizeof l2, "%d", dense);
    FeSetting sets[3] = {{"num_hidden_layers", l1}, {"first_k_dense_replace", l2}, {"num_nextn_predict_layers", "0"}};
    FeOptions fo = {NULL, sets, 3};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    PassPipeline pp;
    PassRunOptions ro = {0};
    if (!g || ir_verify(g, d) ||
        !pass_pipeline_parse(a, d, pass_preset(a, "kernels", &(PassPreset){.fp8 = true}), &pp) ||
        !pass_pipeline_run(&pp, g, &ro, d))
        return 1;
    uint64_t seed = 1, rng = 7;
    CpuWeightSource ws = cpu_random_weights(&seed);
    /* two executors, one after the other: capacities 1 x prefill, then 128 x 16 (+ decode steps) */
    GpuOptions go = {.max_batch = 1, .max_seq = prefill, .max_ctx = prefill + 4, .profile = true};
    double t = now();
    GpuExec *x = gpu_exec_new(g, &ws, &go, d);
    if (!x) return 1;
    int64_t zero[IR_MAX_DIM_SYMS] = {0}, wbytes = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT) wbytes += numel(&g->nodes[i]->type, zero) * ir_dtype_bits(g->nodes[i]->type.dtype) / 8;
    printf("%s: %d layers (%d dense) of DeepSeek-V3 at full width, %.2f GB of weights, loaded in %.1f s\n", gpu_exec_device(x),
           layers, dense, (double)wbytes / 1e9, now() - t);
    printf("GEMMs: %s\n", gpu_exec_blas(x) ? arena_printf(a, "%s where it has an algorithm for the shape, the generated kernels elsewhere",
                                                          gpu_exec_blas(x))
                                         : "the generated kernels only (cuBLASLt not in use)");

    /* ---- prefill ---- */
    for (int rep = 0; rep < 2; rep++) {
        gpu_exec_reset(x);
        if (!run(x, 1, prefill, 0, &rng, d)) return 1;
    }
    double pms = gpu_exec_last_ms(x);
    double act_params = 0; /* activated weights: every non-expert weight, 8 of 256 experts */
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_WEIGHT || n->type.dtype != IR_DT_FP8E4M3) continue;
        double ne = (double)numel(&n->type, zero);
        act_params += ir_node_attr_str(n, "stack", NULL) ? ne * 8.0 / (double)ir_dim_eval(n->type.dims[0], zero) : ne;
    }
    double roof_ms = 2.0 * act_params * (double)prefill / (peak * 1e12) * 1e3;
    printf("\n## prefill, 1 x %lld tokens\n\n%.3f ms, %.0f tokens/s; FP8 GEMM roofline for its linears (%.2f G activated FP8 "
           "weights, %.0f TFLOPS): %.3f ms\n",
           (long long)prefill, pms, (double)prefill / (pms * 1e-3), act_params / 1e9, peak, roof_ms);
    {
        StrBuf sb;
        sb_init(&sb);
        breakdown(g, x, &sb);
        fputs(sb.data, stdout);
        sb_free(&sb);
    }
    printf("\n| GEMM | M | N x K | dscc FP8 TFLOPS |\n|---|---|---|---|\n");
    const int64_t *sym = gpu_exec_dims(x);
    for (int k = 0; k < gpu_exec_kernels(x); k++) {
        int nid = gpu_exec_kernel_node(x, k);
        if (nid < 0 || g->nodes[nid]->op != IR_OP_FP8_LINEAR) continue;
        const IrNode *n = g->nodes[nid], *w = n->ops[2];
        int64_t N = w->type.dims[0].coeff, K = w->type.dims[1].coeff, M = numel(&n->ops[0]->type, sym) / K;
        double ms = gpu_exec_kernel_ms(x, k);
        printf("| %s | %lld | %lld x %lld | %.1f |\n", ir_node_attr_str(w, "name", "?"), (long long)M, (long long)N, (long long)K,
               ms > 0 ? 2.0 * M * N * K / (ms * 1e-3) / 1e12 : 0.0);
    }

    /* decode attention over the prefilled context: latent cache bytes / kernel time */
    if (!run(x, 1, 1, prefill, &rng, d)) return 1;
    double att_ms, att_bytes;
    attention_time(g, x, &att_ms, &att_bytes);
    printf("\nMLA decode attention, batch 1, context %lld: %.3f ms for %.1f MB of latent cache: %.0f GB/s (HBM copy %.0f GB/s)\n",
           (long long)prefill + 1, att_ms, att_bytes / 1e6, att_bytes / (att_ms * 1e-3) / 1e9, hbm);

    /* ---- decode ---- */
    gpu_exec_free(x);
    GpuOptions gd = {.max_batch = 128, .max_seq = 16, .max_ctx = LONG_CTX + 4, .profile = true}; /* room for the long-context case below */
    if (!(x = gpu_exec_new(g, &ws, &gd, d))) return 1;
    printf("\n## decode, context 17-20\n\n| batch | step ms (kernels timed one by one) | step ms, launches | step ms, CUDA graph | "
           "memory floor ms | of which attention ms |\n|---|---|---|---|---|---|\n");
    int64_t batches[3] = {1, 32, 128};
    StrBuf steps_by_kind; /* printed after the table */
    sb_init(&steps_by_kind);
    for (int bi = 0; bi < 3; bi++) {
        int64_t B = batches[bi];
        gpu_exec_reset(x);
        if (!run(x, B, 16, 0, &rng, d)) return 1;
        double steps[4];
        for (int s = 0; s < 4; s++) {
            if (!run(x, B, 1, 16 + s, &rng, d)) return 1;
            steps[s] = gpu_exec_last_ms(x);
        }
        double best = steps[0];
        for (int s = 1; s < 4; s++) best = steps[s] < best ? steps[s] : best;
        /* the same steps untimed per kernel: plain launches, then one CUDA graph per step */
        double plain = 1e30, graphed = 1e30;
        gpu_exec_set_profile(x, false);
        for (int mode = 0; mode < 2; mode++) {
            gpu_exec_set_graphs(x, mode == 1);
            gpu_exec_reset(x);
            if (!run(x, B, 16, 0, &rng, d)) return 1;
            for (int s = 0; s < 4; s++) {
                if (!run(x, B, 1, 16 + s, &rng, d)) return 1;
                double ms = gpu_exec_last_ms(x);
                if (mode == 0) plain = ms < plain ? ms : plain;
                else graphed = ms < graphed ? ms : graphed;
            }
        }
        gpu_exec_set_graphs(x, false);
        gpu_exec_set_profile(x, true);
        gpu_exec_reset(x); /* leave the profiled state of this batch for the breakdown below */
        if (!run(x, B, 16, 0, &rng, d)) return 1;
        for (int s = 0; s < 4; s++)
            if (!run(x, B, 1, 16 + s, &rng, d)) return 1;
        /* bytes a step must read: every weight except unrouted experts and unused embedding rows */
        double bytes = 0, used = 1.0 - pow(1.0 - 8.0 / 256.0, (double)B);
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *n = g->nodes[i];
            if (n->op != IR_OP_WEIGHT) continue;
            double b = (double)numel(&n->type, zero) * ir_dtype_bits(n->type.dtype) / 8;
            if (strstr(ir_node_attr_str(n, "name", ""), "embed_tokens")) b = (double)B * 7168 * 2;
            else if (ir_node_attr_str(n, "stack", NULL)) b *= used;
            bytes += b;
        }
        double att, cache_bytes;
        attention_time(g, x, &att, &cache_bytes);
        printf("| %lld | %.3f | %.3f | %.3f | %.3f | %.3f |\n", (long long)B, best, plain, graphed, bytes / (hbm * 1e9) * 1e3, att);
        sb_printf(&steps_by_kind, "\nbatch %lld step by op kind:\n", (long long)B);
        breakdown(g, x, &steps_by_kind);
    }
    fputs(steps_by_kind.data, stdout);
    sb_free(&steps_by_kind);

    /* decode attention over a long context: batch 32, LONG_CTX positions cached (prefilled 16 at a time), one step */
    gpu_exec_reset(x);
    for (int64_t t0 = 0; t0 < LONG_CTX; t0 += 16)
        if (!run(x, 32, 16, t0, &rng, d)) return 1;
    if (!run(x, 32, 1, LONG_CTX, &rng, d)) return 1;
    double lat_ms, lat_bytes;
    attention_time(g, x, &lat_ms, &lat_bytes);
    printf("\nMLA decode attention, batch 32, context %lld: %.3f ms for %.1f MB of latent cache: %.0f GB/s (HBM copy %.0f GB/s)\n",
           (long long)LONG_CTX + 1, lat_ms, lat_bytes / 1e6, lat_bytes / (lat_ms * 1e-3) / 1e9, hbm);
    gpu_exec_free(x);
    arena_free(a);
    return 0;
}
