/* test_gpu_gemm_tma.c — the large-M FP8 GEMM (codegen/kernels/gemm_tma.cuh:
 * TMA loads into an mbarrier ring, a producer warp, two wgmma consumer
 * warpgroups, a persistent grid) against the CPU executor's FP8 GEMM on the
 * same E4M3 codes and block scales. Exits 77 (skipped) without a Hopper GPU;
 * emu.test_gpu_gemm_tma runs it on the emulated device, whose TMA applies
 * the 128-byte swizzle and whose wgmma reads its operands through the
 * descriptors' layout field.
 *
 * Both forms of the kernel (GT_BN 256, the default 128 x 256 tile; GT_BN
 * 128, DSCC_TMA_V2=0's 128 x 128), shapes kept small enough for the
 * emulator, each covering a ragged edge: M = 100 (one partial row tile) x
 * N = 2112 (a half column tile) x K = 256; M = 300 (a ragged third row
 * tile) x N = 256 x K = 592 (5 K blocks, the last 80 wide: no multiple of
 * the ring's stages, zeros past K from the maps' bounds); M = 64 x N =
 * 7168 x K = 128 (28 column tiles); K = 2048 (16 K blocks: the ring
 * wraps); N = 130 (odd: the second half 2 columns wide, stored one by one)
 * and N = 640 (a last tile without its second half). The 128 x 256 form
 * in clusters of 2 CTAs (GT_CLUSTER 2, w's boxes multicast) at M = 300
 * (the second cluster's rank 1 has no rows) x N = 640, at K = 1024 and at
 * N = 2112. Bound, rel L2 of y: 4e-3 (y is stored as bf16, 2^-9; FP8
 * products are exact, only the f32 sums' order differs).
 * The same kernel with wgmma descriptors in the 64-byte swizzle (the maps
 * stay in the 128-byte one), with the weight scales left out, or (128 x
 * 256) with the second half's weight scale taken from the first half's
 * block, must miss the bound by far: the check can fail.
 *
 * In the runtime: `silu(linear(x, w))` through fp8-quant (act_scale ->
 * quantize -> fp8_linear as in the model) on both executors, the CPU taking
 * each value the GPU stored, at M = 300 (1 x 300 and 2 x 150: the x map
 * spans the buffer's 600 rows, a step's M fewer) where the rule runs the
 * TMA kernel, and at M = 200 where it does not; with DSCC_GEMM_TMA=0 it
 * never does; DSCC_TMA_V2=0 and DSCC_TMA_CLUSTER=1 (at codegen) run the
 * other forms there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

typedef unsigned long long u64;
typedef struct { /* the kernel's Args (gemm_tma.cuh compiled alone) */
    u64 t[64];
    long long sym[8];
    long long cap, len;
    u64 err;
    long long tag;
} Args;

static RtCuda *gpu;

/* gemm_tma.cuh's GT_SMEM at its default stages: 6 of 32 KB (GT_BN 128), 4 of 48 KB (GT_BN 256) */
#define GT_SMEM_128 (6 * 32768 + 16 * 6 + 1024)
#define GT_SMEM_256 (4 * 49152 + 16 * 4 + 1024)

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void) { /* [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((int64_t)(rng >> 33) % 20001 - 10000) / 10000.0f;
}

/* Rel L2 of the kernel's y against cpu_fp8_gemm at M x N x K, the kernel
 * built with output tiles of bn columns (GT_BN), clusters of `cl` CTAs
 * (GT_CLUSTER) and the extra definitions defs (NULL: none). */
static double run_shape_cl(int64_t M, int64_t N, int64_t K, int bn, int cl, const CgDefine *defs, int ndefs) {
    Arena *a = arena_new();
    CgDefine all[8] = {{"GT_BN", bn == 128 ? "128" : "256"}, {"GT_CLUSTER", cl == 2 ? "2" : "1"}};
    assert_true(ndefs < 7);
    for (int i = 0; i < ndefs; i++) all[i + 2] = defs[i];

    DiagEngine *d = diag_new(a, stderr);
    const int64_t nkb = (K + 127) / 128, nnb = (N + 127) / 128;
    float *x = malloc(sizeof(float) * (size_t)(M * K)), *w = malloc(sizeof(float) * (size_t)(N * K));
    float *xq = malloc(sizeof(float) * (size_t)(M * K)), *wq = malloc(sizeof(float) * (size_t)(N * K));
    float *xs = malloc(sizeof(float) * (size_t)(M * nkb)), *ws = malloc(sizeof(float) * (size_t)(nnb * nkb));
    float *y = malloc(sizeof(float) * (size_t)(M * N));
    uint8_t *xb = malloc((size_t)(M * K)), *wb = malloc((size_t)(N * K));
    uint16_t *gy = malloc(2 * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++) x[i] = urand() * (i % 61 == 0 ? 30.0f : 1.0f); /* outliers: tiles of other scales */
    for (int64_t i = 0; i < N * K; i++) w[i] = urand() * 0.05f * (float)(1 + (i / K / 128 + i % K / 128) % 5); /* blocks of other scales */
    cpu_fp8_act_quant(x, M, K, 128, xq, xs);
    cpu_fp8_weight_quant(w, N, K, wq, ws);
    cpu_fp8_gemm(xq, xs, wq, ws, y, M, K, N);
    for (int64_t i = 0; i < M * K; i++) xb[i] = cpu_fp8_e4m3_encode(xq[i]);
    for (int64_t i = 0; i < N * K; i++) wb[i] = cpu_fp8_e4m3_encode(wq[i]);

    CgSource src = {"gemm_tma_test", cg_kernel_instance(a, "gemm_tma", "g0_gemm_tma", all, ndefs + 2), {0}};
    assert_non_null(src.source);
    CgBinary bin;
    CgOptions o = {.cache_dir = ""};
    assert_int_equal(cg_compile(a, d, &src, 1, &o, &bin), 0);
    RtKernel *k = rt_cuda_kernel(gpu, d, bin.data, "g0_gemm_tma");
    assert_non_null(k);
    RtDevPtr dx, dxs, dw, dws, dy, dmaps;
    assert_true(rt_cuda_alloc(gpu, d, (size_t)(M * K), &dx) && rt_cuda_alloc(gpu, d, 4 * (size_t)(M * nkb), &dxs) &&
                rt_cuda_alloc(gpu, d, (size_t)(N * K), &dw) && rt_cuda_alloc(gpu, d, 4 * (size_t)(nnb * nkb), &dws) &&
                rt_cuda_alloc(gpu, d, 2 * (size_t)(M * N), &dy) && rt_cuda_alloc(gpu, d, 256, &dmaps));
    assert_true(rt_cuda_upload(gpu, d, dx, xb, (size_t)(M * K)) && rt_cuda_upload(gpu, d, dxs, xs, 4 * (size_t)(M * nkb)) &&
                rt_cuda_upload(gpu, d, dw, wb, (size_t)(N * K)) && rt_cuda_upload(gpu, d, dws, ws, 4 * (size_t)(nnb * nkb)) &&
                rt_cuda_memset0(gpu, d, dy, 2 * (size_t)(M * N)));
    _Alignas(64) unsigned char maps[256];
    assert_true(rt_cuda_tensor_map_2d(gpu, d, maps, dx, M, K, K, 128, 128) && rt_cuda_tensor_map_2d(gpu, d, maps + 128, dw, N, K, K, 128, 128));
    assert_true(rt_cuda_upload(gpu, d, dmaps, maps, sizeof maps));
    Args args = {0};
    args.t[0] = dx, args.t[1] = dxs, args.t[2] = dw, args.t[3] = dws, args.t[4] = dy, args.t[5] = dmaps;
    args.sym[0] = M, args.sym[1] = N, args.sym[2] = K;
    void *params[] = {&args};
    /* units of cl row tiles of a column tile, cl CTAs each, at most the SMs (a multiple of cl) */
    int64_t units = (M + 128 * cl - 1) / (128 * cl) * ((N + bn - 1) / bn), grid = units * cl < rt_cuda_sms(gpu) ? units * cl : rt_cuda_sms(gpu) / cl * cl;
    assert_true(rt_cuda_launch_async(gpu, d, k, (unsigned)grid, 384, bn == 128 ? GT_SMEM_128 : GT_SMEM_256, params));
    assert_true(rt_cuda_sync(gpu, d));
    assert_true(rt_cuda_download(gpu, d, gy, dy, 2 * (size_t)(M * N)));
    double num = 0, den = 0;
    for (int64_t i = 0; i < M * N; i++) {
        double g = from_bf16(gy[i]), c = y[i];
        num += (g - c) * (g - c), den += c * c;
    }
    rt_cuda_free(gpu, dx), rt_cuda_free(gpu, dxs), rt_cuda_free(gpu, dw), rt_cuda_free(gpu, dws), rt_cuda_free(gpu, dy), rt_cuda_free(gpu, dmaps);
    cg_binary_free(&bin);
    free(x), free(w), free(xq), free(wq), free(xs), free(ws), free(y), free(xb), free(wb), free(gy);
    arena_free(a);
    assert_true(den > 0);
    double err = sqrt(num / den);
    print_message("GT_BN %d, GT_CLUSTER %d, M %lld N %lld K %lld: rel L2 %.3g\n", bn, cl, (long long)M, (long long)N, (long long)K, err);
    return err;
}

static double run_shape(int64_t M, int64_t N, int64_t K, int bn, const CgDefine *defs, int ndefs) {
    return run_shape_cl(M, N, K, bn, 1, defs, ndefs);
}

/* the 128 x 256 tile (the default form) */
static void test_partial_tile(void **state) { (void)state, assert_true(run_shape(100, 2112, 256, 256, NULL, 0) < 4e-3); }
static void test_ragged_k(void **state) { (void)state, assert_true(run_shape(300, 256, 592, 256, NULL, 0) < 4e-3); }
static void test_wide_n(void **state) { (void)state, assert_true(run_shape(64, 7168, 128, 256, NULL, 0) < 4e-3); }
static void test_long_k(void **state) { (void)state, assert_true(run_shape(100, 256, 2048, 256, NULL, 0) < 4e-3); }
/* N = 130 odd (both halves of a tile, the second 2 columns wide, stored one by one); N = 640 (2.5 column tiles) */
static void test_odd_n(void **state) { (void)state, assert_true(run_shape(70, 130, 384, 256, NULL, 0) < 4e-3); }
static void test_half_tile(void **state) { (void)state, assert_true(run_shape(200, 640, 256, 256, NULL, 0) < 4e-3); }

/* clusters of 2 CTAs, w's boxes multicast: M = 300 (3 row tiles: the second cluster's rank 1
 * has no rows), N = 640 (the last column tile's second half past N: rank 1 loads nothing);
 * a long K (the ring wraps, both CTAs' releases gate each stage); N = 2112 across units */
static void test_cluster_ragged(void **state) { (void)state, assert_true(run_shape_cl(300, 640, 592, 256, 2, NULL, 0) < 4e-3); }
static void test_cluster_long_k(void **state) { (void)state, assert_true(run_shape_cl(256, 256, 1024, 256, 2, NULL, 0) < 4e-3); }
static void test_cluster_partial(void **state) { (void)state, assert_true(run_shape_cl(100, 2112, 256, 256, 2, NULL, 0) < 4e-3); }

/* the 128 x 128 tile (DSCC_TMA_V2=0's form) */
static void test_narrow_partial_tile(void **state) { (void)state, assert_true(run_shape(100, 2112, 256, 128, NULL, 0) < 4e-3); }
static void test_narrow_ragged_k(void **state) { (void)state, assert_true(run_shape(300, 256, 592, 128, NULL, 0) < 4e-3); }
static void test_narrow_long_k(void **state) { (void)state, assert_true(run_shape(100, 128, 2048, 128, NULL, 0) < 4e-3); }

/* descriptors in the 64-byte swizzle over bytes the TMA stored in the 128-byte one */
static void test_wrong_swizzle_fails(void **state) {
    (void)state;
    const CgDefine defs[] = {{"GT_DESC_SWZ", "2"}};
    assert_true(run_shape(100, 256, 592, 256, defs, 1) > 0.1);
    assert_true(run_shape(100, 256, 592, 128, defs, 1) > 0.1);
}

/* the weight blocks' scales left out of the promotion */
static void test_wrong_scale_fails(void **state) {
    (void)state;
    const CgDefine defs[] = {{"GT_WS(i)", "1.0f"}};
    assert_true(run_shape(100, 256, 592, 256, defs, 1) > 0.1);
    assert_true(run_shape(100, 256, 592, 128, defs, 1) > 0.1);
}

/* the second half's weight scale taken from the first half's block: only columns 128..255 go wrong */
static void test_wrong_half_scale_fails(void **state) {
    (void)state;
    const CgDefine defs[] = {{"GT_WS(i)", "(((const float *)a.t[3])[(i) % ((GT_K + 127) / 128) + (i) / ((GT_K + 127) / 128) / 2 * 2 * ((GT_K + 127) / 128)])"}};
    assert_true(run_shape(100, 256, 592, 256, defs, 1) > 0.1);
}

/* tu_take_gpu's check: the fp8_linear's error (into the double at ctx) against the GPU's stored value. */
static void check_node(void *ctx, const IrNode *n, const float *gv, const float *c, int64_t nc) {
    if (n->op == IR_OP_FP8_LINEAR) *(double *)ctx = tu_rel_l2(gv, c, nc);
}

/* y = silu(linear(x, w)), w [256, 640], at each (B, S, whether the TMA kernel must run) on both executors. */
static void check_runtime(const int64_t (*rows)[3], int nrows) {
    const int64_t N = 256, K = 640;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char *src = arena_printf(a, "dim B, S;\ninput x: bf16[B, S, %lld];\nweight w: bf16[%lld, %lld] = \"w\";\noutput y = silu(linear(x, w));\n",
                             (long long)K, (long long)N, (long long)K);
    IrGraph *g = tu_compile_src(a, d, "tma.dsl", src, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,fuse");
    uint64_t seed = 17;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = 2, .max_seq = 300, .max_ctx = 300, .keep_all = true, .no_blas = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    double err = -1;
    TuGpuCmp t = {g, gx, check_node, &err};
    CpuOptions co = {.threads = 4, .after_node = tu_take_gpu, .hook_ctx = &t};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    float *xv = malloc(sizeof(float) * (size_t)(600 * K));
    for (int r = 0; r < nrows; r++) {
        int64_t B = rows[r][0], S = rows[r][1];
        for (int64_t i = 0; i < B * S * K; i++) xv[i] = rt_bf16_decode(rt_bf16_encode(urand() * (i / K % 7 == 3 ? 40.0f : 1.0f)));
        CpuInput in[1] = {{"x", 3, {B, S, K}, xv}};
        err = -1;
        assert_true(gpu_exec_run(gx, in, 1, d));
        assert_true(cpu_exec_run(cx, in, 1, d));
        print_message("runtime, M %lld (%lld x %lld): TMA kernel runs %d, fp8_linear rel L2 %.2e\n", (long long)(B * S), (long long)B,
                      (long long)S, gpu_exec_last_tma_calls(gx), err);
        assert_int_equal(gpu_exec_last_tma_calls(gx), (int)rows[r][2]);
        assert_true(err >= 0 && err <= 4e-3);
    }
    free(xv);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
    arena_free(a);
}

static void test_in_the_runtime(void **state) {
    (void)state;
    unsetenv("DSCC_GEMM_TMA");
    check_runtime((const int64_t[][3]){{1, 300, 1}, {2, 150, 1}, {1, 200, 0}}, 3);
}

static void test_runtime_switch_off(void **state) {
    (void)state;
    setenv("DSCC_GEMM_TMA", "0", 1);
    check_runtime((const int64_t[][3]){{1, 300, 0}}, 1);
    unsetenv("DSCC_GEMM_TMA");
}

/* DSCC_TMA_V2=0 at codegen: the 128 x 128 form in the runtime */
static void test_runtime_narrow(void **state) {
    (void)state;
    setenv("DSCC_TMA_V2", "0", 1);
    check_runtime((const int64_t[][3]){{1, 300, 1}}, 1);
    unsetenv("DSCC_TMA_V2");
}

/* DSCC_TMA_CLUSTER=1 at codegen: clusters of 2 CTAs in the runtime (M = 300: 3 row tiles, 2 clusters) */
static void test_runtime_cluster(void **state) {
    (void)state;
    setenv("DSCC_TMA_CLUSTER", "1", 1);
    check_runtime((const int64_t[][3]){{1, 300, 1}}, 1);
    unsetenv("DSCC_TMA_CLUSTER");
}

int main(void) {
    if (!tu_hopper()) return 77;
    Arena *a = arena_new();
    gpu = rt_cuda_open(diag_new(a, stderr), 0);
    if (!gpu || !rt_cuda_has_tensor_maps(gpu)) {
        printf("skipped: the CUDA driver has no tensor maps\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_partial_tile),        cmocka_unit_test(test_ragged_k),
                                       cmocka_unit_test(test_wide_n),              cmocka_unit_test(test_long_k),
                                       cmocka_unit_test(test_odd_n),               cmocka_unit_test(test_half_tile),
                                       cmocka_unit_test(test_cluster_ragged),      cmocka_unit_test(test_cluster_long_k),
                                       cmocka_unit_test(test_cluster_partial),
                                       cmocka_unit_test(test_narrow_partial_tile), cmocka_unit_test(test_narrow_ragged_k),
                                       cmocka_unit_test(test_narrow_long_k),       cmocka_unit_test(test_wrong_swizzle_fails),
                                       cmocka_unit_test(test_wrong_scale_fails),   cmocka_unit_test(test_wrong_half_scale_fails),
                                       cmocka_unit_test(test_in_the_runtime),      cmocka_unit_test(test_runtime_switch_off),
                                       cmocka_unit_test(test_runtime_narrow),      cmocka_unit_test(test_runtime_cluster)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_cuda_close(gpu);
    arena_free(a);
    return rc;
}
