/* parse.c — reads the textual IR that print.c writes (grammar in docs/IR.md).
 *
 * A hand-written scanner and recursive-descent parser. Each statement sits
 * on one line, which gives error recovery for free: after an error the rest
 * of the line is skipped and parsing resumes, so one run reports every bad
 * line. Nodes are built with ir_graph_add_node, so the shape rules that
 * check the frontend's output check hand-written IR too. */
#include "ir/ir.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_EOF, T_NL, T_IDENT, T_INT, T_FLOAT, T_STR, T_VALUE, T_PUNCT, T_BAD } TokKind;

typedef struct {
    TokKind kind;
    const char *start;
    size_t len;
    int line, col;
    int64_t i;
    double f;
    char *s;  /* T_STR contents, unescaped */
    char ch;  /* T_PUNCT */
    const char *bad; /* T_BAD: what is wrong, for messages ("an unterminated string") */
} Tok;

typedef struct {
    int64_t id;
    IrNode *n; /* NULL = empty slot */
} ValSlot;

typedef struct {
    Arena *a;
    DiagEngine *d;
    const char *file;
    const char *p, *end;
    int line;
    const char *line_start;
    Tok tok;
    IrGraph *g;
    ValSlot *vals; /* value id -> node, open addressing: ids may be sparse */
    size_t nvals, valcap;
    bool line_failed;
    IrNode poison; /* stands for a value whose statement failed */
    const IrNode **names; /* (op, name) -> first input/output/weight so named */
    size_t nnames, namecap;
} Parser;

static SrcLoc here(Parser *ps) { return (SrcLoc){ps->file, ps->tok.line, ps->tok.col}; }

static void perr(Parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(Parser *ps, const char *fmt, ...) {
    if (ps->line_failed) return; /* one error per line */
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(ps->d, DIAG_ERROR, here(ps), fmt, ap);
    va_end(ap);
    ps->line_failed = true;
}

/* Scans a string literal after the opening quote. */
static void scan_string(Parser *ps, Tok *t) {
    StrBuf sb;
    sb_init(&sb);
    while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\n') {
        char c = *ps->p++;
        if (c == '\\' && ps->p < ps->end) {
            char e = *ps->p++;
            if (e == 'n') c = '\n';
            else if (e == 't') c = '\t';
            else if (e == 'x' && ps->end - ps->p >= 2 && isxdigit((unsigned char)ps->p[0]) && isxdigit((unsigned char)ps->p[1])) {
                char hex[3] = {ps->p[0], ps->p[1], 0};
                c = (char)strtol(hex, NULL, 16);
                ps->p += 2;
            } else c = e;
        }
        if (c == 0) {
            t->kind = T_BAD;
            t->bad = "a string holding a NUL byte";
            sb_free(&sb);
            return;
        }
        sb_putc(&sb, c);
    }
    if (ps->p >= ps->end || *ps->p != '"') {
        t->kind = T_BAD;
        t->bad = "an unterminated string";
        sb_free(&sb);
        return;
    }
    ps->p++;
    t->kind = T_STR;
    t->s = arena_strndup(ps->a, sb.data ? sb.data : "", sb.len);
    sb_free(&sb);
}

static void scan_number(Parser *ps, Tok *t) {
    const char *s = ps->p;
    if (*ps->p == '-' || *ps->p == '+') ps->p++;
    if (ps->end - ps->p >= 3 && (strncmp(ps->p, "inf", 3) == 0 || strncmp(ps->p, "nan", 3) == 0)) {
        t->kind = T_FLOAT;
        t->f = ps->p[0] == 'i' ? (*s == '-' ? -INFINITY : INFINITY) : NAN;
        ps->p += 3;
        return;
    }
    bool is_float = false;
    while (ps->p < ps->end && (isdigit((unsigned char)*ps->p) || *ps->p == '.' || *ps->p == 'e' || *ps->p == 'E' ||
                               ((*ps->p == '-' || *ps->p == '+') && (ps->p[-1] == 'e' || ps->p[-1] == 'E')))) {
        if (!isdigit((unsigned char)*ps->p)) is_float = true;
        ps->p++;
    }
    char buf[64];
    size_t n = (size_t)(ps->p - s);
    if (n == 0 || n >= sizeof buf) {
        t->kind = T_BAD;
        t->bad = "a number too long to read";
        return;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    char *e;
    errno = 0;
    if (is_float) {
        t->f = strtod(buf, &e);
        /* underflow reads as the nearest double (printed subnormals must read back) */
        t->kind = *e || (errno == ERANGE && isinf(t->f)) ? T_BAD : T_FLOAT;
        t->bad = *e ? "a malformed number" : "a float out of range";
    } else {
        t->i = strtoll(buf, &e, 10);
        t->kind = *e || errno == ERANGE ? T_BAD : T_INT;
        t->bad = *e ? "a malformed number" : "an integer out of range";
    }
}

static void next(Parser *ps) {
    Tok *t = &ps->tok;
    for (;;) {
        while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r')) ps->p++;
        if (ps->end - ps->p >= 2 && ps->p[0] == '/' && ps->p[1] == '/')
            while (ps->p < ps->end && *ps->p != '\n') ps->p++;
        else break;
    }
    memset(t, 0, sizeof *t);
    t->start = ps->p;
    t->line = ps->line;
    t->col = (int)(ps->p - ps->line_start) + 1;
    if (ps->p >= ps->end) { t->kind = T_EOF; return; }
    char c = *ps->p;
    if (c == '\n') {
        ps->p++;
        ps->line++;
        ps->line_start = ps->p;
        t->kind = T_NL;
    } else if (isalpha((unsigned char)c) || c == '_') {
        while (ps->p < ps->end && (isalnum((unsigned char)*ps->p) || *ps->p == '_' || *ps->p == '.')) ps->p++;
        t->kind = T_IDENT;
        if ((ps->p - t->start == 3) && (strncmp(t->start, "inf", 3) == 0 || strncmp(t->start, "nan", 3) == 0)) {
            ps->p = t->start;
            scan_number(ps, t);
        }
    } else if (isdigit((unsigned char)c) || ((c == '-' || c == '+') && ps->p + 1 < ps->end &&
                                              (isdigit((unsigned char)ps->p[1]) || ps->p[1] == 'i' || ps->p[1] == 'n'))) {
        scan_number(ps, t);
    } else if (c == '%') {
        ps->p++;
        const char *s = ps->p;
        while (ps->p < ps->end && isdigit((unsigned char)*ps->p)) ps->p++;
        if (ps->p == s || ps->p - s > 9) {
            t->kind = T_BAD;
            t->bad = ps->p == s ? "'%' without a value number" : "a value number of more than 9 digits";
        }
        else {
            /* digits by hand: the text need not be NUL-terminated */
            t->kind = T_VALUE;
            for (const char *q = s; q < ps->p; q++) t->i = t->i * 10 + (*q - '0');
        }
    } else if (c == '"') {
        ps->p++;
        scan_string(ps, t);
    } else if (c && strchr("@(){}[],:=*", c)) {
        ps->p++;
        t->kind = T_PUNCT;
        t->ch = c;
    } else {
        ps->p++;
        t->kind = T_BAD;
        t->bad = c == 0 ? "a NUL byte" : (unsigned char)c < 0x20 || (unsigned char)c >= 0x7f ? "a non-printable byte"
                                                                                         : "an unexpected character";
    }
    t->len = (size_t)(ps->p - t->start);
}

static bool is_punct(Parser *ps, char c) { return ps->tok.kind == T_PUNCT && ps->tok.ch == c; }
static bool is_word(Parser *ps, const char *w) {
    return ps->tok.kind == T_IDENT && ps->tok.len == strlen(w) && strncmp(ps->tok.start, w, ps->tok.len) == 0;
}

static const char *tok_desc(Parser *ps) {
    switch (ps->tok.kind) {
    case T_EOF: return "end of file";
    case T_NL: return "end of line";
    case T_BAD:
        if (strcmp(ps->tok.bad, "an unexpected character") == 0) return arena_printf(ps->a, "an unexpected character '%c'", *ps->tok.start);
        return ps->tok.bad;
    default: return arena_printf(ps->a, "'%.*s'", (int)(ps->tok.len > 40 ? 40 : ps->tok.len), ps->tok.start);
    }
}

static bool expect(Parser *ps, char c) {
    if (is_punct(ps, c)) { next(ps); return true; }
    perr(ps, "expected '%c', found %s", c, tok_desc(ps));
    return false;
}

static char *ident_text(Parser *ps) { return arena_strndup(ps->a, ps->tok.start, ps->tok.len); }

/* dim := factor ('*' factor)*, factor := INT | declared-dim-name */
static bool parse_dim(Parser *ps, IrDim *out) {
    IrDim d = ir_dim_const(1);
    for (;;) {
        if (ps->tok.kind == T_INT && ps->tok.i >= 0) d = ir_dim_mul(d, ir_dim_const(ps->tok.i));
        else if (ps->tok.kind == T_IDENT) {
            char *name = ident_text(ps);
            int s = ir_graph_find_dim(ps->g, name);
            if (s < 0) { perr(ps, "'%s' is not a declared dim (the graph declares it in dims(...))", name); return false; }
            d = ir_dim_mul(d, ir_dim_sym(s));
        } else {
            perr(ps, "expected a dimension, found %s", tok_desc(ps));
            return false;
        }
        if (d.coeff == INT64_MAX) { perr(ps, "dimension is too large"); return false; }
        next(ps);
        if (!is_punct(ps, '*')) break;
        next(ps);
    }
    *out = d;
    return true;
}

/* type := dtype '[' [dim (',' dim)*] ']' */
static bool parse_type(Parser *ps, IrType *t) {
    memset(t, 0, sizeof *t);
    char *name = ps->tok.kind == T_IDENT ? ident_text(ps) : NULL;
    if (!name || !ir_dtype_lookup(name, &t->dtype)) {
        perr(ps, "expected a dtype (f32, bf16, f16, fp8e4m3, i32, i64), found %s", tok_desc(ps));
        return false;
    }
    next(ps);
    if (!expect(ps, '[')) return false;
    while (!is_punct(ps, ']')) {
        if (t->rank == IR_MAX_RANK) { perr(ps, "more than %d dimensions", IR_MAX_RANK); return false; }
        if (!parse_dim(ps, &t->dims[t->rank++])) return false;
        if (!is_punct(ps, ']') && !expect(ps, ',')) return false;
    }
    next(ps);
    return true;
}

static bool parse_attr_value(Parser *ps, IrAttr *a) {
    Tok *t = &ps->tok;
    if (t->kind == T_INT) { a->kind = IR_ATTR_INT; a->u.i = t->i; }
    else if (t->kind == T_FLOAT) { a->kind = IR_ATTR_FLOAT; a->u.f = t->f; }
    else if (t->kind == T_STR) { a->kind = IR_ATTR_STR; a->u.s = t->s; }
    else if (is_word(ps, "true") || is_word(ps, "false")) { a->kind = IR_ATTR_BOOL; a->u.b = is_word(ps, "true"); }
    else if (t->kind == T_IDENT && ir_dtype_lookup(ident_text(ps), &a->u.t)) a->kind = IR_ATTR_DTYPE;
    else if (is_punct(ps, '[')) {
        next(ps);
        int64_t *v = NULL;
        size_t n = 0, cap = 0;
        while (!is_punct(ps, ']')) {
            if (ps->tok.kind != T_INT) { perr(ps, "expected an integer in the list, found %s", tok_desc(ps)); return false; }
            if (n >= 64) { perr(ps, "int list too long"); return false; }
            ARENA_PUSH(ps->a, v, n, cap, ps->tok.i);
            next(ps);
            if (!is_punct(ps, ']') && !expect(ps, ',')) return false;
        }
        a->kind = IR_ATTR_INTS;
        a->u.ints.v = v;
        a->u.ints.n = (int)n;
    } else {
        perr(ps, "expected an attribute value, found %s", tok_desc(ps));
        return false;
    }
    next(ps);
    return true;
}

/* attrs := '{' name '=' value (',' name '=' value)* '}' */
static bool parse_attrs(Parser *ps, IrAttr *attrs, int *nattrs) {
    next(ps);
    while (!is_punct(ps, '}')) {
        if (*nattrs == 16) { perr(ps, "too many attributes"); return false; }
        if (ps->tok.kind != T_IDENT) { perr(ps, "expected an attribute name, found %s", tok_desc(ps)); return false; }
        IrAttr *a = &attrs[(*nattrs)++];
        a->name = ident_text(ps);
        next(ps);
        if (!expect(ps, '=') || !parse_attr_value(ps, a)) return false;
        if (!is_punct(ps, '}') && !expect(ps, ',')) return false;
    }
    next(ps);
    return true;
}

/* The slot holding value id, or the empty slot where it would go. */
static ValSlot *value_slot(Parser *ps, int64_t id) {
    size_t i = ((uint64_t)id * 0x9E3779B97F4A7C15u >> 17) & (ps->valcap - 1);
    while (ps->vals[i].n && ps->vals[i].id != id) i = (i + 1) & (ps->valcap - 1);
    return &ps->vals[i];
}

static IrNode *find_value(Parser *ps, int64_t id) { return ps->valcap ? value_slot(ps, id)->n : NULL; }

static IrNode *lookup_value(Parser *ps, int64_t id) {
    IrNode *n = find_value(ps, id);
    if (!n) perr(ps, "use of undefined value %%%lld", (long long)id);
    if (n == &ps->poison) { /* its own line already reported why */
        ps->line_failed = true;
        return NULL;
    }
    return n;
}

/* Records id -> n; the table stays at most half full. */
static void define_value(Parser *ps, int64_t id, IrNode *n) {
    if (2 * (ps->nvals + 1) > ps->valcap) {
        ValSlot *old = ps->vals;
        size_t oldcap = ps->valcap;
        ps->valcap = oldcap ? oldcap * 2 : 1024;
        ps->vals = arena_alloc(ps->a, sizeof(ValSlot) * ps->valcap);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].n) *value_slot(ps, old[i].id) = old[i];
    }
    *value_slot(ps, id) = (ValSlot){id, n};
    ps->nvals++;
}

/* Parses "scope(...)", "group(N)", "mem(N)" and "loc(...)" suffixes. */
static bool parse_suffixes(Parser *ps, const char **scope, SrcLoc *loc, int64_t *group, int64_t *mem, int64_t *stream,
                           IrNode ***waits, int *nwaits) {
    for (;;) {
        if (is_word(ps, "wait")) {
            next(ps);
            if (!expect(ps, '(')) return false;
            size_t n = 0, cap = 0;
            while (ps->tok.kind == T_VALUE) {
                IrNode *w = lookup_value(ps, ps->tok.i);
                if (!w) return false;
                ARENA_PUSH(ps->a, *waits, n, cap, w);
                next(ps);
                if (!is_punct(ps, ',')) break;
                next(ps);
            }
            *nwaits = (int)n;
            if (!expect(ps, ')')) return false;
            continue;
        }
        if (is_word(ps, "group") || is_word(ps, "mem") || is_word(ps, "stream")) {
            int64_t *dst = is_word(ps, "group") ? group : is_word(ps, "mem") ? mem : stream;
            next(ps);
            if (!expect(ps, '(')) return false;
            if (ps->tok.kind != T_INT || ps->tok.i < 0 || (dst != mem && ps->tok.i > INT32_MAX)) {
                perr(ps, "expected a non-negative integer");
                return false;
            }
            *dst = ps->tok.i;
            next(ps);
            if (!expect(ps, ')')) return false;
            continue;
        }
        if (is_word(ps, "scope")) {
            next(ps);
            if (!expect(ps, '(')) return false;
            if (ps->tok.kind != T_STR) { perr(ps, "expected a string in scope(...)"); return false; }
            *scope = ps->tok.s;
            next(ps);
            if (!expect(ps, ')')) return false;
        } else if (is_word(ps, "loc")) {
            next(ps);
            if (!expect(ps, '(')) return false;
            if (ps->tok.kind != T_STR) { perr(ps, "expected a file name in loc(...)"); return false; }
            loc->file = ps->tok.s;
            next(ps);
            if (!expect(ps, ':')) return false;
            if (ps->tok.kind != T_INT || ps->tok.i < 0 || ps->tok.i > INT32_MAX) { perr(ps, "expected a line number"); return false; }
            loc->line = (int)ps->tok.i;
            next(ps);
            if (!expect(ps, ':')) return false;
            if (ps->tok.kind != T_INT || ps->tok.i < 0 || ps->tok.i > INT32_MAX) { perr(ps, "expected a column number"); return false; }
            loc->col = (int)ps->tok.i;
            next(ps);
            if (!expect(ps, ')')) return false;
        } else return true;
    }
}

/* The slot of (op, name) in the name table, or the empty slot for it. */
static const IrNode **name_slot(Parser *ps, IrOp op, const char *name) {
    uint64_t h = 1469598103934665603u ^ (uint64_t)op;
    for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211u;
    size_t i = (size_t)h & (ps->namecap - 1);
    while (ps->names[i] && (ps->names[i]->op != op || strcmp(ir_node_attr_str(ps->names[i], "name", ""), name) != 0))
        i = (i + 1) & (ps->namecap - 1);
    return &ps->names[i];
}

/* Inputs and outputs are looked up by name, so a name may appear once, and
 * weights sharing a checkpoint name must agree on their type. The verifier
 * checks both too; checking here puts the error on the line of the text.
 * An open-addressing table of (op, name) -> first node keeps it linear. */
static void check_name(Parser *ps, const IrNode *n, SrcLoc at) {
    if (n->op != IR_OP_INPUT && n->op != IR_OP_OUTPUT && n->op != IR_OP_WEIGHT) return;
    const char *name = ir_node_attr_str(n, "name", "");
    if (2 * (ps->nnames + 1) > ps->namecap) {
        const IrNode **old = ps->names;
        size_t oldcap = ps->namecap;
        ps->namecap = oldcap ? oldcap * 2 : 1024;
        ps->names = arena_alloc(ps->a, sizeof(IrNode *) * ps->namecap);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i]) *name_slot(ps, old[i]->op, ir_node_attr_str(old[i], "name", "")) = old[i];
    }
    const IrNode **slot = name_slot(ps, n->op, name);
    const IrNode *m = *slot;
    if (!m) {
        *slot = n;
        ps->nnames++;
        return;
    }
    if (n->op != IR_OP_WEIGHT) {
        diag_error(ps->d, at, "%s: name \"%s\" is used twice", ir_op_name(n->op), name);
        ps->line_failed = true;
    } else if (!ir_type_eq(&m->type, &n->type)) {
        StrBuf here_t, there_t;
        sb_init(&here_t);
        sb_init(&there_t);
        ir_type_print(ps->g, &n->type, &here_t);
        ir_type_print(ps->g, &m->type, &there_t);
        diag_error(ps->d, at, "weight \"%s\" is %s here but %s elsewhere", name, here_t.data, there_t.data);
        sb_free(&here_t);
        sb_free(&there_t);
        ps->line_failed = true;
    }
}

/* op-stmt := op [operands] [attrs] [':' type] [annotations] NL, after the
 * optional '%N ='; id is -1 without one. Returns the node, NULL on error. */
static IrNode *parse_op_stmt(Parser *ps, int64_t id) {
    SrcLoc op_at = here(ps);
    IrOp op;
    if (ps->tok.kind != T_IDENT) { perr(ps, "expected an op name, found %s", tok_desc(ps)); return NULL; }
    char *opname = ident_text(ps);
    if (!ir_op_lookup(opname, &op)) { perr(ps, "unknown op '%s'", opname); return NULL; }
    if (ir_op_has_result(op) != (id >= 0)) {
        perr(ps, ir_op_has_result(op) ? "op '%s' yields a value: write %%N = %s ..." : "op '%s' yields no value%s", opname,
             ir_op_has_result(op) ? opname : "");
        return NULL;
    }
    next(ps);
    IrNode **ops = NULL, *o;
    size_t nops = 0, opcap = 0;
    while (ps->tok.kind == T_VALUE) {
        if (!(o = lookup_value(ps, ps->tok.i))) return NULL;
        if (nops == 1u << 20) { perr(ps, "too many operands"); return NULL; }
        ARENA_PUSH(ps->a, ops, nops, opcap, o);
        next(ps);
        if (!is_punct(ps, ',')) break;
        next(ps);
        if (ps->tok.kind != T_VALUE) { perr(ps, "expected an operand after ','"); return NULL; }
    }
    IrAttr attrs[16];
    int nattrs = 0;
    if (is_punct(ps, '{') && !parse_attrs(ps, attrs, &nattrs)) return NULL;
    IrType type = {0};
    bool has_type = false;
    if (is_punct(ps, ':')) {
        next(ps);
        if (!parse_type(ps, &type)) return NULL;
        has_type = true;
    }
    const char *scope = NULL;
    SrcLoc loc = {0};
    int64_t group = -1, mem = -1, stream = -1;
    IrNode **waits = NULL;
    int nwaits = 0;
    if (!parse_suffixes(ps, &scope, &loc, &group, &mem, &stream, &waits, &nwaits)) return NULL;
    if (ps->tok.kind != T_NL && ps->tok.kind != T_EOF && !is_punct(ps, '}')) {
        perr(ps, "expected the end of the statement, found %s", tok_desc(ps));
        return NULL;
    }
    if (ir_op_has_result(op) && !has_type) { perr(ps, "missing ': type' after op '%s'", opname); return NULL; }
    /* Shape errors are reported at the statement's position in this text. */
    DiagEngine *d = ps->d;
    int before = diag_error_count(d);
    IrNode *n = ir_graph_add_node(ps->g, d, op, ops, (int)nops, attrs, nattrs, ir_op_declares_type(op) ? &type : NULL, op_at, scope);
    if (!n) {
        ps->line_failed = diag_error_count(d) > before;
        return NULL;
    }
    n->loc = loc;
    n->group = (int)group;
    n->mem = mem;
    n->stream = (int)stream;
    n->waits = waits;
    n->nwaits = nwaits;
    if (ir_op_has_result(op) && !ir_op_declares_type(op) && !ir_type_eq(&n->type, &type)) {
        StrBuf a, b;
        sb_init(&a); sb_init(&b);
        ir_type_print(ps->g, &type, &a);
        ir_type_print(ps->g, &n->type, &b);
        diag_error(d, op_at, "%s: declared type %s but the operands give %s", opname, a.data, b.data);
        sb_free(&a); sb_free(&b);
        ps->line_failed = true;
    }
    check_name(ps, n, op_at);
    return n;
}

/* stmt := ['%'N '='] op-stmt. A value whose statement failed is still
 * recorded (as `poison`), so its uses fail quietly instead of repeating
 * "undefined value" on every later line. */
static void parse_stmt(Parser *ps) {
    int64_t id = -1;
    if (ps->tok.kind == T_VALUE) {
        id = ps->tok.i;
        if (find_value(ps, id)) { perr(ps, "value %%%lld is defined twice", (long long)id); return; }
        next(ps);
        if (!expect(ps, '=')) return;
    }
    IrNode *n = parse_op_stmt(ps, id);
    if (id >= 0) define_value(ps, id, n ? n : &ps->poison);
}

static void skip_line(Parser *ps) {
    while (ps->tok.kind != T_NL && ps->tok.kind != T_EOF) next(ps);
}

static void skip_newlines(Parser *ps) {
    while (ps->tok.kind == T_NL) next(ps);
}

/* plan := 'plan' '(' ident '=' int (',' ident '=' int)* ')', every dim bound once */
static bool parse_plan(Parser *ps) {
    IrGraph *g = ps->g;
    bool bound[IR_MAX_DIM_SYMS] = {0};
    next(ps);
    if (!expect(ps, '(')) return false;
    while (!is_punct(ps, ')')) {
        if (ps->tok.kind != T_IDENT) { perr(ps, "expected a dim name in plan(...), found %s", tok_desc(ps)); return false; }
        char *dn = ident_text(ps);
        int s = ir_graph_find_dim(g, dn);
        if (s < 0 || bound[s]) { perr(ps, s < 0 ? "plan(...): '%s' is not a declared dim" : "plan(...): dim '%s' bound twice", dn); return false; }
        next(ps);
        if (!expect(ps, '=')) return false;
        if (ps->tok.kind != T_INT || ps->tok.i < 0) { perr(ps, "plan(...): expected a non-negative integer for '%s'", dn); return false; }
        g->mem_dims[s] = ps->tok.i;
        bound[s] = true;
        next(ps);
        if (!is_punct(ps, ')') && !expect(ps, ',')) return false;
    }
    for (int s = 0; s < g->ndims; s++)
        if (!bound[s]) { perr(ps, "plan(...) does not bind dim '%s'", g->dim_names[s]); return false; }
    g->mem_planned = true;
    next(ps);
    return true;
}

/* header := 'graph' '@' name 'dims' '(' [ident (',' ident)*] ')' [plan] '{' */
static bool parse_header(Parser *ps) {
    skip_newlines(ps);
    if (!is_word(ps, "graph")) { perr(ps, "expected 'graph', found %s", tok_desc(ps)); return false; }
    next(ps);
    if (!expect(ps, '@')) return false;
    const char *name;
    if (ps->tok.kind == T_IDENT) name = ident_text(ps);
    else if (ps->tok.kind == T_STR) name = ps->tok.s;
    else { perr(ps, "expected the graph's name after '@', found %s", tok_desc(ps)); return false; }
    ps->g = ir_graph_new(ps->a, name);
    next(ps);
    if (!is_word(ps, "dims")) { perr(ps, "expected 'dims(...)', found %s", tok_desc(ps)); return false; }
    next(ps);
    if (!expect(ps, '(')) return false;
    while (!is_punct(ps, ')')) {
        if (ps->tok.kind != T_IDENT) { perr(ps, "expected a dim name, found %s", tok_desc(ps)); return false; }
        char *dn = ident_text(ps);
        if (ir_graph_add_dim(ps->g, dn) < 0) {
            perr(ps, ir_graph_find_dim(ps->g, dn) >= 0 ? "dim '%s' declared twice" : "too many dims (at most 8): '%s'", dn);
            return false;
        }
        next(ps);
        if (!is_punct(ps, ')') && !expect(ps, ',')) return false;
    }
    next(ps);
    if (is_word(ps, "plan") && !parse_plan(ps)) return false;
    return expect(ps, '{');
}

IrGraph *ir_parse(Arena *a, DiagEngine *d, const char *file, const char *text, size_t len) {
    Parser ps = {.a = a, .d = d, .file = arena_strdup(a, file), .p = text, .end = text + len, .line = 1,
                 .line_start = text};
    int before = diag_error_count(d);
    next(&ps);
    if (!parse_header(&ps)) return NULL;
    for (;;) {
        ps.line_failed = false;
        skip_newlines(&ps);
        if (is_punct(&ps, '}')) break;
        if (ps.tok.kind == T_EOF) {
            perr(&ps, "unexpected end of file: missing '}' at the end of the graph");
            break;
        }
        parse_stmt(&ps);
        if (is_punct(&ps, '}')) break;
        if (ps.line_failed) skip_line(&ps);
        else if (ps.tok.kind != T_NL && ps.tok.kind != T_EOF) perr(&ps, "expected end of line, found %s", tok_desc(&ps));
        if (ps.line_failed) skip_line(&ps);
    }
    if (is_punct(&ps, '}')) {
        ps.line_failed = false;
        bool has_output = false;
        for (int i = 0; i < ps.g->nnodes && !has_output; i++) has_output = ps.g->nodes[i]->op == IR_OP_OUTPUT;
        if (!has_output && diag_error_count(d) == before) perr(&ps, "graph @%s has no output", ps.g->name);
        ps.line_failed = false;
        next(&ps);
        skip_newlines(&ps);
        if (ps.tok.kind != T_EOF) perr(&ps, "expected nothing after the end of the graph, found %s", tok_desc(&ps));
    }
    return diag_error_count(d) > before ? NULL : ps.g;
}
