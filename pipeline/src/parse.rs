//! The parse stage: Ethernet II, up to two VLAN tags, IPv4 (with options),
//! IPv6 (extension headers skipped), UDP, TCP, ICMP/ICMPv6. Every
//! malformed or truncated frame becomes a named drop; nothing here can
//! panic on packet data (the property tests feed it random bytes).

use crate::batch::{flags, Batch};
use crate::frame::FrameMemory;
use crate::stage::Stage;
use crate::verdict::{DropCounters, DropReason, Verdict};
use crate::wire::ipv4::protocol;
use crate::wire::{ethernet, icmp, ipv6, vlan, EtherType, WireError};
use crate::wire::{Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

/// What the parser learned about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parsed {
    pub l3_off: u16,
    pub l4_off: u16,
    pub ethertype: u16,
    pub l4_proto: u8,
    pub tags: u8,
    pub outer_tpid: u16,
    pub outer_tci: u16,
    pub inner_tci: u16,
    pub flags: u8,
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses one frame. Pure: the same bytes always give the same answer.
#[inline(always)]
pub fn parse_frame(buf: &[u8]) -> Result<Parsed, DropReason> {
    match common_case(buf) {
        Some(p) => Ok(p),
        None => parse::<false>(buf, buf.len()),
    }
}

/// The frame most traffic is, decided with a few loads and compares (as
/// DPDK's packet-type fast path): untagged IPv4 without options or
/// fragments carrying a well-formed UDP or TCP header. `None` for
/// anything else, which the full parser then takes, errors included;
/// for what it accepts the answer is the full parser's (a property test
/// holds the two together).
#[inline(always)]
fn common_case(buf: &[u8]) -> Option<Parsed> {
    const L3: usize = ethernet::HEADER_LEN;
    const L4: usize = L3 + 20;
    let h = buf.get(..L4)?;
    if be16(h, 12) != EtherType::IPV4 || h[L3] != 0x45 || be16(h, L3 + 6) & 0x3fff != 0 {
        return None;
    }
    let total = be16(h, L3 + 2) as usize;
    if total < 20 || total > buf.len() - L3 {
        return None;
    }
    let (proto, payload) = (h[L3 + 9], total - 20);
    let l4_ok = match proto {
        protocol::UDP => {
            let ul = buf.get(L4 + 4..L4 + 6).map(|b| be16(b, 0) as usize);
            ul.is_some_and(|ul| (8..=payload).contains(&ul))
        }
        protocol::TCP => {
            let hl = buf.get(L4 + 12).map(|b| (b >> 4) as usize * 4);
            hl.is_some_and(|hl| (20..=payload).contains(&hl))
        }
        _ => false,
    };
    l4_ok.then_some(Parsed {
        l3_off: L3 as u16,
        l4_off: L4 as u16,
        ethertype: EtherType::IPV4,
        l4_proto: proto,
        flags: flags::PARSED | flags::IPV4 | flags::L4,
        ..Parsed::default()
    })
}

/// Parses a frame of `frame_len` bytes of which `buf` holds the first
/// part (a multi-buffer frame's head segment): every header must lie in
/// `buf`, the lengths they declare are checked against `frame_len`. A
/// frame all in `buf` takes [`parse_frame`]'s path.
#[inline(always)]
pub fn parse_frame_in(buf: &[u8], frame_len: usize) -> Result<Parsed, DropReason> {
    if frame_len <= buf.len() {
        parse_frame(buf)
    } else {
        parse_head(buf, frame_len)
    }
}

/// The multi-buffer case, out of line: rare, and kept out of the
/// one-frame loop's code.
#[inline(never)]
fn parse_head(buf: &[u8], frame_len: usize) -> Result<Parsed, DropReason> {
    parse::<true>(buf, frame_len)
}

/// The parser; `HEAD` says `buf` may be only the first part of the
/// frame. Without it every length is checked against `buf` itself, and
/// the one-frame path costs nothing for the chains it never sees.
#[inline(always)]
fn parse<const HEAD: bool>(buf: &[u8], frame_len: usize) -> Result<Parsed, DropReason> {
    if buf.len() < ethernet::HEADER_LEN {
        return Err(DropReason::RuntFrame);
    }
    let mut p = Parsed {
        flags: flags::PARSED,
        ..Parsed::default()
    };
    let mut et = be16(buf, 12);
    let mut off = ethernet::HEADER_LEN;
    while EtherType::is_vlan_tpid(et) {
        if p.tags == 2 {
            return Err(DropReason::TooManyTags);
        }
        if buf.len() < off + vlan::HEADER_LEN {
            return Err(DropReason::VlanTruncated);
        }
        let tci = be16(buf, off);
        if p.tags == 0 {
            p.outer_tpid = et;
            p.outer_tci = tci;
        } else {
            p.inner_tci = tci;
        }
        p.tags += 1;
        et = be16(buf, off + 2);
        off += vlan::HEADER_LEN;
    }
    p.ethertype = et;
    p.l3_off = off as u16;

    let l3 = &buf[off..];
    let (l4_start, l4_end) = match et {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_unchecked(l3);
            let checked = if HEAD {
                ip.check_len_on_wire(frame_len - off)
            } else {
                ip.check_len()
            };
            checked.map_err(|e| match e {
                WireError::Truncated => DropReason::Ipv4Truncated,
                WireError::BadField if ip.version() != 4 => DropReason::Ipv4BadVersion,
                WireError::BadField => DropReason::Ipv4BadIhl,
                WireError::BadLength => DropReason::Ipv4BadTotalLength,
            })?;
            p.flags |= flags::IPV4;
            p.l4_proto = ip.protocol();
            if ip.more_frags() || ip.frag_offset() != 0 {
                p.flags |= flags::FRAGMENT;
                // RFC 1858: a TCP fragment at offset 8 bytes can only be
                // there to overwrite the first fragment's ports and flags
                // after an ACL has judged them.
                if ip.frag_offset() == 8 && ip.protocol() == protocol::TCP {
                    return Err(DropReason::FragmentOverlapsL4);
                }
                if ip.frag_offset() != 0 {
                    return Ok(p);
                }
            }
            (off + ip.header_len(), off + ip.total_len() as usize)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_unchecked(l3);
            let checked = if HEAD {
                ip.check_len_on_wire(frame_len - off)
            } else {
                ip.check_len()
            };
            checked.map_err(|e| match e {
                WireError::Truncated => DropReason::Ipv6Truncated,
                WireError::BadField => DropReason::Ipv6BadVersion,
                WireError::BadLength => DropReason::Ipv6BadPayloadLength,
            })?;
            p.flags |= flags::IPV6;
            let end = off + ipv6::HEADER_LEN + ip.payload_len() as usize;
            // Extension headers past the head segment are not followed:
            // a chain of them over 1.7 KB long is refused as malformed.
            let ext = &buf[off + ipv6::HEADER_LEN..if HEAD { end.min(buf.len()) } else { end }];
            let ul = ipv6::skip_extension_headers(ext, ip.next_header())
                .map_err(|_| DropReason::Ipv6BadExtHeader)?;
            p.l4_proto = ul.protocol;
            if ul.fragment {
                p.flags |= flags::FRAGMENT;
                if ul.later_fragment {
                    return Ok(p);
                }
            }
            (off + ipv6::HEADER_LEN + ul.offset, end)
        }
        _ => return Ok(p),
    };

    let l4 = &buf[l4_start..if HEAD { l4_end.min(buf.len()) } else { l4_end }];
    let fragment = p.flags & flags::FRAGMENT != 0;
    match p.l4_proto {
        protocol::UDP => {
            let u = UdpPacket::new_unchecked(l4);
            let checked = if HEAD {
                u.check_len_on_wire(l4_end - l4_start)
            } else {
                u.check_len()
            };
            match checked {
                Err(WireError::Truncated) => return Err(DropReason::UdpTruncated),
                // A first fragment holds only part of the datagram the
                // length field describes.
                Err(_) if !fragment => return Err(DropReason::UdpBadLength),
                _ => {}
            }
        }
        protocol::TCP => {
            TcpPacket::new_unchecked(l4)
                .check_len()
                .map_err(|e| match e {
                    WireError::Truncated => DropReason::TcpTruncated,
                    _ => DropReason::TcpBadDataOffset,
                })?;
        }
        protocol::ICMP | protocol::ICMPV6 if l4.len() < icmp::HEADER_LEN => {
            return Err(DropReason::IcmpTruncated);
        }
        _ => {}
    }
    p.l4_off = l4_start as u16;
    p.flags |= flags::L4;
    Ok(p)
}

/// Parse stage over a batch.
#[derive(Debug, Default, Clone)]
pub struct Parse;

impl Stage for Parse {
    fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        for i in 0..batch.len() {
            if batch.verdict[i] != Verdict::Pending {
                continue;
            }
            let Some(buf) = mem.bytes(batch.addr[i], batch.data_len[i]) else {
                batch.verdict[i] = Verdict::Drop(DropReason::BadDescriptor);
                drops.count(DropReason::BadDescriptor);
                continue;
            };
            // `parse_frame_in`'s test, on the tail length the batch already
            // has: testing the buffer's length here measured 7 % slower
            // (`pollgate bench --forward io --parse`).
            let parsed = if batch.tail_len[i] == 0 {
                parse_frame(buf)
            } else {
                parse_head(buf, batch.pkt_len(i) as usize)
            };
            match parsed {
                Ok(p) => {
                    batch.l3_off[i] = p.l3_off;
                    batch.l4_off[i] = p.l4_off;
                    batch.ethertype[i] = p.ethertype;
                    batch.l4_proto[i] = p.l4_proto;
                    batch.tags[i] = p.tags;
                    batch.outer_tpid[i] = p.outer_tpid;
                    batch.outer_tci[i] = p.outer_tci;
                    batch.inner_tci[i] = p.inner_tci;
                    batch.flags[i] = p.flags;
                }
                Err(reason) => {
                    batch.verdict[i] = Verdict::Drop(reason);
                    drops.count(reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet (non-zero MACs) + optional tags + IPv4/UDP with 4 payload
    /// bytes; the base every malformed case starts from.
    fn ipv4_udp(tags: &[u16]) -> Vec<u8> {
        let mut f = vec![
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x06, 0x66, 0x77, 0x88, 0x99, 0xaa,
        ];
        for tpid in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0xa0, 0x0a]); // PCP 5, VID 10
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 198, 18, 0, 1,
            198, 19, 0, 1,
        ]);
        f.extend_from_slice(&[0x30, 0x39, 0x12, 0xb5, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4]);
        f
    }

    fn ipv6_udp() -> Vec<u8> {
        let mut f = vec![
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x06, 0x66, 0x77, 0x88, 0x99, 0xaa,
        ];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0x00, 0x0c, 17, 64]);
        f.extend_from_slice(&[0x20; 32]);
        f.extend_from_slice(&[0x30, 0x39, 0x12, 0xb5, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4]);
        f
    }

    #[test]
    fn well_formed_frames_parse() {
        let p = parse_frame(&ipv4_udp(&[])).unwrap();
        assert_eq!((p.l3_off, p.l4_off, p.l4_proto), (14, 34, 17));
        let p = parse_frame(&ipv4_udp(&[0x88a8, 0x8100])).unwrap();
        assert_eq!(
            (p.tags, p.outer_tpid, p.l3_off, p.l4_off),
            (2, 0x88a8, 22, 42)
        );
        assert_eq!((p.outer_tci, p.inner_tci), (0xa00a, 0xa00a));
        let p = parse_frame(&ipv6_udp()).unwrap();
        assert_eq!(
            (p.l3_off, p.l4_off, p.flags & flags::IPV6),
            (14, 54, flags::IPV6)
        );
        // Ethernet padding after the IP packet is allowed.
        let mut f = ipv4_udp(&[]);
        f.extend_from_slice(&[0; 16]);
        assert!(parse_frame(&f).is_ok());
        // ARP and other EtherTypes stop at L2.
        let mut f = ipv4_udp(&[]);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        let p = parse_frame(&f).unwrap();
        assert_eq!((p.ethertype, p.flags & flags::L4), (0x0806, 0));
    }

    #[test]
    fn a_head_segment_parses_against_the_whole_frame_length() {
        // A 9000-byte IPv4/UDP frame of which the first 1792 bytes are
        // in the head segment.
        let mut f = ipv4_udp(&[]);
        f.resize(1792, 0);
        let ip_len: u16 = 9000 - 14;
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        let p = parse_frame_in(&f, 9000).unwrap();
        assert_eq!((p.l4_off, p.flags & flags::L4), (34, flags::L4));
        // The same head alone is a frame whose lengths overrun it.
        assert_eq!(parse_frame(&f), Err(DropReason::Ipv4BadTotalLength));
        // And a frame shorter than its headers declare is still refused.
        assert_eq!(
            parse_frame_in(&f, 8999),
            Err(DropReason::Ipv4BadTotalLength)
        );
        // UDP length past the datagram, within the frame: refused.
        f[38..40].copy_from_slice(&(ip_len - 19).to_be_bytes());
        assert_eq!(parse_frame_in(&f, 9000), Err(DropReason::UdpBadLength));
    }

    #[test]
    fn later_fragments_have_no_l4() {
        let mut f = ipv4_udp(&[]);
        f[20] = 0x00;
        f[21] = 0x10; // offset 128 bytes
        f[38..40].copy_from_slice(&[0xff, 0xff]); // UDP length garbage: not a header
        let p = parse_frame(&f).unwrap();
        assert_eq!(p.flags & (flags::FRAGMENT | flags::L4), flags::FRAGMENT);
    }

    #[test]
    fn malformed_frames_land_on_named_counters() {
        type Mutate = fn(&mut Vec<u8>);
        let cases: &[(&str, Mutate, DropReason)] = &[
            ("short frame", |f| f.truncate(13), DropReason::RuntFrame),
            ("empty frame", |f| f.clear(), DropReason::RuntFrame),
            (
                "tag cut off",
                |f| {
                    f.truncate(14);
                    f[12..14].copy_from_slice(&[0x81, 0]);
                    f.extend_from_slice(&[0, 1])
                },
                DropReason::VlanTruncated,
            ),
            (
                "three stacked tags",
                |f| *f = ipv4_udp(&[0x88a8, 0x8100, 0x8100]),
                DropReason::TooManyTags,
            ),
            (
                "IPv4 cut to 10 bytes",
                |f| f.truncate(24),
                DropReason::Ipv4Truncated,
            ),
            (
                "IPv4 version 5",
                |f| f[14] = 0x55,
                DropReason::Ipv4BadVersion,
            ),
            ("bad IHL (4)", |f| f[14] = 0x44, DropReason::Ipv4BadIhl),
            ("IHL past the end", |f| f[14] = 0x4f, DropReason::Ipv4BadIhl),
            (
                "IPv4 total length past the end",
                |f| f[17] = 0x40,
                DropReason::Ipv4BadTotalLength,
            ),
            (
                "IPv4 total length below header",
                |f| f[17] = 0x10,
                DropReason::Ipv4BadTotalLength,
            ),
            (
                "UDP length below 8",
                |f| f[39] = 0x04,
                DropReason::UdpBadLength,
            ),
            (
                "UDP length past IP payload",
                |f| f[39] = 0x20,
                DropReason::UdpBadLength,
            ),
            (
                "UDP header cut by IP length",
                |f| {
                    f[17] = 0x18;
                },
                DropReason::UdpTruncated,
            ),
            (
                "TCP data offset 4 words",
                |f| {
                    f[23] = 6;
                    f.extend_from_slice(&[0; 8]);
                    f[17] = 0x28;
                    f[46] = 0x40
                },
                DropReason::TcpBadDataOffset,
            ),
            ("TCP truncated", |f| f[23] = 6, DropReason::TcpTruncated),
            (
                "ICMP truncated",
                |f| {
                    f[23] = 1;
                    f[17] = 0x1a
                },
                DropReason::IcmpTruncated,
            ),
            (
                "IPv6 payload length mismatch",
                |f| {
                    *f = {
                        let mut g = ipv6_udp();
                        g[19] = 0x40;
                        g
                    }
                },
                DropReason::Ipv6BadPayloadLength,
            ),
            (
                "IPv6 version 4",
                |f| {
                    *f = {
                        let mut g = ipv6_udp();
                        g[14] = 0x40;
                        g
                    }
                },
                DropReason::Ipv6BadVersion,
            ),
            (
                "IPv6 truncated",
                |f| {
                    *f = {
                        let mut g = ipv6_udp();
                        g.truncate(50);
                        g
                    }
                },
                DropReason::Ipv6Truncated,
            ),
            (
                "IPv6 ext header past payload",
                |f| {
                    *f = {
                        let mut g = ipv6_udp();
                        g[20] = 60;
                        g[55] = 3;
                        g
                    }
                },
                DropReason::Ipv6BadExtHeader,
            ),
        ];
        for (name, mutate, reason) in cases {
            let mut mem = ipv4_udp(&[]);
            mutate(&mut mem);
            let mut b = Batch::new();
            b.push(0, mem.len() as u32, 0, 0);
            let mut drops = DropCounters::default();
            Parse.process(&mut b, &mut mem, &mut drops);
            assert_eq!(b.verdict[0], Verdict::Drop(*reason), "{name}");
            assert_eq!(drops.get(*reason), 1, "{name}");
            assert_eq!(drops.total(), 1, "{name}");
        }
    }

    #[test]
    fn descriptor_outside_memory_is_counted() {
        let mut mem = ipv4_udp(&[]);
        let mut b = Batch::new();
        b.push(10, mem.len() as u32, 0, 0);
        let mut drops = DropCounters::default();
        Parse.process(&mut b, &mut mem, &mut drops);
        assert_eq!(b.verdict[0], Verdict::Drop(DropReason::BadDescriptor));
        assert_eq!(drops.get(DropReason::BadDescriptor), 1);
    }

    /// A TCP/IPv4 frame (20-byte TCP header, 6 payload bytes).
    fn ipv4_tcp() -> Vec<u8> {
        let mut f = ipv4_udp(&[]);
        f.truncate(34);
        f[23] = protocol::TCP;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50, 1, 2, 3, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, 9, 8, 7, 6, 5, 4]);
        f
    }

    #[test]
    fn the_common_case_takes_plain_udp_and_tcp() {
        for f in [ipv4_udp(&[]), ipv4_tcp()] {
            let p = common_case(&f).expect("taken by the common case");
            assert_eq!(Ok(p), parse::<false>(&f, f.len()));
        }
        assert_eq!(common_case(&ipv4_udp(&[0x8100])), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever the common case accepts, the full parser answers the
        /// same: frames from UDP and TCP bases with bytes overwritten at
        /// the fields it reads (and anywhere else) and any length.
        #[test]
        fn the_common_case_agrees_with_the_full_parser(
            tcp: bool,
            edits in proptest::collection::vec(
                (
                    proptest::sample::select(vec![12usize, 13, 14, 16, 17, 20, 21, 23, 38, 39, 46, 0, 30, 50]),
                    // Lengths and offsets near the frame's own.
                    proptest::prop_oneof![0u8..=64, proptest::prelude::any::<u8>()],
                ),
                0..4,
            ),
            // Mostly whole frames: a cut one is mostly refused.
            cut in proptest::prop_oneof![3 => proptest::strategy::Just(0usize), 1 => 0usize..64],
            extra in 0usize..8,
        ) {
            let mut f = if tcp { ipv4_tcp() } else { ipv4_udp(&[]) };
            for (at, v) in edits {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.extend(std::iter::repeat_n(0xee, extra));
            f.truncate(f.len().saturating_sub(cut));
            if let Some(p) = common_case(&f) {
                proptest::prop_assert_eq!(Ok(p), parse::<false>(&f, f.len()));
            }
        }
    }
}
