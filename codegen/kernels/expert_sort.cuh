// expert_sort.cuh — phase 1 of the routed experts' grouped FP8 GEMM
// (codegen/gen_expert.c's fp8_expert_linear): one block of 256 threads sorts
// the routed rows by expert and cuts each expert's rows into the tiles the
// forms after it take; one sort serves gate, up and the chained down.
//
// * Buckets: the ES_E experts, then bucket ES_E, the slots of id -1
//   (dispatched rows whose expert is on another GPU, or that nobody sent:
//   their outputs are zeros). A counting sort in shared memory: each
//   thread counts its rows' buckets (atomics on cnt), then each bucket's
//   count and first sorted position (the counts before it), then each
//   thread places its rows at its buckets' next positions (atomics on cur,
//   so a bucket's rows are in no set order; no form depends on it).
// * The bucket offsets: thread 0 walks the buckets in order (ES_SCAN 0),
//   or (ES_SCAN n > 0, DSCC_EXPERT_SCAN) thread t takes buckets n t ..
//   n t + n - 1, and a block-wide exclusive scan (shuffles in a warp, then
//   the 8 warps' sums) of their rows and tiles gives each thread its
//   offsets: the same values at the same places as the walk (bucket order,
//   a bucket's tiles in order); the last thread's ends are the totals. The
//   walk is serial in the buckets (257 for V3: some 9,000 cycles of
//   dependent shared-memory reads and stores at batch 1, where it is most of
//   the phase). Either way ES_BUCKET writes a bucket's values.
// * Tiles: of 64 rows (the tile form's), T[j] = the first sorted position of
//   tile j, in bucket order, their count at C[2 EB]; with ES_S32 also the
//   stream form's tiles of at most 32 (expert_stream.cuh), three ints each
//   (first sorted position, expert or -1, rows), their count at
//   C[2 EB + 1].
// * With ES_ORD, the TMA form's work list (expert_tma.cuh's XT_ORD): the
//   buckets that have rows, longest first (ties: the lower expert), the
//   slots of id -1 last, their count after them; each expert's rank by one
//   thread's pass over all counts (no second sort). With ES_BM > 0 also
//   level 3's passes of at most ES_BM rows (XT_PASSES: bucket, its first
//   pass, first sorted position, rows), each bucket's at the list's place of
//   its first, and their count; with ES_CTR_AT >= 0, the dynamic units'
//   counter zeroed (XT_CTR).
//
// Parameters (#define; expressions may use the kernel's Args `a`):
//   DSCC_ENTRY        the entry point's name
//   ES_E              experts (buckets: ES_E + 1)
//   ES_R              routed rows (a long long expression)
//   ES_IDX(r)         routed row r's expert id as f32 (-1: elsewhere)
//   ES_FAIL(v)        reports an expert id out of range (a data error)
//   ES_C              int *: per bucket b its count at [b], first sorted position at [EB + b]; the tiles'
//                     counts at [2 EB], [2 EB + 1]; the list and passes' ints at the offsets below
//   ES_P, ES_T        int *: sorted position -> routed row; tile of 64 -> its first sorted position
//   ES_S32            1: the tiles of 32 too, into ES_T32 (int *; default 0)
//   ES_SCAN           0: thread 0 walks the buckets; n: the scan, n buckets a thread (256 n >= ES_E + 1)
//   ES_ORD            1: the TMA form's bucket list at ES_C + ES_ORD_AT (ES_E + 2 ints; default 0)
//   ES_BM             > 0: level 3's passes of at most ES_BM rows into ES_PASSES (int *, 4 ints each), their
//                     count at ES_C[ES_NPASS_AT] (needs ES_ORD; default 0)
//   ES_CTR_AT         >= 0: ES_C[ES_CTR_AT] zeroed (needs ES_BM; default -1)
//   ES_EARLY          1 (DSCC_PDL_EARLY=1): DSCC_PDL_LAUNCH_DEPENDENTS() before the wait (default 0)
#ifndef ES_IDX // compiled on its own (test_codegen): a stand-in for the module's prelude, V3's shapes
#include "args.cuh"
#define ES_E 256
#define ES_R (8LL * a.sym[0])
#define ES_IDX(r) ((float)((const int *)a.t[0])[r])
#define ES_FAIL(v) (((int *)a.err)[1] = (int)(v))
#define ES_C ((int *)a.t[1])
#define ES_P ((int *)a.t[2])
#define ES_T ((int *)a.t[3])
#define ES_S32 1
#define ES_T32 ((int *)a.t[4])
#define ES_SCAN 2
#define ES_ORD 1
#define ES_ORD_AT (2 * (ES_E + 1) + 2)
#define ES_BM 128
#define ES_PASSES (ES_T32 + 3 * ES_R)
#define ES_NPASS_AT (ES_ORD_AT + ES_E + 2)
#define ES_CTR_AT (ES_NPASS_AT + 1)
#endif
#ifndef ES_S32
#define ES_S32 0
#endif
#ifndef ES_ORD
#define ES_ORD 0
#endif
#ifndef ES_BM
#define ES_BM 0
#endif
#ifndef ES_CTR_AT
#define ES_CTR_AT -1
#endif
#ifndef ES_EARLY
#define ES_EARLY 0
#endif
#if ES_SCAN < 0 || (ES_SCAN > 0 && ES_SCAN * 256 < ES_E + 1)
#error "ES_SCAN must be 0, or buckets a thread enough for 256 threads to take ES_E + 1"
#endif
#if (ES_BM > 0 && !ES_ORD) || (ES_CTR_AT >= 0 && ES_BM <= 0)
#error "ES_BM needs ES_ORD; ES_CTR_AT needs ES_BM"
#endif

#define ES_EB (ES_E + 1)
#define ES_PASTE2(a, b) a##b
#define ES_PASTE(a, b) ES_PASTE2(a, b)
#define ES_BUCKET ES_PASTE(DSCC_ENTRY, _bucket) // one per instance: they read the instance's parameters
#define ES_TOTALS ES_PASTE(DSCC_ENTRY, _totals)
#define ES_OFFSETS ES_PASTE(DSCC_ENTRY, _offsets)
#define ES_ORDER ES_PASTE(DSCC_ENTRY, _order)

// Bucket e's values: its count c and first sorted position base (also the start of its placement, cur), its tiles of
// 64 from tile nt on and (ES_S32) of 32 from n32 on, both advanced past them.
__device__ __forceinline__ void ES_BUCKET(int *C, int *T, int *T32, int *cur, int e, int c, int base, int &nt, int &n32) {
    C[e] = c;
    C[ES_EB + e] = cur[e] = base;
    for (int s = 0; s < c; s += 64) T[nt++] = base + s;
#if ES_S32
    for (int s = 0; s < c; s += 32, n32++)
        T32[3 * n32] = base + s, T32[3 * n32 + 1] = e < ES_E ? e : -1, T32[3 * n32 + 2] = c - s < 32 ? c - s : 32;
#else
    (void)T32, (void)n32;
#endif
}

// The totals after the last bucket: the tiles of 64 and (ES_S32) of 32.
__device__ __forceinline__ void ES_TOTALS(int *C, int nt, int n32) {
    C[2 * ES_EB] = nt;
#if ES_S32
    C[2 * ES_EB + 1] = n32;
#else
    (void)n32;
#endif
}

#if ES_SCAN > 0
// Each thread's buckets by the block-wide scan (see the top); every thread calls it.
__device__ __forceinline__ void ES_OFFSETS(int *C, int *T, int *T32, const int *cnt, int *cur) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, e0 = threadIdx.x * ES_SCAN;
    __shared__ int scan_w[3][8];
    int n = 0, t64 = 0, t32 = 0;
    for (int j = 0; j < ES_SCAN && e0 + j < ES_EB; j++) {
        const int c = cnt[e0 + j];
        n += c, t64 += (c + 63) / 64, t32 += (c + 31) / 32;
    }
    int incl = n, inc64 = t64, inc32 = t32; // inclusive in the warp
    for (int o = 1; o < 32; o <<= 1) {
        const int u = __shfl_up_sync(0xffffffffu, incl, o), v = __shfl_up_sync(0xffffffffu, inc64, o),
                  w = __shfl_up_sync(0xffffffffu, inc32, o);
        if (lane >= o) incl += u, inc64 += v, inc32 += w;
    }
    if (lane == 31) scan_w[0][warp] = incl, scan_w[1][warp] = inc64, scan_w[2][warp] = inc32;
    __syncthreads();
    int base = incl - n, nt = inc64 - t64, n32 = inc32 - t32;
    for (int v = 0; v < warp; v++) base += scan_w[0][v], nt += scan_w[1][v], n32 += scan_w[2][v];
    for (int j = 0; j < ES_SCAN && e0 + j < ES_EB; j++) {
        const int c = cnt[e0 + j];
        ES_BUCKET(C, T, T32, cur, e0 + j, c, base, nt, n32);
        base += c;
    }
    if (threadIdx.x == 255) ES_TOTALS(C, nt, n32); // its ends: the totals
}
#else
// The buckets in order by thread 0 (see the top).
__device__ __forceinline__ void ES_OFFSETS(int *C, int *T, int *T32, const int *cnt, int *cur) {
    if (threadIdx.x != 0) return;
    int base = 0, nt = 0, n32 = 0;
    for (int e = 0; e < ES_EB; e++) {
        const int c = cnt[e];
        ES_BUCKET(C, T, T32, cur, e, c, base, nt, n32);
        base += c;
    }
    ES_TOTALS(C, nt, n32);
}
#endif

#if ES_ORD
// The TMA form's bucket list (and with ES_BM its passes, ES_PASSES an expression over a) after the placement:
// cur[b] is bucket b's end now.
__device__ __forceinline__ void ES_ORDER(const Args &a, int *C, const int *cnt, const int *cur) {
    int *O = C + ES_ORD_AT;
    __shared__ int nb;
#if ES_BM > 0
    __shared__ int npass;
    if (threadIdx.x == 0) nb = 0, npass = 0;
#else
    if (threadIdx.x == 0) nb = 0;
#endif
    __syncthreads();
    for (int e = threadIdx.x; e < ES_E; e += 256) {
        const int n = cnt[e];
        if (n == 0) continue;
        int rank = 0, p0 = 0; // p0: the passes of the buckets before it
        for (int f = 0; f < ES_E; f++) {
            const int m = cnt[f];
            const bool before = m > n || (m == n && f < e);
            rank += before;
#if ES_BM > 0
            p0 += before ? (m + ES_BM - 1) / ES_BM : 0;
#endif
        }
        O[rank] = e;
        atomicAdd(&nb, 1);
#if ES_BM > 0
        atomicAdd(&npass, (n + ES_BM - 1) / ES_BM);
        for (int s = 0; s < n; s += ES_BM) { // its passes: (bucket, its first pass, first sorted position, rows) each
            int *q = ES_PASSES + 4 * (p0 + s / ES_BM);
            q[0] = e, q[1] = p0, q[2] = cur[e] - n, q[3] = n;
        }
#else
        (void)p0;
#endif
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const int ne = cnt[ES_E];
        if (ne > 0) O[nb++] = ES_E;
        O[ES_EB] = nb;
#if ES_BM > 0
        for (int s = 0; s < ne; s += ES_BM) { // the slots of id -1: their passes last
            int *q = ES_PASSES + 4 * (npass + s / ES_BM);
            q[0] = ES_E, q[1] = npass, q[2] = cur[ES_E] - ne, q[3] = ne;
        }
        C[ES_NPASS_AT] = npass + (ne + ES_BM - 1) / ES_BM;
#if ES_CTR_AT >= 0
        C[ES_CTR_AT] = 0; // the dynamic units' counter
#endif
#endif
    }
}
#endif

extern "C" __global__ void __launch_bounds__(256) DSCC_ENTRY(Args a) {
#if ES_EARLY
    DSCC_PDL_LAUNCH_DEPENDENTS(); // the next kernel may launch now; it waits for this one's end (codegen/kernels.h)
    DSCC_PDL_WAIT();              // the routing is the step's: from here on
#else
    DSCC_PDL_WAIT(); // the routing is the step's: from here on (programmatic dependent launch: codegen/kernels.h)
    DSCC_PDL_LAUNCH_DEPENDENTS();
#endif
    const long long R = ES_R;
    __shared__ int cnt[ES_EB], cur[ES_EB];
    int *C = ES_C, *P = ES_P, *T = ES_T;
#if ES_S32
    int *T32 = ES_T32;
#else
    int *T32 = nullptr;
#endif
    for (int e = threadIdx.x; e < ES_EB; e += 256) cnt[e] = 0;
    __syncthreads();
    for (long long r = threadIdx.x; r < R; r += 256) {
        const float f = ES_IDX(r);
        if (f == -1.0f) atomicAdd(&cnt[ES_E], 1); // a slot whose expert is elsewhere
        else if (!(f >= 0.0f && f < (float)ES_E)) ES_FAIL(f);
        else atomicAdd(&cnt[(int)f], 1);
    }
    __syncthreads();
    ES_OFFSETS(C, T, T32, cnt, cur);
    __syncthreads();
    for (long long r = threadIdx.x; r < R; r += 256) {
        const float f = ES_IDX(r);
        if (f == -1.0f) P[atomicAdd(&cur[ES_E], 1)] = (int)r;
        else if (f >= 0.0f && f < (float)ES_E) P[atomicAdd(&cur[(int)f], 1)] = (int)r;
    }
#if ES_ORD
    ES_ORDER(a, C, cnt, cur);
#endif
}
#undef ES_BUCKET
#undef ES_TOTALS
#undef ES_OFFSETS
#undef ES_ORDER
#undef ES_PASTE
#undef ES_PASTE2
#undef ES_EB
#undef ES_S32
#undef ES_ORD
#undef ES_BM
#undef ES_CTR_AT
#undef ES_EARLY
#undef DSCC_ENTRY
#undef ES_E
#undef ES_R
#undef ES_IDX
#undef ES_FAIL
#undef ES_C
#undef ES_P
#undef ES_T
#undef ES_T32
#undef ES_SCAN
#undef ES_ORD_AT
#undef ES_PASSES
#undef ES_NPASS_AT
