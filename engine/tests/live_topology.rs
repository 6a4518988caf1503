//! The topology changing under traffic (root): `ctl port add|del`, a
//! bridge member moved between VLANs, a VNI added with its flood list,
//! and a `reload` that adds and removes ports, each applied while
//! pollgate-pktgen sends a paced flow between two other containers. The
//! flow must lose nothing, and the frames must balance at exit.

mod common;

use common::{
    ctl, flow_result, head_sized, netns_exists, paced_flow, ping, read_pcap, root_with_ip,
    run_engine_on, stop, Script,
};
use std::time::{Duration, Instant};

fn veth(name: &str, ns: &str, addr: &str) -> String {
    format!(
        "[[port]]\nname = \"{name}\"\nkind = \"veth\"\nnetns = \"{ns}\"\nnetns_create = true\naddress = \"{addr}\"\n"
    )
}

const BODY_END: &str = r#"
[[port]]
name = "a"
kind = "afxdp"
iface = "pglt-a"
[[port]]
name = "b"
kind = "afxdp"
iface = "pglt-b"
[[port]]
name = "u"
kind = "afxdp"
iface = "pglt-u"
[vtep]
port = "u"
address = "198.18.42.1"
neighbors = [{ ip = "198.18.42.2", mac = "02:00:00:00:42:02" }]
"#;

fn body(extra_port: &str, br0_extra: &str) -> String {
    format!(
        "{}{}{}{BODY_END}\n[[bridge]]\nname = \"br0\"\nmembers = [{{ port = \"a\" }}, {{ port = \"b\" }}, {{ port = \"d\" }}{br0_extra}]\n\
         [[bridge]]\nname = \"br1\"\nmembers = [{{ port = \"f\" }}]\n",
        veth("d", "pglt-nd", "198.18.40.4/24"),
        veth("f", "pglt-nf", "198.18.41.6/24"),
        extra_port,
    )
}

#[test]
fn ports_members_vnis_and_reload_change_live_and_the_flow_beside_them_loses_nothing() {
    if !root_with_ip("live topology") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pg-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = Script::default();
    s.container("pglt-na", "pglt-a", "198.18.40.1/24");
    s.container("pglt-nb", "pglt-b", "198.18.40.2/24");
    s.container("pglt-nu", "pglt-u", "198.18.42.2/24");
    let sock = dir.join("ctl.sock");
    let engine = run_engine_on(
        &dir,
        &(head_sized(&dir, 2048, 32768)
            + &body(
                &veth("e", "pglt-ne", "198.18.40.5/24"),
                ", { port = \"e\" }",
            )),
    );

    let flow = paced_flow(&dir, "pglt-na", "pglt-nb", 20_000, 14.0);
    std::thread::sleep(Duration::from_millis(1500));

    // A container added while the flow runs, and reached.
    let t = Instant::now();
    let r = ctl(
        &sock,
        "port add name=c kind=veth netns=pglt-nc netns_create=true address=198.18.40.3/24 bridge=br0",
    )
    .unwrap();
    eprintln!("port add: {r} ({:.1} ms)", t.elapsed().as_secs_f64() * 1e3);
    assert!(ping("pglt-nc", "198.18.40.4"), "c reaches d");
    assert!(ctl(&sock, "show topology")
        .unwrap()
        .contains("name = \"c\""));

    // A tap container too, reached, and gone again.
    ctl(
        &sock,
        "port add name=tp kind=tap netns=pglt-nt netns_create=true address=198.18.40.8/24 bridge=br0",
    )
    .unwrap();
    assert!(
        ping("pglt-nt", "198.18.40.4"),
        "the tap container reaches d"
    );
    ctl(&sock, "port del tp").unwrap();
    assert!(!netns_exists("pglt-nt"));

    // d moved to br1 (another VLAN): c no longer reaches it; back again.
    ctl(&sock, "bridge member del br0 d").unwrap();
    ctl(&sock, "bridge member add br1 d").unwrap();
    let bridges = ctl(&sock, "show bridges --json").unwrap();
    assert!(bridges.contains("br1"), "{bridges}");
    assert!(!ping("pglt-nc", "198.18.40.4"), "d is in br1 now");
    ctl(&sock, "bridge member del br1 d").unwrap();
    ctl(&sock, "bridge member add br0 d").unwrap();
    assert!(ping("pglt-nc", "198.18.40.4"), "d is back in br0");

    // A VNI with its flood list: br1's floods leave the underlay
    // encapsulated, towards the listed VTEP.
    ctl(&sock, "vxlan vni add br1 5001 flood=198.18.42.2").unwrap();
    let vx = ctl(&sock, "show vxlan --json").unwrap();
    assert!(vx.contains("5001") && vx.contains("198.18.42.2"), "{vx}");
    let pcap = dir.join("u.pcap");
    let capture = {
        let (sock, pcap) = (sock.clone(), pcap.clone());
        std::thread::spawn(move || {
            ctl(
                &sock,
                &format!("capture u --count 6 --out {} --seconds 5", pcap.display()),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // An ARP broadcast from f, for an address nobody has.
    let _ = ping("pglt-nf", "198.18.41.99");
    capture.join().unwrap().unwrap();
    // The capture has both directions: the underlay's own neighbour's
    // IPv6 chatter may come first.
    let frames = read_pcap(&pcap);
    let f = frames
        .iter()
        .find(|f| f.len() > 50 && f[12..14] == [0x08, 0x00] && f[23] == 17)
        .unwrap_or_else(|| {
            let types: Vec<String> = frames
                .iter()
                .map(|f| format!("{:02x}{:02x}", f[12], f[13]))
                .collect();
            panic!("no IPv4/UDP frame on the underlay among {types:?}")
        });
    assert_eq!(
        u16::from_be_bytes([f[36], f[37]]),
        4789,
        "to the VXLAN port"
    );
    assert_eq!(&f[30..34], &[198, 18, 42, 2], "to the listed VTEP");
    assert_eq!(&f[46..49], &[0, 0x13, 0x89], "VNI 5001");

    // reload: the file now has g instead of e; c, added at run time, stays.
    std::fs::write(
        dir.join("gw.toml"),
        head_sized(&dir, 2048, 32768)
            + &body(
                &veth("g", "pglt-ng", "198.18.40.7/24"),
                ", { port = \"g\" }",
            )
            + "",
    )
    .unwrap();
    let r = ctl(&sock, "reload").unwrap();
    eprintln!("reload: {r}");
    let ports = ctl(&sock, "show ports").unwrap();
    assert!(ports.contains("\ng ") || ports.starts_with("g "), "{ports}");
    assert!(!ports.lines().any(|l| l.starts_with("e ")), "{ports}");
    assert!(ports.lines().any(|l| l.starts_with("c ")), "{ports}");
    assert!(!netns_exists("pglt-ne"), "e's namespace went with it");
    assert!(ping("pglt-ng", "198.18.40.4"), "g reaches d");
    // The reload kept the VNI only if the file has it: it does not.
    assert!(!ctl(&sock, "show vxlan").unwrap().contains("5001"));

    // A refused change changes nothing.
    let before = ctl(&sock, "show topology").unwrap();
    let e = ctl(&sock, "bridge member add br0 nosuch").unwrap_err();
    assert!(e.starts_with("bridge.members.port"), "{e}");
    let e = ctl(
        &sock,
        "port add name=x kind=afxdp iface=pglt-nodev bridge=br0",
    )
    .unwrap_err();
    assert!(e.contains("pglt-nodev"), "{e}");
    assert_eq!(ctl(&sock, "show topology").unwrap(), before);

    ctl(&sock, "port del c").unwrap();
    assert!(!netns_exists("pglt-nc"));

    let (sent, received, lost, max_ns) = flow_result(flow);
    eprintln!(
        "paced flow: sent {sent}, received {received}, lost {lost}, longest latency {:.2} ms",
        max_ns as f64 / 1e6
    );
    assert!(sent > 100_000, "the flow ran: {sent}");
    let summary = stop(engine);
    assert_eq!(
        lost, 0,
        "the flow beside the changes lost frames: {summary}"
    );
    assert!(!summary.contains("LEAK"), "{summary}");
    for ns in ["pglt-nd", "pglt-nf", "pglt-ng", "pglt-nc"] {
        assert!(!netns_exists(ns), "{ns} left behind");
    }
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
