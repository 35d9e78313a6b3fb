/* emu_cuda.c — an emulated CUDA driver (built as libcuda.so.1) that runs
 * the generated kernels on the CPU, so the GPU tests can run where there
 * is no GPU: exactly the cu* entry points runtime/cuda.c resolves.
 *
 * Device memory is host memory (a device pointer is a host pointer),
 * every call is synchronous, a stream is a name, a graph is a recorded
 * list of launches and memsets. A "cubin" is what emu_nvrtc.c made: a
 * shared object (the kernel source translated to C++ and compiled by g++)
 * with a tag after it. The design choice: a block's threads are fibers
 * (ucontext) of one host thread, switched only at __syncthreads, warp
 * collectives and faults, in a fixed order, so a run is deterministic and
 * a missing barrier shows as a wrong value every time, not now and then;
 * blocks are spread over a few host threads. Freshly allocated memory and
 * each block's shared memory are filled with 0x7f (3.4e38 as f32 and
 * bf16, NaN as E4M3, 2.1e9 as i32), so reading what nobody wrote shows.
 * Checks a GPU would fail on (or leave undefined) end the launch with
 * CUDA_ERROR_LAUNCH_FAILED and a message naming kernel, block, thread and
 * source line: divergent __syncthreads, warp collectives with exited or
 * absent lanes, deadlock, misaligned cp.async, too much shared memory,
 * blocks larger than __launch_bounds__. */

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

static bool g_init;
static atomic_size_t g_used;
static CUresult g_sticky; /* a failed launch poisons the context, as on a GPU */

/* ---- errors ------------------------------------------------------------------ */

EMU_API CUresult cuGetErrorName(CUresult r, const char **s) {
    switch (r) {
    case CU_OK: *s = "CUDA_SUCCESS"; break;
    case CU_INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
    case CU_OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case CU_NOT_INITIALIZED: *s = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case CU_INVALID_DEVICE: *s = "CUDA_ERROR_INVALID_DEVICE"; break;
    case CU_INVALID_IMAGE: *s = "CUDA_ERROR_INVALID_IMAGE"; break;
    case CU_INVALID_HANDLE: *s = "CUDA_ERROR_INVALID_HANDLE"; break;
    case CU_NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
    case CU_LAUNCH_OUT_OF_RESOURCES: *s = "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"; break;
    case CU_LAUNCH_FAILED: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
    case CU_NOT_SUPPORTED: *s = "CUDA_ERROR_NOT_SUPPORTED"; break;
    case CU_GRAPH_EXEC_UPDATE_FAILURE: *s = "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE"; break;
    default: *s = NULL; return CU_INVALID_VALUE;
    }
    return CU_OK;
}

EMU_API CUresult cuGetErrorString(CUresult r, const char **s) {
    if (cuGetErrorName(r, s) != CU_OK) return CU_INVALID_VALUE;
    *s = r == CU_LAUNCH_FAILED ? "an emulated kernel failed (the emulator printed why)" : "emulated CUDA device";
    return CU_OK;
}

/* ---- device and context -------------------------------------------------------- */

EMU_API CUresult cuInit(unsigned flags) {
    if (flags) return CU_INVALID_VALUE;
    g_init = true;
    return CU_OK;
}

EMU_API CUresult cuDeviceGetCount(int *n) {
    if (!g_init) return CU_NOT_INITIALIZED;
    *n = 1;
    return CU_OK;
}

EMU_API CUresult cuDeviceGet(int *dev, int ordinal) {
    if (!g_init) return CU_NOT_INITIALIZED;
    if (ordinal != 0) return CU_INVALID_DEVICE;
    *dev = 0;
    return CU_OK;
}

EMU_API CUresult cuDeviceGetName(char *name, int len, int dev) {
    if (dev != 0 || len < 1) return CU_INVALID_VALUE;
    snprintf(name, (size_t)len, "dscc emulated CUDA device (kernels on the CPU)");
    return CU_OK;
}

EMU_API CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
    if (dev != 0) return CU_INVALID_DEVICE;
    switch (attr) {
    case 1: *v = 1024; break;             /* MAX_THREADS_PER_BLOCK */
    case 8: *v = EMU_SMEM_DEFAULT; break; /* MAX_SHARED_MEMORY_PER_BLOCK */
    case 10: *v = 32; break;              /* WARP_SIZE */
    case 16: *v = 132; break;             /* MULTIPROCESSOR_COUNT */
    case 75: *v = 9; break;               /* COMPUTE_CAPABILITY_MAJOR */
    case 76: *v = 0; break;               /* COMPUTE_CAPABILITY_MINOR */
    case 97: *v = EMU_SMEM_MAX; break;    /* MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
    default: return CU_INVALID_VALUE;
    }
    return CU_OK;
}

static int g_ctx_token;
EMU_API CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
    if (dev != 0) return CU_INVALID_DEVICE;
    *ctx = &g_ctx_token;
    return CU_OK;
}
EMU_API CUresult cuDevicePrimaryCtxRelease(int dev) { return dev == 0 ? CU_OK : CU_INVALID_DEVICE; }
EMU_API CUresult cuCtxSetCurrent(void *ctx) { return ctx == &g_ctx_token || !ctx ? CU_OK : CU_INVALID_VALUE; }
EMU_API CUresult cuCtxSynchronize(void) { return g_sticky; }

/* ---- memory ------------------------------------------------------------------------ */

/* Each allocation carries its size in front, for cuMemGetInfo. */
typedef struct {
    size_t bytes;
    char pad[248];
} AllocHead;

static void *emu_alloc(size_t bytes) {
    AllocHead *h = aligned_alloc(256, sizeof(AllocHead) + ((bytes + 255) & ~(size_t)255));
    if (!h) return NULL;
    h->bytes = bytes;
    memset(h + 1, EMU_FILL, bytes);
    atomic_fetch_add(&g_used, bytes);
    return h + 1;
}

static void emu_free(void *p) {
    if (!p) return;
    AllocHead *h = (AllocHead *)p - 1;
    atomic_fetch_sub(&g_used, h->bytes);
    free(h);
}

EMU_API CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
    if (!bytes) return CU_INVALID_VALUE;
    if (atomic_load(&g_used) + bytes > EMU_TOTAL_MEM) return CU_OUT_OF_MEMORY;
    void *m = emu_alloc(bytes);
    if (!m) return CU_OUT_OF_MEMORY;
    *p = (CUdeviceptr)(uintptr_t)m;
    return CU_OK;
}
EMU_API CUresult cuMemFree_v2(CUdeviceptr p) {
    emu_free((void *)(uintptr_t)p);
    return CU_OK;
}
EMU_API CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total) {
    *total = EMU_TOTAL_MEM;
    *free_b = EMU_TOTAL_MEM - atomic_load(&g_used);
    return CU_OK;
}
EMU_API CUresult cuMemAllocHost_v2(void **p, size_t bytes) {
    *p = malloc(bytes ? bytes : 1);
    return *p ? CU_OK : CU_OUT_OF_MEMORY;
}
EMU_API CUresult cuMemFreeHost(void *p) {
    free(p);
    return CU_OK;
}
EMU_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
    if (g_sticky) return g_sticky;
    memcpy((void *)(uintptr_t)dst, src, n);
    return CU_OK;
}
EMU_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
    if (g_sticky) return g_sticky;
    memcpy(dst, (const void *)(uintptr_t)src, n);
    return CU_OK;
}
EMU_API CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) {
    if (g_sticky) return g_sticky;
    memset((void *)(uintptr_t)p, v, n);
    return CU_OK;
}

/* ---- modules and functions ------------------------------------------------------ */

typedef void (*EmuEntry)(EmuCtx *, void **);

typedef struct {
    EmuEntry entry;
    unsigned bounds;     /* __launch_bounds__, 0: none */
    size_t param_bytes;  /* of the one parameter */
    unsigned smem_optin; /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
    char name[128];
    long launches, blocks; /* DSCC_EMU_PROFILE */
    double seconds;
} EmuFunc;

typedef struct {
    void *so;
} EmuModule;

/* The size of the shared object at the front of an emulated cubin: its
 * section headers come last (how ld lays out a .so). */
static size_t elf_size(const unsigned char *p) {
    if (memcmp(p, "\177ELF", 4) != 0 || p[4] != 2 /* 64-bit */) return 0;
    uint64_t shoff;
    uint16_t shentsize, shnum;
    memcpy(&shoff, p + 0x28, 8);
    memcpy(&shentsize, p + 0x3a, 2);
    memcpy(&shnum, p + 0x3c, 2);
    return (size_t)(shoff + (uint64_t)shentsize * shnum);
}

EMU_API CUresult cuModuleLoadData(void **mod, const void *image) {
    const unsigned char *p = image;
    size_t n = p ? elf_size(p) : 0;
    uint64_t tagged = 0;
    if (n) memcpy(&tagged, p + n + 16, 8);
    if (!n || memcmp(p + n, EMU_MODULE_MAGIC, 16) != 0 || tagged != n) {
        fprintf(stderr, "emulated CUDA: cuModuleLoadData: not a module of the emulated NVRTC (a real cubin?)\n");
        return CU_INVALID_IMAGE;
    }
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/dscc-emu-module-XXXXXX.so", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(path, 3);
    if (fd < 0) return CU_OUT_OF_MEMORY;
    bool ok = write(fd, p, n) == (ssize_t)n;
    close(fd);
    void *so = ok ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!so) fprintf(stderr, "emulated CUDA: cannot load a module: %s\n", ok ? dlerror() : "write failed");
    unlink(path);
    if (!so) return CU_INVALID_IMAGE;
    EmuModule *m = calloc(1, sizeof *m);
    m->so = so;
    *mod = m;
    return CU_OK;
}

EMU_API CUresult cuModuleUnload(void *mod) {
    EmuModule *m = mod;
    if (!m) return CU_INVALID_HANDLE;
    dlclose(m->so);
    free(m);
    return CU_OK;
}

/* DSCC_EMU_PROFILE=1: where the emulated time went, printed at exit. */
static EmuFunc **g_funcs;
static int g_nfuncs;
static double g_host_t0;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_seconds(const void *a, const void *b) {
    double x = (*(EmuFunc *const *)a)->seconds, y = (*(EmuFunc *const *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

__attribute__((destructor)) static void profile_print(void) {
    const char *e = getenv("DSCC_EMU_PROFILE");
    if (!e || !*e || *e == '0' || !g_nfuncs) return;
    qsort(g_funcs, (size_t)g_nfuncs, sizeof *g_funcs, by_seconds);
    double total = 0;
    for (int i = 0; i < g_nfuncs; i++) total += g_funcs[i]->seconds;
    fprintf(stderr, "emulated CUDA: %.1f s in kernels of %.1f s since the first module (top functions by time):\n", total, now_s() - g_host_t0);
    for (int i = 0; i < g_nfuncs && i < 25; i++)
        fprintf(stderr, "  %8.2f s %7ld launches %9ld blocks  %s\n", g_funcs[i]->seconds, g_funcs[i]->launches, g_funcs[i]->blocks, g_funcs[i]->name);
}

static void profile_add(EmuFunc *f) {
    if (!g_nfuncs) g_host_t0 = now_s();
    g_funcs = realloc(g_funcs, sizeof *g_funcs * (size_t)(g_nfuncs + 1));
    g_funcs[g_nfuncs++] = f;
}

/* Functions are never freed by runtime/cuda.c's API; they live as long as the process. */
EMU_API CUresult cuModuleGetFunction(void **fn, void *mod, const char *name) {
    EmuModule *m = mod;
    char sym[192];
    snprintf(sym, sizeof sym, "emu_entry_%s", name);
    void *e = dlsym(m->so, sym);
    snprintf(sym, sizeof sym, "emu_bounds_%s", name);
    const unsigned *b = dlsym(m->so, sym);
    snprintf(sym, sizeof sym, "emu_params_%s", name);
    const unsigned long *pb = dlsym(m->so, sym);
    if (!e || !b || !pb) return CU_NOT_FOUND;
    EmuFunc *f = calloc(1, sizeof *f);
    profile_add(f);
    *(void **)&f->entry = e;
    f->bounds = *b;
    f->param_bytes = *pb;
    const char *mod_name = dlsym(m->so, "emu_module_name");
    snprintf(f->name, sizeof f->name, "%s.%s", mod_name ? mod_name : "?", name);
    *fn = f;
    return CU_OK;
}

EMU_API CUresult cuFuncSetAttribute(void *fn, int attr, int v) {
    EmuFunc *f = fn;
    if (attr != 8 /* MAX_DYNAMIC_SHARED_SIZE_BYTES */) return CU_NOT_SUPPORTED;
    if (v < 0 || (unsigned)v > EMU_SMEM_MAX) return CU_INVALID_VALUE;
    f->smem_optin = (unsigned)v;
    return CU_OK;
}

/* ---- the block scheduler ----------------------------------------------------------- */

enum { F_RUN, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };

typedef struct {
    void *dst;
    const void *src;
    int bytes, src_bytes;
    unsigned group; /* commits before it was issued */
} EmuCopy;

typedef struct {
    ucontext_t uc;
    int state, line;
    unsigned xmask; /* at a warp exchange: its mask, bytes and buffer parity */
    size_t xbytes;
    int parity;
    EmuCopy *cp; /* cp.async issued, not landed */
    int ncp, capcp;
    unsigned groups;
} Fiber;

typedef struct {
    const EmuFunc *fn;
    unsigned grid[3], block[3];
    size_t smem;
    void **params;
    atomic_long next; /* the next block to take */
    atomic_int failed;
    pthread_mutex_t mu;
    char msg[1024];
} Launch;

typedef struct {
    EmuCtx ctx;
    ucontext_t main;
    Fiber *f;
    int nf;
    char *stacks;
    unsigned char *smem;
    size_t smem_cap;
    unsigned char (*xbuf)[2][32][EMU_WARP_SLOT]; /* per warp, double-buffered */
    int cur, nthreads;
    long block;
    Launch *L;
    void *altstack;
} Worker;

static __thread Worker *tls_w;

static void linear_to_dim3(unsigned i, const unsigned d[3], EmuDim3 *o) {
    o->x = i % d[0];
    o->y = i / d[0] % d[1];
    o->z = i / (d[0] * d[1]);
}

static void yield_to_main(Worker *w) { swapcontext(&w->f[w->cur].uc, &w->main); }

static void launch_fail(Worker *w, const char *fmt_what, int line) {
    Launch *L = w->L;
    pthread_mutex_lock(&L->mu);
    if (!atomic_load(&L->failed)) {
        EmuDim3 b, t;
        linear_to_dim3((unsigned)w->block, L->grid, &b);
        linear_to_dim3((unsigned)(w->cur < 0 ? 0 : w->cur), L->block, &t);
        if (w->cur >= 0)
            snprintf(L->msg, sizeof L->msg, "emulated CUDA: kernel %s, block %u, thread %u: %s (line %d of its source)", L->fn->name, b.x,
                     t.x, fmt_what, line);
        else snprintf(L->msg, sizeof L->msg, "emulated CUDA: kernel %s, block %u: %s", L->fn->name, b.x, fmt_what);
        atomic_store(&L->failed, 1);
    }
    pthread_mutex_unlock(&L->mu);
}

static void ctx_fault(EmuCtx *c, const char *what, int line) {
    Worker *w = c->priv;
    launch_fail(w, what, line);
    w->f[w->cur].state = F_DONE;
    yield_to_main(w); /* never resumed: the launch is abandoned */
    abort();
}

static void ctx_sync_block(EmuCtx *c, int line) {
    Worker *w = c->priv;
    w->f[w->cur].state = F_WAIT_BLOCK;
    w->f[w->cur].line = line;
    yield_to_main(w);
}

static void ctx_warp_exchange(EmuCtx *c, unsigned mask, const void *mine, void *all, size_t bytes, int line) {
    Worker *w = c->priv;
    Fiber *f = &w->f[w->cur];
    int lane = w->cur & 31, warp = w->cur >> 5;
    if (bytes > EMU_WARP_SLOT) ctx_fault(c, "warp exchange too large", line);
    if (!(mask >> lane & 1u)) ctx_fault(c, "a warp collective whose mask leaves out the calling lane", line);
    memcpy(w->xbuf[warp][f->parity][lane], mine, bytes);
    f->state = F_WAIT_WARP;
    f->line = line;
    f->xmask = mask;
    f->xbytes = bytes;
    yield_to_main(w);
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1u) memcpy((char *)all + (size_t)l * bytes, w->xbuf[warp][f->parity][l], bytes);
    f->parity ^= 1;
}

static void land(EmuCopy *c) {
    memcpy(c->dst, c->src, (size_t)c->src_bytes);
    memset((char *)c->dst + c->src_bytes, 0, (size_t)(c->bytes - c->src_bytes));
}

static void ctx_cp_async(EmuCtx *c, void *dst, const void *src, int bytes, int src_bytes) {
    Worker *w = c->priv;
    Fiber *f = &w->f[w->cur];
    if ((unsigned char *)dst < w->smem || (unsigned char *)dst + bytes > w->smem + w->ctx.smem_bytes)
        ctx_fault(c, "cp.async to outside the block's dynamic shared memory", 0);
    if (f->ncp == f->capcp) {
        f->capcp = f->capcp ? 2 * f->capcp : 64;
        f->cp = realloc(f->cp, sizeof(EmuCopy) * (size_t)f->capcp);
    }
    f->cp[f->ncp++] = (EmuCopy){dst, src, bytes, src_bytes, f->groups};
}

static void ctx_cp_commit(EmuCtx *c) {
    Worker *w = c->priv;
    w->f[w->cur].groups++;
}

/* cp.async.wait_group N: every committed group but the newest N lands now
 * (as late as the hardware may make it); later copies stay in flight. */
static void ctx_cp_wait(EmuCtx *c, int pending) {
    Worker *w = c->priv;
    Fiber *f = &w->f[w->cur];
    int keep = 0;
    for (int i = 0; i < f->ncp; i++) {
        if (f->cp[i].group + (unsigned)pending < f->groups) land(&f->cp[i]);
        else f->cp[keep++] = f->cp[i];
    }
    f->ncp = keep;
}

static void fiber_main(void) {
    Worker *w = tls_w;
    w->L->fn->entry(&w->ctx, w->L->params);
    w->f[w->cur].state = F_DONE; /* returns to w->main through uc_link */
}

/* Room for a block of n threads: fibers, their stacks (a guard page under each), exchange buffers. */
static bool worker_reserve(Worker *w, int n) {
    if (n <= w->nf) return true;
    if (w->stacks) munmap(w->stacks, (EMU_STACK + 4096) * (size_t)w->nf);
    for (int i = 0; i < w->nf; i++) free(w->f[i].cp);
    free(w->f);
    free(w->xbuf);
    w->nf = n;
    w->f = calloc((size_t)n, sizeof(Fiber));
    w->xbuf = calloc((size_t)(n + 31) / 32, sizeof *w->xbuf);
    w->stacks = mmap(NULL, (EMU_STACK + 4096) * (size_t)n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (w->stacks == MAP_FAILED) {
        w->stacks = NULL;
        w->nf = 0;
        return false;
    }
    for (int i = 0; i < n; i++) mprotect(w->stacks + (EMU_STACK + 4096) * (size_t)i, 4096, PROT_NONE);
    return true;
}

/* After every fiber ran until it waits or exits: release the warps whose
 * collective is complete; else the block barrier when all wait there;
 * else report why nothing can move. Returns false when the block is done
 * or failed. */
static bool resolve(Worker *w) {
    int n = w->nthreads;
    bool moved = false;
    for (int w0 = 0; w0 < n; w0 += 32) {
        int hi = w0 + 32 < n ? w0 + 32 : n, first = -1;
        for (int t = w0; t < hi; t++)
            if (w->f[t].state == F_WAIT_WARP) {
                first = t;
                break;
            }
        if (first < 0) continue;
        const Fiber *a = &w->f[first];
        bool ready = true;
        for (int l = 0; l < 32 && ready; l++) {
            int t = w0 + l;
            bool in = a->xmask >> l & 1u;
            const Fiber *b = t < hi ? &w->f[t] : NULL;
            if (in && (!b || b->state == F_DONE)) {
                w->cur = first;
                launch_fail(w, b ? "a warp collective names a lane that has exited" : "a warp collective names a lane the block lacks",
                            a->line);
                return false;
            }
            if (b && b->state == F_WAIT_WARP && (!in || b->xmask != a->xmask || b->xbytes != a->xbytes || b->line != a->line)) {
                w->cur = t;
                launch_fail(w, "lanes of one warp are at different collectives (divergent shuffle or mma)", b->line);
                return false;
            }
            if (in && b->state != F_WAIT_WARP) ready = false;
        }
        if (!ready) continue;
        for (int l = 0; l < 32; l++)
            if (a->xmask >> l & 1u) w->f[w0 + l].state = F_RUN;
        moved = true;
    }
    if (moved) return true;
    int live = 0, at_block = 0, first = -1;
    for (int t = 0; t < n; t++) {
        if (w->f[t].state == F_DONE) continue;
        live++;
        if (w->f[t].state == F_WAIT_BLOCK) {
            at_block++;
            if (first < 0) first = t;
            else if (w->f[t].line != w->f[first].line) {
                char m[160];
                snprintf(m, sizeof m, "divergent __syncthreads: thread %d waits at line %d, thread %d at line %d", first, w->f[first].line,
                         t, w->f[t].line);
                w->cur = t;
                launch_fail(w, m, w->f[t].line);
                return false;
            }
        }
    }
    if (!live) return false;
    if (at_block == live) {
        for (int t = 0; t < n; t++)
            if (w->f[t].state == F_WAIT_BLOCK) w->f[t].state = F_RUN;
        return true;
    }
    for (int t = 0; t < n; t++)
        if (w->f[t].state == F_WAIT_WARP) {
            w->cur = t;
            launch_fail(w, "deadlock: a warp collective waits for lanes held at __syncthreads", w->f[t].line);
            return false;
        }
    launch_fail(w, "the scheduler lost track of the block", 0);
    return false;
}

/* Runs block b: each fiber until it waits, in ascending order on even
 * blocks and descending on odd ones (an order a missing barrier cannot
 * pass both ways), then the barriers resolve. */
static void run_block(Worker *w, long b, ucontext_t *tmpl) {
    Launch *L = w->L;
    int n = w->nthreads;
    w->block = b;
    w->cur = -1;
    linear_to_dim3((unsigned)b, L->grid, &w->ctx.block_idx);
    memset(w->smem, EMU_FILL, L->smem);
    for (int t = 0; t < n; t++) {
        Fiber *f = &w->f[t];
        f->uc = *tmpl;
        f->uc.uc_stack.ss_sp = w->stacks + (EMU_STACK + 4096) * (size_t)t + 4096;
        f->uc.uc_stack.ss_size = EMU_STACK;
        f->uc.uc_link = &w->main;
        makecontext(&f->uc, fiber_main, 0);
        f->state = F_RUN;
        f->ncp = 0;
        f->groups = 0;
        f->parity = 0;
    }
    bool down = b & 1;
    do {
        for (int i = 0; i < n && !atomic_load(&L->failed); i++) {
            int t = down ? n - 1 - i : i;
            if (w->f[t].state != F_RUN) continue;
            w->cur = t;
            linear_to_dim3((unsigned)t, L->block, &w->ctx.thread_idx);
            swapcontext(&w->main, &w->f[t].uc);
        }
    } while (!atomic_load(&L->failed) && resolve(w));
}

static Worker g_workers[EMU_MAX_WORKERS];

/* runtime/cuda.c dlcloses the driver with each executor: give the workers' memory back. */
__attribute__((destructor)) static void workers_free(void) {
    for (int i = 0; i < EMU_MAX_WORKERS; i++) {
        Worker *w = &g_workers[i];
        if (w->stacks) munmap(w->stacks, (EMU_STACK + 4096) * (size_t)w->nf);
        for (int k = 0; k < w->nf; k++) free(w->f[k].cp);
        free(w->f);
        free(w->xbuf);
        free(w->smem);
        free(w->altstack);
        memset(w, 0, sizeof *w);
    }
}
static struct sigaction g_old_segv, g_old_bus;
static pthread_once_t g_sig_once = PTHREAD_ONCE_INIT;

/* A kernel's invalid access: say where, then let the previous handler (or the default) have it. */
static void on_fault(int sig, siginfo_t *si, void *uc) {
    Worker *w = tls_w;
    if (w && w->L && w->cur >= 0) {
        char m[512];
        int len = snprintf(m, sizeof m, "emulated CUDA: kernel %s, block %ld, thread %d: invalid memory access at %p\n", w->L->fn->name,
                           w->block, w->cur, si->si_addr);
        if (write(2, m, (size_t)len) < 0) {
        }
    }
    struct sigaction *old = sig == SIGSEGV ? &g_old_segv : &g_old_bus;
    if (old->sa_flags & SA_SIGINFO && old->sa_sigaction) old->sa_sigaction(sig, si, uc);
    else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) old->sa_handler(sig);
    else {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

static void install_fault_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
    sigaction(SIGBUS, &sa, &g_old_bus);
}

static void *worker_run(void *arg) {
    Worker *w = arg;
    Launch *L = w->L;
    tls_w = w;
    if (!w->altstack) w->altstack = malloc(1 << 16);
    stack_t ss = {.ss_sp = w->altstack, .ss_size = 1 << 16}, old_ss;
    sigaltstack(&ss, &old_ss);
    ucontext_t tmpl;
    getcontext(&tmpl);
    for (long b; !atomic_load(&L->failed) && (b = atomic_fetch_add(&L->next, 1)) < (long)L->grid[0] * L->grid[1] * L->grid[2];)
        run_block(w, b, &tmpl);
    sigaltstack(&old_ss, NULL);
    tls_w = NULL;
    return NULL;
}

static int worker_count(long blocks) {
    const char *e = getenv("DSCC_EMU_THREADS");
    long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > EMU_MAX_WORKERS) n = EMU_MAX_WORKERS;
    return (int)(n < blocks ? n : blocks);
}

static pthread_mutex_t g_launch_mu = PTHREAD_MUTEX_INITIALIZER;

static CUresult run_launch(const EmuFunc *fn, const unsigned grid[3], const unsigned block[3], size_t smem, void **params) {
    unsigned nthreads = block[0] * block[1] * block[2];
    long blocks = (long)grid[0] * grid[1] * grid[2];
    if (!nthreads || nthreads > 1024 || (fn->bounds && nthreads > fn->bounds)) {
        fprintf(stderr, "emulated CUDA: kernel %s launched with %u threads a block (launch bounds %u)\n", fn->name, nthreads, fn->bounds);
        return CU_INVALID_VALUE;
    }
    if (smem > (fn->smem_optin > EMU_SMEM_DEFAULT ? fn->smem_optin : EMU_SMEM_DEFAULT)) {
        fprintf(stderr, "emulated CUDA: kernel %s asks %zu bytes of dynamic shared memory, %u allowed\n", fn->name, smem,
                fn->smem_optin > EMU_SMEM_DEFAULT ? fn->smem_optin : EMU_SMEM_DEFAULT);
        return CU_LAUNCH_OUT_OF_RESOURCES;
    }
    if (!blocks) return CU_INVALID_VALUE;
    static int trace = -1; /* DSCC_EMU_TRACE=1: every launch on stderr */
    if (trace < 0) trace = getenv("DSCC_EMU_TRACE") && strcmp(getenv("DSCC_EMU_TRACE"), "0") != 0;
    if (trace) fprintf(stderr, "emulated CUDA: launch %s <<<%ld, %u, %zu>>>\n", fn->name, blocks, nthreads, smem);
    pthread_once(&g_sig_once, install_fault_handler);
    pthread_mutex_lock(&g_launch_mu);
    Launch L = {.fn = fn, .grid = {grid[0], grid[1], grid[2]}, .block = {block[0], block[1], block[2]}, .smem = smem, .params = params};
    atomic_init(&L.next, 0);
    atomic_init(&L.failed, 0);
    pthread_mutex_init(&L.mu, NULL);
    int nw = worker_count(blocks);
    bool ok = true;
    double t0 = now_s();
    for (int i = 0; i < nw && ok; i++) {
        Worker *w = &g_workers[i];
        w->L = &L;
        w->nthreads = (int)nthreads;
        w->ctx = (EmuCtx){.block_dim = {block[0], block[1], block[2]}, .grid_dim = {grid[0], grid[1], grid[2]}, .smem_bytes = smem,
                          .sync_block = ctx_sync_block, .warp_exchange = ctx_warp_exchange, .cp_async = ctx_cp_async,
                          .cp_commit = ctx_cp_commit, .cp_wait = ctx_cp_wait, .fault = ctx_fault, .priv = w};
        if (smem + 16 > w->smem_cap) {
            free(w->smem);
            w->smem_cap = smem + 16 > 4096 ? smem + 16 : 4096;
            w->smem = aligned_alloc(128, (w->smem_cap + 127) & ~(size_t)127);
        }
        w->ctx.smem = w->smem;
        ok = w->smem && worker_reserve(w, (int)nthreads);
    }
    pthread_t th[EMU_MAX_WORKERS];
    int started = 0;
    for (int i = 1; i < nw && ok; i++)
        if (pthread_create(&th[started], NULL, worker_run, &g_workers[i]) == 0) started++;
    if (ok) worker_run(&g_workers[0]);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < nw; i++) g_workers[i].L = NULL;
    EmuFunc *pf = (EmuFunc *)fn;
    pf->seconds += now_s() - t0;
    pf->launches++;
    pf->blocks += blocks;
    CUresult r = !ok ? CU_OUT_OF_MEMORY : atomic_load(&L.failed) ? CU_LAUNCH_FAILED : CU_OK;
    if (r == CU_LAUNCH_FAILED) {
        fprintf(stderr, "%s\n", L.msg);
        g_sticky = r;
    }
    pthread_mutex_destroy(&L.mu);
    pthread_mutex_unlock(&g_launch_mu);
    return r;
}

/* ---- streams, graphs, events --------------------------------------------------------- */

typedef struct {
    bool launch;          /* else a memset */
    const EmuFunc *fn;
    unsigned grid[3], block[3];
    size_t smem;
    unsigned char *param; /* a copy of the one parameter */
    CUdeviceptr dst;      /* memset */
    unsigned char value;
    size_t bytes;
} GraphOp;

typedef struct {
    GraphOp *op;
    int n, cap;
} EmuGraph;

typedef struct {
    EmuGraph *capture; /* recording, or NULL */
} EmuStream;

static void graph_free(EmuGraph *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) free(g->op[i].param);
    free(g->op);
    free(g);
}

static GraphOp *graph_add(EmuGraph *g) {
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->op = realloc(g->op, sizeof(GraphOp) * (size_t)g->cap);
    }
    memset(&g->op[g->n], 0, sizeof(GraphOp));
    return &g->op[g->n++];
}

static EmuGraph *graph_copy(const EmuGraph *g) {
    EmuGraph *c = calloc(1, sizeof *c);
    for (int i = 0; i < g->n; i++) {
        GraphOp *o = graph_add(c);
        *o = g->op[i];
        if (o->param) {
            o->param = malloc(o->fn->param_bytes);
            memcpy(o->param, g->op[i].param, o->fn->param_bytes);
        }
    }
    return c;
}

EMU_API CUresult cuStreamCreate(void **s, unsigned flags) {
    (void)flags;
    *s = calloc(1, sizeof(EmuStream));
    return CU_OK;
}
EMU_API CUresult cuStreamDestroy_v2(void *s) {
    EmuStream *st = s;
    if (st) graph_free(st->capture);
    free(st);
    return CU_OK;
}
EMU_API CUresult cuStreamBeginCapture_v2(void *s, int mode) {
    EmuStream *st = s;
    (void)mode;
    if (!st || st->capture) return CU_INVALID_VALUE;
    st->capture = calloc(1, sizeof(EmuGraph));
    return CU_OK;
}
EMU_API CUresult cuStreamEndCapture(void *s, void **graph) {
    EmuStream *st = s;
    if (!st || !st->capture) return CU_INVALID_VALUE;
    *graph = st->capture;
    st->capture = NULL;
    return CU_OK;
}
EMU_API CUresult cuGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long flags) {
    (void)flags;
    *exec = graph_copy(graph);
    return CU_OK;
}
typedef struct {
    int result;
    void *error_node, *error_from_node;
} EmuGraphUpdateInfo;
/* The same launches in the same order: take the new parameters; else refuse, as the driver does for another topology. */
EMU_API CUresult cuGraphExecUpdate_v2(void *exec, void *graph, EmuGraphUpdateInfo *info) {
    EmuGraph *e = exec, *g = graph;
    bool same = e->n == g->n;
    for (int i = 0; i < g->n && same; i++) same = e->op[i].launch == g->op[i].launch && e->op[i].fn == g->op[i].fn;
    if (info) *info = (EmuGraphUpdateInfo){same ? 0 : 2 /* TOPOLOGY_CHANGED */, NULL, NULL};
    if (!same) return CU_GRAPH_EXEC_UPDATE_FAILURE;
    EmuGraph *c = graph_copy(g);
    for (int i = 0; i < e->n; i++) free(e->op[i].param);
    free(e->op);
    *e = *c;
    free(c);
    return CU_OK;
}
EMU_API CUresult cuGraphLaunch(void *exec, void *s) {
    EmuGraph *e = exec;
    (void)s;
    if (g_sticky) return g_sticky;
    for (int i = 0; i < e->n; i++) {
        GraphOp *o = &e->op[i];
        if (!o->launch) {
            memset((void *)(uintptr_t)o->dst, o->value, o->bytes);
            continue;
        }
        void *params[1] = {o->param};
        CUresult r = run_launch(o->fn, o->grid, o->block, o->smem, params);
        if (r) return r;
    }
    return CU_OK;
}
EMU_API CUresult cuGraphDestroy(void *g) {
    graph_free(g);
    return CU_OK;
}
EMU_API CUresult cuGraphExecDestroy(void *e) {
    graph_free(e);
    return CU_OK;
}

EMU_API CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void *s) {
    EmuStream *st = s;
    if (g_sticky) return g_sticky;
    if (st && st->capture) {
        GraphOp *o = graph_add(st->capture);
        o->dst = p, o->value = v, o->bytes = n;
        return CU_OK;
    }
    memset((void *)(uintptr_t)p, v, n);
    return CU_OK;
}

EMU_API CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                                void *s, void **params, void **extra) {
    EmuFunc *f = fn;
    EmuStream *st = s;
    if (g_sticky) return g_sticky;
    if (!f || extra || !params) return CU_INVALID_VALUE;
    unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    if (st && st->capture) {
        GraphOp *o = graph_add(st->capture);
        o->launch = true, o->fn = f, o->smem = smem;
        memcpy(o->grid, grid, sizeof grid);
        memcpy(o->block, block, sizeof block);
        o->param = malloc(f->param_bytes);
        memcpy(o->param, params[0], f->param_bytes);
        return CU_OK;
    }
    return run_launch(f, grid, block, smem, params);
}

typedef struct {
    struct timespec t;
    bool recorded;
} EmuEvent;

EMU_API CUresult cuEventCreate(void **e, unsigned flags) {
    (void)flags;
    *e = calloc(1, sizeof(EmuEvent));
    return CU_OK;
}
EMU_API CUresult cuEventRecord(void *e, void *s) {
    (void)s;
    EmuEvent *ev = e;
    clock_gettime(CLOCK_MONOTONIC, &ev->t); /* everything before it has run: the calls are synchronous */
    ev->recorded = true;
    return CU_OK;
}
EMU_API CUresult cuEventSynchronize(void *e) { return e ? g_sticky : CU_INVALID_HANDLE; }
EMU_API CUresult cuEventElapsedTime(float *ms, void *from, void *to) {
    EmuEvent *a = from, *b = to;
    if (!a->recorded || !b->recorded) return CU_INVALID_HANDLE;
    *ms = (float)((double)(b->t.tv_sec - a->t.tv_sec) * 1e3 + (double)(b->t.tv_nsec - a->t.tv_nsec) / 1e6);
    return CU_OK;
}
/* Streams run nothing in the background (every call above is synchronous),
 * so waiting for an event or a stream only checks the handles. */
EMU_API CUresult cuStreamWaitEvent(void *s, void *e, unsigned flags) {
    (void)s;
    (void)flags;
    return e ? g_sticky : CU_INVALID_HANDLE;
}
EMU_API CUresult cuStreamSynchronize(void *s) {
    (void)s;
    return g_sticky;
}
EMU_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *s) {
    (void)s;
    return cuMemcpyHtoD_v2(dst, src, n);
}
EMU_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *s) {
    (void)s;
    return cuMemcpyDtoH_v2(dst, src, n);
}
EMU_API CUresult cuEventDestroy_v2(void *e) {
    free(e);
    return CU_OK;
}
