"""peer_transformers.py — the peer users know: transformers' DeepseekV3ForCausalLM
on the same GPU, same shapes as bench_gpu (full-width layers, BF16, dscc's
seeded random weights through bench/dscc_random.py: the tensors bench_gpu
runs on, linears as their FP8 form dequantized), timing prefill and decode steps with CUDA events. Tries the experts
implementations this transformers version offers. Prints markdown rows.

usage: python3 bench/peer_transformers.py [--layers 2] [--dense 1] [--prefill 1024]
"""
import argparse, os, sys, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=2)
p.add_argument("--dense", type=int, default=1)
p.add_argument("--prefill", type=int, default=1024)
a = p.parse_args()

from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
import transformers

cfg = DeepseekV3Config(num_hidden_layers=a.layers, first_k_dense_replace=a.dense)
torch.manual_seed(0)
dev = torch.device("cuda")

def timed(fn, reps=3):
    best = None
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(); e0.record(); fn(); e1.record(); torch.cuda.synchronize()
        t = e0.elapsed_time(e1)
        best = t if best is None else min(best, t)
    return best

with torch.device(dev):
    model = DeepseekV3ForCausalLM(cfg).to(torch.bfloat16).eval()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import dscc_random
    weights = dscc_random.fill_hf_model(torch, model, 1, dev)
except Exception as e:  # a layout this transformers has that dscc_random does not map: said, not hidden
    weights = f"transformers' own random init (dscc's weights did not map: {type(e).__name__}: {str(e)[:120]})"
print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}: "
      f"{a.layers} layers ({a.dense} dense), {sum(x.numel() for x in model.parameters())/1e9:.2f} G params in BF16; weights: {weights}")

impls = ["default"]
for name in ("grouped_mm", "batched_mm", "eager"):
    impls.append(name)
print("| experts implementation | prefill 1 x %d ms | decode step ms, batch 1 | batch 32 | batch 128 |" % a.prefill)
print("|---|---|---|---|---|")
for impl in impls:
    try:
        if impl != "default":
            if hasattr(model, "set_experts_implementation"):
                model.set_experts_implementation(impl)
            elif hasattr(model.config, "_experts_implementation"):
                model.config._experts_implementation = impl
            else:
                raise RuntimeError("no experts implementation switch in this transformers")
        with torch.no_grad():
            ids = torch.randint(0, cfg.vocab_size, (1, a.prefill), device=dev)
            pre = timed(lambda: model(ids, use_cache=False))
            row = [f"{pre:.2f}"]
            for b in (1, 32, 128):
                ids = torch.randint(0, cfg.vocab_size, (b, 16), device=dev)
                out = model(ids, use_cache=True)
                past = out.past_key_values
                step_ids = torch.randint(0, cfg.vocab_size, (b, 1), device=dev)
                def step():
                    model(step_ids, past_key_values=past, use_cache=True)
                    # the cache grows by one per call; a few steps keep the context near 16
                row.append(f"{timed(step):.2f}")
        print(f"| {impl} | " + " | ".join(row) + " |")
    except Exception as e:
        print(f"| {impl} | unavailable: {type(e).__name__}: {str(e)[:120]} | | | |")
