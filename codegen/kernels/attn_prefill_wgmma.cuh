// attn_prefill_wgmma.cuh — the prefill attention of attn_prefill.cuh (same
// semantics, same #define parameters, read that file's comment) on
// Hopper's wgmma, in FlashAttention-3's class (its design, not its code):
//
// * A block of 384 threads takes 128 query positions of one (batch row,
//   query head), blocks ordered as attn_prefill.cuh's (groups of 16 pairs
//   sharing their keys through L2, longest query tiles first).
// * Warpgroup 2, the producer (setmaxnreg down to AW_REGS_PRODUCER): q's
//   tile, then each tile of AW_BN keys of k (its two source tensors, head
//   stride 0 allowed) and v by 16-byte cp.async into a ring of AW_NST
//   stages in the 128-byte swizzle; a stage's k and v each complete an
//   mbarrier of their own (cp.async.mbarrier.arrive.noinc: the producer
//   never waits for its copies), and it waits at the stage's k and v
//   "read" named barriers before refilling them.
// * Warpgroups 0 and 1, the consumers (setmaxnreg up to AW_REGS_CONSUMER),
//   64 query rows each. Per key tile j: S_j = Q K_j^T by wgmma m64n128k16
//   (q and k from shared memory, K-major) is issued, then O += P_{j-1}
//   V_{j-1} by wgmma m64n{64,128}k16 with P from registers and V from its
//   stage (MN-major: the descriptor transposes it, no copy); the wait for
//   S_j alone (wait_group 1) lets k's stage go, and S_j's softmax (the mask
//   only on tiles that cross a row's diagonal or the keys' end; base 2, the
//   scale and log2 e folded into one multiply; the running max and sums in
//   registers) runs while the tensor cores do P_{j-1} V_{j-1}; then P_j is
//   rounded to bf16 in the registers where S_j's accumulator lay, which is
//   already wgmma's A fragment, and v's stage goes. O is rescaled just
//   before the next P V is issued. A warpgroup walks only the tiles its
//   own last row sees (it releases the block's others unread).
// * AW_PINGPONG 1 (default): the two consumers take turns at the tensor
//   cores (FlashAttention-3's ping-pong): a warpgroup issues S_j and
//   P_{j-1} V_{j-1} only in its turn and hands the turn over once they are
//   issued, so one's softmax runs under the other's GEMMs; two named
//   barriers pass the turn. 0: no ordering between the consumers.
//
// Shared memory (dynamic, from its first 1024-aligned byte): q, two
// warpgroups x ceil(DK / 64) chunks of 64 rows x 128 bytes (8 KB); then the
// stages, each k's ceil(DK / 64) chunks of AW_BN rows x 128 bytes and v's
// ceil(DV / 64) the same way (column c of row r of a chunk at r * 128 +
// ((c / 8) ^ (r % 8)) * 16 + c % 8 * 2); then the stages' mbarriers.
// AW_SMEM(DK, DV) is the byte count a launch needs (gen_attn.c).
//
// Extra parameter: AW_PINGPONG (above). DK a multiple of 16 up to 192 and
// DV a multiple of 16 up to 128 (v's columns past DV zero-filled to 64).
#include "attn_prefill_common.cuh"
#ifndef AW_PINGPONG
#define AW_PINGPONG 1
#endif

#include "hopper.cuh"
#ifndef ATTN_WGMMA_HELPERS
#define ATTN_WGMMA_HELPERS
#define AW_THREADS 384 // consumer warpgroups 0 and 1, the producer 2
#define AW_REGS_PRODUCER 56 // (40 spills)
#define AW_REGS_CONSUMER 224 // 128 x 56 + 256 x 224 <= 65536
#define AW_BN 128 // keys per tile
#define AW_NST 2  // stages of the ring
// named barriers (0 is __syncthreads'): stage s's k / v read (384 threads), warpgroup w's turn at the tensor cores (256)
#define AW_BAR_KEMPTY 1
#define AW_BAR_VEMPTY 3
#define AW_BAR_TURN 5
#define AW_SMEM(dk, dv) (1024 + 2 * (((dk) + 63) / 64) * 8192 + AW_NST * ((((dk) + 63) / 64) + (((dv) + 63) / 64)) * AW_BN * 128 + 64)
// byte of column unit u (16 bytes) of row r of a chunk of 128-byte rows in the 128-byte swizzle
__device__ __forceinline__ unsigned aw_swz(int r, int u) { return (unsigned)(r * 128 + (((u & 7) ^ (r & 7)) << 4)); }
// d[64 x 128] (+)= a[64 rows][16] . b[128 rows][16]^T, both K-major (32 bytes of each row at pa / pb,
// rows 128 bytes apart, 8-row groups 1024 apart); d: 64 f32 a thread, register i at row
// 16 (warp % 4) + lane / 4 + 8 ((i >> 1) & 1), col 8 (i >> 2) + 2 (lane % 4) + (i & 1)
__device__ __forceinline__ void aw_wgmma_s(float *d, const void *pa, const void *pb, int acc) {
    const unsigned long long da = hp_desc(pa, 16, 1024, 1), db = hp_desc(pb, 16, 1024, 1);
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" HP_R64 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : HP_F64(d)
                 : "l"(da), "l"(db), "r"(acc));
}
// d[64 x N] += a[64][16] . b[16][N], N = 128 or 64: a from registers (4 a thread: rows lane / 4 and
// + 8 of the warp's 16, cols 2 (lane % 4) and + 8, two bf16 each, as mma.sync's A), b MN-major:
// element (n, k) at byte 2 (n % 64) + LBO (n / 64) + 128 (k % 8) + SBO (k / 8) before the swizzle
__device__ __forceinline__ void aw_wgmma_pv128(float *d, const unsigned *a, const void *pb, unsigned lbo) {
    const unsigned long long db = hp_desc(pb, lbo, 1024, 1);
    asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" HP_R64 "}, {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n"
                 : HP_F64(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
__device__ __forceinline__ void aw_wgmma_pv64(float *d, const unsigned *a, const void *pb, unsigned lbo) {
    const unsigned long long db = hp_desc(pb, lbo, 1024, 1);
    asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" HP_R32 "}, {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
                 : HP_F32(d, 0)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
// The online softmax of a tile's S (64 f32 a thread, rows r and r + 8 of the warp's, r = lane / 4;
// column 8 (i >> 2) + 2 (lane % 4) + (i & 1) of the tile in register i) in base 2: where `masked`,
// the columns past lim[] (a row's last key in the tile; < 0: none) get -inf; m (the rows' max,
// scaled by sl2) moves to this tile's, corr is its factor for what came before (applied to l here,
// to O by the caller), s becomes P = 2^(s sl2 - m) and l this thread's share of the rows' sums
__device__ __forceinline__ void aw_softmax(float *s, bool masked, const int *lim, int q4, float sl2, float *m, float *l, float *corr) {
    const float NEG = __int_as_float(0xff800000);
    if (masked)
#pragma unroll
        for (int i = 0; i < 64; i++)
            if (8 * (i >> 2) + 2 * q4 + (i & 1) > lim[(i >> 1) & 1]) s[i] = NEG;
    float mx[2] = {NEG, NEG}, nb[2];
#pragma unroll
    for (int i = 0; i < 64; i++) mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], s[i]);
#pragma unroll
    for (int hh = 0; hh < 2; hh++) { // the row's max over its quad
        mx[hh] = fmaxf(mx[hh], __shfl_xor_sync(0xffffffffu, mx[hh], 1));
        mx[hh] = fmaxf(mx[hh], __shfl_xor_sync(0xffffffffu, mx[hh], 2));
        const float mn = fmaxf(m[hh], mx[hh] * sl2), mb = mn == NEG ? 0.0f : mn; // no key yet: exponents of -inf give 0
        corr[hh] = hp_exp2(m[hh] - mb);
        m[hh] = mn;
        l[hh] *= corr[hh];
        nb[hh] = -mb;
    }
#pragma unroll
    for (int i = 0; i < 64; i++) {
        s[i] = hp_exp2(fmaf(s[i], sl2, nb[(i >> 1) & 1]));
        l[(i >> 1) & 1] += s[i];
    }
}
// O's rows times their factors, unless every row of the warp keeps its max
__device__ __forceinline__ void aw_scale_o(float *o, int n, const float *corr) {
    if (!__all_sync(0xffffffffu, corr[0] == 1.0f && corr[1] == 1.0f))
#pragma unroll
        for (int i = 0; i < n; i++) o[i] *= corr[(i >> 1) & 1];
}
// The last key of a tile from j0 each of a thread's rows sees, within the tile (-1: none, AW_BN - 1: all)
__device__ __forceinline__ void aw_limits(int *lim, const long long *last, long long j0) {
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const long long x = last[hh] - j0;
        lim[hh] = x < -1 ? -1 : x > AW_BN - 1 ? AW_BN - 1 : (int)x;
    }
}
// S = Q K^T of a tile, issued and committed: q's 64 rows at Qw, the tile's keys at Kc, DK columns
// of each in chunks of 64 (8 KB for q's rows, AW_BN x 128 bytes for the keys)
template <int DK> __device__ __forceinline__ void aw_s_gemm(float *s, const unsigned char *Qw, const unsigned char *Kc) {
    hp_wg_fence();
#pragma unroll
    for (int c = 0; c < (DK + 63) / 64; c++)
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
            if (c * 64 + kk * 16 < DK) aw_wgmma_s(s, Qw + c * 8192 + kk * 32, Kc + c * (AW_BN * 128) + kk * 32, c | kk);
    hp_wg_commit();
}
// P (S's registers after aw_softmax) as bf16 A fragments: k-step kk's are registers 8 kk .. 8 kk + 7
__device__ __forceinline__ void aw_p_frag(unsigned (*pa)[4], const float *s) {
#pragma unroll
    for (int kk = 0; kk < AW_BN / 16; kk++)
#pragma unroll
        for (int r = 0; r < 4; r++) pa[kk][r] = hp_bf16x2(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
}
#endif

#define AW_DKC ((int)((ATTN_DK + 63) / 64)) // 64-column chunks of q and k
#define AW_DVC ((int)((ATTN_DV + 63) / 64)) // ... of v
#define AW_ON (AW_DVC * 32)                 // accumulator registers of O a thread
#define AW_STG ((AW_DKC + AW_DVC) * AW_BN * 128) // bytes per stage
#if ATTN_DV > 64
#define AW_PV(o, a, v) aw_wgmma_pv128((o), (a), (v), AW_BN * 128)
#define AW_HOLD_O(o) hp_hold64(o)
#else
#define AW_PV(o, a, v) aw_wgmma_pv64((o), (a), (v), AW_BN * 128)
#define AW_HOLD_O(o) hp_hold32(o)
#endif

extern "C" __global__ void __launch_bounds__(AW_THREADS, 1) DSCC_ENTRY(Args a) {
    extern __shared__ __align__(16) unsigned char aw_smem[];
    unsigned char *const sm = aw_smem + ((1024u - (unsigned)(__cvta_generic_to_shared(aw_smem) & 1023u)) & 1023u);
    unsigned char *const Qs = sm, *const Ks = sm + 2 * AW_DKC * 8192;
    unsigned long long *const kfull = (unsigned long long *)(Ks + AW_NST * AW_STG), *const vfull = kfull + AW_NST; // stage s's k / v landed
    const long long B = ATTN_B, S = ATTN_S, T = ATTN_T, HQ = ATTN_HQ, HK = ATTN_HK;
    long long bh, qt;
    if (!attn_block(B * HQ, (S + 127) / 128, &bh, &qt)) return;
    const long long b = bh / HQ, h = bh % HQ, hk = h / (HQ / HK), s0 = qt * 128;
    // the block's keys: up to its last row's diagonal (causal), all T otherwise
    const long long nkt = attn_last_key(s0 + 127, S, T, ATTN_CAUSAL) / AW_BN + 1;
    const int tid = threadIdx.x, wg = tid >> 7;
    if (tid == 0) {
        for (int i = 0; i < 2 * AW_NST; i++) hp_mbar_init(kfull + i, 128); // the producer's threads' cp.async
        hp_mbar_fence_init();
    }
    __syncthreads();
    if (wg == 2) { // the producer: thread pt copies the 16-byte unit pu of rows pr, pr + 16, .. of each 64-column chunk
        hp_setmaxnreg_dec<AW_REGS_PRODUCER>();
        const int pt = tid - 256, pu = pt & 7, pr = pt >> 3;
        const unsigned short *Q = ATTN_Q, *Q1 = ATTN_Q1, *Kg = ATTN_K, *K1g = ATTN_K1, *Vg = ATTN_V;
#pragma unroll
        for (int c = 0; c < AW_DKC; c++) { // q's tile, zeros past S (on the first stage's barrier); columns past DK never read
            const int kc = c * 8 + pu;
            if (kc * 8 >= ATTN_DK) continue;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const int r = pr + 16 * i;
                const bool ok = s0 + r < S;
                const long long qr = (b * S + s0 + r) * HQ + h;
                const unsigned short *qs = kc * 8 < ATTN_QD0 ? Q + (qr * ATTN_QD0 + kc * 8) : Q1 + (qr * (ATTN_DK - ATTN_QD0) + kc * 8 - ATTN_QD0);
                hp_cp16(Qs + ((r >> 6) * AW_DKC + c) * 8192 + aw_swz(r & 63, pu), ok ? (const void *)qs : (const void *)Q, ok);
            }
        }
        // this thread's unit of key 0 in each chunk of k (the first KD0 columns from K, the others from K1) and of v, and
        // the elements from one key to the next
        const unsigned short *kp[AW_DKC], *vp[AW_DVC];
        long long kst[AW_DKC];
#pragma unroll
        for (int c = 0; c < AW_DKC; c++) {
            const int kc = c * 8 + pu;
            const bool k0 = kc * 8 < ATTN_KD0;
            kp[c] = k0 ? Kg + (b * ATTN_KT * ATTN_KRS + hk * ATTN_KHS + ATTN_K0 + kc * 8)
                       : K1g + (b * ATTN_K1T * ATTN_K1RS + hk * ATTN_K1HS + ATTN_K10 + kc * 8 - ATTN_KD0);
            kst[c] = k0 ? ATTN_KRS : ATTN_K1RS;
        }
#pragma unroll
        for (int c = 0; c < AW_DVC; c++) vp[c] = Vg + (b * ATTN_VT * ATTN_VRS + hk * ATTN_VHS + ATTN_V0 + (c * 8 + pu) * 8);
        for (long long it = 0; it < nkt; it++) {
            const int st = (int)(it % AW_NST);
            unsigned char *Kd = Ks + st * AW_STG + pr * 128 + ((pu ^ (pr & 7)) << 4), *Vd = Kd + AW_DKC * AW_BN * 128;
            const long long j0 = it * AW_BN + pr;
            if (it >= AW_NST) hp_bar_sync(AW_BAR_KEMPTY + st, AW_THREADS); // the consumers' S of tile it - NST is done
#pragma unroll
            for (int c = 0; c < AW_DKC; c++) { // keys it * BN .., zeros past T
                if ((c * 8 + pu) * 8 >= ATTN_DK) continue;
                const unsigned short *src = kp[c] + j0 * kst[c];
#pragma unroll 4
                for (int i = 0; i < AW_BN / 16; i++, src += 16 * kst[c]) {
                    const bool ok = j0 + 16 * i < T;
                    hp_cp16(Kd + c * (AW_BN * 128) + i * 2048, ok ? (const void *)src : (const void *)Kg, ok);
                }
            }
            hp_cp_arrive(kfull + st);
            if (it >= AW_NST) hp_bar_sync(AW_BAR_VEMPTY + st, AW_THREADS); // ... and their P V
#pragma unroll
            for (int c = 0; c < AW_DVC; c++) { // columns past DV as zeros too (P V reads them)
                const bool in = (c * 8 + pu) * 8 < ATTN_DV;
                const unsigned short *src = vp[c] + j0 * ATTN_VRS;
#pragma unroll 4
                for (int i = 0; i < AW_BN / 16; i++, src += 16 * ATTN_VRS) {
                    const bool ok = in && j0 + 16 * i < T;
                    hp_cp16(Vd + c * (AW_BN * 128) + i * 2048, ok ? (const void *)src : (const void *)Vg, ok);
                }
            }
            hp_cp_arrive(vfull + st);
        }
        hp_cp_wait_all(); // the last copies land before the thread ends
        return;
    }
    hp_setmaxnreg_inc<AW_REGS_CONSUMER>();
    const int lane = tid & 31, wq = (tid >> 5) & 3, q4 = lane & 3, ra = 64 * wg + 16 * wq + (lane >> 2); // rows ra, ra + 8 of the block
    // the last key each of this thread's rows sees; the warp's smallest diagonal; the warpgroup's tiles
    const long long last[2] = {attn_last_key(s0 + ra, S, T, ATTN_CAUSAL), attn_last_key(s0 + ra + 8, S, T, ATTN_CAUSAL)};
    const long long wfirst = ATTN_CAUSAL ? (s0 + ra - (lane >> 2) < S ? s0 + ra - (lane >> 2) : S - 1) + T - S : T - 1;
    const long long gnkt = attn_last_key(s0 + 64 * wg + 63, S, T, ATTN_CAUSAL) / AW_BN + 1;
    const float sl2 = ATTN_SCALE * 1.4426950408889634f, NEG = __int_as_float(0xff800000);
    const unsigned char *const Qw = Qs + wg * AW_DKC * 8192;
    float o[AW_ON], m[2] = {NEG, NEG}, l[2] = {0.0f, 0.0f}, corr[2] = {1.0f, 1.0f};
    unsigned pa[AW_BN / 16][4]; // the previous tile's P as bf16 (aw_p_frag)
#pragma unroll
    for (int i = 0; i < AW_ON; i++) o[i] = 0.0f;
    if (AW_PINGPONG && wg == 1) hp_bar_arrive(AW_BAR_TURN, 256); // warpgroup 0 goes first
    // S of tile it: issued, and (it > 0) P_{it-1} V_{it-1} behind it, so S_it's softmax runs under that GEMM
#define AW_S_ISSUE(it) aw_s_gemm<(int)ATTN_DK>(s, Qw, Ks + (int)((it) % AW_NST) * AW_STG)
    float s[64];
    { // tile 0: S alone
        hp_mbar_wait(kfull, 0);
        hp_fence_async();
        if (AW_PINGPONG) hp_bar_sync(AW_BAR_TURN + wg, 256);
        AW_S_ISSUE(0);
        if (AW_PINGPONG) hp_bar_arrive(AW_BAR_TURN + (wg ^ 1), 256);
        hp_wg_wait0();
        hp_hold64(s);
        if (AW_NST < nkt) hp_bar_arrive(AW_BAR_KEMPTY, AW_THREADS); // the producer may refill k's stage
        int lim[2];
        aw_limits(lim, last, 0);
        aw_softmax(s, AW_BN - 1 > wfirst || AW_BN > T, lim, q4, sl2, m, l, corr);
        aw_p_frag(pa, s);
    }
    for (long long it = 1; it < gnkt; it++) {
        const int st = (int)(it % AW_NST), pst = (int)((it - 1) % AW_NST);
        const long long j0 = it * AW_BN;
        const unsigned char *Vp = Ks + pst * AW_STG + AW_DKC * AW_BN * 128;
        aw_scale_o(o, AW_ON, corr); // O to the max of tile it - 1
        hp_mbar_wait(vfull + pst, (unsigned)((it - 1) / AW_NST) & 1u);
        hp_mbar_wait(kfull + st, (unsigned)(it / AW_NST) & 1u);
        hp_fence_async();
        if (AW_PINGPONG) hp_bar_sync(AW_BAR_TURN + wg, 256); // this warpgroup's turn at the tensor cores
        AW_S_ISSUE(it);
#pragma unroll
        for (int kk = 0; kk < AW_BN / 16; kk++) AW_PV(o, pa[kk], Vp + kk * 2048);
        hp_wg_commit();
        if (AW_PINGPONG) hp_bar_arrive(AW_BAR_TURN + (wg ^ 1), 256); // the other warpgroup's turn
        hp_wg_wait1(); // S_it (P V may still run)
        hp_hold64(s);
        if (it + AW_NST < nkt) hp_bar_arrive(AW_BAR_KEMPTY + st, AW_THREADS);
        // the mask only where a key of the tile may lie past a row's diagonal or past T
        int lim[2];
        aw_limits(lim, last, j0);
        aw_softmax(s, j0 + AW_BN - 1 > wfirst || j0 + AW_BN > T, lim, q4, sl2, m, l, corr);
        hp_wg_wait0(); // P_{it-1} V_{it-1} done: pa and v's stage free
        AW_HOLD_O(o);
        if (it - 1 + AW_NST < nkt) hp_bar_arrive(AW_BAR_VEMPTY + pst, AW_THREADS);
        aw_p_frag(pa, s);
    }
#undef AW_S_ISSUE
    { // the last tile's P V
        const int pst = (int)((gnkt - 1) % AW_NST);
        const unsigned char *Vp = Ks + pst * AW_STG + AW_DKC * AW_BN * 128;
        aw_scale_o(o, AW_ON, corr);
        hp_mbar_wait(vfull + pst, (unsigned)((gnkt - 1) / AW_NST) & 1u);
        hp_fence_async();
        hp_wg_fence();
#pragma unroll
        for (int kk = 0; kk < AW_BN / 16; kk++) AW_PV(o, pa[kk], Vp + kk * 2048);
        hp_wg_commit();
        hp_wg_wait0();
        AW_HOLD_O(o);
        if (gnkt - 1 + AW_NST < nkt) hp_bar_arrive(AW_BAR_VEMPTY + pst, AW_THREADS);
    }
    for (long long it = gnkt; it < nkt; it++) { // tiles past this warpgroup's last row (warpgroup 0's): released unread
        if (AW_PINGPONG) { // the turns stay paired with the other warpgroup's
            hp_bar_sync(AW_BAR_TURN + wg, 256);
            hp_bar_arrive(AW_BAR_TURN + (wg ^ 1), 256);
        }
        if (it + AW_NST < nkt) {
            hp_bar_arrive(AW_BAR_KEMPTY + (int)(it % AW_NST), AW_THREADS);
            hp_bar_arrive(AW_BAR_VEMPTY + (int)(it % AW_NST), AW_THREADS);
        }
    }
    if (AW_PINGPONG && wg == 0) hp_bar_sync(AW_BAR_TURN, 256); // warpgroup 1's last hand-over
#pragma unroll
    for (int hh = 0; hh < 2; hh++) l[hh] = attn_quad_sum(l[hh]); // the row's sum
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const long long s = s0 + ra + 8 * hh;
        if (s >= S) continue;
        const float inv = 1.0f / l[hh];
        const long long ob = ((b * S + s) * HQ + h) * ATTN_DV + 2 * q4;
#pragma unroll
        for (int i = 2 * hh; i < AW_ON; i += 4) {
            const int col = 8 * (i >> 2);
            if (col < ATTN_DV) {
                ATTN_STORE(ob + col, o[i] * inv);
                ATTN_STORE(ob + col + 1, o[i + 1] * inv);
            }
        }
    }
}
#undef AW_DKC
#undef AW_DVC
#undef AW_ON
#undef AW_STG
#undef AW_PV
#undef AW_HOLD_O
#undef AW_PINGPONG
