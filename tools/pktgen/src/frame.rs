//! Frames from a spec: the template for each (flow, size), with the
//! offsets the sender patches per packet. Every checksum is computed, so
//! a kernel or a DUT that checks them accepts the frames; the outer UDP
//! checksum of VXLAN is zero, as RFC 7348 allows and VTEPs send.

use crate::layout::Layout;
use crate::spec::{Proto, Spec};
use crate::stamp;
use pollgate_pipeline::template::l4_checksum;
use pollgate_pipeline::wire::ipv4::checksum;
use pollgate_pipeline::wire::MacAddr;
use std::net::IpAddr;

pub const VXLAN_OVERHEAD: usize = 14 + 20 + 8 + 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
pub const VXLAN_PORT: u16 = 4789;

/// One frame to send, and where the sender writes the stamp and fixes
/// the L4 checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub bytes: Vec<u8>,
    pub stamp_at: usize,
    pub l4_csum_at: usize,
    /// UDP: a computed 0 goes on the wire as 0xffff.
    pub udp: bool,
}

fn l4_len(spec: &Spec) -> usize {
    match spec.proto {
        Proto::Udp => 8,
        Proto::Tcp => 20,
    }
}

/// Bytes before the payload (the stamp), outer headers included.
pub fn header_len(spec: &Spec) -> usize {
    Layout::of(spec).l4 + l4_len(spec)
}

/// Bytes of the frame sent for `size` (FCS excluded): `size - 4`, or
/// more where the headers and the stamp need it.
pub fn len(spec: &Spec, size: u16) -> usize {
    (size as usize - 4).max(header_len(spec) + stamp::LEN)
}

/// Flow `i`'s source address: the spec's plus `i` (in the low 32 bits).
pub fn flow_src_ip(spec: &Spec, flow: u32) -> IpAddr {
    flow_src_ip_of(spec.src_ip, flow)
}

/// Flow `i`'s source MAC: the spec's, plus `i` in its low 32 bits when
/// the spec varies it.
pub fn flow_src_mac(spec: &Spec, flow: u32) -> MacAddr {
    let mut m = spec.src_mac;
    if spec.vary_src_mac {
        let low = u32::from_be_bytes([m.0[2], m.0[3], m.0[4], m.0[5]]).wrapping_add(flow);
        m.0[2..6].copy_from_slice(&low.to_be_bytes());
    }
    m
}

/// `a` plus `flow` in its low 32 bits.
pub fn flow_src_ip_of(a: IpAddr, flow: u32) -> IpAddr {
    match a {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(flow).into()),
        IpAddr::V6(a) => IpAddr::V6(
            (u128::from(a) & !0xffff_ffff | (u128::from(a) as u32).wrapping_add(flow) as u128)
                .into(),
        ),
    }
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Builds the frame flow `flow` sends at `size` bytes on the wire (FCS
/// included, so the frame is `size - 4` bytes), with a zero stamp.
pub fn build(spec: &Spec, flow: u32, size: u16) -> Template {
    let total = len(spec, size);
    let mut f = Vec::with_capacity(total);
    if let Some(v) = &spec.vxlan {
        f.extend_from_slice(&v.dst_mac.0 .0);
        f.extend_from_slice(&v.src_mac.0 .0);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip_len = (total - 14) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&v.src_ip.octets());
        f.extend_from_slice(&v.dst_ip.octets());
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&(v.sport.wrapping_add(flow as u16)).to_be_bytes());
        f.extend_from_slice(&VXLAN_PORT.to_be_bytes());
        f.extend_from_slice(&(ip_len - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&[0x08, 0, 0, 0]);
        f.extend_from_slice(&(v.vni << 8).to_be_bytes());
    }
    f.extend_from_slice(&spec.dst_mac.0);
    f.extend_from_slice(&flow_src_mac(spec, flow).0);
    let v4 = spec.src_ip.is_ipv4();
    let ethertype = if v4 { ETHERTYPE_IPV4 } else { ETHERTYPE_IPV6 };
    match spec.vlan[..] {
        [] => {}
        [vid] => {
            f.extend_from_slice(&TPID_8021Q.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        [outer, inner, ..] => {
            f.extend_from_slice(&TPID_8021AD.to_be_bytes());
            f.extend_from_slice(&outer.to_be_bytes());
            f.extend_from_slice(&TPID_8021Q.to_be_bytes());
            f.extend_from_slice(&inner.to_be_bytes());
        }
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    // The offsets the renderers use too: one source for both.
    let Layout { l3, l4, .. } = Layout::of(spec);
    debug_assert_eq!(f.len(), l3);
    let l4_total = total - l4;
    let proto: u8 = match spec.proto {
        Proto::Udp => 17,
        Proto::Tcp => 6,
    };
    let src = ip_bytes(flow_src_ip(spec, flow));
    let dst = ip_bytes(spec.dst_ip);
    if v4 {
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&((total - l3) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        let c = checksum(&f[l3..l4]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_total as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
    }
    let sport = spec.sport.wrapping_add(flow as u16);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&spec.dport.to_be_bytes());
    let l4_csum_at = match spec.proto {
        Proto::Udp => {
            f.extend_from_slice(&(l4_total as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            l4 + 6
        }
        Proto::Tcp => {
            // seq 0, ack 0, data offset 5, ACK, window 65535.
            f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
            l4 + 16
        }
    };
    let stamp_at = f.len();
    f.resize(total, 0);
    stamp::write_magic(&mut f[stamp_at..]);
    let c = l4_checksum(&[src, dst].concat(), proto, &f[l4..], l4_csum_at - l4);
    f[l4_csum_at..l4_csum_at + 2].copy_from_slice(&c.to_be_bytes());
    Template {
        bytes: f,
        stamp_at,
        l4_csum_at,
        udp: spec.proto == Proto::Udp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn spec(extra: &str, src: &str, dst: &str, proto: &str) -> Spec {
        Spec::parse(
            "t",
            &format!(
                "name = \"t\"\nsrc_mac = \"02:00:00:00:00:01\"\ndst_mac = \"02:00:00:00:00:02\"\nsrc_ip = \"{src}\"\ndst_ip = \"{dst}\"\nproto = \"{proto}\"\nsport = 1024\ndport = 1025\nflows = 300\n{extra}"
            ),
        )
        .unwrap()
    }

    /// etherparse (an independent decoder) reads back the addresses,
    /// ports and lengths, and the checksums verify: the ones' complement
    /// sum over pseudo-header and segment, checksum included, is zero.
    fn check(t: &Template, spec: &Spec, flow: u32) {
        let p = SlicedPacket::from_ethernet(&t.bytes).expect("parses");
        let want_src = flow_src_ip(spec, flow);
        let (mut pseudo, proto, l4_len) = match p.net.expect("ip") {
            NetSlice::Ipv4(ip) => {
                let h = ip.header();
                assert_eq!(IpAddr::V4(h.source_addr()), want_src);
                assert_eq!(checksum(h.slice()), 0, "IPv4 header checksum");
                let l = h.total_len() as usize - h.slice().len();
                ([h.source(), h.destination()].concat(), h.protocol().0, l)
            }
            NetSlice::Ipv6(ip) => {
                let h = ip.header();
                assert_eq!(IpAddr::V6(h.source_addr()), want_src);
                let l = h.payload_length() as usize;
                ([h.source(), h.destination()].concat(), h.next_header().0, l)
            }
        };
        let l4 = t.bytes.len() - l4_len;
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
        pseudo.extend_from_slice(&t.bytes[l4..]);
        assert_eq!(checksum(&pseudo), 0, "L4 checksum");
        match p.transport.expect("l4") {
            TransportSlice::Udp(u) => assert_eq!(u.source_port(), 1024 + flow as u16),
            TransportSlice::Tcp(u) => assert_eq!(u.source_port(), 1024 + flow as u16),
            _ => panic!("not udp/tcp"),
        }
        assert!(stamp::read(&t.bytes[t.stamp_at..]).is_some());
    }

    #[test]
    fn frames_parse_and_checksum_for_every_shape() {
        for (extra, src, dst, proto) in [
            ("size = 64\n", "198.18.0.1", "198.19.0.1", "udp"),
            (
                "size = 64\nvlan = [100]\n",
                "198.18.0.1",
                "198.19.0.1",
                "tcp",
            ),
            (
                "size = 128\nvlan = [100, 200]\n",
                "2001:db8::1",
                "2001:db8::2",
                "udp",
            ),
            ("size = 1518\n", "2001:db8::1:fff0", "2001:db8::2", "tcp"),
        ] {
            let s = spec(extra, src, dst, proto);
            for flow in [0, 1, 17, 299] {
                for size in s.sizes() {
                    let t = build(&s, flow, size);
                    assert_eq!(t.bytes.len(), len(&s, size));
                    check(&t, &s, flow);
                }
            }
        }
    }

    #[test]
    fn vxlan_frames_carry_the_inner_frame() {
        let s = spec(
            "size = \"imix\"\n[vxlan]\nvni = 5000\nsrc_mac = \"02:00:00:00:01:01\"\ndst_mac = \"02:00:00:00:01:02\"\nsrc_ip = \"198.18.1.1\"\ndst_ip = \"198.18.1.2\"\n",
            "198.18.0.1",
            "198.19.0.1",
            "udp",
        );
        for size in s.sizes() {
            let t = build(&s, 5, size);
            assert_eq!(t.bytes.len(), len(&s, size));
            let outer = SlicedPacket::from_ethernet(&t.bytes).unwrap();
            let Some(TransportSlice::Udp(u)) = outer.transport else {
                panic!("outer udp")
            };
            assert_eq!((u.source_port(), u.destination_port()), (49157, 4789));
            assert_eq!(&t.bytes[46..50], &[0x00, 0x13, 0x88, 0x00], "VNI 5000");
            let inner = Template {
                bytes: t.bytes[VXLAN_OVERHEAD..].to_vec(),
                stamp_at: t.stamp_at - VXLAN_OVERHEAD,
                ..t.clone()
            };
            check(&inner, &s, 5);
        }
    }
}
