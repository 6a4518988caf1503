//! `pollgate ctl` against a running engine (in memory: no privileges).

use pollgate::config;
use pollgate::ctl::{request, CtlServer};
use pollgate::Engine;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

mod common;

const SWITCH: &str = r#"
[engine]
idle = "backoff"
[[port]]
name = "null0"
kind = "null"
mac = "02:00:00:00:00:01"
peer_mac = "02:00:00:00:00:02"
[[port]]
name = "null1"
kind = "null"
mac = "02:00:00:00:00:02"
peer_mac = "02:00:00:00:00:01"
[[bridge]]
name = "lab"
members = [{ port = "null0" }, { port = "null1" }]
"#;

fn raw(path: &std::path::Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn ctl_shows_clears_edits_macs_and_survives_garbage() {
    let dir = std::env::temp_dir().join(format!("pollgate-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let topo = config::parse("ctl.toml", SWITCH).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let _server = CtlServer::start(&sock, Arc::new(engine.ctl_state(&topo))).unwrap();
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600,
        "root-only socket"
    );
    std::thread::sleep(Duration::from_millis(200));

    let ports = request(&sock, "show ports").unwrap();
    assert!(
        ports.contains("null0") && ports.contains("null1"),
        "{ports}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&request(&sock, "show ports --json").unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);

    // Counters move while traffic flows.
    let tx = || -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&request(&sock, "show stats --json").unwrap()).unwrap();
        v["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["tx_packets"].as_u64().unwrap())
            .sum()
    };
    let t0 = tx();
    std::thread::sleep(Duration::from_millis(100));
    let t1 = tx();
    assert!(t1 > t0, "{t0} -> {t1}");
    assert_eq!(request(&sock, "clear stats").unwrap(), "stats cleared\n");
    assert!(tx() < t1, "clear stats starts the counters over");

    // The switch learned both null ports' MACs.
    let macs = request(&sock, "show macs lab").unwrap();
    assert_eq!(request(&sock, "show macs --domain lab").unwrap(), macs);
    assert!(
        macs.contains("02:00:00:00:00:01") && macs.contains("02:00:00:00:00:02"),
        "{macs}"
    );

    // A static MAC added at run time changes forwarding at once: pointing
    // null1's MAC at null0 turns null0's traffic into hairpins.
    let same = || -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&request(&sock, "show stats --json").unwrap()).unwrap();
        v["drops"]["same_segment"].as_u64().unwrap_or(0)
    };
    assert_eq!(same(), 0);
    request(&sock, "mac add lab 02:00:00:00:00:02 null0").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(same() > 0, "forwarding changed");
    request(&sock, "mac del lab 02:00:00:00:00:02").unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&request(&sock, "show macs --json").unwrap()).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|e| e["static"] == false),
        "{v}"
    );

    // Every malformed request gets an error, and the engine keeps going.
    for bad in [
        "",
        "show",
        "show nothing",
        "mac add lab zz:00 null0",
        "mac add nolab 02:00:00:00:00:09 null0",
        "mac add lab 01:00:5e:00:00:01 null0",
        "mac del lab 02:00:00:00:00:77",
        "show macs a b",
    ] {
        let e = request(&sock, bad).unwrap_err();
        assert!(!e.is_empty(), "{bad:?}");
    }
    for garbage in [&b"\xff\xfe\x00garbage\n"[..], &[b'x'; 5000][..], b""] {
        assert!(
            raw(&sock, garbage).starts_with("error:"),
            "garbage gets an error reply"
        );
    }
    // A client that connects and says nothing does not stall the server.
    let idle = UnixStream::connect(&sock).unwrap();
    let w = request(&sock, "show workers").unwrap();
    assert!(w.contains("worker 0") && w.contains("burst time"), "{w}");
    // Burst sizes and burst times are measured while traffic flows.
    let workers = || -> serde_json::Value {
        serde_json::from_str(&request(&sock, "show workers --json").unwrap()).unwrap()
    };
    let mut v = workers();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    // Burst times are handed over every 1024 bursts (and `clear stats`
    // above restarted them).
    while v[0]["telemetry"]["timed_bursts"].as_u64() == Some(0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        v = workers();
    }
    let t = &v[0]["telemetry"];
    assert!(t["bursts"].as_u64().unwrap() > 0, "{v}");
    assert!(t["mean_burst"].as_f64().unwrap() >= 1.0, "{v}");
    assert!(t["timed_bursts"].as_u64().unwrap() > 0, "{v}");
    assert!(t["latency_ns_p50"].as_u64().unwrap() > 0, "{v}");
    assert!(v[0]["load_pct"].as_f64().unwrap() > 0.0, "{v}");
    drop(idle);
    let t2 = tx();
    std::thread::sleep(Duration::from_millis(100));
    assert!(tx() > t2, "still forwarding");
    assert!(request(&sock, "show config")
        .unwrap()
        .contains("[[bridge]]"));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced());
    drop(_server);
    assert!(!sock.exists(), "the socket is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_endpoint_serves_the_counters_in_prometheus_text() {
    use pollgate::metrics::MetricsServer;
    let topo = config::parse("metrics.toml", SWITCH).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let server = MetricsServer::start("127.0.0.1:0", Arc::new(engine.ctl_state(&topo))).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // One write, as an HTTP client sends a short request.
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    // Burst times are published every 1024 bursts: poll until they are.
    let mut body = get("/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !body.contains("pollgate_worker_burst_time_ns{worker=\"0\",quantile=\"0.99\"} ")
        || body.contains("pollgate_worker_burst_time_ns{worker=\"0\",quantile=\"0.99\"} 0\n")
    {
        if std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        body = get("/metrics");
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let value = |line_start: &str| -> u64 {
        body.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line_start} missing:\n{body}"))
    };
    assert!(value("pollgate_port_tx_packets_total{port=\"null0\"}") > 0);
    assert_eq!(value("pollgate_mac_entries"), 2);
    assert_eq!(
        value("pollgate_drops_total{reason=\"runt_frame\"}"),
        0,
        "every drop reason is a series from the start"
    );
    assert!(value("pollgate_worker_bursts_total{worker=\"0\"}") > 0);
    assert!(value("pollgate_worker_burst_time_ns{worker=\"0\",quantile=\"0.99\"}") > 0);
    assert!(get("/other").starts_with("HTTP/1.1 404"));
    // A request head in two segments is read whole (the server once
    // answered "GET " alone with a 404 and closed on the rest).
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"GET ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"/metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    drop(server);
    assert!(engine.shutdown().frames_balanced());
}

#[test]
fn capture_writes_a_port_s_frames_to_pcap_while_it_forwards() {
    let dir = std::env::temp_dir().join(format!("pollgate-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let out = dir.join("null0.pcap");
    let topo = config::parse("cap.toml", SWITCH).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let _server = CtlServer::start(&sock, Arc::new(engine.ctl_state(&topo))).unwrap();
    let reply = request(
        &sock,
        &format!("capture null0 --count 200 --out {}", out.display()),
    )
    .unwrap();
    assert!(reply.starts_with("captured 200 frames of null0"), "{reply}");
    let mut r = pollgate_pmd::pcap::PcapReader::open(&out).unwrap();
    let mut n = 0;
    while let Some(rec) = r.next_record().unwrap() {
        // null0 receives its own template (from ...:01) and transmits
        // null1's (from ...:02): both directions are in the capture.
        assert_eq!(rec.data.len(), 60);
        assert!(rec.data[6..12] == [2, 0, 0, 0, 0, 1] || rec.data[6..12] == [2, 0, 0, 0, 0, 2]);
        n += 1;
    }
    assert_eq!(n, 200);
    scapy_reads(&out, 200);
    assert!(request(&sock, "capture nosuch --count 1 --out /tmp/x.pcap").is_err());
    assert!(request(&sock, "capture null0 --count 0 --out /tmp/x.pcap").is_err());
    assert!(request(&sock, "capture null0 --count 5").is_err());
    let summary = engine.shutdown();
    assert!(summary.frames_balanced());
    let _ = std::fs::remove_dir_all(&dir);
}

const ROUTER: &str = r#"
[engine]
idle = "backoff"
[[port]]
name = "null0"
kind = "null"
[[port]]
name = "null1"
kind = "null"
[[bridge]]
name = "lan"
members = [{ port = "null0" }]
gateway = { addresses = ["198.18.10.1/24"] }
[[bridge]]
name = "wan"
members = [{ port = "null1" }]
gateway = { addresses = ["198.18.30.1/24"] }
[[nat]]
out = "wan"
sources = ["198.18.10.0/24"]
publish = ["tcp 8080 -> 198.18.10.10:80"]
"#;

#[test]
fn addresses_and_nat_rules_change_through_ctl_and_a_refused_change_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("pollgate-ctl-l3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let topo = config::parse("router.toml", ROUTER).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let _server = CtlServer::start(&sock, Arc::new(engine.ctl_state(&topo))).unwrap();
    let ask = |line: &str| request(&sock, line);
    // The rules, not the workers' counters, which move on their own.
    let state = || {
        let nat = ask("show nat").unwrap();
        let rules: Vec<&str> = nat.lines().filter(|l| !l.starts_with("worker")).collect();
        (
            ask("show topology").unwrap(),
            rules.join("\n"),
            ask("show routes").unwrap(),
        )
    };

    ask("address add lan 198.18.11.1/24").unwrap();
    let (topology, _, routes) = state();
    assert!(topology.contains("198.18.11.1/24"), "{topology}");
    assert!(
        routes.contains("198.18.11.0/24"),
        "a connected route: {routes}"
    );
    ask("nat publish add udp 5353 -> 198.18.11.53:53").unwrap();
    let (_, nat, _) = state();
    assert!(
        nat.contains("publish udp 198.18.30.1:5353 -> 198.18.11.53:53"),
        "{nat}"
    );

    // Each of these is refused, names what is wrong, and leaves the
    // running config as it was.
    let before = state();
    for (bad, field) in [
        ("address add lan 198.18.11.1/24", "bridge.gateway.addresses"),
        ("address add lan 198.18.12.1/40", "bridge.gateway.addresses"),
        // Another gateway's subnet.
        ("address add wan 198.18.10.2/24", "bridge.gateway.addresses"),
        ("address del wan 198.18.31.1/24", "bridge.gateway.addresses"),
        ("address add nosuch 198.18.12.1/24", "bridge"),
        ("nat publish add tcp 8080 -> 198.18.10.11:80", "nat.publish"),
        (
            "nat publish add tcp 99999 -> 198.18.10.11:80",
            "nat.publish",
        ),
        ("nat publish del tcp 9999", "nat.publish"),
        ("nat add out=nosuch", "nat.out"),
        ("nat add out=wan pool=[\"198.18.10.7\"]", "nat.pool"),
        ("nat del lan", "nat.out"),
    ] {
        let e = ask(bad).expect_err(bad);
        assert!(e.contains(field), "{bad}: {e}");
        assert_eq!(state(), before, "{bad} changed something");
    }

    ask("nat publish del tcp 8080").unwrap();
    ask("nat del wan").unwrap();
    let (_, nat, _) = state();
    assert!(
        !nat.contains("masquerade") && !nat.contains("publish"),
        "{nat}"
    );
    ask("nat add out=wan sources=[\"198.18.11.0/24\"] pool=[\"198.18.30.100-198.18.30.101\"]")
        .unwrap();
    let (topology, nat, _) = state();
    assert!(
        nat.contains("masquerade 198.18.11.0/24 out wan as 198.18.30.100,198.18.30.101"),
        "{nat}"
    );
    // What ctl made reads back as a config that parses to the same.
    let again = config::parse("shown.toml", &topology).unwrap();
    assert_eq!(again.config.nat.len(), 1);
    let summary = engine.shutdown();
    assert!(summary.frames_balanced());
    let _ = std::fs::remove_dir_all(&dir);
}

/// An independent reader of the capture: scapy (from PyPI, in the venv
/// tools/test.sh makes and names in POLLGATE_PYTHON) must see `n`
/// Ethernet/IPv4/UDP frames of the null ports' flow.
fn scapy_reads(path: &std::path::Path, n: usize) {
    let Some(py) = common::scapy_python() else {
        return;
    };
    let script = r#"
import sys
from scapy.all import rdpcap, Ether, IP, UDP
pkts = rdpcap(sys.argv[1])
ok = [p for p in pkts if p.haslayer(Ether) and p.haslayer(UDP)
      and p[IP].src == "198.18.0.1" and p[IP].dst == "198.19.0.1"
      and p[UDP].sport == 1024 and p[UDP].dport == 1025]
print(len(pkts), len(ok))
"#;
    let out = std::process::Command::new(&py)
        .args(["-c", script, &path.display().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scapy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.trim(),
        format!("{n} {n}"),
        "scapy's count of frames, and of our flow's"
    );
}
