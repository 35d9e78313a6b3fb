/* internal.h — private to cpu/: the tensor view kernels work on, the
 * parallel-for, the shared GEMM and the kernel entry point. */
#ifndef DSCC_CPU_INTERNAL_H
#define DSCC_CPU_INTERNAL_H

#include "cpu/cpu.h"

typedef struct {
    int rank;
    int64_t d[IR_MAX_RANK];
    int64_t n;  /* elements */
    float *p;
} Ten;

/* A weight prepared for the FP8 emulation once, at load time: E4M3 codes
 * (as floats) and one scale per 128x128 block of each [O,K] slice. */
typedef struct {
    float *codes;  /* same layout as the weight */
    float *scales; /* [slices, ceil(O/128), ceil(K/128)] */
} Fp8Weight;

/* Per-run state a kernel may need. */
typedef struct {
    DiagEngine *diag;
    int threads;
    const bool *fp8_node;       /* by node id: this linear runs in FP8 */
    const Fp8Weight *fp8_w;     /* by node id of a weight; codes NULL if not prepared */
} KernelCtx;

/* Runs fn over [0, n) split into contiguous ranges on up to `threads`
 * threads; fewer when a range would hold under `grain` items. */
void cpu_parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void *arg, int64_t lo, int64_t hi), void *arg);

/* y = x · wᵀ for one or several weight matrices. Without `start`, x is
 * [M,K] and w one [O,K]; with it, w is [E,O,K] and rows start[e] ..
 * start[e+1] of x (sorted by expert) use matrix e. With xs set, x and w are
 * E4M3 codes, xs [rows, ceil(K/128)] and ws [E, ceil(O/128), ceil(K/128)]
 * their scales, and the GEMM is DeepSeek's block-scaled one. */
typedef struct {
    const float *x, *w;
    float *y; /* [rows, O] */
    const int64_t *start;
    int64_t M, E, K, O;
    const float *xs, *ws;
} CpuGemm;
void cpu_gemm(int threads, const CpuGemm *g);

/* Computes node n into out (already shaped and allocated) from its operand
 * values. kv_cache, input, weight and output are handled by the executor.
 * False after reporting at the node's location. */
bool cpu_kernel(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in);

#endif
