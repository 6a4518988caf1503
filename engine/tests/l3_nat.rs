//! pollgate as a Docker-style NAT gateway between namespaces (root): two
//! containers on one bridge masquerade through the uplink to a server
//! behind a Linux router that has no route back to them (only translated
//! traffic can work); the server sees only the uplink address; ICMP
//! errors come back translated; a published port reaches a container
//! from the server and, hairpinned, from the other container; sessions
//! expire; one container opening 20 000 flows as fast as it can, past
//! its per-source limit, is counted and the other still connects. Then,
//! each on its own engine: the whole session table full; masquerade to
//! an address pool the uplink answers ARP for; a stateful ACL on each
//! side of NAT.
//!
//! Addresses: 198.18.0.0/15 (RFC 2544).

mod common;

use common::{ctl, head, ip, root_with_ip, run_engine_on, sh, stop, Script};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

/// A TCP and a UDP server answering each client with the address it saw
/// (for 90 s at most).
const SERVER: &str = r#"
import socket, sys, threading, time
port = int(sys.argv[1])
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, a = s.accept(); c.sendall(a[0].encode()); c.close()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
    while True:
        d, a = u.recvfrom(100); u.sendto(a[0].encode(), a)
for f in (tcp, udp):
    threading.Thread(target=f, daemon=True).start()
time.sleep(90)
"#;

fn serve(ns: &str, port: u16) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, PYTHON, "-c", SERVER, &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What the server at `to` says it saw, over TCP or UDP (retried while
/// servers start and neighbours resolve).
fn seen(ns: &str, proto: &str, to: &str, port: u16) -> String {
    let code = match proto {
        "tcp" => format!("import socket; s = socket.create_connection(('{to}', {port}), timeout=2); print(s.recv(100).decode())"),
        _ => format!("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.connect(('{to}', {port})); s.send(b'x'); print(s.recv(100).decode())"),
    };
    let mut last = String::new();
    for _ in 0..5 {
        let (ok, out) = sh(ns, &format!("{PYTHON} -c \"{code}\""));
        if ok {
            return out.trim().to_string();
        }
        last = out;
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("{ns} {proto} to {to}:{port}: {last}");
}

/// The engine's Prometheus endpoint, on loopback in the test's namespace.
const METRICS: &str = "127.0.0.1:19187";

fn metrics() -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(METRICS).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn nat_json(sock: &std::path::Path) -> serde_json::Value {
    let s = ctl(sock, "show nat --json").unwrap_or_else(|e| panic!("show nat: {e}"));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn counter(sock: &std::path::Path, name: &str) -> u64 {
    nat_json(sock)["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w[name].as_u64().unwrap())
        .sum()
}

const CONFIG: &str = r#"
[[port]]
name = "c1"
kind = "afxdp"
iface = "pgn-c1"
[[port]]
name = "c2"
kind = "afxdp"
iface = "pgn-c2"
[[port]]
name = "up"
kind = "afxdp"
iface = "pgn-up"

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
per_source = 64
publish = ["tcp 8080 -> 198.18.10.10:80"]

[conntrack]
udp = 3
other = 3
tcp_transient = 3
"#;

#[test]
fn masquerade_publish_hairpin_icmp_expiry_and_per_source_limit() {
    if !root_with_ip("l3_nat") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    scenario("");
    // Again with the uplink on a worker of its own: replies and
    // published-port traffic reach the worker holding their session
    // through the hand-off rings.
    scenario("[[worker]]\nports = [\"c1\", \"c2\"]\n[[worker]]\nports = [\"up\"]\n");
}

/// Two containers on the lan, the uplink to a Linux router (pgn-r1) with
/// the server (pgn-sv) behind it.
fn topology() -> Script {
    let mut s = Script::default();
    s.container("pgn-n1", "pgn-c1", "198.18.10.10/24");
    s.container("pgn-n2", "pgn-c2", "198.18.10.20/24");
    s.container("pgn-r1", "pgn-up", "198.18.30.2/24");
    ip(&["netns", "add", "pgn-sv"]);
    s.netns.push("pgn-sv".into());
    ip(&[
        "-n", "pgn-r1", "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns",
        "pgn-sv",
    ]);
    ip(&[
        "-n",
        "pgn-r1",
        "addr",
        "add",
        "198.18.99.1/24",
        "dev",
        "eth1",
    ]);
    ip(&[
        "-n",
        "pgn-sv",
        "addr",
        "add",
        "198.18.99.10/24",
        "dev",
        "eth0",
    ]);
    for (ns, dev) in [("pgn-r1", "eth1"), ("pgn-sv", "eth0"), ("pgn-sv", "lo")] {
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    for (ns, gw) in [
        ("pgn-n1", "198.18.10.1"),
        ("pgn-n2", "198.18.10.1"),
        ("pgn-sv", "198.18.99.1"),
    ] {
        ip(&["-n", ns, "route", "add", "default", "via", gw]);
    }
    // The Linux router knows the uplink's subnet and the server's, not
    // the containers': only what pollgate translates gets an answer.
    sh("pgn-r1", "sysctl -qw net.ipv4.ip_forward=1");
    s
}

/// The tests share namespace names, and a flood beside another test's
/// skews both: they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scenario(workers: &str) {
    let dir = std::env::temp_dir().join(format!("pg-nat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = topology();

    let head = head(&dir).replacen(
        "[engine]\n",
        &format!("[engine]\nmetrics = \"{METRICS}\"\n"),
        1,
    );
    let engine = run_engine_on(&dir, &format!("{head}{CONFIG}{workers}"));
    let sock = dir.join("ctl.sock");
    let mut servers = vec![serve("pgn-sv", 7000), serve("pgn-n1", 80)];
    std::thread::sleep(Duration::from_millis(500));

    // Masquerade: the server sees the uplink address, for both
    // containers, over TCP and UDP; ping goes through too.
    for ns in ["pgn-n1", "pgn-n2"] {
        assert_eq!(
            seen(ns, "tcp", "198.18.99.10", 7000),
            "198.18.30.1",
            "{ns} tcp"
        );
        assert_eq!(
            seen(ns, "udp", "198.18.99.10", 7000),
            "198.18.30.1",
            "{ns} udp"
        );
    }
    assert!(
        (0..5).any(|_| sh("pgn-n1", "ping -c 1 -W 1 198.18.99.10").0),
        "ping through NAT: {}\n{}",
        ctl(&sock, "show nat").unwrap(),
        ctl(&sock, "show stats").unwrap()
    );
    // ICMP errors about sessions come back translated: the Linux
    // router's time exceeded (traceroute's second hop) and the server's
    // port unreachable (a connected UDP socket sees it as refused).
    let (_, t2) = sh("pgn-n1", "ping -c 1 -W 2 -t 2 198.18.99.10");
    assert!(
        t2.contains("From 198.18.30.2") && t2.contains("Time to live exceeded"),
        "{t2}"
    );
    let refused = format!("{PYTHON} -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.connect(('198.18.99.10', 7999)); s.send(b'x'); s.recv(10)\"");
    let (_, r) = sh("pgn-n1", &refused);
    assert!(r.contains("ConnectionRefused"), "{r}");
    assert!(counter(&sock, "icmp_translated") >= 2);

    // Port publishing: the server reaches container 1's port 80 at the
    // uplink address and port 8080, and container 1 sees the server.
    assert_eq!(seen("pgn-sv", "tcp", "198.18.30.1", 8080), "198.18.99.10");
    // Hairpin: container 2 reaches it at the same public address; the
    // session takes the gateway's address so the answer comes back
    // through pollgate.
    assert_eq!(seen("pgn-n2", "tcp", "198.18.30.1", 8080), "198.18.10.1");
    assert!(counter(&sock, "hairpin") >= 1);
    // The workers list that session (closed TCP lives 3 s here) as it
    // came and as it left.
    let listed = ctl(&sock, "show nat sessions").unwrap();
    assert!(
        listed.lines().any(|l| l.contains("tcp 198.18.10.20:")
            && l.contains(" -> 198.18.30.1:8080 as 198.18.10.1:")
            && l.contains(" -> 198.18.10.10:80,")),
        "{listed}"
    );
    let bad = ctl(&sock, "show nat sessions 0").unwrap_err();
    assert!(bad.contains("N must be"), "{bad}");
    let text = ctl(&sock, "show nat").unwrap();
    assert!(
        text.contains("publish tcp 198.18.30.1:8080 -> 198.18.10.10:80"),
        "{text}"
    );

    // Sessions expire (UDP, ICMP and closed TCP after 3 s) and give their
    // ports back.
    assert!(counter(&sock, "sessions") > 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter(&sock, "sessions") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        counter(&sock, "sessions"),
        0,
        "{}",
        ctl(&sock, "show nat").unwrap()
    );
    assert!(counter(&sock, "expired") > 0);
    assert_eq!(
        counter(&sock, "ports_used"),
        1,
        "only the published port stays taken"
    );
    // Metrics carry the same, summed over the workers.
    let m = metrics();
    let value = |series: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{m}"))
    };
    assert_eq!(value("pollgate_nat_sessions "), 0);
    assert_eq!(value("pollgate_nat_ports_used "), 1);
    assert!(value("pollgate_nat_events_total{kind=\"created\"}") >= 5);
    assert_eq!(
        value("pollgate_nat_events_total{kind=\"expired\"}"),
        value("pollgate_nat_events_total{kind=\"created\"}")
    );
    assert!(value("pollgate_nat_events_total{kind=\"hairpin\"}") >= 1);
    assert!(value("pollgate_nat_events_total{kind=\"icmp_translated\"}") >= 2);

    // One container opens 20 000 UDP flows (a new source port each) as
    // fast as a core sends them through a raw socket: 64 get sessions,
    // the rest are counted; the other container still connects.
    let rate = flood("pgn-n2", 1024, 20000);
    std::thread::sleep(Duration::from_millis(300));
    let limited = counter(&sock, "source_limited");
    eprintln!("new flows at {rate} per second: {limited} refused by the per-source limit");
    // At this rate some never reach NAT: the port's ring (512 here) or,
    // with two workers, the hand-off ring overflows, and the kernel or
    // the worker counts them. How many do depends on the machine's load
    // (16 000-20 000 reached the limit in one session's runs, 4 400-5 500
    // in another's, 3 443 once in CI), so the bound is only that the
    // limit refused thousands while the sessions stayed at the share.
    assert!(limited >= 1_000, "source_limited {limited}");
    assert!(counter(&sock, "sessions") <= 64 + 4);
    assert_eq!(seen("pgn-n1", "tcp", "198.18.99.10", 7000), "198.18.30.1");

    if !workers.is_empty() {
        let handed = counter(&sock, "handed_off");
        assert!(handed > 0, "{}", ctl(&sock, "show nat").unwrap());
    }

    // A reload that moves the published port and gives the containers'
    // gateway a second address: both live, masquerade going on.
    let text = std::fs::read_to_string(dir.join("gw.toml")).unwrap();
    let text = text
        .replace("tcp 8080 -> 198.18.10.10:80", "tcp 9090 -> 198.18.10.10:80")
        .replace(
            "gateway = { addresses = [\"198.18.10.1/24\"] }",
            "gateway = { addresses = [\"198.18.10.1/24\", \"198.18.11.1/24\"] }",
        );
    std::fs::write(dir.join("gw.toml"), text).unwrap();
    ctl(&sock, "reload").unwrap_or_else(|e| panic!("reload: {e}"));
    let rules = ctl(&sock, "show nat").unwrap();
    assert!(
        rules.contains("publish tcp 198.18.30.1:9090 -> 198.18.10.10:80")
            && !rules.contains(":8080"),
        "{rules}"
    );
    assert_eq!(seen("pgn-sv", "tcp", "198.18.30.1", 9090), "198.18.99.10");
    let old_port = format!(
        "{PYTHON} -c \"import socket; socket.create_connection(('198.18.30.1', 8080), timeout=2)\""
    );
    assert!(!sh("pgn-sv", &old_port).0, "8080 is no longer published");
    assert!(
        (0..5).any(|_| sh("pgn-n1", "ping -c 1 -W 1 198.18.11.1").0),
        "the new gateway address answers"
    );
    assert_eq!(seen("pgn-n1", "tcp", "198.18.99.10", 7000), "198.18.30.1");

    // The same changes through ctl, as Docker makes them when a container
    // starts with `-p` (no file edited): a port published and withdrawn,
    // an address added to the containers' gateway and deleted again.
    let said = ctl(&sock, "nat publish add tcp 7070 -> 198.18.10.10:80").unwrap();
    assert!(said.starts_with("published tcp 7070"), "{said}");
    assert!(ctl(&sock, "show nat")
        .unwrap()
        .contains("publish tcp 198.18.30.1:7070 -> 198.18.10.10:80"));
    assert_eq!(seen("pgn-sv", "tcp", "198.18.30.1", 7070), "198.18.99.10");
    // A reload keeps what ctl published, as it keeps ctl's ports.
    ctl(&sock, "reload").unwrap_or_else(|e| panic!("reload: {e}"));
    assert!(ctl(&sock, "show nat")
        .unwrap()
        .contains("publish tcp 198.18.30.1:7070 -> 198.18.10.10:80"));
    let e = ctl(&sock, "nat publish add tcp 7070 -> 198.18.10.20:80").unwrap_err();
    assert!(e.contains("nat.publish") && e.contains("twice"), "{e}");
    assert_eq!(seen("pgn-sv", "tcp", "198.18.30.1", 7070), "198.18.99.10");
    ctl(&sock, "nat publish del tcp 7070").unwrap();
    let withdrawn = format!(
        "{PYTHON} -c \"import socket; socket.create_connection(('198.18.30.1', 7070), timeout=2)\""
    );
    assert!(!sh("pgn-sv", &withdrawn).0, "7070 is no longer published");
    assert_eq!(seen("pgn-sv", "tcp", "198.18.30.1", 9090), "198.18.99.10");
    ctl(&sock, "address add lan 198.18.12.1/24").unwrap();
    assert!(
        (0..5).any(|_| sh("pgn-n1", "ping -c 1 -W 1 198.18.12.1").0),
        "the address added by ctl answers"
    );
    ctl(&sock, "address del lan 198.18.12.1/24").unwrap();
    assert!(!sh("pgn-n1", "ping -c 1 -W 1 198.18.12.1").0, "and is gone");
    assert_eq!(seen("pgn-n1", "tcp", "198.18.99.10", 7000), "198.18.30.1");

    for c in &mut servers {
        let _ = c.kill();
        let _ = c.wait();
    }
    // `stop` fails the test unless the engine exits cleanly with every
    // frame accounted for.
    stop(engine);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// UDP datagrams from `ns` to the server's network, one new source port
/// each: `n` new flows from `first_port` on, as fast as a raw socket
/// sends them. Returns what it printed: the rate they went at, per
/// second.
fn flood(ns: &str, first_port: u16, n: u16) -> String {
    let code = format!(
        r#"
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
t = time.time()
for p in range({n}):
    s.sendto(struct.pack("!HHHH", {first_port} + p, 7000, 9, 0) + b"x", ("198.18.99.10", 0))
print(int({n} / (time.time() - t)))
"#
    );
    let (ok, out) = sh(ns, &format!("{PYTHON} -c '{code}'"));
    assert!(ok, "{out}");
    out.trim().to_string()
}

/// A NAT whose whole session table fills: one container opens thousands
/// of UDP flows through masquerade, with no per-source limit to stop it,
/// into a flow table of 1 024 entries (512 sessions, one entry each
/// way). The refusals are counted as `table_full`, the table holds at
/// its size, the engine keeps answering (ping to the gateway, `ctl`),
/// the sessions expire, and then new ones are translated as before.
#[test]
fn a_full_nat_table_is_counted_and_the_engine_goes_on() {
    if !root_with_ip("l3_nat full table") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // No per-source limit and no published port; a table of 1 024.
    let config = CONFIG
        .replace("per_source = 64", "per_source = 100000")
        .replace("publish = [\"tcp 8080 -> 198.18.10.10:80\"]\n", "")
        .replace("[conntrack]\n", "[conntrack]\nsize = 1024\n");
    assert!(config.contains("size = 1024") && config.contains("per_source = 100000"));
    let gw = Gateway::start("natfull", &config, &[]);
    let sock = gw.sock.clone();
    // The path works before the flood: the Linux router answers a
    // translated ping (it has no route back to the containers).
    let ping = |ns: &str, to: &str| (0..5).any(|_| sh(ns, &format!("ping -c 1 -W 1 {to}")).0);
    assert!(
        ping("pgn-n1", "198.18.99.10"),
        "through NAT before the flood"
    );

    // Four times the sessions the table holds.
    let _ = flood("pgn-n2", 1024, 2048);
    std::thread::sleep(Duration::from_millis(300));
    let full = counter(&sock, "table_full");
    let live = counter(&sock, "sessions");
    eprintln!("2 048 new flows into 1 024 entries: {live} sessions, {full} refused as table_full");
    assert!(full > 0, "{}", ctl(&sock, "show nat").unwrap());
    assert!(live <= 512, "sessions {live} in a table of 1024 entries");
    // The engine goes on: its own addresses answer, ctl answers.
    assert!(
        ping("pgn-n1", "198.18.10.1"),
        "the gateway answers while full"
    );
    let stats = ctl(&sock, "show stats").unwrap();
    assert!(stats.contains("nat_table_full"), "{stats}");

    // Once the UDP sessions expire, new ones are made again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter(&sock, "sessions") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(counter(&sock, "sessions"), 0);
    assert!(
        ping("pgn-n1", "198.18.99.10"),
        "through NAT after the table drained"
    );
    gw.finish();
}

/// A gateway on the shared topology with `config`, and the servers
/// `serve` names (namespace, port); [`Gateway::finish`] stops it all and
/// fails the test unless the engine exits with every frame accounted for.
struct Gateway {
    dir: std::path::PathBuf,
    topology: Script,
    engine: common::Running,
    sock: std::path::PathBuf,
    servers: Vec<Child>,
}

impl Gateway {
    fn start(tag: &str, config: &str, serves: &[(&str, u16)]) -> Gateway {
        let dir = std::env::temp_dir().join(format!("pg-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let topology = topology();
        let engine = run_engine_on(&dir, &format!("{}{config}", head(&dir)));
        let sock = dir.join("ctl.sock");
        let servers: Vec<Child> = serves.iter().map(|(ns, port)| serve(ns, *port)).collect();
        if !servers.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
        Gateway {
            dir,
            topology,
            engine,
            sock,
            servers,
        }
    }

    fn finish(self) {
        for mut c in self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        stop(self.engine);
        drop(self.topology);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Masquerade to a pool of uplink addresses that are not the gateway's
/// own (iptables' `--to-source A-B`): each container's sessions all take
/// one pool address, the Linux router resolves the pool addresses to
/// pollgate by ARP and can ping them, and a published port on the first
/// pool address reaches its container.
#[test]
fn a_pool_masquerades_each_container_as_one_pool_address() {
    if !root_with_ip("l3_nat pool") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let config = CONFIG.replace(
        "per_source = 64\n",
        "per_source = 64\npool = [\"198.18.30.100-198.18.30.103\"]\n",
    );
    assert!(config.contains("pool = "));
    let gw = Gateway::start("natpool", &config, &[("pgn-sv", 7000), ("pgn-n1", 80)]);
    let sock = gw.sock.clone();
    let pool: Vec<String> = (100..=103).map(|d| format!("198.18.30.{d}")).collect();

    for ns in ["pgn-n1", "pgn-n2"] {
        let tcp = seen(ns, "tcp", "198.18.99.10", 7000);
        assert!(pool.contains(&tcp), "{ns} seen as {tcp}");
        assert_eq!(seen(ns, "udp", "198.18.99.10", 7000), tcp, "{ns} udp");
    }
    let text = ctl(&sock, "show nat").unwrap();
    assert!(
        text.contains(
            "as 198.18.30.100,198.18.30.101,198.18.30.102,198.18.30.103 ports 1024-65535"
        ),
        "{text}"
    );
    // The pool addresses are pollgate's on the uplink: the router's
    // ARP for them gets the gateway's MAC, and they answer ping.
    assert!(sh("pgn-r1", "ping -c 1 -W 1 198.18.30.1").0);
    let neigh = sh("pgn-r1", "ip neigh show 198.18.30.1").1;
    let words: Vec<&str> = neigh.split_whitespace().collect();
    let gw_mac = words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))
        .map_or(String::new(), |m| m.to_string());
    assert!(gw_mac.contains(':'), "{neigh}");
    for a in &pool {
        assert!(
            (0..5).any(|_| sh("pgn-r1", &format!("ping -c 1 -W 1 {a}")).0),
            "{a} answers ping"
        );
        let n = sh("pgn-r1", &format!("ip neigh show {a}")).1;
        assert!(n.contains(&gw_mac), "{a}: {n}; the gateway is {neigh}");
    }
    // A published port with no address takes the first pool address.
    assert_eq!(seen("pgn-sv", "tcp", "198.18.30.100", 8080), "198.18.99.10");
    gw.finish();
}

/// A stateful ACL and NAT on one flow table, as a Docker host's
/// FORWARD chain sits beside its NAT: the containers' bridge permits
/// what they open (stateful, before SNAT), the uplink denies everything
/// but ARP, ping and the published port (before DNAT). Replies come back
/// because the table sees one flow through the translation; a stranger
/// is denied.
#[test]
fn a_stateful_acl_lets_replies_back_through_nat() {
    if !root_with_ip("l3_nat acl") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let config = CONFIG
        .replace(
            "members = [{ port = \"c1\" }, { port = \"c2\" }]\n",
            "members = [{ port = \"c1\" }, { port = \"c2\" }]\nacl_in = \"from-containers\"\n",
        )
        .replace(
            "iface = \"pgn-up\"\n",
            "iface = \"pgn-up\"\nacl_in = \"from-uplink\"\n",
        )
        + r#"
[[acl]]
name = "from-containers"
default = "permit"
rules = ["permit proto=tcp stateful", "permit proto=udp stateful"]
[[acl]]
name = "from-uplink"
default = "deny"
rules = ["permit ethertype=0x0806", "permit proto=icmp", "permit dst=198.18.30.1/32 proto=tcp dport=8080"]
"#;
    assert!(
        config.contains("acl_in = \"from-containers\"")
            && config.contains("acl_in = \"from-uplink\"")
    );
    let gw = Gateway::start("natacl", &config, &[("pgn-sv", 7000), ("pgn-n1", 80)]);
    let sock = gw.sock.clone();
    let acl_json = || -> serde_json::Value {
        serde_json::from_str(&ctl(&sock, "show acl --json").unwrap()).unwrap()
    };
    let reflexive = || -> u64 {
        acl_json()["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["reflexive_permits"].as_u64().unwrap())
            .sum()
    };

    // What the containers open comes back: the uplink ACL's deny meets
    // replies addressed to the public address, which the flow table
    // ties to the flows the containers' ACL tracked.
    for ns in ["pgn-n1", "pgn-n2"] {
        assert_eq!(seen(ns, "tcp", "198.18.99.10", 7000), "198.18.30.1");
        assert_eq!(seen(ns, "udp", "198.18.99.10", 7000), "198.18.30.1");
    }
    let admitted = reflexive();
    assert!(admitted >= 4, "{}", ctl(&sock, "show acl").unwrap());
    // The published port is let in by its rule.
    assert_eq!(seen("pgn-sv", "tcp", "198.18.30.1", 8080), "198.18.99.10");
    // A stranger's datagrams to the containers' live UDP mappings (the
    // server's host, from a port no session has) are denied at the
    // uplink, before NAT would see them: the flow table admits only a
    // tracked flow's own reply.
    let denied = |sock: &std::path::Path| -> u64 {
        let s = ctl(sock, "show stats --json").unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v["drops"]["acl_deny"].as_u64().unwrap_or(0)
    };
    for ns in ["pgn-n1", "pgn-n2"] {
        assert_eq!(seen(ns, "udp", "198.18.99.10", 7000), "198.18.30.1");
    }
    let listed = ctl(&sock, "show nat sessions").unwrap();
    let mapped: Vec<String> = listed
        .lines()
        .filter(|l| l.trim_start().starts_with("udp "))
        .filter_map(|l| {
            let p = l
                .split(" as 198.18.30.1:")
                .nth(1)?
                .split_whitespace()
                .next()?;
            Some(p.to_string())
        })
        .collect();
    assert!(mapped.len() >= 2, "{listed}");
    let before = denied(&sock);
    let stranger = format!("{PYTHON} -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 9999)); [s.sendto(b'x', ('198.18.30.1', p)) for p in [{}] * 5]\"", mapped.join(","));
    assert!(sh("pgn-sv", &stranger).0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while denied(&sock) < before + 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        denied(&sock) >= before + 10,
        "{}",
        ctl(&sock, "show stats").unwrap()
    );
    gw.finish();
}
