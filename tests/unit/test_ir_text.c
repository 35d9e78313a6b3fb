/* test_ir_text.c — the textual IR: exact printed form, parse → print
 * round trip, located parse errors, recovery, DOT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static const char *SAMPLE =
    "// dscc IR\n"
    "graph @t dims(B, S, T) {\n"
    "  %0 = input {name=\"tokens\"} : i32[B,S] loc(\"m.dsl\":6:1)\n"
    "  %1 = weight {name=\"emb\"} : bf16[1000,64] loc(\"m.dsl\":7:1)\n"
    "  %2 = embedding %1, %0 : bf16[B,S,64] loc(\"m.dsl\":8:9)\n"
    "  %3 = weight {name=\"e.{e}.w\", stack=\"e\", count=4} : bf16[4,8,64]\n"
    "  %4 = reshape %2 : bf16[B*S,64]\n"
    "  %5 = linear %4, %1 : bf16[B*S,1000] scope(\"head/inner\")\n"
    "  %6 = softmax %5 {axis=-1} : bf16[B*S,1000]\n"
    "  %7 = const {value=2.5} : bf16[]\n"
    "  %8 = mul %6, %7 : bf16[B*S,1000]\n"
    "  %9 = rmsnorm %2, %10 {eps=1e-06} : bf16[B,S,64]\n"
    "  output %8 {name=\"logits\"} loc(\"m.dsl\":9:1)\n"
    "}\n";

/* %10 above is undefined on purpose in one test; this fixes it. */
static char *sample_ok(void) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s", SAMPLE);
    char *p = strstr(buf, "  %9 = rmsnorm");
    char *e = strchr(p, '\n') + 1;
    memmove(p, e, strlen(e) + 1);
    return buf;
}

static char *print(const IrGraph *g) {
    StrBuf sb;
    sb_init(&sb);
    ir_print(g, &sb);
    return sb.data;
}

static void test_roundtrip_exact(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    const char *text = sample_ok();
    IrGraph *g = ir_parse(a, d, "in.ir", text, strlen(text));
    assert_non_null(g);
    assert_int_equal(ir_verify(g, d), 0);
    char *out = print(g);
    assert_string_equal(out, text);
    IrGraph *g2 = ir_parse(a, d, "again.ir", out, strlen(out));
    char *out2 = print(g2);
    assert_string_equal(out2, out);
    assert_string_equal(g->nodes[5]->scope, "head/inner");
    assert_int_equal(g->nodes[2]->loc.line, 8);
    assert_int_equal(ir_node_attr_int(g->nodes[3], "count", 0), 4);
    free(out);
    free(out2);
    arena_free(a);
}

static void test_ids_are_renumbered(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    const char *text = "graph @g dims(B) {\n  %7 = input {name=\"x\"} : f32[B,4]\n  %3 = silu %7 : f32[B,4]\n  output %3 {name=\"y\"}\n}\n";
    IrGraph *g = ir_parse(a, d, "in.ir", text, strlen(text));
    assert_non_null(g);
    char *out = print(g);
    assert_string_equal(out, "// dscc IR\ngraph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B,4]\n  %1 = silu %0 : f32[B,4]\n  output %1 {name=\"y\"}\n}\n");
    free(out);
    arena_free(a);
}

static void test_parse_errors_located_and_recovered(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    const char *text =
        "graph @g dims(B) {\n"                       /* 1 */
        "  %0 = input {name=\"x\"} : f32[B,4]\n"      /* 2 */
        "  %1 = matmull %0 : f32[B,4]\n"              /* 3: unknown op */
        "  %2 = silu %9 : f32[B,4]\n"                 /* 4: undefined value */
        "  %3 = silu %0 : f32[B,5]\n"                 /* 5: declared type disagrees */
        "  %0 = silu %0 : f32[B,4]\n"                 /* 6: redefinition */
        "  %4 = linear %0, %0 : f32[Q,4]\n"           /* 7: undeclared dim */
        "  output %0 {name=\"y\"}\n"
        "}\n";
    assert_null(ir_parse(a, d, "bad.ir", text, strlen(text)));
    const char *want[][3] = {{"3", "8", "unknown op 'matmull'"},
                             {"4", "13", "use of undefined value %9"},
                             {"5", "8", "silu: declared type f32[B,5] but the operands give f32[B,4]"},
                             {"6", "3", "value %0 is defined twice"},
                             {"7", "28", "'Q' is not a declared dim"}};
    const Diag *g = diag_first(d);
    for (int i = 0; i < 5; i++, g = g->next) {
        assert_non_null(g);
        assert_int_equal(g->loc.line, atoi(want[i][0]));
        assert_int_equal(g->loc.col, atoi(want[i][1]));
        assert_non_null(strstr(g->msg, want[i][2]));
        assert_string_equal(g->loc.file, "bad.ir");
    }
    assert_null(g);
    arena_free(a);
}

static void test_garbage_and_truncation(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    const char *text = sample_ok();
    for (size_t cut = 0; cut < strlen(text); cut += 7) {
        IrGraph *g = ir_parse(a, d, "cut.ir", text, cut);
        if (g) assert_true(ir_verify(g, d) >= 0);
    }
    assert_true(diag_error_count(d) > 0);
    const char bin[] = {0x7f, 'E', 'L', 'F', 0, 1, 2, 3, (char)0xff, '%', '9', '9', '9', '9', '9', '9', '9', '9', '9', '9', '9'};
    assert_null(ir_parse(a, d, "bin.ir", bin, sizeof bin));
    const char *big = "graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[99999999999999999999]\n}\n";
    assert_null(ir_parse(a, d, "big.ir", big, strlen(big)));
    arena_free(a);
}

static void test_dot(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    const char *text = sample_ok();
    IrGraph *g = ir_parse(a, d, "in.ir", text, strlen(text));
    StrBuf sb;
    sb_init(&sb);
    ir_print_dot(g, &sb);
    assert_non_null(strstr(sb.data, "digraph \"t\" {"));
    assert_non_null(strstr(sb.data, "subgraph cluster_0 {\n    label=\"head\";"));
    assert_non_null(strstr(sb.data, "n1 -> n2;"));
    assert_non_null(strstr(sb.data, "e.{e}.w"));
    sb_free(&sb);
    arena_free(a);
}

/* Parses text that must be accepted and verify; returns its printed form. */
static char *reprint(Arena *a, DiagEngine *d, const char *text) {
    IrGraph *g = ir_parse(a, d, "in.ir", text, strlen(text));
    if (!g) fail_msg("did not parse: %s", diag_first(d) ? diag_first(d)->msg : "?");
    assert_int_equal(ir_verify(g, d), 0);
    return print(g);
}

static void test_values_edge_cases(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    /* quoted graph name, escapes, every float form, annotations, sparse
     * and huge ids (which must not cost memory in proportion) */
    const char *text =
        "// leading comment\n"
        "graph @\"my model\" dims(B) { // trailing comment\n"
        "  %999999999 = input {name=\"a\\\"b\\\\c\\n\\x01\"} : f32[B,4] mem(0)\n"
        "  %5 = const {value=-0.0} : f32[]\n"
        "  %6 = const {value=inf} : f32[]\n"
        "  %7 = const {value=-inf} : f32[]\n"
        "  %8 = const {value=nan} : f32[]\n"
        "  %9 = const {value=1e-300} : f32[]\n"
        "  %10 = const {value=3} : f32[]\n"
        "  %11 = mul %999999999, %5 : f32[B,4] scope(\"s/t\") group(3) mem(64) stream(0)\n"
        "  %12 = silu %11 : f32[B,4] stream(1) wait(%11)\n"
        "  output %12 {name=\"y\"} loc(\"a b.dsl\":1:2)\n"
        "}\n";
    char *out = reprint(a, d, text);
    assert_string_equal(out,
                        "// dscc IR\n"
                        "graph @\"my model\" dims(B) {\n"
                        "  %0 = input {name=\"a\\\"b\\\\c\\n\\x01\"} : f32[B,4] mem(0)\n"
                        "  %1 = const {value=-0.0} : f32[]\n"
                        "  %2 = const {value=inf} : f32[]\n"
                        "  %3 = const {value=-inf} : f32[]\n"
                        "  %4 = const {value=nan} : f32[]\n"
                        "  %5 = const {value=1e-300} : f32[]\n"
                        "  %6 = const {value=3.0} : f32[]\n"
                        "  %7 = mul %0, %1 : f32[B,4] scope(\"s/t\") group(3) mem(64) stream(0)\n"
                        "  %8 = silu %7 : f32[B,4] stream(1) wait(%7)\n"
                        "  output %8 {name=\"y\"} loc(\"a b.dsl\":1:2)\n"
                        "}\n");
    char *again = reprint(a, d, out);
    assert_string_equal(again, out);
    free(out);
    free(again);
    arena_free(a);
}

static void test_many_operands(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    StrBuf in;
    sb_init(&in);
    sb_puts(&in, "graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B,2]\n  %1 = concat %0");
    for (int i = 1; i < 100; i++) sb_puts(&in, ", %0");
    sb_puts(&in, " {axis=1} : f32[B,200]\n  output %1 {name=\"y\"}\n}\n");
    IrGraph *g = ir_parse(a, d, "in.ir", in.data, in.len);
    assert_non_null(g);
    assert_int_equal(g->nodes[1]->nops, 100);
    char *out = print(g);
    char *again = reprint(a, d, out);
    assert_string_equal(again, out);
    sb_free(&in);
    free(out);
    free(again);
    arena_free(a);
}

static void test_no_cascade(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    /* %1 fails; its users must not each add "undefined value %1" */
    const char *text =
        "graph @g dims(B) {\n"
        "  %0 = input {name=\"x\"} : f32[B,4]\n"
        "  %1 = softmax %0 {axis=9} : f32[B,4]\n"
        "  %2 = silu %1 : f32[B,4]\n"
        "  %3 = add %2, %1 : f32[B,4]\n"
        "  %4 = silu %5 : f32[B,4]\n"
        "  output %3 {name=\"y\"}\n"
        "}\n";
    assert_null(ir_parse(a, d, "c.ir", text, strlen(text)));
    assert_int_equal(diag_error_count(d), 2);
    const Diag *g = diag_first(d);
    assert_string_equal(g->msg, "softmax: axis 9 is out of range for rank 2");
    assert_int_equal(g->loc.line, 3);
    assert_int_equal(g->loc.col, 8);
    assert_string_equal(g->next->msg, "use of undefined value %5");
    assert_int_equal(g->next->loc.line, 6);
    assert_int_equal(g->next->loc.col, 13);
    arena_free(a);
}

static void test_syntax_errors(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int line, col;
        const char *msg;
    } cases[] = {
        {"graph g dims(B) {\n}\n", 1, 7, "expected '@', found 'g'"},
        {"graph @g dims(B, B) {\n}\n", 1, 18, "dim 'B' declared twice"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B,4\n}\n", 2, 34, "expected ',', found end of line"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\" : f32[B]\n}\n", 2, 24, "expected ',', found ':'"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x} : f32[B]\n}\n", 2, 20, "expected an attribute value, found an unterminated string"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"}\n}\n", 2, 24, "missing ': type' after op 'input'"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B] junk\n}\n", 2, 34, "expected the end of the statement, found 'junk'"},
        {"graph @g dims(B) {\n  output {name=\"x\"}\n}\n", 2, 3, "output: expects 1 operand, got 0"},
        {"graph @g dims(B) {\n  %0 = output %0 {name=\"x\"}\n}\n", 2, 8, "op 'output' yields no value"},
        {"graph @g dims(B) {\n  input {name=\"x\"} : f32[B]\n}\n", 2, 3, "op 'input' yields a value"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[99999999999999999999]\n}\n", 2, 31, "expected a dimension, found an integer out of range"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[4294967296*4294967296]\n}\n", 2, 42, "dimension is too large"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[1,2,3,4,5,6,7,8,9]\n}\n", 2, 47, "more than 8 dimensions"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B]\n  output %0 {name=\"x\"} loc(\"f\":1)\n}\n", 3, 33, "expected ':', found ')'"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B]\n  output %0 {name=\"y\"}\n}\n}\n", 5, 1, "expected nothing after the end of the graph, found '}'"},
        {"graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B]\n  output %0 {name=\"y\"}\n", 4, 1, "unexpected end of file: missing '}'"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, NULL);
        assert_null(ir_parse(a, d, "s.ir", cases[i].text, strlen(cases[i].text)));
        const Diag *g = diag_first(d);
        assert_non_null(g);
        if (!strstr(g->msg, cases[i].msg) || g->loc.line != cases[i].line || g->loc.col != cases[i].col) {
            print_error("case %zu: got %d:%d: %s\n", i, g->loc.line, g->loc.col, g->msg);
            bad++;
        }
        arena_free(a);
    }
    assert_int_equal(bad, 0);
    /* a NUL byte inside a string and one between tokens: located errors, and
     * the line after each still parses (the output is found) */
    static const char nul[] = "graph @g dims(B) {\n  %0 = input {name=\"a\0b\"} : f32[B]\n"
                              "  %1 = input {name=\"c\"} : f32[B] \0\n  output %1 {name=\"y\"}\n}\n";
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    assert_null(ir_parse(a, d, "n.ir", nul, sizeof nul - 1));
    assert_int_equal(diag_error_count(d), 2);
    assert_int_equal(diag_first(d)->loc.line, 2);
    assert_int_equal(diag_first(d)->loc.col, 20);
    assert_string_equal(diag_first(d)->next->msg, "expected the end of the statement, found a NUL byte");
    assert_int_equal(diag_first(d)->next->loc.line, 3);
    assert_int_equal(diag_first(d)->next->loc.col, 34);
    arena_free(a);
}

static void test_names_that_need_quotes(void **state) {
    (void)state;
    static const char *names[][2] = {{"inf", "@\"inf\""}, {"nan", "@\"nan\""}, {"7b", "@\"7b\""},
                                     {"a b", "@\"a b\""}, {"infx", "@infx"}, {"v3.tiny", "@v3.tiny"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, NULL);
        IrGraph *g = ir_graph_new(a, names[i][0]);
        ir_graph_add_dim(g, "B");
        IrType t = {IR_DT_F32, 1, {ir_dim_sym(0)}};
        IrAttr in = {.name = "name", .kind = IR_ATTR_STR, .u.s = "x\x01\"{y}|\xff"};
        IrNode *x = ir_graph_add_node(g, d, IR_OP_INPUT, NULL, 0, &in, 1, &t, (SrcLoc){0}, NULL);
        IrAttr on = {.name = "name", .kind = IR_ATTR_STR, .u.s = "out"};
        assert_non_null(ir_graph_add_node(g, d, IR_OP_OUTPUT, &x, 1, &on, 1, NULL, (SrcLoc){0}, NULL));
        char *out = print(g);
        assert_non_null(strstr(out, names[i][1]));
        assert_non_null(strstr(out, "{name=\"x\\x01\\\"{y}|\xff\"}")); /* bytes >= 0x80 pass through */
        char *again = reprint(a, d, out);
        assert_string_equal(again, out);
        StrBuf dot;
        sb_init(&dot);
        ir_print_dot(g, &dot);
        /* quotes escaped, the control byte and the stray 0xff replaced; outputs carry no value number */
        assert_non_null(strstr(dot.data, "label=\"%0 input\\nx?\\\"{y}|?\\nf32[B]\""));
        assert_non_null(strstr(dot.data, "label=\"output\\nout\""));
        sb_free(&dot);
        free(out);
        free(again);
        arena_free(a);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_exact),
        cmocka_unit_test(test_ids_are_renumbered),
        cmocka_unit_test(test_parse_errors_located_and_recovered),
        cmocka_unit_test(test_garbage_and_truncation),
        cmocka_unit_test(test_dot),
        cmocka_unit_test(test_values_edge_cases),
        cmocka_unit_test(test_many_operands),
        cmocka_unit_test(test_no_cascade),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_names_that_need_quotes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
