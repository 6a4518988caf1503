//! RFC 2544 §26.1 throughput: the highest rate at which the DUT forwards
//! every frame, found by binary search on the offered rate, with the
//! latency measured at that rate (§26.2), paced, never in a burst at
//! maximum rate (that would measure the generator's own TX queue).

use crate::generator::{Generator, Trial};
use crate::spec::Rate;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// All the generator could offer, and what came through.
    pub max: Trial,
    /// The DUT lost nothing of all the generator could offer: its real
    /// zero-loss rate is at least `zero_loss_pps`.
    pub generator_bound: bool,
    /// The highest rate with loss within the tolerance, and its trial;
    /// `None` if even the lowest rate tried lost frames.
    pub zero_loss_pps: Option<f64>,
    pub zero_loss: Option<Trial>,
    /// A trial at a rate chosen by the caller, the same for every DUT, so
    /// latencies compare at equal load.
    pub latency_at: Option<Trial>,
    /// A trial at a fraction of this DUT's own zero-loss rate (the
    /// fraction below), so each is compared where it has headroom.
    pub latency_fraction: Option<f64>,
    pub latency_at_fraction: Option<Trial>,
    pub trials: Vec<Trial>,
}

pub struct SearchConfig {
    pub trial: Duration,
    pub steps: u32,
    /// Loss ratio still counted as zero loss (0 is RFC 2544's).
    pub tolerance: f64,
    /// Stop when the bracket is narrower than this fraction of its top.
    pub resolution: f64,
    pub latency_rate: Option<f64>,
    /// Also measure latency at this fraction (0 < f ≤ 1) of the zero-loss
    /// rate found.
    pub latency_fraction: Option<f64>,
}

fn passes(t: &Trial, tolerance: f64) -> bool {
    t.sent > 0 && t.loss_ratio <= tolerance
}

pub fn search(g: &mut Generator, cfg: &SearchConfig, mut log: impl FnMut(&Trial)) -> SearchResult {
    let mut run = |g: &mut Generator, rate: Rate| {
        let t = g.trial(rate, cfg.trial, None);
        log(&t);
        t
    };
    let max = run(g, Rate::Max);
    let (mut lo, mut hi) = (0.0f64, max.offered_pps);
    let mut best: Option<Trial> = None;
    let mut trials = Vec::new();
    let mut generator_bound = false;
    if passes(&max, cfg.tolerance) {
        // Lossless at the generator's maximum: confirm paced just below
        // it, which is also where the latency is measured.
        let t = run(g, Rate::Pps(max.offered_pps * 0.99));
        if passes(&t, cfg.tolerance) {
            generator_bound = true;
            lo = hi;
            best = Some(t.clone());
        }
        trials.push(t);
    }
    for _ in 0..cfg.steps {
        if hi - lo < hi * cfg.resolution {
            break;
        }
        let mid = (lo + hi) / 2.0;
        let t = run(g, Rate::Pps(mid));
        if passes(&t, cfg.tolerance) {
            lo = mid;
            best = Some(t.clone());
        } else {
            hi = mid;
        }
        trials.push(t);
    }
    let latency_at = cfg.latency_rate.map(|r| run(g, Rate::Pps(r)));
    let zero_loss_pps = best.as_ref().map(|t| t.offered_pps);
    let latency_at_fraction = match (cfg.latency_fraction, zero_loss_pps) {
        (Some(f), Some(z)) => Some(run(g, Rate::Pps(z * f))),
        _ => None,
    };
    SearchResult {
        latency_fraction: cfg.latency_fraction,
        latency_at_fraction,
        zero_loss_pps,
        zero_loss: best,
        generator_bound,
        latency_at,
        max,
        trials,
    }
}
