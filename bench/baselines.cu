// baselines.cu — the numbers dscc's generated kernels will be measured
// against, taken on the GPU in one run: HBM copy bandwidth (the memory
// floor), cuBLASLt dense FP8 GEMM throughput (the compute roofline), and
// cuBLASLt's DeepSeek-style block-scaled FP8 GEMM (1x128 activation tiles,
// 128x128 weight blocks, BF16 out) at DeepSeek-V3's linear shapes.
//
// y[M,N] = x[M,K] . W[N,K]^T is cuBLAS's column-major D(NxM) = op(A) B with
// A = W (stored KxN, transposed), B = x (KxM). All scales are 1.0, so the
// block-scaled and per-tensor results must agree exactly; the program checks
// that before timing. Build: nvcc -O2 -arch=sm_90a baselines.cu -lcublasLt
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CUDA_CHECK(x)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            exit(3);                                                                               \
        }                                                                                          \
    } while (0)
#define CUBLAS_CHECK(x)                                                                            \
    do {                                                                                           \
        cublasStatus_t s_ = (x);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "%s:%d: %s: status %d\n", __FILE__, __LINE__, #x, (int)s_);            \
            return -1.0;                                                                           \
        }                                                                                          \
    } while (0)

static cublasLtHandle_t lt;
static void *workspace;
static const size_t WS = 64u << 20;

__global__ void fill_fp8(__nv_fp8_e4m3 *p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        p[i] = __nv_fp8_e4m3(((int)(h % 200) - 100) / 25.0f); // values in [-4, 4)
    }
}

__global__ void fill_f32(float *p, size_t n, float v) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) p[i] = v;
}

// Runs D = A^T B once (timed over iters) and returns milliseconds per call,
// or -1 when cuBLASLt has no algorithm for the configuration.
static double gemm(int M, int N, int K, bool block_scaled, const void *A, const void *B, void *D, const float *sa,
                   const float *sb, int iters) {
    cublasLtMatmulDesc_t op;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (block_scaled) {
        int32_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, mb = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb));
    }
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb));
    cublasLtMatrixLayout_t la, lb, ld;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, K, N, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, K, M, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, N, M, N));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &WS, sizeof WS));
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 1, &h, &found);
    double ms = -1;
    if (found) {
        float alpha = 1, beta = 0;
        cudaEvent_t e0, e1;
        CUDA_CHECK(cudaEventCreate(&e0));
        CUDA_CHECK(cudaEventCreate(&e1));
        for (int i = 0; i < 3; i++) cublasLtMatmul(lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &h.algo, workspace, WS, 0);
        CUDA_CHECK(cudaEventRecord(e0));
        for (int i = 0; i < iters; i++)
            cublasLtMatmul(lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &h.algo, workspace, WS, 0);
        CUDA_CHECK(cudaEventRecord(e1));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float t;
        CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        ms = t / iters;
        if (cudaGetLastError() != cudaSuccess) ms = -1;
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(op);
    return ms;
}

static double bf16_max_diff(const __nv_bfloat16 *a, const __nv_bfloat16 *b, size_t n) {
    std::vector<__nv_bfloat16> x(n), y(n);
    CUDA_CHECK(cudaMemcpy(x.data(), a, n * 2, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(y.data(), b, n * 2, cudaMemcpyDeviceToHost));
    double m = 0;
    for (size_t i = 0; i < n; i++) m = std::max(m, (double)fabsf(__bfloat162float(x[i]) - __bfloat162float(y[i])));
    return m;
}

int main() {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int ver = 0;
    cublasLtGetProperty(MAJOR_VERSION, &ver);
    printf("device: %s (%d SMs), cuBLASLt %zu\n", prop.name, prop.multiProcessorCount, cublasLtGetVersion());
    CUBLAS_CHECK(cublasLtCreate(&lt)) ;
    CUDA_CHECK(cudaMalloc(&workspace, WS));

    // HBM: device-to-device copy of 2 GiB, read + write
    size_t bytes = 2ull << 30;
    void *src, *dst;
    CUDA_CHECK(cudaMalloc(&src, bytes));
    CUDA_CHECK(cudaMalloc(&dst, bytes));
    CUDA_CHECK(cudaMemset(src, 1, bytes));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(e0));
    for (int i = 0; i < 10; i++) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float t;
    CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    printf("hbm_copy_GBps %.0f\n", 2.0 * bytes * 10 / (t * 1e-3) / 1e9);
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));

    // operands big enough for every shape below
    const int MAXM = 8192, MAXN = 24576, MAXK = 18432;
    __nv_fp8_e4m3 *A, *B;
    __nv_bfloat16 *D, *D2;
    float *sa, *sb;
    CUDA_CHECK(cudaMalloc(&A, (size_t)MAXN * MAXK));
    CUDA_CHECK(cudaMalloc(&B, (size_t)MAXM * MAXK));
    CUDA_CHECK(cudaMalloc(&D, (size_t)MAXM * MAXN * 2));
    CUDA_CHECK(cudaMalloc(&D2, (size_t)MAXM * MAXN * 2));
    size_t nscale = (size_t)(MAXN / 128 + 1) * (MAXK / 128 + 1) + (size_t)MAXM * (MAXK / 128 + 1);
    CUDA_CHECK(cudaMalloc(&sa, nscale * 4));
    CUDA_CHECK(cudaMalloc(&sb, nscale * 4));
    fill_fp8<<<1024, 256>>>(A, (size_t)MAXN * MAXK, 1u);
    fill_fp8<<<1024, 256>>>(B, (size_t)MAXM * MAXK, 2u);
    fill_f32<<<1024, 256>>>(sa, nscale, 1.0f);
    fill_f32<<<1024, 256>>>(sb, nscale, 1.0f);
    CUDA_CHECK(cudaDeviceSynchronize());

    // dense FP8 roofline: per-tensor scales, 8192^3
    double ms = gemm(8192, 8192, 8192, false, A, B, D, sa, sb, 20);
    printf("dense_fp8_TFLOPS %.0f\n", ms > 0 ? 2.0 * 8192 * 8192 * 8192 / (ms * 1e-3) / 1e12 : -1.0);

    // block-scaled at V3 shapes; all scales 1, so it must equal the per-tensor GEMM
    struct Shape { const char *name; int N, K; } shapes[] = {
        {"q_a", 1536, 7168},          {"q_b", 24576, 1536},         {"kv_a", 576, 7168},
        {"o_proj", 7168, 16384},      {"expert_gate_up", 2048, 7168}, {"expert_down", 7168, 2048},
        {"dense_gate_up", 18432, 7168}, {"dense_down", 7168, 18432}};
    int Ms[] = {1, 64, 128, 512, 1024, 4096};
    printf("| shape (N x K) | M | block-scaled FP8 TFLOPS | per-tensor FP8 TFLOPS |\n|---|---|---|---|\n");
    for (const Shape &s : shapes)
        for (int M : Ms) {
            double tb = gemm(M, s.N, s.K, true, A, B, D, sa, sb, 20);
            double tp = gemm(M, s.N, s.K, false, A, B, D2, sa, sb, 20);
            if (tb > 0 && tp > 0) {
                double diff = bf16_max_diff(D, D2, (size_t)M * s.N);
                if (diff > 0) printf("MISMATCH %s M=%d: max |block - tensor| = %g\n", s.name, M, diff);
            }
            double fl = 2.0 * M * s.N * s.K;
            printf("| %s (%d x %d) | %d | %s%.1f | %.1f |\n", s.name, s.N, s.K, M, tb > 0 ? "" : "unsupported ",
                   tb > 0 ? fl / (tb * 1e-3) / 1e12 : 0.0, tp > 0 ? fl / (tp * 1e-3) / 1e12 : 0.0);
        }
    return 0;
}
