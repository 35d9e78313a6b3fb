/* cuda.h — the CUDA driver API, loaded at run time.
 *
 * dscc links no CUDA driver library: libcuda.so.1 is opened with dlopen
 * when a GPU is first asked for, so the same binary runs on machines
 * without a GPU (where rt_cuda_open reports that clearly) and on the GPU
 * machine. Only the calls the runtime needs are resolved. Part of the
 * runtime's public interface (runtime.h includes it). */
#ifndef DSCC_RT_CUDA_H
#define DSCC_RT_CUDA_H

#include "support/support.h"

typedef struct RtCuda RtCuda;
typedef void RtEvent; /* CUevent */
typedef unsigned long long RtDevPtr; /* CUdeviceptr */

/* Loads the driver, initialises device `ordinal` and makes its primary
 * context current. NULL after reporting (no driver, no GPU, bad ordinal). */
RtCuda *rt_cuda_open(DiagEngine *d, int ordinal);
void rt_cuda_close(RtCuda *c);
/* "NVIDIA H100 80GB HBM3, sm_90" */
const char *rt_cuda_device_name(const RtCuda *c);
int rt_cuda_sm(const RtCuda *c); /* 90 for sm_90 */
int rt_cuda_sms(const RtCuda *c); /* multiprocessors */

/* TMA: a 2-d tensor map (CUtensorMap, 128 bytes, 64-aligned `map`) over a
 * row-major byte matrix [rows][cols] at base with `pitch` bytes a row
 * (a multiple of 16), boxes of box_rows x box_cols bytes (box_cols <= 128),
 * in the 128-byte swizzle, elements outside the matrix read as zero
 * (cuTensorMapEncodeTiled). False after reporting; has_tensor_maps says
 * whether the driver has the call at all. */
bool rt_cuda_has_tensor_maps(const RtCuda *c);
bool rt_cuda_tensor_map_2d(RtCuda *c, DiagEngine *d, void *map, RtDevPtr base, int64_t rows, int64_t cols, int64_t pitch, int box_rows,
                           int box_cols);

/* Device memory; false after reporting how much was asked and is free. */
bool rt_cuda_alloc(RtCuda *c, DiagEngine *d, size_t bytes, RtDevPtr *out);
void rt_cuda_free(RtCuda *c, RtDevPtr p);
bool rt_cuda_upload(RtCuda *c, DiagEngine *d, RtDevPtr dst, const void *src, size_t bytes);
bool rt_cuda_download(RtCuda *c, DiagEngine *d, void *dst, RtDevPtr src, size_t bytes);

/* Loads a cubin and finds a kernel in it; launches it and waits. */
typedef struct RtKernel RtKernel;
RtKernel *rt_cuda_kernel(RtCuda *c, DiagEngine *d, const void *cubin, const char *name);
bool rt_cuda_launch(RtCuda *c, DiagEngine *d, RtKernel *k, unsigned grid, unsigned block, size_t shared, void **args);
bool rt_cuda_sync(RtCuda *c, DiagEngine *d);

/* A module with several kernels: load once, look each up, launch without
 * waiting (on the runtime's stream, in order). */
typedef struct RtModule RtModule;
RtModule *rt_cuda_module(RtCuda *c, DiagEngine *d, const void *cubin, const char *what);
RtKernel *rt_cuda_function(RtCuda *c, DiagEngine *d, RtModule *m, const char *name);
bool rt_cuda_launch_async(RtCuda *c, DiagEngine *d, RtKernel *k, unsigned grid, unsigned block, size_t shared, void **args);
/* Programmatic dependent launch (Hopper; cuLaunchKernelEx with
 * CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, a driver of CUDA
 * 12.3 or later, whose stream capture keeps the programmatic edges): k
 * may start while the kernel before it on the stream still runs, as soon
 * as that one's blocks have all executed griddepcontrol.launch_dependents
 * or exited. So every thread of k must execute griddepcontrol.wait (it
 * returns once the kernels before have completed and their writes are
 * visible) before it reads or writes anything another kernel writes, on
 * every path: a kernel that does not is launched with
 * rt_cuda_launch_async. Without the driver support (has_pdl false) this
 * is rt_cuda_launch_async, where the wait returns at once. */
bool rt_cuda_has_pdl(const RtCuda *c);
bool rt_cuda_launch_pdl(RtCuda *c, DiagEngine *d, RtKernel *k, unsigned grid, unsigned block, size_t shared, void **args);
bool rt_cuda_memset0(RtCuda *c, DiagEngine *d, RtDevPtr p, size_t bytes);
void rt_cuda_mem_info(RtCuda *c, size_t *free_b, size_t *total);
/* Page-locked host memory, for fast transfers. */
void *rt_cuda_host_alloc(RtCuda *c, DiagEngine *d, size_t bytes);
void rt_cuda_host_free(RtCuda *c, void *p);
/* The stream every async launch, memset and event goes to (a CUstream):
 * created blocking, so the synchronous copies order with it. For libraries
 * that take a stream (cuBLASLt). */
void *rt_cuda_stream(RtCuda *c);

/* Two streams: 0 computes, 1 communicates (the IR's `stream` field).
 * Async launches, memsets, copies and events go to the current stream,
 * stream 0 unless rt_cuda_use_stream said otherwise. An event recorded on
 * one stream and waited for on another (cuStreamWaitEvent) orders them;
 * stream_sync waits on the host until stream s is idle. The async copies
 * take page-locked host memory (rt_cuda_host_alloc). */
#define RT_CUDA_STREAMS 2
void *rt_cuda_stream_at(RtCuda *c, int s);
void rt_cuda_use_stream(RtCuda *c, int s);
bool rt_cuda_stream_wait(RtCuda *c, DiagEngine *d, int s, RtEvent *e);
bool rt_cuda_stream_sync(RtCuda *c, DiagEngine *d, int s);
bool rt_cuda_upload_async(RtCuda *c, DiagEngine *d, RtDevPtr dst, const void *src, size_t bytes);
bool rt_cuda_download_async(RtCuda *c, DiagEngine *d, void *dst, RtDevPtr src, size_t bytes);

/* CUDA graphs: launches between begin and end are recorded instead of run;
 * end turns them into *g (made on first use), updating its executable graph
 * in place when only parameters changed (grid sizes, arguments) and
 * instantiating anew otherwise. Then launch runs the whole recording. */
typedef struct RtGraph RtGraph;
bool rt_cuda_capture_begin(RtCuda *c, DiagEngine *d);
bool rt_cuda_capture_end(RtCuda *c, DiagEngine *d, RtGraph **g);
bool rt_cuda_graph_launch(RtCuda *c, DiagEngine *d, RtGraph *g);
int rt_cuda_graph_instantiations(const RtGraph *g);
/* Kernel nodes updated in place (when rt_cuda_graph_nodes: the driver has
 * cuStreamGetCaptureInfo_v2 and cuGraphExecKernelNodeSetParams): during a
 * capture, capture_last is the node the current stream's last launch made
 * (NULL: unknown); after capture_end, set_kernel gives that node of the
 * executable graph new arguments and grid (same function) for its next
 * launches, without capturing again. */
bool rt_cuda_graph_nodes(const RtCuda *c);
void *rt_cuda_capture_last(RtCuda *c);
bool rt_cuda_graph_set_kernel(RtCuda *c, DiagEngine *d, RtGraph *g, void *node, RtKernel *k, unsigned grid, unsigned block,
                              size_t shared, void **args);
void rt_cuda_graph_free(RtCuda *c, RtGraph *g);

/* Events on the current stream, for timing, traces and ordering streams. */
RtEvent *rt_cuda_event(RtCuda *c, DiagEngine *d);
bool rt_cuda_event_record(RtCuda *c, DiagEngine *d, RtEvent *e);
bool rt_cuda_event_ms(RtCuda *c, DiagEngine *d, RtEvent *from, RtEvent *to, float *ms); /* waits for `to` */
void rt_cuda_event_free(RtCuda *c, RtEvent *e);

#endif
