/* npy_compare.c — compares two float .npy arrays of the same shape (logits
 * [..., vocab]): relative L2 of A from B and the share of rows whose
 * argmax agree, against bounds. Used by tests/emu/e2e.sh.
 *
 *   npy_compare NAME A.npy B.npy MAX_REL_L2 MIN_ARGMAX
 *
 * Prints one line; exits 0 inside the bounds, 1 outside, 2 on bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/runtime.h"

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: npy_compare NAME A.npy B.npy MAX_REL_L2 MIN_ARGMAX\n");
        return 2;
    }
    char *end1, *end2;
    double max_rel = strtod(argv[4], &end1), min_arg = strtod(argv[5], &end2);
    if (*end1 || *end2 || !(max_rel >= 0) || !(min_arg >= 0 && min_arg <= 1)) {
        fprintf(stderr, "npy_compare: bounds must be numbers (MIN_ARGMAX in 0..1): '%s' '%s'\n", argv[4], argv[5]);
        return 2;
    }
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtArray x = {0}, y = {0};
    if (!rt_npy_read(d, argv[2], &x) || !rt_npy_read(d, argv[3], &y)) return 2;
    bool same = x.rank == y.rank && x.rank >= 1;
    for (int i = 0; same && i < x.rank; i++) same = x.shape[i] == y.shape[i];
    if (!same || x.numel == 0) {
        fprintf(stderr, "npy_compare: %s and %s differ in shape (or are empty)\n", argv[2], argv[3]);
        return 2;
    }
    int64_t V = x.shape[x.rank - 1], rows = x.numel / V, agree = 0;
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t ax = 0, ay = 0;
        for (int64_t i = 0; i < V; i++) {
            double dv = (double)x.data[r * V + i] - y.data[r * V + i];
            num += dv * dv;
            den += (double)y.data[r * V + i] * y.data[r * V + i];
            if (x.data[r * V + i] > x.data[r * V + ax]) ax = i;
            if (y.data[r * V + i] > y.data[r * V + ay]) ay = i;
        }
        agree += ax == ay;
    }
    double rel = sqrt(num / (den > 0 ? den : 1e-300)), share = (double)agree / (double)rows;
    bool ok = rel <= max_rel && share >= min_arg; /* NaN fails both */
    printf("%-56s rel L2 %.2e (bound %.0e)  argmax %lld/%lld (bound %.2f)  %s\n", argv[1], rel, max_rel, (long long)agree, (long long)rows,
           min_arg, ok ? "ok" : "FAIL");
    free(x.data);
    free(y.data);
    arena_free(a);
    return ok ? 0 : 1;
}
