#!/usr/bin/env bash
# End to end on veth, side by side, one run:
#
#   generator ns --veth--> [device under test] --veth--> sink ns
#
# pollgate-pktgen sends tools/scenarios/udp64.toml (64-byte UDP/IPv4, 256
# flows) from the generator namespace and receives it in the sink
# namespace, one pinned core for both sockets. The same two veth pairs
# carry it through, in turn: pollgate (cross-connect, AF_XDP),
# dpdk-testpmd (net_af_xdp, io forward) and the Linux bridge, each on the
# other core. For each: what it delivers when offered all the generator
# can send, the RFC 2544 zero-loss rate (binary search) and the latency
# percentiles at that rate, at one rate common to all, and at 80 % of
# each DUT's own zero-loss rate (where the issue compares p99). First,
# the generator itself against trafgen on the same core, so a reader sees
# it is not the bottleneck.
#
# Writes perf/results/veth-bench.{json,svg} and prints a Markdown table.
#
#   perf/veth-bench.sh [trial-seconds]     as root; needs trafgen and dpdk-testpmd
#   (apt-get install netsniff-ng dpdk-dev librte-net-af-xdp23)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
# AF_XDP ring sizes for every engine (pollgate's [afxdp] rings, testpmd's
# --rxd/--txd, which net_af_xdp takes as its ring sizes, the generator's
# --ring). On veth the rings must cover the gaps while the core runs the
# kernel's side of the veth pair (ksoftirqd): 8192 entries hold 8 ms at
# 1 Mpps.
RING=${RING:-8192}
# Latency is also measured at this one rate for every DUT (equal load).
LAT_RATE=${LAT_RATE:-500000}
SPEC=tools/scenarios/udp64.toml
GEN=pgp-gen SINK=pgp-sink A=pgp-a B=pgp-b
OUT=${OUT:-perf/results/veth-bench}
WORK=$(mktemp -d)
DUT_PID=

for c in trafgen dpdk-testpmd ip; do command -v $c >/dev/null || { echo "missing $c" >&2; exit 1; }; done
. perf/lib.sh
perf_init
START=$(date +%s)

cleanup() {
  [ -n "$DUT_PID" ] && kill -INT "$DUT_PID" 2>/dev/null && wait "$DUT_PID" 2>/dev/null || true
  ip link del br-pgp 2>/dev/null || true
  ns_veth_del $A $GEN $B $SINK
}
trap 'cleanup; rm -rf "$WORK"' EXIT

topology() {
  cleanup
  ns_veth $A $GEN 02:00:00:00:00:01
  ns_veth $B $SINK 02:00:00:00:00:02
}

# The generator against trafgen: 64-byte frames out of the generator
# namespace on core 0, nothing behind A (the host's stack drops them).
topology
cat >"$WORK/udp64.cfg" <<'CFG'
{
  0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
  const16(0x0800),
  0x45, 0x00, const16(46), const16(0), const16(0x4000), 64, 17, csumip(14, 33),
  198, 18, 0, 1, 198, 19, 0, 1,
  const16(1024), const16(1025), const16(26), const16(0),
  fill(0x00, 18)
}
CFG
tx_count() { ip netns exec $GEN cat /sys/class/net/eth0/statistics/tx_packets; }
s0=$(tx_count)
ip netns exec $GEN timeout -s INT "$((T + 1))" taskset -c 0 trafgen -i eth0 -o eth0 -c "$WORK/udp64.cfg" -P 1 -q -C >/dev/null 2>&1 || true
TRAFGEN_PPS=$(( ($(tx_count) - s0) / (T + 1) ))
s0=$(tx_count)
$PKTGEN run $SPEC --tx eth0 --tx-ns $GEN --core 0 --ring "$RING" --duration "$((T + 1))" >/dev/null 2>&1
PKTGEN_PPS=$(( ($(tx_count) - s0) / (T + 1) ))
printf 'generator on one core, 64-byte frames: pollgate-pktgen %d pps, trafgen %d pps\n' "$PKTGEN_PPS" "$TRAFGEN_PPS"

search() { # name
  $PKTGEN search $SPEC --tx eth0 --tx-ns $GEN --rx eth0 --rx-ns $SINK --core 0 \
    --ring "$RING" --tx-ring 256 --trial "$T" --latency-rate "$LAT_RATE" --latency-fraction 0.8 --json >"$WORK/$1.json" 2>"$WORK/$1.log" ||
    { cat "$WORK/$1.log" >&2; exit 1; }
  sed "s/^/  $1: /" "$WORK/$1.log"
}

# pollgate: AF_XDP on both host ends, cross-connected, one pinned worker.
topology
cat >"$WORK/pg.toml" <<CFG
[engine]
forward = "io"
parse = false
idle = "poll"
$(afxdp_pair "$A" "$B" "$RING")
[[xconnect]]
ports = ["a", "b"]
[[worker]]
core = 1
ports = ["a", "b"]
CFG
$PG run --config "$WORK/pg.toml" >"$WORK/pg.out" 2>&1 & DUT_PID=$!
sleep 1.5
search pollgate
kill -INT $DUT_PID; wait $DUT_PID || true; DUT_PID=

# testpmd: net_af_xdp on the same two devices, io forward, lcore 1.
topology
LIBXDP_SKIP_DISPATCHER=1 dpdk-testpmd --no-huge --no-pci -m 1024 -l 0,1 --log-level=error \
  --vdev net_af_xdp0,iface=$A --vdev net_af_xdp1,iface=$B -- \
  --forward-mode=io --nb-cores=1 --rxd="$RING" --txd="$RING" --total-num-mbufs=$((RING * 8)) \
  --stats-period 3600 >"$WORK/tp.out" 2>&1 & DUT_PID=$!
sleep 3
search testpmd
kill -INT $DUT_PID; wait $DUT_PID || true; DUT_PID=

# The Linux bridge (its forwarding runs in softirq, on whichever core
# the veth's NAPI runs: it has no core of its own to pin).
topology
ip link add br-pgp type bridge; ip link set $A master br-pgp; ip link set $B master br-pgp; ip link set br-pgp up
sleep 1
search linux-bridge
cleanup

machine=$(machine)
$PKTGEN report pollgate="$WORK/pollgate.json" testpmd="$WORK/testpmd.json" linux-bridge="$WORK/linux-bridge.json" \
  --json "$OUT.json" --svg "$OUT.svg" \
  --title "veth, 64-byte UDP/IPv4, 256 flows: $machine" \
  --meta machine="$machine" --meta date="$(date -u +%FT%TZ)" --meta spec="$SPEC" \
  --meta trial_seconds="$T" --meta ring_entries="$RING" --meta latency_rate_pps="$LAT_RATE" \
  --meta generator_core=0 --meta dut_core=1 \
  --meta pollgate_pktgen_tx_pps="$PKTGEN_PPS" --meta trafgen_tx_pps="$TRAFGEN_PPS" \
  --meta duration_seconds="$(($(date +%s) - START))"
echo "wrote $OUT.json and $OUT.svg in $(($(date +%s) - START)) s"
