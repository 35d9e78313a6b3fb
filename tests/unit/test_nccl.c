/* test_nccl.c — the NCCL layer where no GPU is needed.
 *
 * With the real library: loading it (or, without it, the clear report that
 * it is missing), unique ids, and the bounded failures of communicator
 * creation: a world whose other ranks never come, and (on a machine
 * without a CUDA driver) NCCL's own refusal, reported with NCCL's texts.
 *
 * With a fake NCCL (rt_nccl_open_api): non-blocking init and group ends
 * that stay in progress for a while, the exact sequence of sends and
 * receives of an all-to-all, a hung init and a hung wait aborted at their
 * deadline by the watchdog's thread, NCCL errors named with NCCL's texts,
 * a rank killed while its peer waits (real processes, real heartbeats) —
 * and, throughout, that no two NCCL calls on a communicator ever overlap
 * (the abort comes from another thread) and none touches a communicator
 * after its abort (the fake frees it: ASan would see it). The GPU parts
 * are test_gpu_nccl.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/nccl.h"
#include "tests/unit/testutil.h"

/* NCCL keeps process-lifetime allocations (its bootstrap root, caches):
 * not ours to report under LeakSanitizer. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libnccl.so\n"; }

typedef struct {
    Arena *a;
    DiagEngine *d;
    RtNccl *n;
} Fix;

static int setup(void **state) {
    static Fix f;
    f.a = arena_new();
    f.d = diag_new(f.a, NULL);
    f.n = rt_nccl_open(f.d);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    Fix *f = *state;
    rt_nccl_close(f->n);
    arena_free(f->a);
    return 0;
}

/* With the library: its version; without: exactly the report, and the rest is skipped. */
static void test_open(void **state) {
    Fix *f = *state;
    if (!f->n) {
        assert_int_equal(diag_error_count(f->d), 1);
        const char *m = diag_first(f->d)->msg;
        assert_non_null(strstr(m, "NCCL is not available: cannot load libnccl.so.2 ("));
        assert_non_null(strstr(m, "runs on more than one GPU need NCCL 2.17 or newer"));
        print_message("libnccl.so.2 is not installed here: the rest of this test is skipped\n");
        return;
    }
    assert_int_equal(diag_error_count(f->d), 0);
    int v = rt_nccl_version(f->n);
    assert_true(v >= 21700 && v < 40000);
    print_message("NCCL %d.%d.%d\n", v / 10000, v / 100 % 100, v % 100);
}

static void test_names_and_sizes(void **state) {
    (void)state;
    assert_string_equal(rt_nccl_result_name(0), "ncclSuccess");
    assert_string_equal(rt_nccl_result_name(6), "ncclRemoteError");
    assert_string_equal(rt_nccl_result_name(7), "ncclInProgress");
    assert_string_equal(rt_nccl_result_name(42), "an unknown NCCL result");
    assert_int_equal(rt_nccl_type_size(RT_NCCL_BF16), 2);
    assert_int_equal(rt_nccl_type_size(RT_NCCL_F32), 4);
    assert_int_equal(rt_nccl_type_size(RT_NCCL_FP8E4M3), 1);
    assert_int_equal(rt_nccl_type_size(RT_NCCL_I64), 8);
    assert_int_equal(sizeof(RtNcclId), 128);
}

static void test_unique_id(void **state) {
    Fix *f = *state;
    if (!f->n) skip();
    RtNcclId a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    assert_true(rt_nccl_unique_id(f->n, f->d, &a));
    assert_true(rt_nccl_unique_id(f->n, f->d, &b));
    int nonzero = 0;
    for (size_t i = 0; i < sizeof a.internal; i++) nonzero += a.internal[i] != 0;
    assert_true(nonzero > 0);
    assert_memory_not_equal(&a, &b, sizeof a); /* each names its own bootstrap root */
}

/* A rank whose rank 0 never comes, and a rank 0 whose peers never come:
 * both fail within the timeout, naming who is missing. */
static void test_world_never_forms(void **state) {
    Fix *f = *state;
    if (!f->n) skip();
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, 1, 2, 1, "127.0.0.1", tu_free_port()};
    RtWatchdog *w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = 1, .size = 2});
    double t0 = tu_now_s();
    assert_null(rt_nccl_comm_init(f->n, d, &ri, w, 400));
    assert_true(tu_now_s() - t0 < 3.0);
    assert_non_null(strstr(diag_first(d)->msg, "rank 1 could not reach rank 0 at 127.0.0.1:"));
    rt_watchdog_free(w);
    ri = (RtRankInfo){RT_LAUNCH_TORCHRUN, 0, 3, 0, "127.0.0.1", tu_free_port()};
    w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = 0, .size = 3});
    t0 = tu_now_s();
    assert_null(rt_nccl_comm_init(f->n, d, &ri, w, 400));
    assert_true(tu_now_s() - t0 < 3.0);
    assert_string_equal(diag_first(d)->next->msg, "rendezvous: ranks 1, 2 did not join within the timeout (1 of 3 ranks present)");
    rt_watchdog_free(w);
    arena_free(a);
}

/* Without a CUDA driver NCCL refuses to make a communicator: the error
 * names the call and the rank and carries NCCL's own texts. */
static void test_init_without_driver(void **state) {
    Fix *f = *state;
    if (!f->n) skip();
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (cuda) { /* a GPU machine: test_gpu_nccl covers communicators */
        dlclose(cuda);
        skip();
    }
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtNcclId id;
    assert_true(rt_nccl_unique_id(f->n, d, &id));
    double t0 = tu_now_s();
    assert_null(rt_nccl_comm_init_rank(f->n, d, &id, 0, 1, NULL, 3000));
    assert_true(tu_now_s() - t0 < 3.0);
    assert_int_equal(diag_error_count(d), 1);
    const char *m = diag_first(d)->msg;
    assert_non_null(strstr(m, "rank 0: NCCL ncclCommInitRankConfig (rank 0 of 1) failed: ncclUnhandledCudaError (unhandled cuda error"));
    assert_non_null(strstr(m, "; NCCL says: Cuda failure"));
    assert_null(rt_nccl_comm_init_rank(f->n, d, &id, 1, 1, NULL, 3000)); /* and a rank outside the world */
    assert_string_equal(diag_first(d)->next->msg, "NCCL: rank 1 of a world of 1");
    arena_free(a);
}

/* ---- a fake NCCL ----------------------------------------------------------- */

#define FAKE_MAGIC 0xfa4ec0
typedef struct {
    int magic, rank, nranks;
    int polls_left; /* asynchronous state: in progress for this many more polls; -1 = for ever */
} FakeComm;

typedef struct {
    char kind; /* 'S'end, 'R'ecv */
    uintptr_t buf;
    size_t count;
    int type, peer;
} FakeOp;

static struct {
    int init_result, init_polls, end_polls;
    int fail_send_peer;    /* a send to this peer fails with ncclRemoteError (-1: none) */
    int async_error_after; /* polls after which the asynchronous state is ncclRemoteError (-1: never) */
    bool stream_ready;
    int ready_fd; /* > 0: the first stream query writes a byte here (the rank is inside its wait) */
    atomic_int in_call, overlaps; /* calls in progress now; times two overlapped */
    atomic_int aborts, destroys, finalizes, group_starts, group_ends, polls;
    FakeComm *live;
    int nops;
    FakeOp ops[64];
} fk;

static void fake_reset(void) {
    memset(&fk, 0, sizeof fk);
    fk.init_result = 7; /* ncclInProgress */
    fk.init_polls = 3;
    fk.fail_send_peer = -1;
    fk.async_error_after = -1;
    fk.stream_ready = true;
}

static void enter(void) {
    if (atomic_fetch_add(&fk.in_call, 1) != 0) atomic_fetch_add(&fk.overlaps, 1);
}
static void leave(void) { atomic_fetch_sub(&fk.in_call, 1); }

static FakeComm *live(void *comm) {
    FakeComm *c = comm;
    assert_int_equal(c->magic, FAKE_MAGIC); /* after a free, ASan stops here */
    return c;
}

static int f_version(int *v) { return *v = 22809, 0; }
static int f_unique_id(RtNcclId *id) {
    for (size_t i = 0; i < sizeof id->internal; i++) id->internal[i] = (char)rand();
    return 0;
}
static int f_init(void **comm, int nranks, RtNcclId id, int rank, void *config) {
    (void)id;
    enter();
    const int *cfg = (const int *)((const char *)config + sizeof(size_t));
    assert_int_equal((unsigned)cfg[0], 0xcafebeef); /* magic, then version, then blocking = 0 */
    assert_int_equal(cfg[2], 0);
    FakeComm *c = calloc(1, sizeof *c);
    *c = (FakeComm){FAKE_MAGIC, rank, nranks, fk.init_polls};
    *comm = fk.live = c;
    leave();
    return fk.init_result;
}
static int f_async(void *comm, int *st) {
    enter();
    FakeComm *c = live(comm);
    int n = atomic_fetch_add(&fk.polls, 1) + 1;
    if (c->polls_left != 0) {
        if (c->polls_left > 0) c->polls_left--;
        *st = 7;
    } else {
        *st = fk.async_error_after >= 0 && n > fk.async_error_after ? 6 : 0;
    }
    leave();
    return 0;
}
static int f_finalize(void *comm) {
    enter();
    live(comm)->polls_left = 2;
    atomic_fetch_add(&fk.finalizes, 1);
    leave();
    return 7;
}
static int f_free(void *comm, atomic_int *count) {
    enter();
    live(comm)->magic = 0;
    free(comm);
    fk.live = NULL;
    atomic_fetch_add(count, 1);
    struct timespec ts = {0, 20 * 1000 * 1000}; /* a slow abort: widens any window for a racing call */
    nanosleep(&ts, NULL);
    leave();
    return 0;
}
static int f_destroy(void *comm) { return f_free(comm, &fk.destroys); }
static int f_abort(void *comm) { return f_free(comm, &fk.aborts); }
static const char *f_error_string(int r) {
    return r == 6 ? "remote process exited or there was a network error" : r == 7 ? "NCCL operation in progress" : "some NCCL error";
}
static const char *f_last_error(void *comm) {
    (void)comm;
    return "fake: peer 3 closed the connection";
}
static int f_group_start(void) {
    enter();
    atomic_fetch_add(&fk.group_starts, 1);
    leave();
    return 0;
}
static int f_group_end(void) {
    enter();
    atomic_fetch_add(&fk.group_ends, 1);
    int r = 0;
    if (fk.end_polls && fk.live) live(fk.live)->polls_left = fk.end_polls, r = 7;
    leave();
    return r;
}
static int f_p2p(char kind, const void *buf, size_t count, int type, int peer, void *comm) {
    enter();
    live(comm);
    if (fk.nops < 64) fk.ops[fk.nops++] = (FakeOp){kind, (uintptr_t)buf, count, type, peer};
    leave();
    return kind == 'S' && peer == fk.fail_send_peer ? 6 : 0;
}
static int f_send(const void *buf, size_t count, int type, int peer, void *comm, void *stream) {
    (void)stream;
    return f_p2p('S', buf, count, type, peer, comm);
}
static int f_recv(void *buf, size_t count, int type, int peer, void *comm, void *stream) {
    (void)stream;
    return f_p2p('R', buf, count, type, peer, comm);
}
static int f_all_reduce(const void *s, void *r, size_t count, int type, int op, void *comm, void *stream) {
    (void)s, (void)r, (void)count, (void)type, (void)op, (void)stream;
    enter();
    live(comm)->polls_left = 3; /* in progress for a while, outside a group */
    leave();
    return 7;
}
static int f_stream_query(void *stream) {
    (void)stream;
    if (fk.ready_fd > 0 && write(fk.ready_fd, "r", 1) == 1) fk.ready_fd = 0;
    return fk.stream_ready ? 0 : 600;
}

static const RtNcclApi fake_api = {f_version, f_unique_id, f_init,        f_finalize,    f_destroy,    f_abort,
                                   f_async,   f_error_string, f_last_error, f_group_start, f_group_end, f_send,
                                   f_recv,    f_all_reduce,   f_stream_query};

/* Waits (bounded) until the watchdog's thread has aborted `want` communicators. */
static int aborts_within(int want, double s) {
    double end = tu_now_s() + s;
    while (atomic_load(&fk.aborts) < want && tu_now_s() < end) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&fk.aborts);
}

/* A test of the library over the fake NCCL: fk reset (a test sets its knobs after), an arena, diagnostics, the library;
 * fake_close checks that no two calls into NCCL overlapped and frees them. */
typedef struct {
    Arena *a;
    DiagEngine *d;
    RtNccl *n;
} FakeRun;

static FakeRun fake_open(void) {
    fake_reset();
    FakeRun f = {arena_new(), NULL, NULL};
    f.d = diag_new(f.a, NULL);
    f.n = rt_nccl_open_api(f.d, &fake_api);
    return f;
}

static void fake_close(FakeRun *f) {
    assert_int_equal(atomic_load(&fk.overlaps), 0);
    rt_nccl_close(f->n);
    arena_free(f->a);
}

static void test_fake_lifecycle(void **state) {
    (void)state;
    FakeRun f = fake_open();
    DiagEngine *d = f.d;
    RtNccl *n = f.n;
    RtNcclId id;
    assert_true(rt_nccl_unique_id(n, d, &id));
    RtNcclComm *c = rt_nccl_comm_init_rank(n, d, &id, 1, 4, NULL, 2000);
    assert_non_null(c);
    assert_true(atomic_load(&fk.polls) >= 4); /* in progress three times, then ready */
    assert_int_equal(rt_nccl_comm_rank(c), 1);
    assert_int_equal(rt_nccl_comm_size(c), 4);
    assert_true(rt_nccl_all_reduce(c, d, 0x100, 0x200, 10, RT_NCCL_F32, RT_NCCL_SUM, NULL)); /* settles */
    size_t sc[4] = {3, 0, 5, 2}, so[4] = {0, 3, 3, 8}, rc[4] = {1, 2, 0, 4}, ro[4] = {0, 1, 3, 3};
    fk.end_polls = 2;
    assert_true(rt_nccl_all_to_allv(c, d, 0x1000, sc, so, 0x9000, rc, ro, RT_NCCL_BF16, NULL));
    FakeOp want[8] = {{'S', 0x1000, 3, 9, 0}, {'R', 0x9000, 1, 9, 0}, {'S', 0x1006, 0, 9, 1}, {'R', 0x9002, 2, 9, 1},
                      {'S', 0x1006, 5, 9, 2}, {'R', 0x9006, 0, 9, 2}, {'S', 0x1010, 2, 9, 3}, {'R', 0x9006, 4, 9, 3}};
    assert_int_equal(fk.nops, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(fk.ops[i].kind, want[i].kind);
        assert_int_equal(fk.ops[i].buf, want[i].buf);
        assert_int_equal(fk.ops[i].count, want[i].count);
        assert_int_equal(fk.ops[i].type, want[i].type);
        assert_int_equal(fk.ops[i].peer, want[i].peer);
    }
    assert_int_equal(atomic_load(&fk.group_starts), 1);
    assert_int_equal(atomic_load(&fk.group_ends), 1);
    fk.nops = 0;
    assert_true(rt_nccl_all_to_all(c, d, 0x1000, 0x9000, 16, RT_NCCL_F32, NULL)); /* block p at p * 16 elements */
    assert_int_equal(fk.nops, 8);
    assert_int_equal(fk.ops[6].buf, 0x1000 + 3 * 16 * 4);
    assert_int_equal(fk.ops[7].buf, 0x9000 + 3 * 16 * 4);
    assert_true(rt_nccl_wait(c, d, NULL, "all-to-all", 0));
    assert_true(rt_nccl_check(c, d));
    assert_true(rt_nccl_comm_destroy(c, d));
    assert_int_equal(atomic_load(&fk.finalizes), 1);
    assert_int_equal(atomic_load(&fk.destroys), 1);
    assert_int_equal(atomic_load(&fk.aborts), 0);
    assert_int_equal(diag_error_count(d), 0);
    fake_close(&f);
}

static void test_fake_init_hangs(void **state) {
    (void)state;
    FakeRun f = fake_open();
    fk.init_polls = -1;
    DiagEngine *d = f.d;
    RtNccl *n = f.n;
    RtNcclId id = {{0}};
    double t0 = tu_now_s();
    assert_null(rt_nccl_comm_init_rank(n, d, &id, 0, 1, NULL, 300));
    double took = tu_now_s() - t0;
    assert_true(took >= 0.28 && took < 3.0);
    assert_int_equal(diag_error_count(d), 1);
    assert_string_equal(diag_first(d)->msg, "rank 0: ncclCommInitRankConfig (rank 0 of 1) did not finish within 0.3 s");
    assert_int_equal(atomic_load(&fk.aborts), 1);
    fake_close(&f);
}

static void test_fake_wait_times_out(void **state) {
    (void)state;
    FakeRun f = fake_open();
    fk.init_result = 0;
    fk.init_polls = 0;
    DiagEngine *d = f.d;
    RtNccl *n = f.n;
    RtNcclId id = {{0}};
    RtNcclComm *c = rt_nccl_comm_init_rank(n, d, &id, 0, 2, NULL, 5000);
    assert_non_null(c);
    assert_true(rt_nccl_recv(c, d, 0x100, 4, RT_NCCL_F32, 1, NULL));
    fk.stream_ready = false; /* the kernel waits for rank 1 for ever */
    double t0 = tu_now_s();
    assert_false(rt_nccl_wait(c, d, NULL, "dispatch layer 3", 300));
    double took = tu_now_s() - t0;
    assert_true(took >= 0.28 && took < 3.0);
    assert_string_equal(diag_first(d)->msg, "rank 0: dispatch layer 3 did not finish within 0.3 s");
    assert_int_equal(aborts_within(1, 2.0), 1);
    int who;
    assert_int_equal(rt_watchdog_cause(rt_nccl_comm_watchdog(c), &who), RT_WD_TIMEOUT);
    /* nothing reaches the freed communicator, and nothing is reported twice */
    assert_false(rt_nccl_send(c, d, 0x100, 4, RT_NCCL_F32, 1, NULL));
    assert_false(rt_nccl_group_start(c, d));
    assert_false(rt_nccl_check(c, d));
    assert_false(rt_nccl_comm_destroy(c, d));
    assert_int_equal(diag_error_count(d), 1);
    assert_int_equal(atomic_load(&fk.finalizes), 0);
    assert_int_equal(atomic_load(&fk.destroys), 0);
    assert_int_equal(atomic_load(&fk.aborts), 1);
    fake_close(&f);
}

static void test_fake_nccl_errors(void **state) {
    (void)state;
    FakeRun f = fake_open();
    fk.fail_send_peer = 3;
    Arena *a = f.a;
    DiagEngine *d = f.d;
    RtNccl *n = f.n;
    RtNcclId id = {{0}};
    RtNcclComm *c = rt_nccl_comm_init_rank(n, d, &id, 0, 4, NULL, 5000);
    assert_non_null(c);
    assert_true(rt_nccl_group_start(c, d));
    assert_true(rt_nccl_recv(c, d, 0x100, 1024, RT_NCCL_BF16, 2, NULL));
    assert_false(rt_nccl_send(c, d, 0x100, 4096, RT_NCCL_BF16, 3, NULL));
    assert_false(rt_nccl_group_end(c, d, "dispatch"));
    assert_int_equal(atomic_load(&fk.group_ends), 1); /* NCCL's group is closed all the same */
    assert_int_equal(diag_error_count(d), 1);
    const char *m = diag_first(d)->msg;
    assert_non_null(strstr(m, "rank 0: NCCL ncclSend of 8192 bytes to rank 3 failed: ncclRemoteError (remote process exited or there was a "
                              "network error); NCCL says: fake: peer 3 closed the connection [runtime/nccl.c:"));
    assert_int_equal(aborts_within(1, 2.0), 1); /* the watchdog aborted the communicator: the other ranks hear of it */
    int who;
    assert_int_equal(rt_watchdog_cause(rt_nccl_comm_watchdog(c), &who), RT_WD_ABORTED);
    rt_nccl_comm_abort(c);
    assert_int_equal(atomic_load(&fk.aborts), 1);
    /* an asynchronous error while waiting */
    fake_reset();
    d = diag_new(a, NULL);
    c = rt_nccl_comm_init_rank(n, d, &id, 2, 4, NULL, 5000);
    assert_non_null(c);
    fk.stream_ready = false;
    fk.async_error_after = atomic_load(&fk.polls) + 3;
    assert_false(rt_nccl_wait(c, d, NULL, "combine layer 7", 5000));
    assert_non_null(strstr(diag_first(d)->msg, "rank 2: NCCL combine layer 7 failed: ncclRemoteError (remote process exited"));
    rt_nccl_comm_abort(c);
    assert_int_equal(atomic_load(&fk.aborts), 1);
    /* misuse */
    fake_reset();
    d = diag_new(a, NULL);
    c = rt_nccl_comm_init_rank(n, d, &id, 0, 2, NULL, 5000);
    assert_false(rt_nccl_group_end(c, d, "nothing"));
    assert_string_equal(diag_first(d)->msg, "rank 0: NCCL: rt_nccl_group_end of nothing without a group start");
    rt_nccl_comm_abort(c);
    c = rt_nccl_comm_init_rank(n, d, &id, 0, 2, NULL, 5000);
    assert_false(rt_nccl_send(c, d, 0x100, 1, RT_NCCL_U8, 2, NULL));
    assert_non_null(strstr(diag_first(d)->next->msg, "ncclSend of 1 bytes to rank 2: there is no rank 2 in a world of 2"));
    rt_nccl_comm_abort(c);
    fake_close(&f);
}

/* Two processes with the fake NCCL and real watchdogs: rank 1 is killed
 * while rank 0 waits on it; rank 0 stops within the bound, naming it. */
typedef struct {
    int ok, aborts, overlaps;
    double when;
    char msg[400];
} PeerReport;

static void peer_rank(int r, int port, int ready, int report) {
    fake_reset();
    fk.init_result = 0;
    fk.init_polls = 0;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtNccl *n = rt_nccl_open_api(d, &fake_api);
    RtWatchdog *w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = r, .size = 2, .heartbeat_ms = 50, .silence_ms = 5000});
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, r, 2, r, "127.0.0.1", port};
    RtNcclComm *c = rt_nccl_comm_init(n, d, &ri, w, 5000);
    if (!c) _exit(4);
    PeerReport rep = {0};
    fk.stream_ready = false;
    if (r == 0 && !rt_nccl_recv(c, d, 0x100, 4, RT_NCCL_F32, 1, NULL)) _exit(5);
    if (r == 1) {
        if (write(ready, "r", 1) != 1) _exit(6);
        pause(); /* until killed */
    }
    fk.ready_fd = ready; /* rank 0 is ready once it polls its stream */
    rep.ok = rt_nccl_wait(c, d, NULL, "the recv from rank 1", 20000);
    rep.when = tu_now_s();
    snprintf(rep.msg, sizeof rep.msg, "%s", diag_first(d) ? diag_first(d)->msg : "");
    rt_nccl_comm_abort(c);
    rep.aborts = atomic_load(&fk.aborts);
    rep.overlaps = atomic_load(&fk.overlaps);
    rt_watchdog_free(w);
    if (write(report, &rep, sizeof rep) != (ssize_t)sizeof rep) _exit(7);
    _exit(0);
}

typedef struct {
    int r, port, ready, report;
} Peer;

static int peer_main(void *arg) {
    const Peer *p = arg;
    peer_rank(p->r, p->port, p->ready, p->report); /* exits */
    return 1;
}

static void test_fake_peer_killed(void **state) {
    (void)state;
    int port = tu_free_port(), ready[2][2], report[2];
    pid_t pid[2];
    assert_int_equal(pipe(report), 0);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(pipe(ready[r]), 0);
        pid[r] = tu_fork(peer_main, &(Peer){r, port, ready[r][1], report[1]});
        close(ready[r][1]);
    }
    close(report[1]);
    for (int r = 0; r < 2; r++) {
        struct pollfd p = {ready[r][0], POLLIN, 0};
        char ch;
        assert_int_equal(poll(&p, 1, 8000), 1);
        assert_int_equal(read(ready[r][0], &ch, 1), 1);
        close(ready[r][0]);
    }
    double t0 = tu_now_s();
    kill(pid[1], SIGKILL);
    PeerReport rep;
    struct pollfd p = {report[0], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 8000), 1);
    assert_int_equal(read(report[0], &rep, sizeof rep), (ssize_t)sizeof rep);
    close(report[0]);
    assert_int_equal(tu_wait(pid[0]), 0);
    tu_wait(pid[1]);
    assert_false(rep.ok);
    assert_true(rep.when - t0 < 2.0);
    assert_string_equal(rep.msg, "rank 0: rank 1 died (its connection closed), during the recv from rank 1");
    assert_int_equal(rep.aborts, 1);
    assert_int_equal(rep.overlaps, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* First: it forks ranks that start threads, which is only safe (and
         * only possible under ThreadSanitizer) while this process has one
         * thread; the real library's tests leave NCCL's bootstrap threads
         * (ncclGetUniqueId's listener) running for the rest of the process. */
        cmocka_unit_test(test_fake_peer_killed),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_names_and_sizes),
        cmocka_unit_test(test_unique_id),
        cmocka_unit_test(test_world_never_forms),
        cmocka_unit_test(test_init_without_driver),
        cmocka_unit_test(test_fake_lifecycle),
        cmocka_unit_test(test_fake_init_hangs),
        cmocka_unit_test(test_fake_wait_times_out),
        cmocka_unit_test(test_fake_nccl_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
