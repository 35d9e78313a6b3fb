// expert_tma.cuh — the routed experts' grouped FP8 GEMM at prefill size
// (fp8_expert_linear, tens to hundreds of rows an expert) on Hopper's TMA
// and wgmma, in DeepGEMM's grouped class (its design, our code):
// y_s[r, N] = x[src(r), K] . w_s[e(r)][N, K]^T for every routed row r and
// each of XT_NW weights s sharing the routing (gate and up), E4M3 codes
// with DeepSeek's block scales (1x128 of x, 128x128 of w), f32 promotion
// every 128 of K.
//
// * Work units: (bucket, weight s, 128-output tile of w_s). The sort phase
//   before (gen_expert.c) lists the buckets that have rows, longest first,
//   the slots of id -1 last (XT_ORD: bucket j of the list at XT_ORD[j], the
//   count at XT_ORD[XT_E + 1]); unit u is bucket u / (XT_NW * nt) of the
//   list, so the units running at once share one expert's rows of x (read
//   from L2) and each weight byte of a hit expert is read from HBM once.
// * Persistent: gridDim.x blocks (an SM each) walk the units u =
//   blockIdx.x, + gridDim.x, ...; a block takes ALL of its expert's rows,
//   128 * XT_MT a pass over K (a larger expert: more passes of the same
//   unit, the weight re-read from L2 or HBM).
// * 384 threads: warpgroup 0 the producer (setmaxnreg down), warpgroups 1
//   and 2 the consumers (setmaxnreg up). A ring of XT_STAGES stages, each
//   the 128 x 128-byte box of the weight (TMA: cp.async.bulk.tensor.2d of
//   the 2-d map over w_s's [E * N][K] codes, rows e * N + 128 ot ..;
//   columns past K land as zeros, rows past N belong to the next expert and
//   are never stored) and 128 * XT_MT rows of x gathered through the sort's
//   permutation: producer thread p copies rows p, p + 128 of the pass by
//   cp.async, 16 bytes at a time, into the 128-byte swizzle the wgmma
//   descriptors read (chunk c of row i at chunk c ^ (i % 8)); K past the
//   end and rows past the expert's count in a row tile that has rows land
//   as zeros, row tiles without rows are neither loaded nor computed. A
//   stage's "full" mbarrier completes on thread 0's arrive.expect_tx with
//   the box's bytes and the 128 producer threads' cp.async.mbarrier.arrive
//   .noinc; its "empty" one on the 8 consumer warps' arrivals.
// * Consumer c (0, 1) holds row tiles c and c + 2 of a pass (64 rows each,
//   the second with XT_MT 2): per K block and row tile 4 wgmma
//   m64n128k32 E4M3 into a partial, then acc += partial * (x's scale of
//   the row * w's block scale).
// * Epilogue: each thread stores its accumulators (rows < the pass's,
//   columns < N) to the routed rows they belong to (scattered through the
//   permutation); the -1 bucket's units store zeros, nothing loaded.
// * Level 2 (XT_LVL 2; an H100's ncu of level 1: 65% of the stalls on
//   global loads that used 4.5 of each 32-byte sector, the consumers'
//   scale loads of scattered rows on the critical path of every K block):
//   the consumers read no global memory in the K loop. With each stage the
//   producer also copies (4-byte cp.async, counted by the same "full"
//   barrier) x's scale of each row of the pass and w's block scale into
//   shared memory beside the ring (BM + 4 floats a stage); each producer
//   warp resolves its 32 (64) rows of the pass into a table in shared
//   memory once a pass (warp-private: __syncwarp), and gathers x 8 lanes a
//   row, 16 bytes each, 4 whole 128-byte rows a warp an instruction (level
//   1: a thread a row, 32 rows an instruction, half of each sector). Its
//   epilogue, where N % 4 == 0 and XT_STORE4 is given: lanes 2q, 2q + 1
//   of a quad trade halves of two adjacent 8-column blocks, each stores 4
//   adjacent columns at once, 16 whole columns of a row a warp's store.
// * Split units (XT_SPLIT 1, DSCC_EXPERT_TMA=3): a unit is (pass of at most
//   128 XT_MT rows of a bucket, weight s, 128-output tile), so a block takes
//   one pass and an expert's passes are units of their own; the sort phase
//   lists the passes (XT_PASSES: per pass its bucket, the bucket's first
//   pass, first sorted position and rows; XT_NPASS of them, the longest
//   bucket's first). Unit u is of pass-list entry u / ntw (the same
//   bucket), and within a bucket of np passes and first pass P0 local
//   index l = u - ntw P0 is weight tile l / np, pass l % np: the passes of
//   one weight tile are adjacent units, run side by side on adjacent SMs,
//   so each weight byte crosses HBM once (the others read it from L2)
//   where one block's passes re-read it from HBM ~40 us later (level 2 at
//   a 1,024-token prefill: Σ(passes - 1) x 44 MB more). The weights load
//   evict-first (XT_EF) only where a unit is its tile's only reader.
//
// Parameters (#define; expressions may use the kernel's Args `a`):
//   DSCC_ENTRY          the entry point's name
//   XT_E                experts (bucket XT_E: the slots of id -1)
//   XT_N, XT_K          outputs of an expert's weight, K (K % 16 == 0: the maps' row pitch)
//   XT_NW               weights sharing the routing (1, or 2: gate and up)
//   XT_MAPS             the address (global memory) of XT_NW CUtensorMaps, 128 bytes each: w_s's
//                       [E * N][K] codes as a 2-d UINT8 map, box 128 x 128, 128-byte swizzle
//   XT_X                x's codes (const unsigned char *), rows of XT_K
//   XT_SRC(r)           the row of x routed row r reads (r, or r / slots when x is per token)
//   XT_XS(m, kb)        x's f32 scale of row m, K block kb
//   XT_WS(s, i)         w_s's f32 scales [E][ceil(N/128)][ceil(K/128)]
//   XT_STORE(s, i, v)   stores y_s[i] (f32 v) in its dtype (i = r * N + o)
//   XT_STORE2(s, i, v0, v1)  stores y_s[i], y_s[i + 1] (i even, N even); default two XT_STOREs
//   XT_CNT, XT_PERM     the sort's ints (count of bucket b at [b], its first sorted position at
//                       [XT_E + 1 + b]) and sorted position -> routed row (const int *)
//   XT_ORD              the bucket list (const int *; see above)
//   XT_SPLIT            1: the split units (see above; default 0), which also need:
//   XT_PASSES, XT_NPASS the pass list (const int *, 4 ints a pass) and its length (an int expression)
//   XT_MT               row tiles of 64 a consumer holds: 1 or 2 (default 1: 128 rows a pass)
//   XT_STAGES           stages of the ring (default 4 at XT_MT 2, 6 at 1)
//   XT_LVL              1 or 2 (default 1; see above); level 2 also needs:
//   XT_EF               level 2: 1 loads the weights under an L2 evict-first policy (default 0)
//   XT_XSP(m, kb), XT_WSP(s, i)  the addresses (const float *) of XT_XS(m, kb) and XT_WS(s, i)
//   XT_STORE4(s, i, v0, v1, v2, v3)  (optional, level 2) stores y_s[i .. i + 3] (i % 4 == 0, N % 4 == 0), a statement
//   XT_REGS_P, XT_REGS_C  registers a thread after setmaxnreg: producer, consumers (56, 224 at XT_MT 1; 40, 232 at 2:
//                       128 P + 256 C must not exceed the 384 x 168 the block is launched with)
// Dynamic shared memory: XT_SMEM bytes (the launch's; level 2: 4 (XT_STAGES (128 XT_MT + 4) + 128 XT_MT) more).
#ifndef XT_X // compiled on its own (test_codegen): a stand-in for the module's prelude
#include "args.cuh"
#define XT_E 256
#define XT_N 2048LL
#define XT_K 7168LL
#define XT_NW 2
#define XT_MAPS ((const unsigned char *)a.t[0])
#define XT_X ((const unsigned char *)a.t[1])
#define XT_SRC(r) ((r) / 8)
#define XT_XS(m, kb) (((const float *)a.t[2])[(kb) * a.sym[0] + (m)])
#define XT_WS(s, i) (((const float *)a.t[3 + (s)])[i])
#define XT_STORE(s, i, v) (((float *)a.t[5 + (s)])[i] = (v))
#define XT_CNT ((const int *)a.t[7])
#define XT_PERM ((const int *)a.t[8])
#define XT_ORD (XT_CNT + 2 * (XT_E + 1) + 2)
#endif
#ifndef XT_STORE2
#define XT_STORE2(s, i, v0, v1) (XT_STORE((s), (i), (v0)), XT_STORE((s), (i) + 1, (v1)))
#endif
#ifndef XT_MT
#define XT_MT 1
#endif
#ifndef XT_LVL
#define XT_LVL 1
#endif
#if XT_LVL != 1 && XT_LVL != 2
#error "XT_LVL must be 1 or 2"
#endif
#ifndef XT_EF
#define XT_EF 0
#endif
#ifndef XT_SPLIT
#define XT_SPLIT 0
#endif
#ifndef XT_STAGES
#define XT_STAGES (XT_MT == 2 ? 4 : 6)
#endif
#ifndef XT_REGS_P
#define XT_REGS_P (XT_MT == 2 ? 40 : 56)
#endif
#ifndef XT_REGS_C
#define XT_REGS_C (XT_MT == 2 ? 232 : 224)
#endif
#if XT_MT != 1 && XT_MT != 2
#error "XT_MT must be 1 or 2"
#endif
// setmaxnreg only moves registers between the block's warps: the block holds what it was launched with, 168 a
// thread at 384 threads (65536 / 384, a multiple of 8), and a consumer's setmaxnreg.inc waits for ever for more
static_assert(128 * (XT_REGS_P) + 256 * (XT_REGS_C) <= 384 * 168, "expert_tma.cuh: the warpgroups' registers exceed the block's");
#define XT_BOX 16384                                 // bytes of a 128-row x 128-byte box
#define XT_STAGE (XT_BOX * (1 + XT_MT))              // w's box, then 128 XT_MT rows of x
#if XT_LVL == 2 // after the barriers: each stage's scales (128 XT_MT of x's rows, then w's, 4 floats of pad), the pass's x rows
#define XT_SCL (XT_STAGES * XT_STAGE + 16 * XT_STAGES)
#define XT_SROW (XT_SCL + 4 * XT_STAGES * (128 * XT_MT + 4))
#define XT_SMEM (XT_SROW + 4 * 128 * XT_MT + 1024)
#define XT_OWN(p) (16 * (((p) & 31) >> 2) + 4 * ((p) >> 5) + ((p) & 3)) // the first row of the pass producer thread p resolves
#else
#define XT_SMEM (XT_STAGES * XT_STAGE + 16 * XT_STAGES + 1024) // stages, 2 barriers a stage, 1024-alignment slack
#define XT_OWN(p) (p)
#endif

#include "hopper.cuh"
#ifndef XT_HELPERS // once a module
#define XT_HELPERS
// 16 bytes global -> shared (cp.async.cg), zeros when !v
__device__ __forceinline__ void xt_cp16(void *dst, const void *src, bool v) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src), "r"(v ? 16 : 0)
                 : "memory");
}
// an L2 policy whose lines are evicted first (the weights: each byte read once, streamed past x's rows, which
// the units of an expert read again while they run)
__device__ __forceinline__ unsigned long long xt_policy_ef() {
    unsigned long long p;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
    return p;
}
// hp_tma_2d under the L2 policy pol
__device__ __forceinline__ void xt_tma_2d_hint(void *dst, const void *map, void *bar, int c0, int c1, unsigned long long pol) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], [%4], %5;\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(map), "r"(c0), "r"(c1), "r"((unsigned)__cvta_generic_to_shared(bar)), "l"(pol)
                 : "memory");
}
// 4 bytes global -> shared (cp.async.ca), zeros when !v
__device__ __forceinline__ void xt_cp4(void *dst, const void *src, bool v) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src), "r"(v ? 4 : 0)
                 : "memory");
}
// The split units' pass entry (XT_SPLIT): the 4 ints of pass-list entry i, raw (decoded by xt_unit when used, so
// that the loads' latency overlaps the unit before)
__device__ __forceinline__ void xt_pass_load(int *q, const int *passes, int i) {
#pragma unroll
    for (int k = 0; k < 4; k++) q[k] = passes[4 * i + k];
}
// ... unit u of entry q: its bucket, rows, first sorted position, weight tile (of ntw) and whether it is the tile's
// only reader (the bucket has one pass); bm rows a pass
__device__ __forceinline__ void xt_unit(const int *q, int u, int ntw, int bm, int &b, int &c0, int &first, int &wt, int &solo) {
    const int np = (q[3] + bm - 1) / bm, l = u - ntw * q[1], ps = l % np;
    b = q[0], wt = l / np, first = q[2] + bm * ps, c0 = q[3] - bm * ps < bm ? q[3] - bm * ps : bm, solo = np == 1;
}
// A K-major operand in the 128-byte swizzle: start address >> 4, leading byte offset 16 (unused),
// stride byte offset 1024 (8-row groups), layout 1 (the 128-byte swizzle) in bits 62-63
__device__ __forceinline__ unsigned long long xt_desc(const void *p) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    return (unsigned long long)((s & 0x3ffffu) >> 4) | 1ull << 16 | (1024ull >> 4) << 32 | 1ull << 62;
}
#endif

// one entry point (the emulator's translation sees one kernel a file)
extern "C" __global__ void __launch_bounds__(384, 1) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(1024) unsigned char xt_dyn[];
    unsigned char *sm = xt_dyn + ((1024 - ((unsigned)__cvta_generic_to_shared(xt_dyn) & 1023u)) & 1023u);
    unsigned long long *full = (unsigned long long *)(sm + XT_STAGES * XT_STAGE), *empty = full + XT_STAGES;
    const long long N = XT_N, K = XT_K;
    const int nkb = (int)((K + 127) / 128), nt = (int)((N + 127) / 128), ntw = XT_NW * nt;
    const int EB = XT_E + 1, BM = 128 * XT_MT; // buckets; rows a pass
    const int *cnt = XT_CNT, *perm = XT_PERM, *ord = XT_ORD;
#if XT_SPLIT
    const int units = (XT_NPASS) * ntw;
    (void)EB, (void)cnt, (void)ord; // the pass list holds what the bucket list's counts give at level 2
#else
    const int units = ord[EB] * ntw;
#endif
    const int wg = threadIdx.x >> 7, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < XT_STAGES; s++) {
            hp_mbar_init(&full[s], 1 + 128); // thread 0's expect_tx, the producer threads' cp.async arrivals
            hp_mbar_init(&empty[s], 8);      // the consumers' 8 warps
        }
        hp_mbar_fence_init();
        hp_fence_async();
    }
    __syncthreads();
    if (wg == 0) { // the producer
        hp_setmaxnreg_dec<XT_REGS_P>();
        const int p = threadIdx.x;
#if XT_LVL == 2 && XT_EF && !XT_SPLIT
        const unsigned long long pol = xt_policy_ef(); // the weights' L2 policy: evict first
#endif
        int it = 0; // K blocks loaded so far: stage it % XT_STAGES, its use it / XT_STAGES
        // a unit's bucket b, rows c0, first sorted position and this thread's x rows of its first pass, loaded
        // during the unit before (the loads' latency off the ring's critical path at the units' boundary)
        int u = blockIdx.x, b = 0, c0 = 0, first = 0;
#if XT_SPLIT
        int wt = 0, solo = 1; // the unit's weight tile (of ntw); whether it is the tile's only reader
#define XT_WT wt
#else
#define XT_WT (u % ntw) // (level 2: from u, no register held; ptxas spills more at mt=2 with it held)
#endif
        int src0[XT_MT];
#define XT_SRC_ROWS(src, c0, first, p0) /* this thread's rows p + 128 j of the pass at p0: their rows of x (-1: zeros) */ \
        _Pragma("unroll") for (int j = 0; j < XT_MT; j++) {                                                                 \
            const int i_ = XT_OWN(p) + 128 * j;                                                                             \
            src[j] = i_ < (c0) - (p0) && i_ < BM ? (int)XT_SRC(perm[(first) + (p0) + i_]) : -1;                             \
        }
        if (u < units) {
#if XT_SPLIT
            int q[4];
            xt_pass_load(q, XT_PASSES, u / ntw);
            xt_unit(q, u, ntw, BM, b, c0, first, wt, solo);
#else
            b = ord[u / ntw], c0 = cnt[b], first = cnt[EB + b];
#endif
            XT_SRC_ROWS(src0, c0, first, 0)
        }
        for (; u < units; u += gridDim.x) {
            const int ws = XT_WT / nt, wrow = (int)(b * N + XT_WT % nt * 128LL);
#if XT_LVL == 2
            const long long wsb = ((long long)b * nt + XT_WT % nt) * nkb; // w_s's scales of this tile, K block 0
            int *srow = (int *)(sm + XT_SROW);
#endif
            // the next unit: its bucket's load issued (level 3 loads its pass entry at XT_NEXT, where level 2 loads the
            // bucket's counts: its 4 ints held from here spilled at 56 registers; ptxas, V3's shapes)
            const int un = u + gridDim.x;
#if XT_SPLIT
            int bn = 0;
#define XT_NEXT_UNIT()                                                                                                  \
            {                                                                                                               \
                int qn[4];                                                                                                  \
                xt_pass_load(qn, XT_PASSES, un / ntw);                                                                      \
                xt_unit(qn, un, ntw, BM, bn, cn, fn, wn, sn);                                                               \
            }
#else
            const int bn = un < units ? ord[un / ntw] : 0;
#define XT_NEXT_UNIT() (cn = cnt[bn], fn = cnt[EB + bn])
#endif
            int cn = 0, fn = 0, srcn[XT_MT];
#if XT_SPLIT
            int wn = 0, sn = 1;
#endif
#define XT_NEXT() /* the next unit's rows (once a unit: before its first K block's copies, or with the zeros) */              \
            {                                                                                                               \
                if (un < units) {                                                                                           \
                    XT_NEXT_UNIT();                                                                                         \
                    XT_SRC_ROWS(srcn, cn, fn, 0)                                                                            \
                }                                                                                                           \
            }
            if (b >= XT_E) { // the slots of id -1: zeros (stored here: the consumers' registers hold the accumulators)
                const long long n0 = XT_WT % nt * 128LL;
                for (long long i = p; i < (long long)c0 * 128; i += 128) {
                    const long long r = perm[first + i / 128], o = n0 + i % 128;
                    if (o < N) XT_STORE(ws, r * N + o, 0.0f);
                }
                XT_NEXT()
            } else {
                const unsigned char *map = XT_MAPS + 128 * ws;
                for (int p0 = 0; p0 < c0; p0 += BM) {
                    const int rows = c0 - p0 < BM ? c0 - p0 : BM, tiles = (rows + 63) / 64;
                    int src[XT_MT];
                    if (p0 == 0) {
#pragma unroll
                        for (int j = 0; j < XT_MT; j++) src[j] = src0[j];
                    } else
                        XT_SRC_ROWS(src, c0, first, p0)
#if XT_LVL == 2
                    __syncwarp(); // the warp's lanes read the last pass's rows: then the table is rewritten
#pragma unroll
                    for (int j = 0; j < XT_MT; j++) srow[XT_OWN(p) + 128 * j] = src[j];
                    __syncwarp();
#endif
                    for (int kb = 0; kb < nkb; kb++, it++) {
                        const int s = it % XT_STAGES;
                        unsigned char *st = sm + s * XT_STAGE;
                        hp_mbar_wait(&empty[s], (unsigned)((it / XT_STAGES) & 1) ^ 1u); // the consumers are done with its last use
                        if (p == 0) {
                            hp_mbar_expect_tx(&full[s], XT_BOX);
#if XT_LVL == 2 && XT_EF
#if XT_SPLIT
                            if (solo) xt_tma_2d_hint(st, map, &full[s], kb * 128, wrow, xt_policy_ef()); // (made here: 2 registers fewer)
                            else hp_tma_2d(st, map, &full[s], kb * 128, wrow); // other units read the tile: kept
#else
                            xt_tma_2d_hint(st, map, &full[s], kb * 128, wrow, pol);
#endif
#else
                            hp_tma_2d(st, map, &full[s], kb * 128, wrow);
#endif
                        }
#if XT_LVL == 2
                        float *sc = (float *)(sm + XT_SCL) + s * (BM + 4);
                        if (p == 0) xt_cp4(sc + BM, XT_WSP(ws, wsb + kb), true); // w's block scale
#pragma unroll
                        for (int j = 0; j < XT_MT; j++) { // x's scales of this thread's rows (zeros past the rows)
                            const int i = XT_OWN(p) + 128 * j;
                            if (i / 64 < tiles) xt_cp4(sc + i, XT_XSP(src[j] < 0 ? 0 : src[j], kb), src[j] >= 0);
                        }
                        // x's rows: 8 lanes a row, 16 bytes each, 4 rows a warp an instruction (whole sectors)
#pragma unroll 4 // (8: the producer spills at setmaxnreg's 56 registers; ptxas, V3's shapes)
                        for (int q = 0; q < 8 * XT_MT; q++) {
                            const int i = 16 * q + 4 * (p >> 5) + ((p & 31) >> 3), ch = p & 7;
                            if (i / 64 >= tiles) continue; // a row tile without rows: not computed (q / 4: the warp's alike)
                            const int sr = srow[i];
                            const bool v = sr >= 0 && 128LL * kb + 16 * ch < K;
                            xt_cp16(st + XT_BOX + i * 128 + ((ch ^ (i & 7)) << 4), v ? XT_X + (long long)sr * K + 128LL * kb + 16 * ch : XT_X, v);
                        }
#else
#pragma unroll
                        for (int j = 0; j < XT_MT; j++) {
                            const int i = p + 128 * j;
                            if (i / 64 >= tiles) continue; // a row tile without rows: not computed
                            unsigned char *row = st + XT_BOX + i * 128;
                            const unsigned char *sx = XT_X + (src[j] < 0 ? 0LL : (long long)src[j] * K + 128LL * kb);
#pragma unroll
                            for (int c = 0; c < 8; c++) {
                                const bool v = src[j] >= 0 && 128LL * kb + 16 * c < K;
                                xt_cp16(row + ((c ^ (i & 7)) << 4), v ? sx + 16 * c : XT_X, v);
                            }
                        }
#endif
                        hp_cp_arrive(&full[s]);
                        if (p0 == 0 && kb == 0) XT_NEXT()
                    }
                }
            }
#undef XT_NEXT
#undef XT_NEXT_UNIT
            b = bn, c0 = cn, first = fn;
#if XT_SPLIT
            wt = wn, solo = sn;
#endif
#pragma unroll
            for (int j = 0; j < XT_MT; j++) src0[j] = srcn[j];
        }
#undef XT_SRC_ROWS
#undef XT_WT
        // stay until the consumers released the ring's last uses: every copy this thread issued has landed then
        for (int i = 0; i < XT_STAGES; i++, it++) hp_mbar_wait(&empty[it % XT_STAGES], (unsigned)((it / XT_STAGES) & 1) ^ 1u);
        return;
    }
    hp_setmaxnreg_inc<XT_REGS_C>();
    const int c = wg - 1, wq = warp & 3; // consumer c: row tiles c, c + 2 of a pass
    const int r0 = 16 * wq + (lane >> 2);                         // this thread's rows r0, r0 + 8 of a tile; cols 8j + 2(lane % 4) (+1)
    float acc[XT_MT][64], part[64];
    // the unit's bucket, rows, first sorted position, weight tile: loaded a unit ahead
    int it = 0, u = blockIdx.x, b = 0, c0 = 0, first = 0;
#if XT_SPLIT
    int wt = 0, solo = 1;
#define XT_WT wt
#else
#define XT_WT (u % ntw)
#endif
    if (u < units) {
#if XT_SPLIT
        int q[4];
        xt_pass_load(q, XT_PASSES, u / ntw);
        xt_unit(q, u, ntw, BM, b, c0, first, wt, solo);
        (void)solo;
#else
        b = ord[u / ntw], c0 = cnt[b], first = cnt[EB + b];
#endif
    }
    for (; u < units; u += gridDim.x) {
        const int ws = XT_WT / nt, ot = XT_WT % nt, n0 = 128 * ot;
        const int un = u + gridDim.x; // the next unit: its bucket's (pass's) load issued
#if XT_SPLIT
        int qn[4] = {0, 0, 0, 1}, bn = 0;
        if (un < units) xt_pass_load(qn, XT_PASSES, un / ntw);
#define XT_NEXT_UNIT() xt_unit(qn, un, ntw, BM, bn, cn, fn, wn, solo)
#else
        const int bn = un < units ? ord[un / ntw] : 0;
#define XT_NEXT_UNIT() (cn = cnt[bn], fn = cnt[EB + bn])
#endif
        int cn = 0, fn = 0;
#if XT_SPLIT
        int wn = 0;
#endif
        if (b >= XT_E) { // the slots of id -1: the producer stores their zeros
            if (un < units) XT_NEXT_UNIT();
            b = bn, c0 = cn, first = fn;
#if XT_SPLIT
            wt = wn;
#endif
            continue;
        }
#if XT_LVL == 1
        const long long wsb = ((long long)b * nt + ot) * nkb; // w_s's scales of this tile, K block 0
#endif
        for (int p0 = 0; p0 < c0; p0 += BM) {
            const int rows = c0 - p0 < BM ? c0 - p0 : BM;
            bool on[XT_MT]; // the row tile has rows
#if XT_LVL == 1
            int ra[XT_MT], rb[XT_MT]; // this thread's x rows (-1: past the pass's rows)
#else
            int ya[XT_MT], yb[XT_MT]; // the routed rows of this thread's rows (-1: past the pass's), for the epilogue: loaded now
#endif
#pragma unroll
            for (int j = 0; j < XT_MT; j++) {
                on[j] = 64 * (c + 2 * j) < rows;
#if XT_LVL == 2
                const int ia = 64 * (c + 2 * j) + r0, ib = ia + 8;
                ya[j] = ia < rows ? perm[first + p0 + ia] : -1;
                yb[j] = ib < rows ? perm[first + p0 + ib] : -1;
#else
                const int ia = 64 * (c + 2 * j) + r0, ib = ia + 8;
                ra[j] = ia < rows ? (int)XT_SRC(perm[first + p0 + ia]) : -1;
                rb[j] = ib < rows ? (int)XT_SRC(perm[first + p0 + ib]) : -1;
#endif
#pragma unroll
                for (int i = 0; i < 64; i++) acc[j][i] = 0.0f;
            }
            for (int kb = 0; kb < nkb; kb++, it++) {
                const int s = it % XT_STAGES;
                unsigned char *st = sm + s * XT_STAGE;
#if XT_LVL == 2
                hp_mbar_wait(&full[s], (unsigned)((it / XT_STAGES) & 1));
                hp_fence_async();
                const float *sc = (const float *)(sm + XT_SCL) + s * (BM + 4); // the producer's scales of the stage
                const float w = sc[BM];
#else
                const float w = XT_WS(ws, wsb + kb);
                hp_mbar_wait(&full[s], (unsigned)((it / XT_STAGES) & 1));
                hp_fence_async();
#endif
                const unsigned long long db = xt_desc(st);
#pragma unroll
                for (int j = 0; j < XT_MT; j++) {
                    if (!on[j]) continue;
                    const unsigned long long da = xt_desc(st + XT_BOX + (c + 2 * j) * 8192);
                    hp_wg_fence();
#pragma unroll
                    for (int k = 0; k < 4; k++) hp_wgmma128_e4m3(part, da + 2 * k, db + 2 * k, k > 0);
                    hp_wg_commit();
#if XT_LVL == 2
                    const float sa = sc[64 * (c + 2 * j) + r0] * w, sb = sc[64 * (c + 2 * j) + r0 + 8] * w;
#else
                    const float sa = ra[j] >= 0 ? XT_XS((long long)ra[j], kb) * w : 0.0f, sb = rb[j] >= 0 ? XT_XS((long long)rb[j], kb) * w : 0.0f;
#endif
                    hp_wg_wait0();
                    hp_hold64(part);
#pragma unroll
                    for (int i = 0; i < 64; i++) acc[j][i] += part[i] * ((i & 2) ? sb : sa);
                }
                if (lane == 0) hp_mbar_arrive(&empty[s]); // the stage read: back to the producer
                if (p0 == 0 && kb == 0 && un < units) XT_NEXT_UNIT();
            }
            // the epilogue: each accumulator to its routed row, two adjacent columns at once where N is even
            // (the weight's stores chosen once: XT_EPILOGUE(s) with s a constant)
#define XT_EPILOGUE(S)                                                                                                  \
    _Pragma("unroll") for (int j = 0; j < XT_MT; j++) {                                                                 \
        if (!on[j]) continue;                                                                                           \
        const int ia = 64 * (c + 2 * j) + r0, ib = ia + 8;                                                              \
        const long long ya = ia < rows ? (long long)perm[first + p0 + ia] : -1, yb = ib < rows ? (long long)perm[first + p0 + ib] : -1; \
        _Pragma("unroll") for (int i = 0; i < 64; i += 2) {                                                             \
            const long long m = (i & 2) ? yb : ya, n = n0 + 8 * (i >> 2) + 2 * (lane & 3);                              \
            if (m < 0 || n >= N) continue;                                                                              \
            if (n + 1 < N && (N & 1) == 0) XT_STORE2((S), m * N + n, acc[j][i], acc[j][i + 1]);                         \
            else {                                                                                                      \
                XT_STORE((S), m * N + n, acc[j][i]);                                                                    \
                if (n + 1 < N) XT_STORE((S), m * N + n + 1, acc[j][i + 1]);                                             \
            }                                                                                                           \
        }                                                                                                               \
    }
#if XT_LVL == 2 && defined(XT_STORE4)
            // level 2, N % 4 == 0: lanes 2q and 2q + 1 of a quad trade the halves of two adjacent 8-column blocks, so each
            // stores 4 adjacent columns (16 or 8 bytes) and a warp's store covers 16 whole columns of each of its 8 rows
#define XT_EPILOGUE4(S)                                                                                                 \
    _Pragma("unroll") for (int j = 0; j < XT_MT; j++) {                                                                 \
        if (!on[j]) continue; /* the consumer's warps alike: the shuffles below have every lane */                      \
        const int q = lane & 3;                                                                                         \
        _Pragma("unroll") for (int i = 0; i < 64; i += 8) {                                                             \
            _Pragma("unroll") for (int h = 0; h < 4; h += 2) {                                                          \
                const float s0 = (q & 1) ? acc[j][i + h] : acc[j][i + 4 + h], s1 = (q & 1) ? acc[j][i + 1 + h] : acc[j][i + 5 + h]; \
                const float t0 = __shfl_xor_sync(0xffffffffu, s0, 1), t1 = __shfl_xor_sync(0xffffffffu, s1, 1);        \
                const long long m = h ? yb[j] : ya[j], n = n0 + 8 * (i >> 2) + ((q & 1) ? 8 + 2 * (q - 1) : 2 * q);    \
                if (m < 0 || n >= N) continue;                                                                          \
                if (q & 1) XT_STORE4((S), m * N + n, t0, t1, acc[j][i + 4 + h], acc[j][i + 5 + h]);                     \
                else XT_STORE4((S), m * N + n, acc[j][i + h], acc[j][i + 1 + h], t0, t1);                               \
            }                                                                                                           \
        }                                                                                                               \
    }
            if ((N & 3) == 0) {
                if (XT_NW > 1 && ws) {
                    XT_EPILOGUE4(1)
                } else {
                    XT_EPILOGUE4(0)
                }
            } else
#undef XT_EPILOGUE4
#endif
            if (XT_NW > 1 && ws) {
                XT_EPILOGUE(1)
            } else {
                XT_EPILOGUE(0)
            }
#undef XT_EPILOGUE
        }
        b = bn, c0 = cn, first = fn;
#if XT_SPLIT
        wt = wn;
#endif
#undef XT_NEXT_UNIT
    }
#undef XT_WT
}
#undef DSCC_ENTRY
#undef XT_E
#undef XT_N
#undef XT_K
#undef XT_NW
#undef XT_MAPS
#undef XT_X
#undef XT_SRC
#undef XT_XS
#undef XT_WS
#undef XT_STORE
#undef XT_STORE2
#undef XT_STORE4
#undef XT_CNT
#undef XT_PERM
#undef XT_ORD
#undef XT_MT
#undef XT_STAGES
#undef XT_REGS_P
#undef XT_REGS_C
#undef XT_BOX
#undef XT_STAGE
#undef XT_SMEM
#undef XT_LVL
#undef XT_EF
#undef XT_SPLIT
#undef XT_PASSES
#undef XT_NPASS
#undef XT_OWN
#undef XT_SCL
#undef XT_SROW
#undef XT_XSP
#undef XT_WSP
