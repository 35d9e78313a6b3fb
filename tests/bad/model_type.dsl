// ARGS: --config tests/bad/model_type_llama.json
// A Llama config bound to a DeepSeek model (once: 189.51B "parameters").
model deepseek_like for "deepseek_v3";
param hidden_size: int = 64;
dim B;
input x: f32[B, hidden_size];
output y = neg(x);
