/* util.c — helpers shared by the driver's subcommands: --set parsing,
 * output files (support's file_write), usage errors and a clock. */
#include "tools/dscc/driver.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool driver_add_set(Arena *a, ModelOpts *mo, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        fprintf(stderr, "dscc: error: --set expects NAME=VALUE, got '%s'\n", arg);
        return false;
    }
    FeSetting s = {arena_strndup(a, arg, (size_t)(eq - arg)), arena_strdup(a, eq + 1)};
    ARENA_PUSH(a, mo->sets, mo->nsets, mo->cap, s);
    return true;
}

FeOptions driver_fe_options(const ModelOpts *mo) {
    FeOptions o = {mo->config_path, mo->sets, mo->nsets};
    return o;
}

bool driver_write_output(const char *path, const char *text, size_t len) {
    if (!path || strcmp(path, "-") == 0) {
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
            fprintf(stderr, "dscc: error: cannot write to standard output: %s\n", strerror(errno));
            return false;
        }
        return true;
    }
    int err = file_write(path, &(FileChunk){text, len}, 1);
    if (err) fprintf(stderr, "%s: error: cannot write output: %s\n", path, strerror(err));
    return err == 0;
}

int driver_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dscc %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nrun 'dscc %s --help' for usage\n", cmd);
    va_end(ap);
    return DSCC_EXIT_USAGE;
}

double driver_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char driver_pass_help[] =
    "  --passes=PIPELINE  passes to run, e.g. dce,fp8-quant{exclude=layers.0.},cse,fuse,plan-memory{batch=8,seq=1}\n"
    "                     ('none' for no passes); see 'dscc help passes'\n"
    "  --print-after-all  print the IR after every pass (to stderr)\n"
    "  --print-before=P, --print-after=P   print the IR before / after pass P\n"
    "  --print-after-change                print the IR after each pass that changed it\n"
    "  --dump-dir=DIR     write the IR before the first pass and after each one: DIR/NN-PASS.ir\n"
    "  --verify-each      run the verifier after every pass (always on in debug builds)\n"
    "  --pass-report      print what each pass did (counts, sizes) to stderr\n";

bool driver_pass_option(PassOpts *po, int opt, const char *arg) {
    switch (opt) {
    case OPT_PASSES: po->pipeline = arg; return true;
    case OPT_PRINT_AFTER_ALL: po->run.print_after_all = true; return true;
    case OPT_PRINT_BEFORE: po->run.print_before = arg; return true;
    case OPT_PRINT_AFTER: po->run.print_after = arg; return true;
    case OPT_PRINT_AFTER_CHANGE: po->run.print_after_change = true; return true;
    case OPT_DUMP_DIR: po->run.dump_dir = arg; return true;
    case OPT_VERIFY_EACH: po->run.verify_each = true; return true;
    case OPT_PASS_REPORT: po->report = true; return true;
    default: return false;
    }
}

int driver_run_passes(Arena *a, DiagEngine *d, IrGraph *g, PassOpts *po, const char *dflt, bool time) {
    const char *text = po->pipeline ? po->pipeline : dflt;
    if (!text || !*text || strcmp(text, "none") == 0) return DSCC_EXIT_OK;
    PassPipeline pl;
    if (!pass_pipeline_parse(a, d, text, &pl)) return DSCC_EXIT_USAGE;
    for (const char *names[2] = {po->run.print_before, po->run.print_after}, **p = names; p < names + 2; p++)
        if (*p && !pass_lookup(*p)) {
            diag_error(d, ((SrcLoc){0}), "--print-before/--print-after: unknown pass '%s'", *p);
            return DSCC_EXIT_USAGE;
        }
    StrBuf rep;
    sb_init(&rep);
    PassRunOptions ro = po->run;
    ro.tune = &driver_tune;
    ro.time = time;
    ro.report = &rep;
    bool ok = pass_pipeline_run(&pl, g, &ro, d);
    if (po->report && rep.data) fputs(rep.data, stderr);
    sb_free(&rep);
    return ok ? DSCC_EXIT_OK : DSCC_EXIT_INPUT;
}

/* The model's vocabulary: the last dim of its output `logits` (-1: symbolic or none). */
static int64_t model_vocab(const IrGraph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_OUTPUT || strcmp(ir_node_attr_str(n, "name", ""), "logits") || n->nops < 1) continue;
        const IrType *t = &n->ops[0]->type;
        if (t->rank < 1) return -1;
        for (int k = 0; k < IR_MAX_DIM_SYMS; k++)
            if (t->dims[t->rank - 1].exp[k]) return -1;
        return t->dims[t->rank - 1].coeff;
    }
    return -1;
}

bool driver_check_vocab(DiagEngine *d, const char *dir, int32_t max_id, const IrGraph *g) {
    int64_t V = model_vocab(g);
    if (V <= 0 || max_id < V) return true;
    diag_error(d, (SrcLoc){dir, 0, 0}, "the tokenizer has ids up to %d but the model's vocabulary has %lld entries "
               "(does the tokenizer belong to this model?)", max_id, (long long)V);
    return false;
}
