/* emu_stream.c — the emulated CUDA driver's streams, graphs and events (emu_cuda.c holds the devices,
 * memory, modules and the block scheduler that runs each launch; emu_cuda.h what the two share), and the
 * entry points that put work on a stream: copies, memsets, launches, host functions, captures. */

#include "emu_cuda.h"

/* ---- streams, graphs, events ---------------------------------------------------------
 *
 * A stream is a queue. Work submitted to an idle stream whose turn has come
 * runs at once on the calling thread (so a program of one stream runs as it
 * always did, synchronously); work behind something still pending (a wait
 * for an event, a host function, the emulated NCCL's transfers) is queued
 * and a host thread of that stream runs it in order when it becomes
 * runnable. The legacy default stream (NULL) waits for the blocking streams
 * and they for it, as on a GPU; the synchronous copies and memsets wait for
 * them too. Events mark a position in a stream's queue. */

enum { OP_LAUNCH, OP_MEMSET, OP_COPY, OP_HOST };

typedef struct {
    int kind;
    const EmuFunc *fn; /* launch */
    bool pdl;          /* ... with programmatic stream serialization */
    unsigned grid[3], block[3];
    size_t smem;
    unsigned char *param; /* launch: a copy of the one parameter; copy from the host: the bytes */
    size_t param_len;
    void *dst;       /* memset, copy */
    const void *src; /* copy, when param is NULL */
    unsigned char value;
    size_t bytes;
    void (*host)(void *); /* host function and its argument */
    void *arg;
} GraphOp;

typedef struct {
    GraphOp *op;
    int n, cap;
    bool has_host; /* must not run on the caller's thread */
} EmuGraph;

typedef struct EmuStream EmuStream;
typedef struct EmuEvent EmuEvent;

enum { IT_OP, IT_GRAPH, IT_WAIT, IT_RECORD };

typedef struct EmuItem {
    int kind;
    uint64_t seq; /* its place in the stream */
    GraphOp op;        /* IT_OP */
    EmuGraph *graph;   /* IT_GRAPH: a copy of the executable graph, freed after */
    EmuStream *on;     /* IT_WAIT: until `on` has completed `upto` */
    uint64_t upto;
    EmuEvent *ev;      /* IT_RECORD */
    unsigned gen;
    struct EmuItem *next;
} EmuItem;

struct EmuStream {
    EmuGraph *capture;   /* recording (also for a stream that joined another's capture), or NULL */
    bool capture_origin; /* began the capture */
    void *capture_last;  /* the node its last captured operation made (index + 1 in the graph), NULL: none */
    bool legacy, nonblocking, destroyed;
    bool active; /* a thread runs its head */
    uint64_t submitted, completed;
    EmuItem *head, *tail;
    EmuStream *next_all;
};

struct EmuEvent {
    struct timespec t;
    bool stamped;
    EmuStream *on; /* the last record: complete when `on` has completed `upto` */
    uint64_t upto;
    unsigned gen;
    int pending;       /* record items not yet run (they free a destroyed event) */
    bool destroyed;
    EmuGraph *capture; /* recorded in a capture */
};

static pthread_mutex_t g_sq = PTHREAD_MUTEX_INITIALIZER; /* every queue, counter and event position */
static pthread_cond_t g_sq_cv = PTHREAD_COND_INITIALIZER; /* something completed */
static EmuStream g_legacy = {.legacy = true};
static EmuStream *g_streams = &g_legacy;
static pthread_once_t g_pin_once = PTHREAD_ONCE_INIT;

static EmuStream *stream_of(void *s) {
    return !s || s == (void *)1 /* CU_STREAM_LEGACY */ || s == (void *)2 /* CU_STREAM_PER_THREAD */ ? &g_legacy : s;
}

static void graph_free(EmuGraph *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) free(g->op[i].param);
    free(g->op);
    free(g);
}

static GraphOp *graph_add(EmuGraph *g, const GraphOp *op) {
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->op = realloc(g->op, sizeof(GraphOp) * (size_t)g->cap);
    }
    g->op[g->n] = *op;
    g->has_host |= op->kind == OP_HOST;
    return &g->op[g->n++];
}

static EmuGraph *graph_copy(const EmuGraph *g) {
    EmuGraph *c = calloc(1, sizeof *c);
    for (int i = 0; i < g->n; i++) {
        GraphOp *o = graph_add(c, &g->op[i]);
        if (o->param) {
            o->param = malloc(o->param_len);
            memcpy(o->param, g->op[i].param, o->param_len);
        }
    }
    return c;
}

static CUresult op_run(const GraphOp *o) {
    switch (o->kind) {
    case OP_LAUNCH: {
        void *params[1] = {o->param};
        return run_launch(o->fn, o->grid, o->block, o->smem, params, o->pdl);
    }
    case OP_MEMSET: memset(o->dst, o->value, o->bytes); return CU_OK;
    case OP_COPY: memmove(o->dst, o->param ? o->param : o->src, o->bytes); return CU_OK;
    default: o->host(o->arg); return CU_OK;
    }
}

static CUresult graph_run(const EmuGraph *g) {
    for (int i = 0; i < g->n; i++) {
        if (g_sticky) return g_sticky;
        CUresult r = op_run(&g->op[i]);
        if (r) return r;
    }
    return CU_OK;
}

static CUresult item_exec(EmuItem *it) {
    switch (it->kind) {
    case IT_OP: return g_sticky ? g_sticky : op_run(&it->op);
    case IT_GRAPH: return graph_run(it->graph);
    case IT_RECORD:
        pthread_mutex_lock(&g_sq);
        if (it->ev->gen == it->gen) clock_gettime(CLOCK_MONOTONIC, &it->ev->t), it->ev->stamped = true;
        if (!--it->ev->pending && it->ev->destroyed) free(it->ev);
        pthread_mutex_unlock(&g_sq);
        return CU_OK;
    default: return CU_OK;
    }
}

static bool item_ready(const EmuItem *it) { return it->kind != IT_WAIT || it->on->completed >= it->upto; }

/* With g_sq held: the head of s is done. */
static void item_done(EmuStream *s, EmuItem *it) {
    s->head = it->next;
    if (!s->head) s->tail = NULL;
    s->completed = it->seq;
    pthread_cond_broadcast(&g_sq_cv);
    graph_free(it->graph);
    free(it->op.param);
    free(it);
}

static void push(EmuStream *s, EmuItem *it) {
    it->seq = ++s->submitted;
    if (s->tail) s->tail->next = it;
    else s->head = it;
    s->tail = it;
    if (it->kind == IT_RECORD) it->ev->on = s, it->ev->upto = it->seq;
}

static void push_wait(EmuStream *s, EmuStream *on, uint64_t upto) {
    EmuItem *w = calloc(1, sizeof *w);
    w->kind = IT_WAIT, w->on = on, w->upto = upto;
    push(s, w);
}

/* The legacy stream's ordering: it waits for every blocking stream's work so far, they for its. */
static void push_implicit_waits(EmuStream *s) {
    if (s->nonblocking) return;
    if (!s->legacy) {
        if (g_legacy.completed < g_legacy.submitted) push_wait(s, &g_legacy, g_legacy.submitted);
        return;
    }
    for (EmuStream *t = g_streams; t; t = t->next_all)
        if (t != s && !t->nonblocking && t->completed < t->submitted) push_wait(s, t, t->submitted);
}

/* Once a stream has had a thread, the library stays loaded (runtime/cuda.c dlcloses the driver). */
static void pin_library(void) {
    Dl_info di;
    atomic_store(&g_threads_used, true);
    if (dladdr((void *)pin_library, &di) && di.dli_fname) dlopen(di.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static void *stream_worker(void *arg) {
    EmuStream *s = arg;
    pthread_mutex_lock(&g_sq);
    while (s->head) {
        EmuItem *it = s->head;
        if (!item_ready(it)) {
            pthread_cond_wait(&g_sq_cv, &g_sq);
            continue;
        }
        pthread_mutex_unlock(&g_sq);
        CUresult r = item_exec(it);
        if (r && !g_sticky) g_sticky = r; /* asynchronous work reports through the context, as on a GPU */
        pthread_mutex_lock(&g_sq);
        item_done(s, it);
    }
    s->active = false;
    pthread_cond_broadcast(&g_sq_cv);
    pthread_mutex_unlock(&g_sq);
    return NULL;
}

/* With g_sq held: a thread for s's queue, unless one runs it. */
static CUresult worker_start(EmuStream *s) {
    if (s->active || !s->head) return CU_OK;
    pthread_once(&g_pin_once, pin_library);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    s->active = pthread_create(&th, &a, stream_worker, s) == 0;
    pthread_attr_destroy(&a);
    return s->active ? CU_OK : CU_OUT_OF_MEMORY;
}

/* Queues it on s; runs it here and now when s is idle, its turn has come and may_inline. */
static CUresult stream_submit(EmuStream *s, EmuItem *it, bool may_inline) {
    pthread_mutex_lock(&g_sq);
    push_implicit_waits(s);
    push(s, it);
    while (!s->active && s->head != it && s->head->kind == IT_WAIT && item_ready(s->head)) item_done(s, s->head);
    CUresult r = CU_OK;
    if (may_inline && !s->active && s->head == it && item_ready(it)) {
        s->active = true;
        pthread_mutex_unlock(&g_sq);
        r = item_exec(it);
        pthread_mutex_lock(&g_sq);
        item_done(s, it);
        s->active = false;
    }
    CUresult w = worker_start(s);
    pthread_mutex_unlock(&g_sq);
    return r ? r : w;
}

/* Records op into s's capture, or queues it. */
static CUresult stream_op(void *hs, GraphOp *op, bool may_inline) {
    EmuStream *s = stream_of(hs);
    if (g_sticky) {
        free(op->param);
        return g_sticky;
    }
    if (s->capture) {
        graph_add(s->capture, op);
        s->capture_last = (void *)(uintptr_t)s->capture->n;
        return CU_OK;
    }
    EmuItem *it = calloc(1, sizeof *it);
    it->kind = IT_OP, it->op = *op;
    return stream_submit(s, it, may_inline);
}

/* With g_sq held: until s has completed what was submitted to it so far. */
static void drain(EmuStream *s) {
    uint64_t upto = s->submitted;
    while (s->completed < upto) pthread_cond_wait(&g_sq_cv, &g_sq);
}

/* What a synchronous call waits for: the legacy stream and the blocking streams (all: cuCtxSynchronize). */
void drain_all(bool nonblocking_too) {
    pthread_mutex_lock(&g_sq);
    for (EmuStream *t = g_streams; t; t = t->next_all)
        if (nonblocking_too || !t->nonblocking) drain(t);
    pthread_mutex_unlock(&g_sq);
}

EMU_API CUresult cuCtxSynchronize(void) {
    drain_all(true);
    return g_sticky;
}

EMU_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
    drain_all(false);
    if (g_sticky) return g_sticky;
    memcpy((void *)(uintptr_t)dst, src, n);
    return CU_OK;
}
EMU_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
    drain_all(false);
    if (g_sticky) return g_sticky;
    memcpy(dst, (const void *)(uintptr_t)src, n);
    return CU_OK;
}
EMU_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    drain_all(false);
    if (g_sticky) return g_sticky;
    memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
    return CU_OK;
}
EMU_API CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) {
    drain_all(false);
    if (g_sticky) return g_sticky;
    memset((void *)(uintptr_t)p, v, n);
    return CU_OK;
}

EMU_API CUresult cuStreamCreate(void **out, unsigned flags) {
    pthread_mutex_lock(&g_sq);
    EmuStream *s = g_streams->next_all;
    while (s && !(s->destroyed && !s->active && !s->head)) s = s->next_all;
    if (!s) { /* streams are kept for reuse (their counters only grow, so old events stay complete) */
        s = calloc(1, sizeof *s);
        s->next_all = g_legacy.next_all;
        g_legacy.next_all = s;
    }
    s->destroyed = false;
    s->nonblocking = flags & 1; /* CU_STREAM_NON_BLOCKING */
    s->capture = NULL;
    s->capture_origin = false;
    pthread_mutex_unlock(&g_sq);
    *out = s;
    return CU_OK;
}
EMU_API CUresult cuStreamCreateWithPriority(void **out, unsigned flags, int priority) {
    (void)priority;
    return cuStreamCreate(out, flags);
}
EMU_API CUresult cuStreamDestroy_v2(void *hs) {
    EmuStream *s = stream_of(hs);
    if (s->legacy) return CU_INVALID_HANDLE;
    pthread_mutex_lock(&g_sq);
    if (s->capture_origin) graph_free(s->capture);
    s->capture = NULL;
    s->destroyed = true; /* its queued work still runs, as on a GPU */
    pthread_mutex_unlock(&g_sq);
    return CU_OK;
}
EMU_API CUresult cuStreamQuery(void *hs) {
    EmuStream *s = stream_of(hs);
    pthread_mutex_lock(&g_sq);
    bool done = s->completed == s->submitted;
    pthread_mutex_unlock(&g_sq);
    return g_sticky ? g_sticky : done ? CU_OK : 600 /* CUDA_ERROR_NOT_READY */;
}
EMU_API CUresult cuStreamSynchronize(void *hs) {
    pthread_mutex_lock(&g_sq);
    drain(stream_of(hs));
    pthread_mutex_unlock(&g_sq);
    return g_sticky;
}
EMU_API CUresult cuStreamIsCapturing(void *hs, int *status) {
    *status = stream_of(hs)->capture ? 1 /* CU_STREAM_CAPTURE_STATUS_ACTIVE */ : 0;
    return CU_OK;
}
EMU_API CUresult cuLaunchHostFunc(void *hs, void (*fn)(void *), void *arg) {
    if (!fn) return CU_INVALID_VALUE;
    GraphOp op = {.kind = OP_HOST, .host = fn, .arg = arg};
    return stream_op(hs, &op, false); /* never on the caller's thread: it may wait */
}

EMU_API CUresult cuStreamBeginCapture_v2(void *hs, int mode) {
    EmuStream *s = stream_of(hs);
    (void)mode;
    if (s->legacy || s->capture) return CU_INVALID_VALUE;
    s->capture = calloc(1, sizeof(EmuGraph));
    s->capture_origin = true;
    s->capture_last = NULL;
    return CU_OK;
}
/* The dependencies of the next captured operation: the one before it (a graph here is a list). */
EMU_API CUresult cuStreamGetCaptureInfo_v2(void *hs, int *status, unsigned long long *id, void **graph, void *const **deps,
                                           size_t *ndeps) {
    EmuStream *s = stream_of(hs);
    *status = s->capture ? 1 /* CU_STREAM_CAPTURE_STATUS_ACTIVE */ : 0;
    if (id) *id = (unsigned long long)(uintptr_t)s->capture;
    if (graph) *graph = s->capture;
    if (deps) *deps = s->capture && s->capture_last ? &s->capture_last : NULL;
    if (ndeps) *ndeps = s->capture && s->capture_last ? 1 : 0;
    return CU_OK;
}
/* ... the v3 form: with each dependency's edge data (CUgraphEdgeData, 8 bytes; the emulated graph's edges are all default) */
EMU_API CUresult cuStreamGetCaptureInfo_v3(void *hs, int *status, unsigned long long *id, void **graph, void *const **deps,
                                           const void **edges, size_t *ndeps) {
    static const unsigned char no_data[8];
    CUresult r = cuStreamGetCaptureInfo_v2(hs, status, id, graph, deps, ndeps);
    EmuStream *s = stream_of(hs);
    if (edges) *edges = s->capture && s->capture_last ? no_data : NULL;
    return r;
}
/* Streams that joined the capture through an event leave it with the stream that began it. */
EMU_API CUresult cuStreamEndCapture(void *hs, void **graph) {
    EmuStream *s = stream_of(hs);
    if (!s->capture || !s->capture_origin) return CU_INVALID_VALUE;
    pthread_mutex_lock(&g_sq);
    for (EmuStream *t = g_streams; t; t = t->next_all)
        if (t != s && t->capture == s->capture) t->capture = NULL;
    pthread_mutex_unlock(&g_sq);
    *graph = s->capture;
    s->capture = NULL;
    s->capture_origin = false;
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
/* The same operations in the same order: take the new parameters; else refuse, as the driver does for another topology. */
EMU_API CUresult cuGraphExecUpdate_v2(void *exec, void *graph, EmuGraphUpdateInfo *info) {
    EmuGraph *e = exec, *g = graph;
    bool same = e->n == g->n;
    for (int i = 0; i < g->n && same; i++) same = e->op[i].kind == g->op[i].kind && e->op[i].fn == g->op[i].fn;
    if (info) *info = (EmuGraphUpdateInfo){same ? 0 : 2 /* TOPOLOGY_CHANGED */, NULL, NULL};
    if (!same) return CU_GRAPH_EXEC_UPDATE_FAILURE;
    EmuGraph *c = graph_copy(g);
    for (int i = 0; i < e->n; i++) free(e->op[i].param);
    free(e->op);
    *e = *c;
    free(c);
    return CU_OK;
}
typedef struct { /* CUDA_KERNEL_NODE_PARAMS_v2 */
    void *func;
    unsigned grid[3], block[3], smem;
    void **params, **extra;
    void *kern, *ctx;
} EmuKernelNodeParams;
/* Node i + 1 of the graph the executable was made from: new grid, block and parameter for its next launches (same function). */
EMU_API CUresult cuGraphExecKernelNodeSetParams_v2(void *exec, void *node, const EmuKernelNodeParams *p) {
    EmuGraph *e = exec;
    uintptr_t i = (uintptr_t)node;
    if (!e || !p || i < 1 || i > (uintptr_t)e->n || !p->params || p->extra) return CU_INVALID_VALUE;
    GraphOp *o = &e->op[i - 1];
    if (o->kind != OP_LAUNCH || p->func != o->fn) return CU_INVALID_VALUE;
    unsigned grid[3] = {p->grid[0], p->grid[1], p->grid[2]}, block[3] = {p->block[0], p->block[1], p->block[2]};
    CUresult bad = launch_check(o->fn, grid, block, p->smem);
    if (bad) return bad;
    memcpy(o->grid, grid, sizeof grid);
    memcpy(o->block, block, sizeof block);
    o->smem = p->smem;
    memcpy(o->param, p->params[0], o->fn->param_bytes);
    return CU_OK;
}
/* The graph's operations run in their recorded order (a valid order of any graph a capture makes). */
EMU_API CUresult cuGraphLaunch(void *exec, void *hs) {
    EmuGraph *e = exec;
    EmuStream *s = stream_of(hs);
    if (g_sticky) return g_sticky;
    if (s->capture) return CU_NOT_SUPPORTED; /* a graph inside a capture: not emulated */
    EmuItem *it = calloc(1, sizeof *it);
    it->kind = IT_GRAPH, it->graph = graph_copy(e);
    return stream_submit(s, it, !e->has_host);
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
    GraphOp op = {.kind = OP_MEMSET, .dst = (void *)(uintptr_t)p, .value = v, .bytes = n};
    return stream_op(s, &op, true);
}
/* From pageable host memory the bytes are taken at the call, as the driver stages them. */
EMU_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *s) {
    GraphOp op = {.kind = OP_COPY, .dst = (void *)(uintptr_t)dst, .bytes = n, .param = malloc(n ? n : 1), .param_len = n ? n : 1};
    if (!op.param) return CU_OUT_OF_MEMORY;
    memcpy(op.param, src, n);
    return stream_op(s, &op, true);
}
EMU_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *s) {
    GraphOp op = {.kind = OP_COPY, .dst = dst, .src = (const void *)(uintptr_t)src, .bytes = n};
    return stream_op(s, &op, true);
}
EMU_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *s) {
    GraphOp op = {.kind = OP_COPY, .dst = (void *)(uintptr_t)dst, .src = (const void *)(uintptr_t)src, .bytes = n};
    return stream_op(s, &op, true);
}
EMU_API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, void *s) { return cuMemcpyDtoDAsync_v2(dst, src, n, s); }

static CUresult launch(EmuFunc *f, const unsigned grid[3], const unsigned block[3], unsigned smem, void *s, void **params, void **extra,
                       bool pdl) {
    if (g_sticky) return g_sticky;
    if (!f || extra || !params) return CU_INVALID_VALUE;
    GraphOp op = {.kind = OP_LAUNCH, .fn = f, .pdl = pdl, .grid = {grid[0], grid[1], grid[2]}, .block = {block[0], block[1], block[2]},
                  .smem = smem};
    CUresult bad = launch_check(f, op.grid, op.block, smem);
    if (bad) return bad;
    op.param = malloc(f->param_bytes ? f->param_bytes : 1);
    op.param_len = f->param_bytes ? f->param_bytes : 1;
    memcpy(op.param, params[0], f->param_bytes);
    return stream_op(s, &op, true);
}

EMU_API CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                                void *s, void **params, void **extra) {
    const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    return launch(fn, grid, block, smem, s, params, extra, false);
}

/* CUlaunchAttribute and CUlaunchConfig; of the attributes only programmatic stream serialization (6) is emulated. */
typedef struct {
    int id;
    char pad[4];
    union {
        char bytes[64];
        int value;
    } v;
} EmuLaunchAttribute;
typedef struct {
    unsigned grid[3], block[3], smem;
    void *stream;
    EmuLaunchAttribute *attrs;
    unsigned nattrs;
} EmuLaunchConfig;

EMU_API CUresult cuLaunchKernelEx(const EmuLaunchConfig *c, void *fn, void **params, void **extra) {
    if (!c || (c->nattrs && !c->attrs)) return CU_INVALID_VALUE;
    bool pdl = false;
    for (unsigned i = 0; i < c->nattrs; i++) {
        if (c->attrs[i].id == 6) pdl = c->attrs[i].v.value != 0;
        else if (c->attrs[i].id != 0) { /* another attribute: not emulated */
            fprintf(stderr, "emulated CUDA: cuLaunchKernelEx: launch attribute %d is not emulated\n", c->attrs[i].id);
            return CU_NOT_SUPPORTED;
        }
    }
    return launch(fn, c->grid, c->block, c->smem, c->stream, params, extra, pdl);
}

/* A driver of CUDA 12.8 (programmatic launches captured into graphs since 12.3). */
EMU_API CUresult cuDriverGetVersion(int *v) {
    if (!v) return CU_INVALID_VALUE;
    *v = 12080;
    return CU_OK;
}

/* For tests (dlsym on the emulated driver): the kernel launches run so far, and how many of them were
 * launched with programmatic stream serialization (directly or as a graph's nodes). */
EMU_API void emuLaunchCounts(long *launches, long *pdl) {
    if (launches) *launches = atomic_load(&g_launches);
    if (pdl) *pdl = atomic_load(&g_pdl_launches);
}

EMU_API CUresult cuEventCreate(void **e, unsigned flags) {
    (void)flags;
    *e = calloc(1, sizeof(EmuEvent));
    return CU_OK;
}
EMU_API CUresult cuEventRecord(void *e, void *hs) {
    EmuEvent *ev = e;
    EmuStream *s = stream_of(hs);
    if (!ev) return CU_INVALID_HANDLE;
    if (s->capture) { /* marks a point of the capture: a stream that waits for it joins the capture */
        ev->capture = s->capture;
        return CU_OK;
    }
    EmuItem *it = calloc(1, sizeof *it);
    pthread_mutex_lock(&g_sq);
    ev->capture = NULL;
    ev->stamped = false;
    it->kind = IT_RECORD, it->ev = ev, it->gen = ++ev->gen;
    ev->pending++;
    pthread_mutex_unlock(&g_sq);
    return stream_submit(s, it, true);
}
EMU_API CUresult cuEventRecordWithFlags(void *e, void *hs, unsigned flags) {
    (void)flags;
    return cuEventRecord(e, hs);
}
EMU_API CUresult cuStreamWaitEvent(void *hs, void *e, unsigned flags) {
    EmuStream *s = stream_of(hs);
    EmuEvent *ev = e;
    (void)flags;
    if (!ev) return CU_INVALID_HANDLE;
    if (ev->capture) { /* joins the capture: its work is recorded into the same graph, in call order */
        if (s->legacy || (s->capture && s->capture != ev->capture)) return CU_INVALID_VALUE;
        if (!s->capture) s->capture = ev->capture, s->capture_origin = false;
        return CU_OK;
    }
    if (s->capture) return CU_OK; /* an event from outside the capture: it is complete when the graph runs */
    pthread_mutex_lock(&g_sq);
    EmuStream *on = ev->on;
    uint64_t upto = ev->upto;
    pthread_mutex_unlock(&g_sq);
    if (!on) return CU_OK; /* never recorded: nothing to wait for */
    EmuItem *it = calloc(1, sizeof *it);
    it->kind = IT_WAIT, it->on = on, it->upto = upto;
    return stream_submit(s, it, true);
}
static bool event_done(const EmuEvent *ev) { return !ev->on || ev->on->completed >= ev->upto; }
EMU_API CUresult cuEventQuery(void *e) {
    EmuEvent *ev = e;
    if (!ev) return CU_INVALID_HANDLE;
    pthread_mutex_lock(&g_sq);
    bool done = event_done(ev);
    pthread_mutex_unlock(&g_sq);
    return g_sticky ? g_sticky : done ? CU_OK : 600 /* CUDA_ERROR_NOT_READY */;
}
EMU_API CUresult cuEventSynchronize(void *e) {
    EmuEvent *ev = e;
    if (!ev) return CU_INVALID_HANDLE;
    pthread_mutex_lock(&g_sq);
    while (!event_done(ev)) pthread_cond_wait(&g_sq_cv, &g_sq);
    pthread_mutex_unlock(&g_sq);
    return g_sticky;
}
EMU_API CUresult cuEventElapsedTime(float *ms, void *from, void *to) {
    EmuEvent *a = from, *b = to;
    pthread_mutex_lock(&g_sq);
    bool ok = a->stamped && b->stamped && event_done(a) && event_done(b);
    pthread_mutex_unlock(&g_sq);
    if (!ok) return CU_INVALID_HANDLE;
    *ms = (float)((double)(b->t.tv_sec - a->t.tv_sec) * 1e3 + (double)(b->t.tv_nsec - a->t.tv_nsec) / 1e6);
    return CU_OK;
}
/* An event whose record is still queued is freed by that record item, when it has run. */
EMU_API CUresult cuEventDestroy_v2(void *e) {
    EmuEvent *ev = e;
    if (!ev) return CU_INVALID_HANDLE;
    pthread_mutex_lock(&g_sq);
    ev->destroyed = true;
    bool now = !ev->pending;
    pthread_mutex_unlock(&g_sq);
    if (now) free(ev);
    return CU_OK;
}
