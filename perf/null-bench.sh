#!/usr/bin/env bash
# In-memory forwarding, side by side: `pollgate bench` against
# `dpdk-testpmd` on two net_null ports, one forwarding core each, same
# machine, same run. RUNS rounds, each running every mode once in turn
# (pollgate and testpmd interleaved), and the median of each: in these
# VMs one 3-second run of the same binary moves by up to 1.6× from the
# next (seen on an EPYC, 46 to 78 Mpps for pollgate io with identical
# profiles), so one run each is a coin toss, not a ratio. Prints Mpps,
# ns and cycles per packet (ns × the core's clock as `pollgate cpu-clock`
# measures it) and
# writes perf/results/null-bench.json.
#
#   perf/null-bench.sh [seconds] [runs]      (needs: apt-get install dpdk-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
RUNS=${2:-1}
CORE=${CORE:-1}
OUT=perf/results/null-bench.json
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing: apt-get install dpdk-dev" >&2; exit 1; }
source perf/lib.sh
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

declare -A ARGS=(
  [io]="--forward io" [mac]="--forward mac" [io_parse]="--forward io --parse"
  [l2_switch]="--l2" [vxlan]="--vxlan"
)
PGKEYS=(io mac io_parse l2_switch vxlan)
declare -A R J
for ((i = 0; i < RUNS; i++)); do
  for k in "${PGKEYS[@]}"; do
    # shellcheck disable=SC2086
    j=$($PG bench --seconds "$SECS" --core "$CORE" ${ARGS[$k]} --json 2>/dev/null)
    R[$k]+="$(json_mpps <<<"$j") "
    J[$k]+="$j"$'\n'
    case $k in io | mac) R[testpmd_$k]+="$(testpmd "$k") " ;; esac
  done
done

declare -A M
for k in "${PGKEYS[@]}" testpmd_io testpmd_mac; do
  M[$k]=$(tr ' ' '\n' <<<"${R[$k]}" | grep . | median)
done
# The JSON of the run whose rate is the median, for its port split.
median_json() { grep -F "\"mpps_per_core\":${M[$1]}," <<<"${J[$1]}" | head -1; }
port() { sed -E "s/.*\\[\"$2\",([0-9.]+)\\].*/\\1/" <<<"$1"; }
MHZ=$(cpu_mhz)
echo "$(machine), ${MHZ} MHz"
row() { # label key peer-key
  local m=${M[$2]} peer="" ratio=""
  if [ -n "${3:-}" ]; then
    peer=$(printf '%.2f' "${M[$3]}")
    ratio=$(printf '%.2fx' "$(echo "$m/${M[$3]}" | bc -l)")
  fi
  printf '%-24s %9.2f %8.2f %8.1f %10s %8s   runs: %s\n' "$1" "$m" "$(echo "1000/$m" | bc -l)" \
    "$(echo "$MHZ/$m" | bc -l)" "$peer" "$ratio" "$(printf '%.2f ' ${R[$2]})"
}
printf '%-24s %9s %8s %8s %10s %8s\n' "64 B, 1 core, median/$RUNS" "Mpps" "ns/pkt" "cyc/pkt" "testpmd" "ratio"
row "io forward" io testpmd_io
row "mac forward" mac testpmd_mac
row "io forward + parse" io_parse
row "l2 switch (vs mac)" l2_switch testpmd_mac
row "vxlan encap+decap" vxlan
VX=$(median_json vxlan)
echo "vxlan split: encap $(port "$VX" null0) + decap $(port "$VX" null1) Mpps"
row "testpmd io" testpmd_io
row "testpmd mac" testpmd_mac

{
  echo '{'
  echo "  \"machine\": \"$(machine)\", \"cpu_mhz\": $MHZ, \"date\": \"$(date -u +%FT%TZ)\","
  echo "  \"seconds\": $SECS, \"runs\": $RUNS,"
  for k in "${PGKEYS[@]}"; do
    echo "  \"pollgate_$k\": { \"median_mpps\": ${M[$k]}, \"runs_mpps\": [$(echo ${R[$k]} | tr ' ' ',')], \"median_run\": $(median_json "$k") },"
  done
  for k in io mac; do
    echo "  \"testpmd_${k}\": { \"median_mpps\": ${M[testpmd_$k]}, \"runs_mpps\": [$(echo ${R[testpmd_$k]} | tr ' ' ',')] },"
  done | sed '$ s/,$//'
  echo '}'
} >"$OUT"
echo "wrote $OUT"
