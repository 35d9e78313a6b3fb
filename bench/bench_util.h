/* bench_util.h — measurements the benchmarks share (bench_util.c). */
#ifndef DSCC_BENCH_UTIL_H
#define DSCC_BENCH_UTIL_H

#include <stdint.h>

#include "support/support.h"

/* The median ms over 7 pure reads of `bytes` on GPU 0 (stream_read.cuh),
 * each after a memset of `flush` bytes (0: none); -1 after reporting. */
double bench_read_ms(int64_t bytes, int64_t flush, DiagEngine *d);

#endif
