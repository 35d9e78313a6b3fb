/* nccl.h — NCCL, loaded at run time, with every operation bounded.
 *
 * dscc links no NCCL: libnccl.so.2 is opened with dlopen when a
 * communicator is first needed (as cuda.c does for libcuda), so one binary
 * runs on machines without it, where rt_nccl_open says so. Communicators
 * are non-blocking (ncclCommInitRankConfig with blocking = 0): no NCCL call
 * ever blocks the caller, and the waits that follow (init, the end of a
 * group, a stream's completion, finalize) poll ncclCommGetAsyncError under
 * a watchdog deadline. When the watchdog fires (deadline, dead or silent
 * peer, another rank's failure) it aborts the communicator from its own
 * thread; a lock around the handle keeps that abort from racing the main
 * thread's calls, and is held from group start to group end so NCCL's
 * thread-local group never refers to a freed communicator. Errors name the
 * NCCL call, the peer rank, NCCL's result and ncclGetLastError's text, and
 * are also handed to the watchdog so the other ranks stop too.
 *
 * Types and enum values are NCCL's (ncclDataType_t, ncclRedOp_t), declared
 * here so that the header needs no CUDA toolkit; test_nccl checks them
 * against the toolkit's nccl.h when it has one. NCCL 2.17 or newer. */
#ifndef DSCC_RT_NCCL_H
#define DSCC_RT_NCCL_H

#include "runtime/cuda.h"
#include "runtime/watchdog.h"

typedef enum {
    RT_NCCL_I8 = 0,       /* ncclInt8 */
    RT_NCCL_U8 = 1,       /* ncclUint8: also raw bytes (FP8 codes on any NCCL) */
    RT_NCCL_I32 = 2,      /* ncclInt32 */
    RT_NCCL_U32 = 3,      /* ncclUint32 */
    RT_NCCL_I64 = 4,      /* ncclInt64 */
    RT_NCCL_U64 = 5,      /* ncclUint64 */
    RT_NCCL_F16 = 6,      /* ncclFloat16 */
    RT_NCCL_F32 = 7,      /* ncclFloat32 */
    RT_NCCL_F64 = 8,      /* ncclFloat64 */
    RT_NCCL_BF16 = 9,     /* ncclBfloat16 */
    RT_NCCL_FP8E4M3 = 10, /* ncclFloat8e4m3 (NCCL 2.24+; send/recv of FP8 can use RT_NCCL_U8) */
    RT_NCCL_FP8E5M2 = 11, /* ncclFloat8e5m2 (NCCL 2.24+) */
} RtNcclType;

typedef enum {
    RT_NCCL_SUM = 0,  /* ncclSum */
    RT_NCCL_PROD = 1, /* ncclProd */
    RT_NCCL_MAX = 2,  /* ncclMax */
    RT_NCCL_MIN = 3,  /* ncclMin */
    RT_NCCL_AVG = 4,  /* ncclAvg */
} RtNcclOp;

typedef struct {
    char internal[128]; /* ncclUniqueId */
} RtNcclId;

typedef struct RtNccl RtNccl;
typedef struct RtNcclComm RtNcclComm;

/* Loads libnccl.so.2. NULL after reporting that NCCL is missing or older
 * than 2.17 (the error starts "NCCL is not available"). */
RtNccl *rt_nccl_open(DiagEngine *d);
/* Frees the handle; the library stays loaded (NCCL's threads may outlive
 * their communicators). NULL ok. */
void rt_nccl_close(RtNccl *n);
int rt_nccl_version(const RtNccl *n); /* 22809 for 2.28.9 */
size_t rt_nccl_type_size(RtNcclType t);
const char *rt_nccl_result_name(int result); /* "ncclRemoteError" */

/* A fresh id (rank 0 makes it; it starts NCCL's bootstrap root). */
bool rt_nccl_unique_id(RtNccl *n, DiagEngine *d, RtNcclId *id);

/* The communicator of ri's world on the current CUDA context's device:
 * rank 0 makes the id, rt_watchdog_join hands it to every rank (and opens
 * the heartbeat links), then rt_nccl_comm_init_rank. Everything within
 * timeout_ms. w is made for ri's rank and size and not yet joined. */
RtNcclComm *rt_nccl_comm_init(RtNccl *n, DiagEngine *d, const RtRankInfo *ri, RtWatchdog *w, int timeout_ms);
/* With the id already shared. w may be NULL: the communicator then has a
 * watchdog of its own (deadlines only, no heartbeat). The communicator
 * registers its abort with w; every later wait is bounded by timeout_ms
 * (<= 0: w's default). NULL after reporting. */
RtNcclComm *rt_nccl_comm_init_rank(RtNccl *n, DiagEngine *d, const RtNcclId *id, int rank, int size, RtWatchdog *w, int timeout_ms);
/* Finalizes (waiting, bounded, for what is in flight) and destroys; aborts
 * instead if that fails. Frees c either way; false after reporting. */
bool rt_nccl_comm_destroy(RtNcclComm *c, DiagEngine *d);
/* Aborts (the error path: nothing is waited for) and frees. NULL ok. */
void rt_nccl_comm_abort(RtNcclComm *c);
int rt_nccl_comm_rank(const RtNcclComm *c);
int rt_nccl_comm_size(const RtNcclComm *c);
RtWatchdog *rt_nccl_comm_watchdog(const RtNcclComm *c);

/* ncclGroupStart / ncclGroupEnd around sends and receives posted with the
 * calls below; group_end waits (bounded) until NCCL has launched the group,
 * not until it completes: that is rt_nccl_wait. `what` names the group in
 * errors ("dispatch layer 3"). */
bool rt_nccl_group_start(RtNcclComm *c, DiagEngine *d);
bool rt_nccl_group_end(RtNcclComm *c, DiagEngine *d, const char *what);
/* ncclSend / ncclRecv of count elements with rank peer, on `stream` (a
 * CUstream; NULL = the legacy default stream). Outside a group each one is
 * its own group. */
bool rt_nccl_send(RtNcclComm *c, DiagEngine *d, RtDevPtr buf, size_t count, RtNcclType t, int peer, void *stream);
bool rt_nccl_recv(RtNcclComm *c, DiagEngine *d, RtDevPtr buf, size_t count, RtNcclType t, int peer, void *stream);
bool rt_nccl_all_reduce(RtNcclComm *c, DiagEngine *d, RtDevPtr send, RtDevPtr recv, size_t count, RtNcclType t, RtNcclOp op,
                        void *stream);
/* All-to-all as one group of ncclSend/ncclRecv, one pair per rank in rank
 * order (self and zero-size included): the same calls on every rank. Rank
 * p's block is at element offset p * count of both buffers. */
bool rt_nccl_all_to_all(RtNcclComm *c, DiagEngine *d, RtDevPtr send, RtDevPtr recv, size_t count, RtNcclType t, void *stream);
/* The same with counts and element offsets per rank (size entries each):
 * what expert dispatch and combine send after their count exchange. */
bool rt_nccl_all_to_allv(RtNcclComm *c, DiagEngine *d, RtDevPtr send, const size_t *send_counts, const size_t *send_offsets,
                         RtDevPtr recv, const size_t *recv_counts, const size_t *recv_offsets, RtNcclType t, void *stream);

/* Waits until everything queued on `stream` is done, polling the stream
 * and NCCL's asynchronous error under a watchdog deadline (timeout_ms;
 * <= 0: the communicator's): a deadline, a peer's death or an NCCL error
 * ends it with an error naming `what`, the rank and the cause, and the
 * communicator aborted. Needs the CUDA driver (loaded on first use). */
bool rt_nccl_wait(RtNcclComm *c, DiagEngine *d, void *stream, const char *what, int timeout_ms);
/* Polls NCCL's asynchronous error once: false after reporting one (or an
 * abort by the watchdog). */
bool rt_nccl_check(RtNcclComm *c, DiagEngine *d);

/* ---- for tests: the entry points replaced ---------------------------------------
 * NCCL's calls (results as ncclResult_t values, communicators as void *)
 * and the driver's cuStreamQuery (0 done, 600 not ready), so that the
 * polling, deadlines, aborts and locking above run under a sanitizer on a
 * machine without a GPU. Every field must be set. */
typedef struct {
    int (*get_version)(int *version);
    int (*get_unique_id)(RtNcclId *id);
    int (*comm_init_rank_config)(void **comm, int nranks, RtNcclId id, int rank, void *config);
    int (*comm_finalize)(void *comm);
    int (*comm_destroy)(void *comm);
    int (*comm_abort)(void *comm);
    int (*comm_get_async_error)(void *comm, int *state);
    const char *(*get_error_string)(int result);
    const char *(*get_last_error)(void *comm);
    int (*group_start)(void);
    int (*group_end)(void);
    int (*send)(const void *buf, size_t count, int type, int peer, void *comm, void *stream);
    int (*recv)(void *buf, size_t count, int type, int peer, void *comm, void *stream);
    int (*all_reduce)(const void *send, void *recv, size_t count, int type, int op, void *comm, void *stream);
    int (*stream_query)(void *stream);
} RtNcclApi;

RtNccl *rt_nccl_open_api(DiagEngine *d, const RtNcclApi *api);

#endif
