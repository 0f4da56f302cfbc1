#!/usr/bin/env bash
# Whole-run cost of `haywire glass` (issue 5, docs/PERFORMANCE.md), on a release build:
#   1. slowdown: run time of a write-heavy workload (glass-workload checksum: WRITES random page
#      writes over SIZE, as fast as it can, so every page is written in every interval: the
#      worst case for write tracking) alone, under glass at 10 Hz sampled (the default) and
#      under glass --full, in the same run, several repetitions each (hyperfine if installed,
#      else a `date +%s%N` loop). Target <= 3 %.
#   2. monitor CPU per GiB tracked at 10 Hz: haywire's own user+sys time in the steady state
#      (a CPU_WINDOW-second window after CPU_WARMUP seconds) while it tracks a workload
#      writing all over CPU_SIZE. Target <= 2 % of a core per GiB.
#
# Usage: scripts/glass-overhead.sh [BUILD_DIR] (default build/release)
#   RUNS=N (5)  SIZE=64M WRITES=10000000 (slowdown workload)  CPU_SIZE=1G  CPU_WINDOW=10 CPU_WARMUP=3
#   CPU_WORKLOAD="sweep" (or "random", "hotset-move --hot 5000", ...: any glass-workload mode
#   that takes --size --rate --duration-ms)  CPU_JSON=0: the monitor's default output, not --json
#   SKIP_SLOWDOWN=1 runs section 2 only
set -euo pipefail

build=${1:-build/release}
haywire=$build/apps/haywire/haywire
workload=$build/apps/haywire/glass-workload
runs=${RUNS:-5}
size=${SIZE:-64M}
writes=${WRITES:-10000000}
cpu_size=${CPU_SIZE:-1G}
for f in "$haywire" "$workload"; do
  [ -x "$f" ] || { echo "glass-overhead: $f not built (cmake --build $build --target haywire glass-workload)" >&2; exit 1; }
done

work="checksum --size $size --writes $writes"
plain="$workload $work"
sampled="$haywire glass --interval-ms 100 -- $workload $work"
full="$haywire glass --interval-ms 100 --full -- $workload $work"

echo "== 1. slowdown: $runs runs each, workload: glass-workload $work"
if [ -n "${SKIP_SLOWDOWN:-}" ]; then
  echo "(skipped: SKIP_SLOWDOWN is set)"
elif command -v hyperfine >/dev/null; then
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
cpu_workload=${CPU_WORKLOAD:-sweep}
echo "== 2. monitor CPU at 10 Hz, steady state, tracking glass-workload $cpu_workload --size $cpu_size --rate 50000"
# The monitor's user+sys time (utime+stime of /proc/PID/stat, all its threads) over a window
# of CPU_WINDOW seconds that starts CPU_WARMUP seconds after the attach: attaching
# (registering every region) and detaching (unregistering) are one-off costs, left out.
window=${CPU_WINDOW:-10}
warmup=${CPU_WARMUP:-3}
tck=$(getconf CLK_TCK)
cpu_run() {  # $1: extra glass options
  local ready wpid gpid pages touch a b
  ready=$(mktemp -u)
  mkfifo "$ready"
  pages=$(numfmt --from=iec "$cpu_size")
  pages=$((pages / 4096))
  touch=$((pages / 50000 + 2))  # seconds for the sweep to write the whole region once
  # shellcheck disable=SC2086 # CPU_WORKLOAD is a mode and its options
  "$workload" $cpu_workload --size "$cpu_size" --rate 50000 --duration-ms $(((touch + warmup + window + 10) * 1000)) >"$ready" &
  wpid=$!
  read -r _ <"$ready"
  rm -f "$ready"
  sleep "$touch"
  local json=--json
  [ "${CPU_JSON:-1}" = 0 ] && json=
  "$haywire" glass --pid "$wpid" $json --interval-ms 100 $1 >/dev/null 2>&1 &
  gpid=$!
  sleep "$warmup"
  a=$(awk '{print $14 + $15}' "/proc/$gpid/stat")
  sleep "$window"
  b=$(awk '{print $14 + $15}' "/proc/$gpid/stat")
  kill -INT "$gpid"
  wait "$gpid" || true
  kill "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true
  awk -v t=$((b - a)) -v hz="$tck" -v w="$window" -v p="$pages" -v o="${1:-sampled}" 'BEGIN {
    cpu = t / hz / w * 100; gib = p * 4096 / 2^30
    printf "%-10s %s ticks in %d s = %.2f %% of a core, tracked %.2f GiB -> %.2f %% per GiB\n", o, t, w, cpu, gib, cpu / gib }'
}
cpu_run ""
cpu_run "--full"
