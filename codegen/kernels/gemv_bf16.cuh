// gemv_bf16.cuh — a BF16 linear at one or two rows (the LM head of a decode step: y[M, N] = x[M, K] . w[N, K]^T,
// M <= GV_MROWS, f32 sums) read as a pure stream: the form of stream_read.cuh, which reads HBM at its peak, with
// the products beside it. gemm_skinny2.cuh's mma form read V3's 1.85 GB LM head at ~92% of that peak on an H100
// (0.652 ms against stream_read's 0.601); its warps each take 128-byte pieces of 16 rows 14 KB apart. Here:
//
// * A warp takes whole weight rows: row n of w is 2K contiguous bytes, lane l reads its 16-byte pieces l, l + 32,
//   ... (512 contiguous bytes a load of the warp), GV_U pieces a round, every load of the round issued before its
//   first product (ld.global.nc.L1::no_allocate through ld_stream.cuh), and the next round's loads (the next row's
//   first, at a row's last round) issued before this round's products: two rounds in flight a warp.
// * A persistent grid of SK_GRID blocks of 8 warps: warp w of the grid takes rows w, w + 8 SK_GRID, ...: at any time
//   the grid reads one contiguous stretch of the weight.
// * The products on the CUDA cores (a weight is used M times, at M <= 2 the FMAs hide under the loads): x's 16 bytes
//   at the same offset (L1-cached: every warp of an SM reads the same 14 KB), bf16 widened to f32 exactly, one f32
//   sum a lane a row of x, then a butterfly over the warp; lane 0 stores y[m, n]. The sum's order differs from the
//   mma forms' (an f32 rounding apart: tests compare against the CPU executor's bounds).
// * Programmatic dependent launch (codegen/kernels.h): a warp issues its first round of weights before
//   DSCC_PDL_WAIT() (no kernel of a step writes weights); x is read after it.
//
// Parameters (#define; a module defines them (codegen/gen_gemm.c), gemm_skinny_common.cuh's stand-ins otherwise):
//   DSCC_ENTRY        the entry point's name
//   SK_M              rows of x and y, an expression over the Args `a` (<= GV_MROWS)
//   GV_MROWS          the most rows: 1 or 2
//   SK_N, SK_K        output columns and K (K % 8 == 0: rows start 16-aligned)
//   SK_X, SK_W        x's and w's values (const unsigned char *, bf16)
//   SK_STORE(i, v)    stores y[i] (f32 v) in y's dtype
//   SK_GRID           blocks (a few an SM: GV_MINB)
//   GV_U              16-byte pieces a lane a round (default 4: 2 KB a warp a round, two rounds in flight)
//   GV_MINB           blocks an SM must hold (the register budget; default 3)
//   GV_ST             1: warp w starts each row at round w % (rounds a row), so the grid's warps do not read the
//                     same offset of their rows at once (default 0)
//   GV_XS             1: x copied into shared memory once a block (dynamic, GV_MROWS x 2K bytes) and read from there
//                     instead of from global memory through L1 (default 0)
//   SK_EARLY          1 (DSCC_PDL_EARLY=1): DSCC_PDL_LAUNCH_DEPENDENTS() first
#ifndef SK_X // compiled on its own: a stand-in for the module's prelude (129,280 x 7,168: V3's LM head)
#define SK_N 129280LL
#define SK_GRID 396
#endif
#include "gemm_skinny_common.cuh"
#include "ld_stream.cuh"
#ifndef GV_MROWS
#define GV_MROWS 1
#endif
#ifndef GV_U
#define GV_U 4
#endif
#ifndef GV_MINB
#define GV_MINB 3
#endif
#ifndef SK_EARLY
#define SK_EARLY 0
#endif
#ifndef GV_ST
#define GV_ST 0
#endif
#ifndef GV_XS
#define GV_XS 0
#endif
#define GV_P (SK_K / 8)                           // 16-byte pieces a row
#define GV_R ((GV_P + 32 * GV_U - 1) / (32 * GV_U)) // rounds a row
#define GV_PASTE2(a, b) a##b
#define GV_PASTE(a, b) GV_PASTE2(a, b)
#define gv_load GV_PASTE(DSCC_ENTRY, _load) // this instance's helpers (a module may hold two)
#define gv_dot GV_PASTE(DSCC_ENTRY, _dot)

// Round r of row n into v: lane's pieces lane + 32 (GV_U r + u), zeros past the row.
__device__ __forceinline__ void gv_load(uint4 *v, const unsigned char *w, long long n, int r, int lane) {
#pragma unroll
    for (int u = 0; u < GV_U; u++) {
        const long long p = (long long)lane + 32LL * (GV_U * r + u);
        v[u] = ld_stream16_if(w + (n * GV_P + p) * 16, n < SK_N && p < GV_P);
    }
}

// acc[m] += the round's 8 products a piece with x's row m (its pieces at the same offsets).
__device__ __forceinline__ void gv_dot(float *acc, const uint4 *v, const unsigned char *x, long long m_rows, int r, int lane) {
#pragma unroll
    for (int u = 0; u < GV_U; u++) {
        const long long p = (long long)lane + 32LL * (GV_U * r + u);
        if (p >= GV_P) break;
        const unsigned wv[4] = {v[u].x, v[u].y, v[u].z, v[u].w};
#pragma unroll
        for (int m = 0; m < GV_MROWS; m++) {
            if (m >= m_rows) break;
#if GV_XS
            const uint4 xq = *(const uint4 *)(x + ((long long)m * GV_P + p) * 16);
#else
            const uint4 xq = ld_x16_if(x + ((long long)m * GV_P + p) * 16, true);
#endif
            const unsigned xv[4] = {xq.x, xq.y, xq.z, xq.w};
            float s = acc[m];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                s = fmaf(__uint_as_float(wv[j] << 16), __uint_as_float(xv[j] << 16), s);
                s = fmaf(__uint_as_float(wv[j] & 0xffff0000u), __uint_as_float(xv[j] & 0xffff0000u), s);
            }
            acc[m] = s;
        }
    }
}

extern "C" __global__ void __launch_bounds__(256, GV_MINB) DSCC_ENTRY(Args a) {
#if SK_EARLY
    DSCC_PDL_LAUNCH_DEPENDENTS();
#endif
    const int lane = threadIdx.x & 31;
    const long long nw = (long long)gridDim.x * 8;
    long long n = (long long)blockIdx.x * 8 + threadIdx.x / 32;
    const int r0 = GV_ST ? (int)(n % GV_R) : 0; // the round each of the warp's rows starts at
    uint4 cur[GV_U], nxt[GV_U];
    gv_load(nxt, SK_W, n, r0, lane); // weights only: before the wait
    DSCC_PDL_WAIT();                 // x and y are the step's: from here on
    const long long M = SK_M;
#if GV_XS
    extern __shared__ __align__(16) unsigned char gv_x[];
    for (long long i = threadIdx.x; i < M * GV_P; i += 256) *(uint4 *)(gv_x + i * 16) = ld_x16_if(SK_X + i * 16, true);
    __syncthreads();
    const unsigned char *x = gv_x;
#else
    const unsigned char *x = SK_X;
#endif
    for (; n < SK_N; n += nw) {
        float acc[GV_MROWS];
#pragma unroll
        for (int m = 0; m < GV_MROWS; m++) acc[m] = 0.0f;
        for (int i = 0; i < GV_R; i++) {
            const int r = r0 + i < GV_R ? r0 + i : r0 + i - GV_R;
#pragma unroll
            for (int u = 0; u < GV_U; u++) cur[u] = nxt[u];
            if (i + 1 < GV_R) gv_load(nxt, SK_W, n, r + 1 < GV_R ? r + 1 : 0, lane); // the next round in flight under this one's products
            else gv_load(nxt, SK_W, n + nw, r0, lane);
            gv_dot(acc, cur, x, M, r, lane);
        }
#pragma unroll
        for (int m = 0; m < GV_MROWS; m++) {
            float s = acc[m];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == 0 && m < M) SK_STORE(m * SK_N + n, s);
        }
    }
}
#undef GV_MROWS
#undef GV_U
#undef GV_MINB
#undef GV_ST
#undef GV_XS
#undef GV_P
#undef GV_R
#undef GV_PASTE2
#undef GV_PASTE
#undef gv_load
#undef gv_dot
#define SK_COMMON_END
#include "gemm_skinny_common.cuh"
