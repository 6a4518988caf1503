//! The bridge stage: learn source MACs, look destination MACs up, and
//! decide between forwarding to one port and flooding the domain (with
//! storm control on what floods).

use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::mac_table::MacTable;
use crate::stage::Stage;
use crate::storm::StormControl;
use crate::verdict::{DomainId, DropCounters, DropReason, PortId, Verdict};
use crate::vlan::NO_DOMAIN;
use crate::wire::MacAddr;
use std::sync::Arc;

/// A bridge domain: its name and the ports it floods to.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub members: Vec<PortId>,
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
}

impl Bridge {
    pub fn new(domains: Vec<Domain>, table: Arc<MacTable>, storm: Vec<StormControl>) -> Self {
        Bridge {
            domains: Arc::new(domains),
            table,
            storm,
            now_secs: 0,
            now_ns: 0,
        }
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
        for i in 0..batch.len() {
            let domain = batch.domain[i];
            if batch.verdict[i] != Verdict::Pending || domain == NO_DOMAIN {
                continue;
            }
            let Some(eth) = mem.bytes(batch.addr[i], 12) else {
                batch.verdict[i] = Verdict::Drop(DropReason::RuntFrame);
                drops.count(DropReason::RuntFrame);
                continue;
            };
            let dst = MacAddr::from_bytes(&eth[0..6]);
            let src = MacAddr::from_bytes(&eth[6..12]);
            let port = batch.in_port[i];
            if src.is_multicast() {
                batch.verdict[i] = Verdict::Drop(DropReason::SrcMacMulticast);
                drops.count(DropReason::SrcMacMulticast);
                continue;
            }
            self.table.learn(domain, src, port, self.now_secs);
            let storm = &mut self.storm[port as usize];
            let verdict = if dst.is_multicast() {
                let (bucket, reason) = if dst.is_broadcast() {
                    (&mut storm.broadcast, DropReason::StormBroadcast)
                } else {
                    (&mut storm.multicast, DropReason::StormMulticast)
                };
                if bucket.take(self.now_ns) {
                    Verdict::Flood(domain)
                } else {
                    Verdict::Drop(reason)
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
}
