/* cmd_run.c — `dscc run`: compile a model, load weights (checkpoint or
 * seeded random), feed token ids from a .npy and run the graph: one full
 * forward, or a prefill followed by one-token steps through the KV cache,
 * optionally continued by greedy generation. The model must have inputs
 * `tokens` (and optionally `positions`) and an output `logits` [B, S, V]. */
#include "tools/dscc/driver.h"

#include "cpu/cpu.h"
#include "runtime/runtime.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_CONFIG = 256, OPT_SET, OPT_WEIGHTS, OPT_RANDOM, OPT_TOKENS, OPT_BACKEND, OPT_PRECISION, OPT_DUMP,
       OPT_GENERATE, OPT_PREFILL, OPT_THREADS };

static void run_help(FILE *o) {
    fprintf(o, "usage: dscc run MODEL.dsl --tokens IDS.npy [options]\n\n"
               "Run the model on token ids and report or dump its logits.\n\n"
               "options:\n"
               "  --weights DIR          Hugging Face checkpoint (model.safetensors or shards;\n"
               "                         its config.json is used unless --config is given)\n"
               "  --random-weights SEED  deterministic random weights instead (the default, seed 0)\n"
               "  --config FILE          bind parameters from a config.json\n"
               "  --set NAME=VALUE       set a parameter (repeatable)\n"
               "  --tokens IDS.npy       int32/int64 token ids [B, T] (required)\n"
               "  --backend cpu          executor; only the CPU reference backend exists in this\n"
               "                         build (the CUDA backend is still to come)\n"
               "  --precision fp8|bf16   fp8 (default): the default pipeline, whose fp8-quant pass makes\n"
               "                         DeepSeek-V3's FP8 linears (1x128 activation tiles, 128x128\n"
               "                         weight blocks); bf16: the same pipeline without fp8-quant\n"
               "                         (on the CPU: FP32 arithmetic on the stored weights)\n"
               "  --prefill P            run the first P positions at once, the rest one token at a\n"
               "                         time through the KV cache (logits equal a full forward)\n"
               "  --generate N           continue greedily for N tokens and print them\n"
               "  --dump-logits OUT.npy  write float32 logits [B, T, vocab] of the positions run\n"
               "  --threads N            CPU threads (default: all)\n"
               "%s"
               "  -h, --help             show this help\n\n"
               "exit codes: 0 ok, 1 error in the input (model, checkpoint, tokens), 2 usage,\n"
               "3 runtime failure (out of memory, cannot write output)\n", driver_pass_help);
}

typedef struct {
    const char *model, *weights, *tokens, *dump, *backend;
    uint64_t seed;
    bool fp8;
    long prefill, generate, threads;
    ModelOpts mo;
    PassOpts po;
} RunArgs;

static bool parse_long(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        driver_usage_error("run", "%s expects an integer in %ld..%ld, got '%s'", opt, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

static int parse_run_args(int argc, char **argv, Arena *a, RunArgs *r) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, OPT_CONFIG},   {"set", required_argument, 0, OPT_SET},
        {"weights", required_argument, 0, OPT_WEIGHTS}, {"random-weights", required_argument, 0, OPT_RANDOM},
        {"tokens", required_argument, 0, OPT_TOKENS},   {"backend", required_argument, 0, OPT_BACKEND},
        {"precision", required_argument, 0, OPT_PRECISION}, {"dump-logits", required_argument, 0, OPT_DUMP},
        {"generate", required_argument, 0, OPT_GENERATE}, {"prefill", required_argument, 0, OPT_PREFILL},
        {"threads", required_argument, 0, OPT_THREADS}, {"help", no_argument, 0, 'h'},
        DRIVER_PASS_LONGOPTS, {0, 0, 0, 0}};
    memset(r, 0, sizeof *r);
    r->fp8 = true;
    bool random_given = false;
    long seed = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': run_help(stdout); return -1;
        case OPT_CONFIG: r->mo.config_path = optarg; break;
        case OPT_SET: if (!driver_add_set(a, &r->mo, optarg)) return DSCC_EXIT_USAGE; break;
        case OPT_WEIGHTS: r->weights = optarg; break;
        case OPT_RANDOM:
            if (!parse_long("--random-weights", optarg, 0, 2147483647L, &seed)) return DSCC_EXIT_USAGE;
            random_given = true;
            break;
        case OPT_TOKENS: r->tokens = optarg; break;
        case OPT_BACKEND: r->backend = optarg; break;
        case OPT_PRECISION:
            if (strcmp(optarg, "fp8") && strcmp(optarg, "bf16"))
                return driver_usage_error("run", "--precision expects fp8 or bf16, got '%s'", optarg);
            r->fp8 = strcmp(optarg, "fp8") == 0;
            break;
        case OPT_DUMP: r->dump = optarg; break;
        case OPT_GENERATE: if (!parse_long("--generate", optarg, 0, 100000, &r->generate)) return DSCC_EXIT_USAGE; break;
        case OPT_PREFILL: if (!parse_long("--prefill", optarg, 1, 1 << 24, &r->prefill)) return DSCC_EXIT_USAGE; break;
        case OPT_THREADS: if (!parse_long("--threads", optarg, 1, 1024, &r->threads)) return DSCC_EXIT_USAGE; break;
        case ':': return driver_usage_error("run", "option '%s' needs a value", argv[optind - 1]);
        default:
            if (!driver_pass_option(&r->po, c, optarg)) return driver_usage_error("run", "unknown option '%s'", argv[optind - 1]);
            break;
        }
    }
    r->seed = (uint64_t)seed;
    if (optind != argc - 1) return driver_usage_error("run", optind >= argc ? "missing MODEL.dsl" : "expected one model file");
    r->model = argv[optind];
    if (!r->tokens) return driver_usage_error("run", "--tokens IDS.npy is required");
    if (r->weights && random_given) return driver_usage_error("run", "give --weights or --random-weights, not both");
    if (r->backend && strcmp(r->backend, "cpu") != 0)
        return driver_usage_error("run", strcmp(r->backend, "cuda") == 0
                                             ? "--backend cuda: the CUDA backend is not part of this build yet; use --backend cpu"
                                             : "--backend expects cpu or cuda, got '%s'", r->backend);
    return 0;
}

/* Wraps a weight source to show progress on a terminal. */
typedef struct {
    CpuWeightSource inner;
    int done, total;
    bool tty;
} Progress;

static bool progress_load(void *ctx, const char *name, const IrType *type, float *dst, DiagEngine *d) {
    Progress *p = ctx;
    bool ok = p->inner.load(p->inner.ctx, name, type, dst, d);
    p->done++;
    if (p->tty && (p->done % 16 == 0 || p->done == p->total)) {
        fprintf(stderr, "\rloading weights: %d/%d tensors", p->done, p->total);
        if (p->done == p->total) fputc('\n', stderr);
    }
    return ok;
}

static int count_tensors(const IrGraph *g) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT) n += (int)ir_node_attr_int(g->nodes[i], "count", 1);
    return n;
}

/* Runs positions [t0, t1) of every row of tok [B, T]; copies logits into all. */
static bool run_span(CpuExec *x, DiagEngine *d, const float *tok, int64_t B, int64_t T, int64_t t0, int64_t t1,
                     bool has_pos, float *all, int64_t *V) {
    int64_t S = t1 - t0;
    float *t = malloc(sizeof(float) * (size_t)(B * S)), *p = malloc(sizeof(float) * (size_t)(B * S));
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            t[b * S + s] = tok[b * T + t0 + s];
            p[b * S + s] = (float)(t0 + s);
        }
    CpuInput in[2] = {{"tokens", 2, {B, S}, t}, {"positions", 2, {B, S}, p}};
    bool ok = cpu_exec_run(x, in, has_pos ? 2 : 1, d);
    int rank = 0;
    int64_t dims[IR_MAX_RANK];
    const float *lg = ok ? cpu_exec_output(x, "logits", &rank, dims) : NULL;
    if (ok && (!lg || rank != 3 || dims[0] != B || dims[1] != S)) {
        diag_error(d, (SrcLoc){0}, "the model has no output 'logits' of shape [B, S, vocab]");
        ok = false;
    }
    if (ok) {
        *V = dims[2];
        if (all)
            for (int64_t b = 0; b < B; b++)
                memcpy(all + (b * T + t0) * dims[2], lg + b * S * dims[2], sizeof(float) * (size_t)(S * dims[2]));
    }
    free(t);
    free(p);
    return ok;
}

static int64_t argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static bool graph_has_input(const IrGraph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_INPUT && strcmp(ir_node_attr_str(g->nodes[i], "name", ""), name) == 0) return true;
    return false;
}

/* The prompt, then greedy continuation; fills logits [B, T, V] for the prompt. */
static int execute(const RunArgs *r, const IrGraph *g, CpuExec *x, DiagEngine *d, const RtArray *tok) {
    int64_t B = tok->shape[0], T = tok->shape[1], V = 0;
    bool has_pos = graph_has_input(g, "positions");
    float *logits = NULL;
    double t0 = driver_now();
    int64_t P = r->prefill ? r->prefill : T;
    if (P > T) {
        fprintf(stderr, "dscc run: error: --prefill %ld is longer than the %lld tokens given\n", r->prefill, (long long)T);
        return DSCC_EXIT_USAGE;
    }
    /* First span learns V; then the buffer for every position. */
    float *first = NULL;
    if (!run_span(x, d, tok->data, B, T, 0, P, has_pos, NULL, &V)) return DSCC_EXIT_INPUT;
    logits = malloc(sizeof(float) * (size_t)(B * T * V));
    if (!logits) return DSCC_EXIT_RUNTIME;
    int rank;
    int64_t dims[IR_MAX_RANK];
    first = (float *)cpu_exec_output(x, "logits", &rank, dims);
    for (int64_t b = 0; b < B; b++) memcpy(logits + b * T * V, first + b * P * V, sizeof(float) * (size_t)(P * V));
    for (int64_t t = P; t < T; t++)
        if (!run_span(x, d, tok->data, B, T, t, t + 1, has_pos, logits, &V)) { free(logits); return DSCC_EXIT_INPUT; }
    double t1 = driver_now();
    fprintf(stderr, "ran %lld x %lld tokens (%s) in %.3f s on the cpu backend, precision %s\n", (long long)B, (long long)T,
            P == T ? "one forward" : "prefill + decode", t1 - t0, r->fp8 ? "fp8" : "bf16");
    for (int64_t b = 0; b < B; b++)
        printf("row %lld: next token %lld\n", (long long)b, (long long)argmax(logits + (b * T + T - 1) * V, V));
    int rc = DSCC_EXIT_OK;
    if (r->dump) {
        int64_t shape[3] = {B, T, V};
        if (!rt_npy_write_f32(d, r->dump, logits, 3, shape)) rc = DSCC_EXIT_RUNTIME;
    }
    if (r->generate) {
        float *seq = malloc(sizeof(float) * (size_t)(B * (T + r->generate)));
        int64_t L = T + r->generate;
        for (int64_t b = 0; b < B; b++) {
            memcpy(seq + b * L, tok->data + b * T, sizeof(float) * (size_t)T);
            seq[b * L + T] = (float)argmax(logits + (b * T + T - 1) * V, V);
        }
        float *step = malloc(sizeof(float) * (size_t)(B * L * V));
        for (int64_t t = T; t + 1 < L && rc == DSCC_EXIT_OK; t++) {
            if (!run_span(x, d, seq, B, L, t, t + 1, has_pos, step, &V)) rc = DSCC_EXIT_INPUT;
            for (int64_t b = 0; b < B && rc == DSCC_EXIT_OK; b++) seq[b * L + t + 1] = (float)argmax(step + (b * L + t) * V, V);
        }
        for (int64_t b = 0; b < B && rc == DSCC_EXIT_OK; b++) {
            printf("row %lld generated:", (long long)b);
            for (int64_t t = T; t < L; t++) printf(" %lld", (long long)seq[b * L + t]);
            printf("\n");
        }
        free(seq);
        free(step);
    }
    free(logits);
    return rc;
}

int cmd_run(int argc, char **argv) {
    Arena *a = arena_new();
    RunArgs r;
    int rc = parse_run_args(argc, argv, a, &r);
    if (rc) {
        arena_free(a);
        return rc < 0 ? DSCC_EXIT_OK : rc;
    }
    DiagEngine *d = diag_new(a, stderr);
    RtCheckpoint *ck = NULL;
    CpuExec *x = NULL;
    RtArray tok = {0};
    rc = DSCC_EXIT_INPUT;
    if (r.weights && !(ck = rt_checkpoint_open(a, d, r.weights))) goto done;
    if (ck && !r.mo.config_path) r.mo.config_path = rt_checkpoint_config_path(ck);
    FeOptions fo = driver_fe_options(&r.mo);
    IrGraph *g = fe_compile_file(a, d, r.model, &fo);
    if (!g || ir_verify(g, d)) goto done;
    /* --precision picks the default pipeline; --passes replaces it. */
    if (!rt_npy_read(d, r.tokens, &tok)) goto done;
    const char *dflt = arena_printf(a, "shape-infer,fold-constants,dce,%scse,dce,node-limited-routing,fuse,plan-memory{batch=%lld,seq=%lld}", r.fp8 ? "fp8-quant," : "",
                                    (long long)tok.shape[0], (long long)(tok.rank == 2 ? tok.shape[1] : 1));
    if ((rc = driver_run_passes(a, d, g, &r.po, dflt, false)) != DSCC_EXIT_OK) goto done;
    rc = DSCC_EXIT_INPUT;
    if (tok.rank != 2 || !tok.was_int || tok.shape[0] < 1 || tok.shape[1] < 1) {
        diag_error(d, ((SrcLoc){r.tokens, 0, 0}), "token ids must be a non-empty int32 or int64 array [B, T]");
        goto done;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const char *in = g->nodes[i]->op == IR_OP_INPUT ? ir_node_attr_str(g->nodes[i], "name", "") : NULL;
        if (in && strcmp(in, "tokens") && strcmp(in, "positions")) {
            diag_error(d, g->nodes[i]->loc, "input '%s' cannot be supplied by dscc run (it feeds tokens and positions)", in);
            goto done;
        }
    }
    Progress prog = {.inner = ck ? (CpuWeightSource){rt_checkpoint_read_f32, ck} : cpu_random_weights(&r.seed),
                     .total = count_tensors(g), .tty = isatty(2)};
    CpuWeightSource ws = {progress_load, &prog};
    CpuOptions co = {.threads = (int)r.threads};
    if (!(x = cpu_exec_new(g, &ws, &co, d))) goto done;
    rc = execute(&r, g, x, d, &tok);
done:
    cpu_exec_free(x);
    free(tok.data);
    rt_checkpoint_close(ck);
    arena_free(a);
    return rc;
}
