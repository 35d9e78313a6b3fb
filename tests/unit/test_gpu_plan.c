/* test_gpu_plan.c — one memory planner: the CUDA executor takes the
 * plan-memory pass's offsets and plans nothing itself.
 *
 * The tiny FP8 fixture, routed over 1 node x 2 GPUs with the two-micro-
 * batch overlap (compute on stream 0, dispatch and combine on stream 1),
 * runs in one process, planned by the pass at the executor's capacity and
 * storage. The test checks that every value the executor stores sits at
 * exactly the pass's offset (and nothing else has one), that the schedule
 * checker passes that plan, and that the logits match the CPU executor's
 * (a buffer reused too early would show there). Then it plants a hazard in
 * the same plan: a value of the compute stream written over the payload
 * of a dispatch the communication stream may still be reading. The
 * checker must report it, and the executor must refuse the graph. Last,
 * values of weights alone: with merge-linears (the fixture's config at
 * sizes it merges, random weights) its concats and kv_b_proj's
 * slices have no slab offset but are held with the weights, no weight is
 * held twice (no more weight bytes than without the merge), and the
 * logits still match the CPU executor's (with the overlap: the kernel
 * order the plan follows holds there too). Exits 77 without a GPU
 * (emu.test_gpu_plan runs it on the emulated device). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/tiny_fp8"

typedef struct {
    Arena *a;
    DiagEngine *d;
    RtCheckpoint *ck;
    IrGraph *g;
    RtArray tok;
    int64_t B, S;
} Fix;

static int setup(void **state) {
    Fix *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, stderr);
    f->ck = rt_checkpoint_open(f->a, f->d, FIX);
    assert_non_null(f->ck);
    FeOptions fo = {rt_checkpoint_config_path(f->ck), NULL, 0};
    f->g = fe_compile_file(f->a, f->d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(f->g);
    assert_true(rt_npy_read(f->d, FIX "/tokens.npy", &f->tok));
    f->B = f->tok.shape[0], f->S = f->tok.shape[1];
    const char *pipe = arena_printf(f->a,
                                    "shape-infer,fold-constants,dce,fp8-quant,cse,dce,node-limited-routing{nodes=1,gpus-per-node=2},"
                                    "microbatch-overlap{n=2},fuse,plan-memory{batch=%lld,seq=%lld,ctx=%lld,f32-storage=1}",
                                    (long long)f->B, (long long)f->S, (long long)f->S);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(f->a, f->d, pipe, &pp));
    assert_true(pass_pipeline_run(&pp, f->g, &ro, f->d));
    assert_true(f->g->mem_planned);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fix *f = *state;
    free(f->tok.data);
    rt_checkpoint_close(f->ck);
    arena_free(f->a);
    free(f);
    return 0;
}

/* Whether what was written to tmp (a DiagEngine's stream) contains s. */
static bool wrote(FILE *tmp, const char *s) {
    char buf[8192];
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    return strstr(buf, s) != NULL;
}

static GpuExec *executor(Fix *f, DiagEngine *d) {
    CpuWeightSource ws = {rt_checkpoint_read_f32, f->ck};
    GpuOptions go = {.tune = tu_tune(), .max_batch = f->B, .max_seq = f->S, .max_ctx = f->S, .f32_storage = true};
    return gpu_exec_new(f->g, &ws, &go, d);
}

/* The logits of one prefill of the fixture's tokens (malloc'd). */
static float *logits_of(Fix *f, GpuExec *gx, CpuExec *cx, int64_t *n) {
    float *pos = malloc(sizeof(float) * (size_t)(f->B * f->S));
    for (int64_t i = 0; i < f->B * f->S; i++) pos[i] = (float)(i % f->S);
    CpuInput in[2] = {{"tokens", 2, {f->B, f->S}, f->tok.data}, {"positions", 2, {f->B, f->S}, pos}};
    bool ok = gx ? gpu_exec_run(gx, in, 2, f->d) : cpu_exec_run(cx, in, 2, f->d);
    free(pos);
    assert_true(ok);
    int rk;
    int64_t dims[IR_MAX_RANK];
    const float *lg = gx ? gpu_exec_output(gx, "logits", &rk, dims) : cpu_exec_output(cx, "logits", &rk, dims);
    assert_non_null(lg);
    *n = 1;
    for (int i = 0; i < rk; i++) *n *= dims[i];
    float *out = malloc(sizeof(float) * (size_t)*n);
    memcpy(out, lg, sizeof(float) * (size_t)*n);
    return out;
}

static void test_executor_takes_the_plan(void **state) {
    Fix *f = *state;
    const IrGraph *g = f->g;
    assert_int_equal(ir_check_schedule(g, f->d), 0);
    int streams = 0, placed = 0;
    for (int i = 0; i < g->nnodes; i++) streams |= 1 << (g->nodes[i]->stream > 0 ? 1 : 0);
    assert_int_equal(streams, 3); /* both streams in use */
    GpuExec *gx = executor(f, f->d);
    assert_non_null(gx);
    for (int i = 0; i < g->nnodes; i++) {
        assert_int_equal(gpu_exec_offset(gx, i), g->nodes[i]->mem);
        placed += g->nodes[i]->mem >= 0;
    }
    assert_true(placed > 20);
    int64_t ng, nc;
    float *lg = logits_of(f, gx, NULL, &ng);
    CpuExec *cx = cpu_exec_new(g, &(CpuWeightSource){rt_checkpoint_read_f32, f->ck}, NULL, f->d);
    assert_non_null(cx);
    float *lc = logits_of(f, NULL, cx, &nc);
    assert_int_equal(ng, nc);
    double num = 0, den = 0;
    for (int64_t i = 0; i < ng; i++) num += ((double)lg[i] - lc[i]) * ((double)lg[i] - lc[i]), den += (double)lc[i] * lc[i];
    fprintf(stderr, "%d values at the pass's offsets, slab %lld bytes; logits vs the CPU executor: rel L2 %.2e\n", placed,
            (long long)gpu_exec_activation_bytes(gx), sqrt(num / (den > 0 ? den : 1e-30)));
    assert_true(den > 0 && sqrt(num / den) <= 1e-4);
    free(lg);
    free(lc);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
}

static void test_planted_hazard_is_refused(void **state) {
    Fix *f = *state;
    IrGraph *g = f->g;
    IrOrder o;
    assert_true(ir_order_compute(g, NULL, f->d, &o));
    IrNode *x = NULL, *y = NULL;
    for (int i = 0; i < g->nnodes && !y; i++) { /* a dispatch's payload, and a compute-stream value written while it may be read */
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_DISPATCH || n->stream != 1 || n->ops[0]->mem < 0) continue;
        for (int j = i + 1; j < g->nnodes && !y; j++) {
            IrNode *m = g->nodes[j];
            if (m->stream == 0 && m->mem >= 0 && !ir_order_done_before(&o, n->ops[0]->id, j)) x = n->ops[0], y = m;
        }
    }
    ir_order_free(&o);
    assert_non_null(y);
    int64_t keep = y->mem;
    y->mem = x->mem;
    FILE *t1 = tmpfile(), *t2 = tmpfile();
    assert_true(t1 && t2);
    assert_true(ir_check_schedule(g, diag_new(f->a, t1)) > 0);
    assert_true(wrote(t1, "on stream 1 may still be accessing"));
    assert_null(executor(f, diag_new(f->a, t2)));
    assert_true(wrote(t2, "on stream 1 may still be accessing"));
    y->mem = keep;
    assert_int_equal(ir_check_schedule(g, f->d), 0);
}

/* A plan for a smaller batch does not hold the run's values, nor one for
 * f32 storage a run in the declared dtypes (whose kernels store other
 * values: the router's linear reads its bf16 operands through their
 * casts): both refused. */
static void test_plan_for_another_run_is_refused(void **state) {
    Fix *f = *state;
    CpuWeightSource ws = {rt_checkpoint_read_f32, f->ck};
    GpuOptions go = {.tune = tu_tune(), .max_batch = f->B + 2, .max_seq = f->S, .max_ctx = f->S, .f32_storage = true};
    FILE *t1 = tmpfile(), *t2 = tmpfile();
    assert_true(t1 && t2);
    assert_null(gpu_exec_new(f->g, &ws, &go, diag_new(f->a, t1)));
    assert_true(wrote(t1, "does not hold this run"));
    go.max_batch = f->B, go.f32_storage = false;
    assert_null(gpu_exec_new(f->g, &ws, &go, diag_new(f->a, t2)));
    assert_true(wrote(t2, "which the kernels do not store"));
}

/* The fixture's config at sizes merge-linears merges (a block-aligned
 * part first: q_a's 128 rows beside kv_a, gate and up), merged or not,
 * over two streams as above, planned at the executor's capacity. (The
 * merged latent's ops come before q_b's GEMM, the cache append that
 * codegen puts in their kernel after it: plan-memory schedules the two
 * together, or the executor refuses the plan's kernel order.) */
static IrGraph *merge_graph(Fix *f, bool merge) {
    static const FeSetting sets[] = {{"q_lora_rank", "128"}, {"intermediate_size", "256"}, {"moe_intermediate_size", "128"}};
    FeOptions fo = {rt_checkpoint_config_path(f->ck), sets, 3};
    IrGraph *g = fe_compile_file(f->a, f->d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    const char *pipe = arena_printf(f->a,
                                    "shape-infer,fold-constants,dce,fp8-quant,cse,dce,%snode-limited-routing{nodes=1,gpus-per-node=2},"
                                    "microbatch-overlap{n=2},fuse,plan-memory{batch=%lld,seq=%lld,ctx=%lld,f32-storage=1}",
                                    merge ? "merge-linears," : "", (long long)f->B, (long long)f->S, (long long)f->S);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(f->a, f->d, pipe, &pp));
    assert_true(pass_pipeline_run(&pp, g, &ro, f->d));
    return g;
}

static void test_weight_values_held_once(void **state) {
    Fix *f = *state;
    uint64_t seed = 11;
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = f->B, .max_seq = f->S, .max_ctx = f->S, .f32_storage = true};
    IrGraph *g = merge_graph(f, true), *g0 = merge_graph(f, false);
    GpuExec *gx = gpu_exec_new(g, &ws, &go, f->d), *gx0 = gpu_exec_new(g0, &ws, &go, f->d);
    assert_non_null(gx);
    assert_non_null(gx0);
    unsigned char *wv = malloc((size_t)g->nnodes + 1);
    assert_true(wv && ir_weight_values(g, NULL, wv));
    int count[IR_WV_LOAD + 1] = {0}, held = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        count[wv[i]]++;
        assert_false(ir_wv_kept(wv[i]) && n->mem >= 0); /* nothing of weights alone in the slab */
        assert_int_equal(gpu_exec_offset(gx, i), n->mem);
        held += n->mem == IR_MEM_WEIGHTS;
    }
    free(wv);
    /* the merged weights (codes and scales of q_a + kv_a and the w13 pairs) loaded in place; kv_b_proj freed after load */
    assert_true(count[IR_WV_JOINED] >= 4 && count[IR_WV_PART] == 2 * count[IR_WV_JOINED]);
    assert_true(count[IR_WV_LOAD] > 0 && held > count[IR_WV_JOINED]);
    int64_t w1 = gpu_exec_weight_bytes(gx), w0 = gpu_exec_weight_bytes(gx0);
    fprintf(stderr, "%d values held with the weights; weights %lld bytes merged, %lld without merge-linears\n", held, (long long)w1,
            (long long)w0);
    assert_true(w1 <= w0); /* each part in its rows of the concat: no weight twice */
    gpu_exec_free(gx0);
    int64_t ng, nc;
    float *lg = logits_of(f, gx, NULL, &ng);
    CpuExec *cx = cpu_exec_new(g, &ws, NULL, f->d);
    assert_non_null(cx);
    float *lc = logits_of(f, NULL, cx, &nc);
    assert_int_equal(ng, nc);
    double num = 0, den = 0;
    for (int64_t i = 0; i < ng; i++) num += ((double)lg[i] - lc[i]) * ((double)lg[i] - lc[i]), den += (double)lc[i] * lc[i];
    fprintf(stderr, "merged, logits vs the CPU executor: rel L2 %.2e\n", sqrt(num / (den > 0 ? den : 1e-30)));
    assert_true(den > 0 && sqrt(num / den) <= 1e-4);
    free(lg), free(lc);
    cpu_exec_free(cx);
    gpu_exec_free(gx);
}

int main(void) {
    if (!tu_hopper()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_executor_takes_the_plan), cmocka_unit_test(test_planted_hazard_is_refused),
                                       cmocka_unit_test(test_plan_for_another_run_is_refused),
                                       cmocka_unit_test(test_weight_values_held_once)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
