// mla_decode.cuh — DeepSeek-V3's absorbed MLA attention for decode steps on
// Hopper's wgmma: q [B, S, HQ, 576] against the shared latent cache
// [B, T, 576] (one key head), v = the first 512 columns of the same cache
// rows, out [B, S, HQ, 512]. In the spirit of FlashMLA (its design, not its
// code): the S * HQ query rows of a batch row (heads and positions
// flattened) form 64-row tiles; a block takes one tile and a balanced share
// (a split) of its keys, walked 64 at a time through a two-stage ring in
// the 128-byte swizzle. Three warpgroups, 384 threads:
//   warpgroup 2, the producer (setmaxnreg down to MLA_REGS_PRODUCER): q's
//     tile and each block of keys by cp.async into the ring; with MLA_V3
//     each of a stage's 9 chunks of 64 columns (8 KB) completes an
//     mbarrier of its own through cp.async.mbarrier.arrive.noinc, so the
//     producer never waits for its copies and S starts on the first chunk
//     while the others land (without: it waits for the whole stage, then
//     "stage full"); it waits for "stage empty" before reusing a stage;
//   warpgroup 0: S = Q K^T by 36 wgmma m64n64k16 (Q and K from shared
//     memory), the mask, the online softmax (base 2, the scale folded in),
//     P rounded to bf16 into the stage's rope columns (dead once S is
//     taken, so P has a buffer per stage) and each row's correction, then
//     "P ready"; then its half of P V;
//   both consumers (setmaxnreg up to MLA_REGS_CONSUMER):
//     O[:, 256 w .. 256 w + 255] += P V by 4 wgmma m64n256k16, V read from
//     the stage itself (MN-major, transposed by the descriptor: see
//     mla_wgmma_pv), so the latent rows are loaded once and never copied.
// Named barriers (bar.sync / bar.arrive), never a block barrier: per block
// of keys the consumers wait for "stage full" (the producer is a block
// ahead, so it is passed, not waited at), warpgroup 0's warps wait for each
// other's S (P then overwrites the rope columns S read), warpgroup 1 waits
// for "P ready" (warpgroup 0 only arrives: the one barrier between the
// consumers per block), both arrive at "stage empty"; at the end warpgroup 0's row max and sum go to
// warpgroup 1 through shared memory and one 256-thread barrier. With one
// split the block writes out = O / l; with several it writes O / l and the
// log2-sum-exp of its keys to the scratch for mla_decode_combine.cuh, and
// block 0 records the split count in the scratch's first word. The split
// count is the launch's: gridDim.x = B * ceil(S * HQ / 64) * splits, blocks
// ordered (batch row, split, row tile) so a batch row's tiles read the
// same keys at the same time (the second read from L2).
//
// Parameters (#define; expressions may use the kernel's Args `a`):
//   DSCC_ENTRY           the entry point's name
//   MLA_B, MLA_S, MLA_T  batch rows, query positions, keys (cached + new)
//   MLA_HQ               query heads
//   MLA_KT               rows of k per batch row in memory (a KV cache's capacity)
//   MLA_SQ, MLA_SQ1, MLA_QD0  q's slot, the slot of its last 576 - QD0 columns and
//                        QD0 (q stored as two tensors beside each other; one: SQ1 = SQ, QD0 = 576)
//   MLA_SK               the cache's slot (bf16, rows of 576)
//   MLA_SO, MLA_OUT_BF16 the output's slot; 1: bf16, 0: f32
//   MLA_SP               the scratch slot of the split parts (f32)
//   MLA_CAUSAL           1: query position s sees keys 0 .. s + T - S
//   MLA_SCALE            the softmax scale (a float literal)
//   MLA_V3               1 (default): each stage's 9 chunks of 64 columns land on an mbarrier
//                        of their own (cp.async.mbarrier.arrive.noinc), the producer never waits
//                        for its copies, S starts on the first chunk; 0: the stage lands as a
//                        whole (cp.async.wait_group, then the stage's named barrier); 2: the
//                        chunk ring under FlashMLA's seesaw schedule (see the consumers' loop); 3
//                        (opt-in: slower on an H100, docs/KERNELS.md): the chunk ring without a producer warpgroup, 256
//                        threads as FlashMLA's (whose consumers issue its TMA): warpgroup 1, idle
//                        while warpgroup 0 computes S and P, copies q and the first two blocks,
//                        then each block two ahead (mla_load_block, the same cp.async and chunk
//                        mbarriers) as soon as both warpgroups are done with its stage (it waits at
//                        "stage empty", which warpgroup 0 arrives at); no setmaxnreg (255 registers
//                        a thread at most); MLA_PF does not apply, MLA_FUSE is refused; 4 (opt-in:
//                        slower than 1 on an H100): the seesaw (2) without a producer warpgroup, 256 threads: each consumer
//                        refills the chunks whose last reader it is, as FlashMLA's issue their TMA
//                        (warpgroup 0 stage 0's chunks 0-3 after its P0 V0_L and stage 1's 0-3 and 8
//                        once warpgroup 1 is also done with them, "E1L"; warpgroup 1 the others), q and
//                        the first block by warpgroup 0, the second by warpgroup 1; as 3 otherwise
//   MLA_WAITG            with MLA_V3: warpgroup 0 waits for the chunks MLA_WAITG at a time (1, 3
//                        or 9; one proxy fence each wait), default 1
//   MLA_L2HINT           1 (with MLA_TMA on the producer's ring, not MLA_MC; codegen's default there since
//                        the thirteenth session): the producer's boxes of keys under an evict-first L2 policy
//                        (FlashMLA's hint): the keys stream through L2 once a tile, so they should not push
//                        out what stays; 0 (the file's default): no hint
//   MLA_AFENCE           1 (the file's default): the consumers fence the proxies (fence.proxy.async) after
//                        each wait for a chunk of keys, as the cp.async ring needs (its producer arrives
//                        without a fence of its own); 0 (only with MLA_TMA on the producer's ring, MLA_V3 1;
//                        codegen's default there since the thirteenth session): none there, since the TMA's writes are the async proxy's, as are wgmma's reads, and
//                        the rows and q the producer copies by cp.async are fenced by their writers before
//                        the producer arrives (CUTLASS's sm90 TMA pipelines and FlashMLA go from the wait
//                        straight to wgmma)
//   MLA_OSTAGE           1 (bf16 output, not MLA_FUSE; codegen's default there since the fourteenth session):
//                        the output goes out through shared memory, each warp its own 16 rows (in the key
//                        stages, free once the loops are done): the accumulators' pairs written
//                        into a stage of rows 528 bytes apart (no bank conflicts), then each row's 512 bytes
//                        stored by the warp at once, 16 bytes a lane; 0 (the file's default): each thread stores its
//                        pairs of 4 bytes straight to the output, every 32-byte sector in two halves (the same bits;
//                        timings in docs/KERNELS.md)
//   MLA_PF               with MLA_V3: the producer asks L2 for the block of keys MLA_PF blocks
//                        ahead of the one it loads (cp.async.bulk.prefetch.L2, the block's rows
//                        being contiguous), so the ring's copies find it there; 0: none (default:
//                        slower on an H100, docs/KERNELS.md)
//   MLA_LEAN             fewer instructions a block of keys (each level includes those below; same
//                        arithmetic): 1 with MLA_V3 1, the producer copies whole blocks after the
//                        first at offsets fixed at compile time; 2 S's wgmma from precomputed
//                        descriptor words (mla_wgmma_sd); 3 no mask on whole blocks; 4
//                        warpgroup 0 issues the next block's S before waiting for its P V (it
//                        waits, and releases the stage, after S's first chunk); 5 (default) and whole
//                        blocks take P = ex2.approx.ftz (no select for masked columns; a P below
//                        2^-126 becomes 0, which exp2f keeps as a denormal); 6 (opt-in: the rounding
//                        changes) the row max over S unscaled, four partial maxima a row, and on
//                        whole blocks P = ex2(S scale - m) by one FFMA (one multiply fewer a score); 0: none
//   MLA_LAZY             1 (default): a row's max moves only when a block's exceeds it by more
//                        than 8 (base 2; P <= 2^8), so O's rescale is skipped on most blocks; 0: exact
//   MLA_FUSE             1 (opt-in: slower on an H100, below): with several splits the merge is the kernel's own: the
//                        block of a (batch row, row tile) that takes the last ticket (an atomic counter
//                        of the tile in the module's memory, MLA_TICKETS, back to 0 once used) waits for
//                        the others' parts, merges them with its own output (held in registers, never
//                        written) in mla_decode_combine.cuh's order and arithmetic, and writes out; the
//                        others write their parts as below; no second launch. Only up to MLA_FUSE_MAX
//                        splits (default 4): the merging block reads the nsp - 1 other parts alone, at
//                        one SM's share of L2's bandwidth (batch 1 at 4,097 keys: 33 splits, 4 MB a
//                        tile), where the combine kernel spreads them over the GPU; above, as with 0.
//                        0 (default): every split writes its part, the combine kernel
//                        (mla_decode_combine.cuh) merges them (1's merge code slows the main loop even
//                        where it does not run: docs/KERNELS.md)
//   MLA_PREG             1 (opt-in): the chunk ring's warpgroup 0 issues its P V with P from registers
//                        (wgmma's A operand: the same bf16 values), before it stores P for warpgroup 1,
//                        so its P V starts earlier and reads no P from shared memory; 0 (default): from
//                        shared memory after the stores
//   MLA_TMA              1 (codegen's default where the keys are a KV cache, MLA_V3 1, 3 or 4; DSCC_MLA_TMA=0:
//                        cp.async; the file's own default 0): the loading warpgroup's first thread brings each whole
//                        block of keys by TMA, 9 boxes of 64 keys x 64 columns (128 bytes) through the
//                        tensor map at MLA_KMAP (a 2-d UINT8 map over the cache's rows of 1,152 bytes, B x
//                        KT of them, box 64 rows x 128 bytes, the 128-byte swizzle: rt_cuda_tensor_map_2d),
//                        chunk c of the stage on its mbarrier by complete_tx (one arrival a phase:
//                        arrive.expect_tx); q, and a block that ends past T (its rows from T on as zeros),
//                        by the warpgroup's cp.async as before, which it waits for, then one thread arrives
//                        (MLA_V3 1: q on the barrier of its own, 18, that warpgroup 0 waits at before the
//                        first S; 3: q with the first block, all by cp.async; 4: q on 18); 0: cp.async
//   MLA_KMAP             with MLA_TMA: the tensor map's address (default a.t[4])
//   MLA_PART_BF16        1 (opt-in until timed; not with MLA_FUSE): with several splits each split's normalised
//                        output goes to the scratch as bf16 (mla_decode_combine.cuh with the same parameter reads it
//                        so), half of the f32 parts' bytes written at the kernel's end and read by the combine (16.8 MB
//                        -> 8.4 MB at batch 32): one more rounding of each part to bf16 (2^-9 relative) before the
//                        merge, whose output is rounded to bf16 anyway; the lse stay f32 where they were; 0: f32
//   MLA_QREG             0 (default), 1 or 2 (opt-in until timed; the chunk ring, MLA_V3 1 or 3, MLA_LEAN >= 2):
//                        warpgroup 0 keeps q's last MLA_QREG chunks of 64 columns (1: the rope chunk, as FlashMLA's
//                        kernel; 16 registers a chunk) in registers, loaded once q has landed, and S's wgmma of those
//                        chunks take A from them (mla_wgmma_sr): 8 KB fewer of shared memory's reads a block a chunk
//                        (S's 36 wgmma m64n64k16 otherwise read 2 KB of q and 2 KB of keys per 32 tensor cycles: the
//                        whole 128 bytes a cycle shared memory gives); 2 moves 16 registers a thread from the producer
//                        to each consumer (MLA_REGS_*); not with MLA_PREG (ptxas serializes the wgmma for registers); with
//                        MLA_PP 1 only 1: each consumer keeps the rope chunk for its own S (MLA_PP 2 beside it spills and
//                        serializes the wgmma, C7512, at any register split)
//   MLA_MC               1 (opt-in until timed; MLA_TMA 1 with the producer, MLA_V3 1, not MLA_FUSE; query tiles
//                        in pairs of one batch row and split: HQ a multiple of 128): the two row tiles of a batch
//                        row (blocks 2k and 2k + 1: the same keys) run as a cluster of 2 CTAs and each whole
//                        block's 9 boxes are split between their producers, each box multicast into both CTAs'
//                        stage (chunk c by the CTA of rank (c + jb) % 2), so L2 sends each block once a pair, not
//                        twice; each CTA's producer still expects its stage's 9 x 8 KB on its own chunk barriers, and
//                        refills a stage only once both CTAs' consumers are done with it (its "stage empty", then an
//                        arrival on the other CTA's mbarrier 19 + stage and a wait on its own); q and a block that
//                        ends past T by each CTA's cp.async as with MLA_TMA; 0 (default): each CTA loads its own
//   MLA_PP               0 (default), 1 or 2 (opt-in until timed; the chunk ring with its producer, MLA_V3 1, MLA_LEAN >= 2,
//                        not MLA_FUSE, MLA_MC, MLA_PREG): the consumers' ping-pong over pairs of blocks (b0 in stage 0,
//                        b1 in stage 1): warpgroup 0 computes S and P of b0, warpgroup 1 those of b1, its S issued only
//                        once warpgroup 0's is ("SI"), so each softmax runs under the other's wgmma; the chunk ring's
//                        arithmetic (the same P, O in the same order), the rows' sums in two shares; with MLA_TMA stage 0
//                        goes back in two parts (chunks 0-3 after warpgroup 0's P V); 2: and each warpgroup's P V of its
//                        own block with P from registers (mla_pv_own); with MLA_QREG 1 (MLA_PP 1 only) each consumer
//                        keeps q's rope chunk in registers for its S. See the consumers' loop and docs/KERNELS.md
//   MLA_DSM              1 (DSCC_MLA_DSM, codegen's default; not MLA_MC, MLA_FUSE): blocks ordered (batch row, row tile, split) and
//                        run as clusters of 2 CTAs (the grid even: HQ a multiple of 128); at 2 splits a cluster is a
//                        tile's two splits and they merge through distributed shared memory (each CTA half of the
//                        columns: warpgroup `split` keeps its half and adds the other CTA's, which that CTA's other
//                        warpgroup leaves normalised in its q tile), no parts, no combine launch; at other split
//                        counts as 0 (the parts and the combine)
//   MLA_XPUSH            1 (DSCC_MLA_XPUSH, codegen's default with MLA_DSM since the fifteenth session; MLA_V3 1 or
//                        more): the DSM merge's halves pushed, not pulled: a CTA whose consumers are past their last S tells the other one its q
//                        tile is free (a remote arrival on mbarrier 19), and the other CTA's handing warpgroup writes
//                        its normalised half and lse straight into it from registers (st.async, 65,792 bytes
//                        completing on the receiver's mbarrier 20); the merging warpgroup waits for its own
//                        barrier 20 and reads its q tile locally. No cluster barrier at the merge (one at the
//                        start, for the barriers' initialisation), no remote loads; the same arithmetic and bits
//                        as 0 (the half written into the CTA's own q tile, two cluster barriers, remote loads);
//                        2 (opt-in until timed): in the chunk ring (not MLA_PP, not the seesaw) the q tile is given
//                        free as soon as warpgroup 0 has its split's last S (only S reads q), so the other CTA's half
//                        lands while this one runs its last softmax and P V; the same bits
//   MLA_IN_MODULE        defined when the file is part of a generated module (its prelude has Args)
#ifndef MLA_B
#define MLA_B (a.sym[0])
#endif
#ifndef MLA_S
#define MLA_S 1LL
#endif
#ifndef MLA_T
#define MLA_T (a.len + 1)
#endif
#ifndef MLA_HQ
#define MLA_HQ 128LL
#endif
#ifndef MLA_KT
#define MLA_KT (a.cap)
#endif
#ifndef MLA_SQ
#define MLA_SQ 0
#endif
#ifndef MLA_SQ1
#define MLA_SQ1 MLA_SQ
#endif
#ifndef MLA_QD0
#define MLA_QD0 576
#endif
#ifndef MLA_SK
#define MLA_SK 1
#endif
#ifndef MLA_SO
#define MLA_SO 2
#endif
#ifndef MLA_OUT_BF16
#define MLA_OUT_BF16 1
#endif
#ifndef MLA_SP
#define MLA_SP 3
#endif
#ifndef MLA_CAUSAL
#define MLA_CAUSAL 1
#endif
#ifndef MLA_SCALE
#define MLA_SCALE 0.1352337788f
#endif
#ifndef MLA_V3
#define MLA_V3 1
#endif
#ifndef MLA_PF
#define MLA_PF 0
#endif
#ifndef MLA_WAITG
#define MLA_WAITG 1
#endif
#ifndef MLA_LEAN
#define MLA_LEAN 5
#endif
#ifndef MLA_LAZY
#define MLA_LAZY 1
#endif
#ifndef MLA_FUSE
#define MLA_FUSE 0
#endif
#ifndef MLA_FUSE_MAX
#define MLA_FUSE_MAX 4
#endif
#ifndef MLA_PREG
#define MLA_PREG 0
#endif
#ifndef MLA_TMA
#define MLA_TMA 0
#endif
#ifndef MLA_MC
#define MLA_MC 0
#endif
#ifndef MLA_QREG
#define MLA_QREG 0
#endif
#ifndef MLA_PART_BF16
#define MLA_PART_BF16 0
#endif
#ifndef MLA_PP
#define MLA_PP 0
#endif
#ifndef MLA_DSM
#define MLA_DSM 0
#endif
#ifndef MLA_AFENCE
#define MLA_AFENCE 1
#endif
#ifndef MLA_L2HINT
#define MLA_L2HINT 0
#endif
#ifndef MLA_OSTAGE
#define MLA_OSTAGE 0
#endif
#ifndef MLA_XPUSH
#define MLA_XPUSH 0
#endif
// the producer's box of keys (MLA_L2HINT above: 1, under an evict-first L2 policy)
#if MLA_L2HINT
#define MLA_TMA_BOX(dst, map, bar, c0, c1) hp_tma_2d_hint(dst, map, bar, c0, c1, hp_policy_evict_first())
#else
#define MLA_TMA_BOX(dst, map, bar, c0, c1) hp_tma_2d(dst, map, bar, c0, c1)
#endif
// whether the consumers fence the proxies after a wait for keys (MLA_AFENCE above)
#define MLA_CFENCE_ON (MLA_AFENCE || !MLA_TMA || MLA_V3 != 1)
#ifndef MLA_KMAP
#define MLA_KMAP ((const void *)a.t[4])
#endif
// bench_mla --stamps (MLA_STAMPS: the argument slot of 16 words a block): a block's own time stamps, by its thread 0
// (warpgroup 1's thread 128 for [4]): [0] the globaltimer and [1] clock64 at entry; clock64 at [2] warpgroup 0's first S
// taken, [3] its loop done, [4] warpgroup 1's loop done, [5] the rows' sums, [6] the exit; [7] the globaltimer at the
// exit; MLA_DSM's merge also [8] past its first cluster barrier (the partner's half in) and [9] its own half out (by
// the merging warpgroup's first thread); the chunk ring's S (_ring_s) also [10] warpgroup 0 past its wait for q and
// [11] past its wait for the first block's first chunk of keys (MLA_KSTAMP: from the block's state). Only the chunk ring's loops stamp [2]-[4] (the ping-pong and the seesaw
// leave them 0), and MLA_FUSE's merging block leaves [6]-[7] 0. Without MLA_STAMPS nothing of it is compiled.
#ifdef MLA_STAMPS
#define MLA_STAMP(i, v) (((unsigned long long *)a.t[MLA_STAMPS])[blockIdx.x * 16 + (i)] = (v))
#define MLA_KSTAMP(k, on, i) ((on) ? (void)((k).stamps[i] = hp_clock64()) : (void)0)
#else
#define MLA_STAMP(i, v) ((void)0)
#define MLA_KSTAMP(k, on, i) ((void)0)
#endif
#ifndef MLA_IN_MODULE
// compiled alone (test_codegen): the generated prelude's argument block
typedef unsigned long long u64;
struct Args { u64 t[64]; long long sym[8]; long long cap, len; u64 err; long long tag; };
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
#define DSCC_PDL_WAIT() pdl_wait()
#define DSCC_PDL_LAUNCH_DEPENDENTS() pdl_launch_dependents()
#endif

#include "hopper.cuh"
// the constants, named barriers and device helpers (guarded by MLA_DECODE_HELPERS)
#include "mla_decode_helpers.cuh"

#if MLA_TMA && (MLA_V3 == 0 || MLA_V3 == 2)
#error "MLA_TMA needs the chunk ring (MLA_V3 1 or 3) or the seesaw without a producer (4)"
#endif
#if MLA_MC && (!MLA_TMA || MLA_V3 != 1 || MLA_FUSE)
#error "MLA_MC needs the keys by TMA in the chunk ring with its producer (MLA_TMA 1, MLA_V3 1) and not MLA_FUSE"
#endif
#if MLA_QREG < 0 || MLA_QREG > 2 || (MLA_QREG && ((MLA_V3 != 1 && MLA_V3 != 3) || MLA_LEAN < 2 || MLA_PREG || (MLA_PP && (MLA_QREG != 1 || MLA_PP != 1))))
#error "MLA_QREG must be 0 to 2, and above 0 needs the chunk ring (MLA_V3 1 or 3) at MLA_LEAN 2 or more, without MLA_PREG; with MLA_PP only 1 at MLA_PP 1 (2 spills and serializes the wgmma, C7512)"
#endif
#if MLA_PP && (MLA_PP > 2 || MLA_V3 != 1 || MLA_LEAN < 2 || MLA_FUSE || MLA_MC || MLA_QREG > 1 || MLA_PREG)
#error "MLA_PP must be 0 to 2, and above 0 needs the chunk ring with its producer (MLA_V3 1) at MLA_LEAN 2 or more, without MLA_FUSE, MLA_MC, MLA_QREG 2, MLA_PREG"
#endif
#if MLA_DSM && (MLA_MC || MLA_FUSE)
#error "MLA_DSM's clusters are a tile's two splits: not with MLA_MC (a batch row's two tiles) nor MLA_FUSE"
#endif
#if MLA_XPUSH && (MLA_XPUSH > 2 || !MLA_DSM || !MLA_V3)
#error "MLA_XPUSH (1 or 2) pushes MLA_DSM's halves onto the ring's mbarriers: MLA_DSM 1 with MLA_V3 1 or more"
#endif
// MLA_XPUSH 2's early "q tile free": where warpgroup 0 alone computes S (the chunk ring's loops)
#define MLA_XEARLY (MLA_XPUSH == 2 && !MLA_SEESAW && !MLA_PP)
#if MLA_PART_BF16 && MLA_FUSE
#error "MLA_PART_BF16 is the combine kernel's layout: not with MLA_FUSE (whose merge reads f32 parts)"
#endif
#if MLA_V3 >= 3 && MLA_FUSE
#error "MLA_FUSE needs the producer warpgroup (it takes the ticket): MLA_V3 0 to 2"
#endif
#if MLA_FUSE
// per (batch row, row tile): its blocks' tickets (low 16 bits) and the parts written (high 16 bits);
// the block that merges sets it back to 0, so it is 0 at every launch (the module's memory starts at 0)
__device__ unsigned MLA_CAT(DSCC_ENTRY, _ticket)[MLA_TICKETS];
#endif

// The kernel's phases, each a __device__ __forceinline__ function of this instance (MLA_FN(_name): one set per
// entry, as they read its parameters), sharing the block's state through MlaBlk (mla_decode_helpers.cuh) and the
// accumulators (o, m, ls) through pointers:
//   the setup (in the entry) but the chunk barriers' _init_full;
//   the producer: by cp.async _produce_chunks (MLA_V3 1, 2) or _produce_stages (0); with MLA_TMA (the default) the
//     entry's loop, its boxes _tma_boxes; MLA_FUSE's ticket _take_ticket;
//   the consumers: the seesaw's _seesaw (_seesaw0, _seesaw1 a pair of blocks); the chunk ring's loops in the
//     entry, warpgroup 0's S _ring_s and P V _ring_pv0 (MLA_PREG: _ring_preg), warpgroup 1's P V _ring_pv1;
//     MLA_PP's loops in the entry, warpgroup 1's softmax _pp_p1 and P1 V1_R _pp_pv1;
//   the end: _sums (the rows' sums), then MLA_FUSE's merge _fuse (_fuse_weights); MLA_DSM's cluster merge and the
//     plain write stay in the entry (as functions they changed MLA_DSM's SASS, the coming default).
// What stays in the entry stays because the compiled code moves otherwise: NVVM simplifies a function on its own
// before it inlines it, and each seam tried in the loops, the TMA producer's copies and warpgroup 0's softmax and
// P stores changed the default form's SASS (MLA_PP's loops as functions spilled 16 bytes at MLA_PP 2), so the
// default's cubin stays the same bytes (docs/KERNELS.md says how that is checked).

#if MLA_V3
// The chunk barriers initialized by the block's first thread (tid), then visible to every thread of the block
// (MLA_MC: of the cluster, before any box or arrival of the other CTA reaches them; MLA_XPUSH: so too where the
// tile's two splits merge, merge 1: nsp 2, the same in both CTAs of a cluster)
__device__ __forceinline__ void MLA_FN(_init_full)(unsigned long long *full, int tid, bool merge) {
    if (tid == 0) {
        // 18: q's (the seesaw's, MLA_TMA's); MLA_MC: 19 + s, the other CTA's consumers done with stage s (its producer arrives)
        for (int i = 0; i < 19 + 2 * MLA_MC; i++) hp_mbar_init(full + i, MLA_TMA ? 1 : 128);
#if MLA_XPUSH
        // 19: the other CTA's q tile free (its thread 0 arrives); 20: the other CTA's half and lse landed in this
        // CTA's q tile (its st.async complete 32 x 128 x 16 + 64 x 4 bytes on this phase)
        hp_mbar_init(full + 19, 1);
        hp_mbar_init(full + 20, 1);
        hp_mbar_expect_tx(full + 20, 32 * 128 * 16 + 64 * 4);
#endif
        hp_mbar_fence_init();
    }
#if MLA_MC
    hp_cluster_sync();
#elif MLA_XPUSH
    if (merge) hp_cluster_sync();
    else __syncthreads();
#else
    (void)merge;
    __syncthreads();
#endif
}
#endif

#if MLA_V3 < 3 && !MLA_TMA // (3, 4: no producer warpgroup; MLA_TMA's is the kernel's own)
#if MLA_V3
// The producer of the chunk ring (MLA_V3 1) and the seesaw (2) by cp.async: chunk c of a stage, 64 rows x 128
// bytes, thread pt copies the 16-byte unit pu of rows pr + 16 i, and the chunk's copies complete its mbarrier
// (cp.async.mbarrier.arrive.noinc): the producer never waits for its copies, only for a stage's readers.
__device__ __forceinline__ void MLA_FN(_produce_chunks)(const Args &a, const MlaBlk &k, int pt) {
    const unsigned short *Q0 = (const unsigned short *)a.t[MLA_SQ], *Q1 = (const unsigned short *)a.t[MLA_SQ1];
    const unsigned short *Kg = (const unsigned short *)a.t[MLA_SK];
    const long long jb0 = k.jb0, jb1 = k.jb1, T = k.T, bb = k.bb, rows = k.rows, r0 = k.r0;
    unsigned long long *const full = k.full;
    const int pr = pt >> 3, pu = pt & 7;
    if (MLA_V3 == 2) { // the seesaw: q first, on a barrier of its own (both warpgroups compute S)
        for (int kc = pu; kc < 72; kc += 8) mla_copy_q(k.Qs, Q0, Q1, MLA_QD0, bb * rows + r0, r0, rows, pr, kc);
        hp_cp_arrive(full + 18);
    }
    for (long long jb = jb0; jb < jb1; jb++) {
        const int st = (int)((jb - jb0) & 1);
        if (MLA_V3 == 1 && jb - jb0 >= 2) hp_bar_sync(MLA_BAR_EMPTY + st, MLA_THREADS); // the consumers are done with block jb - 2
        unsigned char *Kd = k.Ks + st * MLA_TILE;
        if (MLA_PF > 0 && pt == 0) // L2 prefetches: blocks jb0 + 2 .. jb0 + MLA_PF at the start, then jb + MLA_PF
            for (long long p = jb == jb0 ? jb0 + 2 : jb + MLA_PF; p <= jb + MLA_PF && p < jb1; p++) {
                const long long n = T - p * 64 < 64 ? T - p * 64 : 64; // the block's keys (>= 1: p < jb1)
                mla_prefetch_l2(Kg + (bb * k.KT + p * 64) * 576, (unsigned)(n * 1152));
            }
#if MLA_LEAN >= 1
        // a whole block (after the first, which brings q's chunks along, but in the seesaw):
        // the copies at offsets from this thread's row and unit, fixed but for the chunk
        if ((MLA_V3 == 2 || jb != jb0) && jb * 64 + 64 <= T) {
            const unsigned short *const src = Kg + ((bb * k.KT + jb * 64 + pr) * 576 + pu * 8); // row pr, unit pu of chunk 0
            unsigned char *const dst = Kd + pr * 128 + ((pu ^ (pr & 7)) << 4); // mla_swz(pr + 16 i, 128 c + 16 pu) - 8192 c - 2048 i
#pragma unroll
            for (int kk = 0; kk < 9; kk++) {
                const int c = MLA_V3 == 2 && st == 1 ? (kk < 4 ? kk + 4 : kk < 8 ? kk - 4 : 8) : kk; // the seesaw's order, as below
                if (MLA_V3 == 2 && jb - jb0 >= 2 && (kk == 0 || kk == 4))
                    hp_bar_sync(st == 0 ? (kk == 0 ? MLA_BAR_E0L : MLA_BAR_E0R) : (kk == 0 ? MLA_BAR_E1R : MLA_BAR_E1L),
                                 st == 1 && kk == 4 ? MLA_THREADS : 256);
#pragma unroll
                for (int i = 0; i < 4; i++) hp_cp16(dst + c * 8192 + i * 2048, src + (i * 16 * 576 + c * 64), true);
                hp_cp_arrive(full + st * 9 + c);
            }
            continue;
        }
#endif
        for (int kk = 0; kk < 9; kk++) {
            // the seesaw's stage 1 is released chunks 4-7 first, so it is filled in that order
            const int c = MLA_V3 == 2 && st == 1 ? (kk < 4 ? kk + 4 : kk < 8 ? kk - 4 : 8) : kk;
            if (MLA_V3 == 2 && jb - jb0 >= 2 && (kk == 0 || kk == 4)) // the readers of these chunks are done with block jb - 2
                hp_bar_sync(st == 0 ? (kk == 0 ? MLA_BAR_E0L : MLA_BAR_E0R) : (kk == 0 ? MLA_BAR_E1R : MLA_BAR_E1L),
                             st == 1 && kk == 4 ? MLA_THREADS : 256);
            const int kc = c * 8 + pu; // the unit's 16 bytes among the row's 72
            if (MLA_V3 == 1 && jb == jb0) // q's chunk with the first block's, on the same barrier
                mla_copy_q(k.Qs, Q0, Q1, MLA_QD0, bb * rows + r0, r0, rows, pr, kc);
            mla_copy_rows(Kd, Kg, bb * k.KT, jb, T, pr, kc);
            hp_cp_arrive(full + st * 9 + c);
        }
    }
    mla_cp_wait0(); // the last copies land before the thread ends
}
#else
// The producer of whole stages (MLA_V3 0): q with the first block, each block of keys into stage (its index) % 2 by
// cp.async, waited for, then "stage full" (a named barrier the consumers sync at).
__device__ __forceinline__ void MLA_FN(_produce_stages)(const Args &a, const MlaBlk &k, int pt) {
    const unsigned short *Q0 = (const unsigned short *)a.t[MLA_SQ], *Q1 = (const unsigned short *)a.t[MLA_SQ1];
    const unsigned short *Kg = (const unsigned short *)a.t[MLA_SK];
    const long long jb0 = k.jb0, T = k.T, rows = k.rows, r0 = k.r0;
    for (long long jb = jb0; jb < k.jb1; jb++) {
        const int st = (int)((jb - jb0) & 1);
        if (jb - jb0 >= 2) hp_bar_sync(MLA_BAR_EMPTY + st, MLA_THREADS); // the consumers are done with block jb - 2
        if (jb == jb0)
            for (int c = pt; c < 64 * 72; c += 128) { // q: 72 16-byte units a row, zeros past the step's rows
                const int i = c / 72, kc = c % 72;
                const bool ok = r0 + i < rows;
                const long long qr = k.bb * rows + r0 + i;
                const unsigned short *src = kc * 8 < MLA_QD0 ? Q0 + (qr * MLA_QD0 + kc * 8) : Q1 + (qr * (576 - MLA_QD0) + kc * 8 - MLA_QD0);
                hp_cp16(k.Qs + mla_swz(i, kc * 16), ok ? src : Q0, ok);
            }
        unsigned char *Kd = k.Ks + st * MLA_TILE;
        for (int c = pt; c < 64 * 72; c += 128) { // keys jb * 64 .., zeros past T
            const int jj = c / 72, kc = c % 72;
            const long long j = jb * 64 + jj;
            const bool ok = j < T;
            hp_cp16(Kd + mla_swz(jj, kc * 16), ok ? Kg + ((k.bb * k.KT + j) * 576 + kc * 8) : Kg, ok);
        }
        mla_cp_commit();
        mla_cp_wait0();
        hp_fence_async();
        hp_bar_arrive(MLA_BAR_FULL + st, MLA_THREADS);
    }
}
#endif

#endif

// MLA_FUSE: the producer's first warp takes the block's ticket (pt: the thread's index in the producer), for the
// consumers at the end (their MLA_BAR_END counts its 32 threads)
__device__ __forceinline__ void MLA_FN(_take_ticket)(const MlaBlk &k, int pt) {
#if MLA_FUSE
    if (MLA_FUSED(k.nsp) && pt < 32) {
        if (pt == 0) *k.s_tick = atomicAdd(MLA_CAT(DSCC_ENTRY, _ticket) + k.bb * k.nrb + k.rt, 1u);
        __syncwarp();
        hp_bar_arrive(MLA_BAR_END, 288);
    }
#endif
}

#if MLA_V3 < 3 && MLA_TMA
// The producer with MLA_TMA, a whole block's boxes into stage st: its first thread expects each chunk's 8 KB on the
// chunk's mbarrier and issues the box (MLA_MC: half the boxes, each multicast into both CTAs' stage, once the other
// CTA's consumers are done with it too; MLA_PP's stage 0 in two parts, chunks 4-8 once both consumers are done).
__device__ __forceinline__ void MLA_FN(_tma_boxes)(const MlaBlk &k, const void *kmap, long long jb, int st, bool whole, int pt) {
    unsigned char *const Kd = k.Ks + st * MLA_TILE;
    unsigned long long *const fb = k.full + st * 9;
    const long long jb0 = k.jb0, bb = k.bb, KT = k.KT;
#if MLA_MC
    if (whole && pt == 0) { // half the boxes, each into both CTAs' stage (the other CTA's producer the rest)
        const unsigned rank = hp_cluster_rank();
        if (jb - jb0 >= 2) { // the other CTA's consumers are done with the stage too
            hp_mbar_arrive_cluster(k.full + 19 + st, rank ^ 1u);
            hp_mbar_wait(k.full + 19 + st, (unsigned)((jb - jb0 - 2) >> 1) & 1u);
        }
#pragma unroll
        for (int c = 0; c < 9; c++) hp_mbar_expect_tx(fb + c, 8192);
#pragma unroll
        for (int c = 0; c < 9; c++)
            if ((unsigned)((c + jb) & 1) == rank) hp_tma_2d_mc(Kd + c * 8192, kmap, fb + c, c * 128, (int)(bb * KT + jb * 64), 3);
    }
#else
    // (MLA_PP's stage 0 comes back in two parts: chunks 0-3 once warpgroup 0 is done, the rest once both are)
    const bool part = MLA_PP && st == 0 && jb - jb0 >= 2;
    if (whole && pt == 0)
#pragma unroll
        for (int c = 0; c < 9; c++) {
            if (part && c == 4) break;
            hp_mbar_expect_tx(fb + c, 8192);
            MLA_TMA_BOX(Kd + c * 8192, kmap, fb + c, c * 128, (int)(bb * KT + jb * 64));
        }
    if (part) {
        hp_bar_sync(MLA_BAR_PP_E0R, MLA_THREADS); // both consumers done with stage 0's chunks 4-8
        if (whole && pt == 0)
#pragma unroll
            for (int c = 4; c < 9; c++) {
                hp_mbar_expect_tx(fb + c, 8192);
                MLA_TMA_BOX(Kd + c * 8192, kmap, fb + c, c * 128, (int)(bb * KT + jb * 64));
            }
    }
#endif
}

#endif

#if !MLA_SEESAW && !MLA_PP
// Warpgroup 0: S = Q K^T of block jb (stage st at Kc) into s, each chunk's wgmma once the chunk landed (MLA_V3: its
// mbarrier; 0: the whole stage), q's last MLA_QREG chunks from qa; with MLA_LEAN 4 the P V of the block before
// (still in flight into o) waited for behind S's first chunk. Returns once every warp of the warpgroup has its S.
__device__ __forceinline__ void MLA_FN(_ring_s)(const MlaBlk &k, long long jb, int st, const unsigned char *Kc, unsigned (*qa)[4][4],
                                                float *o, float *s) {
    const long long jb0 = k.jb0, jb1 = k.jb1;
#if MLA_V3
    unsigned long long *const fb = k.full + st * 9;
    const unsigned par = (unsigned)((jb - jb0) >> 1) & 1u; // the stage's use, mod 2
#else
    hp_bar_sync(MLA_BAR_FULL + st, MLA_THREADS); // the keys (and q) landed
#endif
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.0f;
#if MLA_LEAN >= 2
    // the low words of S's descriptors at chunk 0 (mla_wgmma_sd): q's tile and this stage
    const unsigned qlo = mla_desc_lo(k.Qs), klo = mla_desc_lo(Kc);
#endif
#if MLA_TMA && MLA_V3 == 1
    if (jb == jb0) hp_mbar_wait(k.full + 18, 0); // q landed (the producer's keys by TMA, q apart; MLA_V3 3: with the first block)
#endif
    MLA_KSTAMP(k, jb == jb0 && k.tid == 0, 10);
    hp_wg_fence();
#pragma unroll
    for (int c = 0; c < 9; c++) {
#if MLA_V3
        if (c % MLA_WAITG == 0) { // chunks c .. c + MLA_WAITG - 1 landed (the wgmma of those before run meanwhile)
#pragma unroll
            for (int g = c; g < c + MLA_WAITG && g < 9; g++) hp_mbar_wait(fb + g, par);
            MLA_KSTAMP(k, c == 0 && jb == jb0 && k.tid == 0, 11);
            if (MLA_CFENCE_ON) hp_fence_async();
            hp_wg_fence();
        }
#endif
#if MLA_QREG
        if (c >= 9 - MLA_QREG) { // this chunk of q from registers
#pragma unroll
            for (int kk = 0; kk < 4; kk++) mla_wgmma_sr(s, qa[c - (9 - MLA_QREG)][kk], klo + c * 512 + kk * 2);
            continue;
        }
#endif
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#if MLA_LEAN >= 2
            mla_wgmma_sd(s, qlo + c * 512 + kk * 2, klo + c * 512 + kk * 2, c | kk);
#else
            mla_wgmma_s(s, k.Qs + c * 8192 + kk * 32, Kc + c * 8192 + kk * 32, c | kk);
#endif
#if MLA_LEAN >= 4
        if (c == 0) { // this warpgroup's P V of the block before ran ahead of S's first chunk: done now (on every
                      // block, so that no path skips the wait; wait_group 0, not 1, which would leave S's first
                      // chunk running on, but ptxas then takes o for pending and serializes every wgmma)
            hp_wg_commit();
            hp_wg_wait0();
            mla_hold128(o);
            if (jb > jb0 && jb + 1 < jb1) hp_bar_arrive(MLA_BAR_EMPTY + (st ^ 1), MLA_THREADS); // the producer may refill its stage
            hp_wg_fence(); // S's next wgmma after the wait
        }
#endif
    }
    hp_wg_commit();
    hp_wg_wait0();
    hp_hold32(s);
    // the other warps' S may still read the rope columns P overwrites: a wait ends only the warp's own
    hp_bar_sync(MLA_BAR_S, 128);
}

// Warpgroup 0, once P of the block in stage Kc (at Pc) is out for warpgroup 1: O scaled by the rows' corrections
// (unless the whole warp's rows kept their max), then O_L += P V_L issued (waited for by the caller)
__device__ __forceinline__ void MLA_FN(_ring_pv0)(const unsigned char *Kc, const unsigned char *Pc, const float *corr, float *o) {
    if (!__all_sync(0xffffffffu, corr[0] == 1.0f && corr[1] == 1.0f)) // the warp's rows kept their max: nothing to scale
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] *= corr[(i >> 1) & 1];
    hp_wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) mla_wgmma_pv(o, Pc + kk * 32, Kc + kk * 2048, 8192, 1024, 1);
    hp_wg_commit();
}

#if MLA_PREG
// MLA_PREG, warpgroup 0 after the softmax of the block in stage st (Kc, P at Pc): O scaled by the rows' corrections,
// O_L += P V_L issued with P from registers (A's fragment is S's accumulator layout, as bf16 pairs), then P and the
// corrections stored for warpgroup 1 ("P ready")
__device__ __forceinline__ void MLA_FN(_ring_preg)(const MlaBlk &k, int st, const unsigned char *Kc, unsigned char *Pc, const float *s,
                                                   const float *corr, float *o) {
    const int ra = k.ra, q4 = k.q4;
    unsigned pa[16];
#pragma unroll
    for (int j = 0; j < 16; j++) pa[j] = hp_bf16x2(s[2 * j], s[2 * j + 1]);
    if (!__all_sync(0xffffffffu, corr[0] == 1.0f && corr[1] == 1.0f)) // the warp's rows kept their max: nothing to scale
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] *= corr[(i >> 1) & 1];
    hp_wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) mla_wgmma_pv_rs(o, pa + 4 * kk, Kc + kk * 2048, 8192, 1024);
    hp_wg_commit();
#pragma unroll
    for (int j = 0; j < 16; j++) // pair j = s[2 j], s[2 j + 1]: row ra + 8 (j & 1), keys 8 (j >> 1) + 2 q4
        *(unsigned *)(Pc + mla_swz(ra + 8 * (j & 1), 2 * (8 * (j >> 1) + 2 * q4))) = pa[j];
    if (q4 == 0) k.s_corr[st][ra] = corr[0], k.s_corr[st][ra + 8] = corr[1];
    hp_fence_async();
    hp_bar_arrive(MLA_BAR_P + st, 256); // P and the corrections are ready for warpgroup 1
}
#endif

// Warpgroup 1, once warpgroup 0's P of the block in stage st (Kc, P at Pc) is ready: O scaled by the rows'
// corrections, then O_R += P V_R, waited for.
__device__ __forceinline__ void MLA_FN(_ring_pv1)(const MlaBlk &k, int st, const unsigned char *Kc, const unsigned char *Pc, float *o) {
    const float c0 = k.s_corr[st][k.ra], c1 = k.s_corr[st][k.ra + 8];
    if (!__all_sync(0xffffffffu, c0 == 1.0f && c1 == 1.0f))
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] *= (i >> 1) & 1 ? c1 : c0;
    hp_wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) mla_wgmma_pv(o, Pc + kk * 32, Kc + 4 * 8192 + kk * 2048, 8192, 1024, 1);
    hp_wg_commit();
    hp_wg_wait0();
    mla_hold128(o);
}
#endif

#if MLA_PP
// MLA_PP, warpgroup 1 once done with stage 0: O_R += P1 V1_R (MLA_PP 2: P1 from registers), waited for, then
// stage 1 released unless the split ends there
__device__ __forceinline__ void MLA_FN(_pp_pv1)(const MlaBlk &k, long long b0, const float *s, const float *sc1, float *o) {
    unsigned char *const K1 = k.Ks + MLA_TILE;
    mla_scale_o(o, sc1);
#if MLA_PP == 2
    mla_pv_own(o, s, K1 + 4 * 8192, (unsigned char *)0, k.ra, k.q4); // O_R += P1 V1_R, P1 from registers
#else
    mla_pv(o, K1 + 8 * 8192, K1 + 4 * 8192); // O_R += P1 V1_R
#endif
    hp_wg_wait0();
    mla_hold128(o);
    if (b0 + 3 < k.jb1) hp_bar_arrive(MLA_BAR_EMPTY + 1, MLA_THREADS); // and with stage 1
}

// MLA_PP, warpgroup 1 under the P V of b0: the softmax of b1 (S in s, lim its rows' last columns), P1 over stage 1's
// rope columns, m1 and sc1 (the factor from m0) for warpgroup 0, then "P1 ready"
__device__ __forceinline__ void MLA_FN(_pp_p1)(const MlaBlk &k, float *s, const int *lim, float *m, float *sc1, float *ls) {
    const float SL2 = MLA_SCALE * 1.44269504088896341f, one[2] = {1.0f, 1.0f};
    const int ra = k.ra, q4 = k.q4;
    mla_softmax(s, lim, m, sc1, ls, q4, SL2);
    mla_store_p(k.Ks + MLA_TILE + 8 * 8192, s, one, ra, q4);
    if (q4 == 0) k.s_m1[ra] = m[0], k.s_m1[ra + 8] = m[1], k.s_corr[1][ra] = sc1[0], k.s_corr[1][ra + 8] = sc1[1];
    hp_fence_async();
    hp_bar_arrive(MLA_BAR_P1R, 256); // P1, m1 and sc1 ready for warpgroup 0
}
#endif

#if MLA_SEESAW
// The seesaw (FlashMLA's schedule): blocks in pairs, b0 in stage 0, b1 = b0 + 1 in
// stage 1; warpgroup 0 computes S and P of b0, warpgroup 1 those of b1 at the same
// time; the rows' max runs m -> m0 (b0's, warpgroup 0) -> m1 (b1's, warpgroup 1), and
// each warpgroup's half of O and share of the sums (ls) follow it by the factors
// sc0 = 2^(m - m0) and sc1 = 2^(m0 - m1):
//   wg 0: O_L = (O_L sc0 + P0 V0_L) sc1 + P1 V1_L
//   wg 1: O_R = O_R sc0 sc1 + P1 V1_R + (P0 sc1) V0_R
// P0 and P1 as bf16 over their stage's rope columns; P0 rewritten as P0 sc1 once
// warpgroup 0's own P V has read it. The stages go back to the producer in halves
// as soon as their readers are done (MLA_BAR_E0L ... E1L).

// Warpgroup 0's part of the pair (b0, b0 + 1): S, softmax and P of b0, its half of P0 V0 and of P1 V1 (two: b1
// exists; par: the stages' use, mod 2; lim: the last column of b0 each of the thread's rows sees).
__device__ __forceinline__ void MLA_FN(_seesaw0)(const MlaBlk &k, const MlaSrc &ld, long long b0, bool two, unsigned par, const int *lim,
                                                 float *o, float *m, float *ls) {
    const float SL2 = MLA_SCALE * 1.44269504088896341f;
    const int ra = k.ra, q4 = k.q4;
    const long long jb1 = k.jb1;
    unsigned char *const K0 = k.Ks, *const K1 = k.Ks + MLA_TILE;
    float s[32], sc0[2], sc1[2];
    mla_s_block(s, k.Qs, K0, k.full, par, 0);
    hp_bar_sync(MLA_BAR_S, 128); // every warp's S taken: P0 may overwrite the rope columns
    mla_softmax(s, lim, m, sc0, ls, q4, SL2);
    if (q4 == 0) k.s_m[ra] = m[0], k.s_m[ra + 8] = m[1], k.s_corr[0][ra] = sc0[0], k.s_corr[0][ra + 8] = sc0[1];
    hp_bar_arrive(MLA_BAR_SC0, 256);
    mla_scale_o(o, sc0);
    const float one[2] = {1.0f, 1.0f};
    mla_store_p(K0 + 8 * 8192, s, one, ra, q4);
    hp_fence_async();
    mla_pv(o, K0 + 8 * 8192, K0); // O_L += P0 V0_L
    hp_bar_sync(MLA_BAR_SC1, 256); // warpgroup 1's max and factor of b1
    sc1[0] = k.s_corr[1][ra], sc1[1] = k.s_corr[1][ra + 8], m[0] = k.s_m1[ra], m[1] = k.s_m1[ra + 8];
    hp_wg_wait0();
    mla_hold128(o);
#if MLA_V3 == 4
    if (b0 + 2 < jb1) { // stage 0's chunks 0-3 read for the last time (by this warpgroup only): block b0 + 2's
        hp_bar_sync(MLA_BAR_W0, 128);
        mla_load_block(K0, ld.Kg, k.bb * k.KT, b0 + 2, k.T, (unsigned char *)0, ld.Q0, ld.Q1, MLA_QD0, 0, 0, k.full, ld.pt, 0x00fu, ld.kmap,
                       MLA_BAR_W0);
    }
#else
    if (b0 + 2 < jb1) hp_bar_arrive(MLA_BAR_E0L, 256); // stage 0's chunks 0-3 read for the last time
#endif
    // P0 sc1 for warpgroup 1 over P0: the warp's wgmma read only its own 16 rows of P0, and
    // its wait is the warp's (its lanes together: __syncwarp, for an emulator that runs them in turn)
    __syncwarp();
    mla_store_p(K0 + 8 * 8192, s, sc1, ra, q4);
    hp_fence_async();
    hp_bar_arrive(MLA_BAR_P0R, 256);
#pragma unroll
    for (int h = 0; h < 2; h++) ls[h] *= sc1[h];
    mla_scale_o(o, sc1);
    if (two) {
        hp_bar_sync(MLA_BAR_P1R, 256);
        mla_pv(o, K1 + 8 * 8192, K1); // O_L += P1 V1_L
        hp_wg_wait0();
        mla_hold128(o);
#if MLA_V3 == 4
        if (b0 + 3 < jb1) { // stage 1's chunks 0-3 and P1, once warpgroup 1 is done with them too: block b0 + 3's
            hp_bar_sync(MLA_BAR_E1L, MLA_THREADS);
            mla_load_block(K1, ld.Kg, k.bb * k.KT, b0 + 3, k.T, (unsigned char *)0, ld.Q0, ld.Q1, MLA_QD0, 0, 0, k.full + 9, ld.pt, 0x10fu,
                           ld.kmap, MLA_BAR_W0);
        }
#else
        if (b0 + 3 < jb1) hp_bar_arrive(MLA_BAR_E1L, MLA_THREADS); // stage 1's chunks 0-3 and P1
#endif
    }
}

// Warpgroup 1's part of the pair (b0, b0 + 1): S, softmax and P of b1 (if two), its half of P1 V1 and of
// (P0 sc1) V0 (lim: the last column of b1 each of the thread's rows sees).
__device__ __forceinline__ void MLA_FN(_seesaw1)(const MlaBlk &k, const MlaSrc &ld, long long b0, bool two, unsigned par, const int *lim,
                                                 float *o, float *m, float *ls) {
    const float SL2 = MLA_SCALE * 1.44269504088896341f;
    const int ra = k.ra, q4 = k.q4;
    const long long jb1 = k.jb1;
    unsigned char *const K0 = k.Ks, *const K1 = k.Ks + MLA_TILE;
    float s[32], sc0[2], sc1[2];
    if (two) {
        mla_s_block(s, k.Qs, K1, k.full + 9, par, 1);
        hp_bar_sync(MLA_BAR_S1, 128);
    }
    hp_bar_sync(MLA_BAR_SC0, 256); // warpgroup 0's max and factor of b0
    m[0] = k.s_m[ra], m[1] = k.s_m[ra + 8], sc0[0] = k.s_corr[0][ra], sc0[1] = k.s_corr[0][ra + 8];
    sc1[0] = sc1[1] = 1.0f;
#pragma unroll
    for (int h = 0; h < 2; h++) ls[h] *= sc0[h];
    if (two) mla_softmax(s, lim, m, sc1, ls, q4, SL2);
    if (q4 == 0) k.s_m1[ra] = m[0], k.s_m1[ra + 8] = m[1], k.s_corr[1][ra] = sc1[0], k.s_corr[1][ra + 8] = sc1[1];
    hp_bar_arrive(MLA_BAR_SC1, 256);
    float f[2];
#pragma unroll
    for (int h = 0; h < 2; h++) f[h] = sc0[h] * sc1[h];
    mla_scale_o(o, f);
    if (two) {
        const float one[2] = {1.0f, 1.0f};
        mla_store_p(K1 + 8 * 8192, s, one, ra, q4);
        hp_fence_async();
        hp_bar_arrive(MLA_BAR_P1R, 256);
        mla_pv(o, K1 + 8 * 8192, K1 + 4 * 8192); // O_R += P1 V1_R
    }
    hp_bar_sync(MLA_BAR_P0R, 256);
    mla_pv(o, K0 + 8 * 8192, K0 + 4 * 8192); // O_R += (P0 sc1) V0_R
    if (two) {
        hp_wg_wait1(); // P1 V1_R done
        if (b0 + 3 < jb1) {
#if MLA_V3 == 4
            hp_bar_arrive(MLA_BAR_E1L, MLA_THREADS); // this warpgroup's reads of stage 1's chunks 0-3 and P1 done
            // stage 1's chunks 4-7 (read by this warpgroup only): block b0 + 3's
            hp_bar_sync(MLA_BAR_W1, 128);
            mla_load_block(K1, ld.Kg, k.bb * k.KT, b0 + 3, k.T, (unsigned char *)0, ld.Q0, ld.Q1, MLA_QD0, 0, 0, k.full + 9, ld.pt, 0x0f0u,
                           ld.kmap, MLA_BAR_W1);
#else
            hp_bar_arrive(MLA_BAR_E1R, 256); // stage 1's chunks 4-7
            hp_bar_arrive(MLA_BAR_E1L, MLA_THREADS); // and this warpgroup's reads of P1
#endif
        }
    }
    hp_wg_wait0();
    mla_hold128(o);
#if MLA_V3 == 4
    if (b0 + 2 < jb1) { // stage 0's chunks 4-8 (warpgroup 0 done with P0 before "P0 sc1 ready"): block b0 + 2's
        hp_bar_sync(MLA_BAR_W1, 128);
        mla_load_block(K0, ld.Kg, k.bb * k.KT, b0 + 2, k.T, (unsigned char *)0, ld.Q0, ld.Q1, MLA_QD0, 0, 0, k.full, ld.pt, 0x1f0u, ld.kmap,
                       MLA_BAR_W1);
    }
#else
    if (b0 + 2 < jb1) hp_bar_arrive(MLA_BAR_E0R, 256); // stage 0's chunks 4-8
#endif
}

// The seesaw's consumers: the pairs of blocks, each warpgroup its part; with MLA_V3 4 (no producer) the consumers
// load: warpgroup 0 q and the first block, warpgroup 1 the second; later each refills the chunks whose last reader
// it is (FlashMLA's: warpgroup 0 chunks 0-3 of stage 0 after its P V of V0_L, and 0-3 and 8 of stage 1 once both
// are done with them; warpgroup 1 the rest)
__device__ __forceinline__ void MLA_FN(_seesaw)(const Args &a, const MlaBlk &k, const long long *last, float *o, float *m, float *ls) {
    const long long jb0 = k.jb0, jb1 = k.jb1;
    const int wg = k.wg;
#if MLA_V3 == 4
    MlaSrc ld;
    ld.Q0 = (const unsigned short *)a.t[MLA_SQ], ld.Q1 = (const unsigned short *)a.t[MLA_SQ1];
    ld.Kg = (const unsigned short *)a.t[MLA_SK];
    ld.pt = k.tid & 127;
    ld.kmap = MLA_TMA ? MLA_KMAP : (const void *)0; // MLA_TMA: whole blocks by TMA
    if (wg == 0) {
        mla_load_q(k.Qs, ld.Q0, ld.Q1, MLA_QD0, k.bb * k.rows + k.r0, k.rows - k.r0, k.full + 18, ld.pt, MLA_TMA, MLA_BAR_W0);
        if (jb0 < jb1)
            mla_load_block(k.Ks, ld.Kg, k.bb * k.KT, jb0, k.T, (unsigned char *)0, ld.Q0, ld.Q1, MLA_QD0, 0, 0, k.full, ld.pt, 0x1ffu, ld.kmap,
                           MLA_BAR_W0);
    } else if (jb0 + 1 < jb1)
        mla_load_block(k.Ks + MLA_TILE, ld.Kg, k.bb * k.KT, jb0 + 1, k.T, (unsigned char *)0, ld.Q0, ld.Q1, MLA_QD0, 0, 0, k.full + 9, ld.pt,
                       0x1ffu, ld.kmap, MLA_BAR_W1);
#else
    const MlaSrc ld = {0, 0, 0, 0, 0}; // (the producer loads)
#endif
    hp_mbar_wait(k.full + 18, 0); // q landed
    for (long long b0 = jb0; b0 < jb1; b0 += 2) {
        const bool two = b0 + 1 < jb1;
        const unsigned par = (unsigned)((b0 - jb0) >> 1) & 1u;
        const long long bo = b0 + wg; // the block whose S this warpgroup computes
        int lim[2]; // the last column of that block each of the thread's rows sees
#pragma unroll
        for (int h = 0; h < 2; h++) lim[h] = last[h] - bo * 64 < 63 ? (int)(last[h] - bo * 64) : 63;
        if (wg == 0) MLA_FN(_seesaw0)(k, ld, b0, two, par, lim, o, m, ls);
        else MLA_FN(_seesaw1)(k, ld, b0, two, par, lim, o, m, ls);
    }
#if MLA_V3 == 4
    hp_cp_wait_all(); // (every copy landed already: each was waited for before the S that read it)
#endif
}
#endif

// The rows' max and sum over their quads, for both warpgroups (the seesaw, MLA_PP: each its share), into
// s_m, s_l (warpgroup 0) and s_l1 (warpgroup 1's share) for the epilogue.
__device__ __forceinline__ void MLA_FN(_sums)(const MlaBlk &k, const float *m, float *ls) {
    const int ra = k.ra, q4 = k.q4, wg = k.wg;
    if (wg == 0 || MLA_SUMS2) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 1);
            ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 2);
        }
        if (q4 == 0 && wg == 0) k.s_m[ra] = m[0], k.s_l[ra] = ls[0], k.s_m[ra + 8] = m[1], k.s_l[ra + 8] = ls[1];
        if (q4 == 0 && wg == 1) k.s_l1[ra] = ls[0], k.s_l1[ra + 8] = ls[1];
    }
}

#if MLA_FUSE
// MLA_FUSE, the merging block, by its first 64 threads (a row each): the splits' weights 2^(lse - max lse) (-1: a
// split past the row's keys, skipped) into wsp over q's tile (free now), and 1 / their sum into dinv; in the
// combine kernel's order and arithmetic (this block's own lse from its sums, the others' from the scratch).
__device__ __forceinline__ void MLA_FN(_fuse_weights)(const MlaBlk &k, const float *part, float *wsp, float *dinv) {
    const float NEG = __int_as_float(0xff800000);
    const int tid = k.tid;
    const long long nsp = k.nsp, n = k.B * k.rows;
    const float *const lse = part + 64 + nsp * n * 512;
    if (tid < 64 && k.r0 + tid < k.rows) {
        const long long ri = k.bb * k.rows + k.r0 + tid;
        const float lr = MLA_SUMS2 ? k.s_l[tid] + k.s_l1[tid] : k.s_l[tid], own = lr > 0.0f ? k.s_m[tid] + log2f(lr) : NEG;
        float mx = NEG, den = 0.0f;
        for (long long s = 0; s < nsp; s++) { // the lse of every split (kept for the second pass), their max
            const float e = s == k.sp ? own : __ldcg(lse + s * n + ri);
            wsp[s * 64 + tid] = e;
            mx = fmaxf(mx, e);
        }
        for (long long s = 0; s < nsp; s++) {
            const float e = wsp[s * 64 + tid], w = e == NEG ? -1.0f : exp2f(e - mx);
            wsp[s * 64 + tid] = w;
            if (e != NEG) den += w;
        }
        dinv[tid] = den > 0.0f ? 1.0f / den : 0.0f;
    }
}

// MLA_FUSE, the block with the tile's last ticket: once the other splits' parts are written (each wrote, fenced,
// then counted), the tile's rows merged here, this block's own part from o (O / l, as it would have written it),
// the others' from the scratch (L2), and written to out.
__device__ __forceinline__ void MLA_FN(_fuse)(const Args &a, const MlaBlk &k, const float *o, const float *part, unsigned *tick) {
    const int ra = k.ra, q4 = k.q4, wg = k.wg;
    const long long nsp = k.nsp, n = k.B * k.rows;
    if (k.tid == 0) { // the other splits' parts written (each wrote, fenced, then counted)
        while ((atomicAdd(tick, 0u) >> 16) < (unsigned)(nsp - 1)) {
        }
        *tick = 0u; // no block of this launch touches it again
    }
    __threadfence();
    hp_bar_sync(MLA_BAR_END, 256);
    float *const wsp = (float *)k.Qs, *const dinv = wsp + 64 * 64;
    MLA_FN(_fuse_weights)(k, part, wsp, dinv);
    hp_bar_sync(MLA_BAR_END, 256);
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = ra + 8 * h;
        if (k.r0 + r >= k.rows) continue;
        const long long ri = k.bb * k.rows + k.r0 + r;
        const float lr = MLA_SUMS2 ? k.s_l[r] + k.s_l1[r] : k.s_l[r], inv = lr > 0.0f ? 1.0f / lr : 0.0f, di = dinv[r];
#pragma unroll
        for (int g = 0; g < MLA_MERGE_G; g++) { // 64 / MLA_MERGE_G of the row's 64 columns at a time
            float acc[64 / MLA_MERGE_G];
#pragma unroll
            for (int kx = 0; kx < 64 / MLA_MERGE_G; kx++) acc[kx] = 0.0f;
            for (long long s = 0; s < nsp; s++) {
                const float w = wsp[s * 64 + r];
                if (w < 0.0f) continue;
                if (s == k.sp) // this block's own part: O / l, as it would have written it
#pragma unroll
                    for (int kx = 0; kx < 32 / MLA_MERGE_G; kx++) {
                        const int i = 2 * h + 4 * (32 / MLA_MERGE_G * g + kx);
                        acc[2 * kx] += w * (o[i] * inv), acc[2 * kx + 1] += w * (o[i + 1] * inv);
                    }
                else {
                    const float *const po = part + 64 + (s * n + ri) * 512 + 256 * wg + 2 * q4;
#pragma unroll
                    for (int kx = 0; kx < 32 / MLA_MERGE_G; kx++) {
                        const float2 v = __ldcg((const float2 *)(po + 8 * (32 / MLA_MERGE_G * g + kx)));
                        acc[2 * kx] += w * v.x, acc[2 * kx + 1] += w * v.y;
                    }
                }
            }
#pragma unroll
            for (int kx = 0; kx < 32 / MLA_MERGE_G; kx++) {
                const long long col = 256 * wg + 8 * (32 / MLA_MERGE_G * g + kx) + 2 * q4;
                if (MLA_OUT_BF16) *(unsigned *)((unsigned short *)a.t[MLA_SO] + ri * 512 + col) = hp_bf16x2(acc[2 * kx] * di, acc[2 * kx + 1] * di);
                else *(float2 *)((float *)a.t[MLA_SO] + ri * 512 + col) = make_float2(acc[2 * kx] * di, acc[2 * kx + 1] * di);
            }
        }
    }
}
#endif

#if MLA_OSTAGE
#if !MLA_OUT_BF16 || MLA_FUSE
#error "MLA_OSTAGE stages bf16 output rows (MLA_OUT_BF16 1), not with MLA_FUSE's merge"
#endif
// MLA_OSTAGE: a warp's 16 rows (ra - ra % 16 ..) of its warpgroup's 256 columns through shared memory (the key
// stages, free once the loops are done), rows 528 bytes apart: the pair of columns 8 k + 2 q4 of row ra + 8 h
// goes in (_stage_pair), then (_stage_rows) each of the 16 rows that is in the step goes out as 512 bytes, lane l
// the 16 bytes at 16 l
__device__ __forceinline__ unsigned char *MLA_FN(_stage_at)(const MlaBlk &k) {
    return k.Ks + (k.tid >> 5) * (16 * 528);
}
__device__ __forceinline__ void MLA_FN(_stage_pair)(unsigned char *st, int h, int kk, int q4, float x0, float x1) {
    *(unsigned *)(st + ((threadIdx.x & 31) >> 2) * 528 + h * 8 * 528 + kk * 16 + q4 * 4) = hp_bf16x2(x0, x1);
}
__device__ __forceinline__ void MLA_FN(_stage_rows)(const MlaBlk &k, unsigned short *out, const unsigned char *st) {
    __syncwarp(); // every lane's pairs are in
    const int l = threadIdx.x & 31, rw = k.ra - (k.ra & 15); // the warp's first row in the tile
#pragma unroll 4
    for (int j = 0; j < 16; j++)
        if (k.r0 + rw + j < k.rows)
            *(uint4 *)(out + (k.bb * k.rows + k.r0 + rw + j) * 512 + 256 * k.wg + 8 * l) = *(const uint4 *)(st + j * 528 + 16 * l);
}
#endif

// (MLA_MC: clusters of 2 CTAs, a batch row's two row tiles; MLA_DSM: of 2, a tile's two splits; otherwise of 1,
// as a launch without one)
extern "C" __global__ void __launch_bounds__(MLA_THREADS, 1) __cluster_dims__(MLA_MC + MLA_DSM + 1, 1, 1) DSCC_ENTRY(Args a) {
    if (threadIdx.x == 0) MLA_STAMP(0, hp_globaltimer()), MLA_STAMP(1, hp_clock64());
    DSCC_PDL_WAIT(); // q and the cache are the step's (programmatic dependent launch: codegen/kernels.h)
    DSCC_PDL_LAUNCH_DEPENDENTS(); // the combine (or the next kernel) may take its place on the SMs as they free up
    extern __shared__ __align__(16) unsigned char mla_smem[];
    __shared__ float s_corr[2][64], s_m[64], s_l[64], s_l1[64];
#if MLA_FUSE
    __shared__ unsigned s_tick; // the block's ticket (the producer takes it while the consumers finish)
#endif
#if MLA_SUMS2
    __shared__ float s_m1[64];
#endif
    // the dynamic memory from its first 1024-aligned byte (the swizzle's period):
    // q's tile, then the two stages of 64 keys (P goes into a stage's chunk 8 once S is taken)
    unsigned char *const sm = mla_smem + ((1024u - (unsigned)(__cvta_generic_to_shared(mla_smem) & 1023u)) & 1023u);
    unsigned char *const Qs = sm, *const Ks = sm + MLA_TILE;
    const long long B = MLA_B, S = MLA_S, T = MLA_T, HQ = MLA_HQ, KT = MLA_KT;
    const long long rows = S * HQ, nrb = (rows + 63) / 64, nsp = (long long)gridDim.x / (B * nrb);
#if MLA_DSM // (batch row, row tile, split): a cluster of 2 is a tile's two splits
    const long long sp = blockIdx.x % nsp, rt = blockIdx.x / nsp % nrb, bb = blockIdx.x / (nrb * nsp), r0 = rt * 64;
#else
    const long long rt = blockIdx.x % nrb, sp = blockIdx.x / nrb % nsp, bb = blockIdx.x / (nrb * nsp), r0 = rt * 64;
#endif
    const int tid = threadIdx.x, wg = tid >> 7, l = tid & 31, q4 = l & 3, ra = 16 * ((tid >> 5) & 3) + (l >> 2);
    const float NEG = __int_as_float(0xff800000), SL2 = MLA_SCALE * 1.44269504088896341f;
    long long kend = MLA_CAUSAL ? (r0 + 63 < rows ? r0 + 63 : rows - 1) / HQ + T - S : T - 1; // the tile's last key
    if (kend > T - 1) kend = T - 1;
    // this split's blocks of 64 keys: [jb0, jb1) of the tile's
    const long long nkb = (T + 63) / 64, per = (nkb + nsp - 1) / nsp, jb0 = sp * per;
    const long long jb1 = jb0 + per < kend / 64 + 1 ? jb0 + per : kend / 64 + 1;
#if MLA_V3
    // after the tiles: [stage][chunk] "landed", 128 arrivals (the producer's threads' cp.async) a phase, then q's
    unsigned long long *const full = (unsigned long long *)(sm + 3 * MLA_TILE);
    MLA_FN(_init_full)(full, tid, nsp == 2);
#endif
    // the block's state for the phases below
    MlaBlk k;
    k.Qs = Qs, k.Ks = Ks, k.B = B, k.S = S, k.T = T, k.HQ = HQ, k.KT = KT, k.rows = rows, k.nrb = nrb, k.nsp = nsp;
    k.rt = rt, k.sp = sp, k.bb = bb, k.r0 = r0, k.jb0 = jb0, k.jb1 = jb1, k.tid = tid, k.wg = wg, k.q4 = q4, k.ra = ra;
    k.s_corr = s_corr, k.s_m = s_m, k.s_l = s_l, k.s_l1 = s_l1, k.s_m1 = 0, k.s_tick = 0, k.full = 0;
#if MLA_V3
    k.full = full;
#endif
#if MLA_FUSE
    k.s_tick = &s_tick;
#endif
#if MLA_SUMS2
    k.s_m1 = s_m1;
#endif
#ifdef MLA_STAMPS
    k.stamps = (unsigned long long *)a.t[MLA_STAMPS] + blockIdx.x * 16;
#endif
#if MLA_V3 < 3 // (3, 4: no producer warpgroup)
    if (wg == 2) { // the producer: q with the first block, each block into stage (its index) % 2
        hp_setmaxnreg_dec<MLA_REGS_PRODUCER>();
#if MLA_TMA
        const unsigned short *Q0 = (const unsigned short *)a.t[MLA_SQ], *Q1 = (const unsigned short *)a.t[MLA_SQ1];
        const unsigned short *Kg = (const unsigned short *)a.t[MLA_SK];
        const int pt = tid - 256;
        // whole blocks by TMA (the first thread), q and a block that ends past T by everyone's cp.async
        const void *const kmap = MLA_KMAP;
        const int pr = pt >> 3, pu = pt & 7;
        for (long long jb = jb0; jb < jb1; jb++) {
            const int st = (int)((jb - jb0) & 1);
            if (jb - jb0 >= 2) // the consumers are done with block jb - 2 (MLA_PP's stage 0: warpgroup 0 with its chunks 0-3)
                hp_bar_sync(MLA_BAR_EMPTY + st, MLA_PP && st == 0 ? 256 : MLA_THREADS);
            unsigned char *const Kd = Ks + st * MLA_TILE;
            unsigned long long *const fb = full + st * 9;
            const bool whole = jb * 64 + 64 <= T;
            MLA_FN(_tma_boxes)(k, kmap, jb, st, whole, pt);
            if (whole && jb != jb0) continue;
            for (int c = 0; c < 9; c++) {
                const int kc = c * 8 + pu; // the unit's 16 bytes among the row's 72
                if (jb == jb0) mla_copy_q(Qs, Q0, Q1, MLA_QD0, bb * rows + r0, r0, rows, pr, kc);
                if (!whole) mla_copy_rows(Kd, Kg, bb * KT, jb, T, pr, kc);
            }
            mla_cp_commit();
            mla_cp_wait0();
            hp_fence_async(); // for the tensor cores
            hp_bar_sync(MLA_BAR_PROD, 128); // every producer thread's copies landed
            if (pt == 0) {
                if (jb == jb0) hp_mbar_arrive(full + 18);
                if (!whole)
                    for (int c = 0; c < 9; c++) hp_mbar_arrive(fb + c);
            }
        }
#elif MLA_V3
        MLA_FN(_produce_chunks)(a, k, tid - 256);
#else
        MLA_FN(_produce_stages)(a, k, tid - 256);
#endif
        MLA_FN(_take_ticket)(k, tid - 256);
        return;
    }
    hp_setmaxnreg_inc<MLA_REGS_CONSUMER>();
#endif
    // the last key each of this thread's rows (ra, ra + 8) sees
    long long last[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const long long r = r0 + ra + 8 * h < rows ? r0 + ra + 8 * h : rows - 1;
        last[h] = MLA_CAUSAL ? r / HQ + T - S : T - 1;
        if (last[h] > T - 1) last[h] = T - 1;
    }
    float o[128]; // this warpgroup's half of the tile's output: columns 256 wg ..
#pragma unroll
    for (int i = 0; i < 128; i++) o[i] = 0.0f;
    float m[2] = {NEG, NEG}, ls[2] = {0.0f, 0.0f}; // warpgroup 0: rows' running max (base 2) and this thread's share of the sum
#if MLA_SEESAW
    MLA_FN(_seesaw)(a, k, last, o, m, ls);
#elif MLA_PP
    // The ping-pong (MLA_PP): blocks in pairs as the seesaw's, b0 in stage 0, b1 = b0 + 1 in stage 1, but
    // in the order of the chunk ring's arithmetic: warpgroup 0 computes S and P of b0, warpgroup 1 those of
    // b1, and warpgroup 1 issues its S only once warpgroup 0 has issued its own ("SI"), so the tensor cores
    // run S0, S1 in that order and warpgroup 0's softmax of b0 runs under S1, warpgroup 1's of b1 under the
    // P V of b0. The rows' max runs m -> m0 (warpgroup 0) -> m1 (warpgroup 1) through shared memory with the
    // factors sc0 = 2^(m - m0), sc1 = 2^(m0 - m1); each warpgroup's half of O goes
    //   O_h = (O_h sc0 + P0 V0_h) sc1 + P1 V1_h
    // (the chunk ring's order and operands: the same P and O; only the rows' sums are kept in two shares).
    // Tensor order a pair: S0, S1, P0 V0_L, P0 V0_R, P1 V1_L, P1 V1_R, each issued before the one ahead of
    // it ends. A stage goes back to the producer (its "empty" barrier, as the chunk ring's) once both
    // warpgroups' last wgmma on it are done: stage 0 after P0 V0_L / P0 V0_R, stage 1 after P1 V1_R and,
    // for warpgroup 0, once the next pair's S0 has its first chunk issued behind P1 V1_L.
    unsigned char *const K0 = Ks, *const K1 = Ks + MLA_TILE;
    const unsigned qlo = mla_desc_lo(Qs);
    const float one[2] = {1.0f, 1.0f};
    unsigned qa[4][4]; // MLA_QREG 1: q's rope chunk as S's A fragments, each warpgroup its own, loaded before its first S
    if (wg == 0) {
        for (long long b0 = jb0; b0 < jb1; b0 += 2) {
            const bool two = b0 + 1 < jb1;
            const unsigned par = (unsigned)((b0 - jb0) >> 1) & 1u;
            int lim[2]; // the last column of b0 each of the thread's rows sees
#pragma unroll
            for (int h = 0; h < 2; h++) lim[h] = last[h] - b0 * 64 < 63 ? (int)(last[h] - b0 * 64) : 63;
#if MLA_TMA
            if (b0 == jb0) hp_mbar_wait(full + 18, 0); // q on its own barrier (without TMA: with b0's chunks)
#endif
#if MLA_QREG
            if (b0 == jb0) { // q's rope chunk into registers (without TMA it lands with b0's chunk 8)
                if (!MLA_TMA) hp_mbar_wait(full + 8, 0);
#pragma unroll
                for (int kk = 0; kk < 4; kk++) mla_load_qa(qa[kk], Qs, 8, kk, ra, q4);
            }
#endif
            float s[32], sc0[2], sc1[2];
            // the last pair's P1 V1_L done behind S0's first chunk: stage 1 back to the producer if it refills it
            mla_pp_s(s, o, qlo, mla_desc_lo(K0), full, par, true, b0 > jb0 && b0 + 1 < jb1 ? MLA_BAR_EMPTY + 1 : 0, MLA_QREG ? qa : 0,
                     MLA_CFENCE_ON);
            hp_bar_arrive(MLA_BAR_SI, 256); // S0 issued: warpgroup 1 queues S1 behind it
            hp_wg_wait0();
            hp_hold32(s);
            hp_bar_sync(MLA_BAR_S, 128); // every warp's S0 taken: P0 may overwrite the rope columns
            mla_softmax(s, lim, m, sc0, ls, q4, SL2);
#if MLA_PP == 2
            mla_scale_o(o, sc0);
            mla_pv_own(o, s, K0, K0 + 8 * 8192, ra, q4); // O_L += P0 V0_L, P0 from registers, then P0 stored for warpgroup 1
#else
            mla_store_p(K0 + 8 * 8192, s, one, ra, q4);
#endif
            if (q4 == 0) s_m[ra] = m[0], s_m[ra + 8] = m[1], s_corr[0][ra] = sc0[0], s_corr[0][ra + 8] = sc0[1];
            hp_fence_async();
            hp_bar_arrive(MLA_BAR_P0R, 256); // P0, m0 and sc0 ready for warpgroup 1
#if MLA_PP != 2
            mla_scale_o(o, sc0);
            mla_pv(o, K0 + 8 * 8192, K0); // O_L += P0 V0_L
#endif
            hp_wg_wait0();
            mla_hold128(o);
            if (b0 + 2 < jb1) { // this warpgroup done with stage 0 (MLA_TMA: its chunks 0-3 go back at once)
#if MLA_TMA
                hp_bar_arrive(MLA_BAR_EMPTY, 256);
                hp_bar_arrive(MLA_BAR_PP_E0R, MLA_THREADS);
#else
                hp_bar_arrive(MLA_BAR_EMPTY, MLA_THREADS);
#endif
            }
            if (two) {
                hp_bar_sync(MLA_BAR_P1R, 256); // warpgroup 1's P1, m1 and sc1
                sc1[0] = s_corr[1][ra], sc1[1] = s_corr[1][ra + 8], m[0] = s_m1[ra], m[1] = s_m1[ra + 8];
#pragma unroll
                for (int h = 0; h < 2; h++) ls[h] *= sc1[h];
                mla_scale_o(o, sc1);
                mla_pv(o, K1 + 8 * 8192, K1); // O_L += P1 V1_L, in flight into the next pair's S0
            }
        }
        hp_wg_wait0();
        mla_hold128(o);
    } else {
        for (long long b0 = jb0; b0 < jb1; b0 += 2) {
            const bool two = b0 + 1 < jb1;
            const unsigned par = (unsigned)((b0 - jb0) >> 1) & 1u;
            int lim[2]; // the last column of b1 each of the thread's rows sees
#pragma unroll
            for (int h = 0; h < 2; h++) lim[h] = last[h] - (b0 + 1) * 64 < 63 ? (int)(last[h] - (b0 + 1) * 64) : 63;
            float s[32], sc0[2], sc1[2];
            hp_bar_sync(MLA_BAR_SI, 256); // warpgroup 0's S0 issued
            if (two) {
                if (b0 == jb0) { // q landed (MLA_TMA: its own barrier; else with b0's chunks in stage 0, still in that phase)
#if MLA_TMA
                    hp_mbar_wait(full + 18, 0);
#else
                    for (int c = 0; c < 9; c++) hp_mbar_wait(full + c, 0);
#endif
#if MLA_QREG
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) mla_load_qa(qa[kk], Qs, 8, kk, ra, q4); // q's rope chunk into registers
#endif
                }
                mla_pp_s(s, o, qlo, mla_desc_lo(K1), full + 9, par, false, 0, MLA_QREG ? qa : 0, MLA_CFENCE_ON);
                hp_wg_wait0();
                hp_hold32(s);
                hp_bar_sync(MLA_BAR_S1, 128); // every warp's S1 taken: P1 may overwrite the rope columns
            }
            hp_bar_sync(MLA_BAR_P0R, 256); // warpgroup 0's P0, m0 and sc0
            m[0] = s_m[ra], m[1] = s_m[ra + 8], sc0[0] = s_corr[0][ra], sc0[1] = s_corr[0][ra + 8];
#pragma unroll
            for (int h = 0; h < 2; h++) ls[h] *= sc0[h];
            mla_scale_o(o, sc0);
            mla_pv(o, K0 + 8 * 8192, K0 + 4 * 8192); // O_R += P0 V0_R
            if (two) MLA_FN(_pp_p1)(k, s, lim, m, sc1, ls); // b1's softmax under the P V of b0
            hp_wg_wait0();
            mla_hold128(o);
            if (b0 + 2 < jb1) hp_bar_arrive(MLA_TMA ? MLA_BAR_PP_E0R : MLA_BAR_EMPTY, MLA_THREADS); // this warpgroup done with stage 0
            if (two) MLA_FN(_pp_pv1)(k, b0, s, sc1, o);
        }
    }
#else
    // a loop for each warpgroup: with MLA_LEAN 4 warpgroup 0's P V is still in flight at the end of an
    // iteration, and ptxas must see no path from there into warpgroup 1's code (it would serialize the wgmma)
    if (wg == 0) {
#if MLA_QREG
        unsigned qa[MLA_QREG][4][4]; // q's chunks 9 - MLA_QREG .. 8 as wgmma's A fragments, once q has landed
        if (jb0 < jb1) { // (an empty split loads no q)
#if MLA_TMA && MLA_V3 == 1
            hp_mbar_wait(full + 18, 0); // q on its own barrier
#else
            for (int c = 9 - MLA_QREG; c < 9; c++) hp_mbar_wait(full + c, 0); // q's chunk c with the first block's, in stage 0
#endif
#pragma unroll
            for (int c = 0; c < MLA_QREG; c++)
#pragma unroll
                for (int kk = 0; kk < 4; kk++) mla_load_qa(qa[c][kk], Qs, 9 - MLA_QREG + c, kk, ra, q4);
        }
#else
        unsigned (*const qa)[4][4] = 0; // (S from q's tile alone)
#endif
        for (long long jb = jb0; jb < jb1; jb++) {
            const int st = (int)((jb - jb0) & 1);
            unsigned char *const Kc = Ks + st * MLA_TILE, *const Pc = Kc + 8 * 8192; // P over the rope columns
            float s[32];
            MLA_FN(_ring_s)(k, jb, st, Kc, qa, o, s); // S of the block, every warp's taken
            if (jb == jb0 && tid == 0) MLA_STAMP(2, hp_clock64());
#if MLA_XEARLY
            if (jb == jb1 - 1 && nsp == 2 && tid == 0) hp_mbar_arrive_cluster(full + 19, (unsigned)sp ^ 1u); // q read for the last time
#endif
            int lim[2]; // the last column of the block each of the thread's rows sees (63: all, < 0: none)
#pragma unroll
            for (int h = 0; h < 2; h++) lim[h] = last[h] - jb * 64 < 63 ? (int)(last[h] - jb * 64) : 63;
            float corr[2];
            mla_softmax(s, lim, m, corr, ls, q4, SL2);
#if MLA_PREG
            MLA_FN(_ring_preg)(k, st, Kc, Pc, s, corr, o); // P V first, P from registers, then P for warpgroup 1
#else
            const float one[2] = {1.0f, 1.0f};
            mla_store_p(Pc, s, one, ra, q4);
            if (q4 == 0) s_corr[st][ra] = corr[0], s_corr[st][ra + 8] = corr[1];
            hp_fence_async();
            hp_bar_arrive(MLA_BAR_P + st, 256); // P and the corrections are ready for warpgroup 1
            MLA_FN(_ring_pv0)(Kc, Pc, corr, o); // O_L += P V_L
#endif
            if (MLA_LEAN < 4) { // (MLA_LEAN 4: waited for once the next S's first chunk is issued)
                hp_wg_wait0();
                mla_hold128(o);
                if (jb + 2 < jb1) hp_bar_arrive(MLA_BAR_EMPTY + st, MLA_THREADS); // the producer may refill the stage
            }
        }
        if (MLA_LEAN >= 4) { // the last block's P V
            hp_wg_wait0();
            mla_hold128(o);
        }
        if (tid == 0) MLA_STAMP(3, hp_clock64());
    } else {
#if MLA_V3 == 3
        // no producer: this warpgroup loads q and the first two blocks, then each block two ahead
        // as soon as both warpgroups are done with its stage (FlashMLA's two warpgroups)
        const unsigned short *const Q0 = (const unsigned short *)a.t[MLA_SQ], *const Q1 = (const unsigned short *)a.t[MLA_SQ1];
        const unsigned short *const Kg = (const unsigned short *)a.t[MLA_SK];
        const int pt = tid - 128;
        const void *const kmap = MLA_TMA ? MLA_KMAP : (const void *)0; // MLA_TMA: whole blocks by TMA
        for (long long jb = jb0; jb < jb1 && jb < jb0 + 2; jb++)
            mla_load_block(Ks + (jb - jb0) * MLA_TILE, Kg, bb * KT, jb, T, jb == jb0 ? Qs : (unsigned char *)0, Q0, Q1, MLA_QD0,
                           bb * rows + r0, rows - r0, full + (jb - jb0) * 9, pt, 0x1ffu, kmap, MLA_BAR_W1);
#endif
        for (long long jb = jb0; jb < jb1; jb++) {
            const int st = (int)((jb - jb0) & 1);
            unsigned char *const Kc = Ks + st * MLA_TILE, *const Pc = Kc + 8 * 8192; // P over the rope columns
#if MLA_V3
            unsigned long long *const fb = full + st * 9;
            const unsigned par = (unsigned)((jb - jb0) >> 1) & 1u; // the stage's use, mod 2
#else
            hp_bar_sync(MLA_BAR_FULL + st, MLA_THREADS); // the keys (and q) landed
#endif
            hp_bar_sync(MLA_BAR_P + st, 256);
#if MLA_V3
            for (int c = 4; c < 8; c++) hp_mbar_wait(fb + c, par); // passed already (warpgroup 0 waited for them before P)
            if (MLA_CFENCE_ON) hp_fence_async();
#endif
            MLA_FN(_ring_pv1)(k, st, Kc, Pc, o); // O_R += P V_R
#if MLA_V3 == 3
            if (jb + 2 < jb1) { // warpgroup 0 done with the stage too (its S and P V): block jb + 2 into it
                hp_bar_sync(MLA_BAR_EMPTY + st, MLA_THREADS);
                mla_load_block(Kc, Kg, bb * KT, jb + 2, T, (unsigned char *)0, Q0, Q1, MLA_QD0, 0, 0, fb, pt, 0x1ffu, kmap, MLA_BAR_W1);
            }
#else
            if (jb + 2 < jb1) hp_bar_arrive(MLA_BAR_EMPTY + st, MLA_THREADS); // the producer may refill the stage
#endif
        }
#if MLA_V3 == 3
        hp_cp_wait_all(); // (every copy landed already: warpgroup 0 waited for each before its S)
#endif
        if (tid == 128) MLA_STAMP(4, hp_clock64());
    }
#endif
    MLA_FN(_sums)(k, m, ls);
    hp_bar_sync(MLA_BAR_END, MLA_FUSED(nsp) ? 288 : 256); // (MLA_FUSE: and the producer's warp with the ticket)
    if (tid == 0) MLA_STAMP(5, hp_clock64());
    float *part = (float *)a.t[MLA_SP];
    if (!MLA_FUSED(nsp) && nsp > 1 && blockIdx.x == 0 && tid == 0) ((int *)part)[0] = (int)nsp;
    const long long n = B * rows; // query rows of the step
#if MLA_DSM
    if (nsp == 2) { // the cluster is the tile's two splits (rank = split): each CTA merges half of the columns
        // warpgroup 1 - sp hands its half, normalised, to the other CTA through this CTA's q tile (free now), thread
        // by thread (its value 4k .. 4k + 3 at float4 128 k + t: the other CTA's thread t of the same layout reads it
        // back), with its rows' lse; warpgroup sp adds it to its own in the combine kernel's order and arithmetic
        // (split 0 first: the same output bit for bit on the emulated device). Two cluster barriers: every half
        // written before any is read, every read done before either CTA exits (its shared memory goes with it).
        float4 *const xo = (float4 *)Qs;
        float *const xl = (float *)(Qs + 32 * 128 * 16);
#if MLA_OSTAGE
        const MlaBlk &k_ = k; // (the merge's loops name their index k)
#endif
        const int wt = tid & 127;
        const unsigned other = (unsigned)sp ^ 1u; // the cluster's other CTA
        float inv[2], lse[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = ra + 8 * h;
            const float lr = MLA_SUMS2 ? s_l[r] + s_l1[r] : s_l[r];
            inv[h] = lr > 0.0f ? 1.0f / lr : 0.0f;
            lse[h] = lr > 0.0f ? s_m[r] + log2f(lr) : NEG;
        }
#if MLA_XPUSH
        // this CTA's q tile is free (both consumers past their last S: the barrier above): the other CTA may write into it
        unsigned long long *const xin = k.full + 20; // (the loops below name their index k)
        if (tid == 0 && !(MLA_XEARLY && jb0 < jb1)) hp_mbar_arrive_cluster(k.full + 19, other); // (MLA_XEARLY: at the last S)
        if (wg != sp) { // the other CTA's q tile free, this half goes straight into it
            hp_mbar_wait_cluster(k.full + 19, 0);
#pragma unroll
            for (int k = 0; k < 32; k++)
                hp_st_async4(xo + 128 * k + wt, make_float4(o[4 * k] * inv[0], o[4 * k + 1] * inv[0], o[4 * k + 2] * inv[1], o[4 * k + 3] * inv[1]),
                             xin, other);
            if (q4 == 0) hp_st_async1(xl + ra, lse[0], xin, other), hp_st_async1(xl + ra + 8, lse[1], xin, other);
            return;
        }
        hp_mbar_wait_cluster(xin, 0); // the other CTA's half and lse landed in this CTA's q tile
        if (tid == 128 * (int)sp) MLA_STAMP(8, hp_clock64());
// (each branch's braces balanced: the emulated NVRTC's scan counts them across #if)
#define MLA_XMERGE true
#define MLA_XO(i, r) (xo[i]) // (its own q tile: r unused)
#define MLA_XL(p, r) (*(p))
#else
        if (wg != sp) {
#pragma unroll
            for (int k = 0; k < 32; k++)
                xo[128 * k + wt] = make_float4(o[4 * k] * inv[0], o[4 * k + 1] * inv[0], o[4 * k + 2] * inv[1], o[4 * k + 3] * inv[1]);
            if (q4 == 0) xl[ra] = lse[0], xl[ra + 8] = lse[1];
        }
        hp_cluster_sync();
        if (tid == 0) MLA_STAMP(8, hp_clock64());
#define MLA_XMERGE (wg == sp)
#define MLA_XO(i, r) hp_dsmem_ld4(xo + (i), r)
#define MLA_XL(p, r) hp_dsmem_ld(p, r)
#endif
        if (MLA_XMERGE) {
            float w[2][2], dinv[2];
#pragma unroll
            for (int h = 0; h < 2; h++) { // the splits' weights 2^(lse - max lse), a split past the row's keys none
                const float eo = MLA_XL(xl + ra + 8 * h, other), e0 = sp ? eo : lse[h], e1 = sp ? lse[h] : eo;
                const float mx = fmaxf(fmaxf(NEG, e0), e1);
                float den = 0.0f;
                w[h][0] = e0 == NEG ? 0.0f : exp2f(e0 - mx);
                if (e0 != NEG) den += w[h][0];
                w[h][1] = e1 == NEG ? 0.0f : exp2f(e1 - mx);
                if (e1 != NEG) den += w[h][1];
                dinv[h] = den > 0.0f ? 1.0f / den : 0.0f;
                if (e0 == NEG) w[h][0] = -1.0f; // (skipped below, as the combine skips it)
                if (e1 == NEG) w[h][1] = -1.0f;
            }
#pragma unroll // (fully: o is the accumulator, in registers only when every index is constant)
            for (int k = 0; k < 32; k++) {
                const float4 v = MLA_XO(128 * k + wt, other);
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int r = ra + 8 * h;
                    if (r0 + r >= rows) continue;
                    const float a0 = o[4 * k + 2 * h] * inv[h], a1 = o[4 * k + 2 * h + 1] * inv[h], b0 = h ? v.z : v.x, b1 = h ? v.w : v.y;
                    const float x0 = sp ? b0 : a0, x1 = sp ? b1 : a1, y0 = sp ? a0 : b0, y1 = sp ? a1 : b1; // split 0's, split 1's
                    float c0 = 0.0f, c1 = 0.0f;
                    if (w[h][0] >= 0.0f) c0 += w[h][0] * x0, c1 += w[h][0] * x1;
                    if (w[h][1] >= 0.0f) c0 += w[h][1] * y0, c1 += w[h][1] * y1;
#if MLA_OSTAGE
                    MLA_FN(_stage_pair)(MLA_FN(_stage_at)(k_), h, k, q4, c0 * dinv[h], c1 * dinv[h]);
#else
                    const long long ri = bb * rows + r0 + r, col = 256 * wg + 8 * k + 2 * q4;
                    if (MLA_OUT_BF16) *(unsigned *)((unsigned short *)a.t[MLA_SO] + ri * 512 + col) = hp_bf16x2(c0 * dinv[h], c1 * dinv[h]);
                    else *(float2 *)((float *)a.t[MLA_SO] + ri * 512 + col) = make_float2(c0 * dinv[h], c1 * dinv[h]);
#endif
                }
            }
#if MLA_OSTAGE
            MLA_FN(_stage_rows)(k_, (unsigned short *)a.t[MLA_SO], MLA_FN(_stage_at)(k_));
#endif
            if (tid == 128 * (int)sp) MLA_STAMP(9, hp_clock64());
        }
#undef MLA_XMERGE
#undef MLA_XO
#undef MLA_XL
#if MLA_XPUSH // (nothing reads another CTA's memory: each waits only for what is written into its own)
        if (tid == 128 * (int)sp) MLA_STAMP(6, hp_clock64()), MLA_STAMP(7, hp_globaltimer());
#else
        hp_cluster_sync();
        if (tid == 0) MLA_STAMP(6, hp_clock64()), MLA_STAMP(7, hp_globaltimer());
#endif
        return;
    }
#endif
#if MLA_FUSE
    unsigned *const tick = MLA_CAT(DSCC_ENTRY, _ticket) + bb * nrb + rt;
    if (MLA_FUSED(nsp) && (s_tick & 0xffffu) == (unsigned)(nsp - 1)) { // the tile's last ticket: merge the splits here
        MLA_FN(_fuse)(a, k, o, part, tick);
        return;
    }
#endif
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = ra + 8 * h;
        const long long ri = bb * rows + r0 + r;
        if (r0 + r >= rows) continue;
        const float lr = MLA_SUMS2 ? s_l[r] + s_l1[r] : s_l[r], inv = lr > 0.0f ? 1.0f / lr : 0.0f;
        if (nsp == 1) {
#pragma unroll
            for (int i = 2 * h; i < 128; i += 4) {
#if MLA_OSTAGE
                MLA_FN(_stage_pair)(MLA_FN(_stage_at)(k), h, i >> 2, q4, o[i] * inv, o[i + 1] * inv);
#else
                const long long col = 256 * wg + 8 * (i >> 2) + 2 * q4;
                if (MLA_OUT_BF16) *(unsigned *)((unsigned short *)a.t[MLA_SO] + ri * 512 + col) = hp_bf16x2(o[i] * inv, o[i + 1] * inv);
                else *(float2 *)((float *)a.t[MLA_SO] + ri * 512 + col) = make_float2(o[i] * inv, o[i + 1] * inv);
#endif
            }
        } else { // this split's normalised output and the log2 of its sum, for the combine
#if MLA_PART_BF16
            unsigned short *pb = (unsigned short *)(part + 64) + (sp * n + ri) * 512; // (bf16 over the f32 layout's first half)
#pragma unroll
            for (int i = 2 * h; i < 128; i += 4) *(unsigned *)(pb + 256 * wg + 8 * (i >> 2) + 2 * q4) = hp_bf16x2(o[i] * inv, o[i + 1] * inv);
#else
            float *po = part + 64 + (sp * n + ri) * 512;
#pragma unroll
            for (int i = 2 * h; i < 128; i += 4) *(float2 *)(po + 256 * wg + 8 * (i >> 2) + 2 * q4) = make_float2(o[i] * inv, o[i + 1] * inv);
#endif
            if (wg == 0 && q4 == 0) part[64 + nsp * n * 512 + sp * n + ri] = lr > 0.0f ? s_m[r] + log2f(lr) : NEG;
        }
    }
#if MLA_OSTAGE
    if (nsp == 1) MLA_FN(_stage_rows)(k, (unsigned short *)a.t[MLA_SO], MLA_FN(_stage_at)(k));
#endif
#if MLA_FUSE
    if (MLA_FUSED(nsp)) { // the part counted once every thread's writes are out (the merging block waits for the count)
        __threadfence();
        hp_bar_sync(MLA_BAR_END, 256);
        if (tid == 0) atomicAdd(tick, 0x10000u);
    }
#endif
    if (tid == 0) MLA_STAMP(6, hp_clock64()), MLA_STAMP(7, hp_globaltimer());
}
#undef DSCC_ENTRY
#undef MLA_STAMP
#undef MLA_KSTAMP
#undef MLA_STAMPS
#undef MLA_B
#undef MLA_S
#undef MLA_T
#undef MLA_HQ
#undef MLA_KT
#undef MLA_SQ
#undef MLA_SQ1
#undef MLA_QD0
#undef MLA_SK
#undef MLA_SO
#undef MLA_OUT_BF16
#undef MLA_SP
#undef MLA_CAUSAL
#undef MLA_SCALE
#undef MLA_V3
#undef MLA_PF
#undef MLA_WAITG
#undef MLA_LEAN
#undef MLA_LAZY
#undef MLA_FUSE
#undef MLA_DSM
#undef MLA_FUSE_MAX
#undef MLA_PREG
#undef MLA_MC
#undef MLA_QREG
#undef MLA_PART_BF16
#undef MLA_PP
#undef MLA_AFENCE
#undef MLA_CFENCE_ON
#undef MLA_L2HINT
#undef MLA_OSTAGE
#undef MLA_XPUSH
#undef MLA_XEARLY
#undef MLA_TMA_BOX
