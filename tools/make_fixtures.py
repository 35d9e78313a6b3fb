#!/usr/bin/env python3
"""make_fixtures.py — fidelity fixtures from an independent implementation.

Builds a tiny random DeepSeek-V3 with Hugging Face transformers'
DeepseekV3ForCausalLM (models/tiny/config.json: YaRN, 4 groups of which 2
are kept, a non-zero correction bias, dimensions that are not multiples of
128), and writes, under OUT (default tests/fixtures):

  tiny_bf16/  config.json, model.safetensors (BF16 weights, F32 bias),
              tokens.npy [2, 12] int32, logits.npy [2, 12, vocab] float32:
              transformers' FP32 forward of exactly those weights.
  tiny_fp8/   the same weights as a DeepSeek FP8 checkpoint: every linear of
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

The random model is chosen to be well conditioned: seeds SEED, SEED+1, ...
are tried until the FP32 forward has every router decision (groups kept,
experts chosen) at least --min-margin from a tie in the bias-corrected
sigmoid score, and every position's largest logit at least --min-gap above
the runner-up; the FP8 forwards (dequantized weights, emulated FP8
activations) must have routing margins of --min-fp8-margin, smaller since
dscc's FP8 pipeline is compared with f32 storage, where only an E4M3 code
rounded the other way on a midpoint can move a router score. A random model
otherwise has near-ties (seed 0 of this config: a routing margin of 6e-4,
a logit gap of 1e-3) that any BF16 implementation flips at random — dscc's
BF16-stored activations move these router scores by 1.9e-3 RMS on the CPU,
transformers' own BF16 run of seed 0 gets 23 of 24 argmaxes — and one
flipped expert choice moves the logits by several times the 2e-2 BF16
bound, so the comparison would measure luck instead of precision (seed 162,
FP8 routing margin 3e-4, puts dscc's FP8 run 5e-2 from the emulation). With
the defaults the search takes a few minutes on a CPU and stops at seed 6914
(routing margin 6.2e-3, FP8 forwards 8.4e-4, logit gap 0.068).

The checkpoints use the per-expert tensor names of the released model
(model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight) whatever layout the
installed transformers keeps its experts in. Needs torch, transformers,
safetensors, numpy; runs on CPU or GPU (the seed search takes minutes;
--seed 6914 --tries 1 rebuilds the committed fixtures in seconds).
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
MIN_FP8_MARGIN = 5e-4  # the same in the dequantized and FP8-emulated forwards
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
    H, I = config.hidden_size, config.moe_intermediate_size
    out = {}
    for k, v in model.state_dict().items():
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


def candidate(cfg_path, seed, min_margin, min_gap, min_fp8_margin=0.0):
    """The fixture of one seed: its tensors, tokens, the three forwards'
    logits, the smallest routing margin of its FP32 forward, of its FP8
    forwards, and the smallest gap of its argmax; "ok" when they clear
    min_margin, min_fp8_margin and min_gap. A seed whose FP32 forward misses
    is returned after that forward alone."""
    model, config = build_model(cfg_path, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, config.vocab_size, (2, 12), generator=gen)
    margins = []
    c = {"seed": seed, "config": config, "tokens": tokens}
    c["logits"] = forward(model, tokens, margins)
    if not margins:
        sys.exit("no router was seen in the forward: this transformers' DeepseekV3 router has no "
                 "e_score_correction_bias/topk_group attributes")
    c["margin"], c["gap"] = min(margins), logit_gap(c["logits"])
    c["ok"] = c["margin"] >= min_margin and c["gap"] >= min_gap
    if not c["ok"]:
        return c
    layout = c["layout"] = to_layout(model, config)
    fp8, deq = {}, dict(layout)
    for k, v in layout.items():
        if QUANT.search(k):
            q, sc, d = quant_blocks(v.float())
            fp8[k], fp8[k + "_scale_inv"], deq[k] = q, sc, d
        else:
            fp8[k] = v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)
    c["fp8"] = fp8
    from_layout(model, config, deq)
    fp8_margins = []
    c["logits_deq"] = forward(model, tokens, fp8_margins)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--config", default=os.path.join(ROOT, "models", "tiny", "config.json"))
    ap.add_argument("--seed", type=int, default=0, help="the first seed tried")
    ap.add_argument("--min-margin", type=float, default=MIN_MARGIN,
                    help="smallest routing margin accepted, in biased sigmoid score (0: any)")
    ap.add_argument("--min-gap", type=float, default=MIN_GAP,
                    help="smallest gap between a position's two largest logits accepted (0: any)")
    ap.add_argument("--min-fp8-margin", type=float, default=MIN_FP8_MARGIN,
                    help="smallest routing margin accepted in the two FP8 forwards (0: any)")
    ap.add_argument("--tries", type=int, default=20000, help="seeds tried before giving up")
    args = ap.parse_args()
    torch.set_num_threads(1)  # a tiny model: one thread is the fastest, and the search runs thousands
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)

    for n, seed in enumerate(range(args.seed, args.seed + args.tries)):
        c = candidate(args.config, seed, args.min_margin, args.min_gap, args.min_fp8_margin)
        if c["ok"]:
            break
        if n % 500 == 499:
            print(f"{n + 1} seeds tried", file=sys.stderr)
    else:
        sys.exit(f"no seed in {args.seed}..{args.seed + args.tries - 1} has a routing margin of {args.min_margin:g} "
                 f"(FP8 forwards {args.min_fp8_margin:g}) and a logit gap of {args.min_gap:g}; lower them or raise --tries")
    config, tokens, layout = c["config"], c["tokens"], c["layout"]
    print(f"seed {c['seed']}: routing margin {c['margin']:.2e} (FP8 forwards {c['fp8_margin']:.2e}), "
          f"logit gap {c['gap']:.3f}", file=sys.stderr)
    print(f"{len(layout)} tensors, e.g. {sorted(layout)[:3]}", file=sys.stderr)
    cfg_dict = json.load(open(args.config))

    bf16 = {k: (v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)) for k, v in layout.items()}
    save_dir(os.path.join(args.out, "tiny_bf16"), cfg_dict, bf16, tokens, {"logits.npy": c["logits"]})
    print(f"fp8 emulation: {c['calls']['fp8']} quantized linear calls, {c['calls']['plain']} plain", file=sys.stderr)
    fp8_cfg = dict(cfg_dict, quantization_config={"quant_method": "fp8", "fmt": "e4m3",
                                                  "weight_block_size": [128, 128], "activation_scheme": "dynamic"})
    save_dir(os.path.join(args.out, "tiny_fp8"), fp8_cfg, c["fp8"], tokens,
             {"logits_dequant.npy": c["logits_deq"], "logits_fp8.npy": c["logits_fp8"]})
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    print(f"logits std {c['logits'].std():.3f}; dequantized vs bf16 weights rel L2 {rel(c['logits_deq'], c['logits']):.3g}; "
          f"fp8 activations vs dequantized rel L2 {rel(c['logits_fp8'], c['logits_deq']):.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
