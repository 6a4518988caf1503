//! The router stage against an independent dissector (etherparse): what
//! it answers (ARP, ND, echo), what it forwards (TTL / hop limit, MACs,
//! checksums verified by full recomputation) and the ICMP errors it
//! sends (time exceeded, fragmentation needed, packet too big).

use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pollgate_pipeline::bridge::{Bridge, Domain};
use pollgate_pipeline::l3::interface::link_local;
use pollgate_pipeline::l3::{
    Interfaces, L3Interface, Route, RouteTable, Router, Source, Target, ROUTER_PORT,
};
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::storm::StormControl;
use pollgate_pipeline::wire::arp;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, DomainId, DropCounters, DropReason, Parse, PortId, Stage, Verdict};
use std::net::IpAddr;
use std::sync::Arc;

const GW: MacAddr = MacAddr([2, 0x47, 0x57, 0, 0, 1]);
const H1: [u8; 6] = [2, 0, 0, 0, 1, 10];
const H2: [u8; 6] = [2, 0, 0, 0, 2, 10];
const V6A: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6B: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const SLOT: usize = 4096;
const HEADROOM: usize = 256;

struct Rig {
    router: Router,
    bridge: Bridge,
    routes: RouteTable,
    mem: Vec<u8>,
    now: u64,
    /// The next frame slot: held packets keep theirs across runs.
    slot: usize,
}

fn ifc(d: DomainId, v4: [u8; 4], v6: [u8; 16], mtu: u16) -> L3Interface {
    L3Interface {
        name: format!("net{d}"),
        domain: d,
        mac: GW,
        mtu,
        v4: vec![(v4, 24)],
        v6: vec![(v6, 64)],
        link_local: link_local(GW),
    }
}

/// Domain 0 on port 0 (198.18.1.0/24, 2001:db8:1::/64), domain 1 on
/// port 1 (198.18.2.0/24, MTU 1280), one router MAC for both.
fn rig() -> Rig {
    let macs = Arc::new(MacTable::new(1024));
    let mut routes = RouteTable::new(256, 256, 256);
    let ifs = Arc::new(Interfaces::new(
        vec![
            ifc(0, [198, 18, 1, 1], V6A, 1500),
            ifc(1, [198, 18, 2, 1], V6B, 1280),
        ],
        2,
    ));
    routes.set_interfaces(ifs.clone()).unwrap();
    routes
        .add(Route {
            prefix: "198.19.0.0/16".parse().unwrap(),
            target: Target::Via(vec![IpAddr::from([198, 18, 2, 2])]),
            metric: 0,
            source: Source::Static,
        })
        .unwrap();
    let router = Router::new(ifs, routes.tables.clone(), macs.clone(), 1000);
    let bridge = Bridge::new(
        vec![
            Domain::learning("net0", vec![0]),
            Domain::learning("net1", vec![1]),
        ],
        macs,
        vec![StormControl::unlimited(); 2],
    );
    Rig {
        router,
        bridge,
        routes,
        mem: vec![0; SLOT * 256],
        now: 1_000_000_000,
        slot: 0,
    }
}

impl Rig {
    /// Runs parse → router → bridge over `frames` (port, bytes); returns
    /// each packet's verdict and final bytes.
    fn run(
        &mut self,
        frames: &[(PortId, Vec<u8>)],
    ) -> (Vec<(Verdict, Vec<u8>, PortId)>, DropCounters) {
        let mut b = Batch::new();
        for (port, f) in frames {
            let at = (self.slot % 256) * SLOT + HEADROOM;
            self.slot += 1;
            self.mem[at..at + f.len()].copy_from_slice(f);
            b.push(at as u64, f.len() as u32, HEADROOM as u16, *port);
        }
        let mut drops = DropCounters::default();
        Parse.process(&mut b, &mut self.mem, &mut drops);
        for k in 0..b.len() {
            b.domain[k] = b.in_port[k];
        }
        self.now += 1_000_000;
        self.router.set_clock(self.now);
        self.bridge.set_clock(self.now);
        self.router.process(&mut b, &mut self.mem, &mut drops);
        self.bridge.process(&mut b, &mut self.mem, &mut drops);
        let out = (0..b.len())
            .map(|k| {
                let (a, n) = (b.addr[k] as usize, b.data_len[k] as usize);
                (b.verdict[k], self.mem[a..a + n].to_vec(), b.in_port[k])
            })
            .collect();
        (out, drops)
    }
}

fn arp_request(from: [u8; 6], sip: [u8; 4], tip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    arp::emit_frame(&mut f[..42], MacAddr(from), sip, None, tip);
    f
}

fn arp_reply(from: [u8; 6], sip: [u8; 4], to: [u8; 6], tip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    arp::emit_frame(&mut f[..42], MacAddr(from), sip, Some(MacAddr(to)), tip);
    f
}

fn udp4(
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    payload: usize,
    df: bool,
) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac, GW.0)
        .ipv4(src, dst, ttl)
        .udp(40000, 53)
        .write(&mut f, &vec![0xab; payload])
        .unwrap();
    if !df {
        f[20] &= !0x40;
        f[24..26].fill(0);
        let c = pollgate_pipeline::wire::ipv4::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

fn ipv4_of(f: &[u8]) -> etherparse::Ipv4Slice<'_> {
    match SlicedPacket::from_ethernet(f).unwrap().net {
        Some(NetSlice::Ipv4(ip)) => ip,
        other => panic!("not IPv4: {other:?}"),
    }
}

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
