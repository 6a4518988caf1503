//! pollgate as the router between namespaces (root): two hosts on their
//! own bridge domains reach each other through their gateways, and reach
//! a server behind a Linux namespace routing on the uplink, in IPv4 and
//! IPv6; TTL 1 and 2 probes get time exceeded from pollgate and then from
//! the Linux router; a DF packet too big for the uplink's 1280-byte MTU
//! gets fragmentation needed and the sender's PMTU drops (the kernel's
//! `ip route get` shows it), IPv6 the same with packet too big; an ECMP
//! route spreads 64 flows over two next hops, each flow on one; routes
//! change live through `ctl`.
//!
//! Addresses: 198.18.0.0/15 (RFC 2544) and 2001:2::/48 (RFC 5180).

mod common;

use common::{ctl, ip, root_with_ip, run_engine, sh, stop, Script};

fn pings(ns: &str, args: &str) -> bool {
    (0..5).any(|_| sh(ns, &format!("ping -c 1 -W 1 {args}")).0)
}

/// Any python does for a socket; Debian's is there on every machine of
/// this kind.
const PYTHON: &str = "/usr/bin/python3";

fn udp_no_ports(ns: &str) -> u64 {
    let (_, snmp) = sh(ns, "cat /proc/net/snmp");
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let k = names
        .split_whitespace()
        .position(|w| w == "NoPorts")
        .unwrap();
    values.split_whitespace().nth(k).unwrap().parse().unwrap()
}

const CONFIG: &str = r#"
[[port]]
name = "h1"
kind = "afxdp"
iface = "pgr-h1"
[[port]]
name = "h2"
kind = "afxdp"
iface = "pgr-h2"
[[port]]
name = "w1"
kind = "afxdp"
iface = "pgr-w1"
[[port]]
name = "w2"
kind = "afxdp"
iface = "pgr-w2"

[[bridge]]
name = "net10"
members = [{ port = "h1" }]
gateway = { addresses = ["198.18.10.1/24", "2001:2:0:10::1/64"] }
[[bridge]]
name = "net20"
members = [{ port = "h2" }]
gateway = { addresses = ["198.18.20.1/24", "2001:2:0:20::1/64"] }
[[bridge]]
name = "wan"
members = [{ port = "w1" }, { port = "w2" }]
gateway = { addresses = ["198.18.30.1/24", "2001:2:0:30::1/64"], mtu = 1280 }

[[route]]
prefix = "198.18.99.0/24"
via = "198.18.30.2"
[[route]]
prefix = "2001:2:0:99::/64"
via = "2001:2:0:30::2"
[[route]]
prefix = "198.18.77.0/24"
via = ["198.18.30.2", "198.18.30.3"]
"#;

#[test]
fn routes_between_domains_and_through_a_linux_router_with_icmp_errors_pmtu_and_ecmp() {
    if !root_with_ip("l3_routing") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pg-l3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = Script::default();
    s.container("pgr-n1", "pgr-h1", "198.18.10.10/24");
    s.container("pgr-n2", "pgr-h2", "198.18.20.10/24");
    s.container("pgr-r1", "pgr-w1", "198.18.30.2/24");
    s.container("pgr-r2", "pgr-w2", "198.18.30.3/24");
    ip(&["netns", "add", "pgr-sv"]);
    s.netns.push("pgr-sv".into());
    ip(&[
        "-n", "pgr-r1", "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns",
        "pgr-sv",
    ]);
    for (ns, dev, v4, v6, gw4, gw6) in [
        (
            "pgr-n1",
            "eth0",
            None,
            "2001:2:0:10::10/64",
            Some("198.18.10.1"),
            Some("2001:2:0:10::1"),
        ),
        (
            "pgr-n2",
            "eth0",
            None,
            "2001:2:0:20::10/64",
            Some("198.18.20.1"),
            Some("2001:2:0:20::1"),
        ),
        (
            "pgr-r1",
            "eth0",
            None,
            "2001:2:0:30::2/64",
            Some("198.18.30.1"),
            Some("2001:2:0:30::1"),
        ),
        (
            "pgr-r2",
            "eth0",
            None,
            "2001:2:0:30::3/64",
            Some("198.18.30.1"),
            None,
        ),
        (
            "pgr-r1",
            "eth1",
            Some("198.18.99.1/24"),
            "2001:2:0:99::1/64",
            None,
            None,
        ),
        (
            "pgr-sv",
            "eth0",
            Some("198.18.99.10/24"),
            "2001:2:0:99::10/64",
            Some("198.18.99.1"),
            Some("2001:2:0:99::1"),
        ),
    ] {
        if let Some(a) = v4 {
            ip(&["-n", ns, "addr", "add", a, "dev", dev]);
        }
        ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        if let Some(g) = gw4 {
            ip(&["-n", ns, "route", "add", "default", "via", g]);
        }
        if let Some(g) = gw6 {
            ip(&["-n", ns, "-6", "route", "add", "default", "via", g]);
        }
    }
    for r in ["pgr-r1", "pgr-r2"] {
        ip(&["-n", r, "addr", "add", "198.18.77.1/32", "dev", "lo"]);
    }
    sh(
        "pgr-r1",
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
    );

    let engine = run_engine(&dir, CONFIG);
    let sock = dir.join("ctl.sock");

    // The gateway answers ping (ARP first), and routes between domains.
    assert!(pings("pgr-n1", "198.18.10.1"), "ping the gateway");
    assert!(pings("pgr-n1", "198.18.20.10"), "net10 to net20");
    assert!(pings("pgr-n2", "198.18.10.10"), "net20 to net10");
    assert!(pings("pgr-n1", "2001:2:0:10::1"), "ping6 the gateway");
    assert!(pings("pgr-n1", "2001:2:0:20::10"), "IPv6 net10 to net20");
    // Through the Linux router to the server, both families.
    assert!(
        pings("pgr-n1", "198.18.99.10"),
        "to the server behind the Linux router"
    );
    assert!(pings("pgr-n2", "2001:2:0:99::10"), "IPv6 to the server");

    // traceroute's first two hops: pollgate, then the Linux router.
    let (_, t1) = sh("pgr-n1", "ping -c 1 -W 2 -t 1 198.18.99.10");
    assert!(
        t1.contains("From 198.18.10.1") && t1.contains("Time to live exceeded"),
        "{t1}"
    );
    let (_, t2) = sh("pgr-n1", "ping -c 1 -W 2 -t 2 198.18.99.10");
    assert!(
        t2.contains("From 198.18.30.2") && t2.contains("Time to live exceeded"),
        "{t2}"
    );
    let (_, t6) = sh("pgr-n1", "ping -6 -c 1 -W 2 -t 1 2001:2:0:99::10");
    assert!(
        t6.contains("From 2001:2:0:10::1") && t6.to_lowercase().contains("time exceeded"),
        "{t6}"
    );
    // The second IPv6 hop: pollgate forwarded with hop limit 1 and the
    // Linux router answers.
    let (_, t62) = sh("pgr-n1", "ping -6 -c 1 -W 2 -t 2 2001:2:0:99::10");
    assert!(
        t62.contains("From 2001:2:0:30::2") && t62.to_lowercase().contains("time exceeded"),
        "{t62}"
    );

    // PMTU: 1400 bytes of IPv4 with DF towards the 1280-byte uplink.
    let (_, big) = sh("pgr-n1", "ping -c 2 -W 1 -M do -s 1372 198.18.99.10");
    let (_, route) = sh("pgr-n1", "ip route get 198.18.99.10");
    assert!(
        route.contains("mtu 1280"),
        "the sender's PMTU did not drop: {route}\nping said: {big}"
    );
    let (_, big6) = sh("pgr-n1", "ping -6 -c 2 -W 1 -M do -s 1352 2001:2:0:99::10");
    let (_, route6) = sh("pgr-n1", "ip -6 route get 2001:2:0:99::10");
    assert!(
        route6.contains("mtu 1280"),
        "IPv6 PMTU did not drop: {route6}\nping said: {big6}"
    );
    // And what fits still goes.
    assert!(
        pings("pgr-n1", "-M do -s 1200 198.18.99.10"),
        "1228 bytes fit"
    );

    // ECMP: 64 UDP flows to 198.18.77.1 (each router's loopback), three
    // packets each; each flow lands whole on one router, both get some.
    // The second router is not resolved yet: its first flow's packets
    // wait for the ARP reply and are all delivered.
    let (mut on1, mut on2) = (0, 0);
    for f in 0..64 {
        let (a, b) = (udp_no_ports("pgr-r1"), udp_no_ports("pgr-r2"));
        // One unconnected socket per flow (its own source port), three
        // datagrams: the routers' port unreachable errors would fail a
        // connected socket's next send.
        let script = format!(
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('198.18.10.10', {})); [s.sendto(b'x', ('198.18.77.1', 9)) for _ in range(3)]",
            20000 + f
        );
        let (ok, err) = sh("pgr-n1", &format!("{PYTHON} -c \"{script}\""));
        assert!(ok, "{err}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while udp_no_ports("pgr-r1") + udp_no_ports("pgr-r2") < a + b + 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "flow {f}: {} of its 3 packets arrived\n{}\n{}\nr1 {}\nr2 {}\nn1 {}",
                udp_no_ports("pgr-r1") + udp_no_ports("pgr-r2") - a - b,
                ctl(&sock, "show router").unwrap(),
                ctl(&sock, "show stats").unwrap(),
                sh("pgr-r1", "cat /proc/net/snmp; ip -s link show eth0").1,
                sh("pgr-r2", "cat /proc/net/snmp; ip -s link show eth0").1,
                sh(
                    "pgr-n1",
                    "cat /proc/net/snmp; ip -s link show eth0; ip neigh"
                )
                .1
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let (da, db) = (udp_no_ports("pgr-r1") - a, udp_no_ports("pgr-r2") - b);
        assert!(
            (da, db) == (3, 0) || (da, db) == (0, 3),
            "flow {f} split: {da} and {db}"
        );
        if da == 3 {
            on1 += 1;
        } else {
            on2 += 1;
        }
    }
    assert!(
        on1 >= 8 && on2 >= 8,
        "64 flows: {on1} on one path, {on2} on the other"
    );

    // The tables as ctl shows them, and a route changed live.
    let routes = ctl(&sock, "show routes").unwrap();
    assert!(
        routes.contains("198.18.99.0/24") && routes.contains("via 198.18.30.2 dev wan"),
        "{routes}"
    );
    assert!(routes.contains("via 198.18.30.3 dev wan"), "{routes}");
    let neigh = ctl(&sock, "show neighbors").unwrap();
    assert!(
        neigh.contains("198.18.30.2") && neigh.contains("reachable"),
        "{neigh}"
    );
    assert!(neigh.contains("2001:2:0:10::10"), "{neigh}");
    ctl(&sock, "route add 198.18.99.0/25 unreachable").unwrap();
    let (_, un) = sh("pgr-n1", "ping -c 1 -W 1 198.18.99.10");
    assert!(un.contains("Unreachable"), "{un}");
    assert!(ctl(&sock, "route add 198.18.98.0/24 via 203.0.113.1")
        .unwrap_err()
        .contains("no interface's subnet"));
    ctl(&sock, "route del 198.18.99.0/25").unwrap();
    assert!(pings("pgr-n1", "198.18.99.10"), "the route removed live");
    // A reload that adds a route and a permanent neighbour: live, and
    // the route added by ctl above stays removed.
    let text = std::fs::read_to_string(dir.join("gw.toml")).unwrap();
    let text = text.replace(
        "gateway = { addresses = [\"198.18.30.1/24\", \"2001:2:0:30::1/64\"], mtu = 1280 }",
        "gateway = { addresses = [\"198.18.30.1/24\", \"2001:2:0:30::1/64\"], mtu = 1280, neighbors = [{ ip = \"198.18.30.9\", mac = \"02:00:00:00:30:09\" }] }",
    ) + "[[route]]\nprefix = \"198.18.96.0/24\"\nvia = \"198.18.30.2\"\n";
    std::fs::write(dir.join("gw.toml"), text).unwrap();
    let r = ctl(&sock, "reload").unwrap();
    assert!(r.contains("routes"), "{r}");
    let routes = ctl(&sock, "show routes").unwrap();
    assert!(routes.contains("198.18.96.0/24"), "{routes}");
    assert!(!routes.contains("198.18.99.0/25"), "{routes}");
    let neigh = ctl(&sock, "show neighbors").unwrap();
    assert!(
        neigh.contains("198.18.30.9") && neigh.contains("permanent"),
        "{neigh}"
    );
    assert!(
        pings("pgr-n1", "198.18.99.10"),
        "routing goes on after the reload"
    );
    let router = ctl(&sock, "show router").unwrap();
    assert!(
        router.contains("icmp_time_exceeded_sent") && router.contains("echo_replies_sent"),
        "{router}"
    );
    // A handful of routes: lookups answer from the summary levels.
    assert!(router.contains("IPv4 summary: read"), "{router}");

    // `stop` fails the test unless the engine exits cleanly with every
    // frame accounted for.
    stop(engine);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
