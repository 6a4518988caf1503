//! A worker's NAT: what the router calls at prerouting (before its
//! route lookup) and postrouting (once the egress interface is known),
//! with the sessions in the worker's flow table and the ports and
//! per-source counts they hold.

use super::ports::{PortPool, Share};
use super::rewrite::{self, Read, L4};
use super::rules::{NatRules, Publish};
use super::sources::SourceCounts;
use crate::conntrack::{Flow, FlowData, FlowKey, FlowTable, Kind, Mapping, Tuple4};
use crate::frame::FrameMemory;
use crate::l3::L3Interface;
use crate::verdict::{DomainId, DropReason};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What prerouting found, for postrouting to finish.
#[derive(Debug, Clone, Copy)]
pub enum Pre {
    /// Not for NAT (nothing to read, or no rules).
    Off,
    /// No session: postrouting makes an SNAT one if a rule says so.
    New(Read),
    /// A session's packet, its destination side translated (`read` is
    /// what it is now): postrouting translates the source side to `to`.
    Session { read: Read, to: Tuple4 },
    /// The first packet to a published port, its destination already
    /// the inside one.
    Dnat {
        orig: Read,
        read: Read,
        publish: Publish,
    },
    /// Finished here (an ICMP error, translated or not).
    Done,
    /// No ports to translate by (another protocol, a later fragment).
    Opaque([u8; 4]),
}

/// A worker's NAT counters, published for `show nat` and metrics.
#[derive(Default)]
pub struct NatCounters {
    pub sessions: AtomicU64,
    pub created: AtomicU64,
    pub expired: AtomicU64,
    pub hairpin: AtomicU64,
    pub source_limited: AtomicU64,
    pub ports_exhausted: AtomicU64,
    pub table_full: AtomicU64,
    pub unsupported: AtomicU64,
    pub icmp_translated: AtomicU64,
    /// Packets given to the worker that holds their session.
    pub handed_off: AtomicU64,
    pub ports_used: AtomicU64,
    pub sources: AtomicU64,
    /// `show nat sessions`: the sessions live in the worker's own flow
    /// table, which only the worker reads. The control path asks by
    /// raising `want` (with the most to list); the worker's next
    /// housekeeping answers in `listed` and lowers it.
    pub listing: SessionListing,
}

/// A request for a worker's sessions and its answer (see
/// [`NatCounters::listing`]).
#[derive(Debug, Default)]
pub struct SessionListing {
    /// The most sessions to list; 0: no request.
    want: AtomicUsize,
    listed: Mutex<Option<Vec<NatSession>>>,
}

impl SessionListing {
    /// Asks the worker for up to `max` sessions (forgetting an answer
    /// not taken).
    pub fn ask(&self, max: usize) {
        *self.lock() = None;
        self.want.store(max.max(1), Ordering::Release);
    }

    /// The worker's answer, once it has given one.
    pub fn take(&self) -> Option<Vec<NatSession>> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<NatSession>>> {
        self.listed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The worker side: answers a pending request from `flows`. Runs at
    /// every housekeeping, so with no request it is one plain load, not
    /// a locked swap on a line the control path also writes.
    fn answer(&self, flows: &FlowTable, now: u64) {
        if self.want.load(Ordering::Relaxed) == 0 {
            return;
        }
        let max = self.want.swap(0, Ordering::Acquire);
        if max > 0 {
            *self.lock() = Some(Nat::sessions(flows, now, max));
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    created: u64,
    expired: u64,
    hairpin: u64,
    source_limited: u64,
    ports_exhausted: u64,
    table_full: u64,
    unsupported: u64,
    icmp_translated: u64,
    handed_off: u64,
}

/// One session as `show nat` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatSession {
    pub proto: u8,
    /// As the first packet came.
    pub orig: Tuple4,
    /// As it left.
    pub translated: Tuple4,
    pub expires_in_ms: u64,
}

/// Slots of the flow table each [`Nat::maintain`] looks at.
const SWEEP: usize = 1024;

pub struct Nat {
    pub rules: Arc<NatRules>,
    share: Share,
    ports: PortPool,
    sources: SourceCounts,
    stats: Stats,
    counters: Arc<NatCounters>,
    /// A change took away addresses sessions were translated to: the
    /// next housekeeping ends those sessions, as Linux masquerade
    /// flushes conntrack when its address goes.
    purge: bool,
}

impl Nat {
    /// `addrs`: every address sessions may take (the rules' and the
    /// gateway interfaces', which hairpinned sessions take).
    pub fn new(
        rules: Arc<NatRules>,
        addrs: &[[u8; 4]],
        sources: usize,
        counters: Arc<NatCounters>,
    ) -> Nat {
        Self::shared(rules, addrs, sources, counters, Share::WHOLE)
    }

    /// Worker `share.index`'s NAT, of `share.of` workers: it hands out
    /// its share of the ports, and [`Nat::owner`] names the worker that
    /// holds a packet's session.
    pub fn shared(
        rules: Arc<NatRules>,
        addrs: &[[u8; 4]],
        sources: usize,
        counters: Arc<NatCounters>,
        share: Share,
    ) -> Nat {
        let mut ports = PortPool::shared(addrs, share);
        for p in &rules.publish {
            ports.add(p.public.0);
            ports.reserve(p.public.0, p.proto, p.public.1);
        }
        for a in rules.masquerade.iter().flat_map(|m| &m.pool) {
            ports.add(*a);
        }
        Nat {
            rules,
            share,
            ports,
            sources: SourceCounts::new(sources),
            stats: Stats::default(),
            counters,
            purge: false,
        }
    }

    /// Keeps `old`'s ports, counts and counters across a topology change
    /// (its sessions stay in the flow table, which the pipeline keeps).
    pub fn carry_over(&mut self, old: Nat) {
        self.purge = old.purge || old.ports.addresses().any(|a| !self.ports.knows(a));
        self.ports.carry_over(old.ports);
        self.sources = old.sources;
        self.stats = old.stats;
        self.counters = old.counters;
        for p in &self.rules.publish {
            self.ports.reserve(p.public.0, p.proto, p.public.1);
        }
    }

    pub fn counters(&self) -> Arc<NatCounters> {
        self.counters.clone()
    }

    pub fn publish(&self) {
        let s = &self.stats;
        let c = &self.counters;
        let r = Ordering::Relaxed;
        c.sessions.store(s.created - s.expired, r);
        c.created.store(s.created, r);
        c.expired.store(s.expired, r);
        c.hairpin.store(s.hairpin, r);
        c.source_limited.store(s.source_limited, r);
        c.ports_exhausted.store(s.ports_exhausted, r);
        c.table_full.store(s.table_full, r);
        c.unsupported.store(s.unsupported, r);
        c.icmp_translated.store(s.icmp_translated, r);
        c.handed_off.store(s.handed_off, r);
        c.ports_used.store(self.ports.used, r);
        c.sources.store(self.sources.active() as u64, r);
    }

    /// Live sessions, at most `max`.
    pub fn sessions(flows: &FlowTable, now: u64, max: usize) -> Vec<NatSession> {
        flows
            .entries(now)
            .filter_map(|f| match f.data {
                FlowData::Nat(side) if side.origin => Some(NatSession {
                    proto: f.key.proto,
                    orig: tuple_of(&f.key),
                    translated: side.to,
                    expires_in_ms: (f.expires - now) / 1_000_000,
                }),
                _ => None,
            })
            .take(max)
            .collect()
    }

    /// With several workers: the worker that holds (or will make) the
    /// session of this IPv4 packet, when it is not this one. Every
    /// session of an inside address lives on the worker its hash names
    /// (so endpoint-independent mappings and per-source limits see all of
    /// them, as VPP's nat44-ei hands off by inside address); a packet to
    /// a translated address goes to the worker whose share holds its
    /// destination port, or, for a published port, to the inside host's;
    /// an ICMP error goes where the packet it quotes came from.
    #[inline]
    pub fn owner(&mut self, f: &[u8], l3: usize, l4: usize, has_l4: bool) -> Option<u16> {
        if self.share.of <= 1 {
            return None;
        }
        let r = rewrite::read(f, l3, l4, has_l4)?;
        let (t, proto) = match r.l4 {
            L4::Error => {
                let q = rewrite::quoted(f, l4)?;
                (q.read.tuple.reversed(), q.read.proto)
            }
            L4::Opaque => (
                Tuple4 {
                    sport: 0,
                    dport: 0,
                    ..r.tuple
                },
                r.proto,
            ),
            L4::Ports | L4::Query => (r.tuple, r.proto),
        };
        let w = if self.ports.knows(t.dst) {
            match self.rules.published(proto, t.dst, t.dport) {
                Some(p) => self.owner_of_inside(p.inside.0),
                None => self.share.owner_of_port(t.dport),
            }
        } else if self.rules.inside(t.src) || self.rules.publish.iter().any(|p| p.inside.0 == t.src)
        {
            self.owner_of_inside(t.src)
        } else {
            return None;
        };
        if w == self.share.index {
            return None;
        }
        self.stats.handed_off += 1;
        Some(w)
    }

    fn owner_of_inside(&self, a: [u8; 4]) -> u16 {
        let h = u32::from_be_bytes(a).wrapping_mul(0x9e37_79b1);
        ((h >> 16) % self.share.of as u32) as u16
    }

    /// Touches the flow-table slot this packet's session would be in (a
    /// pass over the burst before the per-packet one, so that a large
    /// table's misses overlap).
    #[inline]
    pub fn warm<M: FrameMemory + ?Sized>(
        &self,
        f: &[u8],
        l3: usize,
        l4: usize,
        has_l4: bool,
        flows: &FlowTable,
        mem: &M,
    ) {
        if let Some(r) = rewrite::read(f, l3, l4, has_l4) {
            if matches!(r.l4, L4::Ports | L4::Query) {
                flows.warm(&r.tuple.key(r.proto, Kind::Nat), mem);
            }
        }
    }

    /// Prerouting: an existing session's destination side, a published
    /// port's DNAT, an ICMP error's translation back.
    #[inline]
    pub fn prerouting(
        &mut self,
        f: &mut [u8],
        l3: usize,
        l4: usize,
        has_l4: bool,
        flows: &mut FlowTable,
        now: u64,
    ) -> Pre {
        let Some(r) = rewrite::read(f, l3, l4, has_l4) else {
            return Pre::Off;
        };
        match r.l4 {
            L4::Opaque => return Pre::Opaque(r.tuple.src),
            L4::Error => {
                if self.icmp_error(f, l3, l4, &r, flows, now) {
                    self.stats.icmp_translated += 1;
                }
                return Pre::Done;
            }
            L4::Ports | L4::Query => {}
        }
        let key = r.tuple.key(r.proto, Kind::Nat);
        if let Some(slot) = flows.find(&key, now) {
            let Some(Flow {
                data: FlowData::Nat(side),
                ..
            }) = flows.get(slot)
            else {
                return Pre::Off;
            };
            let to = side.to;
            flows.touch_later(slot, r.tcp, now);
            // The destination side now, so the route lookup sees it; the
            // source side after routing, so that pollgate's own ICMP
            // errors (TTL, MTU) still go to the inside sender. A query's
            // identifier is one field: it changes with the side it
            // belongs to.
            let mid = match r.l4 {
                L4::Query if to.dst != r.tuple.dst => to,
                L4::Query => r.tuple,
                _ => Tuple4 {
                    src: r.tuple.src,
                    sport: r.tuple.sport,
                    ..to
                },
            };
            if !rewrite::write(f, l3, l4, &r, &mid) {
                return Pre::Off;
            }
            return Pre::Session {
                read: Read { tuple: mid, ..r },
                to,
            };
        }
        if r.l4 == L4::Ports {
            if let Some(p) = self.rules.published(r.proto, r.tuple.dst, r.tuple.dport) {
                let p = *p;
                let mid = Tuple4 {
                    dst: p.inside.0,
                    dport: p.inside.1,
                    ..r.tuple
                };
                if rewrite::write(f, l3, l4, &r, &mid) {
                    return Pre::Dnat {
                        orig: r,
                        read: Read { tuple: mid, ..r },
                        publish: p,
                    };
                }
            }
        }
        Pre::New(r)
    }

    /// Postrouting: the source side of a session, or a new session (SNAT
    /// by a masquerade rule, a published port's, a hairpin's). `Err`:
    /// the packet is dropped for that reason, nothing made.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn postrouting(
        &mut self,
        f: &mut [u8],
        l3: usize,
        l4: usize,
        pre: Pre,
        in_domain: DomainId,
        out: &L3Interface,
        flows: &mut FlowTable,
        now: u64,
    ) -> Result<(), DropReason> {
        let (read, to) = match pre {
            Pre::Off | Pre::Done => return Ok(()),
            Pre::Opaque(src) => {
                if self.rules.masquerade_for(out.domain, src).is_some() {
                    self.stats.unsupported += 1;
                    return Err(DropReason::NatUnsupported);
                }
                return Ok(());
            }
            Pre::Session { read, to } => (read, to),
            Pre::New(read) => {
                let Some(m) = self.rules.masquerade_for(out.domain, read.tuple.src) else {
                    return Ok(());
                };
                let Some(addr) = m.address_for(read.tuple.src) else {
                    return Ok(());
                };
                let (range, limit) = (m.ports, m.per_source);
                let to = self.snat(
                    flows,
                    &read,
                    (read.tuple.dst, read.tuple.dport),
                    addr,
                    range,
                    limit,
                    now,
                )?;
                (read, to)
            }
            Pre::Dnat {
                orig,
                read,
                publish,
            } => {
                let hairpin = out.domain == in_domain || self.rules.inside(orig.tuple.src);
                let inside = (read.tuple.dst, read.tuple.dport);
                let to = if hairpin {
                    // The inside host would answer an inside client
                    // directly, from the address it was not asked at:
                    // the session also takes the egress interface's
                    // address, so the answer comes back through here.
                    let Some(addr) = out.v4_source(inside.0) else {
                        return Err(DropReason::NatPortsExhausted);
                    };
                    let range = self.rules.hairpin_ports;
                    let to =
                        self.snat(flows, &orig, inside, addr, range, publish.per_source, now)?;
                    self.stats.hairpin += 1;
                    to
                } else {
                    self.dnat(flows, &orig, read.tuple, publish.per_source, now)?
                };
                (read, to)
            }
        };
        if rewrite::write(f, l3, l4, &read, &to) {
            Ok(())
        } else {
            Err(DropReason::BadDescriptor)
        }
    }

    fn limited(&mut self, src: [u8; 4], limit: u32) -> bool {
        if self.sources.count(u32::from_be_bytes(src)) >= limit {
            self.stats.source_limited += 1;
            return true;
        }
        false
    }

    fn full(&mut self) -> DropReason {
        self.stats.table_full += 1;
        DropReason::NatTableFull
    }

    /// A session from `orig` to `dst` with its source taken to `addr`
    /// and a port of `range`: the one its endpoint-independent mapping
    /// has, or a new mapping's.
    #[allow(clippy::too_many_arguments)]
    fn snat(
        &mut self,
        flows: &mut FlowTable,
        orig: &Read,
        dst: ([u8; 4], u16),
        addr: [u8; 4],
        range: (u16, u16),
        limit: u32,
        now: u64,
    ) -> Result<Tuple4, DropReason> {
        let t = orig.tuple;
        let proto = orig.proto;
        if self.limited(t.src, limit) {
            return Err(DropReason::NatSourceLimit);
        }
        // Query identifiers are not ports: none is privileged.
        let range = if proto == 1 { (0, u16::MAX) } else { range };
        let mkey = mapping_key(t.src, t.sport, addr, proto);
        let port = match flows.find(&mkey, now) {
            Some(slot) => match flows.get_mut(slot) {
                Some(Flow {
                    data: FlowData::Mapping(m),
                    ..
                }) => {
                    m.refs += 1;
                    m.port
                }
                _ => return Err(self.full()),
            },
            None => {
                let hint = (mkey_hash(&t) as u32).wrapping_mul(0x9e37_79b1);
                let Some(p) = self.ports.alloc(addr, proto, range, t.sport, hint) else {
                    self.stats.ports_exhausted += 1;
                    return Err(DropReason::NatPortsExhausted);
                };
                let m = Mapping {
                    ip: addr,
                    port: p,
                    refs: 1,
                };
                if flows.insert_mapping(mkey, m, now).is_none() {
                    self.ports.free(addr, proto, p);
                    return Err(self.full());
                }
                p
            }
        };
        let to = Tuple4 {
            src: addr,
            sport: port,
            dst: dst.0,
            // A query's identifier is both "ports".
            dport: if proto == 1 { port } else { dst.1 },
        };
        let src = u32::from_be_bytes(t.src);
        if !self.sources.inc(src) {
            release(flows, &mut self.ports, &mkey);
            return Err(self.full());
        }
        if flows
            .insert_session(t, to, proto, true, orig.tcp, now)
            .is_none()
        {
            self.sources.dec(src);
            release(flows, &mut self.ports, &mkey);
            return Err(self.full());
        }
        self.stats.created += 1;
        Ok(to)
    }

    /// A published port's session: the destination translated only.
    fn dnat(
        &mut self,
        flows: &mut FlowTable,
        orig: &Read,
        to: Tuple4,
        limit: u32,
        now: u64,
    ) -> Result<Tuple4, DropReason> {
        let t = orig.tuple;
        if self.limited(t.src, limit) {
            return Err(DropReason::NatSourceLimit);
        }
        let src = u32::from_be_bytes(t.src);
        if !self.sources.inc(src) {
            return Err(self.full());
        }
        if flows
            .insert_session(t, to, orig.proto, false, orig.tcp, now)
            .is_none()
        {
            self.sources.dec(src);
            return Err(self.full());
        }
        self.stats.created += 1;
        Ok(to)
    }

    /// An ICMP error about a session's packet: its quote and its outer
    /// header turned back to what the other end knows (RFC 5508 4.1).
    fn icmp_error(
        &mut self,
        f: &mut [u8],
        l3: usize,
        l4: usize,
        outer: &Read,
        flows: &FlowTable,
        now: u64,
    ) -> bool {
        let Some(q) = rewrite::quoted(f, l4) else {
            return false;
        };
        if !matches!(q.read.l4, L4::Ports | L4::Query) {
            return false;
        }
        // The quote is a packet that left in the other direction: the
        // session entry of this error's direction is keyed by its
        // reverse.
        let key = q.read.tuple.reversed().key(q.read.proto, Kind::Nat);
        let Some(side) = flows.nat_side(&key, now) else {
            return false;
        };
        let r = side.to;
        let inner = r.reversed();
        let new_outer = Tuple4 {
            // The quoted packet's destination itself answering (a port
            // unreachable) is translated as that end; a router on the
            // way keeps its address.
            src: if outer.tuple.src == q.read.tuple.dst {
                r.src
            } else {
                outer.tuple.src
            },
            dst: r.dst,
            sport: 0,
            dport: 0,
        };
        rewrite::write_error(f, l3, l4, outer, &q, &inner, &new_outer)
    }

    /// Takes expired sessions out of part of the table and gives back
    /// their ports and source counts: called every few loops, so the
    /// whole table is gone over in well under a second of traffic.
    pub fn maintain(&mut self, flows: &mut FlowTable, now: u64) {
        // A walk of the whole table, but only when `show nat sessions`
        // asks: housekeeping, between bursts.
        self.counters.listing.answer(flows, now);
        if self.purge {
            let ports = &self.ports;
            flows.end_sessions(|side| side.mapped && !ports.knows(side.to.src));
            self.purge = false;
        }
        let (ports, sources, stats) = (&mut self.ports, &mut self.sources, &mut self.stats);
        flows.sweep(SWEEP, now, |t, f| {
            let FlowData::Nat(side) = f.data else { return };
            let src = tuple_of(&f.key).src;
            sources.dec(u32::from_be_bytes(src));
            if side.mapped {
                release(
                    t,
                    ports,
                    &mapping_key(src, f.key.sport, side.to.src, f.key.proto),
                );
            }
            stats.expired += 1;
        });
    }
}

fn tuple_of(k: &FlowKey) -> Tuple4 {
    Tuple4 {
        src: ((k.src >> 96) as u32).to_be_bytes(),
        dst: ((k.dst >> 96) as u32).to_be_bytes(),
        sport: k.sport,
        dport: k.dport,
    }
}

fn mapping_key(src: [u8; 4], sport: u16, addr: [u8; 4], proto: u8) -> FlowKey {
    Tuple4 {
        src,
        dst: addr,
        sport,
        dport: 0,
    }
    .key(proto, Kind::Mapping)
}

fn mkey_hash(t: &Tuple4) -> u64 {
    (u32::from_be_bytes(t.src) as u64) << 16
        ^ t.sport as u64
        ^ (u32::from_be_bytes(t.dst) as u64).rotate_left(40)
}

/// One session fewer on a mapping; the last one frees it and its port.
fn release(flows: &mut FlowTable, ports: &mut PortPool, mkey: &FlowKey) {
    let Some(slot) = flows.find(mkey, 0) else {
        return;
    };
    let Some(Flow {
        data: FlowData::Mapping(m),
        ..
    }) = flows.get_mut(slot)
    else {
        return;
    };
    m.refs -= 1;
    if m.refs == 0 {
        let (ip, port) = (m.ip, m.port);
        flows.remove(slot);
        ports.free(ip, mkey.proto, port);
    }
}
