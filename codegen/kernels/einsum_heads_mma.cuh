// einsum_heads_mma.cuh — absorbed MLA's per-head products at a decode
// batch's rows on the tensor cores: y[m, h, n] = sum_k x[m, h, k] * w[h, n, k]
// for m < EH_M <= 16 * EH_MT, x and w in BF16, f32 sums (einsum_heads.cuh's
// shapes, for the rows where its CUDA-core sums cost more than the weights'
// read). Each weight row is read once:
//
// * A block (256 threads, 8 warps) owns 64 consecutive rows n of one head's
//   w, a warp 8 of them: lane (g = lane / 4, q = lane % 4) reads 16 bytes of
//   row g of each 32-wide K chunk, at K offset 8 q, up to 8 chunks' loads in
//   flight at once.
// * Those 8 values are the B operand (8 x 16, "col") of two mma.sync
//   m16n8k16 BF16 in gemm_skinny.cuh's K order: the first takes the lane's
//   values 0-3, the second 4-7, and x's A fragments (rows g and g + 8 of
//   each 16-row tile) are read at the same K offsets, 16 bytes a row, from
//   global memory (L1: every warp of the block reads the same head's x).
//   Every K value of the chunk meets its partner once: the sum over the
//   chunk is the dot product, whatever the order within it.
// * Each warp keeps EH_MT tiles of 16 x 8 f32 sums and stores them at the
//   end (y[m, h, n], m = 16 t + g (+ 8), n = its 8 rows' 2 q, 2 q + 1).
//
// Parameters (#define; a module defines them all, the defaults below make
// the file compile on its own):
//   DSCC_ENTRY        the entry point's name
//   EH_M              rows of x and y, an expression over the Args `a` (<= 16 * EH_MT)
//   EH_MT             the most 16-row tiles of x (sums in registers: 4 a tile a lane)
//   EH_H, EH_N, EH_K  heads, outputs a head, K (EH_K % 32 == 0)
//   EH_XB             x's BF16 values, [M][H][K] (const unsigned short *, 16-byte aligned)
//   EH_W              w's BF16 values, [H][N][K] (const unsigned short *, 16-byte aligned)
//   EH_STORE(i, v)    stores y[i] (f32 v) at flat index i of [M][H][N]
// Launch: EH_H * ceil(EH_N / 64) blocks of 256 threads, no shared memory.
#ifndef EH_XB // compiled on its own (test_codegen): a stand-in for the module's prelude
#include "args.cuh"
#include "mma.cuh"
#define EH_M (a.sym[0])
#define EH_MT 2
#define EH_H 128
#define EH_N 512
#define EH_K 128
#define EH_XB ((const unsigned short *)a.t[0])
#define EH_W ((const unsigned short *)a.t[1])
#define EH_STORE(i, v) (((float *)a.t[2])[i] = (v))
#endif

#define EHM_CH (EH_K / 32)                 // K chunks of 32
#define EHM_PASS (EHM_CH < 8 ? EHM_CH : 8) // chunks whose loads are in flight at once
#define EHM_NB ((EH_N + 63) / 64)          // blocks a head

extern "C" __global__ void __launch_bounds__(256) DSCC_ENTRY(Args a) {
    DSCC_PDL_WAIT(); // x is the step's (programmatic dependent launch: codegen/kernels.h)
    const long long M = EH_M;
    const int h = (int)(blockIdx.x / EHM_NB), nb = (int)(blockIdx.x % EHM_NB);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int n0 = nb * 64 + warp * 8, n = n0 + g; // the warp's 8 rows; the lane's row
    const unsigned short *W = EH_W + ((long long)h * EH_N + (n < EH_N ? n : 0)) * EH_K + q * 8;
    const int mt = (int)((M + 15) / 16); // the step's 16-row tiles of x
    float c[EH_MT][4];
#pragma unroll
    for (int t = 0; t < EH_MT; t++) c[t][0] = c[t][1] = c[t][2] = c[t][3] = 0.0f;
#pragma unroll 1
    for (int c0 = 0; c0 < EHM_CH; c0 += EHM_PASS) {
        uint4 wv[EHM_PASS];
#pragma unroll
        for (int u = 0; u < EHM_PASS; u++)
            wv[u] = n < EH_N && c0 + u < EHM_CH ? *(const uint4 *)(W + (c0 + u) * 32) : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
        for (int u = 0; u < EHM_PASS; u++) {
            if (c0 + u >= EHM_CH) break;
            const unsigned b0[2] = {wv[u].x, wv[u].y}, b1[2] = {wv[u].z, wv[u].w};
#pragma unroll
            for (int t = 0; t < EH_MT; t++) {
                if (t >= mt) break; // the same in every thread
                const long long m0 = 16 * t + g, m1 = m0 + 8, k = (c0 + u) * 32 + q * 8;
                const uint4 x0 = m0 < M ? *(const uint4 *)(EH_XB + (m0 * EH_H + h) * EH_K + k) : make_uint4(0u, 0u, 0u, 0u);
                const uint4 x1 = m1 < M ? *(const uint4 *)(EH_XB + (m1 * EH_H + h) * EH_K + k) : make_uint4(0u, 0u, 0u, 0u);
                const unsigned a0[4] = {x0.x, x1.x, x0.y, x1.y}, a1[4] = {x0.z, x1.z, x0.w, x1.w};
                mma_bf16(c[t], a0, b0);
                mma_bf16(c[t], a1, b1);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < EH_MT; t++) {
        if (t >= mt) break;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const long long m = 16 * t + g + 8 * (e >> 1);
            const int o = n0 + 2 * q + (e & 1);
            if (m < M && o < EH_N) EH_STORE((m * EH_H + h) * EH_N + o, c[t][e]);
        }
    }
}
// the instance's parameters: the next instance of the module defines its own
#undef EHM_CH
#undef EHM_PASS
#undef EHM_NB
#undef DSCC_ENTRY
#undef EH_M
#undef EH_MT
#undef EH_H
#undef EH_N
#undef EH_K
#undef EH_XB
#undef EH_W
#undef EH_STORE
