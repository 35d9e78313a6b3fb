/* fuzz_ir.c — libFuzzer harness for the textual IR parser. Any input must
 * parse or give errors without crashing; what parses and verifies must print
 * to text that parses to a graph printing identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = ir_parse(a, d, "fuzz.ir", (const char *)data, size);
    if (g && ir_verify(g, d) == 0) {
        StrBuf one, two, dot;
        sb_init(&one);
        sb_init(&two);
        sb_init(&dot);
        ir_print(g, &one);
        ir_print_dot(g, &dot);
        IrGraph *back = ir_parse(a, d, "printed.ir", one.data, one.len);
        if (!back || ir_verify(back, d) != 0) abort();
        ir_print(back, &two);
        if (one.len != two.len || memcmp(one.data, two.data, one.len) != 0) abort();
        IrStats st;
        if (g->ndims) ir_stats_compute(g, d, 7, &st);
        sb_free(&one);
        sb_free(&two);
        sb_free(&dot);
    }
    arena_free(a);
    return 0;
}
