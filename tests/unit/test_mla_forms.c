/* test_mla_forms.c — the two forms of DeepSeek-V3's attention and the op
 * that picks one per step.
 *
 *   - fresh_select(a, b) yields a in a step that starts with nothing cached
 *     and b in every later one (and again a after a reset);
 *   - models/deepseek_v3.dsl with attn_impl "absorb", "naive" and "auto"
 *     computes the same logits on the CPU, in BF16 and with the FP8
 *     emulation, over a prefill and then one-token decode steps ("auto" takes
 *     the naive form for the prefill and the absorbed one after it);
 *   - "auto" has one fresh_select per attention layer and the absorbed
 *     graph none;
 *   - generated for V3 at full width (two layers), a cached step of "auto"
 *     runs the absorbed graph's kernels, the same code in the same order,
 *     but for the join (fresh_select in the residual add's kernel): the
 *     naive form costs a decode step nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/gen.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "tests/unit/testutil.h"

static const char *pick_model = "dim B, S, T;\n"
                                "input x: f32[B, S];\n"
                                "let c = kv_cache(reshape(x, [B, S, 1]), name=\"c\");\n"
                                "output y = fresh_select(x * 2.0, x * 3.0);\n"
                                "output ctx = c;\n";

/* One step of the pick model on x = 1 .. B*S: y must be `times` x. */
static void pick_step(CpuExec *x, DiagEngine *d, int64_t S, float times) {
    float in[2 * 4];
    for (int i = 0; i < 2 * S; i++) in[i] = (float)(i + 1);
    CpuInput ci[1] = {{"x", 2, {2, S}, in}};
    assert_true(cpu_exec_run(x, ci, 1, d));
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *y = cpu_exec_output(x, "y", &rank, dims);
    assert_non_null(y);
    for (int i = 0; i < 2 * S; i++) assert_true(y[i] == times * in[i]);
}

static void test_fresh_select_picks_by_cache(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = fe_compile_string(a, d, "pick.dsl", pick_model, strlen(pick_model), NULL);
    assert_non_null(g);
    assert_int_equal(ir_verify(g, d), 0);
    uint64_t seed = 1;
    CpuWeightSource ws = cpu_random_weights(&seed);
    CpuOptions o = {.threads = 1};
    CpuExec *x = cpu_exec_new(g, &ws, &o, d);
    assert_non_null(x);
    pick_step(x, d, 4, 2.0f); /* nothing cached: the first operand */
    pick_step(x, d, 1, 3.0f); /* a context of 4: the second */
    pick_step(x, d, 2, 3.0f);
    cpu_exec_reset(x);
    pick_step(x, d, 1, 2.0f); /* fresh again */
    cpu_exec_free(x);
    arena_free(a);
}

#define B 2
#define L 9 /* positions: a prefill of P, then one-token steps */
#define P 6

/* The tiny V3 (models/tiny/config.json, no MTP) with attn_impl `impl`,
 * through the pipeline (with fp8-quant when fp8): logits [B, L, vocab] of
 * a P-token prefill and L - P one-token steps on seeded weights and tokens. */
static float *run_model(const char *impl, bool fp8, int *nselect, int64_t *vocab) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    FeSetting sets[2] = {{"attn_impl", impl}, {"num_nextn_predict_layers", "0"}};
    FeOptions fo = {DSCC_SOURCE_DIR "/models/tiny/config.json", sets, 2};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(a, d, fp8 ? "shape-infer,fold-constants,dce,fp8-quant,cse,dce" : "shape-infer,fold-constants,dce,cse,dce", &pp));
    assert_true(pass_pipeline_run(&pp, g, &ro, d));
    *nselect = 0;
    for (int i = 0; i < g->nnodes; i++) *nselect += g->nodes[i]->op == IR_OP_FRESH_SELECT;
    uint64_t seed = 20261206;
    CpuWeightSource ws = cpu_random_weights(&seed);
    CpuOptions o = {.threads = 2};
    CpuExec *x = cpu_exec_new(g, &ws, &o, d);
    assert_non_null(x);
    float *all = NULL;
    uint64_t r = 7;
    float tok[B * L];
    for (int i = 0; i < B * L; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (float)((r >> 33) % 1000);
    }
    for (int t0 = 0; t0 < L;) {
        int S = t0 == 0 ? P : 1;
        float st[B * L], sp[B * L];
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++) st[b * S + s] = tok[b * L + t0 + s], sp[b * S + s] = (float)(t0 + s);
        CpuInput in[2] = {{"tokens", 2, {B, S}, st}, {"positions", 2, {B, S}, sp}};
        assert_true(cpu_exec_run(x, in, 2, d));
        int rank;
        int64_t dims[IR_MAX_RANK];
        const float *y = cpu_exec_output(x, "logits", &rank, dims);
        assert_non_null(y);
        assert_true(rank == 3 && dims[0] == B && dims[1] == S);
        *vocab = dims[2];
        if (!all) all = calloc((size_t)(B * L * dims[2]), sizeof(float));
        for (int b = 0; b < B; b++)
            memcpy(all + ((size_t)b * L + t0) * dims[2], y + (size_t)b * S * dims[2], sizeof(float) * (size_t)(S * dims[2]));
        t0 += S;
    }
    cpu_exec_free(x);
    arena_free(a);
    return all;
}

static void check_forms(bool fp8) {
    int ns[3];
    int64_t V = 0;
    float *absorb = run_model("absorb", fp8, &ns[0], &V), *naive = run_model("naive", fp8, &ns[1], &V), *autom = run_model("auto", fp8, &ns[2], &V);
    assert_int_equal(ns[0], 0);
    assert_int_equal(ns[1], 0);
    assert_int_equal(ns[2], 3); /* one per layer of the tiny model */
    size_t n = (size_t)(B * L * V);
    double en = tu_rel_maxdiff(naive, absorb, n), ea = tu_rel_maxdiff(autom, absorb, n);
    print_message("%s: naive vs absorbed %.3g, auto vs absorbed %.3g (max abs diff / max, %d-token prefill + %d steps)\n",
                  fp8 ? "fp8" : "bf16", en, ea, P, L - P);
    /* the same arithmetic up to f32 rounding (the CPU runs FP32; with FP8 the
     * expansion stays BF16: its weight is shared with the absorbed einsums) */
    assert_true(en <= 2e-5);
    assert_true(ea <= 2e-5);
    /* and not vacuously: the logits vary */
    assert_true(tu_rel_maxdiff(absorb, absorb + V, (size_t)V) > 1e-3);
    free(absorb);
    free(naive);
    free(autom);
}

static void test_forms_agree_bf16(void **state) {
    (void)state;
    check_forms(false);
}

static void test_forms_agree_fp8(void **state) {
    (void)state;
    check_forms(true);
}

/* V3 at full width, two layers (one dense), FP8, through the "kernels" preset and the code generator. */
static CgProgram *v3_program(Arena *a, DiagEngine *d, const char *impl, IrGraph **gp) {
    FeSetting sets[4] = {{"attn_impl", impl}, {"num_hidden_layers", "2"}, {"first_k_dense_replace", "1"}, {"num_nextn_predict_layers", "0"}};
    FeOptions fo = {NULL, sets, 4};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    PassPreset pr = {.fp8 = true};
    assert_true(pass_pipeline_parse(a, d, pass_preset(a, "kernels", &pr), &pp));
    assert_true(pass_pipeline_run(&pp, g, &ro, d));
    CgGenOptions o = {.tune = tu_tune(), .tile = CG_TILE_WGMMA};
    CgProgram *p = cg_generate(a, d, g, &o);
    assert_non_null(p);
    *gp = g;
    return p;
}

/* The kernels a cached step launches (as the runtime picks them: some member
 * used by such a step, from the roots through fresh_select's second operand,
 * and not all of them functions of the weights alone), into ks; their count. */
static int cached_step_kernels(const IrGraph *g, const CgProgram *p, int *ks) {
    bool *need = calloc((size_t)g->nnodes + 1, 1), *w = calloc((size_t)g->nnodes + 1, 1);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        w[i] = n->op == IR_OP_WEIGHT;
        if (n->nops > 0 && ir_op_computed(n->op) && n->op != IR_OP_KV_CACHE) {
            w[i] = true;
            for (int k = 0; k < n->nops; k++) w[i] &= w[n->ops[k]->id];
        }
    }
    for (int i = g->nnodes - 1; i >= 0; i--) {
        const IrNode *n = g->nodes[i];
        IrOpClass c = ir_op_class(n->op);
        need[i] |= c == IR_CLASS_OUTPUT || c == IR_CLASS_STATE || c == IR_CLASS_COMM;
        for (int k = 0; need[i] && k < n->nops; k++)
            if (n->op != IR_OP_FRESH_SELECT || k == 1) need[n->ops[k]->id] = true;
    }
    int nk = 0;
    for (int k = 0; k < p->nkernels; k++) {
        bool used = false, konst = true;
        for (int j = 0; j < p->kernels[k].nnodes; j++) used |= need[p->kernels[k].nodes[j]], konst &= w[p->kernels[k].nodes[j]];
        if (used && !konst) ks[nk++] = k;
    }
    free(need);
    free(w);
    return nk;
}

/* A module's source without its comment lines (the IR ops' numbers and DSL lines). */
static char *code_of(const CgProgram *p, int k) {
    const char *s = p->modules[p->kernels[k].module].source;
    char *out = malloc(strlen(s) + 1), *o = out;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s + 1) : strlen(s);
        if (strncmp(s, "//", 2) != 0) memcpy(o, s, len), o += len;
        s += len;
    }
    *o = 0;
    return out;
}

static void test_auto_cached_step_kernels(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *ga, *gu;
    CgProgram *pa = v3_program(a, d, "absorb", &ga), *pu = v3_program(a, d, "auto", &gu);
    int ka[256], ku[256];
    assert_true(pa->nkernels < 256 && pu->nkernels < 256);
    int na = cached_step_kernels(ga, pa, ka), nu = cached_step_kernels(gu, pu, ku), joins = 0;
    print_message("a cached step: %d kernels absorbed, %d auto (of %d / %d generated)\n", na, nu, pa->nkernels, pu->nkernels);
    assert_int_equal(na, nu);
    for (int i = 0; i < na; i++) {
        const CgKernel *x = &pa->kernels[ka[i]], *y = &pu->kernels[ku[i]];
        bool join = false;
        for (int j = 0; j < y->nnodes; j++) join |= gu->nodes[y->nodes[j]]->op == IR_OP_FRESH_SELECT;
        if (join) { /* the residual add's kernel, which reads one of the two forms' outputs */
            joins++;
            assert_int_equal(x->nnodes + 1, y->nnodes);
            continue;
        }
        char *cx = code_of(pa, ka[i]), *cy = code_of(pu, ku[i]);
        if (strcmp(cx, cy) != 0 || x->nphases != y->nphases || x->nslots != y->nslots) fail_msg("kernel %s differs from %s", y->name, x->name);
        free(cx);
        free(cy);
    }
    assert_int_equal(joins, 2); /* one per layer */
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fresh_select_picks_by_cache), cmocka_unit_test(test_forms_agree_bf16),
                                       cmocka_unit_test(test_forms_agree_fp8), cmocka_unit_test(test_auto_cached_step_kernels)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
