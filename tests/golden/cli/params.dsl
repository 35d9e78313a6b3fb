// Parameters are checked (issue 16): a zero an op divides by, a
// non-positive or non-finite eps / theta / YaRN factor, a config of another
// model are errors naming the parameter or key, exit 1 (once: SIGFPE,
// all-NaN logits with exit 0, or a Llama config bound as DeepSeek-V3).
// RUN: for s in num_attention_heads=0 q_lora_rank=0 moe_intermediate_size=0 rms_norm_eps=0 rms_norm_eps=-1e-6 rope_theta=0 rope_factor=-4; do dscc run models/deepseek_v3.dsl --config models/tiny/config.json --random-weights 1 --tokens tests/fixtures/tiny_bf16/tokens.npy --set $s 2>&1 | awk '/error/ && !n++'; echo "$s exit=${PIPESTATUS[0]}"; done
// CHECK: models/deepseek_v3.dsl:75:1: error: assertion failed: num_attention_heads must be at least 1
// CHECK-NEXT: num_attention_heads=0 exit=1
// CHECK-NEXT: error: assertion failed: q_lora_rank must be at least 1
// CHECK-NEXT: q_lora_rank=0 exit=1
// CHECK-NEXT: error: assertion failed: moe_intermediate_size must be at least 1
// CHECK-NEXT: moe_intermediate_size=0 exit=1
// CHECK-NEXT: error: assertion failed: rms_norm_eps must be a positive finite number
// CHECK-NEXT: rms_norm_eps=0 exit=1
// CHECK-NEXT: error: assertion failed: rms_norm_eps must be a positive finite number
// CHECK-NEXT: rms_norm_eps=-1e-6 exit=1
// CHECK-NEXT: error: assertion failed: rope_theta must be a positive finite number
// CHECK-NEXT: rope_theta=0 exit=1
// CHECK-NEXT: error: assertion failed: rope_scaling.factor (rope_factor) must be a positive finite number
// CHECK-NEXT: rope_factor=-4 exit=1
// A config's values: an eps that overflows to inf, a YaRN factor of 0, a
// rope_scaling that is not an object, and a config of another model.
// RUN: d=$(mktemp -d); sed 's/"rms_norm_eps": 1e-6/"rms_norm_eps": 1e999/' models/tiny/config.json > $d/inf.json; dscc compile models/deepseek_v3.dsl --config $d/inf.json 2>&1 | awk '/error/ && !n++' | sed "s|$d|DIR|"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: error: assertion failed: rms_norm_eps must be a positive finite number
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); sed 's/"factor": 4.0/"factor": 0/' models/tiny/config.json > $d/c.json; dscc compile models/deepseek_v3.dsl --config $d/c.json 2>&1 | awk '/error/ && !n++' | sed "s|$d|DIR|"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: error: assertion failed: rope_scaling.factor (rope_factor) must be a positive finite number
// CHECK-NEXT: exit=1
// RUN: d=$(mktemp -d); printf '{"model_type": "deepseek_v3", "rope_scaling": 4.0}' > $d/c.json; dscc stats models/deepseek_v3.dsl --config $d/c.json 2>&1 | sed "s|$d|DIR|"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/c.json: error: key 'rope_scaling': expected an object, got a number
// CHECK-NOT: error
// CHECK-NOT: parameters:
// CHECK: exit=1
// RUN: d=$(mktemp -d); printf '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "rms_norm_eps": 1e-05, "vocab_size": 32000}' > $d/c.json; dscc stats models/deepseek_v3.dsl --config $d/c.json 2>&1 | sed "s|$d|DIR|"; echo "exit=${PIPESTATUS[0]}"; rm -rf $d
// CHECK: DIR/c.json: error: key 'model_type': this is a config of "llama", but model deepseek_v3 describes "deepseek_v3"
// CHECK-NEXT: models/deepseek_v3.dsl:21:1: note: the model types deepseek_v3 describes are declared here
// CHECK-NOT: parameters:
// CHECK: exit=1
