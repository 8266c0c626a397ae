#!/usr/bin/env bash
# A/B of Google Benchmark binaries on a noisy machine: runs each binary in
# turn, ROUNDS times, so slow phases of the machine hit both alike, then
# prints per benchmark each binary's items/s per run, their medians, and the
# ratio of the last binary's median to the first's.
#
#   bench/ab.sh FILTER ROUNDS OLD_BINARY NEW_BINARY [MORE...]
#   bench/ab.sh 'BM_Engine_(Radius|KNN)/uniform/shards:1' 3 /tmp/engine_bench.old build/bench/engine_bench
#
# A binary is named by a short hash of its path in the table (the legend
# comes first). Benchmarks that report no items/s are left out.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: bench/ab.sh FILTER ROUNDS BINARY BINARY [BINARY...]" >&2
  exit 2
fi
filter=$1 rounds=$2
shift 2
case $rounds in
  '' | *[!0-9]* | 0) echo "bench/ab.sh: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2 ;;
esac
for b in "$@"; do
  [ -x "$b" ] || { echo "bench/ab.sh: $b is not an executable" >&2; exit 2; }
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
tag() { printf '%s' "$1" | md5sum | cut -c1-6; }
for _ in $(seq "$rounds"); do
  for b in "$@"; do
    t=$(tag "$b")
    "$b" --benchmark_filter="$filter" 2>/dev/null | awk -v t="$t" '
      /^BM_/ { for (i = 1; i <= NF; i++) if ($i ~ /^items_per_second=/) {
                 v = $i; sub("items_per_second=", "", v); print $1, t, v } }' >> "$out"
  done
done
for b in "$@"; do echo "$(tag "$b") = $b"; done
python3 - "$out" <<'PY'
import collections, statistics, sys

def num(v):
    v = v.replace("/s", "")
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    return float(v[:-1]) * scale[v[-1]] if v[-1] in scale else float(v)

runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, tag, value = line.split()
    runs.setdefault(name, collections.OrderedDict()).setdefault(tag, []).append(num(value))
for name, by_tag in runs.items():
    meds = [statistics.median(v) for v in by_tag.values()]
    cells = " | ".join(
        f"{t}: median {statistics.median(v) / 1e3:.1f}k of {[round(x / 1e3, 1) for x in v]}"
        for t, v in by_tag.items())
    ratio = f" | ratio {meds[-1] / meds[0]:.3f}" if len(meds) > 1 and meds[0] > 0 else ""
    print(f"{name} {cells}{ratio}")
PY
