/* test_gpu_ops.c — every kernel of the CUDA backend against the CPU
 * executor, op by op, on the tiny fixtures: the graph is compiled with the
 * bf16 pipeline (BF16 checkpoint) and the fp8 pipeline (FP8 checkpoint),
 * both executors run the same tokens, and each value the GPU stores is
 * compared with the CPU's value of the same node. Exits 77 (skipped)
 * without a GPU.
 *
 * Each op is checked on exactly the inputs the GPU kernel saw: the CPU
 * executor computes a node, the test compares that with the GPU's stored
 * value, then hands the GPU's value on to the CPU's next ops. Weights are
 * compared too (the upload path: bf16, E4M3 codes, block scales).
 *
 * Tolerances per op, relative L2: 1e-2 for floating-point values (the GPU
 * rounds what it stores to bf16, 2^-9 relative, and sums in another
 * order); 0.15 for FP8 codes (a value within a rounding of a code boundary
 * moves one code, 1/8 of a binade); integer results (top-k expert ids)
 * may differ in at most 5% of entries (a near-tie broken by a rounding).
 * GEMMs that cuBLASLt can run go to it by default; a widened random model
 * (tensor-core tiles with ragged edges, several K blocks, experts whose
 * rows fill more than one tile) runs once that way and once on the
 * generated kernels alone, and the test checks which path ran; once more
 * as a prefill followed by decode steps (the caches compared too), every
 * step compared.
 *
 * Each fixture runs twice: with the declared storage (bf16) and with
 * --storage f32, where nothing is rounded to 16 bits and the bounds
 * tighten to 1e-4 (floats), 0.02 (FP8 codes) and 1% (integers). That
 * storage takes the mma.sync tile unless DSCC_GEMM_TILE=wgmma asks for the
 * wgmma one, whose FP8 GEMM outputs are held to 5e-4 instead: Hopper's FP8
 * tensor cores add a wgmma's products with fewer bits than f32 (the reason
 * for DeepSeek's promotion to f32 every 128 of K, which the tile does),
 * 1.1e-4 to 1.7e-4 on an H200; the mma.sync tile's are exact to 3e-7.
 *
 * The tiny model with random weights also runs 66 positions of prefill
 * and 2 decode steps (67..68 keys: the decode attention splits its keys),
 * once more with a hidden size of 512 and one decode step (its FP8
 * linears' K split between blocks in the decode step).
 * With DSCC_EMULATED=1 (the emu.test_gpu_ops CTest entry: tests/emu/, the
 * kernels compiled for the CPU) the widened model is skipped: too slow to
 * emulate in CI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/"

typedef struct {
    const IrGraph *g;
    GpuExec *gx;
    int checked, failed;
    double worst;
    bool f32; /* --storage f32: nothing rounded to 16 bits, tolerances tighten */
    bool wgmma; /* the GEMMs run on the wgmma tile (DSCC_GEMM_TILE is not 'mma') */
} Cmp;

/* After the CPU computes node id: compare with the GPU's stored value of
 * it (if the GPU stores it), then continue from the GPU's value, so every
 * op is checked on the inputs the GPU kernel saw. */
static void compare_node(void *ctx, int id, float *c, int64_t nc) {
    Cmp *m = ctx;
    const IrNode *n = m->g->nodes[id];
    int64_t ng = 0;
    const float *gv = n->op == IR_OP_INPUT ? NULL : gpu_exec_value(m->gx, id, &ng);
    if (!gv) return; /* inlined into a fused kernel: never stored */
    assert_int_equal(nc, ng);
    m->checked++;
    bool bad;
    double err;
    if (ir_dtype_is_int(n->type.dtype)) {
        int64_t diff = 0;
        for (int64_t k = 0; k < nc; k++) diff += c[k] != gv[k];
        err = (double)diff / (double)(nc ? nc : 1);
        bad = err > (m->f32 ? 0.01 : 0.05);
    } else {
        double num = 0, den = 0;
        for (int64_t k = 0; k < nc; k++) {
            num += ((double)gv[k] - c[k]) * ((double)gv[k] - c[k]);
            den += (double)c[k] * c[k];
        }
        err = sqrt(num / (den > 0 ? den : 1e-30));
        bool fp8_gemm = n->op == IR_OP_FP8_LINEAR || n->op == IR_OP_FP8_EXPERT_LINEAR;
        double f32_bound = fp8_gemm && m->wgmma ? 5e-4 : 1e-4;
        bad = !(err <= (n->type.dtype == IR_DT_FP8E4M3 ? (m->f32 ? 0.02 : 0.15) : m->f32 ? f32_bound : 1e-2));
        if (n->type.dtype != IR_DT_FP8E4M3 && err > m->worst) m->worst = err;
    }
    if (bad && m->failed++ < 25)
        fprintf(stderr, "  MISMATCH %%%d %s %s: %s %.3e (%lld values) at %s:%d:%d\n", id, ir_op_name(n->op), ir_dtype_name(n->type.dtype),
                ir_dtype_is_int(n->type.dtype) ? "differing" : "rel L2", err, (long long)nc, n->loc.file ? n->loc.file : "?",
                n->loc.line, n->loc.col);
    if (n->op != IR_OP_WEIGHT) memcpy(c, gv, sizeof(float) * (size_t)nc);
}

/* Compiles the model (fixture checkpoint `dir`, or seeded random weights
 * with models/tiny/config.json and `sets` when dir is NULL), runs both
 * executors on the same B x S tokens and compares every stored value.
 * The random model's S is len, or 96 when len is 0 (the widened model's
 * 192 tokens a pass); the tiny decode tests pass less (SHORT_P). */
static void check_graph(const char *dir, const FeSetting *sets, int nsets, bool fp8, bool f32, bool no_blas, int decode, const char *routing,
                        int len) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtCheckpoint *ck = dir ? rt_checkpoint_open(a, d, dir) : NULL;
    assert_true(ck || !dir);
    FeOptions fo = {ck ? rt_checkpoint_config_path(ck) : DSCC_SOURCE_DIR "/models/tiny/config.json", sets, nsets};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    const char *pipe = arena_printf(a, "shape-infer,fold-constants,dce,%scse,dce,node-limited-routing%s,fuse", fp8 ? "fp8-quant," : "",
                                    routing ? routing : "");
    PassPipeline pp;
    assert_true(pass_pipeline_parse(a, d, pipe, &pp));
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_run(&pp, g, &ro, d));
    RtArray tok = {0};
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/tokens.npy", dir);
        assert_true(rt_npy_read(d, path, &tok));
    } else { /* fresh random ids each run */
        int L = len > 0 ? len : 96;
        tok.shape[0] = 2, tok.shape[1] = L;
        tok.data = malloc(sizeof(float) * 2 * (size_t)L);
        srand((unsigned)tu_test_seed());
        for (int i = 0; i < 2 * L; i++) tok.data[i] = (float)(rand() % 1000);
    }
    int64_t B = tok.shape[0], S = tok.shape[1];

    uint64_t seed = tu_test_seed();
    CpuWeightSource ws = ck ? (CpuWeightSource){rt_checkpoint_read_f32, ck} : cpu_random_weights(&seed);
    /* decode: the first S - decode positions as a prefill, then `decode` steps of one position each;
     * both executors take every step, the comparison covers every step */
    int64_t P = decode ? S - decode : S;
    GpuOptions go = {.tune = tu_tune(), .max_batch = B, .max_seq = P, .max_ctx = S, .keep_all = true, .f32_storage = f32, .no_blas = no_blas};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    const char *tile = getenv("DSCC_GEMM_TILE");
    Cmp m = {.g = g, .gx = gx, .f32 = f32, .wgmma = tile && *tile ? strcmp(tile, "wgmma") == 0 : !f32}; /* as cg_generate picks it */
    CpuOptions co = {.threads = 8, .after_node = compare_node, .hook_ctx = &m};
    CpuExec *cx = cpu_exec_new(g, &ws, &co, d);
    assert_non_null(cx);
    float *stok = malloc(sizeof(float) * (size_t)(B * S)), *spos = malloc(sizeof(float) * (size_t)(B * S));
    for (int64_t t0 = 0; t0 < S;) {
        int64_t n = t0 == 0 ? P : 1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < n; j++) stok[b * n + j] = tok.data[b * S + t0 + j], spos[b * n + j] = (float)(t0 + j);
        CpuInput step[2] = {{"tokens", 2, {B, n}, stok}, {"positions", 2, {B, n}, spos}};
        assert_true(gpu_exec_run(gx, step, 2, d));
        assert_true(cpu_exec_run(cx, step, 2, d));
        t0 += n;
    }
    free(stok);
    free(spos);
    char what[256] = "tiny random model";
    for (int i = 0; i < nsets; i++) /* the settings that widen it */
        snprintf(what + strlen(what), sizeof what - strlen(what), ", %s=%s", sets[i].name, sets[i].value);
    fprintf(stderr, "%s (%s, storage %s%s, %d GEMMs by %s): %d stored values compared with the CPU executor on the same inputs, "
                    "%d outside tolerance, worst float rel L2 %.2e\n",
            dir ? dir : what, fp8 ? "fp8" : "bf16", f32 ? "f32" : "declared",
            decode ? ", prefill then one-position decode steps" : "", gpu_exec_last_lib_calls(gx),
            gpu_exec_blas(gx) ? gpu_exec_blas(gx) : "cuBLASLt (not in use)", m.checked, m.failed, m.worst);
    if (!dir && !f32 && !no_blas && !decode && gpu_exec_blas(gx)) assert_true(gpu_exec_last_lib_calls(gx) > 0); /* its shapes are cuBLASLt's */
    if (no_blas) assert_int_equal(gpu_exec_last_lib_calls(gx), 0);
    assert_true(m.checked > 20);
    assert_int_equal(m.failed, 0);
    gpu_exec_free(gx);
    cpu_exec_free(cx);
    free(tok.data);
    rt_checkpoint_close(ck);
    arena_free(a);
}

static void check_fixture(const char *dir, bool fp8, bool f32) { check_graph(dir, NULL, 0, fp8, f32, false, 0, NULL, 0); }

static void test_bf16_ops(void **state) { check_fixture(FIX "tiny_bf16", false, false); }
static void test_fp8_ops(void **state) { check_fixture(FIX "tiny_fp8", true, false); }
static void test_bf16_ops_f32(void **state) { check_fixture(FIX "tiny_bf16", false, true); }
static void test_fp8_ops_f32(void **state) { check_fixture(FIX "tiny_fp8", true, true); }
/* The world layout on one process (docs/IR.md): compiled for 2 x 2 and
 * 1 x 2 GPUs, so dispatch fills the unsent blocks (ids -1), the expert
 * GEMMs skip those slots (grouped FP8 GEMM: its bucket of -1 tiles stores
 * zeros; per-row BF16 kernel) and combine sums over the K slots. */
static void test_fp8_ops_routed(void **state) { check_graph(FIX "tiny_fp8", NULL, 0, true, false, false, 0, "{nodes=2,gpus-per-node=2}", 0); }
static void test_bf16_ops_routed(void **state) { check_graph(FIX "tiny_bf16", NULL, 0, false, false, false, 0, "{nodes=1,gpus-per-node=2}", 0); }

/* The tiny model widened so the FP8 GEMMs see several 128-wide K blocks,
 * several 64-row and 128-output tiles with ragged edges, and experts whose
 * rows fill more than one tile: 192 tokens x 4 of 16 experts. */
static const FeSetting WIDE[] = {{"hidden_size", "1024"}, {"intermediate_size", "1536"}, {"moe_intermediate_size", "320"},
                                 {"q_lora_rank", "384"}, {"kv_lora_rank", "256"}, {"num_attention_heads", "8"}};
static bool emulated(void) {
    const char *e = getenv("DSCC_EMULATED");
    return e && *e && strcmp(e, "0") != 0;
}
#define SKIP_EMULATED()                                                                                     \
    do {                                                                                                    \
        if (emulated()) {                                                                                   \
            fprintf(stderr, "skipped on the emulated device (DSCC_EMULATED=1): the widened model\n");       \
            skip();                                                                                         \
        }                                                                                                   \
    } while (0)
static void test_fp8_wide_f32(void **state) { SKIP_EMULATED(); check_graph(NULL, WIDE, 6, true, true, false, 0, NULL, 0); }
static void test_fp8_wide(void **state) { SKIP_EMULATED(); check_graph(NULL, WIDE, 6, true, false, false, 0, NULL, 0); } /* cuBLASLt where it can */
static void test_fp8_wide_generated(void **state) { SKIP_EMULATED(); check_graph(NULL, WIDE, 6, true, false, true, 0, NULL, 0); } /* generated kernels */
/* 93 positions of prefill, then 3 decode steps over 94..96 keys (the cache read back and compared each step) */
static void test_fp8_wide_decode(void **state) { SKIP_EMULATED(); check_graph(NULL, WIDE, 6, true, false, false, 3, NULL, 0); }
/* the same on the tiny model itself (random weights): cheap enough for the emulated device; with
 * logits_last_only, as dscc run compiles it, so the LM head reads the slice of each step's last position.
 * Its prefill is SHORT_P positions, not 93: the decode attention splits 67..68 keys into the same 3 parts
 * as 94..96 (cg_key_splits: 32 keys a block at batch 2, 4 heads, the last part partial), the prefill's
 * 64-row query and key tiles and its GEMMs' row tiles keep a ragged edge (66 = 64 + 2, 132 rows).
 * SHORT_STEPS decode steps, not 3: the first reads the cache the prefill wrote, the second also the
 * entry a step wrote; a third launched the same kernels again, and a step's expert GEMM costs the
 * emulated device what the prefill's does (a persistent grid of 132 blocks whatever its rows). */
#define SHORT_P 66
#define SHORT_STEPS 2
static const FeSetting LAST[] = {{"logits_last_only", "true"}};
static void test_fp8_decode(void **state) { check_graph(NULL, LAST, 1, true, false, false, SHORT_STEPS, NULL, SHORT_P + SHORT_STEPS); }
/* ... with a hidden size of 512, so the FP8 linears reading it have 4 K blocks and a decode step
 * (2 rows) splits their K between blocks (cg_k_splits); also cheap enough for the emulated device */
static const FeSetting MID[] = {{"hidden_size", "512"}};
/* One decode step: what these add (a step's K split, its expert GEMMs') is in every step, and a step
 * at hidden 512 is the emulated suite's dearest (its expert GEMMs ~1 s a launch); a step reading what
 * a step wrote is test_fp8_decode's and test_fp8_decode_auto's second. */
#define MID_STEPS 1
/* (attn_impl "absorb" here: its prefill too in the absorbed form, which the default, "auto", leaves to
 * decode steps) */
static const FeSetting MID_ABSORB[] = {{"hidden_size", "512"}, {"attn_impl", "absorb"}};
static void test_fp8_mid_decode(void **state) { check_graph(NULL, MID_ABSORB, 2, true, false, false, MID_STEPS, NULL, SHORT_P + MID_STEPS); }
/* ... routed over 2 x 2 GPUs: a decode step's expert GEMMs split K between blocks, -1 tiles included */
static void test_fp8_mid_decode_routed(void **state) { check_graph(NULL, MID, 1, true, false, false, MID_STEPS, "{nodes=2,gpus-per-node=2}", SHORT_P + MID_STEPS); }
/* attn_impl "auto" (the default): the prefill takes the naive form (kv_b expansion, each head a batch row of the
 * attention) and the decode steps the absorbed one; the kernels of the form a step does not take
 * are not launched (their values are not compared). d_qk 48 / d_v 32, so both forms run on the
 * attention's tensor-core form, as V3's do (one test: the emulated suite is near its time limit). */
static const FeSetting AUTO[] = {{"attn_impl", "auto"}, {"qk_nope_head_dim", "32"}, {"v_head_dim", "32"}};
static void test_fp8_decode_auto(void **state) { check_graph(NULL, AUTO, 3, true, false, false, SHORT_STEPS, NULL, SHORT_P + SHORT_STEPS); }


/* Logits of a prefill of P positions then `steps` one-position decode
 * steps (B rows), each step's appended to out ([steps + 1][B * V]). */
static void run_steps(GpuExec *gx, const float *tok, int64_t B, int64_t P, int steps, float *out, int64_t per, DiagEngine *d) {
    float *st = malloc(sizeof(float) * (size_t)(B * P)), *sp = malloc(sizeof(float) * (size_t)(B * P));
    gpu_exec_reset(gx);
    for (int s = 0, t0 = 0; s <= steps; s++) {
        int64_t n = s == 0 ? P : 1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < n; j++) st[b * n + j] = tok[b * (P + steps) + t0 + j], sp[b * n + j] = (float)(t0 + j);
        CpuInput in[2] = {{"tokens", 2, {B, n}, st}, {"positions", 2, {B, n}, sp}};
        assert_true(gpu_exec_run(gx, in, 2, d));
        int rank;
        int64_t dims[IR_MAX_RANK];
        const float *lg = gpu_exec_output(gx, "logits", &rank, dims);
        assert_non_null(lg);
        int64_t ne = 1;
        for (int k = 0; k < rank; k++) ne *= dims[k];
        assert_true(ne >= per);
        memcpy(out + s * per, lg, sizeof(float) * (size_t)per);
        t0 += (int)n;
    }
    free(st);
    free(sp);
}

/* CUDA graphs: a prefill of 12 positions and 2 decode steps of one shape,
 * launched as graphs, give the logits of the same steps launched one by
 * one; the decode shape is captured once and replayed, its kernel nodes
 * updated with each step's context length, and a second sequence replays
 * both shapes, the decode graph twice in a row. (The graphs' mechanics
 * do not depend on the lengths: 40 positions and 5 steps took 98 s of the
 * emulated device's 259.) */
static void test_fp8_decode_graphs(void **state) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    FeSetting sets[1] = {{"num_nextn_predict_layers", "0"}};
    FeOptions fo = {DSCC_SOURCE_DIR "/models/tiny/config.json", sets, 1};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    PassPipeline pp;
    assert_true(pass_pipeline_parse(a, d, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,node-limited-routing,fuse", &pp));
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_run(&pp, g, &ro, d));
    enum { B = 2, P = 12, STEPS = 2, V = 1000 };
    float tok[B * (P + STEPS)];
    srand((unsigned)tu_test_seed());
    for (int i = 0; i < B * (P + STEPS); i++) tok[i] = (float)(rand() % V);
    uint64_t seed = tu_test_seed();
    CpuWeightSource ws = cpu_random_weights(&seed);
    GpuOptions go = {.tune = tu_tune(), .max_batch = B, .max_seq = P, .max_ctx = P + STEPS};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, d);
    assert_non_null(gx);
    int64_t per = (int64_t)B * V; /* the prefill's logits are [B, P, V]: its first B * V values are compared */
    float *plain = malloc(sizeof(float) * (size_t)(per * (STEPS + 1))), *graphed = malloc(sizeof(float) * (size_t)(per * (STEPS + 1)));
    run_steps(gx, tok, B, P, STEPS, plain, per, d);
    GpuGraphStats st;
    gpu_exec_graph_stats(gx, &st);
    assert_int_equal(st.captures, 0);
    gpu_exec_set_graphs(gx, true);
    run_steps(gx, tok, B, P, STEPS, graphed, per, d);
    gpu_exec_graph_stats(gx, &st);
    fprintf(stderr, "CUDA graphs: %d captured, %d replays, %lld kernel nodes updated, %d held\n", st.captures, st.replays,
            (long long)st.node_updates, st.cached);
    assert_int_equal(st.captures, 2); /* the prefill's shape, the decode step's */
    assert_int_equal(st.replays, STEPS - 1);
    assert_true(st.node_updates >= STEPS - 1);
    assert_int_equal(st.cached, 2);
    double num = 0, den = 0;
    for (int64_t i = 0; i < per * (STEPS + 1); i++) num += ((double)graphed[i] - plain[i]) * ((double)graphed[i] - plain[i]), den += (double)plain[i] * plain[i];
    fprintf(stderr, "graph vs one-by-one logits over %d steps: rel L2 %.2e\n", STEPS + 1, sqrt(num / (den > 0 ? den : 1e-30)));
    assert_true(den > 0 && sqrt(num / den) <= 1e-5);
    /* a second sequence replays the decode graph from the start of its context */
    run_steps(gx, tok, B, P, STEPS, graphed, per, d);
    gpu_exec_graph_stats(gx, &st);
    assert_int_equal(st.captures, 2);
    assert_int_equal(st.replays, 2 * STEPS);
    num = 0;
    for (int64_t i = 0; i < per * (STEPS + 1); i++) num += ((double)graphed[i] - plain[i]) * ((double)graphed[i] - plain[i]);
    assert_true(sqrt(num / den) <= 1e-5);
    free(plain);
    free(graphed);
    gpu_exec_free(gx);
    arena_free(a);
}

int main(void) {
    Arena *a = arena_new();
    DiagEngine *q = diag_new(a, NULL);
    RtCuda *c = rt_cuda_open(q, 0);
    if (!c || rt_cuda_sm(c) < 90) {
        printf("skipped: %s\n", c ? "the GPU is not a Hopper (sm_90)" : "no CUDA GPU on this machine");
        rt_cuda_close(c);
        arena_free(a);
        return 77;
    }
    printf("device: %s%s\n", rt_cuda_device_name(c), emulated() ? " (DSCC_EMULATED=1: the widened-model tests are skipped)" : "");
    rt_cuda_close(c);
    arena_free(a);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bf16_ops), cmocka_unit_test(test_fp8_ops),
                                       cmocka_unit_test(test_bf16_ops_f32), cmocka_unit_test(test_fp8_ops_f32),
                                       cmocka_unit_test(test_fp8_decode), cmocka_unit_test(test_fp8_decode_graphs),
                                       cmocka_unit_test(test_fp8_wide_f32), cmocka_unit_test(test_fp8_wide),
                                       cmocka_unit_test(test_fp8_wide_generated), cmocka_unit_test(test_fp8_wide_decode),
                                       cmocka_unit_test(test_fp8_mid_decode), cmocka_unit_test(test_fp8_ops_routed),
                                       cmocka_unit_test(test_bf16_ops_routed), cmocka_unit_test(test_fp8_mid_decode_routed),
                                       cmocka_unit_test(test_fp8_decode_auto)};
    const char *only = getenv("DSCC_TEST_FILTER"); /* e.g. '*auto*': run the matching tests alone */
    if (only && *only) cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
