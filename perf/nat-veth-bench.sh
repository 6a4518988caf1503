#!/usr/bin/env bash
# Routing + masquerade on veth, pollgate against the Linux kernel's own
# forwarding with nftables masquerade, same topology, same generator, one
# run:
#
#   generator ns --veth A--> [router + SNAT] --veth B--> sink ns
#   198.18.0.1-198.18.1.0      .1.254 | .19.0.254        198.19.0.1
#
# pollgate-pktgen sends 64-byte UDP/IPv4 from 256 inside addresses and
# ports (tools/scenarios/udp64.toml, its destination MAC the router's)
# to a server at 198.19.0.1; the router routes it out of B and
# masquerades it behind 198.19.0.254: 256 NAT sessions. The sink sees
# only the router's address (the script checks one frame of it). The
# generator thread is on core 0; the router on core 1: pollgate's worker
# is pinned there, and the kernel's forwarding is steered there with RPS
# on A (otherwise it would run in the softirq of the generator's own
# transmit, on core 0). Each gets an RFC 2544 search (binary search for
# the zero-loss rate) with latency at that rate and at LAT_RATE for both.
#
# Writes perf/results/nat-veth-bench.{json,svg} and prints a Markdown table.
#
#   perf/nat-veth-bench.sh [trial-seconds]     as root; needs nft (nftables)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
RING=${RING:-8192}
LAT_RATE=${LAT_RATE:-300000}
GEN=pgn-gen SINK=pgn-sink KNS=pgn-kernel A=pgn-a B=pgn-b
ROUTER_MAC=02:00:00:00:00:fe SINK_MAC=02:00:00:00:00:02
OUT=${OUT:-perf/results/nat-veth-bench}
WORK=$(mktemp -d)
DUT_PID=

for c in nft ip; do command -v $c >/dev/null || { echo "missing $c (apt-get install nftables iproute2)" >&2; exit 1; }; done
. perf/lib.sh
perf_init
START=$(date +%s)

cleanup() {
  [ -n "$DUT_PID" ] && kill -INT "$DUT_PID" 2>/dev/null && wait "$DUT_PID" 2>/dev/null || true
  ip netns del $KNS 2>/dev/null || true
  ns_veth_del $A $GEN $B $SINK
}
trap 'cleanup; rm -rf "$WORK"' EXIT

topology() {
  cleanup
  ns_veth $A $GEN 02:00:00:00:00:01
  ns_veth $B $SINK $SINK_MAC
}

# The generator's frames go to the router's MAC.
sed -e "s/^dst_mac = .*/dst_mac = \"$ROUTER_MAC\"/" -e 's/^name = .*/name = "udp64-routed"/' \
  tools/scenarios/udp64.toml >"$WORK/spec.toml"

search() { # name
  $PKTGEN search "$WORK/spec.toml" --tx eth0 --tx-ns $GEN --rx eth0 --rx-ns $SINK --core 0 \
    --ring "$RING" --tx-ring 256 --trial "$T" --latency-rate "$LAT_RATE" --json >"$WORK/$1.json" 2>"$WORK/$1.log" ||
    { cat "$WORK/$1.log" >&2; exit 1; }
  sed "s/^/  $1: /" "$WORK/$1.log"
}

# What the sink receives: the source must be the router's outside address.
check_masqueraded() { # name
  local py=/usr/bin/python3
  ip netns exec $SINK timeout 5 $py - <<'PY' || { echo "$1: the sink did not see 198.19.0.254 as the source" >&2; exit 1; }
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0))
s.settimeout(4)
while True:
    f = s.recv(2048)
    if f[23] == 17 and f[30:34] == bytes([198, 19, 0, 1]):
        src = ".".join(str(b) for b in f[26:30])
        print("  sink sees", src, "port", int.from_bytes(f[34:36], "big"))
        sys.exit(0 if src == "198.19.0.254" else 1)
PY
}

probe() { # name: a second of traffic with the sink's packet socket open
  check_masqueraded "$1" &
  local chk=$!
  sleep 0.3
  $PKTGEN run "$WORK/spec.toml" --tx eth0 --tx-ns $GEN --core 0 --rate 10000 --duration 1 >/dev/null 2>&1
  wait $chk
}

# pollgate: AF_XDP on both host ends, the router with masquerade, one
# pinned worker.
topology
cat >"$WORK/pg.toml" <<CFG
[engine]
idle = "poll"
$(afxdp_pair "$A" "$B" "$RING")
[[bridge]]
name = "lan"
members = [{ port = "a" }]
gateway = { addresses = ["198.18.1.254/23"], mac = "$ROUTER_MAC" }
[[bridge]]
name = "wan"
members = [{ port = "b" }]
gateway = { addresses = ["198.19.0.254/24"], neighbors = [{ ip = "198.19.0.1", mac = "$SINK_MAC" }] }
[[nat]]
out = "wan"
sources = ["198.18.0.0/23"]
[[worker]]
core = 1
ports = ["a", "b"]
CFG
$PG run --config "$WORK/pg.toml" >"$WORK/pg.out" 2>&1 & DUT_PID=$!
sleep 1.5
probe pollgate
search pollgate
kill -INT $DUT_PID; wait $DUT_PID || true; DUT_PID=
grep -E 'nat|drop' "$WORK/pg.out" | sed 's/^/  pollgate: /' | head -20 || true

# The kernel: A and B in a namespace of their own that forwards, with
# nftables masquerade out of B, conntrack as Docker's bridge network has
# it, and the same static neighbour for the sink.
topology
ip netns add $KNS
ip link set $A netns $KNS
ip link set $B netns $KNS
ip -n $KNS link set $A address $ROUTER_MAC up
ip -n $KNS link set $B up
ip -n $KNS link set lo up
ip -n $KNS addr add 198.18.1.254/23 dev $A
ip -n $KNS addr add 198.19.0.254/24 dev $B
ip -n $KNS neigh replace 198.19.0.1 lladdr $SINK_MAC dev $B nud permanent
ip netns exec $KNS sysctl -qw net.ipv4.ip_forward=1
ip netns exec $KNS sh -c "echo 2 > /sys/class/net/$A/queues/rx-0/rps_cpus"
ip netns exec $KNS nft -f - <<NFT
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 198.18.0.0/23 oifname "$B" masquerade
  }
}
NFT
sleep 1
probe kernel
search kernel-nft
ip netns exec $KNS nft list ruleset >"$WORK/nft.txt"
ip netns exec $KNS sh -c 'cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null' | sed 's/^/  kernel conntrack entries at the end: /' || true
cleanup

machine=$(machine)
$PKTGEN report pollgate="$WORK/pollgate.json" kernel-nft="$WORK/kernel-nft.json" \
  --json "$OUT.json" --svg "$OUT.svg" \
  --title "veth, routing + masquerade, 64-byte UDP/IPv4, 256 sessions: $machine" \
  --meta machine="$machine" --meta date="$(date -u +%FT%TZ)" --meta spec="udp64 to the router's MAC" \
  --meta trial_seconds="$T" --meta ring_entries="$RING" --meta latency_rate_pps="$LAT_RATE" \
  --meta generator_core=0 --meta dut_core=1 \
  --meta duration_seconds="$(($(date +%s) - START))"
echo "wrote $OUT.json and $OUT.svg in $(($(date +%s) - START)) s"
