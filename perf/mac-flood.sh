#!/usr/bin/env bash
# MAC-flood attack on veth: legitimate traffic (tools/scenarios/udp64.toml,
# paced) from one container to another through a pollgate bridge with a
# 1024-entry MAC limit, first alone, then while a third container floods
# the domain with 4096 source MACs at maximum rate
# (tools/scenarios/mac-flood.toml; one pollgate-pktgen thread sends both
# streams, the attack in the gaps of the paced one). Afterwards: the
# table stayed within its limit, the legitimate station's entry was not
# evicted, and the legitimate rate under attack as a share of the rate
# without. Writes perf/results/mac-flood.json.
#
#   perf/mac-flood.sh [seconds] [legit-pps]     as root
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
RATE=${2:-300000}
GEN=pgm-gen SINK=pgm-sink ATK=pgm-atk
OUT=${OUT:-perf/results/mac-flood.json}
WORK=$(mktemp -d)
SOCK=$WORK/ctl.sock
PG_PID=
. perf/lib.sh
perf_init

cleanup() {
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null || true
  ns_veth_del pgm-a $GEN pgm-b $SINK pgm-x $ATK
}
trap 'cleanup; rm -rf "$WORK"' EXIT
cleanup
ns_veth pgm-a $GEN 02:00:00:00:00:01
ns_veth pgm-b $SINK 02:00:00:00:00:02
ns_veth pgm-x $ATK 02:66:00:00:00:00
cat >"$WORK/gw.toml" <<CFG
[engine]
ctl_socket = "$SOCK"
[afxdp]
rx_ring = 8192
fill_ring = 8192
tx_ring = 8192
comp_ring = 8192
[switch]
mac_limit = 1024
[[port]]
name = "a"
kind = "afxdp"
iface = "pgm-a"
[[port]]
name = "b"
kind = "afxdp"
iface = "pgm-b"
[[port]]
name = "x"
kind = "afxdp"
iface = "pgm-x"
[[bridge]]
name = "lan"
members = [{ port = "a" }, { port = "b" }, { port = "x" }]
static_macs = [{ mac = "02:00:00:00:00:02", port = "b" }, { mac = "02:66:ff:ff:ff:ff", port = "x" }]
[[worker]]
core = 1
ports = ["a", "b", "x"]
CFG
$PG run --config "$WORK/gw.toml" >"$WORK/pg.out" 2>&1 & PG_PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
ctl() { $PG ctl --socket "$SOCK" "$@"; }
legit() { # extra args -> JSON of the trial
  $PKTGEN run tools/scenarios/udp64.toml --tx eth0 --tx-ns $GEN --rx eth0 --rx-ns $SINK --core 0 \
    --ring 8192 --rate "$RATE" --duration "$SECS" --json "$@" 2>>"$WORK/gen.err"
}
legit >"$WORK/alone.json"
legit --attack tools/scenarios/mac-flood.toml --attack-tx eth0 --attack-ns $ATK >"$WORK/attack.json"
ctl --json show macs >"$WORK/macs.json"
ctl --json show stats >"$WORK/stats.json"
kill -INT "$PG_PID"; wait "$PG_PID" || true; PG_PID=

MACHINE=$(machine) python3 - "$WORK" "$OUT" "$SECS" "$RATE" <<'PY'
import json, os, sys
work, out, secs, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
alone = json.load(open(work + "/alone.json"))
attack = json.load(open(work + "/attack.json"))
macs = json.load(open(work + "/macs.json"))
stats = json.load(open(work + "/stats.json"))
entries = macs if isinstance(macs, list) else macs.get("entries", macs.get("macs", []))
legit_entry = [e for e in entries if str(e.get("mac", "")).lower() == "02:00:00:00:00:01"]
res = {
    "machine": os.environ["MACHINE"],
    "seconds": secs, "legit_target_pps": rate,
    "alone": {k: alone[k] for k in ("offered_pps", "received_pps", "lost")},
    "under_attack": {k: attack[k] for k in ("offered_pps", "received_pps", "lost", "attack_pps")},
    "legit_share_kept": attack["received_pps"] / alone["received_pps"] if alone["received_pps"] else 0,
    "mac_table_entries": len(entries), "mac_limit": 1024,
    "legit_entry_kept": legit_entry,
    "drops": stats["drops"],
    "pollgate_summary": [l for l in open(work + "/pg.out").read().splitlines() if l.startswith("mac table")],
}
json.dump(res, open(out, "w"), indent=2)
print(json.dumps(res, indent=2))
PY
