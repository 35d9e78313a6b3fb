/* gpu_ep.c — expert-parallel dispatch and combine over NCCL (see gpu_ep.h). */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_ep.h"

#include "codegen/codegen.h"

#include <stdlib.h>
#include <string.h>

/* The kernels' one argument (the emulated device passes one struct, as
 * the generated kernels' Args); identical layout in the source below. */
typedef struct {
    uint64_t p0, p1, p2, p3;
    int64_t n, rb, m, o, lo, hi;
    int32_t sdt, ddt;
} EpArgs;

static const char EP_SOURCE[] =
    "typedef unsigned long long u64;\n"
    "struct Args { u64 p0, p1, p2, p3; long long n, rb, m, o, lo, hi; int sdt, ddt; };\n"
    "__device__ __forceinline__ float ep_ld(u64 p, long long i, int dt) {\n"
    "    if (dt == 0) return ((const float *)p)[i];\n"
    "    return __uint_as_float((unsigned)((const unsigned short *)p)[i] << 16);\n"
    "}\n"
    "__device__ __forceinline__ void ep_st(u64 p, long long i, int dt, float v) {\n"
    "    if (dt == 0) { ((float *)p)[i] = v; return; }\n"
    "    unsigned u = __float_as_uint(v);\n"
    "    unsigned short h = (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)((u >> 16) | 0x40u)\n"
    "                                                      : (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);\n"
    "    ((unsigned short *)p)[i] = h;\n"
    "}\n"
    "// rows of p1 (rb bytes) picked by the int map p2 (0: in order) packed into p0, n rows\n"
    "extern \"C\" __global__ void ep_gather(Args a) {\n"
    "    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;\n"
    "    if (i >= a.n * a.rb) return;\n"
    "    const long long r = i / a.rb, b = i - r * a.rb;\n"
    "    const long long s = a.p2 ? (long long)((const int *)a.p2)[r] : r;\n"
    "    ((unsigned char *)a.p0)[i] = ((const unsigned char *)a.p1)[s * a.rb + b];\n"
    "}\n"
    "// expert ids outside [lo, hi) (another rank's, or none) become -1, n ids\n"
    "extern \"C\" __global__ void ep_mask(Args a) {\n"
    "    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;\n"
    "    if (i >= a.n) return;\n"
    "    int *p = (int *)a.p0;\n"
    "    if (p[i] < a.lo || p[i] >= a.hi) p[i] = -1;\n"
    "}\n"
    "// p0[r, c] = sum over the m slots of row r whose id p3 is not -1 of w p2 (f32) * y p1[r, slot, c], n rows of o\n"
    "extern \"C\" __global__ void ep_partial(Args a) {\n"
    "    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;\n"
    "    if (i >= a.n * a.o) return;\n"
    "    const long long r = i / a.o, c = i - r * a.o;\n"
    "    float s = 0.0f;\n"
    "    for (long long k = 0; k < a.m; k++)\n"
    "        if (((const int *)a.p3)[r * a.m + k] >= 0) s += ((const float *)a.p2)[r * a.m + k] * ep_ld(a.p1, (r * a.m + k) * a.o + c, a.sdt);\n"
    "    ep_st(a.p0, i, a.ddt, s);\n"
    "}\n"
    "// p0[r, c] = sum over j < m of p1[map[r * m + j], c] where the map p2 is not -1 (in f32, in j order), n rows of o\n"
    "extern \"C\" __global__ void ep_reduce(Args a) {\n"
    "    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;\n"
    "    if (i >= a.n * a.o) return;\n"
    "    const long long r = i / a.o, c = i - r * a.o;\n"
    "    float s = 0.0f;\n"
    "    for (long long j = 0; j < a.m; j++) {\n"
    "        const int at = ((const int *)a.p2)[r * a.m + j];\n"
    "        if (at >= 0) s += ep_ld(a.p1, (long long)at * a.o + c, a.sdt);\n"
    "    }\n"
    "    ep_st(a.p0, i, a.ddt, s);\n"
    "}\n";

/* A device buffer that grows (after both streams are idle: its old
 * contents may still be read). */
typedef struct {
    RtDevPtr p;
    size_t bytes;
} Buf;

typedef struct {
    int node, step;            /* home idx node; the step it was made for (-1: none yet) */
    int64_t N, K;
    int64_t *c1s, *c1r;        /* [nodes]: hop-1 tokens to / from (nd, l) */
    int64_t *c2s, *c2r;        /* [G * nodes]: hop-2 tokens to (node, g) / from (node, g), per origin node */
    int64_t ns1, nland, ns2;   /* rows sent in hop 1, landed here, sent in hop 2 */
    Buf map1, map2, red2, red1, pidx, lidx;
} Plan;

struct GpuEp {
    RtCuda *cu;
    GpuDist w;
    int a, l;                  /* this rank's node and local rank */
    RtKernel *gather, *mask, *partial, *reduce;
    Plan *plans;
    int nplans;
    Buf s1, land, s2, q2, pl, h, part, cnt; /* staging of the exchanges */
    int64_t *hcnt;             /* pinned: counts to and from the peers */
    int32_t *hidx;             /* pinned: ids copied to the host */
    size_t hidx_bytes;
    GpuCommBytes bytes;
};

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static bool ensure(GpuEp *e, DiagEngine *d, Buf *b, int64_t bytes) {
    if ((size_t)bytes <= b->bytes && b->p) return true;
    if (b->p) {
        if (!rt_cuda_stream_sync(e->cu, d, 0) || !rt_cuda_stream_sync(e->cu, d, 1)) return false;
        rt_cuda_free(e->cu, b->p);
        b->p = 0;
    }
    size_t want = (size_t)bytes * 3 / 2 + 256;
    if (!rt_cuda_alloc(e->cu, d, want, &b->p)) return false;
    b->bytes = want;
    return true;
}

static bool ensure_host(GpuEp *e, DiagEngine *d, int64_t bytes) {
    if ((size_t)bytes <= e->hidx_bytes) return true;
    rt_cuda_host_free(e->cu, e->hidx);
    e->hidx_bytes = 0;
    if (!(e->hidx = rt_cuda_host_alloc(e->cu, d, (size_t)bytes * 3 / 2 + 64))) return false;
    e->hidx_bytes = (size_t)bytes * 3 / 2 + 64;
    return true;
}

static bool launch(GpuEp *e, DiagEngine *d, RtKernel *k, int64_t items, EpArgs *args) {
    if (items <= 0) return true;
    void *p[] = {args};
    return rt_cuda_launch_async(e->cu, d, k, (unsigned)cdiv(items, 256), 256, 0, p);
}

static bool gather(GpuEp *e, DiagEngine *d, RtDevPtr dst, RtDevPtr src, RtDevPtr map, int64_t n, int64_t rb) {
    EpArgs a = {.p0 = dst, .p1 = src, .p2 = map, .n = n, .rb = rb};
    return launch(e, d, e->gather, n * rb, &a);
}

GpuEp *gpu_ep_new(RtCuda *cu, const GpuDist *dist, Arena *a, DiagEngine *d) {
    GpuEp *e = calloc(1, sizeof *e);
    e->cu = cu;
    e->w = *dist;
    e->a = dist->rank / dist->gpus_per_node;
    e->l = dist->rank % dist->gpus_per_node;
    CgSource src = {"ep_exchange", EP_SOURCE, {0}};
    CgBinary bin = {0};
    CgOptions co = {0};
    RtModule *m = NULL;
    if (cg_compile(a, d, &src, 1, &co, &bin) == 0) m = rt_cuda_module(cu, d, bin.data, "the expert-parallel exchange kernels");
    cg_binary_free(&bin);
    if (!m || !(e->gather = rt_cuda_function(cu, d, m, "ep_gather")) || !(e->mask = rt_cuda_function(cu, d, m, "ep_mask")) ||
        !(e->partial = rt_cuda_function(cu, d, m, "ep_partial")) || !(e->reduce = rt_cuda_function(cu, d, m, "ep_reduce")) ||
        !(e->hcnt = rt_cuda_host_alloc(cu, d, sizeof(int64_t) * (size_t)(4 * dist->size * dist->nodes + 8)))) {
        gpu_ep_free(e);
        return NULL;
    }
    return e;
}

static void buf_free(GpuEp *e, Buf *b) {
    rt_cuda_free(e->cu, b->p);
    *b = (Buf){0};
}

void gpu_ep_free(GpuEp *e) {
    if (!e) return;
    for (int i = 0; i < e->nplans; i++) {
        Plan *p = &e->plans[i];
        Buf *bs[] = {&p->map1, &p->map2, &p->red2, &p->red1, &p->pidx, &p->lidx};
        for (size_t k = 0; k < sizeof bs / sizeof *bs; k++) buf_free(e, bs[k]);
        free(p->c1s);
        free(p->c1r);
        free(p->c2s);
        free(p->c2r);
    }
    free(e->plans);
    Buf *bs[] = {&e->s1, &e->land, &e->s2, &e->q2, &e->pl, &e->h, &e->part, &e->cnt};
    for (size_t k = 0; k < sizeof bs / sizeof *bs; k++) buf_free(e, bs[k]);
    rt_cuda_host_free(e->cu, e->hcnt);
    rt_cuda_host_free(e->cu, e->hidx);
    free(e);
}

void gpu_ep_bytes(const GpuEp *e, GpuCommBytes *out) { *out = e->bytes; }
void gpu_ep_reset_bytes(GpuEp *e) { memset(&e->bytes, 0, sizeof e->bytes); }

/* ---- exchanges ----------------------------------------------------------- */

/* One transfer of an exchange: `count` bytes to or from `peer`. */
typedef struct {
    int peer;
    RtDevPtr buf;
    int64_t bytes;
} Xfer;

/* One NCCL group: every send, then every receive (per peer in the order
 * given, which both sides list alike), on the communication stream;
 * returns once NCCL launched it (the stream orders what reads the
 * results). Bytes to other ranks go to *counter. */
static bool exchange(GpuEp *e, DiagEngine *d, const Xfer *send, int ns, const Xfer *recv, int nr, int64_t *counter,
                     const char *what) {
    void *st = rt_cuda_stream(e->cu);
    RtNcclComm *c = e->w.comm;
    if (!rt_nccl_group_start(c, d)) return false;
    bool ok = true;
    for (int i = 0; i < ns && ok; i++) {
        ok = rt_nccl_send(c, d, send[i].buf, (size_t)send[i].bytes, RT_NCCL_U8, send[i].peer, st);
        if (send[i].peer != e->w.rank && counter) *counter += send[i].bytes;
    }
    for (int i = 0; i < nr && ok; i++) ok = rt_nccl_recv(c, d, recv[i].buf, (size_t)recv[i].bytes, RT_NCCL_U8, recv[i].peer, st);
    bool ended = rt_nccl_group_end(c, d, what);
    return ok && ended;
}

/* Waits on the host until the exchanges' stream is idle (bounded). */
static bool wait_comm(GpuEp *e, DiagEngine *d, const char *what) {
    return rt_nccl_wait(e->w.comm, d, rt_cuda_stream(e->cu), what, e->w.timeout_ms);
}

/* Counts: send[i] (n int64 each) to peers[i], recv[i] from peers[i], np
 * peers: one small exchange through the device, waited for. */
static bool exchange_counts(GpuEp *e, DiagEngine *d, const int *peers, int np, const int64_t *send, int64_t *recv, int n,
                            const char *what) {
    size_t one = sizeof(int64_t) * (size_t)n;
    if (!ensure(e, d, &e->cnt, (int64_t)(2 * one * (size_t)np))) return false;
    memcpy(e->hcnt, send, one * (size_t)np);
    Xfer *s = malloc(sizeof(Xfer) * (size_t)np * 2), *r = s + np;
    for (int i = 0; i < np; i++) {
        s[i] = (Xfer){peers[i], e->cnt.p + (RtDevPtr)(one * (size_t)i), (int64_t)one};
        r[i] = (Xfer){peers[i], e->cnt.p + (RtDevPtr)(one * (size_t)(np + i)), (int64_t)one};
    }
    bool ok = rt_cuda_upload_async(e->cu, d, e->cnt.p, e->hcnt, one * (size_t)np) && exchange(e, d, s, np, r, np, NULL, what) &&
              rt_cuda_download_async(e->cu, d, e->hcnt, e->cnt.p + (RtDevPtr)(one * (size_t)np), one * (size_t)np) &&
              wait_comm(e, d, what);
    free(s);
    if (ok) memcpy(recv, e->hcnt, one * (size_t)np);
    return ok;
}

static bool upload_map(GpuEp *e, DiagEngine *d, Buf *b, const int32_t *v, int64_t n) {
    if (!ensure(e, d, b, 4 * (n > 0 ? n : 1))) return false;
    if (n <= 0) return true;
    if (!ensure_host(e, d, 4 * n)) return false;
    memcpy(e->hidx, v, (size_t)(4 * n)); /* pinned: the async copy reads it later */
    return rt_cuda_upload_async(e->cu, d, b->p, e->hidx, (size_t)(4 * n)) && wait_comm(e, d, "uploading a dispatch plan");
}

bool gpu_ep_agree_max(GpuEp *e, DiagEngine *d, int64_t v, int64_t *max) {
    int W = e->w.size;
    int *peers = calloc((size_t)W + 1, sizeof(int));
    int64_t *send = calloc((size_t)W * 2 + 1, sizeof(int64_t)), *recv = send + W;
    for (int r = 0; r < W; r++) peers[r] = r, send[r] = v;
    bool ok = exchange_counts(e, d, peers, W, send, recv, 1, "the ranks' batch sizes");
    *max = v;
    for (int r = 0; ok && r < W; r++)
        if (recv[r] > *max) *max = recv[r];
    free(peers);
    free(send);
    return ok;
}

/* ---- plans ------------------------------------------------------------- */

static Plan *find_plan(GpuEp *e, int node) {
    for (int i = 0; i < e->nplans; i++)
        if (e->plans[i].node == node) return &e->plans[i];
    e->plans = realloc(e->plans, sizeof(Plan) * (size_t)(e->nplans + 1));
    Plan *p = &e->plans[e->nplans++];
    memset(p, 0, sizeof *p);
    int W = e->w.size, nodes = e->w.nodes;
    p->node = node;
    p->step = -1;
    p->c1s = calloc((size_t)nodes, sizeof(int64_t));
    p->c1r = calloc((size_t)nodes, sizeof(int64_t));
    p->c2s = calloc((size_t)W, sizeof(int64_t)); /* G x nodes */
    p->c2r = calloc((size_t)W, sizeof(int64_t));
    return p;
}

/* Whether the K ids of a row send it to rank r (to node nd when r < 0). */
static bool row_hits(const int32_t *ids, int64_t K, int64_t per, int gpn, int r, int nd) {
    for (int64_t k = 0; k < K; k++) {
        int dst = (int)(ids[k] / per);
        if (r >= 0 ? dst == r : dst / gpn == nd) return true;
    }
    return false;
}

/* Hop 1 (several nodes): the home rows each other node uses go to its GPU
 * of this local rank, with their ids; afterwards lidx holds the landed
 * rows' ids (on the host: e->hidx). */
static bool plan_hop1(GpuEp *e, DiagEngine *d, Plan *p, const int32_t *hid, int64_t real, int64_t per, RtDevPtr idx) {
    int nodes = e->w.nodes, G = e->w.gpus_per_node;
    int32_t *m1 = malloc(sizeof(int32_t) * (size_t)(real * nodes + 1));
    int32_t *red1 = malloc(sizeof(int32_t) * (size_t)(p->N * nodes + 1));
    int *peers = malloc(sizeof(int) * (size_t)nodes);
    for (int64_t i = 0; i < p->N * nodes; i++) red1[i] = -1;
    p->ns1 = 0;
    for (int nd = 0; nd < nodes; nd++) {
        peers[nd] = nd * G + e->l;
        p->c1s[nd] = 0;
        for (int64_t n = 0; n < real; n++)
            if (row_hits(hid + n * p->K, p->K, per, G, -1, nd)) {
                red1[n * nodes + nd] = (int32_t)p->ns1;
                m1[p->ns1++] = (int32_t)n;
                p->c1s[nd]++;
            }
    }
    bool ok = upload_map(e, d, &p->map1, m1, p->ns1) && upload_map(e, d, &p->red1, red1, p->N * nodes) &&
              exchange_counts(e, d, peers, nodes, p->c1s, p->c1r, 1, "dispatch count exchange (hop 1)");
    free(m1);
    free(red1);
    p->nland = 0;
    for (int nd = 0; ok && nd < nodes; nd++) p->nland += p->c1r[nd];
    int64_t rb = 4 * p->K;
    ok = ok && ensure(e, d, &e->s1, p->ns1 * rb) && ensure(e, d, &p->lidx, p->nland * rb) && gather(e, d, e->s1.p, idx, p->map1.p, p->ns1, rb);
    Xfer *s = malloc(sizeof(Xfer) * (size_t)nodes * 2), *r = s + nodes;
    int64_t so = 0, ro = 0;
    for (int nd = 0; nd < nodes; nd++) {
        s[nd] = (Xfer){peers[nd], e->s1.p + (RtDevPtr)(so * rb), p->c1s[nd] * rb};
        r[nd] = (Xfer){peers[nd], p->lidx.p + (RtDevPtr)(ro * rb), p->c1r[nd] * rb};
        so += p->c1s[nd];
        ro += p->c1r[nd];
    }
    ok = ok && exchange(e, d, s, nodes, r, nodes, &e->bytes.dispatch_inter, "dispatch of expert ids (hop 1)") &&
         ensure_host(e, d, p->nland * rb + 4) &&
         (p->nland == 0 || rt_cuda_download_async(e->cu, d, e->hidx, p->lidx.p, (size_t)(p->nland * rb))) &&
         wait_comm(e, d, "dispatch of expert ids (hop 1)");
    free(s);
    free(peers);
    return ok;
}

/* Hop 2: the landed rows (the home rows on one node) go to each GPU of
 * this node holding one of their experts, per origin node, with their
 * ids into the plan's world-layout pidx; red2 maps each landed row to its
 * partial sums' places in the return buffer. */
static bool plan_hop2(GpuEp *e, DiagEngine *d, Plan *p, const int32_t *lid, const int64_t *seg, int64_t per, RtDevPtr src,
                      int64_t lo, int64_t hi) {
    int nodes = e->w.nodes, G = e->w.gpus_per_node, W = e->w.size;
    int64_t nred = (p->nland > p->N ? p->nland : p->N) * G; /* one node: the home rows, padding included */
    int32_t *m2 = malloc(sizeof(int32_t) * (size_t)(p->nland * G + 1));
    int32_t *red2 = malloc(sizeof(int32_t) * (size_t)(nred + 1));
    int *peers = malloc(sizeof(int) * (size_t)G);
    for (int64_t i = 0; i < nred; i++) red2[i] = -1;
    p->ns2 = 0;
    for (int g = 0; g < G; g++) {
        int r = e->a * G + g;
        peers[g] = r;
        int64_t t0 = 0;
        for (int o = 0; o < nodes; o++) {
            p->c2s[g * nodes + o] = 0;
            for (int64_t t = t0; t < t0 + seg[o]; t++)
                if (row_hits(lid + t * p->K, p->K, per, G, r, -1)) {
                    red2[t * G + g] = (int32_t)p->ns2;
                    m2[p->ns2++] = (int32_t)t;
                    p->c2s[g * nodes + o]++;
                }
            t0 += seg[o];
        }
    }
    bool ok = upload_map(e, d, &p->map2, m2, p->ns2) && upload_map(e, d, &p->red2, red2, nred) &&
              exchange_counts(e, d, peers, G, p->c2s, p->c2r, nodes, "dispatch count exchange");
    free(m2);
    free(red2);
    int64_t rb = 4 * p->K;
    ok = ok && ensure(e, d, &e->s2, p->ns2 * rb) && ensure(e, d, &p->pidx, (int64_t)W * p->N * rb) &&
         gather(e, d, e->s2.p, src, p->map2.p, p->ns2, rb);
    if (ok) { /* every id -1 first: rows nobody sends stay so */
        EpArgs a = {.p0 = p->pidx.p, .n = (int64_t)W * p->N * p->K, .lo = 1, .hi = 0};
        ok = launch(e, d, e->mask, a.n, &a);
    }
    Xfer *s = malloc(sizeof(Xfer) * (size_t)(G * nodes) * 2), *r = s + G * nodes;
    int64_t so = 0;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < nodes; o++) {
            int64_t c = p->c2r[g * nodes + o];
            s[g * nodes + o] = (Xfer){peers[g], e->s2.p + (RtDevPtr)(so * rb), p->c2s[g * nodes + o] * rb};
            r[g * nodes + o] = (Xfer){peers[g], p->pidx.p + (RtDevPtr)((int64_t)(o * G + g) * p->N * rb), c * rb};
            so += p->c2s[g * nodes + o];
            if (c > p->N) {
                diag_error(d, (SrcLoc){0}, "dispatch: rank %d would receive %lld rows from rank %d, more than its %lld", e->w.rank,
                           (long long)c, o * G + g, (long long)p->N);
                ok = false;
            }
        }
    ok = ok && exchange(e, d, s, G * nodes, r, G * nodes, &e->bytes.dispatch_intra, "dispatch of expert ids");
    free(s);
    free(peers);
    if (ok) {
        EpArgs a = {.p0 = p->pidx.p, .n = (int64_t)W * p->N * p->K, .lo = lo, .hi = hi};
        ok = launch(e, d, e->mask, a.n, &a);
    }
    return ok;
}

/* The plan of routing `op->idx` for this step (made by its first dispatch). */
static Plan *make_plan(GpuEp *e, DiagEngine *d, const GpuEpDispatch *op, int64_t experts) {
    Plan *p = find_plan(e, op->plan);
    if (p->step == op->step) return p;
    int W = e->w.size, nodes = e->w.nodes;
    int64_t per = experts / W;
    p->N = op->N;
    p->K = op->K;
    int64_t nb = 4 * op->N * op->K;
    if (!ensure_host(e, d, nb + 4) || (nb && !rt_cuda_download_async(e->cu, d, e->hidx, op->idx, (size_t)nb)) ||
        !wait_comm(e, d, op->what))
        return NULL;
    int32_t *hid = malloc((size_t)nb + 4);
    memcpy(hid, e->hidx, (size_t)nb);
    for (int64_t i = 0; i < op->real * op->K; i++)
        if (hid[i] < 0 || hid[i] >= experts) {
            diag_error(d, (SrcLoc){0}, "%s: token %lld routes to expert %d, outside 0..%lld", op->what, (long long)(i / op->K), hid[i],
                       (long long)experts - 1);
            free(hid);
            return NULL;
        }
    int64_t *seg = calloc((size_t)nodes, sizeof(int64_t));
    bool ok;
    int32_t *lid = NULL;
    RtDevPtr src = op->idx;
    if (nodes > 1) {
        ok = plan_hop1(e, d, p, hid, op->real, per, op->idx);
        if (ok) {
            lid = malloc(sizeof(int32_t) * (size_t)(p->nland * p->K + 1));
            memcpy(lid, e->hidx, sizeof(int32_t) * (size_t)(p->nland * p->K));
            memcpy(seg, p->c1r, sizeof(int64_t) * (size_t)nodes);
            src = p->lidx.p;
        }
    } else { /* this rank lands its own rows: the real ones */
        ok = true;
        p->nland = op->real;
        seg[0] = op->real;
        lid = hid;
        hid = NULL;
    }
    ok = ok && plan_hop2(e, d, p, lid, seg, per, src, per * e->w.rank, per * (e->w.rank + 1));
    free(hid);
    free(lid);
    free(seg);
    if (!ok) return NULL;
    p->step = op->step;
    return p;
}

/* ---- dispatch and combine --------------------------------------------------- */

bool gpu_ep_dispatch(GpuEp *e, DiagEngine *d, const GpuEpDispatch *op) {
    Plan *p = make_plan(e, d, op, op->experts);
    if (!p) return false;
    int nodes = e->w.nodes, G = e->w.gpus_per_node, W = e->w.size;
    int64_t rb = op->row_bytes;
    if (op->is_idx) return gather(e, d, op->out, p->pidx.p, 0, (int64_t)W * p->N, rb);
    RtDevPtr src = op->x;
    bool ok = true;
    if (nodes > 1) { /* hop 1: to the same local rank of every node used, this one included */
        ok = ensure(e, d, &e->s1, p->ns1 * rb) && ensure(e, d, &e->land, p->nland * rb) && gather(e, d, e->s1.p, op->x, p->map1.p, p->ns1, rb);
        Xfer *s = malloc(sizeof(Xfer) * (size_t)nodes * 2), *r = s + nodes;
        int64_t so = 0, ro = 0;
        for (int nd = 0; nd < nodes; nd++) {
            int peer = nd * G + e->l;
            s[nd] = (Xfer){peer, e->s1.p + (RtDevPtr)(so * rb), p->c1s[nd] * rb};
            r[nd] = (Xfer){peer, e->land.p + (RtDevPtr)(ro * rb), p->c1r[nd] * rb};
            so += p->c1s[nd];
            ro += p->c1r[nd];
        }
        ok = ok && exchange(e, d, s, nodes, r, nodes, &e->bytes.dispatch_inter, op->what);
        free(s);
        src = e->land.p;
    }
    /* hop 2: to each GPU of this node, per origin node, straight into the world layout */
    ok = ok && ensure(e, d, &e->s2, p->ns2 * rb) && gather(e, d, e->s2.p, src, p->map2.p, p->ns2, rb);
    Xfer *s = malloc(sizeof(Xfer) * (size_t)(G * nodes) * 2), *r = s + G * nodes;
    int64_t so = 0;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < nodes; o++) {
            int peer = e->a * G + g, i = g * nodes + o;
            s[i] = (Xfer){peer, e->s2.p + (RtDevPtr)(so * rb), p->c2s[i] * rb};
            r[i] = (Xfer){peer, op->out + (RtDevPtr)((int64_t)(o * G + g) * p->N * rb), p->c2r[i] * rb};
            so += p->c2s[i];
        }
    ok = ok && exchange(e, d, s, G * nodes, r, G * nodes, &e->bytes.dispatch_intra, op->what);
    free(s);
    return ok;
}

static bool reduce(GpuEp *e, DiagEngine *d, RtDevPtr dst, RtDevPtr src, RtDevPtr map, int64_t n, int64_t m, int64_t O, int sdt, int ddt) {
    EpArgs a = {.p0 = dst, .p1 = src, .p2 = map, .n = n, .m = m, .o = O, .sdt = sdt, .ddt = ddt};
    return launch(e, d, e->reduce, n * O, &a);
}

bool gpu_ep_combine(GpuEp *e, DiagEngine *d, const GpuEpCombine *op) {
    Plan *p = NULL;
    for (int i = 0; i < e->nplans && !p; i++)
        if (e->plans[i].node == op->plan && e->plans[i].step == op->step) p = &e->plans[i];
    if (!p) {
        diag_error(d, (SrcLoc){0}, "%s: no dispatch of its routing ran before it in this step", op->what);
        return false;
    }
    int nodes = e->w.nodes, G = e->w.gpus_per_node, W = e->w.size, dt = op->ydt;
    int64_t rb = op->O * (dt == GPU_EP_F32 ? 4 : 2), rows = (int64_t)W * p->N;
    /* expert side: one partial sum per received row, in the storage dtype */
    bool ok = ensure(e, d, &e->part, rows * rb) && ensure(e, d, &e->q2, p->ns2 * rb);
    EpArgs a = {.p0 = e->part.p, .p1 = op->y, .p2 = op->wd, .p3 = p->pidx.p, .n = rows, .m = op->K, .o = op->O, .sdt = dt, .ddt = dt};
    ok = ok && launch(e, d, e->partial, rows * op->O, &a);
    /* hop 2 back: each block of received rows to the GPU that forwarded it */
    Xfer *s = malloc(sizeof(Xfer) * (size_t)(G * nodes) * 2), *r = s + G * nodes;
    int64_t ro = 0;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < nodes; o++) {
            int peer = e->a * G + g, i = g * nodes + o;
            s[i] = (Xfer){peer, e->part.p + (RtDevPtr)((int64_t)(o * G + g) * p->N * rb), p->c2r[i] * rb};
            r[i] = (Xfer){peer, e->q2.p + (RtDevPtr)(ro * rb), p->c2s[i] * rb};
            ro += p->c2s[i];
        }
    ok = ok && exchange(e, d, s, G * nodes, r, G * nodes, &e->bytes.combine_intra, op->what);
    free(s);
    if (nodes == 1) return ok && reduce(e, d, op->out, e->q2.p, p->red2.p, p->N, G, op->O, dt, GPU_EP_F32);
    /* the forwarding GPU sums its node's partial sums of each landed row, then hop 1 back */
    ok = ok && ensure(e, d, &e->pl, p->nland * rb) && ensure(e, d, &e->h, p->ns1 * rb) &&
         reduce(e, d, e->pl.p, e->q2.p, p->red2.p, p->nland, G, op->O, dt, dt);
    s = malloc(sizeof(Xfer) * (size_t)nodes * 2), r = s + nodes;
    int64_t so = 0;
    ro = 0;
    for (int nd = 0; nd < nodes; nd++) {
        int peer = nd * G + e->l;
        s[nd] = (Xfer){peer, e->pl.p + (RtDevPtr)(so * rb), p->c1r[nd] * rb};
        r[nd] = (Xfer){peer, e->h.p + (RtDevPtr)(ro * rb), p->c1s[nd] * rb};
        so += p->c1r[nd];
        ro += p->c1s[nd];
    }
    ok = ok && exchange(e, d, s, nodes, r, nodes, &e->bytes.combine_inter, op->what);
    free(s);
    return ok && reduce(e, d, op->out, e->h.p, p->red1.p, p->N, nodes, op->O, dt, GPU_EP_F32);
}
#endif
