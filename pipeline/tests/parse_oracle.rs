//! The parser against `etherparse` as an independent oracle: random valid
//! frames must give the same offsets and fields; random bytes must never
//! panic and must always end in a verdict.

use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader,
    NetSlice, PacketBuilder, SlicedPacket, VlanId, VlanSlice,
};
use pollgate_pipeline::batch::flags;
use pollgate_pipeline::{parse_frame, Batch, DropCounters, Parse, Stage, Verdict};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum L4 {
    Udp(u16, u16),
    Tcp(u16, u16, u32),
    Icmp(u16, u16),
}

#[derive(Debug, Clone)]
struct Spec {
    tags: Vec<(u16, u16)>, // (TPID, TCI)
    v6: bool,
    ipv4_options: usize, // words of options
    ipv6_ext: bool,
    l4: L4,
    payload: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let tpid = prop_oneof![Just(0x8100u16), Just(0x88a8), Just(0x9100)];
    let tag = (tpid, 1u16..4095, 0u16..8, any::<bool>())
        .prop_map(|(t, vid, pcp, dei)| (t, (pcp << 13) | ((dei as u16) << 12) | vid));
    let l4 = prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| L4::Udp(a, b)),
        (any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(a, b, s)| L4::Tcp(a, b, s)),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| L4::Icmp(a, b)),
    ];
    (
        prop::collection::vec(tag, 0..=2),
        any::<bool>(),
        0usize..=10,
        any::<bool>(),
        l4,
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(tags, v6, ipv4_options, ipv6_ext, l4, payload)| Spec {
            tags,
            v6,
            ipv4_options,
            ipv6_ext,
            l4,
            payload,
        })
}

fn build(s: &Spec) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([0x02, 1, 2, 3, 4, 5], [0x06, 7, 8, 9, 10, 11]);
    let ip = if s.v6 {
        let mut ext = Ipv6Extensions::default();
        if s.ipv6_ext {
            ext.hop_by_hop_options =
                Some(Ipv6RawExtHeader::new_raw(IpNumber(0), &[1, 4, 0, 0, 0, 0]).unwrap());
            ext.destination_options =
                Some(Ipv6RawExtHeader::new_raw(IpNumber(0), &[0x5a; 14]).unwrap());
        }
        let h = Ipv6Header {
            traffic_class: 0x2e,
            flow_label: 0x12345.try_into().unwrap(),
            hop_limit: 61,
            source: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            destination: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            ..Default::default()
        };
        IpHeaders::Ipv6(h, ext)
    } else {
        let mut h =
            Ipv4Header::new(0, 64, IpNumber::UDP, [198, 18, 0, 1], [198, 19, 0, 1]).unwrap();
        let opts = vec![1u8; s.ipv4_options * 4]; // NOPs
        h.options = Ipv4Options::try_from(&opts[..]).unwrap();
        IpHeaders::Ipv4(h, Default::default())
    };
    let mut out = Vec::new();
    let v = |tci: u16| VlanId::try_new(tci & 0x0fff).unwrap();
    macro_rules! finish {
        ($step:expr) => {{
            let step = $step.ip(ip);
            match s.l4 {
                L4::Udp(a, b) => step.udp(a, b).write(&mut out, &s.payload).unwrap(),
                L4::Tcp(a, b, seq) => step
                    .tcp(a, b, seq, 4096)
                    .write(&mut out, &s.payload)
                    .unwrap(),
                L4::Icmp(id, seq) if s.v6 => step
                    .icmpv6_echo_request(id, seq)
                    .write(&mut out, &s.payload)
                    .unwrap(),
                L4::Icmp(id, seq) => step
                    .icmpv4_echo_request(id, seq)
                    .write(&mut out, &s.payload)
                    .unwrap(),
            }
        }};
    }
    match s.tags.len() {
        0 => finish!(eth),
        1 => finish!(eth.single_vlan(v(s.tags[0].1))),
        _ => finish!(eth.double_vlan(v(s.tags[0].1), v(s.tags[1].1))),
    }
    // The builder writes its own TPIDs and zero PCP/DEI: put ours in.
    for (i, (tpid, tci)) in s.tags.iter().enumerate() {
        let at = 12 + 4 * i;
        out[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&tci.to_be_bytes());
    }
    out
}

fn offset(base: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - base.as_ptr() as usize
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_frames_match_etherparse(s in spec()) {
        let frame = build(&s);
        let oracle = SlicedPacket::from_ethernet(&frame).expect("oracle parses what it built");
        let p = parse_frame(&frame).expect("valid frame parses");

        let oracle_tags = match &oracle.vlan {
            None => 0,
            Some(VlanSlice::SingleVlan(_)) => 1,
            Some(VlanSlice::DoubleVlan(_)) => 2,
        };
        prop_assert_eq!(p.tags as usize, oracle_tags);
        match &oracle.vlan {
            Some(VlanSlice::SingleVlan(t)) => {
                prop_assert_eq!(p.outer_tci & 0x0fff, t.vlan_identifier().value());
                prop_assert_eq!((p.outer_tci >> 13) as u8, t.priority_code_point().value());
                prop_assert_eq!(p.outer_tci & 0x1000 != 0, t.drop_eligible_indicator());
            }
            Some(VlanSlice::DoubleVlan(d)) => {
                prop_assert_eq!(p.outer_tci & 0x0fff, d.outer().vlan_identifier().value());
                prop_assert_eq!(p.inner_tci & 0x0fff, d.inner().vlan_identifier().value());
                prop_assert_eq!((p.inner_tci >> 13) as u8, d.inner().priority_code_point().value());
            }
            None => {}
        }
        if let Some((tpid, _)) = s.tags.first() {
            prop_assert_eq!(p.outer_tpid, *tpid);
        }

        let (l3, l4, proto) = match oracle.net.as_ref().expect("net layer") {
            NetSlice::Ipv4(ip) => {
                prop_assert!(p.flags & flags::IPV4 != 0);
                prop_assert_eq!(p.ethertype, 0x0800);
                (offset(&frame, ip.header().slice()), offset(&frame, ip.payload().payload), ip.payload().ip_number)
            }
            NetSlice::Ipv6(ip) => {
                prop_assert!(p.flags & flags::IPV6 != 0);
                prop_assert_eq!(p.ethertype, 0x86dd);
                (offset(&frame, ip.header().slice()), offset(&frame, ip.payload().payload), ip.payload().ip_number)
            }
        };
        prop_assert_eq!(p.l3_off as usize, l3);
        prop_assert!(p.flags & flags::L4 != 0);
        prop_assert_eq!(p.l4_off as usize, l4);
        prop_assert_eq!(p.l4_proto, proto.0);
        prop_assert!(oracle.transport.is_some());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_frame(&bytes);
    }

    /// Random bytes behind a plausible Ethernet/VLAN/IP prefix reach the
    /// deeper checks; the stage must give every packet a verdict or parse it.
    #[test]
    fn random_tails_end_in_a_verdict(
        et in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), Just(0x88a8)],
        tail in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut mem = vec![0u8; 12];
        mem.extend_from_slice(&et.to_be_bytes());
        if et == 0x0800 || et == 0x86dd {
            mem.push(if et == 0x0800 { 0x45 } else { 0x60 });
        }
        mem.extend_from_slice(&tail);
        let mut b = Batch::new();
        b.push(0, mem.len() as u32, 0, 0);
        let mut drops = DropCounters::default();
        Parse.process(&mut b, &mut mem, &mut drops);
        match b.verdict[0] {
            Verdict::Pending => prop_assert!(b.flags[0] & flags::PARSED != 0),
            Verdict::Drop(r) => prop_assert_eq!(drops.get(r), 1),
            v => prop_assert!(false, "unexpected verdict {:?}", v),
        }
    }
}
