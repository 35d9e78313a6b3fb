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
    /* ends the launch with an error naming the kernel, block and thread (does not return) */
    void (*fault)(EmuCtx *c, const char *what, int line);
    void *priv; /* the driver's */
    /* thread-block clusters (a kernel's __cluster_dims__(n, 1, 1)): this CTA's rank and the cluster's CTAs */
    unsigned cluster_rank, cluster_size;
    /* barrier.cluster.arrive.release + wait.acquire: every thread of every CTA of the cluster arrives */
    void (*cluster_sync)(EmuCtx *c, int line);
    /* mapa + ld/st.shared::cluster: where p (`bytes` of this CTA's dynamic shared memory) lies in CTA rank's */
    void *(*cluster_map)(EmuCtx *c, const void *p, unsigned rank, size_t bytes, int line);
};

/* What a module exports per kernel NAME (emu_nvrtc.c writes them):
 *   void emu_entry_NAME(EmuCtx *, void **params)  runs one thread of NAME
 *   unsigned emu_bounds_NAME                      __launch_bounds__ (0: none)
 *   unsigned long emu_params_NAME                 bytes of its one parameter (the Args struct)
 *   unsigned emu_cluster_NAME                     its __cluster_dims__ x (absent: no cluster) */
#define EMU_MODULE_MAGIC "DSCC-EMU-MODULE1" /* the tag after the .so in an emulated "cubin" */

#endif
