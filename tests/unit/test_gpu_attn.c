/* test_gpu_attn.c — the prefill attention kernel in its two forms
 * (codegen/kernels/attn_prefill_wgmma.cuh: FlashAttention-3 style on
 * wgmma, the default; attn_prefill.cuh: FlashAttention-2 style on
 * mma.sync, DSCC_ATTN_WGMMA=0) against the CPU executor:
 *  - MLA's naive shape (d_qk 192, d_v 128, as many key heads as query
 *    heads), causal, nothing cached (T = S), at ragged lengths S = 1, 37,
 *    64, 130, 300 (one to three 128-row query tiles, key tiles cut short),
 *    q a concat of two bf16 parts the kernel reads where they are stored;
 *  - grouped heads (8 query heads over 2 key heads, 3 batch rows: the
 *    kernel's block groups of 16 (batch row, head) pairs, one partial) with small dims over
 *    bf16 KV caches, a prefill then decode steps and a second prefill of
 *    130 positions: the causal diagonal offset by the cached positions;
 *  - a non-causal one (every key, the last tile cut short), one head, q
 *    a concat again;
 *  - MLA's naive form read in place: k the concat of a slice of kv_b's
 *    output and a rope key of one head times ones[H, 1], v another slice
 *    of that output; none of them stored (ATTN_KD0, head stride 0);
 *  - cached positions that end the first 64-row half of a query tile a
 *    key tile before the second half (the wgmma form's warpgroup 0 walks
 *    fewer tiles than warpgroup 1 and releases the others unread);
 *  - the wgmma form without its ping-pong (DSCC_ATTN_WGMMA=2), and the
 *    mma.sync form on the naive and grouped shapes.
 * The generated program must run the attention on the kernel of the form
 * asked for (`attention_prefill` phases, nothing else of the attention). Every query
 * row is compared (relative L2 per row: 2e-2; q, k, v and P are rounded to
 * bf16, the CPU keeps f32 on the same bf16 inputs). Exits 77 (skipped)
 * without a Hopper GPU; CTest's emu.test_gpu_attn runs it on the emulated
 * device (tests/emu/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/gen.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

typedef struct {
    int hq, hk, dk, dv;
    bool cached, causal, qcat; /* qcat: q the concat of two bf16 halves (read where they are stored) */
    int mla; /* > 0: k and v as MLA's naive form makes them, k's first mla columns beside a rope key shared by the heads */
    const char *form; /* DSCC_ATTN_WGMMA: "1" (the wgmma form), "2" (without its ping-pong) or "0" (mma.sync) */
} Shape;

/* MLA's naive form: kv [B, S, H * (dn + dv)] (kv_b's output) viewed as [B, S, H, dn + dv]; k = its first
 * dn columns beside a rope key of one head repeated over the heads (times ones = exp(w - w)), that key
 * from column dr of rows of 2 dr ([B, S, 1, 2 dr], as the cache's 576); v = kv's other dv columns. The
 * kernel reads all of them in place: nothing between kv, the rope rows and it is computed. */
static const char *model_mla(Arena *a, const Shape *s) {
    int dn = s->mla, dr = s->dk - s->mla, h = s->hk;
    return arena_printf(a,
                        "dim B, S, T;\n"
                        "input q: f32[B, S, %d, %d];\n"
                        "input k: f32[B, S, %d, %d];\n"
                        "input v: f32[B, S, %d, %d];\n"
                        "weight w: bf16[%d, 1] = \"w\";\n"
                        "let kv = reshape(cast(reshape(concat(slice(k, axis=-1, start=0, len=%d), v, axis=-1), [B, S, %d]), bf16), [B, S, %d, %d]);\n"
                        "let k0 = slice(slice(k, axis=2, start=0, len=1), axis=-1, start=%d, len=%d);\n"
                        "let rows = cast(concat(k0 * 0.5, k0, axis=-1), bf16);\n"
                        "let kk = concat(slice(kv, axis=-1, start=0, len=%d), slice(rows, axis=-1, start=%d, len=%d) * exp(w - w), axis=-1);\n"
                        "let q2 = concat(cast(slice(q, axis=-1, start=0, len=%d), bf16), cast(slice(q, axis=-1, start=%d, len=%d), bf16), axis=-1);\n"
                        "output o = attention(q2, kk, slice(kv, axis=-1, start=%d, len=%d), scale=0.0721687836, causal=%s);\n",
                        s->hq, s->dk, h, s->dk, h, s->dv, h, dn, h * (dn + s->dv), h, dn + s->dv, dn, dr, dn, dr, dr, s->dk / 2, s->dk / 2,
                        s->dk / 2, dn, s->dv, s->causal ? "true" : "false");
}

static const char *model(Arena *a, const Shape *s) {
    const char *kv = s->cached ? "let kc = kv_cache(cast(k, bf16), name=\"k\");\nlet vc = kv_cache(cast(v, bf16), name=\"v\");\n"
                               : "let kc = cast(k, bf16);\nlet vc = cast(v, bf16);\n";
    const char *q = s->qcat ? arena_printf(a, "concat(cast(slice(q, axis=-1, start=0, len=%d), bf16), cast(slice(q, axis=-1, start=%d, len=%d), "
                                              "bf16), axis=-1)", s->dk / 2, s->dk / 2, s->dk / 2)
                            : "cast(q, bf16)";
    return arena_printf(a,
                        "dim B, S, T;\n"
                        "input q: f32[B, S, %d, %d];\n"
                        "input k: f32[B, S, %d, %d];\n"
                        "input v: f32[B, S, %d, %d];\n"
                        "%s"
                        "output o = attention(%s, kc, vc, scale=0.0721687836, causal=%s);\n",
                        s->hq, s->dk, s->hk, s->dk, s->hk, s->dv, kv, q, s->causal ? "true" : "false");
}

static uint64_t rng; /* fresh each run (the clock), or DSCC_TEST_SEED: printed in main */
static float urand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* The generated program runs the attention as one phase of the prefill kernel; with a concat q, the
 * kernel reads its two halves where they are stored (QD0 = half of d_qk). */
static void check_program(Arena *a, DiagEngine *d, const IrGraph *g, const Shape *sh) {
    CgGenOptions o = {.tune = tu_tune(), .tile = CG_TILE_WGMMA};
    CgProgram *p = cg_generate(a, d, g, &o);
    assert_non_null(p);
    for (int i = 0; sh->mla && i < g->nnodes; i++) { /* k, v and the layout between them and kv / the rope rows: not stored */
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_ATTENTION) continue;
        const IrNode *k = n->ops[1], *v = n->ops[2];
        assert_true(!p->stored[k->id] && !p->stored[v->id] && !p->stored[k->ops[0]->id] && !p->stored[k->ops[1]->id]);
        assert_true(p->stored[v->ops[0]->ops[0]->id]); /* kv, under its view */
        const char *want[] = {arena_printf(a, "#define ATTN_KD0 %dLL\n", sh->mla), "#define ATTN_K1HS 0LL\n",
                              arena_printf(a, "#define ATTN_K10 %dLL\n", sh->dk - sh->mla), arena_printf(a, "#define ATTN_V0 %dLL\n", sh->mla)};
        for (int w = 0; w < 4; w++) {
            bool has = false;
            for (int m = 0; m < p->nmodules; m++) has |= strstr(p->modules[m].source, want[w]) != NULL;
            if (!has) fail_msg("no '%s' in the program", want[w]);
        }
    }
    int prefill = 0;
    for (int k = 0; k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++) prefill += strstr(p->kernels[k].phases[f].fn, "attention_prefill") != NULL;
    assert_int_equal(prefill, 1);
    const char *file = strcmp(sh->form, "0") == 0 ? "// ---- codegen/kernels/attn_prefill.cuh\n" : "// ---- codegen/kernels/attn_prefill_wgmma.cuh\n";
    const char *pp = arena_printf(a, "#define AW_PINGPONG %s\n", strcmp(sh->form, "2") == 0 ? "0" : "1");
    bool in = false, pingpong = false;
    for (int m = 0; m < p->nmodules; m++) in |= strstr(p->modules[m].source, file) != NULL, pingpong |= strstr(p->modules[m].source, pp) != NULL;
    if (!in || (strcmp(sh->form, "0") != 0 && !pingpong)) fail_msg("the attention is not on %s (AW_PINGPONG %s)", file + 8, pp + 20);
    const char *qd0 = arena_printf(a, "#define ATTN_QD0 %dLL\n", sh->qcat ? sh->dk / 2 : sh->dk);
    bool found = false;
    for (int m = 0; m < p->nmodules; m++) found |= strstr(p->modules[m].source, qd0) != NULL;
    assert_true(found);
}

/* Runs the steps (positions per step) on both executors with B batch rows; the worst row's relative L2. */
static double run_steps(const Shape *sh, int64_t B, const int *steps, int nsteps) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    setenv("DSCC_ATTN_WGMMA", sh->form, 1); /* read at code generation */
    const char *src = sh->mla ? model_mla(a, sh) : model(a, sh);
    IrGraph *g = tu_compile_src(a, d, "attn.dsl", src, "shape-infer,fold-constants,dce,cse,dce,fuse");
    check_program(a, d, g, sh);
    int64_t maxs = 0, total = 0;
    for (int i = 0; i < nsteps; i++) maxs = steps[i] > maxs ? steps[i] : maxs, total += steps[i];
    uint64_t seed = 1;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = B, .max_seq = maxs, .max_ctx = sh->cached ? total : maxs};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    CpuOptions co = {.threads = 4};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    double worst = 0;
    int64_t T = 0;
    const int64_t dq = sh->hq * sh->dk, dk = sh->hk * sh->dk, dv = sh->hk * sh->dv, ov = sh->dv;
    for (int i = 0; i < nsteps; i++) {
        int64_t S = steps[i];
        T = sh->cached ? T + S : S;
        float *q = malloc(sizeof(float) * (size_t)(B * S * dq)), *k = malloc(sizeof(float) * (size_t)(B * S * dk));
        float *v = malloc(sizeof(float) * (size_t)(B * S * dv));
        for (int64_t x = 0; x < B * S * dq; x++) q[x] = 2.0f * urand(); /* scores of a few units: a peaked softmax */
        for (int64_t x = 0; x < B * S * dk; x++) k[x] = 2.0f * urand();
        for (int64_t x = 0; x < B * S * dv; x++) v[x] = urand();
        CpuInput in[3] = {{"q", 4, {B, S, sh->hq, sh->dk}, q}, {"k", 4, {B, S, sh->hk, sh->dk}, k}, {"v", 4, {B, S, sh->hk, sh->dv}, v}};
        assert_true(gpu_exec_run(gx, in, 3, d));
        assert_true(cpu_exec_run(cx, in, 3, d));
        int rank, rank2;
        int64_t dims[IR_MAX_RANK], dims2[IR_MAX_RANK];
        const float *go_ = gpu_exec_output(gx, "o", &rank, dims), *co_ = cpu_exec_output(cx, "o", &rank2, dims2);
        assert_non_null(go_);
        assert_non_null(co_);
        assert_int_equal(rank, 4);
        assert_true(dims[0] == B && dims[1] == S && dims[2] == sh->hq && dims[3] == ov);
        double step_worst = 0;
        for (int64_t r = 0; r < B * S * sh->hq; r++) {
            double num = 0, den = 0;
            for (int64_t c = 0; c < ov; c++) {
                double e = (double)go_[r * ov + c] - co_[r * ov + c];
                num += e * e, den += (double)co_[r * ov + c] * co_[r * ov + c];
            }
            double rel = sqrt(num / (den > 0 ? den : 1e-30));
            if (!(rel <= step_worst)) step_worst = rel;
        }
        fprintf(stderr, "  DSCC_ATTN_WGMMA=%s heads %d/%d, d %d/%d, B %lld, S %lld, T %lld%s: worst row rel L2 %.2e\n", sh->form, sh->hq,
                sh->hk, sh->dk, sh->dv, (long long)B, (long long)S, (long long)T, sh->causal ? "" : ", not causal", step_worst);
        if (!(step_worst <= worst)) worst = step_worst;
        free(q);
        free(k);
        free(v);
    }
    gpu_exec_free(gx);
    cpu_exec_free(cx);
    arena_free(a);
    return worst;
}

/* MLA's naive form: 4 heads of d_qk 192 / d_v 128, q a concat of two parts read in place (as
 * concat(q_nope, q_pe)), each step fresh (T = S), lengths 1 .. 300 */
static void test_attn_naive_shape(void **state) {
    (void)state;
    static const Shape sh = {4, 4, 192, 128, false, true, true, 0, "1"};
    static const int steps[] = {1, 37, 64, 130, 300};
    assert_true(run_steps(&sh, 1, steps, 5) <= 2e-2);
}

/* ... on the mma.sync form (DSCC_ATTN_WGMMA=0) and on the wgmma form without its ping-pong (2) */
static void test_attn_naive_other_forms(void **state) {
    (void)state;
    static const Shape sh0 = {4, 4, 192, 128, false, true, true, 0, "0"}, sh2 = {4, 4, 192, 128, false, true, true, 0, "2"};
    static const int steps[] = {37, 300};
    assert_true(run_steps(&sh0, 1, steps, 2) <= 2e-2);
    assert_true(run_steps(&sh2, 1, steps, 2) <= 2e-2);
}

/* ... with k and v read where MLA's naive form leaves them (model_mla): kv_b's output, the rope key
 * of one head from column 64 of wider rows, repeated over the heads */
static void test_attn_naive_in_place(void **state) {
    (void)state;
    static const Shape sh = {4, 4, 192, 128, false, true, true, 128, "1"};
    static const int steps[] = {1, 64, 130};
    assert_true(run_steps(&sh, 2, steps, 3) <= 2e-2);
}

/* Grouped heads over caches: a prefill of 37, decode steps, 64 and 130 more (T up to 234) */
static void test_attn_grouped_cached(void **state) {
    (void)state;
    static const Shape sh = {8, 2, 64, 32, true, true, false, 0, "1"}, sh0 = {8, 2, 64, 32, true, true, false, 0, "0"};
    static const int steps[] = {37, 1, 1, 64, 130, 1};
    assert_true(run_steps(&sh, 3, steps, 6) <= 2e-2); /* 24 (batch row, head) pairs: a group of 16 and one of 8 */
    static const int steps0[] = {37, 1, 130};
    assert_true(run_steps(&sh0, 3, steps0, 3) <= 2e-2);
}

/* 64 cached positions, then 200: the first query tile's rows 0-63 see keys up to 127 (one tile of
 * 128), rows 64-127 up to 191 (two); the second tile's 72 rows end in the keys' third tile */
static void test_attn_cached_half_tile(void **state) {
    (void)state;
    static const Shape sh = {2, 2, 128, 128, true, true, false, 0, "1"};
    static const int steps[] = {64, 200};
    assert_true(run_steps(&sh, 1, steps, 2) <= 2e-2);
}

/* Not causal: every row sees all T keys (two tiles, the second cut short); one head (the naive
 * form's heads as batch rows), q the concat of two halves, as the absorbed form's q is */
static void test_attn_not_causal(void **state) {
    (void)state;
    static const Shape sh = {1, 1, 32, 16, false, false, true, 0, "1"};
    static const int steps[] = {100};
    assert_true(run_steps(&sh, 2, steps, 1) <= 2e-2);
}

int main(void) {
    const char *seed = getenv("DSCC_TEST_SEED");
    rng = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "inputs from seed %llu (DSCC_TEST_SEED=%llu reruns them)\n", (unsigned long long)rng, (unsigned long long)rng);
    if (!tu_hopper()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_attn_naive_shape),    cmocka_unit_test(test_attn_naive_other_forms),
                                       cmocka_unit_test(test_attn_naive_in_place), cmocka_unit_test(test_attn_grouped_cached),
                                       cmocka_unit_test(test_attn_cached_half_tile), cmocka_unit_test(test_attn_not_causal)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
