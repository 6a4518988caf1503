//! `pollgate bench --gateway`: every stage at once, both directions, on
//! two null ports. null0 is a VTEP's underlay replaying VXLAN packets
//! (VNI 5000) from a remote VTEP; null1 a trunk replaying 802.1Q frames
//! (VID 10); the bridge joins VID 10 to VNI 5000. Each packet is parsed,
//! decapsulated or VLAN-classified, checked by the ingress ACL (a
//! ClassBench set with `--acl`), learned and looked up in the MAC table,
//! then tagged or encapsulated again on the way out. `--macs N` and
//! `--flows N` give both sides N host pairs and 5-tuples, shuffled: with
//! 1 M MACs the table is 2 M entries, far out of cache. `--vlans N` (or
//! `--vnis N`) spreads the host pairs over N bridges, VLAN 10 + s to VNI
//! 5000 + s.

use crate::bench::BenchParams;
use crate::bench_traffic::{segment_of, tagged, FIRST_VID};
use crate::config::{self, Topology};
use pollgate_pipeline::template::vxlan_frame;
use pollgate_pipeline::vxlan::OVERHEAD;
use pollgate_pipeline::wire::MacAddr;
use std::path::{Path, PathBuf};

const UNDERLAY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const REMOTE_VTEP_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
/// The first VNI `--vnis` spreads host pairs over.
pub const FIRST_VNI: u32 = 5000;

/// The frame as the remote VTEP sends it to ours, in `vni`.
fn encapsulated(inner: Vec<u8>, vni: u32) -> Vec<u8> {
    vxlan_frame(
        ([198, 18, 100, 2], REMOTE_VTEP_MAC),
        ([198, 18, 100, 1], UNDERLAY_MAC),
        vni,
        &inner,
    )
}

/// Writes what each side replays into `dir` (`mix0.pcap`: VXLAN from
/// the remote VTEP; `mix1.pcap`: 802.1Q on the trunk) and returns their
/// paths: the bench's own frames, and OVS's and testpmd's through
/// `--write-pcaps`.
pub fn write_frames(p: &BenchParams, dir: &Path) -> anyhow::Result<[PathBuf; 2]> {
    let (macs, flows) = (p.macs.max(1), p.flows.max(1));
    // Both sides `size` bytes on the wire.
    let sizes = [
        p.size.saturating_sub(OVERHEAD).max(60),
        p.size.saturating_sub(4).max(60),
    ];
    // Host pair i is in segment i % n: VLAN 10 + s bridged to VNI 5000 + s.
    let n = p.segments.max(1);
    // Every inner frame is one size, so one outer header per VNI (built
    // by the encap code from the remote's side) serves all its frames.
    let outers: Vec<Vec<u8>> = (0..n)
        .map(|s| encapsulated(vec![0; sizes[0]], FIRST_VNI + s as u32)[..OVERHEAD].to_vec())
        .collect();
    let behind_tunnel =
        |inner: Vec<u8>| [outers[segment_of(&inner, n)].as_slice(), &inner].concat();
    let tag = |f: Vec<u8>| tagged(&f, FIRST_VID + segment_of(&f, n) as u16);
    crate::bench_traffic::write_wrapped(dir, macs, flows, sizes, [&behind_tunnel, &tag])
}

pub fn topology(p: &BenchParams, dir: &Path) -> anyhow::Result<Topology> {
    let macs = p.macs.max(1);
    let n = p.segments.max(1);
    let [a, b] = write_frames(p, dir)?;
    let bridges: String = (0..n)
        .map(|s| {
            format!(
                "[[bridge]]\nname = \"gw{s}\"\nvni = {}\nflood = [\"198.18.100.2\"]\nmembers = [{{ port = \"null1\", vid = {} }}]\n",
                FIRST_VNI + s as u32,
                FIRST_VID + s as u16
            )
        })
        .collect();
    let (acl, acl_in) = crate::bench::acl_sections(p)?;
    let pool = crate::bench::pool_section(p);
    let core = p.core.map_or(String::new(), |c| format!("core = {c}\n"));
    let limit = (2 * macs + 16).next_power_of_two().max(1 << 20);
    let src = format!(
        r#"
[engine]
burst = {burst}
idle = "poll"
{pool}
[switch]
mac_limit = {limit}
[[port]]
name = "null0"
kind = "null"
rx = "{a}"
mac = "{underlay}"
{acl_in}
[[port]]
name = "null1"
kind = "null"
rx = "{b}"
vlan_mode = "trunk"
{acl_in}
{bridges}
[vtep]
port = "null0"
address = "198.18.100.1"
neighbors = [{{ ip = "198.18.100.2", mac = "{remote}" }}]
[[worker]]
{core}ports = ["null0", "null1"]
{acl}
"#,
        burst = p.burst,
        a = a.display(),
        b = b.display(),
        underlay = UNDERLAY_MAC,
        remote = REMOTE_VTEP_MAC,
    );
    Ok(config::parse("<bench>", &src)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(path: &Path) -> Vec<Vec<u8>> {
        let mut r = pollgate_pmd::pcap::PcapReader::open(path).unwrap();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while r.next_into(&mut buf).unwrap().is_some() {
            out.push(buf.clone());
        }
        out
    }

    #[test]
    fn write_pcaps_hands_the_peers_the_frames_the_gateway_bench_replays() {
        let dir = std::env::temp_dir().join(format!("pg-gw-{}", std::process::id()));
        let p = BenchParams {
            gateway: true,
            macs: 64,
            flows: 16,
            size: 60,
            burst: 32,
            ..BenchParams::default()
        };
        std::fs::create_dir_all(dir.join("peers")).unwrap();
        let [a, b] = crate::bench::write_pcaps(&p, &dir.join("peers")).unwrap();
        let topo = topology(&p, &dir).unwrap();
        let rx: Vec<PathBuf> = topo.ports.iter().filter_map(|p| p.rx.clone()).collect();
        assert_eq!(rx.len(), 2);
        for (written, replayed) in [(&a, &rx[0]), (&b, &rx[1])] {
            assert_eq!(frames(written), frames(replayed));
        }
        let (under, trunk) = (frames(&a), frames(&b));
        assert_eq!((under.len(), trunk.len()), (64, 64), "one frame a MAC pair");
        assert!(under
            .iter()
            .all(|f| f[36..38] == 4789u16.to_be_bytes() && f[46..49] == [0, 0x13, 0x88]));
        assert!(trunk.iter().all(|f| f[12..16] == [0x81, 0, 0, 10]));
        let routed = BenchParams {
            gateway: false,
            routes: 2,
            ..p
        };
        assert!(crate::bench::write_pcaps(&routed, &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn both_sides_are_the_size_asked_for_and_carry_their_outer_headers() {
        let inner = pollgate_pipeline::template::udp4_frame(
            64 - OVERHEAD,
            MacAddr([2, 0x10, 0, 0, 0, 1]),
            MacAddr([2, 0x11, 0, 0, 0, 1]),
            [198, 18, 0, 1],
            [198, 19, 0, 1],
            1024,
            1025,
            b"pollgate",
        );
        let v = encapsulated(inner.clone(), 5001);
        assert_eq!(v.len(), inner.len() + OVERHEAD);
        assert_eq!(&v[36..38], &4789u16.to_be_bytes());
        assert_eq!(&v[46..49], &[0, 0x13, 0x89], "VNI 5001");
        let t = tagged(&inner, 10);
        assert_eq!(t.len(), inner.len() + 4);
        assert_eq!(&t[12..16], &[0x81, 0, 0, 10]);
    }
}
