#!/usr/bin/env bash
# rounds.sh — on the GPU machine, the session's check and timing split into
# parts that each fit one device call (10 minutes), most important first:
#   rounds.sh check   the GPU unit tests of the new kernels (MLA decode,
#                     skinny-M GEMM, sampler, plan), test_gpu_ops on the
#                     wgmma tile, the fixtures end to end;
#   rounds.sh bench   bench_gpu (two full-width V3 layers) with the MLA
#                     decode kernel and without it (DSCC_MLA_DECODE=0, the
#                     baseline in the same run), then with every step
#                     absorbed (attn_impl=absorb; the default, auto, takes
#                     the naive form for a prefill from position 0), then
#                     the FP8 GEMM sweep;
#   rounds.sh gpu     bench_gpu alone (attn_impl=absorb, then auto);
#   rounds.sh gemm    the FP8 GEMM sweep alone (writes gemm_table.txt);
#   rounds.sh sweep   the decode step's switches: test_gpu_skinny, test_gpu_expert test_scan,
#                     test_gpu_ops with DSCC_SKINNY_PSPLIT=1 DSCC_SKINNY_FOLD=1
#                     DSCC_EXPERT_SCAN=1, a tiny model's logits with and
#                     without DSCC_EINSUM_KV=1 (same_logits), the pipelined skinny form's
#                     cluster K split (psplit=1) per V3 shape at M = 1 (SWEEP_PRE=0: none
#                     of these), then bench_gpu
#                     with each set of SWEEP_SETS (default: the defaults;
#                     DSCC_SKINNY_PSPLIT=1 alone; DSCC_SKINNY_FOLD=1 alone; the
#                     fold with DSCC_SKINNY_FOLD_HOIST=1 (the MoE add + rmsnorm
#                     folded into the shared expert's gate + up) and
#                     DSCC_EINSUM_ROPE=0; with the rope (q's rope in the
#                     einsum, a default since the eleventh session), and
#                     DSCC_ROUTE_FUSE=1 too (the routing in the router), and
#                     DSCC_EINSUM_KV=1 too (the latent row in the einsum); the
#                     fold without its L2 prefetch, DSCC_SKINNY_FOLD_PF=0;
#                     DSCC_EXPERT_SCAN=0, the sort's old one-thread walk;
#                     DSCC_EINSUM_ROPE=0, q's old rope kernel): the
#                     batch-1 "step ms, CUDA graph", its per-kind ms
#                     (fp8_linear, elementwise) and its launches;
#   rounds.sh rows    test_gpu_rows, then bench_gpu with the wide row kernels
#                     and without (DSCC_ROWS_WIDE=0, the baseline in the same run);
#   rounds.sh glue    test_gpu_rows, then bench_gpu with the row kernels'
#                     prefill form and without (DSCC_ROWS_PREFILL=0, the
#                     baseline in the same run);
#   rounds.sh gluetrace  the 1,024-token prefill traced with the prefill
#                     form and without: the row kernels' times and GB/s;
#   rounds.sh tma     the large-M TMA GEMM's forms at M = 256, 1024, 4096:
#                     128 x 128 (DSCC_TMA_V2=0), 128 x 256, 128 x 256 in
#                     2-CTA clusters (DSCC_TMA_CLUSTER=1), beside cuBLASLt;
#   rounds.sh expert  test_gpu_expert, then bench_gpu with each
#                     DSCC_EXPERT_TMA value of EXPERT_LV (default: 3, the
#                     default, the routed experts' TMA form at level 3 at
#                     every row count: a unit a pass of 128 rows and 256
#                     outputs (bn=256 since the ninth session), x's rows
#                     read once for both 128-column halves, 128 KB of
#                     weights in flight an SM, the static walk u += 132;
#                     3,bn=128 the old units of 128 outputs;
#                     3,epi=1 also gate's and up's tile j in one
#                     unit, silu(gate) x up quantized in its epilogue (no
#                     gate and up written and read back, no silu-mul-
#                     quantize phase), after test_gpu_ops with it; 3,mt=2
#                     passes of 256 rows, so an expert of 129-256 rows
#                     reads each weight tile in one unit: if its DRAM
#                     excess is the later passes' re-reads, mt=2 gains
#                     most at the prefill); other values: 3,dyn=1 level 3
#                     with its units handed out by an atomic counter;
#                     3,dyn=1,kp=2|3 the weights' boxes of 2 or 3 adjacent
#                     K blocks issued together; 3,bn=256,ef=0 or 3,dyn=1,ef=0 without the
#                     L2 evict-first hint on one-pass tiles' weights; 2
#                     level 2, a block all of an expert's rows; 3,mt=2
#                     passes of 256 rows (dyn=1 with mt=2 spills 144-184
#                     bytes, kp=2 without dyn 40-48); 3,minr=2048
#                     the tile at up to 2,048 routed rows, decode steps; 0
#                     the tile everywhere);
#                     compare the steps' fp8_expert_linear ms;
#   several parts run in one call in the order given (rounds.sh check gpu);
#   rounds.sh mla     MLA's decode kernel alone, its variants side by side
#                     (bench_mla: batch 32, context 4,097, then 8,193, then
#                     batch 1 and 128 at 4,097): the "median ms" column, the
#                     default against DSCC_MLA_LEAN=6, DSCC_MLA_PREG=1, the
#                     splits merged in the kernel (DSCC_MLA_FUSE=1) and the
#                     ring without a producer warpgroup (DSCC_MLA_V3=3, rows
#                     18-20), the seesaw without one (=4, rows 21-22) and the
#                     keys by TMA (DSCC_MLA_TMA=1, rows 23-24, against row 7;
#                     25 with DSCC_MLA_V3=3 against 18, 26 with =4 against 21),
#                     and test_gpu_ops with DSCC_MLA_TMA=1, alone and with
#                     DSCC_MLA_V3=4 (the executor's map over each KV cache),
#                     and with DSCC_MLA_MC=1 (the keys multicast to a batch
#                     row's two tiles, rows 27-28 against 23-24) and with q's
#                     last chunks in registers (DSCC_MLA_QREG=1, 2: rows 29-30
#                     against 23, 31-32 with the multicast against 27) and the
#                     splits' parts as bf16 (DSCC_MLA_PART_BF16=1: 33 against 7,
#                     34 against 23, 35 all three against 32); every table
#                     also has "back to back" columns (the runs queued at once:
#                     no host launch latency inside the events). Since the
#                     eleventh session row 23 (the defaults) has the DSMEM
#                     merge (DSCC_MLA_DSM, now a default) and row 41 is it
#                     without (DSCC_MLA_DSM=0, the old default): rows 24-40
#                     (all MLA_DSM 0) compare with 41 where they did with 23;
#   rounds.sh mlamc   this session's three MLA switches alone, for a short call:
#                     test_gpu_mla's multicast, q-in-registers and bf16-part
#                     cases, then bench_mla rows 7, 23, 41 (23 without the DSMEM
#                     merge: the baseline of the rest), 27, 29, 30, 31, 32, 33,
#                     34, 35 in one process (batch 32 at 4,097 and 8,193 keys,
#                     batch 128), then test_gpu_ops with DSCC_MLA_TMA=1
#                     DSCC_MLA_MC=1 DSCC_MLA_QREG=2 DSCC_MLA_PART_BF16=1 and with
#                     DSCC_MLA_TMA=1 DSCC_MLA_QREG=1;
#   rounds.sh mlapp   the consumers' ping-pong (DSCC_MLA_PP=1, 2): test_gpu_mla's ping-pong
#                     cases, then bench_mla rows 23, 41, 36, 38 (the defaults; the TMA
#                     default without the DSMEM merge, DSCC_MLA_DSM=0; with the
#                     ping-pong, and with its own P from registers) and 24, 37, 39 (the
#                     same at LEAN 6) and 40 (the ping-pong with q's rope chunk from
#                     registers) in one process at batch 32 with 4,097 and 8,193 keys
#                     and batch 128, then test_gpu_ops with DSCC_MLA_PP=1 and =2;
#   rounds.sh mladsm  a tile's two splits merged through distributed shared memory (DSCC_MLA_DSM, the
#                     default since the eleventh session): test_gpu_mla's dsm cases, then bench_mla
#                     rows 23, 41 (the defaults, merged in DSMEM: no combine launch; the same with
#                     DSCC_MLA_DSM=0, the parts and the combine: before the eleventh session these two
#                     rows were the other way round), 24, 43 (at LEAN 6: without, with) and 36, 42 (the
#                     ping-pong: without, with) in one
#                     process at batch 32 with 4,097 and 8,193 keys (2 splits), rows 23, 41 at batch
#                     128 and 1 (no merge there: what the clusters cost), then test_gpu_ops with
#                     DSCC_MLA_DSM=1 (explicitly: the default) and with DSCC_MLA_DSM=1 DSCC_MLA_PP=1;
#   rounds.sh ppncu   Nsight Compute's speed-of-light, compute, memory, stall and scheduler sections
#                     on bench_mla rows 23 (the TMA default) and 36 (DSCC_MLA_PP=1);
#   rounds.sh final   each of the session's paths alone through test_gpu_ops (concurrently), the unit tests,
#                     e2e and bench_gpu with the paths that passed, against all off;
#   rounds.sh base    main as it is: every GPU test, e2e, bench_gpu with the defaults and with
#                     each opt-in of BASE_ALSO, bench_mla;
#   rounds.sh seventh the seventh session's merge: every GPU test and e2e with SEV_NEW's paths on, bench_gpu
#                     with the defaults, SEV_NEW and each of SEV_ALSO, bench_mla;
#                     SEV_BASE=1: test_gpu_ops, the other test_gpu_* and e2e with the defaults as well (a
#                     merge that touched every path); SEV_MLA: bench_mla's --variant list (default: all rows);
#   rounds.sh sixth   the sixth session's paths, each alone and together, through the GPU tests,
#                     then bench_gpu new / old / the defaults and bench_mla;
#   rounds.sh short   SEV_NEW's paths through every GPU test, then bench_gpu with them and the defaults,
#                     bench_mla's SEV_MLA rows (a call with ~6 minutes);
#   rounds.sh verify  test_gpu_ops and e2e side by side (SEV_NEW's paths added), then test_gpu_mla's tests
#                     matching VERIFY_MLA_FILTER (if set), bench_mla's SEV_MLA rows, for a call with ~4 minutes;
#   rounds.sh quick   the new kernels' tests and one bench_gpu run, for a
#                     call with little device time left;
#   rounds.sh trace   a traced run (dscc run --trace, random weights) and
#                     the kernels of its batch-1 decode step by time;
#   rounds.sh deepgemm  DeepGEMM's FP8 GEMM at bench_gemm's shapes (DG_S seconds);
#   rounds.sh trace1k the same for a 1,024-token prefill, its top 50 kernels;
#   rounds.sh ncu     Nsight Compute on the MLA decode kernel (bench_mla's default
#                     variant), then on its combine kernel and on the decode kernel
#                     that merges the splits itself (DSCC_MLA_FUSE=1), on the one
#                     without a producer warpgroup (DSCC_MLA_V3=3), the seesaw
#                     without one (=4), the keys by TMA (DSCC_MLA_TMA=1) and
#                     multicast (and DSCC_MLA_MC=1), where ncu exists;
#   rounds.sh pdl     test_gpu_pdl, then bench_gpu with programmatic dependent
#                     launch (DSCC_PDL=1; opt in) and without (=0, the default,
#                     the baseline in the same run): the decode step's "CUDA graph"
#                     column, and the line saying how many launches were
#                     programmatic;
#   rounds.sh pdlops  test_gpu_ops and the fixtures end to end under DSCC_PDL=1;
#   rounds.sh attnp   the prefill attention: test_gpu_attn, its forms alone
#                     side by side (bench_attn: MLA's naive shape, 1,024 and
#                     4,096 positions), then bench_gpu with the wgmma form
#                     (DSCC_ATTN_WGMMA=1) and the mma.sync one (=0, the
#                     baseline in the same run): prefill's attention ms;
#   rounds.sh peers   transformers, bench_mtp and DeepSeek's inference code (.peers, from
#                     tools/fetch_peers.sh);
#   rounds.sh deepseek  DeepSeek's inference code alone: the modes of PEER_MODES (default all
#                     three; e.g. fp8/absorb), PEER_S seconds at most (default 300), each
#                     cell in its log as it is measured;
#   rounds.sh hbm     which address patterns the HBM serves at its peak: bench_hbm --check
#                     (codegen/kernels/read_pattern.cuh), a pure read of the LM head's 1,853 MB
#                     and of o_proj's 117 MB (rows of 14,336 bytes) in each pattern (0 the
#                     grid-stride baseline, 1 a warp a row as the LM head's GEMV, 2 a block a
#                     row, 3 and 6 contiguous stretches a warp and a block, 4 gemm_skinny2's
#                     16-row groups, 5 a warp a row over runs of rows, 7 the grid-stride with
#                     two rounds in flight, 8 mode 4 with each block's K order rotated by its
#                     index), 4 and 8 loads a lane a round, 1-3 blocks an SM; then modes 0, 1,
#                     4, 8 at 117.4 MB with rows of 16,384 (o_proj), 18,432 (dense down) and
#                     2,048 bytes (the experts' down): does a power-of-two row pitch read
#                     slowly, and does the rotation fix it? Prints ms, GB/s and the share of
#                     mode 0 at the same size, row, u and blocks an SM (modes 0, 1, 4, 8 of
#                     the first table; all of it in bench_hbm.log);
#   rounds.sh afence  MLA decode without the consumers' proxy fence after a wait for keys and with the keys
#                     evict-first (the defaults since the thirteenth session): test_gpu_mla with the old
#                     settings, then bench_mla's rows 44-50 beside their baselines;
#   rounds.sh flashmla  FlashMLA's dense decode kernel for Hopper (bench/peer_flashmla.cu, built
#                     against .peers/flashmla by bench/build_peer_flashmla.sh) at batch 32 and 128,
#                     4,097 keys, its output checked against the CPU first, beside bench_mla's
#                     defaults and ping-pong + DSM rows at the same shapes; then (FLASHMLA_NCU=0: not)
#                     Nsight Compute's full set on each one's kernel at batch 32 (ncu_*.log);
#   rounds.sh mlafixed  MLA decode's cost per CTA that does not grow with the keys: bench_mla's defaults (row 52)
#                     and FlashMLA at batch 32 over 1,025 to 16,385 keys (the same two splits a tile, one wave)
#                     and at batch 16 / 64 with 4,097 keys; a line fitted through the batch-32 medians gives
#                     us a block of 64 keys (the slope) and the fixed part (the intercept); then bench_mla
#                     --stamps at batch 32 and 128 (where each block's time goes, by the kernel's own stamps);
#   rounds.sh ostage  MLA decode's output staged in shared memory and stored a row at a time (MLA_OSTAGE,
#                     bench_mla row 51, the default since the fourteenth session) beside the defaults before
#                     (row 49) at batch 32 and 128, then both with --stamps;
#   rounds.sh defaults  the defaults checked after a kernel change, in little device time: test_gpu_ops beside
#                     QUICK_TESTS (default test_gpu_mla), e2e, bench_mla's rows QUICK_MLA (default 52,51) at
#                     batch 32 and 128 (4,097 keys), then bench_gpu;
#   rounds.sh figures issue 17's figures on the card in ~2 minutes, no tests: bench_mla's defaults at batch 32
#                     (4,096 and 4,097 keys) and 128, then bench_gpu;
#   rounds.sh xpush   the DSM merge's halves pushed by st.async (MLA_XPUSH, bench_mla row 52: the default since
#                     the fifteenth session; 53 with the q tile free at the last S) beside the defaults before (row 51) at batch 32 (two splits merged),
#                     4,096, 4,097 and 8,193 keys, then all with --stamps at 4,097;
# Logs go to $OUT (or a temporary folder). build/ comes from
# tools/gpu_stage.sh (a trimmed copy carried as build-gpu is renamed first).
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -d build-gpu ] && { rm -rf build; mv build-gpu build; }
out=${OUT:-$(mktemp -d)}
export LD_LIBRARY_PATH="$PWD/build/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" NCCL_NVLS_ENABLE=0 NO_COLOR=1
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' build/CMakeCache.txt)
if [ -n "$src" ] && [ "$src" != "$PWD" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi
echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), commit: $(cat build/commit.txt), $(date -u +%F)"
status=0
step() { # step NAME SECONDS CMD...: runs CMD with a limit, its log in $out/NAME.log, its tail shown
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && { echo "FAILED: $name (exit $rc)"; status=1; }
  grep -E "FAIL|MISMATCH|rel L2|worst|TFLOPS|GB/s|ms|PASSED|tokens/s|error" "$out/$name.log" | tail -n "${TAIL:-12}"
}
same_logits() { # same_logits NAME SECONDS "BASE SWITCHES" "MORE SWITCHES": the tiny FP8 config with kv_lora_rank=512 and
  # qk_nope_head_dim=64 (so the latent row and the einsum take V3's decode forms), random weights, 2 x (prefill 5 +
  # decode 3 through the KV cache): its logits with BASE and with BASE + MORE, which must be byte-identical
  local name=$1 limit=$2 base=$3 more=$4 d
  d=$(mktemp -d)
  python3 -c "import struct,sys; h=\"{'descr': '<i4', 'fortran_order': False, 'shape': (2, 8), }\"; h+=' '*((64-(11+len(h))%64)%64)+'\\n'; \
sys.stdout.buffer.write(b'\\x93NUMPY\\x01\\x00'+struct.pack('<H',len(h))+h.encode()+struct.pack('<16i',3,17,42,5,9,11,2,30,7,21,99,4,8,600,13,77))" > "$d/tok.npy"
  local k=0
  for v in "$base" "$base $more"; do
    # shellcheck disable=SC2086
    TAIL=2 step "${name}_$k" "$limit" env $v build/dscc run models/deepseek_v3.dsl --config tests/fixtures/tiny_fp8/config.json \
      --random-weights 7 --set kv_lora_rank=512 --set qk_nope_head_dim=64 --set num_nextn_predict_layers=0 --backend cuda \
      --tokens "$d/tok.npy" --prefill 5 --dump-logits "$d/l$k.npy"
    k=$((k + 1))
  done
  if cmp -s "$d/l0.npy" "$d/l1.npy"; then echo "$name: logits byte-identical with $more"; else echo "FAILED: $name: logits differ with $more"; status=1; fi
  rm -rf "$d"
}
for mode in "${@:-check}"; do
case "$mode" in
  check)
    for t in test_gpu_mla test_gpu_barrier test_gpu_attn test_gpu_gemm_tma test_gpu_head test_gpu_route test_gpu_skinny test_gpu_rows test_gpu_expert test_gpu_sample test_gpu_plan test_gpu_rmsnorm_quant test_gpu_pdl; do
      [ -x build/$t ] && step "$t" 120 build/$t
    done
    DSCC_GEMM_TILE=wgmma step test_gpu_ops 200 build/test_gpu_ops
    OUT=$(mktemp -d) TAIL=20 step e2e 150 bash tests/gpu/e2e.sh ;;
  bench)
    for m in 1 0; do
      DSCC_MLA_DECODE=$m TAIL=40 step "bench_gpu_mla$m" 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done
    TAIL=40 step bench_gpu_absorb 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 --set attn_impl=absorb
    TAIL=70 step bench_gemm 180 build/bench_gemm --check --table "$out/gemm_table.txt" ;;
  gpu) # bench_gpu alone, every step absorbed, then auto (the naive form for a prefill from position 0)
    TAIL=40 step bench_gpu_absorb 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 --set attn_impl=absorb
    TAIL=40 step bench_gpu_auto 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 --set attn_impl=auto ;;
  mla) # the MLA decode kernel's variants (DSCC_MLA_V3, DSCC_MLA_LEAN, DSCC_MLA_LAZY, DSCC_MLA_FUSE) in one process each
    [ -x build/test_gpu_mla ] && step test_gpu_mla 120 build/test_gpu_mla
    TAIL=37 step bench_mla 170 build/bench_mla
    TAIL=37 step bench_mla_8k 170 build/bench_mla --ctx 8193
    TAIL=37 step bench_mla_b1 170 build/bench_mla --batch 1
    TAIL=37 step bench_mla_b128 170 build/bench_mla --batch 128
    DSCC_MLA_TMA=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlatma 200 build/test_gpu_ops
    DSCC_MLA_TMA=1 DSCC_MLA_V3=4 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlatma4 200 build/test_gpu_ops
    DSCC_MLA_TMA=1 DSCC_MLA_MC=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlamc 200 build/test_gpu_ops
    DSCC_MLA_TMA=1 DSCC_MLA_QREG=2 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlaqreg 200 build/test_gpu_ops ;;
  mlamc) # the keys multicast to a batch row's two tiles (DSCC_MLA_MC=1, bench_mla row 27), q's last chunks in
    # registers (DSCC_MLA_QREG=1, 2: rows 29, 30; with the multicast 31, 32) against the keys by TMA alone (41; 23 the
    # defaults, with the DSMEM merge that none of these rows has) and the
    # cp.async default (7), and the splits' parts as bf16 (DSCC_MLA_PART_BF16=1: 33 against 7, 34 against 23, 35 against
    # 32), one process a shape (batch 128: one split, no parts): compare the "median ms" and "back to back" columns
    [ -x build/test_gpu_mla ] && DSCC_TEST_FILTER='*multicast*' step test_gpu_mla_mc 120 build/test_gpu_mla
    [ -x build/test_gpu_mla ] && DSCC_TEST_FILTER='*qreg*' step test_gpu_mla_qreg 120 build/test_gpu_mla
    [ -x build/test_gpu_mla ] && DSCC_TEST_FILTER='*part*' step test_gpu_mla_part 120 build/test_gpu_mla
    TAIL=13 step bench_mla_mc 150 build/bench_mla --variant 7,23,41,27,29,30,31,32,33,34,35
    TAIL=13 step bench_mla_mc_8k 150 build/bench_mla --variant 7,23,41,27,29,30,31,32,33,34,35 --ctx 8193
    TAIL=13 step bench_mla_mc_b128 150 build/bench_mla --variant 7,23,41,27,29,30,31,32,33,34,35 --batch 128
    DSCC_MLA_TMA=1 DSCC_MLA_MC=1 DSCC_MLA_QREG=2 DSCC_MLA_PART_BF16=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlamc 200 build/test_gpu_ops
    DSCC_MLA_TMA=1 DSCC_MLA_QREG=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlaqreg 200 build/test_gpu_ops ;;
  mlapp) # the consumers' ping-pong (DSCC_MLA_PP=1, bench_mla rows 36, 37; =2, own P from registers: 38, 39; =1 with
    # DSCC_MLA_QREG=1: 40) against the keys by TMA without the DSMEM merge (41; 23 the defaults, with it) and LEAN 6 (24)
    # in one process a shape: compare the "median ms" and "back to back" columns
    [ -x build/test_gpu_mla ] && DSCC_TEST_FILTER='*ping*' step test_gpu_mla_pp 120 build/test_gpu_mla
    TAIL=10 step bench_mla_pp 150 build/bench_mla --variant 23,41,36,38,40,24,37,39 --reps 40
    TAIL=10 step bench_mla_pp_8k 150 build/bench_mla --variant 23,41,36,38,40,24,37,39 --reps 40 --ctx 8193
    TAIL=10 step bench_mla_pp_b128 150 build/bench_mla --variant 23,41,36,38,40,24,37,39 --reps 40 --batch 128
    DSCC_MLA_PP=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlapp 200 build/test_gpu_ops
    DSCC_MLA_PP=2 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mlapp2 200 build/test_gpu_ops ;;
  mladsm) # two splits merged in distributed shared memory (DSCC_MLA_DSM, a default since the eleventh session:
    # bench_mla rows 23, the defaults, 43, 42) against the same with DSCC_MLA_DSM=0 (41, the old default), LEAN 6 (24)
    # and the ping-pong (36), in one process a shape: the "median ms" and "back to back" columns (the combine's launch
    # is what it saves)
    [ -x build/test_gpu_mla ] && DSCC_TEST_FILTER='*dsm*' step test_gpu_mla_dsm 120 build/test_gpu_mla
    TAIL=10 step bench_mla_dsm 150 build/bench_mla --variant 23,41,24,43,36,42 --reps 40
    TAIL=10 step bench_mla_dsm_8k 150 build/bench_mla --variant 23,41,24,43,36,42 --reps 40 --ctx 8193
    # where it merges nothing (batch 128: one split; batch 1: 33 splits, the combine's), only the clusters' placement
    TAIL=6 step bench_mla_dsm_b128 150 build/bench_mla --variant 23,41 --reps 40 --batch 128
    TAIL=6 step bench_mla_dsm_b1 150 build/bench_mla --variant 23,41 --reps 40 --batch 1
    DSCC_MLA_DSM=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mladsm 200 build/test_gpu_ops
    DSCC_MLA_DSM=1 DSCC_MLA_PP=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_mladsm_pp 200 build/test_gpu_ops ;;
  gemm) TAIL=70 step bench_gemm 180 build/bench_gemm --check --table "$out/gemm_table.txt" ;;
  tma) # the TMA GEMM's forms, each checked against the generated kernel (--check above M = 128)
    DSCC_TMA_V2=0 TAIL=30 step bench_gemm_tma128 180 build/bench_gemm --check --m 256,1024,4096
    TAIL=30 step bench_gemm_tma256 180 build/bench_gemm --check --m 256,1024,4096
    DSCC_TMA_CLUSTER=1 TAIL=30 step bench_gemm_tma256x2 180 build/bench_gemm --check --m 256,1024,4096 ;;
  sweep) # the decode step's switches of the eighth and ninth sessions, each against the defaults in the same run:
    # first the pipelined skinny form's cluster K split (DSCC_SKINNY's psplit=1: o_proj and dense_down take clusters
    # of 2) per V3 shape at M = 1 (the "us" and "TB/s" columns), then bench_gpu once per set of SWEEP_SETS
    # (';'-separated; "" the defaults), logs bench_gpu_dec0, 1, ...: compare the "decode" table's batch-1 row, "step
    # ms, CUDA graph", the batch-1 per-kind ms (fp8_linear, fused elementwise, fp8_expert_linear) and the launches.
    # The default sets: the defaults; DSCC_SKINNY_PSPLIT=1 alone; DSCC_SKINNY_FOLD=1 alone (nine row kernels folded
    # into their linears at batch 1, o_proj's quantize among them: 30 launches instead of 39; the prologue's loads
    # batched, 4 steps of weights prefetched into L2 under it); the fold without that prefetch
    # (DSCC_SKINNY_FOLD_PF=0); the fold with the MoE layer's add + rmsnorm folded into the shared expert's gate + up,
    # launched ahead of the router (DSCC_SKINNY_FOLD_HOIST=1 DSCC_EINSUM_ROPE=0: 29 launches), and with q's rope in the
    # absorbed einsum's decode form too (DSCC_EINSUM_ROPE=1, the default since the eleventh session, as in every set
    # that does not give =0: 27 launches), and with the routing in the router's last CTA too
    # (DSCC_ROUTE_FUSE=1: 26 launches), and with the latent's row kernel (kv norm, k_pe's rope, the cache append) in
    # the first einsum's decode form too (DSCC_EINSUM_KV=1: 24 launches); the MoE sort's old one-thread bucket walk
    # (DSCC_EXPERT_SCAN=0; the block scan the default since the eleventh session: fp8_expert_linear ms); q's rope in
    # its own row kernel (DSCC_EINSUM_ROPE=0: 39 launches against the defaults' 37).
    # SWEEP_PRE=0 skips the tests and bench_gemm before them (five bench_gpu runs take ~7 minutes). SWEEP_BATCH=B:
    # each bench_gpu only the decode step at batch B (--decode-only: no prefill, ~40 s a run on an H100).
    # First the new paths on the GPU: test_gpu_skinny (test_pipe_split, test_fold, test_fold_plan), test_gpu_expert's
    # test_scan, and test_gpu_ops with the switches on (and the pipelined form forced: the test model's linears are
    # narrow)
    if [ "${SWEEP_PRE:-1}" != 0 ]; then
      step test_gpu_skinny 120 build/test_gpu_skinny
      step test_gpu_expert_scan 120 build/test_gpu_expert test_scan
      DSCC_SKINNY=pipe=1 DSCC_SKINNY_PSPLIT=1 DSCC_SKINNY_FOLD=1 DSCC_EXPERT_SCAN=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_fold 200 build/test_gpu_ops
      # the hoisted folds through dscc run (test_gpu_ops plans no memory, so it never hoists): the tiny models' MoE
      # add + rmsnorm, and the input norm and dense gate / up whose linears are not merged there
      OUT=$(mktemp -d) TAIL=20 step e2e_fold_hoist 150 env DSCC_SKINNY=pipe=1 DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_HOIST=1 bash tests/gpu/e2e.sh
      step test_gpu_einsum_rope 120 build/test_gpu_einsum # test_rope and test_kv (DSCC_EINSUM_KV) among its cases
      same_logits kv_fold_logits 120 "DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_HOIST=1 DSCC_EINSUM_ROPE=1 DSCC_ROUTE_FUSE=1" DSCC_EINSUM_KV=1
      step test_gpu_route_fused 120 build/test_gpu_route
      OUT=$(mktemp -d) TAIL=20 step e2e_rope_route 150 env DSCC_SKINNY=pipe=1 DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_HOIST=1 DSCC_EINSUM_ROPE=1 DSCC_ROUTE_FUSE=1 bash tests/gpu/e2e.sh
      TAIL=30 step skinny_psplit 200 build/bench_gemm --skinny-sweep --check --m 1 --shape qkv_a,q_b,o_proj,dense_gate_up,dense_down \
        --variants 'default;psplit=1'
    fi
    IFS=';' read -ra sets <<< "${SWEEP_SETS:-;DSCC_SKINNY_PSPLIT=1;DSCC_SKINNY_FOLD=1;DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_HOIST=1 DSCC_EINSUM_ROPE=0;DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_HOIST=1 DSCC_EINSUM_ROPE=1;DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_HOIST=1 DSCC_EINSUM_ROPE=1 DSCC_ROUTE_FUSE=1;DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_HOIST=1 DSCC_EINSUM_ROPE=1 DSCC_ROUTE_FUSE=1 DSCC_EINSUM_KV=1;DSCC_SKINNY_FOLD=1 DSCC_SKINNY_FOLD_PF=0;DSCC_EXPERT_SCAN=0;DSCC_EINSUM_ROPE=0}"
    i=0
    for v in "${sets[@]}"; do
      echo "bench_gpu_dec$i: ${v:-the defaults}"
      # shellcheck disable=SC2086
      TAIL=40 step "bench_gpu_dec$i" 200 env $v build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 \
        ${SWEEP_BATCH:+--decode-only "$SWEEP_BATCH"}
      i=$((i + 1))
    done ;;
  rows) # the fused rmsnorm row kernels' wide forms against the old one: decode steps by op kind (elementwise / norm kinds)
    [ -x build/test_gpu_rows ] && step test_gpu_rows 120 build/test_gpu_rows
    for w in 1 0; do
      DSCC_ROWS_WIDE=$w TAIL=60 step "bench_gpu_rows$w" 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done ;;
  glue) # the row kernels' prefill form (two rows a CTA at 7,168, 16-byte stores) against one CTA a row: prefill and decode
    [ -x build/test_gpu_rows ] && step test_gpu_rows 120 build/test_gpu_rows
    for p in 1 0; do
      DSCC_ROWS_PREFILL=$p TAIL=60 step "bench_gpu_prefill$p" 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done ;;
  gluetrace) # the same, kernel by kernel: a traced 1,024-token prefill each way, its rmsnorm kernels with their GB/s
    python3 -c "import numpy as np; np.save('$out/ids1k.npy', (np.arange(1024, dtype=np.int64) * 7919 % 129280).reshape(1, 1024))"
    for p in 1 0; do
      DSCC_ROWS_PREFILL=$p TAIL=4 step "glue_trace$p" 240 build/dscc run models/deepseek_v3.dsl --random-weights 1 --set num_hidden_layers=2 \
        --set first_k_dense_replace=1 --set num_nextn_predict_layers=0 --tokens "$out/ids1k.npy" --backend cuda --precision fp8 \
        --prefill 1024 --generate 2 --trace "$out/trace1k_p$p.json"
      python3 bench/trace_top.py "$out/trace1k_p$p.json" 60 --step prefill --peak-gbs 4250 --peak-tflops 1300 > "$out/glue_top$p.log" 2>&1
      echo "== glue_top$p (DSCC_ROWS_PREFILL=$p): the row kernels"; grep -E "rmsnorm|[0-9]_linear" "$out/glue_top$p.log" | head -n 24
    done ;;
  expert) # the routed experts' grouped GEMM: the TMA form (default above 2,048 rows) against the tile; fp8_expert_linear ms per step
    step test_gpu_expert 120 build/test_gpu_expert
    # the fused epilogue (epi=1) through every op of test_gpu_ops' tiny models (at f32 storage the experts keep the tile)
    DSCC_EXPERT_TMA=3,epi=1 step test_gpu_ops_epi 300 build/test_gpu_ops
    for v in ${EXPERT_LV:-3 3,bn=128 3,epi=1 3,mt=2}; do
      DSCC_EXPERT_TMA=$v TAIL=40 step "bench_gpu_expert_tma_${v//[=,]/_}" 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done ;;
  final) # the session's paths one at a time through test_gpu_ops (the others off), all at once on one GPU, beside
          # the unit tests; a path whose run or unit test fails stays off in "new"; e2e on "new"; bench_gpu new vs old
    declare -A on=([combine]="DSCC_ROWS_UPSTREAM=1" [router]="DSCC_GEMM_F32_LIB=1" [einsum]="DSCC_EINSUM_ROWS=128" [skinny]="DSCC_SKINNY_PIPE=1"
                   [expert]="DSCC_EXPERT_TMA=3")
    declare -A offv=([combine]="DSCC_ROWS_UPSTREAM=0" [router]="DSCC_GEMM_F32_LIB=0" [einsum]="DSCC_EINSUM_ROWS=0" [skinny]="DSCC_SKINNY_PIPE=0"
                     [expert]="DSCC_EXPERT_TMA=0")
    declare -A unit=([combine]=test_gpu_rows [router]=none [einsum]=test_gpu_einsum [skinny]=test_gpu_skinny [expert]=test_gpu_expert)
    only() { local f e=""; for f in "${!on[@]}"; do if [ "$f" = "$1" ] || [ "$1" = all ]; then e+="${on[$f]} "; else e+="${offv[$f]} "; fi; done; echo "$e"; }
    pids=()
    for f in "${!on[@]}" all; do
      ( env $(only "$f") DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops_$f.log" 2>&1; echo $? > "$out/ops_$f.rc" ) &
      pids+=($!)
    done
    ( for t in test_gpu_einsum test_gpu_expert test_gpu_attn test_gpu_mla test_gpu_rows test_gpu_pdl test_gpu_barrier test_gpu_gemm_tma test_gpu_head test_gpu_route test_gpu_skinny test_gpu_sample test_gpu_plan test_gpu_rmsnorm_quant; do
        [ -x build/$t ] || continue; timeout 100 build/$t > "$out/u_$t.log" 2>&1; echo $? > "$out/u_$t.rc"; done ) &
    pids+=($!)
    wait "${pids[@]}"
    newenv=""
    for f in all "${!on[@]}"; do
      echo "test_gpu_ops, $f alone on (all: every path on): exit $(cat "$out/ops_$f.rc"); $(grep -cE 'outside tolerance' "$out/ops_$f.log") cases printed"
    done
    for t in "$out"/u_*.rc; do n=$(basename "$t" .rc); echo "${n#u_}: exit $(cat "$t")"; [ "$(cat "$t")" = 0 ] || { tail -n 8 "$out/${n}.log"; status=1; }; done
    for f in "${!on[@]}"; do
      u=${unit[$f]}; urc=$(cat "$out/u_$u.rc" 2>/dev/null || echo 0)
      if [ "$(cat "$out/ops_$f.rc")" != 0 ] || [ "$urc" != 0 ]; then echo "PATH OFF in new: $f"; status=1; newenv+="${offv[$f]} "; else newenv+="${on[$f]} "; fi
    done
    echo "new: $newenv"
    OUT=$(mktemp -d) TAIL=20 step e2e 150 env $newenv bash tests/gpu/e2e.sh
    TAIL=45 step bench_gpu_new 220 env $newenv build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    TAIL=45 step bench_gpu_old 220 env $(only none) build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    [ -n "${FINAL_ALSO:-}" ] && TAIL=45 step bench_gpu_also 220 env $newenv $FINAL_ALSO build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 ;;
  base) # main as it is: every test_gpu_* binary beside test_gpu_ops (concurrently), e2e, then bench_gpu with the
        # defaults and with each setting of BASE_ALSO (default: the tensor-core einsums above 8 rows, the experts'
        # TMA level 2 against the default level 3), then bench_mla at batch 32, context 4,097 (its variant table)
    ( DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops.log" 2>&1; echo $? > "$out/ops.rc" ) & p1=$!
    ( for t in build/test_gpu_*; do n=$(basename "$t"); [ "$n" = test_gpu_ops ] && continue; [ -x "$t" ] || continue
        timeout 100 "$t" > "$out/u_$n.log" 2>&1; echo $? > "$out/u_$n.rc"; done ) & p2=$!
    wait $p1 $p2
    echo "test_gpu_ops: exit $(cat "$out/ops.rc")"; [ "$(cat "$out/ops.rc")" = 0 ] || { tail -n 12 "$out/ops.log"; status=1; }
    for t in "$out"/u_*.rc; do n=$(basename "$t" .rc); echo "${n#u_}: exit $(cat "$t")"; [ "$(cat "$t")" = 0 ] || { tail -n 8 "$out/${n}.log"; status=1; }; done
    OUT=$(mktemp -d) TAIL=20 step e2e 150 bash tests/gpu/e2e.sh
    TAIL=45 step bench_gpu_base 220 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    i=0
    for e in ${BASE_ALSO:-DSCC_EINSUM_ROWS=128 DSCC_EXPERT_TMA=2}; do
      i=$((i + 1)); TAIL=45 step "bench_gpu_also$i" 220 env $e build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done
    TAIL=14 step bench_mla 120 build/bench_mla ;;
  seventh) # a merge's new paths: every GPU test and e2e with them on (SEV_NEW: settings joined by '+', e.g.
           # DSCC_MLA_TMA=1+DSCC_X=2; SEV_OPS2: test_gpu_ops again with these added), bench_gpu with the defaults,
           # with SEV_NEW, and with each setting of SEV_ALSO (space-separated, each '+'-joined), then bench_mla.
           # The batch-1 launch folds as one SEV_NEW: DSCC_SKINNY_FOLD=1+DSCC_SKINNY_FOLD_HOIST=1+DSCC_EINSUM_ROPE=1+
           # DSCC_ROUTE_FUSE=1+DSCC_EINSUM_KV=1 (24 launches at batch 1 with DSCC_MLA_DSM=1, 30 with none of them)
    nw=$(echo "${SEV_NEW:-}" | tr + ' ')
    ( env $nw DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops.log" 2>&1; echo $? > "$out/ops.rc" ) & p1=$!
    ( for t in build/test_gpu_*; do n=$(basename "$t"); [ "$n" = test_gpu_ops ] && continue; [ -x "$t" ] || continue
        env $nw timeout 150 "$t" > "$out/u_$n.log" 2>&1; echo $? > "$out/u_$n.rc"; done ) & p2=$!
    p4="" p5=""
    if [ "${SEV_BASE:-0}" = 1 ] && [ -n "$nw" ]; then # the defaults too, beside them
      ( DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops_base.log" 2>&1; echo $? > "$out/ops_base.rc" ) & p4=$!
      ( for t in build/test_gpu_*; do n=$(basename "$t"); [ "$n" = test_gpu_ops ] && continue; [ -x "$t" ] || continue
          timeout 150 "$t" > "$out/u_base_$n.log" 2>&1; echo $? > "$out/u_base_$n.rc"; done ) & p5=$!
    fi
    # SEV_OPS2 ('+'-joined): test_gpu_ops once more beside them with these settings added (e.g. a form the test
    # model's shapes would not pick by themselves)
    p3=""; o2=$(echo "${SEV_OPS2:-}" | tr + ' ')
    [ -n "$o2" ] && { ( env $nw $o2 DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops2.log" 2>&1; echo $? > "$out/ops2.rc" ) & p3=$!; }
    wait $p1 $p2 $p3 $p4 $p5
    [ -n "$p4" ] && { echo "test_gpu_ops (defaults): exit $(cat "$out/ops_base.rc")"; [ "$(cat "$out/ops_base.rc")" = 0 ] || { tail -n 12 "$out/ops_base.log"; status=1; }; }
    echo "test_gpu_ops (${SEV_NEW:-defaults}): exit $(cat "$out/ops.rc")"; [ "$(cat "$out/ops.rc")" = 0 ] || { tail -n 12 "$out/ops.log"; status=1; }
    [ -n "$o2" ] && { echo "test_gpu_ops (${SEV_NEW:-defaults} $o2): exit $(cat "$out/ops2.rc")"; [ "$(cat "$out/ops2.rc")" = 0 ] || { tail -n 12 "$out/ops2.log"; status=1; }; }
    for t in "$out"/u_*.rc; do n=$(basename "$t" .rc); echo "${n#u_}: exit $(cat "$t")"; [ "$(cat "$t")" = 0 ] || { tail -n 8 "$out/${n}.log"; status=1; }; done
    [ "${SEV_BASE:-0}" = 1 ] && [ -n "$nw" ] && OUT=$(mktemp -d) TAIL=6 step e2e_base 150 bash tests/gpu/e2e.sh
    OUT=$(mktemp -d) TAIL=6 step e2e 150 env $nw bash tests/gpu/e2e.sh
    TAIL=45 step bench_gpu_defaults 220 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    [ -n "$nw" ] && TAIL=45 step bench_gpu_new 220 env $nw build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    i=0
    for e in ${SEV_ALSO:-}; do
      i=$((i + 1)); TAIL=45 step "bench_gpu_also$i" 220 env $(echo "$e" | tr + ' ') build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done
    TAIL=30 step bench_mla 120 build/bench_mla ${SEV_MLA:+--variant "$SEV_MLA"} ;;
  sixth) # the sixth session's paths: each alone through test_gpu_ops (the others at their old settings), all at once,
         # beside every test_gpu_* binary; e2e on "new" (every path that passed); bench_gpu with "new", "old" (each
         # path off) and the tree's defaults ("defaults"); bench_mla's variant table (the new MLA forms are its rows)
    declare -A on=([minr]="DSCC_EXPERT_TMA=2,minr=1" [lvl3]="DSCC_EXPERT_TMA=3" [bulk]="DSCC_SKINNY_BULK=1"
                   [vec]="DSCC_ELEM_VEC=1 DSCC_ROWS_GATHER=1" [mla3]="DSCC_MLA_V3=3")
    declare -A offv=([minr]="DSCC_EXPERT_TMA=2,minr=2049" [lvl3]="" [bulk]="DSCC_SKINNY_BULK=0"
                     [vec]="DSCC_ELEM_VEC=0 DSCC_ROWS_GATHER=0" [mla3]="DSCC_MLA_V3=1")
    only() { local f e="" x=""; for f in minr lvl3 bulk vec mla3; do if [ "$f" = "$1" ]; then x="${on[$f]}"; else e+="${offv[$f]} "; fi; done; echo "$e $x"; }
    pids=()
    for f in "${!on[@]}"; do
      ( env $(only "$f") DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops_$f.log" 2>&1; echo $? > "$out/ops_$f.rc" ) &
      pids+=($!)
    done
    ( env ${SIXTH_ALL:-DSCC_EXPERT_TMA=3 DSCC_SKINNY_BULK=1 DSCC_ELEM_VEC=1 DSCC_ROWS_GATHER=1 DSCC_MLA_V3=3} DSCC_GEMM_TILE=wgmma \
        timeout 170 build/test_gpu_ops > "$out/ops_all.log" 2>&1; echo $? > "$out/ops_all.rc" ) & pids+=($!)
    ( for t in build/test_gpu_*; do n=$(basename "$t"); [ "$n" = test_gpu_ops ] && continue; [ -x "$t" ] || continue
        timeout 100 "$t" > "$out/u_$n.log" 2>&1; echo $? > "$out/u_$n.rc"; done ) & pids+=($!)
    wait "${pids[@]}"
    for f in all "${!on[@]}"; do echo "test_gpu_ops, $f alone on: exit $(cat "$out/ops_$f.rc")"; done
    for t in "$out"/u_*.rc; do n=$(basename "$t" .rc); echo "${n#u_}: exit $(cat "$t")"; [ "$(cat "$t")" = 0 ] || { tail -n 8 "$out/${n}.log"; status=1; }; done
    newenv=""
    for f in minr vec bulk lvl3 mla3; do
      if [ "$(cat "$out/ops_$f.rc")" != 0 ]; then echo "PATH OFF in new: $f"; status=1; newenv+="${offv[$f]} "; else newenv+="${on[$f]} "; fi
    done
    echo "new: $newenv"
    OUT=$(mktemp -d) TAIL=20 step e2e 150 env $newenv bash tests/gpu/e2e.sh
    TAIL=45 step bench_gpu_new 220 env $newenv build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    TAIL=45 step bench_gpu_old 220 env $(only none) build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    TAIL=45 step bench_gpu_defaults 220 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    TAIL=24 step bench_mla 120 build/bench_mla ;;
  short) # for a call with ~6 minutes: SEV_NEW's paths ('+'-joined) through test_gpu_ops and the other test_gpu_*
         # (concurrently, the tests' own limits cut short), then bench_gpu with them and with the defaults, then
         # bench_mla's SEV_MLA rows: the seventh part's evidence in its most useful order
    nw=$(echo "${SEV_NEW:-}" | tr + ' ')
    ( env $nw DSCC_GEMM_TILE=wgmma timeout 150 build/test_gpu_ops > "$out/ops.log" 2>&1; echo $? > "$out/ops.rc" ) & p1=$!
    ( for t in build/test_gpu_*; do n=$(basename "$t"); [ "$n" = test_gpu_ops ] && continue; [ -x "$t" ] || continue
        env $nw timeout 60 "$t" > "$out/u_$n.log" 2>&1; echo $? > "$out/u_$n.rc"; done ) & p2=$!
    wait $p1 $p2
    echo "test_gpu_ops (${SEV_NEW:-defaults}): exit $(cat "$out/ops.rc")"; [ "$(cat "$out/ops.rc")" = 0 ] || { tail -n 12 "$out/ops.log"; status=1; }
    for t in "$out"/u_*.rc; do n=$(basename "$t" .rc); echo "${n#u_}: exit $(cat "$t")"; [ "$(cat "$t")" = 0 ] || { tail -n 8 "$out/${n}.log"; status=1; }; done
    [ -n "$nw" ] && TAIL=45 step bench_gpu_new 120 env $nw build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    TAIL=45 step bench_gpu_defaults 120 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    TAIL=30 step bench_mla 60 build/bench_mla ${SEV_MLA:+--variant "$SEV_MLA"} ;;
  verify) # for a call with ~4 minutes: test_gpu_ops and tests/gpu/e2e.sh with the defaults (SEV_NEW's paths added),
          # side by side, then bench_mla's SEV_MLA rows
    nw=$(echo "${SEV_NEW:-}" | tr + ' ')
    ( env $nw DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops.log" 2>&1; echo $? > "$out/ops.rc" ) & p1=$!
    ( env $nw OUT=$(mktemp -d) timeout 170 bash tests/gpu/e2e.sh > "$out/e2e.log" 2>&1; echo $? > "$out/e2e.rc" ) & p2=$!
    wait $p1 $p2
    for n in ops e2e; do echo "$n (${SEV_NEW:-defaults}): exit $(cat "$out/$n.rc")"; tail -n 4 "$out/$n.log"
      [ "$(cat "$out/$n.rc")" = 0 ] || status=1; done
    [ -n "${VERIFY_MLA_FILTER:-}" ] && TAIL=4 step test_gpu_mla_filter 60 env DSCC_TEST_FILTER="$VERIFY_MLA_FILTER" build/test_gpu_mla
    TAIL=30 step bench_mla 60 build/bench_mla ${SEV_MLA:+--variant "$SEV_MLA"} ;;
  figures) # issue 17's figures on this card in ~2 minutes, no tests (run defaults for those): bench_mla's defaults
    # (row 52) at batch 32 with 4,096 keys (the goal's context) and 4,097, at batch 128, then bench_gpu
    for t in 4096 4097; do TAIL=3 step "bench_mla_t$t" 60 build/bench_mla --batch 32 --ctx "$t" --reps 20 --variant 52; done
    TAIL=3 step bench_mla_b128 60 build/bench_mla --batch 128 --ctx 4097 --reps 20 --variant 52
    TAIL=45 step bench_gpu 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 ;;
  quick)
    for t in test_gpu_mla test_gpu_skinny test_gpu_sample; do step "$t" 60 build/$t; done
    TAIL=40 step bench_gpu 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 ;;
  trace) # per-kernel times of a decode step on the two full-width layers (random weights), at each batch of TRACE_BS (default 1)
    for b in ${TRACE_BS:-1}; do
      python3 -c "import numpy as np; np.save('$out/ids$b.npy', (np.arange(16 * $b, dtype=np.int64) * 7919 % 129280).reshape($b, 16))"
      TAIL=4 step "trace_run_b$b" 240 build/dscc run models/deepseek_v3.dsl --random-weights 1 --set num_hidden_layers=2 \
        --set first_k_dense_replace=1 --set num_nextn_predict_layers=0 --tokens "$out/ids$b.npy" --backend cuda --precision fp8 \
        --prefill 16 --generate 4 --trace "$out/trace_b$b.json"
      TAIL=60 step "trace_top_b$b" 60 python3 bench/trace_top.py "$out/trace_b$b.json" 45 --step "decode 3" --peak-gbs 3162 --peak-tflops 1300
    done ;;
  ncuexp) # Nsight Compute on the routed experts' grouped GEMM in a 1,024-token prefill at each DSCC_EXPERT_TMA of
          # NCUEXP_LV (default: level 3 (bn=256), bn=128 and epi=1; 0 the tile); their entries pN_fp8_expert_tile and
          # pN_fp8_expert_tma, the prefill's two launches (gate and up, then the down) of the one MoE layer; beside
          # the full set, DRAM bytes read and written and the L2's read sectors from the SMs, hit and missed (KERNELS.md's
          # accounting of the experts' bytes: the weights' re-reads against x's misses)
    n=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
    python3 -c "import numpy as np; np.save('$out/ids1k.npy', (np.arange(1024, dtype=np.int64) * 7919 % 129280).reshape(1, 1024))"
    for v in ${NCUEXP_LV:-3 3,bn=128 3,epi=1}; do
      [ -n "$n" ] && DSCC_EXPERT_TMA=$v TAIL=30 step "ncu_expert_tma${v//[=,]/_}" 200 "$n" --clock-control none --kernel-name regex:"fp8_expert_(tile|tma)" \
        --launch-count 2 --set full --metrics dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sectors_srcunit_tex_op_read_lookup_hit.sum,lts__t_sectors_srcunit_tex_op_read_lookup_miss.sum \
        build/dscc run models/deepseek_v3.dsl --random-weights 1 --set num_hidden_layers=2 \
        --set first_k_dense_replace=1 --set num_nextn_predict_layers=0 --tokens "$out/ids1k.npy" --backend cuda --precision fp8 \
        --prefill 1024 --generate 1
      [ -n "$n" ] && grep -E "fp8_expert_(tile|tma) \(|dram__bytes_(read|write)\.sum |lts__t_sectors_srcunit_tex_op_read" "$out/ncu_expert_tma${v//[=,]/_}.log"
    done ;;
  ncuskinny) # Nsight Compute on a batch-1 decode step's skinny GEMMs (gemm_skinny: one launch of each shape after the prefill)
    n=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
    python3 -c "import numpy as np; np.save('$out/ids1.npy', (np.arange(16, dtype=np.int64) * 7919 % 129280).reshape(1, 16))"
    [ -n "$n" ] && TAIL=30 step ncu_skinny 200 "$n" --clock-control none --kernel-name regex:"skinny" --launch-skip 12 \
      --launch-count 8 --set full build/dscc run models/deepseek_v3.dsl --random-weights 1 --set num_hidden_layers=2 \
      --set first_k_dense_replace=1 --set num_nextn_predict_layers=0 --tokens "$out/ids1.npy" --backend cuda --precision fp8 \
      --prefill 16 --generate 3 ;;
  trace1k) # per-kernel times of a 1,024-token prefill on the two full-width layers (random weights)
    python3 -c "import numpy as np; np.save('$out/ids1k.npy', (np.arange(1024, dtype=np.int64) * 7919 % 129280).reshape(1, 1024))"
    TAIL=4 step trace1k_run 240 build/dscc run models/deepseek_v3.dsl --random-weights 1 --set num_hidden_layers=2 \
      --set first_k_dense_replace=1 --set num_nextn_predict_layers=0 --tokens "$out/ids1k.npy" --backend cuda --precision fp8 \
      --prefill 1024 --generate 2 --trace "$out/trace1k.json"
    TAIL=60 step trace1k_top 60 python3 bench/trace_top.py "$out/trace1k.json" 50 --step prefill --peak-gbs 4250 --peak-tflops 1300 ;;
  ncu) # Nsight Compute on MLA's decode kernel (bench_mla's entry mla_bench, named exactly: the default variant, row 7),
       # its third launch (after the two warm-ups), clocks left as they are; then the combine kernel (mla_bench_combine)
       # of the same variant, the decode kernel that merges the splits itself (row 11, DSCC_MLA_FUSE=1), and the one
       # without a producer warpgroup (row 18, DSCC_MLA_V3=3), the seesaw without one (row 21, DSCC_MLA_V3=4), and the
       # keys by TMA (row 23, DSCC_MLA_TMA=1)
    n=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
    if [ -n "$n" ]; then
      TAIL=80 step ncu_mla 240 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 --set full \
        build/bench_mla --variant 7 --reps 3
      TAIL=40 step ncu_mla_combine 120 "$n" --clock-control none --kernel-name mla_bench_combine --launch-skip 2 --launch-count 1 \
        --set full build/bench_mla --variant 7 --reps 3
      TAIL=40 step ncu_mla_fused 120 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 \
        --set full build/bench_mla --variant 11 --reps 3
      TAIL=80 step ncu_mla_v3 240 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 --set full \
        build/bench_mla --variant 18 --reps 3 # (no producer warpgroup, DSCC_MLA_V3=3)
      TAIL=80 step ncu_mla_v4 240 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 --set full \
        build/bench_mla --variant 21 --reps 3 # (the seesaw without a producer, DSCC_MLA_V3=4)
      TAIL=80 step ncu_mla_tma 240 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 --set full \
        build/bench_mla --variant 23 --reps 3 # (the keys by TMA, DSCC_MLA_TMA=1)
      TAIL=80 step ncu_mla_tma4 240 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 --set full \
        build/bench_mla --variant 26 --reps 3 # (FlashMLA's organisation and loads: DSCC_MLA_V3=4 DSCC_MLA_TMA=1)
      TAIL=80 step ncu_mla_mc 240 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 --set full \
        build/bench_mla --variant 27 --reps 3 # (the keys multicast to a batch row's two tiles: DSCC_MLA_TMA=1 DSCC_MLA_MC=1)
    else echo "ncu: not on this machine"; fi ;;
  ppncu) # Nsight Compute on MLA's decode kernel by TMA (bench_mla row 23) and with the consumers' ping-pong (row 36,
    # DSCC_MLA_PP=1), the sections that say what bounds it: tensor pipe, shared memory, L2 and the warps' stalls
    n=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
    if [ -n "$n" ]; then
      for v in 23 36; do
        TAIL=60 step ncu_mla_pp_$v 240 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 \
          --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats \
          --section SchedulerStats build/bench_mla --variant $v --reps 3
      done
    else echo "ncu: not on this machine"; fi ;;
  pdl) # programmatic dependent launch against plain launches, one card, one process each
    step test_gpu_pdl 120 build/test_gpu_pdl
    for p in 1 0; do
      DSCC_PDL=$p TAIL=45 step "bench_gpu_pdl$p" 220 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done ;;
  pdlops) # the fidelity bounds with it on
    DSCC_PDL=1 DSCC_GEMM_TILE=wgmma step test_gpu_ops_pdl 200 build/test_gpu_ops
    DSCC_PDL=1 OUT=$(mktemp -d) TAIL=20 step e2e_pdl 150 bash tests/gpu/e2e.sh ;;
  attnp) # the prefill attention's wgmma form against mma.sync: bench_attn's table, bench_gpu's prefill "attention" line
    step test_gpu_attn 120 build/test_gpu_attn
    TAIL=6 step bench_attn 120 build/bench_attn
    TAIL=6 step bench_attn_4k 120 build/bench_attn --seq 4096 --reps 10
    for w in 1 0; do
      DSCC_ATTN_WGMMA=$w TAIL=40 step "bench_gpu_attn$w" 200 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300
    done ;;
  hbm) # bench_hbm's read patterns at the default sizes (each word read once: --check), then the row pitches
    TAIL=3 step bench_hbm 180 build/bench_hbm --check --u 4,8 --blocks-per-sm 1,2,3
    TAIL=3 step bench_hbm_pitch 120 build/bench_hbm --check --mb 117.440512 --row 16384,18432,2048 --modes 1,4,8 --u 4,8 --blocks-per-sm 1,2,3
    grep -E '^\| (pattern|[0148] )' "$out/bench_hbm.log"
    grep -E '^\| [0148] ' "$out/bench_hbm_pitch.log" ;;
  afence) # MLA decode's consumers without their proxy fence after each wait for keys and the keys evict-first in L2
    # (DSCC_MLA_AFENCE=0 DSCC_MLA_L2HINT=1, the defaults since the thirteenth session): test_gpu_mla with the old
    # settings (AFENCE=1 L2HINT=0; its test_mla_afence holds the new forms to the old bits), then bench_mla's rows 44-47
    # beside 23 (the defaults before), 42 (ping-pong + DSM), 43 (LEAN 6 + DSM), and 48-50 (the hint), batch 32 and 128
    TAIL=6 step test_gpu_mla_old 120 env DSCC_MLA_AFENCE=1 DSCC_MLA_L2HINT=0 build/test_gpu_mla
    grep -E "MLA_AFENCE [01] MLA_L2HINT [01] against" "$out/test_gpu_mla_old.log"
    TAIL=10 step bench_mla_afence_b32 180 build/bench_mla --batch 32 --ctx 4097 --reps 20 --variant 23,44,42,45,43,46,47,48,49,50
    TAIL=4 step bench_mla_afence_b128 120 build/bench_mla --batch 128 --ctx 4097 --reps 20 --variant 23,44,45,48,49
    grep -E "^\| " "$out/bench_mla_afence_b32.log" | cut -c1-200 ;;
  flashmla) # FlashMLA's dense decode kernel (bench/peer_flashmla, built by bench/build_peer_flashmla.sh) beside
    # bench_mla's defaults (row 52; 51 before the fifteenth session, 49 before the fourteenth, 23 before the thirteenth) and ping-pong + DSM (row 42), batch
    # 32 and 128 at 4,097 keys, in the same call
    if [ -x build/bench/peer_flashmla ]; then
      for b in 32 128; do
        TAIL=6 step "peer_flashmla_b$b" 60 build/bench/peer_flashmla --batch "$b" --ctx 4097 --reps 20
        TAIL=6 step "bench_mla_b$b" 90 build/bench_mla --batch "$b" --ctx 4097 --reps 20 --variant 52,51,49,23,42
      done
      n=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
      if [ -n "$n" ] && [ "${FLASHMLA_NCU:-1}" = 1 ]; then # both kernels' third launch at batch 32, clocks left alone
        TAIL=4 step ncu_flashmla 150 "$n" --clock-control none --kernel-name flash_fwd_splitkv_mla_kernel --launch-skip 2 \
          --launch-count 1 --set full build/bench/peer_flashmla --batch 32 --ctx 4097 --reps 3
        TAIL=4 step ncu_mla_dscc 150 "$n" --clock-control none --kernel-name mla_bench --launch-skip 2 --launch-count 1 \
          --set full build/bench_mla --batch 32 --ctx 4097 --variant 52 --reps 3
      fi
    else echo "FlashMLA peer: not run: build/bench/peer_flashmla was not built (bench/build_peer_flashmla.sh)"; fi ;;
  mlafixed) # MLA decode: the fixed part of a CTA's time and the slope per block of 64 keys, ours beside FlashMLA's
    for bt in 32:1025 32:2049 32:4097 32:8193 32:16385 16:4097 64:4097; do
      b=${bt%%:*} t=${bt#*:}
      TAIL=3 step "bench_mla_b${b}_t$t" 90 build/bench_mla --batch "$b" --ctx "$t" --reps 20 --variant 52
      [ -x build/bench/peer_flashmla ] && TAIL=3 step "peer_flashmla_b${b}_t$t" 60 build/bench/peer_flashmla --batch "$b" --ctx "$t" --reps 20
    done
    # where the blocks' time goes (bench_mla --stamps: the kernel's own clock64 / globaltimer stamps, a build of its own)
    TAIL=8 step bench_mla_stamps_b32 90 build/bench_mla --batch 32 --ctx 4097 --reps 20 --variant 52,51,49 --stamps
    TAIL=4 step bench_mla_stamps_b128 90 build/bench_mla --batch 128 --ctx 4097 --reps 20 --variant 52,49 --stamps
    # the batch-32 medians (decode + merge; FlashMLA's kernel + combine) against the blocks of 64 keys a split
    for who in bench_mla peer_flashmla; do
      for t in 1025 2049 4097 8193 16385; do
        f="$out/${who}_b32_t$t.log"; [ -f "$f" ] || continue
        ms=$(grep -E "^\| (the defaults|split-KV kernel \+ combine)" "$f" | head -n 1 | cut -d'|' -f3 | tr -d ' ')
        [ -n "$ms" ] && echo "$t $ms"
      done | awk -v w="$who" '{ n++; x = int((int(($1 + 63) / 64) + 1) / 2); sx += x; sy += $2 * 1000; sxx += x * x; sxy += x * $2 * 1000 }
        END { if (n < 2) exit; b = (n * sxy - sx * sy) / (n * sxx - sx * sx); printf "%s, batch 32: %.3f us a block of 64 keys, fixed %.1f us (%d points)\n", w, b, (sy - b * sx) / n, n }'
    done ;;
  ostage) # MLA decode's output through shared memory, a row at a time (MLA_OSTAGE 1, bench_mla row 51: the default
    # since the fourteenth session) beside the defaults before (49), batch 32 and 128 at 4,097 keys, one process each;
    # then both with --stamps (their exit phases)
    for b in 32 128; do
      TAIL=4 step "bench_mla_ostage_b$b" 90 build/bench_mla --batch "$b" --ctx 4097 --reps 20 --variant 49,51
      TAIL=4 step "bench_mla_ostage_stamps_b$b" 90 build/bench_mla --batch "$b" --ctx 4097 --reps 20 --variant 49,51 --stamps
    done ;;
  defaults) # the defaults after a kernel change: test_gpu_ops beside QUICK_TESTS, e2e, bench_mla QUICK_MLA, bench_gpu
    ( DSCC_GEMM_TILE=wgmma timeout 170 build/test_gpu_ops > "$out/ops.log" 2>&1; echo $? > "$out/ops.rc" ) & p1=$!
    ( for n in ${QUICK_TESTS:-test_gpu_mla}; do timeout 170 "build/$n" > "$out/u_$n.log" 2>&1; echo $? > "$out/u_$n.rc"; done ) & p2=$!
    wait $p1 $p2
    echo "test_gpu_ops: exit $(cat "$out/ops.rc")"; [ "$(cat "$out/ops.rc")" = 0 ] || { tail -n 12 "$out/ops.log"; status=1; }
    for t in "$out"/u_*.rc; do n=$(basename "$t" .rc); echo "${n#u_}: exit $(cat "$t")"; [ "$(cat "$t")" = 0 ] || { tail -n 8 "$out/${n}.log"; status=1; }; done
    OUT=$(mktemp -d) TAIL=6 step e2e 150 bash tests/gpu/e2e.sh
    for b in 32 128; do
      TAIL=4 step "bench_mla_b$b" 90 build/bench_mla --batch "$b" --ctx 4097 --reps 20 --variant "${QUICK_MLA:-52,51}"
    done
    TAIL=45 step bench_gpu 220 build/bench_gpu --layers 2 --dense 1 --prefill 1024 --peak-tflops 1300 ;;
  xpush) # the DSM merge pushed (MLA_XPUSH 1, bench_mla row 52, the default) beside the defaults before (51): only batch 32's two splits merge
    for t in 4096 4097 8193; do
      TAIL=4 step "bench_mla_xpush_t$t" 90 build/bench_mla --batch 32 --ctx "$t" --reps 20 --variant 51,52,53
    done
    TAIL=4 step bench_mla_xpush_stamps 90 build/bench_mla --batch 32 --ctx 4097 --reps 20 --variant 51,52,53 --stamps ;;
  peers) # transformers and bench_mtp, then on into the DeepSeek part
    TAIL=20 step peer_transformers 150 python3 bench/peer_transformers.py --layers 2 --dense 1 --prefill 1024
    TAIL=20 step bench_mtp 120 build/bench_mtp --layers 2 --dense 1 ;&
  deepseek) # DeepSeek's inference code (its Triton autotuning takes minutes a mode)
    TAIL=30 step peer_deepseek "${PEER_S:-300}" python3 bench/peer_deepseek.py --layers 2 --dense 1 --prefill 1024 \
      --modes "${PEER_MODES:-bf16/absorb,fp8/absorb,fp8/naive}" ;;
  deepgemm) # DeepGEMM's FP8 GEMM alone at bench_gemm's shapes (the wheel into a scratch folder)
    site=$(mktemp -d)
    if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .peers/whl/sgl_deep_gemm-*.whl; then
      PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" TAIL=60 step peer_deepgemm "${DG_S:-300}" python3 bench/peer_deepgemm.py --budget-s "$(( ${DG_S:-300} - 30 ))"
    else echo "DeepGEMM peer: not run: the wheel did not install"; fi ;;
  *) echo "rounds.sh: unknown part '$mode'"; status=1 ;;
esac
done
# one file back (the device tool returns a limited number of files): every log, table and trace in logs.tgz
tar -C "$out" -czf "$out/logs.tgz" --exclude logs.tgz . 2>/dev/null && find "$out" -mindepth 1 ! -name logs.tgz -delete
exit $status
