//! One generation of the MAC table: an open-addressed array of slots,
//! each a key word and a value word, probed linearly.

use super::Learned;
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) const EMPTY: u64 = 0;
pub(super) const TOMBSTONE: u64 = u64::MAX;
/// Longest probe sequence: past it a lookup misses and a learn overflows.
pub(super) const MAX_PROBE: usize = 32;

/// Where `k`'s probe sequence starts in a table of `mask + 1` slots.
#[inline(always)]
pub(super) fn first_slot(k: u64, mask: usize) -> usize {
    // Fibonacci hashing keeps product bits 20 and up, which depend only
    // on the key's bits below them: the domain (bits 48+) must be folded
    // down to count. Without it one MAC in many domains (a router's, a
    // VRRP address) shared one probe sequence, overflowing it past
    // MAX_PROBE domains, and workers serving different domains with the
    // same hosts shared every line. The fold moves a domain's slots by a
    // constant, so the multiply still spreads consecutive MACs (a
    // hypervisor's pool, Docker's MACs from IPs) evenly, with fewer
    // collisions than a random hash would give them.
    let k = k ^ ((k >> 48) << 28);
    (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize & mask
}

/// A key and its value side by side: a lookup that finds the key has the
/// value in the same cache line (four slots a line, none straddling), one
/// memory access where two arrays cost two.
#[derive(Default)]
#[repr(C, align(16))]
pub(super) struct Slot {
    pub(super) key: AtomicU64,
    pub(super) val: AtomicU64,
}

/// One generation: the slots and their index mask.
pub(super) struct Slots {
    pub(super) slots: Box<[Slot]>,
    pub(super) mask: usize,
}

impl Slots {
    pub(super) fn new(n: usize) -> Slots {
        Slots {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
        }
    }

    #[inline(always)]
    pub(super) fn find(&self, k: u64) -> Option<usize> {
        let mut i = first_slot(k, self.mask);
        for _ in 0..MAX_PROBE {
            // Acquire: a key seen here comes with the value stored before it
            // was published (or 0, read as a miss).
            match self.slots[i].key.load(Ordering::Acquire) {
                EMPTY => return None,
                x if x == k => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    /// Claims a slot for `k` with value `v`: `New`, `Known` if another
    /// writer put `k` there first (its value is then `v`), or `Overflow`
    /// if the probe sequence is full.
    pub(super) fn claim(&self, k: u64, v: u64) -> Learned {
        let mut i = first_slot(k, self.mask);
        for _ in 0..MAX_PROBE {
            let cur = self.slots[i].key.load(Ordering::Relaxed);
            if cur == EMPTY || cur == TOMBSTONE {
                // AcqRel: claiming the slot orders against other claimers;
                // the value written below is published by its own store.
                if self.slots[i]
                    .key
                    .compare_exchange(cur, k, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    self.slots[i].val.store(v, Ordering::Release);
                    return Learned::New;
                }
            }
            if self.slots[i].key.load(Ordering::Relaxed) == k {
                // Another worker learned it in the meantime.
                self.slots[i].val.store(v, Ordering::Relaxed);
                return Learned::Known;
            }
            i = (i + 1) & self.mask;
        }
        Learned::Overflow
    }

    /// Every slot holding a key, as (index, key, value); the value is 0
    /// while its claimer has yet to write it.
    pub(super) fn entries(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let k = s.key.load(Ordering::Acquire);
            (k != EMPTY && k != TOMBSTONE).then(|| (i, k, s.val.load(Ordering::Relaxed)))
        })
    }
}
