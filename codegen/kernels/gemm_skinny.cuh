// gemm_skinny.cuh — DeepSeek's block-scaled FP8 linear for a few rows
// (decode: M <= 32), y[M, N] = x[M, K] . w[N, K]^T with E4M3 codes, one f32
// scale per 1x128 tile of x and per 128x128 block of w. At such M the GEMM
// only streams its weights, so the kernel is built around that stream
// (Little's law: at 4.25 TB/s and 0.7-1 us from HBM, 3-4 MB in flight on
// the chip, ~24-48 KB an SM, from every SM):
//
// * A cluster of SK_SPLIT CTAs owns 8 * SK_RB output columns (weight rows);
//   its 8 * SK_SPLIT warps take the 128-wide K blocks in turn (warp w of
//   CTA c: kb = SK_SPLIT w + c, + 8 SK_SPLIT, ...) and each warp its SK_RB
//   groups of 8 weight rows. Narrow weights (kv_a's 576 rows: 72 column
//   blocks) thus still put CTAs on every SM.
// * A round of a warp issues all its loads before its first product: the
//   weights of SK_U K blocks in 16-byte loads that bypass L1 (predicated
//   ld.global.nc.L1::no_allocate: no branch, zeros past N or K), their
//   scales, then x's fragments and scales: a round waits for one latency,
//   not one per K block. SK_U * SK_RB KB in flight a warp.
// * The products run on the tensor cores as mma.sync m16n8k32 E4M3 with
//   the weights as the 8-column operand B and x as the 16-row operand A.
//   The instance for M <= 8 (SK_MROWS 8) holds one row of x a thread (A's
//   rows 8..15 are zeros); the one for M <= 32 two, in one or two row
//   tiles. A thread's 16-byte load of row g (lane / 4) at K offset
//   16 * (lane % 4) feeds two mma's B registers directly: the K order
//   inside a K block is permuted, the same way for x (whose fragment the
//   thread reads at the same offsets), and a sum does not depend on the
//   order of its terms.
// * Each K block's product is promoted to the f32 accumulator with both
//   scales (DeepSeek's promotion every 128 of K, as the tile does). The
//   warps' partial sums are added in shared memory, then (SK_SPLIT > 1)
//   after barrier.cluster CTA c stores the outputs c, c + SK_SPLIT, ...,
//   adding the CTAs' sums read through distributed shared memory
//   (mapa + ld.shared::cluster) in rank order; a second barrier.cluster
//   keeps every CTA's shared memory alive until then. No split-K pass, no
//   atomics, the same bits every run.
// * Programmatic dependent launch (codegen/kernels.h): a warp loads its
//   first round of weights (and their scales) before DSCC_PDL_WAIT(), so
//   the stream starts under the tail of the kernel before (no kernel of a
//   step writes weights); x and its scales are read after the wait. Once
//   a CTA's weights are all loaded it lets the next kernel start
//   (DSCC_PDL_LAUNCH_DEPENDENTS) during its sums and stores.
//
// * SK_PIPE 1 (the instance for M <= 8 where gen_gemm.c picks it): a
//   persistent grid instead of one CTA per column block, each warp's loads
//   pipelined through two register stages across column groups (see the
//   comment above the form below and docs/KERNELS.md).
//
// Parameters (#define; a module defines them all, the defaults below and
// gemm_skinny_common.cuh's stand-ins make the file compile on its own):
//   DSCC_ENTRY        the entry point's name
//   SK_M              rows of x and y, an expression over the Args `a` (<= SK_MROWS)
//   SK_MROWS          the most rows the instance runs at: 8 or 32
//   SK_N, SK_K        output columns and K (K % 16 == 0: rows start 16-aligned)
//   SK_RB             8-row weight groups per warp: 1, 2 or 4
//   SK_U              K blocks a warp loads before it uses one (SK_U * SK_RB KB in flight a warp)
//   SK_MINB           CTAs an SM must hold (the register budget; default 2)
//   SK_SPLIT          CTAs of a cluster that split K (1..8; grid: SK_SPLIT per column block)
//   SK_X, SK_W        x's and w's codes (const unsigned char *, over `a`)
//   SK_XS(m, kb)      x's f32 scale of row m, K block kb (stored K-block-major: the quantize writes the layout
//                     cuBLASLt reads, and every GEMM reads that one)
//   SK_WS(i)          w's f32 scales [ceil(N/128)][ceil(K/128)]
//                     (both read only through SK_XSA / SK_WSA below)
//   SK_STORE(i, v)    stores y[i] (f32 v) in y's dtype
//   SK_PIPE           1: the persistent pipelined form (SK_MROWS 8; default 0)
//   SK_GRID           CTAs of that form (a multiple of SK_SPLIT; cluster c = blockIdx.x / SK_SPLIT owns column groups
//                     c + (SK_GRID / SK_SPLIT) i, its CTAs splitting K: DSCC_SKINNY_PSPLIT=1, else SK_SPLIT 1)
//   SK_PF             the pipelined form's L2 prefetch distance in steps (default 0: none): before its wait a warp
//                     prefetches steps 2 .. SK_PF + 1 of its weights into L2 (prefetch.global.L2, a 32-byte sector a
//                     lane), then with each step's loads the step SK_PF further on: bytes in flight that hold no
//                     register (the register stages then read them from L2)
//   SK_PF0            steps 2 .. SK_PF0 + 1 prefetched into L2 before the wait (default SK_PF): the folded form's
//                     (SK_FOLD) prologue computes x after the wait, while only the two register stages are in
//                     flight; these keep the weight stream going under it (DSCC_SKINNY_FOLD_PF, default 4)
//   SK_EARLY          1 (DSCC_PDL_EARLY=1): DSCC_PDL_LAUNCH_DEPENDENTS() first, so the next kernel may launch while
//                     this one runs (it waits for this one's end; its prologue, and that of a kernel after it which
//                     triggers early too, runs under this one's tail); 0 (default): once the CTA's loads are issued
//   SK_FOLD           1 (DSCC_SKINNY_FOLD=1; the pipelined form at M <= 4 only): x is not read from memory; after the
//                     wait SK_FOLDX (the module's DSCC_ENTRY##_foldx(a, codes, scales, sums), which gen_gemm.c writes
//                     from the ops of the row kernel it replaces: rmsnorm, silu * mul, slices) computes x's rows, their
//                     act_scale and quantize into shared memory (codes [4][SK_KB] at float SK_FOLD_XQ, scales
//                     [4][SK_NKB] at SK_FOLD_XS, 32 floats of the norm's sums before them; CTA 0 also stores both
//                     where the row kernel would have), and the steps read x's fragments and scales there (default 0)
//   SK_BF16           1: x and w are BF16 (a linear's), not E4M3 codes: mma m16n8k16 BF16 in the same fragment
//                     order (a thread's 16 bytes are 8 values, two mma's B registers), K blocks of 128 bytes (64
//                     values), and SK_XS, SK_WS are 1 (default 0)
// Dynamic shared memory: 9 * 8 * SK_RB * (SK_MROWS + 1) floats; SK_PIPE: 2 * 8 * 8 * (8 * SK_RB + 1), and with
// SK_SPLIT > 1 another 2 * 8 * (8 * SK_RB + 1).
#include "gemm_skinny_common.cuh"
#ifndef SK_RB
#define SK_RB 1
#endif
#ifndef SK_U
#define SK_U (4 / SK_RB)                 // K blocks per warp in flight
#endif
#ifndef SK_MINB
#define SK_MINB 2                        // blocks an SM holds (registers: at most 65536 / (256 * SK_MINB) a thread)
#endif
#ifndef SK_SPLIT
#define SK_SPLIT 1                       // CTAs of a cluster that split K (1..8)
#endif
#ifndef SK_MROWS
#define SK_MROWS 32                      // the most rows M this instance runs at: 8 or 32
#endif
#ifndef SK_BF16
#define SK_BF16 0
#endif
#ifndef SK_EARLY
#define SK_EARLY 0
#endif
#ifndef SK_PF
#define SK_PF 0                          // the pipelined form's L2 prefetch distance (steps)
#endif
#ifndef SK_PF0
#define SK_PF0 SK_PF                     // steps prefetched into L2 before the wait
#endif
#ifndef SK_FOLD
#define SK_FOLD 0                        // 1: x computed and quantized in the prologue (the pipelined form at M <= 4)
#endif
#ifndef SK_PIPE
#define SK_PIPE 0                        // 1: the persistent pipelined form (M <= 8; SK_GRID CTAs)
#endif
#if SK_PIPE && !defined(SK_GRID)
#define SK_GRID 264                      // CTAs of the persistent form
#endif
#define SK_KB (SK_K * (SK_BF16 ? 2 : 1)) // bytes of a row of x and w
#define SK_NKB ((SK_KB + 127) / 128)     // K blocks (of 128 bytes)
#define SK_MMA SK_PASTE(mma_, SK_PASTE(SK_MMA_, SK_BF16)) // mma_bf16 or mma_e4m3
#define SK_MMA_0 e4m3
#define SK_MMA_1 bf16
#define SK_COLS (8 * SK_RB)              // output columns per block
#define SK_XR (SK_MROWS == 8 ? 1 : 2)    // x rows a thread holds a row tile: g (and g + 8)
#define SK_T (SK_MROWS == 8 ? 1 : 2)     // row tiles (of 16 rows; of 8 when SK_MROWS is 8)
#define SK_KW (8 * SK_SPLIT)             // warps of a cluster: warp w of CTA c takes K blocks SK_SPLIT w + c, + SK_KW, ...
#define SK_RED (8 * SK_COLS * (SK_MROWS + 1)) // floats of each warp's sums, then SK_COLS * (SK_MROWS + 1) of the CTA's

#include "hopper.cuh" // the cluster's rank, barrier and sum (hp_cluster_*)
// the weights' and x's 16-byte loads (ld_stream16_if, ld_x16_if)
#include "ld_stream.cuh"

// The weight scale of row n (all rows of a block share one 128-row weight block: 8 * SK_RB divides 128) and
// x's scale of row m, at K block kb (behind these two macros so the scale layouts stay the module's business)
#define SK_PASTE2(a, b) a##b
#define SK_PASTE(a, b) SK_PASTE2(a, b)
#define SK_ROUND SK_PASTE(DSCC_ENTRY, _round) // one per instance: they read the instance's parameters
#define SK_LOADW SK_PASTE(DSCC_ENTRY, _loadw)
#define SK_WSA(n, kb) SK_WS((n) / 128 * SK_NKB + (kb))
#define SK_XSA(m, kb) SK_XS((m), (kb))

// A warp's weights of one round: K blocks kb0 + SK_KW u (u < SK_U) of its SK_RB 8-row groups, and their scales
// (zeros past N or K). Read-only weights only: it may run before the kernel's DSCC_PDL_WAIT().
__device__ __forceinline__ void SK_LOADW(const Args &a, uint4 (&wv)[SK_U][SK_RB][2], float (&ws)[SK_U], long long kb0, long long n0, int g,
                                         int q) {
    const long long N = SK_N, K = SK_KB, nkb = SK_NKB;
    const unsigned char *W = SK_W;
#pragma unroll
    for (int u = 0; u < SK_U; u++) {
        const long long kb = kb0 + u * SK_KW;
#pragma unroll
        for (int r = 0; r < SK_RB; r++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const long long n = n0 + r * 8 + g, k = kb * 128 + h * 64 + q * 16;
                wv[u][r][h] = ld_stream16_if(W + n * K + k, kb < nkb && n < N && k < K);
            }
        const float s = SK_WSA(n0 < N ? n0 : 0, kb < nkb ? kb : 0);
        ws[u] = kb < nkb && n0 < N ? s : 0.0f;
    }
}

// One round of a warp: the products of its SK_U K blocks kb0 + SK_KW u (u < SK_U) with the x rows of row tile t,
// promoted into acc. Every load of the round (x's fragments and scales) is issued before the first product:
// no load waits behind another one's latency (the weights and their scales are already in flight).
__device__ __forceinline__ void SK_ROUND(const Args &a, float (&acc)[SK_RB][4], const uint4 (&wv)[SK_U][SK_RB][2], const float (&ws)[SK_U],
                                         long long kb0, int t, int g, int q) {
    const long long M = SK_M, K = SK_KB, nkb = SK_NKB;
    const unsigned char *X = SK_X;
    uint4 xv[SK_U][SK_XR][2]; // x's fragment: rows 16t + g (+ 8), at the offsets of the thread's weight bytes
    float xs[SK_U][SK_XR];
#pragma unroll
    for (int u = 0; u < SK_U; u++)
#pragma unroll
        for (int i = 0; i < SK_XR; i++) {
            const long long kb = kb0 + SK_KW * u, m = t * 16 + g + i * 8;
            const bool mk = m < M && kb < nkb;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const long long k = kb * 128 + h * 64 + q * 16;
                xv[u][i][h] = ld_x16_if(X + m * K + k, mk && k < K);
            }
            const float s = SK_XSA(mk ? m : 0, kb < nkb ? kb : 0);
            xs[u][i] = mk ? s : 0.0f;
        }
#pragma unroll
    for (int u = 0; u < SK_U; u++) {
        if (kb0 + SK_KW * u >= nkb) break; // warp-uniform, after every load
#pragma unroll
        for (int r = 0; r < SK_RB; r++) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int h = 0; h < 2; h++) { // A's rows 8..15 are x's g + 8, or zeros when the instance has 8 rows
                const uint4 x0 = xv[u][0][h], x1 = SK_XR > 1 ? xv[u][SK_XR - 1][h] : make_uint4(0, 0, 0, 0);
                const unsigned a0[4] = {x0.x, x1.x, x0.y, x1.y}, b0[2] = {wv[u][r][h].x, wv[u][r][h].y};
                const unsigned a1[4] = {x0.z, x1.z, x0.w, x1.w}, b1[2] = {wv[u][r][h].z, wv[u][r][h].w};
                SK_MMA(part, a0, b0);
                SK_MMA(part, a1, b1);
            }
#pragma unroll
            for (int c = 0; c < 2 * SK_XR; c++) acc[r][c] += part[c] * (xs[u][c >> 1] * ws[u]); // promotion with both scales
        }
    }
}

#if SK_PIPE
// The persistent, pipelined form (SK_PIPE 1, the instance for M <= 8 only; SK_SPLIT 1 here): SK_GRID CTAs, CTA c owns
// the column groups c, c + SK_GRID, ... (8 * SK_RB weight rows each; gen_gemm.c balances them: every CTA the same
// number or one fewer), its 8 warps split K as above (warp w: K blocks w, w + 8, ...). A warp's work is a flat
// run of steps, SK_PNR a group (the same for every warp: a step past its K blocks loads nothing): step s is
// group s / SK_PNR, K blocks w + 8 (SK_U (s % SK_PNR) + u), u < SK_U. Two register stages (a, b; the loop is
// unrolled by two so their slots are fixed): step s + 1's weights, x and scales are in flight while step s is
// multiplied, and step s + 2's are issued right after it, across group ends, so the stream never drains at a
// group's end (the round form waits for each round's loads, and its short CTAs end in a ragged last wave).
// At a group's end the warps' sums meet in shared memory (two buffers by group parity: one barrier a group) and
// are added in warp order: the same bits every run.
// With SK_SPLIT > 1 (DSCC_SKINNY_PSPLIT=1) a cluster of SK_SPLIT CTAs owns the column groups c, c + SK_PCLS, ... and
// its 8 SK_SPLIT warps split K as the round form's do (warp w of CTA r: K blocks SK_SPLIT w + r, + SK_KW, ...), so a
// weight whose groups do not divide over the SMs' slots (o_proj's 896 over 264) fills them all in halves of groups.
// A group's end then adds each CTA's warp sums in shared memory, meets the cluster at barrier.cluster, and CTA r
// stores the outputs r, r + SK_SPLIT, ..., the CTAs' sums read through DSMEM in rank order (the two buffers by
// group parity keep a CTA's sums alive until every CTA has passed the next group's barrier).
#define SK_PNR ((SK_NKB + SK_KW * SK_U - 1) / (SK_KW * SK_U)) // steps a group
#define SK_PGROUPS ((SK_N + SK_COLS - 1) / SK_COLS)        // column groups
#define SK_PCLS (SK_GRID / SK_SPLIT)                       // clusters (SK_GRID is a multiple of SK_SPLIT)
#define SK_PCL ((long long)blockIdx.x / SK_SPLIT)          // the CTA's cluster
#define SK_PRANK (SK_SPLIT > 1 ? (long long)hp_cluster_rank() : 0LL) // its part of K
#define SK_PKB0(s, gi) (SK_SPLIT * (long long)warp + SK_PRANK + (long long)SK_KW * SK_U * ((s) - (gi) * SK_PNR)) // step s's first K block
#define SK_PLOAD SK_PASTE(DSCC_ENTRY, _pload)
#define SK_PSTEP SK_PASTE(DSCC_ENTRY, _pstep)
#define SK_PEND SK_PASTE(DSCC_ENTRY, _pend)
#define SK_PPREF SK_PASTE(DSCC_ENTRY, _ppref)
#define SK_FOLDX SK_PASTE(DSCC_ENTRY, _foldx)
// (SK_FOLD) float offsets in the dynamic shared memory, after the sums' buffers: x's scales [4][SK_NKB] (the norm's
// sums, 32 floats, just before), then x's codes [4][SK_KB] bytes (16-aligned)
#define SK_FOLD_XS (((2 * 8 * (8 + (SK_SPLIT > 1)) * (SK_COLS + 1) + 3) / 4) * 4 + 32)
#define SK_FOLD_XQ (SK_FOLD_XS + ((4 * SK_NKB + 3) / 4) * 4)

// Step s's loads (none at s >= ns): the weights and their scales (wx 1), or x's fragments and scales (wx 0: x is
// written by the kernel before, so only after DSCC_PDL_WAIT())
__device__ __forceinline__ void SK_PLOAD(const Args &a, uint4 (&wv)[SK_U][SK_RB][2], float (&ws)[SK_U], uint4 (&xv)[SK_U][2],
                                         float (&xs)[SK_U], long long s, long long ns, int warp, int g, int q, bool wx) {
    const long long N = SK_N, K = SK_KB, nkb = SK_NKB, M = SK_M;
    const long long gi = s / SK_PNR, n0 = (SK_PCL + gi * SK_PCLS) * SK_COLS;
    const long long kb0 = SK_PKB0(s, gi);
    const bool live = s < ns;
#pragma unroll
    for (int u = 0; u < SK_U; u++) {
        const long long kb = kb0 + SK_KW * u;
        const bool lk = live && kb < nkb;
        if (wx) {
#pragma unroll
            for (int r = 0; r < SK_RB; r++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const long long n = n0 + r * 8 + g, k = kb * 128 + h * 64 + q * 16;
                    wv[u][r][h] = ld_stream16_if(SK_W + n * K + k, lk && n < N && k < K);
                }
            ws[u] = lk && n0 < N ? SK_WSA(n0, kb) : 0.0f;
        } else {
            const bool mk = lk && g < M;
#if SK_FOLD // from the codes and scales the prologue put in shared memory
            extern __shared__ float sk_smem[];
            const unsigned char *xq = (const unsigned char *)(sk_smem + SK_FOLD_XQ);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const long long k = kb * 128 + h * 64 + q * 16;
                xv[u][h] = mk && k < K ? *(const uint4 *)(xq + g * K + k) : make_uint4(0, 0, 0, 0);
            }
            xs[u] = mk ? sk_smem[SK_FOLD_XS + g * nkb + kb] : 0.0f;
#else
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const long long k = kb * 128 + h * 64 + q * 16;
                xv[u][h] = ld_x16_if(SK_X + g * K + k, mk && k < K);
            }
            xs[u] = mk ? SK_XSA(g, kb) : 0.0f;
#endif
        }
    }
}

// Step s's weights into L2 (none at s >= ns): the sectors SK_PLOAD reads, one 32-byte sector a lane of an even q
// (its 16 bytes and the odd neighbour's). Read-only weights only: it may run before the kernel's DSCC_PDL_WAIT().
__device__ __forceinline__ void SK_PPREF(const Args &a, long long s, long long ns, int warp, int g, int q) {
    if (s >= ns || (q & 1)) return;
    const long long gi = s / SK_PNR, n0 = (SK_PCL + gi * SK_PCLS) * SK_COLS;
#if SK_SPLIT > 1 // the cluster's K split: warp w of CTA r takes K blocks SK_SPLIT w + r + SK_KW (SK_U t + u)
    const long long N = SK_N, K = SK_KB, nkb = SK_NKB, kb0 = SK_PKB0(s, gi);
#pragma unroll
    for (int u = 0; u < SK_U; u++) {
        const long long kb = kb0 + SK_KW * u;
#pragma unroll
        for (int r = 0; r < SK_RB; r++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const long long n = n0 + r * 8 + g, k = kb * 128 + h * 64 + q * 16;
                if (kb < nkb && n < N && k < K) pdl_prefetch_l2(SK_W + n * K + k);
            }
    }
#else
    hp_prefetch_w16<SK_U, SK_RB>(SK_W, SK_N, SK_KB, n0, warp, s - gi * SK_PNR, g, q);
#endif
}

// A group's end: the warps' sums (row g of y, column 8r + 2q + c of the group) into buffer gi & 1, one barrier,
// then each output summed in warp order and stored (consecutive threads: consecutive columns); with SK_SPLIT > 1
// the CTA's sums into its buffer gi & 1 (after the warps' buffers), barrier.cluster, and the cluster's sums in
// rank order, CTA r storing the outputs r, r + SK_SPLIT, ...
__device__ __forceinline__ void SK_PEND(const Args &a, float (&acc)[SK_RB][4], float *smem, long long gi, int warp, int g, int q) {
    const long long N = SK_N, M = SK_M, n0 = (SK_PCL + gi * SK_PCLS) * SK_COLS;
    float (*red)[8][SK_COLS + 1] = (float (*)[8][SK_COLS + 1])(smem + (gi & 1) * 8 * 8 * (SK_COLS + 1));
#pragma unroll
    for (int r = 0; r < SK_RB; r++)
#pragma unroll
        for (int c = 0; c < 2; c++) red[warp][g][r * 8 + q * 2 + c] = acc[r][c], acc[r][c] = 0.0f;
    __syncthreads();
#if SK_SPLIT > 1
    float (*csum)[SK_COLS + 1] = (float (*)[SK_COLS + 1])(smem + 2 * 8 * 8 * (SK_COLS + 1) + (gi & 1) * 8 * (SK_COLS + 1));
    for (int i = threadIdx.x; i < 8 * SK_COLS; i += 256) {
        const int m = i / SK_COLS, col = i % SK_COLS;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) v += red[w][m][col];
        csum[m][col] = v;
    }
    hp_cluster_sync(); // every CTA's sums of the group are written
    for (long long i = SK_PRANK + SK_SPLIT * (long long)threadIdx.x; i < 8 * SK_COLS; i += SK_SPLIT * 256) {
        const int m = (int)(i / SK_COLS), col = (int)(i % SK_COLS);
        const long long n = n0 + col;
        if (m >= M || n >= N) continue;
        SK_STORE(m * N + n, hp_cluster_sum<SK_SPLIT>(&csum[m][col]));
    }
#else
    for (int i = threadIdx.x; i < 8 * SK_COLS; i += 256) {
        const int m = i / SK_COLS, col = i % SK_COLS;
        const long long n = n0 + col;
        if (m >= M || n >= N) continue;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) v += red[w][m][col];
        SK_STORE(m * N + n, v);
    }
#endif
}

// Step s: the products of its K blocks with x's row g (A's rows 8..15 zeros), promoted into acc; the group's
// end after its last step
__device__ __forceinline__ void SK_PSTEP(const Args &a, float (&acc)[SK_RB][4], const uint4 (&wv)[SK_U][SK_RB][2], const float (&ws)[SK_U],
                                         const uint4 (&xv)[SK_U][2], const float (&xs)[SK_U], float *smem, long long s, int warp, int g,
                                         int q) {
    const long long nkb = SK_NKB, gi = s / SK_PNR, ri = s - gi * SK_PNR, kb0 = SK_PKB0(s, gi);
#pragma unroll
    for (int u = 0; u < SK_U; u++) {
        if (kb0 + SK_KW * u >= nkb) break; // warp-uniform
        const float sc = xs[u] * ws[u];
#pragma unroll
        for (int r = 0; r < SK_RB; r++) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint4 x0 = xv[u][h];
                const unsigned a0[4] = {x0.x, 0u, x0.y, 0u}, b0[2] = {wv[u][r][h].x, wv[u][r][h].y};
                const unsigned a1[4] = {x0.z, 0u, x0.w, 0u}, b1[2] = {wv[u][r][h].z, wv[u][r][h].w};
                SK_MMA(part, a0, b0);
                SK_MMA(part, a1, b1);
            }
            acc[r][0] += part[0] * sc;
            acc[r][1] += part[1] * sc;
        }
    }
    if (ri == SK_PNR - 1) SK_PEND(a, acc, smem, gi, warp, g, q);
}

#endif

// (one entry line for both forms: the emulator's translator reads it as text)
extern "C" __global__ void __launch_bounds__(256, SK_MINB) __cluster_dims__(SK_SPLIT, 1, 1) DSCC_ENTRY(Args a) {
#if SK_EARLY
    DSCC_PDL_LAUNCH_DEPENDENTS(); // the next kernel may launch now (every CTA of this one is placed once all trigger)
#endif
#if SK_PIPE
    extern __shared__ float sk_smem[]; // two buffers of [warp][row of y][column] sums
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const long long ng = ((long long)SK_PGROUPS - SK_PCL + SK_PCLS - 1) / SK_PCLS, ns = ng * SK_PNR; // the same in a cluster
    float acc[SK_RB][4];
#pragma unroll
    for (int r = 0; r < SK_RB; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[r][c] = 0.0f;
    uint4 wa[SK_U][SK_RB][2], wb[SK_U][SK_RB][2], xa[SK_U][2], xb[SK_U][2];
    float sa[SK_U], sb[SK_U], ta[SK_U], tb[SK_U];
    SK_PLOAD(a, wa, sa, xa, ta, 0, ns, warp, g, q, true); // weights before the wait (nothing of the step writes them)
    SK_PLOAD(a, wb, sb, xb, tb, 1, ns, warp, g, q, true);
#pragma unroll
    for (int p = 0; p < SK_PF0; p++) SK_PPREF(a, 2 + p, ns, warp, g, q); // (SK_PF0) the next steps' weights into L2
    DSCC_PDL_WAIT();
#if SK_FOLD // x's rows, scales and codes into shared memory (the row kernel before does not run)
    SK_FOLDX(a, (unsigned char *)(sk_smem + SK_FOLD_XQ), sk_smem + SK_FOLD_XS, sk_smem + SK_FOLD_XS - 32);
    __syncthreads();
#endif
    SK_PLOAD(a, wa, sa, xa, ta, 0, ns, warp, g, q, false);
    SK_PLOAD(a, wb, sb, xb, tb, 1, ns, warp, g, q, false);
    for (long long s = 0; s < ns; s += 2) {
        if (!SK_EARLY && s + 2 >= ns) DSCC_PDL_LAUNCH_DEPENDENTS(); // the CTA's loads are all issued: the next kernel may start
        SK_PSTEP(a, acc, wa, sa, xa, ta, sk_smem, s, warp, g, q);
        SK_PLOAD(a, wa, sa, xa, ta, s + 2, ns, warp, g, q, true);
        if (SK_PF) SK_PPREF(a, s + 2 + SK_PF, ns, warp, g, q);
        SK_PLOAD(a, wa, sa, xa, ta, s + 2, ns, warp, g, q, false);
        if (s + 1 >= ns) break; // CTA-uniform
        SK_PSTEP(a, acc, wb, sb, xb, tb, sk_smem, s + 1, warp, g, q);
        SK_PLOAD(a, wb, sb, xb, tb, s + 3, ns, warp, g, q, true);
        if (SK_PF) SK_PPREF(a, s + 3 + SK_PF, ns, warp, g, q);
        SK_PLOAD(a, wb, sb, xb, tb, s + 3, ns, warp, g, q, false);
    }
    if (SK_SPLIT > 1) hp_cluster_sync(); // no CTA leaves while another reads its sums
#else
    extern __shared__ float sk_smem[]; // SK_RED: each warp's sums [warp][column][row of y]; then the CTA's [column][row]
    float (*sk_red)[SK_COLS][SK_MROWS + 1] = (float (*)[SK_COLS][SK_MROWS + 1])sk_smem;
    float (*sk_sum)[SK_MROWS + 1] = (float (*)[SK_MROWS + 1])(sk_smem + SK_RED);
    const long long M = SK_M, N = SK_N, K = SK_KB, nkb = SK_NKB;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const unsigned rank = SK_SPLIT > 1 ? hp_cluster_rank() : 0; // the CTA's part of K
    const long long n0 = (long long)(blockIdx.x / SK_SPLIT) * SK_COLS;
    const int mtn = SK_T > 1 && M > 16 ? 2 : 1; // row tiles of 16
    float acc[SK_T][SK_RB][4];
#pragma unroll
    for (int t = 0; t < SK_T; t++)
#pragma unroll
        for (int r = 0; r < SK_RB; r++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[t][r][c] = 0.0f;
    uint4 wv[SK_U][SK_RB][2]; // row n0 + 8r + g, K bytes kb * 128 + 64h + 16q ... + 15, kb = kb0 + SK_KW u
    float ws[SK_U];
    long long kb0 = warp * SK_SPLIT + rank; // the cluster's CTAs in turn, then its warps
    SK_LOADW(a, wv, ws, kb0, n0, g, q); // the first round's weights: before the wait (nothing of the step writes them)
    DSCC_PDL_WAIT();
    while (kb0 < nkb) {
        SK_ROUND(a, acc[0], wv, ws, kb0, 0, g, q);
        if (SK_T > 1 && mtn > 1) SK_ROUND(a, acc[SK_T - 1], wv, ws, kb0, 1, g, q);
        kb0 += SK_KW * SK_U;
        if (kb0 < nkb) SK_LOADW(a, wv, ws, kb0, n0, g, q);
    }
    if (!SK_EARLY) DSCC_PDL_LAUNCH_DEPENDENTS(); // every load of the CTA's weights is done: the next kernel may start
    // the 8 warps' sums: column 8r + 2q (+1) of the block, row of y 16t + g (+8); then the CTA's, in warp order
#pragma unroll
    for (int t = 0; t < SK_T; t++)
#pragma unroll
        for (int r = 0; r < SK_RB; r++)
#pragma unroll
            for (int c = 0; c < 2 * SK_XR; c++) sk_red[warp][r * 8 + q * 2 + (c & 1)][t * 16 + g + 8 * (c >> 1)] = acc[t][r][c];
    __syncthreads();
    for (int i = threadIdx.x; i < SK_COLS * SK_MROWS; i += 256) {
        const int col = i / SK_MROWS, m = i % SK_MROWS;
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) s += sk_red[w][col][m];
        sk_sum[col][m] = s;
    }
    if (SK_SPLIT > 1) hp_cluster_sync(); // every CTA's sums are written (and __syncthreads' for one CTA)
    else __syncthreads();
    // the cluster's sum, in rank order (the same bits every run): CTA c stores the outputs i = c, c + SK_SPLIT, ...
    for (int i = rank + SK_SPLIT * threadIdx.x; i < SK_COLS * SK_MROWS; i += SK_SPLIT * 256) {
        const int col = i / SK_MROWS, m = i % SK_MROWS;
        const long long n = n0 + col;
        if (m >= M || n >= N) continue;
        const float s = hp_cluster_sum<SK_SPLIT>(&sk_sum[col][m]);
        SK_STORE(m * N + n, s);
    }
    if (SK_SPLIT > 1) hp_cluster_sync(); // no CTA leaves while another reads its shared memory
#endif
}
#if SK_PIPE
#undef SK_PNR
#undef SK_PGROUPS
#undef SK_PLOAD
#undef SK_PSTEP
#undef SK_PEND
#undef SK_PPREF
#undef SK_PCLS
#undef SK_PCL
#undef SK_PRANK
#undef SK_PKB0
#undef SK_FOLDX
#undef SK_FOLD_XS
#undef SK_FOLD_XQ
#endif
#undef SK_FOLD
#undef SK_PF0
#undef SK_WSA
#undef SK_KB
#undef SK_MMA
#undef SK_MMA_0
#undef SK_MMA_1
#undef SK_KW
#undef SK_RED
#undef SK_XR
#undef SK_T
#undef SK_ROUND
#undef SK_LOADW
#undef SK_PASTE
#undef SK_PASTE2
#undef SK_XSA
#undef SK_NKB
#undef SK_COLS
#define SK_COMMON_END // (the parameters' #undefs)
#include "gemm_skinny_common.cuh"
