/* gpu_sample.c — the device sampler of sample.h: codegen/kernels/sample.cuh
 * compiled once per block size through NVRTC and the kernel cache, then one
 * launch per step and a copy of the ids (4 bytes a row) back. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/sample.h"

#include "codegen/codegen.h"
#include "codegen/kernels.h"

#include <stdio.h>
#include <stdlib.h>

struct RtDevSampler {
    RtCuda *cu;
    RtKernel *fn;
    int block;
    RtDevPtr ids;   /* int32 [cap] */
    int64_t cap;
};

/* The kernel's argument block: the layout of sample.cuh's struct Args. */
typedef struct {
    RtDevPtr logits;
    long long stride;
    int V;
    float inv_temp;
    int top_k;
    double top_p;
    unsigned long long seed, step, row0;
    RtDevPtr ids;
} SampleArgs;

RtDevSampler *rt_dev_sampler_new(RtCuda *c, int block, DiagEngine *d) {
    if (block == 0) block = 1024;
    if (block < 32 || block > 1024 || block % 32) {
        diag_error(d, (SrcLoc){0}, "the device sampler's block must be a multiple of 32 up to 1024, not %d", block);
        return NULL;
    }
    Arena *a = arena_new();
    char bs[16], name[32];
    snprintf(bs, sizeof bs, "%d", block);
    snprintf(name, sizeof name, "sample_next_b%d", block);
    CgDefine defs[] = {{"SAMPLE_BLOCK", bs}};
    CgSource src = {name, cg_kernel_instance(a, "sample", name, defs, 1), {"codegen/kernels/sample.cuh", 0, 0}};
    CgBinary bin = {0};
    CgOptions o = {0};
    RtDevSampler *s = calloc(1, sizeof *s);
    bool ok = s && src.source && cg_compile(a, d, &src, 1, &o, &bin) == 0;
    if (ok) {
        s->cu = c;
        s->block = block;
        ok = (s->fn = rt_cuda_kernel(c, d, bin.data, name)) != NULL;
    }
    cg_binary_free(&bin);
    arena_free(a);
    if (!ok) {
        if (!s || !src.source) diag_error(d, (SrcLoc){0}, "out of host memory for the device sampler");
        free(s);
        return NULL;
    }
    return s;
}

void rt_dev_sampler_free(RtDevSampler *s) {
    if (!s) return;
    rt_cuda_free(s->cu, s->ids);
    free(s);
}

bool rt_dev_sample(RtDevSampler *s, RtDevPtr logits, int64_t rows, int64_t stride, int64_t V, const RtSampling *p, uint64_t row0,
                   uint64_t step, int32_t *ids, DiagEngine *d) {
    if (rows <= 0) return true;
    if (V < 1 || V > 0x7ffffffe || rows > 0x7fffffff) {
        diag_error(d, (SrcLoc){0}, "the device sampler takes 1 to 2^31 - 2 logits a row and 2^31 - 1 rows, not %lld x %lld",
                   (long long)rows, (long long)V);
        return false;
    }
    if (rows > s->cap) {
        rt_cuda_free(s->cu, s->ids);
        s->ids = 0;
        s->cap = 0;
        if (!rt_cuda_alloc(s->cu, d, sizeof(int32_t) * (size_t)rows, &s->ids)) return false;
        s->cap = rows;
    }
    SampleArgs a = {.logits = logits, .stride = stride, .V = (int)V, .inv_temp = p->temperature > 0 ? (float)(1.0 / p->temperature) : 0.0f,
                    .top_k = p->top_k > 0 && p->top_k < V ? (int)p->top_k : 0, .top_p = p->top_p, .seed = p->seed, .step = step,
                    .row0 = row0, .ids = s->ids};
    void *args[] = {&a};
    return rt_cuda_launch_async(s->cu, d, s->fn, (unsigned)rows, (unsigned)s->block, 0, args) &&
           rt_cuda_download(s->cu, d, ids, s->ids, sizeof(int32_t) * (size_t)rows);
}
#endif
