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

The checkpoints use the per-expert tensor names of the released model
(model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight) whatever layout the
installed transformers keeps its experts in. Needs torch, transformers,
safetensors, numpy; runs on CPU or GPU in a few seconds.
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


def forward(model, tokens):
    with torch.no_grad():
        return model(input_ids=tokens).logits.float().cpu().numpy()


def save_dir(path, config_dict, tensors, tokens, extra):
    os.makedirs(path, exist_ok=True)
    json.dump(config_dict, open(os.path.join(path, "config.json"), "w"), indent=2)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(path, "model.safetensors"),
              metadata={"format": "pt"})
    np.save(os.path.join(path, "tokens.npy"), tokens.numpy().astype(np.int32))
    for name, arr in extra.items():
        np.save(os.path.join(path, name), arr.astype(np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--config", default=os.path.join(ROOT, "models", "tiny", "config.json"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)

    model, config = build_model(args.config, args.seed)
    cfg_dict = json.load(open(args.config))
    gen = torch.Generator().manual_seed(args.seed + 1)
    tokens = torch.randint(0, config.vocab_size, (2, 12), generator=gen)
    layout = to_layout(model, config)
    print(f"{len(layout)} tensors, e.g. {sorted(layout)[:3]}", file=sys.stderr)

    logits = forward(model, tokens)
    bf16 = {k: (v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)) for k, v in layout.items()}
    save_dir(os.path.join(args.out, "tiny_bf16"), cfg_dict, bf16, tokens, {"logits.npy": logits})

    fp8, deq = {}, dict(layout)
    for k, v in layout.items():
        if QUANT.search(k):
            q, s, d = quant_blocks(v.float())
            fp8[k], fp8[k + "_scale_inv"], deq[k] = q, s, d
        else:
            fp8[k] = v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)
    from_layout(model, config, deq)
    logits_deq = forward(model, tokens)
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
        logits_fp8 = forward(model, tokens)
    finally:
        F.linear = plain
    print(f"fp8 emulation: {calls['fp8']} quantized linear calls, {calls['plain']} plain", file=sys.stderr)
    if calls["fp8"] == 0:
        sys.exit("the FP8 emulation hooked no linear: this transformers does not call F.linear")
    fp8_cfg = dict(cfg_dict, quantization_config={"quant_method": "fp8", "fmt": "e4m3",
                                                  "weight_block_size": [128, 128], "activation_scheme": "dynamic"})
    save_dir(os.path.join(args.out, "tiny_fp8"), fp8_cfg, fp8, tokens,
             {"logits_dequant.npy": logits_deq, "logits_fp8.npy": logits_fp8})
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    print(f"logits std {logits.std():.3f}; dequantized vs bf16 weights rel L2 {rel(logits_deq, logits):.3g}; "
          f"fp8 activations vs dequantized rel L2 {rel(logits_fp8, logits_deq):.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
