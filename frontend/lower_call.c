/* lower_call.c — calls: user functions, scalar builtins and ops.
 *
 * An op call maps positional tensor arguments to operands and keyword
 * arguments to attributes, typed by the op's schema in ir/ops.def; the few
 * ops whose DSL form differs from the IR (cast, reshape, split, concat,
 * transpose, einsum) are rewritten here. */
#include "frontend/lower.h"

#include <math.h>
#include <string.h>

static Value poison(void) { return (Value){.k = V_POISON}; }
static bool is_num(Value v) { return v.k == V_INT || v.k == V_FLOAT; }
static double num(Value v) { return v.k == V_INT ? (double)v.u.i : v.u.f; }

typedef struct {
    Value *pos;
    int npos;
    AstNode **kw;   /* AST_KWARG nodes */
    Value *kwv;
    int nkw;
} Args;

static bool eval_args(Lower *L, Scope *s, AstNode *call, Args *a) {
    a->npos = (int)call->list.n;
    a->nkw = (int)call->list2.n;
    a->pos = arena_alloc(L->a, sizeof(Value) * (size_t)(a->npos + 1));
    a->kwv = arena_alloc(L->a, sizeof(Value) * (size_t)(a->nkw + 1));
    a->kw = call->list2.v;
    bool ok = true;
    for (int i = 0; i < a->npos; i++) ok &= (a->pos[i] = lw_eval(L, s, call->list.v[i])).k != V_POISON;
    for (int i = 0; i < a->nkw; i++) {
        for (int k = 0; k < i; k++)
            if (strcmp(a->kw[k]->str, a->kw[i]->str) == 0) {
                lw_error(L, a->kw[i]->loc, "keyword argument '%s' given twice", a->kw[i]->str);
                ok = false;
            }
        ok &= (a->kwv[i] = lw_eval(L, s, a->kw[i]->a)).k != V_POISON;
    }
    return ok;
}

/* ---- scalar builtins -------------------------------------------------- */

static bool any_tensor(const Args *a) {
    for (int i = 0; i < a->npos; i++)
        if (a->pos[i].k == V_TENSOR) return true;
    return false;
}

static Value scalar_builtin(Lower *L, AstNode *call, const char *f, Args *a, bool *handled) {
    static const struct { const char *name; int nargs; } fns[] = {
        {"int", 1}, {"float", 1}, {"ln", 1}, {"exp", 1}, {"sqrt", 1}, {"pow", 2}, {"min", 2}, {"max", 2}, {"rank", 1}, {"size", 2}, {"isfinite", 1}};
    int which = -1;
    for (int i = 0; i < (int)(sizeof fns / sizeof fns[0]); i++)
        if (strcmp(fns[i].name, f) == 0) which = i;
    *handled = which >= 0 && !((which == 3 || which == 4 || which == 7) && any_tensor(a));
    if (!*handled) return poison();
    if (a->npos != fns[which].nargs || a->nkw) {
        lw_error(L, call->loc, "'%s' takes %d argument%s", f, fns[which].nargs, fns[which].nargs == 1 ? "" : "s");
        return poison();
    }
    Value x = a->pos[0], y = a->npos > 1 ? a->pos[1] : x;
    if (which == 8 || which == 9) { /* rank(t), size(t, axis) */
        if (x.k != V_TENSOR) { lw_error(L, call->loc, "'%s' needs a tensor, got %s", f, lw_kind_name(x.k)); return poison(); }
        const IrType *t = &x.u.t->type;
        if (which == 8) return (Value){.k = V_INT, .u.i = t->rank};
        if (y.k != V_INT || y.u.i < -t->rank || y.u.i >= t->rank) {
            lw_error(L, call->loc, "size: axis must be an int in [%d, %d)", -t->rank, t->rank);
            return poison();
        }
        IrDim d = t->dims[y.u.i < 0 ? y.u.i + t->rank : y.u.i];
        if (!ir_dim_is_const(d)) return (Value){.k = V_DIM, .u.dim = d};
        return (Value){.k = V_INT, .u.i = d.coeff};
    }
    if (!is_num(x) || !is_num(y)) {
        lw_error(L, call->loc, "'%s' needs numbers, got %s", f, lw_kind_name(!is_num(x) ? x.k : y.k));
        return poison();
    }
    double r;
    switch (which) {
    case 10: return (Value){.k = V_BOOL, .u.b = isfinite(num(x)) != 0};
    case 0:
        if (!isfinite(num(x)) || fabs(num(x)) > 9.2e18) { lw_error(L, call->loc, "int(): %g does not fit", num(x)); return poison(); }
        return (Value){.k = V_INT, .u.i = (int64_t)num(x)};
    case 1: return (Value){.k = V_FLOAT, .u.f = num(x)};
    case 2:
        if (num(x) <= 0) { lw_error(L, call->loc, "ln() of %g, which is not positive", num(x)); return poison(); }
        r = log(num(x));
        break;
    case 3: r = exp(num(x)); break;
    case 4:
        if (num(x) < 0) { lw_error(L, call->loc, "sqrt() of negative %g", num(x)); return poison(); }
        r = sqrt(num(x));
        break;
    case 5: r = pow(num(x), num(y)); break;
    default: /* min, max keep ints as ints */
        if (x.k == V_INT && y.k == V_INT)
            return (Value){.k = V_INT, .u.i = (which == 6) == (x.u.i < y.u.i) ? x.u.i : y.u.i};
        r = (which == 6) == (num(x) < num(y)) ? num(x) : num(y);
        break;
    }
    if (!isfinite(r)) { lw_error(L, call->loc, "%s() overflows", f); return poison(); }
    return (Value){.k = V_FLOAT, .u.f = r};
}

/* ---- op calls ----------------------------------------------------------- */

/* Converts a keyword value to an attribute of the schema's kind. */
static bool to_attr(Lower *L, AstNode *kw, Value v, IrAttrKind kind, IrAttr *out) {
    static const char *kinds[] = {"an int", "a number", "a bool", "a string", "a list of ints", "a dtype"};
    out->name = kw->str;
    out->kind = kind;
    switch (kind) {
    case IR_ATTR_INT: if (v.k == V_INT) { out->u.i = v.u.i; return true; } break;
    case IR_ATTR_FLOAT: if (is_num(v)) { out->u.f = num(v); return true; } break;
    case IR_ATTR_BOOL: if (v.k == V_BOOL) { out->u.b = v.u.b; return true; } break;
    case IR_ATTR_STR: if (v.k == V_STR) { out->u.s = v.u.s; return true; } break;
    case IR_ATTR_DTYPE: if (v.k == V_DTYPE) { out->u.t = v.u.dt; return true; } break;
    case IR_ATTR_INTS:
        if (v.k == V_LIST) {
            int64_t *xs = arena_alloc(L->a, sizeof(int64_t) * (size_t)(v.u.list.n + 1));
            for (int i = 0; i < v.u.list.n; i++) {
                if (v.u.list.v[i].k != V_INT) goto bad;
                xs[i] = v.u.list.v[i].u.i;
            }
            out->u.ints.v = xs;
            out->u.ints.n = v.u.list.n;
            return true;
        }
        break;
    }
bad:
    lw_error(L, kw->a->loc, "'%s' must be %s, got %s", kw->str, kinds[kind], lw_kind_name(v.k));
    return false;
}

/* Evaluated keyword args -> attributes, plus DSL-level defaults. */
static bool build_attrs(Lower *L, AstNode *call, IrOp op, Args *a, IrAttr *attrs, int *nattrs) {
    bool ok = true;
    *nattrs = 0;
    for (int i = 0; i < a->nkw; i++) {
        IrAttrKind kind;
        bool opt;
        if (ir_schema_find(op, a->kw[i]->str, &kind, &opt) < 0) {
            const char *valid = ir_op_info[op].attrs;
            lw_error(L, a->kw[i]->loc, "'%s' has no argument '%s' (it takes: %s)", ir_op_name(op), a->kw[i]->str,
                     *valid ? valid : "no keyword arguments");
            ok = false;
            continue;
        }
        ok &= to_attr(L, a->kw[i], a->kwv[i], kind, &attrs[(*nattrs)++]);
    }
    /* Defaults the DSL promises (docs/DSL.md): softmax axis -1, sum keepdim false. */
    if (op == IR_OP_SOFTMAX) {
        bool has = false;
        for (int i = 0; i < *nattrs; i++) has |= strcmp(attrs[i].name, "axis") == 0;
        if (!has) attrs[(*nattrs)++] = (IrAttr){.name = "axis", .kind = IR_ATTR_INT, .u.i = -1};
    }
    if (op == IR_OP_SUM) {
        bool has = false;
        for (int i = 0; i < *nattrs; i++) has |= strcmp(attrs[i].name, "keepdim") == 0;
        if (!has) attrs[(*nattrs)++] = (IrAttr){.name = "keepdim", .kind = IR_ATTR_BOOL, .u.b = false};
    }
    (void)call;
    return ok;
}

static bool tensor_arg(Lower *L, AstNode *call, Value v, int i, IrNode **out) {
    if (v.k == V_TENSOR) { *out = v.u.t; return true; }
    lw_error(L, call->list.v[i]->loc, "argument %d of '%s' must be a tensor, got %s", i + 1, call->str, lw_kind_name(v.k));
    return false;
}

/* cast(x, dtype) and reshape(x, [dims]): the result type is declared. */
static Value call_declared(Lower *L, AstNode *call, IrOp op, Args *a) {
    IrNode *x;
    if (a->npos != 2 || a->nkw) {
        lw_error(L, call->loc, op == IR_OP_CAST ? "cast takes (tensor, dtype)" : "reshape takes (tensor, [dims])");
        return poison();
    }
    if (!tensor_arg(L, call, a->pos[0], 0, &x)) return poison();
    IrType t = x->type;
    Value v = a->pos[1];
    if (op == IR_OP_CAST) {
        if (v.k != V_DTYPE) { lw_error(L, call->list.v[1]->loc, "cast needs a dtype, got %s", lw_kind_name(v.k)); return poison(); }
        t.dtype = v.u.dt;
    } else {
        if (v.k != V_LIST || v.u.list.n > IR_MAX_RANK) {
            lw_error(L, call->list.v[1]->loc, "reshape needs a list of at most %d dims", IR_MAX_RANK);
            return poison();
        }
        t.rank = v.u.list.n;
        for (int i = 0; i < t.rank; i++) {
            Value d = v.u.list.v[i];
            if (d.k == V_INT && d.u.i >= 0) t.dims[i] = ir_dim_const(d.u.i);
            else if (d.k == V_DIM) t.dims[i] = d.u.dim;
            else { lw_error(L, call->list.v[1]->loc, "reshape: entry %d is not a dimension", i); return poison(); }
        }
    }
    return lw_node(L, call->loc, op, &x, 1, NULL, 0, &t);
}

static Value call_split(Lower *L, AstNode *call, Args *a) {
    IrNode *x;
    if (a->npos != 2 || a->pos[1].k != V_LIST) { lw_error(L, call->loc, "split takes (tensor, [sizes], axis=)"); return poison(); }
    if (!tensor_arg(L, call, a->pos[0], 0, &x)) return poison();
    int64_t axis = -1;
    for (int i = 0; i < a->nkw; i++) {
        if (strcmp(a->kw[i]->str, "axis") != 0 || a->kwv[i].k != V_INT) {
            lw_error(L, a->kw[i]->loc, "split takes only axis=INT as a keyword");
            return poison();
        }
        axis = a->kwv[i].u.i;
    }
    int n = a->pos[1].u.list.n;
    Value *parts = arena_alloc(L->a, sizeof(Value) * (size_t)(n + 1));
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        Value sz = a->pos[1].u.list.v[i];
        if (sz.k != V_INT) { lw_error(L, call->list.v[1]->loc, "split sizes must be ints"); return poison(); }
        IrAttr at[3] = {{.name = "axis", .kind = IR_ATTR_INT, .u.i = axis},
                        {.name = "start", .kind = IR_ATTR_INT, .u.i = start},
                        {.name = "len", .kind = IR_ATTR_INT, .u.i = sz.u.i}};
        parts[i] = lw_node(L, call->loc, IR_OP_SLICE, &x, 1, at, 3, NULL);
        if (parts[i].k == V_POISON) return poison();
        start += sz.u.i;
    }
    int ax = (int)(axis < 0 ? axis + x->type.rank : axis);
    if (ax >= 0 && ax < x->type.rank && ir_dim_is_const(x->type.dims[ax]) && start != x->type.dims[ax].coeff) {
        lw_error(L, call->loc, "split sizes add up to %lld but the axis has %lld", (long long)start,
                 (long long)x->type.dims[ax].coeff);
        return poison();
    }
    return (Value){.k = V_TUPLE, .u.list = {parts, n}};
}

/* Generic op call: tensors positional, attributes by keyword. */
static Value call_op(Lower *L, AstNode *call, IrOp op, Args *a) {
    if (op == IR_OP_INPUT || op == IR_OP_WEIGHT || op == IR_OP_CONST || op == IR_OP_OUTPUT) {
        lw_error(L, call->loc, "'%s' is a statement, not a call", call->str);
        return poison();
    }
    if (op == IR_OP_CAST || op == IR_OP_RESHAPE) return call_declared(L, call, op, a);
    IrAttr attrs[24];
    int nattrs = 0, first = 0;
    /* Positional non-tensor leading/trailing forms: einsum("spec", a, b),
     * transpose(x, [perm]), concat([a, b]). */
    if (op == IR_OP_EINSUM && a->npos >= 1 && a->pos[0].k == V_STR) {
        attrs[nattrs++] = (IrAttr){.name = "spec", .kind = IR_ATTR_STR, .u.s = a->pos[0].u.s};
        first = 1;
    }
    int npos = a->npos;
    if (op == IR_OP_TRANSPOSE && npos == 2 && a->pos[1].k == V_LIST) {
        AstNode kw = {.str = "perm", .a = call->list.v[1]};
        if (!to_attr(L, &kw, a->pos[1], IR_ATTR_INTS, &attrs[nattrs++])) return poison();
        npos = 1;
    }
    Value *pos = a->pos + first;
    npos -= first;
    if (op == IR_OP_CONCAT && npos == 1 && pos[0].k == V_LIST) {
        pos = pos[0].u.list.v;
        npos = a->pos[first].u.list.n;
    }
    int extra;
    if (!build_attrs(L, call, op, a, attrs + nattrs, &extra)) return poison();
    nattrs += extra;
    IrNode **ops = arena_alloc(L->a, sizeof(IrNode *) * (size_t)(npos + 1));
    for (int i = 0; i < npos; i++) {
        if (pos[i].k != V_TENSOR) {
            AstNode *where = call->list.n > (size_t)(i + first) ? call->list.v[i + first] : call;
            lw_error(L, where->loc, "argument %d of '%s' must be a tensor, got %s (attributes go by keyword: name=value)",
                     i + 1 + first, call->str, lw_kind_name(pos[i].k));
            return poison();
        }
        ops[i] = pos[i].u.t;
    }
    return lw_node(L, call->loc, op, ops, npos, attrs, nattrs, NULL);
}

Value lw_call(Lower *L, Scope *s, AstNode *call) {
    Args a;
    if (!eval_args(L, s, call, &a)) return poison();
    AstNode *fn = lw_map_get(&L->fn_map, call->str);
    if (fn) {
        if (a.nkw) {
            lw_error(L, a.kw[0]->loc, "'%s' is a function; its arguments are positional", call->str);
            return poison();
        }
        return lw_call_fn(L, fn, call, a.pos, a.npos);
    }
    bool handled;
    Value r = scalar_builtin(L, call, call->str, &a, &handled);
    if (handled) return r;
    if (strcmp(call->str, "split") == 0) return call_split(L, call, &a);
    IrOp op;
    if (ir_op_lookup(call->str, &op)) return call_op(L, call, op, &a);
    lw_error(L, call->loc, "unknown function or op '%s'", call->str);
    return poison();
}
