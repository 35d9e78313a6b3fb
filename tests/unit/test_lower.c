/* test_lower.c — the lowering, checked on the IR it produces: unrolled
 * loops, compile-time ifs, inlined fns with their interned scope paths and
 * source locations, tuples and split, weight name patterns, stacked and
 * shared weights, scalar/tensor operators, op keyword attributes, and the
 * located errors (with call-site notes, without cascades) for bad programs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "tests/unit/testutil.h"

typedef TuArena Fx;

static IrGraph *lower(Fx *f, const char *src) {
    return fe_compile_string(f->a, f->d, "l.dsl", src, strlen(src), NULL);
}

/* Lowers src, which must succeed; prints the diagnostics otherwise. */
static IrGraph *lower_ok(Fx *f, const char *src) {
    IrGraph *g = lower(f, src);
    for (const Diag *d = diag_first(f->d); d && !g; d = d->next)
        print_error("%d:%d: %s\n", d->loc.line, d->loc.col, d->msg);
    assert_non_null(g);
    return g;
}

static const Diag *diag_n(Fx *f, int n) {
    const Diag *g = diag_first(f->d);
    while (g && n--) g = g->next;
    if (!g) fail_msg("no diagnostic #%d", n);
    return g;
}

static void expect_diag(Fx *f, int n, DiagLevel lv, int line, int col, const char *text) {
    const Diag *g = diag_n(f, n);
    if (!strstr(g->msg, text)) fail_msg("diag %d: '%s' does not contain '%s'", n, g->msg, text);
    assert_int_equal(g->level, lv);
    assert_int_equal(g->loc.line, line);
    assert_int_equal(g->loc.col, col);
}

static int ndiags(Fx *f) {
    int n = 0;
    for (const Diag *d = diag_first(f->d); d; d = d->next) n++;
    return n;
}

static int count_op(IrGraph *g, IrOp op) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) n += g->nodes[i]->op == op;
    return n;
}

/* The k-th node (0-based) with op `op`, in program order. */
static IrNode *nth(IrGraph *g, IrOp op, int k) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == op && k-- == 0) return g->nodes[i];
    fail_msg("no %s #%d", ir_op_name(op), k);
    return NULL;
}

static IrNode *weight_named(IrGraph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == IR_OP_WEIGHT && strcmp(ir_node_attr_str(g->nodes[i], "name", ""), name) == 0)
            return g->nodes[i];
    return NULL;
}

static void expect_type(IrGraph *g, const IrType *t, const char *want) {
    StrBuf sb;
    sb_init(&sb);
    ir_type_print(g, t, &sb);
    if (strcmp(sb.data, want) != 0) fail_msg("type %s, expected %s", sb.data, want);
    sb_free(&sb);
}

static const char *PRELUDE = "dim B, S;\ninput x: bf16[B, S, 8];\n"; /* lines 1-2 */

static char *with_prelude(Fx *f, const char *body) { return arena_printf(f->a, "%s%s", PRELUDE, body); }

/* Loops unroll, ifs pick one branch at compile time, and a loop variable's
 * value reaches both weight names and arithmetic. */
static void test_loops_and_ifs(void **state) {
    Fx *f = *state;
    IrGraph *g = lower_ok(f, with_prelude(f,
        "let h = x;\n"
        "for i in 1 .. 2 + 3 {\n"
        "  weight w: bf16[8, 8] = \"l{i}.w\";\n"
        "  if i % 2 == 0 { h = linear(h, w); } else if i == 3 { h = h * (i * 2); } else { h = silu(h); }\n"
        "}\n"
        "for j in 5 .. 5 { h = neg(h); }\n"
        "output y = h;\n"));
    assert_int_equal(count_op(g, IR_OP_WEIGHT), 4);
    assert_non_null(weight_named(g, "l1.w"));
    assert_non_null(weight_named(g, "l4.w"));
    assert_null(weight_named(g, "l0.w"));
    assert_int_equal(count_op(g, IR_OP_LINEAR), 2); /* i = 2, 4 */
    assert_int_equal(count_op(g, IR_OP_SILU), 1);   /* i = 1 */
    assert_int_equal(count_op(g, IR_OP_NEG), 0);    /* empty range */
    /* i = 3: h * 6 with a rank-0 const of h's dtype */
    IrNode *mul = nth(g, IR_OP_MUL, 0);
    IrNode *c = mul->ops[1];
    assert_int_equal(c->op, IR_OP_CONST);
    assert_float_equal(ir_node_attr_float(c, "value", 0), 6.0, 0);
    assert_int_equal(c->type.dtype, IR_DT_BF16);
    assert_int_equal(c->type.rank, 0);
    /* program order: silu (i=1) before the first linear (i=2) before mul (i=3) */
    assert_true(nth(g, IR_OP_SILU, 0)->id < nth(g, IR_OP_LINEAR, 0)->id);
    assert_true(nth(g, IR_OP_LINEAR, 0)->id < mul->id);
    IrNode *out = nth(g, IR_OP_OUTPUT, 0);
    assert_string_equal(ir_node_attr_str(out, "name", ""), "y");
    assert_ptr_equal(out->ops[0], nth(g, IR_OP_LINEAR, 1));
}

/* Fns are inlined per call; nodes carry the call path as an interned scope
 * and the location of the expression that made them. */
static void test_fns_scopes_and_locations(void **state) {
    Fx *f = *state;
    IrGraph *g = lower_ok(f, with_prelude(f,
        "fn inner(t) { return sigmoid(t); }\n"           /* 3 */
        "fn outer(t, k) {\n"                             /* 4 */
        "  let u = inner(t) + k;\n"                      /* 5 */
        "  return u, inner(u);\n"                        /* 6 */
        "}\n"
        "let a, b = outer(x, 2);\n"                      /* 8 */
        "let c, d = outer(b, 3.5);\n"                    /* 9 */
        "output y = inner(d) - a;\n"));                  /* 10 */
    assert_int_equal(count_op(g, IR_OP_SIGMOID), 5);
    IrNode *s0 = nth(g, IR_OP_SIGMOID, 0), *s1 = nth(g, IR_OP_SIGMOID, 1), *s2 = nth(g, IR_OP_SIGMOID, 2);
    IrNode *s4 = nth(g, IR_OP_SIGMOID, 4);
    assert_string_equal(s0->scope, "outer/inner");
    assert_ptr_equal(s0->scope, s1->scope); /* interned: one pointer per path */
    assert_ptr_equal(s0->scope, s2->scope);
    assert_string_equal(s4->scope, "inner");
    assert_string_equal(nth(g, IR_OP_ADD, 0)->scope, "outer");
    assert_null(nth(g, IR_OP_SUB, 0)->scope);
    assert_null(nth(g, IR_OP_INPUT, 0)->scope);
    /* locations: the sigmoid call in inner's body, the '+' in outer, the '-' at top */
    assert_string_equal(s0->loc.file, "l.dsl");
    assert_int_equal(s0->loc.line, 3);
    assert_int_equal(s0->loc.col, 22);
    assert_int_equal(nth(g, IR_OP_ADD, 0)->loc.line, 5);
    assert_int_equal(nth(g, IR_OP_ADD, 0)->loc.col, 20);
    assert_int_equal(nth(g, IR_OP_SUB, 0)->loc.line, 10);
    assert_int_equal(nth(g, IR_OP_SUB, 0)->loc.col, 21);
    assert_int_equal(nth(g, IR_OP_INPUT, 0)->loc.line, 2);
    /* a float argument makes a float const; the tuple's parts are wired right */
    IrNode *add1 = nth(g, IR_OP_ADD, 1);
    assert_float_equal(ir_node_attr_float(add1->ops[1], "value", 0), 3.5, 0);
    assert_ptr_equal(add1->ops[0]->ops[0], nth(g, IR_OP_SIGMOID, 1)); /* b = inner(u) of the first call */
    IrNode *sub = nth(g, IR_OP_SUB, 0);
    assert_ptr_equal(sub->ops[1], nth(g, IR_OP_ADD, 0)); /* a */
    assert_ptr_equal(sub->ops[0], s4);
}

static void test_weights(void **state) {
    Fx *f = *state;
    IrGraph *g = lower_ok(f, with_prelude(f,
        "param E: int = 4;\n"                                                        /* 3 */
        "param pre: str = \"model\";\n"
        "fn proj(t, l) {\n"
        "  weight w: bf16[16, 8] = \"{pre}.layers.{l}.q\";\n"                        /* 6 */
        "  return linear(t, w);\n"
        "}\n"
        "let l = 7;\n"
        "weight up[e: E * 2]: fp8e4m3[32, 8] = \"{pre}.layers.{l}.experts.{e}.up\";\n" /* 10 */
        "weight tied: bf16[16, 8] = \"{pre}.layers.7.q\";\n"                         /* 11 */
        "weight lit: f32[2] = \"a{{b}}c\";\n"
        "output y = proj(x, l) + linear(x, tied);\n"));
    IrNode *up = weight_named(g, "model.layers.7.experts.{e}.up");
    assert_non_null(up);
    assert_string_equal(ir_node_attr_str(up, "stack", ""), "e");
    assert_int_equal(ir_node_attr_int(up, "count", 0), 8);
    expect_type(g, &up->type, "fp8e4m3[8,32,8]");
    /* the same resolved name with the same type is one node */
    IrNode *q = weight_named(g, "model.layers.7.q");
    assert_non_null(q);
    assert_int_equal(q->loc.line, 11); /* `tied` (line 11) runs before proj's body */
    assert_int_equal(count_op(g, IR_OP_WEIGHT), 3);
    IrNode *l0 = nth(g, IR_OP_LINEAR, 0), *l1 = nth(g, IR_OP_LINEAR, 1);
    assert_ptr_equal(l0->ops[1], q);
    assert_ptr_equal(l1->ops[1], q);
    assert_non_null(weight_named(g, "a{b}c")); /* {{ }} are literal braces */
    assert_null(ir_node_attr(q, "stack"));
}

static void test_split_concat_builtins(void **state) {
    Fx *f = *state;
    IrGraph *g = lower_ok(f, with_prelude(f,
        "let a, b, c = split(x, [2, 4, 2], axis=-1);\n"                   /* 3 */
        "let m = concat(c, a, b, axis=2);\n"
        "let n = max(a, c);\n"
        "let k = max(3, 7) + min(2.5, 1) + int(7.9) + pow(2, 10) + size(x, -1) + rank(x);\n"
        "assert k == 7 + 1 + 7 + 1024 + 8 + 3, \"scalar builtins\";\n"
        "assert sqrt(16) == 4.0 && exp(0) == 1.0 && ln(1) == 0.0, \"math\";\n"
        "assert float(3) / 2 == 1.5 && 7 / 7 == 1 && -7 % 3 == -1, \"division\";\n"
        "let r = reshape(cast(m, f32), [B * S, 8]);\n"
        "let t = softmax(exp(r)) * sqrt(r);\n"
        "weight nw: f32[8] = \"norm\";\n"
        "output y = rmsnorm(t, nw, eps=1);\n"));
    assert_int_equal(count_op(g, IR_OP_SLICE), 3);
    int64_t starts[] = {0, 2, 6}, lens[] = {2, 4, 2};
    for (int i = 0; i < 3; i++) {
        IrNode *s = nth(g, IR_OP_SLICE, i);
        assert_int_equal(ir_node_attr_int(s, "axis", 0), -1);
        assert_int_equal(ir_node_attr_int(s, "start", -9), starts[i]);
        assert_int_equal(ir_node_attr_int(s, "len", -9), lens[i]);
    }
    IrNode *cat = nth(g, IR_OP_CONCAT, 0);
    assert_int_equal(cat->nops, 3);
    assert_ptr_equal(cat->ops[0], nth(g, IR_OP_SLICE, 2));
    expect_type(g, &cat->type, "bf16[B,S,8]");
    assert_int_equal(count_op(g, IR_OP_MAX), 1);
    expect_type(g, &nth(g, IR_OP_CAST, 0)->type, "f32[B,S,8]");
    expect_type(g, &nth(g, IR_OP_RESHAPE, 0)->type, "f32[B*S,8]");
    assert_int_equal(ir_node_attr_int(nth(g, IR_OP_SOFTMAX, 0), "axis", 0), -1); /* the DSL default */
    assert_int_equal(count_op(g, IR_OP_EXP), 1);
    assert_int_equal(count_op(g, IR_OP_SQRT), 1);
    /* an int given for a float attribute is converted */
    const IrAttr *eps = ir_node_attr(nth(g, IR_OP_RMSNORM, 0), "eps");
    assert_int_equal(eps->kind, IR_ATTR_FLOAT);
    assert_float_equal(eps->u.f, 1.0, 0);
}

/* `input` is an ordinary statement: inside a false `if` it does not exist. */
static void test_conditional_input_and_model_name(void **state) {
    Fx *f = *state;
    IrGraph *g = lower_ok(f, "model named;\nparam mtp: bool = false;\ndim B;\ninput a: i32[B];\n"
                             "if mtp { input b: i32[B]; }\noutput o = a;\n");
    assert_string_equal(g->name, "named");
    assert_int_equal(count_op(g, IR_OP_INPUT), 1);
    assert_int_equal(g->ndims, 1);
    assert_string_equal(g->dim_names[0], "B");
    Fx f2 = {arena_new(), NULL};
    f2.d = diag_new(f2.a, NULL);
    const char *src = "dim B;\ninput a: i32[B];\noutput o = a;\n";
    IrGraph *g2 = fe_compile_string(f2.a, f2.d, "dir/file.name.dsl", src, strlen(src), NULL);
    assert_non_null(g2);
    assert_string_equal(g2->name, "file.name"); /* default name: the file stem */
    arena_free(f2.a);
}

/* Errors are located at the offending expression; a poisoned value does not
 * produce follow-up errors; independent errors are all reported. */
static void test_errors_located(void **state) {
    Fx *f = *state;
    assert_null(lower(f, with_prelude(f,
        "let a = nosuch + 1;\n"                          /* 3: undefined */
        "let b = a * x;\n"                               /* 4: poisoned, silent */
        "let c = x + \"s\";\n"                           /* 5 */
        "let d = 7 / 2;\n"                               /* 6 */
        "undefined_var = x;\n"                           /* 7 */
        "let e = frobnicate(x);\n"                       /* 8 */
        "let g = rmsnorm(x, x, epsilon=1e-6);\n"         /* 9 */
        "let h = silu(x, x);\n"                          /* 10 */
        "weight w: bf16[8, 2.5] = \"w\";\n"              /* 11 */
        "for i in 0 .. S { }\n"                          /* 12 */
        "assert 1 > 2, \"one is not above {S}\";\n"      /* 13: S is a dim: interpolation error */
        "assert 1 > 2, \"one is small\";\n"              /* 14 */
        "let q = \"{missing}\";\n"                       /* 15 */
        "let x = x;\n"                                   /* 16 */
        "output y = linear(x, x);\n")));                 /* 17: shape error from the builder */
    expect_diag(f, 0, DIAG_ERROR, 3, 9, "undefined name 'nosuch'");
    expect_diag(f, 1, DIAG_ERROR, 5, 11, "cannot apply '+' to a tensor and a string");
    expect_diag(f, 2, DIAG_ERROR, 6, 11, "7 / 2 is not an integer");
    expect_diag(f, 3, DIAG_ERROR, 7, 1, "cannot assign to undefined variable 'undefined_var'");
    expect_diag(f, 4, DIAG_ERROR, 8, 9, "unknown function or op 'frobnicate'");
    expect_diag(f, 5, DIAG_ERROR, 9, 23, "'rmsnorm' has no argument 'epsilon' (it takes: eps:f)");
    expect_diag(f, 6, DIAG_ERROR, 10, 9, "silu");
    expect_diag(f, 7, DIAG_ERROR, 11, 19, "a dimension must be a non-negative int or a product of dims, got a float");
    expect_diag(f, 8, DIAG_ERROR, 12, 15, "a loop bound must be an int, got a dimension");
    expect_diag(f, 9, DIAG_ERROR, 13, 15, "cannot put a dimension ('S') into a string");
    expect_diag(f, 10, DIAG_ERROR, 14, 1, "assertion failed: one is small");
    expect_diag(f, 11, DIAG_ERROR, 15, 9, "undefined name 'missing'");
    expect_diag(f, 12, DIAG_ERROR, 16, 5, "'x' is already defined in this block");
    expect_diag(f, 13, DIAG_ERROR, 17, 12, "linear");
    assert_int_equal(diag_error_count(f->d), 14);
}

/* An error inside a fn body gets a note at every call site on the stack. */
static void test_call_notes_arity_recursion(void **state) {
    Fx *f = *state;
    assert_null(lower(f, with_prelude(f,
        "fn bad(t) { return t + nope; }\n"               /* 3 */
        "fn mid(t) { return bad(t); }\n"                 /* 4 */
        "let a = mid(x);\n"                              /* 5 */
        "let b = mid(x, x);\n"                           /* 6 */
        "fn rec(t) { return rec(t); }\n"                 /* 7 */
        "let c = rec(x);\n")));                          /* 8 */
    expect_diag(f, 0, DIAG_ERROR, 3, 24, "undefined name 'nope'");
    expect_diag(f, 1, DIAG_NOTE, 4, 20, "in call to 'bad' here");
    expect_diag(f, 2, DIAG_NOTE, 5, 9, "in call to 'mid' here");
    expect_diag(f, 3, DIAG_ERROR, 6, 9, "'mid' takes 1 argument, got 2");
    expect_diag(f, 4, DIAG_NOTE, 4, 1, "'mid' is defined here");
    expect_diag(f, 5, DIAG_ERROR, 7, 20, "calls nested deeper than 64 (is 'rec' recursive?)");
    /* one error for the whole recursion, with its 64 call-site notes */
    assert_int_equal(diag_error_count(f->d), 3);
    assert_int_equal(ndiags(f), 6 + 64);
    expect_diag(f, 6 + 63, DIAG_NOTE, 8, 9, "in call to 'rec' here");
}

static void test_weight_type_conflict(void **state) {
    Fx *f = *state;
    assert_null(lower(f, with_prelude(f,
        "weight a: bf16[8, 8] = \"shared\";\n"          /* 3 */
        "weight b: bf16[8, 4] = \"shared\";\n"          /* 4 */
        "weight s[e: 2]: bf16[8] = \"no.index\";\n"     /* 5 */
        "output y = linear(x, a);\n")));
    expect_diag(f, 0, DIAG_ERROR, 4, 1, "weight \"shared\" declared as bf16[8,4] here but as bf16[8,8] before");
    expect_diag(f, 1, DIAG_NOTE, 3, 1, "first declared here");
    expect_diag(f, 2, DIAG_ERROR, 5, 27, "does not use its index {e}");
}

/* Imports resolve relative to the importing file; a diamond reads the shared
 * file once; a missing file is a located error. */
static void test_imports(void **state) {
    Fx *f = *state;
    char dir[] = "/tmp/dscc_lower_XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *files[][2] = {
        {"sub", NULL},
        {"sub/common.dsl", "fn act(t) { return silu(t); }\n"},
        {"sub/left.dsl", "import \"common.dsl\";\nfn left(t) { return act(t); }\n"},
        {"right.dsl", "import \"sub/common.dsl\";\nfn right(t) { return act(t) * 2; }\n"},
        {"main.dsl", "import \"sub/left.dsl\";\nimport \"right.dsl\";\ndim B;\ninput x: f32[B];\n"
                     "output y = left(x) + right(x);\n"},
        {"broken.dsl", "dim B;\n\nimport \"sub/nothere.dsl\";\n"},
    };
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
        if (!files[i][1]) {
            assert_int_equal(mkdir(path, 0700), 0);
            continue;
        }
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(files[i][1], fp);
        fclose(fp);
    }
    snprintf(path, sizeof path, "%s/main.dsl", dir);
    IrGraph *g = fe_compile_file(f->a, f->d, path, NULL);
    assert_non_null(g); /* `act` defined once although imported twice */
    assert_int_equal(count_op(g, IR_OP_SILU), 2);
    assert_string_equal(nth(g, IR_OP_SILU, 0)->scope, "left/act");
    assert_non_null(strstr(nth(g, IR_OP_SILU, 0)->loc.file, "sub/common.dsl"));
    snprintf(path, sizeof path, "%s/broken.dsl", dir);
    assert_null(fe_compile_file(f->a, f->d, path, NULL));
    expect_diag(f, 0, DIAG_ERROR, 3, 1, "cannot import \"sub/nothere.dsl\": no such file");
    for (int i = (int)(sizeof files / sizeof files[0]) - 1; i >= 0; i--) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
        assert_int_equal(files[i][1] ? unlink(path) : rmdir(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loops_and_ifs, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_fns_scopes_and_locations, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_weights, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_split_concat_builtins, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_conditional_input_and_model_name, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_errors_located, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_call_notes_arity_recursion, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_weight_type_conflict, tu_arena_setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_imports, tu_arena_setup, tu_arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
