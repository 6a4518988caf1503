#!/usr/bin/env bash
# End to end on veth, side by side, one run:
#
#   generator ns --veth--> [device under test] --veth--> sink ns
#
# The same two veth pairs and the same 64-byte UDP traffic (trafgen, in
# the generator namespace) go through, in turn: pollgate (cross-connect,
# AF_XDP), dpdk-testpmd (net_af_xdp, io forward), and the Linux bridge.
# For each: the rate delivered when offered all trafgen can send, and the
# highest offered rate with zero loss (binary search). Results go to
# perf/results/veth-bench.json.
#
#   perf/veth-bench.sh [trial-seconds]     as root; needs trafgen and dpdk-testpmd
#   (apt-get install netsniff-ng dpdk-dev librte-net-af-xdp23)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
# AF_XDP ring sizes for both engines (pollgate's [afxdp] rings, testpmd's
# --rxd/--txd, which net_af_xdp takes as its ring sizes). On veth the
# rings must cover the gaps when the worker's core runs the kernel's
# side of the veth pair (ksoftirqd): 8192 entries hold 8 ms at 1 Mpps.
RING=${RING:-8192}
GEN=pgp-gen SINK=pgp-sink A=pgp-a B=pgp-b
OUT=perf/results/veth-bench.json
WORK=$(mktemp -d)
DUT_PID=

for c in trafgen dpdk-testpmd ip; do command -v $c >/dev/null || { echo "missing $c" >&2; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cargo build --release -q -p pollgate
PG=$PWD/target/release/pollgate

cleanup() {
  [ -n "$DUT_PID" ] && kill -INT "$DUT_PID" 2>/dev/null && wait "$DUT_PID" 2>/dev/null || true
  ip link del br-pgp 2>/dev/null || true
  ip link del $A 2>/dev/null || true
  ip link del $B 2>/dev/null || true
  ip netns del $GEN 2>/dev/null || true
  ip netns del $SINK 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

topology() {
  cleanup; WORK=$(mktemp -d)
  ip netns add $GEN; ip netns add $SINK
  # One queue per end: every frame reaches the one socket on queue 0.
  ip link add $A numtxqueues 1 numrxqueues 1 type veth peer name eth0 numtxqueues 1 numrxqueues 1 netns $GEN
  ip link add $B numtxqueues 1 numrxqueues 1 type veth peer name eth0 numtxqueues 1 numrxqueues 1 netns $SINK
  ip -n $GEN link set eth0 address 02:00:00:00:00:01 up
  ip -n $SINK link set eth0 address 02:00:00:00:00:02 up
  ip link set $A up; ip link set $B up
}

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
cp "$WORK/udp64.cfg" /tmp/pgp-udp64.cfg

rx_count() { ip netns exec $SINK cat /sys/class/net/eth0/statistics/rx_packets; }
tx_count() { ip netns exec $GEN cat /sys/class/net/eth0/statistics/tx_packets; }

# trial RATE -> "offered_pps delivered_pps lost"; RATE "max" = unlimited.
trial() {
  local rate=$1 s0 r0 s1 r1 args=()
  [ "$rate" != max ] && args=(-b "${rate}pps")
  s0=$(tx_count); r0=$(rx_count)
  ip netns exec $GEN timeout -s INT "$T" trafgen -i eth0 -o eth0 -c /tmp/pgp-udp64.cfg -P 1 -q -C "${args[@]}" >/dev/null 2>&1 || true
  sleep 0.3
  s1=$(tx_count); r1=$(rx_count)
  local sent=$((s1 - s0)) got=$((r1 - r0))
  echo "$((sent / T)) $((got / T)) $((sent > got ? sent - got : 0))"
}

search() { # -> highest zero-loss rate found, in pps
  local lo=0 hi=$1 best=0 mid res lost
  for _ in 1 2 3 4 5 6 7; do
    mid=$(((lo + hi) / 2))
    [ "$mid" -lt 1000 ] && break
    res=$(trial "$mid"); lost=${res##* }
    # Allow a loss of 1 in 100000 for counter skew at the edges of a trial.
    if [ "$lost" -le $((mid * T / 100000)) ]; then best=$mid; lo=$mid; else hi=$mid; fi
  done
  echo $best
}

declare -A MAXO MAXD ZL
run_dut() { # name
  local name=$1 res
  res=$(trial max); MAXO[$name]=${res%% *}; res=${res#* }; MAXD[$name]=${res%% *}
  ZL[$name]=$(search "${MAXO[$name]}")
  printf '%-14s offered %9d pps  delivered %9d pps  zero-loss %9d pps\n' "$name" "${MAXO[$name]}" "${MAXD[$name]}" "${ZL[$name]}"
}

# pollgate: AF_XDP on both host ends, cross-connected, one pinned worker.
topology
cat >"$WORK/pg.toml" <<CFG
[engine]
forward = "io"
parse = false
idle = "poll"
[afxdp]
rx_ring = $RING
fill_ring = $RING
tx_ring = $RING
comp_ring = $RING
[[port]]
name = "a"
kind = "afxdp"
iface = "$A"
[[port]]
name = "b"
kind = "afxdp"
iface = "$B"
[[xconnect]]
ports = ["a", "b"]
[[worker]]
core = 1
ports = ["a", "b"]
CFG
$PG run --config "$WORK/pg.toml" >"$WORK/pg.log" 2>&1 & DUT_PID=$!
sleep 1.5
run_dut pollgate
kill -INT $DUT_PID; wait $DUT_PID || true; DUT_PID=

# testpmd: net_af_xdp on the same two devices, io forward, lcore 1.
topology
LIBXDP_SKIP_DISPATCHER=1 dpdk-testpmd --no-huge --no-pci -m 1024 -l 0,1 --log-level=error \
  --vdev net_af_xdp0,iface=$A --vdev net_af_xdp1,iface=$B -- \
  --forward-mode=io --nb-cores=1 --rxd="$RING" --txd="$RING" --total-num-mbufs=$((RING * 8)) \
  --stats-period 3600 >"$WORK/tp.log" 2>&1 & DUT_PID=$!
sleep 3
run_dut testpmd
kill -INT $DUT_PID; wait $DUT_PID || true; DUT_PID=

# The Linux bridge.
topology
ip link add br-pgp type bridge; ip link set $A master br-pgp; ip link set $B master br-pgp; ip link set br-pgp up
sleep 1
run_dut linux-bridge

{
  echo "{"
  echo "  \"machine\": \"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)\","
  echo "  \"date\": \"$(date -u +%FT%TZ)\", \"trial_seconds\": $T, \"ring_entries\": $RING, \"frame\": \"64-byte UDP/IPv4\","
  sep=""
  for n in pollgate testpmd linux-bridge; do
    echo "  $sep\"$n\": {\"offered_pps\": ${MAXO[$n]}, \"delivered_pps\": ${MAXD[$n]}, \"zero_loss_pps\": ${ZL[$n]}}"
    sep=","
  done
  echo "}"
} >"$OUT"
echo "wrote $OUT"
