/* test_gpu_ep.c — expert parallelism in the CUDA executor on emulated
 * ranks: W forked processes, one emulated GPU each, talking through the
 * emulated NCCL (tests/emu/emu_nccl.c), run the tiny fixtures compiled
 * with node-limited-routing for their topology (and microbatch-overlap),
 * each on its own batch rows (a rank may have none), and the test checks:
 *  - the logits gathered in row order against one process running the
 *    unrouted graph on all rows (--storage f32: 1e-5 relative L2; bf16
 *    storage: the single-GPU end-to-end bound, 2e-2, as partial sums
 *    travel rounded to bf16);
 *  - each rank's byte counters (dispatch / combine x inter / intra node)
 *    against the routing pass's exact prediction (pass_routing_traffic)
 *    for the routing decisions the ranks made;
 *  - each rank's weight slab is smaller than the one process's (it holds
 *    1/W of the routed experts).
 * Most cases keep every value (to read the routing back); one reuses
 * activation memory across the two streams as a real run does, with the
 * plan-memory pass's plan: each rank's executor must place every value at
 * exactly the pass's offset.
 * The rank processes and the reference are forked before any CUDA call in
 * this process; each reports through a pipe. Exits 77 without the
 * emulated NCCL (DSCC_EMU_NCCL_DIR, libnccl.so.2 on LD_LIBRARY_PATH). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/"
#define MAXW 4

typedef struct {
    const char *fixture;
    bool fp8, f32;
    int W, nodes;
    bool overlap;
    bool reuse; /* activation memory reused (keep_all off): no routing read back, counters checked for traffic only */
} Case;

/* The graph of a case: the rank's world (W = 1: unrouted, one process). */
static IrGraph *compile(Arena *a, DiagEngine *d, RtCheckpoint *ck, const Case *c, int W) {
    FeOptions fo = {rt_checkpoint_config_path(ck), NULL, 0};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    if (!g) return NULL;
    char pipe[256];
    snprintf(pipe, sizeof pipe, "shape-infer,fold-constants,dce,%scse,dce%s%s,fuse", c->fp8 ? "fp8-quant," : "",
             W > 1 ? arena_printf(a, ",node-limited-routing{nodes=%d,gpus-per-node=%d}", c->nodes, W / c->nodes) : "",
             W > 1 && c->overlap ? ",microbatch-overlap{n=2}" : "");
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    if (!pass_pipeline_parse(a, d, pipe, &pp) || !pass_pipeline_run(&pp, g, &ro, d)) return NULL;
    return g;
}

/* Rows of rank r out of B (the CLI's split: the remainder to the first ranks). */
static void rows_of(int64_t B, int W, int r, int64_t *first, int64_t *n) {
    int64_t q = B / W, rem = B % W;
    *n = q + (r < rem);
    *first = r * q + (r < rem ? r : rem);
}

/* What a process writes to its pipe: a header, then floats. */
typedef struct {
    int ok;
    char msg[512];
    int64_t nlogits, nidx, wbytes;
    GpuCommBytes bytes;
} Head;

static void put(int fd, const void *p, size_t n) {
    for (const char *c = p; n > 0;) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) _exit(3);
        c += w, n -= (size_t)w;
    }
}

static bool get(int fd, void *p, size_t n) {
    for (char *c = p; n > 0;) {
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, 240000) != 1) return false;
        ssize_t r = read(fd, c, n);
        if (r <= 0) return false;
        c += r, n -= (size_t)r;
    }
    return true;
}

/* The micro-batch a node belongs to (split_batch's index upstream), 0 when none. */
static int mb_of(const IrNode *n, int depth) {
    if (n->op == IR_OP_SPLIT_BATCH) return (int)ir_node_attr_int(n, "index", 0);
    int m = 0;
    for (int k = 0; k < n->nops && depth < 64; k++) {
        int o = mb_of(n->ops[k], depth + 1);
        if (o > m) m = o;
    }
    return m;
}

/* One process: rank `rank` of the case's world (rank < 0: the reference,
 * every row, unrouted). Writes its Head, its logits, then per combine of
 * the graph (node order) the real tokens' expert ids of its routing. */
static void process_main(const Case *c, int rank, const RtNcclId *id, int fd) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    Head h = {0};
    int W = rank < 0 ? 1 : c->W;
    RtCheckpoint *ck = rt_checkpoint_open(a, d, c->fixture);
    IrGraph *g = ck ? compile(a, d, ck, c, W) : NULL;
    RtArray tok = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/tokens.npy", c->fixture);
    float *logits = NULL, *ids = NULL;
    RtNccl *nc = NULL;
    RtNcclComm *comm = NULL;
    RtCuda *cu = NULL; /* holds the device's context from the communicator's creation to its end */
    GpuExec *gx = NULL;
    if (!g || !rt_npy_read(d, path, &tok)) goto done;
    int64_t B = tok.shape[0], S = tok.shape[1], first = 0, n = B;
    if (rank >= 0) rows_of(B, W, rank, &first, &n);
    GpuDist dist = {.rank = rank, .size = W, .nodes = c->nodes, .gpus_per_node = W / c->nodes, .timeout_ms = 60000};
    if (rank >= 0) {
        cu = rt_cuda_open(d, rank); /* the communicator's device must be current */
        if (!cu || !(nc = rt_nccl_open(d)) || !(comm = rt_nccl_comm_init_rank(nc, d, id, rank, W, NULL, 60000))) goto done;
        dist.comm = comm;
    }
    int64_t maxb = (B + W - 1) / W;
    if (c->reuse) { /* the pass plans the slab at this executor's capacity and storage */
        PassPipeline pp;
        PassRunOptions ro = {.tune = tu_tune()};
        const char *plan = arena_printf(a, "plan-memory{batch=%lld,seq=%lld,ctx=%lld,f32-storage=%d}", (long long)maxb, (long long)S,
                                        (long long)S, c->f32 ? 1 : 0);
        if (!pass_pipeline_parse(a, d, plan, &pp) || !pass_pipeline_run(&pp, g, &ro, d)) goto done;
    }
    CpuWeightSource ws = {rt_checkpoint_read_f32, ck};
    GpuOptions go = {.tune = tu_tune(), .device = rank < 0 ? 0 : rank, .max_batch = maxb, .max_seq = S, .max_ctx = S, .f32_storage = c->f32,
                     .keep_all = !c->reuse, .dist = rank < 0 ? NULL : &dist};
    if (!(gx = gpu_exec_new(g, &ws, &go, d))) goto done;
    for (int i = 0; i < g->nnodes && c->reuse; i++)
        if (gpu_exec_offset(gx, i) != g->nodes[i]->mem) {
            snprintf(h.msg, sizeof h.msg, "rank %d: %s %%%d is at offset %lld, the plan says %lld", rank, ir_op_name(g->nodes[i]->op), i,
                     (long long)gpu_exec_offset(gx, i), (long long)g->nodes[i]->mem);
            goto done;
        }
    float *pos = malloc(sizeof(float) * (size_t)(n * S + 1));
    for (int64_t i = 0; i < n * S; i++) pos[i] = (float)(i % S);
    CpuInput in[2] = {{"tokens", 2, {n, S}, tok.data + first * S}, {"positions", 2, {n, S}, pos}};
    bool ran = gpu_exec_run(gx, in, 2, d);
    free(pos);
    if (!ran) goto done;
    int rk;
    int64_t dims[IR_MAX_RANK];
    const float *lg = gpu_exec_output(gx, "logits", &rk, dims);
    if (!lg) goto done;
    h.nlogits = 1;
    for (int i = 0; i < rk; i++) h.nlogits *= dims[i];
    logits = malloc(sizeof(float) * (size_t)(h.nlogits + 1));
    memcpy(logits, lg, sizeof(float) * (size_t)h.nlogits);
    /* the real tokens' routing of every combine */
    int64_t Bpad = 0;
    for (int r = 0; r < W; r++) {
        int64_t f, m;
        rows_of(B, W, r, &f, &m);
        if (m > Bpad) Bpad = m;
    }
    int parts = c->overlap && W > 1 ? 2 : 1;
    Bpad = (Bpad + parts - 1) / parts * parts;
    if (Bpad < parts) Bpad = parts;
    ids = malloc(sizeof(float) * (size_t)(g->nnodes * Bpad * S * 8 + 1));
    for (int i = 0; i < g->nnodes && rank >= 0 && !c->reuse; i++) {
        const IrNode *cb = g->nodes[i];
        if (cb->op != IR_OP_COMBINE) continue;
        int64_t ne, Bmb = Bpad / parts, K = cb->ops[3]->type.dims[1].coeff;
        const float *v = gpu_exec_value(gx, cb->ops[3]->id, &ne);
        int64_t real = n - mb_of(cb->ops[3], 0) * Bmb;
        real = real < 0 ? 0 : real > Bmb ? Bmb : real;
        if (!v || ne != Bmb * S * K) {
            snprintf(h.msg, sizeof h.msg, "rank %d: the routing of combine %%%d is not readable", rank, i);
            goto done;
        }
        ids[h.nidx++] = (float)(real * S);
        memcpy(ids + h.nidx, v, sizeof(float) * (size_t)(real * S * K));
        h.nidx += real * S * K;
    }
    gpu_exec_comm_bytes(gx, &h.bytes, NULL);
    h.wbytes = gpu_exec_weight_bytes(gx);
    h.ok = 1;
done:
    if (!h.ok && !h.msg[0]) snprintf(h.msg, sizeof h.msg, "rank %d failed (see its errors above)", rank);
    put(fd, &h, sizeof h);
    if (h.ok) {
        put(fd, logits, sizeof(float) * (size_t)h.nlogits);
        put(fd, ids, sizeof(float) * (size_t)h.nidx);
    }
    gpu_exec_free(gx);
    if (comm && !rt_nccl_comm_destroy(comm, d)) fprintf(stderr, "rank %d: communicator destroy failed\n", rank);
    rt_cuda_close(cu);
    _exit(h.ok ? 0 : 1);
}

typedef struct {
    Head h;
    float *logits, *ids;
} Result;

static pid_t spawn(const Case *c, int rank, const RtNcclId *id, int *fd) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        process_main(c, rank, id, p[1]);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

static void collect(pid_t pid, int fd, Result *r) {
    memset(r, 0, sizeof *r);
    if (!get(fd, &r->h, sizeof r->h)) snprintf(r->h.msg, sizeof r->h.msg, "no report within 240 s");
    else if (r->h.ok) {
        r->logits = malloc(sizeof(float) * (size_t)(r->h.nlogits + 1));
        r->ids = malloc(sizeof(float) * (size_t)(r->h.nidx + 1));
        if (!get(fd, r->logits, sizeof(float) * (size_t)r->h.nlogits) || !get(fd, r->ids, sizeof(float) * (size_t)r->h.nidx)) r->h.ok = 0;
    }
    if (!r->h.ok) kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    close(fd);
}

/* The routing pass's prediction of every rank's bytes, from the ids the ranks report. */
static void predict(const Case *c, Result *res, PassEpTraffic *total) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtCheckpoint *ck = rt_checkpoint_open(a, d, c->fixture);
    IrGraph *g = compile(a, d, ck, c, c->W);
    assert_non_null(g);
    memset(total, 0, sizeof(PassEpTraffic) * MAXW);
    int64_t at[MAXW] = {0};
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *cb = g->nodes[i];
        if (cb->op != IR_OP_COMBINE) continue;
        int64_t drow, crow, ntok[MAXW];
        const float *idx[MAXW];
        assert_true(pass_routing_row_bytes(g, cb, c->f32, &drow, &crow));
        int64_t K = cb->ops[3]->type.dims[1].coeff, E = 0;
        for (const IrNode *r = cb->ops[3]; r && !E; r = r->nops ? r->ops[0] : NULL)
            if (r->op == IR_OP_GROUP_TOPK || r->op == IR_OP_TOPK) E = r->ops[0]->type.dims[r->ops[0]->type.rank - 1].coeff;
        for (int r = 0; r < c->W; r++) {
            ntok[r] = (int64_t)res[r].ids[at[r]];
            idx[r] = res[r].ids + at[r] + 1;
            at[r] += 1 + ntok[r] * K;
        }
        PassEpWorld w = {c->nodes, c->W / c->nodes, E, (int)K};
        PassEpTraffic sent[MAXW];
        assert_true(pass_routing_traffic(d, &w, ntok, idx, drow, crow, sent));
        for (int r = 0; r < c->W; r++) {
            total[r].dispatch_inter += sent[r].dispatch_inter, total[r].dispatch_intra += sent[r].dispatch_intra;
            total[r].combine_inter += sent[r].combine_inter, total[r].combine_intra += sent[r].combine_intra;
        }
    }
    for (int r = 0; r < c->W; r++) assert_int_equal(at[r], res[r].h.nidx);
    rt_checkpoint_close(ck);
    arena_free(a);
}

static void run_case(const Case *c) {
    void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    int (*get_id)(RtNcclId *) = lib ? (int (*)(RtNcclId *))dlsym(lib, "ncclGetUniqueId") : NULL;
    assert_non_null(get_id);
    RtNcclId id;
    assert_int_equal(get_id(&id), 0);
    Result ref, res[MAXW];
    int fd[MAXW + 1];
    pid_t pid[MAXW + 1];
    pid[MAXW] = spawn(c, -1, NULL, &fd[MAXW]);
    collect(pid[MAXW], fd[MAXW], &ref);
    for (int r = 0; r < c->W; r++) pid[r] = spawn(c, r, &id, &fd[r]);
    for (int r = 0; r < c->W; r++) collect(pid[r], fd[r], &res[r]);
    if (!ref.h.ok) fail_msg("reference: %s", ref.h.msg);
    for (int r = 0; r < c->W; r++)
        if (!res[r].h.ok) fail_msg("%s", res[r].h.msg);
    /* logits of the ranks, in row order, against the one process */
    int64_t at = 0;
    double num = 0, den = 0;
    for (int r = 0; r < c->W; r++) {
        for (int64_t i = 0; i < res[r].h.nlogits; i++) {
            double dv = (double)res[r].logits[i] - ref.logits[at + i];
            num += dv * dv, den += (double)ref.logits[at + i] * ref.logits[at + i];
        }
        at += res[r].h.nlogits;
    }
    assert_int_equal(at, ref.h.nlogits);
    double rel = sqrt(num / (den > 0 ? den : 1)), bound = c->f32 ? 1e-5 : 2e-2;
    PassEpTraffic want[MAXW];
    if (!c->reuse) predict(c, res, want);
    fprintf(stderr, "%s %s storage %s, %d ranks on %d node(s)%s: logits rel L2 %.2e from one process (bound %.0e)\n",
            strrchr(c->fixture, '/') + 1, c->fp8 ? "fp8" : "bf16", c->f32 ? "f32" : "bf16", c->W, c->nodes,
            c->overlap ? ", micro-batch overlap" : "", rel, bound);
    for (int r = 0; r < c->W; r++) {
        const GpuCommBytes *b = &res[r].h.bytes;
        if (c->reuse) memset(&want[r], 0xff, sizeof want[r]); /* not predicted: -1 */
        fprintf(stderr, "  rank %d: weights %lld of %lld bytes; dispatch %lld inter + %lld intra, combine %lld inter + %lld intra "
                        "(predicted %lld + %lld, %lld + %lld)\n",
                r, (long long)res[r].h.wbytes, (long long)ref.h.wbytes, (long long)b->dispatch_inter, (long long)b->dispatch_intra,
                (long long)b->combine_inter, (long long)b->combine_intra, (long long)want[r].dispatch_inter,
                (long long)want[r].dispatch_intra, (long long)want[r].combine_inter, (long long)want[r].combine_intra);
        if (c->reuse) continue;
        assert_int_equal(b->dispatch_inter, want[r].dispatch_inter);
        assert_int_equal(b->dispatch_intra, want[r].dispatch_intra);
        assert_int_equal(b->combine_inter, want[r].combine_inter);
        assert_int_equal(b->combine_intra, want[r].combine_intra);
        assert_true(res[r].h.wbytes < ref.h.wbytes);
        if (c->nodes == 1) assert_int_equal(b->dispatch_inter + b->combine_inter, 0);
    }
    int64_t moved = 0;
    for (int r = 0; r < c->W; r++) moved += res[r].h.bytes.dispatch_inter + res[r].h.bytes.dispatch_intra;
    assert_true(moved > 0); /* the exchanges ran */
    assert_true(rel <= bound);
    free(ref.logits);
    free(ref.ids);
    for (int r = 0; r < c->W; r++) free(res[r].logits), free(res[r].ids);
}

static void test_fp8_f32_2x1_overlap(void **state) {
    (void)state;
    run_case(&(Case){FIX "tiny_fp8", true, true, 2, 1, true, false});
}
static void test_fp8_f32_4x2(void **state) {
    (void)state;
    run_case(&(Case){FIX "tiny_fp8", true, true, 4, 2, false, false});
}
static void test_bf16_4x4_overlap(void **state) {
    (void)state;
    run_case(&(Case){FIX "tiny_bf16", false, false, 4, 4, true, false});
}
static void test_fp8_f32_2x2_overlap_reuse(void **state) {
    (void)state;
    run_case(&(Case){FIX "tiny_fp8", true, true, 2, 2, true, true});
}
static void test_bf16_f32_2x2(void **state) {
    (void)state;
    run_case(&(Case){FIX "tiny_bf16", false, true, 2, 2, false, false});
}

int main(void) {
    const char *dir = getenv("DSCC_EMU_NCCL_DIR");
    void *nccl = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!dir || !*dir || !nccl || !dlsym(nccl, "ncclCommInitRankConfig")) {
        printf("skipped: needs the emulated NCCL (DSCC_EMU_NCCL_DIR, libnccl.so.2 on LD_LIBRARY_PATH)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp8_f32_2x1_overlap),
        cmocka_unit_test(test_fp8_f32_4x2),
        cmocka_unit_test(test_bf16_4x4_overlap),
        cmocka_unit_test(test_bf16_f32_2x2),
        cmocka_unit_test(test_fp8_f32_2x2_overlap_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
