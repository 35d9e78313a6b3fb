/* fuzz_run.c — libFuzzer harness past the parsers: DSL text is compiled,
 * verified, put through `dscc run`'s default pass pipeline and executed on
 * the CPU reference with random weights and two positions, under an element
 * cap. Any input must end in a graph that runs or in located errors, never
 * in a crash, a sanitizer report, a hang or an allocation past the cap. */
#include <stdint.h>
#include <stdlib.h>

#include "frontend/frontend.h"
#include "tests/fuzz/fuzz_exec.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, fz_diag_out());
    IrGraph *g = fe_compile_string(a, d, "fuzz.dsl", (const char *)data, size, NULL);
    if (g && ir_verify(g, d) == 0 && fz_default_passes(a, d, g)) fz_run_cpu(g, d);
    arena_free(a);
    return 0;
}
