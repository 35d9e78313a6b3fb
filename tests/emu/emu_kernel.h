/* emu_kernel.h — the CUDA device subset the generated kernels use, as host
 * C++: what an emulated module (a generated source, translated by
 * emu_nvrtc.c) is compiled against by g++ for the emulated device.
 *
 * Written from the CUDA and PTX ISA documentation, independently of the
 * code generator, so a wrong fragment layout or conversion in codegen/
 * shows as a mismatch instead of being copied. The one design choice: a
 * block's threads are fibers of one host thread and every block-wide or
 * warp-wide operation is a call into the driver (EmuCtx), which switches
 * fibers only there; so the thread indices, shared memory and the
 * exchange buffers need no locks, and a run is deterministic. Everything
 * here is static: each module carries its own copy. */
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "emu_abi.h"
}

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))

static thread_local EmuCtx *emu_ctx; /* the host worker's context, set by each entry */

/* ---- qualifiers and built-in variables ---------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __cluster_dims__(...) /* emu_nvrtc.c exports it as emu_cluster_NAME */
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define __shared__ static thread_local /* one block at a time per host thread */
#define threadIdx (emu_ctx->thread_idx)
#define blockIdx (emu_ctx->block_idx)
#define blockDim (emu_ctx->block_dim)
#define gridDim (emu_ctx->grid_dim)
#define warpSize 32
#define __syncthreads() emu_ctx->sync_block(emu_ctx, __LINE__)
#define __threadfence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
static inline unsigned char *emu_dyn_smem(void) { return emu_ctx->smem; }

/* ---- vector types ---------------------------------------------------------- */
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(8) float2 { float x, y; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
static inline int4 make_int4(int a, int b, int c, int d) { return int4{a, b, c, d}; }
static inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
static inline uint2 make_uint2(unsigned a, unsigned b) { return uint2{a, b}; }
static inline float2 make_float2(float a, float b) { return float2{a, b}; }

/* ---- bit casts and math intrinsics ---------------------------------------- */
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
/* __expf, __logf: glibc declares them with the same meaning */
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

/* ---- what the generated prelude does in inline PTX ------------------------ */
/* cvt.f32.f16: exact */
static inline float h2f(unsigned short h) {
    unsigned s = (unsigned)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u;
    if (e == 31) return __uint_as_float(s | 0x7f800000u | (m << 13));
    if (e == 0) return (s ? -1.0f : 1.0f) * ldexpf((float)m, -24);
    return __uint_as_float(s | ((e + 112u) << 23) | (m << 13));
}
/* cvt.rn.f16.f32: nearest even; overflow to infinity */
static inline unsigned short f2h(float f) {
    unsigned short s = (unsigned short)((__float_as_uint(f) >> 16) & 0x8000u);
    float a = fabsf(f);
    if (a != a) return (unsigned short)(s | 0x7e00u);
    if (a >= 65520.0f) return (unsigned short)(s | 0x7c00u);
    int e;
    frexpf(a, &e);                   /* a = m * 2^e, m in [0.5, 1) */
    int q = e - 1 < -14 ? -24 : e - 11; /* the quantum: 2^-24 below 2^-14, else 10 mantissa bits */
    float n = rintf(ldexpf(a, -q));  /* exact scaling, then nearest even */
    if (q == -24) return (unsigned short)(s | (unsigned)n); /* 1024 is the smallest normal: same bits */
    unsigned m = (unsigned)n, ex = (unsigned)(e - 1 + 15);
    if (m == 2048) m = 1024, ex++;
    return (unsigned short)(s | (ex << 10) | (m - 1024));
}
/* cvt.rn.satfinite.e4m3x2.f32, one lane: nearest even, finite values and
 * infinities saturate to +-448, NaN stays NaN */
static inline unsigned char fe4m3(float f) {
    unsigned char s = (unsigned char)((__float_as_uint(f) >> 24) & 0x80u);
    float a = fabsf(f);
    if (a != a) return 0x7f;
    if (a >= 448.0f) return (unsigned char)(s | 0x7e);
    int e;
    frexpf(a, &e);
    int q = e - 1 < -6 ? -9 : e - 4; /* 2^-9 for subnormals, else 3 mantissa bits */
    unsigned n = (unsigned)rintf(ldexpf(a, -q));
    if (a == 0.0f) return s;
    if (q == -9) return (unsigned char)(s | n); /* 8 is the smallest normal: same bits */
    unsigned ex = (unsigned)(e - 1 + 7);
    if (n == 16) n = 8, ex++;
    if (ex > 15 || (ex == 15 && n - 8 == 7)) return (unsigned char)(s | 0x7e); /* rounded past 448 */
    return (unsigned char)(s | (ex << 3) | (n - 8));
}
static inline float emu_e4m3(unsigned b) { /* E4M3 code -> f32, exact (the driver's own, not the prelude's) */
    unsigned e = (b >> 3) & 15u, m = b & 7u;
    float v = (e == 15u && m == 7u) ? __uint_as_float(0x7fc00000u) : e == 0u ? ldexpf((float)m, -9) : ldexpf((float)(8u + m), (int)e - 10);
    return (b & 0x80u) ? -v : v;
}
static inline float emu_bf16(unsigned h) { return __uint_as_float((h & 0xffffu) << 16); }

/* cp.async.cg.shared.global, 16 bytes, zero-filled when !v; lands at the wait */
static inline void emu_cp16(void *dst, const void *src, bool v, int line) {
    if (((uintptr_t)dst & 15) || (v && ((uintptr_t)src & 15))) emu_ctx->fault(emu_ctx, "cp.async of 16 bytes to or from a misaligned address", line);
    emu_ctx->cp_async(emu_ctx, dst, src, 16, v ? 16 : 0);
}
#define cp16(dst, src, v) emu_cp16((dst), (src), (v), __LINE__)
static inline void cp_commit(void) { emu_ctx->cp_commit(emu_ctx); }
static inline void cp_wait0(void) { emu_ctx->cp_wait(emu_ctx, 0); }
static inline void cp_wait1(void) { emu_ctx->cp_wait(emu_ctx, 1); }
static inline void ex_cp_wait3(void) { emu_ctx->cp_wait(emu_ctx, 3); } /* expert_stream.cuh's ring depths */
static inline void ex_cp_wait5(void) { emu_ctx->cp_wait(emu_ctx, 5); }
static inline void ex_cp_wait7(void) { emu_ctx->cp_wait(emu_ctx, 7); }
static inline void cp_wait2(void) { emu_ctx->cp_wait(emu_ctx, 2); }
/* @p ld.global.nc[.L1::no_allocate].v4.u32 (ld_stream.cuh's, the weight
 * streams and x of gemm_skinny.cuh and expert_stream.cuh): 16 bytes from a 16-aligned address where v, zeros and no access
 * where !v (the address may then lie outside every allocation) */
static inline uint4 emu_ld16_if(const void *p, bool v, int line) {
    uint4 r = {0, 0, 0, 0};
    if (!v) return r;
    if ((uintptr_t)p & 15) emu_ctx->fault(emu_ctx, "16-byte load from a misaligned address", line);
    memcpy(&r, p, 16);
    return r;
}
#define ld_stream16_if(p, v) emu_ld16_if((p), (v), __LINE__)
#define ld_x16_if(p, v) emu_ld16_if((p), (v), __LINE__)
/* mapa.shared::cluster + ld.shared::cluster.f32 of a float of CTA rank's
 * shared memory at p's offset (hopper.cuh's hp_dsmem_ld, below; p in the
 * dynamic shared memory: the emulator keeps one static __shared__ a host
 * thread, a CTA's own) */
static inline float emu_dsmem_ld(const float *p, unsigned rank, int line) {
    return *(const float *)emu_ctx->cluster_map(emu_ctx, p, rank, sizeof(float), line);
}
/* hopper.cuh's hp_dsmem_ld4: 16 bytes (a float4) of CTA rank's shared memory at p's offset */
static inline float4 emu_dsmem_ld4(const float4 *p, unsigned rank, int line) {
    return *(const float4 *)emu_ctx->cluster_map(emu_ctx, p, rank, sizeof(float4), line);
}
/* fence.proxy.async.shared::cta: the emulated device has one memory and one proxy */
static inline void fence_async_smem(void) {}

/* __cvta_generic_to_shared: a dynamic shared-memory pointer's offset in the
 * block's window (the emulated window holds the dynamic memory only) */
static inline size_t emu_cvta_shared(const void *p, int line) {
    const unsigned char *c = (const unsigned char *)p;
    if (c < emu_ctx->smem || c > emu_ctx->smem + emu_ctx->smem_bytes)
        emu_ctx->fault(emu_ctx, "__cvta_generic_to_shared of a pointer outside the dynamic shared memory", line);
    return (size_t)(c - emu_ctx->smem);
}
#define __cvta_generic_to_shared(p) emu_cvta_shared((p), __LINE__)

/* ---- warp collectives ------------------------------------------------------ */
static inline int emu_lane(void) { return (int)(((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x) & 31u); }
template <class T> static inline T emu_shfl(unsigned mask, T v, int src, int width, int line) {
    static_assert(sizeof(T) <= EMU_WARP_SLOT, "lane value too large");
    T all[32];
    emu_ctx->warp_exchange(emu_ctx, mask, &v, all, sizeof(T), line);
    const int l = emu_lane(), base = l & ~(width - 1);
    if (src < base || src >= base + width || !(mask >> src & 1u)) return v; /* outside the segment: unchanged */
    return all[src];
}
#define __shfl_xor_sync(mask, v, o, ...) emu_shfl_xor((mask), (v), (o), __LINE__, ##__VA_ARGS__)
#define __shfl_sync(mask, v, src, ...) emu_shfl_idx((mask), (v), (src), __LINE__, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) emu_shfl_down((mask), (v), (d), __LINE__, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) emu_shfl_up((mask), (v), (d), __LINE__, ##__VA_ARGS__)
template <class T> static inline T emu_shfl_xor(unsigned m, T v, int o, int line, int w = 32) { return emu_shfl(m, v, emu_lane() ^ o, w, line); }
template <class T> static inline T emu_shfl_idx(unsigned m, T v, int s, int line, int w = 32) {
    return emu_shfl(m, v, (emu_lane() & ~(w - 1)) + (s & (w - 1)), w, line);
}
template <class T> static inline T emu_shfl_down(unsigned m, T v, int d, int line, int w = 32) { return emu_shfl(m, v, emu_lane() + d, w, line); }
/* lanes below d in their segment keep their own value, as on the GPU */
template <class T> static inline T emu_shfl_up(unsigned m, T v, int d, int line, int w = 32) { return emu_shfl(m, v, emu_lane() - d, w, line); }
static inline unsigned emu_ballot(unsigned mask, int p, int line) {
    int all[32];
    emu_ctx->warp_exchange(emu_ctx, mask, &p, all, sizeof p, line);
    unsigned b = 0;
    for (int l = 0; l < 32; l++) b |= (mask >> l & 1u) && all[l] ? 1u << l : 0u;
    return b;
}
#define __ballot_sync(mask, p) emu_ballot((mask), (p) ? 1 : 0, __LINE__)
#define __any_sync(mask, p) (emu_ballot((mask), (p) ? 1 : 0, __LINE__) != 0u)
#define __all_sync(mask, p) (emu_ballot((mask), (p) ? 1 : 0, __LINE__) == (mask))
#define __syncwarp(...) (void)emu_ballot(0xffffffffu, 0, __LINE__)

/* mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 and m16n8k16 .bf16:
 * D = A B + C over the warp, fragments as the PTX ISA lays them out
 * (groupID = lane / 4, tid = lane % 4):
 *   A: 4 registers; row groupID (regs 0, 2) or groupID + 8 (regs 1, 3);
 *      e4m3: cols tid*4 + byte (+16 for regs 2, 3); bf16: cols tid*2 + half (+8)
 *   B: 2 registers; col groupID; rows as A's cols (reg 1: +16, bf16 +8)
 *   C, D: rows groupID (c0, c1) or groupID + 8 (c2, c3), cols tid*2 + (i & 1)
 * Products are exact in f32; the sum is taken in double and added to C. */
static inline void emu_mma(float *c, const unsigned *a, const unsigned *b, bool fp8, int line) {
    unsigned mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]}, all[32 * 6];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, mine, all, sizeof mine, line);
    const int l = emu_lane(), g = l >> 2, t = l & 3, K = fp8 ? 32 : 16, per = fp8 ? 4 : 2, half = K / 2;
    for (int i = 0; i < 4; i++) {
        const int r = g + 8 * (i >> 1), n = t * 2 + (i & 1);
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            const int kk = k % half, j = kk % per, lane_a = 4 * (r % 8) + kk / per, lane_b = 4 * n + kk / per;
            const unsigned ra = all[lane_a * 6 + (r >= 8) + 2 * (k >= half)], rb = all[lane_b * 6 + 4 + (k >= half)];
            const float x = fp8 ? emu_e4m3(ra >> (8 * j) & 0xffu) : emu_bf16(ra >> (16 * j));
            const float y = fp8 ? emu_e4m3(rb >> (8 * j) & 0xffu) : emu_bf16(rb >> (16 * j));
            s += (double)x * (double)y;
        }
        c[i] = (float)((double)c[i] + s);
    }
}
#define mma_e4m3(c, a, b) emu_mma((c), (a), (b), true, __LINE__)
#define mma_bf16(c, a, b) emu_mma((c), (a), (b), false, __LINE__)

/* wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 and m64n64k16
 * .f32.bf16.bf16, both operands K-major in shared memory in the 128-byte
 * swizzle, scale-a = scale-b = 1: the prelude's wgmma_e4m3 / wgmma_bf16(d,
 * a, b, acc) with a, b the generic addresses the descriptors are made of.
 * The PTX ISA's layout: an 8-row group of 128-byte rows is 1024 bytes
 * (the stride byte offset), row r of the group at r * 128; the hardware
 * XORs address bits 4-6 (the 16-byte chunk) with bits 7-9 (the row in the
 * group) of each byte's address, so the 16-byte chunk c of row r holds
 * the logical chunk c ^ r. The operand's 32 bytes of K start at a or b,
 * inside the first 128-byte row of a 1024-aligned group. Accumulator
 * fragment of thread t of the warpgroup (warp w = t / 32, lane l):
 * register i is row 16w + l/4 + 8 * ((i >> 1) & 1), col 8 * (i >> 2) +
 * 2 * (l % 4) + (i & 1). Issued asynchronously: the products are taken
 * at wgmma.wait_group (wg_wait0), from the shared memory as it is then,
 * and d must not be read before; a thread that issues no fence first,
 * or whose warp's lanes pass different operands, faults. */
struct EmuWgmma { float *d; unsigned a, b; short acc, fp8; };
enum { EMU_WG_PENDING = 8 };
static thread_local EmuWgmma emu_wg_pending[1024][EMU_WG_PENDING]; /* by thread of the block running on this host thread */
static thread_local int emu_wg_npending[1024], emu_wg_fenced[1024];
static inline int emu_tid(void) { return (int)((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x); }
static inline void wg_fence(void) { emu_wg_fenced[emu_tid()] = 1; }
static inline void wg_commit(void) {}
static inline unsigned char emu_wg_byte(unsigned base, int row, int k) {
    const size_t off = base + (size_t)(row >> 3) * 1024 + (size_t)(row & 7) * 128 + (size_t)k;
    return emu_ctx->smem[off ^ (((off >> 7) & 7) << 4)];
}
static inline void emu_wgmma(float *d, const void *pa, const void *pb, int acc, int fp8, int line) {
    const size_t a = emu_cvta_shared(pa, line), b = emu_cvta_shared(pb, line);
    const int t = emu_tid();
    if (!emu_wg_fenced[t]) emu_ctx->fault(emu_ctx, "wgmma without a wgmma.fence before it", line);
    if ((a & 15) || (b & 15) || (a & 1023) + 32 > 128 || (b & 1023) + 32 > 128)
        emu_ctx->fault(emu_ctx, "wgmma operand not 32 bytes inside the first row of a 1024-aligned swizzle group", line);
    if ((a & ~(size_t)1023) + 8192 > emu_ctx->smem_bytes || (b & ~(size_t)1023) + 8192 > emu_ctx->smem_bytes)
        emu_ctx->fault(emu_ctx, "wgmma operand past the dynamic shared memory", line);
    size_t mine[3] = {a, b, (size_t)acc}, all[32 * 3];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, mine, all, sizeof mine, line);
    for (int l = 0; l < 32; l++)
        if (all[3 * l] != a || all[3 * l + 1] != b || all[3 * l + 2] != (size_t)acc)
            emu_ctx->fault(emu_ctx, "wgmma: the lanes of a warp pass different operands", line);
    if (emu_wg_npending[t] == EMU_WG_PENDING) emu_ctx->fault(emu_ctx, "too many wgmma pending", line);
    emu_wg_pending[t][emu_wg_npending[t]++] = EmuWgmma{d, (unsigned)a, (unsigned)b, (short)acc, (short)fp8};
}
static inline void wg_wait0(void) {
    const int t = emu_tid(), w = (t & 127) >> 5, l = t & 31;
    for (int p = 0; p < emu_wg_npending[t]; p++) {
        const EmuWgmma &m = emu_wg_pending[t][p];
        for (int i = 0; i < 32; i++) {
            const int row = 16 * w + l / 4 + 8 * ((i >> 1) & 1), col = 8 * (i >> 2) + 2 * (l % 4) + (i & 1);
            double s = 0.0;
            for (int k = 0; k < (m.fp8 ? 32 : 16); k++) {
                float x, y;
                if (m.fp8) x = emu_e4m3(emu_wg_byte(m.a, row, k)), y = emu_e4m3(emu_wg_byte(m.b, col, k));
                else {
                    x = emu_bf16((unsigned)emu_wg_byte(m.a, row, 2 * k) | (unsigned)emu_wg_byte(m.a, row, 2 * k + 1) << 8);
                    y = emu_bf16((unsigned)emu_wg_byte(m.b, col, 2 * k) | (unsigned)emu_wg_byte(m.b, col, 2 * k + 1) << 8);
                }
                s += (double)x * (double)y;
            }
            m.d[i] = (float)((m.acc ? (double)m.d[i] : 0.0) + s);
        }
    }
    emu_wg_npending[t] = 0;
    emu_wg_fenced[t] = 0;
}
/* The general form (MLA's decode kernel, codegen/kernels/mla_decode.cuh):
 * wgmma.mma_async m64nNk16 .f32.bf16.bf16 from descriptors in the 128-byte
 * swizzle. A is K-major (32 bytes of each of 64 rows at a, rows 128 bytes
 * apart, 8-row groups 1024 apart). B is K-major the same way over N rows
 * (tb = 0, groups sbo apart), or MN-major (tb = 1, the descriptor's
 * transpose): the PTX ISA's canonical layout ((8, 8, m), (8, k)) of 16-byte
 * units, i.e. element (n, k) at byte 2 (n % 64) + 128 (k % 8) + lbo (n / 64)
 * + sbo (k / 8) from b, which must then start a 1024-aligned swizzle atom.
 * The swizzle is applied to each byte's address as above. Same fences,
 * waits, lane checks and faults as the m64n64 form; d holds N / 2 f32. */
struct EmuWgmmaX { float *d; unsigned a, b, lbo, sbo; short n, tb, acc, rs; unsigned group; unsigned short ar[32]; };
enum { EMU_WGX_PENDING = 40 };
static thread_local EmuWgmmaX emu_wgx_pending[1024][EMU_WGX_PENDING];
static thread_local int emu_wgx_npending[1024];
static thread_local unsigned emu_wgx_groups[1024]; /* commit groups so far (mla_wg_commit), for mla_wg_wait1 */
/* around each thread's run of a kernel (emu_nvrtc.c's entries) */
static inline void emu_gt_thread_start(void); /* gemm_tma.cuh's wgmma queue, below */
static inline int emu_gt_pending(void);
static inline void emu_thread_start(void) {
    emu_wg_npending[emu_tid()] = emu_wg_fenced[emu_tid()] = emu_wgx_npending[emu_tid()] = 0, emu_wgx_groups[emu_tid()] = 0;
    emu_gt_thread_start();
}
static inline void emu_thread_end(void) {
    if (emu_wg_npending[emu_tid()] || emu_wgx_npending[emu_tid()] || emu_gt_pending())
        emu_ctx->fault(emu_ctx, "a thread exits with a wgmma it did not wait for", 0);
}
/* the register fence around a wgmma batch: orders nothing more on one memory */
#define wg_hold(d) (void)(d)
#define wgmma_e4m3(d, a, b, acc) emu_wgmma((d), (a), (b), (acc), 1, __LINE__)
#define wgmma_bf16(d, a, b, acc) emu_wgmma((d), (a), (b), (acc), 0, __LINE__)

static inline unsigned emu_swz128(size_t off) { return (unsigned)(off ^ (((off >> 7) & 7) << 4)); }
static inline float emu_wgx_bf16(size_t off) { /* the bf16 at byte off (a swizzled address, even) of the shared memory */
    const unsigned char *s = emu_ctx->smem;
    return emu_bf16((unsigned)s[emu_swz128(off)] | (unsigned)s[emu_swz128(off + 1)] << 8);
}
static inline void emu_wgmma_x(float *d, const void *pa, const void *pb, int n, int tb, unsigned lbo, unsigned sbo, int acc, int line) {
    const size_t a = emu_cvta_shared(pa, line), b = emu_cvta_shared(pb, line);
    const int t = emu_tid();
    if (!emu_wg_fenced[t]) emu_ctx->fault(emu_ctx, "wgmma without a wgmma.fence before it", line);
    if ((a & 15) || (a & 1023) + 32 > 128) emu_ctx->fault(emu_ctx, "wgmma operand A not 32 bytes inside the first row of a 1024-aligned swizzle group", line);
    if ((lbo & 15) || (sbo & 15) || lbo >= (1u << 18) || sbo >= (1u << 18) || sbo == 0)
        emu_ctx->fault(emu_ctx, "wgmma descriptor: leading or stride byte offset not a multiple of 16 below 2^18", line);
    size_t bend;
    if (tb) {
        if (b & 1023) emu_ctx->fault(emu_ctx, "wgmma MN-major operand B not at the start of a 1024-aligned swizzle atom", line);
        bend = b + (size_t)(n / 64 - 1) * lbo + sbo + 1024;
        if (n % 64) emu_ctx->fault(emu_ctx, "wgmma MN-major operand B in the 128-byte swizzle with N not a multiple of 64", line);
    } else {
        if ((b & 15) || (b & 1023) + 32 > 128) emu_ctx->fault(emu_ctx, "wgmma operand B not 32 bytes inside the first row of a 1024-aligned swizzle group", line);
        bend = (b & ~(size_t)1023) + (size_t)(n / 8 - 1) * sbo + 1024;
    }
    if ((a & ~(size_t)1023) + 8192 > emu_ctx->smem_bytes || bend > emu_ctx->smem_bytes)
        emu_ctx->fault(emu_ctx, "wgmma operand past the dynamic shared memory", line);
    size_t mine[7] = {a, b, (size_t)acc, (size_t)n, (size_t)tb, lbo, sbo}, all[32 * 7];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, mine, all, sizeof mine, line);
    for (int l = 0; l < 32; l++)
        for (int k = 0; k < 7; k++)
            if (all[7 * l + k] != mine[k]) emu_ctx->fault(emu_ctx, "wgmma: the lanes of a warp pass different operands", line);
    if (emu_wgx_npending[t] == EMU_WGX_PENDING) emu_ctx->fault(emu_ctx, "too many wgmma pending", line);
    emu_wgx_pending[t][emu_wgx_npending[t]++] = EmuWgmmaX{d, (unsigned)a, (unsigned)b, lbo, sbo, (short)n, (short)tb, (short)acc, 0, emu_wgx_groups[t], {0}};
}
/* ... with A from registers (wgmma.mma_async m64nNk16 .f32.bf16.bf16 d, {a0..a3},
 * b-desc, scale-d, 1, 1, trans-b): the PTX ISA's register fragment of A, per
 * warp its 16 rows of the 64 (warp % 4), as mma.sync's m16n8k16 A: register
 * r of lane l holds row l / 4 + 8 (r & 1), cols 2 (l % 4) + 8 (r >> 1) and
 * + 1, the lower half first. The fragments are read at the issue (a later
 * write to them does not change the product, which the hardware does not
 * promise: the kernel must not write them before the wait anyway); B from
 * its descriptor as above, always accumulating (scale-d 1). */
static inline void emu_wgmma_rs(float *d, const unsigned *ar, const void *pb, int n, int tb, unsigned lbo, unsigned sbo, int line) {
    const int t = emu_tid(), l = emu_lane(), g = l >> 2;
    const size_t b = emu_cvta_shared(pb, line);
    if (!emu_wg_fenced[t]) emu_ctx->fault(emu_ctx, "wgmma without a wgmma.fence before it", line);
    if ((lbo & 15) || (sbo & 15) || lbo >= (1u << 18) || sbo >= (1u << 18) || sbo == 0)
        emu_ctx->fault(emu_ctx, "wgmma descriptor: leading or stride byte offset not a multiple of 16 below 2^18", line);
    size_t bend;
    if (tb) {
        if (b & 1023) emu_ctx->fault(emu_ctx, "wgmma MN-major operand B not at the start of a 1024-aligned swizzle atom", line);
        if (n % 64) emu_ctx->fault(emu_ctx, "wgmma MN-major operand B in the 128-byte swizzle with N not a multiple of 64", line);
        bend = b + (size_t)(n / 64 - 1) * lbo + sbo + 1024;
    } else {
        if ((b & 15) || (b & 1023) + 32 > 128) emu_ctx->fault(emu_ctx, "wgmma operand B not 32 bytes inside the first row of a 1024-aligned swizzle group", line);
        bend = (b & ~(size_t)1023) + (size_t)(n / 8 - 1) * sbo + 1024;
    }
    if (bend > emu_ctx->smem_bytes) emu_ctx->fault(emu_ctx, "wgmma operand past the dynamic shared memory", line);
    size_t mine[5] = {b, (size_t)n, (size_t)tb, lbo, sbo}, all[32 * 5];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, mine, all, sizeof mine, line);
    for (int k = 0; k < 32 * 5; k++)
        if (all[k] != mine[k % 5]) emu_ctx->fault(emu_ctx, "wgmma: the lanes of a warp pass different operands", line);
    unsigned regs[4] = {ar[0], ar[1], ar[2], ar[3]}, fr[32 * 4];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, regs, fr, sizeof regs, line);
    if (emu_wgx_npending[t] == EMU_WGX_PENDING) emu_ctx->fault(emu_ctx, "too many wgmma pending", line);
    EmuWgmmaX m = {d, 0, (unsigned)b, lbo, sbo, (short)n, (short)tb, 1, 1, emu_wgx_groups[t], {0}};
    for (int h = 0; h < 2; h++) /* this lane's rows g and g + 8 of the warp's 16: k 0..15 */
        for (int k = 0; k < 16; k++) {
            const unsigned r = fr[(4 * g + (k & 7) / 2) * 4 + h + 2 * (k >> 3)];
            m.ar[16 * h + k] = (unsigned short)(r >> (16 * (k & 1)));
        }
    emu_wgx_pending[t][emu_wgx_npending[t]++] = m;
}
/* wgmma.wait_group 0 for both forms: the general form's products, then the
 * m64n64 form's (and the fence's end); with keep 1 (wait_group 1) the
 * products of the newest committed group, and any not committed, stay
 * pending, read from the shared memory when they are waited for */
static inline void emu_wgx_wait(unsigned keep, int line) {
    const int t = emu_tid(), w = (t & 127) >> 5, l = t & 31;
    int left = 0;
    for (int p = 0; p < emu_wgx_npending[t]; p++) {
        const EmuWgmmaX &m = emu_wgx_pending[t][p];
        if (keep && m.group == emu_wgx_groups[t]) emu_ctx->fault(emu_ctx, "wgmma.wait_group 1 with a wgmma not committed (wgmma.commit_group)", line);
        if (keep && m.group + keep >= emu_wgx_groups[t]) {
            emu_wgx_pending[t][left++] = m;
            continue;
        }
        for (int i = 0; i < m.n / 2; i++) {
            const int row = 16 * w + l / 4 + 8 * ((i >> 1) & 1), col = 8 * (i >> 2) + 2 * (l % 4) + (i & 1);
            double s = 0.0;
            for (int k = 0; k < 16; k++) {
                const float x = m.rs ? emu_bf16(m.ar[16 * ((i >> 1) & 1) + k])
                                     : emu_wgx_bf16(m.a + (size_t)(row >> 3) * 1024 + (size_t)(row & 7) * 128 + 2 * k);
                const size_t bo = m.tb ? m.b + (size_t)(col >> 6) * m.lbo + (size_t)(k >> 3) * m.sbo + (size_t)(k & 7) * 128 + 2 * (col & 63)
                                       : m.b + (size_t)(col >> 3) * m.sbo + (size_t)(col & 7) * 128 + 2 * k;
                s += (double)x * (double)emu_wgx_bf16(bo);
            }
            m.d[i] = (float)((m.acc ? (double)m.d[i] : 0.0) + s);
        }
    }
    emu_wgx_npending[t] = left;
    wg_wait0();
}
static inline void emu_wgx_wait0(void) { emu_wgx_wait(0, 0); }
/* ---- named barriers and register reallocation (a producer / consumer pipeline) ---- */
/* bar.sync id, n and bar.arrive id, n: see ctx_named_barrier in emu_cuda.c
 * (counts, count mismatches and deadlocks are the driver's). */
static inline void emu_bar_sync(int id, int n, int line) { emu_ctx->named_barrier(emu_ctx, id, n, 1, line); }
static inline void emu_bar_arrive(int id, int n, int line) { emu_ctx->named_barrier(emu_ctx, id, n, 0, line); }
/* setmaxnreg.{inc,dec}.sync.aligned.u32 n: every lane of the warp at the same
 * one (a warp collective here), n in 24..256 and a multiple of 8; the
 * register file has no size on the emulated device */
static inline void emu_setmaxnreg(int n, int line) {
    if (n < 24 || n > 256 || n % 8) emu_ctx->fault(emu_ctx, "setmaxnreg count outside 24..256 or not a multiple of 8", line);
    int all[32];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, &n, all, sizeof n, line);
    for (int l = 0; l < 32; l++)
        if (all[l] != n) emu_ctx->fault(emu_ctx, "setmaxnreg: the lanes of a warp ask different counts", line);
}

/* cvt.rn.bf16x2.f32 d, hi, lo: each nearest even, lo in the lower half; a NaN becomes the canonical 0x7fff */
static inline unsigned emu_cvt_bf16x2(float lo, float hi) {
    unsigned u[2] = {__float_as_uint(lo), __float_as_uint(hi)}, r[2];
    for (int k = 0; k < 2; k++) r[k] = (u[k] & 0x7fffffffu) > 0x7f800000u ? 0x7fffu : (u[k] + 0x7fffu + ((u[k] >> 16) & 1u)) >> 16;
    return (r[0] & 0xffffu) | r[1] << 16;
}

/* mla_decode.cuh's own inline-PTX helpers, in mla_decode_helpers.cuh (the rest is hopper.cuh's, below) */
static inline void mla_cp_commit(void) { cp_commit(); }
static inline void mla_cp_wait0(void) { cp_wait0(); }
#define mla_hold128(d) (void)(d)
/* the v3 ring's mbarriers (gemm_tma.cuh's below). cp.async.mbarrier.arrive.noinc:
 * the thread's copies land, it arrives, and then it waits until the phase it
 * arrived in completes (every producer thread's copies of the chunk in), which
 * the hardware does not: so the producer never runs a chunk ahead of the
 * consumers, and a consumer that reads a chunk before its barrier completed
 * reads the fill bytes there */
static inline void emu_gt_mbar_arrive(void *bar, unsigned tx, int line);
static inline void emu_gt_mbar_wait(void *bar, unsigned parity, int line);
static inline void *emu_mbar_at(void *bar, int line);
static inline void emu_mla_cp_arrive(void *bar, int line) {
    const unsigned parity = emu_mbar_phase(emu_mbar_at(bar, line));
    cp_commit();
    cp_wait0();
    emu_gt_mbar_arrive(bar, 0u, line);
    emu_gt_mbar_wait(bar, parity, line);
}
/* Programmatic dependent launch (the prelude's DSCC_PDL_WAIT / DSCC_PDL_LAUNCH_DEPENDENTS):
 * griddepcontrol.wait is noted by the driver (emu_abi.h's pdl_wait), launch_dependents is a
 * scheduling hint with nothing to do where kernels run in order */
#define pdl_wait() emu_ctx->pdl_wait(emu_ctx, __LINE__)
static inline void pdl_launch_dependents(void) {}
/* prefetch.global.L2 of the line at p (the prelude's pdl_prefetch_l2): a hint; p must be an address that may be read */
#define pdl_prefetch_l2(p) emu_prefetch_l2_line((p), __LINE__)
static inline void emu_prefetch_l2_line(const void *p, int line) {
    (void)line;
    volatile const unsigned char *b = (const unsigned char *)p;
    (void)b[0]; /* ASan and the fault handler see an address outside every allocation */
}
/* cp.async.bulk.prefetch.L2: a hint, nothing to do; its range must lie in one allocation */
#define mla_prefetch_l2(p, bytes) emu_prefetch_l2((p), (bytes), __LINE__)
static inline void emu_prefetch_l2(const void *p, unsigned bytes, int line) {
    if (((uintptr_t)p & 15) || (bytes & 15) || !bytes) emu_ctx->fault(emu_ctx, "L2 prefetch of no 16-byte aligned range", line);
    volatile const unsigned char *b = (const unsigned char *)p;
    (void)b[0], (void)b[bytes - 1]; /* ASan sees a range past the buffer */
}
/* attn_prefill_wgmma.cuh's wgmma shapes (the rest is hopper.cuh's, below) */
#define aw_wgmma_s(d, a, b, acc) emu_wgmma_x((d), (a), (b), 128, 0, 16, 1024, (acc), __LINE__)
#define aw_wgmma_pv128(d, a, b, lbo) emu_wgmma_rs((d), (a), (b), 128, 1, (lbo), 1024, __LINE__)
#define aw_wgmma_pv64(d, a, b, lbo) emu_wgmma_rs((d), (a), (b), 64, 1, (lbo), 1024, __LINE__)
#define mla_wgmma_s(d, a, b, acc) emu_wgmma_x((d), (a), (b), 64, 0, 16, 1024, (acc), __LINE__)
/* mla_wgmma_s from its descriptors' low words (start >> 4 | LBO >> 4 << 16; the
 * high word is the helper's own: SBO 1024, the 128-byte swizzle) */
static inline void emu_mla_wgmma_sd(float *d, unsigned alo, unsigned blo, int acc, int line) {
    if (alo >> 16 != 1u || blo >> 16 != 1u) emu_ctx->fault(emu_ctx, "wgmma descriptor's low word with a leading byte offset other than 16", line);
    emu_wgmma_x(d, emu_ctx->smem + ((size_t)(alo & 0x3fffu) << 4), emu_ctx->smem + ((size_t)(blo & 0x3fffu) << 4), 64, 0, 16, 1024, acc, line);
}
#define mla_wgmma_sd(d, alo, blo, acc) emu_mla_wgmma_sd((d), (alo), (blo), (acc), __LINE__)
#define mla_wgmma_pv(d, a, b, lbo, sbo, acc) emu_wgmma_x((d), (a), (b), 256, 1, (lbo), (sbo), (acc), __LINE__)
#define mla_wgmma_pv_rs(d, a, b, lbo, sbo) emu_wgmma_rs((d), (a), (b), 256, 1, (lbo), (sbo), __LINE__)
/* mla_wgmma_sd with A (q) from registers: B from its descriptor's low word, always accumulating */
static inline void emu_mla_wgmma_sr(float *d, const unsigned *a, unsigned blo, int line) {
    if (blo >> 16 != 1u) emu_ctx->fault(emu_ctx, "wgmma descriptor's low word with a leading byte offset other than 16", line);
    emu_wgmma_rs(d, a, emu_ctx->smem + ((size_t)(blo & 0x3fffu) << 4), 64, 0, 16, 1024, line);
}
#define mla_wgmma_sr(d, a, blo) emu_mla_wgmma_sr((d), (a), (blo), __LINE__)

/* ldmatrix.sync.aligned.m8n8.xN[.trans].shared.b16: N 8x8 matrices of
 * b16, row j of matrix i at the address lane 8i + j gives (16 bytes,
 * 16-aligned). Lane l gets in r[i] the pair (row l/4, cols 2(l%4), +1),
 * or with .trans (rows 2(l%4), +1 of col l/4); the lower half first. */
static inline void emu_ldsm(unsigned *r, const void *p, int nmat, bool trans, int line) {
    const unsigned char *all[32];
    if ((uintptr_t)p & 15) emu_ctx->fault(emu_ctx, "ldmatrix row address not 16-byte aligned", line);
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, &p, all, sizeof p, line);
    const int l = emu_lane();
    for (int i = 0; i < nmat; i++) {
        unsigned short h[2];
        for (int k = 0; k < 2; k++) {
            const int row = trans ? 2 * (l % 4) + k : l / 4, col = trans ? l / 4 : 2 * (l % 4) + k;
            memcpy(&h[k], all[8 * i + row] + 2 * col, 2);
        }
        r[i] = (unsigned)h[0] | (unsigned)h[1] << 16;
    }
}
#define ldsm_x1(r, p) emu_ldsm((r), (p), 1, false, __LINE__)
#define ldsm_x2(r, p) emu_ldsm((r), (p), 2, false, __LINE__)
#define ldsm_x4(r, p) emu_ldsm((r), (p), 4, false, __LINE__)
#define ldsm_x1_t(r, p) emu_ldsm((r), (p), 1, true, __LINE__)
#define ldsm_x2_t(r, p) emu_ldsm((r), (p), 2, true, __LINE__)
#define ldsm_x4_t(r, p) emu_ldsm((r), (p), 4, true, __LINE__)

/* ---- atomics (blocks may run on several host threads) ---------------------- */
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline float atomicAdd(float *p, float v) {
    unsigned *u = (unsigned *)p, old = __atomic_load_n(u, __ATOMIC_SEQ_CST);
    while (!__atomic_compare_exchange_n(u, &old, __float_as_uint(__uint_as_float(old) + v), false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return __uint_as_float(old);
}
template <class T> static inline T emu_cas(T *p, T cmp, T v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
static inline int atomicCAS(int *p, int c, int v) { return emu_cas(p, c, v); }
static inline unsigned atomicCAS(unsigned *p, unsigned c, unsigned v) { return emu_cas(p, c, v); }
static inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long c, unsigned long long v) { return emu_cas(p, c, v); }
static inline int atomicExch(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
/* ld.global.cg (L2 only, no L1): what another block wrote before it was counted (mla_decode.cuh's MLA_FUSE) */
template <class T> static inline T __ldcg(const T *p) { return *p; }
static inline int atomicMax(int *p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
static inline int atomicMin(int *p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}

/* ---- hopper.cuh's primitives (codegen/kernels/hopper.cuh, the kernel files'
 * shared prelude): mbarriers, TMA and cp.async onto them, clusters, named
 * barriers, setmaxnreg, wgmma from descriptors with commit groups --------- */

/* mbarrier.init.shared::cta.b64 (count arrivals a phase) and the arrivals;
 * the word's layout is emu_abi.h's. */
static inline void *emu_mbar_at(void *bar, int line) {
    const unsigned char *b = (const unsigned char *)bar;
    if (b < emu_ctx->smem || b + 8 > emu_ctx->smem + emu_ctx->smem_bytes || ((uintptr_t)b & 7))
        emu_ctx->fault(emu_ctx, "mbarrier at an address that is no 8-byte word of the dynamic shared memory", line);
    return bar;
}
static inline void emu_gt_mbar_init(void *bar, unsigned count, int line) {
    if (count == 0 || count > 4095) emu_ctx->fault(emu_ctx, "mbarrier.init with a count of 0 or above what the emulator holds", line);
    emu_mbar_init(emu_mbar_at(bar, line), count);
}
static inline void emu_gt_mbar_arrive(void *bar, unsigned tx, int line) { /* mbarrier.arrive[.expect_tx] */
    unsigned *w = (unsigned *)emu_mbar_at(bar, line);
    if (!emu_mbar_ok(w)) emu_ctx->fault(emu_ctx, "mbarrier arrive on a barrier that was never initialized (mbarrier.init)", line);
    if ((__atomic_load_n(w, __ATOMIC_ACQUIRE) & 0xfffu) == 0) emu_ctx->fault(emu_ctx, "mbarrier arrive past the phase's count", line);
    emu_mbar_update(w, 1u, (int)tx);
}
/* mapa + mbarrier.arrive.release.cluster.shared::cluster: an arrival on the barrier at bar's offset in CTA rank */
static inline void emu_gt_mbar_arrive_cluster(void *bar, unsigned rank, int line) {
    unsigned *w = (unsigned *)emu_ctx->cluster_map(emu_ctx, emu_mbar_at(bar, line), rank, 8, line);
    if (!emu_mbar_ok(w)) emu_ctx->fault(emu_ctx, "remote mbarrier arrive on a barrier that was never initialized (mbarrier.init)", line);
    if ((__atomic_load_n(w, __ATOMIC_ACQUIRE) & 0xfffu) == 0) emu_ctx->fault(emu_ctx, "remote mbarrier arrive past the phase's count", line);
    emu_mbar_update(w, 1u, 0);
}
#define hp_mbar_arrive_cluster(bar, rank) emu_gt_mbar_arrive_cluster((bar), (rank), __LINE__)
/* %cluster_ctarank, barrier.cluster.arrive.release + wait.acquire */
#define hp_cluster_rank() (emu_ctx->cluster_rank)
#define hp_cluster_sync() emu_ctx->cluster_sync(emu_ctx, __LINE__)
static inline void emu_gt_mbar_wait(void *bar, unsigned parity, int line) { emu_ctx->mbar_wait(emu_ctx, emu_mbar_at(bar, line), parity, line); }
#define hp_mbar_init(bar, count) emu_gt_mbar_init((bar), (count), __LINE__)
#define hp_mbar_arrive(bar) emu_gt_mbar_arrive((bar), 0u, __LINE__)
#define hp_mbar_expect_tx(bar, bytes) emu_gt_mbar_arrive((bar), (bytes), __LINE__)
#define hp_mbar_wait(bar, parity) emu_gt_mbar_wait((bar), (parity), __LINE__)
/* mbarrier.try_wait.parity.acquire.cluster: one memory here, so the same wait */
#define hp_mbar_wait_cluster(bar, parity) emu_gt_mbar_wait((bar), (parity), __LINE__)
/* mapa + st.async.shared::cluster.mbarrier::complete_tx::bytes: `bytes` bytes into CTA rank's shared memory at p's
 * offset, completing them on the barrier at bar's offset there. They land at once (one order the hardware may
 * take: the receiver's barrier completes only once the last of them has landed, so a reader that waits for it
 * reads them all); a barrier never initialized is a fault, and bytes past the phase's expect_tx leave it never
 * completing (its wait reports the deadlock) */
static inline void emu_st_async(void *p, const void *v, unsigned bytes, void *bar, unsigned rank, int line) {
    if ((uintptr_t)p % bytes) emu_ctx->fault(emu_ctx, "st.async to a misaligned address", line);
    unsigned char *d = (unsigned char *)emu_ctx->cluster_map(emu_ctx, p, rank, bytes, line);
    unsigned *w = (unsigned *)emu_ctx->cluster_map(emu_ctx, emu_mbar_at(bar, line), rank, 8, line);
    if (!emu_mbar_ok(w)) emu_ctx->fault(emu_ctx, "st.async completing on a barrier that was never initialized (mbarrier.init)", line);
    memcpy(d, v, bytes);
    emu_mbar_update(w, 0u, -(int)bytes);
}
static inline void emu_st_async4(float4 *p, float4 v, void *bar, unsigned rank, int line) { emu_st_async(p, &v, 16, bar, rank, line); }
static inline void emu_st_async1(float *p, float v, void *bar, unsigned rank, int line) { emu_st_async(p, &v, 4, bar, rank, line); }
#define hp_st_async4(p, v, bar, rank) emu_st_async4((p), (v), (bar), (rank), __LINE__)
#define hp_st_async1(p, v, bar, rank) emu_st_async1((p), (v), (bar), (rank), __LINE__)
/* fence.mbarrier_init, fence.proxy.async: one memory, one proxy here */
static inline void hp_mbar_fence_init(void) {}
static inline void hp_fence_async(void) {}
/* cp.async (16 bytes, zeros when !v), cp.async.mbarrier.arrive.noinc (mla_decode.cuh's, above), cp.async.wait_all */
#define hp_cp16(dst, src, v) emu_cp16((dst), (src), (v), __LINE__)
#define hp_cp_arrive(bar) emu_mla_cp_arrive((bar), __LINE__)
static inline void hp_cp_wait_all(void) { cp_wait0(); }
/* bar.sync / bar.arrive, setmaxnreg: the named barriers' section above (the caller's line from its default argument) */
#define hp_bar_sync(id, n) emu_bar_sync((id), (n), __LINE__)
#define hp_bar_arrive(id, n) emu_bar_arrive((id), (n), __LINE__)
template <unsigned N> static inline void hp_setmaxnreg_dec(int line = __builtin_LINE()) { emu_setmaxnreg((int)N, line); }
template <unsigned N> static inline void hp_setmaxnreg_inc(int line = __builtin_LINE()) { emu_setmaxnreg((int)N, line); }
/* cvt.rn.bf16x2.f32; ex2.approx.ftz.f32: 2^x, a denormal result flushed to 0 */
#define hp_bf16x2(lo, hi) emu_cvt_bf16x2((lo), (hi))
static inline float hp_exp2(float x) {
    const float y = exp2f(x);
    return fabsf(y) < 1.17549435e-38f ? 0.0f : y;
}
/* %clock64 and %globaltimer: the host's monotonic clock in nanoseconds for both (fibers run one at a time, so a
 * kernel's stamps here order its points but time nothing of a GPU's) */
static inline unsigned long long emu_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}
#define hp_clock64() emu_now_ns()
#define hp_globaltimer() emu_now_ns()

/* Byte off of the shared memory after the swizzle of span `span` bytes (0,
 * 32, 64, 128): the 16-byte unit (address bits 4..) is XORed with the
 * 128-byte row within the pattern (bits 7..), log2(span / 16) bits of each. */
static inline size_t emu_swz(size_t off, unsigned span) {
    const size_t bits = span == 128 ? 7 : span == 64 ? 3 : span == 32 ? 1 : 0;
    return off ^ (((off >> 7) & bits) << 4);
}

/* cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes
 * [dst], [map, {c0, c1}], [bar]: the box at element c0 of dim 0 and c1 of
 * dim 1, rows of box[0] elements at consecutive addresses from dst, each
 * byte where the map's swizzle puts it (its address's 16-byte unit XORed
 * as the wgmma reader undoes it), elements outside the tensor zero; the
 * whole box's bytes count to the barrier's transactions. The bytes are
 * read now and land later (ctx->bulk_async). */
static inline unsigned char *emu_tma_box(void *dst, const void *map, int c0, int c1, size_t *nbytes, int line) {
    const EmuTensorMap *m = (const EmuTensorMap *)map;
    if (!m || m->magic != EMU_TMAP_MAGIC || m->rank != 2) emu_ctx->fault(emu_ctx, "bulk tensor copy with no 2-d tensor map of cuTensorMapEncodeTiled", line);
    const size_t row = (size_t)m->box[0] * m->esize, bytes = row * m->box[1], off = (size_t)((unsigned char *)dst - emu_ctx->smem);
    if ((unsigned char *)dst < emu_ctx->smem || off + bytes > emu_ctx->smem_bytes || (off & 127))
        emu_ctx->fault(emu_ctx, "bulk tensor copy to no 128-aligned box of the dynamic shared memory", line);
    if (m->swizzle && row != m->swizzle) emu_ctx->fault(emu_ctx, "bulk tensor copy: a swizzled box whose rows are not the swizzle's span (not emulated)", line);
    unsigned char *buf = (unsigned char *)malloc(bytes);
    const unsigned char *g = (const unsigned char *)(uintptr_t)m->addr;
    for (unsigned r = 0; r < m->box[1]; r++)
        for (size_t k = 0; k < row; k++) {
            const long long x = (long long)c0 + (long long)(k / m->esize), y = (long long)c1 + r;
            const bool in = x >= 0 && y >= 0 && (unsigned long long)x < m->dim[0] && (unsigned long long)y < m->dim[1];
            buf[emu_swz(off + r * row + k, m->swizzle) - off] = in ? g[(size_t)y * m->stride1 + (size_t)x * m->esize + k % m->esize] : 0;
        }
    *nbytes = bytes;
    return buf;
}
static inline void emu_tma_2d(void *dst, const void *map, void *bar, int c0, int c1, int line) {
    size_t bytes;
    unsigned char *buf = emu_tma_box(dst, map, c0, c1, &bytes, line);
    emu_ctx->bulk_async(emu_ctx, dst, buf, bytes, emu_mbar_at(bar, line), line);
}
/* ... .multicast::cluster [dst], [map, {c0, c1}], [bar], mask: the box at dst's offset in each
 * CTA of mask, completing its bytes on bar's offset there; a copy per CTA, each landing late */
static inline void emu_tma_2d_mc(void *dst, const void *map, void *bar, int c0, int c1, unsigned mask, int line) {
    if (!mask || mask >> emu_ctx->cluster_size) emu_ctx->fault(emu_ctx, "multicast bulk tensor copy with a CTA mask empty or past the cluster", line);
    for (unsigned r = 0; r < emu_ctx->cluster_size; r++) {
        if (!(mask >> r & 1u)) continue;
        size_t bytes;
        unsigned char *buf = emu_tma_box(dst, map, c0, c1, &bytes, line);
        if (r == emu_ctx->cluster_rank) emu_ctx->bulk_async(emu_ctx, dst, buf, bytes, emu_mbar_at(bar, line), line);
        else emu_ctx->bulk_async_peer(emu_ctx, r, dst, buf, bytes, emu_mbar_at(bar, line), line);
    }
}
#define hp_tma_2d_mc(dst, map, bar, c0, c1, mask) emu_tma_2d_mc((dst), (map), (bar), (c0), (c1), (mask), __LINE__)
#define hp_tma_2d(dst, map, bar, c0, c1) emu_tma_2d((dst), (map), (bar), (c0), (c1), __LINE__)
/* cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [src], bytes, [bar]: the
 * 1-D bulk copy, src and dst 16-byte aligned, bytes a nonzero multiple of 16 (the hardware's rules: a
 * copy that breaks one faults here), dst within the dynamic shared memory; the bytes are read now and
 * land later, completing bytes on bar (a count that disagrees with the expect_tx never completes) */
static inline void emu_bulk_g2s(void *dst, const void *src, unsigned bytes, void *bar, int line) {
    const unsigned char *d = (const unsigned char *)dst;
    if (bytes == 0 || bytes % 16) emu_ctx->fault(emu_ctx, "bulk copy of a byte count that is 0 or no multiple of 16", line);
    if (((uintptr_t)src & 15) || ((uintptr_t)dst & 15)) emu_ctx->fault(emu_ctx, "bulk copy from or to an address that is not 16-byte aligned", line);
    if (d < emu_ctx->smem || d + bytes > emu_ctx->smem + emu_ctx->smem_bytes) emu_ctx->fault(emu_ctx, "bulk copy to outside the dynamic shared memory", line);
    unsigned char *buf = (unsigned char *)malloc(bytes);
    memcpy(buf, src, bytes);
    emu_ctx->bulk_async(emu_ctx, dst, buf, bytes, emu_mbar_at(bar, line), line);
}
#define hp_bulk_g2s(dst, src, bytes, bar) emu_bulk_g2s((dst), (src), (bytes), (bar), __LINE__)
/* mapa + ld.shared::cluster.f32 (emu_dsmem_ld above) */
#define hp_dsmem_ld(p, rank) emu_dsmem_ld((p), (rank), __LINE__)
#define hp_dsmem_ld4(p, rank) emu_dsmem_ld4((p), (rank), __LINE__)

/* wgmma.mma_async.sync.aligned.m64nNk32.f32.e4m3.e4m3 d, a-desc, b-desc,
 * scale-d, 1, 1 from two shared-memory matrix descriptors, both K-major.
 * The descriptor as the PTX ISA defines it: start address >> 4 (bits
 * 0-13), leading byte offset >> 4 (16-29), stride byte offset >> 4
 * (32-45), base offset (49-51, must be 0 here), layout (62-63: 0 none, 1
 * 128-byte swizzle, 2 64-byte, 3 32-byte). Row r, byte k of a K-major
 * operand: swizzled, start + (r / 8) sbo + (r % 8) span + k, the span's
 * swizzle applied to the address; unswizzled (core matrices of 8 rows x 16
 * bytes), start + (r / 8) sbo + (r % 8) 16 + (k / 16) lbo + k % 16. So a
 * descriptor whose layout does not match how the bytes were stored reads
 * the wrong bytes. Queued per commit group (hp_wg_commit) and computed at
 * hp_wg_wait0 / hp_wg_wait1 from the shared memory as it is then. */
struct EmuGt { float *d; unsigned long long a, b; short n, acc; unsigned group; };
enum { EMU_GT_PENDING = 32 };
static thread_local EmuGt emu_gt_q[1024][EMU_GT_PENDING];
static thread_local int emu_gt_n[1024], emu_gt_fenced[1024];
static thread_local unsigned emu_gt_groups[1024];
static inline void emu_gt_thread_start(void) { emu_gt_n[emu_tid()] = emu_gt_fenced[emu_tid()] = 0, emu_gt_groups[emu_tid()] = 0; }
static inline int emu_gt_pending(void) { return emu_gt_n[emu_tid()]; }
static inline size_t emu_desc_byte(unsigned long long desc, int r, int k) {
    const size_t start = (size_t)(desc & 0x3fff) << 4, lbo = (size_t)(desc >> 16 & 0x3fff) << 4, sbo = (size_t)(desc >> 32 & 0x3fff) << 4;
    const int layout = (int)(desc >> 62);
    const unsigned span = layout == 1 ? 128 : layout == 2 ? 64 : layout == 3 ? 32 : 0;
    if (!span) return start + (size_t)(r / 8) * sbo + (size_t)(r % 8) * 16 + (size_t)(k / 16) * lbo + (size_t)(k % 16);
    return emu_swz(start + (size_t)(r / 8) * sbo + (size_t)(r % 8) * span + (size_t)k, span);
}
static inline void emu_gt_check_desc(unsigned long long desc, int rows, int line) {
    if (desc >> 49 & 7) emu_ctx->fault(emu_ctx, "wgmma descriptor with a base offset (not emulated)", line);
    const int layout = (int)(desc >> 62);
    const size_t start = (size_t)(desc & 0x3fff) << 4;
    const size_t span = layout == 1 ? 128u : layout == 2 ? 64u : 32u;
    if (layout && (start & (span - 1)) + 32 > span) emu_ctx->fault(emu_ctx, "wgmma operand's 32 bytes of K cross its swizzle row", line);
    size_t hi = 0;
    for (int r = 0; r < rows; r += 7)
        for (int k = 0; k < 32; k += 31) {
            const size_t o = emu_desc_byte(desc, r, k);
            hi = o > hi ? o : hi;
        }
    if (hi >= emu_ctx->smem_bytes) emu_ctx->fault(emu_ctx, "wgmma operand past the dynamic shared memory", line);
}
static inline void emu_gt_wgmma(float *d, unsigned long long da, unsigned long long db, int n, int acc, int line) {
    const int t = emu_tid();
    if (!emu_gt_fenced[t]) emu_ctx->fault(emu_ctx, "wgmma without a wgmma.fence before it", line);
    emu_gt_check_desc(da, 64, line);
    emu_gt_check_desc(db, n, line);
    unsigned long long mine[3] = {da, db, (unsigned long long)acc}, all[32 * 3];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, mine, all, sizeof mine, line);
    for (int l = 0; l < 32; l++)
        for (int k = 0; k < 3; k++)
            if (all[3 * l + k] != mine[k]) emu_ctx->fault(emu_ctx, "wgmma: the lanes of a warp pass different operands", line);
    if (emu_gt_n[t] == EMU_GT_PENDING) emu_ctx->fault(emu_ctx, "too many wgmma pending", line);
    emu_gt_q[t][emu_gt_n[t]++] = EmuGt{d, da, db, (short)n, (short)acc, emu_gt_groups[t]};
}
/* wgmma.wait_group.sync.aligned N: every committed group but the newest N is computed */
static inline void emu_gt_wait(unsigned keep, int line) {
    const int t = emu_tid(), w = (t & 127) >> 5, l = t & 31;
    int left = 0;
    for (int p = 0; p < emu_gt_n[t]; p++) {
        const EmuGt m = emu_gt_q[t][p];
        if (m.group == emu_gt_groups[t]) emu_ctx->fault(emu_ctx, "wgmma.wait_group with a wgmma not committed (wgmma.commit_group)", line);
        if (m.group + keep >= emu_gt_groups[t]) {
            emu_gt_q[t][left++] = m;
            continue;
        }
        for (int i = 0; i < m.n / 2; i++) {
            const int row = 16 * w + l / 4 + 8 * ((i >> 1) & 1), col = 8 * (i >> 2) + 2 * (l % 4) + (i & 1);
            double s = 0.0;
            for (int k = 0; k < 32; k++)
                s += (double)emu_e4m3(emu_ctx->smem[emu_desc_byte(m.a, row, k)]) * (double)emu_e4m3(emu_ctx->smem[emu_desc_byte(m.b, col, k)]);
            m.d[i] = (float)((m.acc ? (double)m.d[i] : 0.0) + s);
        }
    }
    emu_gt_n[t] = left;
    emu_gt_fenced[t] = 0;
    /* .sync.aligned: no lane goes past the wait (to release the stage it read, say) before
     * every lane of the warp has its products */
    int mine = 0, all[32];
    emu_ctx->warp_exchange(emu_ctx, 0xffffffffu, &mine, all, sizeof mine, line);
}
#define hp_wgmma128_e4m3(d, da, db, acc) emu_gt_wgmma((d), (da), (db), 128, (acc), __LINE__)
/* wgmma.fence / commit_group / wait_group over both queues: the descriptor form's above and the
 * general form's (emu_wgx_*: attn_prefill_wgmma.cuh's shapes); a kernel's wgmma use one of them */
static inline void hp_wg_fence(void) {
    wg_fence();
    emu_gt_fenced[emu_tid()] = 1;
}
static inline void hp_wg_commit(void) {
    emu_wgx_groups[emu_tid()]++;
    emu_gt_groups[emu_tid()]++;
}
static inline void emu_hp_wg_wait(unsigned keep, int line) {
    emu_wgx_wait(keep, line);
    emu_gt_wait(keep, line);
}
#define hp_wg_wait0() emu_hp_wg_wait(0, __LINE__)
#define hp_wg_wait1() emu_hp_wg_wait(1, __LINE__)
/* the register fences around a wait: order nothing more on one memory */
#define hp_hold32(d) (void)(d)
#define hp_hold64(d) (void)(d)

/* an L2 cache policy (hopper.cuh's): a hint, nothing to emulate */
#define hp_policy_evict_first() 0ull
#define hp_tma_2d_hint(dst, map, bar, c0, c1, pol) ((void)(pol), hp_tma_2d((dst), (map), (bar), (c0), (c1)))

/* ---- expert_tma.cuh's own (the rest is hopper.cuh's) ---- */
#define xt_cp16(dst, src, v) hp_cp16((dst), (src), (v))
/* cp.async.ca.shared.global of 4 bytes (its level 2's scales), zeros when !v */
static inline void emu_xt_cp4(void *dst, const void *src, bool v, int line) {
    if (((uintptr_t)dst & 3) || (v && ((uintptr_t)src & 3))) emu_ctx->fault(emu_ctx, "cp.async of 4 bytes to or from a misaligned address", line);
    emu_ctx->cp_async(emu_ctx, dst, src, 4, v ? 4 : 0);
}
#define xt_cp4(dst, src, v) emu_xt_cp4((dst), (src), (v), __LINE__)
