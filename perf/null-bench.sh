#!/usr/bin/env bash
# In-memory forwarding, side by side: `pollgate bench` against
# `dpdk-testpmd` on two net_null ports, one forwarding core each, same
# machine, same run. Prints both and writes perf/results/null-bench.json.
#
#   perf/null-bench.sh [seconds]      (needs: apt-get install dpdk-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
CORE=${CORE:-1}
OUT=perf/results/null-bench.json
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing: apt-get install dpdk-dev" >&2; exit 1; }
cargo build --release -q -p pollgate
PG=target/release/pollgate

testpmd() { # mode -> total Mpps over both ports
  local log; log=$(mktemp)
  # testpmd prints per-port Rx-pps every --stats-period; the forwarding
  # lcore is the second in -l, the first is testpmd's main thread.
  timeout -s INT $((SECS + 4)) dpdk-testpmd --no-huge --no-pci -m 1024 -l 0,"$CORE" \
    --vdev net_null0 --vdev net_null1 --log-level=error -- \
    --forward-mode="$1" --nb-cores=1 --burst=32 --total-num-mbufs=16384 \
    --stats-period "$SECS" >"$log" 2>&1 || true
  # The last complete period: sum the last two Rx-pps lines (one per port).
  grep -E '^\s*Rx-pps:' "$log" | tail -2 | awk '{s+=$2} END {printf "%.2f", s/1e6}'
  rm -f "$log"
}

declare -A PGR TPR
for mode in io mac; do
  PGR[$mode]=$($PG bench --seconds "$SECS" --core "$CORE" --forward "$mode" --json)
  TPR[$mode]=$(testpmd "$mode")
done
PARSE=$($PG bench --seconds "$SECS" --core "$CORE" --forward io --parse --json)
L2=$($PG bench --seconds "$SECS" --core "$CORE" --l2 --json)
VX=$($PG bench --seconds "$SECS" --core "$CORE" --vxlan --json)

mpps() { sed -E 's/.*"mpps_per_core":([0-9.]+).*/\1/' <<<"$1"; }
printf '%-22s %12s %12s\n' "64-byte, 1 core" "pollgate" "testpmd"
for mode in io mac; do
  printf '%-22s %9.2f Mpps %7.2f Mpps\n' "$mode forward" "$(mpps "${PGR[$mode]}")" "${TPR[$mode]}"
done
printf '%-22s %9.2f Mpps %12s\n' "io forward + parse" "$(mpps "$PARSE")" "-"
printf '%-22s %9.2f Mpps %7.2f Mpps (testpmd mac)\n' "l2 switch" "$(mpps "$L2")" "${TPR[mac]}"
port() { sed -E "s/.*\\[\"$2\",([0-9.]+)\\].*/\\1/" <<<"$1"; }
printf '%-22s %9.2f Mpps %7.2f Mpps (testpmd mac)  [encap %.2f + decap %.2f]\n' "vxlan encap+decap" "$(mpps "$VX")" "${TPR[mac]}" "$(port "$VX" null0)" "$(port "$VX" null1)"

{
  echo '{'
  echo "  \"machine\": \"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)\","
  echo "  \"date\": \"$(date -u +%FT%TZ)\","
  echo "  \"pollgate_io\": ${PGR[io]},"
  echo "  \"pollgate_mac\": ${PGR[mac]},"
  echo "  \"pollgate_io_parse\": $PARSE,"
  echo "  \"pollgate_l2_switch\": $L2,"
  echo "  \"pollgate_vxlan\": $VX,"
  echo "  \"testpmd_io_mpps\": ${TPR[io]},"
  echo "  \"testpmd_mac_mpps\": ${TPR[mac]}"
  echo '}'
} >"$OUT"
echo "wrote $OUT"
