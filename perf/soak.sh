#!/usr/bin/env bash
# Soak: the full pipeline at the generator's maximum rate on veth for
# SECONDS (default 600), with floods, ACL drops, and ACL and MAC updates
# every few seconds; then the frame accounting, resident memory and
# counter monotonicity. Not part of the test command (it takes minutes).
#
#   gen ns ─veth─ a ┐                ┌ b ─veth─ sink ns  (pollgate-pktgen RX)
#                   └─ pollgate bridge┤
#                                     └ c ─veth─ flood ns (every unknown unicast is flooded here too)
#
# pollgate-pktgen sends tools/scenarios/udp64.toml to a MAC nobody
# announces (unknown unicast: flooded to b and c); port a's ACL denies 8
# of the 256 flows. Every UPDATE seconds an ACL rule is added or deleted
# and a static MAC added or deleted through `pollgate ctl`; every SAMPLE
# seconds the counters and pollgate's RSS are sampled. Writes
# perf/results/soak.json.
#
#   perf/soak.sh [seconds]     as root
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
UPDATE=${UPDATE:-5}
SAMPLE=${SAMPLE:-10}
RING=${RING:-8192}
GEN=pgs-gen SINK=pgs-sink FLOOD=pgs-flood
OUT=${OUT:-perf/results/soak.json}
WORK=$(mktemp -d)
SOCK=$WORK/ctl.sock
PG_PID= GEN_PID=
. perf/lib.sh
perf_init

cleanup() {
  [ -n "$GEN_PID" ] && kill -INT "$GEN_PID" 2>/dev/null || true
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null || true
  ns_veth_del pgs-a $GEN pgs-b $SINK pgs-c $FLOOD
}
trap 'cleanup; rm -rf "$WORK"' EXIT
cleanup
ns_veth pgs-a $GEN 02:00:00:00:00:01
ns_veth pgs-b $SINK 02:00:00:00:00:77
ns_veth pgs-c $FLOOD 02:00:00:00:00:88

cat >"$WORK/soak.toml" <<CFG
[engine]
ctl_socket = "$SOCK"
[afxdp]
rx_ring = $RING
fill_ring = $RING
tx_ring = $RING
comp_ring = $RING
[switch]
mac_limit = 4096
[[port]]
name = "a"
kind = "afxdp"
iface = "pgs-a"
acl_in = "guard"
[[port]]
name = "b"
kind = "afxdp"
iface = "pgs-b"
[[port]]
name = "c"
kind = "afxdp"
iface = "pgs-c"
[[bridge]]
name = "lan"
members = [{ port = "a" }, { port = "b" }, { port = "c" }]
[[acl]]
name = "guard"
default = "permit"
rules = ["deny proto=udp sport=1024-1031", "permit src=198.18.0.0/15 proto=udp stateful"]
[[worker]]
core = 1
ports = ["a", "b", "c"]
CFG
$PG run --config "$WORK/soak.toml" >"$WORK/pg.out" 2>"$WORK/pg.err" & PG_PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
ctl() { $PG ctl --socket "$SOCK" "$@"; }

gen_tx0=$(ip netns exec $GEN cat /sys/class/net/eth0/statistics/tx_packets)
gen_txdrop0=$(ip netns exec $GEN cat /sys/class/net/eth0/statistics/tx_dropped)
# Port a's counters at the same moment: what the namespaces' own kernels
# sent before (IPv6 neighbour discovery at link up) is not in the balance.
ctl --json show stats >"$WORK/stats0.json"
drop_a0=$(cat /sys/class/net/pgs-a/statistics/rx_dropped)
$PKTGEN run tools/scenarios/udp64.toml --tx eth0 --tx-ns $GEN --rx eth0 --rx-ns $SINK --core 0 \
  --ring "$RING" --rate max --duration "$SECS" --json >"$WORK/gen.json" 2>"$WORK/gen.err" & GEN_PID=$!

rss() { awk '/VmRSS/ {print $2}' /proc/$PG_PID/status; }
echo "[]" >"$WORK/samples.json"
sample() { # t -> appends {t, rss_kib, stats}
  local s; s=$(ctl --json show stats)
  python3 - "$WORK/samples.json" "$1" "$(rss)" "$s" <<'PY'
import json, sys
path, t, rss, stats = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
samples = json.load(open(path))
samples.append({"t": t, "rss_kib": rss, "stats": stats})
json.dump(samples, open(path, "w"))
PY
}

start=$(date +%s); next_update=$UPDATE; next_sample=0; updates=0; i=0
while kill -0 "$GEN_PID" 2>/dev/null; do
  t=$(( $(date +%s) - start ))
  if [ "$t" -ge "$next_sample" ]; then
    sample "$t"; next_sample=$((next_sample + SAMPLE))
    printf '  t=%4ds  rss %6d KiB\n' "$t" "$(rss)"
  fi
  if [ "$t" -ge "$next_update" ]; then
    i=$((i + 1))
    # Alternate: add a rule at the top, then take it out; a static MAC in
    # the domain, then out again (the table changes under load).
    if [ $((i % 2)) = 1 ]; then
      ctl acl add guard at 0 deny proto=udp sport=$((1100 + i % 50)) >/dev/null
      ctl mac add lan "02:00:00:00:01:$(printf %02x $((i % 200)))" c >/dev/null
    else
      ctl acl del guard 0 >/dev/null
      ctl mac del lan "02:00:00:00:01:$(printf %02x $(((i - 1) % 200)))" >/dev/null
    fi
    updates=$((updates + 2)); next_update=$((next_update + UPDATE))
  fi
  sleep 0.5
done
wait "$GEN_PID" || true; GEN_PID=
sample "$(( $(date +%s) - start ))"
gen_tx=$(( $(ip netns exec $GEN cat /sys/class/net/eth0/statistics/tx_packets) - gen_tx0 ))
gen_txdrop=$(( $(ip netns exec $GEN cat /sys/class/net/eth0/statistics/tx_dropped) - gen_txdrop0 ))
kernel_drop_a=$(( $(cat /sys/class/net/pgs-a/statistics/rx_dropped) - drop_a0 ))
kill -INT "$PG_PID"; wait "$PG_PID" || true; PG_PID=

MACHINE=$(machine) python3 - "$WORK" "$OUT" "$SECS" "$updates" "$gen_tx" "$kernel_drop_a" "$gen_txdrop" <<'PY'
import json, os, sys, re
work, out, secs, updates, gen_tx, kdrop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
gen_txdrop = int(sys.argv[7])
gen = json.load(open(work + "/gen.json"))
samples = json.load(open(work + "/samples.json"))
summary = open(work + "/pg.out").read() + open(work + "/pg.err").read()
# Counters never went backwards between samples.
backwards = []
for prev, cur in zip(samples, samples[1:]):
    for p0, p1 in zip(prev["stats"]["ports"], cur["stats"]["ports"]):
        for k, v in p1.items():
            if isinstance(v, int) and v < p0.get(k, 0):
                backwards.append((cur["t"], p1["name"], k, p0[k], v))
    for k, v in prev["stats"]["drops"].items():
        if cur["stats"]["drops"].get(k, 0) < v:
            backwards.append((cur["t"], "drops", k, v, cur["stats"]["drops"].get(k, 0)))
last = samples[-1]["stats"]
ports = {p["name"]: p for p in last["ports"]}
acc = re.findall(r"frames (\d+)/(\d+) accounted", summary)
rss = [s["rss_kib"] for s in samples]
# After the first sample (pools and rings are touched in the first
# seconds), resident memory must stay flat.
rss_growth = max(rss[1:]) - rss[1] if len(rss) > 2 else 0
a = dict(ports["a"])
a0 = next(p for p in json.load(open(work + "/stats0.json"))["ports"] if p["name"] == "a")
for k in ("rx_packets", "kernel_drops"):
    a[k] -= a0[k]
result = {
    "machine": os.environ["MACHINE"],
    "seconds": secs, "updates": updates,
    "generator": {k: gen[k] for k in ("sent", "offered_pps", "received", "received_pps", "lost", "reordered")},
    "pollgate": {"ports": last["ports"], "drops": last["drops"]},
    # Every frame out of the generator namespace's eth0 (the generator's,
    # and the few the namespace's own kernel sends: IPv6 neighbour
    # discovery) reached port a's XDP program and was either handed to
    # pollgate's socket (rx_packets) or dropped by the kernel for a full
    # socket ring (kernel_drops; the veth counts the same drops in its
    # rx_dropped).
    # Frames the generator queued that the veth dropped before port a's
    # XDP program, its NAPI ring being full (counted as the generator
    # end's tx_dropped): DUT-side overload too.
    "ingress_balance": {"generator_sent": gen["sent"], "gen_eth0_tx": gen_tx, "gen_eth0_tx_dropped": gen_txdrop,
                        "pollgate_rx": a["rx_packets"],
                        "kernel_drops": a["kernel_drops"], "veth_rx_dropped": kdrop,
                        "difference": gen_tx - a["rx_packets"] - a["kernel_drops"],
                        # What the generator queued, less what its device
                        # sent or dropped (a few negative: the namespace's
                        # own neighbour discovery frames).
                        "generator_vs_device": gen["sent"] - gen_tx - gen_txdrop},
    "frame_accounting": [{"accounted": int(x), "total": int(y)} for x, y in acc],
    "frames_balanced": bool(acc) and all(x == y for x, y in acc),
    "rss_kib": {"first": rss[0], "after_warmup": rss[1] if len(rss) > 1 else rss[0], "max": max(rss), "last": rss[-1], "growth_after_warmup": rss_growth},
    "counters_backwards": backwards,
    "samples": len(samples),
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps({k: result[k] for k in ("seconds", "updates", "generator", "ingress_balance", "frames_balanced", "rss_kib", "counters_backwards")}, indent=2))
print("pollgate drops:", last["drops"])
PY
echo "summary from pollgate:"; grep -E 'accounted|drop' "$WORK/pg.out" | head -20 || true
