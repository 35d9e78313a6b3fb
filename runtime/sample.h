/* sample.h — token selection for generation: greedy, temperature sampling
 * and the speculative-sampling acceptance rule (Leviathan et al., Chen et
 * al.: a draft token d drawn from q is kept with probability
 * min(1, p(d)/q(d)), else the token is drawn from norm(max(0, p - q))), so
 * the tokens kept are distributed exactly as plain sampling from p. A small
 * seeded generator makes runs reproducible. */
#ifndef DSCC_SAMPLE_H
#define DSCC_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} RtRng;

RtRng rt_rng(uint64_t seed);
double rt_rng_uniform(RtRng *r); /* in [0, 1) */

/* The index of the largest of v[0..n) (the first of equals). */
int64_t rt_argmax(const float *v, int64_t n);

/* p[0..n) = softmax(logits / temperature) in double-free f32 (max
 * subtracted); temperature > 0. */
void rt_softmax_t(const float *logits, int64_t n, double temperature, float *p);

/* A draw from the distribution p[0..n) (sums to 1 up to rounding). */
int64_t rt_sample(const float *p, int64_t n, RtRng *r);

/* The speculative-sampling step for one position: p is the target
 * distribution, q the draft's, `draft` a token drawn from q. Returns the
 * token to keep; *accepted tells whether it is the draft. When p equals q
 * wherever the residual would be taken (all of max(0, p - q) is zero, so
 * the draft was certain to be kept) the fallback draws from p. */
int64_t rt_spec_accept(const float *p, const float *q, int64_t n, int64_t draft, RtRng *r, bool *accepted);

#endif
