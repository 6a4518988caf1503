#!/usr/bin/env bash
# Renders every traffic spec in tools/scenarios/ into its TRex profile
# (tools/trex/) and pktgen-DPDK script (tools/pktgen-dpdk/). The tests
# fail when these files are older than the specs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p pollgate-pktgen
for spec in tools/scenarios/*.toml; do
  name=$(basename "$spec" .toml)
  target/release/pollgate-pktgen render trex "$spec" -o "tools/trex/$name.py"
  target/release/pollgate-pktgen render pktgen "$spec" -o "tools/pktgen-dpdk/$name.pkt"
done
echo "rendered $(ls tools/scenarios/*.toml | wc -l) specs"
