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
struct Args { u64 t[64]; long long sym[8]; long long cap, len; u64 err; long long tag; };
// programmatic dependent launch (codegen/kernels.h): an entry that calls DSCC_PDL_WAIT() may start before the
// kernel ahead of it has finished; each thread waits before it touches anything a kernel of the step writes
// (before: weights only, e.g. prefetched into L2), on every path. DSCC_PDL_LAUNCH_DEPENDENTS() lets the next start.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ void pdl_prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" :: "l"(p)); }
#define DSCC_PDL_WAIT() pdl_wait()
#define DSCC_PDL_LAUNCH_DEPENDENTS() pdl_launch_dependents()
#endif
