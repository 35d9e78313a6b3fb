/* launch.c — spawning and supervising local ranks (see launch.h).
 *
 * One loop does everything: poll() on every rank's two output pipes and on
 * the self-pipe that the SIGCHLD/SIGINT/SIGTERM/SIGHUP handlers write the
 * signal number to; it reaps, relays lines, and escalates. Its timeout is
 * infinite while all is well and the next escalation (SIGKILL at the end of
 * the grace period, the end of draining the pipes) once something went
 * wrong. The handlers are the launcher's for the duration of rt_launch
 * only; the previous ones come back afterwards. One rt_launch at a time
 * per process (the handlers share one self-pipe). */
#include "runtime/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LINE_CAP (64 * 1024) /* a longer line is cut in pieces of this size: memory stays bounded */
#define DRAIN_MS 2000        /* after the last rank exits, how long its pipes may stay open (a straggling child) */
#define MARK_VAR "DSCC_LAUNCHED" /* set in every rank: a rank never launches again */

typedef struct {
    int fd;      /* read end; -1 once at end of stream */
    int to;      /* where its lines go */
    char *buf;   /* the partial line so far */
    size_t len;
} Stream;

typedef struct {
    pid_t pid;
    bool reaped, killed; /* killed: sent SIGKILL while alive */
    int status;
    Stream s[2]; /* stdout, stderr */
} Rank;

typedef struct {
    DiagEngine *d;
    Rank *rk;
    int n, grace_ms;
    int first_fail, interrupted, live;
    bool stopping, escalated;
    double stop_at; /* SIGKILL time, once stopping */
} Sup;

static int sig_pipe_w = -1; /* the handlers' end of the self-pipe */

static void on_signal(int sig) {
    int e = errno;
    unsigned char c = (unsigned char)sig;
    if (write(sig_pipe_w, &c, 1) < 0) { /* full: a wake-up is pending anyway */
    }
    errno = e;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- what the ranks get ------------------------------------------------------ */

/* Whether NAME=VALUE is one of the variables the launcher sets or an outer launcher's rank identity. */
static bool replaced_var(const char *kv) {
    static const char *names[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                                  "DSCC_MASTER_ADDR", "DSCC_MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NPROCS",
                                  "SLURM_LOCALID", MARK_VAR};
    const char *eq = strchr(kv, '=');
    size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
    if (strncmp(kv, "OMPI_COMM_WORLD_", 16) == 0) return true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && strncmp(kv, names[i], n) == 0) return true;
    return false;
}

static char **rank_env(Arena *a, const char *const *base, int r, int n, const char *addr, int port) {
    int count = 0;
    while (base[count]) count++;
    char **env = arena_alloc(a, sizeof *env * (size_t)(count + 8));
    int k = 0;
    for (int i = 0; i < count; i++)
        if (!replaced_var(base[i])) env[k++] = (char *)base[i];
    env[k++] = arena_printf(a, "RANK=%d", r);
    env[k++] = arena_printf(a, "WORLD_SIZE=%d", n);
    env[k++] = arena_printf(a, "LOCAL_RANK=%d", r);
    env[k++] = arena_printf(a, "LOCAL_WORLD_SIZE=%d", n);
    env[k++] = arena_printf(a, "MASTER_ADDR=%s", addr);
    env[k++] = arena_printf(a, "MASTER_PORT=%d", port);
    env[k++] = arena_printf(a, MARK_VAR "=%d", (int)getpid());
    env[k] = NULL;
    return env;
}

/* The file exe names: itself with a '/', else the first match in PATH. */
static const char *resolve_exe(Arena *a, const char *exe) {
    if (strchr(exe, '/')) return exe;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *cand = arena_printf(a, "%.*s/%s", (int)len, len ? p : ".", exe);
        if (access(cand, X_OK) == 0) return cand;
        p += len + (e ? 1 : 0);
    }
    return NULL;
}

/* Whether port can be bound now (nothing listens on it or holds it). */
static bool port_free(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY), .sin_port = htons((uint16_t)port)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* A TCP port for the rendezvous that nothing holds right now, below the
 * kernel's ephemeral range (ip_local_port_range: 32768 on Linux unless
 * configured): a port the kernel hands out to outgoing connections could
 * be taken by one between this check and rank 0's bind (another program's
 * connection, or another world's ranks), which once failed a run with
 * "Address already in use". Tries from a random start; 0 if none is free. */
static int free_port(void) {
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        int a = 0, b = 0;
        if (fscanf(f, "%d %d", &a, &b) == 2 && a > 2048 && a <= 65535) lo = a;
        fclose(f);
    }
    const int base = 1024 + (lo > 12000 ? lo - 11000 : 1024); /* [base, lo): ~10,000 ports, 22792-32767 by default */
    const int span = lo - base;
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL) * 2654435761u;
    for (int i = 0, start = (int)(seed % (unsigned)(span > 0 ? span : 1)); span > 0 && i < 64; i++) {
        int port = base + (start + i * 157) % span;
        if (port_free(port)) return port;
    }
    /* no port below the ephemeral range is free: one the kernel picks */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof sa;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* ---- starting a rank ----------------------------------------------------------- */

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(const char *path, char *const *argv, char **envp, int devnull, int out, int err, int ex, pid_t parent) {
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the launcher dies: so do the ranks */
    if (getppid() != parent) _exit(127);  /* it died before the line above */
    if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
    execve(path, argv, envp);
    int e = errno;
    if (write(ex, &e, sizeof e) < 0) { /* the parent sees end of stream instead: still a failure to start */
    }
    _exit(127);
}

/* Forks and execs rank r; false after reporting a failure to start it. */
static bool spawn(Sup *s, int r, const char *path, char *const *argv, char **envp, int devnull, int out_fd, int err_fd) {
    Rank *rk = &s->rk[r];
    int out[2], err[2], ex[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(ex, O_CLOEXEC)) {
        diag_error(s->d, ((SrcLoc){0}), "launch: cannot make the pipes of rank %d: %s", r, strerror(errno));
        return false;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) child_exec(path, argv, envp, devnull, out[1], err[1], ex[1], parent);
    close(out[1]);
    close(err[1]);
    close(ex[1]);
    int e = 0;
    ssize_t got = 0;
    if (pid > 0) {
        setpgid(pid, pid); /* also here, so signalling the group cannot race the child's own setpgid */
        do got = read(ex[0], &e, sizeof e);
        while (got < 0 && errno == EINTR);
    } else {
        e = errno;
    }
    close(ex[0]);
    if (pid > 0) {
        rk->pid = pid;
        s->live++;
    }
    rk->s[0] = (Stream){.fd = out[0], .to = out_fd};
    rk->s[1] = (Stream){.fd = err[0], .to = err_fd};
    if (pid > 0 && got == 0) return true; /* exec closed the pipe: it runs */
    diag_error(s->d, ((SrcLoc){0}), "launch: cannot run '%s' for rank %d: %s", path, r, strerror(pid < 0 || got == sizeof e ? e : EIO));
    return false;
}

/* ---- relaying output ------------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* the reader went away (EPIPE): the ranks still run to the end */
        p += w;
        n -= (size_t)w;
    }
}

/* One write per line: "[rank R] " + text + "\n". */
static void emit(int fd, int r, const char *text, size_t n) {
    char head[32];
    int h = snprintf(head, sizeof head, "[rank %d] ", r);
    char *line = malloc((size_t)h + n + 1);
    memcpy(line, head, (size_t)h);
    memcpy(line + h, text, n);
    line[(size_t)h + n] = '\n';
    write_all(fd, line, (size_t)h + n + 1);
    free(line);
}

static void stream_feed(Stream *st, int r, const char *data, size_t n) {
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (st->len + take > LINE_CAP) take = LINE_CAP - st->len, nl = NULL;
        if (nl && st->len == 0) {
            emit(st->to, r, data, take); /* a whole line: no copy */
        } else {
            if (!st->buf) st->buf = malloc(LINE_CAP);
            memcpy(st->buf + st->len, data, take);
            st->len += take;
            if (nl || st->len == LINE_CAP) {
                emit(st->to, r, st->buf, st->len);
                st->len = 0;
            }
        }
        size_t used = take + (nl ? 1 : 0);
        data += used;
        n -= used;
    }
}

static void stream_close(Stream *st, int r) {
    if (st->len) emit(st->to, r, st->buf, st->len); /* a last line without its newline */
    st->len = 0;
    free(st->buf);
    st->buf = NULL;
    if (st->fd >= 0) close(st->fd);
    st->fd = -1;
}

static void stream_read(Stream *st, int r) {
    char buf[16384];
    ssize_t got = read(st->fd, buf, sizeof buf);
    if (got > 0) stream_feed(st, r, buf, (size_t)got);
    else if (got == 0 || (errno != EINTR && errno != EAGAIN)) stream_close(st, r);
}

/* ---- supervising ------------------------------------------------------------------ */

/* Sends sig to every live rank's process group. */
static void signal_all(Sup *s, int sig) {
    for (int r = 0; r < s->n; r++) {
        Rank *rk = &s->rk[r];
        if (!rk->pid || rk->reaped) continue;
        if (kill(-rk->pid, sig) != 0) kill(rk->pid, sig);
        if (sig == SIGKILL) rk->killed = true;
    }
}

static void begin_stop(Sup *s, int sig) {
    if (s->stopping) return;
    s->stopping = true;
    s->stop_at = now_ms() + s->grace_ms;
    signal_all(s, sig);
}

static void reap(Sup *s) {
    for (int r = 0; r < s->n; r++) {
        Rank *rk = &s->rk[r];
        int st;
        if (!rk->pid || rk->reaped || waitpid(rk->pid, &st, WNOHANG) != rk->pid) continue;
        rk->reaped = true;
        rk->status = st;
        s->live--;
        bool failed = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        if (failed && s->first_fail < 0 && !s->stopping) {
            s->first_fail = r;
            begin_stop(s, SIGTERM);
        }
    }
}

static void on_launcher_signal(Sup *s, int sig) {
    if (sig == SIGCHLD) {
        reap(s);
        return;
    }
    if (s->interrupted || s->stopping) { /* a second one: no more grace */
        if (!s->interrupted) s->interrupted = sig;
        signal_all(s, SIGKILL);
        s->escalated = true;
        return;
    }
    s->interrupted = sig;
    begin_stop(s, sig); /* forwarded as it came */
}

static void supervise(Sup *s, int sig_r) {
    struct pollfd *pf = calloc((size_t)s->n * 2 + 1, sizeof *pf);
    double drain_until = 0;
    for (;;) {
        reap(s);
        int open = 0;
        for (int r = 0; r < s->n; r++) open += (s->rk[r].s[0].fd >= 0) + (s->rk[r].s[1].fd >= 0);
        double now = now_ms();
        if (s->live == 0 && !drain_until) drain_until = now + DRAIN_MS;
        if (s->live == 0 && (open == 0 || now >= drain_until)) break;
        if (s->stopping && !s->escalated && now >= s->stop_at) {
            signal_all(s, SIGKILL); /* the grace period is over */
            s->escalated = true;
        }
        double until = s->live == 0 ? drain_until : s->stopping && !s->escalated ? s->stop_at : -1;
        int k = 0;
        pf[k++] = (struct pollfd){sig_r, POLLIN, 0};
        for (int r = 0; r < s->n; r++)
            for (int j = 0; j < 2; j++)
                if (s->rk[r].s[j].fd >= 0) pf[k++] = (struct pollfd){s->rk[r].s[j].fd, POLLIN, 0};
        int timeout = until < 0 ? -1 : until - now < 0 ? 0 : (int)(until - now) + 1;
        if (poll(pf, (nfds_t)k, timeout) <= 0) continue;
        if (pf[0].revents) {
            unsigned char sigs[64];
            ssize_t got = read(sig_r, sigs, sizeof sigs);
            for (ssize_t i = 0; i < got; i++) on_launcher_signal(s, sigs[i]);
        }
        for (int i = 1; i < k; i++) {
            if (!pf[i].revents) continue;
            for (int r = 0; r < s->n; r++)
                for (int j = 0; j < 2; j++)
                    if (s->rk[r].s[j].fd == pf[i].fd) stream_read(&s->rk[r].s[j], r);
        }
    }
    for (int r = 0; r < s->n; r++) { /* stragglers that held a pipe past the drain: their groups go */
        Rank *rk = &s->rk[r];
        if (rk->pid && (rk->s[0].fd >= 0 || rk->s[1].fd >= 0)) kill(-rk->pid, SIGKILL);
        stream_close(&rk->s[0], r);
        stream_close(&rk->s[1], r);
    }
    free(pf);
}

/* The error and exit code once every rank is gone. */
static void conclude(Sup *s, RtLaunchResult *res) {
    res->interrupted_by = s->interrupted;
    res->exit_code = 0;
    if (s->first_fail >= 0) {
        Rank *rk = &s->rk[s->first_fail];
        int st = rk->status;
        res->failed_rank = s->first_fail;
        res->failed_status = st;
        const char *rest = s->n > 1 ? "; the other ranks were stopped" : "";
        if (WIFEXITED(st)) {
            res->exit_code = WEXITSTATUS(st);
            diag_error(s->d, ((SrcLoc){0}), "rank %d exited with code %d%s", s->first_fail, res->exit_code, rest);
        } else {
            res->exit_code = 128 + WTERMSIG(st);
            diag_error(s->d, ((SrcLoc){0}), "rank %d was killed by signal %d (%s%s)%s", s->first_fail, WTERMSIG(st), strsignal(WTERMSIG(st)),
                       WCOREDUMP(st) ? ", core dumped" : "", rest);
        }
    } else if (s->interrupted) {
        res->exit_code = 128 + s->interrupted;
        diag_error(s->d, ((SrcLoc){0}), "interrupted by signal %d (%s): forwarded to the ranks", s->interrupted, strsignal(s->interrupted));
    }
    for (int r = 0; r < s->n; r++)
        if (s->rk[r].killed && s->rk[r].reaped && WIFSIGNALED(s->rk[r].status) && WTERMSIG(s->rk[r].status) == SIGKILL)
            diag_note(s->d, ((SrcLoc){0}), "rank %d did not stop and was killed with SIGKILL", r);
}

/* ---- the entry point -------------------------------------------------------------- */

static const int handled[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE};
#define NHANDLED (int)(sizeof handled / sizeof handled[0])

bool rt_launch(DiagEngine *d, const RtLaunchOptions *o, RtLaunchResult *res) {
    memset(res, 0, sizeof *res);
    res->failed_rank = -1;
    res->exit_code = 127;
    const char *const *base = o->env ? o->env : (const char *const *)environ;
    for (int i = 0; base[i]; i++)
        if (strncmp(base[i], MARK_VAR "=", sizeof MARK_VAR) == 0) {
            diag_error(d, ((SrcLoc){0}), "launch: this process is already a rank started by a launcher (%s is set): it does not launch "
                       "ranks of its own", MARK_VAR);
            return false;
        }
    if (o->nproc < 1 || o->nproc > 4096 || !o->argv || !o->argv[0]) {
        diag_error(d, ((SrcLoc){0}), "launch: needs 1 to 4096 processes and a command (got %d%s)", o->nproc, o->argv && o->argv[0] ? "" : ", no command");
        return false;
    }
    Arena *a = arena_new();
    const char *path = resolve_exe(a, o->exe ? o->exe : o->argv[0]);
    int port = o->master_port ? o->master_port : free_port();
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), sp[2] = {-1, -1};
    if (!path || !port || devnull < 0 || pipe2(sp, O_NONBLOCK | O_CLOEXEC) != 0) {
        if (!path) diag_error(d, ((SrcLoc){0}), "launch: cannot run '%s': not found in PATH", o->exe ? o->exe : o->argv[0]);
        else diag_error(d, ((SrcLoc){0}), "launch: cannot set up (%s)", !port ? "no free TCP port" : strerror(errno));
        if (devnull >= 0) close(devnull);
        arena_free(a);
        return false;
    }
    res->master_port = port;
    sig_pipe_w = sp[1];
    struct sigaction act = {.sa_handler = on_signal, .sa_flags = SA_RESTART | SA_NOCLDSTOP}, old[NHANDLED];
    sigemptyset(&act.sa_mask);
    for (int i = 0; i < NHANDLED; i++) sigaction(handled[i], handled[i] == SIGPIPE ? &(struct sigaction){.sa_handler = SIG_IGN} : &act, &old[i]);

    Sup s = {.d = d, .n = o->nproc, .grace_ms = o->grace_ms > 0 ? o->grace_ms : 5000, .first_fail = -1};
    s.rk = calloc((size_t)s.n, sizeof *s.rk);
    for (int r = 0; r < s.n; r++) s.rk[r].s[0].fd = s.rk[r].s[1].fd = -1;
    int out_fd = o->out_fd > 0 ? o->out_fd : 1, err_fd = o->err_fd > 0 ? o->err_fd : 2;
    bool started = true;
    for (int r = 0; r < s.n && started; r++)
        started = spawn(&s, r, path, o->argv, rank_env(a, base, r, s.n, o->master_addr ? o->master_addr : "127.0.0.1", port),
                        r == 0 && o->stdin_rank0 ? 0 : devnull,
                        out_fd, err_fd);
    if (!started) begin_stop(&s, SIGTERM);
    supervise(&s, sp[0]);
    if (started) conclude(&s, res);
    bool ok = started && res->exit_code == 0;

    for (int i = 0; i < NHANDLED; i++) sigaction(handled[i], &old[i], NULL);
    sig_pipe_w = -1;
    close(sp[0]);
    close(sp[1]);
    close(devnull);
    free(s.rk);
    arena_free(a);
    return ok;
}

char **rt_launch_strip_option(Arena *a, int argc, char *const *argv, const char *opt, bool has_value, int *argc_out) {
    char **out = arena_alloc(a, sizeof *out * (size_t)(argc + 1));
    size_t ol = strlen(opt);
    int n = 0;
    bool rest = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!rest && strcmp(s, opt) == 0) {
            if (has_value && i + 1 < argc) i++;
            continue;
        }
        if (!rest && has_value && strncmp(s, opt, ol) == 0 && s[ol] == '=') continue;
        if (strcmp(s, "--") == 0) rest = true;
        out[n++] = (char *)s;
    }
    out[n] = NULL;
    if (argc_out) *argc_out = n;
    return out;
}
