#!/usr/bin/env bash
# How much of a large table's lookup cost is address translation on this
# machine. dpdk-test-fib makes a 1 M-route IPv4 table; `pollgate fib
# bench` then looks up two sets of 8 192 addresses, each in a distinct
# 64-byte line of the 64 MiB tbl24: "spread", one line in each of 8 192
# distinct 4 KiB pages of it, and "dense", every line of one 512 KiB
# stretch. Both sets are 512 KiB of lines, so both fit in L2: what
# differs is the number of pages they touch (8 192 against 128 at 4 KiB,
# 32 against 1 at 2 MiB). Where 2 MiB pages reach the TLB
# as 2 MiB (bare metal, or a VM whose host backs it with huge pages) the
# two cost about the same; where the host maps the guest in 4 KiB pages,
# "spread" pays a nested page walk per lookup even with the table in
# the guest's huge pages. The addresses' tbl8 groups differ between the
# sets, so compare the sets' ratio between machines, not single figures.
#
#   perf/tlb-reach.sh [runs]      (needs: apt-get install dpdk-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
CORE=${CORE:-1}
command -v dpdk-test-fib >/dev/null || { echo "dpdk-test-fib missing: apt-get install dpdk-dev" >&2; exit 1; }
cargo build --release -q -p pollgate
PG=target/release/pollgate
WORK=$(mktemp -d /tmp/pollgate-tlb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
timeout 600 dpdk-test-fib --no-huge -m 4000 -l "$CORE" --no-pci --log-level=lib.eal:error -- \
  -n 1000000 -l 1000 -g 1500000 -w "$WORK/routes" -u "$WORK/ips" >"$WORK/log" 2>&1 || true
[ -s "$WORK/routes" ] || { cat "$WORK/log" >&2; echo "dpdk-test-fib wrote no route table" >&2; exit 1; }
/usr/bin/python3 - "$WORK" <<'EOF'
import random, sys
work = sys.argv[1]
rng = random.Random(2)
def ip(v): return "%d.%d.%d.%d" % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)
# tbl24 entries are 4 bytes, 16 to a line (line k: entries 16k..16k+15)
# and 1 024 to a 4 KiB page (64 lines).
spread = [((((p * 64 + rng.randrange(64)) * 16) + rng.randrange(16)) << 8) | rng.randrange(256)
          for p in rng.sample(range(1 << 14), 8192)]
# 128 Ki entries (512 KiB) from entry 56 << 17: 28 MiB into the table,
# on a 2 MiB boundary, so the stretch lies in one huge page.
base = 56 << 17
dense = [((base + l * 16 + rng.randrange(16)) << 8) | rng.randrange(256) for l in range(8192)]
rng.shuffle(dense)
for name, vals in (("spread", spread), ("dense", dense)):
    with open(f"{work}/{name}", "w") as f:
        f.writelines(ip(v) + "\n" for v in vals)
EOF
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | xargs) MHz; THP $(grep -o '\[[a-z]*\]' /sys/kernel/mm/transparent_hugepage/enabled), $(cat /proc/sys/vm/nr_hugepages) hugepages reserved"
for ((i = 0; i < RUNS; i++)); do
  for addrs in spread dense; do
    c=$(timeout 600 $PG fib bench --routes "$WORK/routes" --ips "$WORK/$addrs" --core "$CORE" --iters 20000 --verify 200 --json |
      /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["cycles_per_lookup"])')
    printf '%-7s %6s cycles per lookup\n' "$addrs" "$c"
  done
done
echo "(the tbl24 takes reserved 2 MiB pages where there are 32 free, THP after; HugePages_Free now: $(awk '/HugePages_Free/ {print $2}' /proc/meminfo))"
