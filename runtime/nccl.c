/* nccl.c — NCCL through dlopen, non-blocking communicators, bounded waits
 * (see nccl.h).
 *
 * Every NCCL call on a communicator happens under its lock, and NCCL's
 * answers fall in three kinds: success; ncclInProgress, after which
 * `settle` polls ncclCommGetAsyncError (taking the lock for each poll only,
 * so the watchdog's abort can get in) under a watchdog deadline; and
 * errors, which go to the watchdog first (so one error is reported, with
 * the operation in flight, and the other ranks hear of it) and then abort
 * the communicator through the callback. Only the types NCCL's ABI needs
 * are declared here: ncclConfig_t as of NCCL 2.17 (newer libraries read the
 * fields its `size` covers and default the rest). */
#include "runtime/nccl.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NCCL_OK = 0, NCCL_IN_PROGRESS = 7, CU_NOT_READY = 600, ABORTED = -1 /* ours: no communicator left */ };

#define NCCL_MIN_VERSION 21700 /* 2.17.0: non-blocking init, finalize, ncclGetLastError, the config below */

typedef struct { /* ncclConfig_t, the 2.17 layout */
    size_t size;
    unsigned magic, version;
    int blocking, cga_cluster_size, min_ctas, max_ctas;
    const char *net_name;
    int split_share;
} NcclConfig;

/* Where the toolkit's nccl.h is at hand, the declarations here must agree with it. */
#if defined(DSCC_HAVE_NVRTC) && defined(__has_include)
#if __has_include(<nccl.h>)
#include <nccl.h>
#include <stddef.h>
_Static_assert(sizeof(RtNcclId) == sizeof(ncclUniqueId), "ncclUniqueId");
_Static_assert(offsetof(NcclConfig, blocking) == offsetof(ncclConfig_t, blocking), "ncclConfig_t.blocking");
_Static_assert(offsetof(NcclConfig, net_name) == offsetof(ncclConfig_t, netName), "ncclConfig_t.netName");
_Static_assert(offsetof(NcclConfig, split_share) == offsetof(ncclConfig_t, splitShare), "ncclConfig_t.splitShare");
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(NCCL_IN_PROGRESS, ncclInProgress) && SAME(ncclRemoteError, 6), "ncclResult_t");
_Static_assert(SAME(RT_NCCL_U8, ncclUint8) && SAME(RT_NCCL_I32, ncclInt32) && SAME(RT_NCCL_I64, ncclInt64) && SAME(RT_NCCL_F16, ncclFloat16) &&
                   SAME(RT_NCCL_F32, ncclFloat32) && SAME(RT_NCCL_BF16, ncclBfloat16) && SAME(RT_NCCL_FP8E4M3, ncclFloat8e4m3) &&
                   SAME(RT_NCCL_FP8E5M2, ncclFloat8e5m2),
               "ncclDataType_t");
_Static_assert(SAME(RT_NCCL_SUM, ncclSum) && SAME(RT_NCCL_MAX, ncclMax) && SAME(RT_NCCL_AVG, ncclAvg), "ncclRedOp_t");
#undef SAME
#endif
#endif

#define NCCL_FUNCS(X)                                                                                                  \
    X(int, ncclGetVersion, (int *))                                                                                    \
    X(int, ncclGetUniqueId, (RtNcclId *))                                                                              \
    X(int, ncclCommInitRankConfig, (void **, int, RtNcclId, int, void *))                                        \
    X(int, ncclCommFinalize, (void *))                                                                                 \
    X(int, ncclCommDestroy, (void *))                                                                                  \
    X(int, ncclCommAbort, (void *))                                                                                    \
    X(int, ncclCommGetAsyncError, (void *, int *))                                                                     \
    X(const char *, ncclGetErrorString, (int))                                                                         \
    X(const char *, ncclGetLastError, (void *))                                                                        \
    X(int, ncclGroupStart, (void))                                                                                     \
    X(int, ncclGroupEnd, (void))                                                                                       \
    X(int, ncclSend, (const void *, size_t, int, int, void *, void *))                                                 \
    X(int, ncclRecv, (void *, size_t, int, int, void *, void *))                                                       \
    X(int, ncclAllReduce, (const void *, void *, size_t, int, int, void *, void *))

struct RtNccl {
    void *lib;
#define X(ret, name, args) ret(*name) args;
    NCCL_FUNCS(X)
#undef X
    int version;
    pthread_mutex_t cu_lock; /* the driver, loaded by the first wait */
    void *cuda;
    int (*cuStreamQuery)(void *);
    int (*cuGetErrorName)(int, const char **);
};

struct RtNcclComm {
    RtNccl *n;
    pthread_mutex_t lock; /* the handle; held by the main thread from group start to group end */
    void *comm;           /* NULL once aborted or destroyed */
    bool abort_requested; /* the watchdog fired (perhaps before comm existed) */
    bool in_group, group_failed;
    int rank, size, timeout_ms;
    RtWatchdog *w;
    bool own_w;
    int cb;
};

const char *rt_nccl_result_name(int r) {
    static const char *names[] = {"ncclSuccess",       "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError",
                                  "ncclInvalidArgument", "ncclInvalidUsage",    "ncclRemoteError", "ncclInProgress"};
    return r >= 0 && r < (int)(sizeof names / sizeof names[0]) ? names[r] : "an unknown NCCL result";
}

size_t rt_nccl_type_size(RtNcclType t) {
    static const size_t size[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
    return (unsigned)t < sizeof size / sizeof size[0] ? size[t] : 0;
}

static void *dev(RtDevPtr p) { return (void *)(uintptr_t)p; }

static void sleep_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* ---- the library ------------------------------------------------------------ */

static int fake_error_name(int r, const char **name) {
    *name = r == 0 ? "CUDA_SUCCESS" : "CUDA_ERROR (substituted driver)";
    return 0;
}

RtNccl *rt_nccl_open(DiagEngine *d) {
    RtNccl *n = calloc(1, sizeof *n);
    n->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        diag_error(d, ((SrcLoc){0}), "NCCL is not available: cannot load libnccl.so.2 (%s); runs on more than one GPU need NCCL 2.17 or newer",
                   dlerror());
        free(n);
        return NULL;
    }
#define X(ret, name, args)                                                                                             \
    if (!(*(void **)&n->name = dlsym(n->lib, #name))) {                                                                \
        diag_error(d, ((SrcLoc){0}), "NCCL is not available: libnccl.so.2 lacks %s (older than 2.17?)", #name);        \
        free(n);                                                                                                       \
        return NULL;                                                                                                   \
    }
    NCCL_FUNCS(X)
#undef X
    if (n->ncclGetVersion(&n->version) != NCCL_OK || n->version < NCCL_MIN_VERSION) {
        diag_error(d, ((SrcLoc){0}), "NCCL is not available: libnccl.so.2 is version %d.%d.%d; dscc needs 2.17 or newer (non-blocking "
                   "communicators)", n->version / 10000, n->version / 100 % 100, n->version % 100);
        free(n);
        return NULL;
    }
    pthread_mutex_init(&n->cu_lock, NULL);
    return n;
}

RtNccl *rt_nccl_open_api(DiagEngine *d, const RtNcclApi *api) {
    RtNccl *n = calloc(1, sizeof *n);
    n->ncclGetVersion = api->get_version;
    n->ncclGetUniqueId = api->get_unique_id;
    n->ncclCommInitRankConfig = api->comm_init_rank_config;
    n->ncclCommFinalize = api->comm_finalize;
    n->ncclCommDestroy = api->comm_destroy;
    n->ncclCommAbort = api->comm_abort;
    n->ncclCommGetAsyncError = api->comm_get_async_error;
    n->ncclGetErrorString = api->get_error_string;
    n->ncclGetLastError = api->get_last_error;
    n->ncclGroupStart = api->group_start;
    n->ncclGroupEnd = api->group_end;
    n->ncclSend = api->send;
    n->ncclRecv = api->recv;
    n->ncclAllReduce = api->all_reduce;
    n->cuStreamQuery = api->stream_query;
    n->cuGetErrorName = fake_error_name;
    if (n->ncclGetVersion(&n->version) != NCCL_OK) {
        diag_error(d, ((SrcLoc){0}), "NCCL is not available: the substituted ncclGetVersion failed");
        free(n);
        return NULL;
    }
    pthread_mutex_init(&n->cu_lock, NULL);
    return n;
}

void rt_nccl_close(RtNccl *n) {
    if (!n) return;
    pthread_mutex_destroy(&n->cu_lock);
    free(n); /* no dlclose: NCCL's bootstrap and proxy threads may still run its code */
}

int rt_nccl_version(const RtNccl *n) { return n->version; }

bool rt_nccl_unique_id(RtNccl *n, DiagEngine *d, RtNcclId *id) {
    int r = n->ncclGetUniqueId(id);
    if (r == NCCL_OK) return true;
    const char *last = n->ncclGetLastError(NULL);
    diag_error(d, ((SrcLoc){0}), "NCCL ncclGetUniqueId failed: %s (%s)%s%s", rt_nccl_result_name(r), n->ncclGetErrorString(r),
               last && *last ? "; NCCL says: " : "", last ? last : "");
    return false;
}

static bool load_cuda(RtNccl *n, DiagEngine *d) {
    pthread_mutex_lock(&n->cu_lock);
    if (!n->cuStreamQuery && !n->cuda && (n->cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL))) {
        *(void **)&n->cuStreamQuery = dlsym(n->cuda, "cuStreamQuery");
        *(void **)&n->cuGetErrorName = dlsym(n->cuda, "cuGetErrorName");
    }
    bool ok = n->cuStreamQuery && n->cuGetErrorName;
    pthread_mutex_unlock(&n->cu_lock);
    if (!ok) diag_error(d, ((SrcLoc){0}), "NCCL waits need the CUDA driver (libcuda.so.1 with cuStreamQuery), which is not loadable here");
    return ok;
}

/* ---- failures ------------------------------------------------------------------ */

/* This rank's own failure: recorded by the watchdog (which tells the other
 * ranks and aborts the communicator) and reported once from there; when the
 * watchdog had already failed, its cause is the error and this a note. */
static bool comm_fail(RtNcclComm *c, DiagEngine *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool comm_fail(RtNcclComm *c, DiagEngine *d, const char *fmt, ...) {
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    bool first = rt_watchdog_fail(c->w, why);
    rt_watchdog_check(c->w, d);
    if (!first) diag_note(d, ((SrcLoc){0}), "then on rank %d: %s", c->rank, why);
    return false;
}

static bool nccl_error(RtNcclComm *c, DiagEngine *d, int r, const char *call, const char *last, int line) {
    return comm_fail(c, d, "NCCL %s failed: %s (%s)%s%s [runtime/nccl.c:%d]", call, rt_nccl_result_name(r), c->n->ncclGetErrorString(r),
                     last && *last ? "; NCCL says: " : "", last ? last : "", line);
}

/* The communicator is gone: the watchdog aborted it (its error is the one
 * to report) or it was aborted on purpose. */
static bool aborted(RtNcclComm *c, DiagEngine *d, const char *call) {
    if (rt_watchdog_check(c->w, d)) diag_error(d, ((SrcLoc){0}), "NCCL %s on rank %d: the communicator was already aborted", call, c->rank);
    return false;
}

/* ncclGetLastError's text, copied while the handle is safe (lock held). */
static void last_error(RtNcclComm *c, char *buf, size_t n) {
    const char *s = c->n->ncclGetLastError(c->comm);
    snprintf(buf, n, "%s", s ? s : "");
}

static void comm_lock(RtNcclComm *c) {
    if (!c->in_group) pthread_mutex_lock(&c->lock);
}

static void comm_unlock(RtNcclComm *c) {
    if (!c->in_group) pthread_mutex_unlock(&c->lock);
}

/* One poll of the asynchronous state: NCCL_OK, NCCL_IN_PROGRESS, ABORTED or an error (last filled). */
static int poll_state(RtNcclComm *c, char *last, size_t n) {
    int st = ABORTED;
    pthread_mutex_lock(&c->lock);
    if (c->comm) {
        int r = c->n->ncclCommGetAsyncError(c->comm, &st);
        if (r != NCCL_OK) st = r;
        if (st != NCCL_OK && st != NCCL_IN_PROGRESS) last_error(c, last, n);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* After ncclInProgress: polls until NCCL is done with the call, under a deadline. */
static bool settle(RtNcclComm *c, DiagEngine *d, const char *call) {
    int slot = rt_watchdog_arm(c->w, call, -1, c->timeout_ms);
    if (slot < 0) return aborted(c, d, call);
    bool ok = false;
    char last[512] = "";
    for (long us = 20;; us = us < 1000 ? us * 2 : 1000) {
        int st = poll_state(c, last, sizeof last);
        if (st == NCCL_OK) {
            ok = true;
            break;
        }
        if (st == ABORTED || !rt_watchdog_ok(c->w)) {
            aborted(c, d, call);
            break;
        }
        if (st != NCCL_IN_PROGRESS) {
            nccl_error(c, d, st, call, last, __LINE__);
            break;
        }
        sleep_us(us);
    }
    rt_watchdog_disarm(c->w, slot);
    return ok;
}

/* What a call's result means; `last` is NCCL's text for an error. */
static bool finish(RtNcclComm *c, DiagEngine *d, int r, const char *call, const char *last, int line) {
    if (r == NCCL_OK || (r == NCCL_IN_PROGRESS && c->in_group)) return true;
    if (r == ABORTED) return aborted(c, d, call);
    if (r == NCCL_IN_PROGRESS) return settle(c, d, call);
    if (c->in_group) c->group_failed = true;
    return nccl_error(c, d, r, call, last, line);
}

/* ---- communicators ---------------------------------------------------------------- */

/* The watchdog's abort, on its thread. */
static void on_abort(void *ctx) {
    RtNcclComm *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->abort_requested = true;
    if (c->comm) c->n->ncclCommAbort(c->comm); /* makes NCCL's kernels and threads give up; frees the communicator */
    c->comm = NULL;
    pthread_mutex_unlock(&c->lock);
}

static void comm_free(RtNcclComm *c) {
    rt_watchdog_remove_abort(c->w, c->cb); /* waits for a callback in progress */
    if (c->own_w) rt_watchdog_free(c->w);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

RtNcclComm *rt_nccl_comm_init_rank(RtNccl *n, DiagEngine *d, const RtNcclId *id, int rank, int size, RtWatchdog *w, int timeout_ms) {
    if (size < 1 || rank < 0 || rank >= size) {
        diag_error(d, ((SrcLoc){0}), "NCCL: rank %d of a world of %d", rank, size);
        return NULL;
    }
    RtNcclComm *c = calloc(1, sizeof *c);
    *c = (RtNcclComm){.n = n, .rank = rank, .size = size, .timeout_ms = timeout_ms, .w = w};
    pthread_mutex_init(&c->lock, NULL);
    if (!w) {
        c->own_w = true;
        if (!(c->w = rt_watchdog_new(d, &(RtWatchdogOptions){.rank = rank, .size = size, .timeout_ms = timeout_ms > 0 ? timeout_ms : 0}))) {
            pthread_mutex_destroy(&c->lock);
            free(c);
            return NULL;
        }
    }
    c->cb = rt_watchdog_add_abort(c->w, on_abort, c);
    NcclConfig cfg = {sizeof cfg, 0xcafebeef, NCCL_MIN_VERSION, 0, INT_MIN, INT_MIN, INT_MIN, NULL, INT_MIN}; /* blocking = 0 */
    char call[96], last[512] = "";
    snprintf(call, sizeof call, "ncclCommInitRankConfig (rank %d of %d)", rank, size);
    void *comm = NULL;
    int r = n->ncclCommInitRankConfig(&comm, size, *id, rank, &cfg);
    pthread_mutex_lock(&c->lock);
    if (comm && (c->abort_requested || (r != NCCL_OK && r != NCCL_IN_PROGRESS))) {
        c->comm = comm;
        last_error(c, last, sizeof last);
        n->ncclCommAbort(comm);
        comm = NULL;
    } else if (!comm && r != NCCL_OK && r != NCCL_IN_PROGRESS) {
        last_error(c, last, sizeof last);
    }
    c->comm = comm;
    pthread_mutex_unlock(&c->lock);
    if (r == NCCL_OK && !comm) r = ABORTED;
    if (!finish(c, d, r, call, last, __LINE__)) {
        rt_nccl_comm_abort(c);
        return NULL;
    }
    return c;
}

RtNcclComm *rt_nccl_comm_init(RtNccl *n, DiagEngine *d, const RtRankInfo *ri, RtWatchdog *w, int timeout_ms) {
    RtNcclId id;
    memset(&id, 0, sizeof id);
    if (ri->rank == 0 && !rt_nccl_unique_id(n, d, &id)) return NULL;
    if (!rt_watchdog_join(w, d, ri, &id, sizeof id, timeout_ms)) return NULL;
    return rt_nccl_comm_init_rank(n, d, &id, ri->rank, ri->size, w, timeout_ms);
}

bool rt_nccl_comm_destroy(RtNcclComm *c, DiagEngine *d) {
    if (!c) return true;
    if (c->in_group) rt_nccl_group_end(c, d, "an unfinished group");
    pthread_mutex_lock(&c->lock);
    char last[512] = "";
    int r = c->comm ? c->n->ncclCommFinalize(c->comm) : ABORTED;
    if (r != NCCL_OK && r != NCCL_IN_PROGRESS && r != ABORTED) last_error(c, last, sizeof last);
    pthread_mutex_unlock(&c->lock);
    bool ok = finish(c, d, r, "ncclCommFinalize", last, __LINE__);
    pthread_mutex_lock(&c->lock);
    if (c->comm) {
        r = ok ? c->n->ncclCommDestroy(c->comm) : c->n->ncclCommAbort(c->comm);
        if (ok && r != NCCL_OK) {
            last_error(c, last, sizeof last);
            c->comm = NULL;
            pthread_mutex_unlock(&c->lock);
            ok = nccl_error(c, d, r, "ncclCommDestroy", last, __LINE__);
            pthread_mutex_lock(&c->lock);
        }
        c->comm = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    comm_free(c);
    return ok;
}

void rt_nccl_comm_abort(RtNcclComm *c) {
    if (!c) return;
    if (c->in_group) { /* close NCCL's group before the communicator goes */
        c->n->ncclGroupEnd();
        c->in_group = false;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&c->lock);
    if (c->comm) c->n->ncclCommAbort(c->comm);
    c->comm = NULL;
    pthread_mutex_unlock(&c->lock);
    comm_free(c);
}

int rt_nccl_comm_rank(const RtNcclComm *c) { return c->rank; }
int rt_nccl_comm_size(const RtNcclComm *c) { return c->size; }
RtWatchdog *rt_nccl_comm_watchdog(const RtNcclComm *c) { return c->w; }

/* ---- operations ------------------------------------------------------------------- */

bool rt_nccl_group_start(RtNcclComm *c, DiagEngine *d) {
    if (c->in_group) return comm_fail(c, d, "NCCL: rt_nccl_group_start inside a group (groups do not nest here)");
    pthread_mutex_lock(&c->lock);
    if (!c->comm) {
        pthread_mutex_unlock(&c->lock);
        return aborted(c, d, "ncclGroupStart");
    }
    int r = c->n->ncclGroupStart();
    if (r != NCCL_OK) {
        char last[512];
        last_error(c, last, sizeof last);
        pthread_mutex_unlock(&c->lock);
        return nccl_error(c, d, r, "ncclGroupStart", last, __LINE__);
    }
    c->in_group = true;
    c->group_failed = false;
    return true;
}

bool rt_nccl_group_end(RtNcclComm *c, DiagEngine *d, const char *what) {
    if (!c->in_group) return comm_fail(c, d, "NCCL: rt_nccl_group_end of %s without a group start", what);
    int r = c->n->ncclGroupEnd();
    char last[512] = "", call[160];
    if (r != NCCL_OK && r != NCCL_IN_PROGRESS) last_error(c, last, sizeof last);
    c->in_group = false;
    pthread_mutex_unlock(&c->lock);
    if (c->group_failed) return false; /* reported where it failed */
    snprintf(call, sizeof call, "ncclGroupEnd of %s", what);
    return finish(c, d, r, call, last, __LINE__);
}

static bool bad_peer(RtNcclComm *c, DiagEngine *d, const char *call, int peer) {
    if (peer >= 0 && peer < c->size) return false;
    if (c->in_group) c->group_failed = true;
    comm_fail(c, d, "NCCL %s: there is no rank %d in a world of %d", call, peer, c->size);
    return true;
}

static bool p2p(RtNcclComm *c, DiagEngine *d, bool send, RtDevPtr buf, size_t count, RtNcclType t, int peer, void *stream) {
    char call[128], last[512] = "";
    snprintf(call, sizeof call, "%s of %zu bytes %s rank %d", send ? "ncclSend" : "ncclRecv", count * rt_nccl_type_size(t),
             send ? "to" : "from", peer);
    if (bad_peer(c, d, call, peer)) return false;
    comm_lock(c);
    int r = ABORTED;
    if (c->comm) r = send ? c->n->ncclSend(dev(buf), count, (int)t, peer, c->comm, stream) : c->n->ncclRecv(dev(buf), count, (int)t, peer, c->comm, stream);
    if (r != NCCL_OK && r != NCCL_IN_PROGRESS && r != ABORTED) last_error(c, last, sizeof last);
    comm_unlock(c);
    return finish(c, d, r, call, last, __LINE__);
}

bool rt_nccl_send(RtNcclComm *c, DiagEngine *d, RtDevPtr buf, size_t count, RtNcclType t, int peer, void *stream) {
    return p2p(c, d, true, buf, count, t, peer, stream);
}

bool rt_nccl_recv(RtNcclComm *c, DiagEngine *d, RtDevPtr buf, size_t count, RtNcclType t, int peer, void *stream) {
    return p2p(c, d, false, buf, count, t, peer, stream);
}

bool rt_nccl_all_reduce(RtNcclComm *c, DiagEngine *d, RtDevPtr send, RtDevPtr recv, size_t count, RtNcclType t, RtNcclOp op,
                        void *stream) {
    char call[96], last[512] = "";
    snprintf(call, sizeof call, "ncclAllReduce of %zu bytes", count * rt_nccl_type_size(t));
    comm_lock(c);
    int r = c->comm ? c->n->ncclAllReduce(dev(send), dev(recv), count, (int)t, (int)op, c->comm, stream) : ABORTED;
    if (r != NCCL_OK && r != NCCL_IN_PROGRESS && r != ABORTED) last_error(c, last, sizeof last);
    comm_unlock(c);
    return finish(c, d, r, call, last, __LINE__);
}

bool rt_nccl_all_to_allv(RtNcclComm *c, DiagEngine *d, RtDevPtr send, const size_t *send_counts, const size_t *send_offsets,
                         RtDevPtr recv, const size_t *recv_counts, const size_t *recv_offsets, RtNcclType t, void *stream) {
    size_t es = rt_nccl_type_size(t);
    if (!rt_nccl_group_start(c, d)) return false;
    bool ok = true;
    for (int p = 0; ok && p < c->size; p++) /* the same calls in the same order on every rank, zero-size ones too */
        ok = rt_nccl_send(c, d, send + send_offsets[p] * es, send_counts[p], t, p, stream) &&
             rt_nccl_recv(c, d, recv + recv_offsets[p] * es, recv_counts[p], t, p, stream);
    return rt_nccl_group_end(c, d, "all-to-all") && ok;
}

bool rt_nccl_all_to_all(RtNcclComm *c, DiagEngine *d, RtDevPtr send, RtDevPtr recv, size_t count, RtNcclType t, void *stream) {
    size_t *v = malloc(sizeof *v * 2 * (size_t)c->size);
    for (int p = 0; p < c->size; p++) v[p] = count, v[c->size + p] = (size_t)p * count;
    bool ok = rt_nccl_all_to_allv(c, d, send, v, v + c->size, recv, v, v + c->size, t, stream);
    free(v);
    return ok;
}

/* ---- waiting ------------------------------------------------------------------------ */

/* One look at the communicator while `what` is in flight: false after reporting. */
static bool check_state(RtNcclComm *c, DiagEngine *d, const char *what) {
    char last[512] = "";
    int st = poll_state(c, last, sizeof last);
    if (st == ABORTED || !rt_watchdog_ok(c->w)) return aborted(c, d, what);
    if (st == NCCL_OK || st == NCCL_IN_PROGRESS) return true;
    return nccl_error(c, d, st, what, last, __LINE__);
}

bool rt_nccl_check(RtNcclComm *c, DiagEngine *d) { return check_state(c, d, "an operation in flight"); }

bool rt_nccl_wait(RtNcclComm *c, DiagEngine *d, void *stream, const char *what, int timeout_ms) {
    if (!load_cuda(c->n, d)) return false;
    int slot = rt_watchdog_arm(c->w, what, -1, timeout_ms > 0 ? timeout_ms : c->timeout_ms);
    if (slot < 0) return aborted(c, d, what);
    bool ok = false;
    for (long us = 20;; us = us < 1000 ? us * 2 : 1000) {
        int q = c->n->cuStreamQuery(stream);
        if (q != 0 && q != CU_NOT_READY) {
            const char *name = "?";
            c->n->cuGetErrorName(q, &name);
            comm_fail(c, d, "CUDA error %s while waiting for %s", name, what);
            break;
        }
        if (!check_state(c, d, what)) break;
        if (q == 0) {
            ok = true;
            break;
        }
        sleep_us(us);
    }
    rt_watchdog_disarm(c->w, slot);
    return ok;
}
