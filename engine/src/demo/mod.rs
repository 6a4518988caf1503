//! `pollgate demo`: five "containers" (network namespaces) on this
//! machine, attached through four veth ports and one tap port: four on a
//! learning switch, one on a second bridge, the two routed by pollgate's
//! gateway interfaces; real traffic between them (ping, UDP bursts) with
//! live per-port stats, a summary, and everything removed at the end —
//! also on Ctrl-C, and by the reaper if the engine is killed.

pub mod ping;
pub mod udp;

use crate::config::{self, Topology};
use crate::engine::Engine;
use crate::stats::LiveStats;
use anyhow::{Context, Result};
use pollgate_pmd::netns::NetNs;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The built-in topology. Two workers, each with one cross-connect.
pub const TOPOLOGY: &str = r#"
# pollgate demo: four containers on one learning switch, one more on a
# second bridge, routed to each other through the bridges' gateways.
#   pg-web   198.18.0.1  veth ─┐
#   pg-db    198.18.0.2  veth ─┤  bridge "office": MAC learning, flooding,
#   pg-app   198.18.0.3  veth ─┤  storm control; ACL "db-guard": UDP to
#   pg-cache 198.18.0.4  tap  ─┘  pg-db only from pg-web; gateway .0.254
#   pg-edge  198.18.1.10 veth ──  bridge "edge", gateway 198.18.1.254
[engine]
idle = "backoff"

[switch]
aging = 300

[[port]]
name = "pg-web"
kind = "veth"
netns = "pg-web"
netns_create = true
address = "198.18.0.1/24"
container_gateway = "198.18.0.254"
container_mac = "02:50:47:00:00:01"
storm_broadcast = 1000

[[port]]
name = "pg-db"
kind = "veth"
netns = "pg-db"
netns_create = true
address = "198.18.0.2/24"
container_gateway = "198.18.0.254"
container_mac = "02:50:47:00:00:02"
acl_out = "db-guard"

[[port]]
name = "pg-app"
kind = "veth"
netns = "pg-app"
netns_create = true
address = "198.18.0.3/24"
container_gateway = "198.18.0.254"
container_mac = "02:50:47:00:00:03"

[[port]]
name = "pg-cache"
kind = "tap"
netns = "pg-cache"
netns_create = true
address = "198.18.0.4/24"
container_gateway = "198.18.0.254"
container_mac = "02:50:47:00:00:04"

[[port]]
name = "pg-edge"
kind = "veth"
netns = "pg-edge"
netns_create = true
address = "198.18.1.10/24"
container_gateway = "198.18.1.254"
container_mac = "02:50:47:00:01:0a"

[[bridge]]
name = "office"
members = [{ port = "pg-web" }, { port = "pg-db" }, { port = "pg-app" }, { port = "pg-cache" }]
gateway = { addresses = ["198.18.0.254/24"] }

[[bridge]]
name = "edge"
members = [{ port = "pg-edge" }]
gateway = { addresses = ["198.18.1.254/24"] }

# Checked on every packet the switch sends to pg-db.
[[acl]]
name = "db-guard"
default = "permit"
rules = [
  "permit proto=udp src=198.18.0.1 dport=9000",
  "deny proto=udp",
]
"#;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Datagrams per UDP burst.
    pub udp_count: u64,
    /// Datagrams per second of each burst.
    pub udp_rate: u64,
    /// Keep the topology up this long after the traffic, for your own
    /// `ip netns exec pg-web ping 198.18.0.2`.
    pub hold: Duration,
}

pub fn topology() -> Result<Topology> {
    Ok(config::parse("<demo>", TOPOLOGY)?)
}

pub fn run(opts: &DemoOptions) -> Result<()> {
    anyhow::ensure!(
        pollgate_pmd::device::is_root(),
        "pollgate demo builds network namespaces, veth pairs and XDP programs: run it as root (CAP_NET_ADMIN, CAP_BPF/CAP_SYS_ADMIN, CAP_NET_RAW)"
    );
    let topo = topology()?;
    for p in &topo.ports {
        if let Some(c) = &p.container {
            anyhow::ensure!(!NetNs::exists(&c.netns), "namespace {} already exists (a previous demo still running?): remove it with `ip netns del {}`", c.netns, c.netns);
        }
    }
    println!("pollgate demo: 5 containers on two bridges (veth and tap ports, AF_XDP), an ACL, a router between the bridges");
    for line in TOPOLOGY.lines().filter(|l| l.starts_with("#   ")) {
        println!("  {}", line.trim_start_matches("#   "));
    }
    crate::reaper::spawn().context("starting the cleanup process")?;
    let engine = Engine::start(&topo).context("starting the engine")?;
    let ctl_path = &topo.config.engine.ctl_socket;
    let _ctl = match crate::ctl::CtlServer::start(ctl_path, Arc::new(engine.ctl_state(&topo))) {
        Ok(c) => {
            println!(
                "  control socket {}: try `pollgate ctl show macs` while it runs",
                ctl_path.display()
            );
            Some(c)
        }
        Err(e) => {
            tracing::warn!("no control socket: {e}");
            None
        }
    };
    for (_, p) in engine.view().live_ports() {
        println!("  port {:<9} {:<5} {}", p.name, p.kind, p.detail);
    }
    let stop = engine.stop_flag();
    let ctrlc_stop = stop.clone();
    ctrlc::set_handler(move || ctrlc_stop.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;

    // Live stats on stderr while the traffic runs.
    let live = Arc::new(AtomicBool::new(true));
    let ticker = {
        let (live, ports) = (live.clone(), engine.view().ports.clone());
        std::thread::spawn(move || {
            let mut stats = LiveStats::new(&ports, Duration::from_secs(1));
            while live.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(table) = stats.tick() {
                    eprint!("\n{table}");
                }
            }
        })
    };

    let result = traffic(opts, &stop);
    if result.is_ok() && !opts.hold.is_zero() && !stop.load(Ordering::Relaxed) {
        println!("\nholding the topology for {:.0} s: try `ip netns exec pg-web ping 198.18.0.2` (Ctrl-C ends)", opts.hold.as_secs_f64());
        engine.wait(Some(Instant::now() + opts.hold), None);
    }
    live.store(false, Ordering::Relaxed);
    let _ = ticker.join();
    let view = engine.view();
    if view.has_bridges() {
        let table = engine.control.table();
        let now = engine.started.elapsed().as_secs() as u32;
        println!("\n== MAC table");
        for e in table.entries(None, now) {
            println!(
                "  {}  port {:<9} age {} s",
                e.mac, view.ports[e.port as usize].name, e.age_secs
            );
        }
    }
    let state = engine.ctl_state(&topo);
    for (title, req) in [("routes", "show routes"), ("neighbours", "show neighbors")] {
        if let Ok(t) = state.handle(req) {
            println!("\n== {title}");
            print!(
                "{}",
                t.lines().map(|l| format!("  {l}\n")).collect::<String>()
            );
        }
    }
    if let Some(acl) = &view.acl {
        println!("\n== ACLs");
        if let Ok(t) = acl.show(None, false) {
            print!(
                "{}",
                t.lines().map(|l| format!("  {l}\n")).collect::<String>()
            );
        }
    }
    let summary = engine.shutdown();
    println!("\n{}", summary.render());
    let left: Vec<_> = ["pg-web", "pg-db", "pg-app", "pg-cache", "pg-edge"]
        .into_iter()
        .filter(|n| NetNs::exists(n))
        .collect();
    if left.is_empty() {
        println!("cleaned up: namespaces, veth pairs, tap device and XDP programs removed");
    } else {
        println!("namespaces still present: {left:?}");
    }
    result?;
    anyhow::ensure!(
        summary.frames_balanced(),
        "frame accounting did not balance"
    );
    Ok(())
}

fn traffic(opts: &DemoOptions, stop: &AtomicBool) -> Result<()> {
    let is_stopped = || stop.load(Ordering::Relaxed);
    let ns = |n: &str| NetNs::open(n).with_context(|| format!("opening namespace {n}"));
    let (web, db, app, cache) = (ns("pg-web")?, ns("pg-db")?, ns("pg-app")?, ns("pg-cache")?);
    let edge = ns("pg-edge")?;
    let ip = |last: u8| Ipv4Addr::new(198, 18, 0, last);

    println!("\n== ping");
    for (name, from, dst) in [
        ("pg-web -> pg-db    (veth/veth)", &web, ip(2)),
        ("pg-app -> pg-cache (veth/tap) ", &app, ip(4)),
        ("pg-cache -> pg-web (tap/veth) ", &cache, ip(1)),
    ] {
        let r = ping::ping(from, dst, 5, Duration::from_millis(200), &is_stopped)?;
        println!("  {name}: {}", r.render());
    }

    println!("\n== routed (the bridges' gateways)");
    for (name, from, dst) in [
        (
            "pg-edge -> its gateway        ",
            &edge,
            Ipv4Addr::new(198, 18, 1, 254),
        ),
        (
            "pg-web  -> pg-edge (routed)   ",
            &web,
            Ipv4Addr::new(198, 18, 1, 10),
        ),
        ("pg-edge -> pg-web  (routed)   ", &edge, ip(1)),
    ] {
        let r = ping::ping(from, dst, 5, Duration::from_millis(200), &is_stopped)?;
        println!("  {name}: {}", r.render());
    }

    println!(
        "\n== UDP bursts ({} datagrams of 64 bytes each way at {}/s, at most 5 s)",
        opts.udp_count, opts.udp_rate
    );
    let limit = Duration::from_secs(5);
    for (name, from, src, to, dst) in [
        ("pg-web -> pg-db   ", &web, ip(1), &db, ip(2)),
        ("pg-db  -> pg-web  ", &db, ip(2), &web, ip(1)),
        ("pg-app -> pg-cache", &app, ip(3), &cache, ip(4)),
        ("pg-cache -> pg-app", &cache, ip(4), &app, ip(3)),
    ] {
        if is_stopped() {
            break;
        }
        let flow = udp::Flow {
            from,
            src,
            to,
            dst,
            port: 9000,
        };
        let load = udp::Load {
            count: opts.udp_count,
            rate: opts.udp_rate,
            size: 64,
            limit,
        };
        let r = udp::burst(&flow, &load, &is_stopped)?;
        println!("  {name}: {}", r.render());
    }
    if !is_stopped() {
        let flow = udp::Flow {
            from: &app,
            src: ip(3),
            to: &db,
            dst: ip(2),
            port: 9000,
        };
        let load = udp::Load {
            count: 500,
            rate: opts.udp_rate,
            size: 64,
            limit,
        };
        let r = udp::burst(&flow, &load, &is_stopped)?;
        println!(
            "  pg-app -> pg-db   : {} (denied by ACL db-guard)",
            r.render()
        );
    }
    Ok(())
}
