// mla_decode_combine.cuh — merges the splits of mla_decode.cuh: each split
// left, per query row, its output normalised over its own keys and the log2
// of its softmax sum (-inf for a split past the row's keys); the row's
// output is the splits' outputs weighted by 2^(lse - max lse), over the sum
// of those weights. One thread per 4 columns of a row (16-byte loads).
// Scratch layout (f32): word 0 = the split count (an int, written by the
// decode kernel's block 0), from float 64 the outputs [split][row][512],
// then the lse [split][row].
//
// Parameters (#define; expressions may use the kernel's Args `a`):
//   DSCC_ENTRY           the entry point's name
//   MLA_B, MLA_S, MLA_HQ batch rows, query positions, query heads
//   MLA_SO, MLA_OUT_BF16 the output's slot; 1: bf16, 0: f32
//   MLA_SP               the scratch slot of the split parts
//   MLA_PART_BF16        1: the outputs are bf16 (mla_decode.cuh's MLA_PART_BF16: [split][row][512] from float 64
//                        as 16-bit values, the lse where the f32 layout has them); 0 (default): f32
//   MLA_IN_MODULE        defined when the file is part of a generated module (its prelude has Args)
#ifndef MLA_B
#define MLA_B (a.sym[0])
#endif
#ifndef MLA_S
#define MLA_S 1LL
#endif
#ifndef MLA_HQ
#define MLA_HQ 128LL
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
#ifndef MLA_PART_BF16
#define MLA_PART_BF16 0
#endif
#if !defined(MLA_IN_MODULE) && !defined(MLA_DECODE_HELPERS)
// compiled alone (test_codegen, test_gpu_mla, bench_mla): the generated prelude's argument block
#include "args.cuh"
#endif

extern "C" __global__ void __launch_bounds__(256) DSCC_ENTRY(Args a) {
    DSCC_PDL_WAIT(); // the splits' parts are the decode kernel's (programmatic dependent launch: codegen/kernels.h)
    DSCC_PDL_LAUNCH_DEPENDENTS(); // the next kernel may start its prologue (its weights) meanwhile
    const long long n = MLA_B * MLA_S * MLA_HQ, i = (long long)blockIdx.x * 256 + threadIdx.x;
    if (i >= n * 128) return;
    const float *part = (const float *)a.t[MLA_SP];
    const long long nsp = ((const int *)part)[0], ri = i >> 7, c4 = (i & 127) * 4;
    const float *po = part + 64, *lse = po + nsp * n * 512;
    const float NEG = __int_as_float(0xff800000);
    float mx = NEG;
    for (long long s = 0; s < nsp; s++) mx = fmaxf(mx, lse[s * n + ri]);
    float den = 0.0f, acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (long long s = 0; s < nsp; s++) {
        const float e = lse[s * n + ri];
        if (e == NEG) continue; // a split past the row's keys weighs nothing
        const float w = exp2f(e - mx);
#if MLA_PART_BF16
        const uint2 u = *(const uint2 *)((const unsigned short *)po + (s * n + ri) * 512 + c4); // 4 bf16, the lower first
        const float4 v = make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                                     __uint_as_float(u.y & 0xffff0000u));
#else
        const float4 v = *(const float4 *)(po + (s * n + ri) * 512 + c4);
#endif
        den += w;
        acc[0] += w * v.x, acc[1] += w * v.y, acc[2] += w * v.z, acc[3] += w * v.w;
    }
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
    for (int k = 0; k < 4; k++) {
        const float v = acc[k] * inv;
        if (MLA_OUT_BF16) {
            const unsigned u = __float_as_uint(v);
            ((unsigned short *)a.t[MLA_SO])[ri * 512 + c4 + k] =
                (unsigned short)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        } else ((float *)a.t[MLA_SO])[ri * 512 + c4 + k] = v;
    }
}
#undef DSCC_ENTRY
#undef MLA_B
#undef MLA_S
#undef MLA_HQ
#undef MLA_SO
#undef MLA_OUT_BF16
#undef MLA_SP
#undef MLA_PART_BF16
