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
//   XT_MT               row tiles of 64 a consumer holds: 1 or 2 (default 1: 128 rows a pass)
//   XT_STAGES           stages of the ring (default 4 at XT_MT 2, 6 at 1)
//   XT_REGS_P, XT_REGS_C  registers a thread after setmaxnreg: producer, consumers (56, 224 at XT_MT 1; 40, 232 at 2:
//                       128 P + 256 C must not exceed the 384 x 168 the block is launched with)
// Dynamic shared memory: XT_SMEM bytes (the launch's).
#ifndef XT_X // compiled on its own (test_codegen): a stand-in for the module's prelude
typedef unsigned long long u64;
struct Args { u64 t[64]; long long sym[8]; long long cap, len; u64 err; long long tag; };
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
#define XT_SMEM (XT_STAGES * XT_STAGE + 16 * XT_STAGES + 1024) // stages, 2 barriers a stage, 1024-alignment slack

#ifndef XT_HELPERS // once a module
#define XT_HELPERS
__device__ __forceinline__ void xt_mbar_init(unsigned long long *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)), "r"(count) : "memory");
}
// the barriers' initialization made visible to the copy engine
__device__ __forceinline__ void xt_mbar_fence_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
// cp.async's writes (generic proxy) made visible to the wgmma's reads (async proxy)
__device__ __forceinline__ void xt_fence_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void xt_mbar_arrive(unsigned long long *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)) : "memory");
}
// arrive, and `bytes` more to come by the bulk copies of this phase
__device__ __forceinline__ void xt_mbar_expect_tx(unsigned long long *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)), "r"(bytes) : "memory");
}
// until the phase of parity `parity` has completed
__device__ __forceinline__ void xt_mbar_wait(unsigned long long *bar, unsigned parity) {
    const unsigned b = (unsigned)__cvta_generic_to_shared(bar);
    unsigned done = 0;
    while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(b), "r"(parity) : "memory");
}
// the box at element c0 of dim 0 (K) and row c1 into dst, completing on bar
__device__ __forceinline__ void xt_tma_2d(void *dst, const void *map, unsigned long long *bar, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(map), "r"(c0), "r"(c1), "r"((unsigned)__cvta_generic_to_shared(bar))
                 : "memory");
}
// 16 bytes global -> shared (cp.async.cg), zeros when !v
__device__ __forceinline__ void xt_cp16(void *dst, const void *src, bool v) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src), "r"(v ? 16 : 0)
                 : "memory");
}
// an arrival on bar once every cp.async this thread issued so far has landed (.noinc: counted in the init's count)
__device__ __forceinline__ void xt_cp_arrive(unsigned long long *bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)) : "memory");
}
__device__ __forceinline__ void xt_regs_producer() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(XT_REGS_P)); }
__device__ __forceinline__ void xt_regs_consumer() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(XT_REGS_C)); }
__device__ __forceinline__ void xt_wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void xt_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void xt_wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// d[64 x 128] (+)= a[64 rows][32 bytes] . b[128 rows][32 bytes]^T, both K-major, from descriptors
__device__ __forceinline__ void xt_wgmma128(float *d, unsigned long long da, unsigned long long db, int acc) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
                 " wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(acc));
}
// after the wait: uses and definitions of d stay after it
__device__ __forceinline__ void xt_hold64(float *d) { asm volatile("" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) :: "memory"); }
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
    const int units = ord[EB] * ntw;
    const int wg = threadIdx.x >> 7, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < XT_STAGES; s++) {
            xt_mbar_init(&full[s], 1 + 128); // thread 0's expect_tx, the producer threads' cp.async arrivals
            xt_mbar_init(&empty[s], 8);      // the consumers' 8 warps
        }
        xt_mbar_fence_init();
        xt_fence_async();
    }
    __syncthreads();
    if (wg == 0) { // the producer
        xt_regs_producer();
        const int p = threadIdx.x;
        int it = 0; // K blocks loaded so far: stage it % XT_STAGES, its use it / XT_STAGES
        // a unit's bucket b, rows c0, first sorted position and this thread's x rows of its first pass, loaded
        // during the unit before (the loads' latency off the ring's critical path at the units' boundary)
        int u = blockIdx.x, b = 0, c0 = 0, first = 0;
        int src0[XT_MT];
#define XT_SRC_ROWS(src, c0, first, p0) /* this thread's rows p + 128 j of the pass at p0: their rows of x (-1: zeros) */ \
        _Pragma("unroll") for (int j = 0; j < XT_MT; j++) {                                                                 \
            const int i_ = p + 128 * j;                                                                                     \
            src[j] = i_ < (c0) - (p0) && i_ < BM ? (int)XT_SRC(perm[(first) + (p0) + i_]) : -1;                             \
        }
        if (u < units) {
            b = ord[u / ntw], c0 = cnt[b], first = cnt[EB + b];
            XT_SRC_ROWS(src0, c0, first, 0)
        }
        for (; u < units; u += gridDim.x) {
            const int ws = (int)(u % ntw / nt), wrow = (int)(b * N + u % ntw % nt * 128LL);
            const int un = u + gridDim.x, bn = un < units ? ord[un / ntw] : 0; // the next unit's bucket: its load issued
            int cn = 0, fn = 0, srcn[XT_MT];
#define XT_NEXT() /* the next unit's rows (once a unit: before its first K block's copies, or with the zeros) */              \
            {                                                                                                               \
                if (un < units) {                                                                                           \
                    cn = cnt[bn], fn = cnt[EB + bn];                                                                        \
                    XT_SRC_ROWS(srcn, cn, fn, 0)                                                                            \
                }                                                                                                           \
            }
            if (b >= XT_E) { // the slots of id -1: zeros (stored here: the consumers' registers hold the accumulators)
                const long long n0 = u % ntw % nt * 128LL;
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
                    for (int kb = 0; kb < nkb; kb++, it++) {
                        const int s = it % XT_STAGES;
                        unsigned char *st = sm + s * XT_STAGE;
                        xt_mbar_wait(&empty[s], (unsigned)((it / XT_STAGES) & 1) ^ 1u); // the consumers are done with its last use
                        if (p == 0) {
                            xt_mbar_expect_tx(&full[s], XT_BOX);
                            xt_tma_2d(st, map, &full[s], kb * 128, wrow);
                        }
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
                        xt_cp_arrive(&full[s]);
                        if (p0 == 0 && kb == 0) XT_NEXT()
                    }
                }
            }
#undef XT_NEXT
            b = bn, c0 = cn, first = fn;
#pragma unroll
            for (int j = 0; j < XT_MT; j++) src0[j] = srcn[j];
        }
#undef XT_SRC_ROWS
        // stay until the consumers released the ring's last uses: every copy this thread issued has landed then
        for (int i = 0; i < XT_STAGES; i++, it++) xt_mbar_wait(&empty[it % XT_STAGES], (unsigned)((it / XT_STAGES) & 1) ^ 1u);
        return;
    }
    xt_regs_consumer();
    const int c = wg - 1, wq = warp & 3; // consumer c: row tiles c, c + 2 of a pass
    const int r0 = 16 * wq + (lane >> 2);                         // this thread's rows r0, r0 + 8 of a tile; cols 8j + 2(lane % 4) (+1)
    float acc[XT_MT][64], part[64];
    int it = 0, u = blockIdx.x, b = 0, c0 = 0, first = 0; // the unit's bucket, rows, first sorted position: loaded a unit ahead
    if (u < units) b = ord[u / ntw], c0 = cnt[b], first = cnt[EB + b];
    for (; u < units; u += gridDim.x) {
        const int ws = (int)(u % ntw / nt), ot = (int)(u % ntw % nt), n0 = 128 * ot;
        const int un = u + gridDim.x, bn = un < units ? ord[un / ntw] : 0; // the next unit's bucket: its load issued
        int cn = 0, fn = 0;
        if (b >= XT_E) { // the slots of id -1: the producer stores their zeros
            if (un < units) cn = cnt[bn], fn = cnt[EB + bn];
            b = bn, c0 = cn, first = fn;
            continue;
        }
        const long long wsb = ((long long)b * nt + ot) * nkb; // w_s's scales of this tile, K block 0
        for (int p0 = 0; p0 < c0; p0 += BM) {
            const int rows = c0 - p0 < BM ? c0 - p0 : BM;
            int ra[XT_MT], rb[XT_MT]; // this thread's x rows (-1: past the pass's rows)
            bool on[XT_MT];           // the row tile has rows
#pragma unroll
            for (int j = 0; j < XT_MT; j++) {
                const int ia = 64 * (c + 2 * j) + r0, ib = ia + 8;
                on[j] = 64 * (c + 2 * j) < rows;
                ra[j] = ia < rows ? (int)XT_SRC(perm[first + p0 + ia]) : -1;
                rb[j] = ib < rows ? (int)XT_SRC(perm[first + p0 + ib]) : -1;
#pragma unroll
                for (int i = 0; i < 64; i++) acc[j][i] = 0.0f;
            }
            for (int kb = 0; kb < nkb; kb++, it++) {
                const int s = it % XT_STAGES;
                unsigned char *st = sm + s * XT_STAGE;
                const float w = XT_WS(ws, wsb + kb);
                xt_mbar_wait(&full[s], (unsigned)((it / XT_STAGES) & 1));
                xt_fence_async();
                const unsigned long long db = xt_desc(st);
#pragma unroll
                for (int j = 0; j < XT_MT; j++) {
                    if (!on[j]) continue;
                    const unsigned long long da = xt_desc(st + XT_BOX + (c + 2 * j) * 8192);
                    xt_wg_fence();
#pragma unroll
                    for (int k = 0; k < 4; k++) xt_wgmma128(part, da + 2 * k, db + 2 * k, k > 0);
                    xt_wg_commit();
                    const float sa = ra[j] >= 0 ? XT_XS((long long)ra[j], kb) * w : 0.0f, sb = rb[j] >= 0 ? XT_XS((long long)rb[j], kb) * w : 0.0f;
                    xt_wg_wait0();
                    xt_hold64(part);
#pragma unroll
                    for (int i = 0; i < 64; i++) acc[j][i] += part[i] * ((i & 2) ? sb : sa);
                }
                if (lane == 0) xt_mbar_arrive(&empty[s]); // the stage read: back to the producer
                if (p0 == 0 && kb == 0 && un < units) cn = cnt[bn], fn = cnt[EB + bn];
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
            if (XT_NW > 1 && ws) {
                XT_EPILOGUE(1)
            } else {
                XT_EPILOGUE(0)
            }
#undef XT_EPILOGUE
        }
        b = bn, c0 = cn, first = fn;
    }
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
