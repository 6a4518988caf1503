//! `pollgate bench`: the configured pipeline between two in-memory null
//! ports on one pinned core, for N seconds — the measurement testpmd makes
//! with `--vdev net_null0 --vdev net_null1 --forward-mode=io|mac`.

use crate::bench_service::{self, Service};
use crate::bench_traffic::FIRST_VID;
use crate::config::{self, ForwardModeCfg, Topology};
use crate::engine::Engine;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct BenchParams {
    pub seconds: f64,
    pub forward: ForwardModeCfg,
    pub parse: bool,
    pub size: usize,
    pub burst: usize,
    pub core: Option<usize>,
    /// Switch instead of cross-connect: both ports in one bridge domain,
    /// each replaying a frame addressed to the other's MAC (parse, VLAN,
    /// learn, lookup, egress on every packet).
    pub l2: bool,
    /// Pool geometry and engine settings come from here when given.
    pub base: Option<Topology>,
    /// A ClassBench rule file checked as an ingress ACL on both ports
    /// (default permit, so the traffic still flows).
    pub acl: Option<std::path::PathBuf>,
    /// VXLAN both ways: null0 is a VTEP's underlay replaying VXLAN
    /// packets (decap, then to null1), null1 a bridge port whose frames go
    /// to a MAC learned behind the tunnel (encap, then out of null0).
    pub vxlan: bool,
    /// Every stage at once (`bench_gateway`): VXLAN underlay against a
    /// VLAN trunk, the ACL with `acl`, `macs` and `flows` both ways.
    pub gateway: bool,
    /// An L2 service path instead: customer port, macvlan or ipvlan.
    pub service: Option<Service>,
    /// Workers, each with its own pair of ports (and domain), on cores
    /// `core`, `core + 1`…: the switch or cross-connect on every CPU.
    pub workers: usize,
    /// Distinct MAC pairs and 5-tuples each port replays, in random
    /// order (1 and 1: the one template frame).
    pub macs: usize,
    pub flows: usize,
    /// VLANs (with `gateway`, VLAN and VNI pairs) the MAC pairs spread
    /// over, host pair i in segment i % N; 0 or 1: one, untagged on `l2`.
    pub segments: usize,
    /// Route instead (`bench_router`): IPv4 through this many FIB routes
    /// (0: not routed).
    pub routes: usize,
    /// With `routes`: side 0 is masqueraded through side 1's gateway,
    /// `flows` sessions (`bench_router`).
    pub nat: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub forward: String,
    pub parse: bool,
    pub l2: bool,
    pub service: Option<Service>,
    pub macs: usize,
    pub flows: usize,
    /// The flows are replayed in the order they were written (NAT's:
    /// one new source port after another), not shuffled.
    #[serde(skip)]
    pub flows_in_order: bool,
    pub frame_size: usize,
    pub burst: usize,
    pub core: Option<usize>,
    /// Workers, and the core each was pinned to.
    pub workers: usize,
    pub cores: Vec<Option<usize>>,
    pub seconds: f64,
    pub packets: u64,
    pub mpps_per_core: f64,
    pub ns_per_packet: f64,
    /// The first worker's core clock, measured on it right after the run
    /// (`pollgate cpu-clock`), and ns per packet in its cycles: the
    /// figure that travels between machines where Mpps does not.
    pub core_mhz: Option<f64>,
    pub cycles_per_packet: Option<f64>,
    /// Dropped while the rate was measured.
    pub drops: u64,
    /// Dropped over the whole run, setup included (a router's packets
    /// before its routes are in, a NAT's replies before their sessions).
    pub drops_total: u64,
    pub frames_balanced: bool,
    /// Rules of the ingress ACL, when there was one.
    pub acl_rules: Option<usize>,
    /// Mpps transmitted by each port (for `--vxlan`: null0 carries the
    /// encapsulated direction, null1 the decapsulated one).
    pub port_mpps: Vec<(String, f64)>,
    /// With `--nat`: sessions made per second while the first pass of
    /// the flows makes them all.
    pub nat_sessions_per_second: Option<f64>,
}

impl BenchResult {
    pub fn render(&self) -> String {
        format!(
            "{} forward{}{}, {}-byte frames, burst {}, {}: {:.2} Mpps per core, {:.2} ns per packet{} ({} packets in {:.2} s, {} drops while measured, frames {})",
            self.forward,
            if self.parse { " + parse" } else { "" },
            self.acl_rules.map_or(String::new(), |n| format!(" + ingress ACL of {n} rules"))
                + &if self.macs > 1 || self.flows > 1 {
                    format!(
                        ", {} MAC pairs and {} flows per port in {} order",
                        self.macs,
                        self.flows,
                        if self.flows_in_order { "sequential" } else { "random" }
                    )
                } else {
                    String::new()
                },
            self.frame_size,
            self.burst,
            {
                let cores: Vec<String> = self
                    .cores
                    .iter()
                    .map(|c| c.map_or("-".to_string(), |c| c.to_string()))
                    .collect();
                match self.workers {
                    1 => format!("1 worker on core {}", cores.join("")),
                    n => format!("{n} workers on cores {}", cores.join(", ")),
                }
            },
            self.mpps_per_core,
            self.ns_per_packet,
            match (self.cycles_per_packet, self.core_mhz) {
                (Some(c), Some(m)) => format!(" = {c:.0} cycles at {m:.0} MHz (measured)"),
                _ => String::new(),
            },
            self.packets,
            self.seconds,
            self.drops,
            if self.frames_balanced { "balanced" } else { "LEAKED" },
        ) + &if self.forward.starts_with("vxlan") || self.forward.starts_with("gateway") {
            let m = |n: &str| self.port_mpps.iter().find(|p| p.0 == n).map_or(0.0, |p| p.1);
            format!("; encap (out of null0) {:.2} Mpps, decap (out of null1) {:.2} Mpps", m("null0"), m("null1"))
        } else {
            String::new()
        } + &self.nat_sessions_per_second.map_or(String::new(), |r| {
            format!("; {:.2} M new NAT sessions per second while they were made", r / 1e6)
        })
    }
}

/// A VXLAN packet from remote VTEP 198.18.100.2 to ours (198.18.100.1),
/// VNI 5000, whose inner frame goes from MAC :99 (learned behind the
/// tunnel) to null1's MAC; `size` bytes in all. Built with the encap
/// code itself, from the remote's side.
fn vxlan_frame(size: usize) -> Vec<u8> {
    use pollgate_pipeline::template::{udp4_frame, vxlan_frame};
    use pollgate_pipeline::vxlan::OVERHEAD;
    use pollgate_pipeline::wire::MacAddr;
    let inner = udp4_frame(
        size.saturating_sub(OVERHEAD).max(60),
        MacAddr([2, 0, 0, 0, 0, 0x99]),
        MacAddr([2, 0, 0, 0, 0, 2]),
        [198, 18, 50, 2],
        [198, 18, 50, 1],
        1024,
        1025,
        b"pollgate",
    );
    vxlan_frame(
        ([198, 18, 100, 2], MacAddr([2, 0, 0, 0, 0, 0xfe])),
        ([198, 18, 100, 1], MacAddr([2, 0, 0, 0, 0, 1])),
        5000,
        &inner,
    )
}

fn vxlan_topology(p: &BenchParams, dir: &std::path::Path) -> anyhow::Result<Topology> {
    let pcap = dir.join("vxlan.pcap");
    let mut w = pollgate_pmd::pcap::PcapWriter::create(&pcap)?;
    w.write(&vxlan_frame(p.size))?;
    w.flush()?;
    let core = p.core.map_or(String::new(), |c| format!("core = {c}\n"));
    let src = format!(
        r#"
[engine]
burst = {burst}
idle = "poll"
[[port]]
name = "null0"
kind = "null"
rx = "{pcap}"
mac = "02:00:00:00:00:01"
[[port]]
name = "null1"
kind = "null"
size = {size}
mac = "02:00:00:00:00:02"
peer_mac = "02:00:00:00:00:99"
[[bridge]]
name = "bench"
vni = 5000
flood = ["198.18.100.2"]
members = [{{ port = "null1" }}]
[vtep]
port = "null0"
address = "198.18.100.1"
neighbors = [{{ ip = "198.18.100.2", mac = "02:00:00:00:00:fe" }}]
[[worker]]
{core}ports = ["null0", "null1"]
"#,
        burst = p.burst,
        pcap = pcap.display(),
        size = p.size.saturating_sub(50).max(60),
    );
    Ok(config::parse("<bench>", &src)?)
}

/// The `[pool]` section: the geometry of `--config`, else the default.
pub(crate) fn pool_section(p: &BenchParams) -> String {
    let pool = p.base.as_ref().map(|t| t.pool).unwrap_or_default();
    format!(
        "[pool]\nframes = {}\nframe_size = {}\nheadroom = {}\nhugepages = {}\n",
        pool.frames, pool.frame_size, pool.headroom, pool.hugepages
    )
}

/// The `--acl` rule file as an `[[acl]]` table named "bench" (default
/// permit), and the line that attaches it to a port; empty without one.
pub(crate) fn acl_sections(p: &BenchParams) -> anyhow::Result<(String, &'static str)> {
    Ok(match &p.acl {
        Some(f) => (
            crate::acl_tool::import(f, "bench", pollgate_pipeline::acl::Action::Permit)?,
            "acl_in = \"bench\"",
        ),
        None => (String::new(), ""),
    })
}

/// Waits (up to 10 s) until the MAC table has stopped growing and
/// learning: a mix of many MACs is learnt in its first passes, as the
/// table grows to hold it, and the rate measured is the steady state's.
fn settle_macs(engine: &Engine) {
    let t = engine.control.table();
    let look = || (t.capacity(), t.counters.learned.load(Ordering::Relaxed));
    let start = Instant::now();
    let mut last = look();
    while start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        let now = look();
        if now == last {
            break;
        }
        last = now;
    }
}

/// The segments `--vlans` and `--vnis` ask for: VLANs on the L2 switch,
/// VLAN and VNI pairs on the gateway (either count sets both there).
pub fn segments(vlans: usize, vnis: usize, l2: bool, gateway: bool) -> anyhow::Result<usize> {
    const MAX: usize = 4000;
    for (name, n) in [("--vlans", vlans), ("--vnis", vnis)] {
        anyhow::ensure!((1..=MAX).contains(&n), "{name} {n}: use 1..={MAX}");
    }
    if gateway {
        anyhow::ensure!(
            vlans == 1 || vnis == 1 || vlans == vnis,
            "--vlans {vlans} --vnis {vnis}: the gateway bridges each VLAN to its own VNI, so give one count"
        );
        return Ok(vlans.max(vnis));
    }
    anyhow::ensure!(vnis == 1, "--vnis {vnis}: only with --gateway");
    anyhow::ensure!(
        vlans == 1 || l2,
        "--vlans {vlans}: only with --l2 or --gateway"
    );
    Ok(vlans)
}

fn topology(p: &BenchParams, dir: &std::path::Path) -> anyhow::Result<Topology> {
    // A mix replays from captures; one frame is the null ports' template.
    // With VLANs each host pair's frames carry its segment's tag, on the
    // wire at the size asked for.
    let seg = if p.l2 { p.segments.max(1) } else { 1 };
    let (rx, switch) = if p.macs > 1 || p.flows > 1 || seg > 1 {
        use crate::bench_traffic::{segment_of, tagged};
        let tag = |f: Vec<u8>| tagged(&f, FIRST_VID + segment_of(&f, seg) as u16);
        let [a, b] = if seg > 1 {
            let inner = p.size.saturating_sub(4).max(60);
            crate::bench_traffic::write_wrapped(dir, p.macs, p.flows, [inner; 2], [&tag, &tag])?
        } else {
            crate::bench_traffic::write(dir, p.macs, p.flows, p.size)?
        };
        let limit = (2 * p.macs + 16).next_power_of_two().max(1 << 20);
        (
            [
                format!("rx = \"{}\"", a.display()),
                format!("rx = \"{}\"", b.display()),
            ],
            format!("[switch]\nmac_limit = {limit}\n"),
        )
    } else {
        (Default::default(), String::new())
    };
    let (acl, acl_in) = acl_sections(p)?;
    let pool = pool_section(p);
    let forward = match p.forward {
        ForwardModeCfg::Io => "io",
        ForwardModeCfg::Mac => "mac",
    };
    let mut src = format!(
        "[engine]\nforward = \"{forward}\"\nparse = {parse}\nburst = {burst}\nidle = \"poll\"\n{pool}\n{switch}\n{acl}\n",
        parse = p.parse,
        burst = p.burst,
    );
    // One pair of ports per worker, each pair its own domain (or
    // cross-connect) on its own core: the workers share nothing but the
    // MAC table, as testpmd's forwarding cores share nothing.
    for w in 0..p.workers.max(1) {
        let (a, b) = (format!("null{}", 2 * w), format!("null{}", 2 * w + 1));
        let core = p
            .core
            .map_or(String::new(), |c| format!("core = {}\n", c + w));
        let wiring = if p.l2 && seg > 1 {
            (0..seg)
                .map(|k| {
                    let vid = FIRST_VID as usize + k;
                    format!("[[bridge]]\nname = \"bench{w}v{k}\"\nmembers = [{{ port = \"{a}\", vid = {vid} }}, {{ port = \"{b}\", vid = {vid} }}]\n")
                })
                .collect()
        } else if p.l2 {
            format!("[[bridge]]\nname = \"bench{w}\"\nmembers = [{{ port = \"{a}\" }}, {{ port = \"{b}\" }}]")
        } else {
            format!("[[xconnect]]\nports = [\"{a}\", \"{b}\"]")
        };
        src += &format!(
            r#"
[[port]]
name = "{a}"
kind = "null"
size = {size}
mac = "02:00:00:00:00:01"
peer_mac = "02:00:00:00:00:02"
{rx0}
{trunk}
{acl_in}

[[port]]
name = "{b}"
kind = "null"
size = {size}
mac = "02:00:00:00:00:02"
peer_mac = "02:00:00:00:00:01"
{rx1}
{trunk}
{acl_in}

{wiring}

[[worker]]
{core}ports = ["{a}", "{b}"]
"#,
            rx0 = rx[0],
            rx1 = rx[1],
            trunk = if seg > 1 { "vlan_mode = \"trunk\"" } else { "" },
            size = p.size,
        );
    }
    Ok(config::parse("<bench>", &src)?)
}

/// The captures `run` would replay for `p`, written into `dir` for
/// testpmd and OVS-DPDK: the gateway's (VXLAN against 802.1Q) with
/// `gateway`, the plain Ethernet mix otherwise.
pub fn write_pcaps(p: &BenchParams, dir: &Path) -> anyhow::Result<[PathBuf; 2]> {
    anyhow::ensure!(
        p.routes == 0 && p.service.is_none() && !p.vxlan && (p.segments <= 1 || p.gateway),
        "--write-pcaps writes the L2 switch's frames (one segment) or the gateway's: not with --routes, --service, --vxlan or --vlans without --gateway"
    );
    if p.gateway {
        crate::bench_gateway::write_frames(p, dir)
    } else {
        crate::bench_traffic::write(dir, p.macs, p.flows, p.size)
    }
}

pub fn run(p: &BenchParams) -> anyhow::Result<BenchResult> {
    let dir = std::env::temp_dir().join(format!("pollgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let topo = if let Some(s) = p.service {
        bench_service::topology(p, s, &dir)
    } else if p.routes > 0 {
        crate::bench_router::topology(p, &dir)
    } else if p.gateway {
        crate::bench_gateway::topology(p, &dir)
    } else if p.vxlan {
        vxlan_topology(p, &dir)
    } else {
        topology(p, &dir)
    };
    let engine = topo
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|t| Ok(Engine::start(t)?));
    // The null port read its frame at start: the capture can go.
    let _ = std::fs::remove_dir_all(&dir);
    let (topo, engine) = (topo?, engine?);
    // The label says what was installed: `--routes 1` is a /1 each way.
    let mut routes_installed = 0;
    if p.routes > 0 {
        let t = Instant::now();
        let list = crate::bench_router::install_list(p.routes);
        routes_installed = list.len();
        engine
            .control
            .with_routes(|t, _| t.map(|t| t.add_bulk(list)))
            .transpose()?;
        tracing::info!(
            "{} routes installed in {:.0} ms",
            routes_installed,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let nat_setup = p.nat.then(|| nat_setup_rate(&engine, p.flows));
    let workers = topo.workers.len();
    let per_port = |e: &Engine| -> Vec<u64> {
        e.view()
            .ports
            .iter()
            .map(|v| v.counters.snapshot().tx_packets)
            .collect()
    };
    let tx = |e: &Engine| per_port(e).iter().sum::<u64>();
    let dropped = |e: &Engine| crate::stats::drops_of(&e.workers);
    settle_macs(&engine);
    // Let the worker pin itself and warm its caches before measuring.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let (c0, p0, d0) = (tx(&engine), per_port(&engine), dropped(&engine));
    std::thread::sleep(Duration::from_secs_f64(p.seconds));
    let (c1, p1, d1) = (tx(&engine), per_port(&engine), dropped(&engine));
    let secs = t0.elapsed().as_secs_f64();
    // What was dropped while the rate was measured; the run's totals
    // also hold the setup's (a router's packets before its routes are
    // in, a NAT's replies before their sessions).
    let window = d1.since(&d0);
    let port_mpps = engine
        .view()
        .ports
        .iter()
        .zip(p0.iter().zip(&p1))
        .map(|(v, (a, b))| (v.name.clone(), (b - a) as f64 / secs / 1e6))
        .collect();
    let summary = engine.shutdown();
    // A switch that moves or overflows measures churn, not forwarding.
    if let Some([n, learned, moves, overflow, _]) = summary.macs {
        tracing::info!(
            "mac table: {n} entries; learned {learned}, moves {moves}, overflows {overflow}"
        );
    }
    for (reason, n) in summary.drops().nonzero() {
        tracing::info!(
            reason = reason.name(),
            "{n} dropped over the whole run, {} of them while measured: {}",
            window.get(reason),
            reason.description()
        );
    }
    let packets = c1 - c0;
    let pps = packets as f64 / secs;
    let ns_per_packet = if pps > 0.0 {
        1e9 * workers as f64 / pps
    } else {
        f64::INFINITY
    };
    let core = summary.reports.first().and_then(|r| r.pinned);
    let core_mhz = core_clock(core);
    let cycles_per_packet = core_mhz
        .filter(|_| ns_per_packet.is_finite())
        .map(|m| ns_per_packet * m / 1e3);
    Ok(BenchResult {
        forward: if let Some(s) = p.service {
            s.name().to_string()
        } else if p.routes > 0 {
            format!(
                "router{} ({} IPv4 routes)",
                if p.nat { " + masquerade" } else { "" },
                routes_installed
            )
        } else if p.gateway {
            let (vni, vid) = (crate::bench_gateway::FIRST_VNI, FIRST_VID as usize);
            match p.segments.max(1) {
                1 => format!("gateway (VXLAN VNI {vni} underlay <-> VLAN {vid} trunk)"),
                n => format!(
                    "gateway (VXLAN VNIs {vni}-{} underlay <-> VLANs {vid}-{} trunk, one bridge each)",
                    vni as usize + n - 1,
                    vid + n - 1
                ),
            }
        } else if p.vxlan {
            "vxlan encap+decap".to_string()
        } else if p.l2 && p.segments > 1 {
            format!(
                "l2 switch (VLANs {FIRST_VID}-{} on two trunks, one bridge each)",
                FIRST_VID as usize + p.segments - 1
            )
        } else if p.l2 {
            "l2 switch".to_string()
        } else {
            format!("{:?}", p.forward).to_lowercase()
        },
        parse: p.parse || p.l2 || p.gateway || p.routes > 0 || p.service.is_some(),
        l2: p.l2 || p.gateway || p.service.is_some(),
        service: p.service,
        macs: p.macs,
        flows: p.flows,
        flows_in_order: p.nat,
        frame_size: p.size + 4,
        burst: p.burst,
        core,
        seconds: secs,
        packets,
        mpps_per_core: pps / 1e6 / workers as f64,
        ns_per_packet,
        core_mhz,
        cycles_per_packet,
        workers,
        cores: summary.reports.iter().map(|r| r.pinned).collect(),
        drops: window.total(),
        drops_total: summary.drops().total(),
        frames_balanced: summary.frames_balanced(),
        acl_rules: topo.acls.first().map(|a| a.rules.len()),
        port_mpps,
        nat_sessions_per_second: nat_setup.flatten(),
    })
}

/// The clock of `core`, measured from this thread pinned to it (the
/// worker that ran there has stopped); `None` for an unpinned worker,
/// whose core is not known, or off x86-64.
fn core_clock(core: Option<usize>) -> Option<f64> {
    let c = core?;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
        return None;
    }
    pollgate_pmd::core_clock::measure_mhz(std::time::Duration::from_millis(20))
}

/// New NAT sessions per second from the start of traffic: the NAT
/// counters sampled every millisecond until 99 % of `flows` sessions
/// exist (a few find their window of the flow table full; the replies
/// of side 1 run meanwhile, dropped until their session is made).
/// `None` if that took under 10 ms (too short to time: a small table)
/// or over 5 s.
fn nat_setup_rate(engine: &Engine, flows: usize) -> Option<f64> {
    let created = || -> u64 {
        engine.control.with_routes(|t, _| {
            t.map_or(0, |t| {
                t.tables
                    .all_nat_counters()
                    .iter()
                    .map(|c| c.created.load(std::sync::atomic::Ordering::Relaxed))
                    .sum()
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut first = None;
    while Instant::now() < deadline {
        let (n, now) = (created(), Instant::now());
        match first {
            None if n > 0 => first = Some((n, now)),
            Some((n0, t0)) if n >= flows as u64 * 99 / 100 => {
                let secs = now.duration_since(t0).as_secs_f64();
                return (secs > 0.01).then(|| (n - n0) as f64 / secs);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}
