/* gen_internal.h — private to codegen/: the state of the kernel being
 * generated and the helpers gen.c and gen_ops.c share. */
#ifndef DSCC_CODEGEN_GEN_INTERNAL_H
#define DSCC_CODEGEN_GEN_INTERNAL_H

#include "codegen/gen.h"

typedef struct {
    Arena *a;
    DiagEngine *d;
    const IrGraph *g;
    const bool *stored;  /* by node id */
    const IrDType *dtype; /* by node id: the stored dtype */
    int *local;          /* by node id: index of its inlined v-function in this kernel, -1 if not a member */
    int *stat;           /* by node id: slot of a reduction's statistics (or value) */
    StrBuf ldr;          /* loaders and storers of the slots */
    StrBuf decl;         /* the module source after them */
    CgSlot slots[CG_MAX_SLOTS];
    int nslots;
    CgPhase *phases;
    int nphases;
    CgLib lib;           /* the library form of the kernel being generated (CG_LIB_NONE: none) */
    bool failed;         /* ran out of slots */
    bool mma_helpers;    /* cg_mma_helpers has emitted them into this module */
    bool tile_off;       /* ... and the tile's (gemm_tile_helpers.cuh: tile_off, the wgmma helpers) */
    const DsccTune *tune; /* the DSCC_* switches (CgGenOptions.tune; never NULL: unset ones when not given) */
    bool wgmma;          /* the tensor-core tile is the wgmma one (CgGenOptions.tile) */
    bool skinny;         /* FP8 linears get their skinny-M form (CgGenOptions.no_skinny, DSCC_GEMM_SKINNY) */
    const IrNode *act;   /* an act_scale whose amax the store pass of its input's size computes (gen.c) */
    bool rows_wide;      /* row kernels in their wide forms (gen.c, emit_row_kernel; DSCC_ROWS_WIDE=0: one 256-thread block a row) */
    bool rows_prefill;   /* ... and above CG_ROWS_PREFILL_MIN rows their prefill form (gen_rows.c; DSCC_ROWS_PREFILL=0: none) */
    bool rows_upstream;  /* ... and for a group whose unstored values before the norm cross its rows (the last MoE layer's
                          * combine read through the last position's slice; gen_rows.c; DSCC_ROWS_UPSTREAM=0: none) */
    bool rows_gather;    /* the cluster row form's parts of the sum of squares read a lane each, at once (gen_rows.c;
                          * DSCC_ROWS_GATHER=0: one after the other by one thread) */
    bool elem_vec;       /* fused store passes and the embedding in their vector form, 8 elements a thread (gen_vec.c; DSCC_ELEM_VEC=0: none) */
    bool vec_helpers;    /* ... whose ld8_ / st8_ helpers are in this module */
    const IrNode *rowc;  /* the norm input a wide row kernel keeps in shared memory (rowx): its readers read it there */
    int rparts, rthreads; /* the wide row kernel form being emitted: CTAs a row (a cluster), threads a CTA; 0: the old form */
    int64_t rowd;        /* ... and its norm's row width (0: no wide form) */
    const IrNode *rown;  /* ... that norm, whose value function reads the row's statistic from shared memory (rstat) */
    int rowg;            /* ... and its weight from there (RG): 1 as f32, 2 as bf16 (exact: a bf16 weight); 0 from memory */
    const int *pair;     /* by node id: the grouped expert GEMM that shares this one's kernel (gate beside up), -1 none */
    const int *cache_of; /* by node id: the KV cache a group's store of this value appends it to (gen.c), -1 none */
    const bool *kblock;  /* by node id: scales stored K-block-major (CgProgram.kblock) */
    const int *epi;      /* by node id: for a linear, the f32 cast of it in its kernel that its GEMM writes instead of
                          * its own value (gen.c, epilogue_casts), else -1; -2 for that cast */
    const IrNode *sorted; /* the routing (idx) an earlier phase of this kernel sorted its rows by, NULL none ... */
    int sort_slots[4];    /* ... and its scratch slots: per-bucket counts, sorted rows, tiles of 64, tiles of 32 (gen_expert.c) */
    const IrNode *epi_q;  /* the quantize whose codes (and act_scale whose scales) the experts' TMA phase of gate and up
                           * stores itself (DSCC_EXPERT_TMA's epi=1, gen_expert.c), NULL none; then the phases of its group
                           * (silu-mul-quantize) run only at the routed rows the tile takes (gen.c's epi_gate) */
    const IrNode *epi_down; /* the down GEMM chained after the pair being generated (gen.c), NULL none */
    const IrNode *epi_gu[2]; /* epi_q's gate and up, not written above epi_tmin routed rows (epi_R: the routed rows) */
    int64_t epi_tmin;
    IrDim epi_R;
    const char *route;   /* by node id: 1 inside a fused routing chain (not stored), 2 its group_topk, 3 its last op; 0 none */
    const char *why;     /* set by a template that cannot handle its node */
    const char *stem;    /* the group's ops, "rmsnorm_act_scale_quantize" (NULL: none named): its phases' entry names (cg_entry) */
    const char *next_fn; /* the entry cg_head (cg_head_as) opened, the next cg_phase's name; NULL: cg_entry's */
    int *fold;           /* by group id: the fp8_linear whose M <= 4 form computes this row group's x itself
                          * (DSCC_SKINNY_FOLD=1, cg_fold_plan), -1 none; NULL: the switch is off */
    char *fold_ok;       /* by node id: 1 for such an fp8_linear once its row group's phases skip M <= 4 (cg_fold_gate) */
    const int *fold_grp; /* by node id: the group codegen gives it (cg_fold_plan) */
    const IrNode *fold_lin; /* the fp8_linear being generated when it gets its folded form (gen_gemm.c), else NULL */
    int fold_pf;         /* steps of weights the folded form prefetches into L2 before its wait (DSCC_SKINNY_FOLD_PF) */
    bool fold_nomem;     /* cg_fold_plan for the plan itself (cg_fold_reads): every candidate, whatever the plan's bytes */
    bool fold_hoist;     /* DSCC_SKINNY_FOLD_HOIST=1: x's codes and scales may have readers after the folded linear */
    int *rope;           /* by node id: for an einsum whose decode form ropes q_pe at a cached step (DSCC_EINSUM_ROPE,
                          * cg_rope_plan) the row group it takes the place of, else -1; NULL: the switch is off */
    char *rope_ok;       /* by group id: 1 once that row group's phases skip the einsum's rows at a cached step */
    const int *rope_grp; /* by node id: the group codegen gives it (cg_rope_plan) */
    int *kvf;            /* by group id: for a latent row group (rmsnorm, RoPE, concat, the KV cache append) the einsum
                          * whose decode form does its row at a cached step (DSCC_EINSUM_KV=1, cg_kvf_plan), else -1;
                          * NULL: the switch is off */
    char *kvf_ok;        /* by group id: 1 once that row group's phases skip the einsum's rows at a cached step */
    const int *kvf_grp;  /* by node id: the group codegen gives it (cg_kvf_plan) */
    int kvf_n;           /* groups in G->kvf */
    int *rfuse;          /* by group id: for a router linear's group whose M <= 8 form routes its logits in its last CTA
                          * (DSCC_ROUTE_FUSE=1, cg_rfuse_plan) the routing group it does the work of, else -1; NULL: off */
    char *rfuse_ok;      /* by group id: 1 for such a routing group once its router did emit the routing (its phases then
                          * skip M <= 8) */
    int rfuse_cur;       /* the routing group of the group being generated (G->rfuse), else -1 */
    const int *rfuse_grp, *rfuse_tmpl; /* by node id, by group id: codegen's groups and templates (cg_rfuse_plan) */
    bool rfuse_done;     /* the group being generated emitted the routing in its M <= 8 form (gen_gemm.c) */
} Gen;

/* "(coeff*a.sym[i]*...)": a dim as a C expression over the Args. */
const char *cg_dim(Gen *G, IrDim d);
IrDim cg_suffix(const IrType *t, int from); /* product of dims[from..] */
IrDim cg_prefix(const IrType *t, int upto); /* product of dims[..upto) */
int cg_axis(int64_t axis, int rank);

/* Slot of n's stored value (emits its loader L<s> and storer S<s>), or a
 * new f32 scratch slot of `count` floats. */
int cg_slot_value(Gen *G, const IrNode *n);
/* The f32 activation scale of row m, K block kb (C expressions) of the
 * scales in slot s ([..., M][nkb] as a value): read where the layout
 * (CgProgram.kblock) puts it, without the flat index's division. */
const char *cg_scale_at(Gen *G, int s, const char *m, const char *kb);
/* The slot a template writes n's result to: that of the cast its GEMM
 * writes instead (Gen.epi), else n's own. */
int cg_slot_result(Gen *G, const IrNode *n);
/* "bf16", "f32", ...: the dtype n is stored in (its ld_/st_ suffix). */
const char *cg_stored_suffix(Gen *G, const IrNode *n);
int cg_slot_scratch(Gen *G, const IrNode *n, IrDim count);
/* Expression reading node m at flat index idx: inlined if a member. */
const char *cg_read(Gen *G, const IrNode *m, const char *idx);
/* The entry point of the group's phase ph, "p<ph>_<its ops>": no group number, so that two groups with the
 * same text share one module, and Nsight and --trace name what a kernel does. */
const char *cg_entry(Gen *G, int ph);
/* Appends a phase named as cg_head_as said, else by cg_entry (a kernel file's template sets its own after); the
 * caller emits its function. */
void cg_phase(Gen *G, CgLaunchMode mode, IrDim a, int64_t da, IrDim b, int64_t db, int64_t smem);

/* Sets the last phase's item rule to one of the split-key attention ones. */
void cg_phase_keys(Gen *G, CgItems rule, IrDim B, IrDim S, IrDim T, int64_t Hq, int64_t Dv);
/* Opens the __global__ function of the next phase (named by cg_entry), with a comment. */
void cg_head(Gen *G, const char *what);
/* cg_head for a template's phase of a form of its own: the entry is p<index>_<form> ("p3_attention_mma_split"),
 * the name the next cg_phase takes. */
void cg_head_as(Gen *G, const char *form, const char *what);
/* A one-thread-per-item phase: `body` computes output index i (its own stores). */
void cg_elem(Gen *G, const IrNode *n, IrDim count, const char *what, const char *body);
/* Templates by file: gen_gemm.c, gen_expert.c, gen_attn.c (false with
 * G->why set when the node is outside what they handle). */
bool cg_gemm(Gen *G, const IrNode *n, bool fp8);
/* A linear whose operands are both f32 casts of values stored as bf16 (the
 * router's linear(cast(x, f32), cast(w, f32))): it reads the bf16 values
 * themselves on the BF16 tensor-core tile (bf16 products are exact in f32,
 * the tile accumulates in f32), and a cast read by nothing else is not
 * computed at all. cg_bf16_source: what such an operand was cast from. */
const IrNode *cg_bf16_source(const Gen *G, const IrNode *v);
bool cg_linear_reads_bf16(const Gen *G, const IrNode *n);
bool cg_expert_gemm(Gen *G, const IrNode *n, bool fp8);
/* Whether fp8_expert_linear n runs as the grouped tensor-core GEMM. Two
 * such GEMMs on the same input, scales and routing with weights alike
 * (gate and up) share one kernel when G->pair names one beside the other
 * (gen.c): one sort, one tile phase over both weights' output tiles. */
bool cg_expert_grouped(const Gen *G, const IrNode *n);
bool cg_attention(Gen *G, const IrNode *n);
/* An attention on the tensor-core form whose v is a slice of k's last axis
 * (MLA's latent: v = slice(cache, 0, kv_lora_rank)) reads v from k's own
 * rows, so the slice, a copy of the whole cache every step, is not computed. */
bool cg_attention_v_in_k(const Gen *G, const IrNode *n);
/* ... and whose q is the concat of two stored bf16 tensors on its last axis
 * (MLA's absorbed q_nope beside q_pe) reads each row of q from those two,
 * so the concat, [B, S, H, 576] written and read again, is not computed. */
bool cg_attention_q_concat(const Gen *G, const IrNode *n);
/* The nodes attention n reads through, none of them computed for it (at
 * most max, into out): its q and v above, and on the prefill kernel the
 * layout between k and v and the tensors they lie in (MLA's naive form:
 * k = concat(k_nope, rope key x ones) and v, slices of kv_b's output and of
 * the cache). cg_attention_sources: those tensors (at most 3), which it
 * reads and which are stored. */
int cg_attention_through(const Gen *G, const IrNode *n, const IrNode **out, int max);
int cg_attention_sources(const Gen *G, const IrNode *n, const IrNode **out);
bool cg_einsum(Gen *G, const IrNode *n); /* gen_einsum.c */
/* The tensor-core tile (gen_gemm.c): emits, inside a phase whose
 * prologue has set `srow[64]` (source row of x per tile row, -1 = none),
 * `yrow[64]` (output row, -1 = none), `e` (weight matrix index) and `ot`
 * (128-wide output tile), the block's 64x128 output tile of
 * y[yrow, O] = x[srow, K] . w[e][O, K]^T: FP8 codes with DeepSeek block
 * scaling (slots sxs, sws), or bf16 values (bf16, scales unused); with
 * wt (bf16 only, O % 8 == 0) w[e] is stored [K][O] and read transposed. */
void cg_mma_tile(Gen *G, bool bf16, bool wt, int sx, int sxs, int sw, int sws, int sy, int64_t K, const char *O);
/* ... over pipeline steps [kb0, kb1) only (C expressions; NULL: all of K),
 * writing the partial tile as f32 to scratch slot spart at
 * [kpart][yrow][O] (a `kpart` the prologue declares; yrow < 64) when
 * spart >= 0, instead of y. */
void cg_mma_tile_part(Gen *G, bool bf16, bool wt, int sx, int sxs, int sw, int sws, int sy, int64_t K, const char *O, const char *kb0,
                      const char *kb1, int spart);
/* The tile's device helpers (cp16, cp_commit, cp_wait0/1/2, ldsm_x2_t,
 * mma_e4m3, mma_bf16) at file scope, for a template that uses them without
 * the tile; emitted once per module however often it is called. */
void cg_mma_helpers(Gen *G);
/* Dynamic shared memory the tile needs: the mma.sync tile's two pipeline
 * stages of 144-byte rows, or the wgmma tile's three of 128-byte swizzled
 * rows and 1 KB to align them to the swizzle's period. */
#define CG_MMA_SMEM (2 * 192 * 144)
#define CG_WGMMA_SMEM (3 * 192 * 128 + 1024)
#define CG_TILE_SMEM(G) ((G)->wgmma ? CG_WGMMA_SMEM : CG_MMA_SMEM)
/* "mma m16n8k32 E4M3", "wgmma m64n64k16 BF16", ...: the tile's instruction, for kernel comments. */
const char *cg_tile_insn(const Gen *G, bool bf16);
/* Split-K (cg_k_splits): sets the last phase's rule (CG_ITEMS_K_*) and its
 * pipeline steps; cg_k_sum appends the phase summing the partial tiles of
 * scratch slot sp ([part][64][O]) into y (slot sy) over M rows, `tiles`
 * the device expression (of M) of the tiles the split was counted over,
 * plus as the tile phase's. */
void cg_phase_k(Gen *G, CgItems rule, int64_t nkb);
/* 8-row weight groups per warp of an FP8 linear's skinny-M form over N outputs (1, 2 or 4). */
int cg_skinny_groups(int64_t N);
/* DSCC_SKINNY_FOLD=1 (gen_gemm.c): which row groups' act_scale + quantize (with their rmsnorm, silu * mul, slices) an
 * fp8_linear's M <= 4 form computes itself, so their kernel does not run there. cg_fold_plan, before the groups are
 * generated (pos: by group id, its place in the launch order): G->fold; false after reporting a malformed
 * DSCC_SKINNY_FOLD_PF.
 * cg_fold_gate, after row group gid's phases: they skip M <= 4 where each runs over a multiple of the rows, and the
 * linear then gets its folded form (G->fold_ok). */
bool cg_fold_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups);
void cg_fold_gate(Gen *G, int gid);
/* After cg_fold_plan: also[v] = the fp8_linear that reads value v in place of its row group, where it is a later one
 * (what plan-memory keeps alive for it: cg_fold_reads). */
void cg_fold_also_read(const Gen *G, int ngroups, int *also);
/* The one reading of the hoist (cg_fold_plan's G->fold_hoist, cg_fold_hoists): DSCC_SKINNY_FOLD=1 and
 * DSCC_SKINNY_FOLD_HOIST=1 (the hoist alone does nothing). */
bool cg_fold_hoist_on(const DsccTune *t);
/* DSCC_SKINNY_FOLD_HOIST=1, before plan-memory's schedule (order: the groups' launch order): hoist[i] = the quantize
 * of x for the first fp8_linear i of each row group none of whose linears folds where it stands, that would fold were
 * it launched right after its row group (x's other readers all after that place); -1 for every other node. Returns
 * how many. With G->fold_nomem and G->fold_hoist. */
int cg_fold_hoist_plan(Gen *G, const int *grp, const int *tmpl, const int *order, int ngroups, int *hoist);
/* DSCC_EINSUM_ROPE (gen_einsum.c; the default, =0 off): the decode form of an absorbed einsum "bshd,hcd->bshc" reads q_nope straight from
 * q_b's output and stores the roped q_pe itself at a step with a cached context, where the row group that slices and
 * ropes them then launches nothing. cg_rope_plan before the groups are generated (G->rope); cg_rope_gate after row group gid's phases (G->rope_ok); cg_rope_also_read: what plan-memory must
 * keep alive for the einsum (also[v] = the einsum's id). */
void cg_rope_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups);
void cg_rope_gate(Gen *G, int gid);
void cg_rope_also_read(const Gen *G, int ngroups, int *also);
/* DSCC_EINSUM_KV=1 (gen_einsum.c): the decode form of the einsum launched right after the latent's row group (its
 * rmsnorm, k_pe's RoPE, the concat and the KV cache append) does that group's rows at a step with a cached context,
 * a block a row, where the row group then launches nothing. cg_kvf_plan before the groups are generated (G->kvf;
 * tune_check has refused a malformed switch); cg_kvf_gate after row group gid's phases (G->kvf_ok); cg_kvf_also_read:
 * what plan-memory must keep alive, and unshared, for the einsum (also[v] = the einsum's id). */
void cg_kvf_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups);
void cg_kvf_gate(Gen *G, int gid);
void cg_kvf_also_read(const Gen *G, int ngroups, int *also);
/* The value function of fusible op n in the kernel being generated (gen.c's; G->local[n->id] set). */
void cg_emit_value(Gen *G, const IrNode *n);
/* The latent row group's rows as a device function `E`_side(a) of the einsum's decode form (gen_rows.c): a block a
 * row, the norm's sum of squares in the order of its row kernel's form at those rows, then the group's stores. C and
 * T: that form's CTAs a row and threads a CTA (cg_row_side_form). */
void cg_emit_row_side(Gen *G, const char *E, const IrNode *norm, IrDim rows, const int *members, int nm, int C, int T);
/* CTAs a row (*T threads each) of the form a row group with rmsnorm `norm` (D wide) runs at up to 8 rows, when a
 * 256-thread block can sum its row in that order (T a multiple of 32, C T <= 256); 0 otherwise. */
int cg_row_side_form(const Gen *G, const IrNode *norm, int *T);
/* With a memory plan: whether no value sharing the bytes of one of lv[0 .. nl) is written from the group at place pp
 * to the one at place pl of the launch order (or after pp on another stream than L's) (gen_gemm.c). */
bool cg_leaves_intact(const Gen *G, const IrNode *const *lv, int nl, const IrNode *L, int pp, int pl, const int *grp, const int *pos);
void cg_k_sum(Gen *G, const char *what, IrDim M, int64_t O, const char *tiles, int64_t nkb, int sp, int sy, int64_t plus);

/* The routing chains (cg_route_chain) the fuse pass put in one group with
 * their consts and nothing else (gen_ops.c): in[id] = 1 for the values
 * inside them, which the chain's kernel computes in registers and nothing
 * stores; 2 for the group_topk, 3 for the last op (the weights); 0 others.
 * A chain's ops read their consts as literals, not from memory. */
void cg_route_groups(const IrGraph *g, const int *grp, char *in);
/* The whole group of group_topk `topk` as the route_topk kernel, when
 * cg_route_groups found its chain there. */
bool cg_route_kernel(Gen *G, const IrNode *topk);
/* DSCC_ROUTE_FUSE=1 (gen_ops.c): the MoE router's linear, at M <= 8 on gemm_skinny2.cuh, routes its logits in the CTA
 * that finishes last (SK_LAST), and the routing kernel right after it launches nothing there. cg_rfuse_plan before
 * the groups are generated (G->rfuse); cg_rfuse_emit from the router's
 * M <= 8 instance: the SK_LAST define's value (NULL: none); cg_rfuse_gate after the router's group (G->rfuse_ok). */
void cg_rfuse_plan(Gen *G, const int *grp, const int *tmpl, const int *pos, int ngroups);
const char *cg_rfuse_emit(Gen *G, int slot_y);
void cg_rfuse_gate(Gen *G, int gid);

/* gen.c's fused-group helpers the row kernels (gen_rows.c) use: whether a
 * sum is inlined into its readers (a short axis), whether n gets a
 * reduction phase of its own, and the store passes of a group (with rows:
 * loops inside a row kernel, from cg_row_blocks / cg_row_elems). */
bool cg_sum_inline(const IrNode *n);
bool cg_has_reduction_phase(const IrNode *n);
void cg_emit_stores(Gen *G, const int *members, int nm, bool *done, const IrDim *rows);
/* Row kernels (gen_rows.c). cg_row_norm: the rmsnorm of a group whose
 * members keep rows apart, and its rows (*rows), else NULL.
 * cg_row_prologue: before the group's value functions, what the wide form
 * declares; returns the cluster form's CTAs a row, 0 for the old form
 * (DSCC_ROWS_WIDE=0, or a row not 128 n wide). cg_emit_row_kernel: the
 * kernel, in the form(s) that count gave. cg_row_blocks / cg_row_elems:
 * the store pass's loop over the row's rb scale blocks (own: the norm's
 * width) or its w elements, for the form being emitted. */
const IrNode *cg_row_norm(Gen *G, const int *members, int nm, IrDim *rows);
int cg_row_prologue(Gen *G, const IrNode *norm, const int *members, int nm);
void cg_emit_row_kernel(Gen *G, const IrNode *norm, IrDim rows, const int *members, int nm, bool *done, int C);
void cg_row_blocks(Gen *G, int64_t rb, bool own);
void cg_row_elems(Gen *G, int64_t w);

/* The flat index into operand type op (broadcast to out) of output index i: "i", "0LL", or a variable i<which> whose
 * computation it appends to f (gen.c). */
const char *cg_bcast_index(Gen *G, StrBuf *f, const IrType *out, const IrType *op, int which);
/* The vector forms (gen_vec.c, Gen.elem_vec): one store pass over the sizes cnt[0..nsz) of the members not done, 8
 * elements a thread (A: the pass's merged act_scale, one size only); the embedding n. False, nothing emitted, where
 * the form does not apply (the old one then runs). */
bool cg_vec_stores(Gen *G, const int *members, int nm, bool *done, const IrDim *cnt, int nsz, const IrNode *A);
bool cg_vec_embedding(Gen *G, const IrNode *n);
/* ... and a row kernel's store pass over the row's w elements (no merged act_scale), in the form being emitted. */
bool cg_vec_row_stores(Gen *G, const int *members, int nm, bool *done, IrDim cnt, int64_t w);

/* The phase(s) of a template op (GEMM, attention, routing, ...). False
 * with G->why set when the node's shapes are outside what it handles. */
bool cg_emit_template(Gen *G, const IrNode *n);

#endif
