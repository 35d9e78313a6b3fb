// args.cuh — what every generated module begins with and a kernel file may
// use: the argument block each entry point takes (codegen/gen.h's CgArgs,
// `Args` here) and the helpers of programmatic dependent launch. The module
// prelude (codegen/gen.c) starts with this text; a kernel file compiled on
// its own (test_codegen, its tests and benchmarks) takes it in its stand-in
// with `#include "args.cuh"`, which cg_kernel_instance (codegen/kernels.c)
// replaces by this text; the guard keeps one copy a module. The emulated
// device (tests/emu/emu_kernel.h) has the inline-PTX helpers under the same
// names (emu_nvrtc.c's PTX_HELPERS lists them).
#ifndef DSCC_ARGS_CUH
#define DSCC_ARGS_CUH
typedef unsigned long long u64;
struct Args { u64 t[64]; long long sym[8]; long long cap, len; u64 err; long long tag; u64 pf; long long pf_bytes; };
// programmatic dependent launch (codegen/kernels.h): an entry that calls DSCC_PDL_WAIT() may start before the
// kernel ahead of it has finished; each thread waits before it touches anything a kernel of the step writes
// (before: weights only, e.g. prefetched into L2), on every path. DSCC_PDL_LAUNCH_DEPENDENTS() lets the next start.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ void pdl_prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" :: "l"(p)); }
#define DSCC_PDL_WAIT() pdl_wait()
#define DSCC_PDL_LAUNCH_DEPENDENTS() pdl_launch_dependents()
// L2 prefetch ahead (DSCC_L2_AHEAD, runtime/gpu_ahead.c): a kernel that reads little from HBM (a row kernel, the
// attention, the routing) pulls the first bytes of the next weight-streaming kernel's weights into L2 (Args.pf,
// pf_bytes; 0: none), so the HBM works under it and that kernel starts from L2. Warp 0 of block 0 issues them before
// its wait (weights only: no kernel of a step writes them), 32 KB a bulk prefetch: a hint, no value depends on it.
__device__ __forceinline__ void l2_prefetch_bulk(const void *p, unsigned bytes) {
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
}
__device__ __forceinline__ void l2_ahead(const Args &a) {
    if (a.pf_bytes <= 0 || (blockIdx.x | blockIdx.y | blockIdx.z) != 0 || threadIdx.x >= 32 || (threadIdx.y | threadIdx.z) != 0) return;
    const unsigned char *p = (const unsigned char *)a.pf;
    for (long long o = 32768LL * threadIdx.x; o < a.pf_bytes; o += 32 * 32768LL)
        l2_prefetch_bulk(p + o, (unsigned)(a.pf_bytes - o < 32768 ? a.pf_bytes - o : 32768));
}
#define DSCC_L2_AHEAD() l2_ahead(a)
#endif
