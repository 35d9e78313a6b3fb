// stream_read.cuh — a pure read of n16 x 16 bytes from device memory, the
// reference bench_gemm times beside the skinny-M GEMM at the same byte
// count and L2 flush: what reading the weights alone costs on this GPU.
// A grid-stride loop over the whole grid; each thread issues SR_LOADS
// independent 16-byte loads (ld.global.nc.L1::no_allocate, the skinny
// GEMM's weight load) before it uses any, then folds them into one word
// that is stored only if it equals a constant (so the loads stay).
// Launch: 256 threads a block, a few blocks an SM on every SM.
//
// Parameters (#define):
//   DSCC_ENTRY   the entry point's name; its one argument is struct Args below
//   SR_LOADS     16-byte loads a thread has in flight (default 8)
#ifndef SR_LOADS
#define SR_LOADS 8
#endif

// ld_stream16_if: the skinny GEMM's weight load
#include "ld_stream.cuh"

struct Args { // bench_gemm's layout of it
    const uint4 *p;    // n16 x 16 bytes, 16-aligned
    long long n16;
    unsigned *sink;    // one word
};

extern "C" __global__ void __launch_bounds__(256) DSCC_ENTRY(Args a) {
    const uint4 *p = a.p;
    const long long n16 = a.n16;
    const long long stride = (long long)gridDim.x * 256;
    unsigned acc = 0;
    for (long long i = blockIdx.x * 256LL + threadIdx.x; i < n16; i += SR_LOADS * stride) {
        uint4 v[SR_LOADS];
#pragma unroll
        for (int u = 0; u < SR_LOADS; u++) v[u] = ld_stream16_if(p + i + u * stride, i + u * stride < n16);
#pragma unroll
        for (int u = 0; u < SR_LOADS; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (acc == 0x9e3779b9u) a.sink[0] = acc; // (almost) never: the loads are used
}
#undef SR_LOADS
#undef DSCC_ENTRY
