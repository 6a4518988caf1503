//! A port like DPDK's net_null: RX replays one template frame at full
//! speed, TX counts and frees. The load source and sink of `pollgate bench`.
//! Given a whole capture it replays every frame of it in turn, from
//! memory, as `net_pcap,infinite_rx=1` does: traffic with many MACs and
//! flows at the speed of one frame.

use crate::pool::FramePool;
use crate::port::{bump, Port, PortInfo, SharedCounters, TxDesc};
use crate::prefetch::prefetch;
use pollgate_pipeline::{Batch, PortId, BATCH_SIZE};

pub struct NullPort {
    name: String,
    /// Every frame to replay, back to back, and where each ends.
    frames: Vec<u8>,
    ends: Vec<u32>,
    /// The next frame's index and start in `frames`.
    next: usize,
    start: usize,
    /// The byte offset in `frames` up to which the replay is prefetched.
    fetched: usize,
    counters: SharedCounters,
}

impl NullPort {
    /// `template` is copied into every received frame; an empty template
    /// makes a sink that never receives.
    pub fn new(name: &str, template: Vec<u8>) -> NullPort {
        NullPort::replay(name, std::iter::once(template).filter(|t| !t.is_empty()))
    }

    /// Replays `frames` in order, round robin.
    pub fn replay(name: &str, frames: impl IntoIterator<Item = Vec<u8>>) -> NullPort {
        let mut all = Vec::new();
        let mut ends = Vec::new();
        for f in frames {
            all.extend_from_slice(&f);
            ends.push(all.len() as u32);
        }
        NullPort {
            name: name.to_string(),
            frames: all,
            ends,
            next: 0,
            start: 0,
            fetched: 0,
            counters: SharedCounters::default(),
        }
    }
}

/// How many bytes past the frame being copied the source is prefetched:
/// a few bursts' worth, so that a line arrives before its turn. A capture
/// past the caches is a stream the hardware prefetchers lose at every
/// 4 KiB page.
const READ_AHEAD: usize = 4096;
/// A replay this small stays in the caches, where a prefetch per frame
/// would only be work.
const STREAM_ABOVE: usize = 1 << 20;

impl NullPort {
    /// Prefetches the lines up to `READ_AHEAD` bytes past `end`.
    #[inline(always)]
    fn read_ahead(&mut self, end: usize) {
        let to = (end + READ_AHEAD).min(self.frames.len());
        // Back at frame 0 after a wrap: prefetch from there again (kept
        // off the wrap itself, which a one-frame replay takes every frame).
        if self.fetched > to + READ_AHEAD {
            self.fetched = self.start;
        }
        while self.fetched < to {
            prefetch(self.frames.as_ptr().wrapping_add(self.fetched));
            self.fetched += 64;
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
            detail: match self.ends.len() {
                1 => format!("template {} bytes", self.frames.len()),
                n => format!("replays {n} frames ({} bytes)", self.frames.len()),
            },
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
        if self.ends.is_empty() {
            return 0;
        }
        let headroom = pool.headroom() as u16;
        let want = batch.room().min(max).min(BATCH_SIZE);
        let mut bases = [0u64; BATCH_SIZE];
        let got = pool.alloc_frames(&mut bases[..want]);
        if got < want {
            bump(&self.counters.rx_nombuf, 1);
        }
        let mut n = 0;
        let mut bytes = 0u64;
        let stream = self.frames.len() > STREAM_ABOVE;
        while n < got {
            let end = self.ends[self.next] as usize;
            if stream {
                self.read_ahead(end);
            }
            let frame = &self.frames[self.start..end];
            let len = frame.len() as u32;
            match pool.fill_frame(bases[n], frame) {
                Some(addr) => batch.push(addr, len, headroom, id),
                None => {
                    bump(&self.counters.rx_oversize, 1);
                    break;
                }
            };
            n += 1;
            bytes += len as u64;
            self.next += 1;
            self.start = end;
            if self.next == self.ends.len() {
                self.next = 0;
                self.start = 0;
            }
        }
        // Frames taken and not filled (an oversize frame stopped the
        // burst) go back.
        pool.free_frames(bases[n..got].iter().copied());
        bump(&self.counters.rx_packets, n as u64);
        bump(&self.counters.rx_bytes, bytes);
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize {
        let mut bytes = 0u64;
        let mut chained = false;
        for d in descs {
            bytes += d.len as u64;
            chained |= d.tail != 0;
        }
        if chained {
            for d in descs {
                pool.free_packet(d.addr, d.tail);
            }
        } else {
            pool.free_frames(descs.iter().map(|d| d.addr));
        }
        bump(&self.counters.tx_packets, descs.len() as u64);
        bump(&self.counters.tx_bytes, bytes);
        descs.len()
    }

    fn counters(&self) -> &SharedCounters {
        &self.counters
    }
}
