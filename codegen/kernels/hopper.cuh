// hopper.cuh — the Hopper (sm_90a) primitives the tensor-core kernel files
// share, as one-line inline-PTX helpers: mbarriers, TMA and cp.async copies
// completing on them, clusters, named barriers, setmaxnreg, and wgmma's
// fence / commit / wait with the shared-memory descriptors. A kernel file
// takes them with `#include "hopper.cuh"`, which cg_kernel_instance
// (codegen/kernels.c) replaces by this text; the guard keeps one copy per
// module. The emulated device (tests/emu/emu_kernel.h) has each helper
// under the same name, so every name here must be listed there and in
// emu_nvrtc.c's PTX_HELPERS. Nothing here depends on a kernel's #defines:
// a helper that needs a constant takes it as a template argument.
#ifndef DSCC_HOPPER_CUH
#define DSCC_HOPPER_CUH

// mbarriers (64-bit words in shared memory):
// init with `count` arrivals a phase
__device__ __forceinline__ void hp_mbar_init(void *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)), "r"(count) : "memory");
}
// the barriers' initialization made visible to the copy engine (and the cluster)
__device__ __forceinline__ void hp_mbar_fence_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
// generic-proxy writes to shared memory made visible to the async proxy (TMA, wgmma)
__device__ __forceinline__ void hp_fence_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void hp_mbar_arrive(void *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)) : "memory");
}
// arrive, and `bytes` more to come by the copies of this phase
__device__ __forceinline__ void hp_mbar_expect_tx(void *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)), "r"(bytes) : "memory");
}
// until the phase of parity `parity` has completed
__device__ __forceinline__ void hp_mbar_wait(void *bar, unsigned parity) {
    const unsigned b = (unsigned)__cvta_generic_to_shared(bar);
    unsigned done = 0;
    while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(b), "r"(parity) : "memory");
}

// clusters:
// the CTA's rank in its cluster; barrier.cluster (every thread of the cluster's CTAs)
__device__ __forceinline__ unsigned hp_cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
__device__ __forceinline__ void hp_cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// an arrival on the barrier at bar's offset in CTA `rank` of the cluster
__device__ __forceinline__ void hp_mbar_arrive_cluster(void *bar, unsigned rank) {
    asm volatile("{\n .reg .b32 ra;\n mapa.shared::cluster.u32 ra, %0, %1;\n mbarrier.arrive.release.cluster.shared::cluster.b64 _, [ra];\n}\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(bar)), "r"(rank) : "memory");
}
// until the phase of parity `parity` has completed, with acquire at the cluster's scope (an arrival from another
// CTA of the cluster, hp_mbar_arrive_cluster's release, orders that CTA's accesses before this thread's next ones)
__device__ __forceinline__ void hp_mbar_wait_cluster(void *bar, unsigned parity) {
    const unsigned b = (unsigned)__cvta_generic_to_shared(bar);
    unsigned done = 0;
    while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(b), "r"(parity) : "memory");
}
// st.async: 16 bytes (v) into CTA rank's shared memory at p's offset (16-byte aligned), completing them on the
// transaction count of the barrier at bar's offset there (the receiver waits on that barrier, not on the writer)
__device__ __forceinline__ void hp_st_async4(float4 *p, float4 v, void *bar, unsigned rank) {
    asm volatile("{\n .reg .b32 ra, rb;\n mapa.shared::cluster.u32 ra, %0, %6;\n mapa.shared::cluster.u32 rb, %1, %6;\n"
                 " st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [ra], {%2, %3, %4, %5}, [rb];\n}\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(p)), "r"((unsigned)__cvta_generic_to_shared(bar)), "f"(v.x), "f"(v.y),
                 "f"(v.z), "f"(v.w), "r"(rank) : "memory");
}
// st.async of one float (p 4-byte aligned), as hp_st_async4
__device__ __forceinline__ void hp_st_async1(float *p, float v, void *bar, unsigned rank) {
    asm volatile("{\n .reg .b32 ra, rb;\n mapa.shared::cluster.u32 ra, %0, %3;\n mapa.shared::cluster.u32 rb, %1, %3;\n"
                 " st.async.shared::cluster.mbarrier::complete_tx::bytes.f32 [ra], %2, [rb];\n}\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(p)), "r"((unsigned)__cvta_generic_to_shared(bar)), "f"(v), "r"(rank) : "memory");
}

// copies:
// TMA: the box at element c0 of dim 0 and row c1 of the tensor map into dst, completing on bar
__device__ __forceinline__ void hp_tma_2d(void *dst, const void *map, void *bar, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(map), "r"(c0), "r"(c1), "r"((unsigned)__cvta_generic_to_shared(bar))
                 : "memory");
}
// an L2 policy whose lines are evicted first (bytes read once: the experts' weights; MLA_L2HINT's keys)
__device__ __forceinline__ unsigned long long hp_policy_evict_first() {
    unsigned long long p;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
    return p;
}
// hp_tma_2d under the L2 policy pol
__device__ __forceinline__ void hp_tma_2d_hint(void *dst, const void *map, void *bar, int c0, int c1, unsigned long long pol) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], [%4], %5;\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(map), "r"(c0), "r"(c1), "r"((unsigned)__cvta_generic_to_shared(bar)), "l"(pol)
                 : "memory");
}
// hp_tma_2d into dst's offset in each CTA of `mask`, completing on bar's offset in each
__device__ __forceinline__ void hp_tma_2d_mc(void *dst, const void *map, void *bar, int c0, int c1, unsigned short mask) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(map), "r"(c0), "r"(c1), "r"((unsigned)__cvta_generic_to_shared(bar)), "h"(mask)
                 : "memory");
}
// 1-D bulk copy (the non-tensor TMA): `bytes` contiguous bytes of global memory at src into dst, completing
// them on bar's transaction count (16-byte aligned src and dst, bytes a multiple of 16); one thread issues it
__device__ __forceinline__ void hp_bulk_g2s(void *dst, const void *src, unsigned bytes, void *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                 ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src), "r"(bytes), "r"((unsigned)__cvta_generic_to_shared(bar))
                 : "memory");
}
// a float of CTA `rank`'s shared memory at p's offset (distributed shared memory: mapa + ld.shared::cluster)
__device__ __forceinline__ float hp_dsmem_ld(const float *p, unsigned rank) {
    unsigned r;
    float v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"((unsigned)__cvta_generic_to_shared(p)), "r"(rank));
    asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(r) : "memory");
    return v;
}
// 16 bytes of CTA `rank`'s shared memory at p's offset (16-byte aligned): mapa + ld.shared::cluster.v4.f32
__device__ __forceinline__ float4 hp_dsmem_ld4(const float4 *p, unsigned rank) {
    unsigned r;
    float4 v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"((unsigned)__cvta_generic_to_shared(p)), "r"(rank));
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(r) : "memory");
    return v;
}
// the sum of the float at p's offset over the N CTAs of the cluster, in rank order (the same bits every run);
// N 1: this CTA's own (a shared load: also outside a cluster launch)
template <unsigned N> __device__ __forceinline__ float hp_cluster_sum(const float *p) {
    float v = 0.0f;
#pragma unroll
    for (unsigned c = 0; c < N; c++) v += N > 1 ? hp_dsmem_ld(p, c) : *p;
    return v;
}
// prefetch.global.L2 (args.cuh's pdl_prefetch_l2) of what a thread of a skinny-M GEMM loads of its weights w
// (rows of k bytes, below row n) in step t of its warp (of 8 warps splitting K; gemm_skinny.cuh's pipelined form,
// gemm_skinny2.cuh): the K blocks kb = warp + 8 (U t + u), u < U, of the RB 8-row groups from row n0, 16 bytes at
// K byte 128 kb + 64h + 16q (h < 2) of row n0 + 8r + g, none past n or k. Read-only data only: it may run before
// DSCC_PDL_WAIT().
template <int U, int RB> __device__ __forceinline__ void hp_prefetch_w16(const unsigned char *w, long long n, long long k, long long n0, int warp,
                                                                          long long t, int g, int q) {
    const long long nkb = (k + 127) / 128;
#pragma unroll
    for (int u = 0; u < U; u++) {
        const long long kb = warp + 8 * (U * t + u);
#pragma unroll
        for (int r = 0; r < RB; r++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const long long row = n0 + r * 8 + g, c = kb * 128 + h * 64 + q * 16;
                if (kb < nkb && row < n && c < k) pdl_prefetch_l2(w + row * k + c);
            }
    }
}
// cp.async of 16 bytes, zeros when !v
__device__ __forceinline__ void hp_cp16(void *dst, const void *src, bool v) {
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(v ? 16 : 0));
}
// an arrival on bar once this thread's cp.async so far have landed (.noinc: among the barrier's count)
__device__ __forceinline__ void hp_cp_arrive(void *bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"((unsigned)__cvta_generic_to_shared(bar)) : "memory");
}
// until every cp.async of this thread has landed
__device__ __forceinline__ void hp_cp_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// named barriers and register reallocation:
// bar.sync / bar.arrive on named barrier id (0 is __syncthreads') of n threads
__device__ __forceinline__ void hp_bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void hp_bar_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
// setmaxnreg: the warpgroup's registers a thread down to N (a producer) or up to N (a consumer)
template <unsigned N> __device__ __forceinline__ void hp_setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <unsigned N> __device__ __forceinline__ void hp_setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }

// wgmma:
__device__ __forceinline__ void hp_wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void hp_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void hp_wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void hp_wg_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// accumulator operands: "+f" of d[i] .. d[i + 3] (HP_F4) up to d[0] .. d[63] (HP_F64), and the
// matching "%0, %1, ..." lists of the asm text (HP_R32, HP_R64)
#define HP_F4(d, i) "+f"(d[i]), "+f"(d[(i) + 1]), "+f"(d[(i) + 2]), "+f"(d[(i) + 3])
#define HP_F16(d, i) HP_F4(d, i), HP_F4(d, (i) + 4), HP_F4(d, (i) + 8), HP_F4(d, (i) + 12)
#define HP_F32(d, i) HP_F16(d, i), HP_F16(d, (i) + 16)
#define HP_F64(d) HP_F32(d, 0), HP_F32(d, 32)
#define HP_R8(a, b, c, d, e, f, g, h) "%" #a ", %" #b ", %" #c ", %" #d ", %" #e ", %" #f ", %" #g ", %" #h
#define HP_R32 HP_R8(0, 1, 2, 3, 4, 5, 6, 7) ", " HP_R8(8, 9, 10, 11, 12, 13, 14, 15) ", " HP_R8(16, 17, 18, 19, 20, 21, 22, 23) ", " \
               HP_R8(24, 25, 26, 27, 28, 29, 30, 31)
#define HP_R64 HP_R32 ", " HP_R8(32, 33, 34, 35, 36, 37, 38, 39) ", " HP_R8(40, 41, 42, 43, 44, 45, 46, 47) ", " \
               HP_R8(48, 49, 50, 51, 52, 53, 54, 55) ", " HP_R8(56, 57, 58, 59, 60, 61, 62, 63)
// after a wait: the accumulators' uses and definitions stay after it
__device__ __forceinline__ void hp_hold32(float *d) { asm volatile("" : HP_F32(d, 0)::"memory"); }
__device__ __forceinline__ void hp_hold64(float *d) { asm volatile("" : HP_F64(d)::"memory"); }
// A shared-memory matrix descriptor: start address >> 4, leading byte offset >> 4 at bit 16,
// stride byte offset >> 4 at 32, base offset 0, layout at 62 (1: the 128-byte swizzle)
__device__ __forceinline__ unsigned long long hp_desc(const void *p, unsigned lbo, unsigned sbo, unsigned layout) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    return (unsigned long long)((s & 0x3ffffu) >> 4) | (unsigned long long)((lbo & 0x3ffffu) >> 4) << 16 |
           (unsigned long long)((sbo & 0x3ffffu) >> 4) << 32 | (unsigned long long)layout << 62;
}
// d[64 x 128] (+)= a[64 rows][32 bytes] . b[128 rows][32 bytes]^T, E4M3, both K-major, from
// descriptors (acc 0: d = the product)
__device__ __forceinline__ void hp_wgmma128_e4m3(float *d, unsigned long long da, unsigned long long db, int acc) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
                 " wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" HP_R64 "}, %64, %65, p, 1, 1;\n}\n"
                 : HP_F64(d)
                 : "l"(da), "l"(db), "r"(acc));
}

// conversions:
// two floats as bf16, nearest even, lower half first (cvt's first source goes to the upper half)
__device__ __forceinline__ unsigned hp_bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
// 2^x by the MUFU unit alone (denormal results flushed to 0)
__device__ __forceinline__ float hp_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// timers (for a kernel's own time stamps, e.g. bench_mla --stamps): the SM's cycle counter (not comparable across
// SMs) and the GPU's nanosecond clock (common to every SM, coarser)
__device__ __forceinline__ unsigned long long hp_clock64() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%clock64;\n" : "=l"(t));
    return t;
}
__device__ __forceinline__ unsigned long long hp_globaltimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
#endif
