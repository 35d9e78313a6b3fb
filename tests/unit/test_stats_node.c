/* test_stats_node.c — ir_stats_node_flops / ir_stats_node_bytes (the
 * per-kernel figures of `dscc run --trace`) against numbers worked out by
 * hand, on a small model in the DSL, before and after fp8-quant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "tests/unit/testutil.h"

/* hidden 16, 2 heads of 6 over one cached head, 4 experts of width 8, k=2. */
static const char *SRC =
    "dim B, S, T;\n"
    "input tok: i32[B, S];\n"
    "weight emb: bf16[100, 16] = \"emb\";\n"
    "weight wq: bf16[12, 16] = \"wq\";\n"
    "weight wkv: bf16[6, 16] = \"wkv\";\n"
    "weight we[e: 4]: bf16[8, 16] = \"e{e}\";\n"
    "weight wr: bf16[4, 16] = \"router\";\n"
    "let h = embedding(emb, tok);\n"
    "let q = reshape(linear(h, wq), [B, S, 2, 6]);\n"
    "let c = kv_cache(reshape(linear(h, wkv), [B, S, 1, 6]), name=\"kv\");\n"
    "output a = attention(q, c, c, scale=0.5, causal=true);\n"
    "let x = reshape(h, [B*S, 16]);\n"
    "let idx = topk(linear(x, wr), k=2);\n"
    "output b = silu(expert_linear(x, we, idx));\n"; /* not an output itself: fp8-quant converts it */

/* The first node of op `op` whose operand k is the weight named w (w NULL: any). */
static const IrNode *find(const IrGraph *g, IrOp op, int k, const char *w) {
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == op && (!w || (k < n->nops && n->ops[k]->op == IR_OP_WEIGHT &&
                                   strcmp(ir_node_attr_str(n->ops[k], "name", ""), w) == 0)))
            return n;
    }
    return NULL;
}

static IrGraph *compile(Arena *a, DiagEngine *d, const char *pipeline) {
    IrGraph *g = fe_compile_string(a, d, "s.dsl", SRC, strlen(SRC), NULL);
    assert_non_null(g);
    PassPipeline p;
    assert_true(pass_pipeline_parse(a, d, pipeline, &p));
    PassRunOptions ro = {.tune = tu_tune(), .verify_each = true};
    assert_true(pass_pipeline_run(&p, g, &ro, d));
    return g;
}

/* B = 2, S = 3, T = 5 (two positions cached before the step). */
static const int64_t SYM[IR_MAX_DIM_SYMS] = {2, 3, 5, 1, 1, 1, 1, 1};

static void test_node_flops_and_bytes(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = compile(a, d, "shape-infer");
    const IrNode *lin = find(g, IR_OP_LINEAR, 1, "wq"), *emb = find(g, IR_OP_EMBEDDING, 0, "emb");
    const IrNode *ex = find(g, IR_OP_EXPERT_LINEAR, 1, NULL), *att = find(g, IR_OP_ATTENTION, 0, NULL);
    const IrNode *kv = find(g, IR_OP_KV_CACHE, 0, NULL);
    assert_non_null(lin), assert_non_null(emb), assert_non_null(ex), assert_non_null(att), assert_non_null(kv);
    /* linear [2,3,16] x [12,16]^T: 2 M N K = 2 * 6 * 12 * 16 */
    assert_true(ir_stats_node_flops(lin, SYM) == 2304);
    assert_true(ir_stats_node_bytes(lin, 0, SYM, 16) == 6 * 16 * 2);
    assert_true(ir_stats_node_bytes(lin, 1, SYM, 16) == 12 * 16 * 2);
    assert_true(ir_stats_node_bytes(lin, -1, SYM, 16) == 6 * 12 * 2);
    assert_true(ir_stats_node_bytes(lin, -1, SYM, 32) == 6 * 12 * 4); /* the stored dtype's width */
    /* the embedding reads its 6 rows of 16, not the table; no FLOPs */
    assert_true(ir_stats_node_flops(emb, SYM) == 0);
    assert_true(ir_stats_node_bytes(emb, 0, SYM, 16) == 6 * 16 * 2);
    assert_true(ir_stats_node_bytes(emb, 1, SYM, 32) == 6 * 4);
    /* causal attention of 3 new over 5 positions: 3 * 2 + 3 * 4 / 2 = 12 pairs
     * per head; 2 rows, 2 heads, q.k and p.v of 6 each */
    assert_true(ir_stats_node_flops(att, SYM) == 2.0 * 2 * 2 * 12 * (6 + 6));
    assert_true(ir_stats_node_bytes(att, 1, SYM, 16) == 2 * 5 * 6 * 2); /* the cache's 5 positions */
    assert_true(ir_stats_node_bytes(kv, -1, SYM, 16) == 2 * 3 * 6 * 2); /* stores the 3 new ones */
    /* experts: [6,2,8] outputs over 16 inputs; 12 choices reach all 4 experts */
    assert_true(ir_stats_node_flops(ex, SYM) == 2.0 * 6 * 2 * 8 * 16);
    assert_true(ir_stats_node_bytes(ex, 1, SYM, 16) == 4 * 8 * 16 * 2);
    /* one token, 2 choices: at most 2 of the 4 experts' weights */
    int64_t one[IR_MAX_DIM_SYMS] = {1, 1, 5, 1, 1, 1, 1, 1};
    assert_true(ir_stats_node_bytes(ex, 1, one, 16) == 2 * 8 * 16 * 2);
    assert_true(ir_stats_node_bytes(ex, 0, one, 16) == 16 * 2);
    arena_free(a);
}

/* After fp8-quant the linears are fp8_linear / fp8_expert_linear: the same
 * FLOPs as the linears they replace; FP8 weight bytes, the stacked scales
 * counted like the stacked weights. */
static void test_node_fp8(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = compile(a, d, "shape-infer,fp8-quant");
    const IrNode *lin = find(g, IR_OP_FP8_LINEAR, 2, "wq"), *ex = find(g, IR_OP_FP8_EXPERT_LINEAR, 2, NULL);
    assert_non_null(lin);
    assert_non_null(ex);
    assert_true(ir_stats_node_flops(lin, SYM) == 2304);
    assert_true(ir_stats_node_bytes(lin, 2, SYM, 8) == 12 * 16);
    assert_true(ir_stats_node_flops(ex, SYM) == 2.0 * 6 * 2 * 8 * 16);
    int64_t one[IR_MAX_DIM_SYMS] = {1, 1, 5, 1, 1, 1, 1, 1};
    assert_true(ir_stats_node_bytes(ex, 2, one, 8) == 2 * 8 * 16);
    double ws = ir_stats_node_bytes(ex, 3, SYM, 32); /* all 4 experts' scales */
    assert_true(ws > 0 && ir_stats_node_bytes(ex, 3, one, 32) == ws / 2);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_flops_and_bytes),
        cmocka_unit_test(test_node_fp8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
