//! Containers sharing an uplink the way Linux ipvlan's L2 mode does: every
//! member sits behind the parent's one MAC and is told apart by its IP
//! addresses. pollgate answers ARP and IPv6 neighbor solicitations for the
//! members' addresses with the shared MAC, rewrites the destination MAC of
//! what it delivers to the member's own, and the source MAC of what
//! members send to the shared one, so the segment only ever sees one MAC.
//! (ipvlan's L3 mode is routing: the L3 stage's job, not a second router.)

use crate::verdict::{DomainId, DropReason, PortId, Verdict};
use crate::wire::ipv4::protocol;
use crate::wire::{arp, EtherType, MacAddr};

/// ICMPv6 neighbor solicitation and advertisement (RFC 4861).
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
/// An NA with its target link-layer address option: 24 + 8 bytes.
const NA_LEN: usize = 32;
const IPV6_HEADER: usize = 40;

/// An ipvlan domain: its parent (uplink), the shared MAC, and the
/// members' addresses, sorted for binary search.
#[derive(Debug, Clone, Default)]
pub struct IpVlan {
    pub parent: PortId,
    pub mac: MacAddr,
    v4: Vec<([u8; 4], PortId, MacAddr)>,
    v6: Vec<([u8; 16], PortId, MacAddr)>,
}

/// What the bridge knows of a packet that ipvlan needs.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub in_port: PortId,
    pub domain: DomainId,
    pub ethertype: u16,
    pub l3_off: usize,
    /// Offset of the ICMPv6 header when the parser checked one.
    pub icmp6_off: Option<usize>,
}

impl IpVlan {
    pub fn new(parent: PortId, mac: MacAddr) -> Self {
        IpVlan {
            parent,
            mac,
            ..IpVlan::default()
        }
    }

    /// Gives member `port` (whose container end has `mac`) the address `ip`.
    pub fn add_v4(&mut self, ip: [u8; 4], port: PortId, mac: MacAddr) {
        self.v4.push((ip, port, mac));
        self.v4.sort_unstable_by_key(|e| e.0);
    }

    pub fn add_v6(&mut self, ip: [u8; 16], port: PortId, mac: MacAddr) {
        self.v6.push((ip, port, mac));
        self.v6.sort_unstable_by_key(|e| e.0);
    }

    #[inline(always)]
    pub fn member_v4(&self, ip: &[u8]) -> Option<(PortId, MacAddr)> {
        let ip: [u8; 4] = ip.try_into().ok()?;
        let i = self.v4.binary_search_by_key(&ip, |e| e.0).ok()?;
        Some((self.v4[i].1, self.v4[i].2))
    }

    #[inline(always)]
    pub fn member_v6(&self, ip: &[u8]) -> Option<(PortId, MacAddr)> {
        let ip: [u8; 16] = ip.try_into().ok()?;
        let i = self.v6.binary_search_by_key(&ip, |e| e.0).ok()?;
        Some((self.v6[i].1, self.v6[i].2))
    }

    /// Every member address, for `show` and tests.
    pub fn addresses(&self) -> impl Iterator<Item = (std::net::IpAddr, PortId)> + '_ {
        let v4 = self.v4.iter().map(|e| (e.0.into(), e.1));
        v4.chain(self.v6.iter().map(|e| (e.0.into(), e.1)))
    }

    /// Decides one frame (`f`: its bytes in the first frame) and rewrites
    /// it in place: an ARP or ND answer, or the MAC rewrites. Returns the
    /// verdict and the frame's new length where it changed.
    #[inline]
    pub fn decide(&self, f: &mut [u8], m: Meta) -> (Verdict, Option<u32>) {
        let from_parent = m.in_port == self.parent;
        let multicast = f.first().is_some_and(|b| b & 1 != 0);
        if let Some(answer) = self.answer(f, m) {
            return answer;
        }
        // The dst IP that tells the members apart: ARP's target address.
        let dst = match m.ethertype {
            EtherType::IPV4 => f.get(m.l3_off + 16..m.l3_off + 20),
            EtherType::IPV6 => f.get(m.l3_off + 24..m.l3_off + 40),
            EtherType::ARP => f.get(m.l3_off + 24..m.l3_off + 28),
            _ => None,
        };
        let member = match (m.ethertype, dst) {
            (EtherType::IPV6, Some(ip)) => self.member_v6(ip),
            (_, Some(ip)) => self.member_v4(ip),
            (_, None) if from_parent && !multicast => {
                return (Verdict::Drop(DropReason::IpvlanNotIp), None)
            }
            (_, None) => None,
        };
        if !from_parent {
            // The segment sees only the shared MAC: ARP's sender, and the
            // link-layer address options of neighbor discovery, too.
            f[6..12].copy_from_slice(&self.mac.0);
            if m.ethertype == EtherType::ARP {
                if let Some(sha) = f.get_mut(m.l3_off + 8..m.l3_off + 14) {
                    sha.copy_from_slice(&self.mac.0);
                }
            }
            if let Some(icmp) = m.icmp6_off {
                rewrite_nd_lladdr(f, icmp, self.mac);
            }
        }
        if multicast {
            return (Verdict::Flood(m.domain), None);
        }
        match member {
            Some((p, _)) if p == m.in_port => (Verdict::Drop(DropReason::SameSegment), None),
            Some((p, mac)) if !from_parent || f[0..6] == self.mac.0 => {
                f[0..6].copy_from_slice(&mac.0);
                if m.ethertype == EtherType::ARP {
                    if let Some(tha) = f.get_mut(m.l3_off + 18..m.l3_off + 24) {
                        tha.copy_from_slice(&mac.0);
                    }
                }
                (Verdict::Forward(p), None)
            }
            None if !from_parent => (Verdict::Forward(self.parent), None),
            _ => (Verdict::Drop(DropReason::IpvlanUnknownDst), None),
        }
    }

    /// An ARP request or a neighbor solicitation for a member's address,
    /// from anyone but that member, is answered with the shared MAC, back
    /// out of the port it came in on.
    #[inline(always)]
    fn answer(&self, f: &mut [u8], m: Meta) -> Option<(Verdict, Option<u32>)> {
        match m.ethertype {
            EtherType::ARP => {
                let a = arp::ArpPacket::new_checked(f.get(m.l3_off..)?).ok()?;
                if a.operation() != arp::OP_REQUEST {
                    return None;
                }
                let (p, _) = self.member_v4(&a.target_ip())?;
                if p == m.in_port {
                    return None;
                }
                let (asker, asker_ip, ip) = (a.sender_mac(), a.sender_ip(), a.target_ip());
                let mut reply = [0u8; 14 + arp::HEADER_LEN];
                arp::emit_frame(&mut reply, self.mac, ip, Some(asker), asker_ip);
                f[0..12].copy_from_slice(&reply[0..12]);
                f[m.l3_off..m.l3_off + arp::HEADER_LEN].copy_from_slice(&reply[14..]);
                Some((Verdict::Forward(m.in_port), None))
            }
            EtherType::IPV6 => {
                let icmp = m.icmp6_off?;
                let (l3, end) = (m.l3_off, icmp + NA_LEN);
                if f.get(icmp) != Some(&ND_NS) || f.len() < end || icmp != l3 + IPV6_HEADER {
                    return None;
                }
                let (p, _) = self.member_v6(&f[icmp + 8..icmp + 24])?;
                let asker_ip: [u8; 16] = f[l3 + 8..l3 + 24].try_into().ok()?;
                // Duplicate address detection (from ::) is the member's
                // own business; answering it would make its address fail.
                if p == m.in_port || asker_ip == [0; 16] {
                    return None;
                }
                let target: [u8; 16] = f[icmp + 8..icmp + 24].try_into().ok()?;
                f.copy_within(6..12, 0);
                f[6..12].copy_from_slice(&self.mac.0);
                let ip = &mut f[l3..icmp];
                ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
                ip[4..6].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
                ip[6] = protocol::ICMPV6;
                ip[7] = 255;
                ip[8..24].copy_from_slice(&target);
                ip[24..40].copy_from_slice(&asker_ip);
                let na = &mut f[icmp..end];
                na[0..8].copy_from_slice(&[ND_NA, 0, 0, 0, 0x60, 0, 0, 0]);
                na[8..24].copy_from_slice(&target);
                na[24..26].copy_from_slice(&[2, 1]);
                na[26..32].copy_from_slice(&self.mac.0);
                let sum = icmp6_checksum(&target, &asker_ip, na);
                na[2..4].copy_from_slice(&sum.to_be_bytes());
                Some((Verdict::Forward(m.in_port), Some(end as u32)))
            }
            _ => None,
        }
    }
}

/// Replaces the source and target link-layer address options of a
/// neighbor-discovery message (RFC 4861 section 4.6.1) at `icmp` with
/// `mac`, keeping the checksum right incrementally (RFC 1624): a member
/// that tells the segment its own MAC would have the segment send to a
/// MAC that is not the one they share.
fn rewrite_nd_lladdr(f: &mut [u8], icmp: usize, mac: MacAddr) {
    // Where each message's options start, after its fixed part.
    let fixed = match f.get(icmp) {
        Some(133) => 8,        // router solicitation
        Some(134) => 16,       // router advertisement
        Some(135 | 136) => 24, // neighbor solicitation, advertisement
        Some(137) => 40,       // redirect
        _ => return,
    };
    let Some(c) = f.get(icmp + 2..icmp + 4) else {
        return;
    };
    let mut sum = !u16::from_be_bytes([c[0], c[1]]) as u32;
    let mut at = icmp + fixed;
    while let (Some(&kind), Some(&len)) = (f.get(at), f.get(at + 1)) {
        let end = at + 8 * len as usize;
        if len == 0 || end > f.len() {
            break;
        }
        if (kind == 1 || kind == 2) && len == 1 {
            for (w, new) in (at + 2..at + 8).step_by(2).zip(mac.0.chunks(2)) {
                let old = u16::from_be_bytes([f[w], f[w + 1]]);
                sum += !old as u32 + u16::from_be_bytes([new[0], new[1]]) as u32;
                f[w..w + 2].copy_from_slice(new);
            }
        }
        at = end;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[icmp + 2..icmp + 4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// The ICMPv6 checksum of `msg` (its checksum field zero) between `src`
/// and `dst` (RFC 8200 section 8.1 pseudo-header).
pub fn icmp6_checksum(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        let mut c = b.chunks_exact(2);
        for w in &mut c {
            sum += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        if let [last] = c.remainder() {
            sum += (*last as u32) << 8;
        }
    };
    add(src);
    add(dst);
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, protocol::ICMPV6]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::udp4_frame;

    const PARENT: PortId = 0;
    const A: PortId = 1;
    const B: PortId = 2;
    const SHARED: MacAddr = MacAddr([2, 0x5a, 0, 0, 0, 1]);
    const MAC_A: MacAddr = MacAddr([2, 0x5a, 0, 0, 0, 0xa]);
    const HOST: MacAddr = MacAddr([2, 0x5a, 0, 0, 0, 0xc]);
    const IP_A: [u8; 4] = [198, 18, 50, 11];
    const IP_B: [u8; 4] = [198, 18, 50, 12];
    const IP_HOST: [u8; 4] = [198, 18, 50, 100];
    const V6_A: [u8; 16] = [0x20, 1, 0, 2, 0, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
    const V6_HOST: [u8; 16] = [0x20, 1, 0, 2, 0, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    fn ipvlan() -> IpVlan {
        let mut v = IpVlan::new(PARENT, SHARED);
        v.add_v4(IP_A, A, MAC_A);
        v.add_v4(IP_B, B, SHARED);
        v.add_v6(V6_A, A, MAC_A);
        v
    }

    fn meta(in_port: PortId, ethertype: u16) -> Meta {
        Meta {
            in_port,
            domain: 0,
            ethertype,
            l3_off: 14,
            icmp6_off: (ethertype == EtherType::IPV6).then_some(54),
        }
    }

    fn udp(dst: MacAddr, src: MacAddr, sip: [u8; 4], dip: [u8; 4]) -> Vec<u8> {
        udp4_frame(64, src, dst, sip, dip, 1, 2, b"ipvlan")
    }

    #[test]
    fn demultiplexes_by_ip_and_rewrites_macs() {
        let v = ipvlan();
        let mut f = udp(SHARED, HOST, IP_HOST, IP_A);
        assert_eq!(
            v.decide(&mut f, meta(PARENT, EtherType::IPV4)),
            (Verdict::Forward(A), None)
        );
        assert_eq!(&f[0..6], &MAC_A.0, "towards the member's own MAC");
        assert_eq!(&f[6..12], &HOST.0);

        let mut f = udp(HOST, MAC_A, IP_A, IP_HOST);
        assert_eq!(
            v.decide(&mut f, meta(A, EtherType::IPV4)),
            (Verdict::Forward(PARENT), None)
        );
        assert_eq!(&f[6..12], &SHARED.0, "the segment sees the shared MAC");

        let mut f = udp(SHARED, MAC_A, IP_A, IP_B);
        assert_eq!(
            v.decide(&mut f, meta(A, EtherType::IPV4)),
            (Verdict::Forward(B), None),
            "member to member, inside pollgate"
        );
        let mut f = udp(SHARED, HOST, IP_HOST, [198, 18, 50, 99]);
        assert_eq!(
            v.decide(&mut f, meta(PARENT, EtherType::IPV4)).0,
            Verdict::Drop(DropReason::IpvlanUnknownDst)
        );
        let mut f = udp(MacAddr([2, 9, 9, 9, 9, 9]), HOST, IP_HOST, IP_A);
        assert_eq!(
            v.decide(&mut f, meta(PARENT, EtherType::IPV4)).0,
            Verdict::Drop(DropReason::IpvlanUnknownDst),
            "not to the shared MAC"
        );
        let mut f = udp(MacAddr::BROADCAST, HOST, IP_HOST, [198, 18, 50, 255]);
        assert_eq!(
            v.decide(&mut f, meta(PARENT, EtherType::IPV4)).0,
            Verdict::Flood(0)
        );
        let mut f = udp(SHARED, HOST, IP_HOST, IP_A);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        assert_eq!(
            v.decide(&mut f, meta(PARENT, 0x88b5)).0,
            Verdict::Drop(DropReason::IpvlanNotIp)
        );
    }

    #[test]
    fn answers_arp_for_members_with_the_shared_mac() {
        let v = ipvlan();
        let mut f = vec![0u8; 60];
        arp::emit_frame(&mut f, HOST, IP_HOST, None, IP_A);
        assert_eq!(
            v.decide(&mut f, meta(PARENT, EtherType::ARP)),
            (Verdict::Forward(PARENT), None)
        );
        let a = arp::ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(a.operation(), arp::OP_REPLY);
        assert_eq!((a.sender_mac(), a.sender_ip()), (SHARED, IP_A));
        assert_eq!(a.target_ip(), IP_HOST);
        assert_eq!((&f[0..6], &f[6..12]), (&HOST.0[..], &SHARED.0[..]));

        // A member's own probe for its address is not answered; it floods
        // with the shared MAC as sender.
        let mut f = vec![0u8; 60];
        arp::emit_frame(&mut f, MAC_A, [0; 4], None, IP_A);
        assert_eq!(
            v.decide(&mut f, meta(A, EtherType::ARP)).0,
            Verdict::Flood(0)
        );
        let a = arp::ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(a.sender_mac(), SHARED);

        // The segment's reply to a member goes to that member, by its IP.
        let mut f = vec![0u8; 60];
        arp::emit_frame(&mut f, HOST, IP_HOST, Some(SHARED), IP_A);
        assert_eq!(
            v.decide(&mut f, meta(PARENT, EtherType::ARP)),
            (Verdict::Forward(A), None)
        );
        assert_eq!(&f[0..6], &MAC_A.0);
    }

    fn ns(target: [u8; 16], src_ip: [u8; 16]) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0xff, 0, 0, 0x11];
        f.extend_from_slice(&HOST.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend_from_slice(&src_ip);
        f.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x11]);
        f.extend_from_slice(&[ND_NS, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&target);
        f.extend_from_slice(&[1, 1]);
        f.extend_from_slice(&HOST.0);
        f
    }

    #[test]
    fn answers_neighbor_solicitations_with_a_valid_advertisement() {
        let v = ipvlan();
        let mut f = ns(V6_A, V6_HOST);
        let (verdict, len) = v.decide(&mut f, meta(PARENT, EtherType::IPV6));
        assert_eq!((verdict, len), (Verdict::Forward(PARENT), Some(86)));
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!("IPv6")
        };
        assert_eq!(ip.header().source(), V6_A);
        assert_eq!(ip.header().destination(), V6_HOST);
        assert_eq!(ip.header().hop_limit(), 255);
        assert_eq!((&f[0..6], &f[6..12]), (&HOST.0[..], &SHARED.0[..]));
        let na = &f[54..86];
        assert_eq!(na[0], ND_NA);
        assert_eq!(na[4], 0x60, "solicited and override");
        assert_eq!(&na[8..24], &V6_A);
        assert_eq!(&na[24..32], &[2, 1, 2, 0x5a, 0, 0, 0, 1]);
        let mut zeroed = na.to_vec();
        zeroed[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(
            icmp6_checksum(&V6_A, &V6_HOST, &zeroed).to_be_bytes(),
            [na[2], na[3]]
        );
        // Verified independently: the checksum over the whole message
        // with its checksum in place folds to zero.
        assert_eq!(icmp6_checksum(&V6_A, &V6_HOST, na), 0);

        // A member's own solicitation leaves with the shared MAC in its
        // source link-layer option, and a checksum still right.
        let mut f = ns(V6_HOST, V6_A);
        f[6..12].copy_from_slice(&MAC_A.0);
        f[80..86].copy_from_slice(&MAC_A.0);
        let src: [u8; 16] = f[22..38].try_into().unwrap();
        let dst: [u8; 16] = f[38..54].try_into().unwrap();
        let sum = icmp6_checksum(&src, &dst, &f[54..]);
        f[56..58].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            v.decide(&mut f, meta(A, EtherType::IPV6)).0,
            Verdict::Flood(0)
        );
        assert_eq!((&f[6..12], &f[80..86]), (&SHARED.0[..], &SHARED.0[..]));
        assert_eq!(icmp6_checksum(&src, &dst, &f[54..]), 0, "checksum verifies");

        // DAD (from ::) is not answered.
        let mut f = ns(V6_A, [0; 16]);
        assert_eq!(
            v.decide(&mut f, meta(PARENT, EtherType::IPV6)).0,
            Verdict::Flood(0)
        );
    }
}
