//! The router's fast pass (one gateway next hop with a known MAC, a
//! burst at a time) against its general pass on random bursts: the same
//! verdicts, bytes, ingress ports, drop counts and ARP requests, whatever
//! mix of next hops, TTLs, sizes, source MACs and resolved or unresolved
//! neighbours the bursts hold, ARP replies that resolve a gateway in the
//! middle of a burst included.

mod common;

use common::*;
use pollgate_pipeline::l3::{Route, Source, Target};
use pollgate_pipeline::{PortId, Verdict};
use proptest::prelude::*;
use std::net::IpAddr;

/// Gateways on each link: 198.18.2.2 (the rig's route to 198.19.0.0/16),
/// 198.18.2.3 and 198.18.1.20.
const GATEWAYS: [[u8; 4]; 3] = [[198, 18, 2, 2], [198, 18, 2, 3], [198, 18, 1, 20]];
const GATEWAY_MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 2, 2], [2, 0, 0, 0, 2, 3], [2, 0, 0, 0, 1, 20]];

/// Destinations, one per kind of route: through each gateway, ECMP over
/// two, connected on either link, blackhole, unreachable, no route, the
/// gateway's own address, and a broadcast.
const DESTINATIONS: [[u8; 4]; 10] = [
    [198, 19, 7, 7],
    [198, 19, 200, 1],
    [198, 19, 100, 9],
    [198, 18, 2, 77],
    [198, 18, 1, 77],
    [198, 18, 250, 1],
    [198, 18, 251, 1],
    [198, 18, 252, 1],
    [198, 18, 1, 1],
    [255, 255, 255, 255],
];

fn with_routes(mut r: Rig) -> Rig {
    let via = |p: &str, gws: &[[u8; 4]]| Route {
        prefix: p.parse().unwrap(),
        target: Target::Via(gws.iter().map(|g| IpAddr::from(*g)).collect()),
        metric: 0,
        source: Source::Static,
    };
    let to = |p: &str, target| Route {
        prefix: p.parse().unwrap(),
        target,
        metric: 0,
        source: Source::Static,
    };
    r.routes
        .add(via("198.19.200.0/24", &[GATEWAYS[2]]))
        .unwrap();
    r.routes
        .add(via("198.19.100.0/24", &[GATEWAYS[0], GATEWAYS[1]]))
        .unwrap();
    r.routes
        .add(to("198.18.250.0/24", Target::Blackhole))
        .unwrap();
    r.routes
        .add(to("198.18.251.0/24", Target::Unreachable))
        .unwrap();
    r
}

/// One frame of a burst, as drawn.
#[derive(Debug, Clone)]
struct Pkt {
    port: PortId,
    /// Index into `SENDERS`.
    sender: usize,
    dst: usize,
    ttl: u8,
    payload: usize,
    df: bool,
    /// Addressed to another MAC than the router's.
    not_to_router: bool,
}

/// Senders: two hosts, a multicast MAC, and gateway 198.18.2.2's MAC (a
/// next hop that sends traffic of its own).
const SENDERS: [[u8; 6]; 4] = [H1, H2, [3, 0, 0, 0, 0, 1], GATEWAY_MACS[0]];

fn frame(p: &Pkt) -> (PortId, Vec<u8>) {
    let src = [198, 18, 1 + p.port as u8, 10];
    let mut f = udp4(
        SENDERS[p.sender],
        src,
        DESTINATIONS[p.dst],
        p.ttl,
        p.payload,
        p.df,
    );
    if p.not_to_router {
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
    }
    (p.port, f)
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        0..2u16,
        prop::sample::select(vec![0usize, 0, 0, 1, 2, 3]),
        0..DESTINATIONS.len(),
        prop::sample::select(vec![0u8, 1, 2, 64, 255]),
        prop::sample::select(vec![18usize, 100, 1300]),
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(port, sender, dst, ttl, payload, df, not_to_router)| Pkt {
            port,
            sender,
            dst,
            ttl,
            payload,
            df,
            not_to_router,
        })
}

/// A frame of a burst: a packet to route, or a gateway's ARP reply,
/// which resolves it for the packets behind it in the burst.
#[derive(Debug, Clone)]
enum Frame {
    Data(Pkt),
    Resolve(usize),
}

/// A step: a burst of frames.
type Step = Vec<Frame>;

fn step() -> impl Strategy<Value = Step> {
    let frame = prop_oneof![
        12 => pkt().prop_map(Frame::Data),
        1 => (0..GATEWAYS.len()).prop_map(Frame::Resolve),
    ];
    prop::collection::vec(frame, 1..40)
}

fn arp_from_gateway(g: usize) -> (PortId, Vec<u8>) {
    let port = if GATEWAYS[g][2] == 2 { 1 } else { 0 };
    let ours = [198, 18, GATEWAYS[g][2], 1];
    (port, arp_reply(GATEWAY_MACS[g], GATEWAYS[g], GW.0, ours))
}

proptest! {
    // A case builds two routers, each with two 64 MiB first levels:
    // an unoptimised build spends most of a second on that.
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 40 } else { 200 }))]

    /// `quick`: the bursts come 1 µs apart, so the fast pass's resolved
    /// next hops carry over from one burst to the next (they are kept
    /// 100 µs); the ARP replies and new senders among them must still
    /// show at once.
    #[test]
    fn the_fast_pass_decides_as_the_general_one(
        steps in prop::collection::vec(step(), 1..8),
        quick in any::<bool>(),
    ) {
        let mut fast = with_routes(rig());
        let mut general = with_routes(rig_general());
        if quick {
            fast.step_ns = 1_000;
            general.step_ns = 1_000;
        }
        for s in &steps {
            let frames: Vec<_> = s
                .iter()
                .map(|f| match f {
                    Frame::Data(p) => frame(p),
                    Frame::Resolve(g) => arp_from_gateway(*g),
                })
                .collect();
            let (a, da) = fast.run(&frames);
            let (b, db) = general.run(&frames);
            prop_assert_eq!(a, b);
            prop_assert_eq!(da.nonzero().collect::<Vec<_>>(), db.nonzero().collect::<Vec<_>>());
            prop_assert_eq!(fast.router.take_requests(), general.router.take_requests());
        }
    }
}

/// A burst from port 0 to 198.19.7.7, through gateway 0; the MAC it
/// leaves with.
fn via_gateway_0(r: &mut Rig) -> [u8; 6] {
    let p = Pkt {
        port: 0,
        sender: 0,
        dst: 0,
        ttl: 64,
        payload: 0,
        df: false,
        not_to_router: false,
    };
    let (out, _) = r.run(&[frame(&p)]);
    assert!(
        matches!(out[0].0, Verdict::Forward(1) | Verdict::Flood(1)),
        "{:?}",
        out[0].0
    );
    out[0].1[0..6].try_into().unwrap()
}

/// The rig with gateway 0 resolved and its adjacency in the fast pass's
/// cache, bursts 1 µs apart (within the cache's 100 µs).
fn resolved_and_cached() -> Rig {
    let mut r = with_routes(rig());
    r.step_ns = 1_000;
    r.run(&[arp_from_gateway(0)]);
    // The first burst also teaches the sender, which empties the cache.
    for _ in 0..2 {
        assert_eq!(via_gateway_0(&mut r), GATEWAY_MACS[0]);
    }
    r
}

/// A neighbour changed outside the data path (`neighbor add` through
/// `ctl`, another worker's ARP) reaches the fast pass within its
/// adjacencies' lifetime, 100 µs, however busy the router is.
#[test]
fn a_neighbour_changed_elsewhere_reaches_the_fast_pass() {
    let mut r = resolved_and_cached();
    let moved = [2, 0, 0, 0, 2, 99];
    let tables = r.routes.tables.clone();
    tables.neighbors.update(
        1,
        IpAddr::from(GATEWAYS[0]),
        Some(moved),
        false,
        r.now,
        true,
    );
    let seen = (0..150).position(|_| via_gateway_0(&mut r) == moved);
    assert!(
        seen.is_some_and(|k| k <= 100),
        "new MAC first used at burst {seen:?}"
    );
}

/// An ARP reply the router reads that moves a gateway to another MAC, one
/// the MAC table knows already (so no new sender empties the cache), is
/// used by the very next burst.
#[test]
fn an_arp_answer_reaches_the_fast_pass_at_once() {
    let mut r = resolved_and_cached();
    // Gateway 1's MAC, known on port 1, answers for gateway 0's address.
    let (port, f) = arp_from_gateway(1);
    r.run(&[(port, f)]);
    // That taught a new sender: the cache is filled again.
    assert_eq!(via_gateway_0(&mut r), GATEWAY_MACS[0]);
    let ours = [198, 18, 2, 1];
    let moved = arp_reply(GATEWAY_MACS[1], GATEWAYS[0], GW.0, ours);
    r.run(&[(1, moved)]);
    assert_eq!(via_gateway_0(&mut r), GATEWAY_MACS[1]);
}
