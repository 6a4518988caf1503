#!/usr/bin/env bash
# Route lookup, pollgate's FIB against DPDK's rte_fib, on the same routes
# and the same addresses, one core each, same run. dpdk-test-fib makes the
# table (its own depth distribution) and writes it and its lookup
# addresses out (-w, -u); both then look those addresses up. rte_fib runs
# its default algorithms (dir24_8 for IPv4, trie for IPv6) with 4-byte
# next hops and tbl8 groups enough for the table, in hugepages (pollgate's
# tables too: its allocator takes reserved hugepages first); cycles are its rdtsc
# figure, pollgate's are ns x the clock /proc/cpuinfo reports, which is
# the TSC's rate here: the same unit (the core itself runs faster when it
# boosts; `pollgate cpu-clock` measures that).
#
#   perf/fib-bench.sh [LOOKUPS] [RUNS]   (default 2 000 000 addresses, 5 passes; 1 run)
#
# With RUNS > 1 each size's table is looked up RUNS times by each, in
# turn, and the medians are compared: on a noisy VM (an EPYC here) one
# pair of runs at 1 M routes moved the ratio from 0.76 to 0.89.
#
# Results: perf/results/fib-<date>.json and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
LOOKUPS=${1:-2000000}
RUNS=${2:-1}
CORE=${CORE:-1}
WORK=$(mktemp -d /tmp/pollgate-fib.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
command -v dpdk-test-fib >/dev/null || { echo "dpdk-test-fib missing: apt-get install dpdk-dev"; exit 1; }
cargo build --release -q -p pollgate
PG=target/release/pollgate
source perf/lib.sh
# Both in huge pages: pollgate's tables are 2 MiB-aligned blocks advised
# for transparent huge pages (its allocator); rte_fib gets EAL memory from
# 2 MiB hugepages reserved here. HUGE=0 runs rte_fib without them.
EAL=(-m 8000 -l "$CORE" --no-pci --log-level=lib.eal:error)
if [ "${HUGE:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
  was=$(cat /proc/sys/vm/nr_hugepages)
  echo 4200 >/proc/sys/vm/nr_hugepages
  # EAL finds them through a hugetlbfs mount of our own.
  mkdir -p "$WORK/huge"
  mount -t hugetlbfs -o pagesize=2M nodev "$WORK/huge"
  # --huge-unlink: EAL otherwise leaves its hugepage files behind, and
  # with them 4000 of the 4200 pages, so pollgate's tables, which take
  # reserved hugepages where there are any, would find none free.
  EAL+=(--huge-dir "$WORK/huge" --huge-unlink)
  trap 'umount "$WORK/huge"; rm -rf "$WORK"; echo "$was" >/proc/sys/vm/nr_hugepages' EXIT
  echo "hugepages for rte_fib: $(cat /proc/sys/vm/nr_hugepages) x 2 MiB"
else
  EAL=(--no-huge "${EAL[@]}")
fi
OUT=perf/results/fib-$(date +%Y%m%d-%H%M%S).json
mkdir -p perf/results
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | xargs) MHz"
printf '%-6s %-9s %-10s %-10s %-16s %-16s %-8s\n' family routes "build ms" "MiB" "pollgate cyc/lk" "rte_fib cyc/lk" ratio
echo "[" >"$OUT"
first=1
for spec in "4 1000" "4 100000" "4 1000000" "6 1000" "6 100000"; do
  set -- $spec
  fam=$1 n=$2
  v6=(); [ "$fam" = 6 ] && v6=(-6)
  groups=$((n < 100000 ? 100000 : n * 3 / 2)); [ "$fam" = 6 ] && groups=$((n * 10 < 100000 ? 100000 : n * 10))
  timeout 600 dpdk-test-fib "${EAL[@]}" -- "${v6[@]}" -n "$n" -l "$LOOKUPS" -g "$groups" -w "$WORK/routes" -u "$WORK/ips" >/dev/null 2>&1 || true
  ds="" ps="" j=""
  for ((r = 0; r < RUNS; r++)); do
    ds+="$(timeout 600 dpdk-test-fib "${EAL[@]}" -- "${v6[@]}" -f "$WORK/routes" -t "$WORK/ips" -g "$groups" 2>&1 | awk '/AVG FIB lookup/ {print $4}') "
    j=$(timeout 600 $PG fib bench --routes "$WORK/routes" --ips "$WORK/ips" --core "$CORE" --json)
    ps+="$(echo "$j" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["cycles_per_lookup"])') "
  done
  d=$(tr ' ' '\n' <<<"$ds" | grep . | median || true)
  p=$(tr ' ' '\n' <<<"$ps" | grep . | median)
  b=$(echo "$j" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["build_ms"])')
  m=$(echo "$j" | /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["memory_bytes"]/1048576,1))')
  ratio=$( [ -n "$d" ] && /usr/bin/python3 -c "print(round($d/$p,2))" || echo "-")
  printf '%-6s %-9s %-10s %-10s %-16s %-16s %-8s\n' "IPv$fam" "$n" "$b" "$m" "$p" "${d:--}" "$ratio"
  [ $first = 1 ] || echo "," >>"$OUT"
  first=0
  echo "{\"pollgate\":$j,\"rte_fib_cycles\":${d:-null},\"pollgate_cycles_runs\":[$(echo $ps | tr ' ' ',')],\"rte_fib_cycles_runs\":[$(echo $ds | tr ' ' ',')]}" >>"$OUT"
done
echo "]" >>"$OUT"
echo "medians of $RUNS; ratio: rte_fib cycles / pollgate cycles (above 1: pollgate is faster). $OUT"
