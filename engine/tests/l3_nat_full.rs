//! A NAT whose whole session table fills (root): one container opens
//! thousands of UDP flows through masquerade, with no per-source limit
//! to stop it, into a flow table of 1 024 entries (512 sessions, one
//! entry each way). The refusals are counted as `table_full`, the table
//! holds at its size, the engine keeps answering (ping to the gateway,
//! `ctl`), the sessions expire, and then the other container's new
//! connection is translated as before. Its own binary, so it never runs
//! beside `l3_nat`'s flood.
//!
//! Addresses: 198.18.0.0/15 (RFC 2544).

mod common;

use common::{ctl, ip, root_with_ip, run_engine, sh, stop, Script};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

const CONFIG: &str = r#"
[[port]]
name = "c1"
kind = "afxdp"
iface = "pgf-c1"
[[port]]
name = "c2"
kind = "afxdp"
iface = "pgf-c2"
[[port]]
name = "up"
kind = "afxdp"
iface = "pgf-up"

[[bridge]]
name = "lan"
members = [{ port = "c1" }, { port = "c2" }]
gateway = { addresses = ["198.18.10.1/24"] }
[[bridge]]
name = "wan"
members = [{ port = "up" }]
gateway = { addresses = ["198.18.30.1/24"] }

[[route]]
prefix = "198.18.99.0/24"
via = "198.18.30.2"

[[nat]]
out = "wan"
sources = ["198.18.10.0/24"]
per_source = 100000

[conntrack]
size = 1024
udp = 3
other = 3
tcp_transient = 3
"#;

fn nat_counter(sock: &std::path::Path, name: &str) -> u64 {
    let s = ctl(sock, "show nat --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
    v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w[name].as_u64().unwrap_or(0))
        .sum()
}

/// UDP datagrams from `ns` to the server's network, one new source port
/// each: `n` new flows as fast as a raw socket sends them.
fn flood(ns: &str, first_port: u16, n: u16) {
    let code = format!(
        "import socket, struct\ns = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)\nfor p in range({n}):\n    s.sendto(struct.pack('!HHHH', {first_port} + p, 7000, 9, 0) + b'x', ('198.18.99.10', 0))\n"
    );
    let (ok, out) = sh(ns, &format!("{PYTHON} -c \"{code}\""));
    assert!(ok, "{out}");
}

#[test]
fn a_full_nat_table_is_counted_and_the_engine_goes_on() {
    if !root_with_ip("l3_nat_full") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pg-natfull-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = Script::default();
    s.container("pgf-n1", "pgf-c1", "198.18.10.10/24");
    s.container("pgf-n2", "pgf-c2", "198.18.10.20/24");
    s.container("pgf-r1", "pgf-up", "198.18.30.2/24");
    ip(&["netns", "add", "pgf-sv"]);
    s.netns.push("pgf-sv".into());
    ip(&[
        "-n", "pgf-r1", "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns",
        "pgf-sv",
    ]);
    ip(&[
        "-n",
        "pgf-r1",
        "addr",
        "add",
        "198.18.99.1/24",
        "dev",
        "eth1",
    ]);
    ip(&[
        "-n",
        "pgf-sv",
        "addr",
        "add",
        "198.18.99.10/24",
        "dev",
        "eth0",
    ]);
    for (ns, dev) in [("pgf-r1", "eth1"), ("pgf-sv", "eth0"), ("pgf-sv", "lo")] {
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    for (ns, gw) in [
        ("pgf-n1", "198.18.10.1"),
        ("pgf-n2", "198.18.10.1"),
        ("pgf-sv", "198.18.99.1"),
    ] {
        ip(&["-n", ns, "route", "add", "default", "via", gw]);
    }
    sh("pgf-r1", "sysctl -qw net.ipv4.ip_forward=1");

    let engine = run_engine(&dir, CONFIG);
    let sock = dir.join("ctl.sock");
    // The path works before the flood: the Linux router answers a
    // translated ping (it has no route back to the containers).
    let ping = |ns: &str, to: &str| (0..5).any(|_| sh(ns, &format!("ping -c 1 -W 1 {to}")).0);
    assert!(
        ping("pgf-n1", "198.18.99.10"),
        "through NAT before the flood"
    );

    // Four times the sessions the table holds.
    flood("pgf-n2", 1024, 2048);
    std::thread::sleep(Duration::from_millis(300));
    let full = nat_counter(&sock, "table_full");
    let live = nat_counter(&sock, "sessions");
    eprintln!("2 048 new flows into 1 024 entries: {live} sessions, {full} refused as table_full");
    assert!(full > 0, "{}", ctl(&sock, "show nat").unwrap());
    assert!(live <= 512, "sessions {live} in a table of 1024 entries");
    // The engine goes on: its own addresses answer, ctl answers.
    assert!(
        ping("pgf-n1", "198.18.10.1"),
        "the gateway answers while full"
    );
    let stats = ctl(&sock, "show stats").unwrap();
    assert!(stats.contains("nat_table_full"), "{stats}");

    // Once the UDP sessions expire, new ones are made again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while nat_counter(&sock, "sessions") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(nat_counter(&sock, "sessions"), 0);
    assert!(
        ping("pgf-n1", "198.18.99.10"),
        "through NAT after the table drained"
    );

    stop(engine);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
