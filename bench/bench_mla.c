/* bench_mla.c — MLA's decode attention kernel alone (codegen/kernels/
 * mla_decode.cuh and its combine), its variants side by side in one
 * process on one GPU: the chunk ring (MLA_V3 1) as it was (MLA_LEAN 0,
 * the reference) and with fewer instructions a block of keys, step by
 * step (MLA_LEAN 1: the producer's copies at offsets fixed at compile
 * time, 2: and S's wgmma descriptors precomputed, 3: and no mask on whole
 * blocks, 4: and warpgroup 0 issues the next block's S before waiting for
 * its P V, 5: and P = ex2.approx.ftz on whole blocks), all with the exact
 * rescale (MLA_LAZY 0), then MLA_LEAN 5 with O rescaled only when a row's
 * max grows by more than 2^8 (MLA_LAZY 1: the default), then the default
 * with MLA_LEAN 6 (the softmax's scale folded into P's exponent, the row
 * max in four partial maxima: opt-in, the rounding of P changes), with
 * warpgroup 0's P V taking P from registers (MLA_PREG 1: opt-in, the same
 * arithmetic) and with both, then with the splits merged by the decode
 * kernel's last block of each query tile instead of the combine kernel
 * (MLA_FUSE 1, opt-in: one launch, up to MLA_FUSE_MAX splits, 4 or
 * DSCC_MLA_FUSE_MAX as the executor takes it; the combine above) alone,
 * with MLA_LEAN 6 and with MLA_PREG, and the seesaw
 * schedule (MLA_V3 2, DSCC_MLA_V3=2) as it was and with MLA_LEAN (1 to 3
 * and 5 apply to it: its producer's copies, S's descriptors, no mask and
 * ex2.approx.ftz on whole blocks) and the lazy rescale, at MLA_LEAN 6, and
 * merging its splits itself, then the chunk ring without a producer
 * warpgroup (MLA_V3 3, DSCC_MLA_V3=3: 256 threads, warpgroup 1 issues the
 * copies as FlashMLA's consumers issue its TMA) at the defaults, with
 * MLA_PREG and at MLA_LEAN 6, and the seesaw without a producer
 * warpgroup (MLA_V3 4, DSCC_MLA_V3=4: each consumer refills the chunks it
 * read last, as FlashMLA's) at the defaults and at MLA_LEAN 6, and the
 * chunk ring with its whole blocks of keys by TMA (MLA_TMA 1,
 * DSCC_MLA_TMA=1: rows 23 and 24, the defaults (with MLA_DSM, below) and
 * MLA_LEAN 6; the tensor
 * map made here as the runtime makes it over a KV cache), and by TMA
 * without a producer (rows 25, DSCC_MLA_V3=3, and 26, =4: FlashMLA's
 * organisation and load path), and with a batch row's two row tiles in a
 * cluster of 2 CTAs whose producers multicast each box into both (MLA_MC
 * 1, DSCC_MLA_MC=1: rows 27 and 28, against rows 23 and 24), and with
 * q's last one or two chunks of 64 columns in warpgroup 0's registers
 * (MLA_QREG, DSCC_MLA_QREG=1 and 2: rows 29 and 30 against row 23; with
 * the multicast rows 31 and 32 against 27), and with the splits' parts
 * for the combine as bf16 (MLA_PART_BF16, DSCC_MLA_PART_BF16=1: rows 33
 * and 34 against 7 and 23, 35 all of this session's switches against 32;
 * one more rounding: within 2e-2 of the first, like the lazy rescale), and
 * with the consumers' ping-pong (MLA_PP 1, DSCC_MLA_PP=1: rows 36 and 37
 * against 23 and 24: warpgroup 0 takes S and P of a pair's first block,
 * warpgroup 1 of its second, its S queued behind warpgroup 0's; rows 38
 * and 39 with DSCC_MLA_PP=2: each one's P V of its own block with P from
 * registers; row 40 with DSCC_MLA_PP=1 DSCC_MLA_QREG=1: each one's S with
 * q's rope chunk from registers), and with a tile's two splits as a
 * cluster of 2 CTAs merging through distributed shared memory (MLA_DSM 1,
 * DSCC_MLA_DSM, the default since 2026-12-07: no parts, no combine launch
 * at 2 splits; row 23, the defaults, has it, row 41 is the same without it,
 * DSCC_MLA_DSM=0, the default before, as every other row to 40; rows 42
 * against 36, 43 against 24); rows 44-47 without the consumers' proxy
 * fence after each wait for keys (MLA_AFENCE 0, DSCC_MLA_AFENCE=0: 44
 * against 23, 45 against 42, 46 against 43, 47 the ping-pong's own P from
 * registers with DSM); rows 48-50 the producer's boxes of keys under an
 * evict-first L2 policy (MLA_L2HINT 1, DSCC_MLA_L2HINT=1: 48 against 23,
 * 49 against 44, 50 against 45). Since the thirteenth session row 49 is
 * the defaults (no consumer fences, evict-first keys) and row 23 the
 * defaults before; row 51 is row 49 with the output staged in shared
 * memory and stored a row at a time (MLA_OSTAGE 1, DSCC_MLA_OSTAGE): the
 * defaults in the fourteenth session, row 49 the defaults before; row 52
 * is row 51 with the DSM merge's halves pushed into the other CTA's q
 * tile by st.async, no cluster barrier at the merge (MLA_XPUSH 1,
 * DSCC_MLA_XPUSH): the defaults since the fifteenth session; row 53 gives
 * the q tile free at the split's last S, not after its loop (MLA_XPUSH 2);
 * row 54 is row 52 with warpgroup 0's P V reading P from registers
 * (MLA_PREG 1). (The
 * whole-stage ring, DSCC_MLA_V3=0, and the L2 prefetch, DSCC_MLA_PREFETCH,
 * were timed on 2026-12-06: docs/KERNELS.md.) The shape
 * is bench_gpu's long context: batch 32 (--batch), 4,097 keys (--ctx), 128
 * heads, one query position, causal, bf16 q / cache / out, the split count
 * gen.h's rule gives the executor (cg_mla_splits). No weights, no graph:
 * random bf16 inputs uploaded once; per variant 2 warm-up runs, then
 * --reps (default 20) runs of decode + combine, each timed by events right
 * around its two launches; the median and best time and TFLOPS (2 B H T
 * (576 + 512) FLOPs, bench_gpu's count) are printed per variant, with the
 * median time of the decode kernel alone (an event between the two; all of
 * it where the kernel merges the splits itself). Those runs each start on
 * an idle GPU (the host reads each run's events before it launches the
 * next), so their times also hold the host's launch latency, before the
 * decode kernel and again before the combine; the "back to back" columns
 * time the same runs queued all at once, the host ahead of the GPU, as a
 * CUDA graph replays them (median ms, TFLOPS, the decode kernel alone). Each
 * variant's output is compared with the first's (the same arithmetic in
 * the same order: they agree exactly, but for the lazy rescale and the
 * seesaw, which sums S's chunks in another order: within 2e-2 of
 * max(1, |x|)). Run on the GPU machine:
 *   build/bench_mla [--batch B] [--ctx T] [--reps N] [--variant K[,K...]] [--stamps]
 * (--variant K: the table's row K alone, e.g. for Nsight Compute; 23,27:
 * those rows, the first the one the others' outputs are compared with).
 * --stamps builds each variant with MLA_STAMPS (the kernel's own time
 * stamps: mla_decode.cuh) and after its runs prints where the last run's
 * blocks spent their time: the spread of their starts and ends, and per
 * block (medians and the largest over the blocks, in us at each block's
 * own clock rate) the time until warpgroup 0 has q, then the first
 * block's first chunk of keys, then its first S, its loop per block of 64 keys,
 * warpgroup 1 behind warpgroup 0, the rows' sums, the merge and the exit
 * (with MLA_DSM's merge: to the partner's half, its own half out, and the
 * last cluster barrier).
 * The emulated device (tests/emu) runs `--batch 1 --ctx 130 --reps 1`. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "runtime/cuda.h"

typedef struct {
    const char *label, *v3, *pf, *waitg, *lean, *lazy, *fuse, *preg, *tma;
    const char *mc, *qreg, *pbf; /* MLA_MC, MLA_QREG, MLA_PART_BF16 */
    const char *pp;  /* MLA_PP (NULL: 0) */
    const char *dsm; /* MLA_DSM (NULL: 0): at 2 splits no combine launch */
    const char *more; /* further parameters, "NAME=V[ NAME=V ...]" (at most 5; NULL: none) */
} Variant;

static const Variant VARIANTS[] = {
    {"chunk ring, as before (DSCC_MLA_LEAN=0 DSCC_MLA_LAZY=0)", "1", "0", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"producer's copies at fixed offsets (DSCC_MLA_LEAN=1 DSCC_MLA_LAZY=0)", "1", "0", "1", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"and S's descriptors precomputed (DSCC_MLA_LEAN=2 DSCC_MLA_LAZY=0)", "1", "0", "1", "2", "0", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"and no mask on whole blocks (DSCC_MLA_LEAN=3 DSCC_MLA_LAZY=0)", "1", "0", "1", "3", "0", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"and next S before P V's wait (DSCC_MLA_LEAN=4 DSCC_MLA_LAZY=0)", "1", "0", "1", "4", "0", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"and ex2.approx.ftz on whole blocks (DSCC_MLA_LEAN=5 DSCC_MLA_LAZY=0)", "1", "0", "1", "5", "0", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"and lazy rescale (the default: DSCC_MLA_LEAN=5 DSCC_MLA_LAZY=1)", "1", "0", "1", "5", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"default, the scale folded into P's exponent (DSCC_MLA_LEAN=6)", "1", "0", "1", "6", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"default, warpgroup 0's P V with P from registers (DSCC_MLA_PREG=1)", "1", "0", "1", "5", "1", "0", "1", "0", "0", "0", "0", "0", "0", NULL},
    {"default, LEAN 6 and P from registers (DSCC_MLA_LEAN=6 DSCC_MLA_PREG=1)", "1", "0", "1", "6", "1", "0", "1", "0", "0", "0", "0", "0", "0", NULL},
    {"default, the splits merged in the kernel (DSCC_MLA_FUSE=1)", "1", "0", "1", "5", "1", "1", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"merged in the kernel, LEAN 6 (DSCC_MLA_FUSE=1 DSCC_MLA_LEAN=6)", "1", "0", "1", "6", "1", "1", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"merged in the kernel, P from registers (DSCC_MLA_FUSE=1 DSCC_MLA_PREG=1)", "1", "0", "1", "5", "1", "1", "1", "0", "0", "0", "0", "0", "0", NULL},
    {"seesaw schedule as before (DSCC_MLA_V3=2 DSCC_MLA_LEAN=0 DSCC_MLA_LAZY=0)", "2", "0", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"seesaw schedule, lean, lazy rescale (DSCC_MLA_V3=2)", "2", "0", "1", "5", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"seesaw schedule, and the scale folded into P's exponent (DSCC_MLA_V3=2 DSCC_MLA_LEAN=6)", "2", "0", "1", "6", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"seesaw schedule, lean, lazy rescale, merged in the kernel (DSCC_MLA_V3=2 DSCC_MLA_FUSE=1)", "2", "0", "1", "5", "1", "1", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"no producer warpgroup, 256 threads, warpgroup 1 loads (DSCC_MLA_V3=3)", "3", "0", "1", "5", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"no producer, P from registers (DSCC_MLA_V3=3 DSCC_MLA_PREG=1)", "3", "0", "1", "5", "1", "0", "1", "0", "0", "0", "0", "0", "0", NULL},
    {"no producer, the scale folded into P's exponent (DSCC_MLA_V3=3 DSCC_MLA_LEAN=6)", "3", "0", "1", "6", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"seesaw schedule without a producer, the consumers load (DSCC_MLA_V3=4)", "4", "0", "1", "5", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    {"seesaw without a producer, the scale folded into P's exponent (DSCC_MLA_V3=4 DSCC_MLA_LEAN=6)", "4", "0", "1", "6", "1", "0", "0", "0", "0", "0", "0", "0", "0", NULL},
    /* the whole blocks of keys by TMA through a tensor map over the cache (rows of 1,152 bytes, box 64 x 128 bytes) */
    {"keys by TMA, DSM, with the consumers' proxy fences, no L2 hint (the defaults before the thirteenth session)", "1", "0", "1", "5", "1",
     "0", "0", "1", "0", "0", "0", "0", "1", NULL},
    {"keys by TMA, the scale folded into P's exponent (DSCC_MLA_TMA=1 DSCC_MLA_LEAN=6)", "1", "0", "1", "6", "1", "0", "0", "1", "0", "0", "0", "0", "0", NULL},
    {"no producer, keys by TMA from warpgroup 1 (DSCC_MLA_V3=3 DSCC_MLA_TMA=1)", "3", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "0", "0", NULL},
    {"seesaw without a producer, keys by TMA from each consumer (DSCC_MLA_V3=4 DSCC_MLA_TMA=1)", "4", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "0", "0", NULL},
    /* a batch row's two row tiles as a cluster of 2 CTAs, each box of keys multicast into both (L2 sends a block once a pair) */
    {"keys by TMA, multicast to a batch row's two tiles (DSCC_MLA_TMA=1 DSCC_MLA_MC=1)", "1", "0", "1", "5", "1", "0", "0", "1", "1", "0", "0", "0", "0", NULL},
    {"keys by TMA, multicast, the scale folded into P's exponent (DSCC_MLA_TMA=1 DSCC_MLA_MC=1 DSCC_MLA_LEAN=6)", "1", "0", "1", "6", "1",
     "0", "0", "1", "1", "0", "0", "0", "0", NULL},
    /* q's last chunks of 64 columns in warpgroup 0's registers (the rope chunk; and the one before), S's wgmma for them RS */
    {"keys by TMA, q's rope chunk from registers (DSCC_MLA_TMA=1 DSCC_MLA_QREG=1)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "1", "0", "0", "0", NULL},
    {"keys by TMA, q's last two chunks from registers (DSCC_MLA_TMA=1 DSCC_MLA_QREG=2)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "2", "0", "0", "0", NULL},
    {"keys by TMA, multicast, q's rope chunk from registers (DSCC_MLA_TMA=1 DSCC_MLA_MC=1 DSCC_MLA_QREG=1)", "1", "0", "1", "5", "1", "0",
     "0", "1", "1", "1", "0", "0", "0", NULL},
    {"keys by TMA, multicast, q's last two chunks from registers (DSCC_MLA_TMA=1 DSCC_MLA_MC=1 DSCC_MLA_QREG=2)", "1", "0", "1", "5",
     "1", "0", "0", "1", "1", "2", "0", "0", "0", NULL},
    /* the splits' parts for the combine as bf16 (half the bytes written by the decode kernel and read by the combine) */
    {"default, the splits' parts as bf16 (DSCC_MLA_PART_BF16=1)", "1", "0", "1", "5", "1", "0", "0", "0", "0", "0", "1", "0", "0", NULL},
    {"keys by TMA, the parts as bf16 (DSCC_MLA_TMA=1 DSCC_MLA_PART_BF16=1)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "1", "0", "0", NULL},
    {"keys by TMA, multicast, q's last two chunks from registers, the parts as bf16 (DSCC_MLA_TMA=1 DSCC_MLA_MC=1 "
     "DSCC_MLA_QREG=2 DSCC_MLA_PART_BF16=1)", "1", "0", "1", "5", "1", "0", "0", "1", "1", "2", "1", "0", "0", NULL},
    /* the consumers' ping-pong: warpgroup 0 S and P of a pair's first block, warpgroup 1 of its second, S1 behind S0 */
    {"keys by TMA, the consumers' ping-pong (DSCC_MLA_TMA=1 DSCC_MLA_PP=1)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "1", "0", NULL},
    {"keys by TMA, ping-pong, the scale folded into P's exponent (DSCC_MLA_TMA=1 DSCC_MLA_PP=1 DSCC_MLA_LEAN=6)", "1", "0", "1", "6", "1",
     "0", "0", "1", "0", "0", "0", "1", "0", NULL},
    {"keys by TMA, ping-pong, each one's own P from registers (DSCC_MLA_TMA=1 DSCC_MLA_PP=2)", "1", "0", "1", "5", "1", "0", "0", "1", "0",
     "0", "0", "2", "0", NULL},
    {"keys by TMA, ping-pong, own P from registers, LEAN 6 (DSCC_MLA_TMA=1 DSCC_MLA_PP=2 DSCC_MLA_LEAN=6)", "1", "0", "1", "6", "1", "0",
     "0", "1", "0", "0", "0", "2", "0", NULL},
    {"keys by TMA, ping-pong, q's rope chunk from registers (DSCC_MLA_TMA=1 DSCC_MLA_PP=1 DSCC_MLA_QREG=1)", "1", "0", "1", "5", "1", "0",
     "0", "1", "0", "1", "0", "1", "0", NULL},
    /* clusters of a tile's two splits merging through distributed shared memory: no parts, no combine launch (row 41,
     * without it: the parts and the combine, as every row to 40 but 23) */
    {"keys by TMA, the splits merged by the combine kernel (DSCC_MLA_TMA=1 DSCC_MLA_DSM=0, the default before 2026-12-07)", "1", "0", "1",
     "5", "1", "0", "0", "1", "0", "0", "0", "0", "0", NULL},
    {"keys by TMA, ping-pong, merged in distributed shared memory (DSCC_MLA_TMA=1 DSCC_MLA_PP=1 DSCC_MLA_DSM=1)", "1", "0", "1", "5", "1",
     "0", "0", "1", "0", "0", "0", "1", "1", NULL},
    {"keys by TMA, LEAN 6, merged in distributed shared memory (DSCC_MLA_TMA=1 DSCC_MLA_LEAN=6 DSCC_MLA_DSM=1)", "1", "0", "1", "6", "1",
     "0", "0", "1", "0", "0", "0", "0", "1", NULL},
    /* the consumers straight from each wait for keys to their wgmma, no proxy fence (rows 44-47 against 23, 42, 43, 42) */
    {"keys by TMA, DSM, no consumer proxy fences, no L2 hint (DSCC_MLA_AFENCE=0 DSCC_MLA_L2HINT=0)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "0", "1",
     "MLA_AFENCE=0"},
    {"ping-pong, DSM, no consumer proxy fences (DSCC_MLA_PP=1 DSCC_MLA_AFENCE=0)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "1",
     "1", "MLA_AFENCE=0"},
    {"LEAN 6, DSM, no consumer proxy fences (DSCC_MLA_LEAN=6 DSCC_MLA_AFENCE=0)", "1", "0", "1", "6", "1", "0", "0", "1", "0", "0", "0", "0",
     "1", "MLA_AFENCE=0"},
    {"ping-pong, own P from registers, DSM, no consumer proxy fences (DSCC_MLA_PP=2 DSCC_MLA_AFENCE=0)", "1", "0", "1", "5", "1", "0", "0",
     "1", "0", "0", "0", "2", "1", "MLA_AFENCE=0"},
    /* the producer's boxes of keys under an evict-first L2 policy (rows 48-50 against 23, 44, 45) */
    {"keys by TMA, DSM, with the consumers' proxy fences, keys evict-first (DSCC_MLA_AFENCE=1 DSCC_MLA_L2HINT=1)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "0", "1",
     "MLA_L2HINT=1"},
    {"keys by TMA, DSM, no consumer proxy fences, evict-first keys, each thread's output pairs straight out (the defaults before the fourteenth session: DSCC_MLA_OSTAGE=0)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "0",
     "0", "0", "1", "MLA_L2HINT=1 MLA_AFENCE=0"},
    {"ping-pong, DSM, evict-first keys, no consumer proxy fences (DSCC_MLA_PP=1 DSCC_MLA_L2HINT=1 DSCC_MLA_AFENCE=0)", "1", "0", "1", "5",
     "1", "0", "0", "1", "0", "0", "0", "1", "1", "MLA_L2HINT=1 MLA_AFENCE=0"},
    /* the output through shared memory, each warp's rows stored 512 bytes at a time (row 51 against 49) */
    {"keys by TMA, DSM pulled, no consumer proxy fences, evict-first keys, the output staged in shared memory (the defaults before the fifteenth session: DSCC_MLA_XPUSH=0)",
     "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "0", "1", "MLA_L2HINT=1 MLA_AFENCE=0 MLA_OSTAGE=1"},
    /* the DSM merge's halves pushed into the other CTA's q tile by st.async, no cluster barrier at the merge (row 52 against 51) */
    {"the defaults: keys by TMA, DSM pushed, no consumer proxy fences, evict-first keys, the output staged in shared memory (DSCC_MLA_XPUSH=1)",
     "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "0", "1", "MLA_L2HINT=1 MLA_AFENCE=0 MLA_OSTAGE=1 MLA_XPUSH=1"},
    /* the q tile given free at the split's last S, so the other CTA's half lands during the last softmax and P V (row 53 against 52) */
    {"the defaults, the q tile free for the other CTA's half at the last S (MLA_XPUSH=2)", "1", "0", "1", "5", "1", "0", "0", "1", "0", "0", "0", "0", "1",
     "MLA_L2HINT=1 MLA_AFENCE=0 MLA_OSTAGE=1 MLA_XPUSH=2"},
    /* warpgroup 0's P V with P from registers beside today's defaults (row 54 against 52; 1-3% slower on an H100, 2026-12-08) */
    {"the defaults, warpgroup 0's P from registers (DSCC_MLA_PREG=1)", "1", "0", "1", "5", "1", "0", "1", "1", "0", "0", "0", "0", "1",
     "MLA_L2HINT=1 MLA_AFENCE=0 MLA_OSTAGE=1 MLA_XPUSH=1"}};
enum { NV = (int)(sizeof VARIANTS / sizeof *VARIANTS), HQ = 128 };
_Static_assert(NV <= 64, "--variant's rows are the bits of a 64-bit word");

/* The decode kernel's and the combine's sources for variant v at (B, T). */
static void sources(Arena *a, const Variant *v, long long B, long long T, const char *fmax, bool stamps, CgSource src[2]) {
    const char *bs = arena_printf(a, "%lldLL", B), *ts = arena_printf(a, "%lldLL", T);
    CgDefine d[] = {{"MLA_B", bs},         {"MLA_S", "1LL"},      {"MLA_T", ts},       {"MLA_HQ", "128LL"},
                    {"MLA_KT", ts},        {"MLA_OUT_BF16", "1"}, {"MLA_CAUSAL", "1"}, {"MLA_SCALE", "0.1352337788f"},
                    {"MLA_V3", v->v3},     {"MLA_PF", v->pf},       {"MLA_WAITG", v->waitg},
                    {"MLA_LEAN", v->lean}, {"MLA_LAZY", v->lazy}, {"MLA_FUSE", v->fuse}, {"MLA_PREG", v->preg},
                    {"MLA_FUSE_MAX", fmax}, {"MLA_TMA", v->tma}, {"MLA_MC", v->mc}, {"MLA_QREG", v->qreg}, {"MLA_PP", v->pp ? v->pp : "0"},
                    {"MLA_PART_BF16", v->pbf}, {"MLA_DSM", v->dsm ? v->dsm : "0"}, {0}, {0}, {0}, {0}, {0}, {0}};
    int nd = (int)(sizeof d / sizeof *d) - 6;
    if (stamps) d[nd++] = (CgDefine){"MLA_STAMPS", "5"}; /* the stamps' buffer in argument slot 5 */
    for (const char *m = v->more; m && *m;) { /* "NAME=V NAME=V" into the last slots (5 beside the stamps') */
        const size_t w = strcspn(m, " "), eq = strcspn(m, "= ");
        if (m[eq] != '=' || eq == 0 || eq + 1 >= w || nd == (int)(sizeof d / sizeof *d)) { /* (a row of the table: fixed here) */
            fprintf(stderr, "bench_mla: the row '%s' has a malformed parameter, or more than 5, in '%s'\n", v->label, v->more);
            abort();
        }
        d[nd++] = (CgDefine){arena_printf(a, "%.*s", (int)eq, m), arena_printf(a, "%.*s", (int)(w - eq - 1), m + eq + 1)};
        m += w + (m[w] == ' ');
    }
    CgDefine c[] = {{"MLA_B", bs}, {"MLA_S", "1LL"}, {"MLA_HQ", "128LL"}, {"MLA_OUT_BF16", "1"}, {"MLA_PART_BF16", v->pbf}};
    src[0] = (CgSource){"mla_bench", cg_kernel_instance(a, "mla_decode", "mla_bench", d, nd),
                        {"codegen/kernels/mla_decode.cuh", 0, 0}};
    src[1] = (CgSource){"mla_bench_combine",
                        cg_kernel_instance(a, "mla_decode_combine", "mla_bench_combine", c, (int)(sizeof c / sizeof *c)),
                        {"codegen/kernels/mla_decode_combine.cuh", 0, 0}};
}

/* reps runs of variant v (decode, then the combine where the decode kernel does not merge the splits itself),
 * after 2 more not timed, each timed by events right around its launches: ms[r] the two, dms[r] the decode
 * kernel alone (an event between them). queued false: each run's times read before the next is launched (the
 * GPU idle before each run, so its time also holds the host's launch latency); true: all queued first, the
 * host ahead of the GPU, then read (the kernels back to back, as in a CUDA graph). */
static bool launch_runs(RtCuda *gpu, DiagEngine *d, const Variant *v, RtKernel *k, RtKernel *kc, long long grid, long long nsp, long long n,
                        const char *fmax, void **p, int reps, bool queued, float *ms, float *dms) {
    const int nr = reps + 2;
    RtEvent **ev = calloc((size_t)(3 * nr), sizeof *ev);
    bool ok = ev != NULL;
    for (int i = 0; ok && i < (queued ? 3 * nr : 3); i++) ok = (ev[i] = rt_cuda_event(gpu, d)) != NULL;
    const bool comb = nsp > 1 && (*v->fuse == '0' || nsp > atoi(fmax)) && /* the kernel merges at most fmax splits itself */
                      !(v->dsm && *v->dsm == '1' && nsp == 2);         /* (MLA_DSM: 2 in its clusters) */
    for (int r = 0; ok && r < nr; r++) {
        RtEvent **e = ev + (queued ? 3 * r : 0);
        ok = rt_cuda_event_record(gpu, d, e[0]) && rt_cuda_launch_async(gpu, d, k, (unsigned)grid, *v->v3 >= '3' ? 256 : 384, 3 * 73728 + 1024 + 256, p) &&
             rt_cuda_event_record(gpu, d, e[1]) && (!comb || rt_cuda_launch_async(gpu, d, kc, (unsigned)((n * 128 + 255) / 256), 256, 0, p)) &&
             rt_cuda_event_record(gpu, d, e[2]);
        if (ok && !queued && r >= 2) ok = rt_cuda_event_ms(gpu, d, e[0], e[2], &ms[r - 2]) && rt_cuda_event_ms(gpu, d, e[0], e[1], &dms[r - 2]);
    }
    for (int r = 2; ok && queued && r < nr; r++)
        ok = rt_cuda_event_ms(gpu, d, ev[3 * r], ev[3 * r + 2], &ms[r - 2]) && rt_cuda_event_ms(gpu, d, ev[3 * r], ev[3 * r + 1], &dms[r - 2]);
    for (int i = 0; ev && i < 3 * nr; i++) rt_cuda_event_free(gpu, ev[i]);
    free(ev);
    return ok;
}

/* the median and the largest of x[0, n) (sorted in place), "-" where n is 0 */
static const char *med_max(Arena *a, double *x, int n) {
    if (n == 0) return "-";
    bench_sort_d(x, n);
    return arena_printf(a, "%.2f / %.2f", x[n / 2], x[n - 1]);
}

/* --stamps: the last run's blocks (16 words each: mla_decode.cuh's MLA_STAMPS) as one table row (NULL: no memory). A block's cycles
 * become us at its own rate (its clock64 span over its globaltimer span); a stamp left 0 (a path without it) leaves
 * the block out of that column. Block i is split i % nsp of its tile (MLA_DSM's order; the others' splits have the
 * same sizes). */
static const char *stamp_row(Arena *a, const char *label, const uint64_t *w, long long grid, long long nsp, long long T) {
    const long long nkb = (T + 63) / 64, per = (nkb + nsp - 1) / nsp;
    double *x = malloc(sizeof(double) * (size_t)(11 * grid));
    if (!x) return NULL;
    int n[11] = {0};
    uint64_t g0 = UINT64_MAX, g0max = 0, g7min = UINT64_MAX, g7 = 0;
    for (long long i = 0; i < grid; i++) {
        const uint64_t *c = w + 16 * i;
        const long long sp = i % nsp, nb = nkb - sp * per < per ? nkb - sp * per : per;
        if (!c[0] || !c[7] || c[7] <= c[0] || c[6] <= c[1]) continue;
        g0 = c[0] < g0 ? c[0] : g0, g0max = c[0] > g0max ? c[0] : g0max;
        g7 = c[7] > g7 ? c[7] : g7, g7min = c[7] < g7min ? c[7] : g7min;
        const double us = (double)(c[7] - c[0]) / 1e3 / (double)(c[6] - c[1]); /* us a cycle */
        const uint64_t done = c[4] > c[3] ? c[4] : c[3];
        x[n[0]++] = (double)(c[7] - c[0]) / 1e3;
        if (c[2]) x[grid + n[1]++] = (double)(c[2] - c[1]) * us;
        if (c[2] && c[3] && nb > 1) x[2 * grid + n[2]++] = (double)(c[3] - c[2]) * us / (double)(nb - 1);
        if (c[3] && c[4]) x[3 * grid + n[3]++] = ((double)c[4] - (double)c[3]) * us;
        if (c[3] && c[4] && c[5]) x[4 * grid + n[4]++] = ((double)c[5] - (double)done) * us;
        if (c[5]) x[5 * grid + n[5]++] = (double)(c[6] - c[5]) * us;
        if (c[5] && c[8]) x[6 * grid + n[6]++] = ((double)c[8] - (double)c[5]) * us; /* MLA_DSM's merge: to the partner's half */
        if (c[8] && c[9]) x[7 * grid + n[7]++] = ((double)c[9] - (double)c[8]) * us; /* its own half merged and out */
        if (c[9]) x[8 * grid + n[8]++] = ((double)c[6] - (double)c[9]) * us;         /* the last cluster barrier */
        if (c[10]) x[9 * grid + n[9]++] = ((double)c[10] - (double)c[1]) * us;       /* warpgroup 0 past its wait for q */
        if (c[11]) x[10 * grid + n[10]++] = ((double)c[11] - (double)c[1]) * us;     /* ... for the first chunk of keys */
    }
    const char *row = n[0] == 0 ? arena_printf(a, "| %s | no block left its stamps |", label)
                                : arena_printf(a, "| %s | %d | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", label, n[0],
                                               (double)(g7 - g0) / 1e3, (double)(g0max - g0) / 1e3, (double)(g7 - g7min) / 1e3,
                                               med_max(a, x, n[0]), med_max(a, x + 9 * grid, n[9]), med_max(a, x + 10 * grid, n[10]),
                                               med_max(a, x + grid, n[1]), med_max(a, x + 2 * grid, n[2]),
                                               med_max(a, x + 3 * grid, n[3]), med_max(a, x + 4 * grid, n[4]), med_max(a, x + 5 * grid, n[5]),
                                               med_max(a, x + 6 * grid, n[6]), med_max(a, x + 7 * grid, n[7]), med_max(a, x + 8 * grid, n[8]));
    free(x);
    return row;
}

/* --variant's list "K[,K...]" (rows 1 to NV) into the bits of *rows; false on anything else */
static bool parse_rows(const char *s, uint64_t *rows) {
    *rows = 0;
    for (const char *p = s;; p++) {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p || x < 1 || x > NV || (*end && *end != ',')) return false;
        *rows |= 1ull << (x - 1);
        if (!*end) return true;
        p = end;
    }
}

static bool parse_args(int argc, char **argv, long long *B, long long *T, int *reps, uint64_t *rows, bool *stamps) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stamps") == 0) {
            *stamps = true;
            continue;
        }
        long long *dst = strcmp(argv[i], "--batch") == 0 ? B : strcmp(argv[i], "--ctx") == 0 ? T : NULL;
        if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) {
            if (!parse_rows(argv[++i], rows)) {
                fprintf(stderr, "bench_mla: --variant takes rows 1 to %d, one or several separated by commas, not '%s'\n", NV, argv[i]);
                return false;
            }
            continue;
        }
        if ((dst || strcmp(argv[i], "--reps") == 0) && i + 1 < argc) {
            char *end;
            long long x = strtoll(argv[++i], &end, 10);
            if (*end || x < 1 || x > (dst == T ? 1 << 20 : 4096)) {
                fprintf(stderr, "bench_mla: %s takes a positive integer within bounds, not '%s'\n", argv[i - 1], argv[i]);
                return false;
            }
            if (dst) *dst = x;
            else *reps = (int)x;
            continue;
        }
        fprintf(stderr, "usage: bench_mla [--batch B] [--ctx T] [--reps N] [--variant K[,K...] (rows 1 to %d: those alone)] [--stamps]\n", NV);
        return false;
    }
    return true;
}

int main(int argc, char **argv) {
    long long B = 32, T = 4097;
    int reps = 20;
    uint64_t rows = 0; /* --variant's rows (0: all) */
    bool stamps = false;
    if (!parse_args(argc, argv, &B, &T, &reps, &rows, &stamps)) return 2;
    if (!rows) rows = NV == 64 ? ~0ull : (1ull << NV) - 1;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtCuda *gpu = rt_cuda_open(d, 0);
    if (!gpu) return 3;
    const long long nsp = cg_mla_splits(1, B, HQ, T), grid = B * 2 * nsp, n = B * HQ;
    /* the most splits the kernel merges itself (gen_attn.c's default, or DSCC_MLA_FUSE_MAX as the executor takes it) */
    const char *fenv = getenv("DSCC_MLA_FUSE_MAX"), *fmax = fenv && *fenv ? fenv : "4";
    if (atoi(fmax) < 2 || atoi(fmax) > 64) {
        fprintf(stderr, "bench_mla: DSCC_MLA_FUSE_MAX must be 2 to 64, not '%s'\n", fmax);
        return 2;
    }
    const size_t nq = (size_t)(B * HQ * 576), nk = (size_t)(B * T * 576), no = (size_t)(n * 512);
    const size_t part = (size_t)(64 + nsp * n * 512 + nsp * n) * sizeof(float);
    uint16_t *q = malloc(nq * 2), *kv = malloc(nk * 2), *out = malloc(no * 2), *first = malloc(no * 2);
    float *ms = malloc(sizeof(float) * (size_t)reps), *dms = malloc(sizeof(float) * (size_t)reps); /* decode + combine, decode */
    RtDevPtr dq, dk, dout, dpart, dstamp = 0;
    if (!q || !kv || !out || !first || !ms || !dms) return 3;
    uint64_t rng = 88172645463325252ull;
    bench_fill_bf16(q, nq, &rng), bench_fill_bf16(kv, nk, &rng);
    if (!rt_cuda_alloc(gpu, d, nq * 2, &dq) || !rt_cuda_alloc(gpu, d, nk * 2, &dk) || !rt_cuda_alloc(gpu, d, no * 2, &dout) ||
        !rt_cuda_alloc(gpu, d, part, &dpart) || !rt_cuda_upload(gpu, d, dq, q, nq * 2) || !rt_cuda_upload(gpu, d, dk, kv, nk * 2))
        return 3;
    /* MLA_TMA's tensor map over the cache's B x T rows of 1,152 bytes (box 64 rows x 128 bytes), as the runtime makes it */
    unsigned char *map = aligned_alloc(64, 128);
    RtDevPtr dmap;
    if (!map || !rt_cuda_tensor_map_2d(gpu, d, map, dk, B * T, 1152, 1152, 64, 128) || !rt_cuda_alloc(gpu, d, 128, &dmap) ||
        !rt_cuda_upload(gpu, d, dmap, map, 128))
        return 3;
    free(map);
    const double flops = 2.0 * (double)B * HQ * (double)T * (576 + 512);
    uint64_t *stamp = stamps ? calloc((size_t)(16 * grid), sizeof *stamp) : NULL;
    if (stamps && (!stamp || !rt_cuda_alloc(gpu, d, (size_t)(128 * grid), &dstamp))) return 3;
    printf("MLA decode kernel alone: batch %lld, context %lld, 128 heads, %lld splits (%lld blocks; the kernel merges up to %s itself), "
           "%d runs each\n\n", B, T, nsp, grid, fmax, reps);
    printf("| variant | median ms | TFLOPS | best ms | TFLOPS | decode alone, median ms | back to back: median ms | TFLOPS | decode "
           "alone, ms | output as the first |\n|---|---|---|---|---|---|---|---|---|---|\n");
    int status = 0, ns = 0;
    const char *srow[NV]; /* --stamps: a row for each variant run */
    for (int vi = 0, lead = 1; vi < NV; vi++) {
        if (!(rows >> vi & 1u)) continue;
        const bool ref = lead; /* the first row run: the others are compared with it */
        lead = 0;
        CgSource src[2];
        CgBinary bin[2] = {{0}};
        RtKernel *kk[2];
        sources(a, &VARIANTS[vi], B, T, fmax, stamps, src);
        if (!bench_kernels(a, d, gpu, src, 2, bin, kk)) return 3;
        RtKernel *k = kk[0], *kc = kk[1];
        CgArgs args = {.t = {dq, dk, dout, dpart, *VARIANTS[vi].tma == '1' ? dmap : 0, dstamp}};
        void *p[] = {&args};
        if (stamps && (memset(stamp, 0, (size_t)(128 * grid)), !rt_cuda_upload(gpu, d, dstamp, stamp, (size_t)(128 * grid))))
            return 3; /* (a path without some stamp leaves it 0, not the last variant's) */
        /* each run alone (the GPU idle before it: the host's launch time between the events too), as before; then the
         * same runs queued back to back, the host ahead of the GPU (launch_runs: bb, the median of those) */
        if (!launch_runs(gpu, d, &VARIANTS[vi], k, kc, grid, nsp, n, fmax, p, reps, false, ms, dms)) return 3;
        float *bb = malloc(sizeof(float) * (size_t)reps), *bbd = malloc(sizeof(float) * (size_t)reps);
        if (!bb || !bbd || !launch_runs(gpu, d, &VARIANTS[vi], k, kc, grid, nsp, n, fmax, p, reps, true, bb, bbd)) return 3;
        bench_sort_ms(bb, reps);
        bench_sort_ms(bbd, reps);
        const double bmed = bb[reps / 2], bdec = bbd[reps / 2];
        free(bb), free(bbd);
        if (!rt_cuda_download(gpu, d, ref ? first : out, dout, no * 2)) return 3;
        if (stamps && (!rt_cuda_download(gpu, d, stamp, dstamp, (size_t)(128 * grid)) ||
                       !(srow[ns++] = stamp_row(a, VARIANTS[vi].label, stamp, grid, nsp, T))))
            return 3;
        size_t diff = 0;
        double worst = 0; /* the seesaw sums S's chunks in another order: its output may differ by a few bf16 steps */
        for (size_t i = 0; !ref && i < no; i++) {
            const uint32_t ua = (uint32_t)out[i] << 16, ub = (uint32_t)first[i] << 16;
            float fa, fb;
            memcpy(&fa, &ua, 4), memcpy(&fb, &ub, 4);
            const double e = fabs((double)fa - (double)fb) / (fabs((double)fb) > 1.0 ? fabs((double)fb) : 1.0);
            diff += out[i] != first[i];
            if (!(e <= worst)) worst = e;
        }
        char as[64];
        snprintf(as, sizeof as, ref ? "(the first)" : !diff ? "same" : worst <= 2e-2 ? "max diff %.1e" : "DIFFERS (max diff %.1e)", worst);
        bench_sort_ms(ms, reps);
        bench_sort_ms(dms, reps);
        const double med = ms[reps / 2], best = ms[0];
        printf("| %s | %.4f | %.1f | %.4f | %.1f | %.4f | %.4f | %.1f | %.4f | %s |\n", VARIANTS[vi].label, med, flops / (med * 1e-3) / 1e12,
               best, flops / (best * 1e-3) / 1e12, dms[reps / 2], bmed, flops / (bmed * 1e-3) / 1e12, bdec, as);
        fflush(stdout); /* a later variant that hangs leaves these lines behind */
        if (!(worst <= 2e-2)) fprintf(stderr, "bench_mla: %s: %zu of %zu outputs differ from the first variant's\n", VARIANTS[vi].label, diff, no);
        status |= !(worst <= 2e-2);
        cg_binary_free(&bin[0]);
        cg_binary_free(&bin[1]);
    }
    if (ns)
        printf("\nwhere the last run's blocks spent their time (--stamps; us, median / largest over the blocks):\n\n| variant | blocks | "
               "span | starts spread over | ends spread over | a block, entry to exit | to q in (warpgroup 0 past its wait) | to the "
               "first keys in (its first chunk) | to its first S taken | its loop a block of 64 "
               "keys | warpgroup 1 done after 0 | rows' sums | merge and exit | of which, the DSM merge: to the partner's half | its "
               "own half out | the last cluster barrier |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < ns; i++) printf("%s\n", srow[i]);
    rt_cuda_close(gpu);
    free(stamp);
    free(q), free(kv), free(out), free(first), free(ms), free(dms);
    arena_free(a);
    return status;
}
