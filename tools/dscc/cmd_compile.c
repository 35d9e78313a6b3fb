/* cmd_compile.c — `dscc compile` and `dscc opt`: model file or IR text in,
 * verified IR (or its DOT view) out. Both verify before printing, so what
 * they print always parses and verifies again. */
#include "tools/dscc/driver.h"
#include "tools/dscc/models.h"

#ifdef DSCC_HAVE_NVRTC
#include "codegen/gen.h"
#endif

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OPT_CONFIG = 256, OPT_SET, OPT_EMIT, OPT_TIME };

typedef enum { EMIT_IR, EMIT_DOT, EMIT_SCHEDULE, EMIT_CUDA, EMIT_CUBIN, EMIT_PLAN } EmitKind;

static bool parse_emit(const char *cmd, const char *v, EmitKind *out) {
    if (strcmp(v, "ir") == 0) *out = EMIT_IR;
    else if (strcmp(v, "dot") == 0) *out = EMIT_DOT;
    else if (strcmp(v, "schedule") == 0) *out = EMIT_SCHEDULE;
    else if (strcmp(v, "cuda") == 0) *out = EMIT_CUDA;
    else if (strcmp(v, "cubin") == 0) *out = EMIT_CUBIN;
    else if (strcmp(v, "plan") == 0) *out = EMIT_PLAN;
    else {
        driver_usage_error(cmd, "--emit=%s: expected ir, dot, schedule, cuda, cubin or plan", v);
        return false;
    }
#ifndef DSCC_HAVE_NVRTC
    if (*out == EMIT_CUDA || *out == EMIT_CUBIN || *out == EMIT_PLAN) {
        driver_usage_error(cmd, "--emit=%s: this dscc was built without NVRTC (CUDA toolkit) or xxHash, so without codegen", v);
        return false;
    }
#endif
    return true;
}

#ifdef DSCC_HAVE_NVRTC
static const char *const launch_names[] = {"elem", "warp", "block"};

/* One launch of a phase at the dims `sym`: the runtime's (gpu_exec.c)
 * 256-thread blocks (or the phase's CgPhase.threads), one per 256 items
 * (elem), 8 items (warp) or item. */
static cJSON *phase_json(const CgPhase *f, const int64_t *sym) {
    int64_t items = cg_phase_items(f, sym);
    int64_t grid = items <= 0                    ? 0
                   : f->mode == CG_LAUNCH_ELEM ? (items + 255) / 256
                   : f->mode == CG_LAUNCH_WARP ? (items + 7) / 8
                                               : items;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "entry", f->fn);
    cJSON_AddStringToObject(o, "launch", launch_names[f->mode]);
    cJSON_AddNumberToObject(o, "items", (double)(items > 0 ? items : 0));
    cJSON_AddNumberToObject(o, "grid", (double)grid);
    cJSON_AddNumberToObject(o, "block", f->threads ? f->threads : 256);
    cJSON_AddNumberToObject(o, "shared_memory", (double)f->smem);
    return o;
}

/* manifest.json of --emit=cubin: the modules, and for every kernel its
 * module file and its phases' entry points and launches at the dims the
 * memory plan was made for (every dim 1 without a plan), which it names. */
static char *manifest(Arena *a, const IrGraph *g, const CgProgram *p, const CgBinary *bins, const char **files) {
    int64_t sym[IR_MAX_DIM_SYMS];
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) sym[i] = g->mem_planned ? g->mem_dims[i] : 1;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", g->name ? g->name : "");
    cJSON_AddStringToObject(root, "arch", "sm_90a");
    int v = cg_nvrtc_version();
    cJSON_AddStringToObject(root, "nvrtc", arena_printf(a, "%d.%d", v / 1000, v % 1000 / 10));
    cJSON *dims = cJSON_AddObjectToObject(root, "dims");
    for (int i = 0; i < g->ndims; i++) cJSON_AddNumberToObject(dims, g->dim_names[i], (double)sym[i]);
    cJSON_AddStringToObject(root, "dims_from", g->mem_planned ? "plan-memory" : "none (no memory plan: every dim 1)");
    cJSON *mods = cJSON_AddArrayToObject(root, "modules");
    for (int m = 0; m < p->nmodules; m++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", files[m]);
        cJSON_AddNumberToObject(o, "bytes", (double)bins[m].size);
        int users = 0;
        for (int k = 0; k < p->nkernels; k++) users += p->kernels[k].module == m;
        cJSON_AddNumberToObject(o, "kernels", users);
        cJSON_AddItemToArray(mods, o);
    }
    cJSON *ks = cJSON_AddArrayToObject(root, "kernels");
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ck->name);
        cJSON_AddStringToObject(o, "module", files[ck->module]);
        if (ck->loc.file) cJSON_AddStringToObject(o, "loc", arena_printf(a, "%s:%d:%d", ck->loc.file, ck->loc.line, ck->loc.col));
        cJSON *ph = cJSON_AddArrayToObject(o, "phases");
        for (int f = 0; f < ck->nphases; f++) cJSON_AddItemToArray(ph, phase_json(&ck->phases[f], sym));
        if (ck->lib.kind != CG_LIB_NONE) { /* the runtime may run cuBLASLt instead of these phases */
            cJSON_AddStringToObject(o, "library", ck->lib.kind == CG_LIB_FP8_GEMM ? "cublaslt fp8 gemm" : "cublaslt bf16 gemm");
            cJSON *r = cJSON_AddArrayToObject(o, "library_replaces_phases");
            for (int f = ck->lib.phase; f < ck->lib.phase + (ck->lib.span > 1 ? ck->lib.span : 1); f++)
                cJSON_AddItemToArray(r, cJSON_CreateNumber(f));
        }
        cJSON_AddItemToArray(ks, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char *out = arena_printf(a, "%s\n", text);
    free(text);
    return out;
}

/* --emit=cubin: each distinct module once, DIR/<module>.cubin (two module
 * sources NVRTC compiled to the same bytes share the first one's file),
 * and DIR/manifest.json mapping every kernel to its file and launches. */
static bool write_cubins(Arena *a, const IrGraph *g, const CgProgram *p, const CgBinary *bins, const char *dir) {
    const char **files = arena_alloc(a, sizeof(char *) * (size_t)(p->nmodules + 1));
    int written = 0;
    for (int m = 0; m < p->nmodules; m++) {
        for (int e = 0; e < m && !files[m]; e++)
            if (bins[e].size == bins[m].size && memcmp(bins[e].data, bins[m].data, bins[m].size) == 0) files[m] = files[e];
        if (files[m]) continue;
        files[m] = arena_printf(a, "%s.cubin", p->modules[m].name);
        if (!driver_write_output(arena_printf(a, "%s/%s", dir, files[m]), bins[m].data, bins[m].size)) return false;
        written++;
    }
    const char *text = manifest(a, g, p, bins, files);
    if (!driver_write_output(arena_printf(a, "%s/manifest.json", dir), text, strlen(text))) return false;
    fprintf(stderr, "wrote %d cubins (%d modules, identical ones once) of %d kernels and manifest.json to %s/\n", written,
            p->nmodules, p->nkernels, dir);
    return true;
}

static const char *const lib_names[] = {"", "cuBLASLt FP8 GEMM", "cuBLASLt BF16 GEMM"};

/* One phase's line of --emit=plan: entry, block, shared memory, and when it runs. */
static void plan_phase(StrBuf *sb, const CgPhase *f) {
    int threads = f->mode == CG_LAUNCH_BLOCK && f->threads ? f->threads : 256;
    sb_printf(sb, "  phase %s: %d threads a block, %lld bytes of shared memory", f->fn, threads, (long long)f->smem);
    if (f->amax > 0) sb_printf(sb, ", at most %lld rows", (long long)f->amax);
    if (f->amin > 0) sb_printf(sb, ", above %lld rows", (long long)f->amin);
    if (f->cmin > 0) sb_printf(sb, ", at a cached step above %lld", (long long)f->cmin);
    if (f->tma) sb_puts(sb, ", the TMA GEMM");
    if (f->tmaps) sb_printf(sb, ", %d tensor map%s", f->tmaps->n, f->tmaps->n == 1 ? "" : "s");
    if (f->pdl) sb_puts(sb, ", programmatic launch");
    sb_putc(sb, '\n');
}

/* --emit=plan: what codegen decided (CONVENTIONS, "decisions in the IR"), as text: each kernel with its ops, which
 * of their values it stores (and in which dtype) and which it computes where they are read, its phases and a library
 * call that may replace them; then the values no kernel computes, which their readers read through. */
static char *plan_text(const IrGraph *g, const CgProgram *p, size_t *len) {
    StrBuf sb;
    sb_init(&sb);
    bool *in = calloc((size_t)g->nnodes + 1, 1);
    sb_printf(&sb, "%d kernels in %d modules\n", p->nkernels, p->nmodules);
    for (int i = 0; i < p->nkernels; i++) {
        const CgKernel *k = &p->kernels[i];
        sb_printf(&sb, "kernel %s (%s:%d:%d), module %s\n", k->name, k->loc.file ? k->loc.file : "?", k->loc.line, k->loc.col,
                  p->modules[k->module].name);
        for (int j = 0; j < k->nnodes; j++) {
            const IrNode *n = g->nodes[k->nodes[j]];
            in[n->id] = true;
            sb_printf(&sb, "  %%%d %-16s ", n->id, ir_op_name(n->op));
            if (!ir_op_has_result(n->op)) sb_puts(&sb, "no value\n");
            else if (p->stored[n->id])
                sb_printf(&sb, "stored %s%s\n", ir_dtype_name(p->dtype[n->id]), p->kblock[n->id] ? " (K-block-major)" : "");
            else sb_puts(&sb, "computed where read\n");
        }
        for (int f = 0; f < k->nphases; f++) plan_phase(&sb, &k->phases[f]);
        if (k->lib.kind != CG_LIB_NONE) {
            sb_printf(&sb, "  library: %s instead of phase %d", lib_names[k->lib.kind], k->lib.phase);
            if (k->lib.span > 1) sb_printf(&sb, " to %d", k->lib.phase + k->lib.span - 1);
            sb_puts(&sb, k->lib.mmin > 0 ? ", above the skinny rows\n" : "\n");
        }
    }
    int nthrough = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (in[i] || p->stored[i] || !ir_op_computed(n->op)) continue;
        sb_printf(&sb, "%s%%%d %s", nthrough++ ? ", " : "read through (no kernel computes them): ", n->id, ir_op_name(n->op));
    }
    if (nthrough) sb_putc(&sb, '\n');
    free(in);
    *len = sb.len;
    return sb.data;
}

/* --emit=plan: plan_text; --emit=cuda: every kernel's source, to stdout or one DIR/<kernel>.cu each;
 * --emit=cubin: the modules compiled (through the cache) to DIR, once each. */
static int emit_kernels(Arena *a, DiagEngine *d, const IrGraph *g, EmitKind emit, const char *out_dir) {
    double t0 = driver_now();
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = &driver_tune});
    if (!p) return DSCC_EXIT_INPUT;
    if (emit == EMIT_PLAN) {
        size_t len;
        char *text = plan_text(g, p, &len);
        bool ok = driver_write_output(out_dir, text ? text : "", len);
        free(text);
        return ok ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
    }
    bool to_dir = out_dir && strcmp(out_dir, "-") != 0;
    if (emit == EMIT_CUBIN && !to_dir) {
        fprintf(stderr, "dscc: error: --emit=cubin writes one file per module and a manifest: give -o DIR\n");
        return DSCC_EXIT_USAGE;
    }
    if (to_dir && mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dscc: error: cannot create directory '%s': %s\n", out_dir, strerror(errno));
        return DSCC_EXIT_RUNTIME;
    }
    if (emit == EMIT_CUBIN) {
        CgBinary *bins = calloc((size_t)p->nmodules + 1, sizeof(CgBinary));
        CgOptions co = {0};
        int fails = cg_compile(a, d, p->modules, p->nmodules, &co, bins);
        int cached = 0, rejected = 0;
        for (int m = 0; m < p->nmodules; m++) cached += bins[m].from_cache, rejected += bins[m].cache_rejected;
        fprintf(stderr, "compiled %d modules for %d kernels with NVRTC (%d from the cache, %d damaged cache entries compiled again) in %.2f s\n",
                p->nmodules, p->nkernels, cached, rejected, driver_now() - t0);
        bool ok = fails == 0 && write_cubins(a, g, p, bins, out_dir);
        for (int m = 0; m < p->nmodules; m++) cg_binary_free(&bins[m]);
        free(bins);
        return fails ? DSCC_EXIT_INPUT : ok ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
    }
    StrBuf all;
    sb_init(&all);
    bool ok = true;
    for (int i = 0; i < p->nkernels && ok; i++) {
        const CgKernel *k = &p->kernels[i];
        const char *text = cg_kernel_text(a, p, k);
        if (to_dir) ok = driver_write_output(arena_printf(a, "%s/%s.cu", out_dir, k->name), text, strlen(text));
        else sb_puts(&all, text), sb_putc(&all, '\n');
    }
    if (!to_dir) ok = driver_write_output(out_dir, all.data ? all.data : "", all.len);
    else if (ok) fprintf(stderr, "wrote %d kernels to %s/\n", p->nkernels, out_dir);
    sb_free(&all);
    return ok ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
}
#endif


/* Verifies g, runs the passes, renders it as `emit` and writes it out. */
static int finish(Arena *a, IrGraph *g, DiagEngine *d, PassOpts *po, const char *dflt, EmitKind emit,
                  const char *out_path, bool timing, double t0, double t_front) {
    if (ir_verify(g, d) > 0) return DSCC_EXIT_INPUT;
    int prc = driver_run_passes(a, d, g, po, dflt, timing);
    if (prc) return prc;
    double t_verify = driver_now();
#ifdef DSCC_HAVE_NVRTC
    if (emit == EMIT_CUDA || emit == EMIT_CUBIN || emit == EMIT_PLAN) return emit_kernels(a, d, g, emit, out_path);
#endif
    StrBuf sb;
    sb_init(&sb);
    if (emit == EMIT_DOT) ir_print_dot(g, &sb);
    else if (emit == EMIT_SCHEDULE) ir_print_schedule(g, &sb);
    else ir_print(g, &sb);
    double t_print = driver_now();
    bool ok = driver_write_output(out_path, sb.data ? sb.data : "", sb.len);
    sb_free(&sb);
    if (timing) {
        fprintf(stderr, "===-- dscc phase timing --===\n");
        fprintf(stderr, "  %8.2f ms  read + parse + lower (%d nodes)\n", (t_front - t0) * 1e3, g->nnodes);
        fprintf(stderr, "  %8.2f ms  verify + passes\n", (t_verify - t_front) * 1e3);
        fprintf(stderr, "  %8.2f ms  print %s\n", (t_print - t_verify) * 1e3, emit == EMIT_DOT ? "dot" : "ir");
        fprintf(stderr, "  %8.2f ms  total\n", (t_print - t0) * 1e3);
    }
    return ok ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
}

static void compile_help(FILE *o) {
    fprintf(o, "usage: dscc compile MODEL [options]\n\n"
               "Parse MODEL, bind its parameters, lower it to IR, verify it and print it.\n"
               "MODEL is a .dsl file or the name of an installed model (deepseek_v3), found\n"
               "in $DSCC_MODEL_PATH, then in share/dscc/models of the installation.\n\n"
               "options:\n"
               "  --config FILE      bind parameters from a Hugging Face config.json\n"
               "  --set NAME=VALUE   set a parameter (repeatable; overrides --config)\n"
               "  --emit=ir|dot|schedule|cuda|cubin|plan  the textual IR (default), a Graphviz graph,\n"
               "                     the streams and waits of a scheduled graph, the CUDA C++ of\n"
               "                     every kernel (stdout, or one DIR/<kernel>.cu each with -o DIR),\n"
               "                     or the sm_90a cubins NVRTC compiles (-o DIR required: each\n"
               "                     distinct module once, DIR/<module>.cubin, and DIR/manifest.json:\n"
               "                     kernel -> module, entry points, grid, block, shared memory;\n"
               "                     cached under DSCC_CACHE_DIR, default ~/.cache/dscc), or\n"
               "                     codegen's plan: each kernel's ops, which values it stores\n"
               "                     (dtype) or computes where read, its phases, library calls\n"
               "  -o, --output FILE  write there instead of standard output ('-' = stdout)\n"
               "  --time-passes      print the time of each phase and pass to standard error\n"
               "%s"
               "  -h, --help         show this help\n\n"
               "The default pipeline is %s.\n"
               "exit codes: 0 ok, 1 error in the input, 2 usage, 3 cannot write output\n"
               "example: dscc compile models/deepseek_v3.dsl --set num_hidden_layers=4 -o v3.ir\n",
            driver_pass_help, pass_default_pipeline());
}

int cmd_compile(int argc, char **argv) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, OPT_CONFIG}, {"set", required_argument, 0, OPT_SET},
        {"emit", required_argument, 0, OPT_EMIT},     {"output", required_argument, 0, 'o'},
        {"time-passes", no_argument, 0, OPT_TIME},    {"help", no_argument, 0, 'h'},
        DRIVER_PASS_LONGOPTS, {0, 0, 0, 0}};
    Arena *a = arena_new();
    ModelOpts mo = {0};
    PassOpts po = {0};
    EmitKind emit = EMIT_IR;
    const char *out = NULL;
    bool timing = false;
    int c, rc = DSCC_EXIT_OK;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': compile_help(stdout); arena_free(a); return DSCC_EXIT_OK;
        case OPT_CONFIG: mo.config_path = optarg; break;
        case OPT_SET: if (!driver_add_set(a, &mo, optarg)) rc = DSCC_EXIT_USAGE; break;
        case OPT_EMIT: if (!parse_emit("compile", optarg, &emit)) rc = DSCC_EXIT_USAGE; break;
        case 'o': out = optarg; break;
        case OPT_TIME: timing = true; break;
        case ':': rc = driver_usage_error("compile", "option '%s' needs a value", argv[optind - 1]); break;
        default:
            if (!driver_pass_option(&po, c, optarg)) rc = driver_usage_error("compile", "unknown option '%s'", argv[optind - 1]);
            break;
        }
        if (rc) { arena_free(a); return rc; }
    }
    if (optind != argc - 1) {
        arena_free(a);
        return driver_usage_error("compile", optind >= argc ? "missing MODEL (a .dsl file or a model name)" : "expected one model, got %d", argc - optind);
    }
    DiagEngine *d = diag_new(a, stderr);
    double t0 = driver_now();
    FeOptions fo = driver_fe_options(&mo);
    const char *path = driver_resolve_model(a, d, argv[optind]);
    IrGraph *g = path ? fe_compile_file(a, d, path, &fo) : NULL;
    double t_front = driver_now();
    rc = g && diag_error_count(d) == 0 ? finish(a, g, d, &po, pass_default_pipeline(), emit, out, timing, t0, t_front)
                                       : DSCC_EXIT_INPUT;
    arena_free(a);
    return rc;
}

static void opt_help(FILE *o) {
    fprintf(o, "usage: dscc opt [FILE.ir | -] [options]\n\n"
               "Read textual IR (standard input when FILE is '-' or absent), verify it and\n"
               "print it again; printing what it read is byte-identical to the input when\n"
               "the input came from dscc.\n\n"
               "options:\n"
               "  --emit=ir|dot|schedule  the textual IR (default), a Graphviz graph, or the\n"
               "                     streams and waits of a scheduled graph\n"
               "  -o, --output FILE  write there instead of standard output\n"
               "  --time-passes      print the time of each phase and pass to standard error\n"
               "%s"
               "  -h, --help         show this help\n\n"
               "No passes run unless --passes is given.\n"
               "exit codes: 0 ok, 1 error in the input, 2 usage, 3 cannot write output\n", driver_pass_help);
}

int cmd_opt(int argc, char **argv) {
    static const struct option longopts[] = {
        {"emit", required_argument, 0, OPT_EMIT},  {"output", required_argument, 0, 'o'},
        {"time-passes", no_argument, 0, OPT_TIME}, {"help", no_argument, 0, 'h'},
        DRIVER_PASS_LONGOPTS,                      {0, 0, 0, 0}};
    PassOpts po = {0};
    EmitKind emit = EMIT_IR;
    const char *out = NULL;
    bool timing = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': opt_help(stdout); return DSCC_EXIT_OK;
        case OPT_EMIT: if (!parse_emit("opt", optarg, &emit)) return DSCC_EXIT_USAGE; break;
        case 'o': out = optarg; break;
        case OPT_TIME: timing = true; break;
        case ':': return driver_usage_error("opt", "option '%s' needs a value", argv[optind - 1]);
        default:
            if (!driver_pass_option(&po, c, optarg)) return driver_usage_error("opt", "unknown option '%s'", argv[optind - 1]);
            break;
        }
    }
    if (argc - optind > 1) return driver_usage_error("opt", "expected at most one IR file");
    const char *path = optind < argc ? argv[optind] : "-";
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    double t0 = driver_now();
    size_t len = 0;
    char *text;
    const char *name = path;
    if (strcmp(path, "-") == 0) {
        name = "<stdin>";
        text = read_stream_text(a, d, stdin, name, &len);
    } else {
        text = read_file_text(a, d, path, &len);
    }
    int rc = DSCC_EXIT_INPUT;
    if (text) {
        diag_add_source(d, name, text, len);
        IrGraph *g = ir_parse(a, d, name, text, len);
        double t_front = driver_now();
        if (g && diag_error_count(d) == 0) rc = finish(a, g, d, &po, NULL, emit, out, timing, t0, t_front);
    }
    arena_free(a);
    return rc;
}
