#!/usr/bin/env bash
# The L2 switch and the whole gateway beside Open vSwitch with DPDK
# (NORMAL action) and testpmd, on the same frames. For N MAC pairs per
# port (default 1024, 8192 and 65536):
# - L2: `pollgate bench --write-pcaps` writes the two captures that
#   `pollgate bench --l2 --macs N` replays from memory (a shuffled order,
#   so lookups miss the caches); testpmd io and mac forward and OVS-DPDK
#   replay them through net_pcap ports with infinite_rx (the PMD-bound
#   ceiling of that replay is testpmd io's figure).
# - Gateway: `--gateway --write-pcaps` writes what `pollgate bench
#   --gateway --macs N --flows N` replays: VXLAN (VNI 5000) from a remote
#   VTEP on the underlay port, 802.1Q (VID 10) on the trunk. pollgate
#   runs it with a ClassBench ingress ACL on both ports (ACL=FILE,
#   default acl1 1K); OVS runs it without one, so its figure is an upper
#   bound of what it would do with the same ACL: userspace VXLAN (a
#   netdev bridge pgphy holding the underlay port and the local VTEP
#   address, tunnel ARP set; pgint holding the trunk and the VXLAN port
#   as VLAN 10's access port), NORMAL on both bridges. testpmd io gives
#   the PMD ceiling of that replay.
# One forwarding core each (core CORE), SECS seconds, one run each. OVS
# runs from its own directory (ovsdb-server and ovs-vswitchd-dpdk started
# by hand, netdev bridges, mac-table-size raised), on 2 MB hugepages; its
# pgphy is a tap in this namespace holding 198.18.100.1/24 while it
# runs. Writes perf/results/ovs-bench.json and an SVG of it
# (perf/bars_svg.py).
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
ACL=${ACL:-../shared/classbench/acl1_1k.rules}
[ -f "$ACL" ] || { echo "no ClassBench rule file at $ACL (set ACL=FILE)" >&2; exit 1; }
RULES=$(grep -c . "$ACL")
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
  # A run cut short leaves the gateway bridges' taps (and pgphy's
  # address and route) behind the killed vswitchd.
  for b in pgphy pgint; do ip link del "$b" 2>/dev/null || true; done
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
}
# A netdev bridge whose MAC table holds a million pairs and ages nothing
# out while measured.
add_bridge() { # NAME [ovs-vsctl settings…]
  local b=$1
  shift
  vs add-br "$b" -- set bridge "$b" datapath_type=netdev other_config:mac-table-size=4000000 \
    other_config:mac-aging-time=3600 "$@"
}
dpdk_pcap_port() { # BRIDGE PORT N FILE [ovs-vsctl settings…]: a net_pcapN port replaying FILE
  vs add-port "$1" "$2" "${@:5}" -- set Interface "$2" type=dpdk \
    "options:dpdk-devargs=net_pcap$3,rx_pcap=$4,infinite_rx=1"
}
ovs_stop() {
  for p in "$W/vswitchd.pid" "$W/ovsdb.pid"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  for _ in $(seq 50); do pgrep -f "$OVS_BIN $DB" >/dev/null || break; sleep 0.1; done
  rm -f "$W"/*.pid "$W"/*.ctl
  # A netdev bridge's tap outlives a vswitchd that was killed.
  for b in pgphy pgint; do ip link del "$b" 2>/dev/null || true; done
}
appctl() { timeout 30 ovs-appctl -t "$(ls "$W"/ovs-vswitchd-dpdk.*.ctl)" "$@"; }
# Packets p0 and p1 sent: what OVS forwarded (its PMD's "packets
# received" counts what came in, forwarded or not).
ovs_tx() {
  appctl dpctl/show -s | awk '/port [0-9]+: p[01] /{on=1; next} /port [0-9]+:/{on=0}
    on && /TX packets:/ {split($2, a, ":"); s += a[2]} END {printf "%d\n", s}'
}
# What OVS forwards over SECS seconds once it has learnt: "Mpps cycles/pkt"
# (Mpps sent on p0 and p1, rdtsc cycles its PMD spent a packet); stops OVS.
ovs_measure() {
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
ovs_normal() { # F0 F1 -> "Mpps cycles/pkt": one bridge, both ports
  ovs_start >/dev/null
  add_bridge br0
  dpdk_pcap_port br0 p0 0 "$1"
  dpdk_pcap_port br0 p1 1 "$2"
  ovs_measure
}
# pollgate bench --gateway's VTEP, as OVS's userspace tunnelling builds
# one: the underlay's frames reach pgphy's own MAC and address and are
# decapsulated (tnl_pop); pgint bridges VLAN 10 on the trunk to the VXLAN
# port; what goes back is encapsulated (tnl_push) towards the remote VTEP,
# whose MAC is set in the tunnel ARP table rather than resolved.
ovs_gateway() { # F0 F1 -> "Mpps cycles/pkt"
  ovs_start >/dev/null
  add_bridge pgphy other_config:hwaddr=02:00:00:00:00:01
  dpdk_pcap_port pgphy p0 0 "$1"
  add_bridge pgint
  dpdk_pcap_port pgint p1 1 "$2"
  vs add-port pgint vx5000 tag=10 -- set Interface vx5000 type=vxlan \
    options:remote_ip=198.18.100.2 options:local_ip=198.18.100.1 options:key=5000
  ip addr replace 198.18.100.1/24 dev pgphy
  ip link set pgphy up
  appctl tnl/arp/set pgphy 198.18.100.2 02:00:00:00:00:fe >/dev/null
  ovs_measure
}

MHZ=$(cpu_mhz)
TSC=$(tsc_mhz)
cyc() { echo "$MHZ/$1" | bc -l | xargs printf '%.0f'; } # Mpps -> cycles a packet at MHZ
# OVS counts rdtsc cycles; pollgate's are the core's measured clock's.
ovs_cyc() { echo "${1:-0} * $MHZ / $TSC" | bc -l | xargs printf '%.0f'; }
echo "$(machine), ${MHZ} MHz; 64-byte frames, one forwarding core, ${SECS} s each"
echo "gateway: pollgate with the $RULES-rule ACL of $ACL on both ports, OVS with none"
printf '%-18s %12s %12s %22s %22s %9s\n' "MAC pairs" "testpmd io" "testpmd mac" "OVS (cycles/pkt)" "pollgate (cycles/pkt)" "x OVS"
row() { # LABEL IO MAC OVS OVS_CYC PG
  # OVS rounded to 0.00 Mpps has no ratio to print.
  local x=-
  [ "$(echo "$4 > 0" | bc)" = 1 ] && x=$(echo "$6/$4" | bc -l | xargs printf '%.1f')
  printf '%-18s %12s %12s %22s %22s %9s\n' "$1" "$2" "$3" "$4 ($5)" "$6 ($(cyc "$6"))" "$x"
}
json=""
for n in "${SIZES[@]}"; do
  d=$W/pcap$n
  $PG bench --write-pcaps "$d" --macs "$n" >/dev/null
  io=$(testpmd_pcap io "$d/mix0.pcap" "$d/mix1.pcap")
  mac=$(testpmd_pcap mac "$d/mix0.pcap" "$d/mix1.pcap")
  pg=$($PG bench --seconds "$SECS" --core "$CORE" --l2 --macs "$n" --json 2>/dev/null | json_mpps | xargs printf '%.2f')
  read -r ovs ovs_tsc < <(ovs_normal "$d/mix0.pcap" "$d/mix1.pcap") || true
  [ -n "${ovs:-}" ] || { echo "no OVS figure for $n MAC pairs" >&2; exit 1; }
  row "L2 $n" "$io" "$mac" "$ovs" "$(ovs_cyc "$ovs_tsc")" "$pg"
  g=$W/gw$n
  $PG bench --write-pcaps "$g" --gateway --macs "$n" --flows "$n" >/dev/null
  gio=$(testpmd_pcap io "$g/mix0.pcap" "$g/mix1.pcap")
  gpg=$($PG bench --seconds "$SECS" --core "$CORE" --gateway --acl "$ACL" --macs "$n" --flows "$n" --json 2>/dev/null | json_mpps | xargs printf '%.2f')
  read -r govs govs_tsc < <(ovs_gateway "$g/mix0.pcap" "$g/mix1.pcap") || true
  [ -n "${govs:-}" ] || { echo "no OVS gateway figure for $n MAC pairs" >&2; exit 1; }
  row "gateway $n" "$gio" "-" "$govs" "$(ovs_cyc "$govs_tsc")" "$gpg"
  json+="  \"$n\": {\"testpmd_io_pcap_mpps\": $io, \"testpmd_mac_pcap_mpps\": $mac, \"ovs_normal_mpps\": $ovs, \"ovs_cycles_per_packet\": $(ovs_cyc "$ovs_tsc"), \"pollgate_l2_mpps\": $pg, \"pollgate_cycles_per_packet\": $(cyc "$pg"),"
  json+=" \"testpmd_io_gateway_pcap_mpps\": $gio, \"ovs_gateway_mpps\": $govs, \"ovs_gateway_cycles_per_packet\": $(ovs_cyc "$govs_tsc"), \"pollgate_gateway_acl_mpps\": $gpg, \"pollgate_gateway_cycles_per_packet\": $(cyc "$gpg")},"$'\n'
done
{
  echo '{'
  echo "  \"machine\": \"$(machine)\", \"cpu_mhz\": $MHZ, \"tsc_mhz\": $TSC, \"date\": \"$(date -u +%FT%TZ)\", \"seconds\": $SECS,"
  echo "  \"ovs\": \"$("$OVS_BIN" --version | head -1)\", \"testpmd\": \"DPDK $(dpkg-query -W -f '${Version}' dpdk-dev 2>/dev/null || echo unknown)\","
  echo "  \"gateway_acl\": \"$ACL\", \"gateway_acl_rules\": $RULES,"
  printf '%s' "$json" | sed '$ s/,$//'
  echo '}'
} >"$OUT"
/usr/bin/python3 perf/bars_svg.py "$OUT" "${OUT%.json}.svg" \
  "Same frames, one core each: $(machine), ${MHZ} MHz" \
  testpmd_io_pcap_mpps="testpmd io (pcap)" testpmd_mac_pcap_mpps="testpmd mac (pcap)" \
  ovs_normal_mpps="OVS-DPDK NORMAL" pollgate_l2_mpps="pollgate l2" \
  ovs_gateway_mpps="OVS-DPDK VXLAN+VLAN" pollgate_gateway_acl_mpps="pollgate gateway+ACL"
echo "wrote $OUT and ${OUT%.json}.svg"
