#!/usr/bin/env bash
# Whole-run cost of `haywire glass` (issue 5, docs/PERFORMANCE.md), on a release build:
#   1. slowdown: run time of a write-heavy workload (glass-workload checksum: WRITES random page
#      writes over SIZE, as fast as it can, so every page is written in every interval: the
#      worst case for write tracking) alone, under glass at 10 Hz sampled (the default) and
#      under glass --full, in the same run, several repetitions each (hyperfine if installed,
#      else a `date +%s%N` loop). Target <= 3 %.
#   2. monitor CPU per GiB tracked at 10 Hz: haywire's own user+sys time (getrusage of the
#      child, via bash's `times`) while it tracks a workload writing all over 1 GiB, for
#      --intervals N at 100 ms. Target <= 2 % of a core per GiB.
#
# Usage: scripts/glass-overhead.sh [BUILD_DIR] (default build/release)
#   RUNS=N (5)  SIZE=64M WRITES=10000000 (slowdown workload)  CPU_SIZE=1G  CPU_INTERVALS=100
set -euo pipefail

build=${1:-build/release}
haywire=$build/apps/haywire/haywire
workload=$build/apps/haywire/glass-workload
runs=${RUNS:-5}
size=${SIZE:-64M}
writes=${WRITES:-10000000}
cpu_size=${CPU_SIZE:-1G}
cpu_intervals=${CPU_INTERVALS:-100}
for f in "$haywire" "$workload"; do
  [ -x "$f" ] || { echo "glass-overhead: $f not built (cmake --build $build --target haywire glass-workload)" >&2; exit 1; }
done

work="checksum --size $size --writes $writes"
plain="$workload $work"
sampled="$haywire glass --interval-ms 100 -- $workload $work"
full="$haywire glass --interval-ms 100 --full -- $workload $work"

echo "== 1. slowdown: $runs runs each, workload: glass-workload $work"
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 1 --runs "$runs" --style basic -N \
    -n plain "$plain" -n "glass sampled 10 Hz" "$sampled" -n "glass --full 10 Hz" "$full"
else
  # Interleaved so that load changes on the machine hit all three alike.
  declare -A total=([plain]=0 [sampled]=0 [full]=0)
  for ((i = 0; i < runs; i++)); do
    for name in plain sampled full; do
      cmd=${!name}
      t0=$(date +%s%N)
      $cmd >/dev/null 2>&1
      t1=$(date +%s%N)
      total[$name]=$((total[$name] + t1 - t0))
    done
  done
  base=${total[plain]}
  for name in plain sampled full; do
    awk -v t="${total[$name]}" -v b="$base" -v n="$runs" -v name="$name" \
      'BEGIN { printf "%-8s mean %8.1f ms  (%+.1f %% vs plain)\n", name, t / n / 1e6, (t / b - 1) * 100 }'
  done
fi

echo
echo "== 2. monitor CPU at 10 Hz, $cpu_intervals intervals, tracking glass-workload sweep --size $cpu_size"
cpu_run() {  # $1: extra glass options
  local log ready pid
  log=$(mktemp)
  ready=$(mktemp -u)
  mkfifo "$ready"
  # Writes all over the region (wraps every ~5 s at 50k pages/s) for longer than we measure.
  "$workload" sweep --size "$cpu_size" --rate 50000 --duration-ms $((cpu_intervals * 100 + 20000)) >"$ready" &
  pid=$!
  read -r _ <"$ready"
  rm -f "$ready"
  sleep 5  # let it touch the whole region once
  (
    TIMEFORMAT='%R'
    "$haywire" glass --pid "$pid" --json --interval-ms 100 --intervals "$cpu_intervals" $1 >"$log" 2>/dev/null
    times  # second line: children's user and system time
  ) >"$log.times"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 - "$log" "$log.times" "$cpu_intervals" "$1" <<'EOF'
import json, re, sys
log, times, n, opts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] or "sampled"
objs = [json.loads(l) for l in open(log) if l.startswith("{")]
def secs(s):
    m = re.match(r"(\d+)m([\d.]+)s", s)
    return int(m.group(1)) * 60 + float(m.group(2))
lines = open(times).read().split("\n")
user, sys_ = (secs(x) for x in lines[1].split())
wall = sum(o["telemetry"]["interval_ms"] for o in objs) / 1e3
gib = max(o["tracked_pages"] for o in objs) * 4096 / 2**30
cpu = (user + sys_) / wall * 100
print(f"{opts:10s} intervals {len(objs)}  wall {wall:.2f} s  haywire user {user:.2f} s sys {sys_:.2f} s  "
      f"= {cpu:.2f} % of a core, tracked {gib:.2f} GiB -> {cpu / gib:.2f} % per GiB")
EOF
  rm -f "$log" "$log.times"
}
cpu_run ""
cpu_run "--full"
