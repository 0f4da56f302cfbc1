#!/usr/bin/env bash
# Runs the guest-RAM benchmarks of a release build and prints a short table with the ratios
# against the baselines measured in the same run. No pass/fail: the figures and their targets
# are recorded in docs/PERFORMANCE.md.
#
#   scripts/run-benchmarks.sh BUILD_DIR [OUT_DIR]
#
# BUILD_DIR is a RelWithDebInfo/Release build (`make release`, or `make bench` which calls
# this). The raw Google Benchmark JSON goes to OUT_DIR (default BUILD_DIR/bench).
# Environment: BENCH_REPETITIONS (default 3; the table shows medians), BENCH_MIN_TIME
# (seconds per benchmark, default 0.5), BENCH_MULTI_VM_REPETITIONS (default 1; ~20 s each),
# BENCH_SKIP_MULTI_VM=1 to skip the 3-VM run.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 BUILD_DIR [OUT_DIR]" >&2
  exit 2
fi
build=$1
out=${2:-$build/bench}
reps=${BENCH_REPETITIONS:-3}
min_time=${BENCH_MIN_TIME:-0.5}

ram_bin=$build/src/guest/guest_benchmark
multi_bin=$build/src/guest/guest_multi_vm_benchmark
for bin in "$ram_bin" "$multi_bin"; do
  if [[ ! -x $bin ]]; then
    echo "$0: $bin not found: build $build with -DHAYWIRE_BENCH=ON (make release)" >&2
    exit 1
  fi
done
if [[ -f $build/CMakeCache.txt ]] && grep -qE '^CMAKE_BUILD_TYPE:[A-Z]+=(Debug)?$' "$build/CMakeCache.txt"; then
  echo "$0: warning: $build is not a release build; figures will be meaningless" >&2
fi
mkdir -p "$out"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# run_bench NAME BINARY ARGS...: JSON to $out/NAME.json, console output to $out/NAME.log.
run_bench() {
  local name=$1 bin=$2
  shift 2
  if ! "$bin" "$@" --benchmark_out="$out/$name.json" --benchmark_out_format=json \
      >"$out/$name.log" 2>&1; then
    echo "$0: $name failed; the end of $out/$name.log:" >&2
    tail -n 20 "$out/$name.log" >&2
    exit 1
  fi
}

# Google Benchmark 1.7 takes --benchmark_min_time as plain seconds.
run_bench guest_benchmark "$ram_bin" --benchmark_min_time="$min_time" \
  --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true
if [[ ${BENCH_SKIP_MULTI_VM:-0} != 1 ]]; then
  # Each case runs ~3 s of 20 Hz periods once (Iterations(1)): ~20 s per repetition.
  multi_reps=${BENCH_MULTI_VM_REPETITIONS:-1}
  run_bench guest_multi_vm_benchmark "$multi_bin" --benchmark_repetitions="$multi_reps" \
    --benchmark_report_aggregates_only="$([[ $multi_reps -gt 1 ]] && echo true || echo false)"
fi
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out" <<'EOF'
import json, os, sys

out = sys.argv[1]

def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        # With repetitions keep the median aggregate; a single run has no aggregates.
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"]).replace("/iterations:1", "").replace("/manual_time", "")
        rows[name] = b
    return rows

def ns(b):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["real_time" if "manual_time" in b["name"] else "cpu_time"] * scale

def gbs(b):
    v = b.get("bytes_per_second")
    return f"{v / 1e9:7.2f}" if v else "      -"

ram = load("guest_benchmark.json")
print()
print("read_pa (zero-copy span, two-region q35 layout, random addresses)")
print(f"  {'benchmark':34} {'ns/call':>10} {'GB/s':>7}")
for name, b in ram.items():
    if name.startswith("BM_ReadPa"):
        print(f"  {name:34} {ns(b):10.1f} {gbs(b)}")

print()
print("64 MiB snapshot (GB/s = bytes / CPU time; vs_memcpy interleaved in the same benchmark)")
print(f"  {'benchmark':66} {'ms':>7} {'GB/s':>7} {'vs_memcpy':>9} {'vs BM_Memcpy':>12}  target")
memcpy = ram.get("BM_Memcpy64MiB")
# Tear-detecting what-if prototypes are held to the tear-detection target.
targets = {"tears:0": 0.9, "tears:1": 0.6, "Prototype": 0.6}
for name, b in ram.items():
    if not (name.startswith("BM_Memcpy") or name.startswith("BM_Snapshot64MiB")
            or name.startswith("BM_TearDetectPrototype")):
        continue
    inter = b.get("vs_memcpy")
    sep = ns(memcpy) / ns(b) if memcpy else None
    target = next((t for k, t in targets.items() if k in name), None)
    met = "" if target is None else (f">={target} {'met' if inter is not None and inter >= target else 'NOT met'}")
    print(f"  {name:66} {ns(b) / 1e6:7.2f} {gbs(b)} "
          f"{(f'{inter:9.3f}' if inter is not None else '        -')} "
          f"{(f'{sep:12.3f}' if sep is not None else '           -')} {met}")

rows = [(n, b) for n, b in ram.items() if n.startswith("BM_DataRanges")]
if rows:
    print()
    print("GuestRam::data_ranges (SEEK_DATA/SEEK_HOLE; paid by every take_snapshot(GuestRam&))")
    for name, b in rows:
        print(f"  {name:34} {ns(b) / 1e6:8.3f} ms  ({int(b['ranges'])} range(s))")

rows = [(n, b) for n, b in ram.items() if n.startswith("BM_PageHashAfterDispatch")]
if rows:
    print()
    print("snapshot.cc's SSE2 page_hash over 64 MiB after one libxxhash dispatch call")
    for name, b in rows:
        print(f"  {name:34} {ns(b) / 1e6:8.2f} ms {gbs(b)} GB/s")

rows = [(n, b) for n, b in ram.items() if n.startswith("BM_SnapshotUnderWrites")]
if rows:
    print()
    print("64 MiB tear-detecting snapshot while a thread writes random words")
    print(f"  {'benchmark':48} {'ms':>7} {'writes/s':>10} {'recopied/snap':>13} {'torn/snap':>9}")
    for name, b in rows:
        print(f"  {name:48} {ns(b) / 1e6:7.2f} {b['writes_per_s']:10.0f} "
              f"{b['recopied_per_snap']:13.1f} {b['torn_per_snap']:9.1f}")

multi = load("guest_multi_vm_benchmark.json")
if multi:
    print()
    print("3 VMs x 20 Hz tear-detecting snapshots for 3 s (CPU % of one core; 2 cores = 200 %)")
    print("  (round = one period's work: threads:1 all three snapshots, threads:3 one snapshot)")
    print(f"  {'benchmark':36} {'CPU %':>6} {'missed':>9} {'round ms':>9} {'max ms':>7} {'CPU ms/round':>12} {'20 Hz':>7}")
    for name, b in multi.items():
        print(f"  {name:36} {b['cpu_pct']:6.1f} {int(b['missed']):4d}/{int(b['periods']):<4d} "
              f"{b['round_ms_mean']:9.2f} {b['round_ms_max']:7.2f} {b['cpu_ms_per_round']:12.2f} "
              f"{'met' if b['deadline_met'] >= 1 else 'NOT met':>7}")
print()
print(f"raw JSON: {out}")
EOF
