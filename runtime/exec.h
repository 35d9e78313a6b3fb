/* exec.h — one interface over the executors: the CPU reference (cpu.h) and
 * the CUDA backend (gpu.h). A caller makes an executor for a planned graph,
 * runs it step by step, reads outputs and frees it without knowing which
 * backend runs; the backend-only extras (the GPU's timing line) come back
 * as text. The CUDA backend exists only in builds with NVRTC:
 * rt_exec_backend_built says whether it does, so callers need no #ifdef.
 *
 * A distributed run hands the executor its world (RtDistCtx): the NCCL
 * communicator, the watchdog that bounds every wait, this rank's place and
 * the topology; the CUDA executor gets it as its GpuDist (expert
 * parallelism: this rank's experts only, dispatch/combine over NCCL).
 * NULL = one process holding every expert. */
#ifndef DSCC_RT_EXEC_H
#define DSCC_RT_EXEC_H

#include "cpu/cpu.h"
#include "runtime/gpu.h" /* GpuCommBytes; the header needs no CUDA toolkit */
#include "runtime/nccl.h"

typedef enum {
    RT_BACKEND_CPU,  /* the FP32 reference interpreter */
    RT_BACKEND_CUDA, /* generated kernels through NVRTC on one GPU */
} RtBackend;

/* One rank's world, shared by every executor of the process. */
typedef struct {
    RtNcclComm *comm;  /* the world's communicator (non-blocking, bounded waits) */
    RtWatchdog *wd;    /* deadlines and heartbeats; aborts comm on a failure */
    int rank, size;    /* this rank, world size (= nodes x gpus_per_node) */
    int local_rank;    /* on this host: the device it drives */
    int nodes, gpus_per_node;
    int timeout_ms;    /* bound of every collective */
} RtDistCtx;

typedef struct {
    RtBackend backend;
    int threads;                     /* CPU: threads, 0 = all */
    int device;                      /* CUDA: ordinal */
    int64_t max_batch, max_seq, max_ctx; /* CUDA: capacities (rows, new positions, cached + new) */
    const char *trace;               /* CUDA: Chrome trace of each step (NULL: none) */
    int trace_steps;                 /* CUDA: ... of the first trace_steps (< 1: RT_TRACE_STEPS) */
    bool f32_storage;                /* CUDA: 16-bit tensors stored as f32 */
    bool graphs;                     /* CUDA: each step as one CUDA graph */
    const DsccTune *tune;            /* CUDA: the DSCC_* switches (GpuOptions.tune; NULL: the defaults) */
    const RtDistCtx *dist;           /* NULL: one process */
} RtExecOptions;

typedef struct RtExec RtExec;

const char *rt_backend_name(RtBackend b); /* "cpu", "cuda" */
/* Whether this build has backend b; when not, why ("built without NVRTC ..."). */
bool rt_exec_backend_built(RtBackend b, const char **why);

/* Loads the weights and prepares the graph (verified, planned; it must
 * outlive the executor). NULL after reporting. */
RtExec *rt_exec_new(const IrGraph *g, const CpuWeightSource *ws, const RtExecOptions *o, DiagEngine *d);
void rt_exec_free(RtExec *x); /* NULL ok */
RtBackend rt_exec_backend(const RtExec *x);

/* One step (cpu_exec_run's contract): binds the dims from the inputs, runs
 * every op, appends to the KV caches. False after reporting. */
bool rt_exec_run(RtExec *x, const CpuInput *in, int n, DiagEngine *d);
/* An output of the last run as f32 (NULL if no such name); valid until the next run. */
const float *rt_exec_output(RtExec *x, const char *name, int *rank, int64_t dims[IR_MAX_RANK]);
/* The next token of each row of the last run's output `logits` (its last
 * position) drawn where the logits are (sample.h's RtSampling; row r draws
 * as row row0 + r, `step` counts the draws): ids[*rows]. Only the CUDA
 * backend does (rt_exec_samples): no logits cross to the host; on the CPU
 * the caller samples rt_exec_output's logits itself. False after
 * reporting (a row of NaN logits, named). */
bool rt_exec_samples(const RtExec *x);
bool rt_exec_sample(RtExec *x, const RtSampling *s, uint64_t row0, uint64_t step, int32_t *ids, int64_t *rows, DiagEngine *d);
int64_t rt_exec_cache_len(const RtExec *x);
void rt_exec_reset(RtExec *x);

/* The backend's account of the last step for a log line (the GPU, its
 * time, launches and library GEMMs), or "" when it has none (the CPU). */
const char *rt_exec_last_step(RtExec *x);
/* Whether routed experts are spread over the ranks of o->dist (expert
 * parallelism); false when every rank holds every expert. */
bool rt_exec_expert_parallel(const RtExec *x);
/* The exchanges' byte counters (GpuCommBytes: dispatch / combine x inter /
 * intra node) of the last run and of every run; zero without expert
 * parallelism. Device memory this executor holds for weights and
 * activations (0 on the CPU). */
void rt_exec_comm_bytes(const RtExec *x, GpuCommBytes *last, GpuCommBytes *total);
int64_t rt_exec_weight_bytes(const RtExec *x);
int64_t rt_exec_activation_bytes(const RtExec *x);

#endif
