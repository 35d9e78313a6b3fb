/* blas.c — cuBLASLt through dlopen (see blas.h). The header gives the
 * types and enum values; every function is resolved from the library, so
 * nothing links against it. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/blas.h"
#include "runtime/gemm_table.h"

#include <cublasLt.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define RT_BLAS_WORKSPACE ((size_t)32 << 20)
#define RT_BLAS_MAX_PLANS 256

struct RtBlasPlan {
    RtBlasKind kind;
    int64_t m, n, k;
    bool ok;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
};

struct RtBlas {
    RtCuda *cu;
    void *lib;
    cublasLtHandle_t h;
    RtDevPtr ws;
    char version[64];
    RtBlasPlan plans[RT_BLAS_MAX_PLANS];
    int nplans;
    RtGemmTable *table;   /* the measured choices (NULL: none, the rule alone) */
    cublasStatus_t (*Create)(cublasLtHandle_t *);
    cublasStatus_t (*Destroy)(cublasLtHandle_t);
    size_t (*GetVersion)(void);
    const char *(*StatusString)(cublasStatus_t);
    cublasStatus_t (*DescCreate)(cublasLtMatmulDesc_t *, cublasComputeType_t, cudaDataType_t);
    cublasStatus_t (*DescSet)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t, const void *, size_t);
    cublasStatus_t (*DescDestroy)(cublasLtMatmulDesc_t);
    cublasStatus_t (*LayoutCreate)(cublasLtMatrixLayout_t *, cudaDataType, uint64_t, uint64_t, int64_t);
    cublasStatus_t (*LayoutDestroy)(cublasLtMatrixLayout_t);
    cublasStatus_t (*PrefCreate)(cublasLtMatmulPreference_t *);
    cublasStatus_t (*PrefSet)(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t, const void *, size_t);
    cublasStatus_t (*PrefDestroy)(cublasLtMatmulPreference_t);
    cublasStatus_t (*Heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                                cublasLtMatmulHeuristicResult_t *, int *);
    cublasStatus_t (*Matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *, cublasLtMatrixLayout_t, const void *,
                             cublasLtMatrixLayout_t, const void *, const void *, cublasLtMatrixLayout_t, void *, cublasLtMatrixLayout_t,
                             const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t);
};

static bool resolve(RtBlas *b, void **fn, const char *name) {
    *fn = dlsym(b->lib, name);
    return *fn != NULL;
}

/* A cuBLASLt call that failed: named as written, with the library's text. */
static bool blas_ok(RtBlas *b, DiagEngine *d, cublasStatus_t s, const char *call) {
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    diag_error(d, (SrcLoc){0}, "%s failed: %s (%d)", call, b->StatusString ? b->StatusString(s) : "?", (int)s);
    return false;
}
#define BLAS_CHECK(b, d, call) blas_ok(b, d, (call), #call)

RtBlas *rt_blas_open(RtCuda *c, DiagEngine *d, const DsccTune *t, const char **why) {
    if (!tune_on(t ? t->cublaslt : NULL, true)) {
        *why = "DSCC_CUBLASLT=0";
        return NULL;
    }
    bool bad;
    RtGemmTable *table = rt_gemm_table_open(rt_cuda_sm(c), t ? t->gemm_table : NULL, d, true, &bad);
    if (bad) {
        *why = "the GEMM table does not read";
        return NULL;
    }
    void *lib = dlopen("libcublasLt.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libcublasLt.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        *why = "libcublasLt.so.13 not found";
        rt_gemm_table_free(table);
        return NULL;
    }
    RtBlas *b = calloc(1, sizeof *b);
    b->cu = c;
    b->lib = lib;
    b->table = table;
    bool ok = resolve(b, (void **)&b->Create, "cublasLtCreate") && resolve(b, (void **)&b->Destroy, "cublasLtDestroy") &&
              resolve(b, (void **)&b->GetVersion, "cublasLtGetVersion") && resolve(b, (void **)&b->StatusString, "cublasLtGetStatusString") &&
              resolve(b, (void **)&b->DescCreate, "cublasLtMatmulDescCreate") &&
              resolve(b, (void **)&b->DescSet, "cublasLtMatmulDescSetAttribute") &&
              resolve(b, (void **)&b->DescDestroy, "cublasLtMatmulDescDestroy") &&
              resolve(b, (void **)&b->LayoutCreate, "cublasLtMatrixLayoutCreate") &&
              resolve(b, (void **)&b->LayoutDestroy, "cublasLtMatrixLayoutDestroy") &&
              resolve(b, (void **)&b->PrefCreate, "cublasLtMatmulPreferenceCreate") &&
              resolve(b, (void **)&b->PrefSet, "cublasLtMatmulPreferenceSetAttribute") &&
              resolve(b, (void **)&b->PrefDestroy, "cublasLtMatmulPreferenceDestroy") &&
              resolve(b, (void **)&b->Heuristic, "cublasLtMatmulAlgoGetHeuristic") && resolve(b, (void **)&b->Matmul, "cublasLtMatmul");
    if (!ok) {
        *why = "libcublasLt lacks a function dscc needs";
        dlclose(lib);
        rt_gemm_table_free(table);
        free(b);
        return NULL;
    }
    snprintf(b->version, sizeof b->version, "cuBLASLt %zu", b->GetVersion());
    if (!BLAS_CHECK(b, d, b->Create(&b->h)) || !rt_cuda_alloc(c, d, RT_BLAS_WORKSPACE, &b->ws)) {
        rt_blas_close(b);
        return NULL;
    }
    return b;
}

static void plan_free(RtBlas *b, RtBlasPlan *p) {
    if (p->op) b->DescDestroy(p->op);
    if (p->la) b->LayoutDestroy(p->la);
    if (p->lb) b->LayoutDestroy(p->lb);
    if (p->ld) b->LayoutDestroy(p->ld);
}

void rt_blas_close(RtBlas *b) {
    if (!b) return;
    for (int i = 0; i < b->nplans; i++) plan_free(b, &b->plans[i]);
    if (b->ws) rt_cuda_free(b->cu, b->ws);
    if (b->h) b->Destroy(b->h);
    rt_gemm_table_free(b->table);
    dlclose(b->lib);
    free(b);
}

const char *rt_blas_version(const RtBlas *b) { return b->version; }

void rt_blas_desc(RtBlasKind kind, int64_t M, int64_t N, int64_t K, RtBlasDesc *o) {
    bool fp8 = kind == RT_BLAS_FP8_BLOCK;
    int in = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    *o = (RtBlasDesc){.a_type = in, .b_type = in, .d_type = kind == RT_BLAS_BF16_F32 ? CUDA_R_32F : CUDA_R_16BF,
                      .compute = CUBLAS_COMPUTE_32F, .scale_type = CUDA_R_32F,
                      .a_scale = fp8 ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F : -1,
                      .b_scale = fp8 ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F : -1,
                      .a_rows = (uint64_t)K, .a_cols = (uint64_t)N, .b_rows = (uint64_t)K, .b_cols = (uint64_t)M,
                      .d_rows = (uint64_t)N, .d_cols = (uint64_t)M, .lda = K, .ldb = K, .ldd = N};
}

/* Descriptors, layouts and the heuristic's first algorithm for p's shape
 * (rt_blas_desc's); false when any step refuses (the shape is then
 * unsupported). The weight's 128x128 scales are A's, the activations'
 * 1x128 ones B's: VEC128 scales of B are [K/128][M] (M-major, M a multiple
 * of 4), which is how the quantize stores them. */
static bool plan_make(RtBlas *b, RtBlasPlan *p) {
    RtBlasDesc s;
    rt_blas_desc(p->kind, p->m, p->n, p->k, &s);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (b->DescCreate(&p->op, (cublasComputeType_t)s.compute, (cudaDataType_t)s.scale_type) != CUBLAS_STATUS_SUCCESS) return false;
    if (b->DescSet(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) || b->DescSet(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb))
        return false;
    if (s.a_scale >= 0) {
        int32_t ma = s.a_scale, mb = s.b_scale;
        /* the heuristic wants the scale pointers set; each run sets the real ones */
        void *any = (void *)(uintptr_t)b->ws;
        if (b->DescSet(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma) ||
            b->DescSet(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb) ||
            b->DescSet(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &any, sizeof any) ||
            b->DescSet(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &any, sizeof any))
            return false;
    }
    if (b->LayoutCreate(&p->la, (cudaDataType)s.a_type, s.a_rows, s.a_cols, s.lda) ||
        b->LayoutCreate(&p->lb, (cudaDataType)s.b_type, s.b_rows, s.b_cols, s.ldb) ||
        b->LayoutCreate(&p->ld, (cudaDataType)s.d_type, s.d_rows, s.d_cols, s.ldd))
        return false;
    cublasLtMatmulPreference_t pref;
    if (b->PrefCreate(&pref)) return false;
    size_t ws = RT_BLAS_WORKSPACE;
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    bool ok = b->PrefSet(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == CUBLAS_STATUS_SUCCESS &&
              b->Heuristic(b->h, p->op, p->la, p->lb, p->ld, p->ld, pref, 1, &h, &found) == CUBLAS_STATUS_SUCCESS && found > 0;
    b->PrefDestroy(pref);
    if (ok) p->algo = h.algo;
    return ok;
}

const RtBlasPlan *rt_blas_plan(RtBlas *b, RtBlasKind kind, int64_t M, int64_t N, int64_t K) {
    if (!b || M < 1 || N % 8 || K % 16) return NULL;
    if (kind == RT_BLAS_FP8_BLOCK && (K % 512 || M % 4)) return NULL; /* whole groups of 4 K blocks; the scales' M padding */
    for (int i = 0; i < b->nplans; i++) {
        RtBlasPlan *p = &b->plans[i];
        if (p->kind == kind && p->m == M && p->n == N && p->k == K) return p->ok ? p : NULL;
    }
    if (b->nplans == RT_BLAS_MAX_PLANS) return NULL; /* many distinct shapes (varying M): the generated kernels take the rest */
    RtBlasPlan *p = &b->plans[b->nplans++];
    *p = (RtBlasPlan){.kind = kind, .m = M, .n = N, .k = K};
    p->ok = plan_make(b, p);
    if (!p->ok) plan_free(b, p), p->op = NULL, p->la = p->lb = p->ld = NULL;
    return p->ok ? p : NULL;
}

const RtBlasPlan *rt_blas_pick(RtBlas *b, RtBlasKind kind, int64_t M, int64_t N, int64_t K) {
    const RtBlasPlan *p = rt_blas_plan(b, kind, M, N, K);
    /* the BF16 GEMM's measured choice holds for its f32-out form too: the same products, a wider store */
    return rt_gemm_use_cublaslt(b ? b->table : NULL, kind == RT_BLAS_FP8_BLOCK ? RT_GEMM_FP8 : RT_GEMM_BF16, M, N, K, p != NULL) ? p : NULL;
}

bool rt_blas_run(RtBlas *b, DiagEngine *d, const RtBlasPlan *p, RtDevPtr x, RtDevPtr xs, RtDevPtr w, RtDevPtr ws, RtDevPtr y) {
    if (p->kind == RT_BLAS_FP8_BLOCK) {
        void *pa = (void *)(uintptr_t)ws, *pb = (void *)(uintptr_t)xs;
        if (!BLAS_CHECK(b, d, b->DescSet(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &pa, sizeof pa)) ||
            !BLAS_CHECK(b, d, b->DescSet(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &pb, sizeof pb)))
            return false;
    }
    const float one = 1.0f, zero = 0.0f;
    return BLAS_CHECK(b, d, b->Matmul(b->h, p->op, &one, (const void *)(uintptr_t)w, p->la, (const void *)(uintptr_t)x, p->lb, &zero,
                                      (void *)(uintptr_t)y, p->ld, (void *)(uintptr_t)y, p->ld, &p->algo, (void *)(uintptr_t)b->ws,
                                      RT_BLAS_WORKSPACE, (cudaStream_t)rt_cuda_stream(b->cu)));
}
#endif
