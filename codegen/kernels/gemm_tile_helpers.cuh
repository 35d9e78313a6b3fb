// gemm_tile_helpers.cuh — what gemm_tile.cuh's tiles share at module scope:
// tile_off(r, kc), the shared-memory offset of byte kc of a tile row r, and
// for the wgmma form its helpers. The generator writes this text into a
// module once, before its first tile (codegen/gen_gemm.c, after mma.cuh),
// with GTL_WGMMA defined: 1 for Hopper's wgmma tile (rows of 128 bytes in
// the 128-byte swizzle: row r's 16-byte chunk c at c ^ (r % 8)), 0 for the
// mma.sync one (rows of 144 bytes: no bank conflicts for its fragments).
//
// wgmma helpers: the fence that makes cp.async's (generic-proxy) writes
// visible to the tensor cores' async proxy, and one warpgroup MMA
// d[64x64] (+)= a[64 rows][32 bytes] . b[64 rows][32 bytes]^T from shared
// memory, both K-major in the 128-byte swizzle (8-row groups 1024 bytes
// apart). The descriptor: start address >> 4 (bits 0-13), leading byte
// offset 16 (unused by a K-major swizzled operand), stride byte offset
// 1024 >> 4 (bits 32-45), swizzle mode 1 = 128 bytes (bits 62-63). d: 32 f32
// a thread, rows warp % 4 * 16 + lane / 4 (+8 for registers 2, 3 of each 4),
// cols (register / 4) * 8 + lane % 4 * 2 (+1). The emulated device
// (tests/emu/emu_kernel.h) has each helper under the same name.
#ifndef GTL_WGMMA
#error "gemm_tile_helpers.cuh takes GTL_WGMMA: 1 the wgmma tile's helpers, 0 the mma.sync tile's tile_off"
#endif
#if GTL_WGMMA
// the 32 accumulators a thread as read-write asm operands %0 .. %31
#define GTL_D32                                                                                                          \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]),   \
        "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), \
        "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// after the wait and before the next fence: the compiler may not move uses or definitions of d across it
__device__ __forceinline__ void wg_hold(float *d) {
    asm volatile("" : GTL_D32 :: "memory");
}
// d (+)= a . b^T: E4M3 k32 and BF16 k16, the same operand layout
// the operand's descriptor (K-major, 128-byte swizzle); the instruction's head and its 32 accumulators %0 .. %31
__device__ __forceinline__ unsigned long long gtl_desc(const void *p) {
    return (1ull << 16 | 64ull << 32 | 1ull << 62) | ((unsigned)__cvta_generic_to_shared(p) & 0x3ffffu) >> 4;
}
#define GTL_WGMMA_HEAD "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\nwgmma.mma_async.sync.aligned."
#define GTL_WGMMA_D " {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1"
__device__ __forceinline__ void wgmma_e4m3(float *d, const void *pa, const void *pb, int acc) {  // acc = 0: d = a . b^T
    asm volatile(GTL_WGMMA_HEAD "m64n64k32.f32.e4m3.e4m3" GTL_WGMMA_D ";\n}\n" : GTL_D32 : "l"(gtl_desc(pa)), "l"(gtl_desc(pb)), "r"(acc));
}
__device__ __forceinline__ void wgmma_bf16(float *d, const void *pa, const void *pb, int acc) {  // acc = 0: d = a . b^T
    asm volatile(GTL_WGMMA_HEAD "m64n64k16.f32.bf16.bf16" GTL_WGMMA_D ", 0, 0;\n}\n" : GTL_D32 : "l"(gtl_desc(pa)), "l"(gtl_desc(pb)), "r"(acc));
}
#undef GTL_WGMMA_HEAD
#undef GTL_WGMMA_D
#undef GTL_D32
__device__ __forceinline__ int tile_off(int r, int kc) { return r * 128 + (((kc >> 4) ^ (r & 7)) << 4) + (kc & 15); }
#else
__device__ __forceinline__ int tile_off(int r, int kc) { return r * 144 + kc; }
#endif
