// gemm_tma.cuh — DeepSeek's block-scaled FP8 linear at large M on Hopper,
// in DeepGEMM's class (its design, our code): y[M, N] (bf16 or f32, through
// GT_STORE) = x[M, K] . w[N, K]^T with E4M3 codes, one f32 scale per 1x128
// tile of x and per 128x128 block of w, f32 accumulation with promotion.
// Two forms, by GT_BN (the output tile's columns):
//
// * 384 threads: warpgroup 0 is the producer (one thread issues the loads;
//   setmaxnreg gives its registers to the others), warpgroups 1 and 2 the
//   consumers, each 64 rows of the block's 128 x GT_BN output tile.
// * Persistent: gridDim.x blocks (the SMs) walk the tiles t = blockIdx.x,
//   + gridDim.x, ...; tile t is row tile t % mt of column tile t / mt, so
//   blocks running at once share the weight tile (read once from HBM) and
//   x's rows come from L2.
// * Loads: TMA (cp.async.bulk.tensor.2d) of a 128-row x 128-byte box of x
//   and GT_BN / 128 such boxes of w per 128-wide K block, in the 128-byte
//   swizzle, into a ring of GT_STAGES stages; each stage has a "full"
//   mbarrier (the producer's arrive.expect_tx plus the copies' bytes) and an
//   "empty" one (one arrival per consumer warp once its wgmma have read the
//   stage). Rows past M or N and K past the end land as zeros (the tensor
//   maps' bounds).
// * GT_BN 128 (DSCC_TMA_V2=0's form): per K block, 4 wgmma m64n128k32 E4M3
//   into a fresh partial (scale-d 0 first), committed as one group; the
//   partial of block kb is promoted, acc += part * (xs[row][kb] *
//   ws[col block][kb]), while the wgmma of kb + 1 run (two partials in
//   turn, wgmma.wait_group 1). 32 KB a stage, 6 stages.
// * GT_BN 256 (the default form): each consumer warpgroup holds 64 x 256
//   accumulators (128 registers a thread) and one 64 x 128 partial; per K
//   block it runs the two 128-column halves in turn (4 wgmma m64n128k32
//   each, then promotion with that half's weight scale), while the other
//   warpgroup's wgmma keep the tensor cores busy. Half the shared-memory
//   traffic per FLOP of the 128 x 128 tile (x's box serves 256 columns);
//   the next K block's scales are loaded while the wgmma run; a column
//   tile whose second half lies past N neither loads nor computes it.
//   48 KB a stage, 4 stages.
//   With GT_CLUSTER 2 the CTAs of a cluster take the row tiles 2u and 2u + 1
//   of one column tile (unit u); CTA r loads w's box r of the tile with
//   .multicast::cluster into both CTAs' stage (each full barrier expects the
//   x box and both w boxes), so each weight byte crosses L2 once per two
//   row tiles: 32 KB per 8.4 MFLOP. A stage is free only when the
//   consumers of both CTAs have released it: each consumer warp arrives on
//   its CTA's empty barrier and on the other's (16 arrivals a phase). A
//   cluster barrier after the barriers' init; before a CTA's producer
//   exits it waits for every stage's last release (so no arrival or copy
//   from the other CTA comes after its exit).
//   Both forms: DeepSeek's promotion every 128 of K, the CPU's FP8 numerics.
// * Epilogue: each thread stores its accumulators (rows < M, cols < N), two
//   adjacent columns at once through GT_STORE2 where N is even.
//
// Parameters (#define; expressions may use the kernel's Args `a`):
//   DSCC_ENTRY         the entry point's name
//   GT_M, GT_N, GT_K   rows of x and y, output columns, K (K % 16 == 0: the maps' row pitch)
//   GT_MAPS            the address (global memory) of two CUtensorMaps, 128 bytes each:
//                      x's [M][K] and w's [N][K] as 2-d UINT8 maps, box 128 x 128, 128-byte
//                      swizzle (rt_cuda_tensor_map_2d). x's map may have more rows than M
//                      (a buffer's capacity): rows past M are read, never stored.
//   GT_XS(m, kb)       x's f32 scale of row m, K block kb (wherever its layout puts it)
//   GT_WS(i)           w's f32 scales, [ceil(N/128)][ceil(K/128)]
//   GT_STORE(i, v)     stores y[i] (f32 v) in y's dtype
//   GT_STORE2(i, v0, v1)  stores y[i], y[i + 1] (i even, N even); default two GT_STOREs
//   GT_BN              the output tile's columns: 256 (default) or 128
//   GT_STAGES          stages of the ring (default 4 at GT_BN 256, 6 at 128)
//   GT_CLUSTER         CTAs a cluster (GT_BN 256 only): 1 (default) or 2, two row tiles of one
//                      column tile whose weight boxes each CTA loads half of, multicast to both
//   GT_DESC_SWZ        the wgmma descriptors' layout field (default 1, the 128-byte swizzle the
//                      maps use; another value is for the test that sees it fail)
//   GT_REGS_P, GT_REGS_C  registers a thread after setmaxnreg: producer, consumers (40, 232)
//   GT_IN_MODULE       defined when the file is part of a generated module (its prelude has Args)
// Shared memory: GT_SMEM bytes of dynamic shared memory (the launch's).
#ifndef GT_IN_MODULE
// compiled alone (test_codegen, test_gpu_gemm_tma): the generated prelude's argument block
#include "args.cuh"
#endif
#ifndef GT_M
#define GT_M (a.sym[0])
#endif
#ifndef GT_N
#define GT_N (a.sym[1])
#endif
#ifndef GT_K
#define GT_K (a.sym[2])
#endif
#ifndef GT_MAPS
#define GT_MAPS ((const unsigned char *)a.t[5])
#endif
#ifndef GT_XS
#define GT_XS(m, kb) (((const float *)a.t[1])[(m) * ((GT_K + 127) / 128) + (kb)])
#endif
#ifndef GT_WS
#define GT_WS(i) (((const float *)a.t[3])[i])
#endif
#ifndef GT_STORE
#define GT_STORE(i, v) (((unsigned short *)a.t[4])[i] = gt_bf16(v))
#ifndef GT_STORE2
#define GT_STORE2(i, v0, v1) (((unsigned *)a.t[4])[(i) >> 1] = (unsigned)gt_bf16(v0) | (unsigned)gt_bf16(v1) << 16)
#endif
#endif
#ifndef GT_STORE2
#define GT_STORE2(i, v0, v1) (GT_STORE((i), (v0)), GT_STORE((i) + 1, (v1)))
#endif
#ifndef GT_BN
#define GT_BN 256
#endif
#ifndef GT_STAGES
#define GT_STAGES (GT_BN == 256 ? 4 : 6)
#endif
#ifndef GT_CLUSTER
#define GT_CLUSTER 1
#endif
#ifndef GT_DESC_SWZ
#define GT_DESC_SWZ 1
#endif
#ifndef GT_REGS_P
#define GT_REGS_P 40
#endif
#ifndef GT_REGS_C
#define GT_REGS_C 232
#endif

#include "hopper.cuh"
#ifndef GEMM_TMA_HELPERS
#define GEMM_TMA_HELPERS
#define GT_TILE 16384                     // bytes of a 128-row x 128-byte box (one operand of a stage)
#define GT_STAGE (GT_TILE + GT_BN * 128)  // x's box, then w's GT_BN / 128 boxes
#define GT_SMEM (GT_STAGES * GT_STAGE + 16 * GT_STAGES + 1024) // stages, 2 barriers a stage, 1024-alignment slack

// f32 -> bf16, nearest even (NaN stays NaN)
__device__ __forceinline__ unsigned short gt_bf16(float f) {
    const unsigned u = __float_as_uint(f);
    return (unsigned short)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// a consumer warp's release of a stage: to its CTA's producer and, in a cluster, CTA peer's (peer >= 0)
__device__ __forceinline__ void gt_release(unsigned long long *bar, int peer) {
    hp_mbar_arrive(bar);
    if (peer >= 0) hp_mbar_arrive_cluster(bar, (unsigned)peer);
}
// A K-major operand in the 128-byte swizzle: start address >> 4, leading byte offset 16 (unused),
// stride byte offset 1024 (8-row groups), layout GT_DESC_SWZ in bits 62-63
__device__ __forceinline__ unsigned long long gt_desc(const void *p) { return hp_desc(p, 16, 1024, GT_DESC_SWZ); }
#endif

#if GT_BN != 128 && GT_BN != 256
#error "GT_BN must be 128 or 256"
#endif
#if GT_CLUSTER != 1 && (GT_CLUSTER != 2 || GT_BN != 256)
#error "GT_CLUSTER must be 1, or 2 with GT_BN 256"
#endif
// one entry point (the emulator's translation sees one kernel a file); the forms' bodies by GT_BN
extern "C" __global__ void __launch_bounds__(384, 1) __cluster_dims__(GT_CLUSTER, 1, 1) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(1024) unsigned char gt_dyn[];
    unsigned char *sm = gt_dyn + ((1024 - ((unsigned)__cvta_generic_to_shared(gt_dyn) & 1023u)) & 1023u);
    unsigned long long *full = (unsigned long long *)(sm + GT_STAGES * GT_STAGE), *empty = full + GT_STAGES;
    const long long M = GT_M, N = GT_N, K = GT_K, nkb = (K + 127) / 128, mt = (M + 127) / 128, tiles = mt * ((N + GT_BN - 1) / GT_BN);
    const int wg = threadIdx.x >> 7, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const unsigned char *maps = GT_MAPS;
    if (threadIdx.x == 0) {
        for (int s = 0; s < GT_STAGES; s++) {
            hp_mbar_init(&full[s], 1);
            hp_mbar_init(&empty[s], 8 * GT_CLUSTER); // the consumers' 8 warps (of each CTA of the cluster)
        }
        hp_mbar_fence_init();
        hp_fence_async();
    }
    __syncthreads();
#if GT_BN == 128
    if (wg == 0) { // the producer
        hp_setmaxnreg_dec<GT_REGS_P>();
        if (threadIdx.x == 0) {
            long long it = 0; // K blocks loaded so far: stage it % GT_STAGES, its use it / GT_STAGES
            for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
                const int m0 = (int)(t % mt * 128), n0 = (int)(t / mt * 128);
                for (long long kb = 0; kb < nkb; kb++, it++) {
                    const int s = (int)(it % GT_STAGES);
                    hp_mbar_wait(&empty[s], (unsigned)((it / GT_STAGES) & 1) ^ 1u); // the consumers are done with its last use
                    hp_mbar_expect_tx(&full[s], GT_STAGE);
                    hp_tma_2d(sm + s * GT_STAGE, maps, &full[s], (int)(kb * 128), m0);
                    hp_tma_2d(sm + s * GT_STAGE + GT_TILE, maps + 128, &full[s], (int)(kb * 128), n0);
                }
            }
        }
        return;
    }
    hp_setmaxnreg_inc<GT_REGS_C>();
    const int c = wg - 1, wq = warp & 3;            // consumer c: rows 64c .. 64c + 63 of the tile
    const int r0 = 64 * c + 16 * wq + (lane >> 2);  // this thread's rows r0, r0 + 8; cols 8j + 2(lane % 4) (+1)
    float acc[64], p0[64], p1[64];
    long long it = 0;
    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
        const long long m0 = t % mt * 128, n0 = t / mt * 128, ra = m0 + r0, rb = ra + 8;
        const long long wsb = n0 / 128 * nkb; // the tile's 128 columns share one weight block
#pragma unroll
        for (int i = 0; i < 64; i++) acc[i] = 0.0f;
        float s0a = 0.0f, s0b = 0.0f, s1a = 0.0f, s1b = 0.0f; // the scales of the partials' K blocks
        // K block kb into part: wait for its stage, 4 wgmma (K 32 each) committed as one group, its scales
#define GT_ISSUE(part, kb, sa, sb)                                                                          \
        {                                                                                                   \
            const long long i_ = it + (kb);                                                                 \
            const int s_ = (int)(i_ % GT_STAGES);                                                           \
            hp_mbar_wait(&full[s_], (unsigned)((i_ / GT_STAGES) & 1));                                      \
            const unsigned long long da_ = gt_desc(sm + s_ * GT_STAGE + c * 8192), db_ = gt_desc(sm + s_ * GT_STAGE + GT_TILE); \
            hp_wg_fence();                                                                                  \
            _Pragma("unroll") for (int k_ = 0; k_ < 4; k_++) hp_wgmma128_e4m3(part, da_ + 2 * k_, db_ + 2 * k_, k_ > 0); \
            hp_wg_commit();                                                                                 \
            const float w_ = GT_WS(wsb + (kb));                                                             \
            sa = (ra < M ? GT_XS(ra, (kb)) : 0.0f) * w_;                                                   \
            sb = (rb < M ? GT_XS(rb, (kb)) : 0.0f) * w_;                                                   \
        }
        // the partial of K block kb done: its stage back to the producer, then acc += part * scales
#define GT_PROMOTE(part, kb, sa, sb)                                                                        \
        {                                                                                                   \
            hp_hold64(part);                                                                                \
            if (lane == 0) hp_mbar_arrive(&empty[(int)((it + (kb)) % GT_STAGES)]);                          \
            _Pragma("unroll") for (int i_ = 0; i_ < 64; i_++) acc[i_] += part[i_] * ((i_ & 2) ? sb : sa);    \
        }
        // steady state: K block kb - 1 in p0 (issued), kb into p1, then kb + 1 into p0, each partial
        // promoted while the other's wgmma run; straight-line bodies so the compiler keeps them overlapped
        GT_ISSUE(p0, 0, s0a, s0b)
        long long kb = 1;
        for (; kb + 1 < nkb; kb += 2) {
            GT_ISSUE(p1, kb, s1a, s1b)
            hp_wg_wait1();
            GT_PROMOTE(p0, kb - 1, s0a, s0b)
            GT_ISSUE(p0, kb + 1, s0a, s0b)
            hp_wg_wait1();
            GT_PROMOTE(p1, kb, s1a, s1b)
        }
        if (kb < nkb) { // one K block left: p0 holds kb - 1
            GT_ISSUE(p1, kb, s1a, s1b)
            hp_wg_wait1();
            GT_PROMOTE(p0, kb - 1, s0a, s0b)
            hp_wg_wait0();
            GT_PROMOTE(p1, kb, s1a, s1b)
        } else {
            hp_wg_wait0();
            GT_PROMOTE(p0, kb - 1, s0a, s0b)
        }
#undef GT_ISSUE
#undef GT_PROMOTE
        it += nkb;
#pragma unroll
        for (int i = 0; i < 64; i++) {
            const long long m = (i & 2) ? rb : ra, n = n0 + 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
            if (m < M && n < N) GT_STORE(m * N + n, acc[i]);
        }
    }
#else // GT_BN == 256
    // work unit u: row tiles GT_CLUSTER u / mt2 .. + GT_CLUSTER - 1 (this CTA's: + rank) of column tile u / mt2
    const unsigned rank = GT_CLUSTER > 1 ? hp_cluster_rank() : 0u;
    const long long mt2 = (mt + GT_CLUSTER - 1) / GT_CLUSTER, units = mt2 * ((N + 255) / 256);
    const long long u0 = blockIdx.x / GT_CLUSTER, du = gridDim.x / GT_CLUSTER;
    if (GT_CLUSTER > 1) hp_cluster_sync(); // the other CTA's barriers initialized before any copy or arrival reaches them
    (void)tiles;
    if (wg == 0) { // the producer
        hp_setmaxnreg_dec<GT_REGS_P>();
        if (threadIdx.x == 0) {
            long long it = 0; // K blocks loaded so far: stage it % GT_STAGES, its use it / GT_STAGES
            for (long long u = u0; u < units; u += du) {
                const int m0 = (int)((u % mt2 * GT_CLUSTER + rank) * 128), n0 = (int)(u / mt2 * 256);
                const bool two = n0 + 128 < N; // the tile's second 128 columns exist
                for (long long kb = 0; kb < nkb; kb++, it++) {
                    const int s = (int)(it % GT_STAGES);
                    unsigned char *st = sm + s * GT_STAGE;
                    hp_mbar_wait(&empty[s], (unsigned)((it / GT_STAGES) & 1) ^ 1u); // the consumers are done with its last use
                    hp_mbar_expect_tx(&full[s], two ? 3 * GT_TILE : 2 * GT_TILE);
                    hp_tma_2d(st, maps, &full[s], (int)(kb * 128), m0);
                    if (GT_CLUSTER == 1) {
                        hp_tma_2d(st + GT_TILE, maps + 128, &full[s], (int)(kb * 128), n0);
                        if (two) hp_tma_2d(st + 2 * GT_TILE, maps + 128, &full[s], (int)(kb * 128), n0 + 128);
                    } else if (rank == 0 || two) // w's box `rank`, into both CTAs
                        hp_tma_2d_mc(st + (1 + rank) * GT_TILE, maps + 128, &full[s], (int)(kb * 128), n0 + 128 * (int)rank, 3);
                }
            }
            // a cluster's CTA stays until both CTAs' consumers released each stage's last use
            for (int i = 0; GT_CLUSTER > 1 && i < GT_STAGES; i++, it++)
                hp_mbar_wait(&empty[it % GT_STAGES], (unsigned)((it / GT_STAGES) & 1) ^ 1u);
        }
        return;
    }
    hp_setmaxnreg_inc<GT_REGS_C>();
    const int c = wg - 1, wq = warp & 3;            // consumer c: rows 64c .. 64c + 63 of the tile
    const int r0 = 64 * c + 16 * wq + (lane >> 2);  // this thread's rows r0, r0 + 8; cols 128h + 8j + 2(lane % 4) (+1)
    const int peer = GT_CLUSTER > 1 ? (int)(rank ^ 1u) : -1; // the other CTA of the cluster
    float acc[128], p[64];
    long long it = 0;
    for (long long u = u0; u < units; u += du) {
        const long long m0 = (u % mt2 * GT_CLUSTER + rank) * 128, n0 = u / mt2 * 256, ra = m0 + r0, rb = ra + 8;
        const bool two = n0 + 128 < N;
        const long long wsb = n0 / 128 * nkb; // the weight blocks of the halves: rows wsb / nkb and the next
#pragma unroll
        for (int i = 0; i < 128; i++) acc[i] = 0.0f;
        // K block 0's scales: x's rows ra, rb and the halves' weight blocks
        float xa = ra < M ? GT_XS(ra, 0) : 0.0f, xb = rb < M ? GT_XS(rb, 0) : 0.0f;
        float w0 = GT_WS(wsb), w1 = two ? GT_WS(wsb + nkb) : 0.0f;
        for (long long kb = 0; kb < nkb; kb++, it++) {
            const int s = (int)(it % GT_STAGES);
            unsigned char *st = sm + s * GT_STAGE;
            hp_mbar_wait(&full[s], (unsigned)((it / GT_STAGES) & 1));
            const unsigned long long da = gt_desc(st + c * 8192), db = gt_desc(st + GT_TILE);
            hp_wg_fence();
#pragma unroll
            for (int k = 0; k < 4; k++) hp_wgmma128_e4m3(p, da + 2 * k, db + 2 * k, k > 0);
            hp_wg_commit();
            // the next K block's scales, loaded while the wgmma run
            const long long nk = kb + 1 < nkb ? kb + 1 : kb;
            const float nxa = ra < M ? GT_XS(ra, nk) : 0.0f, nxb = rb < M ? GT_XS(rb, nk) : 0.0f;
            const float nw0 = GT_WS(wsb + nk), nw1 = two ? GT_WS(wsb + nkb + nk) : 0.0f;
            hp_wg_wait0();
            hp_hold64(p);
            if (!two && lane == 0) gt_release(&empty[s], peer); // the stage read: back to the producer(s)
            {
                const float sa = xa * w0, sb = xb * w0;
#pragma unroll
                for (int i = 0; i < 64; i++) acc[i] += p[i] * ((i & 2) ? sb : sa);
            }
            if (two) { // the second half: the same rows of x, w's next 128 rows
                const unsigned long long dc = gt_desc(st + 2 * GT_TILE);
                hp_wg_fence();
#pragma unroll
                for (int k = 0; k < 4; k++) hp_wgmma128_e4m3(p, da + 2 * k, dc + 2 * k, k > 0);
                hp_wg_commit();
                hp_wg_wait0();
                hp_hold64(p);
                if (lane == 0) gt_release(&empty[s], peer);
                const float sa = xa * w1, sb = xb * w1;
#pragma unroll
                for (int i = 0; i < 64; i++) acc[64 + i] += p[i] * ((i & 2) ? sb : sa);
            }
            xa = nxa, xb = nxb, w0 = nw0, w1 = nw1;
        }
        // the epilogue: two adjacent columns a store where N is even (i even: columns n, n + 1)
#pragma unroll
        for (int i = 0; i < 128; i += 2) {
            const long long m = (i & 2) ? rb : ra, n = n0 + 128 * (i >> 6) + 8 * ((i & 63) >> 2) + 2 * (lane & 3);
            if (m >= M || n >= N) continue;
            if (n + 1 < N && (N & 1) == 0) GT_STORE2(m * N + n, acc[i], acc[i + 1]);
            else {
                GT_STORE(m * N + n, acc[i]);
                if (n + 1 < N) GT_STORE(m * N + n + 1, acc[i + 1]);
            }
        }
    }
#endif
}
#undef DSCC_ENTRY
#undef GT_M
#undef GT_N
#undef GT_K
#undef GT_MAPS
#undef GT_XS
#undef GT_WS
#undef GT_STORE
#undef GT_STORE2
#undef GT_BN
#undef GT_CLUSTER
#undef GT_STAGES
#undef GT_DESC_SWZ
#undef GT_REGS_P
#undef GT_REGS_C
