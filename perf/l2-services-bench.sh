#!/usr/bin/env bash
# The L2 service paths in memory, beside the access-port switch and
# testpmd's mac forwarding, one forwarding core each, same run: the
# 802.1ad customer port against a QinQ provider port, and the parent and
# a member of a macvlan and of an ipvlan bridge (`pollgate bench
# --service`). Each figure is the median of RUNS runs of SECS seconds.
# Prints a table and writes perf/results/l2-services-bench.json.
#
#   perf/l2-services-bench.sh [seconds] [runs]   (needs: apt-get install dpdk-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
RUNS=${2:-3}
CORE=${CORE:-1}
OUT=perf/results/l2-services-bench.json
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing: apt-get install dpdk-dev" >&2; exit 1; }
source perf/lib.sh
cargo build --release -q -p pollgate
PG=target/release/pollgate

declare -A R
names=(access customer macvlan ipvlan testpmd_mac)
for ((i = 0; i < RUNS; i++)); do
  # Interleaved, so a drift of the machine's speed touches every path alike.
  R[access]+="$($PG bench --seconds "$SECS" --core "$CORE" --l2 --json 2>/dev/null | json_mpps) "
  for s in customer macvlan ipvlan; do
    R[$s]+="$($PG bench --seconds "$SECS" --core "$CORE" --service $s --json 2>/dev/null | json_mpps) "
  done
  R[testpmd_mac]+="$(testpmd_mac "$SECS" "$CORE") "
done
MHZ=$(cpu_mhz)
printf '%-40s %10s %9s %12s\n' "64-byte frames, 1 core, median of $RUNS" "Mpps" "ns/pkt" "cycles/pkt"
declare -A M
for n in "${names[@]}"; do
  M[$n]=$(tr ' ' '\n' <<<"${R[$n]}" | grep . | median)
  printf '%-40s %10.2f %9.2f %12.1f\n' "$n" "${M[$n]}" "$(echo "1000/${M[$n]}" | bc -l)" "$(echo "$MHZ/${M[$n]}" | bc -l)"
done
{
  echo '{'
  echo "  \"machine\": \"$(machine)\","
  echo "  \"cpu_mhz\": $MHZ,"
  echo "  \"date\": \"$(date -u +%FT%TZ)\","
  echo "  \"seconds\": $SECS, \"runs\": $RUNS,"
  for n in "${names[@]}"; do
    echo "  \"$n\": { \"median_mpps\": ${M[$n]}, \"runs_mpps\": [$(echo ${R[$n]} | tr ' ' ',')] },"
  done | sed '$ s/,$//'
  echo '}'
} >"$OUT"
echo "wrote $OUT"
