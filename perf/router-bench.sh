#!/usr/bin/env bash
# The routed pipeline in memory: IPv4 between two gateway interfaces
# (`pollgate bench --routes N`: FIB lookup, TTL and checksum, neighbour
# and MAC rewrite, the bridge's output port) with the least table (`--routes
# 1`: a /1 towards each side, two routes) and 1 M routes
# (dpdk-test-fib's depth distribution), each side replaying FLOWS distinct
# destinations in random order, beside the L2 switch and testpmd mac
# forward on net_null, one core each, interleaved, the median of RUNS
# runs of SECS seconds; and the router with masquerade (`--nat`), 1 K
# and 1 M sessions, replies coming back through NAT, and the rate the
# million sessions are made at. Cycles per packet are ns x the core's
# clock as `pollgate cpu-clock` measures it. Writes perf/results/router.json.
#
#   perf/router-bench.sh [seconds] [runs]    (needs: apt-get install dpdk-dev)
#   FLOWS=N destinations per side (default 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
RUNS=${2:-3}
CORE=${CORE:-1}
FLOWS=${FLOWS:-4096}
OUT=perf/results/router.json
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing: apt-get install dpdk-dev" >&2; exit 1; }
source perf/lib.sh
cargo build --release -q -p pollgate
PG=target/release/pollgate
declare -A R
SETUP=""
for ((i = 0; i < RUNS; i++)); do
  R[l2]+="$($PG bench --seconds "$SECS" --core "$CORE" --l2 --json 2>/dev/null | json_mpps) "
  for n in 1 1000000; do
    R[r$n]+="$($PG bench --seconds "$SECS" --core "$CORE" --routes "$n" --flows "$FLOWS" --json 2>/dev/null | json_mpps) "
  done
  for n in 1000 1000000; do
    j=$($PG bench --seconds "$SECS" --core "$CORE" --routes 1 --nat --flows "$n" --json 2>/dev/null)
    R[nat$n]+="$(json_mpps <<<"$j") "
    # New sessions per second while the first pass makes the million.
    [ "$n" = 1000000 ] && SETUP+="$(sed -E 's/.*"nat_sessions_per_second":([0-9.e+]+).*/\1/' <<<"$j") "
  done
  R[testpmd]+="$(testpmd_mac "$SECS" "$CORE") "
done
MHZ=$(cpu_mhz)
KEYS=(r1 r1000000 nat1000 nat1000000 l2 testpmd)
echo "$(machine), ${MHZ} MHz"
printf '%-56s %10s %9s %12s %10s\n' "64-byte frames, 1 core, median of $RUNS" "Mpps" "ns/pkt" "cycles/pkt" "x testpmd"
declare -A M
for n in "${KEYS[@]}"; do
  M[$n]=$(tr ' ' '\n' <<<"${R[$n]}" | grep . | median)
done
for n in "${KEYS[@]}"; do
  case $n in
    testpmd) label="testpmd mac forward (net_null)" ;;
    l2) label="l2 switch, one MAC pair" ;;
    r1) label="router, 2 routes (a /1 each way), $FLOWS dests a side" ;;
    r*) label="router, ${n#r} routes, $FLOWS destinations per side" ;;
    nat*) label="router + masquerade, ${n#nat} sessions, both ways" ;;
  esac
  printf '%-56s %10.2f %9.2f %12.1f %10.2f\n' "$label" "${M[$n]}" "$(echo "1000/${M[$n]}" | bc -l)" \
    "$(echo "$MHZ/${M[$n]}" | bc -l)" "$(echo "${M[$n]}/${M[testpmd]}" | bc -l)"
done
{
  echo '{'
  echo "  \"machine\": \"$(machine)\", \"cpu_mhz\": $MHZ, \"date\": \"$(date -u +%FT%TZ)\","
  echo "  \"seconds\": $SECS, \"runs\": $RUNS, \"flows\": $FLOWS,"
  echo "  \"nat_new_sessions_per_second_runs\": [$(echo $SETUP | tr ' ' ',')],"
  for n in "${KEYS[@]}"; do
    echo "  \"$n\": { \"median_mpps\": ${M[$n]}, \"runs_mpps\": [$(echo ${R[$n]} | tr ' ' ',')] },"
  done | sed '$ s/,$//'
  echo '}'
} >"$OUT"
echo "new NAT sessions per second (1 M sessions made, replies running): $SETUP"
echo "wrote $OUT"
