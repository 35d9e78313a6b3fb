// gemm_skinny.cuh — DeepSeek's block-scaled FP8 linear for a few rows
// (decode: M <= 32), y[M, N] = x[M, K] . w[N, K]^T with E4M3 codes, one f32
// scale per 1x128 tile of x and per 128x128 block of w. At such M the GEMM
// only streams its weights, so the kernel is built around that stream:
//
// * A block owns 8 * SK_RB output columns (weight rows) and the whole K;
//   its 8 warps take the 128-wide K blocks in turn (warp w: kb = w, w + 8,
//   ...) and each warp its SK_RB groups of 8 weight rows, so the block reads
//   1 KB of each of its rows at a time and every SM gets blocks.
// * Weights come in 16-byte loads that bypass L1 (ld.global.nc
//   L1::no_allocate), SK_U K blocks per warp loaded before any is used (4 KB
//   in flight per warp, 8 KB when there are fewer blocks than SMs).
// * The products run on the tensor cores as mma.sync m16n8k32 E4M3 with
//   the weights as the 8-column operand B and x as the 16-row operand A
//   (M <= 16: one row tile, M <= 32: two). A thread's 16-byte load of row
//   g (lane / 4) at K offset 16 * (lane % 4) feeds two mma's B registers
//   directly: the K order inside a K block is permuted, the same way for x
//   (whose fragment the thread reads at the same offsets), and a sum does
//   not depend on the order of its terms.
// * Each K block's product is promoted to the f32 accumulator with both
//   scales (DeepSeek's promotion every 128 of K, as the tile does); the
//   warps' partial sums are added in shared memory in a fixed order: no
//   split-K pass, no atomics, the same bits every run.
//
// Parameters (#define; a module defines them all, the defaults below make
// the file compile on its own):
//   DSCC_ENTRY        the entry point's name
//   SK_M              rows of x and y, an expression over the Args `a` (<= 32)
//   SK_N, SK_K        output columns and K (K % 16 == 0: rows start 16-aligned)
//   SK_RB             8-row weight groups per warp: 1, 2 or 4
//   SK_U              K blocks a warp loads before it uses one (SK_U * SK_RB KB in flight a warp; default 4 / SK_RB)
//   SK_MINB           blocks an SM must hold (the register budget; default 2)
//   SK_X, SK_W        x's and w's codes (const unsigned char *, over `a`)
//   SK_XS(m, kb)      x's f32 scale of row m, K block kb (stored K-block-major: the quantize writes the layout
//                     cuBLASLt reads, and every GEMM reads that one)
//   SK_WS(i)          w's f32 scales [ceil(N/128)][ceil(K/128)]
//   SK_STORE(i, v)    stores y[i] (f32 v) in y's dtype
#ifndef SK_X // compiled on its own (test_codegen): a stand-in for the module's prelude
typedef unsigned long long u64;
struct Args { u64 t[64]; long long sym[8]; long long cap, len; u64 err; long long tag; };
__device__ __forceinline__ void mma_e4m3(float *c, const unsigned *a, const unsigned *b) {  // c[16x8] += a[16x32] . b[32x8]
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#define SK_M (a.sym[0])
#define SK_N 7168LL
#define SK_K 7168LL
#define SK_X ((const unsigned char *)a.t[0])
#define SK_XS(m, kb) (((const float *)a.t[1])[(kb) * SK_M + (m)])
#define SK_W ((const unsigned char *)a.t[2])
#define SK_WS(i) (((const float *)a.t[3])[i])
#define SK_STORE(i, v) (((float *)a.t[4])[i] = (v))
#endif
#ifndef SK_RB
#define SK_RB 1
#endif
#ifndef SK_U
#define SK_U (4 / SK_RB)                 // K blocks per warp in flight
#endif
#ifndef SK_MINB
#define SK_MINB 2                        // blocks an SM holds (registers: at most 65536 / (256 * SK_MINB) a thread)
#endif
#define SK_NKB ((SK_K + 127) / 128)      // K blocks
#define SK_COLS (8 * SK_RB)              // output columns per block

// 16 bytes of the weight stream: read once, so kept out of L1
__device__ __forceinline__ uint4 ld_stream16(const void *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

extern "C" __global__ void __launch_bounds__(256, SK_MINB) DSCC_ENTRY(Args a) {
    __shared__ float sk_red[8][SK_COLS][33]; // each warp's sums: [column][row of y], padded
    const long long M = SK_M, N = SK_N, K = SK_K, nkb = SK_NKB;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const long long n0 = (long long)blockIdx.x * SK_COLS;
    const unsigned char *X = SK_X, *W = SK_W;
    const int mtn = M > 16 ? 2 : 1; // row tiles of 16
    float acc[SK_RB][2][4];
#pragma unroll
    for (int r = 0; r < SK_RB; r++)
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[r][t][c] = 0.0f;
    for (long long kb0 = 0; kb0 < nkb; kb0 += 8 * SK_U) {
        uint4 wv[SK_U][SK_RB][2]; // row n0 + 8r + g, K bytes kb * 128 + 64h + 16q ... + 15
#pragma unroll
        for (int u = 0; u < SK_U; u++)
#pragma unroll
            for (int r = 0; r < SK_RB; r++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const long long kb = kb0 + u * 8 + warp, n = n0 + r * 8 + g, k = kb * 128 + h * 64 + q * 16;
                    wv[u][r][h] = kb < nkb && n < N && k < K ? ld_stream16(W + n * K + k) : make_uint4(0, 0, 0, 0);
                }
#pragma unroll
        for (int u = 0; u < SK_U; u++) {
            const long long kb = kb0 + u * 8 + warp;
            if (kb >= nkb) break; // warp-uniform
#pragma unroll
            for (int t = 0; t < 2; t++) {
                if (t >= mtn) break;
                // x's fragment: rows 16t + g and + 8, at the offsets of the thread's weight bytes
                uint4 xv[2][2];
                float xs[2];
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    const long long m = t * 16 + g + i * 8;
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const long long k = kb * 128 + h * 64 + q * 16;
                        xv[i][h] = m < M && k < K ? *(const uint4 *)(X + m * K + k) : make_uint4(0, 0, 0, 0);
                    }
                    xs[i] = m < M ? SK_XS(m, kb) : 0.0f;
                }
#pragma unroll
                for (int r = 0; r < SK_RB; r++) {
                    const long long n = n0 + r * 8; // the group's 8 rows share one 128-row weight block
                    const float ws = n < N ? SK_WS(n / 128 * nkb + kb) : 0.0f;
                    float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const unsigned a0[4] = {xv[0][h].x, xv[1][h].x, xv[0][h].y, xv[1][h].y}, b0[2] = {wv[u][r][h].x, wv[u][r][h].y};
                        const unsigned a1[4] = {xv[0][h].z, xv[1][h].z, xv[0][h].w, xv[1][h].w}, b1[2] = {wv[u][r][h].z, wv[u][r][h].w};
                        mma_e4m3(part, a0, b0);
                        mma_e4m3(part, a1, b1);
                    }
#pragma unroll
                    for (int c = 0; c < 4; c++) acc[r][t][c] += part[c] * (xs[c >> 1] * ws); // promotion with both scales
                }
            }
        }
    }
    // the 8 warps' sums: column 8r + 2q (+1) of the block, row of y 16t + g (+8)
#pragma unroll
    for (int r = 0; r < SK_RB; r++)
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) sk_red[warp][r * 8 + q * 2 + (c & 1)][t * 16 + g + 8 * (c >> 1)] = acc[r][t][c];
    __syncthreads();
    for (int i = threadIdx.x; i < SK_COLS * 32; i += 256) {
        const int col = i >> 5, m = i & 31;
        const long long n = n0 + col;
        if (m >= M || n >= N) continue;
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) s += sk_red[w][col][m];
        SK_STORE(m * N + n, s);
    }
}
#undef SK_U
#undef SK_MINB
#undef SK_NKB
#undef SK_COLS
#undef DSCC_ENTRY
#undef SK_M
#undef SK_N
#undef SK_K
#undef SK_RB
#undef SK_X
#undef SK_W
#undef SK_XS
#undef SK_WS
#undef SK_STORE
