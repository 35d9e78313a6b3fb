/* dist.h — process-level pieces of the distributed runtime that need no
 * GPU: who am I (rank discovery from the launcher's environment) and the
 * TCP rendezvous through which rank 0 hands every rank the same blob (the
 * ncclUniqueId, once NCCL is wired in). Part of the runtime's public
 * interface: runtime.h includes it. */
#ifndef DSCC_RT_DIST_H
#define DSCC_RT_DIST_H

#include "support/support.h"

typedef enum {
    RT_LAUNCH_SINGLE,   /* no launcher variables: one process */
    RT_LAUNCH_OPENMPI,  /* OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK */
    RT_LAUNCH_SLURM,    /* SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID */
    RT_LAUNCH_TORCHRUN, /* RANK / WORLD_SIZE / LOCAL_RANK (+ MASTER_ADDR / MASTER_PORT) */
} RtLauncher;

typedef struct {
    RtLauncher launcher;
    int rank, size, local_rank;
    const char *master_addr; /* where rank 0 listens: DSCC_MASTER_ADDR or MASTER_ADDR; under Slurm without them the
                              * first host of SLURM_STEP_NODELIST (or _JOB_NODELIST); default 127.0.0.1 */
    int master_port;         /* MASTER_PORT or DSCC_MASTER_PORT, default 29500 */
} RtRankInfo;

const char *rt_launcher_name(RtLauncher l);

/* The value of variable `name` in env (a NULL-terminated list of NAME=VALUE
 * strings) or, with env NULL, getenv's; NULL when unset. */
const char *rt_env_get(const char *const *env, const char *name);

/* Reads the launcher's variables (getenv, or `env` when not NULL: a
 * NULL-terminated list of NAME=VALUE strings, for tests). Open MPI wins
 * over Slurm over torchrun, as mpirun inside a Slurm job sets both.
 * Inconsistent values (rank outside 0..size-1, a missing partner variable,
 * non-numbers) are errors naming the variable. */
bool rt_rank_info(Arena *a, DiagEngine *d, const char *const *env, RtRankInfo *out);

/* The first host of a Slurm hostlist: "gpu[07-09,12],cpu3" -> "gpu07"
 * (in the arena). */
const char *rt_hostlist_first(Arena *a, const char *list);

/* Rank 0 listens on master_addr:master_port, waits for every other rank,
 * checks each one's rank and world size, and sends it `len` bytes of blob;
 * the others connect (retrying while rank 0 comes up) and receive it. All
 * within timeout_ms; on timeout the error names the ranks that never came
 * (on rank 0) or the address that never answered (elsewhere). */
bool rt_rendezvous(DiagEngine *d, const RtRankInfo *ri, void *blob, size_t len, int timeout_ms);

/* ---- expert-parallel dispatch plan (two-hop) ------------------------------ */

typedef struct {
    int nodes, gpus_per_node; /* ranks = nodes x gpus_per_node, rank = node * gpus_per_node + local */
    int64_t experts;          /* spread contiguously: experts / ranks per rank */
} RtTopology;

/* The rank holding expert e. */
int rt_expert_rank(const RtTopology *t, int64_t e);

typedef struct {
    int64_t *recv;              /* per rank: token copies it receives from this one (count exchange) */
    int64_t inter_node_copies;  /* hop 1: one per (token, remote destination node), to the same local rank */
    int64_t intra_node_copies;  /* hop 2: NVLink forwards to the expert's GPU, one per (token, GPU) */
    int64_t per_expert_copies;  /* what one copy per (token, expert) would send across ranks */
    int max_nodes_per_token;    /* most distinct nodes one token's experts sit on */
} RtDispatchPlan;

/* Plans the dispatch of N tokens living on rank `src` whose experts are
 * idx[N*K] (integral values). Counts are exact, de-duplicated per node for
 * the inter-node hop and per GPU within a node. False after reporting an
 * expert index outside the topology. recv is malloc'd: rt_dispatch_plan_free. */
bool rt_dispatch_plan(DiagEngine *d, const RtTopology *t, int src, const float *idx, int64_t N, int K, RtDispatchPlan *out);
void rt_dispatch_plan_free(RtDispatchPlan *p);

/* ---- sockets with a deadline (the rendezvous and rank 0's gather) ------ */

struct sockaddr_in;
/* Monotonic time in milliseconds: the clock deadlines below are on. */
double rt_now_ms(void);
/* Waits until fd is ready for `events` (fd < 0: just waits) or the
 * deadline passes; with `alive`, asks it at least every 100 ms. 1 ready,
 * 0 deadline or error, -1 when alive(arg) said no. */
int rt_sock_wait(int fd, short events, double deadline, bool (*alive)(void *), void *arg);
/* Sends or receives exactly n bytes: 1 done, 0 closed, failed or past the
 * deadline, -1 when alive(arg) said no. */
int rt_sock_io(int fd, void *buf, size_t n, bool sending, double deadline, bool (*alive)(void *), void *arg);
/* Rank 0's address ri->master_addr:master_port, resolved; false after an
 * error that starts with `what` ("rendezvous", "gather"). */
bool rt_master_sockaddr(DiagEngine *d, const RtRankInfo *ri, const char *what, struct sockaddr_in *sa);

#endif
