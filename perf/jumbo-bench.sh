#!/usr/bin/env bash
# Jumbo frames through pollgate, and through dpdk-testpmd (net_af_xdp, io)
# on the same topology: trafgen sends fixed-size UDP frames from namespace
# G on core 0 into veth A; the engine (AF_XDP on the host ends A and B,
# cross-connected, forwarding on core 1) sends them to B, whose namespace
# S counts what arrives. Each size runs with the MTU it needs: 1514-byte
# frames at MTU 1500 (one UMEM frame each), 9014-byte frames at MTU 9000
# (pollgate: multi-buffer, six 2048-byte frames each).
#
#   perf/jumbo-bench.sh [seconds]     as root; needs trafgen (netsniff-ng)
#
# trafgen sends with sendto (-t 0): its TX_RING frames do not hold a
# 9014-byte frame (it sends one and stops).
#
# Prints offered and delivered frames per second and Gbit/s, and the time
# per delivered packet on the one forwarding core: the engine's cost when
# it is the bottleneck, an upper bound on it when trafgen is (it shares
# core 0 with the kernel's copy into the engine's UMEM). Writes the lines
# to perf/results/jumbo-bench.txt (OUT overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-5}
WORK=$(mktemp -d)
A=pgja B=pgjb GEN=pgj-gen SINK=pgj-sink
command -v trafgen >/dev/null || { echo "missing trafgen (apt-get install netsniff-ng)" >&2; exit 1; }
. perf/lib.sh
perf_init

cleanup() {
  [ -n "${DUT_PID:-}" ] && kill -INT "$DUT_PID" 2>/dev/null && wait "$DUT_PID" 2>/dev/null || true
  ns_veth_del $A $GEN $B $SINK
}
trap 'cleanup; rm -rf "$WORK"' EXIT

count() { ip netns exec "$1" cat "/sys/class/net/eth0/statistics/$2"; }

run() { # DUT FRAME-SIZE MTU
  local dut=$1 size=$2 mtu=$3
  cleanup
  ns_veth $A $GEN 02:00:00:00:00:01
  ns_veth $B $SINK 02:00:00:00:00:02
  for d in $A $B; do ip link set dev $d mtu "$mtu"; done
  ip -n $GEN link set dev eth0 mtu "$mtu"
  ip -n $SINK link set dev eth0 mtu "$mtu"
  cat >"$WORK/pg.toml" <<CFG
[engine]
forward = "io"
idle = "poll"
$(afxdp_pair "$A" "$B")
[[xconnect]]
ports = ["a", "b"]
[[worker]]
core = 1
ports = ["a", "b"]
CFG
  if [ "$dut" = pollgate ]; then
    $PG run --config "$WORK/pg.toml" >"$WORK/dut.out" 2>&1 & DUT_PID=$!
    sleep 1.5
  else
    command -v dpdk-testpmd >/dev/null || { echo "testpmd: not installed (apt-get install dpdk-dev librte-net-af-xdp23)"; return; }
    LIBXDP_SKIP_DISPATCHER=1 dpdk-testpmd --no-huge --no-pci -m 2048 -l 0,1 --log-level=error \
      --vdev net_af_xdp0,iface=$A --vdev net_af_xdp1,iface=$B -- \
      --forward-mode=io --nb-cores=1 --max-pkt-len=$((size + 4)) $([ "$size" -gt 1514 ] && echo --mbuf-size=$((size + 256))) \
      --total-num-mbufs=16384 --stats-period 3600 >"$WORK/dut.out" 2>&1 & DUT_PID=$!
    sleep 3
    if ! kill -0 $DUT_PID 2>/dev/null || grep -q 'Error - exiting' "$WORK/dut.out"; then
      printf '%s %5d-byte frames: refused: %s\n' "$dut" "$size" "$(grep -m1 -iE 'mtu|fail' "$WORK/dut.out")"
      wait $DUT_PID 2>/dev/null || true; DUT_PID=; return
    fi
  fi
  # Ethernet + IPv4 + UDP, then a payload filling the frame.
  cat >"$WORK/t.cfg" <<CFG
{
  0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
  const16(0x0800),
  0x45, 0x00, const16($((size - 14))), const16(0), const16(0x4000), 64, 17, csumip(14, 33),
  198, 18, 0, 1, 198, 19, 0, 1,
  const16(1024), const16(1025), const16($((size - 34))), const16(0),
  fill(0x5a, $((size - 42)))
}
CFG
  local tx0 rx0 tx rx
  tx0=$(count $GEN tx_packets); rx0=$(count $SINK rx_packets)
  ip netns exec $GEN timeout -s INT "$T" taskset -c 0 trafgen -i eth0 -o eth0 -c "$WORK/t.cfg" -P 1 -t 0 -q >/dev/null 2>&1 || true
  sleep 0.5
  tx=$(( $(count $GEN tx_packets) - tx0 )); rx=$(( $(count $SINK rx_packets) - rx0 ))
  kill -INT $DUT_PID; wait $DUT_PID || true; DUT_PID=
  awk -v d="$dut" -v s="$size" -v t="$T" -v tx="$tx" -v rx="$rx" 'BEGIN {
    printf "%s %5d-byte frames: offered %.3f Mpps (%.2f Gbit/s), delivered %.3f Mpps (%.2f Gbit/s), %.0f ns per delivered packet, lost %d\n",
      d, s, tx / t / 1e6, tx * s * 8 / t / 1e9, rx / t / 1e6, rx * s * 8 / t / 1e9, (rx > 0 ? 1e9 * t / rx : 0), tx - rx }'
  grep -oE 'multi-buffer \(MTU [0-9]+\)|frames [0-9]+/[0-9]+ accounted' "$WORK/dut.out" | sort -u | sed 's/^/  /' || true
}

OUT=${OUT:-perf/results/jumbo-bench.txt}
{
  echo "$(machine); $T s per size"
  for dut in pollgate testpmd; do
    run $dut 1514 1500
    run $dut 9014 9000
  done
} | tee "$WORK/out.txt"
cp "$WORK/out.txt" "$OUT"
