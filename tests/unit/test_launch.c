/* test_launch.c — `--nproc` launching with real processes: the ranks are
 * this test program itself, rerun through /proc/self/exe in a helper mode
 * (`test_launch --rank-helper MODE`). Checked: each rank's torchrun-style
 * variables (and rt_rank_info reading them) with an outer launcher's taken
 * out and the rest passed through; output prefixed line by line with no
 * mixing of ranks even when lines are written in pieces; the first failure
 * (exit code, signal) stops the others and sets the exit code; SIGTERM is
 * followed by SIGKILL after the grace period; SIGINT to the launcher is
 * forwarded, a second one kills; the ranks die with the launcher; a command
 * that does not exist and a launch from inside a rank are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/launch.h"
#include "runtime/runtime.h"

extern char **environ;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the ranks: this program in helper mode --------------------------------- */

static const char *env_or_dash(const char *n) {
    const char *v = getenv(n);
    return v ? v : "-";
}

static void on_sigint(int sig) {
    (void)sig;
    static const char msg[] = "got SIGINT\n";
    if (write(1, msg, sizeof msg - 1)) {
    }
    _exit(5);
}

static int helper(const char *mode) {
    int r = atoi(env_or_dash("RANK"));
    if (strcmp(mode, "env") == 0) {
        printf("RANK=%s WORLD_SIZE=%s LOCAL_RANK=%s LOCAL_WORLD_SIZE=%s MASTER_ADDR=%s MASTER_PORT=%s\n", env_or_dash("RANK"),
               env_or_dash("WORLD_SIZE"), env_or_dash("LOCAL_RANK"), env_or_dash("LOCAL_WORLD_SIZE"), env_or_dash("MASTER_ADDR"),
               env_or_dash("MASTER_PORT"));
        printf("OMPI=%s SLURM=%s SLURM_NTASKS=%s MCA=%s NCCL_DEBUG=%s DSCC_MASTER_PORT=%s\n", env_or_dash("OMPI_COMM_WORLD_RANK"),
               env_or_dash("SLURM_PROCID"), env_or_dash("SLURM_NTASKS"), env_or_dash("OMPI_MCA_btl"), env_or_dash("NCCL_DEBUG"),
               env_or_dash("DSCC_MASTER_PORT"));
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, stdout);
        RtRankInfo ri;
        if (rt_rank_info(a, d, NULL, &ri))
            printf("%s %d %d %d %s:%d\n", rt_launcher_name(ri.launcher), ri.rank, ri.size, ri.local_rank, ri.master_addr, ri.master_port);
        arena_free(a);
        fprintf(stderr, "to stderr %d\n", r);
        printf("no newline %d", r);
        return 0;
    }
    if (strcmp(mode, "lines") == 0) { /* each line in three writes, with pauses between: only whole-line relaying keeps them apart */
        char line[600];
        for (int i = 0; i < 300; i++) {
            int h = snprintf(line, sizeof line, "%d:%d:", r, i);
            memset(line + h, 'a' + r, 500);
            line[h + 500] = '\n';
            int n = h + 501, cut1 = n / 3, cut2 = 2 * n / 3;
            if (write(1, line, (size_t)cut1) < 0) return 1;
            sleep_s(20e-6);
            if (write(1, line + cut1, (size_t)(cut2 - cut1)) < 0) return 1;
            sleep_s(20e-6);
            if (write(1, line + cut2, (size_t)(n - cut2)) < 0) return 1;
        }
        return 0;
    }
    if (strcmp(mode, "fail") == 0) { /* rank 1 fails with code 3, the others would run for long */
        sleep_s(r == 1 ? 0.2 : 20);
        return r == 1 ? 3 : 0;
    }
    if (strcmp(mode, "signal") == 0) {
        sleep_s(r == 0 ? 0.2 : 20);
        kill(getpid(), SIGKILL);
    }
    if (strcmp(mode, "stubborn") == 0) { /* rank 0 ignores SIGTERM; rank 1 fails */
        if (r == 0) signal(SIGTERM, SIG_IGN);
        sleep_s(r == 1 ? 0.2 : 20);
        return r == 1 ? 2 : 0;
    }
    if (strcmp(mode, "interrupt") == 0 || strcmp(mode, "deaf") == 0) {
        if (mode[0] == 'i') signal(SIGINT, on_sigint);
        else signal(SIGINT, SIG_IGN), signal(SIGTERM, SIG_IGN);
        printf("ready %d\n", (int)getpid());
        fflush(stdout);
        sleep_s(20);
        return 0;
    }
    if (strcmp(mode, "ok") == 0) {
        printf("hello from %d of %s\n", r, env_or_dash("WORLD_SIZE"));
        return 0;
    }
    return 99;
}

/* ---- the launcher side --------------------------------------------------------- */

typedef struct {
    Arena *a;
    DiagEngine *d;
    FILE *out, *err;
    RtLaunchResult res;
    bool ok;
    double secs;
    char *out_text, *err_text; /* each starts with '\n' so lines can be searched as "\nLINE\n" */
} Run;

static char *slurp(Arena *a, FILE *f) {
    fflush(f);
    long n = ftell(f);
    char *s = arena_alloc(a, (size_t)n + 2);
    s[0] = '\n';
    rewind(f);
    assert_int_equal(fread(s + 1, 1, (size_t)n, f), (size_t)n);
    s[n + 1] = 0;
    return s;
}

static Run launch(const char *mode, int nproc, int grace_ms, const char *const *env) {
    Run r = {.a = arena_new()};
    r.d = diag_new(r.a, NULL);
    r.out = tmpfile();
    r.err = tmpfile();
    char *argv[] = {"test_launch", "--rank-helper", (char *)mode, NULL};
    RtLaunchOptions o = {.nproc = nproc, .exe = "/proc/self/exe", .argv = argv, .env = env, .grace_ms = grace_ms,
                         .out_fd = fileno(r.out), .err_fd = fileno(r.err)};
    double t0 = now_s();
    r.ok = rt_launch(r.d, &o, &r.res);
    r.secs = now_s() - t0;
    r.out_text = slurp(r.a, r.out);
    r.err_text = slurp(r.a, r.err);
    fclose(r.out);
    fclose(r.err);
    return r;
}

static bool has_line(const char *text, const char *line) {
    char buf[512];
    snprintf(buf, sizeof buf, "\n%s\n", line);
    return strstr(text, buf) != NULL;
}

static void test_env_and_output(void **state) {
    (void)state;
    int n = 0;
    while (environ[n]) n++;
    const char **env = calloc((size_t)n + 16, sizeof *env);
    int k = 0;
    for (int i = 0; i < n; i++) env[k++] = environ[i];
    const char *outer[] = {"OMPI_COMM_WORLD_RANK=5", "OMPI_COMM_WORLD_SIZE=8", "OMPI_COMM_WORLD_LOCAL_RANK=1", "SLURM_PROCID=3",
                           "SLURM_NTASKS=4", "SLURM_LOCALID=0", "OMPI_MCA_btl=self", "NCCL_DEBUG=INFO", "DSCC_MASTER_PORT=1234",
                           "RANK=9", "WORLD_SIZE=12", NULL};
    for (int i = 0; outer[i]; i++) env[k++] = outer[i];
    Run r = launch("env", 3, 0, env);
    assert_true(r.ok);
    assert_int_equal(r.res.exit_code, 0);
    assert_int_equal(r.res.failed_rank, -1);
    assert_int_equal(diag_error_count(r.d), 0);
    assert_true(r.res.master_port > 0);
    char line[300];
    for (int q = 0; q < 3; q++) {
        snprintf(line, sizeof line, "[rank %d] RANK=%d WORLD_SIZE=3 LOCAL_RANK=%d LOCAL_WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=%d", q, q,
                 q, r.res.master_port);
        assert_true(has_line(r.out_text, line));
        snprintf(line, sizeof line, "[rank %d] OMPI=- SLURM=- SLURM_NTASKS=- MCA=self NCCL_DEBUG=INFO DSCC_MASTER_PORT=-", q);
        assert_true(has_line(r.out_text, line));
        snprintf(line, sizeof line, "[rank %d] torchrun %d 3 %d 127.0.0.1:%d", q, q, q, r.res.master_port);
        assert_true(has_line(r.out_text, line));
        snprintf(line, sizeof line, "[rank %d] no newline %d", q, q); /* the last line, completed */
        assert_true(has_line(r.out_text, line));
        snprintf(line, sizeof line, "[rank %d] to stderr %d", q, q); /* stderr to stderr */
        assert_true(has_line(r.err_text, line));
        assert_false(has_line(r.out_text, line));
    }
    free(env);
    arena_free(r.a);
}

static void test_lines_never_mix(void **state) {
    (void)state;
    Run r = launch("lines", 4, 0, NULL);
    assert_true(r.ok);
    int next[4] = {0}, total = 0;
    for (char *p = r.out_text + 1; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = 0;
        int rank, r2, i, used = 0;
        assert_int_equal(sscanf(p, "[rank %d] %d:%d:%n", &rank, &r2, &i, &used), 3);
        assert_true(rank >= 0 && rank < 4);
        assert_int_equal(r2, rank);
        assert_int_equal(i, next[rank]++);
        assert_int_equal(strlen(p + used), 500);
        for (int c = 0; c < 500; c++) assert_int_equal(p[used + c], 'a' + rank);
        total++;
        p = nl + 1;
    }
    assert_int_equal(total, 4 * 300);
    arena_free(r.a);
}

static void test_first_failure_stops_the_rest(void **state) {
    (void)state;
    Run r = launch("fail", 3, 0, NULL);
    assert_false(r.ok);
    assert_true(r.secs >= 0.15 && r.secs < 5.0); /* not the 20 s the others would run */
    assert_int_equal(r.res.exit_code, 3);
    assert_int_equal(r.res.failed_rank, 1);
    assert_true(WIFEXITED(r.res.failed_status) && WEXITSTATUS(r.res.failed_status) == 3);
    assert_string_equal(diag_first(r.d)->msg, "rank 1 exited with code 3; the other ranks were stopped");
    assert_int_equal(diag_error_count(r.d), 1);
    arena_free(r.a);

    r = launch("signal", 2, 0, NULL);
    assert_int_equal(r.res.exit_code, 128 + SIGKILL);
    assert_int_equal(r.res.failed_rank, 0);
    assert_string_equal(diag_first(r.d)->msg, "rank 0 was killed by signal 9 (Killed); the other ranks were stopped");
    assert_true(r.secs < 5.0);
    arena_free(r.a);
}

static void test_sigkill_after_grace(void **state) {
    (void)state;
    Run r = launch("stubborn", 2, 400, NULL);
    assert_int_equal(r.res.exit_code, 2);
    assert_int_equal(r.res.failed_rank, 1);
    assert_true(r.secs >= 0.55 && r.secs < 5.0); /* 0.2 s, then the 0.4 s grace, then SIGKILL */
    assert_string_equal(diag_first(r.d)->msg, "rank 1 exited with code 2; the other ranks were stopped");
    assert_string_equal(diag_first(r.d)->next->msg, "rank 0 did not stop and was killed with SIGKILL");
    arena_free(r.a);
}

/* Runs a launcher in a child with its output on a pipe; returns its pid. */
static pid_t launcher_child(const char *mode, int nproc, int grace_ms, int *out_r, int *err_r) {
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(out[0]), close(err[0]);
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, fdopen(err[1], "w"));
        char *argv[] = {"test_launch", "--rank-helper", (char *)mode, NULL};
        RtLaunchOptions o = {.nproc = nproc, .exe = "/proc/self/exe", .argv = argv, .grace_ms = grace_ms, .out_fd = out[1], .err_fd = out[1]};
        RtLaunchResult res;
        rt_launch(d, &o, &res);
        fflush(NULL);
        _exit(res.exit_code);
    }
    close(out[1]), close(err[1]);
    *out_r = out[0];
    *err_r = err[0];
    return pid;
}

/* Appends what fd has to buf until `want` occurrences of `needle` are in it, or EOF, or limit_s. */
static size_t read_until(int fd, char *buf, size_t len, size_t cap, const char *needle, int want, double limit_s) {
    double end = now_s() + limit_s;
    for (;;) {
        buf[len] = 0;
        int seen = 0;
        for (const char *p = buf; needle && (p = strstr(p, needle)); p++) seen++;
        if (needle && seen >= want) return len;
        int left = (int)((end - now_s()) * 1e3);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) != 1) return len;
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got <= 0) return len;
        len += (size_t)got;
    }
}

static void test_sigint_forwarded(void **state) {
    (void)state;
    int out, err;
    /* a grace of 20 s: a launcher that did not forward the signal would wait it out before its kill, so an exit
     * within 10 s tells forwarding from the grace, and leaves room for TSan on 2 busy cores (3 s did not, once) */
    pid_t pid = launcher_child("interrupt", 2, 20000, &out, &err);
    char buf[4096], ebuf[1024];
    size_t n = read_until(out, buf, 0, sizeof buf, "ready", 2, 8.0);
    assert_non_null(strstr(buf, "[rank 0] ready"));
    assert_non_null(strstr(buf, "[rank 1] ready"));
    double t0 = now_s();
    kill(pid, SIGINT); /* to the launcher only: the ranks lead groups of their own */
    n = read_until(out, buf, n, sizeof buf, NULL, 0, 8.0);
    size_t en = read_until(err, ebuf, 0, sizeof ebuf, NULL, 0, 8.0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(now_s() - t0 < 10.0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 128 + SIGINT);
    assert_non_null(strstr(buf, "[rank 0] got SIGINT\n"));
    assert_non_null(strstr(buf, "[rank 1] got SIGINT\n"));
    assert_true(en > 0);
    assert_non_null(strstr(ebuf, "interrupted by signal 2 (Interrupt): forwarded to the ranks"));
    close(out), close(err);
}

static void test_second_signal_kills(void **state) {
    (void)state;
    int out, err;
    pid_t pid = launcher_child("deaf", 2, 20000, &out, &err);
    char buf[4096], ebuf[1024];
    read_until(out, buf, 0, sizeof buf, "ready", 2, 8.0);
    double t0 = now_s();
    kill(pid, SIGTERM); /* ignored by the ranks; the grace period is 20 s */
    sleep_s(0.2);
    kill(pid, SIGTERM);
    read_until(err, ebuf, 0, sizeof ebuf, NULL, 0, 8.0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(now_s() - t0 < 3.0);
    assert_int_equal(WEXITSTATUS(st), 128 + SIGTERM);
    assert_non_null(strstr(ebuf, "interrupted by signal 15 (Terminated)"));
    assert_non_null(strstr(ebuf, "rank 1 did not stop and was killed with SIGKILL"));
    close(out), close(err);
}

/* Gone or a zombie (reparented ranks may wait for a reaper). */
static bool process_gone(pid_t pid) {
    char path[64], stat[256] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return true;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    const char *rp = strrchr(stat, ')');
    return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

static void test_ranks_die_with_launcher(void **state) {
    (void)state;
    int out, err, st;
    pid_t pid = launcher_child("interrupt", 2, 5000, &out, &err);
    char buf[4096];
    read_until(out, buf, 0, sizeof buf, "ready", 2, 8.0);
    const char *s0 = strstr(buf, "[rank 0] ready "), *s1 = strstr(buf, "[rank 1] ready ");
    assert_non_null(s0);
    assert_non_null(s1);
    pid_t p0 = atoi(s0 + 15), p1 = atoi(s1 + 15);
    assert_true(p0 > 0 && p1 > 0);
    assert_false(process_gone(p0));
    kill(pid, SIGKILL); /* no chance to forward anything: PR_SET_PDEATHSIG's SIGTERM does it */
    waitpid(pid, &st, 0);
    double t0 = now_s();
    while ((!process_gone(p0) || !process_gone(p1)) && now_s() - t0 < 5.0) sleep_s(0.02);
    assert_true(process_gone(p0));
    assert_true(process_gone(p1));
    close(out), close(err);
}

static void test_refusals(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    char *argv[] = {"nothing", NULL};
    RtLaunchResult res;
    RtLaunchOptions o = {.nproc = 2, .exe = "/nonexistent/dscc-nothing", .argv = argv};
    assert_false(rt_launch(d, &o, &res));
    assert_int_equal(res.exit_code, 127);
    assert_string_equal(diag_first(d)->msg, "launch: cannot run '/nonexistent/dscc-nothing' for rank 0: No such file or directory");
    o.exe = "dscc-no-such-program-in-path";
    assert_false(rt_launch(d, &o, &res));
    assert_string_equal(diag_first(d)->next->msg, "launch: cannot run 'dscc-no-such-program-in-path': not found in PATH");
    const char *inside[] = {"PATH=/usr/bin:/bin", "DSCC_LAUNCHED=4242", NULL};
    o = (RtLaunchOptions){.nproc = 2, .exe = "/bin/true", .argv = argv, .env = inside};
    assert_false(rt_launch(d, &o, &res));
    assert_non_null(strstr(diag_first(d)->next->next->msg, "already a rank started by a launcher"));
    o = (RtLaunchOptions){.nproc = 0, .argv = argv};
    assert_false(rt_launch(d, &o, &res));
    /* a PATH search that works, and an exit code of 0 from everyone */
    char *truth[] = {"true", NULL};
    o = (RtLaunchOptions){.nproc = 3, .argv = truth};
    assert_true(rt_launch(d, &o, &res));
    assert_int_equal(res.exit_code, 0);
    arena_free(a);
}

static void test_strip_option(void **state) {
    (void)state;
    Arena *a = arena_new();
    char *argv[] = {"dscc", "run", "--nproc", "4", "m.dsl", "--nproc=2", "--nprocs", "--tokens", "t.npy", "--", "--nproc", "1"};
    int n = 0;
    char **out = rt_launch_strip_option(a, 12, argv, "--nproc", true, &n);
    const char *want[] = {"dscc", "run", "m.dsl", "--nprocs", "--tokens", "t.npy", "--", "--nproc", "1"};
    assert_int_equal(n, 9);
    for (int i = 0; i < n; i++) assert_string_equal(out[i], want[i]);
    assert_null(out[n]);
    arena_free(a);
}

static void test_ok_ranks(void **state) {
    (void)state;
    Run r = launch("ok", 5, 0, NULL);
    assert_true(r.ok);
    for (int q = 0; q < 5; q++) {
        char line[64];
        snprintf(line, sizeof line, "[rank %d] hello from %d of 5", q, q);
        assert_true(has_line(r.out_text, line));
    }
    assert_string_equal(r.err_text, "\n");
    arena_free(r.a);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--rank-helper") == 0) return helper(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_and_output),      cmocka_unit_test(test_lines_never_mix),
        cmocka_unit_test(test_first_failure_stops_the_rest), cmocka_unit_test(test_sigkill_after_grace),
        cmocka_unit_test(test_sigint_forwarded),    cmocka_unit_test(test_second_signal_kills),
        cmocka_unit_test(test_ranks_die_with_launcher), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_strip_option),        cmocka_unit_test(test_ok_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
