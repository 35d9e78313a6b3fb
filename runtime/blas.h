/* blas.h — cuBLASLt for the CUDA backend, loaded at run time (private to
 * runtime/).
 *
 * libcublasLt.so is opened with dlopen, like the driver, so dscc builds and
 * runs where it is absent (the generated kernels are used then). The CUDA
 * backend hands it the GEMMs cuBLASLt does best: DeepSeek's block-scaled
 * FP8 linear (1x128 activation scales, 128x128 weight scales, BF16 out) and
 * the BF16 linear. A plan per (kind, M, N, K) is made once — descriptors,
 * layouts and the heuristic's algorithm — and reused on every step; a
 * shape cuBLASLt has no algorithm for is remembered as unsupported, and the
 * caller launches its own kernel instead. */
#ifndef DSCC_RT_BLAS_H
#define DSCC_RT_BLAS_H

#include "runtime/cuda.h"

typedef enum {
    RT_BLAS_FP8_BLOCK, /* y bf16 = (x e4m3 . xs[K/128][M]) (w e4m3 . ws[N/128][K/128])^T */
    RT_BLAS_BF16,      /* y bf16 = x bf16 . w bf16^T, f32 accumulation */
} RtBlasKind;

typedef struct RtBlas RtBlas;
typedef struct RtBlasPlan RtBlasPlan;

/* NULL when libcublasLt cannot be loaded or DSCC_CUBLASLT=0 (not an error:
 * the generated kernels run); *why says which. Errors of a loaded library
 * are reported, and those of the GEMM table (DSCC_GEMM_TABLE=FILE: a file
 * that does not read or parse; `none`: no table). */
RtBlas *rt_blas_open(RtCuda *c, DiagEngine *d, const char **why);
void rt_blas_close(RtBlas *b);
/* "cuBLASLt 130100" */
const char *rt_blas_version(const RtBlas *b);

/* The plan for y[M, N] = x[M, K] . w[N, K]^T (row-major, as the IR stores
 * them); NULL when cuBLASLt has no algorithm for it (or its layout rules
 * exclude it: FP8 needs K % 128 == 0, M % 4 == 0, N % 8 == 0 and whole
 * groups of 4 K blocks). */
const RtBlasPlan *rt_blas_plan(RtBlas *b, RtBlasKind kind, int64_t M, int64_t N, int64_t K);
/* The plan of the path the GEMM table (gemm_table.h: DSCC_GEMM_TABLE, else
 * the built-in one) picks for the shape: NULL where it picks the generated
 * kernel; where it has no entry, rt_blas_plan (cuBLASLt wherever it can). */
const RtBlasPlan *rt_blas_pick(RtBlas *b, RtBlasKind kind, int64_t M, int64_t N, int64_t K);
/* Enqueues the GEMM on the runtime's stream (xs, ws unused for BF16). */
bool rt_blas_run(RtBlas *b, DiagEngine *d, const RtBlasPlan *p, RtDevPtr x, RtDevPtr xs, RtDevPtr w, RtDevPtr ws, RtDevPtr y);

#endif
