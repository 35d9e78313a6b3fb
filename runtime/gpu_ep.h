/* gpu_ep.h — expert-parallel dispatch and combine over NCCL for the CUDA
 * executor (internal to runtime/: gpu_exec.c is its one caller).
 *
 * The world layout (EP design): a dispatched value has W * N rows, row
 * block j holding what rank j sent to this rank, packed from the block's
 * first row; a dispatched idx keeps the global ids of the experts this
 * rank holds and -1 everywhere else. A plan per routing decision (the
 * home idx of one MoE layer and micro-batch) is made when its first
 * dispatch runs: idx copied to the host, counts exchanged, the expert ids
 * themselves sent along the same paths (so every receiver knows its rows'
 * experts), maps uploaded. Every later dispatch of that layer moves its
 * rows along the plan; combine goes back along it, reducing partial sums
 * on the way (expert side per destination, forwarding GPU per node, home
 * in f32).
 *
 * Paths: with one node, each rank sends straight to each rank of its
 * experts (hop 2 only). With several, hop 1 sends a token once to every
 * other node it uses, to the GPU of the same local rank, which forwards it
 * (hop 2) within its node; a rank is its own landing GPU for its node.
 * Every exchange is one NCCL group with the same calls on every rank (one
 * send and one receive per peer of the hop, zero sizes included, the
 * rank itself included) on the current stream (the op's: the
 * communication stream under microbatch-overlap), waited for under the
 * communicator's watchdog. */
#ifndef DSCC_RT_GPU_EP_H
#define DSCC_RT_GPU_EP_H

#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu.h"

typedef struct GpuEp GpuEp;

/* Compiles the exchange kernels (pack/unpack rows, mask ids, partial
 * sums, reductions) and keeps the context. NULL after reporting. */
GpuEp *gpu_ep_new(RtCuda *cu, const GpuDist *dist, Arena *a, DiagEngine *d);
void gpu_ep_free(GpuEp *e);

/* Storage dtype codes of the kernels: f32 and bf16. */
typedef enum { GPU_EP_F32 = 0, GPU_EP_BF16 = 1 } GpuEpDType;

/* One dispatch: `x` [N, row_bytes] of the home rank to `out` [W*N, row]
 * in the world layout; `idx` [N, K] i32 is the layer's routing (node
 * `plan`), of which the first `real` rows are real tokens (the rest are
 * padding, never sent). is_idx: x is idx itself (out = the plan's ids). */
typedef struct {
    int plan;              /* node id of the home idx: one plan per node and step */
    int step;              /* the executor's step counter: a plan is made once per step */
    RtDevPtr x, idx, out;
    int64_t N, K, real, row_bytes;
    int64_t experts;       /* E: expert e lives on rank e / (E / W) */
    bool is_idx;
    const char *what;      /* "dispatch %123", for errors */
} GpuEpDispatch;
bool gpu_ep_dispatch(GpuEp *e, DiagEngine *d, const GpuEpDispatch *op);

/* One combine: y [W*N, K, O] (dtype ydt) weighted by wd [W*N, K] (f32)
 * over the slots this rank holds, returned home and summed into
 * out [N, O] (f32). The plan must have been made by a dispatch of this
 * step. */
typedef struct {
    int plan, step;
    RtDevPtr y, wd, out;
    int64_t N, K, O;
    GpuEpDType ydt;
    const char *what;
} GpuEpCombine;
bool gpu_ep_combine(GpuEp *e, DiagEngine *d, const GpuEpCombine *op);

/* The largest of every rank's v (an exchange among all ranks). */
bool gpu_ep_agree_max(GpuEp *e, DiagEngine *d, int64_t v, int64_t *max);

/* Bytes sent to other ranks since the last reset. */
void gpu_ep_bytes(const GpuEp *e, GpuCommBytes *out);
void gpu_ep_reset_bytes(GpuEp *e);

#endif
#endif
