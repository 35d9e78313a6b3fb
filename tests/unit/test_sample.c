/* test_sample.c — token selection (runtime/sample.h): the speculative
 * sampling rule must give tokens distributed exactly as plain sampling
 * from the target p, whatever the draft distribution q; checked by a
 * chi-square test over many seeded draws (fixed seeds: no flakiness; the
 * threshold is the 1e-6 tail, so a wrong rule — e.g. keeping every draft,
 * or drawing the rejected case from p instead of the residual — fails by
 * orders of magnitude, as the negative controls show). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "runtime/sample.h"

#define NV 6
#define DRAWS 200000
#define CHI2_DF5_1E6 35.9 /* chi-square, 5 degrees of freedom, upper 1e-6 tail */

static double chi2(const long *count, const float *p, long n) {
    double c = 0;
    for (int i = 0; i < NV; i++) {
        double e = p[i] * (double)n;
        if (e > 0) c += (count[i] - e) * (count[i] - e) / e;
        else if (count[i]) return INFINITY;
    }
    return c;
}

/* Counts of the kept tokens of DRAWS speculative steps; *acc the accepted share. */
static void spec_counts(const float *p, const float *q, uint64_t seed, long *count, double *acc, int mode) {
    RtRng r = rt_rng(seed);
    long kept = 0;
    memset(count, 0, sizeof(long) * NV);
    for (long i = 0; i < DRAWS; i++) {
        int64_t d = rt_sample(q, NV, &r);
        bool a;
        int64_t t;
        if (mode == 0) t = rt_spec_accept(p, q, NV, d, &r, &a);
        else if (mode == 1) t = d, a = true;                               /* control: keep every draft */
        else {                                                              /* control: resample from p */
            t = rt_spec_accept(p, q, NV, d, &r, &a);
            if (!a) t = rt_sample(p, NV, &r);
        }
        kept += a;
        count[t]++;
    }
    *acc = (double)kept / DRAWS;
}

static void test_spec_accept_matches_target(void **state) {
    (void)state;
    static const float p[NV] = {0.40f, 0.25f, 0.15f, 0.10f, 0.07f, 0.03f};
    static const float qs[3][NV] = {{0.05f, 0.10f, 0.15f, 0.20f, 0.25f, 0.25f},  /* far from p */
                                    {0.35f, 0.30f, 0.15f, 0.10f, 0.05f, 0.05f},  /* close to p */
                                    {0.00f, 0.50f, 0.50f, 0.00f, 0.00f, 0.00f}}; /* zero where p is not */
    long count[NV];
    double acc;
    for (int k = 0; k < 3; k++) {
        spec_counts(p, qs[k], 11 + k, count, &acc, 0);
        double c = chi2(count, p, DRAWS), want = 0;
        for (int i = 0; i < NV; i++) want += fmin(p[i], qs[k][i]);
        print_message("q %d: chi2 %.2f (bound %.1f), accepted %.4f (expected sum min(p,q) = %.4f)\n", k, c, CHI2_DF5_1E6, acc, want);
        assert_true(c < CHI2_DF5_1E6);
        assert_true(fabs(acc - want) < 0.005);
        /* negative controls: wrong rules are caught */
        spec_counts(p, qs[k], 11 + k, count, &acc, 1);
        assert_true(chi2(count, p, DRAWS) > 10 * CHI2_DF5_1E6);
        if (k != 1) { /* q close to p: resampling from p is wrong by too little to separate reliably */
            spec_counts(p, qs[k], 11 + k, count, &acc, 2);
            assert_true(chi2(count, p, DRAWS) > CHI2_DF5_1E6);
        }
    }
}

static void test_equal_distributions_always_accept(void **state) {
    (void)state;
    static const float p[NV] = {0.5f, 0.2f, 0.1f, 0.1f, 0.05f, 0.05f};
    long count[NV];
    double acc;
    spec_counts(p, p, 3, count, &acc, 0);
    assert_true(acc == 1.0);
    assert_true(chi2(count, p, DRAWS) < CHI2_DF5_1E6);
}

static void test_sample_and_softmax(void **state) {
    (void)state;
    static const float logits[NV] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, -30.0f};
    float p[NV];
    rt_softmax_t(logits, NV, 0.7, p);
    double sum = 0;
    for (int i = 0; i < NV; i++) sum += p[i];
    assert_true(fabs(sum - 1) < 1e-6);
    assert_true(fabs(p[0] / p[1] - exp(1.0 / 0.7)) < 1e-4);
    RtRng r = rt_rng(5);
    long count[NV] = {0};
    for (long i = 0; i < DRAWS; i++) count[rt_sample(p, NV, &r)]++;
    assert_true(chi2(count, p, DRAWS) < CHI2_DF5_1E6);
    assert_int_equal(rt_argmax(logits, NV), 0);
    static const float ties[4] = {1, 3, 3, 2};
    assert_int_equal(rt_argmax(ties, 4), 1); /* the first of equals, as plain decoding */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_accept_matches_target),
        cmocka_unit_test(test_equal_distributions_always_accept),
        cmocka_unit_test(test_sample_and_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
