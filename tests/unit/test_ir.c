/* test_ir.c — IR builder, dims, shape rules (every op, and their errors),
 * verifier. */
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
    int B, S, T;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, NULL);
    f->g = ir_graph_new(f->a, "t");
    f->B = ir_graph_add_dim(f->g, "B");
    f->S = ir_graph_add_dim(f->g, "S");
    f->T = ir_graph_add_dim(f->g, "T");
    *state = f;
    return 0;
}

static IrType ty(IrDType dt, int rank, ...) {
    IrType t = {.dtype = dt, .rank = rank};
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++) t.dims[i] = va_arg(ap, IrDim);
    va_end(ap);
    return t;
}
#define C(v) ir_dim_const(v)

static IrNode *input(Fx *f, const char *name, IrType t) {
    IrAttr a = {.name = "name", .kind = IR_ATTR_STR, .u.s = name};
    return ir_graph_add_node(f->g, f->d, IR_OP_INPUT, NULL, 0, &a, 1, &t, (SrcLoc){0}, NULL);
}

static IrNode *weight(Fx *f, const char *name, IrType t) {
    IrAttr a = {.name = "name", .kind = IR_ATTR_STR, .u.s = name};
    return ir_graph_add_node(f->g, f->d, IR_OP_WEIGHT, NULL, 0, &a, 1, &t, (SrcLoc){0}, NULL);
}

static IrNode *op(Fx *f, IrOp o, int nops, IrNode **ops, int nattrs, IrAttr *attrs) {
    return ir_graph_add_node(f->g, f->d, o, ops, nops, attrs, nattrs, NULL, (SrcLoc){"m.dsl", 3, 4}, NULL);
}

static char *type_text(Fx *f, const IrType *t) {
    StrBuf sb;
    sb_init(&sb);
    ir_type_print(f->g, t, &sb);
    char *s = arena_strdup(f->a, sb.data);
    sb_free(&sb);
    return s;
}

static bool has_error(Fx *f, const char *msg) {
    for (const Diag *g = diag_first(f->d); g; g = g->next)
        if (g->level == DIAG_ERROR && strcmp(g->msg, msg) == 0) return true;
    return false;
}

static void test_dims(void **state) {
    Fx *f = *state;
    IrDim bs = ir_dim_mul(ir_dim_sym(f->B), ir_dim_sym(f->S));
    IrDim eight_bs = ir_dim_mul(C(8), bs), q;
    assert_true(ir_dim_div(eight_bs, ir_dim_sym(f->S), &q));
    assert_true(ir_dim_eq(q, ir_dim_mul(C(8), ir_dim_sym(f->B))));
    assert_false(ir_dim_div(ir_dim_sym(f->B), ir_dim_sym(f->S), &q));
    assert_false(ir_dim_div(C(7), C(2), &q));
    int64_t vals[IR_MAX_DIM_SYMS] = {3, 5, 7};
    assert_int_equal(ir_dim_eval(eight_bs, vals), 120);
    IrType t = ty(IR_DT_BF16, 3, ir_dim_sym(f->B), eight_bs, C(7168));
    assert_string_equal(type_text(f, &t), "bf16[B,8*B*S,7168]");
    IrType s = ty(IR_DT_F32, 0);
    assert_string_equal(type_text(f, &s), "f32[]");
    assert_int_equal(ir_graph_add_dim(f->g, "B"), -1);
}

/* Checked element counts and byte sizes, and the shape rules' limits. */
static void test_sizes(void **state) {
    Fx *f = *state;
    IrDim bs = ir_dim_mul(ir_dim_sym(f->B), ir_dim_sym(f->S));
    IrType t = ty(IR_DT_BF16, 3, bs, C(7), C(3));
    int64_t vals[IR_MAX_DIM_SYMS] = {3, 5, 7}, n, b;
    assert_true(ir_type_numel_at(&t, vals, &n));
    assert_int_equal(n, 3 * 5 * 7 * 3);
    assert_true(ir_type_bytes_at(&t, vals, &b));
    assert_int_equal(b, 2 * 3 * 5 * 7 * 3);
    assert_true(ir_type_numel_at(&t, NULL, &n)); /* symbols at 1: the static part */
    assert_int_equal(n, 21);
    /* 2^62 x 4 elements, and 2^61 elements of 4 bytes, overflow int64 */
    IrType big = ty(IR_DT_F32, 2, C((int64_t)1 << 62), C(4));
    assert_false(ir_type_numel_at(&big, NULL, &n));
    assert_int_equal(n, INT64_MAX);
    big.dims[1] = C(1);
    assert_true(ir_type_numel_at(&big, NULL, &n));
    assert_false(ir_type_bytes_at(&big, NULL, &b));
    /* a symbol bound large enough overflows at run time only */
    int64_t huge[IR_MAX_DIM_SYMS] = {(int64_t)1 << 40, (int64_t)1 << 40};
    assert_true(ir_type_numel_at(&t, vals, &n));
    assert_false(ir_type_numel_at(&t, huge, &n));
    IrType neg = ty(IR_DT_F32, 1, C(-1));
    assert_false(ir_type_numel_at(&neg, NULL, &n));
    /* the shape rules: no empty axis, at most 2^60 bytes */
    assert_null(weight(f, "w0", ty(IR_DT_F32, 2, C(0), C(4))));
    assert_string_equal(tu_last_error(f->d), "weight: f32[0,4] has an empty axis 0; every extent must be at least 1");
    assert_non_null(weight(f, "w1", ty(IR_DT_FP8E4M3, 1, C((int64_t)1 << 60))));
    assert_null(weight(f, "w2", ty(IR_DT_BF16, 1, C((int64_t)1 << 60))));
    assert_string_equal(tu_last_error(f->d), "weight: bf16[1152921504606846976] is too large: more than 2^60 bytes");
    IrNode *x = input(f, "x", ty(IR_DT_FP8E4M3, 2, ir_dim_sym(f->B), C((int64_t)1 << 59)));
    IrAttr ax = {.name = "axis", .kind = IR_ATTR_INT, .u.i = 1};
    IrNode *two[2] = {x, x}, *many[16];
    assert_non_null(op(f, IR_OP_CONCAT, 2, two, 1, &ax));
    for (int i = 0; i < 16; i++) many[i] = x;
    assert_null(op(f, IR_OP_CONCAT, 16, many, 1, &ax));
    assert_string_equal(tu_last_error(f->d), "concat: the concat axis overflows int64");
}

static void test_linear_and_errors(void **state) {
    Fx *f = *state;
    IrNode *x = input(f, "x", ty(IR_DT_BF16, 3, ir_dim_sym(f->B), ir_dim_sym(f->S), C(64)));
    IrNode *w = weight(f, "w", ty(IR_DT_BF16, 2, C(32), C(64)));
    IrNode *ops[2] = {x, w};
    IrNode *y = op(f, IR_OP_LINEAR, 2, ops, 0, NULL);
    assert_non_null(y);
    assert_string_equal(type_text(f, &y->type), "bf16[B,S,32]");
    IrNode *bad = weight(f, "w2", ty(IR_DT_BF16, 2, C(32), C(60)));
    IrNode *ops2[2] = {x, bad};
    assert_null(op(f, IR_OP_LINEAR, 2, ops2, 0, NULL));
    assert_string_equal(tu_last_error(f->d), "linear: x bf16[B,S,64] has 64 input features but w is bf16[32,60]");
    assert_int_equal(diag_first(f->d)->loc.line, 3);
    /* arity */
    assert_null(op(f, IR_OP_LINEAR, 1, ops, 0, NULL));
    assert_string_equal(tu_last_error(f->d), "linear: expects 2 operands, got 1");
    int n = f->g->nnodes;
    assert_int_equal(n, 4); /* failed nodes are not appended */
}

static void test_elementwise_broadcast(void **state) {
    Fx *f = *state;
    IrNode *a = input(f, "a", ty(IR_DT_F32, 3, C(4), C(1), C(5)));
    IrNode *b = input(f, "b", ty(IR_DT_F32, 2, C(3), C(1)));
    IrNode *ops[2] = {a, b};
    IrNode *y = op(f, IR_OP_MUL, 2, ops, 0, NULL);
    assert_non_null(y);
    assert_string_equal(type_text(f, &y->type), "f32[4,3,5]");
    IrNode *c = input(f, "c", ty(IR_DT_F32, 1, C(4)));
    IrNode *ops2[2] = {a, c};
    assert_null(op(f, IR_OP_ADD, 2, ops2, 0, NULL));
    assert_non_null(strstr(tu_last_error(f->d), "do not broadcast"));
    /* a rank-0 const adopts the tensor's dtype */
    IrType st = ty(IR_DT_BF16, 0);
    IrAttr v = {.name = "value", .kind = IR_ATTR_INT, .u.i = 2};
    IrNode *k = ir_graph_add_node(f->g, f->d, IR_OP_CONST, NULL, 0, &v, 1, &st, (SrcLoc){0}, NULL);
    assert_int_equal(k->attrs[0].kind, IR_ATTR_FLOAT); /* int widened to the schema's float */
    IrNode *ops3[2] = {a, k};
    assert_int_equal(op(f, IR_OP_SUB, 2, ops3, 0, NULL)->type.dtype, IR_DT_F32);
}

static void test_attention_cache_rope(void **state) {
    Fx *f = *state;
    IrDim B = ir_dim_sym(f->B), S = ir_dim_sym(f->S), T = ir_dim_sym(f->T);
    IrNode *q = input(f, "q", ty(IR_DT_BF16, 4, B, S, C(8), C(96)));
    IrNode *pos = input(f, "pos", ty(IR_DT_I32, 2, B, S));
    IrAttr ra[2] = {{.name = "theta", .kind = IR_ATTR_FLOAT, .u.f = 1e4}, {.name = "interleave", .kind = IR_ATTR_BOOL, .u.b = true}};
    IrNode *ro[2] = {q, pos};
    assert_non_null(op(f, IR_OP_ROPE, 2, ro, 2, ra));
    IrNode *kv = input(f, "kv", ty(IR_DT_BF16, 4, B, S, C(1), C(96)));
    IrAttr cn = {.name = "name", .kind = IR_ATTR_STR, .u.s = "c"};
    IrNode *cache = op(f, IR_OP_KV_CACHE, 1, &kv, 1, &cn);
    assert_string_equal(type_text(f, &cache->type), "bf16[B,T,1,96]");
    IrAttr sl[3] = {{.name = "axis", .kind = IR_ATTR_INT, .u.i = -1},
                    {.name = "start", .kind = IR_ATTR_INT, .u.i = 0},
                    {.name = "len", .kind = IR_ATTR_INT, .u.i = 64}};
    IrNode *v = op(f, IR_OP_SLICE, 1, &cache, 3, sl);
    IrAttr at[2] = {{.name = "scale", .kind = IR_ATTR_FLOAT, .u.f = 0.1}, {.name = "causal", .kind = IR_ATTR_BOOL, .u.b = true}};
    IrNode *ao[3] = {q, cache, v};
    IrNode *o = op(f, IR_OP_ATTENTION, 3, ao, 2, at);
    assert_string_equal(type_text(f, &o->type), "bf16[B,S,8,64]");
    (void)T;
    /* heads must divide */
    IrNode *k3 = input(f, "k3", ty(IR_DT_BF16, 4, B, T, C(3), C(96)));
    IrNode *ao2[3] = {q, k3, k3};
    assert_null(op(f, IR_OP_ATTENTION, 3, ao2, 2, at));
    assert_non_null(strstr(tu_last_error(f->d), "not a multiple of kv heads 3"));
    /* missing attribute */
    assert_null(op(f, IR_OP_ATTENTION, 3, ao, 1, at));
    assert_string_equal(tu_last_error(f->d), "attention: missing attribute 'causal'");
}

static void test_routing_and_layout(void **state) {
    Fx *f = *state;
    IrDim N = ir_dim_mul(ir_dim_sym(f->B), ir_dim_sym(f->S));
    IrNode *s = input(f, "s", ty(IR_DT_F32, 2, N, C(256)));
    IrAttr ga[4] = {{.name = "k", .kind = IR_ATTR_INT, .u.i = 8}, {.name = "groups", .kind = IR_ATTR_INT, .u.i = 8},
                    {.name = "topk_groups", .kind = IR_ATTR_INT, .u.i = 4}, {.name = "group_top", .kind = IR_ATTR_INT, .u.i = 2}};
    IrNode *idx = op(f, IR_OP_GROUP_TOPK, 1, &s, 4, ga);
    assert_string_equal(type_text(f, &idx->type), "i32[B*S,8]");
    ga[0].u.i = 129; /* more than 4 groups of 32 */
    assert_null(op(f, IR_OP_GROUP_TOPK, 1, &s, 4, ga));
    assert_non_null(strstr(tu_last_error(f->d), "k=129 must be in 1..128"));
    IrAttr gx = {.name = "axis", .kind = IR_ATTR_INT, .u.i = -1};
    IrNode *go[2] = {s, idx};
    IrNode *w = op(f, IR_OP_GATHER, 2, go, 1, &gx);
    assert_string_equal(type_text(f, &w->type), "f32[B*S,8]");
    IrNode *x = input(f, "x", ty(IR_DT_BF16, 2, N, C(64)));
    IrNode *we = weight(f, "we", ty(IR_DT_BF16, 3, C(256), C(16), C(64)));
    IrNode *eo[3] = {x, we, idx};
    IrNode *y = op(f, IR_OP_EXPERT_LINEAR, 3, eo, 0, NULL);
    assert_string_equal(type_text(f, &y->type), "bf16[B*S,8,16]");
    /* reshape keeps the element count symbolically */
    IrType rt = ty(IR_DT_BF16, 3, ir_dim_sym(f->B), ir_dim_sym(f->S), C(128));
    IrNode *r = ir_graph_add_node(f->g, f->d, IR_OP_RESHAPE, &y, 1, NULL, 0, &rt, (SrcLoc){0}, NULL);
    assert_string_equal(type_text(f, &r->type), "bf16[B,S,128]");
    IrType bad = ty(IR_DT_BF16, 2, ir_dim_sym(f->B), C(128));
    assert_null(ir_graph_add_node(f->g, f->d, IR_OP_RESHAPE, &y, 1, NULL, 0, &bad, (SrcLoc){0}, NULL));
    IrAttr sa[2] = {{.name = "axis", .kind = IR_ATTR_INT, .u.i = 1}, {.name = "keepdim", .kind = IR_ATTR_BOOL, .u.b = false}};
    IrNode *sum = op(f, IR_OP_SUM, 1, &y, 2, sa);
    assert_string_equal(type_text(f, &sum->type), "bf16[B*S,16]");
    IrAttr cat = {.name = "axis", .kind = IR_ATTR_INT, .u.i = -1};
    IrNode *co[2] = {sum, sum};
    assert_string_equal(type_text(f, &op(f, IR_OP_CONCAT, 2, co, 1, &cat)->type), "bf16[B*S,32]");
    int64_t perm[3] = {1, 0, 2};
    IrAttr pa = {.name = "perm", .kind = IR_ATTR_INTS, .u.ints = {perm, 3}};
    assert_string_equal(type_text(f, &op(f, IR_OP_TRANSPOSE, 1, &y, 1, &pa)->type), "bf16[8,B*S,16]");
    cat.u.i = 5;
    assert_null(op(f, IR_OP_SOFTMAX, 1, &y, 1, &cat));
    assert_string_equal(tu_last_error(f->d), "softmax: axis 5 is out of range for rank 3");
}

static void test_einsum(void **state) {
    Fx *f = *state;
    IrNode *q = input(f, "q", ty(IR_DT_BF16, 4, ir_dim_sym(f->B), ir_dim_sym(f->S), C(4), C(24)));
    IrNode *w = weight(f, "w", ty(IR_DT_BF16, 3, C(4), C(24), C(32)));
    IrAttr sp = {.name = "spec", .kind = IR_ATTR_STR, .u.s = "bshd,hdc->bshc"};
    IrNode *ops[2] = {q, w};
    assert_string_equal(type_text(f, &op(f, IR_OP_EINSUM, 2, ops, 1, &sp)->type), "bf16[B,S,4,32]");
    sp.u.s = "bshd,hec->bshc";
    IrNode *w2 = weight(f, "w2", ty(IR_DT_BF16, 3, C(5), C(24), C(32)));
    IrNode *ops2[2] = {q, w2};
    sp.u.s = "bshd,hdc->bshc";
    assert_null(op(f, IR_OP_EINSUM, 2, ops2, 1, &sp));
    assert_string_equal(tu_last_error(f->d), "einsum: spec \"bshd,hdc->bshc\": 'h' is 4 in one place and 5 in another");
    sp.u.s = "bsh,hdc->bsc";
    assert_null(op(f, IR_OP_EINSUM, 2, ops, 1, &sp));
}

static void test_verify(void **state) {
    Fx *f = *state;
    IrNode *x = input(f, "x", ty(IR_DT_F32, 1, C(4)));
    IrNode *y = op(f, IR_OP_SILU, 1, &x, 0, NULL);
    IrAttr on = {.name = "name", .kind = IR_ATTR_STR, .u.s = "out"};
    op(f, IR_OP_OUTPUT, 1, &y, 1, &on);
    assert_int_equal(ir_verify(f->g, f->d), 0);
    /* break things by hand: a wrong recorded type and a duplicate output name */
    y->type.dims[0] = C(5);
    op(f, IR_OP_OUTPUT, 1, &x, 1, &on);
    assert_int_equal(ir_verify(f->g, f->d), 2);
    assert_true(has_error(f, "silu: result type is f32[5] but the operands give f32[4]"));
    assert_true(has_error(f, "output: name \"out\" is used twice"));
    /* a use before its definition */
    y->type.dims[0] = C(4);
    IrNode *tmp = f->g->nodes[0];
    f->g->nodes[0] = f->g->nodes[1];
    f->g->nodes[1] = tmp;
    f->g->nodes[0]->id = 0;
    f->g->nodes[1]->id = 1;
    assert_int_equal(ir_verify(f->g, f->d), 2);
    assert_true(has_error(f, "silu: operand 0 is not defined before its use"));
}

static void test_verify_no_output(void **state) {
    Fx *f = *state;
    input(f, "x", ty(IR_DT_F32, 1, C(4)));
    assert_int_equal(ir_verify(f->g, f->d), 1);
    assert_string_equal(tu_last_error(f->d), "graph @t has no output");
}

/* Which ops take their result type from the node (the rest infer it, and
 * output has none), asked of every op: the answers of the hand-written
 * list ir_op_declares_type was before ops.def said it. */
static void test_op_declared_types(void **state) {
    (void)state;
    static const IrOp declared[] = {IR_OP_INPUT, IR_OP_WEIGHT, IR_OP_CONST, IR_OP_CAST,
                                    IR_OP_RESHAPE, IR_OP_SPLIT_BATCH, IR_OP_MERGE_BATCH};
    int n = 0;
    for (int op = 0; op < IR_OP_COUNT; op++) {
        bool want = false;
        for (size_t k = 0; k < sizeof declared / sizeof *declared; k++) want = want || declared[k] == (IrOp)op;
        if (ir_op_declares_type((IrOp)op) != want) fail_msg("ir_op_declares_type(%s) is %d", ir_op_name((IrOp)op), !want);
        assert_int_equal(ir_op_has_result((IrOp)op), op != IR_OP_OUTPUT);
        n += want;
    }
    assert_int_equal(n, 7);
}

/* The op lists passes and codegen use come from the class column of
 * ops.def: spot-check each predicate on ops of every class. */
static void test_op_classes(void **state) {
    (void)state;
    for (int op = 0; op < IR_OP_COUNT; op++) {
        IrOpClass c = ir_op_class((IrOp)op);
        assert_true(c >= 0 && c < IR_CLASS_COUNT);
        assert_true(!ir_op_own_kernel((IrOp)op) || ir_op_computed((IrOp)op));
        assert_int_equal(ir_op_in_slab((IrOp)op) && !ir_op_has_result((IrOp)op), 0);
    }
    assert_true(ir_op_is_comm(IR_OP_DISPATCH) && ir_op_is_comm(IR_OP_COMBINE));
    assert_false(ir_op_is_comm(IR_OP_LINEAR) || ir_op_is_comm(IR_OP_SPLIT_BATCH));
    assert_false(ir_op_fusible(IR_OP_DISPATCH) || ir_op_fusible(IR_OP_FP8_LINEAR) || ir_op_fusible(IR_OP_TOPK));
    assert_true(ir_op_fusible(IR_OP_ADD) && ir_op_fusible(IR_OP_RMSNORM) && ir_op_fusible(IR_OP_QUANTIZE) &&
                ir_op_fusible(IR_OP_TRANSPOSE) && ir_op_fusible(IR_OP_RESHAPE) && ir_op_fusible(IR_OP_CONST));
    assert_false(ir_op_fusible(IR_OP_INPUT) || ir_op_fusible(IR_OP_KV_CACHE) || ir_op_fusible(IR_OP_SPLIT_BATCH));
    assert_false(ir_op_computed(IR_OP_INPUT) || ir_op_computed(IR_OP_WEIGHT) || ir_op_computed(IR_OP_OUTPUT));
    assert_true(ir_op_computed(IR_OP_CONST) && !ir_op_own_kernel(IR_OP_CONST) && !ir_op_own_kernel(IR_OP_RESHAPE));
    assert_true(ir_op_own_kernel(IR_OP_SLICE) && ir_op_own_kernel(IR_OP_COMBINE));
    assert_true(ir_op_in_slab(IR_OP_INPUT) && ir_op_in_slab(IR_OP_DISPATCH) && ir_op_in_slab(IR_OP_RESHAPE));
    assert_false(ir_op_in_slab(IR_OP_WEIGHT) || ir_op_in_slab(IR_OP_KV_CACHE) || ir_op_in_slab(IR_OP_CONST) ||
                 ir_op_in_slab(IR_OP_OUTPUT));
    assert_int_equal(ir_op_class(IR_OP_COUNT), IR_CLASS_COUNT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_classes),
        cmocka_unit_test(test_op_declared_types),
        cmocka_unit_test_setup_teardown(test_dims, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_sizes, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_linear_and_errors, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_elementwise_broadcast, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_attention_cache_rope, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_routing_and_layout, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_einsum, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_verify, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_verify_no_output, setup, tu_arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
