#!/usr/bin/env bash
# ACL classification, pollgate against DPDK's rte_acl, on the same
# ClassBench-format rules and trace, one core each, same run.
#
#   perf/acl-bench.sh [ITERS]         (default 50 passes over the trace)
#   SETS=classbench perf/acl-bench.sh [ITERS]
#
# Rules and traces come from perf/classbench_gen.py (100, 1 000 and 10 000
# rules; 100 000 headers each), or with SETS=classbench from ClassBench's
# own generator: acl1, fw1 and ipc1 at 1 K and 10 K rules with their
# traces (../shared/classbench, or CLASSBENCH=DIR). rte_acl runs twice: with the SIMD path
# test-acl picks by default (AVX-512 on the Xeon, AVX2 on the EPYC) and
# with --alg=scalar. Results
# land in perf/results/acl-<date>.json and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-50}
CORE=${CORE:-1}
WORK=$(mktemp -d /tmp/pollgate-acl.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
command -v dpdk-test-acl >/dev/null || { echo "dpdk-test-acl missing: apt-get install dpdk-dev"; exit 1; }
cargo build --release -q -p pollgate
PG=target/release/pollgate
OUT=perf/results/acl-$(date +%Y%m%d-%H%M%S).json
mkdir -p perf/results
printf '%-9s %-12s %-10s %-9s %-14s %-14s %-14s %-14s\n' rules classifier "build ms" "MiB" "pollgate Mpps" "rte_acl Mpps" "rte_acl scalar" "1-rule edit us"
echo "[" > "$OUT"
first=1
CB=${CLASSBENCH:-../shared/classbench}
if [ "${SETS:-generated}" = classbench ]; then
  [ -d "$CB" ] || { echo "no ClassBench sets in $CB (set CLASSBENCH=DIR)" >&2; exit 1; }
  NAMES=(acl1_1k acl1_10k fw1_1k fw1_10k ipc1_1k ipc1_10k)
else
  NAMES=(100 1000 10000)
fi
for n in "${NAMES[@]}"; do
  if [ "${SETS:-generated}" = classbench ]; then
    cp "$CB/$n.rules" "$WORK/r$n"
    zcat "$CB/$n.trace.gz" >"$WORK/t$n"
  else
    /usr/bin/python3 perf/classbench_gen.py "$WORK/r$n" "$n" "$WORK/t$n" 100000 7
  fi
  pj=$(timeout 600 $PG acl bench --rules "$WORK/r$n" --trace "$WORK/t$n" --iters "$ITERS" --core "$CORE" --json)
  dpdk() {
    # rte_acl's build of the 10 K firewall sets needs more than EAL's
    # default memory; a build that still fails reports no rate (null).
    { timeout 600 dpdk-test-acl --no-huge --no-pci -m 4096 -l "$CORE" --log-level=1 -- \
      --rulesf="$WORK/r$n" --tracef="$WORK/t$n" --tracenum="$(wc -l <"$WORK/t$n")" \
      --iter="$ITERS" --verbose=0 "$@" 2>&1 || true; } |
      sed -n 's/.* \([0-9.]*\) pkt\/sec.*/\1/p' | awk '{printf "%.2f", $1/1e6}'
  }
  d_def=$(dpdk)
  d_sc=$(dpdk --alg=scalar)
  mpps=$(echo "$pj" | sed -n 's/.*"mpps":\([0-9.]*\).*/\1/p')
  build=$(echo "$pj" | sed -n 's/.*"build_ms":\([0-9.]*\).*/\1/p')
  mem=$(echo "$pj" | sed -n 's/.*"memory_bytes":\([0-9]*\).*/\1/p')
  kind=$(echo "$pj" | sed -n 's/.*"classifier":"\([^"]*\)".*/\1/p')
  # One rule added or deleted live, median/max (before the background compile).
  upd=$(echo "$pj" | sed -n 's/.*"update_us_median":\([0-9.]*\),"update_us_max":\([0-9.]*\).*/\1\/\2/p')
  printf '%-9s %-12s %-10s %-9.1f %-14s %-14s %-14s %-14s\n' "$n" "$kind" "$build" "$(echo "$mem/1048576" | bc -l)" "$mpps" "$d_def" "$d_sc" "$upd"
  [ $first = 1 ] || echo "," >> "$OUT"
  first=0
  echo "{\"rules\":\"$n\",\"pollgate\":$pj,\"rte_acl_default_mpps\":${d_def:-null},\"rte_acl_scalar_mpps\":${d_sc:-null}}" >> "$OUT"
done
echo "]" >> "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "wrote $OUT"
