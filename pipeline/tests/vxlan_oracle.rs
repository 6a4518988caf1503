//! VXLAN encapsulation against `etherparse` as an independent oracle, the
//! decap stage on what encap wrote, and malformed tunnels landing on their
//! named counters.

use etherparse::{Ipv4HeaderSlice, SlicedPacket, TransportSlice};
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::vxlan::{encap, Decap, Encap, Vtep, VtepConfig, OVERHEAD, TUNNEL_BASE};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, DropCounters, DropReason, Parse, Stage, Verdict};
use proptest::prelude::*;

const LOCAL: [u8; 4] = [198, 18, 100, 1];
const UNDERLAY: u16 = 3;

fn vtep(ip: [u8; 4], ttl: u8, df: bool, vni: u32) -> Vtep {
    Vtep::new(VtepConfig {
        port: UNDERLAY,
        ip,
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        udp_port: 4789,
        ttl,
        df,
        mtu: 9000,
        gateway: None,
        vnis: vec![(vni, 0)],
        domains: 1,
        kernel_neighbors: false,
    })
}

/// `inner` encapsulated by `v` for remote `remote` (resolved to `rmac`).
fn encapsulate(v: &Vtep, remote: [u8; 4], rmac: MacAddr, inner: &[u8]) -> Vec<u8> {
    let r = v.remote_or_insert(remote).unwrap();
    v.learn_neighbor(remote, rmac);
    let mut mem = vec![0u8; OVERHEAD];
    mem.extend_from_slice(inner);
    let (a, n, h) = encap(
        &mut mem,
        v,
        (OVERHEAD as u64, inner.len() as u32, OVERHEAD as u16),
        0,
        r,
        0,
        7,
    )
    .unwrap();
    assert_eq!((a, n as usize, h), (0, inner.len() + OVERHEAD, 0));
    mem
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn encapsulated_frames_parse_in_etherparse(
        size in 60usize..1400,
        vni in 1u32..=0xff_ffff,
        ttl in 1u8..=255,
        df in any::<bool>(),
        remote in any::<[u8; 4]>().prop_filter("not 0.0.0.0", |a| *a != [0; 4]),
        macs in any::<([u8; 6], [u8; 6])>(),
        ports in any::<(u16, u16)>(),
    ) {
        let v = vtep(LOCAL, ttl, df, vni);
        let inner = udp4_frame(size, MacAddr(macs.0), MacAddr(macs.1), [198, 18, 50, 1], [198, 18, 50, 2], ports.0, ports.1, b"x");
        let rmac = MacAddr([2, 0, 0, 0, 0, 9]);
        let f = encapsulate(&v, remote, rmac, &inner);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let eth = p.link.as_ref().and_then(|l| l.to_header()).unwrap();
        let eth = match eth { etherparse::LinkHeader::Ethernet2(e) => e, _ => panic!("not Ethernet II") };
        prop_assert_eq!(eth.destination, rmac.0);
        prop_assert_eq!(eth.source, [2, 0, 0, 0, 0, 1]);
        let ip = Ipv4HeaderSlice::from_slice(&f[14..]).unwrap().to_header();
        prop_assert_eq!(ip.source, LOCAL);
        prop_assert_eq!(ip.destination, remote);
        prop_assert_eq!(ip.time_to_live, ttl);
        prop_assert_eq!(ip.dont_fragment, df);
        prop_assert_eq!(ip.total_len as usize, f.len() - 14);
        prop_assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        let udp = match p.transport { Some(TransportSlice::Udp(u)) => u.to_header(), _ => panic!("not UDP") };
        prop_assert_eq!(udp.destination_port, 4789);
        prop_assert!(udp.source_port >= 0xc000, "source port in the dynamic range");
        prop_assert_eq!(udp.length as usize, f.len() - 34);
        prop_assert_eq!(udp.checksum, 0);
        prop_assert_eq!(f[42], 0x08, "only the I flag");
        prop_assert_eq!(&f[43..46], &[0, 0, 0]);
        prop_assert_eq!(u32::from_be_bytes([0, f[46], f[47], f[48]]), vni);
        prop_assert_eq!(f[49], 0);
        prop_assert_eq!(&f[50..], &inner[..]);
        // The inner frame parses too, and the source port depends on the
        // flow only: the same flow with another TTL gets the same port.
        let mut other = inner.clone();
        other[22] = other[22].wrapping_add(1);
        let g = encapsulate(&v, remote, rmac, &other);
        prop_assert_eq!(&g[34..36], &f[34..36]);
    }

    #[test]
    fn decap_restores_the_inner_frame(size in 60usize..1400, vni in 1u32..=0xff_ffff) {
        // The remote encapsulates towards us; our decap gets the inner
        // frame back, in VNI's domain, from the remote's tunnel port.
        let remote = vtep([198, 18, 100, 2], 64, true, vni);
        let inner = udp4_frame(size, MacAddr([2, 0, 0, 0, 0, 0x99]), MacAddr([2, 0, 0, 0, 0, 2]), [198, 18, 50, 2], [198, 18, 50, 1], 1, 2, b"y");
        let f = encapsulate(&remote, LOCAL, MacAddr([2, 0, 0, 0, 0, 1]), &inner);
        let ours = vtep(LOCAL, 64, true, vni);
        let (batch, mem, drops) = run_decap(&ours, &f);
        prop_assert_eq!(batch.verdict[0], Verdict::Pending);
        prop_assert_eq!(drops.total(), 0);
        let r = ours.remote([198, 18, 100, 2]).unwrap();
        prop_assert_eq!(batch.in_port[0], TUNNEL_BASE + r as u16);
        prop_assert_eq!(batch.domain[0], 0);
        let (a, n) = (batch.addr[0] as usize, batch.data_len[0] as usize);
        prop_assert_eq!(&mem[a..a + n], &inner[..]);
        prop_assert_eq!(batch.l3_off[0], 14);
        prop_assert_eq!(batch.l4_proto[0], 17);
    }
}

fn run_decap(v: &Vtep, frame: &[u8]) -> (Batch, Vec<u8>, DropCounters) {
    let mut mem = vec![0u8; 256];
    mem.extend_from_slice(frame);
    let mut batch = Batch::new();
    batch.push(256, frame.len() as u32, 256, UNDERLAY);
    let mut drops = DropCounters::default();
    Parse.process(&mut batch, &mut mem, &mut drops);
    Decap { vtep: v }.process(&mut batch, &mut mem, &mut drops);
    (batch, mem, drops)
}

#[test]
fn malformed_tunnels_land_on_named_counters() {
    let remote = vtep([198, 18, 100, 2], 64, true, 5000);
    let inner = udp4_frame(
        60,
        MacAddr([2, 0, 0, 0, 0, 0x99]),
        MacAddr([2, 0, 0, 0, 0, 2]),
        [198, 18, 50, 2],
        [198, 18, 50, 1],
        1,
        2,
        b"",
    );
    let good = encapsulate(&remote, LOCAL, MacAddr([2, 0, 0, 0, 0, 1]), &inner);
    let ours = vtep(LOCAL, 64, true, 5000);
    let fix_udp_len = |f: &mut Vec<u8>| {
        let ip_len = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = pollgate_pipeline::wire::ipv4::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    };
    let mut short = good[..50 + 10].to_vec();
    fix_udp_len(&mut short);
    let mut no_i = good.clone();
    no_i[42] = 0;
    let mut other_port = good.clone();
    other_port[36..38].copy_from_slice(&4790u16.to_be_bytes());
    let mut unknown_vni = good.clone();
    unknown_vni[46..49].copy_from_slice(&[0, 0, 7]);
    let mut not_ours = good.clone();
    not_ours[30..34].copy_from_slice(&[198, 18, 100, 9]);
    fix_udp_len(&mut not_ours);
    let mut reserved = good.clone();
    reserved[43..46].copy_from_slice(&[0xff, 0xff, 0xff]);
    reserved[49] = 0xff;
    let plain = udp4_frame(
        60,
        MacAddr([2, 0, 0, 0, 0, 7]),
        MacAddr([2, 0, 0, 0, 0, 1]),
        [198, 18, 100, 2],
        LOCAL,
        5,
        53,
        b"",
    );
    let mut arp = vec![0u8; 60];
    pollgate_pipeline::wire::arp::emit_frame(
        &mut arp,
        MacAddr([2, 0, 0, 0, 0, 7]),
        [198, 18, 100, 2],
        None,
        LOCAL,
    );
    for (name, frame, want) in [
        ("short", &short, Verdict::Drop(DropReason::VxlanTruncated)),
        ("no I flag", &no_i, Verdict::Drop(DropReason::VxlanBadFlags)),
        (
            "port 4790",
            &other_port,
            Verdict::Drop(DropReason::VxlanNotForUs),
        ),
        (
            "unknown VNI",
            &unknown_vni,
            Verdict::Drop(DropReason::VxlanUnknownVni),
        ),
        (
            "another VTEP's address",
            &not_ours,
            Verdict::Drop(DropReason::VxlanNotForUs),
        ),
        (
            "plain UDP",
            &plain,
            Verdict::Drop(DropReason::VxlanNotForUs),
        ),
        ("reserved bits set", &reserved, Verdict::Pending),
        ("ARP", &arp, Verdict::Local),
    ] {
        let (batch, _, drops) = run_decap(&ours, frame);
        assert_eq!(batch.verdict[0], want, "{name}");
        if let Verdict::Drop(r) = want {
            assert_eq!(drops.get(r), 1, "{name} counted on {}", r.name());
        }
    }
}

#[test]
fn arp_for_our_address_is_answered_in_place() {
    let ours = vtep(LOCAL, 64, true, 5000);
    let asker = MacAddr([2, 0, 0, 0, 0, 7]);
    let mut f = vec![0u8; 60];
    pollgate_pipeline::wire::arp::emit_frame(&mut f, asker, [198, 18, 100, 2], None, LOCAL);
    assert_eq!(ours.handle_arp(&mut f), Some(60));
    let a = pollgate_pipeline::wire::arp::ArpPacket::new_checked(&f[14..]).unwrap();
    assert_eq!(a.operation(), pollgate_pipeline::wire::arp::OP_REPLY);
    assert_eq!((a.sender_ip(), a.target_ip()), (LOCAL, [198, 18, 100, 2]));
    assert_eq!(&f[0..6], &asker.0);
    // Not for us: nothing to send.
    pollgate_pipeline::wire::arp::emit_frame(
        &mut f,
        asker,
        [198, 18, 100, 2],
        None,
        [198, 18, 100, 9],
    );
    assert_eq!(ours.handle_arp(&mut f), None);
}

/// A jumbo inner frame of which only the first 1792 bytes are in the
/// first frame: encap counts the chained tail in the outer lengths (and
/// refuses it past the underlay MTU); decap of the result parses the
/// inner headers against the whole length and keeps the tail.
#[test]
fn a_multi_buffer_frame_is_encapsulated_and_decapsulated_by_its_first_frame() {
    const HEAD: usize = 1792;
    let remote = vtep([198, 18, 100, 2], 64, true, 77);
    let r = remote.remote_or_insert(LOCAL).unwrap();
    remote.learn_neighbor(LOCAL, MacAddr([2, 0, 0, 0, 0, 1]));
    let inner = udp4_frame(
        8964,
        MacAddr([2, 0, 0, 0, 0, 0x99]),
        MacAddr([2, 0, 0, 0, 0, 2]),
        [198, 18, 50, 2],
        [198, 18, 50, 1],
        1,
        2,
        b"",
    );
    let tail = (inner.len() - HEAD) as u32;
    let mut mem = vec![0u8; OVERHEAD];
    mem.extend_from_slice(&inner[..HEAD]);
    let at = (OVERHEAD as u64, HEAD as u32, OVERHEAD as u16);
    let (a, n, _) = encap(&mut mem, &remote, at, tail, r, 0, 7).unwrap();
    assert_eq!((a, n as usize), (0, HEAD + OVERHEAD));
    let ip = Ipv4HeaderSlice::from_slice(&mem[14..34]).unwrap();
    assert_eq!(ip.total_len() as usize, inner.len() + OVERHEAD - 14);
    assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
    let udp_len = u16::from_be_bytes([mem[38], mem[39]]) as usize;
    assert_eq!(udp_len, inner.len() + OVERHEAD - 34);
    // 9000 bytes of IP: one more byte of tail is past the underlay MTU.
    let mut again = vec![0u8; OVERHEAD];
    again.extend_from_slice(&inner[..HEAD]);
    assert_eq!(
        encap(&mut again, &remote, at, tail + 1, r, 0, 7),
        Err(DropReason::VxlanTooBig)
    );

    // Our side: the outer frame's first 1842 bytes and the same tail.
    let ours = vtep(LOCAL, 64, true, 77);
    let mut frame = vec![0u8; 256];
    frame.extend_from_slice(&mem);
    let mut batch = Batch::new();
    batch.push(256, mem.len() as u32, 256, UNDERLAY);
    batch.tail_len[0] = tail;
    let mut drops = DropCounters::default();
    Parse.process(&mut batch, &mut frame, &mut drops);
    Decap { vtep: &ours }.process(&mut batch, &mut frame, &mut drops);
    assert_eq!((batch.verdict[0], drops.total()), (Verdict::Pending, 0));
    assert_eq!(batch.data_len[0] as usize, HEAD);
    assert_eq!(batch.tail_len[0], tail);
    assert_eq!(batch.l4_proto[0], 17);
    let a = batch.addr[0] as usize;
    assert_eq!(&frame[a..a + HEAD], &inner[..HEAD]);
}

/// The encap stage builds a remote's headers once for a run of packets:
/// a burst that switches between remotes, VNIs, an unresolved remote and
/// a domain without a VNI gets, packet by packet, what encapsulating
/// that packet alone gives.
#[test]
fn a_burst_to_mixed_remotes_gets_each_packets_own_headers() {
    const SLOT: usize = 256;
    let mut v = vtep(LOCAL, 64, false, 100);
    v = Vtep::new(VtepConfig {
        vnis: vec![(100, 0), (200, 1)],
        domains: 3,
        ..v.cfg.clone()
    });
    let (a, b, c) = ([198, 18, 100, 2], [198, 18, 100, 3], [198, 18, 100, 4]);
    let ra = v.remote_or_insert(a).unwrap();
    let rb = v.remote_or_insert(b).unwrap();
    let rc = v.remote_or_insert(c).unwrap();
    v.learn_neighbor(a, MacAddr([2, 0, 0, 0, 0, 0xa]));
    v.learn_neighbor(b, MacAddr([2, 0, 0, 0, 0, 0xb]));
    // (remote, domain): c never resolves; domain 2 has no VNI.
    let sends = [
        (ra, 0),
        (ra, 0),
        (rb, 0),
        (ra, 1),
        (rc, 0),
        (ra, 2),
        (ra, 0),
        (rb, 1),
        (rb, 1),
    ];
    let mut mem = vec![0u8; SLOT * sends.len()];
    let mut batch = Batch::new();
    let mut inners = Vec::new();
    for (k, &(r, d)) in sends.iter().enumerate() {
        let inner = udp4_frame(
            60 + 7 * k,
            MacAddr([2, 0, 0, 0, 1, k as u8]),
            MacAddr([2, 0, 0, 0, 2, k as u8]),
            [198, 18, 50, k as u8],
            [198, 18, 51, k as u8],
            1000 + k as u16,
            2000,
            b"",
        );
        let at = SLOT * k + OVERHEAD;
        mem[at..at + inner.len()].copy_from_slice(&inner);
        batch.push(at as u64, inner.len() as u32, OVERHEAD as u16, 0);
        batch.verdict[k] = Verdict::Forward(TUNNEL_BASE + r as u16);
        batch.domain[k] = d;
        inners.push(inner);
    }
    let mut ip_id = 41u16;
    let mut drops = DropCounters::default();
    Encap {
        vtep: &v,
        ip_id: &mut ip_id,
    }
    .process(&mut batch, &mut mem, &mut drops);
    assert_eq!(ip_id, 41 + sends.len() as u16);
    for (k, &(r, d)) in sends.iter().enumerate() {
        let mut alone = vec![0u8; OVERHEAD];
        alone.extend_from_slice(&inners[k]);
        let at = (OVERHEAD as u64, inners[k].len() as u32, OVERHEAD as u16);
        match encap(&mut alone, &v, at, 0, r, d, 42 + k as u16) {
            Ok((_, n, _)) => {
                assert_eq!(batch.verdict[k], Verdict::Forward(UNDERLAY), "packet {k}");
                let got = batch.addr[k] as usize;
                assert_eq!(&mem[got..got + n as usize], &alone[..], "packet {k}");
                let ip = Ipv4HeaderSlice::from_slice(&alone[14..34]).unwrap();
                assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
            }
            Err(e) => assert_eq!(batch.verdict[k], Verdict::Drop(e), "packet {k}"),
        }
    }
    assert_eq!(drops.get(DropReason::VxlanNoNeighbor), 1);
    assert_eq!(drops.get(DropReason::VxlanUnknownVni), 1);
}

/// A burst from several remote VTEPs, one of them new: each packet comes
/// in on its own remote's tunnel port, and the new on-link remote's MAC
/// is learnt from its packet (decap keeps the last remote for a run of
/// packets from it, only once its next hop is known).
#[test]
fn a_burst_from_mixed_remotes_keeps_each_packets_remote() {
    const SLOT: usize = 512;
    let (a, b) = ([198, 18, 100, 2], [198, 18, 100, 3]);
    let remote = |ip: [u8; 4], mac: u8| {
        Vtep::new(VtepConfig {
            mac: MacAddr([2, 0, 0, 0, 9, mac]),
            ..vtep(ip, 64, false, 77).cfg.clone()
        })
    };
    let (ra, rb) = (remote(a, 0xa), remote(b, 0xb));
    let ours = vtep(LOCAL, 64, false, 77);
    // a is known and resolved already; b is met in this burst.
    let slot_a = ours.remote_or_insert(a).unwrap();
    ours.learn_neighbor(a, MacAddr([2, 0, 0, 0, 9, 0xa]));
    let from = [&ra, &ra, &rb, &ra, &rb, &rb, &ra];
    let mut mem = vec![0u8; SLOT * from.len()];
    let mut batch = Batch::new();
    for (k, v) in from.iter().enumerate() {
        let inner = udp4_frame(
            60 + k,
            MacAddr([2, 0, 0, 0, 1, k as u8]),
            MacAddr([2, 0, 0, 0, 2, k as u8]),
            [198, 18, 50, 1],
            [198, 18, 51, 1],
            1,
            2,
            b"",
        );
        let f = encapsulate(v, LOCAL, MacAddr([2, 0, 0, 0, 0, 1]), &inner);
        let at = SLOT * k + 128;
        mem[at..at + f.len()].copy_from_slice(&f);
        batch.push(at as u64, f.len() as u32, 128, UNDERLAY);
    }
    let mut drops = DropCounters::default();
    Parse.process(&mut batch, &mut mem, &mut drops);
    Decap { vtep: &ours }.process(&mut batch, &mut mem, &mut drops);
    assert_eq!(drops.total(), 0);
    let slot_b = ours.remote(b).unwrap();
    assert_ne!(slot_a, slot_b);
    for (k, v) in from.iter().enumerate() {
        let want = if v.cfg.ip == a { slot_a } else { slot_b };
        assert_eq!(batch.verdict[k], Verdict::Pending, "packet {k}");
        assert_eq!(batch.in_port[k], TUNNEL_BASE + want as u16, "packet {k}");
    }
    assert_eq!(
        ours.next_hop_mac(slot_b),
        Some(MacAddr([2, 0, 0, 0, 9, 0xb]))
    );
    assert_eq!(
        ours.next_hop_mac(slot_a),
        Some(MacAddr([2, 0, 0, 0, 9, 0xa]))
    );
}
