#!/usr/bin/env bash
# Runs every test of pollgate, after installing what the tests need.
# As root it also runs the tests that build network namespaces and veth
# pairs; without root those print why they skip.
#
#   tools/test.sh            (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for cmd_pkg in ip:iproute2 ping:iputils-ping ethtool:ethtool bpftool:bpftool \
  podman:podman runc:runc /usr/lib/cni/host-local:containernetworking-plugins /bin/busybox:busybox-static \
  /usr/lib/frr/bgpd:frr; do
  what=${cmd_pkg%%:*}
  if [ "${what#/}" != "$what" ]; then [ -e "$what" ]; else command -v "$what" >/dev/null; fi ||
    need_pkgs+=("${cmd_pkg#*:}")
done
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need_pkgs[*]}"
    # The tests need ip, and bpftool (to detach an XDP program by hand,
    # as an operator would); ping and ethtool are for looking at what
    # the tests build (ip netns exec … ping). podman (with runc, the
    # reference CNI plugins for host-local, and busybox for an image-less
    # root filesystem) is the real runtime pollgate-cni is tested under.
    # FRR (zebra, bgpd) is the EVPN control plane the fabric test runs
    # pollgate under.
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null; } ||
      echo "could not install ${need_pkgs[*]}: the tests that need them fail under CI, skip otherwise" >&2
  else
    echo "missing ${need_pkgs[*]} (not installed: not root); the tests that need them skip" >&2
  fi
fi

# scapy, from PyPI, in a venv of its own under target/ (whatever python3
# is first on PATH: a pyenv build here, Debian's elsewhere): it dissects
# the pcap files `ctl capture` writes, and builds the TRex profiles'
# frames to compare with pollgate-pktgen's. The tests find it through
# POLLGATE_PYTHON.
venv=target/py
if ! "$venv/bin/python" -c 'import scapy' 2>/dev/null; then
  echo "installing scapy (PyPI) into $venv"
  python3 -m venv "$venv" 2>/dev/null || {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null &&
      { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; } &&
      python3 -m venv "$venv"
  } || echo "could not make a python venv in $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check 'scapy>=2.5,<3' ||
    echo "could not install scapy from PyPI; the scapy checks will fail under CI" >&2
fi
export POLLGATE_PYTHON=$PWD/$venv/bin/python

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build"
# Every binary of the workspace: the tests run pollgate-pktgen and
# pollgate-cni as separate programs, which `cargo test` alone does not build.
cargo build --workspace --quiet
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

# Fuzz smoke: each cargo-fuzz target for a few seconds from its corpus
# (the corpora themselves are replayed above, on stable, by
# engine/tests/fuzz_corpus.rs). Needs a nightly toolchain and cargo-fuzz.
FUZZ_SECS=${FUZZ_SECS:-10}
echo "== fuzz smoke (${FUZZ_SECS}s per target)"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "SKIP fuzz smoke: no nightly toolchain (rustup toolchain install nightly)"
else
  command -v cargo-fuzz >/dev/null ||
    cargo install --quiet --locked cargo-fuzz ||
    echo "could not install cargo-fuzz" >&2
  if command -v cargo-fuzz >/dev/null; then
    for t in parse pipeline config ctl; do
      # A scratch copy of the corpus: the smoke run must not grow the
      # committed one.
      scratch=$(mktemp -d)
      cp -r "fuzz/corpus/$t/." "$scratch/"
      if (cd fuzz && cargo +nightly fuzz run -O "$t" "$scratch" -- -max_total_time="$FUZZ_SECS" -timeout=10 2>&1 | tail -1); then
        echo "fuzz $t: ok"
      else
        echo "fuzz $t: FAILED (reproducer under fuzz/artifacts/$t/)"
        status=1
      fi
      rm -rf "$scratch"
    done
  else
    echo "SKIP fuzz smoke: no cargo-fuzz"
  fi
fi

# One closing line for the whole run (cargo prints one per test binary,
# the last being the doc-tests).
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^SKIP / { s++ }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p - s, f, s }' "$log"
exit "$status"
