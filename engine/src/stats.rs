//! Counters shared between workers and the control thread, and their
//! human-readable rendering. Workers own their counters (single writer);
//! everyone else only reads.

use crossbeam_utils::CachePadded;
use pollgate_pipeline::{DropCounters, DropReason};
use pollgate_pmd::{PortStats, SharedCounters};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Per-worker counters, published by the worker after each busy loop.
#[derive(Debug)]
pub struct WorkerCounters {
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Loops that moved at least one packet.
    pub busy_polls: AtomicU64,
    pub idle_polls: AtomicU64,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            busy_polls: AtomicU64::new(0),
            idle_polls: AtomicU64::new(0),
        }
    }
}

pub type SharedWorkerCounters = Arc<CachePadded<WorkerCounters>>;

/// Drops summed over the workers, as they last published them.
pub fn drops_of(workers: &[SharedWorkerCounters]) -> DropCounters {
    let mut d = DropCounters::default();
    for w in workers {
        for (r, n) in w.drops().nonzero() {
            d.add(r, n);
        }
    }
    d
}

impl WorkerCounters {
    pub fn publish_drops(&self, local: &DropCounters) {
        for (slot, v) in self.drops.iter().zip(local.as_array()) {
            slot.store(*v, Ordering::Relaxed);
        }
    }

    pub fn drops(&self) -> DropCounters {
        let mut d = DropCounters::default();
        for r in DropReason::ALL {
            d.add(*r, self.drops[r.index()].load(Ordering::Relaxed));
        }
        d
    }
}

/// What the control side keeps of a port.
#[derive(Clone)]
pub struct PortView {
    pub name: String,
    pub kind: &'static str,
    pub detail: String,
    /// The AF_XDP modes the kernel granted (AF_XDP ports only).
    pub afxdp: Option<pollgate_pmd::AfXdpMode>,
    pub worker: usize,
    pub counters: SharedCounters,
    /// Live capture of this port's frames (`pollgate ctl capture`).
    pub tap: Arc<crate::capture::TapReader>,
    /// The XDP program steering the port's queues to its sockets.
    pub xdp: Option<Arc<pollgate_pmd::afxdp::XdpAttachment>>,
}

/// Per-port table like testpmd's `show port stats all`.
pub fn render_ports(ports: &[PortView], elapsed_secs: f64, prev: Option<&[PortStats]>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<5} {:>12} {:>12} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "port",
        "kind",
        "rx-packets",
        "tx-packets",
        "rx-pps",
        "tx-pps",
        "rx-nobuf",
        "tx-full",
        "kern-drop",
        "fill-empty",
        "errors"
    );
    for (i, p) in ports.iter().enumerate() {
        let s = p.counters.snapshot();
        let base = prev.and_then(|v| v.get(i)).copied().unwrap_or_default();
        let rate = |now: u64, then: u64| {
            if elapsed_secs > 0.0 {
                (now.saturating_sub(then)) as f64 / elapsed_secs
            } else {
                0.0
            }
        };
        let _ = writeln!(
            out,
            "{:<12} {:<5} {:>12} {:>12} {:>10.0} {:>10.0} {:>9} {:>9} {:>10} {:>10} {:>8}",
            p.name,
            p.kind,
            s.rx_packets,
            s.tx_packets,
            rate(s.rx_packets, base.rx_packets),
            rate(s.tx_packets, base.tx_packets),
            s.rx_nombuf,
            s.tx_full,
            s.kernel_drops,
            s.fill_empty,
            s.tx_errors + s.rx_errors + s.rx_oversize,
        );
    }
    out
}

/// The periodic per-port table (packets per second since the last one),
/// for `stats_interval` and the demo.
pub struct LiveStats {
    ports: Vec<PortView>,
    prev: Vec<PortStats>,
    last: std::time::Instant,
    every: std::time::Duration,
}

impl LiveStats {
    pub fn new(ports: &[PortView], every: std::time::Duration) -> Self {
        LiveStats {
            prev: ports.iter().map(|p| p.counters.snapshot()).collect(),
            ports: ports.to_vec(),
            last: std::time::Instant::now(),
            every,
        }
    }

    /// The table, when `every` has passed since the last one.
    pub fn tick(&mut self) -> Option<String> {
        if self.last.elapsed() < self.every {
            return None;
        }
        let table = render_ports(
            &self.ports,
            self.last.elapsed().as_secs_f64(),
            Some(&self.prev),
        );
        self.prev = self.ports.iter().map(|p| p.counters.snapshot()).collect();
        self.last = std::time::Instant::now();
        Some(table)
    }
}

pub fn render_drops(drops: &DropCounters) -> String {
    let mut out = String::new();
    if drops.total() == 0 {
        out.push_str("drops: none\n");
        return out;
    }
    out.push_str("drops:\n");
    for (r, n) in drops.nonzero() {
        let _ = writeln!(out, "  {:<24} {:>12}  ({})", r.name(), n, r.description());
    }
    out
}
