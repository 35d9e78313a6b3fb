/* fp8.c — E4M3 rounding and the block-scaled GEMM of DeepSeek-V3.
 *
 * The executor holds FP8 tensors as the float value of each code, so the
 * kernels need only cpu_fp8_round; the byte encoding (cpu_fp8_e4m3_encode /
 * _decode) exists for checkpoints and tests and agrees with it exactly.
 * E4M3 (OCP "fn"): 1 sign, 4 exponent bits with bias 7, 3 mantissa bits;
 * normals down to 2^-6, subnormals in steps of 2^-9, no infinities, NaN
 * only as S.1111.111, so the largest finite value is 448. The quantizers
 * saturate: anything at or beyond ±448 (infinities included) becomes ±448,
 * as DeepSeek's scaled casts do. */
#include "cpu/internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* By bits, no libm calls (loading FP8 weights rounds every element twice):
 * a normal keeps 3 mantissa bits, rounded to nearest even by adding half
 * an ulp of the kept bits (less one, plus the lowest kept bit) and
 * clearing the rest, a carry moving it up a binade; below 2^-6 the grid is
 * 2^-9, which adding and subtracting 2^14 rounds to (ties to even, in the
 * default rounding mode). test_cpu_fp8 checks it against the definition
 * over 2^24 float patterns. */
#if defined(__FAST_MATH__) || FLT_EVAL_METHOD != 0
#error "cpu_fp8_round rounds by adding and subtracting 2^14 in float: it needs IEEE float arithmetic (no -ffast-math, no x87 excess precision)"
#endif
static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float cpu_fp8_round(float v) {
    uint32_t u = f2u(v), sign = u & 0x80000000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return v;                  /* NaN */
    if (a >= 0x43e00000u) return u2f(sign | 0x43e00000u); /* |v| >= 448 (infinities too): 448 */
    float q;
    if (a < 0x3c800000u) { /* below 2^-6: subnormal grid of 2^-9 */
        q = (u2f(a) + 16384.0f) - 16384.0f;
    } else {
        a = (a + 0x7ffffu + ((a >> 20) & 1u)) & ~0xfffffu;
        q = a >= 0x43e00000u ? 448.0f : u2f(a); /* rounding up past 448 saturates */
    }
    return u2f(f2u(q) | sign);
}

float cpu_fp8_e4m3_decode(uint8_t code) {
    int e = (code >> 3) & 15, m = code & 7;
    float v = e == 15 && m == 7 ? NAN : e == 0 ? ldexpf((float)m, -9) : ldexpf((float)(8 + m), e - 10);
    return code & 0x80 ? -v : v;
}

uint8_t cpu_fp8_e4m3_encode(float v) {
    uint32_t u = f2u(v);
    uint8_t sign = (u >> 24) & 0x80u;
    if ((u & 0x7fffffffu) > 0x7f800000u) return sign | 0x7f;
    uint32_t q = f2u(cpu_fp8_round(v)) & 0x7fffffffu;
    if (q < 0x3c800000u) return sign | (uint8_t)(u2f(q) * 512.0f); /* subnormal (or zero): m * 2^-9 */
    /* q = 1.mmm x 2^(E - 127): exponent field E - 120, the 3 mantissa bits */
    return sign | (uint8_t)((((q >> 23) - 120u) << 3) | ((q >> 20) & 7u));
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
    CpuGemm g = {.x = q, .w = w, .y = y, .M = M, .E = 1, .K = K, .O = O, .xs = qs, .ws = ws};
    cpu_gemm(1, &g);
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
