// Codegen: every kernel of the full DeepSeek-V3 description compiles with
// NVRTC to sm_90a (no GPU needed), through a fresh cache and then from it;
// --emit=cuda shows each kernel's IR ops and DSL locations.
// RUN: d=$(mktemp -d); DSCC_CACHE_DIR=$d/cache dscc compile models/deepseek_v3.dsl --emit=cubin -o $d/cubin 2>&1 | sed 's/in [0-9.]* s/in T s/'; ls $d/cubin | wc -l; file=$(ls $d/cubin/g0_*.cubin); head -c 4 $file | od -An -c; DSCC_CACHE_DIR=$d/cache dscc compile models/deepseek_v3.dsl --emit=cubin -o $d/cubin 2>&1 | sed 's/in [0-9.]* s/in T s/'; truncate -s 5000 $(ls $d/cache/*.cubin | head -n 1); DSCC_CACHE_DIR=$d/cache dscc compile models/deepseek_v3.dsl --emit=cubin -o $d/cubin 2>&1 | sed 's/in [0-9.]* s/in T s/'; rm -rf $d
// CHECK: compiled 37 modules for 1763 kernels with NVRTC (0 from the cache, 0 damaged cache entries compiled again) in T s
// CHECK-NEXT: wrote 37 cubins (37 modules, identical ones once) of 1763 kernels and manifest.json to
// CHECK-NEXT: 38
// CHECK-NEXT: 177   E   L   F
// CHECK-NEXT: compiled 37 modules for 1763 kernels with NVRTC (37 from the cache, 0 damaged cache entries compiled again) in T s
// CHECK-NEXT: wrote 37 cubins (37 modules, identical ones once) of 1763 kernels and manifest.json to
// CHECK-NEXT: compiled 37 modules for 1763 kernels with NVRTC (36 from the cache, 1 damaged cache entries compiled again) in T s
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --emit=cuda | awk '/^\/\/ g1_rmsnorm/,/^\/\/ module/'
// CHECK: // g1_rmsnorm_act_scale_quantize: 3 IR ops
// CHECK-NEXT: = rmsnorm
// CHECK: act_scale
// CHECK-NEXT: = quantize %5, %6 : fp8e4m3[B,S,96]  models/deepseek_v3.dsl:160:26  in mla_attention
// CHECK-NEXT: // module 1, shared by every group with the same source
// RUN: dscc compile models/deepseek_v3.dsl --config models/tiny/config.json --emit=cubin; echo "exit=$?"
// CHECK: --emit=cubin writes one file per module and a manifest: give -o DIR
// CHECK-NEXT: exit=2
// Which V3 kernels take the tensor-core templates: every FP8 linear (none
// with a scale transposition: the quantize stores the scales the way
// cuBLASLt reads them), the grouped expert
// GEMM of every routed linear (gate, up and down in one kernel over one sort), both absorbed-MLA einsums and attention in
// every layer (with its split-key decode form and the merge of its parts),
// the BF16 LM head, and the f32 router linear of every MoE layer, which reads
// the bf16 values its operands were cast from (so the casts are not computed),
// and attention reads v from its cache's rows (so the 61 slices that copied
// the latent cache every step are not computed either) and each row of q
// from its two parts (nor are the 61 concats of q_nope and q_pe);
// every linear but the LM head (1,010 output tiles) also has its split-K
// form for decode steps. The naive form of attn_impl=auto (the default)
// adds per layer its own o_proj and kv_b_proj's two halves as BF16 linears.
// RUN: dscc compile models/deepseek_v3.dsl --emit=cuda | grep -E "^extern .*(tensor cores|one key head|for cuBLASLt|keys split)" | sed 's/.*) {  \/\/ //' | sort | uniq -c | sed 's/^ *//'
// CHECK: 61 attention, a decode step's keys split: merge the parts
// CHECK-NEXT: 61 attention, one key head, a decode step's keys split between blocks: tensor cores (mma m16n8k16 BF16), 64 query rows x 32 keys per step, online softmax, partial states to scratch
// CHECK-NEXT: 61 attention, one key head: tensor cores (mma m16n8k16 BF16), 64 query rows x 32 keys per step, online softmax
// CHECK-NEXT: 61 einsum bshc,hdc->bshd per head on the tensor cores (wgmma m64n64k16 BF16), 64x128 tile
// CHECK-NEXT: 61 einsum bshd,hcd->bshc per head on the tensor cores (wgmma m64n64k16 BF16), 64x128 tile
// CHECK-NEXT: 366 fp8_linear: tensor cores (wgmma m64n64k32 E4M3), 64x128 tile, 1x128 / 128x128 block scales per K block
// CHECK-NEXT: 363 fp8_linear: tensor cores (wgmma m64n64k32 E4M3), 64x128 tile, 1x128 / 128x128 block scales per K block, K split between blocks (one row tile): partial tiles to scratch
// CHECK-NEXT: 123 linear: tensor cores (wgmma m64n64k16 BF16, f32 accumulation), 64x128 tile
// CHECK-NEXT: 122 linear: tensor cores (wgmma m64n64k16 BF16, f32 accumulation), 64x128 tile, K split between blocks (one row tile): partial tiles to scratch
// CHECK-NEXT: 58 linear: tensor cores (wgmma m64n64k16 BF16, f32 accumulation), 64x128 tile, on the bf16 values its f32 operands were cast from
// CHECK-NEXT: 58 linear: tensor cores (wgmma m64n64k16 BF16, f32 accumulation), 64x128 tile, on the bf16 values its f32 operands were cast from, K split between blocks (one row tile): partial tiles to scratch
// CHECK-NOT: for cuBLASLt
// The grouped expert GEMM's sort (codegen/kernels/expert_sort.cuh), one per
// MoE layer: its gate and up paired, the TMA form's bucket list and passes.
// RUN: dscc compile models/deepseek_v3.dsl --emit=cuda | grep -E -A1 --no-group-separator "^// fp8_expert_linear.*phase 1: routed" | sed 's/p[0-9]*_expert_sort$/pN_expert_sort/' | sort | uniq -c | sed 's/^ *//'
// CHECK: 58 #define DSCC_ENTRY pN_expert_sort
// CHECK-NEXT: 58 // fp8_expert_linear x 2 (gate and up), phase 1: routed rows sorted by expert (bucket E: id -1), cut into tiles of 64; the TMA form's bucket list and passes
// Every rmsnorm of V3 (61 x input, q_a, latent, post-attention, and the
// final one) is one kernel: its group keeps rows apart, so it takes the
// row's statistic and then stores the row (with the residual add, the
// act_scale and the quantize of the next GEMM's input); the latent's row
// kernel also appends the new row to the KV cache, so no layer has a
// kernel of its own for that. Each has two forms: up to 64 rows (a decode
// step) a cluster of CTAs splits each row (the latent's 512 over 4, q_a's
// 1,536 over 6, the hidden 7,168 over 8), above one block a row; above 128
// rows (a prefill) a third where its 16-byte loads and stores apply (the
// input of the first layer, and every norm after attention: not after a
// MoE combine): the hidden 7,168's two rows a block in turn, q_a's one
// block a row (DSCC_ROWS_PREFILL=0: none).
// RUN: dscc compile models/deepseek_v3.dsl --emit=cuda | grep -E "^extern .*rmsnorm" | sed 's/.*) {  \/\/ //' | sort | uniq -c | sed 's/^ *//'
// CHECK: 61 rows: rmsnorm, then the row's stores; 1 row a block
// CHECK-NEXT: 65 rows: rmsnorm, then the row's stores; 2 rows a block in turn
// CHECK-NEXT: 61 rows: rmsnorm, then the row's stores; a cluster of 4 CTAs a row, 128 wide each
// CHECK-NEXT: 61 rows: rmsnorm, then the row's stores; a cluster of 6 CTAs a row, 256 wide each
// CHECK-NEXT: 123 rows: rmsnorm, then the row's stores; a cluster of 8 CTAs a row, 896 wide each
// CHECK-NEXT: 245 rows: rmsnorm, then the row's stores; one block a row
// CHECK-NOT: rmsnorm
// RUN: dscc compile models/deepseek_v3.dsl --emit=cuda | grep -oE "^extern .*kv_cache: append|appended to the cache" | sort | uniq -c | sed 's/^ *//'
// CHECK: 122 appended to the cache
// CHECK-NOT: kv_cache: append
