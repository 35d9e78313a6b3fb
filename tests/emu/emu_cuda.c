/* emu_cuda.c — an emulated CUDA driver (built as libcuda.so.1) that runs
 * the generated kernels on the CPU, so the GPU tests can run where there
 * is no GPU: exactly the cu* entry points runtime/cuda.c resolves.
 *
 * Device memory is host memory (a device pointer is a host pointer), a
 * graph is a recorded list of launches, memsets, copies and host
 * functions, and a stream is a queue that runs its work on the calling
 * thread when nothing before it is pending, else on a thread of its own in
 * order (see "streams" below; the emulated NCCL, emu_nccl.c, queues its
 * transfers there). DSCC_EMU_DEVICES devices (default 8) share the host. A "cubin" is what emu_nvrtc.c made: a
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
 * blocks larger than __launch_bounds__, named barriers (bar.sync /
 * bar.arrive id, count) whose arrivals disagree on the count or that can
 * never complete. Streams, graphs and events are emu_stream.c's; emu_cuda.h
 * holds what the two share. */


#include "emu_cuda.h"

static bool g_init;
static atomic_size_t g_used;
_Atomic CUresult g_sticky; /* a failed launch poisons the context, as on a GPU */
atomic_bool g_threads_used; /* a stream has had a thread of its own: the library stays loaded */

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

/* DSCC_EMU_DEVICES (default 8, at most 64) devices, all alike: each rank of an emulated world takes one. */
#define EMU_MAX_DEVICES 64
static int emu_devices(void) {
    const char *e = getenv("DSCC_EMU_DEVICES");
    long n = e && *e ? strtol(e, NULL, 10) : 8;
    return n < 1 ? 1 : n > EMU_MAX_DEVICES ? EMU_MAX_DEVICES : (int)n;
}
static bool bad_device(int dev) { return dev < 0 || dev >= emu_devices(); }

EMU_API CUresult cuDeviceGetCount(int *n) {
    if (!g_init) return CU_NOT_INITIALIZED;
    *n = emu_devices();
    return CU_OK;
}

EMU_API CUresult cuDeviceGet(int *dev, int ordinal) {
    if (!g_init) return CU_NOT_INITIALIZED;
    if (bad_device(ordinal)) return CU_INVALID_DEVICE;
    *dev = ordinal;
    return CU_OK;
}

EMU_API CUresult cuDeviceGetName(char *name, int len, int dev) {
    if (bad_device(dev) || len < 1) return CU_INVALID_VALUE;
    snprintf(name, (size_t)len, "dscc emulated CUDA device (kernels on the CPU)");
    return CU_OK;
}

EMU_API CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
    if (bad_device(dev)) return CU_INVALID_DEVICE;
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

/* A primary context per device; the current one per thread (else the process's last), for cuCtxGetDevice. */
static int g_ctx_token[EMU_MAX_DEVICES];
static __thread int *tls_ctx;
static int *_Atomic g_last_ctx;
EMU_API CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
    if (bad_device(dev)) return CU_INVALID_DEVICE;
    *ctx = &g_ctx_token[dev];
    return CU_OK;
}
EMU_API CUresult cuDevicePrimaryCtxRelease(int dev) { return bad_device(dev) ? CU_INVALID_DEVICE : CU_OK; }
EMU_API CUresult cuCtxSetCurrent(void *ctx) {
    int *c = ctx;
    if (c && (c < g_ctx_token || c >= g_ctx_token + EMU_MAX_DEVICES)) return CU_INVALID_VALUE;
    tls_ctx = c;
    if (c) g_last_ctx = c;
    return CU_OK;
}
EMU_API CUresult cuCtxGetDevice(int *dev) {
    int *c = tls_ctx ? tls_ctx : g_last_ctx;
    if (!c) return 201; /* CUDA_ERROR_INVALID_CONTEXT */
    *dev = (int)(c - g_ctx_token);
    return CU_OK;
}

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
/* Waits for the streams' queued work first, as cuMemFree synchronizes on a GPU (drain_all, emu_stream.c). */
EMU_API CUresult cuMemFree_v2(CUdeviceptr p) {
    drain_all(true);
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
    drain_all(true);
    free(p);
    return CU_OK;
}
/* ---- modules and functions ------------------------------------------------------ */


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
    drain_all(true);
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
    snprintf(sym, sizeof sym, "emu_cluster_%s", name);
    const unsigned *cl = dlsym(m->so, sym);
    f->cluster = cl ? *cl : 1;
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

/* ---- tensor maps (TMA) -------------------------------------------------------------- */

/* cuTensorMapEncodeTiled: the map is emu_abi.h's EmuTensorMap in the
 * 128-byte CUtensorMap. What the driver refuses is refused: a rank other
 * than 1 or 2, an element type other than the 1-, 2- and 4-byte ones, an
 * address not 16-aligned, a stride not a multiple of 16 or below a row, a
 * box dimension of 0 or over 256, element strides other than 1 (not
 * emulated), an interleave, and a box row wider than the swizzle's span. */
EMU_API CUresult cuTensorMapEncodeTiled(void *map, int dtype, unsigned rank, void *addr, const unsigned long long *dim,
                                        const unsigned long long *strides, const unsigned *box, const unsigned *estrides, int interleave,
                                        int swizzle, int l2promo, int oobfill) {
    (void)l2promo;
    static const unsigned esize[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4}; /* CU_TENSOR_MAP_DATA_TYPE_* */
    if (!map || ((uintptr_t)map & 63) || rank < 1 || rank > 2 || dtype < 0 || dtype > 12 || esize[dtype] == 8) return CU_INVALID_VALUE;
    if (((uintptr_t)addr & 15) || interleave != 0 || swizzle < 0 || swizzle > 3 || oobfill != 0) return CU_INVALID_VALUE;
    EmuTensorMap m = {EMU_TMAP_MAGIC, esize[dtype], rank, swizzle ? 16u << swizzle : 0u, (unsigned long long)(uintptr_t)addr, {1, 1}, 0, {1, 1}};
    for (unsigned i = 0; i < rank; i++) {
        if (!dim[i] || dim[i] > (1ull << 32) || !box[i] || box[i] > 256 || estrides[i] != 1) return CU_INVALID_VALUE;
        m.dim[i] = dim[i];
        m.box[i] = box[i];
    }
    if (rank == 2) {
        if (strides[0] % 16 || strides[0] < dim[0] * m.esize || strides[0] >= (1ull << 40)) return CU_INVALID_VALUE;
        m.stride1 = strides[0];
    }
    if ((box[0] * m.esize) % 16 || (m.swizzle && box[0] * m.esize > m.swizzle)) return CU_INVALID_VALUE;
    memset(map, 0, 128);
    memcpy(map, &m, sizeof m);
    return CU_OK;
}

/* ---- the block scheduler ----------------------------------------------------------- */

enum { F_RUN, F_WAIT_BLOCK, F_WAIT_WARP, F_WAIT_NAMED, F_WAIT_MBAR, F_DONE };

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
    int nb_id;       /* at a named barrier (F_WAIT_NAMED): its id */
    unsigned nb_in;  /* bit id: arrived at named barrier id's current phase */
    const void *mbar; /* at an mbarrier wait: the barrier and the parity it waits for */
    unsigned mpar;
    unsigned csync; /* barrier.cluster passed */
    bool pdl_waited; /* executed griddepcontrol.wait */
} Fiber;

/* A named barrier of the running block: the phase's expected and arrived threads (0 arrived: idle). */
typedef struct {
    int count, arrived, line;
} NamedBar;
#define EMU_NAMED_BARS 16

typedef struct { /* a bulk tensor copy in flight (emu_abi.h's bulk_async) */
    void *dst, *buf, *bar;
    size_t bytes;
} EmuBulk;

typedef struct {
    const EmuFunc *fn;
    unsigned grid[3], block[3];
    size_t smem;
    void **params;
    bool pdl; /* launched with programmatic stream serialization: every thread must execute griddepcontrol.wait */
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
    NamedBar nb[EMU_NAMED_BARS];
    int cur, nthreads;
    long block;
    Launch *L;
    void *altstack;
    EmuBulk *bulk; /* the block's bulk copies in flight */
    int nbulk, capbulk;
    struct EmuCluster *cl; /* a cluster launch: the worker's group (emu_cluster_*), NULL otherwise */
    unsigned cl_passed;    /* barrier.cluster the block has passed */
    double stall_t0;       /* a cluster's CTA: since when only mbarrier waits hold it (0: it moves) */
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

/* bar.sync / bar.arrive id, count: a barrier's phase completes when `count`
 * threads arrived (the PTX ISA counts threads; a warp's lanes each count),
 * releasing the threads that wait in it; the barrier is then idle again.
 * Faults: an id outside 1..15 (0 is __syncthreads', which the driver keeps
 * apart), a count that is no multiple of 32 or exceeds the block, a thread
 * that arrives with another count than the phase's first arrival or twice
 * in one phase (a producer a phase ahead of its consumers). A phase that
 * can never complete is found by resolve() (deadlock). */
static void ctx_named_barrier(EmuCtx *c, int id, int count, int wait, int line) {
    Worker *w = c->priv;
    Fiber *f = &w->f[w->cur];
    if (id < 1 || id >= EMU_NAMED_BARS) ctx_fault(c, "named barrier id outside 1..15 (0 is __syncthreads')", line);
    if (count <= 0 || count % 32 || count > w->nthreads) ctx_fault(c, "named barrier count not a multiple of 32 within the block's threads", line);
    NamedBar *b = &w->nb[id];
    if (b->arrived && b->count != count) {
        char m[200];
        snprintf(m, sizeof m, "named barrier %d: this thread arrives expecting %d threads, the phase's first arrival (line %d) %d", id, count,
                 b->line, b->count);
        ctx_fault(c, m, line);
    }
    if (f->nb_in >> id & 1u) {
        char m[200];
        snprintf(m, sizeof m, "named barrier %d: this thread arrives twice in one phase (%d of %d threads arrived): it ran a phase ahead",
                 id, b->arrived, b->count);
        ctx_fault(c, m, line);
    }
    if (!b->arrived) b->count = count, b->line = line;
    f->nb_in |= 1u << id;
    if (++b->arrived < count) {
        if (!wait) return;
        f->state = F_WAIT_NAMED;
        f->nb_id = id;
        f->line = line;
        yield_to_main(w);
        return;
    }
    b->arrived = 0; /* the phase completes: its waiters run again */
    for (int t = 0; t < w->nthreads; t++) {
        w->f[t].nb_in &= ~(1u << id);
        if (w->f[t].state == F_WAIT_NAMED && w->f[t].nb_id == id) w->f[t].state = F_RUN;
    }
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

/* ---- mbarriers and bulk tensor copies (TMA): emu_abi.h's mbar_wait, bulk_async --- */

static void ctx_mbar_wait(EmuCtx *c, const void *bar, unsigned parity, int line) {
    Worker *w = c->priv;
    const unsigned char *b = bar;
    if (b < w->smem || b + 8 > w->smem + w->ctx.smem_bytes || ((uintptr_t)b & 7)) ctx_fault(c, "mbarrier wait on an address that is no 8-byte word of the dynamic shared memory", line);
    if (!emu_mbar_ok(bar)) ctx_fault(c, "mbarrier wait on a barrier that was never initialized (mbarrier.init)", line);
    if (parity > 1) ctx_fault(c, "mbarrier wait with a parity other than 0 or 1", line);
    if (emu_mbar_done(bar, parity)) return;
    Fiber *f = &w->f[w->cur];
    f->state = F_WAIT_MBAR;
    f->line = line;
    f->mbar = bar;
    f->mpar = parity;
    yield_to_main(w);
}

static void ctx_bulk_async(EmuCtx *c, void *dst, void *buf, size_t bytes, void *bar, int line) {
    Worker *w = c->priv;
    unsigned char *d = dst, *b = bar;
    if (d < w->smem || d + bytes > w->smem + w->ctx.smem_bytes) ctx_fault(c, "bulk tensor copy to outside the block's dynamic shared memory", line);
    if (b < w->smem || b + 8 > w->smem + w->ctx.smem_bytes || ((uintptr_t)b & 7) || !emu_mbar_ok(bar))
        ctx_fault(c, "bulk tensor copy completing on no initialized mbarrier of the shared memory", line);
    if (w->nbulk == w->capbulk) {
        w->capbulk = w->capbulk ? 2 * w->capbulk : 64;
        w->bulk = realloc(w->bulk, sizeof(EmuBulk) * (size_t)w->capbulk);
    }
    w->bulk[w->nbulk++] = (EmuBulk){dst, buf, bar, bytes};
}

static void *ctx_cluster_map(EmuCtx *c, const void *p, unsigned rank, size_t bytes, int line);

/* A multicast copy's part for CTA rank of the cluster: queued here, landing in rank's shared
 * memory (dst's and bar's offsets there) with this CTA's copies. */
static void ctx_bulk_async_peer(EmuCtx *c, unsigned rank, const void *dst, void *buf, size_t bytes, const void *bar, int line) {
    Worker *w = c->priv;
    const unsigned char *d = dst;
    if (d < w->smem || d + bytes > w->smem + w->ctx.smem_bytes) ctx_fault(c, "multicast bulk tensor copy to outside the dynamic shared memory", line);
    void *pd = ctx_cluster_map(c, dst, rank, 1, line), *pb = ctx_cluster_map(c, bar, rank, 8, line);
    if (!emu_mbar_ok(pb)) ctx_fault(c, "multicast bulk tensor copy completing on no initialized mbarrier of the other CTA", line);
    if (w->nbulk == w->capbulk) {
        w->capbulk = w->capbulk ? 2 * w->capbulk : 64;
        w->bulk = realloc(w->bulk, sizeof(EmuBulk) * (size_t)w->capbulk);
    }
    w->bulk[w->nbulk++] = (EmuBulk){pd, buf, pb, bytes};
}

/* Every bulk copy in flight lands, in issue order, and completes its bytes
 * (atomically: a multicast's lands at another CTA of the cluster). */
static bool land_bulk(Worker *w) {
    for (int i = 0; i < w->nbulk; i++) {
        EmuBulk *e = &w->bulk[i];
        memcpy(e->dst, e->buf, e->bytes);
        free(e->buf);
        emu_mbar_update(e->bar, 0u, -(int)e->bytes);
    }
    bool any = w->nbulk > 0;
    w->nbulk = 0;
    return any;
}

/* Releases the fibers whose mbarrier phase has completed; whether any was. */
static bool release_mbar(Worker *w) {
    bool moved = false;
    for (int t = 0; t < w->nthreads; t++)
        if (w->f[t].state == F_WAIT_MBAR && emu_mbar_done(w->f[t].mbar, w->f[t].mpar)) w->f[t].state = F_RUN, moved = true;
    return moved;
}

static void fiber_main(void) {
    Worker *w = tls_w;
    w->L->fn->entry(&w->ctx, w->L->params);
    if (w->L->pdl && !w->f[w->cur].pdl_waited) /* on a GPU it could have read what the kernel before was still writing */
        launch_fail(w, "a thread of a kernel launched with programmatic stream serialization (PDL) exited without executing "
                       "griddepcontrol.wait (DSCC_PDL_WAIT): launch it plainly, or wait on every path",
                    0);
    w->f[w->cur].state = F_DONE; /* returns to w->main through uc_link */
}

static void ctx_pdl_wait(EmuCtx *c, int line) {
    Worker *w = c->priv;
    (void)line;
    w->f[w->cur].pdl_waited = true;
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

/* A cluster's CTA that only mbarrier waits hold: another CTA of the cluster
 * may still arrive there or land a multicast copy, so it polls (true) for up
 * to EMU_CLUSTER_STALL_S seconds before that counts as a deadlock (false). */
#define EMU_CLUSTER_STALL_S 20.0
static bool cluster_stall(Worker *w) {
    if (!w->cl || atomic_load(&w->L->failed)) return false;
    const double t = now_s();
    if (w->stall_t0 == 0) w->stall_t0 = t;
    if (t - w->stall_t0 > EMU_CLUSTER_STALL_S) return false;
    struct timespec ts = {0, 50000}; /* 50 us */
    nanosleep(&ts, NULL);
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
    moved |= release_mbar(w);
    if (!moved && land_bulk(w)) moved = release_mbar(w); /* nothing else can move: the copies land now */
    if (moved) {
        w->stall_t0 = 0;
        return true;
    }
    int live = 0, at_block = 0, at_mbar = 0, first = -1;
    for (int t = 0; t < n; t++) {
        if (w->f[t].state == F_RUN) return true; /* released by a named barrier's phase */
        if (w->f[t].state == F_DONE) continue;
        live++;
        at_mbar += w->f[t].state == F_WAIT_MBAR;
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
    if (!live) {
        if (w->nbulk) launch_fail(w, "the block exits with a bulk tensor copy in flight (no thread waited for it)", 0);
        return false;
    }
    if (at_block == live) {
        for (int t = 0; t < n; t++)
            if (w->f[t].state == F_WAIT_BLOCK) w->f[t].state = F_RUN;
        return true;
    }
    for (int t = 0; t < n; t++)
        if (w->f[t].state == F_WAIT_WARP) {
            w->cur = t;
            launch_fail(w, "deadlock: a warp collective waits for lanes held at a barrier", w->f[t].line);
            return false;
        }
    /* a cluster's CTA: a thread at an mbarrier may be released by another CTA (its arrival or multicast
     * copy), and the threads at a named barrier by it: poll before calling either a deadlock */
    if (at_mbar && cluster_stall(w)) return true;
    for (int t = 0; t < n; t++)
        if (w->f[t].state == F_WAIT_NAMED) {
            const NamedBar *b = &w->nb[w->f[t].nb_id];
            char m[200];
            snprintf(m, sizeof m, "deadlock: named barrier %d waits for %d threads, %d arrived, the others wait elsewhere or exited",
                     w->f[t].nb_id, b->count, b->arrived);
            w->cur = t;
            launch_fail(w, m, w->f[t].line);
            return false;
        }
    for (int t = 0; t < n && at_mbar; t++)
        if (w->f[t].state == F_WAIT_MBAR) {
            w->cur = t;
            launch_fail(w, "deadlock: an mbarrier wait that no arrival or copy left can complete (wrong parity or count?)", w->f[t].line);
            return false;
        }
    launch_fail(w, "the scheduler lost track of the block", 0);
    return false;
}

/* Runs block b: each fiber until it waits, in ascending order on even
 * blocks and descending on odd ones (an order a missing barrier cannot
 * pass both ways), then the barriers resolve. One warp, (b / 2) % warps,
 * is starved: it runs only when no other thread can (or every
 * EMU_STARVE_PASSES passes), so a consumer that does not wait for its
 * producer (or a producer for its consumers) runs ahead of it and reads
 * what was not written yet on some block. */
#define EMU_STARVE_PASSES 64
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
        f->nb_in = 0;
        f->csync = 0;
        f->pdl_waited = false;
    }
    w->cl_passed = 0;
    w->stall_t0 = 0;
    memset(w->nb, 0, sizeof w->nb);
    for (int i = 0; i < w->nbulk; i++) free(w->bulk[i].buf); /* a failed block's */
    w->nbulk = 0;
    bool down = b & 1;
    int nwarps = (n + 31) / 32, lazy = nwarps > 1 ? (int)((b >> 1) % nwarps) : -1, starved = 0;
    do {
        bool others = false, run_lazy;
        for (int t = 0; t < n && !others; t++) others = w->f[t].state == F_RUN && t >> 5 != lazy;
        run_lazy = !others || ++starved > EMU_STARVE_PASSES;
        if (run_lazy) starved = 0;
        for (int i = 0; i < n && !atomic_load(&L->failed); i++) {
            int t = down ? n - 1 - i : i;
            if (w->f[t].state != F_RUN || (t >> 5 == lazy && !run_lazy)) continue;
            w->cur = t;
            linear_to_dim3((unsigned)t, L->block, &w->ctx.thread_idx);
            swapcontext(&w->main, &w->f[t].uc);
        }
    } while (!atomic_load(&L->failed) && resolve(w));
}

static Worker g_workers[EMU_MAX_WORKERS];

/* runtime/cuda.c dlcloses the driver with each executor: give the workers' memory back. */
__attribute__((destructor)) static void workers_free(void) {
    if (atomic_load(&g_threads_used)) return; /* a stream's thread may still run a kernel: the exit takes it all */
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

/* ---- thread-block clusters -----------------------------------------------------------
 *
 * A cluster launch (a kernel's __cluster_dims__(n, 1, 1), n <= 8) runs the
 * n CTAs of a cluster at once, each on its own host thread of a group of n
 * workers (so each keeps its own static __shared__), the group taking the
 * clusters in turn. barrier.cluster: the CTA's threads meet at a block
 * barrier, one of them meets the other CTAs' at the group's barrier, then a
 * second block barrier lets the CTA's threads on. A CTA reads another's
 * dynamic shared memory (mapa + ld.shared::cluster) only while that one has
 * not exited; CTAs that wait at different barriers (one at barrier.cluster,
 * one exited) end the launch with an error. */

#define EMU_MAX_CLUSTER 8 /* the portable cluster size */

typedef struct EmuCluster {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned size;
    int arrived, tag, line;
    unsigned long gen;
    long cluster;                        /* the cluster the group runs now */
    Worker *member[EMU_MAX_CLUSTER];     /* by rank */
    atomic_int exited[EMU_MAX_CLUSTER];  /* the rank's CTA has exited */
} EmuCluster;

enum { CL_SYNC = 1, CL_EXIT, CL_START };

static EmuCluster g_clusters[EMU_MAX_WORKERS];

/* The group's barrier of kind `tag`; false when the launch failed (also
 * when the group's CTAs arrive at different kinds: the launch fails). */
static bool cluster_wait(Worker *w, int tag, int line) {
    EmuCluster *cl = w->cl;
    Launch *L = w->L;
    pthread_mutex_lock(&cl->mu);
    if (cl->arrived && cl->tag != tag) {
        int other = cl->line;
        pthread_cond_broadcast(&cl->cv);
        pthread_mutex_unlock(&cl->mu);
        launch_fail(w, tag == CL_SYNC || cl->tag == CL_SYNC ? "a CTA of the cluster exited while another waits at barrier.cluster"
                                                             : "the CTAs of a cluster lost step",
                    line ? line : other);
        return false;
    }
    cl->tag = tag;
    cl->line = line;
    unsigned long gen = cl->gen;
    if (++cl->arrived == (int)cl->size) {
        cl->arrived = 0;
        cl->gen++;
        pthread_cond_broadcast(&cl->cv);
    }
    while (cl->gen == gen && !atomic_load(&L->failed)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&cl->cv, &cl->mu, &ts);
    }
    bool ok = cl->gen != gen && !atomic_load(&L->failed);
    pthread_mutex_unlock(&cl->mu);
    return ok;
}

static void ctx_cluster_sync(EmuCtx *c, int line) {
    Worker *w = c->priv;
    ctx_sync_block(c, line); /* the CTA's threads are all here */
    Fiber *f = &w->f[w->cur];
    f->csync++;
    if (w->cl && w->cl_passed < f->csync) { /* the first of them to run meets the other CTAs */
        if (!cluster_wait(w, CL_SYNC, line)) ctx_fault(c, "barrier.cluster in a launch that failed", line);
        w->cl_passed = f->csync;
    }
    ctx_sync_block(c, line);
}

static void *ctx_cluster_map(EmuCtx *c, const void *p, unsigned rank, size_t bytes, int line) {
    Worker *w = c->priv;
    const unsigned char *q = p;
    if (rank >= c->cluster_size) ctx_fault(c, "mapa names a CTA rank outside the cluster", line);
    if (q < w->smem || q + bytes > w->smem + c->smem_bytes)
        ctx_fault(c, "mapa of an address outside the dynamic shared memory (the emulator maps only that)", line);
    if ((uintptr_t)q % bytes) ctx_fault(c, "ld.shared::cluster from a misaligned address", line);
    if (!w->cl) return (void *)q;
    if (atomic_load(&w->cl->exited[rank]))
        ctx_fault(c, "ld.shared::cluster from a CTA of the cluster that has exited (no barrier.cluster before its exit?)", line);
    return w->cl->member[rank]->smem + (q - w->smem);
}

/* A worker of a cluster launch: with its group, cluster after cluster, the CTA of its rank. */
static void *worker_run_cluster(void *arg) {
    Worker *w = arg;
    Launch *L = w->L;
    EmuCluster *cl = w->cl;
    tls_w = w;
    if (!w->altstack) w->altstack = malloc(1 << 16);
    stack_t ss = {.ss_sp = w->altstack, .ss_size = 1 << 16}, old_ss;
    sigaltstack(&ss, &old_ss);
    ucontext_t tmpl;
    getcontext(&tmpl);
    unsigned rank = w->ctx.cluster_rank, n = cl->size;
    long gx = L->grid[0] / n, clusters = gx * L->grid[1] * L->grid[2];
    for (;;) {
        atomic_store(&cl->exited[rank], 0);
        if (rank == 0) cl->cluster = atomic_fetch_add(&L->next, 1);
        if (!cluster_wait(w, CL_START, 0)) break;
        long c = cl->cluster;
        if (c >= clusters) break;
        run_block(w, c / gx * L->grid[0] + c % gx * n + rank, &tmpl);
        atomic_store(&cl->exited[rank], 1);
        if (atomic_load(&L->failed) || !cluster_wait(w, CL_EXIT, 0)) break;
    }
    sigaltstack(&old_ss, NULL);
    tls_w = NULL;
    return NULL;
}

/* Workers of a launch of fn: whole groups of its cluster size (at least one group). */
static int cluster_workers(const EmuFunc *fn, int nw) {
    int n = (int)fn->cluster;
    return n <= 1 ? nw : (nw / n > 0 ? nw / n : 1) * n;
}

/* Worker i's part in a cluster launch of fn (none when fn has no cluster). */
static void cluster_join(const EmuFunc *fn, Worker *w, int i) {
    w->ctx.cluster_sync = ctx_cluster_sync;
    w->ctx.cluster_map = ctx_cluster_map;
    w->ctx.cluster_size = fn->cluster > 1 ? fn->cluster : 1;
    w->ctx.cluster_rank = fn->cluster > 1 ? (unsigned)i % fn->cluster : 0;
    w->cl = NULL;
    if (fn->cluster <= 1) return;
    EmuCluster *cl = &g_clusters[i / (int)fn->cluster];
    if (w->ctx.cluster_rank == 0) {
        pthread_mutex_init(&cl->mu, NULL);
        pthread_cond_init(&cl->cv, NULL);
        cl->size = fn->cluster;
        cl->arrived = cl->tag = cl->line = 0;
        cl->gen = 0;
    }
    cl->member[w->ctx.cluster_rank] = w;
    w->cl = cl;
}

static int worker_count(long blocks) {
    const char *e = getenv("DSCC_EMU_THREADS");
    long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > EMU_MAX_WORKERS) n = EMU_MAX_WORKERS;
    return (int)(n < blocks ? n : blocks);
}

static pthread_mutex_t g_launch_mu = PTHREAD_MUTEX_INITIALIZER;

/* What a launch is refused for, before it runs (so a queued launch reports it at once). */
CUresult launch_check(const EmuFunc *fn, const unsigned grid[3], const unsigned block[3], size_t smem) {
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
    if (fn->cluster > 1 && (fn->cluster > EMU_MAX_CLUSTER || grid[0] % fn->cluster)) {
        fprintf(stderr, "emulated CUDA: kernel %s has clusters of %u CTAs: at most %d, and a divisor of its grid's x (%u)\n", fn->name,
                fn->cluster, EMU_MAX_CLUSTER, grid[0]);
        return CU_INVALID_VALUE;
    }
    return blocks ? CU_OK : CU_INVALID_VALUE;
}

/* Launches run, and of them with programmatic stream serialization (emuLaunchCounts). */
atomic_long g_launches, g_pdl_launches;

CUresult run_launch(const EmuFunc *fn, const unsigned grid[3], const unsigned block[3], size_t smem, void **params, bool pdl) {
    unsigned nthreads = block[0] * block[1] * block[2];
    long blocks = (long)grid[0] * grid[1] * grid[2];
    CUresult bad = launch_check(fn, grid, block, smem);
    if (bad) return bad;
    static int trace = -1; /* DSCC_EMU_TRACE=1: every launch on stderr */
    if (trace < 0) trace = getenv("DSCC_EMU_TRACE") && strcmp(getenv("DSCC_EMU_TRACE"), "0") != 0;
    if (trace) fprintf(stderr, "emulated CUDA: launch %s <<<%ld, %u, %zu>>>%s\n", fn->name, blocks, nthreads, smem, pdl ? " pdl" : "");
    atomic_fetch_add(&g_launches, 1);
    if (pdl) atomic_fetch_add(&g_pdl_launches, 1);
    pthread_once(&g_sig_once, install_fault_handler);
    pthread_mutex_lock(&g_launch_mu);
    Launch L = {.fn = fn, .grid = {grid[0], grid[1], grid[2]}, .block = {block[0], block[1], block[2]}, .smem = smem, .params = params, .pdl = pdl};
    atomic_init(&L.next, 0);
    atomic_init(&L.failed, 0);
    pthread_mutex_init(&L.mu, NULL);
    int nw = cluster_workers(fn, worker_count(blocks));
    bool ok = true;
    double t0 = now_s();
    for (int i = 0; i < nw && ok; i++) {
        Worker *w = &g_workers[i];
        w->L = &L;
        w->nthreads = (int)nthreads;
        w->ctx = (EmuCtx){.block_dim = {block[0], block[1], block[2]}, .grid_dim = {grid[0], grid[1], grid[2]}, .smem_bytes = smem,
                          .sync_block = ctx_sync_block, .warp_exchange = ctx_warp_exchange, .cp_async = ctx_cp_async,
                          .cp_commit = ctx_cp_commit, .cp_wait = ctx_cp_wait, .named_barrier = ctx_named_barrier,
                          .fault = ctx_fault, .priv = w, .mbar_wait = ctx_mbar_wait, .bulk_async = ctx_bulk_async,
                          .bulk_async_peer = ctx_bulk_async_peer, .pdl_wait = ctx_pdl_wait};
        if (smem + 16 > w->smem_cap) {
            free(w->smem);
            w->smem_cap = smem + 16 > 4096 ? smem + 16 : 4096;
            w->smem = aligned_alloc(128, (w->smem_cap + 127) & ~(size_t)127);
        }
        w->ctx.smem = w->smem;
        cluster_join(fn, w, i);
        ok = w->smem && worker_reserve(w, (int)nthreads);
    }
    void *(*run)(void *) = fn->cluster > 1 ? worker_run_cluster : worker_run;
    pthread_t th[EMU_MAX_WORKERS];
    int started = 0;
    for (int i = 1; i < nw && ok; i++)
        if (pthread_create(&th[started], NULL, run, &g_workers[i]) == 0) started++;
    if (ok && (fn->cluster <= 1 || started == nw - 1)) run(&g_workers[0]);
    else if (ok) { /* a group without all its threads would wait for ever */
        atomic_store(&L.failed, 1);
        snprintf(L.msg, sizeof L.msg, "emulated CUDA: kernel %s: no host threads for a cluster's CTAs", fn->name);
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < nw; i++) g_workers[i].L = NULL;
    for (int i = 0; fn->cluster > 1 && i < nw; i += (int)fn->cluster) {
        pthread_mutex_destroy(&g_clusters[i / (int)fn->cluster].mu);
        pthread_cond_destroy(&g_clusters[i / (int)fn->cluster].cv);
    }
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
