#!/usr/bin/env python3
"""trace_top.py TRACE.json [N] — the kernels of a `dscc run --trace` file
by total time: calls, total and mean microseconds, share of the step, and
the DSL location, the N largest (default 30)."""
import json, sys
from collections import defaultdict

def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        ev = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    tot, cnt, loc = defaultdict(float), defaultdict(int), {}
    for e in ev:
        tot[e["name"]] += e["dur"]
        cnt[e["name"]] += 1
        loc[e["name"]] = e.get("args", {}).get("loc", "")
    step = sum(tot.values())
    print(f"{len(ev)} kernels, {step / 1000:.3f} ms in all")
    print(f"{'kernel':44s} {'calls':>5s} {'total us':>10s} {'mean us':>9s} {'share':>6s}  DSL")
    for k in sorted(tot, key=tot.get, reverse=True)[:n]:
        print(f"{k[:44]:44s} {cnt[k]:5d} {tot[k]:10.1f} {tot[k] / cnt[k]:9.1f} {100 * tot[k] / step:5.1f}%  {loc[k]}")

if __name__ == "__main__":
    main()
