//! The router stage, between the ingress ACL and the bridge. A frame to a
//! gateway interface's router MAC leaves L2: to one of pollgate's own
//! addresses it meets the input hook (ARP, ND, ICMP echo); otherwise it
//! is routed — FIB longest match, ECMP, TTL / hop limit, the egress
//! MTU, the next hop's MAC — and re-enters the egress interface's domain
//! from the router's own pseudo-port, so the MAC table, the VLAN and
//! VXLAN egress stages and flooding treat it like any member's frame.
//! ARP requests and ND solicitations for the gateway's addresses are
//! answered here instead of being flooded. Every other frame passes on
//! to the bridge untouched.
//!
//! This file has the stage's two passes over a burst (the batched FIB
//! lookup and the general per-packet pass) and forwarding; beside it,
//! `adjacency` is the fast pass of the common case, `discovery` ARP and
//! ND, `hold` the packets waiting for a neighbour, `input` the input hook
//! and the ICMP errors.

mod adjacency;
mod discovery;
mod hold;
mod input;

use hold::{Held, HOLD_MAX, MAX_REQUESTS};

use super::fib::{key_v4, key_v6};
use super::icmp;
use super::interface::Interfaces;
use super::nd;
use super::neighbor;
use super::nexthop::{flow_hash, NextHop, NextHops};
use super::recent::Recent;
use super::tables::L3Tables;
use crate::batch::{flags, Batch, BATCH_SIZE};
use crate::conntrack::FlowTable;
use crate::frame::FrameMemory;
use crate::mac_table::MacTable;
use crate::nat::{Nat, Pre};
use crate::storm::TokenBucket;
use crate::verdict::{DomainId, DropCounters, DropReason, PortId, Verdict};
use crate::wire::MacAddr;
use std::net::IpAddr;
use std::sync::Arc;

/// The router's pseudo-port: the ingress port of what it sends. Never a
/// real port, a tunnel (`TUNNEL_BASE`…) or the tunnels' flood member.
pub const ROUTER_PORT: PortId = 0x7ffe;

const ETH_ARP: u16 = 0x0806;
const ETH_V4: u16 = 0x0800;
const ETH_V6: u16 = 0x86dd;

/// An ICMP error to send about the packet: (type, code), second word.
type IcmpError = ((u8, u8), u32);

/// What routing needs of an IPv4 or IPv6 header (addresses as FIB keys).
struct IpHeader {
    v6: bool,
    src: u128,
    dst: u128,
    /// TTL or hop limit.
    hop: u8,
    /// Bytes of the IP packet, header included.
    total: u32,
    df: bool,
    proto: u8,
    /// Where the TCP/UDP ports are, read only for an ECMP hash.
    l4: usize,
}

/// The ICMP errors of each family, for the same conditions.
struct Codes {
    net_unreachable: (u8, u8),
    host_unreachable: (u8, u8),
    time_exceeded: (u8, u8),
    too_big: (u8, u8),
}

const V4_CODES: Codes = Codes {
    net_unreachable: icmp::V4_NET_UNREACHABLE,
    host_unreachable: icmp::V4_HOST_UNREACHABLE,
    time_exceeded: icmp::V4_TIME_EXCEEDED,
    too_big: icmp::V4_FRAG_NEEDED,
};

const V6_CODES: Codes = Codes {
    net_unreachable: icmp::V6_NO_ROUTE,
    host_unreachable: icmp::V6_ADDR_UNREACHABLE,
    time_exceeded: icmp::V6_TIME_EXCEEDED,
    too_big: icmp::V6_TOO_BIG,
};

/// The TCP/UDP ports word of packet `i` (0 for other protocols and later
/// fragments).
#[inline(always)]
fn ports(batch: &Batch, i: usize, f: &[u8], l4: usize, proto: u8) -> u32 {
    if batch.flags[i] & flags::L4 != 0 && matches!(proto, 6 | 17) {
        f.get(l4..l4 + 4)
            .map_or(0, |p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
    } else {
        0
    }
}

pub struct Router {
    pub ifs: Arc<Interfaces>,
    pub tables: Arc<L3Tables>,
    macs: Arc<MacTable>,
    /// ICMP errors per second this worker may send (RFC 1812 4.3.2.8).
    icmp: TokenBucket,
    now_ns: u64,
    now_secs: u32,
    /// Each packet's FIB result (IPv4 or IPv6), looked up for the whole
    /// batch before the per-packet pass (`NO_FIB`: not looked up).
    fib: [u32; BATCH_SIZE],
    /// The next hops resolved in this batch, an adjacency as VPP's: the
    /// (interface, neighbour address) to its MAC and the port the MAC
    /// table has it on. A burst goes to a few next hops. The address is
    /// the neighbour table's key: an `IpAddr` built per packet and read
    /// back cost a store-forwarding stall each time.
    hops: Recent<(u16, u128), ([u8; 6], Option<PortId>), 4>,
    /// The last source learned in this batch (VPP's l2 nodes keep their
    /// last key the same way): a burst mostly comes from one host.
    last_learned: Option<(DomainId, MacAddr, PortId)>,
    /// The fast pass's next hops, by FIB result (see `Adjacencies`).
    adj: adjacency::Adjacencies,
    /// Whether the fast pass runs (tests turn it off to compare).
    fast: bool,
    /// Packets held while their next hop resolves (`HOLD_MAX`, allocated
    /// once).
    held: Vec<Held>,
    /// Neighbours to ask for (ARP request, NS): the worker builds and
    /// floods the frames, since a held packet is not one to overwrite.
    requests: Vec<(u16, IpAddr)>,
    /// NAT44 at prerouting and postrouting, when rules exist.
    nat: Option<Nat>,
    /// The batch is packets other workers handed over for their NAT
    /// sessions: this worker holds them, they are never handed on.
    handed: bool,
}

/// Marks a packet the batched FIB pass did not look up.
const NO_FIB: u32 = u32::MAX;

impl Router {
    pub fn new(
        ifs: Arc<Interfaces>,
        tables: Arc<L3Tables>,
        macs: Arc<MacTable>,
        icmp_rate: u64,
    ) -> Router {
        Router {
            ifs,
            tables,
            macs,
            icmp: TokenBucket::new(icmp_rate),
            now_ns: 0,
            now_secs: 0,
            fib: [NO_FIB; BATCH_SIZE],
            hops: Recent::default(),
            last_learned: None,
            adj: Default::default(),
            fast: true,
            held: Vec::with_capacity(HOLD_MAX),
            requests: Vec::with_capacity(MAX_REQUESTS),
            nat: None,
            handed: false,
        }
    }

    /// Marks the batches `process` gets next as handed over by other
    /// workers (or not).
    pub fn set_handed(&mut self, handed: bool) {
        self.handed = handed;
    }

    pub fn handed(&self) -> bool {
        self.handed
    }

    /// Leaves every packet to the general pass: tests hold the fast pass
    /// to the general one's answers with it.
    #[doc(hidden)]
    pub fn general_pass_only(mut self) -> Router {
        self.fast = false;
        self
    }

    /// Adds NAT (its sessions go in the flow table `process` is given).
    pub fn with_nat(mut self, nat: Nat) -> Router {
        self.nat = Some(nat);
        self
    }

    pub fn nat(&self) -> Option<&Nat> {
        self.nat.as_ref()
    }

    pub fn nat_mut(&mut self) -> Option<&mut Nat> {
        self.nat.as_mut()
    }

    pub fn set_clock(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.now_secs = (now_ns / 1_000_000_000) as u32;
    }

    /// The frames that announce every gateway address: a gratuitous ARP
    /// (a request for itself) per IPv4 address, an unsolicited NA to all
    /// nodes per IPv6 one, with the domain each is flooded in.
    pub fn announcements(&self) -> Vec<(DomainId, Vec<u8>)> {
        let mut out = Vec::new();
        for ifc in self.ifs.iter() {
            for a in ifc.v4.iter().map(|(a, _)| a).chain(&ifc.nat_v4) {
                let mut f = vec![0u8; 60];
                crate::wire::arp::emit_frame(&mut f[..42], ifc.mac, *a, None, *a);
                out.push((ifc.domain, f));
            }
            for (a, _) in &ifc.v6 {
                let mut f = vec![0u8; nd::ND_FRAME_LEN];
                if nd::write_unsolicited_na(&mut f, ifc, *a).is_some() {
                    out.push((ifc.domain, f));
                }
            }
        }
        out
    }

    /// Keeps `old`'s ICMP budget and held packets across a topology
    /// change.
    pub fn carry_over(&mut self, old: &mut Router) {
        self.icmp = old.icmp.clone();
        self.held = std::mem::take(&mut old.held);
        self.requests = std::mem::take(&mut old.requests);
        if let (Some(new), Some(old)) = (&mut self.nat, old.nat.take()) {
            new.carry_over(old);
        }
    }

    pub fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
        mut flows: Option<&mut FlowTable>,
    ) {
        let ifs = self.ifs.clone();
        let nhs = self.tables.next_hops.load();
        self.hops.clear();
        self.last_learned = None;
        self.lookup_batch(batch, mem, &ifs, flows.as_deref());
        if self.fast && self.nat.is_none() {
            self.forward_plain(batch, mem, &ifs, &nhs);
        }
        for i in 0..batch.len() {
            if batch.verdict[i] != Verdict::Pending || batch.tags[i] != 0 {
                continue;
            }
            let d = batch.domain[i];
            let Some(ifc) = ifs.get(d) else { continue };
            let Some(f) = mem.bytes(batch.addr[i], batch.data_len[i]) else {
                continue;
            };
            if f.len() < 14 {
                continue;
            }
            let dst = MacAddr::from_bytes(&f[0..6]);
            let src = MacAddr::from_bytes(&f[6..12]);
            if src.is_multicast() {
                continue;
            }
            let et = batch.ethertype[i];
            if dst == ifc.mac {
                self.learn_sender(d, src, batch.in_port[i]);
                match et {
                    ETH_ARP => {
                        if let Some(v) = self.arp(batch, i, mem, ifc, true) {
                            set(batch, i, v, drops);
                        }
                    }
                    ETH_V4 if batch.flags[i] & flags::IPV4 != 0 => {
                        self.route_v4(batch, i, mem, &ifs, &nhs, drops, flows.as_deref_mut())
                    }
                    ETH_V6 if batch.flags[i] & flags::IPV6 != 0 => {
                        self.route_v6(batch, i, mem, &ifs, &nhs, drops, flows.as_deref_mut())
                    }
                    _ => set(batch, i, Verdict::Drop(DropReason::L3NotIp), drops),
                }
            } else if dst.is_multicast() {
                // Answering turns the packet around (its ingress port
                // becomes the router's): learn where it came from first.
                let came_in = batch.in_port[i];
                let v = match et {
                    ETH_ARP => self.arp(batch, i, mem, ifc, false),
                    ETH_V6 if batch.l4_proto[i] == 58 && batch.flags[i] & flags::L4 != 0 => {
                        self.nd(batch, i, mem, ifc, false)
                    }
                    _ => None,
                };
                if let Some(v) = v {
                    self.macs.learn(d, src, came_in, self.now_secs);
                    set(batch, i, v, drops);
                }
            }
        }
        // After the batch: what it taught (an ARP reply, an NA) lets held
        // packets go now, behind it.
        if !self.held.is_empty() {
            self.release(batch, mem, &ifs, drops);
        }
        if let Some(t) = flows {
            t.touch_held(self.now_ns);
        }
    }

    /// Looks up the destination of every IPv4 and IPv6 packet to a
    /// router MAC in one pass per family: the loads of a burst are
    /// independent, so their cache and TLB misses overlap (a large or
    /// sparse table is far outside the caches), and the IPv6 trie is
    /// walked a level at a time for the whole burst.
    fn lookup_batch<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &Batch,
        mem: &M,
        ifs: &Interfaces,
        flows: Option<&FlowTable>,
    ) {
        let mut addrs = [0u32; BATCH_SIZE];
        let mut which = [0u8; BATCH_SIZE];
        let mut n = 0;
        let mut which6 = [0u8; BATCH_SIZE];
        let mut n6 = 0;
        for i in 0..batch.len() {
            self.fib[i] = NO_FIB;
            if batch.verdict[i] != Verdict::Pending || batch.tags[i] != 0 {
                continue;
            }
            if batch.flags[i] & flags::IPV4 == 0 {
                // IPv6 is only noted here, so that an IPv4 burst runs the
                // loop it ran before IPv6 was batched too.
                if batch.flags[i] & flags::IPV6 != 0 {
                    which6[n6] = i as u8;
                    n6 += 1;
                }
                continue;
            }
            let Some(a) = routed_dst::<4, M>(batch, i, mem, ifs, 16) else {
                continue;
            };
            addrs[n] = u32::from_be_bytes(a);
            self.tables.v4.warm_v4(addrs[n], mem);
            which[n] = i as u8;
            n += 1;
        }
        // NAT's sessions, in a table of up to millions of entries: their
        // slots are prefetched for the whole burst here too.
        if let (Some(nat), Some(ct)) = (&self.nat, flows.filter(|t| t.worth_warming())) {
            for &i in &which[..n] {
                let i = i as usize;
                if let Some(f) = mem.bytes(batch.addr[i], batch.data_len[i]) {
                    let has_l4 = batch.flags[i] & flags::L4 != 0;
                    let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
                    nat.warm(f, l3, l4, has_l4, ct, mem);
                }
            }
        }
        let mut out = [0u32; BATCH_SIZE];
        self.tables
            .v4
            .lookup_many_v4(&addrs[..n], &mut out[..n], mem);
        for k in 0..n {
            self.fib[which[k] as usize] = out[k];
        }
        if n6 > 0 {
            self.lookup_batch_v6(batch, mem, ifs, &which6[..n6]);
        }
    }

    /// `lookup_batch`'s IPv6 half, for the pending, untagged packets it
    /// noted: those to a router MAC are looked up together, the trie a
    /// level at a time.
    fn lookup_batch_v6<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &Batch,
        mem: &M,
        ifs: &Interfaces,
        noted: &[u8],
    ) {
        let mut keys = [0u128; BATCH_SIZE];
        let mut which = [0u8; BATCH_SIZE];
        let mut n = 0;
        for &i in noted {
            let i = i as usize;
            let Some(a) = routed_dst::<16, M>(batch, i, mem, ifs, 24) else {
                continue;
            };
            keys[n] = key_v6(a);
            self.tables.v6.warm(keys[n], mem);
            which[n] = i as u8;
            n += 1;
        }
        let mut out = [0u32; BATCH_SIZE];
        self.tables.v6.lookup_many(&keys[..n], &mut out[..n], mem);
        for k in 0..n {
            self.fib[which[k] as usize] = out[k];
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn route_v4<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        ifs: &Interfaces,
        nhs: &NextHops,
        drops: &mut DropCounters,
        mut flows: Option<&mut FlowTable>,
    ) {
        let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
        if let (Some(nat), false) = (&mut self.nat, self.handed) {
            let has_l4 = batch.flags[i] & flags::L4 != 0;
            let owner = mem
                .bytes(batch.addr[i], batch.data_len[i])
                .and_then(|f| nat.owner(f, l3, l4, has_l4));
            if let Some(w) = owner {
                batch.verdict[i] = Verdict::Handoff(w);
                return;
            }
        }
        let mut pre = Pre::Off;
        let mut looked_up = None;
        if let (Some(nat), Some(ct)) = (&mut self.nat, flows.as_deref_mut()) {
            if let Some(f) = mem.bytes_mut(batch.addr[i], batch.data_len[i]) {
                looked_up = f.get(l3 + 16..l3 + 20).map(|a| [a[0], a[1], a[2], a[3]]);
                let has_l4 = batch.flags[i] & flags::L4 != 0;
                pre = nat.prerouting(f, l3, l4, has_l4, ct, self.now_ns);
            }
        }
        let Some(f) = mem.bytes(batch.addr[i], batch.data_len[i]) else {
            return set(batch, i, Verdict::Drop(DropReason::BadDescriptor), drops);
        };
        let Some(h) = f.get(l3..l3 + 20) else {
            return set(batch, i, Verdict::Drop(DropReason::Ipv4Truncated), drops);
        };
        let dst = [h[16], h[17], h[18], h[19]];
        let hdr = IpHeader {
            v6: false,
            src: key_v4([h[12], h[13], h[14], h[15]]),
            dst: key_v4(dst),
            hop: h[8],
            total: u16::from_be_bytes([h[2], h[3]]) as u32,
            df: h[6] & 0x40 != 0,
            proto: h[9],
            l4,
        };
        // DNAT changed the destination the batch was looked up by.
        let dnat = looked_up.is_some_and(|a| a != dst);
        let id = match self.fib[i] {
            _ if dnat => self.tables.v4.lookup_v4(u32::from_be_bytes(dst)),
            NO_FIB => self.tables.v4.lookup_v4(u32::from_be_bytes(dst)),
            id => id,
        };
        self.route(batch, i, mem, ifs, nhs, id, &hdr, drops, pre, flows);
    }

    #[allow(clippy::too_many_arguments)]
    fn route_v6<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        ifs: &Interfaces,
        nhs: &NextHops,
        drops: &mut DropCounters,
        flows: Option<&mut FlowTable>,
    ) {
        let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
        let Some(f) = mem.bytes(batch.addr[i], batch.data_len[i]) else {
            return set(batch, i, Verdict::Drop(DropReason::BadDescriptor), drops);
        };
        let Some(h) = f.get(l3..l3 + 40) else {
            return set(batch, i, Verdict::Drop(DropReason::Ipv6Truncated), drops);
        };
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&h[24..40]);
        let mut src = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        let Some(ifc_in) = ifs.get(batch.domain[i]) else {
            return;
        };
        if dst[0] == 0xff || (dst[0] == 0xfe && dst[1] & 0xc0 == 0x80) {
            // Multicast and link-local destinations stay on the link.
            if ifc_in.owns_v6(dst) || dst[0] == 0xff {
                return self.input_v6(batch, i, mem, drops);
            }
            return set(batch, i, Verdict::Drop(DropReason::L3NoRoute), drops);
        }
        let proto = batch.l4_proto[i];
        let hdr = IpHeader {
            v6: true,
            src: key_v6(src),
            dst: key_v6(dst),
            hop: h[7],
            total: 40 + u16::from_be_bytes([h[4], h[5]]) as u32,
            // IPv6 routers never fragment: every packet is "DF".
            df: true,
            proto,
            l4,
        };
        let id = match self.fib[i] {
            NO_FIB => self.tables.v6.lookup(hdr.dst),
            id => id,
        };
        self.route(batch, i, mem, ifs, nhs, id, &hdr, drops, Pre::Off, flows);
    }

    /// Forwards one packet by its FIB result `id`, both families: the
    /// ECMP path, the input hook for our addresses, TTL / hop limit, the
    /// egress MTU, the neighbour, then the rewrite.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn route<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        ifs: &Interfaces,
        nhs: &NextHops,
        id: u32,
        hdr: &IpHeader,
        drops: &mut DropCounters,
        pre: Pre,
        flows: Option<&mut FlowTable>,
    ) {
        let codes = if hdr.v6 { &V6_CODES } else { &V4_CODES };
        let nh = match nhs.get(id) {
            NextHop::Ecmp { .. } => {
                let ports = mem
                    .bytes(batch.addr[i], batch.data_len[i])
                    .map_or(0, |f| ports(batch, i, f, hdr.l4, hdr.proto));
                nhs.path(id, flow_hash(hdr.src, hdr.dst, hdr.proto, ports))
            }
            other => other,
        };
        let (ifx, neigh) = match nh {
            NextHop::Connected { ifx } if hdr.v6 => (ifx, hdr.dst),
            NextHop::Connected { ifx } => (ifx, neighbor::key_of_fib_v4(hdr.dst)),
            NextHop::Gateway { ifx, ip } => (ifx, neighbor::key_of(ip)),
            NextHop::Local { .. } if hdr.v6 => return self.input_v6(batch, i, mem, drops),
            NextHop::Local { .. } => return self.input_v4(batch, i, mem, drops),
            NextHop::Blackhole => {
                return set(batch, i, Verdict::Drop(DropReason::L3Blackhole), drops)
            }
            NextHop::Unreachable => {
                let e = Some((codes.host_unreachable, 0));
                return self.fail(batch, i, mem, drops, DropReason::L3NoRoute, e);
            }
            NextHop::None | NextHop::Ecmp { .. } => {
                let e = Some((codes.net_unreachable, 0));
                return self.fail(batch, i, mem, drops, DropReason::L3NoRoute, e);
            }
        };
        if hdr.hop <= 1 {
            let e = Some((codes.time_exceeded, 0));
            return self.fail(batch, i, mem, drops, DropReason::TtlExceeded, e);
        }
        let Some(out) = ifs.get(ifx) else {
            return set(batch, i, Verdict::Drop(DropReason::L3NoRoute), drops);
        };
        if hdr.total > out.mtu as u32 {
            let e = hdr.df.then_some((codes.too_big, out.mtu as u32));
            return self.fail(batch, i, mem, drops, DropReason::IpTooBig, e);
        }
        if let (Some(nat), Some(ct), false) = (&mut self.nat, flows, matches!(pre, Pre::Off)) {
            let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
            let Some(f) = mem.bytes_mut(batch.addr[i], batch.data_len[i]) else {
                return set(batch, i, Verdict::Drop(DropReason::BadDescriptor), drops);
            };
            if let Err(r) = nat.postrouting(f, l3, l4, pre, batch.domain[i], out, ct, self.now_ns) {
                return set(batch, i, Verdict::Drop(r), drops);
            }
        }
        let (mac, port) = match self.hops.get((out.domain, neigh)) {
            Some(hop) => hop,
            None => match self.resolve(batch, i, mem, drops, out, neigh) {
                Some(mac) => {
                    let port = self.macs.lookup(out.domain, MacAddr(mac));
                    self.hops.put((out.domain, neigh), (mac, port));
                    (mac, port)
                }
                None => return,
            },
        };
        let l3 = batch.l3_off[i] as usize;
        let Some(f) = mem.bytes_mut(batch.addr[i], batch.data_len[i]) else {
            return set(batch, i, Verdict::Drop(DropReason::BadDescriptor), drops);
        };
        decrement_hop(f, l3, hdr.v6);
        forward_to(batch, i, f, out.domain, out.mac.0, mac, port);
    }
}

/// Packet `i`'s destination address (`N` bytes at `at` past its L3
/// header) when the frame is to its interface's router MAC: what the
/// batched FIB pass looks up, for either family.
#[inline(always)]
fn routed_dst<const N: usize, M: FrameMemory + ?Sized>(
    batch: &Batch,
    i: usize,
    mem: &M,
    ifs: &Interfaces,
    at: usize,
) -> Option<[u8; N]> {
    let ifc = ifs.get(batch.domain[i])?;
    let f = mem.bytes(batch.addr[i], batch.data_len[i])?;
    let l3 = batch.l3_off[i] as usize + at;
    let (d, a) = (f.get(0..6)?, f.get(l3..l3 + N)?);
    if d != ifc.mac.0 {
        return None;
    }
    a.try_into().ok()
}

/// Rewrites the MACs and hands the packet to the egress domain: to the
/// port the MAC table knows the next hop on (`port`), or flooded.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_to(
    batch: &mut Batch,
    i: usize,
    f: &mut [u8],
    d: DomainId,
    src: [u8; 6],
    dst: [u8; 6],
    port: Option<PortId>,
) {
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    batch.domain[i] = d;
    batch.in_port[i] = ROUTER_PORT;
    batch.flags[i] &= !flags::TUNNEL;
    batch.verdict[i] = match port {
        Some(p) => Verdict::Forward(p),
        None => Verdict::Flood(d),
    };
}

/// TTL − 1 with the IPv4 checksum updated (RFC 1624), or hop limit − 1.
#[inline(always)]
fn decrement_hop(f: &mut [u8], l3: usize, v6: bool) {
    if v6 {
        if let Some(h) = f.get_mut(l3 + 7) {
            *h = h.saturating_sub(1);
        }
        return;
    }
    // TTL, protocol and checksum: one slice, one bounds check.
    let Some(h) = f.get_mut(l3 + 8..l3 + 12) else {
        return;
    };
    let old = u16::from_be_bytes([h[0], h[1]]);
    h[0] = h[0].saturating_sub(1);
    let new = u16::from_be_bytes([h[0], h[1]]);
    let hc = u16::from_be_bytes([h[2], h[3]]);
    h[2..4].copy_from_slice(&super::csum::update(hc, old, new).to_be_bytes());
}

/// Sends packet `i`, rewritten to `len` bytes, back out of the port it
/// came in on, from the router.
#[inline]
fn reply(batch: &mut Batch, i: usize, len: usize) -> Verdict {
    batch.data_len[i] = len as u32;
    let back = batch.in_port[i];
    batch.in_port[i] = ROUTER_PORT;
    batch.flags[i] &= !flags::TUNNEL;
    Verdict::Forward(back)
}

#[inline]
fn set(batch: &mut Batch, i: usize, v: Verdict, drops: &mut DropCounters) {
    if let Verdict::Drop(r) = v {
        drops.count(r);
    }
    batch.verdict[i] = v;
}
