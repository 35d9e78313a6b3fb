/* cmd_stats.c — `dscc stats`: figures computed by walking the lowered graph
 * (ir_stats_compute), printed as a table or as JSON. Nothing here knows the
 * model: a row per layer kind is whatever the outermost DSL function was. */
#include "tools/dscc/driver.h"
#include "tools/dscc/models.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_CONFIG = 256, OPT_SET, OPT_SEQ, OPT_JSON };

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
               "  -o, --output FILE  write there instead of standard output\n"
               "  -h, --help         show this help\n\n"
               "FLOPs count 2 per multiply-add of linear, einsum, expert_linear and attention\n"
               "(causal: only the visible keys) and 1 per output element of other ops.\n\n"
               "exit codes: 0 ok, 1 error in the input, 2 usage, 3 cannot write output\n");
}

/* 671026419200 -> "671,026,419,200" */
static void put_grouped(StrBuf *sb, int64_t v) {
    char digits[32];
    /* the magnitude as unsigned: -INT64_MIN does not fit int64 */
    snprintf(digits, sizeof digits, "%llu", v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
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

static void render_json(const IrGraph *g, const char *path, int64_t seq, const IrStats *st, StrBuf *sb) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", g->name);
    cJSON_AddStringToObject(root, "file", path);
    cJSON_AddNumberToObject(root, "batch", 1);
    cJSON_AddNumberToObject(root, "seq", (double)seq);
    cJSON *rows = cJSON_AddArrayToObject(root, "by_kind");
    for (int i = 0; i < st->nrows; i++) cJSON_AddItemToArray(rows, row_json(&st->rows[i]));
    cJSON_AddItemToObject(root, "total", row_json(&st->total));
    char *text = cJSON_Print(root);
    sb_puts(sb, text);
    sb_putc(sb, '\n');
    free(text);
    cJSON_Delete(root);
}

int cmd_stats(int argc, char **argv) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, OPT_CONFIG}, {"set", required_argument, 0, OPT_SET},
        {"seq", required_argument, 0, OPT_SEQ},       {"json", no_argument, 0, OPT_JSON},
        {"output", required_argument, 0, 'o'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    Arena *a = arena_new();
    ModelOpts mo = {0};
    int64_t seq = 4096;
    bool json = false;
    const char *out = NULL;
    int c, rc = DSCC_EXIT_OK;
    optind = 1;
    opterr = 0;
    while (rc == DSCC_EXIT_OK && (c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'h': stats_help(stdout); arena_free(a); return DSCC_EXIT_OK;
        case OPT_CONFIG: mo.config_path = optarg; break;
        case OPT_SET: if (!driver_add_set(a, &mo, optarg)) rc = DSCC_EXIT_USAGE; break;
        case OPT_SEQ:
            seq = strtoll(optarg, &end, 10);
            if (*optarg == 0 || *end || seq < 1 || seq > (1LL << 24))
                rc = driver_usage_error("stats", "--seq expects an integer in 1..16777216, got '%s'", optarg);
            break;
        case OPT_JSON: json = true; break;
        case 'o': out = optarg; break;
        case ':': rc = driver_usage_error("stats", "option '%s' needs a value", argv[optind - 1]); break;
        default: rc = driver_usage_error("stats", "unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (rc == DSCC_EXIT_OK && optind != argc - 1)
        rc = driver_usage_error("stats", optind >= argc ? "missing MODEL (a .dsl file or a model name)" : "expected one model");
    if (rc != DSCC_EXIT_OK) {
        arena_free(a);
        return rc;
    }
    DiagEngine *d = diag_new(a, stderr);
    FeOptions fo = driver_fe_options(&mo);
    const char *path = driver_resolve_model(a, d, argv[optind]);
    IrGraph *g = path ? fe_compile_file(a, d, path, &fo) : NULL;
    IrStats st;
    rc = DSCC_EXIT_INPUT;
    if (g && diag_error_count(d) == 0 && ir_verify(g, d) == 0 && ir_stats_compute(g, d, seq, &st)) {
        StrBuf sb;
        sb_init(&sb);
        if (json) render_json(g, path, seq, &st, &sb);
        else render_table(g, path, seq, &st, &sb);
        rc = driver_write_output(out, sb.data, sb.len) ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
        sb_free(&sb);
    }
    arena_free(a);
    return rc;
}
