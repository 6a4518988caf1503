#!/usr/bin/env bash
# ACL edits as a firewall under live policy sends them: a stream of
# `pollgate ctl acl add` / `acl del` on a running engine whose ACL holds a
# ClassBench 10 K set, one every INTERVAL ms, while the background
# compiler folds them in. Each reply says whether the edit was applied as
# an overlay at once or, with the overlay full, compiled the whole list
# before answering; this prints the split and the distribution of the
# reply times the engine reports.
#
#   perf/acl-edit-stream.sh [EDITS] [INTERVAL_MS]   (default 200 edits, 20 ms)
#   RULES=FILE picks the set (default ../shared/classbench/acl1_10k.rules)
#   PG=BINARY runs another build (a before/after comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
EDITS=${1:-200}
INTERVAL=${2:-20}
RULES=${RULES:-../shared/classbench/acl1_10k.rules}
[ -f "$RULES" ] || { echo "no rule file at $RULES (set RULES=FILE)" >&2; exit 1; }
if [ -z "${PG:-}" ]; then
  cargo build --release -q -p pollgate
  PG=target/release/pollgate
fi
WORK=$(mktemp -d /tmp/pollgate-edits.XXXXXX)
SOCK=$WORK/ctl.sock
cleanup() { [ -n "${ENGINE:-}" ] && kill "$ENGINE" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
{
  printf '[engine]\nidle = "backoff"\nctl_socket = "%s"\n' "$SOCK"
  printf '[[port]]\nname = "null0"\nkind = "null"\nacl_in = "edits"\n'
  printf '[[port]]\nname = "null1"\nkind = "null"\n'
  printf '[[xconnect]]\nports = ["null0", "null1"]\n'
  "$PG" acl import --name edits "$RULES" | grep -v '^#'
} >"$WORK/engine.toml"
# Edits land at indices below the set's size, less what they remove.
n=$(grep -c . "$RULES")
span=$((n > EDITS ? n - EDITS / 2 : 1))
"$PG" run --config "$WORK/engine.toml" --duration 600 >"$WORK/engine.log" 2>&1 &
ENGINE=$!
ready=0
for _ in $(seq 600); do
  "$PG" ctl --socket "$SOCK" show acl edits >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.1
done
[ "$ready" = 1 ] || { echo "the engine did not answer in 60 s:" >&2; cat "$WORK/engine.log" >&2; exit 1; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); $RULES; $EDITS edits, one every $INTERVAL ms; binary $PG"
: >"$WORK/replies"
for ((k = 0; k < EDITS; k++)); do
  if ((k % 2 == 0)); then
    "$PG" ctl --socket "$SOCK" acl add edits at $(((k * 7919) % span)) permit proto=udp dport=$((1000 + k)) >>"$WORK/replies"
  else
    "$PG" ctl --socket "$SOCK" acl del edits $(((k * 104729) % span)) >>"$WORK/replies"
  fi
  sleep "$(awk -v ms="$INTERVAL" 'BEGIN { print ms / 1000 }')"
done
/usr/bin/python3 - "$WORK/replies" "$WORK/engine.log" <<'EOF'
import re, sys
replies = open(sys.argv[1]).read().splitlines()
times = {"applied": [], "compiled": []}
for r in replies:
    m = re.search(r"; (applied|compiled) in ([0-9.]+) ms", r)
    if m:
        times[m.group(1)].append(float(m.group(2)))
def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
for how, v in times.items():
    print(f"{how:9s} {len(v):4d} edits   median {q(v, .5):9.3f} ms   p99 {q(v, .99):9.3f} ms   max {max(v) if v else float('nan'):9.3f} ms")
landed = sum(1 for l in open(sys.argv[2]) if "rules compiled in" in l)
print(f"background compiles that landed while the edits ran: {landed}")
EOF
