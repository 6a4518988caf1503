//! L2 service modes on real veth pairs in namespaces, through AF_XDP: the
//! 802.1ad customer port against a provider trunk, and containers sharing
//! one uplink as macvlan (bridge, private, VEPA, passthru) and ipvlan L2
//! members. The segment behind the uplink is a namespace; where a test
//! needs an external switch (a provider network, a hairpinning VEPA
//! switch) it is a Linux bridge in that namespace. Needs root and
//! iproute2 (`tools/test.sh` installs it).

use pollgate::config;
use pollgate::demo::ping::ping;
use pollgate::Engine;
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::DropReason;
use pollgate_pmd::netlink::Netlink;
use pollgate_pmd::netns::NetNs;
use pollgate_pmd::packet_socket::PacketSocket;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

/// `ip` inside namespace `ns`; panics with its stderr when it fails.
fn ip_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip netns exec {ns} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(tag: &str, parts: &[&str]) -> Vec<String> {
    let id = std::process::id() % 10000;
    parts.iter().map(|p| format!("{tag}{p}{id}")).collect()
}

fn veth(name: &str, netns: &str, create: bool, mac: &str, extra: &str) -> String {
    format!(
        "[[port]]\nname = \"{name}\"\nkind = \"veth\"\nnetns = \"{netns}\"\nnetns_create = {create}\ncontainer_mac = \"{mac}\"\n{extra}\n"
    )
}

fn pings(ns: &NetNs, to: [u8; 4]) -> u32 {
    ping(
        ns,
        Ipv4Addr::from(to),
        3,
        Duration::from_millis(100),
        &|| false,
    )
    .expect("ping runs")
    .received
}

/// Waits up to 2 s for a frame on `sock` that `want` accepts.
fn caught(sock: &PacketSocket, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(n) = sock.recv(&mut buf, Duration::from_millis(100)).unwrap() {
            if want(&buf[..n]) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

fn seen(sock: &PacketSocket, want: impl Fn(&[u8]) -> bool) -> bool {
    caught(sock, want).is_some()
}

/// Dissects `frames` with scapy, an implementation independent of
/// pollgate's, and returns one line per frame: each layer's name and its
/// VLAN id and priority where it has them.
fn scapy_layers(frames: &[Vec<u8>]) -> Option<Vec<String>> {
    let py = common::scapy_python()?;
    let path = std::env::temp_dir().join(format!("pg-l2svc-{}.pcap", std::process::id()));
    common::write_pcap(&path, frames);
    let script = r#"
import sys
from scapy.all import rdpcap
for p in rdpcap(sys.argv[1]):
    out = []
    while p:
        v = f"({p.vlan},{p.prio})" if "vlan" in p.fields else ""
        out.append(p.__class__.__name__ + v)
        p = p.payload if p.payload else None
    print(" ".join(out))
"#;
    let out = Command::new(&py)
        .args(["-c", script, &path.display().to_string()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect(),
    )
}

fn tagged(f: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    for (tpid, tci) in tags {
        t.extend_from_slice(&tpid.to_be_bytes());
        t.extend_from_slice(&tci.to_be_bytes());
    }
    t.extend_from_slice(&f[12..]);
    t
}

/// Customer A and customer B, each behind a dot1q-tunnel port of its own
/// service domain; the two services' provider ports (QinQ, S-VID 100)
/// meet in namespace `prov`, whose Linux bridge is the provider network.
#[test]
fn customer_ports_carry_c_tags_through_a_qinq_provider_trunk() {
    if !common::root_with_ip("customer ports") {
        return;
    }
    let n = names("cs", &["a", "b", "p", "q", "n"]);
    let (ca, cb, pa, pb, prov) = (&n[0], &n[1], &n[2], &n[3], &n[4]);
    let mut cfg = String::from("[engine]\nidle = \"backoff\"\n");
    cfg += &veth(
        ca,
        ca,
        true,
        "02:50:47:60:00:01",
        "address = \"198.18.60.1/24\"\nvlan_mode = \"dot1q-tunnel\"\ndefault_pcp = 2",
    );
    cfg += &veth(
        cb,
        cb,
        true,
        "02:50:47:60:00:02",
        "address = \"198.18.60.2/24\"\nvlan_mode = \"dot1q-tunnel\"",
    );
    cfg += &veth(
        pa,
        prov,
        true,
        "02:50:47:60:00:03",
        "netns_ifname = \"eth0\"\nvlan_mode = \"qinq\"",
    );
    cfg += &veth(
        pb,
        prov,
        false,
        "02:50:47:60:00:04",
        "netns_ifname = \"eth1\"\nvlan_mode = \"qinq\"",
    );
    cfg += &format!("[[bridge]]\nname = \"svca\"\nmembers = [{{ port = \"{ca}\" }}, {{ port = \"{pa}\", svid = 100 }}]\n");
    cfg += &format!("[[bridge]]\nname = \"svcb\"\nmembers = [{{ port = \"{pb}\", svid = 100 }}, {{ port = \"{cb}\" }}]\n");
    let topo = config::parse("customer.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    ip_in(prov, &["ip", "link", "add", "br0", "type", "bridge"]);
    for d in ["eth0", "eth1"] {
        ip_in(prov, &["ip", "link", "set", d, "master", "br0"]);
    }
    ip_in(prov, &["ip", "link", "set", "br0", "up"]);
    let (na, nb, np) = (
        NetNs::open(ca).unwrap(),
        NetNs::open(cb).unwrap(),
        NetNs::open(prov).unwrap(),
    );

    // Untagged customer traffic: IP between the two customer sites.
    assert_eq!(
        pings(&na, [198, 18, 60, 2]),
        3,
        "untagged through the service"
    );

    let sa = na.run(|| PacketSocket::open("eth0")).unwrap();
    let sb = nb.run(|| PacketSocket::open("eth0")).unwrap();
    // What pollgate's provider port sends, as the provider bridge gets it.
    let trunk = np.run(|| PacketSocket::open("eth0")).unwrap();
    let (ma, mb) = ([2, 0x50, 0x47, 0x60, 0, 1], [2, 0x50, 0x47, 0x60, 0, 2]);
    let plain = udp4_frame(
        80,
        MacAddr(ma),
        MacAddr(mb),
        [198, 18, 60, 1],
        [198, 18, 60, 2],
        4000,
        4001,
        b"cvlan33",
    );
    // C-VID 33, PCP 5: the customer's tag crosses untouched, and the
    // provider trunk carries S-VID 100 (PCP 5, from the C-tag) over it.
    let c33 = tagged(&plain, &[(0x8100, 0xa021)]);
    sa.send(&c33).unwrap();
    let on_trunk = tagged(&plain, &[(0x88a8, 0xa064), (0x8100, 0xa021)]);
    let trunk_c33 = caught(&trunk, |f| f == on_trunk)
        .expect("0x88a8 S-VID 100 over 0x8100 C-VID 33 on the provider trunk");
    sa.send(&c33).unwrap();
    let at_b = caught(&sb, |f| f == c33).expect("customer B gets C-VID 33 as sent");
    // And back, B to A.
    let back = tagged(
        &udp4_frame(
            80,
            MacAddr(mb),
            MacAddr(ma),
            [198, 18, 60, 2],
            [198, 18, 60, 1],
            4001,
            4000,
            b"cvlan33",
        ),
        &[(0x8100, 0x0021)],
    );
    sb.send(&back).unwrap();
    assert!(seen(&sa, |f| f == back), "C-VID 33 from B reaches A");
    // An untagged frame takes the port's default PCP (2) on the S-tag.
    sa.send(&plain).unwrap();
    let s_only = tagged(&plain, &[(0x88a8, 0x4064)]);
    let trunk_plain = caught(&trunk, |f| f == s_only).expect("untagged: S-VID 100, PCP 2");
    // Double C-tagged: the S-tag goes over both. (A pollgate QinQ port
    // would count three tags as too_many_tags: its parser reads two.)
    let cc = tagged(&plain, &[(0x8100, 0xa021), (0x8100, 0x0005)]);
    sa.send(&cc).unwrap();
    let want_cc = tagged(
        &plain,
        &[(0x88a8, 0xa064), (0x8100, 0xa021), (0x8100, 0x0005)],
    );
    let trunk_cc = caught(&trunk, |f| f == want_cc).expect("S-VID 100 over C-VIDs 33 and 5");
    if let Some(layers) = scapy_layers(&[trunk_c33, at_b, trunk_plain, trunk_cc]) {
        assert_eq!(
            layers,
            [
                "Ether Dot1AD(100,5) Dot1Q(33,5) IP UDP Raw",
                "Ether Dot1Q(33,5) IP UDP Raw",
                "Ether Dot1AD(100,2) IP UDP Raw",
                "Ether Dot1AD(100,5) Dot1Q(33,5) Dot1Q(5,0) IP UDP Raw",
            ]
        );
    }

    // STP from the customer stays on the customer's side, counted.
    let mut stp = plain.clone();
    stp[0..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0, 0, 0]);
    sa.send(&stp).unwrap();
    assert!(!seen(&sb, |f| f == stp), "STP is not tunnelled");

    drop((sa, sb, trunk, na, nb, np));
    let summary = engine.shutdown();
    assert_eq!(summary.drops().get(DropReason::L2cpDropped), 1);
    assert!(summary.frames_balanced(), "{}", summary.render());
}

/// The segment behind the uplink: namespace `seg`, host 198.18.70.100.
/// With `hairpin`, its address sits on a Linux bridge whose port towards
/// pollgate sends frames back where they came from (a VEPA switch).
fn macvlan_config(n: &[String], mode: &str, members: usize) -> String {
    let (up, seg) = (&n[0], &n[1]);
    let mut cfg = String::from("[engine]\nidle = \"backoff\"\n");
    cfg += &veth(
        up,
        seg,
        true,
        "02:50:47:70:00:64",
        "address = \"198.18.70.100/24\"",
    );
    let mut list = format!("{{ port = \"{up}\" }}");
    for (k, c) in n[2..2 + members].iter().enumerate() {
        cfg += &veth(
            c,
            c,
            true,
            &format!("02:50:47:70:00:{:02x}", k + 1),
            &format!("address = \"198.18.70.{}/24\"", k + 1),
        );
        list += &format!(", {{ port = \"{c}\" }}");
    }
    cfg += &format!("[[bridge]]\nname = \"mv\"\ndriver = \"macvlan\"\nparent = \"{up}\"\nmacvlan_mode = \"{mode}\"\nmembers = [{list}]\n");
    cfg
}

fn hairpin(seg: &str) {
    ip_in(seg, &["ip", "addr", "flush", "dev", "eth0"]);
    ip_in(seg, &["ip", "link", "add", "br0", "type", "bridge"]);
    ip_in(seg, &["ip", "link", "set", "eth0", "master", "br0"]);
    ip_in(
        seg,
        &[
            "ip",
            "link",
            "set",
            "eth0",
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ],
    );
    ip_in(
        seg,
        &["ip", "addr", "add", "198.18.70.100/24", "dev", "br0"],
    );
    ip_in(seg, &["ip", "link", "set", "br0", "up"]);
}

/// Runs `check` against a macvlan topology in `mode`, then checks the
/// engine's exit: frames balanced, the parent's filter undone.
fn with_macvlan(
    tag: &str,
    mode: &str,
    members: usize,
    with_hairpin: bool,
    check: impl FnOnce(&[NetNs], &str),
) -> pollgate::engine::Summary {
    let n = names(tag, &["u", "s", "a", "b"]);
    let topo = config::parse("macvlan.toml", &macvlan_config(&n, mode, members)).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    if with_hairpin {
        hairpin(&n[1]);
    }
    let ns: Vec<NetNs> = n[1..2 + members]
        .iter()
        .map(|x| NetNs::open(x).unwrap())
        .collect();
    check(&ns, &n[0]);
    drop(ns);
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
    summary
}

/// The parent device's own unicast list (`bridge fdb show dev X self`).
fn unicast_filter(dev: &str) -> String {
    let out = Command::new("bridge")
        .args(["fdb", "show", "dev", dev])
        .output()
        .expect("bridge (iproute2) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn macvlan_bridge_members_reach_each_other_and_the_segment() {
    if !common::root_with_ip("macvlan bridge") {
        return;
    }
    with_macvlan("mb", "bridge", 2, false, |ns, up| {
        let (seg, a, b) = (&ns[0], &ns[1], &ns[2]);
        assert_eq!(pings(a, [198, 18, 70, 2]), 3, "a -> b inside pollgate");
        assert_eq!(pings(a, [198, 18, 70, 100]), 3, "a -> the segment");
        assert_eq!(pings(b, [198, 18, 70, 100]), 3, "b -> the segment");
        assert_eq!(pings(seg, [198, 18, 70, 1]), 3, "the segment -> a");
        let filter = unicast_filter(up);
        for mac in ["02:50:47:70:00:01", "02:50:47:70:00:02"] {
            assert!(
                filter.contains(&format!("{mac} self permanent")),
                "member MAC {mac} in the parent's unicast filter:\n{filter}"
            );
        }
    });
}

#[test]
fn macvlan_private_members_never_meet_even_hairpinned() {
    if !common::root_with_ip("macvlan private") {
        return;
    }
    let s = with_macvlan("mp", "private", 2, true, |ns, _| {
        let (seg, a, b) = (&ns[0], &ns[1], &ns[2]);
        assert_eq!(pings(seg, [198, 18, 70, 1]), 3, "the segment -> a");
        assert_eq!(pings(seg, [198, 18, 70, 2]), 3, "the segment -> b");
        assert_eq!(pings(a, [198, 18, 70, 2]), 0, "a never reaches b");
        assert_eq!(pings(b, [198, 18, 70, 1]), 0, "b never reaches a");
    });
    assert!(
        s.drops().get(DropReason::MacvlanPrivate) > 0,
        "the hairpinned frames are counted"
    );
}

#[test]
fn macvlan_vepa_members_meet_only_through_a_hairpinning_switch() {
    if !common::root_with_ip("macvlan vepa") {
        return;
    }
    with_macvlan("mv", "vepa", 2, false, |ns, _| {
        let (seg, a) = (&ns[0], &ns[1]);
        assert_eq!(pings(seg, [198, 18, 70, 1]), 3, "the segment -> a");
        assert_eq!(
            pings(a, [198, 18, 70, 2]),
            0,
            "without hairpin a does not reach b"
        );
    });
    with_macvlan("mw", "vepa", 2, true, |ns, _| {
        let (seg, a, b) = (&ns[0], &ns[1], &ns[2]);
        // What a sends towards b leaves through the uplink.
        let sniff = seg.run(|| PacketSocket::open("eth0")).unwrap();
        assert_eq!(
            pings(a, [198, 18, 70, 2]),
            3,
            "hairpinned back: a reaches b"
        );
        assert!(
            seen(&sniff, |f| f.len() > 34
                && f[12..14] == [8, 0]
                && f[26..30] == [198, 18, 70, 1]
                && f[30..34] == [198, 18, 70, 2]),
            "a's packets to b cross the uplink"
        );
        assert_eq!(pings(b, [198, 18, 70, 100]), 3, "b -> the segment");
    });
}

#[test]
fn macvlan_passthru_gives_the_uplink_to_one_member() {
    if !common::root_with_ip("macvlan passthru") {
        return;
    }
    let mut up_dev = String::new();
    with_macvlan("mt", "passthru", 1, false, |ns, up| {
        up_dev = up.to_string();
        let mut nl = Netlink::open().unwrap();
        assert!(
            nl.get_link(up).unwrap().unwrap().promisc,
            "the parent is promiscuous"
        );
        assert_eq!(
            pings(&ns[1], [198, 18, 70, 100]),
            3,
            "the owner reaches the segment"
        );
        assert_eq!(
            pings(&ns[0], [198, 18, 70, 1]),
            3,
            "and the segment the owner"
        );
    });
    let mut nl = Netlink::open().unwrap();
    assert!(
        nl.get_link(&up_dev).unwrap().is_none(),
        "the parent pair is gone at exit"
    );
}

/// A parent pollgate did not create (an `afxdp` port on a veth pair a
/// script made, as on a NIC): its unicast filter holds the member MACs,
/// and passthru makes it promiscuous, only while pollgate runs.
#[test]
fn a_parent_pollgate_did_not_create_gets_its_filter_back_at_exit() {
    if !common::root_with_ip("macvlan parent filter") {
        return;
    }
    let n = names("mf", &["u", "s", "a"]);
    let (up, seg, a) = (&n[0], &n[1], &n[2]);
    // Removed however the test ends.
    let mut script = common::Script::default();
    script.container(seg, up, "198.18.70.100/24");
    let mut nl = Netlink::open().unwrap();
    for mode in ["bridge", "passthru"] {
        let mut cfg = format!(
            "[engine]\nidle = \"backoff\"\n[[port]]\nname = \"{up}\"\nkind = \"afxdp\"\niface = \"{up}\"\nmode = \"copy\"\n"
        );
        cfg += &veth(
            a,
            a,
            true,
            "02:50:47:70:00:01",
            "address = \"198.18.70.1/24\"",
        );
        cfg += &format!("[[bridge]]\nname = \"mv\"\ndriver = \"macvlan\"\nparent = \"{up}\"\nmacvlan_mode = \"{mode}\"\nmembers = [{{ port = \"{up}\" }}, {{ port = \"{a}\" }}]\n");
        let topo = config::parse("macvlan.toml", &cfg).unwrap();
        let engine = Engine::start(&topo).expect("engine starts");
        let ns = NetNs::open(a).unwrap();
        assert_eq!(
            pings(&ns, [198, 18, 70, 100]),
            3,
            "{mode}: the member reaches the segment"
        );
        let during = unicast_filter(up);
        let promisc = nl.get_link(up).unwrap().unwrap().promisc;
        drop(ns);
        let summary = engine.shutdown();
        assert!(summary.frames_balanced(), "{}", summary.render());
        let after = unicast_filter(up);
        let entry = "02:50:47:70:00:01 self permanent";
        if mode == "bridge" {
            assert!(during.contains(entry), "{mode}: {during}");
            assert!(!promisc, "{mode}: a filter, not promiscuous mode");
        } else {
            assert!(promisc, "passthru: promiscuous while pollgate runs");
        }
        assert!(
            !after.contains(entry),
            "{mode}: filter entry removed: {after}"
        );
        assert!(
            !nl.get_link(up).unwrap().unwrap().promisc,
            "{mode}: not promiscuous after"
        );
    }
}

#[test]
fn ipvlan_l2_members_share_one_mac_and_are_told_apart_by_ip() {
    if !common::root_with_ip("ipvlan") {
        return;
    }
    let n = names("iv", &["u", "s", "a", "b", "c"]);
    let (up, seg) = (&n[0], &n[1]);
    let shared = "02:50:47:80:00:aa";
    let mut cfg = String::from("[engine]\nidle = \"backoff\"\n");
    cfg += &veth(
        up,
        seg,
        true,
        "02:50:47:80:00:64",
        &format!("address = \"198.18.80.100/24\"\nmac = \"{shared}\""),
    );
    let mut list = format!("{{ port = \"{up}\" }}");
    // The third member keeps a MAC of its own: what pollgate delivers to
    // it must be rewritten to that MAC, and its own ND answers would carry
    // it, so the host's neighbor table shows who answered.
    let own_mac = "02:50:47:80:00:0c";
    for (k, c) in n[2..].iter().enumerate() {
        let mac = if k == 2 {
            format!("container_mac = \"{own_mac}\"\n")
        } else {
            String::new()
        };
        cfg += &format!(
            "[[port]]\nname = \"{c}\"\nkind = \"veth\"\nnetns = \"{c}\"\nnetns_create = true\naddress = \"198.18.80.{}/24\"\n{mac}",
            11 + k
        );
        list += &format!(
            ", {{ port = \"{c}\", ips = [\"2001:2:0:80::{}\"] }}",
            11 + k
        );
    }
    cfg += &format!(
        "[[bridge]]\nname = \"iv\"\ndriver = \"ipvlan\"\nparent = \"{up}\"\nmembers = [{list}]\n"
    );
    let topo = config::parse("ipvlan.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    ip_in(
        seg,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:2:0:80::100/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    for (k, c) in n[2..].iter().enumerate() {
        let a = format!("2001:2:0:80::{}/64", 11 + k);
        ip_in(c, &["ip", "-6", "addr", "add", &a, "dev", "eth0", "nodad"]);
        let mac = ip_in(c, &["ip", "-br", "link", "show", "eth0"]);
        let want = if k == 2 { own_mac } else { shared };
        assert!(mac.contains(want), "member {c} has MAC {want}: {mac}");
    }
    let ns: Vec<NetNs> = n[1..].iter().map(|x| NetNs::open(x).unwrap()).collect();
    for k in 0..3u8 {
        assert_eq!(
            pings(&ns[1 + k as usize], [198, 18, 80, 100]),
            3,
            "member {k} -> host"
        );
        assert_eq!(
            pings(&ns[0], [198, 18, 80, 11 + k]),
            3,
            "host -> member {k}"
        );
    }
    assert_eq!(pings(&ns[1], [198, 18, 80, 12]), 3, "member to member");
    assert_eq!(pings(&ns[3], [198, 18, 80, 11]), 3, "member to member");
    // The host learned every member behind the one shared MAC, from the
    // ARP replies pollgate gave.
    let neigh = ip_in(seg, &["ip", "-4", "neigh", "show", "dev", "eth0"]);
    for k in 0..3 {
        let line = neigh
            .lines()
            .find(|l| l.starts_with(&format!("198.18.80.{} ", 11 + k)))
            .unwrap_or_else(|| panic!("198.18.80.{} in the host's ARP table:\n{neigh}", 11 + k));
        assert!(line.contains(shared), "{line}");
    }
    // IPv6: neighbor discovery answered with the shared MAC too.
    for k in 0..3 {
        let to = format!("2001:2:0:80::{}", 11 + k);
        ip_in(seg, &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", &to]);
    }
    let neigh6 = ip_in(seg, &["ip", "-6", "neigh", "show", "dev", "eth0"]);
    assert!(
        neigh6
            .lines()
            .filter(|l| l.starts_with("2001:2:0:80::1"))
            .all(|l| l.contains(shared)),
        "{neigh6}"
    );
    let filter = unicast_filter(up);
    assert!(
        filter.contains(&format!("{shared} self permanent")),
        "{filter}"
    );
    drop(ns);
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
}

/// After a `kill -9` no destructor runs: the reaper takes the member MAC
/// out of the parent's unicast filter and turns promiscuous mode off.
#[test]
fn the_reaper_undoes_the_parents_filter_after_kill_9() {
    if !common::root_with_ip("macvlan reaper") {
        return;
    }
    let up = format!("mk{}", std::process::id() % 100000);
    let _pair = common::HostVeth::new(&up);
    let mut nl = Netlink::open().unwrap();
    let dir = std::env::temp_dir().join(format!("pollgate-mvreap-{}", std::process::id()));
    // One parent, two of its VLANs: a macvlan bridge (a member MAC in the
    // filter) and a passthru (promiscuous).
    let mut child = common::pollgate_run(
        &dir,
        &format!(
            "[[port]]\nname = \"{up}\"\nkind = \"afxdp\"\niface = \"{up}\"\nxdp_mode = \"generic\"\nvlan_mode = \"trunk\"\n\
             [[port]]\nname = \"m1\"\nkind = \"null\"\n[[port]]\nname = \"m2\"\nkind = \"null\"\n\
             [[bridge]]\nname = \"mv\"\ndriver = \"macvlan\"\nparent = \"{up}\"\nmembers = [{{ port = \"{up}\", vid = 10 }}, {{ port = \"m1\" }}]\nstatic_macs = [{{ mac = \"02:50:47:71:00:01\", port = \"m1\" }}]\n\
             [[bridge]]\nname = \"pt\"\ndriver = \"macvlan\"\nmacvlan_mode = \"passthru\"\nparent = \"{up}\"\nmembers = [{{ port = \"{up}\", vid = 20 }}, {{ port = \"m2\" }}]\nstatic_macs = [{{ mac = \"02:50:47:71:00:02\", port = \"m2\" }}]\n",
        ),
    );
    let entry = "02:50:47:71:00:01 self permanent";
    common::wait_for("the parent's filter and promiscuous mode", || {
        assert!(child.try_wait().unwrap().is_none(), "pollgate exited");
        unicast_filter(&up).contains(entry) && nl.get_link(&up).unwrap().unwrap().promisc
    });
    assert!(
        !unicast_filter(&up).contains("02:50:47:71:00:02"),
        "a passthru member's MAC is not filtered: the parent is promiscuous"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    common::wait_for("the reaper to undo them", || {
        !unicast_filter(&up).contains(entry) && !nl.get_link(&up).unwrap().unwrap().promisc
    });
    let _ = std::fs::remove_dir_all(&dir);
}
