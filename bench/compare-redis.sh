#!/usr/bin/env bash
# compare-redis.sh: the same worldload workload (tools/worldload, docs/worldload.md)
# against WorldDB and Redis GEO on this machine, back to back, same seed, and
# one table: each figure for both systems and their ratio (WorldDB / Redis;
# for latencies Redis / WorldDB, so > 1 always means WorldDB is better).
#
# Per run, each server fresh (worldload needs an empty world), on loopback:
#   1. max throughput, persistence off:  worlddb --durability none
#                                    vs  redis-server --save '' --appendonly no
#   2. max throughput, logged:          worlddb --durability interval:1000
#                                    vs  redis-server --appendonly yes --appendfsync everysec
#                                        (--auto-aof-rewrite-percentage 0: no rewrite fork mid-run)
#   3. fixed rate (10 ticks/s unless overridden), persistence off, both systems.
# Servers and data live in a temporary directory; everything started here is
# stopped (by pid) on exit, also on failure or Ctrl-C.
#
# Usage: bench/compare-redis.sh [--runs N] [--duration S] [--fixed-duration S]
#                               [--build DIR] [-- extra worldload flags...]
#   e.g. bench/compare-redis.sh --runs 3
#        bench/compare-redis.sh --duration 5 -- -n 100000 -p 1000      # quick look
# WORLDDB_FLAGS adds daemon flags (e.g. WORLDDB_FLAGS="--shards 1").
# Needs: a build with net/worlddb and tools/worldload (default ./build), python3,
# redis-server (installed from Debian here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=1 duration=20 fixed_duration=10 build=${WORLDDB_BUILD:-build}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --fixed-duration) fixed_duration=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "compare-redis: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
extra=("$@")

if ! command -v redis-server >/dev/null; then
  echo "compare-redis: installing redis-server (Debian)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends redis-server
fi
worlddb=$build/net/worlddb worldload=$build/tools/worldload
for b in "$worlddb" "$worldload"; do
  [ -x "$b" ] || { echo "compare-redis: $b not built (cmake --build $build --target worlddb worldload)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/compare-redis.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_worlddb DURABILITY -> sets $port and $server_pid
start_worlddb() {
  local ok=0
  # WORLDDB_FLAGS: extra daemon flags, split on spaces (e.g. "--shards 1").
  # shellcheck disable=SC2086
  launch_worlddb "$worlddb" "$work/worlddb.$RANDOM" --durability "$1" ${WORLDDB_FLAGS:-} || ok=$?
  pids+=("$server_pid")
  [ "$ok" -eq 0 ] || { echo "compare-redis: worlddb did not start" >&2; exit 1; }
}

# start_redis [redis flags...] -> sets $port and $server_pid
start_redis() {
  local dir=$work/redis.$RANDOM
  mkdir -p "$dir"
  port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize no --save '' \
    --logfile "$dir/log" "$@" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 200); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "compare-redis: redis-server did not start:" >&2; cat "$dir/log" >&2; exit 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# CPU seconds (user + system) the server has used so far.
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$server_pid/stat"
}

# run NAME TARGET worldload-flags...: one worldload run, its JSON in
# $work/NAME.json and the server's CPU share over the run (load included) in
# $work/NAME.cpu.
run() {
  local name=$1 target=$2 cpu0 t0
  shift 2
  echo "--- $name: worldload --target $target $* ${extra[*]}" >&2
  cpu0=$(server_cpu) t0=$(date +%s.%N)
  "$worldload" --target "$target" --flush -q --json "$work/$name.json" "$@" "${extra[@]}" \
    | sed 's/^/    /' >&2 || echo "    (worldload exited $?: errors or mismatches, see above)" >&2
  echo "$(server_cpu) $cpu0 $(date +%s.%N) $t0" | awk '{ printf "%.3f\n", ($1 - $2) / ($3 - $4) }' \
    >"$work/$name.cpu"
}

echo "compare-redis: $runs run(s), max-throughput ${duration}s, fixed-rate ${fixed_duration}s; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
max=(--mode max --duration "$duration")
fixed=(--mode fixed --duration "$fixed_duration")
for i in $(seq "$runs"); do
  start_worlddb none;     run "$i.worlddb.none" "worlddb://127.0.0.1:$port" "${max[@]}"; stop_server
  start_redis --appendonly no
  run "$i.redis.none" "redis://127.0.0.1:$port" "${max[@]}"; stop_server
  start_worlddb interval:1000; run "$i.worlddb.logged" "worlddb://127.0.0.1:$port" "${max[@]}"; stop_server
  start_redis --appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0
  run "$i.redis.logged" "redis://127.0.0.1:$port" "${max[@]}"; stop_server
  start_worlddb none;     run "$i.worlddb.fixed" "worlddb://127.0.0.1:$port" "${fixed[@]}"; stop_server
  start_redis --appendonly no
  run "$i.redis.fixed" "redis://127.0.0.1:$port" "${fixed[@]}"; stop_server
done

python3 - "$work" "$runs" <<'PY'
import json, os, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
def load(run, sysname, cfg):
    p = os.path.join(work, f"{run}.{sysname}.{cfg}.json")
    if not os.path.exists(p): return None
    r = json.load(open(p))
    c = os.path.join(work, f"{run}.{sysname}.{cfg}.cpu")
    r["server_cpu_pct"] = 100 * float(open(c).read()) if os.path.exists(c) else None
    return r
# (label, config, getter, higher_is_better)
figures = [
    ("moves/s, max throughput, no persistence", "none", lambda r: r["moves"]["items_per_s"], True),
    ("AOI queries/s, max throughput, no persistence", "none", lambda r: r["aoi"]["requests_per_s"], True),
    ("AOI p99 ms, max throughput (--in-flight queries in flight)", "none", lambda r: r["aoi"]["latency_ms"]["p99"], False),
    ("move batch p99 ms, max throughput (8 batches in flight)", "none", lambda r: r["moves"]["latency_ms"]["p99"], False),
    ("moves/s, logged (interval 1 s / AOF everysec)", "logged", lambda r: r["moves"]["items_per_s"], True),
    ("AOI queries/s, logged", "logged", lambda r: r["aoi"]["requests_per_s"], True),
    ("load entities/s (no persistence)", "none", lambda r: r["load"]["entities"] / r["load"]["seconds"], True),
    ("fixed rate: ticks/s achieved", "fixed", lambda r: r["ticks"]["ticks_per_s"], True),
    ("fixed rate: zone-ticks missed", "fixed", lambda r: r["ticks"]["zone_ticks_missed"], False),
    ("fixed rate: AOI p50 ms (from schedule)", "fixed", lambda r: r["aoi"]["latency_ms"]["p50"], False),
    ("fixed rate: AOI p99 ms (from schedule)", "fixed", lambda r: r["aoi"]["latency_ms"]["p99"], False),
    ("fixed rate: AOI max ms", "fixed", lambda r: r["aoi"]["latency_ms"]["max"], False),
    ("server CPU % of one core, max throughput run (load included)", "none", lambda r: r["server_cpu_pct"], None),
    ("errors + mismatches (all runs)", None, None, False),
]
def fmt(v):
    if v is None: return "-"
    a = abs(v)
    if a >= 1e6: return f"{v/1e6:.2f} M"
    if a >= 1e4: return f"{v/1e3:.1f} k"
    if a >= 100: return f"{v:.0f}"
    return f"{v:.3g}"
def summary(vals):
    vals = [v for v in vals if v is not None]
    if not vals: return "-"
    m = statistics.median(vals)
    return fmt(m) if len(vals) == 1 else f"{fmt(m)} ({fmt(min(vals))}–{fmt(max(vals))})"
first = load(1, "worlddb", "none") or {}
o = first.get("options", {})
print(f"\nworldload: N={o.get('entities')}, Z={o.get('zones')}, players={o.get('players')}, "
      f"{'kNN k=' + str(o['knn']) if o.get('knn') else 'radius ' + str(o.get('radius')) + ' m'}, "
      f"kind {o.get('kind')}, columns {o.get('columns')}, {o.get('dist')}, seed {o.get('seed')}; "
      f"{runs} run(s): median (min–max)\n")
print("| figure | WorldDB | Redis GEO | WorldDB / Redis |")
print("|---|---|---|---|")
for label, cfg, get, higher in figures:
    if cfg is None:
        bad = {s: 0 for s in ("worlddb", "redis")}
        for run in range(1, runs + 1):
            for s in bad:
                for c in ("none", "logged", "fixed"):
                    r = load(run, s, c)
                    if r: bad[s] += r["errors"] + r["mismatches"]
        print(f"| {label} | {bad['worlddb']} | {bad['redis']} | |")
        continue
    w, r, ratio = [], [], []
    for run in range(1, runs + 1):
        a, b = load(run, "worlddb", cfg), load(run, "redis", cfg)
        wa = get(a) if a else None
        rb = get(b) if b else None
        w.append(wa); r.append(rb)
        if wa is not None and rb is not None and higher is not None:
            if higher and rb > 0: ratio.append(wa / rb)
            if not higher and wa > 0: ratio.append(rb / wa)
    if not ratio:
        rs = "-"
    elif len(ratio) == 1:
        rs = f"{ratio[0]:.2f}x"
    else:
        rs = f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}–{max(ratio):.2f})"
    print(f"| {label} | {summary(w)} | {summary(r)} | {rs} |")
PY
