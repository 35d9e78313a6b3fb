#!/usr/bin/env python3
"""trace_top.py TRACE.json [N] [--step NAME] [--peak-gbs G] [--peak-tflops T]

Summarises a `dscc run --trace` file: its steps (name, GPU time, kernels),
then the N kernels (default 30) with the most total time over the traced
steps (or step NAME alone, e.g. "prefill" or "decode 3"): calls, total and
mean microseconds, share of all kernel time, bytes and FLOPs per call (the
trace's figures from ir/stats.c), achieved GB/s and TFLOPS, the roofline
fraction and the DSL location.

The roofline fraction is the time the kernel needs at the device's peaks,
max(bytes / peak GB/s, FLOPs / peak TFLOPS), over the time it took: 100%
means it ran at the bound of its memory traffic or of its arithmetic. The
peaks default to an H100 SXM's (3350 GB/s, 989 dense BF16 TFLOPS), an
H200's bandwidth (4800 GB/s) when the trace names an H200; FP8 GEMMs may
reach twice that TFLOPS, so give --peak-tflops 1979 for an FP8 run's GEMMs.
"""
import argparse
import json
import sys
from collections import defaultdict


def peaks(events, gbs, tflops):
    names = [e.get("args", {}).get("name", "") for e in events if e.get("name") == "process_name"]
    h200 = any("H200" in n for n in names)
    return (gbs or (4800.0 if h200 else 3350.0)), (tflops or 989.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], usage=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("n", nargs="?", type=int, default=30)
    ap.add_argument("--step", help="only the kernels of this step (e.g. prefill, 'decode 3')")
    ap.add_argument("--peak-gbs", type=float, default=0.0)
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    a = ap.parse_args()
    with open(a.trace) as f:
        t = json.load(f)
    events = t["traceEvents"]
    gbs, tfl = peaks(events, a.peak_gbs, a.peak_tflops)
    steps = [e for e in events if e.get("ph") == "X" and e.get("cat") == "step"]
    kern = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("kernel", "communication")]
    per_step = [sum(1 for e in kern if s["ts"] <= e["ts"] <= s["ts"] + s["dur"]) for s in steps]
    if a.step:
        sel = [s for s in steps if s["name"] == a.step]
        if not sel:
            sys.exit(f"trace_top.py: no step '{a.step}' in {a.trace} (steps: {', '.join(s['name'] for s in steps[:8])}...)")
        lo, hi = sel[0]["ts"], sel[0]["ts"] + sel[0]["dur"]
        kern = [e for e in kern if lo <= e["ts"] <= hi]
    meta = t.get("otherData", {})
    print(f"{len(steps)} steps traced" + (f", {meta['steps_left_out']} left out ({meta.get('note', '')})"
                                         if meta.get("steps_left_out") else ""))
    for i in list(range(min(6, len(steps)))) + ([-1] if len(steps) > 8 else []) + list(range(max(6, len(steps) - 2), len(steps))):
        if i < 0:
            print("  ...")
            continue
        s, n = steps[i], per_step[i]
        print(f"  {s['name']:16s} {s['dur'] / 1000:10.3f} ms  {s.get('args', {}).get('tokens', '?')} tokens, {n} kernels")
    tot, cnt, loc = defaultdict(float), defaultdict(int), {}
    nbytes, flops = defaultdict(float), defaultdict(float)
    for e in kern:
        k, args = e["name"], e.get("args", {})
        tot[k] += e["dur"]
        cnt[k] += 1
        nbytes[k] += args.get("bytes", 0)
        flops[k] += args.get("flops", 0)
        loc[k] = args.get("loc", "")
    all_us = sum(tot.values())
    print(f"{len(kern)} kernel slices, {all_us / 1000:.3f} ms of kernel time; peaks {gbs:.0f} GB/s, {tfl:.0f} TFLOPS")
    print(f"{'kernel':36s} {'calls':>5s} {'total us':>10s} {'mean us':>9s} {'share':>6s} {'MB/call':>9s} "
          f"{'MFLOP/call':>11s} {'GB/s':>8s} {'TFLOPS':>7s} {'roofline':>8s}  DSL")
    for k in sorted(tot, key=tot.get, reverse=True)[:a.n]:
        us, c = tot[k], cnt[k]
        ideal = max(nbytes[k] / (gbs * 1e3), flops[k] / (tfl * 1e6))  # us at the peaks
        rate = lambda v, scale: f"{v / us / scale:8.1f}" if us > 0 else f"{'-':>8s}"
        roof = f"{100 * ideal / us:7.1f}%" if us > 0 else f"{'-':>8s}"
        print(f"{k[:36]:36s} {c:5d} {us:10.1f} {us / c:9.1f} {100 * us / all_us if all_us else 0:5.1f}% "
              f"{nbytes[k] / c / 1e6:9.3f} {flops[k] / c / 1e6:11.3f} {rate(nbytes[k], 1e3)} {rate(flops[k], 1e6)[1:]} "
              f"{roof}  {loc[k]}")


if __name__ == "__main__":
    main()
