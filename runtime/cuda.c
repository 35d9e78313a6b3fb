/* cuda.c — the driver API through dlopen, with every call checked: a
 * failure reports the call as written, the driver's error name and string,
 * and where it happened, like CU_CHECK elsewhere. */
#include "runtime/cuda.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream, *CUgraph, *CUgraphExec, *CUgraphNode;
typedef struct { /* CUgraphExecUpdateResultInfo */
    int result;
    CUgraphNode error_node, error_from_node;
} CuGraphUpdateInfo;
typedef struct { /* CUDA_KERNEL_NODE_PARAMS_v2 (its v1 is the prefix up to extra) */
    CUfunction func;
    unsigned grid[3], block[3], shared;
    void **params, **extra;
    void *kern, *ctx;
} CuKernelNodeParams;
typedef struct { /* CUlaunchAttribute: its id, padding to 8 bytes, a 64-byte value */
    int id;
    char pad[4];
    union {
        char bytes[64];
        int programmatic_serialization; /* CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION's value */
    } value;
} CuLaunchAttribute;
typedef struct { /* CUlaunchConfig */
    unsigned grid[3], block[3], shared;
    CUstream stream;
    CuLaunchAttribute *attrs;
    unsigned nattrs;
} CuLaunchConfig;
#define CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION 6

#define CU_FUNCS(X)                                                                                         \
    X(cuInit, (unsigned))                                                                                   \
    X(cuDeviceGetCount, (int *))                                                                            \
    X(cuDeviceGet, (CUdevice *, int))                                                                       \
    X(cuDeviceGetName, (char *, int, CUdevice))                                                             \
    X(cuDeviceGetAttribute, (int *, int, CUdevice))                                                         \
    X(cuDevicePrimaryCtxRetain, (CUcontext *, CUdevice))                                                    \
    X(cuDevicePrimaryCtxRelease, (CUdevice))                                                                \
    X(cuCtxSetCurrent, (CUcontext))                                                                         \
    X(cuCtxSynchronize, (void))                                                                             \
    X(cuMemAlloc_v2, (RtDevPtr *, size_t))                                                                  \
    X(cuMemFree_v2, (RtDevPtr))                                                                             \
    X(cuMemGetInfo_v2, (size_t *, size_t *))                                                                \
    X(cuMemcpyHtoD_v2, (RtDevPtr, const void *, size_t))                                                    \
    X(cuMemcpyDtoH_v2, (void *, RtDevPtr, size_t))                                                          \
    X(cuModuleLoadData, (CUmodule *, const void *))                                                         \
    X(cuModuleGetFunction, (CUfunction *, CUmodule, const char *))                                          \
    X(cuModuleUnload, (CUmodule))                                                                           \
    X(cuLaunchKernel, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,    \
                       CUstream, void **, void **))                                                         \
    X(cuMemsetD8_v2, (RtDevPtr, unsigned char, size_t))                                                    \
    X(cuFuncSetAttribute, (CUfunction, int, int))                                                          \
    X(cuMemsetD8Async, (RtDevPtr, unsigned char, size_t, CUstream))                                         \
    X(cuStreamCreate, (CUstream *, unsigned))                                                               \
    X(cuStreamDestroy_v2, (CUstream))                                                                       \
    X(cuStreamBeginCapture_v2, (CUstream, int))                                                             \
    X(cuStreamEndCapture, (CUstream, CUgraph *))                                                            \
    X(cuGraphInstantiateWithFlags, (CUgraphExec *, CUgraph, unsigned long long))                            \
    X(cuGraphExecUpdate_v2, (CUgraphExec, CUgraph, CuGraphUpdateInfo *))                                    \
    X(cuGraphLaunch, (CUgraphExec, CUstream))                                                               \
    X(cuGraphDestroy, (CUgraph))                                                                            \
    X(cuGraphExecDestroy, (CUgraphExec))                                                    \
    X(cuMemAllocHost_v2, (void **, size_t))                                                                 \
    X(cuMemFreeHost, (void *))                                                                              \
    X(cuEventCreate, (void **, unsigned))                                                                   \
    X(cuEventRecord, (void *, CUstream))                                                                    \
    X(cuEventSynchronize, (void *))                                                                         \
    X(cuEventElapsedTime, (float *, void *, void *))                                                        \
    X(cuEventDestroy_v2, (void *))                                                                          \
    X(cuStreamWaitEvent, (CUstream, void *, unsigned))                                                      \
    X(cuStreamSynchronize, (CUstream))                                                                      \
    X(cuMemcpyHtoDAsync_v2, (RtDevPtr, const void *, size_t, CUstream))                                     \
    X(cuMemcpyDtoHAsync_v2, (void *, RtDevPtr, size_t, CUstream))                                           \
    X(cuGetErrorName, (CUresult, const char **))                                                            \
    X(cuGetErrorString, (CUresult, const char **))

struct RtKernel {
    CUmodule mod;        /* NULL when a function of an RtModule */
    CUfunction fn;
    size_t smem_opt;     /* dynamic shared memory this function was allowed (beyond the 48 KiB default) */
    struct RtKernel *next;
};

struct RtModule {
    CUmodule mod;
    struct RtModule *next;
};

struct RtCuda {
    void *lib;
#define X(name, args) CUresult(*name) args;
    CU_FUNCS(X)
#undef X
    CUdevice dev;
    CUcontext ctx;
    CUstream stream; /* the current stream: every launch, memset and event goes to it */
    CUstream streams[RT_CUDA_STREAMS]; /* compute, communication: blocking streams (ordered with the legacy one) */
    char name[160];
    int sm;
    RtKernel *kernels;
    RtModule *modules;
    /* optional (a graph's kernel nodes updated in place): NULL when the driver lacks them */
    CUresult (*get_capture_info)(CUstream, int *, unsigned long long *, CUgraph *, const CUgraphNode **, size_t *);
    /* ... its v3 (CUDA 12.3), preferred: with programmatic edges in a capture the v2 query may refuse as lossy */
    CUresult (*get_capture_info3)(CUstream, int *, unsigned long long *, CUgraph *, const CUgraphNode **, const void **, size_t *);
    CUresult (*exec_kernel_set)(CUgraphExec, CUgraphNode, const CuKernelNodeParams *);
    /* optional (programmatic dependent launch: cuLaunchKernelEx, a CUDA 12.3 driver for graphs to keep its edges):
     * NULL when the driver lacks it or is older */
    CUresult (*launch_ex)(const CuLaunchConfig *, CUfunction, void **, void **);
    /* optional (TMA tensor maps, CUDA 12): NULL when the driver lacks it */
    CUresult (*tmap_encode)(void *, int, unsigned, void *, const unsigned long long *, const unsigned long long *, const unsigned *,
                            const unsigned *, int, int, int, int);
    int sms; /* multiprocessors */
};

/* Reports a failed driver call. */
static bool cu_ok(RtCuda *c, DiagEngine *d, CUresult r, const char *call, const char *file, int line) {
    if (r == 0) return true;
    const char *en = "?", *es = "?";
    if (c->cuGetErrorName) c->cuGetErrorName(r, &en);
    if (c->cuGetErrorString) c->cuGetErrorString(r, &es);
    diag_error(d, ((SrcLoc){0}), "CUDA driver: %s failed: %s (%s) at %s:%d", call, en, es, file, line);
    return false;
}
#define CU_CHECK(c, d, call) cu_ok((c), (d), (c)->call, #call, __FILE__, __LINE__)

RtCuda *rt_cuda_open(DiagEngine *d, int ordinal) {
    RtCuda *c = calloc(1, sizeof *c);
    c->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) {
        diag_error(d, ((SrcLoc){0}), "no CUDA driver on this machine (libcuda.so.1: %s); the GPU backend needs an NVIDIA GPU and driver",
                   dlerror());
        free(c);
        return NULL;
    }
#define X(name, args)                                                                                       \
    if (!(*(void **)&c->name = dlsym(c->lib, #name))) {                                                     \
        diag_error(d, ((SrcLoc){0}), "the CUDA driver lacks %s (too old?)", #name);                          \
        rt_cuda_close(c);                                                                                   \
        return NULL;                                                                                        \
    }
    CU_FUNCS(X)
#undef X
    int n = 0;
    if (!CU_CHECK(c, d, cuInit(0)) || !CU_CHECK(c, d, cuDeviceGetCount(&n))) {
        rt_cuda_close(c);
        return NULL;
    }
    if (ordinal < 0 || ordinal >= n) {
        diag_error(d, ((SrcLoc){0}), "GPU %d requested but this machine has %d", ordinal, n);
        rt_cuda_close(c);
        return NULL;
    }
    int major = 0, minor = 0;
    if (!CU_CHECK(c, d, cuDeviceGet(&c->dev, ordinal)) || !CU_CHECK(c, d, cuDeviceGetName(c->name, 128, c->dev)) ||
        !CU_CHECK(c, d, cuDeviceGetAttribute(&major, 75 /* COMPUTE_CAPABILITY_MAJOR */, c->dev)) ||
        !CU_CHECK(c, d, cuDeviceGetAttribute(&minor, 76 /* COMPUTE_CAPABILITY_MINOR */, c->dev)) ||
        !CU_CHECK(c, d, cuDevicePrimaryCtxRetain(&c->ctx, c->dev)) || !CU_CHECK(c, d, cuCtxSetCurrent(c->ctx)) ||
        !CU_CHECK(c, d, cuStreamCreate(&c->streams[0], 0)) || !CU_CHECK(c, d, cuStreamCreate(&c->streams[1], 0))) {
        rt_cuda_close(c);
        return NULL;
    }
    c->stream = c->streams[0];
    c->sm = major * 10 + minor;
    *(void **)&c->get_capture_info = dlsym(c->lib, "cuStreamGetCaptureInfo_v2");
    *(void **)&c->get_capture_info3 = dlsym(c->lib, "cuStreamGetCaptureInfo_v3");
    if (!(*(void **)&c->exec_kernel_set = dlsym(c->lib, "cuGraphExecKernelNodeSetParams_v2")))
        *(void **)&c->exec_kernel_set = dlsym(c->lib, "cuGraphExecKernelNodeSetParams");
    *(void **)&c->tmap_encode = dlsym(c->lib, "cuTensorMapEncodeTiled");
    CUresult (*driver_version)(int *) = NULL;
    *(void **)&driver_version = dlsym(c->lib, "cuDriverGetVersion");
    int ver = 0;
    if (driver_version && driver_version(&ver) == 0 && ver >= 12030 && c->sm >= 90)
        *(void **)&c->launch_ex = dlsym(c->lib, "cuLaunchKernelEx");
    if (c->cuDeviceGetAttribute(&c->sms, 16 /* MULTIPROCESSOR_COUNT */, c->dev) != 0 || c->sms < 1) c->sms = 1;
    size_t len = strlen(c->name);
    snprintf(c->name + len, sizeof c->name - len, ", sm_%d", c->sm);
    return c;
}

void rt_cuda_close(RtCuda *c) {
    if (!c) return;
    for (RtKernel *k = c->kernels, *nx; k; k = nx) {
        nx = k->next;
        if (c->cuModuleUnload && k->mod) c->cuModuleUnload(k->mod);
        free(k);
    }
    for (RtModule *m = c->modules, *nx; m; m = nx) {
        nx = m->next;
        if (c->cuModuleUnload) c->cuModuleUnload(m->mod);
        free(m);
    }
    for (int i = 0; i < RT_CUDA_STREAMS; i++)
        if (c->streams[i]) c->cuStreamDestroy_v2(c->streams[i]);
    if (c->ctx && c->cuDevicePrimaryCtxRelease) c->cuDevicePrimaryCtxRelease(c->dev);
    if (c->lib) dlclose(c->lib);
    free(c);
}

const char *rt_cuda_device_name(const RtCuda *c) { return c->name; }
int rt_cuda_sm(const RtCuda *c) { return c->sm; }
int rt_cuda_sms(const RtCuda *c) { return c->sms; }
bool rt_cuda_has_tensor_maps(const RtCuda *c) { return c->tmap_encode != NULL; }

bool rt_cuda_tensor_map_2d(RtCuda *c, DiagEngine *d, void *map, RtDevPtr base, int64_t rows, int64_t cols, int64_t pitch, int box_rows,
                           int box_cols) {
    if (!c->tmap_encode) {
        diag_error(d, ((SrcLoc){0}), "the CUDA driver lacks cuTensorMapEncodeTiled (TMA tensor maps need CUDA 12)");
        return false;
    }
    const unsigned long long dim[2] = {(unsigned long long)cols, (unsigned long long)rows}, stride[1] = {(unsigned long long)pitch};
    const unsigned box[2] = {(unsigned)box_cols, (unsigned)box_rows}, estride[2] = {1, 1};
    /* UINT8 elements, no interleave, the 128-byte swizzle, L2 promotion 256 bytes, OOB elements zero */
    CUresult r = c->tmap_encode(map, 0, 2, (void *)(uintptr_t)base, dim, stride, box, estride, 0, 3, 3, 0);
    if (r != 0) {
        const char *en = "?";
        if (c->cuGetErrorName) c->cuGetErrorName(r, &en);
        diag_error(d, ((SrcLoc){0}), "CUDA driver: cuTensorMapEncodeTiled failed (%s) for a %lld x %lld byte matrix (pitch %lld), box %d x %d",
                   en, (long long)rows, (long long)cols, (long long)pitch, box_rows, box_cols);
        return false;
    }
    return true;
}

bool rt_cuda_alloc(RtCuda *c, DiagEngine *d, size_t bytes, RtDevPtr *out) {
    if (c->cuMemAlloc_v2(out, bytes ? bytes : 1) == 0) return true;
    size_t free_b = 0, total = 0;
    c->cuMemGetInfo_v2(&free_b, &total);
    diag_error(d, ((SrcLoc){0}), "out of GPU memory: %.2f GiB needed, %.2f GiB free of %.2f GiB", (double)bytes / (1 << 30),
               (double)free_b / (1 << 30), (double)total / (1 << 30));
    return false;
}

void rt_cuda_free(RtCuda *c, RtDevPtr p) {
    if (p) c->cuMemFree_v2(p);
}

bool rt_cuda_upload(RtCuda *c, DiagEngine *d, RtDevPtr dst, const void *src, size_t bytes) {
    return CU_CHECK(c, d, cuMemcpyHtoD_v2(dst, src, bytes));
}

bool rt_cuda_download(RtCuda *c, DiagEngine *d, void *dst, RtDevPtr src, size_t bytes) {
    return CU_CHECK(c, d, cuMemcpyDtoH_v2(dst, src, bytes));
}

RtKernel *rt_cuda_kernel(RtCuda *c, DiagEngine *d, const void *cubin, const char *name) {
    RtKernel *k = calloc(1, sizeof *k);
    if (!CU_CHECK(c, d, cuModuleLoadData(&k->mod, cubin))) {
        diag_note(d, ((SrcLoc){0}), "while loading the module of kernel %s (built for another architecture than %s?)", name, c->name);
        free(k);
        return NULL;
    }
    if (!CU_CHECK(c, d, cuModuleGetFunction(&k->fn, k->mod, name))) {
        c->cuModuleUnload(k->mod);
        free(k);
        return NULL;
    }
    k->next = c->kernels;
    c->kernels = k;
    return k;
}

bool rt_cuda_launch(RtCuda *c, DiagEngine *d, RtKernel *k, unsigned grid, unsigned block, size_t shared, void **args) {
    return CU_CHECK(c, d, cuLaunchKernel(k->fn, grid, 1, 1, block, 1, 1, (unsigned)shared, NULL, args, NULL));
}

bool rt_cuda_sync(RtCuda *c, DiagEngine *d) { return CU_CHECK(c, d, cuCtxSynchronize()); }

RtModule *rt_cuda_module(RtCuda *c, DiagEngine *d, const void *cubin, const char *what) {
    RtModule *m = calloc(1, sizeof *m);
    if (!CU_CHECK(c, d, cuModuleLoadData(&m->mod, cubin))) {
        diag_note(d, ((SrcLoc){0}), "while loading the module of %s (built for another architecture than %s?)", what, c->name);
        free(m);
        return NULL;
    }
    m->next = c->modules;
    c->modules = m;
    return m;
}

RtKernel *rt_cuda_function(RtCuda *c, DiagEngine *d, RtModule *m, const char *name) {
    RtKernel *k = calloc(1, sizeof *k);
    if (!CU_CHECK(c, d, cuModuleGetFunction(&k->fn, m->mod, name))) {
        free(k);
        return NULL;
    }
    k->next = c->kernels;
    c->kernels = k;
    return k;
}

/* Allows k `shared` bytes of dynamic shared memory, once per size (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). */
static bool smem_opt_in(RtCuda *c, DiagEngine *d, RtKernel *k, size_t shared) {
    if (shared <= 48 * 1024 || shared <= k->smem_opt) return true;
    if (!CU_CHECK(c, d, cuFuncSetAttribute(k->fn, 8, (int)shared))) return false;
    k->smem_opt = shared;
    return true;
}

bool rt_cuda_launch_async(RtCuda *c, DiagEngine *d, RtKernel *k, unsigned grid, unsigned block, size_t shared, void **args) {
    if (!smem_opt_in(c, d, k, shared)) return false;
    return CU_CHECK(c, d, cuLaunchKernel(k->fn, grid, 1, 1, block, 1, 1, (unsigned)shared, c->stream, args, NULL));
}

bool rt_cuda_has_pdl(const RtCuda *c) { return c->launch_ex != NULL; }

bool rt_cuda_launch_pdl(RtCuda *c, DiagEngine *d, RtKernel *k, unsigned grid, unsigned block, size_t shared, void **args) {
    if (!c->launch_ex) return rt_cuda_launch_async(c, d, k, grid, block, shared, args);
    if (!smem_opt_in(c, d, k, shared)) return false;
    CuLaunchAttribute attr = {.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, .value.programmatic_serialization = 1};
    CuLaunchConfig cfg = {.grid = {grid, 1, 1}, .block = {block, 1, 1}, .shared = (unsigned)shared, .stream = c->stream, .attrs = &attr, .nattrs = 1};
    return CU_CHECK(c, d, launch_ex(&cfg, k->fn, args, NULL));
}

bool rt_cuda_memset0(RtCuda *c, DiagEngine *d, RtDevPtr p, size_t bytes) {
    return CU_CHECK(c, d, cuMemsetD8Async(p, 0, bytes, c->stream));
}

void *rt_cuda_stream(RtCuda *c) { return c->stream; }
void *rt_cuda_stream_at(RtCuda *c, int s) { return c->streams[s]; }
void rt_cuda_use_stream(RtCuda *c, int s) { c->stream = c->streams[s]; }

bool rt_cuda_stream_wait(RtCuda *c, DiagEngine *d, int s, RtEvent *e) { return CU_CHECK(c, d, cuStreamWaitEvent(c->streams[s], e, 0)); }
bool rt_cuda_stream_sync(RtCuda *c, DiagEngine *d, int s) { return CU_CHECK(c, d, cuStreamSynchronize(c->streams[s])); }

bool rt_cuda_upload_async(RtCuda *c, DiagEngine *d, RtDevPtr dst, const void *src, size_t bytes) {
    return CU_CHECK(c, d, cuMemcpyHtoDAsync_v2(dst, src, bytes, c->stream));
}

bool rt_cuda_download_async(RtCuda *c, DiagEngine *d, void *dst, RtDevPtr src, size_t bytes) {
    return CU_CHECK(c, d, cuMemcpyDtoHAsync_v2(dst, src, bytes, c->stream));
}

struct RtGraph {
    CUgraphExec exec;
    CUgraph graph; /* the capture it was made from: its nodes name the executable's */
    int updates, instantiations;
};

bool rt_cuda_capture_begin(RtCuda *c, DiagEngine *d) {
    return CU_CHECK(c, d, cuStreamBeginCapture_v2(c->stream, 1 /* CU_STREAM_CAPTURE_MODE_THREAD_LOCAL */));
}

bool rt_cuda_capture_end(RtCuda *c, DiagEngine *d, RtGraph **g) {
    CUgraph graph = NULL;
    if (!CU_CHECK(c, d, cuStreamEndCapture(c->stream, &graph))) return false;
    if (!*g) *g = calloc(1, sizeof **g);
    RtGraph *r = *g;
    bool ok = true;
    CuGraphUpdateInfo info;
    if (r->exec && c->cuGraphExecUpdate_v2(r->exec, graph, &info) == 0) {
        r->updates++;
    } else { /* first capture, or another topology (a different number of launches): instantiate anew */
        if (r->exec) c->cuGraphExecDestroy(r->exec);
        r->exec = NULL;
        ok = CU_CHECK(c, d, cuGraphInstantiateWithFlags(&r->exec, graph, 0));
        r->instantiations += ok;
    }
    if (r->graph) c->cuGraphDestroy(r->graph);
    r->graph = graph;
    return ok;
}

bool rt_cuda_graph_nodes(const RtCuda *c) { return (c->get_capture_info || c->get_capture_info3) && c->exec_kernel_set; }

void *rt_cuda_capture_last(RtCuda *c) {
    int status = 0;
    const CUgraphNode *deps = NULL;
    const void *edges = NULL; /* CUgraphEdgeData per dependency (programmatic or not): not needed */
    size_t n = 0;
    CUresult r = c->get_capture_info3 ? c->get_capture_info3(c->stream, &status, NULL, NULL, &deps, &edges, &n)
                 : c->get_capture_info ? c->get_capture_info(c->stream, &status, NULL, NULL, &deps, &n)
                                       : 1;
    if (r != 0 || status != 1 || n != 1) return NULL;
    return deps[0];
}

bool rt_cuda_graph_set_kernel(RtCuda *c, DiagEngine *d, RtGraph *g, void *node, RtKernel *k, unsigned grid, unsigned block,
                              size_t shared, void **args) {
    CuKernelNodeParams p = {.func = k->fn, .grid = {grid, 1, 1}, .block = {block, 1, 1}, .shared = (unsigned)shared, .params = args};
    return CU_CHECK(c, d, exec_kernel_set(g->exec, node, &p));
}

bool rt_cuda_graph_launch(RtCuda *c, DiagEngine *d, RtGraph *g) { return CU_CHECK(c, d, cuGraphLaunch(g->exec, c->stream)); }

int rt_cuda_graph_instantiations(const RtGraph *g) { return g ? g->instantiations : 0; }

void rt_cuda_graph_free(RtCuda *c, RtGraph *g) {
    if (!g) return;
    if (g->exec) c->cuGraphExecDestroy(g->exec);
    if (g->graph) c->cuGraphDestroy(g->graph);
    free(g);
}

void rt_cuda_mem_info(RtCuda *c, size_t *free_b, size_t *total) {
    *free_b = *total = 0;
    c->cuMemGetInfo_v2(free_b, total);
}

void *rt_cuda_host_alloc(RtCuda *c, DiagEngine *d, size_t bytes) {
    void *p = NULL;
    if (!CU_CHECK(c, d, cuMemAllocHost_v2(&p, bytes ? bytes : 1))) return NULL;
    return p;
}

void rt_cuda_host_free(RtCuda *c, void *p) {
    if (p) c->cuMemFreeHost(p);
}

RtEvent *rt_cuda_event(RtCuda *c, DiagEngine *d) {
    void *e = NULL;
    if (!CU_CHECK(c, d, cuEventCreate(&e, 0))) return NULL;
    return e;
}

bool rt_cuda_event_record(RtCuda *c, DiagEngine *d, RtEvent *e) { return CU_CHECK(c, d, cuEventRecord(e, c->stream)); }

bool rt_cuda_event_ms(RtCuda *c, DiagEngine *d, RtEvent *from, RtEvent *to, float *ms) {
    return CU_CHECK(c, d, cuEventSynchronize(to)) && CU_CHECK(c, d, cuEventElapsedTime(ms, from, to));
}

void rt_cuda_event_free(RtCuda *c, RtEvent *e) {
    if (e) c->cuEventDestroy_v2(e);
}
