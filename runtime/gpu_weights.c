/* gpu_weights.c — the CUDA backend's weights (see gpu_exec_internal.h):
 * which kernels compute values held with the weights at load, where each
 * weight and held value lies (this rank's experts of a stacked one), and
 * the upload: slices prepared by a pool of threads, uploaded in order. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_exec_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The kernels that compute, at load, the values held with the weights
 * (x->atload); false, reported, where the kernels and ir_weight_values
 * disagree: a held value in a kernel with ops of the step, or a JOINED
 * concat not alone in its kernel or stored in another dtype. */
bool gx_find_load_kernels(GpuExec *x, DiagEngine *d) {
    const IrGraph *g = x->g;
    const CgProgram *p = x->p;
    x->atload = calloc((size_t)p->nkernels + 1, 1);
    if (!x->atload || !ir_weight_values(g, p->stored, x->wv)) {
        diag_error(d, (SrcLoc){0}, "out of host memory classifying the values of weights alone");
        return false;
    }
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        int kept = 0, held = 0;
        bool joined = false, bad = false;
        for (int j = 0; j < ck->nnodes; j++) {
            const IrNode *n = g->nodes[ck->nodes[j]];
            kept += ir_wv_kept(x->wv[n->id]);
            held += ir_wv_kept(x->wv[n->id]) && p->stored[n->id];
            if (x->wv[n->id] != IR_WV_JOINED) continue;
            joined = true;
            bad |= ck->nnodes != 1;
            for (int q = 0; q < n->nops; q++) bad |= p->dtype[n->ops[q]->id] != p->dtype[n->id];
        }
        if (bad || (held && kept != ck->nnodes)) {
            diag_error(d, ck->loc, "internal: kernel %s does not hold values of weights alone as ir_weight_values says", ck->name);
            return false;
        }
        x->atload[k] = joined ? 2 : kept == ck->nnodes && kept ? 1 : 0;
    }
    return true;
}

/* One weight slice made ready for upload (values from the source, packed
 * to the weight's stored dtype) on a worker thread. */
typedef struct {
    const IrGraph *g;
    const IrNode *n;
    IrDType dt; /* stored dtype (the declared one, or f32 with f32_storage) */
    const CpuWeightSource *ws;
    int64_t e, per;
    void *packed; /* malloc'd */
    bool ok;
} SliceJob;

static void *prepare_slice(void *arg) {
    SliceJob *j = arg;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    float *vals = malloc(sizeof(float) * (size_t)(j->per + 1));
    j->packed = malloc((size_t)bytes_of(j->dt, j->per) + 8);
    j->ok = vals && j->packed && cpu_weight_slice(j->g, j->n, j->ws, j->e, vals, d);
    if (j->ok) gx_pack(j->dt, vals, j->per, j->packed);
    free(vals);
    arena_free(a);
    return NULL;
}

/* The workers of load_weights: each takes the next slice, prepares it and
 * marks it ready; at most `ahead` slices past the last uploaded one are
 * taken, so the packed bytes waiting for the uploader stay bounded. */
typedef struct {
    SliceJob *jobs;
    bool *ready;
    int64_t n, next, uploaded, ahead;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} SlicePool;

static void *slice_worker(void *arg) {
    SlicePool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->next < p->n && p->next - p->uploaded >= p->ahead) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop || p->next >= p->n) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        int64_t j = p->next++;
        pthread_mutex_unlock(&p->mu);
        prepare_slice(&p->jobs[j]);
        pthread_mutex_lock(&p->mu);
        p->ready[j] = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Offsets of what the weight memory holds: in wslab the weights the step
 * reads (this rank's experts of a stacked one), each JOINED concat with
 * its parts at their rows' offsets in it (the first part first), and the
 * other values held with the weights (computed at load); in lslab the
 * weights only load kernels read (IR_WV_LOAD), freed once they ran.
 * Each block 256-byte aligned. */
static bool lay_out_weights(GpuExec *x, int64_t *total, int64_t *ltotal, DiagEngine *d) {
    const IrGraph *g = x->g;
    const CgProgram *p = x->p;
    int64_t zero[IR_MAX_DIM_SYMS] = {0};
    bool *step = calloc((size_t)g->nnodes + 1, 1); /* read by a kernel of the step */
    if (!step) {
        diag_error(d, (SrcLoc){0}, "out of host memory placing the weights");
        return false;
    }
    for (int k = 0; k < p->nkernels; k++)
        for (int s = 0; s < p->kernels[k].nslots && !x->atload[k]; s++)
            if (p->kernels[k].slots[s].kind == CG_SLOT_VALUE) step[p->kernels[k].slots[s].node] = true;
    *total = *ltotal = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        bool w = n->op == IR_OP_WEIGHT && x->wv[i] != IR_WV_PART, kept = ir_wv_kept(x->wv[i]) && p->stored[i];
        if (!w && !kept) continue;
        bool stacked = w && ir_node_attr_str(n, "stack", NULL);
        int64_t count = stacked ? ir_dim_eval(n->type.dims[0], zero) : 1;
        bool l = x->wv[i] == IR_WV_LOAD && !step[i]; /* read only by load kernels: freed once they ran */
        int64_t *at = l ? ltotal : total;
        x->home[i] = l ? 2 : 1;
        x->woff[i] = *at;
        /* only this rank's experts of a stacked expert weight (all of them on one process) */
        if (!size_add(*at, align256(bytes_of(x->p->dtype[i], numel_at(&n->type, zero) / (count ? count : 1) * (x->ehi[i] - x->elo[i]))),
                      at))
            *at = INT64_MAX;
        int64_t off = 0;
        for (int q = 0; x->wv[i] == IR_WV_JOINED && q < n->nops; q++) { /* its parts, row blocks of it */
            const IrNode *part = n->ops[q];
            x->home[part->id] = 1;
            x->woff[part->id] = x->woff[i] + off;
            off += bytes_of(p->dtype[part->id], numel_at(&part->type, zero));
        }
    }
    free(step);
    return true;
}

/* Where node i's data is, a weight's or a value's held with the weights
 * (in wslab, or in lslab: 0 once that was freed). */
RtDevPtr gx_held_at(const GpuExec *x, int i) {
    RtDevPtr base = x->home[i] == 1 ? x->wslab : x->home[i] == 2 ? x->lslab : 0;
    return base ? base + (RtDevPtr)x->woff[i] : 0;
}

/* Every weight into its place (lay_out_weights): slices prepared by a pool of threads (the
 * source's conversion, FP8 block quantization and packing are the slow
 * part), each taking the next slice as it finishes one, and uploaded in
 * order by this thread while the pool prepares the ones after it. */
bool gx_load_weights(GpuExec *x, const CpuWeightSource *ws, DiagEngine *d) {
    const IrGraph *g = x->g;
    int64_t zero[IR_MAX_DIM_SYMS] = {0}, total = 0, ltotal = 0, nslices = 0;
    if (!lay_out_weights(x, &total, &ltotal, d)) return false;
    for (int i = 0; i < g->nnodes; i++) nslices += g->nodes[i]->op == IR_OP_WEIGHT ? x->ehi[i] - x->elo[i] : 0;
    x->wbytes = total;
    if (!rt_cuda_alloc(x->cu, d, (size_t)total, &x->wslab) || (ltotal && !rt_cuda_alloc(x->cu, d, (size_t)ltotal, &x->lslab))) {
        diag_note(d, (SrcLoc){0}, "the weights need %.2f GiB on the GPU (%.2f GiB more while loading)", (double)total / (1 << 30),
                  (double)ltotal / (1 << 30));
        return false;
    }
    SliceJob *jobs = calloc((size_t)nslices + 1, sizeof(SliceJob));
    RtDevPtr *dst = calloc((size_t)nslices + 1, sizeof(RtDevPtr));
    bool *ready = calloc((size_t)nslices + 1, 1);
    if (!jobs || !dst || !ready) {
        diag_error(d, (SrcLoc){0}, "out of host memory for the list of %lld weight slices", (long long)nslices);
        free(jobs);
        free(dst);
        free(ready);
        return false;
    }
    int64_t at = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_WEIGHT) continue;
        int64_t ne = numel_at(&n->type, zero), count = ir_node_attr_str(n, "stack", NULL) ? ir_dim_eval(n->type.dims[0], zero) : 1;
        for (int64_t e = x->elo[i]; e < x->ehi[i]; e++, at++) {
            jobs[at] = (SliceJob){g, n, x->p->dtype[i], ws, e, ne / (count ? count : 1), NULL, false};
            dst[at] = gx_held_at(x, i) + (RtDevPtr)bytes_of(x->p->dtype[i], jobs[at].per * (e - x->elo[i]));
        }
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int nth = cpus > 16 ? 16 : cpus > 0 ? (int)cpus : 1, started = 0;
    SlicePool pool = {.jobs = jobs, .ready = ready, .n = nslices, .ahead = (int64_t)nth + 4}; /* in flight: as the old batches of 16 */
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    pthread_t th[16];
    for (int t = 0; t < nth; t++)
        if (pthread_create(&th[started], NULL, slice_worker, &pool) == 0) started++;
    bool ok = true, tty = isatty(2);
    for (int64_t j = 0; j < nslices && ok; j++) {
        if (!started) prepare_slice(&jobs[j]); /* no thread could start: this one prepares too */
        else {
            pthread_mutex_lock(&pool.mu);
            while (!ready[j]) pthread_cond_wait(&pool.cv, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        if (!jobs[j].ok) {
            diag_error(d, jobs[j].n->loc, "weight %s (slice %lld) did not load", ir_node_attr_str(jobs[j].n, "name", "?"), (long long)jobs[j].e);
            ok = false;
        }
        if (ok) ok = rt_cuda_upload(x->cu, d, dst[j], jobs[j].packed, (size_t)bytes_of(jobs[j].dt, jobs[j].per));
        free(jobs[j].packed);
        jobs[j].packed = NULL;
        pthread_mutex_lock(&pool.mu);
        pool.uploaded = j + 1;
        pool.stop = !ok;
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
        if (tty && ((j + 1) % 64 == 0 || j + 1 == nslices))
            fprintf(stderr, "\rloading weights to the GPU: %lld/%lld tensors", (long long)(j + 1), (long long)nslices);
    }
    pthread_mutex_lock(&pool.mu);
    pool.stop = true;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    for (int64_t j = 0; j < nslices; j++) free(jobs[j].packed); /* prepared but not uploaded (after an error) */
    pthread_mutex_destroy(&pool.mu);
    pthread_cond_destroy(&pool.cv);
    if (tty && nslices) fputc('\n', stderr);
    free(jobs);
    free(dst);
    free(ready);
    return ok;
}

/* Where a weight's expert 0 would be: a rank holding experts [lo, hi) of
 * a stacked weight places expert lo at its offset, so kernels indexing by
 * global expert id (the only ids a dispatched idx keeps on this rank) find
 * theirs. Unsigned arithmetic: the base may lie below the slab, the
 * addresses used do not. */
RtDevPtr gx_weight_base(const GpuExec *x, const IrNode *n) {
    int64_t zero[IR_MAX_DIM_SYMS] = {0};
    RtDevPtr at = gx_held_at(x, n->id);
    if (x->elo[n->id] == 0) return at;
    int64_t per = numel_at(&n->type, zero) / ir_dim_eval(n->type.dims[0], zero);
    return at - (RtDevPtr)bytes_of(x->p->dtype[n->id], per * x->elo[n->id]);
}

/* The experts of each weight this process holds: every one, except for
 * the stacked weights (and scales) of routed experts under a GpuDist,
 * which each rank holds E / W of (rt_expert_rank's placement). */
bool gx_place_experts(GpuExec *x, DiagEngine *d) {
    const IrGraph *g = x->g;
    int64_t zero[IR_MAX_DIM_SYMS] = {0};
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        x->elo[i] = 0;
        x->ehi[i] = n->op == IR_OP_WEIGHT && ir_node_attr_str(n, "stack", NULL) ? ir_dim_eval(n->type.dims[0], zero) : 1;
    }
    if (x->dist.size <= 1) return true;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_EXPERT_LINEAR && n->op != IR_OP_FP8_EXPERT_LINEAR) continue;
        for (int k = n->op == IR_OP_EXPERT_LINEAR ? 1 : 2; k < (n->op == IR_OP_EXPERT_LINEAR ? 2 : 4); k++) {
            const IrNode *w = n->ops[k];
            if (w->op != IR_OP_WEIGHT || !ir_node_attr_str(w, "stack", NULL)) continue;
            int64_t E = x->ehi[w->id] - x->elo[w->id], per = E / x->dist.size;
            if (x->elo[w->id] || E != ir_dim_eval(w->type.dims[0], zero)) continue; /* placed already */
            if (E % x->dist.size) {
                diag_error(d, w->loc, "expert parallelism: %lld experts of '%s' do not spread evenly over %d ranks", (long long)E,
                           ir_node_attr_str(w, "name", "?"), x->dist.size);
                return false;
            }
            x->elo[w->id] = per * x->dist.rank;
            x->ehi[w->id] = per * (x->dist.rank + 1);
        }
    }
    return true;
}
#endif
