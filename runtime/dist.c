/* dist.c — rank discovery and the TCP rendezvous.
 *
 * The launchers users know set different variables for the same three
 * numbers; this reads whichever is present. The rendezvous is the one
 * piece of networking dscc does itself: rank 0 accepts one connection per
 * other rank, each sends a small hello (magic, rank, world size), and rank
 * 0 answers with the blob. Every socket call is bounded by one deadline, so
 * a rank that never starts makes the others fail with a clear error instead
 * of hanging. */
#include "runtime/dist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELLO_MAGIC 0x64736363u /* "dscc" */

const char *rt_launcher_name(RtLauncher l) {
    static const char *n[] = {"single process", "Open MPI", "Slurm", "torchrun"};
    return n[l];
}

const char *rt_env_get(const char *const *env, const char *name) {
    if (!env) return getenv(name);
    size_t n = strlen(name);
    for (; *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return *env + n + 1;
    return NULL;
}

/* Parses a non-negative int variable; false (after reporting) if malformed. */
static bool env_int(DiagEngine *d, const char *const *env, const char *name, int *out) {
    const char *v = rt_env_get(env, name);
    char *end;
    long x = v ? strtol(v, &end, 10) : -1;
    if (!v || !*v || *end || x < 0 || x > 1000000) {
        diag_error(d, ((SrcLoc){0}), "launcher variable %s is %s%s%s", name, v ? "'" : "missing", v ? v : "", v ? "', not a non-negative integer" : "");
        return false;
    }
    *out = (int)x;
    return true;
}

const char *rt_hostlist_first(Arena *a, const char *list) {
    StrBuf sb;
    sb_init(&sb);
    for (const char *p = list; *p && *p != ',';) {
        if (*p != '[') {
            sb_putc(&sb, *p++);
            continue;
        }
        for (p++; *p && *p != '-' && *p != ',' && *p != ']'; p++) sb_putc(&sb, *p); /* the range's first value */
        while (*p && *p != ']') p++;
        if (*p) p++;
    }
    const char *r = arena_strdup(a, sb.data ? sb.data : "");
    sb_free(&sb);
    return r;
}

bool rt_rank_info(Arena *a, DiagEngine *d, const char *const *env, RtRankInfo *out) {
    static const struct {
        RtLauncher l;
        const char *rank, *size, *local;
    } kinds[] = {{RT_LAUNCH_OPENMPI, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
                 {RT_LAUNCH_SLURM, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
                 {RT_LAUNCH_TORCHRUN, "RANK", "WORLD_SIZE", "LOCAL_RANK"}};
    memset(out, 0, sizeof *out);
    out->size = 1;
    out->launcher = RT_LAUNCH_SINGLE;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (!rt_env_get(env, kinds[k].rank)) continue;
        out->launcher = kinds[k].l;
        if (!env_int(d, env, kinds[k].rank, &out->rank) || !env_int(d, env, kinds[k].size, &out->size)) return false;
        out->local_rank = out->rank; /* a single-node default when the launcher does not say */
        if (rt_env_get(env, kinds[k].local) && !env_int(d, env, kinds[k].local, &out->local_rank)) return false;
        if (out->size < 1 || out->rank >= out->size) {
            diag_error(d, ((SrcLoc){0}), "%s says rank %d of a world of %d (%s, %s)", rt_launcher_name(out->launcher), out->rank,
                       out->size, kinds[k].rank, kinds[k].size);
            return false;
        }
        break;
    }
    const char *addr = rt_env_get(env, "DSCC_MASTER_ADDR");
    if (!addr) addr = rt_env_get(env, "MASTER_ADDR");
    if ((!addr || !*addr) && out->launcher == RT_LAUNCH_SLURM) { /* srun: rank 0 runs on the step's first host */
        static const char *lists[] = {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"};
        for (size_t k = 0; (!addr || !*addr) && k < sizeof lists / sizeof lists[0]; k++)
            if (rt_env_get(env, lists[k])) addr = rt_hostlist_first(a, rt_env_get(env, lists[k]));
    }
    out->master_addr = arena_strdup(a, addr && *addr ? addr : "127.0.0.1");
    out->master_port = 29500;
    const char *pv = rt_env_get(env, "DSCC_MASTER_PORT") ? "DSCC_MASTER_PORT" : rt_env_get(env, "MASTER_PORT") ? "MASTER_PORT" : NULL;
    if (pv && !env_int(d, env, pv, &out->master_port)) return false;
    if (out->master_port < 1 || out->master_port > 65535) {
        diag_error(d, ((SrcLoc){0}), "%s must be a port number in 1..65535, got %d", pv, out->master_port);
        return false;
    }
    return true;
}

/* ---- sockets with a deadline ------------------------------------------------ */

double rt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int rt_sock_wait(int fd, short events, double deadline, bool (*alive)(void *), void *arg) {
    for (;;) {
        if (alive && !alive(arg)) return -1;
        double left = deadline - rt_now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, fd >= 0 ? 1 : 0, alive && left > 100 ? 100 : (int)left + 1);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return 0;
    }
}

int rt_sock_io(int fd, void *buf, size_t n, bool sending, double deadline, bool (*alive)(void *), void *arg) {
    char *p = buf;
    while (n) {
        int ready = rt_sock_wait(fd, sending ? POLLOUT : POLLIN, deadline, alive, arg);
        if (ready <= 0) return ready;
        ssize_t r = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r <= 0) {
            if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            return 0;
        }
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

bool rt_master_sockaddr(DiagEngine *d, const RtRankInfo *ri, const char *what, struct sockaddr_in *sa) {
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)ri->master_port);
    if (inet_pton(AF_INET, ri->master_addr, &sa->sin_addr) == 1) return true;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(ri->master_addr, NULL, &hints, &res) != 0 || !res) {
        diag_error(d, ((SrcLoc){0}), "%s: cannot resolve the master address '%s'", what, ri->master_addr);
        return false;
    }
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return true;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static bool wait_fd(int fd, short events, double deadline) { return rt_sock_wait(fd, events, deadline, NULL, NULL) > 0; }

static bool io_all(int fd, void *buf, size_t n, bool sending, double deadline) {
    return rt_sock_io(fd, buf, n, sending, deadline, NULL, NULL) > 0;
}

typedef struct {
    uint32_t magic, rank, size, pad;
} Hello;

static bool serve(DiagEngine *d, const RtRankInfo *ri, const struct sockaddr_in *sa, void *blob, size_t len, double deadline) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in any = *sa; /* listen on every interface: other nodes connect to master_addr */
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    if (ls >= 0) setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (const struct sockaddr *)&any, sizeof any) != 0 || listen(ls, 128) != 0) {
        diag_error(d, ((SrcLoc){0}), "rendezvous: rank 0 cannot listen on %s:%d: %s", ri->master_addr, ri->master_port, strerror(errno));
        if (ls >= 0) close(ls);
        return false;
    }
    bool *seen = calloc((size_t)ri->size, 1);
    int *fds = calloc((size_t)ri->size, sizeof(int)), got = 1;
    bool ok = true;
    while (ok && got < ri->size) {
        if (!wait_fd(ls, POLLIN, deadline)) break;
        int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) continue;
        Hello h;
        if (!io_all(fd, &h, sizeof h, false, deadline) || h.magic != HELLO_MAGIC) {
            close(fd); /* not one of ours: keep waiting for the real ranks */
            continue;
        }
        if ((int)h.size != ri->size || h.rank == 0 || (int)h.rank >= ri->size || seen[h.rank]) {
            diag_error(d, ((SrcLoc){0}), "rendezvous: a process says rank %u of %u, but the world is %d%s", h.rank, h.size,
                       ri->size, (int)h.rank < ri->size && h.rank && seen[h.rank] ? " and that rank already joined" : "");
            close(fd);
            ok = false;
            break;
        }
        seen[h.rank] = true;
        fds[h.rank] = fd;
        got++;
    }
    if (ok && got < ri->size) {
        StrBuf missing;
        sb_init(&missing);
        int shown = 0;
        for (int r = 1; r < ri->size && shown < 16; r++)
            if (!seen[r]) sb_printf(&missing, shown++ ? ", %d" : "%d", r);
        diag_error(d, ((SrcLoc){0}), "rendezvous: rank%s %s%s did not join within the timeout (%d of %d ranks present)",
                   ri->size - got > 1 ? "s" : "", missing.data, ri->size - got > shown ? ", ..." : "", got, ri->size);
        sb_free(&missing);
        ok = false;
    }
    for (int r = 1; r < ri->size; r++) {
        if (ok && seen[r] && !io_all(fds[r], blob, len, true, deadline)) {
            diag_error(d, ((SrcLoc){0}), "rendezvous: sending to rank %d failed", r);
            ok = false;
        }
        if (seen[r]) close(fds[r]);
    }
    free(seen);
    free(fds);
    close(ls);
    return ok;
}

static bool join(DiagEngine *d, const RtRankInfo *ri, const struct sockaddr_in *sa, void *blob, size_t len, double deadline) {
    for (;;) { /* rank 0 may not be listening yet: retry until the deadline */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) break;
        int r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
        if (r != 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline)) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            r = err ? -1 : 0;
        }
        if (r == 0) {
            Hello h = {HELLO_MAGIC, (uint32_t)ri->rank, (uint32_t)ri->size, 0};
            bool ok = io_all(fd, &h, sizeof h, true, deadline) && io_all(fd, blob, len, false, deadline);
            close(fd);
            if (ok) return true;
            diag_error(d, ((SrcLoc){0}), "rendezvous: rank %d lost the connection to rank 0 at %s:%d", ri->rank, ri->master_addr,
                       ri->master_port);
            return false;
        }
        close(fd);
        if (rt_now_ms() > deadline) break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    diag_error(d, ((SrcLoc){0}), "rendezvous: rank %d could not reach rank 0 at %s:%d within the timeout", ri->rank, ri->master_addr,
               ri->master_port);
    return false;
}

bool rt_rendezvous(DiagEngine *d, const RtRankInfo *ri, void *blob, size_t len, int timeout_ms) {
    if (ri->size == 1) return true;
    struct sockaddr_in sa;
    if (!rt_master_sockaddr(d, ri, "rendezvous", &sa)) return false;
    double deadline = rt_now_ms() + timeout_ms;
    return ri->rank == 0 ? serve(d, ri, &sa, blob, len, deadline) : join(d, ri, &sa, blob, len, deadline);
}
