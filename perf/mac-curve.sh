#!/usr/bin/env bash
# The L2 switch's cost curve in memory: `pollgate bench --l2 --macs N`
# for N = 1, 1 K, 64 K and 1 M distinct MAC pairs per port, replayed in a
# shuffled order so that lookups miss the caches, beside testpmd mac
# forward on net_null, one core each, interleaved, the median of RUNS
# runs of SECS seconds; cycles per packet are ns x the clock
# /proc/cpuinfo reports. Writes perf/results/mac-curve.json.
#
#   perf/mac-curve.sh [seconds] [runs]      (needs: apt-get install dpdk-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
RUNS=${2:-3}
CORE=${CORE:-1}
OUT=perf/results/mac-curve.json
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing: apt-get install dpdk-dev" >&2; exit 1; }
source perf/lib.sh
cargo build --release -q -p pollgate
PG=target/release/pollgate
SIZES=(1 1024 65536 1048576)
declare -A R
for ((i = 0; i < RUNS; i++)); do
  for n in "${SIZES[@]}"; do
    R[$n]+="$($PG bench --seconds "$SECS" --core "$CORE" --l2 --macs "$n" --json 2>/dev/null | json_mpps) "
  done
  R[testpmd]+="$(testpmd_mac "$SECS" "$CORE") "
done
MHZ=$(cpu_mhz)
printf '%-34s %10s %9s %12s\n' "64-byte frames, 1 core, median of $RUNS" "Mpps" "ns/pkt" "cycles/pkt"
declare -A M
for n in "${SIZES[@]}" testpmd; do
  M[$n]=$(tr ' ' '\n' <<<"${R[$n]}" | grep . | median)
  label="l2 switch, $n MAC pairs per port"
  [ "$n" = testpmd ] && label="testpmd mac forward (net_null)"
  printf '%-34s %10.2f %9.2f %12.1f\n' "$label" "${M[$n]}" "$(echo "1000/${M[$n]}" | bc -l)" "$(echo "$MHZ/${M[$n]}" | bc -l)"
done
{
  echo '{'
  echo "  \"machine\": \"$(machine)\", \"cpu_mhz\": $MHZ, \"date\": \"$(date -u +%FT%TZ)\","
  echo "  \"seconds\": $SECS, \"runs\": $RUNS,"
  for n in "${SIZES[@]}" testpmd; do
    echo "  \"$n\": { \"median_mpps\": ${M[$n]}, \"runs_mpps\": [$(echo ${R[$n]} | tr ' ' ',')] },"
  done | sed '$ s/,$//'
  echo '}'
} >"$OUT"
echo "wrote $OUT"
