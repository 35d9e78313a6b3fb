/* test_lexer.c — the DSL scanner on its own: token kinds, literal values,
 * 1-based line:col locations (after tabs, comments and multi-line strings),
 * string escapes and every lexical error. Tokens are pulled straight from
 * the generated reentrant scanner, so a parser bug cannot hide a lexer bug. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "frontend/ast.h"
#include "frontend/parser.h"
#define YYSTYPE FE_YYSTYPE
#define YYLTYPE FE_YYLTYPE
#include "frontend/lexer.h"

typedef struct {
    int tok, line, col;
    FE_YYSTYPE v;
} Tok;

typedef struct {
    Arena *a;
    DiagEngine *d;
    Tok toks[256];
    int n;
} Lexed;

/* Scans text to the end (or 256 tokens) into lx; diagnostics are kept. */
static void lex(Lexed *lx, const char *text, size_t len) {
    lx->a = arena_new();
    lx->d = diag_new(lx->a, NULL);
    lx->n = 0;
    FeParseCtx ctx = {.arena = lx->a, .diag = lx->d, .file = "t.dsl", .line = 1, .col = 1};
    yyscan_t sc;
    assert_int_equal(fe_yylex_init_extra(&ctx, &sc), 0);
    YY_BUFFER_STATE buf = fe_yy_scan_bytes(text, (int)len, sc);
    for (;;) {
        Tok *t = &lx->toks[lx->n];
        FE_YYLTYPE loc = {0};
        memset(&t->v, 0, sizeof t->v);
        t->tok = fe_yylex(&t->v, &loc, sc);
        t->line = loc.first_line;
        t->col = loc.first_column;
        if (t->tok == 0 || ++lx->n == 256) break;
    }
    fe_yy_delete_buffer(buf, sc);
    fe_yylex_destroy(sc);
}

static void lex_str(Lexed *lx, const char *text) { lex(lx, text, strlen(text)); }

static const Diag *diag_n(Lexed *lx, int n) {
    const Diag *g = diag_first(lx->d);
    while (g && n--) g = g->next;
    assert_non_null(g);
    return g;
}

static void expect_diag(Lexed *lx, int n, int line, int col, const char *text) {
    const Diag *g = diag_n(lx, n);
    if (!strstr(g->msg, text)) fail_msg("diag %d: '%s' does not contain '%s'", n, g->msg, text);
    assert_int_equal(g->loc.line, line);
    assert_int_equal(g->loc.col, col);
}

static void test_keywords_and_punctuation(void **state) {
    (void)state;
    Lexed lx;
    lex_str(&lx, "model import param dim input weight fn let for in if else return assert output from absent "
                 "true false modelx _x9");
    const int want[] = {KW_MODEL, KW_IMPORT, KW_PARAM, KW_DIM,   KW_INPUT,  KW_WEIGHT, KW_FN,
                        KW_LET,   KW_FOR,    KW_IN,    KW_IF,    KW_ELSE,   KW_RETURN, KW_ASSERT,
                        KW_OUTPUT, KW_FROM,  KW_ABSENT, BOOL,    BOOL,      IDENT,     IDENT, 0};
    assert_int_equal(lx.n, 21);
    for (int i = 0; i <= 21; i++) assert_int_equal(lx.toks[i].tok, want[i]);
    assert_int_equal(lx.toks[17].v.ival, 1);
    assert_int_equal(lx.toks[18].v.ival, 0);
    assert_string_equal(lx.toks[19].v.str, "modelx"); /* a keyword prefix is an identifier */
    assert_string_equal(lx.toks[20].v.str, "_x9");
    arena_free(lx.a);

    lex_str(&lx, "( ) [ ] { } , ; : = .. + - * / % == != < <= > >= && || !");
    const int punct[] = {'(', ')', '[', ']', '{', '}', ',', ';', ':', '=', DOTDOT, '+', '-', '*', '/', '%',
                         EQ,  NE,  '<', LE,  '>', GE,  AND, OR,  '!', 0};
    for (int i = 0; i < (int)(sizeof punct / sizeof punct[0]); i++) assert_int_equal(lx.toks[i].tok, punct[i]);
    assert_int_equal(diag_error_count(lx.d), 0);
    arena_free(lx.a);
}

static void test_numbers(void **state) {
    (void)state;
    Lexed lx;
    lex_str(&lx, "42 1e-6 0.5 2. .25 3E2 0..12 9223372036854775807");
    assert_int_equal(lx.toks[0].tok, INT);
    assert_int_equal(lx.toks[0].v.ival, 42);
    assert_int_equal(lx.toks[1].tok, FLOAT);
    assert_float_equal(lx.toks[1].v.fval, 1e-6, 1e-20);
    assert_float_equal(lx.toks[2].v.fval, 0.5, 0);
    assert_int_equal(lx.toks[3].tok, FLOAT);
    assert_float_equal(lx.toks[3].v.fval, 2.0, 0);
    assert_float_equal(lx.toks[4].v.fval, 0.25, 0);
    assert_int_equal(lx.toks[5].tok, FLOAT);
    assert_float_equal(lx.toks[5].v.fval, 300.0, 0);
    /* `0..12` is a range, not the float "0." followed by ".12" */
    assert_int_equal(lx.toks[6].tok, INT);
    assert_int_equal(lx.toks[6].v.ival, 0);
    assert_int_equal(lx.toks[7].tok, DOTDOT);
    assert_int_equal(lx.toks[7].col, 25);
    assert_int_equal(lx.toks[8].tok, INT);
    assert_int_equal(lx.toks[8].v.ival, 12);
    assert_int_equal(lx.toks[8].col, 27);
    assert_int_equal(lx.toks[9].v.ival, INT64_MAX);
    assert_int_equal(diag_error_count(lx.d), 0);
    arena_free(lx.a);
}

static void test_locations(void **state) {
    (void)state;
    Lexed lx;
    /* a tab counts one column; a block comment spanning lines moves the line */
    lex_str(&lx, "a\tb /* c\n d */ e // x y z\n  \"s\ttr\" f\r\ng");
    assert_int_equal(lx.n, 6);
    int want[][2] = {{1, 1}, {1, 3}, {2, 7}, {3, 3}, {3, 10}, {4, 1}};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(lx.toks[i].line, want[i][0]);
        assert_int_equal(lx.toks[i].col, want[i][1]);
    }
    assert_string_equal(lx.toks[2].v.str, "e");
    assert_int_equal(lx.toks[3].tok, STRING);
    assert_string_equal(lx.toks[3].v.str, "s\ttr");
    arena_free(lx.a);
}

static void test_string_escapes(void **state) {
    (void)state;
    Lexed lx;
    lex_str(&lx, "\"a\\n\\t\\\"q\\\"\\\\b\" \"layers.{l}.{{x}}\" \"\"");
    assert_int_equal(lx.toks[0].tok, STRING);
    assert_string_equal(lx.toks[0].v.str, "a\n\t\"q\"\\b");
    /* interpolation is the lowering's business: braces arrive untouched */
    assert_string_equal(lx.toks[1].v.str, "layers.{l}.{{x}}");
    assert_int_equal(lx.toks[1].col, 17);
    assert_string_equal(lx.toks[2].v.str, "");
    assert_int_equal(diag_error_count(lx.d), 0);
    arena_free(lx.a);
}

static void test_lexical_errors(void **state) {
    (void)state;
    Lexed lx;
    lex_str(&lx, "x = \"bad\\q\";\n@ y 99999999999999999999 1e999\n\"open\nz");
    expect_diag(&lx, 0, 1, 5, "unknown escape");
    expect_diag(&lx, 1, 2, 1, "unexpected character '@'");
    expect_diag(&lx, 2, 2, 5, "does not fit in 64 bits");
    expect_diag(&lx, 3, 2, 26, "float literal '1e999' is out of range");
    expect_diag(&lx, 4, 3, 1, "unterminated string literal");
    assert_int_equal(diag_error_count(lx.d), 5);
    /* scanning goes on after each error: the last token is z on line 4 */
    Tok *last = &lx.toks[lx.n - 1];
    assert_int_equal(last->tok, IDENT);
    assert_string_equal(last->v.str, "z");
    assert_int_equal(last->line, 4);
    arena_free(lx.a);

    lex_str(&lx, "a /* never\n closed");
    expect_diag(&lx, 0, 1, 3, "unterminated /* comment");
    assert_int_equal(lx.n, 1);
    arena_free(lx.a);

    const char bin[] = {'a', ' ', '\x01', ' ', '\0', ' ', '\xff', ' ', 'b', '"', 'n', '\0', 'l', '"'};
    lex(&lx, bin, sizeof bin);
    expect_diag(&lx, 0, 1, 3, "unexpected byte 0x01");
    expect_diag(&lx, 1, 1, 5, "unexpected byte 0x00");
    expect_diag(&lx, 2, 1, 7, "unexpected byte 0xff");
    expect_diag(&lx, 3, 1, 10, "NUL byte in string literal");
    assert_int_equal(lx.toks[1].tok, IDENT);
    assert_string_equal(lx.toks[1].v.str, "b");
    arena_free(lx.a);
}

/* Pure garbage stops after a bounded number of errors instead of flooding. */
static void test_garbage_is_bounded(void **state) {
    (void)state;
    static char junk[20000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(0x80 + i % 64);
    Lexed lx;
    lex(&lx, junk, sizeof junk);
    assert_int_equal(lx.n, 0);
    assert_true(diag_error_count(lx.d) > 10);
    assert_true(diag_error_count(lx.d) <= 202);
    arena_free(lx.a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords_and_punctuation),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_locations),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_lexical_errors),
        cmocka_unit_test(test_garbage_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
