/* bench_util.c — what more than one benchmark does the same way: the pure
 * read of device memory that floors and skinny-GEMM references use; a
 * kernel benchmark's modules, inputs and sorted times. */
#include "bench/bench_util.h"

#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "codegen/kernels.h"
#include "runtime/cuda.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The reference: the median ms over 7 repetitions of a pure read of
 * `bytes` (codegen/kernels/stream_read.cuh: 16-byte loads, 8 in flight a
 * thread, 4 blocks of 256 threads on every SM), each after the same L2
 * flush (a memset of `flush` bytes) and timed the same way (events right
 * around the launch): the least a kernel that reads the weights can take
 * here. -1 after reporting. */
double bench_read_ms(int64_t bytes, int64_t flush, DiagEngine *d) {
    Arena *a = arena_new();
    RtCuda *c = rt_cuda_open(d, 0);
    const char *name = "bench_stream_read";
    CgSource src = {name, cg_kernel_instance(a, "stream_read", name, NULL, 0), {"codegen/kernels/stream_read.cuh", 0, 0}};
    CgBinary bin = {0};
    RtDevPtr buf = 0, fl = 0, sink = 0;
    RtEvent *e0 = NULL, *e1 = NULL;
    RtKernel *k = NULL;
    double t[7], ms = -1;
    bool ok = c && src.source && bench_kernels(a, d, c, &src, 1, &bin, &k) &&
              rt_cuda_alloc(c, d, (size_t)bytes, &buf) && rt_cuda_alloc(c, d, 64, &sink) && (flush <= 0 || rt_cuda_alloc(c, d, (size_t)flush, &fl)) &&
              rt_cuda_memset0(c, d, buf, (size_t)bytes) && (e0 = rt_cuda_event(c, d)) && (e1 = rt_cuda_event(c, d));
    struct {
        RtDevPtr p;
        long long n16;
        RtDevPtr sink;
    } ra = {buf, bytes / 16, sink}; /* stream_read.cuh's struct Args */
    void *args[] = {&ra};
    unsigned grid = c ? (unsigned)(4 * rt_cuda_sms(c)) : 0;
    ok = ok && rt_cuda_launch(c, d, k, grid, 256, 0, args); /* once to load it */
    for (int r = 0; r < 7 && ok; r++) {
        float f = 0;
        ok = (flush <= 0 || rt_cuda_memset0(c, d, fl, (size_t)flush)) && rt_cuda_event_record(c, d, e0) &&
             rt_cuda_launch_async(c, d, k, grid, 256, 0, args) && rt_cuda_event_record(c, d, e1) && rt_cuda_event_ms(c, d, e0, e1, &f);
        t[r] = f;
    }
    if (ok) {
        qsort(t, 7, sizeof t[0], cmp_double);
        ms = t[3];
    }
    if (c) {
        rt_cuda_event_free(c, e0), rt_cuda_event_free(c, e1);
        rt_cuda_free(c, buf), rt_cuda_free(c, fl), rt_cuda_free(c, sink);
    }
    rt_cuda_close(c);
    cg_binary_free(&bin);
    arena_free(a);
    return ms;
}

bool bench_kernels(Arena *a, DiagEngine *d, RtCuda *gpu, const CgSource *src, int n, CgBinary *bins, RtKernel **k) {
    if (cg_compile(a, d, src, n, &(CgOptions){0}, bins) != 0) return false;
    for (int i = 0; i < n; i++)
        if (!(k[i] = rt_cuda_kernel(gpu, d, bins[i].data, src[i].name))) return false;
    return true;
}

void bench_fill_bf16(uint16_t *p, size_t n, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) {
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        float f = (float)((*rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
        uint32_t u;
        memcpy(&u, &f, 4);
        p[i] = (uint16_t)(u >> 16);
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

void bench_sort_ms(float *ms, int n) { qsort(ms, (size_t)n, sizeof *ms, cmp_float); }
void bench_sort_d(double *x, int n) { qsort(x, (size_t)n, sizeof *x, cmp_double); }
