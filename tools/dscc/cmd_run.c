/* cmd_run.c — `dscc run`: compile a model, load weights (checkpoint or
 * seeded random), feed token ids from a .npy and run the graph: one full
 * forward, or a prefill followed by one-token steps through the KV cache,
 * optionally continued by greedy generation. The model must have inputs
 * `tokens` (and optionally `positions`) and an output `logits` [B, S, V].
 *
 * Distributed: `--nproc N` starts N copies of this command (rt_launch);
 * each copy, or each rank an outer launcher started (torchrun variables,
 * mpirun, srun), finds its rank (rt_rank_info), joins the world (watchdog,
 * NCCL communicator: runtime/world.h), runs its share of the batch rows
 * and sends its results to rank 0, which alone prints and dumps them. */
#include "tools/dscc/driver.h"
#include "tools/dscc/models.h"
#include "tools/dscc/speculative.h"

#include "runtime/chat_template.h"
#include "runtime/exec.h"
#include "runtime/launch.h"
#include "runtime/runtime.h"
#include "runtime/trace.h"
#include "runtime/world.h"
#include "tools/dscc/run_text.h"

#include <getopt.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAT_CTX 4096 /* positions a --chat conversation may reach */
#define LOAD_SLACK_MS (30 * 60 * 1000) /* how much longer than --timeout a rank waits for the others' weights */

enum { OPT_CONFIG = 256, OPT_SET, OPT_WEIGHTS, OPT_RANDOM, OPT_TOKENS, OPT_BACKEND, OPT_PRECISION, OPT_DUMP,
       OPT_GENERATE, OPT_PREFILL, OPT_THREADS, OPT_DEVICE, OPT_TRACE, OPT_TRACE_STEPS, OPT_STORAGE, OPT_NPROC, OPT_NODES, OPT_GPN,
       OPT_TIMEOUT, OPT_STATS, OPT_EXPERTS, OPT_PROMPT, OPT_PROMPT_FILE, OPT_TOKENIZER, OPT_RAW, OPT_STOP, OPT_TEMP, OPT_TOP_P,
       OPT_TOP_K, OPT_SEED, OPT_FORMAT, OPT_CHAT, OPT_SPECULATIVE };

static void run_help(FILE *o) {
    fprintf(o, "usage: dscc run MODEL.dsl (--weights DIR | --random-weights SEED)\n"
               "                         (--prompt TEXT | --prompt-file F | --tokens IDS.npy) [options]\n\n"
               "Run the model on a prompt and stream the text it generates, or on token ids\n"
               "and report or dump its logits.\n\n"
               "options:\n"
               "  --weights DIR          Hugging Face checkpoint (model.safetensors or shards;\n"
               "                         its config.json is used unless --config is given)\n"
               "  --random-weights SEED  deterministic random weights instead (one of the two is required)\n"
               "  --config FILE          bind parameters from a config.json\n"
               "  --set NAME=VALUE       set a parameter (repeatable)\n"
               "  --tokens IDS.npy       int32/int64 token ids [B, T]\n"
               "  --prompt TEXT          a prompt: the tokenizer's chat template renders it as one user\n"
               "                         message with the generation prompt; the text generated streams\n"
               "                         to standard output (several ranks: rank 0 reads and prints)\n"
               "  --prompt-file F        the prompt read from F ('-': standard input, rank 0's)\n"
               "  --raw                  feed the prompt as is, without the chat template\n"
               "  --chat                 interactive: a user message per line of standard input, the\n"
               "                         reply streamed; the history is kept and the KV cache holds\n"
               "                         the conversation (only the new turn runs, unless the template\n"
               "                         renders a reply otherwise than its ids: then all again; up to\n"
               "                         4096 positions)\n"
               "  --tokenizer DIR        tokenizer.json and tokenizer_config.json (default: --weights)\n"
               "  --max-new-tokens N     generate at most N tokens (alias of --generate; default with a\n"
               "                         prompt: 256); generation also stops at the tokenizer's eos\n"
               "  --stop STRING          stop when the text contains STRING (not printed)\n"
               "  --temperature T        sampling temperature (default 0: greedy, the argmax)\n"
               "  --top-k K              sample among the K most likely tokens (default 0: all)\n"
               "  --top-p P              then among the fewest whose probability reaches P (default 1)\n"
               "  --seed N               sampling seed (default 0): the same seed gives the same output on\n"
               "                         the same backend. --backend cuda draws on the GPU (only the ids\n"
               "                         come back: the same distribution, not the host's draws); the CPU\n"
               "                         backend samples on the host\n"
               "  --speculative mtp      with --tokens or a prompt: the MTP module (--set mtp_draft)\n"
               "                         drafts, the main model verifies a draft token each step\n"
               "                         (greedy output equals plain greedy decoding; with --temperature\n"
               "                         the speculative-sampling rule); reports the acceptance rate.\n"
               "                         Needs a checkpoint with the MTP layer\n"
               "                         (model.layers.{num_hidden_layers}.*) or random weights; its two\n"
               "                         step graphs are `dscc compile` of the model with\n"
               "                         --set mtp_hidden=true (verify) and --set mtp_draft=true (draft)\n"
               "  --output-format text|json  json (with --prompt): one JSON object with prompt_ids,\n"
               "                         output_ids, text, stop_reason and timings instead of streamed text\n"
               "  --backend cpu|cuda     executor: the FP32 CPU reference (default) or the GPU, with\n"
               "                         kernels generated by dscc and compiled by NVRTC (Hopper,\n"
               "                         sm_90; each step's launches run as one CUDA graph)\n"
               "  --device N             GPU ordinal for --backend cuda (default 0; one process)\n"
               "  --trace FILE.json      --backend cuda: Chrome trace (chrome://tracing, Perfetto) of every\n"
               "                         step (prefill, decode N) and its kernels at their CUDA event\n"
               "                         times, with each kernel's ops, shape, bytes, FLOPs, GB/s and\n"
               "                         TFLOPS (several ranks: FILE.rankR.json each); traced steps\n"
               "                         launch kernel by kernel, not as CUDA graphs\n"
               "  --trace-steps N        trace the first N steps only (default %d; the trace's metadata\n"
               "                         says how many were left out)\n"
               "  --storage declared|f32 --backend cuda: keep every tensor in its declared dtype\n"
               "                         (default: bf16 weights and activations in the V3 model), or\n"
               "                         bf16/f16 weights, activations and KV cache in f32 (FP8\n"
               "                         stays FP8): no 16-bit rounding between kernels, as on the\n"
               "                         CPU, at twice the memory and traffic of those tensors\n"
               "  --precision fp8|bf16   default: what the checkpoint is (fp8 when its config.json has\n"
               "                         quantization_config.quant_method \"fp8\", else bf16); fp8: the\n"
               "                         pipeline's fp8-quant pass makes DeepSeek-V3's FP8 linears (1x128\n"
               "                         activation tiles, 128x128 weight blocks); bf16: the same pipeline\n"
               "                         without fp8-quant (on the CPU: FP32 arithmetic on the stored weights)\n"
               "  --prefill P            run the first P positions at once, the rest one token at a\n"
               "                         time through the KV cache (logits equal a full forward)\n"
               "  --generate N           continue for N tokens (greedy, or as --temperature says) and\n"
               "                         print them\n"
               "  --dump-logits OUT.npy  write float32 logits [B, T, vocab] of the positions run (without\n"
               "                         it the LM head runs on each step's last position alone:\n"
               "                         --set logits_last_only=true, when the model has it)\n"
               "  --threads N            CPU threads (default: all)\n"
               "%s"
               "  -h, --help             show this help\n\n"
               "several GPUs (--backend cuda; one process per GPU, rank r on GPU LOCAL_RANK):\n"
               "  --nproc N              start N local ranks of this command (torchrun-style\n"
               "                         variables; output prefixed [rank R]); without it the ranks\n"
               "                         come from torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,\n"
               "                         MASTER_PORT), mpirun (OMPI_COMM_WORLD_*) or srun (SLURM_PROCID,\n"
               "                         SLURM_NTASKS, SLURM_LOCALID; rank 0 on the job's first host)\n"
               "  --nodes M              the ranks form M nodes of N/M GPUs (one host may act as M)\n"
               "  --gpus-per-node G      or: G GPUs per node (default: the launcher's local world)\n"
               "  --timeout SECONDS      bound of the rendezvous and of every exchange (default 60,\n"
               "                         or DSCC_TIMEOUT): a rank that dies or hangs stops the others\n"
               "                         within it, exit code 3, naming the rank and the operation\n"
               "  --experts spread|replicated  spread (default): each rank holds E/N routed experts\n"
               "                         and exchanges tokens with the others (expert parallelism);\n"
               "                         replicated: every rank holds the whole model and runs its\n"
               "                         rows alone (data parallel: no exchanges; the model must fit)\n"
               "  --stats                per rank: bytes its expert exchanges sent (dispatch, combine;\n"
               "                         inter-node, intra-node) and its GPU's weight and activation bytes\n"
               "  Batch rows are split over the ranks; rank 0 gathers and alone prints the results.\n"
               "  The default pipeline then places the experts on the topology\n"
               "  (node-limited-routing{nodes=M,gpus-per-node=G}) and overlaps micro-batches.\n\n"
               "environment (--backend cuda): DSCC_CUBLASLT=0 keeps every GEMM on dscc's generated\n"
               "kernels (otherwise cuBLASLt runs the FP8 and BF16 linears whose shapes it supports);\n"
               "DSCC_CUDA_SYNC=1 waits after every launch so a failing kernel is named;\n"
               "DSCC_GEMM_TILE=wgmma|mma picks the generated GEMM tile (default: Hopper's wgmma,\n"
               "or mma.sync with --storage f32, whose FP8 sums are exact in f32);\n"
               "DSCC_CACHE_DIR holds the compiled kernels (default ${XDG_CACHE_HOME:-~/.cache}/dscc)\n\n"
               "exit codes: 0 ok, 1 error in the input (model, checkpoint, tokens), 2 usage,\n"
               "3 runtime failure (out of memory, cannot write output, a rank failed or timed out)\n",
            RT_TRACE_STEPS, driver_pass_help);
}

typedef struct {
    const char *model, *weights, *tokens, *dump, *backend, *trace;
    long device;
    bool device_given;
    bool f32_storage;
    bool cuda;
    uint64_t seed;
    bool fp8;
    long prefill, generate, threads, trace_steps;
    long nproc, nodes, gpn; /* 0: not given */
    int timeout_ms;
    bool stats;
    bool replicated; /* --experts replicated: data parallel, no exchanges */
    ModelOpts mo;
    PassOpts po;
    bool precision_given, random_given;
    const char *prompt, *prompt_file, *tokenizer, *stop;
    bool raw, json, generate_given, chat;
    bool speculative; /* --speculative mtp: the MTP module drafts, the main model verifies */
    double temperature, top_p;
    long top_k;
    uint64_t sample_seed;
} RunArgs;

static bool parse_double(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi)) {
        driver_usage_error("run", "%s expects a number in %g..%g, got '%s'", opt, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

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

/* --timeout, else DSCC_TIMEOUT, else 60 s. */
static bool parse_timeout(Arena *a, const char *opt, RunArgs *r) {
    const char *env = getenv("DSCC_TIMEOUT");
    r->timeout_ms = 60000;
    if (!opt && !env) return true;
    DiagEngine *d = diag_new(a, stderr);
    if (rt_timeout_parse(d, opt ? "--timeout" : "DSCC_TIMEOUT", opt ? opt : env, &r->timeout_ms)) return true;
    fprintf(stderr, "run 'dscc run --help' for usage\n");
    return false;
}

/* Checks after parsing; 0 or an exit code. */
static int check_run_args(int argc, char **argv, RunArgs *r, bool random_given, bool storage_given) {
    if (optind != argc - 1) return driver_usage_error("run", optind >= argc ? "missing MODEL.dsl" : "expected one model file");
    r->model = argv[optind];
    int inputs = !!r->tokens + !!r->prompt + !!r->prompt_file + r->chat;
    if (inputs == 0) return driver_usage_error("run", "give the input: --prompt TEXT, --prompt-file F, --chat or --tokens IDS.npy");
    if (inputs > 1) return driver_usage_error("run", "give one input: --prompt, --prompt-file, --chat or --tokens");
    if (r->chat && (r->json || r->raw)) return driver_usage_error("run", "--chat renders each turn through the chat template as text: "
                                                                         "no --raw or --output-format json");
    if (r->weights && random_given) return driver_usage_error("run", "give --weights or --random-weights, not both");
    if (!r->weights && !random_given)
        return driver_usage_error("run", "no weights: give --weights DIR (a checkpoint) or --random-weights SEED");
    bool text = !r->tokens;
    if (!text && (r->raw || r->stop || r->json || r->tokenizer))
        return driver_usage_error("run", "--raw, --stop, --tokenizer and --output-format json need --prompt or --prompt-file");
    if (text && r->dump) return driver_usage_error("run", "--dump-logits needs --tokens");
    if (text && !r->tokenizer && !(r->tokenizer = r->weights))
        return driver_usage_error("run", "--prompt with --random-weights needs --tokenizer DIR");
    if (text && !r->generate_given) r->generate = 256;
    if (r->backend && strcmp(r->backend, "cpu") != 0 && strcmp(r->backend, "cuda") != 0)
        return driver_usage_error("run", "--backend expects cpu or cuda, got '%s'", r->backend);
    r->cuda = r->backend && strcmp(r->backend, "cuda") == 0;
    const char *why;
    if (r->cuda && !rt_exec_backend_built(RT_BACKEND_CUDA, &why)) return driver_usage_error("run", "--backend cuda: %s", why);
    if (r->trace && !r->cuda)
        return driver_usage_error("run", "--trace needs --backend cuda (the CPU executor records no per-kernel times)");
    if (r->trace_steps && !r->trace) return driver_usage_error("run", "--trace-steps needs --trace FILE");
    if (storage_given && !r->cuda) return driver_usage_error("run", "--storage needs --backend cuda (the CPU computes and stores in f32)");
    if (r->nproc > 1 && !r->cuda)
        return driver_usage_error("run", "--nproc %ld: several ranks need --backend cuda (expert parallelism runs on GPUs over "
                                         "NCCL; the CPU reference is one process)", r->nproc);
    if (r->nproc && r->device_given) return driver_usage_error("run", "--device picks the GPU of one process; with --nproc rank r drives GPU LOCAL_RANK");
    if (r->speculative && (r->chat || r->generate < 1 || r->prefill || r->dump || r->nproc > 1 || r->top_k || r->top_p < 1))
        return driver_usage_error("run", "--speculative mtp needs --tokens or a prompt and --generate N (N >= 1), in one process, "
                                         "and takes no --chat, --prefill, --dump-logits, --top-k or --top-p");
    return 0;
}

static int parse_run_args(int argc, char **argv, Arena *a, RunArgs *r) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, OPT_CONFIG},   {"set", required_argument, 0, OPT_SET},
        {"weights", required_argument, 0, OPT_WEIGHTS}, {"random-weights", required_argument, 0, OPT_RANDOM},
        {"tokens", required_argument, 0, OPT_TOKENS},   {"backend", required_argument, 0, OPT_BACKEND},
        {"precision", required_argument, 0, OPT_PRECISION}, {"dump-logits", required_argument, 0, OPT_DUMP},
        {"generate", required_argument, 0, OPT_GENERATE}, {"prefill", required_argument, 0, OPT_PREFILL},
        {"threads", required_argument, 0, OPT_THREADS}, {"help", no_argument, 0, 'h'},
        {"device", required_argument, 0, OPT_DEVICE},   {"trace", required_argument, 0, OPT_TRACE},
        {"trace-steps", required_argument, 0, OPT_TRACE_STEPS},
        {"storage", required_argument, 0, OPT_STORAGE}, {"nproc", required_argument, 0, OPT_NPROC},
        {"nodes", required_argument, 0, OPT_NODES},     {"gpus-per-node", required_argument, 0, OPT_GPN},
        {"timeout", required_argument, 0, OPT_TIMEOUT}, {"stats", no_argument, 0, OPT_STATS},
        {"experts", required_argument, 0, OPT_EXPERTS}, {"prompt", required_argument, 0, OPT_PROMPT},
        {"prompt-file", required_argument, 0, OPT_PROMPT_FILE}, {"tokenizer", required_argument, 0, OPT_TOKENIZER},
        {"raw", no_argument, 0, OPT_RAW}, {"stop", required_argument, 0, OPT_STOP},
        {"temperature", required_argument, 0, OPT_TEMP}, {"top-p", required_argument, 0, OPT_TOP_P},
        {"top-k", required_argument, 0, OPT_TOP_K}, {"seed", required_argument, 0, OPT_SEED},
        {"max-new-tokens", required_argument, 0, OPT_GENERATE}, {"chat", no_argument, 0, OPT_CHAT}, {"output-format", required_argument, 0, OPT_FORMAT},
        {"speculative", required_argument, 0, OPT_SPECULATIVE},
        DRIVER_PASS_LONGOPTS, {0, 0, 0, 0}};
    memset(r, 0, sizeof *r);
    r->top_p = 1;
    long sseed = 0;
    bool random_given = false, storage_given = false;
    const char *timeout = NULL;
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
            r->precision_given = true;
            break;
        case OPT_PROMPT: r->prompt = optarg; break;
        case OPT_PROMPT_FILE: r->prompt_file = optarg; break;
        case OPT_TOKENIZER: r->tokenizer = optarg; break;
        case OPT_RAW: r->raw = true; break;
        case OPT_CHAT: r->chat = true; break;
        case OPT_SPECULATIVE:
            if (strcmp(optarg, "mtp")) return driver_usage_error("run", "--speculative expects mtp, got '%s'", optarg);
            r->speculative = true;
            break;
        case OPT_STOP:
            if (!*optarg) return driver_usage_error("run", "--stop expects a non-empty string");
            r->stop = optarg;
            break;
        case OPT_TEMP: if (!parse_double("--temperature", optarg, 0, 100, &r->temperature)) return DSCC_EXIT_USAGE; break;
        case OPT_TOP_P:
            if (!parse_double("--top-p", optarg, 0, 1, &r->top_p) || r->top_p == 0) {
                if (r->top_p == 0) driver_usage_error("run", "--top-p expects a number in (0, 1], got '%s'", optarg);
                return DSCC_EXIT_USAGE;
            }
            break;
        case OPT_TOP_K: if (!parse_long("--top-k", optarg, 0, 1L << 30, &r->top_k)) return DSCC_EXIT_USAGE; break;
        case OPT_SEED: if (!parse_long("--seed", optarg, 0, 2147483647L, &sseed)) return DSCC_EXIT_USAGE; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return driver_usage_error("run", "--output-format expects text or json, got '%s'", optarg);
            r->json = strcmp(optarg, "json") == 0;
            break;
        case OPT_DUMP: r->dump = optarg; break;
        case OPT_GENERATE:
            if (!parse_long("--max-new-tokens (--generate)", optarg, 0, 100000, &r->generate)) return DSCC_EXIT_USAGE;
            r->generate_given = true;
            break;
        case OPT_PREFILL: if (!parse_long("--prefill", optarg, 1, 1 << 24, &r->prefill)) return DSCC_EXIT_USAGE; break;
        case OPT_THREADS: if (!parse_long("--threads", optarg, 1, 1024, &r->threads)) return DSCC_EXIT_USAGE; break;
        case OPT_DEVICE:
            if (!parse_long("--device", optarg, 0, 1023, &r->device)) return DSCC_EXIT_USAGE;
            r->device_given = true;
            break;
        case OPT_TRACE: r->trace = optarg; break;
        case OPT_TRACE_STEPS: if (!parse_long("--trace-steps", optarg, 1, 1L << 30, &r->trace_steps)) return DSCC_EXIT_USAGE; break;
        case OPT_STORAGE:
            if (strcmp(optarg, "declared") && strcmp(optarg, "f32"))
                return driver_usage_error("run", "--storage expects declared or f32, got '%s'", optarg);
            r->f32_storage = strcmp(optarg, "f32") == 0;
            storage_given = true;
            break;
        case OPT_NPROC: if (!parse_long("--nproc", optarg, 1, 4096, &r->nproc)) return DSCC_EXIT_USAGE; break;
        case OPT_NODES: if (!parse_long("--nodes", optarg, 1, 4096, &r->nodes)) return DSCC_EXIT_USAGE; break;
        case OPT_GPN: if (!parse_long("--gpus-per-node", optarg, 1, 4096, &r->gpn)) return DSCC_EXIT_USAGE; break;
        case OPT_TIMEOUT: timeout = optarg; break;
        case OPT_STATS: r->stats = true; break;
        case OPT_EXPERTS:
            if (strcmp(optarg, "spread") && strcmp(optarg, "replicated"))
                return driver_usage_error("run", "--experts expects spread or replicated, got '%s'", optarg);
            r->replicated = strcmp(optarg, "replicated") == 0;
            break;
        case ':': return driver_usage_error("run", "option '%s' needs a value", argv[optind - 1]);
        default:
            if (!driver_pass_option(&r->po, c, optarg)) return driver_usage_error("run", "unknown option '%s'", argv[optind - 1]);
            break;
        }
    }
    r->seed = (uint64_t)seed;
    r->sample_seed = (uint64_t)sseed;
    r->random_given = random_given;
    if (!parse_timeout(a, timeout, r)) return DSCC_EXIT_USAGE;
    return check_run_args(argc, argv, r, random_given, storage_given);
}

/* Wraps a weight source to show progress on a terminal. The GPU loader
 * calls it from a pool of threads: the count is atomic. */
typedef struct {
    CpuWeightSource inner;
    atomic_int done;
    int total;
    bool tty;
} Progress;

static bool progress_load(void *ctx, const char *name, const IrType *type, float *dst, DiagEngine *d) {
    Progress *p = ctx;
    bool ok = p->inner.load(p->inner.ctx, name, type, dst, d);
    int done = atomic_fetch_add(&p->done, 1) + 1;
    if (p->tty && (done % 16 == 0 || done == p->total)) {
        fprintf(stderr, "\rloading weights: %d/%d tensors", done, p->total);
        if (done == p->total) fputc('\n', stderr);
    }
    return ok;
}

static int count_tensors(const IrGraph *g) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT) n += (int)ir_node_attr_int(g->nodes[i], "count", 1);
    return n;
}

/* What one rank runs and what it found. */
typedef struct {
    RtExec *x;
    RtWorld *world;   /* NULL: one process */
    bool has_pos;
    int64_t B, T, V;  /* this rank's rows (a rank may have none), positions, vocabulary */
    float *logits;    /* [B, T, V] of the positions run */
    float *gen;       /* [B, generate] continuation */
    bool nan;         /* a step's logits held a NaN (a runtime failure, exit 3) */
    int64_t first;    /* this rank's first row (its samplers' streams) */
    int device;
    bool text;        /* --prompt, --chat: no logits kept beyond the last step's */
    bool dev_sample;  /* the backend draws the tokens (rt_exec_sample): no logits to the host */
    bool skip_logits; /* run_span leaves the logits on the device (they are sampled there) */
    bool all_positions; /* --dump-logits: every position's logits are read */
    int rank;         /* this rank: 0 alone reads the prompt and prints */
    RunTimings tm;    /* load and compile filled by run_rank, the steps by the run */
} Local;

/* Runs positions [t0, t1) of every row of tok [B, T]; copies logits into
 * all. A model compiled with logits_last_only gives [B, 1, V], the last
 * position's: it goes to position t1 - 1 of all. */
static bool run_span(Local *l, DiagEngine *d, const float *tok, int64_t T, int64_t t0, int64_t t1, float *all) {
    int64_t B = l->B, S = t1 - t0;
    if (!B && !rt_exec_expert_parallel(l->x)) return true; /* replicated experts: a rank without rows has no part in the step */
    float *t = malloc(sizeof(float) * (size_t)(B * S + 1)), *p = malloc(sizeof(float) * (size_t)(B * S + 1));
    if (!t || !p) {
        free(t);
        free(p);
        diag_error(d, (SrcLoc){0}, "out of host memory for %lld x %lld token ids", (long long)B, (long long)S);
        return false;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            t[b * S + s] = tok[b * T + t0 + s];
            p[b * S + s] = (float)(t0 + s);
        }
    CpuInput in[2] = {{"tokens", 2, {B, S}, t}, {"positions", 2, {B, S}, p}};
    bool ok = rt_exec_run(l->x, in, l->has_pos ? 2 : 1, d) && rt_world_check(l->world, d);
    int rank = 0;
    int64_t dims[IR_MAX_RANK];
    bool fetch = ok && B && !l->skip_logits; /* sampled on the device: the logits stay there */
    const float *lg = fetch ? rt_exec_output(l->x, "logits", &rank, dims) : NULL;
    if (fetch && (!lg || rank != 3 || dims[0] != B || (dims[1] != S && dims[1] != 1) || (l->V && dims[2] != l->V))) {
        diag_error(d, (SrcLoc){0}, "the model has no output 'logits' of shape [B, S, vocab] (or [B, 1, vocab]: the last position's)");
        ok = false;
    }
    int64_t n = fetch && ok ? dims[1] : S; /* positions with logits: the last n of the span */
    if (fetch && ok && n != S && l->all_positions) {
        diag_error(d, (SrcLoc){0}, "--dump-logits needs every position's logits, but the model gives only the last (logits_last_only)");
        ok = false;
    }
    if (fetch && ok && !l->V) l->V = dims[2]; /* the first span learns V (a rank without rows has no logits) */
    for (int64_t i = 0; fetch && ok && i < B * n * l->V; i++)
        if (isnan(lg[i])) { /* argmax would answer token 0: a silent wrong answer */
            diag_error(d, (SrcLoc){0}, "the logits of row %lld at position %lld are NaN (vocabulary entry %lld first)",
                       (long long)(i / (n * l->V)), (long long)(t1 - n + i / l->V % n), (long long)(i % l->V));
            l->nan = true;
            ok = false;
        }
    if (ok && !l->text && !l->logits && !(l->logits = malloc(sizeof(float) * (size_t)(B * l->T * l->V + 1)))) ok = false;
    if (fetch && ok && all)
        for (int64_t b = 0; b < B; b++)
            memcpy(all + (b * T + t1 - n) * l->V, lg + b * n * l->V, sizeof(float) * (size_t)(n * l->V));
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

/* The next token of each of the B rows of the last step into next[B]: drawn
 * on the device when the backend can (rt_exec_sample: no logits cross to
 * the host), else by the rows' host samplers from host[b * stride]. */
static bool draw_next(Local *l, DiagEngine *d, RunSampler *smp, int64_t B, const float *host, int64_t stride, int64_t *next) {
    if (!B) return true;
    if (l->dev_sample) {
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)B);
        RtSampling sp = run_sampling(&smp[0]);
        int64_t rows = 0;
        bool ok = ids && rt_exec_sample(l->x, &sp, (uint64_t)l->first, smp[0].draws, ids, &rows, d);
        if (ok && rows != B) {
            diag_error(d, (SrcLoc){0}, "internal: the device sampler drew %lld rows of %lld", (long long)rows, (long long)B);
            ok = false;
        }
        for (int64_t b = 0; ok && b < B; b++) next[b] = ids[b], smp[b].draws++;
        if (!ids) diag_error(d, (SrcLoc){0}, "out of host memory for sampling");
        l->nan |= !ok && ids; /* the sampler's failures are the device's or a NaN row: runtime failures */
        free(ids);
        return ok;
    }
    for (int64_t b = 0; b < B; b++)
        if ((next[b] = run_sample(&smp[b], host + b * stride, l->V)) < 0) {
            diag_error(d, (SrcLoc){0}, "out of host memory for sampling");
            return false;
        }
    return true;
}

static bool graph_has_input(const IrGraph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_INPUT && strcmp(ir_node_attr_str(g->nodes[i], "name", ""), name) == 0) return true;
    return false;
}

/* The prompt tok [B, T] (prefill P, then one token at a time), then
 * greedy continuation: fills l->logits and l->gen. Every rank runs the
 * same steps. */
static bool run_local(const RunArgs *r, Local *l, DiagEngine *d, const float *tok) {
    int64_t B = l->B, T = l->T, P = r->prefill ? r->prefill : T;
    if (!B && !rt_exec_expert_parallel(l->x)) return true; /* replicated experts: nothing to take part in */
    double t0 = driver_now();
    if (!run_span(l, d, tok, T, 0, P, NULL)) return false;
    int64_t fd[IR_MAX_RANK] = {0};
    const float *first = B ? rt_exec_output(l->x, "logits", &(int){0}, fd) : NULL;
    for (int64_t b = 0; b < B; b++) /* the last fd[1] of the P positions (all, or the last alone) */
        memcpy(l->logits + (b * T + P - fd[1]) * l->V, first + b * fd[1] * l->V, sizeof(float) * (size_t)(fd[1] * l->V));
    for (int64_t t = P; t < T; t++)
        if (!run_span(l, d, tok, T, t, t + 1, l->logits)) return false;
    l->tm.ttft_s = driver_now() - t0;
    l->tm.prefill_tokens = B * T;
    l->tm.prefill_tps = (double)(B * T) / (l->tm.ttft_s > 0 ? l->tm.ttft_s : 1e-9);
    int64_t G = r->generate, L = T + G;
    if (!G) return true;
    float *seq = malloc(sizeof(float) * (size_t)(B * L + 1));
    float *step = l->dev_sample ? NULL : malloc(sizeof(float) * (size_t)(B * L * l->V + 1)); /* the decode steps' logits */
    l->gen = malloc(sizeof(float) * (size_t)(B * G + 1));
    RunSampler *smp = calloc((size_t)B + 1, sizeof *smp);
    int64_t *next = malloc(sizeof(int64_t) * (size_t)(B + 1));
    bool ok = seq && (step || l->dev_sample) && l->gen && smp && next;
    for (int64_t b = 0; ok && b < B; b++) { /* row b's stream: its global row, whatever rank runs it */
        run_sampler_init(&smp[b], r->temperature, r->top_p, r->top_k, r->sample_seed, (uint64_t)(l->first + b));
        memcpy(seq + b * L, tok + b * T, sizeof(float) * (size_t)T);
    }
    ok = ok && draw_next(l, d, smp, B, l->logits + (T - 1) * l->V, T * l->V, next);
    for (int64_t b = 0; ok && b < B; b++) seq[b * L + T] = (float)next[b];
    double t1 = driver_now();
    l->skip_logits = l->dev_sample; /* decode steps: only the ids come back */
    for (int64_t t = T; ok && t + 1 < L; t++) {
        ok = run_span(l, d, seq, L, t, t + 1, step) && draw_next(l, d, smp, B, step ? step + t * l->V : NULL, L * l->V, next);
        for (int64_t b = 0; ok && b < B; b++) seq[b * L + t + 1] = (float)next[b];
    }
    l->skip_logits = false;
    l->tm.decode_tokens = B * (G - 1);
    double dt = driver_now() - t1;
    l->tm.decode_tps = (double)l->tm.decode_tokens / (dt > 0 ? dt : 1e-9);
    for (int64_t b = 0; ok && b < B; b++) memcpy(l->gen + b * G, seq + b * L + T, sizeof(float) * (size_t)G);
    for (int64_t b = 0; smp && b < B; b++) run_sampler_free(&smp[b]);
    free(smp);
    free(next);
    free(seq);
    free(step);
    if (!ok && !diag_error_count(d)) diag_error(d, (SrcLoc){0}, "out of host memory for the generated tokens");
    return ok;
}

/* What a rank sends rank 0: this header, then per row its next token, its
 * G generated tokens and (with --dump-logits) its logits [T, V], as floats
 * (token ids are exact below 2^24). */
typedef struct {
    int64_t rows;
    GpuCommBytes last, total; /* the exchanges' bytes (--stats) */
    int64_t weight_bytes, activation_bytes;
} RankHead;

static int64_t per_row(const RunArgs *r, int64_t T, int64_t V) { return 1 + r->generate + (r->dump ? T * V : 0); }

static char *pack_results(const RunArgs *r, const Local *l, int64_t rows, size_t *len) {
    int64_t G = r->generate, per = per_row(r, l->T, l->V);
    *len = sizeof(RankHead) + sizeof(float) * (size_t)(rows * per);
    char *out = malloc(*len);
    if (!out) return NULL;
    RankHead h = {.rows = rows, .weight_bytes = rt_exec_weight_bytes(l->x), .activation_bytes = rt_exec_activation_bytes(l->x)};
    rt_exec_comm_bytes(l->x, &h.last, &h.total);
    memcpy(out, &h, sizeof h);
    float *f = (float *)(out + sizeof h);
    for (int64_t b = 0; b < rows; b++) {
        float *o = f + b * per;
        o[0] = (float)argmax(l->logits + (b * l->T + l->T - 1) * l->V, l->V);
        if (G) memcpy(o + 1, l->gen + b * G, sizeof(float) * (size_t)G);
        if (r->dump) memcpy(o + 1 + G, l->logits + b * l->T * l->V, sizeof(float) * (size_t)(l->T * l->V));
    }
    return out;
}

static void print_stats(const RankHead *h, int W) {
    printf("per rank: bytes sent by the exchanges over all steps (last step in brackets), device memory\n"
           "%-5s %5s %24s %24s %24s %24s %16s %16s\n", "rank", "rows", "dispatch inter-node", "dispatch intra-node",
           "combine inter-node", "combine intra-node", "weights", "activations");
    for (int k = 0; k < W; k++) {
        const GpuCommBytes *t = &h[k].total, *l = &h[k].last;
        char c[4][40];
        int64_t tv[4] = {t->dispatch_inter, t->dispatch_intra, t->combine_inter, t->combine_intra};
        int64_t lv[4] = {l->dispatch_inter, l->dispatch_intra, l->combine_inter, l->combine_intra};
        for (int i = 0; i < 4; i++) snprintf(c[i], sizeof c[i], "%lld (%lld)", (long long)tv[i], (long long)lv[i]);
        printf("%-5d %5lld %24s %24s %24s %24s %16lld %16lld\n", k, (long long)h[k].rows, c[0], c[1], c[2], c[3],
               (long long)h[k].weight_bytes, (long long)h[k].activation_bytes);
    }
}

/* Rank 0: the ranks' results (rank order is row order) as rows [B, per]
 * and heads [W]; false after reporting a malformed part. */
static bool unpack_results(const RunArgs *r, DiagEngine *d, const char *all, const size_t *lens, int W, int64_t T, int64_t V,
                           float *rows, RankHead *heads) {
    int64_t per = per_row(r, T, V), at = 0;
    for (int k = 0; k < W; all += lens[k], k++) {
        memcpy(&heads[k], all, sizeof(RankHead));
        if (lens[k] != sizeof(RankHead) + sizeof(float) * (size_t)(heads[k].rows * per)) {
            diag_error(d, ((SrcLoc){0}), "rank %d sent %zu bytes of results for %lld rows", k, lens[k], (long long)heads[k].rows);
            return false;
        }
        memcpy(rows + at * per, all + sizeof(RankHead), lens[k] - sizeof(RankHead));
        at += heads[k].rows;
    }
    return true;
}

/* Rank 0: prints every row's results (all ranks', in row order) and dumps the logits. */
static int report(const RunArgs *r, DiagEngine *d, const float *all, int64_t B, int64_t T, int64_t V) {
    int64_t G = r->generate, per = per_row(r, T, V);
    for (int64_t b = 0; b < B; b++) printf("row %lld: next token %lld\n", (long long)b, (long long)all[b * per]);
    int rc = DSCC_EXIT_OK;
    if (r->dump) {
        float *lg = malloc(sizeof(float) * (size_t)(B * T * V));
        for (int64_t b = 0; lg && b < B; b++) memcpy(lg + b * T * V, all + b * per + 1 + G, sizeof(float) * (size_t)(T * V));
        int64_t shape[3] = {B, T, V};
        if (!lg || !rt_npy_write_f32(d, r->dump, lg, 3, shape)) rc = DSCC_EXIT_RUNTIME;
        free(lg);
    }
    for (int64_t b = 0; G && b < B; b++) {
        printf("row %lld generated:", (long long)b);
        for (int64_t t = 0; t < G; t++) printf(" %lld", (long long)all[b * per + 1 + t]);
        printf("\n");
    }
    return rc;
}

/* ---- one rank ---------------------------------------------------------------------- */

const char *driver_pipeline(Arena *a, bool fp8, int W, int nodes, int gpn, int64_t B, int64_t T, int64_t ctx, bool f32_storage) {
    int64_t cap = (B + W - 1) / W;
    PassPreset p = {.fp8 = fp8, .batch = cap, .seq = T, .ctx = ctx, .f32_storage = f32_storage};
    if (W > 1) {
        p.nodes = nodes;
        p.gpus_per_node = gpn;
        p.microbatches = cap >= 2 ? 2 : 0; /* unequal halves (padded) for an odd count; one row runs unsplit */
    }
    return pass_preset(a, "default", &p);
}

/* The model's graph for the logits a run reads: without --dump-logits
 * only each step's last position's (--set logits_last_only=true: the LM
 * head on one row of each sequence, not S), when the model declares that
 * parameter (fe_declares_param) and --set does not name it; a model
 * without it compiles as given. One compile either way. */
static IrGraph *compile_model(const RunArgs *r, Arena *a, DiagEngine *d, const char *model) {
    FeOptions fo = driver_fe_options(&r->mo);
    bool named = false, declared = false;
    for (int i = 0; i < fo.nsets; i++) named |= strcmp(fo.sets[i].name, "logits_last_only") == 0;
    if (!r->dump && !named && fe_declares_param(a, model, "logits_last_only", &declared) && declared) {
        FeSetting *sets = arena_alloc(a, sizeof(FeSetting) * (size_t)(fo.nsets + 1));
        if (fo.nsets) memcpy(sets, fo.sets, sizeof(FeSetting) * (size_t)fo.nsets);
        sets[fo.nsets] = (FeSetting){"logits_last_only", "true"};
        fo.sets = sets;
        fo.nsets++;
    }
    return fe_compile_file(a, d, model, &fo);
}

/* Compiles the model, reads the tokens and runs the passes; NULL after
 * reporting (*rc says why). */
static IrGraph *compile(RunArgs *r, Arena *a, DiagEngine *d, RtCheckpoint **ck, RtArray *tok, const RtRankInfo *ri, int nodes,
                        int gpn, int *rc) {
    *rc = DSCC_EXIT_INPUT;
    if (r->weights && !(*ck = rt_checkpoint_open(a, d, r->weights))) return NULL;
    if (*ck && !r->mo.config_path) r->mo.config_path = rt_checkpoint_config_path(*ck);
    if (!r->precision_given) { /* what the checkpoint's config.json (or, for random weights, --config) says: fp8 only when it says so */
        const char *cfg = *ck ? rt_checkpoint_config_path(*ck) : NULL;
        if (!cfg) cfg = r->mo.config_path;
        int fp8 = cfg ? run_config_fp8(a, d, cfg) : 0;
        if (fp8 < 0) return NULL;
        r->fp8 = fp8 == 1;
    }
    const char *model = driver_resolve_model(a, d, r->model); /* a path, or an installed model's name */
    IrGraph *g = model ? compile_model(r, a, d, model) : NULL;
    if (!g || ir_verify(g, d) || (r->tokens && !rt_npy_read(d, r->tokens, tok))) return NULL;
    if (tok->rank == 2 && tok->was_int && (tok->shape[0] < 1 || tok->shape[1] < 1)) {
        diag_error(d, ((SrcLoc){r->tokens, 0, 0}), "the token array is empty (shape [%lld, %lld]): give at least one row of at least one token id",
                   (long long)tok->shape[0], (long long)tok->shape[1]);
        return NULL;
    }
    if (tok->rank != 2 || !tok->was_int) {
        diag_error(d, ((SrcLoc){r->tokens, 0, 0}), "token ids must be an int32 or int64 array [B, T]");
        return NULL;
    }
    /* --precision picks the default pipeline; --passes replaces it. */
    int64_t B = tok->shape[0], W = ri->size;
    /* plan-memory at the executor's capacity: rows, new positions of a step, whole context */
    int64_t S = r->prefill ? r->prefill : tok->shape[1], ctx = tok->shape[1] + r->generate;
    const char *dflt = r->replicated ? driver_pipeline(a, r->fp8, 1, 1, 1, (B + W - 1) / W, S, ctx, r->f32_storage)
                                     : driver_pipeline(a, r->fp8, ri->size, nodes, gpn, B, S, ctx, r->f32_storage);
    if ((*rc = driver_run_passes(a, d, g, &r->po, dflt, false)) != DSCC_EXIT_OK) return NULL;
    *rc = DSCC_EXIT_INPUT;
    for (int i = 0; i < g->nnodes; i++) {
        const char *in = g->nodes[i]->op == IR_OP_INPUT ? ir_node_attr_str(g->nodes[i], "name", "") : NULL;
        if (in && strcmp(in, "tokens") && strcmp(in, "positions")) {
            diag_error(d, g->nodes[i]->loc, "input '%s' cannot be supplied by dscc run (it feeds tokens and positions)", in);
            return NULL;
        }
    }
    *rc = DSCC_EXIT_OK;
    return g;
}

/* The rank's rows of tok [B, T] (it may have none). */
static float *local_tokens(const RtArray *tok, int64_t first, int64_t rows) {
    int64_t T = tok->shape[1];
    float *t = calloc((size_t)(rows * T + 1), sizeof(float));
    if (t && rows) memcpy(t, tok->data + first * T, sizeof(float) * (size_t)(rows * T));
    return t;
}

/* The weights, precision, backend and device, then the timings. */
static void print_setup(const RunArgs *r, const Local *l, int device) {
    char dev[64];
    if (r->cuda) snprintf(dev, sizeof dev, "GPU %d", device);
    else if (r->threads) snprintf(dev, sizeof dev, "host CPU, %ld threads", r->threads);
    else snprintf(dev, sizeof dev, "host CPU, all cores");
    if (r->weights) fprintf(stderr, "weights %s, precision %s, backend %s, device %s\n", r->weights, r->fp8 ? "fp8" : "bf16",
                            r->cuda ? "cuda" : "cpu", dev);
    else fprintf(stderr, "weights random, seed %llu, precision %s, backend %s, device %s\n", (unsigned long long)r->seed,
                 r->fp8 ? "fp8" : "bf16", r->cuda ? "cuda" : "cpu", dev);
    const RunTimings *t = &l->tm;
    fprintf(stderr, "loading %.3f s, compiling %.3f s, time to first token %.3f s, prefill %lld tokens at %.1f tokens/s, "
                    "decode %lld tokens at %.1f tokens/s\n", t->load_s, t->compile_s, t->ttft_s, (long long)t->prefill_tokens,
            t->prefill_tps, (long long)t->decode_tokens, t->decode_tps);
}

static void print_summary(const RunArgs *r, Local *l, const RtRankInfo *ri, int nodes, int gpn, int64_t B, double secs) {
    int64_t P = r->prefill ? r->prefill : l->T;
    /* backend and precision: print_setup's line, which follows */
    fprintf(stderr, "ran %lld x %lld tokens (%s) in %.3f s\n", (long long)B, (long long)l->T,
            P == l->T ? "one forward" : "prefill + decode", secs);
    if (ri->size > 1)
        fprintf(stderr, "%d ranks (%d node%s x %d GPUs, launched by %s), batch rows split over them; routed experts %s\n", ri->size,
                nodes, nodes == 1 ? "" : "s", gpn, getenv("DSCC_LAUNCHED") ? "dscc run --nproc" : rt_launcher_name(ri->launcher),
                rt_exec_expert_parallel(l->x) ? "spread over the ranks (expert parallelism)"
                                              : "replicated: every rank holds and runs all of them");
    const char *step = rt_exec_last_step(l->x);
    if (*step) fprintf(stderr, "%s%s\n", ri->size > 1 ? "rank 0: " : "", step);
}

/* Runs this rank's rows, sends the results to rank 0, which prints them. */
static int execute(const RunArgs *r, Local *l, DiagEngine *d, const RtRankInfo *ri, const RtArray *tok, int nodes, int gpn) {
    int64_t B = tok->shape[0], first, rows;
    rt_world_rows(B, ri->rank, ri->size, &first, &rows);
    float *mine = local_tokens(tok, first, rows);
    double t0 = driver_now();
    bool got = mine != NULL, ok = got && run_local(r, l, d, mine);
    free(mine);
    if (!ok) {
        bool peer = l->world && !rt_world_check(l->world, d);
        rt_world_fail(l->world, "a step of the forward failed");
        return peer || !got || l->nan ? DSCC_EXIT_RUNTIME : DSCC_EXIT_INPUT;
    }
    double secs = driver_now() - t0;
    size_t len, *lens = calloc((size_t)ri->size, sizeof(size_t));
    char *packed = pack_results(r, l, rows, &len), *all = NULL;
    int timeout = l->world ? rt_world_ctx(l->world)->timeout_ms : 0;
    ok = packed && lens && rt_world_gather(l->world, d, ri, packed, len, (void **)&all, lens, timeout);
    free(packed);
    int rc = ok ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
    if (ok && ri->rank == 0) {
        float *res = malloc(sizeof(float) * (size_t)(B * per_row(r, l->T, l->V)) + 1);
        RankHead *heads = calloc((size_t)ri->size, sizeof *heads);
        rc = DSCC_EXIT_RUNTIME;
        if (res && heads && unpack_results(r, d, all, lens, ri->size, l->T, l->V, res, heads)) {
            rc = report(r, d, res, B, l->T, l->V);
            if (r->stats) print_stats(heads, ri->size);
            fflush(stdout);
            print_summary(r, l, ri, nodes, gpn, B, secs);
            print_setup(r, l, l->device);
        }
        free(res);
        free(heads);
    }
    free(lens);
    free(all);
    return rc;
}

/* ---- a prompt: text in, text out (one process) -------------------------------------- */

static char *read_stdin(void) {
    StrBuf sb;
    sb_init(&sb);
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, stdin)) > 0) sb_putn(&sb, buf, k);
    sb_putc(&sb, 0); /* NUL-terminated even when empty */
    return sb.data;
}

/* The prompt's ids as tok [1, n] (and the tokenizer); 0 or an exit code. */
static int prompt_tokens(const RunArgs *r, Arena *a, DiagEngine *d, RtTokenizer **tk, int32_t **ids, size_t *n, RtArray *tok) {
    if (r->chat) { /* compiled for the longest conversation; the turns bring their ids */
        if (!(*tk = rt_tok_load(d, r->tokenizer))) return DSCC_EXIT_INPUT;
        *tok = (RtArray){.rank = 2, .shape = {1, CHAT_CTX}, .numel = CHAT_CTX, .was_int = true, .data = calloc(1, sizeof(float))};
        return tok->data ? 0 : DSCC_EXIT_RUNTIME;
    }
    const char *text = r->prompt;
    char *in = NULL;
    size_t len;
    if (r->prompt_file && strcmp(r->prompt_file, "-") == 0) text = in = read_stdin();
    else if (r->prompt_file) text = read_file_text(a, d, r->prompt_file, &len);
    if (!text) return DSCC_EXIT_INPUT;
    bool ok = (*tk = rt_tok_load(d, r->tokenizer)) && run_prompt_ids(d, *tk, text, r->raw, ids, n);
    free(in);
    if (!ok) return DSCC_EXIT_INPUT;
    if (*n == 0) {
        diag_error(d, (SrcLoc){r->prompt_file, 0, 0}, "the prompt is empty: it has no tokens to start from");
        return DSCC_EXIT_INPUT;
    }
    *tok = (RtArray){.rank = 2, .shape = {1, (int64_t)*n}, .numel = (int64_t)*n, .was_int = true};
    if (!(tok->data = malloc(sizeof(float) * *n))) return DSCC_EXIT_RUNTIME;
    for (size_t i = 0; i < *n; i++) tok->data[i] = (float)(*ids)[i];
    return 0;
}

/* The prompt's ids on every rank: rank 0 alone reads and tokenizes them
 * (prompt_tokens); the others hear [n, the tokenizer's largest id] (n -1:
 * rank 0 failed and said why), then the n ids, and make tok from them
 * (--chat: its [1, CHAT_CTX] alone; the turns bring the ids). 0 or an exit code. */
static int shared_prompt(const RunArgs *r, Arena *a, DiagEngine *d, Local *l, RtTokenizer **tk, int32_t **ids, size_t *n, RtArray *tok,
                         int32_t *tok_max) {
    int rc = l->rank == 0 ? prompt_tokens(r, a, d, tk, ids, n, tok) : 0;
    int32_t head[2] = {rc ? -1 : (int32_t)*n, !rc && *tk ? rt_tok_max_id(*tk) : 0};
    if (l->world && !rt_world_bcast(l->world, d, head, 2, "sharing rank 0's prompt")) return DSCC_EXIT_RUNTIME;
    if (head[0] < 0) return rc ? rc : DSCC_EXIT_INPUT; /* rank 0 said why */
    *tok_max = head[1];
    if (!l->world) return 0;
    if (l->rank && r->chat) {
        *tok = (RtArray){.rank = 2, .shape = {1, CHAT_CTX}, .numel = CHAT_CTX, .was_int = true, .data = calloc(1, sizeof(float))};
        return tok->data ? 0 : DSCC_EXIT_RUNTIME;
    }
    if (r->chat) return 0;
    if (l->rank) {
        *n = (size_t)head[0];
        *tok = (RtArray){.rank = 2, .shape = {1, (int64_t)*n}, .numel = (int64_t)*n, .was_int = true};
        *ids = malloc(sizeof(int32_t) * *n);
        if (!*ids || !(tok->data = malloc(sizeof(float) * *n))) return DSCC_EXIT_RUNTIME;
    }
    if (!rt_world_bcast(l->world, d, *ids, *n, "sharing rank 0's prompt")) return DSCC_EXIT_RUNTIME;
    for (size_t i = 0; i < *n; i++) tok->data[i] = (float)(*ids)[i];
    return 0;
}

static const float *last_logits(Local *l) {
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *lg = rt_exec_output(l->x, "logits", &rank, dims);
    return lg + (dims[1] - 1) * l->V;
}

/* One generation: the token ids seq[0..T) of which the KV cache holds
 * [0, start), then sampling, streaming and stopping (eos, --stop,
 * --max-new-tokens). seq has room for T + --max-new-tokens ids; the tokens
 * generated follow the prompt there, and *fed gets how many positions
 * the cache then holds. The text in *st. */
typedef struct {
    int64_t ng, fed;
    const char *why; /* "eos", "stop", "length" */
} Turn;

/* Several ranks: rank 0 (which holds the row and the tokenizer) says what
 * comes next, every rank hears the same words and runs the same steps. */
enum { STEP_ON, STEP_EOS, STEP_STOP, STEP_FAIL };

static bool share_step(Local *l, DiagEngine *d, int64_t *next, int *code) {
    if (!l->world) return true;
    int32_t w[2] = {(int32_t)*next, *code};
    if (!rt_world_bcast(l->world, d, w, 2, "sharing rank 0's next token")) return false;
    *next = w[0];
    *code = w[1];
    return true;
}

/* Rank 0's verdict on a token: eos, the stop string, or on; STEP_FAIL after reporting. */
static int judge(DiagEngine *d, const RtTokenizer *tk, RunStream *st, int64_t next) {
    if (next == rt_tok_eos(tk)) return STEP_EOS;
    size_t plen;
    const char *piece = rt_tok_piece(tk, (int32_t)next, &plen);
    if (!piece) {
        diag_error(d, (SrcLoc){0}, "the model generated token %lld, which the tokenizer does not have", (long long)next);
        return STEP_FAIL;
    }
    run_stream_add(st, piece, plen);
    return st->stopped ? STEP_STOP : STEP_ON;
}

static bool generate_turn(const RunArgs *r, Local *l, DiagEngine *d, const RtTokenizer *tk, float *seq, int64_t T, int64_t start,
                          RunSampler *smp, RunStream *st, Turn *tu) {
    int64_t P = r->prefill && start + r->prefill < T ? start + r->prefill : T, G = r->generate, L = T + G, t = T;
    tu->ng = 0;
    tu->why = "length";
    double t0 = driver_now(), t1 = t0;
    l->skip_logits = l->dev_sample;
    bool ok = run_span(l, d, seq, L, start, P, NULL);
    for (int64_t i = P; ok && i < T; i++) ok = run_span(l, d, seq, L, i, i + 1, NULL);
    l->tm.prefill_tokens += T - start;
    l->tm.prefill_s += driver_now() - t0;
    l->tm.prefill_tps = (double)l->tm.prefill_tokens / fmax(l->tm.prefill_s, 1e-9);
    while (ok && tu->ng < G) {
        int64_t next = 0;
        int code = STEP_ON;
        if (l->B) { /* the rank that holds the row: rank 0 */
            ok = draw_next(l, d, smp, 1, l->dev_sample ? NULL : last_logits(l), 0, &next);
            code = ok ? judge(d, tk, st, next) : STEP_FAIL;
        }
        ok = share_step(l, d, &next, &code) && code != STEP_FAIL && ok;
        if (tu->ng == 0) l->tm.ttft_s = (t1 = driver_now()) - t0;
        if (!ok) break;
        tu->ng++;
        seq[t] = (float)next;
        if (code != STEP_ON) {
            tu->why = code == STEP_EOS ? "eos" : "stop";
            break;
        }
        if (tu->ng < G) ok = run_span(l, d, seq, L, t, t + 1, NULL), t++;
    }
    l->skip_logits = false;
    tu->fed = t;
    l->tm.decode_tokens += t - T;
    l->tm.decode_s += driver_now() - t1;
    l->tm.decode_tps = (double)l->tm.decode_tokens / fmax(l->tm.decode_s, 1e-9);
    return ok;
}

static const char *stop_name(const char *why) {
    return strcmp(why, "eos") == 0 ? "eos" : strcmp(why, "stop") == 0 ? "--stop" : "--max-new-tokens";
}

/* --prompt: one generation; the text streamed or the JSON object, then the summary. */
static int generate_text(const RunArgs *r, Local *l, DiagEngine *d, const RtTokenizer *tk, const int32_t *ids, int64_t T) {
    float *seq = malloc(sizeof(float) * (size_t)(T + r->generate + 1));
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(r->generate + 1));
    RunSampler smp;
    RunStream st;
    Turn tu = {0};
    run_sampler_init(&smp, r->temperature, r->top_p, r->top_k, r->sample_seed, 0);
    run_stream_init(&st, r->stop, r->json || l->rank ? NULL : stdout);
    bool ok = seq && out;
    for (int64_t i = 0; ok && i < T; i++) seq[i] = (float)ids[i];
    ok = ok && generate_turn(r, l, d, tk, seq, T, 0, &smp, &st, &tu);
    int rc = ok ? DSCC_EXIT_OK : l->nan || !seq || !out ? DSCC_EXIT_RUNTIME : DSCC_EXIT_INPUT;
    for (int64_t i = 0; ok && i < tu.ng; i++) out[i] = (int32_t)seq[T + i];
    if (l->rank) { /* rank 0 alone prints */
    } else if (ok && r->json) {
        if (!run_print_json(stdout, ids, (size_t)T, out, (size_t)tu.ng, st.text.data ? st.text.data : "", tu.why, &l->tm))
            rc = DSCC_EXIT_RUNTIME;
    } else if (ok) {
        run_stream_finish(&st);
        if (printf("\n") < 0 || fflush(stdout)) rc = DSCC_EXIT_RUNTIME;
    }
    if (ok && !l->rank) {
        fprintf(stderr, "generated %lld tokens (stopped by %s)\n", (long long)tu.ng, stop_name(tu.why));
        print_setup(r, l, l->device);
    }
    run_stream_free(&st);
    run_sampler_free(&smp);
    free(seq);
    free(out);
    return rc;
}

/* ---- --chat: a line per turn ------------------------------------------------------------ */

static char *read_line(FILE *f) { /* NULL at end of input; without its newline */
    StrBuf sb;
    sb_init(&sb);
    int c;
    while ((c = fgetc(f)) != EOF && c != '\n') sb_putc(&sb, (char)c);
    if (c == EOF && !sb.len) {
        sb_free(&sb);
        return NULL;
    }
    sb_putc(&sb, 0);
    if (sb.len > 1 && sb.data[sb.len - 2] == '\r') sb.data[sb.len - 2] = 0;
    return sb.data;
}

/* Several ranks: rank 0's chat turn reaches every rank: [T, keep] (T -1:
 * the input ended; -2: rank 0 failed and said why), then the T ids (on the
 * other ranks into *ids, malloc'd). */
static bool share_turn(Local *l, DiagEngine *d, int32_t head[2], int32_t **ids) {
    if (!l->world) return true;
    if (!rt_world_bcast(l->world, d, head, 2, "sharing rank 0's chat turn")) return false;
    if (head[0] <= 0) return true;
    if (l->rank && !(*ids = malloc(sizeof(int32_t) * (size_t)head[0]))) {
        diag_error(d, (SrcLoc){0}, "out of host memory for a conversation of %d tokens", head[0]);
        return false;
    }
    return rt_world_bcast(l->world, d, *ids, (size_t)head[0], "sharing rank 0's chat turn");
}

/* One turn: the whole conversation rendered; the ids the KV cache already
 * holds (a prefix of them) are not run again, otherwise it restarts. */
static bool chat_turn(const RunArgs *r, Local *l, DiagEngine *d, const RtTokenizer *tk, RtChatMessage *msgs, size_t n, float **seq,
                      int64_t *cached, RunSampler *smp) {
    char *text = rt_chat_render(d, rt_tok_chat_template(tk), msgs, n, rt_tok_bos_text(tk), rt_tok_eos_text(tk), true);
    int32_t *ids = NULL;
    size_t T = 0;
    bool ok = text && rt_tok_encode(tk, d, text, strlen(text), &ids, &T);
    free(text);
    float *s = ok ? realloc(*seq, sizeof(float) * (T + (size_t)r->generate + 1)) : NULL;
    if (ok && !s) diag_error(d, (SrcLoc){0}, "out of host memory for a conversation of %zu tokens", T);
    ok = s != NULL;
    if (ok) *seq = s;
    int64_t keep = 0;
    while (ok && keep < *cached && keep < (int64_t)T && (int32_t)s[keep] == ids[keep]) keep++;
    if (ok && (int64_t)T + r->generate > CHAT_CTX) {
        diag_error(d, (SrcLoc){0}, "the conversation has %zu tokens: with --max-new-tokens %ld it passes the %d positions --chat holds",
                   T, r->generate, CHAT_CTX);
        ok = false;
    }
    if (ok && keep < *cached) { /* the template renders the reply otherwise than its ids: start over */
        fprintf(stderr, "(the conversation's tokens differ from the cache after %lld of %lld: running all %zu again)\n", (long long)keep,
                (long long)*cached, T);
        rt_exec_reset(l->x);
        keep = 0;
    }
    if (ok && keep == (int64_t)T) keep = 0, rt_exec_reset(l->x); /* nothing new to run: the last position again */
    for (size_t i = 0; ok && i < T; i++) s[i] = (float)ids[i];
    int32_t head[2] = {ok ? (int32_t)T : -2, (int32_t)keep};
    ok = share_turn(l, d, head, &ids) && ok;
    free(ids);
    RunStream st;
    run_stream_init(&st, r->stop, stdout);
    Turn tu = {0};
    ok = ok && generate_turn(r, l, d, tk, s, (int64_t)T, keep, smp, &st, &tu);
    if (ok) {
        run_stream_finish(&st);
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "generated %lld tokens (stopped by %s; %lld of %zu prompt tokens from the cache)\n", (long long)tu.ng,
                stop_name(tu.why), (long long)keep, T);
        char *reply = run_utf8_valid(st.text.data ? st.text.data : ""); /* the history must encode again */
        msgs[n] = (RtChatMessage){"assistant", reply};
        *cached = tu.fed;
        if (!reply) diag_error(d, (SrcLoc){0}, "out of host memory for the conversation");
        ok = reply != NULL;
    }
    run_stream_free(&st);
    return ok;
}

/* The other ranks of a --chat: each turn as rank 0 shares it, until its input ends. */
static int chat_follow(const RunArgs *r, Local *l, DiagEngine *d) {
    float *seq = NULL;
    int64_t cached = 0;
    RunSampler smp; /* never drawn from: rank 0 holds the row */
    run_sampler_init(&smp, r->temperature, r->top_p, r->top_k, r->sample_seed, 0);
    int rc = DSCC_EXIT_OK;
    for (;;) {
        int32_t head[2] = {0, 0}, *ids = NULL;
        if (!share_turn(l, d, head, &ids)) {
            rc = DSCC_EXIT_RUNTIME;
            break;
        }
        if (head[0] <= 0) { /* the input ended (-1), or rank 0 failed and said why */
            rc = head[0] == -1 ? DSCC_EXIT_OK : DSCC_EXIT_INPUT;
            break;
        }
        int64_t T = head[0], keep = head[1];
        float *s = realloc(seq, sizeof(float) * (size_t)(T + r->generate + 1));
        if (s) seq = s;
        for (int64_t i = 0; s && i < T; i++) s[i] = (float)ids[i];
        free(ids);
        if (!s) {
            diag_error(d, (SrcLoc){0}, "out of host memory for a conversation of %lld tokens", (long long)T);
            rc = DSCC_EXIT_RUNTIME;
            break;
        }
        if (keep == 0 && cached) rt_exec_reset(l->x); /* rank 0 started over */
        RunStream st;
        run_stream_init(&st, NULL, NULL);
        Turn tu = {0};
        bool ok = generate_turn(r, l, d, NULL, seq, T, keep, &smp, &st, &tu);
        run_stream_free(&st);
        if (!ok) {
            rc = l->nan || diag_error_count(d) ? DSCC_EXIT_RUNTIME : DSCC_EXIT_INPUT;
            break;
        }
        cached = tu.fed;
    }
    free(seq);
    run_sampler_free(&smp);
    return rc;
}

static int chat(const RunArgs *r, Local *l, DiagEngine *d, const RtTokenizer *tk) {
    if (!rt_tok_chat_template(tk)) {
        diag_error(d, (SrcLoc){r->tokenizer, 0, 0}, "--chat needs the tokenizer's chat_template (tokenizer_config.json)");
        share_turn(l, d, (int32_t[2]){-2, 0}, NULL);
        return DSCC_EXIT_INPUT;
    }
    size_t n = 0, cap = 0;
    RtChatMessage *msgs = NULL;
    float *seq = NULL;
    int64_t cached = 0;
    RunSampler smp;
    run_sampler_init(&smp, r->temperature, r->top_p, r->top_k, r->sample_seed, 0);
    int rc = DSCC_EXIT_OK;
    char *line;
    while (rc == DSCC_EXIT_OK && (line = read_line(stdin))) {
        if (n + 2 > cap) {
            RtChatMessage *m = realloc(msgs, sizeof *m * (cap = cap * 2 + 8));
            if (!m) { free(line); rc = DSCC_EXIT_RUNTIME; break; }
            msgs = m;
        }
        msgs[n++] = (RtChatMessage){"user", line};
        if (!chat_turn(r, l, d, tk, msgs, n, &seq, &cached, &smp)) rc = l->nan ? DSCC_EXIT_RUNTIME : DSCC_EXIT_INPUT;
        else n++;
    }
    if (rc == DSCC_EXIT_OK && !share_turn(l, d, (int32_t[2]){-1, 0}, NULL)) rc = DSCC_EXIT_RUNTIME; /* the input ended: every rank stops */
    if (rc == DSCC_EXIT_OK) print_setup(r, l, l->device);
    for (size_t i = 0; i < n; i++) free((char *)msgs[i].content);
    free(msgs);
    free(seq);
    run_sampler_free(&smp);
    return rc;
}

/* Checks the world this process belongs to; 0 or an exit code. */
static int check_world(const RunArgs *r, DiagEngine *d, const RtRankInfo *ri, int *nodes, int *gpn) {
    if (ri->size > 1 && !r->cuda)
        return driver_usage_error("run", "rank %d of %d (%s): several ranks need --backend cuda (expert parallelism runs on GPUs "
                                         "over NCCL; the CPU reference is one process)", ri->rank, ri->size, rt_launcher_name(ri->launcher));
    if (ri->size > 1 && r->device_given)
        return driver_usage_error("run", "--device picks the GPU of one process; rank %d of %d drives GPU LOCAL_RANK (%d)", ri->rank,
                                  ri->size, ri->local_rank);
    if (ri->size == 1 && (r->nodes > 1 || r->gpn > 1))
        return driver_usage_error("run", "--nodes and --gpus-per-node describe several ranks: start them with --nproc N, torchrun, "
                                         "mpirun or srun");
    if (!rt_world_topology(d, ri, NULL, (int)r->nodes, (int)r->gpn, nodes, gpn)) return DSCC_EXIT_USAGE;
    return 0;
}

/* A file each rank writes: FILE.rankR.json for FILE.json when there are several. */
static const char *rank_path(Arena *a, const char *path, const RtRankInfo *ri) {
    if (!path || ri->size == 1) return path;
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return arena_printf(a, "%s.rank%d", path, ri->rank);
    return arena_printf(a, "%.*s.rank%d%s", (int)(dot - path), path, ri->rank, dot);
}

static int run_rank(RunArgs *r, Arena *a, DiagEngine *d) {
    RtRankInfo ri;
    int nodes = 1, gpn = 1, rc;
    if (!rt_rank_info(a, d, NULL, &ri)) return DSCC_EXIT_USAGE;
    if ((rc = check_world(r, d, &ri, &nodes, &gpn))) return rc;
    RtCheckpoint *ck = NULL;
    RtArray tok = {0};
    Local l = {0};
    RtTokenizer *tk = NULL;
    int32_t *ids = NULL, tok_max = -1;
    size_t nids = 0;
    int device = ri.size > 1 ? rt_world_device(&ri, NULL) : (int)r->device;
    l.rank = ri.rank;
    /* a prompt: rank 0 reads it, the world it joins first hears it (the steps follow from its length) */
    if (!r->tokens && ri.size > 1 && !(l.world = rt_world_join(d, &ri, nodes, gpn, device, r->timeout_ms))) {
        rc = DSCC_EXIT_RUNTIME;
        goto done;
    }
    if (!r->tokens && (rc = shared_prompt(r, a, d, &l, &tk, &ids, &nids, &tok, &tok_max))) goto done;
    double tc = driver_now();
    IrGraph *g = compile(r, a, d, &ck, &tok, &ri, nodes, gpn, &rc);
    l.tm.compile_s = driver_now() - tc;
    if (!g) goto done;
    /* every rank stops; rank 0 says why */
    if (!r->tokens && tok_max > 0 && !driver_check_vocab(ri.rank == 0 ? d : diag_new(a, NULL), r->tokenizer, tok_max, g)) {
        rc = DSCC_EXIT_INPUT;
        goto done;
    }
    int64_t B = tok.shape[0], T = tok.shape[1], cap = (B + ri.size - 1) / ri.size;
    rc = DSCC_EXIT_RUNTIME;
    if (ri.size > 1 && !l.world && !(l.world = rt_world_join(d, &ri, nodes, gpn, device, r->timeout_ms))) goto done;
    Progress prog = {.inner = ck ? (CpuWeightSource){rt_checkpoint_read_f32, ck} : cpu_random_weights(&r->seed),
                     .total = count_tensors(g), .tty = isatty(2) && !r->cuda && ri.rank == 0};
    CpuWeightSource ws = {progress_load, &prog};
    RtExecOptions eo = {.backend = r->cuda ? RT_BACKEND_CUDA : RT_BACKEND_CPU, .threads = (int)r->threads, .device = device,
                        .max_batch = cap, .max_seq = r->prefill ? r->prefill : T, .max_ctx = T + r->generate, .trace = rank_path(a, r->trace, &ri),
                        .trace_steps = (int)r->trace_steps,
                        .f32_storage = r->f32_storage, .graphs = true, .tune = &driver_tune,
                        .dist = l.world && !r->replicated ? rt_world_ctx(l.world) : NULL};
    double tl = driver_now();
    l.x = rt_exec_new(g, &ws, &eo, d);
    l.tm.load_s = driver_now() - tl;
    if (!l.x) { /* the CPU's failures are the weights' (shape, file); the GPU's also memory */
        rc = r->cuda ? DSCC_EXIT_RUNTIME : DSCC_EXIT_INPUT;
        rt_world_fail(l.world, "the executor could not be made");
        goto done;
    }
    /* Ranks finish loading at their own pace (the full V3: minutes); the first exchange must not time out on a slow one. */
    if (l.world && !rt_world_barrier(l.world, d, "waiting for every rank to load its weights", r->timeout_ms + LOAD_SLACK_MS)) goto done;
    l.has_pos = graph_has_input(g, "positions");
    l.T = T;
    rt_world_rows(B, ri.rank, ri.size, &l.first, &l.B);
    l.device = device;
    /* A rank without rows runs empty steps: the executor still serves its experts in every exchange. */
    l.text = !r->tokens;
    l.all_positions = r->dump != NULL;
    l.dev_sample = rt_exec_samples(l.x); /* the GPU draws the tokens: only their ids come back */
    rc = r->chat ? (ri.rank ? chat_follow(r, &l, d) : chat(r, &l, d, tk))
         : l.text ? generate_text(r, &l, d, tk, ids, T) : execute(r, &l, d, &ri, &tok, nodes, gpn);
done:
    rt_exec_free(l.x);
    if (!rt_world_leave(l.world, d, rc == DSCC_EXIT_OK) && rc == DSCC_EXIT_OK) rc = DSCC_EXIT_RUNTIME;
    if (rc != DSCC_EXIT_OK && ri.size > 1)
        fprintf(stderr, "dscc run: rank %d of %d stops with exit code %d\n", ri.rank, ri.size, rc);
    free(l.logits);
    free(l.gen);
    free(tok.data);
    free(ids);
    rt_tok_free(tk);
    rt_checkpoint_close(ck);
    return rc;
}

/* ---- --nproc: the launcher ------------------------------------------------------------- */

static int launch_ranks(const RunArgs *r, Arena *a, DiagEngine *d, int argc, char **argv) {
    RtRankInfo outer;
    if (!rt_rank_info(a, d, NULL, &outer)) return DSCC_EXIT_USAGE;
    if (outer.size > 1)
        return driver_usage_error("run", "--nproc starts the ranks itself, but %s already made this process rank %d of %d: drop --nproc",
                                  rt_launcher_name(outer.launcher), outer.rank, outer.size);
    RtRankInfo world = {.size = (int)r->nproc};
    const char *none[] = {NULL};
    int nodes, gpn;
    if (!rt_world_topology(d, &world, none, (int)r->nodes, (int)r->gpn, &nodes, &gpn)) return DSCC_EXIT_USAGE;
    int n;
    char **rest = rt_launch_strip_option(a, argc, argv, "--nproc", true, &n);
    char **child = arena_alloc(a, sizeof(char *) * (size_t)(n + 2));
    child[0] = "dscc";
    memcpy(child + 1, rest, sizeof(char *) * (size_t)(n + 1));
    bool reads = r->chat || (r->prompt_file && strcmp(r->prompt_file, "-") == 0); /* rank 0 reads the prompt from our stdin */
    RtLaunchOptions o = {.nproc = (int)r->nproc, .exe = "/proc/self/exe", .argv = child, .stdin_rank0 = reads};
    RtLaunchResult res;
    if (rt_launch(d, &o, &res)) return DSCC_EXIT_OK;
    /* A rank's own input or usage error (every rank meets it) keeps its code; anything else is a runtime failure. */
    int code = res.exit_code;
    return code == DSCC_EXIT_INPUT || code == DSCC_EXIT_USAGE ? code : DSCC_EXIT_RUNTIME;
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
    if (r.speculative) { /* the MTP module as a draft model: speculative.c drives both step graphs */
        const char *cfg = r.mo.config_path ? r.mo.config_path : r.weights ? arena_printf(a, "%s/config.json", r.weights) : NULL;
        int fp8 = r.precision_given ? r.fp8 : cfg ? run_config_fp8(a, d, cfg) : 0; /* as compile() decides */
        const char *model = fp8 < 0 ? NULL : driver_resolve_model(a, d, r.model);
        RtTokenizer *tk = NULL;
        int32_t *ids = NULL;
        size_t nids = 0;
        RtArray prompt = {0};
        rc = model ? 0 : DSCC_EXIT_INPUT;
        if (!rc && !r.tokens) rc = prompt_tokens(&r, a, d, &tk, &ids, &nids, &prompt);
        SpecArgs sa = {model, r.mo, &r.po, r.weights, r.seed, r.tokens, tk ? &prompt : NULL, tk, r.tokenizer, r.stop, r.json, fp8 == 1,
                       r.cuda, r.f32_storage, r.device, r.threads, r.generate, true, r.temperature, r.sample_seed, r.trace,
                       (int)r.trace_steps};
        if (!rc) rc = spec_run_mtp(&sa);
        rt_tok_free(tk);
        free(ids);
        free(prompt.data);
        arena_free(a);
        return rc;
    }
    rc = r.nproc ? launch_ranks(&r, a, d, argc, argv) : run_rank(&r, a, d);
    arena_free(a);
    return rc;
}
