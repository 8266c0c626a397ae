#!/usr/bin/env python3
"""Summarises Google Benchmark JSON runs as Markdown tables.

    tools/bench_table.py spatial RUN1.json RUN2.json RUN3.json
    tools/bench_table.py engine  RUN1.json RUN2.json RUN3.json

Every figure is the median over the runs with the min-max range; ratios are
computed per run (each structure against the baseline measured in the same
run) and then the median ratio is reported.
"""
import json
import statistics
import sys
from collections import defaultdict


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        by_name = {}
        for b in data["benchmarks"]:
            if b.get("error_occurred"):
                print(f"warning: {p}: {b['name']}: {b.get('error_message')}", file=sys.stderr)
                continue
            # Strip Google Benchmark's suffixes (/iterations:4, /real_time, ...).
            parts = [x for x in b["name"].split("/") if ":" not in x or x.startswith("shards:")]
            parts = [x for x in parts if x != "real_time"]
            by_name["/".join(parts)] = b
        runs.append(by_name)
    return runs


def med(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def fmt_rate(v):
    if v is None:
        return "—"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g}"


def cell(values, fmt=fmt_rate):
    m, lo, hi = med(values)
    if m is None:
        return "—"
    return f"{fmt(m)} ({fmt(lo)}–{fmt(hi)})"


def spatial(runs):
    structures = ["QuadTree", "RTree", "Grid", "BruteForce"]
    ops = ["BulkLoad", "MoveAll", "Radius", "Rect", "KNN", "Density"]
    for n in ("1000000", "100000"):
        for dist in ("uniform", "clustered"):
            print(f"\n#### {dist}, N = {int(n):,} (items/s: median of {len(runs)} runs, min–max)\n")
            print("| op | QuadTree | R-tree | grid 50 m | brute force | QuadTree / R-tree | QuadTree / grid |")
            print("|---|---|---|---|---|---|---|")
            for op in ops:
                row = [op]
                rates = {}
                for s in structures:
                    key = f"BM_{op}/{s}/{dist}/{n}"
                    rates[s] = [r[key]["items_per_second"] if key in r else None for r in runs]
                    row.append(cell(rates[s]))
                for base in ("RTree", "Grid"):
                    ratios = [q / b for q, b in zip(rates["QuadTree"], rates[base]) if q and b]
                    m, lo, hi = med(ratios)
                    row.append("—" if m is None else f"{m:.2f}x ({lo:.2f}–{hi:.2f})")
                print("| " + " | ".join(row) + " |")
            mem = []
            for s in structures:
                key = f"BM_BulkLoad/{s}/{dist}/{n}"
                vals = [r[key].get("heap_bytes_per_entity") for r in runs if key in r]
                m, _, _ = med(vals)
                mem.append(f"{s} {m:.1f}" if m is not None else f"{s} —")
            print(f"\nHeap bytes per entity after bulk load (jemalloc): {', '.join(mem)}")


def engine(runs):
    names = sorted({k for r in runs for k in r})
    print(f"\n| benchmark | items/s: median of {len(runs)} runs (min–max) | extra |")
    print("|---|---|---|")
    for name in names:
        vals = [r[name]["items_per_second"] if name in r else None for r in runs]
        extra = []
        for counter in ("bytes_per_entity", "heap_bytes_per_entity", "moves_per_s", "queries_per_s"):
            cv = [r[name].get(counter) for r in runs if name in r and counter in r[name]]
            if cv:
                m, _, _ = med(cv)
                extra.append(f"{counter} {fmt_rate(m) if m > 1000 else f'{m:.1f}'}")
        print(f"| {name} | {cell(vals)} | {', '.join(extra)} |")
    for dist in ("uniform", "clustered"):
        for op in ("Mixed", "Radius", "KNN", "Move"):
            one = f"BM_Engine_{op}/{dist}/shards:1"
            two = f"BM_Engine_{op}/{dist}/shards:2"
            ratios = [r[two]["items_per_second"] / r[one]["items_per_second"]
                      for r in runs if one in r and two in r]
            m, lo, hi = med(ratios)
            if m is not None:
                print(f"\n2 shards / 1 shard, {op}, {dist}: {m:.2f}x ({lo:.2f}–{hi:.2f})", end="")
    print()


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("spatial", "engine"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    runs = load(sys.argv[2:])
    (spatial if sys.argv[1] == "spatial" else engine)(runs)
