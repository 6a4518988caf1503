//! In-memory port pairs, like DPDK's net_ring: what one side transmits the
//! other receives. The two sides may be served by different workers.

use crate::pool::FramePool;
use crate::port::{bump, Port, PortInfo, SharedCounters, TxDesc};
use crate::spsc::{self, Consumer, Producer};
use pollgate_pipeline::{Batch, FrameMemory, PortId};

pub struct RingPort {
    name: String,
    peer: String,
    tx: Producer,
    rx: Consumer,
    counters: SharedCounters,
}

/// Two connected ports with `slots` frames of buffering each way.
pub fn ring_pair(a: &str, b: &str, slots: usize) -> (RingPort, RingPort) {
    let (a_tx, b_rx) = spsc::channel(slots);
    let (b_tx, a_rx) = spsc::channel(slots);
    let port = |name: &str, peer: &str, tx, rx| RingPort {
        name: name.to_string(),
        peer: peer.to_string(),
        tx,
        rx,
        counters: SharedCounters::default(),
    };
    (port(a, b, a_tx, a_rx), port(b, a, b_tx, b_rx))
}

impl Port for RingPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> PortInfo {
        PortInfo {
            kind: "ring",
            detail: format!("peer {}", self.peer),
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
        let max = max.min(batch.room());
        let headroom = pool.headroom();
        let mut n = 0usize;
        let mut bytes = 0u64;
        while n < max {
            let Some(base) = pool.alloc() else {
                bump(&self.counters.rx_nombuf, 1);
                break;
            };
            let addr = base + headroom as u64;
            let got = self.rx.pop(|data| {
                let len = data.len() as u32;
                match pool.bytes_mut(addr, len) {
                    Some(dst) => {
                        dst.copy_from_slice(data);
                        Some(len)
                    }
                    None => None,
                }
            });
            match got {
                None => {
                    pool.free(base);
                    break;
                }
                Some(None) => {
                    pool.free(base);
                    bump(&self.counters.rx_oversize, 1);
                }
                Some(Some(len)) => {
                    batch.push(addr, len, headroom as u16, id);
                    n += 1;
                    bytes += len as u64;
                }
            }
        }
        bump(&self.counters.rx_packets, n as u64);
        bump(&self.counters.rx_bytes, bytes);
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize {
        let mut sent = 0usize;
        let mut packets = 0u64;
        let mut bytes = 0u64;
        for d in descs {
            let ok = match pool.bytes(d.addr, d.len) {
                Some(data) => self.tx.push(data),
                None => {
                    bump(&self.counters.tx_errors, 1);
                    pool.free_packet(d.addr, d.tail);
                    sent += 1;
                    continue;
                }
            };
            if !ok {
                break;
            }
            pool.free_packet(d.addr, d.tail);
            sent += 1;
            packets += 1;
            bytes += d.len as u64;
        }
        bump(&self.counters.tx_packets, packets);
        bump(&self.counters.tx_bytes, bytes);
        sent
    }

    fn counters(&self) -> &SharedCounters {
        &self.counters
    }
}
