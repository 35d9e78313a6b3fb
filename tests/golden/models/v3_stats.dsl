// The 671B figures of DeepSeek-V3, computed by walking the graph of
// models/deepseek_v3.dsl (no constants in the code). Hand check:
//   model:  embed 129280*7168 = 926,679,040, lm_head the same, final norm 7168
//           -> 1,853,365,248
//   attention per layer: q_a 1536*7168 + q_a_norm 1536 + q_b 24576*1536
//           + kv_a 576*7168 + kv_norm 512 + kv_b 32768*512 + o 7168*16384
//           + input norm 7168 = 187,114,496; x61 = 11,413,984,256
//   dense MLP: 3 layers x (3*18432*7168 + norm 7168) = 1,189,106,688
//   MoE per layer: 256 experts x 3*2048*7168 = 11,274,289,152, shared
//           44,040,192, router 1,835,008, bias 256, norm 7168
//           = 11,320,171,776; x58 = 656,569,963,008
//   active MoE per layer: 8/256 of the routed experts = 352,321,536, plus
//           the rest = 398,204,160; x58 = 23,095,841,280
//   KV cache: (512 latent + 64 rope key) x 2 bytes x 61 layers = 70,272
//   attention FLOP/token at 4,096 positions, nothing cached: the naive form
//           (attn_impl=auto): linears 2 x (1536*7168 + 24576*1536 + 576*7168
//           + 32768*512 + 7168*16384) = 374.3M, attention over half of the
//           4,096 keys 2 x 2048 x 128 x (192 + 128) = 167.8M: x61 = 33.07G
//           (the absorbed form's: 57.63G)
// RUN: dscc stats models/deepseek_v3.dsl
// CHECK: model deepseek_v3 (models/deepseek_v3.dsl), batch 1, sequence 4096
// CHECK: model                  1,853,365,248       1,853,365,248
// CHECK-NEXT: mla_attention         11,413,984,256      11,413,984,256        33.07G          70,272
// CHECK-NEXT: dense_mlp              1,189,106,688       1,189,106,688
// CHECK-NEXT: moe                  656,569,963,008      23,095,841,280
// CHECK-NEXT: total                671,026,419,200      37,552,297,472        83.50G          70,272
// CHECK: parameters:            671.03B
// CHECK-NEXT: activated per token:   37.55B
// CHECK-NEXT: KV cache per token:    70272 bytes
