/* gen_attn.c — the attention template: softmax(q k^T * scale) v, causal
 * or not, grouped heads (Hq a multiple of Hk); one warp per query row
 * with an online softmax, so no score matrix is materialised. */
#include "codegen/gen_internal.h"

bool cg_attention(Gen *G, const IrNode *n) {
    const IrNode *q = n->ops[0], *k = n->ops[1], *v = n->ops[2];
    if (q->type.rank != 4 || !ir_dim_is_const(q->type.dims[3]) || !ir_dim_is_const(v->type.dims[3]) || q->type.dims[3].coeff > 1024 ||
        v->type.dims[3].coeff > 1024) {
        G->why = "attention head dims must be constant and at most 1024";
        return false;
    }
    int64_t Dk = q->type.dims[3].coeff, Dv = v->type.dims[3].coeff;
    IrDim R = cg_prefix(&q->type, 3);
    int sq = cg_slot_value(G, q), sk = cg_slot_value(G, k), sv = cg_slot_value(G, v), so = cg_slot_value(G, n);
    cg_head(G, "attention: one warp per query row, online softmax over the keys");
    sb_printf(&G->decl,
              "    const long long it = ITEM_WARP(); const int lane = LANE();\n"
              "    const long long S = %s, T = %s, Hq = %s, Hk = %s, Dk = %lldLL, Dv = %lldLL;\n"
              "    if (it >= %s) return;\n"
              "    const long long h = it %% Hq, s = it / Hq %% S, b = it / (Hq * S), hk = h / (Hq / Hk);\n"
              "    float q[%lld], o[%lld];\n"
              "    for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; q[t] = d < Dk ? L%d(a, it * Dk + d) : 0.0f; }\n"
              "    for (int t = 0; t < %lld; t++) o[t] = 0.0f;\n"
              "    long long last = %s;\n    if (last > T - 1) last = T - 1;\n"
              "    float m = __int_as_float(0xff800000), l = 0.0f;\n"
              "    for (long long j = 0; j <= last; j++) {\n"
              "        const long long kb = ((b * T + j) * Hk + hk) * Dk, vb = ((b * T + j) * Hk + hk) * Dv;\n"
              "        float dot = 0.0f;\n"
              "        for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; if (d < Dk) dot += q[t] * L%d(a, kb + d); }\n"
              "        dot = wsum(dot) * %.9ef;\n"
              "        const float mn = fmaxf(m, dot), corr = expf(m - mn), p = expf(dot - mn);\n"
              "        l = l * corr + p;\n"
              "        for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; if (d < Dv) o[t] = o[t] * corr + p * L%d(a, vb + d); }\n"
              "        m = mn;\n"
              "    }\n"
              "    for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; if (d < Dv) S%d(a, it * Dv + d, o[t] / l); }\n}\n",
              cg_dim(G, q->type.dims[1]), cg_dim(G, k->type.dims[1]), cg_dim(G, q->type.dims[2]), cg_dim(G, k->type.dims[2]),
              (long long)Dk, (long long)Dv, cg_dim(G, R), (long long)(Dk + 31) / 32, (long long)(Dv + 31) / 32,
              (long long)(Dk + 31) / 32, sq, (long long)(Dv + 31) / 32, ir_node_attr_bool(n, "causal", false) ? "s + T - S" : "T - 1",
              (long long)(Dk + 31) / 32, sk, (double)(float)ir_node_attr_float(n, "scale", 1.0), (long long)(Dv + 31) / 32, sv,
              (long long)(Dv + 31) / 32, so);
    cg_phase(G, CG_LAUNCH_WARP, R, 1, ir_dim_const(1), 1, 0);
    return true;
}

