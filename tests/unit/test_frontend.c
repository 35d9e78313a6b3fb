/* test_frontend.c — lexer, parser and lowering through fe_compile_string:
 * token locations, several syntax errors in one run, loops, ifs, fns,
 * tuples, weight patterns, stacked and shared weights, scopes, imports and
 * parameter binding from config.json and --set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "tests/unit/testutil.h"

typedef TuArena Fx;

static IrGraph *compile(Fx *f, const char *src, const FeOptions *o) {
    return fe_compile_string(f->a, f->d, "m.dsl", src, strlen(src), o);
}

/* The n-th diagnostic (0-based) of any level. */
static const Diag *diag_at(Fx *f, int n) {
    const Diag *g = diag_first(f->d);
    while (g && n--) g = g->next;
    return g;
}

static void expect_error(Fx *f, int n, int line, int col, const char *text) {
    const Diag *g = diag_at(f, n);
    assert_non_null(g);
    if (!strstr(g->msg, text)) fail_msg("diag %d: '%s' does not contain '%s'", n, g->msg, text);
    assert_int_equal(g->loc.line, line);
    assert_int_equal(g->loc.col, col);
}

static IrNode *find_weight(IrGraph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT && strcmp(ir_node_attr_str(g->nodes[i], "name", ""), name) == 0)
            return g->nodes[i];
    return NULL;
}

static int count_op(IrGraph *g, IrOp op) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) n += g->nodes[i]->op == op;
    return n;
}

static const char *TINY =
    "model tiny;\n"
    "param hidden: int = 64;\n"
    "param layers: int = 3;\n"
    "param eps: float = 1e-6 from \"rms_norm_eps\";\n"
    "dim B, S, T;\n"
    "input tokens: i32[B, S];\n"
    "fn mlp(x, l) {\n"
    "  weight up: bf16[128, hidden] = \"model.layers.{l}.mlp.up_proj.weight\";\n"
    "  weight down: bf16[hidden, 128] = \"model.layers.{l}.mlp.down_proj.weight\";\n"
    "  return linear(silu(linear(x, up)), down);\n"
    "}\n"
    "weight emb: bf16[1000, hidden] = \"model.embed_tokens.weight\";\n"
    "let h = embedding(emb, tokens);\n"
    "for l in 0 .. layers {\n"
    "  weight n: bf16[hidden] = \"model.layers.{l}.norm.weight\";\n"
    "  if l % 2 == 0 { h = h + mlp(rmsnorm(h, n, eps=eps), l); } else { h = h * 0.5; }\n"
    "}\n"
    "weight emb2: bf16[1000, hidden] = \"model.embed_tokens.weight\";\n"
    "output logits = cast(linear(h, emb2), f32);\n";

static void test_lower_tiny(void **state) {
    Fx *f = *state;
    IrGraph *g = compile(f, TINY, NULL);
    assert_non_null(g);
    assert_int_equal(ir_verify(g, f->d), 0);
    assert_string_equal(g->name, "tiny");
    assert_int_equal(g->ndims, 3);
    /* layers 0 and 2 get an MLP, layer 1 a scale: 4 linears + the head */
    assert_int_equal(count_op(g, IR_OP_LINEAR), 5);
    assert_non_null(find_weight(g, "model.layers.2.mlp.up_proj.weight"));
    assert_null(find_weight(g, "model.layers.1.mlp.up_proj.weight"));
    /* the same checkpoint name is one weight */
    int embs = 0;
    for (int i = 0; i < g->nnodes; i++)
        embs += g->nodes[i]->op == IR_OP_WEIGHT && !strcmp(ir_node_attr_str(g->nodes[i], "name", ""), "model.embed_tokens.weight");
    assert_int_equal(embs, 1);
    /* ops in mlp carry its scope and the call's location */
    IrNode *up = find_weight(g, "model.layers.0.mlp.up_proj.weight");
    assert_string_equal(up->scope, "mlp");
    assert_int_equal(up->loc.line, 8);
    assert_int_equal(up->loc.col, 3);
    IrNode *rms = NULL;
    for (int i = 0; i < g->nnodes && !rms; i++)
        if (g->nodes[i]->op == IR_OP_RMSNORM) rms = g->nodes[i];
    assert_null(rms->scope);
    assert_int_equal(rms->loc.line, 16);
    assert_int_equal(rms->loc.col, 31);
    assert_true(ir_node_attr_float(rms, "eps", 0) == 1e-6);
}

static void test_config_and_sets(void **state) {
    Fx *f = *state;
    char path[] = "/tmp/dscc_cfg_XXXXXX";
    int fd = mkstemp(path);
    const char *json = "{\"hidden\": 32, \"rms_norm_eps\": 1e-5, \"layers\": 1, \"unrelated\": [1,2]}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    FeSetting sets[] = {{"layers", "2"}};
    FeOptions o = {path, sets, 1};
    IrGraph *g = compile(f, TINY, &o);
    assert_non_null(g);
    assert_non_null(find_weight(g, "model.layers.1.norm.weight")); /* --set layers=2 beat the config's 1 */
    assert_null(find_weight(g, "model.layers.2.norm.weight"));
    assert_int_equal(find_weight(g, "model.embed_tokens.weight")->type.dims[1].coeff, 32);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_RMSNORM) assert_true(ir_node_attr_float(g->nodes[i], "eps", 0) == 1e-5);
    /* wrong JSON type, and an unknown --set name with a suggestion */
    FILE *fp = fopen(path, "w");
    fputs("{\"hidden\": \"wide\"}", fp);
    fclose(fp);
    FeSetting bad[] = {{"layerz", "2"}};
    FeOptions o2 = {path, bad, 1};
    assert_null(compile(f, TINY, &o2));
    assert_string_equal(diag_at(f, 0)->msg, "key 'hidden': expected an integer, got a string");
    assert_string_equal(diag_at(f, 0)->loc.file, path);
    assert_string_equal(diag_at(f, 1)->msg, "--set: no parameter named 'layerz'; did you mean 'layers'?");
    /* malformed JSON is located */
    fp = fopen(path, "w");
    fputs("{\n  \"hidden\": 32,\n  oops\n}", fp);
    fclose(fp);
    FeOptions o3 = {path, NULL, 0};
    assert_null(compile(f, TINY, &o3));
    assert_string_equal(diag_at(f, 2)->msg, "malformed JSON");
    assert_int_equal(diag_at(f, 2)->loc.line, 3);
    unlink(path);
}

static void test_absent_and_nested_keys(void **state) {
    Fx *f = *state;
    const char *src =
        "param kind: str = \"yarn\" from \"rope_scaling.type\" absent \"default\";\n"
        "param factor: float = 40 from \"rope_scaling.factor\", \"rope_parameters.factor\";\n"
        "dim B;\n"
        "input x: f32[B, 4];\n"
        "assert kind == \"{kind}\", \"interpolation\";\n"
        "if kind == \"yarn\" { output y = x * factor; } else { output z = x; }\n";
    IrGraph *g = compile(f, src, NULL); /* no config: defaults */
    assert_non_null(g);
    assert_true(g->nodes[1]->op == IR_OP_CONST && ir_node_attr_float(g->nodes[1], "value", 0) == 40.0);
    char path[] = "/tmp/dscc_cfg_XXXXXX";
    int fd = mkstemp(path);
    const char *json = "{\"rope_scaling\": null, \"rope_parameters\": {\"factor\": 8}}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    FeOptions o = {path, NULL, 0};
    g = compile(f, src, &o);
    assert_non_null(g);
    /* rope_scaling null: kind takes its `absent` value, so the else branch */
    assert_string_equal(ir_node_attr_str(g->nodes[g->nnodes - 1], "name", ""), "z");
    unlink(path);
}

static void test_tuples_split_stacked(void **state) {
    Fx *f = *state;
    const char *src =
        "dim B, S;\n"
        "input x: bf16[B, S, 12];\n"
        "input idx: i32[B*S, 2];\n"
        "fn two(t) { return t, t * 2; }\n"
        "let a, b = split(x, [4, 8], axis=-1);\n"
        "let p, q = two(a);\n"
        "let E = 3;\n"
        "for l in 5 .. 6 {\n"
        "  weight w[e: E]: bf16[7, 8] = \"layers.{l}.experts.{e}.w\";\n"
        "  let y = expert_linear(reshape(b, [B*S, 8]), w, idx);\n"
        "  output out = reshape(y, [B, S, 14]) + concat(q, q, q, slice(p, axis=2, start=0, len=2), axis=-1);\n"
        "}\n";
    IrGraph *g = compile(f, src, NULL);
    assert_non_null(g);
    assert_int_equal(ir_verify(g, f->d), 0);
    IrNode *w = find_weight(g, "layers.5.experts.{e}.w");
    assert_non_null(w);
    assert_string_equal(ir_node_attr_str(w, "stack", ""), "e");
    assert_int_equal(ir_node_attr_int(w, "count", 0), 3);
    assert_int_equal(w->type.rank, 3);
    assert_int_equal(w->type.dims[0].coeff, 3);
    assert_int_equal(count_op(g, IR_OP_SLICE), 3);
}

static void test_syntax_errors_recover(void **state) {
    Fx *f = *state;
    const char *src =
        "dim B;\n"
        "input x: f32[B, 4];\n"
        "let a = x +;\n"              /* 3 */
        "let b = silu(x);\n"
        "let c = = 2;\n"              /* 5 */
        "output y = b;\n";
    assert_null(compile(f, src, NULL));
    expect_error(f, 0, 3, 12, "unexpected ';'");
    expect_error(f, 1, 5, 9, "unexpected '='");
    assert_int_equal(diag_error_count(f->d), 2);
}

static void test_semantic_errors(void **state) {
    Fx *f = *state;
    const char *src =
        "dim B;\n"
        "input x: f32[B, 4];\n"
        "fn g(a, b) { return a; }\n"
        "weight w: f32[3, 5] = \"w\";\n"
        "let u = nope + 1;\n"                          /* 5: undefined */
        "let v = linear(x, w);\n"                      /* 6: shape */
        "let z = g(x);\n"                              /* 7: arity */
        "q = x;\n"                                     /* 8: assign to undefined */
        "assert 1 > 2, \"one is not more than two\";\n" /* 9 */
        "let r = softmax(x, axes=1);\n"                 /* 10: unknown kwarg */
        "output y = frobnicate(x);\n";                 /* 11: unknown op */
    assert_null(compile(f, src, NULL));
    expect_error(f, 0, 5, 9, "undefined name 'nope'");
    expect_error(f, 1, 6, 9, "linear: x f32[B,4] has 4 input features but w is f32[3,5]");
    expect_error(f, 2, 7, 9, "'g' takes 2 arguments, got 1");
    assert_int_equal(diag_at(f, 3)->level, DIAG_NOTE);
    expect_error(f, 4, 8, 1, "cannot assign to undefined variable 'q'");
    expect_error(f, 5, 9, 1, "assertion failed: one is not more than two");
    expect_error(f, 6, 10, 20, "'softmax' has no argument 'axes' (it takes: axis:i)");
    expect_error(f, 7, 11, 12, "unknown function or op 'frobnicate'");
}

static void test_errors_in_fn_have_call_notes(void **state) {
    Fx *f = *state;
    const char *src =
        "dim B;\n"
        "input x: f32[B, 4];\n"
        "fn inner(t) { return t + \"s\"; }\n"
        "fn outer(t) { return inner(t); }\n"
        "output y = outer(x);\n";
    assert_null(compile(f, src, NULL));
    expect_error(f, 0, 3, 24, "cannot apply '+' to a tensor and a string");
    const Diag *n1 = diag_at(f, 1), *n2 = diag_at(f, 2);
    assert_int_equal(n1->level, DIAG_NOTE);
    assert_string_equal(n1->msg, "in call to 'inner' here");
    assert_int_equal(n1->loc.line, 4);
    assert_string_equal(n2->msg, "in call to 'outer' here");
    assert_int_equal(n2->loc.line, 5);
    assert_int_equal(diag_error_count(f->d), 1); /* the poisoned value does not cascade */
}

static void test_recursion_and_lexer_errors(void **state) {
    Fx *f = *state;
    const char *src = "dim B;\ninput x: f32[B, 4];\nfn r(t) { return r(t); }\noutput y = r(x);\n";
    assert_null(compile(f, src, NULL));
    assert_non_null(strstr(diag_at(f, 0)->msg, "calls nested deeper than 64"));
    Fx g = {arena_new(), NULL};
    g.d = diag_new(g.a, NULL);
    const char *lex = "let a = 99999999999999999999;\nlet b = \"open\nlet c = 1 $ 2;\n/* never closed";
    assert_null(fe_compile_string(g.a, g.d, "l.dsl", lex, strlen(lex), NULL));
    Fx *gp = &g;
    expect_error(gp, 0, 1, 9, "does not fit in 64 bits");
    expect_error(gp, 1, 2, 9, "unterminated string literal");
    bool saw_char = false, saw_comment = false;
    for (const Diag *d = diag_first(g.d); d; d = d->next) {
        saw_char |= strstr(d->msg, "unexpected character '$'") && d->loc.line == 3 && d->loc.col == 11;
        saw_comment |= strstr(d->msg, "unterminated /* comment") && d->loc.line == 4 && d->loc.col == 1;
    }
    assert_true(saw_char);
    assert_true(saw_comment);
    arena_free(g.a);
}

static void test_import(void **state) {
    Fx *f = *state;
    char dir[] = "/tmp/dscc_imp_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/main.dsl", dir);
    snprintf(p2, sizeof p2, "%s/lib.dsl", dir);
    FILE *fp = fopen(p2, "w");
    fputs("import \"main.dsl\";\nfn twice(t) { return t + t; }\n", fp); /* a cycle back: imported once */
    fclose(fp);
    fp = fopen(p1, "w");
    fputs("import \"lib.dsl\";\nimport \"lib.dsl\";\ndim B;\ninput x: f32[B];\noutput y = twice(x);\n", fp);
    fclose(fp);
    IrGraph *g = fe_compile_file(f->a, f->d, p1, NULL);
    assert_non_null(g);
    assert_int_equal(count_op(g, IR_OP_ADD), 1);
    assert_string_equal(g->nodes[1]->scope, "twice");
    fp = fopen(p1, "w");
    fputs("import \"missing.dsl\";\n", fp);
    fclose(fp);
    assert_null(fe_compile_file(f->a, f->d, p1, NULL));
    assert_non_null(strstr(diag_at(f, 0)->msg, "cannot import \"missing.dsl\""));
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lower_tiny, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_config_and_sets, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_absent_and_nested_keys, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_tuples_split_stacked, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors_recover, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_semantic_errors, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_errors_in_fn_have_call_notes, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_recursion_and_lexer_errors, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_import, tu_arena_setup, tu_arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
