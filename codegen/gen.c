/* gen.c — the group planner and the fused (inlined) kernels; templates for
 * GEMMs, attention, routing and data movement are in gen_ops.c. See gen.h
 * for the scheme. */
#include "codegen/gen_internal.h"
#include "codegen/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the prelude every module starts with (after args.cuh) --------------- */

static const char PRELUDE[] =
    "// dtype conversions, loads and stores, warp reductions (no headers: NVRTC compiles this alone)\n"
    "__device__ __forceinline__ float bf2f(unsigned short h) { return __uint_as_float((unsigned)h << 16); }\n"
    "__device__ __forceinline__ unsigned short f2bf(float f) {            // nearest even\n"
    "    unsigned u = __float_as_uint(f);\n"
    "    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);\n"
    "    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);\n"
    "}\n"
    "__device__ __forceinline__ float h2f(unsigned short h) { float f; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h)); return f; }\n"
    "__device__ __forceinline__ unsigned short f2h(float f) { unsigned short h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f)); return h; }\n"
    "__device__ __forceinline__ float e4m3f(unsigned char b) {             // OCP E4M3 -> f32\n"
    "    unsigned e = (b >> 3) & 15u, m = b & 7u;\n"
    "    float v = e == 15u && m == 7u ? __uint_as_float(0x7fc00000u)\n"
    "            : e == 0u ? (float)m * 0.001953125f : __uint_as_float(((e + 120u) << 23) | (m << 20));\n"
    "    return (b & 0x80u) ? -v : v;\n"
    "}\n"
    "__device__ __forceinline__ unsigned char fe4m3(float f) {             // nearest even, saturating\n"
    "    unsigned short r;\n"
    "    asm(\"cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\" : \"=h\"(r) : \"f\"(0.0f), \"f\"(f));\n"
    "    return (unsigned char)(r & 0xffu);\n"
    "}\n"
    "__device__ __forceinline__ float fp8r(float f) { return e4m3f(fe4m3(f)); }\n"
    "__device__ __forceinline__ float ld_f32(u64 p, long long i) { return ((const float *)p)[i]; }\n"
    "__device__ __forceinline__ float ld_bf16(u64 p, long long i) { return bf2f(((const unsigned short *)p)[i]); }\n"
    "__device__ __forceinline__ float ld_f16(u64 p, long long i) { return h2f(((const unsigned short *)p)[i]); }\n"
    "__device__ __forceinline__ float ld_fp8e4m3(u64 p, long long i) { return e4m3f(((const unsigned char *)p)[i]); }\n"
    "__device__ __forceinline__ float ld_i32(u64 p, long long i) { return (float)((const int *)p)[i]; }\n"
    "__device__ __forceinline__ float ld_i64(u64 p, long long i) { return (float)((const long long *)p)[i]; }\n"
    "__device__ __forceinline__ void st_f32(u64 p, long long i, float v) { ((float *)p)[i] = v; }\n"
    "__device__ __forceinline__ void st_bf16(u64 p, long long i, float v) { ((unsigned short *)p)[i] = f2bf(v); }\n"
    "__device__ __forceinline__ void st_f16(u64 p, long long i, float v) { ((unsigned short *)p)[i] = f2h(v); }\n"
    "__device__ __forceinline__ void st_fp8e4m3(u64 p, long long i, float v) { ((unsigned char *)p)[i] = fe4m3(v); }\n"
    "__device__ __forceinline__ void st_i32(u64 p, long long i, float v) { ((int *)p)[i] = (int)v; }\n"
    "__device__ __forceinline__ void st_i64(u64 p, long long i, float v) { ((long long *)p)[i] = (long long)v; }\n"
    "__device__ __forceinline__ float wsum(float v) {\n"
    "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
    "    return v;\n"
    "}\n"
    "__device__ __forceinline__ float wmax(float v) {\n"
    "    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));\n"
    "    return v;\n"
    "}\n"
    "// a data error (an index out of range): the first one is kept for the host to report\n"
    "__device__ void fail(const Args &a, float v) {\n"
    "    int *e = (int *)a.err;\n"
    "    if (atomicCAS(e, 0, (int)a.tag + 1) == 0) e[1] = (int)v;\n"
    "}\n"
    "#define ITEM_ELEM() (long long)blockIdx.x * 256 + threadIdx.x\n"
    "#define ITEM_WARP() (long long)blockIdx.x * 8 + (threadIdx.x >> 5)\n"
    "#define LANE() (int)(threadIdx.x & 31)\n";

/* ---- small helpers ----------------------------------------------------- */

const char *cg_dim(Gen *G, IrDim d) {
    StrBuf sb;
    sb_init(&sb);
    sb_printf(&sb, "(%lldLL", (long long)d.coeff);
    for (int s = 0; s < IR_MAX_DIM_SYMS; s++)
        for (int e = 0; e < d.exp[s]; e++) sb_printf(&sb, "*a.sym[%d]", s);
    sb_putc(&sb, ')');
    char *r = arena_strdup(G->a, sb.data);
    sb_free(&sb);
    return r;
}

IrDim cg_numel(const IrType *t) { return ir_type_numel(t); }

IrDim cg_suffix(const IrType *t, int from) {
    IrDim d = ir_dim_const(1);
    for (int i = from; i < t->rank; i++) d = ir_dim_mul(d, t->dims[i]);
    return d;
}

IrDim cg_prefix(const IrType *t, int upto) {
    IrDim d = ir_dim_const(1);
    for (int i = 0; i < upto; i++) d = ir_dim_mul(d, t->dims[i]);
    return d;
}

int cg_axis(int64_t axis, int rank) { return (int)(axis < 0 ? axis + rank : axis); }

static const char *dt_suffix(IrDType t) { return ir_dtype_name(t); }

const char *cg_stored_suffix(Gen *G, const IrNode *n) { return dt_suffix(G->dtype[n->id]); }

static bool is_cache(const IrNode *n) { return n->op == IR_OP_KV_CACHE; }

/* The loader of a stored value: L<slot>(a, flat index) -> f32. A cache is
 * [B, cap, ...] in memory but [B, T, ...] as a value. */
static void emit_loader(Gen *G, int s, const IrNode *n) {
    if (is_cache(n)) {
        IrDim per = cg_suffix(&n->type, 2);
        sb_printf(&G->ldr,
                  "__device__ __forceinline__ float L%d(const Args &a, long long i) {\n"
                  "    const long long per = %s, T = %s, bt = i / per;\n"
                  "    return ld_%s(a.t[%d], ((bt / T) * a.cap + bt %% T) * per + i %% per);\n}\n",
                  s, cg_dim(G, per), cg_dim(G, n->type.dims[1]), cg_stored_suffix(G, n), s);
        return;
    }
    if (G->kblock && G->kblock[n->id]) { /* flat index i = m * nkb + kb of [M][nkb], stored at kb * M + m */
        IrDim nkb = n->type.dims[n->type.rank - 1], M;
        ir_dim_div(ir_type_numel(&n->type), nkb, &M);
        const char *at = arena_printf(G->a, "i %% %lldLL * %s + i / %lldLL", (long long)nkb.coeff, cg_dim(G, M), (long long)nkb.coeff);
        sb_printf(&G->ldr,
                  "__device__ __forceinline__ float L%d(const Args &a, long long i) { return ld_f32(a.t[%d], %s); }  // K-block-major\n"
                  "__device__ __forceinline__ void S%d(const Args &a, long long i, float v) { st_f32(a.t[%d], %s, v); }\n",
                  s, s, at, s, s, at);
        return;
    }
    sb_printf(&G->ldr, "__device__ __forceinline__ float L%d(const Args &a, long long i) { return ld_%s(a.t[%d], i); }\n", s,
              cg_stored_suffix(G, n), s);
    sb_printf(&G->ldr, "__device__ __forceinline__ void S%d(const Args &a, long long i, float v) { st_%s(a.t[%d], i, v); }\n", s,
              cg_stored_suffix(G, n), s);
}

int cg_slot_value(Gen *G, const IrNode *n) {
    for (int s = 0; s < G->nslots; s++)
        if (G->slots[s].node == n->id && G->slots[s].kind == CG_SLOT_VALUE) return s;
    if (G->nslots == CG_MAX_SLOTS) {
        G->failed = true;
        return 0;
    }
    int s = G->nslots++;
    G->slots[s] = (CgSlot){n->id, CG_SLOT_VALUE, ir_dim_const(0)};
    emit_loader(G, s, n);
    return s;
}

const char *cg_scale_at(Gen *G, int s, const char *m, const char *kb) {
    const IrNode *n = G->g->nodes[G->slots[s].node];
    IrDim nkb = n->type.dims[n->type.rank - 1], M;
    if (!G->kblock || !G->kblock[n->id] || !ir_dim_div(ir_type_numel(&n->type), nkb, &M))
        return arena_printf(G->a, "L%d(a, (long long)(%s) * %s + (%s))", s, m, cg_dim(G, nkb), kb);
    return arena_printf(G->a, "ld_f32(a.t[%d], (long long)(%s) * %s + (%s))", s, kb, cg_dim(G, M), m);
}

int cg_slot_result(Gen *G, const IrNode *n) {
    return cg_slot_value(G, G->epi && G->epi[n->id] >= 0 ? G->g->nodes[G->epi[n->id]] : n);
}

int cg_slot_scratch(Gen *G, const IrNode *n, IrDim count) {
    if (G->nslots == CG_MAX_SLOTS) {
        G->failed = true;
        return 0;
    }
    int s = G->nslots++;
    G->slots[s] = (CgSlot){n->id, CG_SLOT_SCRATCH, count};
    return s;
}

/* Reads node m at flat index `idx` from inside the group being generated. */
const char *cg_read(Gen *G, const IrNode *m, const char *idx) {
    if (m == G->rowc) return arena_printf(G->a, "RX(%s)", idx); /* in shared memory (emit_row_kernel) */
    if (G->local[m->id] >= 0) return arena_printf(G->a, "v%d(a, %s)", G->local[m->id], idx);
    return arena_printf(G->a, "L%d(a, %s)", cg_slot_value(G, m), idx);
}

const char *cg_entry(Gen *G, int ph) { return arena_printf(G->a, "p%d_%s", ph, G->stem ? G->stem : "group"); }

void cg_phase(Gen *G, CgLaunchMode mode, IrDim a, int64_t da, IrDim b, int64_t db, int64_t smem) {
    CgPhase *p = &G->phases[G->nphases];
    *p = (CgPhase){.fn = G->next_fn ? G->next_fn : cg_entry(G, G->nphases), .mode = mode, .a = a, .b = b, .da = da, .db = db, .smem = smem,
                   .rule = CG_ITEMS_GRID};
    G->nphases++;
    G->next_fn = NULL;
}

void cg_phase_keys(Gen *G, CgItems rule, IrDim B, IrDim S, IrDim T, int64_t Hq, int64_t Dv) {
    CgPhase *p = &G->phases[G->nphases - 1];
    p->rule = rule;
    p->kb = B, p->ks = S, p->kt = T, p->khq = Hq, p->kdv = Dv;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t cg_phase_items(const CgPhase *f, const int64_t *sym) {
    int64_t a = ir_dim_eval(f->a, sym);
    if ((f->amin > 0 && a <= f->amin) || (f->amax > 0 && a > f->amax)) return 0;
    int64_t grid = (ceil_div(a, f->da) + (f->plus < a ? f->plus : a)) * ceil_div(ir_dim_eval(f->b, sym), f->db);
    if (f->rule == CG_ITEMS_GRID) return grid;
    if (f->rule == CG_ITEMS_K_WHOLE || f->rule == CG_ITEMS_K_SPLIT || f->rule == CG_ITEMS_K_SUM) {
        /* the tiles the split is counted over: the output tiles, times the row tiles of a grouped GEMM (plus > 0) */
        int64_t b = ir_dim_eval(f->b, sym), nt = ceil_div(b, f->db), n = cg_k_splits(a, f->plus ? grid : nt, f->knb);
        if (f->rule == CG_ITEMS_K_WHOLE) return n == 1 ? grid : 0;
        if (f->rule == CG_ITEMS_K_SPLIT) return n > 1 ? n * grid : 0;
        return n > 1 ? a * b : 0;
    }
    int64_t B = ir_dim_eval(f->kb, sym), S = ir_dim_eval(f->ks, sym), T = ir_dim_eval(f->kt, sym);
    if (f->rule == CG_ITEMS_MLA_DECODE || f->rule == CG_ITEMS_MLA_COMBINE) {
        int64_t m = cg_mla_splits(S, B, f->khq, T);
        if (S > f->knb) return 0;
        return f->rule == CG_ITEMS_MLA_DECODE ? B * ceil_div(S * f->khq, 64) * m : m > 1 && m > f->kfuse ? B * S * f->khq * 128 : 0;
    }
    if (f->knb > 0 && S <= f->knb) return 0; /* MLA's decode kernel takes this step */
    int64_t n = cg_key_splits(S, B, f->khq, T);
    switch (f->rule) {
    case CG_ITEMS_KEYS_WHOLE: return n == 1 ? grid : 0;
    case CG_ITEMS_KEYS_SPLIT: return n > 1 ? B * ceil_div(S * f->khq, 64) * n : 0;
    case CG_ITEMS_KEYS_MERGE: return n > 1 ? B * f->khq * f->kdv : 0;
    default: IR_UNREACHABLE();
    }
}

/* ---- inlined values ---------------------------------------------------- */

static bool is_literal_one(IrDim d) { return ir_dim_is_const(d) && d.coeff == 1; }

/* Flat index into operand `op` (broadcast to `out`) of output index i. */
const char *cg_bcast_index(Gen *G, StrBuf *f, const IrType *out, const IrType *op, int which) {
    if (op->rank == 0) return "0LL";
    if (ir_type_numel(op).coeff == ir_type_numel(out).coeff && op->rank == out->rank) {
        bool same = true;
        for (int k = 0; k < op->rank; k++) same = same && ir_dim_eq(op->dims[k], out->dims[k]);
        if (same) return "i";
    }
    sb_printf(f, "    long long i%d = 0;\n    { long long r = i, s = 1;\n", which);
    for (int k = out->rank - 1; k >= 0; k--) {
        int ko = k - (out->rank - op->rank);
        const char *dk = cg_dim(G, out->dims[k]);
        if (ko < 0 || is_literal_one(op->dims[ko])) {
            if (k > 0) sb_printf(f, "      r /= %s;\n", dk);
            continue;
        }
        if (k == 0) /* i < numel(out): what is left of r is the outermost index itself */
            sb_printf(f, "      i%d += r * s;\n", which);
        else sb_printf(f, "      i%d += (r %% %s) * s; r /= %s; s *= %s;\n", which, dk, dk, cg_dim(G, op->dims[ko]));
    }
    sb_puts(f, "    }\n");
    return arena_printf(G->a, "i%d", which);
}

static const char *unary_expr(Gen *G, IrOp op, const char *x) {
    switch (op) {
    case IR_OP_SIGMOID: return arena_printf(G->a, "1.0f / (1.0f + expf(-(%s)))", x);
    case IR_OP_SILU: return arena_printf(G->a, "x / (1.0f + expf(-x))");
    case IR_OP_EXP: return arena_printf(G->a, "expf(%s)", x);
    case IR_OP_NEG: return arena_printf(G->a, "-(%s)", x);
    case IR_OP_SQRT: return arena_printf(G->a, "sqrtf(%s)", x);
    case IR_OP_RSQRT: return arena_printf(G->a, "1.0f / sqrtf(%s)", x);
    default: IR_UNREACHABLE();
    }
}

/* A sum over a short axis of known length (MoE's combine of a token's 8
 * experts, [T, 8, 7168] -> [T, 7168]; the 8 routing weights): inlined as a
 * loop in its value function, one thread per output element, its reads
 * coalesced across the threads, instead of one warp per output element
 * with 24 of its 32 lanes idle and a pass through scratch. */
#define CG_SUM_INLINE_MAX 32
bool cg_sum_inline(const IrNode *n) {
    if (n->op != IR_OP_SUM) return false;
    const IrType *t = &n->ops[0]->type;
    IrDim d = t->dims[cg_axis(ir_node_attr_int(n, "axis", -1), t->rank)];
    return ir_dim_is_const(d) && d.coeff <= CG_SUM_INLINE_MAX;
}

/* Whether n gets a reduction phase (emit_reduction) before the group's value functions. */
bool cg_has_reduction_phase(const IrNode *n) {
    return ir_op_class(n->op) == IR_CLASS_REDUCTION && !cg_sum_inline(n);
}

/* The device function v<local>(a, i): node n's value at flat index i. */
static void emit_value(Gen *G, const IrNode *n) {
    int me = G->local[n->id];
    StrBuf f;
    sb_init(&f);
    const IrNode *x = n->nops ? n->ops[0] : NULL;
    const char *ret = NULL;
    switch (n->op) {
    case IR_OP_CONST: {
        char num[64];
        snprintf(num, sizeof num, "%.9g", (double)(float)ir_node_attr_float(n, "value", 0));
        ret = arena_printf(G->a, "%sf", strchr(num, '.') || strchr(num, 'e') || strchr(num, 'n') ? num : arena_printf(G->a, "%s.0", num));
        if (isinf(ir_node_attr_float(n, "value", 0))) ret = ir_node_attr_float(n, "value", 0) > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)";
        break;
    }
    case IR_OP_RESHAPE: ret = cg_read(G, x, "i"); break;
    case IR_OP_CAST:
        ret = ir_dtype_is_int(n->type.dtype) ? arena_printf(G->a, "truncf(%s)", cg_read(G, x, "i")) : cg_read(G, x, "i");
        break;
    case IR_OP_SIGMOID: case IR_OP_EXP: case IR_OP_NEG: case IR_OP_SQRT: case IR_OP_RSQRT: case IR_OP_SILU:
        sb_printf(&f, "    const float x = %s;\n", cg_read(G, x, "i"));
        ret = unary_expr(G, n->op, "x");
        break;
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAX: {
        const char *ia = cg_bcast_index(G, &f, &n->type, &n->ops[0]->type, 0);
        const char *ib = cg_bcast_index(G, &f, &n->type, &n->ops[1]->type, 1);
        sb_printf(&f, "    const float x = %s, y = %s;\n", cg_read(G, n->ops[0], ia), cg_read(G, n->ops[1], ib));
        ret = n->op == IR_OP_ADD ? "x + y" : n->op == IR_OP_SUB ? "x - y" : n->op == IR_OP_MUL ? "x * y"
            : n->op == IR_OP_DIV ? "x / y" : "fmaxf(x, y)";
        break;
    }
    case IR_OP_FRESH_SELECT: /* a.len: positions cached before this step; only the chosen operand is read */
        ret = arena_printf(G->a, "a.len == 0 ? %s : %s", cg_read(G, n->ops[0], "i"), cg_read(G, n->ops[1], "i"));
        break;
    case IR_OP_RMSNORM: {
        const char *D = cg_dim(G, x->type.dims[x->type.rank - 1]);
        sb_printf(&f, "    const long long D = %s;\n", D);
        if (G->rowd && n == G->rown) /* a wide row kernel's: the CTA's row statistic (and weight) in shared memory */
            ret = arena_printf(G->a, "%s * (%s * rstat)", G->rowg ? "RG(i)" : cg_read(G, n->ops[1], "i % D"), cg_read(G, x, "i"));
        else
            ret = arena_printf(G->a, "%s * (%s * ld_f32(a.t[%d], i / D))", cg_read(G, n->ops[1], "i % D"), cg_read(G, x, "i"),
                               G->stat[n->id]);
        break;
    }
    case IR_OP_SOFTMAX: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", -1), x->type.rank);
        sb_printf(&f, "    const long long mid = %s, inner = %s, items = %s;\n", cg_dim(G, x->type.dims[ax]),
                  cg_dim(G, cg_suffix(&x->type, ax + 1)), cg_dim(G, ir_type_numel(&x->type)));
        sb_printf(&f, "    const long long it = i / (mid * inner) * inner + i %% inner;\n");
        ret = arena_printf(G->a, "expf(%s - ld_f32(a.t[%d], it)) / ld_f32(a.t[%d], it + items / mid)", cg_read(G, x, "i"),
                           G->stat[n->id], G->stat[n->id]);
        break;
    }
    case IR_OP_SUM:
        if (cg_sum_inline(n)) {
            int ax = cg_axis(ir_node_attr_int(n, "axis", -1), x->type.rank);
            sb_printf(&f, "    const long long mid = %s, inner = %s, base = i / inner * mid * inner + i %% inner;\n"
                          "    float acc = 0.0f;\n"
                          "#pragma unroll\n"
                          "    for (long long j = 0; j < mid; j++) acc += %s;\n",
                      cg_dim(G, x->type.dims[ax]), cg_dim(G, cg_suffix(&x->type, ax + 1)), cg_read(G, x, "base + j * inner"));
            ret = "acc";
            break;
        }
        ret = arena_printf(G->a, "ld_f32(a.t[%d], i)", G->stat[n->id]);
        break;
    case IR_OP_ACT_SCALE: /* stored: through its slot's loader, which knows the layout */
        ret = G->stored[n->id] ? arena_printf(G->a, "L%d(a, i)", G->stat[n->id]) : arena_printf(G->a, "ld_f32(a.t[%d], i)", G->stat[n->id]);
        break;
    case IR_OP_QUANTIZE: {
        int64_t b = ir_node_attr_int(n, "block", 128);
        sb_printf(&f, "    const long long K = %s, nkb = (K + %lld) / %lld;\n", cg_dim(G, x->type.dims[x->type.rank - 1]),
                  (long long)b - 1, (long long)b);
        sb_printf(&f, "    const float s = %s;\n",
                  cg_read(G, n->ops[1], arena_printf(G->a, "i / K * nkb + i %% K / %lld", (long long)b)));
        ret = arena_printf(G->a, "s > 0.0f ? fp8r(%s / s) : 0.0f", cg_read(G, x, "i"));
        break;
    }
    case IR_OP_SLICE: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", 0), x->type.rank);
        sb_printf(&f, "    const long long inner = %s, len = %s, mid = %s;\n", cg_dim(G, cg_suffix(&x->type, ax + 1)),
                  cg_dim(G, n->type.dims[ax]), cg_dim(G, x->type.dims[ax]));
        int64_t start = ir_node_attr_int(n, "start", 0); /* negative: counted from the axis end */
        ret = cg_read(G, x, arena_printf(G->a, "(i / (inner * len) * mid + %s%lldLL + i / inner %% len) * inner + i %% inner",
                                         start < 0 ? "mid + " : "", (long long)start));
        break;
    }
    case IR_OP_CONCAT: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", 0), n->type.rank);
        sb_printf(&f, "    const long long inner = %s, mid = %s, c = i / inner %% mid, o = i / (inner * mid);\n",
                  cg_dim(G, cg_suffix(&n->type, ax + 1)), cg_dim(G, n->type.dims[ax]));
        int64_t at = 0;
        for (int k = 0; k < n->nops; k++) {
            int64_t m = n->ops[k]->type.dims[ax].coeff;
            sb_printf(&f, "    if (c < %lldLL) return %s;\n", (long long)(at + m),
                      cg_read(G, n->ops[k], arena_printf(G->a, "(o * %lldLL + c - %lldLL) * inner + i %% inner", (long long)m, (long long)at)));
            at += m;
        }
        ret = "0.0f";
        break;
    }
    case IR_OP_TRANSPOSE: {
        const IrAttr *perm = ir_node_attr(n, "perm");
        sb_puts(&f, "    long long r = i, j = 0;\n");
        for (int k = n->type.rank - 1; k >= 0; k--) {
            int p = (int)perm->u.ints.v[k];
            sb_printf(&f, "    j += (r %% %s) * %s; r /= %s;\n", cg_dim(G, n->type.dims[k]), cg_dim(G, cg_suffix(&x->type, p + 1)),
                      cg_dim(G, n->type.dims[k]));
        }
        ret = cg_read(G, x, "j");
        break;
    }
    case IR_OP_ROPE: {
        int64_t d = x->type.dims[x->type.rank - 1].coeff;
        double *inv = malloc(sizeof(double) * (size_t)(d / 2 + 1));
        double af = ir_rope_freqs(n, d, inv);
        sb_printf(&G->decl, "__device__ const float inv%d[%lld] = {", me, (long long)(d / 2));
        for (int64_t k = 0; k < d / 2; k++) sb_printf(&G->decl, "%s%.9ef", k ? ", " : "", (double)(float)inv[k]);
        sb_puts(&G->decl, "};\n");
        free(inv);
        bool inter = ir_node_attr_bool(n, "interleave", false);
        sb_printf(&f, "    const long long d = %lldLL, j = i %% d, row = i - j, per = %s;\n", (long long)d,
                  cg_dim(G, cg_suffix(&x->type, 2)));
        if (inter) sb_puts(&f, "    const long long i0 = j & ~1LL, i1 = i0 + 1, fi = j >> 1;\n");
        else sb_puts(&f, "    const long long fi = j % (d / 2), i0 = fi, i1 = fi + d / 2;\n");
        sb_printf(&f, "    const float p = %s, ang = p * inv%d[fi];\n", cg_read(G, n->ops[1], "i / per"), me);
        sb_printf(&f, "    const float cs = cosf(ang) * %.9ef, sn = sinf(ang) * %.9ef;\n", (double)(float)af, (double)(float)af);
        sb_printf(&f, "    const float x0 = %s, x1 = %s;\n", cg_read(G, x, "row + i0"), cg_read(G, x, "row + i1"));
        ret = "j == i0 ? x0 * cs - x1 * sn : x1 * cs + x0 * sn";
        break;
    }
    default: IR_UNREACHABLE();
    }
    sb_printf(&G->decl, "__device__ __forceinline__ float v%d(const Args &a, long long i) {  // %s\n%s    return %s;\n}\n", me,
              ir_op_name(n->op), f.data ? f.data : "", ret);
    sb_free(&f);
}

void cg_emit_value(Gen *G, const IrNode *n) { emit_value(G, n); }

/* One warp per reduced item of a reduction node: its statistics (or, for
 * sum and act_scale, its value) into a scratch or stored slot. */
static void emit_reduction(Gen *G, const IrNode *n) {
    const IrNode *x = n->ops[0];
    int rank = x->type.rank;
    IrDim items;
    StrBuf *b = &G->decl;
    if (n == G->act) { /* its amax is taken in the store pass (emit_stores); its slot now, for the v-functions */
        G->stat[n->id] = G->stored[n->id] ? cg_slot_value(G, n) : cg_slot_scratch(G, n, ir_type_numel(&n->type));
        return;
    }
    int ph = G->nphases;
    if (n->op == IR_OP_RMSNORM && ir_dim_is_const(x->type.dims[rank - 1]) && x->type.dims[rank - 1].coeff >= 512) {
        /* a long row (V3's hidden 7,168, q_a's 1,536, the latent's 512): one block per row, so a decode step's few rows do not
         * leave a single warp each to walk thousands of elements */
        IrDim D = x->type.dims[rank - 1];
        ir_dim_div(ir_type_numel(&x->type), D, &items);
        G->stat[n->id] = cg_slot_scratch(G, n, items);
        sb_printf(b, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // rmsnorm: one block per row\n", cg_entry(G, ph));
        sb_printf(b, "    const long long it = blockIdx.x, D = %s;\n    if (it >= %s) return;  // the whole block\n", cg_dim(G, D), cg_dim(G, items));
        sb_printf(b, "    __shared__ float red[8];\n"
                     "    float ss = 0.0f;\n    for (long long j = threadIdx.x; j < D; j += 256) { const float v = %s; ss += v * v; }\n",
                  cg_read(G, x, "it * D + j"));
        sb_printf(b, "    ss = wsum(ss);\n"
                     "    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;\n"
                     "    __syncthreads();\n"
                     "    if (threadIdx.x == 0) {\n"
                     "        float t = 0.0f;\n"
                     "        for (int w = 0; w < 8; w++) t += red[w];\n"
                     "        st_f32(a.t[%d], it, 1.0f / sqrtf(t / (float)D + %.9ef));\n"
                     "    }\n}\n",
                  G->stat[n->id], (double)(float)ir_node_attr_float(n, "eps", 1e-6));
        cg_phase(G, CG_LAUNCH_BLOCK, items, 1, ir_dim_const(1), 1, 0);
        return;
    }
    sb_printf(b, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // %s\n", cg_entry(G, ph), ir_op_name(n->op));
    sb_puts(b, "    const long long it = ITEM_WARP(); const int lane = LANE();\n");
    switch (n->op) {
    case IR_OP_RMSNORM: {
        IrDim D = x->type.dims[rank - 1];
        ir_dim_div(ir_type_numel(&x->type), D, &items);
        G->stat[n->id] = cg_slot_scratch(G, n, items);
        sb_printf(b, "    const long long D = %s;\n    if (it >= %s) return;\n", cg_dim(G, D), cg_dim(G, items));
        sb_printf(b, "    float ss = 0.0f;\n    for (long long j = lane; j < D; j += 32) { const float v = %s; ss += v * v; }\n",
                  cg_read(G, x, "it * D + j"));
        sb_printf(b, "    ss = wsum(ss);\n    if (lane == 0) st_f32(a.t[%d], it, 1.0f / sqrtf(ss / (float)D + %.9ef));\n",
                  G->stat[n->id], (double)(float)ir_node_attr_float(n, "eps", 1e-6));
        break;
    }
    case IR_OP_SOFTMAX: case IR_OP_SUM: {
        int ax = cg_axis(ir_node_attr_int(n, "axis", -1), rank);
        ir_dim_div(ir_type_numel(&x->type), x->type.dims[ax], &items);
        bool sm = n->op == IR_OP_SOFTMAX;
        int s = sm ? cg_slot_scratch(G, n, ir_dim_mul(items, ir_dim_const(2)))
                   : G->stored[n->id] ? cg_slot_value(G, n) : cg_slot_scratch(G, n, items);
        G->stat[n->id] = s;
        sb_printf(b, "    const long long mid = %s, inner = %s, items = %s;\n    if (it >= items) return;\n",
                  cg_dim(G, x->type.dims[ax]), cg_dim(G, cg_suffix(&x->type, ax + 1)), cg_dim(G, items));
        sb_puts(b, "    const long long base = it / inner * mid * inner + it % inner;\n");
        const char *v = cg_read(G, x, "base + j * inner");
        if (!sm) {
            sb_printf(b, "    float acc = 0.0f;\n    for (long long j = lane; j < mid; j += 32) acc += %s;\n", v);
            sb_printf(b, "    acc = wsum(acc);\n    if (lane == 0) %s;\n",
                      G->stored[n->id] ? arena_printf(G->a, "S%d(a, it, acc)", s) : arena_printf(G->a, "st_f32(a.t[%d], it, acc)", s));
            break;
        }
        sb_printf(b, "    float mx = __int_as_float(0xff800000);\n    for (long long j = lane; j < mid; j += 32) mx = fmaxf(mx, %s);\n", v);
        sb_printf(b, "    mx = wmax(mx);\n    float acc = 0.0f;\n    for (long long j = lane; j < mid; j += 32) acc += expf(%s - mx);\n", v);
        sb_printf(b, "    acc = wsum(acc);\n    if (lane == 0) { st_f32(a.t[%d], it, mx); st_f32(a.t[%d], it + items, acc); }\n", s, s);
        break;
    }
    case IR_OP_ACT_SCALE: {
        int64_t blk = ir_node_attr_int(n, "block", 128);
        items = ir_type_numel(&n->type);
        int s = G->stored[n->id] ? cg_slot_value(G, n) : cg_slot_scratch(G, n, items);
        G->stat[n->id] = s;
        sb_printf(b, "    const long long K = %s, nkb = (K + %lld) / %lld;\n    if (it >= %s) return;\n",
                  cg_dim(G, x->type.dims[rank - 1]), (long long)blk - 1, (long long)blk, cg_dim(G, items));
        sb_printf(b, "    const long long k0 = it %% nkb * %lld, base = it / nkb * K + k0, n = K - k0 < %lld ? K - k0 : %lld;\n",
                  (long long)blk, (long long)blk, (long long)blk);
        sb_printf(b, "    float m = 0.0f;\n    for (long long j = lane; j < n; j += 32) m = fmaxf(m, fabsf(%s));\n",
                  cg_read(G, x, "base + j"));
        sb_printf(b, "    m = wmax(m);\n    if (lane == 0) %s;\n",
                  G->stored[n->id] ? arena_printf(G->a, "S%d(a, it, m / 448.0f)", s) : arena_printf(G->a, "st_f32(a.t[%d], it, m / 448.0f)", s));
        break;
    }
    default: IR_UNREACHABLE();
    }
    sb_puts(b, "}\n");
    cg_phase(G, CG_LAUNCH_WARP, items, 1, ir_dim_const(1), 1, 0);
}

/* Members the store passes write: stored, inlined values (sum and
 * act_scale wrote theirs in their reduction phase). */
static bool needs_store(const Gen *G, const IrNode *n) {
    return G->local[n->id] >= 0 && G->stored[n->id] && (n->op != IR_OP_SUM || cg_sum_inline(n)) && n->op != IR_OP_ACT_SCALE &&
           G->epi[n->id] != -2; /* a cast its GEMM writes */
}

/* The store of member m at flat index i (indented by `ind`): its slot, and
 * the KV cache it is appended to when the group took that cache in
 * (Gen.cache_of), at position a.len + s of its row. */
static void emit_store_stmt(Gen *G, const IrNode *m, const char *ind) {
    const IrNode *kv = G->cache_of && G->cache_of[m->id] >= 0 ? G->g->nodes[G->cache_of[m->id]] : NULL;
    const char *v = m == G->rowc ? "RX(i)" : arena_printf(G->a, "v%d(a, i)", G->local[m->id]);
    if (!kv) {
        sb_printf(&G->decl, "%sS%d(a, i, %s);\n", ind, cg_slot_value(G, m), v);
        return;
    }
    sb_printf(&G->decl, "%s{\n%s    const float cv = %s;\n%s    S%d(a, i, cv);\n", ind, ind, v, ind, cg_slot_value(G, m));
    sb_printf(&G->decl, "%s    const long long per = %s, S = %s, bs = i / per;  // appended to the cache\n"
                        "%s    st_%s(a.t[%d], ((bs / S) * a.cap + a.len + bs %% S) * per + i %% per, cv);\n%s}\n",
              ind, cg_dim(G, cg_suffix(&m->type, 2)), cg_dim(G, m->type.dims[1]), ind, cg_stored_suffix(G, kv), cg_slot_value(G, kv), ind);
}


/* One elementwise pass per distinct size, writing every member of that size
 * that needs storing. `done` (nm flags) is scratch. With rows (a row
 * kernel, see row_norm), each pass is a loop over the elements (or scale
 * blocks) of the block's row `row` inside that kernel instead of a phase. */
void cg_emit_stores(Gen *G, const int *members, int nm, bool *done, const IrDim *rows) {
    for (int k = 0; k < nm; k++) done[k] = !needs_store(G, G->g->nodes[members[k]]);
    for (int k = 0; k < nm; k++) {
        if (done[k]) continue;
        IrDim cnt = ir_type_numel(&G->g->nodes[members[k]]->type);
        const IrNode *A = G->act && ir_dim_eq(ir_type_numel(&G->act->ops[0]->type), cnt) ? G->act : NULL;
        /* the merged pass keeps a lane's values of x in registers (blocks of 32 x up to 8) and its scale
         * from the warp's max, so x is computed once and the scale is not read back from memory */
        if (!rows && cg_vec_stores(G, members, nm, done, &cnt, 1, A)) { /* the vector form (gen_vec.c) */
            if (A) G->act = NULL;
            continue;
        }
        int64_t blk = A ? ir_node_attr_int(A, "block", 128) : 0, per = blk / 32;
        bool cache = A && blk % 32 == 0 && per >= 1 && per <= 8 && G->dtype[A->id] == IR_DT_F32;
        if (A) { /* one warp per scale block: its amax, its scale, then its elements */
            const IrNode *x = A->ops[0];
            int s = G->stat[A->id];
            IrDim rb;
            if (rows && ir_dim_div(ir_type_numel(&A->type), *rows, &rb)) { /* the row's scale blocks, a warp each */
                cg_row_blocks(G, rb.coeff, ir_dim_eq(cnt, ir_dim_mul(*rows, ir_dim_const(G->rowd))));
                sb_printf(&G->decl, "    const int lane = LANE();\n    const long long K = %s, nkb = (K + %lld) / %lld;\n",
                          cg_dim(G, x->type.dims[x->type.rank - 1]), (long long)blk - 1, (long long)blk);
            } else {
                sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // act_scale and store: one warp per %lld-wide block\n",
                          cg_entry(G, G->nphases), (long long)blk);
                sb_printf(&G->decl, "    const long long it = ITEM_WARP(); const int lane = LANE();\n"
                                    "    const long long K = %s, nkb = (K + %lld) / %lld;\n    if (it >= %s) return;\n",
                          cg_dim(G, x->type.dims[x->type.rank - 1]), (long long)blk - 1, (long long)blk, cg_dim(G, ir_type_numel(&A->type)));
            }
            sb_printf(&G->decl, "    const long long k0 = it %% nkb * %lld, base = it / nkb * K + k0, n = K - k0 < %lld ? K - k0 : %lld;\n",
                      (long long)blk, (long long)blk, (long long)blk);
            const char *put = G->stored[A->id] ? arena_printf(G->a, "S%d(a, it, sc)", s) : arena_printf(G->a, "st_f32(a.t[%d], it, sc)", s);
            if (cache) {
                sb_printf(&G->decl, "    float m = 0.0f, xv[%lld];\n"
                                    "#pragma unroll\n"
                                    "    for (int t = 0; t < %lld; t++) {\n"
                                    "        const long long j = lane + 32 * t;\n"
                                    "        xv[t] = j < n ? %s : 0.0f;\n"
                                    "        m = fmaxf(m, fabsf(xv[t]));\n"
                                    "    }\n"
                                    "    m = wmax(m);  // in every lane\n"
                                    "    const float sc = m / 448.0f;\n"
                                    "    if (lane == 0) %s;\n"
                                    "    __syncwarp();  // the scale, for any other reader of it\n"
                                    "#pragma unroll\n"
                                    "    for (int t = 0; t < %lld; t++) {\n"
                                    "        const long long j = lane + 32 * t, i = base + j;\n"
                                    "        if (j >= n) break;\n",
                          (long long)per, (long long)per, cg_read(G, x, "base + j"), put, (long long)per);
            } else {
                sb_printf(&G->decl, "    float m = 0.0f;\n    for (long long j = lane; j < n; j += 32) m = fmaxf(m, fabsf(%s));\n", cg_read(G, x, "base + j"));
                sb_printf(&G->decl, "    m = wmax(m);\n    const float sc = m / 448.0f;\n    if (lane == 0) %s;\n    __syncwarp();  // the scale, for the lanes' quantize\n", put);
                sb_puts(&G->decl, "    for (long long j = lane; j < n; j += 32) {\n        const long long i = base + j;\n");
            }
        } else if (rows) { /* the row's elements, a thread each (8 a thread: the vector form, gen_vec.c) */
            IrDim w;
            ir_dim_div(cnt, *rows, &w);
            if (cg_vec_row_stores(G, members, nm, done, cnt, w.coeff)) continue;
            cg_row_elems(G, w.coeff);
        } else {
            sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // store\n", cg_entry(G, G->nphases));
            sb_printf(&G->decl, "    const long long i = ITEM_ELEM();\n    if (i >= %s) return;\n", cg_dim(G, cnt));
        }
        for (int j = k; j < nm; j++) {
            const IrNode *m = G->g->nodes[members[j]];
            if (done[j] || !ir_dim_eq(ir_type_numel(&m->type), cnt)) continue;
            /* the quantize of x by this scale: from the cached value and the scale in registers, the same arithmetic as its v-function */
            if (cache && m->op == IR_OP_QUANTIZE && m->ops[0] == A->ops[0] && m->ops[1] == A && ir_node_attr_int(m, "block", 128) == blk) {
                int sq = cg_slot_value(G, m);
                if (G->dtype[m->id] == IR_DT_FP8E4M3 && !(G->kblock && G->kblock[m->id])) /* the code itself: fe4m3 of its decoded value is it */
                    sb_printf(&G->decl, "        ((unsigned char *)a.t[%d])[i] = sc > 0.0f ? fe4m3(xv[t] / sc) : (unsigned char)0;\n", sq);
                else sb_printf(&G->decl, "        S%d(a, i, sc > 0.0f ? fp8r(xv[t] / sc) : 0.0f);\n", sq);
            }
            else if (cache && G->rthreads && m == A->ops[0] && !(G->cache_of && G->cache_of[m->id] >= 0)) /* x itself, from its register */
                sb_printf(&G->decl, "        S%d(a, i, xv[t]);\n", cg_slot_value(G, m));
            else emit_store_stmt(G, m, A ? "        " : "    ");
            done[j] = true;
        }
        if (rows) {
            sb_puts(&G->decl, A ? "    }\n    }\n" : "    }\n");
            if (A) G->act = NULL;
        } else if (A) {
            sb_puts(&G->decl, "    }\n}\n");
            cg_phase(G, CG_LAUNCH_WARP, ir_type_numel(&A->type), 1, ir_dim_const(1), 1, 0);
            G->act = NULL; /* done */
        } else {
            sb_puts(&G->decl, "}\n");
            cg_phase(G, CG_LAUNCH_ELEM, cnt, 1, ir_dim_const(1), 1, 0);
        }
    }
}

/* The stores of a group with nothing before them (no reduction phase, no
 * merged act_scale) in two sizes or more (RoPE'd q_pe beside the q_nope
 * slice the einsum reads): one launch over all their elements, a thread
 * each, the sizes in turn, instead of a launch per size. Their counts must
 * be constant multiples of one symbolic count (the items are their sum).
 * False (nothing emitted) otherwise. */
static bool emit_stores_one(Gen *G, const int *members, int nm, bool *done) {
    if (G->nphases || G->act) return false;
    IrDim unit = {0}, cnt[CG_MAX_SLOTS];
    int64_t total = 0;
    int nsz = 0;
    for (int k = 0; k < nm; k++) {
        const IrNode *m = G->g->nodes[members[k]];
        if (!needs_store(G, m)) continue;
        IrDim c = ir_type_numel(&m->type), q;
        int j = 0;
        while (j < nsz && !ir_dim_eq(cnt[j], c)) j++;
        if (j < nsz) continue;
        if (nsz == CG_MAX_SLOTS) return false;
        if (!nsz) unit = c, unit.coeff = 1;
        if (!ir_dim_div(c, unit, &q) || !ir_dim_is_const(q)) return false;
        cnt[nsz++] = c, total += q.coeff;
    }
    if (nsz < 2) return false;
    for (int k = 0; k < nm; k++) done[k] = !needs_store(G, G->g->nodes[members[k]]);
    if (cg_vec_stores(G, members, nm, done, cnt, nsz, NULL)) return true; /* the vector form (gen_vec.c) */
    sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // store, %d sizes in turn\n"
                        "    long long i = ITEM_ELEM();\n", cg_entry(G, G->nphases), nsz);
    for (int j = 0; j < nsz; j++) {
        sb_printf(&G->decl, "    if (i < %s) {\n", cg_dim(G, cnt[j]));
        for (int k = 0; k < nm; k++) {
            const IrNode *m = G->g->nodes[members[k]];
            if (!needs_store(G, m) || !ir_dim_eq(ir_type_numel(&m->type), cnt[j])) continue;
            emit_store_stmt(G, m, "        ");
        }
        sb_printf(&G->decl, "        return;\n    }\n    i -= %s;\n", cg_dim(G, cnt[j]));
    }
    sb_puts(&G->decl, "}\n");
    cg_phase(G, CG_LAUNCH_ELEM, ir_dim_mul(unit, ir_dim_const(total)), 1, ir_dim_const(1), 1, 0);
    for (int k = 0; k < nm; k++) done[k] = true;
    return true;
}

/* The act_scale of a group whose amax its store pass can take (see Gen.act):
 * the group's last reduction, over a last axis of known length, with a
 * stored member of its input's size to give it that pass. NULL otherwise. */
static const IrNode *merged_act_scale(Gen *G, const int *members, int nm) {
    const IrNode *last = NULL;
    for (int k = 0; k < nm; k++) {
        const IrNode *n = G->g->nodes[members[k]];
        if (cg_has_reduction_phase(n)) last = n;
    }
    if (!last || last->op != IR_OP_ACT_SCALE || last->ops[0]->type.rank < 1) return NULL;
    IrDim cnt = ir_type_numel(&last->ops[0]->type);
    /* Safe only when the scales are read by quantizes of the act_scale's own
     * input (each element its own block's scale, which its warp computed) and
     * nothing stored in another pass depends on them (it would run first). */
    bool *dep = calloc((size_t)G->g->nnodes + 1, 1), store = false, ok = true;
    for (int k = 0; k < nm && ok; k++) {
        const IrNode *m = G->g->nodes[members[k]];
        if (!ir_op_fusible(m->op)) continue; /* a template of the group reads the stored scale in a later phase */
        dep[m->id] = m == last;
        for (int j = 0; j < m->nops; j++) {
            if (m->ops[j] == last && !(m->op == IR_OP_QUANTIZE && m->ops[0] == last->ops[0] && j == 1)) ok = false;
            dep[m->id] |= dep[m->ops[j]->id];
        }
        bool same = ir_dim_eq(ir_type_numel(&m->type), cnt);
        if (needs_store(G, m) && !same && dep[m->id]) ok = false;
        store |= needs_store(G, m) && same;
    }
    free(dep);
    return ok && store ? last : NULL;
}


/* ---- groups ------------------------------------------------------------- */

/* Whether template r reads operand n's source instead of n: a linear
 * through its casts from bf16 (cg_linear_reads_bf16), an attention through
 * the slice of its k that is its v (cg_attention_v_in_k) and through the
 * concat that is its q (cg_attention_q_concat). */
static bool reads_through(const Gen *G, const IrNode *r, const IrNode *n) {
    if (n->op == IR_OP_CAST) return cg_bf16_source(G, n) && cg_linear_reads_bf16(G, r);
    if (n->op == IR_OP_SLICE) return r->op == IR_OP_ATTENTION && r->ops[2] == n && r->ops[0] != n && r->ops[1] != n && cg_attention_v_in_k(G, r);
    if (n->op == IR_OP_CONCAT) return r->op == IR_OP_ATTENTION && r->ops[0] == n && cg_attention_q_concat(G, r);
    return false;
}

/* A group of layout ops alone (a slice of a GEMM's output: the fuse pass
 * starts a group at a fusible op whose operands are all templates) whose
 * values only the inlined ops of one other group read joins that group:
 * the reader indexes through the slice instead of a kernel storing it
 * (gate and up, the two slices of merge-linears' w13 GEMM, in one
 * silu * mul kernel). No cycle can form: nothing else reads the group. */
static void absorb_layout_groups(const IrGraph *g, int *grp, int ngroups) {
    int *into = malloc(sizeof(int) * (size_t)(ngroups + 1)); /* -1: none yet; -2: not absorbable */
    bool *tm = calloc((size_t)ngroups + 1, 1);                /* the group holds a template */
    if (!into || !tm) {
        free(into), free(tm);
        return;
    }
    for (int k = 0; k < ngroups; k++) into[k] = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (grp[i] >= 0 && !ir_op_fusible(g->nodes[i]->op)) tm[grp[i]] = true;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        IrOpClass c = ir_op_class(n->op);
        if (grp[i] >= 0 && c != IR_CLASS_LAYOUT && c != IR_CLASS_VIEW && c != IR_CLASS_CONST) into[grp[i]] = -2;
        for (int k = 0; k < n->nops; k++) {
            int a = grp[n->ops[k]->id];
            if (a < 0 || a == grp[i] || into[a] == -2) continue;
            bool inl = grp[i] >= 0 && ir_op_fusible(n->op) && !tm[grp[i]];
            into[a] = !inl || (into[a] >= 0 && into[a] != grp[i]) ? -2 : grp[i];
        }
    }
    for (int i = 0; i < g->nnodes; i++)
        if (grp[i] >= 0 && into[grp[i]] >= 0) {
            int t = grp[i];
            while (into[t] >= 0) t = into[t]; /* a slice of a slice-only group: to the last reader */
            grp[i] = t;
        }
    free(into), free(tm);
}

/* Grouped expert GEMMs on the same input, scales and routing whose
 * weights are alike (the routed experts' gate and up) share one kernel:
 * pair[first] = the second's id, pair[second] = -2, else -1; the second
 * joins the first's group. No cycle can form: the two read the same
 * values, so nothing the second waits for waits for the first. */
static void pair_expert_gemms(const Gen *G, int *grp, int *pair) {
    const IrGraph *g = G->g;
    for (int i = 0; i < g->nnodes; i++) pair[i] = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (grp[i] < 0 || !cg_expert_grouped(G, n)) continue;
        for (int j = 0; j < i; j++) {
            const IrNode *m = g->nodes[j];
            if (pair[j] != -1 || grp[j] < 0 || !cg_expert_grouped(G, m) || m->stream != n->stream) continue;
            bool same = m->ops[0] == n->ops[0] && m->ops[1] == n->ops[1] && m->ops[4] == n->ops[4] && ir_type_eq(&m->type, &n->type) &&
                        ir_type_eq(&m->ops[2]->type, &n->ops[2]->type) && ir_type_eq(&m->ops[3]->type, &n->ops[3]->type) &&
                        G->dtype[m->id] == G->dtype[n->id];
            if (!same) continue;
            pair[j] = i, pair[i] = -2;
            grp[i] = grp[j];
            break;
        }
    }
}

/* A KV cache append whose input is an inlined value of a group without a
 * template (MLA's kv_new: the latent's norm, k_pe's RoPE and their concat,
 * one row kernel) joins that group: the store pass that writes the value
 * writes it into the cache too (emit_store_stmt), instead of a kernel of
 * its own copying it. cache_of[input] = the cache node, else -1. */
static void absorb_caches(const IrGraph *g, int *grp, int ngroups, int *cache_of) {
    bool *tm = calloc((size_t)ngroups + 1, 1);
    for (int i = 0; i < g->nnodes; i++) cache_of[i] = -1;
    if (!tm) return;
    for (int i = 0; i < g->nnodes; i++)
        if (grp[i] >= 0 && !ir_op_fusible(g->nodes[i]->op)) tm[grp[i]] = true;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i], *x = n->nops ? n->ops[0] : NULL;
        if (n->op != IR_OP_KV_CACHE || grp[i] < 0 || !x || grp[x->id] < 0 || !ir_op_fusible(x->op) || tm[grp[x->id]] ||
            x->type.rank < 2 || n->stream != x->stream || cache_of[x->id] >= 0)
            continue;
        cache_of[x->id] = i;
        grp[i] = grp[x->id];
    }
    free(tm);
}

/* The down GEMM of a MoE layer joins the kernel of its gate and up pair
 * (pair_expert_gemms) with the group between them (silu * mul, its
 * act_scale and quantize): the kernel's phases are then the sort, the
 * pair's tiles, that group's stores, and the down's tiles reading the
 * same sort (one sort per MoE layer). Taken when the down is a grouped
 * GEMM on the same routing and expert count whose input and scales are
 * that group's, the group has no template, reads nothing computed
 * outside it but the pair's outputs, and nothing outside it but the down
 * reads it (so no cycle can form). chain[down] = the pair's first. */
static void chain_expert_gemms(const Gen *G, int *grp, const int *pair, int ngroups, int *chain) {
    const IrGraph *g = G->g;
    int *bad = calloc((size_t)ngroups + 1, sizeof(int)); /* per group: 1 template, 2 read outside but by one node, 3 reads foreign */
    int *reader = malloc(sizeof(int) * (size_t)(ngroups + 1));
    for (int i = 0; i < g->nnodes; i++) chain[i] = -1;
    if (!bad || !reader) {
        free(bad), free(reader);
        return;
    }
    for (int k = 0; k < ngroups; k++) reader[k] = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (grp[i] >= 0 && !ir_op_fusible(n->op)) bad[grp[i]] = 1;
        for (int k = 0; k < n->nops; k++) {
            int a = grp[n->ops[k]->id];
            if (a < 0 || a == grp[i]) continue;
            if (reader[a] >= 0 && reader[a] != i) bad[a] = bad[a] ? bad[a] : 2;
            reader[a] = i;
        }
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *d = g->nodes[i], *x = d->nops == 5 ? d->ops[0] : NULL;
        if (!x || grp[i] < 0 || pair[i] != -1 || !cg_expert_grouped(G, d) || grp[x->id] < 0 || grp[d->ops[1]->id] != grp[x->id]) continue;
        int gs = grp[x->id], lead = -1;
        if (bad[gs] || reader[gs] != i) continue;
        for (int j = 0; j < i && lead < 0; j++)
            if (pair[j] >= 0 && g->nodes[j]->ops[4] == d->ops[4] && g->nodes[j]->stream == d->stream &&
                ir_dim_eq(g->nodes[j]->ops[2]->type.dims[0], d->ops[2]->type.dims[0]))
                lead = j;
        if (lead < 0) continue;
        bool ok = true; /* the group reads, of what is computed outside it, only the pair's outputs */
        for (int m = 0; m < g->nnodes && ok; m++) {
            if (grp[m] != gs) continue;
            for (int k = 0; k < g->nodes[m]->nops && ok; k++) {
                const IrNode *o = g->nodes[m]->ops[k];
                ok = grp[o->id] == gs || grp[o->id] < 0 || o->id == lead || o->id == pair[lead];
            }
        }
        if (!ok) continue;
        for (int m = 0; m < g->nnodes; m++)
            if (grp[m] == gs) grp[m] = grp[lead];
        grp[i] = grp[lead];
        chain[i] = lead;
        bad[gs] = 1; /* taken */
    }
    free(bad), free(reader);
}

/* The fused epilogue (gen_expert.c, G->epi_q): the gate and up phase
 * above G->epi_tmin routed rows stores h's codes and scales itself and
 * not gate and up, so the middle group's phases (from mid0: silu * mul,
 * act_scale and quantize) run only at the row counts the tile or the
 * stream form takes. Each must count a constant multiple c of the routed
 * rows R as its a (a warp a row's 128-wide block, or 8 elements a
 * thread: c = h's blocks or N / 8), so that a <= c tmin gates it (else
 * refused). */
static bool epi_gate(Gen *G, int mid0) {
    if (mid0 >= G->nphases) {
        G->why = "DSCC_EXPERT_TMA's epi=1: no silu-mul-quantize phase between gate and up and the down";
        return false;
    }
    for (int p = mid0; p < G->nphases; p++) {
        CgPhase *f = &G->phases[p];
        IrDim c;
        if (!ir_dim_div(f->a, G->epi_R, &c) || !ir_dim_is_const(c) || c.coeff < 1 || f->amin || f->amax || f->plus ||
            f->rule != CG_ITEMS_GRID) {
            G->why = "DSCC_EXPERT_TMA's epi=1: a silu-mul-quantize phase whose items are not a multiple of the routed rows";
            return false;
        }
        f->amax = G->epi_tmin * c.coeff;
    }
    return true;
}

/* Topological order of groups; among ready groups the one whose first op
 * comes first in the program. */
static int *order_groups(Arena *a, const IrGraph *g, const int *grp, const bool *unread, int ngroups) {
    int *first = arena_alloc(a, sizeof(int) * (size_t)(ngroups + 1)), *indeg = arena_alloc(a, sizeof(int) * (size_t)(ngroups + 1));
    for (int k = 0; k < ngroups; k++) first[k] = -1;
    uint8_t *edge = calloc((size_t)ngroups * (size_t)ngroups + 1, 1);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (grp[i] < 0) continue;
        if (first[grp[i]] < 0) first[grp[i]] = i;
        /* a value not computed: its reader reads its sources (a concat's two) */
        const IrNode *stack[64];
        int top = 0;
        for (int k = 0; k < n->nops && top < 64; k++) stack[top++] = n->ops[k];
        while (top > 0) {
            const IrNode *o = stack[--top];
            if (unread[o->id]) {
                for (int k = 0; k < o->nops && top < 64; k++) stack[top++] = o->ops[k];
                continue;
            }
            int og = grp[o->id];
            if (og >= 0 && og != grp[i] && !edge[(size_t)og * ngroups + grp[i]]) {
                edge[(size_t)og * ngroups + grp[i]] = 1;
                indeg[grp[i]]++;
            }
        }
    }
    int *order = arena_alloc(a, sizeof(int) * (size_t)(ngroups + 1));
    bool *done = arena_alloc(a, (size_t)ngroups + 1);
    for (int at = 0; at < ngroups; at++) {
        int best = -1;
        for (int k = 0; k < ngroups; k++)
            if (!done[k] && indeg[k] == 0 && (best < 0 || first[k] < first[best])) best = k;
        if (best < 0) { /* a cycle: the fuse pass never makes one */
            free(edge);
            return NULL;
        }
        done[best] = true;
        order[at] = best;
        for (int k = 0; k < ngroups; k++)
            if (edge[(size_t)best * ngroups + k]) indeg[k]--;
    }
    free(edge);
    return order;
}

/* The group's ops, at most four, each once, joined by '_' ("rmsnorm_act_scale_quantize"); NULL if none is named. */
static const char *group_ops(Gen *G, const int *members, int nm) {
    StrBuf sb;
    sb_init(&sb);
    int named = 0;
    for (int k = 0; k < nm && named < 4; k++) {
        const IrNode *n = G->g->nodes[members[k]];
        if (ir_op_goes_with_reader(n->op)) continue;
        bool dup = false;
        for (int j = 0; j < k; j++) dup = dup || G->g->nodes[members[j]]->op == n->op;
        if (dup) continue;
        sb_printf(&sb, "%s%s", named ? "_" : "", ir_op_name(n->op));
        named++;
    }
    char *r = named ? arena_strdup(G->a, sb.data) : NULL;
    sb_free(&sb);
    return r;
}

static const char *kernel_comment(Gen *G, const char *name, const int *members, int nm) {
    StrBuf sb;
    sb_init(&sb);
    sb_printf(&sb, "// %s: %d IR op%s\n", name, nm, nm == 1 ? "" : "s");
    for (int k = 0; k < nm; k++) {
        const IrNode *n = G->g->nodes[members[k]];
        sb_printf(&sb, "//   %%%d = %s", n->id, ir_op_name(n->op));
        for (int j = 0; j < n->nops; j++) sb_printf(&sb, "%s%%%d", j ? ", " : " ", n->ops[j]->id);
        sb_puts(&sb, " : ");
        ir_type_print(G->g, &n->type, &sb);
        if (n->loc.file) sb_printf(&sb, "  %s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
        if (n->scope) sb_printf(&sb, "  in %s", n->scope);
        sb_putc(&sb, '\n');
    }
    char *r = arena_strdup(G->a, sb.data);
    sb_free(&sb);
    return r;
}

/* What cg_generate decides before generating code: each value's stored
 * dtype, which values are not computed (unread), each op's kernel group
 * (grp, -1: none), each group's template, and which values are stored. */
typedef struct {
    IrDType *dtype;
    bool *unread, *stored;
    int *grp, *tmpl;
    int *chain; /* chain_expert_gemms' */
    int *epi;   /* epilogue_casts' */
    bool *kblock; /* CgProgram.kblock */
    int ngroups;
} Storage;

/* A linear the fuse pass put in one kernel with its only reader, a cast to
 * f32 (the LM head's logits: linear then cast): the GEMM writes the f32
 * value itself, the bf16 one is neither rounded nor stored, and no kernel
 * of its own copies it. epi[linear] = the cast, epi[cast] = -2, else -1. */
static void epilogue_casts(const IrGraph *g, const int *grp, const int *tmpl, int *epi) {
    int nn = g->nnodes, *readers = calloc((size_t)nn + 1, sizeof(int));
    for (int i = 0; i < nn; i++) epi[i] = -1;
    if (!readers) return;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i]->nops; k++) readers[g->nodes[i]->ops[k]->id]++;
    for (int i = 0; i < nn; i++) {
        const IrNode *c = g->nodes[i], *x = c->nops == 1 ? c->ops[0] : NULL;
        if (c->op != IR_OP_CAST || c->type.dtype != IR_DT_F32 || !x || x->op != IR_OP_LINEAR || grp[i] < 0 || grp[x->id] != grp[i] ||
            tmpl[grp[i]] != x->id || readers[x->id] != 1 || ir_dtype_is_int(x->type.dtype))
            continue;
        epi[x->id] = i, epi[i] = -2;
    }
    free(readers);
}

/* CgProgram.kblock: the act_scales stored as f32 that no communication op reads. */
static bool *kblock_scales(Arena *a, const IrGraph *g, const bool *stored, const IrDType *dtype) {
    int nn = g->nnodes;
    bool *kb = arena_alloc(a, (size_t)nn + 1);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        kb[i] = n->op == IR_OP_ACT_SCALE && stored[i] && dtype[i] == IR_DT_F32 && n->type.rank >= 1 &&
                ir_dim_is_const(n->type.dims[n->type.rank - 1]) && n->type.dims[n->type.rank - 1].coeff > 0;
    }
    for (int i = 0; i < nn; i++)
        if (ir_op_is_comm(g->nodes[i]->op))
            for (int k = 0; k < g->nodes[i]->nops; k++) kb[g->nodes[i]->ops[k]->id] = false;
    return kb;
}

static void plan_storage(Gen *G, bool wide, Storage *st) {
    Arena *a = G->a;
    const IrGraph *g = G->g;
    int nn = g->nnodes;
    int *grp = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    int ngroups = 0;
    for (int i = 0; i < nn; i++) ngroups = g->nodes[i]->group + 1 > ngroups ? g->nodes[i]->group + 1 : ngroups;
    /* Stored dtypes first: which casts a linear reads through depends on them. */
    IrDType *dtype = arena_alloc(a, sizeof(IrDType) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        dtype[i] = wide && (n->type.dtype == IR_DT_BF16 || n->type.dtype == IR_DT_F16) ? IR_DT_F32 : n->type.dtype;
    }
    G->dtype = dtype;
    /* A value that only templates reading through it (reads_through) read, or
     * the attention that reads through it and others of its chain that are
     * not computed (cg_attention_through: via), is not computed itself. */
    bool *unread = arena_alloc(a, (size_t)nn + 1), *other = arena_alloc(a, (size_t)nn + 1); /* other: read otherwise */
    bool *thr = arena_alloc(a, (size_t)nn + 1);
    int *via = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++) via[i] = -1;
    for (int j = 0; j < nn; j++) {
        const IrNode *ch[16];
        for (int c = cg_attention_through(G, g->nodes[j], ch, 16) - 1; c >= 0; c--)
            if (via[ch[c]->id] < 0) via[ch[c]->id] = j;
    }
    for (int j = nn - 1; j >= 0; j--) { /* readers before their operands: each reader's own fate is known */
        unread[j] = thr[j] && !other[j];
        for (int k = 0; k < g->nodes[j]->nops; k++) {
            const IrNode *n = g->nodes[j]->ops[k];
            int v = via[n->id];
            if (n->op != IR_OP_CAST && n->op != IR_OP_SLICE && n->op != IR_OP_CONCAT && v < 0) continue;
            if (reads_through(G, g->nodes[j], n) || v == j || (v >= 0 && via[j] == v && unread[j])) thr[n->id] = true;
            else other[n->id] = true;
        }
    }
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        grp[i] = ir_op_computed(n->op) && !unread[i] ? (n->group >= 0 ? n->group : ngroups++) : -1;
    }
    absorb_layout_groups(g, grp, ngroups);
    int *pair = arena_alloc(a, sizeof(int) * (size_t)(nn + 1)), *cache_of = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    pair_expert_gemms(G, grp, pair);
    G->pair = pair;
    absorb_caches(g, grp, ngroups, cache_of);
    G->cache_of = cache_of;
    int *chain = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    chain_expert_gemms(G, grp, pair, ngroups, chain);
    char *route = arena_alloc(a, (size_t)nn + 1); /* routing chains one kernel computes (cg_route_groups) */
    cg_route_groups(g, grp, route);
    G->route = route;
    /* A group holds at most one op that is not inlined: the template (and a grouped expert GEMM's pair). */
    int *tmpl = arena_alloc(a, sizeof(int) * (size_t)(ngroups + 1));
    for (int k = 0; k < ngroups; k++) tmpl[k] = -1;
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        if (grp[i] < 0 || ir_op_fusible(n->op) || pair[i] == -2) continue; /* -2: the second of a pair, which its first generates */
        if (n->op == IR_OP_KV_CACHE && cache_of[n->ops[0]->id] == i) continue; /* appended by its input's store pass */
        if (chain[i] >= 0) continue; /* a down GEMM chained after its pair's kernel phases */
        if (route[i] == 1 || route[i] == 3) continue; /* in a routing chain (the gather): its group_topk's kernel computes it */
        if (tmpl[grp[i]] >= 0) { /* two templates in one group: give this one its own */
            grp[i] = ngroups++;
            tmpl = arena_realloc(a, tmpl, sizeof(int) * (size_t)ngroups, sizeof(int) * (size_t)(ngroups + 1));
        }
        tmpl[grp[i]] = i;
    }
    int *epi = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    epilogue_casts(g, grp, tmpl, epi);
    /* Stored: leaves, caches, templates (but a GEMM whose cast it writes instead), members read outside their group or
     * by a template, and a cast a GEMM writes. */
    bool *stored = arena_alloc(a, (size_t)nn + 1);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = g->nodes[i];
        if (ir_op_has_result(n->op) && !unread[i] && route[i] != 1 && (grp[i] < 0 || !ir_op_fusible(n->op)) && epi[i] < 0) stored[i] = true;
        if (epi[i] == -2) stored[i] = true;
    }
    for (int j = 0; j < nn; j++) { /* over the readers: linear */
        const IrNode *r = g->nodes[j];
        if (route[j]) continue; /* a routing chain's kernel reads only the chain's logits and bias, stored anyway */
        for (int k = 0; k < r->nops; k++) {
            const IrNode *n = r->ops[k];
            int i = n->id;
            if (!ir_op_has_result(n->op) || unread[i] || (grp[j] == grp[i] && ir_op_fusible(r->op))) continue;
            if (reads_through(G, r, n)) /* the template reads n's sources */
                for (int q = 0; q < n->nops; q++) stored[n->ops[q]->id] = true;
            else stored[i] = true;
        }
        const IrNode *src[3];
        for (int s = cg_attention_sources(G, r, src) - 1; s >= 0; s--) stored[src[s]->id] = true; /* what it reads in place */
    }
    *st = (Storage){dtype, unread, stored, grp, tmpl, chain, epi, kblock_scales(a, g, stored, dtype), ngroups};
}

static const DsccTune tune_unset; /* no tuning given: every switch at its default */

bool *cg_stored_values(Arena *a, const IrGraph *g, const CgGenOptions *o, IrDType **dtype) {
    Gen G = {.a = a, .g = g, .tune = o && o->tune ? o->tune : &tune_unset};
    Storage st;
    plan_storage(&G, o && o->f32_storage, &st);
    *dtype = st.dtype;
    return st.stored;
}

int *cg_fold_reads(Arena *a, DiagEngine *d, const IrGraph *g, const CgGenOptions *o) {
    int nn = g->nnodes, *also = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++) also[i] = -1;
    const DsccTune *t = o && o->tune ? o->tune : &tune_unset;
    if (!tune_on(t->skinny_fold, false) && !tune_on(t->einsum_rope, true) && !tune_on(t->einsum_kv, false))
        return also; /* off: no plan or analysis */
    Gen G = {.a = a, .d = d, .g = g, .tune = t, .fold_nomem = true, .skinny = tune_on(t->gemm_skinny, true) && !(o && o->no_skinny),
             .rows_wide = tune_on(t->rows_wide, true), /* the row forms cg_generate picks */
             .rows_upstream = tune_on(t->rows_upstream, true)};
    Storage st;
    plan_storage(&G, o && o->f32_storage, &st);
    G.stored = st.stored;
    G.dtype = st.dtype;
    G.kblock = st.kblock;
    int *order = order_groups(a, g, st.grp, st.unread, st.ngroups), *pos = arena_alloc(a, sizeof(int) * (size_t)(st.ngroups + 1));
    if (!order) return also; /* cg_generate reports the cycle */
    for (int k = 0; k < st.ngroups; k++) pos[k] = -1;
    for (int at = 0; at < st.ngroups; at++) pos[order[at]] = at;
    if (!cg_fold_plan(&G, st.grp, st.tmpl, pos, st.ngroups)) return NULL;
    cg_rope_plan(&G, st.grp, st.tmpl, pos, st.ngroups);
    cg_kvf_plan(&G, st.grp, st.tmpl, pos, st.ngroups);
    cg_fold_also_read(&G, st.ngroups, also);
    cg_rope_also_read(&G, st.ngroups, also);
    cg_kvf_also_read(&G, st.ngroups, also);
    return also;
}

int *cg_fold_hoists(Arena *a, DiagEngine *d, const IrGraph *g, const CgGenOptions *o) {
    int nn = g->nnodes, *hoist = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++) hoist[i] = -1;
    const DsccTune *t = o && o->tune ? o->tune : &tune_unset;
    if (!cg_fold_hoist_on(t)) return hoist;
    Gen G = {.a = a, .d = d, .g = g, .tune = t, .fold_nomem = true, .fold_hoist = true,
             .skinny = tune_on(t->gemm_skinny, true) && !(o && o->no_skinny)};
    Storage st;
    plan_storage(&G, o && o->f32_storage, &st);
    G.stored = st.stored;
    int *order = order_groups(a, g, st.grp, st.unread, st.ngroups);
    if (order) cg_fold_hoist_plan(&G, st.grp, st.tmpl, order, st.ngroups, hoist); /* (cg_generate reports a cycle) */
    return hoist;
}

CgProgram *cg_generate(Arena *a, DiagEngine *d, const IrGraph *g, const CgGenOptions *o) {
    int nn = g->nnodes;
    bool wide = o && o->f32_storage;
    Gen G = {.a = a, .d = d, .g = g, .tune = o && o->tune ? o->tune : &tune_unset};
    CgTile tile = o ? o->tile : CG_TILE_DEFAULT;
    const char *env = G.tune->gemm_tile;
    if (tile == CG_TILE_DEFAULT && env && *env) {
        if (strcmp(env, "wgmma") && strcmp(env, "mma")) {
            diag_error(d, (SrcLoc){0}, "DSCC_GEMM_TILE is '%s': expected 'wgmma' or 'mma'", env);
            return NULL;
        }
        tile = strcmp(env, "wgmma") == 0 ? CG_TILE_WGMMA : CG_TILE_MMA_SYNC;
    }
    G.wgmma = tile == CG_TILE_WGMMA || (tile == CG_TILE_DEFAULT && !wide);
    const DsccTune *t = G.tune;
    G.skinny = tune_on(t->gemm_skinny, true) && !(o && o->no_skinny);
    G.rows_wide = tune_on(t->rows_wide, true);
    G.rows_prefill = tune_on(t->rows_prefill, true);
    G.rows_upstream = tune_on(t->rows_upstream, true);
    G.rows_gather = tune_on(t->rows_gather, true);
    G.elem_vec = tune_on(t->elem_vec, true);
    Storage st;
    plan_storage(&G, wide, &st);
    IrDType *dtype = st.dtype;
    bool *unread = st.unread, *stored = st.stored;
    int *grp = st.grp, *tmpl = st.tmpl, *chain = st.chain, ngroups = st.ngroups;
    int *order = order_groups(a, g, grp, unread, ngroups);
    if (!order) {
        diag_error(d, (SrcLoc){0}, "codegen: the kernel groups depend on each other in a cycle");
        return NULL;
    }
    CgProgram *p = arena_alloc(a, sizeof *p);
    p->stored = stored;
    p->dtype = dtype;
    p->kblock = st.kblock;
    G.kblock = st.kblock;
    p->unw_above = arena_alloc(a, sizeof(int64_t) * (size_t)(nn + 1));
    p->unw_a = arena_alloc(a, sizeof(IrDim) * (size_t)(nn + 1));
    G.epi = st.epi;
    p->kernels = arena_alloc(a, sizeof(CgKernel) * (size_t)(ngroups + 1));
    p->modules = arena_alloc(a, sizeof(CgSource) * (size_t)(ngroups + 1));
    const char **raw = arena_alloc(a, sizeof(char *) * (size_t)(ngroups + 1)); /* each module's source before its PDL prologue */
    int *first_of = arena_alloc(a, sizeof(int) * (size_t)(ngroups + 1));         /* the kernel each module was made for */
    const char *args = cg_kernel_prelude(a, "args"); /* Args and the PDL helpers (codegen/kernels/args.cuh), before PRELUDE */
    G.local = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    G.stat = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    G.stored = stored;
    int *members = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    bool *done = arena_alloc(a, (size_t)nn + 1);
    G.phases = arena_alloc(a, sizeof(CgPhase) * (size_t)(nn + 8));
    for (int i = 0; i < nn; i++) G.local[i] = -1;
    int *pos = arena_alloc(a, sizeof(int) * (size_t)(ngroups + 1)); /* by group id: its place in the launch order */
    for (int k = 0; k < ngroups; k++) pos[k] = -1;
    for (int at = 0; at < ngroups; at++) pos[order[at]] = at;
    if (!cg_fold_plan(&G, grp, tmpl, pos, ngroups)) return NULL; /* DSCC_SKINNY_FOLD (gen_gemm.c) */
    cg_rope_plan(&G, grp, tmpl, pos, ngroups);  /* DSCC_EINSUM_ROPE (gen_einsum.c) */
    cg_rfuse_plan(&G, grp, tmpl, pos, ngroups); /* DSCC_ROUTE_FUSE (gen_ops.c) */
    cg_kvf_plan(&G, grp, tmpl, pos, ngroups);   /* DSCC_EINSUM_KV (gen_einsum.c) */
    for (int at = 0; at < ngroups; at++) {
        int gid = order[at], nm = 0;
        for (int i = 0; i < nn; i++)
            if (grp[i] == gid) members[nm++] = i;
        if (!nm) continue;
        G.nslots = 0;
        G.nphases = 0;
        G.failed = false;
        G.mma_helpers = G.tile_off = G.vec_helpers = false;
        G.lib = (CgLib){.kind = CG_LIB_NONE};
        sb_init(&G.decl);
        sb_init(&G.ldr);
        int nloc = 0;
        for (int k = 0; k < nm; k++)
            if (ir_op_fusible(g->nodes[members[k]]->op)) G.local[members[k]] = nloc++;
        G.act = merged_act_scale(&G, members, nm);
        G.rfuse_cur = G.rfuse ? G.rfuse[gid] : -1, G.rfuse_done = false;
        G.sorted = NULL;
        G.stem = group_ops(&G, members, nm), G.next_fn = NULL;
        const IrNode *down = NULL; /* a chained down GEMM: the pair's phases, the group's stores, then its tiles */
        for (int k = 0; k < nm; k++)
            if (chain[members[k]] >= 0) down = g->nodes[members[k]];
        G.epi_q = NULL, G.epi_down = down;
        bool ok = !down || cg_emit_template(&G, g->nodes[tmpl[gid]]);
        const int mid0 = G.nphases; /* a chained down: the middle group's phases from here */
        if (tmpl[gid] >= 0 && G.route[tmpl[gid]] == 2) /* a routing chain: the whole group is one kernel */
            ok = cg_route_kernel(&G, g->nodes[tmpl[gid]]);
        else {
            IrDim rows;
            const IrNode *rown = tmpl[gid] < 0 ? cg_row_norm(&G, members, nm, &rows) : NULL;
            int rparts = rown ? cg_row_prologue(&G, rown, members, nm) : 0;
            for (int k = 0; k < nm; k++) {
                const IrNode *n = g->nodes[members[k]];
                if (n == rown) G.stat[n->id] = cg_slot_scratch(&G, n, rows); /* the row kernel computes it */
                else if (cg_has_reduction_phase(n)) emit_reduction(&G, n);
                if (ir_op_fusible(n->op) && st.epi[n->id] != -2) emit_value(&G, n); /* a cast its GEMM writes: none */
            }
            if (rown) cg_emit_row_kernel(&G, rown, rows, members, nm, done, rparts);
            else if (!emit_stores_one(&G, members, nm, done)) cg_emit_stores(&G, members, nm, done, NULL);
            if (ok && down && G.epi_q) ok = epi_gate(&G, mid0);
            ok = ok && (down ? cg_emit_template(&G, down) : tmpl[gid] < 0 || cg_emit_template(&G, g->nodes[tmpl[gid]]));
        }
        if (ok && !G.failed && G.fold && G.fold[gid] >= 0) cg_fold_gate(&G, gid); /* its phases skip M <= 4 */
        if (ok && !G.failed && G.rope && G.rope[gid] >= 0) cg_rope_gate(&G, gid); /* its phases skip an einsum's rows, cached */
        if (ok && !G.failed && G.kvf && G.kvf[gid] >= 0) cg_kvf_gate(&G, gid); /* its phases skip an einsum's rows, cached */
        if (ok && !G.failed) cg_rfuse_gate(&G, gid); /* a router that routed its logits: its routing group skips M <= 8 */
        for (int k = 0; k < 2 && ok && G.epi_q; k++) /* the fused epilogue's gate and up: not written above the tile's rows */
            p->unw_above[G.epi_gu[k]->id] = G.epi_tmin, p->unw_a[G.epi_gu[k]->id] = G.epi_R;
        const IrNode *first = g->nodes[members[0]];
        if (!ok || G.failed) {
            diag_error(d, first->loc, "codegen: cannot generate the kernel of %s (%s)", ir_op_name(g->nodes[tmpl[gid] >= 0 ? tmpl[gid] : members[0]]->op),
                       G.failed ? "more than 64 tensors in one kernel" : G.why ? G.why : "unsupported");
            sb_free(&G.decl);
            sb_free(&G.ldr);
            return NULL;
        }
        char *body = arena_printf(a, "%s%s%s%s", args, PRELUDE, G.ldr.data ? G.ldr.data : "", G.decl.data ? G.decl.data : "");
        sb_free(&G.decl);
        sb_free(&G.ldr);
        CgKernel *k = &p->kernels[p->nkernels++];
        k->group = gid;
        k->loc = first->loc;
        k->name = G.stem ? arena_printf(a, "g%d_%s", gid, G.stem) : arena_printf(a, "g%d", gid);
        k->comment = kernel_comment(&G, k->name, members, nm);
        k->module = -1;
        for (int b = 0; b < p->nmodules && k->module < 0; b++)
            if (strcmp(raw[b], body) == 0) k->module = b;
        if (k->module < 0) { /* every entry the generator wrote waits first (programmatic dependent launch); kernel files opt in */
            k->module = p->nmodules;
            raw[p->nmodules] = body;
            first_of[p->nmodules] = p->nkernels - 1;
            p->modules[p->nmodules++] = (CgSource){k->name, cg_pdl_prologue(a, body, G.tune), k->loc};
            for (int ph = 0; ph < G.nphases; ph++) G.phases[ph].pdl = cg_kernel_waits(p->modules[k->module].source, G.phases[ph].fn);
        } else { /* the same source: the same entries */
            const CgKernel *k0 = &p->kernels[first_of[k->module]];
            for (int ph = 0; ph < G.nphases; ph++)
                for (int j = 0; j < k0->nphases; j++)
                    if (strcmp(k0->phases[j].fn, G.phases[ph].fn) == 0) G.phases[ph].pdl = k0->phases[j].pdl;
        }
        k->nphases = G.nphases;
        k->phases = arena_alloc(a, sizeof(CgPhase) * (size_t)(G.nphases + 1));
        memcpy(k->phases, G.phases, sizeof(CgPhase) * (size_t)G.nphases);
        k->nslots = G.nslots;
        k->slots = arena_alloc(a, sizeof(CgSlot) * (size_t)(G.nslots + 1));
        memcpy(k->slots, G.slots, sizeof(CgSlot) * (size_t)G.nslots);
        k->lib = G.lib;
        k->nnodes = nm;
        k->nodes = arena_alloc(a, sizeof(int) * (size_t)nm);
        memcpy(k->nodes, members, sizeof(int) * (size_t)nm);
        for (int j = 0; j < nm; j++) G.local[members[j]] = -1;
    }
    return p;
}

char *cg_kernel_text(Arena *a, const CgProgram *p, const CgKernel *k) {
    return arena_printf(a, "%s// module %d, shared by every group with the same source\n%s", k->comment, k->module, p->modules[k->module].source);
}
