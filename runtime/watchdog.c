/* watchdog.c — deadlines and heartbeats on one thread (see watchdog.h).
 *
 * The thread sleeps in poll() on a wake pipe and the heartbeat sockets until
 * the earliest of: a deadline, the next beat to send, the moment a peer's
 * silence would become too long. Everything it learns goes into one record
 * (the first failure wins: later ones are consequences), then it tells the
 * peers and runs the abort callbacks outside the state lock. Messages on
 * the wire are fixed 256-byte records; a failure travels as its root cause
 * (what failed, which rank, who saw it) so rank 0 can relay it unchanged. */
#include "runtime/watchdog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 32
#define MAX_CB 8
#define WIRE_MAGIC 0x64737764u  /* "dswd" */
#define JOIN_MAGIC 0x6473686au  /* "dshj": heads the rendezvous blob */

enum { MSG_HELLO, MSG_WELCOME, MSG_BEAT, MSG_FAIL, MSG_BYE };

typedef struct {
    uint32_t magic;
    uint16_t kind, cause; /* cause: the RtWatchdogCause of a FAIL's root */
    int32_t rank;         /* the sender; for FAIL the rank the root cause names */
    int32_t size;         /* HELLO: the world size */
    int32_t seen_by;      /* FAIL: the rank that observed the root cause */
    char text[236];       /* FAIL: the root cause as its observer phrased it */
} Msg;
_Static_assert(sizeof(Msg) == 256, "wire record is 256 bytes");

typedef struct {
    int fd, rank;
    bool bye;         /* said goodbye: its closing is no death */
    bool silent;      /* already declared silent */
    double heard;     /* when anything last arrived */
    size_t fill;      /* bytes of `in` received so far */
    Msg in;
} Peer;

typedef struct {
    bool used, fired;
    char op[64];
    int peer;
    double deadline, timeout_ms;
} Slot;

struct RtWatchdog {
    RtWatchdogOptions o;
    pthread_mutex_t lock; /* everything below except the callbacks */
    pthread_t thread;
    int wake[2];
    bool stop, joined;
    Slot slot[SLOTS];
    Peer *peers;
    int npeers;
    double next_beat;
    atomic_bool failed;
    bool notify_pending, abort_pending, reported;
    RtWatchdogCause cause;
    int culprit;
    char error[512];
    Msg root; /* the failure as it travels */
    pthread_mutex_t cb_lock; /* held while callbacks run or change */
    struct {
        RtWatchdogAbortFn fn;
        void *ctx;
    } cb[MAX_CB];
    bool aborted; /* the callbacks have run */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void wake_thread(RtWatchdog *w) {
    char c = 1;
    if (write(w->wake[1], &c, 1) < 0) { /* full pipe: the thread is waking anyway */
    }
}

/* " during OP with rank P" for the earliest deadline in flight, or "". */
static void during(const RtWatchdog *w, char *buf, size_t n) {
    const Slot *s = NULL;
    for (int i = 0; i < SLOTS; i++)
        if (w->slot[i].used && (!s || w->slot[i].deadline < s->deadline)) s = &w->slot[i];
    buf[0] = 0;
    if (!s) return;
    if (s->peer >= 0) snprintf(buf, n, ", during %s with rank %d", s->op, s->peer);
    else snprintf(buf, n, ", during %s", s->op);
}

/* Records the first failure (lock held): `root` is what travels to the
 * other ranks, `phrase` this rank's account of it. The thread then tells
 * the peers and runs the callbacks. */
static void fail_locked(RtWatchdog *w, RtWatchdogCause cause, int culprit, const Msg *root, const char *phrase, bool with_during) {
    if (atomic_load(&w->failed)) return;
    char dur[128] = "";
    if (with_during) during(w, dur, sizeof dur);
    snprintf(w->error, sizeof w->error, "rank %d: %s%s", w->o.rank, phrase, dur);
    w->cause = cause;
    w->culprit = culprit;
    w->root = *root;
    /* rank 0 relays every failure; another rank reports only its own (the rest came from rank 0 or is rank 0's death) */
    w->notify_pending = w->o.rank == 0 || cause == RT_WD_TIMEOUT || cause == RT_WD_ABORTED;
    w->abort_pending = true;
    atomic_store(&w->failed, true);
}

static Msg fail_msg(const RtWatchdog *w, RtWatchdogCause cause, int culprit, const char *text) {
    Msg m = {.magic = WIRE_MAGIC, .kind = MSG_FAIL, .cause = (uint16_t)cause, .rank = culprit, .seen_by = w->o.rank};
    snprintf(m.text, sizeof m.text, "%.235s", text); /* the wire's limit */
    return m;
}

static bool send_msg(int fd, const Msg *m) {
    return send(fd, m, sizeof *m, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof *m;
}

/* A FAIL from `from`: take its root cause as this rank's failure. */
static void on_fail_msg(RtWatchdog *w, const Peer *from, Msg *m) {
    m->text[sizeof m->text - 1] = 0;
    char phrase[300];
    RtWatchdogCause c = (RtWatchdogCause)m->cause;
    if (c == RT_WD_TIMEOUT || c == RT_WD_ABORTED) {
        snprintf(phrase, sizeof phrase, "rank %d failed: %s", m->rank, m->text);
        c = RT_WD_PEER_FAILED;
    } else if (m->seen_by != w->o.rank && m->seen_by != m->rank) {
        snprintf(phrase, sizeof phrase, "%s (reported by rank %d)", m->text, m->seen_by);
    } else {
        snprintf(phrase, sizeof phrase, "%s", m->text);
    }
    (void)from;
    fail_locked(w, c, m->rank, m, phrase, true);
}

static void peer_close(Peer *p) {
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
}

/* Reads what peer p sent; an end of stream without a goodbye is its death. */
static void peer_read(RtWatchdog *w, Peer *p, double now) {
    for (;;) {
        ssize_t r = recv(p->fd, (char *)&p->in + p->fill, sizeof p->in - p->fill, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            if (!p->bye) {
                char phrase[160];
                snprintf(phrase, sizeof phrase, "rank %d died (its connection closed)", p->rank);
                Msg root = fail_msg(w, RT_WD_PEER_DIED, p->rank, phrase);
                fail_locked(w, RT_WD_PEER_DIED, p->rank, &root, phrase, true);
            }
            peer_close(p);
            return;
        }
        p->heard = now;
        p->fill += (size_t)r;
        if (p->fill < sizeof p->in) continue;
        p->fill = 0;
        if (p->in.magic != WIRE_MAGIC) continue;
        if (p->in.kind == MSG_BYE) p->bye = true;
        else if (p->in.kind == MSG_FAIL) on_fail_msg(w, p, &p->in);
    }
}

/* Deadlines, beats, silences (lock held); returns when to look again. */
static double tick(RtWatchdog *w, double now) {
    double next = now + 60000;
    for (int i = 0; i < SLOTS; i++) {
        Slot *s = &w->slot[i];
        if (!s->used || s->fired) continue;
        if (now >= s->deadline) {
            char phrase[200], with[32] = "";
            if (s->peer >= 0) snprintf(with, sizeof with, " with rank %d", s->peer);
            snprintf(phrase, sizeof phrase, "%s%s did not finish within %g s", s->op, with, s->timeout_ms / 1e3);
            Msg root = fail_msg(w, RT_WD_TIMEOUT, w->o.rank, phrase);
            fail_locked(w, RT_WD_TIMEOUT, w->o.rank, &root, phrase, false);
            s->fired = true; /* once; the slot stays taken until disarmed */
        } else if (s->deadline < next) {
            next = s->deadline;
        }
    }
    if (!w->npeers) return next;
    if (now >= w->next_beat) {
        Msg beat = {.magic = WIRE_MAGIC, .kind = MSG_BEAT, .rank = w->o.rank};
        for (int i = 0; i < w->npeers; i++)
            if (w->peers[i].fd >= 0) send_msg(w->peers[i].fd, &beat); /* a full buffer drops a beat: silence catches a stuck peer */
        w->next_beat = now + w->o.heartbeat_ms;
    }
    if (w->next_beat < next) next = w->next_beat;
    for (int i = 0; i < w->npeers; i++) {
        Peer *p = &w->peers[i];
        if (p->fd < 0 || p->bye || p->silent) continue;
        if (now - p->heard >= w->o.silence_ms) {
            char phrase[200];
            snprintf(phrase, sizeof phrase, "rank %d sent no heartbeat for %g s (stopped, hung, or its host is unreachable)",
                     p->rank, w->o.silence_ms / 1e3);
            Msg root = fail_msg(w, RT_WD_PEER_SILENT, p->rank, phrase);
            fail_locked(w, RT_WD_PEER_SILENT, p->rank, &root, phrase, true);
            p->silent = true;
        } else if (p->heard + w->o.silence_ms < next) {
            next = p->heard + w->o.silence_ms;
        }
    }
    return next;
}

/* Tells the peers about the failure (lock held): rank 0 everyone but the
 * rank it names, another rank just rank 0. */
static void notify(RtWatchdog *w) {
    w->notify_pending = false;
    for (int i = 0; i < w->npeers; i++)
        if (w->peers[i].fd >= 0 && w->peers[i].rank != w->root.rank) send_msg(w->peers[i].fd, &w->root);
}

static void run_callbacks(RtWatchdog *w) {
    pthread_mutex_lock(&w->cb_lock);
    w->aborted = true;
    for (int i = 0; i < MAX_CB; i++)
        if (w->cb[i].fn) w->cb[i].fn(w->cb[i].ctx);
    pthread_mutex_unlock(&w->cb_lock);
}

static void *wd_main(void *arg) {
    RtWatchdog *w = arg;
    struct pollfd *pf = calloc((size_t)w->o.size + 1, sizeof *pf);
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        double now = now_ms(), next = tick(w, now);
        if (w->notify_pending) notify(w);
        if (w->abort_pending) {
            w->abort_pending = false;
            pthread_mutex_unlock(&w->lock);
            run_callbacks(w);
            pthread_mutex_lock(&w->lock);
            continue;
        }
        int n = 0;
        pf[n++] = (struct pollfd){w->wake[0], POLLIN, 0};
        for (int i = 0; i < w->npeers; i++)
            if (w->peers[i].fd >= 0) pf[n++] = (struct pollfd){w->peers[i].fd, POLLIN, 0};
        pthread_mutex_unlock(&w->lock);
        int ms = (int)ceil(next - now);
        poll(pf, (nfds_t)n, ms < 0 ? 0 : ms);
        pthread_mutex_lock(&w->lock);
        char junk[64];
        while (read(w->wake[0], junk, sizeof junk) > 0) {
        }
        now = now_ms();
        for (int k = 1; k < n; k++) {
            if (!pf[k].revents) continue;
            for (int i = 0; i < w->npeers; i++)
                if (w->peers[i].fd == pf[k].fd) peer_read(w, &w->peers[i], now);
        }
    }
    pthread_mutex_unlock(&w->lock);
    free(pf);
    return NULL;
}

RtWatchdog *rt_watchdog_new(DiagEngine *d, const RtWatchdogOptions *o) {
    if (o->size < 1 || o->rank < 0 || o->rank >= o->size || o->timeout_ms < 0 || o->heartbeat_ms < 0 || o->silence_ms < 0) {
        diag_error(d, ((SrcLoc){0}), "watchdog: bad options (rank %d of %d, timeout %d ms, heartbeat %d ms, silence %d ms)", o->rank,
                   o->size, o->timeout_ms, o->heartbeat_ms, o->silence_ms);
        return NULL;
    }
    RtWatchdog *w = calloc(1, sizeof *w);
    w->o = *o;
    if (!w->o.timeout_ms) w->o.timeout_ms = RT_WATCHDOG_TIMEOUT_MS;
    if (!w->o.heartbeat_ms) w->o.heartbeat_ms = 1000;
    if (!w->o.silence_ms) w->o.silence_ms = 10 * w->o.heartbeat_ms;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->cb_lock, NULL);
    atomic_init(&w->failed, false);
    if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        diag_error(d, ((SrcLoc){0}), "watchdog: cannot make a pipe: %s", strerror(errno));
        free(w);
        return NULL;
    }
    int e = pthread_create(&w->thread, NULL, wd_main, w);
    if (e) {
        diag_error(d, ((SrcLoc){0}), "watchdog: cannot start its thread: %s", strerror(e));
        close(w->wake[0]);
        close(w->wake[1]);
        free(w);
        return NULL;
    }
    return w;
}

void rt_watchdog_free(RtWatchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_mutex_unlock(&w->lock);
    wake_thread(w);
    pthread_join(w->thread, NULL);
    if (w->notify_pending) notify(w); /* a failure recorded just before: the others must still hear of it */
    Msg bye = {.magic = WIRE_MAGIC, .kind = MSG_BYE, .rank = w->o.rank};
    for (int i = 0; i < w->npeers; i++) {
        Peer *p = &w->peers[i];
        if (p->fd < 0) continue;
        send_msg(p->fd, &bye);
        shutdown(p->fd, SHUT_WR);
        char junk[512]; /* drain what came, so closing sends a FIN (after the goodbye), not a reset */
        while (recv(p->fd, junk, sizeof junk, MSG_DONTWAIT) > 0) {
        }
        peer_close(p);
    }
    free(w->peers);
    close(w->wake[0]);
    close(w->wake[1]);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->cb_lock);
    free(w);
}

/* ---- joining: rendezvous, then the heartbeat links ------------------------ */

static bool wait_fd(int fd, short events, double deadline) {
    for (;;) {
        int left = (int)ceil(deadline - now_ms());
        if (left <= 0) return false;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, left);
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) return false;
    }
}

static bool io_all(int fd, void *buf, size_t n, bool sending, double deadline) {
    char *p = buf;
    while (n) {
        if (!wait_fd(fd, sending ? POLLOUT : POLLIN, deadline)) return false;
        ssize_t r = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r <= 0) {
            if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Rank 0: accepts one link per other rank, each opened by a HELLO. */
static bool accept_all(RtWatchdog *w, DiagEngine *d, int ls, Peer *peers, double deadline) {
    int got = 0, size = w->o.size;
    while (got < size - 1) {
        if (!wait_fd(ls, POLLIN, deadline)) break;
        int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) continue;
        Msg h;
        if (!io_all(fd, &h, sizeof h, false, deadline) || h.magic != WIRE_MAGIC || h.kind != MSG_HELLO) {
            close(fd); /* not one of ours */
            continue;
        }
        if (h.size != size || h.rank <= 0 || h.rank >= size || peers[h.rank - 1].fd >= 0) {
            diag_error(d, ((SrcLoc){0}), "watchdog: a process says rank %d of %d, but the world is %d%s", h.rank, h.size, size,
                       h.rank > 0 && h.rank < size && peers[h.rank - 1].fd >= 0 ? " and that rank already joined" : "");
            close(fd);
            return false;
        }
        set_nodelay(fd);
        peers[h.rank - 1].fd = fd;
        got++;
    }
    if (got == size - 1) return true;
    StrBuf missing;
    sb_init(&missing);
    int shown = 0;
    for (int r = 1; r < size && shown < 16; r++)
        if (peers[r - 1].fd < 0) sb_printf(&missing, shown++ ? ", %d" : "%d", r);
    diag_error(d, ((SrcLoc){0}), "watchdog: rank%s %s%s did not open a heartbeat link within the timeout", size - 1 - got > 1 ? "s" : "",
               missing.data, size - 1 - got > shown ? ", ..." : "");
    sb_free(&missing);
    return false;
}

static int connect_to(const char *addr, int port, double deadline) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(addr, ps, &hints, &res) != 0 || !res) return -1;
    int fd = -1;
    while (fd < 0 && now_ms() < deadline) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) break;
        int r = connect(fd, res->ai_addr, res->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline)) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            r = err ? -1 : 0;
        }
        if (r != 0) {
            close(fd);
            fd = -1;
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Rank 0's side of the join. */
static bool join_root(RtWatchdog *w, DiagEngine *d, const RtRankInfo *ri, uint32_t *head, void *blob, size_t len, Peer *peers,
                      double deadline) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t sl = sizeof sa;
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 128) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
        diag_error(d, ((SrcLoc){0}), "watchdog: rank 0 cannot listen for heartbeat links: %s", strerror(errno));
        if (ls >= 0) close(ls);
        return false;
    }
    head[0] = JOIN_MAGIC;
    head[1] = ntohs(sa.sin_port);
    memcpy(head + 2, blob, len);
    bool ok = rt_rendezvous(d, ri, head, len + 8, (int)(deadline - now_ms())) && accept_all(w, d, ls, peers, deadline);
    close(ls);
    Msg welcome = {.magic = WIRE_MAGIC, .kind = MSG_WELCOME, .rank = 0, .size = w->o.size};
    for (int i = 0; ok && i < w->o.size - 1; i++)
        if (!io_all(peers[i].fd, &welcome, sizeof welcome, true, deadline)) {
            diag_error(d, ((SrcLoc){0}), "watchdog: rank %d dropped its heartbeat link while joining", i + 1);
            ok = false;
        }
    return ok;
}

/* Another rank's side: the blob and rank 0's port, a link, the welcome. */
static bool join_leaf(RtWatchdog *w, DiagEngine *d, const RtRankInfo *ri, uint32_t *head, void *blob, size_t len, Peer *peers,
                      double deadline) {
    if (!rt_rendezvous(d, ri, head, len + 8, (int)(deadline - now_ms()))) return false;
    if (head[0] != JOIN_MAGIC || head[1] == 0 || head[1] > 65535) {
        diag_error(d, ((SrcLoc){0}), "watchdog: rank %d received a rendezvous blob without a heartbeat port (rank 0 is not a "
                   "watchdog join: mixed dscc versions?)", ri->rank);
        return false;
    }
    memcpy(blob, head + 2, len);
    int fd = connect_to(ri->master_addr, (int)head[1], deadline);
    if (fd < 0) {
        diag_error(d, ((SrcLoc){0}), "watchdog: rank %d could not open its heartbeat link to rank 0 at %s:%u", ri->rank, ri->master_addr,
                   head[1]);
        return false;
    }
    set_nodelay(fd);
    peers[0].fd = fd;
    Msg h = {.magic = WIRE_MAGIC, .kind = MSG_HELLO, .rank = ri->rank, .size = ri->size}, welcome;
    if (!io_all(fd, &h, sizeof h, true, deadline) || !io_all(fd, &welcome, sizeof welcome, false, deadline) ||
        welcome.magic != WIRE_MAGIC || welcome.kind != MSG_WELCOME) {
        diag_error(d, ((SrcLoc){0}), "watchdog: rank %d got no welcome from rank 0 within the timeout (another rank missing?)", ri->rank);
        return false;
    }
    return true;
}

bool rt_watchdog_join(RtWatchdog *w, DiagEngine *d, const RtRankInfo *ri, void *blob, size_t len, int timeout_ms) {
    if (ri->rank != w->o.rank || ri->size != w->o.size) {
        diag_error(d, ((SrcLoc){0}), "watchdog: made for rank %d of %d, joined as rank %d of %d", w->o.rank, w->o.size, ri->rank, ri->size);
        return false;
    }
    if (w->joined) {
        diag_error(d, ((SrcLoc){0}), "watchdog: joined twice");
        return false;
    }
    w->joined = true;
    if (ri->size == 1) return true;
    double deadline = now_ms() + timeout_ms;
    int np = ri->rank == 0 ? ri->size - 1 : 1;
    Peer *peers = calloc((size_t)np, sizeof *peers);
    for (int i = 0; i < np; i++) peers[i] = (Peer){.fd = -1, .rank = ri->rank == 0 ? i + 1 : 0};
    uint32_t *head = calloc(1, len + 8);
    bool ok = ri->rank == 0 ? join_root(w, d, ri, head, blob, len, peers, deadline) : join_leaf(w, d, ri, head, blob, len, peers, deadline);
    free(head);
    if (!ok) {
        for (int i = 0; i < np; i++) peer_close(&peers[i]);
        free(peers);
        return false;
    }
    pthread_mutex_lock(&w->lock);
    double now = now_ms();
    for (int i = 0; i < np; i++) peers[i].heard = now;
    w->peers = peers;
    w->npeers = np;
    w->next_beat = now;
    pthread_mutex_unlock(&w->lock);
    wake_thread(w);
    return true;
}

/* ---- callbacks, deadlines, failures ---------------------------------------- */

int rt_watchdog_add_abort(RtWatchdog *w, RtWatchdogAbortFn fn, void *ctx) {
    pthread_mutex_lock(&w->cb_lock);
    int h = -1;
    for (int i = 0; i < MAX_CB && h < 0; i++)
        if (!w->cb[i].fn) h = i;
    if (h < 0) dscc_internal_error(__FILE__, __LINE__, "more than 8 watchdog abort callbacks");
    w->cb[h].fn = fn;
    w->cb[h].ctx = ctx;
    bool late = w->aborted;
    if (late) fn(ctx);
    pthread_mutex_unlock(&w->cb_lock);
    return h;
}

void rt_watchdog_remove_abort(RtWatchdog *w, int handle) {
    if (handle < 0 || handle >= MAX_CB) return;
    pthread_mutex_lock(&w->cb_lock);
    w->cb[handle].fn = NULL;
    w->cb[handle].ctx = NULL;
    pthread_mutex_unlock(&w->cb_lock);
}

int rt_watchdog_arm(RtWatchdog *w, const char *op, int peer, int timeout_ms) {
    pthread_mutex_lock(&w->lock);
    if (atomic_load(&w->failed)) {
        pthread_mutex_unlock(&w->lock);
        return -1;
    }
    int s = -1;
    for (int i = 0; i < SLOTS && s < 0; i++)
        if (!w->slot[i].used) s = i;
    if (s < 0) dscc_internal_error(__FILE__, __LINE__, "more than 32 operations armed at once (a missing rt_watchdog_disarm?)");
    Slot *sl = &w->slot[s];
    sl->used = true;
    sl->fired = false;
    snprintf(sl->op, sizeof sl->op, "%s", op);
    sl->peer = peer;
    sl->timeout_ms = timeout_ms > 0 ? timeout_ms : w->o.timeout_ms;
    sl->deadline = now_ms() + sl->timeout_ms;
    pthread_mutex_unlock(&w->lock);
    wake_thread(w); /* it may be sleeping past the new deadline */
    return s;
}

void rt_watchdog_disarm(RtWatchdog *w, int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    pthread_mutex_lock(&w->lock);
    w->slot[slot].used = false;
    pthread_mutex_unlock(&w->lock);
}

bool rt_watchdog_fail(RtWatchdog *w, const char *why) {
    pthread_mutex_lock(&w->lock);
    bool first = !atomic_load(&w->failed);
    Msg root = fail_msg(w, RT_WD_ABORTED, w->o.rank, why);
    fail_locked(w, RT_WD_ABORTED, w->o.rank, &root, why, true);
    pthread_mutex_unlock(&w->lock);
    wake_thread(w);
    return first;
}

bool rt_watchdog_ok(const RtWatchdog *w) { return !atomic_load(&((RtWatchdog *)w)->failed); }

bool rt_watchdog_check(RtWatchdog *w, DiagEngine *d) {
    if (!atomic_load(&w->failed)) return true;
    pthread_mutex_lock(&w->lock);
    bool first = !w->reported;
    w->reported = true;
    char msg[sizeof w->error];
    memcpy(msg, w->error, sizeof msg);
    pthread_mutex_unlock(&w->lock);
    if (first) diag_error(d, ((SrcLoc){0}), "%s", msg);
    return false;
}

RtWatchdogCause rt_watchdog_cause(const RtWatchdog *w, int *rank) {
    RtWatchdog *m = (RtWatchdog *)w;
    pthread_mutex_lock(&m->lock);
    RtWatchdogCause c = atomic_load(&m->failed) ? m->cause : RT_WD_OK;
    if (rank) *rank = c == RT_WD_OK ? -1 : m->culprit;
    pthread_mutex_unlock(&m->lock);
    return c;
}

const char *rt_watchdog_error(const RtWatchdog *w) { return atomic_load(&((RtWatchdog *)w)->failed) ? w->error : ""; }

bool rt_timeout_parse(DiagEngine *d, const char *what, const char *text, int *ms) {
    char *end;
    double s = text ? strtod(text, &end) : 0;
    if (!text || !*text || *end || !(s > 0) || s > 2e6) {
        diag_error(d, ((SrcLoc){0}), "%s expects a timeout in seconds (a positive number up to 2e6), got '%s'", what, text ? text : "");
        return false;
    }
    *ms = (int)ceil(s * 1e3);
    return true;
}
