// ld_stream.cuh — the predicated 16-byte global loads of the kernel files
// that stream their weights through registers (gemm_skinny.cuh,
// expert_stream.cuh) and of the pure read bench_gemm times beside them
// (stream_read.cuh): one ld.global.nc.v4.u32 of 16 bytes from a 16-aligned
// address where v, zeros where !v (no load: a predicate, not a branch, so the
// address may then lie anywhere). A kernel file takes them with
// `#include "ld_stream.cuh"`, which cg_kernel_instance (codegen/kernels.c)
// replaces by this text; the guard keeps one copy a module. The emulated
// device (tests/emu/emu_kernel.h) has both under the same names (emu_nvrtc.c's
// PTX_HELPERS lists them).
#ifndef DSCC_LD_STREAM_CUH
#define DSCC_LD_STREAM_CUH
// 16 bytes of a stream read once (the weights), so kept out of L1 (.L1::no_allocate)
__device__ __forceinline__ uint4 ld_stream16_if(const void *p, bool v) {
    uint4 r;
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
                 " @p ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p), "r"((int)v));
    return r;
}
// 16 bytes read again by other blocks or items (x: it stays in L2, and L1 may keep it)
__device__ __forceinline__ uint4 ld_x16_if(const void *p, bool v) {
    uint4 r;
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
                 " @p ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p), "r"((int)v));
    return r;
}
#endif
