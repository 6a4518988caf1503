//! Packets whose next hop is not resolved yet: held briefly (as Linux's
//! `unres_qlen` does) while an ARP request or NS goes out for it, then
//! released into a later batch once the answer comes, or dropped and
//! counted once they have waited too long.

use super::{decrement_hop, forward_to, set, Router, ROUTER_PORT};
use crate::batch::{flags, Batch};
use crate::frame::FrameMemory;
use crate::l3::interface::{Interfaces, L3Interface};
use crate::l3::nd;
use crate::l3::neighbor;
use crate::l3::tables::bump;
use crate::verdict::{DomainId, DropCounters, DropReason, Verdict};
use crate::wire::MacAddr;
use std::net::IpAddr;

/// Packets a worker's router holds while their next hops resolve, over
/// all neighbours and per neighbour (Linux keeps about three per
/// neighbour, `unres_qlen`), and for how long at most.
pub(super) const HOLD_MAX: usize = 64;
const HOLD_PER_NEIGHBOR: usize = 4;
const HOLD_NS: u64 = 1_000_000_000;
/// Resolution requests queued for the worker to send.
pub(super) const MAX_REQUESTS: usize = 16;

/// A packet waiting for its next hop: its frame and what the stages
/// after the router need of its metadata.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    addr: u64,
    data_len: u32,
    tail_len: u32,
    headroom: u16,
    l3_off: u16,
    l4_off: u16,
    ethertype: u16,
    l4_proto: u8,
    flags: u8,
    prio: u16,
    ifx: u16,
    ip: IpAddr,
    since: u64,
}

impl Router {
    /// Whether packets are held (the worker then runs the pipeline now
    /// and then without traffic, so they leave when resolved or expired).
    pub fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// The frames of every held packet (addr, tail), given up: for the
    /// worker to free when it stops.
    pub fn take_held(&mut self) -> Vec<(u64, u32)> {
        self.held.drain(..).map(|h| (h.addr, h.tail_len)).collect()
    }

    /// The ARP requests and NS the router asked for since the last call,
    /// as frames to flood in their interfaces' domains.
    pub fn take_requests(&mut self) -> Vec<(DomainId, Vec<u8>)> {
        let mut out = Vec::new();
        for (ifx, ip) in self.requests.drain(..) {
            let Some(ifc) = self.ifs.get(ifx) else {
                continue;
            };
            let mut f = vec![0u8; nd::ND_FRAME_LEN];
            let n = match ip {
                IpAddr::V4(a) => nd::write_arp_request(&mut f, ifc, a.octets()),
                IpAddr::V6(a) => nd::write_ns(&mut f, ifc, a.octets()),
            };
            if let Some(n) = n {
                f.truncate(n);
                bump(if ip.is_ipv4() {
                    &self.tables.counters.arp_requests
                } else {
                    &self.tables.counters.nd_solicits
                });
                out.push((ifx, f));
            }
        }
        out
    }

    pub fn has_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Puts held packets back into the batch: forwarded once their next
    /// hop is known, dropped (and counted) once they have waited too long
    /// or their interface is gone. As many as the batch has room for.
    pub(super) fn release<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        ifs: &Interfaces,
        drops: &mut DropCounters,
    ) {
        let now = self.now_ns;
        let mut k = 0;
        while k < self.held.len() && !batch.is_full() {
            let h = self.held[k];
            let out = ifs.get(h.ifx);
            let mac = out
                .and(self.tables.neighbors.lookup(h.ifx, h.ip, now))
                .and_then(|f| f.mac);
            let expired = now.saturating_sub(h.since) > HOLD_NS || out.is_none();
            if mac.is_none() && !expired {
                k += 1;
                continue;
            }
            self.held.remove(k);
            batch.push(h.addr, h.data_len, h.headroom, ROUTER_PORT);
            let i = batch.len() - 1;
            batch.tail_len[i] = h.tail_len;
            batch.l3_off[i] = h.l3_off;
            batch.l4_off[i] = h.l4_off;
            batch.ethertype[i] = h.ethertype;
            batch.l4_proto[i] = h.l4_proto;
            batch.flags[i] = h.flags;
            batch.prio[i] = h.prio;
            batch.domain[i] = h.ifx;
            let f = mem.bytes_mut(h.addr, h.data_len);
            match (mac, out, f) {
                (Some(mac), Some(out), Some(f)) => {
                    decrement_hop(f, h.l3_off as usize, h.flags & flags::IPV6 != 0);
                    let port = self.macs.lookup(out.domain, MacAddr(mac));
                    forward_to(batch, i, f, out.domain, out.mac.0, mac, port);
                }
                _ => {
                    bump(&self.tables.counters.held_expired);
                    set(
                        batch,
                        i,
                        Verdict::Drop(DropReason::NeighborUnresolved),
                        drops,
                    );
                }
            }
        }
    }

    /// The next hop's MAC, or `None` with the packet dealt with: turned
    /// into an ARP request / NS for it (at most one per neighbour per
    /// retry interval, whichever worker asks) or dropped while it
    /// resolves. Counted either way: pollgate does not queue. The caller
    /// looks in the batch's `hops` first, inline.
    #[inline(never)]
    pub(super) fn resolve<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        drops: &mut DropCounters,
        out: &L3Interface,
        key: u128,
    ) -> Option<[u8; 6]> {
        let neigh = &self.tables.neighbors;
        let now = self.now_ns;
        let found = neigh.lookup_key(out.domain, key, now);
        if let Some(mac) = found.and_then(|f| f.mac) {
            return Some(mac);
        }
        let ip = neighbor::ip_of(key);
        let slot = match found {
            Some(found) => Some(found.slot),
            None => neigh.update(out.domain, ip, None, false, now, false),
        };
        let waiting = self
            .held
            .iter()
            .filter(|h| h.ifx == out.domain && h.ip == ip)
            .count();
        // No slot (a full table, or another writer in the table just
        // now): the first waiting packet asks anyway; the answer makes
        // the entry.
        let ask = match slot {
            Some(s) => neigh.may_request(s, now),
            None => waiting == 0,
        };
        if self.held.len() < HOLD_MAX && waiting < HOLD_PER_NEIGHBOR {
            if ask && self.requests.len() < MAX_REQUESTS {
                self.requests.push((out.domain, ip));
            }
            self.held.push(Held {
                addr: batch.addr[i],
                data_len: batch.data_len[i],
                tail_len: batch.tail_len[i],
                headroom: batch.headroom[i],
                l3_off: batch.l3_off[i],
                l4_off: batch.l4_off[i],
                ethertype: batch.ethertype[i],
                l4_proto: batch.l4_proto[i],
                flags: batch.flags[i] & !flags::TUNNEL,
                prio: batch.prio[i],
                ifx: out.domain,
                ip,
                since: now,
            });
            bump(&self.tables.counters.held);
            batch.verdict[i] = Verdict::Held;
            return None;
        }
        // The hold queue is full: this packet becomes the request itself
        // (or, within the retry interval, is dropped).
        drops.count(DropReason::NeighborUnresolved);
        let ask = ask && batch.tail_len[i] == 0;
        let n = if ask {
            mem.bytes_mut(batch.addr[i], nd::ND_FRAME_LEN as u32)
                .and_then(|f| match ip {
                    IpAddr::V4(a) => nd::write_arp_request(f, out, a.octets()),
                    IpAddr::V6(a) => nd::write_ns(f, out, a.octets()),
                })
        } else {
            None
        };
        match n {
            Some(n) => {
                bump(if ip.is_ipv4() {
                    &self.tables.counters.arp_requests
                } else {
                    &self.tables.counters.nd_solicits
                });
                batch.data_len[i] = n as u32;
                batch.domain[i] = out.domain;
                batch.in_port[i] = ROUTER_PORT;
                batch.flags[i] &= !flags::TUNNEL;
                batch.verdict[i] = Verdict::Flood(out.domain);
            }
            None => batch.verdict[i] = Verdict::Drop(DropReason::NeighborUnresolved),
        }
        None
    }
}
