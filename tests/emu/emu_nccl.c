/* emu_nccl.c — an emulated NCCL (built as libnccl.so.2) that moves bytes
 * between the rank processes of one host through files in a shared
 * directory, beside the emulated CUDA device (emu_cuda.c), so multi-rank
 * runs are tested where there is no GPU. Exactly the entry points
 * runtime/nccl.c resolves, plus ncclCommInitRank, ncclCommCount,
 * ncclCommUserRank and ncclCommCuDevice.
 *
 * The unique id names a rendezvous directory (random bytes, under
 * DSCC_EMU_NCCL_DIR, TMPDIR, /dev/shm or /tmp, written into the id by
 * ncclGetUniqueId). Each rank joins by creating rank.<r> (pid, device,
 * world size, host) and holding an exclusive flock on it for as long as it
 * is in the communicator, so a peer that died is seen at once (its lock is
 * free) and one that left has renamed its file to left.<r>; the last rank
 * out removes the directory. A communicator is ready when every rank has
 * joined; two ranks on one device of one host (NCCL_HOSTID or the host
 * name) are refused, as NCCL refuses duplicate GPUs.
 *
 * A group's operations on one communicator become one task, queued on the
 * stream with cuLaunchHostFunc, so the bytes move in that stream's order
 * with the kernels, copies and events around them. The task first writes
 * every send (the k-th send from a to b is the file p.a.b.k, written under
 * a temporary name and renamed, so it appears whole) and every all-reduce
 * contribution, then waits for each receive: a group's sends never wait,
 * so any valid program completes. A receive whose size differs from the
 * matching send fails with ncclInvalidUsage; a peer that died or left
 * before sending, or DSCC_EMU_NCCL_TIMEOUT seconds (default 300) without
 * the message, fail it with ncclRemoteError; either way the error is the
 * communicator's asynchronous error, as NCCL reports a failed kernel.
 * All-reduce sums (or prod/max/min/avg) the contributions in rank order, so
 * every rank gets the same bits. Tasks of one communicator run one at a
 * time in the order they were enqueued, whatever their streams, as NCCL
 * serializes them. ncclCommAbort, from any thread, ends a waiting task
 * within a millisecond and returns once no task touches a buffer.
 * Communicators may be non-blocking (ncclInProgress, then
 * ncclCommGetAsyncError polls); NCCL_DEBUG=WARN prints each error.
 *
 * Not emulated: collectives other than all-reduce, FP8 reductions,
 * ncclCommSplit, user buffers registration, more than one host. */

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NCCL_API __attribute__((visibility("default")))

enum {
    NCCL_OK = 0,
    NCCL_UNHANDLED_CUDA = 1,
    NCCL_SYSTEM = 2,
    NCCL_INTERNAL = 3,
    NCCL_INVALID_ARGUMENT = 4,
    NCCL_INVALID_USAGE = 5,
    NCCL_REMOTE = 6,
    NCCL_IN_PROGRESS = 7,
};

#define EMU_NCCL_VERSION 22400 /* reported as NCCL 2.24.0 (FP8 types known to send/recv) */
#define EMU_ID_MAGIC "dsccNCCL"
#define EMU_MAX_RANKS 1024

typedef struct {
    char internal[128];
} ncclUniqueId;

typedef struct { /* what this library puts in an ncclUniqueId */
    char magic[8];
    unsigned char token[16];
    char base[104]; /* the folder the rendezvous directory is made in */
} EmuId;
_Static_assert(sizeof(EmuId) == sizeof(ncclUniqueId), "EmuId");

typedef struct { /* ncclConfig_t, the 2.17 layout (the fields read here) */
    size_t size;
    unsigned magic, version;
    int blocking;
} EmuConfig;

/* ---- errors ---------------------------------------------------------------------- */

static pthread_mutex_t g_last_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_last[640];

NCCL_API const char *ncclGetErrorString(int r) {
    switch (r) {
    case NCCL_OK: return "no error";
    case NCCL_UNHANDLED_CUDA: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case NCCL_SYSTEM: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case NCCL_INTERNAL: return "internal error - please report this issue to the NCCL developers";
    case NCCL_INVALID_ARGUMENT: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case NCCL_INVALID_USAGE: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case NCCL_REMOTE: return "remote process exited or there was a network error";
    case NCCL_IN_PROGRESS: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void warn(const char *msg) {
    const char *e = getenv("NCCL_DEBUG");
    if (e && (!strcasecmp(e, "WARN") || !strcasecmp(e, "INFO") || !strcasecmp(e, "TRACE")))
        fprintf(stderr, "emulated NCCL WARN [pid %ld, %.6f] %s\n", (long)getpid(), now_s(), msg);
}

/* An error of a call (no communicator to keep it): ncclGetLastError(NULL) says it. */
static int call_error(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int call_error(int r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&g_last_mu);
    vsnprintf(g_last, sizeof g_last, fmt, ap);
    warn(g_last);
    pthread_mutex_unlock(&g_last_mu);
    va_end(ap);
    return r;
}


static void sleep_us(long us) {
    struct timespec t = {us / 1000000, us % 1000000 * 1000};
    nanosleep(&t, NULL);
}

static double emu_timeout_s(void) {
    const char *e = getenv("DSCC_EMU_NCCL_TIMEOUT");
    double t = e && *e ? strtod(e, NULL) : 300.0;
    return t > 0 ? t : 300.0;
}

/* ---- the CUDA driver's part ------------------------------------------------------ */

static struct {
    pthread_once_t once;
    void *lib;
    int (*launch_host)(void *stream, void (*fn)(void *), void *arg);
    int (*is_capturing)(void *stream, int *status);
    int (*ctx_get_device)(int *dev);
    int (*event_create)(void **e, unsigned flags);
    int (*event_record)(void *e, void *stream);
    int (*stream_wait)(void *stream, void *e, unsigned flags);
    int (*event_destroy)(void *e);
} g_cu = {.once = PTHREAD_ONCE_INIT};

static void cuda_load(void) {
    if (!(g_cu.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL))) return;
    *(void **)&g_cu.launch_host = dlsym(g_cu.lib, "cuLaunchHostFunc");
    *(void **)&g_cu.is_capturing = dlsym(g_cu.lib, "cuStreamIsCapturing");
    *(void **)&g_cu.ctx_get_device = dlsym(g_cu.lib, "cuCtxGetDevice");
    *(void **)&g_cu.event_create = dlsym(g_cu.lib, "cuEventCreate");
    *(void **)&g_cu.event_record = dlsym(g_cu.lib, "cuEventRecord");
    *(void **)&g_cu.stream_wait = dlsym(g_cu.lib, "cuStreamWaitEvent");
    *(void **)&g_cu.event_destroy = dlsym(g_cu.lib, "cuEventDestroy_v2");
}

static bool cuda_ok(void) {
    pthread_once(&g_cu.once, cuda_load);
    return g_cu.launch_host && g_cu.is_capturing && g_cu.event_create && g_cu.event_record && g_cu.stream_wait && g_cu.event_destroy;
}

/* ---- communicators ------------------------------------------------------------- */

enum { ST_INIT = -1 }; /* else NCCL_OK or an error */

typedef struct Comm {
    char dir[PATH_MAX];
    int rank, nranks, device;
    bool blocking;
    int lockfd; /* rank.<rank>, flocked while in the communicator */
    double timeout_s, init_end; /* DSCC_EMU_NCCL_TIMEOUT; when the ranks must all have joined */
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* a task finished, or the abort */
    int state;          /* ST_INIT, NCCL_OK or the asynchronous error */
    char last[640];
    bool aborted, left, finalizing, init_failed;
    int refs;      /* the user's handle and every queued task */
    int executing; /* tasks moving bytes (the abort waits for them) */
    int pending;   /* tasks queued and not finished (finalize waits for them) */
    uint64_t next_ticket, done_ticket;
    pthread_mutex_t exec_mu; /* one task of the communicator at a time */
    uint64_t *send_seq, *recv_seq, coll_seq;
} Comm;

/* The communicator's asynchronous error (the first one stays). */
static int comm_error(Comm *c, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int comm_error(Comm *c, int r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&c->mu);
    if (c->state == NCCL_OK || c->state == ST_INIT) {
        c->state = r;
        int n = snprintf(c->last, sizeof c->last, "rank %d: ", c->rank);
        vsnprintf(c->last + n, sizeof c->last - (size_t)n, fmt, ap);
        call_error(r, "%s", c->last);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    va_end(ap);
    return r;
}

static void path_of(const Comm *c, char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void path_of(const Comm *c, char *out, size_t n, const char *fmt, ...) {
    int k = snprintf(out, n, "%s/", c->dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + k, n - (size_t)k, fmt, ap);
    va_end(ap);
}

typedef struct {
    long pid;
    int device, nranks;
    char host[256];
} RankFile;

enum { PEER_ALIVE, PEER_ABSENT, PEER_LEFT, PEER_DIED };

/* Where rank q stands: its rank file (left.<q> once it left) and whether its lock is held. */
static int peer_state(const Comm *c, int q, RankFile *rf) {
    char p[PATH_MAX + 32];
    path_of(c, p, sizeof p, "rank.%d", q);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    bool left = false;
    if (fd < 0) {
        path_of(c, p, sizeof p, "left.%d", q);
        if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0) return PEER_ABSENT;
        left = true;
    }
    char buf[400] = "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    if (rf) {
        memset(rf, 0, sizeof *rf);
        sscanf(buf, "%ld %d %d %255s", &rf->pid, &rf->device, &rf->nranks, rf->host);
    }
    int st = left ? PEER_LEFT : PEER_ALIVE;
    if (!left && flock(fd, LOCK_SH | LOCK_NB) == 0) { /* nobody holds it: the process is gone */
        flock(fd, LOCK_UN);
        st = PEER_DIED;
    }
    close(fd);
    return st;
}

static const char *peer_gone(int st) { return st == PEER_DIED ? "exited (its process is gone)" : "left the communicator"; }

/* Joins: rank.<rank> made under a temporary name, locked, then renamed into place. */
static int comm_join(Comm *c, const char *host) {
    if (mkdir(c->dir, 0700) != 0 && errno != EEXIST)
        return call_error(NCCL_SYSTEM, "emulated NCCL: cannot make the rendezvous directory %s: %s", c->dir, strerror(errno));
    RankFile old;
    if (peer_state(c, c->rank, &old) == PEER_ALIVE)
        return call_error(NCCL_INVALID_USAGE, "emulated NCCL: rank %d joined twice (process %ld holds it)", c->rank, old.pid);
    char tmp[PATH_MAX + 32], fin[PATH_MAX + 32], line[400];
    path_of(c, tmp, sizeof tmp, "t.rank.%d.%ld", c->rank, (long)getpid());
    path_of(c, fin, sizeof fin, "rank.%d", c->rank);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int n = snprintf(line, sizeof line, "%ld %d %d %s\n", (long)getpid(), c->device, c->nranks, host);
    if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(fd, line, (size_t)n) != n || rename(tmp, fin) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        unlink(tmp);
        return call_error(NCCL_SYSTEM, "emulated NCCL: cannot join at %s: %s", fin, strerror(e));
    }
    c->lockfd = fd;
    return NCCL_OK;
}

/* With c->mu held: one look at whether every rank has joined. */
static int init_poll(Comm *c) {
    if (c->state != ST_INIT) return c->state;
    RankFile *rf = calloc((size_t)c->nranks, sizeof *rf);
    int r = NCCL_OK;
    for (int q = 0; q < c->nranks && r == NCCL_OK; q++) {
        int st = peer_state(c, q, &rf[q]);
        if (st == PEER_ABSENT) r = NCCL_IN_PROGRESS;
        else if (st == PEER_DIED) r = NCCL_REMOTE;
        else if (rf[q].nranks != c->nranks) r = NCCL_INVALID_USAGE;
        if (r == NCCL_REMOTE) snprintf(c->last, sizeof c->last, "rank %d: rank %d exited during initialization", c->rank, q);
        if (r == NCCL_INVALID_USAGE)
            snprintf(c->last, sizeof c->last, "rank %d: rank %d joined a world of %d ranks, this rank a world of %d", c->rank, q,
                     rf[q].nranks, c->nranks);
        for (int p = 0; p < q && r == NCCL_OK; p++)
            if (rf[q].device >= 0 && rf[p].device == rf[q].device && !strcmp(rf[p].host, rf[q].host)) {
                r = NCCL_INVALID_USAGE;
                snprintf(c->last, sizeof c->last, "rank %d: ranks %d and %d use the same device %d of host %s (duplicate GPU)", c->rank,
                         p, q, rf[q].device, rf[q].host);
            }
    }
    free(rf);
    if (r == NCCL_IN_PROGRESS && now_s() > c->init_end) {
        r = NCCL_REMOTE;
        snprintf(c->last, sizeof c->last, "rank %d: not every rank joined within %g s (DSCC_EMU_NCCL_TIMEOUT)", c->rank, c->timeout_s);
    }
    if (r == NCCL_IN_PROGRESS) return r;
    c->state = r;
    if (r != NCCL_OK) call_error(r, "%s", c->last);
    c->init_failed = r == NCCL_INVALID_USAGE; /* a verdict every rank reaches (a death each sees for itself) */
    return r;
}

/* Leaving after a failed initialization: every rank reaches the same verdict from the same files,
 * so each says it is leaving (fail.<r>, once its caller has had the error) and waits, up to a
 * second, for the others to say so too: the ranks fail together, as NCCL's do at one step of their
 * bootstrap, and none is gone (taken for dead) before the others have their own error. */
static void init_fail_wait(Comm *c) {
    char me[PATH_MAX + 32];
    path_of(c, me, sizeof me, "fail.%d", c->rank);
    int fd = open(me, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    double end = now_s() + 1.0;
    for (int q = 0; q < c->nranks && now_s() < end;) {
        char p[PATH_MAX + 32];
        path_of(c, p, sizeof p, "fail.%d", q);
        if (q == c->rank || access(p, F_OK) == 0 || peer_state(c, q, NULL) != PEER_ALIVE) q++;
        else sleep_us(200);
    }
}

/* Out of the communicator; the last rank out (the others left or died) removes the directory. */
static void comm_leave(Comm *c) {
    if (c->left) return;
    c->left = true;
    if (c->init_failed) init_fail_wait(c);
    char a[PATH_MAX + 32], b[PATH_MAX + 32];
    path_of(c, a, sizeof a, "rank.%d", c->rank);
    path_of(c, b, sizeof b, "left.%d", c->rank);
    if (c->lockfd >= 0) {
        rename(a, b);
        close(c->lockfd);
        c->lockfd = -1;
    }
    for (int q = 0; q < c->nranks; q++)
        if (q != c->rank && peer_state(c, q, NULL) == PEER_ALIVE) return;
    DIR *d = opendir(c->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        path_of(c, a, sizeof a, "%s", e->d_name);
        unlink(a);
    }
    if (d) closedir(d);
    rmdir(c->dir);
}

static void comm_unref(Comm *c) {
    pthread_mutex_lock(&c->mu);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last) return;
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->exec_mu);
    pthread_cond_destroy(&c->cv);
    free(c->send_seq);
    free(c->recv_seq);
    free(c);
}

NCCL_API int ncclGetVersion(int *v) {
    if (!v) return NCCL_INVALID_ARGUMENT;
    *v = EMU_NCCL_VERSION;
    return NCCL_OK;
}

static const char *base_dir(void) {
    const char *e = getenv("DSCC_EMU_NCCL_DIR");
    if (e && *e) return e;
    if ((e = getenv("TMPDIR")) && *e) return e;
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

NCCL_API int ncclGetUniqueId(ncclUniqueId *out) {
    if (!out) return call_error(NCCL_INVALID_ARGUMENT, "ncclGetUniqueId: NULL id");
    EmuId id;
    memset(&id, 0, sizeof id);
    memcpy(id.magic, EMU_ID_MAGIC, 8);
    const char *b = base_dir();
    if (strlen(b) >= sizeof id.base)
        return call_error(NCCL_SYSTEM, "emulated NCCL: the rendezvous folder %s is longer than %zu bytes (set DSCC_EMU_NCCL_DIR)", b,
                          sizeof id.base - 1);
    strcpy(id.base, b);
    if (getrandom(id.token, sizeof id.token, 0) != (ssize_t)sizeof id.token)
        return call_error(NCCL_SYSTEM, "emulated NCCL: getrandom: %s", strerror(errno));
    memcpy(out, &id, sizeof id);
    return NCCL_OK;
}

NCCL_API int ncclCommInitRankConfig(void **out, int nranks, ncclUniqueId uid, int rank, EmuConfig *config) {
    if (!out) return call_error(NCCL_INVALID_ARGUMENT, "ncclCommInitRankConfig: NULL communicator pointer");
    *out = NULL;
    if (nranks < 1 || nranks > EMU_MAX_RANKS || rank < 0 || rank >= nranks)
        return call_error(NCCL_INVALID_ARGUMENT, "ncclCommInitRankConfig: rank %d of a world of %d", rank, nranks);
    if (config && config->magic != 0xcafebeef)
        return call_error(NCCL_INVALID_ARGUMENT, "ncclCommInitRankConfig: the config was not set up with NCCL_CONFIG_INITIALIZER");
    EmuId id;
    memcpy(&id, &uid, sizeof id);
    if (memcmp(id.magic, EMU_ID_MAGIC, 8) != 0 || !memchr(id.base, 0, sizeof id.base))
        return call_error(NCCL_INVALID_ARGUMENT, "ncclCommInitRankConfig: not an id made by this (emulated) NCCL's ncclGetUniqueId");
    if (!cuda_ok())
        return call_error(NCCL_UNHANDLED_CUDA, "emulated NCCL: needs a CUDA driver with cuLaunchHostFunc, cuStreamIsCapturing and events "
                                               "(the emulated libcuda.so.1 of tests/emu)");
    Comm *c = calloc(1, sizeof *c);
    int n = snprintf(c->dir, sizeof c->dir, "%s/dscc-emu-nccl-", id.base);
    for (int i = 0; i < 16; i++) n += snprintf(c->dir + n, sizeof c->dir - (size_t)n, "%02x", id.token[i]);
    c->rank = rank, c->nranks = nranks, c->lockfd = -1, c->state = ST_INIT, c->refs = 1;
    c->blocking = !config || config->blocking != 0;
    c->timeout_s = emu_timeout_s();
    c->init_end = now_s() + c->timeout_s;
    c->device = 0;
    if (g_cu.ctx_get_device && g_cu.ctx_get_device(&c->device) != 0) c->device = 0;
    c->send_seq = calloc((size_t)nranks, sizeof *c->send_seq);
    c->recv_seq = calloc((size_t)nranks, sizeof *c->recv_seq);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->exec_mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    char host[256] = "";
    const char *hid = getenv("NCCL_HOSTID");
    if (hid && *hid) snprintf(host, sizeof host, "%s", hid);
    else gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++)
        if (*p == ' ' || *p == '\n') *p = '_';
    int r = comm_join(c, *host ? host : "localhost");
    if (r != NCCL_OK) {
        comm_unref(c);
        return r;
    }
    *out = c;
    if (!c->blocking) return NCCL_IN_PROGRESS; /* the peers are met, and their verdict had, through ncclCommGetAsyncError */
    pthread_mutex_lock(&c->mu);
    for (r = init_poll(c); r == NCCL_IN_PROGRESS; r = init_poll(c)) { /* ends at c->init_end */
        pthread_mutex_unlock(&c->mu);
        sleep_us(1000);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

NCCL_API int ncclCommInitRank(void **out, int nranks, ncclUniqueId id, int rank) {
    return ncclCommInitRankConfig(out, nranks, id, rank, NULL);
}

NCCL_API int ncclCommGetAsyncError(void *comm, int *state) {
    Comm *c = comm;
    if (!c || !state) return NCCL_INVALID_ARGUMENT;
    pthread_mutex_lock(&c->mu);
    int r = init_poll(c);
    if (r == NCCL_OK && c->finalizing && c->pending > 0) r = NCCL_IN_PROGRESS;
    pthread_mutex_unlock(&c->mu);
    *state = r;
    return NCCL_OK;
}

NCCL_API const char *ncclGetLastError(void *comm) {
    Comm *c = comm;
    if (c && c->last[0]) return c->last;
    return g_last;
}

NCCL_API int ncclCommCount(const void *comm, int *n) {
    if (!comm || !n) return NCCL_INVALID_ARGUMENT;
    *n = ((const Comm *)comm)->nranks;
    return NCCL_OK;
}
NCCL_API int ncclCommUserRank(const void *comm, int *r) {
    if (!comm || !r) return NCCL_INVALID_ARGUMENT;
    *r = ((const Comm *)comm)->rank;
    return NCCL_OK;
}
NCCL_API int ncclCommCuDevice(const void *comm, int *dev) {
    if (!comm || !dev) return NCCL_INVALID_ARGUMENT;
    *dev = ((const Comm *)comm)->device;
    return NCCL_OK;
}

/* Waits (bounded) until the queued tasks are done; their result. */
static int wait_pending(Comm *c) {
    double end = now_s() + c->timeout_s;
    pthread_mutex_lock(&c->mu);
    while (c->pending > 0 && c->state == NCCL_OK && !c->aborted && now_s() < end) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 10 * 1000 * 1000;
        if (t.tv_nsec >= 1000000000) t.tv_sec++, t.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&c->cv, &c->mu, &t);
    }
    int r = c->pending > 0 && c->state == NCCL_OK ? NCCL_REMOTE : c->state;
    pthread_mutex_unlock(&c->mu);
    if (r == NCCL_REMOTE && c->state == NCCL_OK)
        comm_error(c, r, "operations still in flight after %g s (DSCC_EMU_NCCL_TIMEOUT)", c->timeout_s);
    return r;
}

NCCL_API int ncclCommFinalize(void *comm) {
    Comm *c = comm;
    if (!c) return NCCL_INVALID_ARGUMENT;
    pthread_mutex_lock(&c->mu);
    c->finalizing = true;
    int r = c->state == ST_INIT ? NCCL_INVALID_USAGE : c->state;
    bool wait = r == NCCL_OK && c->pending > 0;
    pthread_mutex_unlock(&c->mu);
    if (r == NCCL_INVALID_USAGE) return call_error(r, "ncclCommFinalize: the communicator is not initialized");
    if (!wait) return r;
    return c->blocking ? wait_pending(c) : NCCL_IN_PROGRESS;
}

NCCL_API int ncclCommDestroy(void *comm) {
    Comm *c = comm;
    if (!c) return NCCL_INVALID_ARGUMENT;
    pthread_mutex_lock(&c->mu);
    bool wait = c->state == NCCL_OK && c->pending > 0;
    pthread_mutex_unlock(&c->mu);
    if (wait) wait_pending(c);
    comm_leave(c);
    comm_unref(c);
    return NCCL_OK;
}

/* Any thread: waiting tasks give up, and once none touches a buffer the rank leaves. */
NCCL_API int ncclCommAbort(void *comm) {
    Comm *c = comm;
    if (!c) return NCCL_OK;
    pthread_mutex_lock(&c->mu);
    c->aborted = true;
    pthread_cond_broadcast(&c->cv);
    while (c->executing > 0) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    comm_leave(c);
    comm_unref(c);
    return NCCL_OK;
}

/* ---- operations ---------------------------------------------------------------- */

enum { OP_SEND, OP_RECV, OP_ALL_REDUCE };

typedef struct {
    int kind;
    Comm *c;
    const void *sbuf;
    void *rbuf;
    size_t count, bytes;
    int type, red, peer;
    void *stream;
} Op;

typedef struct {
    Comm *c;
    bool captured; /* part of a CUDA graph: runs at each launch of it, never freed */
    uint64_t ticket;
    int n;
    Op op[];
} Task;

static __thread struct {
    int depth;
    Op *op;
    int n, cap;
} tg; /* this thread's group */

static size_t type_size(int t) {
    static const size_t size[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
    return t >= 0 && t < 12 ? size[t] : 0;
}

/* The k-th message of `kind` from src to dst: written whole under a temporary name, then renamed. */
static int msg_write(Comm *c, char kind, int dst, uint64_t seq, const void *data, size_t bytes) {
    char tmp[PATH_MAX + 64], fin[PATH_MAX + 64];
    path_of(c, tmp, sizeof tmp, "t.%c.%d.%d.%llu", kind, c->rank, dst, (unsigned long long)seq);
    path_of(c, fin, sizeof fin, "%c.%d.%d.%llu", kind, c->rank, dst, (unsigned long long)seq);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < bytes;) {
        ssize_t w = write(fd, (const char *)data + done, bytes - done);
        ok = w > 0;
        done += ok ? (size_t)w : 0;
    }
    int e = errno;
    if (fd >= 0) close(fd);
    if (ok && rename(tmp, fin) == 0) return NCCL_OK;
    e = ok ? errno : e;
    unlink(tmp);
    return comm_error(c, NCCL_SYSTEM, "cannot write the message of %zu bytes to rank %d at %s: %s", bytes, dst, fin, strerror(e));
}

static bool aborted(Comm *c) {
    pthread_mutex_lock(&c->mu);
    bool a = c->aborted;
    pthread_mutex_unlock(&c->mu);
    return a;
}

/* One try at the message: 1 read, 0 not there yet, or an error. */
static int msg_try(Comm *c, const char *path, int src, size_t bytes, void *out, const char *what) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return 0;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return comm_error(c, NCCL_SYSTEM, "cannot read the %s from rank %d at %s: %s", what, src, path, strerror(e)), -1;
    }
    if ((size_t)st.st_size != bytes) {
        close(fd);
        unlink(path);
        return comm_error(c, NCCL_INVALID_USAGE, "the %s of %zu bytes from rank %d matched a send of %lld bytes (sizes must agree)", what,
                          bytes, src, (long long)st.st_size),
               -1;
    }
    bool ok = true;
    for (size_t done = 0; ok && done < bytes;) {
        ssize_t r = read(fd, (char *)out + done, bytes - done);
        ok = r > 0;
        done += ok ? (size_t)r : 0;
    }
    int e = errno;
    close(fd);
    unlink(path);
    if (!ok) return comm_error(c, NCCL_SYSTEM, "cannot read the %s from rank %d at %s: %s", what, src, path, strerror(e)), -1;
    return 1;
}

/* Waits for the k-th message of `kind` from src; NCCL_OK, an error, or -1 when aborted. */
static int msg_read(Comm *c, char kind, int src, uint64_t seq, void *out, size_t bytes, const char *what) {
    char path[PATH_MAX + 64];
    path_of(c, path, sizeof path, "%c.%d.%d.%llu", kind, src, c->rank, (unsigned long long)seq);
    double start = now_s(), next_check = start + 0.02;
    for (long us = 10;; us = us < 1000 ? us * 2 : 1000) {
        int got = msg_try(c, path, src, bytes, out, what);
        if (got) return got > 0 ? NCCL_OK : c->state;
        if (aborted(c)) return -1;
        double t = now_s();
        if (t >= next_check) {
            next_check = t + 0.05;
            int st = peer_state(c, src, NULL);
            if (st != PEER_ALIVE) { /* it may have sent before it went */
                if ((got = msg_try(c, path, src, bytes, out, what))) return got > 0 ? NCCL_OK : c->state;
                return comm_error(c, NCCL_REMOTE, "rank %d %s before sending what the %s of %zu bytes waits for", src, peer_gone(st), what,
                                  bytes);
            }
            if (t - start > c->timeout_s)
                return comm_error(c, NCCL_REMOTE, "the %s of %zu bytes from rank %d: nothing came within %g s (DSCC_EMU_NCCL_TIMEOUT)", what,
                                  bytes, src, c->timeout_s);
        }
        sleep_us(us);
    }
}

static float bf16_to_f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t f_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40); /* NaN stays NaN */
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1u)) >> 16);
}
static float f16_to_f(uint16_t h) {
    unsigned s = h >> 15, e = h >> 10 & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), (int)e - 25);
    return s ? -v : v;
}
static uint16_t f_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = u >> 16 & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00u); /* rounds to infinity */
    if (a < 0x38800000u) {                                 /* subnormal: exact rounding through the float unit */
        float v;
        memcpy(&v, &a, 4);
        return (uint16_t)(s | (uint32_t)lrintf(v * 16777216.0f));
    }
    uint32_t r = a - 0x38000000u; /* rebias 127 -> 15 */
    r = (r + 0xfffu + (r >> 13 & 1u)) >> 13;
    return (uint16_t)(s | r);
}

#define RED_LOOP(T, A, B)                                                                                              \
    for (size_t i = 0; i < n; i++) {                                                                                   \
        T x = A, y = B;                                                                                                \
        T z = red == 1 ? x * y : red == 2 ? (x > y ? x : y) : red == 3 ? (x < y ? x : y) : x + y;
#define RED_INT(T)                                                                                                     \
    {                                                                                                                  \
        T *a = acc;                                                                                                    \
        const T *b = in;                                                                                               \
        RED_LOOP(T, a[i], b[i]) a[i] = z;                                                                              \
    }                                                                                                                  \
    }                                                                                                                  \
    break;
#define RED_HALF(TO, FROM)                                                                                             \
    {                                                                                                                  \
        uint16_t *a = acc;                                                                                             \
        const uint16_t *b = in;                                                                                        \
        RED_LOOP(float, FROM(a[i]), FROM(b[i])) a[i] = TO(z);                                                          \
    }                                                                                                                  \
    }                                                                                                                  \
    break;

/* acc = acc (op) in, n elements, rounded to the type at each step (sum, prod, max, min; avg sums). */
static void reduce(void *acc, const void *in, size_t n, int type, int red) {
    switch (type) {
    case 0: RED_INT(int8_t)
    case 1: RED_INT(uint8_t)
    case 2: RED_INT(int32_t)
    case 3: RED_INT(uint32_t)
    case 4: RED_INT(int64_t)
    case 5: RED_INT(uint64_t)
    case 6: RED_HALF(f_to_f16, f16_to_f)
    case 7: RED_INT(float)
    case 8: RED_INT(double)
    case 9: RED_HALF(f_to_bf16, bf16_to_f)
    default: break;
    }
}

static void average(void *acc, size_t n, int type, int nranks) {
    for (size_t i = 0; i < n; i++) switch (type) {
        case 0: ((int8_t *)acc)[i] = (int8_t)(((int8_t *)acc)[i] / nranks); break;
        case 1: ((uint8_t *)acc)[i] = (uint8_t)(((uint8_t *)acc)[i] / (unsigned)nranks); break;
        case 2: ((int32_t *)acc)[i] /= nranks; break;
        case 3: ((uint32_t *)acc)[i] /= (uint32_t)nranks; break;
        case 4: ((int64_t *)acc)[i] /= nranks; break;
        case 5: ((uint64_t *)acc)[i] /= (uint64_t)nranks; break;
        case 6: ((uint16_t *)acc)[i] = f_to_f16(f16_to_f(((uint16_t *)acc)[i]) / (float)nranks); break;
        case 7: ((float *)acc)[i] /= (float)nranks; break;
        case 8: ((double *)acc)[i] /= nranks; break;
        case 9: ((uint16_t *)acc)[i] = f_to_bf16(bf16_to_f(((uint16_t *)acc)[i]) / (float)nranks); break;
        default: break;
        }
}

/* The contributions of every rank, in rank order, into op->rbuf. */
static int all_reduce_gather(Comm *c, const Op *op, uint64_t seq) {
    int r = NCCL_OK;
    void *acc = malloc(op->bytes ? op->bytes : 1), *in = malloc(op->bytes ? op->bytes : 1);
    for (int q = 0; q < c->nranks && r == NCCL_OK; q++) {
        void *dst = q == 0 ? acc : in;
        if (q == c->rank) memcpy(dst, op->sbuf, op->bytes);
        else r = msg_read(c, 'c', q, seq, dst, op->bytes, "all-reduce contribution");
        if (r == NCCL_OK && q > 0) reduce(acc, in, op->count, op->type, op->red);
    }
    if (r == NCCL_OK && op->red == 4) average(acc, op->count, op->type, c->nranks);
    if (r == NCCL_OK) memcpy(op->rbuf, acc, op->bytes);
    free(acc);
    free(in);
    return r;
}

/* A group's transfers: every send first (they never wait), then every receive. */
static void transfer(Comm *c, Task *t) {
    if (aborted(c)) return; /* aborted while this task waited for its turn */
    int r = NCCL_OK;
    uint64_t *coll = calloc((size_t)t->n, sizeof *coll);
    for (int i = 0; i < t->n && r == NCCL_OK; i++) {
        Op *o = &t->op[i];
        if (o->kind == OP_SEND) r = msg_write(c, 'p', o->peer, c->send_seq[o->peer]++, o->sbuf, o->bytes);
        if (o->kind != OP_ALL_REDUCE) continue;
        coll[i] = c->coll_seq++;
        for (int q = 0; q < c->nranks && r == NCCL_OK; q++)
            if (q != c->rank) r = msg_write(c, 'c', q, coll[i], o->sbuf, o->bytes);
    }
    for (int i = 0; i < t->n && r == NCCL_OK; i++) {
        Op *o = &t->op[i];
        if (o->kind == OP_RECV) r = msg_read(c, 'p', o->peer, c->recv_seq[o->peer]++, o->rbuf, o->bytes, "ncclRecv");
        if (o->kind == OP_ALL_REDUCE) r = all_reduce_gather(c, o, coll[i]);
    }
    free(coll);
}

/* On the stream's thread, in the stream's order. */
static void task_run(void *arg) {
    Task *t = arg;
    Comm *c = t->c;
    pthread_mutex_lock(&c->mu);
    while (!t->captured && c->done_ticket != t->ticket && !c->aborted && c->state == NCCL_OK) pthread_cond_wait(&c->cv, &c->mu);
    bool go = !c->aborted && c->state == NCCL_OK;
    c->executing++;
    pthread_mutex_unlock(&c->mu);
    if (go) {
        pthread_mutex_lock(&c->exec_mu);
        transfer(c, t);
        pthread_mutex_unlock(&c->exec_mu);
    }
    pthread_mutex_lock(&c->mu);
    c->executing--;
    if (!t->captured) c->done_ticket++, c->pending--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (t->captured) return;
    free(t);
    comm_unref(c);
}

/* Makes `to` wait for what is queued on `from` so far (a CUDA event between them). */
static int stream_join(void *from, void *to) {
    void *ev = NULL;
    int r = g_cu.event_create(&ev, 2 /* CU_EVENT_DISABLE_TIMING */);
    if (!r) r = g_cu.event_record(ev, from);
    if (!r) r = g_cu.stream_wait(to, ev, 0);
    if (ev) g_cu.event_destroy(ev);
    return r;
}

/* One task for the operations of c in this group, queued on the first operation's stream; the
 * other streams the group names wait for it, and it for them. */
static int task_launch(Comm *c, const Op *ops, const int *idx, int n) {
    Task *t = calloc(1, sizeof *t + sizeof(Op) * (size_t)n);
    t->c = c, t->n = n;
    for (int i = 0; i < n; i++) t->op[i] = ops[idx[i]];
    void *main = t->op[0].stream;
    int cap = 0, cap_i = 0, r = 0;
    for (int i = 0; i < n && !r; i++) {
        r = g_cu.is_capturing(t->op[i].stream, &cap_i);
        if (i == 0) cap = cap_i;
        else if (!r && cap_i != cap) {
            free(t);
            return comm_error(c, NCCL_INVALID_USAGE, "a group mixes streams being captured into a CUDA graph with streams that are not");
        }
    }
    for (int i = 1; i < n && !r; i++)
        if (t->op[i].stream != main) r = stream_join(t->op[i].stream, main);
    if (r) {
        free(t);
        return comm_error(c, NCCL_UNHANDLED_CUDA, "CUDA error %d ordering the group's streams", r);
    }
    t->captured = cap != 0;
    pthread_mutex_lock(&c->mu);
    c->refs++;
    if (!t->captured) t->ticket = c->next_ticket++, c->pending++;
    pthread_mutex_unlock(&c->mu);
    r = g_cu.launch_host(main, task_run, t);
    if (r) { /* the task never runs: its ticket is lost, so the communicator is broken */
        pthread_mutex_lock(&c->mu);
        if (!t->captured) c->pending--;
        c->refs--;
        pthread_mutex_unlock(&c->mu);
        free(t);
        return comm_error(c, NCCL_UNHANDLED_CUDA, "cuLaunchHostFunc failed with CUDA error %d", r);
    }
    for (int i = 1; i < n && !r; i++)
        if (t->op[i].stream != main) r = stream_join(main, t->op[i].stream);
    return r ? comm_error(c, NCCL_UNHANDLED_CUDA, "CUDA error %d ordering the group's streams", r) : NCCL_OK;
}

/* ncclGroupEnd of the outermost group: a task per communicator, in the order of their first operation. */
static int group_launch(void) {
    int r = NCCL_OK, n = tg.n;
    int *idx = malloc(sizeof *idx * (size_t)(n ? n : 1));
    bool *taken = calloc((size_t)(n ? n : 1), sizeof *taken);
    for (int i = 0; i < n; i++) {
        if (taken[i]) continue;
        int k = 0;
        for (int j = i; j < n; j++)
            if (!taken[j] && tg.op[j].c == tg.op[i].c) idx[k++] = j, taken[j] = true;
        int e = task_launch(tg.op[i].c, tg.op, idx, k);
        if (e && !r) r = e;
    }
    free(idx);
    free(taken);
    tg.n = 0;
    return r;
}

NCCL_API int ncclGroupStart(void) {
    tg.depth++;
    return NCCL_OK;
}

NCCL_API int ncclGroupEnd(void) {
    if (tg.depth <= 0) return call_error(NCCL_INVALID_USAGE, "ncclGroupEnd without ncclGroupStart");
    if (--tg.depth > 0) return NCCL_OK;
    return group_launch();
}

/* Checks an operation and adds it to the group (a group of its own outside one). */
static int post(Op *o, const char *call) {
    Comm *c = o->c;
    if (!c) return call_error(NCCL_INVALID_ARGUMENT, "%s: NULL communicator", call);
    pthread_mutex_lock(&c->mu);
    int st = c->aborted ? NCCL_INVALID_USAGE : c->state;
    pthread_mutex_unlock(&c->mu);
    if (st == ST_INIT) return call_error(NCCL_INVALID_USAGE, "%s: the communicator is still being initialized", call);
    if (st != NCCL_OK) return call_error(st, "%s: the communicator %s", call, c->aborted ? "was aborted" : "has failed");
    if (o->kind != OP_ALL_REDUCE && (o->peer < 0 || o->peer >= c->nranks))
        return call_error(NCCL_INVALID_ARGUMENT, "%s: peer %d is not a rank of a world of %d", call, o->peer, c->nranks);
    if (!type_size(o->type)) return call_error(NCCL_INVALID_ARGUMENT, "%s: unknown data type %d", call, o->type);
    if (o->count && ((o->kind != OP_RECV && !o->sbuf) || (o->kind != OP_SEND && !o->rbuf)))
        return call_error(NCCL_INVALID_ARGUMENT, "%s: NULL buffer", call);
    o->bytes = o->count * type_size(o->type);
    if (tg.n == tg.cap) {
        tg.cap = tg.cap ? 2 * tg.cap : 64;
        tg.op = realloc(tg.op, sizeof *tg.op * (size_t)tg.cap);
    }
    tg.op[tg.n++] = *o;
    return tg.depth ? NCCL_OK : group_launch();
}

NCCL_API int ncclSend(const void *buf, size_t count, int type, int peer, void *comm, void *stream) {
    Op o = {.kind = OP_SEND, .c = comm, .sbuf = buf, .count = count, .type = type, .peer = peer, .stream = stream};
    return post(&o, "ncclSend");
}

NCCL_API int ncclRecv(void *buf, size_t count, int type, int peer, void *comm, void *stream) {
    Op o = {.kind = OP_RECV, .c = comm, .rbuf = buf, .count = count, .type = type, .peer = peer, .stream = stream};
    return post(&o, "ncclRecv");
}

NCCL_API int ncclAllReduce(const void *send, void *recv, size_t count, int type, int red, void *comm, void *stream) {
    if (red < 0 || red > 4) return call_error(NCCL_INVALID_ARGUMENT, "ncclAllReduce: unknown reduction %d", red);
    if (type >= 10) return call_error(NCCL_INVALID_ARGUMENT, "ncclAllReduce: FP8 reductions are not emulated");
    Op o = {.kind = OP_ALL_REDUCE, .c = comm, .sbuf = send, .rbuf = recv, .count = count, .type = type, .red = red, .stream = stream};
    return post(&o, "ncclAllReduce");
}
