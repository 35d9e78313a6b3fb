/* test_gpu_expert.c — the routed experts' grouped FP8 GEMM in its stream
 * form (codegen/kernels/expert_stream.cuh: a warp per 16 weight rows, the
 * weights as the mma's A, up to 32 of an expert's rows as its B; the
 * weights through a ring of cp.async stages a warp, or with
 * DSCC_EXPERT_V2=ring=0 through registers) against
 * the CPU executor, on routings chosen to reach its edges: one row per
 * expert with most experts at zero rows, slots of id -1 (zeros, no
 * weights read), uneven counts, and one expert holding more than 64 rows
 * (three tiles of 32). The graph is V3's SwiGLU over routed experts (gate
 * and up in one phase, the down chained after the silu * mul quantize),
 * plus a lone expert linear of 100 outputs (a last 16-row group of 4);
 * each output through neg, so fp8-quant quantizes the GEMM before it.
 * K is 528 and 176: a last K block of 16 bytes, K not a multiple of 128.
 *
 * The TMA form (codegen/kernels/expert_tma.cuh, by default above one
 * routed row: every step, at level 3, but at f32 storage only where
 * DSCC_EXPERT_TMA has f32=1; DSCC_EXPERT_TMA=1,minr=1 runs its level 1 at
 * every row count) on the same routings and one more: two
 * experts of 160 rows (with mt=1, two passes over K; with mt=2,
 * consumers holding a second row tile, one without rows) and slots of id -1; N 176,
 * 528 and 100 are not multiples of its 128-output tile, K 528 and 176 not
 * of 128. A wrong swizzle of its gathered rows, a stage released early or
 * a wrong row scattered shows as a rel L2 far above the bounds. Its level
 * 2 (DSCC_EXPERT_TMA=2,...: the scales copied into the stage by the
 * producer, the rows gathered 8 lanes a row through a table in shared
 * memory, the outputs stored 4 columns a lane after a quad shuffle) on the
 * same cases, checked to be the level generated; a scale of the wrong row
 * or K block, or a column pair traded the wrong way, fails the bounds.
 * Level 2 also at decode-like shapes: 32
 * experts, 1, 8 and 128 tokens of 4 slots (a few rows an expert,
 * experts 24-31 never hit, others at zero rows at the smaller counts), on
 * the default grid of 132 blocks (most of them without a unit at 1
 * token); level 3 (the default: level 2 with a unit a pass) on the same
 * cases and at the decode-like shapes (level 1 on most of them). Level 3
 * with dynamic units (dyn=1: an atomic counter, a queue in shared memory
 * to the consumers, the counter reset by the launch's last grab for the
 * chained down) on slots of id -1 and the two experts of 160 rows; the
 * weights' boxes of 2 or 3 K blocks issued together (kp=2, 3) there and at
 * the decode-like shapes. The fused epilogue (epi=1: gate's and up's tile j in
 * one unit, silu(gate) x up quantized in its epilogue; test_tma3_epi) against
 * the unfused form's bits at f32 storage and the CPU's h at bf16.
 * The stream form is opt-in (DSCC_EXPERT_V2=1 or its parameters: on an
 * H100 it was slower than the tile). Each step checks that the stream
 * phase is the one that ran (and, with DSCC_EXPERT_V2=0 or unset, that it
 * is not generated: the TMA form runs, or the tile with
 * DSCC_EXPERT_TMA=minr=2048, the old default, or =0); the CPU takes each value the GPU stored before it computes the
 * next op, so every expert GEMM is checked on the FP8 codes and scales the
 * kernel read. Bounds, rel L2 of each expert GEMM's output: 4e-3 with bf16
 * storage (y rounded to bf16), 1e-5 with f32 storage (FP8 products exact,
 * only the order of the f32 sums differs). The ring's missing waits or
 * warp barriers, or a wrong swizzle, the emulator shows as stale bytes.
 * A malformed DSCC_EXPERT_V2 or DSCC_EXPERT_TMA
 * stops codegen with a message. Exits 77 (skipped) without a GPU;
 * emu.test_gpu_expert runs it on the emulated device. */
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

#define NE 8  /* experts */
#define KS 4  /* slots a token */
#define H 528 /* hidden: gate/up K, down O */

static const char SRC[] = "dim T;\n"
                          "input x: bf16[T, 528];\n"
                          "input idx: i32[T, 4];\n"
                          "weight wg[e: 8]: bf16[176, 528] = \"g.{e}\";\n"
                          "weight wu[e: 8]: bf16[176, 528] = \"u.{e}\";\n"
                          "weight wd[e: 8]: bf16[528, 176] = \"d.{e}\";\n"
                          "weight wn[e: 8]: bf16[100, 528] = \"n.{e}\";\n"
                          "output y = neg(expert_linear(silu(expert_linear(x, wg, idx)) * expert_linear(x, wu, idx), wd, idx));\n"
                          "output z = neg(expert_linear(x, wn, idx));\n";

typedef struct {
    double worst; /* the expert GEMMs' largest rel L2 */
    int gemms;
} Cmp;

/* tu_take_gpu's check: each expert GEMM's error against the GPU's stored value. */
static void check_node(void *ctx, const IrNode *n, const float *gv, const float *c, int64_t nc) {
    Cmp *m = ctx;
    if (n->op == IR_OP_FP8_EXPERT_LINEAR) {
        double e = tu_rel_l2(gv, c, nc);
        m->worst = e > m->worst ? e : m->worst;
        m->gemms++;
    }
}

/* Whether a phase of the stream form runs at T tokens, whether a tile phase of an expert GEMM does, and the TMA form's. */
static void phases_at(const IrGraph *g, bool f32, int64_t T, bool *stream, bool *tile, bool *ring, bool *tma) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune(), .f32_storage = f32});
    assert_non_null(p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "T")] = T;
    *stream = *tile = *ring = *tma = false;
    for (int k = 0; k < p->nkernels; k++)
        for (int ph = 0; ph < p->kernels[k].nphases; ph++) {
            const CgPhase *f = &p->kernels[k].phases[ph];
            const char *src = p->modules[p->kernels[k].module].source;
            if (cg_phase_items(f, sym) <= 0) continue;
            if (strstr(f->fn, "fp8_expert_stream")) *stream = true, *ring |= strstr(src, "#define EX_RING 1\n") != NULL;
            if (strstr(f->fn, "fp8_expert_tma")) *tma = true, assert_non_null(f->tmaps);
            const char *head = strstr(src, arena_printf(a, " %s(Args a) {  // fp8_expert_linear, phase 2", f->fn));
            if (head) *tile = true;
        }
    arena_free(a);
}

/* Whether a module generated under the environment now holds `text`. */
static bool generated_has(const IrGraph *g, bool f32, const char *text) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune(), .f32_storage = f32});
    assert_non_null(p);
    bool has = false;
    for (int m = 0; m < p->nmodules; m++) has |= strstr(p->modules[m].source, text) != NULL;
    arena_free(a);
    return has;
}

/* The level the TMA form's phases were generated at (XT_LVL: 1 or 2; 0 without them). */
static int tma_level(const IrGraph *g, bool f32) {
    return generated_has(g, f32, "#define XT_LVL 2\n") ? 2 : generated_has(g, f32, "#define XT_LVL 1\n") ? 1 : 0;
}

static uint64_t next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* The routings, by kind: 0 one row per hit expert (T = 1), 1 with slots of id -1, 2 uneven, 3 one expert > 64 rows,
 * 4 two experts > 128 rows (the TMA form's passes and its consumers' second row tiles) and slots of id -1. */
static void routing(int kind, int64_t T, float *idx, uint64_t *rng) {
    for (int64_t t = 0; t < T; t++) {
        int used = 0;
        for (int k = 0; k < KS; k++) {
            int e;
            if (kind == 0) e = 2 * k + 1; /* experts 1, 3, 5, 7: one row each, the others none */
            else if (kind == 1 && (t + k) % 3 == 0) e = -1;
            else if ((kind == 3 || kind == 4) && k == 0) e = 5; /* every token: expert 5 */
            else if (kind == 4 && k == 1) e = 3;                /* ... and 3 */
            else if (kind == 4 && k == 3 && t % 5 == 0) e = -1;
            else
                do e = kind == 2 && next(rng) % 2 ? (int)(next(rng) % 3) : (int)(next(rng) % NE); /* uneven: experts 0-2 the most */
                while (used >> e & 1);
            if (e >= 0) used |= 1 << e;
            idx[t * KS + k] = (float)e;
        }
    }
}

enum { FORM_TILE, FORM_STREAM, FORM_TMA }; /* the form of the grouped GEMM that must run */

#define DYN_DEFAULT 0 /* gen_expert.c's EXPERT_TMA_DYN: level 3's dynamic units where dyn is not given (at mt=1) */

#define WIDE_DEFAULT 1 /* gen_expert.c's EXPERT_TMA_BN == 256: units of 256 outputs where bn is not given (level 3 at mt=1,
                        * without dyn and kp) */

/* Whether DSCC_EXPERT_TMA = v (NULL: unset) generates units of 256 outputs (XT_WIDE): bn=256, or by default where
 * the level (given or 3) is 3 with neither mt=2, dyn=1 nor kp=2|3, unless bn=128. */
static bool want_wide(const char *v) {
    if (v && strstr(v, "bn=256")) return true;
    const bool lvl_given = v && v[0] >= '1' && v[0] <= '3' && (v[1] == ',' || !v[1]);
    return WIDE_DEFAULT && !(lvl_given && v[0] != '3') &&
           !(v && (strstr(v, "bn=128") || strstr(v, "mt=2") || strstr(v, "dyn=1") || strstr(v, "kp=2") || strstr(v, "kp=3")));
}

/* Whether DSCC_EXPERT_TMA = v (NULL: unset) generates level 3's dynamic units: dyn=1, or by default at level 3 (given,
 * or no level given) with mt=1 unless dyn=0. */
static bool want_dyn(const char *v) {
    if (v && strstr(v, "dyn=1")) return true;
    const bool lvl_given = v && v[0] >= '1' && v[0] <= '3' && (v[1] == ',' || !v[1]);
    return DYN_DEFAULT && (!lvl_given || v[0] == '3') && !(v && (strstr(v, "dyn=0") || strstr(v, "mt=2")));
}

/* An experts graph from DSL text through the passes the GPU runs here (fp8-quant's codes and scales, then fuse). */
static IrGraph *fused_graph(Arena *a, DiagEngine *d, const char *name, const char *src) {
    return tu_compile_src(a, d, name, src, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse");
}

/* Both executors on each routing kind of the mask `kinds` (bit k: kind k) at its token count (kind 4 with the TMA
 * form only: its 160 tokens are slow on the emulated device); form: the one that must run. */
static void check_kinds(bool f32, int form, unsigned kinds) {
    const bool stream = form == FORM_STREAM;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = fused_graph(a, d, "experts.dsl", SRC);
    uint64_t seed = tu_test_seed() + (f32 ? 7 : 0) + (uint64_t)form * 13;
    CpuWeightSource ws = cpu_random_weights(&seed);
    static const int64_t TOKENS[5] = {1, 2, 24, 80, 160};
    GpuOptions go = {.tune = tu_tune(), .max_batch = kinds >> 4 ? 160 : 80, .max_seq = 1, .max_ctx = 1, .keep_all = true, .f32_storage = f32, .no_blas = true};
    const char *tenv = getenv("DSCC_EXPERT_TMA");
    if (form == FORM_TMA) { /* level 2 (the weights evict-first unless ef=0) but where DSCC_EXPERT_TMA=1... asks for 1 */
        const bool two = !(tenv && tenv[0] == '1');
        assert_int_equal(tma_level(g, f32), two ? 2 : 1);
        assert_true(generated_has(g, f32, "#define XT_EF 1\n") == (two && !strstr(tenv, "ef=0")));
        /* level 3 (the default, and where only keys are given): level 2 with split units */
        const bool lvl_given = tenv && tenv[0] >= '1' && tenv[0] <= '3' && (tenv[1] == ',' || !tenv[1]);
        assert_true(generated_has(g, f32, "#define XT_SPLIT 1\n") == (!lvl_given || tenv[0] == '3'));
        /* dyn=1: level 3's units handed out by the atomic counter */
        assert_true(generated_has(g, f32, "#define XT_DYN 1\n") == want_dyn(tenv));
        assert_true(generated_has(g, f32, "#define XT_KP 2\n") == (tenv && strstr(tenv, "kp=2") != NULL));
        assert_true(generated_has(g, f32, "#define XT_WIDE 1\n") == want_wide(tenv));
    }
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    Cmp m = {0};
    TuGpuCmp t = {g, gx, check_node, &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 4, .after_node = tu_take_gpu, .hook_ctx = &t}, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * 160 * H), *iv = malloc(sizeof(float) * 160 * KS);
    uint64_t rng = seed;
    for (int kind = 0; kind < 5; kind++) {
        if (!(kinds >> kind & 1)) continue;
        int64_t T = TOKENS[kind];
        for (int64_t i = 0; i < T * H; i++) {
            float v = (float)((double)next(&rng) / 2147483648.0 * 2.0 - 1.0) * (i / H % 5 == 2 ? 30.0f : 1.0f);
            xv[i] = rt_bf16_decode(rt_bf16_encode(v));
        }
        routing(kind, T, iv, &rng);
        CpuInput in[2] = {{"x", 2, {T, H}, xv}, {"idx", 2, {T, KS}, iv}};
        m.worst = 0, m.gemms = 0;
        assert_true(gpu_exec_run(gx, in, 2, d));
        assert_true(cpu_exec_run(cx, in, 2, d));
        bool st, tile, ring, tma;
        phases_at(g, f32, T, &st, &tile, &ring, &tma);
        static const char *const what[5] = {"one row per hit expert", "slots of id -1", "uneven rows", "an expert with > 64 rows",
                                            "two experts with > 128 rows"};
        fprintf(stderr, "T %lld (%s), %s storage, %s: %d expert GEMMs, worst rel L2 %.2e\n", (long long)T, what[kind], f32 ? "f32" : "bf16",
                st ? ring ? "stream form, ring" : "stream form" : tma ? "TMA form" : "tile", m.gemms, m.worst);
        const char *env = getenv("DSCC_EXPERT_V2");
        assert_true(!st || ring == !(env && strstr(env, "ring=0") != NULL)); /* the ring form unless asked for the register one */
        assert_int_equal(m.gemms, 4);
        assert_true(st == stream && tma == (form == FORM_TMA) && tile == (form == FORM_TILE));
        /* f32 storage: the tile and stream forms multiply in f32; the TMA form's FP8 wgmma accumulates E4M3 products at
         * reduced precision between promotions on real Hopper tensor cores (1.75e-4 on an H100, 2026-12-06), exactly on
         * the emulated device (DSCC_EMULATED=1) */
        const char *em = getenv("DSCC_EMULATED");
        const bool hw = !(em && strcmp(em, "1") == 0);
        assert_true(m.worst <= (f32 ? (form == FORM_TMA && hw ? 1e-3 : 1e-5) : 4e-3));
    }
    free(xv);
    free(iv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

/* the first four kinds (to 80 tokens) */
static void check(bool f32, int form) { check_kinds(f32, form, 15u); }

/* Which case checks what, kept to one case a code path where two checked the same on the emulated device (its time:
 * tenth session): a form's storage (bf16, f32) is its stores alone, so f32 runs on one variant of each form; the
 * TMA form's passes are of 128 rows, so kind 3 (> 64 rows: the tile's and the stream form's boundaries) is left to
 * those; the sort's scan and walk share their bucket body (expert_sort.cuh's ES_BUCKET), so each form runs one of
 * them on its kinds and the other on a kind or two. */

/* DSCC_EXPERT_V2=1: the stream form's defaults (the ring), the sort's offsets by the scan at 3 buckets a thread
 * (DSCC_EXPERT_SCAN=3: the 9 buckets here on 3 threads, the others empty: a chunk's buckets in turn, a thread past
 * them; the tiles of 32 the stream form reads); the default scan (a bucket a thread): test_regs; the walk
 * (DSCC_EXPERT_SCAN=0): test_ring4 */
static void test_stream(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_SCAN", "3", 1);
    setenv("DSCC_EXPERT_V2", "1", 1);
    check(false, FORM_STREAM);
    unsetenv("DSCC_EXPERT_V2");
    unsetenv("DSCC_EXPERT_SCAN");
}
/* the register form: u K blocks a warp in registers (u=4 minb=1 and u=3 minb=2, which spills; the latter at f32
 * storage, the stream form's f32 stores, without the uneven kind: its partial tiles of 32 are kind 3's others') */
static void test_regs(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_V2", "ring=0", 1);
    check(false, FORM_STREAM);
    unsetenv("DSCC_EXPERT_V2");
}
static void test_regs_f32(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_V2", "ring=0,u=3,minb=2", 1);
    check_kinds(true, FORM_STREAM, 1u | 1u << 1 | 1u << 3);
    unsetenv("DSCC_EXPERT_V2");
}
/* the ring form at 4 stages a warp, two blocks an SM (the kinds as test_regs_f32's); the sort's one-thread walk
 * (DSCC_EXPERT_SCAN=0) and its tiles of 32 */
static void test_ring4(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_SCAN", "0", 1);
    setenv("DSCC_EXPERT_V2", "d=4,minb=2", 1);
    check_kinds(false, FORM_STREAM, 1u | 1u << 1 | 1u << 3);
    unsetenv("DSCC_EXPERT_V2");
    unsetenv("DSCC_EXPERT_SCAN");
}
/* without DSCC_EXPERT_V2 and with DSCC_EXPERT_TMA=0 (no TMA form: the sort without its work list): no stream phase,
 * the tile at every row count (the uneven kind with the scan: test_scan) */
static void test_tile(void **state) {
    (void)state;
    unsetenv("DSCC_EXPERT_V2");
    setenv("DSCC_EXPERT_TMA", "0", 1);
    check_kinds(false, FORM_TILE, 1u | 1u << 1 | 1u << 3);
    unsetenv("DSCC_EXPERT_TMA");
}
/* the TMA form's level 1 (expert_tma.cuh) at every row count (minr=1: above 1 routed row), 128 rows a pass (mt=1: an
 * expert of 160 rows takes two passes), bf16 storage, a grid of 3 blocks (each walks many units: the ring's stages
 * and phases carry over from unit to unit, the -1 bucket's among them); then 256 a pass (mt=2: consumers with two row
 * tiles), f32 storage, a block a unit, both on the two experts of 160 (and their slots of id -1, other experts
 * uneven). (The expert of 80 rows, uneven rows, uneven rows at mt=2, one row per hit expert and units of 1 or 2 rows
 * run at levels 2 and 3, whose passes are level 1's: left out here to keep the test's time with test_tma3_dyn's and
 * test_tma3_wide's added.) */
static void test_tma(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "1,minr=1,grid=3", 1);
    check_kinds(false, FORM_TMA, 1u << 4);
    unsetenv("DSCC_EXPERT_TMA");
}
static void test_tma_f32(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "1,minr=1,mt=2,f32=1", 1);
    check_kinds(true, FORM_TMA, 1u << 4); /* two experts of 160 rows */
    unsetenv("DSCC_EXPERT_TMA");
}

/* the TMA form's level 2 (DSCC_EXPERT_TMA=2: the producer copies the scales of a stage's rows and w's into shared
 * memory beside them, gathers the rows 8 lanes a row): 128 rows a pass and a grid of 3, bf16, the weights evict-first
 * in L2 (the default), on the two experts of 160 rows (a block's passes one after the other) and slots of id -1 (its
 * code for fewer rows is level 3's, test_tma3's kinds; level 2's decode-like shapes: test_tma2_decode); 256 a
 * pass, f32, without the hint, on the two experts of 160 (their second row tiles; uneven rows at mt=2: level 3's
 * test_tma3_decode_f32) */
static void test_tma2(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "2,minr=1,grid=3", 1);
    check_kinds(false, FORM_TMA, 1u << 4);
    unsetenv("DSCC_EXPERT_TMA");
}
static void test_tma2_f32(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "2,minr=1,mt=2,ef=0,f32=1", 1);
    check_kinds(true, FORM_TMA, 1u << 4);
    unsetenv("DSCC_EXPERT_TMA");
}

/* the TMA form's level 3 (the default; DSCC_EXPERT_TMA=3: level 2 with a unit a pass, the passes of one weight tile
 * adjacent units, the sort listing the passes) on the same cases: bf16 on a grid of 3 (the two experts of 160 rows: two
 * passes, units of their own, walked by different blocks; the level left out: the default's), all but kind 3 (its
 * expert of 80 rows is one pass, as uneven rows' are, both consumers' row tiles: the 160 rows' first pass) */
static void test_tma3(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "minr=1,grid=3", 1);
    check_kinds(false, FORM_TMA, 1u | 1u << 1 | 1u << 2 | 1u << 4);
    unsetenv("DSCC_EXPERT_TMA");
}

/* level 3 with dynamic units (DSCC_EXPERT_TMA=3,dyn=1: the next unit from an atomic counter the sort zeroes, passed
 * to the consumers through a queue in shared memory; the last grab sets the counter back to 0, so the chained down's
 * phase, on the same sort, starts from 0 too): the two experts of 160 rows (two passes a weight tile) with slots of
 * id -1 (zero units handed out like the others), on a grid of 5 (the blocks' host threads racing for the units); the
 * weights' boxes of 2 K blocks issued together (kp=2: K 528 and 176, 5 and 2 K blocks, a last pair of one) */
static void test_tma3_dyn(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "3,dyn=1,grid=5,kp=2", 1);
    check_kinds(false, FORM_TMA, 1u << 4);
    unsetenv("DSCC_EXPERT_TMA");
}

/* level 3 with units of 128 outputs (DSCC_EXPERT_TMA=3,bn=128: the default until the ninth session; the default now,
 * units of 256 outputs, two 128-column halves of the weight on the same rows of x, a consumer warpgroup's two
 * accumulator sets, runs in test_tma3 on every kind, N 176, 528 and 100: a second half partly, wholly or (the last
 * tile) all past N, its block scales zeros, its box's rows the next expert's or past the map's): the two experts of
 * 160 rows (two passes a tile) with slots of id -1, bf16 on a grid of 3 (the other kinds left out to keep the file's
 * time; bn=128 at 20 tokens, units of a few rows: test_tma3_wide_tiny's reference, bit for bit bn=256's) */
static void test_tma3_wide(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "3,bn=128,grid=3", 1);
    check_kinds(false, FORM_TMA, 1u << 4);
    unsetenv("DSCC_EXPERT_TMA");
}

/* The tiny fixtures' MoE (tests/fixtures/tiny_*: hidden 96, expert width 40, 16 experts, 4 slots a token): gate and up
 * N 40, K 96 (the TMA form: a unit's one 128-row box holds three experts' rows and a half of 256 outputs lies wholly
 * past N), the down K 40 (K % 16 != 0: the tile), and a lone expert linear of N 176, K 96 (a second half of 48 outputs,
 * its block scales the weight's second row of blocks). */
static const char SRC_TINY[] = "dim T;\n"
                               "input x: bf16[T, 96];\n"
                               "input idx: i32[T, 4];\n"
                               "weight wg[e: 16]: bf16[40, 96] = \"g.{e}\";\n"
                               "weight wu[e: 16]: bf16[40, 96] = \"u.{e}\";\n"
                               "weight wd[e: 16]: bf16[96, 40] = \"d.{e}\";\n"
                               "weight wn[e: 16]: bf16[176, 96] = \"n.{e}\";\n"
                               "output y = neg(expert_linear(silu(expert_linear(x, wg, idx)) * expert_linear(x, wu, idx), wd, idx));\n"
                               "output z = neg(expert_linear(x, wn, idx));\n";

/* One GPU run of a graph of x [T, hx] and idx [T, KS] (expert_gpu_run), then, where a caller asks, the CPU executor on
 * the same weights and inputs with its hook (expert_cpu_pass); expert_run_end frees both. */
typedef struct {
    Arena *a;
    DiagEngine *d;
    uint64_t seed; /* the weights' (cpu_random_weights reads it through its pointer at each load) */
    CpuWeightSource ws;
    GpuExec *gx;
    CpuInput in[2];
} ExpertRun;

/* g under DSCC_EXPERT_TMA = env (unset again by expert_run_end) on the weights of seed tu_test_seed() + seed, room for
 * max_batch tokens, keeping every value: the executor, its values read by the caller. */
static GpuExec *expert_gpu_run(ExpertRun *r, const IrGraph *g, bool f32, const char *env, uint64_t seed, int64_t max_batch, int64_t T,
                               int64_t hx, const float *xv, const float *iv) {
    setenv("DSCC_EXPERT_TMA", env, 1);
    r->a = arena_new();
    r->d = diag_new(r->a, stderr);
    r->seed = tu_test_seed() + seed;
    r->ws = cpu_random_weights(&r->seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = max_batch, .max_seq = 1, .max_ctx = 1, .keep_all = true, .f32_storage = f32, .no_blas = true};
    r->gx = gpu_exec_new(g, &r->ws, &go, r->d);
    assert_non_null(r->gx);
    r->in[0] = (CpuInput){"x", 2, {T, hx}, xv};
    r->in[1] = (CpuInput){"idx", 2, {T, KS}, iv};
    assert_true(gpu_exec_run(r->gx, r->in, 2, r->d));
    return r->gx;
}

/* The CPU executor on expert_gpu_run's weights and inputs, hook after each node (tu_take_gpu and the like). */
static void expert_cpu_pass(ExpertRun *r, const IrGraph *g, void (*hook)(void *, int, float *, int64_t), void *ctx) {
    CpuExec *cx = cpu_exec_new(g, &r->ws, &(CpuOptions){.threads = 4, .after_node = hook, .hook_ctx = ctx}, r->d);
    assert_non_null(cx);
    assert_true(cpu_exec_run(cx, r->in, 2, r->d));
    cpu_exec_free(cx);
}

static void expert_run_end(ExpertRun *r) {
    gpu_exec_free(r->gx);
    arena_free(r->a);
    unsetenv("DSCC_EXPERT_TMA");
}

/* SRC_TINY's expert GEMMs' stored values at T tokens (xv, iv) under DSCC_EXPERT_TMA = env, on the default grid (most
 * blocks without a unit, as in e2e): a malloc'd copy of each fp8_expert_linear's output in node order, their count
 * in *n; with cmp, each checked against the CPU executor too. */
static float **tiny_run(const IrGraph *g, bool f32, const char *env, int64_t T, const float *xv, const float *iv, int *n, int64_t *nv,
                        Cmp *cmp) {
    ExpertRun r;
    GpuExec *gx = expert_gpu_run(&r, g, f32, env, 41, T, T, 96, xv, iv);
    float **out = calloc((size_t)g->nnodes, sizeof *out);
    *n = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i]->op != IR_OP_FP8_EXPERT_LINEAR) continue;
        const float *v = gpu_exec_value(gx, g->nodes[i]->id, &nv[*n]);
        assert_true(v && *n < 4);
        out[*n] = malloc(sizeof(float) * (size_t)nv[*n]);
        memcpy(out[*n], v, sizeof(float) * (size_t)nv[*n]);
        ++*n;
    }
    if (cmp) {
        TuGpuCmp t = {g, gx, check_node, cmp};
        expert_cpu_pass(&r, g, tu_take_gpu, &t);
    }
    expert_run_end(&r);
    return out;
}

/* bn=256 against bn=128 (level 3) at the tiny fixtures' shapes, bf16 and f32 storage (f32=1: the TMA form there):
 * the same bits. A half of 256 outputs multiplies the same box rows, x rows and scales with the same wgmma as a unit
 * of 128 does, so any difference is a fault of the wide units (a half promoted with the other's scale, a stage
 * released early, a half past N stored); the CPU bounds too. Where test_gpu_plan and e2e failed with
 * DSCC_EXPERT_TMA=3,bn=256 (ninth session) they ran f32 storage on the TMA form (FP8 wgmma's sums), not this. */
static void test_tma3_wide_tiny(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = fused_graph(a, d, "experts_tiny.dsl", SRC_TINY);
    enum { T = 20 };
    float xv[T * 96], iv[T * KS];
    uint64_t rng = tu_test_seed() + 43;
    for (int i = 0; i < T * 96; i++) xv[i] = rt_bf16_decode(rt_bf16_encode((float)((double)next(&rng) / 2147483648.0 * 2.0 - 1.0)));
    for (int t = 0; t < T; t++) { /* 4 distinct experts a token (some with many rows: 0-3 likelier), every 7th slot -1 */
        unsigned used = 0;
        for (int k = 0; k < KS; k++) {
            int e;
            do e = next(&rng) % 3 ? (int)(next(&rng) % 16) : (int)(next(&rng) % 4);
            while (used >> e & 1);
            used |= 1u << e;
            iv[t * KS + k] = (t * KS + k) % 7 == 3 ? -1.0f : (float)e;
        }
    }
    setenv("DSCC_EXPERT_TMA", "3,bn=256", 1);
    assert_true(generated_has(g, false, "#define XT_WIDE 1\n"));
    for (int f = 0; f < 2; f++) {
        int n1 = 0, n2 = 0;
        int64_t nv1[4], nv2[4];
        Cmp m = {0};
        float **o1 = tiny_run(g, f, f ? "3,bn=128,f32=1" : "3,bn=128", T, xv, iv, &n1, nv1, NULL);
        float **o2 = tiny_run(g, f, f ? "3,bn=256,f32=1" : "3,bn=256", T, xv, iv, &n2, nv2, &m);
        assert_int_equal(n1, 4);
        assert_int_equal(n2, 4);
        int same = 0;
        for (int k = 0; k < 4; k++) { /* gate, up and the lone linear the TMA form's; the down (K 40) the tile's in both */
            assert_int_equal(nv1[k], nv2[k]);
            assert_true(nv1[k] == (int64_t)T * KS * 40 || nv1[k] == (int64_t)T * KS * 96 || nv1[k] == (int64_t)T * KS * 176);
            same += memcmp(o1[k], o2[k], sizeof(float) * (size_t)nv1[k]) == 0;
            free(o1[k]);
            free(o2[k]);
        }
        free(o1);
        free(o2);
        fprintf(stderr, "tiny shapes, %s storage: bn=256 and bn=128 agree bitwise on %d of 4 expert GEMMs; bn=256 vs CPU worst rel L2 %.2e\n",
                f ? "f32" : "bf16", same, m.worst);
        assert_int_equal(same, 4);
        assert_int_equal(m.gemms, 4);
        const char *em = getenv("DSCC_EMULATED");
        const bool hw = !(em && strcmp(em, "1") == 0);
        assert_true(m.worst <= (f ? (hw ? 1e-3 : 1e-5) : 4e-3));
    }
    unsetenv("DSCC_EXPERT_TMA");
    arena_free(a);
}

/* Whether node i is gate or up: an expert GEMM that silu or the product reads (the fused epilogue leaves them unstored). */
static bool gate_or_up(const IrGraph *g, int i) {
    if (g->nodes[i]->op != IR_OP_FP8_EXPERT_LINEAR) return false;
    for (int j = 0; j < g->nnodes; j++)
        for (int k = 0; k < g->nodes[j]->nops; k++)
            if (g->nodes[j]->ops[k] == g->nodes[i] && (g->nodes[j]->op == IR_OP_SILU || g->nodes[j]->op == IR_OP_MUL)) return true;
    return false;
}

typedef struct {
    Cmp gemm;                     /* the other expert GEMMs' worst rel L2 */
    double q, s;                  /* h's codes' and scales' rel L2 */
    int nqs;                      /* ... values checked */
    const IrGraph *g;
    GpuExec *gx;
} EpiCmp;

/* tu_take_gpu, but gate and up neither checked nor taken (the CPU's own f32 values feed silu * up), h's codes (quantize)
 * and scales (act_scale) checked against what the CPU computes from them */
static void epi_take(void *ctx, int id, float *c, int64_t nc) {
    EpiCmp *m = ctx;
    if (gate_or_up(m->g, id)) return;
    const IrNode *n = m->g->nodes[id];
    int64_t nv = 0;
    const float *gv = gpu_exec_value(m->gx, id, &nv);
    if (gv && nv == nc && (n->op == IR_OP_QUANTIZE || n->op == IR_OP_ACT_SCALE) && n->ops[0]->op == IR_OP_MUL) { /* h's */
        double e = tu_rel_l2(gv, c, nc), *w = n->op == IR_OP_QUANTIZE ? &m->q : &m->s;
        *w = e > *w ? e : *w;
        m->nqs++;
    }
    TuGpuCmp t = {m->g, m->gx, check_node, &m->gemm};
    tu_take_gpu(&t, id, c, nc);
}

/* SRC's stored values at T tokens (xv, iv) under DSCC_EXPERT_TMA = env: a malloc'd copy of each, by node id (NULL: not
 * stored, or gate and up); with em, the CPU executor checks them through epi_take. */
static float **epi_run(const IrGraph *g, bool f32, const char *env, int64_t T, int64_t hx, const float *xv, const float *iv, EpiCmp *em) {
    ExpertRun r;
    GpuExec *gx = expert_gpu_run(&r, g, f32, env, 47, 160, T, hx, xv, iv);
    float **out = calloc((size_t)g->nnodes, sizeof *out);
    for (int i = 0; i < g->nnodes; i++) {
        int64_t nv = 0;
        const float *v = gate_or_up(g, i) ? NULL : gpu_exec_value(gx, g->nodes[i]->id, &nv);
        if (!v || nv <= 0) continue;
        out[i] = malloc(sizeof(float) * (size_t)(nv + 1));
        out[i][0] = (float)nv;
        memcpy(out[i] + 1, v, sizeof(float) * (size_t)nv);
    }
    if (em) {
        em->g = g, em->gx = gx;
        expert_cpu_pass(&r, g, epi_take, em);
    }
    expert_run_end(&r);
    return out;
}

/* The fused epilogue (DSCC_EXPERT_TMA=3,epi=1: a unit gate's and up's tile j, silu(gate) x up quantized in the
 * consumers, the silu-mul-quantize phase run only where the tile runs), a grid of 3: on SRC (N 176: tile 1 of 48
 * columns; K 528) at slots of id -1 (zero codes and scales from the producer; units of 1 and 2 rows) at bf16 storage
 * against the CPU executor (gate and up its own f32, as the epilogue's), h's codes within 1e-2 (rel L2: a code
 * rounded the other way at a tie of sums in another order; 3e-2 on real tensor cores), its scales 1e-5 (2e-3), the
 * GEMMs 4e-3; on SRC_EPI at two experts of 160 rows (two passes), slots of id -1 and uneven rows, at f32 storage
 * (f32=1) every stored value but gate and up (h's codes and scales, the down, the outputs) the same bits as the
 * unfused level 3's (the middle phase computes from f32 gate and up what the epilogue computes from its
 * accumulators, in the same order). (Until the tenth session both checks ran on SRC at both routings and the bits on
 * SRC_EPI at 24 tokens too: three runs at 160 tokens of K 528, a sixth of the file's emulated time.) */
/* the fused and the unfused form's stored values (but gate and up) at f32 storage (f32=1): the count of those alike in
 * every bit, of *vals */
static int epi_same(const IrGraph *g, int64_t T, int64_t hx, const float *xv, const float *iv, int *vals) {
    float **o1 = epi_run(g, true, "3,grid=3,f32=1", T, hx, xv, iv, NULL), **o2 = epi_run(g, true, "3,epi=1,grid=3,f32=1", T, hx, xv, iv, NULL);
    int same = 0;
    *vals = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (!o1[i] || !o2[i]) {
            assert_true(!o1[i] && !o2[i]);
            continue;
        }
        ++*vals;
        same += o1[i][0] == o2[i][0] && memcmp(o1[i], o2[i], sizeof(float) * (size_t)(o1[i][0] + 1)) == 0;
        free(o1[i]), free(o2[i]);
    }
    free(o1), free(o2);
    return same;
}

/* gate and up of N 256 (two whole tiles; the silu-mul-quantize phase in its 8-elements-a-thread form, as V3's N 2,048
 * takes it), K 272 */
static const char SRC_EPI[] = "dim T;\n"
                              "input x: bf16[T, 272];\n"
                              "input idx: i32[T, 4];\n"
                              "weight wg[e: 8]: bf16[256, 272] = \"g.{e}\";\n"
                              "weight wu[e: 8]: bf16[256, 272] = \"u.{e}\";\n"
                              "weight wd[e: 8]: bf16[272, 256] = \"d.{e}\";\n"
                              "output y = neg(expert_linear(silu(expert_linear(x, wg, idx)) * expert_linear(x, wu, idx), wd, idx));\n";

static void test_tma3_epi(void **state) {
    (void)state;
    Arena *a = arena_new();
    IrGraph *g = fused_graph(a, diag_new(a, stderr), "experts.dsl", SRC);
    setenv("DSCC_EXPERT_TMA", "3,epi=1", 1);
    assert_true(generated_has(g, false, "#define XT_EPI 1\n"));
    setenv("DSCC_EXPERT_TMA", "3,epi=1,f32=1", 1); /* (else the bits below would be the unfused form's twice) */
    assert_true(generated_has(g, true, "#define XT_EPI 1\n"));
    unsetenv("DSCC_EXPERT_TMA");
    float *xv = malloc(sizeof(float) * 160 * H), *iv = malloc(sizeof(float) * 160 * KS);
    uint64_t rng = tu_test_seed() + 53;
    const char *em = getenv("DSCC_EMULATED");
    const bool hw = !(em && strcmp(em, "1") == 0);
    for (int64_t i = 0; i < 2 * H; i++) xv[i] = rt_bf16_decode(rt_bf16_encode((float)((double)next(&rng) / 2147483648.0 * 2.0 - 1.0)));
    routing(1, 2, iv, &rng); /* slots of id -1 */
    EpiCmp m = {0};
    float **o3 = epi_run(g, false, "3,epi=1,grid=3", 2, H, xv, iv, &m);
    for (int i = 0; i < g->nnodes; i++) free(o3[i]);
    free(o3);
    fprintf(stderr, "T 2, epi=1: bf16 storage vs CPU: h's codes %.2e, its scales %.2e, %d other expert GEMMs worst %.2e\n", m.q, m.s,
            m.gemm.gemms, m.gemm.worst);
    assert_int_equal(m.gemm.gemms, 2);
    assert_true(m.nqs == 2 && m.q <= (hw ? 3e-2 : 1e-2));
    assert_true(m.s <= (hw ? 2e-3 : 1e-5) && m.gemm.worst <= 4e-3);
    /* N 256, K 272: two experts of 160 rows, the others uneven */
    IrGraph *g2 = fused_graph(a, diag_new(a, stderr), "experts.dsl", SRC_EPI);
    setenv("DSCC_EXPERT_TMA", "3,epi=1,f32=1", 1);
    assert_true(generated_has(g2, true, "#define XT_EPI 1\n"));
    unsetenv("DSCC_EXPERT_TMA");
    for (int64_t i = 0; i < 160 * 272; i++) xv[i] = rt_bf16_decode(rt_bf16_encode((float)((double)next(&rng) / 2147483648.0 * 2.0 - 1.0)));
    routing(4, 160, iv, &rng);
    int vals = 0, same = epi_same(g2, 160, 272, xv, iv, &vals);
    fprintf(stderr, "T 160, N 256, epi=1: f32 storage, %d of %d stored values the unfused form's bits\n", same, vals);
    assert_true(vals >= 6 && same == vals);
    free(xv);
    free(iv);
    arena_free(a);
}

/* Decode-like shapes: V3's SwiGLU over 32 experts (gate and up K 272: a last K block of 16 bytes; N 176, the down's
 * 272: neither a multiple of 128), 4 slots a token, each token's experts drawn from 0..23 (experts 24-31 never hit). */
static const char SRC_DEC[] = "dim T;\n"
                              "input x: bf16[T, 272];\n"
                              "input idx: i32[T, 4];\n"
                              "weight wg[e: 32]: bf16[176, 272] = \"g.{e}\";\n"
                              "weight wu[e: 32]: bf16[176, 272] = \"u.{e}\";\n"
                              "weight wd[e: 32]: bf16[272, 176] = \"d.{e}\";\n"
                              "output y = neg(expert_linear(silu(expert_linear(x, wg, idx)) * expert_linear(x, wu, idx), wd, idx));\n";

/* SRC_DEC on both executors at 1, (with eight) 8 and 128 tokens under the environment now set: the TMA form at level 2
 * must run at each (the tile at none); bounds as check_kinds'. (32 tokens, 23 or 24 experts of a few rows, until the
 * tenth session: 128's 24 experts of ~20 rows check the same, at a fifth of the file's emulated time for the two.) */
static void check_decode(bool f32, bool eight) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = fused_graph(a, d, "experts_decode.dsl", SRC_DEC);
    assert_int_equal(tma_level(g, f32), 2);
    const char *tenv = getenv("DSCC_EXPERT_TMA"); /* kp=3: generated as asked */
    assert_true(generated_has(g, f32, "#define XT_KP 3\n") == (tenv && strstr(tenv, "kp=3") != NULL));
    uint64_t seed = tu_test_seed() + (f32 ? 29 : 31);
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = 128, .max_seq = 1, .max_ctx = 1, .keep_all = true, .f32_storage = f32, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    Cmp m = {0};
    TuGpuCmp tc = {g, gx, check_node, &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 4, .after_node = tu_take_gpu, .hook_ctx = &tc}, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * 128 * 272), *iv = malloc(sizeof(float) * 128 * KS);
    uint64_t rng = seed;
    static const int64_t TOKENS[3] = {1, 8, 128};
    for (int c = 0; c < 3; c++) {
        const int64_t T = TOKENS[c];
        if (T == 8 && !eight) continue;
        for (int64_t i = 0; i < T * 272; i++) xv[i] = rt_bf16_decode(rt_bf16_encode((float)((double)next(&rng) / 2147483648.0 * 2.0 - 1.0)));
        int hit[24] = {0}, nhit = 0;
        for (int64_t t = 0; t < T; t++) {
            unsigned used = 0;
            for (int k = 0; k < KS; k++) {
                int e;
                do e = (int)(next(&rng) % 24);
                while (used >> e & 1);
                used |= 1u << e;
                nhit += hit[e]++ == 0;
                iv[t * KS + k] = (float)e;
            }
        }
        CpuInput in[2] = {{"x", 2, {T, 272}, xv}, {"idx", 2, {T, KS}, iv}};
        m.worst = 0, m.gemms = 0;
        assert_true(gpu_exec_run(gx, in, 2, d));
        assert_true(cpu_exec_run(cx, in, 2, d));
        bool st, tile, ring, tma;
        phases_at(g, f32, T, &st, &tile, &ring, &tma);
        fprintf(stderr, "T %lld (decode-like: %d of 32 experts hit), %s storage, %s: %d expert GEMMs, worst rel L2 %.2e\n", (long long)T,
                nhit, f32 ? "f32" : "bf16", tma ? "TMA form" : tile ? "tile" : "other", m.gemms, m.worst);
        assert_int_equal(m.gemms, 3);
        assert_true(tma && !tile && !st);
        const char *em = getenv("DSCC_EMULATED");
        const bool hw = !(em && strcmp(em, "1") == 0);
        assert_true(m.worst <= (f32 ? (hw ? 1e-3 : 1e-5) : 4e-3));
    }
    free(xv);
    free(iv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

/* level 2 at every row count (DSCC_EXPERT_TMA=2: 132 blocks, the weights evict-first), bf16, with 8 tokens (17 of 32
 * experts hit: most blocks without a unit, experts at zero rows beside ones of a few) (level 2 with f32 storage, many
 * units a block: test_tma2_f32, test_tma2) */
static void test_tma2_decode(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "2", 1);
    unsetenv("DSCC_EXPERT_V2");
    check_decode(false, true);
    unsetenv("DSCC_EXPERT_TMA");
}
/* level 3 at the decode-like shapes: f32, 256 rows a pass (mt=2), a grid of 7 (many units a block), without the L2
 * hint, the weights' boxes of 3 K blocks issued together (kp=3: K 272 and 176, 3 and 2 K blocks, on a ring of 4
 * stages), at 1 and 128 tokens */
static void test_tma3_decode_f32(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_TMA", "3,mt=2,grid=7,ef=0,kp=3,f32=1", 1);
    check_decode(true, false);
    unsetenv("DSCC_EXPERT_TMA");
}

/* maxr: the stream form at R <= maxr routed rows only, the tile above; a malformed value stops codegen. */
/* DSCC_EXPERT_SCAN: the sort's bucket offsets and tiles by a block-wide scan (the default; the same values the
 * one-thread walk writes). Every other case runs the scan but test_ring4 (the walk, the stream form's tiles of 32)
 * and test_stream (3 buckets a thread); here the walk (DSCC_EXPERT_SCAN=0) on the TMA form's level 3 (the default:
 * its work list and passes read the counts and first positions) on slots of id -1 and uneven rows, and on the tile
 * (its tiles of 64) on uneven rows; the instance's parameter unset, 0 and 1; a malformed value is refused. */
static void test_scan(void **state) {
    (void)state;
    setenv("DSCC_EXPERT_SCAN", "0", 1);
    setenv("DSCC_EXPERT_TMA", "3", 1);
    check_kinds(false, FORM_TMA, 1u << 1 | 1u << 2);
    setenv("DSCC_EXPERT_TMA", "0", 1); /* the tile: the tiles of 64 */
    check_kinds(false, FORM_TILE, 1u << 2);
    unsetenv("DSCC_EXPERT_TMA");
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = tu_compile_src(a, d, "experts.dsl", SRC, "shape-infer,fp8-quant,fuse");
    assert_true(generated_has(g, false, "#define ES_SCAN 0\n")); /* 0: thread 0 walks the buckets */
    setenv("DSCC_EXPERT_SCAN", "1", 1);
    assert_true(generated_has(g, false, "#define ES_SCAN 1\n")); /* expert_sort.cuh: the scan, a bucket a thread */
    setenv("DSCC_EXPERT_SCAN", "65", 1);
    assert_null(cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()}));
    unsetenv("DSCC_EXPERT_SCAN");
    assert_true(generated_has(g, false, "#define ES_SCAN 1\n")); /* unset: the scan (the default) */
    arena_free(a);
}

static void test_env(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = tu_compile_src(a, d, "experts.dsl", SRC, "shape-infer,fp8-quant,fuse");
    bool st, tile, ring, tma;
    unsetenv("DSCC_EXPERT_TMA"); /* what a test before may have left set when it failed */
    setenv("DSCC_EXPERT_V2", "0", 1);
    phases_at(g, false, 2, &st, &tile, &ring, &tma);
    assert_true(!st && !tile && tma);
    setenv("DSCC_EXPERT_V2", "maxr=8,u=2,minb=1", 1); /* the stream form up to 8 routed rows, the TMA form above */
    phases_at(g, false, 2, &st, &tile, &ring, &tma); /* 8 routed rows */
    assert_true(st && !tile && !tma);
    phases_at(g, false, 3, &st, &tile, &ring, &tma); /* 12 */
    assert_true(!st && !tile && tma);
    setenv("DSCC_EXPERT_TMA", "0", 1); /* ... the tile above */
    phases_at(g, false, 2, &st, &tile, &ring, &tma);
    assert_true(st && !tile && !tma);
    phases_at(g, false, 3, &st, &tile, &ring, &tma);
    assert_true(!st && tile && !tma);
    unsetenv("DSCC_EXPERT_TMA");
    static const char *const bad[] = {"2", "u=9", "minb=0", "maxr", "maxr=8,", "depth=2", "u=2x", "maxr=0", "ring=2", "d=5", "u=2,1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("DSCC_EXPERT_V2", bad[i], 1);
        assert_null(cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()}));
    }
    unsetenv("DSCC_EXPERT_V2");
    assert_true(diag_error_count(d) >= 11);
    /* the TMA form above minr routed rows, the tile at or below; by default (level 2) and with DSCC_EXPERT_TMA=1 or 2
     * above 1 (every step: a token has 4 slots here), with minr=2048 above 2,048 (a prefill of 512 tokens x 4 slots);
     * never with DSCC_EXPERT_TMA=0 */
    setenv("DSCC_EXPERT_TMA", "minr=8", 1);
    phases_at(g, false, 2, &st, &tile, &ring, &tma);
    assert_true(!st && tile && !tma);
    phases_at(g, false, 3, &st, &tile, &ring, &tma);
    assert_true(!st && !tile && tma);
    setenv("DSCC_EXPERT_TMA", "1,minr=2048", 1);
    phases_at(g, false, 512, &st, &tile, &ring, &tma);
    assert_true(!st && tile && !tma);
    phases_at(g, false, 513, &st, &tile, &ring, &tma);
    assert_true(!st && !tile && tma);
    assert_int_equal(tma_level(g, false), 1);
    setenv("DSCC_EXPERT_TMA", "2,minr=2048", 1); /* level 2 at the same rows */
    phases_at(g, false, 512, &st, &tile, &ring, &tma);
    assert_true(!st && tile && !tma);
    phases_at(g, false, 513, &st, &tile, &ring, &tma);
    assert_true(!st && !tile && tma);
    assert_int_equal(tma_level(g, false), 2);
    setenv("DSCC_EXPERT_TMA", "1", 1); /* level 1 at every row count */
    phases_at(g, false, 1, &st, &tile, &ring, &tma);
    assert_true(!st && !tile && tma);
    assert_int_equal(tma_level(g, false), 1);
    setenv("DSCC_EXPERT_TMA", "1,mt=2", 1);
    assert_int_equal(tma_level(g, false), 1);
    setenv("DSCC_EXPERT_TMA", "3", 1); /* level 3: level 2's kernel with split units, at every row count */
    assert_int_equal(tma_level(g, false), 2);
    assert_true(generated_has(g, false, "#define XT_SPLIT 1\n"));
    phases_at(g, false, 1, &st, &tile, &ring, &tma);
    assert_true(!st && !tile && tma);
    assert_true(generated_has(g, false, "#define XT_DYN 1\n") == DYN_DEFAULT); /* level 3's default walk */
    setenv("DSCC_EXPERT_TMA", "3,mt=2", 1);                                     /* the static walk at mt=2 */
    assert_false(generated_has(g, false, "#define XT_DYN 1\n"));
    setenv("DSCC_EXPERT_TMA", "dyn=1", 1);                      /* keys alone: level 3 */
    assert_true(generated_has(g, false, "#define XT_DYN 1\n"));
    setenv("DSCC_EXPERT_TMA", "3,dyn=0", 1);
    assert_false(generated_has(g, false, "#define XT_DYN 1\n"));
    setenv("DSCC_EXPERT_TMA", "2", 1);
    assert_false(generated_has(g, false, "#define XT_SPLIT 1\n"));
    unsetenv("DSCC_EXPERT_TMA");
    for (int64_t T = 1; T <= 1024; T *= 4) { /* the default: level 3 at every step; at f32 storage (the mma.sync tile:
                                                 * exact, FP8 wgmma is not) the tile unless DSCC_EXPERT_TMA has f32=1 */
        phases_at(g, false, T, &st, &tile, &ring, &tma);
        assert_true(!st && !tile && tma);
        phases_at(g, true, T, &st, &tile, &ring, &tma);
        assert_true(!st && tile && !tma);
    }
    assert_int_equal(tma_level(g, false), 2);
    assert_true(generated_has(g, false, "#define XT_SPLIT 1\n"));
    assert_int_equal(tma_level(g, true), 0);
    /* a level or a timing key alone leaves f32 storage on the tile (until the ninth session any value set took the TMA
     * form there, so DSCC_EXPERT_TMA=3,bn=256 failed test_gpu_plan's and e2e's f32 bounds on an H200: FP8 wgmma's
     * sums, 1.07e-2 as with plain level 3, not the wide units); f32=1 asks for it */
    static const char *const keep[] = {"2", "3", "3,bn=256", "minr=1", "3,f32=0"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        setenv("DSCC_EXPERT_TMA", keep[i], 1);
        phases_at(g, true, 1, &st, &tile, &ring, &tma);
        assert_true(!st && tile && !tma);
        assert_int_equal(tma_level(g, true), 0);
        phases_at(g, false, 1, &st, &tile, &ring, &tma); /* ... and bf16 storage on the TMA form */
        assert_true(!st && !tile && tma);
    }
    setenv("DSCC_EXPERT_TMA", "2,f32=1", 1);
    phases_at(g, true, 1, &st, &tile, &ring, &tma);
    assert_true(!st && !tile && tma);
    assert_int_equal(tma_level(g, true), 2);
    setenv("DSCC_EXPERT_TMA", "3,bn=256,f32=1", 1);
    assert_true(generated_has(g, true, "#define XT_WIDE 1\n"));
    setenv("DSCC_EXPERT_TMA", "2", 1);
    assert_true(generated_has(g, false, "#define XT_KP 1\n"));
    setenv("DSCC_EXPERT_TMA", "2,kp=3", 1); /* kp at level 2 too */
    assert_true(generated_has(g, false, "#define XT_KP 3\n"));
    assert_true(generated_has(g, false, "#define XT_WIDE 0\n")); /* kp > 1: never wide */
    setenv("DSCC_EXPERT_TMA", "3", 1);
    assert_true(generated_has(g, false, "#define XT_WIDE 1\n") == WIDE_DEFAULT);
    setenv("DSCC_EXPERT_TMA", "2", 1); /* level 2's default: 128 outputs (its code as before) */
    assert_true(generated_has(g, false, "#define XT_WIDE 0\n"));
    setenv("DSCC_EXPERT_TMA", "2,bn=256", 1); /* units of 256 outputs at level 2 too (and keys alone: level 3) */
    assert_true(generated_has(g, false, "#define XT_WIDE 1\n") && !generated_has(g, false, "#define XT_SPLIT 1\n"));
    setenv("DSCC_EXPERT_TMA", "bn=256", 1);
    assert_true(generated_has(g, false, "#define XT_WIDE 1\n") && generated_has(g, false, "#define XT_SPLIT 1\n"));
    setenv("DSCC_EXPERT_TMA", "3,bn=128", 1);
    assert_true(generated_has(g, false, "#define XT_WIDE 0\n"));
    assert_false(generated_has(g, false, "#define XT_EPI 1\n"));
    setenv("DSCC_EXPERT_TMA", "2,epi=1", 1); /* f32 storage keeps the tile (without cse gate and up read two quantizes of x
                                              * here: not paired, so no fused epilogue at all; test_tma3_epi has it) */
    assert_false(generated_has(g, true, "#define XT_EPI 1\n"));
    unsetenv("DSCC_EXPERT_TMA");
    assert_true(generated_has(g, false, "#define XT_EF 1\n"));
    setenv("DSCC_EXPERT_TMA", "minr=8", 1); /* keys alone: the default level */
    assert_int_equal(tma_level(g, false), 2);
    setenv("DSCC_EXPERT_TMA", "", 1);
    assert_int_equal(tma_level(g, false), 2);
    setenv("DSCC_EXPERT_TMA", "0", 1);
    phases_at(g, false, 513, &st, &tile, &ring, &tma);
    assert_true(!st && tile && !tma);
    int before = diag_error_count(d);
    static const char *const badt[] = {"4", "minr=0", "mt=3", "minr", "minr=", "mt=1,", "minr=8x", "depth=2", "grid=0", "grid=1025",
                                       "mt=2,2", "2,", "2x", ",2", "2,mt=3", "-1", "2,ef=2", "2,dyn=1", "1,dyn=1", "dyn=2", "kp=0", "kp=4", "1,kp=2",
                                       "bn=192", "1,bn=256", "bn=256,mt=2", "bn=256,dyn=1", "bn=256,kp=2", "bn=512", "f32=2", "f32",
                                       "epi=2", "1,epi=1", "epi=1,mt=2", "epi=1,dyn=1", "epi=1,kp=2"};
    for (size_t i = 0; i < sizeof badt / sizeof badt[0]; i++) {
        setenv("DSCC_EXPERT_TMA", badt[i], 1);
        assert_null(cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()}));
    }
    unsetenv("DSCC_EXPERT_TMA");
    assert_true(diag_error_count(d) >= before + 36);
    arena_free(a);
}

int main(int argc, char **argv) {
    if (!tu_hopper()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stream), cmocka_unit_test(test_regs),
                                       cmocka_unit_test(test_regs_f32), cmocka_unit_test(test_ring4), cmocka_unit_test(test_tile),
                                       cmocka_unit_test(test_tma), cmocka_unit_test(test_tma_f32), cmocka_unit_test(test_tma2),
                                       cmocka_unit_test(test_tma2_f32), cmocka_unit_test(test_tma2_decode), cmocka_unit_test(test_tma3),
                                       cmocka_unit_test(test_tma3_dyn), cmocka_unit_test(test_tma3_wide), cmocka_unit_test(test_tma3_wide_tiny), cmocka_unit_test(test_tma3_epi),
                                       cmocka_unit_test(test_tma3_decode_f32), cmocka_unit_test(test_env), cmocka_unit_test(test_scan)};
    if (argc > 1) cmocka_set_test_filter(argv[1]); /* one test (a glob) while iterating: test_gpu_expert 'test_tma2*' */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
