/* gen_attn.c — the attention template: softmax(q k^T * scale) v, causal
 * or not, grouped heads (Hq a multiple of Hk), no score matrix in memory.
 *
 * With one key head and bf16 q, k, v (absorbed MLA) it runs on the tensor
 * cores (codegen/kernels/attn_mma.cuh: 64 query rows a block, keys 32 at a
 * time; a decode step with few query tiles splits its keys between blocks
 * and merges their parts); MLA's absorbed decode with the wgmma tile also
 * gets the Hopper kernel of mla_decode.cuh for steps of at most MLA_MAX_S
 * positions; the naive prefill form (attn_impl) the flash-attention kernels
 * of attn_prefill*.cuh. Otherwise one warp per query row, online softmax. */
#include "codegen/gen_internal.h"
#include "codegen/kernels.h"

#include <stdlib.h>
#include <string.h>

static int attention_stages(int64_t Dk, int64_t Dv, bool v_in_k);

/* One kernel of the tensor-core form (codegen/kernels/attn_mma.cuh): the
 * whole keys of each query tile (split false), or a decode step's keys
 * split between cg_key_splits blocks per tile, each writing its softmax
 * state (unnormalised output, max, sum) to scratch slot `sp` for the merge
 * phase. sq1, qd0: q's second part and the width of its first when q is
 * the concat of two tensors on its last axis (cg_attention_q_concat;
 * otherwise sq1 = sq and qd0 = Dk). */
static void attention_mma_kernel(Gen *G, const IrNode *n, bool split, int sq, int sq1, int64_t qd0, int sk, int sv, int so, int sp,
                                 int64_t qst) {
    const IrNode *q = n->ops[0], *k = n->ops[1], *v = n->ops[2];
    int64_t Dk = q->type.dims[3].coeff, Dv = v->type.dims[3].coeff;
    bool vk = cg_attention_v_in_k(G, n); /* v read from k's rows: row stride Dk, from column `start` */
    int64_t vs = vk ? Dk : Dv, v0 = vk ? ir_node_attr_int(v, "start", 0) : 0;
    const IrNode *vsrc = vk ? k : v; /* the tensor v's rows are read from */
    const char *vt = v->op == IR_OP_KV_CACHE ? "a.cap" : cg_dim(G, vsrc->type.dims[1]);
    const bool causal = ir_node_attr_bool(n, "causal", false);
    cg_head_as(G, split ? "attention_mma_split" : "attention_mma", split ? "attention, one key head, a decode step's keys split between blocks: tensor cores (mma m16n8k16 BF16), "
                       "64 query rows x 32 keys per step, online softmax, partial states to scratch"
                     : "attention, one key head: tensor cores (mma m16n8k16 BF16), 64 query rows x 32 keys per step, online softmax");
    Arena *a = G->a;
    const CgDefine d[] = {
        {"ATM_SPLIT", split ? "1" : "0"},
        {"ATM_S", cg_dim(G, q->type.dims[1])},
        {"ATM_T", cg_dim(G, k->type.dims[1])},
        {"ATM_HQ", cg_dim(G, q->type.dims[2])},
        {"ATM_DK", arena_printf(a, "%lldLL", (long long)Dk)},
        {"ATM_DV", arena_printf(a, "%lldLL", (long long)Dv)},
        {"ATM_QST", arena_printf(a, "%lldLL", (long long)qst)},
        {"ATM_KT", k->op == IR_OP_KV_CACHE ? "a.cap" : cg_dim(G, k->type.dims[1])},
        {"ATM_VT", vt},
        {"ATM_VS", arena_printf(a, "%lldLL", (long long)vs)},
        {"ATM_V0", arena_printf(a, "%lldLL", (long long)v0)},
        {"ATM_VK", vk ? "1" : "0"},
        {"ATM_NSTG", arena_printf(a, "%d", attention_stages(Dk, Dv, vk))},
        {"ATM_NT", arena_printf(a, "%lld", (long long)(Dv / 16))},
        {"ATM_Q", arena_printf(a, "%d", sq)},
        {"ATM_Q1", arena_printf(a, "%d", sq1)},
        {"ATM_QD0", arena_printf(a, "%lldLL", (long long)qd0)},
        {"ATM_K", arena_printf(a, "%d", sk)},
        {"ATM_V", arena_printf(a, "%d", sv)},
        {"ATM_LAST", causal ? "s + T - S" : "T - 1"},
        {"ATM_KEND", causal ? "((r0 + 63 < rows ? r0 + 63 : rows - 1) / Hq) + T - S" : "T - 1"},
        {"ATM_SCALE", arena_printf(a, "%.9ef", (double)(float)ir_node_attr_float(n, "scale", 1.0))},
        {"ATM_BN", cg_dim(G, q->type.dims[0])},
        {"ATM_PART", arena_printf(a, "%d", sp)},
        {"ATM_STORE(i, v)", arena_printf(a, "S%d(a, i, v)", so)}};
    sb_puts(&G->decl, "    extern __shared__ __align__(16) unsigned char sm[];\n");
    sb_puts(&G->decl, cg_kernel_fragment(a, "attn_mma", d, (int)(sizeof d / sizeof *d)));
    sb_puts(&G->decl, "}\n");
}

/* Its static shared memory: xrow[8][16] floats and xp[8][32] uint4 (the kernel's declarations). */
#define ATTN_STATIC_SMEM (8 * 16 * 4 + 8 * 32 * 16)
/* Dynamic shared memory of the tensor-core form: q and `stages` stages of k
 * and v (v none of its own when it is k's slice). */
static int64_t attention_mma_smem_n(int64_t Dk, int64_t Dv, bool v_in_k, int stages) {
    return 64 * (Dk * 2 + 16) + stages * (32 * (Dk * 2 + 16) + (v_in_k ? 0 : 32 * (Dv * 2 + 16)));
}
/* Three stages of keys when they fit beside the static memory in sm_90's
 * 227 KB (V3's latent, v in k's stage: 183 KB), else two. */
static int attention_stages(int64_t Dk, int64_t Dv, bool v_in_k) {
    return attention_mma_smem_n(Dk, Dv, v_in_k, 3) + ATTN_STATIC_SMEM <= 227 * 1024 ? 3 : 2;
}
static int64_t attention_mma_smem(int64_t Dk, int64_t Dv, bool v_in_k) {
    return attention_mma_smem_n(Dk, Dv, v_in_k, attention_stages(Dk, Dv, v_in_k));
}

/* Whether n runs in the tensor-core form, whose v is read from k's rows
 * when v is a slice of k's last axis (v_in_k). */
static bool attention_mma_shape(const Gen *G, const IrNode *n, bool v_in_k) {
    const IrNode *q = n->ops[0], *k = n->ops[1], *v = n->ops[2];
    if (q->type.rank != 4 || !ir_dim_is_const(q->type.dims[3]) || !ir_dim_is_const(v->type.dims[3])) return false;
    int64_t Dk = q->type.dims[3].coeff, Dv = v->type.dims[3].coeff;
    const IrNode *vsrc = v_in_k ? k : v; /* the tensor the kernel reads v from */
    return k->type.rank == 4 && v->type.rank == 4 && ir_dim_is_const(k->type.dims[2]) && k->type.dims[2].coeff == 1 &&
           ir_dim_is_const(v->type.dims[2]) && v->type.dims[2].coeff == 1 && Dk % 16 == 0 && Dv % 16 == 0 && Dk <= 1024 &&
           Dv <= 1024 && G->dtype[q->id] == IR_DT_BF16 && G->dtype[k->id] == IR_DT_BF16 && G->dtype[vsrc->id] == IR_DT_BF16 &&
           attention_mma_smem(Dk, Dv, v_in_k) + ATTN_STATIC_SMEM <= 227 * 1024; /* static + dynamic within sm_90's opt-in limit */
}

bool cg_attention_v_in_k(const Gen *G, const IrNode *n) {
    if (n->op != IR_OP_ATTENTION) return false;
    const IrNode *k = n->ops[1], *v = n->ops[2];
    if (v->op != IR_OP_SLICE || v->ops[0] != k || k->type.rank != 4 || v->type.rank != 4) return false;
    int64_t ax = ir_node_attr_int(v, "axis", -1), start = ir_node_attr_int(v, "start", 0);
    if (ax != -1 && ax != 3) return false;
    if (!ir_dim_is_const(k->type.dims[3]) || !ir_dim_is_const(v->type.dims[3])) return false;
    return start >= 0 && start % 8 == 0 && start + v->type.dims[3].coeff <= k->type.dims[3].coeff &&
           k->type.dims[3].coeff == n->ops[0]->type.dims[3].coeff && attention_mma_shape(G, n, true);
}

static bool attention_prefill_dims(const Gen *G, const IrNode *n);

bool cg_attention_q_concat(const Gen *G, const IrNode *n) {
    if (n->op != IR_OP_ATTENTION) return false;
    const IrNode *q = n->ops[0];
    if (q->op != IR_OP_CONCAT || q->nops != 2 || q->type.rank != 4 || q == n->ops[1] || q == n->ops[2]) return false;
    int64_t ax = ir_node_attr_int(q, "axis", -1);
    if (ax != -1 && ax != 3) return false;
    for (int k = 0; k < 2; k++) {
        const IrType *t = &q->ops[k]->type;
        if (q->ops[k]->op == IR_OP_KV_CACHE || t->rank != 4 || !ir_dim_is_const(t->dims[3]) || t->dims[3].coeff % 8 ||
            G->dtype[q->ops[k]->id] != IR_DT_BF16)
            return false;
        for (int d = 0; d < 3; d++)
            if (!ir_dim_eq(t->dims[d], q->type.dims[d])) return false;
    }
    return cg_attention_v_in_k(G, n) || attention_mma_shape(G, n, false) || attention_prefill_dims(G, n);
}

/* MLA's wgmma decode kernel (codegen/kernels/mla_decode.cuh) takes the
 * steps of at most MLA_MAX_S query positions of the absorbed form: the
 * wgmma tile selected, v the first 512 columns of k's rows of 576 (V3's
 * latent and rope key), bf16 q and cache, a constant head count. */
#define MLA_MAX_S 16
/* The most splits MLA's decode kernel merges itself (MLA_FUSE_MAX, DSCC_MLA_FUSE_MAX): its merging
 * block reads the other splits' parts alone (128 KB each), at one SM's share of L2's bandwidth; the
 * combine kernel, launched for more, spreads them over the GPU. */
#define MLA_FUSE_MAX 4
#define MLA_SMEM (3 * 73728 + 1024 + 256) /* q, two stages of 64 keys (P in each one's rope columns); 1 KB to align the swizzle; the mbarriers */
static bool mla_decode_shape(const Gen *G, const IrNode *n) {
    if (!tune_on(G->tune->mla_decode, true)) return false; /* 0: the mma.sync form for every step */
    const IrNode *q = n->ops[0], *v = n->ops[2];
    IrDType od = G->dtype[n->id];
    bool long_only = ir_dim_is_const(q->type.dims[1]) && q->type.dims[1].coeff > MLA_MAX_S; /* a graph of prefill steps only */
    return G->wgmma && !long_only && cg_attention_v_in_k(G, n) && q->type.dims[3].coeff == 576 && v->type.dims[3].coeff == 512 &&
           ir_node_attr_int(v, "start", 0) == 0 && ir_dim_is_const(q->type.dims[2]) && (od == IR_DT_BF16 || od == IR_DT_F32);
}

/* Its two phases: the decode kernel (the split count from the launch) and
 * the combine of its splits, both launched only for steps of S <= MLA_MAX_S
 * (CG_ITEMS_MLA_*), the combine only for more splits than the decode
 * kernel merges itself (with DSCC_MLA_FUSE=1, opt-in, up to MLA_FUSE_MAX,
 * in the last block of each query tile: MLA_FUSE; by default none); sp: a scratch slot
 * of 64 + CG_KEY_PARTS * 513 floats. */
static void mla_decode(Gen *G, const IrNode *n, int sq, int sq1, int64_t qd0, int sk, int so, int sp) {
    const IrNode *q = n->ops[0], *k = n->ops[1];
    IrDim B = q->type.dims[0], S = q->type.dims[1], T = k->type.dims[1];
    int64_t Hq = q->type.dims[2].coeff;
    Arena *a = G->a;
    const char *bf = G->dtype[n->id] == IR_DT_BF16 ? "1" : "0";
    const char *v3 = G->tune->mla_v3, *pf = G->tune->mla_prefetch, *lean = G->tune->mla_lean; /* checked in cg_attention */
    const char *fmax = G->tune->mla_fuse_max, *qreg = G->tune->mla_qreg;
    const char *pb = tune_on(G->tune->mla_part_bf16, false) ? "1" : "0"; /* the splits' parts as bf16 (opt-in) */
    /* The keys by TMA (the default since an H100 and an H200 timed it faster with every GPU test passing; DSCC_MLA_TMA=0:
     * cp.async; checked in cg_attention: =1 needs MLA_V3 1, 3 or 4, and unset it applies there): a KV cache's whole
     * blocks by TMA through a map the runtime makes at plan time over its max_b x cap rows of 1,152 bytes (CgTmaMaps rows
     * 0), box 64 rows x 128 bytes */
    const bool tma_ring = !v3 || !*v3 || (strcmp(v3, "0") && strcmp(v3, "2")); /* the rings that take it (MLA_V3 1, 3, 4) */
    CgTmaMaps *tm = NULL;
    if (tune_on(G->tune->mla_tma, tma_ring) && k->op == IR_OP_KV_CACHE) {
        tm = arena_alloc(a, sizeof *tm);
        *tm = (CgTmaMaps){1, {sk, sk}, {0, 0}, {1152, 1152}, cg_slot_scratch(G, n, ir_dim_const(32)), 64};
    }
    bool noprod = v3 && (strcmp(v3, "3") == 0 || strcmp(v3, "4") == 0); /* 256 threads, the consumers load (MLA_V3 3, 4) */
    bool fused = tune_on(G->tune->mla_fuse, false) && !noprod; /* opt-in: slower on an H100 (MLA_FUSE; its ticket is the producer's) */
    /* DSCC_MLA_MC=1 (opt-in until timed, checked in cg_attention: with DSCC_MLA_TMA=1 on the chunk ring): a batch row's two
     * row tiles as a cluster of 2 CTAs whose producers multicast the boxes of keys into both (MLA_MC); where the tiles
     * do not pair within a batch row (heads no multiple of 128) or the keys are no KV cache (no map), each CTA alone */
    bool mc = tune_on(G->tune->mla_mc, false) && tm && !noprod && !fused && Hq % 128 == 0;
    /* DSCC_MLA_DSM (the default since the eleventh session: 390.9 -> 412.0 TFLOPS at batch 32, 4,097 keys on an H100;
     * =0 the parts and the combine): clusters of 2 CTAs, at two splits a tile's two, merged through distributed shared
     * memory with no combine launch (MLA_DSM); the grid must be even, so only where a batch row's tiles come in pairs
     * (heads a multiple of 128, as MLA_MC). Off where DSCC_MLA_MC=1 or DSCC_MLA_FUSE=1 is asked for (each its own
     * clusters or merge; =1 beside them is cg_attention's error), whether or not that form then applies. */
    /* unset, on only with the forms a GPU has run it beside (the producer's ring, MLA_V3 1; any LEAN, PP, TMA): not by
     * default beside MLA_V3 3 or 4, QREG, PREG or PART_BF16 (=1 asks for it there) */
    const bool dsm_run = (!v3 || !*v3 || strcmp(v3, "1") == 0) && !tune_on(qreg, false) && !tune_on(G->tune->mla_preg, false) &&
                         !tune_on(G->tune->mla_part_bf16, false);
    bool dsm = tune_on(G->tune->mla_dsm, dsm_run) && !tune_on(G->tune->mla_mc, false) && !tune_on(G->tune->mla_fuse, false) &&
               Hq % 128 == 0;
    int kfuse = fused ? (fmax && *fmax ? atoi(fmax) : MLA_FUSE_MAX) : dsm ? 2 : 1; /* splits the decode kernel merges itself, at most */
    /* DSCC_MLA_PP=1 (opt-in until timed, checked in cg_attention: the chunk ring with its producer): the consumers'
     * ping-pong, warpgroup 0 S and P of a pair's first block, warpgroup 1 of its second, S1 queued behind S0 (MLA_PP);
     * 2: and each warpgroup's P V of its own block with P from registers */
    /* The keys by TMA on the producer's ring (MLA_V3 1): since the thirteenth session (bench_mla on an H100, batch 32 /
     * 128 at 4,097 keys: 411.8 / 488.9 -> 451.6 / 533.2 TFLOPS, every value the same bits) no consumer-side proxy fence
     * after a wait for keys (MLA_AFENCE 0: the TMA writes through the async proxy wgmma reads through; what the
     * producer copies by cp.async it fences itself; DSCC_MLA_AFENCE=1 the fences back) and the boxes under an
     * evict-first L2 policy (MLA_L2HINT 1, not with MLA_MC; DSCC_MLA_L2HINT=0 none). Elsewhere neither (an explicit
     * AFENCE=0 or L2HINT=1 there is cg_attention's error). */
    const bool prod_tma = tm && !noprod;
    /* DSCC_MLA_OSTAGE (the default since the fourteenth session where the output is bf16 and not MLA_FUSE's merge:
     * bench_mla on an H100 at batch 128, 4,097 keys, 532.9 -> 558.7 TFLOPS, the same bits; neutral at batch 32): each
     * warp's output rows through shared memory, stored 512 bytes a row at once (MLA_OSTAGE 1); =0 each thread's pairs
     * straight out */
    const bool ostage = strcmp(bf, "1") == 0 && !fused && tune_on(G->tune->mla_ostage, true);
    /* DSCC_MLA_XPUSH (the default with MLA_DSM since the fifteenth session: bench_mla on an H100 at batch 32, 4,097 keys,
     * 445.6 -> 465.2 TFLOPS, the same bits): the DSM merge's halves pushed into the other CTA's q tile by st.async, no
     * cluster barrier at the merge (MLA_XPUSH 1); =0 each half read from the other CTA between two cluster barriers.
     * Needs the ring's mbarriers (MLA_V3 1 or more); an explicit 1 where that or DSM is off is cg_attention's error */
    const bool xpush = dsm && !(v3 && strcmp(v3, "0") == 0) && tune_on(G->tune->mla_xpush, true);
    const char *ppe = G->tune->mla_pp;
    const char *pp = ppe && (strcmp(ppe, "1") == 0 || strcmp(ppe, "2") == 0) ? ppe : "0";
    CgDefine d[] = {{"MLA_IN_MODULE", "1"},
                    {"MLA_B", cg_dim(G, B)},
                    {"MLA_S", cg_dim(G, S)},
                    {"MLA_T", cg_dim(G, T)},
                    {"MLA_HQ", arena_printf(a, "%lldLL", (long long)Hq)},
                    {"MLA_KT", k->op == IR_OP_KV_CACHE ? "(a.cap)" : cg_dim(G, k->type.dims[1])},
                    {"MLA_SQ", arena_printf(a, "%d", sq)},
                    {"MLA_SQ1", arena_printf(a, "%d", sq1)},
                    {"MLA_QD0", arena_printf(a, "%lld", (long long)qd0)},
                    {"MLA_SK", arena_printf(a, "%d", sk)},
                    {"MLA_SO", arena_printf(a, "%d", so)},
                    {"MLA_OUT_BF16", bf},
                    {"MLA_SP", arena_printf(a, "%d", sp)},
                    {"MLA_CAUSAL", ir_node_attr_bool(n, "causal", false) ? "1" : "0"},
                    {"MLA_SCALE", arena_printf(a, "%.9ef", (double)(float)ir_node_attr_float(n, "scale", 1.0))},
                    {"MLA_V3", v3 && *v3 ? v3 : "1"}, /* 0: the stage lands whole (the kernel before the chunk ring); 2: the seesaw; 3, 4: 1, 2 without the producer */
                    {"MLA_PF", pf && *pf ? pf : "0"}, /* blocks of keys the L2 prefetch runs ahead (0: none, the default: slower on an H100) */
                    {"MLA_LEAN", lean && *lean ? lean : "5"}, /* fewer instructions a block of keys (mla_decode.cuh); 0: as before */
                    {"MLA_LAZY", tune_on(G->tune->mla_lazy, true) ? "1" : "0"}, /* O rescaled only when a row's max grows by more than 2^8 */
                    {"MLA_FUSE", fused ? "1" : "0"}, /* the splits merged by the last block of each tile (opt-in) */
                    {"MLA_FUSE_MAX", arena_printf(a, "%d", kfuse)}, /* ... up to this many splits (the combine kernel above) */
                    {"MLA_PREG", tune_on(G->tune->mla_preg, false) ? "1" : "0"}, /* warpgroup 0's P V with P from registers (opt-in) */
                    {"MLA_QREG", qreg && *qreg ? qreg : "0"}, /* q's last chunks in warpgroup 0's registers (opt-in) */
                    {"MLA_PART_BF16", pb}, /* the splits' parts for the combine as bf16 (opt-in) */
                    {"MLA_PP", pp}, /* the consumers' ping-pong over pairs of blocks (opt-in; 2: own P from registers) */
                    {"MLA_DSM", dsm ? "1" : "0"}, /* two splits merged through distributed shared memory */
                    {"MLA_AFENCE", tune_on(G->tune->mla_afence, !prod_tma) ? "1" : "0"},
                    {"MLA_L2HINT", prod_tma && !mc && tune_on(G->tune->mla_l2hint, true) ? "1" : "0"},
                    {"MLA_OSTAGE", ostage ? "1" : "0"}, /* the output a row at a time through shared memory */
                    {"MLA_XPUSH", xpush ? "1" : "0"}, /* the DSM merge's halves pushed, not pulled */
                    {"MLA_MC", mc ? "1" : "0"}, /* a batch row's tiles in a cluster, the keys multicast (opt-in) */
                    {"MLA_TMA", tm ? "1" : "0"}, /* whole blocks of keys by TMA (opt-in) */
                    {"MLA_KMAP", tm ? arena_printf(a, "((const void *)a.t[%d])", tm->maps) : "0"}};
    /* (without a map: neither MLA_MC, MLA_TMA nor MLA_KMAP, the file's defaults, so the source is as before) */
    sb_puts(&G->decl, cg_kernel_instance(a, "mla_decode", "mla_decode", d, (int)(sizeof d / sizeof *d) - (tm ? 0 : 3)));
    cg_phase(G, CG_LAUNCH_BLOCK, B, 1, ir_dim_mul(S, q->type.dims[2]), 64, MLA_SMEM);
    cg_phase_keys(G, CG_ITEMS_MLA_DECODE, B, S, T, Hq, 512);
    G->phases[G->nphases - 1].fn = "mla_decode";
    G->phases[G->nphases - 1].threads = noprod ? 256 : 384; /* two consumer warpgroups and the producer (MLA_THREADS) */
    G->phases[G->nphases - 1].knb = MLA_MAX_S;
    G->phases[G->nphases - 1].tmaps = tm;
    CgDefine c[] = {{"MLA_IN_MODULE", "1"}, d[1], d[2], d[4], d[10], d[11], d[12], {"MLA_PART_BF16", pb}};
    sb_puts(&G->decl, cg_kernel_instance(a, "mla_decode_combine", "mla_decode_combine", c, (int)(sizeof c / sizeof *c)));
    cg_phase(G, CG_LAUNCH_ELEM, ir_dim_mul(ir_dim_mul(B, S), ir_dim_const(Hq * 128)), 1, ir_dim_const(1), 1, 0);
    cg_phase_keys(G, CG_ITEMS_MLA_COMBINE, B, S, T, Hq, 512);
    G->phases[G->nphases - 1].fn = "mla_decode_combine";
    G->phases[G->nphases - 1].knb = MLA_MAX_S;
    G->phases[G->nphases - 1].kfuse = kfuse;
}

/* The tensor-core form (see the file comment); false (no code) when n is not of that shape. */
static bool attention_mma(Gen *G, const IrNode *n) {
    const IrNode *q = n->ops[0], *k = n->ops[1], *v = n->ops[2];
    int64_t Dk = q->type.dims[3].coeff, Dv = v->type.dims[3].coeff;
    bool vk = cg_attention_v_in_k(G, n);
    if (!vk && !attention_mma_shape(G, n, false)) return false;
    int64_t qst = Dk * 2 + 16, smem = attention_mma_smem(Dk, Dv, vk);
    bool qc = cg_attention_q_concat(G, n);
    int sq = cg_slot_value(G, qc ? q->ops[0] : q), sq1 = qc ? cg_slot_value(G, q->ops[1]) : sq;
    int64_t qd0 = qc ? q->ops[0]->type.dims[3].coeff : Dk;
    int sk = cg_slot_value(G, k), sv = vk ? sk : cg_slot_value(G, v), so = cg_slot_value(G, n);
    cg_mma_helpers(G);
    bool mla = mla_decode_shape(G, n); /* the decode steps on MLA's wgmma kernel, the others on this form */
    int sp = cg_slot_scratch(G, n, ir_dim_const(CG_KEY_PARTS * (Dv + 2) + (mla ? 64 : 0)));
    if (mla) mla_decode(G, n, sq, sq1, qd0, sk, so, sp);
    int first = G->nphases;
    sb_puts(&G->ldr, "__device__ __forceinline__ " CG_KEY_SPLITS_FN(CG_QUOTE) "\n");
    IrDim B = q->type.dims[0], S = q->type.dims[1], T = k->type.dims[1];
    int64_t Hq = q->type.dims[2].coeff;
    attention_mma_kernel(G, n, false, sq, sq1, qd0, sk, sv, so, sp, qst);
    cg_phase(G, CG_LAUNCH_BLOCK, B, 1, ir_dim_mul(S, q->type.dims[2]), 64, smem);
    cg_phase_keys(G, CG_ITEMS_KEYS_WHOLE, B, S, T, Hq, Dv);
    attention_mma_kernel(G, n, true, sq, sq1, qd0, sk, sv, so, sp, qst);
    cg_phase(G, CG_LAUNCH_BLOCK, B, 1, ir_dim_mul(S, q->type.dims[2]), 64, smem);
    cg_phase_keys(G, CG_ITEMS_KEYS_SPLIT, B, S, T, Hq, Dv);
    /* one thread per output value of a split decode step merges its parts' softmax states */
    cg_head_as(G, "attention_merge", "attention, a decode step's keys split: merge the parts");
    sb_printf(&G->decl, "    const long long S = %s, T = %s, Hq = %lldLL, Dv = %lldLL, Bn = %s, i = ITEM_ELEM();\n"
                        "    const long long nsp = cg_key_splits(S, Bn, Hq, T);\n"
                        "    if (S != 1 || nsp == 1 || i >= Bn * Hq * Dv) return;  // (the runtime launches this only for a split step)\n"
                        "    const float *part = (const float *)a.t[%d];\n"
                        "    const long long ri = i / Dv, col = i %% Dv;\n"
                        "    float mx = __int_as_float(0xff800000), den = 0.0f, num = 0.0f;\n"
                        "    for (long long s = 0; s < nsp; s++) mx = fmaxf(mx, part[(s * Bn * Hq + ri) * (Dv + 2) + Dv]);\n"
                        "    for (long long s = 0; s < nsp; s++) {\n"
                        "        const float *pp = part + (s * Bn * Hq + ri) * (Dv + 2);\n"
                        "        const float w = pp[Dv] == __int_as_float(0xff800000) ? 0.0f : expf(pp[Dv] - mx);  // an empty part weighs nothing\n"
                        "        den += w * pp[Dv + 1];\n"
                        "        num += w * pp[col];\n"
                        "    }\n"
                        "    S%d(a, i, num / den);\n"
                        "}\n",
              cg_dim(G, S), cg_dim(G, T), (long long)Hq, (long long)Dv, cg_dim(G, B), sp, so);
    cg_phase(G, CG_LAUNCH_ELEM, ir_dim_mul(B, ir_dim_const(Hq * Dv)), 1, ir_dim_const(1), 1, 0);
    cg_phase_keys(G, CG_ITEMS_KEYS_MERGE, B, S, T, Hq, Dv);
    for (int f = first; mla && f < G->nphases; f++) G->phases[f].knb = MLA_MAX_S;
    return true;
}

/* ---- k and v read where they lie (the prefill kernel) -------------------
 * A part of k or v is rows of a stored bf16 tensor read with strides: key
 * j of batch row b, key head h, column c at src[(b * rows + j) * rs + h *
 * hs + c0 + c]. Through a slice of the last axis (c0), a reshape that
 * splits [B, L, H * D] into [B, L, H, D], and a product with ones[H, 1]
 * that repeats one head over all (hs 0: MLA's rotary key) the kernel reads
 * the stored tensor below them, so none of them is computed. */
typedef struct {
    const IrNode *src; /* the stored tensor read */
    int64_t heads, rs, hs, c0, width;
    int nthrough;
    const IrNode *through[4]; /* the nodes read through on the way (not computed for the kernel) */
} AttnPart;

/* ones[H, 1] = exp(w - w) (models/deepseek_v3.dsl's mla_naive). */
static bool is_ones(const IrNode *o) {
    if (o->op != IR_OP_EXP || o->type.rank != 2 || !ir_dim_is_const(o->type.dims[0]) || !ir_dim_is_const(o->type.dims[1]) ||
        o->type.dims[1].coeff != 1)
        return false;
    const IrNode *d = o->ops[0];
    return d->op == IR_OP_SUB && d->ops[0] == d->ops[1];
}

static bool last_axis_slice(const IrNode *x) {
    int64_t ax = ir_node_attr_int(x, "axis", -1);
    return x->op == IR_OP_SLICE && (ax == -1 || ax == x->type.rank - 1) && ir_node_attr_int(x, "start", 0) >= 0;
}

/* x's part as a read of the tensor below it (rank 4, [B, L, heads, width]); false where it is none. */
static bool attn_part(const Gen *G, const IrNode *x, AttnPart *p) {
    const IrType *t = &x->type;
    if (t->rank != 4 || !ir_dim_is_const(t->dims[2]) || !ir_dim_is_const(t->dims[3])) return false;
    const IrNode *y = x->nops ? x->ops[0] : NULL;
    if (last_axis_slice(x) && y->type.rank == 4 && attn_part(G, y, p) && p->nthrough < 3) {
        p->c0 += ir_node_attr_int(x, "start", 0), p->width = t->dims[3].coeff;
        p->through[p->nthrough++] = x;
        return true;
    }
    if (x->op == IR_OP_RESHAPE && y->type.rank == 3 && ir_dim_eq(y->type.dims[0], t->dims[0]) && ir_dim_eq(y->type.dims[1], t->dims[1]) &&
        ir_dim_is_const(y->type.dims[2]) && y->type.dims[2].coeff == t->dims[2].coeff * t->dims[3].coeff && G->dtype[y->id] == IR_DT_BF16 &&
        y->op != IR_OP_KV_CACHE) {
        *p = (AttnPart){y, t->dims[2].coeff, y->type.dims[2].coeff, t->dims[3].coeff, 0, t->dims[3].coeff, 1, {x}};
        return true;
    }
    if (x->op == IR_OP_MUL) {
        const IrNode *a = x->ops[0], *o = x->ops[1];
        if (is_ones(a)) a = x->ops[1], o = x->ops[0];
        if (is_ones(o) && o->type.dims[0].coeff == t->dims[2].coeff && a->type.rank == 4 &&
            ir_dim_is_const(a->type.dims[2]) && a->type.dims[2].coeff == 1 && ir_dim_eq(a->type.dims[3], t->dims[3]) && attn_part(G, a, p) &&
            p->nthrough < 4) {
            p->heads = t->dims[2].coeff, p->hs = 0;
            p->through[p->nthrough++] = x;
            return true;
        }
    }
    if (G->dtype[x->id] != IR_DT_BF16) return false;
    *p = (AttnPart){x, t->dims[2].coeff, t->dims[2].coeff * t->dims[3].coeff, t->dims[3].coeff, 0, t->dims[3].coeff, 0, {0}};
    return true;
}

/* Whether p's 16-byte loads are aligned and it has n's key heads and keys. */
static bool attn_part_ok(const AttnPart *p, const IrNode *n) {
    const IrNode *k = n->ops[1];
    return p->rs % 8 == 0 && p->hs % 8 == 0 && p->c0 % 8 == 0 && p->width % 8 == 0 && p->heads == k->type.dims[2].coeff &&
           ir_dim_eq(p->src->type.dims[0], k->type.dims[0]) && ir_dim_eq(p->src->type.dims[1], k->type.dims[1]);
}

/* x's part read through what lies below it where that works, else x itself
 * stored (always with DSCC_ATTN_INPLACE=0: k, v and their parts stored as
 * before, for comparison). */
static bool attn_part_of(const Gen *G, const IrNode *x, const IrNode *n, AttnPart *p) {
    if (tune_on(G->tune->attn_inplace, true) && attn_part(G, x, p) && attn_part_ok(p, n)) return true;
    const IrType *t = &x->type;
    *p = (AttnPart){x, t->dims[2].coeff, t->dims[2].coeff * t->dims[3].coeff, t->dims[3].coeff, 0, t->dims[3].coeff, 0, {0}};
    return G->dtype[x->id] == IR_DT_BF16 && attn_part_ok(p, n);
}

/* k as one part, or two when it is a concat on its last axis of two that
 * are read in place, and v; false where they cannot be read this way. */
static bool attn_kv_parts(const Gen *G, const IrNode *n, AttnPart kp[2], int *nk, AttnPart *vp) {
    const IrNode *k = n->ops[1];
    int64_t ax = ir_node_attr_int(k, "axis", -1);
    *nk = 1;
    if (tune_on(G->tune->attn_inplace, true) && k->op == IR_OP_CONCAT && k->nops == 2 && (ax == -1 || ax == 3) && k != n->ops[0] && k != n->ops[2] &&
        attn_part_of(G, k->ops[0], n, &kp[0]) && attn_part_of(G, k->ops[1], n, &kp[1]))
        *nk = 2;
    else if (!attn_part_of(G, k, n, &kp[0]))
        return false;
    return attn_part_of(G, n->ops[2], n, vp);
}

/* The prefill kernel (codegen/kernels/attn_prefill.cuh) takes attention
 * with head dims of at most 256 (q, k) and 128 (v), multiples of 16, a
 * constant number of key heads dividing the query heads, bf16 q, k and v:
 * MLA's naive form (128 heads as batch rows, d_qk 192, d_v 128) and grouped
 * attention. One key head under several query heads (MLA's absorbed form,
 * v a slice of k) stays on the form above, which flattens the heads into
 * its query rows and splits a decode step's keys between blocks.
 * DSCC_ATTN_PREFILL=0 turns it off (the forms above, for comparison). */
#define ATTN_PREFILL_SMEM(Dk, Dv) (128 * ((Dk) * 2 + 16) + 3 * 64 * ((Dk) * 2 + 16 + (Dv) * 2 + 16)) /* 216 KB at most */
/* Its shapes and k's and v's dtypes (q's: attention_prefill_shape, or
 * its two parts when it is a concat read in place, cg_attention_q_concat). */
static bool attention_prefill_dims(const Gen *G, const IrNode *n) {
    if (!tune_on(G->tune->attn_prefill, true)) return false;
    const IrNode *q = n->ops[0], *k = n->ops[1], *v = n->ops[2];
    if (q->type.rank != 4 || k->type.rank != 4 || v->type.rank != 4 || cg_attention_v_in_k(G, n)) return false;
    for (int d = 2; d < 4; d++)
        if (!ir_dim_is_const(q->type.dims[d]) || !ir_dim_is_const(k->type.dims[d]) || !ir_dim_is_const(v->type.dims[d])) return false;
    int64_t Hq = q->type.dims[2].coeff, Hk = k->type.dims[2].coeff, Dk = q->type.dims[3].coeff, Dv = v->type.dims[3].coeff;
    AttnPart kp[2], vp;
    int nk;
    return Hk >= 1 && (Hk > 1 || Hq == 1) && Hq % Hk == 0 && v->type.dims[2].coeff == Hk && k->type.dims[3].coeff == Dk &&
           Dk % 16 == 0 && Dv % 16 == 0 && Dk <= 256 && Dv <= 128 && attn_kv_parts(G, n, kp, &nk, &vp);
}
static bool attention_prefill_shape(const Gen *G, const IrNode *n) {
    return attention_prefill_dims(G, n) && (cg_attention_q_concat(G, n) || G->dtype[n->ops[0]->id] == IR_DT_BF16);
}

/* The defines of one part of k (prefix K or K1) or v (V), its tensor in slot `slot`. */
static void attn_part_defines(Gen *G, const AttnPart *p, const char *pre, CgDefine *d) {
    Arena *a = G->a;
    const char *rows = p->src->op == IR_OP_KV_CACHE ? "(a.cap)" : arena_printf(a, "(%s)", cg_dim(G, p->src->type.dims[1]));
    int slot = cg_slot_value(G, p->src);
    const char *f = arena_printf(a, "%s0", strcmp(pre, "K1") == 0 ? "K1" : pre);
    d[0] = (CgDefine){arena_printf(a, "ATTN_%s", pre), arena_printf(a, "((const unsigned short *)a.t[%d])", slot)};
    d[1] = (CgDefine){arena_printf(a, "ATTN_%sT", pre), rows};
    d[2] = (CgDefine){arena_printf(a, "ATTN_%sRS", pre), arena_printf(a, "%lldLL", (long long)p->rs)};
    d[3] = (CgDefine){arena_printf(a, "ATTN_%sHS", pre), arena_printf(a, "%lldLL", (long long)p->hs)};
    d[4] = (CgDefine){arena_printf(a, "ATTN_%s", f), arena_printf(a, "%lldLL", (long long)p->c0)};
}

/* Its wgmma form (codegen/kernels/attn_prefill_wgmma.cuh: FlashAttention-3
 * style, a producer warpgroup and two consumer warpgroups of 64 query rows)
 * on Hopper for head dims it holds in shared memory: q's 128 rows and two
 * stages of 128 keys, each dim in chunks of 64 columns (its AW_SMEM).
 * DSCC_ATTN_WGMMA (read here, checked in cg_attention): 0 the mma.sync
 * form above everywhere, 1 (default) the wgmma form with the consumers'
 * ping-pong, 2 the wgmma form without it. */
#define ATTN_WGMMA_SMEM(Dk, Dv) (1024 + 2 * (((Dk) + 63) / 64) * 8192 + 2 * (((Dk) + 63) / 64 + ((Dv) + 63) / 64) * 128 * 128 + 64)
static const char *attention_prefill_wgmma(const Gen *G, int64_t Dk, int64_t Dv) {
    const char *env = G->tune->attn_wgmma;
    if (!G->wgmma || (env && strcmp(env, "0") == 0) || Dk > 192 || ATTN_WGMMA_SMEM(Dk, Dv) > 227 * 1024) return NULL;
    return env && strcmp(env, "2") == 0 ? "0" : "1";
}

static bool attention_prefill(Gen *G, const IrNode *n) {
    const IrNode *q = n->ops[0], *k = n->ops[1], *v = n->ops[2];
    if (!attention_prefill_shape(G, n)) return false;
    bool qc = cg_attention_q_concat(G, n);
    int64_t Hq = q->type.dims[2].coeff, Dk = q->type.dims[3].coeff, Dv = v->type.dims[3].coeff;
    int64_t qd0 = qc ? q->ops[0]->type.dims[3].coeff : Dk;
    int sq = cg_slot_value(G, qc ? q->ops[0] : q), sq1 = qc ? cg_slot_value(G, q->ops[1]) : sq;
    AttnPart kp[2], vp;
    int nk;
    if (!attn_kv_parts(G, n, kp, &nk, &vp)) return false;
    if (nk == 1) kp[1] = kp[0];
    int so = cg_slot_value(G, n);
    Arena *a = G->a;
    IrDim B = q->type.dims[0], S = q->type.dims[1];
    cg_mma_helpers(G);
    const char *entry = arena_printf(a, "p%d_attention_prefill", G->nphases), *pingpong = attention_prefill_wgmma(G, Dk, Dv);
    CgDefine d[30] = {{"ATTN_B", cg_dim(G, B)},
                      {"ATTN_S", cg_dim(G, S)},
                      {"ATTN_T", cg_dim(G, k->type.dims[1])},
                      {"ATTN_HQ", arena_printf(a, "%lldLL", (long long)Hq)},
                      {"ATTN_HK", arena_printf(a, "%lldLL", (long long)k->type.dims[2].coeff)},
                      {"ATTN_DK", arena_printf(a, "%lldLL", (long long)Dk)},
                      {"ATTN_DV", arena_printf(a, "%lldLL", (long long)Dv)},
                      {"ATTN_KD0", arena_printf(a, "%lldLL", (long long)(nk == 2 ? kp[0].width : Dk))},
                      {"ATTN_Q", arena_printf(a, "((const unsigned short *)a.t[%d])", sq)},
                      {"ATTN_Q1", arena_printf(a, "((const unsigned short *)a.t[%d])", sq1)},
                      {"ATTN_QD0", arena_printf(a, "%lldLL", (long long)qd0)},
                      {"ATTN_STORE(i, v)", arena_printf(a, "S%d(a, (i), (v))", so)},
                      {"ATTN_CAUSAL", ir_node_attr_bool(n, "causal", false) ? "1" : "0"},
                      {"ATTN_SCALE", arena_printf(a, "%.9ef", (double)(float)ir_node_attr_float(n, "scale", 1.0))}};
    attn_part_defines(G, &kp[0], "K", d + 14);
    attn_part_defines(G, &kp[1], "K1", d + 19);
    attn_part_defines(G, &vp, "V", d + 24);
    if (pingpong) {
        d[29] = (CgDefine){"AW_PINGPONG", pingpong};
        sb_puts(&G->decl, "// attention, d_qk <= 192: FlashAttention-3 style on wgmma, 128 query positions of one head a block, a producer\n"
                            "// warpgroup and two consumers of 64 rows, 128-key tiles in a two-stage ring, P V with P from registers\n");
        sb_puts(&G->decl, cg_kernel_instance(a, "attn_prefill_wgmma", entry, d, 30));
    } else {
        sb_puts(&G->decl, "// attention, d_qk <= 256: FlashAttention-2 style on mma m16n8k16 BF16, 128 query positions of one head a block,\n"
                            "// 64-key tiles in a three-stage cp.async ring, online softmax in registers, causal tiles past the diagonal skipped\n");
        sb_puts(&G->decl, cg_kernel_instance(a, "attn_prefill", entry, d, 29));
    }
    /* blocks: (query tile, batch row x head), the last query tile (the most keys) first */
    cg_phase(G, CG_LAUNCH_BLOCK, ir_dim_mul(B, ir_dim_const(Hq)), 1, S, 128, pingpong ? ATTN_WGMMA_SMEM(Dk, Dv) : ATTN_PREFILL_SMEM(Dk, Dv));
    G->phases[G->nphases - 1].fn = entry;
    if (pingpong) G->phases[G->nphases - 1].threads = 384; /* two consumer warpgroups and the producer */
    return true;
}

int cg_attention_through(const Gen *G, const IrNode *n, const IrNode **out, int max) {
    int c = 0;
    if (n->op != IR_OP_ATTENTION) return 0;
    if (cg_attention_v_in_k(G, n) && c < max) out[c++] = n->ops[2];
    if (cg_attention_q_concat(G, n) && c < max) out[c++] = n->ops[0];
    AttnPart kp[2], vp;
    int nk;
    if (!attention_prefill_shape(G, n) || !attn_kv_parts(G, n, kp, &nk, &vp)) return c;
    if (nk == 2 && c < max) out[c++] = n->ops[1];
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < kp[i].nthrough && c < max; j++) out[c++] = kp[i].through[j];
    for (int j = 0; j < vp.nthrough && c < max; j++) out[c++] = vp.through[j];
    return c;
}

int cg_attention_sources(const Gen *G, const IrNode *n, const IrNode **out) {
    AttnPart kp[2], vp;
    int nk;
    if (n->op != IR_OP_ATTENTION || !attention_prefill_shape(G, n) || !attn_kv_parts(G, n, kp, &nk, &vp)) return 0;
    for (int i = 0; i < nk; i++) out[i] = kp[i].src;
    out[nk] = vp.src;
    return nk + 1;
}

bool cg_attention(Gen *G, const IrNode *n) {
    const IrNode *q = n->ops[0], *k = n->ops[1], *v = n->ops[2];
    const char *v3 = G->tune->mla_v3;
    if (v3 && *v3 && strcmp(v3, "0") && strcmp(v3, "1") && strcmp(v3, "2") && strcmp(v3, "3") && strcmp(v3, "4")) {
        G->why = "DSCC_MLA_V3 must be 0 (MLA's decode kernel waits for each stage whole), 1 (chunk by chunk), 2 (the seesaw schedule), "
                 "3 (chunk by chunk, no producer warpgroup: warpgroup 1 loads) or 4 (the seesaw, no producer warpgroup)";
        return false;
    }
    /* DSCC_MLA_V3 set to a ring other than the chunk ring with its producer (MLA_V3 1, the default): MC, PP,
     * AFENCE=0 and L2HINT=1 lean on that producer and are refused there, QREG unless the ring is 3 */
    const bool v3_other = v3 && *v3 && strcmp(v3, "1");
    const char *pf = G->tune->mla_prefetch;
    if (pf && *pf && (strlen(pf) != 1 || *pf < '0' || *pf > '8')) {
        G->why = "DSCC_MLA_PREFETCH must be 0 to 8 (blocks of keys MLA's decode kernel prefetches into L2 ahead; 0: none)";
        return false;
    }
    const char *lean = G->tune->mla_lean;
    if (lean && *lean && (strlen(lean) != 1 || *lean < '0' || *lean > '6')) {
        G->why = "DSCC_MLA_LEAN must be 0 to 6 (MLA's decode kernel: 1 the producer's copies at fixed offsets, 2 and S's descriptors, "
                 "3 and no mask on whole blocks, 4 and the next S issued before P V is waited for, 5 and ex2.approx.ftz on whole "
                 "blocks, 6 and the scale folded into P's exponent; 0: none)";
        return false;
    }
    /* the BOOL switches (tune_check has passed them); the keys by TMA is on by default only on some rings, so its
     * explicit 1 is a fact of its own */
    const bool preg = tune_on(G->tune->mla_preg, false), fuse = tune_on(G->tune->mla_fuse, false);
    const bool tma_off = !tune_on(G->tune->mla_tma, true), tma_set = tune_on(G->tune->mla_tma, false);
    const bool pbf = tune_on(G->tune->mla_part_bf16, false), mc = tune_on(G->tune->mla_mc, false);
    const char *fmax = G->tune->mla_fuse_max;
    if (fmax && *fmax && (strspn(fmax, "0123456789") != strlen(fmax) || strlen(fmax) > 2 || atoi(fmax) < 2 || atoi(fmax) > 64)) {
        G->why = "DSCC_MLA_FUSE_MAX must be 2 to 64 (the most splits MLA's decode kernel merges itself; the combine kernel above)";
        return false;
    }
    const char *qreg = G->tune->mla_qreg;
    if (qreg && *qreg && strcmp(qreg, "0") && strcmp(qreg, "1") && strcmp(qreg, "2")) {
        G->why = "DSCC_MLA_QREG must be 0 (MLA's decode kernel reads all of q from shared memory, the default), 1 or 2 (q's last "
                 "chunks of 64 columns from warpgroup 0's registers)";
        return false;
    }
    if (qreg && *qreg && strcmp(qreg, "0") &&
        ((v3_other && strcmp(v3, "3")) || (lean && *lean && *lean < '2') || preg)) {
        G->why = "DSCC_MLA_QREG=1 or 2 needs the chunk ring (DSCC_MLA_V3=1, the default, or 3) at DSCC_MLA_LEAN=2 or more and not "
                 "DSCC_MLA_PREG=1";
        return false;
    }
    if (pbf && fuse) {
        G->why = "DSCC_MLA_PART_BF16=1 is the combine kernel's layout, not DSCC_MLA_FUSE=1's (its merge reads f32 parts)";
        return false;
    }
    if (mc && (tma_off || v3_other || fuse)) {
        G->why = "DSCC_MLA_MC=1 needs the keys by TMA (DSCC_MLA_TMA=1, the default) on the chunk ring with its producer "
                 "(DSCC_MLA_V3=1, the default) and not DSCC_MLA_FUSE=1";
        return false;
    }
    const char *pp = G->tune->mla_pp;
    if (pp && *pp && strcmp(pp, "0") && strcmp(pp, "1") && strcmp(pp, "2")) {
        G->why = "DSCC_MLA_PP must be 0 (MLA's decode kernel: warpgroup 0 computes S and P of every block, the default), 1 (the "
                 "ping-pong: the consumer warpgroups take a pair's blocks in turn) or 2 (and each one's own P from registers)";
        return false;
    }
    if (pp && (strcmp(pp, "1") == 0 || strcmp(pp, "2") == 0) &&
        (v3_other || (lean && *lean && *lean < '2') || fuse || mc ||
         (qreg && (strcmp(qreg, "2") == 0 || (strcmp(qreg, "1") == 0 && strcmp(pp, "2") == 0))) || preg)) {
        G->why = "DSCC_MLA_PP=1 or 2 needs the chunk ring with its producer (DSCC_MLA_V3=1, the default) at DSCC_MLA_LEAN=2 or more, and "
                 "not DSCC_MLA_FUSE=1, DSCC_MLA_MC=1, DSCC_MLA_PREG=1, DSCC_MLA_QREG=2 (=1 only with DSCC_MLA_PP=1: beside =2 it spills)";
        return false;
    }
    if (tune_on(G->tune->mla_dsm, false) && (mc || fuse)) { /* asked for explicitly: unset, the default, gives way to them */
        G->why = "DSCC_MLA_DSM=1 makes clusters of a tile's two splits: not with DSCC_MLA_MC=1 (of a batch row's two tiles) nor "
                 "DSCC_MLA_FUSE=1";
        return false;
    }
    if (!tune_on(G->tune->mla_afence, true) && (tma_off || v3_other)) {
        G->why = "DSCC_MLA_AFENCE=0 needs the keys by TMA (DSCC_MLA_TMA=1, the default) on the chunk ring with its producer "
                 "(DSCC_MLA_V3=1, the default): with cp.async the consumers' fence is the only one";
        return false;
    }
    if (tune_on(G->tune->mla_l2hint, false) && (tma_off || v3_other || mc)) {
        G->why = "DSCC_MLA_L2HINT=1 needs the keys by TMA (DSCC_MLA_TMA=1, the default) on the chunk ring with its producer "
                 "(DSCC_MLA_V3=1, the default) and not DSCC_MLA_MC=1";
        return false;
    }
    if (tune_on(G->tune->mla_xpush, false) && (!tune_on(G->tune->mla_dsm, true) || mc || fuse || (v3 && strcmp(v3, "0") == 0))) {
        G->why = "DSCC_MLA_XPUSH=1 pushes the halves of the DSM merge: not with DSCC_MLA_DSM=0, DSCC_MLA_MC=1, DSCC_MLA_FUSE=1 (no DSM "
                 "merge) nor DSCC_MLA_V3=0 (no mbarriers)";
        return false;
    }
    if (tune_on(G->tune->mla_ostage, false) && fuse) {
        G->why = "DSCC_MLA_OSTAGE=1 stages the decode kernel's own output rows: not with DSCC_MLA_FUSE=1 (its merging block "
                 "writes the output)";
        return false;
    }
    if (tma_set && v3 && (strcmp(v3, "0") == 0 || strcmp(v3, "2") == 0)) {
        G->why = "DSCC_MLA_TMA=1 needs the chunk ring (DSCC_MLA_V3=1, the default, or 3) or the seesaw without a producer (DSCC_MLA_V3=4)";
        return false;
    }
    if (q->type.rank != 4 || !ir_dim_is_const(q->type.dims[3]) || !ir_dim_is_const(v->type.dims[3]) || q->type.dims[3].coeff > 1024 ||
        v->type.dims[3].coeff > 1024) {
        G->why = "attention head dims must be constant and at most 1024";
        return false;
    }
    const char *pw = G->tune->attn_wgmma;
    if (pw && *pw && strcmp(pw, "0") && strcmp(pw, "1") && strcmp(pw, "2")) {
        G->why = "DSCC_ATTN_WGMMA must be 0 (the prefill attention on mma.sync), 1 (on wgmma, the default) or 2 (on wgmma without the ping-pong)";
        return false;
    }
    if (attention_prefill(G, n) || attention_mma(G, n)) return true;
    int64_t Dk = q->type.dims[3].coeff, Dv = v->type.dims[3].coeff;
    IrDim R = cg_prefix(&q->type, 3);
    int sq = cg_slot_value(G, q), sk = cg_slot_value(G, k), sv = cg_slot_value(G, v), so = cg_slot_value(G, n);
    cg_head_as(G, "attention_rows", "attention: one warp per query row, online softmax over the keys");
    sb_printf(&G->decl,
              "    const long long it = ITEM_WARP(); const int lane = LANE();\n"
              "    const long long S = %s, T = %s, Hq = %s, Hk = %s, Dk = %lldLL, Dv = %lldLL;\n"
              "    if (it >= %s) return;\n"
              "    const long long h = it %% Hq, s = it / Hq %% S, b = it / (Hq * S), hk = h / (Hq / Hk);\n"
              "    float q[%lld], o[%lld];\n"
              "    for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; q[t] = d < Dk ? L%d(a, it * Dk + d) : 0.0f; }\n"
              "    for (int t = 0; t < %lld; t++) o[t] = 0.0f;\n"
              "    long long last = %s;\n    if (last > T - 1) last = T - 1;\n"
              "    float m = __int_as_float(0xff800000), l = 0.0f;\n"
              "    for (long long j = 0; j <= last; j++) {\n"
              "        const long long kb = ((b * T + j) * Hk + hk) * Dk, vb = ((b * T + j) * Hk + hk) * Dv;\n"
              "        float dot = 0.0f;\n"
              "        for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; if (d < Dk) dot += q[t] * L%d(a, kb + d); }\n"
              "        dot = wsum(dot) * %.9ef;\n"
              "        const float mn = fmaxf(m, dot), corr = expf(m - mn), p = expf(dot - mn);\n"
              "        l = l * corr + p;\n"
              "        for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; if (d < Dv) o[t] = o[t] * corr + p * L%d(a, vb + d); }\n"
              "        m = mn;\n"
              "    }\n"
              "    for (int t = 0; t < %lld; t++) { const long long d = lane + 32 * t; if (d < Dv) S%d(a, it * Dv + d, o[t] / l); }\n}\n",
              cg_dim(G, q->type.dims[1]), cg_dim(G, k->type.dims[1]), cg_dim(G, q->type.dims[2]), cg_dim(G, k->type.dims[2]),
              (long long)Dk, (long long)Dv, cg_dim(G, R), (long long)(Dk + 31) / 32, (long long)(Dv + 31) / 32,
              (long long)(Dk + 31) / 32, sq, (long long)(Dv + 31) / 32, ir_node_attr_bool(n, "causal", false) ? "s + T - S" : "T - 1",
              (long long)(Dk + 31) / 32, sk, (double)(float)ir_node_attr_float(n, "scale", 1.0), (long long)(Dv + 31) / 32, sv,
              (long long)(Dv + 31) / 32, so);
    cg_phase(G, CG_LAUNCH_WARP, R, 1, ir_dim_const(1), 1, 0);
    return true;
}

