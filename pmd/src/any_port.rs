//! Every port kind behind one enum: the worker calls ports through a
//! `match`, never through a vtable, and the set of kinds is closed.

use crate::afxdp::AfXdpPort;
use crate::null_port::NullPort;
use crate::pcap_port::PcapPort;
use crate::pool::FramePool;
use crate::port::{Port, PortInfo, SharedCounters, TxDesc};
use crate::ring_port::RingPort;
use crate::tap::TapPort;
use pollgate_pipeline::{Batch, PortId};
use std::time::Instant;

// Ports sit in one Vec per worker, built once: the size difference costs
// a little memory, where boxing would cost a pointer chase per burst.
#[allow(clippy::large_enum_variant)]
pub enum AnyPort {
    Null(NullPort),
    Ring(RingPort),
    Pcap(PcapPort),
    AfXdp(AfXdpPort),
    Tap(TapPort),
}

macro_rules! each {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            AnyPort::Null($p) => $e,
            AnyPort::Ring($p) => $e,
            AnyPort::Pcap($p) => $e,
            AnyPort::AfXdp($p) => $e,
            AnyPort::Tap($p) => $e,
        }
    };
}

impl Port for AnyPort {
    fn name(&self) -> &str {
        each!(self, p => p.name())
    }
    fn info(&self) -> PortInfo {
        each!(self, p => p.info())
    }
    #[inline]
    fn rx_burst(
        &mut self,
        pool: &mut FramePool,
        batch: &mut Batch,
        id: PortId,
        max: usize,
    ) -> usize {
        each!(self, p => p.rx_burst(pool, batch, id, max))
    }
    #[inline]
    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize {
        each!(self, p => p.tx_burst(pool, descs))
    }
    #[inline]
    fn poll(&mut self, pool: &mut FramePool) {
        each!(self, p => p.poll(pool))
    }
    fn accepts_chains(&self) -> bool {
        each!(self, p => p.accepts_chains())
    }

    fn link_up(&self) -> bool {
        each!(self, p => p.link_up())
    }
    fn frames_held(&self) -> usize {
        each!(self, p => p.frames_held())
    }
    fn rx_exhausted(&self) -> bool {
        each!(self, p => p.rx_exhausted())
    }
    fn close(&mut self, pool: &mut FramePool, deadline: Instant) {
        each!(self, p => p.close(pool, deadline))
    }
    fn counters(&self) -> &SharedCounters {
        each!(self, p => p.counters())
    }
}
