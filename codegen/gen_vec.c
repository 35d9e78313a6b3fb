/* gen_vec.c — the vector form of the fused elementwise store passes and of
 * the embedding (DSCC_ELEM_VEC=0: the old forms). The old store pass runs a
 * thread an element: 2-byte loads and stores, the 64-bit index arithmetic
 * of every inlined value once an element, a RoPE's cosine and sine once an
 * element, and under a merged act_scale a warp a 128-wide block whose
 * lanes read 2 bytes 32 apart. The vector form runs a thread a chunk of 8
 * consecutive elements (i % 8 == 0): each member gets a chunk function
 * c<k>(a, i, o) writing its 8 values at i.. i + 7, which reads its
 * operands' chunks (16-byte loads of bf16, 8 of fp8) where the chunk maps
 * to 8 consecutive elements of the operand, or one value shared by the 8
 * (a broadcast along the last axis, a quantize's block scale, a RoPE's
 * position); the index arithmetic runs once a chunk and a RoPE pair's
 * cosine and sine once a pair. Under a merged act_scale a half-warp holds a
 * 128-wide block (its amax in 4 shuffles) and writes its 128 codes as 16
 * 8-byte stores. The arithmetic of each value is that of its value
 * function (gen.c, emit_value), so both forms store the same bits. A pass
 * takes the form when every member it stores, through every chain of
 * members, has a chunk form (chunk_ok) and its sizes are multiples of 8;
 * a load or store whose address is not aligned at run time takes the
 * element-wise path inside the helpers. */
#include "codegen/gen_internal.h"

#include <stdlib.h>
#include <string.h>

#define VEC 8 /* elements a thread */

/* The helpers every vector pass uses: 8 values at element i of a tensor of each stored dtype. */
static const char VEC_HELPERS[] =
    "// 8 consecutive elements at i (i % 8 == 0): one wide access where the address is aligned, else one a value\n"
    "__device__ __forceinline__ void ld8_bf16(u64 p, long long i, float *v) {\n"
    "    const unsigned short *q = (const unsigned short *)p + i;\n"
    "    if (((u64)q & 15) == 0) {\n"
    "        const uint4 w = *(const uint4 *)q;\n"
    "        const unsigned u[4] = {w.x, w.y, w.z, w.w};\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) v[e] = bf2f((unsigned short)(u[e >> 1] >> (16 * (e & 1))));\n"
    "    } else {\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) v[e] = bf2f(q[e]);\n"
    "    }\n"
    "}\n"
    "__device__ __forceinline__ void ld8_f16(u64 p, long long i, float *v) {\n"
    "#pragma unroll\n"
    "    for (int e = 0; e < 8; e++) v[e] = ld_f16(p, i + e);\n"
    "}\n"
    "__device__ __forceinline__ void ld8_f32(u64 p, long long i, float *v) {\n"
    "    const float *q = (const float *)p + i;\n"
    "    if (((u64)q & 15) == 0) {\n"
    "        const float4 w0 = *(const float4 *)q, w1 = *(const float4 *)(q + 4);\n"
    "        v[0] = w0.x, v[1] = w0.y, v[2] = w0.z, v[3] = w0.w, v[4] = w1.x, v[5] = w1.y, v[6] = w1.z, v[7] = w1.w;\n"
    "    } else {\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) v[e] = q[e];\n"
    "    }\n"
    "}\n"
    "__device__ __forceinline__ void ld8_fp8e4m3(u64 p, long long i, float *v) {\n"
    "    const unsigned char *q = (const unsigned char *)p + i;\n"
    "    if (((u64)q & 7) == 0) {\n"
    "        const uint2 w = *(const uint2 *)q;\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) v[e] = e4m3f((unsigned char)((e < 4 ? w.x : w.y) >> (8 * (e & 3))));\n"
    "    } else {\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) v[e] = e4m3f(q[e]);\n"
    "    }\n"
    "}\n"
    "__device__ __forceinline__ void ld8_i32(u64 p, long long i, float *v) {\n"
    "#pragma unroll\n"
    "    for (int e = 0; e < 8; e++) v[e] = ld_i32(p, i + e);\n"
    "}\n"
    "__device__ __forceinline__ void ld8_i64(u64 p, long long i, float *v) {\n"
    "#pragma unroll\n"
    "    for (int e = 0; e < 8; e++) v[e] = ld_i64(p, i + e);\n"
    "}\n"
    "__device__ __forceinline__ void st8_bf16(u64 p, long long i, const float *v) {\n"
    "    unsigned short *q = (unsigned short *)p + i;\n"
    "    if (((u64)q & 15) == 0)\n"
    "        *(uint4 *)q = make_uint4(f2bf(v[0]) | (unsigned)f2bf(v[1]) << 16, f2bf(v[2]) | (unsigned)f2bf(v[3]) << 16,\n"
    "                                 f2bf(v[4]) | (unsigned)f2bf(v[5]) << 16, f2bf(v[6]) | (unsigned)f2bf(v[7]) << 16);\n"
    "    else {\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) q[e] = f2bf(v[e]);\n"
    "    }\n"
    "}\n"
    "__device__ __forceinline__ void st8_f32(u64 p, long long i, const float *v) {\n"
    "    float *q = (float *)p + i;\n"
    "    if (((u64)q & 15) == 0) {\n"
    "        *(float4 *)q = make_float4(v[0], v[1], v[2], v[3]);\n"
    "        *(float4 *)(q + 4) = make_float4(v[4], v[5], v[6], v[7]);\n"
    "    } else {\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) q[e] = v[e];\n"
    "    }\n"
    "}\n"
    "__device__ __forceinline__ void st8_codes(u64 p, long long i, unsigned w0, unsigned w1) {  // 8 E4M3 codes\n"
    "    unsigned char *q = (unsigned char *)p + i;\n"
    "    if (((u64)q & 7) == 0) *(uint2 *)q = make_uint2(w0, w1);\n"
    "    else {\n"
    "#pragma unroll\n"
    "        for (int e = 0; e < 8; e++) q[e] = (unsigned char)((e < 4 ? w0 : w1) >> (8 * (e & 3)));\n"
    "    }\n"
    "}\n"
    "__device__ __forceinline__ void st8_fp8e4m3(u64 p, long long i, const float *v) {\n"
    "    unsigned w0 = 0u, w1 = 0u;\n"
    "#pragma unroll\n"
    "    for (int e = 0; e < 4; e++) w0 |= (unsigned)fe4m3(v[e]) << (8 * e), w1 |= (unsigned)fe4m3(v[e + 4]) << (8 * e);\n"
    "    st8_codes(p, i, w0, w1);\n"
    "}\n";

static void vec_helpers(Gen *G) {
    if (G->vec_helpers) return;
    G->vec_helpers = true;
    sb_puts(&G->decl, VEC_HELPERS);
}

static bool is_const_mult(IrDim d, int64_t m) { return ir_dim_is_const(d) && d.coeff % m == 0; }

/* Whether a loaded (not inlined) tensor's chunks are 8 consecutive elements of memory in a dtype ld8_ reads. */
static bool load_ok(const Gen *G, const IrNode *n) {
    if (n->op == IR_OP_KV_CACHE || (G->kblock && G->kblock[n->id])) return false;
    IrDType t = G->dtype[n->id];
    return t == IR_DT_BF16 || t == IR_DT_F16 || t == IR_DT_F32 || t == IR_DT_FP8E4M3 || t == IR_DT_I32 || t == IR_DT_I64;
}

/* How member n reads operand o at a chunk of its own: 0 not in chunks, 1 the chunk at the mapped index, 2 one value for
 * the 8 (a broadcast along the last axis). For the binary elementwise ops' broadcasts (gen.c, cg_bcast_index). */
static int bcast_kind(const IrNode *n, const IrNode *o) {
    const IrType *t = &n->type, *ot = &o->type;
    if (ot->rank == 0 || (ir_dim_is_const(ir_type_numel(ot)) && ir_type_numel(ot).coeff == 1)) return 2;
    if (ot->rank > t->rank || t->rank < 1) return 0;
    bool same = ot->rank == t->rank;
    for (int k = 0; k < t->rank && same; k++) same = ir_dim_eq(ot->dims[k], t->dims[k]);
    if (same) return 1;
    IrDim last = t->dims[t->rank - 1], olast = ot->dims[ot->rank - 1];
    if (!is_const_mult(last, VEC)) return 0;
    if (ir_dim_eq(olast, last)) return 1;
    return ir_dim_is_const(olast) && olast.coeff == 1 ? 2 : 0;
}

static bool chunk_ok(Gen *G, const IrNode *n, signed char *memo);

static bool ops_ok(Gen *G, const IrNode *n, signed char *memo, int from) {
    for (int j = from; j < n->nops; j++)
        if (!chunk_ok(G, n->ops[j], memo)) return false;
    return true;
}

/* Whether node n (a member, or a tensor the group loads) has a chunk form. */
static bool chunk_ok_member(Gen *G, const IrNode *n, signed char *memo) {
    const IrNode *x = n->nops ? n->ops[0] : NULL;
    switch (n->op) {
    case IR_OP_CONST: return true;
    case IR_OP_RESHAPE: case IR_OP_CAST: case IR_OP_SIGMOID: case IR_OP_EXP: case IR_OP_NEG: case IR_OP_SQRT: case IR_OP_RSQRT:
    case IR_OP_SILU: case IR_OP_FRESH_SELECT:
        return ops_ok(G, n, memo, 0);
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAX:
        for (int j = 0; j < 2; j++) {
            int k = bcast_kind(n, n->ops[j]);
            if (!k || (k == 1 && !chunk_ok(G, n->ops[j], memo))) return false;
        }
        return true;
    case IR_OP_SLICE: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", 0), x->type.rank);
        IrDim inner = cg_suffix(&x->type, ax + 1);
        if (!ir_dim_is_const(inner)) return false;
        return (inner.coeff % VEC == 0 || (inner.coeff == 1 && is_const_mult(n->type.dims[ax], VEC))) && chunk_ok(G, x, memo);
    }
    case IR_OP_CONCAT: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", 0), n->type.rank);
        IrDim inner = cg_suffix(&n->type, ax + 1);
        if (!ir_dim_is_const(inner)) return false;
        for (int k = 0; k < n->nops; k++)
            if (!ir_dim_is_const(n->ops[k]->type.dims[ax]) || (inner.coeff % VEC && (inner.coeff != 1 || n->ops[k]->type.dims[ax].coeff % VEC)))
                return false;
        return ops_ok(G, n, memo, 0);
    }
    case IR_OP_ROPE: { /* a chunk within one row of d: interleaved, its 4 pairs; else the partner chunk d / 2 away */
        IrDim dd = x->type.dims[x->type.rank - 1];
        bool inter = ir_node_attr_bool(n, "interleave", false);
        if (!ir_dim_is_const(dd) || dd.coeff % (inter ? VEC : 2 * VEC) || x->type.rank < 3) return false;
        return chunk_ok(G, x, memo);
    }
    case IR_OP_QUANTIZE: { /* a chunk within one scale block: its scale read once */
        int64_t b = ir_node_attr_int(n, "block", 128);
        return b % VEC == 0 && is_const_mult(x->type.dims[x->type.rank - 1], VEC) && chunk_ok(G, x, memo);
    }
    case IR_OP_RMSNORM: /* a chunk within one row: its statistic read once (a row kernel's: rstat, the weight in RG or memory) */
        if (G->rowd && (n != G->rown || (G->rowg && G->rparts != 1))) return false;
        return is_const_mult(x->type.dims[x->type.rank - 1], VEC) && chunk_ok(G, x, memo) && (G->rowg || chunk_ok(G, n->ops[1], memo));
    case IR_OP_SUM: {
        if (!cg_sum_inline(n)) return false;
        int ax = cg_axis(ir_node_attr_int(n, "axis", -1), x->type.rank);
        return is_const_mult(cg_suffix(&x->type, ax + 1), VEC) && chunk_ok(G, x, memo);
    }
    default: return false;
    }
}

static bool chunk_ok(Gen *G, const IrNode *n, signed char *memo) {
    if (n == G->rowc) return G->rparts == 1; /* a row kernel's kept row: whole in one CTA's shared memory */
    if (G->local[n->id] < 0) return load_ok(G, n);
    if (memo[n->id]) return memo[n->id] > 0;
    memo[n->id] = -1; /* no cycles in a graph; a failure stays */
    bool ok = G->epi[n->id] != -2 && chunk_ok_member(G, n, memo);
    memo[n->id] = ok ? 1 : -1;
    return ok;
}

/* Emits into f: `float dst[8]` = the chunk of m at element index idx (a C expression; m's chunk form exists). */
static void chunk_read(Gen *G, StrBuf *f, const IrNode *m, const char *idx, const char *dst) {
    if (m == G->rowc) sb_printf(f, "    float %s[8];\n#pragma unroll\n    for (int e = 0; e < 8; e++) %s[e] = RX(%s + e);\n", dst, dst, idx);
    else if (G->local[m->id] >= 0) sb_printf(f, "    float %s[8];\n    c%d(a, %s, %s);\n", dst, G->local[m->id], idx, dst);
    else sb_printf(f, "    float %s[8];\n    ld8_%s(a.t[%d], %s, %s);\n", dst, cg_stored_suffix(G, m), cg_slot_value(G, m), idx, dst);
}


/* The body of n's chunk function: fills o[0..7] at chunk index i. */
static void chunk_body(Gen *G, StrBuf *f, const IrNode *n) {
    const IrNode *x = n->nops ? n->ops[0] : NULL;
    const int me = G->local[n->id];
    switch (n->op) {
    case IR_OP_CONST: sb_printf(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = v%d(a, i + e);\n", me); return;
    case IR_OP_RESHAPE: chunk_read(G, f, x, "i", "x"); sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = x[e];\n"); return;
    case IR_OP_CAST:
        chunk_read(G, f, x, "i", "x");
        sb_printf(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = %s;\n", ir_dtype_is_int(n->type.dtype) ? "truncf(x[e])" : "x[e]");
        return;
    case IR_OP_SIGMOID: case IR_OP_EXP: case IR_OP_NEG: case IR_OP_SQRT: case IR_OP_RSQRT: case IR_OP_SILU: {
        const char *e = n->op == IR_OP_SIGMOID ? "1.0f / (1.0f + expf(-(x)))" : n->op == IR_OP_SILU ? "x / (1.0f + expf(-x))"
                      : n->op == IR_OP_EXP ? "expf(x)" : n->op == IR_OP_NEG ? "-(x)" : n->op == IR_OP_SQRT ? "sqrtf(x)" : "1.0f / sqrtf(x)";
        chunk_read(G, f, x, "i", "xs");
        sb_printf(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) {\n        const float x = xs[e];\n        o[e] = %s;\n    }\n", e);
        return;
    }
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAX: {
        const char *nm[2] = {"xa", "ya"}, *el[2];
        for (int j = 0; j < 2; j++) {
            const IrNode *o = n->ops[j];
            const char *ix = cg_bcast_index(G, f, &n->type, &o->type, j);
            if (bcast_kind(n, o) == 1) chunk_read(G, f, o, ix, nm[j]), el[j] = arena_printf(G->a, "%s[e]", nm[j]);
            else sb_printf(f, "    const float %s = %s;\n", nm[j], cg_read(G, o, ix)), el[j] = nm[j];
        }
        const char *r = n->op == IR_OP_ADD ? "x + y" : n->op == IR_OP_SUB ? "x - y" : n->op == IR_OP_MUL ? "x * y" : n->op == IR_OP_DIV ? "x / y" : "fmaxf(x, y)";
        sb_printf(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) {\n        const float x = %s, y = %s;\n        o[e] = %s;\n    }\n", el[0], el[1], r);
        return;
    }
    case IR_OP_FRESH_SELECT: /* only the chosen operand is read */
        sb_puts(f, "    if (a.len == 0) {\n");
        chunk_read(G, f, n->ops[0], "i", "x");
        sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = x[e];\n    } else {\n");
        chunk_read(G, f, n->ops[1], "i", "y");
        sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = y[e];\n    }\n");
        return;
    case IR_OP_SLICE: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", 0), x->type.rank);
        int64_t start = ir_node_attr_int(n, "start", 0);
        sb_printf(f, "    const long long inner = %s, len = %s, mid = %s;\n", cg_dim(G, cg_suffix(&x->type, ax + 1)), cg_dim(G, n->type.dims[ax]),
                  cg_dim(G, x->type.dims[ax]));
        chunk_read(G, f, x, arena_printf(G->a, "(i / (inner * len) * mid + %s%lldLL + i / inner %% len) * inner + i %% inner", start < 0 ? "mid + " : "",
                                         (long long)start), "x");
        sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = x[e];\n");
        return;
    }
    case IR_OP_CONCAT: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", 0), n->type.rank);
        sb_printf(f, "    const long long inner = %s, mid = %s, c = i / inner %% mid, q = i / (inner * mid);\n", cg_dim(G, cg_suffix(&n->type, ax + 1)),
                  cg_dim(G, n->type.dims[ax]));
        int64_t at = 0;
        for (int k = 0; k < n->nops; k++) {
            int64_t m = n->ops[k]->type.dims[ax].coeff;
            sb_printf(f, "    if (c < %lldLL) {\n", (long long)(at + m));
            chunk_read(G, f, n->ops[k], arena_printf(G->a, "(q * %lldLL + c - %lldLL) * inner + i %% inner", (long long)m, (long long)at), "x");
            sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = x[e];\n    return;\n    }\n");
            at += m;
        }
        sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = 0.0f;\n");
        return;
    }
    case IR_OP_ROPE: {
        int64_t d = x->type.dims[x->type.rank - 1].coeff;
        double *inv = malloc(sizeof(double) * (size_t)(d / 2 + 1)); /* the table is v<me>'s (inv<me>): its factor alone here */
        double af = inv ? ir_rope_freqs(n, d, inv) : 1.0;
        free(inv);
        bool inter = ir_node_attr_bool(n, "interleave", false);
        sb_printf(f, "    const long long d = %lldLL, j = i %% d, row = i - j, per = %s;\n", (long long)d, cg_dim(G, cg_suffix(&x->type, 2)));
        sb_printf(f, "    const float p = %s;\n", cg_read(G, n->ops[1], "i / per"));
        chunk_read(G, f, x, "i", "x");
        if (inter) /* the chunk's 4 pairs (j even): the cosine and sine once a pair */
            sb_printf(f, "#pragma unroll\n    for (int e = 0; e < 8; e += 2) {\n"
                         "        const float ang = p * inv%d[(j + e) >> 1];\n"
                         "        const float cs = cosf(ang) * %.9ef, sn = sinf(ang) * %.9ef;\n"
                         "        o[e] = x[e] * cs - x[e + 1] * sn;\n        o[e + 1] = x[e + 1] * cs + x[e] * sn;\n    }\n",
                      me, (double)(float)af, (double)(float)af);
        else {
            sb_puts(f, "    const bool lo = j < d / 2;\n");
            chunk_read(G, f, x, "lo ? i + d / 2 : i - d / 2", "y");
            sb_printf(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) {\n"
                         "        const float ang = p * inv%d[(j + e) %% (d / 2)];\n"
                         "        const float cs = cosf(ang) * %.9ef, sn = sinf(ang) * %.9ef;\n"
                         "        o[e] = lo ? x[e] * cs - y[e] * sn : x[e] * cs + y[e] * sn;\n    }\n",
                      me, (double)(float)af, (double)(float)af);
        }
        return;
    }
    case IR_OP_QUANTIZE: {
        int64_t b = ir_node_attr_int(n, "block", 128);
        sb_printf(f, "    const long long K = %s, nkb = (K + %lld) / %lld;\n", cg_dim(G, x->type.dims[x->type.rank - 1]), (long long)b - 1, (long long)b);
        sb_printf(f, "    const float s = %s;\n", cg_read(G, n->ops[1], arena_printf(G->a, "i / K * nkb + i %% K / %lld", (long long)b)));
        chunk_read(G, f, x, "i", "x");
        sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = s > 0.0f ? fp8r(x[e] / s) : 0.0f;\n");
        return;
    }
    case IR_OP_RMSNORM:
        sb_printf(f, "    const long long D = %s;\n", cg_dim(G, x->type.dims[x->type.rank - 1]));
        sb_puts(f, G->rowd ? "    const float r = rstat;\n" : arena_printf(G->a, "    const float r = ld_f32(a.t[%d], i / D);\n", G->stat[n->id]));
        if (G->rowg) sb_puts(f, "    float w[8];\n#pragma unroll\n    for (int e = 0; e < 8; e++) w[e] = RG(i + e);\n");
        else chunk_read(G, f, n->ops[1], "i % D", "w");
        chunk_read(G, f, x, "i", "x");
        sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = w[e] * (x[e] * r);\n");
        return;
    case IR_OP_SUM: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", -1), x->type.rank);
        sb_printf(f, "    const long long mid = %s, inner = %s, base = i / inner * mid * inner + i %% inner;\n"
                     "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] = 0.0f;\n"
                     "#pragma unroll\n    for (long long j = 0; j < mid; j++) {\n",
                  cg_dim(G, x->type.dims[ax]), cg_dim(G, cg_suffix(&x->type, ax + 1)));
        chunk_read(G, f, x, "base + j * inner", "x");
        sb_puts(f, "#pragma unroll\n    for (int e = 0; e < 8; e++) o[e] += x[e];\n    }\n");
        return;
    }
    default: IR_UNREACHABLE();
    }
}

/* The chunk function c<local>(a, i, o) of member n, after those of the members it reads (each once a module; those with
 * a chunk form: memo, chunk_ok's, 1; the others are read through their value functions). */
static void emit_chunk(Gen *G, const IrNode *n, bool *emitted, const signed char *memo, const StrBuf *prior) {
    if (G->local[n->id] < 0 || emitted[n->id] || memo[n->id] != 1) return;
    emitted[n->id] = true;
    const char *sig = arena_printf(G->a, "void c%d(const Args &a", G->local[n->id]); /* an earlier pass or form of the module's */
    if ((G->decl.data && strstr(G->decl.data, sig)) || (prior && prior->data && strstr(prior->data, sig))) return;
    for (int j = 0; j < n->nops; j++) emit_chunk(G, n->ops[j], emitted, memo, prior);
    StrBuf f;
    sb_init(&f);
    chunk_body(G, &f, n);
    sb_printf(&G->decl, "__device__ __forceinline__ void c%d(const Args &a, long long i, float *o) {  // %s: 8 values at i\n%s}\n",
              G->local[n->id], ir_op_name(n->op), f.data ? f.data : "");
    sb_free(&f);
}

static bool st8_ok(const Gen *G, const IrNode *m) {
    IrDType t = G->dtype[m->id];
    return !(G->kblock && G->kblock[m->id]) && (t == IR_DT_BF16 || t == IR_DT_F32 || t == IR_DT_FP8E4M3);
}

/* The KV cache member m's store appends it to (gen.c's emit_store_stmt), NULL none. */
static const IrNode *cache_of(const Gen *G, const IrNode *m) {
    return G->cache_of && G->cache_of[m->id] >= 0 ? G->g->nodes[G->cache_of[m->id]] : NULL;
}

/* The store of member m's chunk v at i0, in its dtype (8 scalar stores where the layout is not plain), and its append to
 * the KV cache its group took in, at position a.len + s of its row (8 consecutive elements of one position). */
static void chunk_store(Gen *G, const IrNode *m, const char *v) {
    int s = cg_slot_value(G, m);
    if (st8_ok(G, m)) sb_printf(&G->decl, "        st8_%s(a.t[%d], i0, %s);\n", cg_stored_suffix(G, m), s, v);
    else sb_printf(&G->decl, "#pragma unroll\n        for (int e = 0; e < 8; e++) S%d(a, i0 + e, %s[e]);\n", s, v);
    const IrNode *kv = cache_of(G, m);
    if (kv)
        sb_printf(&G->decl, "        {\n        const long long per = %s, S = %s, bs = i0 / per;  // appended to the cache\n"
                            "        st8_%s(a.t[%d], ((bs / S) * a.cap + a.len + bs %% S) * per + i0 %% per, %s);\n        }\n",
                  cg_dim(G, cg_suffix(&m->type, 2)), cg_dim(G, m->type.dims[1]), cg_stored_suffix(G, kv), cg_slot_value(G, kv), v);
}

/* Whether the members of count cnt that the pass stores all have chunk forms (and a cache one appends to, 8 consecutive
 * elements of one position in a dtype st8_ writes). */
static bool pass_ok(Gen *G, const int *members, int nm, const bool *done, IrDim cnt, signed char *memo) {
    for (int k = 0; k < nm; k++) {
        const IrNode *m = G->g->nodes[members[k]];
        if (done[k] || !ir_dim_eq(ir_type_numel(&m->type), cnt)) continue;
        const IrNode *kv = cache_of(G, m);
        if ((kv && (m->type.rank < 3 || !is_const_mult(cg_suffix(&m->type, 2), VEC) || !st8_ok(G, kv))) || !chunk_ok(G, m, memo)) return false;
    }
    return true;
}

/* The merged act_scale's part of a pass (A over x, block 128): the chunk's amax, the block's over its half-warp, its
 * scale stored by the half-warp's first lane, and the quantize of x by it as 8 codes. */
static void emit_vec_act(Gen *G, const IrNode *A, const IrNode *q) {
    int s = G->stat[A->id];
    const char *put = G->stored[A->id] ? arena_printf(G->a, "S%d(a, i0 >> 7, sc)", s) : arena_printf(G->a, "st_f32(a.t[%d], i0 >> 7, sc)", s);
    sb_printf(&G->decl, "    float m = 0.0f;\n#pragma unroll\n    for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(xv[e]));\n"
                        "    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));\n"
                        "    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));\n"
                        "    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));\n"
                        "    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));  // the block's amax in its 16 lanes\n"
                        "    const float sc = m / 448.0f;\n"
                        "    if (live && (threadIdx.x & 15) == 0) %s;\n"
                        "    __syncwarp();  // the scale, for any other reader of it\n"
                        "    if (live) {\n",
              put);
    if (q) {
        int sq = cg_slot_value(G, q);
        if (G->dtype[q->id] == IR_DT_FP8E4M3 && !(G->kblock && G->kblock[q->id]))
            sb_printf(&G->decl, "        unsigned w0 = 0u, w1 = 0u;\n"
                                "        if (sc > 0.0f) {\n#pragma unroll\n            for (int e = 0; e < 4; e++) {\n"
                                "                w0 |= (unsigned)fe4m3(xv[e] / sc) << (8 * e);\n"
                                "                w1 |= (unsigned)fe4m3(xv[e + 4] / sc) << (8 * e);\n            }\n        }\n"
                                "        st8_codes(a.t[%d], i0, w0, w1);\n",
                      sq);
        else sb_printf(&G->decl, "#pragma unroll\n        for (int e = 0; e < 8; e++) S%d(a, i0 + e, sc > 0.0f ? fp8r(xv[e] / sc) : 0.0f);\n", sq);
    }
}

/* One vector pass over the chunks of sizes cnt[0..nsz) in turn (A: the merged act_scale of the one size's pass, NULL
 * none), storing every member of those sizes not yet done. False, with nothing emitted, where it does not apply. */
bool cg_vec_stores(Gen *G, const int *members, int nm, bool *done, const IrDim *cnt, int nsz, const IrNode *A) {
    if (!G->elem_vec || nsz < 1) return false;
    const IrNode *x = A ? A->ops[0] : NULL;
    if (A && (nsz != 1 || ir_node_attr_int(A, "block", 128) != 128 || G->dtype[A->id] != IR_DT_F32 || x->type.rank < 1 ||
              !is_const_mult(x->type.dims[x->type.rank - 1], 128) || !ir_dim_eq(ir_type_numel(&x->type), cnt[0])))
        return false;
    signed char *memo = calloc((size_t)G->g->nnodes + 1, 1);
    bool *emitted = calloc((size_t)G->g->nnodes + 1, 1), ok = memo && emitted && (!x || chunk_ok(G, x, memo));
    for (int j = 0; j < nsz && ok; j++) ok = is_const_mult(ir_dim_const(cnt[j].coeff), VEC) && pass_ok(G, members, nm, done, cnt[j], memo);
    if (!ok) {
        free(memo), free(emitted);
        return false;
    }
    IrDim unit = cnt[0];
    unit.coeff = VEC;
    int64_t chunks = 0;
    for (int j = 0; j < nsz && ok; j++) { /* sizes of one symbolic count, as emit_stores_one's */
        IrDim q;
        ok = ir_dim_div(cnt[j], unit, &q) && ir_dim_is_const(q);
        chunks += ok ? q.coeff : 0;
    }
    if (!ok) {
        free(memo), free(emitted);
        return false;
    }
    IrDim total = ir_dim_mul(unit, ir_dim_const(chunks));
    total.coeff /= VEC;
    const IrNode *q = NULL; /* the quantize of x by A: its codes from x's chunk */
    for (int k = 0; k < nm && A && !q; k++) {
        const IrNode *m = G->g->nodes[members[k]];
        if (!done[k] && m->op == IR_OP_QUANTIZE && m->ops[0] == x && m->ops[1] == A && ir_node_attr_int(m, "block", 128) == 128) q = m;
    }
    vec_helpers(G);
    if (x) emit_chunk(G, x, emitted, memo, NULL);
    for (int j = 0; j < nsz; j++)
        for (int k = 0; k < nm; k++) {
            const IrNode *m = G->g->nodes[members[k]];
            if (!done[k] && m != q && ir_dim_eq(ir_type_numel(&m->type), cnt[j])) emit_chunk(G, m, emitted, memo, NULL);
        }
    sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // %sstore: 8 elements a thread%s%s\n"
                        "    long long c = ITEM_ELEM();\n",
              cg_entry(G, G->nphases), A ? "act_scale and " : "", nsz > 1 ? ", the sizes in turn" : "", A ? ", a half-warp a 128-wide scale block" : "");
    for (int j = 0; j < nsz; j++) {
        IrDim cj = cnt[j];
        cj.coeff /= VEC;
        const char *n8 = cg_dim(G, cj);
        if (A) /* no early return: the half-warps' shuffles need the whole warp */
            sb_printf(&G->decl, "    const bool live = c < %s;\n    const long long i0 = (live ? c : 0) * 8;\n", n8), chunk_read(G, &G->decl, x, "i0", "xv");
        else sb_printf(&G->decl, "    if (c < %s) {\n        const long long i0 = c * 8;\n", n8);
        if (A) emit_vec_act(G, A, q);
        for (int k = 0; k < nm; k++) {
            const IrNode *m = G->g->nodes[members[k]];
            if (done[k] || !ir_dim_eq(ir_type_numel(&m->type), cnt[j])) continue;
            done[k] = true;
            if (m == q) continue;
            if (m == x) chunk_store(G, m, "xv");
            else {
                sb_puts(&G->decl, "        {\n");
                chunk_read(G, &G->decl, m, "i0", "v");
                chunk_store(G, m, "v");
                sb_puts(&G->decl, "        }\n");
            }
        }
        sb_printf(&G->decl, "        return;\n    }\n%s", j + 1 < nsz ? arena_printf(G->a, "    c -= %s;\n", n8) : "");
    }
    sb_puts(&G->decl, "}\n");
    cg_phase(G, CG_LAUNCH_ELEM, total, 1, ir_dim_const(1), 1, 0);
    free(memo), free(emitted);
    return true;
}

/* The embedding in chunks of 8 (the row's width a multiple of 8): the id read once a chunk, 16-byte copies. */
bool cg_vec_embedding(Gen *G, const IrNode *n) {
    const IrNode *tab = n->ops[0], *ids = n->ops[1];
    IrDim D = tab->type.dims[1], c8 = ir_type_numel(&n->type);
    if (!G->elem_vec || !is_const_mult(D, VEC) || c8.coeff % VEC || !load_ok(G, tab) || G->local[n->id] >= 0) return false;
    IrDType t = G->dtype[n->id];
    if ((G->kblock && G->kblock[n->id]) || (t != IR_DT_BF16 && t != IR_DT_F32 && t != IR_DT_FP8E4M3)) return false;
    c8.coeff /= VEC;
    vec_helpers(G);
    int st = cg_slot_value(G, tab), si = cg_slot_value(G, ids), so = cg_slot_value(G, n);
    cg_head(G, "embedding: 8 elements a thread");
    sb_printf(&G->decl, "    const long long c = ITEM_ELEM();\n    if (c >= %s) return;\n"
                        "    const long long D = %s, V = %s, i0 = c * 8;\n    const float id = L%d(a, i0 / D);\n    float v[8];\n"
                        "    if (!(id >= 0.0f && id < (float)V)) {\n        fail(a, id);\n"
                        "#pragma unroll\n        for (int e = 0; e < 8; e++) v[e] = 0.0f;\n"
                        "    } else ld8_%s(a.t[%d], (long long)id * D + i0 %% D, v);\n"
                        "    st8_%s(a.t[%d], i0, v);\n}\n",
              cg_dim(G, c8), cg_dim(G, D), cg_dim(G, tab->type.dims[0]), si, cg_stored_suffix(G, tab), st, cg_stored_suffix(G, n), so);
    cg_phase(G, CG_LAUNCH_ELEM, c8, 1, ir_dim_const(1), 1, 0);
    return true;
}

/* Puts fns (file-scope functions) ahead of the kernel being emitted: before the last entry point's opening in G->decl. */
static void hoist(Gen *G, const char *fns) {
    const char *at = NULL, *d = G->decl.data ? G->decl.data : "";
    for (const char *q = d; (q = strstr(q, "extern \"C\" __global__")); q++) at = q;
    if (!at) at = d + G->decl.len;
    StrBuf nb;
    sb_init(&nb);
    sb_putn(&nb, d, (size_t)(at - d));
    sb_puts(&nb, fns);
    sb_puts(&nb, at);
    sb_free(&G->decl);
    G->decl = nb;
}

/* A row kernel's store pass over the row's w elements (no merged act_scale) in chunks of 8, strided over the row's CTAs
 * and threads (gen_rows.c's form being emitted: G->rparts CTAs a row of G->rthreads threads). False, with nothing
 * emitted, where it does not apply (the element loop of cg_row_elems then runs). */
bool cg_vec_row_stores(Gen *G, const int *members, int nm, bool *done, IrDim cnt, int64_t w) {
    if (!G->elem_vec || !G->rthreads || w % VEC) return false;
    signed char *memo = calloc((size_t)G->g->nnodes + 1, 1);
    bool *emitted = calloc((size_t)G->g->nnodes + 1, 1), ok = memo && emitted && pass_ok(G, members, nm, done, cnt, memo);
    if (ok) {
        /* the chunk functions sit before the kernel: emitted into a buffer of their own, then put ahead of it */
        StrBuf body = G->decl, fns;
        sb_init(&fns);
        G->decl = fns;
        vec_helpers(G);
        for (int k = 0; k < nm; k++) {
            const IrNode *m = G->g->nodes[members[k]];
            if (!done[k] && ir_dim_eq(ir_type_numel(&m->type), cnt)) emit_chunk(G, m, emitted, memo, &body);
        }
        fns = G->decl, G->decl = body;
        hoist(G, fns.data ? fns.data : "");
        sb_free(&fns);
        sb_printf(&G->decl, "    for (long long ch = row * %lldLL + part * %d + threadIdx.x; ch < (row + 1) * %lldLL; ch += %d) {  "
                            "// store: the row over its CTAs, 8 elements a thread\n        const long long i0 = ch * 8;\n",
                  (long long)(w / VEC), G->rthreads, (long long)(w / VEC), G->rparts * G->rthreads);
        for (int k = 0; k < nm; k++) {
            const IrNode *m = G->g->nodes[members[k]];
            if (done[k] || !ir_dim_eq(ir_type_numel(&m->type), cnt)) continue;
            done[k] = true;
            sb_puts(&G->decl, "        {\n");
            chunk_read(G, &G->decl, m, "i0", "v"); /* the kept row (RX) where m is it */
            chunk_store(G, m, "v");
            sb_puts(&G->decl, "        }\n");
        }
        sb_puts(&G->decl, "    }\n");
    }
    free(memo), free(emitted);
    return ok;
}
