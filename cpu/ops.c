/* ops.c — one FP32 kernel per IR op, written for clarity first: loops over
 * row-major tensors, with threads where the work is (the GEMMs of gemm.c
 * for linear and expert_linear, einsum and attention over output rows).
 * Shapes were checked by the verifier; what can still go wrong here is
 * data (ids out of range), reported at the node's DSL location. */
#include "cpu/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(IR_OP_COUNT == 42, "a new op needs a CPU kernel in cpu/ops.c");

/* ---- helpers ----------------------------------------------------------- */

static int norm_axis(int64_t axis, int rank) { return (int)(axis < 0 ? axis + rank : axis); }

/* outer x axis x inner split of a shape around `ax`. */
static void split3(const Ten *t, int ax, int64_t *outer, int64_t *mid, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < ax; i++) *outer *= t->d[i];
    for (int i = ax + 1; i < t->rank; i++) *inner *= t->d[i];
    *mid = t->d[ax];
}

static bool data_error(const KernelCtx *c, const IrNode *n, const char *fmt, long long v, long long lim) {
    diag_error(c->diag, n->loc, fmt, ir_op_name(n->op), v, lim);
    return false;
}

/* ---- elementwise ---------------------------------------------------------- */

static float unary(IrOp op, float x) {
    switch (op) {
    case IR_OP_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case IR_OP_SILU: return x / (1.0f + expf(-x));
    case IR_OP_EXP: return expf(x);
    case IR_OP_NEG: return -x;
    case IR_OP_SQRT: return sqrtf(x);
    case IR_OP_RSQRT: return 1.0f / sqrtf(x);
    default: IR_UNREACHABLE();
    }
}

static float binary(IrOp op, float a, float b) {
    switch (op) {
    case IR_OP_ADD: return a + b;
    case IR_OP_SUB: return a - b;
    case IR_OP_MUL: return a * b;
    case IR_OP_DIV: return a / b;
    case IR_OP_MAX: return fmaxf(a, b);
    default: IR_UNREACHABLE();
    }
}

/* Strides of `t` seen from an output of rank r (0 where broadcast). */
static void bcast_strides(const Ten *t, const Ten *out, int64_t *st) {
    int64_t s = 1;
    for (int i = out->rank - 1, k = t->rank - 1; i >= 0; i--, k--) {
        if (k >= 0 && t->d[k] != 1) {
            st[i] = s;
            s *= t->d[k];
        } else {
            st[i] = 0;
            if (k >= 0) s *= t->d[k];
        }
    }
}

static void k_binary(IrOp op, Ten *out, const Ten *a, const Ten *b) {
    int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
    bcast_strides(a, out, sa);
    bcast_strides(b, out, sb);
    int64_t oa = 0, ob = 0;
    for (int64_t i = 0; i < out->n; i++) {
        out->p[i] = binary(op, a->p[oa], b->p[ob]);
        for (int k = out->rank - 1; k >= 0; k--) { /* odometer */
            idx[k]++;
            oa += sa[k];
            ob += sb[k];
            if (idx[k] < out->d[k]) break;
            oa -= sa[k] * idx[k];
            ob -= sb[k] * idx[k];
            idx[k] = 0;
        }
    }
}

/* ---- linear algebra --------------------------------------------------------- */

/* y = x · w_eᵀ per expert group (start, E; see CpuGemm), in FP32 or, for
 * a node marked FP8, on E4M3 codes: the rows quantized here per 1x128
 * tile, the weight's codes prepared at load time (or quantized now when w
 * is computed rather than loaded). */
static void run_linear(const KernelCtx *c, const IrNode *n, const float *x, const Ten *w, float *y, int64_t M,
                       const int64_t *start, int64_t E) {
    int64_t O = w->d[w->rank - 2], K = w->d[w->rank - 1], rows = start ? start[E] : M;
    CpuGemm g = {.x = x, .w = w->p, .y = y, .start = start, .M = M, .E = E, .K = K, .O = O};
    if (!c->fp8_node[n->id]) {
        cpu_gemm(c->threads, &g);
        return;
    }
    int64_t nkb = (K + 127) / 128, nob = (O + 127) / 128;
    const Fp8Weight *pw = &c->fp8_w[n->ops[1]->id];
    float *qx = malloc(sizeof(float) * (size_t)(rows * K + 1)), *sx = malloc(sizeof(float) * (size_t)(rows * nkb + 1));
    float *qw = NULL, *sw = NULL;
    if (!qx || !sx) dscc_internal_error(__FILE__, __LINE__, "out of host memory");
    cpu_fp8_act_quant(x, rows, K, 128, qx, sx);
    if (n->ops[1]->op != IR_OP_WEIGHT || !pw->codes) {
        qw = malloc(sizeof(float) * (size_t)(w->n + 1));
        sw = malloc(sizeof(float) * (size_t)(E * nob * nkb + 1));
        if (!qw || !sw) dscc_internal_error(__FILE__, __LINE__, "out of host memory");
        for (int64_t e = 0; e < E; e++) cpu_fp8_weight_quant(w->p + e * O * K, O, K, qw + e * O * K, sw + e * nob * nkb);
    }
    g.x = qx;
    g.xs = sx;
    g.w = qw ? qw : pw->codes;
    g.ws = sw ? sw : pw->scales;
    cpu_gemm(c->threads, &g);
    free(qx);
    free(sx);
    free(qw);
    free(sw);
}

/* Sorts the (token, slot) rows of idx [N,K] by expert: order[at] is the row
 * at sorted position at, start[e] .. start[e+1] the rows of expert e. False
 * after reporting an index outside 0..E-1. */
static bool group_by_expert(const KernelCtx *c, const IrNode *n, const Ten *idx, int64_t E, int64_t *order, int64_t *start) {
    int64_t rows = idx->n;
    for (int64_t r = 0; r < rows; r++) {
        float e = idx->p[r];
        if (e == -1.0f) continue; /* a dispatched slot whose expert is elsewhere */
        if (!(e >= 0 && e < (float)E))
            return data_error(c, n, "%s: expert index %lld is outside 0..%lld", (long long)e, (long long)E - 1);
        start[(int64_t)e + 1]++;
    }
    for (int64_t e = 0; e < E; e++) start[e + 1] += start[e];
    int64_t *fill = calloc((size_t)E + 1, sizeof(int64_t));
    for (int64_t r = 0; r < rows; r++) {
        if (idx->p[r] == -1.0f) continue;
        int64_t e = (int64_t)idx->p[r];
        order[start[e] + fill[e]++] = r;
    }
    free(fill);
    return true;
}

/* expert_linear and fp8_expert_linear: gather the rows (x[n,j] or the
 * broadcast x[n]) in expert order, one grouped GEMM, scatter back. For
 * fp8_expert_linear x is already codes and xs their tile scales. Slots
 * with id -1 (dispatched rows of experts elsewhere) are skipped: their
 * output is 0. */
static bool k_expert_linear(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in) {
    bool fp8_op = n->op == IR_OP_FP8_EXPERT_LINEAR;
    const Ten *x = in[0], *w = in[fp8_op ? 2 : 1], *idx = in[fp8_op ? 4 : 2];
    int64_t Ks = idx->d[1], E = w->d[0], O = w->d[1], I = w->d[2], rows = idx->n, nkb = (I + 127) / 128;
    bool bcast = x->rank == 2;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(rows + 1)), *start = calloc((size_t)E + 1, sizeof(int64_t));
    float *xs = malloc(sizeof(float) * (size_t)(rows * I + 1)), *ys = malloc(sizeof(float) * (size_t)(rows * O + 1));
    float *ss = fp8_op ? malloc(sizeof(float) * (size_t)(rows * nkb + 1)) : NULL;
    bool ok = group_by_expert(c, n, idx, E, order, start);
    rows = start[E]; /* the routed slots */
    memset(out->p, 0, sizeof(float) * (size_t)out->n);
    for (int64_t at = 0; ok && at < rows; at++) {
        int64_t src = bcast ? order[at] / Ks : order[at];
        memcpy(xs + at * I, x->p + src * I, sizeof(float) * (size_t)I);
        if (ss) memcpy(ss + at * nkb, in[1]->p + src * nkb, sizeof(float) * (size_t)nkb);
    }
    if (ok && fp8_op) {
        CpuGemm g = {.x = xs, .w = w->p, .y = ys, .start = start, .E = E, .K = I, .O = O, .xs = ss, .ws = in[3]->p};
        cpu_gemm(c->threads, &g);
    } else if (ok) {
        run_linear(c, n, xs, w, ys, rows, start, E);
    }
    for (int64_t at = 0; ok && at < rows; at++) memcpy(out->p + order[at] * O, ys + at * O, sizeof(float) * (size_t)O);
    free(order);
    free(start);
    free(xs);
    free(ys);
    free(ss);
    return ok;
}

typedef struct {
    const Ten *a, *b;
    Ten *out;
    int nout, ncon;
    int64_t ext_out[IR_MAX_RANK], sa_out[IR_MAX_RANK], sb_out[IR_MAX_RANK];
    int64_t ext_con[2 * IR_MAX_RANK], sa_con[2 * IR_MAX_RANK], sb_con[2 * IR_MAX_RANK], ncontract;
    int64_t *offa, *offb; /* [ncontract]: offsets of each contracted position */
} EinArgs;

/* Output elements [lo, hi): each one dot product over the contracted
 * letters, whose operand offsets were tabulated once (offa, offb). */
static void ein_rows(void *p, int64_t lo, int64_t hi) {
    EinArgs *e = p;
    for (int64_t i = lo; i < hi; i++) {
        int64_t rem = i, oa = 0, ob = 0;
        for (int k = e->nout - 1; k >= 0; k--) {
            int64_t v = rem % e->ext_out[k];
            rem /= e->ext_out[k];
            oa += v * e->sa_out[k];
            ob += v * e->sb_out[k];
        }
        const float *a = e->a->p + oa, *b = e->b->p + ob;
        float acc = 0;
        for (int64_t c = 0; c < e->ncontract; c++) acc += a[e->offa[c]] * b[e->offb[c]];
        e->out->p[i] = acc;
    }
}

/* Two-operand einsum by its letters: a letter in the output is a loop over
 * the output, any other is summed; a letter repeated within an operand
 * adds its strides (the diagonal). */
static bool k_einsum(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in) {
    const char *spec = ir_node_attr_str(n, "spec", "");
    const char *sub[2] = {spec, strchr(spec, ',') + 1}, *osub = strstr(spec, "->") + 2;
    int64_t ext[26] = {0}, sa[26] = {0}, sb[26] = {0};
    bool seen[26] = {0}, in_out[26] = {0};
    for (int k = 0; k < 2; k++) {
        const Ten *t = in[k];
        int64_t s = 1;
        for (int i = t->rank - 1; i >= 0; i--) {
            int l = sub[k][i] - 'a';
            seen[l] = true;
            ext[l] = t->d[i];
            (k ? sb : sa)[l] += s;
            s *= t->d[i];
        }
    }
    EinArgs e = {.a = in[0], .b = in[1], .out = out, .ncontract = 1};
    for (int i = 0; osub[i]; i++) {
        int l = osub[i] - 'a';
        in_out[l] = true;
        e.ext_out[e.nout] = ext[l];
        e.sa_out[e.nout] = sa[l];
        e.sb_out[e.nout++] = sb[l];
    }
    for (int l = 0; l < 26; l++)
        if (seen[l] && !in_out[l]) {
            e.ext_con[e.ncon] = ext[l];
            e.sa_con[e.ncon] = sa[l];
            e.sb_con[e.ncon++] = sb[l];
            e.ncontract *= ext[l];
        }
    e.offa = malloc(sizeof(int64_t) * (size_t)(e.ncontract + 1));
    e.offb = malloc(sizeof(int64_t) * (size_t)(e.ncontract + 1));
    if (!e.offa || !e.offb) {
        free(e.offa);
        free(e.offb);
        diag_error(c->diag, n->loc, "einsum: out of host memory for %lld contracted positions", (long long)e.ncontract);
        return false;
    }
    for (int64_t ci = 0; ci < e.ncontract; ci++) {
        int64_t r = ci, ca = 0, cb = 0;
        for (int k = e.ncon - 1; k >= 0; k--) {
            int64_t v = r % e.ext_con[k];
            r /= e.ext_con[k];
            ca += v * e.sa_con[k];
            cb += v * e.sb_con[k];
        }
        e.offa[ci] = ca;
        e.offb[ci] = cb;
    }
    cpu_parallel_for(c->threads, out->n, 1 + 16384 / (e.ncontract + 1), ein_rows, &e);
    free(e.offa);
    free(e.offb);
    return true;
}

/* ---- attention ------------------------------------------------------------ */

typedef struct {
    const Ten *q, *k, *v;
    Ten *out;
    float scale;
    bool causal;
} AttnArgs;

static void attn_rows(void *p, int64_t lo, int64_t hi) {
    AttnArgs *a = p;
    int64_t S = a->q->d[1], Hq = a->q->d[2], Dk = a->q->d[3];
    int64_t T = a->k->d[1], Hk = a->k->d[2], Dv = a->v->d[3];
    float *sc = malloc(sizeof(float) * (size_t)(T + 1));
    for (int64_t r = lo; r < hi; r++) { /* r = (b, s, h) */
        int64_t h = r % Hq, s = (r / Hq) % S, b = r / (Hq * S), hk = h / (Hq / Hk);
        int64_t last = a->causal ? s + (T - S) : T - 1;
        if (last > T - 1) last = T - 1;
        const float *q = a->q->p + r * Dk;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= last; j++) {
            const float *k = a->k->p + ((b * T + j) * Hk + hk) * Dk;
            float dot = 0;
            for (int64_t d = 0; d < Dk; d++) dot += q[d] * k[d];
            sc[j] = dot * a->scale;
            mx = fmaxf(mx, sc[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j <= last; j++) sum += (sc[j] = expf(sc[j] - mx));
        float *o = a->out->p + r * Dv;
        for (int64_t d = 0; d < Dv; d++) o[d] = 0;
        for (int64_t j = 0; j <= last; j++) {
            const float *v = a->v->p + ((b * T + j) * Hk + hk) * Dv;
            float w = sc[j] / sum;
            for (int64_t d = 0; d < Dv; d++) o[d] += w * v[d];
        }
    }
    free(sc);
}

/* ---- rotary embedding --------------------------------------------------- */

static void k_rope(const IrNode *n, Ten *out, const Ten *x, const Ten *pos) {
    int64_t d = x->d[x->rank - 1], B = x->d[0], S = x->d[1], heads = x->n / (B * S * d);
    double *inv = malloc(sizeof(double) * (size_t)(d / 2 + 1));
    double af = ir_rope_freqs(n, d, inv);
    bool inter = ir_node_attr_bool(n, "interleave", false);
    for (int64_t bs = 0; bs < B * S; bs++) {
        float p = pos->p[bs];
        for (int64_t i = 0; i < d / 2; i++) {
            /* transformers forms the angle in f32 from f32 inv_freq */
            float ang = p * (float)inv[i];
            float cs = cosf(ang) * (float)af, sn = sinf(ang) * (float)af;
            int64_t i0 = inter ? 2 * i : i, i1 = inter ? 2 * i + 1 : i + d / 2;
            for (int64_t h = 0; h < heads; h++) {
                const float *src = x->p + (bs * heads + h) * d;
                float *dst = out->p + (bs * heads + h) * d;
                float x0 = src[i0], x1 = src[i1];
                dst[i0] = x0 * cs - x1 * sn;
                dst[i1] = x1 * cs + x0 * sn;
            }
        }
    }
    free(inv);
}

/* ---- routing ------------------------------------------------------------- */

/* A routing score as selection ranks it: NaN as -inf (codegen's routing
 * kernels rank the same way). */
static float rank_key(float x) { return isnan(x) ? -INFINITY : x; }

/* Indices of the k largest of v[0..n) into out, largest first, ties to the
 * lower index, NaN ranked as -inf; entries with keep[i] false are skipped. */
static void top_k(const float *v, const bool *keep, int64_t n, int64_t k, float *out) {
    bool *taken = calloc((size_t)n + 1, 1);
    for (int64_t r = 0; r < k; r++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++)
            if (!taken[i] && (!keep || keep[i]) && (best < 0 || rank_key(v[i]) > rank_key(v[best]))) best = i;
        if (best < 0) best = 0;
        taken[best] = true;
        out[r] = (float)best;
    }
    free(taken);
}

static void k_group_topk(const IrNode *n, Ten *out, const Ten *x) {
    int64_t E = x->d[x->rank - 1], rows = x->n / E, k = ir_node_attr_int(n, "k", 1);
    int64_t G = ir_node_attr_int(n, "groups", 1), TG = ir_node_attr_int(n, "topk_groups", 1);
    int64_t gt = ir_node_attr_int(n, "group_top", 1), per = E / G;
    float *gscore = malloc(sizeof(float) * (size_t)G), *tmp = malloc(sizeof(float) * (size_t)(gt + TG + 1));
    bool *keep = malloc((size_t)E);
    for (int64_t r = 0; r < rows; r++) {
        const float *v = x->p + r * E;
        for (int64_t g = 0; g < G; g++) {
            top_k(v + g * per, NULL, per, gt, tmp);
            gscore[g] = 0;
            for (int64_t j = 0; j < gt; j++) gscore[g] += rank_key(v[g * per + (int64_t)tmp[j]]);
            gscore[g] = rank_key(gscore[g]);
        }
        top_k(gscore, NULL, G, TG, tmp);
        memset(keep, 0, (size_t)E);
        for (int64_t j = 0; j < TG; j++)
            for (int64_t e = 0; e < per; e++) keep[(int64_t)tmp[j] * per + e] = true;
        top_k(v, keep, E, k, out->p + r * k);
    }
    free(gscore);
    free(tmp);
    free(keep);
}

/* ---- layout ----------------------------------------------------------------- */

static void k_transpose(const IrNode *n, Ten *out, const Ten *x) {
    const IrAttr *perm = ir_node_attr(n, "perm");
    int64_t in_stride[IR_MAX_RANK], s = 1, st[IR_MAX_RANK];
    for (int i = x->rank - 1; i >= 0; i--) {
        in_stride[i] = s;
        s *= x->d[i];
    }
    for (int i = 0; i < out->rank; i++) st[i] = in_stride[perm->u.ints.v[i]];
    for (int64_t i = 0; i < out->n; i++) {
        int64_t rem = i, off = 0;
        for (int k = out->rank - 1; k >= 0; k--) {
            off += (rem % out->d[k]) * st[k];
            rem /= out->d[k];
        }
        out->p[i] = x->p[off];
    }
}

static void k_concat(const IrNode *n, Ten *out, Ten *const *in) {
    int ax = norm_axis(ir_node_attr_int(n, "axis", 0), out->rank);
    int64_t outer, mid, inner;
    split3(out, ax, &outer, &mid, &inner);
    int64_t at = 0;
    for (int k = 0; k < n->nops; k++) {
        int64_t m = in[k]->d[ax];
        for (int64_t o = 0; o < outer; o++)
            memcpy(out->p + (o * mid + at) * inner, in[k]->p + o * m * inner, sizeof(float) * (size_t)(m * inner));
        at += m;
    }
}

static bool k_gather(const KernelCtx *c, const IrNode *n, Ten *out, const Ten *x, const Ten *idx) {
    int ax = norm_axis(ir_node_attr_int(n, "axis", 0), x->rank);
    int64_t outer, mid, inner, iouter, imid, iinner;
    split3(x, ax, &outer, &mid, &inner);
    split3(idx, ax, &iouter, &imid, &iinner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t m = 0; m < imid; m++)
            for (int64_t i = 0; i < inner; i++) {
                float j = idx->p[(o * imid + m) * inner + i];
                if (!(j >= 0 && j < (float)mid)) return data_error(c, n, "%s: index %lld is outside 0..%lld", (long long)j, (long long)mid - 1);
                out->p[(o * imid + m) * inner + i] = x->p[(o * mid + (int64_t)j) * inner + i];
            }
    return true;
}

static void k_reduce(const IrNode *n, Ten *out, const Ten *x) {
    int ax = norm_axis(ir_node_attr_int(n, "axis", 0), x->rank);
    int64_t outer, mid, inner;
    split3(x, ax, &outer, &mid, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *src = x->p + o * mid * inner + i;
            if (n->op == IR_OP_SUM) {
                float acc = 0;
                for (int64_t m = 0; m < mid; m++) acc += src[m * inner];
                out->p[o * inner + i] = acc;
                continue;
            }
            float mx = -INFINITY, sum = 0;
            for (int64_t m = 0; m < mid; m++) mx = fmaxf(mx, src[m * inner]);
            for (int64_t m = 0; m < mid; m++) sum += expf(src[m * inner] - mx);
            for (int64_t m = 0; m < mid; m++) out->p[(o * mid + m) * inner + i] = expf(src[m * inner] - mx) / sum;
        }
}

/* dispatch on one process, which holds every expert: row block 0 is x
 * itself, the other W-1 blocks are rows nobody sent (ids -1, values 0). */
static void k_dispatch(const IrNode *n, Ten *out, const Ten *x) {
    float fill = n->ops[0] == n->ops[1] ? -1.0f : 0.0f;
    memcpy(out->p, x->p, sizeof(float) * (size_t)x->n);
    for (int64_t i = x->n; i < out->n; i++) out->p[i] = fill;
}

/* combine on one process: each own token (row block 0) sums wd * y over
 * its slots in slot order, in f32, skipping slots with id -1. */
static void k_combine(Ten *out, const Ten *y, const Ten *wd, const Ten *idd) {
    int64_t N = out->d[0], K = y->d[1], O = out->n / (N > 0 ? N : 1);
    for (int64_t t = 0; t < N; t++) {
        float *o = out->p + t * O;
        for (int64_t j = 0; j < O; j++) o[j] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            if (idd->p[t * K + k] == -1.0f) continue;
            float w = wd->p[t * K + k];
            const float *v = y->p + (t * K + k) * O;
            for (int64_t j = 0; j < O; j++) o[j] += w * v[j];
        }
    }
}

bool cpu_kernel(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in) {
    switch (n->op) {
    case IR_OP_ACT_SCALE: case IR_OP_QUANTIZE: {
        int64_t K = in[0]->d[in[0]->rank - 1], b = ir_node_attr_int(n, "block", 128), nkb = (K + b - 1) / b;
        if (n->op == IR_OP_ACT_SCALE) {
            cpu_fp8_act_quant(in[0]->p, in[0]->n / K, K, b, NULL, out->p);
            return true;
        }
        for (int64_t m = 0; m < in[0]->n / K; m++) /* with the given scales, which act_scale made */
            for (int64_t k = 0; k < K; k++) {
                float s = in[1]->p[m * nkb + k / b];
                out->p[m * K + k] = s > 0 ? cpu_fp8_round(in[0]->p[m * K + k] / s) : 0.0f;
            }
        return true;
    }
    case IR_OP_FP8_LINEAR: {
        int64_t K = in[2]->d[1];
        CpuGemm g = {.x = in[0]->p, .w = in[2]->p, .y = out->p, .M = in[0]->n / K, .E = 1, .K = K, .O = in[2]->d[0],
                     .xs = in[1]->p, .ws = in[3]->p};
        cpu_gemm(c->threads, &g);
        return true;
    }
    case IR_OP_FP8_EXPERT_LINEAR:
    case IR_OP_EXPERT_LINEAR: return k_expert_linear(c, n, out, in);
    case IR_OP_CONST:
        out->p[0] = (float)ir_node_attr_float(n, "value", 0);
        return true;
    case IR_OP_EMBEDDING: {
        int64_t V = in[0]->d[0], D = in[0]->d[1];
        for (int64_t i = 0; i < in[1]->n; i++) {
            float id = in[1]->p[i];
            if (!(id >= 0 && id < (float)V)) return data_error(c, n, "%s: token id %lld is outside the vocabulary 0..%lld", (long long)id, (long long)V - 1);
            memcpy(out->p + i * D, in[0]->p + (int64_t)id * D, sizeof(float) * (size_t)D);
        }
        return true;
    }
    case IR_OP_LINEAR: run_linear(c, n, in[0]->p, in[1], out->p, in[0]->n / in[1]->d[1], NULL, 1); return true;
    case IR_OP_EINSUM: return k_einsum(c, n, out, in);
    case IR_OP_RMSNORM: {
        int64_t D = in[1]->n;
        float eps = (float)ir_node_attr_float(n, "eps", 1e-6);
        for (int64_t r = 0; r < in[0]->n / D; r++) {
            const float *x = in[0]->p + r * D;
            float ss = 0;
            for (int64_t i = 0; i < D; i++) ss += x[i] * x[i];
            float inv = 1.0f / sqrtf(ss / (float)D + eps);
            for (int64_t i = 0; i < D; i++) out->p[r * D + i] = in[1]->p[i] * (x[i] * inv);
        }
        return true;
    }
    case IR_OP_ROPE: k_rope(n, out, in[0], in[1]); return true;
    case IR_OP_ATTENTION: {
        AttnArgs a = {in[0], in[1], in[2], out, (float)ir_node_attr_float(n, "scale", 1), ir_node_attr_bool(n, "causal", false)};
        cpu_parallel_for(c->threads, in[0]->d[0] * in[0]->d[1] * in[0]->d[2], 4, attn_rows, &a);
        return true;
    }
    case IR_OP_SIGMOID: case IR_OP_SILU: case IR_OP_EXP: case IR_OP_NEG: case IR_OP_SQRT: case IR_OP_RSQRT:
        for (int64_t i = 0; i < out->n; i++) out->p[i] = unary(n->op, in[0]->p[i]);
        return true;
    case IR_OP_CAST:
        if (ir_dtype_is_int(n->type.dtype))
            for (int64_t i = 0; i < out->n; i++) out->p[i] = truncf(in[0]->p[i]);
        else memcpy(out->p, in[0]->p, sizeof(float) * (size_t)out->n);
        return true;
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAX:
        k_binary(n->op, out, in[0], in[1]);
        return true;
    case IR_OP_SOFTMAX: case IR_OP_SUM: k_reduce(n, out, in[0]); return true;
    case IR_OP_RESHAPE: memcpy(out->p, in[0]->p, sizeof(float) * (size_t)out->n); return true;
    case IR_OP_DISPATCH: k_dispatch(n, out, in[0]); return true;
    case IR_OP_COMBINE: k_combine(out, in[0], in[1], in[2]); return true;
    case IR_OP_TRANSPOSE: k_transpose(n, out, in[0]); return true;
    case IR_OP_SLICE: {
        int ax = norm_axis(ir_node_attr_int(n, "axis", 0), in[0]->rank);
        int64_t outer, mid, inner, start = ir_node_attr_int(n, "start", 0), len = out->d[ax];
        split3(in[0], ax, &outer, &mid, &inner);
        if (start < 0) start += mid; /* counted from the axis end (shape.c checked it lies inside) */
        for (int64_t o = 0; o < outer; o++)
            memcpy(out->p + o * len * inner, in[0]->p + (o * mid + start) * inner, sizeof(float) * (size_t)(len * inner));
        return true;
    }
    case IR_OP_CONCAT: k_concat(n, out, in); return true;
    case IR_OP_SPLIT_BATCH: {
        int64_t per = out->n, idx = ir_node_attr_int(n, "index", 0);
        memcpy(out->p, in[0]->p + idx * per, sizeof(float) * (size_t)per);
        return true;
    }
    case IR_OP_MERGE_BATCH: {
        int64_t at = 0;
        for (int k = 0; k < n->nops; k++) {
            memcpy(out->p + at, in[k]->p, sizeof(float) * (size_t)in[k]->n);
            at += in[k]->n;
        }
        return true;
    }
    case IR_OP_TOPK: {
        int64_t E = in[0]->d[in[0]->rank - 1], k = out->d[out->rank - 1];
        for (int64_t r = 0; r < in[0]->n / E; r++) top_k(in[0]->p + r * E, NULL, E, k, out->p + r * k);
        return true;
    }
    case IR_OP_GROUP_TOPK: k_group_topk(n, out, in[0]); return true;
    case IR_OP_GATHER: return k_gather(c, n, out, in[0], in[1]);
    default: IR_UNREACHABLE(); /* input, weight, kv_cache, fresh_select, output: the executor's */
    }
}
