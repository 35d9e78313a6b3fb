/* test_gpu_nccl.c — NCCL on real GPUs, one process per rank (fork; every
 * CUDA and NCCL call happens in the children). Exits 77 (CTest: skipped)
 * without libnccl.so.2 or without a GPU.
 *
 * On any number of GPUs: a world of one (all-reduce, send/recv to self and
 * an all-to-all with zero-size blocks, checked value by value), and two
 * ranks on the same GPU, which NCCL refuses: both ranks must fail within
 * the bound with an error naming the call. With two or more GPUs: a world
 * over all of them (all-reduce of integer-valued floats, exact; a ring of
 * sends; an all-to-allv whose counts include zeros; every value checked);
 * a rank that never sends makes its peer's wait time out and abort, and
 * the silent rank hears of it; a rank killed while its peer waits on it
 * makes the peer stop within the bound, naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/nccl.h"
#include "tests/unit/testutil.h"

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libnccl.so\nleak:libcuda.so\n"; }

static int ngpus;
static uint64_t seed;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The value rank r puts at index i of buffer `which`: small integers, so sums are exact in f32. */
static float value(int which, int r, size_t i) {
    uint64_t x = seed ^ ((uint64_t)which << 56) ^ ((uint64_t)r << 40) ^ (uint64_t)i;
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ull, x ^= x >> 33;
    return (float)((int)(x % 2001) - 1000);
}

/* All-to-allv counts: what rank s sends rank t (zeros included). */
static size_t a2a_count(int s, int t) { return (size_t)((s + 2 * t) % 3) * 1000; }

/* ---- ranks (children) ------------------------------------------------------- */

typedef struct {
    int failed;     /* a check or call failed: msg says which */
    int cause, culprit;
    double when;    /* CLOCK_MONOTONIC of the failure the test provoked */
    char msg[600];
} Report;

typedef enum {
    MODE_SELF,     /* world of one: collectives against themselves */
    MODE_SAME_GPU, /* every rank on GPU 0: NCCL refuses */
    MODE_WORLD,    /* one rank per GPU: collectives checked */
    MODE_HANG,     /* rank 1 never sends what rank 0 waits for */
    MODE_KILLED,   /* rank 1 is killed while rank 0 waits for it */
} Mode;

typedef struct {
    Mode mode;
    int rank, size, port, note; /* note: a pipe to the parent ("waiting" byte) */
    Arena *a;
    DiagEngine *d;
    RtCuda *cu;
    RtNccl *n;
    RtWatchdog *w;
    RtNcclComm *c;
    Report rep;
} Rank;

static void fail_with(Rank *k, const char *what) {
    if (k->rep.failed) return;
    k->rep.failed = 1;
    const Diag *e = diag_first(k->d);
    snprintf(k->rep.msg, sizeof k->rep.msg, "%s%s%s", what, e ? ": " : "", e ? e->msg : "");
}

static RtDevPtr upload_values(Rank *k, int which, size_t n) {
    float *h = malloc(sizeof *h * (n ? n : 1));
    for (size_t i = 0; i < n; i++) h[i] = value(which, k->rank, i);
    RtDevPtr p = 0;
    if (!rt_cuda_alloc(k->cu, k->d, sizeof *h * (n ? n : 1), &p) || (n && !rt_cuda_upload(k->cu, k->d, p, h, sizeof *h * n))) p = 0;
    free(h);
    return p;
}

static float *download(Rank *k, RtDevPtr p, size_t n) {
    float *h = malloc(sizeof *h * (n ? n : 1));
    if (n && !rt_cuda_download(k->cu, k->d, h, p, sizeof *h * n)) {
        free(h);
        return NULL;
    }
    return h;
}

/* All-reduce, a ring of sends (or send to self), and an all-to-allv, each value checked. */
static bool collectives(Rank *k) {
    const size_t N = 1000003;
    RtDevPtr a = upload_values(k, 1, N), b = 0;
    if (!a || !rt_cuda_alloc(k->cu, k->d, N * 4, &b)) return fail_with(k, "alloc"), false;
    if (!rt_nccl_all_reduce(k->c, k->d, a, b, N, RT_NCCL_F32, RT_NCCL_SUM, NULL) || !rt_nccl_wait(k->c, k->d, NULL, "all-reduce", 0))
        return fail_with(k, "all-reduce"), false;
    float *h = download(k, b, N);
    for (size_t i = 0; h && i < N; i++) {
        float want = 0;
        for (int r = 0; r < k->size; r++) want += value(1, r, i);
        if (h[i] != want) {
            snprintf(k->rep.msg, sizeof k->rep.msg, "all-reduce[%zu] = %g, want %g", i, h[i], want);
            k->rep.failed = 1;
            break;
        }
    }
    free(h);
    if (k->rep.failed) return false;
    int next = (k->rank + 1) % k->size, prev = (k->rank + k->size - 1) % k->size;
    if (!rt_nccl_group_start(k->c, k->d) || !rt_nccl_send(k->c, k->d, a, N, RT_NCCL_F32, next, NULL) ||
        !rt_nccl_recv(k->c, k->d, b, N, RT_NCCL_F32, prev, NULL) || !rt_nccl_group_end(k->c, k->d, "ring") ||
        !rt_nccl_wait(k->c, k->d, NULL, "ring", 0))
        return fail_with(k, "ring"), false;
    h = download(k, b, N);
    for (size_t i = 0; h && i < N && !k->rep.failed; i++)
        if (h[i] != value(1, prev, i)) {
            snprintf(k->rep.msg, sizeof k->rep.msg, "ring[%zu] from rank %d = %g, want %g", i, prev, h[i], value(1, prev, i));
            k->rep.failed = 1;
        }
    free(h);
    size_t *v = calloc(4 * (size_t)k->size, sizeof *v), sent = 0, got = 0;
    for (int p = 0; p < k->size; p++) {
        v[p] = a2a_count(k->rank, p), v[k->size + p] = sent, sent += v[p];
        v[2 * k->size + p] = a2a_count(p, k->rank), v[3 * k->size + p] = got, got += v[2 * k->size + p];
    }
    RtDevPtr s = upload_values(k, 2, sent), r = 0;
    bool ok = s && rt_cuda_alloc(k->cu, k->d, 4 * (got ? got : 1), &r) &&
              rt_nccl_all_to_allv(k->c, k->d, s, v, v + k->size, r, v + 2 * k->size, v + 3 * k->size, RT_NCCL_F32, NULL) &&
              rt_nccl_wait(k->c, k->d, NULL, "all-to-allv", 0);
    if (!ok) fail_with(k, "all-to-allv");
    h = ok ? download(k, r, got) : NULL;
    for (int p = 0; h && p < k->size && !k->rep.failed; p++) {
        size_t off = 0; /* where rank p's block for this rank starts in p's send buffer */
        for (int q = 0; q < k->rank; q++) off += a2a_count(p, q);
        for (size_t i = 0; i < v[2 * k->size + p]; i++)
            if (h[v[3 * k->size + p] + i] != value(2, p, off + i)) {
                snprintf(k->rep.msg, sizeof k->rep.msg, "all-to-allv: element %zu from rank %d wrong", i, p);
                k->rep.failed = 1;
                break;
            }
    }
    free(h);
    free(v);
    return !k->rep.failed;
}

static void note_parent(Rank *k) {
    if (write(k->note, "w", 1) != 1) _exit(3);
}

/* Rank 1 of MODE_HANG / MODE_KILLED: stay alive (beating) until told something failed. */
static void idle_until_failure(Rank *k, double limit_s) {
    double end = now_s() + limit_s;
    while (rt_watchdog_ok(k->w) && now_s() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    k->rep.when = now_s();
}

static void rank_main(Rank *k, int report) {
    k->a = arena_new();
    k->d = diag_new(k->a, NULL);
    int device = k->mode == MODE_SAME_GPU ? 0 : k->rank;
    k->cu = rt_cuda_open(k->d, device);
    k->n = k->cu ? rt_nccl_open(k->d) : NULL;
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, k->rank, k->size, k->rank, "127.0.0.1", k->port};
    k->w = k->n ? rt_watchdog_new(k->d, &(RtWatchdogOptions){.rank = k->rank, .size = k->size, .heartbeat_ms = 100, .silence_ms = 3000}) : NULL;
    if (!k->w) {
        fail_with(k, "setup");
    } else if (k->mode == MODE_SAME_GPU) {
        double t0 = now_s();
        k->c = rt_nccl_comm_init(k->n, k->d, &ri, k->w, 20000);
        k->rep.when = now_s() - t0;
        if (k->c) fail_with(k, "NCCL accepted two ranks on one GPU");
        else snprintf(k->rep.msg, sizeof k->rep.msg, "%s", diag_first(k->d) ? diag_first(k->d)->msg : "");
    } else if (!(k->c = rt_nccl_comm_init(k->n, k->d, &ri, k->w, 60000))) {
        fail_with(k, "comm init");
    } else if (k->mode == MODE_SELF || k->mode == MODE_WORLD) {
        collectives(k);
    } else { /* MODE_HANG, MODE_KILLED: connect 0 and 1 with a first exchange, then rank 0 waits for what never comes */
        RtDevPtr buf = upload_values(k, 3, 4096);
        int peer = 1 - k->rank;
        bool ok = buf && rt_nccl_group_start(k->c, k->d) && rt_nccl_send(k->c, k->d, buf, 1024, RT_NCCL_F32, peer, NULL) &&
                  rt_nccl_recv(k->c, k->d, buf + 4096 * 2, 1024, RT_NCCL_F32, peer, NULL) && rt_nccl_group_end(k->c, k->d, "warm-up") &&
                  rt_nccl_wait(k->c, k->d, NULL, "warm-up", 0);
        if (!ok) {
            fail_with(k, "warm-up");
        } else if (k->rank == 0) {
            ok = rt_nccl_recv(k->c, k->d, buf, 1024, RT_NCCL_F32, 1, NULL);
            /* in the operation before telling the parent, so a death it causes finds this rank in it */
            int slot = k->mode == MODE_KILLED ? rt_watchdog_arm(k->w, "the recv from rank 1", -1, 60000) : -1;
            note_parent(k);
            double t0 = now_s();
            if (ok && rt_nccl_wait(k->c, k->d, NULL, "the recv from rank 1", k->mode == MODE_HANG ? 1500 : 60000)) fail_with(k, "the wait returned");
            k->rep.when = k->mode == MODE_HANG ? now_s() - t0 : now_s();
            rt_watchdog_disarm(k->w, slot);
            snprintf(k->rep.msg, sizeof k->rep.msg, "%s", diag_first(k->d) ? diag_first(k->d)->msg : "");
        } else {
            note_parent(k);
            idle_until_failure(k, 20.0);
            snprintf(k->rep.msg, sizeof k->rep.msg, "%s", rt_watchdog_error(k->w));
        }
    }
    if (k->w) k->rep.cause = rt_watchdog_cause(k->w, &k->rep.culprit);
    if (k->c) {
        if (k->rep.cause == RT_WD_OK) rt_nccl_comm_destroy(k->c, k->d);
        else rt_nccl_comm_abort(k->c);
    }
    /* a rank done before its peers says goodbye, or they take its exit for a death mid-operation */
    if (k->w && k->rep.cause == RT_WD_OK) rt_watchdog_free(k->w);
    if (write(report, &k->rep, sizeof k->rep) != (ssize_t)sizeof k->rep) _exit(3);
    _exit(0); /* leave the driver and NCCL to the exit: no teardown that could hang a failed test */
}

/* ---- the test side ------------------------------------------------------------ */

typedef struct {
    pid_t pid;
    int report, note;
} Child;

static void spawn(Child *ch, Mode mode, int size) {
    int port = tu_free_port();
    for (int r = 0; r < size; r++) {
        int rep[2], note[2];
        assert_int_equal(pipe(rep), 0);
        assert_int_equal(pipe(note), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(rep[0]), close(note[0]);
            Rank k = {.mode = mode, .rank = r, .size = size, .port = port, .note = note[1]};
            rank_main(&k, rep[1]);
        }
        close(rep[1]), close(note[1]);
        ch[r] = (Child){pid, rep[0], note[0]};
    }
}

static Report collect(Child *ch, double limit_s) {
    Report rep;
    memset(&rep, 0, sizeof rep);
    struct pollfd p = {ch->report, POLLIN, 0};
    if (poll(&p, 1, (int)(limit_s * 1e3)) != 1 || read(ch->report, &rep, sizeof rep) != (ssize_t)sizeof rep) {
        kill(ch->pid, SIGKILL);
        rep.failed = 1;
        snprintf(rep.msg, sizeof rep.msg, "no report within %g s", limit_s);
    }
    int st;
    waitpid(ch->pid, &st, 0);
    close(ch->report), close(ch->note);
    return rep;
}

static void wait_note(Child *ch) {
    struct pollfd p = {ch->note, POLLIN, 0};
    char c;
    assert_int_equal(poll(&p, 1, 60000), 1);
    assert_int_equal(read(ch->note, &c, 1), 1);
}

static void expect_ok(Report *r, int rank) {
    if (r->failed) print_error("rank %d: %s\n", rank, r->msg);
    assert_false(r->failed);
}

static void test_self(void **state) {
    (void)state;
    Child ch;
    spawn(&ch, MODE_SELF, 1);
    Report r = collect(&ch, 120);
    expect_ok(&r, 0);
}

static void test_same_gpu_refused(void **state) {
    (void)state;
    Child ch[2];
    spawn(ch, MODE_SAME_GPU, 2);
    for (int r = 0; r < 2; r++) {
        Report rep = collect(&ch[r], 60);
        expect_ok(&rep, r);
        print_message("rank %d after %.2f s: %s\n", r, rep.when, rep.msg);
        assert_true(rep.when < 25.0);
        assert_non_null(strstr(rep.msg, "ncclCommInitRankConfig (rank "));
    }
}

static void test_world(void **state) {
    (void)state;
    if (ngpus < 2) skip();
    int size = ngpus > 8 ? 8 : ngpus;
    Child ch[8];
    spawn(ch, MODE_WORLD, size);
    for (int r = 0; r < size; r++) {
        Report rep = collect(&ch[r], 120);
        expect_ok(&rep, r);
    }
}

static void test_hang_times_out(void **state) {
    (void)state;
    if (ngpus < 2) skip();
    Child ch[2];
    spawn(ch, MODE_HANG, 2);
    Report r0 = collect(&ch[0], 90), r1 = collect(&ch[1], 30);
    print_message("rank 0 after %.2f s: %s\nrank 1: %s\n", r0.when, r0.msg, r1.msg);
    expect_ok(&r0, 0);
    expect_ok(&r1, 1);
    assert_true(r0.when >= 1.4 && r0.when < 8.0); /* the 1.5 s deadline, then the abort */
    assert_int_equal(r0.cause, RT_WD_TIMEOUT);
    assert_string_equal(r0.msg, "rank 0: the recv from rank 1 did not finish within 1.5 s");
    assert_int_equal(r1.cause, RT_WD_PEER_FAILED);
    assert_int_equal(r1.culprit, 0);
}

static void test_killed_peer(void **state) {
    (void)state;
    if (ngpus < 2) skip();
    Child ch[2];
    spawn(ch, MODE_KILLED, 2);
    wait_note(&ch[0]); /* rank 0 waits on rank 1 */
    wait_note(&ch[1]);
    double t0 = now_s();
    kill(ch[1].pid, SIGKILL);
    Report r0 = collect(&ch[0], 60);
    collect(&ch[1], 5);
    print_message("rank 0 after %.2f s: %s\n", r0.when - t0, r0.msg);
    expect_ok(&r0, 0);
    assert_true(r0.when - t0 < 5.0);
    if (r0.cause == RT_WD_ABORTED) { /* NCCL noticed first (a network transport): its error, then */
        assert_non_null(strstr(r0.msg, "rank 0: NCCL "));
        return;
    }
    assert_int_equal(r0.cause, RT_WD_PEER_DIED);
    assert_int_equal(r0.culprit, 1);
    assert_string_equal(r0.msg, "rank 0: rank 1 died (its connection closed), during the recv from rank 1");
}

/* How many GPUs, asked in a child (no CUDA in this process before fork). */
static int count_gpus(void) {
    pid_t pid = fork();
    if (pid == 0) {
        void *cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL), *nccl = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
        int (*init)(unsigned) = cu ? (int (*)(unsigned))dlsym(cu, "cuInit") : NULL;
        int (*count)(int *) = cu ? (int (*)(int *))dlsym(cu, "cuDeviceGetCount") : NULL;
        int n = 0;
        if (!nccl || !init || !count || init(0) != 0 || count(&n) != 0) n = 0;
        _exit(n > 100 ? 100 : n);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return 0;
    return WEXITSTATUS(st);
}

int main(void) {
    ngpus = count_gpus();
    if (ngpus == 0) {
        printf("skipped: no GPU, or no libnccl.so.2, on this machine\n");
        return 77;
    }
    seed = (uint64_t)time(NULL) * 2654435761u;
    printf("%d GPU(s)\n", ngpus);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self),           cmocka_unit_test(test_same_gpu_refused), cmocka_unit_test(test_world),
        cmocka_unit_test(test_hang_times_out), cmocka_unit_test(test_killed_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
