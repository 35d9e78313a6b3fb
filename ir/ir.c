/* ir.c — the op and dtype tables, dimension arithmetic, graph building.
 *
 * Dimensions are monomials (coeff × product of symbols) so that the common
 * shape algebra of a transformer — flattening [B,S,D] to [B*S,D], splitting
 * heads — stays exact without a general expression engine. */
#include "ir/ir.h"

#include <math.h>
#include <string.h>

const IrOpInfo ir_op_info[IR_OP_COUNT] = {
#define IR_OP(e, cls, res, kw, mn, mx, attrs, summary) {IR_CLASS_##cls, IR_RESULT_##res, kw, mn, mx, attrs, summary},
#include "ir/ops.def"
#undef IR_OP
};

const char *ir_op_name(IrOp op) { return op < IR_OP_COUNT ? ir_op_info[op].name : "?"; }

bool ir_op_lookup(const char *name, IrOp *out) {
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (strcmp(ir_op_info[i].name, name) == 0) {
            *out = (IrOp)i;
            return true;
        }
    return false;
}

bool ir_op_has_result(IrOp op) { return op >= IR_OP_COUNT || ir_op_info[op].result != IR_RESULT_NONE; }

bool ir_op_declares_type(IrOp op) { return op < IR_OP_COUNT && ir_op_info[op].result == IR_RESULT_DECLARED; }

IrOpClass ir_op_class(IrOp op) { return op < IR_OP_COUNT ? ir_op_info[op].cls : IR_CLASS_COUNT; }

bool ir_op_fusible(IrOp op) {
    switch (ir_op_class(op)) {
    case IR_CLASS_ELEMENTWISE: case IR_CLASS_REDUCTION: case IR_CLASS_VIEW: case IR_CLASS_LAYOUT: case IR_CLASS_CONST:
        return true;
    default:
        return false;
    }
}

bool ir_op_computed(IrOp op) {
    IrOpClass c = ir_op_class(op);
    return c != IR_CLASS_INPUT && c != IR_CLASS_WEIGHT && c != IR_CLASS_OUTPUT;
}

bool ir_op_goes_with_reader(IrOp op) {
    IrOpClass c = ir_op_class(op);
    return c == IR_CLASS_CONST || c == IR_CLASS_VIEW;
}

bool ir_op_own_kernel(IrOp op) { return ir_op_computed(op) && !ir_op_goes_with_reader(op); }

bool ir_op_in_slab(IrOp op) {
    IrOpClass c = ir_op_class(op);
    return c != IR_CLASS_OUTPUT && c != IR_CLASS_WEIGHT && c != IR_CLASS_STATE && c != IR_CLASS_CONST;
}

bool ir_op_is_comm(IrOp op) { return ir_op_class(op) == IR_CLASS_COMM; }

static double yarn_mscale(double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0; }

double ir_rope_freqs(const IrNode *n, int64_t d, double *inv) {
    double theta = ir_node_attr_float(n, "theta", 10000.0);
    for (int64_t i = 0; i < d / 2; i++) inv[i] = 1.0 / pow(theta, (double)(2 * i) / (double)d);
    const IrAttr *fa = ir_node_attr(n, "factor");
    if (!fa) return 1.0;
    double factor = fa->u.f, orig = (double)ir_node_attr_int(n, "original_max_position", 4096);
    double bf = ir_node_attr_float(n, "beta_fast", 32.0), bs = ir_node_attr_float(n, "beta_slow", 1.0);
    double lo = floor((double)d * log(orig / (bf * 2 * M_PI)) / (2 * log(theta)));
    double hi = ceil((double)d * log(orig / (bs * 2 * M_PI)) / (2 * log(theta)));
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
    if (ms && msa && ms->u.f != 0 && msa->u.f != 0) return yarn_mscale(factor, ms->u.f) / yarn_mscale(factor, msa->u.f);
    return yarn_mscale(factor, 1.0);
}

static const struct {
    const char *name;
    int bits;
} dtypes[IR_DT_COUNT] = {
    [IR_DT_F32] = {"f32", 32}, [IR_DT_BF16] = {"bf16", 16}, [IR_DT_F16] = {"f16", 16},
    [IR_DT_FP8E4M3] = {"fp8e4m3", 8}, [IR_DT_I32] = {"i32", 32}, [IR_DT_I64] = {"i64", 64},
};

const char *ir_dtype_name(IrDType t) { return t < IR_DT_COUNT ? dtypes[t].name : "?"; }
int ir_dtype_bits(IrDType t) { return t < IR_DT_COUNT ? dtypes[t].bits : 0; }
bool ir_dtype_is_int(IrDType t) { return t == IR_DT_I32 || t == IR_DT_I64; }

bool ir_dtype_lookup(const char *name, IrDType *out) {
    for (int i = 0; i < IR_DT_COUNT; i++)
        if (strcmp(dtypes[i].name, name) == 0) {
            *out = (IrDType)i;
            return true;
        }
    return false;
}

/* ---- dims ------------------------------------------------------------- */

IrDim ir_dim_const(int64_t v) {
    IrDim d;
    memset(&d, 0, sizeof d);
    d.coeff = v;
    return d;
}

IrDim ir_dim_sym(int sym) {
    IrDim d = ir_dim_const(1);
    if (sym >= 0 && sym < IR_MAX_DIM_SYMS) d.exp[sym] = 1;
    return d;
}

IrDim ir_dim_mul(IrDim a, IrDim b) {
    IrDim r = ir_dim_const(0);
    if (__builtin_mul_overflow(a.coeff, b.coeff, &r.coeff)) r.coeff = INT64_MAX;
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) {
        int e = a.exp[i] + b.exp[i];
        r.exp[i] = (uint8_t)(e > 255 ? 255 : e);
    }
    return r;
}

bool ir_dim_eq(IrDim a, IrDim b) {
    return a.coeff == b.coeff && memcmp(a.exp, b.exp, sizeof a.exp) == 0;
}

bool ir_dim_is_const(IrDim d) {
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++)
        if (d.exp[i]) return false;
    return true;
}

bool ir_dim_div(IrDim a, IrDim b, IrDim *out) {
    if (b.coeff == 0 || a.coeff % b.coeff != 0) return false;
    IrDim r = ir_dim_const(a.coeff / b.coeff);
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) {
        if (a.exp[i] < b.exp[i]) return false;
        r.exp[i] = (uint8_t)(a.exp[i] - b.exp[i]);
    }
    *out = r;
    return true;
}

bool ir_type_eq(const IrType *a, const IrType *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (!ir_dim_eq(a->dims[i], b->dims[i])) return false;
    return true;
}

IrDim ir_type_numel(const IrType *t) {
    IrDim n = ir_dim_const(1);
    for (int i = 0; i < t->rank; i++) n = ir_dim_mul(n, t->dims[i]);
    return n;
}

int64_t ir_dim_eval(IrDim d, const int64_t *sym_vals) {
    int64_t v = d.coeff;
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++)
        for (int k = 0; k < d.exp[i]; k++)
            if (__builtin_mul_overflow(v, sym_vals[i], &v)) return INT64_MAX;
    return v;
}

bool ir_type_numel_at(const IrType *t, const int64_t *sym, int64_t *numel) {
    int64_t n = 1;
    bool ok = true;
    for (int i = 0; i < t->rank; i++) {
        ok &= size_mul(n, t->dims[i].coeff, &n);
        for (int s = 0; s < IR_MAX_DIM_SYMS; s++)
            for (int k = 0; k < t->dims[i].exp[s]; k++) ok &= size_mul(n, sym ? sym[s] : 1, &n);
    }
    *numel = ok ? n : INT64_MAX;
    return ok;
}

bool ir_type_bytes_at(const IrType *t, const int64_t *sym, int64_t *bytes) {
    int64_t n, bits = ir_dtype_bits(t->dtype);
    bool ok = ir_type_numel_at(t, sym, &n) &&
              (bits % 8 == 0 ? size_mul(n, bits / 8, bytes) : size_mul(n, bits, bytes) && (*bytes = (*bytes + 7) / 8, true));
    if (!ok) *bytes = INT64_MAX;
    return ok;
}

/* ---- graph ------------------------------------------------------------ */

IrGraph *ir_graph_new(Arena *a, const char *name) {
    IrGraph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    g->name = arena_strdup(a, name ? name : "model");
    return g;
}

int ir_graph_find_dim(const IrGraph *g, const char *name) {
    for (int i = 0; i < g->ndims; i++)
        if (strcmp(g->dim_names[i], name) == 0) return i;
    return -1;
}

int ir_graph_add_dim(IrGraph *g, const char *name) {
    if (g->ndims >= IR_MAX_DIM_SYMS || ir_graph_find_dim(g, name) >= 0) return -1;
    g->dim_names[g->ndims] = arena_strdup(g->arena, name);
    return g->ndims++;
}

/* Index of attribute `name` in the op's schema, or -1; sets kind and optional. */
int ir_schema_find(IrOp op, const char *name, IrAttrKind *kind, bool *optional) {
    const char *p = ir_op_info[op].attrs;
    size_t nlen = strlen(name);
    for (int idx = 0; *p; idx++) {
        const char *colon = strchr(p, ':');
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if ((size_t)(colon - p) == nlen && strncmp(p, name, nlen) == 0) {
            static const char codes[] = "ifbsIt";
            *kind = (IrAttrKind)(strchr(codes, colon[1]) - codes);
            *optional = end[-1] == '?';
            return idx;
        }
        p = *end ? end + 1 : end;
    }
    return -1;
}

IrNode *ir_graph_add_node(IrGraph *g, DiagEngine *d, IrOp op, IrNode *const *operands, int nops,
                          const IrAttr *attrs, int nattrs, const IrType *declared, SrcLoc loc,
                          const char *scope) {
    Arena *a = g->arena;
    IrNode *n = arena_alloc(a, sizeof *n);
    n->op = op;
    n->loc = loc;
    n->scope = scope;
    n->group = -1;
    n->mem = -1;
    n->stream = -1;
    n->nops = nops;
    n->ops = arena_alloc(a, sizeof(IrNode *) * (size_t)(nops ? nops : 1));
    for (int i = 0; i < nops; i++) n->ops[i] = operands[i];
    /* Attributes are kept in schema order; ints are widened where the schema
     * wants a float, so `eps=1` and `eps=1.0` build the same node. */
    n->attrs = arena_alloc(a, sizeof(IrAttr) * (size_t)(nattrs ? nattrs : 1));
    int *order = arena_alloc(a, sizeof(int) * (size_t)(nattrs ? nattrs : 1));
    for (int i = 0; i < nattrs; i++) {
        IrAttrKind kind;
        bool opt;
        int sidx = ir_schema_find(op, attrs[i].name, &kind, &opt);
        IrAttr at = attrs[i];
        at.name = arena_strdup(a, at.name);
        if (sidx >= 0 && kind == IR_ATTR_FLOAT && at.kind == IR_ATTR_INT) {
            at.kind = IR_ATTR_FLOAT;
            at.u.f = (double)attrs[i].u.i;
        }
        if (at.kind == IR_ATTR_STR) at.u.s = arena_strdup(a, at.u.s);
        if (at.kind == IR_ATTR_INTS) {
            int64_t *v = arena_alloc(a, sizeof(int64_t) * (size_t)(at.u.ints.n ? at.u.ints.n : 1));
            memcpy(v, attrs[i].u.ints.v, sizeof(int64_t) * (size_t)at.u.ints.n);
            at.u.ints.v = v;
        }
        /* insertion sort by schema index; unknown names keep their order, last */
        int key = sidx >= 0 ? sidx : 1000 + i, k = n->nattrs;
        while (k > 0 && order[k - 1] > key) {
            n->attrs[k] = n->attrs[k - 1];
            order[k] = order[k - 1];
            k--;
        }
        n->attrs[k] = at;
        order[k] = key;
        n->nattrs++;
    }
    if (declared) n->type = *declared;
    char err[512];
    IrType t;
    if (!ir_infer_type(g, n, &t, err, sizeof err)) {
        diag_error(d, loc, "%s: %s", ir_op_name(op), err);
        return NULL;
    }
    n->type = t;
    n->id = g->nnodes;
    if (g->nnodes == g->cap) {
        int ncap = g->cap ? g->cap * 2 : 256;
        g->nodes = arena_realloc(a, g->nodes, sizeof(IrNode *) * (size_t)g->cap,
                                 sizeof(IrNode *) * (size_t)ncap);
        g->cap = ncap;
    }
    g->nodes[g->nnodes++] = n;
    return n;
}

const IrAttr *ir_node_attr(const IrNode *n, const char *name) {
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t ir_node_attr_int(const IrNode *n, const char *name, int64_t dflt) {
    const IrAttr *a = ir_node_attr(n, name);
    return a && a->kind == IR_ATTR_INT ? a->u.i : dflt;
}

double ir_node_attr_float(const IrNode *n, const char *name, double dflt) {
    const IrAttr *a = ir_node_attr(n, name);
    if (!a) return dflt;
    return a->kind == IR_ATTR_FLOAT ? a->u.f : a->kind == IR_ATTR_INT ? (double)a->u.i : dflt;
}

bool ir_node_attr_bool(const IrNode *n, const char *name, bool dflt) {
    const IrAttr *a = ir_node_attr(n, name);
    return a && a->kind == IR_ATTR_BOOL ? a->u.b : dflt;
}

const char *ir_node_attr_str(const IrNode *n, const char *name, const char *dflt) {
    const IrAttr *a = ir_node_attr(n, name);
    return a && a->kind == IR_ATTR_STR ? a->u.s : dflt;
}
