# Shared by the perf scripts (sourced): the binaries, and veth pairs whose
# far end is eth0 in a network namespace of its own.

perf_init() { # builds pollgate, pollgate-pktgen and pollgate-cni; sets PG, PKTGEN and CNI
  [ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
  cargo build --release -q -p pollgate -p pollgate-pktgen -p pollgate-cni
  PG=$PWD/target/release/pollgate
  PKTGEN=$PWD/target/release/pollgate-pktgen
  CNI=$PWD/target/release/pollgate-cni
}

ns_veth() { # HOSTDEV NS MAC
  # One queue each way: every frame reaches the one socket on queue 0.
  ip netns add "$2"
  ip link add "$1" numtxqueues 1 numrxqueues 1 type veth peer name eth0 numtxqueues 1 numrxqueues 1 netns "$2"
  ip -n "$2" link set eth0 address "$3" up
  ip link set "$1" up
}

afxdp_pair() { # HOSTDEV_A HOSTDEV_B [RING] -> config text: ports a and b, AF_XDP on the two devices ([afxdp] rings of RING entries if given)
  if [ -n "${3:-}" ]; then
    printf '[afxdp]\nrx_ring = %s\nfill_ring = %s\ntx_ring = %s\ncomp_ring = %s\n' "$3" "$3" "$3" "$3"
  fi
  printf '[[port]]\nname = "a"\nkind = "afxdp"\niface = "%s"\n[[port]]\nname = "b"\nkind = "afxdp"\niface = "%s"\n' "$1" "$2"
}

ns_veth_del() { # HOSTDEV NS [HOSTDEV NS …]
  while [ $# -ge 2 ]; do
    ip link del "$1" 2>/dev/null || true
    ip netns del "$2" 2>/dev/null || true
    shift 2
  done
}

machine() {
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
}

testpmd_mac() { # SECS CORE [CORES] -> total Mpps over all ports, testpmd mac forward on net_null
  # CORES forwarding cores from CORE up (default 1), two net_null ports
  # each; the main lcore shares the first (it only prints stats).
  local log n=${3:-1} lcores vdevs="" i
  log=$(mktemp)
  lcores="0@$2"
  for ((i = 0; i < n; i++)); do lcores+=",$((i + 1))@$(($2 + i))"; done
  for ((i = 0; i < 2 * n; i++)); do vdevs+=" --vdev net_null$i"; done
  # shellcheck disable=SC2086
  timeout -s INT $(($1 + 4)) dpdk-testpmd --no-huge --no-pci -m 1024 --lcores "$lcores" \
    $vdevs --log-level=error -- \
    --forward-mode=mac --nb-cores="$n" --burst=32 --total-num-mbufs=$((16384 * n)) \
    --stats-period "$1" >"$log" 2>&1 || true
  grep -E '^\s*Rx-pps:' "$log" | tail -$((2 * n)) | awk '{s+=$2} END {printf "%.2f", s/1e6}'
  rm -f "$log"
}

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
p99() { sort -g | awk '{v[NR]=$1} END {i=int(NR*0.99+0.5); if (i<1) i=1; print v[i]}'; }
json_mpps() { sed -E 's/.*"mpps_per_core":([0-9.]+).*/\1/'; }
# The clock cycles per packet are quoted with: measured on $CORE (the
# benchmark's core) by `pollgate cpu-clock`, a chain of one-cycle adds,
# because /proc/cpuinfo's "cpu MHz" is the base clock, not what a core
# boosting under load runs at (2445 there against 2735-2985 measured on
# the EPYC of 2026-12-07). /proc/cpuinfo only where it cannot run.
cpu_mhz() {
  local m
  m=$("$PG" cpu-clock ${CORE:+--core "$CORE"} --json 2>/dev/null | sed -nE 's/.*"measured_mhz":([0-9.]+).*/\1/p')
  [ -n "$m" ] || m=$(grep -m1 'cpu MHz' /proc/cpuinfo | awk '{print $4}')
  echo "$m"
}
# The rate rdtsc counts at, which peers' own cycle figures (rte_fib's,
# OVS's pmd-stats) are in, timed by `pollgate cpu-clock`.
tsc_mhz() {
  local m
  m=$("$PG" cpu-clock --json 2>/dev/null | sed -nE 's/.*"tsc_mhz":([0-9.]+).*/\1/p')
  [ -n "$m" ] && [ "$m" != 0.0 ] || m=$(grep -m1 'cpu MHz' /proc/cpuinfo | awk '{print $4}')
  echo "$m"
}
