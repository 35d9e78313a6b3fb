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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_exact),
        cmocka_unit_test(test_ids_are_renumbered),
        cmocka_unit_test(test_parse_errors_located_and_recovered),
        cmocka_unit_test(test_garbage_and_truncation),
        cmocka_unit_test(test_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
