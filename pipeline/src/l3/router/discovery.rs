//! ARP and ND packets in a gateway interface's domain: requests for a
//! gateway address answered, senders learned into the neighbour table,
//! answers to the router's own requests taken.

use super::{reply, Router};
use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::l3::interface::L3Interface;
use crate::l3::nd::{self, ICMP6_NA};
use crate::l3::tables::bump;
use crate::verdict::{DropReason, Verdict};
use crate::wire::arp::OP_REQUEST;
use crate::wire::MacAddr;
use std::net::IpAddr;

impl Router {
    /// An ARP packet in the interface's domain. `Some`: the router took
    /// it (answered or consumed); `None`: the bridge floods it.
    pub(super) fn arp<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        ifc: &L3Interface,
        to_router: bool,
    ) -> Option<Verdict> {
        // It may teach a neighbour the fast pass has cached.
        self.adj.clear();
        let not_ours = to_router.then_some(Verdict::Drop(DropReason::ArpIgnored));
        let Some(f) = mem.bytes_mut(batch.addr[i], batch.data_len[i]) else {
            return not_ours;
        };
        let Some(a) = nd::read_arp(f) else {
            return not_ours;
        };
        let neigh = &self.tables.neighbors;
        if !ifc.answers_v4(a.target_ip) {
            if a.sender_ip != [0; 4] {
                neigh.refresh(
                    ifc.domain,
                    IpAddr::from(a.sender_ip),
                    a.sender_mac.0,
                    self.now_ns,
                );
            }
            return not_ours;
        }
        if a.sender_ip != [0; 4] {
            neigh.update(
                ifc.domain,
                IpAddr::from(a.sender_ip),
                Some(a.sender_mac.0),
                false,
                self.now_ns,
                // An answer is rare and must not be lost to a sweep
                // holding the table: wait for the writer lock.
                true,
            );
        }
        if a.op != OP_REQUEST {
            return Some(Verdict::Drop(DropReason::NdConsumed));
        }
        if batch.tail_len[i] != 0 {
            return Some(Verdict::Drop(DropReason::FrameTooBig));
        }
        let n = match nd::write_arp_reply(f, ifc, &a) {
            Some(n) => Some(n),
            // A runt ARP frame: its buffer still holds 60 bytes.
            None => mem
                .bytes_mut(batch.addr[i], 60)
                .and_then(|f| nd::write_arp_reply(f, ifc, &a)),
        };
        Some(match n {
            Some(n) => {
                bump(&self.tables.counters.arp_replies);
                reply(batch, i, n)
            }
            None => Verdict::Drop(DropReason::ArpIgnored),
        })
    }

    /// An ICMPv6 packet that may be ND for the interface. `Some`: taken.
    pub(super) fn nd<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        i: usize,
        mem: &mut M,
        ifc: &L3Interface,
        to_router: bool,
    ) -> Option<Verdict> {
        self.adj.clear();
        let not_ours = to_router.then_some(Verdict::Drop(DropReason::L3LocalDropped));
        let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
        let f = mem.bytes(batch.addr[i], batch.data_len[i])?;
        let from = MacAddr::from_bytes(&f[6..12]);
        let Some(m) = nd::read_nd(f, l3, l4) else {
            return not_ours;
        };
        let neigh = &self.tables.neighbors;
        let now = self.now_ns;
        if m.kind == ICMP6_NA {
            if let Some(mac) = m.lladdr {
                neigh.refresh(ifc.domain, IpAddr::from(m.target), mac.0, now);
            }
            return to_router.then_some(Verdict::Drop(DropReason::NdConsumed));
        }
        if !ifc.owns_v6(m.target) {
            return not_ours;
        }
        if m.src != [0; 16] {
            if let Some(mac) = m.lladdr {
                neigh.update(
                    ifc.domain,
                    IpAddr::from(m.src),
                    Some(mac.0),
                    false,
                    now,
                    true,
                );
            }
        }
        if batch.tail_len[i] != 0 {
            return Some(Verdict::Drop(DropReason::FrameTooBig));
        }
        let n = mem
            .bytes_mut(batch.addr[i], nd::ND_FRAME_LEN as u32)
            .and_then(|f| nd::write_na(f, ifc, &m, from));
        Some(match n {
            Some(n) => {
                bump(&self.tables.counters.nd_adverts);
                let v = reply(batch, i, n);
                batch.l3_off[i] = 14;
                batch.l4_off[i] = 54;
                v
            }
            None => Verdict::Drop(DropReason::L3LocalDropped),
        })
    }
}
