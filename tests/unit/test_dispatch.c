/* test_dispatch.c — the two-hop dispatch plan: exact counts on a hand
 * example, and on the real routing decisions of the tiny fixture model
 * (CPU executor, transformers-checked weights) the node limit the
 * node-limited-routing pass promises holds, token by token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/tiny_bf16"

static void test_hand_example(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtTopology t = {2, 2, 8}; /* 2 experts per GPU */
    /* token 0 on rank 0: experts on ranks 0, 1, 2, 3; token 1: experts 6, 7 (rank 3, twice) */
    float idx[8] = {1, 2, 5, 7, 6, 7, 6, 7};
    RtDispatchPlan p;
    assert_true(rt_dispatch_plan(d, &t, 0, idx, 2, 4, &p));
    assert_int_equal(p.inter_node_copies, 2);  /* token 0 -> node 1 once; token 1 -> node 1 once */
    assert_int_equal(p.intra_node_copies, 3);  /* t0: rank 1 (node 0), rank 3 (node 1); t1: rank 3 */
    assert_int_equal(p.per_expert_copies, 7);  /* every expert off rank 0 */
    assert_int_equal(p.max_nodes_per_token, 2);
    int64_t want[4] = {1, 1, 1, 2};
    assert_memory_equal(p.recv, want, sizeof want);
    rt_dispatch_plan_free(&p);
    /* from rank 3 (node 1, local 1) the same routes land differently */
    assert_true(rt_dispatch_plan(d, &t, 3, idx, 2, 4, &p));
    assert_int_equal(p.inter_node_copies, 1);  /* token 0 -> node 0 */
    assert_int_equal(p.intra_node_copies, 2);  /* node 0 lands on rank 1 -> rank 0; node 1: rank 2 */
    rt_dispatch_plan_free(&p);
    float bad[1] = {8};
    assert_false(rt_dispatch_plan(d, &t, 0, bad, 1, 1, &p));
    assert_non_null(strstr(diag_first(d)->msg, "routes to expert 8, outside 0..7"));
    arena_free(a);
}

/* Router decisions of the first MoE layer for the fixture's tokens, after
 * the given pipeline. Returns idx [N*K] (malloc'd). */
static float *route(Arena *a, DiagEngine *d, RtCheckpoint *ck, const char *pipeline, int64_t *N, int *K) {
    FeOptions o = {rt_checkpoint_config_path(ck), NULL, 0};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &o);
    assert_non_null(g);
    PassPipeline p;
    assert_true(pass_pipeline_parse(a, d, pipeline, &p));
    PassRunOptions ro = {.tune = tu_tune(), .verify_each = true};
    assert_true(pass_pipeline_run(&p, g, &ro, d));
    IrNode *router = NULL;
    for (int i = 0; i < g->nnodes && !router; i++)
        if (g->nodes[i]->op == IR_OP_GROUP_TOPK) router = g->nodes[i];
    IrAttr name = {.name = "name", .kind = IR_ATTR_STR, .u.s = "routes"};
    assert_non_null(ir_graph_add_node(g, d, IR_OP_OUTPUT, &router, 1, &name, 1, NULL, (SrcLoc){0}, NULL));
    RtArray tok;
    assert_true(rt_npy_read(d, FIX "/tokens.npy", &tok));
    int64_t B = tok.shape[0], T = tok.shape[1];
    float *pos = malloc(sizeof(float) * (size_t)(B * T));
    for (int64_t i = 0; i < B * T; i++) pos[i] = (float)(i % T);
    CpuWeightSource ws = {rt_checkpoint_read_f32, ck};
    CpuExec *x = cpu_exec_new(g, &ws, NULL, d);
    CpuInput in[2] = {{"tokens", 2, {B, T}, tok.data}, {"positions", 2, {B, T}, pos}};
    assert_true(cpu_exec_run(x, in, 2, d));
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *r = cpu_exec_output(x, "routes", &rank, dims);
    assert_non_null(r);
    *N = dims[0];
    *K = (int)dims[1];
    float *out = malloc(sizeof(float) * (size_t)(*N * *K));
    memcpy(out, r, sizeof(float) * (size_t)(*N * *K));
    cpu_exec_free(x);
    free(pos);
    free(tok.data);
    return out;
}

static void test_real_routes_respect_the_node_limit(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtCheckpoint *ck = rt_checkpoint_open(a, d, FIX);
    assert_non_null(ck);
    /* 16 experts in 4 groups, 2 groups kept, 4 experts per token; 4 nodes x 1 GPU */
    RtTopology t = {4, 1, 16};
    int64_t N;
    int K;
    float *idx = route(a, d, ck, "node-limited-routing{nodes=4,gpus-per-node=1,max-nodes=2}", &N, &K);
    assert_int_equal(K, 4);
    for (int src = 0; src < 4; src++) {
        RtDispatchPlan p;
        assert_true(rt_dispatch_plan(d, &t, src, idx, N, K, &p));
        assert_true(p.max_nodes_per_token <= 2);          /* the pass's guarantee */
        assert_true(p.inter_node_copies <= 2 * N);        /* its byte bound: 2 copies of the payload per token */
        assert_true(p.inter_node_copies < p.per_expert_copies); /* two-hop de-duplication pays */
        rt_dispatch_plan_free(&p);
    }
    free(idx);
    /* max-nodes=1 rewrites the routers: every token stays within one node */
    idx = route(a, d, ck, "node-limited-routing{nodes=4,gpus-per-node=1,max-nodes=1}", &N, &K);
    RtDispatchPlan p;
    assert_true(rt_dispatch_plan(d, &t, 0, idx, N, K, &p));
    assert_int_equal(p.max_nodes_per_token, 1);
    assert_true(p.inter_node_copies <= N);
    rt_dispatch_plan_free(&p);
    free(idx);
    rt_checkpoint_close(ck);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_example),
        cmocka_unit_test(test_real_routes_respect_the_node_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
