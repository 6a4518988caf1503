//! The router rig the router and NAT tests share: two domains with a
//! gateway interface each, parse → router → bridge over frames in a
//! memory slab.
#![allow(dead_code)]

use etherparse::{NetSlice, PacketBuilder, SlicedPacket};
use pollgate_pipeline::bridge::{Bridge, Domain};
use pollgate_pipeline::conntrack::{FlowTable, FlowTimeouts};
use pollgate_pipeline::l3::interface::link_local;
use pollgate_pipeline::l3::{Interfaces, L3Interface, Route, RouteTable, Router, Source, Target};
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::nat::Nat;
use pollgate_pipeline::storm::StormControl;
use pollgate_pipeline::wire::arp;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, DomainId, DropCounters, Parse, PortId, Stage, Verdict};
use std::net::IpAddr;
use std::sync::Arc;

pub const GW: MacAddr = MacAddr([2, 0x47, 0x57, 0, 0, 1]);
pub const H1: [u8; 6] = [2, 0, 0, 0, 1, 10];
pub const H2: [u8; 6] = [2, 0, 0, 0, 2, 10];
pub const V6A: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const V6B: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const SLOT: usize = 4096;
pub const HEADROOM: usize = 256;

pub struct Rig {
    pub router: Router,
    pub bridge: Bridge,
    pub routes: RouteTable,
    pub mem: Vec<u8>,
    pub now: u64,
    /// How far the clock moves before each run.
    pub step_ns: u64,
    /// The worker's flow table, for NAT.
    pub flows: Option<FlowTable>,
    /// The next frame slot: held packets keep theirs across runs.
    pub slot: usize,
}

pub fn ifc(d: DomainId, v4: [u8; 4], v6: [u8; 16], mtu: u16) -> L3Interface {
    L3Interface {
        name: format!("net{d}"),
        domain: d,
        mac: GW,
        mtu,
        v4: vec![(v4, 24)],
        v6: vec![(v6, 64)],
        link_local: link_local(GW),
        nat_v4: Vec::new(),
    }
}

/// Domain 0 on port 0 (198.18.1.0/24, 2001:db8:1::/64), domain 1 on
/// port 1 (198.18.2.0/24, MTU 1280), one router MAC for both.
pub fn rig() -> Rig {
    rig_with(None)
}

/// The rig with NAT (its flow table of `flows` entries).
pub fn rig_with(nat: Option<(Nat, usize)>) -> Rig {
    rig_built(nat, false, Vec::new())
}

/// `rig_with`, domain 1's interface also translating to `nat_v4`.
pub fn rig_with_nat_addresses(nat: (Nat, usize), nat_v4: Vec<[u8; 4]>) -> Rig {
    rig_built(Some(nat), false, nat_v4)
}

/// The rig whose router leaves every packet to its general pass.
pub fn rig_general() -> Rig {
    rig_built(None, true, Vec::new())
}

fn rig_built(nat: Option<(Nat, usize)>, general: bool, nat_v4: Vec<[u8; 4]>) -> Rig {
    let macs = Arc::new(MacTable::new(1024));
    let mut routes = RouteTable::new(256, 256, 256);
    let out = L3Interface {
        nat_v4,
        ..ifc(1, [198, 18, 2, 1], V6B, 1280)
    };
    let ifs = Arc::new(Interfaces::new(
        vec![ifc(0, [198, 18, 1, 1], V6A, 1500), out],
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
    let mut router = Router::new(ifs, routes.tables.clone(), macs.clone(), 1000);
    if general {
        router = router.general_pass_only();
    }
    let mut flows = None;
    if let Some((nat, n)) = nat {
        router = router.with_nat(nat);
        flows = Some(FlowTable::new(n, FlowTimeouts::default()));
    }
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
        step_ns: 1_000_000,
        flows,
        slot: 0,
    }
}

impl Rig {
    /// Runs parse → router → bridge over `frames` (port, bytes); returns
    /// each packet's verdict and final bytes.
    pub fn run(
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
        self.now += self.step_ns;
        self.router.set_clock(self.now);
        self.bridge.set_clock(self.now);
        self.router
            .process(&mut b, &mut self.mem, &mut drops, self.flows.as_mut());
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

pub fn arp_request(from: [u8; 6], sip: [u8; 4], tip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    arp::emit_frame(&mut f[..42], MacAddr(from), sip, None, tip);
    f
}

pub fn arp_reply(from: [u8; 6], sip: [u8; 4], to: [u8; 6], tip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    arp::emit_frame(&mut f[..42], MacAddr(from), sip, Some(MacAddr(to)), tip);
    f
}

pub fn udp4(
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

pub fn ipv4_of(f: &[u8]) -> etherparse::Ipv4Slice<'_> {
    match SlicedPacket::from_ethernet(f).unwrap().net {
        Some(NetSlice::Ipv4(ip)) => ip,
        other => panic!("not IPv4: {other:?}"),
    }
}
