/* test_routing.c — node-limited-routing's world layout on one process and
 * its traffic prediction. A graph compiled for W GPUs and run by the CPU
 * executor alone (block 0 = its own tokens, the other blocks unsent) gives
 * the unrouted logits, with routing before or after fp8-quant and with the
 * micro-batch split; the dispatched values and combine hold what the layout
 * says; pass_routing_traffic counts what DeepEP's two-hop scheme sends, on
 * a worked example and against the runtime's dispatch plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

typedef struct {
    TuFixture fx;
    RtArray tok;
} Fx;

static int setup_dir(void **state, const char *dir) {
    Fx *f = calloc(1, sizeof *f);
    tu_fixture_open(&f->fx, dir);
    char path[512];
    snprintf(path, sizeof path, "%s/tokens.npy", dir);
    tu_read_npy(&f->fx, path, &f->tok);
    *state = f;
    return 0;
}
static int setup_bf16(void **state) { return setup_dir(state, DSCC_SOURCE_DIR "/tests/fixtures/tiny_bf16"); }
static int setup_fp8(void **state) { return setup_dir(state, DSCC_SOURCE_DIR "/tests/fixtures/tiny_fp8"); }

static int teardown(void **state) {
    Fx *f = *state;
    free(f->tok.data);
    tu_fixture_close(&f->fx);
    free(f);
    return 0;
}

static IrGraph *compile(Fx *f, const char *pipeline) { return tu_compile(&f->fx, pipeline, NULL, 0); }

static int count(const IrGraph *g, IrOp op) {
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) k += g->nodes[i]->op == op;
    return k;
}

/* Runs one full forward; returns the executor (keep_all: every value stays). */
static CpuExec *run(Fx *f, const IrGraph *g, bool keep_all) {
    CpuExec *x = tu_exec(&f->fx, g, &(CpuOptions){.threads = 2, .keep_all = keep_all});
    tu_forward(&f->fx, x, &f->tok);
    return x;
}

/* Logits [B*T*V]; caller frees. */
static float *logits(Fx *f, const IrGraph *g, int64_t *n) {
    CpuExec *x = run(f, g, false);
    float *out = tu_output_copy(x, "logits", n);
    cpu_exec_free(x);
    return out;
}

/* Largest |a - b| relative to the largest |a|. */
static double max_rel(const float *a, const float *b, int64_t n) {
    double diff = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        mag = fmax(mag, fabs((double)a[i]));
    }
    return diff / mag;
}

static void expect_same_logits(Fx *f, const float *ref, int64_t n, const char *pipeline, int dispatches) {
    IrGraph *g = compile(f, pipeline);
    assert_int_equal(count(g, IR_OP_DISPATCH), dispatches);
    int64_t m;
    float *got = logits(f, g, &m);
    assert_int_equal(m, n);
    double e = max_rel(ref, got, n);
    print_message("%s: max rel diff %.3g\n", pipeline, e);
    if (!(e <= 1e-5)) fail_msg("%s: logits differ from the unrouted graph's by %g", pipeline, e);
    free(got);
}

/* BF16 checkpoint: routed over 1 x 2 and 2 x 2 GPUs (x, ids, weights
 * dispatched per MoE layer), and split in two micro-batches. */
static void test_one_process_bf16(void **state) {
    Fx *f = *state;
    int64_t n;
    float *ref = logits(f, compile(f, "dce,cse,dce"), &n);
    expect_same_logits(f, ref, n, "dce,cse,dce,node-limited-routing{nodes=1,gpus-per-node=2}", 6);
    expect_same_logits(f, ref, n, "dce,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2}", 6);
    expect_same_logits(f, ref, n, "dce,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2},microbatch-overlap,fuse,plan-memory", 12);
    free(ref);
}

/* FP8: routing after fp8-quant (the payload is codes + scales) and before
 * it (the experts quantize their dispatched rows). */
static void test_one_process_fp8_orders(void **state) {
    Fx *f = *state;
    int64_t n;
    float *ref = logits(f, compile(f, "dce,fp8-quant,cse,dce"), &n);
    expect_same_logits(f, ref, n, "dce,fp8-quant,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2}", 8);
    expect_same_logits(f, ref, n, "dce,fp8-quant,cse,dce,node-limited-routing{nodes=1,gpus-per-node=2},fuse,plan-memory", 8);
    expect_same_logits(f, ref, n, "dce,node-limited-routing{nodes=2,gpus-per-node=2},fp8-quant,cse,dce", 6);
    free(ref);
}

/* The values: block 0 of a dispatched value is its operand, the other
 * blocks are unsent (ids -1, values 0); combine is the weighted sum of
 * block 0's slots. */
static void test_layout_values(void **state) {
    Fx *f = *state;
    IrGraph *g = compile(f, "dce,fp8-quant,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2}");
    CpuExec *x = run(f, g, true);
    int ids = 0, combines = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        int64_t nv, nx;
        if (n->op == IR_OP_DISPATCH) {
            const float *v = cpu_exec_value(x, i, &nv), *src = cpu_exec_value(x, n->ops[0]->id, &nx);
            assert_non_null(v);
            assert_int_equal(nv, 4 * nx);
            assert_memory_equal(v, src, sizeof(float) * (size_t)nx);
            bool is_ids = n->ops[0] == n->ops[1];
            ids += is_ids;
            for (int64_t k = nx; k < nv; k++)
                if (v[k] != (is_ids ? -1.0f : 0.0f)) fail_msg("%%%d dispatch: unsent element %lld is %g", i, (long long)k, v[k]);
        }
        if (n->op != IR_OP_COMBINE) continue;
        combines++;
        int64_t ny, nw;
        const float *out = cpu_exec_value(x, i, &nv), *y = cpu_exec_value(x, n->ops[0]->id, &ny);
        const float *wd = cpu_exec_value(x, n->ops[1]->id, &nw), *idx = cpu_exec_value(x, n->ops[3]->id, &nx);
        int64_t K = n->ops[3]->type.dims[1].coeff, N = nx / K, O = nv / N;
        assert_int_equal(ny, 4 * N * K * O);
        double num = 0, den = 0;
        for (int64_t t = 0; t < N; t++)
            for (int64_t o = 0; o < O; o++) {
                double want = 0;
                for (int64_t k = 0; k < K; k++) {
                    assert_true(idx[t * K + k] >= 0);
                    want += (double)wd[t * K + k] * y[(t * K + k) * O + o];
                }
                num += (want - out[t * O + o]) * (want - out[t * O + o]);
                den += want * want;
            }
        assert_true(den > 0);
        assert_true(sqrt(num / den) < 1e-6);
    }
    assert_int_equal(ids, 2);
    assert_int_equal(combines, 2);
    /* row bytes of a layer: codes 96 + 1 scale + 4 ids + 4 weights; one bf16 partial sum of 96 */
    int64_t dr, cr;
    const IrNode *c = NULL;
    for (int i = 0; i < g->nnodes && !c; i++)
        if (g->nodes[i]->op == IR_OP_COMBINE) c = g->nodes[i];
    assert_true(pass_routing_row_bytes(g, c, false, &dr, &cr));
    assert_int_equal(dr, 96 + 4 + 16 + 16);
    assert_int_equal(cr, 96 * 2);
    assert_true(pass_routing_row_bytes(g, c, true, &dr, &cr));
    assert_int_equal(dr, 96 + 4 + 16 + 16);
    assert_int_equal(cr, 96 * 4);
    cpu_exec_free(x);
}

/* 2 nodes x 2 GPUs, 8 experts (2 per rank), k = 2, rows of 100 / 10 bytes. */
static void test_traffic_worked(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    PassEpWorld w = {2, 2, 8, 2};
    /* rank 0 (node 0, local 0): experts 2 (rank 1) and 4 (rank 2, its landing GPU on node 1)
     * rank 1: experts 2 and 3, both its own: nothing moves
     * rank 2: no tokens
     * rank 3 (node 1, local 1): experts 0 and 1, both on rank 0: lands on rank 1, forwarded once */
    const float r0[] = {2, 4}, r1[] = {2, 3}, r3[] = {0, 1};
    const float *idx[4] = {r0, r1, NULL, r3};
    int64_t ntok[4] = {1, 1, 0, 1};
    PassEpTraffic s[4];
    assert_true(pass_routing_traffic(d, &w, ntok, idx, 100, 10, s));
    assert_int_equal(s[0].dispatch_inter, 100);
    assert_int_equal(s[0].dispatch_intra, 100);
    assert_int_equal(s[0].combine_inter, 0);
    assert_int_equal(s[0].combine_intra, 10);
    assert_int_equal(s[1].dispatch_inter, 0);
    assert_int_equal(s[1].dispatch_intra, 100);
    assert_int_equal(s[1].combine_inter, 10);
    assert_int_equal(s[1].combine_intra, 10);
    assert_int_equal(s[2].dispatch_inter + s[2].dispatch_intra + s[2].combine_intra, 0);
    assert_int_equal(s[2].combine_inter, 10);
    assert_int_equal(s[3].dispatch_inter, 100);
    assert_int_equal(s[3].dispatch_intra + s[3].combine_inter + s[3].combine_intra, 0);
    /* one node: nothing crosses nodes */
    PassEpWorld one = {1, 4, 8, 2};
    assert_true(pass_routing_traffic(d, &one, ntok, idx, 100, 10, s));
    for (int r = 0; r < 4; r++) assert_int_equal(s[r].dispatch_inter + s[r].combine_inter, 0);
    assert_int_equal(s[0].dispatch_intra, 200); /* rank 0's token goes to ranks 1 and 2 */
    /* errors */
    const float bad[] = {2, 8};
    idx[0] = bad;
    assert_false(pass_routing_traffic(d, &w, ntok, idx, 100, 10, s));
    assert_non_null(strstr(diag_first(d)->msg, "token 0 of rank 0 routes to expert 8, outside 0..7"));
    PassEpWorld uneven = {3, 1, 8, 2};
    assert_false(pass_routing_traffic(d, &uneven, ntok, idx, 100, 10, s));
    arena_free(a);
}

/* On random routing every rank's sends add up to the runtime's dispatch
 * plan (an independent count): hop-1 copies cross nodes, forwards NVLink. */
static void test_traffic_matches_plan(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    srand(7);
    int tops[3][2] = {{2, 4}, {4, 2}, {1, 8}};
    for (int tp = 0; tp < 3; tp++) {
        PassEpWorld w = {tops[tp][0], tops[tp][1], 64, 6};
        int W = w.nodes * w.gpus_per_node;
        float *idx[8];
        int64_t ntok[8];
        for (int r = 0; r < W; r++) {
            ntok[r] = rand() % 40;
            idx[r] = malloc(sizeof(float) * (size_t)(ntok[r] * w.k + 1));
            for (int64_t t = 0; t < ntok[r]; t++)
                for (int k = 0; k < w.k; k++) { /* k distinct experts */
                    float e;
                    bool dup;
                    do {
                        e = (float)(rand() % 64);
                        dup = false;
                        for (int j = 0; j < k; j++) dup |= idx[r][t * w.k + j] == e;
                    } while (dup);
                    idx[r][t * w.k + k] = e;
                }
        }
        PassEpTraffic s[8];
        assert_true(pass_routing_traffic(d, &w, ntok, (const float *const *)idx, 7, 3, s));
        RtTopology t = {w.nodes, w.gpus_per_node, 64};
        int64_t inter = 0, intra = 0, pin = 0, pnv = 0, cin = 0, cnv = 0;
        for (int r = 0; r < W; r++) {
            RtDispatchPlan p;
            assert_true(rt_dispatch_plan(d, &t, r, idx[r], ntok[r], w.k, &p));
            inter += p.inter_node_copies;
            intra += p.intra_node_copies;
            rt_dispatch_plan_free(&p);
            pin += s[r].dispatch_inter, pnv += s[r].dispatch_intra, cin += s[r].combine_inter, cnv += s[r].combine_intra;
            free(idx[r]);
        }
        assert_true(inter > 0 || w.nodes == 1);
        assert_true(intra > 0);
        assert_int_equal(pin, 7 * inter);
        assert_int_equal(pnv, 7 * intra);
        assert_int_equal(cin, 3 * inter);
        assert_int_equal(cnv, 3 * intra);
    }
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_process_bf16, setup_bf16, teardown),
        cmocka_unit_test_setup_teardown(test_one_process_fp8_orders, setup_fp8, teardown),
        cmocka_unit_test_setup_teardown(test_layout_values, setup_fp8, teardown),
        cmocka_unit_test(test_traffic_worked),
        cmocka_unit_test(test_traffic_matches_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
