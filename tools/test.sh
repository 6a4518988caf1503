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
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "missing ${need_pkgs[*]} and not root: tests that need them will skip" >&2
  fi
fi

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
# One test binary at a time: the namespace tests build real devices and
# the machine has two cores.
cargo test --workspace --quiet -- --test-threads=2
