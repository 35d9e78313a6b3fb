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

#include "runtime/cuda.h" /* the device sampler's handles; no CUDA toolkit needed */

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

/* ---- the device sampler (codegen/kernels/sample.cuh; builds with NVRTC) ---- */

/* What is drawn: temperature 0 is greedy (the largest logit, the lowest id
 * among equals); else softmax(logits / temperature) cut to the top_k most
 * likely tokens (0: no cut), then to the fewest most likely of those whose
 * mass reaches top_p of the whole (1: no cut), equal logits lowest id first:
 * the host sampler's distribution (tools/dscc/run_text.c). */
typedef struct {
    double temperature, top_p;
    long top_k;
    uint64_t seed;
} RtSampling;

typedef struct RtDevSampler RtDevSampler;

/* Compiles the kernel (through the kernel cache) for blocks of `block`
 * threads (a multiple of 32 up to 1024; 0: 1024) and loads it on c.
 * NULL after reporting. */
RtDevSampler *rt_dev_sampler_new(RtCuda *c, int block, DiagEngine *d);
void rt_dev_sampler_free(RtDevSampler *s); /* NULL ok */
/* The next token of each of `rows` rows of V f32 logits at `logits` (row r
 * at logits + r * stride floats), one block per row: ids[r], or -1 for a
 * row that holds a NaN. A draw is a function of (seed, row0 + r, step, the
 * logits) alone: the same on every run and at every block size. Only the
 * ids cross to the host. False after reporting a driver error. */
bool rt_dev_sample(RtDevSampler *s, RtDevPtr logits, int64_t rows, int64_t stride, int64_t V, const RtSampling *p, uint64_t row0,
                   uint64_t step, int32_t *ids, DiagEngine *d);

#endif
