/* emu_abi.h — what an emulated kernel module and the emulated driver share.
 *
 * The emulated CUDA device runs a block's threads as fibers on one host
 * thread (see emu_cuda.c); the generated kernels, compiled as C++ against
 * emu_kernel.h, reach the running thread's indices and the block-wide
 * operations through one EmuCtx per host worker thread. Only the driver
 * switches fibers, and only inside these calls, so a kernel sees its own
 * thread's fields between them. Plain C, included by both sides. */
#ifndef DSCC_EMU_ABI_H
#define DSCC_EMU_ABI_H

#include <stddef.h>

#define EMU_WARP_SLOT 64 /* bytes one lane may put into a warp exchange */

typedef struct {
    unsigned x, y, z;
} EmuDim3;

typedef struct EmuCtx EmuCtx;
struct EmuCtx {
    EmuDim3 thread_idx, block_idx, block_dim, grid_dim; /* of the fiber running now */
    unsigned char *smem;                                 /* this block's dynamic shared memory */
    size_t smem_bytes;
    /* __syncthreads: every thread of the block that has not exited arrives (at the same line) */
    void (*sync_block)(EmuCtx *c, int line);
    /* a warp collective: each lane of `mask` puts `bytes` (<= EMU_WARP_SLOT) and gets every
     * lane's, lane by lane, in all[32 * bytes]; lanes outside the mask get nothing */
    void (*warp_exchange)(EmuCtx *c, unsigned mask, const void *mine, void *all, size_t bytes, int line);
    /* cp.async: copy src_bytes of src (zeros for the rest of `bytes`) into dst, when waited for */
    void (*cp_async)(EmuCtx *c, void *dst, const void *src, int bytes, int src_bytes);
    void (*cp_commit)(EmuCtx *c);
    void (*cp_wait)(EmuCtx *c, int pending); /* all but the newest `pending` committed groups land */
    /* bar.sync / bar.arrive id, count (named barriers, emu_cuda.c's ctx_named_barrier): the thread
     * arrives at barrier `id` (1..15) of a phase of `count` threads; with `wait` it also waits for
     * the phase to complete */
    void (*named_barrier)(EmuCtx *c, int id, int count, int wait, int line);
    /* ends the launch with an error naming the kernel, block and thread (does not return) */
    void (*fault)(EmuCtx *c, const char *what, int line);
    void *priv; /* the driver's */
    /* mbarrier.try_wait.parity in a loop: returns once the phase of parity `parity` of the
     * barrier at `bar` (shared memory, the EMU_MBAR_* word) has completed */
    void (*mbar_wait)(EmuCtx *c, const void *bar, unsigned parity, int line);
    /* cp.async.bulk.tensor: `bytes` of `buf` (malloc'd, already in the destination's
     * layout; the driver frees it) land at dst, then complete_tx(bytes) on the barrier at
     * bar; as late as the hardware may make it (when every thread of the block waits) */
    void (*bulk_async)(EmuCtx *c, void *dst, void *buf, size_t bytes, void *bar, int line);
    /* thread-block clusters (a kernel's __cluster_dims__(n, 1, 1)): this CTA's rank and the cluster's CTAs */
    unsigned cluster_rank, cluster_size;
    /* barrier.cluster.arrive.release + wait.acquire: every thread of every CTA of the cluster arrives */
    void (*cluster_sync)(EmuCtx *c, int line);
    /* mapa + ld/st.shared::cluster: where p (`bytes` of this CTA's dynamic shared memory) lies in CTA rank's */
    void *(*cluster_map)(EmuCtx *c, const void *p, unsigned rank, size_t bytes, int line);
    /* cp.async.bulk.tensor .multicast::cluster, CTA rank's part: like bulk_async, with dst and
     * bar this CTA's addresses at the same offsets as in rank's shared memory */
    void (*bulk_async_peer)(EmuCtx *c, unsigned rank, const void *dst, void *buf, size_t bytes, const void *bar, int line);
    /* griddepcontrol.wait (the prelude's pdl_wait): kernels run one after another here, so there is
     * nothing to wait for; the driver notes that the thread waited (in a launch with programmatic
     * stream serialization every thread must, before it exits) */
    void (*pdl_wait)(EmuCtx *c, int line);
};

/* An mbarrier's 64-bit word in shared memory, as both sides read it: low
 * 32 bits the pending arrivals (bits 0-11), a tag that marks it initialized
 * (bits 12-15 = EMU_MBAR_TAG), the expected arrivals (16-30) and the phase
 * parity (31); high 32 bits the transaction count still to come (signed).
 * A phase completes when both its arrivals and its bytes are in. */
#define EMU_MBAR_TAG 0xbu
static inline int emu_mbar_ok(const void *bar) { return ((((const unsigned *)bar)[0] >> 12) & 15u) == EMU_MBAR_TAG && ((const unsigned *)bar)[0] >> 16 & 0x7fffu; }
static inline unsigned emu_mbar_phase(const void *bar) { return __atomic_load_n((const unsigned *)bar, __ATOMIC_ACQUIRE) >> 31; }
static inline void emu_mbar_init(void *bar, unsigned count) {
    ((unsigned *)bar)[0] = count | EMU_MBAR_TAG << 12 | count << 16;
    ((int *)bar)[1] = 0;
}
/* After an arrival or bytes: the phase completes (parity flips, the count starts over) when nothing is pending. */
static inline void emu_mbar_settle(void *bar) {
    unsigned w = ((unsigned *)bar)[0];
    if ((w & 0xfffu) == 0 && ((int *)bar)[1] == 0) ((unsigned *)bar)[0] = ((w ^ 0x80000000u) & 0xffff0000u) | EMU_MBAR_TAG << 12 | (w >> 16 & 0x7fffu);
}
/* `arrive` arrivals (0 or 1) and tx more bytes to come (negative: bytes landed), then the
 * settle, as one atomic update: the CTAs of a cluster (threads of the emulator) arrive on
 * and land bytes at each other's barriers. */
static inline void emu_mbar_update(void *bar, unsigned arrive, int tx) {
    unsigned long long *p = (unsigned long long *)bar, o = __atomic_load_n(p, __ATOMIC_ACQUIRE), n;
    do {
        unsigned w = (unsigned)o - arrive;
        const int t = (int)(unsigned)(o >> 32) + tx;
        if ((w & 0xfffu) == 0 && t == 0) w = ((w ^ 0x80000000u) & 0xffff0000u) | EMU_MBAR_TAG << 12 | (w >> 16 & 0x7fffu);
        n = (unsigned long long)(unsigned)t << 32 | w;
    } while (!__atomic_compare_exchange_n(p, &o, n, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}
/* Whether the phase of parity p has completed: the current phase has the other parity. */
static inline int emu_mbar_done(const void *bar, unsigned p) { return emu_mbar_phase(bar) != p; }

/* The emulated driver's CUtensorMap (cuTensorMapEncodeTiled, 128 bytes):
 * a tiled map of rank 1 or 2 over elements of `esize` bytes. */
#define EMU_TMAP_MAGIC 0x544d4150u /* "TMAP" */
typedef struct {
    unsigned magic, esize, rank, swizzle; /* swizzle: bytes of its span (0: none, 32, 64, 128) */
    unsigned long long addr, dim[2], stride1; /* stride1: bytes between consecutive indices of dim 1 */
    unsigned box[2];
} EmuTensorMap;

/* What a module exports per kernel NAME (emu_nvrtc.c writes them):
 *   void emu_entry_NAME(EmuCtx *, void **params)  runs one thread of NAME
 *   unsigned emu_bounds_NAME                      __launch_bounds__ (0: none)
 *   unsigned long emu_params_NAME                 bytes of its one parameter (the Args struct)
 *   unsigned emu_cluster_NAME                     its __cluster_dims__ x (absent: no cluster) */
#define EMU_MODULE_MAGIC "DSCC-EMU-MODULE1" /* the tag after the .so in an emulated "cubin" */

#endif
