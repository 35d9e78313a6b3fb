/* watchdog.h — bounds every blocking operation of a distributed run, so a
 * rank that dies or hangs makes the others stop with an error naming it
 * instead of hanging with them.
 *
 * One thread per process holds the deadlines of the operations in flight
 * (the runtime arms one around each NCCL wait, init or barrier) and a
 * heartbeat link to the other ranks, star-shaped through rank 0: every rank
 * keeps one TCP connection to rank 0, both ends send a beat every
 * heartbeat_ms, and rank 0 relays any failure it hears of to everyone. A
 * deadline that passes, a peer whose connection closes without a goodbye
 * (its process is gone: the kernel closes the socket at once) or that falls
 * silent (stopped, or its host unreachable) makes the watchdog record one
 * error naming the rank and the operation and call the abort callbacks
 * (ncclCommAbort of each communicator) once, so whatever the main thread is
 * blocked on returns. The thread never touches a DiagEngine (they are not
 * thread-safe): the main thread reports the error with rt_watchdog_check.
 * Nothing here needs a GPU. */
#ifndef DSCC_RT_WATCHDOG_H
#define DSCC_RT_WATCHDOG_H

#include "runtime/dist.h"

#define RT_WATCHDOG_TIMEOUT_MS 300000 /* default deadline of an operation: 5 minutes */

typedef enum {
    RT_WD_OK,          /* nothing went wrong */
    RT_WD_TIMEOUT,     /* an operation of this rank passed its deadline */
    RT_WD_PEER_DIED,   /* a rank's connection closed without a goodbye: its process is gone */
    RT_WD_PEER_SILENT, /* a rank sent no heartbeat for silence_ms: stopped, hung host, or unreachable */
    RT_WD_PEER_FAILED, /* another rank failed on its own (its watchdog fired, or its runtime gave up) */
    RT_WD_ABORTED,     /* this rank's runtime gave up (rt_watchdog_fail: an NCCL error, say) */
} RtWatchdogCause;

typedef struct {
    int rank, size;
    int timeout_ms;   /* deadline of an operation armed with timeout_ms <= 0; 0 = RT_WATCHDOG_TIMEOUT_MS */
    int heartbeat_ms; /* interval between beats; 0 = 1000 */
    int silence_ms;   /* a peer silent this long is declared hung; 0 = 10 x heartbeat_ms */
} RtWatchdogOptions;

typedef struct RtWatchdog RtWatchdog;

/* Called on the watchdog's thread, once, at the first failure; must be
 * safe against the main thread's use of what it aborts (RtNcclComm locks). */
typedef void (*RtWatchdogAbortFn)(void *ctx);

/* Starts the thread (deadlines only until rt_watchdog_join). NULL after
 * reporting bad options or a failure to start the thread. */
RtWatchdog *rt_watchdog_new(DiagEngine *d, const RtWatchdogOptions *o);
/* Says goodbye to the peers (so they do not take this rank's exit for a
 * death), stops and joins the thread. NULL ok. */
void rt_watchdog_free(RtWatchdog *w);

/* The rendezvous of rt_rendezvous (rank 0 hands every rank `len` bytes of
 * blob: the ncclUniqueId) plus the heartbeat links: rank 0 listens on a
 * free port it sends along with the blob, every other rank connects to it,
 * and all return once every link is up (a barrier). All within timeout_ms;
 * errors name the ranks that never came. ri's rank and size must be the
 * watchdog's. Call once. */
bool rt_watchdog_join(RtWatchdog *w, DiagEngine *d, const RtRankInfo *ri, void *blob, size_t len, int timeout_ms);

/* Registers an abort callback (up to 8); returns its handle for removal.
 * If the watchdog has already failed the callback runs at once. */
int rt_watchdog_add_abort(RtWatchdog *w, RtWatchdogAbortFn fn, void *ctx);
/* Unregisters; waits for a callback already running, so ctx may be freed
 * afterwards. */
void rt_watchdog_remove_abort(RtWatchdog *w, int handle);

/* Arms a deadline around operation `op` (copied, up to 63 characters) that
 * waits on rank `peer` (-1: on every rank, a collective), timeout_ms from
 * now (<= 0: the watchdog's default). Returns the slot to disarm, or -1
 * when the watchdog has already failed (do not start the operation). */
int rt_watchdog_arm(RtWatchdog *w, const char *op, int peer, int timeout_ms);
void rt_watchdog_disarm(RtWatchdog *w, int slot);

/* Records a failure of this rank's own (`why`, e.g. an NCCL error text),
 * tells the other ranks and runs the abort callbacks, as an expired
 * deadline would. True if this was the first failure; later ones are
 * ignored (false): they are consequences of the first. */
bool rt_watchdog_fail(RtWatchdog *w, const char *why);

/* True until something failed; cheap (an atomic load), for polling loops. */
bool rt_watchdog_ok(const RtWatchdog *w);
/* False after reporting the failure into d (the first call only; later
 * calls just return false). */
bool rt_watchdog_check(RtWatchdog *w, DiagEngine *d);
/* What failed, and the rank it names (the dead or silent peer, the rank
 * that gave up; this rank for RT_WD_TIMEOUT and RT_WD_ABORTED). The error
 * text stays valid until rt_watchdog_free; "" while nothing failed. */
RtWatchdogCause rt_watchdog_cause(const RtWatchdog *w, int *rank);
const char *rt_watchdog_error(const RtWatchdog *w);

/* Parses a timeout in seconds ("30", "2.5") from option or variable `what`
 * into milliseconds; false after reporting a malformed or non-positive one.
 * The CLI's --timeout and DSCC_TIMEOUT both go through here. */
bool rt_timeout_parse(DiagEngine *d, const char *what, const char *text, int *ms);

#endif
