/* test_cpu_fp8.c — E4M3 rounding against the format's definition, and the
 * block-scaled GEMM against a direct quantize-dequantize computation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* The definition, by libm: the rounding the fast one in fp8.c must equal. */
static float ref_round(float v) {
    if (isnan(v)) return v;
    float a = fabsf(v), q;
    if (a >= 448.0f) q = 448.0f;
    else if (a < 0.015625f) q = nearbyintf(a * 512.0f) / 512.0f;
    else {
        int e;
        frexpf(a, &e);
        float step = ldexpf(1.0f, e - 4);
        q = nearbyintf(a / step) * step;
        if (q > 448.0f) q = 448.0f;
    }
    return copysignf(q, v);
}

static uint8_t ref_encode(float v) {
    uint8_t sign = signbit(v) ? 0x80 : 0;
    if (isnan(v)) return sign | 0x7f;
    float q = fabsf(ref_round(v));
    if (q < 0.015625f) return sign | (uint8_t)(q * 512.0f);
    int e;
    float f = frexpf(q, &e);
    return sign | (uint8_t)((e + 6) << 3) | (uint8_t)(f * 16.0f - 8.0f);
}

/* 2^24 float bit patterns (every 256th, each with its neighbours), both
 * signs, NaNs and infinities among them: round and encode agree with the
 * definition bit for bit. */
static void test_fast_rounding_matches_the_definition(void **state) {
    (void)state;
    int64_t bad = 0;
    for (uint64_t hi = 0; hi < (1ull << 24); hi++)
        for (int d = -1; d <= 1; d++) {
            uint32_t u = (uint32_t)(hi << 8) + (uint32_t)d;
            float v, r, w;
            memcpy(&v, &u, 4);
            r = cpu_fp8_round(v), w = ref_round(v);
            uint32_t ur, uw;
            memcpy(&ur, &r, 4);
            memcpy(&uw, &w, 4);
            if (!(isnan(r) && isnan(w)) && ur != uw) bad++;
            if (cpu_fp8_e4m3_encode(v) != ref_encode(v)) bad++;
        }
    assert_int_equal(bad, 0);
}

/* Every byte decodes to its definition, and encodes back to itself: the
 * NaNs (S.1111.111) to the NaN of their sign, -0 to 0x80. */
static void test_all_256_codes_round_trip(void **state) {
    (void)state;
    for (int c = 0; c < 256; c++) {
        int e = (c >> 3) & 15, m = c & 7;
        float v = cpu_fp8_e4m3_decode((uint8_t)c);
        if (e == 15 && m == 7) {
            assert_true(isnan(v));
            assert_int_equal(cpu_fp8_e4m3_encode(v), c);
            continue;
        }
        float want = e4m3_value(e, m);
        assert_true(fabsf(v) == want);
        assert_true((signbit(v) != 0) == ((c & 0x80) != 0));
        assert_int_equal(cpu_fp8_e4m3_encode(v), c);
        assert_true(cpu_fp8_round(v) == v);
    }
    /* hand-checked codes: 1.0 = 0.0111.000, 448 = 0.1111.110, 2^-9 = 0.0000.001 */
    assert_int_equal(cpu_fp8_e4m3_encode(1.0f), 0x38);
    assert_int_equal(cpu_fp8_e4m3_encode(448.0f), 0x7e);
    assert_int_equal(cpu_fp8_e4m3_encode(-448.0f), 0xfe);
    assert_int_equal(cpu_fp8_e4m3_encode(0x1p-9f), 0x01);
    assert_int_equal(cpu_fp8_e4m3_encode(0.015625f), 0x08); /* 2^-6, the smallest normal */
    assert_true(cpu_fp8_e4m3_decode(0x37) == 0.9375f);
}

/* Ties go to the even mantissa in several binades; saturation; the
 * subnormal grid; encode agrees with round everywhere. */
static void test_rounding_by_hand(void **state) {
    (void)state;
    static const float cases[][2] = {
        {1.0625f, 1.0f},          /* between 1 (m=0) and 1.125 (m=1): even is 1 */
        {1.1875f, 1.25f},         /* between 1.125 (m=1) and 1.25 (m=2) */
        {17.0f, 16.0f},           /* binade 16..32, step 2 */
        {19.0f, 20.0f},
        {0.265625f, 0.25f},       /* binade 1/4..1/2, step 1/32: 8.5/32 between m=0 and m=1 */
        {0.296875f, 0.3125f},     /* 9.5/32 between 9/32 (m=1) and 10/32 (m=2) */
        {240.0f * 1.0625f, 256.0f}, /* 255 between 240 (m=7) and 256 (next binade, m=0) */
        {0.0048828125f, 0.00390625f}, /* 2.5 * 2^-9: subnormals 2 and 3 * 2^-9, even is 2 */
        {0.0068359375f, 0.0078125f},  /* 3.5 * 2^-9 -> 4 * 2^-9 */
        {0.0146484375f, 0.015625f},   /* 7.5 * 2^-9 -> 2^-6, subnormal rounds up into the normals */
        {0.0009765625f, 0.0f},        /* half the smallest subnormal: ties to 0 */
        {0.0009766f, 0.001953125f},   /* just above: the smallest subnormal */
        {464.0f, 448.0f},             /* half way to the absent 480: saturates */
        {1e9f, 448.0f},
        {INFINITY, 448.0f},
        {-300.0f, -288.0f},           /* binade 256..512, step 32: 288 is nearer */
        {-1e-12f, -0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float got = cpu_fp8_round(cases[i][0]);
        if (got != cases[i][1]) fail_msg("round(%.9g) = %.9g, want %.9g", cases[i][0], got, cases[i][1]);
        assert_true(cpu_fp8_e4m3_decode(cpu_fp8_e4m3_encode(cases[i][0])) == cases[i][1]);
    }
    assert_true(signbit(cpu_fp8_round(-1e-12f)));
    assert_int_equal(cpu_fp8_e4m3_encode(-INFINITY), 0xfe);
    /* random values: encode(v) decodes to round(v) */
    uint64_t s = (uint64_t)time(NULL);
    for (int i = 0; i < 100000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float v = ldexpf((float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 23), (int)((s >> 8) % 30) - 14);
        assert_true(cpu_fp8_e4m3_decode(cpu_fp8_e4m3_encode(v)) == cpu_fp8_round(v));
    }
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
        cmocka_unit_test(test_fast_rounding_matches_the_definition),
        cmocka_unit_test(test_all_256_codes_round_trip),
        cmocka_unit_test(test_rounding_by_hand),
        cmocka_unit_test(test_block_scaled_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
