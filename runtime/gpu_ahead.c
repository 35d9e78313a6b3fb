/* gpu_ahead.c — the L2 prefetch ahead (DSCC_L2_AHEAD=MB; see
 * gpu_exec_internal.h and docs/KERNELS.md).
 *
 * At a decode step's few rows the kernels that stream weights (the FP8 and
 * BF16 linears, the absorbed einsums) read HBM near its peak, and between
 * them run kernels that read little: the row kernels, q's rope, the
 * attention over a short cache. A traced batch-1 step of two V3 layers on
 * an H100 spends ~0.15 ms in those, the HBM idle, and each stream after
 * them starts from an empty pipe (q_a + kv_a: 15 MB in 12 us, 40% of the
 * read). Here, where such a run of light kernels begins, the executor forks
 * its second stream: it waits for the first stream's work so far (the
 * stream before the run), then codegen/kernels/l2_ahead.cuh pulls the first
 * MB of the weight the next stream reads first (its largest, from its
 * start: the rows its first CTAs take) into L2 from many SMs at once, while
 * the light kernels run on the first stream; the step's end joins the two.
 * (Issued by the light kernels themselves, from one warp, the prefetch
 * drained at ~0.3 TB/s and held each kernel up: an H100 timed the batch-1
 * step 1.203 -> 1.394 ms at 4 MB.)
 *
 * The plan is made once, at load, for each kind of step (nothing cached:
 * the prefill's kernels; a cached context), from the kernels' order on
 * stream 0, with every dim at 1 (a decode step's shape): a light kernel
 * reads fewer bytes of held weights than the prefetch, a stream reads a
 * held weight of at least that many whole (DSCC_L2_AHEAD=4 on V3: the
 * router's 3.7 MB is light, q_a + kv_a's 15 MB a stream; a value with a
 * `k` suffix is KB, for the small test models). The routed experts, a
 * kernel on the other stream or an exchange end a run (the experts'
 * weights are not known before the routing, and what they stream would
 * evict the lines). A hint: no value depends on it. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_exec_internal.h"

#include "codegen/kernels.h"
#include "runtime/gpu_trace.h"

#include <stdlib.h>
#include <string.h>

#define AHEAD_FIELDS 3 /* per kernel: address, bytes, the stream's kernel (-1: none) */

#define AHEAD_L2 (40LL << 20) /* of one stream, at most: under an H100's or H200's 50 MB of L2 */

typedef enum { K_LIGHT, K_STREAM, K_STOP, K_SKIP } AheadKind;

/* What kernel k is for the plan of step kind f (sym: every dim 1; chunk: the prefetch's bytes); for a stream, its
 * weight's place and bytes. */
static AheadKind classify(const GpuExec *x, int f, int k, const int64_t *sym, int64_t chunk, RtDevPtr *at, int64_t *bytes) {
    const CgKernel *ck = &x->p->kernels[k];
    if (x->atload[k] || x->konst[k] || (x->idle[0] && x->idle[f][k])) return K_SKIP; /* not launched at such a step */
    if (x->kstream[k] != 0 || (x->comm_node && x->comm_node[k] >= 0)) return K_STOP;
    for (int j = 0; j < ck->nnodes; j++)
        if (x->g->nodes[ck->nodes[j]]->op == IR_OP_FP8_EXPERT_LINEAR) return K_STOP;
    double held = 0, best = 0;
    for (int s = 0; s < ck->nslots; s++) {
        const CgSlot *sl = &ck->slots[s];
        if (sl->kind != CG_SLOT_VALUE || x->home[sl->node] != 1) continue; /* not a value in the weight slab */
        double whole = 0, b = gpu_trace_slot_read(x->g, x->p, k, s, sym, &whole);
        held += b;
        if (b >= whole && whole >= (double)chunk && whole > best) {
            best = whole;
            *at = x->launch[k].args.t[s];
        }
    }
    if (best > 0) {
        *bytes = (int64_t)best;
        return K_STREAM;
    }
    return held < (double)chunk ? K_LIGHT : K_STOP;
}

/* The plan of step kind f into pf (AHEAD_FIELDS per kernel: address, bytes, the stream's kernel): at the first light
 * kernel of each run before a stream, chunk bytes of it. */
static void plan_kind(const GpuExec *x, int f, int64_t chunk, int64_t *pf) {
    int64_t sym[IR_MAX_DIM_SYMS];
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) sym[i] = 1;
    int first = -1; /* the run's first light kernel */
    for (int k = 0; k < x->p->nkernels; k++) {
        RtDevPtr at = 0;
        int64_t bytes = 0;
        const AheadKind c = classify(x, f, k, sym, chunk, &at, &bytes);
        if (c == K_SKIP) continue;
        if (c == K_LIGHT) {
            if (first < 0) first = k;
            continue;
        }
        if (c == K_STREAM && first >= 0) {
            int64_t *r = pf + AHEAD_FIELDS * first;
            r[0] = (int64_t)at, r[1] = (bytes < chunk ? bytes : chunk) & ~(int64_t)15, r[2] = k;
        }
        first = -1;
    }
}

/* DSCC_L2_AHEAD's bytes (0: off), or -1 for a malformed value: N MB, or N KB with a `k` suffix, up to 48 MB. */
static int64_t ahead_bytes(const char *e) {
    if (!e || !*e) return 0;
    char *end;
    const long long v = strtoll(e, &end, 10);
    const int64_t b = end == e || v < 0 ? -1 : !strcmp(end, "k") ? v << 10 : !*end ? v << 20 : -1;
    return b > (48LL << 20) ? -1 : b;
}

bool gx_ahead_check(const DsccTune *t, DiagEngine *d) {
    if (ahead_bytes(t->l2_ahead) >= 0) return true;
    diag_error(d, (SrcLoc){0}, "DSCC_L2_AHEAD is '%s': expected 0..48 (MB prefetched into L2 ahead of a weight stream; Nk: KB)",
               t->l2_ahead);
    return false;
}

/* The prefetch kernel (l2_ahead.cuh), compiled through the kernel cache. */
static RtKernel *ahead_kernel(GpuExec *x, DiagEngine *d) {
    Arena *a = arena_new();
    CgSource src = {"l2_ahead", cg_kernel_instance(a, "l2_ahead", "l2_ahead", NULL, 0), {"codegen/kernels/l2_ahead.cuh", 0, 0}};
    CgBinary bin = {0};
    CgOptions o = {0};
    RtKernel *fn = src.source && cg_compile(a, d, &src, 1, &o, &bin) == 0 ? rt_cuda_kernel(x->cu, d, bin.data, "l2_ahead") : NULL;
    cg_binary_free(&bin);
    arena_free(a);
    return fn;
}

bool gx_plan_ahead(GpuExec *x, DiagEngine *d) {
    const int64_t chunk = ahead_bytes(x->tune.l2_ahead);
    if (chunk < 16) return true; /* off (or malformed: gx_ahead_check refused it) */
    if (!(x->ahead_fn = ahead_kernel(x, d)) || !(x->ahead_ev[0] = rt_cuda_event(x->cu, d)) || !(x->ahead_ev[1] = rt_cuda_event(x->cu, d)))
        return false;
    for (int f = 0; f < 2; f++) {
        int64_t *pf = x->ahead[f] = malloc(sizeof(int64_t) * AHEAD_FIELDS * (size_t)(x->p->nkernels + 1));
        for (int k = 0; k <= x->p->nkernels; k++) pf[AHEAD_FIELDS * k] = pf[AHEAD_FIELDS * k + 1] = 0, pf[AHEAD_FIELDS * k + 2] = -1;
        plan_kind(x, f, chunk, pf);
    }
    return true;
}

bool gx_ahead_at(const GpuExec *x, int k) {
    const int64_t *pf = x->ahead[x->len == 0 ? 0 : 1];
    return pf && pf[AHEAD_FIELDS * k + 1] > 0;
}

bool gx_fork_ahead(GpuExec *x, int k, DiagEngine *d) {
    const int64_t *pf = x->ahead[x->len == 0 ? 0 : 1];
    CgArgs args = {.t = {(uint64_t)pf[AHEAD_FIELDS * k]}, .sym = {pf[AHEAD_FIELDS * k + 1]}};
    void *p[] = {&args};
    const unsigned grid = (unsigned)((args.sym[0] + 32 * 8192 - 1) / (32 * 8192)); /* l2_ahead.cuh: 256 KB a block */
    bool ok = rt_cuda_event_record(x->cu, d, x->ahead_ev[0]) && rt_cuda_stream_wait(x->cu, d, 1, x->ahead_ev[0]);
    rt_cuda_use_stream(x->cu, 1);
    ok = ok && rt_cuda_launch_async(x->cu, d, x->ahead_fn, grid, 32, 0, p);
    rt_cuda_use_stream(x->cu, 0);
    return ok;
}

bool gx_join_ahead(GpuExec *x, DiagEngine *d) {
    rt_cuda_use_stream(x->cu, 1);
    bool ok = rt_cuda_event_record(x->cu, d, x->ahead_ev[1]);
    rt_cuda_use_stream(x->cu, 0);
    return ok && rt_cuda_stream_wait(x->cu, d, 0, x->ahead_ev[1]);
}

int gpu_exec_ahead(const GpuExec *x, int kind, int k, int64_t *bytes) {
    const int64_t *pf = x->ahead[kind ? 1 : 0];
    *bytes = pf ? pf[AHEAD_FIELDS * k + 1] : 0;
    return pf ? (int)pf[AHEAD_FIELDS * k + 2] : -1;
}
#endif
