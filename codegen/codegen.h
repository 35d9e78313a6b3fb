/* codegen.h — CUDA C++ to cubin through NVRTC, with an on-disk cache.
 *
 * This is the compilation layer the CUDA backend stands on: it works on a
 * machine without a GPU (NVRTC compiles for sm_90a anywhere), compiles many
 * kernels in parallel, and caches each cubin under DSCC_CACHE_DIR (default
 * ${XDG_CACHE_HOME:-~/.cache}/dscc) keyed by a 128-bit xxHash of the
 * source, the options, the architecture and the NVRTC version, written by
 * atomic rename so concurrent compilers never see half a file; each entry
 * carries its key, length and XXH64, checked before it is served. Generating
 * the CUDA from the IR is gen.h's (cg_generate); this layer compiles it. */
#ifndef DSCC_CODEGEN_H
#define DSCC_CODEGEN_H

#include "support/support.h"

typedef struct {
    const char *name;   /* kernel or module name, for diagnostics and the cache file */
    const char *source; /* CUDA C++ */
    SrcLoc loc;         /* what it was generated from (DSL location), for errors */
} CgSource;

typedef struct {
    void *data;         /* cubin (ELF), malloc'd */
    size_t size;
    bool from_cache;
    bool cache_rejected; /* its cache entry was damaged (truncated, garbage, another key's) and was recompiled */
} CgBinary;

typedef struct {
    const char *arch;      /* default "sm_90a" */
    const char *cache_dir; /* NULL: DSCC_CACHE_DIR or the XDG default; "" disables the cache */
    int threads;           /* parallel compiles; 0 = online CPUs */
} CgOptions;

/* NVRTC's version as major*1000 + minor*10 (13.0 -> 13000), or -1. */
int cg_nvrtc_version(void);
/* The cache directory options resolve to (NULL when disabled). Arena-owned. */
const char *cg_cache_dir(Arena *a, const CgOptions *o);
/* Compiles n sources into bins[n] (in parallel, through the cache). An NVRTC
 * failure is reported with the kernel's name, its location and NVRTC's log.
 * Returns the number of failures. */
int cg_compile(Arena *a, DiagEngine *d, const CgSource *src, int n, const CgOptions *o, CgBinary *bins);
void cg_binary_free(CgBinary *b);
/* Reads the kernel-cache entry at path, which must carry the 128-bit key
 * (key_hi, key_lo), into b (from_cache set); false, with b empty, when the
 * entry is missing, unreadable, damaged or another key's: the compiler then
 * compiles again and overwrites it. */
bool cg_cache_read(const char *path, uint64_t key_hi, uint64_t key_lo, CgBinary *b);

/* ---- kernel templates -------------------------------------------------- */

/* CUDA source of `extern "C" __global__ void NAME(const bf16 *x, const bf16
 * *w, int D, float eps, bf16 *y, fp8 *q, float *scales)`: one block (256
 * threads, D floats of shared memory) per row of x[rows, D]: y = rmsnorm(x)
 * * w, and y's FP8 E4M3 codes q with one scale (amax/448) per 1x128 tile,
 * stored K-block-major (scales[tile][row], as the GEMMs read them), from the f32 values (the fused rmsnorm -> act_scale -> quantize group of
 * DeepSeek-V3's FP8 linears). */
char *cg_template_rmsnorm_quant(Arena *a, const char *name);

#endif
