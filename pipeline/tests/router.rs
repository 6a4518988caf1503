//! The router stage against an independent dissector (etherparse): what
//! it answers (ARP, ND, echo), what it forwards (TTL / hop limit, MACs,
//! checksums verified by full recomputation) and the ICMP errors it
//! sends (time exceeded, fragmentation needed, packet too big).

mod common;

use common::*;
use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pollgate_pipeline::l3::ROUTER_PORT;
use pollgate_pipeline::wire::arp;
use pollgate_pipeline::{DropReason, Verdict};
use std::net::IpAddr;

#[test]
fn answers_arp_for_the_gateway_and_floods_other_arp() {
    let mut r = rig();
    let (out, _) = r.run(&[
        (0, arp_request(H1, [198, 18, 1, 10], [198, 18, 1, 1])),
        (0, arp_request(H1, [198, 18, 1, 10], [198, 18, 1, 99])),
    ]);
    let (v, f, from) = &out[0];
    assert_eq!((*v, *from), (Verdict::Forward(0), ROUTER_PORT));
    assert_eq!(&f[0..6], &H1);
    assert_eq!(&f[6..12], &GW.0);
    assert_eq!(u16::from_be_bytes([f[20], f[21]]), arp::OP_REPLY);
    assert_eq!(&f[28..32], &[198, 18, 1, 1]);
    assert_eq!(out[1].0, Verdict::Flood(0));
    // The asker was learnt: a routed packet to it needs no resolution.
    let n = r
        .routes
        .tables
        .neighbors
        .lookup(0, IpAddr::from([198, 18, 1, 10]), r.now)
        .unwrap();
    assert_eq!(n.mac, Some(H1));
}

#[test]
fn routes_after_resolving_the_next_hop_with_ttl_and_checksum_right() {
    let mut r = rig();
    r.run(&[(0, arp_request(H1, [198, 18, 1, 10], [198, 18, 1, 1]))]);
    // 198.19.0.0/16 via 198.18.2.2: unresolved, so the packet is held
    // and the worker is asked to send an ARP request, flooded in net1.
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 19, 7, 7], 64, 100, true);
    let (out, drops) = r.run(&[(0, pkt.clone())]);
    assert_eq!(out[0].0, Verdict::Held);
    assert_eq!(drops.total(), 0);
    let req = r.router.take_requests();
    assert_eq!(req.len(), 1);
    let (d, f) = &req[0];
    assert_eq!(*d, 1);
    assert_eq!(&f[0..6], &[0xff; 6]);
    assert_eq!(&f[38..42], &[198, 18, 2, 2]);
    assert_eq!(&f[28..32], &[198, 18, 2, 1]);
    // A second packet within the retry interval waits too, unasked.
    let (out, _) = r.run(&[(0, pkt.clone())]);
    assert_eq!(out[0].0, Verdict::Held);
    assert!(r.router.take_requests().is_empty());
    // The gateway answers (and is learnt on port 1 by the router).
    let (out, _) = r.run(&[(1, arp_reply(H2, [198, 18, 2, 2], GW.0, [198, 18, 2, 1]))]);
    assert_eq!(out[0].0, Verdict::Drop(DropReason::NdConsumed));
    // Both held packets leave with it, in order; the new one after them.
    assert_eq!(out.len(), 3, "the reply and the two released packets");
    for (v, f, _) in &out[1..] {
        assert_eq!(*v, Verdict::Forward(1));
        assert_eq!(ipv4_of(f).header().ttl(), 63);
    }
    let (out, _) = r.run(&[(0, pkt.clone())]);
    let (v, f, _) = &out[0];
    assert_eq!(*v, Verdict::Forward(1));
    assert_eq!(&f[0..6], &H2);
    assert_eq!(&f[6..12], &GW.0);
    let ip = ipv4_of(f);
    assert_eq!(ip.header().ttl(), 63);
    // The incrementally updated checksum equals a full recomputation.
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    // Everything but TTL and checksum is untouched.
    assert_eq!(&f[34..], &pkt[34..]);
}

#[test]
fn held_packets_expire_and_are_counted_when_no_one_answers() {
    let mut r = rig();
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 19, 7, 7], 64, 100, true);
    let many: Vec<_> = (0..6).map(|_| (0, pkt.clone())).collect();
    let (out, drops) = r.run(&many);
    // Four wait per neighbour; the fifth becomes nothing new (the request
    // is already asked for) and is dropped, as is the sixth.
    assert_eq!(out.iter().filter(|o| o.0 == Verdict::Held).count(), 4);
    assert_eq!(drops.get(DropReason::NeighborUnresolved), 2);
    assert!(r.router.holds());
    r.now += 2_000_000_000;
    let (out, drops) = r.run(&[]);
    assert_eq!(out.len(), 4);
    assert!(out
        .iter()
        .all(|o| o.0 == Verdict::Drop(DropReason::NeighborUnresolved)));
    assert_eq!(drops.get(DropReason::NeighborUnresolved), 4);
    assert!(!r.router.holds());
}

#[test]
fn ttl_one_gets_time_exceeded_from_the_ingress_address() {
    let mut r = rig();
    r.run(&[(0, arp_request(H1, [198, 18, 1, 10], [198, 18, 1, 1]))]);
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 19, 7, 7], 1, 100, true);
    let (out, drops) = r.run(&[(0, pkt.clone())]);
    assert_eq!(drops.get(DropReason::TtlExceeded), 1);
    let (v, f, _) = &out[0];
    assert_eq!(*v, Verdict::Forward(0));
    assert_eq!(&f[0..6], &H1);
    let ip = ipv4_of(f);
    assert_eq!(ip.header().source(), [198, 18, 1, 1]);
    assert_eq!(ip.header().destination(), [198, 18, 1, 10]);
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let sliced = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = sliced.transport else {
        panic!()
    };
    assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    // The quote starts with the original IP header.
    assert_eq!(&icmp.payload()[..20], &pkt[14..34]);
}

#[test]
fn df_too_big_gets_fragmentation_needed_with_the_link_mtu() {
    let mut r = rig();
    r.run(&[(0, arp_request(H1, [198, 18, 1, 10], [198, 18, 1, 1]))]);
    // 1400 bytes of IP towards domain 1 (MTU 1280).
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 18, 2, 9], 64, 1372, true);
    let (out, drops) = r.run(&[(0, pkt)]);
    assert_eq!(drops.get(DropReason::IpTooBig), 1);
    let sliced = SlicedPacket::from_ethernet(&out[0].1).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = sliced.transport else {
        panic!()
    };
    match icmp.icmp_type() {
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
        ) => {
            assert_eq!(next_hop_mtu, 1280)
        }
        t => panic!("{t:?}"),
    }
    assert!(out[0].1.len() <= 14 + 576);
    // Without DF it is dropped, not fragmented, and nothing is sent.
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 18, 2, 9], 64, 1372, false);
    let (out, _) = r.run(&[(0, pkt)]);
    assert_eq!(out[0].0, Verdict::Drop(DropReason::IpTooBig));
}

#[test]
fn echo_to_the_gateway_is_answered() {
    let mut r = rig();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(H1, GW.0)
        .ipv4([198, 18, 1, 10], [198, 18, 1, 1], 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut f, b"ping")
        .unwrap();
    let (out, _) = r.run(&[(0, f)]);
    assert_eq!(out[0].0, Verdict::Forward(0));
    let sliced = SlicedPacket::from_ethernet(&out[0].1).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = &sliced.transport else {
        panic!()
    };
    assert!(matches!(icmp.icmp_type(), Icmpv4Type::EchoReply(e) if e.id == 7 && e.seq == 1));
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    let ip = ipv4_of(&out[0].1);
    assert_eq!(ip.header().destination(), [198, 18, 1, 10]);
    // Echo to the other interface's address is answered the same way.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(H1, GW.0)
        .ipv4([198, 18, 1, 10], [198, 18, 2, 1], 64)
        .icmpv4_echo_request(7, 2)
        .write(&mut f, b"ping")
        .unwrap();
    let (out, _) = r.run(&[(0, f)]);
    assert_eq!(out[0].0, Verdict::Forward(0));
}

#[test]
fn ipv6_nd_echo_forwarding_and_packet_too_big() {
    let mut r = rig();
    let h1_ip = {
        let mut a = V6A;
        a[15] = 10;
        a
    };
    // NS for the gateway, to its solicited-node group.
    let mut ns = Vec::new();
    let (group, gmac) = pollgate_pipeline::l3::nd::solicited_node(V6A);
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&V6A);
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&H1);
    PacketBuilder::ethernet2(H1, gmac.0)
        .ipv6(h1_ip, group, 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut ns, &body[4..])
        .unwrap();
    let (out, _) = r.run(&[(0, ns)]);
    assert_eq!(out[0].0, Verdict::Forward(0));
    let sliced = SlicedPacket::from_ethernet(&out[0].1).unwrap();
    let Some(TransportSlice::Icmpv6(na)) = &sliced.transport else {
        panic!("{:?}", sliced)
    };
    assert_eq!(na.type_u8(), 136);
    let Some(NetSlice::Ipv6(ip6)) = &sliced.net else {
        panic!()
    };
    assert_eq!(
        na.checksum(),
        na.icmp_type()
            .calc_checksum(
                ip6.header().source(),
                ip6.header().destination(),
                na.payload()
            )
            .unwrap()
    );
    assert_eq!(
        r.routes
            .tables
            .neighbors
            .lookup(0, IpAddr::from(h1_ip), r.now)
            .unwrap()
            .mac,
        Some(H1)
    );
    // Echo to the gateway.
    let mut e = Vec::new();
    PacketBuilder::ethernet2(H1, GW.0)
        .ipv6(h1_ip, V6A, 64)
        .icmpv6_echo_request(3, 4)
        .write(&mut e, b"ping6")
        .unwrap();
    let (out, _) = r.run(&[(0, e)]);
    assert_eq!(out[0].0, Verdict::Forward(0));
    let sliced = SlicedPacket::from_ethernet(&out[0].1).unwrap();
    let Some(TransportSlice::Icmpv6(rep)) = &sliced.transport else {
        panic!()
    };
    let Some(NetSlice::Ipv6(ip6)) = &sliced.net else {
        panic!()
    };
    assert!(matches!(rep.icmp_type(), Icmpv6Type::EchoReply(_)));
    assert_eq!(
        rep.checksum(),
        rep.icmp_type()
            .calc_checksum(
                ip6.header().source(),
                ip6.header().destination(),
                rep.payload()
            )
            .unwrap()
    );
    // Forwarding to 2001:db8:2::9: NS first, then with its NA, forwarded.
    let mut dst = V6B;
    dst[15] = 9;
    let mut p = Vec::new();
    PacketBuilder::ethernet2(H1, GW.0)
        .ipv6(h1_ip, dst, 64)
        .udp(1, 2)
        .write(&mut p, &[1; 64])
        .unwrap();
    let (out, _) = r.run(&[(0, p.clone())]);
    assert_eq!(out[0].0, Verdict::Held);
    let req = r.router.take_requests();
    assert_eq!(req.len(), 1);
    let sliced = SlicedPacket::from_ethernet(&req[0].1).unwrap();
    let Some(TransportSlice::Icmpv6(s)) = &sliced.transport else {
        panic!()
    };
    assert_eq!(s.type_u8(), 135);
    let mut na = Vec::new();
    let mut body = dst.to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&H2);
    PacketBuilder::ethernet2(H2, GW.0)
        .ipv6(dst, V6B, 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 136,
            code_u8: 0,
            bytes5to8: [0x60, 0, 0, 0],
        })
        .write(&mut na, &body)
        .unwrap();
    r.run(&[(1, na)]);
    let (out, _) = r.run(&[(0, p.clone())]);
    assert_eq!(out[0].0, Verdict::Forward(1));
    assert_eq!(out[0].1[14 + 7], 63);
    assert_eq!(&out[0].1[0..6], &H2);
    // Too big for domain 1's 1280: packet too big with that MTU.
    let mut big = Vec::new();
    PacketBuilder::ethernet2(H1, GW.0)
        .ipv6(h1_ip, dst, 64)
        .udp(1, 2)
        .write(&mut big, &[1; 1300])
        .unwrap();
    let (out, _) = r.run(&[(0, big)]);
    let sliced = SlicedPacket::from_ethernet(&out[0].1).unwrap();
    let Some(TransportSlice::Icmpv6(tb)) = &sliced.transport else {
        panic!()
    };
    assert!(matches!(
        tb.icmp_type(),
        Icmpv6Type::PacketTooBig { mtu: 1280 }
    ));
    assert!(out[0].1.len() <= 14 + 1280);
}

#[test]
fn announcements_are_a_gratuitous_arp_and_an_unsolicited_na_per_address() {
    let r = rig();
    let a = r.router.announcements();
    assert_eq!(
        a.len(),
        4,
        "two interfaces, one IPv4 and one IPv6 address each"
    );
    let (d, garp) = &a[0];
    assert_eq!(*d, 0);
    assert_eq!(&garp[0..6], &[0xff; 6]);
    assert_eq!(
        &garp[28..32],
        &garp[38..42],
        "sender and target are the gateway"
    );
    let (_, na) = &a[1];
    let sliced = SlicedPacket::from_ethernet(na).unwrap();
    let Some(TransportSlice::Icmpv6(m)) = &sliced.transport else {
        panic!()
    };
    let Some(NetSlice::Ipv6(ip6)) = &sliced.net else {
        panic!()
    };
    assert_eq!(m.type_u8(), 136);
    assert_eq!(
        m.checksum(),
        m.icmp_type()
            .calc_checksum(
                ip6.header().source(),
                ip6.header().destination(),
                m.payload()
            )
            .unwrap()
    );
    assert_eq!(
        ip6.header().destination(),
        [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    );
}

/// The rig with H1 behind net0 and the next hop 198.18.2.2 (H2) resolved.
fn resolved() -> Rig {
    let mut r = rig();
    r.run(&[(0, arp_request(H1, [198, 18, 1, 10], [198, 18, 1, 1]))]);
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 19, 7, 7], 64, 100, true);
    r.run(&[(0, pkt)]);
    r.run(&[(1, arp_reply(H2, [198, 18, 2, 2], GW.0, [198, 18, 2, 1]))]);
    let _ = r.router.take_requests();
    r
}

/// `f` with its IPv4 flags and fragment offset (8-byte units) set and
/// the header checksum made right again.
fn fragment(mut f: Vec<u8>, more: bool, offset: u16) -> Vec<u8> {
    let field = (u16::from(more) << 13) | offset;
    f[20..22].copy_from_slice(&field.to_be_bytes());
    f[24..26].fill(0);
    let c = pollgate_pipeline::wire::ipv4::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn ipv4_fragments_are_forwarded_whole_first_or_later() {
    let mut r = resolved();
    let whole = udp4(H1, [198, 18, 1, 10], [198, 19, 7, 7], 64, 100, false);
    // The first fragment carries the UDP header, a later one only data.
    let first = fragment(whole.clone(), true, 0);
    let mut later = fragment(whole, false, 16);
    later[34..42].copy_from_slice(b"not a hd");
    for pkt in [first, later] {
        let (out, drops) = r.run(&[(0, pkt.clone())]);
        assert_eq!(drops.total(), 0);
        let (v, f, _) = &out[0];
        assert_eq!(*v, Verdict::Forward(1));
        assert_eq!(&f[0..6], &H2);
        let ip = ipv4_of(f);
        assert_eq!(ip.header().ttl(), 63);
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        // Flags, offset and every byte past the header kept.
        assert_eq!(&f[20..22], &pkt[20..22]);
        assert_eq!(&f[34..], &pkt[34..]);
    }
}

#[test]
fn icmp_errors_are_rate_limited_and_the_excess_counted() {
    let mut r = resolved();
    let c = &r.routes.tables.counters;
    let (sent0, limited0) = (
        c.time_exceeded.load(std::sync::atomic::Ordering::Relaxed),
        c.icmp_rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    // 1 000 a second with a burst of 100 (a tenth of a second): 150
    // expiring packets in 3 ms get about 100 answers.
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 19, 7, 7], 1, 100, true);
    let mut answered = 0;
    for _ in 0..3 {
        let (out, drops) = r.run(&vec![(0, pkt.clone()); 50]);
        assert_eq!(drops.get(DropReason::TtlExceeded), 50);
        answered += out
            .iter()
            .filter(|(v, f, _)| *v == Verdict::Forward(0) && f[23] == 1)
            .count();
    }
    assert!((100..=104).contains(&answered), "{answered}");
    let c = &r.routes.tables.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&c.time_exceeded) - sent0, answered as u64);
    assert_eq!(load(&c.icmp_rate_limited) - limited0, 150 - answered as u64);
    // A second later the budget is back.
    r.now += 1_000_000_000;
    let (out, _) = r.run(&[(0, pkt)]);
    assert_eq!(out[0].0, Verdict::Forward(0));
}

#[test]
fn no_route_is_counted_and_answered_with_net_unreachable() {
    let mut r = resolved();
    let pkt = udp4(H1, [198, 18, 1, 10], [198, 18, 77, 1], 64, 100, true);
    let (out, drops) = r.run(&[(0, pkt.clone())]);
    assert_eq!(drops.get(DropReason::L3NoRoute), 1);
    let (v, f, _) = &out[0];
    assert_eq!(*v, Verdict::Forward(0));
    assert_eq!(&f[0..6], &H1);
    let sliced = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = sliced.transport else {
        panic!()
    };
    assert!(
        matches!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Network)
        ),
        "{:?}",
        icmp.icmp_type()
    );
    assert_eq!(&icmp.payload()[..20], &pkt[14..34]);
}
