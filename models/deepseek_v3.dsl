// deepseek_v3.dsl — DeepSeek-V3 (671B total, ~37B activated per token).
//
// The defaults are the released model's; every parameter binds by its
// Hugging Face config.json name (or the `from` keys), so the same file
// describes any checkpoint of this architecture, e.g. the tiny one in
// models/tiny/config.json:
//
//   dscc compile models/deepseek_v3.dsl --config models/tiny/config.json
//   dscc stats   models/deepseek_v3.dsl --set num_hidden_layers=4
//
// Attention has both forms of DeepSeek's inference code (attn_impl, after
// mla_attention): absorbed, kv_b_proj folded into the query (W_UK) and the
// output (W_UV), and naive, kv_b_proj expanding latents into per-head keys
// and values (by default a prefill from position 0 naive, other steps
// absorbed). The cache holds the normalised latent and the roped key.
//
// Each layer kind is a top-level call (mla_attention, dense_mlp, moe, mtp):
// `dscc stats` groups its figures by the outermost function an op came from.

// A --config must be a config of this architecture (its model_type).
model deepseek_v3 for "deepseek_v3";

// ---- architecture (config.json names) -----------------------------------
param vocab_size: int = 129280;
param hidden_size: int = 7168;
param intermediate_size: int = 18432;          // dense MLP of the first layers
param moe_intermediate_size: int = 2048;       // each routed / shared expert
param num_hidden_layers: int = 61;
param first_k_dense_replace: int = 3;          // layers [0, 3) dense, the rest MoE
param num_attention_heads: int = 128;
param q_lora_rank: int = 1536;
param kv_lora_rank: int = 512;
param qk_nope_head_dim: int = 128;
param qk_rope_head_dim: int = 64;
param v_head_dim: int = 128;
param rms_norm_eps: float = 1e-6;
param tie_word_embeddings: bool = false;

// ---- routing ---------------------------------------------------------------
param n_routed_experts: int = 256;
param n_shared_experts: int = 1;
param num_experts_per_tok: int = 8;
param n_group: int = 8;
param topk_group: int = 4;
param routed_scaling_factor: float = 2.5;
param norm_topk_prob: bool = true;
param scoring_func: str = "sigmoid";
param topk_method: str = "noaux_tc";

// ---- rotary embedding (YaRN) ---------------------------------------------
// Older configs nest these under rope_scaling, newer transformers under
// rope_parameters. A config without either gets plain RoPE (`absent`).
param rope_theta: float = 10000.0 from "rope_parameters.rope_theta";
param rope_type: str = "yarn" from "rope_scaling.type", "rope_scaling.rope_type",
    "rope_parameters.rope_type", "rope_parameters.type" absent "default";
param rope_factor: float = 40.0 from "rope_scaling.factor", "rope_parameters.factor";
param original_max_position_embeddings: int = 4096
    from "rope_scaling.original_max_position_embeddings", "rope_parameters.original_max_position_embeddings";
param beta_fast: float = 32.0 from "rope_scaling.beta_fast", "rope_parameters.beta_fast";
param beta_slow: float = 1.0 from "rope_scaling.beta_slow", "rope_parameters.beta_slow";
param mscale: float = 1.0 from "rope_scaling.mscale", "rope_parameters.mscale" absent 0.0;
param mscale_all_dim: float = 1.0 from "rope_scaling.mscale_all_dim", "rope_parameters.mscale_all_dim" absent 0.0;
param rope_interleave: bool = true;

// ---- multi-token prediction (off by default; transformers ignores it) ----
param mtp: bool = false;
param num_nextn_predict_layers: int = 1;

// Each size is an extent some op divides by, each float a divisor or a
// log(): a zero or a NaN is an error here, naming the parameter, rather
// than a crash or NaN logits later.
assert hidden_size > 0 && vocab_size > 0 && num_hidden_layers > 0, "sizes must be positive";
assert intermediate_size >= 1, "intermediate_size must be at least 1";
assert moe_intermediate_size >= 1, "moe_intermediate_size must be at least 1";
assert num_attention_heads >= 1, "num_attention_heads must be at least 1";
assert q_lora_rank >= 1, "q_lora_rank must be at least 1";
assert kv_lora_rank >= 1, "kv_lora_rank must be at least 1";
assert qk_nope_head_dim >= 1, "qk_nope_head_dim must be at least 1";
assert qk_rope_head_dim >= 2 && qk_rope_head_dim % 2 == 0, "qk_rope_head_dim must be a positive even number";
assert v_head_dim >= 1, "v_head_dim must be at least 1";
assert rms_norm_eps > 0.0 && isfinite(rms_norm_eps), "rms_norm_eps must be a positive finite number";
assert first_k_dense_replace >= 0 && first_k_dense_replace <= num_hidden_layers,
    "first_k_dense_replace must be within 0..num_hidden_layers";
assert n_routed_experts >= 1, "n_routed_experts must be at least 1";
assert n_shared_experts >= 1, "n_shared_experts must be at least 1 (the shared expert is always there)";
assert num_experts_per_tok >= 1, "num_experts_per_tok must be at least 1";
assert n_group >= 1, "n_group must be at least 1";
assert n_group < 1 || n_routed_experts % n_group == 0, "n_routed_experts must split evenly into n_group groups";
assert topk_group >= 1 && topk_group <= n_group, "topk_group must be within 1..n_group";
assert n_group < 1 || num_experts_per_tok <= topk_group * (n_routed_experts / n_group),
    "num_experts_per_tok exceeds the experts of the kept groups";
assert isfinite(routed_scaling_factor), "routed_scaling_factor must be finite";
assert scoring_func == "sigmoid", "only sigmoid router scores are described (scoring_func)";
assert topk_method == "noaux_tc", "only the bias-corrected group top-k router is described (topk_method)";
assert rope_type == "yarn" || rope_type == "default", "rope type must be yarn or default";
assert rope_theta > 0.0 && isfinite(rope_theta), "rope_theta must be a positive finite number";
if rope_type == "yarn" {
  assert rope_factor > 0.0 && isfinite(rope_factor), "rope_scaling.factor (rope_factor) must be a positive finite number";
  assert original_max_position_embeddings >= 1,
      "rope_scaling.original_max_position_embeddings must be at least 1";
  assert beta_fast > 0.0 && beta_slow > 0.0 && isfinite(beta_fast) && isfinite(beta_slow),
      "rope_scaling.beta_fast and beta_slow must be positive finite numbers";
  assert isfinite(mscale) && isfinite(mscale_all_dim), "rope_scaling.mscale and mscale_all_dim must be finite";
}

// B: batch, S: new tokens in this step, T: context = cached + new tokens.
dim B, S, T;
input tokens: i32[B, S];
input positions: i32[B, S];   // absolute position of each new token

let H = num_attention_heads;
let qk_head_dim = qk_nope_head_dim + qk_rope_head_dim;

// YaRN's attention temperature: 0.1 * m * ln(scale) + 1 for scale > 1.
fn yarn_mscale(scale, m) {
  if scale <= 1.0 {
    return 1.0;
  }
  return 0.1 * m * ln(scale) + 1.0;
}

let softmax_scale = pow(float(qk_head_dim), -0.5);
if rope_type == "yarn" && mscale_all_dim > 0.0 {
  let m = yarn_mscale(rope_factor, mscale_all_dim);
  softmax_scale = softmax_scale * m * m;
}

// Rotary embedding of x[B, S, heads, qk_rope_head_dim] at `positions`.
fn apply_rope(x) {
  if rope_type == "default" {
    return rope(x, positions, theta=rope_theta, interleave=rope_interleave);
  }
  if mscale > 0.0 && mscale_all_dim > 0.0 {
    return rope(x, positions, theta=rope_theta, interleave=rope_interleave, factor=rope_factor,
                original_max_position=original_max_position_embeddings, beta_fast=beta_fast,
                beta_slow=beta_slow, mscale=mscale, mscale_all_dim=mscale_all_dim);
  }
  return rope(x, positions, theta=rope_theta, interleave=rope_interleave, factor=rope_factor,
              original_max_position=original_max_position_embeddings, beta_fast=beta_fast,
              beta_slow=beta_slow);
}

// Multi-head latent attention of layer l, pre-norm included; returns the
// residual update [B, S, hidden_size].
fn mla_attention(h, l) {
  let p = "model.layers.{l}";
  weight norm: bf16[hidden_size] = "{p}.input_layernorm.weight";
  weight wq_a: bf16[q_lora_rank, hidden_size] = "{p}.self_attn.q_a_proj.weight";
  weight q_norm: bf16[q_lora_rank] = "{p}.self_attn.q_a_layernorm.weight";
  weight wq_b: bf16[H * qk_head_dim, q_lora_rank] = "{p}.self_attn.q_b_proj.weight";
  weight wkv_a: bf16[kv_lora_rank + qk_rope_head_dim, hidden_size] = "{p}.self_attn.kv_a_proj_with_mqa.weight";
  weight kv_norm: bf16[kv_lora_rank] = "{p}.self_attn.kv_a_layernorm.weight";
  weight wkv_b: bf16[H * (qk_nope_head_dim + v_head_dim), kv_lora_rank] = "{p}.self_attn.kv_b_proj.weight";
  weight wo: bf16[hidden_size, H * v_head_dim] = "{p}.self_attn.o_proj.weight";

  let x = rmsnorm(h, norm, eps=rms_norm_eps);

  // Queries through their low-rank bottleneck, split per head into the
  // position-free part and the rotary part.
  let q = linear(rmsnorm(linear(x, wq_a), q_norm, eps=rms_norm_eps), wq_b);
  let q_nope, q_pe = split(reshape(q, [B, S, H, qk_head_dim]), [qk_nope_head_dim, qk_rope_head_dim], axis=-1);
  q_pe = apply_rope(q_pe);

  // Keys and values: one compressed latent per token plus one rotary key
  // shared by every head. Only these 576 values per token are cached.
  let latent, k_pe = split(linear(x, wkv_a), [kv_lora_rank, qk_rope_head_dim], axis=-1);
  let k_rot = apply_rope(reshape(k_pe, [B, S, 1, qk_rope_head_dim]));
  let lat = rmsnorm(latent, kv_norm, eps=rms_norm_eps);                   // [B, S, kv_lora_rank]
  let kv_new = concat(reshape(lat, [B, S, 1, kv_lora_rank]), k_rot, axis=-1);
  let cache = kv_cache(kv_new, name="layer{l}.kv");                    // [B, T, 1, 576]

  if attn_impl == "naive" {  // the whole context's latents expanded, every step
    return linear(reshape(mla_naive(q_nope, q_pe, cache, wkv_b), [B, S, H * v_head_dim]), wo);
  }
  let out = linear(reshape(mla_absorbed(q_nope, q_pe, cache, wkv_b), [B, S, H * v_head_dim]), wo);
  if attn_impl == "auto" {  // a step with nothing cached (T = S): the naive form over the cache it just filled
    // (it reads only what the absorbed form stores too, so a cached step runs the absorbed graph's
    // kernels; joined after o_proj, so the join fuses into the residual add)
    out = fresh_select(linear(reshape(mla_naive(q_nope, q_pe, cache, wkv_b), [B, S, H * v_head_dim]), wo), out);
  }
  return out;
}

// How attention is computed, as attn_impl in DeepSeek's inference code:
// "absorb" attends over the cached latent with q_nope folded through W_UK
// (d_qk 576, d_v 512, one key head): the cheap form for decode; "naive"
// expands the context's latents through kv_b_proj into per-head keys and
// values (d_qk 192 = nope + rope, d_v 128): far fewer FLOPs for a prefill
// from position 0 (about 3.4x less attention at 1,024 tokens), far more
// per decode step; "auto" (the default) holds both and each step takes one
// (fresh_select): the naive form, over the step's own tokens, when nothing
// is cached yet, the absorbed form otherwise. The executors skip the form a
// step does not take, so a cached step runs what "absorb" runs.
param attn_impl: str = "auto";
assert attn_impl == "absorb" || attn_impl == "naive" || attn_impl == "auto", "attn_impl must be \"absorb\", \"naive\" or \"auto\"";

// The naive form over the whole cache [B, T, 1, 576]: its normalised
// latents expanded through kv_b_proj's two halves, W_UK and W_UV, into keys
// [B, T, H, 192] and values [B, T, H, 128]; causal attention of q =
// (q_nope, q_pe) over them, as many key heads as query heads. The halves
// are values of the weights the absorbed form holds too (W_UV as it is),
// so kv_b_proj itself is freed at load either way. The prefill attention
// kernel reads q, k and v where they lie (q_nope and q_pe, the two
// products, the cache's rotary keys): no concat, broadcast or slice is
// stored. Returns [B, S, H, v_head_dim].
fn mla_naive(q_nope, q_pe, cache, wkv_b) {
  // (sliced from a [B, T, 576] view: not the absorbed form's v, which it would
  // otherwise merge with (cse), making a cached step copy the latents)
  let lat = slice(reshape(cache, [B, T, kv_lora_rank + qk_rope_head_dim]), axis=-1, start=0, len=kv_lora_rank);
  let w_uk, w_uv = split(reshape(wkv_b, [H, qk_nope_head_dim + v_head_dim, kv_lora_rank]),
                         [qk_nope_head_dim, v_head_dim], axis=1);
  let k_nope = reshape(linear(lat, reshape(w_uk, [H * qk_nope_head_dim, kv_lora_rank])), [B, T, H, qk_nope_head_dim]);
  let v = reshape(linear(lat, reshape(w_uv, [H * v_head_dim, kv_lora_rank])), [B, T, H, v_head_dim]);
  // The shared rotary key repeated over the heads: times ones[H, 1] =
  // exp(w - w) of a slice of the weight, a function of the weights alone
  // (no constant in it, so it is computed once, at load). That element
  // enters the head's k_nope sums, so were it not finite the head's output
  // would be NaN either way.
  let w1 = reshape(slice(slice(reshape(wkv_b, [H, qk_nope_head_dim + v_head_dim, kv_lora_rank]), axis=1, start=0, len=1), axis=2, start=0, len=1), [H, 1]);
  let ones = exp(w1 - w1);
  let k = concat(k_nope, slice(cache, axis=-1, start=kv_lora_rank, len=qk_rope_head_dim) * ones, axis=-1);
  let q = concat(q_nope, q_pe, axis=-1);
  return attention(q, k, v, scale=softmax_scale, causal=true);                // [B, S, H, v_head_dim]
}

// The absorbed form over the whole cache [B, T, 1, 576]. Returns [B, S, H, v_head_dim].
fn mla_absorbed(q_nope, q_pe, cache, wkv_b) {
  // Absorb kv_b_proj: W_UK turns q_nope into latent space, W_UV maps the
  // attended latent back to per-head values.
  let w_uk, w_uv = split(reshape(wkv_b, [H, qk_nope_head_dim + v_head_dim, kv_lora_rank]),
                         [qk_nope_head_dim, v_head_dim], axis=1);
  // W_UK is contracted over its d axis: transposed to [H, c, d], a function of
  // the weights alone, so the einsum reads both operands along their rows.
  let q_abs = concat(einsum("bshd,hcd->bshc", q_nope, transpose(w_uk, [0, 2, 1])), q_pe, axis=-1);   // [B, S, H, 576]
  let o_lat = attention(q_abs, cache, slice(cache, axis=-1, start=0, len=kv_lora_rank),
                        scale=softmax_scale, causal=true);                      // [B, S, H, 512]
  return einsum("bshc,hdc->bshd", o_lat, w_uv);                                 // [B, S, H, v_head_dim]
}

fn swiglu(x, gate, up, down) {
  return linear(silu(linear(x, gate)) * linear(x, up), down);
}

// Dense SwiGLU MLP of layer l (the first first_k_dense_replace layers).
fn dense_mlp(h, l) {
  let p = "model.layers.{l}";
  weight norm: bf16[hidden_size] = "{p}.post_attention_layernorm.weight";
  weight gate: bf16[intermediate_size, hidden_size] = "{p}.mlp.gate_proj.weight";
  weight up: bf16[intermediate_size, hidden_size] = "{p}.mlp.up_proj.weight";
  weight down: bf16[hidden_size, intermediate_size] = "{p}.mlp.down_proj.weight";
  return swiglu(rmsnorm(h, norm, eps=rms_norm_eps), gate, up, down);
}

// Mixture of experts of layer l: sigmoid router with a selection-only bias,
// group-limited top-k, normalised and scaled weights, routed experts plus
// the shared expert(s).
fn moe(h, l) {
  let p = "model.layers.{l}";
  let E = n_routed_experts;
  let I = moe_intermediate_size;
  weight norm: bf16[hidden_size] = "{p}.post_attention_layernorm.weight";
  weight router: bf16[E, hidden_size] = "{p}.mlp.gate.weight";
  weight bias: f32[E] = "{p}.mlp.gate.e_score_correction_bias";
  weight w_gate[e: E]: bf16[I, hidden_size] = "{p}.mlp.experts.{e}.gate_proj.weight";
  weight w_up[e: E]: bf16[I, hidden_size] = "{p}.mlp.experts.{e}.up_proj.weight";
  weight w_down[e: E]: bf16[hidden_size, I] = "{p}.mlp.experts.{e}.down_proj.weight";
  weight s_gate: bf16[n_shared_experts * I, hidden_size] = "{p}.mlp.shared_experts.gate_proj.weight";
  weight s_up: bf16[n_shared_experts * I, hidden_size] = "{p}.mlp.shared_experts.up_proj.weight";
  weight s_down: bf16[hidden_size, n_shared_experts * I] = "{p}.mlp.shared_experts.down_proj.weight";

  let x = reshape(rmsnorm(h, norm, eps=rms_norm_eps), [B * S, hidden_size]);

  // Router in f32. The correction bias steers which experts are chosen but
  // not how much they weigh.
  let scores = sigmoid(linear(cast(x, f32), cast(router, f32)));              // [B*S, E]
  let idx = group_topk(scores + bias, k=num_experts_per_tok, groups=n_group,
                       topk_groups=topk_group, group_top=2);                    // [B*S, k]
  let w = gather(scores, idx, axis=-1);
  if norm_topk_prob {
    w = w / (sum(w, axis=-1, keepdim=true) + 1e-20);
  }
  w = w * routed_scaling_factor;

  // Each (token, slot) through its expert's SwiGLU, then the weighted sum.
  let y = expert_linear(silu(expert_linear(x, w_gate, idx)) * expert_linear(x, w_up, idx), w_down, idx);
  let routed = sum(cast(y, f32) * reshape(w, [B * S, num_experts_per_tok, 1]), axis=1);
  let out = cast(routed, bf16) + swiglu(x, s_gate, s_up, s_down);
  return reshape(out, [B, S, hidden_size]);
}

// Multi-token prediction module L (= num_hidden_layers): predicts the token
// after next from the main model's last hidden state and the embedding of
// the next token. Returns f32 logits.
fn mtp(h_main, next_tokens, L) {
  let p = "model.layers.{L}";
  weight emb: bf16[vocab_size, hidden_size] = "{p}.embed_tokens.weight";
  weight enorm: bf16[hidden_size] = "{p}.enorm.weight";
  weight hnorm: bf16[hidden_size] = "{p}.hnorm.weight";
  weight eh_proj: bf16[hidden_size, 2 * hidden_size] = "{p}.eh_proj.weight";
  weight head_norm: bf16[hidden_size] = "{p}.shared_head.norm.weight";
  weight head: bf16[vocab_size, hidden_size] = "{p}.shared_head.head.weight";
  let e = rmsnorm(embedding(emb, next_tokens), enorm, eps=rms_norm_eps);
  let x = linear(concat(e, rmsnorm(h_main, hnorm, eps=rms_norm_eps), axis=-1), eh_proj);
  x = x + mla_attention(x, L);
  x = x + moe(x, L);
  return cast(linear(rmsnorm(x, head_norm, eps=rms_norm_eps), head), f32);
}

// The two graphs of speculative decoding (dscc run --speculative mtp):
// mtp_hidden adds the main model's last hidden state as output `hidden`
// (the verify step); mtp_draft makes the graph the MTP module alone, fed
// that state as input `h_main` and, as `tokens`, each position's next token.
param mtp_hidden: bool = false;
param mtp_draft: bool = false;

// logits_last_only: the LM head runs on each sequence's last position
// alone, so `logits` is [B, 1, vocab_size] (all a prefill or a decode step
// reads to pick the next token); false keeps every position's [B, S, vocab_size].
param logits_last_only: bool = false;

// ---- the model ---------------------------------------------------------
if mtp_draft {
  assert num_nextn_predict_layers >= 1, "mtp_draft needs num_nextn_predict_layers >= 1";
  assert !mtp && !mtp_hidden, "mtp_draft is the MTP module alone: not with mtp or mtp_hidden";
  input h_main: bf16[B, S, hidden_size];
  output mtp_logits = mtp(h_main, tokens, num_hidden_layers);
} else {
  weight embed: bf16[vocab_size, hidden_size] = "model.embed_tokens.weight";
  let h = embedding(embed, tokens);
  for l in 0 .. num_hidden_layers {
    h = h + mla_attention(h, l);
    if l < first_k_dense_replace {
      h = h + dense_mlp(h, l);
    } else {
      h = h + moe(h, l);
    }
  }

  weight final_norm: bf16[hidden_size] = "model.norm.weight";
  let head_name = "lm_head.weight";
  if tie_word_embeddings {
    head_name = "model.embed_tokens.weight";
  }
  weight lm_head: bf16[vocab_size, hidden_size] = head_name;
  let h_out = h;
  if logits_last_only {
    h_out = slice(h, axis=1, start=-1, len=1);  // [B, 1, hidden_size]: the last position of each sequence
  }
  output logits = cast(linear(rmsnorm(h_out, final_norm, eps=rms_norm_eps), lm_head), f32);

  // V3 has one MTP module; only the first of num_nextn_predict_layers is
  // described. Its input is the token after each position's next token.
  if mtp {
    assert num_nextn_predict_layers >= 1, "mtp needs num_nextn_predict_layers >= 1";
    input mtp_tokens: i32[B, S];
    output mtp_logits = mtp(h, mtp_tokens, num_hidden_layers);
  }
  if mtp_hidden {
    output hidden = h;
  }
}
