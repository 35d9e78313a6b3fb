/* world.h — one rank's membership of a distributed run, as `dscc run`
 * sets it up: the topology (nodes x GPUs per node) from the command line or
 * the launcher, the split of the batch rows over the ranks, the joined
 * world (CUDA device, watchdog with heartbeats, NCCL communicator: the
 * RtDistCtx executors take) and the gather through which rank 0 collects
 * every rank's results. Every wait is bounded by the world's timeout and
 * ends early when the watchdog hears that a peer failed. */
#ifndef DSCC_RT_WORLD_H
#define DSCC_RT_WORLD_H

#include "runtime/exec.h"

/* nodes x gpus_per_node = ri->size. nodes_opt / gpn_opt (0 = not given)
 * come from the command line; otherwise GPUs per node are the launcher's
 * local world (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE,
 * SLURM_NTASKS_PER_NODE) or the whole world on one node. env as in
 * rt_rank_info (NULL = getenv). False after reporting a topology that does
 * not multiply out. */
bool rt_world_topology(DiagEngine *d, const RtRankInfo *ri, const char *const *env, int nodes_opt, int gpn_opt, int *nodes,
                       int *gpus_per_node);

/* Rows [*first, *first + *count) of a batch of B rows on rank r of W:
 * B / W each, the remainder one more on the first ranks (a rank may get
 * none). */
void rt_world_rows(int64_t B, int r, int W, int64_t *first, int64_t *count);

/* The device a rank drives: its local rank, or 0 when CUDA_VISIBLE_DEVICES
 * shows this process exactly one GPU (Slurm's --gpus-per-task=1). */
int rt_world_device(const RtRankInfo *ri, const char *const *env);

typedef struct RtWorld RtWorld;

/* Joins the world of ri (size > 1): makes `device`'s context current,
 * loads NCCL, starts the watchdog, shares rank 0's ncclUniqueId through
 * the rendezvous and creates the communicator, all within timeout_ms.
 * NULL after reporting. */
RtWorld *rt_world_join(DiagEngine *d, const RtRankInfo *ri, int nodes, int gpus_per_node, int device, int timeout_ms);
/* What executors get (valid until rt_world_leave). */
const RtDistCtx *rt_world_ctx(const RtWorld *w);
/* False after reporting a failure the watchdog recorded (a peer's death,
 * silence, failure; a deadline). Cheap; call after every step. */
bool rt_world_check(RtWorld *w, DiagEngine *d);
/* Waits until every rank has reached this point (an NCCL all-reduce of
 * one value), up to timeout_ms; `what` names the wait in errors. A peer's
 * death or silence ends it at once, whatever the deadline. */
bool rt_world_barrier(RtWorld *w, DiagEngine *d, const char *what, int timeout_ms);
/* Rank 0's n words reach every rank's `words` (an NCCL all-reduce of rank
 * 0's words and the others' zeros), within the world's timeout; `what`
 * names the wait in errors. w NULL: a world of one, nothing to do. */
bool rt_world_bcast(RtWorld *w, DiagEngine *d, int32_t *words, size_t n, const char *what);
/* This rank gives up (`why` names the operation): the other ranks hear of
 * it and stop, and the communicator is aborted. */
void rt_world_fail(RtWorld *w, const char *why);
/* Leaves: destroys the communicator (finalize, bounded) when ok and
 * nothing failed, aborts it otherwise; says goodbye to the peers. NULL ok.
 * False after reporting a failure of the teardown itself. */
bool rt_world_leave(RtWorld *w, DiagEngine *d, bool ok);

/* Gathers `len` bytes from every rank at rank 0 over TCP (the rendezvous
 * address; rank 0 listens on master_port): on rank 0 *all (malloc'd) holds
 * rank 0's bytes, then rank 1's, ... and lens[r] each one's length (lens:
 * size entries); elsewhere *all is NULL. Within the world's timeout;
 * ends early when the watchdog reports a failure. w NULL = a world of one. */
bool rt_world_gather(RtWorld *w, DiagEngine *d, const RtRankInfo *ri, const void *mine, size_t len, void **all, size_t *lens,
                     int timeout_ms);

#endif
