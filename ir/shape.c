/* shape.c — attribute schema checks and the shape rule of every op.
 *
 * One function, one case per op: ir_infer_type is what the builder, the
 * text parser and the verifier all call, so a graph that verifies has
 * exactly the types these rules give. Error text prints the actual types,
 * because "shape mismatch" alone sends the user hunting. */
#include "ir/ir.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

_Static_assert(IR_OP_COUNT == 42, "a new op in ops.def needs a shape rule here");

typedef struct {
    const IrGraph *g;
    char *err;
    size_t errlen;
} Ctx;

static bool fail(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(Ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return false;
}

/* Prints a type into a small rotating buffer for error messages. */
static const char *ts(Ctx *c, const IrType *t) {
    static _Thread_local char bufs[4][160];
    static _Thread_local int k;
    StrBuf sb;
    sb_init(&sb);
    ir_type_print(c->g, t, &sb);
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s", sb.data ? sb.data : "?");
    sb_free(&sb);
    return b;
}

static const char *ds(Ctx *c, IrDim d) {
    IrType t = {.dtype = IR_DT_F32, .rank = 1, .dims = {d}};
    const char *s = ts(c, &t); /* "f32[X]" -> "X" */
    static _Thread_local char buf[4][160];
    static _Thread_local int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%.*s", (int)strlen(s) - 5, s + 4);
    return b;
}

/* Checks the node's attributes against its op's schema. */
static bool check_attrs(Ctx *c, const IrNode *n) {
    static const char *kinds[] = {"an int", "a float", "a bool", "a string", "an int list", "a dtype"};
    for (int i = 0; i < n->nattrs; i++) {
        IrAttrKind k;
        bool opt;
        if (ir_schema_find(n->op, n->attrs[i].name, &k, &opt) < 0)
            return fail(c, "unknown attribute '%s' (valid: %s)", n->attrs[i].name,
                        *ir_op_info[n->op].attrs ? ir_op_info[n->op].attrs : "none");
        if (k != n->attrs[i].kind) return fail(c, "attribute '%s' must be %s", n->attrs[i].name, kinds[k]);
        for (int j = 0; j < i; j++)
            if (strcmp(n->attrs[j].name, n->attrs[i].name) == 0)
                return fail(c, "attribute '%s' given twice", n->attrs[i].name);
    }
    const char *p = ir_op_info[n->op].attrs;
    while (*p) {
        const char *colon = strchr(p, ':'), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
        if (end[-1] != '?' && !ir_node_attr(n, name)) return fail(c, "missing attribute '%s'", name);
        p = *end ? end + 1 : end;
    }
    return true;
}

static bool check_arity(Ctx *c, const IrNode *n) {
    const IrOpInfo *oi = &ir_op_info[n->op];
    if (n->nops < oi->min_operands || (oi->max_operands >= 0 && n->nops > oi->max_operands)) {
        if (oi->max_operands < 0) return fail(c, "expects at least %d operands, got %d", oi->min_operands, n->nops);
        if (oi->min_operands == oi->max_operands)
            return fail(c, "expects %d operand%s, got %d", oi->min_operands, oi->min_operands == 1 ? "" : "s", n->nops);
        return fail(c, "expects %d to %d operands, got %d", oi->min_operands, oi->max_operands, n->nops);
    }
    for (int i = 0; i < n->nops; i++) {
        if (!n->ops[i]) return fail(c, "operand %d is missing", i);
        if (!ir_op_has_result(n->ops[i]->op)) return fail(c, "operand %d has no value", i);
    }
    return true;
}

/* Normalises a possibly negative axis; false if out of range. */
static bool norm_axis(Ctx *c, int64_t axis, int rank, int *out) {
    if (axis < -rank || axis >= rank)
        return fail(c, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

static bool is_float(IrDType t) { return !ir_dtype_is_int(t); }

static bool need_int(Ctx *c, const IrType *t, const char *what) {
    if (!ir_dtype_is_int(t->dtype)) return fail(c, "%s must be an integer tensor, got %s", what, ts(c, t));
    return true;
}

static bool broadcast(Ctx *c, const IrType *a, const IrType *b, IrType *out) {
    if (a->dtype != b->dtype && a->rank != 0 && b->rank != 0)
        return fail(c, "operand dtypes differ: %s and %s", ts(c, a), ts(c, b));
    const IrType *big = a->rank >= b->rank ? a : b;
    *out = *big;
    out->dtype = a->rank == 0 ? b->dtype : a->dtype;
    IrDim one = ir_dim_const(1);
    for (int i = 1; i <= big->rank; i++) {
        IrDim da = i <= a->rank ? a->dims[a->rank - i] : one;
        IrDim db = i <= b->rank ? b->dims[b->rank - i] : one;
        if (ir_dim_eq(da, db) || ir_dim_eq(db, one)) out->dims[big->rank - i] = da;
        else if (ir_dim_eq(da, one)) out->dims[big->rank - i] = db;
        else return fail(c, "shapes %s and %s do not broadcast", ts(c, a), ts(c, b));
    }
    return true;
}

static bool infer_einsum(Ctx *c, const IrNode *n, IrType *out) {
    const char *spec = ir_node_attr_str(n, "spec", "");
    const char *comma = strchr(spec, ','), *arrow = strstr(spec, "->");
    if (!comma || !arrow || comma > arrow) return fail(c, "spec \"%s\" is not of the form \"ab,bc->ac\"", spec);
    const char *sub[3] = {spec, comma + 1, arrow + 2};
    int len[3] = {(int)(comma - spec), (int)(arrow - comma - 1), (int)strlen(arrow + 2)};
    IrDim ext[26];
    bool seen[26] = {0};
    for (int k = 0; k < 2; k++) {
        const IrType *t = &n->ops[k]->type;
        if (len[k] != t->rank)
            return fail(c, "spec \"%s\" gives operand %d %d axes but it is %s", spec, k, len[k], ts(c, t));
        for (int i = 0; i < len[k]; i++) {
            char ch = sub[k][i];
            if (ch < 'a' || ch > 'z') return fail(c, "spec \"%s\": '%c' is not a lowercase letter", spec, ch);
            int l = ch - 'a';
            if (seen[l] && !ir_dim_eq(ext[l], t->dims[i]))
                return fail(c, "spec \"%s\": '%c' is %s in one place and %s in another", spec, ch, ds(c, ext[l]),
                            ds(c, t->dims[i]));
            seen[l] = true;
            ext[l] = t->dims[i];
        }
    }
    if (len[2] > IR_MAX_RANK) return fail(c, "spec \"%s\": too many output axes", spec);
    out->dtype = n->ops[0]->type.dtype;
    out->rank = len[2];
    for (int i = 0; i < len[2]; i++) {
        char ch = sub[2][i];
        if (ch < 'a' || ch > 'z' || !seen[ch - 'a'])
            return fail(c, "spec \"%s\": output axis '%c' is not an input axis", spec, ch);
        for (int j = 0; j < i; j++)
            if (sub[2][j] == ch) return fail(c, "spec \"%s\": output axis '%c' repeats", spec, ch);
        out->dims[i] = ext[ch - 'a'];
    }
    return true;
}

static bool infer_expert_linear(Ctx *c, const IrNode *n, IrType *out) {
    const IrType *x = &n->ops[0]->type, *w = &n->ops[1]->type, *idx = &n->ops[2]->type;
    if (!need_int(c, idx, "idx")) return false;
    if (idx->rank != 2) return fail(c, "idx must be [N,K], got %s", ts(c, idx));
    if (w->rank != 3) return fail(c, "w must be [E,O,I], got %s", ts(c, w));
    if (x->rank != 2 && x->rank != 3) return fail(c, "x must be [N,I] or [N,K,I], got %s", ts(c, x));
    if (!ir_dim_eq(x->dims[0], idx->dims[0]))
        return fail(c, "x %s and idx %s disagree on the token count", ts(c, x), ts(c, idx));
    if (x->rank == 3 && !ir_dim_eq(x->dims[1], idx->dims[1]))
        return fail(c, "x %s and idx %s disagree on the slot count", ts(c, x), ts(c, idx));
    if (!ir_dim_eq(x->dims[x->rank - 1], w->dims[2]))
        return fail(c, "x %s has %s input features but w is %s", ts(c, x), ds(c, x->dims[x->rank - 1]), ts(c, w));
    *out = (IrType){.dtype = x->dtype, .rank = 3, .dims = {idx->dims[0], idx->dims[1], w->dims[1]}};
    return true;
}

static bool infer_attention(Ctx *c, const IrNode *n, IrType *out) {
    const IrType *q = &n->ops[0]->type, *k = &n->ops[1]->type, *v = &n->ops[2]->type;
    if (q->rank != 4 || k->rank != 4 || v->rank != 4)
        return fail(c, "q, k, v must be [B,S,H,D]: got %s, %s, %s", ts(c, q), ts(c, k), ts(c, v));
    if (!ir_dim_eq(q->dims[0], k->dims[0]) || !ir_dim_eq(k->dims[0], v->dims[0]))
        return fail(c, "batch sizes differ: %s, %s, %s", ts(c, q), ts(c, k), ts(c, v));
    if (!ir_dim_eq(k->dims[1], v->dims[1]) || !ir_dim_eq(k->dims[2], v->dims[2]))
        return fail(c, "k %s and v %s must agree on length and heads", ts(c, k), ts(c, v));
    if (!ir_dim_eq(q->dims[3], k->dims[3]))
        return fail(c, "q %s and k %s have different head dims", ts(c, q), ts(c, k));
    IrDim ratio;
    if (!ir_dim_div(q->dims[2], k->dims[2], &ratio))
        return fail(c, "q heads %s are not a multiple of kv heads %s", ds(c, q->dims[2]), ds(c, k->dims[2]));
    if (q->dtype != k->dtype || q->dtype != v->dtype)
        return fail(c, "q, k, v dtypes differ: %s, %s, %s", ts(c, q), ts(c, k), ts(c, v));
    *out = *q;
    out->dims[3] = v->dims[3];
    return true;
}

static bool infer_group_topk(Ctx *c, const IrNode *n, IrType *out) {
    const IrType *x = &n->ops[0]->type;
    if (x->rank < 1 || !ir_dim_is_const(x->dims[x->rank - 1]))
        return fail(c, "last axis of %s must be a constant expert count", ts(c, x));
    int64_t e = x->dims[x->rank - 1].coeff, k = ir_node_attr_int(n, "k", 0);
    int64_t groups = ir_node_attr_int(n, "groups", 0), tg = ir_node_attr_int(n, "topk_groups", 0);
    int64_t gt = ir_node_attr_int(n, "group_top", 0);
    if (groups < 1 || e % groups != 0) return fail(c, "%lld experts do not split into %lld groups", (long long)e, (long long)groups);
    if (tg < 1 || tg > groups) return fail(c, "topk_groups=%lld must be in 1..%lld", (long long)tg, (long long)groups);
    if (gt < 1 || gt > e / groups) return fail(c, "group_top=%lld must be in 1..%lld", (long long)gt, (long long)(e / groups));
    if (k < 1 || k > tg * (e / groups))
        return fail(c, "k=%lld must be in 1..%lld (experts in the kept groups)", (long long)k, (long long)(tg * (e / groups)));
    *out = *x;
    out->dtype = IR_DT_I32;
    out->dims[x->rank - 1] = ir_dim_const(k);
    return true;
}

/* ceil(d / b) of a constant dim; false if symbolic. */
static bool ceil_div(IrDim d, int64_t b, IrDim *out) {
    if (!ir_dim_is_const(d) || b < 1 || d.coeff < 0) return false;
    *out = ir_dim_const(d.coeff / b + (d.coeff % b != 0));
    return true;
}

static bool infer_fp8(Ctx *c, const IrNode *n, IrType *out) {
    const IrType *x = &n->ops[0]->type;
    IrDim nb;
    switch (n->op) {
    case IR_OP_ACT_SCALE:
    case IR_OP_QUANTIZE: {
        int64_t b = ir_node_attr_int(n, "block", 0);
        if (x->rank < 1 || !ceil_div(x->dims[x->rank - 1], b, &nb))
            return fail(c, "the last axis of %s must be constant and block=%lld positive", ts(c, x), (long long)b);
        if (!is_float(x->dtype)) return fail(c, "needs a float operand, got %s", ts(c, x));
        *out = *x;
        if (n->op == IR_OP_ACT_SCALE) {
            out->dtype = IR_DT_F32;
            out->dims[x->rank - 1] = nb;
            return true;
        }
        const IrType *s = &n->ops[1]->type;
        IrType want = *x;
        want.dtype = IR_DT_F32;
        want.dims[x->rank - 1] = nb;
        if (!ir_type_eq(s, &want)) return fail(c, "scales %s do not match %s (want %s)", ts(c, s), ts(c, x), ts(c, &want));
        out->dtype = IR_DT_FP8E4M3;
        return true;
    }
    case IR_OP_FP8_LINEAR:
    case IR_OP_FP8_EXPERT_LINEAR: {
        bool ex = n->op == IR_OP_FP8_EXPERT_LINEAR;
        const IrType *qs = &n->ops[1]->type, *w = &n->ops[2]->type, *ws = &n->ops[3]->type;
        if (x->dtype != IR_DT_FP8E4M3 || w->dtype != IR_DT_FP8E4M3 || qs->dtype != IR_DT_F32 || ws->dtype != IR_DT_F32)
            return fail(c, "needs fp8e4m3 activations and weights with f32 scales, got %s, %s, %s, %s", ts(c, x), ts(c, qs), ts(c, w), ts(c, ws));
        int wr = ex ? 3 : 2;
        if (w->rank != wr || ws->rank != wr) return fail(c, "weight %s / scales %s must have rank %d", ts(c, w), ts(c, ws), wr);
        IrDim ob, ib;
        if (!ceil_div(w->dims[wr - 2], 128, &ob) || !ceil_div(w->dims[wr - 1], 128, &ib) ||
            !ir_dim_eq(ws->dims[wr - 2], ob) || !ir_dim_eq(ws->dims[wr - 1], ib) || (ex && !ir_dim_eq(ws->dims[0], w->dims[0])))
            return fail(c, "weight scales %s are not the 128x128 blocks of %s", ts(c, ws), ts(c, w));
        if (x->rank < 1 || !ir_dim_eq(x->dims[x->rank - 1], w->dims[wr - 1]))
            return fail(c, "x %s has %s input features but w is %s", ts(c, x), x->rank ? ds(c, x->dims[x->rank - 1]) : "no", ts(c, w));
        IrType want = *x;
        want.dtype = IR_DT_F32;
        if (!ceil_div(x->dims[x->rank - 1], 128, &want.dims[x->rank - 1]) || !ir_type_eq(qs, &want))
            return fail(c, "activation scales %s are not the 1x128 tiles of %s", ts(c, qs), ts(c, x));
        if (!ex) {
            *out = *x;
            out->dtype = IR_DT_BF16;
            out->dims[x->rank - 1] = w->dims[0];
            return true;
        }
        const IrType *idx = &n->ops[4]->type;
        if (!need_int(c, idx, "idx")) return false;
        if (idx->rank != 2 || (x->rank != 2 && x->rank != 3) || !ir_dim_eq(x->dims[0], idx->dims[0]) ||
            (x->rank == 3 && !ir_dim_eq(x->dims[1], idx->dims[1])))
            return fail(c, "x %s and idx %s do not match as [N,(K,)I] and [N,K]", ts(c, x), ts(c, idx));
        *out = (IrType){.dtype = IR_DT_BF16, .rank = 3, .dims = {idx->dims[0], idx->dims[1], w->dims[1]}};
        return true;
    }
    default: IR_UNREACHABLE();
    }
}

/* dispatch and combine in the world layout (docs/IR.md): a dispatched
 * value has W = nodes x gpus_per_node row blocks of the N own rows. */
static bool infer_comm(Ctx *c, const IrNode *n, IrType *out) {
    int64_t nodes = ir_node_attr_int(n, "nodes", 0), gpus = ir_node_attr_int(n, "gpus_per_node", 0);
    if (nodes < 1 || gpus < 1 || nodes > 4096 || gpus > 4096) return fail(c, "nodes and gpus_per_node must be in 1..4096");
    IrDim W = ir_dim_const(nodes * gpus);
    const IrType *x = &n->ops[0]->type, *idx = &n->ops[n->nops - 1]->type;
    if (!need_int(c, idx, "idx")) return false;
    if (n->op == IR_OP_DISPATCH) {
        if (idx->rank != 2 || x->rank < 1 || !ir_dim_eq(x->dims[0], idx->dims[0]))
            return fail(c, "%s does not match the routing idx %s", ts(c, x), ts(c, idx));
        *out = *x;
        out->dims[0] = ir_dim_mul(W, x->dims[0]);
        return true;
    }
    const IrType *wd = &n->ops[1]->type, *idd = &n->ops[2]->type;
    if (idx->rank != 2) return fail(c, "the routing idx %s must be [N,K]", ts(c, idx));
    IrType rows = {.dtype = idx->dtype, .rank = 2, .dims = {ir_dim_mul(W, idx->dims[0]), idx->dims[1]}};
    if (x->rank < 3 || !ir_dim_eq(x->dims[0], rows.dims[0]) || !ir_dim_eq(x->dims[1], rows.dims[1]))
        return fail(c, "y %s is not the [W*N,K,...] world layout of idx %s over %lld GPUs", ts(c, x), ts(c, idx), (long long)(nodes * gpus));
    if (!is_float(wd->dtype) || wd->rank != 2 || !ir_dim_eq(wd->dims[0], rows.dims[0]) || !ir_dim_eq(wd->dims[1], rows.dims[1]))
        return fail(c, "the dispatched weights %s must be float [W*N,K] = [%s,%s]", ts(c, wd), ds(c, rows.dims[0]), ds(c, rows.dims[1]));
    if (!need_int(c, idd, "the dispatched ids")) return false;
    if (idd->rank != 2 || !ir_dim_eq(idd->dims[0], rows.dims[0]) || !ir_dim_eq(idd->dims[1], rows.dims[1]))
        return fail(c, "the dispatched ids %s must be [W*N,K] = [%s,%s]", ts(c, idd), ds(c, rows.dims[0]), ds(c, rows.dims[1]));
    *out = *x;
    out->dtype = IR_DT_F32;
    out->rank = x->rank - 1;
    out->dims[0] = idx->dims[0];
    for (int i = 1; i < out->rank; i++) out->dims[i] = x->dims[i + 1];
    return true;
}

static bool infer_layout(Ctx *c, const IrNode *n, IrType *out) {
    const IrType *x = &n->ops[0]->type;
    int ax = 0;
    switch (n->op) {
    case IR_OP_RESHAPE: {
        if (n->type.dtype != x->dtype) return fail(c, "cannot change dtype (%s to %s); use cast", ts(c, x), ts(c, &n->type));
        if (!ir_dim_eq(ir_type_numel(x), ir_type_numel(&n->type)))
            return fail(c, "%s and %s hold different numbers of elements", ts(c, x), ts(c, &n->type));
        *out = n->type;
        return true;
    }
    case IR_OP_TRANSPOSE: {
        const IrAttr *p = ir_node_attr(n, "perm");
        if (p->u.ints.n != x->rank) return fail(c, "perm has %d entries for %s", p->u.ints.n, ts(c, x));
        bool used[IR_MAX_RANK] = {0};
        *out = *x;
        for (int i = 0; i < x->rank; i++) {
            int64_t s = p->u.ints.v[i];
            if (s < 0 || s >= x->rank || used[s]) return fail(c, "perm is not a permutation of 0..%d", x->rank - 1);
            used[s] = true;
            out->dims[i] = x->dims[s];
        }
        return true;
    }
    case IR_OP_SLICE: {
        if (!norm_axis(c, ir_node_attr_int(n, "axis", 0), x->rank, &ax)) return false;
        int64_t start = ir_node_attr_int(n, "start", 0), len = ir_node_attr_int(n, "len", 0);
        if (!ir_dim_is_const(x->dims[ax])) { /* a symbolic axis: only its last position (start -1, len 1) */
            if (start != -1 || len != 1)
                return fail(c, "cannot slice symbolic axis %d of %s other than its last position (start=-1, len=1)", ax,
                            ts(c, x));
            *out = *x;
            out->dims[ax] = ir_dim_const(1);
            return true;
        }
        int64_t first = start < 0 ? start + x->dims[ax].coeff : start; /* a negative start counts from the axis end */
        if (first < 0 || len < 1 || first > x->dims[ax].coeff - len) {
            int64_t end;
            if (start < 0)
                return fail(c, "slice of %lld from %lld (counted from the end) is outside axis %d of %s", (long long)len,
                            (long long)start, ax, ts(c, x));
            if (!size_add(start, len, &end))
                return fail(c, "slice of %lld from %lld is outside axis %d of %s", (long long)len, (long long)start,
                            ax, ts(c, x));
            return fail(c, "slice [%lld, %lld) is outside axis %d of %s", (long long)start, (long long)end, ax, ts(c, x));
        }
        *out = *x;
        out->dims[ax] = ir_dim_const(len);
        return true;
    }
    case IR_OP_CONCAT: {
        if (!norm_axis(c, ir_node_attr_int(n, "axis", 0), x->rank, &ax)) return false;
        *out = *x;
        int64_t total = 0;
        for (int i = 0; i < n->nops; i++) {
            const IrType *t = &n->ops[i]->type;
            if (t->rank != x->rank || t->dtype != x->dtype)
                return fail(c, "operand %d %s does not match %s", i, ts(c, t), ts(c, x));
            for (int d = 0; d < x->rank; d++)
                if (d != ax && !ir_dim_eq(t->dims[d], x->dims[d]))
                    return fail(c, "operand %d %s differs from %s off the concat axis", i, ts(c, t), ts(c, x));
            if (!ir_dim_is_const(t->dims[ax])) return fail(c, "cannot concat along symbolic axis of %s", ts(c, t));
            if (!size_add(total, t->dims[ax].coeff, &total)) return fail(c, "the concat axis overflows int64");
        }
        out->dims[ax] = ir_dim_const(total);
        return true;
    }
    default: IR_UNREACHABLE();
    }
}

/* A float attribute that must be finite and positive (eps, theta, ...),
 * if present: a zero or NaN there makes every value after it NaN. */
static bool positive_attr(Ctx *c, const IrNode *n, const char *name) {
    const IrAttr *a = ir_node_attr(n, name);
    if (a && a->kind == IR_ATTR_FLOAT && !(isfinite(a->u.f) && a->u.f > 0))
        return fail(c, "%s=%g must be a positive finite number", name, a->u.f);
    return true;
}

/* RoPE's base, and YaRN's factor, original length and ramp bounds (log()s
 * and divisors of the frequency table, ir_rope_freqs). */
static bool rope_attrs(Ctx *c, const IrNode *n) {
    if (!positive_attr(c, n, "theta") || !positive_attr(c, n, "factor") || !positive_attr(c, n, "beta_fast") ||
        !positive_attr(c, n, "beta_slow"))
        return false;
    const IrAttr *m = ir_node_attr(n, "original_max_position");
    if (m && m->u.i < 1) return fail(c, "original_max_position=%lld must be at least 1", (long long)m->u.i);
    static const char *scales[] = {"mscale", "mscale_all_dim"};
    for (int i = 0; i < 2; i++) {
        const IrAttr *a = ir_node_attr(n, scales[i]);
        if (a && !isfinite(a->u.f)) return fail(c, "%s=%g must be finite", scales[i], a->u.f);
    }
    return true;
}

/* Shape rules of ops with more than one operand, or an operand to check. */
static bool infer_compute(Ctx *c, const IrNode *n, IrType *out) {
    const IrType *x = &n->ops[0]->type;
    const IrType *w = n->nops > 1 ? &n->ops[1]->type : NULL;
    int ax = 0;
    switch (n->op) {
    case IR_OP_EMBEDDING:
        if (x->rank != 2) return fail(c, "table must be [V,D], got %s", ts(c, x));
        if (!need_int(c, w, "ids")) return false;
        if (w->rank + 1 > IR_MAX_RANK) return fail(c, "ids rank too large");
        *out = *w;
        out->dtype = x->dtype;
        out->dims[out->rank++] = x->dims[1];
        return true;
    case IR_OP_LINEAR:
        if (w->rank != 2) return fail(c, "w must be [O,I], got %s", ts(c, w));
        if (x->rank < 1 || !ir_dim_eq(x->dims[x->rank - 1], w->dims[1]))
            return fail(c, "x %s has %s input features but w is %s", ts(c, x),
                        x->rank ? ds(c, x->dims[x->rank - 1]) : "no", ts(c, w));
        if (!is_float(x->dtype) || !is_float(w->dtype)) return fail(c, "needs float operands, got %s and %s", ts(c, x), ts(c, w));
        *out = *x;
        out->dims[x->rank - 1] = w->dims[0];
        return true;
    case IR_OP_EINSUM: return infer_einsum(c, n, out);
    case IR_OP_EXPERT_LINEAR: return infer_expert_linear(c, n, out);
    case IR_OP_RMSNORM:
        if (!positive_attr(c, n, "eps")) return false;
        if (w->rank != 1 || x->rank < 1 || !ir_dim_eq(w->dims[0], x->dims[x->rank - 1]))
            return fail(c, "weight %s does not match the last axis of %s", ts(c, w), ts(c, x));
        *out = *x;
        return true;
    case IR_OP_ROPE:
        if (!rope_attrs(c, n)) return false;
        if (x->rank < 3) return fail(c, "x must be [B,S,...,d], got %s", ts(c, x));
        if (!need_int(c, w, "pos")) return false;
        if (w->rank != 2 || !ir_dim_eq(w->dims[0], x->dims[0]) || !ir_dim_eq(w->dims[1], x->dims[1]))
            return fail(c, "pos %s must be [B,S] of x %s", ts(c, w), ts(c, x));
        if (!ir_dim_is_const(x->dims[x->rank - 1]) || x->dims[x->rank - 1].coeff % 2)
            return fail(c, "rotary dim of %s must be a constant even number", ts(c, x));
        *out = *x;
        return true;
    case IR_OP_ATTENTION:
        if (!isfinite(ir_node_attr_float(n, "scale", 1))) return fail(c, "scale must be finite");
        return infer_attention(c, n, out);
    case IR_OP_KV_CACHE: {
        int t = ir_graph_find_dim(c->g, "T");
        if (t < 0) return fail(c, "kv_cache needs a symbolic dim T (the context length)");
        if (x->rank < 2) return fail(c, "x must be [B,S,...], got %s", ts(c, x));
        *out = *x;
        out->dims[1] = ir_dim_sym(t);
        return true;
    }
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAX:
        if (!is_float(x->dtype) && x->rank) return fail(c, "needs float operands, got %s", ts(c, x));
        return broadcast(c, x, w, out);
    case IR_OP_FRESH_SELECT:
        if (!ir_type_eq(x, w)) return fail(c, "operands must have one type, got %s and %s", ts(c, x), ts(c, w));
        *out = *x;
        return true;
    case IR_OP_SOFTMAX:
        if (!norm_axis(c, ir_node_attr_int(n, "axis", 0), x->rank, &ax)) return false;
        *out = *x;
        return true;
    case IR_OP_SUM:
        if (!norm_axis(c, ir_node_attr_int(n, "axis", 0), x->rank, &ax)) return false;
        *out = *x;
        if (ir_node_attr_bool(n, "keepdim", false)) out->dims[ax] = ir_dim_const(1);
        else {
            for (int i = ax; i + 1 < x->rank; i++) out->dims[i] = x->dims[i + 1];
            out->rank--;
        }
        return true;
    case IR_OP_TOPK: {
        int64_t k = ir_node_attr_int(n, "k", 0);
        if (x->rank < 1 || !ir_dim_is_const(x->dims[x->rank - 1]) || k < 1 || k > x->dims[x->rank - 1].coeff)
            return fail(c, "k=%lld must be in 1..last axis of %s", (long long)k, ts(c, x));
        *out = *x;
        out->dtype = IR_DT_I32;
        out->dims[x->rank - 1] = ir_dim_const(k);
        return true;
    }
    case IR_OP_GROUP_TOPK: return infer_group_topk(c, n, out);
    case IR_OP_GATHER:
        if (!need_int(c, w, "idx")) return false;
        if (!norm_axis(c, ir_node_attr_int(n, "axis", 0), x->rank, &ax)) return false;
        if (w->rank != x->rank) return fail(c, "idx %s must have the rank of x %s", ts(c, w), ts(c, x));
        for (int i = 0; i < x->rank; i++)
            if (i != ax && !ir_dim_eq(w->dims[i], x->dims[i]))
                return fail(c, "idx %s and x %s differ off axis %d", ts(c, w), ts(c, x), ax);
        *out = *w;
        out->dtype = x->dtype;
        return true;
    default: IR_UNREACHABLE();
    }
}

/* Every value has at least one element along each axis, so no op divides
 * by an empty extent, and a size that int64 can count: checked once here,
 * on every result, with the symbolic dims at 1 (executors check again with
 * their values bound). */
static bool check_size(Ctx *c, const IrType *t) {
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i].coeff < 1) return fail(c, "%s has an empty axis %d; every extent must be at least 1", ts(c, t), i);
    int64_t bytes;
    if (!ir_type_bytes_at(t, NULL, &bytes) || bytes > IR_MAX_TENSOR_BYTES)
        return fail(c, "%s is too large: more than 2^60 bytes", ts(c, t));
    return true;
}

static bool infer_rule(Ctx *c, const IrNode *n, IrType *out);

bool ir_infer_type(const IrGraph *g, const IrNode *n, IrType *out, char *err, size_t errlen) {
    Ctx c = {g, err, errlen};
    if (n->op >= IR_OP_COUNT) return fail(&c, "bad op");
    if (!infer_rule(&c, n, out)) return false;
    return !ir_op_has_result(n->op) || check_size(&c, out);
}

/* The shape rule of n's op. */
static bool infer_rule(Ctx *cp, const IrNode *n, IrType *out) {
    Ctx c = *cp;
    if (!check_arity(&c, n) || !check_attrs(&c, n)) return false;
    memset(out, 0, sizeof *out);
    switch (n->op) {
    case IR_OP_INPUT:
        *out = n->type;
        return true;
    case IR_OP_WEIGHT: {
        *out = n->type;
        const IrAttr *st = ir_node_attr(n, "stack");
        const IrAttr *cnt = ir_node_attr(n, "count");
        if (!st != !cnt) return fail(&c, "'stack' and 'count' go together");
        if (cnt && (n->type.rank < 1 || !ir_dim_eq(n->type.dims[0], ir_dim_const(cnt->u.i)) || cnt->u.i < 1))
            return fail(&c, "stacked weight of %lld tensors must have leading dim %lld, got %s",
                        (long long)cnt->u.i, (long long)cnt->u.i, ts(&c, &n->type));
        for (int i = 0; i < n->type.rank; i++)
            if (!ir_dim_is_const(n->type.dims[i])) return fail(&c, "weight shape %s must be constant", ts(&c, &n->type));
        return true;
    }
    case IR_OP_CONST:
        if (n->type.rank != 0) return fail(&c, "const must be a scalar, got %s", ts(&c, &n->type));
        *out = n->type;
        return true;
    case IR_OP_CAST: {
        const IrType *x = &n->ops[0]->type;
        IrType same = *x;
        same.dtype = n->type.dtype;
        if (!ir_type_eq(&same, &n->type)) return fail(&c, "cast cannot change the shape (%s to %s)", ts(&c, x), ts(&c, &n->type));
        *out = n->type;
        return true;
    }
    case IR_OP_SIGMOID: case IR_OP_SILU: case IR_OP_EXP: case IR_OP_NEG: case IR_OP_SQRT: case IR_OP_RSQRT:
        if (!is_float(n->ops[0]->type.dtype)) return fail(&c, "needs a float operand, got %s", ts(&c, &n->ops[0]->type));
        *out = n->ops[0]->type;
        return true;
    case IR_OP_RESHAPE: case IR_OP_TRANSPOSE: case IR_OP_SLICE: case IR_OP_CONCAT:
        return infer_layout(&c, n, out);
    case IR_OP_OUTPUT:
        return true;
    case IR_OP_ACT_SCALE: case IR_OP_QUANTIZE: case IR_OP_FP8_LINEAR: case IR_OP_FP8_EXPERT_LINEAR:
        return infer_fp8(&c, n, out);
    case IR_OP_SPLIT_BATCH: case IR_OP_MERGE_BATCH: {
        /* axis 0 changes between the batch and a micro-batch dim, which the
         * graph cannot relate symbolically; every other axis must agree */
        const IrType *x = &n->ops[0]->type, *t = &n->type;
        int64_t idx = ir_node_attr_int(n, "index", 0), parts = ir_node_attr_int(n, "parts", 2);
        if (n->op == IR_OP_SPLIT_BATCH && (parts < 2 || idx < 0 || idx >= parts))
            return fail(&c, "index=%lld must be in 0..parts-1 with parts >= 2", (long long)idx);
        for (int k = 0; k < n->nops; k++) {
            const IrType *o = &n->ops[k]->type;
            bool ok = o->rank == t->rank && o->dtype == t->dtype && t->rank >= 1 && ir_type_eq(o, x);
            for (int i = 1; ok && i < t->rank; i++) ok = ir_dim_eq(o->dims[i], t->dims[i]);
            if (!ok) return fail(&c, "%s and %s differ beyond the batch axis", ts(&c, o), ts(&c, t));
        }
        if (ir_dim_is_const(t->dims[0]) != ir_dim_is_const(x->dims[0]))
            return fail(&c, "the batch axis of %s and %s must both be symbolic", ts(&c, x), ts(&c, t));
        *out = *t;
        return true;
    }
    case IR_OP_DISPATCH: case IR_OP_COMBINE: return infer_comm(&c, n, out);
    default:
        return infer_compute(&c, n, out);
    }
}
