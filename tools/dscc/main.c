/* main.c — the `dscc` driver: subcommand dispatch, option parsing, exit
 * codes. Every subcommand follows one shape: parse options (usage errors exit
 * 2), run the library stages with one Arena and one DiagEngine (input errors
 * exit 1), write output atomically (I/O failures exit 3). Library code never
 * exits; only this file chooses the process's exit code. */
#include "tools/dscc/driver.h"
#include "dscc_git.h" /* DSCC_GIT_DESCRIBE, written at build time by cmake/git_describe.cmake */
#include "runtime/trace.h"

#ifdef DSCC_HAVE_NVRTC
#include "codegen/codegen.h"
#endif

#include <dlfcn.h>
#include <string.h>

static const Subcommand commands[] = {
    {"compile", "parse and lower a model file to verified IR; print IR or DOT", cmd_compile},
    {"opt", "read textual IR, verify it and print it again", cmd_opt},
    {"stats", "parameters, activated parameters, KV cache and FLOPs from the graph", cmd_stats},
    {"run", "run a model on token ids (CPU reference, one GPU, or many over NCCL) and dump its logits", cmd_run},
    {"tokenize", "text to token ids (JSON) with a checkpoint's tokenizer.json", cmd_tokenize},
    {"detokenize", "token ids (JSON) back to their exact text", cmd_detokenize},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

DsccTune driver_tune;

static void print_main_help(FILE *o) {
    fprintf(o, "usage: dscc <command> [options] [args]\n\n"
               "dscc compiles a model description (models/deepseek_v3.dsl) to an SSA IR\n"
               "of tensor ops and reports facts about it.\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(o, "  %-10s  %s\n", commands[i].name, commands[i].summary);
    fprintf(o, "  %-10s  %s\n", "help", "show help for a command (dscc help compile), the passes or the switches (tuning)");
    fprintf(o, "\noptions:\n  -h, --help     show this help\n"
               "  --help-tuning  list the DSCC_* tuning switches (environment variables read\n"
               "                 once at start; also dscc help tuning)\n"
               "  --version      print the version, the git commit it was built from, and\n"
               "                 whether NVRTC and the CUDA driver were found\n");
    fprintf(o, "\nexit codes:\n"
               "  0  success\n"
               "  1  error in the input (model file, IR text, config, checkpoint)\n"
               "  2  usage error (unknown option, missing argument)\n"
               "  3  runtime failure (cannot write output, internal resource failure)\n"
               "\nenvironment:\n"
               "  NO_COLOR         disable coloured diagnostics (colour is only used on a TTY)\n"
               "  DSCC_MODEL_PATH  directories (':'-separated) searched for a model given by\n"
               "                   name, before the installed share/dscc/models\n"
               "  DSCC_CACHE_DIR   the NVRTC kernel cache (default ~/.cache/dscc)\n");
}

/* --version: the version, the checkout it was built from, and what a GPU run
 * would find: NVRTC (linked in or not) and the CUDA driver, probed by
 * dlopen as runtime/cuda.c loads it. cuDriverGetVersion needs no cuInit, so
 * no GPU is initialised. */
static void print_version(FILE *o) {
    fprintf(o, "dscc %s\ngit: %s\n", DSCC_VERSION, DSCC_GIT_DESCRIBE);
#ifdef DSCC_HAVE_NVRTC
    int v = cg_nvrtc_version();
    if (v > 0) fprintf(o, "NVRTC: %d.%d (linked in)\n", v / 1000, v % 1000 / 10);
    else fprintf(o, "NVRTC: linked in, but nvrtcVersion failed\n");
#else
    fprintf(o, "NVRTC: not built in (no CUDA toolkit or xxHash at configure time: no codegen, CPU backend only)\n");
#endif
    fprintf(o, "NVTX: %s\n", rt_nvtx_built() ? "ranges built in (nvtx3: steps and layers for Nsight Systems)"
                                             : "not built in (no nvtx3/nvToolsExt.h at configure time)");
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        fprintf(o, "CUDA driver: not found (%s)\n", why ? why : "libcuda.so.1 cannot be loaded");
        return;
    }
    int (*get_version)(int *) = NULL;
    *(void **)&get_version = dlsym(lib, "cuDriverGetVersion");
    int dv = 0;
    if (get_version && get_version(&dv) == 0 && dv > 0)
        fprintf(o, "CUDA driver: found, CUDA %d.%d (libcuda.so.1)\n", dv / 1000, dv % 1000 / 10);
    else fprintf(o, "CUDA driver: found libcuda.so.1, but it reports no version\n");
    dlclose(lib);
}

static const Subcommand *find_command(const char *name) {
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_main_help(stderr);
        return DSCC_EXIT_USAGE;
    }
    tune_read_env(&driver_tune); /* the one read of the tuning switches */
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help-tuning") == 0 || (strcmp(cmd, "help") == 0 && argc >= 3 && strcmp(argv[2], "tuning") == 0)) {
        tune_print_help(stdout);
        return DSCC_EXIT_OK;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        print_main_help(stdout);
        return DSCC_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        print_version(stdout);
        return DSCC_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            print_main_help(stdout);
            return DSCC_EXIT_OK;
        }
        if (strcmp(argv[2], "passes") == 0) {
            printf("passes (use as --passes=a,b{opt=value},c):\n");
            for (int i = 0; i < pass_count; i++)
                printf("  %-22s %s\n  %-22s options: %s\n", pass_table[i].name, pass_table[i].summary, "",
                       *pass_table[i].options ? pass_table[i].options : "none");
            printf("\ndefault pipeline (compile, run --precision fp8): %s\n", pass_default_pipeline());
            return DSCC_EXIT_OK;
        }
        const Subcommand *sc = find_command(argv[2]);
        if (!sc) {
            fprintf(stderr, "dscc: error: unknown command '%s'; run 'dscc --help'\n", argv[2]);
            return DSCC_EXIT_USAGE;
        }
        char *hargv[] = {argv[2], "--help", NULL};
        return sc->run(2, hargv);
    }
    const Subcommand *sc = find_command(cmd);
    if (!sc) {
        fprintf(stderr, "dscc: error: unknown command '%s'; run 'dscc --help'\n", cmd);
        return DSCC_EXIT_USAGE;
    }
    /* the BOOL switches' values, once for every command (help and --version run whatever they are): a bad one is a
     * usage error, as DSCC_TIMEOUT's */
    if (!tune_check(&driver_tune, NULL)) return DSCC_EXIT_USAGE;
    return sc->run(argc - 1, argv + 1);
}
