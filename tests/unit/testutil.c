/* testutil.c — see testutil.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include "runtime/cuda.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *tu_last_error(const DiagEngine *d) {
    const Diag *last = NULL;
    for (const Diag *g = diag_first(d); g; g = g->next)
        if (g->level == DIAG_ERROR) last = g;
    return last ? last->msg : "";
}

int tu_arena_setup(void **state) {
    TuArena *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->a = arena_new();
    t->d = diag_new(t->a, NULL);
    *state = t;
    return 0;
}

int tu_arena_teardown(void **state) {
    Arena **a = *state; /* the state's first member */
    arena_free(*a);
    free(*state);
    return 0;
}

void tu_fixture_open(TuFixture *f, const char *dir) {
    f->a = arena_new();
    f->d = diag_new(f->a, stderr);
    f->ck = rt_checkpoint_open(f->a, f->d, dir);
    assert_non_null(f->ck);
}

void tu_fixture_close(TuFixture *f) {
    if (f->ck) rt_checkpoint_close(f->ck);
    arena_free(f->a);
    *f = (TuFixture){0};
}

void tu_read_npy(TuFixture *f, const char *path, RtArray *out) { assert_true(rt_npy_read(f->d, path, out)); }

IrGraph *tu_compile(TuFixture *f, const char *pipeline, const char *const *sets, int nsets) {
    FeSetting *s = arena_alloc(f->a, sizeof(FeSetting) * (size_t)(nsets + 1));
    for (int i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        assert_non_null(eq);
        s[i] = (FeSetting){arena_strndup(f->a, sets[i], (size_t)(eq - sets[i])), eq + 1};
    }
    FeOptions o = {rt_checkpoint_config_path(f->ck), s, nsets};
    IrGraph *g = fe_compile_file(f->a, f->d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &o);
    assert_non_null(g);
    if (pipeline) {
        PassPipeline p;
        assert_true(pass_pipeline_parse(f->a, f->d, pipeline, &p));
        PassRunOptions ro = {.tune = tu_tune(), .verify_each = true};
        assert_true(pass_pipeline_run(&p, g, &ro, f->d));
    }
    assert_int_equal(ir_verify(g, f->d), 0);
    return g;
}

IrGraph *tu_compile_src(Arena *a, DiagEngine *d, const char *name, const char *src, const char *pipeline) {
    IrGraph *g = fe_compile_string(a, d, name, src, strlen(src), NULL);
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(a, d, pipeline, &pp) && pass_pipeline_run(&pp, g, &ro, d));
    return g;
}

CpuExec *tu_exec(TuFixture *f, const IrGraph *g, const CpuOptions *o) {
    CpuWeightSource ws = {rt_checkpoint_read_f32, f->ck};
    CpuExec *x = cpu_exec_new(g, &ws, o, f->d);
    assert_non_null(x);
    return x;
}

void tu_forward(TuFixture *f, CpuExec *x, const RtArray *tok) {
    int64_t B = tok->shape[0], T = tok->shape[1];
    float *pos = malloc(sizeof(float) * (size_t)(B * T));
    assert_non_null(pos);
    for (int64_t i = 0; i < B * T; i++) pos[i] = (float)(i % T);
    CpuInput in[2] = {{"tokens", 2, {B, T}, tok->data}, {"positions", 2, {B, T}, pos}};
    assert_true(cpu_exec_run(x, in, 2, f->d));
    free(pos);
}

float *tu_output_copy(CpuExec *x, const char *name, int64_t *n) {
    int rank;
    int64_t dims[IR_MAX_RANK];
    const float *v = cpu_exec_output(x, name, &rank, dims);
    assert_non_null(v);
    *n = 1;
    for (int i = 0; i < rank; i++) *n *= dims[i];
    float *out = malloc(sizeof(float) * (size_t)*n);
    assert_non_null(out);
    memcpy(out, v, sizeof(float) * (size_t)*n);
    return out;
}

void tu_expect_file(const char *path, const char *want) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char got[4096] = {0};
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    assert_int_equal(n, strlen(want));
    assert_string_equal(got, want);
}

int tu_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

double tu_rel_l2(const float *got, const float *want, int64_t n) {
    double num = 0, den = 0;
    for (int64_t k = 0; k < n; k++) num += ((double)got[k] - want[k]) * ((double)got[k] - want[k]), den += (double)want[k] * want[k];
    assert_true(den > 0);
    return sqrt(num / den);
}

double tu_rel_maxdiff(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - want[i]));
        den = fmax(den, fabs((double)want[i]));
    }
    return num / den;
}

void tu_expect_npy(const float *got, const char *ref_path, int64_t n, int64_t V, double bound, const char *what) {
    RtArray ref;
    Arena *a = arena_new();
    assert_true(rt_npy_read(diag_new(a, stderr), ref_path, &ref));
    assert_int_equal(ref.numel, n);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)got[i] - ref.data[i]) * ((double)got[i] - ref.data[i]);
        den += (double)ref.data[i] * ref.data[i];
    }
    int64_t agree = 0, rows = V ? n / V : 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t ga = 0, ra = 0;
        for (int64_t v = 1; v < V; v++) {
            if (got[r * V + v] > got[r * V + ga]) ga = v;
            if (ref.data[r * V + v] > ref.data[r * V + ra]) ra = v;
        }
        agree += ga == ra;
    }
    double rel = sqrt(num / den);
    print_message("%s: rel L2 %.3g (bound %.0e), argmax agreement %lld/%lld\n", what, rel, bound, (long long)agree,
                  (long long)rows);
    assert_true(rel < bound);
    assert_int_equal(agree, rows);
    free(ref.data);
    arena_free(a);
}

double tu_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pid_t tu_fork(int (*fn)(void *), void *arg) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fn(arg));
    return pid;
}

int tu_wait(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

bool tu_hopper(void) {
    Arena *a = arena_new();
    RtCuda *c = rt_cuda_open(diag_new(a, NULL), 0);
    bool ok = c && rt_cuda_sm(c) >= 90;
    if (!ok) printf("skipped: %s\n", c ? "the GPU is not a Hopper (sm_90)" : "no CUDA GPU on this machine");
    rt_cuda_close(c);
    arena_free(a);
    return ok;
}

const DsccTune *tu_tune(void) {
    static DsccTune t;
    tune_read_env(&t);
    if (!tune_check(&t, NULL)) exit(2); /* a test run under a bad switch would test its misreading */
    return &t;
}

uint64_t tu_test_seed(void) {
    static uint64_t seed;
    static bool known;
    if (!known) {
        const char *e = getenv("DSCC_TEST_SEED");
        seed = e && *e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
        known = true;
        fprintf(stderr, "random weights and inputs from seed %llu (DSCC_TEST_SEED=%llu reruns them)\n", (unsigned long long)seed,
                (unsigned long long)seed);
    }
    return seed;
}

const float *tu_gpu_value(GpuExec *gx, const IrNode *n, int64_t nc) {
    if (n->op == IR_OP_INPUT || n->op == IR_OP_WEIGHT) return NULL;
    int64_t ng = 0;
    const float *gv = gpu_exec_value(gx, n->id, &ng);
    if (gv) assert_int_equal(nc, ng);
    return gv;
}

void tu_take_gpu(void *cmp, int id, float *c, int64_t nc) {
    const TuGpuCmp *t = cmp;
    const IrNode *n = t->g->nodes[id];
    const float *gv = tu_gpu_value(t->gx, n, nc);
    if (!gv) return;
    t->check(t->ctx, n, gv, c, nc);
    memcpy(c, gv, sizeof(float) * (size_t)nc);
}

void tu_bf16_rows(float *x, int64_t rows, int64_t K, uint64_t *rng) {
    for (int64_t i = 0; i < rows * K; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        float v = (float)((double)(*rng >> 11) / 9007199254740992.0 * 2.0 - 1.0) * (i / K % 5 == 2 ? 40.0f : 1.0f);
        x[i] = rt_bf16_decode(rt_bf16_encode(v));
    }
}
