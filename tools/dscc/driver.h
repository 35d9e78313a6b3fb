/* driver.h — private to the dscc driver: the subcommand table entry, exit
 * codes, and the helpers every subcommand shares (model options, output). */
#ifndef DSCC_DRIVER_H
#define DSCC_DRIVER_H

#include "frontend/frontend.h"
#include "ir/ir.h"

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

/* Monotonic seconds, for --time-passes. */
double driver_now(void);

#endif
