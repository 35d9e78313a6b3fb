/* fuzz_dsl.c — libFuzzer harness for the DSL frontend. Any input must give
 * either a graph or errors, never a crash, a hang or a leak; a graph that
 * lowers must verify, and its printed IR must read back to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = fe_compile_string(a, d, "fuzz.dsl", (const char *)data, size, NULL);
    if (g && ir_verify(g, d) == 0) {
        StrBuf one, two;
        sb_init(&one);
        sb_init(&two);
        ir_print(g, &one);
        IrGraph *back = ir_parse(a, d, "printed.ir", one.data, one.len);
        if (!back) abort();
        ir_print(back, &two);
        if (one.len != two.len || memcmp(one.data, two.data, one.len) != 0) abort();
        sb_free(&one);
        sb_free(&two);
    }
    arena_free(a);
    return 0;
}
