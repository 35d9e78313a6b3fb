/* gen_expert.c — the expert_linear and fp8_expert_linear templates: each
 * routed row (token, slot) times the weight of the expert idx names; one
 * block per routed row and 64 outputs, the row in shared memory. */
#include "codegen/gen_internal.h"

bool cg_expert_gemm(Gen *G, const IrNode *n, bool fp8) {
    const IrNode *x = n->ops[0], *w = n->ops[fp8 ? 2 : 1], *idx = n->ops[fp8 ? 4 : 2];
    if (w->type.rank != 3 || idx->type.rank != 2 || !ir_dim_is_const(w->type.dims[2]) || w->type.dims[2].coeff > 12288) {
        G->why = "expert weights must be [E, O, I] with I <= 12288";
        return false;
    }
    int64_t I = w->type.dims[2].coeff;
    bool bcast = x->type.rank == 2;
    IrDim R = ir_type_numel(&idx->type);
    int sx = cg_slot_value(G, x), sw = cg_slot_value(G, w), si = cg_slot_value(G, idx), sy = cg_slot_value(G, n);
    int sxs = fp8 ? cg_slot_value(G, n->ops[1]) : 0, sws = fp8 ? cg_slot_value(G, n->ops[3]) : 0;
    cg_head(G, fp8 ? "fp8_expert_linear: one block per routed row and 64 outputs" : "expert_linear: one block per routed row and 64 outputs");
    StrBuf *b = &G->decl;
    sb_printf(b, "    extern __shared__ float xr[];\n"
                 "    const long long Ks = %s, I = %lldLL, O = %s, E = %s, nkb = (I + 127) / 128, nob = (O + 127) / 128;\n"
                 "    const long long r = blockIdx.x / ((O + 63) / 64), o0 = blockIdx.x %% ((O + 63) / 64) * 64;  // 64 outputs of one row\n"
                 "    if (r >= %s) return;\n"
                 "    const long long src = %s;\n"
                 "    const float ef = L%d(a, r);\n"
                 "    if (!(ef >= 0.0f && ef < (float)E)) {\n        if (threadIdx.x == 0) fail(a, ef);\n        return;\n    }\n"
                 "    const long long e = (long long)ef;\n"
                 "    for (long long k = threadIdx.x; k < I; k += 256) xr[k] = L%d(a, src * I + k);\n"
                 "    __syncthreads();\n"
                 "    const int lane = LANE();\n"
                 "    for (long long o = o0 + (threadIdx.x >> 5); o < O && o < o0 + 64; o += 8) {\n"
                 "        const long long wb = (e * O + o) * I;\n"
                 "        float acc = 0.0f;\n",
              cg_dim(G, idx->type.dims[1]), (long long)I, cg_dim(G, w->type.dims[1]), cg_dim(G, w->type.dims[0]), cg_dim(G, R),
              bcast ? "r / Ks" : "r", si, sx);
    (void)sws;
    if (fp8)
        sb_printf(b, "        for (long long kb = 0; kb < nkb; kb++) {\n"
                     "            float part = 0.0f;\n"
                     "            const long long end = kb * 128 + 128 < I ? kb * 128 + 128 : I;\n"
                     "            for (long long k = kb * 128 + lane; k < end; k += 32) part += xr[k] * L%d(a, wb + k);\n"
                     "            acc += part * L%d(a, src * nkb + kb) * L%d(a, (e * nob + o / 128) * nkb + kb);\n"
                     "        }\n",
                  sw, sxs, sws);
    else
        sb_printf(b, "        for (long long k = lane; k < I; k += 32) acc += xr[k] * L%d(a, wb + k);\n", sw);
    sb_printf(b, "        acc = wsum(acc);\n        if (lane == 0) S%d(a, r * O + o, acc);\n    }\n}\n", sy);
    cg_phase(G, CG_LAUNCH_BLOCK, R, 1, w->type.dims[1], 64, I * 4);
    return true;
}

