//! Container churn (root): 100 cycles of `ctl port add` → ping → `ctl port
//! del` while a paced flow runs between two other containers. The flow
//! loses nothing; no device, namespace or XDP program is left behind;
//! the engine's RSS stays flat and its frames balance at exit. Prints the
//! attach and detach times (median, p99) and the flow's longest latency
//! beside a run of the same flow with no changes: the pause, if any,
//! that the changes cost the other ports.

mod common;

use common::{
    ctl, flow_result, head_sized, netns_exists, paced_flow, ping, root_with_ip, run_engine_on,
    stop, Script,
};
use std::process::Command;
use std::time::{Duration, Instant};

const CYCLES: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Devices here, namespaces, and XDP programs attached anywhere here.
fn leftovers() -> (usize, usize, usize) {
    let out = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    };
    let links = out(&["ip", "-o", "link", "show"]);
    let netns = out(&["ip", "netns", "list"]);
    (
        links.lines().count(),
        netns.lines().count(),
        links.lines().filter(|l| l.contains(" xdp")).count(),
    )
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_hundred_containers_come_and_go_beside_a_flow_that_loses_nothing() {
    if !root_with_ip("container churn") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pg-churn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = Script::default();
    s.container("pgch-na", "pgch-a", "198.18.40.1/24");
    s.container("pgch-nb", "pgch-b", "198.18.40.2/24");
    let body = r#"
[[port]]
name = "a"
kind = "afxdp"
iface = "pgch-a"
[[port]]
name = "b"
kind = "afxdp"
iface = "pgch-b"
[[port]]
name = "d"
kind = "veth"
netns = "pgch-nd"
netns_create = true
address = "198.18.40.4/24"
[[bridge]]
name = "br0"
members = [{ port = "a" }, { port = "b" }, { port = "d" }]
"#;
    let sock = dir.join("ctl.sock");
    let engine = run_engine_on(&dir, &(head_sized(&dir, 2048, 16384) + body));
    let pid = engine.id();

    // The same flow with nothing changing: its longest latency is what
    // this machine gives anyway.
    let (_, _, lost, quiet_max) = flow_result(paced_flow(&dir, "pgch-na", "pgch-nb", 10_000, 3.0));
    assert_eq!(lost, 0, "the flow loses frames with no change at all");

    let before = leftovers();
    let flow = paced_flow(&dir, "pgch-na", "pgch-nb", 10_000, 40.0);
    std::thread::sleep(Duration::from_millis(500));
    let (mut add_ms, mut del_ms) = (Vec::new(), Vec::new());
    // RSS after each cycle from the tenth on: glibc's per-thread arenas
    // and the transparent huge pages of large tables move it in steps of
    // megabytes either way, so medians of ten cycles are compared.
    let mut rss = Vec::new();
    let started = Instant::now();
    for i in 0..CYCLES {
        let t = Instant::now();
        ctl(
            &sock,
            "port add name=c kind=veth netns=pgch-nc netns_create=true address=198.18.40.3/24 bridge=br0",
        )
        .unwrap_or_else(|e| panic!("cycle {i}: port add: {e}"));
        add_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(ping("pgch-nc", "198.18.40.4"), "cycle {i}: c reaches d");
        let t = Instant::now();
        ctl(&sock, "port del c").unwrap_or_else(|e| panic!("cycle {i}: port del: {e}"));
        del_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!netns_exists("pgch-nc"), "cycle {i}: namespace left");
        if i >= 9 {
            rss.push(rss_kib(pid));
        }
    }
    let churn_secs = started.elapsed().as_secs_f64();
    let median = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let rss_at_10 = median(&rss[..10]);
    let rss_end = median(&rss[rss.len() - 10..]);
    // Slots are reused: 100 cycles do not grow the topology.
    let ports = ctl(&sock, "show ports").unwrap();
    assert_eq!(ports.lines().count(), 3, "{ports}");
    assert_eq!(
        leftovers(),
        before,
        "devices, namespaces or XDP programs left"
    );
    let (sent, _, lost, churn_max) = flow_result(flow);
    let summary = stop(engine);
    eprintln!(
        "{CYCLES} cycles in {churn_secs:.1} s; port add: median {:.1} ms, p99 {:.1} ms; port del: median {:.1} ms, p99 {:.1} ms",
        percentile(&mut add_ms, 0.5),
        percentile(&mut add_ms, 0.99),
        percentile(&mut del_ms, 0.5),
        percentile(&mut del_ms, 0.99),
    );
    eprintln!(
        "paced flow (10 kpps): sent {sent}, lost {lost}; longest latency {:.2} ms during churn, {:.2} ms with no change; RSS (median of 10 cycles) {} KiB at cycles 10-19, {} KiB at the last 10",
        churn_max as f64 / 1e6,
        quiet_max as f64 / 1e6,
        rss_at_10,
        rss_end
    );
    assert!(churn_secs < 40.0, "the flow must cover the churn");
    assert_eq!(lost, 0, "the flow beside the churn lost frames: {summary}");
    // About 80 cycles separate the two medians: a leak of 80 KiB a
    // cycle (a port's descriptor rings are more) is past 6 MiB.
    assert!(
        rss_end <= rss_at_10 + 6144,
        "RSS grew from {rss_at_10} to {rss_end} KiB over {} cycles",
        CYCLES - 10
    );
    assert!(!summary.contains("LEAK"), "{summary}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
