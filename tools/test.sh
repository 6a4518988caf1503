#!/usr/bin/env bash
# Runs every test of pollgate, after installing what the tests need.
# As root it also runs the tests that build network namespaces and veth
# pairs; without root those print why they skip.
#
#   tools/test.sh            (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for cmd_pkg in ip:iproute2 ping:iputils-ping ethtool:ethtool; do
  command -v "${cmd_pkg%%:*}" >/dev/null || need_pkgs+=("${cmd_pkg#*:}")
done
# scapy dissects the pcap files `ctl capture` writes (an independent
# reader); the test uses Debian's /usr/bin/python3, not a pyenv python.
/usr/bin/python3 -c 'import scapy' 2>/dev/null || need_pkgs+=(python3-scapy)
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need_pkgs[*]}"
    # The tests need scapy (they fail under CI without it, skip
    # elsewhere); the other tools are for looking at what the tests
    # build (ip netns exec … ping).
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null; } ||
      echo "could not install ${need_pkgs[*]}; the tests do not need them, going on" >&2
  else
    echo "missing ${need_pkgs[*]} (not installed: not root); the tests do not need them" >&2
  fi
fi

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
# cargo runs the test binaries one after another; two tests at a time
# within a binary suit this two-core machine. Without root the namespace
# tests skip, and --nocapture shows the reason each prints.
extra=()
if [ "$(id -u)" != 0 ]; then
  echo "not root: the tests that build namespaces, veth pairs and XDP programs will print SKIP"
  extra=(--nocapture)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --quiet --no-fail-fast -- --test-threads=2 "${extra[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary,
# the last being the doc-tests).
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^SKIP / { s++ }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p - s, f, s }' "$log"
exit "$status"
