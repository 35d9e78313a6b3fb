/* cmd_stats.c — `dscc stats`: figures computed by walking the lowered graph
 * (ir_stats_compute), printed as a table or as JSON. Nothing here knows the
 * model: a row per layer kind is whatever the outermost DSL function was.
 * With --nodes / --gpus-per-node it also runs `dscc run`'s pipeline for
 * that topology and reports what one GPU holds (ir_stats_memory). */
#include "tools/dscc/driver.h"
#include "tools/dscc/models.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_CONFIG = 256, OPT_SET, OPT_SEQ, OPT_JSON, OPT_NODES, OPT_GPN, OPT_BATCH, OPT_PRECISION };

static void stats_help(FILE *o) {
    fprintf(o, "usage: dscc stats MODEL [options]\n\n"
               "Compile MODEL (a .dsl file or an installed model's name, as for compile)\n"
               "and report, from the graph: parameters, parameters activated per token\n"
               "(routed experts count k of E), KV-cache bytes per token\n"
               "(for the cache layout the model declares) and forward FLOPs per token at\n"
               "sequence length N (batch 1, one causal forward of N tokens), broken down by\n"
               "layer kind (the outermost DSL function each op was created in).\n\n"
               "options:\n"
               "  --config FILE      bind parameters from a Hugging Face config.json\n"
               "  --set NAME=VALUE   set a parameter (repeatable; overrides --config)\n"
               "  --seq N            sequence length for FLOPs (default 4096)\n"
               "  --json             print JSON instead of a table\n"
               "  --nodes M          also: memory per GPU with the experts spread over M nodes\n"
               "  --gpus-per-node G  of G GPUs each (default 8 with --nodes, 1 node with this)\n"
               "  --batch B          rows of the whole batch for the activation slab (default 1;\n"
               "                     each GPU runs B / (M x G) of them, rounded up)\n"
               "  --precision fp8|bf16  the run pipeline with or without fp8-quant (default fp8)\n"
               "  -o, --output FILE  write there instead of standard output\n"
               "  -h, --help         show this help\n\n"
               "FLOPs count 2 per multiply-add of linear, einsum, expert_linear and attention\n"
               "(causal: only the visible keys) and 1 per output element of other ops.\n"
               "Memory per GPU: every weight in its stored dtype (FP8 codes with their f32\n"
               "block scales), routed experts (stacked weights) only this GPU's share; KV\n"
               "cache bytes per token of this GPU's rows; the activation slab plan-memory lays\n"
               "out for this GPU's rows and --seq new positions in `dscc run`'s pipeline.\n\n"
               "exit codes: 0 ok, 1 error in the input, 2 usage, 3 cannot write output\n");
}

/* 671026419200 -> "671,026,419,200" */
static void put_grouped(StrBuf *sb, int64_t v) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    if (v < 0) sb_putc(sb, '-');
    size_t n = strlen(digits);
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) sb_putc(sb, ',');
        sb_putc(sb, digits[i]);
    }
}

static void put_cell(StrBuf *sb, int64_t v, int width) {
    StrBuf t;
    sb_init(&t);
    put_grouped(&t, v);
    sb_printf(sb, "%*s", width, t.data);
    sb_free(&t);
}

/* 108062000000 -> "108.06G" (or "108.06B" for a count of things) */
static const char *human(char *buf, size_t n, double v, bool count) {
    static const char *si[] = {"", "K", "M", "G", "T", "P"}, *counts[] = {"", "K", "M", "B", "T", "P"};
    const char **units = count ? counts : si;
    int u = 0;
    while (v >= 999.995 && u < 5) {
        v /= 1000;
        u++;
    }
    snprintf(buf, n, u ? "%.2f%s" : "%.0f%s", v, units[u]);
    return buf;
}

static void put_row(StrBuf *sb, const IrStatsRow *r) {
    char buf[32];
    sb_printf(sb, "%-16s", r->kind);
    put_cell(sb, r->params, 20);
    put_cell(sb, (int64_t)(r->active_params + 0.5), 20);
    sb_printf(sb, "%14s", human(buf, sizeof buf, r->flops_per_token, false));
    put_cell(sb, r->kv_bytes_per_token, 16);
    put_cell(sb, r->nodes, 8);
    sb_putc(sb, '\n');
}

static void render_table(const IrGraph *g, const char *path, int64_t seq, const IrStats *st, StrBuf *sb) {
    sb_printf(sb, "model %s (%s), batch 1, sequence %lld\n\n", g->name, path, (long long)seq);
    sb_printf(sb, "%-16s%20s%20s%14s%16s%8s\n", "kind", "params", "active/token", "FLOP/token",
              "KV bytes/token", "nodes");
    for (int i = 0; i < st->nrows; i++) put_row(sb, &st->rows[i]);
    put_row(sb, &st->total);
    char b[32];
    sb_printf(sb, "\nparameters:            %s\n", human(b, sizeof b, (double)st->total.params, true));
    sb_printf(sb, "activated per token:   %s\n", human(b, sizeof b, st->total.active_params, true));
    sb_printf(sb, "KV cache per token:    %lld bytes\n", (long long)st->total.kv_bytes_per_token);
    sb_printf(sb, "forward per token:     %s FLOP at sequence %lld\n", human(b, sizeof b, st->total.flops_per_token, false),
              (long long)seq);
}

static cJSON *row_json(const IrStatsRow *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", r->kind);
    cJSON_AddNumberToObject(o, "params", (double)r->params);
    cJSON_AddNumberToObject(o, "active_params_per_token", r->active_params);
    cJSON_AddNumberToObject(o, "flops_per_token", r->flops_per_token);
    cJSON_AddNumberToObject(o, "kv_bytes_per_token", (double)r->kv_bytes_per_token);
    cJSON_AddNumberToObject(o, "nodes", (double)r->nodes);
    return o;
}

static void render_json(const IrGraph *g, const char *path, int64_t seq, const IrStats *st, cJSON *gpu, StrBuf *sb) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", g->name);
    cJSON_AddStringToObject(root, "file", path);
    cJSON_AddNumberToObject(root, "batch", 1);
    cJSON_AddNumberToObject(root, "seq", (double)seq);
    cJSON *rows = cJSON_AddArrayToObject(root, "by_kind");
    for (int i = 0; i < st->nrows; i++) cJSON_AddItemToArray(rows, row_json(&st->rows[i]));
    cJSON_AddItemToObject(root, "total", row_json(&st->total));
    if (gpu) cJSON_AddItemToObject(root, "per_gpu", gpu);
    char *text = cJSON_Print(root);
    sb_puts(sb, text);
    sb_putc(sb, '\n');
    free(text);
    cJSON_Delete(root);
}

/* What one GPU holds (--nodes / --gpus-per-node). */
typedef struct {
    int nodes, gpn;
    bool fp8;
    int64_t batch, rows, seq; /* the whole batch, this GPU's rows, new positions */
    int64_t kv_per_token;
    IrMemStats m;
} GpuMem;

static int64_t gpu_total(const GpuMem *g) {
    return g->m.replicated_bytes + g->m.expert_bytes + g->kv_per_token * g->rows * g->seq + g->m.activation_bytes;
}

static void put_bytes(StrBuf *sb, const char *label, int64_t v, const char *rest) {
    sb_printf(sb, "  %-20s", label);
    put_grouped(sb, v);
    sb_printf(sb, " bytes (%.2f GB)%s\n", (double)v / 1e9, rest);
}

static void render_gpu_table(const GpuMem *g, StrBuf *sb) {
    char rest[160];
    sb_printf(sb, "\nper GPU: %d node%s x %d GPUs, precision %s, batch %lld (%lld row%s per GPU), sequence %lld\n", g->nodes,
              g->nodes == 1 ? "" : "s", g->gpn, g->fp8 ? "fp8" : "bf16", (long long)g->batch, (long long)g->rows,
              g->rows == 1 ? "" : "s", (long long)g->seq);
    snprintf(rest, sizeof rest, ": replicated %.2f GB + routed experts %.2f GB (%lld of %lld per GPU)",
             (double)g->m.replicated_bytes / 1e9, (double)g->m.expert_bytes / 1e9, (long long)g->m.experts_per_gpu,
             (long long)g->m.experts);
    put_bytes(sb, "weights:", g->m.replicated_bytes + g->m.expert_bytes, rest);
    sb_printf(sb, "  %-20s", "KV cache per token:");
    put_grouped(sb, g->kv_per_token);
    sb_printf(sb, " bytes\n");
    snprintf(rest, sizeof rest, " for %lld row%s x %lld positions", (long long)g->rows, g->rows == 1 ? "" : "s", (long long)g->seq);
    put_bytes(sb, "KV cache:", g->kv_per_token * g->rows * g->seq, rest);
    put_bytes(sb, "activation slab:", g->m.activation_bytes, " (plan-memory)");
    put_bytes(sb, "total:", gpu_total(g), "");
}

static cJSON *gpu_json(const GpuMem *g) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "nodes", g->nodes);
    cJSON_AddNumberToObject(o, "gpus_per_node", g->gpn);
    cJSON_AddStringToObject(o, "precision", g->fp8 ? "fp8" : "bf16");
    cJSON_AddNumberToObject(o, "batch", (double)g->batch);
    cJSON_AddNumberToObject(o, "rows_per_gpu", (double)g->rows);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)(g->m.replicated_bytes + g->m.expert_bytes));
    cJSON_AddNumberToObject(o, "replicated_weight_bytes", (double)g->m.replicated_bytes);
    cJSON_AddNumberToObject(o, "expert_weight_bytes", (double)g->m.expert_bytes);
    cJSON_AddNumberToObject(o, "experts_per_gpu", (double)g->m.experts_per_gpu);
    cJSON_AddNumberToObject(o, "kv_bytes_per_token", (double)g->kv_per_token);
    cJSON_AddNumberToObject(o, "kv_bytes", (double)(g->kv_per_token * g->rows * g->seq));
    cJSON_AddNumberToObject(o, "activation_bytes", (double)g->m.activation_bytes);
    cJSON_AddNumberToObject(o, "total_bytes", (double)gpu_total(g));
    return o;
}

/* Runs `dscc run`'s pipeline for the topology on g and measures one GPU. */
static int measure_gpu(Arena *a, DiagEngine *d, IrGraph *g, GpuMem *gm) {
    int W = gm->nodes * gm->gpn;
    gm->rows = (gm->batch + W - 1) / W;
    PassOpts po = {0};
    int rc = driver_run_passes(a, d, g, &po, driver_pipeline(a, gm->fp8, W, gm->nodes, gm->gpn, gm->batch, gm->seq, 0, false), false);
    if (rc != DSCC_EXIT_OK) return rc;
    return ir_stats_memory(g, d, W, gm->rows, gm->seq, 0, &gm->m) ? DSCC_EXIT_OK : DSCC_EXIT_INPUT;
}

typedef struct {
    ModelOpts mo;
    int64_t seq;
    bool json;
    const char *out;
    long nodes, gpn; /* 0: not given */
    int64_t batch;
    bool fp8;
} StatsArgs;

static bool parse_int(const char *opt, const char *v, long long lo, long long hi, int64_t *out) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        driver_usage_error("stats", "%s expects an integer in %lld..%lld, got '%s'", opt, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

/* 0, -1 after --help, or an exit code. */
static int parse_stats_args(int argc, char **argv, Arena *a, StatsArgs *s) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, OPT_CONFIG}, {"set", required_argument, 0, OPT_SET},
        {"seq", required_argument, 0, OPT_SEQ},       {"json", no_argument, 0, OPT_JSON},
        {"output", required_argument, 0, 'o'},        {"help", no_argument, 0, 'h'},
        {"nodes", required_argument, 0, OPT_NODES},   {"gpus-per-node", required_argument, 0, OPT_GPN},
        {"batch", required_argument, 0, OPT_BATCH},   {"precision", required_argument, 0, OPT_PRECISION},
        {0, 0, 0, 0}};
    *s = (StatsArgs){.seq = 4096, .batch = 1, .fp8 = true};
    int64_t v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': stats_help(stdout); return -1;
        case OPT_CONFIG: s->mo.config_path = optarg; break;
        case OPT_SET: if (!driver_add_set(a, &s->mo, optarg)) return DSCC_EXIT_USAGE; break;
        case OPT_SEQ: if (!parse_int("--seq", optarg, 1, 1LL << 24, &s->seq)) return DSCC_EXIT_USAGE; break;
        case OPT_JSON: s->json = true; break;
        case 'o': s->out = optarg; break;
        case OPT_NODES: if (!parse_int("--nodes", optarg, 1, 4096, &v)) return DSCC_EXIT_USAGE; s->nodes = (long)v; break;
        case OPT_GPN: if (!parse_int("--gpus-per-node", optarg, 1, 4096, &v)) return DSCC_EXIT_USAGE; s->gpn = (long)v; break;
        case OPT_BATCH: if (!parse_int("--batch", optarg, 1, 1LL << 24, &s->batch)) return DSCC_EXIT_USAGE; break;
        case OPT_PRECISION:
            if (strcmp(optarg, "fp8") && strcmp(optarg, "bf16"))
                return driver_usage_error("stats", "--precision expects fp8 or bf16, got '%s'", optarg);
            s->fp8 = strcmp(optarg, "fp8") == 0;
            break;
        case ':': return driver_usage_error("stats", "option '%s' needs a value", argv[optind - 1]);
        default: return driver_usage_error("stats", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return driver_usage_error("stats", optind >= argc ? "missing MODEL (a .dsl file or a model name)" : "expected one model");
    return 0;
}

int cmd_stats(int argc, char **argv) {
    Arena *a = arena_new();
    StatsArgs sa;
    int rc = parse_stats_args(argc, argv, a, &sa);
    if (rc) {
        arena_free(a);
        return rc < 0 ? DSCC_EXIT_OK : rc;
    }
    DiagEngine *d = diag_new(a, stderr);
    FeOptions fo = driver_fe_options(&sa.mo);
    const char *path = driver_resolve_model(a, d, argv[optind]);
    IrGraph *g = path ? fe_compile_file(a, d, path, &fo) : NULL;
    IrStats st;
    bool per_gpu = sa.nodes || sa.gpn;
    GpuMem gm = {.nodes = sa.nodes ? (int)sa.nodes : 1, .gpn = sa.gpn ? (int)sa.gpn : sa.nodes ? 8 : 1, .fp8 = sa.fp8,
                 .batch = sa.batch, .seq = sa.seq};
    rc = DSCC_EXIT_INPUT;
    if (!g || diag_error_count(d) || ir_verify(g, d) || !ir_stats_compute(g, d, sa.seq, &st)) goto done;
    gm.kv_per_token = st.total.kv_bytes_per_token; /* each GPU caches its own rows: the model's figure */
    if (per_gpu && (rc = measure_gpu(a, d, g, &gm)) != DSCC_EXIT_OK) goto done;
    StrBuf sb;
    sb_init(&sb);
    if (sa.json) render_json(g, path, sa.seq, &st, per_gpu ? gpu_json(&gm) : NULL, &sb);
    else {
        render_table(g, path, sa.seq, &st, &sb);
        if (per_gpu) render_gpu_table(&gm, &sb);
    }
    rc = driver_write_output(sa.out, sb.data, sb.len) ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
    sb_free(&sb);
done:
    arena_free(a);
    return rc;
}
