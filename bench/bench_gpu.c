/* bench_gpu.c — dscc's CUDA backend on full-width DeepSeek-V3 layers
 * (real dimensions, random FP8 weights, as many layers as asked: default
 * one dense layer and one MoE layer with all 256 experts).
 *
 * Measures, with CUDA events around every kernel:
 *   - prefill of one sequence (default 1024 tokens): tokens/s and, per
 *     block-scaled FP8 GEMM, its TFLOPS at M = 1024;
 *   - decode steps at batch 1, 32 and 128 after a 16-token prefill: step
 *     time, time per op kind, and MLA decode
 *     attention GB/s (latent cache bytes read / its kernel time) and
 *     TFLOPS (2 B H T (576 + 512) / its kernel time), also at batch 32
 *     over 4,096 cached positions (compute-bound: MLA's wgmma kernel).
 * Floors (prefill and each decode batch): the bytes the step must read
 * (every weight once, of the routed experts only those the step hit, as
 * read back from the executor's routing; the embedding rows of its
 * tokens; the KV cache over its context) at --hbm-gbps (default: this
 * GPU's pure-read bandwidth, measured first), and its
 * tensor-core FLOPs (linears, routed rows of the expert linears, einsums,
 * attention over the keys each query sees; the LM head over the one row
 * per sequence it runs on: the model is compiled with logits_last_only,
 * as dscc run compiles it) at --peak-tflops (FP8) and
 * --bf16-tflops (default half the FP8 peak): the floor is the larger;
 * "stage by stage" sums that larger figure op by op.
 * Prints markdown tables. Run on the GPU machine by bench/gpu_bench.sh,
 * which measures the baselines in the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_tune.h"
#include "bench/bench_util.h"
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

/* A GEMM weight's name for the table; a weight that merge_linears joined
 * (a concat of weights along axis 0) is named by its parts, "a + b". */
static const char *weight_label(const IrNode *w, StrBuf *sb) {
    const char *name = ir_node_attr_str(w, "name", NULL);
    if (name || w->op != IR_OP_CONCAT) return name ? name : "?";
    sb->len = 0;
    if (sb->data) sb->data[0] = '\0';
    for (int i = 0; i < w->nops; i++) sb_printf(sb, "%s%s", i ? " + " : "", ir_node_attr_str(w->ops[i], "name", "?"));
    return sb->data ? sb->data : "?";
}

/* GPU time of the last run by op kind, into out. */
static void breakdown(const IrGraph *g, GpuExec *x, StrBuf *out) {
    const char *kinds[32];
    double ms[32];
    int count[32], nk = 0;
    for (int k = 0; k < gpu_exec_kernels(x); k++) {
        if (!gpu_exec_kernel_ran(x, k)) continue;
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
        if (nid < 0 || g->nodes[nid]->op != IR_OP_ATTENTION || !gpu_exec_kernel_ran(x, k)) continue;
        *ms += gpu_exec_kernel_ms(x, k);
        *bytes += (double)numel(&g->nodes[nid]->ops[1]->type, gpu_exec_dims(x)) * 2;
    }
}

/* plan-memory at an executor's capacity: the runtime takes the pass's offsets. */
static bool plan_memory(Arena *a, DiagEngine *d, IrGraph *g, int64_t B, int64_t S, int64_t ctx) {
    PassPipeline pp;
    PassRunOptions ro = {.tune = bench_tune()};
    const char *p = arena_printf(a, "plan-memory{batch=%lld,seq=%lld,ctx=%lld}", (long long)B, (long long)S, (long long)ctx);
    return pass_pipeline_parse(a, d, p, &pp) && pass_pipeline_run(&pp, g, &ro, d);
}

/* The FLOPs of the last run's attention: 2 x (query rows) x (keys) x (Dk + Dv) each, i.e.
 * 2 B H T (576 + 512) for a decode step of V3's absorbed MLA (masked keys counted as computed). */
static double attention_flops(const IrGraph *g, GpuExec *x) {
    double f = 0;
    const int64_t *sym = gpu_exec_dims(x);
    for (int k = 0; k < gpu_exec_kernels(x); k++) {
        int nid = gpu_exec_kernel_node(x, k);
        if (nid < 0 || g->nodes[nid]->op != IR_OP_ATTENTION || !gpu_exec_kernel_ran(x, k)) continue;
        const IrNode *n = g->nodes[nid];
        const IrType *q = &n->ops[0]->type, *kt = &n->ops[1]->type, *v = &n->ops[2]->type;
        double dk = (double)ir_dim_eval(q->dims[q->rank - 1], sym), dv = (double)ir_dim_eval(v->dims[v->rank - 1], sym);
        f += 2.0 * (double)numel(q, sym) / dk * (double)ir_dim_eval(kt->dims[1], sym) * (dk + dv);
    }
    return f;
}

static int64_t g_vocab = 129280; /* token ids are drawn below it */

static bool run(GpuExec *x, int64_t B, int64_t S, int64_t t0, uint64_t *rng, DiagEngine *d) {
    float *tok = malloc(sizeof(float) * (size_t)(B * S)), *pos = malloc(sizeof(float) * (size_t)(B * S));
    for (int64_t i = 0; i < B * S; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (float)((*rng >> 33) % (uint64_t)g_vocab);
        pos[i] = (float)(t0 + i % S);
    }
    CpuInput in[2] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}};
    bool ok = gpu_exec_run(x, in, 2, d);
    free(tok);
    free(pos);
    return ok;
}


/* ---- floors: what a step must read and compute ---------------------------- */

typedef struct {
    double bytes;      /* weights (routed experts: those the step hit), embedding rows, KV cache */
    double fp8, bf16;  /* FLOPs on FP8 / BF16 tensor cores: linears, expert linears, einsums, attention */
    double stage_ms;   /* sum over ops of max(its bytes / HBM, its FLOPs / peak) */
    double hit, moe;   /* experts hit, summed over the MoE layers; how many layers */
} Floor;

static const IrNode *through_views(const IrNode *n) {
    while ((n->op == IR_OP_RESHAPE || n->op == IR_OP_TRANSPOSE || n->op == IR_OP_SLICE || n->op == IR_OP_CAST) && n->nops) n = n->ops[0];
    return n;
}

/* 2 x multiply-adds of op n at the step's dims (0: not a tensor-core op); *fp8 when on FP8. */
static double op_flops(const IrNode *n, const int64_t *sym, double routed_rows, bool *fp8) {
    *fp8 = n->op == IR_OP_FP8_LINEAR || n->op == IR_OP_FP8_EXPERT_LINEAR;
    switch (n->op) {
    case IR_OP_LINEAR: return 2.0 * (double)numel(&n->type, sym) * (double)n->ops[1]->type.dims[1].coeff;
    case IR_OP_FP8_LINEAR: return 2.0 * (double)numel(&n->type, sym) * (double)n->ops[2]->type.dims[1].coeff;
    case IR_OP_EXPERT_LINEAR:
    case IR_OP_FP8_EXPERT_LINEAR: { /* the routed rows only: each of O x I */
        const IrType *w = &n->ops[n->op == IR_OP_EXPERT_LINEAR ? 1 : 2]->type;
        return 2.0 * routed_rows * (double)w->dims[1].coeff * (double)w->dims[2].coeff;
    }
    case IR_OP_EINSUM: {
        const char *p = ir_node_attr_str(n, "spec", "");
        double ext[26] = {0}, prod = 1;
        for (int k = 0; k < 2; k++) {
            const IrType *t = &n->ops[k]->type;
            for (int i = 0; i < t->rank && p[i] >= 'a' && p[i] <= 'z'; i++) ext[p[i] - 'a'] = (double)ir_dim_eval(t->dims[i], sym);
            if (k == 0 && strchr(p, ',')) p = strchr(p, ',') + 1;
        }
        for (int i = 0; i < 26; i++) prod *= ext[i] > 0 ? ext[i] : 1;
        return 2.0 * prod;
    }
    case IR_OP_ATTENTION: { /* causal: only the keys each query sees */
        const IrType *q = &n->ops[0]->type, *k = &n->ops[1]->type, *v = &n->ops[2]->type;
        double b = (double)ir_dim_eval(q->dims[0], sym), s = (double)ir_dim_eval(q->dims[1], sym), t = (double)ir_dim_eval(k->dims[1], sym);
        double pairs = ir_node_attr_bool(n, "causal", false) ? s * (t - s) + s * (s + 1) / 2 : s * t;
        return 2.0 * b * (double)ir_dim_eval(q->dims[2], sym) * pairs * (double)(ir_dim_eval(q->dims[3], sym) + ir_dim_eval(v->dims[3], sym));
    }
    default: return 0;
    }
}

/* The floor of the last run of x over `rows` real token rows: the routing
 * read back from the executor (the distinct experts each MoE layer hit,
 * over all its expert linears), each weight, cache and embedding row
 * counted once, at the op that first reads it (of a graph with both
 * attention forms, only the nodes this kind of step uses). False if the routing
 * cannot be read. */
static bool step_floor(const IrGraph *g, GpuExec *x, int64_t rows, double hbm, double pfp8, double pbf16, Floor *f) {
    const int64_t *sym = gpu_exec_dims(x);
    memset(f, 0, sizeof *f);
    int nn = g->nnodes;
    bool *done = calloc((size_t)nn + 1, 1);
    unsigned char *hit = calloc((size_t)nn * 256 + 1, 1); /* per stacked weight: experts hit (E <= 256) */
    double *routed = calloc((size_t)nn + 1, sizeof(double));
    bool ok = true;
    for (int i = 0; i < nn && ok; i++) { /* routing: the ids each expert linear's rows chose */
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_EXPERT_LINEAR && n->op != IR_OP_FP8_EXPERT_LINEAR) continue;
        const IrNode *idx = through_views(n->ops[n->op == IR_OP_EXPERT_LINEAR ? 2 : 4]);
        int64_t ne = 0;
        const float *ids = gpu_exec_value(x, idx->id, &ne);
        int64_t K = idx->type.dims[idx->type.rank - 1].coeff, take = rows * K < ne ? rows * K : ne;
        if (!ids) {
            fprintf(stderr, "bench_gpu: the routing %%%d of %s %%%d cannot be read back\n", idx->id, ir_op_name(n->op), n->id);
            ok = false;
            break;
        }
        routed[i] = (double)take;
        for (int w = 1; w < n->nops; w++) {
            const IrNode *wt = through_views(n->ops[w]);
            if (wt->op != IR_OP_WEIGHT || !ir_node_attr_str(wt, "stack", NULL)) continue;
            for (int64_t j = 0; j < take; j++)
                if (ids[j] >= 0 && ids[j] < 256) hit[(size_t)wt->id * 256 + (size_t)ids[j]] = 1;
        }
    }
    for (int i = 0; i < nn && ok; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == IR_OP_WEIGHT || n->op == IR_OP_INPUT || n->op == IR_OP_CONST || n->op == IR_OP_OUTPUT) continue;
        if (!gpu_exec_node_used(x, n->id)) continue; /* the form a fresh_select did not take this step */
        double bytes = 0, flop;
        bool fp8;
        for (int o = 0; o < n->nops; o++) {
            const IrNode *src = through_views(n->ops[o]);
            if (done[src->id] || (src->op != IR_OP_WEIGHT && src->op != IR_OP_KV_CACHE)) continue;
            done[src->id] = true;
            double b = (double)numel(&src->type, src->op == IR_OP_KV_CACHE ? sym : (int64_t[IR_MAX_DIM_SYMS]){0}) * ir_dtype_bits(src->type.dtype) / 8;
            if (src->op == IR_OP_WEIGHT && n->op == IR_OP_EMBEDDING) /* the rows of the step's tokens */
                b = b / (double)src->type.dims[0].coeff * (double)numel(&n->ops[1 - o]->type, sym);
            else if (src->op == IR_OP_WEIGHT && ir_node_attr_str(src, "stack", NULL)) {
                double E = (double)src->type.dims[0].coeff, h = 0;
                for (int e = 0; e < 256 && e < E; e++) h += hit[(size_t)src->id * 256 + (size_t)e];
                b = b / E * h;
                if (src->type.dtype == IR_DT_FP8E4M3) f->hit += h, f->moe++;
            }
            bytes += b;
        }
        flop = op_flops(n, sym, routed[i], &fp8);
        f->bytes += bytes;
        if (fp8) f->fp8 += flop;
        else f->bf16 += flop;
        double tb = bytes / (hbm * 1e9) * 1e3, tf = flop / ((fp8 ? pfp8 : pbf16) * 1e12) * 1e3;
        f->stage_ms += tb > tf ? tb : tf;
    }
    free(done);
    free(hit);
    free(routed);
    return ok;
}

/* max(bytes / HBM, FLOPs / peak): no step can be faster */
static double floor_ms(const Floor *f, double hbm, double pfp8, double pbf16) {
    double tb = f->bytes / (hbm * 1e9) * 1e3, tf = (f->fp8 / (pfp8 * 1e12) + f->bf16 / (pbf16 * 1e12)) * 1e3;
    return tb > tf ? tb : tf;
}



enum { MAX_SETS = 8 };

static void usage(FILE *f) {
    fprintf(f, "usage: bench_gpu [--layers L] [--dense K] [--prefill N] [--hbm-gbps G] [--peak-tflops P] [--bf16-tflops Q]\n"
               "                 [--set NAME=VALUE]... [--decode-only B] [--quick]\n"
               "  --layers L       decoder layers at full width (default 2), the first K dense (--dense, default 1)\n"
               "  --prefill N      tokens of the prefill row (default 1024)\n"
               "  --hbm-gbps G     HBM bandwidth for the floors (default: this GPU's, measured as a 2 GiB pure read;\n"
               "                   3024 with --quick)\n"
               "  --peak-tflops P  FP8 tensor-core peak for the floors (default 1388); --bf16-tflops Q (default P / 2)\n"
               "  --set NAME=VALUE a model parameter, as dscc compile --set (e.g. attn_impl=auto; at most %d)\n"
               "  --decode-only B  only the decode step at batch B (1-128): no prefill, no long-context attention case\n"
               "                   (a quicker run when comparing switches at one batch)\n"
               "  --quick          the tiny model and small steps: proves the benchmark runs\n", MAX_SETS);
}

/* The command line: layers, the prefill row, the floors' peaks, the model settings. */
typedef struct {
    int layers, dense;
    int64_t prefill, long_ctx; /* long_ctx: the long-context decode attention case */
    int64_t batches[3];
    int nbatch; /* 3, or 1 with --decode-only (no prefill, no long-context case) */
    const char *config; /* the model's config (NULL: the DSL's defaults, DeepSeek-V3) */
    double hbm, peak, bf16; /* hbm < 0: measured */
    FeSetting sets[4 + MAX_SETS];
    int nsets;
} BenchArgs;

/* Reads the command line into o; -1 to go on, else the exit code (help 0, a usage error 2). */
static int parse_args(int argc, char **argv, BenchArgs *o) {
    *o = (BenchArgs){.layers = 2, .dense = 1, .prefill = 1024, .long_ctx = 4096, .batches = {1, 32, 128}, .nbatch = 3, .hbm = -1, .peak = 1388,
                     .sets = {{"num_hidden_layers", NULL}, {"first_k_dense_replace", NULL}, {"num_nextn_predict_layers", "0"},
                              {"logits_last_only", "true"}},
                     .nsets = 4};
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--quick")) { /* the tiny model, small steps: proves the benchmark runs (the emulated device) */
            o->config = DSCC_SOURCE_DIR "/models/tiny/config.json", o->prefill = 32, o->long_ctx = 64;
            if (o->hbm < 0) o->hbm = 3024; /* an emulated device's "bandwidth" means nothing */
            o->batches[1] = 2, o->batches[2] = 4;
            i--;
        } else if (i + 1 >= argc) {
            fprintf(stderr, "bench_gpu: %s wants a value\n", argv[i]);
            return 2;
        } else if (!strcmp(argv[i], "--layers")) o->layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dense")) o->dense = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefill")) o->prefill = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode-only")) {
            char *end;
            long long b = strtoll(argv[i + 1], &end, 10);
            if (*end || b < 1 || b > 128) {
                fprintf(stderr, "bench_gpu: --decode-only %s: expected a batch from 1 to 128\n", argv[i + 1]);
                return 2;
            }
            o->batches[0] = b, o->nbatch = 1;
        }
        else if (!strcmp(argv[i], "--hbm-gbps")) o->hbm = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--peak-tflops")) o->peak = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--bf16-tflops")) o->bf16 = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--set") && o->nsets < 4 + MAX_SETS && strchr(argv[i + 1], '=')) {
            char *eq = strchr(argv[i + 1], '=');
            *eq = 0;
            o->sets[o->nsets++] = (FeSetting){argv[i + 1], eq + 1};
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o->bf16 <= 0) o->bf16 = o->peak / 2; /* dense BF16 runs at half the FP8 rate on Hopper */
    return -1;
}

/* The benchmarked graph: o's layers of the DSL's model through the FP8 kernel passes; NULL on an error (reported). */
static IrGraph *bench_graph(Arena *a, DiagEngine *d, BenchArgs *o) {
    /* logits_last_only: the LM head on each sequence's last position, as dscc run compiles it */
    o->sets[0].value = arena_printf(a, "%d", o->layers), o->sets[1].value = arena_printf(a, "%d", o->dense);
    FeOptions fo = {o->config, o->sets, o->nsets};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    PassPipeline pp;
    PassRunOptions ro = {.tune = bench_tune()};
    if (!g || ir_verify(g, d) ||
        !pass_pipeline_parse(a, d, pass_preset(a, "kernels", &(PassPreset){.fp8 = true}), &pp) ||
        !pass_pipeline_run(&pp, g, &ro, d))
        return NULL;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_EMBEDDING) g_vocab = g->nodes[i]->ops[0]->type.dims[0].coeff;
    return g;
}

/* The FP8 GEMMs of the last run: each one's M, N x K and TFLOPS (only those that ran: not the other attention form's). */
static void gemm_table(const IrGraph *g, GpuExec *x) {
    printf("\n| GEMM | M | N x K | dscc FP8 TFLOPS |\n|---|---|---|---|\n");
    const int64_t *sym = gpu_exec_dims(x);
    StrBuf lb;
    sb_init(&lb);
    for (int k = 0; k < gpu_exec_kernels(x); k++) {
        int nid = gpu_exec_kernel_node(x, k);
        if (nid < 0 || g->nodes[nid]->op != IR_OP_FP8_LINEAR || !gpu_exec_kernel_ran(x, k)) continue;
        const IrNode *n = g->nodes[nid], *w = n->ops[2];
        int64_t N = w->type.dims[0].coeff, K = w->type.dims[1].coeff, M = numel(&n->ops[0]->type, sym) / K;
        double ms = gpu_exec_kernel_ms(x, k);
        printf("| %s | %lld | %lld x %lld | %.1f |\n", weight_label(w, &lb), (long long)M, (long long)N, (long long)K,
               ms > 0 ? 2.0 * M * N * K / (ms * 1e-3) / 1e12 : 0.0);
    }
    sb_free(&lb);
}

/* The prefill row (1 x o->prefill tokens, timed on its second run) beside its floors, by op kind and GEMM; then the
 * decode attention of one step over that context. False on a failed run (reported). */
static bool bench_prefill(const IrGraph *g, GpuExec *x, const BenchArgs *o, uint64_t *rng, DiagEngine *d) {
    const int64_t prefill = o->prefill, zero[IR_MAX_DIM_SYMS] = {0};
    const double hbm = o->hbm, peak = o->peak, bf16 = o->bf16;
    for (int rep = 0; rep < 2; rep++) {
        gpu_exec_reset(x);
        if (!run(x, 1, prefill, 0, rng, d)) return false;
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
    Floor pf;
    if (!step_floor(g, x, prefill, hbm, peak, bf16, &pf)) return false;
    printf("\n## prefill, 1 x %lld tokens\n\n%.3f ms, %.0f tokens/s; FP8 GEMM roofline for its linears (%.2f G activated FP8 "
           "weights, %.0f TFLOPS): %.3f ms\n",
           (long long)prefill, pms, (double)prefill / (pms * 1e-3), act_params / 1e9, peak, roof_ms);
    printf("floor: %.3f ms = max(%.2f GB read (weights, the %.1f experts a MoE layer hit, embedding rows, KV cache) at %.0f GB/s, "
           "%.1f TFLOP FP8 at %.0f + %.1f TFLOP BF16 at %.0f TFLOPS); stage by stage %.3f ms; dscc at %.2fx the floor\n",
           floor_ms(&pf, hbm, peak, bf16), pf.bytes / 1e9, pf.moe ? pf.hit / pf.moe : 0.0, hbm, pf.fp8 / 1e12, peak, pf.bf16 / 1e12, bf16,
           pf.stage_ms, pms / floor_ms(&pf, hbm, peak, bf16));
    StrBuf sb;
    sb_init(&sb);
    breakdown(g, x, &sb);
    fputs(sb.data, stdout);
    sb_free(&sb);
    gemm_table(g, x);

    /* decode attention over the prefilled context: latent cache bytes / kernel time */
    if (!run(x, 1, 1, prefill, rng, d)) return false;
    double att_ms, att_bytes;
    attention_time(g, x, &att_ms, &att_bytes);
    printf("\nMLA decode attention, batch 1, context %lld: %.3f ms for %.1f MB of latent cache: %.0f GB/s (HBM copy %.0f GB/s), "
           "%.1f TFLOPS\n",
           (long long)prefill + 1, att_ms, att_bytes / 1e6, att_bytes / (att_ms * 1e-3) / 1e9, hbm,
           attention_flops(g, x) / (att_ms * 1e-3) / 1e12);
    return true;
}

/* A prefill of 16 tokens at batch B, then 4 decode steps; the steps' least ms (with the executor's profile as set)
 * in *best when not NULL. */
static bool decode_steps(GpuExec *x, int64_t B, uint64_t *rng, DiagEngine *d, double *best) {
    gpu_exec_reset(x);
    if (!run(x, B, 16, 0, rng, d)) return false;
    for (int s = 0; s < 4; s++) {
        if (!run(x, B, 1, 16 + s, rng, d)) return false;
        double ms = gpu_exec_last_ms(x);
        if (best && (s == 0 || ms < *best)) *best = ms;
    }
    return true;
}

/* One row of the decode table, batch B: the steps timed kernel by kernel, as plain launches and as CUDA graphs (the
 * launches' programmatic count into pdl), the floor of the experts the last step really hit; its kinds into kinds. */
static bool bench_decode_batch(const IrGraph *g, GpuExec *x, const BenchArgs *o, int64_t B, uint64_t *rng, DiagEngine *d, StrBuf *kinds,
                               StrBuf *pdl) {
    double best = 0;
    if (!decode_steps(x, B, rng, d, &best)) return false;
    /* the same steps untimed per kernel: plain launches, then one CUDA graph per step */
    double plain = 1e30, graphed = 1e30;
    gpu_exec_set_profile(x, false);
    for (int mode = 0; mode < 2; mode++) {
        gpu_exec_set_graphs(x, mode == 1);
        gpu_exec_reset(x);
        if (!run(x, B, 16, 0, rng, d)) return false;
        for (int s = 0; s < 4; s++) {
            if (!run(x, B, 1, 16 + s, rng, d)) return false;
            double ms = gpu_exec_last_ms(x);
            if (mode == 0) plain = ms < plain ? ms : plain;
            else graphed = ms < graphed ? ms : graphed;
            if (mode == 1 && s == 3) /* programmatic dependent launch (DSCC_PDL): how many of the step's launches */
                sb_printf(pdl, "batch %lld: %d of %d launches of a graphed step programmatic\n", (long long)B, gpu_exec_last_pdl_launches(x),
                          gpu_exec_last_launches(x));
        }
    }
    gpu_exec_set_graphs(x, false);
    gpu_exec_set_profile(x, true);
    if (!decode_steps(x, B, rng, d, NULL)) return false; /* leave the profiled state of this batch for the breakdown below */
    /* the floor of the last step: the experts it really hit, read back */
    Floor df;
    if (!step_floor(g, x, B, o->hbm, o->peak, o->bf16, &df)) return false;
    double att, cache_bytes;
    attention_time(g, x, &att, &cache_bytes);
    printf("| %lld | %.3f | %.3f | %.3f | %.3f | %.1f | %.3f | %.3f | %.3f |\n", (long long)B, best, plain, graphed, att,
           df.moe ? df.hit / df.moe : 0.0, df.bytes / 1e9, floor_ms(&df, o->hbm, o->peak, o->bf16), df.stage_ms);
    sb_printf(kinds, "\nbatch %lld step by op kind:\n", (long long)B);
    breakdown(g, x, kinds);
    return true;
}

static int cmp_ms(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The last run's attention kernels again, each alone 20 times at that run's arguments (gpu_exec_time_kernel: events
 * right around its launches, the decode kernel and its combine where both run), the medians summed: bench_mla's
 * measure, beside the step's figure above, which is one run of each, right after the step's other kernels. */
static bool attention_alone(const IrGraph *g, GpuExec *x, DiagEngine *d) {
    enum { REPS = 20 };
    double sum = 0, t[REPS];
    for (int k = 0; k < gpu_exec_kernels(x); k++) {
        int nid = gpu_exec_kernel_node(x, k);
        if (nid < 0 || g->nodes[nid]->op != IR_OP_ATTENTION || !gpu_exec_kernel_ran(x, k)) continue;
        if (!gpu_exec_time_kernel(x, k, REPS, 0, t, d)) return false;
        qsort(t, REPS, sizeof t[0], cmp_ms);
        sum += t[REPS / 2];
    }
    printf("the same attention kernels alone, %d runs each, the medians summed: %.3f ms, %.1f TFLOPS\n", REPS, sum,
           sum > 0 ? attention_flops(g, x) / (sum * 1e-3) / 1e12 : 0.0);
    return true;
}

/* The decode table (each batch of o), its per-kind breakdowns, then the decode attention over a long context: batch
 * o->batches[1], o->long_ctx positions cached (prefilled 16 at a time), one step. */
static bool bench_decode(const IrGraph *g, GpuExec *x, const BenchArgs *o, uint64_t *rng, DiagEngine *d) {
    printf("\n## decode, context 17-20\n\n| batch | step ms (kernels timed one by one) | step ms, launches | step ms, CUDA graph | "
           "of which attention ms | experts hit per MoE layer | bytes read GB | floor ms | floor ms, stage by stage |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    StrBuf steps_by_kind, pdl_note; /* printed after the table */
    sb_init(&steps_by_kind);
    sb_init(&pdl_note);
    bool ok = true;
    for (int bi = 0; bi < o->nbatch && ok; bi++) ok = bench_decode_batch(g, x, o, o->batches[bi], rng, d, &steps_by_kind, &pdl_note);
    if (ok) {
        printf("\nprogrammatic dependent launch %s (DSCC_PDL)\n%s", gpu_exec_pdl(x) ? "on" : "off", pdl_note.data ? pdl_note.data : "");
        fputs(steps_by_kind.data, stdout);
    }
    sb_free(&pdl_note);
    sb_free(&steps_by_kind);
    if (!ok || o->nbatch == 1) return ok;

    gpu_exec_reset(x);
    for (int64_t t0 = 0; t0 < o->long_ctx; t0 += 16)
        if (!run(x, o->batches[1], 16, t0, rng, d)) return false;
    if (!run(x, o->batches[1], 1, o->long_ctx, rng, d)) return false;
    double lat_ms, lat_bytes;
    attention_time(g, x, &lat_ms, &lat_bytes);
    printf("\nMLA decode attention, batch %lld, context %lld: %.3f ms for %.1f MB of latent cache: %.0f GB/s (HBM copy %.0f GB/s), "
           "%.1f TFLOPS (2 B H T (576 + 512) FLOPs)\n",
           (long long)o->batches[1], (long long)o->long_ctx + 1, lat_ms, lat_bytes / 1e6, lat_bytes / (lat_ms * 1e-3) / 1e9, o->hbm,
           attention_flops(g, x) / (lat_ms * 1e-3) / 1e12);
    return attention_alone(g, x, d);
}

int main(int argc, char **argv) {
    BenchArgs o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    if (o.hbm < 0) { /* the floors at what this card's memory really reads, not at a figure from another card */
        const int64_t rb = (int64_t)2 << 30;
        double rms = bench_read_ms(rb, 0, d);
        if (rms <= 0) return 1;
        o.hbm = (double)rb / (rms * 1e-3) / 1e9;
        printf("HBM: %.0f GB/s measured (a 2 GiB pure read, codegen/kernels/stream_read.cuh); the floors below use it\n", o.hbm);
    }
    IrGraph *g = bench_graph(a, d, &o);
    if (!g) return 1;
    uint64_t seed = 1, rng = 7;
    CpuWeightSource ws = cpu_random_weights(&seed);
    /* two executors, one after the other: capacities 1 x prefill, then 128 x 16 (+ decode steps); with
     * --decode-only, the second alone, sized for its batch */
    const bool both = o.nbatch == 3;
    GpuOptions go = {.tune = bench_tune(), .max_batch = 1, .max_seq = o.prefill, .max_ctx = o.prefill + 4, .profile = true};
    GpuOptions gd = {.tune = bench_tune(), .max_batch = o.batches[o.nbatch - 1], .max_seq = 16,
                     .max_ctx = (both ? o.long_ctx : 20) + 4, .profile = true}; /* room for bench_decode's long context */
    const GpuOptions *first = both ? &go : &gd;
    double t = now();
    if (!plan_memory(a, d, g, first->max_batch, first->max_seq, first->max_ctx)) return 1;
    GpuExec *x = gpu_exec_new(g, &ws, first, d);
    if (!x) return 1;
    int64_t zero[IR_MAX_DIM_SYMS] = {0}, wbytes = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT) wbytes += numel(&g->nodes[i]->type, zero) * ir_dtype_bits(g->nodes[i]->type.dtype) / 8;
    printf("%s: %d layers (%d dense) of DeepSeek-V3 at full width, %.2f GB of weights, loaded in %.1f s\n", gpu_exec_device(x),
           o.layers, o.dense, (double)wbytes / 1e9, now() - t);
    printf("GEMMs: %s\n", gpu_exec_blas(x) ? arena_printf(a, "%s where it has an algorithm for the shape, the generated kernels elsewhere",
                                                          gpu_exec_blas(x))
                                         : "the generated kernels only (cuBLASLt not in use)");
    if (both) {
        if (!bench_prefill(g, x, &o, &rng, d)) return 1;
        gpu_exec_free(x);
        if (!plan_memory(a, d, g, gd.max_batch, gd.max_seq, gd.max_ctx) || !(x = gpu_exec_new(g, &ws, &gd, d))) return 1;
    }
    if (!bench_decode(g, x, &o, &rng, d)) return 1;
    gpu_exec_free(x);
    arena_free(a);
    return 0;
}
