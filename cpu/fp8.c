/* fp8.c — E4M3 rounding and the block-scaled GEMM of DeepSeek-V3.
 *
 * Values are rounded, not encoded: the executor only needs what an FP8
 * tensor core would see. E4M3 has 3 mantissa bits, exponent bias 7, normals
 * down to 2^-6, subnormals in steps of 2^-9, and no infinities: the largest
 * finite value is 448 and quantizers saturate to it. */
#include "cpu/cpu.h"

#include <math.h>
#include <stdlib.h>

float cpu_fp8_round(float v) {
    if (isnan(v)) return v;
    float a = fabsf(v);
    float q;
    if (a >= 448.0f) {
        q = 448.0f;
    } else if (a < 0.015625f) { /* below 2^-6: subnormal grid of 2^-9 */
        q = nearbyintf(a * 512.0f) / 512.0f;
    } else {
        int e;
        frexpf(a, &e);                    /* a = m * 2^e, m in [0.5, 1) */
        float step = ldexpf(1.0f, e - 4); /* 3 mantissa bits below the leading one */
        q = nearbyintf(a / step) * step;  /* nearbyint rounds ties to even */
        if (q > 448.0f) q = 448.0f;
    }
    return copysignf(q, v);
}

/* Quantizes n values with one scale; returns the scale (amax / 448). */
static float quant_tile(const float *src, float *dst, int64_t n, int64_t stride) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(src[i * stride]));
    float s = amax / 448.0f;
    for (int64_t i = 0; i < n; i++) dst[i] = s > 0 ? cpu_fp8_round(src[i * stride] / s) : 0.0f;
    return s;
}

void cpu_fp8_act_quant(const float *x, int64_t M, int64_t K, int64_t block, float *codes, float *scales) {
    int64_t nkb = (K + block - 1) / block;
    float *tmp = codes ? NULL : malloc(sizeof(float) * (size_t)block);
    for (int64_t m = 0; m < M; m++)
        for (int64_t kb = 0; kb < nkb; kb++) {
            int64_t k0 = kb * block, n = K - k0 < block ? K - k0 : block;
            float s = quant_tile(x + m * K + k0, codes ? codes + m * K + k0 : tmp, n, 1);
            if (scales) scales[m * nkb + kb] = s;
        }
    free(tmp);
}

void cpu_fp8_weight_quant(const float *w, int64_t O, int64_t K, float *codes, float *scales) {
    const int64_t BK = 128, nkb = (K + BK - 1) / BK, nob = (O + BK - 1) / BK;
    for (int64_t ob = 0; ob < nob; ob++)
        for (int64_t kb = 0; kb < nkb; kb++) {
            int64_t o0 = ob * BK, k0 = kb * BK;
            int64_t no = O - o0 < BK ? O - o0 : BK, nk = K - k0 < BK ? K - k0 : BK;
            float amax = 0;
            for (int64_t o = 0; o < no; o++)
                for (int64_t k = 0; k < nk; k++) amax = fmaxf(amax, fabsf(w[(o0 + o) * K + k0 + k]));
            float s = amax / 448.0f;
            if (scales) scales[ob * nkb + kb] = s;
            if (codes)
                for (int64_t o = 0; o < no; o++)
                    for (int64_t k = 0; k < nk; k++) {
                        float v = w[(o0 + o) * K + k0 + k];
                        codes[(o0 + o) * K + k0 + k] = s > 0 ? cpu_fp8_round(v / s) : 0.0f;
                    }
        }
}

void cpu_fp8_gemm(const float *q, const float *qs, const float *w, const float *ws, float *y, int64_t M, int64_t K,
                  int64_t O) {
    const int64_t BK = 128, nkb = (K + BK - 1) / BK;
    for (int64_t m = 0; m < M; m++)
        for (int64_t o = 0; o < O; o++) {
            float acc = 0;
            for (int64_t kb = 0; kb < nkb; kb++) {
                int64_t k0 = kb * BK, nk = K - k0 < BK ? K - k0 : BK;
                float part = 0; /* products of 4-bit mantissas, summed in FP32 */
                for (int64_t k = 0; k < nk; k++) part += q[m * K + k0 + k] * w[o * K + k0 + k];
                acc += part * qs[m * nkb + kb] * ws[(o / BK) * nkb + kb];
            }
            y[m * O + o] = acc;
        }
}

void cpu_fp8_linear(const float *x, const float *w, float *y, int64_t M, int64_t K, int64_t O) {
    const int64_t nkb = (K + 127) / 128, nob = (O + 127) / 128;
    float *qx = malloc(sizeof(float) * (size_t)(M * K)), *sx = malloc(sizeof(float) * (size_t)(M * nkb));
    float *qw = malloc(sizeof(float) * (size_t)(O * K)), *sw = malloc(sizeof(float) * (size_t)(nob * nkb));
    if (!qx || !sx || !qw || !sw) dscc_internal_error(__FILE__, __LINE__, "out of host memory");
    cpu_fp8_act_quant(x, M, K, 128, qx, sx);
    cpu_fp8_weight_quant(w, O, K, qw, sw);
    cpu_fp8_gemm(qx, sx, qw, sw, y, M, K, O);
    free(qx);
    free(sx);
    free(qw);
    free(sw);
}
