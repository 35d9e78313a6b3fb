/* ops.c — one FP32 kernel per IR op, written for clarity first: loops over
 * row-major tensors with the parallel-for around the ones that carry the
 * work (linear, expert_linear, einsum, attention). Shapes were checked by
 * the verifier; what can still go wrong here is data (ids out of range). */
#include "cpu/internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(IR_OP_COUNT == 41, "a new op needs a CPU kernel in cpu/ops.c");

/* ---- parallel for -------------------------------------------------------- */

typedef struct {
    void (*fn)(void *, int64_t, int64_t);
    void *arg;
    int64_t lo, hi;
} Range;

static void *run_range(void *p) {
    Range *r = p;
    r->fn(r->arg, r->lo, r->hi);
    return NULL;
}

void cpu_parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void *, int64_t, int64_t), void *arg) {
    if (n <= 0) return;
    int t = threads < 1 ? 1 : threads > 64 ? 64 : threads;
    if (grain < 1) grain = 1;
    if ((int64_t)t > n / grain) t = (int)(n / grain);
    if (t <= 1) {
        fn(arg, 0, n);
        return;
    }
    pthread_t tid[64];
    Range r[64];
    bool started[64] = {0};
    for (int i = 0; i < t; i++) {
        r[i] = (Range){fn, arg, n * i / t, n * (i + 1) / t};
        if (i > 0) started[i] = pthread_create(&tid[i], NULL, run_range, &r[i]) == 0;
    }
    run_range(&r[0]);
    for (int i = 1; i < t; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else run_range(&r[i]); /* could not start a thread: do it here */
    }
}

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

typedef struct {
    const float *x, *w;
    float *y;
    int64_t K, O;
} LinArgs;

static void lin_rows(void *p, int64_t lo, int64_t hi) {
    LinArgs *a = p;
    for (int64_t m = lo; m < hi; m++)
        for (int64_t o = 0; o < a->O; o++) {
            const float *xr = a->x + m * a->K, *wr = a->w + o * a->K;
            float acc = 0;
            for (int64_t k = 0; k < a->K; k++) acc += xr[k] * wr[k];
            a->y[m * a->O + o] = acc;
        }
}

static void linear_f32(const KernelCtx *c, const float *x, const float *w, float *y, int64_t M, int64_t K, int64_t O,
                       bool fp8) {
    if (fp8) {
        cpu_fp8_linear(x, w, y, M, K, O);
        return;
    }
    LinArgs a = {x, w, y, K, O};
    cpu_parallel_for(c->threads, M, 1 + 65536 / (K * O + 1), lin_rows, &a);
}

static bool k_expert_linear(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in) {
    const Ten *x = in[0], *w = in[1], *idx = in[2];
    int64_t N = idx->d[0], Kslots = idx->d[1], E = w->d[0], O = w->d[1], I = w->d[2];
    bool bcast = x->rank == 2;
    /* Group the (token, slot) rows by expert, then one GEMM per expert. */
    int64_t rows = N * Kslots;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(rows + 1)), *start = calloc((size_t)E + 1, sizeof(int64_t));
    float *xs = malloc(sizeof(float) * (size_t)(rows * I + 1)), *ys = malloc(sizeof(float) * (size_t)(rows * O + 1));
    bool ok = true;
    for (int64_t r = 0; r < rows && ok; r++) {
        float e = idx->p[r];
        if (!(e >= 0 && e < (float)E)) ok = data_error(c, n, "%s: expert index %lld is outside 0..%lld", (long long)e, (long long)E - 1);
        else start[(int64_t)e + 1]++;
    }
    if (ok) {
        for (int64_t e = 0; e < E; e++) start[e + 1] += start[e];
        int64_t *fill = calloc((size_t)E + 1, sizeof(int64_t));
        for (int64_t r = 0; r < rows; r++) {
            int64_t e = (int64_t)idx->p[r], at = start[e] + fill[e]++;
            order[at] = r;
            memcpy(xs + at * I, x->p + (bcast ? r / Kslots : r) * I, sizeof(float) * (size_t)I);
        }
        free(fill);
        for (int64_t e = 0; e < E; e++) {
            int64_t m = start[e + 1] - start[e];
            if (m) linear_f32(c, xs + start[e] * I, w->p + e * O * I, ys + start[e] * O, m, I, O, c->fp8_node[n->id]);
        }
        for (int64_t at = 0; at < rows; at++) memcpy(out->p + order[at] * O, ys + at * O, sizeof(float) * (size_t)O);
    }
    free(order);
    free(start);
    free(xs);
    free(ys);
    return ok;
}

typedef struct {
    const Ten *a, *b;
    Ten *out;
    int nout, ncon;
    int64_t ext_out[IR_MAX_RANK], sa_out[IR_MAX_RANK], sb_out[IR_MAX_RANK];
    int64_t ext_con[2 * IR_MAX_RANK], sa_con[2 * IR_MAX_RANK], sb_con[2 * IR_MAX_RANK], ncontract;
} EinArgs;

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
        float acc = 0;
        for (int64_t cidx = 0; cidx < e->ncontract; cidx++) {
            int64_t r = cidx, ca = oa, cb = ob;
            for (int k = e->ncon - 1; k >= 0; k--) {
                int64_t v = r % e->ext_con[k];
                r /= e->ext_con[k];
                ca += v * e->sa_con[k];
                cb += v * e->sb_con[k];
            }
            acc += e->a->p[ca] * e->b->p[cb];
        }
        e->out->p[i] = acc;
    }
}

static void k_einsum(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in) {
    const char *spec = ir_node_attr_str(n, "spec", "");
    const char *sub[2] = {spec, strchr(spec, ',') + 1}, *osub = strstr(spec, "->") + 2;
    int64_t ext[26] = {0}, sa[26] = {0}, sb[26] = {0};
    for (int k = 0; k < 2; k++) {
        const Ten *t = in[k];
        int64_t s = 1;
        for (int i = t->rank - 1; i >= 0; i--) {
            int l = sub[k][i] - 'a';
            ext[l] = t->d[i];
            (k ? sb : sa)[l] += s;
            s *= t->d[i];
        }
    }
    EinArgs e = {.a = in[0], .b = in[1], .out = out, .ncontract = 1};
    bool in_out[26] = {0};
    for (int i = 0; osub[i]; i++) {
        int l = osub[i] - 'a';
        in_out[l] = true;
        e.ext_out[e.nout] = ext[l];
        e.sa_out[e.nout] = sa[l];
        e.sb_out[e.nout++] = sb[l];
    }
    for (int l = 0; l < 26; l++)
        if (ext[l] && !in_out[l]) {
            e.ext_con[e.ncon] = ext[l];
            e.sa_con[e.ncon] = sa[l];
            e.sb_con[e.ncon++] = sb[l];
            e.ncontract *= ext[l];
        }
    cpu_parallel_for(c->threads, out->n, 1 + 16384 / (e.ncontract + 1), ein_rows, &e);
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

static double yarn_get_mscale(double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0; }

/* inv_freq[d/2] and the cos/sin factor of a rope node (transformers' YaRN). */
static double rope_freqs(const IrNode *n, int64_t d, double *inv) {
    double theta = ir_node_attr_float(n, "theta", 10000.0);
    const IrAttr *fa = ir_node_attr(n, "factor");
    for (int64_t i = 0; i < d / 2; i++) inv[i] = 1.0 / pow(theta, (double)(2 * i) / (double)d);
    if (!fa) return 1.0;
    double factor = fa->u.f;
    double orig = (double)ir_node_attr_int(n, "original_max_position", 4096);
    double bf = ir_node_attr_float(n, "beta_fast", 32.0), bs = ir_node_attr_float(n, "beta_slow", 1.0);
    double corr_lo = (double)d * log(orig / (bf * 2 * M_PI)) / (2 * log(theta));
    double corr_hi = (double)d * log(orig / (bs * 2 * M_PI)) / (2 * log(theta));
    double lo = floor(corr_lo), hi = ceil(corr_hi);
    if (lo < 0) lo = 0;
    if (hi > (double)(d - 1)) hi = (double)(d - 1);
    if (lo == hi) hi += 0.001;
    for (int64_t i = 0; i < d / 2; i++) {
        double ramp = ((double)i - lo) / (hi - lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double extra = 1.0 - ramp; /* weight of the extrapolated (original) frequency */
        inv[i] = (inv[i] / factor) * (1.0 - extra) + inv[i] * extra;
    }
    const IrAttr *ms = ir_node_attr(n, "mscale"), *msa = ir_node_attr(n, "mscale_all_dim");
    if (ms && msa && ms->u.f != 0 && msa->u.f != 0)
        return yarn_get_mscale(factor, ms->u.f) / yarn_get_mscale(factor, msa->u.f);
    return yarn_get_mscale(factor, 1.0);
}

static void k_rope(const IrNode *n, Ten *out, const Ten *x, const Ten *pos) {
    int64_t d = x->d[x->rank - 1], B = x->d[0], S = x->d[1], heads = x->n / (B * S * d);
    double *inv = malloc(sizeof(double) * (size_t)(d / 2 + 1));
    double af = rope_freqs(n, d, inv);
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

/* Indices of the k largest of v[0..n) into out, largest first, ties to the
 * lower index; entries with keep[i] false are skipped. */
static void top_k(const float *v, const bool *keep, int64_t n, int64_t k, float *out) {
    bool *taken = calloc((size_t)n + 1, 1);
    for (int64_t r = 0; r < k; r++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++)
            if (!taken[i] && (!keep || keep[i]) && (best < 0 || v[i] > v[best])) best = i;
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
            for (int64_t j = 0; j < gt; j++) gscore[g] += v[g * per + (int64_t)tmp[j]];
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

/* fp8_expert_linear: rows grouped by expert, one block-scaled GEMM each. */
static bool k_fp8_expert_linear(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in) {
    const Ten *q = in[0], *qs = in[1], *w = in[2], *ws = in[3], *idx = in[4];
    int64_t N = idx->d[0], Ks = idx->d[1], E = w->d[0], O = w->d[1], I = w->d[2], nkb = (I + 127) / 128;
    int64_t wsz = ws->n / E;
    bool bcast = q->rank == 2;
    float *xq = malloc(sizeof(float) * (size_t)(I + 1)), *xs = malloc(sizeof(float) * (size_t)(nkb + 1));
    bool ok = true;
    for (int64_t r = 0; r < N * Ks && ok; r++) {
        float e = idx->p[r];
        if (!(e >= 0 && e < (float)E)) {
            ok = data_error(c, n, "%s: expert index %lld is outside 0..%lld", (long long)e, (long long)E - 1);
            break;
        }
        int64_t src = bcast ? r / Ks : r;
        memcpy(xq, q->p + src * I, sizeof(float) * (size_t)I);
        memcpy(xs, qs->p + src * nkb, sizeof(float) * (size_t)nkb);
        cpu_fp8_gemm(xq, xs, w->p + (int64_t)e * O * I, ws->p + (int64_t)e * wsz, out->p + r * O, 1, I, O);
    }
    free(xq);
    free(xs);
    return ok;
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
        int64_t K = in[2]->d[1], O = in[2]->d[0];
        cpu_fp8_gemm(in[0]->p, in[1]->p, in[2]->p, in[3]->p, out->p, in[0]->n / K, K, O);
        return true;
    }
    case IR_OP_FP8_EXPERT_LINEAR: return k_fp8_expert_linear(c, n, out, in);
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
    case IR_OP_LINEAR: {
        int64_t K = in[1]->d[1], O = in[1]->d[0];
        linear_f32(c, in[0]->p, in[1]->p, out->p, in[0]->n / K, K, O, c->fp8_node[n->id]);
        return true;
    }
    case IR_OP_EINSUM: k_einsum(c, n, out, in); return true;
    case IR_OP_EXPERT_LINEAR: return k_expert_linear(c, n, out, in);
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
    case IR_OP_RESHAPE:
    case IR_OP_DISPATCH: /* one process holds every expert: the value is where it is needed */
    case IR_OP_COMBINE:
        memcpy(out->p, in[0]->p, sizeof(float) * (size_t)out->n);
        return true;
    case IR_OP_TRANSPOSE: k_transpose(n, out, in[0]); return true;
    case IR_OP_SLICE: {
        int ax = norm_axis(ir_node_attr_int(n, "axis", 0), in[0]->rank);
        int64_t outer, mid, inner, start = ir_node_attr_int(n, "start", 0), len = out->d[ax];
        split3(in[0], ax, &outer, &mid, &inner);
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
    default: IR_UNREACHABLE(); /* input, weight, kv_cache, output: the executor's */
    }
}
