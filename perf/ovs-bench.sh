#!/usr/bin/env bash
# The L2 switch beside Open vSwitch with DPDK (NORMAL action) and testpmd,
# on the same frames: for N MAC pairs per port (default 1024, 8192 and
# 65536), `pollgate bench --write-pcaps` writes the two captures that
# `pollgate bench --l2 --macs N` replays from memory (a shuffled order,
# so lookups miss the caches); testpmd io and mac forward and OVS-DPDK
# replay them through net_pcap ports with infinite_rx (the PMD-bound
# ceiling of that replay is testpmd io's figure). One forwarding core
# each (core CORE), SECS seconds, one run each. OVS runs from its own
# directory (ovsdb-server and ovs-vswitchd-dpdk started by hand, a netdev
# bridge, mac-table-size raised), on 2 MB hugepages. Writes
# perf/results/ovs-bench.json and an SVG of it (perf/bars_svg.py).
#
#   perf/ovs-bench.sh [seconds] [N…]   (root; apt-get install dpdk-dev openvswitch-switch-dpdk)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1024 8192 65536)
CORE=${CORE:-1}
OUT=perf/results/ovs-bench.json
OVS_BIN=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
for need in dpdk-testpmd "$OVS_BIN" ovsdb-server ovs-vsctl ovs-appctl; do
  command -v "$need" >/dev/null || [ -x "$need" ] || { echo "$need missing: apt-get install dpdk-dev openvswitch-switch-dpdk" >&2; exit 1; }
done
source perf/lib.sh
cargo build --release -q -p pollgate
PG=target/release/pollgate
W=$(mktemp -d)
DB=unix:$W/db.sock
HUGE_WAS=$(cat /proc/sys/vm/nr_hugepages)
cleanup() {
  for p in "$W"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  sleep 1
  rm -rf "$W"
  # 3 GiB held back from everything else, pollgate's THP tables too.
  echo "$HUGE_WAS" >/proc/sys/vm/nr_hugepages
}
trap cleanup EXIT
[ "$HUGE_WAS" -ge 1536 ] || echo 1536 >/proc/sys/vm/nr_hugepages

testpmd_pcap() { # MODE F0 F1 -> Mpps over both ports
  local log; log=$(mktemp)
  timeout -s INT $((SECS + 6)) dpdk-testpmd --no-huge --no-pci -m 2048 -l 0,"$CORE" \
    --vdev "net_pcap0,rx_pcap=$2,infinite_rx=1" --vdev "net_pcap1,rx_pcap=$3,infinite_rx=1" \
    --log-level=error -- --forward-mode="$1" --nb-cores=1 --burst=32 --total-num-mbufs=262144 \
    --stats-period "$SECS" >"$log" 2>&1 || true
  grep -E '^\s*Rx-pps:' "$log" | tail -2 | awk '{s+=$2} END {printf "%.2f", s/1e6}'
  rm -f "$log"
}

# OVS-DPDK, from its own directory, its PMD thread on CORE; started for
# each measurement and stopped after it, so that its busy PMD thread is
# not on the core while the others are measured.
export OVS_RUNDIR=$W OVS_LOGDIR=$W OVS_DBDIR=$W
# Bounded: a vswitchd that died in DPDK init would leave ovs-vsctl waiting.
vs() { ovs-vsctl --timeout=30 --db="$DB" "$@"; }
ovs_start() {
  rm -f "$W/conf.db"
  ovsdb-tool create "$W/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server "$W/conf.db" --remote="punix:$W/db.sock" --pidfile="$W/ovsdb.pid" --detach --no-chdir --log-file="$W/ovsdb.log"
  vs --no-wait init
  vs --no-wait set Open_vSwitch . other_config:dpdk-init=true other_config:dpdk-lcore-mask=0x1 \
    other_config:pmd-cpu-mask=$((1 << CORE)) other_config:dpdk-socket-mem=1024 other_config:dpdk-extra="--no-pci"
  "$OVS_BIN" "$DB" --pidfile="$W/vswitchd.pid" --detach --no-chdir --log-file="$W/vswitchd.log"
  vs add-br br0 -- set bridge br0 datapath_type=netdev other_config:mac-table-size=4000000 other_config:mac-aging-time=3600
}
ovs_stop() {
  for p in "$W/vswitchd.pid" "$W/ovsdb.pid"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  for _ in $(seq 50); do pgrep -f "$OVS_BIN $DB" >/dev/null || break; sleep 0.1; done
  rm -f "$W"/*.pid "$W"/*.ctl
}
appctl() { timeout 30 ovs-appctl -t "$(ls "$W"/ovs-vswitchd-dpdk.*.ctl)" "$@"; }
# Packets p0 and p1 sent: what OVS forwarded (its PMD's "packets
# received" counts what came in, forwarded or not).
ovs_tx() {
  appctl dpctl/show -s | awk '/port [0-9]+: p[01] /{on=1; next} /port [0-9]+:/{on=0}
    on && /TX packets:/ {split($2, a, ":"); s += a[2]} END {printf "%d\n", s}'
}
ovs_normal() { # F0 F1 -> "Mpps cycles/pkt" (Mpps forwarded, both ports)
  ovs_start >/dev/null
  vs add-port br0 p0 -- set Interface p0 type=dpdk "options:dpdk-devargs=net_pcap0,rx_pcap=$1,infinite_rx=1" \
     -- add-port br0 p1 -- set Interface p1 type=dpdk "options:dpdk-devargs=net_pcap1,rx_pcap=$2,infinite_rx=1"
  sleep 2 # learning
  appctl dpif-netdev/pmd-stats-clear >/dev/null
  local t0 t1 cyc
  t0=$(ovs_tx)
  sleep "$SECS"
  t1=$(ovs_tx)
  cyc=$(appctl dpif-netdev/pmd-stats-show | awk '
    /core_id/ {pmd=1} pmd && /avg processing cycles per packet:/ {c=$6; pmd=0} END {print c + 0}')
  ovs_stop
  # No ports or no counters read is a failed measurement, not 0 Mpps.
  [ "$t1" -gt "$t0" ] || { echo "OVS forwarded nothing (tx $t0 -> $t1): see $W/vswitchd.log" >&2; exit 1; }
  echo "$(echo "($t1 - $t0) / $SECS / 1000000" | bc -l | xargs printf '%.2f') $cyc"
}

MHZ=$(cpu_mhz)
TSC=$(tsc_mhz)
echo "$(machine), ${MHZ} MHz; 64-byte frames, one forwarding core, ${SECS} s each"
printf '%-12s %14s %14s %14s %22s %18s\n' "MAC pairs" "testpmd io" "testpmd mac" "OVS NORMAL" "OVS cycles/pkt" "pollgate l2"
json=""
for n in "${SIZES[@]}"; do
  d=$W/pcap$n
  $PG bench --write-pcaps "$d" --macs "$n" >/dev/null
  io=$(testpmd_pcap io "$d/mix0.pcap" "$d/mix1.pcap")
  mac=$(testpmd_pcap mac "$d/mix0.pcap" "$d/mix1.pcap")
  pg=$($PG bench --seconds "$SECS" --core "$CORE" --l2 --macs "$n" --json 2>/dev/null | json_mpps | xargs printf '%.2f')
  read -r ovs ovs_tsc < <(ovs_normal "$d/mix0.pcap" "$d/mix1.pcap") || true
  # OVS counts rdtsc cycles; pollgate's are the core's measured clock's.
  ovs_cyc=$(echo "${ovs_tsc:-0} * $MHZ / $TSC" | bc -l | xargs printf '%.0f')
  [ -n "${ovs:-}" ] || { echo "no OVS figure for $n MAC pairs" >&2; exit 1; }
  printf '%-12s %14s %14s %14s %22s %18s\n' "$n" "$io Mpps" "$mac Mpps" "$ovs Mpps" "$ovs_cyc" \
    "$pg Mpps ($(echo "$MHZ/$pg" | bc -l | xargs printf '%.0f') cyc)"
  json+="  \"$n\": {\"testpmd_io_pcap_mpps\": $io, \"testpmd_mac_pcap_mpps\": $mac, \"ovs_normal_mpps\": $ovs, \"ovs_cycles_per_packet\": $ovs_cyc, \"pollgate_l2_mpps\": $pg, \"pollgate_cycles_per_packet\": $(echo "$MHZ/$pg" | bc -l | xargs printf '%.1f')},"$'\n'
done
{
  echo '{'
  echo "  \"machine\": \"$(machine)\", \"cpu_mhz\": $MHZ, \"date\": \"$(date -u +%FT%TZ)\", \"seconds\": $SECS,"
  echo "  \"ovs\": \"$("$OVS_BIN" --version | head -1)\", \"testpmd\": \"DPDK $(dpkg-query -W -f '${Version}' dpdk-dev 2>/dev/null || echo unknown)\","
  printf '%s' "$json" | sed '$ s/,$//'
  echo '}'
} >"$OUT"
/usr/bin/python3 perf/bars_svg.py "$OUT" "${OUT%.json}.svg" \
  "Same frames, one core each: $(machine), ${MHZ} MHz" \
  testpmd_io_pcap_mpps="testpmd io (pcap)" testpmd_mac_pcap_mpps="testpmd mac (pcap)" \
  ovs_normal_mpps="OVS-DPDK NORMAL" pollgate_l2_mpps="pollgate l2"
echo "wrote $OUT and ${OUT%.json}.svg"
