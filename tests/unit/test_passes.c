/* test_passes.c — every pass checked by the CPU executor on the tiny
 * fixture model: dce, cse, fuse and plan-memory change no logit (bit for
 * bit); fp8-quant computes exactly what the executor's FP8 emulation
 * computes, and stays within the fixture's bound of transformers' FP8
 * reference. Plus the invariants a later backend relies on: fused groups
 * form an acyclic kernel graph, and no two values alive at once share slab
 * bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/tiny_fp8"

typedef struct {
    TuFixture fx;
    RtArray tok;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    tu_fixture_open(&f->fx, FIX);
    tu_read_npy(&f->fx, FIX "/tokens.npy", &f->tok);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    free(f->tok.data);
    tu_fixture_close(&f->fx);
    free(f);
    return 0;
}

static IrGraph *compile(Fx *f, const char *pipeline) { return tu_compile(&f->fx, pipeline, NULL, 0); }

/* Logits [B*T*V] of one full forward from weights ws; caller frees. */
static float *logits_from(Fx *f, const IrGraph *g, CpuWeightSource ws, bool emulate_fp8, int64_t *n) {
    CpuExec *x = cpu_exec_new(g, &ws, &(CpuOptions){.threads = 2, .fp8 = emulate_fp8}, f->fx.d);
    assert_non_null(x);
    tu_forward(&f->fx, x, &f->tok);
    float *out = tu_output_copy(x, "logits", n);
    cpu_exec_free(x);
    return out;
}

/* ... from the fixture's checkpoint. */
static float *logits(Fx *f, const IrGraph *g, bool emulate_fp8, int64_t *n) {
    return logits_from(f, g, (CpuWeightSource){rt_checkpoint_read_f32, f->fx.ck}, emulate_fp8, n);
}

static void test_value_preserving_passes(void **state) {
    Fx *f = *state;
    int64_t n0, n1;
    float *ref = logits(f, compile(f, NULL), false, &n0);
    const char *pipelines[] = {"shape-infer,fold-constants", "dce", "cse", "fuse", "plan-memory{batch=2,seq=12}", "dce,cse,dce,fuse,plan-memory"};
    for (size_t i = 0; i < sizeof pipelines / sizeof pipelines[0]; i++) {
        float *got = logits(f, compile(f, pipelines[i]), false, &n1);
        assert_int_equal(n0, n1);
        if (memcmp(ref, got, sizeof(float) * (size_t)n0) != 0) fail_msg("pipeline %s changed the logits", pipelines[i]);
        free(got);
    }
    free(ref);
}

static void test_fp8_quant_equals_emulation(void **state) {
    Fx *f = *state;
    int64_t n0, n1;
    float *emul = logits(f, compile(f, NULL), true, &n0);
    IrGraph *g = compile(f, pass_default_pipeline());
    int fp8 = 0;
    for (int i = 0; i < g->nnodes; i++) fp8 += g->nodes[i]->op == IR_OP_FP8_LINEAR || g->nodes[i]->op == IR_OP_FP8_EXPERT_LINEAR;
    /* 3 layers: 5 attention linears (not kv_b) + the naive form's o_proj (attn_impl=auto: one per form)
     * + 3 MLP/shared + 3 expert GEMMs, one dense */
    assert_int_equal(fp8, 30);
    float *pass = logits(f, g, false, &n1);
    assert_int_equal(n0, n1);
    /* expert parallelism over 2 nodes x 2 GPUs: dispatch/combine are the
     * identity on one process, so not one bit changes */
    IrGraph *ep = compile(f, "dce,fp8-quant,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2,max-nodes=2},fuse");
    int disp = 0, comb = 0;
    for (int i = 0; i < ep->nnodes; i++) disp += ep->nodes[i]->op == IR_OP_DISPATCH, comb += ep->nodes[i]->op == IR_OP_COMBINE;
    assert_int_equal(disp, 8); /* 2 MoE layers: the FP8 payload, its scales, the expert ids, the routing weights */
    assert_int_equal(comb, 2);
    int64_t n2;
    float *epl = logits(f, ep, false, &n2);
    assert_memory_equal(epl, pass, sizeof(float) * (size_t)n0);
    free(epl);
    /* and split into two micro-batches scheduled on two streams */
    IrGraph *ov = compile(f, "dce,fp8-quant,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2,max-nodes=2},"
                             "microbatch-overlap{n=2},fuse,plan-memory{batch=2,seq=12}");
    assert_int_equal(ir_check_schedule(ov, f->fx.d), 0);
    int streams[2] = {0, 0};
    for (int i = 0; i < ov->nnodes; i++)
        if (ov->nodes[i]->stream >= 0) streams[ov->nodes[i]->stream]++;
    assert_int_equal(streams[1], 20); /* (4 dispatches + 1 combine) x 2 layers x 2 micro-batches */
    assert_true(streams[0] > 300);
    float *ovl = logits(f, ov, false, &n2);
    assert_memory_equal(ovl, pass, sizeof(float) * (size_t)n0);
    free(ovl);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n0; i++) {
        num += ((double)pass[i] - emul[i]) * ((double)pass[i] - emul[i]);
        den += (double)emul[i] * emul[i];
    }
    print_message("fp8-quant pipeline vs executor FP8 emulation: rel L2 %.3g\n", sqrt(num / den));
    assert_true(sqrt(num / den) < 1e-6);
    RtArray ref;
    assert_true(rt_npy_read(f->fx.d, FIX "/logits_fp8.npy", &ref));
    num = den = 0;
    for (int64_t i = 0; i < n0; i++) {
        num += ((double)pass[i] - ref.data[i]) * ((double)pass[i] - ref.data[i]);
        den += (double)ref.data[i] * ref.data[i];
    }
    print_message("fp8-quant pipeline vs transformers FP8 emulation: rel L2 %.3g\n", sqrt(num / den));
    assert_true(sqrt(num / den) < 1e-4);
    free(ref.data);
    free(emul);
    free(pass);
}

/* A waiting-free cross-stream read is caught by the schedule checker. */
static void test_schedule_checker(void **state) {
    Fx *f = *state;
    IrGraph *ov = compile(f, "fp8-quant,cse,dce,node-limited-routing{nodes=2,gpus-per-node=2},microbatch-overlap");
    IrNode *victim = NULL;
    for (int i = 0; i < ov->nnodes && !victim; i++)
        if (ov->nodes[i]->op == IR_OP_FP8_EXPERT_LINEAR && ov->nodes[i]->nwaits) victim = ov->nodes[i];
    assert_non_null(victim);
    victim->nwaits = 0;
    DiagEngine *q = diag_new(f->fx.a, NULL);
    assert_true(ir_check_schedule(ov, q) >= 1);
    assert_non_null(strstr(diag_first(q)->msg, "fp8_expert_linear on stream 0 reads dispatch of stream 1 without waiting for it"));
}

static void test_fuse_groups_acyclic(void **state) {
    Fx *f = *state;
    IrGraph *g = compile(f, "fp8-quant,cse,dce,fuse");
    int ng = 0;
    for (int i = 0; i < g->nnodes; i++) ng = g->nodes[i]->group + 1 > ng ? g->nodes[i]->group + 1 : ng;
    assert_true(ng > 10);
    /* edges between groups; Kahn's algorithm must consume every group */
    char *edge = calloc((size_t)ng * ng, 1);
    int *indeg = calloc((size_t)ng, sizeof(int));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        for (int k = 0; k < n->nops; k++) {
            int a = n->ops[k]->group, b = n->group;
            if (a >= 0 && b >= 0 && a != b && !edge[a * ng + b]) {
                edge[a * ng + b] = 1;
                indeg[b]++;
            }
        }
    }
    int *queue = malloc(sizeof(int) * (size_t)ng), head = 0, tail = 0;
    for (int v = 0; v < ng; v++)
        if (!indeg[v]) queue[tail++] = v;
    while (head < tail) {
        int v = queue[head++];
        for (int w = 0; w < ng; w++)
            if (edge[v * ng + w] && --indeg[w] == 0) queue[tail++] = w;
    }
    assert_int_equal(tail, ng);
    free(edge);
    free(indeg);
    free(queue);
}

static void test_plan_memory_no_overlap(void **state) {
    Fx *f = *state;
    IrGraph *g = compile(f, "fp8-quant,cse,dce,plan-memory{batch=2,seq=12}");
    int64_t sym[IR_MAX_DIM_SYMS] = {2, 12, 12};
    int *end = calloc((size_t)g->nnodes, sizeof(int));
    int64_t *size = calloc((size_t)g->nnodes, sizeof(int64_t));
    int placed = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        end[i] = i;
        for (int k = 0; k < n->nops; k++) end[n->ops[k]->id] = n->op == IR_OP_OUTPUT ? g->nnodes : i;
        size[i] = ir_dim_eval(ir_type_numel(&n->type), sym) * ir_dtype_bits(n->type.dtype) / 8;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *a = g->nodes[i];
        if (a->mem < 0) continue;
        placed++;
        assert_int_equal(a->mem % 256, 0);
        for (int j = i + 1; j < g->nnodes && j <= end[i]; j++) { /* b defined while a is alive */
            const IrNode *b = g->nodes[j];
            if (b->mem < 0) continue;
            bool disjoint = a->mem + size[i] <= b->mem || b->mem + size[j] <= a->mem;
            if (!disjoint) fail_msg("%%%d and %%%d overlap in the slab while both alive", i, j);
        }
    }
    assert_true(placed > 50);
    free(end);
    free(size);
}

static void test_pipeline_errors(void **state) {
    Fx *f = *state;
    PassPipeline p;
    DiagEngine *q = diag_new(f->fx.a, NULL);
    assert_false(pass_pipeline_parse(f->fx.a, q, "dce,nope", &p));
    assert_non_null(strstr(diag_first(q)->msg, "unknown pass 'nope'"));
    assert_false(pass_pipeline_parse(f->fx.a, q, "fuse{depth=2}", &p));
    assert_non_null(strstr(diag_first(q)->next->msg, "fuse has no option 'depth'"));
    assert_false(pass_pipeline_parse(f->fx.a, q, "plan-memory{batch=2", &p));
    assert_true(pass_pipeline_parse(f->fx.a, q, "fp8-quant{exclude=layers.0.|shared},cse", &p));
    assert_int_equal(p.n, 2);
    assert_string_equal(p.steps[0].vals[0], "layers.0.|shared");
}

/* --dump-dir writes as -o does (support's file_write): a file already
 * there is replaced, not rewritten in place (a hard link to it keeps the
 * old text), a symlink's target gets the text and the link stays, a FIFO
 * is written in place. All inside a fresh mkdtemp folder. */
typedef struct {
    const char *path;
    char got[4096];
} FifoReader;

static void *read_fifo(void *arg) {
    FifoReader *r = arg;
    FILE *f = fopen(r->path, "rb");
    if (f) {
        r->got[fread(r->got, 1, sizeof r->got - 1, f)] = 0;
        fclose(f);
    }
    return NULL;
}

static void test_dump_dir(void **state) {
    Fx *f = *state;
    static const char text[] = "graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B,8]\n"
                               "  %1 = exp %0 : f32[B,8]\n  %2 = neg %0 : f32[B,8]\n  %3 = neg %0 : f32[B,8]\n"
                               "  %4 = add %2, %3 : f32[B,8]\n  output %4 {name=\"y\"}\n}\n";
    IrGraph *g = ir_parse(f->fx.a, f->fx.d, "dump.ir", text, strlen(text));
    assert_non_null(g);
    StrBuf before; /* the input as printed: 00-input.ir */
    sb_init(&before);
    ir_print(g, &before);
    char dir[64], p[4][160];
    snprintf(dir, sizeof dir, "/tmp/dscc_dump_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(p[0], sizeof p[0], "%s/dump", dir);
    assert_int_equal(mkdir(p[0], 0700), 0);
    snprintf(p[1], sizeof p[1], "%s/kept.ir", dir); /* 01-dce.ir: a hard link of it */
    FILE *k = fopen(p[1], "w");
    assert_non_null(k);
    fputs("old text\n", k);
    fclose(k);
    snprintf(p[2], sizeof p[2], "%s/dump/01-dce.ir", dir);
    assert_int_equal(link(p[1], p[2]), 0);
    snprintf(p[2], sizeof p[2], "%s/dump/00-input.ir", dir); /* a symlink to ../target.ir, not there yet */
    assert_int_equal(symlink("../target.ir", p[2]), 0);
    FifoReader r = {.path = p[3]};
    snprintf(p[3], sizeof p[3], "%s/dump/02-cse.ir", dir);
    assert_int_equal(mkfifo(p[3], 0600), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_fifo, &r), 0);
    PassPipeline pl;
    assert_true(pass_pipeline_parse(f->fx.a, f->fx.d, "dce,cse", &pl));
    PassRunOptions ro = {.tune = tu_tune(), .dump_dir = p[0], .verify_each = true};
    assert_true(pass_pipeline_run(&pl, g, &ro, f->fx.d));
    pthread_join(th, NULL);
    StrBuf after_cse;
    sb_init(&after_cse);
    ir_print(g, &after_cse);
    assert_null(strstr(after_cse.data, "exp")); /* dce removed it: the dumps differ */
    assert_string_equal(r.got, after_cse.data);
    tu_expect_file(p[1], "old text\n");                   /* the hard link's other name: untouched */
    struct stat st;
    assert_int_equal(lstat(p[2], &st), 0);
    assert_true(S_ISLNK(st.st_mode));                  /* still a link ... */
    snprintf(p[2], sizeof p[2], "%s/target.ir", dir);
    tu_expect_file(p[2], before.data);                    /* ... whose target holds the input */
    snprintf(p[2], sizeof p[2], "%s/dump/01-dce.ir", dir);
    assert_int_equal(lstat(p[2], &st), 0);
    assert_int_equal(st.st_nlink, 1);                  /* a new file, not the linked one */
    FILE *dce = fopen(p[2], "rb");
    assert_non_null(dce);
    char buf[4096] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, dce) > 0);
    fclose(dce);
    char *neg = strstr(buf, "neg %0");
    assert_true(!strstr(buf, "exp") && neg && strstr(neg + 1, "neg %0")); /* dce ran, cse not yet */
    neg = strstr(after_cse.data, "neg %0");
    assert_true(neg && !strstr(neg + 1, "neg %0"));
    sb_free(&before);
    sb_free(&after_cse);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The fuse pass's grouping as first written, with an n x n bitset of group
 * dependencies (and a reshape not yet placed standing for its operand):
 * the reference the pass (which keeps only each node's largest dependency
 * and walks back on demand) must match group for group. */
static void fuse_reference(const IrGraph *g, int *group) {
    size_t words = ((size_t)g->nnodes + 64) / 64;
    uint64_t *deps = calloc((size_t)g->nnodes * words + 1, sizeof(uint64_t));
#define DEP(n) (deps + (size_t)(n)->id * words)
#define HAS(n, grp) ((DEP(n)[(grp) / 64] >> ((grp) % 64)) & 1)
    int groups = 0;
    for (int i = 0; i < g->nnodes; i++) group[i] = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        uint64_t *dn = DEP(n);
        bool free_op = n->op == IR_OP_INPUT || n->op == IR_OP_WEIGHT || n->op == IR_OP_OUTPUT || n->op == IR_OP_CONST ||
                       n->op == IR_OP_RESHAPE;
        if (free_op) {
            for (int k = 0; k < n->nops; k++) {
                const IrNode *o = n->ops[k];
                for (size_t w = 0; w < words; w++) dn[w] |= DEP(o)[w];
                if (group[o->id] >= 0) dn[group[o->id] / 64] |= 1ull << (group[o->id] % 64);
            }
            continue;
        }
        int grp = -1;
        for (int k = 0; k < n->nops && grp < 0 && ir_op_fusible(n->op); k++) {
            const IrNode *o = n->ops[k];
            while (group[o->id] < 0 && o->op == IR_OP_RESHAPE) o = o->ops[0]; /* a reshape not yet placed stands for its operand */
            if (group[o->id] < 0 || !ir_op_fusible(o->op)) continue;
            bool ok = true;
            for (int m = 0; m < n->nops && ok; m++) {
                const IrNode *q = n->ops[m];
                while (group[q->id] < 0 && q->op == IR_OP_RESHAPE) q = q->ops[0];
                ok = group[q->id] == group[o->id] || !HAS(q, group[o->id]);
            }
            if (ok) grp = group[o->id];
        }
        group[i] = grp >= 0 ? grp : groups++;
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            if ((o->op == IR_OP_CONST || o->op == IR_OP_RESHAPE) && group[o->id] < 0) group[o->id] = group[i];
        }
        for (int k = 0; k < n->nops; k++) {
            const IrNode *o = n->ops[k];
            for (size_t w = 0; w < words; w++) dn[w] |= DEP(o)[w];
            if (group[o->id] >= 0 && group[o->id] != group[i]) dn[group[o->id] / 64] |= 1ull << (group[o->id] % 64);
        }
    }
#undef DEP
#undef HAS
    free(deps);
}

/* Random graphs of fusible ops, kernels of their own (linear, topk-free),
 * reshapes and constants: fuse groups them exactly as the reference. */
static void test_fuse_matches_reference(void **state) {
    Fx *f = *state;
    uint64_t rng = 99;
    for (int trial = 0; trial < 60; trial++) {
        IrGraph *g = ir_graph_new(f->fx.a, "r");
        int B = ir_graph_add_dim(g, "B");
        IrType t = {IR_DT_F32, 2, {ir_dim_sym(B), ir_dim_const(8)}}, w8 = {IR_DT_F32, 2, {ir_dim_const(8), ir_dim_const(8)}};
        IrType s0 = {IR_DT_F32, 0, {{0}}};
        IrAttr nx = {.name = "name", .kind = IR_ATTR_STR, .u.s = "x"}, nw = {.name = "name", .kind = IR_ATTR_STR, .u.s = "w"};
        IrNode *vals[400];
        int nv = 0;
        vals[nv++] = ir_graph_add_node(g, f->fx.d, IR_OP_INPUT, NULL, 0, &nx, 1, &t, (SrcLoc){0}, NULL);
        IrNode *w = ir_graph_add_node(g, f->fx.d, IR_OP_WEIGHT, NULL, 0, &nw, 1, &w8, (SrcLoc){0}, NULL);
        for (int k = 0; k < 150; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            IrNode *a = vals[nv - 1 - (int)((rng >> 20) % (uint64_t)(nv < 6 ? nv : 6))];
            IrNode *b = vals[(rng >> 40) % (uint64_t)nv], *ops[2] = {a, b}, *n;
            int pick = (int)((rng >> 50) % 7);
            IrAttr cv = {.name = "value", .kind = IR_ATTR_FLOAT, .u.f = 0.5}, ax = {.name = "axis", .kind = IR_ATTR_INT, .u.i = -1};
            if (pick == 0) n = ir_graph_add_node(g, f->fx.d, IR_OP_ADD, ops, 2, NULL, 0, NULL, (SrcLoc){0}, NULL);
            else if (pick == 1) n = ir_graph_add_node(g, f->fx.d, IR_OP_MUL, ops, 2, NULL, 0, NULL, (SrcLoc){0}, NULL);
            else if (pick == 2) n = ir_graph_add_node(g, f->fx.d, IR_OP_SILU, &a, 1, NULL, 0, NULL, (SrcLoc){0}, NULL);
            else if (pick == 3) {
                IrNode *lw[2] = {a, w};
                n = ir_graph_add_node(g, f->fx.d, IR_OP_LINEAR, lw, 2, NULL, 0, NULL, (SrcLoc){0}, NULL);
            } else if (pick == 4) n = ir_graph_add_node(g, f->fx.d, IR_OP_RESHAPE, &a, 1, NULL, 0, &t, (SrcLoc){0}, NULL);
            else if (pick == 5) {
                IrNode *cn = ir_graph_add_node(g, f->fx.d, IR_OP_CONST, NULL, 0, &cv, 1, &s0, (SrcLoc){0}, NULL);
                IrNode *ac[2] = {a, cn};
                n = ir_graph_add_node(g, f->fx.d, IR_OP_ADD, ac, 2, NULL, 0, NULL, (SrcLoc){0}, NULL);
            } else n = ir_graph_add_node(g, f->fx.d, IR_OP_SOFTMAX, &a, 1, &ax, 1, NULL, (SrcLoc){0}, NULL);
            assert_non_null(n);
            vals[nv++] = n;
        }
        IrAttr ny = {.name = "name", .kind = IR_ATTR_STR, .u.s = "y"};
        assert_non_null(ir_graph_add_node(g, f->fx.d, IR_OP_OUTPUT, &vals[nv - 1], 1, &ny, 1, NULL, (SrcLoc){0}, NULL));
        int *want = malloc(sizeof(int) * (size_t)g->nnodes);
        fuse_reference(g, want);
        PassPipeline p;
        assert_true(pass_pipeline_parse(f->fx.a, f->fx.d, "fuse", &p));
        PassRunOptions ro = {.tune = tu_tune()};
        assert_true(pass_pipeline_run(&p, g, &ro, f->fx.d));
        int kernels = 0;
        for (int i = 0; i < g->nnodes; i++) {
            assert_int_equal(g->nodes[i]->group, want[i]);
            kernels = want[i] + 1 > kernels ? want[i] + 1 : kernels;
        }
        assert_true(kernels > 1 && kernels < g->nnodes / 2);
        free(want);
    }
}

static int count_op(const IrGraph *g, IrOp op) {
    int c = 0;
    for (int i = 0; i < g->nnodes; i++) c += g->nodes[i]->op == op;
    return c;
}

/* merge-linears on the tiny model widened so its parts align to 128-row
 * blocks (q_a 128 beside kv_a's 48, which goes last; w13 of the dense MLP
 * and the shared expert): 6 fewer FP8 GEMMs over concatenated weights and
 * scales, the same logits bit for bit (random weights, FP8 emulated by the
 * passes). The fixture as it is (q_lora_rank 48, intermediate 200) has no
 * part that may go first, and nothing merges. */
static void test_merge_linears(void **state) {
    Fx *f = *state;
    FeSetting sets[] = {{"q_lora_rank", "128"}, {"intermediate_size", "256"}, {"moe_intermediate_size", "128"}};
    FeOptions o = {rt_checkpoint_config_path(f->fx.ck), sets, 3};
    const char *pipes[2] = {"fp8-quant,cse,dce", "fp8-quant,cse,dce,merge-linears"};
    IrGraph *g[2];
    for (int k = 0; k < 2; k++) {
        g[k] = fe_compile_file(f->fx.a, f->fx.d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &o);
        assert_non_null(g[k]);
        PassPipeline p;
        assert_true(pass_pipeline_parse(f->fx.a, f->fx.d, pipes[k], &p));
        PassRunOptions ro = {.tune = tu_tune(), .verify_each = true};
        assert_true(pass_pipeline_run(&p, g[k], &ro, f->fx.d));
    }
    assert_int_equal(count_op(g[0], IR_OP_FP8_LINEAR) - count_op(g[1], IR_OP_FP8_LINEAR), 6);
    assert_int_equal(count_op(g[1], IR_OP_CONCAT) - count_op(g[0], IR_OP_CONCAT), 12); /* weights and scales of each */
    assert_int_equal(count_op(g[0], IR_OP_FP8_EXPERT_LINEAR), count_op(g[1], IR_OP_FP8_EXPERT_LINEAR));
    for (int i = 0; i < g[1]->nnodes; i++) { /* q_a's 128 rows first, kv_a's 48 after: N = 176, scales 1 + 1 blocks */
        const IrNode *n = g[1]->nodes[i];
        if (n->op == IR_OP_FP8_LINEAR && n->ops[2]->op == IR_OP_CONCAT && n->type.dims[n->type.rank - 1].coeff == 176)
            assert_int_equal(n->ops[3]->type.dims[0].coeff, 2);
    }
    uint64_t seed = 7;
    int64_t n0, n1;
    float *a = logits_from(f, g[0], cpu_random_weights(&seed), false, &n0);
    float *b = logits_from(f, g[1], cpu_random_weights(&seed), false, &n1);
    assert_int_equal(n0, n1);
    if (memcmp(a, b, sizeof(float) * (size_t)n0) != 0) fail_msg("merge-linears changed the logits");
    free(a), free(b);
    IrGraph *t = compile(f, "fp8-quant,cse,dce,merge-linears"); /* the fixture: no part aligned to go first */
    assert_int_equal(count_op(t, IR_OP_FP8_LINEAR), count_op(compile(f, "fp8-quant,cse,dce"), IR_OP_FP8_LINEAR));
}

/* ir_weight_values on a graph of its cases: a concat of weights each
 * read by it alone is JOINED (its weights PART); one of a weight the step
 * also reads is DERIVED, that weight NONE, the other LOAD; a transpose of
 * a weight, an axis -1 concat and a sum of it are DERIVED (their weights
 * LOAD); a value of weights alone fused with an op of the step (group 0)
 * is NONE. plan-memory then gives the kept ones IR_MEM_WEIGHTS, no slab
 * bytes. On the fixture after merge-linears: its 12 concats JOINED (24
 * parts), kv_b_proj LOAD, its slices DERIVED, none in the slab. */
static void test_weight_values(void **state) {
    Fx *f = *state;
    static const char text[] =
        "graph @g dims(B) {\n  %0 = input {name=\"x\"} : f32[B,8]\n"
        "  %1 = weight {name=\"a\"} : f32[4,8]\n  %2 = weight {name=\"b\"} : f32[2,8]\n"
        "  %3 = concat %1, %2 {axis=0} : f32[6,8]\n  %4 = linear %0, %3 : f32[B,6]\n"
        "  %5 = weight {name=\"c\"} : f32[4,8]\n  %6 = weight {name=\"d\"} : f32[2,8]\n"
        "  %7 = concat %5, %6 {axis=0} : f32[6,8]\n  %8 = linear %0, %7 : f32[B,6]\n  %9 = linear %0, %6 : f32[B,2]\n"
        "  %10 = weight {name=\"e\"} : f32[8,8]\n  %11 = transpose %10 {perm=[1,0]} : f32[8,8]\n  %12 = linear %0, %11 : f32[B,8]\n"
        "  %13 = weight {name=\"f\"} : f32[4,8]\n  %14 = weight {name=\"g\"} : f32[4,8]\n"
        "  %15 = concat %13, %14 {axis=-1} : f32[4,16]\n  %16 = sum %15 {axis=-1, keepdim=false} : f32[4]\n"
        "  %17 = weight {name=\"h\"} : f32[8]\n  %18 = neg %17 : f32[8] group(0)\n  %19 = add %0, %18 : f32[B,8] group(0)\n"
        "  output %4 {name=\"y\"}\n  output %8 {name=\"z\"}\n  output %9 {name=\"w\"}\n  output %12 {name=\"v\"}\n"
        "  output %16 {name=\"u\"}\n  output %19 {name=\"t\"}\n}\n";
    IrGraph *g = ir_parse(f->fx.a, f->fx.d, "wv.ir", text, strlen(text));
    assert_non_null(g);
    assert_int_equal(ir_verify(g, f->fx.d), 0);
    unsigned char k[32];
    assert_true(ir_weight_values(g, NULL, k));
    const unsigned char want[20] = {IR_WV_NONE, IR_WV_PART, IR_WV_PART,    IR_WV_JOINED, IR_WV_NONE,    IR_WV_LOAD, IR_WV_NONE,
                                    IR_WV_DERIVED, IR_WV_NONE, IR_WV_NONE, IR_WV_LOAD,   IR_WV_DERIVED, IR_WV_NONE, IR_WV_LOAD,
                                    IR_WV_LOAD, IR_WV_DERIVED, IR_WV_DERIVED, IR_WV_NONE, IR_WV_NONE,   IR_WV_NONE};
    for (int i = 0; i < 20; i++) {
        if (k[i] != want[i]) fail_msg("%%%d (%s): kind %d, expected %d", i, ir_op_name(g->nodes[i]->op), k[i], want[i]);
    }
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune(), .verify_each = true};
    assert_true(pass_pipeline_parse(f->fx.a, f->fx.d, "plan-memory{batch=2,seq=1}", &pp));
    assert_true(pass_pipeline_run(&pp, g, &ro, f->fx.d));
    for (int i = 0; i < g->nnodes; i++) { /* plan-memory renumbers: by op (the sum reads its concat where it sums: not stored) */
        const IrNode *n = g->nodes[i];
        bool kept = (n->op == IR_OP_CONCAT && ir_node_attr_int(n, "axis", 0) == 0) || n->op == IR_OP_TRANSPOSE || n->op == IR_OP_SUM;
        if (n->op == IR_OP_CONCAT && !kept) continue;
        if (kept != (n->mem == IR_MEM_WEIGHTS)) fail_msg("%%%d %s: mem %lld", i, ir_op_name(n->op), (long long)n->mem);
    }
    /* the fixture through merge-linears, fuse and plan-memory */
    const char *sets[] = {"q_lora_rank=128", "intermediate_size=256", "moe_intermediate_size=128"};
    IrGraph *v3 = tu_compile(&f->fx, "fp8-quant,cse,dce,merge-linears,fuse,plan-memory{batch=2,seq=12}", sets, 3);
    unsigned char *wv = malloc((size_t)v3->nnodes + 1);
    assert_true(wv && ir_weight_values(v3, NULL, wv));
    int count[IR_WV_LOAD + 1] = {0}, kvb = 0;
    for (int i = 0; i < v3->nnodes; i++) {
        const IrNode *n = v3->nodes[i];
        count[wv[i]]++;
        assert_false(ir_wv_kept(wv[i]) && n->mem >= 0);
        if (wv[i] == IR_WV_JOINED) assert_int_equal(n->mem, IR_MEM_WEIGHTS);
        if (n->op == IR_OP_WEIGHT && strstr(ir_node_attr_str(n, "name", ""), "kv_b_proj.weight")) kvb += wv[i] == IR_WV_LOAD;
    }
    free(wv);
    assert_int_equal(count[IR_WV_JOINED], 12);
    assert_int_equal(count[IR_WV_PART], 24);
    assert_true(kvb > 0 && count[IR_WV_DERIVED] >= 2 * kvb);
}

/* The presets spell the pipelines the tools used to copy; each parses. */
static void test_presets(void **state) {
    Fx *f = *state;
    PassPipeline p;
    assert_string_equal(pass_preset(f->fx.a, "default", &(PassPreset){.fp8 = true}), pass_default_pipeline());
    assert_string_equal(pass_preset(f->fx.a, "default", &(PassPreset){.batch = 2, .seq = 7}),
                        "shape-infer,fold-constants,dce,cse,dce,node-limited-routing,fuse,plan-memory{batch=2,seq=7}");
    const char *ep = pass_preset(f->fx.a, "kernels", &(PassPreset){.fp8 = true, .nodes = 2, .gpus_per_node = 4, .microbatches = 2});
    assert_string_equal(ep, "shape-infer,fold-constants,dce,fp8-quant,cse,dce,merge-linears,node-limited-routing{nodes=2,gpus-per-node=4},"
                            "microbatch-overlap{n=2},fuse");
    assert_true(pass_pipeline_parse(f->fx.a, f->fx.d, ep, &p));
    assert_int_equal(p.n, 10);
    assert_true(pass_pipeline_parse(f->fx.a, f->fx.d, pass_default_pipeline(), &p));
    assert_int_equal(p.n, 10);
    assert_null(pass_preset(f->fx.a, "fast", &(PassPreset){0}));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_presets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_linears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuse_matches_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_preserving_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fp8_quant_equals_emulation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuse_groups_acyclic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_checker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_memory_no_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
