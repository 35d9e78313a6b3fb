/* test_gpu_head.c — what a GEMM writes and reads without a kernel between,
 * against the CPU executor: the LM head's f32 logits written by its BF16
 * GEMM (no cast kernel after it), and the FP8 linears' activation scales
 * read K-block-major, the layout the quantize stores and cuBLASLt takes
 * (no transpose kernel before it). Exits 77 (skipped) without a GPU;
 * emu.test_gpu_head runs it on the emulated device with the generated
 * GEMMs, emu.test_gpu_head.cublaslt (DSCC_EMU_CUBLASLT=1) with the
 * stand-in cuBLASLt (tests/emu/emu_cublaslt.c) taking every GEMM it can:
 * the head's BF16 GEMM at every M (D in f32), the FP8 one at M = 100 (its
 * rows a multiple of 4), reading the scales where the quantize put them.
 *
 * Head: `cast(linear(x, w), f32)` at M = 1, 3, 17 (the BF16 skinny-M form:
 * gemm_skinny2.cuh at M <= 8, gemm_skinny.cuh above, writing f32; with
 * DSCC_SKINNY_BF16=0 the tile, K split between blocks at M = 1) and 100
 * (two row tiles). The program must hold one kernel for both ops,
 * the linear unstored; the logits must match the CPU's within 4e-3 rel L2
 * (bf16 storage: the tile's bf16 products and f32 sums against the CPU's
 * f32 ones), and within 1e-5 with f32 storage (only the order of the f32
 * sums differs).
 * FP8: `silu(linear(x, w))` through fp8-quant at M = 1, 3, 17, 100, with and
 * without the skinny form (DSCC_GEMM_SKINNY=0: the tile, split-K at one row
 * tile): the scales the GPU stored, copied out through the layout, equal
 * the CPU's (1e-6), and the fp8_linear on them is within 4e-3, as in
 * test_gpu_skinny. The CPU continues from each value the GPU stored. */
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
    IrOp op;       /* the op whose error is measured */
    double err;    /* its rel L2 */
    double scales; /* the act_scales' rel L2 (-1: none compared) */
    int seen;
} Cmp;

/* tu_take_gpu's check: the errors of the measured op and of the act_scales
 * against the GPU's stored values. */
static void check_node(void *ctx, const IrNode *n, const float *gv, const float *c, int64_t nc) {
    Cmp *m = ctx;
    if (n->op == m->op) m->err = tu_rel_l2(gv, c, nc), m->seen++;
    if (n->op == IR_OP_ACT_SCALE) {
        double e = tu_rel_l2(gv, c, nc);
        if (e > m->scales) m->scales = e;
    }
}

/* The program's layout facts: the head's cast is written by its linear's
 * kernel (the linear not stored), every act_scale is stored K-block-major;
 * an FP8 linear has its skinny form only when DSCC_GEMM_SKINNY allows it,
 * the BF16 head (bf16 storage) only when DSCC_SKINNY_BF16 does too. */
static void check_program(const IrGraph *g, bool f32, bool fp8) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgGenOptions o = {.tune = tu_tune(), .f32_storage = f32};
    CgProgram *p = cg_generate(a, d, g, &o);
    assert_non_null(p);
    int casts = 0, scales = 0;
    bool skinny = false;
    const char *env = getenv("DSCC_GEMM_SKINNY");
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        for (int f = 0; f < ck->nphases; f++) skinny |= strstr(ck->phases[f].fn, "skinny") != NULL;
        for (int j = 0; j < ck->nnodes; j++) {
            const IrNode *n = g->nodes[ck->nodes[j]];
            if (n->op == IR_OP_ACT_SCALE) assert_true(p->kblock[n->id]), scales++;
            if (n->op != IR_OP_CAST) continue;
            bool with = false; /* its linear in the same kernel */
            for (int i = 0; i < ck->nnodes; i++) with |= ck->nodes[i] == n->ops[0]->id;
            assert_true(with && p->stored[n->id] && !p->stored[n->ops[0]->id]);
            casts++;
        }
    }
    assert_int_equal(casts, fp8 ? 0 : 1);
    assert_true(fp8 ? scales == 1 : scales == 0);
    const char *eb = getenv("DSCC_SKINNY_BF16");
    bool bf16_skinny = !f32 && !(eb && strcmp(eb, "0") == 0);
    assert_int_equal(skinny, (fp8 || bf16_skinny) && !(env && strcmp(env, "0") == 0));
    arena_free(a);
}

/* The graph `src` (input x: bf16[B, S, K]) through `pipe`, at each (B, S) of rows, on both executors. */
static void check_rows(const char *src, const char *pipe, int64_t K, bool f32, IrOp op, double bound, const int64_t (*rows)[2], int nrows) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = tu_compile_src(a, d, "head.dsl", src, pipe);
    check_program(g, f32, op == IR_OP_FP8_LINEAR);
    uint64_t seed = tu_test_seed() + (uint64_t)K;
    CpuWeightSource ws = cpu_random_weights(&seed);
    const char *eb = getenv("DSCC_EMU_CUBLASLT");
    bool blas = eb && strcmp(eb, "1") == 0; /* the stand-in cuBLASLt takes what it can */
    GpuOptions go = {.tune = tu_tune(), .max_batch = 2, .max_seq = 64, .max_ctx = 64, .keep_all = true, .f32_storage = f32, .no_blas = !blas};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    if (blas && !f32) assert_non_null(gpu_exec_blas(gx)); /* f32 storage: no GEMM has a library form */
    Cmp m = {.op = op};
    TuGpuCmp t = {g, gx, check_node, &m};
    CpuOptions co = {.threads = 4, .after_node = tu_take_gpu, .hook_ctx = &t};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * (size_t)(128 * K));
    uint64_t rng = seed;
    for (int r = 0; r < nrows; r++) {
        int64_t B = rows[r][0], S = rows[r][1];
        tu_bf16_rows(xv, B * S, K, &rng); /* fresh values each step */
        CpuInput in[1] = {{"x", 3, {B, S, K}, xv}};
        m.seen = 0, m.scales = -1;
        assert_true(gpu_exec_run(gx, in, 1, d));
        assert_true(cpu_exec_run(cx, in, 1, d));
        /* the library's calls: the BF16 head at any M, the FP8 linear at M % 4 == 0 (K % 512 == 0 here); none with f32 storage */
        int lib = gpu_exec_last_lib_calls(gx), want = !blas || f32 ? 0 : op == IR_OP_CAST || B * S % 4 == 0;
        fprintf(stderr, "%s, K %lld, M %lld, %s storage: rel L2 %.2e, act_scale %.2e, %d cuBLASLt call%s\n", ir_op_name(op), (long long)K,
                (long long)(B * S), f32 ? "f32" : "bf16", m.err, m.scales, lib, lib == 1 ? "" : "s");
        assert_int_equal(lib, want);
        assert_int_equal(m.seen, 1);
        assert_true(m.err <= bound);
        if (op == IR_OP_FP8_LINEAR) assert_true(m.scales >= 0 && m.scales <= 1e-6);
    }
    free(xv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static const int64_t ROWS[][2] = {{1, 1}, {1, 3}, {1, 17}, {2, 50}};

/* the LM head: 384 outputs (3 tiles), K = 512 (8 steps of 64: split between blocks at one row tile) */
static void check_head(bool f32) {
    static const char src[] = "dim B, S;\ninput x: bf16[B, S, 512];\nweight w: bf16[384, 512] = \"w\";\n"
                              "output logits = cast(linear(x, w), f32);\n";
    check_rows(src, "shape-infer,fold-constants,dce,cse,fuse", 512, f32, IR_OP_CAST, f32 ? 1e-5 : 4e-3, ROWS, 4);
}

static void test_head(void **state) { (void)state, check_head(false); }
static void test_head_tile(void **state) {
    (void)state;
    setenv("DSCC_SKINNY_BF16", "0", 1);
    check_head(false);
    unsetenv("DSCC_SKINNY_BF16");
}
static void test_head_f32(void **state) { (void)state, check_head(true); }

/* an FP8 linear: K = 1024 (8 K blocks: cuBLASLt's whole groups of 4), N = 200 (a ragged last tile), rows of the skinny
 * form, the tile and its split-K form */
static void check_fp8(bool skinny) {
    static const char src[] = "dim B, S;\ninput x: bf16[B, S, 1024];\nweight w: bf16[200, 1024] = \"w\";\noutput y = silu(linear(x, w));\n";
    if (!skinny) setenv("DSCC_GEMM_SKINNY", "0", 1);
    check_rows(src, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse", 1024, false, IR_OP_FP8_LINEAR, 4e-3, ROWS, 4);
    unsetenv("DSCC_GEMM_SKINNY");
}

static void test_fp8_skinny(void **state) { (void)state, check_fp8(true); }
static void test_fp8_tile(void **state) { (void)state, check_fp8(false); }

int main(void) {
    if (!tu_hopper()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_head),       cmocka_unit_test(test_head_tile), cmocka_unit_test(test_head_f32),
                                       cmocka_unit_test(test_fp8_skinny), cmocka_unit_test(test_fp8_tile)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
