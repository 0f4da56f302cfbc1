#!/usr/bin/env bash
# Slowdown of a real program under `haywire glass` at 10 Hz (issue 5 target <= 3 %,
# docs/PERFORMANCE.md section 7): ROUNDS rounds, each running CMD alone and then under every
# glass variant, one after the other, so that the machine's drift hits all of them alike. Each
# round's change is taken against that round's plain run; the summary is the mean over rounds,
# its standard error and the median.
#
# glass attaches by --pid as soon as CMD has started, so the program's own times are measured
# (by /usr/bin/time) without the monitor's. Three figures per variant, all as a share of the
# plain run's wall time:
#   wall  the program's run time: what the target asks for, and the noisiest;
#   sys   the program's extra system time: what glass costs it in the kernel (write faults,
#         TLB-flush interrupts); the steadiest of the three;
#   user  the program's extra user time (TLB refills after flushes; mostly machine noise).
# Minor faults are printed per run.
#
# Usage: scripts/glass-slowdown.sh [BUILD_DIR] -- CMD ARGS...
#   ROUNDS=10   VARIANTS='default;--fewer-faults' (';'-separated glass option sets; "default": none)
# Example (the figure in docs/PERFORMANCE.md):
#   seq 1 20000000 | shuf > /tmp/sortin
#   scripts/glass-slowdown.sh build/release -- sort --parallel=1 -S 400M -T /dev/shm -o /dev/null /tmp/sortin
set -euo pipefail

build=build/release
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  build=$1
  shift
fi
[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
  echo "usage: $0 [BUILD_DIR] -- CMD ARGS..." >&2
  exit 2
fi
haywire=$build/apps/haywire/haywire
[ -x "$haywire" ] || { echo "glass-slowdown: $haywire not built (cmake --build $build --target haywire)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "glass-slowdown: /usr/bin/time missing (scripts/setup.sh installs it)" >&2; exit 1; }
rounds=${ROUNDS:-10}
IFS=';' read -r -a variants <<<"${VARIANTS:-default}"

work=$(mktemp -d)
started=()
cleanup() {
  for p in "${started[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One run of the program; leaves "wall user sys minor_faults" as the last line of $work/time.
# $1: glass options, "default", or "plain"; the rest: the program.
run() {
  local opts=$1 tp cp="" gp="" i
  shift
  /usr/bin/time -f "%e %U %S %R" -o "$work/time" "$@" >/dev/null 2>"$work/cmd.err" &
  tp=$!
  started=("$tp")
  if [ "$opts" != plain ]; then
    for ((i = 0; i < 400; i++)); do
      cp=$(pgrep -P "$tp" || true)
      [ -n "$cp" ] && break
      sleep 0.005
    done
    if [ -z "$cp" ]; then
      echo "glass-slowdown: the program did not start (or ended at once); its stderr:" >&2
      cat "$work/cmd.err" >&2
      exit 1
    fi
    [ "$opts" = default ] && opts=
    # shellcheck disable=SC2086 # the variant is a list of options
    "$haywire" glass --pid "$cp" --interval-ms 100 --json $opts >/dev/null 2>"$work/glass.err" &
    gp=$!
    started+=("$gp")
  fi
  if ! wait "$tp"; then
    echo "glass-slowdown: the program failed; its stderr:" >&2
    cat "$work/cmd.err" >&2
    exit 1
  fi
  if [ -n "$gp" ] && ! wait "$gp"; then
    echo "glass-slowdown: haywire glass failed:" >&2
    cat "$work/glass.err" >&2
    exit 1
  fi
  started=()
}

echo "program: $*"
echo "rounds: $rounds; variants: plain ${variants[*]}"
printf '%-5s %-24s %8s %8s %8s %10s\n' round variant wall_s user_s sys_s faults
: >"$work/all"
for ((r = 1; r <= rounds; r++)); do
  for v in plain "${variants[@]}"; do
    run "$v" "$@"
    read -r wall user sys faults < <(tail -n 1 "$work/time")
    printf '%-5s %-24s %8s %8s %8s %10s\n' "$r" "$v" "$wall" "$user" "$sys" "$faults"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$wall" "$user" "$sys" "$faults" >>"$work/all"
  done
done
echo
echo "change against the same round's plain run, as % of its wall time: mean +- standard error (median); mean faults"
awk -F '\t' '
  $2 == "plain" { pw[$1] = $3; pu[$1] = $4; ps[$1] = $5; faults["plain"] += $6; runs["plain"]++; next }
  {
    v = $2; n[v]++; k = n[v]; faults[v] += $6
    x["wall", v, k] = ($3 - pw[$1]) / pw[$1] * 100
    x["sys", v, k] = ($5 - ps[$1]) / pw[$1] * 100
    x["user", v, k] = ($4 - pu[$1]) / pw[$1] * 100
    if (!(v in seen)) { seen[v] = 1; order[++nv] = v }
  }
  function sorted_median(what, v, m,   i, j, t, a) {
    for (i = 1; i <= m; i++) a[i] = x[what, v, i]
    for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    printf "%-24s  faults %.0f\n", "plain", faults["plain"] / runs["plain"]
    for (o = 1; o <= nv; o++) {
      v = order[o]; m = n[v]; line = sprintf("%-24s", v)
      split("wall sys user", whats, " ")
      for (w = 1; w <= 3; w++) {
        what = whats[w]; s = 0; ss = 0
        for (i = 1; i <= m; i++) s += x[what, v, i]
        mean = s / m
        for (i = 1; i <= m; i++) ss += (x[what, v, i] - mean) ^ 2
        se = m > 1 ? sqrt(ss / (m - 1) / m) : 0
        line = line sprintf("  %s %+.1f +- %.1f (%+.1f)", what, mean, se, sorted_median(what, v, m))
      }
      print line sprintf("  faults %.0f", faults[v] / m)
    }
  }' "$work/all"
