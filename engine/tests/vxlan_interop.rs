//! pollgate's VTEP against the Linux kernel's own VXLAN device. Behind
//! pollgate: container `pc` (access) and container `tr` on VLAN 10 of a
//! trunk, both in bridge `ov` = VNI 5000. Behind the kernel: namespace
//! `kv` holds the underlay end, a `vxlan` device (VNI 5000, remote =
//! pollgate's VTEP) and a Linux bridge to container `kc`. Needs root and
//! iproute2 (`tools/test.sh` installs it).

use pollgate::config;
use pollgate::ctl::{request, CtlServer};
use pollgate::demo::ping::ping;
use pollgate::demo::udp::{burst, Flow, Load};
use pollgate::Engine;
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pmd::netns::NetNs;
use pollgate_pmd::packet_socket::PacketSocket;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the namespace the test made itself (pollgate removes its own).
struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn tagged_udp(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: [u8; 4],
    dst: [u8; 4],
    dport: u16,
    vid: u16,
) -> Vec<u8> {
    let f = udp4_frame(64, src_mac, dst_mac, src, dst, 40000, dport, b"vlan10");
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&vid.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

#[test]
fn kernel_vxlan_interop_ping_udp_learning_and_vlan_to_vni() {
    if !common::root_with_ip("vxlan interop") {
        return;
    }
    let id = std::process::id() % 10000;
    let (ul, pc, tr, kc) = (
        format!("vxu{id}"),
        format!("vxp{id}"),
        format!("vxt{id}"),
        format!("vxk{id}"),
    );
    let cfg = format!(
        r#"
[engine]
idle = "backoff"
ctl_socket = "/tmp/pollgate-vx{id}.sock"
[[port]]
name = "{ul}"
kind = "veth"
netns = "{ul}"
netns_create = true
mac = "02:50:47:64:00:01"
container_mac = "02:50:47:64:00:02"
address = "198.18.100.2/24"
[[port]]
name = "{pc}"
kind = "veth"
netns = "{pc}"
netns_create = true
container_mac = "02:50:47:32:00:01"
address = "198.18.50.1/24"
# The overlay's MTU: 50 bytes of VXLAN under the underlay's 1500, as
# the kernel gives its vxlan device.
mtu = 1450
[[port]]
name = "{tr}"
kind = "veth"
netns = "{tr}"
netns_create = true
vlan_mode = "trunk"
[[bridge]]
name = "ov"
vni = 5000
flood = ["198.18.100.2"]
members = [{{ port = "{pc}" }}, {{ port = "{tr}", vid = 10 }}]
[vtep]
port = "{ul}"
address = "198.18.100.1"
"#
    );
    let topo = config::parse("vxlan.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let sock = std::path::PathBuf::from(format!("/tmp/pollgate-vx{id}.sock"));
    let _ctl = CtlServer::start(&sock, Arc::new(engine.ctl_state(&topo))).unwrap();

    // The kernel VTEP in the underlay namespace, bridged to container kc.
    let kv = ul.as_str();
    ip(&["netns", "add", &kc]);
    let _kc_guard = Ns(kc.clone());
    common::kernel_vtep(kv, 5000, &kc, "198.18.50.2/24");

    // 1. ping across: pollgate resolves the kernel VTEP by ARP, the
    // kernel resolves ours; the first echoes may go while they do.
    let (npc, nkc, ntr) = (
        NetNs::open(&pc).unwrap(),
        NetNs::open(&kc).unwrap(),
        NetNs::open(&tr).unwrap(),
    );
    let kc_ip: Ipv4Addr = "198.18.50.2".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < 3 && Instant::now() < deadline {
        got += ping(&npc, kc_ip, 1, Duration::from_millis(200), &|| false)
            .unwrap()
            .received;
    }
    assert!(got >= 3, "pc pings kc through pollgate and the kernel VTEP");
    let vx = request(&sock, "show vxlan").unwrap();
    assert!(
        vx.contains("remote 198.18.100.2: next hop 02:50:47:64:00:02"),
        "{vx}"
    );

    // 2. UDP both ways.
    let pc_ip: Ipv4Addr = "198.18.50.1".parse().unwrap();
    let load = Load {
        count: 2000,
        rate: 20000,
        size: 64,
        limit: Duration::from_secs(5),
    };
    for (from, src, to, dst) in [(&npc, pc_ip, &nkc, kc_ip), (&nkc, kc_ip, &npc, pc_ip)] {
        let r = burst(
            &Flow {
                from,
                src,
                to,
                dst,
                port: 47100,
            },
            &load,
            &|| false,
        )
        .unwrap();
        assert!(
            r.received * 100 >= r.sent * 98,
            "{src} -> {dst}: {}",
            r.render()
        );
    }

    // 2b. TCP both ways: the kernel VTEP leaves inner checksums partial
    // unless its underlay device computes them, and AF_XDP carries bytes,
    // not the skb's flag; a stream that completes proves they are whole.
    for (from, to, addr) in [
        (&npc, &nkc, "198.18.50.2:47200"),
        (&nkc, &npc, "198.18.50.1:47201"),
    ] {
        assert!(
            common::tcp_echo(from, to, addr.parse().unwrap(), 200_000),
            "TCP to {addr} across the kernel VTEP"
        );
    }

    // 3. Learning on both sides: kc's MAC behind the tunnel in pollgate,
    // pc's MAC behind pollgate's VTEP in the kernel.
    let macs = request(&sock, "show macs ov").unwrap();
    assert!(macs.contains("vxlan:198.18.100.2"), "{macs}");
    let fdb = Command::new("ip")
        .args(["netns", "exec", kv, "bridge", "fdb", "show", "dev", "vx0"])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        fdb.contains("02:50:47:32:00:01") && fdb.contains("dst 198.18.100.1"),
        "{fdb}"
    );

    // 4. VLAN 10 on the trunk is the same segment: a tagged frame from tr
    // reaches kc; kc's ARP for tr arrives tagged, and after our tagged
    // reply kc's datagram comes back tagged too.
    let kc_mac = {
        let out = ip(&["-n", &kc, "-o", "link", "show", "eth0"]);
        let m = out
            .split("link/ether ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_string();
        m.parse::<MacAddr>().unwrap()
    };
    let tr_mac = MacAddr([2, 0x50, 0x47, 0x10, 0, 3]);
    let st = ntr.run(|| PacketSocket::open("eth0")).unwrap();
    let rx = nkc.run(|| UdpSocket::bind("198.18.50.2:47200")).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    st.send(&tagged_udp(
        tr_mac,
        kc_mac,
        [198, 18, 50, 3],
        [198, 18, 50, 2],
        47200,
        10,
    ))
    .unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = rx
        .recv_from(&mut buf)
        .expect("kc receives the VLAN 10 datagram");
    assert!(buf[..n].starts_with(b"vlan10"), "{:?}", &buf[..n]);
    assert_eq!(from.ip().to_string(), "198.18.50.3");
    let tx = nkc.run(|| UdpSocket::bind("198.18.50.2:0")).unwrap();
    tx.send_to(b"to-vlan10", "198.18.50.3:47300").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answered = false;
    let mut arrived = false;
    while !arrived && Instant::now() < deadline {
        let Some(len) = st.recv(&mut buf, Duration::from_millis(200)).unwrap() else {
            if answered {
                let _ = tx.send_to(b"to-vlan10", "198.18.50.3:47300");
            }
            continue;
        };
        let f = &buf[..len];
        if f.len() < 18
            || f[12..14] != [0x81, 0]
            || u16::from_be_bytes([f[14], f[15]]) & 0xfff != 10
        {
            continue;
        }
        let inner = &f[16..];
        if inner[..2] == [0x08, 0x06] && inner[2 + 24..2 + 28] == [198, 18, 50, 3] {
            // ARP request for tr: answer it, tagged.
            let mut reply = [0u8; 60];
            pollgate_pipeline::wire::arp::emit_frame(
                &mut reply,
                tr_mac,
                [198, 18, 50, 3],
                Some(kc_mac),
                [198, 18, 50, 2],
            );
            let mut t = reply[..12].to_vec();
            t.extend_from_slice(&[0x81, 0x00, 0x00, 10]);
            t.extend_from_slice(&reply[12..]);
            st.send(&t).unwrap();
            answered = true;
        } else if inner[..2] == [0x08, 0x00]
            && inner.len() >= 2 + 28 + 9
            && &inner[2 + 28..2 + 28 + 9] == b"to-vlan10"
        {
            arrived = true;
        }
    }
    assert!(
        answered,
        "kc's ARP for the VLAN 10 host arrived tagged VID 10"
    );
    assert!(arrived, "kc's datagram arrived on VLAN 10");

    drop((st, rx, tx, npc, nkc, ntr));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
}
