/* test_cpu_fp8.c — E4M3 rounding against the format's definition, and the
 * block-scaled GEMM against a direct quantize-dequantize computation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "cpu/cpu.h"

/* The value of an E4M3 code (sign ignored): bias 7, 3 mantissa bits. */
static float e4m3_value(int e, int m) {
    return e == 0 ? ldexpf((float)m / 8.0f, -6) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
}

static void test_every_code_is_fixed_and_midpoints_tie_to_even(void **state) {
    (void)state;
    float vals[128];
    int n = 0;
    for (int e = 0; e < 16; e++)
        for (int m = 0; m < 8; m++) {
            if (e == 15 && m == 7) continue; /* NaN */
            vals[n++] = e4m3_value(e, m);
        }
    assert_int_equal(n, 127);
    assert_true(vals[n - 1] == 448.0f);
    for (int i = 0; i < n; i++) {
        assert_true(cpu_fp8_round(vals[i]) == vals[i]);
        assert_true(cpu_fp8_round(-vals[i]) == -vals[i]);
    }
    for (int i = 0; i + 1 < n; i++) {
        float mid = (vals[i] + vals[i + 1]) / 2;
        /* codes are in order, so index parity is mantissa parity */
        float even = (i % 2 == 0) ? vals[i] : vals[i + 1];
        assert_true(cpu_fp8_round(mid) == even);
        assert_true(cpu_fp8_round(nextafterf(mid, 0)) == vals[i]);
        assert_true(cpu_fp8_round(nextafterf(mid, 1000)) == vals[i + 1]);
    }
    assert_true(cpu_fp8_round(1000.0f) == 448.0f);
    assert_true(cpu_fp8_round(-460.0f) == -448.0f);
    assert_true(cpu_fp8_round(0.0009765625f) == 0.0f); /* half of the smallest subnormal 2^-9: ties to 0 */
    assert_true(isnan(cpu_fp8_round(NAN)));
}

static void test_block_scaled_gemm(void **state) {
    (void)state;
    enum { M = 3, K = 300, O = 130 }; /* K and O not multiples of 128 */
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * O * K);
    float *y = malloc(sizeof(float) * M * O);
    uint64_t s = 99;
    for (int i = 0; i < M * K; i++) { s = s * 6364136223846793005ull + 1; x[i] = (float)((int64_t)(s >> 40) % 2001 - 1000) / 100.0f; }
    for (int i = 0; i < O * K; i++) { s = s * 6364136223846793005ull + 1; w[i] = (float)((int64_t)(s >> 40) % 2001 - 1000) / 5000.0f; }
    x[5] = 37.0f; /* an outlier sets its tile's scale */
    cpu_fp8_linear(x, w, y, M, K, O);
    double worst = 0, num = 0, den = 0;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < O; o++) {
            double ref = 0, exact = 0;
            for (int kb = 0; kb < K; kb += 128) {
                int nk = K - kb < 128 ? K - kb : 128;
                float ax = 0, aw = 0;
                for (int k = 0; k < nk; k++) ax = fmaxf(ax, fabsf(x[m * K + kb + k]));
                int ob = o / 128 * 128, no = O - ob < 128 ? O - ob : 128;
                for (int oo = 0; oo < no; oo++)
                    for (int k = 0; k < nk; k++) aw = fmaxf(aw, fabsf(w[(ob + oo) * K + kb + k]));
                float sx = ax / 448, sw = aw / 448;
                for (int k = 0; k < nk; k++) {
                    ref += (double)cpu_fp8_round(x[m * K + kb + k] / sx) * sx * cpu_fp8_round(w[o * K + kb + k] / sw) * sw;
                    exact += (double)x[m * K + kb + k] * w[o * K + kb + k];
                }
            }
            worst = fmax(worst, fabs(y[m * O + o] - ref) / (fabs(ref) + 1e-3));
            num += (y[m * O + o] - exact) * (y[m * O + o] - exact);
            den += exact * exact;
        }
    assert_true(worst < 1e-4);           /* the same quantization as defined */
    double rel = sqrt(num / den);
    assert_true(rel > 1e-3 && rel < 0.08); /* and a real, bounded approximation */
    free(x);
    free(w);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_is_fixed_and_midpoints_tie_to_even),
        cmocka_unit_test(test_block_scaled_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
