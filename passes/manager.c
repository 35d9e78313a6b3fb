/* manager.c — the pass table, pipeline strings, and running a pipeline
 * with the instrumentation users know from LLVM and MLIR: print before or
 * after a pass, after every pass or only after changes, a numbered dump
 * file per pass (written as -o writes: support's file_write), timings,
 * and the verifier after each pass. */
#include "passes/passes.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const PassInfo pass_table[] = {
    {"shape-infer", "re-derive every inferred type from the operands", "", pass_shape_infer},
    {"fold-constants", "evaluate elementwise ops on scalar constants", "", pass_fold_constants},
    {"dce", "remove ops whose values reach no output or cache", "", pass_dce},
    {"cse", "merge ops that compute the same value from the same operands", "", pass_cse},
    {"fp8-quant", "DeepSeek-V3 FP8: linears on low-precision activations become 1x128-tile / 128x128-block FP8 GEMMs",
     "act-tile=128,weight-block=128,exclude=\"\"", pass_fp8_quant},
    {"merge-linears", "FP8 linears reading the same input become one GEMM over their concatenated weights (q_a + kv_a, gate + up)",
     "", pass_merge_linears},
    {"node-limited-routing", "place experts on nodes x GPUs, cap the nodes a token reaches, two-hop dispatch/combine",
     "nodes=1,gpus-per-node=1,max-nodes=0", pass_routing},
    {"microbatch-overlap", "split the batch into micro-batches; compute on stream 0 overlaps dispatch/combine on stream 1",
     "n=2", pass_overlap},
    {"fuse", "group elementwise, norm, rope and quantize ops with their producers into kernels", "", pass_fuse},
    {"plan-memory", "liveness-based offsets in one activation slab for a given batch and sequence",
     "batch=1,seq=4096,ctx=0,f32-storage=0", pass_plan_memory},
};
const int pass_count = (int)(sizeof pass_table / sizeof pass_table[0]);

/* The presets' pieces, in pipeline order: pass_default_pipeline and
 * pass_preset are both spelled from these. */
#define PRESET_HEAD "shape-infer,fold-constants,dce"
#define PRESET_FP8 ",fp8-quant"
#define PRESET_CLEAN ",cse,dce"
#define PRESET_MERGE ",merge-linears"
#define PRESET_ROUTE ",node-limited-routing"
#define PRESET_OVERLAP ",microbatch-overlap"
#define PRESET_FUSE ",fuse"
#define PRESET_PLAN ",plan-memory"

const char *pass_default_pipeline(void) { return PRESET_HEAD PRESET_FP8 PRESET_CLEAN PRESET_MERGE PRESET_ROUTE PRESET_FUSE PRESET_PLAN; }

const char *pass_preset(Arena *a, const char *name, const PassPreset *o) {
    bool plan = strcmp(name, "default") == 0;
    if (!plan && strcmp(name, "kernels") != 0) return NULL;
    StrBuf sb;
    sb_init(&sb);
    sb_puts(&sb, PRESET_HEAD);
    if (o->fp8) sb_puts(&sb, PRESET_FP8);
    sb_puts(&sb, PRESET_CLEAN);
    if (o->fp8) sb_puts(&sb, PRESET_MERGE);
    sb_puts(&sb, PRESET_ROUTE);
    if (o->nodes > 0 || o->gpus_per_node > 0)
        sb_printf(&sb, "{nodes=%d,gpus-per-node=%d}", o->nodes > 0 ? o->nodes : 1, o->gpus_per_node > 0 ? o->gpus_per_node : 1);
    if (o->microbatches > 0) sb_printf(&sb, PRESET_OVERLAP "{n=%d}", o->microbatches);
    sb_puts(&sb, PRESET_FUSE);
    if (plan) {
        sb_puts(&sb, PRESET_PLAN);
        StrBuf opt;
        sb_init(&opt);
        if (o->batch > 0) sb_printf(&opt, ",batch=%lld", (long long)o->batch);
        if (o->seq > 0) sb_printf(&opt, ",seq=%lld", (long long)o->seq);
        if (o->ctx > 0) sb_printf(&opt, ",ctx=%lld", (long long)o->ctx);
        if (o->f32_storage) sb_puts(&opt, ",f32-storage=1");
        if (opt.len) sb_printf(&sb, "{%s}", opt.data + 1);
        sb_free(&opt);
    }
    const char *r = arena_strdup(a, sb.data);
    sb_free(&sb);
    return r;
}

const PassInfo *pass_lookup(const char *name) {
    for (int i = 0; i < pass_count; i++)
        if (strcmp(pass_table[i].name, name) == 0) return &pass_table[i];
    return NULL;
}

struct PassCtx {
    DiagEngine *diag;
    const PassStep *step;
    StrBuf *report;
    Arena *arena;
    const DsccTune *tune;
};

DiagEngine *pass_diag(PassCtx *c) { return c->diag; }
const DsccTune *pass_tune(PassCtx *c) { return c->tune; }

void pass_report(PassCtx *c, const char *fmt, ...) {
    if (!c->report) return;
    va_list ap;
    va_start(ap, fmt);
    sb_printf(c->report, "%s: ", c->step->pass->name);
    sb_vprintf(c->report, fmt, ap);
    sb_putc(c->report, '\n');
    va_end(ap);
}

/* The value of option `name`: from the pipeline string, else the default. */
static const char *opt_text(PassCtx *c, const char *name) {
    for (int i = 0; i < c->step->nopts; i++)
        if (strcmp(c->step->keys[i], name) == 0) return c->step->vals[i];
    const char *p = c->step->pass->options;
    size_t n = strlen(name);
    while (p && *p) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            const char *v = p + n + 1;
            size_t len = *v == '"' ? (size_t)(strchr(v + 1, '"') - v) + 1 : strcspn(v, ",");
            char *out = arena_strndup(c->arena, v, len);
            if (*out == '"') {
                out[len - 1] = 0;
                out++;
            }
            return out;
        }
        p = strchr(p, ',');
        if (p) p++;
    }
    IR_UNREACHABLE(); /* options are checked when the pipeline is parsed */
}

int64_t pass_opt_int(PassCtx *c, const char *name) { return strtoll(opt_text(c, name), NULL, 10); }
const char *pass_opt_str(PassCtx *c, const char *name) { return opt_text(c, name); }

/* true if `key` is an option of pass p; sets *is_int. */
static bool has_option(const PassInfo *p, const char *key, bool *is_int) {
    size_t n = strlen(key);
    for (const char *o = p->options; o && *o;) {
        if (strncmp(o, key, n) == 0 && o[n] == '=') {
            *is_int = o[n + 1] != '"';
            return true;
        }
        o = strchr(o, ',');
        if (o) o++;
    }
    return false;
}

/* pipeline := step (',' step)* ; step := name ['{' key=value (',' key=value)* '}'] */
bool pass_pipeline_parse(Arena *a, DiagEngine *d, const char *text, PassPipeline *out) {
    memset(out, 0, sizeof *out);
    const char *p = text;
    SrcLoc loc = {"--passes", 0, 0};
    while (*p) {
        size_t n = strcspn(p, ",{");
        char *name = arena_strndup(a, p, n);
        const PassInfo *pi = pass_lookup(name);
        if (!pi) {
            StrBuf known;
            sb_init(&known);
            for (int i = 0; i < pass_count; i++) sb_printf(&known, i ? ", %s" : "%s", pass_table[i].name);
            diag_error(d, loc, "unknown pass '%s' (passes: %s)", name, known.data);
            sb_free(&known);
            return false;
        }
        if (out->n == PASS_MAX_STEPS) {
            diag_error(d, loc, "more than %d passes in one pipeline", PASS_MAX_STEPS);
            return false;
        }
        PassStep *st = &out->steps[out->n++];
        st->pass = pi;
        p += n;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            if (!end) {
                diag_error(d, loc, "missing '}' after the options of '%s'", name);
                return false;
            }
            char *opts = arena_strndup(a, p + 1, (size_t)(end - p - 1));
            for (char *kv = strtok(opts, ","); kv; kv = strtok(NULL, ",")) {
                char *eq = strchr(kv, '=');
                bool is_int;
                if (!eq || st->nopts == PASS_MAX_OPTS) {
                    diag_error(d, loc, "%s: options are key=value, got '%s'", name, kv);
                    return false;
                }
                *eq = 0;
                if (!has_option(pi, kv, &is_int)) {
                    diag_error(d, loc, "%s has no option '%s' (options: %s)", name, kv, *pi->options ? pi->options : "none");
                    return false;
                }
                char *end2;
                if (is_int && (strtoll(eq + 1, &end2, 10), *end2 || !eq[1])) {
                    diag_error(d, loc, "%s: option %s expects an integer, got '%s'", name, kv, eq + 1);
                    return false;
                }
                st->keys[st->nopts] = kv;
                st->vals[st->nopts++] = eq + 1;
            }
            p = end + 1;
        }
        if (*p == ',') p++;
        else if (*p) {
            diag_error(d, loc, "unexpected '%c' in the pipeline after '%s'", *p, name);
            return false;
        }
    }
    return true;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_ir(FILE *f, const char *when, const char *pass, const IrGraph *g) {
    StrBuf sb;
    sb_init(&sb);
    ir_print(g, &sb);
    fprintf(f, "// -----// IR Dump %s %s //----- //\n%s\n", when, pass, sb.data);
    sb_free(&sb);
}

static bool dump_file(const char *dir, int idx, const char *pass, const IrGraph *g, DiagEngine *d) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        diag_error(d, ((SrcLoc){dir, 0, 0}), "cannot create the dump directory: %s", strerror(errno));
        return false;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%02d-%s.ir", dir, idx, pass);
    StrBuf sb;
    sb_init(&sb);
    ir_print(g, &sb);
    /* as -o writes: a regular file replaced whole, a link's target, a FIFO in place */
    int err = file_write(path, &(FileChunk){sb.data ? sb.data : "", sb.len}, 1);
    sb_free(&sb);
    if (err) diag_error(d, ((SrcLoc){path, 0, 0}), "cannot write: %s", strerror(err));
    return err == 0;
}

bool pass_pipeline_run(const PassPipeline *p, IrGraph *g, const PassRunOptions *o, DiagEngine *d) {
    FILE *pt = o->print_to ? o->print_to : stderr;
    double total = 0, *times = calloc((size_t)p->n + 1, sizeof(double));
    bool ok = true, verify = o->verify_each;
#ifdef DSCC_DEBUG
    verify = true;
#endif
    if (o->dump_dir) ok = dump_file(o->dump_dir, 0, "input", g, d);
    for (int i = 0; i < p->n && ok; i++) {
        const PassStep *st = &p->steps[i];
        const char *name = st->pass->name;
        if (o->print_before && strcmp(o->print_before, name) == 0) print_ir(pt, "Before", name, g);
        PassCtx ctx = {d, st, o->report, g->arena, o->tune};
        int before = diag_error_count(d);
        double t0 = now();
        PassResult r = st->pass->run(&ctx, g);
        times[i] = now() - t0;
        total += times[i];
        if (r == PASS_FAILED || diag_error_count(d) > before) {
            diag_error(d, ((SrcLoc){0}), "pass '%s' failed", name);
            ok = false;
            break;
        }
        if (verify && ir_verify(g, d) > 0) {
            diag_error(d, ((SrcLoc){0}), "the IR does not verify after pass '%s' (a compiler bug; please report it)", name);
            ok = false;
            break;
        }
        bool show = o->print_after_all || (o->print_after && strcmp(o->print_after, name) == 0) ||
                    (o->print_after_change && r == PASS_CHANGED);
        if (show) print_ir(pt, "After", name, g);
        if (o->dump_dir) ok = dump_file(o->dump_dir, i + 1, name, g, d);
    }
    if (o->time) {
        fprintf(pt, "===-- pass execution timing --===\n");
        for (int i = 0; i < p->n; i++)
            fprintf(pt, "  %8.3f ms  %5.1f%%  %s\n", times[i] * 1e3, total > 0 ? 100 * times[i] / total : 0, p->steps[i].pass->name);
        fprintf(pt, "  %8.3f ms  100.0%%  total (%d nodes)\n", total * 1e3, g->nnodes);
    }
    free(times);
    return ok;
}
