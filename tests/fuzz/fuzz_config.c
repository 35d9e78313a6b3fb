/* fuzz_config.c — libFuzzer harness for config.json binding: the input is a
 * config.json for the DeepSeek-V3 model file (models/deepseek_v3.dsl),
 * written into a private temporary folder. Whatever it holds must bind and
 * lower to a graph or give errors naming the config; a graph that verifies
 * then goes through shape inference and statistics, and `dscc run`'s
 * default pipeline plus the CPU executor when its weights fit the element
 * cap (fuzz_exec.h). */
#include <stdint.h>
#include <stdlib.h>

#include "frontend/frontend.h"
#include "tests/fuzz/fuzz_exec.h"
#include "tests/fuzz/fuzz_util.h"

#ifndef DSCC_SOURCE_DIR
#define DSCC_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_dir();
    FeOptions fo = {.config_path = fz_write("config.json", data, size)};
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, fz_diag_out());
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    if (!g && diag_error_count(d) == 0) abort(); /* no graph without saying why */
    if (g && ir_verify(g, d) == 0) {
        IrStats st;
        ir_stats_compute(g, d, 16, &st);
        if (fz_weights_fit(g) && fz_default_passes(a, d, g)) fz_run_cpu(g, d);
    }
    arena_free(a);
    return 0;
}
