//! The generator and receiver on a veth pair between two namespaces:
//! every frame sent comes back stamped, in order, for each frame shape
//! (IPv4, VLAN+TCP, QinQ+IPv6, VXLAN, IMIX, jumbo).

use pollgate_pktgen::generator::{Endpoint, Generator};
use pollgate_pktgen::spec::{Rate, Spec};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args}");
}

struct Pair(String, String);

impl Pair {
    fn new(tag: &str) -> Pair {
        let (g, s) = (format!("pgk-{tag}-g"), format!("pgk-{tag}-s"));
        for ns in [&g, &s] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        ip(&format!("netns add {g}"));
        ip(&format!("netns add {s}"));
        ip(&format!(
            "link add eth0 netns {g} numtxqueues 1 numrxqueues 1 type veth peer name eth0 netns {s} numtxqueues 1 numrxqueues 1"
        ));
        ip(&format!("-n {g} link set eth0 up"));
        ip(&format!("-n {s} link set eth0 up"));
        Pair(g, s)
    }

    fn mtu(self, mtu: u32) -> Pair {
        ip(&format!("-n {} link set eth0 mtu {mtu}", self.0));
        ip(&format!("-n {} link set eth0 mtu {mtu}", self.1));
        self
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.1]).status();
    }
}

#[test]
fn every_scenario_arrives_stamped_and_in_order() {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP pktgen veth: needs root (network namespaces, veth, XDP)");
        return;
    }
    let pair = Pair::new("sc");
    let end = |ns: &str| Endpoint {
        iface: "eth0".into(),
        netns: Some(ns.into()),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for name in ["udp64", "vlan-tcp", "qinq-udp6", "vxlan", "imix"] {
        let spec = Spec::load(&dir.join(format!("{name}.toml"))).unwrap();
        let mut g = Generator::open(&spec, &end(&pair.0), Some(&end(&pair.1)), 2048, 256).unwrap();
        // Slow enough that a loaded CI core keeps up: this checks the
        // accounting, not the speed.
        let t = g.trial(Rate::Pps(50_000.0), Duration::from_secs(5), Some(5_000));
        g.close();
        assert_eq!(t.sent, 5_000, "{name}: {t:?}");
        assert_eq!(t.received, t.sent, "{name}: {t:?}");
        assert_eq!((t.lost, t.reordered, t.late), (0, 0, 0), "{name}: {t:?}");
        assert_eq!(t.latency.samples, t.received, "{name}");
        assert!(
            t.latency.p50_ns > 0 && t.latency.p50_ns <= t.latency.max_ns,
            "{name}: {t:?}"
        );
        eprintln!(
            "{name}: {} frames, p50 {} ns p99 {} ns",
            t.received, t.latency.p50_ns, t.latency.p99_ns
        );
    }
}

/// 9018-byte frames (with FCS) as multi-buffer chains, both ends of a
/// pair at MTU 9000: all arrive stamped and in order. At MTU 1500 the
/// generator refuses, naming the MTU the frames need.
#[test]
fn jumbo_frames_go_out_as_chains_and_come_back_stamped() {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP pktgen veth jumbo: needs root (network namespaces, veth, XDP)");
        return;
    }
    let end = |ns: &str| Endpoint {
        iface: "eth0".into(),
        netns: Some(ns.into()),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let spec = Spec::load(&dir.join("jumbo.toml")).unwrap();
    {
        let small = Pair::new("js");
        let e = match Generator::open(&spec, &end(&small.0), Some(&end(&small.1)), 2048, 256) {
            Ok(_) => panic!("jumbo frames accepted at MTU 1500"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("9014-byte frames") && e.contains("at least 9000"),
            "{e}"
        );
    }
    let pair = Pair::new("jb").mtu(9000);
    let mut g = Generator::open(&spec, &end(&pair.0), Some(&end(&pair.1)), 2048, 256).unwrap();
    assert!(
        g.modes()[0].contains("multi-buffer (MTU 9000)"),
        "{:?}",
        g.modes()
    );
    let t = g.trial(Rate::Pps(20_000.0), Duration::from_secs(5), Some(2_000));
    g.close();
    assert_eq!(t.sent, 2_000, "{t:?}");
    assert_eq!(t.received, t.sent, "{t:?}");
    assert_eq!((t.lost, t.reordered, t.late), (0, 0, 0), "{t:?}");
    assert_eq!(t.sent_bytes, 2_000 * 9014, "{t:?}");
    assert_eq!(t.latency.samples, t.received);
}
