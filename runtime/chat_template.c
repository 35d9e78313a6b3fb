/* chat_template.c — a Jinja subset that renders chat templates exactly as
 * jinja2 does in transformers' environment (see chat_template.h).
 *
 * Three stages over one arena: the lexer cuts the template into text and
 * tag tokens, applying Jinja's whitespace rules as its lexer does (newlines
 * normalized, one trailing newline dropped, {%- and -%} strip Unicode
 * whitespace, lstrip_blocks strips a line's indentation before {% and {#,
 * trim_blocks eats the newline after %} and #}); a recursive-descent parser
 * with Jinja's precedence builds statements and expressions; the evaluator
 * walks them with Python semantics for the values a chat template sees.
 * Every construct outside the subset fails at parse time, or at run time
 * when it depends on a value, through one longjmp to rt_chat_render, so no
 * path renders differently from jinja2 without saying so. */
#include "runtime/chat_template.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200              /* nesting of expressions and blocks */
#define MAX_EVAL_DEPTH 2000        /* evaluation, left-deep chains included */
#define MAX_TEXT ((size_t)64 << 20) /* any string, and the output */

typedef enum { T_TEXT, T_VAR, T_BLOCK, T_END, T_NAME, T_STR, T_INT, T_OP, T_EOF } TokKind;

typedef struct {
    TokKind k;
    size_t pos;    /* byte offset in the normalized template */
    const char *s; /* text, name, operator or the unescaped string */
    size_t len;
    int64_t i;
} Tok;

typedef enum {
    E_STR, E_INT, E_NONE, E_BOOL, E_NAME, E_ATTR, E_ITEM, E_CALL,
    E_NOT, E_NEG, E_AND, E_OR, E_ADD, E_SUB, E_CAT, E_EQ, E_NE, E_IN, E_NOTIN, E_TEST,
} ExprKind;

typedef struct Expr Expr;
struct Expr {
    ExprKind k;
    size_t pos;
    const char *s; /* literal, name, attribute or test name */
    size_t len;
    int64_t i;     /* integer or bool literal; E_TEST: negated */
    Expr *a, *b;
    Expr **args;   /* E_CALL: positional then keyword arguments */
    Tok *kw;       /* kw[j] names args[npos + j] */
    int npos, nkw;
};

typedef enum { S_TEXT, S_OUT, S_IF, S_FOR, S_SET } StmtKind;

typedef struct Stmt Stmt;
struct Stmt {
    StmtKind k;
    size_t pos;
    const char *s; /* S_TEXT: the text; S_FOR / S_SET: the target name */
    size_t len;
    const char *attr; /* S_SET of ns.attr */
    size_t alen;
    Expr *e;
    Stmt *body, *orelse, *next;
};

typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_STR, V_LIST, V_DICT } VKind;

typedef struct Value Value;
typedef struct {
    const char *k;
    size_t klen;
    Value *v;
} Entry;

struct Value {
    VKind k;
    bool ns;     /* a namespace(): attributes can be assigned */
    bool strict; /* `loop`: a missing attribute is an error, not undefined */
    int64_t i;
    const char *s; /* V_STR: the text; V_UNDEF: the name, for messages */
    size_t len;
    Value **items;
    size_t n;
    Entry *e; /* V_DICT, in insertion order */
    size_t ne, cap;
};

typedef struct Scope Scope;
struct Scope {
    Scope *up;
    Entry *e;
    size_t n, cap;
};

typedef struct {
    DiagEngine *d;
    Arena *a;
    const char *src; /* the template, newlines normalized */
    size_t n;
    Tok *tok;
    size_t ntok, cap, at;
    int depth;
    StrBuf out;
    StrBuf scratch; /* strings being built (freed at the end, errors included) */
    bool done; /* rendered to the end */
    jmp_buf fail;
} Ctx;

/* ---- errors ------------------------------------------------------------------- */

static void fail(Ctx *c, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

static void fail(Ctx *c, size_t pos, const char *fmt, ...) {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos && i < c->n; i++) {
        if (c->src[i] == '\n') line++, col = 1;
        else if (((unsigned char)c->src[i] & 0xc0) != 0x80) col++;
    }
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(c->d, (SrcLoc){"chat_template", line, col}, "%s", msg);
    longjmp(c->fail, 1);
}

/* ---- characters ------------------------------------------------------------------ */

/* Decodes the UTF-8 character at s[i]; its length, 0 if invalid. */
static int utf8_at(const char *str, size_t n, size_t i, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str + i;
    size_t left = n - i;
    unsigned b = s[0];
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (!len || (size_t)len > left) return 0;
    uint32_t v = len == 1 ? b : b & (0x7fu >> len);
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[k] & 0x3fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

static void put_utf8(StrBuf *sb, uint32_t cp) {
    if (cp < 0x80) sb_putc(sb, (char)cp);
    else if (cp < 0x800) sb_putc(sb, (char)(0xc0 | cp >> 6)), sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
    else if (cp < 0x10000)
        sb_putc(sb, (char)(0xe0 | cp >> 12)), sb_putc(sb, (char)(0x80 | (cp >> 6 & 0x3f))),
            sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
    else
        sb_putc(sb, (char)(0xf0 | cp >> 18)), sb_putc(sb, (char)(0x80 | (cp >> 12 & 0x3f))),
            sb_putc(sb, (char)(0x80 | (cp >> 6 & 0x3f))), sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
}

/* Python's str.isspace(), which \s and str.rstrip() follow. */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* The byte length of the whitespace character at i, or 0. */
static int space_at(const Ctx *c, size_t i) {
    uint32_t cp;
    int len = i < c->n ? utf8_at(c->src, c->n, i, &cp) : 0;
    return len && py_space(cp) ? len : 0;
}

static size_t skip_space(const Ctx *c, size_t i) {
    for (int k; (k = space_at(c, i)) > 0;) i += (size_t)k;
    return i;
}

/* The end of src[from, end) with trailing whitespace removed. */
static size_t rstrip(const Ctx *c, size_t from, size_t end) {
    while (end > from) {
        size_t k = end - 1;
        while (k > from && ((unsigned char)c->src[k] & 0xc0) == 0x80) k--;
        if (space_at(c, k) != (int)(end - k)) break;
        end = k;
    }
    return end;
}

static bool starts(const Ctx *c, size_t i, const char *s) {
    size_t n = strlen(s);
    return i + n <= c->n && memcmp(c->src + i, s, n) == 0;
}

/* ---- lexer --------------------------------------------------------------------------- */

static Tok *push(Ctx *c, TokKind k, size_t pos, const char *s, size_t len) {
    if (c->ntok == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        c->tok = arena_realloc(c->a, c->tok, sizeof(Tok) * c->cap, sizeof(Tok) * cap);
        c->cap = cap;
    }
    c->tok[c->ntok] = (Tok){k, pos, s, len, 0};
    return &c->tok[c->ntok++];
}

static int hexval(char ch) {
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* One escape of a string literal at s[i] (after the backslash), as Python's
 * unicode-escape decodes it; the index after it. */
static size_t unescape_one(Ctx *c, size_t pos, const char *s, size_t i, size_t end, StrBuf *sb) {
    static const char simple[] = "\\\\''\"\"a\ab\bf\fn\nr\rt\tv\v";
    char ch = s[i];
    for (const char *p = simple; *p; p += 2)
        if (ch == p[0]) {
            sb_putc(sb, p[1]);
            return i + 1;
        }
    if (ch == '\n') return i + 1; /* a backslash-newline continues the line */
    uint32_t cp = 0;
    if (ch >= '0' && ch <= '7') {
        size_t k = i;
        for (; k < end && k < i + 3 && s[k] >= '0' && s[k] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[k] - '0');
        i = k;
    } else if (ch == 'x' || ch == 'u' || ch == 'U') {
        int digits = ch == 'x' ? 2 : ch == 'u' ? 4 : 8;
        for (int k = 1; k <= digits; k++) {
            int h = i + (size_t)k < end ? hexval(s[i + (size_t)k]) : -1;
            if (h < 0) fail(c, pos, "string literal: truncated \\%c escape (%d hex digits expected)", ch, digits);
            cp = cp * 16 + (uint32_t)h;
        }
        i += (size_t)digits + 1;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            fail(c, pos, "string literal: \\%c escape of U+%" PRIX32 " is not a character", ch, cp);
    } else if ((unsigned char)ch >= 0x80 || ch == 'N') {
        fail(c, pos, "string literal: a backslash before %s is not supported",
             ch == 'N' ? "N{name}" : "a non-ASCII character");
    } else { /* an unknown escape stays as written */
        sb_putc(sb, '\\');
        sb_putc(sb, ch);
        return i + 1;
    }
    if (cp == 0) fail(c, pos, "string literal: a NUL character is not supported");
    put_utf8(sb, cp);
    return i;
}

/* A string literal starting at the quote at i; the index after it. */
static size_t lex_string(Ctx *c, size_t i) {
    char q = c->src[i];
    size_t k = i + 1;
    while (k < c->n && c->src[k] != q) k += c->src[k] == '\\' ? 2 : 1;
    if (k >= c->n) fail(c, i, "string literal not closed");
    StrBuf *sb = &c->scratch;
    sb->len = 0;
    for (size_t j = i + 1; j < k;) {
        if (c->src[j] != '\\') sb_putc(sb, c->src[j++]);
        else j = unescape_one(c, i, c->src, j + 1, k, sb);
    }
    push(c, T_STR, i, arena_strndup(c->a, sb->data ? sb->data : "", sb->len), sb->len);
    return k + 1;
}

static size_t lex_number(Ctx *c, size_t i) {
    size_t k = i;
    int64_t v = 0;
    for (; k < c->n && c->src[k] >= '0' && c->src[k] <= '9'; k++) {
        if (v > (INT64_MAX - 9) / 10) fail(c, i, "integer literal too large");
        v = v * 10 + (c->src[k] - '0');
    }
    char nx = k < c->n ? c->src[k] : 0;
    if (nx == '.' || nx == 'e' || nx == 'E' || nx == '_' || nx == 'x' || nx == 'o' || nx == 'b' ||
        (k + 1 < c->n && nx == '.' && c->src[k + 1] >= '0' && c->src[k + 1] <= '9'))
        fail(c, i, "only decimal integer literals are supported (no floats, 0x/0o/0b or '_')");
    push(c, T_INT, i, c->src + i, k - i)->i = v;
    return k;
}

/* The tokens of one {{ }} or {% %} tag whose content starts at i; the
 * index after its end (and after what the end strips). */
static size_t lex_tag(Ctx *c, size_t open, size_t i, bool block) {
    static const char *ops2[] = {"//", "**", "==", "!=", ">=", "<="};
    int depth = 0;
    for (;;) {
        if (i >= c->n) fail(c, open, "%s tag not closed", block ? "{%" : "{{");
        const char *end = block ? "%}" : "}}";
        if (depth == 0 && (starts(c, i, end) || (c->src[i] == '-' && starts(c, i + 1, end)) ||
                           (block && c->src[i] == '+' && starts(c, i + 1, end)))) {
            push(c, T_END, i, c->src + i, 2);
            if (c->src[i] == '-') return skip_space(c, i + 3);
            if (c->src[i] == '+') return i + 3;
            return block && i + 2 < c->n && c->src[i + 2] == '\n' ? i + 3 : i + 2; /* trim_blocks */
        }
        int sp = space_at(c, i);
        char ch = c->src[i];
        if (sp) {
            i += (size_t)sp;
        } else if (ch >= '0' && ch <= '9') {
            i = lex_number(c, i);
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
            size_t k = i;
            while (k < c->n && ((c->src[k] >= 'a' && c->src[k] <= 'z') || (c->src[k] >= 'A' && c->src[k] <= 'Z') ||
                                (c->src[k] >= '0' && c->src[k] <= '9') || c->src[k] == '_'))
                k++;
            push(c, T_NAME, i, c->src + i, k - i);
            i = k;
        } else if (ch == '\'' || ch == '"') {
            i = lex_string(c, i);
        } else if (strchr("+-/*%~[](){}><=.:|,;", ch) || starts(c, i, "!=")) {
            size_t len = 1;
            for (size_t k = 0; k < sizeof ops2 / sizeof ops2[0]; k++)
                if (starts(c, i, ops2[k])) len = 2;
            if (strchr("([{", ch)) depth++;
            if (strchr(")]}", ch) && --depth < 0) fail(c, i, "unexpected '%c'", ch);
            push(c, T_OP, i, c->src + i, len);
            i += len;
        } else {
            fail(c, i, "unexpected character in a tag");
        }
    }
}

/* Cuts the template into tokens, with Jinja's whitespace handling. */
static void lex(Ctx *c) {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < c->n) {
        size_t q = pos;
        while (q + 1 < c->n && !(c->src[q] == '{' && strchr("{%#", c->src[q + 1]))) q++;
        if (q + 1 >= c->n) {
            push(c, T_TEXT, pos, c->src + pos, c->n - pos);
            break;
        }
        char kind = c->src[q + 1], sign = q + 2 < c->n && strchr("-+", c->src[q + 2]) ? c->src[q + 2] : 0;
        size_t end = q;
        if (sign == '-') {
            end = rstrip(c, pos, q);
        } else if (sign != '+' && kind != '{') { /* lstrip_blocks */
            size_t l = q;
            while (l > pos && c->src[l - 1] != '\n') l--;
            if ((l > pos || line_starting) && l < q && rstrip(c, l, q) == l) end = l;
        }
        if (end > pos) push(c, T_TEXT, pos, c->src + pos, end - pos);
        size_t t = q + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t k = t;
            while (k + 1 < c->n && !(c->src[k] == '#' && c->src[k + 1] == '}')) k++;
            if (k + 1 >= c->n) fail(c, q, "comment not closed");
            pos = k + 2;
            if (k > t && c->src[k - 1] == '-') pos = skip_space(c, pos);
            else if (!(k > t && c->src[k - 1] == '+') && pos < c->n && c->src[pos] == '\n') pos++;
        } else {
            push(c, kind == '{' ? T_VAR : T_BLOCK, q, c->src + q, 2);
            pos = lex_tag(c, q, t, kind == '%');
        }
        line_starting = c->src[pos - 1] == '\n';
    }
    push(c, T_EOF, c->n, "", 0);
    push(c, T_EOF, c->n, "", 0); /* the parser looks two tokens ahead */
}

/* ---- parser ---------------------------------------------------------------------- */

static Tok *peek(Ctx *c) { return &c->tok[c->at]; }
static Tok *next(Ctx *c) { return &c->tok[c->at < c->ntok - 1 ? c->at++ : c->at]; }

static bool is_op(const Tok *t, const char *op) { return t->k == T_OP && t->len == strlen(op) && memcmp(t->s, op, t->len) == 0; }
static bool is_name(const Tok *t, const char *w) { return t->k == T_NAME && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0; }

static const char *tok_desc(Ctx *c, const Tok *t) {
    switch (t->k) {
    case T_END: return "the end of the tag";
    case T_EOF: return "the end of the template";
    case T_STR: return "a string";
    case T_INT: return "an integer";
    default: return arena_printf(c->a, "'%.*s'", (int)t->len, t->s);
    }
}

static void expect_op(Ctx *c, const char *op) {
    Tok *t = next(c);
    if (!is_op(t, op)) fail(c, t->pos, "expected '%s', got %s", op, tok_desc(c, t));
}

static Tok *expect_name(Ctx *c, const char *what) {
    Tok *t = next(c);
    if (t->k != T_NAME) fail(c, t->pos, "expected %s, got %s", what, tok_desc(c, t));
    return t;
}

static void expect_end(Ctx *c) {
    Tok *t = next(c);
    if (t->k != T_END) fail(c, t->pos, "expected the end of the tag, got %s", tok_desc(c, t));
}

static Expr *mk(Ctx *c, ExprKind k, size_t pos, Expr *a, Expr *b) {
    Expr *e = arena_alloc(c->a, sizeof *e);
    *e = (Expr){.k = k, .pos = pos, .a = a, .b = b};
    return e;
}

static void enter(Ctx *c, size_t pos) {
    if (++c->depth > MAX_DEPTH) fail(c, pos, "nested more than %d deep", MAX_DEPTH);
}

static Expr *parse_expr(Ctx *c);

/* call_args -> '(' [expr | NAME '=' expr] {',' ...} ')' */
static void parse_call_args(Ctx *c, Expr *call) {
    Expr *args[64];
    Tok kw[64];
    int n = 0, nkw = 0;
    while (!is_op(peek(c), ")")) {
        if (n == 64) fail(c, peek(c)->pos, "more than 64 call arguments");
        Tok *t = peek(c);
        if (is_op(t, "*") || is_op(t, "**")) fail(c, t->pos, "*args and **kwargs are not supported");
        if (t->k == T_NAME && is_op(&c->tok[c->at + 1], "=")) {
            kw[nkw++] = *t;
            c->at += 2;
        } else if (nkw) {
            fail(c, t->pos, "a positional argument after a keyword argument");
        }
        args[n++] = parse_expr(c);
        if (!is_op(peek(c), ",")) break;
        next(c);
    }
    expect_op(c, ")");
    call->args = arena_alloc(c->a, sizeof(Expr *) * (size_t)(n + 1));
    memcpy(call->args, args, sizeof(Expr *) * (size_t)n);
    call->kw = arena_alloc(c->a, sizeof(Tok) * (size_t)(nkw + 1));
    memcpy(call->kw, kw, sizeof(Tok) * (size_t)nkw);
    call->npos = n - nkw;
    call->nkw = nkw;
}

/* primary -> NAME | STRING+ | INT | '(' expr ')' */
static Expr *parse_primary(Ctx *c) {
    Tok *t = next(c);
    if (t->k == T_NAME) {
        static const char *consts[] = {"true", "True", "false", "False", "none", "None"};
        for (int i = 0; i < 6; i++)
            if (is_name(t, consts[i])) {
                Expr *e = mk(c, i < 4 ? E_BOOL : E_NONE, t->pos, NULL, NULL);
                e->i = i < 2;
                return e;
            }
        Expr *e = mk(c, E_NAME, t->pos, NULL, NULL);
        e->s = t->s, e->len = t->len;
        return e;
    }
    if (t->k == T_STR) { /* adjacent literals join, as in Python */
        Expr *e = mk(c, E_STR, t->pos, NULL, NULL);
        e->s = t->s, e->len = t->len;
        while (peek(c)->k == T_STR) {
            Tok *u = next(c);
            char *s = arena_alloc(c->a, e->len + u->len + 1);
            memcpy(s, e->s, e->len);
            memcpy(s + e->len, u->s, u->len);
            e->s = s, e->len += u->len;
        }
        return e;
    }
    if (t->k == T_INT) {
        Expr *e = mk(c, E_INT, t->pos, NULL, NULL);
        e->i = t->i;
        return e;
    }
    if (is_op(t, "(")) {
        Expr *e = parse_expr(c);
        if (is_op(peek(c), ",")) fail(c, peek(c)->pos, "tuples are not supported");
        expect_op(c, ")");
        return e;
    }
    if (is_op(t, "[")) fail(c, t->pos, "list literals are not supported");
    if (is_op(t, "{")) fail(c, t->pos, "dict literals are not supported");
    fail(c, t->pos, "expected an expression, got %s", tok_desc(c, t));
}

/* postfix -> primary { '.' NAME | '[' expr ']' | call_args } */
static Expr *parse_postfix(Ctx *c, Expr *e) {
    for (;;) {
        Tok *t = peek(c);
        if (is_op(t, ".")) {
            next(c);
            Tok *n = expect_name(c, "an attribute name after '.'");
            e = mk(c, E_ATTR, n->pos, e, NULL);
            e->s = n->s, e->len = n->len;
        } else if (is_op(t, "[")) {
            next(c);
            if (is_op(peek(c), ":")) fail(c, peek(c)->pos, "slices are not supported");
            Expr *k = parse_expr(c);
            if (is_op(peek(c), ":")) fail(c, peek(c)->pos, "slices are not supported");
            if (is_op(peek(c), ",")) fail(c, peek(c)->pos, "tuple subscripts are not supported");
            expect_op(c, "]");
            e = mk(c, E_ITEM, t->pos, e, k);
        } else if (is_op(t, "(")) {
            next(c);
            e = mk(c, E_CALL, t->pos, e, NULL);
            parse_call_args(c, e);
        } else {
            return e;
        }
    }
}

/* unary -> '-' unary | postfix { 'is' ['not'] NAME }; '|' filters are refused */
static Expr *parse_unary(Ctx *c, bool with_tests) {
    Tok *t = peek(c);
    enter(c, t->pos);
    Expr *e;
    if (is_op(t, "-")) {
        next(c);
        e = mk(c, E_NEG, t->pos, parse_unary(c, false), NULL);
    } else if (is_op(t, "+")) {
        fail(c, t->pos, "unary '+' is not supported");
    } else {
        e = parse_primary(c);
    }
    e = parse_postfix(c, e);
    for (; with_tests;) {
        Tok *u = peek(c);
        if (is_op(u, "|")) fail(c, u->pos, "filters ('|') are not supported");
        if (!is_name(u, "is")) break;
        next(c);
        bool neg = is_name(peek(c), "not");
        if (neg) next(c);
        Tok *n = expect_name(c, "a test name after 'is'");
        if (!is_name(n, "defined") && !is_name(n, "undefined") && !is_name(n, "none"))
            fail(c, n->pos, "the test '%.*s' is not supported (defined, undefined and none are)", (int)n->len, n->s);
        e = mk(c, E_TEST, n->pos, e, NULL);
        e->s = n->s, e->len = n->len, e->i = neg;
        /* Jinja reads a name, literal or bracket right after a test as its
         * argument (`x is divisibleby 3`), which these tests do not take */
        Tok *arg = peek(c);
        if ((arg->k == T_NAME && !is_name(arg, "and") && !is_name(arg, "or") && !is_name(arg, "else")) ||
            arg->k == T_STR || arg->k == T_INT || is_op(arg, "(") || is_op(arg, "[") || is_op(arg, "{"))
            fail(c, arg->pos, "%s after 'is %.*s' (Jinja reads it as the test's argument)",
                 is_name(arg, "is") ? "a second test" : tok_desc(c, arg), (int)n->len, n->s);
    }
    c->depth--;
    return e;
}

/* math1 -> concat {('+'|'-') concat}; concat -> unary {'~' unary};
 * '*', '/', '//', '%' and '**' are refused */
static Expr *parse_math(Ctx *c) {
    Expr *e = parse_unary(c, true);
    for (;;) {
        Tok *t = peek(c);
        if (is_op(t, "*") || is_op(t, "/") || is_op(t, "//") || is_op(t, "%") || is_op(t, "**"))
            fail(c, t->pos, "the operator '%.*s' is not supported", (int)t->len, t->s);
        ExprKind k = is_op(t, "+") ? E_ADD : is_op(t, "-") ? E_SUB : is_op(t, "~") ? E_CAT : E_STR;
        if (k == E_STR) return e;
        next(c);
        Expr *r = parse_unary(c, true);
        if (k == E_CAT) {
            e = mk(c, E_CAT, t->pos, e, r);
            continue;
        }
        /* '~' binds tighter than '+' and '-' */
        while (is_op(peek(c), "~")) {
            Tok *u = next(c);
            r = mk(c, E_CAT, u->pos, r, parse_unary(c, true));
        }
        e = mk(c, k, t->pos, e, r);
    }
}

/* compare -> math [('=='|'!='|'in'|'not' 'in') math] */
static Expr *parse_compare(Ctx *c) {
    Expr *e = parse_math(c);
    Tok *t = peek(c);
    ExprKind k;
    if (is_op(t, "==")) k = E_EQ;
    else if (is_op(t, "!=")) k = E_NE;
    else if (is_name(t, "in")) k = E_IN;
    else if (is_name(t, "not") && is_name(&c->tok[c->at + 1], "in")) k = E_NOTIN, next(c);
    else if (is_op(t, "<") || is_op(t, ">") || is_op(t, "<=") || is_op(t, ">="))
        fail(c, t->pos, "the comparison '%.*s' is not supported", (int)t->len, t->s);
    else return e;
    next(c);
    e = mk(c, k, t->pos, e, parse_math(c));
    Tok *u = peek(c);
    if (is_op(u, "==") || is_op(u, "!=") || is_name(u, "in") || (is_name(u, "not") && is_name(&c->tok[c->at + 1], "in")))
        fail(c, u->pos, "chained comparisons are not supported");
    return e;
}

/* not -> 'not' not | compare */
static Expr *parse_not(Ctx *c) {
    Tok *t = peek(c);
    if (!is_name(t, "not")) return parse_compare(c);
    next(c);
    enter(c, t->pos);
    Expr *e = mk(c, E_NOT, t->pos, parse_not(c), NULL);
    c->depth--;
    return e;
}

/* expr -> and {'or' and}; and -> not {'and' not} */
static Expr *parse_and(Ctx *c) {
    Expr *e = parse_not(c);
    while (is_name(peek(c), "and")) {
        Tok *t = next(c);
        e = mk(c, E_AND, t->pos, e, parse_not(c));
    }
    return e;
}

static Expr *parse_expr(Ctx *c) {
    enter(c, peek(c)->pos);
    Expr *e = parse_and(c);
    while (is_name(peek(c), "or")) {
        Tok *t = next(c);
        e = mk(c, E_OR, t->pos, e, parse_and(c));
    }
    if (is_name(peek(c), "if")) fail(c, peek(c)->pos, "conditional expressions ('x if c else y') are not supported");
    c->depth--;
    return e;
}

static Stmt *mks(Ctx *c, StmtKind k, size_t pos) {
    Stmt *s = arena_alloc(c->a, sizeof *s);
    *s = (Stmt){.k = k, .pos = pos};
    return s;
}

static Stmt *parse_body(Ctx *c, const char *const *stops, size_t open);

/* if -> 'if' expr '%}' body {'elif' expr '%}' body} ['else' '%}' body] 'endif' */
static Stmt *parse_if(Ctx *c, size_t open) {
    static const char *const stops[] = {"elif", "else", "endif", NULL};
    Stmt *s = mks(c, S_IF, open);
    s->e = parse_expr(c);
    expect_end(c);
    s->body = parse_body(c, stops, open);
    Tok *t = next(c);
    if (is_name(t, "elif")) {
        s->orelse = parse_if(c, t->pos);
        return s; /* the nested if consumed the endif */
    }
    if (is_name(t, "else")) {
        static const char *const end[] = {"endif", NULL};
        expect_end(c);
        s->orelse = parse_body(c, end, open);
        next(c);
    }
    expect_end(c);
    return s;
}

/* for -> 'for' NAME 'in' expr '%}' body 'endfor' */
static Stmt *parse_for(Ctx *c, size_t open) {
    static const char *const stops[] = {"else", "endfor", NULL};
    Stmt *s = mks(c, S_FOR, open);
    Tok *n = expect_name(c, "a loop variable");
    s->s = n->s, s->len = n->len;
    if (is_op(peek(c), ",")) fail(c, peek(c)->pos, "unpacking several loop variables is not supported");
    Tok *in = next(c);
    if (!is_name(in, "in")) fail(c, in->pos, "expected 'in', got %s", tok_desc(c, in));
    s->e = parse_expr(c);
    if (is_name(peek(c), "recursive")) fail(c, peek(c)->pos, "recursive loops are not supported");
    expect_end(c);
    s->body = parse_body(c, stops, open);
    Tok *t = next(c);
    if (is_name(t, "else")) fail(c, t->pos, "{%% for %%} ... {%% else %%} is not supported");
    expect_end(c);
    return s;
}

/* set -> 'set' NAME ['.' NAME] '=' expr */
static Stmt *parse_set(Ctx *c, size_t open) {
    Stmt *s = mks(c, S_SET, open);
    Tok *n = expect_name(c, "a variable name");
    s->s = n->s, s->len = n->len;
    if (is_op(peek(c), ".")) {
        next(c);
        Tok *a = expect_name(c, "an attribute name");
        s->attr = a->s, s->alen = a->len;
    }
    if (is_op(peek(c), ",")) fail(c, peek(c)->pos, "assigning several variables is not supported");
    if (peek(c)->k == T_END) fail(c, peek(c)->pos, "block assignments ({%% set x %%}...{%% endset %%}) are not supported");
    expect_op(c, "=");
    s->e = parse_expr(c);
    expect_end(c);
    return s;
}

/* One {% ... %} statement (the BLOCK token consumed), or NULL when its
 * keyword is one of `stops` (left unconsumed for the caller). */
static Stmt *parse_block(Ctx *c, const char *const *stops, size_t open) {
    Tok *t = peek(c);
    for (int i = 0; stops && stops[i]; i++)
        if (is_name(t, stops[i])) return NULL;
    next(c);
    if (is_name(t, "if")) return parse_if(c, open);
    if (is_name(t, "for")) return parse_for(c, open);
    if (is_name(t, "set")) return parse_set(c, open);
    if (t->k == T_NAME)
        fail(c, t->pos, "the statement '%.*s' is %s", (int)t->len, t->s,
             is_name(t, "elif") || is_name(t, "else") || is_name(t, "endif") || is_name(t, "endfor")
                 ? "not inside its block"
                 : "not supported (if, for and set are)");
    fail(c, t->pos, "expected a statement name, got %s", tok_desc(c, t));
}

/* body -> { TEXT | '{{' expr '}}' | '{%' statement '%}' } up to a stop
 * keyword (left as the next token) or, with no stops, the end. */
static Stmt *parse_body(Ctx *c, const char *const *stops, size_t open) {
    Stmt head = {0}, *tail = &head;
    enter(c, open);
    for (;;) {
        Tok *t = next(c);
        Stmt *s;
        if (t->k == T_EOF) {
            if (stops) {
                int last = 0;
                while (stops[last + 1]) last++;
                fail(c, open, "this block has no {%% %s %%}", stops[last]);
            }
            break;
        } else if (t->k == T_TEXT) {
            s = mks(c, S_TEXT, t->pos);
            s->s = t->s, s->len = t->len;
        } else if (t->k == T_VAR) {
            s = mks(c, S_OUT, t->pos);
            s->e = parse_expr(c);
            expect_end(c);
        } else if (t->k == T_BLOCK) {
            if (!(s = parse_block(c, stops, t->pos))) break;
        } else {
            fail(c, t->pos, "unexpected %s", tok_desc(c, t));
        }
        tail = tail->next = s;
    }
    c->depth--;
    return head.next;
}

/* ---- values -------------------------------------------------------------------------- */

static Value *val(Ctx *c, VKind k) {
    Value *v = arena_alloc(c->a, sizeof *v);
    v->k = k;
    return v;
}

static Value *str_val(Ctx *c, size_t pos, const char *s, size_t len) {
    if (len > MAX_TEXT) fail(c, pos, "a string longer than %zu MiB", MAX_TEXT >> 20);
    Value *v = val(c, V_STR);
    v->s = s, v->len = len;
    return v;
}

static Value *int_val(Ctx *c, VKind k, int64_t i) {
    Value *v = val(c, k);
    v->i = i;
    return v;
}

static Value **dict_slot(Value *d, const char *k, size_t klen) {
    for (size_t i = 0; i < d->ne; i++)
        if (d->e[i].klen == klen && memcmp(d->e[i].k, k, klen) == 0) return &d->e[i].v;
    return NULL;
}

static void dict_set(Ctx *c, Value *d, const char *k, size_t klen, Value *v) {
    Value **slot = dict_slot(d, k, klen);
    if (slot) {
        *slot = v;
        return;
    }
    if (d->ne == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        d->e = arena_realloc(c->a, d->e, sizeof(Entry) * d->cap, sizeof(Entry) * cap);
        d->cap = cap;
    }
    d->e[d->ne++] = (Entry){k, klen, v};
}

static const char *kind_name(const Value *v) {
    static const char *names[] = {"undefined", "none", "bool", "int", "string", "list", "dict"};
    return v->k == V_DICT && v->ns ? "namespace" : v->k == V_DICT && v->strict ? "loop" : names[v->k];
}

static bool truthy(const Value *v) {
    switch (v->k) {
    case V_UNDEF:
    case V_NONE: return false;
    case V_BOOL:
    case V_INT: return v->i != 0;
    case V_STR: return v->len > 0;
    case V_LIST: return v->n > 0;
    case V_DICT: return v->ns || v->strict || v->ne > 0; /* objects without __len__ are true */
    }
    return false;
}

static bool equal(const Value *a, const Value *b) {
    bool an = a->k == V_INT || a->k == V_BOOL, bn = b->k == V_INT || b->k == V_BOOL;
    if (an || bn) return an && bn && a->i == b->i;
    if (a->k != b->k) return false;
    switch (a->k) {
    case V_UNDEF:
    case V_NONE: return true;
    case V_STR: return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case V_LIST:
        if (a->n != b->n) return false;
        for (size_t i = 0; i < a->n; i++)
            if (!equal(a->items[i], b->items[i])) return false;
        return true;
    case V_DICT:
        if (a->ns || b->ns || a->strict || b->strict) return a == b;
        if (a->ne != b->ne) return false;
        for (size_t i = 0; i < a->ne; i++) {
            Value **o = dict_slot((Value *)b, a->e[i].k, a->e[i].klen);
            if (!o || !equal(a->e[i].v, *o)) return false;
        }
        return true;
    default: return false;
    }
}

/* Appends str(v), as {{ }} and '~' print it. */
static void put_value(Ctx *c, size_t pos, StrBuf *sb, const Value *v) {
    switch (v->k) {
    case V_UNDEF: break;
    case V_NONE: sb_puts(sb, "None"); break;
    case V_BOOL: sb_puts(sb, v->i ? "True" : "False"); break;
    case V_INT: sb_printf(sb, "%" PRId64, v->i); break;
    case V_STR: sb_putn(sb, v->s, v->len); break;
    default: fail(c, pos, "printing a %s is not supported", kind_name(v));
    }
    if (sb->len > MAX_TEXT) fail(c, pos, "the rendered text exceeds %zu MiB", MAX_TEXT >> 20);
}

/* ---- evaluation ------------------------------------------------------------------------ */

static Value *lookup(Scope *s, const char *k, size_t klen) {
    for (; s; s = s->up)
        for (size_t i = 0; i < s->n; i++)
            if (s->e[i].klen == klen && memcmp(s->e[i].k, k, klen) == 0) return s->e[i].v;
    return NULL;
}

static void scope_set(Ctx *c, Scope *s, const char *k, size_t klen, Value *v) {
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].klen == klen && memcmp(s->e[i].k, k, klen) == 0) {
            s->e[i].v = v;
            return;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        s->e = arena_realloc(c->a, s->e, sizeof(Entry) * s->cap, sizeof(Entry) * cap);
        s->cap = cap;
    }
    s->e[s->n++] = (Entry){k, klen, v};
}

static Value *eval(Ctx *c, Scope *s, const Expr *e);

/* Jinja's Undefined fails when used: its name (or what was missing). */
static void need_defined(Ctx *c, size_t pos, const Value *v) {
    if (v->k == V_UNDEF && v->i) fail(c, pos, "%.*s", (int)v->len, v->s);
    if (v->k == V_UNDEF) fail(c, pos, "'%.*s' is undefined", (int)v->len, v->s);
}

static bool dict_method(const char *k, size_t len) {
    static const char *m[] = {"keys", "values", "items", "get", "pop", "popitem", "copy", "update", "clear", "setdefault", "fromkeys"};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strlen(m[i]) == len && memcmp(m[i], k, len) == 0) return true;
    return false;
}

/* obj.name or obj['name'] (Jinja's getattr / getitem with a string). */
static Value *get_member(Ctx *c, size_t pos, Value *obj, const char *k, size_t klen, bool attr) {
    need_defined(c, pos, obj);
    if (obj->k == V_NONE) return val(c, V_UNDEF);
    if (obj->k != V_DICT) fail(c, pos, "%s '%.*s' of a %s is not supported", attr ? "the attribute" : "the key", (int)klen, k, kind_name(obj));
    Value **slot = dict_slot(obj, k, klen);
    if (slot) return *slot;
    if (obj->strict) fail(c, pos, "loop.%.*s is not supported (index, index0, revindex, revindex0, first, last, length are)", (int)klen, k);
    if (!obj->ns && dict_method(k, klen)) fail(c, pos, "the dict method '%.*s' is not supported", (int)klen, k);
    Value *u = val(c, V_UNDEF);
    u->s = arena_printf(c->a, "the %s has no %s '%.*s'", kind_name(obj), attr ? "attribute" : "key", (int)klen, k);
    u->len = strlen(u->s);
    u->i = 1; /* s describes what is missing */
    return u;
}

static Value *get_item(Ctx *c, size_t pos, Value *obj, Value *key) {
    need_defined(c, pos, obj);
    if (key->k == V_STR) return get_member(c, pos, obj, key->s, key->len, false);
    if (obj->k == V_NONE) return val(c, V_UNDEF);
    if (obj->k == V_LIST && (key->k == V_INT || key->k == V_BOOL)) {
        int64_t i = key->i < 0 ? key->i + (int64_t)obj->n : key->i;
        return i >= 0 && i < (int64_t)obj->n ? obj->items[i] : val(c, V_UNDEF);
    }
    if (obj->k == V_DICT && !obj->strict && key->k != V_LIST && key->k != V_DICT) return val(c, V_UNDEF);
    fail(c, pos, "indexing a %s with a %s is not supported", kind_name(obj), kind_name(key));
}

/* str.split(sep) with a non-empty separator. */
static Value *split(Ctx *c, size_t pos, const Value *s, const Value *sep) {
    if (sep->k != V_STR) fail(c, pos, "split() takes a string separator here, got a %s", kind_name(sep));
    if (sep->len == 0) fail(c, pos, "split(): empty separator");
    Value *l = val(c, V_LIST);
    size_t cap = 0, at = 0;
    for (;;) {
        const char *hit = at <= s->len ? memmem(s->s + at, s->len - at, sep->s, sep->len) : NULL;
        size_t end = hit ? (size_t)(hit - s->s) : s->len;
        if (l->n == cap) {
            l->items = arena_realloc(c->a, l->items, sizeof(Value *) * cap, sizeof(Value *) * (cap ? cap * 2 : 4));
            cap = cap ? cap * 2 : 4;
        }
        l->items[l->n++] = str_val(c, pos, s->s + at, end - at);
        if (!hit) return l;
        at = end + sep->len;
    }
}

static Value *call(Ctx *c, Scope *s, const Expr *e) {
    const Expr *f = e->a;
    if (f->k == E_NAME && !lookup(s, f->s, f->len) && f->len == 9 && memcmp(f->s, "namespace", 9) == 0) {
        if (e->npos) fail(c, e->pos, "namespace() takes keyword arguments only here");
        Value *ns = val(c, V_DICT);
        ns->ns = true;
        for (int i = 0; i < e->nkw; i++) dict_set(c, ns, e->kw[i].s, e->kw[i].len, eval(c, s, e->args[i]));
        return ns;
    }
    if (f->k == E_NAME && !lookup(s, f->s, f->len) && f->len == 15 && memcmp(f->s, "raise_exception", 15) == 0) {
        Value *m = e->npos == 1 && !e->nkw ? eval(c, s, e->args[0]) : NULL;
        if (m && m->k == V_STR) fail(c, e->pos, "the template raised an exception: %.*s", (int)m->len, m->s);
    }
    if (f->k == E_ATTR && f->len == 5 && memcmp(f->s, "split", 5) == 0) {
        Value *obj = eval(c, s, f->a);
        need_defined(c, f->pos, obj);
        if (obj->k == V_STR) {
            if (e->npos != 1 || e->nkw) fail(c, e->pos, "only split(separator) is supported");
            return split(c, e->pos, obj, eval(c, s, e->args[0]));
        }
    }
    if (f->k == E_NAME || f->k == E_ATTR)
        fail(c, e->pos, "calling '%.*s' is not supported (namespace(), raise_exception() and str.split() are)", (int)f->len, f->s);
    fail(c, e->pos, "this call is not supported");
}

static Value *concat(Ctx *c, size_t pos, const Value *a, const Value *b) {
    if (a->len + b->len > MAX_TEXT) fail(c, pos, "a string longer than %zu MiB", MAX_TEXT >> 20);
    char *s = arena_alloc(c->a, a->len + b->len + 1);
    memcpy(s, a->s, a->len);
    memcpy(s + a->len, b->s, b->len);
    return str_val(c, pos, s, a->len + b->len);
}

static Value *arith(Ctx *c, const Expr *e, Value *a, Value *b) {
    if (e->k == E_CAT) { /* str() of an undefined value is "" */
        StrBuf *sb = &c->scratch;
        sb->len = 0;
        put_value(c, e->pos, sb, a);
        put_value(c, e->pos, sb, b);
        return str_val(c, e->pos, arena_strndup(c->a, sb->data ? sb->data : "", sb->len), sb->len);
    }
    need_defined(c, e->pos, a);
    need_defined(c, e->pos, b);
    bool num = (a->k == V_INT || a->k == V_BOOL) && (b->k == V_INT || b->k == V_BOOL);
    int64_t r;
    if (num && !(e->k == E_ADD ? __builtin_add_overflow(a->i, b->i, &r) : __builtin_sub_overflow(a->i, b->i, &r)))
        return int_val(c, V_INT, r);
    if (num) fail(c, e->pos, "integer overflow");
    if (e->k == E_ADD && a->k == V_STR && b->k == V_STR) return concat(c, e->pos, a, b);
    if (e->k == E_ADD && a->k == V_LIST && b->k == V_LIST) {
        Value *l = val(c, V_LIST);
        l->items = arena_alloc(c->a, sizeof(Value *) * (a->n + b->n + 1));
        memcpy(l->items, a->items, sizeof(Value *) * a->n);
        memcpy(l->items + a->n, b->items, sizeof(Value *) * b->n);
        l->n = a->n + b->n;
        return l;
    }
    fail(c, e->pos, "cannot %s a %s and a %s", e->k == E_ADD ? "add" : "subtract", kind_name(a), kind_name(b));
}

/* `x in container` with Python's rules for the kinds a template sees. */
static bool contains(Ctx *c, size_t pos, const Value *x, const Value *in) {
    switch (in->k) {
    case V_UNDEF: return false; /* Jinja's Undefined iterates as empty */
    case V_STR:
        if (x->k != V_STR) fail(c, pos, "'in <string>' requires a string, got a %s", kind_name(x));
        return x->len == 0 || (x->len <= in->len && memmem(in->s, in->len, x->s, x->len));
    case V_LIST:
        for (size_t i = 0; i < in->n; i++)
            if (equal(x, in->items[i])) return true;
        return false;
    case V_DICT:
        if (!in->ns && !in->strict) return x->k == V_STR && dict_slot((Value *)in, x->s, x->len);
        /* fall through */
    default: fail(c, pos, "'in' a %s is not supported", kind_name(in));
    }
}

static Value *eval_inner(Ctx *c, Scope *s, const Expr *e) {
    switch (e->k) {
    case E_STR: return str_val(c, e->pos, e->s, e->len);
    case E_INT: return int_val(c, V_INT, e->i);
    case E_BOOL: return int_val(c, V_BOOL, e->i);
    case E_NONE: return val(c, V_NONE);
    case E_NAME: {
        Value *v = lookup(s, e->s, e->len);
        if (v) return v;
        if (e->len == 9 && memcmp(e->s, "namespace", 9) == 0) fail(c, e->pos, "'namespace' is supported only as namespace(...)");
        Value *u = val(c, V_UNDEF);
        u->s = e->s, u->len = e->len;
        return u;
    }
    case E_ATTR: {
        Value *obj = eval(c, s, e->a);
        if (obj->k == V_STR || obj->k == V_LIST)
            fail(c, e->pos, "the attribute '%.*s' of a %s is not supported", (int)e->len, e->s, kind_name(obj));
        return get_member(c, e->pos, obj, e->s, e->len, true);
    }
    case E_ITEM: {
        Value *obj = eval(c, s, e->a);
        return get_item(c, e->pos, obj, eval(c, s, e->b));
    }
    case E_CALL: return call(c, s, e);
    case E_NOT: return int_val(c, V_BOOL, !truthy(eval(c, s, e->a)));
    case E_NEG: {
        Value *v = eval(c, s, e->a);
        need_defined(c, e->pos, v);
        if ((v->k != V_INT && v->k != V_BOOL) || v->i == INT64_MIN) fail(c, e->pos, "cannot negate a %s", kind_name(v));
        return int_val(c, V_INT, -v->i);
    }
    case E_AND: {
        Value *l = eval(c, s, e->a);
        return truthy(l) ? eval(c, s, e->b) : l;
    }
    case E_OR: {
        Value *l = eval(c, s, e->a);
        return truthy(l) ? l : eval(c, s, e->b);
    }
    case E_ADD:
    case E_SUB:
    case E_CAT: {
        Value *a = eval(c, s, e->a);
        return arith(c, e, a, eval(c, s, e->b));
    }
    case E_EQ:
    case E_NE: {
        Value *a = eval(c, s, e->a);
        return int_val(c, V_BOOL, equal(a, eval(c, s, e->b)) == (e->k == E_EQ));
    }
    case E_IN:
    case E_NOTIN: {
        Value *a = eval(c, s, e->a);
        return int_val(c, V_BOOL, contains(c, e->pos, a, eval(c, s, e->b)) == (e->k == E_IN));
    }
    case E_TEST: {
        Value *v = eval(c, s, e->a);
        bool r = e->s[0] == 'd' ? v->k != V_UNDEF : e->s[0] == 'u' ? v->k == V_UNDEF : v->k == V_NONE;
        return int_val(c, V_BOOL, r != (e->i != 0));
    }
    }
    fail(c, e->pos, "internal: unknown expression");
}

/* Left-deep chains (a + b + ... ) parse without recursion but evaluate
 * with it: their length is bounded here. */
static Value *eval(Ctx *c, Scope *s, const Expr *e) {
    if (++c->depth > MAX_EVAL_DEPTH) fail(c, e->pos, "expression nested more than %d deep", MAX_EVAL_DEPTH);
    Value *v = eval_inner(c, s, e);
    c->depth--;
    return v;
}

static void exec(Ctx *c, Scope *s, const Stmt *st);

static Value *loop_info(Ctx *c, size_t i, size_t n) {
    Value *l = val(c, V_DICT);
    l->strict = true;
    dict_set(c, l, "index", 5, int_val(c, V_INT, (int64_t)i + 1));
    dict_set(c, l, "index0", 6, int_val(c, V_INT, (int64_t)i));
    dict_set(c, l, "revindex", 8, int_val(c, V_INT, (int64_t)(n - i)));
    dict_set(c, l, "revindex0", 9, int_val(c, V_INT, (int64_t)(n - i - 1)));
    dict_set(c, l, "first", 5, int_val(c, V_BOOL, i == 0));
    dict_set(c, l, "last", 4, int_val(c, V_BOOL, i + 1 == n));
    dict_set(c, l, "length", 6, int_val(c, V_INT, (int64_t)n));
    return l;
}

/* for: each iteration runs the body in a fresh scope over the enclosing one,
 * so what it sets is gone at the next iteration and after the loop. */
static void exec_for(Ctx *c, Scope *s, const Stmt *st) {
    Value *it = eval(c, s, st->e);
    Value **items = it->items;
    size_t n = it->n;
    if (it->k == V_DICT && !it->ns && !it->strict) { /* a dict iterates over its keys */
        n = it->ne;
        items = arena_alloc(c->a, sizeof(Value *) * (n + 1));
        for (size_t i = 0; i < n; i++) items[i] = str_val(c, st->pos, it->e[i].k, it->e[i].klen);
    } else if (it->k == V_UNDEF) {
        n = 0;
    } else if (it->k != V_LIST) {
        fail(c, st->e->pos, "looping over a %s is not supported", kind_name(it));
    }
    for (size_t i = 0; i < n; i++) {
        Scope inner = {.up = s};
        scope_set(c, &inner, st->s, st->len, items[i]);
        scope_set(c, &inner, "loop", 4, loop_info(c, i, n));
        exec(c, &inner, st->body);
    }
}

static void exec(Ctx *c, Scope *s, const Stmt *st) {
    for (; st; st = st->next) {
        switch (st->k) {
        case S_TEXT:
            sb_putn(&c->out, st->s, st->len);
            if (c->out.len > MAX_TEXT) fail(c, st->pos, "the rendered text exceeds %zu MiB", MAX_TEXT >> 20);
            break;
        case S_OUT: put_value(c, st->e->pos, &c->out, eval(c, s, st->e)); break;
        case S_IF: exec(c, s, truthy(eval(c, s, st->e)) ? st->body : st->orelse); break;
        case S_FOR: exec_for(c, s, st); break;
        case S_SET: {
            Value *v = eval(c, s, st->e);
            if (!st->attr) {
                scope_set(c, s, st->s, st->len, v);
                break;
            }
            Value *ns = lookup(s, st->s, st->len);
            if (!ns || ns->k != V_DICT || !ns->ns)
                fail(c, st->pos, "cannot assign the attribute '%.*s' of '%.*s': not a namespace", (int)st->alen, st->attr,
                     (int)st->len, st->s);
            dict_set(c, ns, st->attr, st->alen, v);
            break;
        }
        }
    }
}

/* ---- entry ------------------------------------------------------------------------------ */

/* The template with \r\n and \r as \n and one trailing newline dropped, as
 * Jinja's lexer reads it; NULL (after an error) if not UTF-8. */
static bool normalize(Ctx *c, const char *tpl) {
    size_t n = strlen(tpl), o = 0;
    char *s = arena_alloc(c->a, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (tpl[i] == '\r') {
            s[o++] = '\n';
            if (tpl[i + 1] == '\n') i++;
        } else {
            s[o++] = tpl[i];
        }
    }
    if (o && s[o - 1] == '\n') o--;
    c->src = s, c->n = o;
    uint32_t cp;
    for (size_t i = 0; i < o;) {
        int k = utf8_at(s, o, i, &cp);
        if (!k) fail(c, i, "the template is not valid UTF-8");
        i += (size_t)k;
    }
    return true;
}

static Value *context_messages(Ctx *c, const RtChatMessage *m, size_t n) {
    Value *l = val(c, V_LIST);
    l->items = arena_alloc(c->a, sizeof(Value *) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        Value *d = val(c, V_DICT);
        const char *role = m[i].role ? m[i].role : "";
        dict_set(c, d, "role", 4, str_val(c, 0, role, strlen(role)));
        dict_set(c, d, "content", 7, m[i].content ? str_val(c, 0, m[i].content, strlen(m[i].content)) : val(c, V_NONE));
        l->items[l->n++] = d;
    }
    return l;
}

/* Lexes, parses and runs the template into c->out; longjmps on an error. */
static void render(Ctx *c, const char *tpl, const RtChatMessage *messages, size_t n, const char *bos, const char *eos,
                   bool add_generation_prompt) {
    normalize(c, tpl ? tpl : "");
    lex(c);
    Stmt *body = parse_body(c, NULL, 0);
    Scope globals = {0}, top = {.up = &globals};
    bos = bos ? bos : "";
    eos = eos ? eos : "";
    scope_set(c, &globals, "messages", 8, context_messages(c, messages, n));
    scope_set(c, &globals, "bos_token", 9, str_val(c, 0, bos, strlen(bos)));
    scope_set(c, &globals, "eos_token", 9, str_val(c, 0, eos, strlen(eos)));
    scope_set(c, &globals, "add_generation_prompt", 21, int_val(c, V_BOOL, add_generation_prompt));
    exec(c, &top, body);
    c->done = true;
}

char *rt_chat_render(DiagEngine *d, const char *tpl, const RtChatMessage *messages, size_t n, const char *bos_token,
                     const char *eos_token, bool add_generation_prompt) {
    Ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->d = d;
    c->a = arena_new();
    sb_init(&c->out);
    sb_init(&c->scratch);
    if (c->a && setjmp(c->fail) == 0) render(c, tpl, messages, n, bos_token, eos_token, add_generation_prompt);
    char *result = c->done ? malloc(c->out.len + 1) : NULL;
    if (result) {
        memcpy(result, c->out.data ? c->out.data : "", c->out.len);
        result[c->out.len] = '\0';
    }
    sb_free(&c->out);
    sb_free(&c->scratch);
    arena_free(c->a);
    free(c);
    return result;
}
