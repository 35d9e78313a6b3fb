/* sample.c — greedy and sampled token selection and the speculative
 * sampling acceptance rule (see sample.h). */
#include "runtime/sample.h"

#include <math.h>

RtRng rt_rng(uint64_t seed) { return (RtRng){seed ^ 0x9e3779b97f4a7c15ull}; }

/* splitmix64: small, fast, and good enough for drawing tokens. */
static uint64_t next64(RtRng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double rt_rng_uniform(RtRng *r) { return (double)(next64(r) >> 11) * 0x1.0p-53; }

int64_t rt_argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

void rt_softmax_t(const float *logits, int64_t n, double temperature, float *p) {
    float mx = logits[rt_argmax(logits, n)];
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        p[i] = (float)exp(((double)logits[i] - mx) / temperature);
        sum += p[i];
    }
    for (int64_t i = 0; i < n; i++) p[i] = (float)(p[i] / sum);
}

/* A draw from the unnormalised weights w[i] (total `sum` > 0). */
static int64_t draw(const float *w, int64_t n, double sum, RtRng *r) {
    double u = rt_rng_uniform(r) * sum, acc = 0;
    int64_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        acc += w[i];
        last = i;
        if (u < acc) return i;
    }
    return last; /* u landed past the rounded total: the last positive weight */
}

int64_t rt_sample(const float *p, int64_t n, RtRng *r) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += p[i] > 0 ? p[i] : 0;
    return draw(p, n, sum, r);
}

int64_t rt_spec_accept(const float *p, const float *q, int64_t n, int64_t draft, RtRng *r, bool *accepted) {
    double u = rt_rng_uniform(r);
    /* keep with probability min(1, p/q): u * q < p avoids dividing by q */
    *accepted = q[draft] > 0 && u * q[draft] < p[draft];
    if (*accepted) return draft;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += p[i] > q[i] ? (double)p[i] - q[i] : 0;
    if (!(sum > 0)) return rt_sample(p, n, r);
    double v = rt_rng_uniform(r) * sum, acc = 0;
    int64_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        if (p[i] <= q[i]) continue;
        acc += (double)p[i] - q[i];
        last = i;
        if (v < acc) return i;
    }
    return last;
}
