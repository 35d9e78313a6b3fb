/* gpu_exec_internal.h — the CUDA backend's executor state, shared by the
 * files that make it up (private to runtime/): gpu_exec.c (setup, steps,
 * CUDA graphs, outputs), gpu_weights.c (the weights' layout and upload),
 * gpu_gemm.c (cuBLASLt and the TMA GEMM) and gpu_exec_trace.c (the
 * Chrome trace). The one-line size helpers stay inline, as they were. */
#ifndef DSCC_RUNTIME_GPU_EXEC_INTERNAL_H
#define DSCC_RUNTIME_GPU_EXEC_INTERNAL_H
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu.h"

#include "codegen/gen.h"
#include "runtime/blas.h"
#include "runtime/gemm_table.h"
#include "runtime/gpu_ep.h"
#include "runtime/runtime.h"
#include "runtime/sample.h"
#include "runtime/trace.h"

typedef struct {
    RtKernel **fn;     /* per phase */
    CgArgs args;       /* slots filled at load; sym, len patched per run */
    int template_node; /* the op a data error is reported at */
} Launch;

typedef struct {
    RtDevPtr buf;
    int64_t per;       /* values per position */
} KvBuf;

/* CUDA graphs: one per step shape, captured once and replayed; a decode
 * step's context length reaches the kernels as an argument (CgArgs.len,
 * sym), which each replay sets in the graph's kernel nodes. */
#define GRAPH_CACHE 8 /* shapes whose graphs are kept (the least recently used one is replaced) */
enum { GL_LIB = -2 };

typedef struct {
    int k, ph;     /* kernel; its phase or GL_LIB (the cuBLASLt GEMM) */
    int64_t grid;  /* blocks; for GL_LIB the GEMM's M */
    void *node;    /* the graph node of a generated launch (NULL: not captured, or unknown) */
} StepLaunch;

typedef struct {
    StepLaunch *v;
    int n, cap;
} StepSeq;

typedef struct {
    bool dry;      /* only list the launches */
    bool capture;  /* being captured: keep each launch's node */
} StepMode;

typedef struct {
    int64_t key[IR_MAX_DIM_SYMS]; /* the step's dims, the context length's set to 0 */
    StepLaunch *seq;
    int n;
    RtGraph *graph; /* NULL: a free entry */
    int64_t len;    /* the cache length its kernel nodes' arguments hold */
    uint64_t used;  /* the last step that launched it */
} GraphEntry;

struct GpuExec {
    const IrGraph *g;
    RtCuda *cu;
    RtBlas *blas;      /* cuBLASLt for the kernels with a library form (NULL: the generated kernels only) */
    Arena *arena;
    DiagEngine *diag;  /* for errors of calls that take none (output fetches) */
    CgProgram *p;
    Launch *launch;    /* per kernel */
    RtDevPtr wslab, aslab, scratch, err;
    RtDevPtr lslab;       /* the weights only load-time kernels read (freed once they ran; 0 after) */
    int64_t *woff, *aoff; /* per node id, -1 = none; woff: in wslab, or lslab for a weight of home 2 */
    unsigned char *wv;    /* per node id: ir_weight_values's kind */
    unsigned char *home;  /* per node id: 1 wslab, 2 lslab (weights), 0 none */
    int64_t *elo, *ehi;   /* per weight node: the experts [elo, ehi) of a stacked weight held here (0, count: all) */
    KvBuf *kv;         /* per node id */
    int64_t cap, len, cache_batch;
    int sym_t, sym_b, sym_s; /* symbol indices (-1 when absent) */
    int64_t sym[IR_MAX_DIM_SYMS];
    int64_t max_b, max_s;
    /* outputs of the last run */
    float **out;       /* per node id of an output's operand */
    float *val;        /* gpu_exec_value's buffer */
    RtEvent **ev;      /* trace/profile events, nkernels + 1 */
    double *kms;       /* per kernel: ms of the last run (profiling) */
    RtEvent *step[2];  /* around each run: its GPU time */
    RtTrace *trace;    /* where each step's kernels go (NULL: no trace) */
    bool own_trace;    /* opened here from GpuOptions.trace, closed at free */
    const char *trace_label; /* step names' prefix (NULL: "prefill", "decode N") */
    int decodes;       /* steps since the cache was last empty (step names) */
    const char **nvtx; /* per kernel: the NVTX range it opens (gpu_trace_ranges) */
    double last_ms;
    DsccTune tune;    /* the DSCC_* switches (GpuOptions.tune, copied; zero: all unset) */
    bool sync_each;
    bool graphs;      /* launch each step as a CUDA graph */
    RtGraph *graph;   /* recaptured each step, when the driver cannot update a graph's nodes */
    RtDevPtr flush;   /* gpu_exec_time_kernel's L2 flush buffer */
    int64_t flush_bytes;
    GraphEntry gcache[GRAPH_CACHE];
    uint64_t gclock;
    GpuGraphStats gstats;
    void *staging;    /* pinned host buffer for output fetches */
    size_t staging_bytes;
    bool profile_on;  /* record ev around each kernel (GpuOptions.profile; a traced step records them too) */
    bool keep_all;    /* DSCC_CUDA_SYNC=1: wait after every launch, to name a failing kernel */
    int launches, runs;
    int lib_calls;    /* GEMMs of the last run that cuBLASLt ran */
    bool *konst;      /* per kernel: every member a function of weights alone: run once (at load, or by the first run), kept */
    unsigned char *atload; /* per kernel: 1 its values are held with the weights (ir_weight_values), computed at load;
                            * 2 a JOINED concat, which the load put in place: never launched */
    int tma_calls;    /* ... and the TMA GEMM kernel */
    bool pdl;         /* programmatic dependent launch (DSCC_PDL=1; default 0; where the driver has it): phases whose
                       * entry waits (CgPhase.pdl) start under the tail of the kernel before them */
    bool pdl_now;     /* ... in this run (not while kernels are timed one by one, DSCC_CUDA_SYNC=1 or at load) */
    int pdl_launches; /* launches of the last run made programmatically */
    RtDevPtr tmaps;          /* the TMA GEMM phases' tensor maps, 256 bytes a kernel (0: none made) */
    bool tma_on;             /* the TMA GEMM phases may run (tensor maps made, DSCC_GEMM_TMA not 0) */
    bool tma_all;            /* DSCC_GEMM_TMA=all: wherever they can (bench_gemm's TMA path), the table not asked */
    RtGemmTable *gtable;     /* the GEMM table their choice reads (NULL: the rule) */
    bool *idle[2];    /* per kernel, for a step with nothing cached [0] or a cached context [1]: nothing that step uses
                       * (only fresh_select's other operand): not launched (NULL: no fresh_select in the graph) */
    bool *need[2];    /* per node, the same: its value is computed in such a step */
    int last_kind;    /* the last run's: 0 nothing was cached before it, 1 a context was */
    const char *no_blas_why; /* why blas is NULL */
    int64_t wbytes, abytes;  /* weight (what stays after load) and activation slabs */
    GpuDist dist;            /* size 0: one process */
    GpuCommBytes comm_last, comm_total;
    /* streams (the IR's stream field: 0 compute, 1 communication) */
    int *kstream;            /* per kernel */
    int **kwait;             /* per kernel: kernels on the other stream it waits for, -1 ended */
    RtEvent **kev;           /* per kernel: recorded after it when another stream waits for it (NULL: none) */
    RtEvent *join;           /* the communication stream's end of a step, which the compute stream waits for */
    bool two_streams;
    /* expert parallelism */
    GpuEp *ep;
    int *comm_node;          /* per kernel: its dispatch/combine node under a GpuDist, else -1 */
    int *mb;                 /* per node: the micro-batch it belongs to (split_batch's index), -1 none */
    int mb_parts;            /* micro-batches of the overlap pass (1: none) */
    int64_t b_real;          /* rows of the last run before padding */
    bool padded;             /* the last run's inputs were padded to b_real rows */
    bool f32;                /* bf16/f16 values stored as f32 (GpuOptions.f32_storage) */
    RtDevSampler *sampler;   /* gpu_exec_sample's, made on its first call */
};

static inline int64_t align256(int64_t v) { return (v + 255) & ~(int64_t)255; }

/* Checked sizes: an overflowing count saturates at IR_MAX_TENSOR_BYTES,
 * which no allocation satisfies and a few of which still add up in int64. */
static inline int64_t numel_at(const IrType *t, const int64_t *sym) {
    int64_t n;
    return ir_type_numel_at(t, sym, &n) && n < IR_MAX_TENSOR_BYTES ? n : IR_MAX_TENSOR_BYTES;
}

static inline int64_t bytes_of(IrDType dt, int64_t n) {
    int64_t bits;
    return size_mul(n, ir_dtype_bits(dt), &bits) && bits / 8 < IR_MAX_TENSOR_BYTES ? (bits + 7) / 8 : IR_MAX_TENSOR_BYTES;
}

/* Whether kernel k is not launched this step: a function of the weights
 * the first run computed, or nothing this kind of step uses. */
static inline bool not_launched(const GpuExec *x, int k) {
    return x->atload[k] || (x->konst[k] && x->runs > 0) || (x->idle[0] && !x->konst[k] && x->idle[x->len == 0 ? 0 : 1][k]);
}

/* gpu_exec.c */
void gx_pack(IrDType dt, const float *src, int64_t n, void *dst);

/* gpu_weights.c: the values held with the weights, and the weights' places */
bool gx_find_load_kernels(GpuExec *x, DiagEngine *d);
bool gx_place_experts(GpuExec *x, DiagEngine *d);
bool gx_load_weights(GpuExec *x, const CpuWeightSource *ws, DiagEngine *d);
RtDevPtr gx_held_at(const GpuExec *x, int i);
RtDevPtr gx_weight_base(const GpuExec *x, const IrNode *n);

/* gpu_gemm.c: which GEMM a kernel's matmul runs as */
int gx_tma_phase(const GpuExec *x, int k);
bool gx_setup_tma(GpuExec *x, const int64_t *smax, DiagEngine *d);
bool gx_use_tma(const GpuExec *x, int k, int ph, const int64_t *sym);
const RtBlasPlan *gx_lib_plan(GpuExec *x, int k, const int64_t *sym);
bool gx_run_lib(GpuExec *x, int k, const RtBlasPlan *plan, const int64_t *sym, DiagEngine *d);

/* gpu_exec_trace.c */
void gx_step_name(GpuExec *x, char *buf, size_t n);
void gx_write_trace(GpuExec *x, const int64_t *sym, const char *name, double t0_us, DiagEngine *d);

#endif /* DSCC_HAVE_NVRTC */
#endif /* DSCC_RUNTIME_GPU_EXEC_INTERNAL_H */
