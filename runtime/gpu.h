/* gpu.h — the CUDA backend: runs a planned IR graph on one GPU with the
 * kernels codegen/ generates, compiled by NVRTC (through the disk cache)
 * and loaded with the driver API.
 *
 * Memory: one device slab holds every weight (under a GpuDist: every
 * replicated one and this rank's routed experts) in its declared dtype (FP8
 * E4M3 codes and f32 block scales for an FP8 graph), loaded one tensor
 * slice at a time from the weight source (the mmapped checkpoint: no host
 * copy of the model); one slab holds the activations, placed first-fit by
 * liveness over the kernel order at the largest batch and length the
 * executor was made for (a smaller run fits in the same places); one f32
 * scratch area holds the reductions' statistics of the running kernel;
 * each kv_cache has its own [batch, capacity, ...] buffer.
 *
 * Streams: kernels go to the stream their ops carry (the overlap pass:
 * 0 compute, 1 communication); each IR wait on an op of the other stream
 * is an event recorded after its kernel and waited for (cuStreamWaitEvent)
 * before the waiting kernel. Activation bytes are reused only once every
 * access of their old value happens before the new writer, across both
 * streams. A step with two streams or exchanges is not recorded as a CUDA
 * graph (its exchanges are planned on the host from the step's routing).
 *
 * Same interface as the CPU executor (cpu.h): make once, run per step,
 * read outputs, reset between sequences. Built only with NVRTC. */
#ifndef DSCC_RT_GPU_H
#define DSCC_RT_GPU_H

#include "cpu/cpu.h"
#include "runtime/nccl.h"
#include "runtime/sample.h"

/* Expert parallelism (docs: EP design, issue 14): one process per GPU,
 * world size = nodes x gpus_per_node, rank r on node r / gpus_per_node.
 * With a GpuDist the executor
 *  - loads only this rank's routed experts (experts [r*E/W, (r+1)*E/W) of
 *    every stacked expert weight and its scales) plus every replicated
 *    tensor;
 *  - runs each `dispatch` / `combine` of the routed graph over `comm`: a
 *    count exchange, then grouped ncclSend/ncclRecv with the same calls on
 *    every rank (zero sizes included), two-hop across nodes, on the
 *    communication stream;
 *  - runs its own rows (the inputs' batch rows given to gpu_exec_run; a
 *    rank may have none): before each step the ranks agree on the largest
 *    local batch and each pads its rows to it (padding rows are never sent
 *    to an expert and never appear in an output).
 * The communicator belongs to the caller (made on this rank's device
 * before gpu_exec_new, destroyed after gpu_exec_free). NULL: one process,
 * every expert local, dispatch/combine as the generated copy kernels. */
typedef struct {
    RtNcclComm *comm;     /* this rank's communicator (rt_nccl_comm_init) */
    int rank, size;       /* size = nodes * gpus_per_node */
    int nodes, gpus_per_node;
    int timeout_ms;       /* bound on every exchange (<= 0: the communicator's) */
} GpuDist;

/* Bytes this rank sent in its exchanges, counted per NCCL transfer to
 * another rank (a rank's copies to itself are not counted): inter-node
 * (hop 1: to the same local rank of another node) and intra-node (direct
 * sends on one node, forwarding within the node after hop 1). Dispatch
 * counts each token copy once: its payload row (x in its stored dtype,
 * FP8 codes as bytes), its scale row (f32, when dispatched), its K expert
 * ids (i32) and K routing weights (f32). Combine counts each partial sum
 * row returned (O values in the storage dtype). */
typedef struct {
    int64_t dispatch_inter, dispatch_intra;
    int64_t combine_inter, combine_intra;
} GpuCommBytes;

typedef struct {
    int device;           /* GPU ordinal */
    int64_t max_batch;    /* capacity: rows per step */
    int64_t max_seq;      /* capacity: new positions per step */
    int64_t max_ctx;      /* capacity: cached + new positions (KV cache length) */
    const char *trace;    /* write a Chrome trace of each run's kernels here (NULL: none; runtime/trace.h) */
    int trace_steps;      /* ... of its first trace_steps runs (< 1: RT_TRACE_STEPS) */
    struct RtTrace *tracer; /* or into this open trace, which the caller closes (several executors) */
    const char *trace_label; /* the steps' names in the trace and NVTX: "LABEL prefill", "LABEL N"
                              * (NULL: "prefill", "decode N"); every step is an NVTX range */
    bool profile;         /* time every kernel (events between launches): gpu_exec_kernel_ms */
    bool f32_storage;     /* bf16/f16 weights, activations and caches stored as f32 (CgGenOptions) */
    bool graphs;          /* record each step's launches as a CUDA graph and launch that (not with
                           * profile/trace or DSCC_CUDA_SYNC=1, which need launches one by one) */
    bool keep_all;        /* no reuse of activation memory: every stored value survives the run (gpu_exec_value) */
    bool no_blas;         /* never cuBLASLt: the generated kernels for every GEMM (also DSCC_CUBLASLT=0) */
    const GpuDist *dist;  /* expert parallelism over NCCL (copied at creation); NULL: one process */
    const DsccTune *tune; /* the DSCC_* switches (support/tune.def, copied at creation), read once by the
                           * caller's main (tune_read_env, tune_check); NULL: all unset, the defaults */
} GpuOptions;

typedef struct GpuExec GpuExec;

/* Generates and compiles the kernels, allocates, loads the weights. NULL
 * after reporting (no GPU, not Hopper, out of memory with how much was
 * needed and is free, a weight that does not load). */
GpuExec *gpu_exec_new(const IrGraph *g, const CpuWeightSource *ws, const GpuOptions *o, DiagEngine *d);
void gpu_exec_free(GpuExec *x);
const char *gpu_exec_device(const GpuExec *x);

/* One step, as cpu_exec_run: binds B, S (and T = cached + new) from the
 * inputs, runs every kernel, appends to the caches. False after reporting
 * (a shape over the capacities, an id out of range at its DSL location);
 * the cache length is then unchanged. */
bool gpu_exec_run(GpuExec *x, const CpuInput *inputs, int ninputs, DiagEngine *d);
/* An output of the last run, converted to f32 (NULL if no such name);
 * under a GpuDist, of the rows given to the run (not the padding). */
const float *gpu_exec_output(GpuExec *x, const char *name, int *rank, int64_t dims[IR_MAX_RANK]);
/* The next token of each row of the last run's output `name` (f32 [B, S,
 * vocab]), from its last position, drawn on the device (sample.h's
 * rt_dev_sample; row r draws as row row0 + r): ids[*rows], *rows the rows
 * given to the run; no logits cross to the host. False after reporting. */
bool gpu_exec_sample(GpuExec *x, const char *name, const RtSampling *s, uint64_t row0, uint64_t step, int32_t *ids, int64_t *rows,
                     DiagEngine *d);
int64_t gpu_exec_cache_len(const GpuExec *x);
void gpu_exec_reset(GpuExec *x);
/* As cpu_exec_truncate: forgets the cached positions from `len` on. */
bool gpu_exec_truncate(GpuExec *x, int64_t len);

/* Milliseconds the kernels of the last run took on the GPU (events around
 * the whole step), and how many kernel launches it made (recorded into the
 * step's graph with `graphs`). */
double gpu_exec_last_ms(const GpuExec *x);
int gpu_exec_last_launches(const GpuExec *x);
/* How many of those launches were programmatic (runtime/cuda.h's
 * rt_cuda_launch_pdl: kernels whose entry calls DSCC_PDL_WAIT(), started
 * under the tail of the kernel before them), and whether the executor
 * makes such launches at all (DSCC_PDL, read at creation: 1 where the
 * driver supports it; 0, the default, plain launches only). */
int gpu_exec_last_pdl_launches(const GpuExec *x);
bool gpu_exec_pdl(const GpuExec *x);

/* With `profile` (or a trace): the kernels of the last run in launch
 * order, each one's GPU time, and the op its template computes (node id;
 * -1 for a purely fused elementwise kernel). */
int gpu_exec_kernels(const GpuExec *x);
const char *gpu_exec_kernel_name(const GpuExec *x, int k);
double gpu_exec_kernel_ms(const GpuExec *x, int k);
int gpu_exec_kernel_node(const GpuExec *x, int k);
/* Whether kernel k was launched by the last run (not a weights-only kernel
 * after the first run, nor one that kind of step does not use). */
bool gpu_exec_kernel_ran(const GpuExec *x, int k);
/* Whether the last run's kind of step (nothing cached / a cached context)
 * uses node id: false only for the branch a fresh_select did not take. */
bool gpu_exec_node_used(const GpuExec *x, int id);
/* Kernel k of the last run timed alone, `reps` times: its launches (or
 * its cuBLASLt GEMM) as that run made them, between two events with no
 * host work but the launch calls; before each, outside the timing, a
 * memset of `flush` bytes of device memory (larger than the L2: the
 * kernel starts with its operands in HBM; 0: none). ms[r] per repetition.
 * With keep_all the kernel reads what it read in the run. False after
 * reporting (before any run, a kernel of an exchange, two streams). */
bool gpu_exec_time_kernel(GpuExec *x, int k, int reps, int64_t flush, double *ms, DiagEngine *d);
/* How many GEMMs of the last run cuBLASLt ran instead of the generated
 * kernels (FP8 block-scaled and BF16 linears whose shape it supports), and
 * its version ("cuBLASLt 130100"; NULL when not in use). */
int gpu_exec_last_lib_calls(const GpuExec *x);
/* How many FP8 GEMMs of the last run the TMA kernel (codegen/kernels/gemm_tma.cuh) ran. */
int gpu_exec_last_tma_calls(const GpuExec *x);
const char *gpu_exec_blas(const GpuExec *x);
/* Why cuBLASLt is not in use ("DSCC_CUBLASLT=0", "libcublasLt.so.13 not found", ...); NULL when it is. */
const char *gpu_exec_blas_why(const GpuExec *x);
/* The symbolic dims of the last run (index = the graph's dim). */
const int64_t *gpu_exec_dims(const GpuExec *x);
/* Per-kernel timing of the next runs on or off (on needs trace or profile
 * at creation); with it off, `graphs` applies again. */
void gpu_exec_set_profile(GpuExec *x, bool on);
void gpu_exec_set_graphs(GpuExec *x, bool on);
/* With `graphs`: each step shape (its dims but the context length) is
 * captured once into a CUDA graph, kept (a few shapes, least recently used
 * replaced) and replayed; a replay first gives the graph's kernel nodes
 * the step's arguments (cache length, context) and grids. Counters since
 * creation. */
typedef struct {
    int captures;         /* steps captured into a new graph */
    int replays;          /* steps that launched a graph captured before */
    int64_t node_updates; /* kernel nodes given new arguments or a new grid before a replay */
    int cached;           /* graphs held now */
} GpuGraphStats;
void gpu_exec_graph_stats(const GpuExec *x, GpuGraphStats *s);

/* Byte counters of the last run, and of every run since creation
 * (all zero without a GpuDist). */
void gpu_exec_comm_bytes(const GpuExec *x, GpuCommBytes *last, GpuCommBytes *total);
/* Bytes of the weight slab on this GPU (with a GpuDist: the replicated
 * tensors and this rank's experts only; with the values of weights alone
 * computed at load, without the weights only they read, freed then), and
 * of the activation slab. */
int64_t gpu_exec_weight_bytes(const GpuExec *x);
int64_t gpu_exec_activation_bytes(const GpuExec *x);

/* For tests: the stored value of node `id` after the last run, as f32
 * (NULL when the node has no stored value, or it was overwritten because
 * keep_all was off; the expert ids of a topk / group_topk are always kept,
 * for benchmarks that count the experts a step hit); a kv_cache gives its
 * rows so far, [B, len, ...].
 * Valid until the next call. */
/* The byte offset of node id's value in the activation slab (the
 * plan-memory pass's, when the graph has a plan), IR_MEM_WEIGHTS for a
 * value of weights alone held with the weights (as the plan marks it), or
 * -1 (not stored: weights, caches, values inlined into their readers). */
int64_t gpu_exec_offset(const GpuExec *x, int id);
const float *gpu_exec_value(GpuExec *x, int id, int64_t *numel);

#endif
