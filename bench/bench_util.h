/* bench_util.h — measurements the benchmarks share (bench_util.c). */
#ifndef DSCC_BENCH_UTIL_H
#define DSCC_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "runtime/cuda.h"
#include "support/support.h"

/* The median ms over 7 pure reads of `bytes` on GPU 0 (stream_read.cuh),
 * each after a memset of `flush` bytes (0: none); -1 after reporting. */
double bench_read_ms(int64_t bytes, int64_t flush, DiagEngine *d);

/* Compiles the n sources for gpu and loads each one's entry point, named
 * as its source (src[i].name), into k[i]; the caller frees bins[0..n).
 * False after reporting. */
bool bench_kernels(Arena *a, DiagEngine *d, RtCuda *gpu, const CgSource *src, int n, CgBinary *bins, RtKernel **k);

/* p[0..n) uniform in [-1, 1) as bf16 (truncated), from the xorshift64
 * state *rng: a run's inputs are the same on every machine. */
void bench_fill_bf16(uint16_t *p, size_t n, uint64_t *rng);

/* The n times of a kernel sorted ascending: the best at 0, the median at n / 2. */
void bench_sort_ms(float *ms, int n);
/* The same for doubles. */
void bench_sort_d(double *x, int n);

#endif
