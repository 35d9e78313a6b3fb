// gemm_tile.cuh — the tensor-core tile of a generated GEMM phase: a block's
// 64 rows of x (srow: their rows, -1 none) times 128 outputs (output tile ot
// of weight matrix e), K blocks [GTL_KB0, GTL_KB1) of 128 bytes, x and w in
// shared memory by cp.async. Not a kernel: the body of one. The phase
// function around it (codegen/gen_gemm.c, gen_expert.c, gen_einsum.c) has
// declared `sm` (its dynamic shared memory), `srow[64]`, `yrow[64]` (the rows
// y's tile stores, -1 none), `ot` and `e`; cg_kernel_fragment writes this
// text in there below its parameters' #defines and #undefs them after.
// gemm_tile_helpers.cuh (tile_off; the wgmma helpers) and mma.cuh are in
// the module before it.
//
// * GTL_WGMMA 1: Hopper's wgmma. The block's two warpgroups each compute 64
//   rows x 64 of the 128 outputs, four wgmma a K block; three cp.async
//   stages of 24 KB (x's 64 rows, then w's 128, 128-byte swizzled rows).
// * GTL_WGMMA 0: mma.sync, eight warps of 32 x 32; two stages of 27 KB
//   (rows of 144 bytes); a warp's 16-row slice with no row skips its mma.
// * FP8 (GTL_BF16 0): each K block's products land in `part` and are
//   promoted into acc with both block scales (DeepSeek's promotion every
//   128 of K); BF16: straight into acc.
// * GTL_WT 1: w[e] is [K][O] (the einsum's second operand): 8 outputs of one
//   k a 16-byte load, stored transposed by 2-byte stores.
//
// Parameters (#define):
//   GTL_WGMMA          1 the wgmma tile, 0 the mma.sync one
//   GTL_BF16           1: BF16 operands (K counts bf16 values twice), 0: E4M3 codes with block scales
//   GTL_WT             1: w[e] stored [K][O], 0: [O][K]
//   GTL_K              bytes of a row of x (a constant, e.g. 7168LL); not a multiple of 16: byte copies
//   GTL_O              the output columns (an expression)
//   GTL_X, GTL_W       x's and w's argument slots (a.t[...])
//   GTL_WS(i)          w's f32 block scale i (FP8), [e][ceil(O/128)][ceil(K/128)]
//   GTL_XS(r, kb)      x's f32 scale of row r, K block kb (FP8)
//   GTL_KB0, GTL_KB1   the block's K blocks (expressions: a K split's part)
//   GTL_STORE(r, o, v) stores output (row r, column o) = v
#if !defined(GTL_WGMMA) || !defined(GTL_BF16) || !defined(GTL_WT) || !defined(GTL_K)
#error "gemm_tile.cuh takes GTL_WGMMA, GTL_BF16, GTL_WT and GTL_K (codegen/gen_gemm.c's cg_mma_tile_part defines them)"
#endif
    const long long K = GTL_K, O = GTL_O, nkb = (K + 127) / 128, nob = (O + 127) / 128;  // K in bytes
    const unsigned char *X = (const unsigned char *)a.t[GTL_X];
    const unsigned char *Wt = (const unsigned char *)a.t[GTL_W] + (e * O + ot * 128) * K;
    const long long wsb = (e * nob + ot) * nkb;
    const unsigned short *Wn = (const unsigned short *)a.t[GTL_W] + e * (K / 2) * O + ot * 128;  // w[e] as [K][O] (WT)
    const bool WT = GTL_WT;
    const long long kb0 = GTL_KB0, kb1 = GTL_KB1;  // the pipeline steps of this block
    const int orows = O - ot * 128 < 128 ? (int)(O - ot * 128) : 128;
#if GTL_WGMMA
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, q = threadIdx.x & 3;
    const int wm = (warp & 3) * 16, wn = (warp >> 2) * 64;  // rows wm + g (+8) of the 64; the warpgroup's 64 of the 128 outputs
    unsigned char *const st = sm + ((1024u - ((unsigned)__cvta_generic_to_shared(sm) & 1023u)) & 1023u);  // the swizzle's period
    float acc[32], part[32];
#pragma unroll
    for (int i = 0; i < 32; i++) acc[i] = part[i] = 0.0f;
#define GTL_BASE st
#define GTL_STAGE 24576
#define GTL_BOFF 8192
#else
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, q = threadIdx.x & 3;
    const int wm = (warp >> 2) * 32, wn = (warp & 3) * 32;  // this warp's 32x32 of the 64x128 tile
    float acc[2][4][4], part[2][4][4];
    bool live[2];  // this warp's two 16-row slices hold a row (decode-sized M, an expert's few rows: most do not)
#pragma unroll
    for (int i = 0; i < 2; i++) {
        live[i] = false;
        for (int t = 0; t < 16; t++) live[i] |= srow[wm + i * 16 + t] >= 0;
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[i][j][c] = part[i][j][c] = 0.0f;
#define GTL_BASE sm
#define GTL_STAGE 27648
#define GTL_BOFF 9216
#endif
    // load(s, kb): stage s of K block kb, x's 64 rows then w's 128, row r's byte kc at tile_off(r, kc)
    auto load = [&](int s, long long kb) {
        unsigned char *As = GTL_BASE + s * GTL_STAGE, *Bs = As + GTL_BOFF;
        for (int c = threadIdx.x; c < (WT ? 512 : 1536); c += 256) {
            const bool isa = c < 512;
            const int j = (isa ? c : c - 512) >> 3, kc = (c & 7) * 16;
            const long long k = kb * 128 + kc;
            const int r = isa ? srow[j] : j < orows ? j : -1;
            const unsigned char *src = isa ? X + (long long)r * K : Wt + (long long)j * K;
            unsigned char *dst = (isa ? As : Bs) + tile_off(j, kc);
#if GTL_K % 16 == 0 // every 16-byte chunk of a row is wholly inside or outside K
            const bool v = r >= 0 && k < K;
            cp16(dst, v ? src + k : X, v);
#else
            for (int t = 0; t < 16; t++) dst[t] = r >= 0 && k + t < K ? src[k + t] : 0;  // K is no multiple of 16
#endif
        }
#if GTL_WT // w[e] is [K][O]: 8 outputs of one k per 16-byte load, stored transposed (the tile wants [O][K])
        for (int c = threadIdx.x; c < 1024; c += 256) {
            const int kl = c >> 4, n8 = (c & 15) * 8;
            const long long k = kb * 64 + kl;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (k < K / 2 && n8 < orows) v = *(const uint4 *)(Wn + k * O + n8);
            const unsigned short *h = (const unsigned short *)&v;
#pragma unroll
            for (int t = 0; t < 8; t++) *(unsigned short *)(Bs + tile_off(n8 + t, kl * 2)) = h[t];
        }
#endif
    };
#undef GTL_BASE
#undef GTL_STAGE
#undef GTL_BOFF
#if GTL_WGMMA
#pragma unroll
    for (int s = 0; s < 2; s++) {
        if (kb0 + s < kb1) load(s, kb0 + s);
        cp_commit();
    }
    for (long long kb = kb0; kb < kb1; kb++) {
        if (kb + 2 < kb1) load((int)((kb + 2 - kb0) % 3), kb + 2);
        cp_commit();
        cp_wait2();
        fence_async_smem();
        __syncthreads();
#if !GTL_BF16
        const float wsc = GTL_WS(wsb + kb);
        float xsc[2];  // the thread's two rows' activation scales of this K block
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = srow[wm + g + 8 * h];
            xsc[h] = r >= 0 ? GTL_XS(r, kb) : 0.0f;
        }
#endif
        const unsigned char *As = st + (int)((kb - kb0) % 3) * 24576, *Bs = As + 8192 + wn * 128;
#if GTL_BF16
        wg_hold(acc);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_bf16(acc, As + kk * 32, Bs + kk * 32, 1);
        wg_commit();
        wg_wait0();
        wg_hold(acc);
#else
        wg_hold(part);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_e4m3(part, As + kk * 32, Bs + kk * 32, kk);
        wg_commit();
        wg_wait0();
        wg_hold(part);
#pragma unroll
        for (int i = 0; i < 32; i++) acc[i] += part[i] * (xsc[(i >> 1) & 1] * wsc);  // promotion to f32 with both scales
#endif
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 32; i++) {
        const int r = yrow[wm + g + 8 * ((i >> 1) & 1)];
        const long long o = ot * 128 + wn + (i >> 2) * 8 + q * 2 + (i & 1);
        if (r >= 0 && o < O) GTL_STORE(r, o, acc[i]);
    }
#else // mma.sync
    if (kb0 < kb1) load(0, kb0);
    cp_commit();
    for (long long kb = kb0; kb < kb1; kb++) {
        if (kb + 1 < kb1) load((int)((kb + 1 - kb0) & 1), kb + 1);
        cp_commit();
        cp_wait1();
        __syncthreads();
#if !GTL_BF16 // the K block's scales, read before its products
        const float wsc = GTL_WS(wsb + kb);
        float xsc[2][2];  // the rows' activation scales of this K block
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int r = srow[wm + i * 16 + g + 8 * h];
                xsc[i][h] = r >= 0 ? GTL_XS(r, kb) : 0.0f;
            }
#endif
        const unsigned char *As = sm + ((kb - kb0) & 1) * 27648, *Bs = As + 9216;
#pragma unroll
        for (int kk = 0; kk < 128; kk += 32) {
            unsigned af[2][4], bfr[4][2];
            if (!live[0] && !live[1]) continue;  // warp-uniform: the whole warp skips
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const unsigned char *p = As + (wm + i * 16 + g) * 144 + kk + q * 4;
                af[i][0] = *(const unsigned *)p;
                af[i][1] = *(const unsigned *)(p + 8 * 144);
                af[i][2] = *(const unsigned *)(p + 16);
                af[i][3] = *(const unsigned *)(p + 8 * 144 + 16);
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const unsigned char *p = Bs + (wn + j * 8 + g) * 144 + kk + q * 4;
                bfr[j][0] = *(const unsigned *)p;
                bfr[j][1] = *(const unsigned *)(p + 16);
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
                if (live[i])
#pragma unroll
                for (int j = 0; j < 4; j++)
#if GTL_BF16
                    mma_bf16(acc[i][j], af[i], bfr[j]);
#else
                    mma_e4m3(part[i][j], af[i], bfr[j]);
#endif
        }
#if !GTL_BF16
#pragma unroll
        for (int i = 0; i < 2; i++)  // promotion to f32 at the end of the K block, with both scales
            if (live[i])
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    acc[i][j][c] += part[i][j][c] * (xsc[i][c >> 1] * wsc);
                    part[i][j][c] = 0.0f;
                }
#endif
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int r = yrow[wm + i * 16 + g + 8 * (c >> 1)];
                const long long o = ot * 128 + wn + j * 8 + q * 2 + (c & 1);
                if (r >= 0 && o < O) GTL_STORE(r, o, acc[i][j][c]);
            }
#endif
