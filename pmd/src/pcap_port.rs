//! A port backed by pcap files: RX replays a capture (once or looping),
//! TX appends to a capture. For tests, for replaying captured traffic
//! through the pipeline, and for looking at what the engine sends.

use crate::pcap::{PcapReader, PcapWriter};
use crate::pool::FramePool;
use crate::port::{bump, Port, PortInfo, SharedCounters, TxDesc};
use crate::PmdError;
use pollgate_pipeline::{Batch, FrameMemory, PortId};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

pub struct PcapPort {
    name: String,
    rx_path: Option<PathBuf>,
    rx: Option<PcapReader<BufReader<File>>>,
    looping: bool,
    exhausted: bool,
    tx_path: Option<PathBuf>,
    tx: Option<PcapWriter<BufWriter<File>>>,
    scratch: Vec<u8>,
    counters: SharedCounters,
}

impl PcapPort {
    /// Opens `rx` for reading and creates `tx`; either may be absent.
    pub fn open(
        name: &str,
        rx: Option<PathBuf>,
        tx: Option<PathBuf>,
        looping: bool,
    ) -> Result<PcapPort, PmdError> {
        let reader = match &rx {
            Some(p) => Some(PcapReader::open(p).map_err(|e| PmdError::File {
                path: p.clone(),
                source: e,
            })?),
            None => None,
        };
        let writer = match &tx {
            Some(p) => Some(PcapWriter::create(p).map_err(|e| PmdError::File {
                path: p.clone(),
                source: e,
            })?),
            None => None,
        };
        Ok(PcapPort {
            name: name.to_string(),
            exhausted: reader.is_none(),
            rx_path: rx,
            rx: reader,
            looping,
            tx_path: tx,
            tx: writer,
            scratch: Vec::with_capacity(2048),
            counters: SharedCounters::default(),
        })
    }

    fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            let reader = self.rx.as_mut()?;
            let mut buf = std::mem::take(&mut self.scratch);
            match reader.next_into(&mut buf) {
                Ok(Some(_)) => return Some(buf),
                Ok(None) if self.looping => {
                    self.scratch = buf;
                    let path = self.rx_path.as_ref()?;
                    self.rx = PcapReader::open(path).ok();
                    if self.rx.is_none() {
                        self.exhausted = true;
                    }
                }
                Ok(None) => {
                    self.rx = None;
                    self.exhausted = true;
                    return None;
                }
                Err(_) => {
                    bump(&self.counters.rx_errors, 1);
                    self.rx = None;
                    self.exhausted = true;
                    return None;
                }
            }
        }
    }
}

impl Port for PcapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> PortInfo {
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or("-".to_string(), |p| p.display().to_string())
        };
        PortInfo {
            kind: "pcap",
            detail: format!("rx {} tx {}", show(&self.rx_path), show(&self.tx_path)),
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
        let mut n = 0;
        let mut bytes = 0u64;
        while n < max && !self.exhausted {
            let Some(frame) = self.next_frame() else {
                break;
            };
            match pool.alloc_copy(&frame) {
                Some(addr) => {
                    batch.push(addr, frame.len() as u32, headroom as u16, id);
                    n += 1;
                    bytes += frame.len() as u64;
                }
                None if frame.len() > pool.data_room() as usize => {
                    bump(&self.counters.rx_oversize, 1)
                }
                None => bump(&self.counters.rx_nombuf, 1),
            }
            self.scratch = frame;
        }
        bump(&self.counters.rx_packets, n as u64);
        bump(&self.counters.rx_bytes, bytes);
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize {
        let mut packets = 0u64;
        let mut bytes = 0u64;
        for d in descs {
            let written = match (self.tx.as_mut(), pool.bytes(d.addr, d.len)) {
                (Some(w), Some(data)) => w.write(data).is_ok(),
                _ => false,
            };
            if written {
                packets += 1;
                bytes += d.len as u64;
            } else {
                bump(&self.counters.tx_errors, 1);
            }
            pool.free_packet(d.addr, d.tail);
        }
        bump(&self.counters.tx_packets, packets);
        bump(&self.counters.tx_bytes, bytes);
        descs.len()
    }

    fn rx_exhausted(&self) -> bool {
        self.exhausted
    }

    fn close(&mut self, _pool: &mut FramePool, _deadline: std::time::Instant) {
        if let Some(w) = self.tx.as_mut() {
            if w.flush().is_err() {
                bump(&self.counters.tx_errors, 1);
            }
        }
    }

    fn counters(&self) -> &SharedCounters {
        &self.counters
    }
}
