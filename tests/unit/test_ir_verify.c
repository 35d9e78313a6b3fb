/* test_ir_verify.c — the verifier on graphs broken by hand after building:
 * each kind of damage must be reported, once, with its message and the
 * node's location, and a sound graph must give no error at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "tests/unit/testutil.h"

typedef struct {
    Arena *a;
    DiagEngine *d;
    IrGraph *g;
    IrNode *x, *w, *y, *sm, *out; /* input, weight, linear, softmax, output */
} Fx;

#define C(v) ir_dim_const(v)

static SrcLoc at(int line) { return (SrcLoc){"v.dsl", line, 3}; }

static IrNode *named(Fx *f, IrOp op, const char *name, IrNode *operand, IrType t, int line) {
    IrAttr a = {.name = "name", .kind = IR_ATTR_STR, .u.s = name};
    return ir_graph_add_node(f->g, f->d, op, operand ? &operand : NULL, operand ? 1 : 0, &a, 1,
                             op == IR_OP_OUTPUT ? NULL : &t, at(line), NULL);
}

/* x:f32[B,8] -> linear(w:f32[4,8]) -> softmax -> output "y" */
static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, NULL);
    f->g = ir_graph_new(f->a, "v");
    IrDim B = ir_dim_sym(ir_graph_add_dim(f->g, "B"));
    f->x = named(f, IR_OP_INPUT, "x", NULL, (IrType){IR_DT_F32, 2, {B, C(8)}}, 1);
    f->w = named(f, IR_OP_WEIGHT, "w", NULL, (IrType){IR_DT_F32, 2, {C(4), C(8)}}, 2);
    IrNode *ops[2] = {f->x, f->w};
    f->y = ir_graph_add_node(f->g, f->d, IR_OP_LINEAR, ops, 2, NULL, 0, NULL, at(3), NULL);
    IrAttr ax = {.name = "axis", .kind = IR_ATTR_INT, .u.i = -1};
    f->sm = ir_graph_add_node(f->g, f->d, IR_OP_SOFTMAX, &f->y, 1, &ax, 1, NULL, at(4), NULL);
    f->out = named(f, IR_OP_OUTPUT, "y", f->sm, (IrType){0}, 5);
    assert_non_null(f->out);
    assert_int_equal(diag_error_count(f->d), 0);
    *state = f;
    return 0;
}

/* Runs the verifier; checks the count and that the only error says `msg`
 * at `line` of v.dsl. */
static void expect_one(Fx *f, const char *msg, int line) {
    int before = diag_error_count(f->d);
    int n = ir_verify(f->g, f->d);
    assert_int_equal(n, 1);
    assert_int_equal(diag_error_count(f->d), before + 1);
    const Diag *last = NULL;
    for (const Diag *g = diag_first(f->d); g; g = g->next)
        if (g->level == DIAG_ERROR) last = g;
    if (!strstr(last->msg, msg)) fail_msg("got: %s", last->msg);
    assert_int_equal(last->loc.line, line);
    if (line) assert_string_equal(last->loc.file, "v.dsl");
}

static void test_sound_graph(void **state) {
    Fx *f = *state;
    assert_int_equal(ir_verify(f->g, f->d), 0);
    assert_int_equal(diag_error_count(f->d), 0);
    /* a weight used under one name twice with one type is sharing, not an error */
    named(f, IR_OP_WEIGHT, "w", NULL, f->w->type, 6);
    assert_int_equal(ir_verify(f->g, f->d), 0);
}

static void test_dominance(void **state) {
    Fx *f = *state;
    /* move the softmax before the linear it reads */
    f->g->nodes[2] = f->sm;
    f->g->nodes[3] = f->y;
    f->sm->id = 2;
    f->y->id = 3;
    expect_one(f, "softmax: operand 0 is not defined before its use", 4);
}

static void test_operand_from_elsewhere(void **state) {
    Fx *f = *state;
    IrNode stray = *f->x; /* same id as x, but not the graph's node */
    f->y->ops[0] = &stray;
    expect_one(f, "linear: operand 0 is not defined before its use", 3);
}

static void test_wrong_recorded_type(void **state) {
    Fx *f = *state;
    f->y->type.dims[1] = C(5);
    /* the softmax after it now disagrees too: its operand gives [B,5] */
    assert_int_equal(ir_verify(f->g, f->d), 2);
    bool lin = false, sm = false;
    for (const Diag *g = diag_first(f->d); g; g = g->next) {
        lin |= strcmp(g->msg, "linear: result type is f32[B,5] but the operands give f32[B,4]") == 0 && g->loc.line == 3;
        sm |= strcmp(g->msg, "softmax: result type is f32[B,4] but the operands give f32[B,5]") == 0 && g->loc.line == 4;
    }
    assert_true(lin);
    assert_true(sm);
}

static void test_arity_and_attributes(void **state) {
    Fx *f = *state;
    f->y->nops = 1;
    expect_one(f, "linear: expects 2 operands, got 1", 3);
    f->y->nops = 2;
    f->sm->nattrs = 0;
    expect_one(f, "softmax: missing attribute 'axis'", 4);
    f->sm->nattrs = 1;
    f->sm->attrs[0].kind = IR_ATTR_BOOL;
    expect_one(f, "softmax: attribute 'axis' must be an int", 4);
    f->sm->attrs[0].kind = IR_ATTR_INT;
    f->sm->attrs[0].u.i = 2;
    expect_one(f, "softmax: axis 2 is out of range for rank 2", 4);
    f->sm->attrs[0].u.i = -1;
    f->out->ops[0] = f->out; /* an output reading an output: no value, and not earlier */
    expect_one(f, "output: operand 0 is not defined before its use", 5);
}

static void test_names(void **state) {
    Fx *f = *state;
    named(f, IR_OP_OUTPUT, "y", f->x, (IrType){0}, 7);
    named(f, IR_OP_INPUT, "x", NULL, f->x->type, 8);
    IrType other = {IR_DT_BF16, 2, {C(4), C(8)}};
    named(f, IR_OP_WEIGHT, "w", NULL, other, 9);
    assert_int_equal(ir_verify(f->g, f->d), 3);
    const char *want[][2] = {{"output: name \"y\" is used twice", "7"},
                             {"input: name \"x\" is used twice", "8"},
                             {"weight \"w\" is bf16[4,8] here but f32[4,8] elsewhere", "9"}};
    int found = 0;
    for (const Diag *g = diag_first(f->d); g; g = g->next)
        for (int i = 0; i < 3; i++)
            if (g->level == DIAG_ERROR && strcmp(g->msg, want[i][0]) == 0 && g->loc.line == atoi(want[i][1])) found++;
    assert_int_equal(found, 3);
    /* each points back at the first use with a note */
    int notes = 0;
    for (const Diag *g = diag_first(f->d); g; g = g->next) notes += g->level == DIAG_NOTE;
    assert_int_equal(notes, 3);
}

static void test_names_at_scale(void **state) {
    Fx *f = *state;
    /* thousands of distinct weights, then one clash with the very first */
    IrType t = {IR_DT_F32, 1, {C(8)}};
    for (int i = 0; i < 5000; i++) named(f, IR_OP_WEIGHT, arena_printf(f->a, "layer.%d.w", i), NULL, t, 10);
    assert_int_equal(ir_verify(f->g, f->d), 0);
    IrType t2 = {IR_DT_F32, 1, {C(9)}};
    named(f, IR_OP_WEIGHT, "layer.0.w", NULL, t2, 11);
    expect_one(f, "weight \"layer.0.w\" is f32[9] here but f32[8] elsewhere", 11);
}

static void test_no_output_and_ids(void **state) {
    Fx *f = *state;
    f->g->nnodes = 4; /* drop the output */
    int before = diag_error_count(f->d);
    assert_int_equal(ir_verify(f->g, f->d), 1);
    assert_int_equal(diag_error_count(f->d), before + 1);
    const Diag *g = diag_first(f->d);
    while (g->next) g = g->next;
    assert_string_equal(g->msg, "graph @v has no output");
    f->g->nnodes = 5;
    f->sm->id = 7; /* the output's operand can then not be placed either */
    assert_int_equal(ir_verify(f->g, f->d), 2);
    g = g->next;
    assert_string_equal(g->msg, "softmax: node id 7 does not match its position 3");
    assert_int_equal(g->loc.line, 4);
    assert_string_equal(g->next->msg, "output: operand 0 is not defined before its use");
}

static void test_schedule(void **state) {
    Fx *f = *state;
    f->y->stream = 1;
    f->sm->stream = 0; /* reads the linear of stream 1 without waiting */
    expect_one(f, "softmax on stream 0 reads linear of stream 1 without waiting for it", 4);
    f->sm->waits = &f->y;
    f->sm->nwaits = 1;
    assert_int_equal(ir_verify(f->g, f->d), 0);
    f->y->waits = &f->sm; /* waiting for a later op */
    f->y->nwaits = 1;
    expect_one(f, "linear: waits for softmax on a later op", 3);
}

/* Spans: first fit is the lowest offset that fits, removal frees a key,
 * overlap queries see exactly the spans meeting a range; checked against
 * a brute-force list over random operations. */
static void test_spans(void **state) {
    (void)state;
    IrSpans *t = ir_spans_new();
    enum { N = 600 };
    int64_t off[N], len[N];
    bool in[N] = {0};
    uint64_t rng = 12345;
    for (int step = 0; step < 4000; step++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((rng >> 33) % N);
        if (in[i]) {
            assert_true(ir_spans_remove(t, off[i], i));
            in[i] = false;
        } else {
            off[i] = (int64_t)((rng >> 20) % 5000), len[i] = 1 + (int64_t)((rng >> 45) % 300);
            assert_true(ir_spans_insert(t, off[i], len[i], i));
            in[i] = true;
        }
        int64_t need = 1 + (int64_t)((rng >> 10) % 300), lo = (int64_t)((rng >> 25) % 5000), hi = lo + 1 + (int64_t)((rng >> 40) % 200);
        int best = -1, meet = 0;
        for (int k = 0; k < N; k++) {
            if (!in[k]) continue;
            if (len[k] >= need && (best < 0 || off[k] < off[best] || (off[k] == off[best] && k < best))) best = k;
            meet += off[k] < hi && off[k] + len[k] > lo;
        }
        IrSpan s, hits[N];
        assert_int_equal(ir_spans_first_fit(t, need, &s), best >= 0);
        if (best >= 0) assert_int_equal(s.id, best);
        int got = ir_spans_overlapping(t, lo, hi, hits, N);
        assert_int_equal(got, meet);
        for (int k = 0; k < got; k++) assert_true(hits[k].off < hi && hits[k].off + hits[k].len > lo && in[hits[k].id]);
    }
    assert_false(ir_spans_remove(t, 99999, 0));
    ir_spans_free(t);
}

/* Happens-before: x on stream 0; a = f(x) on stream 1 waiting for x; b on
 * stream 0 does not wait, so a's accesses are not before b, and a's bytes
 * are released only after the stream-0 op that waits for a. */
static void test_order(void **state) {
    Fx *f = *state;
    f->y->stream = 0, f->sm->stream = 1;
    f->sm->waits = arena_alloc(f->a, sizeof(IrNode *));
    f->sm->waits[0] = f->y;
    f->sm->nwaits = 1;
    IrNode *b = ir_graph_add_node(f->g, f->d, IR_OP_EXP, &f->y, 1, NULL, 0, NULL, at(9), NULL);
    IrNode *ops[2] = {b, f->sm};
    IrNode *c = ir_graph_add_node(f->g, f->d, IR_OP_ADD, ops, 2, NULL, 0, NULL, at(10), NULL);
    b->stream = 0, c->stream = 0;
    c->waits = arena_alloc(f->a, sizeof(IrNode *));
    c->waits[0] = f->sm;
    c->nwaits = 1;
    IrOrder o;
    assert_true(ir_order_compute(f->g, NULL, f->d, &o));
    assert_int_equal(o.nstreams, 2);
    assert_true(ir_order_done_before(&o, f->x->id, b->id));
    assert_false(ir_order_done_before(&o, f->y->id, b->id)); /* b reads y, and sm is not waited for */
    assert_true(ir_order_done_before(&o, f->y->id, c->id));  /* c waits for sm, after b on stream 0 */
    assert_int_equal(o.release[f->x->id], f->y->id + 1);     /* one stream's rule: last reader + 1 */
    assert_int_equal(o.release[f->y->id], c->id);            /* not b + 1: stream 0 waits for sm only at c */
    assert_false(ir_order_done_before(&o, f->sm->id, c->id)); /* a graph result */
    ir_order_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sound_graph, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_dominance, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_operand_from_elsewhere, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_recorded_type, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_arity_and_attributes, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_names_at_scale, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_no_output_and_ids, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_schedule, setup, tu_arena_teardown),
        cmocka_unit_test(test_spans),
        cmocka_unit_test_setup_teardown(test_order, setup, tu_arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
