/* gpu_gemm.c — which GEMM a kernel's matmul runs as (see
 * gpu_exec_internal.h): the TMA GEMM phase, with the tensor maps made at
 * plan time, or cuBLASLt, as the GEMM table (or its rule) says; else the
 * generated tile's phases. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_exec_internal.h"

#include <stdlib.h>
#include <string.h>

/* The TMA GEMM phase of kernel k (gemm_tma.cuh), or -1. */
int gx_tma_phase(const GpuExec *x, int k) {
    const CgKernel *ck = &x->p->kernels[k];
    for (int ph = 0; ph < ck->nphases; ph++)
        if (ck->phases[ph].tma) return ph;
    return -1;
}

/* The bytes of x->tmaps a kernel has: its TMA GEMM's two maps, then the
 * expert phases' (CgPhase.tmaps: gate and up's two, the down's one). */
#define GX_MAPS_GEMM 256
#define GX_MAPS_EXPERT 4
#define GX_MAPS_KERNEL (GX_MAPS_GEMM + 128 * GX_MAPS_EXPERT)

/* Kernel k's expert phases' maps (CgPhase.tmaps; also MLA's decode phase's
 * over its KV cache) into m (GX_MAPS_EXPERT of 128 bytes), each phase's
 * maps slot pointed at its first in dev. */
static bool expert_maps(GpuExec *x, int k, unsigned char *m, RtDevPtr dev, DiagEngine *d) {
    const CgKernel *ck = &x->p->kernels[k];
    Launch *l = &x->launch[k];
    int used = 0;
    for (int ph = 0; ph < ck->nphases; ph++) {
        const CgTmaMaps *t = ck->phases[ph].tmaps;
        if (!t) continue;
        if (used + t->n > GX_MAPS_EXPERT) {
            diag_error(d, ck->loc, "kernel %s: its expert phases read more than %d weights through tensor maps", ck->name, GX_MAPS_EXPERT);
            return false;
        }
        l->args.t[t->maps] = dev + (RtDevPtr)used * 128;
        for (int i = 0; i < t->n; i++, used++) {
            const int64_t rows = t->rows[i] ? t->rows[i] : x->max_b * x->cap; /* 0: a KV cache's (MLA's decode kernel) */
            if (!rt_cuda_tensor_map_2d(x->cu, d, m + (size_t)used * 128, l->args.t[t->slot[i]], rows, t->cols[i], t->cols[i],
                                       t->box_rows ? t->box_rows : 128, 128)) {
                diag_note(d, ck->loc, "for the %s of kernel %s", t->rows[i] ? "grouped expert GEMM" : "KV cache read by TMA", ck->name);
                return false;
            }
        }
    }
    return true;
}

/* The tensor maps, made once at plan time: GX_MAPS_KERNEL bytes a kernel
 * in x->tmaps. The TMA GEMM phases': x's over its buffer's rows at the
 * largest dims (rows past a step's M are read, never stored), w's over the
 * weight; the phase's maps slot then points at them. Without the driver's
 * tensor maps, a Hopper GPU or with DSCC_GEMM_TMA=0 those phases never
 * run; with DSCC_GEMM_TMA=all they run wherever they can (above the skinny
 * form's rows), else where the GEMM table or its rule says
 * (rt_gemm_use_tma). The expert phases' (expert_tma.cuh, chosen at codegen
 * by DSCC_EXPERT_TMA) are made whatever DSCC_GEMM_TMA says: their phase
 * runs by its rows, and without tensor maps the plan fails here. */
bool gx_setup_tma(GpuExec *x, const int64_t *smax, DiagEngine *d) {
    const char *env = x->tune.gemm_tma;
    int n = 0, ne = 0;
    for (int k = 0; k < x->p->nkernels; k++) {
        n += gx_tma_phase(x, k) >= 0;
        for (int ph = 0; ph < x->p->kernels[k].nphases; ph++) ne += x->p->kernels[k].phases[ph].tmaps != NULL;
    }
    bool gemm = n && !(env && strcmp(env, "0") == 0) && rt_cuda_sm(x->cu) >= 90 && rt_cuda_has_tensor_maps(x->cu);
    if (!gemm && !ne) return true;
    if (gemm) {
        bool bad;
        x->gtable = rt_gemm_table_open(rt_cuda_sm(x->cu), x->tune.gemm_table, d, false, &bad);
        if (bad) return false;
    }
    size_t bytes = (size_t)x->p->nkernels * GX_MAPS_KERNEL;
    unsigned char *maps = aligned_alloc(64, bytes); /* a CUtensorMap is 64-aligned */
    if (maps) memset(maps, 0, bytes);
    if (!maps || !rt_cuda_alloc(x->cu, d, bytes, &x->tmaps)) {
        free(maps);
        return false;
    }
    bool ok = true;
    for (int k = 0; k < x->p->nkernels && ok; k++) {
        unsigned char *m = maps + (size_t)k * GX_MAPS_KERNEL;
        RtDevPtr dev = x->tmaps + (RtDevPtr)k * GX_MAPS_KERNEL;
        ok = expert_maps(x, k, m + GX_MAPS_GEMM, dev + GX_MAPS_GEMM, d);
        int ph = gx_tma_phase(x, k);
        if (!ok || !gemm || ph < 0) continue;
        const CgTmaGemm *t = x->p->kernels[k].phases[ph].tma;
        Launch *l = &x->launch[k];
        ok = rt_cuda_tensor_map_2d(x->cu, d, m, l->args.t[t->x], ir_dim_eval(t->M, smax), t->K, t->K, 128, 128) &&
             rt_cuda_tensor_map_2d(x->cu, d, m + 128, l->args.t[t->w], t->N, t->K, t->K, 128, 128);
        if (!ok) diag_note(d, x->p->kernels[k].loc, "for the TMA GEMM of kernel %s", x->p->kernels[k].name);
        l->args.t[t->maps] = dev;
    }
    ok = ok && rt_cuda_upload(x->cu, d, x->tmaps, maps, bytes);
    free(maps);
    x->tma_on = ok && gemm;
    x->tma_all = env && strcmp(env, "all") == 0;
    return ok;
}

/* Whether kernel k runs its TMA GEMM phase ph at dims sym instead of the tile's phases and cuBLASLt. */
bool gx_use_tma(const GpuExec *x, int k, int ph, const int64_t *sym) {
    if (!x->tma_on || ph < 0) return false;
    const CgPhase *f = &x->p->kernels[k].phases[ph];
    return cg_phase_items(f, sym) > 0 && (x->tma_all || rt_gemm_use_tma(x->gtable, ir_dim_eval(f->tma->M, sym), f->tma->N, f->tma->K));
}

/* The cuBLASLt plan of kernel k at this step's shape (NULL: the generated phases run). */
const RtBlasPlan *gx_lib_plan(GpuExec *x, int k, const int64_t *sym) {
    const CgLib *lb = &x->p->kernels[k].lib;
    if (!x->blas || lb->kind == CG_LIB_NONE || (lb->mmin > 0 && ir_dim_eval(lb->M, sym) <= lb->mmin)) return NULL;
    /* the GEMM table's measured choice for the shape, else cuBLASLt wherever it has an algorithm */
    RtBlasKind kind = lb->kind == CG_LIB_FP8_GEMM ? RT_BLAS_FP8_BLOCK : lb->y_f32 ? RT_BLAS_BF16_F32 : RT_BLAS_BF16;
    return rt_blas_pick(x->blas, kind, ir_dim_eval(lb->M, sym), lb->N, lb->K);
}

/* Kernel k's GEMM by cuBLASLt with `plan`. */
bool gx_run_lib(GpuExec *x, int k, const RtBlasPlan *plan, const int64_t *sym, DiagEngine *d) {
    const CgKernel *ck = &x->p->kernels[k];
    const CgLib *lb = &ck->lib;
    Launch *l = &x->launch[k];
    const uint64_t *t = l->args.t;
    bool fp8 = lb->kind == CG_LIB_FP8_GEMM; /* the scales: the activations' as the quantize stored them (K-block-major), the weight's */
    if (!rt_blas_run(x->blas, d, plan, t[lb->x], fp8 ? t[lb->xs] : 0, t[lb->w], fp8 ? t[lb->ws] : 0, t[lb->y])) {
        diag_note(d, ck->loc, "in kernel %s (cuBLASLt, %lld x %lld x %lld)", ck->name, (long long)ir_dim_eval(lb->M, sym), (long long)lb->N,
                  (long long)lb->K);
        return false;
    }
    return true;
}

int gpu_exec_last_lib_calls(const GpuExec *x) { return x->lib_calls; }
int gpu_exec_last_tma_calls(const GpuExec *x) { return x->tma_calls; }
const char *gpu_exec_blas(const GpuExec *x) { return x->blas ? rt_blas_version(x->blas) : NULL; }
const char *gpu_exec_blas_why(const GpuExec *x) { return x->blas ? NULL : x->no_blas_why; }
#endif
