/* exec.c — the executor interface of exec.h: thin adapters that forward to
 * cpu_exec_* or gpu_exec_*. The CUDA half compiles only with NVRTC; without
 * it asking for the CUDA backend is an error, never a silent CPU run. */
#include "runtime/exec.h"

#include "runtime/gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct RtExec {
    RtBackend backend;
    CpuExec *cpu;
#ifdef DSCC_HAVE_NVRTC
    GpuExec *gpu;
#endif
    bool expert_parallel;
    char line[320]; /* rt_exec_last_step's text */
};

const char *rt_backend_name(RtBackend b) { return b == RT_BACKEND_CUDA ? "cuda" : "cpu"; }

bool rt_exec_backend_built(RtBackend b, const char **why) {
    if (why) *why = NULL;
#ifndef DSCC_HAVE_NVRTC
    if (b == RT_BACKEND_CUDA) {
        if (why) *why = "this dscc was built without NVRTC (CUDA toolkit) or xxHash";
        return false;
    }
#endif
    (void)b;
    return true;
}

#ifdef DSCC_HAVE_NVRTC
static GpuExec *gpu_new(const IrGraph *g, const CpuWeightSource *ws, const RtExecOptions *o, DiagEngine *d) {
    GpuOptions go = {.device = o->device, .max_batch = o->max_batch, .max_seq = o->max_seq, .max_ctx = o->max_ctx,
                     .trace = o->trace, .trace_steps = o->trace_steps, .f32_storage = o->f32_storage, .graphs = o->graphs,
                     .tune = o->tune};
    GpuDist dist;
    if (o->dist) {
        dist = (GpuDist){.comm = o->dist->comm, .rank = o->dist->rank, .size = o->dist->size, .nodes = o->dist->nodes,
                         .gpus_per_node = o->dist->gpus_per_node, .timeout_ms = o->dist->timeout_ms};
        go.dist = &dist;
    }
    return gpu_exec_new(g, ws, &go, d);
}
#endif

RtExec *rt_exec_new(const IrGraph *g, const CpuWeightSource *ws, const RtExecOptions *o, DiagEngine *d) {
    const char *why;
    if (!rt_exec_backend_built(o->backend, &why)) {
        diag_error(d, ((SrcLoc){0}), "the %s backend is not available: %s", rt_backend_name(o->backend), why);
        return NULL;
    }
    RtExec *x = calloc(1, sizeof *x);
    if (!x) {
        diag_error(d, ((SrcLoc){0}), "out of host memory for the executor");
        return NULL;
    }
    x->backend = o->backend;
    if (o->backend == RT_BACKEND_CPU && o->dist && o->dist->size > 1) {
        diag_error(d, ((SrcLoc){0}), "rank %d of %d: the CPU executor runs one process; expert parallelism needs the CUDA backend",
                   o->dist->rank, o->dist->size);
        free(x);
        return NULL;
    }
    x->expert_parallel = o->backend == RT_BACKEND_CUDA && o->dist && o->dist->size > 1;
    if (o->backend == RT_BACKEND_CPU) {
        CpuOptions co = {.threads = o->threads};
        x->cpu = cpu_exec_new(g, ws, &co, d);
    }
#ifdef DSCC_HAVE_NVRTC
    else
        x->gpu = gpu_new(g, ws, o, d);
    if (x->gpu) return x;
#endif
    if (x->cpu) return x;
    free(x);
    return NULL;
}

void rt_exec_free(RtExec *x) {
    if (!x) return;
    cpu_exec_free(x->cpu);
#ifdef DSCC_HAVE_NVRTC
    gpu_exec_free(x->gpu);
#endif
    free(x);
}

RtBackend rt_exec_backend(const RtExec *x) { return x->backend; }
bool rt_exec_expert_parallel(const RtExec *x) { return x->expert_parallel; }

bool rt_exec_run(RtExec *x, const CpuInput *in, int n, DiagEngine *d) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_run(x->gpu, in, n, d);
#endif
    return cpu_exec_run(x->cpu, in, n, d);
}

const float *rt_exec_output(RtExec *x, const char *name, int *rank, int64_t dims[IR_MAX_RANK]) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_output(x->gpu, name, rank, dims);
#endif
    return cpu_exec_output(x->cpu, name, rank, dims);
}

bool rt_exec_samples(const RtExec *x) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return true;
#endif
    (void)x;
    return false;
}

bool rt_exec_sample(RtExec *x, const RtSampling *s, uint64_t row0, uint64_t step, int32_t *ids, int64_t *rows, DiagEngine *d) {
    *rows = 0;
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) {
        if (!gpu_exec_sample(x->gpu, "logits", s, row0, step, ids, rows, d)) return false;
        for (int64_t r = 0; r < *rows; r++)
            if (ids[r] < 0) {
                diag_error(d, (SrcLoc){0}, "the logits of row %lld at its last position hold a NaN", (long long)r);
                return false;
            }
        return true;
    }
#endif
    (void)s, (void)row0, (void)step, (void)ids;
    diag_error(d, (SrcLoc){0}, "internal: the %s backend samples on the host", rt_backend_name(x->backend));
    return false;
}

int64_t rt_exec_cache_len(const RtExec *x) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_cache_len(x->gpu);
#endif
    return cpu_exec_cache_len(x->cpu);
}

void rt_exec_reset(RtExec *x) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) {
        gpu_exec_reset(x->gpu);
        return;
    }
#endif
    cpu_exec_reset(x->cpu);
}

const char *rt_exec_last_step(RtExec *x) {
    x->line[0] = 0;
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) {
        const char *blas = gpu_exec_blas(x->gpu);
        char lib[160];
        snprintf(lib, sizeof lib, blas ? "%s" : "cuBLASLt, not in use: %s", blas ? blas : gpu_exec_blas_why(x->gpu));
        snprintf(x->line, sizeof x->line, "%s: last step %.3f ms of GPU time in %d kernel launches (%d GEMMs by %s)",
                 gpu_exec_device(x->gpu), gpu_exec_last_ms(x->gpu), gpu_exec_last_launches(x->gpu),
                 gpu_exec_last_lib_calls(x->gpu), lib);
    }
#endif
    return x->line;
}

void rt_exec_comm_bytes(const RtExec *x, GpuCommBytes *last, GpuCommBytes *total) {
    memset(last, 0, sizeof *last);
    memset(total, 0, sizeof *total);
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) gpu_exec_comm_bytes(x->gpu, last, total);
#endif
    (void)x;
}

int64_t rt_exec_weight_bytes(const RtExec *x) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_weight_bytes(x->gpu);
#endif
    (void)x;
    return 0;
}

int64_t rt_exec_activation_bytes(const RtExec *x) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_activation_bytes(x->gpu);
#endif
    (void)x;
    return 0;
}
