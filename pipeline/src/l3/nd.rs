//! Neighbour resolution on the wire: ARP (RFC 826) for IPv4 and
//! Neighbor Discovery (RFC 4861) for IPv6. Answers for the gateway's
//! addresses, learning from what neighbours say, and the requests the
//! router sends for a next hop it has not resolved — each written over
//! the frame that asked or that was waiting, so nothing is allocated.

use super::csum;
use super::interface::L3Interface;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::MacAddr;

pub const ICMP6_NS: u8 = 135;
pub const ICMP6_NA: u8 = 136;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// NA flags: router, solicited, override.
const NA_RSO: u32 = 0xe000_0000;
const NA_RO: u32 = 0xa000_0000;
/// ff02::1, all nodes on the link.
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// Ethernet + IPv6 + NS/NA (24) + one link-layer address option (8).
pub const ND_FRAME_LEN: usize = 14 + 40 + 32;

/// What an ARP packet asks of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: [u8; 4],
    pub target_ip: [u8; 4],
}

pub fn read_arp(f: &[u8]) -> Option<Arp> {
    let a = ArpPacket::new_checked(f.get(14..)?).ok()?;
    Some(Arp {
        op: a.operation(),
        sender_mac: a.sender_mac(),
        sender_ip: a.sender_ip(),
        target_ip: a.target_ip(),
    })
}

/// Turns the request in `f` into our reply; returns the frame length.
pub fn write_arp_reply(f: &mut [u8], ifc: &L3Interface, req: &Arp) -> Option<usize> {
    if f.len() < 60 {
        return None;
    }
    arp::emit_frame(
        &mut f[..42],
        ifc.mac,
        req.target_ip,
        Some(req.sender_mac),
        req.sender_ip,
    );
    f[42..60].fill(0);
    Some(60)
}

/// Writes a broadcast request for `target` over `f`; the frame length.
pub fn write_arp_request(f: &mut [u8], ifc: &L3Interface, target: [u8; 4]) -> Option<usize> {
    let src = ifc.v4_source(target)?;
    if f.len() < 60 {
        return None;
    }
    arp::emit_frame(&mut f[..42], ifc.mac, src, None, target);
    f[42..60].fill(0);
    Some(60)
}

/// A Neighbor Solicitation or Advertisement, read from an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nd {
    pub kind: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub target: [u8; 16],
    /// The link-layer address option (source for NS, target for NA).
    pub lladdr: Option<MacAddr>,
}

/// Reads NS/NA at `l3` (an IPv6 header whose next header is ICMPv6 at
/// `l4`). RFC 4861 7.1.1: hop limit 255, code 0, at least 24 bytes.
pub fn read_nd(f: &[u8], l3: usize, l4: usize) -> Option<Nd> {
    let ip = f.get(l3..l3 + 40)?;
    let msg = f.get(l4..)?;
    let kind = *msg.first()?;
    if ip[7] != 255 || msg.get(1) != Some(&0) || msg.len() < 24 {
        return None;
    }
    if kind != ICMP6_NS && kind != ICMP6_NA {
        return None;
    }
    let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    let end = (l3 + 40 + plen).min(f.len());
    let msg = f.get(l4..end)?;
    let mut lladdr = None;
    let mut at = 24;
    let want = if kind == ICMP6_NS {
        OPT_SOURCE_LL
    } else {
        OPT_TARGET_LL
    };
    while at + 2 <= msg.len() {
        let (t, len) = (msg[at], msg[at + 1] as usize * 8);
        if len == 0 || at + len > msg.len() {
            return None;
        }
        if t == want && len >= 8 {
            lladdr = Some(MacAddr::from_bytes(&msg[at + 2..at + 8]));
        }
        at += len;
    }
    let a16 = |b: &[u8]| -> [u8; 16] { b.try_into().unwrap_or([0; 16]) };
    Some(Nd {
        kind,
        src: a16(&ip[8..24]),
        dst: a16(&ip[24..40]),
        target: a16(&msg[8..24]),
        lladdr,
    })
}

/// The solicited-node multicast address of `a` (RFC 4291 2.7.1) and its
/// MAC (RFC 2464 7).
pub fn solicited_node(a: [u8; 16]) -> ([u8; 16], MacAddr) {
    let mut ip = [0u8; 16];
    ip[..2].copy_from_slice(&[0xff, 0x02]);
    ip[11] = 1;
    ip[12] = 0xff;
    ip[13..].copy_from_slice(&a[13..]);
    (ip, multicast_mac(ip))
}

pub fn multicast_mac(ip: [u8; 16]) -> MacAddr {
    MacAddr([0x33, 0x33, ip[12], ip[13], ip[14], ip[15]])
}

/// Writes an NS or NA frame: Ethernet, IPv6 (hop limit 255), the message
/// with `target` and one link-layer address option (ours).
#[allow(clippy::too_many_arguments)]
fn write_nd(
    f: &mut [u8],
    eth_dst: MacAddr,
    ifc: &L3Interface,
    src: [u8; 16],
    dst: [u8; 16],
    kind: u8,
    flags: u32,
    target: [u8; 16],
) -> Option<usize> {
    let f = f.get_mut(..ND_FRAME_LEN)?;
    f[0..6].copy_from_slice(&eth_dst.0);
    f[6..12].copy_from_slice(&ifc.mac.0);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut f[14..54];
    ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&32u16.to_be_bytes());
    ip[6] = 58;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    let m = &mut f[54..86];
    m[0] = kind;
    m[1] = 0;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&flags.to_be_bytes());
    m[8..24].copy_from_slice(&target);
    m[24] = if kind == ICMP6_NS {
        OPT_SOURCE_LL
    } else {
        OPT_TARGET_LL
    };
    m[25] = 1;
    m[26..32].copy_from_slice(&ifc.mac.0);
    let c = csum::icmp6(&src, &dst, m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Some(ND_FRAME_LEN)
}

/// Turns the solicitation `ns` (received from `from_mac`) into our
/// advertisement for its target; the frame length.
pub fn write_na(f: &mut [u8], ifc: &L3Interface, ns: &Nd, from_mac: MacAddr) -> Option<usize> {
    let (dst, eth_dst, flags) = if ns.src == [0; 16] {
        // Duplicate address detection: answer all nodes, unsolicited.
        (ALL_NODES, multicast_mac(ALL_NODES), NA_RO)
    } else {
        (ns.src, from_mac, NA_RSO)
    };
    write_nd(f, eth_dst, ifc, ns.target, dst, ICMP6_NA, flags, ns.target)
}

/// An unsolicited advertisement of our `target` to all nodes (RFC 4861
/// 7.2.6: override set, solicited not).
pub fn write_unsolicited_na(f: &mut [u8], ifc: &L3Interface, target: [u8; 16]) -> Option<usize> {
    write_nd(
        f,
        multicast_mac(ALL_NODES),
        ifc,
        target,
        ALL_NODES,
        ICMP6_NA,
        NA_RO,
        target,
    )
}

/// Writes a solicitation for `target` to its solicited-node group.
pub fn write_ns(f: &mut [u8], ifc: &L3Interface, target: [u8; 16]) -> Option<usize> {
    let (group, mac) = solicited_node(target);
    let src = ifc.v6_source(target);
    write_nd(f, mac, ifc, src, group, ICMP6_NS, 0, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l3::interface::link_local;

    fn ifc() -> L3Interface {
        let mac = MacAddr([2, 0x11, 0x22, 0x33, 0x44, 0x55]);
        L3Interface {
            name: "lan".into(),
            domain: 0,
            mac,
            mtu: 1500,
            v4: vec![([198, 18, 1, 1], 24)],
            v6: vec![([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 64)],
            link_local: link_local(mac),
            nat_v4: Vec::new(),
        }
    }

    #[test]
    fn ns_and_na_round_trip_with_valid_checksums() {
        let i = ifc();
        let target = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut f = vec![0u8; 128];
        let n = write_ns(&mut f, &i, target).unwrap();
        let ns = read_nd(&f[..n], 14, 54).unwrap();
        assert_eq!(ns.kind, ICMP6_NS);
        assert_eq!(ns.target, target);
        assert_eq!(ns.lladdr, Some(i.mac));
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 0, 9]);
        // The ICMPv6 checksum verifies over the pseudo-header.
        let (src, dst): ([u8; 16], [u8; 16]) =
            (f[22..38].try_into().unwrap(), f[38..54].try_into().unwrap());
        let s = csum::sum(&src) + csum::sum(&dst) + 32 + 58 + csum::sum(&f[54..86]);
        assert_eq!(csum::finish(s), 0);
        // Answer a solicitation for our address as its owner would.
        let mut ask = ns;
        ask.target = i.v6[0].0;
        ask.src = target;
        let n = write_na(&mut f, &i, &ask, MacAddr([2, 0, 0, 0, 0, 9])).unwrap();
        let na = read_nd(&f[..n], 14, 54).unwrap();
        assert_eq!((na.kind, na.target, na.dst), (ICMP6_NA, i.v6[0].0, target));
        assert_eq!(na.lladdr, Some(i.mac));
    }

    #[test]
    fn arp_reply_answers_the_asker() {
        let i = ifc();
        let mut f = vec![0u8; 60];
        arp::emit_frame(
            &mut f[..42],
            MacAddr([2, 0, 0, 0, 0, 9]),
            [198, 18, 1, 9],
            None,
            [198, 18, 1, 1],
        );
        let req = read_arp(&f).unwrap();
        write_arp_reply(&mut f, &i, &req).unwrap();
        let rep = read_arp(&f).unwrap();
        assert_eq!(rep.op, arp::OP_REPLY);
        assert_eq!(
            (rep.sender_mac, rep.sender_ip, rep.target_ip),
            (i.mac, [198, 18, 1, 1], [198, 18, 1, 9])
        );
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 9]);
    }
}
