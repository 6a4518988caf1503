//! Per-worker telemetry: how full each burst was, and how long a burst
//! took from RX to TX queueing (an hdrhistogram, sampled one burst in
//! [`SAMPLE_EVERY`] so the clock reads cost little). The worker records
//! into its own structures and publishes now and then: atomics for the
//! burst sizes, a mutex it only ever `try_lock`s for the latencies, so
//! the control thread never stalls it.

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use pollgate_pipeline::BATCH_SIZE;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One burst in this many is timed.
pub const SAMPLE_EVERY: u32 = 16;
/// Bursts between publications.
const PUBLISH_EVERY: u32 = 1024;

/// Compiled out with `--features no-telemetry` (to measure its cost).
pub const ENABLED: bool = !cfg!(feature = "no-telemetry");

/// What the control thread reads.
pub struct TelemetryShared {
    /// Bursts by size (index = packets in the burst).
    pub bursts: [AtomicU64; BATCH_SIZE + 1],
    /// Nanoseconds per timed burst, since the start or `clear stats`.
    pub latency: Mutex<Histogram<u64>>,
}

pub type SharedTelemetry = Arc<CachePadded<TelemetryShared>>;

pub fn shared() -> SharedTelemetry {
    Arc::new(CachePadded::new(TelemetryShared {
        bursts: std::array::from_fn(|_| AtomicU64::new(0)),
        latency: Mutex::new(new_histogram()),
    }))
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 1 s, three significant digits: constant, valid bounds.
    Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// The worker's side.
pub struct WorkerTelemetry {
    bursts: [u64; BATCH_SIZE + 1],
    latency: Histogram<u64>,
    count: u32,
    shared: SharedTelemetry,
}

impl WorkerTelemetry {
    pub fn new(shared: SharedTelemetry) -> Self {
        WorkerTelemetry {
            bursts: [0; BATCH_SIZE + 1],
            latency: new_histogram(),
            count: 0,
            shared,
        }
    }

    /// Starts a burst: the time to measure from, for a sampled one.
    #[inline(always)]
    pub fn start(&mut self) -> Option<Instant> {
        if !ENABLED {
            return None;
        }
        self.count = self.count.wrapping_add(1);
        self.count.is_multiple_of(SAMPLE_EVERY).then(Instant::now)
    }

    /// Ends a burst of `n` packets started at `t0`.
    #[inline(always)]
    pub fn end(&mut self, n: usize, t0: Option<Instant>) {
        if !ENABLED {
            return;
        }
        if let Some(slot) = self.bursts.get_mut(n) {
            *slot += 1;
        }
        if let Some(t0) = t0 {
            let ns = t0.elapsed().as_nanos() as u64;
            let _ = self.latency.record(ns.max(1));
        }
        if self.count.is_multiple_of(PUBLISH_EVERY) {
            self.publish();
        }
    }

    /// Hands the counts to the control thread (also on idle and exit).
    pub fn publish(&mut self) {
        if !ENABLED {
            return;
        }
        for (s, &v) in self.shared.bursts.iter().zip(&self.bursts) {
            s.store(v, Ordering::Relaxed);
        }
        if self.latency.is_empty() {
            return;
        }
        // Never wait: if `ctl` is reading, the samples stay here for the
        // next time.
        if let Ok(mut h) = self.shared.latency.try_lock() {
            if h.add(&self.latency).is_ok() {
                self.latency.reset();
            }
        }
    }
}

/// Burst sizes and latency percentiles, for `show workers` and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TelemetrySummary {
    pub bursts: u64,
    pub packets: u64,
    pub mean_burst: f64,
    /// Bursts of 1, 2–3, 4–7, 8–15, 16–31, 32–63 and 64 packets.
    pub burst_histogram: [u64; 7],
    pub timed_bursts: u64,
    pub latency_ns_p50: u64,
    pub latency_ns_p99: u64,
    pub latency_ns_p999: u64,
    pub latency_ns_max: u64,
}

impl TelemetryShared {
    pub fn summary(&self, base: &[u64; BATCH_SIZE + 1]) -> TelemetrySummary {
        let mut s = TelemetrySummary::default();
        for (n, c) in self.bursts.iter().enumerate() {
            let c = c.load(Ordering::Relaxed).saturating_sub(base[n]);
            s.bursts += c;
            s.packets += c * n as u64;
            let bucket = if n == 0 {
                continue;
            } else {
                (usize::BITS - 1 - n.leading_zeros()) as usize
            };
            s.burst_histogram[bucket.min(6)] += c;
        }
        s.mean_burst = if s.bursts > 0 {
            s.packets as f64 / s.bursts as f64
        } else {
            0.0
        };
        if let Ok(h) = self.latency.lock() {
            s.timed_bursts = h.len();
            if !h.is_empty() {
                s.latency_ns_p50 = h.value_at_quantile(0.5);
                s.latency_ns_p99 = h.value_at_quantile(0.99);
                s.latency_ns_p999 = h.value_at_quantile(0.999);
                s.latency_ns_max = h.max();
            }
        }
        s
    }

    pub fn burst_counts(&self) -> [u64; BATCH_SIZE + 1] {
        std::array::from_fn(|n| self.bursts[n].load(Ordering::Relaxed))
    }

    /// `clear stats`: latencies restart; burst counts are a baseline the
    /// caller keeps (the worker owns them).
    pub fn clear_latency(&self) {
        if let Ok(mut h) = self.latency.lock() {
            h.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_and_latency_reach_the_summary() {
        let sh = shared();
        let mut w = WorkerTelemetry::new(sh.clone());
        for i in 0..(SAMPLE_EVERY * 4) {
            let t = w.start();
            w.end(if i % 2 == 0 { 32 } else { 1 }, t);
        }
        w.publish();
        let s = sh.summary(&[0; BATCH_SIZE + 1]);
        if !ENABLED {
            return;
        }
        assert_eq!(s.bursts, 64);
        assert_eq!(s.packets, 32 * 32 + 32);
        assert_eq!(s.burst_histogram[0], 32);
        assert_eq!(s.burst_histogram[5], 32);
        assert_eq!(s.timed_bursts, 4);
        assert!(s.latency_ns_max >= s.latency_ns_p50);
        let base = sh.burst_counts();
        assert_eq!(sh.summary(&base).bursts, 0);
    }
}
