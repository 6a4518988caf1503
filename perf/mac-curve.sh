#!/usr/bin/env bash
# The cost curves in memory against the number of MAC pairs (and flows):
# the L2 switch (`pollgate bench --l2 --macs N`) and the whole gateway
# (`pollgate bench --gateway --macs N --flows N --acl RULES`: VXLAN decap
# and encap, a VLAN trunk, a ClassBench ingress ACL, the bridge) for N =
# 1, 1 K, 64 K and 1 M per port; the gateway against the flows alone at
# 64 K MACs, and at the issue's point (1 M MACs, 64 K flows). Replayed in
# a shuffled order so that lookups miss the caches, beside testpmd mac
# forward on net_null, one core each, interleaved, the median of RUNS
# runs of SECS seconds; cycles per packet are ns x the core's clock as
# `pollgate cpu-clock` measures it. Writes perf/results/mac-curve.json.
#
#   perf/mac-curve.sh [seconds] [runs]      (needs: apt-get install dpdk-dev)
#   ACL=FILE picks the gateway's rule set (default: ClassBench acl1 1K)
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
ACL=${ACL:-../shared/classbench/acl1_1k.rules}
[ -f "$ACL" ] || { echo "no ClassBench rule file at $ACL (set ACL=FILE)" >&2; exit 1; }
RULES=$(grep -c . "$ACL")
declare -A R
for ((i = 0; i < RUNS; i++)); do
  for n in "${SIZES[@]}"; do
    R[$n]+="$($PG bench --seconds "$SECS" --core "$CORE" --l2 --macs "$n" --json 2>/dev/null | json_mpps) "
    R[gw$n]+="$($PG bench --seconds "$SECS" --core "$CORE" --gateway --acl "$ACL" --macs "$n" --flows "$n" --json 2>/dev/null | json_mpps) "
    # The flows axis on its own, at 64 K MACs (64 K flows is gw65536).
    [ "$n" = 65536 ] || R[fl$n]+="$($PG bench --seconds "$SECS" --core "$CORE" --gateway --acl "$ACL" --macs 65536 --flows "$n" --json 2>/dev/null | json_mpps) "
  done
  # The issue's goal point: 1 M MACs, 64 K flows.
  R[goal]+="$($PG bench --seconds "$SECS" --core "$CORE" --gateway --acl "$ACL" --macs 1048576 --flows 65536 --json 2>/dev/null | json_mpps) "
  R[testpmd]+="$(testpmd_mac "$SECS" "$CORE") "
done
MHZ=$(cpu_mhz)
KEYS=("${SIZES[@]}" $(printf 'gw%s ' "${SIZES[@]}") fl1 fl1024 fl1048576 goal testpmd)
echo "$(machine), ${MHZ} MHz"
printf '%-52s %10s %9s %12s\n' "64-byte frames, 1 core, median of $RUNS" "Mpps" "ns/pkt" "cycles/pkt"
declare -A M
for n in "${KEYS[@]}"; do
  M[$n]=$(tr ' ' '\n' <<<"${R[$n]}" | grep . | median)
  case $n in
    testpmd) label="testpmd mac forward (net_null)" ;;
    gw*) label="gateway + ACL ($RULES rules), ${n#gw} MACs and flows" ;;
    fl*) label="gateway + ACL, 64 K MACs, ${n#fl} flows" ;;
    goal) label="gateway + ACL, 1 M MACs, 64 K flows" ;;
    *) label="l2 switch, $n MAC pairs per port" ;;
  esac
  printf '%-52s %10.2f %9.2f %12.1f\n' "$label" "${M[$n]}" "$(echo "1000/${M[$n]}" | bc -l)" "$(echo "$MHZ/${M[$n]}" | bc -l)"
done
{
  echo '{'
  echo "  \"machine\": \"$(machine)\", \"cpu_mhz\": $MHZ, \"date\": \"$(date -u +%FT%TZ)\","
  echo "  \"seconds\": $SECS, \"runs\": $RUNS,"
  echo "  \"gateway_acl\": \"$ACL\", \"gateway_acl_rules\": $RULES,"
  for n in "${KEYS[@]}"; do
    echo "  \"$n\": { \"median_mpps\": ${M[$n]}, \"runs_mpps\": [$(echo ${R[$n]} | tr ' ' ',')] },"
  done | sed '$ s/,$//'
  echo '}'
} >"$OUT"
echo "wrote $OUT"
