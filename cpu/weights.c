/* weights.c — seeded random weights, so the executor, the tests and the
 * benchmarks run without a checkpoint. Each tensor is a function of the
 * seed and its checkpoint name only, never of load order. */
#include "cpu/cpu.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
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
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&state) >> 11) * 0x1.0p-53; /* [0, 1) */
        double v = (2 * u - 1) * bound;
        dst[i] = (float)(matrix ? v : 1.0 + v);
    }
    return true;
}

CpuWeightSource cpu_random_weights(const uint64_t *seed) {
    return (CpuWeightSource){random_load, (void *)seed};
}
