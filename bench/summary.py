#!/usr/bin/env python3
"""Prints a table of every criterion result under the given directory (median, with the
95% confidence interval), read from criterion's own estimates.json files."""
import json
import os
import sys


def fmt(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    rows = []
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) == "new" and "estimates.json" in files:
            bench_id = os.path.relpath(os.path.dirname(dirpath), root)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                median = json.load(f)["median"]
            ci = median["confidence_interval"]
            rows.append((bench_id, median["point_estimate"], ci["lower_bound"], ci["upper_bound"]))
    if not rows:
        print(f"no criterion results under {root}", file=sys.stderr)
        return 1
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'median':>10}  95% CI")
    for bench_id, med, lo, hi in sorted(rows):
        print(f"{bench_id:<{width}}  {fmt(med):>10}  [{fmt(lo)} .. {fmt(hi)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
