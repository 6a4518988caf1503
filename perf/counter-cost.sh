#!/usr/bin/env bash
# What the worker telemetry costs: `pollgate bench` (L2 switch and io
# cross-connect, null ports, one core) from the normal build against a
# build with `--features no-telemetry` (no burst-size or burst-time
# histograms, no busy/idle poll counts), alternating, ROUNDS rounds.
#
#   perf/counter-cost.sh [SECONDS] [ROUNDS]
#
# Port counters (per burst) and drop counters (per drop, published once
# per busy loop) stay in both builds: they are what `show stats` is.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
ROUNDS=${2:-3}
CORE=${CORE:-1}
cargo build --release -q -p pollgate
cargo build --release -q -p pollgate --features no-telemetry --target-dir target/no-telemetry
ON=target/release/pollgate
OFF=target/no-telemetry/release/pollgate
mpps() { RUST_LOG=warn "$1" bench --seconds "$SECS" --core "$CORE" --json "${@:2}" | sed -n 's/.*"mpps_per_core":\([0-9.]*\).*/\1/p' | awk '{printf "%.2f", $1}'; }
OUT=perf/results/counter-cost.json
echo "[" > "$OUT"
first=1
for mode in "--l2" "--parse"; do
  on=(); off=()
  for _ in $(seq "$ROUNDS"); do
    off+=("$(mpps $OFF $mode)")
    on+=("$(mpps $ON $mode)")
  done
  avg() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.2f", s/NR}'; }
  a_on=$(avg "${on[@]}"); a_off=$(avg "${off[@]}")
  cost=$(awk -v a="$a_on" -v b="$a_off" 'BEGIN {printf "%.1f", 100*(b-a)/b}')
  echo "bench $mode: telemetry on ${on[*]} (mean $a_on) | off ${off[*]} (mean $a_off) Mpps -> cost $cost %"
  [ $first = 1 ] || echo "," >> "$OUT"
  first=0
  echo "{\"mode\":\"$mode\",\"on_mpps\":[$(IFS=,; echo "${on[*]}")],\"off_mpps\":[$(IFS=,; echo "${off[*]}")],\"cost_pct\":$cost}" >> "$OUT"
done
echo "]" >> "$OUT"
echo "wrote $OUT"
