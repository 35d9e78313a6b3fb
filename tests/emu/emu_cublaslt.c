/* emu_cublaslt.c — a stand-in libcublasLt.so.13 for the emulated device
 * (tests/emu/emu_cuda.c), so the runtime's cuBLASLt path (runtime/blas.c,
 * gpu_exec's library calls) runs without a GPU: the plans it makes, the
 * pointers it passes (the activation scales as the quantize stored them,
 * an f32 D for the LM head) and the order of the call on its stream.
 *
 * It implements the calls blas.c resolves, for the GEMMs dscc asks for:
 * D = alpha . op(A) . op(B) (+ beta . C), column-major, A transposed, B not,
 * f32 compute; A and B both bf16 (D bf16 or f32), or both E4M3 with A's
 * 128x128 block scales ([N/128][K/128], K fastest) and B's VEC128 scales
 * ([K/128][M], M fastest: the layout dscc's quantize stores), D bf16. The
 * heuristic refuses anything else (the caller then runs its own kernel).
 * Those scale layouts are this stand-in's reading of cuBLASLt's, the same
 * reading blas.c makes: what it checks is the runtime's plumbing, the real
 * library's layouts only a GPU run checks. The product runs on the CPU as
 * a host function queued on the call's stream (cuLaunchHostFunc), so it
 * happens in stream order and is captured into a CUDA graph like a kernel;
 * device pointers are host pointers on the emulated device. */
#include <cublasLt.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EMU_API __attribute__((visibility("default")))

typedef struct {
    int32_t transa, transb, ascale, bscale;
    const float *sa, *sb;
    int compute, scale_type;
} Desc;

typedef struct {
    int type;
    uint64_t rows, cols;
    int64_t ld;
} Layout;

typedef struct {
    bool fp8, f32_out;
    uint64_t n, m, k; /* D is n x m (dscc's y^T: N x M), op(A) n x k, op(B) k x m */
    const void *a, *b;
    void *d;
    int64_t lda, ldb, ldd;
    const float *sa, *sb;
    float alpha, beta;
    bool owned; /* freed after it runs (not captured into a graph, which may replay it) */
} Job;

struct cublasLtContext {
    int unused;
};

static float bf16f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t fbf16(float f) { /* nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float e4m3f(uint8_t b) { /* OCP E4M3 */
    unsigned e = (b >> 3) & 15u, m = b & 7u;
    float v = e == 15u && m == 7u ? NAN : e == 0u ? (float)m * 0.001953125f : ldexpf(1.0f + (float)m / 8.0f, (int)e - 7);
    return (b & 0x80u) ? -v : v;
}

/* op(A)[i][kk] = A[kk + i * lda] (A transposed), op(B)[kk][j] = B[kk + j * ldb]. */
static float elem(const Job *J, bool isa, uint64_t row, uint64_t kk) {
    const void *p = isa ? J->a : J->b;
    int64_t at = (int64_t)kk + (int64_t)row * (isa ? J->lda : J->ldb);
    return J->fp8 ? e4m3f(((const uint8_t *)p)[at]) : bf16f(((const uint16_t *)p)[at]);
}

static void run_job(void *arg) {
    Job *J = arg;
    uint64_t nkb = (J->k + 127) / 128;
    for (uint64_t j = 0; j < J->m; j++)
        for (uint64_t i = 0; i < J->n; i++) {
            float acc = 0.0f;
            for (uint64_t kb = 0; kb < nkb; kb++) { /* DeepSeek's promotion: each K block's sum scaled, then added */
                float part = 0.0f;
                for (uint64_t kk = kb * 128; kk < J->k && kk < kb * 128 + 128; kk++) part += elem(J, true, i, kk) * elem(J, false, j, kk);
                acc += J->fp8 ? part * J->sa[(i / 128) * nkb + kb] * J->sb[kb * J->m + j] : part;
            }
            int64_t at = (int64_t)i + (int64_t)j * J->ldd;
            float c = J->beta != 0.0f ? (J->f32_out ? ((float *)J->d)[at] : bf16f(((uint16_t *)J->d)[at])) : 0.0f;
            float v = J->alpha * acc + J->beta * c;
            if (J->f32_out) ((float *)J->d)[at] = v;
            else ((uint16_t *)J->d)[at] = fbf16(v);
        }
    if (J->owned) free(J);
}

EMU_API cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = calloc(1, sizeof **h);
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
EMU_API cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
EMU_API size_t cublasLtGetVersion(void) { return 130000; }
EMU_API const char *cublasLtGetStatusString(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? "success (emulated)" : "failed (emulated)"; }

EMU_API cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale_type) {
    Desc *x = calloc(1, sizeof *x);
    if (!x) return CUBLAS_STATUS_ALLOC_FAILED;
    x->ascale = x->bscale = -1;
    x->compute = (int)compute, x->scale_type = (int)scale_type;
    *d = (cublasLtMatmulDesc_t)(void *)x;
    return CUBLAS_STATUS_SUCCESS;
}
EMU_API cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void *buf, size_t size) {
    Desc *x = (Desc *)(void *)d;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: case CUBLASLT_MATMUL_DESC_TRANSB: case CUBLASLT_MATMUL_DESC_A_SCALE_MODE: case CUBLASLT_MATMUL_DESC_B_SCALE_MODE: {
        if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        int32_t v;
        memcpy(&v, buf, sizeof v);
        if (attr == CUBLASLT_MATMUL_DESC_TRANSA) x->transa = v;
        else if (attr == CUBLASLT_MATMUL_DESC_TRANSB) x->transb = v;
        else if (attr == CUBLASLT_MATMUL_DESC_A_SCALE_MODE) x->ascale = v;
        else x->bscale = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_A_SCALE_POINTER: case CUBLASLT_MATMUL_DESC_B_SCALE_POINTER:
        if (size != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(attr == CUBLASLT_MATMUL_DESC_A_SCALE_POINTER ? (void *)&x->sa : (void *)&x->sb, buf, sizeof(void *));
        return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}
EMU_API cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld) {
    Layout *x = calloc(1, sizeof *x);
    if (!x) return CUBLAS_STATUS_ALLOC_FAILED;
    if (ld < (int64_t)rows) {
        free(x);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *x = (Layout){(int)type, rows, cols, ld};
    *l = (cublasLtMatrixLayout_t)(void *)x;
    return CUBLAS_STATUS_SUCCESS;
}
EMU_API cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = calloc(1, sizeof **p);
    return *p ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
EMU_API cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *b, size_t s) {
    (void)p, (void)a, (void)b, (void)s;
    return CUBLAS_STATUS_SUCCESS;
}
EMU_API cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

/* Whether the stand-in computes this GEMM (see the file comment). */
static bool supported(const Desc *x, const Layout *a, const Layout *b, const Layout *c, const Layout *d) {
    if (x->transa != CUBLAS_OP_T || x->transb != CUBLAS_OP_N || x->compute != CUBLAS_COMPUTE_32F || x->scale_type != CUDA_R_32F) return false;
    if (a->rows != b->rows || a->cols != d->rows || b->cols != d->cols || c->type != d->type || c->rows != d->rows || c->cols != d->cols ||
        c->ld != d->ld)
        return false;
    if (a->type == CUDA_R_8F_E4M3 && b->type == CUDA_R_8F_E4M3)
        return x->ascale == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F && x->bscale == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F &&
               d->type == CUDA_R_16BF && a->rows % 128 == 0 && b->cols % 4 == 0;
    return a->type == CUDA_R_16BF && b->type == CUDA_R_16BF && x->ascale < 0 && x->bscale < 0 && (d->type == CUDA_R_16BF || d->type == CUDA_R_32F);
}

EMU_API cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                                                      cublasLtMatrixLayout_t lc, cublasLtMatrixLayout_t ld, cublasLtMatmulPreference_t pref, int want,
                                                      cublasLtMatmulHeuristicResult_t *res, int *found) {
    (void)h, (void)pref;
    *found = 0;
    if (want < 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (!supported((Desc *)(void *)op, (Layout *)(void *)la, (Layout *)(void *)lb, (Layout *)(void *)lc, (Layout *)(void *)ld))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    memset(res, 0, sizeof *res);
    res->wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

/* The emulated driver's calls, from the libcuda.so.1 this process loaded. */
static int (*launch_host)(void *, void (*)(void *), void *);
static int (*is_capturing)(void *, int *);

EMU_API cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A, cublasLtMatrixLayout_t la,
                                      const void *B, cublasLtMatrixLayout_t lb, const void *beta, const void *C, cublasLtMatrixLayout_t lc, void *D,
                                      cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t *algo, void *ws, size_t wss, cudaStream_t stream) {
    (void)h, (void)algo, (void)ws, (void)wss;
    const Desc *x = (const Desc *)(const void *)op;
    const Layout *a = (const Layout *)(const void *)la, *b = (const Layout *)(const void *)lb, *d = (const Layout *)(const void *)ld;
    if (!supported(x, a, b, (const Layout *)(const void *)lc, d) || (C != D && *(const float *)beta != 0.0f)) return CUBLAS_STATUS_NOT_SUPPORTED;
    bool fp8 = a->type == CUDA_R_8F_E4M3;
    if (fp8 && (!x->sa || !x->sb)) return CUBLAS_STATUS_INVALID_VALUE;
    if (!launch_host) {
        void *cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (cu) *(void **)&launch_host = dlsym(cu, "cuLaunchHostFunc"), *(void **)&is_capturing = dlsym(cu, "cuStreamIsCapturing");
        if (!launch_host || !is_capturing) return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    int capturing = 0;
    if (is_capturing(stream, &capturing)) return CUBLAS_STATUS_EXECUTION_FAILED;
    Job *J = malloc(sizeof *J);
    if (!J) return CUBLAS_STATUS_ALLOC_FAILED;
    *J = (Job){fp8, d->type == CUDA_R_32F, d->rows, d->cols, a->rows, A, B, D, a->ld, b->ld, d->ld, x->sa, x->sb,
               *(const float *)alpha, *(const float *)beta, capturing == 0}; /* the scale pointers as they are now */
    if (launch_host(stream, run_job, J)) {
        free(J);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}
