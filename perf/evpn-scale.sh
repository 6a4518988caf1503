#!/usr/bin/env bash
# BGP EVPN at scale, with real FRR: EVPN_MACS (10 000) source MACs sent
# once each into pollgate host 1; the time until pollgate host 2 has
# every one of them as a tunnel entry (host 1's mirror writes them to
# the kernel, zebra and bgpd advertise them through a route reflector,
# host 2's zebra installs them, host 2's mirror reads them), and the
# loss of a paced flow (EVPN_PPS, 100 000 pps) through host 1 while
# that happens, beside the same flow alone. Needs root and FRR
# (tools/test.sh installs it).
#
#   perf/evpn-scale.sh            EVPN_MACS=50000 perf/evpn-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
lscpu | sed -n 's/^Model name: *//p'
CI=1 cargo test --release --quiet -p pollgate --test evpn_fabric -- \
  --ignored --nocapture --exact evpn_mac_scale 2>&1 | grep -E '^(evpn scale|paced flow|host 1|VNI|[0-9]+ |mirror)'
