#!/usr/bin/env bash
# Usage: scripts/run-fuzzers.sh BUILD_DIR [SECONDS]
#
# Runs every libFuzzer target in BUILD_DIR (executables named *_fuzzer, from a -DHAYWIRE_FUZZ=ON
# build) for SECONDS each (default 60), one after the other. Each target's seeds are the
# directories listed in <target>.corpus beside it (written by haywire_fuzzer in
# cmake/haywire.cmake); they are copied into BUILD_DIR/fuzz-corpus/<target>/, which the run grows
# and later runs reuse: nothing is ever written into testdata/.
#
# Prints one line per target; crash, leak, timeout and OOM inputs are saved as
# BUILD_DIR/fuzz-crashes/<target>-<kind>-<sha1>, full logs as BUILD_DIR/fuzz-logs/<target>.log.
# Exits 1 if any target crashed (or failed to run), 2 on bad usage or when there is no target.
#
# Environment: FUZZ_MAX_LEN (default 65536), FUZZ_TIMEOUT per input in seconds (default 10),
# FUZZ_RSS_MB (default 2048), FUZZ_ONLY (a regex: run only the matching targets).
set -uo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BUILD_DIR [SECONDS]" >&2
  exit 2
fi
build_dir=$(cd "$1" 2>/dev/null && pwd) || { echo "run-fuzzers: no such directory: $1" >&2; exit 2; }
seconds=${2:-60}
case "$seconds" in ''|*[!0-9]*) echo "run-fuzzers: SECONDS must be a whole number" >&2; exit 2 ;; esac
max_len=${FUZZ_MAX_LEN:-65536}
timeout_s=${FUZZ_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-2048}
only=${FUZZ_ONLY:-}

crash_dir="$build_dir/fuzz-crashes"
corpus_root="$build_dir/fuzz-corpus"
log_dir="$build_dir/fuzz-logs"
mkdir -p "$crash_dir" "$corpus_root" "$log_dir"

mapfile -t targets < <(find "$build_dir" \
  \( -path "$crash_dir" -o -path "$corpus_root" -o -path "$log_dir" -o -name CMakeFiles \) -prune -o \
  -type f -name '*_fuzzer' -perm -u+x -print | sort)
if [ -n "$only" ]; then
  mapfile -t targets < <(printf '%s\n' "${targets[@]}" | grep -E "$only" || true)
fi
if [ ${#targets[@]} -eq 0 ] || [ -z "${targets[0]}" ]; then
  echo "run-fuzzers: no *_fuzzer executable in $build_dir (build it with -DHAYWIRE_FUZZ=ON)" >&2
  exit 2
fi

# Sanitizer reports: symbolized stacks, UBSan aborts count as crashes (the build also uses
# -fno-sanitize-recover=undefined).
export ASAN_OPTIONS=${ASAN_OPTIONS:-symbolize=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
  for s in llvm-symbolizer llvm-symbolizer-19 llvm-symbolizer-16 llvm-symbolizer-14; do
    if command -v "$s" >/dev/null; then export ASAN_SYMBOLIZER_PATH=$(command -v "$s"); break; fi
  done
fi

failed=0
for bin in "${targets[@]}"; do
  name=$(basename "$bin")
  log="$log_dir/$name.log"

  if ! grep -qa LLVMFuzzerRunDriver "$bin"; then
    printf '%-28s SKIP  not a libFuzzer binary (configure with -DHAYWIRE_FUZZ=ON)\n' "$name"
    failed=1
    continue
  fi

  corpus="$corpus_root/$name"
  mkdir -p "$corpus"
  if [ -f "$bin.corpus" ]; then
    while IFS= read -r dir || [ -n "$dir" ]; do
      [ -n "$dir" ] || continue
      if [ -d "$dir" ]; then
        # Seeds keep their names; files the fuzzer added are named by hash, so no clash.
        cp -n -- "$dir"/* "$corpus"/ 2>/dev/null || true
      else
        echo "run-fuzzers: $name: seed directory $dir is missing" >&2
      fi
    done < "$bin.corpus"
  else
    echo "run-fuzzers: $name: no $name.corpus beside it; starting from an empty corpus" >&2
  fi

  corpus_before=$(find "$corpus" -maxdepth 1 -type f | wc -l)
  before=$(find "$crash_dir" -maxdepth 1 -type f -name "$name-*" | wc -l)
  start=$(date +%s)
  # The outer timeout is a backstop only: libFuzzer stops itself after -max_total_time and
  # reports inputs slower than -timeout as crashes.
  timeout --signal=INT --kill-after=30 $((seconds + 120)) \
    "$bin" "$corpus" \
      -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout_s" \
      -rss_limit_mb="$rss_mb" -artifact_prefix="$crash_dir/$name-" \
      -print_final_stats=1 > "$log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - start ))
  after=$(find "$crash_dir" -maxdepth 1 -type f -name "$name-*" | wc -l)

  final_stat() { grep -a "^stat::$1:" "$log" | tail -1 | awk '{print $2}'; }
  runs=$(final_stat number_of_executed_units)
  per_sec=$(final_stat average_exec_per_sec)
  rss=$(final_stat peak_rss_mb)
  last=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(find "$corpus" -maxdepth 1 -type f | wc -l)
  crashes=$((after - before))

  if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then
    status=OK
  else
    status=CRASH
    failed=1
  fi
  printf '%-28s %-5s runs=%s exec/s=%s cov=%s ft=%s corpus=%s->%s rss=%sMB time=%ss crashes=%s\n' \
    "$name" "$status" "${runs:-?}" "${per_sec:-?}" "${cov:-?}" "${ft:-?}" "$corpus_before" "$corp" \
    "${rss:-?}" "$elapsed" "$crashes"
  if [ "$status" = CRASH ]; then
    reason=$(grep -aE '^(SUMMARY: |==[0-9]+==ERROR: |ERROR: libFuzzer)' "$log" | head -2 | tr '\n' ' ')
    echo "    exit=$rc ${reason:-see log}"
    find "$crash_dir" -maxdepth 1 -type f -name "$name-*" -newermt "@$start" | sort |
      sed 's/^/    input: /'
    echo "    log:   $log  (replay: $bin <input>)"
  fi
done
exit "$failed"
