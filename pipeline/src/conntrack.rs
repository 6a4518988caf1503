//! The per-worker flow table, the conntrack of the pipeline: what the
//! stateful ACL and NAT both know flows by. A stateful permit records its
//! flow so the reverse direction is let back in (a reflexive ACL); a NAT
//! session is two entries, one per direction, each holding the rewrite
//! for its packets and the other's slot; an endpoint-independent mapping
//! (RFC 4787) is one entry per inside address and port.
//!
//! Fixed size, open addressing over a short probe window; when the
//! window is full of live entries the new one is counted as `table_full`
//! and not made. Reflexive flows are overwritten once expired; NAT
//! entries are only taken out by [`FlowTable::sweep`], so the session's
//! port and source count are given back with them.

use crate::acl::key::{chunk, AclKey, Family};
use crate::frame::FrameMemory;
use std::sync::atomic::{AtomicU64, Ordering};

/// Idle timeouts, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// A TCP flow that has seen a SYN and an ACK and no FIN or RST.
    pub tcp_established: u64,
    /// TCP opening or closing (SYN only, FIN or RST seen).
    pub tcp_transient: u64,
    pub udp: u64,
    pub other: u64,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        const S: u64 = 1_000_000_000;
        FlowTimeouts {
            tcp_established: 7440 * S,
            tcp_transient: 120 * S,
            udp: 120 * S,
            other: 60 * S,
        }
    }
}

const PROBE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpState {
    None,
    Opening,
    Established,
    Closing,
}

/// What an entry is: keys of different kinds never match each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reflexive,
    Nat,
    Mapping,
}

/// The 5-tuple an entry is known by (IPv4 addresses in the top 32 bits,
/// as the ACL keys hold them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub v6: bool,
    pub kind: Kind,
}

impl FlowKey {
    fn of(k: &AclKey) -> FlowKey {
        FlowKey {
            src: k.src(),
            dst: k.dst(),
            sport: k.c[chunk::SPORT],
            dport: k.c[chunk::DPORT],
            proto: k.c[chunk::PROTO] as u8,
            v6: k.family == Family::V6,
            kind: Kind::Reflexive,
        }
    }

    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    fn hash(&self) -> u64 {
        let mut h = (self.src as u64) ^ ((self.src >> 64) as u64).rotate_left(17);
        h ^= ((self.dst as u64) ^ ((self.dst >> 64) as u64).rotate_left(29)).rotate_left(31);
        h ^= (self.sport as u64) << 48
            | (self.dport as u64) << 32
            | (self.proto as u64) << 8
            | self.kind as u64;
        // murmur3's finalizer: every input bit reaches the low bits the
        // slot index is taken from.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// An IPv4 5-tuple's addresses and ports as NAT writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tuple4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
}

impl Tuple4 {
    pub fn reversed(&self) -> Tuple4 {
        Tuple4 {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }

    pub fn key(&self, proto: u8, kind: Kind) -> FlowKey {
        FlowKey {
            src: (u32::from_be_bytes(self.src) as u128) << 96,
            dst: (u32::from_be_bytes(self.dst) as u128) << 96,
            sport: self.sport,
            dport: self.dport,
            proto,
            v6: false,
            kind,
        }
    }
}

/// One direction of a NAT session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatSide {
    /// What this direction's packets are rewritten to.
    pub to: Tuple4,
    /// The other direction's slot.
    pub twin: u32,
    /// The direction of the packet that made the session (it holds the
    /// source count and, for SNAT, the mapping).
    pub origin: bool,
    /// Whether the session's source was mapped (SNAT), so the mapping's
    /// reference goes when the session does.
    pub mapped: bool,
}

/// An endpoint-independent mapping: inside (address, port) → the
/// address and port every session from it gets, while sessions use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub ip: [u8; 4],
    pub port: u16,
    pub refs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowData {
    Reflexive,
    Nat(NatSide),
    Mapping(Mapping),
}

#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub key: FlowKey,
    pub expires: u64,
    tcp: TcpState,
    pub data: FlowData,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    pub reflexive_permits: u64,
    pub table_full: u64,
    /// Flows that replaced an expired one in its slot, or were swept.
    pub expired: u64,
    /// Slots holding an entry, live or expired and not yet reused.
    pub occupied: u64,
}

/// Entries past which NAT warms a burst's slots. Measured by NAT's rate
/// with `pollgate bench --routes 1 --nat --flows N` on the Xeon: warming
/// cost 1-2 % at 256 and 1 K flows and gave 8 % at 4 K, 15 % at 16 K
/// (where the old threshold, 128 K slots, had left it off). Scaled to
/// another L2 by [`FlowTable::with_l2_cache`].
const WARM_ENTRIES: u64 = 4096;

// `FlowTable::warm` prefetches an entry's first and last byte: that
// covers it only while it cannot span three lines.
const _: () =
    assert!(std::mem::size_of::<Option<Flow>>() <= 64 + std::mem::align_of::<Option<Flow>>());

pub struct FlowTable {
    slots: Box<[Option<Flow>]>,
    mask: usize,
    timeouts: FlowTimeouts,
    /// Where the next sweep starts.
    cursor: usize,
    pub stats: FlowStats,
    /// NAT sessions a burst found, with the TCP flags of their packets,
    /// refreshed after it ([`FlowTable::touch_later`]).
    later: [(u32, u8); LATER],
    n_later: usize,
    /// [`WARM_ENTRIES`] for this core's L2.
    warm_entries: u64,
}

/// Touches held for the end of a burst: one a packet.
const LATER: usize = crate::batch::BATCH_SIZE;

/// A worker's flow-table counters, published for `ctl show acl` and
/// `show nat`.
#[derive(Default)]
pub struct FlowCounters {
    pub created: AtomicU64,
    pub reflexive_permits: AtomicU64,
    pub table_full: AtomicU64,
    pub occupied: AtomicU64,
    pub capacity: AtomicU64,
}

impl FlowCounters {
    /// A few relaxed stores, once per busy loop with the drop counters.
    #[inline]
    pub fn publish(&self, t: &FlowTable) {
        let s = t.stats;
        self.created.store(s.created, Ordering::Relaxed);
        self.reflexive_permits
            .store(s.reflexive_permits, Ordering::Relaxed);
        self.table_full.store(s.table_full, Ordering::Relaxed);
        self.occupied.store(s.occupied, Ordering::Relaxed);
        self.capacity.store(t.capacity() as u64, Ordering::Relaxed);
    }
}

/// TCP flag bits as they sit in byte 13 of the header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// An entry that never expires by time (a mapping lives while sessions
/// use it).
const NEVER: u64 = u64::MAX;

impl FlowTable {
    /// A table of `capacity` flows, rounded up to a power of two.
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> Self {
        let n = capacity.max(PROBE).next_power_of_two();
        FlowTable {
            slots: vec![None; n].into_boxed_slice(),
            mask: n - 1,
            timeouts,
            cursor: 0,
            stats: FlowStats::default(),
            later: [(0, 0); LATER],
            n_later: 0,
            warm_entries: WARM_ENTRIES,
        }
    }

    /// Warms bursts from the number of entries past which this core's L2
    /// of `l2_bytes` no longer holds them, rather than the 2 MiB one the
    /// threshold was measured on.
    pub fn with_l2_cache(mut self, l2_bytes: usize) -> FlowTable {
        self.warm_entries = crate::cache_size::scaled(WARM_ENTRIES as usize, l2_bytes) as u64;
        self
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn timeouts(&self) -> FlowTimeouts {
        self.timeouts
    }

    pub fn live(&self, now: u64) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|f| f.expires > now)
            .count()
    }

    /// Every live entry (for `show nat`; walks the whole table).
    pub fn entries(&self, now: u64) -> impl Iterator<Item = &Flow> {
        self.slots.iter().flatten().filter(move |f| f.expires > now)
    }

    /// Records (or refreshes) the flow of a packet a stateful rule
    /// permitted.
    pub fn track(&mut self, k: &AclKey, tcp: u8, now: u64) {
        let key = FlowKey::of(k);
        if let Some(i) = self.find(&key, now) {
            self.touch(i, tcp, now);
            return;
        }
        let state = advance(TcpState::None, tcp);
        let expires = now + timeout(&self.timeouts, key.proto, state);
        self.put(key, expires, state, FlowData::Reflexive, now);
    }

    /// Whether `k` is the reverse direction of a live tracked flow; if so
    /// the flow is refreshed. Through NAT too, as netfilter's conntrack
    /// sees a translated flow as one: see [`FlowTable::tracked_through_nat`].
    pub fn admits_reverse(&mut self, k: &AclKey, tcp: u8, now: u64) -> bool {
        let key = FlowKey::of(k);
        let tracked = self
            .find(&key.reversed(), now)
            .or_else(|| self.tracked_through_nat(&key, now));
        match tracked {
            Some(i) => {
                self.touch(i, tcp, now);
                self.stats.reflexive_permits += 1;
                true
            }
            None => false,
        }
    }

    /// The tracked flow `key` answers when a NAT session lies between
    /// them: the ACL that tracked the flow saw one side of the
    /// translation and the one meeting `key` sees the other (a stateful
    /// permit on the containers' ingress, before SNAT, and a deny on the
    /// uplink's ingress, before DNAT). `key` is a session's packet before
    /// its translation (its entry says what it becomes, and the other
    /// direction is that reversed) or after it (the reverse is the other
    /// direction's entry, which says what that became). Only the deny
    /// path looks, so permitted traffic pays nothing. TCP and UDP: the
    /// ACL keys ICMP without the query identifier NAT keys it by.
    fn tracked_through_nat(&self, key: &FlowKey, now: u64) -> Option<usize> {
        if key.v6 || !matches!(key.proto, 6 | 17) {
            return None;
        }
        let nat_to = |k: FlowKey| {
            let k = FlowKey {
                kind: Kind::Nat,
                ..k
            };
            self.nat_side(&k, now).map(|side| side.to)
        };
        let tracked = |t: Tuple4| self.find(&t.key(key.proto, Kind::Reflexive), now);
        nat_to(*key)
            .and_then(|to| tracked(to.reversed()))
            .or_else(|| nat_to(key.reversed()).and_then(tracked))
    }

    /// The live NAT session direction `key` names.
    pub fn nat_side(&self, key: &FlowKey, now: u64) -> Option<NatSide> {
        match self.get(self.find(key, now)?)?.data {
            FlowData::Nat(side) => Some(side),
            _ => None,
        }
    }

    /// The slot of the live entry `key`.
    #[inline]
    pub fn find(&self, key: &FlowKey, now: u64) -> Option<usize> {
        let base = key.hash() as usize;
        (0..PROBE)
            .map(|p| (base + p) & self.mask)
            .find(|&i| matches!(&self.slots[i], Some(f) if f.key == *key && f.expires > now))
    }

    /// Whether the entries are past the caches, so that warming a
    /// burst's slots ([`FlowTable::warm`]) pays for its pass. Entries
    /// are spread over the table, a line or two each: what counts is how
    /// many there are, not the slots (a table sized for a million
    /// sessions holding a thousand fits in L2).
    #[inline(always)]
    pub fn worth_warming(&self) -> bool {
        self.stats.occupied > self.warm_entries
    }

    /// Prefetches the first slot `key` would be in, so that a burst's
    /// misses overlap before the packets are looked up one by one. Both
    /// ends of it: an entry may straddle two cache lines (never three,
    /// checked below), and the lookup reads its key and its expiry, NAT
    /// its data.
    #[inline]
    pub fn warm<M: FrameMemory + ?Sized>(&self, key: &FlowKey, mem: &M) {
        let i = key.hash() as usize & self.mask;
        if let Some(s) = self.slots.get(i) {
            let at: *const u8 = (s as *const Option<Flow>).cast();
            mem.prefetch(at);
            mem.prefetch(at.wrapping_add(std::mem::size_of::<Option<Flow>>() - 1));
        }
    }

    pub fn get(&self, slot: usize) -> Option<&Flow> {
        self.slots.get(slot)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Flow> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Refreshes entry `slot` by a packet with TCP flags `tcp` (and its
    /// twin, for a NAT session: both directions age together).
    #[inline]
    pub fn touch(&mut self, slot: usize, tcp: u8, now: u64) {
        let t = self.timeouts;
        let Some(f) = self.slots[slot].as_mut() else {
            return;
        };
        f.tcp = advance(f.tcp, tcp);
        f.expires = now + timeout(&t, f.key.proto, f.tcp);
        let (state, expires) = (f.tcp, f.expires);
        if let FlowData::Nat(side) = f.data {
            if let Some(Some(g)) = self.slots.get_mut(side.twin as usize) {
                g.tcp = state;
                g.expires = expires;
            }
        }
    }

    /// [`FlowTable::touch`], held until [`FlowTable::touch_held`]. A NAT
    /// session's twin is a line of its own at a random place: refreshed
    /// at once, each packet stalled on its miss; refreshed together
    /// after the burst, the misses overlap. A session found alive stays
    /// alive through its burst (`now` does not move), so nothing in the
    /// burst sees the difference, and the touches keep their order.
    #[inline]
    pub fn touch_later(&mut self, slot: usize, tcp: u8, now: u64) {
        if self.n_later == LATER {
            self.touch_held(now);
        }
        self.later[self.n_later] = (slot as u32, tcp);
        self.n_later += 1;
    }

    /// Applies the touches [`FlowTable::touch_later`] held, in order.
    pub fn touch_held(&mut self, now: u64) {
        for k in 0..std::mem::take(&mut self.n_later) {
            let (slot, tcp) = self.later[k];
            self.touch(slot as usize, tcp, now);
        }
    }

    /// Makes the two entries of a NAT session: `orig` (the direction of
    /// the packet that made it, rewritten to `to`) and the reply
    /// direction, the reverse of `to`. Either both are made or neither
    /// (a full window: counted). Returns the slot of `orig`.
    pub fn insert_session(
        &mut self,
        orig: Tuple4,
        to: Tuple4,
        proto: u8,
        mapped: bool,
        tcp: u8,
        now: u64,
    ) -> Option<usize> {
        let state = advance(TcpState::None, tcp);
        let expires = now + timeout(&self.timeouts, proto, state);
        let side = |to, origin| {
            FlowData::Nat(NatSide {
                to,
                twin: u32::MAX,
                origin,
                mapped,
            })
        };
        let a = self.put(
            orig.key(proto, Kind::Nat),
            expires,
            state,
            side(to, true),
            now,
        )?;
        let reply = to.reversed();
        let Some(b) = self.put(
            reply.key(proto, Kind::Nat),
            expires,
            state,
            side(orig.reversed(), false),
            now,
        ) else {
            self.remove(a);
            self.stats.created -= 1;
            return None;
        };
        for (s, t) in [(a, b), (b, a)] {
            if let Some(Flow {
                data: FlowData::Nat(side),
                ..
            }) = &mut self.slots[s]
            {
                side.twin = t as u32;
            }
        }
        Some(a)
    }

    /// Makes a mapping entry (it lives until removed).
    pub fn insert_mapping(&mut self, key: FlowKey, m: Mapping, now: u64) -> Option<usize> {
        self.put(key, NEVER, TcpState::None, FlowData::Mapping(m), now)
    }

    pub fn remove(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if s.take().is_some() {
                self.stats.occupied -= 1;
            }
        }
    }

    /// Takes expired entries out of the next `budget` slots, and hands
    /// each expired NAT session's origin entry to `gone` (to give back
    /// what it held). Reflexive flows are cleared too, so `occupied`
    /// falls as flows age.
    pub fn sweep(&mut self, budget: usize, now: u64, mut gone: impl FnMut(&mut Self, Flow)) {
        for _ in 0..budget.min(self.slots.len()) {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) & self.mask;
            let Some(f) = self.slots[i] else { continue };
            if f.expires > now {
                continue;
            }
            self.slots[i] = None;
            self.stats.occupied -= 1;
            self.stats.expired += 1;
            if let FlowData::Nat(side) = f.data {
                if side.origin {
                    gone(self, f);
                }
            }
        }
    }

    /// Ends, at once, every NAT session whose first direction `ends`
    /// picks: both its entries expire, and [`FlowTable::sweep`] gives
    /// back what they held as for any other. A walk of the whole table,
    /// for a rare change, between bursts.
    pub fn end_sessions(&mut self, ends: impl Fn(&NatSide) -> bool) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            let twin = match &mut self.slots[i] {
                Some(f) => match f.data {
                    FlowData::Nat(side) if side.origin && f.expires > 0 && ends(&side) => {
                        f.expires = 0;
                        side.twin as usize
                    }
                    _ => continue,
                },
                None => continue,
            };
            if let Some(Some(t)) = self.slots.get_mut(twin) {
                t.expires = 0;
            }
            n += 1;
        }
        n
    }

    /// Puts an entry in the first free slot of its window (or over an
    /// expired reflexive flow).
    fn put(
        &mut self,
        key: FlowKey,
        expires: u64,
        tcp: TcpState,
        data: FlowData,
        now: u64,
    ) -> Option<usize> {
        let base = key.hash() as usize;
        let mut free = None;
        for p in 0..PROBE {
            let i = (base + p) & self.mask;
            match &self.slots[i] {
                None => {
                    free = Some(i);
                    break;
                }
                Some(f) if f.expires <= now && f.data == FlowData::Reflexive => {
                    free.get_or_insert(i);
                }
                Some(_) => {}
            }
        }
        let Some(i) = free else {
            self.stats.table_full += 1;
            return None;
        };
        if self.slots[i].is_some() {
            self.stats.expired += 1;
        } else {
            self.stats.occupied += 1;
        }
        self.slots[i] = Some(Flow {
            key,
            expires,
            tcp,
            data,
        });
        self.stats.created += 1;
        Some(i)
    }
}

fn timeout(t: &FlowTimeouts, proto: u8, tcp: TcpState) -> u64 {
    match (proto, tcp) {
        (6, TcpState::Established) => t.tcp_established,
        (6, _) => t.tcp_transient,
        (17, _) => t.udp,
        _ => t.other,
    }
}

fn advance(s: TcpState, flags: u8) -> TcpState {
    use tcp_flags::*;
    if flags & (FIN | RST) != 0 {
        return TcpState::Closing;
    }
    match s {
        TcpState::Closing => TcpState::Closing,
        _ if flags & SYN != 0 && flags & ACK == 0 => TcpState::Opening,
        _ if flags & ACK != 0 => TcpState::Established,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(sport: u16) -> AclKey {
        AclKey::ip(false, 0xc612_0001 << 96, 0xc613_0001 << 96, 17, sport, 53)
    }

    #[test]
    fn reverse_is_admitted_until_idle_timeout() {
        let mut t = FlowTable::new(64, FlowTimeouts::default());
        let k = key(4000);
        assert!(!t.admits_reverse(&k.reversed(), 0, 0));
        t.track(&k, 0, 0);
        assert!(t.admits_reverse(&k.reversed(), 0, 10 * S));
        // The same direction is not "reverse".
        assert!(!t.admits_reverse(&k, 0, 10 * S));
        // Refreshed at 10 s: alive at 129 s, gone at 131 s.
        assert!(t.admits_reverse(&k.reversed(), 0, 129 * S));
        assert!(!t.admits_reverse(&k.reversed(), 0, 250 * S));
    }

    #[test]
    fn a_flow_tracked_on_one_side_of_nat_admits_its_reply_on_the_other() {
        let inside = ([198, 18, 10, 10], 4000);
        let public = ([198, 18, 30, 1], 1024);
        let server = ([198, 19, 0, 5], 53);
        let t4 = |a: ([u8; 4], u16), b: ([u8; 4], u16)| Tuple4 {
            src: a.0,
            sport: a.1,
            dst: b.0,
            dport: b.1,
        };
        let acl = |t: Tuple4, proto: u8| {
            let k = t.key(proto, Kind::Reflexive);
            AclKey::ip(false, k.src, k.dst, proto, t.sport, t.dport)
        };
        // The session out (before and after SNAT) and its reply (before
        // and after DNAT).
        let (out, out_nat) = (t4(inside, server), t4(public, server));
        let (back, back_nat) = (out_nat.reversed(), out.reversed());
        for (tracked, proto) in [(out, 17), (out_nat, 17), (out, 6)] {
            let mut t = FlowTable::new(64, FlowTimeouts::default());
            t.insert_session(out, out_nat, proto, true, 0, S).unwrap();
            // A session alone admits nothing: only a stateful permit
            // does.
            for k in [back, back_nat] {
                assert!(!t.admits_reverse(&acl(k, proto), 0, S));
            }
            t.track(&acl(tracked, proto), 0, S);
            // Its reply is admitted on either side of the translation.
            for k in [back, back_nat] {
                assert!(t.admits_reverse(&acl(k, proto), 0, 2 * S), "{k:?}");
            }
            // Not another flow to the public address, nor the tracked
            // direction itself.
            let stranger = t4(([198, 19, 0, 6], 53), public);
            assert!(!t.admits_reverse(&acl(stranger, proto), 0, 2 * S));
            assert!(!t.admits_reverse(&acl(tracked, proto), 0, 2 * S));
        }
    }

    #[test]
    fn tcp_close_shortens_the_timeout() {
        let mut t = FlowTable::new(64, FlowTimeouts::default());
        let mut k = key(4000);
        k.c[chunk::PROTO] = 6;
        t.track(&k, tcp_flags::SYN, 0);
        assert!(t.admits_reverse(&k.reversed(), tcp_flags::SYN | tcp_flags::ACK, S));
        t.track(&k, tcp_flags::ACK, 2 * S);
        assert!(t.admits_reverse(&k.reversed(), tcp_flags::ACK, 1000 * S));
        t.track(&k, tcp_flags::FIN | tcp_flags::ACK, 1001 * S);
        assert!(!t.admits_reverse(&k.reversed(), tcp_flags::ACK, 1200 * S));
    }

    #[test]
    fn flows_differing_in_one_port_spread_over_the_table() {
        // A quarter full: every flow finds a slot in its probe window.
        let mut t = FlowTable::new(4096, FlowTimeouts::default());
        for p in 0..1024 {
            t.track(&key(p), 0, 0);
        }
        assert_eq!((t.stats.created, t.stats.table_full), (1024, 0));
        // Half full: a few windows fill up (linear probing clusters).
        for p in 1024..2048 {
            t.track(&key(p), 0, 0);
        }
        assert!(t.stats.table_full < 20, "{:?}", t.stats);
    }

    #[test]
    fn warming_starts_where_the_l2_no_longer_holds_the_entries() {
        let fill = |mut t: FlowTable| {
            (0..2048).for_each(|p| t.track(&key(p), 0, 0));
            t.worth_warming()
        };
        assert!(!fill(FlowTable::new(1 << 16, FlowTimeouts::default())));
        let small_l2 = FlowTable::new(1 << 16, FlowTimeouts::default()).with_l2_cache(512 << 10);
        assert!(fill(small_l2));
    }

    #[test]
    fn a_full_table_is_counted_not_grown() {
        let mut t = FlowTable::new(8, FlowTimeouts::default());
        for p in 0..100 {
            t.track(&key(p), 0, 0);
        }
        assert_eq!(t.stats.created, 8);
        assert_eq!(t.stats.table_full, 92);
        assert_eq!(t.live(0), 8);
        // Expired slots are reused.
        t.track(&key(500), 0, 1000 * S);
        assert_eq!(t.stats.created, 9);
    }

    fn tuple(sport: u16) -> Tuple4 {
        Tuple4 {
            src: [198, 18, 1, 10],
            dst: [198, 19, 0, 1],
            sport,
            dport: 53,
        }
    }

    /// An inside sender's tuple, and the one masquerade gives it.
    fn masqueraded() -> (Tuple4, Tuple4) {
        let orig = tuple(4000);
        let to = Tuple4 {
            src: [198, 18, 100, 1],
            sport: 1024,
            ..orig
        };
        (orig, to)
    }

    #[test]
    fn a_session_is_found_from_both_ends_and_ages_as_one() {
        let mut t = FlowTable::new(64, FlowTimeouts::default());
        let (orig, to) = masqueraded();
        let a = t.insert_session(orig, to, 17, true, 0, 0).unwrap();
        let b = t.find(&to.reversed().key(17, Kind::Nat), 0).unwrap();
        let FlowData::Nat(side) = t.get(b).unwrap().data else {
            panic!()
        };
        assert_eq!((side.to, side.twin as usize), (orig.reversed(), a));
        // A reply at 100 s keeps the origin alive too.
        t.touch(b, 0, 100 * S);
        assert!(t.find(&orig.key(17, Kind::Nat), 200 * S).is_some());
        let mut gone = Vec::new();
        t.sweep(64, 300 * S, |_, f| gone.push(f.key));
        assert_eq!(gone, vec![orig.key(17, Kind::Nat)]);
        assert_eq!(t.stats.occupied, 0);
    }

    #[test]
    fn held_touches_end_where_touches_at_once_do() {
        // A TCP session's packets, both ways, in one burst and past the
        // hold's size: held and applied after, both entries end as they
        // do touched at once, and nothing moves before.
        let mut now_t = FlowTable::new(64, FlowTimeouts::default());
        let mut later = FlowTable::new(64, FlowTimeouts::default());
        let (orig, to) = masqueraded();
        let a = now_t.insert_session(orig, to, 6, true, tcp_flags::SYN, 0);
        let b = later.insert_session(orig, to, 6, true, tcp_flags::SYN, 0);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b);
        let reply = now_t.find(&to.reversed().key(6, Kind::Nat), 0).unwrap();
        let state = |t: &FlowTable| {
            let (x, y) = (t.get(a).unwrap(), t.get(reply).unwrap());
            (x.tcp, x.expires, y.tcp, y.expires)
        };
        let start = state(&later);
        let mut packets = vec![
            (reply, tcp_flags::SYN | tcp_flags::ACK),
            (a, tcp_flags::ACK),
        ];
        packets.extend((0..2 * LATER).map(|k| ([a, reply][k % 2], tcp_flags::ACK)));
        packets.push((a, tcp_flags::FIN | tcp_flags::ACK));
        packets.push((reply, tcp_flags::FIN | tcp_flags::ACK));
        let t = 5 * S;
        for &(slot, flags) in &packets[..3] {
            now_t.touch(slot, flags, t);
            later.touch_later(slot, flags, t);
        }
        assert_eq!(state(&later), start, "held, not applied");
        for &(slot, flags) in &packets[3..] {
            now_t.touch(slot, flags, t);
            later.touch_later(slot, flags, t);
        }
        later.touch_held(t);
        assert_eq!(state(&later), state(&now_t));
        assert_ne!(state(&later), start);
    }

    #[test]
    fn a_full_window_makes_neither_side_of_a_session() {
        let mut t = FlowTable::new(8, FlowTimeouts::default());
        let mut made = 0;
        for p in 0..100 {
            let o = tuple(p);
            let to = Tuple4 {
                sport: 5000 + p,
                ..o
            };
            if t.insert_session(o, to, 17, false, 0, 0).is_some() {
                made += 1;
            }
        }
        assert_eq!(made, 4);
        assert_eq!(t.stats.occupied, 8);
        assert_eq!(t.stats.created, 8);
        // Expired sessions stay until swept: a NAT entry gives back its
        // port and source count only through the sweep.
        assert!(t
            .insert_session(tuple(900), tuple(901), 17, false, 0, 1000 * S)
            .is_none());
        t.sweep(8, 1000 * S, |_, _| {});
        assert!(t
            .insert_session(tuple(900), tuple(901), 17, false, 0, 1000 * S)
            .is_some());
    }
}
