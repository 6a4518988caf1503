//! RFC 2544 §26.1 throughput: the highest rate at which the DUT forwards
//! every frame, found by binary search on the offered rate, with the
//! latency measured at that rate (§26.2).

use crate::generator::{Generator, Trial};
use crate::spec::Rate;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// All the generator could offer, and what came through.
    pub max: Trial,
    /// The highest rate with loss within the tolerance, and its trial;
    /// `None` if even the lowest rate tried lost frames.
    pub zero_loss_pps: Option<f64>,
    pub zero_loss: Option<Trial>,
    pub trials: Vec<Trial>,
}

pub struct SearchConfig {
    pub trial: Duration,
    pub steps: u32,
    /// Loss ratio still counted as zero loss (0 is RFC 2544's).
    pub tolerance: f64,
    /// Stop when the bracket is narrower than this fraction of its top.
    pub resolution: f64,
}

fn passes(t: &Trial, tolerance: f64) -> bool {
    t.sent > 0 && t.loss_ratio <= tolerance
}

pub fn search(g: &mut Generator, cfg: &SearchConfig, mut log: impl FnMut(&Trial)) -> SearchResult {
    let max = g.trial(Rate::Max, cfg.trial, None);
    log(&max);
    let mut trials = Vec::new();
    if passes(&max, cfg.tolerance) {
        return SearchResult {
            zero_loss_pps: Some(max.offered_pps),
            zero_loss: Some(max.clone()),
            max,
            trials,
        };
    }
    let (mut lo, mut hi) = (0.0f64, max.offered_pps);
    let mut best: Option<Trial> = None;
    for _ in 0..cfg.steps {
        if hi - lo < hi * cfg.resolution {
            break;
        }
        let mid = (lo + hi) / 2.0;
        let t = g.trial(Rate::Pps(mid), cfg.trial, None);
        log(&t);
        if passes(&t, cfg.tolerance) {
            lo = mid;
            best = Some(t.clone());
        } else {
            hi = mid;
        }
        trials.push(t);
    }
    SearchResult {
        zero_loss_pps: best.as_ref().map(|t| t.offered_pps),
        zero_loss: best,
        max,
        trials,
    }
}
