#!/usr/bin/env bash
# A/B of worlddb builds under worldload: for each round, each server binary
# in turn gets a fresh data directory and one max-throughput worldload run
# with the same flags; then prints each binary's moves/s and AOI queries/s
# per run, their medians, and the ratio of the last binary's median to the
# first's. Alternating keeps a noisy machine's slow phases from favouring one.
#
#   bench/ab-worldload.sh [--rounds N] [--worldload PATH] OLD_WORLDDB NEW_WORLDDB [...] [-- worldload flags]
#   bench/ab-worldload.sh /tmp/worlddb.old build/net/worlddb -- --kind npc --move-fraction 0
#
# Defaults: 3 rounds, build/tools/worldload, `--mode max --duration 8`
# (unless the flags set them). WORLDDB_FLAGS adds daemon flags (e.g. "--shards 1").
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

rounds=3 worldload=build/tools/worldload
servers=() flags=()
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --worldload) worldload=$2; shift 2 ;;
    --) shift; flags=("$@"); break ;;
    *) servers+=("$1"); shift ;;
  esac
done
case $rounds in
  '' | *[!0-9]* | 0) echo "ab-worldload: --rounds must be a positive integer, not '$rounds'" >&2; exit 2 ;;
esac
if [ ${#servers[@]} -lt 2 ]; then
  echo "usage: bench/ab-worldload.sh [--rounds N] [--worldload PATH] WORLDDB WORLDDB [...] [-- flags]" >&2
  exit 2
fi
for b in "$worldload" "${servers[@]}"; do
  [ -x "$b" ] || { echo "ab-worldload: $b is not an executable" >&2; exit 2; }
done

# worldload takes each flag once: the defaults give way to the caller's.
defaults=()
[[ " ${flags[*]} " == *" --mode "* ]] || defaults+=(--mode max)
[[ " ${flags[*]} " == *" --duration "* ]] || defaults+=(--duration 8)

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

tag() { printf '%s' "$1" | md5sum | cut -c1-6; }
for r in $(seq "$rounds"); do
  for b in "${servers[@]}"; do
    dir=$work/run.$r.$(tag "$b")
    # shellcheck disable=SC2086
    launch_worlddb "$b" "$dir" --metrics-port -1 --durability none ${WORLDDB_FLAGS:-} || exit 1
    "$worldload" --target "worlddb://127.0.0.1:$port" "${defaults[@]}" "${flags[@]}" \
      --json "$dir/report.json" >"$dir/out" 2>&1 ||
      { echo "ab-worldload: worldload failed against $b:" >&2; cat "$dir/out" >&2; exit 1; }
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    printf '%s %s\n' "$(tag "$b")" "$dir/report.json" >>"$work/reports"
  done
done
for b in "${servers[@]}"; do echo "$(tag "$b") = $b"; done
python3 - "$work/reports" <<'PY'
import collections, json, statistics, sys

runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    tag, path = line.split()
    r = json.load(open(path))
    if r.get("errors", 0) or r.get("mismatches", 0):
        sys.exit(f"ab-worldload: {path} reports errors or mismatches")
    for op, key in (("moves", "moves/s"), ("aoi", "AOI queries/s")):
        runs.setdefault(key, collections.OrderedDict()).setdefault(tag, []).append(
            r[op]["items_per_s"] if op == "moves" else r[op]["requests_per_s"])
for key, by_tag in runs.items():
    meds = [statistics.median(v) for v in by_tag.values()]
    if not any(meds):
        continue
    cells = " | ".join(
        f"{t}: median {statistics.median(v) / 1e3:.1f}k of {[round(x / 1e3, 1) for x in v]}"
        for t, v in by_tag.items())
    ratio = f" | ratio {meds[-1] / meds[0]:.3f}" if meds[0] > 0 else ""
    print(f"{key}: {cells}{ratio}")
PY
