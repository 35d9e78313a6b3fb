// route_topk_row.cuh — DeepSeek-V3's MoE gate after the router GEMM, a row
// by a warp (route_topk.cuh's kernel; DSCC_ROUTE_FUSE=1: the router GEMM's
// last CTA, which instances this file alone, with no entry to launch):
// scores = sigmoid(logits); choice = scores + bias (selection only); each
// group's score = the sum of its RT_GT largest choices; the RT_TG best
// groups kept; the RT_K best choices among their experts; weights = the
// chosen experts' scores, over their sum + RT_EPS (RT_NORM), times RT_SCALE.
// It replaces sigmoid + add, group_topk, gather and sum / add / div / mul
// (five launches with the GEMM, two now), and selects exactly as the CPU
// executor (cpu/ops.c, top_k): largest first, ties to the lower index, NaN
// ranked as -inf; the weights' sum in slot order, as the CPU's sum.
//
// One warp per row. Lane l holds experts l * J .. l * J + J - 1 (J = ceil(E
// / 32)): its score and choice in registers. When each lane's experts lie in
// one group and a group is RT_SEG aligned lanes (a power of two; V3: 32
// experts a group, 4 lanes), a group's RT_GT largest come from merging the
// lanes' sorted lists in log2(RT_SEG) shuffle steps, every group at once;
// otherwise (RT_SEG 0) one warp-wide pick at a time per group. The group
// choice is then the same in every lane, and each of the RT_K picks is one
// warp argmax over the kept experts; lane r keeps pick r and stores it.
//
// Parameters (#define; a module defines them all, the defaults below make
// the file compile on its own):
//   DSCC_ENTRY        the instance's name: its row function is DSCC_ENTRY##_row
//   RT_ROWS           rows, an expression over the Args `a`
//   RT_E, RT_K        experts (<= 1024) and picks per row (<= 32, <= RT_TG * E / RT_NG)
//   RT_NG, RT_TG, RT_GT  groups (E % NG == 0, <= 64), groups kept, choices summed per group
//   RT_SEG            lanes a group spans when the fast group form applies, else 0
//   RT_LOGIT(i)       the router logits [rows][E] as f32
//   RT_BIAS(i)        the selection bias [E] as f32
//   RT_IDX(i, v)      stores expert id v (f32) of slot i ([rows][K])
//   RT_W(i, v)        stores weight v (f32) of slot i
//   RT_NORM           1: divide by the sum of the K weights + RT_EPS; 0: not
//   RT_EPS, RT_SCALE  f32 literals
#ifndef RT_LOGIT // compiled on its own (test_codegen): a stand-in for the module's prelude
#include "args.cuh"
#define RT_ROWS (a.sym[0])
#define RT_E 256
#define RT_K 8
#define RT_NG 8
#define RT_TG 4
#define RT_GT 2
#define RT_SEG 4
#define RT_LOGIT(i) (((const float *)a.t[0])[i])
#define RT_BIAS(i) (((const float *)a.t[1])[i])
#define RT_IDX(i, v) (((int *)a.t[2])[i] = (int)(v))
#define RT_W(i, v) (((float *)a.t[3])[i] = (v))
#define RT_NORM 1
#define RT_EPS 1e-20f
#define RT_SCALE 2.5f
#endif

#define RT_J ((RT_E + 31) / 32)
#define RT_PER (RT_E / RT_NG)
#define RT_NEG __int_as_float(0xff800000)

// The warp's largest (value, then lower index) in every lane.
__device__ __forceinline__ void rt_best(float &bv, int &bi) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
}

// Group scores into gs[NG] (every lane alike), from the choices c[J].
__device__ __forceinline__ void rt_group_scores(const float *c, int lane, float *gs) {
#if RT_SEG > 0
    float t[RT_GT];  // this lane's RT_GT largest choices, largest first (-inf past its J)
#pragma unroll
    for (int r = 0; r < RT_GT; r++) t[r] = RT_NEG;
#pragma unroll
    for (int j = 0; j < RT_J; j++) {
        float v = c[j];
#pragma unroll
        for (int r = 0; r < RT_GT; r++)
            if (v > t[r]) { const float w = t[r]; t[r] = v; v = w; }
    }
#pragma unroll
    for (int o = 1; o < RT_SEG; o <<= 1) {  // merge with the partner's sorted list: the RT_GT largest of both
        float u[RT_GT], m[RT_GT];
#pragma unroll
        for (int r = 0; r < RT_GT; r++) u[r] = __shfl_xor_sync(0xffffffffu, t[r], o);
        int p = 0, q = 0;
#pragma unroll
        for (int r = 0; r < RT_GT; r++) {
            float tp = RT_NEG, uq = RT_NEG;
#pragma unroll
            for (int s = 0; s < RT_GT; s++) tp = s == p ? t[s] : tp, uq = s == q ? u[s] : uq;
            if (tp >= uq) m[r] = tp, p++;
            else m[r] = uq, q++;
        }
#pragma unroll
        for (int r = 0; r < RT_GT; r++) t[r] = m[r];
    }
    float s = 0.0f;  // in pick order, as the CPU sums
#pragma unroll
    for (int r = 0; r < RT_GT; r++) s += t[r];
    s = s != s ? RT_NEG : s;
#pragma unroll
    for (int g = 0; g < RT_NG; g++) gs[g] = __shfl_sync(0xffffffffu, s, g * RT_SEG);
#else
    unsigned taken = 0u;
    for (int g = 0; g < RT_NG; g++) {
        float s = 0.0f;
        for (int r = 0; r < RT_GT; r++) {
            float bv = RT_NEG; int bi = 0x7fffffff;
#pragma unroll
            for (int j = 0; j < RT_J; j++) {
                const int e = lane * RT_J + j;
                if (e >= g * RT_PER && e < g * RT_PER + RT_PER && !(taken >> j & 1u) && (bi == 0x7fffffff || c[j] > bv)) bv = c[j], bi = e;
            }
            rt_best(bv, bi);
            if (bi / RT_J == lane) taken |= 1u << (bi % RT_J);
            s += bv;
        }
        gs[g] = s != s ? RT_NEG : s;
    }
#endif
}

#define RT_PASTE2(a, b) a##b
#define RT_PASTE(a, b) RT_PASTE2(a, b)
#define RT_ROW RT_PASTE(DSCC_ENTRY, _row) // one per instance: it reads the instance's parameters

// Row `row` (< RT_ROWS) by the whole warp (lane: its lane).
__device__ __forceinline__ void RT_ROW(const Args &a, long long row, int lane) {
    const long long base = row * RT_E;
    float sc[RT_J], c[RT_J];  // scores and choices of experts lane * J + j; NaN choices rank as -inf
#pragma unroll
    for (int j = 0; j < RT_J; j++) {
        const int e = lane * RT_J + j;
        if (e < RT_E) {
            const float x = RT_LOGIT(base + e), s = 1.0f / (1.0f + expf(-(x))), v = s + RT_BIAS(e);
            sc[j] = s, c[j] = v != v ? RT_NEG : v;
        } else sc[j] = 0.0f, c[j] = RT_NEG;
    }
    float gs[RT_NG];
    rt_group_scores(c, lane, gs);
    unsigned long long keep = 0ull;  // the RT_TG best groups, ties to the lower (every lane alike)
    for (int r = 0; r < RT_TG; r++) {
        int best = -1; float bg = 0.0f;
#pragma unroll
        for (int g = 0; g < RT_NG; g++)
            if (!(keep >> g & 1ull) && (best < 0 || gs[g] > bg)) best = g, bg = gs[g];
        keep |= 1ull << best;
    }
    unsigned taken = 0u;
    int my_e = 0;
    float my_w = 0.0f, sum = 0.0f;
#pragma unroll
    for (int r = 0; r < RT_K; r++) {
        float bv = RT_NEG; int bi = 0x7fffffff;
#pragma unroll
        for (int j = 0; j < RT_J; j++) {
            const int e = lane * RT_J + j;
            if (e < RT_E && (keep >> (e / RT_PER) & 1ull) && !(taken >> j & 1u) && (bi == 0x7fffffff || c[j] > bv)) bv = c[j], bi = e;
        }
        rt_best(bv, bi);
        const int owner = bi / RT_J;
        if (owner == lane) taken |= 1u << (bi % RT_J);
        float ws = 0.0f;  // the owner's score of the pick
#pragma unroll
        for (int j = 0; j < RT_J; j++) ws = owner == lane && bi % RT_J == j ? sc[j] : ws;
        ws = __shfl_sync(0xffffffffu, ws, owner & 31);
        sum += ws;  // slot order, every lane alike
        if (lane == r) my_e = bi, my_w = ws;
    }
    if (lane < RT_K) {
        float w = my_w;
#if RT_NORM
        w = w / (sum + RT_EPS);
#endif
        w = w * RT_SCALE;
        RT_IDX(row * RT_K + lane, (float)my_e);
        RT_W(row * RT_K + lane, w);
    }
}
#undef RT_ROW
#undef RT_PASTE
#undef RT_PASTE2
#undef RT_J
#undef RT_PER
#undef RT_NEG
