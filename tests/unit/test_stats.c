/* test_stats.c — graph statistics against numbers worked out by hand, on a
 * small model written in the DSL (so scopes come from real fn calls). */
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

#include <stdlib.h>

/* hidden 16, 2 heads, experts E=4 of width 8, k=2, cache of 6 bf16 values. */
static const char *SRC =
    "dim B, S, T;\n"
    "input tok: i32[B, S];\n"
    "fn attn(h) {\n"
    "  weight wq: bf16[12, 16] = \"wq\";\n"                  /* 192 params */
    "  weight wkv: bf16[6, 16] = \"wkv\";\n"                 /* 96 */
    "  let q = reshape(linear(h, wq), [B, S, 2, 6]);\n"      /* linear: 2*16*12 = 384 / token */
    "  let c = kv_cache(reshape(linear(h, wkv), [B, S, 1, 6]), name=\"kv\");\n" /* 2*16*6 = 192 */
    "  let o = attention(q, c, c, scale=0.5, causal=true);\n"
    "  return reshape(o, [B, S, 12]);\n"
    "}\n"
    "fn experts(h) {\n"
    "  weight we[e: 4]: bf16[8, 16] = \"e{e}\";\n"           /* 512 params, 2 of 4 active: 256 */
    "  weight wr: bf16[4, 16] = \"router\";\n"               /* 64 */
    "  let x = reshape(h, [B*S, 16]);\n"
    "  let idx = topk(linear(x, wr), k=2);\n"                /* linear 2*16*4 = 128 */
    "  return expert_linear(x, we, idx);\n"                  /* 2 * (2*8) * 16 = 512 */
    "}\n"
    "weight emb: bf16[100, 16] = \"emb\";\n"                 /* 1600 */
    "let h = embedding(emb, tok);\n"
    "output a = attn(h);\n"
    "output b = experts(h);\n";

static void test_stats_by_hand(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = fe_compile_string(a, d, "s.dsl", SRC, strlen(SRC), NULL);
    assert_non_null(g);
    assert_int_equal(ir_verify(g, d), 0);
    IrStats st;
    assert_true(ir_stats_compute(g, d, 4, &st));
    assert_int_equal(st.nrows, 3);
    const IrStatsRow *model = &st.rows[0], *attn = &st.rows[1], *ex = &st.rows[2];
    assert_string_equal(model->kind, "model");
    assert_string_equal(attn->kind, "attn");
    assert_string_equal(ex->kind, "experts");
    assert_int_equal(model->params, 1600);
    assert_int_equal(attn->params, 288);
    assert_int_equal(ex->params, 576);
    assert_true(fabs(ex->active_params - (256 + 64)) < 1e-9);
    assert_int_equal(st.total.params, 1600 + 288 + 576);
    assert_int_equal(attn->kv_bytes_per_token, 12); /* 6 bf16 values */
    /* Attention at S = T = 4, causal: 4*5/2 = 10 visible pairs per head, two
     * heads, q·k over 6 and p·v over 6: 2 * 10 * 2 * (6 + 6) = 480 FLOPs per
     * 4 tokens = 120 per token. Plus the two linears (384 + 192), plus one
     * FLOP per output element of nothing else in attn (reshape, cache: 0). */
    assert_true(fabs(attn->flops_per_token - (384 + 192 + 120)) < 1e-9);
    /* experts: router linear 128, topk 2 elements, expert_linear 512 */
    assert_true(fabs(ex->flops_per_token - (128 + 2 + 512)) < 1e-9);
    assert_true(fabs(model->flops_per_token) < 1e-9); /* embedding is a gather */
    arena_free(a);
}

static void test_stats_need_dims(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    const char *src = "input x: f32[4];\noutput y = silu(x);\n";
    IrGraph *g = fe_compile_string(a, d, "n.dsl", src, strlen(src), NULL);
    IrStats st;
    assert_false(ir_stats_compute(g, d, 8, &st));
    assert_non_null(strstr(diag_first(d)->msg, "declares no symbolic dims"));
    arena_free(a);
}

/* Per-GPU memory of the same model: bf16 weights, the 4 stacked experts
 * spread over the GPUs, and the slab plan-memory reports. */
static void test_stats_memory(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    IrGraph *g = fe_compile_string(a, d, "s.dsl", SRC, strlen(SRC), NULL);
    assert_non_null(g);
    IrMemStats m;
    assert_true(ir_stats_memory(g, d, 1, 2, 4, 0, &m));
    assert_int_equal(m.replicated_bytes, (192 + 96 + 64 + 1600) * 2);
    assert_int_equal(m.expert_bytes, 512 * 2);
    assert_int_equal(m.experts, 4);
    assert_int_equal(m.experts_per_gpu, 4);
    assert_int_equal(m.activation_bytes, 0); /* no plan yet */
    assert_true(ir_stats_memory(g, d, 2, 2, 4, 0, &m));
    assert_int_equal(m.replicated_bytes, (192 + 96 + 64 + 1600) * 2);
    assert_int_equal(m.expert_bytes, 512);
    assert_int_equal(m.experts_per_gpu, 2);
    assert_false(ir_stats_memory(g, d, 3, 2, 4, 0, &m));
    assert_non_null(strstr(diag_first(d)->msg, "do not spread evenly over 3 GPUs"));
    /* The slab is what plan-memory reports (to its 0.01 MB, of several MB). */
    PassPipeline pl;
    assert_true(pass_pipeline_parse(a, d, "shape-infer,plan-memory{batch=200,seq=500}", &pl));
    StrBuf rep;
    sb_init(&rep);
    PassRunOptions ro = {.tune = tu_tune(), .report = &rep};
    assert_true(pass_pipeline_run(&pl, g, &ro, d));
    const char *at = strstr(rep.data, "activation slab ");
    assert_non_null(at);
    double mb = strtod(at + strlen("activation slab "), NULL);
    assert_true(ir_stats_memory(g, d, 2, 200, 500, 0, &m));
    assert_true(m.activation_bytes > 1000000);
    assert_true(fabs((double)m.activation_bytes / 1e6 - mb) <= 0.005 + 1e-9);
    sb_free(&rep);
    arena_free(a);
}

/* FLOPs per token of the tiny V3 with its MoE layers in the world layout
 * of W GPUs (`moe` row): the dispatched values hold W row blocks, of which
 * a rank computes 1/W (its experts' slots), so the figure is the same for
 * every W, and within 1% of the unrouted graph's (combine replaces the
 * weighted sum's cast, mul and sum; the expert GEMMs are the same). */
static double moe_flops(int W) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    FeOptions fo = {DSCC_SOURCE_DIR "/models/tiny/config.json", NULL, 0};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    const char *pipe = W > 1 ? arena_printf(a, "shape-infer,dce,node-limited-routing{nodes=1,gpus-per-node=%d}", W) : "shape-infer,dce";
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(a, d, pipe, &pp));
    assert_true(pass_pipeline_run(&pp, g, &ro, d));
    int dispatches = 0;
    for (int i = 0; i < g->nnodes; i++) dispatches += g->nodes[i]->op == IR_OP_DISPATCH;
    assert_true(W == 1 ? dispatches == 0 : dispatches > 0);
    IrStats st;
    assert_true(ir_stats_compute(g, d, 64, &st));
    double f = -1;
    for (int i = 0; i < st.nrows; i++)
        if (strcmp(st.rows[i].kind, "moe") == 0) f = st.rows[i].flops_per_token;
    arena_free(a);
    assert_true(f > 0);
    return f;
}

static void test_stats_world_layout(void **state) {
    (void)state;
    double one = moe_flops(1), two = moe_flops(2), four = moe_flops(4), eight = moe_flops(8);
    fprintf(stderr, "moe FLOPs per token: unrouted %.0f, W=2 %.0f, W=4 %.0f, W=8 %.0f\n", one, two, four, eight);
    assert_true(fabs(four - two) <= 1e-9 * two);
    assert_true(fabs(eight - two) <= 1e-9 * two);
    assert_true(fabs(two - one) <= 0.01 * one);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_by_hand),
        cmocka_unit_test(test_stats_need_dims),
        cmocka_unit_test(test_stats_memory),
        cmocka_unit_test(test_stats_world_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
