/* bench_mtp.c — what speculative decoding with DeepSeek-V3's MTP module
 * buys on the GPU: the step times of `dscc run --speculative mtp`'s two
 * graphs on full-width layers (random FP8 weights; default one dense and
 * one MoE layer with all 256 experts, and the MTP layer).
 *
 * At batch 1 and 32, after a prefill of --ctx positions, best of --reps:
 *   - plain decode step: the verify graph (--set mtp_hidden=true) on one
 *     position, as plain decoding runs the main model;
 *   - verify step: the same graph on k+1 positions (the last kept token
 *     and k drafts);
 *   - draft step: the MTP graph (--set mtp_draft=true) on one position.
 * Each step's caches are cut back afterwards, so every timing sees the same
 * context. A speculative step is one verify and k drafts; with each draft
 * kept with probability a (the first rejection ends the run), a row gains
 * 1 + a + ... + a^k tokens per step, so tokens/s = B (1 + ... + a^k) /
 * (verify + k draft) against plain B / plain step. Printed at --accept, with
 * the acceptance rate at which the two break even. With few layers the
 * draft (a whole MoE layer and the LM head) weighs more against the
 * verify step than beside V3's 61 layers: --layers sets the main model's.
 * Run on the GPU machine by bench/gpu_bench.sh (MTP=1); --quick runs the
 * tiny model on small steps (the emulated device, ctest emu.bench_mtp). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_tune.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"

typedef struct {
    int64_t vocab;  /* token ids are drawn below it */
    int64_t hidden; /* width of the draft graph's h_main input; 0 for the verify graph */
    uint64_t rng;
} Feed;

static double uniform(Feed *f) {
    f->rng = f->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(f->rng >> 11) * (1.0 / 9007199254740992.0);
}

/* The model with `mode` set (mtp_hidden or mtp_draft), through the kernels
 * preset with FP8 as bench_gpu builds it; NULL after reporting. */
static IrGraph *compile(Arena *a, DiagEngine *d, const char *config, int layers, int dense, const char *mode) {
    FeSetting sets[4] = {{"num_hidden_layers", arena_printf(a, "%d", layers)},
                         {"first_k_dense_replace", arena_printf(a, "%d", dense)},
                         {"num_nextn_predict_layers", "1"},
                         {mode, "true"}};
    FeOptions fo = {config, sets, 4};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    PassPipeline pp;
    PassRunOptions ro = {.tune = bench_tune()};
    if (!g || ir_verify(g, d) || !pass_pipeline_parse(a, d, pass_preset(a, "kernels", &(PassPreset){.fp8 = true}), &pp) ||
        !pass_pipeline_run(&pp, g, &ro, d))
        return NULL;
    return g;
}

/* The feed of g's inputs: its vocabulary, and h_main's width if it has one. */
static Feed feed_of(const IrGraph *g) {
    Feed f = {.vocab = 2, .rng = 7};
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == IR_OP_EMBEDDING) f.vocab = n->ops[0]->type.dims[0].coeff;
        if (n->op == IR_OP_INPUT && strcmp(ir_node_attr_str(n, "name", ""), "h_main") == 0) f.hidden = n->type.dims[2].coeff;
    }
    return f;
}

/* One run of B rows x S positions from position t0, random tokens (and hidden states). */
static bool run(GpuExec *x, Feed *f, int64_t B, int64_t S, int64_t t0, DiagEngine *d) {
    size_t n = (size_t)(B * S), nh = n * (size_t)(f->hidden ? f->hidden : 1);
    float *tok = malloc(sizeof(float) * n), *pos = malloc(sizeof(float) * n), *h = malloc(sizeof(float) * nh);
    bool ok = tok && pos && h;
    for (size_t i = 0; ok && i < n; i++) {
        tok[i] = (float)floor(uniform(f) * (double)f->vocab);
        pos[i] = (float)(t0 + (int64_t)i % S);
    }
    for (size_t i = 0; ok && f->hidden && i < nh; i++) h[i] = (float)(uniform(f) * 2 - 1);
    CpuInput in[3] = {{"tokens", 2, {B, S}, tok}, {"positions", 2, {B, S}, pos}, {"h_main", 3, {B, S, f->hidden}, h}};
    if (!ok) fprintf(stderr, "bench_mtp: out of host memory\n");
    ok = ok && gpu_exec_run(x, in, f->hidden ? 3 : 2, d);
    free(tok);
    free(pos);
    free(h);
    return ok;
}

/* Fills B rows of x's cache with ctx positions, `chunk` at a time. */
static bool prefill(GpuExec *x, Feed *f, int64_t B, int64_t ctx, int64_t chunk, DiagEngine *d) {
    gpu_exec_reset(x);
    for (int64_t t = 0; t < ctx; t += chunk)
        if (!run(x, f, B, ctx - t < chunk ? ctx - t : chunk, t, d)) return false;
    return true;
}

/* Best of reps of a step of S positions at position ctx; the cache is cut
 * back to ctx after each. Negative after a failure. */
static double step_ms(GpuExec *x, Feed *f, int64_t B, int64_t S, int64_t ctx, int reps, DiagEngine *d) {
    double best = INFINITY;
    for (int r = 0; r < reps + 1; r++) { /* the first run captures the step's CUDA graph: untimed */
        if (!run(x, f, B, S, ctx, d) || !gpu_exec_truncate(x, ctx)) return -1;
        if (r > 0 && gpu_exec_last_ms(x) < best) best = gpu_exec_last_ms(x);
    }
    return best;
}

/* Expected tokens a row gains per speculative step: 1 + a + ... + a^k. */
static double gain(double a, int k) {
    double e = 1, p = 1;
    for (int i = 0; i < k; i++) e += (p *= a);
    return e;
}

/* The acceptance rate at which speculative equals plain decoding (-1: none up to 1). */
static double break_even(double ratio, int k) {
    if (gain(1, k) < ratio) return -1;
    double lo = 0, hi = 1;
    for (int i = 0; i < 60; i++) {
        double mid = (lo + hi) / 2;
        if (gain(mid, k) < ratio) lo = mid;
        else hi = mid;
    }
    return hi;
}

typedef struct {
    int layers, dense, k, reps;
    int64_t ctx, chunk, batches[2];
    double accept;
    const char *config;
} Args;

/* 0, or 2 after printing the usage. */
static int parse(int argc, char **argv, Args *o) {
    *o = (Args){.layers = 2, .dense = 1, .k = 1, .reps = 5, .ctx = 256, .chunk = 64, .batches = {1, 32}, .accept = 0.85};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) { /* the tiny model, small steps: proves the benchmark runs */
            o->config = DSCC_SOURCE_DIR "/models/tiny/config.json", o->ctx = 8, o->chunk = 8, o->reps = 1, o->batches[1] = 2;
            continue;
        }
        if (i + 1 >= argc) goto usage;
        const char *opt = argv[i], *v = argv[++i];
        if (!strcmp(opt, "--layers")) o->layers = atoi(v);
        else if (!strcmp(opt, "--dense")) o->dense = atoi(v);
        else if (!strcmp(opt, "--k")) o->k = atoi(v);
        else if (!strcmp(opt, "--reps")) o->reps = atoi(v);
        else if (!strcmp(opt, "--ctx")) o->ctx = atoll(v);
        else if (!strcmp(opt, "--accept")) o->accept = atof(v);
        else goto usage;
    }
    if (o->layers >= 1 && o->dense >= 0 && o->dense <= o->layers && o->k >= 1 && o->k <= 8 && o->reps >= 1 && o->ctx >= 1 &&
        o->accept >= 0 && o->accept <= 1)
        return 0;
usage:
    fprintf(stderr, "usage: bench_mtp [--layers L] [--dense K] [--k DRAFTS] [--ctx N] [--reps R] [--accept A] [--quick]\n"
                    "  L >= 1, 0 <= K <= L, 1 <= DRAFTS <= 8, N >= 1, 0 <= A <= 1\n");
    return 2;
}

/* Plain and speculative figures of one batch size, a table row. */
static bool bench_batch(const Args *o, GpuExec *vx, Feed *vf, GpuExec *dx, Feed *df, int64_t B, DiagEngine *d) {
    if (!prefill(vx, vf, B, o->ctx, o->chunk, d) || !prefill(dx, df, B, o->ctx, o->chunk, d)) return false;
    double plain = step_ms(vx, vf, B, 1, o->ctx, o->reps, d);
    double verify = plain < 0 ? -1 : step_ms(vx, vf, B, o->k + 1, o->ctx, o->reps, d);
    double draft = verify < 0 ? -1 : step_ms(dx, df, B, 1, o->ctx, o->reps, d);
    if (draft < 0) return false;
    double spec = verify + o->k * draft, plain_tps = (double)B / (plain * 1e-3);
    double spec_tps = (double)B * gain(o->accept, o->k) / (spec * 1e-3), be = break_even(spec / plain, o->k);
    char bes[32];
    if (be < 0) snprintf(bes, sizeof bes, "none");
    else snprintf(bes, sizeof bes, "%.2f", be);
    printf("| %lld | %.3f | %.3f | %.3f | %.0f | %.0f | %.2fx | %s |\n", (long long)B, plain, verify, draft, plain_tps, spec_tps,
           spec_tps / plain_tps, bes);
    return true;
}

int main(int argc, char **argv) {
    Args o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *vg = compile(a, d, o.config, o.layers, o.dense, "mtp_hidden");
    IrGraph *dg = vg ? compile(a, d, o.config, o.layers, o.dense, "mtp_draft") : NULL;
    if (!dg) return 1;
    Feed vf = feed_of(vg), df = feed_of(dg);
    if (!df.hidden) {
        fprintf(stderr, "bench_mtp: the draft graph has no h_main input\n");
        return 1;
    }
    uint64_t seed = 1;
    CpuWeightSource ws = cpu_random_weights(&seed);
    int64_t S = o.chunk > o.k + 1 ? o.chunk : o.k + 1;
    GpuOptions go = {.tune = bench_tune(), .max_batch = o.batches[1], .max_seq = S, .max_ctx = o.ctx + o.k + 2, .graphs = true};
    GpuExec *vx = gpu_exec_new(vg, &ws, &go, d), *dx = vx ? gpu_exec_new(dg, &ws, &go, d) : NULL;
    if (!dx) return 1;
    printf("%s: %s, main model %d layers (%d dense) + MTP layer, FP8, context %lld, best of %d\n\n"
           "| batch | plain step ms | verify step ms (%d positions) | draft step ms | plain tokens/s | speculative tokens/s "
           "(acceptance %.2f, %d draft%s) | speedup | break-even acceptance |\n|---|---|---|---|---|---|---|---|\n",
           gpu_exec_device(vx), o.config ? "the tiny model (--quick)" : "DeepSeek-V3 at full width", o.layers, o.dense, (long long)o.ctx, o.reps, o.k + 1,
           o.accept, o.k, o.k == 1 ? "" : "s");
    rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        if (!bench_batch(&o, vx, &vf, dx, &df, o.batches[i], d)) rc = 1;
    gpu_exec_free(dx);
    gpu_exec_free(vx);
    arena_free(a);
    return rc;
}
