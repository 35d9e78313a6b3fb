/* driver.h — private to the dscc driver: the subcommand table entry, exit
 * codes, and the helpers every subcommand shares (model options, output). */
#ifndef DSCC_DRIVER_H
#define DSCC_DRIVER_H

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"

enum {
    DSCC_EXIT_OK = 0,      /* success */
    DSCC_EXIT_INPUT = 1,   /* error in the input */
    DSCC_EXIT_USAGE = 2,   /* bad command line */
    DSCC_EXIT_RUNTIME = 3, /* could not write output, resource failure */
};

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} Subcommand;

int cmd_compile(int argc, char **argv);
int cmd_opt(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);

/* The DSCC_* tuning switches (support/tune.def), read from the environment
 * once, by main, before any command runs; every command passes them down
 * (passes, codegen, the executor) instead of the library reading getenv. */
extern DsccTune driver_tune;

/* Options shared by commands that read a model file. */
typedef struct {
    const char *config_path;
    FeSetting *sets;
    int nsets, cap;
} ModelOpts;

/* Records one --set NAME=VALUE; false (after printing why) if malformed. */
bool driver_add_set(Arena *a, ModelOpts *mo, const char *arg);
FeOptions driver_fe_options(const ModelOpts *mo);

/* Writes text to path ("-" or NULL = stdout) through a temporary file and a
 * rename, so a failed write never leaves a half-written output behind.
 * Prints the reason and returns false on failure. */
bool driver_write_output(const char *path, const char *text, size_t len);

/* Reports a usage error for command `cmd` and returns DSCC_EXIT_USAGE. */
int driver_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pass-pipeline options shared by compile, opt and run. */
typedef struct {
    const char *pipeline; /* NULL = the command's default */
    PassRunOptions run;
    bool report;
} PassOpts;

/* Options 300..309 are the pass options; handles one, false if not one. */
enum {
    OPT_PASSES = 300, OPT_PRINT_AFTER_ALL, OPT_PRINT_BEFORE, OPT_PRINT_AFTER, OPT_PRINT_AFTER_CHANGE, OPT_DUMP_DIR,
    OPT_VERIFY_EACH, OPT_PASS_REPORT,
};
#define DRIVER_PASS_LONGOPTS                                                                                     \
    {"passes", required_argument, 0, OPT_PASSES}, {"print-after-all", no_argument, 0, OPT_PRINT_AFTER_ALL},      \
        {"print-before", required_argument, 0, OPT_PRINT_BEFORE},                                                \
        {"print-after", required_argument, 0, OPT_PRINT_AFTER},                                                  \
        {"print-after-change", no_argument, 0, OPT_PRINT_AFTER_CHANGE},                                          \
        {"dump-dir", required_argument, 0, OPT_DUMP_DIR}, {"verify-each", no_argument, 0, OPT_VERIFY_EACH},      \
        {"pass-report", no_argument, 0, OPT_PASS_REPORT}
bool driver_pass_option(PassOpts *po, int opt, const char *arg);
extern const char driver_pass_help[];
/* Runs po's pipeline (or `dflt`; "none" or "" = no passes) on g; returns
 * an exit code: usage for a bad pipeline, input for a failing pass. */
int driver_run_passes(Arena *a, DiagEngine *d, IrGraph *g, PassOpts *po, const char *dflt, bool time);

/* The default pipeline of `dscc run` (and of `dscc stats --nodes`) for a
 * batch of B rows of T new tokens over W = nodes x gpn ranks: the
 * "default" preset with fp8-quant when fp8, plan-memory for the most rows
 * a rank gets (B / W rounded up) and, for W > 1, node-limited-routing on
 * the topology and microbatch-overlap when every rank's rows split in two
 * equal halves. */
const char *driver_pipeline(Arena *a, bool fp8, int W, int nodes, int gpn, int64_t B, int64_t T, int64_t ctx, bool f32_storage);

/* False after reporting when a tokenizer (at dir) has ids up to max_id
 * but g's output `logits` has fewer entries in its last axis. */
bool driver_check_vocab(DiagEngine *d, const char *dir, int32_t max_id, const IrGraph *g);

/* Monotonic seconds, for --time-passes. */
double driver_now(void);

#endif
