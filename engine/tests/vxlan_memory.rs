//! Head-end replication and split horizon, on pcap ports (no privileges):
//! a local broadcast goes to every remote VTEP of the VNI's flood list,
//! encapsulated; a broadcast that came from a tunnel goes to the local
//! members only, never back into a tunnel.

mod common;

use common::{read_pcap, write_pcap};
use pollgate::config;
use pollgate::Engine;
use pollgate_pipeline::template::{udp4_frame, vxlan_frame};
use pollgate_pipeline::wire::MacAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn broadcast(i: u16, src: u8) -> Vec<u8> {
    udp4_frame(
        60,
        MacAddr([2, 0, 0, 0, 0, src]),
        MacAddr::BROADCAST,
        [198, 18, 50, src],
        [198, 18, 50, 255],
        1000 + i,
        9,
        b"bum",
    )
}

/// `inner` as remote 198.18.100.2 sends it to us, VNI 5000.
fn from_remote(inner: &[u8]) -> Vec<u8> {
    vxlan_frame(
        ([198, 18, 100, 2], MacAddr([2, 0, 0, 0, 0, 0x22])),
        ([198, 18, 100, 1], MacAddr([2, 0, 0, 0, 0, 1])),
        5000,
        inner,
    )
}

fn run(dir: &Path, underlay_rx: bool, member_rx: bool) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let rx = |on: bool, name: &str| {
        if on {
            format!("rx = \"{}/{name}-in.pcap\"\n", dir.display())
        } else {
            String::new()
        }
    };
    let cfg = format!(
        r#"
[[port]]
name = "ul"
kind = "pcap"
{ul_rx}tx = "{d}/ul-out.pcap"
mac = "02:00:00:00:00:01"
[[port]]
name = "m"
kind = "pcap"
{m_rx}tx = "{d}/m-out.pcap"
[[bridge]]
name = "seg"
vni = 5000
flood = ["198.18.100.2", "198.18.100.3"]
members = [{{ port = "m" }}]
[vtep]
port = "ul"
address = "198.18.100.1"
neighbors = [{{ ip = "198.18.100.2", mac = "02:00:00:00:00:22" }}, {{ ip = "198.18.100.3", mac = "02:00:00:00:00:33" }}]
"#,
        d = dir.display(),
        ul_rx = rx(underlay_rx, "ul"),
        m_rx = rx(member_rx, "m"),
    );
    let topo = config::parse("vx.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).unwrap();
    engine.wait(Some(Instant::now() + Duration::from_secs(20)), None);
    let summary = engine.shutdown();
    assert!(summary.frames_balanced());
    assert_eq!(summary.drops().total(), 0, "{}", summary.render());
    (
        read_pcap(&dir.join("ul-out.pcap")),
        read_pcap(&dir.join("m-out.pcap")),
    )
}

#[test]
fn local_floods_replicate_to_every_remote_and_tunnel_floods_do_not_return() {
    let dir = std::env::temp_dir().join(format!("pollgate-vxmem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Head-end replication: 100 local broadcasts → 200 VXLAN packets.
    let local: Vec<Vec<u8>> = (0..100).map(|i| broadcast(i, 7)).collect();
    write_pcap(&dir.join("m-in.pcap"), &local);
    let (ul, m) = run(&dir, false, true);
    assert!(m.is_empty());
    assert_eq!(ul.len(), 200);
    for remote in [[198u8, 18, 100, 2], [198, 18, 100, 3]] {
        let to: Vec<&Vec<u8>> = ul.iter().filter(|f| f[30..34] == remote).collect();
        assert_eq!(to.len(), 100, "one copy per broadcast to {remote:?}");
        for (f, inner) in to.iter().zip(&local) {
            assert_eq!(u32::from_be_bytes([0, f[46], f[47], f[48]]), 5000);
            assert_eq!(&f[50..], &inner[..], "the inner frame unchanged");
        }
    }

    // Split horizon: 100 broadcasts from remote .2 → to the member only.
    let _ = std::fs::remove_file(dir.join("ul-out.pcap"));
    let _ = std::fs::remove_file(dir.join("m-out.pcap"));
    let inner: Vec<Vec<u8>> = (0..100).map(|i| broadcast(i, 8)).collect();
    write_pcap(
        &dir.join("ul-in.pcap"),
        &inner.iter().map(|f| from_remote(f)).collect::<Vec<_>>(),
    );
    let (ul, m) = run(&dir, true, false);
    assert_eq!(ul.len(), 0, "nothing goes back into a tunnel");
    assert_eq!(m, inner, "the member gets the decapsulated frames");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_vxlan_config_names_file_line_and_field() {
    let base = r#"
[[port]]
name = "ul"
kind = "null"
[[port]]
name = "m"
kind = "null"
[[bridge]]
name = "seg"
vni = 5000
flood = ["198.18.100.2"]
members = [{ port = "m" }]
[vtep]
port = "ul"
address = "198.18.100.1"
"#;
    assert!(config::parse("vx.toml", base).is_ok());
    for (bad, line, field, says) in [
        (
            base.replace("vni = 5000", "vni = 16777216"),
            10,
            "bridge.vni",
            "out of range",
        ),
        (
            base.replace("\"198.18.100.2\"", "\"198.18.100\""),
            11,
            "bridge.flood",
            "not an IPv4",
        ),
        (
            base.replace("port = \"ul\"", "port = \"m\""),
            14,
            "vtep.port",
            "underlay",
        ),
        (
            base.replace("address = \"198.18.100.1\"", "address = \"2001:db8::1\""),
            15,
            "vtep.address",
            "not an IPv4",
        ),
        (
            base.replace("[vtep]\nport = \"ul\"\naddress = \"198.18.100.1\"\n", ""),
            10,
            "bridge.vni",
            "[vtep]",
        ),
    ] {
        let e = config::parse("vx.toml", &bad).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("vx.toml", line, field),
            "{e}"
        );
        assert!(e.message.contains(says), "{e}");
    }
}
