// gemm_skinny_bulk.cuh — DeepSeek's block-scaled FP8 linear at M <= 8 rows
// (decode), y[M, N] = x[M, K] . w[N, K]^T with E4M3 codes, one f32 scale per
// 1x128 tile of x and per 128x128 block of w, its weights streamed into
// shared memory by 1-D bulk copies (Hopper's non-tensor TMA). At such M the
// GEMM only reads its weights, and its speed is set by the bytes each SM
// keeps in flight (Little's law: ~3 TB/s x 1.5-2 us under load, 35-50 KB an
// SM at the least). The register forms (gemm_skinny.cuh) hold 32-64 KB an SM
// in registers; here the copies hold no register at all:
//
// * 288 threads: 8 consumer warps and a producer warp whose lane 0 alone
//   issues copies. A column group is 8 * SK_RB weight rows; a stage is one
//   chunk of SK_KC = 1024 * SK_U bytes of K of one group: one bulk copy per
//   weight row (8 * SK_RB of them) and one per row of x (M of them: x rides
//   the ring with the weights, read from L2; a stage has room for SK_MROWS,
//   so the instance for M = 1 has the deeper ring), into a ring of SK_STAGES
//   stages with a "full" mbarrier (expect_tx: the stage's bytes) and an
//   "empty" one (one arrival per consumer warp) per slot. Rows are padded
//   to SK_KC + 64 bytes: the 8 rows g = lane / 4 a warp reads at once fall
//   on distinct banks.
// * A persistent grid: SK_GRID CTAs (clusters of SK_SPLIT), cluster c owns
//   the column groups c, c + SK_GRID / SK_SPLIT, ...; with SK_SPLIT > 1
//   (few groups: every SM still streams) each cluster owns one group and
//   CTA rank r the r-th of SK_SPLIT equal parts of K (whole K blocks), the
//   parts summed through distributed shared memory in rank order.
// * Consumer warp w multiplies the K blocks w, w + 8, ... of each stage
//   (SK_U of them) with mma.sync m16n8k32 E4M3 (m16n8k16 BF16 with
//   SK_BF16), weights as the 8-column operand B, x's row g as A's row g (A's
//   rows 8..15 zeros), in gemm_skinny.cuh's K order (a thread's 16 bytes at
//   K offset 16 (lane % 4) feed both B registers; x is read at the same
//   offsets). Each K block is promoted to the f32 accumulator with both
//   scales, read from shared memory: the weight scales of every group of
//   the CTA loaded there at the start (before DSCC_PDL_WAIT(): they are
//   weights), x's after the wait.
// * A group's end: the warps' sums into one of two buffers (by group
//   parity, one named barrier of the 256 consumers a group), added in warp
//   order and stored: the same bits every run, no atomics, no second pass.
//   Bytes past the chunk's end in a stage are stale (the ring is reused):
//   the consumers zero both operands there.
//
// Parameters (#define; a module defines them all, the defaults below and
// gemm_skinny_common.cuh's stand-ins make the file compile on its own):
//   DSCC_ENTRY        the entry point's name
//   SK_M              rows of x and y, an expression over the Args `a` (<= SK_MROWS)
//   SK_MROWS          the most rows the instance runs at: 1 or 8 (the rows of x a stage holds)
//   SK_N, SK_K        output columns and K (K % 16 == 0: rows start 16-aligned, as bulk copies need)
//   SK_RB             8-row weight groups a column group: 1, 2 or 4
//   SK_U              K blocks a warp a stage (1..4): a stage spans 1024 SK_U bytes of K
//   SK_STAGES         stages of the ring (2..16)
//   SK_GRID           CTAs (a multiple of SK_SPLIT; with SK_SPLIT > 1: the groups x SK_SPLIT)
//   SK_SPLIT          CTAs of a cluster that split K (1..8)
//   SK_PER            the most column groups a CTA owns (the weight-scale table's rows)
//   SK_X, SK_W        x's and w's codes (const unsigned char *, over `a`)
//   SK_XS(m, kb)      x's f32 scale of row m, K block kb
//   SK_WS(i)          w's f32 scales [ceil(N/128)][ceil(K/128)]
//   SK_STORE(i, v)    stores y[i] (f32 v) in y's dtype
//   SK_BF16           1: x and w are BF16 (a linear's): K blocks of 128 bytes (64 values), SK_XS and SK_WS 1
// Dynamic shared memory: SKB_SMEM bytes (gen_gemm.c's skinny_bulk_smem computes the same sum).
#ifndef SK_X // compiled on its own: the stand-in's K, grid and groups a CTA (the rest in gemm_skinny_common.cuh)
#define SK_K 16384LL
#define SK_GRID 128
#define SK_PER 7
#endif
#include "gemm_skinny_common.cuh"
#include "hopper.cuh"
#ifndef SK_RB
#define SK_RB 1
#endif
#ifndef SK_U
#define SK_U 2
#endif
#ifndef SK_STAGES
#define SK_STAGES 6
#endif
#ifndef SK_SPLIT
#define SK_SPLIT 1
#endif
#ifndef SK_BF16
#define SK_BF16 0
#endif
#ifndef SK_MROWS
#define SK_MROWS 8
#endif
#define SKB_KB (SK_K * (SK_BF16 ? 2 : 1))               // bytes of a row of x and w
#define SKB_NKB ((SKB_KB + 127) / 128)                  // K blocks (of 128 bytes)
#define SKB_KC (1024 * SK_U)                            // bytes of K a stage
#define SKB_P (SKB_KC + 64)                             // bytes of a row of a stage
#define SKB_R (8 * SK_RB)                               // weight rows a group
#define SKB_SB ((SKB_R + SK_MROWS) * SKB_P)             // bytes of a stage: its weight rows, then SK_MROWS rows of x
#define SKB_G ((SK_N + SKB_R - 1) / SKB_R)              // column groups
#define SKB_NCL (SK_GRID / SK_SPLIT)                    // clusters
#define SKB_KS ((SKB_NKB + SK_SPLIT - 1) / SK_SPLIT * 128) // bytes of K a CTA of a cluster (whole K blocks)
#define SKB_NC ((SKB_KS + SKB_KC - 1) / SKB_KC)         // stages a group
#define SKB_RED (2 * 8 * 8 * (SKB_R + 1))               // the warps' sums, two buffers, floats
#define SKB_SMEM (SK_STAGES * SKB_SB + 16 * SK_STAGES + 4 * (SK_PER * SKB_NKB + 8 * SKB_NKB + SKB_RED + 8 * SKB_R))

#define SKB_PASTE2(a, b) a##b
#define SKB_PASTE(a, b) SKB_PASTE2(a, b)
#define SKB_MMA SKB_PASTE(mma_, SKB_PASTE(SKB_MMA_, SK_BF16)) // mma_bf16 or mma_e4m3
#define SKB_MMA_0 e4m3
#define SKB_MMA_1 bf16
#define SKB_ISSUE SKB_PASTE(DSCC_ENTRY, _issue) // one per instance: they read the instance's parameters
#define SKB_STEP SKB_PASTE(DSCC_ENTRY, _step)
#define SKB_END SKB_PASTE(DSCC_ENTRY, _end)

// The producer's copies of stage j (group j / SKB_NC of the CTA, chunk j % SKB_NC) into ring slot j % SK_STAGES:
// wx 1 the weight rows (below N) and the arrival that expects the stage's bytes (x's too), wx 0 x's M rows.
// A chunk past the CTA's part of K (a K split's last CTA) copies nothing: the arrival alone completes it.
__device__ __forceinline__ void SKB_ISSUE(const Args &a, unsigned char *ring, unsigned long long *full, long long j, long long kbeg,
                                          long long kend, bool wx) {
    const long long N = SK_N, K = SKB_KB, M = SK_M, gi = j / SKB_NC;
    const long long n0 = ((long long)blockIdx.x / SK_SPLIT + gi * SKB_NCL) * SKB_R, k0 = kbeg + (j % SKB_NC) * SKB_KC;
    const long long len = k0 < kend ? (kend - k0 < SKB_KC ? kend - k0 : SKB_KC) : 0;
    const int rows = (int)(N - n0 < SKB_R ? N - n0 : SKB_R);
    unsigned char *st = ring + (j % SK_STAGES) * SKB_SB;
    unsigned long long *bar = full + j % SK_STAGES;
    if (wx) {
        hp_mbar_expect_tx(bar, (unsigned)(len * (rows + M)));
        if (len > 0)
            for (int r = 0; r < rows; r++) hp_bulk_g2s(st + r * SKB_P, SK_W + (n0 + r) * K + k0, (unsigned)len, bar);
    } else if (len > 0) {
        for (int m = 0; m < M; m++) hp_bulk_g2s(st + (SKB_R + m) * SKB_P, SK_X + m * K + k0, (unsigned)len, bar);
    }
}

// A group's end: the warps' sums (row g of y, column 8r + 2q + c) into buffer gi & 1, the consumers' barrier, each
// output summed in warp order: stored (SK_SPLIT 1), or kept in sum[m][col] for the cluster's sum
__device__ __forceinline__ void SKB_END(const Args &a, float (&acc)[SK_RB][4], float *red, float *sum, long long gi, int warp, int g, int q) {
    const long long N = SK_N, M = SK_M, n0 = ((long long)blockIdx.x / SK_SPLIT + gi * SKB_NCL) * SKB_R;
    float (*rd)[8][SKB_R + 1] = (float (*)[8][SKB_R + 1])(red + (gi & 1) * 8 * 8 * (SKB_R + 1));
#pragma unroll
    for (int r = 0; r < SK_RB; r++)
#pragma unroll
        for (int c = 0; c < 2; c++) rd[warp][g][r * 8 + q * 2 + c] = acc[r][c], acc[r][c] = 0.0f;
    hp_bar_sync(1, 256); // (a buffer is written again two groups on, after the next group's barrier)
    for (int i = threadIdx.x; i < 8 * SKB_R; i += 256) {
        const int m = i / SKB_R, col = i % SKB_R;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) v += rd[w][m][col];
        if (SK_SPLIT > 1) sum[i] = v;
        else if (m < M && n0 + col < N) SK_STORE(m * N + n0 + col, v);
    }
}

// Consumer step j: waits for the stage, multiplies the warp's K blocks of it into acc, frees the slot (one arrival a
// warp), and at the group's end sums the warps'
__device__ __forceinline__ void SKB_STEP(const Args &a, const unsigned char *ring, unsigned long long *full, unsigned long long *empty,
                                         const float *wst, const float *xst, float *red, float *sum, float (&acc)[SK_RB][4], long long j,
                                         long long kbeg, long long kend, int warp, int lane, int g, int q) {
    const long long M = SK_M, gi = j / SKB_NC, c = j % SKB_NC, k0 = kbeg + c * SKB_KC;
    const unsigned char *st = ring + (j % SK_STAGES) * SKB_SB;
    hp_mbar_wait(full + j % SK_STAGES, (unsigned)((j / SK_STAGES) & 1));
#pragma unroll
    for (int u = 0; u < SK_U; u++) {
        const int lb = warp + 8 * u;
        const long long k = k0 + lb * 128;
        if (k >= kend) break; // warp-uniform
        const long long kb = k / 128;
        const float sc = wst[gi * SKB_NKB + kb] * xst[kb * 8 + g];
        uint4 xv[2], wv[SK_RB][2];
#pragma unroll
        for (int h = 0; h < 2; h++) { // zeros past the chunk (stale bytes of the ring) and past M
            const int o = lb * 128 + h * 64 + q * 16;
            const bool in = k + h * 64 + q * 16 < kend;
            xv[h] = in && g < M ? *(const uint4 *)(st + (SKB_R + g) * SKB_P + o) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int r = 0; r < SK_RB; r++) wv[r][h] = in ? *(const uint4 *)(st + (r * 8 + g) * SKB_P + o) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int r = 0; r < SK_RB; r++) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const unsigned a0[4] = {xv[h].x, 0u, xv[h].y, 0u}, b0[2] = {wv[r][h].x, wv[r][h].y};
                const unsigned a1[4] = {xv[h].z, 0u, xv[h].w, 0u}, b1[2] = {wv[r][h].z, wv[r][h].w};
                SKB_MMA(part, a0, b0);
                SKB_MMA(part, a1, b1);
            }
            acc[r][0] += part[0] * sc;
            acc[r][1] += part[1] * sc;
        }
    }
    __syncwarp();
    if (lane == 0) hp_mbar_arrive(empty + j % SK_STAGES);
    if (c == SKB_NC - 1) SKB_END(a, acc, red, sum, gi, warp, g, q);
}

// (one entry line: the emulator's translator reads it as text)
extern "C" __global__ void __launch_bounds__(288, 1) __cluster_dims__(SK_SPLIT, 1, 1) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(128) unsigned char skb_smem[]; // the ring, the barriers, the scales, the sums
    unsigned char *ring = skb_smem;
    unsigned long long *full = (unsigned long long *)(skb_smem + SK_STAGES * SKB_SB), *empty = full + SK_STAGES;
    float *wst = (float *)(empty + SK_STAGES), *xst = wst + SK_PER * SKB_NKB, *red = xst + 8 * SKB_NKB, *sum = red + SKB_RED;
    const long long M = SK_M, N = SK_N, nkb = SKB_NKB;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const unsigned rank = SK_SPLIT > 1 ? hp_cluster_rank() : 0;
    const long long cl = (long long)blockIdx.x / SK_SPLIT, ng = (SKB_G - cl + SKB_NCL - 1) / SKB_NCL, J = ng * SKB_NC;
    const long long kbeg = rank * (long long)SKB_KS, kend = kbeg + SKB_KS < SKB_KB ? kbeg + SKB_KS : SKB_KB;
    const bool producer = threadIdx.x == 256;
    if (producer) { // the barriers, then the first stages' weights at once (no other thread touches a barrier before
                    // the __syncthreads below)
        for (int s = 0; s < SK_STAGES; s++) hp_mbar_init(full + s, 1), hp_mbar_init(empty + s, 8);
        hp_mbar_fence_init();
        for (long long j = 0; j < J && j < SK_STAGES; j++) SKB_ISSUE(a, ring, full, j, kbeg, kend, true);
    }
    for (long long i = threadIdx.x; i < ng * nkb; i += 288) { // the weight scales of the CTA's groups (weights: before the wait)
        const long long gi = i / nkb, n0 = (cl + gi * SKB_NCL) * SKB_R;
        wst[i] = SK_WS(n0 / 128 * SKB_NKB + i % nkb);
    }
    DSCC_PDL_WAIT(); // x and its scales are the step's: from here on
    if (producer)
        for (long long j = 0; j < J && j < SK_STAGES; j++) SKB_ISSUE(a, ring, full, j, kbeg, kend, false);
    for (long long i = threadIdx.x; i < 8 * nkb; i += 288) xst[i] = i % 8 < M ? SK_XS(i % 8, i / 8) : 0.0f;
    __syncthreads(); // the barriers are initialized, the scale tables written
    if (warp == 8) {
        if (producer)
            for (long long j = SK_STAGES; j < J; j++) {
                hp_mbar_wait(empty + j % SK_STAGES, (unsigned)((j / SK_STAGES - 1) & 1)); // its last use is consumed
                SKB_ISSUE(a, ring, full, j, kbeg, kend, true);
                SKB_ISSUE(a, ring, full, j, kbeg, kend, false);
            }
        __syncwarp();
    } else {
        float acc[SK_RB][4];
#pragma unroll
        for (int r = 0; r < SK_RB; r++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[r][c] = 0.0f;
        for (long long j = 0; j < J; j++) SKB_STEP(a, ring, full, empty, wst, xst, red, sum, acc, j, kbeg, kend, warp, lane, g, q);
    }
    DSCC_PDL_LAUNCH_DEPENDENTS(); // every copy of the CTA has landed: the next kernel may start its prologue
    if (SK_SPLIT > 1) { // one group a cluster: its CTAs' parts of K, summed in rank order (the same bits every run)
        __syncwarp();   // (barrier.cluster's .aligned: the warp converged)
        hp_cluster_sync();
        const long long n0 = cl * SKB_R;
        for (int i = rank + SK_SPLIT * threadIdx.x; i < 8 * SKB_R; i += SK_SPLIT * 288) {
            const int m = i / SKB_R, col = i % SKB_R;
            if (m >= M || n0 + col >= N) continue;
            const float v = hp_cluster_sum<SK_SPLIT>(sum + i);
            SK_STORE(m * N + n0 + col, v);
        }
        hp_cluster_sync(); // no CTA leaves while another reads its shared memory
    }
}
#undef SKB_KB
#undef SKB_NKB
#undef SKB_KC
#undef SKB_P
#undef SKB_R
#undef SKB_SB
#undef SKB_G
#undef SKB_NCL
#undef SKB_KS
#undef SKB_NC
#undef SKB_RED
#undef SKB_SMEM
#undef SKB_PASTE
#undef SKB_PASTE2
#undef SKB_MMA
#undef SKB_MMA_0
#undef SKB_MMA_1
#undef SKB_ISSUE
#undef SKB_STEP
#undef SKB_END
#define SK_COMMON_END // (the parameters' #undefs)
#include "gemm_skinny_common.cuh"
