/* internal.h — private to cpu/: the tensor view kernels work on, the
 * parallel-for, and the kernel entry point. */
#ifndef DSCC_CPU_INTERNAL_H
#define DSCC_CPU_INTERNAL_H

#include "cpu/cpu.h"

typedef struct {
    int rank;
    int64_t d[IR_MAX_RANK];
    int64_t n;  /* elements */
    float *p;
} Ten;

/* Per-run state a kernel may need. */
typedef struct {
    DiagEngine *diag;
    int threads;
    bool fp8;
    const bool *fp8_node; /* by node id: this linear runs in FP8 */
} KernelCtx;

/* Runs fn over [0, n) split into contiguous ranges on up to `threads`
 * threads; small n runs inline. */
void cpu_parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void *arg, int64_t lo, int64_t hi), void *arg);

/* Computes node n into out (already shaped and allocated) from its operand
 * values. kv_cache, input, weight and output are handled by the executor.
 * False after reporting at the node's location. */
bool cpu_kernel(const KernelCtx *c, const IrNode *n, Ten *out, Ten *const *in);

#endif
