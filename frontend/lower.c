/* lower.c — runs a parsed model at compile time and builds its IR graph.
 *
 * The model language has no run-time control flow: parameters, loops, ifs
 * and function calls are all resolved here, so the evaluator is a plain
 * tree walk over the AST with scalar values computed on the spot and tensor
 * values standing for IR nodes. Errors poison the value they produce, which
 * lets lowering go on and report independent mistakes without cascades. */
#include "frontend/lower.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/parser.h"

/* Budgets that keep a hostile or runaway model from hanging the compiler or
 * exhausting memory; the 671B model needs about 5,000 nodes and 20,000 steps. */
#define FE_MAX_LOOP_ITERS 1000000
#define FE_MAX_NODES 1000000
#define FE_MAX_STEPS 1000000  /* statements executed, all loops and calls together */
#define FE_MAX_STRING 65536   /* bytes of one interpolated string */

const char *lw_kind_name(VKind k) {
    static const char *names[] = {"nothing", "an erroneous value", "an int",  "a float",  "a bool", "a string",
                                  "a dimension", "a dtype", "a list", "a tuple", "a tensor"};
    return names[k];
}

void lw_call_notes(Lower *L) {
    for (int i = L->depth - 1; i >= 0; i--) diag_note(L->d, L->frames[i].call, "in call to '%s' here", L->frames[i].fn);
}

void lw_error(Lower *L, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(L->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    lw_call_notes(L);
}

static Value poison(void) { return (Value){.k = V_POISON}; }

bool lw_lookup(Lower *L, Scope *s, const char *name, Value *out) {
    (void)L;
    for (; s; s = s->parent) {
        const Value *v = strmap_get(&s->names, name);
        if (v) {
            *out = *v;
            return true;
        }
    }
    return false;
}

void *lw_map_get(const StrMap *m, const char *name) {
    void **v = strmap_get(m, name);
    return v ? *v : NULL;
}

void lw_map_put(StrMap *m, const char *name, void *v) { *(void **)strmap_put(m, name, NULL) = v; }

void lw_bind(Lower *L, Scope *s, const char *name, Value v) {
    (void)L;
    *(Value *)strmap_put(&s->names, name, NULL) = v;
}

static Scope *scope_new(Lower *L, Scope *parent) {
    Scope *s = arena_alloc(L->a, sizeof *s);
    strmap_init(&s->names, L->a, sizeof(Value));
    s->parent = parent;
    return s;
}

Value lw_node(Lower *L, SrcLoc loc, IrOp op, IrNode **ops, int nops, const IrAttr *attrs, int nattrs,
              const IrType *declared) {
    if (L->g->nnodes >= FE_MAX_NODES) {
        lw_error(L, loc, "the graph exceeds %d nodes", FE_MAX_NODES);
        return poison();
    }
    IrNode *n = ir_graph_add_node(L->g, L->d, op, ops, nops, attrs, nattrs, declared, loc, L->scope);
    if (!n) {
        lw_call_notes(L);
        return poison();
    }
    return (Value){.k = V_TENSOR, .u.t = n};
}

/* ---- strings ------------------------------------------------------------ */

const char *lw_interpolate(Lower *L, Scope *s, const char *text, const char *keep, SrcLoc loc) {
    if (!strchr(text, '{') && !strchr(text, '}')) return text;
    StrBuf sb;
    sb_init(&sb);
    const char *p = text;
    while (*p) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            sb_putc(&sb, p[0]);
            p += 2;
        } else if (*p == '{') {
            const char *end = strchr(p, '}');
            if (!end) {
                lw_error(L, loc, "unclosed '{' in string \"%s\" (write '{{' for a literal brace)", text);
                sb_free(&sb);
                return NULL;
            }
            char *name = arena_strndup(L->a, p + 1, (size_t)(end - p - 1));
            Value v;
            if (keep && strcmp(name, keep) == 0) sb_printf(&sb, "{%s}", name);
            else if (!lw_lookup(L, s, name, &v)) {
                lw_error(L, loc, "string \"%s\" refers to undefined name '%s'", text, name);
                sb_free(&sb);
                return NULL;
            } else if (v.k == V_INT) sb_printf(&sb, "%lld", (long long)v.u.i);
            else if (v.k == V_STR) sb_puts(&sb, v.u.s);
            else if (v.k == V_POISON) { sb_free(&sb); return NULL; }
            else {
                lw_error(L, loc, "cannot put %s ('%s') into a string; only ints and strings", lw_kind_name(v.k), name);
                sb_free(&sb);
                return NULL;
            }
            p = end + 1;
            if (sb.len > FE_MAX_STRING) {
                lw_error(L, loc, "string \"%.40s...\" grows beyond %d bytes", text, FE_MAX_STRING);
                sb_free(&sb);
                return NULL;
            }
        } else if (*p == '}') {
            lw_error(L, loc, "unmatched '}' in string \"%s\" (write '}}' for a literal brace)", text);
            sb_free(&sb);
            return NULL;
        } else {
            sb_putc(&sb, *p++);
        }
    }
    const char *r = arena_strndup(L->a, sb.data ? sb.data : "", sb.len);
    sb_free(&sb);
    return r;
}

/* ---- expressions ---------------------------------------------------------- */

static bool is_num(Value v) { return v.k == V_INT || v.k == V_FLOAT; }
static double num(Value v) { return v.k == V_INT ? (double)v.u.i : v.u.f; }

/* Int or dim as a dim; false if neither. */
static bool as_dim(Value v, IrDim *d) {
    if (v.k == V_INT && v.u.i >= 0) { *d = ir_dim_const(v.u.i); return true; }
    if (v.k == V_DIM) { *d = v.u.dim; return true; }
    return false;
}

static const char *op_text(int op) {
    switch (op) {
    case OR: return "||";
    case AND: return "&&";
    case EQ: return "==";
    case NE: return "!=";
    case LE: return "<=";
    case GE: return ">=";
    case '<': return "<";
    case '>': return ">";
    case '+': return "+";
    case '-': return "-";
    case '*': return "*";
    case '/': return "/";
    default: return "%";
    }
}

/* tensor (op) tensor-or-scalar: emits add/sub/mul/div with a const for a scalar. */
static Value tensor_binop(Lower *L, AstNode *e, Value a, Value b) {
    IrOp op = e->op == '+' ? IR_OP_ADD : e->op == '-' ? IR_OP_SUB : e->op == '*' ? IR_OP_MUL : IR_OP_DIV;
    if (e->op != '+' && e->op != '-' && e->op != '*' && e->op != '/') {
        lw_error(L, e->loc, "operator '%s' is not defined on tensors", op_text(e->op));
        return poison();
    }
    IrNode *x[2];
    Value v[2] = {a, b};
    IrDType dt = a.k == V_TENSOR ? a.u.t->type.dtype : b.u.t->type.dtype;
    for (int i = 0; i < 2; i++) {
        if (v[i].k == V_TENSOR) x[i] = v[i].u.t;
        else if (is_num(v[i])) {
            IrAttr at = {.name = "value", .kind = IR_ATTR_FLOAT, .u.f = num(v[i])};
            IrType t = {.dtype = dt, .rank = 0};
            Value c = lw_node(L, e->loc, IR_OP_CONST, NULL, 0, &at, 1, &t);
            if (c.k != V_TENSOR) return c;
            x[i] = c.u.t;
        } else {
            lw_error(L, e->loc, "cannot apply '%s' to a tensor and %s", op_text(e->op), lw_kind_name(v[i].k));
            return poison();
        }
    }
    return lw_node(L, e->loc, op, x, 2, NULL, 0, NULL);
}

/* Comparison op of two numbers from how they compare (all false for a NaN:
 * then only != holds). */
static Value compare(int op, bool lt, bool eq, bool gt) {
    bool b = op == EQ ? eq : op == NE ? !eq : op == '<' ? lt : op == LE ? lt || eq : op == '>' ? gt : gt || eq;
    return (Value){.k = V_BOOL, .u.b = b};
}

static Value int_binop(Lower *L, AstNode *e, int64_t x, int64_t y) {
    int64_t r = 0;
    bool ovf = false;
    switch (e->op) {
    case '+': ovf = __builtin_add_overflow(x, y, &r); break;
    case '-': ovf = __builtin_sub_overflow(x, y, &r); break;
    case '*': ovf = __builtin_mul_overflow(x, y, &r); break;
    case '/':
    case '%':
        if (y == 0) { lw_error(L, e->loc, "division by zero"); return poison(); }
        if (x == INT64_MIN && y == -1) { ovf = true; break; }
        if (e->op == '%') { r = x % y; break; }
        if (x % y) {
            lw_error(L, e->loc, "%lld / %lld is not an integer; use float() for real division", (long long)x, (long long)y);
            return poison();
        }
        r = x / y;
        break;
    case EQ: case NE: case '<': case LE: case '>': case GE: return compare(e->op, x < y, x == y, x > y);
    default: lw_error(L, e->loc, "operator '%s' needs bools", op_text(e->op)); return poison();
    }
    if (ovf) { lw_error(L, e->loc, "integer overflow in '%s'", op_text(e->op)); return poison(); }
    return (Value){.k = V_INT, .u.i = r};
}

static Value float_binop(Lower *L, AstNode *e, double x, double y) {
    switch (e->op) {
    case '+': return (Value){.k = V_FLOAT, .u.f = x + y};
    case '-': return (Value){.k = V_FLOAT, .u.f = x - y};
    case '*': return (Value){.k = V_FLOAT, .u.f = x * y};
    case '/':
        if (y == 0) { lw_error(L, e->loc, "division by zero"); return poison(); }
        return (Value){.k = V_FLOAT, .u.f = x / y};
    case EQ: case NE: case '<': case LE: case '>': case GE: return compare(e->op, x < y, x == y, x > y);
    default: lw_error(L, e->loc, "operator '%s' is not defined on floats", op_text(e->op)); return poison();
    }
}

static Value eval_binop(Lower *L, Scope *s, AstNode *e) {
    if (e->op == AND || e->op == OR) { /* short-circuit, bools only */
        Value a = lw_eval(L, s, e->a);
        if (a.k == V_POISON) return a;
        if (a.k != V_BOOL) { lw_error(L, e->a->loc, "'%s' needs bools, got %s", op_text(e->op), lw_kind_name(a.k)); return poison(); }
        if (a.u.b == (e->op == OR)) return a;
        Value b = lw_eval(L, s, e->b);
        if (b.k == V_POISON) return b;
        if (b.k != V_BOOL) { lw_error(L, e->b->loc, "'%s' needs bools, got %s", op_text(e->op), lw_kind_name(b.k)); return poison(); }
        return b;
    }
    Value a = lw_eval(L, s, e->a), b = lw_eval(L, s, e->b);
    if (a.k == V_POISON || b.k == V_POISON) return poison();
    if (a.k == V_TENSOR || b.k == V_TENSOR) return tensor_binop(L, e, a, b);
    if (a.k == V_INT && b.k == V_INT) return int_binop(L, e, a.u.i, b.u.i);
    IrDim da, db;
    if ((a.k == V_DIM || b.k == V_DIM) && as_dim(a, &da) && as_dim(b, &db)) {
        if (e->op == '*') return (Value){.k = V_DIM, .u.dim = ir_dim_mul(da, db)};
        if (e->op == EQ || e->op == NE) return (Value){.k = V_BOOL, .u.b = ir_dim_eq(da, db) == (e->op == EQ)};
        lw_error(L, e->loc, "dimension expressions are products of dims and ints; '%s' is not allowed", op_text(e->op));
        return poison();
    }
    if (is_num(a) && is_num(b)) return float_binop(L, e, num(a), num(b));
    if ((e->op == EQ || e->op == NE) && a.k == b.k && (a.k == V_STR || a.k == V_BOOL || a.k == V_DTYPE)) {
        bool eq = a.k == V_STR ? strcmp(a.u.s, b.u.s) == 0 : a.k == V_BOOL ? a.u.b == b.u.b : a.u.dt == b.u.dt;
        return (Value){.k = V_BOOL, .u.b = eq == (e->op == EQ)};
    }
    lw_error(L, e->loc, "cannot apply '%s' to %s and %s", op_text(e->op), lw_kind_name(a.k), lw_kind_name(b.k));
    return poison();
}

static Value eval_unop(Lower *L, Scope *s, AstNode *e) {
    Value a = lw_eval(L, s, e->a);
    if (a.k == V_POISON) return a;
    if (e->op == '!') {
        if (a.k != V_BOOL) { lw_error(L, e->loc, "'!' needs a bool, got %s", lw_kind_name(a.k)); return poison(); }
        return (Value){.k = V_BOOL, .u.b = !a.u.b};
    }
    if (a.k == V_INT) {
        if (a.u.i == INT64_MIN) { lw_error(L, e->loc, "integer overflow in '-'"); return poison(); }
        return (Value){.k = V_INT, .u.i = -a.u.i};
    }
    if (a.k == V_FLOAT) return (Value){.k = V_FLOAT, .u.f = -a.u.f};
    if (a.k == V_TENSOR) return lw_node(L, e->loc, IR_OP_NEG, &a.u.t, 1, NULL, 0, NULL);
    lw_error(L, e->loc, "cannot negate %s", lw_kind_name(a.k));
    return poison();
}

Value lw_eval(Lower *L, Scope *s, AstNode *e) {
    switch (e->kind) {
    case AST_INT: return (Value){.k = V_INT, .u.i = e->ival};
    case AST_FLOAT: return (Value){.k = V_FLOAT, .u.f = e->fval};
    case AST_BOOL: return (Value){.k = V_BOOL, .u.b = e->ival != 0};
    case AST_STR: {
        const char *t = lw_interpolate(L, s, e->str, NULL, e->loc);
        return t ? (Value){.k = V_STR, .u.s = t} : poison();
    }
    case AST_NAME: {
        Value v;
        if (lw_lookup(L, s, e->str, &v)) return v;
        IrDType dt;
        if (ir_dtype_lookup(e->str, &dt)) return (Value){.k = V_DTYPE, .u.dt = dt};
        lw_error(L, e->loc, "undefined name '%s'", e->str);
        return poison();
    }
    case AST_LIST: {
        Value *v = arena_alloc(L->a, sizeof(Value) * (e->list.n ? e->list.n : 1));
        for (size_t i = 0; i < e->list.n; i++) {
            v[i] = lw_eval(L, s, e->list.v[i]);
            if (v[i].k == V_POISON) return v[i];
        }
        return (Value){.k = V_LIST, .u.list = {v, (int)e->list.n}};
    }
    case AST_CALL: return lw_call(L, s, e);
    case AST_BINOP: return eval_binop(L, s, e);
    case AST_UNOP: return eval_unop(L, s, e);
    default: IR_UNREACHABLE();
    }
}

/* ---- types ------------------------------------------------------------ */

static bool eval_type(Lower *L, Scope *s, AstNode *t, IrType *out) {
    memset(out, 0, sizeof *out);
    if (!ir_dtype_lookup(t->str, &out->dtype)) {
        lw_error(L, t->loc, "unknown dtype '%s' (f32, bf16, f16, fp8e4m3, i32, i64)", t->str);
        return false;
    }
    if (t->list.n > IR_MAX_RANK) {
        lw_error(L, t->loc, "tensors have at most %d dimensions", IR_MAX_RANK);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < t->list.n; i++) {
        Value v = lw_eval(L, s, t->list.v[i]);
        if (v.k == V_POISON) { ok = false; continue; }
        if (!as_dim(v, &out->dims[i])) {
            lw_error(L, t->list.v[i]->loc, "a dimension must be a non-negative int or a product of dims, got %s",
                     v.k == V_INT ? "a negative int" : lw_kind_name(v.k));
            ok = false;
        }
    }
    out->rank = (int)t->list.n;
    return ok;
}

/* ---- statements ----------------------------------------------------------- */

static void exec_block(Lower *L, Scope *parent, AstVec *body);

static void exec_let(Lower *L, Scope *s, AstNode *st) {
    Value v = lw_eval(L, s, st->a);
    size_t n = st->list.n;
    for (size_t i = 0; i < n; i++)
        if (strmap_get(&s->names, st->list.v[i]->str)) {
            lw_error(L, st->list.v[i]->loc, "'%s' is already defined in this block; assign without 'let'", st->list.v[i]->str);
            return;
        }
    if (n == 1) {
        if (v.k == V_TUPLE) { lw_error(L, st->loc, "a %d-value tuple needs %d names", v.u.list.n, v.u.list.n); v = poison(); }
        lw_bind(L, s, st->list.v[0]->str, v);
        return;
    }
    if (v.k != V_TUPLE || v.u.list.n != (int)n) {
        if (v.k != V_POISON)
            lw_error(L, st->loc, "cannot unpack %s into %zu names", v.k == V_TUPLE ? arena_printf(L->a, "a %d-value tuple", v.u.list.n) : lw_kind_name(v.k), n);
        for (size_t i = 0; i < n; i++) lw_bind(L, s, st->list.v[i]->str, poison());
        return;
    }
    for (size_t i = 0; i < n; i++) lw_bind(L, s, st->list.v[i]->str, v.u.list.v[i]);
}

static void exec_assign(Lower *L, Scope *s, AstNode *st) {
    Value v = lw_eval(L, s, st->a);
    for (Scope *sc = s; sc; sc = sc->parent) {
        Value *b = strmap_get(&sc->names, st->str);
        if (b) {
            if (v.k == V_TUPLE) { lw_error(L, st->loc, "cannot assign a tuple to '%s'; use 'let a, b = ...'", st->str); v = poison(); }
            *b = v;
            return;
        }
    }
    lw_error(L, st->loc, "cannot assign to undefined variable '%s'; declare it with 'let'", st->str);
}

static void exec_weight(Lower *L, Scope *s, AstNode *st) {
    Value pat = st->a->kind == AST_STR ? (Value){.k = V_STR, .u.s = st->a->str} : lw_eval(L, s, st->a);
    if (pat.k == V_POISON) { lw_bind(L, s, st->str, poison()); return; }
    if (pat.k != V_STR) {
        lw_error(L, st->a->loc, "a weight binds to a checkpoint name (a string), got %s", lw_kind_name(pat.k));
        lw_bind(L, s, st->str, poison());
        return;
    }
    IrType t;
    bool ok = eval_type(L, s, st->c, &t);
    const char *name = lw_interpolate(L, s, pat.u.s, st->str2, st->a->loc);
    IrAttr attrs[3] = {{.name = "name", .kind = IR_ATTR_STR, .u.s = name}};
    int nattrs = 1;
    if (st->str2) {
        Value cnt = lw_eval(L, s, st->b);
        if (cnt.k != V_INT || cnt.u.i < 1 || cnt.u.i > 1000000) {
            if (cnt.k == V_INT) lw_error(L, st->b->loc, "a stack count must be an int in 1..1000000, got %lld", (long long)cnt.u.i);
            else if (cnt.k != V_POISON) lw_error(L, st->b->loc, "a stack count must be an int in 1..1000000, got %s", lw_kind_name(cnt.k));
            ok = false;
        } else if (t.rank >= IR_MAX_RANK) {
            lw_error(L, st->c->loc, "a stacked weight has at most %d dimensions", IR_MAX_RANK - 1);
            ok = false;
        } else {
            memmove(&t.dims[1], &t.dims[0], sizeof(IrDim) * (size_t)t.rank);
            t.dims[0] = ir_dim_const(cnt.u.i);
            t.rank++;
            if (name && !strstr(name, arena_printf(L->a, "{%s}", st->str2)))
                lw_error(L, st->a->loc, "stacked weight pattern \"%s\" does not use its index {%s}", name, st->str2), ok = false;
            attrs[nattrs++] = (IrAttr){.name = "stack", .kind = IR_ATTR_STR, .u.s = st->str2};
            attrs[nattrs++] = (IrAttr){.name = "count", .kind = IR_ATTR_INT, .u.i = cnt.u.i};
        }
    }
    if (!ok || !name) { lw_bind(L, s, st->str, poison()); return; }
    IrNode *prev = lw_map_get(&L->weights, name);
    if (prev) {
        if (!ir_type_eq(&prev->type, &t)) {
            StrBuf a, b;
            sb_init(&a); sb_init(&b);
            ir_type_print(L->g, &t, &a);
            ir_type_print(L->g, &prev->type, &b);
            lw_error(L, st->loc, "weight \"%s\" declared as %s here but as %s before", name, a.data, b.data);
            diag_note(L->d, prev->loc, "first declared here");
            sb_free(&a); sb_free(&b);
            lw_bind(L, s, st->str, poison());
            return;
        }
        lw_bind(L, s, st->str, (Value){.k = V_TENSOR, .u.t = prev});
        return;
    }
    Value v = lw_node(L, st->loc, IR_OP_WEIGHT, NULL, 0, attrs, nattrs, &t);
    if (v.k == V_TENSOR) lw_map_put(&L->weights, name, v.u.t);
    lw_bind(L, s, st->str, v);
}

static void exec_input(Lower *L, Scope *s, AstNode *st) {
    IrType t;
    IrNode *prev = lw_map_get(&L->inputs, st->str);
    if (prev) {
        lw_error(L, st->loc, "input '%s' is declared twice", st->str);
        diag_note(L->d, prev->loc, "first declared here");
        lw_bind(L, s, st->str, poison());
        return;
    }
    if (!eval_type(L, s, st->c, &t)) { lw_bind(L, s, st->str, poison()); return; }
    IrAttr at = {.name = "name", .kind = IR_ATTR_STR, .u.s = st->str};
    Value v = lw_node(L, st->loc, IR_OP_INPUT, NULL, 0, &at, 1, &t);
    if (v.k == V_TENSOR) lw_map_put(&L->inputs, st->str, v.u.t);
    lw_bind(L, s, st->str, v);
}

static bool eval_int(Lower *L, Scope *s, AstNode *e, int64_t *out, const char *what) {
    Value v = lw_eval(L, s, e);
    if (v.k == V_POISON) return false;
    if (v.k != V_INT) {
        lw_error(L, e->loc, "%s must be an int, got %s", what, lw_kind_name(v.k));
        return false;
    }
    *out = v.u.i;
    return true;
}

static void exec_for(Lower *L, Scope *s, AstNode *st) {
    int64_t lo, hi;
    bool ok_lo = eval_int(L, s, st->a, &lo, "a loop bound");
    if (!eval_int(L, s, st->b, &hi, "a loop bound") || !ok_lo) return;
    if (hi > lo && (uint64_t)(hi - lo) > FE_MAX_LOOP_ITERS) {
        lw_error(L, st->loc, "loop of %lld iterations exceeds the limit of %d", (long long)(hi - lo), FE_MAX_LOOP_ITERS);
        return;
    }
    for (int64_t i = lo; i < hi && !L->returned && !L->halted; i++) {
        Scope *it = scope_new(L, s);
        lw_bind(L, it, st->str, (Value){.k = V_INT, .u.i = i});
        exec_block(L, it, &st->list);
        if (diag_error_count(L->d) > 200) return;
    }
}

static void exec_if(Lower *L, Scope *s, AstNode *st) {
    Value c = lw_eval(L, s, st->a);
    if (c.k == V_POISON) return;
    if (c.k != V_BOOL) {
        lw_error(L, st->a->loc, "an if condition must be a bool, got %s", lw_kind_name(c.k));
        return;
    }
    exec_block(L, s, c.u.b ? &st->list : &st->list2);
}

static void exec_assert(Lower *L, Scope *s, AstNode *st) {
    Value c = lw_eval(L, s, st->a), m = lw_eval(L, s, st->b);
    if (c.k == V_POISON || m.k == V_POISON) return;
    if (c.k != V_BOOL) { lw_error(L, st->a->loc, "an assert condition must be a bool, got %s", lw_kind_name(c.k)); return; }
    if (m.k != V_STR) { lw_error(L, st->b->loc, "an assert message must be a string, got %s", lw_kind_name(m.k)); return; }
    if (!c.u.b) lw_error(L, st->loc, "assertion failed: %s", m.u.s);
}

static void exec_output(Lower *L, Scope *s, AstNode *st) {
    Value v = lw_eval(L, s, st->a);
    if (v.k == V_POISON) return;
    if (v.k != V_TENSOR) { lw_error(L, st->a->loc, "output '%s' must be a tensor, got %s", st->str, lw_kind_name(v.k)); return; }
    if (lw_map_get(&L->outputs, st->str)) {
        lw_error(L, st->loc, "output '%s' is declared twice", st->str);
        return;
    }
    IrAttr at = {.name = "name", .kind = IR_ATTR_STR, .u.s = st->str};
    Value o = lw_node(L, st->loc, IR_OP_OUTPUT, &v.u.t, 1, &at, 1, NULL);
    if (o.k == V_TENSOR) lw_map_put(&L->outputs, st->str, o.u.t);
}

static void exec_return(Lower *L, Scope *s, AstNode *st) {
    if (L->depth == 0) { lw_error(L, st->loc, "'return' outside a function"); return; }
    /* Built in a local first: evaluating a value may inline another fn,
     * which resets L->retval when it returns. */
    Value r;
    if (st->list.n == 1) r = lw_eval(L, s, st->list.v[0]);
    else {
        Value *v = arena_alloc(L->a, sizeof(Value) * st->list.n);
        r = (Value){.k = V_TUPLE, .u.list = {v, (int)st->list.n}};
        for (size_t i = 0; i < st->list.n; i++) {
            v[i] = lw_eval(L, s, st->list.v[i]);
            if (v[i].k == V_TUPLE) lw_error(L, st->list.v[i]->loc, "a tuple cannot be part of another tuple");
            if (v[i].k == V_POISON || v[i].k == V_TUPLE) r = poison();
        }
    }
    L->retval = r;
    L->returned = true;
}

static void exec_stmt(Lower *L, Scope *s, AstNode *st) {
    if (++L->steps > FE_MAX_STEPS) {
        if (!L->halted) lw_error(L, st->loc, "the model takes more than %d steps to unroll (a runaway loop?)", FE_MAX_STEPS);
        L->halted = true;
        return;
    }
    switch (st->kind) {
    case AST_LET: exec_let(L, s, st); break;
    case AST_ASSIGN: exec_assign(L, s, st); break;
    case AST_WEIGHT: exec_weight(L, s, st); break;
    case AST_INPUT: exec_input(L, s, st); break;
    case AST_FOR: exec_for(L, s, st); break;
    case AST_IF: exec_if(L, s, st); break;
    case AST_ASSERT: exec_assert(L, s, st); break;
    case AST_OUTPUT: exec_output(L, s, st); break;
    case AST_RETURN: exec_return(L, s, st); break;
    default: IR_UNREACHABLE();
    }
}

static void exec_block(Lower *L, Scope *parent, AstVec *body) {
    Scope *s = scope_new(L, parent);
    for (size_t i = 0; i < body->n && !L->returned && !L->halted; i++) exec_stmt(L, s, body->v[i]);
}

/* Interns a scope path so equal paths share one pointer. */
static const char *intern_scope(Lower *L, const char *path) {
    const char *p = lw_map_get(&L->scopes, path);
    if (p) return p;
    p = arena_strdup(L->a, path);
    lw_map_put(&L->scopes, p, (void *)p);
    return p;
}

/* Calls the user fn `fn` with evaluated arguments. */
Value lw_call_fn(Lower *L, AstNode *fn, AstNode *call, Value *args, int nargs) {
    if ((size_t)nargs != fn->list.n) {
        lw_error(L, call->loc, "'%s' takes %zu argument%s, got %d", fn->str, fn->list.n, fn->list.n == 1 ? "" : "s", nargs);
        diag_note(L->d, fn->loc, "'%s' is defined here", fn->str);
        return poison();
    }
    if (L->depth >= FE_MAX_CALL_DEPTH) {
        lw_error(L, call->loc, "calls nested deeper than %d (is '%s' recursive?)", FE_MAX_CALL_DEPTH, fn->str);
        return poison();
    }
    Scope *s = scope_new(L, L->globals);
    for (int i = 0; i < nargs; i++) lw_bind(L, s, fn->list.v[i]->str, args[i]);
    const char *saved_scope = L->scope;
    L->frames[L->depth++] = (Frame){fn->str, call->loc};
    L->scope = intern_scope(L, saved_scope ? arena_printf(L->a, "%s/%s", saved_scope, fn->str) : fn->str);
    L->returned = false;
    L->retval = (Value){.k = V_NONE};
    exec_block(L, s, &fn->list2);
    Value r = L->halted ? poison() : L->retval;
    L->returned = false;
    L->retval = (Value){.k = V_NONE};
    L->scope = saved_scope;
    L->depth--;
    return r;
}

/* ---- files and entry points ------------------------------------------ */

/* Files already read: each is read once, so an import cycle is simply cut
 * where it closes (docs/DSL.md: "each file once"). */
#define FE_MAX_IMPORT_DEPTH 32
typedef struct {
    const char **seen; /* real paths */
    size_t nseen, capseen;
    int depth;
} Imports;

static bool parse_file(Lower *L, FeParseCtx *ctx, const char *text, size_t len, AstVec *out, Imports *im);

/* Reads and parses one imported file, appending its items to out. */
static bool import_one(Lower *L, AstNode *it, const char *file, AstVec *out, Imports *im) {
    if (im->depth > FE_MAX_IMPORT_DEPTH) {
        lw_error(L, it->loc, "imports nested deeper than %d", FE_MAX_IMPORT_DEPTH);
        return false;
    }
    const char *slash = strrchr(file, '/');
    const char *path = it->str[0] == '/' || !slash ? it->str
                                                   : arena_printf(L->a, "%.*s/%s", (int)(slash - file), file, it->str);
    char *real = realpath(path, NULL);
    if (!real) {
        lw_error(L, it->loc, "cannot import \"%s\": no such file (looked for %s)", it->str, path);
        return false;
    }
    const char *kept = arena_strdup(L->a, real);
    free(real);
    for (size_t k = 0; k < im->nseen; k++)
        if (strcmp(im->seen[k], kept) == 0) return true; /* each file once */
    ARENA_PUSH(L->a, im->seen, im->nseen, im->capseen, kept);
    size_t len;
    char *text = read_file_text(L->a, L->d, path, &len);
    if (!text) {
        diag_note(L->d, it->loc, "imported here");
        return false;
    }
    FeParseCtx sub = {.arena = L->a, .diag = L->d, .file = arena_strdup(L->a, path)};
    im->depth++;
    bool ok = parse_file(L, &sub, text, len, out, im);
    im->depth--;
    return ok;
}

/* Parses ctx->file's text; imports are spliced in place of their items. */
static bool parse_file(Lower *L, FeParseCtx *ctx, const char *text, size_t len, AstVec *out, Imports *im) {
    diag_add_source(L->d, ctx->file, text, len);
    bool ok = fe_parse_text(ctx, text, len);
    for (size_t i = 0; i < ctx->items.n; i++) {
        AstNode *it = ctx->items.v[i];
        if (it->kind == AST_IMPORT) ok &= import_one(L, it, ctx->file, out, im);
        else ast_push(L->a, out, it);
    }
    return ok;
}

static const char *file_stem(Arena *a, const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    return arena_strndup(a, b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
}

static void run_items(Lower *L, AstVec *items) {
    for (size_t i = 0; i < items->n; i++) {
        AstNode *it = items->v[i];
        if (it->kind != AST_FN) continue;
        AstNode *first = lw_map_get(&L->fn_map, it->str);
        if (first) {
            lw_error(L, it->loc, "function '%s' is defined twice", it->str);
            diag_note(L->d, first->loc, "first defined here");
        } else lw_map_put(&L->fn_map, it->str, it);
        IrOp op;
        if (ir_op_lookup(it->str, &op)) lw_error(L, it->loc, "'%s' is an op; choose another name for the function", it->str);
        ast_push(L->a, &L->fns, it);
    }
    for (size_t i = 0; i < items->n; i++) {
        AstNode *it = items->v[i];
        switch (it->kind) {
        case AST_FN: break;
        case AST_MODEL:
            if (L->g->nnodes) lw_error(L, it->loc, "'model' must come before the first statement");
            else L->g->name = it->str;
            if (!lw_config_check_type(L, it)) L->halted = true; /* a config of another model: bind nothing */
            break;
        case AST_PARAM: lw_bind_param(L, it); break;
        case AST_DIM:
            for (size_t k = 0; k < it->list.n; k++) {
                AstNode *nm = it->list.v[k];
                Value old;
                int idx = lw_lookup(L, L->globals, nm->str, &old) ? -2 : ir_graph_add_dim(L->g, nm->str);
                if (idx < 0) {
                    lw_error(L, nm->loc, idx == -2 ? "'%s' is already defined" : "cannot declare dim '%s': a graph has at most 8 dims", nm->str);
                    continue;
                }
                lw_bind(L, L->globals, nm->str, (Value){.k = V_DIM, .u.dim = ir_dim_sym(idx)});
            }
            break;
        default: exec_stmt(L, L->globals, it); break;
        }
        if (diag_error_count(L->d) > 200 || L->halted) return;
    }
}

IrGraph *fe_compile_string(Arena *a, DiagEngine *d, const char *file, const char *text, size_t len,
                           const FeOptions *opt) {
    static const FeOptions none = {0};
    Lower L = {.a = a, .d = d, .opt = opt ? opt : &none};
    int before = diag_error_count(d);
    file = arena_strdup(a, file);
    L.g = ir_graph_new(a, file_stem(a, file));
    StrMap *maps[] = {&L.fn_map, &L.inputs, &L.outputs, &L.weights, &L.scopes};
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) strmap_init(maps[i], a, sizeof(void *));
    L.globals = scope_new(&L, NULL);
    L.set_used = arena_alloc(a, sizeof(bool) * (size_t)(L.opt->nsets + 1));
    FeParseCtx ctx = {.arena = a, .diag = d, .file = file};
    AstVec items = {0};
    Imports im = {0};
    char *real = realpath(file, NULL);
    if (real) { /* text that names no real file cannot be imported back */
        const char *kept = arena_strdup(a, real);
        ARENA_PUSH(a, im.seen, im.nseen, im.capseen, kept);
        free(real);
    }
    bool parsed = parse_file(&L, &ctx, text, len, &items, &im);
    if (parsed && lw_config_load(&L)) {
        run_items(&L, &items);
        if (!L.halted) lw_check_unused_sets(&L);
    }
    lw_config_free(&L);
    return diag_error_count(d) > before ? NULL : L.g;
}

bool fe_declares_param(Arena *a, const char *path, const char *name, bool *declares) {
    static const FeOptions none = {0};
    DiagEngine *quiet = diag_new(a, NULL);
    Lower L = {.a = a, .d = quiet, .opt = &none};
    size_t len;
    char *text = read_file_text(a, quiet, path, &len);
    FeParseCtx ctx = {.arena = a, .diag = quiet, .file = arena_strdup(a, path)};
    AstVec items = {0};
    Imports im = {0};
    char *real = realpath(path, NULL);
    if (real) { /* as fe_compile_string: the file itself is not imported back */
        const char *kept = arena_strdup(a, real);
        ARENA_PUSH(a, im.seen, im.nseen, im.capseen, kept);
        free(real);
    }
    *declares = false;
    if (!text || !parse_file(&L, &ctx, text, len, &items, &im) || diag_error_count(quiet)) return false;
    for (size_t i = 0; i < items.n; i++) *declares |= items.v[i]->kind == AST_PARAM && strcmp(items.v[i]->str, name) == 0;
    return true;
}

IrGraph *fe_compile_file(Arena *a, DiagEngine *d, const char *path, const FeOptions *opt) {
    size_t len;
    char *text = read_file_text(a, d, path, &len);
    if (!text) return NULL;
    return fe_compile_string(a, d, path, text, len, opt);
}
