//! The VLAN stage as a table: ingress mode × frame tagging → domain or a
//! named drop; egress mode → exact output bytes. Then a property test:
//! every frame the egress writes parses in etherparse to the tags expected.

use etherparse::{SlicedPacket, VlanSlice};
use pollgate_pipeline::vlan::{
    push_tags, EgressTag, L2cp, PortVlan, VlanIngress, VlanMap, VlanMode,
};
use pollgate_pipeline::{Batch, DomainId, DropCounters, DropReason, Parse, PortId, Stage, Verdict};
use proptest::prelude::*;

const ACCESS: PortId = 0;
const TRUNK: PortId = 1; // 10 -> d0, 20 -> d1, native -> d2
const TRUNK_NO_NATIVE: PortId = 2; // 10 -> d0
const QINQ: PortId = 3; // S100 -> d0 (C carried), (S200, C5) -> d1
const QINQ_9100: PortId = 4; // TPID 0x9100, S300 -> d2
const CUSTOMER: PortId = 5; // dot1q-tunnel into d0's service (S100 on QINQ), L2CP dropped, default PCP 3
const CUSTOMER_L2CP: PortId = 6; // dot1q-tunnel into d0, L2CP tunnelled

fn map() -> VlanMap {
    let mut m = VlanMap::new(7, 3);
    let mut a = PortVlan::new(VlanMode::Access, 0x8100);
    a.untagged = 0;
    m.set_port(ACCESS, a);
    m.set_egress(0, ACCESS, EgressTag::Untagged);
    let mut t = PortVlan::new(VlanMode::Trunk, 0x8100);
    t.map_vid(10, 0);
    t.map_vid(20, 1);
    t.untagged = 2;
    m.set_port(TRUNK, t);
    m.set_egress(
        0,
        TRUNK,
        EgressTag::Push {
            tpid: 0x8100,
            vid: 10,
        },
    );
    m.set_egress(
        1,
        TRUNK,
        EgressTag::Push {
            tpid: 0x8100,
            vid: 20,
        },
    );
    m.set_egress(2, TRUNK, EgressTag::Untagged);
    let mut t2 = PortVlan::new(VlanMode::Trunk, 0x8100);
    t2.map_vid(10, 0);
    m.set_port(TRUNK_NO_NATIVE, t2);
    m.set_egress(
        0,
        TRUNK_NO_NATIVE,
        EgressTag::Push {
            tpid: 0x8100,
            vid: 10,
        },
    );
    let mut q = PortVlan::new(VlanMode::QinQ, 0x88a8);
    q.map_vid(100, 0);
    q.map_pair(200, 5, 1);
    m.set_port(QINQ, q);
    m.set_egress(
        0,
        QINQ,
        EgressTag::Push {
            tpid: 0x88a8,
            vid: 100,
        },
    );
    m.set_egress(
        1,
        QINQ,
        EgressTag::PushPair {
            tpid: 0x88a8,
            svid: 200,
            cvid: 5,
        },
    );
    let mut q2 = PortVlan::new(VlanMode::QinQ, 0x9100);
    q2.map_vid(300, 2);
    m.set_port(QINQ_9100, q2);
    for (port, l2cp, pcp) in [(CUSTOMER, L2cp::Drop, 3), (CUSTOMER_L2CP, L2cp::Tunnel, 0)] {
        let mut c = PortVlan::new(VlanMode::Tunnel, 0x8100);
        c.untagged = 0;
        c.l2cp = l2cp;
        c.default_pcp = pcp;
        m.set_port(port, c);
        m.set_egress(0, port, EgressTag::Customer);
    }
    m.set_egress(
        2,
        QINQ_9100,
        EgressTag::Push {
            tpid: 0x9100,
            vid: 300,
        },
    );
    m
}

/// An IPv4/UDP frame with the given (TPID, TCI) tags after the MACs.
fn frame(tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = vec![
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x66, 0x77, 0x88, 0x99, 0xaa,
    ];
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[
        0x08, 0x00, 0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 1,
    ]);
    f.extend_from_slice(&[0x30, 0x39, 0x12, 0xb5, 0, 12, 0, 0, 1, 2, 3, 4]);
    f
}

const HEADROOM: usize = 64;

/// A frame's tags: (TPID, TCI) from the outside in.
type Tags = &'static [(u16, u16)];

/// Runs parse + VLAN ingress on one frame; returns the verdict, the
/// domain, and the frame bytes as they are after the stage.
fn ingress(port: PortId, f: &[u8]) -> (Verdict, DomainId, Vec<u8>, u16) {
    let m = map();
    let mut mem = vec![0u8; HEADROOM];
    mem.extend_from_slice(f);
    let mut b = Batch::new();
    b.push(HEADROOM as u64, f.len() as u32, HEADROOM as u16, port);
    let mut drops = DropCounters::default();
    Parse.process(&mut b, &mut mem, &mut drops);
    VlanIngress { map: &m }.process(&mut b, &mut mem, &mut drops);
    if let Verdict::Drop(r) = b.verdict[0] {
        assert_eq!(drops.get(r), 1, "the drop is counted under its reason");
    }
    let (a, l) = (b.addr[0] as usize, b.data_len[0] as usize);
    (b.verdict[0], b.domain[0], mem[a..a + l].to_vec(), b.prio[0])
}

const C10: (u16, u16) = (0x8100, 0xa00a); // PCP 5, VID 10
const C20: (u16, u16) = (0x8100, 0x2014); // PCP 1, VID 20
const C30: (u16, u16) = (0x8100, 0x001e);
const PRIO: (u16, u16) = (0x8100, 0xe000); // PCP 7, VID 0
const S100: (u16, u16) = (0x88a8, 0x6064); // PCP 3, VID 100
const S200: (u16, u16) = (0x88a8, 0x00c8);
const S999: (u16, u16) = (0x88a8, 0x03e7);
const C5: (u16, u16) = (0x8100, 0x0005);
const C4095: (u16, u16) = (0x8100, 0x0fff);

#[test]
fn ingress_matrix() {
    use DropReason::*;
    type Want = Result<(DomainId, Tags), DropReason>;
    let cases: &[(&str, PortId, Tags, Want)] = &[
        ("access, untagged", ACCESS, &[], Ok((0, &[]))),
        ("access, priority-tagged", ACCESS, &[PRIO], Ok((0, &[]))),
        ("access, C-tagged", ACCESS, &[C10], Err(VlanTaggedOnAccess)),
        (
            "access, S+C (VLAN hopping)",
            ACCESS,
            &[S100, C10],
            Err(VlanTaggedOnAccess),
        ),
        (
            "access, triple-tagged",
            ACCESS,
            &[S100, C10, C20],
            Err(TooManyTags),
        ),
        ("trunk, untagged -> native", TRUNK, &[], Ok((2, &[]))),
        (
            "trunk, priority-tagged -> native",
            TRUNK,
            &[PRIO],
            Ok((2, &[])),
        ),
        ("trunk, C10 allowed", TRUNK, &[C10], Ok((0, &[]))),
        ("trunk, C20 allowed", TRUNK, &[C20], Ok((1, &[]))),
        ("trunk, C30 not allowed", TRUNK, &[C30], Err(VlanNotAllowed)),
        ("trunk, VID 4095", TRUNK, &[C4095], Err(VlanReserved)),
        ("trunk, S-tag", TRUNK, &[S100, C10], Err(VlanWrongTpid)),
        (
            "trunk, C10 + inner C5 carried",
            TRUNK,
            &[C10, C5],
            Ok((0, &[C5])),
        ),
        (
            "trunk, triple-tagged",
            TRUNK,
            &[C10, C5, C20],
            Err(TooManyTags),
        ),
        (
            "trunk without native, untagged",
            TRUNK_NO_NATIVE,
            &[],
            Err(VlanUntaggedNotAllowed),
        ),
        (
            "qinq, S100 + C10: C carried",
            QINQ,
            &[S100, C10],
            Ok((0, &[C10])),
        ),
        ("qinq, S100 alone", QINQ, &[S100], Ok((0, &[]))),
        ("qinq, selective S200 + C5", QINQ, &[S200, C5], Ok((1, &[]))),
        (
            "qinq, S200 + C10: no pair, no S200 service",
            QINQ,
            &[S200, C10],
            Err(VlanNotAllowed),
        ),
        (
            "qinq, unknown S-VID",
            QINQ,
            &[S999, C10],
            Err(VlanNotAllowed),
        ),
        ("qinq, C-tag only", QINQ, &[C10], Err(VlanWrongTpid)),
        ("qinq, untagged", QINQ, &[], Err(VlanUntaggedNotAllowed)),
        (
            "qinq, inner VID 4095",
            QINQ,
            &[S100, C4095],
            Err(VlanReserved),
        ),
        (
            "qinq 0x9100, S300",
            QINQ_9100,
            &[(0x9100, 0x012c), C10],
            Ok((2, &[C10])),
        ),
        (
            "qinq 0x9100, 0x88a8 outer",
            QINQ_9100,
            &[(0x88a8, 0x012c)],
            Err(VlanWrongTpid),
        ),
    ];
    for (name, port, tags, want) in cases {
        let (verdict, domain, after, prio) = ingress(*port, &frame(tags));
        match want {
            Ok((d, left)) => {
                assert_eq!(verdict, Verdict::Pending, "{name}");
                assert_eq!(domain, *d, "{name}");
                assert_eq!(
                    after,
                    frame(left),
                    "{name}: tags stripped, the rest untouched"
                );
                if let Some((_, tci)) = tags.first() {
                    assert_eq!(prio, *tci, "{name}: PCP/DEI kept for egress");
                }
            }
            Err(r) => assert_eq!(verdict, Verdict::Drop(*r), "{name}"),
        }
    }
}

/// Pushes `tag` on `inner` (the frame as it is inside the domain).
fn egress(inner: &[u8], tag: EgressTag, prio: u16) -> Vec<u8> {
    let mut mem = vec![0u8; HEADROOM];
    mem.extend_from_slice(inner);
    let (a, l, h) = push_tags(
        &mut mem,
        HEADROOM as u64,
        inner.len() as u32,
        HEADROOM as u16,
        tag,
        prio,
    )
    .unwrap();
    assert_eq!(h as u64, a);
    mem[a as usize..a as usize + l as usize].to_vec()
}

#[test]
fn egress_bytes() {
    let m = map();
    let untagged = frame(&[]);
    // (case, domain, egress port, tags inside the domain, PCP source, tags out)
    let cases: &[(&str, DomainId, PortId, Tags, u16, Tags)] = &[
        ("d0 to access: untagged", 0, ACCESS, &[], 0xa00a, &[]),
        (
            "d0 to trunk: C10 with PCP 5 kept",
            0,
            TRUNK,
            &[],
            0xa00a,
            &[(0x8100, 0xa00a)],
        ),
        (
            "d1 to trunk: C20, translated PCP 3",
            1,
            TRUNK,
            &[],
            0x6064,
            &[(0x8100, 0x6014)],
        ),
        ("d2 to trunk: native, untagged", 2, TRUNK, &[], 0x0000, &[]),
        (
            "d0 to qinq: S100 pushed over the carried C10",
            0,
            QINQ,
            &[C10],
            0x2000,
            &[(0x88a8, 0x2064), C10],
        ),
        (
            "d0 to qinq: S100 on an untagged frame",
            0,
            QINQ,
            &[],
            0x0000,
            &[(0x88a8, 0x0064)],
        ),
        (
            "d1 to qinq: S200 + C5 (selective)",
            1,
            QINQ,
            &[],
            0xe000,
            &[(0x88a8, 0xe0c8), (0x8100, 0xe005)],
        ),
        (
            "d2 to qinq 0x9100: S300",
            2,
            QINQ_9100,
            &[],
            0x1000,
            &[(0x9100, 0x112c)],
        ),
    ];
    for (name, d, port, inside, prio, want) in cases {
        let got = egress(&frame(inside), m.egress(*d, *port), *prio);
        assert_eq!(got, frame(want), "{name}");
    }
    assert_eq!(egress(&untagged, EgressTag::NotMember, 0), untagged);
    // No headroom: a counted drop, not a write outside the frame.
    let mut mem = frame(&[]);
    let len = mem.len() as u32;
    assert_eq!(
        push_tags(
            &mut mem,
            0,
            len,
            0,
            EgressTag::Push {
                tpid: 0x8100,
                vid: 1
            },
            0
        ),
        Err(DropReason::NoHeadroom)
    );
}

proptest! {
    /// Any frame a port admits, sent out any port of its domain, parses in
    /// etherparse with exactly the egress port's tags (and the carried
    /// C-tag), the egress VIDs, and the ingress PCP.
    #[test]
    fn egress_frames_parse_to_the_expected_tags(
        in_case in 0usize..6,
        out_port in 0u16..5,
        pcp in 0u16..8,
        dei in any::<bool>(),
        inner_vid in 1u16..4095,
    ) {
        let tci = |vid: u16| (pcp << 13) | ((dei as u16) << 12) | vid;
        let (port, tags): (PortId, Vec<(u16, u16)>) = match in_case {
            0 => (ACCESS, vec![]),
            1 => (TRUNK, vec![(0x8100, tci(10))]),
            2 => (TRUNK, vec![(0x8100, tci(20))]),
            3 => (QINQ, vec![(0x88a8, tci(100)), (0x8100, inner_vid)]),
            4 => (QINQ, vec![(0x88a8, tci(200)), (0x8100, 5)]),
            _ => (TRUNK, vec![]),
        };
        let (verdict, d, inside, prio) = ingress(port, &frame(&tags));
        prop_assert_eq!(verdict, Verdict::Pending);
        let m = map();
        let tag = m.egress(d, out_port);
        prop_assume!(tag != EgressTag::NotMember);
        let out = egress(&inside, tag, prio);
        let p = SlicedPacket::from_ethernet(&out).expect("output parses");
        let got: Vec<(u16, u16)> = match &p.vlan {
            None => vec![],
            Some(VlanSlice::SingleVlan(s)) => vec![(tpid_before(&out, 0), s.vlan_identifier().value())],
            Some(VlanSlice::DoubleVlan(dv)) => vec![(tpid_before(&out, 0), dv.outer().vlan_identifier().value()), (tpid_before(&out, 1), dv.inner().vlan_identifier().value())],
        };
        let carried: Vec<(u16, u16)> = if port == QINQ && d == 0 { vec![(0x8100, inner_vid)] } else { vec![] };
        let mut want: Vec<(u16, u16)> = match tag {
            EgressTag::Push { tpid, vid } => vec![(tpid, vid)],
            EgressTag::PushPair { tpid, svid, cvid } => vec![(tpid, svid), (0x8100, cvid)],
            _ => vec![],
        };
        want.extend(carried);
        prop_assert_eq!(&got, &want);
        prop_assert!(p.net.is_some(), "the IPv4 packet is intact behind the tags");
        // A pushed outer tag carries the PCP the frame came in with.
        let pushed = matches!(tag, EgressTag::Push { .. } | EgressTag::PushPair { .. });
        if pushed && port != ACCESS && in_case != 5 {
            prop_assert_eq!(out[14] >> 5, pcp as u8);
            prop_assert_eq!(out[14] & 0x10 != 0, dei);
        }
    }
}

/// The TPID of the `n`th tag, read from the frame.
fn tpid_before(f: &[u8], n: usize) -> u16 {
    u16::from_be_bytes([f[12 + 4 * n], f[13 + 4 * n]])
}

/// The double-tagging hop: a frame that came in on a trunk as C10 with an
/// inner C5 carries C5 inside VLAN 10. Out of a port where VLAN 10 is
/// untagged (an access port) the next switch would read C5 and put it in
/// VLAN 5: blocked and counted. Out of a port that tags VLAN 10 it keeps
/// both tags.
#[test]
fn carried_tags_never_leave_untagged() {
    let m = map();
    for (out, want) in [
        (ACCESS, Err(DropReason::VlanHopBlocked)),
        // The PCP of the stripped C10 goes on the pushed one.
        (TRUNK_NO_NATIVE, Ok(frame(&[C10, C5]))),
    ] {
        through_egress(&m, &[C10, C5], TRUNK, out, (0, 1), want);
    }
}

/// A map where no port pushes a tag (egress skips untagged bursts
/// whole) still refuses a carried tag on an untagged egress, and lets
/// an untagged burst leave as it came.
#[test]
fn a_map_that_never_pushes_still_blocks_carried_tags() {
    // Port 0 takes C10 into domain 0 but sends domain 0 untagged; port 1
    // is an access port of domain 0.
    let mut m = VlanMap::new(2, 1);
    let mut t = PortVlan::new(VlanMode::Trunk, 0x8100);
    t.map_vid(10, 0);
    m.set_port(0, t);
    let mut a = PortVlan::new(VlanMode::Access, 0x8100);
    a.untagged = 0;
    m.set_port(1, a);
    m.set_egress(0, 0, EgressTag::Untagged);
    m.set_egress(0, 1, EgressTag::Untagged);
    through_egress(
        &m,
        &[C10, C5],
        0,
        1,
        (0, 1),
        Err(DropReason::VlanHopBlocked),
    );
    through_egress(&m, &[], 1, 0, (0, 0), Ok(frame(&[])));
}

/// One frame with `sent` tags in on `from`: parse and VLAN ingress leave
/// it pending in `domain` with `carried` tags; forwarded to `out`, VLAN
/// egress drops it for `want`'s reason or sends `want`'s bytes.
fn through_egress(
    m: &VlanMap,
    sent: Tags,
    from: PortId,
    out: PortId,
    (domain, carried): (u16, u8),
    want: Result<Vec<u8>, DropReason>,
) {
    use pollgate_pipeline::vlan::VlanEgress;
    let f = frame(sent);
    let mut mem = vec![0u8; HEADROOM];
    mem.extend_from_slice(&f);
    let mut b = Batch::new();
    b.push(HEADROOM as u64, f.len() as u32, HEADROOM as u16, from);
    let mut drops = DropCounters::default();
    Parse.process(&mut b, &mut mem, &mut drops);
    VlanIngress { map: m }.process(&mut b, &mut mem, &mut drops);
    assert_eq!(
        (b.verdict[0], b.domain[0], b.tags[0]),
        (Verdict::Pending, domain, carried)
    );
    b.verdict[0] = Verdict::Forward(out);
    VlanEgress { map: m }.process(&mut b, &mut mem, &mut drops);
    match want {
        Err(r) => {
            assert_eq!(b.verdict[0], Verdict::Drop(r));
            assert_eq!(drops.get(r), 1);
        }
        Ok(bytes) => {
            assert_eq!(b.verdict[0], Verdict::Forward(out));
            let (a, l) = (b.addr[0] as usize, b.data_len[0] as usize);
            assert_eq!(&mem[a..a + l], &bytes[..]);
        }
    }
}

const C1: (u16, u16) = (0x8100, 0x4001); // PCP 2, VID 1
const C33: (u16, u16) = (0x8100, 0xa021); // PCP 5, VID 33
const C4094: (u16, u16) = (0x8100, 0x2ffe); // PCP 1, VID 4094

/// The customer port of an 802.1ad service: whatever the customer sends
/// joins the service with its tags untouched, and its PCP (or the port's
/// default) is what the S-tag will carry.
#[test]
fn customer_port_ingress_matrix() {
    use DropReason::*;
    type Want = Result<u16, DropReason>;
    let cases: &[(&str, PortId, Tags, Want)] = &[
        ("untagged: default PCP 3", CUSTOMER, &[], Ok(0x6000)),
        (
            "priority-tagged: kept, PCP 7",
            CUSTOMER,
            &[PRIO],
            Ok(0xe000),
        ),
        ("C-VID 1", CUSTOMER, &[C1], Ok(0x4000)),
        ("C-VID 33", CUSTOMER, &[C33], Ok(0xa000)),
        ("C-VID 4094", CUSTOMER, &[C4094], Ok(0x2000)),
        (
            "C-VID 4095 is only payload here",
            CUSTOMER,
            &[C4095],
            Ok(0x0000),
        ),
        ("double C-tagged", CUSTOMER, &[C33, C5], Ok(0xa000)),
        (
            "an S-tag the customer sent is payload too",
            CUSTOMER,
            &[S100, C10],
            Ok(0x6000),
        ),
        (
            "triple-tagged: past the parser",
            CUSTOMER,
            &[C33, C5, C20],
            Err(TooManyTags),
        ),
        ("untagged, default PCP 0", CUSTOMER_L2CP, &[], Ok(0x0000)),
    ];
    for (name, port, tags, want) in cases {
        let f = frame(tags);
        let (verdict, domain, after, prio) = ingress(*port, &f);
        match want {
            Ok(pcp) => {
                assert_eq!((verdict, domain), (Verdict::Pending, 0), "{name}");
                assert_eq!(after, f, "{name}: the customer's frame is untouched");
                assert_eq!(prio, *pcp, "{name}: PCP and DEI for the S-tag");
            }
            Err(r) => assert_eq!(verdict, Verdict::Drop(*r), "{name}"),
        }
    }
    // L2 control frames: dropped and counted, or tunnelled, by port.
    for (dst, control) in [
        ([0x01, 0x80, 0xc2, 0, 0, 0x00], true),  // STP
        ([0x01, 0x80, 0xc2, 0, 0, 0x02], true),  // LACP
        ([0x01, 0x80, 0xc2, 0, 0, 0x0e], true),  // LLDP
        ([0x01, 0x80, 0xc2, 0, 0, 0x10], false), // all bridges: not 802.1 reserved
        ([0x01, 0x00, 0x5e, 0, 0, 0x01], false),
    ] {
        let mut f = frame(&[C33]);
        f[0..6].copy_from_slice(&dst);
        let (v, _, _, _) = ingress(CUSTOMER, &f);
        let want = if control {
            Verdict::Drop(L2cpDropped)
        } else {
            Verdict::Pending
        };
        assert_eq!(v, want, "{dst:02x?} on a customer port that drops L2CP");
        let (v, _, after, _) = ingress(CUSTOMER_L2CP, &f);
        assert_eq!((v, after), (Verdict::Pending, f), "{dst:02x?} tunnelled");
        let (v, _, _, _) = ingress(ACCESS, &frame(&[]));
        assert_eq!(v, Verdict::Pending, "other ports are not affected");
    }
}

/// Out of the service: towards the provider the S-tag goes over what the
/// customer sent; towards the customer the frame leaves as it is in the
/// service (the provider port popped the S-tag), its C-tags included.
#[test]
fn customer_port_egress_bytes() {
    let m = map();
    assert_eq!(m.egress(0, CUSTOMER), EgressTag::Customer);
    let cases: &[(&str, PortId, PortId, Tags, Tags)] = &[
        (
            "untagged to provider: S100, default PCP 3",
            CUSTOMER,
            QINQ,
            &[],
            &[(0x88a8, 0x6064)],
        ),
        (
            "priority-tagged to provider",
            CUSTOMER,
            QINQ,
            &[PRIO],
            &[(0x88a8, 0xe064), PRIO],
        ),
        (
            "C33 to provider: PCP 5 on the S-tag",
            CUSTOMER,
            QINQ,
            &[C33],
            &[(0x88a8, 0xa064), C33],
        ),
        (
            "C4094 to provider",
            CUSTOMER,
            QINQ,
            &[C4094],
            &[(0x88a8, 0x2064), C4094],
        ),
        (
            "double C-tagged to provider",
            CUSTOMER,
            QINQ,
            &[C33, C5],
            &[(0x88a8, 0xa064), C33, C5],
        ),
        (
            "provider S100+C33 to customer: S popped",
            QINQ,
            CUSTOMER,
            &[(0x88a8, 0x6064), C33],
            &[C33],
        ),
        (
            "provider S100 alone to customer: untagged",
            QINQ,
            CUSTOMER,
            &[(0x88a8, 0x6064)],
            &[],
        ),
        (
            "customer to customer: untouched",
            CUSTOMER,
            CUSTOMER_L2CP,
            &[C33, C5],
            &[C33, C5],
        ),
    ];
    for (name, from, to, sent, want) in cases {
        let (verdict, d, inside, prio) = ingress(*from, &frame(sent));
        assert_eq!(verdict, Verdict::Pending, "{name}");
        let tag = m.egress(d, *to);
        let carried = inside.len() as u32 / 4; // any: a customer egress allows tags
        assert!(
            pollgate_pipeline::vlan::egress_allowed(tag, carried as u8).is_ok(),
            "{name}"
        );
        let out = egress(&inside, tag, prio);
        assert_eq!(out, frame(want), "{name}");
        // etherparse reads the first two tags and the IPv4 packet behind
        // them wherever there are at most two.
        if want.len() <= 2 {
            let p = SlicedPacket::from_ethernet(&out).expect("output parses");
            assert!(p.net.is_some(), "{name}: IPv4 intact behind the tags");
            let n = match &p.vlan {
                None => 0,
                Some(VlanSlice::SingleVlan(_)) => 1,
                Some(VlanSlice::DoubleVlan(_)) => 2,
            };
            assert_eq!(n, want.len(), "{name}");
        }
    }
    // An access member of the same service still refuses a carried C-tag:
    // the VLAN-hop protection is the access port's, not the service's.
    assert_eq!(
        pollgate_pipeline::vlan::egress_allowed(m.egress(0, ACCESS), 1),
        Err(DropReason::VlanHopBlocked)
    );
}
