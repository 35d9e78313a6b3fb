/* bench_compile.c — compile time on a generated graph of about 10^6 nodes.
 *
 * Writes a model of N `let`s to a temporary folder, each
 *   let vK = silu(v(K/2)) + v(K-1);
 * (two nodes; half of all values stay alive until a later `let` reads them
 * again, which is what makes naive name lookup, fusion and memory planning
 * quadratic), then times reading, parsing and lowering it, and each pass of
 * the default pipeline (plan-memory at batch 1). With no argument N is
 * 499,998: 10^6 nodes, the frontend's limit. The node count is checked, so
 * a small N doubles as a test. Usage: bench_compile [N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_tune.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes the model; false on an I/O error. */
static bool write_model(const char *path, long n) {
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fprintf(f, "model chain;\ndim B, S;\ninput x: f32[B, S, 64];\nlet v0 = x;\n");
    for (long k = 1; k <= n; k++) fprintf(f, "let v%ld = silu(v%ld) + v%ld;\n", k, k / 2, k - 1);
    fprintf(f, "output y = v%ld;\n", n);
    return fclose(f) == 0;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 499998;
    if (n < 1 || n > 499998) {
        fprintf(stderr, "usage: bench_compile [N in 1..499998]\n");
        return 2;
    }
    char dir[] = "/tmp/dscc-bench-XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 3;
    }
    snprintf(path, sizeof path, "%s/chain.dsl", dir);
    int rc = 1;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    double t0 = now();
    if (!write_model(path, n)) {
        fprintf(stderr, "%s: cannot write the model\n", path);
        goto done;
    }
    double t1 = now();
    IrGraph *g = fe_compile_file(a, d, path, &(FeOptions){0});
    double t2 = now();
    if (!g || ir_verify(g, d)) goto done;
    long want = 2 * n + 2; /* input, two per let, output */
    if (g->nnodes != want) {
        fprintf(stderr, "expected %ld nodes, lowered %d\n", want, g->nnodes);
        goto done;
    }
    printf("bench_compile: %d nodes (%ld lets)\n  write model %8.3f s\n  parse+lower %8.3f s\n", g->nnodes, n, t1 - t0, t2 - t1);
    PassPipeline pp;
    if (!pass_pipeline_parse(a, d, pass_preset(a, "default", &(PassPreset){.fp8 = true, .batch = 1, .seq = 1}), &pp)) goto done;
    double passes = 0;
    for (int i = 0; i < pp.n; i++) {
        PassPipeline one = {1, {pp.steps[i]}};
        PassRunOptions ro = {.tune = bench_tune()};
        double ts = now();
        if (!pass_pipeline_run(&one, g, &ro, d)) goto done;
        double dt = now() - ts;
        passes += dt;
        printf("  %-20s %8.3f s\n", pp.steps[i].pass->name, dt);
    }
    int kernels = -1;
    for (int i = 0; i < g->nnodes; i++) kernels = g->nodes[i]->group > kernels ? g->nodes[i]->group : kernels;
    printf("  all passes         %8.3f s (%d kernels)\n  total              %8.3f s\n", passes, kernels + 1, now() - t0);
    rc = kernels >= 0 && g->mem_planned ? 0 : 1;
done:
    unlink(path);
    rmdir(dir);
    arena_free(a);
    return rc;
}
