//! Stall detection for a port's rings, run from its housekeeping (every
//! ~100 ms): TX completions that stop advancing while frames are
//! outstanding, and a fill ring the kernel keeps finding empty. Pure
//! bookkeeping, so the rules are tested here; the port acts on them.

/// Housekeeping rounds without a TX completion, frames outstanding, before
/// the TX side counts as stalled (about a second).
pub const STALL_ROUNDS: u32 = 10;

#[derive(Debug, Default)]
pub struct StallWatch {
    last_done: u64,
    rounds: u32,
    last_fill_empty: u64,
    /// Rounds since the fill ring was last reported (rate limit).
    quiet: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// TX has not completed anything for STALL_ROUNDS rounds: kick it.
    /// `first` is true once per stall (count and log it then).
    TxStalled { outstanding: u32, first: bool },
    /// The kernel found the fill ring empty `times` more times since the
    /// last report (reported at most every STALL_ROUNDS rounds).
    FillStarved { times: u64 },
}

impl StallWatch {
    /// One housekeeping round: `outstanding` frames sit in TX/completion
    /// rings, `done` completions so far, `fill_empty` the kernel's count.
    pub fn round(
        &mut self,
        outstanding: u32,
        done: u64,
        fill_empty: u64,
    ) -> (Option<Event>, Option<Event>) {
        let tx = if outstanding > 0 && done == self.last_done {
            self.rounds += 1;
            (self.rounds >= STALL_ROUNDS && self.rounds.is_multiple_of(STALL_ROUNDS)).then_some(
                Event::TxStalled {
                    outstanding,
                    first: self.rounds == STALL_ROUNDS,
                },
            )
        } else {
            self.rounds = 0;
            None
        };
        self.last_done = done;
        self.quiet = self.quiet.saturating_add(1);
        let fill = if fill_empty > self.last_fill_empty && self.quiet >= STALL_ROUNDS {
            let times = fill_empty - self.last_fill_empty;
            self.last_fill_empty = fill_empty;
            self.quiet = 0;
            Some(Event::FillStarved { times })
        } else {
            None
        };
        (tx, fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_stall_is_reported_once_then_kicked_every_second() {
        let mut w = StallWatch::default();
        // Progress: never a stall, however many frames are out.
        for done in 0..50 {
            assert_eq!(w.round(100, done, 0).0, None);
        }
        // Completions stop: the tenth round reports, the twentieth kicks
        // again without counting a new stall.
        let events: Vec<_> = (0..20).map(|_| w.round(100, 49, 0).0).collect();
        assert_eq!(
            events[9],
            Some(Event::TxStalled {
                outstanding: 100,
                first: true
            })
        );
        assert_eq!(
            events[19],
            Some(Event::TxStalled {
                outstanding: 100,
                first: false
            })
        );
        assert_eq!(events.iter().flatten().count(), 2);
        // Progress again resets; nothing outstanding is no stall.
        assert_eq!(w.round(100, 50, 0).0, None);
        for _ in 0..30 {
            assert_eq!(w.round(0, 50, 0).0, None);
        }
    }

    #[test]
    fn fill_starvation_is_reported_at_most_once_a_second() {
        let mut w = StallWatch::default();
        let mut reports = Vec::new();
        for r in 0..40u64 {
            if let (_, Some(Event::FillStarved { times })) = w.round(0, 0, r * 5) {
                reports.push(times);
            }
        }
        assert_eq!(reports.len(), 4, "{reports:?}");
        assert_eq!(
            reports.iter().sum::<u64>(),
            39 * 5,
            "every empty counted once"
        );
    }
}
