//! What the receiving side saw in one trial: frames with our stamp,
//! their sequence order and their one-way latency (sender and receiver
//! share the clock: they are one process).

use crate::stamp;
use hdrhistogram::Histogram;
use serde::Serialize;

pub struct Receiver {
    /// Stamps below this belong to an earlier trial (late arrivals).
    first_seq: u64,
    next_seq: u64,
    pub received: u64,
    pub bytes: u64,
    pub reordered: u64,
    pub late: u64,
    /// Frames without our stamp (ARP, IPv6 neighbour discovery…).
    pub foreign: u64,
    latency: Histogram<u64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub min_ns: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

impl Receiver {
    pub fn new(first_seq: u64) -> Receiver {
        Receiver {
            first_seq,
            next_seq: first_seq,
            received: 0,
            bytes: 0,
            reordered: 0,
            late: 0,
            foreign: 0,
            // 1 ns to 100 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds"),
        }
    }

    /// Accounts one received frame, at `now_ns` on the sender's clock.
    #[inline]
    pub fn frame(&mut self, f: &[u8], now_ns: u64) {
        self.frame_in(f, f.len(), now_ns)
    }

    /// As [`frame`](Self::frame) for a frame of `wire_len` bytes of which
    /// `f` is the first part (a multi-buffer frame's first segment).
    #[inline]
    pub fn frame_in(&mut self, f: &[u8], wire_len: usize, now_ns: u64) {
        let stamp = stamp::payload_offset_in(f, wire_len).and_then(|at| stamp::read(f.get(at..)?));
        let Some((seq, ts)) = stamp else {
            self.foreign += 1;
            return;
        };
        if seq < self.first_seq {
            self.late += 1;
            return;
        }
        self.received += 1;
        self.bytes += wire_len as u64;
        if seq < self.next_seq {
            self.reordered += 1;
        } else {
            self.next_seq = seq + 1;
        }
        self.latency
            .saturating_record(now_ns.saturating_sub(ts).max(1));
    }

    pub fn latency(&self) -> Latency {
        let h = &self.latency;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            samples: h.len(),
            min_ns: h.min(),
            mean_ns: h.mean() as u64,
            p50_ns: h.value_at_quantile(0.50),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{frame, spec::Spec};

    #[test]
    fn counts_loss_order_and_latency_from_stamps() {
        let s = Spec::parse(
            "t",
            "name = \"t\"\nsrc_mac = \"02:00:00:00:00:01\"\ndst_mac = \"02:00:00:00:00:02\"\nsrc_ip = \"198.18.0.1\"\ndst_ip = \"198.19.0.1\"\nproto = \"udp\"\nsport = 1\ndport = 2\nsize = 64\nvlan = [7]\n",
        )
        .unwrap();
        let t = frame::build(&s, 0, 64);
        let mut r = Receiver::new(10);
        for (seq, ts) in [(9u64, 0u64), (10, 100), (12, 200), (11, 300), (13, 400)] {
            let mut f = t.bytes.clone();
            stamp::write(&mut f, t.stamp_at, t.l4_csum_at, true, seq, ts);
            r.frame(&f, 1000);
        }
        r.frame(&[0u8; 60], 1000);
        assert_eq!((r.received, r.reordered, r.late, r.foreign), (4, 1, 1, 1));
        let l = r.latency();
        assert_eq!(l.samples, 4);
        assert_eq!(l.max_ns, 900);
        assert!((599..=601).contains(&l.min_ns), "{l:?}");
    }
}
