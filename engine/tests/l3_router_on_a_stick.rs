//! Router on a stick (root): two hosts in VLAN 40 and VLAN 41 behind an
//! 802.1Q switch reach each other through one pollgate whose only port is
//! a trunk carrying both VLANs, each VLAN a bridge domain with its own
//! gateway interface, in IPv4 and IPv6.
//!
//! The switch is a second pollgate (access ports to the hosts, a trunk to
//! the router): this kernel has no 8021q module and no VLAN filtering in
//! its bridge, so neither a VLAN device nor a Linux bridge can tag here.
//! The tags on the trunk are checked byte by byte in a capture.
//!
//! Addresses: 198.18.0.0/15 (RFC 2544) and 2001:2::/48 (RFC 5180).

mod common;

use common::{ctl, ip, read_pcap, root_with_ip, run_engine, sh, stop, HostVeth, Script};

fn pings(ns: &str, args: &str) -> bool {
    (0..5).any(|_| sh(ns, &format!("ping -c 1 -W 1 {args}")).0)
}

const SWITCH: &str = r#"
[[port]]
name = "a"
kind = "afxdp"
iface = "pgs-a"
[[port]]
name = "b"
kind = "afxdp"
iface = "pgs-b"
[[port]]
name = "up"
kind = "afxdp"
iface = "pgs-t"
vlan_mode = "trunk"

[[bridge]]
name = "v40"
members = [{ port = "a" }, { port = "up", vid = 40 }]
[[bridge]]
name = "v41"
members = [{ port = "b" }, { port = "up", vid = 41 }]
"#;

const ROUTER: &str = r#"
[[port]]
name = "stick"
kind = "afxdp"
iface = "pgs-tp"
vlan_mode = "trunk"

[[bridge]]
name = "r40"
members = [{ port = "stick", vid = 40 }]
gateway = { addresses = ["198.18.40.1/24", "2001:2:0:40::1/64"] }
[[bridge]]
name = "r41"
members = [{ port = "stick", vid = 41 }]
gateway = { addresses = ["198.18.41.1/24", "2001:2:0:41::1/64"] }
"#;

/// The VLAN ids of the 802.1Q-tagged IPv4 and IPv6 frames of a capture
/// (TPID 0x8100, then the inner ethertype).
fn tagged_vids(frames: &[Vec<u8>]) -> Vec<u16> {
    frames
        .iter()
        .filter(|f| f.len() >= 18 && f[12..14] == [0x81, 0x00])
        .filter(|f| f[16..18] == [0x08, 0x00] || f[16..18] == [0x86, 0xdd])
        .map(|f| u16::from_be_bytes([f[14], f[15]]) & 0x0fff)
        .collect()
}

#[test]
fn two_vlans_on_one_trunk_routed_through_their_gateways() {
    if !root_with_ip("l3_router_on_a_stick") {
        return;
    }
    let base = std::env::temp_dir().join(format!("pg-stick-{}", std::process::id()));
    let (sw_dir, rt_dir) = (base.join("switch"), base.join("router"));
    std::fs::create_dir_all(&sw_dir).unwrap();
    std::fs::create_dir_all(&rt_dir).unwrap();
    let mut s = Script::default();
    s.container("pgs-na", "pgs-a", "198.18.40.10/24");
    s.container("pgs-nb", "pgs-b", "198.18.41.10/24");
    let _trunk = HostVeth::new("pgs-t");
    for (ns, v6, gw4, gw6) in [
        (
            "pgs-na",
            "2001:2:0:40::10/64",
            "198.18.40.1",
            "2001:2:0:40::1",
        ),
        (
            "pgs-nb",
            "2001:2:0:41::10/64",
            "198.18.41.1",
            "2001:2:0:41::1",
        ),
    ] {
        ip(&["-n", ns, "addr", "add", v6, "dev", "eth0", "nodad"]);
        ip(&["-n", ns, "route", "add", "default", "via", gw4]);
        ip(&["-n", ns, "-6", "route", "add", "default", "via", gw6]);
    }

    let switch = run_engine(&sw_dir, SWITCH);
    let router = run_engine(&rt_dir, ROUTER);
    let rt_sock = rt_dir.join("ctl.sock");

    assert!(pings("pgs-na", "198.18.40.1"), "VLAN 40 pings its gateway");
    assert!(pings("pgs-nb", "198.18.41.1"), "VLAN 41 pings its gateway");
    // What crosses the trunk while the hosts ping each other: every IP
    // frame tagged, with the VLAN of the domain it is in.
    let capture = {
        let sock = rt_sock.clone();
        let out = base.join("stick.pcap");
        std::thread::spawn(move || {
            let r = ctl(
                &sock,
                &format!(
                    "capture stick --count 8 --out {} --seconds 5",
                    out.display()
                ),
            );
            (r, read_pcap(&out))
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(pings("pgs-na", "198.18.41.10"), "VLAN 40 to VLAN 41");
    assert!(pings("pgs-nb", "198.18.40.10"), "VLAN 41 to VLAN 40");
    let (r, frames) = capture.join().unwrap();
    r.unwrap();
    let vids = tagged_vids(&frames);
    assert!(
        vids.contains(&40) && vids.contains(&41) && vids.iter().all(|v| [40, 41].contains(v)),
        "tags on the trunk: {vids:?} of {} frames",
        frames.len()
    );
    assert!(
        pings("pgs-na", "2001:2:0:41::10"),
        "IPv6, VLAN 40 to VLAN 41"
    );
    assert!(
        pings("pgs-nb", "2001:2:0:40::10"),
        "IPv6, VLAN 41 to VLAN 40"
    );
    // traceroute's first hop is the router on the stick.
    let (_, t1) = sh("pgs-na", "ping -c 1 -W 2 -t 1 198.18.41.10");
    assert!(
        t1.contains("From 198.18.40.1") && t1.contains("Time to live exceeded"),
        "{t1}"
    );
    let neigh = ctl(&rt_sock, "show neighbors").unwrap();
    assert!(
        neigh.contains("198.18.40.10") && neigh.contains("198.18.41.10"),
        "{neigh}"
    );

    stop(router);
    stop(switch);
    drop(s);
    let _ = std::fs::remove_dir_all(&base);
}
