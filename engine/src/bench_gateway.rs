//! `pollgate bench --gateway`: every stage at once, both directions, on
//! two null ports. null0 is a VTEP's underlay replaying VXLAN packets
//! (VNI 5000) from a remote VTEP; null1 a trunk replaying 802.1Q frames
//! (VID 10); the bridge joins VID 10 to VNI 5000. Each packet is parsed,
//! decapsulated or VLAN-classified, checked by the ingress ACL (a
//! ClassBench set with `--acl`), learned and looked up in the MAC table,
//! then tagged or encapsulated again on the way out. `--macs N` and
//! `--flows N` give both sides N host pairs and 5-tuples, shuffled: with
//! 1 M MACs the table is 2 M entries, far out of cache.

use crate::bench::BenchParams;
use crate::config::{self, Topology};
use pollgate_pipeline::template::vxlan_frame;
use pollgate_pipeline::vxlan::OVERHEAD;
use pollgate_pipeline::wire::MacAddr;
use std::path::Path;

const UNDERLAY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const REMOTE_VTEP_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
const VID: u16 = 10;

/// An 802.1Q tag (VID 10) after the MACs.
fn tagged(f: Vec<u8>) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00, (VID >> 8) as u8, VID as u8]);
    t.extend_from_slice(&f[12..]);
    t
}

/// The frame as the remote VTEP sends it to ours.
fn encapsulated(inner: Vec<u8>) -> Vec<u8> {
    vxlan_frame(
        ([198, 18, 100, 2], REMOTE_VTEP_MAC),
        ([198, 18, 100, 1], UNDERLAY_MAC),
        5000,
        &inner,
    )
}

pub fn topology(p: &BenchParams, dir: &Path) -> anyhow::Result<Topology> {
    let (macs, flows) = (p.macs.max(1), p.flows.max(1));
    // Both sides `size` bytes on the wire.
    let sizes = [
        p.size.saturating_sub(OVERHEAD).max(60),
        p.size.saturating_sub(4).max(60),
    ];
    // Every inner frame is one size, so one outer header (built by the
    // encap code from the remote's side) serves them all.
    let outer = encapsulated(vec![0; sizes[0]])[..OVERHEAD].to_vec();
    let behind_tunnel = |inner: Vec<u8>| [outer.as_slice(), &inner].concat();
    let [a, b] =
        crate::bench_traffic::write_wrapped(dir, macs, flows, sizes, [&behind_tunnel, &tagged])?;
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
[[bridge]]
name = "gw"
vni = 5000
flood = ["198.18.100.2"]
members = [{{ port = "null1", vid = {VID} }}]
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
        let v = encapsulated(inner.clone());
        assert_eq!(v.len(), inner.len() + OVERHEAD);
        assert_eq!(&v[36..38], &4789u16.to_be_bytes());
        let t = tagged(inner.clone());
        assert_eq!(t.len(), inner.len() + 4);
        assert_eq!(&t[12..16], &[0x81, 0, 0, 10]);
    }
}
