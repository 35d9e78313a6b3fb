/* test_blas.c — what the cuBLASLt plans ask for (runtime/blas.c,
 * rt_blas_desc), on any machine: the library needs a GPU, its header does
 * not. The block-scaled FP8 GEMM takes E4M3 operands with the weight's
 * 128x128 scales on A and the activations' VEC128 scales on B, whose
 * K-block-major layout is the one the quantize stores; the BF16 GEMM
 * writes bf16, and its f32 form (the LM head's logits, no cast kernel
 * after it) an f32 D with the same inputs and f32 compute. Skipped (77)
 * without the CUDA toolkit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#ifdef DSCC_HAVE_NVRTC
#include "runtime/blas.h"

#include <cublasLt.h>

/* The column-major problem y^T[N, M] = w[K, N]^T . x^T[K, M] every kind shares. */
static void check_shape(const RtBlasDesc *s, int64_t M, int64_t N, int64_t K) {
    assert_true(s->a_rows == (uint64_t)K && s->a_cols == (uint64_t)N && s->lda == K);
    assert_true(s->b_rows == (uint64_t)K && s->b_cols == (uint64_t)M && s->ldb == K);
    assert_true(s->d_rows == (uint64_t)N && s->d_cols == (uint64_t)M && s->ldd == N);
    assert_int_equal(s->compute, CUBLAS_COMPUTE_32F);
    assert_int_equal(s->scale_type, CUDA_R_32F);
}

static void test_fp8_block(void **state) {
    (void)state;
    RtBlasDesc s;
    rt_blas_desc(RT_BLAS_FP8_BLOCK, 32, 2112, 7168, &s);
    check_shape(&s, 32, 2112, 7168);
    assert_true(s.a_type == CUDA_R_8F_E4M3 && s.b_type == CUDA_R_8F_E4M3 && s.d_type == CUDA_R_16BF);
    assert_int_equal(s.a_scale, CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F);
    assert_int_equal(s.b_scale, CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F);
}

static void test_bf16(void **state) {
    (void)state;
    RtBlasDesc s;
    rt_blas_desc(RT_BLAS_BF16, 100, 384, 512, &s);
    check_shape(&s, 100, 384, 512);
    assert_true(s.a_type == CUDA_R_16BF && s.b_type == CUDA_R_16BF && s.d_type == CUDA_R_16BF);
    assert_true(s.a_scale == -1 && s.b_scale == -1);
}

static void test_bf16_f32_out(void **state) {
    (void)state;
    RtBlasDesc s;
    rt_blas_desc(RT_BLAS_BF16_F32, 4, 129280, 7168, &s);
    check_shape(&s, 4, 129280, 7168);
    assert_true(s.a_type == CUDA_R_16BF && s.b_type == CUDA_R_16BF && s.d_type == CUDA_R_32F);
    assert_true(s.a_scale == -1 && s.b_scale == -1);
    /* no library loaded: no plan, whatever the kind (the generated kernels run) */
    assert_null(rt_blas_plan(NULL, RT_BLAS_BF16_F32, 4, 129280, 7168));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fp8_block), cmocka_unit_test(test_bf16), cmocka_unit_test(test_bf16_f32_out)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int main(void) { return 77; }
#endif
