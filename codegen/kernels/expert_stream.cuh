// expert_stream.cuh — the routed experts' grouped FP8 GEMM at decode
// (fp8_expert_linear, few rows an expert): y[r, O] = x[src(r), K] .
// w[e(r)][O, K]^T for every routed row r, E4M3 codes with DeepSeek's block
// scales (1x128 of x, 128x128 of w), f32 promotion every 128 of K. With a
// few rows an expert the GEMM is a stream of the hit experts' weights, so
// the kernel is built around that stream (gemm_skinny.cuh's ideas, grouped):
//
// * Work items are warps' (not blocks'): (tile of at most 32 rows of one
//   expert, 16 of its output rows, weight wsel of EX_NW). The sort phase
//   before (gen_expert.c) lists the tiles: EX_TILES[t] is the tile's first
//   sorted position, EX_NTILES how many there are, EX_PERM the sorted
//   routed rows, EX_CNT[b] / EX_CNT[EX_E + 1 + b] bucket b's row count and
//   first sorted position (bucket EX_E: the slots of id -1).
// * Persistent: gridDim.x blocks of 8 warps; warp w of the grid takes items
//   w, w + 8 gridDim.x, ...; consecutive warps take consecutive 16-row
//   groups of one expert's weight. No item waits for another: no block
//   barrier, no K split, no second launch.
// * Each warp streams its 16 weight rows over all of K, EX_U K blocks a
//   round, every load of the round issued before its first product: 16-byte
//   loads that bypass L1 (x, re-read by the items of its tile, keeps L1).
// * Swapped operands: the weights are mma.sync m16n8k32's 16-row A, the
//   tokens its 8-column B (1 to 4 column tiles of 8, as the tile has rows),
//   so a tile of 1 row wastes 7/8 of an 8-wide product, not 63/64 of a
//   64-row tile. A thread's 16-byte load of weight row g (and g + 8) at K
//   offset 16 q of a 64-byte half feeds two mma's A registers directly; x
//   is read at the same offsets (the K order inside a K block is permuted
//   alike for both operands: the sum does not depend on its order).
// * Promotion per K block with both scales; the -1 bucket's tiles store
//   zeros without reading any weight.
//
// Parameters (#define; expressions may use the kernel's Args `a`):
//   DSCC_ENTRY           the entry point's name
//   EX_E                 experts
//   EX_O, EX_K           output rows of an expert's weight, K (K % 16 == 0: rows start 16-aligned)
//   EX_NW                weights sharing the routing (1, or 2: gate and up)
//   EX_X                 x's codes (const unsigned char *)
//   EX_XS(m, kb)         x's f32 scale of row m, K block kb
//   EX_SRC(r)            the row of x routed row r reads (r, or r / slots when x is per token)
//   EX_W(s)              weight s's codes [E][O][K] (const unsigned char *)
//   EX_WS(s, i)          weight s's f32 scales [E][ceil(O/128)][ceil(K/128)]
//   EX_STORE(s, i, v)    stores y_s[i] (f32 v) in its dtype
//   EX_CNT, EX_PERM, EX_TILES  the sort's counts and offsets, sorted rows, tiles (const int *)
//   EX_NTILES            the tile count (an expression)
//   EX_ID(r)             routed row r's expert id as a float (-1: none here)
//   EX_U                 K blocks a warp loads before it uses one (default 4)
//   EX_MINB              blocks an SM must hold (the register budget; default 1)
#ifndef EX_X // compiled on its own (test_codegen): a stand-in for the module's prelude
typedef unsigned long long u64;
struct Args { u64 t[64]; long long sym[8]; long long cap, len; u64 err; long long tag; };
__device__ __forceinline__ void mma_e4m3(float *c, const unsigned *a, const unsigned *b) {  // c[16x8] += a[16x32] . b[32x8]
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#define EX_E 256
#define EX_O 2048LL
#define EX_K 7168LL
#define EX_NW 2
#define EX_X ((const unsigned char *)a.t[0])
#define EX_XS(m, kb) (((const float *)a.t[1])[(kb) * a.sym[0] + (m)])
#define EX_SRC(r) ((r) / 8)
#define EX_W(s) ((const unsigned char *)a.t[2 + 2 * (s)])
#define EX_WS(s, i) (((const float *)a.t[3 + 2 * (s)])[i])
#define EX_STORE(s, i, v) (((float *)a.t[6 + (s)])[i] = (v))
#define EX_CNT ((const int *)a.t[8])
#define EX_PERM ((const int *)a.t[9])
#define EX_TILES ((const int *)a.t[10])
#define EX_NTILES (EX_CNT[2 * (EX_E + 1) + 1])
#define EX_ID(r) ((float)((const int *)a.t[11])[r])
#endif
#ifndef EX_U
#define EX_U 4
#endif
#ifndef EX_MINB
#define EX_MINB 1
#endif
#define EX_NKB ((EX_K + 127) / 128)
#define EX_NOB ((EX_O + 127) / 128)
#define EX_NCG ((EX_O + 15) / 16) // 16-row groups of a weight

#ifndef EX_HELPERS // once a module
#define EX_HELPERS
// 16 bytes of the weight stream (read once: kept out of L1); zeros where !v (a predicate, not a branch)
__device__ __forceinline__ uint4 ex_ld_w16(const void *p, bool v) {
    uint4 r;
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
                 " @p ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p), "r"((int)v));
    return r;
}
// 16 bytes of x (re-read by every item of its tile: cached), zeros where !v
__device__ __forceinline__ uint4 ex_ld_x16(const void *p, bool v) {
    uint4 r;
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
                 " @p ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p), "r"((int)v));
    return r;
}
#endif

#define EX_PASTE2(a, b) a##b
#define EX_PASTE(a, b) EX_PASTE2(a, b)
#define EX_ITEM EX_PASTE(DSCC_ENTRY, _item) // one per instance: it reads the instance's parameters

// One item: weight wsel's rows n0 .. n0 + 15 of expert e (e < 0: zeros) times the nr (<= 32) tokens whose x rows
// and y rows the warp's xrow / yrow hold, all of K.
__device__ __forceinline__ void EX_ITEM(const Args &a, int wsel, long long e, long long n0, int nr, const int *xrow, const int *yrow) {
    const long long K = EX_K, O = EX_O, nkb = EX_NKB;
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3, nnt = (nr + 7) >> 3; // token tiles of 8
    const unsigned char *W = EX_W(wsel) + (e < 0 ? 0 : e) * O * K, *X = EX_X;
    const long long wsb = ((e < 0 ? 0 : e) * EX_NOB + n0 / 128) * nkb; // the 16 rows share one 128-row weight block
    float acc[4][4];
#pragma unroll
    for (int t = 0; t < 4; t++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[t][c] = 0.0f;
    for (long long kb0 = 0; e >= 0 && kb0 < nkb; kb0 += EX_U) {
        uint4 wv[EX_U][2][2]; // weight rows n0 + g (+ 8), K bytes kb * 128 + 64 h + 16 q ... + 15
        float ws[EX_U];
#pragma unroll
        for (int u = 0; u < EX_U; u++) {
            const long long kb = kb0 + u;
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const long long n = n0 + g + 8 * i, k = kb * 128 + h * 64 + q * 16;
                    wv[u][i][h] = ex_ld_w16(W + n * K + k, kb < nkb && n < O && k < K);
                }
            const float s = EX_WS(wsel, wsb + (kb < nkb ? kb : 0));
            ws[u] = kb < nkb ? s : 0.0f;
        }
#pragma unroll
        for (int t = 0; t < 4; t++) {
            if (t >= nnt) break; // warp-uniform
            const int xr = xrow[t * 8 + g], m0 = xrow[t * 8 + 2 * q], m1 = xrow[t * 8 + 2 * q + 1];
            uint4 xv[EX_U][2]; // token t * 8 + g's x at the offsets of the thread's weight bytes
            float xs[EX_U][2]; // the scales of tokens t * 8 + 2q (+ 1), the thread's output columns
#pragma unroll
            for (int u = 0; u < EX_U; u++) {
                const long long kb = kb0 + u;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const long long k = kb * 128 + h * 64 + q * 16;
                    xv[u][h] = ex_ld_x16(X + (long long)(xr < 0 ? 0 : xr) * K + k, xr >= 0 && kb < nkb && k < K);
                }
                const long long kbs = kb < nkb ? kb : 0;
                const float s0 = EX_XS(m0 < 0 ? 0 : m0, kbs), s1 = EX_XS(m1 < 0 ? 0 : m1, kbs);
                xs[u][0] = m0 >= 0 ? s0 : 0.0f;
                xs[u][1] = m1 >= 0 ? s1 : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < EX_U; u++) {
                if (kb0 + u >= nkb) break; // warp-uniform, after every load
                float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const uint4 w0 = wv[u][0][h], w1 = wv[u][1][h], x = xv[u][h];
                    const unsigned a0[4] = {w0.x, w1.x, w0.y, w1.y}, b0[2] = {x.x, x.y};
                    const unsigned a1[4] = {w0.z, w1.z, w0.w, w1.w}, b1[2] = {x.z, x.w};
                    mma_e4m3(part, a0, b0);
                    mma_e4m3(part, a1, b1);
                }
#pragma unroll
                for (int c = 0; c < 4; c++) acc[t][c] += part[c] * (xs[u][c & 1] * ws[u]); // promotion with both scales
            }
        }
    }
    // D: weight row n0 + g (+ 8 for c >= 2), token t * 8 + 2q (+ 1 for odd c)
#pragma unroll
    for (int t = 0; t < 4; t++) {
        if (t >= nnt) break;
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int tok = t * 8 + 2 * q + (c & 1);
            const long long o = n0 + g + 8 * (c >> 1);
            const int y = tok < nr ? yrow[tok] : -1;
            if (y >= 0 && o < O) EX_STORE(wsel, (long long)y * O + o, acc[t][c]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(256, EX_MINB) DSCC_ENTRY(Args a) {
    __shared__ int ex_rows[8][2][32]; // each warp's item: x row and y row of its tokens (-1: none)
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int *C = EX_CNT, *P = EX_PERM, *T = EX_TILES;
    const long long EB = EX_E + 1, ncg = EX_NCG, items = (long long)EX_NTILES * EX_NW * ncg;
    for (long long it = (long long)blockIdx.x * 8 + warp; it < items; it += (long long)gridDim.x * 8) {
        const long long cg = it % ncg, rest = it / ncg, t = rest / EX_NW;
        const int wsel = (int)(rest % EX_NW), start = T[t];
        const float f = EX_ID(P[start]);
        const long long e = f < 0.0f ? -1 : (long long)f, b = e < 0 ? EB - 1 : e;
        const int left = C[EB + b] + C[b] - start, nr = left < 32 ? left : 32;
        __syncwarp(); // the last item's reads of the rows are done
        const int r = lane < nr ? P[start + lane] : -1;
        ex_rows[warp][0][lane] = r < 0 ? -1 : (int)(EX_SRC(r));
        ex_rows[warp][1][lane] = r;
        __syncwarp();
        EX_ITEM(a, wsel, e, cg * 16, nr, ex_rows[warp][0], ex_rows[warp][1]);
    }
}
#undef EX_ITEM
#undef EX_PASTE
#undef EX_PASTE2
#undef EX_NKB
#undef EX_NOB
#undef EX_NCG
#undef EX_U
#undef EX_MINB
#undef DSCC_ENTRY
#undef EX_E
#undef EX_O
#undef EX_K
#undef EX_NW
#undef EX_X
#undef EX_XS
#undef EX_SRC
#undef EX_W
#undef EX_WS
#undef EX_STORE
#undef EX_CNT
#undef EX_PERM
#undef EX_TILES
#undef EX_NTILES
#undef EX_ID
