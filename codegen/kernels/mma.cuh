// mma.cuh — the mma.sync helpers a module's tensor-core code shares:
// cp.async copies of 16 bytes (zeros where a row is past the end) with their
// commit and waits, ldmatrix (transposed), and one mma.sync m16n8k32 E4M3 or
// m16n8k16 BF16 into f32 accumulators. The generator writes this text into a
// module once, before the first template that uses it (cg_mma_helpers,
// codegen/gen_gemm.c); a kernel file compiled on its own (test_codegen, its
// tests and benchmarks) takes it in its stand-in with `#include "mma.cuh"`,
// which cg_kernel_instance (codegen/kernels.c) replaces by this text; the
// guard keeps one copy a module. The emulated device (tests/emu/emu_kernel.h)
// has each helper under the same name (emu_nvrtc.c's PTX_HELPERS lists them).
#ifndef DSCC_MMA_CUH
#define DSCC_MMA_CUH
__device__ __forceinline__ void cp16(void *dst, const void *src, bool v) {  // 16 bytes, zeros when !v
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(s), "l"(src), "r"(v ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_wait1() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
__device__ __forceinline__ void cp_wait2() { asm volatile("cp.async.wait_group 2;\n" ::: "memory"); }
__device__ __forceinline__ void cp_wait0() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void ldsm_x2_t(unsigned *r, const void *p) {  // two 8x8 b16 matrices, transposed (rows from lanes 0-15)
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}
__device__ __forceinline__ void mma_e4m3(float *c, const unsigned *a, const unsigned *b) {  // c[16x8] += a[16x32] . b[32x8]
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_bf16(float *c, const unsigned *a, const unsigned *b) {  // c[16x8] += a[16x16] . b[16x8]
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif
