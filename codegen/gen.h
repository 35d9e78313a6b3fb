/* gen.h — CUDA C++ from the planned IR: one kernel per fused group.
 *
 * Every group the fuse pass made (or, without fuse, every op) becomes one
 * CUDA module. Inside a group, elementwise, layout, RoPE and quantize ops
 * are inlined into each other: a value is a device function of its flat
 * index that calls its operands' functions, so nothing between them goes
 * to memory. Reductions (rmsnorm's row norm, softmax's max and sum, sum,
 * act_scale's tile amax) are computed first, one warp per reduced item,
 * into small scratch arrays that the inlined functions then read. The
 * group's results (values read by another group or by an output) are
 * written by one elementwise pass per result shape. GEMMs, grouped expert
 * GEMMs, attention, routing, embedding, gather and cache updates are
 * templates, instantiated with the group's shapes and dtypes.
 *
 * Values are computed in f32 and stored in their declared dtype (bf16
 * rounded to nearest even, FP8 E4M3 saturating, integers truncated), so the
 * GPU matches the CPU executor up to that storage rounding; with
 * f32_storage, bf16/f16 tensors are stored as f32 and only FP8 rounding
 * remains.
 *
 * The ABI between a kernel and the runtime is one struct passed by value
 * (`CgArgs` below, `Args` in the source): device pointers per slot, the
 * symbolic dims, the KV cache capacity and length, and an error word that
 * data errors (a token id out of range) set. A module's source does not
 * depend on node numbers or names, so the 58 identical MoE layers of V3
 * share one compiled module per distinct group. */
#ifndef DSCC_CODEGEN_GEN_H
#define DSCC_CODEGEN_GEN_H

#include "codegen/codegen.h"
#include "ir/ir.h"

#define CG_MAX_SLOTS 64

/* The kernel argument block; identical layout on host and device. */
typedef struct {
    uint64_t t[CG_MAX_SLOTS]; /* device pointer per slot */
    int64_t sym[IR_MAX_DIM_SYMS];
    int64_t cap;              /* KV cache capacity (positions) */
    int64_t len;              /* positions cached before this step */
    uint64_t err;             /* device int[2]: tag + 1 and the bad value of a data error */
    int64_t tag;              /* which kernel this is, for the host to name a data error */
} CgArgs;

typedef enum {
    CG_LAUNCH_ELEM,  /* one thread per item, 256 threads per block */
    CG_LAUNCH_WARP,  /* one warp per item, 8 items per block */
    CG_LAUNCH_BLOCK, /* one 256-thread block per item (CgPhase.threads: another count) */
} CgLaunchMode;

/* How a phase's item count is found at run time. */
typedef enum {
    CG_ITEMS_GRID,       /* (ceil(a / da) + min(plus, a)) * ceil(b / db) */
    CG_ITEMS_KEYS_WHOLE, /* attention over the whole keys: the grid above when cg_key_splits(...) == 1, else none */
    CG_ITEMS_KEYS_SPLIT, /* a decode step's keys split: B * ceil(S * Hq / 64) * n blocks when n = cg_key_splits(...) > 1, else none */
    CG_ITEMS_KEYS_MERGE, /* the merge of the split parts: B * Hq * Dv when n > 1, else none */
    CG_ITEMS_K_WHOLE,    /* a GEMM's tile over the whole K: the grid when cg_k_splits(a, tiles, knb) == 1, else none; tiles:
                          * ceil(b / db), or the whole grid for a grouped GEMM (plus > 0) */
    CG_ITEMS_K_SPLIT,    /* its K split between blocks: n * grid blocks when n = cg_k_splits(...) > 1, else none */
    CG_ITEMS_K_SUM,      /* the sum of the n partial tiles (da, db as the tile's): a * b items when n > 1, else none */
    CG_ITEMS_MLA_DECODE, /* MLA's wgmma decode attention (mla_decode.cuh): B * ceil(S * Hq / 64) * cg_mla_splits(...) blocks
                          * when S <= knb, else none */
    CG_ITEMS_MLA_COMBINE, /* ... the merge of its splits: B * S * Hq * 128 items when S <= knb and the splits are > 1 (and
                           * > kfuse: the decode kernel merges up to kfuse itself) */
} CgItems;

/* Into how many parts the K of a GEMM over M rows, nt 128-wide output
 * tiles and nkb pipeline steps is split between blocks: only for one row
 * tile (a decode step, which streams the weights), into about 3 blocks per
 * SM of the GPU's 132 (the bytes in flight HBM needs: a whole-K grid of
 * q_a's 12 tiles or the dense gate's 144 leaves SMs idle or holds one
 * block's three stages each), into parts of ceil(nkb / n) >= 2 steps (the
 * last may be shorter), at most CG_K_PARTS, none empty. The partial tiles go to scratch [part][64][O]
 * floats (as many parts as M = 1 takes, the most). One definition for the
 * host and the device. */
#define CG_K_PARTS 32
#define CG_K_SPLITS_FN(Q)                                                          \
    Q(long long cg_k_splits(long long M, long long nt, long long nkb) {            \
        if (M < 1 || M > 64 || nt < 1 || nt > 396 || nkb < 4) return 1;            \
        long long n = (396 + nt / 2) / nt;                                          \
        if (n > 32) n = 32;                                                         \
        if (n > nkb / 2) n = nkb / 2;                                               \
        if (n < 2) return 1;                                                        \
        long long per = (nkb + n - 1) / n;                                          \
        return (nkb + per - 1) / per;                                               \
    })

/* Into how many parts a step's keys are split between blocks, for
 * attention with one key head: only a decode step (S == 1) with fewer
 * query tiles (B * ceil(Hq / 64)) than an H100/H200 has SMs (132), into
 * enough parts for ~2 blocks per SM (264), at least 32 keys a part, at
 * most 64 parts, and within the
 * CG_KEY_PARTS (part, query row) states of the scratch. One definition
 * for the host (the launch) and the device (the kernel's decomposition). */
#define CG_KEY_PARTS 33792 /* 2 x 264 tiles of 64 rows */
#define CG_KEY_SPLITS_FN(Q)                                                                        \
    Q(long long cg_key_splits(long long S, long long B, long long Hq, long long T) {               \
        if (S != 1 || B < 1 || Hq < 1 || B * ((Hq + 63) / 64) >= 132) return 1;                    \
        long long nrb = (Hq + 63) / 64, n = (264 + B * nrb - 1) / (B * nrb), kb = (T + 31) / 32;   \
        if (n > 64) n = 64;                                                                        \
        if (n > kb) n = kb;                                                                        \
        return n > 1 && n * B * Hq <= 33792 ? n : 1;                                               \
    })
/* Into how many splits MLA's wgmma decode attention (gen_attn.c,
 * codegen/kernels/mla_decode.cuh) divides each 64-row query tile's 64-key
 * blocks: the count with the least time by a model of the launch, waves of
 * one block per SM (132 on an H100/H200) times the key blocks of the
 * longest split plus 2 for a block's fixed work (its q tile, its output),
 * at most 64, the split states within CG_KEY_PARTS rows, none empty. */
static inline long long cg_mla_splits(long long S, long long B, long long Hq, long long T) {
    const long long tiles = B * ((S * Hq + 63) / 64), nkb = (T + 63) / 64;
    long long best = 1, cost = -1;
    for (long long n = 1; tiles > 0 && n <= 64 && n <= nkb && n * B * S * Hq <= 33792; n++) {
        const long long c = (tiles * n + 131) / 132 * ((nkb + n - 1) / n + 2);
        if (cost < 0 || c < cost) best = n, cost = c;
    }
    const long long per = (nkb + best - 1) / (best > 0 ? best : 1);
    return per > 0 ? (nkb + per - 1) / per : 1;
}
#define CG_QUOTE(...) #__VA_ARGS__
#define CG_EXPAND(...) __VA_ARGS__
static inline CG_KEY_SPLITS_FN(CG_EXPAND)
static inline CG_K_SPLITS_FN(CG_EXPAND)

/* A phase that runs codegen/kernels/gemm_tma.cuh (an FP8 linear by TMA
 * and wgmma): 384 threads a block, a persistent grid (at most one block an
 * SM), its two tensor maps made by the runtime at plan time. */
typedef struct {
    IrDim M;
    int64_t N, K;
    int x, w, maps; /* slots: x's and w's E4M3 codes; the maps' (a scratch slot the runtime points at its own maps) */
    int span;       /* phases after this one that compute the same GEMM (the tile's): not run when this one is */
} CgTmaGemm;

/* The tensor maps a phase's kernel reads its weights through
 * (codegen/kernels/expert_tma.cuh) or MLA's decode kernel its KV cache
 * (mla_decode.cuh's MLA_TMA): 2-d UINT8 maps over slot[i]'s
 * [rows[i]][cols[i]] bytes (row pitch cols; rows 0: a KV cache's, its
 * max_b x cap positions), box box_rows (0: 128) x 128, the 128-byte
 * swizzle, made by the runtime at plan time into memory of its own that
 * slot `maps` then points at, 128 bytes a map. */
#define CG_TMA_MAPS_MAX 2
typedef struct {
    int n;
    int slot[CG_TMA_MAPS_MAX];
    int64_t rows[CG_TMA_MAPS_MAX], cols[CG_TMA_MAPS_MAX];
    int maps;
    int box_rows;
} CgTmaMaps;

/* items as `rule` says; a and b evaluated at run time. */
typedef struct {
    const char *fn;  /* __global__ function in the module */
    CgLaunchMode mode;
    IrDim a, b;
    int64_t da, db;
    int64_t smem;    /* dynamic shared memory, bytes */
    int64_t plus;    /* items = (ceil(a / da) + min(plus, a)) * ceil(b / db): room for a data-dependent count (the tiles of a
                      * grouped GEMM over a rows and plus experts: at most ceil(a / 64) + the min(plus, a) experts that have rows) */
    CgItems rule;
    IrDim kb, ks, kt; /* CG_ITEMS_KEYS_*: the batch, new positions and context of the attention */
    int64_t khq, kdv; /* ... its query heads and value width */
    int64_t knb;      /* CG_ITEMS_K_*: the GEMM's pipeline steps over K (a, b: its M and O); CG_ITEMS_KEYS_* and
                       * CG_ITEMS_MLA_*: > 0 when the attention has MLA's wgmma decode kernel, which runs the steps of
                       * S <= knb (the KEYS_* phases then only the others) */
    int64_t amin, amax; /* when set (> 0): the phase runs only for a > amin, or only for a <= amax (a GEMM's skinny-M form
                         * against its tile: CG_SKINNY_M) */
    int64_t cmin;       /* when set (> 0): at a step with a cached context (Args.len > 0) the phase runs only for a > cmin (a
                         * row group whose work an einsum's decode form does there: DSCC_EINSUM_ROPE) */
    int threads;        /* CG_LAUNCH_BLOCK: threads a block when not 256 (0); MLA's decode kernel: 384 */
    const CgTmaGemm *tma; /* non-NULL: the phase is the TMA GEMM, which the runtime runs instead of its tile or not at all */
    const CgTmaMaps *tmaps; /* non-NULL: the tensor maps the phase reads its weights through (made at plan time) */
    bool pdl;             /* its entry calls DSCC_PDL_WAIT() (codegen/kernels.h): it may be launched programmatically */
    int64_t kfuse;        /* CG_ITEMS_MLA_COMBINE: MLA's decode kernel merges up to this many splits itself (MLA_FUSE_MAX), the
                           * combine runs only for more (0 or 1: for every step of several splits) */
} CgPhase;

/* A GEMM over at most this many rows (a decode step's) runs its skinny-M
 * form (codegen/kernels/gemm_skinny.cuh) instead of the tile. */
#define CG_SKINNY_M 32

typedef enum {
    CG_SLOT_VALUE,   /* the node's stored value (activation, weight, input or cache) */
    CG_SLOT_SCRATCH, /* f32 scratch for a reduction: `count` floats */
} CgSlotKind;

typedef struct {
    int node;
    CgSlotKind kind;
    IrDim count;
} CgSlot;

/* A library GEMM the runtime may run instead of the kernel's phases
 * (cuBLASLt, when it loads and has an algorithm for the step's shape)
 * instead of the template's phase; that phase computes the same thing and
 * runs otherwise. The library reads the operands as the kernels store
 * them: nothing is converted for it. */
typedef enum {
    CG_LIB_NONE,      /* the phases are the kernel */
    CG_LIB_FP8_GEMM,  /* y[M, N] bf16 = x[M, K] e4m3 . w[N, K]^T e4m3 with DeepSeek's block scales, the activation
                       * scales stored K-block-major (CgProgram.kblock: [K/128][M], cuBLASLt's VEC128 layout) */
    CG_LIB_BF16_GEMM, /* y[M, N] bf16 (f32 with y_f32) = x[M, K] bf16 . w[N, K]^T bf16 */
} CgLibKind;

typedef struct {
    CgLibKind kind;
    IrDim M;
    int64_t N, K;
    int x, xs, w, ws, y; /* slots */
    bool y_f32;          /* y is stored as f32 (the GEMM writes the f32 cast of its result: the LM head's logits) */
    int phase;           /* the template's first phase, which the library call replaces (the group's other phases,
                          * such as the stores of fused values the GEMM reads, still run) */
    int span;            /* phases from `phase` the call replaces (the tile's split-K forms too); 0 means 1 */
    int64_t mmin;        /* > 0: the call only above this many rows (the skinny form's own: the f32 router's) */
} CgLib;

typedef struct {
    const char *name;   /* e.g. "g12_rmsnorm_act_scale_quantize" */
    int group;
    SrcLoc loc;         /* first op's DSL location */
    const char *comment; /* header: the group's IR ops and their DSL locations */
    int module;         /* index into CgProgram.modules */
    CgPhase *phases;
    int nphases;
    CgSlot *slots;
    int nslots;
    int *nodes;         /* members, program order */
    int nnodes;
    CgLib lib;          /* kind CG_LIB_NONE: none */
} CgKernel;

typedef struct {
    CgKernel *kernels;  /* in an order that respects every dependency */
    int nkernels;
    CgSource *modules;  /* distinct module sources, named after their first kernel: what cg_compile takes */
    int nmodules;
    bool *stored;       /* by node id: the value lives in memory */
    IrDType *dtype;     /* by node id: the dtype it is stored in (see CgGenOptions) */
    /* By node id: an act_scale (x's FP8 scales, [..., M rows][nkb] as a
     * value) stored K-block-major, element (m, kb) at kb * M + m: the layout
     * cuBLASLt's VEC128 activation scales take, so its block-scaled GEMM
     * reads them where the quantize wrote them (no transpose between). Every
     * act_scale stored as f32 is, but one a communication op reads
     * (dispatch ships a token's scales with its row). Generated code reads
     * and writes such a value through its slot's loader and storer, which
     * map the value's flat index to the layout; the runtime maps it back
     * when it copies the value out (gpu_exec_value, outputs). */
    bool *kblock;
    /* By node id: where unw_above[id] > 0, the value is not written at a
     * step whose unw_a[id] evaluates above it (gate and up under the routed
     * experts' fused epilogue, DSCC_EXPERT_TMA's epi=1: the TMA phase
     * stores silu(gate) x up quantized instead; the tile's rows, at most
     * unw_above, still store them): gpu_exec_value has none then. */
    int64_t *unw_above;
    IrDim *unw_a;
} CgProgram;

typedef enum { CG_TILE_DEFAULT, CG_TILE_WGMMA, CG_TILE_MMA_SYNC } CgTile;

typedef struct {
    /* Store every bf16/f16 tensor (weights, activations, caches) as f32;
     * FP8 codes, scales and integers keep their dtype. Nothing is then
     * rounded to 16 bits between kernels, as in the CPU executor, at twice
     * the memory and traffic of those tensors: a fidelity mode. */
    bool f32_storage;
    /* The FP8/BF16 tensor-core tile: Hopper's warpgroup wgmma
     * (CG_TILE_WGMMA) or the warp-level mma.sync one (CG_TILE_MMA_SYNC);
     * CG_TILE_DEFAULT reads DSCC_GEMM_TILE (wgmma | mma), else wgmma, or
     * mma.sync with f32_storage: Hopper's FP8 wgmma sums its products with
     * fewer bits than f32 (1.6e-4 of an FP8 GEMM's output, which FP8
     * requantization downstream turns into 4.6e-2 of the tiny fixtures'
     * logits), while FP8 mma.sync is exact to 3e-7, as the fidelity mode
     * needs. */
    CgTile tile;
    /* Never the skinny-M form of an FP8 linear (also DSCC_GEMM_SKINNY=0):
     * the tile at every M, for comparing the two. */
    bool no_skinny;
    /* The DSCC_* switches (support/tune.def), read once by the caller's
     * main (tune_read_env), its BOOL switches checked there (tune_check);
     * NULL: every switch unset (the defaults). */
    const DsccTune *tune;
} CgGenOptions;

/* Items of phase f (what the launch covers) for the dims of a step; 0: not launched. */
int64_t cg_phase_items(const CgPhase *f, const int64_t *sym);

/* Generates a kernel per group of a verified graph (fused or not); `o` may
 * be NULL (defaults). NULL after reporting an op or shape the generator
 * cannot handle. */
CgProgram *cg_generate(Arena *a, DiagEngine *d, const IrGraph *g, const CgGenOptions *o);

/* Which values the kernels of g keep in memory, by node id (CgProgram's
 * `stored`: the others are inlined into their readers or read through by
 * a template), and in which dtype (*dtype, by node id): what cg_generate
 * decides, without generating code. The plan-memory pass lays out these. */
bool *cg_stored_values(Arena *a, const IrGraph *g, const CgGenOptions *o, IrDType **dtype);

/* By node id: the op of g whose kernel also reads that value, though the graph does not say so, or -1. With
 * DSCC_SKINNY_FOLD=1 an fp8_linear's M <= 4 form computes its x from its row group's inputs (gen_gemm.c), so they
 * must outlive the row group until the linear has run: plan-memory counts these reads (ir_order_compute_with).
 * NULL after reporting a malformed switch. */
int *cg_fold_reads(Arena *a, DiagEngine *d, const IrGraph *g, const CgGenOptions *o);

/* By node id: with DSCC_SKINNY_FOLD=1 and DSCC_SKINNY_FOLD_HOIST=1, for an fp8_linear that would compute its x itself
 * (as cg_fold_reads) were it launched right after its row group, whose codes other kernels read too (V3's MoE layer:
 * the router reads the normed rows, the routed experts the codes, the shared expert's gate + up folds), the quantize
 * of its x: plan-memory's schedule launches it, and what it waits for, there. -1 for every other node. */
int *cg_fold_hoists(Arena *a, DiagEngine *d, const IrGraph *g, const CgGenOptions *o);

/* DeepSeek-V3's gate after the router GEMM, as the DSL writes it:
 * sig = sigmoid(logits), choice = sig + bias, topk = group_topk(choice),
 * w = gather(sig, topk, axis=-1), then optionally w / (sum(w, -1, keepdim)
 * + eps) and optionally w * scale (eps, scale: scalar consts). logits and
 * bias are computed by no fusible op (a GEMM, a weight), every value but
 * topk and the last is f32 and read only inside the chain, all on topk's
 * stream, and the shapes fit codegen/kernels/route_topk.cuh (E <= 1024,
 * k <= 32). The fuse pass puts such a chain in topk's group; the code
 * generator then emits the whole group as that one kernel. */
typedef struct {
    const IrNode *logits, *bias, *sig, *choice, *topk, *gather, *sum, *den, *div, *scale, *out; /* sum, den, div, scale: NULL if absent */
    const IrNode *eps, *factor;     /* the consts of den and scale */
    int n;
    const IrNode *nodes[8];         /* the chain's ops, topk included (not the consts) */
} CgRouteChain;
bool cg_route_chain(const IrGraph *g, const IrNode *topk, CgRouteChain *c);

/* The full text of kernel k as --emit=cuda writes it: header comment, then
 * the module source. */
char *cg_kernel_text(Arena *a, const CgProgram *p, const CgKernel *k);

#endif
