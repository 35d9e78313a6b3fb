/* emu_cuda.h — private to the emulated CUDA driver (emu_cuda.c: devices, memory, modules and the
 * block scheduler; emu_stream.c: streams, graphs, events and the entry points that queue work):
 * the driver's types and constants, a kernel function, the context's state and the one launch both
 * parts run. Everything here but the cu* entry points (EMU_API) stays hidden in the library. */
#ifndef DSCC_EMU_CUDA_H
#define DSCC_EMU_CUDA_H

#include "emu_abi.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define EMU_API __attribute__((visibility("default")))

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum {
    CU_OK = 0,
    CU_INVALID_VALUE = 1,
    CU_OUT_OF_MEMORY = 2,
    CU_NOT_INITIALIZED = 3,
    CU_INVALID_DEVICE = 101,
    CU_INVALID_IMAGE = 200,
    CU_INVALID_HANDLE = 400,
    CU_NOT_FOUND = 500,
    CU_LAUNCH_OUT_OF_RESOURCES = 701,
    CU_LAUNCH_FAILED = 719,
    CU_NOT_SUPPORTED = 801,
    CU_GRAPH_EXEC_UPDATE_FAILURE = 910,
};

#define EMU_FILL 0x7f
#define EMU_SMEM_DEFAULT (48u << 10)
#define EMU_SMEM_MAX 232448u /* sm_90: 227 KiB a block may opt in to */
#define EMU_TOTAL_MEM ((size_t)80 << 30)
#define EMU_STACK ((size_t)256 << 10) /* per fiber; the kernels keep tiles of registers */
#define EMU_MAX_WORKERS 16

typedef void (*EmuEntry)(EmuCtx *, void **);

typedef struct {
    EmuEntry entry;
    unsigned bounds;     /* __launch_bounds__, 0: none */
    size_t param_bytes;  /* of the one parameter */
    unsigned smem_optin; /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
    unsigned cluster;    /* __cluster_dims__'s x: CTAs a cluster, 1 without */
    char name[128];
    long launches, blocks; /* DSCC_EMU_PROFILE */
    double seconds;
} EmuFunc;

extern _Atomic CUresult g_sticky;       /* a failed launch poisons the context, as on a GPU */
extern atomic_bool g_threads_used;      /* a stream has had a thread of its own: the library stays loaded */
extern atomic_long g_launches, g_pdl_launches; /* launches run, and of them with programmatic stream serialization */

/* What a launch is refused for, before it runs (so a queued launch reports it at once): CU_OK or the error. */
CUresult launch_check(const EmuFunc *fn, const unsigned grid[3], const unsigned block[3], size_t smem);
/* Waits for the legacy stream and the blocking streams' queued work (all streams with nonblocking_too), as a
 * synchronous call does on a GPU (emu_stream.c). */
void drain_all(bool nonblocking_too);
/* Runs one launch of fn to its end on the calling thread (its blocks over a few host threads); CU_LAUNCH_FAILED
 * after printing what failed (and poisoning the context), CU_INVALID_VALUE or CU_LAUNCH_OUT_OF_RESOURCES for a
 * launch a GPU would refuse. */
CUresult run_launch(const EmuFunc *fn, const unsigned grid[3], const unsigned block[3], size_t smem, void **params, bool pdl);

#endif
