//! NAT at the router's hooks, checked byte by byte: masquerade with
//! endpoint-independent mappings and port-dependent filtering, published
//! ports and hairpin, ICMP errors translated back, the per-source limit,
//! expiry giving ports back, and a full table counted. Every translated
//! packet's checksums are recomputed from scratch.

mod common;

use common::*;
use etherparse::PacketBuilder;
use pollgate_pipeline::conntrack::Tuple4;
use pollgate_pipeline::l3::csum;
use pollgate_pipeline::nat::{Masquerade, Nat, NatCounters, NatRules, Publish, Share};
use pollgate_pipeline::{DropReason, Verdict};
use std::net::IpAddr;
use std::sync::Arc;

const IN: [u8; 4] = [198, 18, 1, 10];
const IN2: [u8; 4] = [198, 18, 1, 20];
const PUB: [u8; 4] = [198, 18, 2, 1];
const SRV: [u8; 4] = [198, 19, 0, 5];
const NH: [u8; 4] = [198, 18, 2, 2];
const NH_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
const S: u64 = 1_000_000_000;

fn nat_rig(per_source: u32, flows: usize) -> Rig {
    nat_rig_shared(per_source, flows, Share::WHOLE)
}

/// Worker `share.index`'s rig of `share.of`.
fn nat_rig_shared(per_source: u32, flows: usize, share: Share) -> Rig {
    nat_rig_with(per_source, flows, share, Arc::default())
}

/// `nat_rig_shared` publishing to `counters`.
fn nat_rig_with(per_source: u32, flows: usize, share: Share, counters: Arc<NatCounters>) -> Rig {
    nat_rig_ports(per_source, flows, share, counters, (1024, 65535))
}

/// `nat_rig_with`, masquerading to `ports`.
fn nat_rig_ports(
    per_source: u32,
    flows: usize,
    share: Share,
    counters: Arc<NatCounters>,
    ports: (u16, u16),
) -> Rig {
    let rules = NatRules {
        masquerade: vec![Masquerade {
            out: 1,
            sources: vec![([198, 18, 1, 0], 24)],
            pool: vec![PUB],
            ports,
            per_source,
        }],
        publish: vec![
            Publish::parse("tcp 8080 -> 198.18.1.10:80", PUB, per_source).unwrap(),
            Publish::parse("udp 5353 -> 198.18.1.10:53", PUB, per_source).unwrap(),
        ],
        hairpin_ports: (1024, 65535),
    };
    let nat = Nat::shared(
        Arc::new(rules),
        &[PUB, [198, 18, 1, 1]],
        64,
        counters,
        share,
    );
    let r = rig_with(Some((nat, flows)));
    let n = &r.routes.tables.neighbors;
    n.update(1, IpAddr::from(NH), Some(NH_MAC), true, 0, true);
    n.update(0, IpAddr::from(IN), Some(H1), true, 0, true);
    n.update(0, IpAddr::from(IN2), Some(H2), true, 0, true);
    // The hosts' ARP teaches the MAC table their ports.
    let mut r = r;
    r.run(&[
        (1, arp_request(NH_MAC, NH, PUB)),
        (0, arp_request(H1, IN, [198, 18, 1, 1])),
        (0, arp_request(H2, IN2, [198, 18, 1, 1])),
    ]);
    r
}

fn udp(mac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(mac, GW.0)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut f, b"pollgate nat")
        .unwrap();
    f
}

fn tcp(mac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), syn: bool) -> Vec<u8> {
    let mut f = Vec::new();
    let b = PacketBuilder::ethernet2(mac, GW.0)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 4096);
    let b = if syn { b.syn() } else { b.ack(1) };
    b.write(&mut f, b"hello").unwrap();
    f
}

/// (src, sport, dst, dport) of an IPv4 TCP/UDP frame, its checksums
/// recomputed from scratch on the way.
fn tuple(f: &[u8]) -> ([u8; 4], u16, [u8; 4], u16) {
    let ip = &f[14..34];
    assert_eq!(csum::finish(csum::sum(ip)), 0, "IPv4 header checksum");
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let l4 = &f[34..14 + total];
    let proto = ip[9];
    if proto != 1 {
        let pseudo = csum::sum(&ip[12..20]) + proto as u32 + l4.len() as u32;
        assert_eq!(csum::finish(pseudo + csum::sum(l4)), 0, "L4 checksum");
    } else {
        assert_eq!(csum::finish(csum::sum(l4)), 0, "ICMP checksum");
    }
    let a = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    let p = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    (a(&ip[12..16]), p(&l4[0..2]), a(&ip[16..20]), p(&l4[2..4]))
}

fn one(r: &mut Rig, port: u16, f: Vec<u8>) -> (Verdict, Vec<u8>) {
    let (mut out, _) = r.run(&[(port, f)]);
    let (v, b, _) = out.remove(0);
    (v, b)
}

#[test]
fn masquerade_maps_endpoint_independently_and_filters_by_session() {
    let mut r = nat_rig(100, 4096);
    let (v, f) = one(&mut r, 0, udp(H1, (IN, 4000), (SRV, 53)));
    assert_eq!(v, Verdict::Forward(1));
    // The port is kept where free (as Linux masquerade does).
    assert_eq!(tuple(&f), (PUB, 4000, SRV, 53));
    assert_eq!(&f[0..6], &NH_MAC);
    // The same inside endpoint to another server: the same mapping.
    let (_, f) = one(&mut r, 0, udp(H1, (IN, 4000), ([198, 19, 0, 6], 53)));
    assert_eq!(tuple(&f).1, 4000);
    // Another inside host on the same port: another public port.
    let (_, f) = one(&mut r, 0, udp(H2, (IN2, 4000), (SRV, 53)));
    let (src, p2, ..) = tuple(&f);
    assert_eq!(src, PUB);
    assert_ne!(p2, 4000);
    // Replies come back to each.
    let (v, f) = one(&mut r, 1, udp(NH_MAC, (SRV, 53), (PUB, 4000)));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(tuple(&f), (SRV, 53, IN, 4000));
    assert_eq!(&f[0..6], &H1);
    let (_, f) = one(&mut r, 1, udp(NH_MAC, (SRV, 53), (PUB, p2)));
    assert_eq!(tuple(&f), (SRV, 53, IN2, 4000));
    // A host the inside never sent to is not let in by the mapping.
    let (v, _) = one(&mut r, 1, udp(NH_MAC, ([198, 19, 0, 99], 53), (PUB, 4000)));
    assert_eq!(v, Verdict::Drop(DropReason::L3LocalDropped));
}

#[test]
fn tcp_and_echo_are_translated_both_ways() {
    let mut r = nat_rig(100, 4096);
    let (_, f) = one(&mut r, 0, tcp(H1, (IN, 33000), (SRV, 443), true));
    assert_eq!(tuple(&f), (PUB, 33000, SRV, 443));
    let (_, f) = one(&mut r, 1, tcp(NH_MAC, (SRV, 443), (PUB, 33000), false));
    assert_eq!(tuple(&f), (SRV, 443, IN, 33000));
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(H1, GW.0)
        .ipv4(IN, SRV, 64)
        .icmpv4_echo_request(77, 1)
        .write(&mut ping, b"abcdefgh")
        .unwrap();
    let (_, f) = one(&mut r, 0, ping);
    let (src, id, ..) = tuple(&f);
    assert_eq!((src, id), (PUB, 0x0800)); // type 8, code 0
    assert_eq!(u16::from_be_bytes([f[38], f[39]]), 77);
    let mut pong = Vec::new();
    PacketBuilder::ethernet2(NH_MAC, GW.0)
        .ipv4(SRV, PUB, 64)
        .icmpv4_echo_reply(77, 1)
        .write(&mut pong, b"abcdefgh")
        .unwrap();
    let (v, f) = one(&mut r, 1, pong);
    assert_eq!(v, Verdict::Forward(0));
    let _ = tuple(&f);
    assert_eq!(&f[30..34], &IN);
}

#[test]
fn published_ports_and_hairpin() {
    let mut r = nat_rig(100, 4096);
    let client = ([198, 19, 0, 7], 5555);
    let (v, f) = one(&mut r, 1, tcp(NH_MAC, client, (PUB, 8080), true));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(tuple(&f), (client.0, client.1, IN, 80));
    let (v, f) = one(&mut r, 0, tcp(H1, (IN, 80), client, false));
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(tuple(&f), (PUB, 8080, client.0, client.1));
    // Hairpin: an inside host at the public address and port reaches the
    // server through the gateway, as the gateway, and hears back from the
    // public address.
    let (v, f) = one(&mut r, 0, tcp(H2, (IN2, 6000), (PUB, 8080), true));
    assert_eq!(v, Verdict::Forward(0));
    let (src, p, dst, dport) = tuple(&f);
    assert_eq!((src, dst, dport), ([198, 18, 1, 1], IN, 80));
    assert_eq!(&f[0..6], &H1);
    let (_, f) = one(&mut r, 0, tcp(H1, (IN, 80), ([198, 18, 1, 1], p), false));
    assert_eq!(tuple(&f), (PUB, 8080, IN2, 6000));
    assert_eq!(&f[0..6], &H2);
    // Masquerade never hands out the published port.
    let (_, f) = one(&mut r, 0, tcp(H2, (IN2, 8080), (SRV, 80), true));
    assert_ne!(tuple(&f).1, 8080);
}

#[test]
fn icmp_errors_about_a_session_are_translated_back() {
    let mut r = nat_rig(100, 4096);
    let (_, out) = one(&mut r, 0, udp(H1, (IN, 4000), (SRV, 53)));
    // The next hop answers the translated packet with time exceeded.
    let mut err = Vec::new();
    let quote = &out[14..out.len()];
    PacketBuilder::ethernet2(NH_MAC, GW.0)
        .ipv4(NH, PUB, 64)
        .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
        ))
        .write(&mut err, quote)
        .unwrap();
    let (v, f) = one(&mut r, 1, err);
    assert_eq!(v, Verdict::Forward(0));
    let ip = &f[14..34];
    assert_eq!(csum::finish(csum::sum(ip)), 0);
    assert_eq!((&ip[12..16], &ip[16..20]), (&NH[..], &IN[..]));
    let icmp = &f[34..];
    assert_eq!(csum::finish(csum::sum(icmp)), 0, "ICMP checksum");
    // The quote is the packet as the inside host sent it (TTL aside).
    let q = &icmp[8..];
    assert_eq!(csum::finish(csum::sum(&q[..20])), 0, "quoted IPv4 checksum");
    assert_eq!(&q[12..16], &IN);
    assert_eq!(&q[16..20], &SRV);
    assert_eq!(u16::from_be_bytes([q[20], q[21]]), 4000);
    let pseudo = csum::sum(&q[12..20]) + 17 + (q.len() - 20) as u32;
    assert_eq!(csum::finish(pseudo + csum::sum(&q[20..])), 0, "quoted UDP");
}

#[test]
fn one_source_fills_only_its_share_and_expiry_gives_ports_back() {
    let mut r = nat_rig(4, 4096);
    let mut drops_seen = 0;
    for p in 0..10u16 {
        let (v, _) = one(&mut r, 0, udp(H1, (IN, 5000 + p), (SRV, 53)));
        if v == Verdict::Drop(DropReason::NatSourceLimit) {
            drops_seen += 1;
        }
    }
    assert_eq!(drops_seen, 6);
    // Another host still gets sessions.
    let (v, f) = one(&mut r, 0, udp(H2, (IN2, 5000), (SRV, 53)));
    assert_eq!(v, Verdict::Forward(1));
    assert_ne!(tuple(&f).1, 5000, "5000 is IN's mapping");
    // Past the UDP timeout the sweep frees them: the port comes back.
    let later = r.now + 121 * S;
    let nat = r.router.nat_mut().unwrap();
    let flows = r.flows.as_mut().unwrap();
    for _ in 0..8 {
        nat.maintain(flows, later);
    }
    assert_eq!(flows.stats.occupied, 0);
    r.now = later;
    let (_, f) = one(&mut r, 0, udp(H2, (IN2, 5000), (SRV, 53)));
    assert_eq!(tuple(&f).1, 5000);
}

#[test]
fn a_full_table_is_counted_and_nothing_leaves_untranslated() {
    let mut r = nat_rig(10_000, 64);
    let mut full = 0;
    for p in 0..200u16 {
        let (v, f) = one(&mut r, 0, udp(H1, (IN, 2000 + p), (SRV, 53)));
        match v {
            Verdict::Forward(1) => assert_eq!(tuple(&f).0, PUB),
            Verdict::Drop(DropReason::NatTableFull) => full += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(full > 100, "{full}");
}

/// `f` into worker `w` on `port`; a packet handed to another worker is
/// run there as a handed-over packet. The verdict, the bytes, and the
/// worker that finished it.
fn on_workers(rigs: &mut [Rig], w: usize, port: u16, f: Vec<u8>) -> (Verdict, Vec<u8>, usize) {
    let (v, b) = one(&mut rigs[w], port, f.clone());
    let Verdict::Handoff(to) = v else {
        return (v, b, w);
    };
    let to = to as usize;
    assert_ne!(to, w, "handed to itself");
    // The receiving worker gets the packet as it was handed over.
    rigs[to].router.set_handed(true);
    let (v, b) = one(&mut rigs[to], port, b);
    rigs[to].router.set_handed(false);
    assert!(!matches!(v, Verdict::Handoff(_)), "handed on again");
    (v, b, to)
}

#[test]
fn with_two_workers_every_packet_of_a_session_reaches_the_worker_holding_it() {
    let mut rigs: Vec<Rig> = (0..2)
        .map(|index| nat_rig_shared(1000, 4096, Share { index, of: 2 }))
        .collect();
    let mut holder = [None, None];
    for (h, (mac, ip)) in [(H1, IN), (H2, IN2)].into_iter().enumerate() {
        for k in 0..32u16 {
            let sport = 5000 + k;
            // Outgoing, entering either worker: every session of one
            // inside address is made on one worker.
            let (v, f, at) = on_workers(
                &mut rigs,
                (k % 2) as usize,
                0,
                udp(mac, (ip, sport), (SRV, 53)),
            );
            assert_eq!(v, Verdict::Forward(1));
            assert_eq!(*holder[h].get_or_insert(at), at, "{ip:?} sessions split");
            let (src, public, ..) = tuple(&f);
            assert_eq!(src, PUB);
            // The public port is of the holder's share.
            assert_eq!(public as usize % 2, at, "port {public}");
            // The reply, entering either worker, is translated back by
            // the holder.
            for first in 0..2 {
                let (v, f, by) =
                    on_workers(&mut rigs, first, 1, udp(NH_MAC, (SRV, 53), (PUB, public)));
                assert_eq!((v, by), (Verdict::Forward(0), at));
                assert_eq!(tuple(&f), (SRV, 53, ip, sport));
            }
        }
    }
    // A published port, from outside into either worker: one holder,
    // the inside host's; its answers entering either worker go there too.
    let mut published = None;
    for first in 0..2 {
        let (v, f, at) = on_workers(
            &mut rigs,
            first,
            1,
            tcp(NH_MAC, (SRV, 40000 + first as u16), (PUB, 8080), true),
        );
        assert_eq!(v, Verdict::Forward(0));
        assert_eq!(tuple(&f), (SRV, 40000 + first as u16, IN, 80));
        assert_eq!(*published.get_or_insert(at), at);
        for back in 0..2 {
            let (v, f, by) = on_workers(
                &mut rigs,
                back,
                0,
                tcp(H1, (IN, 80), (SRV, 40000 + first as u16), false),
            );
            assert_eq!((v, by), (Verdict::Forward(1), at));
            assert_eq!(tuple(&f), (PUB, 8080, SRV, 40000 + first as u16));
        }
    }
}

#[test]
fn show_nat_sessions_lists_what_the_worker_holds_when_asked() {
    let counters = Arc::new(NatCounters::default());
    let mut r = nat_rig_with(100, 4096, Share::WHOLE, counters.clone());
    let client = ([198, 19, 0, 7], 5555);
    one(&mut r, 0, udp(H1, (IN, 4000), (SRV, 53)));
    one(&mut r, 1, tcp(NH_MAC, client, (PUB, 8080), true));
    let now = r.now;
    let nat = r.router.nat_mut().unwrap();
    let flows = r.flows.as_mut().unwrap();
    // Unasked, housekeeping lists nothing; asked, only housekeeping
    // answers (the control path never reads the worker's table).
    nat.maintain(flows, now);
    assert!(counters.listing.take().is_none());
    counters.listing.ask(10);
    assert!(counters.listing.take().is_none());
    nat.maintain(flows, now);
    let mut l = counters.listing.take().expect("answered");
    l.sort_by_key(|s| s.proto);
    let t = |src: [u8; 4], sport, dst: [u8; 4], dport| Tuple4 {
        src,
        dst,
        sport,
        dport,
    };
    let got: Vec<_> = l.iter().map(|s| (s.proto, s.orig, s.translated)).collect();
    assert_eq!(
        got,
        vec![
            (6, t(client.0, 5555, PUB, 8080), t(client.0, 5555, IN, 80)),
            (17, t(IN, 4000, SRV, 53), t(PUB, 4000, SRV, 53)),
        ]
    );
    assert!(l.iter().all(|s| s.expires_in_ms > 0));
    // At most as many as asked for, and each request answered once.
    counters.listing.ask(1);
    nat.maintain(flows, now);
    assert_eq!(counters.listing.take().map(|l| l.len()), Some(1));
    nat.maintain(flows, now);
    assert!(counters.listing.take().is_none());
}

#[test]
fn tcp_mappings_are_endpoint_independent_too() {
    // RFC 5382 REQ-1: one inside endpoint keeps its mapping whatever the
    // server.
    let mut r = nat_rig(100, 4096);
    let (_, f) = one(&mut r, 0, tcp(H1, (IN, 4000), (SRV, 80), true));
    assert_eq!(tuple(&f), (PUB, 4000, SRV, 80));
    let other = [198, 19, 0, 6];
    let (_, f) = one(&mut r, 0, tcp(H1, (IN, 4000), (other, 443), true));
    assert_eq!(tuple(&f), (PUB, 4000, other, 443));
    let (v, f) = one(&mut r, 1, tcp(NH_MAC, (other, 443), (PUB, 4000), false));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(tuple(&f), (other, 443, IN, 4000));
}

#[test]
fn a_published_udp_port_reaches_the_inside_host_and_answers_come_back() {
    let mut r = nat_rig(100, 4096);
    let client = ([198, 19, 0, 7], 7777);
    let (v, f) = one(&mut r, 1, udp(NH_MAC, client, (PUB, 5353)));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(tuple(&f), (client.0, client.1, IN, 53));
    assert_eq!(&f[0..6], &H1);
    let (v, f) = one(&mut r, 0, udp(H1, (IN, 53), client));
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(tuple(&f), (PUB, 5353, client.0, client.1));
    // The TCP rule's port is not the UDP one's.
    let (v, _) = one(&mut r, 1, udp(NH_MAC, client, (PUB, 8080)));
    assert_ne!(v, Verdict::Forward(0));
}

#[test]
fn fragmentation_needed_through_nat_keeps_its_mtu_and_reaches_the_sender() {
    // Path MTU discovery through masquerade: the next hop's "fragmentation
    // needed" about the translated packet reaches the inside host about
    // its own packet, with the MTU it named.
    let mut r = nat_rig(100, 4096);
    let (_, out) = one(&mut r, 0, udp(H1, (IN, 4000), (SRV, 53)));
    let mut err = Vec::new();
    PacketBuilder::ethernet2(NH_MAC, GW.0)
        .ipv4(NH, PUB, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1200 },
        ))
        .write(&mut err, &out[14..])
        .unwrap();
    let (v, f) = one(&mut r, 1, err);
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(&f[0..6], &H1);
    let ip = &f[14..34];
    assert_eq!(csum::finish(csum::sum(ip)), 0);
    assert_eq!(&ip[16..20], &IN);
    let icmp = &f[34..];
    assert_eq!(csum::finish(csum::sum(icmp)), 0, "ICMP checksum");
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1200);
    let q = &icmp[8..];
    assert_eq!(csum::finish(csum::sum(&q[..20])), 0, "quoted IPv4 checksum");
    assert_eq!((&q[12..16], &q[16..20]), (&IN[..], &SRV[..]));
    assert_eq!(u16::from_be_bytes([q[20], q[21]]), 4000);
}

#[test]
fn a_rule_out_of_ports_refuses_new_sessions_and_counts_them() {
    let counters = Arc::new(NatCounters::default());
    let mut r = nat_rig_ports(100, 4096, Share::WHOLE, counters.clone(), (2000, 2003));
    let mut refused = 0;
    for p in 0..6u16 {
        let (v, f) = one(&mut r, 0, udp(H1, (IN, 6000 + p), (SRV, 53)));
        match v {
            Verdict::Forward(1) => assert!((2000..=2003).contains(&tuple(&f).1)),
            Verdict::Drop(DropReason::NatPortsExhausted) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 2, "four ports, six sessions");
    r.router.nat().unwrap().publish();
    assert_eq!(
        counters
            .ports_exhausted
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn a_later_fragment_to_masquerade_is_dropped_as_unsupported() {
    // No ports to translate it by, and no reassembly to find them.
    let mut r = nat_rig(100, 4096);
    let mut f = udp(H1, (IN, 4000), (SRV, 53));
    f[20..22].copy_from_slice(&16u16.to_be_bytes());
    f[24..26].fill(0);
    let c = csum::finish(csum::sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let (v, _) = one(&mut r, 0, f);
    assert_eq!(v, Verdict::Drop(DropReason::NatUnsupported));
}

/// A masquerade to a pool of four addresses on the uplink, none of them
/// the interface's own.
const POOL: [[u8; 4]; 4] = [
    [198, 18, 2, 100],
    [198, 18, 2, 101],
    [198, 18, 2, 102],
    [198, 18, 2, 103],
];

/// Masquerade of the inside /24 to `pool`.
fn pool_rules(pool: &[[u8; 4]]) -> Arc<NatRules> {
    Arc::new(NatRules {
        masquerade: vec![Masquerade {
            out: 1,
            sources: vec![([198, 18, 1, 0], 24)],
            pool: pool.to_vec(),
            ports: (1024, 65535),
            per_source: 100,
        }],
        publish: Vec::new(),
        hairpin_ports: (1024, 65535),
    })
}

fn pool_rig() -> Rig {
    let nat = Nat::new(pool_rules(&POOL), &[[198, 18, 1, 1]], 64, Arc::default());
    let mut r = rig_with_nat_addresses((nat, 4096), POOL.to_vec());
    let n = &r.routes.tables.neighbors;
    n.update(1, IpAddr::from(NH), Some(NH_MAC), true, 0, true);
    r.run(&[(1, arp_request(NH_MAC, NH, [198, 18, 2, 1]))]);
    r
}

#[test]
fn a_pool_gives_each_inside_host_one_address_and_the_router_answers_for_them() {
    let mut r = pool_rig();
    // 64 inside hosts, each to two servers from two ports: every session
    // of one host takes one address (paired pooling), and the hosts
    // spread over the whole pool.
    let mut by_host = Vec::new();
    for h in 0..64u8 {
        let ip = [198, 18, 1, 10 + h];
        let mut seen = Vec::new();
        for (k, srv) in [SRV, [198, 19, 0, 6]].into_iter().enumerate() {
            for sport in [4000, 4001] {
                let (v, f) = one(&mut r, 0, udp(H1, (ip, sport), (srv, 53 + k as u16)));
                assert_eq!(v, Verdict::Forward(1), "host {h}");
                let (src, port, dst, _) = tuple(&f);
                assert_eq!(dst, srv);
                seen.push((src, port));
            }
        }
        let a = seen[0].0;
        assert!(POOL.contains(&a), "{a:?}");
        assert!(seen.iter().all(|s| s.0 == a), "host {h}: {seen:?}");
        // Endpoint-independent: one port per inside port, whatever the
        // server.
        assert_eq!((seen[0].1, seen[1].1), (seen[2].1, seen[3].1));
        by_host.push((ip, a, seen[0].1));
    }
    for p in POOL {
        let n = by_host.iter().filter(|h| h.1 == p).count();
        assert!(n >= 4, "{p:?} took {n} of 64 hosts");
    }
    // A reply to each pool address reaches its host.
    for &(ip, a, port) in by_host.iter().take(8) {
        r.routes
            .tables
            .neighbors
            .update(0, IpAddr::from(ip), Some(H1), true, r.now, true);
        let (v, f) = one(&mut r, 1, udp(NH_MAC, (SRV, 53), (a, port)));
        assert_eq!(v, Verdict::Forward(0));
        assert_eq!(tuple(&f), (SRV, 53, ip, 4000));
    }
    // The uplink's router resolves the pool addresses to the gateway
    // (proxy ARP); an address outside the pool is flooded, not answered.
    let (out, _) = r.run(&[
        (1, arp_request(NH_MAC, NH, POOL[2])),
        (1, arp_request(NH_MAC, NH, [198, 18, 2, 99])),
    ]);
    let (v, f, _) = &out[0];
    assert_eq!(*v, Verdict::Forward(1));
    assert_eq!((&f[6..12], &f[22..28]), (&GW.0[..], &GW.0[..]));
    assert_eq!(&f[28..32], &POOL[2]);
    assert_eq!(out[1].0, Verdict::Flood(1));
    // With no session, a pool address is the router's own: echo is
    // answered and other traffic meets the input hook, not the uplink
    // it came from.
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(NH_MAC, GW.0)
        .ipv4(SRV, POOL[3], 64)
        .icmpv4_echo_request(9, 1)
        .write(&mut ping, b"pool")
        .unwrap();
    let (v, f) = one(&mut r, 1, ping);
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!((&f[26..30], &f[30..34], f[34]), (&POOL[3][..], &SRV[..], 0));
    let (v, _) = one(&mut r, 1, udp(NH_MAC, (SRV, 53), (POOL[0], 9)));
    assert_eq!(v, Verdict::Drop(DropReason::L3LocalDropped));
    // Start-up announces them with the interface's addresses.
    let announced: Vec<[u8; 4]> = r
        .router
        .announcements()
        .iter()
        .filter(|(d, f)| *d == 1 && f[12..14] == [8, 6])
        .map(|(_, f)| [f[28], f[29], f[30], f[31]])
        .collect();
    assert_eq!(announced[1..], POOL[..]);
}

#[test]
fn a_change_that_drops_pool_addresses_ends_their_sessions_only() {
    let mut r = pool_rig();
    let mut by_host = Vec::new();
    for h in 0..32u8 {
        let ip = [198, 18, 1, 10 + h];
        let (v, f) = one(&mut r, 0, udp(H1, (ip, 4000), (SRV, 53)));
        assert_eq!(v, Verdict::Forward(1));
        let (src, port, ..) = tuple(&f);
        r.routes
            .tables
            .neighbors
            .update(0, IpAddr::from(ip), Some(H1), true, r.now, true);
        by_host.push((ip, src, port));
    }
    // A reload keeps the first two pool addresses.
    let kept = &POOL[..2];
    let counters = r.router.nat().unwrap().counters();
    let new = Nat::new(pool_rules(kept), &[[198, 18, 1, 1]], 64, counters.clone());
    let old = std::mem::replace(r.router.nat_mut().unwrap(), new);
    r.router.nat_mut().unwrap().carry_over(old);
    // Housekeeping ends the dropped addresses' sessions and, over its
    // sweeps, gives back what they held.
    for _ in 0..8 {
        let now = r.now;
        let flows = r.flows.as_mut().unwrap();
        r.router.nat_mut().unwrap().maintain(flows, now);
    }
    r.router.nat().unwrap().publish();
    let on_kept = by_host.iter().filter(|h| kept.contains(&h.1)).count() as u64;
    assert!(on_kept > 0 && on_kept < 32, "{on_kept}");
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&counters.sessions), on_kept);
    assert_eq!(load(&counters.ports_used), on_kept);
    // The kept addresses' sessions go on; the others' replies find none.
    for &(ip, a, port) in &by_host {
        let (v, f) = one(&mut r, 1, udp(NH_MAC, (SRV, 53), (a, port)));
        if kept.contains(&a) {
            assert_eq!(v, Verdict::Forward(0));
            assert_eq!(tuple(&f), (SRV, 53, ip, 4000));
        } else {
            assert_ne!(v, Verdict::Forward(0), "{a:?}:{port}");
        }
    }
}
