/* fuzz_npy.c — libFuzzer harness for the .npy reader (the file the CLI takes
 * token ids from). Any bytes must give an array or an error, never a crash,
 * an overrun or an allocation the file cannot back; an array read must be
 * consistent (numel the product of its shape, every id an exact integer). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_dir();
    const char *path = fz_write("in.npy", data, size);
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, fz_diag_out());
    RtArray arr;
    bool ok = rt_npy_read(d, path, &arr);
    if (ok != (diag_error_count(d) == 0)) abort();
    if (ok) {
        int64_t n = 1;
        for (int i = 0; i < arr.rank; i++) n *= arr.shape[i];
        if (n != arr.numel || arr.rank < 0 || arr.rank > IR_MAX_RANK) abort();
        /* Touch every element: ASan sees a buffer shorter than numel. */
        for (int64_t i = 0; i < arr.numel; i++)
            if (arr.was_int && (arr.data[i] != floorf(arr.data[i]) || fabsf(arr.data[i]) > (float)(1 << 24))) abort();
    } else if (arr.data) {
        abort(); /* a failed read leaves nothing to free */
    }
    free(arr.data);
    arena_free(a);
    return 0;
}
