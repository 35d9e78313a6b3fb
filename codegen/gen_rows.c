/* gen_rows.c — the row kernels of fused groups whose one reduction is an
 * rmsnorm and whose members keep rows apart (add + rmsnorm + act_scale +
 * quantize, the MoE combine + norm, the latent's norm + RoPE + concat into
 * the cache): the row's statistic, a barrier, then the row's stores, in
 * one launch. The old form is one 256-thread block a row; the wide forms
 * split a decode step's few rows over a thread-block cluster and keep the
 * norm's input in shared memory (see "wide row kernels" below); a
 * prefill's many rows take a third form (two rows a CTA at 7,168, and
 * 16-byte stores where the group stores only the norm's input, the norm and
 * its quantize). The generic store passes are gen.c's (cg_emit_stores),
 * which asks this file for their loops (cg_row_blocks, cg_row_elems). */
#include "codegen/gen_internal.h"
#include "codegen/kernels.h"

#include <stdlib.h>

/* The loops of a row kernel's store pass over the row's rb scale blocks
 * (a warp each) and over its w elements (a thread each). The old form: the
 * block's row. A wide form (G->rparts CTAs a row, G->rthreads threads a
 * CTA): a member of the norm's width (own) in the CTA's own contiguous part
 * of the row, whose values of the norm's input are in its shared memory
 * (RX); any other size strided over the row's CTAs. `blk` is the CTA's
 * part of the row (row * C + part), `row` and `part` the kernel's. */
void cg_row_blocks(Gen *G, int64_t rb, bool own) {
    const int C = G->rparts, nw = G->rthreads / 32;
    if (!G->rthreads)
        sb_printf(&G->decl, "    for (long long it = row * %lldLL + (threadIdx.x >> 5); it < (row + 1) * %lldLL; it += 8) {  // act_scale and store\n",
                  (long long)rb, (long long)rb);
    else if (own && rb % C == 0)
        sb_printf(&G->decl, "    for (long long it = blk * %lldLL + (threadIdx.x >> 5); it < (blk + 1) * %lldLL; it += %d) {  "
                            "// act_scale and store: the CTA's part of the row, a warp a block\n",
                  (long long)(rb / C), (long long)(rb / C), nw);
    else
        sb_printf(&G->decl, "    for (long long it = row * %lldLL + part * %d + (threadIdx.x >> 5); it < (row + 1) * %lldLL; it += %d) {  "
                            "// act_scale and store: the row's blocks over its CTAs, a warp each\n",
                  (long long)rb, nw, (long long)rb, C * nw);
}

void cg_row_elems(Gen *G, int64_t w) {
    const int C = G->rparts, T = G->rthreads;
    if (!T)
        sb_printf(&G->decl, "    for (long long i = row * %lldLL + threadIdx.x; i < (row + 1) * %lldLL; i += 256) {  // store\n", (long long)w,
                  (long long)w);
    else if (w == G->rowd) { /* a count known here, unrolled: the thread's loads in flight at once */
        const int64_t CH = w / C;
        sb_printf(&G->decl, "#pragma unroll\n    for (int t = 0; t < %lld; t++) {  // store: the CTA's part of the row\n"
                            "    const long long i = blk * %lldLL + threadIdx.x + t * %d;\n%s",
                  (long long)((CH + T - 1) / T), (long long)CH, T,
                  CH % T ? arena_printf(G->a, "    if (threadIdx.x + t * %d >= %lld) break;\n", T, (long long)CH) : "");
    } else
        sb_printf(&G->decl, "    for (long long i = row * %lldLL + part * %d + threadIdx.x; i < (row + 1) * %lldLL; i += %d) {  "
                            "// store: the row over its CTAs\n",
                  (long long)w, T, (long long)w, C * T);
}

/* Rows of a group: the number of elements of the rmsnorm's input over its
 * last axis. For a group without a template whose one reduction phase is
 * an rmsnorm (the merged act_scale aside) and whose every member keeps
 * rows apart, element i of a member of R x W elements reading only row
 * i / W of the members it reads, the norm and the stores run as one
 * kernel of one block per row: the row's statistic, a barrier, then the
 * row's stores (add + rmsnorm + act_scale + quantize in one launch
 * instead of two). What keeps rows apart (reads_own_row): elementwise
 * ops on members of their own size or broadcast along the row's own dims,
 * RoPE, reshapes, slices and concats along the last axis, an inlined sum
 * within the row, quantize by the merged act_scale; loaded tensors and
 * constants are read freely (a member reading only those is computed
 * from memory). Any other read of a member (a transpose, ...) makes it
 * NULL, as does a reduction phase other than the norm's. */
/* How many leading dims of t multiply to `rows` (-1: none do). */
static int row_dims(const IrType *t, IrDim rows) {
    IrDim d = ir_dim_const(1);
    for (int k = 0; k <= t->rank; k++) {
        if (ir_dim_eq(d, rows)) return k;
        if (k < t->rank) d = ir_dim_mul(d, t->dims[k]);
    }
    return -1;
}

/* Whether member m reads its member operand o (operand j) within the row
 * its own element is in (see row_norm). */
static bool reads_own_row(const Gen *G, const IrNode *m, const IrNode *o, int j, IrDim rows) {
    const IrType *t = &m->type, *ot = &o->type;
    switch (m->op) {
    case IR_OP_SLICE: return cg_axis(ir_node_attr_int(m, "axis", 0), ot->rank) == ot->rank - 1;
    case IR_OP_CONCAT: return cg_axis(ir_node_attr_int(m, "axis", 0), t->rank) == t->rank - 1;
    case IR_OP_QUANTIZE: return j == 0 ? ir_dim_eq(ir_type_numel(ot), ir_type_numel(t)) : o == G->act;
    case IR_OP_ACT_SCALE: return m == G->act; /* item it reads x's row it / nkb, in the same row */
    case IR_OP_RMSNORM: case IR_OP_ROPE: return j == 0 && ir_dim_eq(ir_type_numel(ot), ir_type_numel(t));
    case IR_OP_RESHAPE: return true;
    case IR_OP_SUM: { /* inlined: out index i reads (i / inner) * mid * inner + j * inner + i % inner */
        IrDim w, inner = cg_suffix(ot, cg_axis(ir_node_attr_int(m, "axis", -1), ot->rank) + 1);
        return cg_sum_inline(m) && ir_dim_div(ir_type_numel(t), rows, &w) && ir_dim_is_const(inner) && w.coeff % inner.coeff == 0;
    }
    default: break;
    }
    if (ir_op_class(m->op) != IR_CLASS_ELEMENTWISE) return false;
    if (ir_dim_eq(ir_type_numel(ot), ir_type_numel(t))) return true;
    int p = row_dims(t, rows); /* broadcast: the row dims must be o's own */
    if (p < 0 || ot->rank != t->rank) return false;
    for (int d = 0; d < p; d++)
        if (!ir_dim_eq(ot->dims[d], t->dims[d])) return false;
    return true;
}

/* Members whose value a row kernel may compute at any index, in any CTA
 * (G->rows_upstream): not stored, not appended to a cache, and reading
 * neither the norm's input nor the norm nor the merged act_scale, through
 * any chain of members (those read the CTA's row statistic or its kept
 * row): pure functions of what earlier kernels wrote. The last MoE layer's
 * combine is such a value: its [T, 8, 7,168] products and their sum over
 * the experts are read through the slice of each sequence's last position
 * (logits_last_only), rows of B * S above the norm's B. NULL when the form
 * is off. */
static bool *row_free_members(Gen *G, const IrNode *norm, const int *members, int nm) {
    if (!G->rows_upstream) return NULL;
    bool *bound = calloc((size_t)G->g->nnodes + 1, 1), *free_ = calloc((size_t)G->g->nnodes + 1, 1);
    if (!bound || !free_) {
        free(bound), free(free_);
        return NULL;
    }
    for (int k = 0; k < nm; k++) { /* members in id order: operands first */
        const IrNode *m = G->g->nodes[members[k]];
        bool b = m == norm || m == norm->ops[0] || m == G->act;
        for (int j = 0; j < m->nops && !b; j++) b = bound[m->ops[j]->id];
        bound[m->id] = b;
        free_[m->id] = !b && !G->stored[m->id] && !(G->cache_of && G->cache_of[m->id] >= 0) && m->op != IR_OP_KV_CACHE;
    }
    free(bound);
    return free_;
}

const IrNode *cg_row_norm(Gen *G, const int *members, int nm, IrDim *rows) {
    const IrGraph *g = G->g;
    const IrNode *norm = NULL;
    for (int k = 0; k < nm; k++) {
        const IrNode *n = g->nodes[members[k]];
        if (!cg_has_reduction_phase(n) || n == G->act) continue;
        if (norm || n->op != IR_OP_RMSNORM) return NULL;
        norm = n;
    }
    if (!norm) return NULL;
    const IrType *xt = &norm->ops[0]->type;
    if (xt->rank < 1 || !ir_dim_is_const(xt->dims[xt->rank - 1]) || !ir_dim_div(ir_type_numel(xt), xt->dims[xt->rank - 1], rows))
        return NULL;
    bool *fr = row_free_members(G, norm, members, nm);
    const IrNode *ok = norm;
    for (int k = 0; k < nm && ok; k++) {
        const IrNode *m = g->nodes[members[k]];
        IrDim w;
        if (m->op == IR_OP_CONST || m->op == IR_OP_KV_CACHE) continue; /* a cache its input's store appends to */
        if (fr && fr[m->id]) continue;                                  /* computed wherever it is read */
        if (!ir_dim_div(ir_type_numel(&m->type), *rows, &w) || !ir_dim_is_const(w)) ok = NULL;
        for (int j = 0; j < m->nops && ok; j++) {
            const IrNode *o = m->ops[j];
            if (G->local[o->id] < 0 || o->op == IR_OP_CONST || (fr && fr[o->id])) continue; /* loaded, a constant, or free */
            if (!reads_own_row(G, m, o, j, *rows)) ok = NULL;
        }
    }
    free(fr);
    return ok;
}

/* The row kernel of a group row_norm accepted, in its old form (one
 * 256-thread block a row): rmsnorm `norm`'s statistic for the block's row
 * (its slot set in G->stat beforehand), then the stores of the row. */
static void emit_row_kernel_one(Gen *G, const IrNode *norm, IrDim rows, const int *members, int nm, bool *done) {
    const IrNode *x = norm->ops[0];
    sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(256) %s(Args a) {  // rows: rmsnorm, then the row's stores; one block per row\n",
              cg_entry(G, G->nphases));
    sb_printf(&G->decl, "    const long long row = blockIdx.x, D = %s;\n    if (row >= %s) return;  // the whole block\n",
              cg_dim(G, x->type.dims[x->type.rank - 1]), cg_dim(G, rows));
    sb_printf(&G->decl, "    {\n"
                        "    __shared__ float red[8];\n"
                        "    float ss = 0.0f;\n    for (long long j = threadIdx.x; j < D; j += 256) { const float v = %s; ss += v * v; }\n"
                        "    ss = wsum(ss);\n"
                        "    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;\n"
                        "    __syncthreads();\n"
                        "    if (threadIdx.x == 0) {\n"
                        "        float t = 0.0f;\n"
                        "        for (int w = 0; w < 8; w++) t += red[w];\n"
                        "        st_f32(a.t[%d], row, 1.0f / sqrtf(t / (float)D + %.9ef));\n"
                        "    }\n"
                        "    __syncthreads();  // the row's statistic, for every thread's stores\n"
                        "    }\n",
              cg_read(G, x, "row * D + j"), G->stat[norm->id], (double)(float)ir_node_attr_float(norm, "eps", 1e-6));
    cg_emit_stores(G, members, nm, done, &rows);
    sb_puts(&G->decl, "}\n");
    cg_phase(G, CG_LAUNCH_BLOCK, rows, 1, ir_dim_const(1), 1, 0);
}

/* ---- wide row kernels ----------------------------------------------------
 *
 * A decode step has few rows (1 to 128) of 7,168, 1,536 or 512: one block a
 * row leaves all but a few SMs idle and its stores recompute every fused
 * value (the MoE combine re-reads its 8 expert rows). The wide forms
 * (DSCC_ROWS_WIDE=0: the old one) split a row of D = 128 n over a cluster
 * of C CTAs (C <= 8 dividing n, each part whole scale blocks) while the
 * rows are at most CG_ROWS_SPLIT_MAX, their sums of squares added through
 * distributed shared memory in rank order (every CTA gets the same bits);
 * above, one CTA a row of D / 8 threads. Each CTA keeps its part of the
 * norm's input x in shared memory (rowx, as the sum of squares reads it)
 * when every member reading x, through any chain, reads it at its own
 * flat index (row_cache_ok): its stores then read it there instead of
 * recomputing it. A member of D wide is stored by the CTA that holds its
 * part of the row; any other size strided over the row's CTAs. */
#define CG_ROWS_SPLIT_MAX 64
/* The prefill form (DSCC_ROWS_PREFILL=0: none), above CG_ROWS_PREFILL_MIN
 * rows where its vector loads and stores apply (see below): 8 elements a
 * thread, as many CTAs an SM as fit; of a row of at least
 * CG_ROWS_PREFILL_D (V3's hidden 7,168) CG_ROWS_PREFILL_ROWS rows a CTA in
 * turn, 16 elements a thread, the norm's weight read into shared memory
 * once for them instead of once a row. Narrower rows keep one CTA a row:
 * there fewer warps would cost more than the weight saves. */
#define CG_ROWS_PREFILL_MIN 128
#define CG_ROWS_PREFILL_ROWS 2
#define CG_ROWS_PREFILL_D 4096

/* CTAs a row of D for the cluster form: the most (<= 8) whose parts are whole 128-wide (and scale) blocks; 0: no wide form. */
static int row_parts(const Gen *G, int64_t D) {
    int64_t blk = G->act ? ir_node_attr_int(G->act, "block", 128) : 128;
    if (D < 128 || D % 128 || blk < 1) return 0;
    for (int c = 8; c >= 1; c--)
        if (D % (128 * c) == 0 && (D / c) % blk == 0) return c;
    return 0;
}

/* Whether member m reads o (its operand j) at its own flat index. */
static bool same_index_read(const IrNode *m, const IrNode *o, int j) {
    const IrType *t = &m->type, *ot = &o->type;
    if (!ir_dim_eq(ir_type_numel(ot), ir_type_numel(t))) return false;
    switch (m->op) {
    case IR_OP_RESHAPE: case IR_OP_CAST: case IR_OP_SIGMOID: case IR_OP_EXP: case IR_OP_NEG: case IR_OP_SQRT: case IR_OP_RSQRT:
    case IR_OP_SILU: case IR_OP_FRESH_SELECT:
        return true;
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAX: /* bcast_index's "i" */
        if (ot->rank != t->rank) return false;
        for (int k = 0; k < t->rank; k++)
            if (!ir_dim_eq(ot->dims[k], t->dims[k])) return false;
        return true;
    case IR_OP_RMSNORM: case IR_OP_QUANTIZE: return j == 0;
    default: return false;
    }
}

/* Whether the group's members read x, directly or through others, only at their own flat index (the merged act_scale
 * reads its blocks, which lie in one CTA's part): then a CTA's stores read x where it keeps its part. */
static bool row_cache_ok(Gen *G, const IrNode *x, const int *members, int nm) {
    bool *t = calloc((size_t)G->g->nnodes + 1, 1), ok = t != NULL;
    if (t) t[x->id] = true;
    for (int k = 0; k < nm && ok; k++) {
        const IrNode *m = G->g->nodes[members[k]];
        if (m == x || m == G->act) continue;
        for (int j = 0; j < m->nops && ok; j++) {
            if (!t[m->ops[j]->id]) continue;
            ok = same_index_read(m, m->ops[j], j);
            t[m->id] = true;
        }
    }
    free(t);
    return ok;
}

/* Before a wide row kernel's value functions: the cluster helpers, and x's row in shared memory (RX) when its readers
 * may read it there. Returns the cluster form's CTAs a row (0: the old form). */
int cg_row_prologue(Gen *G, const IrNode *norm, const int *members, int nm) {
    const IrNode *x = norm->ops[0], *w = norm->ops[1];
    G->rowc = NULL, G->rparts = G->rthreads = 0, G->rowd = 0, G->rown = NULL, G->rowg = 0;
    if (!G->rows_wide) return 0;
    int64_t D = x->type.dims[x->type.rank - 1].coeff;
    int C = row_parts(G, D);
    if (!C) return 0;
    G->rowd = D, G->rown = norm;
    if (C > 1) sb_puts(&G->decl, cg_kernel_prelude(G->a, "hopper")); /* the cluster helpers (hp_cluster_*, hp_dsmem_ld) */
    sb_puts(&G->decl, "__shared__ float rstat;  // the CTA's row statistic\n");
    if (D * 4 <= 44 * 1024 && row_cache_ok(G, x, members, nm)) { /* within 44 KB of static shared memory (48 KB the most) */
        sb_printf(&G->decl, "__shared__ long long rowb;  // the flat index of the row's first element (no 64-bit remainder a read)\n"
                            "__align__(16) __shared__ float rowx[%lld];  // the CTA's part of the row of the norm's input, as its sum of squares read it\n"
                            "__device__ __forceinline__ float RX(long long i) { return rowx[i - rowb]; }\n",
                  (long long)D);
        G->rowc = x;
        /* the norm's weight beside it, within the same 44 KB */
        bool wd = ir_dim_eq(ir_type_numel(&w->type), ir_dim_const(D));
        G->rowg = !wd ? 0 : D * 8 <= 44 * 1024 ? 1 : D * 6 <= 44 * 1024 && G->local[w->id] < 0 && G->dtype[w->id] == IR_DT_BF16 ? 2 : 0;
        if (G->rowg)
            sb_printf(&G->decl, "__align__(16) __shared__ %s rowg[%lld];  // ... and of the norm's weight\n"
                                "__device__ __forceinline__ float RG(long long i) { return %s; }\n",
                      G->rowg == 1 ? "float" : "unsigned short", (long long)D,
                      G->rowg == 1 ? "rowg[i - rowb]" : "bf2f(rowg[i - rowb])");
    }
    return C;
}

static int round_warps(int64_t n) { return n < 32 ? 32 : n > 1024 ? 1024 : (int)((n + 31) / 32 * 32); }

/* The load phase of a wide form: the thread's elements of the CTA's part of the row of x (their loads in flight at once,
 * their sum of squares), the norm's weight beside them (RG) on the CTA's first row, then both into shared memory. */
/* ---- the prefill form's vector loads --------------------------------------
 *
 * Where the norm's input is computed from plain bf16 or f32 tensors read at
 * the row's own columns (a slice of a wider row too) through reshapes,
 * float casts, fresh_select and elementwise add, sub, mul and max of
 * operands of its shape, the prefill form reads 8 consecutive elements a
 * thread in 16-byte loads and computes the value functions' arithmetic on
 * them; else (or a tensor not 16-byte aligned at run time) the value
 * functions read element by element. */
typedef struct {
    StrBuf *b;   /* the code */
    StrBuf *al;  /* " | a.t[s]" of every tensor read (the alignment test) */
    IrDim rows;
    int64_t D;
    int n;       /* arrays declared so far */
    const char *row; /* the row index ("0": a weight's one row) */
} RowVecLd;

/* v[8] = the 8 values of loaded tensor n at flat index row * W + off + c (W its row, off the column of the slice). */
static const char *vec_leaf(Gen *G, RowVecLd *l, const IrNode *n, int64_t W, int64_t off) {
    IrDType dt = G->dtype[n->id];
    int es = dt == IR_DT_BF16 ? 2 : 4;
    if (n->op == IR_OP_KV_CACHE || n->op == IR_OP_CONST || (G->kblock && G->kblock[n->id]) || (dt != IR_DT_BF16 && dt != IR_DT_F32) ||
        !ir_dim_eq(ir_type_numel(&n->type), ir_dim_mul(l->rows, ir_dim_const(W))) || (W * es) % 16 || (off * es) % 16 || off < 0 || off + l->D > W)
        return NULL;
    int s = cg_slot_value(G, n), v = l->n++;
    sb_printf(l->al, " | a.t[%d]", s);
    if (dt == IR_DT_BF16)
        sb_printf(l->b, "        float lv%d[8];\n        {\n            const uint4 u = *(const uint4 *)((const unsigned short *)a.t[%d] + %s * %lldLL + %lldLL + c);\n"
                        "            const unsigned w[4] = {u.x, u.y, u.z, u.w};\n"
                        "#pragma unroll\n            for (int e = 0; e < 8; e++) lv%d[e] = bf2f((unsigned short)(w[e >> 1] >> (16 * (e & 1))));\n        }\n",
                  v, s, l->row, (long long)W, (long long)off, v);
    else
        sb_printf(l->b, "        float lv%d[8];\n        {\n            const float *p = (const float *)a.t[%d] + %s * %lldLL + %lldLL + c;\n"
                        "            const float4 u0 = *(const float4 *)p, u1 = *(const float4 *)(p + 4);\n"
                        "            lv%d[0] = u0.x, lv%d[1] = u0.y, lv%d[2] = u0.z, lv%d[3] = u0.w, lv%d[4] = u1.x, lv%d[5] = u1.y, lv%d[6] = u1.z, lv%d[7] = u1.w;\n"
                        "        }\n",
                  v, s, l->row, (long long)W, (long long)off, v, v, v, v, v, v, v, v);
    return arena_printf(G->a, "lv%d", v);
}

static bool same_dims(const IrType *a, const IrType *b) {
    if (a->rank != b->rank) return false;
    for (int k = 0; k < a->rank; k++)
        if (!ir_dim_eq(a->dims[k], b->dims[k])) return false;
    return true;
}

/* The name of a float[8] holding node n's values at the thread's 8 columns c.. of row `row` (n's numel rows x D); NULL
 * when n is not of the forms above. */
static const char *vec_value(Gen *G, RowVecLd *l, const IrNode *n) {
    if (G->local[n->id] < 0) return vec_leaf(G, l, n, l->D, 0);
    if (!ir_dim_eq(ir_type_numel(&n->type), ir_dim_mul(l->rows, ir_dim_const(l->D)))) return NULL;
    switch (n->op) {
    case IR_OP_RESHAPE: return vec_value(G, l, n->ops[0]);
    case IR_OP_CAST: return ir_dtype_is_int(n->type.dtype) ? NULL : vec_value(G, l, n->ops[0]);
    case IR_OP_SLICE: {
        const IrNode *o = n->ops[0];
        const IrType *ot = &o->type;
        if (G->local[o->id] >= 0 || cg_axis(ir_node_attr_int(n, "axis", 0), ot->rank) != ot->rank - 1 || !ir_dim_is_const(ot->dims[ot->rank - 1]))
            return NULL;
        return vec_leaf(G, l, o, ot->dims[ot->rank - 1].coeff, ir_node_attr_int(n, "start", 0));
    }
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_MAX: {
        if (!same_dims(&n->ops[0]->type, &n->type) || !same_dims(&n->ops[1]->type, &n->type)) return NULL;
        const char *x = vec_value(G, l, n->ops[0]), *y = x ? vec_value(G, l, n->ops[1]) : NULL;
        if (!y) return NULL;
        int v = l->n++;
        const char *op = n->op == IR_OP_ADD ? "x + y" : n->op == IR_OP_SUB ? "x - y" : n->op == IR_OP_MUL ? "x * y" : "fmaxf(x, y)";
        sb_printf(l->b, "        float lv%d[8];\n#pragma unroll\n        for (int e = 0; e < 8; e++) {\n"
                        "            const float x = %s[e], y = %s[e];\n            lv%d[e] = %s;  // %s\n        }\n",
                  v, x, y, v, op, ir_op_name(n->op));
        return arena_printf(G->a, "lv%d", v);
    }
    case IR_OP_FRESH_SELECT: { /* only the chosen operand is read */
        int v = l->n++;
        sb_printf(l->b, "        float lv%d[8];\n        if (a.len == 0) {  // fresh_select\n", v);
        const char *x = vec_value(G, l, n->ops[0]);
        if (!x) return NULL;
        sb_printf(l->b, "#pragma unroll\n        for (int e = 0; e < 8; e++) lv%d[e] = %s[e];\n        } else {\n", v, x);
        const char *y = vec_value(G, l, n->ops[1]);
        if (!y) return NULL;
        sb_printf(l->b, "#pragma unroll\n        for (int e = 0; e < 8; e++) lv%d[e] = %s[e];\n        }\n", v, y);
        return arena_printf(G->a, "lv%d", v);
    }
    default: return NULL;
    }
}

/* Whether the prefill form's vector loads apply (emit_row_vec_loads's tests, nothing emitted). */
static bool row_vec_loads_ok(Gen *G, const IrNode *norm, IrDim rows, int T) {
    const IrNode *w = norm->ops[1];
    const int64_t D = G->rowd, NQ = D / 8;
    if (!G->rowc || !G->rowg || D % 128 || NQ % T || T % 32 || G->local[w->id] >= 0 || w->op == IR_OP_CONST || w->op == IR_OP_KV_CACHE ||
        !ir_dim_eq(ir_type_numel(&w->type), ir_dim_const(D)) || (G->dtype[w->id] != IR_DT_BF16 && G->dtype[w->id] != IR_DT_F32) ||
        (G->kblock && G->kblock[w->id]))
        return false;
    StrBuf b, al;
    sb_init(&b), sb_init(&al);
    RowVecLd l = {&b, &al, rows, D, 0, "row"};
    bool ok = vec_value(G, &l, norm->ops[0]) != NULL;
    sb_free(&b), sb_free(&al);
    return ok;
}

/* The vector load phase of the prefill form (T threads, one CTA a row, its weight into rowg on the CTA's first row
 * `first` when P > 1), emitted as the aligned branch before the element-wise one; false (nothing emitted) where it does
 * not apply. Opens "if (aligned) {", closed by the caller. */
static bool emit_row_vec_loads(Gen *G, const IrNode *norm, IrDim rows, int T, int P) {
    const IrNode *x = norm->ops[0], *w = norm->ops[1];
    const int64_t D = G->rowd, NQ = D / 8;
    if (!G->rowc || !G->rowg || D % 128 || NQ % T || T % 32 || G->local[w->id] >= 0 || w->op == IR_OP_CONST || w->op == IR_OP_KV_CACHE || !ir_dim_eq(ir_type_numel(&w->type), ir_dim_const(D)) ||
        (G->dtype[w->id] != IR_DT_BF16 && G->dtype[w->id] != IR_DT_F32) || (G->kblock && G->kblock[w->id]))
        return false;
    StrBuf b, al;
    sb_init(&b), sb_init(&al);
    RowVecLd l = {&b, &al, rows, D, 0, "row"};
    const char *xv = vec_value(G, &l, x);
    bool ok = xv != NULL;
    if (ok) {
        int sw = cg_slot_value(G, w);
        const char *first = P > 1 ? "if (first) " : "";
        sb_printf(&G->decl, "    if (((0ull%s | a.t[%d]) & 15) == 0) {  // 16-byte aligned: the vector loads\n"
                            "#pragma unroll\n    for (int k = 0; k < %lld; k++) {  // 8 consecutive elements a thread\n"
                            "        const int c = (threadIdx.x + k * %d) * 8;\n%s",
                  al.data, sw, (long long)(NQ / T), T, b.data);
        sb_printf(&G->decl, "#pragma unroll\n        for (int e = 0; e < 8; e++) ss += %s[e] * %s[e];\n"
                            "        *(float4 *)&rowx[c] = make_float4(%s[0], %s[1], %s[2], %s[3]);\n"
                            "        *(float4 *)&rowx[c + 4] = make_float4(%s[4], %s[5], %s[6], %s[7]);\n",
                  xv, xv, xv, xv, xv, xv, xv, xv, xv, xv);
        if (G->rowg == 2 && G->dtype[w->id] == IR_DT_BF16) /* the weight's bits as they are */
            sb_printf(&G->decl, "        %s*(uint4 *)&rowg[c] = *(const uint4 *)((const unsigned short *)a.t[%d] + c);\n", first, sw);
        else {
            RowVecLd lw = {&b, &al, ir_dim_const(1), D, l.n, "0LL"};
            b.len = 0;
            if (b.data) b.data[0] = '\0';
            const char *gv = vec_leaf(G, &lw, w, D, 0);
            const char *cv = G->rowg == 1 ? "%s[%d]" : "f2bf(%s[%d])";
            sb_printf(&G->decl, "        if (%s) {\n%s", P > 1 ? "first" : "true", b.data);
            for (int e = 0; e < 8; e++) {
                sb_printf(&G->decl, "        rowg[c + %d] = ", e);
                sb_printf(&G->decl, cv, gv, e);
                sb_puts(&G->decl, ";\n");
            }
            sb_puts(&G->decl, "        }\n");
        }
        sb_puts(&G->decl, "    }\n    } else {\n");
    }
    sb_free(&b), sb_free(&al);
    return ok;
}

static void emit_row_loads(Gen *G, const IrNode *norm, IrDim rows, const IrNode *rowc, int C, int T, int P, bool vec) {
    const IrNode *x = norm->ops[0];
    const int64_t D = G->rowd, CH = D / C, E = (CH + T - 1) / T;
    sb_printf(&G->decl, "    {\n    __shared__ float red[%d];\n    float ss = 0.0f;\n", T / 32);
    const bool v = vec && C == 1 && emit_row_vec_loads(G, norm, rows, T, P); /* its aligned branch, then "} else {" */
    G->rowc = NULL; /* the sum of squares computes x */
    const char *xv = cg_read(G, x, "i");
    G->rowc = rowc;
    const char *first = P > 1 ? "if (first) " : "";
    const char *brk = CH % T ? arena_printf(G->a, "        if (threadIdx.x + t * %d >= %lld) break;\n", T, (long long)CH) : "";
    /* the weight at the element's column c (no 64-bit remainder an element) */
    if (v) { /* the fallback of the vector loads (a tensor not 16-byte aligned): one element at a time, few registers */
        sb_printf(&G->decl, "#pragma unroll 1\n    for (int t = 0; t < %lld; t++) {  // the thread's elements, one at a time\n"
                            "        const long long c = threadIdx.x + t * %d, i = row * %lldLL + c;\n"
                            "        const float x = %s;\n        ss += x * x;\n        rowx[c] = x;\n",
                  (long long)E, T, (long long)D, xv);
        sb_printf(&G->decl, "        %srowg[c] = %s;\n    }\n    }\n", first,
                  arena_printf(G->a, G->rowg == 1 ? "%s" : "f2bf(%s)", cg_read(G, norm->ops[1], "c")));
        return;
    }
    const char *gv = G->rowg ? arena_printf(G->a, "        %sgr[t] = %s;\n", first, cg_read(G, norm->ops[1], "c")) : "";
    sb_printf(&G->decl, "    float xr[%lld]%s;\n"
                        "#pragma unroll\n    for (int t = 0; t < %lld; t++) {  // the thread's elements of the CTA's part, their loads in flight at once\n"
                        "        const long long c = part * %lldLL + threadIdx.x + t * %d, i = row * %lldLL + c;\n%s"
                        "        xr[t] = %s;\n%s        ss += xr[t] * xr[t];\n    }\n",
              (long long)E, G->rowg ? arena_printf(G->a, ", gr[%lld]", (long long)E) : "", (long long)E, (long long)CH, T, (long long)D,
              brk, xv, gv);
    if (rowc) /* after the loads (a generic store could alias them) */
        sb_printf(&G->decl, "#pragma unroll\n    for (int t = 0; t < %lld; t++) {\n%s        rowx[part * %lldLL + threadIdx.x + t * %d] = xr[t];\n%s    }\n",
                  (long long)E, brk, (long long)CH, T,
                  !G->rowg ? "" : arena_printf(G->a, "        %srowg[part * %lldLL + threadIdx.x + t * %d] = %s;\n", first, (long long)CH, T,
                                               G->rowg == 1 ? "gr[t]" : "f2bf(gr[t])"));
}

/* ---- the prefill form's vector stores ------------------------------------
 *
 * Where a group stores nothing but the quantize of its norm by the merged
 * act_scale (block 128, E4M3 codes), that scale, and the kept norm input
 * itself (the residual), the prefill form writes them 8 elements a thread:
 * x from rowx and the weight from rowg in 16-byte reads, the 128-wide
 * block's amax over a half-warp (4 shuffles), 8 codes in one 8-byte store
 * and 8 residual values in one 16-byte store, the same arithmetic as the
 * value functions (g * (x * rstat), amax / 448, code of y / scale). With a
 * tensor not 16-byte aligned the generic stores run instead. */
typedef struct {
    const IrNode *q, *x; /* the quantize; the stored norm input (NULL: not stored here) */
    const IrNode *y[2];  /* the stored norm, or reshapes of it (NULL: none) */
} RowVec;

/* Whether n is the norm's value: the norm, or a reshape of it. */
static bool row_is_norm(const IrNode *n, const IrNode *norm) {
    while (n->op == IR_OP_RESHAPE) n = n->ops[0];
    return n == norm;
}

/* Members the store passes write (gen.c's needs_store). */
static bool row_stores(const Gen *G, const IrNode *n) {
    return G->local[n->id] >= 0 && G->stored[n->id] && (n->op != IR_OP_SUM || cg_sum_inline(n)) && n->op != IR_OP_ACT_SCALE &&
           G->epi[n->id] != -2;
}

static bool row_vec_plain(const Gen *G, const IrNode *n) {
    return !(G->kblock && G->kblock[n->id]) && !(G->cache_of && G->cache_of[n->id] >= 0) && n->op != IR_OP_KV_CACHE;
}

/* Whether the group's stores take the vector form (T threads a CTA, one a row), and what they are. */
static bool row_vec_ok(const Gen *G, const IrNode *norm, const int *members, int nm, int T, RowVec *v) {
    const IrNode *A = G->act, *x = norm->ops[0];
    const int64_t D = G->rowd, NQ = D / 8;
    *v = (RowVec){0};
    if (!A || !row_is_norm(A->ops[0], norm) || ir_node_attr_int(A, "block", 128) != 128 || G->dtype[A->id] != IR_DT_F32 || G->rowc != x || !G->rowg ||
        D % 128 || NQ % T || T % 32)
        return false;
    const IrDim nkb = A->type.dims[A->type.rank - 1]; /* the row's scale blocks */
    if (A->type.rank < 1 || !ir_dim_is_const(nkb) || nkb.coeff != D / 128) return false;
    for (int k = 0; k < nm; k++) {
        const IrNode *m = G->g->nodes[members[k]];
        if (!row_stores(G, m)) continue;
        if (m->op == IR_OP_QUANTIZE && m->ops[0] == A->ops[0] && m->ops[1] == A && ir_node_attr_int(m, "block", 128) == 128 &&
            G->dtype[m->id] == IR_DT_FP8E4M3 && row_vec_plain(G, m) && !v->q)
            v->q = m;
        else if (m == x && (G->dtype[m->id] == IR_DT_BF16 || G->dtype[m->id] == IR_DT_F32) && row_vec_plain(G, m) && !v->x)
            v->x = m;
        else if (row_is_norm(m, norm) && (G->dtype[m->id] == IR_DT_BF16 || G->dtype[m->id] == IR_DT_F32) && row_vec_plain(G, m) && !v->y[1])
            v->y[v->y[0] != NULL] = m;
        else return false;
    }
    return v->q != NULL;
}

/* The store of 8 values v[0..7] of member m at the thread's 8 elements: one 16-byte store of bf16, two of f32. */
static void emit_row_vec_put(Gen *G, const IrNode *m, const char *v, const char *what) {
    int s = cg_slot_value(G, m);
    const long long D = (long long)G->rowd;
    if (G->dtype[m->id] == IR_DT_BF16)
        sb_printf(&G->decl, "        *(uint4 *)((unsigned short *)a.t[%d] + row * %lldLL + c) = make_uint4(  // %s\n"
                            "            f2bf(%s[0]) | (unsigned)f2bf(%s[1]) << 16, f2bf(%s[2]) | (unsigned)f2bf(%s[3]) << 16,\n"
                            "            f2bf(%s[4]) | (unsigned)f2bf(%s[5]) << 16, f2bf(%s[6]) | (unsigned)f2bf(%s[7]) << 16);\n",
                  s, D, what, v, v, v, v, v, v, v, v);
    else
        sb_printf(&G->decl, "        *(float4 *)((float *)a.t[%d] + row * %lldLL + c) = make_float4(%s[0], %s[1], %s[2], %s[3]);  // %s\n"
                            "        *(float4 *)((float *)a.t[%d] + row * %lldLL + c + 4) = make_float4(%s[4], %s[5], %s[6], %s[7]);\n",
                  s, D, v, v, v, v, what, s, D, v, v, v, v);
}

/* The vector stores of the row `row` (see RowVec). */
static void emit_row_vec(Gen *G, const RowVec *v, int T) {
    const IrNode *A = G->act;
    const int64_t D = G->rowd, NQ = D / 8;
    int sq = cg_slot_value(G, v->q), s = G->stat[A->id];
    const char *put = G->stored[A->id] ? arena_printf(G->a, "S%d(a, row * %lldLL + (q >> 4), sc)", s, (long long)(D / 128))
                                       : arena_printf(G->a, "st_f32(a.t[%d], row * %lldLL + (q >> 4), sc)", s, (long long)(D / 128));
    sb_printf(&G->decl, "#pragma unroll\n    for (int k = 0; k < %lld; k++) {  // 8 elements a thread, a half-warp a 128-wide scale block\n"
                        "        const int q = threadIdx.x + k * %d, c = q * 8;\n"
                        "        const float4 x0 = *(const float4 *)&rowx[c], x1 = *(const float4 *)&rowx[c + 4];\n"
                        "        const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};\n",
              (long long)(NQ / T), T);
    if (G->rowg == 2)
        sb_puts(&G->decl, "        const uint4 gw = *(const uint4 *)&rowg[c];\n        const unsigned gu[4] = {gw.x, gw.y, gw.z, gw.w};\n");
    else sb_puts(&G->decl, "        const float4 g0 = *(const float4 *)&rowg[c], g1 = *(const float4 *)&rowg[c + 4];\n"
                           "        const float gf[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};\n");
    sb_printf(&G->decl, "        float y[8], m = 0.0f;\n#pragma unroll\n        for (int e = 0; e < 8; e++) {\n"
                        "            y[e] = %s * (xv[e] * rstat);  // the norm's value function\n"
                        "            m = fmaxf(m, fabsf(y[e]));\n        }\n"
                        "        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));\n"
                        "        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));\n"
                        "        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));\n"
                        "        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));  // the block's amax in its 16 lanes\n"
                        "        const float sc = m / 448.0f;\n"
                        "        if ((threadIdx.x & 15) == 0) %s;\n"
                        "        unsigned w0 = 0u, w1 = 0u;\n"
                        "        if (sc > 0.0f) {\n#pragma unroll\n            for (int e = 0; e < 4; e++) {\n"
                        "                w0 |= (unsigned)fe4m3(y[e] / sc) << (8 * e);\n"
                        "                w1 |= (unsigned)fe4m3(y[e + 4] / sc) << (8 * e);\n            }\n        }\n"
                        "        *(uint2 *)((unsigned char *)a.t[%d] + row * %lldLL + c) = make_uint2(w0, w1);\n",
              G->rowg == 2 ? "bf2f((unsigned short)(gu[e >> 1] >> (16 * (e & 1))))" : "gf[e]", put, sq, (long long)D);
    if (v->x) emit_row_vec_put(G, v->x, "xv", "the norm's input");
    for (int k = 0; k < 2; k++)
        if (v->y[k]) emit_row_vec_put(G, v->y[k], "y", "the norm");
    sb_puts(&G->decl, "    }\n");
}

/* The stores of a wide form: the vector ones where row_vec_ok (16-byte aligned tensors at run time), else gen.c's. */
static void emit_row_stores(Gen *G, const IrNode *norm, IrDim rows, const int *members, int nm, bool *done, int T, bool vec) {
    RowVec v;
    if (!vec || !row_vec_ok(G, norm, members, nm, T, &v)) {
        cg_emit_stores(G, members, nm, done, &rows);
        return;
    }
    const IrNode *act = G->act;
    int sq = cg_slot_value(G, v.q);
    const char *sx = "";
    const IrNode *o[3] = {v.x, v.y[0], v.y[1]};
    for (int k = 0; k < 3; k++)
        if (o[k]) sx = arena_printf(G->a, "%s | a.t[%d]", sx, cg_slot_value(G, o[k]));
    sb_printf(&G->decl, "    if (((a.t[%d]%s) & 15) == 0) {  // 16-byte aligned: the vector stores\n", sq, sx);
    emit_row_vec(G, &v, T);
    sb_puts(&G->decl, "    } else {\n");
    cg_emit_stores(G, members, nm, done, &rows);
    sb_puts(&G->decl, "    }\n");
    G->act = act;
}

/* The prefill form's CTAs an SM: 2,048 threads, 227 KB of shared memory (rowx, rowg and a little), and at least 40
 * registers a thread of the 64 K (fewer spill at 7,168: ptxas, sm_90). */
static int row_min_blocks(const Gen *G, int T) {
    int64_t smem = (G->rowc ? G->rowd * 4 : 0) + (G->rowg == 1 ? G->rowd * 4 : G->rowg == 2 ? G->rowd * 2 : 0) + 256;
    int64_t b = 2048 / T, m = 227 * 1024 / smem, r = 65536 / ((int64_t)T * 40);
    if (m < b) b = m;
    if (r < b) b = r;
    return b < 1 ? 1 : (int)b;
}

/* One wide form: C CTAs a row (a cluster when C > 1) of T threads, P rows a CTA in turn (C = 1 only: the norm's weight
 * then kept from its first row on), for the rows `amin` < R <= `amax` (0: unbounded). */
static void emit_row_form(Gen *G, const IrNode *norm, IrDim rows, const int *members, int nm, bool *done, int C, int T, int P, bool vec,
                          int64_t amin, int64_t amax) {
    const IrNode *act = G->act, *rowc = G->rowc;
    const int64_t D = G->rowd, CH = D / C;
    G->rparts = C, G->rthreads = T;
    int ph = G->nphases;
    if (C > 1)
        sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(%d) __cluster_dims__(%d, 1, 1) %s(Args a) {  "
                            "// rows: rmsnorm, then the row's stores; a cluster of %d CTAs a row, %lld wide each\n",
                  T, C, cg_entry(G, ph), C, (long long)CH);
    else if (vec) /* as many CTAs an SM as its threads and shared memory allow: the registers capped to fit them */
        sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(%d, %d) %s(Args a) {  // rows: rmsnorm, then the row's stores; "
                            "%d row%s a block%s\n", T, row_min_blocks(G, T), cg_entry(G, ph), P, P > 1 ? "s" : "", P > 1 ? " in turn" : "");
    else
        sb_printf(&G->decl, "extern \"C\" __global__ void __launch_bounds__(%d) %s(Args a) {  // rows: rmsnorm, then the row's stores; one block a row\n", T, cg_entry(G, ph));
    if (P > 1)
        sb_printf(&G->decl, "    const long long part = 0;\n"
                            "    for (long long row = (long long)blockIdx.x * %d; row < ((long long)blockIdx.x + 1) * %d; row++) {\n"
                            "    const long long blk = row;\n    const bool first = row == (long long)blockIdx.x * %d;\n"
                            "    if (row >= %s) return;  // the whole block\n",
                  P, P, P, cg_dim(G, rows));
    else
        sb_printf(&G->decl, "    const long long row = blockIdx.x / %d, part = blockIdx.x %% %d, blk = blockIdx.x;\n    if (row >= %s) return;  // the whole %s\n",
                  C, C, cg_dim(G, rows), C > 1 ? "cluster" : "block");
    if (rowc) sb_printf(&G->decl, "    if (threadIdx.x == 0) rowb = row * %lldLL;  // for RX and RG, after the barrier below\n", (long long)D);
    emit_row_loads(G, norm, rows, rowc, C, T, P, vec);
    sb_puts(&G->decl, "    ss = wsum(ss);\n    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;\n    __syncthreads();\n");
    const char *st = arena_printf(G->a, "rstat = 1.0f / sqrtf(t / %.1ff + %.9ef)", (double)D, (double)(float)ir_node_attr_float(norm, "eps", 1e-6));
    if (C > 1 && G->rows_gather) /* the C parts read at once, a lane each, then summed in rank order in lane 0 (the same bits) */
        sb_printf(&G->decl, "    extern __shared__ float part_ss[];  // the CTA's part of the sum, which every CTA of the cluster reads\n"
                            "    if (threadIdx.x == 0) {\n        float t = 0.0f;\n        for (int w = 0; w < %d; w++) t += red[w];\n        part_ss[0] = t;\n    }\n"
                            "    hp_cluster_sync();  // every CTA's part\n"
                            "    if (threadIdx.x < 32) {\n"
                            "        const float pr = threadIdx.x < %du ? hp_dsmem_ld(part_ss, threadIdx.x) : 0.0f;  // the parts' reads in flight at once\n"
                            "        float t = 0.0f;\n"
                            "#pragma unroll\n        for (int r = 0; r < %d; r++) t += __shfl_sync(0xffffffffu, pr, r);  // in rank order: the same bits in every CTA\n"
                            "        if (threadIdx.x == 0) %s;\n    }\n"
                            "    hp_cluster_sync();  // the row's statistic for the CTA's stores; no CTA leaves while another reads its part\n    }\n",
                  T / 32, C, C, st);
    else if (C > 1)
        sb_printf(&G->decl, "    extern __shared__ float part_ss[];  // the CTA's part of the sum, which every CTA of the cluster reads\n"
                            "    if (threadIdx.x == 0) {\n        float t = 0.0f;\n        for (int w = 0; w < %d; w++) t += red[w];\n        part_ss[0] = t;\n    }\n"
                            "    hp_cluster_sync();  // every CTA's part\n"
                            "    if (threadIdx.x == 0) {\n"
                            "        const float t = hp_cluster_sum<%d>(part_ss);  // in rank order: the same bits in every CTA\n"
                            "        %s;\n    }\n"
                            "    hp_cluster_sync();  // the row's statistic for the CTA's stores; no CTA leaves while another reads its part\n    }\n",
                  T / 32, C, st);
    else
        sb_printf(&G->decl, "    if (threadIdx.x == 0) {\n        float t = 0.0f;\n        for (int w = 0; w < %d; w++) t += red[w];\n        %s;\n    }\n"
                            "    __syncthreads();  // the row's statistic, for every thread's stores\n    }\n",
                  T / 32, st);
    emit_row_stores(G, norm, rows, members, nm, done, T, vec);
    if (P > 1) sb_puts(&G->decl, "    __syncthreads();  // the row's stores done before the next row's loads take rowx, red and rstat\n    }\n");
    sb_puts(&G->decl, "}\n");
    cg_phase(G, CG_LAUNCH_BLOCK, rows, P, ir_dim_const(C), 1, C > 1 ? 16 : 0);
    CgPhase *f = &G->phases[G->nphases - 1];
    f->threads = T, f->amin = amin, f->amax = amax;
    G->act = act; /* emit_stores took it: the next form merges it again */
}

/* The row kernel of a group row_norm accepted: the wide forms (a cluster
 * of C CTAs a row up to CG_ROWS_SPLIT_MAX rows, one CTA a row above, and
 * above CG_ROWS_PREFILL_MIN the prefill form; C from row_prologue), or the
 * old one (C = 0). */
void cg_emit_row_kernel(Gen *G, const IrNode *norm, IrDim rows, const int *members, int nm, bool *done, int C) {
    if (!C) {
        emit_row_kernel_one(G, norm, rows, members, nm, done);
        return;
    }
    const int64_t D = G->rowd;
    /* the prefill form: at 7,168 two rows a CTA of 16 elements a thread (4 CTAs an SM, 44 KB of shared memory each) */
    const bool wide = D >= CG_ROWS_PREFILL_D;
    const int T = round_warps(D / 8), P = wide ? CG_ROWS_PREFILL_ROWS : 1, TP = wide && (D / 8) % round_warps(D / 16) == 0 ? round_warps(D / 16) : T;
    RowVec v; /* where its vector stores and loads both apply (else ptxas spills the two rows' values at 7,168) */
    const bool pre = G->rows_prefill && row_vec_ok(G, norm, members, nm, TP, &v) && row_vec_loads_ok(G, norm, rows, TP);
    if (C > 1) emit_row_form(G, norm, rows, members, nm, done, C, round_warps(D / C / 4), 1, false, 0, CG_ROWS_SPLIT_MAX);
    emit_row_form(G, norm, rows, members, nm, done, 1, T, 1, false, C > 1 ? CG_ROWS_SPLIT_MAX : 0, pre ? CG_ROWS_PREFILL_MIN : 0);
    if (pre) emit_row_form(G, norm, rows, members, nm, done, 1, TP, P, true, CG_ROWS_PREFILL_MIN, 0);
    G->act = NULL;
    G->rowc = NULL, G->rparts = G->rthreads = 0, G->rowd = 0, G->rown = NULL, G->rowg = 0;
}

/* ---- the latent row in an einsum's decode form (DSCC_EINSUM_KV=1) ------------------------------------------------
 *
 * The einsum's blocks 0 .. M - 1 do a row each with 256 threads: warps stand for the form's C CTAs of T threads (part
 * p: threads p T .. p T + T - 1), each thread summing the same elements in the same order, each warp's sum by the
 * same wsum, the CTAs' parts then the rows' in rank order from 0: the row kernel's statistic, bit for bit. The
 * stores then read it from rstat, as the wide forms' value functions do, a thread an element. */
int cg_row_side_form(const Gen *G, const IrNode *norm, int *T) {
    const IrNode *x = norm->ops[0];
    if (!G->rows_wide || !ir_dim_is_const(x->type.dims[x->type.rank - 1])) return 0;
    const int64_t D = x->type.dims[x->type.rank - 1].coeff;
    const int C = row_parts(G, D);
    if (!C) return 0;
    *T = C > 1 ? round_warps(D / C / 4) : round_warps(D / 8); /* cg_emit_row_kernel's forms up to CG_ROWS_SPLIT_MAX rows */
    return *T % 32 == 0 && C * *T <= 256 ? C : 0;
}

void cg_emit_row_side(Gen *G, const char *E, const IrNode *norm, IrDim rows, const int *members, int nm, int C, int T) {
    const IrNode *x = norm->ops[0];
    const int64_t D = G->rowd, CH = D / C, EL = (CH + T - 1) / T;
    bool *done = arena_alloc(G->a, (size_t)nm + 1);
    G->rowc = NULL; /* the sum of squares and the stores compute x */
    const char *xv = cg_read(G, x, "i");
    sb_printf(&G->decl, "// the latent's rows at a cached step (DSCC_EINSUM_KV=1; its row group launches nothing at these rows): block b\n"
                        "// rows b, b + grid, ..., the norm summed as the row kernel's form of %d CTA%s of %d threads sums it (warps for CTAs)\n"
                        "__device__ __forceinline__ void %s_side(const Args &a) {\n"
                        "    if (a.len == 0) return;  // nothing cached: the row group ran (a prefill's naive attention reads it)\n"
                        "    const long long D = %lldLL;\n"
                        "    __shared__ float kred[8];\n"
                        "    for (long long row = blockIdx.x; row < %s; row += gridDim.x) {  // the whole block\n"
                        "    {\n"
                        "    const int part = (int)threadIdx.x / %d, tid = (int)threadIdx.x %% %d;\n"
                        "    float ss = 0.0f;\n"
                        "    if (part < %d) {\n"
                        "#pragma unroll\n"
                        "        for (int t = 0; t < %lld; t++) {\n"
                        "            if (tid + t * %d >= %lld) break;\n"
                        "            const long long c = part * %lldLL + tid + t * %d, i = row * D + c;\n"
                        "            const float xr = %s;\n"
                        "            ss += xr * xr;\n"
                        "        }\n"
                        "    }\n"
                        "    ss = wsum(ss);\n"
                        "    if ((threadIdx.x & 31) == 0) kred[threadIdx.x >> 5] = ss;\n"
                        "    __syncthreads();\n"
                        "    if (threadIdx.x == 0) {  // each CTA's part from its warps, then the parts in rank order\n"
                        "        float t = 0.0f;\n"
                        "        for (int p = 0; p < %d; p++) {\n"
                        "            float s = 0.0f;\n"
                        "            for (int w = 0; w < %d; w++) s += kred[p * %d + w];\n"
                        "            t += s;\n"
                        "        }\n"
                        "        rstat = 1.0f / sqrtf(t / %.1ff + %.9ef);\n"
                        "    }\n"
                        "    __syncthreads();  // the row's statistic, for every thread's stores\n"
                        "    }\n",
              C, C > 1 ? "s" : "", T, E, (long long)D, cg_dim(G, rows), T, T, C, (long long)EL, T, (long long)CH, (long long)CH, T, xv,
              C, T / 32, T / 32, (double)D, (double)(float)ir_node_attr_float(norm, "eps", 1e-6));
    G->rparts = G->rthreads = 0; /* the stores: the row's elements a thread each, 256 threads */
    cg_emit_stores(G, members, nm, done, &rows);
    sb_puts(&G->decl, "    __syncthreads();  // the row's stores done before another row takes kred and rstat\n    }\n}\n");
}
