/* test_gpu_mla.c — MLA's wgmma decode attention (codegen/kernels/
 * mla_decode.cuh and its combine) against the CPU executor: DeepSeek-V3's
 * absorbed form, q = concat(q_nope [.., 512], q_pe [.., 64]) against a bf16
 * latent cache of rows of 576 whose first 512 columns are v, causal, over
 * a sequence of steps of 1 to 16 positions (the kernel's steps) growing the
 * context through lengths that are no multiple of 64 (1, 3, 63, 65, 200,
 * 201), with several batch rows, one 64-row tile per batch row and two, a
 * tile whose rows are mostly past the step's, and the keys of a tile split
 * between blocks (then merged by the combine) or not: the test checks from
 * gen.h's own rule that its steps cover both, and from the generated
 * program's launch rules that a step of S <= 16 launches the MLA kernel
 * and nothing of the mma.sync form, a step of 20 the reverse (compared
 * too). The split rule itself is checked without a GPU, and the kernel
 * alone with one split of six blocks of keys (its ring refilled), in both
 * rings (MLA_V3 1: a stage's chunks land on mbarriers of their own; 0: the
 * stage whole; 2: the seesaw), at MLA_LEAN's levels with and without the
 * lazy rescale, and levels 0 to 5 against each other (they change no
 * arithmetic: bit for bit on the emulated device, within 1e-3 on a GPU),
 * and over 2 to 4 splits the kernel merging them itself (MLA_FUSE,
 * opt-in) against the combine kernel, and warpgroup 0's P V with P from
 * registers (MLA_PREG) against from shared memory (the same arithmetic:
 * bit for bit on the emulated device), and the ring without a producer
 * warpgroup (MLA_V3 3: warpgroup 1 loads) against the ring with one, and
 * the seesaw without one (4) against the seesaw (2), bit for bit, alone
 * (1 to 330 keys, 1 to 128 tiles, splits of one block) and through the
 * executor (DSCC_MLA_V3=3 and 4: causal, q in two tensors), and the
 * chunk ring's keys by TMA (MLA_TMA, the executor's default; DSCC_MLA_TMA=0:
 * cp.async: whole blocks through a tensor map, the rest by cp.async) against
 * by cp.async, bit for bit, alone and through the executor (the map the
 * runtime makes over the KV cache), the keys multicast to a batch row's two
 * tiles (MLA_MC), q's last chunks from registers (MLA_QREG), the splits'
 * parts as bf16 (MLA_PART_BF16), the consumers' ping-pong (MLA_PP) and a
 * tile's two splits merged through distributed shared memory (MLA_DSM).
 * On a real GPU (DSCC_EMULATED unset) the kernel-alone tests run a subset
 * (each kernel there is an NVRTC compile of its own; the file stays within
 * a minute on an H100) and the executor in the forms other than the
 * defaults is left to test_gpu_ops (tests/gpu/rounds.sh); the emulated
 * device runs all. DSCC_TEST_FILTER (a glob) runs the matching tests alone.
 * Every query row of every step
 * is compared (relative L2 per row: 2e-2; P and the output are rounded to
 * bf16, the CPU keeps f32). Exits 77 (skipped) without a GPU; CTest's
 * emu.test_gpu_mla runs it on the emulated device (tests/emu/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/cuda.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

static const char *model(Arena *a, int heads) {
    return arena_printf(a,
                        "dim B, S, T;\n"
                        "input qn: f32[B, S, %d, 512];\n"
                        "input qp: f32[B, S, %d, 64];\n"
                        "input kv: f32[B, S, 1, 576];\n"
                        "let cache = kv_cache(cast(kv, bf16), name=\"latent\");\n"
                        "let q = concat(cast(qn, bf16), cast(qp, bf16), axis=-1);\n"
                        "output o = attention(q, cache, slice(cache, axis=-1, start=0, len=512), scale=0.1352337788, causal=true);\n",
                        heads, heads);
}

static uint64_t rng; /* fresh each run (the clock), or DSCC_TEST_SEED: printed in main */
static float urand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* The program as the GPU executor generates it; it has the MLA decode phase and its combine (launched for the
 * steps of more splits than the decode kernel merges itself). */
static CgProgram *mla_program(Arena *a, DiagEngine *d, const IrGraph *g) {
    CgGenOptions o = {.tune = tu_tune(), .tile = CG_TILE_WGMMA};
    CgProgram *p = cg_generate(a, d, g, &o);
    assert_non_null(p);
    bool dec = false, comb = false;
    for (int k = 0; k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++) {
            dec |= strcmp(p->kernels[k].phases[f].fn, "mla_decode") == 0;
            comb |= strcmp(p->kernels[k].phases[f].fn, "mla_decode_combine") == 0;
        }
    assert_true(dec && comb);
    return p;
}

/* Blocks the MLA decode phase launches at B, S, T; *other: items of the attention's other phases but the combine. */
static int64_t mla_launch(const IrGraph *g, const CgProgram *p, int64_t B, int64_t S, int64_t T, int64_t *other) {
    int64_t sym[IR_MAX_DIM_SYMS] = {0}, mla = 0;
    for (int i = 0; i < IR_MAX_DIM_SYMS && g->dim_names[i]; i++)
        sym[i] = !strcmp(g->dim_names[i], "B") ? B : !strcmp(g->dim_names[i], "S") ? S : T;
    *other = 0;
    for (int k = 0; k < p->nkernels; k++) {
        bool attn = false;
        for (int f = 0; f < p->kernels[k].nphases; f++) attn |= strcmp(p->kernels[k].phases[f].fn, "mla_decode") == 0;
        for (int f = 0; attn && f < p->kernels[k].nphases; f++) {
            const CgPhase *ph = &p->kernels[k].phases[f];
            if (!strcmp(ph->fn, "mla_decode")) mla = cg_phase_items(ph, sym);
            else if (strcmp(ph->fn, "mla_decode_combine")) *other += cg_phase_items(ph, sym);
        }
    }
    return mla;
}

/* Runs the steps (positions per step) on both executors, B batch rows,
 * `heads` query heads; returns the splits seen by the steps (bit 0: one
 * split, bit 1: several) and the worst row's relative L2. */
static int run_steps(int heads, int64_t B, const int *steps, int nsteps, double *worst) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    const char *src = model(a, heads);
    IrGraph *g = tu_compile_src(a, d, "mla.dsl", src, "shape-infer,fold-constants,dce,cse,dce,fuse");
    const CgProgram *prog = mla_program(a, d, g);
    int64_t maxs = 0, total = 0;
    for (int i = 0; i < nsteps; i++) maxs = steps[i] > maxs ? steps[i] : maxs, total += steps[i];
    uint64_t seed = 1;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = B, .max_seq = maxs, .max_ctx = total};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    CpuOptions co = {.threads = 4};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    int cover = 0;
    *worst = 0;
    int64_t T = 0;
    for (int i = 0; i < nsteps; i++) {
        int64_t S = steps[i];
        T += S;
        float *qn = malloc(sizeof(float) * (size_t)(B * S * heads * 512)), *qp = malloc(sizeof(float) * (size_t)(B * S * heads * 64));
        float *kv = malloc(sizeof(float) * (size_t)(B * S * 576));
        for (int64_t k = 0; k < B * S * heads * 512; k++) qn[k] = urand();
        for (int64_t k = 0; k < B * S * heads * 64; k++) qp[k] = urand();
        for (int64_t k = 0; k < B * S * 576; k++) kv[k] = urand();
        CpuInput in[3] = {{"qn", 4, {B, S, heads, 512}, qn}, {"qp", 4, {B, S, heads, 64}, qp}, {"kv", 4, {B, S, 1, 576}, kv}};
        assert_true(gpu_exec_run(gx, in, 3, d));
        assert_true(cpu_exec_run(cx, in, 3, d));
        int rank, rank2;
        int64_t dims[IR_MAX_RANK], dims2[IR_MAX_RANK];
        const float *go_ = gpu_exec_output(gx, "o", &rank, dims), *co_ = cpu_exec_output(cx, "o", &rank2, dims2);
        assert_non_null(go_);
        assert_non_null(co_);
        assert_int_equal(rank, 4);
        assert_true(dims[0] == B && dims[1] == S && dims[2] == heads && dims[3] == 512);
        double step_worst = 0;
        for (int64_t r = 0; r < B * S * heads; r++) {
            double num = 0, den = 0;
            for (int c = 0; c < 512; c++) {
                double e = (double)go_[r * 512 + c] - co_[r * 512 + c];
                num += e * e, den += (double)co_[r * 512 + c] * co_[r * 512 + c];
            }
            double rel = sqrt(num / (den > 0 ? den : 1e-30));
            if (!(rel <= step_worst)) step_worst = rel;
        }
        long long n = cg_mla_splits(S, B, heads, T);
        int64_t other, blocks = mla_launch(g, prog, B, S, T, &other);
        if (S <= 16) { /* the MLA kernel's step: its blocks, nothing of the mma.sync form */
            cover |= n > 1 ? 2 : 1;
            assert_int_equal(blocks, B * ((S * heads + 63) / 64) * n);
            assert_int_equal(other, 0);
        } else {
            assert_int_equal(blocks, 0);
            assert_true(other > 0);
        }
        char how[64];
        snprintf(how, sizeof how, S <= 16 ? "MLA kernel, %lld split%s" : "the mma.sync form", n, n == 1 ? "" : "s");
        fprintf(stderr, "  %d heads, B %lld, S %lld, T %lld: %s, worst row rel L2 %.2e\n", heads, (long long)B, (long long)S, (long long)T, how,
                step_worst);
        if (!(step_worst <= *worst)) *worst = step_worst;
        free(qn);
        free(qp);
        free(kv);
    }
    gpu_exec_free(gx);
    cpu_exec_free(cx);
    arena_free(a);
    return cover;
}

/* 128 heads (two 64-row tiles a batch row), short contexts: 1, 3 (a step of 2 positions, causal), 4 */
static void test_mla_128_heads(void **state) {
    (void)state;
    static const int steps[] = {1, 2, 1};
    double worst;
    run_steps(128, 2, steps, 3, &worst);
    assert_true(worst <= 2e-2);
}

/* 8 heads: a decode row is 8 of a tile's 64 rows; steps of 16 positions fill two tiles.
 * Contexts 1, 17 .. 49, 63, 64, 65 (two blocks of keys, split), 85 (a step of 20 positions: the
 * mma.sync form, not the MLA kernel), 101 .. 197, 200, 201 (four blocks, split), 202 */
static void test_mla_long_context(void **state) {
    (void)state;
    static const int steps[] = {1, 16, 16, 16, 14, 1, 1, 20, 16, 16, 16, 16, 16, 16, 16, 3, 1, 1};
    double worst;
    int cover = run_steps(8, 2, steps, (int)(sizeof steps / sizeof *steps), &worst);
    assert_int_equal(cover, 3); /* steps with one split and with several */
    assert_true(worst <= 2e-2);
}

/* bf16 of f, nearest even (finite f) */
static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static double from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The kernel itself, launched here with one split over all blocks of
 * keys, B batch rows of 64 heads (one tile each), not causal, f32 out,
 * against a double-precision reference of the bf16 inputs (relative L2
 * per row: 2e-2): T = 330 (the ring's two stages refilled four times, the
 * last block partial) in one block, and T = 200 in 24 blocks, so that the
 * emulator starves each of the producer's warps on some block (warp
 * (block / 2) % 12; the producer's are 8 to 11): a consumer that reads a
 * chunk before all of its copies landed sees the fill bytes there. The
 * steps above never give a split more than two blocks: the split rule
 * spreads short contexts over the SMs. */
/* Returns the output (B x 64 x 512 f32, the caller frees it). MLA_PREG is ring_preg's. */
static const char *ring_preg = "0";
/* MLA_TMA for kernel_ring and kernel_split ("1": whole blocks of keys by TMA through kv_map's map in a.t[4]) */
static const char *ring_tma = "0";
/* MLA_MC for kernel_ring and kernel_split ("1": a batch row's two tiles a cluster, the keys multicast), and the
 * heads a batch row (64: every tile a batch row of its own; 128: tiles 2k and 2k + 1 share batch row k's keys) */
static const char *ring_mc = "0";
static int ring_hq = 64;
/* MLA_QREG for kernel_ring and kernel_split (q's last chunks from warpgroup 0's registers) */
static const char *ring_qreg = "0";
/* MLA_PART_BF16 for kernel_split's two kernels (the splits' parts as bf16) */
static const char *ring_pbf = "0";
/* MLA_PP for kernel_ring and kernel_split (the consumers' ping-pong over pairs of blocks) */
static const char *ring_pp = "0";
/* MLA_DSM for kernel_split (clusters of 2; at 2 splits a tile's two, merged through distributed shared memory) */
static const char *ring_dsm = "0";
/* MLA_XPUSH for kernel_split (with MLA_DSM 1: the merge's halves pushed into the other CTA by st.async) */
static const char *ring_xpush = "0";
/* MLA_AFENCE for kernel_ring and kernel_split ("0": no consumer proxy fence after a wait for keys by TMA) */
static const char *ring_afence = "1";
/* MLA_L2HINT for kernel_ring and kernel_split ("1": the producer's boxes of keys under an evict-first L2 policy) */
static const char *ring_l2hint = "0";
/* MLA_TMA's tensor map over the rows of 576 bf16 at dk (box 64 rows x 128 bytes, the 128-byte swizzle), in device memory */
static RtDevPtr kv_map(RtCuda *gpu, DiagEngine *d, RtDevPtr dk, size_t rows) {
    unsigned char *m = aligned_alloc(64, 128);
    RtDevPtr dm = 0;
    assert_non_null(m);
    assert_true(rt_cuda_tensor_map_2d(gpu, d, m, dk, (int64_t)rows, 1152, 1152, 64, 128));
    assert_true(rt_cuda_alloc(gpu, d, 128, &dm) && rt_cuda_upload(gpu, d, dm, m, 128));
    free(m);
    return dm;
}
/* Whether the device is the emulated one (DSCC_EMULATED, set in main). On a real GPU each kernel is an
 * NVRTC compile of its own (~1 s, no cache), so the kernel-alone tests run a subset there (marked
 * "on a GPU" below) and the whole set on the emulated device, which also proves the variants equal bit
 * for bit: the file stays within a minute on an H100. */
static bool emu_dev;
static float *kernel_ring(const char *v3, const char *waitg, const char *pf, const char *lean, const char *lazy, int B, int T) {
    enum { HQ = 64 };
    const int nb = B * HQ / ring_hq; /* batch rows (ring_hq 128: two tiles each) */
    const double scale = 0.1352337788;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    /* B, T and the rows a batch row from the arguments (the file's defaults, as the executor's are: a.sym[0], a.len + 1,
     * a.cap), so each form is one compile whatever the shape (on the emulated device a g++ run, on a GPU NVRTC's) */
    const char *hs = arena_printf(a, "%dLL", ring_hq);
    CgDefine defs[] = {{"MLA_S", "1LL"},      {"MLA_HQ", hs},
                       {"MLA_OUT_BF16", "0"}, {"MLA_CAUSAL", "0"}, {"MLA_SCALE", "0.1352337788f"},
                       {"MLA_V3", v3},     {"MLA_WAITG", waitg},  {"MLA_PF", pf},       {"MLA_LEAN", lean},
                       {"MLA_LAZY", lazy}, {"MLA_PREG", ring_preg}, {"MLA_TMA", ring_tma}, {"MLA_MC", ring_mc},
                       {"MLA_QREG", ring_qreg}, {"MLA_PP", ring_pp}, {"MLA_AFENCE", ring_afence},
                       {"MLA_L2HINT", ring_l2hint}};
    CgSource src = {"mla_ring", cg_kernel_instance(a, "mla_decode", "mla_ring", defs, (int)(sizeof defs / sizeof *defs)),
                    {"codegen/kernels/mla_decode.cuh", 0, 0}};
    TuModule m;
    assert_int_equal(tu_module_open(&m, &src, false), TU_CASE_OK);
    RtCuda *gpu = m.gpu;
    RtKernel *k = rt_cuda_kernel(gpu, d, m.bin.data, "mla_ring");
    assert_non_null(k);
    const size_t nq = (size_t)B * HQ * 576, nk = (size_t)nb * T * 576, no = (size_t)B * HQ * 512;
    uint16_t *q = malloc(sizeof(uint16_t) * nq), *kv = malloc(sizeof(uint16_t) * nk);
    float *out = malloc(sizeof(float) * no);
    for (size_t i = 0; i < nq; i++) q[i] = bf16(urand());
    for (size_t i = 0; i < nk; i++) kv[i] = bf16(urand());
    RtDevPtr dq, dk, dout, dpart;
    assert_true(rt_cuda_alloc(gpu, d, sizeof(uint16_t) * nq, &dq) && rt_cuda_alloc(gpu, d, sizeof(uint16_t) * nk, &dk));
    assert_true(rt_cuda_alloc(gpu, d, sizeof(float) * no, &dout) && rt_cuda_alloc(gpu, d, sizeof(float) * 64, &dpart));
    assert_true(rt_cuda_upload(gpu, d, dq, q, sizeof(uint16_t) * nq) && rt_cuda_upload(gpu, d, dk, kv, sizeof(uint16_t) * nk));
    CgArgs args = {.t = {dq, dk, dout, dpart, *ring_tma == '1' ? kv_map(gpu, d, dk, (size_t)nb * T) : 0}, .cap = T, .len = T - 1};
    args.sym[0] = nb;
    void *p[] = {&args};
    const unsigned nt = *v3 >= '3' ? 256 : 384; /* MLA_V3 3, 4: no producer warpgroup */
    assert_true(rt_cuda_launch_async(gpu, d, k, (unsigned)B, nt, 3 * 73728 + 1024 + 256, p) && rt_cuda_sync(gpu, d));
    assert_true(rt_cuda_download(gpu, d, out, dout, sizeof(float) * no));
    double worst = 0, *sc = malloc(sizeof(double) * (size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < HQ; h++) {
            const uint16_t *qr = q + ((size_t)b * HQ + h) * 576, *kb = kv + (size_t)(b * HQ / ring_hq) * T * 576;
            const float *orow = out + ((size_t)b * HQ + h) * 512;
            double mx = -1e300, sum = 0, num = 0, den = 0;
            for (int j = 0; j < T; j++) {
                double dot = 0;
                for (int c = 0; c < 576; c++) dot += from_bf16(qr[c]) * from_bf16(kb[(size_t)j * 576 + c]);
                sc[j] = dot * scale;
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int j = 0; j < T; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int c = 0; c < 512; c++) {
                double ref = 0;
                for (int j = 0; j < T; j++) ref += sc[j] * from_bf16(kb[(size_t)j * 576 + c]);
                ref /= sum;
                num += (orow[c] - ref) * (orow[c] - ref), den += ref * ref;
            }
            double rel = sqrt(num / (den > 0 ? den : 1e-30));
            if (!(rel <= worst)) worst = rel;
        }
    fprintf(stderr,
            "  the kernel alone (MLA_V3 %s, MLA_WAITG %s, MLA_PF %s, MLA_LEAN %s, MLA_LAZY %s, MLA_PREG %s, MLA_TMA %s, MLA_MC %s, MLA_QREG %s, "
            "MLA_PP %s): %d x 64 heads (%d a batch row), T %d, one split of %d blocks: worst row rel L2 %.2e\n",
            v3, waitg, pf, lean, lazy, ring_preg, ring_tma, ring_mc, ring_qreg, ring_pp, B, ring_hq, T, (T + 63) / 64, worst);
    assert_true(worst <= 2e-2);
    free(sc);
    free(q);
    free(kv);
    tu_module_close(&m);
    arena_free(a);
    return out;
}

/* every ring: each stage's chunks on mbarriers of their own (MLA_V3 1; waited for one or three at a
 * time, MLA_WAITG; with and without the L2 prefetch, MLA_PF), the stage whole (0), the seesaw (2);
 * the chunk ring with each of MLA_LEAN's steps (1: the producer's copies of the whole blocks after
 * the first at fixed offsets, 2: S from precomputed descriptors, 3: no mask on whole blocks, 4: the
 * next S issued before P V is waited for) and without them (0), with the lazy rescale (MLA_LAZY 1)
 * and without. T 330: blocks 1 to 4 whole, 5 partial; T 200: blocks 1, 2 whole. In 24 tiles (T 200: each
 * producer warp starved on some block) the rows marked so; the emulated device runs the chunk ring at
 * MLA_LEAN 5 (with cp.async: test_mla_no_producer's reference form, test_mla_ping_pong's MLA_PP 0), the
 * whole-stage ring at 4 (test_mla_p_registers) and the seesaw (test_mla_no_producer's) in 24 tiles
 * elsewhere, each checked against the reference by kernel_ring there, and MLA_WAITG 3 here. */
static void test_mla_kernel_ring(void **state) {
    (void)state;
    static const char *const rings[][7] = { /* MLA_V3, MLA_WAITG, MLA_PF, MLA_LEAN, MLA_LAZY, 24 tiles ("e": emulated, "g": GPU), "1": on a GPU */
        {"1", "1", "0", "5", "1", "g", "1"}, {"1", "3", "0", "3", "1", "e", "0"}, {"0", "1", "0", "0", "0", "0", "1"},
        {"0", "1", "0", "4", "1", "0", "0"}, {"1", "3", "2", "4", "1", "0", "0"}, /* with the L2 prefetch (blocks 2 to 5, the last partial) */
        {"2", "1", "0", "5", "1", "g", "1"},                                      /* the seesaw: three pairs (T 330), the last one block */
        {"2", "1", "0", "0", "0", "0", "0"},
        {"1", "1", "0", "6", "1", "0", "1"}, {"2", "1", "0", "6", "1", "0", "0"}, /* MLA_LEAN 6: the scale folded into P's exponent */
    };
    for (int i = 0; i < (int)(sizeof rings / sizeof *rings); i++) {
        if (!emu_dev && *rings[i][6] != '1') continue;
        free(kernel_ring(rings[i][0], rings[i][1], rings[i][2], rings[i][3], rings[i][4], 1, 330));
        if (*rings[i][5] == (emu_dev ? 'e' : 'g')) /* each producer warp starved on some block */
            free(kernel_ring(rings[i][0], rings[i][1], rings[i][2], rings[i][3], rings[i][4], 24, 200));
    }
}

/* The largest relative L2 over the n rows of 512 of a against ref, and how many of their values differ (*nd). */
static double rows_diff(const float *a, const float *ref, size_t n, size_t *nd) {
    double worst = 0;
    *nd = 0;
    for (size_t r = 0; r < n; r++) {
        double num = 0, den = 0;
        for (size_t c = r * 512; c < r * 512 + 512; c++) {
            *nd += memcmp(&a[c], &ref[c], sizeof(float)) != 0;
            num += ((double)a[c] - ref[c]) * ((double)a[c] - ref[c]), den += (double)ref[c] * ref[c];
        }
        const double rel = sqrt(num / (den > 0 ? den : 1e-30));
        if (!(rel <= worst)) worst = rel;
    }
    return worst;
}

/* The tail the form tests share: got against want (rows of 512 f32 each), "<what>: N of M values differ,
 * worst row rel L2 W" printed, then held to emu_bound on the emulated device (below 0: bit for bit) and to
 * gpu_bound on a GPU (a row's relative L2); got is freed (want is the caller's). Returns the count of
 * differing values. */
static size_t expect_forms_agree(float *got, const float *want, size_t rows, double emu_bound, double gpu_bound, const char *what, ...) {
    size_t nd;
    const double w = rows_diff(got, want, rows, &nd);
    va_list ap;
    va_start(ap, what);
    vfprintf(stderr, what, ap);
    va_end(ap);
    fprintf(stderr, ": %zu of %zu values differ, worst row rel L2 %.2e\n", nd, rows * 512, w);
    if (emu_dev && emu_bound < 0) assert_memory_equal(got, want, rows * 512 * sizeof(float));
    else assert_true(w <= (emu_dev ? emu_bound : gpu_bound));
    free(got);
    return nd;
}

/* MLA_LEAN's levels change no arithmetic (5's ex2.approx.ftz differs from exp2f only for P below
 * 2^-126, which these inputs never give): from the same inputs the kernel alone at 1 to 5 (exact
 * rescale) gives level 0's output, over one split of six blocks (T 330: whole blocks, refills, a
 * partial last one), and the seesaw at 5 gives its own at 0 (and level 0 its own, run twice). (Each
 * level in 24 tiles, every producer warp starved on some block, is test_mla_kernel_ring's, against
 * the reference: a level's arithmetic does not depend on the tile count.) Bit for bit on the emulated device
 * (DSCC_EMULATED=1); on a GPU they agreed only within rounding (an H200, 2026-12-06: the tensor
 * cores may round S's chain of wgmma differently where level 4 splits it with a wait), so there
 * the bound is a row's relative L2 of 1e-3 (a wrong chunk or stage gives ~1); each level's count
 * of differing values is printed. */
static void test_mla_lean_exact(void **state) {
    (void)state;
    const char *em = getenv("DSCC_EMULATED");
    const bool exact = em && *em && strcmp(em, "0") != 0;
    static const int shape[][2] = {{1, 330}};
    for (int k = 0; k < 1; k++) {
        const uint64_t seed = rng;
        const size_t rows = (size_t)shape[k][0] * 64, no = rows * 512;
        /* MLA_V3, MLA_LEAN, compared with: 1 level 0's first run, 0 the run before; level 0 again first, so that a
         * GPU run tells a level that departs from one that is not repeatable run to run */
        static const char *const runs[][3] = {{"1", "0", "1"}, {"1", "1", "1"}, {"1", "2", "1"}, {"1", "3", "1"}, {"1", "4", "1"},
                                              {"1", "5", "1"}, {"2", "0", "0"}, {"2", "5", "0"}};
        float *ref = NULL, *prev = NULL;
        rng = seed;
        ref = kernel_ring("1", "1", "0", "0", "0", shape[k][0], shape[k][1]);
        for (int i = 0; i < (int)(sizeof runs / sizeof *runs); i++) {
            if (!emu_dev && i >= 1 && i <= 4) continue; /* on a GPU: levels 0 and 5 and the seesaw's */
            rng = seed;
            float *out = kernel_ring(runs[i][0], "1", "0", runs[i][1], "0", shape[k][0], shape[k][1]);
            if (*runs[i][2] == '1' || prev) {
                const float *base = *runs[i][2] == '1' ? ref : prev;
                size_t nd;
                const double worst = rows_diff(out, base, rows, &nd);
                fprintf(stderr, "  MLA_V3 %s, MLA_LEAN %s against MLA_LEAN %s: %zu of %zu values differ, worst row rel L2 %.2e\n", runs[i][0],
                        runs[i][1], *runs[i][2] == '1' ? "0" : runs[i - 1][1], nd, no, worst);
                if (exact) assert_memory_equal(out, base, no * sizeof(float));
                else assert_true(worst <= 1e-3);
            }
            free(prev);
            prev = *runs[i][2] == '1' ? (free(out), NULL) : out;
        }
        free(prev);
        free(ref);
    }
}

/* The kernel alone with its keys split nsp ways (grid B * nsp, 64 heads: one tile a batch row; not
 * causal, f32 out, the inputs drawn as kernel_ring draws them), the splits merged by the combine
 * kernel (fuse "0", or nsp above fmax) or by the decode kernel's last block of each tile (fuse "1",
 * MLA_FUSE, up to MLA_FUSE_MAX = fmax splits). Returns
 * the output (B x 64 x 512 f32, the caller frees it). */
static float *kernel_split(const char *fuse, const char *fmax, const char *v3, int B, int T, int nsp) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    const int nb = B * 64 / ring_hq; /* batch rows (ring_hq 128: two tiles each) */
    const char *hs = arena_printf(a, "%dLL", ring_hq); /* (B and T from the arguments, as kernel_ring's) */
    CgDefine defs[] = {{"MLA_S", "1LL"},         {"MLA_HQ", hs},
                       {"MLA_OUT_BF16", "0"}, {"MLA_CAUSAL", "0"}, {"MLA_SCALE", "0.1352337788f"},
                       {"MLA_V3", v3},        {"MLA_LEAN", "5"},     {"MLA_LAZY", "1"},   {"MLA_FUSE", fuse},
                       {"MLA_FUSE_MAX", fmax}, {"MLA_TMA", ring_tma}, {"MLA_MC", ring_mc}, {"MLA_QREG", ring_qreg},
                       {"MLA_PART_BF16", ring_pbf}, {"MLA_PP", ring_pp}, {"MLA_DSM", ring_dsm}, {"MLA_AFENCE", ring_afence},
                       {"MLA_L2HINT", ring_l2hint}, {"MLA_XPUSH", ring_xpush}};
    CgDefine cdefs[] = {{"MLA_S", "1LL"}, {"MLA_HQ", hs}, {"MLA_OUT_BF16", "0"}, {"MLA_PART_BF16", ring_pbf}};
    CgSource src[2] = {{"mla_split", cg_kernel_instance(a, "mla_decode", "mla_split", defs, (int)(sizeof defs / sizeof *defs)),
                        {"codegen/kernels/mla_decode.cuh", 0, 0}},
                       {"mla_split_combine", cg_kernel_instance(a, "mla_decode_combine", "mla_split_combine", cdefs, (int)(sizeof cdefs / sizeof *cdefs)),
                        {"codegen/kernels/mla_decode_combine.cuh", 0, 0}}};
    CgBinary bin[2] = {{0}};
    CgOptions o = {.cache_dir = getenv("DSCC_CACHE_DIR") ? NULL : ""};
    assert_int_equal(cg_compile(a, d, src, 2, &o, bin), 0);
    RtCuda *gpu = rt_cuda_open(d, 0);
    assert_non_null(gpu);
    RtKernel *k = rt_cuda_kernel(gpu, d, bin[0].data, "mla_split"), *kc = rt_cuda_kernel(gpu, d, bin[1].data, "mla_split_combine");
    assert_true(k && kc);
    const size_t nq = (size_t)B * 64 * 576, nk = (size_t)nb * T * 576, no = (size_t)B * 64 * 512;
    const size_t np = 64 + (size_t)nsp * B * 64 * 513;
    uint16_t *q = malloc(sizeof(uint16_t) * nq), *kv = malloc(sizeof(uint16_t) * nk);
    float *out = malloc(sizeof(float) * no);
    for (size_t i = 0; i < nq; i++) q[i] = bf16(urand());
    for (size_t i = 0; i < nk; i++) kv[i] = bf16(urand());
    RtDevPtr dq, dk, dout, dpart;
    assert_true(rt_cuda_alloc(gpu, d, sizeof(uint16_t) * nq, &dq) && rt_cuda_alloc(gpu, d, sizeof(uint16_t) * nk, &dk));
    assert_true(rt_cuda_alloc(gpu, d, sizeof(float) * no, &dout) && rt_cuda_alloc(gpu, d, sizeof(float) * np, &dpart));
    assert_true(rt_cuda_upload(gpu, d, dq, q, sizeof(uint16_t) * nq) && rt_cuda_upload(gpu, d, dk, kv, sizeof(uint16_t) * nk));
    CgArgs args = {.t = {dq, dk, dout, dpart, *ring_tma == '1' ? kv_map(gpu, d, dk, (size_t)nb * T) : 0}, .cap = T, .len = T - 1};
    args.sym[0] = nb;
    void *p[] = {&args};
    for (int rep = 0; rep < 2; rep++) { /* twice: the tickets are back at 0 after a launch */
        assert_true(rt_cuda_memset0(gpu, d, dout, sizeof(float) * no));
        assert_true(rt_cuda_launch_async(gpu, d, k, (unsigned)(B * nsp), *v3 >= '3' ? 256 : 384, 3 * 73728 + 1024 + 256, p));
        if ((*fuse == '0' || nsp > atoi(fmax)) && !(*ring_dsm == '1' && nsp == 2)) /* the kernel merges at most fmax splits itself */
            assert_true(rt_cuda_launch_async(gpu, d, kc, (unsigned)((B * 64 * 128 + 255) / 256), 256, 0, p));
        assert_true(rt_cuda_sync(gpu, d));
    }
    assert_true(rt_cuda_download(gpu, d, out, dout, sizeof(float) * no));
    free(q);
    free(kv);
    rt_cuda_close(gpu);
    cg_binary_free(&bin[0]);
    cg_binary_free(&bin[1]);
    arena_free(a);
    return out;
}

/* The splits merged in the decode kernel (MLA_FUSE 1) against the combine kernel (0): the same
 * arithmetic in the same order, so bit for bit on the emulated device (within 1e-3 a row on a GPU,
 * where the two compile differently), and both within 2e-2 of one split over all the keys (kernel_ring,
 * itself checked against a double-precision reference): 330 keys (six blocks) in 2 splits, 200 keys
 * (four blocks) in 3 splits over 8 tiles (24
 * blocks: each producer warp starved on some block; the last split empty), in the chunk ring and the seesaw, and 3 splits in a kernel that merges at most 2
 * (then the combine kernel's). */
static void test_mla_fused_combine(void **state) {
    (void)state;
    const char *em = getenv("DSCC_EMULATED");
    const bool exact = em && *em && strcmp(em, "0") != 0;
    static const struct { int B, T, nsp; const char *v3, *fmax; } cases[] = {
        {1, 330, 2, "1", "4"}, {8, 200, 3, "1", "4"}, {2, 330, 3, "2", "4"},
        {2, 330, 3, "1", "2"}}; /* the last: more splits than the kernel merges itself (the combine kernel's, in a fused build) */
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        if (!emu_dev && c != 0 && c != 2) continue; /* on a GPU: the chunk ring's first case and the seesaw's */
        const int B = cases[c].B, T = cases[c].T, nsp = cases[c].nsp;
        const uint64_t seed = rng;
        float *one = kernel_ring(cases[c].v3, "1", "0", "5", "1", B, T);
        rng = seed;
        float *comb = kernel_split("0", "1", cases[c].v3, B, T, nsp);
        rng = seed;
        float *fused = kernel_split("1", cases[c].fmax, cases[c].v3, B, T, nsp);
        const size_t rows = (size_t)B * 64;
        size_t nd, nd1;
        const double wf = rows_diff(fused, comb, rows, &nd), w1 = rows_diff(comb, one, rows, &nd1);
        fprintf(stderr, "  MLA_V3 %s, %d x 64 heads, T %d, %d splits, MLA_FUSE_MAX %s: merged in the kernel against the combine kernel: "
                "%zu of %zu values differ, worst row rel L2 %.2e; against one split %.2e\n", cases[c].v3, B, T, nsp, cases[c].fmax, nd,
                rows * 512, wf, w1);
        if (exact) assert_memory_equal(fused, comb, rows * 512 * sizeof(float));
        else assert_true(wf <= 1e-3);
        assert_true(w1 <= 2e-2);
        free(one);
        free(comb);
        free(fused);
    }
}

/* Warpgroup 0's P V with P from registers (MLA_PREG 1) against from shared memory (0): the same bf16
 * P, the same wgmma, so bit for bit on the emulated device (within 1e-3 a row on a GPU), each within
 * the reference's bound (kernel_ring), at MLA_LEAN 3 to 6 (4 and up: its wait a block later), with
 * and without the lazy rescale, one tile (T 330), and the whole-stage ring in 24 tiles (T 200: each
 * producer warp starved on some block; P from registers changes only the consumers' side). */
static void test_mla_p_registers(void **state) {
    (void)state;
    const char *em = getenv("DSCC_EMULATED");
    const bool exact = em && *em && strcmp(em, "0") != 0;
    static const struct { const char *v3, *lean, *lazy; int B, T; } cases[] = {
        {"1", "5", "1", 1, 330}, {"1", "3", "0", 1, 330}, {"1", "6", "1", 1, 330}, {"0", "4", "1", 24, 200}};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        if (!emu_dev && c != 0) continue; /* on a GPU: the first */
        const uint64_t seed = rng;
        ring_preg = "0";
        float *smem = kernel_ring(cases[c].v3, "1", "0", cases[c].lean, cases[c].lazy, cases[c].B, cases[c].T);
        rng = seed;
        ring_preg = "1";
        float *regs = kernel_ring(cases[c].v3, "1", "0", cases[c].lean, cases[c].lazy, cases[c].B, cases[c].T);
        ring_preg = "0";
        const size_t rows = (size_t)cases[c].B * 64;
        size_t nd;
        const double w = rows_diff(regs, smem, rows, &nd);
        fprintf(stderr, "  MLA_PREG 1 against 0: %zu of %zu values differ, worst row rel L2 %.2e\n", nd, rows * 512, w);
        if (exact) assert_memory_equal(regs, smem, rows * 512 * sizeof(float));
        else assert_true(w <= 1e-3);
        free(smem);
        free(regs);
    }
}

/* A form of the kernel against a reference form that must give the same output (the same arithmetic,
 * other copies): the reference (MLA_V3 ref, cp.async) and the form (MLA_V3 v3, MLA_TMA tma) from the
 * same inputs, at MLA_LEAN lean, MLA_LAZY lazy, MLA_PREG preg, B tiles of 64 heads, T keys, in nsp
 * splits (1: kernel_ring; more: kernel_split, merged by the combine). */
typedef struct {
    const char *ref, *v3, *tma, *lean, *lazy, *preg;
    int B, T, nsp;
} RingCase;
/* The cases, bit for bit on the emulated device, within 1e-3 a row on a GPU (where only the cases
 * whose bit in `gpu` is set run: each is an NVRTC compile of its own). */
static void compare_forms(const RingCase *cases, int n, uint64_t gpu) {
    for (int c = 0; c < n; c++) {
        if (!emu_dev && !(gpu >> c & 1u)) continue;
        const RingCase *k = &cases[c];
        const uint64_t seed = rng;
        float *with, *without;
        ring_preg = k->preg;
        if (k->nsp == 1) {
            with = kernel_ring(k->ref, "1", "0", k->lean, k->lazy, k->B, k->T);
            rng = seed, ring_tma = k->tma;
            without = kernel_ring(k->v3, "1", "0", k->lean, k->lazy, k->B, k->T);
        } else { /* (kernel_split: MLA_LEAN 5, the lazy rescale) */
            with = kernel_split("0", "1", k->ref, k->B, k->T, k->nsp);
            rng = seed, ring_tma = k->tma;
            without = kernel_split("0", "1", k->v3, k->B, k->T, k->nsp);
        }
        ring_preg = "0", ring_tma = "0";
        expect_forms_agree(without, with, (size_t)k->B * 64, -1, 1e-3, "  MLA_V3 %s%s against %s (MLA_LEAN %s, MLA_LAZY %s, MLA_PREG %s): %d x 64 "
                           "heads, T %d, %d split%s", k->v3, *k->tma == '1' ? " MLA_TMA 1" : "", k->ref, k->lean, k->lazy, k->preg, k->B, k->T,
                           k->nsp, k->nsp == 1 ? "" : "s");
        free(with);
    }
}

/* The chunk ring without a producer warpgroup (MLA_V3 3: 256 threads, warpgroup 1 copies q and each
 * block of keys, two ahead, once both warpgroups are done with its stage) against the ring with one
 * (MLA_V3 1): only who issues the copies changes, not the arithmetic, so bit for bit on the emulated
 * device (within 1e-3 a row on a GPU), each within the double-precision reference's bound
 * (kernel_ring). One split over all the keys (kernel_ring): 1 key (the only block partial), 64 (one
 * whole block, brought with q), 128 (two: no refill), 129 (a refill, the last block of one key), 330
 * (four refills, the last partial), each in one tile; 200 keys in 24 tiles (the emulator starves
 * each of warpgroup 1's warps on some block), 1 key in 24 tiles; at MLA_LEAN 5 with the lazy
 * rescale, 0 without, and with P from registers (MLA_PREG). Several splits merged by the combine
 * (kernel_split), over 2 tiles: 200 keys in 4 splits of one block each (and by TMA: test_mla_tma). And
 * the seesaw without a producer (MLA_V3 4: each consumer refills the chunks it read last) against
 * the seesaw with one (2), bit for bit likewise, over the same edges (its blocks go in pairs: 1,
 * 128, 129 and 330 keys give a pair of one block, one pair, a pair and one, three pairs), its splits
 * 330 keys in 3 of two blocks (by TMA too: test_mla_tma). */
static void test_mla_no_producer(void **state) {
    (void)state;
    static const RingCase cases[] = { /* on a GPU: 4, 14, 17 */
        {"1", "3", "0", "5", "1", "0", 1, 1, 1},    {"1", "3", "0", "5", "1", "0", 1, 64, 1},  {"1", "3", "0", "5", "1", "0", 1, 128, 1},
        {"1", "3", "0", "5", "1", "0", 1, 129, 1},  {"1", "3", "0", "5", "1", "0", 1, 330, 1}, {"1", "3", "0", "0", "0", "0", 1, 330, 1},
        {"1", "3", "0", "5", "1", "1", 1, 330, 1},  {"1", "3", "0", "6", "1", "0", 1, 330, 1}, {"1", "3", "0", "5", "1", "0", 24, 200, 1},
        {"1", "3", "0", "5", "1", "0", 24, 1, 1},   {"1", "3", "0", "5", "1", "0", 2, 200, 4},
        /* the seesaw without a producer against the seesaw with one: one block (a pair of one), one pair, a pair and
         * one block, three pairs (the last partial), two pairs in 24 tiles, splits of one and two blocks */
        {"2", "4", "0", "5", "1", "0", 1, 1, 1},    {"2", "4", "0", "5", "1", "0", 1, 128, 1}, {"2", "4", "0", "5", "1", "0", 1, 129, 1},
        {"2", "4", "0", "5", "1", "0", 1, 330, 1},  {"2", "4", "0", "0", "0", "0", 1, 330, 1}, {"2", "4", "0", "6", "1", "0", 1, 330, 1},
        {"2", "4", "0", "5", "1", "0", 24, 200, 1}, {"2", "4", "0", "5", "1", "0", 2, 330, 3}};
    compare_forms(cases, (int)(sizeof cases / sizeof *cases), 1u << 4 | 1u << 14 | 1u << 17);
}

/* The keys by TMA (MLA_TMA 1: whole blocks through the tensor map, q and a block that ends past T by
 * cp.async, zeros past T) against by cp.async (MLA_TMA 0): only how the bytes come in changes, so bit
 * for bit on the emulated device. The chunk ring with its producer, one split over all the keys: 1 key
 * (the only block partial, with q), 64 (one whole block: TMA beside q's cp.async), 330 (four refills,
 * the last partial: 10 keys), 200 in 24 tiles (each producer warp starved on some block), 64 keys in
 * 24 tiles (one whole block each, by TMA, at 24 rows of the map); at MLA_LEAN 5 and 6; several splits merged by the combine
 * (kernel_split): 200 keys in 4 splits of one block each (the blocks after the first split's by TMA,
 * each first of its split), 330 in 3 of two blocks. Without a producer (MLA_V3 3: warpgroup 1's first
 * thread issues the boxes, q with the first block by cp.async; 4: each consumer's first thread its
 * chunks): 64, 330 keys, 4 splits; the seesaw's 1 key, 129 (a pair and a block of one key), 330, 3
 * splits (and the executor's steps with DSCC_MLA_V3=4 DSCC_MLA_TMA=1: test_mla_env_steps). */
static void test_mla_tma(void **state) {
    (void)state;
    static const RingCase cases[] = { /* on a GPU: 2, 3, 6, 9, 13 */
        {"1", "1", "1", "5", "1", "0", 1, 1, 1},   {"1", "1", "1", "5", "1", "0", 1, 64, 1},  {"1", "1", "1", "5", "1", "0", 1, 330, 1},
        {"1", "1", "1", "5", "1", "0", 24, 200, 1}, {"1", "1", "1", "5", "1", "0", 24, 64, 1}, {"1", "1", "1", "6", "1", "0", 1, 330, 1},
        {"1", "1", "1", "5", "1", "0", 2, 200, 4},  {"1", "1", "1", "5", "1", "0", 2, 330, 3},
        /* without a producer: the ring's warpgroup 1 (MLA_V3 3) against the ring with one by cp.async, the seesaw's
         * consumers (4) against the seesaw with one; each issuing thread the first of the loading warpgroup */
        {"1", "3", "1", "5", "1", "0", 1, 64, 1},   {"1", "3", "1", "5", "1", "0", 1, 330, 1}, {"1", "3", "1", "5", "1", "0", 2, 200, 4},
        {"2", "4", "1", "5", "1", "0", 1, 1, 1},    {"2", "4", "1", "5", "1", "0", 1, 129, 1}, {"2", "4", "1", "5", "1", "0", 1, 330, 1},
        {"2", "4", "1", "5", "1", "0", 2, 330, 3}};
    compare_forms(cases, (int)(sizeof cases / sizeof *cases), 1u << 2 | 1u << 3 | 1u << 6 | 1u << 9 | 1u << 13);
}

/* The keys multicast to a batch row's two row tiles (MLA_MC 1: the tiles a cluster of 2 CTAs whose producers
 * each issue half of a whole block's boxes into both CTAs' stage) against each CTA's own boxes (MLA_MC 0),
 * both by TMA with 128 heads a batch row (two tiles): only who issues which box changes, so bit for bit on
 * the emulated device (within 1e-3 a row on a GPU). One split over the keys (kernel_ring, itself against
 * the double-precision reference): 64 keys (one whole block, beside q's cp.async), 330 (four refills, each
 * once both CTAs' consumers are done with the stage; the last block partial: by cp.async), 200 in 24 tiles
 * (12 clusters: each producer warp starved on some block); several splits merged by the combine
 * (kernel_split): 200 keys in 4 splits of one block. */
static void test_mla_multicast(void **state) {
    (void)state;
    static const struct { const char *lean; int B, T, nsp; } cases[] = { /* on a GPU: 1 and 3 */
        {"5", 2, 64, 1}, {"5", 2, 330, 1}, {"5", 24, 200, 1}, {"5", 4, 200, 4}};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        if (!emu_dev && c != 1 && c != 3) continue;
        const uint64_t seed = rng;
        float *out[2];
        ring_hq = 128, ring_tma = "1";
        for (int mc = 0; mc < 2; mc++) {
            rng = seed, ring_mc = mc ? "1" : "0";
            out[mc] = cases[c].nsp == 1 ? kernel_ring("1", "1", "0", cases[c].lean, "1", cases[c].B, cases[c].T)
                                        : kernel_split("0", "1", "1", cases[c].B, cases[c].T, cases[c].nsp);
        }
        ring_hq = 64, ring_tma = "0", ring_mc = "0";
        expect_forms_agree(out[1], out[0], (size_t)cases[c].B * 64, -1, 1e-3, "  MLA_MC 1 against 0 (MLA_TMA 1, MLA_LEAN %s): %d x 64 heads "
                           "(128 a batch row), T %d, %d split%s", cases[c].lean, cases[c].B, cases[c].T, cases[c].nsp, cases[c].nsp == 1 ? "" : "s");
        free(out[0]);
    }
}

/* q's last chunks of 64 columns from warpgroup 0's registers (MLA_QREG 1: the rope chunk; 2: and chunk 7),
 * S's wgmma for them taking A from registers, against all of q from shared memory (0): the same products
 * in the same order, so bit for bit on the emulated device (within 1e-3 a row on a GPU). The keys by TMA
 * (q on its own barrier, the one S's first wgmma waits at: the 24-tile cases of test_mla_tma starve the
 * producer's warps before it): 330 keys (the fragments kept over four refills), 129 at MLA_LEAN 6; by
 * cp.async (q's chunks with the first block's): 330 keys,
 * and 130 keys in 4 splits with a split past the keys (no q: no wait); without a producer (MLA_V3 3): 330 keys;
 * with the multicast (MLA_MC 1, 128 heads a batch row): 330 keys. */
static void test_mla_qreg(void **state) {
    (void)state;
    static const struct { const char *v3, *tma, *mc, *lean, *qreg; int B, T, nsp; } cases[] = { /* on a GPU: 0, 1 */
        {"1", "1", "0", "5", "1", 1, 330, 1}, {"1", "1", "0", "5", "2", 1, 330, 1}, {"1", "1", "0", "6", "2", 1, 129, 1},
        {"1", "0", "0", "5", "2", 1, 330, 1}, {"1", "0", "0", "5", "1", 2, 130, 4}, {"3", "1", "0", "5", "2", 1, 330, 1},
        {"1", "1", "1", "5", "2", 2, 330, 1}};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        if (!emu_dev && c > 1) continue;
        const uint64_t seed = rng;
        float *out[2];
        ring_tma = cases[c].tma, ring_mc = cases[c].mc, ring_hq = *cases[c].mc == '1' ? 128 : 64;
        for (int q = 0; q < 2; q++) {
            rng = seed, ring_qreg = q ? cases[c].qreg : "0";
            out[q] = cases[c].nsp == 1 ? kernel_ring(cases[c].v3, "1", "0", cases[c].lean, "1", cases[c].B, cases[c].T)
                                       : kernel_split("0", "1", cases[c].v3, cases[c].B, cases[c].T, cases[c].nsp);
        }
        ring_tma = "0", ring_mc = "0", ring_hq = 64, ring_qreg = "0";
        expect_forms_agree(out[1], out[0], (size_t)cases[c].B * 64, -1, 1e-3, "  MLA_QREG %s against 0 (MLA_V3 %s, MLA_TMA %s, MLA_MC %s, "
                           "MLA_LEAN %s): %d x 64 heads, T %d, %d split%s", cases[c].qreg, cases[c].v3, cases[c].tma, cases[c].mc, cases[c].lean,
                           cases[c].B, cases[c].T, cases[c].nsp, cases[c].nsp == 1 ? "" : "s");
        free(out[0]);
    }
}

/* The splits' parts for the combine as bf16 (MLA_PART_BF16 1, both kernels) against f32 (0), the kernel and the
 * combine alone (kernel_split): one more rounding of each part (2^-9 relative) before the merge, so within
 * 5e-3 a row (relative L2) of the f32 parts' output, and not equal (the bf16 path taken): 130 keys in 4 splits
 * (one with no keys: its part never read) by cp.async, and 200 keys in 4 splits by TMA with the multicast and
 * q's chunks in registers (MLA_MC 1, MLA_QREG 2, 128 heads a batch row). */
static void test_mla_part_bf16(void **state) {
    (void)state;
    static const struct { const char *v3, *tma, *mc, *qreg; int B, T, nsp; } cases[] = { /* on a GPU: 0 */
        {"1", "0", "0", "0", 2, 130, 4}, {"1", "1", "1", "2", 4, 200, 4}};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        if (!emu_dev && c != 0) continue;
        const uint64_t seed = rng;
        float *out[2];
        ring_tma = cases[c].tma, ring_mc = cases[c].mc, ring_qreg = cases[c].qreg, ring_hq = *cases[c].mc == '1' ? 128 : 64;
        for (int b = 0; b < 2; b++) {
            rng = seed, ring_pbf = b ? "1" : "0";
            out[b] = kernel_split("0", "1", cases[c].v3, cases[c].B, cases[c].T, cases[c].nsp);
        }
        ring_tma = "0", ring_mc = "0", ring_qreg = "0", ring_hq = 64, ring_pbf = "0";
        const size_t nd = expect_forms_agree(out[1], out[0], (size_t)cases[c].B * 64, 5e-3, 5e-3, "  MLA_PART_BF16 1 against 0 (MLA_TMA %s, "
                                             "MLA_MC %s, MLA_QREG %s): %d x 64 heads, T %d, %d splits", cases[c].tma, cases[c].mc,
                                             cases[c].qreg, cases[c].B, cases[c].T, cases[c].nsp);
        assert_true(nd > 0); /* (the bf16 path taken) */
        free(out[0]);
    }
}

/* The consumers' ping-pong (MLA_PP 1: warpgroup 0 takes S and P of a pair's first block, warpgroup 1 of its
 * second, S1 queued behind S0) against the chunk ring (MLA_PP 0): the same S, the same running max and P
 * and the same order of O's products, only the rows' sums kept in two shares (one per warpgroup, added at
 * the end), so within 1e-5 a row (relative L2) on the emulated device, where only that rounding differs,
 * and 1e-3 on a GPU. By TMA (the executor's default) and by cp.async (q with the first block's chunks,
 * which warpgroup 1 waits for too); one split over the keys (kernel_ring, itself against the
 * double-precision reference): 1 key (a pair of one partial block), 128 (one pair, no refill), 129 (a
 * pair and a block of one key), 330 (three pairs, each stage refilled twice, the last block partial),
 * 200 in 24 tiles by TMA (the emulator starves each producer warp on some block; the cp.async
 * producer's starvation is the chunk ring's, which MLA_PP does not change), 330 at MLA_LEAN 6 and 2; the
 * splits merged by the combine (kernel_split): 330 keys in 3 splits of one pair, 130 in 4 (one block
 * each, the last split empty). And MLA_PP 2 (each warpgroup's P V of its own block with P from registers)
 * against 1 on the cases marked two (one tile: the 24-tile case's starvation is the producer's, which 2
 * does not change): the same bf16 P in the same order, so bit for bit on the emulated device (1e-3 a row
 * on a GPU); and there MLA_PP 1 with q's rope chunk in each consumer's registers
 * (MLA_QREG 1) against 1 without, bit for bit likewise. */
static void test_mla_ping_pong(void **state) {
    (void)state;
    static const struct { const char *tma, *lean; int B, T, nsp; bool two; } cases[] = { /* on a GPU: 3, 8 */
        {"1", "5", 1, 1, 1, false},   {"1", "5", 1, 128, 1, false}, {"1", "5", 1, 129, 1, false}, {"1", "5", 1, 330, 1, true},
        {"1", "5", 24, 200, 1, false}, {"1", "6", 1, 330, 1, false}, {"0", "5", 1, 330, 1, false}, {"0", "2", 1, 129, 1, true},
        {"1", "5", 2, 330, 3, true}, {"0", "5", 2, 130, 4, false}};
    static const char *const pps[3] = {"0", "1", "2"};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        if (!emu_dev && c != 3 && c != 8) continue;
        const uint64_t seed = rng;
        float *out[4] = {NULL, NULL, NULL, NULL};
        const int nk = cases[c].two ? 4 : 2; /* MLA_PP 0, 1 and, where two is set, 2 and 1 with MLA_QREG 1 */
        ring_tma = cases[c].tma;
        for (int k = 0; k < nk; k++) {
            rng = seed, ring_pp = pps[k < 3 ? k : 1], ring_qreg = k == 3 ? "1" : "0";
            out[k] = cases[c].nsp == 1 ? kernel_ring("1", "1", "0", cases[c].lean, "1", cases[c].B, cases[c].T)
                                       : kernel_split("0", "1", "1", cases[c].B, cases[c].T, cases[c].nsp);
        }
        ring_tma = "0", ring_pp = "0", ring_qreg = "0";
        const size_t rows = (size_t)cases[c].B * 64;
        if (out[2]) /* MLA_PP 2 (each warpgroup's own P from registers): the same bf16 P, so the same output as 1 */
            expect_forms_agree(out[2], out[1], rows, -1, 1e-3, "  MLA_PP 2 against 1");
        if (out[3]) /* MLA_PP 1 with q's rope chunk from registers (MLA_QREG 1): the same products, so the same output */
            expect_forms_agree(out[3], out[1], rows, -1, 1e-3, "  MLA_PP 1 MLA_QREG 1 against MLA_PP 1");
        expect_forms_agree(out[1], out[0], rows, 1e-5, 1e-3, "  MLA_PP 1 against 0 (MLA_TMA %s, MLA_LEAN %s): %d x 64 heads, T %d, %d split%s",
                           cases[c].tma, cases[c].lean, cases[c].B, cases[c].T, cases[c].nsp, cases[c].nsp == 1 ? "" : "s");
        free(out[0]);
    }
}

/* The switch tests' environment: keep[i] takes a copy of vars[i] (NULL where unset) before they set them;
 * env_restore puts each back (or unsets it) and frees the copies. */
static void env_keep(const char *const *vars, int n, char **keep) {
    for (int i = 0; i < n; i++) keep[i] = getenv(vars[i]) ? strdup(getenv(vars[i])) : NULL;
}

static void env_restore(const char *const *vars, int n, char **keep) {
    for (int i = 0; i < n; i++) {
        if (keep[i]) setenv(vars[i], keep[i], 1);
        else unsetenv(vars[i]);
        free(keep[i]);
    }
}

/* How many times text occurs in the program's module sources (a kernel's instance parameters). */
static int count_text(const CgProgram *p, const char *text) {
    int n = 0;
    for (int m = 0; m < p->nmodules; m++)
        for (const char *t = p->modules[m].source; (t = strstr(t, text)) != NULL; t++) n++;
    return n;
}

/* The model of `heads` heads compiled and generated (wgmma tile) under the DSCC_MLA_* switches as the caller
 * set them (codegen reads them); the diagnostics in *msg, which the caller frees. */
static CgProgram *generate_heads(Arena *a, char **msg, int heads) {
    size_t len = 0;
    FILE *f = open_memstream(msg, &len);
    assert_non_null(f);
    DiagEngine *d = diag_new(a, f);
    const char *src = model(a, heads);
    IrGraph *g = tu_compile_src(a, d, "mla.dsl", src, "shape-infer,fold-constants,dce,cse,dce,fuse");
    CgGenOptions o = {.tune = tu_tune(), .tile = CG_TILE_WGMMA};
    CgProgram *p = cg_generate(a, d, g, &o);
    fclose(f);
    return p;
}

/* DSCC_MLA_* rows for the switch tests (no GPU needed). Each row is a program of `heads` heads generated under
 * the assignments in env (space separated, "DSCC_MLA_V3=3 DSCC_MLA_TMA=": an empty value reads as unset) with
 * every other DSCC_MLA_* switch unset, so that a row is judged on what it names and the defaults, never on the
 * caller's environment. It expects either a codegen error whose message holds err, or a program whose module
 * sources hold text `count` times (below 0: at least -count), whose decode phase runs `threads` threads (0: not
 * asked) and has a tensor map over the KV cache (map 1: one, box 64 rows over rows of 1,152 bytes) or none (0;
 * -1: not asked), and whose combine phase is launched only above kfuse splits (0: not asked). */
typedef struct {
    const char *env;
    int heads;        /* 0: 8 (one tile a batch row) */
    const char *err;  /* NULL: the program generates */
    const char *text; /* NULL: not asked */
    int count, threads, map, kfuse;
} EnvRow;

/* The switches the rows may set: tune.def's DSCC_MLA_* lines. */
enum { MLA_ENV_MAX = 32 };
typedef struct {
    const char *name[MLA_ENV_MAX];
    char *keep[MLA_ENV_MAX];
    int n;
} MlaEnv;

static void mla_env_keep(MlaEnv *e) {
    e->n = 0;
    for (int i = 0; i < tune_count; i++)
        if (!strncmp(tune_table[i].name, "DSCC_MLA_", 9)) {
            assert_true(e->n < MLA_ENV_MAX);
            e->name[e->n++] = tune_table[i].name;
        }
    env_keep(e->name, e->n, e->keep);
}

/* Every DSCC_MLA_* switch unset, then env's assignments set. */
static void mla_env_set(const MlaEnv *e, const char *env) {
    for (int i = 0; i < e->n; i++) unsetenv(e->name[i]);
    char *copy = strdup(env), *save = NULL;
    assert_non_null(copy);
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        assert_non_null(eq);
        *eq = '\0';
        assert_non_null(tune_find(w)); /* (a misspelt switch would test nothing) */
        setenv(w, eq + 1, 1);
    }
    free(copy);
}

/* The phase of p whose function is fn (mla_decode, mla_decode_combine), or NULL. */
static const CgPhase *mla_phase(const CgProgram *p, const char *fn) {
    for (int k = 0; k < p->nkernels; k++)
        for (int ph = 0; ph < p->kernels[k].nphases; ph++)
            if (!strcmp(p->kernels[k].phases[ph].fn, fn)) return &p->kernels[k].phases[ph];
    return NULL;
}

/* One row as EnvRow says, the environment as it was after. */
static void expect_env_rows(const EnvRow *rows, int n) {
    MlaEnv e;
    mla_env_keep(&e);
    for (int i = 0; i < n; i++) {
        const EnvRow *r = &rows[i];
        Arena *a = arena_new();
        char *msg = NULL;
        mla_env_set(&e, r->env);
        CgProgram *p = generate_heads(a, &msg, r->heads ? r->heads : 8);
        fprintf(stderr, "  %s (%d heads): %s\n", *r->env ? r->env : "the defaults", r->heads ? r->heads : 8, p ? "generated" : "refused");
        if (r->err) {
            assert_null(p);
            assert_non_null(strstr(msg, r->err));
        } else {
            assert_non_null(p);
            const CgPhase *ph = mla_phase(p, "mla_decode"), *comb = mla_phase(p, "mla_decode_combine");
            assert_true(ph && comb);
            if (r->kfuse) assert_int_equal(comb->kfuse, r->kfuse);
            if (r->text) {
                const int got = count_text(p, r->text);
                assert_true(r->count < 0 ? got >= -r->count : got == r->count);
            }
            if (r->threads) assert_int_equal(ph->threads, r->threads);
            const CgTmaMaps *t = ph->tmaps;
            if (r->map == 1) assert_true(t && t->n == 1 && t->rows[0] == 0 && t->cols[0] == 1152 && t->box_rows == 64);
            else if (r->map == 0) assert_null(t);
        }
        free(msg);
        arena_free(a);
    }
    env_restore(e.name, e.n, e.keep);
}

/* DSCC_MLA_TMA: 0, 1 and unset generate the program, 1 (with DSCC_MLA_V3 1, 3 or 4) with a tensor map over the KV
 * cache on the decode phase and 0 without; unset (the default) as 1 on those rings and as 0 on the others
 * (DSCC_MLA_V3=0, 2); 1 with DSCC_MLA_V3=0 or 2 is a codegen error naming the variable (another value: tune_check,
 * test_tune). */
static void test_mla_tma_env(void **state) {
    (void)state;
    static const EnvRow rows[] = {
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=1", .map = 0},
        {"DSCC_MLA_TMA=1 DSCC_MLA_V3=1", .map = 1},
        {"DSCC_MLA_TMA=1 DSCC_MLA_V3=", .map = 1},
        {"DSCC_MLA_TMA=1 DSCC_MLA_V3=3", .map = 1},
        {"DSCC_MLA_TMA=1 DSCC_MLA_V3=4", .map = 1},
        {"DSCC_MLA_TMA= DSCC_MLA_V3=", .map = 1},
        {"DSCC_MLA_V3=3", .map = 1},
        {"DSCC_MLA_V3=4", .map = 1},
        {"DSCC_MLA_TMA= DSCC_MLA_V3=0", .map = 0},
        {"DSCC_MLA_V3=2", .map = 0},
        {"DSCC_MLA_TMA=0", .map = 0},
        {"DSCC_MLA_TMA=1 DSCC_MLA_V3=2", .err = "DSCC_MLA_TMA=1 needs", .map = -1},
        {"DSCC_MLA_TMA=1 DSCC_MLA_V3=0", .err = "DSCC_MLA_TMA=1 needs", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_MC: 0 and 1 generate the program; 1 with the keys by TMA (DSCC_MLA_TMA=1 or unset, DSCC_MLA_V3 1 or
 * unset) gives the decode kernel MLA_MC 1 at 128 heads (two tiles a batch row) and 0 at 8 (one tile: no pair);
 * 1 with DSCC_MLA_TMA=0, with DSCC_MLA_V3=3 or with DSCC_MLA_FUSE=1 is a codegen error naming the variable (another
 * value: tune_check). (The instance's parameter: the file's own default is 0.) */
static void test_mla_mc_env(void **state) {
    (void)state;
    static const char *const on = "#define MLA_MC 1\n";
    static const EnvRow rows[] = {
        {"DSCC_MLA_MC=0 DSCC_MLA_TMA=1", 128, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_MC=1 DSCC_MLA_TMA=1", 128, .text = on, .count = -1, .map = -1},
        {"DSCC_MLA_MC=1 DSCC_MLA_TMA=1 DSCC_MLA_V3=1", 8, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_MC=1", 128, .text = on, .count = -1, .map = -1},
        {"DSCC_MLA_MC=1 DSCC_MLA_TMA=0", 128, "DSCC_MLA_MC=1 needs", .map = -1},
        {"DSCC_MLA_MC=1 DSCC_MLA_V3=3", 128, "DSCC_MLA_MC=1 needs", .map = -1},
        {"DSCC_MLA_MC=1 DSCC_MLA_FUSE=1", 128, "DSCC_MLA_MC=1 needs", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_PART_BF16: 0 and 1 generate the program with both MLA kernels' MLA_PART_BF16 that value (the decode
 * kernel's and the combine's; 0 is also the file's default elsewhere); 1 with DSCC_MLA_FUSE=1 is a codegen error
 * naming the variable (another value: tune_check). */
static void test_mla_part_env(void **state) {
    (void)state;
    static const EnvRow rows[] = {
        {"DSCC_MLA_PART_BF16=0 DSCC_MLA_FUSE=0", .text = "#define MLA_PART_BF16 0\n", .count = -2, .map = -1},
        {"DSCC_MLA_PART_BF16=1 DSCC_MLA_FUSE=0", .text = "#define MLA_PART_BF16 1\n", .count = 2, .map = -1},
        {"DSCC_MLA_PART_BF16=1 DSCC_MLA_FUSE=1", .err = "DSCC_MLA_PART_BF16=1 is the combine", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_QREG: 0, 1 and 2 generate the program with that MLA_QREG; 1 or 2 with DSCC_MLA_V3=2, DSCC_MLA_LEAN=1
 * or DSCC_MLA_PREG=1, and any other value, are codegen errors naming the variable. */
static void test_mla_qreg_env(void **state) {
    (void)state;
    static const EnvRow rows[] = {
        {"DSCC_MLA_QREG=0", .text = "#define MLA_QREG 0\n", .count = -1, .map = -1},
        {"DSCC_MLA_QREG=1", .text = "#define MLA_QREG 1\n", .count = -1, .map = -1},
        {"DSCC_MLA_QREG=2 DSCC_MLA_V3=3 DSCC_MLA_LEAN=6", .text = "#define MLA_QREG 2\n", .count = -1, .map = -1},
        {"DSCC_MLA_QREG=3", .err = "DSCC_MLA_QREG must be 0", .map = -1},
        {"DSCC_MLA_QREG=1 DSCC_MLA_V3=2", .err = "DSCC_MLA_QREG=1 or 2 needs", .map = -1},
        {"DSCC_MLA_QREG=2 DSCC_MLA_LEAN=1", .err = "DSCC_MLA_QREG=1 or 2 needs", .map = -1},
        {"DSCC_MLA_QREG=1 DSCC_MLA_PREG=1", .err = "DSCC_MLA_QREG=1 or 2 needs", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_PP: 0, 1 and 2 generate the program (MLA_PP as set in the decode kernel's parameters), another value
 * is a codegen error naming the variable, and 1 or 2 beside a form it does not take (DSCC_MLA_V3=3,
 * DSCC_MLA_QREG=2, DSCC_MLA_QREG=1 with 2, DSCC_MLA_LEAN=1) another; 1 takes DSCC_MLA_QREG=1. */
static void test_mla_pp_env(void **state) {
    (void)state;
    static const EnvRow rows[] = {
        {"DSCC_MLA_PP=0", .text = "#define MLA_PP 0\n", .count = -1, .map = -1},
        {"DSCC_MLA_PP=1", .text = "#define MLA_PP 1\n", .count = -1, .map = -1},
        {"DSCC_MLA_PP=1 DSCC_MLA_V3=1 DSCC_MLA_LEAN=6", .text = "#define MLA_PP 1\n", .count = -1, .map = -1},
        {"DSCC_MLA_PP=2", .text = "#define MLA_PP 2\n", .count = -1, .map = -1},
        {"DSCC_MLA_PP=1 DSCC_MLA_QREG=1", .text = "#define MLA_PP 1\n", .count = -1, .map = -1},
        {"DSCC_MLA_PP=3", .err = "DSCC_MLA_PP must be 0", .map = -1},
        {"DSCC_MLA_PP=1 DSCC_MLA_V3=3", .err = "DSCC_MLA_PP=1 or 2 needs", .map = -1},
        {"DSCC_MLA_PP=2 DSCC_MLA_QREG=1", .err = "DSCC_MLA_PP=1 or 2 needs", .map = -1},
        {"DSCC_MLA_PP=1 DSCC_MLA_QREG=2", .err = "DSCC_MLA_PP=1 or 2 needs", .map = -1},
        {"DSCC_MLA_PP=1 DSCC_MLA_LEAN=1", .err = "DSCC_MLA_PP=1 or 2 needs", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_V3: 0 to 4 generate the program (by cp.async: TMA refuses 0 and 2), anything else is a codegen error
 * naming the variable and its values; with 3 and 4 the decode phase runs 256 threads (no producer), else 384. */
static void test_mla_v3_env(void **state) {
    (void)state;
    static const EnvRow rows[] = {
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=0", .threads = 384, .map = 0},
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=1", .threads = 384, .map = 0},
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=2", .threads = 384, .map = 0},
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=3", .threads = 256, .map = 0},
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=4", .threads = 256, .map = 0},
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=5", .err = "DSCC_MLA_V3 must be 0", .map = -1},
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=12", .err = "DSCC_MLA_V3 must be 0", .map = -1},
        {"DSCC_MLA_TMA=0 DSCC_MLA_V3=x", .err = "DSCC_MLA_V3 must be 0", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* A tile's two splits as a cluster of 2 CTAs merging through distributed shared memory (MLA_DSM 1: no parts, no
 * combine launch) against the same splits merged by the combine kernel (0), from the same inputs: the combine's
 * order and arithmetic, so bit for bit on the emulated device (1e-3 a row on a GPU). The chunk ring by cp.async
 * and by TMA, the seesaw (the rows' sums in two shares) and the ping-pong; 330 keys (six blocks: 3 a split), 64 (one
 * block: the second split has no keys, its weight none), 200 keys in 12 tiles (24 blocks: the emulator
 * starves each producer warp on some block); and 3 splits, where MLA_DSM's block order (batch row, tile, split) still
 * writes parts for the combine. Where the ring has its mbarriers (MLA_V3 1, 2) also the halves pushed (MLA_XPUSH 1)
 * against pulled, and the q tile given free at the split's last S (MLA_XPUSH 2) against after its loop (1): the same
 * arithmetic, so the same bits on a GPU too. */
static void test_mla_dsm(void **state) {
    (void)state;
    static const struct { const char *v3, *tma, *pp; int B, T, nsp; } cases[] = { /* on a GPU: 0, 3 */
        {"1", "0", "0", 2, 330, 2}, {"1", "1", "0", 1, 64, 2}, {"2", "0", "0", 1, 330, 2}, {"1", "1", "0", 12, 200, 2},
        {"1", "1", "1", 1, 330, 2}, {"1", "1", "0", 2, 330, 3}};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        if (!emu_dev && c != 0 && c != 3) continue;
        const uint64_t seed = rng;
        float *out[4];
        ring_tma = cases[c].tma, ring_pp = cases[c].pp;
        for (int k = 0; k < 4; k++) {
            rng = seed, ring_dsm = k ? "1" : "0", ring_xpush = k == 2 ? "1" : k == 3 ? "2" : "0";
            out[k] = kernel_split("0", "1", cases[c].v3, cases[c].B, cases[c].T, cases[c].nsp);
        }
        ring_tma = "0", ring_pp = "0", ring_dsm = "0", ring_xpush = "0";
        expect_forms_agree(out[3], out[2], (size_t)cases[c].B * 64, -1, 0.0, "  MLA_XPUSH 2 against 1 (MLA_DSM 1, MLA_V3 %s, MLA_TMA %s, MLA_PP %s): "
                           "%d x 64 heads, T %d, %d splits", cases[c].v3, cases[c].tma, cases[c].pp, cases[c].B, cases[c].T, cases[c].nsp);
        expect_forms_agree(out[2], out[1], (size_t)cases[c].B * 64, -1, 0.0, "  MLA_XPUSH 1 against 0 (MLA_DSM 1, MLA_V3 %s, MLA_TMA %s, MLA_PP %s): "
                           "%d x 64 heads, T %d, %d splits", cases[c].v3, cases[c].tma, cases[c].pp, cases[c].B, cases[c].T, cases[c].nsp);
        expect_forms_agree(out[1], out[0], (size_t)cases[c].B * 64, -1, 1e-3, "  MLA_DSM 1 against 0 (MLA_V3 %s, MLA_TMA %s, MLA_PP %s): %d x 64 "
                           "heads, T %d, %d splits", cases[c].v3, cases[c].tma, cases[c].pp, cases[c].B, cases[c].T, cases[c].nsp);
        free(out[0]);
    }
}

/* The consumers without their proxy fence after each wait for keys (MLA_AFENCE 0, keys by TMA on the producer's
 * ring) and the boxes of keys under an evict-first L2 policy (MLA_L2HINT 1) against the defaults (1, 0): neither
 * changes arithmetic, so the same bits on the emulated device (which runs the fence as nothing and ignores the
 * hint: there the test checks each form builds and runs) and on a GPU, where a read that the fence's absence let
 * overtake a copy would change values (bound 0: every row exact). One split (kernel_ring): 1 key (the only block
 * partial, with q, both by the producer's cp.async), 330 (four refills, the last partial), 200 keys in 24 tiles;
 * two splits (kernel_split): the ping-pong (MLA_PP 1, 2), the DSM merge, both. */
static void test_mla_afence(void **state) {
    (void)state;
    static const struct { const char *pp, *dsm, *afence, *hint; int B, T, nsp; } cases[] = { /* on a GPU: all */
        {"0", "0", "0", "0", 1, 1, 1},    {"0", "0", "0", "0", 1, 330, 1},  {"0", "0", "0", "0", 24, 200, 1}, {"1", "0", "0", "0", 1, 330, 2},
        {"2", "0", "0", "0", 1, 330, 2},  {"0", "1", "0", "0", 12, 200, 2}, {"1", "1", "0", "0", 2, 330, 2},  {"0", "0", "1", "1", 1, 330, 1},
        {"0", "1", "0", "1", 12, 200, 2}, {"1", "1", "0", "1", 2, 330, 2}};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        const uint64_t seed = rng;
        float *out[2];
        ring_tma = "1", ring_pp = cases[c].pp, ring_dsm = cases[c].dsm;
        for (int k = 0; k < 2; k++) {
            rng = seed, ring_afence = k ? cases[c].afence : "1", ring_l2hint = k ? cases[c].hint : "0";
            out[k] = cases[c].nsp == 1 ? kernel_ring("1", "1", "0", "5", "1", cases[c].B, cases[c].T)
                                       : kernel_split("0", "1", "1", cases[c].B, cases[c].T, cases[c].nsp);
        }
        ring_tma = "0", ring_pp = "0", ring_dsm = "0", ring_afence = "1", ring_l2hint = "0";
        expect_forms_agree(out[1], out[0], (size_t)cases[c].B * 64, -1, 0.0, "  MLA_AFENCE %s MLA_L2HINT %s against 1 0 (MLA_TMA 1, MLA_PP %s, "
                           "MLA_DSM %s): %d x 64 heads, T %d, %d split%s", cases[c].afence, cases[c].hint, cases[c].pp, cases[c].dsm,
                           cases[c].B, cases[c].T, cases[c].nsp, cases[c].nsp == 1 ? "" : "s");
        free(out[0]);
    }
}

/* DSCC_MLA_AFENCE: unset or 0 with the keys by TMA on the producer's ring (the defaults, or with DSCC_MLA_PP=1), the
 * decode kernel's MLA_AFENCE 0; 1, or unset where the keys come by cp.async (DSCC_MLA_TMA=0) or with no producer
 * (DSCC_MLA_V3=3), MLA_AFENCE 1; 0 with DSCC_MLA_TMA=0 or DSCC_MLA_V3=3 is a codegen error naming the variable
 * (another value: tune_check). */
static void test_mla_afence_env(void **state) {
    (void)state;
    static const char *const off = "#define MLA_AFENCE 0\n";
    static const EnvRow rows[] = {
        {"", 128, .text = off, .count = 1, .map = 1},
        {"", 8, .text = off, .count = 1, .map = 1},
        {"DSCC_MLA_AFENCE=1", 8, .text = off, .count = 0, .map = 1},
        {"DSCC_MLA_AFENCE=1", 128, .text = off, .count = 0, .map = 1},
        {"DSCC_MLA_TMA=0", 128, .text = off, .count = 0, .map = 0},
        {"DSCC_MLA_V3=3", 128, .text = off, .count = 0, .map = 1},
        {"DSCC_MLA_AFENCE=0", 128, .text = off, .count = 1, .map = 1},
        {"DSCC_MLA_AFENCE=0 DSCC_MLA_PP=1", 8, .text = off, .count = 1, .map = 1},
        {"DSCC_MLA_AFENCE=0 DSCC_MLA_TMA=0", 128, "DSCC_MLA_AFENCE=0 needs", .map = -1},
        {"DSCC_MLA_AFENCE=0 DSCC_MLA_V3=3", 128, "DSCC_MLA_AFENCE=0 needs", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_L2HINT: unset or 1 with the keys by TMA on the producer's ring (not DSCC_MLA_MC=1), the decode kernel's
 * MLA_L2HINT 1; 0, or unset with DSCC_MLA_MC=1 or the keys by cp.async, MLA_L2HINT 0; 1 with DSCC_MLA_TMA=0,
 * DSCC_MLA_V3=3 or DSCC_MLA_MC=1 is a codegen error naming the variable. */
static void test_mla_l2hint_env(void **state) {
    (void)state;
    static const char *const on = "#define MLA_L2HINT 1\n";
    static const EnvRow rows[] = {
        {"", 128, .text = on, .count = 1, .map = 1},
        {"DSCC_MLA_L2HINT=0", 128, .text = on, .count = 0, .map = 1},
        {"DSCC_MLA_L2HINT=1", 128, .text = on, .count = 1, .map = 1},
        {"DSCC_MLA_MC=1", 128, .text = on, .count = 0, .map = 1},
        {"DSCC_MLA_TMA=0", 128, .text = on, .count = 0, .map = 0},
        {"DSCC_MLA_L2HINT=1 DSCC_MLA_TMA=0", 128, "DSCC_MLA_L2HINT=1 needs", .map = -1},
        {"DSCC_MLA_L2HINT=1 DSCC_MLA_V3=3", 128, "DSCC_MLA_L2HINT=1 needs", .map = -1},
        {"DSCC_MLA_L2HINT=1 DSCC_MLA_MC=1", 128, "DSCC_MLA_L2HINT=1 needs", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* The executor's MLA steps in the forms the defaults (the keys by TMA, test_mla_long_context and
 * test_mla_128_heads) leave out, read at codegen: DSCC_MLA_V3=3 (with DSCC_MLA_PART_BF16=1: the splits'
 * parts as bf16) and =4 by cp.async (DSCC_MLA_TMA=0), the chunk ring by cp.async (=1, TMA=0), =4 by TMA
 * (through the map the runtime makes over the KV cache at plan time): causal, q in two tensors (the
 * kernel's second q slot), rows past the step's in a tile (8 heads), 1 to 16 positions a step, contexts
 * 1 .. 67 (a whole block at 64, then a partial one) and one or several splits, against the CPU executor
 * as test_mla_long_context; with =4 and the cp.async chunk ring also 128 heads (two tiles a batch row, a
 * step of two positions); with DSCC_MLA_MC=1 (the two tiles a cluster, the keys multicast) and
 * DSCC_MLA_QREG=2 (q's last two chunks from registers) 128 heads alone (8 heads take no clusters); with
 * DSCC_MLA_PP=1 (the consumers' ping-pong, keys by TMA) and =2 (by cp.async) 8 heads (=1 with DSCC_MLA_QREG=1:
 * the kernel alone, test_mla_ping_pong, and the codegen, test_mla_pp_env);
 * with DSCC_MLA_DSM=1 (a tile's two splits a cluster, merged in distributed shared memory, no combine; the default
 * since the eleventh session, but test_mla_128_heads' short contexts take one split: no merge) 128 heads through
 * steps of 16 to contexts 65 and 66 (two splits). Each form's switches alone (mla_env_set). */
static void test_mla_env_steps(void **state) {
    (void)state;
    static const int steps[] = {1, 16, 16, 16, 14, 1, 1, 2};
    static const int steps128[] = {1, 2, 1};
    static const int long128[] = {16, 16, 16, 16, 1, 1}; /* contexts 65, 66 at B 1: two splits of one block */
    static const struct { const char *env; bool h8; int h128; } forms[] = { /* h128 1: steps128, 2: long128 */
        {"DSCC_MLA_V3=3 DSCC_MLA_TMA=0 DSCC_MLA_PART_BF16=1", true, 0},
        {"DSCC_MLA_V3=4 DSCC_MLA_TMA=0", true, 1},
        {"DSCC_MLA_V3=1 DSCC_MLA_TMA=0", true, 1},
        {"DSCC_MLA_V3=4 DSCC_MLA_TMA=1", true, 0},
        {"DSCC_MLA_MC=1 DSCC_MLA_QREG=2", false, 1}, /* (8 heads take no clusters) */
        {"DSCC_MLA_PP=1", true, 0},
        {"DSCC_MLA_PP=2 DSCC_MLA_TMA=0", true, 0},
        {"DSCC_MLA_DSM=1", false, 2}, /* (8 heads take no clusters) */
        {"DSCC_MLA_OSTAGE=0", true, 2}, /* each thread's pairs straight out: one split, several, the DSM merge */
        {"DSCC_MLA_XPUSH=0", false, 2}}; /* the DSM merge's halves read from the other CTA (8 heads take no clusters) */
    if (!emu_dev) { /* (on a GPU test_gpu_ops runs the executor with these set: tests/gpu/rounds.sh) */
        printf("emulated device only: the executor with DSCC_MLA_V3=3 and 4, DSCC_MLA_TMA=0 and 1, DSCC_MLA_MC=1\n");
        return;
    }
    MlaEnv e;
    mla_env_keep(&e);
    for (int v = 0; v < (int)(sizeof forms / sizeof *forms); v++) {
        mla_env_set(&e, forms[v].env);
        fprintf(stderr, "  %s:\n", forms[v].env);
        double worst = 0, worst128 = 0;
        if (forms[v].h8) assert_int_equal(run_steps(8, 2, steps, (int)(sizeof steps / sizeof *steps), &worst), 3); /* one split and several */
        if (forms[v].h128 == 1) run_steps(128, 2, steps128, 3, &worst128); /* 128 heads (two tiles a batch row) */
        if (forms[v].h128 == 2) assert_int_equal(run_steps(128, 1, long128, (int)(sizeof long128 / sizeof *long128), &worst128), 3);
        assert_true(worst <= 2e-2 && worst128 <= 2e-2);
    }
    env_restore(e.name, e.n, e.keep);
}

/* DSCC_MLA_DSM: 0 and 1 generate the program; 1 at 128 heads (a batch row's tiles in pairs: the grid even) gives the
 * decode kernel MLA_DSM 1 and the combine's launch rule "above 2 splits" (two merge in the clusters), at 8 heads
 * neither; unset (the default since the eleventh session) as 1; DSCC_MLA_MC=1 or DSCC_MLA_FUSE=1 alone generates
 * with MLA_DSM 0 (the default gives way), 1 beside either is a codegen error naming the variable (another value:
 * tune_check). */
static void test_mla_dsm_env(void **state) {
    (void)state;
    static const char *const on = "#define MLA_DSM 1\n";
    static const EnvRow rows[] = {
        {"DSCC_MLA_DSM=0", 128, .text = on, .count = 0, .map = -1, .kfuse = 1},
        {"DSCC_MLA_DSM=1", 128, .text = on, .count = 1, .map = -1, .kfuse = 2},
        {"DSCC_MLA_DSM=1 DSCC_MLA_PP=1 DSCC_MLA_TMA=0", 128, .text = on, .count = 1, .map = 0, .kfuse = 2},
        {"DSCC_MLA_DSM=1", 8, .text = on, .count = 0, .map = -1, .kfuse = 1},
        {"", 128, .text = on, .count = 1, .map = -1, .kfuse = 2},
        {"", 8, .text = on, .count = 0, .map = -1, .kfuse = 1},
        {"DSCC_MLA_MC=1", 128, .text = on, .count = 0, .map = -1, .kfuse = 1},
        {"DSCC_MLA_FUSE=1", 128, .text = on, .count = 0, .map = -1, .kfuse = 4}, /* (gen_attn.c's MLA_FUSE_MAX) */
        {"DSCC_MLA_DSM=1 DSCC_MLA_MC=1", 128, "DSCC_MLA_DSM=1 makes clusters", .map = -1},
        {"DSCC_MLA_DSM=1 DSCC_MLA_FUSE=1", 128, "DSCC_MLA_DSM=1 makes clusters", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_OSTAGE: unset or 1 where the attention's output is bf16 (these models') and not DSCC_MLA_FUSE=1 gives the
 * decode kernel MLA_OSTAGE 1 (its output rows through shared memory); 0, or unset beside DSCC_MLA_FUSE=1, 0; 1 beside
 * DSCC_MLA_FUSE=1 is a codegen error naming the variable (another value: tune_check). */
static void test_mla_ostage_env(void **state) {
    (void)state;
    static const char *const on = "#define MLA_OSTAGE 1\n";
    static const EnvRow rows[] = {
        {"", 128, .text = on, .count = 1, .map = -1},
        {"", 8, .text = on, .count = 1, .map = -1},
        {"DSCC_MLA_OSTAGE=0", 128, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_OSTAGE=1 DSCC_MLA_TMA=0", 8, .text = on, .count = 1, .map = 0},
        {"DSCC_MLA_FUSE=1", 128, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_OSTAGE=1 DSCC_MLA_FUSE=1", 128, "DSCC_MLA_OSTAGE=1 stages", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* DSCC_MLA_XPUSH: unset or 1 where the DSM merge applies (128 heads, the defaults) gives the decode kernel MLA_XPUSH 1
 * (its halves pushed into the other CTA); 0, or unset where there is no DSM merge (8 heads, DSCC_MLA_DSM=0,
 * DSCC_MLA_MC=1) or no mbarriers (DSCC_MLA_V3=0), 0; 1 beside DSCC_MLA_DSM=0, DSCC_MLA_MC=1, DSCC_MLA_FUSE=1 or
 * DSCC_MLA_V3=0 is a codegen error naming the variable (another value: tune_check). */
static void test_mla_xpush_env(void **state) {
    (void)state;
    static const char *const on = "#define MLA_XPUSH 1\n";
    static const EnvRow rows[] = {
        {"", 128, .text = on, .count = 1, .map = -1},
        {"", 8, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_XPUSH=0", 128, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_XPUSH=1 DSCC_MLA_TMA=0", 128, .text = on, .count = 1, .map = 0},
        {"DSCC_MLA_DSM=0", 128, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_MC=1", 128, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_V3=0 DSCC_MLA_TMA=0 DSCC_MLA_DSM=1", 128, .text = on, .count = 0, .map = -1},
        {"DSCC_MLA_XPUSH=1 DSCC_MLA_DSM=0", 128, "DSCC_MLA_XPUSH=1 pushes", .map = -1},
        {"DSCC_MLA_XPUSH=1 DSCC_MLA_MC=1", 128, "DSCC_MLA_XPUSH=1 pushes", .map = -1},
        {"DSCC_MLA_XPUSH=1 DSCC_MLA_FUSE=1", 128, "DSCC_MLA_XPUSH=1 pushes", .map = -1},
        {"DSCC_MLA_XPUSH=1 DSCC_MLA_V3=0 DSCC_MLA_TMA=0", 128, "DSCC_MLA_XPUSH=1 pushes", .map = -1}};
    expect_env_rows(rows, (int)(sizeof rows / sizeof *rows));
}

/* gen.h's split rule (no GPU needed): one wave of one block per SM where the tiles allow, no empty split. */
static void test_mla_splits_rule(void **state) {
    (void)state;
    assert_int_equal(cg_mla_splits(1, 32, 128, 4097), 2);   /* 64 tiles: 128 blocks, one wave */
    assert_int_equal(cg_mla_splits(1, 64, 128, 4097), 1);   /* 128 tiles */
    assert_int_equal(cg_mla_splits(1, 128, 128, 4097), 1);  /* 256 tiles: two waves either way */
    assert_int_equal(cg_mla_splits(1, 1, 128, 4097), 33);   /* 65 key blocks in splits of 2 */
    assert_int_equal(cg_mla_splits(1, 4, 128, 1), 1);       /* one key block */
    assert_int_equal(cg_mla_splits(1, 3, 8, 200), 4);
    for (long long B = 1; B <= 160; B += 7)
        for (long long T = 1; T <= 9000; T += 997) {
            long long n = cg_mla_splits(1, B, 128, T), nkb = (T + 63) / 64, per = (nkb + n - 1) / n;
            assert_true(n >= 1 && n <= 64 && (n - 1) * per < nkb && n * B * 128 <= 33792);
        }
}

int main(void) {
    const char *only = getenv("DSCC_TEST_FILTER"); /* e.g. '*multicast*': the matching tests alone */
    if (only && *only) cmocka_set_test_filter(only);
    const char *seed = getenv("DSCC_TEST_SEED");
    rng = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
    const char *em = getenv("DSCC_EMULATED");
    emu_dev = em && *em && strcmp(em, "0") != 0;
    fprintf(stderr, "inputs from seed %llu (DSCC_TEST_SEED=%llu reruns them)\n", (unsigned long long)rng, (unsigned long long)rng);
    const struct CMUnitTest rule[] = {cmocka_unit_test(test_mla_splits_rule), cmocka_unit_test(test_mla_v3_env),
                                      cmocka_unit_test(test_mla_tma_env), cmocka_unit_test(test_mla_mc_env),
                                      cmocka_unit_test(test_mla_qreg_env), cmocka_unit_test(test_mla_part_env),
                                      cmocka_unit_test(test_mla_pp_env), cmocka_unit_test(test_mla_dsm_env),
                                      cmocka_unit_test(test_mla_afence_env), cmocka_unit_test(test_mla_l2hint_env),
                                      cmocka_unit_test(test_mla_ostage_env), cmocka_unit_test(test_mla_xpush_env)};
    if (cmocka_run_group_tests(rule, NULL, NULL)) return 1;
    if (!tu_hopper()) return 77;
    const char *tile = getenv("DSCC_GEMM_TILE");
    if (tile && strcmp(tile, "mma") == 0) {
        printf("skipped: DSCC_GEMM_TILE=mma (the MLA decode kernel runs on the wgmma tile)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mla_kernel_ring), cmocka_unit_test(test_mla_lean_exact),
                                       cmocka_unit_test(test_mla_fused_combine), cmocka_unit_test(test_mla_p_registers),
                                       cmocka_unit_test(test_mla_no_producer), cmocka_unit_test(test_mla_tma),
                                       cmocka_unit_test(test_mla_multicast), cmocka_unit_test(test_mla_qreg),
                                       cmocka_unit_test(test_mla_part_bf16), cmocka_unit_test(test_mla_ping_pong),
                                       cmocka_unit_test(test_mla_dsm),
                                       cmocka_unit_test(test_mla_afence),
                                       cmocka_unit_test(test_mla_env_steps),
                                       cmocka_unit_test(test_mla_128_heads),
                                       cmocka_unit_test(test_mla_long_context)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
