//! Sessions per source address, so that one host opening flows as fast
//! as it can fills only its share of the NAT sessions (the per-source
//! limit CGNATs and VPP's nat44 `max-translations-per-user` keep).

/// Slots a source may be looked for in.
const PROBE: usize = 16;

pub struct SourceCounts {
    /// (address, sessions); address 0 is a free slot (0.0.0.0 is never a
    /// source NAT makes a session for).
    slots: Box<[(u32, u32)]>,
    mask: usize,
    /// Sources with sessions (kept as they come and go: published every
    /// busy loop, never counted by a walk).
    active: usize,
    /// A new source found its window full.
    pub full: u64,
}

fn hash(a: u32) -> usize {
    (a.wrapping_mul(0x9e37_79b1) >> 7) as usize
}

impl SourceCounts {
    pub fn new(sources: usize) -> SourceCounts {
        let n = (sources * 2).max(PROBE).next_power_of_two();
        SourceCounts {
            slots: vec![(0, 0); n].into_boxed_slice(),
            mask: n - 1,
            active: 0,
            full: 0,
        }
    }

    fn find(&self, a: u32) -> Option<usize> {
        let b = hash(a);
        (0..PROBE)
            .map(|p| (b + p) & self.mask)
            .find(|&i| self.slots[i].0 == a)
    }

    pub fn count(&self, a: u32) -> u32 {
        self.find(a).map_or(0, |i| self.slots[i].1)
    }

    /// One more session from `a`; false (nothing changed) when a new
    /// source finds no slot.
    pub fn inc(&mut self, a: u32) -> bool {
        if let Some(i) = self.find(a) {
            self.slots[i].1 += 1;
            return true;
        }
        let b = hash(a);
        match (0..PROBE)
            .map(|p| (b + p) & self.mask)
            .find(|&i| self.slots[i].0 == 0)
        {
            Some(i) => {
                self.slots[i] = (a, 1);
                self.active += 1;
                true
            }
            None => {
                self.full += 1;
                false
            }
        }
    }

    pub fn dec(&mut self, a: u32) {
        if let Some(i) = self.find(a) {
            self.slots[i].1 -= 1;
            if self.slots[i].1 == 0 {
                self.slots[i] = (0, 0);
                self.active -= 1;
            }
        }
    }

    /// Sources with sessions.
    pub fn active(&self) -> usize {
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_down_and_frees_the_slot() {
        let mut s = SourceCounts::new(8);
        let a = u32::from_be_bytes([198, 18, 1, 10]);
        for _ in 0..3 {
            assert!(s.inc(a));
        }
        assert_eq!(s.count(a), 3);
        for _ in 0..3 {
            s.dec(a);
        }
        assert_eq!((s.count(a), s.active()), (0, 0));
    }

    #[test]
    fn a_full_table_refuses_new_sources_only() {
        let mut s = SourceCounts::new(8);
        let mut ok = 0;
        for a in 1..1000u32 {
            if s.inc(a) {
                ok += 1;
            }
        }
        assert_eq!(ok, 16);
        assert!(s.full > 0);
        let known = (1..1000u32).find(|a| s.count(*a) == 1).unwrap();
        assert!(s.inc(known));
    }
}
