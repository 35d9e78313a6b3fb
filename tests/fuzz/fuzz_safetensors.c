/* fuzz_safetensors.c — libFuzzer harness for the safetensors header parser:
 * any bytes must parse or give errors, never crash or read out of bounds;
 * a parsed file's tensors must lie inside the input and convert cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    /* An exact-size copy so ASan sees any read past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    RtSafetensors *st = rt_safetensors_parse(a, d, "fuzz.safetensors", copy, size);
    for (int i = 0; st && i < st->ntensors; i++) {
        const RtTensor *t = &st->tensors[i];
        if (t->data < copy || t->data + t->nbytes > copy + size) abort();
        if (rt_safetensors_find(st, t->name) == NULL) abort();
        int64_t n = t->numel < 4096 ? t->numel : 4096;
        float *out = malloc(sizeof(float) * (size_t)(n + 1));
        rt_convert_f32(t->dtype, t->data, out, n);
        free(out);
    }
    free(copy);
    arena_free(a);
    return 0;
}
