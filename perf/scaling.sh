#!/usr/bin/env bash
# Every CPU: the cross-connect (io) and the L2 switch (1 and 64 K MAC
# pairs per port) on one worker and on one worker per core (each with its
# own pair of null ports and bridge domain, the MAC table shared), beside
# testpmd mac forward on one core and on every core (two net_null ports
# per forwarding core). Median of RUNS runs of SECS seconds, interleaved.
# Writes perf/results/scaling.json.
#
#   perf/scaling.sh [seconds] [runs]      (needs: apt-get install dpdk-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
RUNS=${2:-3}
N=$(nproc)
OUT=perf/results/scaling.json
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing: apt-get install dpdk-dev" >&2; exit 1; }
source perf/lib.sh
cargo build --release -q -p pollgate
PG=target/release/pollgate
CASES=("io" "l2" "l2-64k")
args() {
  case $1 in
    io) echo "--forward io" ;;
    l2) echo "--l2" ;;
    l2-64k) echo "--l2 --macs 65536" ;;
  esac
}
declare -A R
for ((i = 0; i < RUNS; i++)); do
  for c in "${CASES[@]}"; do
    for w in 1 "$N"; do
      # shellcheck disable=SC2046
      R[$c-$w]+="$($PG bench --seconds "$SECS" --core 0 --workers "$w" $(args "$c") --json 2>/dev/null | json_mpps) "
    done
  done
  R[testpmd-1]+="$(testpmd_mac "$SECS" 0 1) "
  R[testpmd-$N]+="$(awk -v t="$(testpmd_mac "$SECS" 0 "$N")" -v n="$N" 'BEGIN {printf "%.2f", t / n}') "
done
MHZ=$(CORE=0 cpu_mhz) # the first worker's core
echo "$(machine), ${MHZ} MHz; 64-byte frames, median of $RUNS x ${SECS} s"
printf '%-36s %16s %16s %10s\n' "" "1 core (Mpps)" "$N cores (Mpps/core)" "scaling"
json=""
for c in "${CASES[@]}" testpmd; do
  one=$(tr ' ' '\n' <<<"${R[$c-1]}" | grep . | median)
  all=$(tr ' ' '\n' <<<"${R[$c-$N]}" | grep . | median)
  case $c in
    io) label="pollgate io cross-connect" ;;
    l2) label="pollgate l2 switch, 1 MAC pair" ;;
    l2-64k) label="pollgate l2 switch, 64 K MAC pairs" ;;
    testpmd) label="testpmd mac forward (net_null)" ;;
  esac
  printf '%-36s %16.2f %16.2f %9.0f%%\n' "$label" "$one" "$all" "$(echo "100*$all/$one" | bc -l)"
  json+="  \"$c\": {\"one_core_mpps\": $one, \"per_core_mpps_on_$N\": $all},"$'\n'
done
{
  echo '{'
  echo "  \"machine\": \"$(machine)\", \"cpu_mhz\": $MHZ, \"date\": \"$(date -u +%FT%TZ)\", \"seconds\": $SECS, \"runs\": $RUNS, \"cores\": $N,"
  printf '%s' "$json" | sed '$ s/,$//'
  echo '}'
} >"$OUT"
echo "wrote $OUT"
