/* util.c — helpers shared by the driver's subcommands: --set parsing,
 * atomic output files, usage errors and a clock. */
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
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return false;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL;
    int err = errno;
    if (ok) {
        ok = fwrite(text, 1, len, f) == len;
        err = errno;
        if (fclose(f) != 0 && ok) {
            ok = false;
            err = errno;
        }
        if (ok && rename(tmp, path) != 0) {
            ok = false;
            err = errno;
        }
        if (!ok) remove(tmp);
    }
    if (!ok) fprintf(stderr, "%s: error: cannot write output: %s\n", path, strerror(err));
    free(tmp);
    return ok;
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
