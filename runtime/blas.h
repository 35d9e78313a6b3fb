/* blas.h — cuBLASLt for the CUDA backend, loaded at run time (private to
 * runtime/).
 *
 * libcublasLt.so is opened with dlopen, like the driver, so dscc builds and
 * runs where it is absent (the generated kernels are used then). The CUDA
 * backend hands it the GEMMs cuBLASLt does best: DeepSeek's block-scaled
 * FP8 linear (1x128 activation scales, 128x128 weight scales, BF16 out) and
 * the BF16 linear (BF16 or f32 out). Operands are read as the generated
 * kernels store them (the activation scales K-block-major): no kernel
 * converts anything for the library. A plan per (kind, M, N, K) is made once — descriptors,
 * layouts and the heuristic's algorithm — and reused on every step; a
 * shape cuBLASLt has no algorithm for is remembered as unsupported, and the
 * caller launches its own kernel instead. */
#ifndef DSCC_RT_BLAS_H
#define DSCC_RT_BLAS_H

#include "runtime/cuda.h"

typedef enum {
    RT_BLAS_FP8_BLOCK, /* y bf16 = (x e4m3 . xs[K/128][M]) (w e4m3 . ws[N/128][K/128])^T; xs as the quantize stores it */
    RT_BLAS_BF16,      /* y bf16 = x bf16 . w bf16^T, f32 accumulation */
    RT_BLAS_BF16_F32,  /* y f32 = x bf16 . w bf16^T, f32 accumulation (the LM head's logits: no cast after it) */
} RtBlasKind;

/* What a plan of `kind` asks cuBLASLt for, in its column-major terms
 * y^T[N, M] = w[K, N]^T . x^T[K, M] (A = w transposed, B = x, C = D = y^T):
 * values of cublasLt.h's cudaDataType, cublasComputeType_t and
 * cublasLtMatmulMatrixScale_t. plan_make builds the plan from it. */
typedef struct {
    int a_type, b_type, d_type; /* A's, B's, and C's = D's data type */
    int compute, scale_type;    /* compute type; alpha's and beta's type */
    int a_scale, b_scale;       /* block scale modes of A (w) and B (x); -1: none */
    uint64_t a_rows, a_cols, b_rows, b_cols, d_rows, d_cols;
    int64_t lda, ldb, ldd;
} RtBlasDesc;
/* The description of (kind, M, N, K) (only with the CUDA toolkit's headers). */
void rt_blas_desc(RtBlasKind kind, int64_t M, int64_t N, int64_t K, RtBlasDesc *o);

typedef struct RtBlas RtBlas;
typedef struct RtBlasPlan RtBlasPlan;

/* NULL when libcublasLt cannot be loaded or DSCC_CUBLASLT=0 (t->cublaslt;
 * t NULL: every switch unset; not an error: the generated kernels run);
 * *why says which. Errors of a loaded library are reported, and those of
 * the GEMM table (DSCC_GEMM_TABLE=FILE, t->gemm_table: a file that does not
 * read or parse; `none`: no table). */
RtBlas *rt_blas_open(RtCuda *c, DiagEngine *d, const DsccTune *t, const char **why);
void rt_blas_close(RtBlas *b);
/* "cuBLASLt 130100" */
const char *rt_blas_version(const RtBlas *b);

/* The plan for y[M, N] = x[M, K] . w[N, K]^T (row-major, as the IR stores
 * them), keyed on the kind (and so on y's type); NULL when cuBLASLt has no algorithm for it (or its layout rules
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
