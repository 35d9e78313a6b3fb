/* gpu_ahead.c — the L2 prefetch ahead (DSCC_L2_AHEAD=MB; see
 * gpu_exec_internal.h and docs/KERNELS.md).
 *
 * At a decode step's few rows the kernels that stream weights (the FP8 and
 * BF16 linears, the absorbed einsums) read HBM near its peak, and between
 * them run kernels that read little: the row kernels, q's rope, the
 * attention over a short cache. A traced batch-1 step of two V3 layers on
 * an H100 spends ~0.15 ms in those, the HBM idle, and each stream after
 * them starts from an empty pipe (q_a + kv_a: 15 MB in 12 us, 40% of the
 * read). Here each such light kernel whose entry calls DSCC_L2_AHEAD()
 * (args.cuh: every entry the generator writes, MLA's decode and combine
 * kernels) is given the next MB of the weight the next stream reads first
 * (its largest, from its start: the rows its first CTAs take), up to what
 * L2 holds, which it prefetches into L2 before its wait: the HBM works
 * under the light kernels and the stream starts from L2.
 *
 * The plan is made once, at load, for each kind of step (nothing cached:
 * the prefill's kernels; a cached context), from the kernels' order on
 * stream 0, with every dim at 1 (a decode step's shape): a light kernel
 * reads fewer bytes of held weights than it would prefetch, a stream reads
 * a held weight of at least that many whole (DSCC_L2_AHEAD=4 on V3: the
 * router's 3.7 MB is light, q_a + kv_a's 15 MB a stream; a value with a
 * `k` suffix is KB, for the small test models). A kernel of the routed experts, one on the
 * other stream or an exchange ends a run (the experts' weights are not
 * known before the routing, and what they stream would evict the lines).
 * It is a hint: no value depends on it, and a prefill's larger kernels take
 * it too for a few bulk prefetches. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_exec_internal.h"

#include "runtime/gpu_trace.h"

#include <stdlib.h>
#include <string.h>

#define AHEAD_FIELDS 3 /* per kernel: address, bytes, the stream's kernel (-1: none) */

#define AHEAD_L2 (40LL << 20) /* of one stream, at most: under an H100's or H200's 50 MB of L2 */

typedef enum { K_LIGHT, K_STREAM, K_STOP, K_SKIP } AheadKind;

/* What kernel k is for the plan of step kind f (sym: every dim 1; chunk: the bytes a light kernel prefetches); for a
 * stream, its weight's place and bytes. */
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

/* Whether kernel k's launch runs an entry that prefetches (its first phase's; a library GEMM does not). */
static bool issues(const GpuExec *x, int k) {
    const CgKernel *ck = &x->p->kernels[k];
    return ck->nphases > 0 && ck->phases[0].ahead && ck->lib.kind == CG_LIB_NONE;
}

/* The plan of step kind f into pf (AHEAD_FIELDS per kernel: address, bytes, the stream's kernel), chunk bytes a light
 * kernel. */
static void plan_kind(const GpuExec *x, int f, int64_t chunk, int64_t *pf) {
    const int nk = x->p->nkernels;
    int64_t sym[IR_MAX_DIM_SYMS];
    for (int i = 0; i < IR_MAX_DIM_SYMS; i++) sym[i] = 1;
    int *run = malloc(sizeof(int) * (size_t)(nk + 1)), n = 0;
    for (int k = 0; k < nk; k++) {
        RtDevPtr at = 0;
        int64_t bytes = 0;
        const AheadKind c = classify(x, f, k, sym, chunk, &at, &bytes);
        if (c == K_SKIP) continue;
        if (c == K_LIGHT) {
            if (issues(x, k)) run[n++] = k;
            continue;
        }
        if (c == K_STREAM) { /* the light kernels before it, in order, the next chunk each */
            int64_t off = 0, end = bytes < AHEAD_L2 ? bytes : AHEAD_L2;
            for (int i = 0; i < n && off < end; i++) {
                int64_t b = (end - off < chunk ? end - off : chunk) & ~(int64_t)15;
                if (b <= 0) break;
                int64_t *r = pf + AHEAD_FIELDS * run[i];
                r[0] = (int64_t)(at + (RtDevPtr)off), r[1] = b, r[2] = k;
                off += b;
            }
        }
        n = 0;
    }
    free(run);
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
    diag_error(d, (SrcLoc){0}, "DSCC_L2_AHEAD is '%s': expected 0..48 (MB a light kernel prefetches into L2; Nk: KB)", t->l2_ahead);
    return false;
}

void gx_plan_ahead(GpuExec *x) {
    const int64_t chunk = ahead_bytes(x->tune.l2_ahead);
    if (chunk < 16) return; /* off (or malformed: gx_ahead_check refused it) */
    for (int f = 0; f < 2; f++) {
        int64_t *pf = x->ahead[f] = malloc(sizeof(int64_t) * AHEAD_FIELDS * (size_t)(x->p->nkernels + 1));
        for (int k = 0; k <= x->p->nkernels; k++) pf[AHEAD_FIELDS * k] = pf[AHEAD_FIELDS * k + 1] = 0, pf[AHEAD_FIELDS * k + 2] = -1;
        plan_kind(x, f, chunk, pf);
    }
}

void gx_set_ahead(GpuExec *x, int k) {
    const int64_t *pf = x->ahead[x->len == 0 ? 0 : 1];
    x->launch[k].args.pf = pf ? (uint64_t)pf[AHEAD_FIELDS * k] : 0;
    x->launch[k].args.pf_bytes = pf ? pf[AHEAD_FIELDS * k + 1] : 0;
}

int gpu_exec_ahead(const GpuExec *x, int kind, int k, int64_t *bytes) {
    const int64_t *pf = x->ahead[kind ? 1 : 0];
    *bytes = pf ? pf[AHEAD_FIELDS * k + 1] : 0;
    return pf ? (int)pf[AHEAD_FIELDS * k + 2] : -1;
}
#endif
