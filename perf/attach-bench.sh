#!/usr/bin/env bash
# How long attaching a container takes, and what it costs the traffic
# already flowing. N times each (default 100), on a release build:
#   - `ctl port add` of an afxdp port on a veth pair made beforehand
#     (the engine's part alone), and its `port del`;
#   - `ctl port add` of a veth port (the engine makes the pair and the
#     namespace), and its `port del`;
#   - the whole CNI ADD and DEL of pollgate-cni as a runtime runs them
#     (veth pair, host-local IPAM, the engine's attach);
# while pollgate-pktgen sends a paced flow (20 kpps) between two other
# containers: its loss, and its longest latency beside a quiet run of the
# same flow (the forwarding pause a change costs the other ports).
#
#   perf/attach-bench.sh [N]        (root; results in perf/results/attach.json)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
OUT=${OUT:-perf/results/attach.json}
WORK=$(mktemp -d)
SOCK=$WORK/ctl.sock
PG_PID=
. perf/lib.sh
perf_init
command -v /usr/lib/cni/host-local >/dev/null || { echo "needs containernetworking-plugins (host-local)" >&2; exit 1; }

cleanup() {
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null || true
  ns_veth_del pgab-a pgab-na pgab-b pgab-nb pgab-x pgab-nx
  for i in $(seq 0 "$N"); do ip netns del "pgab-c$i" 2>/dev/null || true; done
}
trap 'cleanup; rm -rf "$WORK"' EXIT
cleanup
ns_veth pgab-a pgab-na 02:00:00:00:40:01
ns_veth pgab-b pgab-nb 02:00:00:00:40:02
mkdir -p "$WORK/ipam" "$(dirname "$OUT")"
cat >"$WORK/gw.toml" <<CFG
[engine]
ctl_socket = "$SOCK"
idle = "backoff"
[afxdp]
rx_ring = 1024
fill_ring = 1024
tx_ring = 1024
comp_ring = 1024
[pool]
frames = 16384
[[port]]
name = "a"
kind = "afxdp"
iface = "pgab-a"
[[port]]
name = "b"
kind = "afxdp"
iface = "pgab-b"
[[bridge]]
name = "br0"
members = [{ port = "a" }, { port = "b" }]
[[worker]]
core = 1
ports = ["a", "b"]
CFG
$PG run --config "$WORK/gw.toml" >"$WORK/pg.out" 2>"$WORK/pg.err" & PG_PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
ctl() { $PG ctl --socket "$SOCK" "$@" >/dev/null; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }
now() { date +%s%N; }

cat >"$WORK/flow.toml" <<SPEC
name = "paced"
src_mac = "02:00:00:00:40:01"
dst_mac = "02:00:00:00:40:02"
src_ip = "198.18.40.1"
dst_ip = "198.18.40.2"
proto = "udp"
sport = 1024
dport = 1025
flows = 1
size = 64
rate = "max"
SPEC
flow() { # SECS -> pktgen's JSON
  $PKTGEN run "$WORK/flow.toml" --tx eth0 --tx-ns pgab-na --rx eth0 --rx-ns pgab-nb \
    --core 0 --rate 20000 --duration "$1" --json
}
quiet=$(flow 3 | tr -d ' \n')

CONF="{\"cniVersion\": \"1.0.0\", \"name\": \"pgab\", \"type\": \"pollgate-cni\", \"ctlSocket\": \"$SOCK\", \"bridge\": \"br0\",
 \"ipam\": {\"type\": \"host-local\", \"dataDir\": \"$WORK/ipam\", \"ranges\": [[{\"subnet\": \"198.18.61.0/24\"}]]}}"
cni() { # COMMAND ID NETNS
  echo "$CONF" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni:$(dirname "$CNI") \
    "$CNI" >/dev/null
}

flow $((N / 2 + 5)) >"$WORK/churn.json" & FLOW_PID=$!
sleep 1
: >"$WORK/afxdp_add"; : >"$WORK/afxdp_del"; : >"$WORK/veth_add"; : >"$WORK/veth_del"; : >"$WORK/cni_add"; : >"$WORK/cni_del"
t_start=$(now)
for i in $(seq 1 "$N"); do
  ip link add pgab-x type veth peer name pgab-xp
  ip link set pgab-x up; ip link set pgab-xp up
  t0=$(now); ctl port add name=x kind=afxdp iface=pgab-x bridge=br0; t1=$(now)
  ctl port del x; t2=$(now)
  ms "$t0" "$t1" >>"$WORK/afxdp_add"; ms "$t1" "$t2" >>"$WORK/afxdp_del"
  ip link del pgab-x
  t0=$(now); ctl port add name=c kind=veth netns=pgab-c0 netns_create=true address=198.18.40.3/24 bridge=br0; t1=$(now)
  ctl port del c; t2=$(now)
  ms "$t0" "$t1" >>"$WORK/veth_add"; ms "$t1" "$t2" >>"$WORK/veth_del"
  ip netns add "pgab-c$i"
  t0=$(now); cni ADD "pgab$i" "/run/netns/pgab-c$i"; t1=$(now)
  cni DEL "pgab$i" "/run/netns/pgab-c$i"; t2=$(now)
  ms "$t0" "$t1" >>"$WORK/cni_add"; ms "$t1" "$t2" >>"$WORK/cni_del"
  ip netns del "pgab-c$i"
done
echo "the changes took $(ms "$t_start" "$(now)") ms; the flow runs $((N / 2 + 5)) s"
wait "$FLOW_PID"
churn=$(tr -d ' \n' <"$WORK/churn.json")
kill -INT "$PG_PID"; wait "$PG_PID" || true; PG_PID=
grep -q LEAK "$WORK/pg.out" && { echo "frames leaked:"; cat "$WORK/pg.out"; exit 1; }

field() { echo "$1" | sed -E "s/.*\"$2\":([0-9]+).*/\1/"; }
row() { # NAME FILE
  printf '  %-24s median %7.2f ms   p99 %7.2f ms\n' "$1" "$(median <"$2")" "$(p99 <"$2")"
}
echo "pollgate attach times over $N changes ($(machine))"
row "ctl port add (afxdp)" "$WORK/afxdp_add"; row "ctl port del (afxdp)" "$WORK/afxdp_del"
row "ctl port add (veth)" "$WORK/veth_add"; row "ctl port del (veth)" "$WORK/veth_del"
row "CNI ADD (whole)" "$WORK/cni_add"; row "CNI DEL (whole)" "$WORK/cni_del"
qmax=$(echo "$quiet" | sed -E 's/.*"max_ns":([0-9]+).*/\1/')
cmax=$(echo "$churn" | sed -E 's/.*"max_ns":([0-9]+).*/\1/')
msf() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1e6 }'; }
echo "paced flow (20 kpps) during the changes: sent $(field "$churn" sent), lost $(field "$churn" lost); longest latency $(msf "$cmax") ms, $(msf "$qmax") ms with no change"
j() { echo "{\"median_ms\": $(median <"$1"), \"p99_ms\": $(p99 <"$1")}"; }
cat >"$OUT" <<JSON
{"machine": "$(machine)", "changes": $N,
 "ctl_port_add_afxdp": $(j "$WORK/afxdp_add"), "ctl_port_del_afxdp": $(j "$WORK/afxdp_del"),
 "ctl_port_add_veth": $(j "$WORK/veth_add"), "ctl_port_del_veth": $(j "$WORK/veth_del"),
 "cni_add": $(j "$WORK/cni_add"), "cni_del": $(j "$WORK/cni_del"),
 "flow_during": {"sent": $(field "$churn" sent), "lost": $(field "$churn" lost), "max_latency_ns": $cmax},
 "flow_quiet": {"sent": $(field "$quiet" sent), "lost": $(field "$quiet" lost), "max_latency_ns": $qmax}}
JSON
echo "results: $OUT"
