// l2_ahead.cuh — the runtime's L2 prefetch ahead (DSCC_L2_AHEAD, runtime/gpu_ahead.c): launched on the executor's
// second stream once the weight stream before it has finished, while the step's light kernels (row kernels, rope,
// attention over a short cache) run on the first, it pulls the first bytes of the next weight stream's weight into
// L2, so the HBM works under them and that stream starts from L2. Many small blocks, each on its own SM, because one
// SM's bulk prefetches drain at only ~0.3 TB/s (an H100 timed 4 MB issued by one warp of a row kernel at ~12 us):
// block b takes L2A_CHUNK bytes a lane, 32 lanes, from a.t[0] + b * 32 * L2A_CHUNK, up to a.sym[0] bytes in all.
// A hint: no value depends on it; the range lies in one weight.
//   DSCC_ENTRY   the entry point's name
//   L2A_CHUNK    bytes one lane prefetches (a multiple of 16; default 8 KB: 256 KB a block)
#include "args.cuh"
#ifndef L2A_CHUNK
#define L2A_CHUNK 8192LL
#endif

extern "C" __global__ void __launch_bounds__(32) DSCC_ENTRY(Args a) {
    const long long o = ((long long)blockIdx.x * 32 + threadIdx.x) * L2A_CHUNK, n = a.sym[0] - o;
    if (n > 0) l2_prefetch_bulk((const unsigned char *)a.t[0] + o, (unsigned)(n < L2A_CHUNK ? n : L2A_CHUNK));
}
