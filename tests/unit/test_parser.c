/* test_parser.c — the grammar on its own: the AST shapes it builds
 * (precedence, associativity, calls with keywords, params with from/absent,
 * stacked weights, else-if chains, destructuring), the location every node
 * carries, recovery that reports several syntax errors in one run, and the
 * nesting limits that keep hostile input from exhausting the stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "frontend/ast.h"
#include "frontend/parser.h"

typedef struct {
    Arena *a;
    DiagEngine *d;
    FeParseCtx ctx;
    bool ok;
} Parsed;

/* Parses text into p (arena and diagnostics of its own). */
static void parse(Parsed *p, const char *text) {
    p->a = arena_new();
    p->d = diag_new(p->a, NULL);
    p->ctx = (FeParseCtx){.arena = p->a, .diag = p->d, .file = "p.dsl"};
    p->ok = fe_parse_text(&p->ctx, text, strlen(text));
}

static AstNode *item(Parsed *p, size_t i) {
    assert_true(i < p->ctx.items.n);
    return p->ctx.items.v[i];
}

static void expect_at(const AstNode *n, AstKind kind, int line, int col) {
    assert_non_null(n);
    assert_int_equal(n->kind, kind);
    assert_int_equal(n->loc.line, line);
    assert_int_equal(n->loc.col, col);
}

static const Diag *diag_n(Parsed *p, int n) {
    const Diag *g = diag_first(p->d);
    while (g && n--) g = g->next;
    assert_non_null(g);
    return g;
}

static void expect_diag(Parsed *p, int n, int line, int col, const char *text) {
    const Diag *g = diag_n(p, n);
    if (!strstr(g->msg, text)) fail_msg("diag %d: '%s' does not contain '%s'", n, g->msg, text);
    assert_int_equal(g->loc.line, line);
    assert_int_equal(g->loc.col, col);
}

static void test_precedence(void **state) {
    (void)state;
    Parsed p;
    parse(&p, "let x = 1 + 2 * 3 - -4;\nlet y = a || b && !c == d < e;\nlet z = 8 / 4 / 2 % 3;");
    assert_true(p.ok);
    assert_int_equal(p.ctx.items.n, 3);
    /* (1 + (2 * 3)) - (-4), the '-' located at its operator */
    AstNode *e = item(&p, 0)->a;
    expect_at(e, AST_BINOP, 1, 19);
    assert_int_equal(e->op, '-');
    assert_int_equal(e->a->op, '+');
    assert_int_equal(e->a->a->ival, 1);
    assert_int_equal(e->a->b->op, '*');
    assert_int_equal(e->a->b->b->ival, 3);
    expect_at(e->b, AST_UNOP, 1, 21);
    assert_int_equal(e->b->a->ival, 4);
    assert_int_equal(e->height, 3);
    /* a || (b && ((!c) == (d < e))) */
    e = item(&p, 1)->a;
    assert_int_equal(e->op, OR);
    assert_string_equal(e->a->str, "a");
    assert_int_equal(e->b->op, AND);
    assert_int_equal(e->b->b->op, EQ);
    assert_int_equal(e->b->b->a->kind, AST_UNOP);
    assert_int_equal(e->b->b->b->op, '<');
    /* left associative: ((8 / 4) / 2) % 3 */
    e = item(&p, 2)->a;
    assert_int_equal(e->op, '%');
    assert_int_equal(e->a->op, '/');
    assert_int_equal(e->a->a->op, '/');
    assert_int_equal(e->a->a->a->ival, 8);
    arena_free(p.a);
}

static void test_top_level_items(void **state) {
    (void)state;
    Parsed p;
    parse(&p, "model m;\n"
              "import \"lib.dsl\";\n"
              "param eps: float = 1e-6 from \"rms_norm_eps\", \"norm.eps\" absent 0.5;\n"
              "param k: int = 2;\n"
              "dim B, S;\n"
              "fn f(a, b) { return a, b; }\n"
              "fn g() { }\n");
    assert_true(p.ok);
    assert_int_equal(p.ctx.items.n, 7);
    assert_string_equal(item(&p, 0)->str, "m");
    expect_at(item(&p, 1), AST_IMPORT, 2, 1);
    assert_string_equal(item(&p, 1)->str, "lib.dsl");
    AstNode *pa = item(&p, 2);
    expect_at(pa, AST_PARAM, 3, 1);
    assert_string_equal(pa->str, "eps");
    assert_string_equal(pa->str2, "float");
    assert_float_equal(pa->a->fval, 1e-6, 1e-20);
    assert_int_equal(pa->list.n, 2);
    assert_string_equal(pa->list.v[1]->str, "norm.eps");
    expect_at(pa->list.v[1], AST_STR, 3, 46);
    assert_float_equal(pa->b->fval, 0.5, 0);
    assert_int_equal(item(&p, 3)->list.n, 0);
    assert_null(item(&p, 3)->b);
    AstNode *dm = item(&p, 4);
    assert_int_equal(dm->list.n, 2);
    expect_at(dm->list.v[1], AST_NAME, 5, 8);
    AstNode *fn = item(&p, 5);
    assert_string_equal(fn->str, "f");
    assert_int_equal(fn->list.n, 2);
    assert_int_equal(fn->list2.n, 1);
    expect_at(fn->list2.v[0], AST_RETURN, 6, 14);
    assert_int_equal(fn->list2.v[0]->list.n, 2);
    assert_int_equal(item(&p, 6)->list.n, 0);
    assert_int_equal(item(&p, 6)->list2.n, 0);
    arena_free(p.a);
}

static void test_statements(void **state) {
    (void)state;
    Parsed p;
    parse(&p, "weight w: bf16[O, 2*I] = \"a.{l}.w\";\n"
              "weight e[x: N + 1]: fp8e4m3[4, 8] = \"experts.{x}.w\";\n"
              "input t: i32[B, S];\n"
              "let a, b = split(h, [1, 2], axis=-1);\n"
              "a = f(a, 2, k=3, s=\"x\");\n"
              "for i in 0 .. n { assert i < n, \"bad\"; }\n"
              "if c { } else if d { output o = a; } else { let q = 1; }\n");
    assert_true(p.ok);
    AstNode *w = item(&p, 0);
    expect_at(w, AST_WEIGHT, 1, 1);
    assert_null(w->str2);
    expect_at(w->c, AST_TYPE, 1, 11);
    assert_string_equal(w->c->str, "bf16");
    assert_int_equal(w->c->list.n, 2);
    assert_int_equal(w->c->list.v[1]->op, '*');
    AstNode *st = item(&p, 1);
    assert_string_equal(st->str, "e");
    assert_string_equal(st->str2, "x");
    assert_int_equal(st->b->op, '+');
    assert_string_equal(st->a->str, "experts.{x}.w");
    expect_at(item(&p, 2), AST_INPUT, 3, 1);
    AstNode *let = item(&p, 3);
    assert_int_equal(let->list.n, 2);
    assert_string_equal(let->list.v[1]->str, "b");
    AstNode *call = let->a;
    expect_at(call, AST_CALL, 4, 12);
    assert_int_equal(call->list.n, 2);
    assert_int_equal(call->list.v[1]->kind, AST_LIST);
    assert_int_equal(call->list2.n, 1);
    expect_at(call->list2.v[0], AST_KWARG, 4, 29);
    assert_int_equal(call->list2.v[0]->a->kind, AST_UNOP);
    /* keywords may sit between positionals in the source; they are split out */
    AstNode *as = item(&p, 4);
    expect_at(as, AST_ASSIGN, 5, 1);
    assert_int_equal(as->a->list.n, 2);
    assert_int_equal(as->a->list2.n, 2);
    assert_string_equal(as->a->list2.v[1]->str, "s");
    AstNode *fo = item(&p, 5);
    assert_string_equal(fo->str, "i");
    assert_int_equal(fo->list.n, 1);
    expect_at(fo->list.v[0], AST_ASSERT, 6, 19);
    /* else-if nests an AST_IF as the only else statement */
    AstNode *ifs = item(&p, 6);
    assert_int_equal(ifs->list.n, 0);
    assert_int_equal(ifs->list2.n, 1);
    AstNode *elif = ifs->list2.v[0];
    expect_at(elif, AST_IF, 7, 15);
    assert_string_equal(elif->a->str, "d");
    assert_int_equal(elif->list.v[0]->kind, AST_OUTPUT);
    assert_int_equal(elif->list2.n, 1);
    assert_int_equal(elif->list2.v[0]->kind, AST_LET);
    arena_free(p.a);
}

/* One run reports every independent syntax error and keeps the good items. */
static void test_recovery(void **state) {
    (void)state;
    Parsed p;
    parse(&p, "let a = 1;\n"
              "let b = 2 +;\n"
              "let c = 3;\n"
              "fn f(x) { let y = ; return x; }\n"
              "let d = (4;\n"
              "output o = a b;\n"
              "let e = 5;\n");
    assert_false(p.ok);
    assert_int_equal(diag_error_count(p.d), 4);
    expect_diag(&p, 0, 2, 12, "unexpected ';', expected an expression");
    expect_diag(&p, 1, 4, 19, "unexpected ';', expected an expression");
    expect_diag(&p, 2, 5, 11, "unexpected ';', expected ')'");
    expect_diag(&p, 3, 6, 14, "unexpected identifier 'b', expected ';'");
    /* a, c, f (its body recovered to the `return`) and e survive */
    int lets = 0;
    for (size_t i = 0; i < p.ctx.items.n; i++) lets += item(&p, i)->kind == AST_LET;
    assert_int_equal(lets, 3);
    AstNode *last = item(&p, p.ctx.items.n - 1);
    assert_string_equal(last->list.v[0]->str, "e");
    for (size_t i = 0; i < p.ctx.items.n; i++)
        if (item(&p, i)->kind == AST_FN) {
            assert_int_equal(item(&p, i)->list2.n, 1);
            assert_int_equal(item(&p, i)->list2.v[0]->kind, AST_RETURN);
        }
    arena_free(p.a);

    parse(&p, "fn f( { }\nlet ok = 1\nlet = 2;\nlet z = g(a b);\nfor i in 0 .. 2 { 3; }");
    assert_false(p.ok);
    /* line 3 is skipped while recovering from line 2's missing ';' */
    assert_int_equal(diag_error_count(p.d), 4);
    expect_diag(&p, 0, 1, 7, "unexpected '{', expecting identifier or ')'");
    expect_diag(&p, 1, 3, 1, "unexpected 'let', expected ';'");
    expect_diag(&p, 2, 4, 13, "unexpected identifier 'b', expected ',' or ')'");
    expect_diag(&p, 3, 5, 19, "unexpected integer, expected a statement or '}'");
    arena_free(p.a);

    parse(&p, "let x = f(1");
    expect_diag(&p, 0, 1, 12, "unexpected end of file, expected ',' or ')'");
    arena_free(p.a);
    parse(&p, "let x = f(");
    expect_diag(&p, 0, 1, 11, "unexpected end of file, expected an expression or ')'");
    arena_free(p.a);
}

static char *repeat(const char *pre, const char *unit, int n, const char *post) {
    size_t lp = strlen(pre), lu = strlen(unit), lq = strlen(post);
    char *s = malloc(lp + lu * (size_t)n + lq + 1), *o = s;
    memcpy(o, pre, lp), o += lp;
    for (int i = 0; i < n; i++) memcpy(o, unit, lu), o += lu;
    memcpy(o, post, lq + 1);
    return s;
}

/* Deep or long nesting is an error, never a stack overflow. */
static void test_nesting_limits(void **state) {
    (void)state;
    struct {
        const char *pre, *unit;
        int n;
        const char *post, *msg;
    } cases[] = {
        {"let x = ", "(", FE_MAX_DEPTH + 1, "1;", "nesting deeper than 200 levels"},
        {"let x = ", "[", 100000, "", "nesting deeper than 200 levels"},
        {"", "for i in 0 .. 1 {", FE_MAX_DEPTH + 1, "", "nesting deeper than 200 levels"},
        {"let x = 1", " + 1", FE_MAX_HEIGHT + 1, ";", "expression nested deeper than 1000 levels"},
        {"let x = 1", " * 2", 1000000, ";", "expression nested deeper than 1000 levels"},
        {"let x = ", "-", 1000000, "1;", "nested too deeply"},
        {"if a { } ", "else if a { } ", 1000000, "", "nested too deeply"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *src = repeat(cases[i].pre, cases[i].unit, cases[i].n, cases[i].post);
        Parsed p;
        parse(&p, src);
        assert_false(p.ok);
        const char *m = diag_n(&p, 0)->msg;
        if (!strstr(m, cases[i].msg)) fail_msg("case %zu: '%s' does not contain '%s'", i, m, cases[i].msg);
        arena_free(p.a);
        free(src);
    }
    /* just under the limits parses */
    char *src = repeat("let x = 1", " + 1", FE_MAX_HEIGHT, ";");
    Parsed p;
    parse(&p, src);
    assert_true(p.ok);
    assert_int_equal(item(&p, 0)->a->height, FE_MAX_HEIGHT);
    arena_free(p.a);
    free(src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_top_level_items),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_nesting_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
