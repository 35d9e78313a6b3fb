/* bench_tune.h — the benchmarks' reading of the DSCC_* switches.
 *
 * A benchmark main is the program's entry, so it reads the environment for
 * the library (support/tune.def); benchmarks set variables as they go
 * (bench_gemm's paths), so each use reads them afresh. */
#ifndef DSCC_BENCH_TUNE_H
#define DSCC_BENCH_TUNE_H

#include "support/support.h"

#include <stdlib.h>

/* The switches as the environment holds them now (one static struct,
 * refilled on each call: pass it before the next setenv); a bad BOOL
 * switch ends the program, exit status 2. */
static inline const DsccTune *bench_tune(void) {
    static DsccTune t;
    tune_read_env(&t);
    if (!tune_check(&t, NULL)) exit(2); /* refused, as dscc refuses it */
    return &t;
}

#endif
