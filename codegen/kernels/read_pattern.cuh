// read_pattern.cuh — a pure read of n16 x 16 bytes of device memory in one of
// several address patterns, for bench_hbm: which orders of 16-byte loads the
// HBM serves at its peak. The skinny kernels (a warp per weight row for the
// LM head's BF16 GEMV, gemm_skinny2.cuh's 16-row groups) read the same bytes
// as stream_read.cuh yet reach 50-92% of its rate; these patterns take their
// address orders apart from their arithmetic. No compute: every 32-bit word
// read is XOR-folded into the lane's word (so the loads stay), the warp's
// lanes' words are folded together and lane 0 stores the warp's in out[]:
// the host's XOR of out[] equals the XOR of every word of the buffer exactly
// when each word was read once (a missed or doubled word changes it).
//
// The patterns (RP_MODE), over pieces of 16 bytes, a buffer of rows of
// row16 pieces (n16 a multiple of row16); W warps (8 a block), G blocks:
//   0 stream_read.cuh's loop: thread t of the grid reads t, t + T, ... (T
//     threads), RP_U loads issued before any is folded, round after round
//   1 warp per row, rows interleaved: warp w the rows w, w + W, ...; lane l
//     the pieces l, l + 32, ... of the row (the LM head GEMV's order)
//   2 block per row: block b the rows b, b + G, ...; thread t the pieces t,
//     t + 256, ... of the row
//   3 warp-contiguous segments: the buffer cut into W stretches (whole 512
//     bytes), warp w reads its own from start to end, 512 bytes a warp load
//   4 gemm_skinny2.cuh's order (SK_RB = 2): groups of 16 rows, block b the
//     groups b, b + G, ...; warp w the 128-byte K blocks w, w + 8, ... of the
//     group's rows, a K block's 16 rows x 128 bytes as 4 loads a lane (rows
//     8r + lane / 4, bytes 64h + 16 (lane % 4) of the block, r, h in {0, 1})
//   5 warp per row, rows in consecutive runs: warp w the rows w C .. w C +
//     C - 1 (C = rows / W rounded up); lane l as in 1
//   6 block-contiguous segments: as 3 with blocks (stretches of whole 4 KB,
//     thread t the pieces t, t + 256, ... of its block's)
//   7 mode 0's addresses in the other modes' loop (two rounds in flight):
//     what that loop alone changes
//   8 mode 4 with each block's K blocks rotated by its index: block b's warp
//     w starts at K block 8 (b mod 8) + w and wraps, so CTAs in step read
//     different offsets of their rows (a row pitch of a power of two may
//     put the same offset of many rows on few channels)
// Modes 1-8 keep two rounds of RP_U loads a lane in flight: the next round
// is issued before this one is folded (the GEMV's software pipeline), and a
// lane's stream runs on across rows (a row's end does not drain it).
//
// Parameters (#define):
//   DSCC_ENTRY   the entry point's name; its one argument is struct Args below
//   RP_MODE      the pattern, 0..8 (default 0)
//   RP_U         16-byte loads a lane a round, 1..16 (default 8)
//   RP_MINB      CTAs an SM the launch bounds ask room for (default 1): the
//                grid is that many CTAs of 256 threads an SM
#ifndef RP_MODE
#define RP_MODE 0
#endif
#ifndef RP_U
#define RP_U 8
#endif
#ifndef RP_MINB
#define RP_MINB 1
#endif

// ld_stream16_if: the skinny GEMMs' weight load
#include "ld_stream.cuh"

#ifndef DSCC_READ_PATTERN_CUH // what the instances of a module share (bench_hbm puts them all in one)
#define DSCC_READ_PATTERN_CUH
struct Args { // bench_hbm's layout of it
    const uint4 *p;  // n16 x 16 bytes, 16-aligned
    long long n16;
    long long row16; // pieces a row (n16 a multiple of it)
    unsigned *out;   // a word a warp of the grid
};

// A lane's pieces in a pattern of whole rows (or stretches): rows first, first
// + step, ... (count of them), pieces k0, k0 + kstep, ... < len of each; none at
// or past lim. next() gives them one at a time by increments (no division in
// the stream).
struct RpRows {
    long long base, bstep, left, k, k0, kstep, len, lim;
    __device__ bool done() const { return left <= 0; }
    __device__ __forceinline__ bool next(long long &i) {
        if (k >= len) k = k0, base += bstep, left--; // the row's end
        if (left <= 0 || k >= len) return false;     // (k >= len here: the lane has no piece in a row)
        i = base + k;
        k += kstep;
        return i < lim;
    }
};
__device__ RpRows rp_rows(long long first, long long step, long long count, long long k0, long long kstep, long long len, long long lim) {
    RpRows c = {first * len, step * len, count > 0 ? count : 0, k0, k0, kstep, len, lim};
    return c;
}

// gemm_skinny2.cuh's order: in each group, the warp's J = ceil(K blocks / 8) steps, step q its K block kb = warp + 8q
// as 4 loads (r, h); steps from q = rot on, wrapping (rot 0: skinny2's own order). As in skinny2 every warp takes J
// steps, a K block past the row's end predicated off.
struct RpSkinny {
    long long grp, gstep, ngrp, rows, row16;
    int J, rot, s, q, p, warp, lane;
    __device__ bool done() const { return grp >= ngrp; }
    __device__ __forceinline__ bool next(long long &i) {
        if (p == 4) p = 0, s++, q = q + 1 == J ? 0 : q + 1;
        if (s == J) s = 0, q = rot, grp += gstep;
        if (grp >= ngrp) return false;
        const long long row = grp * 16 + (p >> 1) * 8 + (lane >> 2), piece = (warp + 8LL * q) * 8 + (p & 1) * 4 + (lane & 3);
        p++;
        i = row * row16 + piece;
        return row < rows && piece < row16;
    }
};
__device__ RpSkinny rp_skinny(long long rows, long long row16, bool rotate) {
    const int J = (int)(((row16 + 7) / 8 + 7) / 8), rot = rotate ? (int)(blockIdx.x % 8 % J) : 0;
    RpSkinny c = {blockIdx.x, gridDim.x, (rows + 15) / 16, rows, row16, J, rot, 0, rot, 0, (int)(threadIdx.x >> 5), (int)(threadIdx.x & 31)};
    return c;
}

// One round: RP_U loads from the cursor's next pieces (zeros where none); whether any was a piece.
template <int U, class C> __device__ __forceinline__ bool rp_round(const uint4 *p, C &c, uint4 (&v)[U]) {
    bool any = false;
#pragma unroll
    for (int u = 0; u < U; u++) {
        long long i = 0;
        const bool ok = c.next(i);
        v[u] = ld_stream16_if(p + (ok ? i : 0), ok);
        any |= ok;
    }
    return any || !c.done();
}

template <int U> __device__ __forceinline__ unsigned rp_fold(const uint4 (&v)[U]) {
    unsigned acc = 0;
#pragma unroll
    for (int u = 0; u < U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    return acc;
}

// The cursor's stream with two rounds in flight: round r + 1 is issued before round r is folded.
template <int U, class C> __device__ __forceinline__ unsigned rp_stream(const uint4 *p, C c) {
    uint4 cur[U], nxt[U];
    unsigned acc = 0;
    bool have = rp_round<U>(p, c, cur);
    while (have) {
        have = rp_round<U>(p, c, nxt);
        acc ^= rp_fold<U>(cur);
#pragma unroll
        for (int u = 0; u < U; u++) cur[u] = nxt[u];
    }
    return acc;
}

// stream_read.cuh's loop (mode 0), the baseline: a round of U loads, folded before the next is issued.
template <int U> __device__ __forceinline__ unsigned rp_grid_stride(const Args &a) {
    const long long stride = (long long)gridDim.x * 256;
    unsigned acc = 0;
    for (long long i = blockIdx.x * 256LL + threadIdx.x; i < a.n16; i += U * stride) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++) v[u] = ld_stream16_if(a.p + i + u * stride, i + u * stride < a.n16);
        acc ^= rp_fold<U>(v);
    }
    return acc;
}

// The lane's XOR of every word it read in pattern MODE.
template <int MODE, int U> __device__ __forceinline__ unsigned rp_read(const Args &a) {
    const long long n16 = a.n16, R = a.row16, rows = n16 / R, G = gridDim.x, W = G * 8;
    const long long warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gw = blockIdx.x * 8LL + warp;
    if (MODE == 0) return rp_grid_stride<U>(a);
    if (MODE == 1) return rp_stream<U>(a.p, rp_rows(gw, W, (rows - gw + W - 1) / W, lane, 32, R, n16));
    if (MODE == 2) return rp_stream<U>(a.p, rp_rows(blockIdx.x, G, (rows - blockIdx.x + G - 1) / G, threadIdx.x, 256, R, n16));
    if (MODE == 3) { // stretches of whole 512 bytes; the last ones short or empty
        const long long s = ((n16 + W - 1) / W + 31) & ~31LL;
        return rp_stream<U>(a.p, rp_rows(gw, 1, gw * s < n16, lane, 32, s, n16));
    }
    if (MODE == 4 || MODE == 8) return rp_stream<U>(a.p, rp_skinny(rows, R, MODE == 8));
    if (MODE == 5) {
        const long long run = (rows + W - 1) / W;
        return rp_stream<U>(a.p, rp_rows(gw * run, 1, rows - gw * run < run ? rows - gw * run : run, lane, 32, R, n16));
    }
    if (MODE == 6) {
        const long long s = ((n16 + G - 1) / G + 255) & ~255LL;
        return rp_stream<U>(a.p, rp_rows(blockIdx.x, 1, blockIdx.x * s < n16, threadIdx.x, 256, s, n16));
    }
    // 7: the whole buffer as one row, thread t of the grid its pieces t, t + T, ...
    return rp_stream<U>(a.p, rp_rows(0, 1, 1, blockIdx.x * 256LL + threadIdx.x, W * 32, n16, n16));
}
#endif // DSCC_READ_PATTERN_CUH

extern "C" __global__ void __launch_bounds__(256, RP_MINB) DSCC_ENTRY(Args a) {
    unsigned acc = rp_read<RP_MODE, RP_U>(a);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc ^= __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) a.out[blockIdx.x * 8 + (threadIdx.x >> 5)] = acc;
}
#undef RP_MODE
#undef RP_U
#undef RP_MINB
#undef DSCC_ENTRY
