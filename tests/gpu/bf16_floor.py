#!/usr/bin/env python3
"""bf16_floor.py — how far transformers itself lands from its FP32 logits
when it runs the tiny BF16 fixture in BF16 (weights and activations), on
the GPU machine. This is the floor any BF16-activation implementation
faces on this random model; e2e.sh prints it beside dscc's own numbers.

Loads tests/fixtures/tiny_bf16/model.safetensors into the model
tools/make_fixtures.py builds, checks that the FP32 forward reproduces
logits.npy, then runs the same weights in BF16 (eager attention and
experts, and the grouped_mm experts where this transformers has them)."""
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_fixtures as mf  # noqa: E402


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    fx = os.path.join(ROOT, "tests", "fixtures", "tiny_bf16")
    model, config = mf.build_model(os.path.join(fx, "config.json"), 0)
    mf.from_layout(model, config, {k: v.float() for k, v in load_file(os.path.join(fx, "model.safetensors")).items()})
    tokens = torch.from_numpy(np.load(os.path.join(fx, "tokens.npy")).astype(np.int64))
    ref = np.load(os.path.join(fx, "logits.npy")).astype(np.float64)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    # nn.Module.to converts in place: run each precision before the next conversion
    for name, dtype in (("fp32 (reproduces the fixture)", torch.float32), ("bf16, eager experts", torch.bfloat16)):
        got = mf.forward(model.to(dev, dtype), tokens.to(dev)).astype(np.float64)
        print(f"transformers {name:32s} rel L2 {rel(got, ref):.2e}  argmax {float((got.argmax(-1) == ref.argmax(-1)).mean()):.3f}")
    try:
        model.config._experts_implementation = "grouped_mm"
        got = mf.forward(model, tokens.to(dev)).astype(np.float64)
        print(f"transformers {'bf16, grouped_mm experts':32s} rel L2 {rel(got, ref):.2e}  argmax {float((got.argmax(-1) == ref.argmax(-1)).mean()):.3f}")
    except Exception as e:  # an older transformers without grouped_mm
        print(f"transformers bf16 grouped_mm: not available ({e})")


if __name__ == "__main__":
    main()
