// einsum_heads.cuh — absorbed MLA's per-head products at decode row counts:
// y[m, h, n] = sum_k x[m, h, k] * w[h, n, k] for m < EH_M <= EH_MROWS, x and
// w in BF16, f32 sums ("bshd,hcd->bshc" with W_UK transposed, "bshc,hdc->bshd"
// with W_UV). At a decode step's few rows the product only reads w (16.8 MB
// for V3's 128 heads); the tensor-core tile read it in 64 x 128 tiles of two
// or eight K steps each, 512 short blocks in two waves, at 1.3-1.4 TB/s on an
// H100. This form reads each weight row once, in one wave, all its loads in
// flight at once, and runs the few rows on the CUDA cores:
//
// * A block (256 threads, 8 warps) owns 32 * EH_R consecutive rows n of one
//   head's w. Lanes 8r .. 8r + 7 of a warp read a row together, 16 bytes a
//   lane of each 128-byte segment (64 values of K: one whole line a group),
//   EH_R rows in turn: EH_R * EH_SEGS <= 8 loads a lane, all issued before
//   anything waits on them (K beyond 8 segments: passes of 8).
// * The head's rows of x (EH_M of them) are copied into shared memory, as
//   BF16, while the weights are in flight (with EH_PRE, issued before the
//   kernel's DSCC_PDL_WAIT(): under the tail of the kernel before); a lane reads its 8 values of a
//   segment in one 16-byte load (the 4 groups of a warp: the same addresses).
// * Each lane keeps one partial sum a row of x; the 8 lanes of a group add
//   theirs by three xor shuffles, in the same order every run, and lane
//   m % 8 of the group stores y[m, h, n].
//
// Parameters (#define; a module defines them all, the defaults below make
// the file compile on its own):
//   DSCC_ENTRY        the entry point's name
//   EH_M              rows of x and y, an expression over the Args `a` (<= EH_MROWS)
//   EH_MROWS          the most rows (a sum each in registers)
//   EH_H, EH_N, EH_K  heads, outputs a head, K (EH_K % 64 == 0)
//   EH_SEGS           EH_K / 64: the 128-byte segments of a row of w
//   EH_R              rows of w a lane group reads (EH_R * EH_SEGS <= 8, or 1)
//   EH_X(i)           x's value (f32, a BF16 value) at flat index i of [M][H][K]
//   EH_W              w's BF16 values, [H][N][K] (const unsigned short *, 16-byte aligned)
//   EH_STORE(i, v)    stores y[i] (f32 v) at flat index i of [M][H][N]
//   EH_MINB           blocks an SM the registers must allow (default: 4 up to 8 rows, else 2)
//   EH_PRE            1: w is a value of weights alone (a weight, or computed from weights when they load), so the
//                     first pass of its loads is issued before DSCC_PDL_WAIT(): under the kernel before (default 0)
//   EH_SIDE(a)        a side job each block runs after its wait, while its weights are in flight (DSCC_EINSUM_ROPE=1:
//                     the roped q_pe its row group would have stored; DSCC_EINSUM_KV=1: the latent's rows, norm and KV
//                     cache append, a block a row, with block barriers: every thread calls it; default: none)
//   EH_EARLY          1 (DSCC_PDL_EARLY=1): DSCC_PDL_LAUNCH_DEPENDENTS() first, so the kernel after this one may
//                     launch (and start its own prologue) while this one waits and runs (default 0: never: it
//                     launches at this one's end)
// Launch: EH_H * ceil(EH_N / (32 * EH_R)) blocks of 256 threads, EH_MROWS *
// EH_K * 2 bytes of dynamic shared memory.
#ifndef EH_X // compiled on its own (test_codegen): a stand-in for the module's prelude
#include "args.cuh"
__device__ __forceinline__ float bf2f(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
#define EH_M (a.sym[0])
#define EH_MROWS 8
#define EH_H 128
#define EH_N 512
#define EH_K 128
#define EH_SEGS 2
#define EH_R 4
#define EH_X(i) bf2f(((const unsigned short *)a.t[0])[i])
#define EH_W ((const unsigned short *)a.t[1])
#define EH_STORE(i, v) (((float *)a.t[2])[i] = (v))
#endif

#ifndef EH_MINB // blocks an SM (registers capped to fit them): 4 at 8 rows, 512 blocks in one wave on 132 SMs (ptxas
                // spills 20 bytes at K = 128); 2 above, whose sums need more registers
#define EH_MINB (EH_MROWS <= 8 ? 4 : 2)
#endif
#ifndef EH_PRE
#define EH_PRE 0
#endif
#ifndef EH_EARLY
#define EH_EARLY 0
#endif
#ifndef EH_SIDE
#define EH_SIDE(a) ((void)0)
#endif
#define EH_PASS (EH_R * EH_SEGS < 8 ? EH_R * EH_SEGS : 8) // loads a lane issues at once
#define EH_RB (32 * EH_R)                                 // rows of w a block
#define EH_NB ((EH_N + EH_RB - 1) / EH_RB)                // blocks a head

#ifndef EH_HELPERS // once a module (it may hold several instances)
#define EH_HELPERS
// acc += the 8 BF16 values of u times the 8 of x (both as bits: a BF16 value is the top half of its f32)
__device__ __forceinline__ float eh_lo(unsigned v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float eh_hi(unsigned v) { return __uint_as_float(v & 0xffff0000u); }
__device__ __forceinline__ void eh_fma8(float &acc, const uint4 u, const uint4 x) {
    acc += eh_lo(u.x) * eh_lo(x.x) + eh_hi(u.x) * eh_hi(x.x) + eh_lo(u.y) * eh_lo(x.y) + eh_hi(u.y) * eh_hi(x.y) +
           eh_lo(u.z) * eh_lo(x.z) + eh_hi(u.z) * eh_hi(x.z) + eh_lo(u.w) * eh_lo(x.w) + eh_hi(u.w) * eh_hi(x.w);
}
#endif

extern "C" __global__ void __launch_bounds__(256, EH_MINB) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(16) unsigned short eh_x[]; // [EH_MROWS][EH_K]: the head's rows of x, BF16
#if EH_EARLY
    DSCC_PDL_LAUNCH_DEPENDENTS(); // the next kernel may launch now; it waits for this one's end (codegen/kernels.h)
#endif
#if !EH_PRE
    DSCC_PDL_WAIT(); // x is the step's (programmatic dependent launch: codegen/kernels.h)
#endif
    const int h = (int)(blockIdx.x / EH_NB), nb = (int)(blockIdx.x % EH_NB);
    const int lane = threadIdx.x & 31, j = lane & 7;
    const int g = (int)(threadIdx.x >> 3); // the lane group: rows nb * EH_RB + g + 32 * t, t < EH_R
    const unsigned short *W = EH_W + (long long)h * EH_N * EH_K + j * 8;
    uint4 wv[EH_PASS];
    // the first pass's weights, then x while they are in flight
#pragma unroll
    for (int u = 0; u < EH_PASS; u++) {
        const int t = u / EH_SEGS, s = u % EH_SEGS, n = nb * EH_RB + g + 32 * t;
        wv[u] = n < EH_N ? *(const uint4 *)(W + (long long)n * EH_K + s * 64) : make_uint4(0u, 0u, 0u, 0u);
    }
#if EH_PRE
    DSCC_PDL_WAIT(); // x is the step's: from here on (the loads above read w alone, which no kernel of a step writes)
#endif
    const long long M = EH_M;
    for (long long i = threadIdx.x; i < M * EH_K; i += 256) {
        const long long m = i / EH_K, k = i % EH_K;
        eh_x[i] = (unsigned short)(__float_as_uint(EH_X((m * EH_H + h) * EH_K + k)) >> 16); // a BF16 value: exact
    }
    EH_SIDE(a); // under the weights' loads; it writes nothing this kernel reads
    __syncthreads();
    float acc[EH_MROWS];
#pragma unroll
    for (int m = 0; m < EH_MROWS; m++) acc[m] = 0.0f;
    // the loads u = 0 .. EH_R * EH_SEGS - 1 in passes of EH_PASS: row t = u / EH_SEGS, segment s = u % EH_SEGS
#pragma unroll 1
    for (int u0 = 0; u0 < EH_R * EH_SEGS; u0 += EH_PASS) {
        if (u0) {
#pragma unroll
            for (int u = 0; u < EH_PASS; u++) {
                const int t = (u0 + u) / EH_SEGS, s = (u0 + u) % EH_SEGS, n = nb * EH_RB + g + 32 * t;
                const bool in = u0 + u < EH_R * EH_SEGS && n < EH_N;
                wv[u] = in ? *(const uint4 *)(W + (long long)n * EH_K + s * 64) : make_uint4(0u, 0u, 0u, 0u);
            }
        }
#pragma unroll
        for (int u = 0; u < EH_PASS; u++) {
            if (u0 + u >= EH_R * EH_SEGS) break; // past the block's rows (the last pass of a row over 8 segments)
            const int t = (u0 + u) / EH_SEGS, s = (u0 + u) % EH_SEGS, n = nb * EH_RB + g + 32 * t;
            const unsigned short *xp = eh_x + s * 64 + j * 8;
#pragma unroll
            for (int m = 0; m < EH_MROWS; m++) {
                if (m >= M) break; // the same in every thread
                eh_fma8(acc[m], wv[u], *(const uint4 *)(xp + m * EH_K));
            }
            if (s == EH_SEGS - 1) { // the row's last segment: its sums, stored; the next row starts from zero
#pragma unroll
                for (int m = 0; m < EH_MROWS; m++) {
                    if (m >= M) break; // the same in every thread: the whole warp shuffles
                    float v = acc[m];
                    v += __shfl_xor_sync(0xffffffffu, v, 4);
                    v += __shfl_xor_sync(0xffffffffu, v, 2);
                    v += __shfl_xor_sync(0xffffffffu, v, 1);
                    if (n < EH_N && j == (m & 7)) EH_STORE(((long long)m * EH_H + h) * EH_N + n, v);
                    acc[m] = 0.0f;
                }
            }
        }
    }
}
// the instance's parameters: the next instance of the module defines its own
#undef EH_PASS
#undef EH_PRE
#undef EH_EARLY
#undef EH_SIDE
#undef EH_MINB
#undef EH_RB
#undef EH_NB
#undef DSCC_ENTRY
#undef EH_M
#undef EH_MROWS
#undef EH_H
#undef EH_N
#undef EH_K
#undef EH_SEGS
#undef EH_R
#undef EH_X
#undef EH_W
#undef EH_STORE
