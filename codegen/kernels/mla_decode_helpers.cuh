// mla_decode_helpers.cuh — the device helpers, constants and named barriers
// of mla_decode.cuh (its header says what each form does): the 128-byte
// swizzle, the wgmma shapes of S and P V with their descriptors, the
// seesaw's and the ping-pong's steps (S, the online softmax, P's stores,
// P V), the loaders of q and of a block of keys (cp.async or TMA, each
// chunk on its mbarrier), and what the kernel's phases share (MlaBlk, the
// block's state; MlaSrc, a loading warpgroup's sources; MLA_FN, their
// per-instance names). Split from the kernel so each file stays under
// the size guideline; only mla_decode.cuh includes it, after hopper.cuh
// (whose hp_* helpers these use) and after its parameters' defaults: the
// macros here (MLA_THREADS, MLA_REGS_*, MLA_FUSED ...) read MLA_V3,
// MLA_LEAN, MLA_QREG, MLA_PP, MLA_FUSE where the kernel uses them. The
// guard keeps one copy per module (the combine file tests it too), so the
// helpers' own #if on MLA_LEAN sees the module's first instance's value,
// as it did inside mla_decode.cuh. The emulated
// device (tests/emu/emu_kernel.h) has the inline-PTX helpers here under
// the same names, listed in emu_nvrtc.c's PTX_HELPERS.
#ifndef MLA_DECODE_HELPERS
#define MLA_DECODE_HELPERS
#define MLA_TILE 73728 // bytes of 64 rows x 576 bf16: 9 chunks of 64 columns, 8 KB each
#define MLA_THREADS (MLA_V3 >= 3 ? 256 : 384) // consumer warpgroups 0 and 1, the producer 2 (MLA_V3 3, 4: none, the consumers load)
#define MLA_SEESAW (MLA_V3 == 2 || MLA_V3 == 4) // the seesaw schedule (4: without the producer)
#define MLA_SUMS2 (MLA_SEESAW || MLA_PP) // each consumer warpgroup keeps a share of the rows' sums (added at the end)
// 128 x 56 + 256 x 224 = 128 x 72 + 256 x 216 = 384 x 168 (ptxas's count at launch): MLA_LEAN's producer
// spills 16 bytes at 56, and the consumers need no more than 208 (ptxas -v, CUDA 13.0, every variant)
// MLA_QREG 2: 56 / 224 (ptxas, CUDA 13.0: no spills with MLA_TMA, the cp.async producer spills 16 bytes; 72 / 216
// spill 32 bytes; the counts must be the same for both consumers: ptxas holds each to the lower, and 3 or 4 chunks
// spill at any split of the 504)
#define MLA_REGS_PRODUCER (MLA_QREG >= 2 ? 56 : MLA_LEAN >= 1 ? 72 : 56)
#define MLA_REGS_CONSUMER (MLA_QREG >= 2 ? 224 : MLA_LEAN >= 1 ? 216 : 224)
// named barriers (0 is __syncthreads'): stage s full / empty (384 threads), P of stage s ready (256), the end (256)
#define MLA_BAR_FULL 1
#define MLA_BAR_EMPTY 3
#define MLA_BAR_P 5
#define MLA_BAR_END 7
#define MLA_BAR_S 8 // warpgroup 0 (128): every warp's S taken, the stage's rope columns free for P
// the seesaw's (MLA_V3 2), over the ids the other rings use: the release groups of the
// stages (the producer waits there before refilling them), the exchange of the rows'
// max and factors, warpgroup 1's own S barrier, and each warpgroup's P ready for the other
#define MLA_BAR_E0L 1 // stage 0's chunks 0-3 (warpgroup 0 done: its S and P V)
#define MLA_BAR_E0R 2 // stage 0's chunks 4-8 (warpgroup 1's P V done)
#define MLA_BAR_E1R 3 // stage 1's chunks 4-7 (warpgroup 1 done: its S and P V)
#define MLA_BAR_E1L 4 // stage 1's chunks 0-3 and 8 (both warpgroups' P V done: 384 threads)
#define MLA_BAR_SC0 5 // warpgroup 0's max and factor of block 0 of the pair
#define MLA_BAR_SC1 6 // warpgroup 1's of block 1
#define MLA_BAR_S1 9
#define MLA_BAR_P0R 10
#define MLA_BAR_P1R 11
// MLA_V3 4: each consumer warpgroup's own (128 threads): all its warps' wgmma done reading a chunk before
// any of its threads refills it (a warp's wgmma.wait_group covers only that warp's part, which reads all of B)
#define MLA_BAR_W0 12
#define MLA_BAR_W1 13
#define MLA_BAR_PROD 14 // MLA_TMA: the producer's 128 threads' cp.async landed (before its first thread arrives for them)
// MLA_PP (besides MLA_BAR_S, MLA_BAR_S1, MLA_BAR_P0R, MLA_BAR_P1R and the producer's MLA_BAR_EMPTY): warpgroup 0 has
// issued S of the pair's first block, so warpgroup 1's S of the second queues behind it on the tensor cores
#define MLA_BAR_SI 15
// MLA_PP with MLA_TMA: stage 0 goes back to the producer in two parts, chunks 0-3 (V_L, read last by warpgroup 0's
// P0 V0_L) at MLA_BAR_EMPTY (256: warpgroup 0 and the producer), chunks 4-8 here (384: both consumers)
#define MLA_BAR_PP_E0R 13
// Byte `cb` of row r of a 64-row tile in the 128-byte swizzle: chunk cb / 128
// of 64 rows x 128 bytes, the 16-byte unit u of row r at (u ^ r % 8) * 16.
__device__ __forceinline__ unsigned mla_swz(int r, int cb) {
    return (unsigned)((cb >> 7) * 8192 + r * 128 + ((((cb >> 4) & 7) ^ (r & 7)) << 4) + (cb & 15));
}
__device__ __forceinline__ void mla_cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void mla_cp_wait0() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
// `bytes` (a multiple of 16) of global memory from p (16-byte aligned) into L2, no waiting
__device__ __forceinline__ void mla_prefetch_l2(const void *p, unsigned bytes) {
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
}
// inline-PTX operands: accumulators d[i .. i + 3] (+ 15, + 31, all 128) read and written
#define MLA_F4(d, i) "+f"(d[i]), "+f"(d[(i) + 1]), "+f"(d[(i) + 2]), "+f"(d[(i) + 3])
#define MLA_F16(d, i) MLA_F4(d, i), MLA_F4(d, (i) + 4), MLA_F4(d, (i) + 8), MLA_F4(d, (i) + 12)
#define MLA_F32(d, i) MLA_F16(d, i), MLA_F16(d, (i) + 16)
#define MLA_F128(d) MLA_F32(d, 0), MLA_F32(d, 32), MLA_F32(d, 64), MLA_F32(d, 96)
// after the wait: uses of the accumulators stay after it
__device__ __forceinline__ void mla_hold128(float *d) { asm volatile("" : MLA_F128(d)::"memory"); }
// A shared-memory matrix descriptor in the 128-byte swizzle (PTX ISA,
// "matrix descriptor format"): bits 0-13 start address >> 4, 16-29 the
// leading dimension byte offset >> 4, 32-45 the stride dimension byte
// offset >> 4, 49-51 base offset 0 (every operand starts at a 1024-byte
// boundary of the pattern, or inside its first 128-byte row: see below),
// 62-63 swizzle mode 1 (128 bytes).
__device__ __forceinline__ unsigned long long mla_desc(const void *p, unsigned lbo, unsigned sbo) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    return (unsigned long long)((s & 0x3ffffu) >> 4) | (unsigned long long)((lbo & 0x3ffffu) >> 4) << 16 |
           (unsigned long long)((sbo & 0x3ffffu) >> 4) << 32 | 1ull << 62;
}
#define MLA_R8(a, b, c, d, e, f, g, h) "%" #a ", %" #b ", %" #c ", %" #d ", %" #e ", %" #f ", %" #g ", %" #h
// the accumulator operands of a wgmma: registers %0 .. %31 (m64n64), %0 .. %127 (m64n256)
#define MLA_R32 \
    MLA_R8(0, 1, 2, 3, 4, 5, 6, 7) ", " MLA_R8(8, 9, 10, 11, 12, 13, 14, 15) ", " \
    MLA_R8(16, 17, 18, 19, 20, 21, 22, 23) ", " MLA_R8(24, 25, 26, 27, 28, 29, 30, 31)
#define MLA_R128 \
    MLA_R32 ", " \
    MLA_R8(32, 33, 34, 35, 36, 37, 38, 39) ", " MLA_R8(40, 41, 42, 43, 44, 45, 46, 47) ", " \
    MLA_R8(48, 49, 50, 51, 52, 53, 54, 55) ", " MLA_R8(56, 57, 58, 59, 60, 61, 62, 63) ", " \
    MLA_R8(64, 65, 66, 67, 68, 69, 70, 71) ", " MLA_R8(72, 73, 74, 75, 76, 77, 78, 79) ", " \
    MLA_R8(80, 81, 82, 83, 84, 85, 86, 87) ", " MLA_R8(88, 89, 90, 91, 92, 93, 94, 95) ", " \
    MLA_R8(96, 97, 98, 99, 100, 101, 102, 103) ", " MLA_R8(104, 105, 106, 107, 108, 109, 110, 111) ", " \
    MLA_R8(112, 113, 114, 115, 116, 117, 118, 119) ", " MLA_R8(120, 121, 122, 123, 124, 125, 126, 127)
// d[64 x 64] (+)= a[64 rows][16] . b[64 rows][16]^T, both K-major (32 bytes of
// each row at pa / pb, rows 128 bytes apart, 8-row groups 1024 apart: the
// canonical K-major 128-byte-swizzle layout ((8, m), (T, 2k)) : ((8T, SBO),
// (1, T)) with SBO = 1024; its LBO is unused, 16 by convention). d: 32 f32
// a thread, register i at row 16 (warp % 4) + lane / 4 + 8 ((i >> 1) & 1),
// col 8 (i >> 2) + 2 (lane % 4) + (i & 1).
__device__ __forceinline__ void mla_wgmma_s(float *d, const void *pa, const void *pb, int acc) {
    const unsigned long long da = mla_desc(pa, 16, 1024), db = mla_desc(pb, 16, 1024);
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" MLA_R32 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : MLA_F32(d, 0)
                 : "l"(da), "l"(db), "r"(acc));
}
// The same from the descriptors' low words (MLA_LEAN >= 2): start address >> 4 |
// LBO (16) >> 4 << 16, so that a chunk's or a k-step's is the block's plus a
// constant (addresses below 2^18: no carry out of the 14 bits); the high word
// is fixed: SBO 1024 >> 4 and the 128-byte swizzle (bit 62).
__device__ __forceinline__ unsigned mla_desc_lo(const void *p) { return ((unsigned)__cvta_generic_to_shared(p) & 0x3ffffu) >> 4 | 1u << 16; }
__device__ __forceinline__ void mla_wgmma_sd(float *d, unsigned alo, unsigned blo, int acc) {
    asm volatile("{\n.reg .pred p;\n.reg .u64 da, db;\nsetp.ne.b32 p, %34, 0;\nmov.b64 da, {%32, %35};\nmov.b64 db, {%33, %35};\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" MLA_R32 "}, da, db, p, 1, 1, 0, 0;\n}\n"
                 : MLA_F32(d, 0)
                 : "r"(alo), "r"(blo), "r"(acc), "r"(0x40000040u));
}
// MLA_QREG: d[64 x 64] += a . b^T with a (q's 64 rows x 16 columns) from registers, the fragment of
// mla_wgmma_pv_rs (mla_load_qa), b K-major from its descriptor's low word as mla_wgmma_sd; always
// accumulating (the caller zeroes d before the block's first wgmma)
__device__ __forceinline__ void mla_wgmma_sr(float *d, const unsigned *a, unsigned blo) {
    asm volatile("{\n.reg .u64 db;\nmov.b64 db, {%36, %37};\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" MLA_R32 "}, {%32, %33, %34, %35}, db, 1, 1, 1, 0;\n}\n"
                 : MLA_F32(d, 0)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(blo), "r"(0x40000040u));
}
// d[64 x 256] (+)= a[64 rows][16] . b[16][256]: a K-major as above, b the
// 16 keys' rows of V, MN-major (imm-trans-b = 1).
// The descriptor, from the PTX ISA's canonical MN-major layout in the
// 128-byte swizzle (T = 8 bf16 = 16 bytes; strides in elements):
//   ((T, 8, m), (8, k)) : ((1, T, LBO), (8T, SBO))
// i.e. along N: 8 elements contiguous, 8 such units 16 bytes apart (one
// 128-byte row of the swizzle atom), then the next 64 columns LBO away;
// along K: 8 rows 8T = 64 elements = 128 bytes apart (the atom's 8 rows),
// then the next 8 rows SBO away. Element (n, k) sits at byte
//   2 (n % 64) + LBO (n / 64) + 128 (k % 8) + SBO (k / 8)
// before the swizzle (address bits 4-6 ^= bits 7-9). A stage keeps key j's
// columns 64 c .. 64 c + 63 in chunk c: byte 8192 c + 128 j + 2 (n % 64),
// so with b = the chunk of the warpgroup's first column plus 2048 kk (keys
// 16 kk ..), LBO = 8192 (the next chunk) and SBO = 1024 (8 keys of 128
// bytes), and b starts a 1024-aligned atom (base offset 0). (CUTLASS's
// make_gmma_desc<Major::MN> fills the fields the same way: LBO the stride
// between 64-element groups along N, SBO between 8-row groups along K.)
// d: 128 f32 a thread, as above with col 8 (i >> 2) + 2 (lane % 4) + (i & 1).
__device__ __forceinline__ void mla_wgmma_pv(float *d, const void *pa, const void *pb, unsigned lbo, unsigned sbo, int acc) {
    const unsigned long long da = mla_desc(pa, 16, 1024), db = mla_desc(pb, lbo, sbo);
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" MLA_R128
                 "}, %128, %129, p, 1, 1, 0, 1;\n}\n"
                 : MLA_F128(d)
                 : "l"(da), "l"(db), "r"(acc));
}
// The same with A (P, 64 rows x 16 keys) from registers: a[0..3] the bf16 pairs of rows
// r, r + 8 (r = 16 warp + lane / 4) at keys 2 (lane % 4) and 8 + 2 (lane % 4) (MLA_PREG)
__device__ __forceinline__ void mla_wgmma_pv_rs(float *d, const unsigned *a, const void *pb, unsigned lbo, unsigned sbo) {
    const unsigned long long db = mla_desc(pb, lbo, sbo);
    asm volatile("wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" MLA_R128
                 "}, {%128, %129, %130, %131}, %132, 1, 1, 1, 1;\n"
                 : MLA_F128(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
// ---- the seesaw's steps (MLA_V3 2) ----
// S = Q K^T of one block of 64 keys: its 9 chunks in order (rot: 4-7, 0-3, 8, the
// order warpgroup 1's stage is refilled in), each waited for on its barrier
// (parity par) and fenced for the tensor cores just before its 4 wgmma.
__device__ __forceinline__ void mla_s_block(float *s, const unsigned char *Q, const unsigned char *K, unsigned long long *bar, unsigned par, int rot) {
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.0f;
#if MLA_LEAN >= 2
    const unsigned qlo = mla_desc_lo(Q), klo = mla_desc_lo(K);
#endif
#pragma unroll
    for (int k = 0; k < 9; k++) {
        const int c = rot ? (k < 4 ? k + 4 : k < 8 ? k - 4 : 8) : k;
        hp_mbar_wait(bar + c, par);
        hp_fence_async();
        hp_wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#if MLA_LEAN >= 2
            mla_wgmma_sd(s, qlo + c * 512 + kk * 2, klo + c * 512 + kk * 2, k | kk);
#else
            mla_wgmma_s(s, Q + c * 8192 + kk * 32, K + c * 8192 + kk * 32, k | kk);
#endif
    }
    hp_wg_commit();
    hp_wg_wait0();
    hp_hold32(s);
}
// The online softmax of one block's S (base 2, the scale sl2 folded in; the chunk ring's
// warpgroup 0 and both of the seesaw's): columns past lim[h] masked, m[h] becomes the
// rows' max with this block's, sc[h] the factor of what was relative to the old max, s
// the block's P (0 where masked), and this thread's share of the rows' sums ls[h] becomes
// ls[h] sc[h] plus P's columns, added two at a time.
__device__ __forceinline__ void mla_softmax(float *s, const int *lim, float *m, float *sc, float *ls, int q4, float sl2) {
    const float NEG = __int_as_float(0xff800000);
    // MLA_LEAN 6: the max over S as it is (the scale is positive: the same max, scaled after), four
    // partial maxima a row (fmaxf is exact: the same max in fewer dependent steps), and P's exponent
    // S sl2 - m in one FFMA
    const float ps = MLA_LEAN >= 6 ? 1.0f : sl2;
    float mx[2][4] = {{NEG, NEG, NEG, NEG}, {NEG, NEG, NEG, NEG}};
    const bool whole = MLA_LEAN >= 3 && lim[0] >= 63 && lim[1] >= 63; // every key of the block seen (MLA_LEAN 3: no mask)
    if (whole)
#pragma unroll
        for (int i = 0; i < 32; i++) {
            if (MLA_LEAN < 6) s[i] *= sl2;
            float *const x = &mx[(i >> 1) & 1][MLA_LEAN >= 6 ? (i >> 2) & 3 : 0];
            *x = fmaxf(*x, s[i]);
        }
    else
#pragma unroll
        for (int i = 0; i < 32; i++) {
            s[i] = 8 * (i >> 2) + 2 * q4 + (i & 1) <= lim[(i >> 1) & 1] ? s[i] * ps : NEG;
            float *const x = &mx[(i >> 1) & 1][MLA_LEAN >= 6 ? (i >> 2) & 3 : 0];
            *x = fmaxf(*x, s[i]);
        }
#pragma unroll
    for (int h = 0; h < 2; h++) { // the row's max over its quad of lanes
        float x = MLA_LEAN >= 6 ? fmaxf(fmaxf(mx[h][0], mx[h][1]), fmaxf(mx[h][2], mx[h][3])) : mx[h][0];
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
        if (MLA_LEAN >= 6) x *= sl2;
        // MLA_LAZY: the max P is relative to moves only when the block's is more than 2^8 above it
        const float mn = MLA_LAZY && x <= m[h] + 8.0f ? m[h] : fmaxf(m[h], x);
        sc[h] = mn == NEG ? 1.0f : exp2f(m[h] - mn);
        m[h] = mn;
        ls[h] *= sc[h];
    }
    if (MLA_LEAN >= 5 && whole) // no masked column: ex2.approx.ftz, no select
#pragma unroll
        for (int i = 0; i < 32; i += 2) {
            const int h = (i >> 1) & 1;
            // the exponents (MLA_LEAN 6: S unscaled, the scale in one FFMA)
            const float x0 = MLA_LEAN >= 6 ? fmaf(s[i], sl2, -m[h]) : s[i] - m[h], x1 = MLA_LEAN >= 6 ? fmaf(s[i + 1], sl2, -m[h]) : s[i + 1] - m[h];
            s[i] = hp_exp2(x0), s[i + 1] = hp_exp2(x1);
            ls[h] += s[i] + s[i + 1];
        }
    else
#pragma unroll
        for (int i = 0; i < 32; i += 2) {
            const int h = (i >> 1) & 1;
            if (MLA_LEAN >= 6) // (s unscaled)
                s[i] = s[i] == NEG ? 0.0f : exp2f(fmaf(s[i], sl2, -m[h])), s[i + 1] = s[i + 1] == NEG ? 0.0f : exp2f(fmaf(s[i + 1], sl2, -m[h]));
            else
                s[i] = s[i] == NEG ? 0.0f : exp2f(s[i] - m[h]), s[i + 1] = s[i + 1] == NEG ? 0.0f : exp2f(s[i + 1] - m[h]);
            ls[h] += s[i] + s[i + 1];
        }
}
// P (times the row's factor f) as bf16 into the rope chunk Pc, the A operand's layout
__device__ __forceinline__ void mla_store_p(unsigned char *Pc, const float *s, const float *f, int ra, int q4) {
#pragma unroll
    for (int i = 0; i < 32; i += 2) {
        const int h = (i >> 1) & 1;
        *(unsigned *)(Pc + mla_swz(ra + 8 * h, 2 * (8 * (i >> 2) + 2 * q4))) = hp_bf16x2(s[i] * f[h], s[i + 1] * f[h]);
    }
}
// MLA_QREG: the A fragment of q's columns 64 c + 16 kk .. + 15 (rows ra, ra + 8; mla_wgmma_pv_rs's layout)
// from q's tile Qs in the 128-byte swizzle
__device__ __forceinline__ void mla_load_qa(unsigned *a, const unsigned char *Qs, int c, int kk, int ra, int q4) {
    const int cb = 2 * (64 * c + 16 * kk + 2 * q4); // the byte of the row's pair at column 2 q4
    a[0] = *(const unsigned *)(Qs + mla_swz(ra, cb)), a[1] = *(const unsigned *)(Qs + mla_swz(ra + 8, cb));
    a[2] = *(const unsigned *)(Qs + mla_swz(ra, cb + 16)), a[3] = *(const unsigned *)(Qs + mla_swz(ra + 8, cb + 16));
}
// o's rows times their factors, where a row of the warp's has one other than 1
__device__ __forceinline__ void mla_scale_o(float *o, const float *f) {
    if (!__all_sync(0xffffffffu, f[0] == 1.0f && f[1] == 1.0f))
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] *= f[(i >> 1) & 1];
}
// o += P V: P in the rope chunk Pc, V the 4 chunks of the warpgroup's 256 columns from V
__device__ __forceinline__ void mla_pv(float *o, const unsigned char *Pc, const unsigned char *V) {
    hp_wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) mla_wgmma_pv(o, Pc + kk * 32, V + kk * 2048, 8192, 1024, 1);
    hp_wg_commit();
}
// MLA_PP: S = Q K^T of one block (MLA_LEAN 2's descriptor words qlo, klo at chunk 0), each chunk's 4 wgmma
// issued as soon as it has landed (mbarrier fb + c, parity par), then committed, not waited for. drain
// (warpgroup 0): this warpgroup's P V before (o, still in flight) is waited for right after chunk 0 is
// issued, on every block (no path skips the wait: ptxas would serialize the wgmma), and the stage of the
// block it read goes back to the producer there when rel (its "empty" barrier) is not 0.
// With qa (MLA_QREG 1: q's rope chunk as wgmma's A fragments, mla_load_qa), chunk 8's 4 wgmma take A from it.
// cfence: the consumer's proxy fence after each chunk's wait (the instance's MLA_CFENCE_ON: a parameter, not the
// macro, since this file is compiled once a module, with the first instance's macros)
__device__ __forceinline__ void mla_pp_s(float *s, float *o, unsigned qlo, unsigned klo, unsigned long long *fb, unsigned par, bool drain,
                                         int rel, const unsigned (*qa)[4], bool cfence) {
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.0f;
    hp_wg_fence();
#pragma unroll
    for (int c = 0; c < 9; c++) {
        hp_mbar_wait(fb + c, par);
        if (cfence) hp_fence_async();
        hp_wg_fence();
        if (qa && c == 8)
#pragma unroll
            for (int kk = 0; kk < 4; kk++) mla_wgmma_sr(s, qa[kk], klo + c * 512 + kk * 2);
        else
#pragma unroll
            for (int kk = 0; kk < 4; kk++) mla_wgmma_sd(s, qlo + c * 512 + kk * 2, klo + c * 512 + kk * 2, c | kk);
        if (drain && c == 0) {
            hp_wg_commit();
            hp_wg_wait0();
            mla_hold128(o);
            if (rel) hp_bar_arrive(rel, MLA_THREADS);
            hp_wg_fence();
        }
    }
    hp_wg_commit();
}
// MLA_PP 2: o += P V with P (this warpgroup's block, in s) from registers, wgmma's A fragment (S's
// accumulator layout as bf16 pairs, mla_wgmma_pv_rs), V the 4 chunks of the warpgroup's 256 columns from V;
// issued and committed, not waited for. With Pc, P is then stored there as well (mla_store_p's values and
// layout) for the other warpgroup.
__device__ __forceinline__ void mla_pv_own(float *o, const float *s, const unsigned char *V, unsigned char *Pc, int ra, int q4) {
    unsigned pa[16];
#pragma unroll
    for (int j = 0; j < 16; j++) pa[j] = hp_bf16x2(s[2 * j], s[2 * j + 1]);
    hp_wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) mla_wgmma_pv_rs(o, pa + 4 * kk, V + kk * 2048, 8192, 1024);
    hp_wg_commit();
    if (Pc)
#pragma unroll
        for (int j = 0; j < 16; j++) // pair j: row ra + 8 (j & 1), keys 8 (j >> 1) + 2 q4
            *(unsigned *)(Pc + mla_swz(ra + 8 * (j & 1), 2 * (8 * (j >> 1) + 2 * q4))) = pa[j];
}
// The copies of a loading warpgroup's thread (pr = its index / 8 of 0 .. 127), the producer's and
// mla_load_block's and mla_load_q's, all cp.async of 16 bytes into a 64-row tile in the 128-byte swizzle,
// rows r = pr + 16 i (i < 4) of the tile, unit kc (of the row's 72) of each:
// q's rows qr0 + r, zeros where rb + r >= nq (the producer: rb the tile's first row, nq the step's rows;
// the forms without a producer: 0 and the rows left; in each caller's form, so that the code compiles as
// it did before the helper, byte for byte); q stored as two tensors beside each other, Q0's first qd0
// columns and Q1's rest
__device__ __forceinline__ void mla_copy_q(unsigned char *Qs, const unsigned short *Q0, const unsigned short *Q1, int qd0, long long qr0,
                                           long long rb, long long nq, int pr, int kc) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = pr + 16 * i;
        const bool ok = rb + r < nq;
        const long long qr = qr0 + r;
        const unsigned short *src = kc * 8 < qd0 ? Q0 + (qr * qd0 + kc * 8) : Q1 + (qr * (576 - qd0) + kc * 8 - qd0);
        hp_cp16(Qs + mla_swz(r, kc * 16), ok ? src : Q0, ok);
    }
}
// block jb of keys (64 rows of 576 bf16, the batch row's first at Kg's row kr0), unit kc of each row, zeros from key T on
__device__ __forceinline__ void mla_copy_rows(unsigned char *Kd, const unsigned short *Kg, long long kr0, long long jb, long long T, int pr,
                                              int kc) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int jj = pr + 16 * i;
        const long long j = jb * 64 + jj;
        const bool ok = j < T;
        hp_cp16(Kd + mla_swz(jj, kc * 16), ok ? Kg + ((kr0 + j) * 576 + kc * 8) : Kg, ok);
    }
}
// MLA_V3 3, 4 (no producer warpgroup): the chunks of cmask (bit c: chunk c) of block jb of keys (64 rows
// of 576 bf16, the batch row's first at Kg's row kr0; keys past T land as zeros) into the stage Kd by the
// 128 threads of one warpgroup (pt 0 .. 127, the thread's index in it: rows pr + 16 i, the 16-byte unit
// pu of each chunk), each chunk's copies on its mbarrier fb + c (cp.async.mbarrier.arrive.noinc, 128
// arrivals a phase, as the producer's: each chunk by one warpgroup a use); with Qs, q's tile too (the
// step's rows qr0 .., zeros from row nq on) on the same barriers. A whole block without q: the copies at
// offsets fixed but for the chunk (MLA_LEAN 1's form). With kmap (MLA_TMA: the barriers count one arrival
// a phase), a whole block without q by TMA from thread pt 0 (arrive.expect_tx, then the chunk's box), and
// otherwise the copies as above, waited for, the warpgroup's named barrier wb, then pt 0's arrival on each.
__device__ __forceinline__ void mla_load_block(unsigned char *Kd, const unsigned short *Kg, long long kr0, long long jb, long long T,
                                               unsigned char *Qs, const unsigned short *Q0, const unsigned short *Q1, int qd0,
                                               long long qr0, long long nq, unsigned long long *fb, int pt, unsigned cmask = 0x1ffu,
                                               const void *kmap = 0, int wb = 0) {
    const int pr = pt >> 3, pu = pt & 7;
    if (kmap && !Qs && jb * 64 + 64 <= T) {
        if (pt == 0)
#pragma unroll
            for (int c = 0; c < 9; c++) {
                if (!(cmask >> c & 1u)) continue;
                hp_mbar_expect_tx(fb + c, 8192);
                hp_tma_2d(Kd + c * 8192, kmap, fb + c, c * 128, (int)(kr0 + jb * 64));
            }
        return;
    }
    if (!Qs && jb * 64 + 64 <= T) {
        const unsigned short *const src = Kg + ((kr0 + jb * 64 + pr) * 576 + pu * 8); // row pr, unit pu of chunk 0
        unsigned char *const dst = Kd + pr * 128 + ((pu ^ (pr & 7)) << 4); // mla_swz(pr + 16 i, 128 c + 16 pu) - 8192 c - 2048 i
#pragma unroll
        for (int c = 0; c < 9; c++) {
            if (!(cmask >> c & 1u)) continue;
#pragma unroll
            for (int i = 0; i < 4; i++) hp_cp16(dst + c * 8192 + i * 2048, src + (i * 16 * 576 + c * 64), true);
            hp_cp_arrive(fb + c);
        }
        return;
    }
    for (int c = 0; c < 9; c++) {
        if (!(cmask >> c & 1u)) continue;
        const int kc = c * 8 + pu; // the unit's 16 bytes among the row's 72
        if (Qs) mla_copy_q(Qs, Q0, Q1, qd0, qr0, 0, nq, pr, kc);
        mla_copy_rows(Kd, Kg, kr0, jb, T, pr, kc);
        if (!kmap) hp_cp_arrive(fb + c);
    }
    if (kmap) {
        mla_cp_commit();
        mla_cp_wait0();
        hp_fence_async(); // for the tensor cores
        hp_bar_sync(wb, 128); // the warpgroup's copies landed
        if (pt == 0)
            for (int c = 0; c < 9; c++)
                if (cmask >> c & 1u) hp_mbar_arrive(fb + c);
    }
}
// MLA_V3 4: q's tile alone (the step's rows qr0 .., zeros from row nq on) on its own mbarrier, by one warpgroup
// (one: the barrier counts one arrival a phase, MLA_TMA's; the copies waited for, the warpgroup's named
// barrier wb, then pt 0's arrival)
__device__ __forceinline__ void mla_load_q(unsigned char *Qs, const unsigned short *Q0, const unsigned short *Q1, int qd0, long long qr0,
                                           long long nq, unsigned long long *bar, int pt, bool one = false, int wb = 0) {
    const int pr = pt >> 3, pu = pt & 7;
    for (int kc = pu; kc < 72; kc += 8) mla_copy_q(Qs, Q0, Q1, qd0, qr0, 0, nq, pr, kc);
    if (!one) {
        hp_cp_arrive(bar);
        return;
    }
    mla_cp_commit();
    mla_cp_wait0();
    hp_fence_async();
    hp_bar_sync(wb, 128);
    if (pt == 0) hp_mbar_arrive(bar);
}
// MLA_FUSE's tickets: at most this many (batch row, row tile) pairs in a launch of several splits
// (gen.h's cg_mla_splits keeps splits x query rows within 33,792: at two splits or more, 16,896 rows)
#define MLA_TICKETS 16896
#ifndef MLA_MERGE_G
#define MLA_MERGE_G (MLA_SEESAW ? 2 : 1) // the merge's passes over a row's 64 columns (this thread's): the seesaw spills 4 bytes at 1
#endif
#define MLA_CAT2(x, y) x##y
#define MLA_CAT(x, y) MLA_CAT2(x, y)
#define MLA_FUSED(nsp) (MLA_FUSE && (nsp) > 1 && (nsp) <= MLA_FUSE_MAX) // the launch's splits merged by the kernel
// mla_decode.cuh's phases: one set of device functions per instance (they read its parameters), named after its entry
#define MLA_FN(x) MLA_CAT(DSCC_ENTRY, x)
// The block's place in the launch and the thread's in the block, which the kernel's phases share: set once at
// the entry (its _setup), then passed by reference into __forceinline__ functions, so no copy outlives inlining.
struct MlaBlk {
    unsigned char *Qs, *Ks; // q's tile, then the two stages of 64 keys (dynamic shared memory, 1024-aligned)
    unsigned long long *full; // MLA_V3: [stage][chunk] "landed" mbarriers, then q's (18) and MLA_MC's or MLA_XPUSH's (19, 20)
    long long B, S, T, HQ, KT; // the launch's batch rows, query positions, keys, heads, cache rows a batch row
    long long rows, nrb, nsp; // query rows a batch row (S * HQ), row tiles a batch row, splits
    long long rt, sp, bb, r0; // this block's row tile, split, batch row and first row (rt * 64)
    long long jb0, jb1; // this split's blocks of 64 keys: [jb0, jb1)
    int tid, wg, q4, ra; // the thread, its warpgroup, its lane's quad index, its first accumulator row (and ra + 8)
    float (*s_corr)[64]; // the block's __shared__ arrays (s_m1: MLA_SUMS2; s_tick: MLA_FUSE; else null)
    float *s_m, *s_l, *s_l1, *s_m1;
    unsigned *s_tick;
#ifdef MLA_STAMPS
    unsigned long long *stamps; // bench_mla --stamps: this block's 16 words (MLA_KSTAMP)
#endif
};
// MLA_V3 3 and 4 (no producer): what a consumer warpgroup's loads read (mla_load_block's and mla_load_q's
// arguments): q's two tensors, the cache, the tensor map (MLA_TMA, else null) and the thread's index in its warpgroup
struct MlaSrc {
    const unsigned short *Q0, *Q1, *Kg;
    const void *kmap;
    int pt;
};
#endif
