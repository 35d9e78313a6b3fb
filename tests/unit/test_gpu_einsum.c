/* test_gpu_einsum.c — absorbed MLA's per-head products ("bshk,hnk->bshn",
 * BF16 x and w) against the CPU executor: the decode form
 * (codegen/kernels/einsum_heads.cuh, at most DSCC_EINSUM_ROWS rows, default
 * 8) and the tensor-core tile above it. Two shapes:
 *   - K = 128 (two 128-byte segments a weight row: 4 rows a lane group),
 *     N = 200 (a block's 128 rows: the last block of a head ragged), 3 heads;
 *   - K = 640 (ten segments: a pass of 8 loads, then one of 2), N = 40,
 *     2 heads.
 * At 1, 3, 8 rows (the decode form) and 9, 16, 17, 40, 41 (the tile; with
 * DSCC_EINSUM_ROWS=40 the tensor-core decode form, einsum_heads_mma.cuh, to
 * 40 rows), fresh inputs each
 * step (every 5th row of a head 40 times larger), each head's weights its own: a wrong head, row,
 * segment or sum is far above the bound (rel L2 1e-2, bf16 storage). The
 * test also checks which form ran, that DSCC_EINSUM_ROWS=0 gives the tile
 * at one row and =16 the decode forms to 16 rows, and that a malformed value
 * stops codegen; that the decode form loads w before its wait for a weight or
 * a value of weights alone (W_UK's transpose: one shape run that way, with
 * DSCC_PDL_EARLY=1), not for a value of the step nor with DSCC_EINSUM_PRE=0. With DSCC_EINSUM_ROPE (test_rope; the
 * default, =0 off) the decode form reads q_nope from q_b's output and ropes q_pe at a cached step, its row group
 * launching nothing there: bit for bit the run with =0; with DSCC_EINSUM_KV=1 (test_kv) it does the latent's row group (rmsnorm, RoPE,
 * concat, the KV cache append) at a cached step, that group launching nothing there: einsum and cache bit for bit the
 * run without it. Exits 77 (skipped) without a GPU; emu.test_gpu_einsum runs it on the emulated
 * device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/gen.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

typedef struct {
    double err; /* the einsum's rel L2 */
    int seen;
} Cmp;

/* tu_take_gpu's check: the einsum's error against the GPU's stored value. */
static void check_node(void *ctx, const IrNode *n, const float *gv, const float *c, int64_t nc) {
    Cmp *m = ctx;
    if (n->op == IR_OP_EINSUM) m->err = tu_rel_l2(gv, c, nc), m->seen++;
}

/* w: W_WEIGHT a weight [H][N][K]; W_DERIVED the transpose of a weight [H][K][N] (a value of weights alone, computed
 * when they load, as absorbed MLA's W_UK); W_INPUT an input of the step (no weight). */
enum { W_WEIGHT, W_DERIVED, W_INPUT };

static IrGraph *compile_w(Arena *a, DiagEngine *d, int64_t H, int64_t N, int64_t K, int wform) {
    const long long h = H, n = N, k = K;
    const char *wdecl = wform == W_WEIGHT    ? arena_printf(a, "weight w: bf16[%lld, %lld, %lld] = \"w\";\n", h, n, k)
                        : wform == W_DERIVED ? arena_printf(a, "weight w0: bf16[%lld, %lld, %lld] = \"w\";\n", h, k, n)
                                             : arena_printf(a, "input w: bf16[%lld, %lld, %lld];\n", h, n, k);
    const char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, %lld, %lld];\n%soutput y = einsum(\"bshk,hnk->bshn\", x, %s);\n", h, k,
                                   wdecl, wform == W_DERIVED ? "transpose(w0, [0, 2, 1])" : "w");
    IrGraph *g = tu_compile_src(a, d, "einsum.dsl", src, "shape-infer,fold-constants,dce,cse,fuse");
    return g;
}

static IrGraph *compile(Arena *a, DiagEngine *d, int64_t H, int64_t N, int64_t K) { return compile_w(a, d, H, N, K, W_WEIGHT); }

/* Which form the einsum's kernel runs at M rows (exactly one of its phases runs): 1 the CUDA-core decode form, 2 the
 * tensor-core one, 0 the tile; -1 for no program (a malformed DSCC_EINSUM_ROWS). */
static int decode_form(const IrGraph *g, int64_t M) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    if (!p) {
        arena_free(a);
        return -1;
    }
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[ir_graph_find_dim(g, "B")] = 1, sym[ir_graph_find_dim(g, "S")] = M;
    int runs = 0, dec = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        if (!strstr(ck->name, "einsum")) continue; /* (a value of weights alone: its own kernel) */
        for (int f = 0; f < ck->nphases; f++) {
            if (cg_phase_items(&ck->phases[f], sym) <= 0) continue;
            runs++;
            dec += strstr(ck->phases[f].fn, "einsum_heads_mma") ? 2 : strstr(ck->phases[f].fn, "einsum_heads") != NULL;
        }
    }
    assert_int_equal(runs, 1);
    arena_free(a);
    return dec;
}

/* The shape at each row count of ROWS, w in form wform; the decode form runs up to `top` rows (DSCC_EINSUM_ROWS, set by
 * the caller). */
static void check_shape_w(int64_t H, int64_t N, int64_t K, int top, int wform) {
    static const int64_t ROWS[][2] = {{1, 1}, {1, 3}, {2, 4}, {1, 9}, {2, 8}, {1, 17}, {2, 20}, {1, 41}};
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = compile_w(a, d, H, N, K, wform);
    uint64_t seed = tu_test_seed() + (uint64_t)K;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuExec *gx = gpu_exec_new(g, &ws, &(GpuOptions){.tune = tu_tune(), .max_batch = 2, .max_seq = 41, .max_ctx = 41, .keep_all = true, .no_blas = true}, d);
    assert_non_null(gx);
    Cmp m = {0};
    TuGpuCmp t = {g, gx, check_node, &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 4, .after_node = tu_take_gpu, .hook_ctx = &t}, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * (size_t)(41 * H * K));
    uint64_t rng = seed;
    for (int r = 0; r < 8; r++) {
        int64_t B = ROWS[r][0], S = ROWS[r][1];
        tu_bf16_rows(xv, B * S * H, K, &rng);
        CpuInput in[1] = {{"x", 4, {B, S, H, K}, xv}};
        m.seen = 0;
        assert_true(gpu_exec_run(gx, in, 1, d));
        assert_true(cpu_exec_run(cx, in, 1, d));
        int dec = decode_form(g, B * S);
        fprintf(stderr, "einsum, %lld heads, N %lld, K %lld, M %lld: rel L2 %.2e, %s\n", (long long)H, (long long)N, (long long)K,
                (long long)(B * S), m.err, dec == 2 ? "the tensor-core decode form" : dec ? "the decode form" : "the tile");
        assert_int_equal(m.seen, 1);
        assert_true(m.err <= 1e-2);
        assert_int_equal(dec, B * S > top ? 0 : B * S > 8 ? 2 : 1);
    }
    free(xv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static void check_shape(int64_t H, int64_t N, int64_t K, int top) { check_shape_w(H, N, K, top, W_WEIGHT); }

static void test_k128(void **state) { (void)state, check_shape(3, 200, 128, 8); }
/* w a value of weights alone (held with the weights: the decode form loads it before its wait), every generated
 * kernel letting the next one launch first (DSCC_PDL_EARLY=1) */
static void test_k128_derived_early(void **state) {
    (void)state;
    setenv("DSCC_PDL_EARLY", "1", 1), setenv("DSCC_EINSUM_PRE", "1", 1);
    check_shape_w(3, 200, 128, 8, W_DERIVED);
    unsetenv("DSCC_PDL_EARLY"), unsetenv("DSCC_EINSUM_PRE");
}
static void test_k640(void **state) { (void)state, check_shape(2, 40, 640, 8); }
/* DSCC_EINSUM_ROWS=40: the tensor-core form past 8 rows (three 16-row tiles, the last ragged), the tile above 40 */
static void test_k128_mma(void **state) {
    (void)state;
    setenv("DSCC_EINSUM_ROWS", "40", 1);
    check_shape(3, 200, 128, 40);
    unsetenv("DSCC_EINSUM_ROWS");
}
static void test_k640_mma(void **state) {
    (void)state;
    setenv("DSCC_EINSUM_ROWS", "40", 1);
    check_shape(2, 40, 640, 40);
    unsetenv("DSCC_EINSUM_ROWS");
}

static void test_env(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = compile(a, d, 2, 64, 128);
    unsetenv("DSCC_EINSUM_ROWS"); /* the default, whatever a failed test before left */
    assert_int_equal(decode_form(g, 1), 1);
    assert_int_equal(decode_form(g, 9), 0);
    setenv("DSCC_EINSUM_ROWS", "0", 1);
    assert_int_equal(decode_form(g, 1), 0);
    setenv("DSCC_EINSUM_ROWS", "16", 1);
    assert_int_equal(decode_form(g, 8), 1);
    assert_int_equal(decode_form(g, 9), 2);
    assert_int_equal(decode_form(g, 17), 0);
    setenv("DSCC_EINSUM_ROWS", "129", 1);
    assert_int_equal(decode_form(g, 1), -1);
    setenv("DSCC_EINSUM_ROWS", "many", 1);
    assert_int_equal(decode_form(g, 1), -1);
    unsetenv("DSCC_EINSUM_ROWS");
    arena_free(a);
}

/* The decode form's module text (NULL: no program, or no decode form) for w in form wform. */
static const char *decode_source(Arena *a, int wform) {
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = compile_w(a, d, 2, 64, 128, wform);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    for (int k = 0; p && k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++)
            if (strstr(p->kernels[k].phases[f].fn, "einsum_heads")) return p->modules[p->kernels[k].module].source;
    return NULL;
}

/* Whether the decode form loads w before its wait (EH_PRE): for a weight and a value of weights alone, not for a
 * value of the step, nor with DSCC_EINSUM_PRE=0; a malformed value stops codegen. DSCC_PDL_EARLY=1: it lets the next
 * kernel launch first (EH_EARLY); a malformed value stops codegen. */
static void test_env_pre(void **state) {
    (void)state;
    Arena *a = arena_new();
    unsetenv("DSCC_EINSUM_PRE"), unsetenv("DSCC_PDL_EARLY");
    const char *s = decode_source(a, W_WEIGHT);
    assert_non_null(s);
    assert_non_null(strstr(s, "#define EH_PRE 0\n")); /* opt-in until timed */
    assert_non_null(strstr(s, "#define EH_EARLY 0\n"));
    setenv("DSCC_EINSUM_PRE", "1", 1);
    s = decode_source(a, W_WEIGHT);
    assert_non_null(strstr(s, "#define EH_PRE 1\n"));
    assert_non_null(strstr(s, "w's first loads before the wait"));
    assert_non_null(strstr(decode_source(a, W_DERIVED), "#define EH_PRE 1\n"));
    assert_non_null(strstr(decode_source(a, W_INPUT), "#define EH_PRE 0\n"));
    setenv("DSCC_EINSUM_PRE", "0", 1);
    assert_non_null(strstr(decode_source(a, W_WEIGHT), "#define EH_PRE 0\n"));
    unsetenv("DSCC_EINSUM_PRE");
    setenv("DSCC_PDL_EARLY", "1", 1);
    assert_non_null(strstr(decode_source(a, W_WEIGHT), "#define EH_EARLY 1\n"));
    unsetenv("DSCC_PDL_EARLY");
    arena_free(a);
}

/* DSCC_EINSUM_ROPE=1: a graph shaped as absorbed MLA's query (q_b's output split into q_nope and q_pe, q_pe roped; the
 * einsum over q_nope; the roped q_pe read after it; a prefill branch through fresh_select reading both as the naive
 * form does), a KV cache so steps after the first have a cached context, and a memory plan. */
#define ROPE_H 3
#define ROPE_D 64 /* q_nope: the einsum's K (the decode form needs K % 64 == 0) */
#define ROPE_R 16 /* q_pe */
#define ROPE_N 64 /* the einsum's outputs a head: concat(y, q_pe) and concat(q_nope, q_pe) both [.., 80] */
#define ROPE_O (ROPE_N + ROPE_R)
static IrGraph *compile_rope(Arena *a, DiagEngine *d) {
    const char *src = arena_printf(a,
                                   "dim B, S, T;\n"
                                   "input qb: bf16[B, S, %d];\n"
                                   "input positions: i32[B, S];\n"
                                   "input kv: bf16[B, S, 1, 8];\n"
                                   "weight w: bf16[%d, %d, %d] = \"w\";\n"
                                   "let cache = kv_cache(kv, name=\"c\");\n"
                                   "let qn, qp = split(reshape(qb, [B, S, %d, %d]), [%d, %d], axis=-1);\n"
                                   "let qr = rope(qp, positions, theta=10000.0, interleave=true);\n"
                                   "let y = einsum(\"bshk,hnk->bshn\", qn, w);\n"
                                   "output o = fresh_select(concat(qn, qr, axis=-1) * 2.0, concat(y, qr, axis=-1));\n"
                                   "output c = slice(cache, axis=-1, start=0, len=8);\n",
                                   ROPE_H * (ROPE_D + ROPE_R), ROPE_H, ROPE_N, ROPE_D, ROPE_H, ROPE_D + ROPE_R, ROPE_D, ROPE_R);
    IrGraph *g = tu_compile_src(a, d, "rope.dsl", src, "shape-infer,fold-constants,dce,cse,dce,fuse,plan-memory{batch=2,seq=9,ctx=16}");
    return g;
}

/* The program's phases that skip rows at a cached step (cmin), and whether the einsum's module ropes (its side job). */
static int rope_gated(Arena *a, const IrGraph *g, bool *side) {
    DiagEngine *d = diag_new(a, NULL);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int n = 0;
    *side = false;
    for (int k = 0; k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++) {
            n += p->kernels[k].phases[f].cmin > 0;
            if (strstr(p->kernels[k].phases[f].fn, "einsum_heads"))
                *side = strstr(p->modules[p->kernels[k].module].source, "_side(a)") && strstr(p->modules[p->kernels[k].module].source, "cosf(");
        }
    return n;
}

/* Both executors of g on the random weights of *seed (which must outlive them: the source reads through it), as
 * run_rope and run_kv step them: batch 2, up to 9 positions a step, 16 cached. */
static void open_pair(const IrGraph *g, DiagEngine *d, const uint64_t *seed, GpuExec **gx, CpuExec **cx) {
    CpuWeightSource ws = cpu_random_weights(seed);
    *gx = gpu_exec_new(g, &ws, &(GpuOptions){.tune = tu_tune(), .max_batch = 2, .max_seq = 9, .max_ctx = 16, .no_blas = true}, d);
    assert_non_null(*gx);
    *cx = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 2}, d);
    assert_non_null(*cx);
}

/* Steps of S positions (a prefill of 3, then decode steps of 1 and 2 at B = 2, and one of 9, above the decode form):
 * output o into out (each step's after the last), the launches of each step into launches. */
static void run_rope(const int *steps, int nsteps, float *out, int *launches) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = compile_rope(a, d);
    uint64_t seed = tu_test_seed();
    GpuExec *gx;
    CpuExec *cx;
    open_pair(g, d, &seed, &gx, &cx);
    const int64_t B = 2, W = ROPE_H * (ROPE_D + ROPE_R);
    uint64_t rng = 7;
    float *qb = malloc(sizeof(float) * (size_t)(B * 9 * W)), pos[2 * 9], *kv = calloc((size_t)(B * 9 * 8), sizeof(float));
    int64_t at = 0, done = 0;
    for (int i = 0; i < nsteps; i++) {
        const int64_t S = steps[i];
        tu_bf16_rows(qb, B * S, W, &rng);
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++) pos[b * S + s] = (float)(at + s);
        CpuInput in[3] = {{"qb", 3, {B, S, W}, qb}, {"positions", 2, {B, S}, pos}, {"kv", 4, {B, S, 1, 8}, kv}};
        assert_true(gpu_exec_run(gx, in, 3, d));
        assert_true(cpu_exec_run(cx, in, 3, d));
        launches[i] = gpu_exec_last_launches(gx);
        int rank, rank2;
        int64_t dims[IR_MAX_RANK], dims2[IR_MAX_RANK];
        const float *go = gpu_exec_output(gx, "o", &rank, dims), *co = cpu_exec_output(cx, "o", &rank2, dims2);
        assert_non_null(go);
        assert_non_null(co);
        const int64_t n = B * S * ROPE_H * ROPE_O;
        const double err = tu_rel_l2(go, co, n);
        fprintf(stderr, "rope in the einsum (DSCC_EINSUM_ROPE=%s): step of %lld at %lld, %d launches, rel L2 %.2e\n",
                getenv("DSCC_EINSUM_ROPE") ? getenv("DSCC_EINSUM_ROPE") : "unset", (long long)S, (long long)at, launches[i], err);
        assert_true(err <= 1e-2);
        memcpy(out + done, go, sizeof(float) * (size_t)n);
        done += n, at += S;
    }
    free(qb);
    free(kv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

/* With DSCC_EINSUM_ROPE=0 nothing is gated; with =1 (and unset: the default) the rope's row group skips the einsum's
 * rows at a cached step, the einsum's decode form ropes, every step's output is bit for bit the run with =0 (and near
 * the CPU's), and a cached step of at most 8 rows launches one kernel fewer (a prefill and a step of 9 the same). */
static void test_rope(void **state) {
    (void)state;
    static const int steps[] = {3, 1, 2, 9, 1};
    enum { NS = 5 };
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    bool side;
    setenv("DSCC_EINSUM_ROPE", "0", 1);
    assert_int_equal(rope_gated(a, compile_rope(a, d), &side), 0);
    assert_false(side);
    setenv("DSCC_EINSUM_ROPE", "1", 1);
    const int gated = rope_gated(a, compile_rope(a, d), &side);
    assert_true(gated > 0);
    assert_true(side);
    unsetenv("DSCC_EINSUM_ROPE"); /* the default: as =1 */
    assert_int_equal(rope_gated(a, compile_rope(a, d), &side), gated);
    assert_true(side);
    setenv("DSCC_EINSUM_ROPE", "0", 1);
    const int64_t n = 2 * 16 * ROPE_H * ROPE_O;
    float *off = malloc(sizeof(float) * (size_t)n), *on = malloc(sizeof(float) * (size_t)n);
    int l_off[NS], l_on[NS];
    run_rope(steps, NS, off, l_off);
    setenv("DSCC_EINSUM_ROPE", "1", 1);
    run_rope(steps, NS, on, l_on);
    unsetenv("DSCC_EINSUM_ROPE");
    assert_memory_equal(off, on, sizeof(float) * (size_t)n);
    for (int i = 0; i < NS; i++) assert_int_equal(l_on[i], l_off[i] - (i > 0 && steps[i] <= 8));
    free(off);
    free(on);
    arena_free(a);
}

/* DSCC_EINSUM_KV=1: a graph shaped as absorbed MLA's latent row (kv_a's output split into the 512-wide latent, normed,
 * and k_pe, roped; their concat appended to a KV cache: V3's row group, its norm in the 4-CTA cluster form at a
 * decode step's rows) launched right before an einsum that reads none of it, the cache read after the einsum. */
#define KV_L 512 /* the latent: V3's kv_lora_rank, so the row kernel's form is V3's */
#define KV_R 16  /* k_pe */
#define KV_W (8 + KV_L + KV_R) /* kv_a's output: 8 columns before the latent, as q_a's before V3's */
static IrGraph *compile_kv(Arena *a, DiagEngine *d, bool plan) {
    const char *src = arena_printf(a,
                                   "dim B, S, T;\n"
                                   "input kva: bf16[B, S, %d];\n"
                                   "input qn: bf16[B, S, %d, %d];\n"
                                   "input positions: i32[B, S];\n"
                                   "weight w: bf16[%d, %d, %d] = \"w\";\n"
                                   "weight kvn: bf16[%d] = \"kvn\";\n"
                                   "let lat, kpe = split(slice(kva, axis=-1, start=8, len=%d), [%d, %d], axis=-1);\n"
                                   "let kr = rope(reshape(kpe, [B, S, 1, %d]), positions, theta=10000.0, interleave=true);\n"
                                   "let ln = rmsnorm(lat, kvn, eps=0.000001);\n"
                                   "let cache = kv_cache(concat(reshape(ln, [B, S, 1, %d]), kr, axis=-1), name=\"c\");\n"
                                   "output o = einsum(\"bshk,hnk->bshn\", qn, w);\n"
                                   "output c = slice(cache, axis=-1, start=0, len=%d);\n",
                                   KV_W, ROPE_H, ROPE_D, ROPE_H, ROPE_N, ROPE_D, KV_L, KV_L + KV_R, KV_L, KV_R, KV_R, KV_L, KV_L + KV_R);
    IrGraph *g = fe_compile_string(a, d, "kv.dsl", src, strlen(src), &(FeOptions){NULL, NULL, 0});
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    const char *pl = plan ? "shape-infer,fold-constants,dce,cse,dce,fuse,plan-memory{batch=2,seq=9,ctx=16}" : "shape-infer,fold-constants,dce,cse,dce,fuse";
    assert_true(pass_pipeline_parse(a, d, pl, &pp) && pass_pipeline_run(&pp, g, &ro, d));
    return g;
}

/* Steps of S positions at batch B (at most 2): outputs o (the einsum) and c (the whole cache, as of the step) into out,
 * each step's after the last; each step's launches into launches. */
static void run_kv(int64_t B, const int *steps, int nsteps, float *out, int *launches) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = compile_kv(a, d, true);
    uint64_t seed = tu_test_seed();
    GpuExec *gx;
    CpuExec *cx;
    open_pair(g, d, &seed, &gx, &cx);
    uint64_t rng = 11;
    float *kva = malloc(sizeof(float) * (size_t)(B * 9 * KV_W)), *qn = malloc(sizeof(float) * (size_t)(B * 9 * ROPE_H * ROPE_D)), pos[2 * 9];
    int64_t at = 0, done = 0;
    for (int i = 0; i < nsteps; i++) {
        const int64_t S = steps[i];
        tu_bf16_rows(kva, B * S, KV_W, &rng);
        for (int64_t r = 0; r < B * S; r++) /* rows of unlike scales: a norm that used another row's sum fails */
            for (int64_t k = 0; k < KV_W; k++) kva[r * KV_W + k] *= (float)(1 + 3 * (r % 4));
        tu_bf16_rows(qn, B * S * ROPE_H, ROPE_D, &rng);
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++) pos[b * S + s] = (float)(at + s);
        CpuInput in[3] = {{"kva", 3, {B, S, KV_W}, kva}, {"qn", 4, {B, S, ROPE_H, ROPE_D}, qn}, {"positions", 2, {B, S}, pos}};
        assert_true(gpu_exec_run(gx, in, 3, d));
        assert_true(cpu_exec_run(cx, in, 3, d));
        launches[i] = gpu_exec_last_launches(gx);
        static const char *const names[2] = {"o", "c"};
        for (int k = 0; k < 2; k++) {
            int rank, rank2;
            int64_t dims[IR_MAX_RANK], dims2[IR_MAX_RANK];
            const float *go = gpu_exec_output(gx, names[k], &rank, dims), *co = cpu_exec_output(cx, names[k], &rank2, dims2);
            assert_non_null(go);
            assert_non_null(co);
            int64_t n = 1;
            for (int r = 0; r < rank; r++) n *= dims[r];
            const double err = tu_rel_l2(go, co, n);
            fprintf(stderr, "latent row in the einsum (DSCC_EINSUM_KV=%s): batch %lld, step of %lld at %lld, %d launches, %s rel L2 %.2e\n",
                    getenv("DSCC_EINSUM_KV") ? getenv("DSCC_EINSUM_KV") : "unset", (long long)B, (long long)S, (long long)at, launches[i], names[k],
                    err);
            assert_true(err <= 1e-2);
            memcpy(out + done, go, sizeof(float) * (size_t)n);
            done += n;
        }
        at += S;
    }
    free(kva);
    free(qn);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

/* The program's phases gated at a cached step, whether the einsum's module does the latent row (its side job), and
 * the diagnostics of generating it (*msg, which the caller frees); NULL program: the generation failed. */
static CgProgram *kv_program(Arena *a, bool plan, int *gated, bool *side, char **msg) {
    size_t len = 0;
    FILE *f = open_memstream(msg, &len);
    assert_non_null(f);
    DiagEngine *d = diag_new(a, f);
    CgProgram *p = cg_generate(a, d, compile_kv(a, d, plan), &(CgGenOptions){.tune = tu_tune()});
    fclose(f);
    *gated = 0, *side = false;
    for (int k = 0; p && k < p->nkernels; k++)
        for (int f2 = 0; f2 < p->kernels[k].nphases; f2++) {
            *gated += p->kernels[k].phases[f2].cmin > 0;
            if (strstr(p->kernels[k].phases[f2].fn, "einsum_heads")) *side = strstr(p->modules[p->kernels[k].module].source, "_kv_side(a)") != NULL;
        }
    return p;
}

/* Without the switch nothing is gated; with it the latent's row group skips the einsum's rows at a cached step and the
 * einsum's decode form does them; every step's einsum output and whole cache are bit for bit the run without it (and
 * near the CPU's), a cached step of at most 8 rows launches one kernel fewer (a prefill and a step of 18 rows the
 * same), at batch 2 (steps of 3, 1, 2, 9, 1) and at batch 1 (3, 1, 2). (A malformed value: test_tune's
 * test_bool_check.) */
static void test_kv(void **state) {
    (void)state;
    static const int steps[] = {3, 1, 2, 9, 1};
    enum { NS = 5 };
    Arena *a = arena_new();
    int gated;
    bool side;
    char *msg = NULL;
    unsetenv("DSCC_EINSUM_KV");
    assert_non_null(kv_program(a, true, &gated, &side, &msg));
    assert_int_equal(gated, 0);
    assert_false(side);
    free(msg);
    setenv("DSCC_EINSUM_KV", "1", 1);
    assert_non_null(kv_program(a, true, &gated, &side, &msg));
    assert_true(gated > 0);
    assert_true(side);
    free(msg);
    unsetenv("DSCC_EINSUM_KV");
    const int64_t n = (int64_t)NS * 2 * (9 * ROPE_H * ROPE_N + 16 * (KV_L + KV_R));
    float *off = calloc((size_t)n, sizeof(float)), *on = calloc((size_t)n, sizeof(float));
    int l_off[NS], l_on[NS];
    for (int64_t B = 2; B >= 1; B--) { /* batch 2: steps of 2 and 4 rows folded, 18 not; batch 1: one row, as V3's step */
        const int ns = B == 2 ? NS : 3;
        memset(off, 0, sizeof(float) * (size_t)n), memset(on, 0, sizeof(float) * (size_t)n);
        run_kv(B, steps, ns, off, l_off);
        setenv("DSCC_EINSUM_KV", "1", 1);
        run_kv(B, steps, ns, on, l_on);
        unsetenv("DSCC_EINSUM_KV");
        assert_memory_equal(off, on, sizeof(float) * (size_t)n);
        for (int i = 0; i < ns; i++) assert_int_equal(l_on[i], l_off[i] - (i > 0 && B * steps[i] <= 8));
    }
    free(off);
    free(on);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest codegen[] = {cmocka_unit_test(test_env_pre)}; /* no device needed */
    int failed = cmocka_run_group_tests_name("codegen", codegen, NULL, NULL);
    if (failed || !tu_hopper()) return failed ? failed : 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_k128), cmocka_unit_test(test_k640), cmocka_unit_test(test_k128_mma), cmocka_unit_test(test_k640_mma),
                                       cmocka_unit_test(test_env), cmocka_unit_test(test_k128_derived_early),
                                       cmocka_unit_test(test_rope), cmocka_unit_test(test_kv)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
