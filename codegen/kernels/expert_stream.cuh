// expert_stream.cuh — the routed experts' grouped FP8 GEMM at decode
// (fp8_expert_linear, few rows an expert): y[r, O] = x[src(r), K] .
// w[e(r)][O, K]^T for every routed row r, E4M3 codes with DeepSeek's block
// scales (1x128 of x, 128x128 of w), f32 promotion every 128 of K. With a
// few rows an expert the GEMM is a stream of the hit experts' weights, so
// the kernel is built around that stream (gemm_skinny.cuh's ideas, grouped):
//
// * Work items are warps' (not blocks'): (tile of at most 32 rows of one
//   expert, 16 of its output rows, weight wsel of EX_NW). The sort phase
//   before (gen_expert.c) lists the tiles: EX_TILES[3t .. 3t + 2] is tile
//   t's first sorted position, expert (-1: the slots of id -1) and row
//   count, EX_NTILES how many there are, EX_PERM the sorted routed rows:
//   an item starts after two dependent loads.
// * Persistent: gridDim.x blocks of 8 warps; warp w of the grid takes items
//   w, w + 8 gridDim.x, ...; consecutive warps take consecutive 16-row
//   groups of one expert's weight. No item waits for another: no block
//   barrier, no K split, no second launch.
// * Each warp streams its 16 weight rows over all of K: by default through
//   a ring of EX_D cp.async stages of its own in shared memory (EX_D - 1 K
//   blocks, 14 KB at 8, always in flight, whatever the registers: see
//   EX_ITEM_RING); or (EX_RING 0) EX_U K blocks a round in registers, every
//   load of the round issued before its first product, 16-byte loads that
//   bypass L1 (x, re-read by the items of its tile, keeps L1).
// * Swapped operands: the weights are mma.sync m16n8k32's 16-row A, the
//   tokens its 8-column B (1 to 4 column tiles of 8, as the tile has rows),
//   so a tile of 1 row wastes 7/8 of an 8-wide product, not 63/64 of a
//   64-row tile. A thread's 16-byte load of weight row g (and g + 8) at K
//   offset 16 q of a 64-byte half feeds two mma's A registers directly; x
//   is read at the same offsets (the K order inside a K block is permuted
//   alike for both operands: the sum does not depend on its order).
// * Promotion per K block with both scales; the -1 bucket's tiles store
//   zeros without reading any weight.
// Opt-in (DSCC_EXPERT_V2, gen_expert.c): on an H100 it was slower than the
// 64-row tile at batch 1 / 32 / 128 (0.191 / 2.289 / 4.127 ms against
// 0.168 / 1.886 / 3.089 for two V3 layers' fp8_expert_linear).
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
//   EX_U                 K blocks a warp loads before it uses one (default 4)
//   EX_MINB              blocks an SM must hold (the register budget; default 1)
//   EX_RING, EX_D        1 (default): the ring form, EX_D stages a warp (4, 6 or 8; default 8); 0: the register form
// Dynamic shared memory: 8 * EX_D * 2048 bytes in the ring form, none otherwise.
#ifndef EX_X // compiled on its own (test_codegen): a stand-in for the module's prelude
#include "args.cuh"
#include "mma.cuh"
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
#endif
#ifndef EX_U
#define EX_U 4
#endif
#ifndef EX_MINB
#define EX_MINB 1
#endif
#ifndef EX_RING
#define EX_RING 1 // 1: the weights through a per-warp ring of cp.async stages in shared memory (see EX_ITEM_RING)
#endif
#ifndef EX_D
#define EX_D 8 // stages of a warp's ring (one K block of its 16 rows, 2 KB, each): 4, 6 or 8
#endif
#define EX_NKB ((EX_K + 127) / 128)
#define EX_NOB ((EX_O + 127) / 128)
#define EX_NCG ((EX_O + 15) / 16) // 16-row groups of a weight

// the weights' and x's 16-byte loads (ld_stream16_if, ld_x16_if)
#include "ld_stream.cuh"
#ifndef EX_HELPERS // once a module
#define EX_HELPERS
// cp.async.wait_group N for the ring's depths: every group but the newest N has landed (this thread's copies)
__device__ __forceinline__ void ex_cp_wait3() { asm volatile("cp.async.wait_group 3;\n" ::: "memory"); }
__device__ __forceinline__ void ex_cp_wait5() { asm volatile("cp.async.wait_group 5;\n" ::: "memory"); }
__device__ __forceinline__ void ex_cp_wait7() { asm volatile("cp.async.wait_group 7;\n" ::: "memory"); }
#endif
#if EX_D == 4
#define EX_CP_WAIT() ex_cp_wait3()
#elif EX_D == 6
#define EX_CP_WAIT() ex_cp_wait5()
#elif EX_D == 8
#define EX_CP_WAIT() ex_cp_wait7()
#else
#error "EX_D must be 4, 6 or 8"
#endif

#define EX_PASTE2(a, b) a##b
#define EX_PASTE(a, b) EX_PASTE2(a, b)
#define EX_ITEM EX_PASTE(DSCC_ENTRY, _item) // one per instance: it reads the instance's parameters
#define EX_ITEM_RING EX_PASTE(DSCC_ENTRY, _item_ring)

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
                    wv[u][i][h] = ld_stream16_if(W + n * K + k, kb < nkb && n < O && k < K);
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
                    xv[u][h] = ld_x16_if(X + (long long)(xr < 0 ? 0 : xr) * K + k, xr >= 0 && kb < nkb && k < K);
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

// The ring form of an item: the warp's 16 weight rows go through EX_D stages of its own in shared memory, one K block
// (2 KB) a stage, by cp.async (16 bytes a lane, 4 whole 128-byte lines an instruction), EX_D - 1 K blocks always in
// flight whatever the registers; row r's 16-byte chunk c sits at chunk c ^ 4 (r & 1) of its 128 bytes, so the
// fragment reads (rows g and g + 1 of a quarter warp) hit 32 distinct banks. A lane reads other lanes' copies: each
// lane waits for its own, then __syncwarp orders them for all; a stage is refilled only after a __syncwarp that
// follows every lane's reads of it. x and the scales of K block kb are loaded while its stage lands.
__device__ __forceinline__ void EX_ITEM_RING(const Args &a, int wsel, long long e, long long n0, int nr, const int *xrow, const int *yrow,
                                             unsigned char *ring) {
    const long long K = EX_K, O = EX_O, nkb = EX_NKB;
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3, nnt = (nr + 7) >> 3;
    const unsigned char *W = EX_W(wsel) + ((e < 0 ? 0 : e) * O + n0) * K, *X = EX_X;
    const long long wsb = ((e < 0 ? 0 : e) * EX_NOB + n0 / 128) * nkb;
    const int lr = lane >> 3, lc = lane & 7; // the lane's copies: rows lr + 4j, chunk lc
    float acc[4][4];
#pragma unroll
    for (int t = 0; t < 4; t++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[t][c] = 0.0f;
    auto issue = [&](long long kb) { // K block kb into its stage, one commit group a K block (empty past the end)
        if (kb < nkb) {
            unsigned char *st = ring + (int)(kb % EX_D) * 2048;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int r = lr + 4 * j;
                const bool v = n0 + r < O && kb * 128 + lc * 16 < K;
                cp16(st + r * 128 + ((lc ^ ((r & 1) << 2)) << 4), v ? W + r * K + kb * 128 + lc * 16 : W, v);
            }
        }
        cp_commit();
    };
    __syncwarp(); // the last item's reads of the ring are done
    if (e >= 0) {
#pragma unroll
        for (int s = 0; s < EX_D - 1; s++) issue(s);
        for (long long kb = 0; kb < nkb; kb++) {
            __syncwarp(); // every lane is done with the stage K block kb + EX_D - 1 refills (kb - 1's)
            issue(kb + EX_D - 1);
            const float ws = EX_WS(wsel, wsb + kb);
            uint4 xv[4][2];
            float xs[4][2];
#pragma unroll
            for (int t = 0; t < 4; t++) {
                const bool on = t < nnt;
                const int xr = on ? xrow[t * 8 + g] : -1, m0 = on ? xrow[t * 8 + 2 * q] : -1, m1 = on ? xrow[t * 8 + 2 * q + 1] : -1;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const long long k = kb * 128 + h * 64 + q * 16;
                    xv[t][h] = ld_x16_if(X + (long long)(xr < 0 ? 0 : xr) * K + k, xr >= 0 && k < K);
                }
                const float s0 = EX_XS(m0 < 0 ? 0 : m0, kb), s1 = EX_XS(m1 < 0 ? 0 : m1, kb);
                xs[t][0] = m0 >= 0 ? s0 : 0.0f;
                xs[t][1] = m1 >= 0 ? s1 : 0.0f;
            }
            EX_CP_WAIT(); // this lane's copies of K block kb have landed ...
            __syncwarp(); // ... and every lane's
            const unsigned char *st = ring + (int)(kb % EX_D) * 2048;
            uint4 w[2][2]; // rows g and g + 8 (the same swizzle: their parity is g's), chunks q and 4 + q
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) w[i][h] = *(const uint4 *)(st + (g + 8 * i) * 128 + (((4 * h + q) ^ ((g & 1) << 2)) << 4));
#pragma unroll
            for (int t = 0; t < 4; t++) {
                if (t >= nnt) break; // warp-uniform
                float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const unsigned a0[4] = {w[0][h].x, w[1][h].x, w[0][h].y, w[1][h].y}, b0[2] = {xv[t][h].x, xv[t][h].y};
                    const unsigned a1[4] = {w[0][h].z, w[1][h].z, w[0][h].w, w[1][h].w}, b1[2] = {xv[t][h].z, xv[t][h].w};
                    mma_e4m3(part, a0, b0);
                    mma_e4m3(part, a1, b1);
                }
#pragma unroll
                for (int c = 0; c < 4; c++) acc[t][c] += part[c] * (xs[t][c & 1] * ws);
            }
        }
    }
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
#if EX_RING
    extern __shared__ __align__(128) unsigned char ex_ring[]; // each warp's EX_D stages of 2 KB
#endif
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int *P = EX_PERM, *T = EX_TILES;
    const long long ncg = EX_NCG, items = (long long)EX_NTILES * EX_NW * ncg;
    for (long long it = (long long)blockIdx.x * 8 + warp; it < items; it += (long long)gridDim.x * 8) {
        const long long cg = it % ncg, rest = it / ncg, t = rest / EX_NW;
        const int wsel = (int)(rest % EX_NW), start = T[3 * t], e = T[3 * t + 1], nr = T[3 * t + 2];
        __syncwarp(); // the last item's reads of the rows are done
        const int r = lane < nr ? P[start + lane] : -1;
        ex_rows[warp][0][lane] = r < 0 ? -1 : (int)(EX_SRC(r));
        ex_rows[warp][1][lane] = r;
        __syncwarp();
#if EX_RING
        EX_ITEM_RING(a, wsel, e, cg * 16, nr, ex_rows[warp][0], ex_rows[warp][1], ex_ring + warp * (EX_D * 2048));
#else
        EX_ITEM(a, wsel, e, cg * 16, nr, ex_rows[warp][0], ex_rows[warp][1]);
#endif
    }
}
#undef EX_ITEM
#undef EX_ITEM_RING
#undef EX_CP_WAIT
#undef EX_RING
#undef EX_D
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
