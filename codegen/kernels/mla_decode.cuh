// mla_decode.cuh — DeepSeek-V3's absorbed MLA attention for decode steps on
// Hopper's wgmma: q [B, S, HQ, 576] against the shared latent cache
// [B, T, 576] (one key head), v = the first 512 columns of the same cache
// rows, out [B, S, HQ, 512]. In the spirit of FlashMLA (its design, not its
// code): the S * HQ query rows of a batch row (heads and positions
// flattened) form 64-row tiles; a block of two warpgroups takes one tile and
// a balanced share (a split) of its keys, walked 64 at a time through a
// two-stage ring of cp.async loads in the 128-byte swizzle, the next block
// of keys landing while this one is computed (warpgroup 1 issues them):
//   warpgroup 0: S = Q K^T by 36 wgmma m64n64k16 (Q and K from shared
//     memory), the mask, the online softmax (base 2, the scale folded in),
//     P rounded to bf16 into shared memory with each row's correction;
//   both: O[:, 256 w .. 256 w + 255] += P V by 4 wgmma m64n256k16, V read
//     from the K stage itself (MN-major, transposed by the descriptor), so
//     the latent rows are loaded once per block and never copied.
// Two block barriers per block of keys: keys landed / P ready. With one
// split the block writes out = O / l; with several it writes O / l and the
// log2-sum-exp of its keys to the scratch for mla_decode_combine.cuh, and
// block 0 records the split count in the scratch's first word. The split
// count is the launch's: gridDim.x = B * ceil(S * HQ / 64) * splits, blocks
// ordered (batch row, split, row tile) so a batch row's tiles read the
// same keys at the same time (the second read from L2).
//
// Parameters (#define; expressions may use the kernel's Args `a`):
//   DSCC_ENTRY           the entry point's name
//   MLA_B, MLA_S, MLA_T  batch rows, query positions, keys (cached + new)
//   MLA_HQ               query heads
//   MLA_KT               rows of k per batch row in memory (a KV cache's capacity)
//   MLA_SQ, MLA_SQ1, MLA_QD0  q's slot, the slot of its last 576 - QD0 columns and
//                        QD0 (q stored as two tensors beside each other; one: SQ1 = SQ, QD0 = 576)
//   MLA_SK               the cache's slot (bf16, rows of 576)
//   MLA_SO, MLA_OUT_BF16 the output's slot; 1: bf16, 0: f32
//   MLA_SP               the scratch slot of the split parts (f32)
//   MLA_CAUSAL           1: query position s sees keys 0 .. s + T - S
//   MLA_SCALE            the softmax scale (a float literal)
//   MLA_IN_MODULE        defined when the file is part of a generated module (its prelude has Args)
#ifndef MLA_B
#define MLA_B (a.sym[0])
#endif
#ifndef MLA_S
#define MLA_S 1LL
#endif
#ifndef MLA_T
#define MLA_T (a.len + 1)
#endif
#ifndef MLA_HQ
#define MLA_HQ 128LL
#endif
#ifndef MLA_KT
#define MLA_KT (a.cap)
#endif
#ifndef MLA_SQ
#define MLA_SQ 0
#endif
#ifndef MLA_SQ1
#define MLA_SQ1 MLA_SQ
#endif
#ifndef MLA_QD0
#define MLA_QD0 576
#endif
#ifndef MLA_SK
#define MLA_SK 1
#endif
#ifndef MLA_SO
#define MLA_SO 2
#endif
#ifndef MLA_OUT_BF16
#define MLA_OUT_BF16 1
#endif
#ifndef MLA_SP
#define MLA_SP 3
#endif
#ifndef MLA_CAUSAL
#define MLA_CAUSAL 1
#endif
#ifndef MLA_SCALE
#define MLA_SCALE 0.1352337788f
#endif
#ifndef MLA_IN_MODULE
// compiled alone (test_codegen): the generated prelude's argument block
typedef unsigned long long u64;
struct Args { u64 t[64]; long long sym[8]; long long cap, len; u64 err; long long tag; };
#endif

#ifndef MLA_DECODE_HELPERS
#define MLA_DECODE_HELPERS
#define MLA_TILE 73728 // bytes of 64 rows x 576 bf16: 9 chunks of 64 columns, 8 KB each
// Byte `cb` of row r of a 64-row tile in the 128-byte swizzle: chunk cb / 128
// of 64 rows x 128 bytes, the 16-byte unit u of row r at (u ^ r % 8) * 16.
__device__ __forceinline__ unsigned mla_swz(int r, int cb) {
    return (unsigned)((cb >> 7) * 8192 + r * 128 + ((((cb >> 4) & 7) ^ (r & 7)) << 4) + (cb & 15));
}
// Two floats as bf16, nearest even, lower half first.
__device__ __forceinline__ unsigned mla_bf16x2(float lo, float hi) {
    unsigned u[2] = {__float_as_uint(lo), __float_as_uint(hi)}, r[2];
    for (int k = 0; k < 2; k++)
        r[k] = (u[k] & 0x7fffffffu) > 0x7f800000u ? (u[k] >> 16) | 0x40u : (u[k] + 0x7fffu + ((u[k] >> 16) & 1u)) >> 16;
    return (r[0] & 0xffffu) | r[1] << 16;
}
__device__ __forceinline__ void mla_cp16(void *dst, const void *src, bool v) { // 16 bytes, zeros when !v
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(v ? 16 : 0));
}
__device__ __forceinline__ void mla_cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void mla_cp_wait0() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
// cp.async's and st.shared's writes made visible to the tensor cores' (async) proxy
__device__ __forceinline__ void mla_fence_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void mla_wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void mla_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void mla_wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// after the wait: uses of the accumulators stay after it
__device__ __forceinline__ void mla_hold32(float *d) {
    asm volatile("" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                 "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                 "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                 "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) ::"memory");
}
__device__ __forceinline__ void mla_hold128(float *d) {
    asm volatile("" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                 "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                 "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                 "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                 "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                 "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                 "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                 "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                 "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                 "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                 "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                 "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                 "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                 "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                 "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                 "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127]) ::"memory");
}
// A shared-memory matrix descriptor in the 128-byte swizzle: start >> 4, the
// leading and stride byte offsets >> 4, swizzle mode 1 (bits 62-63).
__device__ __forceinline__ unsigned long long mla_desc(const void *p, unsigned lbo, unsigned sbo) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    return (unsigned long long)((s & 0x3ffffu) >> 4) | (unsigned long long)((lbo & 0x3ffffu) >> 4) << 16 |
           (unsigned long long)((sbo & 0x3ffffu) >> 4) << 32 | 1ull << 62;
}
// d[64 x 64] (+)= a[64 rows][16] . b[64 rows][16]^T, both K-major (32 bytes of
// each row at pa / pb, rows 128 bytes apart, 8-row groups 1024 apart). d: 32
// f32 a thread, register i at row 16 (warp % 4) + lane / 4 + 8 ((i >> 1) & 1),
// col 8 (i >> 2) + 2 (lane % 4) + (i & 1).
__device__ __forceinline__ void mla_wgmma_s(float *d, const void *pa, const void *pb, int acc) {
    const unsigned long long da = mla_desc(pa, 16, 1024), db = mla_desc(pb, 16, 1024);
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db), "r"(acc));
}
// d[64 x 256] (+)= a[64 rows][16] . b[16][256]: a K-major as above, b
// MN-major (transposed): row k of b (16 keys) is 128 bytes of 64 columns, 8
// rows a swizzle atom, atoms sbo apart along K and lbo apart along N. d: 128
// f32 a thread, as above with col 8 (i >> 2) + 2 (lane % 4) + (i & 1).
__device__ __forceinline__ void mla_wgmma_pv(float *d, const void *pa, const void *pb, unsigned lbo, unsigned sbo, int acc) {
    const unsigned long long da = mla_desc(pa, 16, 1024), db = mla_desc(pb, lbo, sbo);
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
                 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
                 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95,"
                 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111,"
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                   "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                   "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                   "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                   "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                   "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                   "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                   "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                   "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db), "r"(acc));
}
#endif

extern "C" __global__ void __launch_bounds__(256, 1) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(16) unsigned char mla_smem[];
    __shared__ float s_corr[64], s_m[64], s_l[64];
    // the dynamic memory from its first 1024-aligned byte (the swizzle's period):
    // q's tile, two stages of 64 keys, P [64][64] bf16
    unsigned char *const sm = mla_smem + ((1024u - (unsigned)(__cvta_generic_to_shared(mla_smem) & 1023u)) & 1023u);
    unsigned char *const Qs = sm, *const Ks = sm + MLA_TILE, *const Ps = sm + 3 * MLA_TILE;
    const long long B = MLA_B, S = MLA_S, T = MLA_T, HQ = MLA_HQ, KT = MLA_KT;
    const long long rows = S * HQ, nrb = (rows + 63) / 64, nsp = (long long)gridDim.x / (B * nrb);
    const long long rt = blockIdx.x % nrb, sp = blockIdx.x / nrb % nsp, bb = blockIdx.x / (nrb * nsp), r0 = rt * 64;
    const int tid = threadIdx.x, wg = tid >> 7, l = tid & 31, q4 = l & 3, ra = 16 * ((tid >> 5) & 3) + (l >> 2);
    const float NEG = __int_as_float(0xff800000), SL2 = MLA_SCALE * 1.44269504088896341f;
    // the last key each of this thread's rows (ra, ra + 8) sees, and any row of the tile
    long long last[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const long long r = r0 + ra + 8 * h < rows ? r0 + ra + 8 * h : rows - 1;
        last[h] = MLA_CAUSAL ? r / HQ + T - S : T - 1;
        if (last[h] > T - 1) last[h] = T - 1;
    }
    long long kend = MLA_CAUSAL ? (r0 + 63 < rows ? r0 + 63 : rows - 1) / HQ + T - S : T - 1;
    if (kend > T - 1) kend = T - 1;
    // this split's blocks of 64 keys: [jb0, jb1) of the tile's
    const long long nkb = (T + 63) / 64, per = (nkb + nsp - 1) / nsp, jb0 = sp * per;
    const long long jb1 = jb0 + per < kend / 64 + 1 ? jb0 + per : kend / 64 + 1;
    const unsigned short *Q0 = (const unsigned short *)a.t[MLA_SQ], *Q1 = (const unsigned short *)a.t[MLA_SQ1];
    const unsigned short *Kg = (const unsigned short *)a.t[MLA_SK];
    for (int c = tid; c < 64 * 72; c += 256) { // q: 72 16-byte units a row
        const int i = c / 72, kc = c % 72;
        const bool ok = r0 + i < rows;
        const long long qr = bb * rows + r0 + i;
        const unsigned short *src = kc * 8 < MLA_QD0 ? Q0 + (qr * MLA_QD0 + kc * 8) : Q1 + (qr * (576 - MLA_QD0) + kc * 8 - MLA_QD0);
        mla_cp16(Qs + mla_swz(i, kc * 16), ok ? src : Q0, ok);
    }
    auto load = [&](int st, long long jb, int t0, int nt) { // keys jb * 64 .. + 63 into stage st by threads t0 .. t0 + nt - 1, zeros past T
        unsigned char *Kd = Ks + st * MLA_TILE;
        for (int c = tid - t0; c < 64 * 72; c += nt) {
            const int jj = c / 72, kc = c % 72;
            const long long j = jb * 64 + jj;
            const bool ok = j < T;
            mla_cp16(Kd + mla_swz(jj, kc * 16), ok ? Kg + ((bb * KT + j) * 576 + kc * 8) : Kg, ok);
        }
    };
    if (jb0 < jb1) load(0, jb0, 0, 256);
    mla_cp_commit();
    float o[128]; // this warpgroup's half of the tile's output: columns 256 wg ..
#pragma unroll
    for (int i = 0; i < 128; i++) o[i] = 0.0f;
    float m[2] = {NEG, NEG}, ls[2] = {0.0f, 0.0f}; // warpgroup 0: rows' running max (base 2) and this thread's share of the sum
    for (long long jb = jb0; jb < jb1; jb++) {
        const int st = (int)((jb - jb0) & 1);
        mla_cp_wait0();
        mla_fence_async();
        __syncthreads(); // this block's keys landed; everyone is done with the other stage and with P
        if (wg == 1 && jb + 1 < jb1) load(st ^ 1, jb + 1, 128, 128); // warpgroup 1 loads the next keys while 0 computes S
        mla_cp_commit();
        const unsigned char *Kc = Ks + st * MLA_TILE;
        if (wg == 0) {
            float s[32];
#pragma unroll
            for (int i = 0; i < 32; i++) s[i] = 0.0f;
            mla_wg_fence();
#pragma unroll
            for (int c = 0; c < 9; c++)
#pragma unroll
                for (int kk = 0; kk < 4; kk++) mla_wgmma_s(s, Qs + c * 8192 + kk * 32, Kc + c * 8192 + kk * 32, c | kk);
            mla_wg_commit();
            mla_wg_wait0();
            mla_hold32(s);
            float mx[2] = {NEG, NEG};
#pragma unroll
            for (int i = 0; i < 32; i++) {
                const long long j = jb * 64 + 8 * (i >> 2) + 2 * q4 + (i & 1);
                s[i] = j <= last[(i >> 1) & 1] ? s[i] * SL2 : NEG;
                mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], s[i]);
            }
            float corr[2];
#pragma unroll
            for (int h = 0; h < 2; h++) { // the row's max over its quad of lanes
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
                const float mn = fmaxf(m[h], mx[h]);
                corr[h] = mn == NEG ? 1.0f : exp2f(m[h] - mn);
                m[h] = mn;
                ls[h] *= corr[h];
            }
#pragma unroll
            for (int i = 0; i < 32; i += 2) {
                const int h = (i >> 1) & 1;
                const float p0 = s[i] == NEG ? 0.0f : exp2f(s[i] - m[h]), p1 = s[i + 1] == NEG ? 0.0f : exp2f(s[i + 1] - m[h]);
                ls[h] += p0 + p1;
                *(unsigned *)(Ps + mla_swz(ra + 8 * h, 2 * (8 * (i >> 2) + 2 * q4))) = mla_bf16x2(p0, p1);
            }
            if (q4 == 0) s_corr[ra] = corr[0], s_corr[ra + 8] = corr[1];
#pragma unroll
            for (int i = 0; i < 128; i++) o[i] *= corr[(i >> 1) & 1];
            mla_fence_async();
        }
        __syncthreads(); // P and the corrections are ready
        if (wg == 1) {
            const float c0 = s_corr[ra], c1 = s_corr[ra + 8];
#pragma unroll
            for (int i = 0; i < 128; i++) o[i] *= (i >> 1) & 1 ? c1 : c0;
        }
        mla_wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) mla_wgmma_pv(o, Ps + kk * 32, Kc + 4 * wg * 8192 + kk * 2048, 8192, 1024, 1);
        mla_wg_commit();
        mla_wg_wait0();
        mla_hold128(o);
    }
    mla_cp_wait0();
    if (wg == 0) { // the rows' sums over their quads, for both warpgroups
#pragma unroll
        for (int h = 0; h < 2; h++) {
            ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 1);
            ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 2);
        }
        if (q4 == 0) s_m[ra] = m[0], s_l[ra] = ls[0], s_m[ra + 8] = m[1], s_l[ra + 8] = ls[1];
    }
    __syncthreads();
    float *part = (float *)a.t[MLA_SP];
    if (nsp > 1 && blockIdx.x == 0 && tid == 0) ((int *)part)[0] = (int)nsp;
    const long long n = B * rows; // query rows of the step
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = ra + 8 * h;
        const long long ri = bb * rows + r0 + r;
        if (r0 + r >= rows) continue;
        const float lr = s_l[r], inv = lr > 0.0f ? 1.0f / lr : 0.0f;
        if (nsp == 1) {
#pragma unroll
            for (int i = 2 * h; i < 128; i += 4) {
                const long long col = 256 * wg + 8 * (i >> 2) + 2 * q4;
                if (MLA_OUT_BF16) *(unsigned *)((unsigned short *)a.t[MLA_SO] + ri * 512 + col) = mla_bf16x2(o[i] * inv, o[i + 1] * inv);
                else *(float2 *)((float *)a.t[MLA_SO] + ri * 512 + col) = make_float2(o[i] * inv, o[i + 1] * inv);
            }
        } else { // this split's normalised output and the log2 of its sum, for the combine
            float *po = part + 64 + (sp * n + ri) * 512;
#pragma unroll
            for (int i = 2 * h; i < 128; i += 4) *(float2 *)(po + 256 * wg + 8 * (i >> 2) + 2 * q4) = make_float2(o[i] * inv, o[i + 1] * inv);
            if (wg == 0 && q4 == 0) part[64 + nsp * n * 512 + sp * n + ri] = lr > 0.0f ? s_m[r] + log2f(lr) : NEG;
        }
    }
}
#undef DSCC_ENTRY
#undef MLA_B
#undef MLA_S
#undef MLA_T
#undef MLA_HQ
#undef MLA_KT
#undef MLA_SQ
#undef MLA_SQ1
#undef MLA_QD0
#undef MLA_SK
#undef MLA_SO
#undef MLA_OUT_BF16
#undef MLA_SP
#undef MLA_CAUSAL
#undef MLA_SCALE
