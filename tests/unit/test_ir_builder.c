/* test_ir_builder.c — the builder and the shape rules test_ir.c leaves out:
 * every remaining op once with the type it must give and once with the
 * error it must report, the attribute schema (unknown, wrong kind, twice,
 * int widened to float, schema order), and dimension arithmetic. */
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
    IrDim B, S;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, NULL);
    f->g = ir_graph_new(f->a, "b");
    f->B = ir_dim_sym(ir_graph_add_dim(f->g, "B"));
    f->S = ir_dim_sym(ir_graph_add_dim(f->g, "S"));
    ir_graph_add_dim(f->g, "T");
    *state = f;
    return 0;
}

#define C(v) ir_dim_const(v)
#define INT(n, v) ((IrAttr){.name = (n), .kind = IR_ATTR_INT, .u.i = (v)})
#define FLT(n, v) ((IrAttr){.name = (n), .kind = IR_ATTR_FLOAT, .u.f = (v)})
#define BOOL(n, v) ((IrAttr){.name = (n), .kind = IR_ATTR_BOOL, .u.b = (v)})
#define STR(n, v) ((IrAttr){.name = (n), .kind = IR_ATTR_STR, .u.s = (v)})

static IrType ty(IrDType dt, int rank, ...) {
    IrType t = {.dtype = dt, .rank = rank};
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++) t.dims[i] = va_arg(ap, IrDim);
    va_end(ap);
    return t;
}

/* A declared-type leaf (input or weight) named after its position. */
static IrNode *leaf(Fx *f, IrOp op, IrType t) {
    IrAttr a = STR("name", arena_printf(f->a, "v%d", f->g->nnodes));
    IrNode *n = ir_graph_add_node(f->g, f->d, op, NULL, 0, &a, 1, &t, (SrcLoc){0}, NULL);
    assert_non_null(n);
    return n;
}

static IrNode *build(Fx *f, IrOp o, int nops, IrNode **ops, int nattrs, IrAttr *attrs, const IrType *decl) {
    return ir_graph_add_node(f->g, f->d, o, ops, nops, attrs, nattrs, decl, (SrcLoc){"b.dsl", 7, 2}, "s");
}

static const char *tt(Fx *f, const IrNode *n) {
    assert_non_null(n);
    StrBuf sb;
    sb_init(&sb);
    ir_type_print(f->g, &n->type, &sb);
    char *s = arena_strdup(f->a, sb.data);
    sb_free(&sb);
    return s;
}

/* The last error contains `want`, and the failed node was not appended. */
#define assert_fails(f, expr, want)                                                \
    do {                                                                           \
        int n0_ = (f)->g->nnodes;                                                  \
        assert_null(expr);                                                         \
        assert_int_equal((f)->g->nnodes, n0_);                                     \
        if (!strstr(tu_last_error(f->d), (want))) fail_msg("got: %s", tu_last_error(f->d));    \
    } while (0)

static void test_dim_algebra(void **state) {
    Fx *f = *state;
    IrDim bbs = ir_dim_mul(ir_dim_mul(f->B, f->B), ir_dim_mul(C(6), f->S)), q;
    StrBuf sb;
    sb_init(&sb);
    ir_dim_print(f->g, bbs, &sb);
    assert_string_equal(sb.data, "6*B*B*S");
    assert_true(ir_dim_div(bbs, ir_dim_mul(C(3), f->B), &q));
    assert_true(ir_dim_eq(q, ir_dim_mul(C(2), ir_dim_mul(f->B, f->S))));
    assert_false(ir_dim_div(bbs, ir_dim_mul(C(4), f->B), &q)); /* 6 / 4 */
    assert_false(ir_dim_div(f->S, ir_dim_mul(f->S, f->S), &q));
    assert_false(ir_dim_div(C(5), C(0), &q));
    int64_t vals[IR_MAX_DIM_SYMS] = {3, 10};
    assert_int_equal(ir_dim_eval(bbs, vals), 6 * 3 * 3 * 10);
    assert_false(ir_dim_is_const(bbs));
    assert_true(ir_dim_is_const(C(7)));
    IrType t = ty(IR_DT_BF16, 3, f->B, f->S, C(4));
    assert_true(ir_dim_eq(ir_type_numel(&t), ir_dim_mul(C(4), ir_dim_mul(f->B, f->S))));
    IrType s = ty(IR_DT_F32, 0);
    assert_true(ir_dim_eq(ir_type_numel(&s), C(1)));
    IrType t2 = t;
    assert_true(ir_type_eq(&t, &t2));
    t2.dtype = IR_DT_F16;
    assert_false(ir_type_eq(&t, &t2));
    assert_int_equal(ir_graph_find_dim(f->g, "S"), 1);
    assert_int_equal(ir_graph_find_dim(f->g, "Q"), -1);
    sb_free(&sb);
}

static void test_tables(void **state) {
    (void)state;
    IrOp op;
    assert_true(ir_op_lookup("group_topk", &op));
    assert_int_equal(op, IR_OP_GROUP_TOPK);
    assert_string_equal(ir_op_name(IR_OP_EXPERT_LINEAR), "expert_linear");
    assert_false(ir_op_lookup("matmul", &op));
    assert_false(ir_op_has_result(IR_OP_OUTPUT));
    assert_true(ir_op_has_result(IR_OP_ADD));
    assert_true(ir_op_declares_type(IR_OP_RESHAPE));
    assert_false(ir_op_declares_type(IR_OP_LINEAR));
    IrDType dt;
    assert_true(ir_dtype_lookup("fp8e4m3", &dt));
    assert_int_equal(dt, IR_DT_FP8E4M3);
    assert_int_equal(ir_dtype_bits(IR_DT_BF16), 16);
    assert_false(ir_dtype_lookup("float", &dt));
    IrAttrKind k;
    bool opt;
    assert_int_equal(ir_schema_find(IR_OP_ROPE, "interleave", &k, &opt), 1);
    assert_int_equal(k, IR_ATTR_BOOL);
    assert_false(opt);
    assert_int_equal(ir_schema_find(IR_OP_ROPE, "factor", &k, &opt), 2);
    assert_true(opt);
    assert_int_equal(ir_schema_find(IR_OP_ROPE, "theta_x", &k, &opt), -1);
    /* every op has a keyword that looks itself up */
    for (int i = 0; i < IR_OP_COUNT; i++) {
        assert_true(ir_op_lookup(ir_op_name((IrOp)i), &op));
        assert_int_equal(op, i);
    }
}

static void test_attribute_schema(void **state) {
    Fx *f = *state;
    IrNode *x = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 3, f->B, f->S, C(64)));
    IrNode *pos = leaf(f, IR_OP_INPUT, ty(IR_DT_I32, 2, f->B, f->S));
    IrNode *ops[2] = {x, pos};
    /* given out of order, an int where a float is wanted: stored widened, in schema order */
    IrAttr ra[3] = {INT("factor", 40), BOOL("interleave", true), INT("theta", 10000)};
    IrNode *r = build(f, IR_OP_ROPE, 2, ops, 3, ra, NULL);
    assert_string_equal(tt(f, r), "bf16[B,S,64]");
    assert_string_equal(r->attrs[0].name, "theta");
    assert_int_equal(r->attrs[0].kind, IR_ATTR_FLOAT);
    assert_true(r->attrs[0].u.f == 10000.0);
    assert_string_equal(r->attrs[1].name, "interleave");
    assert_string_equal(r->attrs[2].name, "factor");
    assert_true(ir_node_attr_float(r, "factor", 0) == 40.0);
    assert_true(ir_node_attr_float(r, "mscale", 1.5) == 1.5);
    assert_true(ir_node_attr_bool(r, "interleave", false));
    assert_string_equal(r->scope, "s");
    assert_int_equal(r->loc.line, 7);
    /* attributes are copied: changing the caller's array changes nothing */
    ra[1].u.b = false;
    assert_true(ir_node_attr_bool(r, "interleave", false));
    IrAttr bad[3] = {FLT("theta", 1e4), BOOL("interleave", true), INT("betafast", 3)};
    assert_fails(f, build(f, IR_OP_ROPE, 2, ops, 3, bad, NULL), "rope: unknown attribute 'betafast'");
    IrAttr kind[2] = {STR("theta", "1e4"), BOOL("interleave", true)};
    assert_fails(f, build(f, IR_OP_ROPE, 2, ops, 2, kind, NULL), "rope: attribute 'theta' must be a float");
    IrAttr twice[3] = {FLT("theta", 1e4), BOOL("interleave", true), FLT("theta", 2)};
    assert_fails(f, build(f, IR_OP_ROPE, 2, ops, 3, twice, NULL), "attribute 'theta' given twice");
    assert_fails(f, build(f, IR_OP_ROPE, 2, ops, 1, twice, NULL), "rope: missing attribute 'interleave'");
    IrAttr flt_for_int = FLT("axis", 1);
    assert_fails(f, build(f, IR_OP_SOFTMAX, 1, &x, 1, &flt_for_int, NULL), "attribute 'axis' must be an int");
    /* the error is located where the builder was told */
    assert_int_equal(diag_error_count(f->d), 5);
    assert_int_equal(diag_first(f->d)->loc.line, 7);
    assert_string_equal(diag_first(f->d)->loc.file, "b.dsl");
}

static void test_leaves(void **state) {
    Fx *f = *state;
    IrType st = ty(IR_DT_BF16, 3, C(4), C(8), C(16));
    IrAttr wa[3] = {STR("name", "e.{e}.w"), STR("stack", "e"), INT("count", 4)};
    IrNode *w = build(f, IR_OP_WEIGHT, 0, NULL, 3, wa, &st);
    assert_string_equal(tt(f, w), "bf16[4,8,16]");
    wa[2].u.i = 5;
    assert_fails(f, build(f, IR_OP_WEIGHT, 0, NULL, 3, wa, &st), "stacked weight of 5 tensors must have leading dim 5");
    assert_fails(f, build(f, IR_OP_WEIGHT, 0, NULL, 2, wa, &st), "'stack' and 'count' go together");
    IrType sym = ty(IR_DT_BF16, 2, f->B, C(8));
    assert_fails(f, build(f, IR_OP_WEIGHT, 0, NULL, 1, wa, &sym), "weight shape bf16[B,8] must be constant");
    IrAttr v = FLT("value", 0.5);
    IrType scalar = ty(IR_DT_F32, 0), vec = ty(IR_DT_F32, 1, C(2));
    assert_string_equal(tt(f, build(f, IR_OP_CONST, 0, NULL, 1, &v, &scalar)), "f32[]");
    assert_fails(f, build(f, IR_OP_CONST, 0, NULL, 1, &v, &vec), "const must be a scalar, got f32[2]");
    IrAttr in = STR("name", "x");
    IrNode *x = build(f, IR_OP_INPUT, 0, NULL, 1, &in, &sym);
    assert_string_equal(tt(f, x), "bf16[B,8]");
    IrAttr on = STR("name", "y");
    IrNode *o = build(f, IR_OP_OUTPUT, 1, &x, 1, &on, NULL);
    assert_non_null(o);
    assert_int_equal(o->id, f->g->nnodes - 1);
    assert_fails(f, build(f, IR_OP_OUTPUT, 1, &o, 1, &on, NULL), "output: operand 0 has no value");
    assert_fails(f, build(f, IR_OP_OUTPUT, 0, NULL, 1, &on, NULL), "output: expects 1 operand, got 0");
}

static void test_embedding_linear_norm(void **state) {
    Fx *f = *state;
    IrNode *table = leaf(f, IR_OP_WEIGHT, ty(IR_DT_BF16, 2, C(1000), C(64)));
    IrNode *ids = leaf(f, IR_OP_INPUT, ty(IR_DT_I32, 2, f->B, f->S));
    IrNode *fids = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 2, f->B, f->S));
    IrNode *eo[2] = {table, ids};
    IrNode *h = build(f, IR_OP_EMBEDDING, 2, eo, 0, NULL, NULL);
    assert_string_equal(tt(f, h), "bf16[B,S,64]");
    IrNode *eo2[2] = {table, fids};
    assert_fails(f, build(f, IR_OP_EMBEDDING, 2, eo2, 0, NULL, NULL), "ids must be an integer tensor, got f32[B,S]");
    IrNode *nw = leaf(f, IR_OP_WEIGHT, ty(IR_DT_BF16, 1, C(64)));
    IrAttr eps = FLT("eps", 1e-6);
    IrNode *no[2] = {h, nw};
    assert_string_equal(tt(f, build(f, IR_OP_RMSNORM, 2, no, 1, &eps, NULL)), "bf16[B,S,64]");
    IrNode *nw2 = leaf(f, IR_OP_WEIGHT, ty(IR_DT_BF16, 1, C(63)));
    IrNode *no2[2] = {h, nw2};
    assert_fails(f, build(f, IR_OP_RMSNORM, 2, no2, 1, &eps, NULL), "weight bf16[63] does not match the last axis of bf16[B,S,64]");
    IrNode *w = leaf(f, IR_OP_WEIGHT, ty(IR_DT_BF16, 2, C(1536), C(7000)));
    IrNode *x = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 3, f->B, f->S, C(7168)));
    IrNode *lo[2] = {x, w};
    assert_fails(f, build(f, IR_OP_LINEAR, 2, lo, 0, NULL, NULL),
                 "linear: x bf16[B,S,7168] has 7168 input features but w is bf16[1536,7000]");
}

static void test_unary_binary(void **state) {
    Fx *f = *state;
    IrNode *x = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 3, f->B, C(1), C(8)));
    IrNode *ids = leaf(f, IR_OP_INPUT, ty(IR_DT_I32, 2, f->B, C(8)));
    static const IrOp unary[] = {IR_OP_SIGMOID, IR_OP_SILU, IR_OP_EXP, IR_OP_NEG, IR_OP_SQRT, IR_OP_RSQRT};
    for (size_t i = 0; i < sizeof unary / sizeof *unary; i++) {
        assert_string_equal(tt(f, build(f, unary[i], 1, &x, 0, NULL, NULL)), "f32[B,1,8]");
        assert_fails(f, build(f, unary[i], 1, &ids, 0, NULL, NULL), "needs a float operand, got i32[B,8]");
    }
    IrNode *y = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 2, f->S, C(1)));
    IrNode *bo[2] = {x, y};
    static const IrOp binary[] = {IR_OP_ADD, IR_OP_SUB, IR_OP_MUL, IR_OP_DIV, IR_OP_MAX};
    for (size_t i = 0; i < sizeof binary / sizeof *binary; i++)
        assert_string_equal(tt(f, build(f, binary[i], 2, bo, 0, NULL, NULL)), "f32[B,S,8]");
    IrNode *z = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 1, f->S));
    IrNode *bo2[2] = {x, z}; /* S against 8 */
    assert_fails(f, build(f, IR_OP_DIV, 2, bo2, 0, NULL, NULL), "shapes f32[B,1,8] and f32[S] do not broadcast");
    IrNode *hb = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 1, C(8)));
    IrNode *bo3[2] = {x, hb};
    assert_fails(f, build(f, IR_OP_MAX, 2, bo3, 0, NULL, NULL), "operand dtypes differ: f32[B,1,8] and bf16[8]");
    /* a rank-0 operand on the left takes the right's dtype */
    IrAttr v = FLT("value", 1);
    IrType s16 = ty(IR_DT_F16, 0);
    IrNode *k = build(f, IR_OP_CONST, 0, NULL, 1, &v, &s16);
    IrNode *bo4[2] = {k, hb};
    assert_string_equal(tt(f, build(f, IR_OP_SUB, 2, bo4, 0, NULL, NULL)), "bf16[8]");
    /* cast keeps the shape, any dtype */
    IrType to = ty(IR_DT_BF16, 3, f->B, C(1), C(8)), bad = ty(IR_DT_BF16, 3, f->B, C(2), C(8));
    assert_string_equal(tt(f, build(f, IR_OP_CAST, 1, &x, 0, NULL, &to)), "bf16[B,1,8]");
    assert_fails(f, build(f, IR_OP_CAST, 1, &x, 0, NULL, &bad), "cast cannot change the shape (f32[B,1,8] to bf16[B,2,8])");
}

static void test_reductions_and_layout(void **state) {
    Fx *f = *state;
    IrNode *x = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 3, f->B, f->S, C(12)));
    IrAttr ax = INT("axis", -2);
    assert_string_equal(tt(f, build(f, IR_OP_SOFTMAX, 1, &x, 1, &ax, NULL)), "f32[B,S,12]");
    IrAttr sum[2] = {INT("axis", -1), BOOL("keepdim", true)};
    assert_string_equal(tt(f, build(f, IR_OP_SUM, 1, &x, 2, sum, NULL)), "f32[B,S,1]");
    sum[0].u.i = 0;
    sum[1].u.b = false;
    assert_string_equal(tt(f, build(f, IR_OP_SUM, 1, &x, 2, sum, NULL)), "f32[S,12]");
    sum[0].u.i = -4;
    assert_fails(f, build(f, IR_OP_SUM, 1, &x, 2, sum, NULL), "sum: axis -4 is out of range for rank 3");
    /* reshape: equal element counts as monomials, dtype kept */
    IrType r1 = ty(IR_DT_F32, 3, ir_dim_mul(f->B, f->S), C(3), C(4));
    assert_string_equal(tt(f, build(f, IR_OP_RESHAPE, 1, &x, 0, NULL, &r1)), "f32[B*S,3,4]");
    IrType r2 = ty(IR_DT_F32, 2, f->B, C(12));
    assert_fails(f, build(f, IR_OP_RESHAPE, 1, &x, 0, NULL, &r2), "f32[B,S,12] and f32[B,12] hold different numbers of elements");
    IrType r3 = ty(IR_DT_BF16, 3, f->B, f->S, C(12));
    assert_fails(f, build(f, IR_OP_RESHAPE, 1, &x, 0, NULL, &r3), "cannot change dtype");
    int64_t bad_perm[3] = {0, 0, 1};
    IrAttr pa = {.name = "perm", .kind = IR_ATTR_INTS, .u.ints = {bad_perm, 3}};
    assert_fails(f, build(f, IR_OP_TRANSPOSE, 1, &x, 1, &pa, NULL), "perm is not a permutation of 0..2");
    pa.u.ints.n = 2;
    assert_fails(f, build(f, IR_OP_TRANSPOSE, 1, &x, 1, &pa, NULL), "perm has 2 entries");
    IrAttr sl[3] = {INT("axis", 2), INT("start", 4), INT("len", 8)};
    assert_string_equal(tt(f, build(f, IR_OP_SLICE, 1, &x, 3, sl, NULL)), "f32[B,S,8]");
    sl[2].u.i = 9;
    assert_fails(f, build(f, IR_OP_SLICE, 1, &x, 3, sl, NULL), "slice [4, 13) is outside axis 2 of f32[B,S,12]");
    sl[2].u.i = 0;
    assert_fails(f, build(f, IR_OP_SLICE, 1, &x, 3, sl, NULL), "is outside axis 2");
    sl[0].u.i = 1;
    sl[2].u.i = 1;
    assert_fails(f, build(f, IR_OP_SLICE, 1, &x, 3, sl, NULL), "cannot slice symbolic axis 1 of f32[B,S,12]");
    IrNode *y = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 3, f->B, f->S, C(5)));
    IrNode *co[3] = {x, y, x};
    IrAttr cax = INT("axis", 2);
    assert_string_equal(tt(f, build(f, IR_OP_CONCAT, 3, co, 1, &cax, NULL)), "f32[B,S,29]");
    assert_string_equal(tt(f, build(f, IR_OP_CONCAT, 1, co, 1, &cax, NULL)), "f32[B,S,12]");
    IrNode *yb = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 3, f->B, f->B, C(5)));
    IrNode *co2[2] = {x, yb};
    assert_fails(f, build(f, IR_OP_CONCAT, 2, co2, 1, &cax, NULL), "operand 1 f32[B,B,5] differs from f32[B,S,12] off the concat axis");
    cax.u.i = 1;
    assert_fails(f, build(f, IR_OP_CONCAT, 2, co, 1, &cax, NULL), "cannot concat along symbolic axis of f32[B,S,12]");
    assert_fails(f, build(f, IR_OP_CONCAT, 0, co, 1, &cax, NULL), "concat: expects at least 1 operands, got 0");
}

static void test_routing(void **state) {
    Fx *f = *state;
    IrDim N = ir_dim_mul(f->B, f->S);
    IrNode *s = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 2, N, C(256)));
    IrAttr k = INT("k", 8);
    IrNode *top = build(f, IR_OP_TOPK, 1, &s, 1, &k, NULL);
    assert_string_equal(tt(f, top), "i32[B*S,8]");
    k.u.i = 257;
    assert_fails(f, build(f, IR_OP_TOPK, 1, &s, 1, &k, NULL), "k=257 must be in 1..last axis of f32[B*S,256]");
    IrAttr g[4] = {INT("k", 8), INT("groups", 7), INT("topk_groups", 4), INT("group_top", 2)};
    assert_fails(f, build(f, IR_OP_GROUP_TOPK, 1, &s, 4, g, NULL), "256 experts do not split into 7 groups");
    g[1].u.i = 8;
    g[2].u.i = 9;
    assert_fails(f, build(f, IR_OP_GROUP_TOPK, 1, &s, 4, g, NULL), "topk_groups=9 must be in 1..8");
    g[2].u.i = 4;
    g[3].u.i = 33;
    assert_fails(f, build(f, IR_OP_GROUP_TOPK, 1, &s, 4, g, NULL), "group_top=33 must be in 1..32");
    /* gather: idx's shape, x's dtype; dims off the axis must agree */
    IrNode *fidx = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 2, N, C(8)));
    IrAttr ax = INT("axis", 1);
    IrNode *go[2] = {s, fidx};
    assert_fails(f, build(f, IR_OP_GATHER, 2, go, 1, &ax, NULL), "idx must be an integer tensor");
    IrNode *idx2 = leaf(f, IR_OP_INPUT, ty(IR_DT_I32, 2, f->B, C(8)));
    go[1] = idx2;
    assert_fails(f, build(f, IR_OP_GATHER, 2, go, 1, &ax, NULL), "differ off axis 1");
    /* expert_linear with x[N,I] broadcast over the K slots, and a wrong I */
    IrNode *x = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 2, N, C(64)));
    IrNode *w = leaf(f, IR_OP_WEIGHT, ty(IR_DT_BF16, 3, C(256), C(32), C(64)));
    IrNode *eo[3] = {x, w, top};
    assert_string_equal(tt(f, build(f, IR_OP_EXPERT_LINEAR, 3, eo, 0, NULL, NULL)), "bf16[B*S,8,32]");
    IrNode *w2 = leaf(f, IR_OP_WEIGHT, ty(IR_DT_BF16, 3, C(256), C(32), C(63)));
    eo[1] = w2;
    assert_fails(f, build(f, IR_OP_EXPERT_LINEAR, 3, eo, 0, NULL, NULL), "has 64 input features but w is bf16[256,32,63]");
    /* dispatch / combine in the world layout of 8 x 8 GPUs: [64*N, ...] */
    IrAttr da[4] = {INT("nodes", 8), INT("gpus_per_node", 8), INT("max_nodes", 4), INT("hops", 2)};
    IrNode *dop[2] = {x, top};
    assert_string_equal(tt(f, build(f, IR_OP_DISPATCH, 2, dop, 4, da, NULL)), "bf16[64*B*S,64]");
    IrNode *wts = leaf(f, IR_OP_INPUT, ty(IR_DT_F32, 2, N, C(8)));
    dop[0] = top; /* the ids themselves */
    IrNode *idd = build(f, IR_OP_DISPATCH, 2, dop, 4, da, NULL);
    assert_string_equal(tt(f, idd), "i32[64*B*S,8]");
    dop[0] = wts;
    IrNode *wd = build(f, IR_OP_DISPATCH, 2, dop, 4, da, NULL);
    IrDim R = ir_dim_mul(ir_dim_const(64), N);
    IrNode *y = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 3, R, C(8), C(32)));
    IrNode *cop[4] = {y, wd, idd, top};
    assert_string_equal(tt(f, build(f, IR_OP_COMBINE, 4, cop, 4, da, NULL)), "f32[B*S,32]");
    cop[1] = idd; /* ids where the weights go */
    assert_fails(f, build(f, IR_OP_COMBINE, 4, cop, 4, da, NULL), "the dispatched weights i32[64*B*S,8] must be float [W*N,K] = [64*B*S,8]");
    cop[1] = wd;
    cop[2] = wd;
    assert_fails(f, build(f, IR_OP_COMBINE, 4, cop, 4, da, NULL), "the dispatched ids must be an integer tensor");
    cop[2] = idd;
    cop[0] = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 3, N, C(8), C(32))); /* rows of one GPU, not the world's */
    assert_fails(f, build(f, IR_OP_COMBINE, 4, cop, 4, da, NULL), "is not the [W*N,K,...] world layout of idx i32[B*S,8] over 64 GPUs");
    dop[0] = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 2, C(3), C(64))); /* 3 rows for B*S tokens */
    assert_fails(f, build(f, IR_OP_DISPATCH, 2, dop, 4, da, NULL), "does not match the routing idx");
    da[1].u.i = 0;
    dop[0] = x;
    assert_fails(f, build(f, IR_OP_DISPATCH, 2, dop, 4, da, NULL), "nodes and gpus_per_node must be in 1..4096");
}

static void test_einsum_errors(void **state) {
    Fx *f = *state;
    IrNode *a = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 2, f->B, C(4)));
    IrNode *b = leaf(f, IR_OP_WEIGHT, ty(IR_DT_F32, 2, C(4), C(6)));
    IrNode *ops[2] = {a, b};
    IrAttr sp = STR("spec", "ij,jk->ik");
    assert_string_equal(tt(f, build(f, IR_OP_EINSUM, 2, ops, 1, &sp, NULL)), "bf16[B,6]"); /* a's dtype */
    sp.u.s = "ij,jk->ki";
    assert_string_equal(tt(f, build(f, IR_OP_EINSUM, 2, ops, 1, &sp, NULL)), "bf16[6,B]");
    sp.u.s = "ij,jk->il";
    assert_fails(f, build(f, IR_OP_EINSUM, 2, ops, 1, &sp, NULL), "output axis 'l' is not an input axis");
    sp.u.s = "ij,jk";
    assert_fails(f, build(f, IR_OP_EINSUM, 2, ops, 1, &sp, NULL), "is not of the form");
    sp.u.s = "iJ,Jk->ik";
    assert_fails(f, build(f, IR_OP_EINSUM, 2, ops, 1, &sp, NULL), "'J' is not a lowercase letter");
    sp.u.s = "ijk,jk->ik";
    assert_fails(f, build(f, IR_OP_EINSUM, 2, ops, 1, &sp, NULL), "gives operand 0 3 axes but it is bf16[B,4]");
    sp.u.s = "ij,ik->jk"; /* i is B in a, 4 in b */
    assert_fails(f, build(f, IR_OP_EINSUM, 2, ops, 1, &sp, NULL), "'i' is B in one place and 4 in another");
}

static void test_attention_cache_errors(void **state) {
    Fx *f = *state;
    IrDim T = ir_dim_sym(ir_graph_find_dim(f->g, "T"));
    IrNode *q = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 4, f->B, f->S, C(16), C(576)));
    IrNode *kv = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 4, f->B, T, C(1), C(576)));
    IrNode *v = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 4, f->B, T, C(1), C(512)));
    IrAttr at[2] = {FLT("scale", 0.1), BOOL("causal", true)};
    IrNode *ops[3] = {q, kv, v};
    assert_string_equal(tt(f, build(f, IR_OP_ATTENTION, 3, ops, 2, at, NULL)), "bf16[B,S,16,512]");
    ops[2] = kv;
    ops[1] = v;
    assert_fails(f, build(f, IR_OP_ATTENTION, 3, ops, 2, at, NULL), "have different head dims");
    /* kv_cache needs T, and keeps the first axis */
    IrGraph *g2 = ir_graph_new(f->a, "noT");
    ir_graph_add_dim(g2, "B");
    IrAttr cn = STR("name", "c");
    IrAttr xn = STR("name", "x");
    IrType xt = ty(IR_DT_BF16, 3, f->B, C(3), C(8));
    IrNode *x = ir_graph_add_node(g2, f->d, IR_OP_INPUT, NULL, 0, &xn, 1, &xt, (SrcLoc){0}, NULL);
    assert_null(ir_graph_add_node(g2, f->d, IR_OP_KV_CACHE, &x, 1, &cn, 1, NULL, (SrcLoc){0}, NULL));
    assert_non_null(strstr(tu_last_error(f->d), "kv_cache needs a symbolic dim T"));
    IrNode *x1 = leaf(f, IR_OP_INPUT, xt);
    assert_string_equal(tt(f, build(f, IR_OP_KV_CACHE, 1, &x1, 1, &cn, NULL)), "bf16[B,T,8]");
    /* rope: the rotary dim must be even */
    IrNode *odd = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 4, f->B, f->S, C(2), C(63)));
    IrNode *pos = leaf(f, IR_OP_INPUT, ty(IR_DT_I32, 2, f->B, f->S));
    IrNode *ro[2] = {odd, pos};
    IrAttr ra[2] = {FLT("theta", 1e4), BOOL("interleave", true)};
    assert_fails(f, build(f, IR_OP_ROPE, 2, ro, 2, ra, NULL), "rotary dim of bf16[B,S,2,63] must be a constant even number");
}

static void test_fp8_and_microbatch(void **state) {
    Fx *f = *state;
    IrNode *x = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 3, f->B, f->S, C(300)));
    IrAttr blk = INT("block", 128);
    IrNode *s = build(f, IR_OP_ACT_SCALE, 1, &x, 1, &blk, NULL);
    assert_string_equal(tt(f, s), "f32[B,S,3]"); /* ceil(300/128) */
    IrNode *qo[2] = {x, s};
    IrNode *q = build(f, IR_OP_QUANTIZE, 2, qo, 1, &blk, NULL);
    assert_string_equal(tt(f, q), "fp8e4m3[B,S,300]");
    IrNode *w = leaf(f, IR_OP_WEIGHT, ty(IR_DT_FP8E4M3, 2, C(200), C(300)));
    IrNode *ws = leaf(f, IR_OP_WEIGHT, ty(IR_DT_F32, 2, C(2), C(3)));
    IrNode *lo[4] = {q, s, w, ws};
    assert_string_equal(tt(f, build(f, IR_OP_FP8_LINEAR, 4, lo, 0, NULL, NULL)), "bf16[B,S,200]");
    IrNode *ws_bad = leaf(f, IR_OP_WEIGHT, ty(IR_DT_F32, 2, C(2), C(2)));
    lo[3] = ws_bad;
    assert_fails(f, build(f, IR_OP_FP8_LINEAR, 4, lo, 0, NULL, NULL), "weight scales f32[2,2] are not the 128x128 blocks of fp8e4m3[200,300]");
    IrNode *xn = leaf(f, IR_OP_INPUT, ty(IR_DT_BF16, 2, f->B, C(300)));
    IrNode *sn = build(f, IR_OP_ACT_SCALE, 1, &xn, 1, &blk, NULL);
    IrNode *qno[2] = {xn, sn};
    IrNode *qn = build(f, IR_OP_QUANTIZE, 2, qno, 1, &blk, NULL);
    IrNode *idx = leaf(f, IR_OP_INPUT, ty(IR_DT_I32, 2, f->B, C(4)));
    IrNode *we = leaf(f, IR_OP_WEIGHT, ty(IR_DT_FP8E4M3, 3, C(16), C(200), C(300)));
    IrNode *wes = leaf(f, IR_OP_WEIGHT, ty(IR_DT_F32, 3, C(16), C(2), C(3)));
    IrNode *eo[5] = {qn, sn, we, wes, idx};
    assert_string_equal(tt(f, build(f, IR_OP_FP8_EXPERT_LINEAR, 5, eo, 0, NULL, NULL)), "bf16[B,4,200]");
    IrNode *so[2] = {x, x}; /* scales of the wrong shape */
    assert_fails(f, build(f, IR_OP_QUANTIZE, 2, so, 1, &blk, NULL), "scales bf16[B,S,300] do not match");
    /* micro-batches: a second symbolic dim stands for B/2 */
    int mb = ir_graph_add_dim(f->g, "M");
    IrType half = ty(IR_DT_BF16, 3, ir_dim_sym(mb), f->S, C(300));
    IrAttr sp[2] = {INT("index", 1), INT("parts", 2)};
    IrNode *h = build(f, IR_OP_SPLIT_BATCH, 1, &x, 2, sp, &half);
    assert_string_equal(tt(f, h), "bf16[M,S,300]");
    IrNode *mo[2] = {h, h};
    assert_string_equal(tt(f, build(f, IR_OP_MERGE_BATCH, 2, mo, 0, NULL, &x->type)), "bf16[B,S,300]");
    sp[0].u.i = 2;
    assert_fails(f, build(f, IR_OP_SPLIT_BATCH, 1, &x, 2, sp, &half), "index=2 must be in 0..parts-1");
    sp[0].u.i = 0;
    IrType wrong = ty(IR_DT_BF16, 3, ir_dim_sym(mb), f->S, C(301));
    assert_fails(f, build(f, IR_OP_SPLIT_BATCH, 1, &x, 2, sp, &wrong), "differ beyond the batch axis");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dim_algebra, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_tables, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_attribute_schema, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_leaves, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_embedding_linear_norm, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_unary_binary, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_reductions_and_layout, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_routing, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_einsum_errors, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_attention_cache_errors, setup, tu_arena_teardown),
        cmocka_unit_test_setup_teardown(test_fp8_and_microbatch, setup, tu_arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
