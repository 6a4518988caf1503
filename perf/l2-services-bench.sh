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

testpmd_mac() { # total Mpps over both ports, testpmd mac forward on net_null
  local log; log=$(mktemp)
  timeout -s INT $((SECS + 4)) dpdk-testpmd --no-huge --no-pci -m 1024 -l 0,"$CORE" \
    --vdev net_null0 --vdev net_null1 --log-level=error -- \
    --forward-mode=mac --nb-cores=1 --burst=32 --total-num-mbufs=16384 \
    --stats-period "$SECS" >"$log" 2>&1 || true
  grep -E '^\s*Rx-pps:' "$log" | tail -2 | awk '{s+=$2} END {printf "%.2f", s/1e6}'
  rm -f "$log"
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mpps() { sed -E 's/.*"mpps_per_core":([0-9.]+).*/\1/'; }

declare -A R
names=(access customer macvlan ipvlan testpmd_mac)
for ((i = 0; i < RUNS; i++)); do
  # Interleaved, so a drift of the machine's speed touches every path alike.
  R[access]+="$($PG bench --seconds "$SECS" --core "$CORE" --l2 --json 2>/dev/null | mpps) "
  for s in customer macvlan ipvlan; do
    R[$s]+="$($PG bench --seconds "$SECS" --core "$CORE" --service $s --json 2>/dev/null | mpps) "
  done
  R[testpmd_mac]+="$(testpmd_mac) "
done
MHZ=$(grep -m1 'cpu MHz' /proc/cpuinfo | awk '{print $4}')
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
