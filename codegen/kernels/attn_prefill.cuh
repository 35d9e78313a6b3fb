// attn_prefill.cuh — causal (or full) attention with a head dimension of at
// most 256, many key heads: MLA's naive form (kv_b expanded into 128 heads
// of d_qk 192 = 128 nope + 64 rope, d_v 128), or any grouped attention with
// Hq a multiple of Hk. FlashAttention-2's design on mma.sync m16n8k16 BF16
// (its design, not its code):
//
// * A block (8 warps) takes 128 query positions of one (batch row, query
//   head); each warp owns 16 of them and the whole of their output, so a
//   row's softmax never leaves its quad of lanes and nothing is exchanged
//   between warps.
// * Keys and values come 64 at a time through a three-stage ring of
//   cp.async loads (the next two tiles land while this one is computed; one
//   barrier a tile), rows padded by 16 bytes so ldmatrix's eight row
//   addresses hit distinct banks.
// * S = Q K^T: q (its fragments in registers, loaded once by ldmatrix.x4) against k
//   (ldmatrix.x4, two 8-key tiles per load); the scale and log2(e) folded
//   into one multiply, the online softmax in base 2 in registers; P rounded
//   to bf16 is already the A fragment of P V (FA2's register reuse); v read
//   as B fragments by ldmatrix.x4.trans.
// * Causal: a block walks only the key tiles its last row sees; the mask is
//   applied only on tiles that cross a row's diagonal (or the keys' end).
//   Blocks come in groups of 16 (batch row, head) pairs, all their query
//   tiles, longest (most keys) first: a group's blocks share its keys
//   through L2, and the short tiles fill the tail of the wave.
//
// Semantics, as gen_attn.c's other forms: q [B, S, HQ, DK], k [B, T, HK,
// DK], v [B, T, HK, DV]; query position s sees keys 0 .. s + T - S when
// causal (the step's positions follow the T - S cached ones), else all T;
// head h reads key head h / (HQ / HK). out [B, S, HQ, DV] in f32
// softmax(q k^T * scale) v, accumulated in f32, stored through ATTN_STORE.
// k and v are read where they lie, with strides: k's first KD0 columns
// from one tensor, the rest from another (MLA's naive form: k_nope in
// kv_b's output, the rotary key in the cache, one row for every head: head
// stride 0), v from a third (kv_b's output again, from column 128).
//
// Parameters (#define; a module's instance defines them all, the stand-ins
// of attn_prefill_common.cuh make the file compile on its own):
//   DSCC_ENTRY               the entry point's name
//   ATTN_B, ATTN_S, ATTN_T   batch rows, query positions, keys (expressions over the Args `a`)
//   ATTN_HQ, ATTN_HK         query and key heads (HQ % HK == 0)
//   ATTN_DK, ATTN_DV         q/k and v head dims (multiples of 16; DK <= 256, DV <= 128)
//   ATTN_K, ATTN_KT, ATTN_KRS, ATTN_KHS, ATTN_K0
//                            k's first ATTN_KD0 columns: key j of batch row b, key head hk, column c at
//                            ATTN_K[(b * KT + j) * KRS + hk * KHS + K0 + c] (KT: rows per batch row, T or
//                            a KV cache's capacity; KRS, KHS: elements per row and per head)
//   ATTN_KD0                 ... its columns there (a multiple of 8); the other DK - KD0 from
//   ATTN_K1, ATTN_K1T, ATTN_K1RS, ATTN_K1HS, ATTN_K10  the same way (K1HS 0: one row for every head)
//   ATTN_V, ATTN_VT, ATTN_VRS, ATTN_VHS, ATTN_V0  v, the same way
//   (every stride and first column a multiple of 8 elements: 16-byte loads)
//   ATTN_Q, ATTN_Q1, ATTN_QD0  q's first QD0 columns and its other DK - QD0 (bf16 pointers over `a`;
//                            q stored as two tensors beside each other; one: Q1 = Q, QD0 = DK)
//   ATTN_STORE(i, v)         stores out[i] (f32 v) in the output's dtype
//   ATTN_CAUSAL              1: causal as above
//   ATTN_SCALE               the softmax scale (a float literal)
#ifndef ATTN_STORE // compiled on its own (test_codegen): the module prelude's mma.sync helpers
#include "mma.cuh"
#endif
#include "attn_prefill_common.cuh"

#ifndef ATTN_PREFILL_HELPERS
#define ATTN_PREFILL_HELPERS
__device__ __forceinline__ void ldsm_x4(unsigned *r, const void *p) { // four 8x8 b16 matrices (row addresses from lanes 8i + j)
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldsm_x4_t(unsigned *r, const void *p) { // the same, each matrix transposed
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
// Two floats as bf16, nearest even, lower half first (NaN kept a NaN).
__device__ __forceinline__ unsigned attn_bf16x2(float lo, float hi) {
    unsigned u[2] = {__float_as_uint(lo), __float_as_uint(hi)}, r[2];
    for (int k = 0; k < 2; k++)
        r[k] = (u[k] & 0x7fffffffu) > 0x7f800000u ? (u[k] >> 16) | 0x40u : (u[k] + 0x7fffu + ((u[k] >> 16) & 1u)) >> 16;
    return (r[0] & 0xffffu) | r[1] << 16;
}
#endif

#define ATTN_BM 128 // query positions per block (16 per warp)
#define ATTN_BN 64  // keys per tile
#define ATTN_QST (ATTN_DK * 2 + 16) // bytes per row of q and k in shared memory
#define ATTN_VST (ATTN_DV * 2 + 16) // ... of v
#define ATTN_STG (ATTN_BN * ATTN_QST + ATTN_BN * ATTN_VST) // bytes per stage (three: one being read, two loading)

extern "C" __global__ void __launch_bounds__(256, 1) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(16) unsigned char attn_sm[]; // q [BM][QST], then three stages of k [BN][QST] and v [BN][VST]
    const long long B = ATTN_B, S = ATTN_S, T = ATTN_T, HQ = ATTN_HQ, HK = ATTN_HK, KT = ATTN_KT, K1T = ATTN_K1T, VT = ATTN_VT;
    long long bh, qt;
    if (!attn_block(B * HQ, (S + ATTN_BM - 1) / ATTN_BM, &bh, &qt)) return;
    const long long b = bh / HQ, h = bh % HQ, hk = h / (HQ / HK), s0 = qt * ATTN_BM;
    const unsigned short *Q = ATTN_Q, *Q1 = ATTN_Q1, *Kg = ATTN_K, *K1g = ATTN_K1, *Vg = ATTN_V;
    unsigned char *const Qs = attn_sm, *const Ks = attn_sm + ATTN_BM * ATTN_QST;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
    const int qch = (int)(ATTN_DK / 8), vch = (int)(ATTN_DV / 8); // 16-byte chunks per row
    for (int c = threadIdx.x; c < ATTN_BM * qch; c += 256) { // q's tile, zeros past S
        const int i = c / qch, kc = c % qch;
        const bool ok = s0 + i < S;
        const long long qr = (b * S + s0 + i) * HQ + h;
        const unsigned short *qs = kc * 8 < ATTN_QD0 ? Q + (qr * ATTN_QD0 + kc * 8) : Q1 + (qr * (ATTN_DK - ATTN_QD0) + kc * 8 - ATTN_QD0);
        cp16(Qs + i * ATTN_QST + kc * 16, ok ? (const void *)qs : (const void *)Q, ok);
    }
    cp_commit();
    // the keys this block sees: up to its last row's diagonal (causal), all T otherwise
    const long long nkt = attn_last_key(s0 + ATTN_BM - 1, S, T, ATTN_CAUSAL) / ATTN_BN + 1;
    auto stage = [&](int st, long long j0) { // keys j0 .. j0 + BN - 1 of k and v into stage st, zeros past T
        unsigned char *Kd = Ks + st * ATTN_STG, *Vd = Kd + ATTN_BN * ATTN_QST;
        for (int c = threadIdx.x; c < ATTN_BN * qch; c += 256) {
            const int jj = c / qch, kc = c % qch;
            const bool ok = j0 + jj < T;
            const unsigned short *ks = kc * 8 < ATTN_KD0 ? Kg + ((b * KT + j0 + jj) * ATTN_KRS + hk * ATTN_KHS + ATTN_K0 + kc * 8)
                                                        : K1g + ((b * K1T + j0 + jj) * ATTN_K1RS + hk * ATTN_K1HS + ATTN_K10 + kc * 8 - ATTN_KD0);
            cp16(Kd + jj * ATTN_QST + kc * 16, ok ? (const void *)ks : (const void *)Kg, ok);
        }
        for (int c = threadIdx.x; c < ATTN_BN * vch; c += 256) {
            const int jj = c / vch, vc = c % vch;
            const bool ok = j0 + jj < T;
            cp16(Vd + jj * ATTN_VST + vc * 16,
                 ok ? (const void *)(Vg + ((b * VT + j0 + jj) * ATTN_VRS + hk * ATTN_VHS + ATTN_V0 + vc * 8)) : (const void *)Vg, ok);
        }
    };
    stage(0, 0);
    cp_commit();
    if (nkt > 1) stage(1, ATTN_BN);
    cp_commit();
    // this thread's rows: wr + g and wr + g + 8 of the block; the last key each sees
    const int wr = warp * 16;
    const long long last[2] = {attn_last_key(s0 + wr + g, S, T, ATTN_CAUSAL), attn_last_key(s0 + wr + g + 8, S, T, ATTN_CAUSAL)};
    const long long wfirst = ATTN_CAUSAL ? (s0 + wr < S ? s0 + wr : S - 1) + T - S : T - 1; // the warp's smallest diagonal
    const float sl2 = ATTN_SCALE * 1.4426950408889634f; // scores to base-2 exponents
    const float NEG = __int_as_float(0xff800000);
    float o[ATTN_DV / 8][4], m[2] = {NEG, NEG}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int t = 0; t < ATTN_DV / 8; t++)
#pragma unroll
        for (int c = 0; c < 4; c++) o[t][c] = 0.0f;
    // ldmatrix lane addresses: A (q) rows wr + (lane & 15), column half lane >> 4; B (k) keys (lane & 7) + 8 (lane >> 4),
    // column half (lane >> 3) & 1; v (transposed) keys (lane & 7) + 8 ((lane >> 3) & 1), column half lane >> 4
    const unsigned char *qa = Qs + (wr + (lane & 15)) * ATTN_QST + (lane >> 4) * 16;
    const int kro = ((lane & 7) + 8 * (lane >> 4)) * ATTN_QST + ((lane >> 3) & 1) * 16;
    const int vro = ((lane & 7) + 8 * ((lane >> 3) & 1)) * ATTN_VST + (lane >> 4) * 16;
    cp_wait2(); // q has landed (the first two tiles may be in flight)
    __syncthreads();
    unsigned qf[ATTN_DK / 16][4]; // q's A fragments, read once: they stay in registers
#pragma unroll
    for (int ks = 0; ks < ATTN_DK / 16; ks++) ldsm_x4(qf[ks], qa + ks * 32);
    for (long long it = 0; it < nkt; it++) {
        const long long j0 = it * ATTN_BN;
        cp_wait1(); // this tile has landed (the next one may be in flight)
        __syncthreads(); // ... for every thread, and every warp is done with the previous tile's stage
        if (it + 2 < nkt) stage((int)((it + 2) % 3), j0 + 2 * ATTN_BN); // into the stage the previous tile used
        cp_commit();
        const unsigned char *Kc = Ks + (it % 3) * ATTN_STG, *Vc = Kc + ATTN_BN * ATTN_QST;
        float sc[ATTN_BN / 8][4];
#pragma unroll
        for (int t = 0; t < ATTN_BN / 8; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) sc[t][c] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < ATTN_DK / 16; ks++) {
#pragma unroll
            for (int t = 0; t < ATTN_BN / 16; t++) { // two 8-key tiles per load
                unsigned bf[4];
                ldsm_x4(bf, Kc + kro + t * 16 * ATTN_QST + ks * 32);
                mma_bf16(sc[2 * t], qf[ks], bf);
                mma_bf16(sc[2 * t + 1], qf[ks], bf + 2);
            }
        }
        // the mask, only where a key of the tile may lie past a row's diagonal or past T
        const bool masked = j0 + ATTN_BN - 1 > wfirst || j0 + ATTN_BN > T;
        float mx[2] = {NEG, NEG};
#pragma unroll
        for (int t = 0; t < ATTN_BN / 8; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const long long j = j0 + t * 8 + q4 * 2 + (c & 1);
                const float x = sc[t][c] * sl2;
                sc[t][c] = masked && j > last[c >> 1] ? NEG : x;
                mx[c >> 1] = fmaxf(mx[c >> 1], sc[t][c]);
            }
        float corr[2], mb[2];
#pragma unroll
        for (int hh = 0; hh < 2; hh++) { // the row's max over its quad
            mx[hh] = fmaxf(mx[hh], __shfl_xor_sync(0xffffffffu, mx[hh], 1));
            mx[hh] = fmaxf(mx[hh], __shfl_xor_sync(0xffffffffu, mx[hh], 2));
            const float mn = fmaxf(m[hh], mx[hh]);
            mb[hh] = mn == NEG ? 0.0f : mn; // a row with no key yet: exponents of -inf give 0
            corr[hh] = exp2f(m[hh] - mb[hh]);
            m[hh] = mn;
            l[hh] *= corr[hh];
        }
#pragma unroll
        for (int t = 0; t < ATTN_DV / 8; t++)
#pragma unroll
            for (int c = 0; c < 4; c++) o[t][c] *= corr[c >> 1];
#pragma unroll
        for (int kk = 0; kk < ATTN_BN / 16; kk++) { // P V, 16 keys a step: P's fragment is the S tiles 2kk, 2kk + 1
            float p[2][4];
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    p[u][c] = exp2f(sc[2 * kk + u][c] - mb[c >> 1]);
                    l[c >> 1] += p[u][c];
                }
            const unsigned pa[4] = {attn_bf16x2(p[0][0], p[0][1]), attn_bf16x2(p[0][2], p[0][3]), attn_bf16x2(p[1][0], p[1][1]),
                                    attn_bf16x2(p[1][2], p[1][3])};
#pragma unroll
            for (int t = 0; t < ATTN_DV / 16; t++) { // two 8-column tiles of v per load
                unsigned vf[4];
                ldsm_x4_t(vf, Vc + vro + kk * 16 * ATTN_VST + t * 32);
                mma_bf16(o[2 * t], pa, vf);
                mma_bf16(o[2 * t + 1], pa, vf + 2);
            }
        }
    }
    cp_wait0();
#pragma unroll
    for (int hh = 0; hh < 2; hh++) l[hh] = attn_quad_sum(l[hh]); // the row's sum
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const long long s = s0 + wr + g + 8 * hh;
        if (s >= S) continue;
        const float inv = 1.0f / l[hh];
        const long long ob = ((b * S + s) * HQ + h) * ATTN_DV + q4 * 2;
#pragma unroll
        for (int t = 0; t < ATTN_DV / 8; t++) {
            ATTN_STORE(ob + t * 8, o[t][2 * hh] * inv);
            ATTN_STORE(ob + t * 8 + 1, o[t][2 * hh + 1] * inv);
        }
    }
}
#undef ATTN_BM
#undef ATTN_BN
#undef ATTN_QST
#undef ATTN_VST
#undef ATTN_STG
