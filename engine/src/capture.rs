//! Live capture of a port's traffic without stopping it (like
//! dpdk-pdump): each port has a tap whose worker end copies frames into an
//! SPSC ring while a capture is on — one relaxed load per burst when off —
//! and whose control end drains the ring into a pcap file.

use pollgate_pmd::pcap::PcapWriter;
use pollgate_pmd::spsc::{self, Consumer, Producer};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames buffered between a worker and a capture in progress.
const TAP_SLOTS: usize = 512;

/// The worker's end.
pub struct TapWriter {
    on: Arc<AtomicBool>,
    ring: Producer,
    lost: Arc<AtomicU64>,
}

impl TapWriter {
    #[inline(always)]
    pub fn active(&self) -> bool {
        // Relaxed: a capture may start a burst late; nothing else hangs on it.
        self.on.load(Ordering::Relaxed)
    }

    /// Copies one packet of the pool, gathering a multi-buffer packet's
    /// frames into one record; a full ring loses it (counted), never
    /// blocks.
    #[inline]
    pub fn copy_packet(&mut self, pool: &pollgate_pmd::FramePool, addr: u64, len: u32, tail: u32) {
        let whole = (len + tail) as usize;
        if !self
            .ring
            .push_with(0, whole, |dst| pool.copy_packet(addr, len, dst))
        {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The control end.
pub struct TapReader {
    on: Arc<AtomicBool>,
    ring: Mutex<Consumer>,
    lost: Arc<AtomicU64>,
}

/// A tap whose slots hold frames of up to `slot_bytes`.
pub fn tap(slot_bytes: usize) -> (TapWriter, TapReader) {
    let (p, c) = spsc::channel_sized(TAP_SLOTS, slot_bytes);
    let on = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicU64::new(0));
    (
        TapWriter {
            on: on.clone(),
            ring: p,
            lost: lost.clone(),
        },
        TapReader {
            on,
            ring: Mutex::new(c),
            lost,
        },
    )
}

/// What a capture got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    pub frames: u64,
    /// Frames the ring had no room for while the capture ran.
    pub lost: u64,
}

impl TapReader {
    /// Captures up to `count` frames (RX and TX) into `out`, for at most
    /// `limit`.
    pub fn capture(&self, count: u64, out: &Path, limit: Duration) -> std::io::Result<Captured> {
        let mut ring = self
            .ring
            .lock()
            .map_err(|_| std::io::Error::other("capture state poisoned"))?;
        let mut w = PcapWriter::create(out)?;
        // Whatever an earlier capture left in the ring is not ours.
        while ring.pop(|_| ()).is_some() {}
        let lost0 = self.lost.load(Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + limit;
        let mut frames = 0;
        let mut result = Ok(());
        while frames < count && Instant::now() < deadline {
            match ring.pop(|f| w.write(f)) {
                Some(Ok(())) => frames += 1,
                Some(Err(e)) => {
                    result = Err(e);
                    break;
                }
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        self.on.store(false, Ordering::Relaxed);
        result?;
        w.flush()?;
        Ok(Captured {
            frames,
            lost: self.lost.load(Ordering::Relaxed) - lost0,
        })
    }
}
