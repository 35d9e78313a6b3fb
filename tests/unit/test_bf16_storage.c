/* test_bf16_storage.c — what the CUDA backend's bf16 storage costs in
 * fidelity, measured without a GPU.
 *
 * The CPU executor runs the tiny BF16 fixture with every value the CUDA
 * backend stores as bf16 (the fused groups' results, as codegen plans them)
 * rounded to bf16 right after it is computed, and the logits are compared
 * with transformers' FP32 ones. This separates the storage plan from the
 * GPU's summation order: with no top-k routing decision flipped, bf16
 * storage must stay inside the 2e-2 (transformers' own BF16 run of
 * this fixture is 1.3e-2 from its FP32 one). The second check shows why
 * the GPU's figure can still land outside: leaving only the residual adds
 * unrounded, a different but equally valid rounding, flips a few of the
 * near-tie expert choices of this random model, and those flips alone move
 * the logits by several times the bound. */
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
#include "runtime/runtime.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/tiny_bf16"
#define MAX_IDS 4096

typedef struct {
    const IrGraph *g;
    const CgProgram *p;
    bool round;           /* round the bf16-stored values */
    IrOp keep;            /* ... except this op's (IR_OP_COUNT: none) */
    float ids[MAX_IDS];   /* the top-k expert ids of the run, in order */
    int nids, rounded;
} Emu;

static float to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) <= 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static void after_node(void *ctx, int id, float *v, int64_t n) {
    Emu *e = ctx;
    const IrNode *nd = e->g->nodes[id];
    if (nd->op == IR_OP_GROUP_TOPK)
        for (int64_t i = 0; i < n && e->nids < MAX_IDS; i++) e->ids[e->nids++] = v[i];
    if (!e->round || nd->op == IR_OP_INPUT || nd->op == IR_OP_WEIGHT || nd->op == e->keep) return;
    if (!e->p->stored[id] || e->p->dtype[id] != IR_DT_BF16) return;
    for (int64_t i = 0; i < n; i++) v[i] = to_bf16(v[i]);
    e->rounded++;
}

typedef struct {
    Arena *a;
    DiagEngine *d;
    IrGraph *g;
    CgProgram *p;
    RtCheckpoint *ck;
    RtArray tok, ref;
    float *pos;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, stderr);
    f->ck = rt_checkpoint_open(f->a, f->d, FIX);
    if (!f->ck) return -1;
    FeOptions fo = {rt_checkpoint_config_path(f->ck), NULL, 0};
    f->g = fe_compile_file(f->a, f->d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    PassPipeline pp;
    PassRunOptions ro = {0};
    if (!f->g || !pass_pipeline_parse(f->a, f->d, "shape-infer,fold-constants,dce,cse,dce,node-limited-routing,fuse", &pp) ||
        !pass_pipeline_run(&pp, f->g, &ro, f->d))
        return -1;
    f->p = cg_generate(f->a, f->d, f->g, NULL); /* what the CUDA backend stores, and in which dtype */
    if (!f->p || !rt_npy_read(f->d, FIX "/tokens.npy", &f->tok) || !rt_npy_read(f->d, FIX "/logits.npy", &f->ref)) return -1;
    int64_t n = f->tok.shape[0] * f->tok.shape[1];
    f->pos = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) f->pos[i] = (float)(i % f->tok.shape[1]);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    free(f->tok.data);
    free(f->ref.data);
    free(f->pos);
    rt_checkpoint_close(f->ck);
    arena_free(f->a);
    free(f);
    return 0;
}

/* Runs the fixture under e; returns the logits' rel L2 from transformers'. */
static double run(Fx *f, Emu *e) {
    int64_t B = f->tok.shape[0], S = f->tok.shape[1];
    CpuInput in[2] = {{"tokens", 2, {B, S}, f->tok.data}, {"positions", 2, {B, S}, f->pos}};
    CpuWeightSource ws = {rt_checkpoint_read_f32, f->ck};
    CpuOptions co = {.threads = 2, .after_node = after_node, .hook_ctx = e};
    CpuExec *x = cpu_exec_new(f->g, &ws, &co, f->d);
    assert_non_null(x);
    assert_true(cpu_exec_run(x, in, 2, f->d));
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *lg = cpu_exec_output(x, "logits", &rank, dims);
    assert_non_null(lg);
    int64_t nv = B * S * dims[rank - 1];
    assert_int_equal(nv, f->ref.numel);
    double num = 0, den = 0;
    for (int64_t i = 0; i < nv; i++) {
        double dv = (double)lg[i] - f->ref.data[i];
        num += dv * dv;
        den += (double)f->ref.data[i] * f->ref.data[i];
    }
    cpu_exec_free(x);
    return sqrt(num / den);
}

static int flips(const Emu *a, const Emu *b) {
    assert_int_equal(a->nids, b->nids);
    int n = 0;
    for (int i = 0; i < a->nids; i++) n += a->ids[i] != b->ids[i];
    return n;
}

static void test_bf16_storage_plan(void **state) {
    Fx *f = *state;
    static Emu exact, all, keep_add;
    exact = (Emu){.g = f->g, .p = f->p, .round = false, .keep = IR_OP_COUNT};
    all = (Emu){.g = f->g, .p = f->p, .round = true, .keep = IR_OP_COUNT};
    keep_add = (Emu){.g = f->g, .p = f->p, .round = true, .keep = IR_OP_ADD};
    double e0 = run(f, &exact), e1 = run(f, &all), e2 = run(f, &keep_add);
    int f1 = flips(&exact, &all), f2 = flips(&exact, &keep_add);
    fprintf(stderr, "bf16 storage emulated on the CPU vs transformers FP32: none %.2e; all %d bf16-stored values %.2e (%d of %d top-k "
                    "entries flipped); all but the residual adds %.2e (%d flipped)\n",
            e0, all.rounded, e1, f1, exact.nids, e2, f2);
    assert_true(exact.nids > 0 && all.rounded > 20);
    assert_true(e0 < 1e-5);
    if (f1 == 0) assert_true(e1 < 2e-2); /* the storage plan itself, when no routing decision flips */
    assert_true(e1 > 1e-4);              /* the rounding did happen */
    if (f2 > 0) assert_true(e2 > e1);    /* flips, not precision, make the large figures */
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test_setup_teardown(test_bf16_storage_plan, setup, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
