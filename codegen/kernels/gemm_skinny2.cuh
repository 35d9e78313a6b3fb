// gemm_skinny2.cuh — DeepSeek's block-scaled FP8 linear at M <= 8 or 16
// rows (decode), y[M, N] = x[M, K] . w[N, K]^T with E4M3 codes, one f32 scale per
// 1x128 tile of x and per 128x128 block of w: the weight stream kept full.
// At such M the GEMM only reads its weights, and the time is set by the
// bytes each SM keeps in flight (Little's law: ~3-4 TB/s x ~1 us under load
// = 25-30 KB an SM at the least). gemm_skinny.cuh waits for each round of
// loads before it issues the next, and its grid ends in a ragged last wave;
// this form never lets the stream stop:
//
// * A persistent grid (SK_GRID CTAs of 256 threads, at most what the SMs
//   hold at once): CTA b owns the column groups b, b + SK_GRID, ... of
//   8 * SK_RB output columns (weight rows), one after the other, and its
//   8 warps split K (warp w takes the K blocks w, w + 8, ...).
// * Each thread streams its weight bytes through a 3-stage ring in shared
//   memory by cp.async (16 bytes, zero-filled past N or K): stage j holds
//   SK_U K blocks of the warp (SK_U * SK_RB KB a warp), and stages j + 1
//   and j + 2 are in flight while stage j is multiplied; the stages run on
//   across column groups, so a group's end does not drain the stream. A
//   thread reads back only its own bytes: no barrier in the stream.
// * The weight and activation block scales of a stage are loaded into
//   registers when the stage is issued (a ring of three in registers, slots
//   fixed at compile time: the loop is unrolled by three), and nothing
//   touches them before the stage's step.
// * x (rows < M) is copied into shared memory once per CTA, before the
//   first stage lands (rows padded to 128 + 64 bytes: conflict-free reads).
//   The 8-row instance holds one row of x a thread (A's rows 8..15 are
//   zeros), the 16-row one two.
// * The products run on the tensor cores as mma.sync m16n8k32 E4M3 with the
//   weights as the 8-column operand B and x as the 16-row operand A (rows
//   g = lane / 4 and g + 8), in gemm_skinny.cuh's K order: a
//   thread's 16 bytes at K offset 16 (lane % 4) feed both B registers, and
//   x's fragment is read at the same offsets. Each K block is promoted to
//   the f32 accumulator with both scales.
// * At a group's end the warps' sums meet in shared memory (two buffers by
//   group parity: one barrier a group) and are added in warp order: the same
//   bits every run, no atomics, no second launch.
//
// Parameters (#define; a module defines them all, the defaults below and
// gemm_skinny_common.cuh's stand-ins make the file compile on its own):
//   DSCC_ENTRY        the entry point's name
//   SK_M              rows of x and y, an expression over the Args `a` (<= SK_MROWS)
//   SK_MROWS          the most rows the instance runs at: 8 or 16
//   SK_N, SK_K        output columns and K (K % 16 == 0)
//   SK_RB             8-row weight groups a warp: 1, 2 or 4
//   SK_U              K blocks a warp a stage (1..4)
//   SK_GRID           CTAs launched (<= the column groups)
//   SK_MINB           CTAs an SM must hold (launch bounds)
//   SK_X, SK_W        x's and w's codes (const unsigned char *, over `a`)
//   SK_XS(m, kb)      x's f32 scale of row m, K block kb
//   SK_WS(i)          w's f32 scales [ceil(N/128)][ceil(K/128)]
//   SK_STORE(i, v)    stores y[i] (f32 v) in y's dtype
//   SK_PF             the L2 prefetch distance in stages (default 0: none): with each stage it issues, a thread
//                     prefetches into L2 the weights of the stage SK_PF further on (one lane of two: a 32-byte sector)
//   SK_EARLY          1 (DSCC_PDL_EARLY=1): DSCC_PDL_LAUNCH_DEPENDENTS() first, so the next kernel may launch while
//                     this one runs (it waits for this one's end); 0 (default): never (it launches at this one's end)
//   SK_BF16           1: x and w are BF16 (a linear's): mma m16n8k16 BF16 in the same fragment order, K blocks of
//                     128 bytes (64 values), SK_XS and SK_WS 1 (default 0)
//   SK_LAST(a)        defined: a job the CTA that finishes last runs, once every CTA's outputs are stored (the MoE
//                     gate's routing of the logits: DSCC_ROUTE_FUSE=1): each CTA fences its stores and takes a ticket
//                     (an atomic counter in the module's memory, back to 0 by the last one: one launch at a time runs
//                     an instance, the program's kernels being on one stream); the last ticket's CTA reads the others'
//                     outputs from L2 (__ldcg)
// Dynamic shared memory: SK2_SMEM bytes (gen_gemm.c computes the same sum).
#ifndef SK_X // compiled on its own: the stand-in's grid (the rest in gemm_skinny_common.cuh)
#define SK_GRID 132
#endif
#include "gemm_skinny_common.cuh"
#include "hopper.cuh" // (hp_prefetch_w16)
#ifndef SK_RB
#define SK_RB 2
#endif
#ifndef SK_U
#define SK_U 2
#endif
#ifndef SK_MINB
#define SK_MINB 1
#endif
#ifndef SK_MROWS
#define SK_MROWS 8                                     // the most rows M this instance runs at: 8 or 16
#endif
#define SK2_XR (SK_MROWS / 8)                          // x rows a thread holds: g (and g + 8)
#ifndef SK_BF16
#define SK_BF16 0
#endif
#ifndef SK_EARLY
#define SK_EARLY 0
#endif
#ifndef SK_PF
#define SK_PF 0
#endif
#define SK2_KB (SK_K * (SK_BF16 ? 2 : 1))              // bytes of a row of x and w
#define SK2_NKB ((SK2_KB + 127) / 128)                 // K blocks (of 128 bytes)
#define SK2_T ((SK2_NKB + 8 * SK_U - 1) / (8 * SK_U))  // stages a column group (every warp the same count)
#define SK2_COLS (8 * SK_RB)                           // output columns a group
#define SK2_G ((SK_N + SK2_COLS - 1) / SK2_COLS)       // column groups
#define SK2_CH (2 * SK_RB)                             // 16-byte weight pieces a thread a K block
#define SK2_XST (SK2_NKB * 128 + 64)                   // bytes of a row of x in shared memory
#define SK2_RING (3 * SK_U * SK2_CH * 256 * 16)        // the weight ring, bytes
#define SK2_XB (SK_MROWS * SK2_XST)                    // x, bytes
#define SK2_RED (2 * 8 * SK2_COLS * (SK_MROWS + 1))    // each warp's sums, two buffers, floats
#define SK2_SMEM (SK2_RING + SK2_XB + 4 * SK2_RED)

#define SK2_PASTE2(a, b) a##b
#define SK2_PASTE(a, b) SK2_PASTE2(a, b)
#define SK2_ISSUE SK2_PASTE(DSCC_ENTRY, _issue) // one per instance: they read the instance's parameters
#define SK2_STEP SK2_PASTE(DSCC_ENTRY, _step)
#define SK2_PREFETCH SK2_PASTE(DSCC_ENTRY, _prefetch)
#define SK2_WSA(n, kb) SK_WS((n) / 128 * SK2_NKB + (kb))
#ifdef SK_LAST
#define SK2_TICKET SK2_PASTE(DSCC_ENTRY, _ticket)
__device__ unsigned SK2_TICKET; // SK_LAST's: CTAs of the launch that have stored their outputs
#endif
#define SK2_MMA SK2_PASTE(mma_, SK2_PASTE(SK2_MMA_, SK_BF16)) // mma_bf16 or mma_e4m3
#define SK2_MMA_0 e4m3
#define SK2_MMA_1 bf16

// Issues stage j of the thread (ring slot s) and its scales, then commits a group (an empty one past the last
// stage: the count of groups in flight stays the same). The stage's K blocks are kb = warp + 8 (SK_U t + u).
__device__ __forceinline__ void SK2_ISSUE(const Args &a, uint4 *ring, float (&ws)[3][SK_U], float (&xs)[3][SK_U][SK2_XR], int s, long long j,
                                          long long J, int warp, int g, int q) {
    const long long M = SK_M, N = SK_N, K = SK2_KB, nkb = SK2_NKB;
    if (j < J) {
        const long long n0 = (blockIdx.x + j / SK2_T * (long long)SK_GRID) * SK2_COLS, t = j % SK2_T;
        const unsigned char *W = SK_W;
#pragma unroll
        for (int u = 0; u < SK_U; u++) {
            const long long kb = warp + 8 * (SK_U * t + u);
            const bool ok = kb < nkb;
#pragma unroll
            for (int r = 0; r < SK_RB; r++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const long long n = n0 + r * 8 + g, k = kb * 128 + h * 64 + q * 16;
                    cp16(ring + ((s * SK_U + u) * SK2_CH + r * 2 + h) * 256 + threadIdx.x, W + n * K + k, ok && n < N && k < K);
                }
            // loaded straight into the register ring: nothing reads them before the stage's step (a select on the
            // value here would wait for the load, a memory latency every stage); past K the step never uses them,
            // past M they multiply zero rows
            ws[s][u] = SK2_WSA(n0, ok ? kb : 0);
#pragma unroll
            for (int i = 0; i < SK2_XR; i++) xs[s][u][i] = SK_XS(g + 8 * i < M ? g + 8 * i : 0, ok ? kb : 0);
        }
    }
    cp_commit();
}

// The weights of the thread's stage j into L2 (the addresses SK2_ISSUE copies from): read-only, so before the
// kernel's DSCC_PDL_WAIT(), while the kernel ahead of it finishes (programmatic dependent launch); with `half`, only
// lanes of an even q (each 32-byte sector once: its own 16 bytes and its odd neighbour's).
__device__ __forceinline__ void SK2_PREFETCH(const Args &a, long long j, long long J, int warp, int g, int q, bool half = false) {
    if (j >= J || (half && (q & 1))) return;
    const long long n0 = (blockIdx.x + j / SK2_T * (long long)SK_GRID) * SK2_COLS, t = j % SK2_T;
    hp_prefetch_w16<SK_U, SK_RB>(SK_W, SK_N, SK2_KB, n0, warp, t, g, q);
}

// Stage j (ring slot s): waits for it, multiplies it into acc and, at its group's end, adds the warps' sums and
// stores the group's outputs. Issues stage j + 2 into the slot stage j - 1 used first.
__device__ __forceinline__ void SK2_STEP(const Args &a, uint4 *ring, const unsigned char *xsm, float *red, float (&ws)[3][SK_U],
                                         float (&xs)[3][SK_U][SK2_XR], float (&acc)[SK_RB][2 * SK2_XR], int s, long long j, long long J, int warp,
                                         int g, int q) {
    const long long M = SK_M, N = SK_N, K = SK2_KB, nkb = SK2_NKB;
    SK2_ISSUE(a, ring, ws, xs, s == 0 ? 2 : s - 1, j + 2, J, warp, g, q);
    if (SK_PF) SK2_PREFETCH(a, j + 2 + SK_PF, J, warp, g, q, true); // (SK_PF) a stage further on into L2
    cp_wait2(); // this thread's stage j (and, before stage 0, its share of x) has landed
    if (j == 0) __syncthreads(); // every thread's share of x has
    const long long t = j % SK2_T;
#pragma unroll
    for (int u = 0; u < SK_U; u++) {
        const long long kb = warp + 8 * (SK_U * t + u);
        if (kb >= nkb) break; // warp-uniform
        uint4 xv[2][2]; // rows g, g + 8 (zeros past M or K, and for the second when the instance has 8 rows)
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const long long k = kb * 128 + h * 64 + q * 16;
                const int m = g + 8 * i;
                xv[i][h] = i < SK2_XR && m < M && k < K ? *(const uint4 *)(xsm + m * SK2_XST + k) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
        for (int r = 0; r < SK_RB; r++) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int h = 0; h < 2; h++) { // A's rows 8..15: x's g + 8, or zeros when the instance has 8 rows
                const uint4 wv = ring[((s * SK_U + u) * SK2_CH + r * 2 + h) * 256 + threadIdx.x], x0 = xv[0][h], x1 = xv[1][h];
                const unsigned a0[4] = {x0.x, x1.x, x0.y, x1.y}, b0[2] = {wv.x, wv.y};
                const unsigned a1[4] = {x0.z, x1.z, x0.w, x1.w}, b1[2] = {wv.z, wv.w};
                SK2_MMA(part, a0, b0);
                SK2_MMA(part, a1, b1);
            }
#pragma unroll
            for (int c = 0; c < 2 * SK2_XR; c++) acc[r][c] += part[c] * (xs[s][u][c >> 1] * ws[s][u]); // promotion with both scales
        }
    }
    if (t != SK2_T - 1) return;
    // the group's end: each warp's sums (column 8r + 2q (+1), row g (+8)), then their sum in warp order
    const long long grp = j / SK2_T, n0 = (blockIdx.x + grp * (long long)SK_GRID) * SK2_COLS;
    float (*rd)[SK2_COLS][SK_MROWS + 1] = (float (*)[SK2_COLS][SK_MROWS + 1])(red + (grp & 1) * (8 * SK2_COLS * (SK_MROWS + 1)));
#pragma unroll
    for (int r = 0; r < SK_RB; r++)
#pragma unroll
        for (int c = 0; c < 2 * SK2_XR; c++) rd[warp][r * 8 + q * 2 + (c & 1)][g + 8 * (c >> 1)] = acc[r][c], acc[r][c] = 0.0f;
    __syncthreads(); // (the buffer is written again two groups on, after the next group's barrier: every read of it is done)
    for (int i = threadIdx.x; i < SK2_COLS * SK_MROWS; i += 256) {
        const int col = i / SK_MROWS, m = i % SK_MROWS;
        const long long n = n0 + col;
        if (m >= M || n >= N) continue;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) v += rd[w][col][m];
        SK_STORE(m * N + n, v);
    }
}

extern "C" __global__ void __launch_bounds__(256, SK_MINB) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(16) unsigned char sk2_smem[]; // the ring, x, the warps' sums
    uint4 *ring = (uint4 *)sk2_smem;
    unsigned char *xsm = sk2_smem + SK2_RING;
    float *red = (float *)(sk2_smem + SK2_RING + SK2_XB);
    const long long M = SK_M, K = SK2_KB;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const long long groups = (SK2_G - blockIdx.x + SK_GRID - 1) / SK_GRID, J = groups * SK2_T; // stages of the CTA
#if SK_EARLY
    DSCC_PDL_LAUNCH_DEPENDENTS(); // the next kernel may launch now (every CTA of this one is placed once all trigger)
#endif
    SK2_PREFETCH(a, 0, J, warp, g, q); // the first two stages' weights start under the tail of the kernel before
    SK2_PREFETCH(a, 1, J, warp, g, q);
#pragma unroll
    for (int p = 0; p < SK_PF; p++) SK2_PREFETCH(a, 2 + p, J, warp, g, q, true); // (SK_PF) the stages after them
    DSCC_PDL_WAIT(); // x, its scales and y are the step's: from here on
    const unsigned char *X = SK_X;
    for (long long i = threadIdx.x; i < M * (K / 16); i += 256) { // x's rows into shared memory, one group of copies
        const long long m = i / (K / 16), c = i % (K / 16);
        cp16(xsm + m * SK2_XST + c * 16, X + m * K + c * 16, true);
    }
    cp_commit();
    float ws[3][SK_U], xs[3][SK_U][SK2_XR], acc[SK_RB][2 * SK2_XR];
#pragma unroll
    for (int r = 0; r < SK_RB; r++)
#pragma unroll
        for (int c = 0; c < 2 * SK2_XR; c++) acc[r][c] = 0.0f;
    SK2_ISSUE(a, ring, ws, xs, 0, 0, J, warp, g, q);
    SK2_ISSUE(a, ring, ws, xs, 1, 1, J, warp, g, q);
    for (long long j = 0; j < J; j += 3) { // unrolled by the ring's three slots (their registers fixed at compile time)
        SK2_STEP(a, ring, xsm, red, ws, xs, acc, 0, j, J, warp, g, q);
        if (j + 1 < J) SK2_STEP(a, ring, xsm, red, ws, xs, acc, 1, j + 1, J, warp, g, q);
        if (j + 2 < J) SK2_STEP(a, ring, xsm, red, ws, xs, acc, 2, j + 2, J, warp, g, q);
    }
    cp_wait0(); // (only empty groups remain)
#ifdef SK_LAST
    __shared__ unsigned sk2_last;
    __threadfence(); // this thread's stores of y, before the CTA's ticket
    __syncthreads();
    if (threadIdx.x == 0) sk2_last = atomicAdd(&SK2_TICKET, 1u) == gridDim.x - 1;
    __syncthreads();
    if (sk2_last) { // every other CTA has stored its outputs and fenced them
        if (threadIdx.x == 0) SK2_TICKET = 0u; // for the next launch: no CTA of this one takes a ticket again
        __threadfence();
        SK_LAST(a);
    }
#endif
}
#undef SK2_NKB
#undef SK2_XR
#undef SK2_KB
#undef SK2_MMA
#undef SK2_MMA_0
#undef SK2_MMA_1
#undef SK2_T
#undef SK2_COLS
#undef SK2_G
#undef SK2_CH
#undef SK2_XST
#undef SK2_RING
#undef SK2_XB
#undef SK2_RED
#undef SK2_SMEM
#undef SK2_PASTE
#undef SK2_PASTE2
#undef SK2_ISSUE
#undef SK2_STEP
#undef SK2_PREFETCH
#undef SK2_WSA
#undef SK2_TICKET
#define SK_COMMON_END // (the parameters' #undefs)
#include "gemm_skinny_common.cuh"
