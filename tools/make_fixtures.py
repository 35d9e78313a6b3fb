#!/usr/bin/env python3
"""make_fixtures.py — fidelity fixtures from an independent implementation.

Builds a tiny random DeepSeek-V3 with Hugging Face transformers'
DeepseekV3ForCausalLM (models/tiny/config.json: YaRN, 4 groups of which 2
are kept, a non-zero correction bias, dimensions that are not multiples of
128), and writes, under OUT (default tests/fixtures):

  tiny_bf16/  config.json, model.safetensors (BF16 weights, F32 bias),
              tokens.npy [B, S] int32 (--tokens, 2 x 8), logits.npy [B, S, vocab] float32:
              transformers' FP32 forward of exactly those weights.
  tiny_fp8/   a model of its own seed as a DeepSeek FP8 checkpoint: every linear of
              attention and the MLPs/experts as F8_E4M3 with 128x128
              `weight_scale_inv` blocks (scale = block amax / 448), plus
              quantization_config; tokens.npy;
              logits_dequant.npy: FP32 forward of the dequantized weights;
              logits_fp8.npy: the same with DeepSeek's activation scheme
              emulated — each quantized linear's input rounded to E4M3 per
              1x128 tile along K (scale = tile amax / 448). kv_b_proj is the
              exception: DeepSeek's absorbed attention applies it to the
              cached latent through einsum on dequantized weights, with no
              activation quantization, and so does dscc.

  tiny_mtp/   (--only mtp makes it alone) the tiny config with 2 layers and a
              vocabulary of 500, BF16, WITH the multi-token-prediction layer
              model.layers.2.* under the released checkpoint's names (enorm,
              hnorm, eh_proj, its attention + MoE block, shared_head.norm,
              shared_head.head, and embed_tokens, a copy of the main
              embedding as the released checkpoint stores it); tokens.npy
              [2, 6] prompts; sequence.npy [2, 19]: the prompts continued
              greedily by transformers; logits.npy and hidden.npy: the main
              model's FP32 logits and last hidden state over sequence.npy;
              mtp_tokens.npy (each position's next token) and mtp_logits.npy:
              the MTP module's FP32 logits, computed by this script's own
              PyTorch code written from the V3 technical report's MTP section
              (transformers does not run MTP; see mtp_forward);
              reference.json: the 12 greedy tokens per row and the verify
              steps and accepted drafts of `dscc run --speculative mtp`'s
              scheme (simulate_speculative). A random MTP module drafts at
              chance, so its output head is taught part of the fixture's own
              continuation (teach_head): drafts are then kept at some
              positions and rejected at others, differently per row.

Each random model is chosen to be well conditioned: seeds SEED, SEED+1, ...
are tried, for each fixture on its own, until its reference forwards (the
FP32 forward of tiny_bf16; the FP32 forward of tiny_fp8's dequantized
weights, the reference of its --precision bf16) have every router decision
(groups kept, experts chosen) at least --min-margin from a tie in the
bias-corrected sigmoid score and every position's largest logit at least
--min-gap above the runner-up, and tiny_fp8's FP8-emulated forward has its
routing --min-fp8-margin from a tie. A random model otherwise has
near-ties that rounding flips at random, and one flipped expert choice
moves the logits by several times the bounds, so the comparison would
measure luck instead of precision: seed 0 of this config has a routing
margin of 6e-4 and a logit gap of 1e-3 (transformers' own BF16 run got 23
of 24 argmaxes; dscc's bf16 storage, whose activations move these router
scores by 1.9e-3 RMS, was 4.4e-2 from the FP32 logits); seed 6914 (one
model for both checkpoints, 2 x 12 tokens) met the FP32 conditions but its
FP8-emulated forward had a margin of 8e-4, and on the emulated CUDA device
one E4M3 code of its first quantize (1 of 2,304) rounded the other way (f32
sums in another order put the value on the other side of a rounding
midpoint), which put --storage f32 9e-2 from the emulation. A seed per
fixture and fewer tokens (--tokens, default 2 x 8) make the conditions
likely enough to be met in a minute: with the defaults tiny_bf16 is seed 33
(margin 9.0e-3, gap 0.070) and tiny_fp8 seed 1098 (margin 8.2e-3, FP8
emulated 6.9e-3, gap 0.066).

The checkpoints use the per-expert tensor names of the released model
(model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight) whatever layout the
installed transformers keeps its experts in. Needs torch, transformers,
safetensors, numpy; runs on CPU or GPU (the seed search takes minutes;
the defaults rebuild the committed fixtures in under a minute on a CPU).
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_MARGIN = 6e-3  # routing margin the fixture's FP32 forward must clear (see the docstring)
MIN_GAP = 0.05     # gap of every position's argmax to the runner-up, in logits
MIN_FP8_MARGIN = 3e-3  # the same in the FP8-emulated forward (one E4M3 code rounded the other way moves a score ~3e-4)
QUANT = re.compile(r"\.(self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)"
                   r"|mlp\.(gate_proj|up_proj|down_proj)"
                   r"|mlp\.shared_experts\.(gate_proj|up_proj|down_proj)"
                   r"|mlp\.experts\.\d+\.(gate_proj|up_proj|down_proj))\.weight$")
EXPERTS = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)$")


def build_model(cfg_path, seed):
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    cfg = json.load(open(cfg_path))
    cfg["initializer_range"] = 0.1  # larger than the default so logits are well separated
    config = DeepseekV3Config(**cfg)
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"  # plain per-expert F.linear, which the FP8 emulation hooks
    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn_like(b))
        for p in model.parameters():  # every weight exactly representable in BF16
            p.copy_(p.to(torch.bfloat16).float())
    return model, config


def to_layout(model, config):
    """state dict -> {released checkpoint name: tensor}, splitting fused experts."""
    return split_experts(model.state_dict(), config)


def split_experts(state, config):
    """{name: tensor} with the installed transformers' expert layout ->
    the released per-expert names."""
    H, I = config.hidden_size, config.moe_intermediate_size
    out = {}
    for k, v in state.items():
        if k.endswith("rotary_emb.inv_freq") or "rotary_emb" in k:
            continue
        m = EXPERTS.match(k)
        if not m:
            out[k] = v.detach().clone()
            continue
        for e in range(v.shape[0]):
            w = v[e]
            if m.group(2) == "gate_up_proj":
                if w.shape != (2 * I, H):
                    w = w.t()
                assert w.shape == (2 * I, H), (k, tuple(v.shape))
                out[f"{m.group(1)}.{e}.gate_proj.weight"] = w[:I].clone()
                out[f"{m.group(1)}.{e}.up_proj.weight"] = w[I:].clone()
            else:
                if w.shape != (H, I):
                    w = w.t()
                assert w.shape == (H, I), (k, tuple(v.shape))
                out[f"{m.group(1)}.{e}.down_proj.weight"] = w.clone()
    return out


def from_layout(model, config, layout):
    """Writes layout tensors back into the model's parameters (fused or not)."""
    I = config.moe_intermediate_size
    sd = model.state_dict()
    with torch.no_grad():
        for k, v in sd.items():
            m = EXPERTS.match(k)
            if not m:
                if k in layout:
                    v.copy_(layout[k])
                continue
            for e in range(v.shape[0]):
                if m.group(2) == "gate_up_proj":
                    w = torch.cat([layout[f"{m.group(1)}.{e}.gate_proj.weight"], layout[f"{m.group(1)}.{e}.up_proj.weight"]])
                else:
                    w = layout[f"{m.group(1)}.{e}.down_proj.weight"]
                v[e].copy_(w if v[e].shape == w.shape else w.t())


def quant_blocks(w):
    """128x128 block FP8: (e4m3 tensor, f32 scale_inv [ceil(O/128), ceil(I/128)])."""
    O, K = w.shape
    ro, rk = -O % 128, -K % 128
    wp = F.pad(w, (0, rk, 0, ro)).view((O + ro) // 128, 128, (K + rk) // 128, 128)
    amax = wp.abs().amax(dim=(1, 3))
    s = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    q = (wp / s[:, None, :, None]).clamp(-448, 448).view(O + ro, K + rk)[:O, :K].to(torch.float8_e4m3fn)
    deq = q.float() * s.repeat_interleave(128, 0)[:O].repeat_interleave(128, 1)[:, :K]
    return q, s.float(), deq


def quant_act(x):
    """E4M3 rounding of x per 1x128 tile along the last axis (scale = amax / 448)."""
    K = x.shape[-1]
    pad = -K % 128
    xp = F.pad(x, (0, pad)).view(*x.shape[:-1], (K + pad) // 128, 128)
    s = xp.abs().amax(dim=-1, keepdim=True) / 448.0
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = (xp / safe).clamp(-448, 448).to(torch.float8_e4m3fn).float() * safe
    q = torch.where(s > 0, q, torch.zeros_like(q))
    return q.view(*x.shape[:-1], K + pad)[..., :K]


def forward(model, tokens, margins=None):
    """FP32 logits; with margins (a list), appends each router's smallest
    top-k margin (see routing_margin) over the tokens of this forward."""
    hooks = []
    if margins is not None:
        for m in model.modules():
            if hasattr(m, "e_score_correction_bias") and hasattr(m, "topk_group"):
                hooks.append(m.register_forward_hook(lambda mod, args, out: margins.append(routing_margin(mod, args[0]))))
    try:
        with torch.no_grad():
            return model(input_ids=tokens).logits.float().cpu().numpy()
    finally:
        for h in hooks:
            h.remove()


def routing_margin(router, x):
    """How far the router's decisions for x are from a tie: the smallest gap,
    over tokens, between the last group kept and the first dropped (groups
    scored by their top two biased scores) and between the last expert chosen
    and the first not chosen within the kept groups."""
    s = torch.sigmoid(F.linear(x.reshape(-1, router.weight.shape[1]).float(), router.weight.float()))
    s = s + router.e_score_correction_bias.float()
    T, E = s.shape
    G, kg, k = router.num_group, router.topk_group, router.top_k
    gs = s.view(T, G, E // G).topk(2, dim=-1)[0].sum(-1).sort(dim=-1, descending=True)[0]
    margin = float("inf")
    if kg < G:
        margin = float((gs[:, kg - 1] - gs[:, kg]).min())
    kept = s.view(T, G, E // G).topk(2, dim=-1)[0].sum(-1) >= gs[:, kg - 1:kg]
    masked = torch.where(kept.repeat_interleave(E // G, dim=1), s, torch.full_like(s, -float("inf")))
    ms = masked.sort(dim=-1, descending=True)[0]
    if k < kg * (E // G):
        margin = min(margin, float((ms[:, k - 1] - ms[:, k]).min()))
    return margin


def save_dir(path, config_dict, tensors, tokens, extra):
    os.makedirs(path, exist_ok=True)
    json.dump(config_dict, open(os.path.join(path, "config.json"), "w"), indent=2)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(path, "model.safetensors"),
              metadata={"format": "pt"})
    np.save(os.path.join(path, "tokens.npy"), tokens.numpy().astype(np.int32))
    for name, arr in extra.items():
        np.save(os.path.join(path, name), arr.astype(np.float32))


def logit_gap(logits):
    """The smallest gap between the largest and the second largest logit of
    any position: how far the reference's argmax is from a tie."""
    top = np.sort(logits, axis=-1)
    return float((top[..., -1] - top[..., -2]).min())


def candidate(cfg_path, seed, kind, min_margin, min_gap, min_fp8_margin, shape):
    """The fixture of one seed, kind "bf16" or "fp8": its tensors, tokens,
    reference logits and how far their routing and argmaxes are from ties;
    "ok" when they clear the bounds. bf16: the FP32 forward of the BF16
    weights (margin, gap). fp8: the FP32 forward of the dequantized FP8
    weights (margin, gap, the reference of --precision bf16) and the same
    with FP8 activations emulated (fp8_margin, the reference of --precision
    fp8). Returns early, "ok" False, at the first bound missed."""
    model, config = build_model(cfg_path, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, config.vocab_size, shape, generator=gen)
    c = {"seed": seed, "config": config, "tokens": tokens, "ok": False}
    layout = to_layout(model, config)
    if kind == "bf16":
        margins = []
        c["logits"] = forward(model, tokens, margins)
        if not margins:
            sys.exit("no router was seen in the forward: this transformers' DeepseekV3 router has no "
                     "e_score_correction_bias/topk_group attributes")
        c["margin"], c["gap"] = min(margins), logit_gap(c["logits"])
        c["ok"] = c["margin"] >= min_margin and c["gap"] >= min_gap
        c["tensors"] = {k: (v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)) for k, v in layout.items()}
        return c
    fp8, deq = {}, dict(layout)
    for k, v in layout.items():
        if QUANT.search(k):
            q, sc, d = quant_blocks(v.float())
            fp8[k], fp8[k + "_scale_inv"], deq[k] = q, sc, d
        else:
            fp8[k] = v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)
    c["tensors"] = fp8
    from_layout(model, config, deq)
    margins, fp8_margins = [], []
    c["logits_deq"] = forward(model, tokens, margins)
    if not margins:
        sys.exit("no router was seen in the forward: this transformers' DeepseekV3 router has no "
                 "e_score_correction_bias/topk_group attributes")
    c["margin"], c["gap"] = min(margins), logit_gap(c["logits_deq"])
    if c["margin"] < min_margin or c["gap"] < min_gap:
        return c
    quantized = {p.untyped_storage().data_ptr() for n, p in model.named_parameters()
                 if (QUANT.search(n) or ".mlp.experts." in n) and "kv_b_proj" not in n}
    plain = F.linear
    calls = {"fp8": 0, "plain": 0}

    def fp8_linear(x, w, b=None):
        if w.untyped_storage().data_ptr() in quantized:
            x = quant_act(x)
            calls["fp8"] += 1
        else:
            calls["plain"] += 1
        return plain(x, w, b)

    F.linear = fp8_linear
    try:
        c["logits_fp8"] = forward(model, tokens, fp8_margins)
    finally:
        F.linear = plain
    if calls["fp8"] == 0:
        sys.exit("the FP8 emulation hooked no linear: this transformers does not call F.linear")
    c["calls"], c["fp8_margin"] = calls, min(fp8_margins)
    c["ok"] = c["fp8_margin"] >= min_fp8_margin
    return c


def search(args, kind, shape):
    """The first seed from args.seed whose `kind` fixture is well conditioned."""
    for n, seed in enumerate(range(args.seed, args.seed + args.tries)):
        c = candidate(args.config, seed, kind, args.min_margin, args.min_gap, args.min_fp8_margin, shape)
        if c["ok"]:
            extra = f", FP8 emulated {c['fp8_margin']:.2e}" if kind == "fp8" else ""
            print(f"tiny_{kind}: seed {seed} after {n + 1} tries: routing margin {c['margin']:.2e}{extra}, "
                  f"logit gap {c['gap']:.3f}", file=sys.stderr)
            return c
        if n % 1000 == 999:
            print(f"tiny_{kind}: {n + 1} seeds tried", file=sys.stderr)
    sys.exit(f"tiny_{kind}: no seed in {args.seed}..{args.seed + args.tries - 1} has a routing margin of {args.min_margin:g}"
             f"{f' (FP8 emulated {args.min_fp8_margin:g})' if kind == 'fp8' else ''} and a logit gap of {args.min_gap:g}; "
             f"lower them or raise --tries")


# ---- tiny_mtp: a checkpoint with the multi-token-prediction layer ----------

MTP_B, MTP_P, MTP_N = 2, 6, 12  # rows, prompt length, tokens generated
# tiny_mtp is checked on the CPU, which agrees with these FP32 references to
# ~1e-6: looser bounds than the other fixtures' (which also serve bf16
# storage on the GPU) keep the search short over its 2 x 19 positions and
# two routers.
MTP_MIN_MARGIN, MTP_MIN_GAP = 5e-4, 0.01


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def main_hidden(model, tokens, margins=None):
    """The main model's FP32 logits and its last hidden state (the last
    decoder layer's output, before the final norm), as transformers computes them."""
    cap = {}
    hook = model.model.layers[-1].register_forward_hook(
        lambda mod, args, out: cap.__setitem__("h", out[0] if isinstance(out, tuple) else out))
    try:
        logits = forward(model, tokens, margins)
    finally:
        hook.remove()
    return cap["h"].float(), logits


def mtp_forward(model, layer, w, h_main, next_tokens, margins=None):
    """The MTP module as DeepSeek-V3's technical report describes it (its
    section 2.2, depth k = 1), written here and not taken from transformers,
    which does not run it: at position i, h'_i = eh_proj([enorm(Emb(t_{i+1}));
    hnorm(h_i)]) (the released weights put the embedding half first), then
    one transformer block (MLA attention + MoE, causal over the module's own
    positions, RoPE at the main model's positions; transformers' decoder
    layer class computes the block), then shared_head: RMSNorm and the output
    head. Returns FP32 logits predicting t_{i+2}."""
    B, S = next_tokens.shape
    eps = model.config.rms_norm_eps
    emb = w["embed_tokens.weight"][next_tokens]
    x = F.linear(torch.cat([rmsnorm(emb, w["enorm.weight"], eps), rmsnorm(h_main, w["hnorm.weight"], eps)], -1),
                 w["eh_proj.weight"])
    pos = torch.arange(S)[None].expand(B, S)
    mask = torch.full((S, S), float("-inf")).triu(1)[None, None]
    hooks = []
    if margins is not None:
        for m in layer.modules():
            if hasattr(m, "e_score_correction_bias") and hasattr(m, "topk_group"):
                hooks.append(m.register_forward_hook(lambda mod, args, out: margins.append(routing_margin(mod, args[0]))))
    try:
        with torch.no_grad():
            y = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=model.model.rotary_emb(x, pos))
    finally:
        for hk in hooks:
            hk.remove()
    y = y[0] if isinstance(y, tuple) else y
    return F.linear(rmsnorm(y, w["shared_head.norm.weight"], eps), w["shared_head.head.weight"]).float()


def build_mtp_layer(model, config, seed):
    """A random MTP layer: its decoder block (initialised as build_model's
    weights are) and the module's own tensors, every one BF16-exact. The
    embedding is the main model's, copied under the layer's own name as the
    released checkpoint stores it."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3DecoderLayer
    L, H = config.num_hidden_layers, config.hidden_size
    torch.manual_seed(seed + 7919)
    layer = DeepseekV3DecoderLayer(config, layer_idx=L).float().eval()
    with torch.no_grad():
        for name, p in list(layer.named_parameters()) + list(layer.named_buffers()):
            if name.endswith("e_score_correction_bias"):
                p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(config.initializer_range * torch.randn_like(p))
            if not name.endswith("e_score_correction_bias"):
                p.copy_(p.to(torch.bfloat16).float())
    r = lambda *s: (torch.randn(*s)).to(torch.bfloat16).float()
    w = {"embed_tokens.weight": model.model.embed_tokens.weight.detach().clone(),
         "enorm.weight": 1 + 0.1 * r(H), "hnorm.weight": 1 + 0.1 * r(H),
         # mostly the next token's embedding, partly the main model's state
         "eh_proj.weight": torch.cat([torch.eye(H), 0.3 * r(H, H) / H ** 0.5], 1),
         "shared_head.norm.weight": 1 + 0.1 * r(H),
         "shared_head.head.weight": model.lm_head.weight.detach().clone()}
    return layer, {k: v.to(torch.bfloat16).float() for k, v in w.items()}


def mtp_state(model, layer, w, h, nxt):
    """The state the MTP head reads (shared_head.norm applied), [B, S, H]."""
    saved = w["shared_head.head.weight"]
    w["shared_head.head.weight"] = torch.eye(saved.shape[1])
    try:
        return mtp_forward(model, layer, w, h, nxt)
    finally:
        w["shared_head.head.weight"] = saved


def teach_head(model, layer, w, G, h, share, gen):
    """A random MTP module drafts at chance (1 in vocab_size), so nothing
    would be accepted; real MTP modules are trained. Here the output head
    is taught part of the fixture's own continuation instead: at a random
    share of each row's drafted positions (share[b]) the head row of the
    token two ahead gains the module's normalised state there, enough to
    make it that position's argmax by 1. The head stays a plain BF16 tensor
    of the checkpoint and the reference computes from it as from any
    weights: what is accepted follows from what the module computes."""
    B, T = G.shape
    pick = [(b, t) for b in range(B) for t in range(MTP_P - 1, T - 1)
            if float(torch.rand((), generator=gen)) < share[b]]
    for _ in range(4):  # a taught row can move another position's argmax: repeat
        ml, y = mtp_forward(model, layer, w, h, G), mtp_state(model, layer, w, h, G)
        head = w["shared_head.head.weight"].clone()
        for b, t in pick:
            tgt = int(G[b, t + 1])  # G here is the MTP input: G[b, t] = t_{t+1}, so t_{t+2} = G[b, t + 1]
            top = ml[b, t].topk(2)[0]
            if int(ml[b, t].argmax()) == tgt and float(top[0] - top[1]) > 0.5:
                continue
            yy = y[b, t]
            head[tgt] += (float(ml[b, t].max() - ml[b, t, tgt]) + 1.0) * yy / float(yy @ yy)
        w["shared_head.head.weight"] = head.to(torch.bfloat16).float()


def simulate_speculative(ok, B, P, N):
    """Greedy speculative decoding as `dscc run --speculative mtp` does it
    (tools/dscc/speculative.c): one cache length for the batch; a row whose
    draft is kept gains two tokens, else one; the batch advances by the
    smaller count, a row ahead carrying its second token as a candidate
    kept without a test. ok[b][j]: whether the draft for token j is right.
    Returns (verify steps, drafts judged, drafts accepted)."""
    n, ln = P, [P + 1] * B
    steps = drafted = accepted = 0
    while min(ln) - P < N:
        for b in range(B):
            if ln[b] == n + 2:
                ln[b] = n + 3
                continue
            drafted += 1
            if ok[b][n + 1]:
                accepted += 1
                ln[b] = n + 3
            else:
                ln[b] = n + 2
        steps += 1
        n += 2 if all(v == n + 3 for v in ln) else 1
    return steps, drafted, accepted


def mtp_candidate(cfg_path, seed, min_margin, min_gap):
    """tiny_mtp of one seed: the main model (BF16), a greedy continuation G
    of random prompts by transformers, an MTP layer whose head is taught
    part of G, and the references: the main model's logits and hidden
    state over G, the MTP module's logits over G, and the counts of the
    speculative run. ok when every router decision (main and MTP) clears
    min_margin, every argmax min_gap, and drafts are both kept and rejected."""
    model, config = build_model(cfg_path, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    G = torch.randint(0, config.vocab_size, (MTP_B, MTP_P), generator=gen)
    for _ in range(MTP_N + 1):
        G = torch.cat([G, torch.from_numpy(forward(model, G)[:, -1].argmax(-1))[:, None]], 1)
    margins = []
    h, logits = main_hidden(model, G[:, :-1], margins)  # logits[:, t] predicts G[:, t + 1]
    layer, w = build_mtp_layer(model, config, seed)
    teach_head(model, layer, w, G[:, 1:], h, (0.8, 0.4), gen)
    mtp_margins = []
    ml = mtp_forward(model, layer, w, h, G[:, 1:], mtp_margins)  # ml[:, t] drafts G[:, t + 2]
    ok = [[False] * (G.shape[1] + 2) for _ in range(MTP_B)]
    for b in range(MTP_B):
        for t in range(G.shape[1] - 2):
            ok[b][t + 2] = int(ml[b, t].argmax()) == int(G[b, t + 2])
    steps, drafted, accepted = simulate_speculative(ok, MTP_B, MTP_P, MTP_N)
    c = {"seed": seed, "config": config, "G": G, "logits": logits, "hidden": h.numpy(), "mtp_logits": ml.numpy(),
         "steps": steps, "drafted": drafted, "accepted": accepted, "margin": min(margins + mtp_margins),
         "gap": min(logit_gap(logits[:, MTP_P - 1:]), logit_gap(ml.numpy()[:, MTP_P - 1:]))}
    c["ok"] = c["margin"] >= min_margin and c["gap"] >= min_gap and 0 < accepted < drafted
    L = config.num_hidden_layers
    tensors = to_layout(model, config)
    tensors.update(split_experts({f"model.layers.{L}.{k}": v for k, v in layer.state_dict().items()}, config))
    tensors.update({f"model.layers.{L}.{k}": v for k, v in w.items()})
    c["tensors"] = {k: (v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)) for k, v in tensors.items()}
    return c


def make_mtp(args, cfg_dict):
    """Searches seeds for tiny_mtp and writes it (see the module comment).
    Its config is the tiny one with 2 layers (one dense, one MoE) and a
    vocabulary of 500, which keeps the committed checkpoint under 2 MB."""
    import tempfile
    cfg_dict = dict(cfg_dict, num_hidden_layers=2, vocab_size=500)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as tmp:
        json.dump(cfg_dict, tmp)
    try:
        c, n, seed = search_mtp(args, tmp.name)
    finally:
        os.unlink(tmp.name)
    write_mtp(args, cfg_dict, c, n, seed)


def search_mtp(args, cfg_path):
    """The first seed from args.seed whose tiny_mtp meets the bounds: (candidate, tries - 1, seed)."""
    for n, seed in enumerate(range(args.seed, args.seed + args.tries)):
        c = mtp_candidate(cfg_path, seed, MTP_MIN_MARGIN, MTP_MIN_GAP)
        if c["ok"]:
            return c, n, seed
        if n % 20 == 19:
            print(f"tiny_mtp: {n + 1} seeds tried", file=sys.stderr)
    sys.exit(f"tiny_mtp: no seed in {args.seed}..{args.seed + args.tries - 1} met the bounds")


def write_mtp(args, cfg_dict, c, n, seed):
    print(f"tiny_mtp: seed {seed} after {n + 1} tries: routing margin {c['margin']:.2e}, logit gap {c['gap']:.3f}, "
          f"{c['steps']} verify steps, drafts accepted {c['accepted']} of {c['drafted']}", file=sys.stderr)
    G, P, N = c["G"], MTP_P, MTP_N
    out = os.path.join(args.out, "tiny_mtp")
    save_dir(out, cfg_dict, c["tensors"], G[:, :P], {"logits.npy": c["logits"], "hidden.npy": c["hidden"],
                                                     "mtp_logits.npy": c["mtp_logits"]})
    np.save(os.path.join(out, "sequence.npy"), G[:, :-1].numpy().astype(np.int32))
    np.save(os.path.join(out, "mtp_tokens.npy"), G[:, 1:].numpy().astype(np.int32))
    json.dump({"seed": seed, "prompt": P, "generate": N, "generated": G[:, P:P + N].tolist(), "steps": c["steps"],
               "drafted": c["drafted"], "accepted": c["accepted"]}, open(os.path.join(out, "reference.json"), "w"), indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--config", default=os.path.join(ROOT, "models", "tiny", "config.json"))
    ap.add_argument("--seed", type=int, default=0, help="the first seed tried (each fixture searches from it)")
    ap.add_argument("--min-margin", type=float, default=MIN_MARGIN,
                    help="smallest routing margin accepted, in biased sigmoid score (0: any)")
    ap.add_argument("--min-gap", type=float, default=MIN_GAP,
                    help="smallest gap between a position's two largest logits accepted (0: any)")
    ap.add_argument("--min-fp8-margin", type=float, default=MIN_FP8_MARGIN,
                    help="smallest routing margin accepted in the FP8-emulated forward (0: any)")
    ap.add_argument("--tokens", default="2,8", help="B,S of the token ids (default 2,8)")
    ap.add_argument("--tries", type=int, default=20000, help="seeds tried per fixture before giving up")
    ap.add_argument("--only", choices=["all", "mtp"], default="all",
                    help="all fixtures, or tiny_mtp alone")
    args = ap.parse_args()
    try:
        shape = tuple(int(v) for v in args.tokens.split(","))
        assert len(shape) == 2 and min(shape) >= 1
    except (ValueError, AssertionError):
        sys.exit(f"--tokens wants B,S (two positive integers), not '{args.tokens}'")
    torch.set_num_threads(1)  # a tiny model: one thread is the fastest, and the search runs thousands
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)
    cfg_dict = json.load(open(args.config))

    if args.only == "mtp":
        return make_mtp(args, cfg_dict)
    b = search(args, "bf16", shape)
    save_dir(os.path.join(args.out, "tiny_bf16"), cfg_dict, b["tensors"], b["tokens"], {"logits.npy": b["logits"]})
    f = search(args, "fp8", shape)
    fp8_cfg = dict(cfg_dict, quantization_config={"quant_method": "fp8", "fmt": "e4m3",
                                                  "weight_block_size": [128, 128], "activation_scheme": "dynamic"})
    save_dir(os.path.join(args.out, "tiny_fp8"), fp8_cfg, f["tensors"], f["tokens"],
             {"logits_dequant.npy": f["logits_deq"], "logits_fp8.npy": f["logits_fp8"]})
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    print(f"{len(b['tensors'])} tensors (tiny_bf16), e.g. {sorted(b['tensors'])[:3]}; fp8 emulation: {f['calls']['fp8']} "
          f"quantized linear calls, {f['calls']['plain']} plain; logits std {b['logits'].std():.3f}; tiny_fp8's FP8 activations "
          f"vs its dequantized weights rel L2 {rel(f['logits_fp8'], f['logits_deq']):.3g}", file=sys.stderr)
    if args.only == "all":
        make_mtp(args, cfg_dict)


if __name__ == "__main__":
    main()
