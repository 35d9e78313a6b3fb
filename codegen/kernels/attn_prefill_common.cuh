// attn_prefill_common.cuh — what the prefill attention kernel files
// (attn_prefill.cuh on mma.sync, attn_prefill_wgmma.cuh on wgmma) share: the
// stand-ins for their parameters when a file is compiled on its own (a
// module's instance defines them all, codegen/gen_attn.c; their meaning is
// in attn_prefill.cuh's opening comment), the order in which blocks take
// (batch row x head, query tile) pairs, and the last key a query row sees.
#ifndef ATTN_STORE // compiled on its own (test_codegen): a stand-in for the module's prelude
#include "args.cuh"
#define ATTN_B (a.sym[0])
#define ATTN_S (a.sym[1])
#define ATTN_T (a.sym[1])
#define ATTN_HQ 128LL
#define ATTN_HK 128LL
#define ATTN_DK 192LL
#define ATTN_DV 128LL
#define ATTN_KT ATTN_T
#define ATTN_KRS (ATTN_HK * ATTN_DK)
#define ATTN_KHS ATTN_DK
#define ATTN_K0 0LL
#define ATTN_KD0 ATTN_DK
#define ATTN_K1 ATTN_K
#define ATTN_K1T ATTN_KT
#define ATTN_K1RS ATTN_KRS
#define ATTN_K1HS ATTN_KHS
#define ATTN_K10 0LL
#define ATTN_VT ATTN_T
#define ATTN_VRS (ATTN_HK * ATTN_DV)
#define ATTN_VHS ATTN_DV
#define ATTN_V0 0LL
#define ATTN_Q ((const unsigned short *)a.t[0])
#define ATTN_Q1 ATTN_Q
#define ATTN_QD0 ATTN_DK
#define ATTN_K ((const unsigned short *)a.t[1])
#define ATTN_V ((const unsigned short *)a.t[2])
#define ATTN_STORE(i, v) (((float *)a.t[3])[i] = (v))
#define ATTN_CAUSAL 1
#define ATTN_SCALE 0.1352337788f
#endif

#ifndef ATTN_PREFILL_COMMON
#define ATTN_PREFILL_COMMON
#define ATTN_GH 16 // (batch row, head) pairs whose blocks are scheduled together
// This block's (batch row x head) pair *bh of nbh and query tile *qt of nqt: blocks in groups of
// ATTN_GH pairs, each group's query tiles longest (most keys) first, so a group's blocks run at
// about the same time and its keys are read from HBM once and then from L2; false past the last
__device__ __forceinline__ bool attn_block(long long nbh, long long nqt, long long *bh, long long *qt) {
    const long long grp = blockIdx.x / (ATTN_GH * nqt), w = blockIdx.x % (ATTN_GH * nqt);
    const long long gsz = nbh - grp * ATTN_GH < ATTN_GH ? nbh - grp * ATTN_GH : ATTN_GH;
    *bh = grp * ATTN_GH + w % gsz, *qt = nqt - 1 - w / gsz;
    return *qt >= 0 && *bh < nbh;
}
// The last of T keys query position s of S sees (a position past S: as the last one): its
// diagonal when causal (the S positions follow the T - S cached ones), else T - 1
__device__ __forceinline__ long long attn_last_key(long long s, long long S, long long T, bool causal) {
    long long k = causal ? (s < S ? s : S - 1) + T - S : T - 1;
    if (k > T - 1) k = T - 1;
    return k;
}
// x summed over the quad of lanes that hold one row's accumulators
__device__ __forceinline__ float attn_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
#endif
