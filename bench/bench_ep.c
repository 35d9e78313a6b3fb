/* bench_ep.c — expert-parallel dispatch and combine (runtime/gpu_ep.c) at
 * DeepSeek-V3 sizes, beside NCCL's own all-to-all of the same bytes in the
 * same run, one process per GPU.
 *
 * Each rank routes T tokens (128 to 4,096 per rank) uniformly at random to
 * 8 of 256 experts, limited to 4 of the 8 expert groups (V3's topk_group),
 * and runs what the executor runs for one MoE layer: dispatch of the FP8
 * codes [T, 7168] (bytes), their f32 scales [T, 56], the expert ids and the
 * routing weights (the first one makes the step's plan: count exchange),
 * then combine of BF16 partial sums [W*T, 8, 7168] back home. Each step
 * has a new plan, as every layer of a real run has.
 *
 * GB/s per GPU = bytes the rank sent to other GPUs (the executor's own
 * counters, GpuCommBytes) / the slowest rank's time; for the all-to-all
 * (rt_nccl_all_to_all: grouped ncclSend/ncclRecv) the same bytes split
 * evenly over the other ranks, i.e. NCCL-tests' bus bandwidth. Rank 0
 * prints a markdown table.
 *
 * Ranks: `--nproc N` reruns this program N times with torchrun variables
 * (rt_launch); or start it with mpirun, srun or torchrun-style variables
 * (rt_rank_info). `--nodes M` makes the world M nodes of W/M GPUs (two-hop
 * dispatch). `--quick` runs tiny token counts (for the emulated device,
 * where the figures mean nothing). Exit: 0, 2 usage, 3 runtime failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/gpu_ep.h"
#include "runtime/launch.h"
#include "runtime/runtime.h"

#define HID 7168 /* hidden width */
#define NSCALE (HID / 128)
#define TOPK 8     /* experts per token */
#define NEXP 256   /* routed experts */
#define NGROUP 8
#define TOPG 4 /* groups a token may use */

typedef struct {
    int nproc, nodes, iters, warmup, timeout_s;
    bool quick;
    int64_t tokens[16];
    int ntokens;
} Args;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int usage(const char *msg) {
    fprintf(stderr, "bench_ep: %s\nusage: bench_ep [--nproc N] [--nodes M] [--tokens T1,T2,..] [--iters I] [--warmup I] "
                    "[--timeout S] [--quick]\n", msg);
    return 2;
}

static bool parse_int(const char *s, long lo, long hi, long *v) {
    char *end;
    *v = strtol(s, &end, 10);
    return *s && !*end && *v >= lo && *v <= hi;
}

static int parse_args(int argc, char **argv, Args *o) {
    *o = (Args){.nproc = 0, .nodes = 1, .iters = 10, .warmup = 2, .timeout_s = 120,
                .tokens = {128, 256, 512, 1024, 2048, 4096}, .ntokens = 6};
    bool tok_given = false, iters_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "--quick")) { o->quick = true; continue; }
        if (i + 1 >= argc) return usage(strcmp(a, "--help") ? "an option needs a value" : "help");
        const char *val = argv[++i];
        if (!strcmp(a, "--nproc") && parse_int(val, 1, 4096, &v)) o->nproc = (int)v;
        else if (!strcmp(a, "--nodes") && parse_int(val, 1, 4096, &v)) o->nodes = (int)v;
        else if (!strcmp(a, "--iters") && parse_int(val, 1, 100000, &v)) o->iters = (int)v, iters_given = true;
        else if (!strcmp(a, "--warmup") && parse_int(val, 0, 100000, &v)) o->warmup = (int)v;
        else if (!strcmp(a, "--timeout") && parse_int(val, 1, 86400, &v)) o->timeout_s = (int)v;
        else if (!strcmp(a, "--tokens")) {
            char *dup = strdup(val), *save = NULL;
            o->ntokens = 0;
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->ntokens == 16 || !parse_int(t, 1, 1 << 20, &v)) {
                    free(dup);
                    return usage("--tokens expects up to 16 integers in 1..1048576, comma-separated");
                }
                o->tokens[o->ntokens++] = v;
            }
            free(dup);
            tok_given = o->ntokens > 0;
            if (!tok_given) return usage("--tokens is empty");
        } else {
            fprintf(stderr, "bench_ep: bad option or value: %s %s\n", a, val);
            return usage("see above");
        }
    }
    if (o->quick) {
        if (!tok_given) o->tokens[0] = 4, o->tokens[1] = 16, o->ntokens = 2;
        if (!iters_given) o->iters = 2;
        o->warmup = o->warmup > 1 ? 1 : o->warmup;
    }
    return 0;
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* idx [T, TOPK]: 4 distinct groups of 8, then 8 distinct experts of their 128. */
static void route(int32_t *idx, int64_t T, uint64_t seed) {
    const int per = NEXP / NGROUP;
    for (int64_t t = 0; t < T; t++) {
        int g[TOPG], ng = 0;
        while (ng < TOPG) {
            int c = (int)(rnd(&seed) % NGROUP), dup = 0;
            for (int j = 0; j < ng; j++) dup |= g[j] == c;
            if (!dup) g[ng++] = c;
        }
        for (int k = 0; k < TOPK;) {
            int e = g[rnd(&seed) % TOPG] * per + (int)(rnd(&seed) % per), dup = 0;
            for (int j = 0; j < k; j++) dup |= idx[t * TOPK + j] == e;
            if (!dup) idx[t * TOPK + k++] = e;
        }
    }
}

typedef struct {
    RtCuda *cu;
    RtNcclComm *comm;
    GpuEp *ep;
    int rank, W;
    RtDevPtr red; /* 8 floats for the reductions */
} Rank;

/* The ranks' maximum (op MAX) or sum of v[0..n) in place. */
static bool reduce(Rank *r, DiagEngine *d, float *v, int n, RtNcclOp op) {
    return rt_cuda_upload(r->cu, d, r->red, v, sizeof(float) * (size_t)n) &&
           rt_nccl_all_reduce(r->comm, d, r->red, r->red, (size_t)n, RT_NCCL_F32, op, rt_cuda_stream(r->cu)) &&
           rt_nccl_wait(r->comm, d, rt_cuda_stream(r->cu), "bench_ep reduction", 0) &&
           rt_cuda_download(r->cu, d, v, r->red, sizeof(float) * (size_t)n);
}

static bool barrier(Rank *r, DiagEngine *d) {
    float v = 0;
    return reduce(r, d, &v, 1, RT_NCCL_MAX);
}

typedef struct {
    RtDevPtr x, sc, idx, w, xd, sd, idd, wd, y, out, a2s, a2r;
} Bufs;

static bool alloc_bufs(Rank *r, DiagEngine *d, int64_t T, Bufs *b, uint64_t seed) {
    int64_t WT = (int64_t)r->W * T;
    size_t a2 = (size_t)T * (HID + 4 * NSCALE + 8 * TOPK) * 4 + 64; /* per peer: above either mean (forwarded copies included) */
    if (!rt_cuda_alloc(r->cu, d, (size_t)(T * HID), &b->x) || !rt_cuda_alloc(r->cu, d, (size_t)(T * NSCALE * 4), &b->sc) ||
        !rt_cuda_alloc(r->cu, d, (size_t)(T * TOPK * 4), &b->idx) || !rt_cuda_alloc(r->cu, d, (size_t)(T * TOPK * 4), &b->w) ||
        !rt_cuda_alloc(r->cu, d, (size_t)(WT * HID), &b->xd) || !rt_cuda_alloc(r->cu, d, (size_t)(WT * NSCALE * 4), &b->sd) ||
        !rt_cuda_alloc(r->cu, d, (size_t)(WT * TOPK * 4), &b->idd) || !rt_cuda_alloc(r->cu, d, (size_t)(WT * TOPK * 4), &b->wd) ||
        !rt_cuda_alloc(r->cu, d, (size_t)(WT * TOPK * HID * 2), &b->y) || !rt_cuda_alloc(r->cu, d, (size_t)(T * HID * 4), &b->out) ||
        !rt_cuda_alloc(r->cu, d, a2 * (size_t)r->W, &b->a2s) || !rt_cuda_alloc(r->cu, d, a2 * (size_t)r->W, &b->a2r))
        return false;
    size_t hb = (size_t)(T * HID); /* >= T * NSCALE * 4 and T * TOPK * 4 */
    uint8_t *h = malloc(hb + 64);
    for (size_t i = 0; i < hb; i++) h[i] = (uint8_t)rnd(&seed);
    bool ok = rt_cuda_upload(r->cu, d, b->x, h, (size_t)(T * HID));
    float *f = (float *)h;
    for (int64_t i = 0; i < T * NSCALE; i++) f[i] = 1.0f / 448;
    ok = ok && rt_cuda_upload(r->cu, d, b->sc, f, (size_t)(T * NSCALE * 4));
    for (int64_t i = 0; i < T * TOPK; i++) f[i] = 1.0f / TOPK;
    ok = ok && rt_cuda_upload(r->cu, d, b->w, f, (size_t)(T * TOPK * 4));
    route((int32_t *)h, T, seed);
    ok = ok && rt_cuda_upload(r->cu, d, b->idx, h, (size_t)(T * TOPK * 4)) && rt_cuda_memset0(r->cu, d, b->y, (size_t)(WT * TOPK * HID * 2));
    free(h);
    return ok;
}

static void free_bufs(Rank *r, Bufs *b) {
    RtDevPtr *p = &b->x;
    for (size_t i = 0; i < sizeof *b / sizeof *p; i++)
        if (p[i]) rt_cuda_free(r->cu, p[i]);
    memset(b, 0, sizeof *b);
}

/* One MoE layer's exchanges at `step`: dispatch (4 values), combine. Seconds of each. */
static bool layer(Rank *r, DiagEngine *d, const Bufs *b, int64_t T, int step, double *td, double *tc) {
    void *st = rt_cuda_stream(r->cu);
    GpuEpDispatch dp = {.plan = 1, .step = step, .idx = b->idx, .N = T, .K = TOPK, .real = T, .experts = NEXP, .what = "bench dispatch"};
    double t0 = now();
    GpuEpDispatch x = dp, s = dp, i = dp, w = dp;
    x.x = b->x, x.out = b->xd, x.row_bytes = HID;
    s.x = b->sc, s.out = b->sd, s.row_bytes = 4 * NSCALE;
    i.x = b->idx, i.out = b->idd, i.row_bytes = 4 * TOPK, i.is_idx = true;
    w.x = b->w, w.out = b->wd, w.row_bytes = 4 * TOPK;
    if (!gpu_ep_dispatch(r->ep, d, &i) || !gpu_ep_dispatch(r->ep, d, &x) || !gpu_ep_dispatch(r->ep, d, &s) ||
        !gpu_ep_dispatch(r->ep, d, &w) || !rt_nccl_wait(r->comm, d, st, "bench dispatch", 0))
        return false;
    double t1 = now();
    GpuEpCombine c = {.plan = 1, .step = step, .y = b->y, .wd = b->wd, .out = b->out, .N = T, .K = TOPK, .O = HID, .ydt = GPU_EP_BF16,
                      .what = "bench combine"};
    if (!gpu_ep_combine(r->ep, d, &c) || !rt_nccl_wait(r->comm, d, st, "bench combine", 0)) return false;
    *td = t1 - t0, *tc = now() - t1;
    return true;
}

/* NCCL's all-to-all of `per_peer` bytes to every rank; seconds. */
static bool a2a(Rank *r, DiagEngine *d, const Bufs *b, size_t per_peer, double *t) {
    double t0 = now();
    if (!rt_nccl_all_to_all(r->comm, d, b->a2s, b->a2r, per_peer, RT_NCCL_U8, rt_cuda_stream(r->cu)) ||
        !rt_nccl_wait(r->comm, d, rt_cuda_stream(r->cu), "bench all-to-all", 0))
        return false;
    *t = now() - t0;
    return true;
}

typedef struct {
    double td, tc, tad, tac, bd, bc; /* slowest rank's mean seconds; mean bytes a rank sent */
} Row;

static bool measure(Rank *r, DiagEngine *d, const Args *o, int64_t T, int *step, Row *row) {
    Bufs b = {0};
    bool ok = alloc_bufs(r, d, T, &b, 0x9e3779b97f4a7c15ull ^ (uint64_t)(r->rank * 7919 + T));
    double td = 0, tc = 0, x, y;
    for (int i = 0; ok && i < o->warmup; i++) ok = barrier(r, d) && layer(r, d, &b, T, ++*step, &x, &y);
    gpu_ep_reset_bytes(r->ep);
    for (int i = 0; ok && i < o->iters; i++) {
        ok = barrier(r, d) && layer(r, d, &b, T, ++*step, &x, &y);
        td += x, tc += y;
    }
    GpuCommBytes cb;
    gpu_ep_bytes(r->ep, &cb);
    float v[2] = {(float)(cb.dispatch_inter + cb.dispatch_intra) / o->iters, (float)(cb.combine_inter + cb.combine_intra) / o->iters};
    ok = ok && reduce(r, d, v, 2, RT_NCCL_SUM);
    row->bd = v[0] / r->W, row->bc = v[1] / r->W;
    /* the all-to-all of the same bytes, evenly over the other ranks */
    int others = r->W > 1 ? r->W - 1 : 1;
    size_t pd = (size_t)(row->bd / others), pc = (size_t)(row->bc / others);
    double tad = 0, tac = 0;
    for (int i = 0; ok && i < o->warmup; i++) ok = barrier(r, d) && a2a(r, d, &b, pd, &x) && a2a(r, d, &b, pc, &y);
    for (int i = 0; ok && i < o->iters; i++) {
        ok = barrier(r, d) && a2a(r, d, &b, pd, &x) && barrier(r, d) && a2a(r, d, &b, pc, &y);
        tad += x, tac += y;
    }
    float t[4] = {(float)(td / o->iters), (float)(tc / o->iters), (float)(tad / o->iters), (float)(tac / o->iters)};
    ok = ok && reduce(r, d, t, 4, RT_NCCL_MAX);
    row->td = t[0], row->tc = t[1], row->tad = t[2], row->tac = t[3];
    free_bufs(r, &b);
    return ok;
}

static double gbs(double bytes, double s) {
    return s > 0 ? bytes / s / 1e9 : 0;
}

static void print_table(const Rank *r, const Args *o, const Row *rows, const char *dev) {
    bool emu = strstr(dev, "emulated") != NULL;
    printf("## Expert-parallel dispatch / combine: %d GPU(s) on %d node(s), %s\n\n", r->W, o->nodes, dev);
    printf("Per GPU: bytes sent to other GPUs / slowest rank's time, mean of %d steps (new plan each). Dispatch: FP8 [T, %d] "
           "+ f32 scales [T, %d] + ids + weights (top-%d of %d, %d of %d groups); combine: BF16 [., %d] partial sums. "
           "Baseline: NCCL all-to-all (grouped send/recv) of the same bytes in this run.\n\n",
           o->iters, HID, NSCALE, TOPK, NEXP, TOPG, NGROUP, HID);
    if (emu) printf("**Emulated device: these figures are meaningless (kernels and NCCL run on the CPU through files).**\n\n");
    printf("| tokens/rank | dispatch MB/GPU | dispatch ms | dispatch GB/s | a2a GB/s | %% of a2a | combine MB/GPU | combine ms | "
           "combine GB/s | a2a GB/s | %% of a2a |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < o->ntokens; i++) {
        const Row *w = &rows[i];
        double gd = gbs(w->bd, w->td), ga = gbs(w->bd, w->tad), gc = gbs(w->bc, w->tc), gca = gbs(w->bc, w->tac);
        printf("| %lld | %.2f | %.3f | %.1f | %.1f | %.0f%% | %.2f | %.3f | %.1f | %.1f | %.0f%% |\n", (long long)o->tokens[i],
               w->bd / 1e6, w->td * 1e3, gd, ga, ga > 0 ? 100 * gd / ga : 0, w->bc / 1e6, w->tc * 1e3, gc, gca,
               gca > 0 ? 100 * gc / gca : 0);
    }
    if (r->W == 1) printf("\nOne rank: nothing crosses to another GPU (0 bytes).\n");
    fflush(stdout);
}

/* One rank of the world the launcher's variables describe. */
static int rank_main(const Args *o) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtRankInfo ri;
    Rank r = {0};
    RtNccl *nc = NULL;
    RtWatchdog *wd = NULL;
    int rc = 3;
    if (!rt_rank_info(a, d, NULL, &ri)) goto done;
    if (ri.size % o->nodes || NEXP % ri.size) {
        fprintf(stderr, "bench_ep: %d ranks: --nodes %d must divide it and it must divide %d experts\n", ri.size, o->nodes, NEXP);
        rc = 2;
        goto done;
    }
    r.rank = ri.rank, r.W = ri.size;
    RtWatchdogOptions wo = {.rank = ri.rank, .size = ri.size, .timeout_ms = o->timeout_s * 1000};
    if (!(r.cu = rt_cuda_open(d, ri.local_rank)) || !(nc = rt_nccl_open(d)) || !(wd = rt_watchdog_new(d, &wo)) ||
        !(r.comm = rt_nccl_comm_init(nc, d, &ri, wd, o->timeout_s * 1000)))
        goto done;
    GpuDist dist = {.comm = r.comm, .rank = ri.rank, .size = ri.size, .nodes = o->nodes, .gpus_per_node = ri.size / o->nodes,
                    .timeout_ms = o->timeout_s * 1000};
    if (!(r.ep = gpu_ep_new(r.cu, &dist, a, d)) || !rt_cuda_alloc(r.cu, d, 64, &r.red)) goto done;
    Row rows[16];
    int step = 0;
    for (int i = 0; i < o->ntokens; i++)
        if (!measure(&r, d, o, o->tokens[i], &step, &rows[i])) goto done;
    if (r.rank == 0) print_table(&r, o, rows, rt_cuda_device_name(r.cu));
    rc = 0;
done:
    if (rc == 3) fprintf(stderr, "bench_ep: rank %d failed\n", ri.rank);
    gpu_ep_free(r.ep);
    if (r.red) rt_cuda_free(r.cu, r.red);
    if (r.comm) {
        if (rc == 0) rt_nccl_comm_destroy(r.comm, d);
        else rt_nccl_comm_abort(r.comm);
    }
    rt_watchdog_free(wd);
    rt_nccl_close(nc);
    rt_cuda_close(r.cu);
    arena_free(a);
    return rc;
}

int main(int argc, char **argv) {
    Args o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    if (o.nproc > 0 && !getenv("RANK") && !getenv("OMPI_COMM_WORLD_RANK") && !getenv("SLURM_PROCID")) {
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, stderr);
        int n;
        char **av = rt_launch_strip_option(a, argc, argv, "--nproc", true, &n);
        RtLaunchOptions lo = {.nproc = o.nproc, .exe = "/proc/self/exe", .argv = av};
        RtLaunchResult res;
        bool ok = rt_launch(d, &lo, &res);
        arena_free(a);
        return ok ? 0 : 3;
    }
    return rank_main(&o);
}
