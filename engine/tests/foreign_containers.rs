//! Containers pollgate did not create: namespaces reached by path or by
//! process, as container runtimes hand them out, and `afxdp` ports on
//! veth pairs a script made, whose far ends keep the offloads `ip link
//! add` gives them until pollgate turns them off. Needs root and
//! iproute2 (`tools/test.sh` installs it).

use pollgate::config;
use pollgate::demo::ping::ping;
use pollgate::Engine;
use pollgate_pmd::ethtool;
use pollgate_pmd::netns::NetNs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

/// (TX checksum, 802.1Q TX VLAN, 802.1ad TX VLAN) offloads of `eth0` in `ns`.
fn offloads(ns: &NetNs) -> (bool, bool, Option<bool>) {
    ns.run(|| {
        Ok((
            ethtool::tx_checksum("eth0")?,
            ethtool::tx_vlan_offload("eth0")?,
            ethtool::tx_stag_offload("eth0")?,
        ))
    })
    .unwrap()
}

/// `count` UDP datagrams of 1000 bytes from `from` to `to`'s `addr`: how
/// many arrive intact.
fn udp(from: &NetNs, to: &NetNs, addr: SocketAddr, count: u32) -> u32 {
    let rx = to.run(move || UdpSocket::bind(addr)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let tx = from
        .run(|| UdpSocket::bind("0.0.0.0:0".parse::<SocketAddr>().unwrap()))
        .unwrap();
    let mut got = 0;
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let mut d = vec![(i % 251) as u8; 1000];
        d[..4].copy_from_slice(&i.to_be_bytes());
        tx.send_to(&d, addr).unwrap();
        if let Ok((k, _)) = rx.recv_from(&mut buf) {
            got += (k == 1000 && buf[..k] == d[..]) as u32;
        }
    }
    got
}

#[test]
fn afxdp_ports_on_veth_pairs_a_script_made_carry_tcp_and_udp_both_ways() {
    if !common::root_with_ip("foreign veth") {
        return;
    }
    let id = std::process::id() % 10000;
    let (na, nb, da, db) = (
        format!("fca{id}"),
        format!("fcb{id}"),
        format!("fcah{id}"),
        format!("fcbh{id}"),
    );
    let mut script = common::Script::default();
    script.container(&na, &da, "198.18.90.1/24");
    script.container(&nb, &db, "198.18.90.2/24");
    let (a, b) = (NetNs::open(&na).unwrap(), NetNs::open(&nb).unwrap());
    let before = offloads(&a);
    assert!(
        before.0 && before.1,
        "ip link add leaves the offloads on: {before:?}"
    );
    let cfg = format!(
        "[engine]\nidle = \"backoff\"\n\
         [[port]]\nname = \"{da}\"\nkind = \"afxdp\"\niface = \"{da}\"\nmode = \"copy\"\n\
         [[port]]\nname = \"{db}\"\nkind = \"afxdp\"\niface = \"{db}\"\nmode = \"copy\"\n\
         [[bridge]]\nname = \"c\"\nmembers = [{{ port = \"{da}\" }}, {{ port = \"{db}\" }}]\n"
    );
    let topo = config::parse("foreign.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    for ns in [&a, &b] {
        let (csum, vlan, stag) = offloads(ns);
        assert!(
            !csum && !vlan && stag != Some(true),
            "off while pollgate serves the peer"
        );
    }
    let (ip_a, ip_b) = (Ipv4Addr::new(198, 18, 90, 1), Ipv4Addr::new(198, 18, 90, 2));
    let stop = || false;
    assert_eq!(
        ping(&a, ip_b, 2, Duration::from_millis(100), &stop)
            .unwrap()
            .received,
        2
    );
    assert!(
        common::tcp_echo(&a, &b, SocketAddr::new(ip_b.into(), 47100), 256 * 1024),
        "TCP a -> b and back"
    );
    assert!(
        common::tcp_echo(&b, &a, SocketAddr::new(ip_a.into(), 47101), 256 * 1024),
        "TCP b -> a and back"
    );
    assert_eq!(
        udp(&a, &b, SocketAddr::new(ip_b.into(), 47102), 200),
        200,
        "UDP a -> b"
    );
    assert_eq!(
        udp(&b, &a, SocketAddr::new(ip_a.into(), 47103), 200),
        200,
        "UDP b -> a"
    );
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
    assert_eq!(
        offloads(&a),
        before,
        "the peer's offloads are back as they were"
    );
}

#[test]
fn veth_ports_reach_namespaces_by_path_and_by_process() {
    if !common::root_with_ip("netns by path") {
        return;
    }
    let id = std::process::id() % 10000;
    let named = format!("fcp{id}");
    common::ip(&["netns", "add", &named]);
    let mut script = common::Script::default();
    script.netns.push(named.clone());
    // A process in a namespace of its own, registered nowhere: how a
    // container runtime's sandbox looks.
    let mut sandbox = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .expect("unshare (util-linux) runs");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = sandbox.id();
    let own = std::fs::metadata("/proc/self/ns/net").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    use std::os::unix::fs::MetadataExt;
    while std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .map(|m| m.ino())
        .ok()
        == Some(own.ino())
    {
        assert!(Instant::now() < deadline, "unshare made no namespace");
        assert!(sandbox.try_wait().unwrap().is_none(), "unshare exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _sandbox = Kill(sandbox);
    let (pa, pb) = (format!("fcq{id}"), format!("fcr{id}"));
    let cfg = format!(
        "[engine]\nidle = \"backoff\"\n\
         [[port]]\nname = \"{pa}\"\nkind = \"veth\"\nnetns = \"/run/netns/{named}\"\naddress = \"198.18.91.1/24\"\n\
         [[port]]\nname = \"{pb}\"\nkind = \"veth\"\nnetns_pid = {pid}\naddress = \"198.18.91.2/24\"\n\
         [[bridge]]\nname = \"c\"\nmembers = [{{ port = \"{pa}\" }}, {{ port = \"{pb}\" }}]\n"
    );
    let topo = config::parse("bypath.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let a = NetNs::open(&format!("/run/netns/{named}")).unwrap();
    let b = NetNs::open(&format!("/proc/{pid}/ns/net")).unwrap();
    let stop = || false;
    let to_b = ping(
        &a,
        Ipv4Addr::new(198, 18, 91, 2),
        2,
        Duration::from_millis(100),
        &stop,
    );
    assert_eq!(to_b.unwrap().received, 2, "by path -> by process");
    let to_a = ping(
        &b,
        Ipv4Addr::new(198, 18, 91, 1),
        2,
        Duration::from_millis(100),
        &stop,
    );
    assert_eq!(to_a.unwrap().received, 2, "by process -> by path");
    drop((a, b));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
    // pollgate removed its pairs and left the namespaces it did not make.
    assert!(std::path::Path::new(&format!("/run/netns/{named}")).exists());
    assert!(std::path::Path::new(&format!("/proc/{pid}/ns/net")).exists());
}

#[test]
fn the_reaper_gives_the_peer_its_offloads_back_after_kill_9() {
    if !common::root_with_ip("peer offload reaper") {
        return;
    }
    let id = std::process::id() % 10000;
    let (ns, dev) = (format!("fck{id}"), format!("fckh{id}"));
    let mut script = common::Script::default();
    script.container(&ns, &dev, "198.18.92.1/24");
    let n = NetNs::open(&ns).unwrap();
    let before = offloads(&n);
    let dir = std::env::temp_dir().join(format!("pollgate-peer-{}", std::process::id()));
    let mut child = common::pollgate_run(
        &dir,
        &format!("[[port]]\nname = \"{dev}\"\nkind = \"afxdp\"\niface = \"{dev}\"\nmode = \"copy\"\n[[port]]\nname = \"n\"\nkind = \"null\"\n[[xconnect]]\nports = [\"{dev}\", \"n\"]\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while offloads(&n).0 {
        assert!(
            Instant::now() < deadline,
            "pollgate never turned the peer's offloads off"
        );
        assert!(child.try_wait().unwrap().is_none(), "pollgate exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while offloads(&n) != before {
        assert!(
            Instant::now() < deadline,
            "the reaper did not restore {before:?}: {:?}",
            offloads(&n)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
