/* gpu_trace.h — what the CUDA backend's trace and NVTX ranges say of a
 * generated kernel (internal to runtime/gpu_exec.c and gpu_exec_trace.c). */
#ifndef DSCC_RUNTIME_GPU_TRACE_H
#define DSCC_RUNTIME_GPU_TRACE_H
#ifdef DSCC_HAVE_NVRTC

#include "codegen/gen.h"
#include "ir/ir.h"

#include <cjson/cJSON.h>

/* What kernel k reads and writes and computes at dims sym, by
 * ir_stats_node_flops / ir_stats_node_bytes over its members: the values
 * it reads from memory (weights, inputs, caches and activations made by
 * other kernels), each once, in their stored dtypes; the members it
 * stores; the FLOPs of every member. */
typedef struct {
    double flops, bytes_read, bytes_written;
} GpuKernelCost;

void gpu_trace_cost(const IrGraph *g, const CgProgram *p, int k, const int64_t *sym, GpuKernelCost *c);

/* Kernel k's event args at dims sym, `dur_us` long: its IR ops, the last
 * op's shape and dtype, phases, library form, DSL location, what it
 * reads (node, shape, dtype, bytes), bytes and FLOPs, and the GB/s and
 * TFLOPS they make in dur_us (when > 0). */
cJSON *gpu_trace_kernel_args(const IrGraph *g, const CgProgram *p, int k, const int64_t *sym, double dur_us);

/* Per kernel: the NVTX range it opens, the name of the first weight it
 * reads up to its first numeric component ("model.layers.3") or, without
 * one, its first component ("model"); NULL for a kernel that reads no
 * weight (it stays in the range before it). Arena-allocated. */
const char **gpu_trace_ranges(const IrGraph *g, const CgProgram *p, Arena *a);

#endif
#endif
