//! Routing between a VLAN and a VNI (root): a host in VLAN 40 behind an
//! 802.1Q switch and a host behind the Linux kernel's VXLAN device (VNI
//! 5000) reach each other through one pollgate with a gateway in each:
//! the VLAN's domain on a trunk, the VNI's on its VTEP. The switch is a
//! second pollgate (this kernel has no 8021q module, so nothing else here
//! tags), as in the router-on-a-stick test; the far VTEP is the kernel's,
//! which pollgate resolves by ARP on the underlay. Each side's host also
//! hears the gratuitous ARP the router sends for its gateway on start.
//!
//! Addresses: 198.18.0.0/15 (RFC 2544).

mod common;

use common::{ctl, ip, kernel_vtep, root_with_ip, run_engine, sh, stop, HostVeth, Script};
use pollgate_pmd::netns::NetNs;
use pollgate_pmd::packet_socket::PacketSocket;
use std::time::{Duration, Instant};

fn pings(ns: &str, args: &str) -> bool {
    (0..5).any(|_| sh(ns, &format!("ping -c 1 -W 1 {args}")).0)
}

/// Listens on `ns`'s eth0 for a gratuitous ARP announcing `addr` (sender
/// and target both `addr`, broadcast), for up to 5 s.
fn garp_listener(ns: &str, addr: [u8; 4]) -> std::thread::JoinHandle<bool> {
    let sock = NetNs::open(ns)
        .unwrap()
        .run(|| PacketSocket::open("eth0"))
        .unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok(Some(n)) = sock.recv(&mut buf, Duration::from_millis(200)) else {
                continue;
            };
            let f = &buf[..n];
            if n >= 42
                && f[0..6] == [0xff; 6]
                && f[12..14] == [0x08, 0x06]
                && f[28..32] == addr
                && f[38..42] == addr
            {
                return true;
            }
        }
        false
    })
}

const SWITCH: &str = r#"
[[port]]
name = "a"
kind = "afxdp"
iface = "pgv-a"
[[port]]
name = "up"
kind = "afxdp"
iface = "pgv-t"
vlan_mode = "trunk"

[[bridge]]
name = "v40"
members = [{ port = "a" }, { port = "up", vid = 40 }]
"#;

const ROUTER: &str = r#"
[[port]]
name = "trunk"
kind = "afxdp"
iface = "pgv-tp"
vlan_mode = "trunk"
[[port]]
name = "underlay"
kind = "afxdp"
iface = "pgv-ul"

[[bridge]]
name = "r40"
members = [{ port = "trunk", vid = 40 }]
gateway = { addresses = ["198.18.40.1/24"] }
[[bridge]]
name = "r50"
vni = 5000
flood = ["198.18.100.2"]
members = []
gateway = { addresses = ["198.18.50.1/24"], mtu = 1450 }

[vtep]
port = "underlay"
address = "198.18.100.1"
"#;

#[test]
fn a_vlan_and_a_vni_routed_through_their_gateways() {
    if !root_with_ip("l3_vlan_to_vni") {
        return;
    }
    let base = std::env::temp_dir().join(format!("pg-v2v-{}", std::process::id()));
    let (sw_dir, rt_dir) = (base.join("switch"), base.join("router"));
    std::fs::create_dir_all(&sw_dir).unwrap();
    std::fs::create_dir_all(&rt_dir).unwrap();
    let mut s = Script::default();
    s.container("pgv-na", "pgv-a", "198.18.40.10/24");
    // The kernel VTEP's namespace, its underlay end facing pollgate.
    s.container("pgv-kv", "pgv-ul", "198.18.100.2/24");
    let _trunk = HostVeth::new("pgv-t");
    ip(&["netns", "add", "pgv-kc"]);
    s.netns.push("pgv-kc".into());
    kernel_vtep("pgv-kv", 5000, "pgv-kc", "198.18.50.10/24");
    ip(&[
        "-n",
        "pgv-kc",
        "route",
        "add",
        "default",
        "via",
        "198.18.50.1",
    ]);
    ip(&[
        "-n",
        "pgv-na",
        "route",
        "add",
        "default",
        "via",
        "198.18.40.1",
    ]);

    let switch = run_engine(&sw_dir, SWITCH);
    // The router announces each gateway address as it starts: through
    // the switch to VLAN 40, through the kernel's VTEP to the VNI.
    let garps = [
        garp_listener("pgv-na", [198, 18, 40, 1]),
        garp_listener("pgv-kc", [198, 18, 50, 1]),
    ];
    let router = run_engine(&rt_dir, ROUTER);
    let sock = rt_dir.join("ctl.sock");
    let [g40, g50] = garps.map(|g| g.join().unwrap());
    assert!(
        g40,
        "a gratuitous ARP for 198.18.40.1 reached VLAN 40's host"
    );
    assert!(
        g50,
        "a gratuitous ARP for 198.18.50.1 reached the VNI's host"
    );

    assert!(pings("pgv-na", "198.18.40.1"), "VLAN 40 pings its gateway");
    assert!(
        pings("pgv-kc", "198.18.50.1"),
        "the host behind the kernel VTEP pings its gateway: {}",
        ctl(&sock, "show vxlan").unwrap()
    );
    assert!(pings("pgv-na", "198.18.50.10"), "VLAN 40 to VNI 5000");
    assert!(pings("pgv-kc", "198.18.40.10"), "VNI 5000 to VLAN 40");
    // traceroute's first hop from each side is its own gateway.
    let (_, t) = sh("pgv-kc", "ping -c 1 -W 2 -t 1 198.18.40.10");
    assert!(
        t.contains("From 198.18.50.1") && t.contains("Time to live exceeded"),
        "{t}"
    );
    let neigh = ctl(&sock, "show neighbors").unwrap();
    assert!(
        neigh.contains("198.18.40.10") && neigh.contains("198.18.50.10"),
        "{neigh}"
    );
    // The VNI's host was learnt behind the kernel's VTEP.
    let macs = ctl(&sock, "show macs").unwrap();
    assert!(macs.contains("vxlan:198.18.100.2"), "{macs}");

    stop(router);
    stop(switch);
    drop(s);
    let _ = std::fs::remove_dir_all(&base);
}
