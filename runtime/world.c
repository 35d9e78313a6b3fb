/* world.c — a rank's distributed run (see world.h): topology, row split,
 * joining (device, watchdog, NCCL communicator) and the TCP gather of
 * results at rank 0. The gather speaks a small framed protocol of its own
 * on the rendezvous port, free again once the rendezvous is over: each
 * rank connects, sends {magic, rank, size, length} and its bytes. */
#include "runtime/world.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GATHER_MAGIC 0x64736367u /* "dscg" */

struct RtWorld {
    RtDistCtx ctx;
    RtCuda *cuda;
    RtNccl *nccl;
    bool failed;
    RtDevPtr bcast;     /* rt_world_bcast's device words */
    size_t bcast_bytes;
};

/* The leading positive integer of a variable ("8" or Slurm's "8(x2)"), 0 if none. */
static int env_lead_int(const char *const *env, const char *name) {
    const char *v = rt_env_get(env, name);
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    return v && end != v && x > 0 && x <= 1000000 ? (int)x : 0;
}

bool rt_world_topology(DiagEngine *d, const RtRankInfo *ri, const char *const *env, int nodes_opt, int gpn_opt, int *nodes,
                       int *gpus_per_node) {
    int W = ri->size, G = gpn_opt;
    const char *from = "--gpus-per-node";
    if (!G && nodes_opt) {
        if (W % nodes_opt) {
            diag_error(d, ((SrcLoc){0}), "--nodes %d does not divide the world of %d ranks", nodes_opt, W);
            return false;
        }
        G = W / nodes_opt;
        from = "--nodes";
    }
    static const char *local[] = {"LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"};
    for (size_t i = 0; !G && i < sizeof local / sizeof local[0]; i++)
        if ((G = env_lead_int(env, local[i]))) from = local[i];
    if (!G) {
        G = W;
        from = "one node";
    }
    if (W % G || (nodes_opt && nodes_opt * G != W)) {
        if (nodes_opt) diag_error(d, ((SrcLoc){0}), "%d ranks do not make %d nodes of %d GPUs (%s)", W, nodes_opt, G, from);
        else diag_error(d, ((SrcLoc){0}), "%d ranks do not make whole nodes of %d GPUs (%s)", W, G, from);
        return false;
    }
    *nodes = W / G;
    *gpus_per_node = G;
    return true;
}

void rt_world_rows(int64_t B, int r, int W, int64_t *first, int64_t *count) {
    int64_t base = B / W, rem = B % W;
    *count = base + (r < rem);
    *first = (int64_t)r * base + (r < rem ? r : rem);
}

int rt_world_device(const RtRankInfo *ri, const char *const *env) {
    const char *vis = rt_env_get(env, "CUDA_VISIBLE_DEVICES");
    if (vis && *vis && !strchr(vis, ',')) return 0;
    return ri->local_rank;
}

/* ---- joining ------------------------------------------------------------------ */

RtWorld *rt_world_join(DiagEngine *d, const RtRankInfo *ri, int nodes, int gpus_per_node, int device, int timeout_ms) {
    RtWorld *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->ctx = (RtDistCtx){.rank = ri->rank, .size = ri->size, .local_rank = ri->local_rank, .nodes = nodes,
                         .gpus_per_node = gpus_per_node, .timeout_ms = timeout_ms};
    int silence = timeout_ms / 2 > 3000 ? timeout_ms / 2 : 3000;
    RtWatchdogOptions wo = {.rank = ri->rank, .size = ri->size, .timeout_ms = timeout_ms,
                            .heartbeat_ms = silence / 4 < 1000 ? silence / 4 : 1000, .silence_ms = silence};
    /* NCCL makes its communicator on the current context's device. */
    if (!(w->cuda = rt_cuda_open(d, device)) || !(w->nccl = rt_nccl_open(d)) || !(w->ctx.wd = rt_watchdog_new(d, &wo)) ||
        !(w->ctx.comm = rt_nccl_comm_init(w->nccl, d, ri, w->ctx.wd, timeout_ms))) {
        w->failed = true;
        rt_world_leave(w, d, false);
        return NULL;
    }
    return w;
}

const RtDistCtx *rt_world_ctx(const RtWorld *w) { return &w->ctx; }

bool rt_world_check(RtWorld *w, DiagEngine *d) {
    if (!w || rt_watchdog_ok(w->ctx.wd)) return true;
    w->failed = true;
    return rt_watchdog_check(w->ctx.wd, d);
}

bool rt_world_barrier(RtWorld *w, DiagEngine *d, const char *what, int timeout_ms) {
    RtDevPtr p = 0;
    bool ok = rt_cuda_alloc(w->cuda, d, sizeof(float), &p) && rt_cuda_memset0(w->cuda, d, p, sizeof(float)) &&
              rt_cuda_sync(w->cuda, d) && rt_nccl_all_reduce(w->ctx.comm, d, p, p, 1, RT_NCCL_F32, RT_NCCL_SUM, NULL) &&
              rt_nccl_wait(w->ctx.comm, d, NULL, what, timeout_ms);
    if (p) rt_cuda_free(w->cuda, p);
    if (!ok) w->failed = true;
    return ok;
}

bool rt_world_bcast(RtWorld *w, DiagEngine *d, int32_t *words, size_t n, const char *what) {
    if (!w || !n) return true;
    size_t bytes = sizeof(int32_t) * n;
    if (bytes > w->bcast_bytes) {
        rt_cuda_free(w->cuda, w->bcast);
        w->bcast = 0;
        w->bcast_bytes = 0;
        if (!rt_cuda_alloc(w->cuda, d, bytes, &w->bcast)) return false;
        w->bcast_bytes = bytes;
    }
    /* a sum of rank 0's words and everyone else's zeros: rank 0's words, exactly */
    bool ok = w->ctx.rank == 0 ? rt_cuda_upload(w->cuda, d, w->bcast, words, bytes) : rt_cuda_memset0(w->cuda, d, w->bcast, bytes);
    ok = ok && rt_cuda_sync(w->cuda, d) && rt_nccl_all_reduce(w->ctx.comm, d, w->bcast, w->bcast, n, RT_NCCL_I32, RT_NCCL_SUM, NULL) &&
         rt_nccl_wait(w->ctx.comm, d, NULL, what, w->ctx.timeout_ms) && rt_cuda_download(w->cuda, d, words, w->bcast, bytes);
    if (!ok) w->failed = true;
    return ok;
}

void rt_world_fail(RtWorld *w, const char *why) {
    if (!w) return;
    w->failed = true;
    rt_watchdog_fail(w->ctx.wd, why);
}

bool rt_world_leave(RtWorld *w, DiagEngine *d, bool ok) {
    if (!w) return true;
    ok = ok && !w->failed && (!w->ctx.wd || rt_watchdog_ok(w->ctx.wd));
    bool done = true;
    if (w->ctx.comm) {
        if (ok) done = rt_nccl_comm_destroy(w->ctx.comm, d);
        else rt_nccl_comm_abort(w->ctx.comm);
    }
    rt_watchdog_free(w->ctx.wd);
    rt_cuda_free(w->cuda, w->bcast);
    rt_nccl_close(w->nccl);
    rt_cuda_close(w->cuda);
    free(w);
    return done;
}

/* ---- the gather ------------------------------------------------------------------ */

typedef struct {
    uint32_t magic, rank, size, pad;
    uint64_t len;
} Frame;

static bool world_alive(void *w) { return rt_watchdog_ok(((RtWorld *)w)->ctx.wd); }

/* Waits for fd (or, fd < 0, just sleeps a slice), giving up at the
 * deadline or when the watchdog has failed. 1 ready, 0 deadline, -1 watchdog. */
static int wait_fd(RtWorld *w, int fd, short events, double deadline) {
    return rt_sock_wait(fd, events, deadline, w ? world_alive : NULL, w);
}

static int io_all(RtWorld *w, int fd, void *buf, size_t n, bool sending, double deadline) {
    return rt_sock_io(fd, buf, n, sending, deadline, w ? world_alive : NULL, w);
}

/* The error of a wait that did not end well: the watchdog's, or the deadline's. */
static bool gather_fail(RtWorld *w, DiagEngine *d, int why, const char *fmt, int rank) {
    if (why < 0) return rt_world_check(w, d);
    char msg[200];
    snprintf(msg, sizeof msg, fmt, rank);
    diag_error(d, ((SrcLoc){0}), "%s", msg);
    rt_world_fail(w, msg);
    return false;
}

static bool gather_send(RtWorld *w, DiagEngine *d, const RtRankInfo *ri, const struct sockaddr_in *sa, const void *mine,
                        size_t len, double deadline) {
    for (;;) { /* rank 0 may not be listening yet */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), r = -1, why = 1;
        if (fd < 0) break;
        if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0) r = 0;
        else if (errno == EINPROGRESS && (why = wait_fd(w, fd, POLLOUT, deadline)) > 0) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            r = err ? -1 : 0;
        }
        if (r == 0) {
            Frame f = {GATHER_MAGIC, (uint32_t)ri->rank, (uint32_t)ri->size, 0, len};
            char ack = 0;
            why = io_all(w, fd, &f, sizeof f, true, deadline);
            if (why > 0) why = io_all(w, fd, (void *)mine, len, true, deadline);
            if (why > 0) why = io_all(w, fd, &ack, 1, false, deadline); /* rank 0 has it all */
            close(fd);
            if (why > 0) return true;
            return gather_fail(w, d, why, "gather: rank %d could not send its results to rank 0", ri->rank);
        }
        close(fd);
        if (why < 0 || rt_now_ms() > deadline || (why = wait_fd(w, -1, 0, rt_now_ms() + 50)) < 0) break;
    }
    return gather_fail(w, d, w && !rt_watchdog_ok(w->ctx.wd) ? -1 : 0,
                       "gather: rank %d could not reach rank 0 within the timeout", ri->rank);
}

static int gather_listen(DiagEngine *d, const RtRankInfo *ri, const struct sockaddr_in *sa) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in any = *sa;
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    if (ls >= 0) setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (const struct sockaddr *)&any, sizeof any) != 0 || listen(ls, 128) != 0) {
        diag_error(d, ((SrcLoc){0}), "gather: rank 0 cannot listen on port %d: %s", ri->master_port, strerror(errno));
        if (ls >= 0) close(ls);
        return -1;
    }
    return ls;
}

/* One rank's frame and bytes into parts[rank]; 1, or 0/-1 as wait_fd. */
static int gather_accept(RtWorld *w, DiagEngine *d, const RtRankInfo *ri, int ls, void **parts, size_t *lens, double deadline) {
    int why = wait_fd(w, ls, POLLIN, deadline);
    if (why <= 0) return why;
    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
    if (fd < 0) return 1;
    Frame f;
    if ((why = io_all(w, fd, &f, sizeof f, false, deadline)) <= 0 || f.magic != GATHER_MAGIC) {
        close(fd); /* not one of ours (or gone): keep waiting for the real ranks */
        return why < 0 ? -1 : 1;
    }
    if ((int)f.size != ri->size || f.rank == 0 || (int)f.rank >= ri->size || parts[f.rank] || f.len > ((uint64_t)1 << 40)) {
        diag_error(d, ((SrcLoc){0}), "gather: a process says rank %u of %u (%llu bytes), but the world is %d", f.rank, f.size,
                   (unsigned long long)f.len, ri->size);
        close(fd);
        return 0;
    }
    void *buf = malloc(f.len ? f.len : 1);
    char ack = 1;
    if (buf && (why = io_all(w, fd, buf, f.len, false, deadline)) > 0) why = io_all(w, fd, &ack, 1, true, deadline);
    close(fd);
    if (!buf || why <= 0) {
        free(buf);
        if (buf && why == 0) diag_error(d, ((SrcLoc){0}), "gather: rank %u stopped sending its results", f.rank);
        return buf ? why : 0;
    }
    parts[f.rank] = buf;
    lens[f.rank] = f.len;
    return 1;
}

static bool gather_root(RtWorld *w, DiagEngine *d, const RtRankInfo *ri, const struct sockaddr_in *sa, const void *mine,
                        size_t len, void **all, size_t *lens, double deadline) {
    int ls = gather_listen(d, ri, sa), got = 1, why = 1;
    if (ls < 0) return false;
    void **parts = calloc((size_t)ri->size, sizeof *parts);
    while (got < ri->size && (why = gather_accept(w, d, ri, ls, parts, lens, deadline)) > 0) {
        got = 1;
        for (int r = 1; r < ri->size; r++) got += parts[r] != NULL;
    }
    close(ls);
    bool ok = got == ri->size;
    if (!ok && why < 0) rt_world_check(w, d);
    else if (!ok && diag_error_count(d) == 0) {
        int missing = 1;
        while (parts[missing]) missing++;
        gather_fail(w, d, 0, "gather: rank %d sent no results within the timeout", missing);
    } else if (!ok) rt_world_fail(w, "gather: a rank's results did not arrive");
    size_t total = len;
    for (int r = 1; ok && r < ri->size; r++) total += lens[r];
    char *out = ok ? malloc(total ? total : 1) : NULL;
    if (out) {
        memcpy(out, mine, len);
        lens[0] = len;
        for (size_t r = 1, at = len; r < (size_t)ri->size; at += lens[r++]) memcpy(out + at, parts[r], lens[r]);
    }
    for (int r = 1; r < ri->size; r++) free(parts[r]);
    free(parts);
    *all = out;
    return out != NULL;
}

bool rt_world_gather(RtWorld *w, DiagEngine *d, const RtRankInfo *ri, const void *mine, size_t len, void **all, size_t *lens,
                     int timeout_ms) {
    *all = NULL;
    if (ri->size == 1) {
        *all = malloc(len ? len : 1);
        if (*all) memcpy(*all, mine, len);
        lens[0] = len;
        return *all != NULL;
    }
    struct sockaddr_in sa;
    if (!rt_master_sockaddr(d, ri, "gather", &sa)) return false;
    double deadline = rt_now_ms() + timeout_ms;
    if (ri->rank != 0) return gather_send(w, d, ri, &sa, mine, len, deadline);
    return gather_root(w, d, ri, &sa, mine, len, all, lens, deadline);
}
