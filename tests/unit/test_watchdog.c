/* test_watchdog.c — the watchdog without a GPU: a fake operation that
 * hangs until the abort callback releases it is stopped at its deadline
 * with an error naming the rank and the operation; with real processes on
 * loopback (fork), a rank that is killed, stopped, or whose own operation
 * times out makes every survivor stop within a bound, naming that rank; a
 * rank that finishes cleanly is no failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/watchdog.h"
#include "tests/unit/testutil.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The abort callback of the fake operation: counts, and releases it. */
typedef struct {
    int pipe[2];
    int calls;
} Fake;

static void fake_abort(void *ctx) {
    Fake *f = ctx;
    f->calls++;
    char c = 'x';
    if (write(f->pipe[1], &c, 1) != 1) abort();
}

/* The fake blocking operation: waits until aborted, at most limit_s. True if aborted. */
static bool fake_wait(Fake *f, double limit_s) {
    struct pollfd p = {f->pipe[0], POLLIN, 0};
    char c;
    return poll(&p, 1, (int)(limit_s * 1e3)) == 1 && read(f->pipe[0], &c, 1) == 1;
}

static void test_deadline(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    Fake f = {.calls = 0};
    assert_int_equal(pipe(f.pipe), 0);
    RtWatchdog *w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = 0, .size = 1, .timeout_ms = 200});
    assert_non_null(w);
    int cb = rt_watchdog_add_abort(w, fake_abort, &f);
    /* a disarmed operation never fires */
    int s = rt_watchdog_arm(w, "quick op", -1, 100);
    assert_true(s >= 0);
    rt_watchdog_disarm(w, s);
    assert_false(fake_wait(&f, 0.35));
    assert_true(rt_watchdog_ok(w));
    assert_true(rt_watchdog_check(w, d));
    assert_string_equal(rt_watchdog_error(w), "");
    /* one that hangs is stopped at its deadline */
    double t0 = now_s();
    s = rt_watchdog_arm(w, "fake all-to-all", 1, 300);
    int s2 = rt_watchdog_arm(w, "fake recv", 1, 0); /* the default: 200 ms... */
    rt_watchdog_disarm(w, s2);                      /* ...but done in time */
    assert_true(fake_wait(&f, 5.0));
    double took = now_s() - t0;
    assert_true(took >= 0.29 && took < 2.0);
    assert_false(rt_watchdog_ok(w));
    assert_false(rt_watchdog_check(w, d));
    assert_false(rt_watchdog_check(w, d)); /* reported once */
    assert_int_equal(diag_error_count(d), 1);
    assert_string_equal(diag_first(d)->msg, "rank 0: fake all-to-all with rank 1 did not finish within 0.3 s");
    int who = -2;
    assert_int_equal(rt_watchdog_cause(w, &who), RT_WD_TIMEOUT);
    assert_int_equal(who, 0);
    assert_int_equal(rt_watchdog_arm(w, "next op", -1, 0), -1); /* nothing starts after a failure */
    rt_watchdog_disarm(w, s);
    assert_false(fake_wait(&f, 0.1)); /* the callback ran once */
    assert_int_equal(f.calls, 1);
    /* a callback added after the failure runs at once */
    Fake g = {.calls = 0};
    assert_int_equal(pipe(g.pipe), 0);
    int cb2 = rt_watchdog_add_abort(w, fake_abort, &g);
    assert_int_equal(g.calls, 1);
    rt_watchdog_remove_abort(w, cb);
    rt_watchdog_remove_abort(w, cb2);
    rt_watchdog_free(w);
    close(f.pipe[0]), close(f.pipe[1]), close(g.pipe[0]), close(g.pipe[1]);
    arena_free(a);
}

static void test_default_timeout_and_fail(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    Fake f = {.calls = 0};
    assert_int_equal(pipe(f.pipe), 0);
    RtWatchdog *w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = 3, .size = 4, .timeout_ms = 250});
    rt_watchdog_add_abort(w, fake_abort, &f);
    double t0 = now_s();
    int s = rt_watchdog_arm(w, "fake all-reduce", -1, 0);
    assert_true(fake_wait(&f, 5.0));
    assert_true(now_s() - t0 >= 0.24);
    assert_string_equal(rt_watchdog_error(w), "rank 3: fake all-reduce did not finish within 0.25 s");
    rt_watchdog_disarm(w, s);
    rt_watchdog_free(w);
    /* the runtime giving up: named with the operation in flight */
    w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = 1, .size = 2});
    rt_watchdog_add_abort(w, fake_abort, &f);
    s = rt_watchdog_arm(w, "dispatch", 0, 0);
    assert_true(rt_watchdog_fail(w, "ncclSend to rank 0 failed: remote process exited"));
    assert_true(fake_wait(&f, 5.0));
    int who;
    assert_int_equal(rt_watchdog_cause(w, &who), RT_WD_ABORTED);
    assert_int_equal(who, 1);
    assert_string_equal(rt_watchdog_error(w), "rank 1: ncclSend to rank 0 failed: remote process exited, during dispatch with rank 0");
    assert_false(rt_watchdog_fail(w, "a second failure")); /* ignored */
    assert_non_null(strstr(rt_watchdog_error(w), "ncclSend"));
    assert_int_equal(f.calls, 2);
    rt_watchdog_disarm(w, s);
    rt_watchdog_free(w);
    close(f.pipe[0]), close(f.pipe[1]);
    /* bad options */
    assert_null(rt_watchdog_new(d, &(RtWatchdogOptions){.rank = 2, .size = 2}));
    arena_free(a);
}

static void test_timeout_parse(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    int ms = 0;
    assert_true(rt_timeout_parse(d, "--timeout", "30", &ms));
    assert_int_equal(ms, 30000);
    assert_true(rt_timeout_parse(d, "DSCC_TIMEOUT", "2.5", &ms));
    assert_int_equal(ms, 2500);
    assert_true(rt_timeout_parse(d, "--timeout", "0.0001", &ms));
    assert_int_equal(ms, 1);
    assert_false(rt_timeout_parse(d, "--timeout", "0", &ms));
    assert_false(rt_timeout_parse(d, "DSCC_TIMEOUT", "10s", &ms));
    assert_false(rt_timeout_parse(d, "--timeout", "", &ms));
    assert_false(rt_timeout_parse(d, "--timeout", "nan", &ms));
    assert_string_equal(diag_first(d)->next->msg, "DSCC_TIMEOUT expects a timeout in seconds (a positive number up to 2e6), got '10s'");
    arena_free(a);
}

/* ---- real ranks on loopback ---------------------------------------------- */

typedef struct {
    int cause, culprit, ok;
    double when; /* CLOCK_MONOTONIC seconds: shared by the processes of one machine */
    char msg[400];
} Report;

typedef enum {
    ROLE_WAIT,       /* arm a long collective and wait until aborted */
    ROLE_SHORT,      /* arm a short one that times out */
    ROLE_CLEAN,      /* leave at once, cleanly */
    ROLE_CLEAN_LATE, /* stay a while, check nothing failed, leave */
} Role;

typedef struct {
    pid_t pid;
    int ready, report; /* read ends: a byte once joined; the Report */
} Rank;

static void write_all(int fd, const void *p, size_t n) {
    if (write(fd, p, n) != (ssize_t)n) _exit(3);
}

/* Child: joins the world, plays `role`, writes a Report. */
static void rank_main(int r, int size, int port, Role role, int ready, int report) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    Report rep = {.culprit = -1};
    RtWatchdog *w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = r, .size = size, .heartbeat_ms = 50, .silence_ms = 500});
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, r, size, r, "127.0.0.1", port};
    uint8_t blob[64];
    for (int i = 0; i < 64; i++) blob[i] = r == 0 ? (uint8_t)(i * 7 + 3) : 0;
    if (!w || !rt_watchdog_join(w, d, &ri, blob, sizeof blob, 8000)) _exit(4);
    for (int i = 0; i < 64; i++)
        if (blob[i] != (uint8_t)(i * 7 + 3)) _exit(5);
    Fake f = {.calls = 0};
    if (pipe(f.pipe)) _exit(6);
    rt_watchdog_add_abort(w, fake_abort, &f);
    if (role == ROLE_WAIT || role == ROLE_SHORT) {
        int s = role == ROLE_SHORT ? rt_watchdog_arm(w, "fake recv", (r + 1) % size, 300) : rt_watchdog_arm(w, "fake all-reduce", -1, 20000);
        write_all(ready, "j", 1); /* joined, and in its operation */
        bool aborted = fake_wait(&f, 8.0);
        rep.when = now_s();
        rt_watchdog_disarm(w, s);
        rep.ok = !aborted;
    } else {
        write_all(ready, "j", 1);
        if (role == ROLE_CLEAN_LATE) fake_wait(&f, 0.6);
        rep.ok = rt_watchdog_ok(w);
    }
    rep.cause = rt_watchdog_cause(w, &rep.culprit);
    snprintf(rep.msg, sizeof rep.msg, "%s", rt_watchdog_error(w));
    rt_watchdog_free(w);
    write_all(report, &rep, sizeof rep);
    _exit(0);
}

static void spawn_world(Rank *ranks, int size, const Role *roles) {
    int port = tu_free_port();
    for (int r = 0; r < size; r++) {
        int ready[2], report[2];
        assert_int_equal(pipe(ready), 0);
        assert_int_equal(pipe(report), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int q = 0; q < r; q++) close(ranks[q].ready), close(ranks[q].report);
            close(ready[0]), close(report[0]);
            rank_main(r, size, port, roles[r], ready[1], report[1]);
        }
        close(ready[1]), close(report[1]);
        ranks[r] = (Rank){pid, ready[0], report[0]};
    }
    for (int r = 0; r < size; r++) { /* everyone joined */
        struct pollfd p = {ranks[r].ready, POLLIN, 0};
        char c;
        assert_int_equal(poll(&p, 1, 9000), 1);
        assert_int_equal(read(ranks[r].ready, &c, 1), 1);
    }
}

/* Reads rank r's report within limit_s; reaps it. */
static Report collect(Rank *rk, double limit_s) {
    Report rep;
    struct pollfd p = {rk->report, POLLIN, 0};
    assert_int_equal(poll(&p, 1, (int)(limit_s * 1e3)), 1);
    assert_int_equal(read(rk->report, &rep, sizeof rep), (ssize_t)sizeof rep);
    int st;
    assert_int_equal(waitpid(rk->pid, &st, 0), rk->pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(rk->ready), close(rk->report);
    return rep;
}

static void reap_killed(Rank *rk) {
    int st;
    kill(rk->pid, SIGKILL);
    assert_int_equal(waitpid(rk->pid, &st, 0), rk->pid);
    close(rk->ready), close(rk->report);
}

static void test_killed_rank(void **state) {
    (void)state;
    Rank ranks[3];
    Role roles[3] = {ROLE_WAIT, ROLE_WAIT, ROLE_WAIT};
    spawn_world(ranks, 3, roles);
    double t0 = now_s();
    kill(ranks[2].pid, SIGKILL);
    Report r0 = collect(&ranks[0], 9.0), r1 = collect(&ranks[1], 9.0);
    reap_killed(&ranks[2]);
    assert_false(r0.ok);
    assert_false(r1.ok);
    assert_true(r0.when - t0 < 1.5 && r1.when - t0 < 1.5); /* a closed connection is seen at once, not after the silence */
    assert_int_equal(r0.cause, RT_WD_PEER_DIED);
    assert_int_equal(r0.culprit, 2);
    assert_int_equal(r1.cause, RT_WD_PEER_DIED);
    assert_int_equal(r1.culprit, 2);
    assert_string_equal(r0.msg, "rank 0: rank 2 died (its connection closed), during fake all-reduce");
    assert_string_equal(r1.msg, "rank 1: rank 2 died (its connection closed) (reported by rank 0), during fake all-reduce");
}

static void test_killed_root(void **state) {
    (void)state;
    Rank ranks[3];
    Role roles[3] = {ROLE_WAIT, ROLE_WAIT, ROLE_WAIT};
    spawn_world(ranks, 3, roles);
    double t0 = now_s();
    kill(ranks[0].pid, SIGKILL);
    Report r1 = collect(&ranks[1], 9.0), r2 = collect(&ranks[2], 9.0);
    reap_killed(&ranks[0]);
    assert_true(r1.when - t0 < 1.5 && r2.when - t0 < 1.5);
    assert_int_equal(r1.culprit, 0);
    assert_int_equal(r2.culprit, 0);
    assert_string_equal(r2.msg, "rank 2: rank 0 died (its connection closed), during fake all-reduce");
}

static void test_stopped_rank(void **state) {
    (void)state;
    Rank ranks[3];
    Role roles[3] = {ROLE_WAIT, ROLE_WAIT, ROLE_WAIT};
    spawn_world(ranks, 3, roles);
    double t0 = now_s();
    kill(ranks[1].pid, SIGSTOP); /* alive, connection open, silent */
    Report r0 = collect(&ranks[0], 9.0), r2 = collect(&ranks[2], 9.0);
    reap_killed(&ranks[1]);
    double t_0 = r0.when - t0, t_2 = r2.when - t0;
    assert_true(t_0 >= 0.4 && t_0 < 2.5); /* silence_ms = 500 */
    assert_true(t_2 >= 0.4 && t_2 < 2.5);
    assert_int_equal(r0.cause, RT_WD_PEER_SILENT);
    assert_int_equal(r2.cause, RT_WD_PEER_SILENT);
    assert_int_equal(r2.culprit, 1);
    assert_string_equal(r0.msg, "rank 0: rank 1 sent no heartbeat for 0.5 s (stopped, hung, or its host is unreachable), during fake all-reduce");
    assert_string_equal(r2.msg, "rank 2: rank 1 sent no heartbeat for 0.5 s (stopped, hung, or its host is unreachable) (reported by rank 0), "
                                "during fake all-reduce");
}

static void test_remote_timeout(void **state) {
    (void)state;
    Rank ranks[3];
    Role roles[3] = {ROLE_WAIT, ROLE_SHORT, ROLE_WAIT}; /* rank 1 waits for rank 2, who never sends */
    double t0 = now_s();
    spawn_world(ranks, 3, roles);
    Report r[3];
    for (int i = 0; i < 3; i++) r[i] = collect(&ranks[i], 9.0);
    for (int i = 0; i < 3; i++) assert_true(r[i].when - t0 < 4.0);
    assert_int_equal(r[1].cause, RT_WD_TIMEOUT);
    assert_string_equal(r[1].msg, "rank 1: fake recv with rank 2 did not finish within 0.3 s");
    assert_int_equal(r[0].cause, RT_WD_PEER_FAILED);
    assert_int_equal(r[2].cause, RT_WD_PEER_FAILED);
    assert_int_equal(r[2].culprit, 1);
    assert_string_equal(r[0].msg, "rank 0: rank 1 failed: fake recv with rank 2 did not finish within 0.3 s, during fake all-reduce");
    assert_string_equal(r[2].msg, "rank 2: rank 1 failed: fake recv with rank 2 did not finish within 0.3 s, during fake all-reduce");
}

static void test_clean_exit(void **state) {
    (void)state;
    Rank ranks[4];
    Role roles[4] = {ROLE_CLEAN, ROLE_CLEAN_LATE, ROLE_CLEAN, ROLE_CLEAN_LATE}; /* rank 0 and 2 leave first */
    spawn_world(ranks, 4, roles);
    for (int i = 0; i < 4; i++) {
        Report r = collect(&ranks[i], 9.0);
        assert_true(r.ok);
        assert_int_equal(r.cause, RT_WD_OK);
        assert_string_equal(r.msg, "");
    }
}

static void test_join_mismatch(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtWatchdog *w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = 1, .size = 2});
    RtRankInfo ri = {RT_LAUNCH_TORCHRUN, 0, 2, 0, "127.0.0.1", tu_free_port()};
    uint8_t blob[8];
    assert_false(rt_watchdog_join(w, d, &ri, blob, sizeof blob, 100));
    assert_string_equal(diag_first(d)->msg, "watchdog: made for rank 1 of 2, joined as rank 0 of 2");
    /* a rank whose rank 0 never comes fails within its timeout */
    ri.rank = 1;
    double t0 = now_s();
    assert_false(rt_watchdog_join(w, d, &ri, blob, sizeof blob, 300));
    assert_true(now_s() - t0 < 2.0);
    assert_non_null(strstr(diag_first(d)->next->msg, "rank 1 could not reach rank 0"));
    rt_watchdog_free(w);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline),       cmocka_unit_test(test_default_timeout_and_fail),
        cmocka_unit_test(test_timeout_parse),  cmocka_unit_test(test_killed_rank),
        cmocka_unit_test(test_killed_root),    cmocka_unit_test(test_stopped_rank),
        cmocka_unit_test(test_remote_timeout), cmocka_unit_test(test_clean_exit),
        cmocka_unit_test(test_join_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
