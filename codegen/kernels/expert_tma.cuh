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
// * Dynamic units (XT_DYN 1, split units only; DSCC_EXPERT_TMA=3,dyn=1):
//   a block's first unit is blockIdx.x, each next one gridDim.x + the value
//   of an atomicAdd on a counter (XT_CTR) the sort phase zeroes, taken a few
//   K blocks before the block's current unit ends, so that the units start
//   in their list's order, each when an SM frees up. With the static walk
//   (u += gridDim.x) the blocks drift apart over the ~40 units each walks
//   (the units' rows differ), so the passes of one weight tile, adjacent
//   units on adjacent blocks, no longer run side by side: at a 1,024-token
//   prefill the later pass reads the tile again from HBM (an H100's ncu of
//   gate and up: ~4.6 GB from DRAM against ~3.7 GB of weights). Producer
//   thread 32 issues the atomic XT_GRAB_AHEAD K blocks before the
//   producer needs the value, XT_NEXT_AT K blocks before the unit's end (its
//   latency off the ring), the producer warpgroup shares it
//   through shared memory (named barrier 1), thread 0 passes the decoded
//   unit to the consumers through a 2-slot queue in shared memory (an
//   mbarrier pair a slot; a unit >= the count ends the block). The block
//   whose grab is the launch's last sets the counter back to 0 (the chained
//   down's phase reads the same sort).
// * Weight bursts (XT_KP 2 or 3, DSCC_EXPERT_TMA=...,kp=N): thread 0 issues
//   the weight's boxes of XT_KP adjacent K blocks together (waiting for the
//   later stages' release first), so that each of the tile's 128 rows asks
//   HBM for 256 (384) adjacent bytes at once, where one box a stage asks
//   for 128 bytes of each of 128 rows 7 KB apart, its neighbour a stage
//   (~1 us) later.
// * Wide units (XT_WIDE 1, DSCC_EXPERT_TMA=...,bn=256; level 2 or 3, XT_MT
//   1, no XT_DYN, XT_KP 1): a unit's weight tile is XT_TN = 256 outputs,
//   two boxes a stage (rows 0-127, 128-255 of the tile) and the second
//   half's block scale beside the first's (thread 1; zeros past N), each
//   consumer's 64 rows against both halves (XT_NA = 2 accumulator sets,
//   promoted in turn; a half wholly past N neither computed nor stored),
//   so x's rows and scales are gathered once for 256 outputs, and a ring of
//   4 stages of 48 KB holds 128 KB of weights where 6 of 32 KB hold 96.
// * Fused epilogue (XT_EPI 1, DSCC_EXPERT_TMA=...,epi=1; gate and up chained
//   into the down through silu(gate) x up and its 1 x 128 quantize): a unit
//   is (pass, 128-output tile j) of BOTH weights, the two boxes of a stage
//   gate's tile j and up's tile j (two maps, the same rows), each
//   consumer's two accumulator sets gate's and up's values of the same
//   rows and columns, so the epilogue computes h = silu(gate) x up, the
//   row's 1 x 128 scale (max |h| / 448: a quad's 4 lanes hold a row's 128
//   columns, 2 shuffles) and h's E4M3 codes, and stores those (the down's
//   input: tile j is its K block j) instead of gate and up: no f32 or bf16
//   gate and up written and read back, no silu-mul-quantize phase (the
//   generator runs that phase only where this one does not: at most minr
//   routed rows, on the tile's outputs).
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
//   XT_DYN              1: dynamic units (see above; default 0; needs XT_SPLIT), which also need:
//   XT_CTR              the units' counter (int *, 0 at the launch; 0 again after it)
//   XT_KP               the weights' boxes of XT_KP adjacent K blocks issued at once (1, 2, 3; default 1; see above)
//   XT_MT               row tiles of 64 a consumer holds: 1 or 2 (default 1: 128 rows a pass)
//   XT_WIDE             1: units of 256 outputs (see above; default 0)
//   XT_EPI              1: the fused epilogue (see above; default 0; XT_NW 2, level 2, XT_MT 1, no XT_WIDE), which also needs:
//   XT_EPI_G            the weight silu is of (0 or 1; the other is up)
//   XT_QSTORE(i, v)     stores h's E4M3 code of v (an f32 already divided by the scale) at element i = r * N + o
//   XT_QSTORE2(i, v0, v1)  ... the codes of v0, v1 at i, i + 1 (i even, N even) in one 2-byte store
//   XT_SSTORE(r, kb, v) stores h's f32 scale of routed row r, 128-column block kb
//   XT_STAGES           stages of the ring (default 4 at XT_MT 2 or XT_WIDE, 6 otherwise)
//   XT_LVL              1 or 2 (default 1; see above); level 2 also needs:
//   XT_EF               level 2: 1 loads the weights under an L2 evict-first policy (default 0)
//   XT_XSP(m, kb), XT_WSP(s, i)  the addresses (const float *) of XT_XS(m, kb) and XT_WS(s, i)
//   XT_STORE4(s, i, v0, v1, v2, v3)  (optional, level 2) stores y_s[i .. i + 3] (i % 4 == 0, N % 4 == 0), a statement
//   XT_REGS_P, XT_REGS_C  registers a thread after setmaxnreg: producer, consumers (56, 224 at XT_MT 1, 80, 208 with
//                       XT_DYN, 48, 224 with XT_WIDE; 40, 232 at 2:
//                       128 P + 256 C must not exceed the 384 x 168 the block is launched with)
// Dynamic shared memory: XT_SMEM bytes (the launch's; level 2: 4 (XT_STAGES (128 XT_MT + 4) + 128 XT_MT) more;
// XT_DYN: XT_UQB more).
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
#ifndef XT_DYN
#define XT_DYN 0
#endif
#ifndef XT_KP
#define XT_KP 1
#endif
#if XT_KP < 1 || XT_KP > 3
#error "XT_KP must be 1, 2 or 3"
#endif
#if XT_DYN && !XT_SPLIT
#error "XT_DYN needs XT_SPLIT"
#endif
#ifndef XT_WIDE
#define XT_WIDE 0
#endif
#if XT_WIDE && (XT_LVL != 2 || XT_MT != 1 || XT_DYN || XT_KP != 1)
#error "XT_WIDE needs level 2 (or 3), XT_MT 1, no XT_DYN, XT_KP 1"
#endif
#ifndef XT_EPI
#define XT_EPI 0
#endif
#if XT_EPI && (XT_WIDE || XT_NW != 2 || XT_LVL != 2 || XT_MT != 1 || XT_DYN || XT_KP != 1)
#error "XT_EPI needs gate and up (XT_NW 2), level 2 (or 3), XT_MT 1, no XT_WIDE, XT_DYN, XT_KP > 1"
#endif
#define XT_TWO (XT_WIDE || XT_EPI)  // two weight boxes a stage, two accumulator sets a consumer
#define XT_UNW (XT_EPI ? 1 : XT_NW) // weights a unit's tiles are counted over (XT_EPI: a unit holds tile j of both)
#define XT_TN (128 * (1 + XT_WIDE)) // outputs of a unit's weight tile
#define XT_NA (XT_TWO ? 2 : XT_MT)  // accumulator sets a consumer holds: its row tiles (XT_MT), or the unit's two boxes
#ifndef XT_STAGES
#define XT_STAGES (XT_MT == 2 || XT_TWO ? 4 : 6)
#endif
// (XT_EPI: 40 and 232, 8 bytes spilled, where 48 / 224 spilled 12, 56 / 224 36 and 24 / 240 72;
// XT_WIDE: 48 and 224, the gate/up phase none spilled, the down's 12 bytes at any split from 24 / 240 to 56 / 224, where 40 /
// 232 spilled 12 in both; XT_DYN at XT_MT 1: 80 and 208, none spilled, where 56 / 224 spilled 52-60 bytes and 72 / 216 4 bytes in the producer;
// ptxas, CUDA 13, V3's shapes; the consumers hold no next unit there)
#ifndef XT_REGS_P
#define XT_REGS_P (XT_MT == 2 || XT_EPI ? 40 : XT_WIDE ? 48 : XT_DYN ? 80 : 56)
#endif
#ifndef XT_REGS_C
#define XT_REGS_C (XT_MT == 2 || XT_EPI ? 232 : XT_WIDE ? 224 : XT_DYN ? 208 : 224)
#endif
#if XT_MT != 1 && XT_MT != 2
#error "XT_MT must be 1 or 2"
#endif
// setmaxnreg only moves registers between the block's warps: the block holds what it was launched with, 168 a
// thread at 384 threads (65536 / 384, a multiple of 8), and a consumer's setmaxnreg.inc waits for ever for more
static_assert(128 * (XT_REGS_P) + 256 * (XT_REGS_C) <= 384 * 168, "expert_tma.cuh: the warpgroups' registers exceed the block's");
#define XT_UQB 128                                   // XT_DYN's unit queue: 4 mbarriers, 2 slots of 8 ints, 2 ints
#define XT_NEXT_AT 3                                 // XT_DYN: the next unit decoded this many K blocks before a unit's end,
#define XT_GRAB_AHEAD 2                              // ... its atomic issued this many K blocks before that
#define XT_BOX 16384                                 // bytes of a 128-row x 128-byte box
#define XT_WB (XT_BOX * (1 + XT_TWO))                // w's box (XT_WIDE: the tile's two, rows 0-127 then 128-255; XT_EPI: gate's, up's)
#define XT_STAGE (XT_WB + XT_BOX * XT_MT)            // w's box(es), then 128 XT_MT rows of x
#if XT_LVL == 2 // after the barriers: each stage's scales (128 XT_MT of x's rows, then w's, 4 floats of pad), the pass's x rows
#define XT_SCL (XT_STAGES * XT_STAGE + 16 * XT_STAGES)
#define XT_SROW (XT_SCL + 4 * XT_STAGES * (128 * XT_MT + 4))
#define XT_UQ (XT_SROW + 4 * 128 * XT_MT) // XT_DYN: the unit queue (XT_UQB bytes; see the kernel)
#define XT_SMEM (XT_UQ + (XT_DYN ? XT_UQB : 0) + 1024)
#define XT_OWN(p) (16 * (((p) & 31) >> 2) + 4 * ((p) >> 5) + ((p) & 3)) // the first row of the pass producer thread p resolves
#else
#define XT_UQ (XT_STAGES * XT_STAGE + 16 * XT_STAGES) // XT_DYN: the unit queue (XT_UQB bytes; see the kernel)
#define XT_SMEM (XT_UQ + (XT_DYN ? XT_UQB : 0) + 1024) // stages, 2 barriers a stage, 1024-alignment slack
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
#if XT_DYN // the unit queue: a slot's full (the producer's thread 0) and empty (the consumers' 8 warps) mbarriers, the 2
           // slots (unit, bucket, rows, first sorted position, weight tile), the producer warpgroup's shared grab (2)
    unsigned long long *ufull = (unsigned long long *)(sm + XT_UQ), *uempty = ufull + 2;
    int *uslot = (int *)(ufull + 4), *ushare = uslot + 16;
#endif
    const long long N = XT_N, K = XT_K;
    // nt: a weight's tiles of XT_TN outputs (units), nt1 its 128-row blocks (the block scales')
    const int nkb = (int)((K + 127) / 128), nt = (int)((N + XT_TN - 1) / XT_TN), ntw = XT_UNW * nt, nt1 = (int)((N + 127) / 128);
    (void)nt1;
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
#if XT_DYN
        for (int s = 0; s < 2; s++) hp_mbar_init(&ufull[s], 1), hp_mbar_init(&uempty[s], 8);
#endif
        hp_mbar_fence_init();
        hp_fence_async();
    }
    __syncthreads();
    if (wg == 0) { // the producer
        hp_setmaxnreg_dec<XT_REGS_P>();
        const int p = threadIdx.x;
#if XT_LVL == 2 && XT_EF && !XT_SPLIT
        const unsigned long long pol = hp_policy_evict_first(); // the weights' L2 policy: evict first
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
#if XT_DYN
        // kq: the units passed to the consumers; gv: thread 32's grab; glast: the launch's last grab (each block with
        // a unit makes one that fails, past the units gridDim.x hands out)
        int kq = 0, gv = 0;
        const int glast = (units > (int)gridDim.x ? units - (int)gridDim.x : 0) + (units < (int)gridDim.x ? units : (int)gridDim.x) - 1;
        const int g2 = nkb > XT_NEXT_AT ? nkb - XT_NEXT_AT : 0, g1 = g2 > XT_GRAB_AHEAD ? g2 - XT_GRAB_AHEAD : 0;
#define XT_PUSH(uu, bb, cc, ff, ww) /* the unit to the consumers' queue (thread 0) */                                    \
        {                                                                                                                   \
            if (p == 0) {                                                                                                   \
                hp_mbar_wait(&uempty[kq & 1], (unsigned)((kq >> 1) & 1) ^ 1u);                                              \
                int *sl_ = uslot + 8 * (kq & 1);                                                                            \
                sl_[0] = (uu), sl_[1] = (bb), sl_[2] = (cc), sl_[3] = (ff), sl_[4] = (ww);                                  \
                hp_mbar_arrive(&ufull[kq & 1]);                                                                             \
            }                                                                                                               \
            kq++;                                                                                                           \
        }
#define XT_GRAB() /* thread 32 takes the next unit's number (used at XT_NEXT) */                                          \
        {                                                                                                                   \
            if (p == 32) gv = atomicAdd(XT_CTR, 1);                                                                         \
        }
        XT_PUSH(u < units ? u : units, b, c0, first, wt)
#endif
        for (; u < units;) {
            const int ws = XT_WT / nt, wrow = (int)(b * N + XT_WT % nt * (long long)XT_TN);
#if XT_LVL == 2
            const long long wsb = ((long long)b * nt1 + XT_WT % nt * (1 + XT_WIDE)) * nkb; // w_s's scales of this tile, K block 0
            int *srow = (int *)(sm + XT_SROW);
#endif
            // the next unit: its bucket's load issued (level 3 loads its pass entry at XT_NEXT, where level 2 loads the
            // bucket's counts: its 4 ints held from here spilled at 56 registers; ptxas, V3's shapes)
#if XT_DYN
            int un = units; // the next unit: taken at XT_NEXT
#else
            const int un = u + gridDim.x;
#endif
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
#if XT_DYN
#define XT_NEXT() /* the next unit (once a unit: XT_NEXT_AT K blocks before its end, or with the zeros) and its rows */       \
            {                                                                                                               \
                if (p == 32) {                                                                                              \
                    if (gv == glast) atomicExch(XT_CTR, 0); /* the launch's last grab: the counter as it found it */        \
                    ushare[kq & 1] = (int)gridDim.x + gv;                                                                   \
                }                                                                                                           \
                hp_bar_sync(1, 128);                                                                                        \
                un = ushare[kq & 1];                                                                                        \
                if (un < units) {                                                                                           \
                    XT_NEXT_UNIT();                                                                                         \
                    XT_SRC_ROWS(srcn, cn, fn, 0)                                                                            \
                }                                                                                                           \
                XT_PUSH(un, bn, cn, fn, wn)                                                                                 \
            }
#else
#define XT_NEXT() /* the next unit's rows (once a unit: before its first K block's copies, or with the zeros) */              \
            {                                                                                                               \
                if (un < units) {                                                                                           \
                    XT_NEXT_UNIT();                                                                                         \
                    XT_SRC_ROWS(srcn, cn, fn, 0)                                                                            \
                }                                                                                                           \
            }
#endif
            if (b >= XT_E) { // the slots of id -1: zeros (stored here: the consumers' registers hold the accumulators)
                const long long n0 = XT_WT % nt * (long long)XT_TN;
                for (long long i = p; i < (long long)c0 * XT_TN; i += 128) {
                    const long long r = perm[first + i / XT_TN], o = n0 + i % XT_TN;
#if XT_EPI // h = silu(0) x 0: zero codes, a zero scale
                    if (o < N) XT_QSTORE(r * N + o, 0.0f);
                    if (i % XT_TN == 0) XT_SSTORE(r, XT_WT % nt, 0.0f);
#else
                    if (o < N) XT_STORE(ws, r * N + o, 0.0f);
#endif
                }
#if XT_DYN
                XT_GRAB()
#endif
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
#if XT_LVL == 2 && XT_EF && XT_SPLIT
#define XT_TMA(dst, bar, k, row) /* the weight's box of K block k, rows row.., into dst */                                \
    {                                                                                                                       \
        if (solo) hp_tma_2d_hint((dst), map, (bar), (k) * 128, (row), hp_policy_evict_first()); /* (made here: 2 registers fewer) */  \
        else hp_tma_2d((dst), map, (bar), (k) * 128, (row)); /* other units read the tile: kept */                          \
    }
#elif XT_LVL == 2 && XT_EF
#define XT_TMA(dst, bar, k, row) hp_tma_2d_hint((dst), map, (bar), (k) * 128, (row), pol);
#else
#define XT_TMA(dst, bar, k, row) hp_tma_2d((dst), map, (bar), (k) * 128, (row));
#endif
#if XT_KP > 1
                        // XT_KP K blocks' boxes issued together (thread 0 waits for the later stages' release first), so
                        // that each weight row's XT_KP adjacent 128-byte blocks reach HBM as one burst
                        if (p == 0 && kb % XT_KP == 0)
                            for (int j = 0; j < XT_KP && kb + j < nkb; j++) {
                                const int sj = (it + j) % XT_STAGES;
                                if (j) hp_mbar_wait(&empty[sj], (unsigned)(((it + j) / XT_STAGES) & 1) ^ 1u);
                                hp_mbar_expect_tx(&full[sj], XT_BOX);
                                XT_TMA(sm + sj * XT_STAGE, &full[sj], kb + j, wrow)
                            }
#else
                        if (p == 0) {
                            hp_mbar_expect_tx(&full[s], XT_WB);
                            XT_TMA(st, &full[s], kb, wrow)
#if XT_WIDE // the tile's second 128 rows (past the map's rows: zeros; past N: the next expert's, never stored)
                            XT_TMA(st + XT_BOX, &full[s], kb, wrow + 128)
#elif XT_EPI // up's tile j, the same rows of the second map
                            {
                                const unsigned char *map = XT_MAPS + 128;
                                XT_TMA(st + XT_BOX, &full[s], kb, wrow)
                            }
#endif
                        }
#endif
#undef XT_TMA
#if XT_LVL == 2
                        float *sc = (float *)(sm + XT_SCL) + s * (BM + 4);
                        if (p == 0) xt_cp4(sc + BM, XT_WSP(ws, wsb + kb), true); // w's block scale
#if XT_WIDE // ... and that of the tile's second 128 rows (zeros past N)
                        if (p == 1) {
                            const bool v = (XT_WT % nt) * 2 + 1 < nt1;
                            xt_cp4(sc + BM + 1, XT_WSP(ws, v ? wsb + nkb + kb : wsb + kb), v);
                        }
#elif XT_EPI // ... and up's of the same block
                        if (p == 1) xt_cp4(sc + BM + 1, XT_WSP(1, wsb + kb), true);
#endif
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
                            xt_cp16(st + XT_WB + i * 128 + ((ch ^ (i & 7)) << 4), v ? XT_X + (long long)sr * K + 128LL * kb + 16 * ch : XT_X, v);
                        }
#else
#pragma unroll
                        for (int j = 0; j < XT_MT; j++) {
                            const int i = p + 128 * j;
                            if (i / 64 >= tiles) continue; // a row tile without rows: not computed
                            unsigned char *row = st + XT_WB + i * 128;
                            const unsigned char *sx = XT_X + (src[j] < 0 ? 0LL : (long long)src[j] * K + 128LL * kb);
#pragma unroll
                            for (int c = 0; c < 8; c++) {
                                const bool v = src[j] >= 0 && 128LL * kb + 16 * c < K;
                                xt_cp16(row + ((c ^ (i & 7)) << 4), v ? sx + 16 * c : XT_X, v);
                            }
                        }
#endif
                        hp_cp_arrive(&full[s]);
#if XT_DYN
                        if (p0 == 0 && kb == g1) XT_GRAB()
                        if (p0 == 0 && kb == g2) XT_NEXT()
#else
                        if (p0 == 0 && kb == 0) XT_NEXT()
#endif
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
#if XT_DYN
            u = un;
#else
            u += gridDim.x;
#endif
        }
#if XT_DYN
#undef XT_PUSH
#undef XT_GRAB
#endif
#undef XT_SRC_ROWS
#undef XT_WT
        // stay until the consumers released the ring's last uses: every copy this thread issued has landed then
        for (int i = 0; i < XT_STAGES; i++, it++) hp_mbar_wait(&empty[it % XT_STAGES], (unsigned)((it / XT_STAGES) & 1) ^ 1u);
        return;
    }
    hp_setmaxnreg_inc<XT_REGS_C>();
    const int c = wg - 1, wq = warp & 3; // consumer c: row tiles c, c + 2 of a pass
    const int r0 = 16 * wq + (lane >> 2);                         // this thread's rows r0, r0 + 8 of a tile; cols 8j + 2(lane % 4) (+1)
    float acc[XT_NA][64], part[64];
    // accumulator set j: its row tile, its index in the row arrays, its first column in the unit's tile
#define XT_RT(j) (XT_TWO ? c : c + 2 * (j))
#define XT_RJ(j) (XT_TWO ? 0 : (j))
#define XT_CN(j) (XT_WIDE ? 128 * (j) : 0) // (XT_EPI: both sets the same columns)
    // the unit's bucket, rows, first sorted position, weight tile: loaded a unit ahead
    int it = 0, u = blockIdx.x, b = 0, c0 = 0, first = 0;
#if XT_SPLIT
    int wt = 0, solo = 1;
#define XT_WT wt
#else
#define XT_WT (u % ntw)
#endif
#if XT_DYN // (one brace opens the loop's body on both paths: the emulated NVRTC counts braces unpreprocessed)
    int kq = 0; // the units taken from the producer's queue
    for (;;)
#else
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
    for (; u < units; u += gridDim.x)
#endif
    {
#if XT_DYN
        hp_mbar_wait(&ufull[kq & 1], (unsigned)((kq >> 1) & 1));
        {
            const int *sl_ = uslot + 8 * (kq & 1);
            u = sl_[0], b = sl_[1], c0 = sl_[2], first = sl_[3], wt = sl_[4];
        }
        __syncwarp(); // the warp's lanes have read the slot: it goes back to the producer
        if (lane == 0) hp_mbar_arrive(&uempty[kq & 1]);
        kq++;
        if (u >= units) break;
        const int un = units; // (the next unit comes through the queue)
#else
        const int un = u + gridDim.x; // the next unit: its bucket's (pass's) load issued
#endif
        const int ws = XT_WT / nt, ot = XT_WT % nt, n0 = XT_TN * ot;
#if XT_EPI
        (void)ws; // a unit holds both weights' tile ot
#endif
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
            bool on[XT_NA]; // the set's row tile has rows (XT_WIDE: and its columns some < N)
#if XT_LVL == 1
            int ra[XT_MT], rb[XT_MT]; // this thread's x rows (-1: past the pass's rows)
#else
            int ya[XT_MT], yb[XT_MT]; // the routed rows of this thread's rows (-1: past the pass's), for the epilogue: loaded now
#endif
#pragma unroll
            for (int j = 0; j < XT_MT; j++) {
#if !XT_TWO
                on[j] = 64 * (c + 2 * j) < rows;
#endif
#if XT_LVL == 2
                const int ia = 64 * (c + 2 * j) + r0, ib = ia + 8;
                ya[j] = ia < rows ? perm[first + p0 + ia] : -1;
                yb[j] = ib < rows ? perm[first + p0 + ib] : -1;
#else
                const int ia = 64 * (c + 2 * j) + r0, ib = ia + 8;
                ra[j] = ia < rows ? (int)XT_SRC(perm[first + p0 + ia]) : -1;
                rb[j] = ib < rows ? (int)XT_SRC(perm[first + p0 + ib]) : -1;
#endif
#if !XT_TWO
#pragma unroll
                for (int i = 0; i < 64; i++) acc[j][i] = 0.0f;
#endif
            }
#if XT_TWO
#pragma unroll
            for (int j = 0; j < XT_NA; j++) {
                on[j] = 64 * XT_RT(j) < rows && n0 + XT_CN(j) < N;
#pragma unroll
                for (int i = 0; i < 64; i++) acc[j][i] = 0.0f;
            }
#endif
            for (int kb = 0; kb < nkb; kb++, it++) {
                const int s = it % XT_STAGES;
                unsigned char *st = sm + s * XT_STAGE;
#if XT_LVL == 2
                hp_mbar_wait(&full[s], (unsigned)((it / XT_STAGES) & 1));
                hp_fence_async();
                const float *sc = (const float *)(sm + XT_SCL) + s * (BM + 4); // the producer's scales of the stage
#if XT_TWO
#define XT_WSC(j) sc[BM + (j)] // w's block scale of set j
#else
                const float w = sc[BM];
#define XT_WSC(j) w
#endif
#else
                const float w = XT_WS(ws, wsb + kb);
                hp_mbar_wait(&full[s], (unsigned)((it / XT_STAGES) & 1));
                hp_fence_async();
#endif
#if XT_TWO
#define XT_DB(j) xt_desc(st + (j) * XT_BOX) // set j's half of the weight (XT_EPI: gate's, up's tile)
#else
                const unsigned long long db = xt_desc(st);
#define XT_DB(j) db
#endif
#pragma unroll
                for (int j = 0; j < XT_NA; j++) {
                    if (!on[j]) continue;
                    const unsigned long long da = xt_desc(st + XT_WB + XT_RT(j) * 8192), db_ = XT_DB(j);
                    hp_wg_fence();
#pragma unroll
                    for (int k = 0; k < 4; k++) hp_wgmma128_e4m3(part, da + 2 * k, db_ + 2 * k, k > 0);
                    hp_wg_commit();
#if XT_LVL == 2
                    const float sa = sc[64 * XT_RT(j) + r0] * XT_WSC(j), sb = sc[64 * XT_RT(j) + r0 + 8] * XT_WSC(j);
#else
                    const float sa = ra[XT_RJ(j)] >= 0 ? XT_XS((long long)ra[XT_RJ(j)], kb) * w : 0.0f,
                                sb = rb[XT_RJ(j)] >= 0 ? XT_XS((long long)rb[XT_RJ(j)], kb) * w : 0.0f;
#endif
                    hp_wg_wait0();
                    hp_hold64(part);
#pragma unroll
                    for (int i = 0; i < 64; i++) acc[j][i] += part[i] * ((i & 2) ? sb : sa);
                }
#undef XT_DB
#if XT_LVL == 2
#undef XT_WSC
#endif
                if (lane == 0) hp_mbar_arrive(&empty[s]); // the stage read: back to the producer
                if (p0 == 0 && kb == 0 && un < units) XT_NEXT_UNIT();
            }
            // the epilogue: each accumulator to its routed row, two adjacent columns at once where N is even
            // (the weight's stores chosen once: XT_EPILOGUE(s) with s a constant)
#define XT_EPILOGUE(S)                                                                                                  \
    _Pragma("unroll") for (int j = 0; j < XT_NA; j++) {                                                                 \
        if (!on[j]) continue;                                                                                           \
        const int ia = 64 * XT_RT(j) + r0, ib = ia + 8;                                                                 \
        const long long ya = ia < rows ? (long long)perm[first + p0 + ia] : -1, yb = ib < rows ? (long long)perm[first + p0 + ib] : -1; \
        _Pragma("unroll") for (int i = 0; i < 64; i += 2) {                                                             \
            const long long m = (i & 2) ? yb : ya, n = n0 + XT_CN(j) + 8 * (i >> 2) + 2 * (lane & 3);                   \
            if (m < 0 || n >= N) continue;                                                                              \
            if (n + 1 < N && (N & 1) == 0) XT_STORE2((S), m * N + n, acc[j][i], acc[j][i + 1]);                         \
            else {                                                                                                      \
                XT_STORE((S), m * N + n, acc[j][i]);                                                                    \
                if (n + 1 < N) XT_STORE((S), m * N + n + 1, acc[j][i + 1]);                                             \
            }                                                                                                           \
        }                                                                                                               \
    }
#if XT_EPI
            // silu(gate) x up of the unit's 128 columns, which are the down's K block ot: the row's 1 x 128 scale (its max
            // over the quad's 4 lanes, which hold the row's 128 columns) and E4M3 codes, as the silu-mul-quantize phase
            // computes them from the stored gate and up (that phase and those stores left out where this one runs)
            if (on[0]) { // (on[0] == on[1]: the same rows and columns; the consumer's warps alike: the shuffles have every lane)
                float mx[2] = {0.0f, 0.0f};
#pragma unroll
                for (int i = 0; i < 64; i++) {
                    const float g = acc[XT_EPI_G][i], n = (float)(n0 + 8 * (i >> 2) + 2 * (lane & 3) + (i & 1));
                    const float h = n < (float)N ? g / (1.0f + expf(-g)) * acc[1 - XT_EPI_G][i] : 0.0f;
                    acc[0][i] = h;
                    mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], fabsf(h));
                }
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
                    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
                    mx[h] /= 448.0f; // the scale
                }
                if ((lane & 3) == 0) {
                    if (ya[0] >= 0) XT_SSTORE((long long)ya[0], ot, mx[0]);
                    if (yb[0] >= 0) XT_SSTORE((long long)yb[0], ot, mx[1]);
                }
#pragma unroll
                for (int i = 0; i < 64; i += 2) { // columns n, n + 1 of a row: one 2-byte store where N is even
                    const long long m = (i & 2) ? yb[0] : ya[0], n = n0 + 8 * (i >> 2) + 2 * (lane & 3);
                    const float sx = mx[(i >> 1) & 1], v0 = sx > 0.0f ? acc[0][i] / sx : 0.0f, v1 = sx > 0.0f ? acc[0][i + 1] / sx : 0.0f;
                    if (m < 0 || n >= N) continue;
                    if (n + 1 < N && (N & 1) == 0) XT_QSTORE2(m * N + n, v0, v1);
                    else {
                        XT_QSTORE(m * N + n, v0);
                        if (n + 1 < N) XT_QSTORE(m * N + n + 1, v1);
                    }
                }
            }
#else
#if XT_LVL == 2 && defined(XT_STORE4)
            // level 2, N % 4 == 0: lanes 2q and 2q + 1 of a quad trade the halves of two adjacent 8-column blocks, so each
            // stores 4 adjacent columns (16 or 8 bytes) and a warp's store covers 16 whole columns of each of its 8 rows
#define XT_EPILOGUE4(S)                                                                                                 \
    _Pragma("unroll") for (int j = 0; j < XT_NA; j++) {                                                                 \
        if (!on[j]) continue; /* the consumer's warps alike: the shuffles below have every lane */                      \
        const int q = lane & 3;                                                                                         \
        _Pragma("unroll") for (int i = 0; i < 64; i += 8) {                                                             \
            _Pragma("unroll") for (int h = 0; h < 4; h += 2) {                                                          \
                const float s0 = (q & 1) ? acc[j][i + h] : acc[j][i + 4 + h], s1 = (q & 1) ? acc[j][i + 1 + h] : acc[j][i + 5 + h]; \
                const float t0 = __shfl_xor_sync(0xffffffffu, s0, 1), t1 = __shfl_xor_sync(0xffffffffu, s1, 1);        \
                const long long m = h ? yb[XT_RJ(j)] : ya[XT_RJ(j)], n = n0 + XT_CN(j) + 8 * (i >> 2) + ((q & 1) ? 8 + 2 * (q - 1) : 2 * q); \
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
#endif // XT_EPI
#undef XT_EPILOGUE
        }
        b = bn, c0 = cn, first = fn;
#if XT_SPLIT
        wt = wn;
#endif
#undef XT_NEXT_UNIT
    }
#undef XT_WT
#undef XT_RT
#undef XT_RJ
#undef XT_CN
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
#undef XT_DYN
#undef XT_KP
#undef XT_WIDE
#undef XT_EPI
#undef XT_EPI_G
#undef XT_QSTORE
#undef XT_QSTORE2
#undef XT_SSTORE
#undef XT_TWO
#undef XT_UNW
#undef XT_TN
#undef XT_NA
#undef XT_WB
#undef XT_CTR
#undef XT_UQ
#undef XT_UQB
#undef XT_NEXT_AT
#undef XT_GRAB_AHEAD
#undef XT_PASSES
#undef XT_NPASS
#undef XT_OWN
#undef XT_SCL
#undef XT_SROW
#undef XT_XSP
#undef XT_WSP
