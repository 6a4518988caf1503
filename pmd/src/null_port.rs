//! A port like DPDK's net_null: RX replays one template frame at full
//! speed, TX counts and frees. The load source and sink of `pollgate bench`.

use crate::pool::FramePool;
use crate::port::{bump, Port, PortInfo, SharedCounters, TxDesc};
use pollgate_pipeline::{Batch, PortId};

pub struct NullPort {
    name: String,
    template: Vec<u8>,
    counters: SharedCounters,
}

impl NullPort {
    /// `template` is copied into every received frame; an empty template
    /// makes a sink that never receives.
    pub fn new(name: &str, template: Vec<u8>) -> NullPort {
        NullPort {
            name: name.to_string(),
            template,
            counters: SharedCounters::default(),
        }
    }
}

impl Port for NullPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> PortInfo {
        PortInfo {
            kind: "null",
            detail: format!("template {} bytes", self.template.len()),
            afxdp: None,
        }
    }

    fn rx_burst(
        &mut self,
        pool: &mut FramePool,
        batch: &mut Batch,
        id: PortId,
        max: usize,
    ) -> usize {
        if self.template.is_empty() {
            return 0;
        }
        let len = self.template.len() as u32;
        let headroom = pool.headroom() as u16;
        let want = batch.room().min(max);
        let mut n = 0;
        while n < want {
            match pool.alloc_copy(&self.template) {
                Some(addr) => batch.push(addr, len, headroom, id),
                None if len > pool.data_room() => {
                    bump(&self.counters.rx_oversize, 1);
                    break;
                }
                None => {
                    bump(&self.counters.rx_nombuf, 1);
                    break;
                }
            };
            n += 1;
        }
        bump(&self.counters.rx_packets, n as u64);
        bump(&self.counters.rx_bytes, n as u64 * len as u64);
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize {
        let mut bytes = 0u64;
        for d in descs {
            bytes += d.len as u64;
            pool.free_packet(d.addr, d.tail);
        }
        bump(&self.counters.tx_packets, descs.len() as u64);
        bump(&self.counters.tx_bytes, bytes);
        descs.len()
    }

    fn counters(&self) -> &SharedCounters {
        &self.counters
    }
}
