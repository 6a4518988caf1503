//! The forward hook's common case, a burst at a time, as VPP's
//! ip4-rewrite node: an IPv4 packet whose FIB entry is one gateway next
//! hop with a known MAC takes that next hop's adjacency (egress domain,
//! MACs, port, MTU), resolved once per next hop and kept for up to
//! `ADJ_TTL_NS` (see `Adjacencies`), and is rewritten in one short
//! loop. Everything else (ECMP, connected destinations, which are their
//! own neighbour, the input hook, TTL and MTU errors, an unresolved
//! neighbour, NAT) stays pending for the router's general pass, which
//! handles every case: the two passes decide a packet the same way, the
//! fast one with less per packet.

use super::{decrement_hop, forward_to, Router, NO_FIB};
use crate::batch::{flags, Batch};
use crate::frame::FrameMemory;
use crate::l3::interface::Interfaces;
use crate::l3::neighbor;
use crate::l3::nexthop::{NextHop, NextHops};
use crate::l3::trie::NextHopId;
use crate::mac_table::Learned;
use crate::verdict::{DomainId, PortId};
use crate::wire::MacAddr;

/// Slots of the cache, direct-mapped by next-hop id: traffic goes to a
/// few next hops at a time.
const SLOTS: usize = 8;
/// How long a resolved adjacency is used before it is resolved again.
/// A neighbour's new MAC or a MAC move another worker learned shows
/// within this; what this worker's router learns (a sender, an ARP or ND
/// answer) and a new next-hop table or interface set empty the cache at
/// once. Resolving each burst cost the router with 1 M routes about 3 %.
const ADJ_TTL_NS: u64 = 100_000;

/// Next-hop id → where its packets go, for `ADJ_TTL_NS`: the egress
/// interface's domain, router MAC and MTU, the neighbour's MAC, the port
/// the MAC table has the neighbour on (`None`: flooded). Kept as
/// arrays read field by field in the loop: an adjacency struct copied out
/// of the cache went through the stack and stalled on store forwarding.
/// An id the fast pass leaves to the general one is cached too (`ok`
/// false) so it is not resolved again. Emptied when it is `ADJ_TTL_NS`
/// old, when the tables it came from are replaced, and when this router
/// learns a new or moved sender or reads an ARP or ND packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Adjacencies {
    ids: [NextHopId; SLOTS],
    ok: [bool; SLOTS],
    domain: [DomainId; SLOTS],
    mtu: [u16; SLOTS],
    src: [[u8; 6]; SLOTS],
    dst: [[u8; 6]; SLOTS],
    port: [Option<PortId>; SLOTS],
    /// When the cache was last emptied, and the next-hop table and
    /// interface set (by address) its entries came from.
    since_ns: u64,
    tables: (usize, usize),
}

impl Default for Adjacencies {
    fn default() -> Self {
        Adjacencies {
            ids: [NO_FIB; SLOTS],
            ok: [false; SLOTS],
            domain: [0; SLOTS],
            mtu: [0; SLOTS],
            src: [[0; 6]; SLOTS],
            dst: [[0; 6]; SLOTS],
            port: [None; SLOTS],
            since_ns: 0,
            tables: (0, 0),
        }
    }
}

impl Adjacencies {
    #[inline(always)]
    pub fn clear(&mut self) {
        self.ids = [NO_FIB; SLOTS];
    }

    /// Empties the cache if it is too old or its tables were replaced.
    #[inline(always)]
    fn refresh(&mut self, now_ns: u64, nhs: &NextHops, ifs: &Interfaces) {
        let tables = (
            nhs as *const NextHops as usize,
            ifs as *const Interfaces as usize,
        );
        if now_ns.wrapping_sub(self.since_ns) > ADJ_TTL_NS || tables != self.tables {
            self.clear();
            self.since_ns = now_ns;
            self.tables = tables;
        }
    }
}

impl Router {
    /// The fast pass over the burst, after `lookup_batch`: see the module
    /// comment. Off with NAT, whose hooks sit between lookup and rewrite.
    #[inline]
    pub(super) fn forward_plain<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        ifs: &Interfaces,
        nhs: &NextHops,
    ) {
        self.adj.refresh(self.now_ns, nhs, ifs);
        for i in 0..batch.len() {
            let id = self.fib[i];
            // `lookup_batch` set an id only for pending, untagged frames
            // to their interface's router MAC.
            if id == NO_FIB || batch.flags[i] & flags::IPV4 == 0 {
                continue;
            }
            let Some(a) = self.adjacency(id, ifs, nhs) else {
                continue;
            };
            let l3 = batch.l3_off[i] as usize;
            let Some(f) = mem.bytes_mut(batch.addr[i], batch.data_len[i]) else {
                continue;
            };
            let (Some(eth), Some(h)) = (f.get(6..12), f.get(l3..l3 + 12)) else {
                continue;
            };
            let src = MacAddr::from_bytes(eth);
            let (ttl, total) = (h[8], u16::from_be_bytes([h[2], h[3]]));
            if src.is_multicast() || ttl <= 1 || total > self.adj.mtu[a] {
                continue;
            }
            self.learn_sender(batch.domain[i], src, batch.in_port[i]);
            // A learn that empties the cache forgets only its ids: slot
            // `a` still holds this packet's adjacency.
            let c = &self.adj;
            let (d, from, to, port) = (c.domain[a], c.src[a], c.dst[a], c.port[a]);
            decrement_hop(f, l3, false);
            forward_to(batch, i, f, d, from, to, port);
        }
    }

    /// The cache slot of next hop `id`'s adjacency, resolved if the burst
    /// has not met it yet: `None` unless it is one gateway whose MAC the
    /// neighbour table has.
    #[inline(always)]
    fn adjacency(&mut self, id: NextHopId, ifs: &Interfaces, nhs: &NextHops) -> Option<usize> {
        let s = id as usize % SLOTS;
        if self.adj.ids[s] != id {
            self.resolve_adjacency(s, id, ifs, nhs);
        }
        self.adj.ok[s].then_some(s)
    }

    #[inline(never)]
    fn resolve_adjacency(&mut self, s: usize, id: NextHopId, ifs: &Interfaces, nhs: &NextHops) {
        let c = &mut self.adj;
        c.ids[s] = id;
        c.ok[s] = false;
        let NextHop::Gateway { ifx, ip } = nhs.get(id) else {
            return;
        };
        let Some(out) = ifs.get(ifx) else { return };
        let key = neighbor::key_of(ip);
        let Some(dst) = self
            .tables
            .neighbors
            .lookup_key(out.domain, key, self.now_ns)
            .and_then(|f| f.mac)
        else {
            return;
        };
        c.ok[s] = true;
        c.domain[s] = out.domain;
        c.mtu[s] = out.mtu;
        c.src[s] = out.mac.0;
        c.dst[s] = dst;
        c.port[s] = self.macs.lookup(out.domain, MacAddr(dst));
    }

    /// Learns the sender of a frame to the router MAC, once per burst per
    /// sender (VPP's l2 nodes keep their last key the same way); a change
    /// in the MAC table may move a next hop, so the burst's next hops are
    /// resolved again after it.
    #[inline(always)]
    pub(super) fn learn_sender(&mut self, d: DomainId, src: MacAddr, port: PortId) {
        let seen = (d, src, port);
        if self.last_learned == Some(seen) {
            return;
        }
        // Only an entry in place is remembered: a refused learn is
        // counted every time.
        let learned = self.macs.learn(d, src, port, self.now_secs);
        self.last_learned = match learned {
            Learned::Known | Learned::New | Learned::Moved { .. } => Some(seen),
            Learned::StaticConflict | Learned::Overflow => None,
        };
        // A known sender changed nothing the cached next hops came from.
        if !matches!(learned, Learned::Known) {
            self.hops.clear();
            self.adj.clear();
        }
    }
}
