//! The bridge stage: learn source MACs, look destination MACs up, and
//! decide between forwarding to one port and flooding the domain (with
//! storm control on what floods). A domain may instead share an uplink
//! among containers without learning, as macvlan or ipvlan do.

use crate::arp_suppress::ArpCache;
use crate::batch::flags;
use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::ipvlan::{self, IpVlan};
use crate::mac_table::MacTable;
use crate::macvlan::{self, MacVlan};
use crate::stage::Stage;
use crate::storm::StormControl;
use crate::verdict::{DomainId, DropCounters, DropReason, PortId, Verdict};
use crate::vlan::NO_DOMAIN;
use crate::vxlan::TUNNEL_BASE;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::MacAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A bridge domain: its name, the ports it floods to, and how it
/// forwards.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub members: Vec<PortId>,
    pub kind: DomainKind,
    /// Learn inner source MACs against the remote VTEP they came from.
    /// Off where a control plane (EVPN) says which MAC is behind which
    /// VTEP: data-plane learning would fight its withdrawals and moves.
    pub learn_tunnels: bool,
    /// Answer local ARP requests from the bridge's ARP cache, and record
    /// local senders in it (EVPN: the control plane advertises them and
    /// fills in the remote hosts).
    pub suppress_arp: bool,
}

impl Domain {
    /// A learning bridge domain, the default.
    pub fn learning(name: impl Into<String>, members: Vec<PortId>) -> Self {
        Domain {
            name: name.into(),
            members,
            kind: DomainKind::Learning,
            learn_tunnels: true,
            suppress_arp: false,
        }
    }
}

/// How a domain decides where a frame goes.
#[derive(Debug, Clone)]
pub enum DomainKind {
    /// An 802.1D learning bridge.
    Learning,
    /// Containers on an uplink, each with its own static MAC (macvlan).
    MacVlan(MacVlan),
    /// Containers behind the uplink's one MAC, told apart by IP (ipvlan L2).
    IpVlan(Arc<IpVlan>),
}

/// The domains and the shared MAC table.
#[derive(Clone)]
pub struct Bridge {
    pub domains: Arc<Vec<Domain>>,
    pub table: Arc<MacTable>,
    /// Storm control per port (indexed by port id); each worker has its
    /// own copy and only its own ports' buckets are ever used.
    pub storm: Vec<StormControl>,
    /// Coarse clock for learning (seconds) and fine clock for storm
    /// control, set by the worker once per loop.
    pub now_secs: u32,
    pub now_ns: u64,
    /// For packets from tunnel ports (remote VTEPs), which have no
    /// per-port limits.
    tunnel_storm: StormControl,
    /// The ARP cache of the domains that suppress ARP.
    pub arp: Option<Arc<ArpCache>>,
}

impl Bridge {
    pub fn new(domains: Vec<Domain>, table: Arc<MacTable>, storm: Vec<StormControl>) -> Self {
        Bridge {
            domains: Arc::new(domains),
            table,
            storm,
            now_secs: 0,
            now_ns: 0,
            tunnel_storm: StormControl::unlimited(),
            arp: None,
        }
    }

    pub fn with_arp(mut self, arp: Arc<ArpCache>) -> Self {
        self.arp = Some(arp);
        self
    }

    pub fn set_clock(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.now_secs = (now_ns / 1_000_000_000) as u32;
    }

    /// Ports a flood of `domain` goes to (the ingress port is skipped by
    /// the caller).
    pub fn members(&self, domain: DomainId) -> &[PortId] {
        self.domains
            .get(domain as usize)
            .map_or(&[], |d| d.members.as_slice())
    }
}

impl Stage for Bridge {
    fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        // A table past the caches: touch every packet's slots first, so
        // their misses are in flight together.
        if self.table.worth_warming() {
            for i in 0..batch.len() {
                let domain = batch.domain[i];
                if domain == NO_DOMAIN {
                    continue;
                }
                if let Some(eth) = mem.bytes(batch.addr[i], 12) {
                    self.table
                        .warm(domain, MacAddr::from_bytes(&eth[0..6]), &*mem);
                    self.table
                        .warm(domain, MacAddr::from_bytes(&eth[6..12]), &*mem);
                }
            }
        }
        // A batch that starts with frames of one destination, source,
        // ingress port and domain (one flow, as a burst off one queue
        // often is): the first is decided, and the others take its
        // forwarding without the learn and the lookup (VPP's l2-learn and
        // l2-fwd keep their last key likewise). Only the leading run is
        // looked for, once a batch: tracking every packet's key in a mix
        // of many MACs cost more than the repeats saved.
        let n = batch.len();
        let run = leading_run(batch, mem);
        if n > 0 {
            self.decide(batch, 0, mem, drops);
        }
        let copied = match batch.verdict.first() {
            Some(&Verdict::Forward(p)) if run > 1 && !self.judged_alone(batch.domain[0]) => {
                for i in 1..run {
                    batch.verdict[i] = Verdict::Forward(p);
                }
                run
            }
            _ => 1,
        };
        for i in copied..n {
            self.decide(batch, i, mem, drops);
        }
    }
}

impl Bridge {
    /// Whether frames of one destination and source may still go
    /// different ways: ARP answered in a domain that suppresses it, an
    /// ipvlan domain's members told apart by IP behind one MAC (a
    /// macvlan's too, kept simple). Only a learning domain's leading run
    /// takes its first frame's forwarding.
    fn judged_alone(&self, domain: DomainId) -> bool {
        self.domains
            .get(domain as usize)
            .is_none_or(|d| d.suppress_arp || !matches!(d.kind, DomainKind::Learning))
    }

    /// Learns packet `i`'s source and decides where it goes.
    #[inline(always)]
    fn decide<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        let domain = batch.domain[i];
        if batch.verdict[i] != Verdict::Pending || domain == NO_DOMAIN {
            return;
        }
        let Some(eth) = mem.bytes(batch.addr[i], 12) else {
            batch.verdict[i] = Verdict::Drop(DropReason::RuntFrame);
            drops.count(DropReason::RuntFrame);
            return;
        };
        let dst = MacAddr::from_bytes(&eth[0..6]);
        let src = MacAddr::from_bytes(&eth[6..12]);
        let port = batch.in_port[i];
        if src.is_multicast() {
            batch.verdict[i] = Verdict::Drop(DropReason::SrcMacMulticast);
            drops.count(DropReason::SrcMacMulticast);
            return;
        }
        let d = self.domains.get(domain as usize);
        let kind = d.map(|d| &d.kind);
        let shared = match kind {
            None | Some(DomainKind::Learning) => None,
            Some(DomainKind::MacVlan(m)) => {
                let (v, skip) = macvlan::decide(m, &self.table, domain, port, dst, src);
                if let Some(s) = skip {
                    batch.flood_skip[i] = s;
                }
                Some(v)
            }
            Some(DomainKind::IpVlan(v)) => Some(ipvlan_decide(v, batch, i, mem)),
        };
        let storm = match self.storm.get_mut(port as usize) {
            Some(s) => s,
            None => &mut self.tunnel_storm,
        };
        if let Some(v) = shared {
            // Shared uplinks learn nothing; their floods are policed
            // as a bridge's are.
            let v = match v {
                Verdict::Flood(d) => match police_multicast(storm, dst, self.now_ns) {
                    Ok(()) => Verdict::Flood(d),
                    Err(r) => Verdict::Drop(r),
                },
                v => v,
            };
            if let Verdict::Drop(r) = v {
                drops.count(r);
            }
            batch.verdict[i] = v;
            return;
        }
        if port < TUNNEL_BASE || d.is_none_or(|d| d.learn_tunnels) {
            self.table.learn(domain, src, port, self.now_secs);
        }
        if port < TUNNEL_BASE && batch.ethertype[i] == ETH_ARP && d.is_some_and(|d| d.suppress_arp)
        {
            if let Some(v) = suppress(self.arp.as_deref(), batch, i, mem, domain) {
                batch.verdict[i] = v;
                return;
            }
        }
        let verdict = if dst.is_multicast() {
            match police_multicast(storm, dst, self.now_ns) {
                Ok(()) => Verdict::Flood(domain),
                Err(r) => Verdict::Drop(r),
            }
        } else {
            match self.table.lookup(domain, dst) {
                Some(p) if p == port => Verdict::Drop(DropReason::SameSegment),
                Some(p) => Verdict::Forward(p),
                None if storm.unknown_unicast.take(self.now_ns) => Verdict::Flood(domain),
                None => Verdict::Drop(DropReason::StormUnknownUnicast),
            }
        };
        if let Verdict::Drop(r) = verdict {
            drops.count(r);
        }
        batch.verdict[i] = verdict;
    }
}

/// How many frames from the batch's first have its first 12 bytes
/// (destination and source), ingress port and domain, all pending.
fn leading_run<M: FrameMemory + ?Sized>(batch: &Batch, mem: &M) -> usize {
    let n = batch.len();
    let pending = n > 1 && batch.verdict[0] == Verdict::Pending;
    let Some(first) = pending.then(|| mem.bytes(batch.addr[0], 12)).flatten() else {
        return n.min(1);
    };
    let mut run = 1;
    while run < n
        && batch.verdict[run] == Verdict::Pending
        && batch.in_port[run] == batch.in_port[0]
        && batch.domain[run] == batch.domain[0]
        && mem.bytes(batch.addr[run], 12) == Some(first)
    {
        run += 1;
    }
    run
}

const ETH_ARP: u16 = 0x0806;

/// A local ARP packet in a suppressing domain: its sender is recorded; a
/// request for an address the cache has (of another host) is turned into
/// the reply, in place, back to where it came from. `None`: it goes on as
/// any frame (flooded if broadcast).
fn suppress<M: FrameMemory + ?Sized>(
    cache: Option<&ArpCache>,
    batch: &mut Batch,
    i: usize,
    mem: &mut M,
    domain: DomainId,
) -> Option<Verdict> {
    let cache = cache?;
    // Untagged here only: a tagged frame keeps its tag bytes where
    // the reply would be written.
    if batch.tags[i] != 0 || batch.l3_off[i] != 14 || batch.tail_len[i] != 0 {
        return None;
    }
    // A reply is 60 bytes, and an ARP frame off a veth only 42 (nothing
    // pads it): its buffer still holds 60.
    let f = mem.bytes_mut(batch.addr[i], batch.data_len[i].max(60))?;
    let a = ArpPacket::new_checked(f.get(14..)?).ok()?;
    let (op, smac, sip, tip) = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip());
    cache.snoop(domain, sip, smac);
    if op != arp::OP_REQUEST || sip == tip {
        return None;
    }
    let (mac, _) = cache.lookup(domain, tip).filter(|(m, _)| *m != smac)?;
    arp::emit_frame(&mut f[..42], mac, tip, Some(smac), sip);
    f[42..60].fill(0);
    batch.data_len[i] = 60;
    cache.counters.suppressed.fetch_add(1, Ordering::Relaxed);
    Some(Verdict::Forward(batch.in_port[i]))
}

/// Takes a token from the port's broadcast or multicast bucket, or names
/// the limit a flood of `dst` is over.
#[inline(always)]
fn police_multicast(storm: &mut StormControl, dst: MacAddr, now_ns: u64) -> Result<(), DropReason> {
    let (bucket, reason) = if dst.is_broadcast() {
        (&mut storm.broadcast, DropReason::StormBroadcast)
    } else {
        (&mut storm.multicast, DropReason::StormMulticast)
    };
    if bucket.take(now_ns) {
        Ok(())
    } else {
        Err(reason)
    }
}

/// Runs ipvlan on packet `i`, whose bytes it may rewrite (an ARP or ND
/// answer, the MAC rewrites).
#[inline(always)]
fn ipvlan_decide<M: FrameMemory + ?Sized>(
    v: &IpVlan,
    batch: &mut Batch,
    i: usize,
    mem: &mut M,
) -> Verdict {
    let icmp6 = batch.flags[i] & (flags::IPV6 | flags::L4) == flags::IPV6 | flags::L4
        && batch.l4_proto[i] == crate::wire::ipv4::protocol::ICMPV6;
    let meta = ipvlan::Meta {
        in_port: batch.in_port[i],
        domain: batch.domain[i],
        ethertype: batch.ethertype[i],
        l3_off: batch.l3_off[i] as usize,
        icmp6_off: icmp6.then_some(batch.l4_off[i] as usize),
    };
    let Some(f) = mem.bytes_mut(batch.addr[i], batch.data_len[i]) else {
        return Verdict::Drop(DropReason::BadDescriptor);
    };
    let (verdict, len) = v.decide(f, meta);
    if let Some(n) = len {
        batch.data_len[i] = n;
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x06]);
        f.resize(60, 0);
        f
    }

    fn bridge(storm: StormControl) -> Bridge {
        let d = Domain::learning("red", vec![0, 1, 2]);
        Bridge::new(
            vec![d],
            Arc::new(MacTable::new(1024)),
            vec![storm.clone(), storm.clone(), storm],
        )
    }

    /// Runs the stage on frames (port, bytes) all in domain 0.
    fn run(b: &mut Bridge, frames: &[(PortId, Vec<u8>)]) -> (Vec<Verdict>, DropCounters) {
        let mut mem = Vec::new();
        let mut batch = Batch::new();
        for (p, f) in frames {
            batch.push(mem.len() as u64, f.len() as u32, 0, *p);
            mem.extend_from_slice(f);
        }
        for i in 0..batch.len() {
            batch.domain[i] = 0;
        }
        let mut drops = DropCounters::default();
        b.process(&mut batch, &mut mem, &mut drops);
        ((0..batch.len()).map(|i| batch.verdict[i]).collect(), drops)
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const BC: [u8; 6] = [0xff; 6];

    #[test]
    fn learns_forwards_floods_and_refuses_hairpins() {
        let mut b = bridge(StormControl::unlimited());
        let (v, _) = run(
            &mut b,
            &[
                (0, frame(BC, A)),
                (1, frame(A, B)),
                (0, frame(B, A)),
                (0, frame([2, 0, 0, 0, 0, 0xc], A)),
            ],
        );
        assert_eq!(
            v,
            vec![
                Verdict::Flood(0),
                Verdict::Forward(0),
                Verdict::Forward(1),
                Verdict::Flood(0)
            ]
        );
        // A moves to port 2; a frame to A from port 2 is a hairpin.
        let (v, drops) = run(&mut b, &[(2, frame(BC, A)), (1, frame(A, B))]);
        assert_eq!(v[1], Verdict::Forward(2));
        let (v, _) = run(&mut b, &[(2, frame(A, [2, 0, 0, 0, 0, 0xd]))]);
        assert_eq!(v[0], Verdict::Drop(DropReason::SameSegment));
        assert_eq!(drops.total(), 0);
        assert_eq!(
            b.table
                .counters
                .moves
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    /// What a frame earlier in a batch teaches is seen by the frames after
    /// it; a leading run of one flow is forwarded as its first frame is.
    #[test]
    fn a_batch_sees_what_its_own_frames_taught() {
        let mut b = bridge(StormControl::unlimited());
        let (v, _) = run(
            &mut b,
            &[
                (0, frame(B, A)),
                (0, frame(B, A)),
                (1, frame(A, B)),
                (0, frame(B, A)),
                (2, frame(A, B)),
                (0, frame(B, A)),
                // B moves by a broadcast, which looks nothing up.
                (1, frame(BC, B)),
                (0, frame(B, A)),
            ],
        );
        assert_eq!(
            v,
            vec![
                Verdict::Flood(0),
                Verdict::Flood(0),
                Verdict::Forward(0),
                Verdict::Forward(1),
                Verdict::Forward(0),
                Verdict::Forward(2),
                Verdict::Flood(0),
                Verdict::Forward(1)
            ]
        );
    }

    #[test]
    fn a_leading_run_of_one_flow_goes_where_its_first_frame_goes() {
        let mut b = bridge(StormControl::unlimited());
        // B unknown: each frame of the run is flooded (and policed) in turn.
        let (v, _) = run(
            &mut b,
            &[(0, frame(B, A)), (0, frame(B, A)), (0, frame(B, A))],
        );
        assert_eq!(v, vec![Verdict::Flood(0); 3]);
        run(&mut b, &[(1, frame(A, B))]);
        let mut frames = vec![(0, frame(B, A)); 5];
        // The run ends at a frame from another port.
        frames.push((2, frame(B, A)));
        frames.push((0, frame(B, A)));
        let (v, _) = run(&mut b, &frames);
        assert_eq!(v[..5], [Verdict::Forward(1); 5]);
        // A moved to port 2, and back to 0.
        assert_eq!(v[5..], [Verdict::Forward(1), Verdict::Forward(1)]);
        assert_eq!(b.table.lookup(0, MacAddr(A)), Some(0));
    }

    /// An ipvlan domain's members share the parent's MAC: a run of frames
    /// from the parent with one destination and source MAC still goes to
    /// as many members as it has destination addresses.
    #[test]
    fn an_ipvlan_run_goes_to_each_frames_own_member() {
        let shared = MacAddr([2, 0, 0, 0, 0, 0x50]);
        let mut v = IpVlan::new(0, shared);
        v.add_v4([198, 18, 9, 1], 1, MacAddr([2, 0, 0, 0, 0, 1]));
        v.add_v4([198, 18, 9, 2], 2, MacAddr([2, 0, 0, 0, 0, 2]));
        let mut d = Domain::learning("ipv", vec![0, 1, 2]);
        d.kind = DomainKind::IpVlan(Arc::new(v));
        let storm = StormControl::unlimited();
        let mut b = Bridge::new(
            vec![d],
            Arc::new(MacTable::new(64)),
            vec![storm.clone(), storm.clone(), storm],
        );
        let mut mem = Vec::new();
        let mut batch = Batch::new();
        for last in [1u8, 1, 2, 2] {
            // An ARP reply (not a request, which would be answered), its
            // target address the member's.
            let mut f = frame(shared.0, A);
            f[14 + 24..14 + 28].copy_from_slice(&[198, 18, 9, last]);
            batch.push(mem.len() as u64, f.len() as u32, 0, 0);
            mem.extend_from_slice(&f);
        }
        for i in 0..batch.len() {
            batch.domain[i] = 0;
            batch.ethertype[i] = ETH_ARP;
            batch.l3_off[i] = 14;
        }
        let mut drops = DropCounters::default();
        b.process(&mut batch, &mut mem, &mut drops);
        let got: Vec<Verdict> = (0..batch.len()).map(|i| batch.verdict[i]).collect();
        assert_eq!(
            got,
            [1, 1, 2, 2].map(Verdict::Forward).to_vec(),
            "{drops:?}"
        );
    }

    #[test]
    fn a_suppressing_domain_answers_arp_for_addresses_it_knows() {
        let mut d = Domain::learning("evpn", vec![0, 1]);
        d.suppress_arp = true;
        let cache = Arc::new(ArpCache::new(64));
        let mut b = Bridge::new(
            vec![d],
            Arc::new(MacTable::new(64)),
            vec![StormControl::unlimited(), StormControl::unlimited()],
        )
        .with_arp(cache.clone());
        let remote = MacAddr([2, 0, 0, 0, 0, 0xc]);
        cache.set_remote(0, [198, 19, 0, 3], remote);
        let request = |target: [u8; 4]| {
            let mut f = vec![0u8; 60];
            arp::emit_frame(&mut f, MacAddr(A), [198, 19, 0, 1], None, target);
            f
        };
        let mut mem = request([198, 19, 0, 3]);
        mem.extend(request([198, 19, 0, 9]));
        let mut batch = Batch::new();
        // The first as a veth hands it over: 42 bytes, unpadded.
        batch.push(0, 42, 0, 0);
        batch.push(60, 60, 0, 0);
        for i in 0..2 {
            batch.domain[i] = 0;
            batch.ethertype[i] = ETH_ARP;
            batch.l3_off[i] = 14;
        }
        let mut drops = DropCounters::default();
        b.process(&mut batch, &mut mem, &mut drops);
        // Known: answered back to the asker, as the remote host would.
        assert_eq!(batch.verdict[0], Verdict::Forward(0));
        assert_eq!(batch.data_len[0], 60);
        let a = ArpPacket::new_checked(&mem[14..42]).unwrap();
        assert_eq!(a.operation(), arp::OP_REPLY);
        assert_eq!((a.sender_mac(), a.sender_ip()), (remote, [198, 19, 0, 3]));
        assert_eq!(a.target_ip(), [198, 19, 0, 1]);
        assert_eq!(&mem[0..12], &[A, remote.0].concat()[..]);
        // Unknown: flooded as ever; the asker is recorded either way.
        assert_eq!(batch.verdict[1], Verdict::Flood(0));
        assert_eq!(cache.lookup(0, [198, 19, 0, 1]), Some((MacAddr(A), false)));
        assert_eq!(cache.counters.suppressed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn multicast_sources_are_dropped() {
        let mut b = bridge(StormControl::unlimited());
        let (v, drops) = run(&mut b, &[(0, frame(A, [0x01, 0, 0x5e, 0, 0, 1]))]);
        assert_eq!(v[0], Verdict::Drop(DropReason::SrcMacMulticast));
        assert_eq!(drops.get(DropReason::SrcMacMulticast), 1);
    }

    #[test]
    fn storm_control_limits_each_kind_of_flood() {
        let mut b = bridge(StormControl::new(100, 100, 100));
        b.set_clock(1_000_000_000);
        // The burst allowance is 64 packets of each kind.
        let many = |dst: [u8; 6]| {
            (0..64u8)
                .map(|i| (0 as PortId, frame(dst, [2, 1, 0, 0, 0, i])))
                .collect::<Vec<_>>()
        };
        for (dst, reason) in [
            (BC, DropReason::StormBroadcast),
            ([0x01, 0, 0x5e, 0, 0, 9], DropReason::StormMulticast),
            ([2, 9, 9, 9, 9, 9], DropReason::StormUnknownUnicast),
        ] {
            let (v, _) = run(&mut b, &many(dst));
            assert!(
                v.iter().all(|x| *x == Verdict::Flood(0)),
                "{reason:?}: the burst passes"
            );
            let (v, drops) = run(&mut b, &many(dst));
            assert!(
                v.iter().all(|x| *x == Verdict::Drop(reason)),
                "{reason:?}: then the limit holds"
            );
            assert_eq!(drops.get(reason), 64);
        }
        // Known unicast is never policed.
        let (v, _) = run(&mut b, &[(1, frame([2, 1, 0, 0, 0, 3], B))]);
        assert_eq!(v[0], Verdict::Forward(0));
    }
}
