//! The port contract: burst receive into a `Batch`, burst transmit of
//! frame descriptors, and the counters an operator reads.

use crate::pool::FramePool;
use crossbeam_utils::CachePadded;
use pollgate_pipeline::{Batch, PortId};
use std::sync::atomic::{AtomicU64, Ordering};

/// One packet to transmit: data address in the pool and length of its
/// first frame, and the bytes chained after it (0 for one frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxDesc {
    pub addr: u64,
    pub len: u32,
    pub tail: u32,
}

impl TxDesc {
    pub fn new(addr: u64, len: u32) -> Self {
        TxDesc { addr, len, tail: 0 }
    }
}

/// Port counters. Written by the one worker that owns the port, read by
/// anyone: each field is a relaxed load and store by its single writer, so
/// counting costs no locked instruction, and the block sits on its own
/// cache lines so readers do not slow the writer.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Received frames dropped because the pool had no free frame.
    pub rx_nombuf: AtomicU64,
    /// Frames refused by a full TX ring (freed and counted).
    pub tx_full: AtomicU64,
    /// Received frames longer than a frame's data room.
    pub rx_oversize: AtomicU64,
    /// Frames the port failed to send for another reason (link gone, I/O error).
    pub tx_errors: AtomicU64,
    /// Receive errors: the device reported a failure, a namespace vanished.
    pub rx_errors: AtomicU64,
    /// Kernel drops reported by the socket (AF_XDP rx_dropped and ring-full counters).
    pub kernel_drops: AtomicU64,
    /// Syscalls made to wake the kernel (need_wakeup).
    pub wakeups: AtomicU64,
    /// Times the kernel found the fill ring empty when a packet arrived.
    pub fill_empty: AtomicU64,
    /// Times the port found its device gone or down.
    pub link_down_events: AtomicU64,
    /// Times TX completions stopped for a second with frames outstanding
    /// (logged, and the kernel kicked to recover).
    pub tx_stalls: AtomicU64,
    /// Times the engine's watchdog found the port's XDP program detached
    /// by hand (and attached it again). Written by the control thread,
    /// which no worker competes with for this field.
    pub xdp_detached: AtomicU64,
}

/// `PortCounters` behind its own cache lines.
pub type SharedCounters = std::sync::Arc<CachePadded<PortCounters>>;

/// Single-writer increment: the owning worker is the only writer, so a
/// load and a store replace a locked read-modify-write.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A snapshot of `PortCounters`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_nombuf: u64,
    pub tx_full: u64,
    pub rx_oversize: u64,
    pub tx_errors: u64,
    pub rx_errors: u64,
    pub kernel_drops: u64,
    pub wakeups: u64,
    pub fill_empty: u64,
    pub link_down_events: u64,
    pub tx_stalls: u64,
    pub xdp_detached: u64,
}

impl PortCounters {
    pub fn snapshot(&self) -> PortStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PortStats {
            rx_packets: r(&self.rx_packets),
            rx_bytes: r(&self.rx_bytes),
            tx_packets: r(&self.tx_packets),
            tx_bytes: r(&self.tx_bytes),
            rx_nombuf: r(&self.rx_nombuf),
            tx_full: r(&self.tx_full),
            rx_oversize: r(&self.rx_oversize),
            tx_errors: r(&self.tx_errors),
            rx_errors: r(&self.rx_errors),
            kernel_drops: r(&self.kernel_drops),
            wakeups: r(&self.wakeups),
            fill_empty: r(&self.fill_empty),
            link_down_events: r(&self.link_down_events),
            tx_stalls: r(&self.tx_stalls),
            xdp_detached: r(&self.xdp_detached),
        }
    }
}

/// How the port reached its link (for `show ports`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub kind: &'static str,
    /// Driver-level detail: the AF_XDP bind mode in effect, a file name…
    pub detail: String,
    /// For an AF_XDP port, the modes the kernel actually granted.
    pub afxdp: Option<AfXdpMode>,
}

/// What an AF_XDP socket is bound as: reported in `show ports --json`
/// and as a metrics info series, so a fallback is never silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpMode {
    pub device: String,
    pub queue: u32,
    pub driver: String,
    pub zero_copy: bool,
    pub native_xdp: bool,
    pub multi_buffer: bool,
    pub mtu: u32,
}

impl AfXdpMode {
    /// "zero-copy" or "copy", as the kernel bound the socket.
    pub fn bind(&self) -> &'static str {
        if self.zero_copy {
            "zero-copy"
        } else {
            "copy"
        }
    }

    /// "native" or "generic" XDP, as the program was attached.
    pub fn xdp(&self) -> &'static str {
        if self.native_xdp {
            "native"
        } else {
            "generic"
        }
    }
}

pub trait Port {
    fn name(&self) -> &str;

    fn info(&self) -> PortInfo;

    /// Appends up to `max.min(batch.room())` received frames to `batch`,
    /// tagged with `id`; frames come from `pool`. Returns how many were
    /// added.
    fn rx_burst(
        &mut self,
        pool: &mut FramePool,
        batch: &mut Batch,
        id: PortId,
        max: usize,
    ) -> usize;

    /// Queues `descs` for transmission. Returns how many were taken: those
    /// now belong to the port (and come back to `pool` when sent); the
    /// rest stay with the caller.
    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize;

    /// Housekeeping once per poll loop: reclaim completed TX frames, keep
    /// the fill ring stocked, kick the kernel if it asked.
    fn poll(&mut self, _pool: &mut FramePool) {}

    fn link_up(&self) -> bool {
        true
    }

    /// Whether the port sends multi-buffer packets (`TxDesc::tail` > 0):
    /// an AF_XDP port bound with XDP_USE_SG on a device whose MTU needs
    /// them. Others never get one: the worker drops it, counted.
    fn accepts_chains(&self) -> bool {
        false
    }

    /// Frames of the pool the port holds right now (fill ring, TX in
    /// flight): frame accounting adds these to the pool's free count.
    fn frames_held(&self) -> usize {
        0
    }

    /// The port will never receive again (a pcap file read to its end).
    fn rx_exhausted(&self) -> bool {
        false
    }

    /// Returns every frame the port holds to `pool` and flushes output;
    /// called once at shutdown. `deadline` bounds waiting for the device.
    fn close(&mut self, _pool: &mut FramePool, _deadline: std::time::Instant) {}

    fn counters(&self) -> &SharedCounters;
}
