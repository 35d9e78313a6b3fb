/* weights.c — seeded random weights, so the executor, the tests and the
 * benchmarks run without a checkpoint. Each tensor is a function of the
 * seed and its checkpoint name only, never of load order. */
#include "cpu/cpu.h"

#include <math.h>
#include <pthread.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Values [lo, hi) of a tensor whose generator starts at `state`:
 * splitmix64 advances its state by a constant, so element i starts from
 * state + i * that constant and any range can be made on its own. */
typedef struct {
    uint64_t state;
    int64_t lo, hi;
    double bound;
    bool matrix;
    float *dst;
} RandomRange;

static void *random_range(void *arg) {
    const RandomRange *r = arg;
    uint64_t state = r->state + (uint64_t)r->lo * 0x9e3779b97f4a7c15ull;
    for (int64_t i = r->lo; i < r->hi; i++) {
        double u = (double)(splitmix64(&state) >> 11) * 0x1.0p-53; /* [0, 1) */
        double v = (2 * u - 1) * r->bound;
        r->dst[i] = (float)(r->matrix ? v : 1.0 + v);
    }
    return NULL;
}

static bool random_load(void *ctx, const char *name, const IrType *type, float *dst, DiagEngine *d) {
    uint64_t state = *(const uint64_t *)ctx ^ 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++) state = (state ^ (unsigned char)*p) * 0x100000001b3ull;
    int64_t n;
    if (!ir_type_numel_at(type, NULL, &n)) { /* executors check sizes first */
        diag_error(d, (SrcLoc){0}, "weight %s: its element count overflows int64", name);
        return false;
    }
    bool matrix = type->rank >= 2;
    double bound = matrix ? 1.0 / sqrt((double)type->dims[type->rank - 1].coeff) : 0.1;
    /* large tensors (the embedding, the LM head, dense layers) in ranges on
     * threads: the same values as one pass, in a fraction of the time */
    enum { MAXT = 16, PER_THREAD = 1 << 24 };
    RandomRange r[MAXT];
    pthread_t th[MAXT];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t want = n / PER_THREAD + 1;
    int nt = (int)(want < MAXT ? want : MAXT), started = 0;
    if (cpus > 0 && nt > cpus) nt = (int)cpus;
    for (int t = 0; t < nt; t++) r[t] = (RandomRange){state, n * t / nt, n * (t + 1) / nt, bound, matrix, dst};
    for (int t = 1; t < nt; t++) {
        if (pthread_create(&th[t], NULL, random_range, &r[t]) != 0) break;
        started = t;
    }
    random_range(&r[0]);
    for (int t = started + 1; t < nt; t++) random_range(&r[t]); /* ranges no thread took */
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
    return true;
}

CpuWeightSource cpu_random_weights(const uint64_t *seed) {
    return (CpuWeightSource){random_load, (void *)seed};
}
