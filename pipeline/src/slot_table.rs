//! An open-addressed array of slots, each a key word and a value word,
//! probed linearly, that workers read and write with plain atomics and no
//! lock: one generation of the MAC table, and the ARP suppression cache.
//! Keys carry the domain in bits 48 and up, where the hash mixes it in,
//! and are never [`EMPTY`] or [`TOMBSTONE`] (each table's `key` says how).
//! A value of 0 is a slot claimed but not yet written, read as a miss.

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const EMPTY: u64 = 0;
pub(crate) const TOMBSTONE: u64 = u64::MAX;
/// Longest probe sequence: past it a lookup misses and a claim overflows.
pub(crate) const MAX_PROBE: usize = 32;

/// What [`Slots::claim`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The key took a free slot.
    New,
    /// Another writer put the key there first; its value is now ours.
    Known,
    /// Every slot of the key's probe sequence is taken.
    Overflow,
}

/// A key and its value side by side: a lookup that finds the key has the
/// value in the same cache line (four slots a line, none straddling), one
/// memory access where two arrays cost two.
#[derive(Default)]
#[repr(C, align(16))]
pub(crate) struct Slot {
    pub(crate) key: AtomicU64,
    pub(crate) val: AtomicU64,
}

/// The slots (a power of two of them) and their index mask.
pub(crate) struct Slots {
    pub(crate) slots: Box<[Slot]>,
    pub(crate) mask: usize,
}

impl Slots {
    /// `n` slots, a power of two.
    pub(crate) fn new(n: usize) -> Slots {
        debug_assert!(n.is_power_of_two());
        Slots {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
        }
    }

    /// Where `k`'s probe sequence starts.
    #[inline(always)]
    pub(crate) fn first_slot(&self, k: u64) -> usize {
        const FIB: u64 = 0x9e37_79b9_7f4a_7c15;
        // Fibonacci hashing keeps product bits 20 and up, which depend
        // only on the key's bits below them: the domain (bits 48 and up)
        // must be mixed down to count. Without it one address in many
        // domains (a router's MAC in every VLAN, a gateway's IP in every
        // tenant) shared one probe sequence, and workers serving
        // different domains with the same hosts shared every line. The
        // domain's own multiply spreads it over address bits 20 to 47,
        // so it counts in the smallest table too (an XOR at bits 28 and
        // up, as before, gave a growable table's 4 K-slot first
        // generation 16 starting points for one MAC). Bits below 20 are
        // left alone: XOR with a constant whose low 20 bits are 0 keeps a
        // run of consecutive addresses (a hypervisor's pool, Docker's
        // MACs from IPs) a run, which the middle bits spread one to a
        // slot; the top bits would scatter it as a random hash does (see
        // README, "Every core").
        let k = k ^ (((k >> 48).wrapping_mul(FIB) >> 16) & !0xf_ffff);
        (k.wrapping_mul(FIB) >> 20) as usize & self.mask
    }

    #[inline(always)]
    pub(crate) fn find(&self, k: u64) -> Option<usize> {
        let mut i = self.first_slot(k);
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

    /// Claims a slot for `k` with value `v`.
    pub(crate) fn claim(&self, k: u64, v: u64) -> Claim {
        let mut i = self.first_slot(k);
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
                    return Claim::New;
                }
            }
            if self.slots[i].key.load(Ordering::Relaxed) == k {
                // Another worker learned it in the meantime.
                self.slots[i].val.store(v, Ordering::Relaxed);
                return Claim::Known;
            }
            i = (i + 1) & self.mask;
        }
        Claim::Overflow
    }

    /// Frees slot `i`; whether it held a key this call removed.
    pub(crate) fn kill(&self, i: usize) -> bool {
        let slot = &self.slots[i];
        let k = slot.key.load(Ordering::Relaxed);
        if k == EMPTY || k == TOMBSTONE {
            return false;
        }
        // The value goes first: a reader that still finds the key reads a
        // miss, and a slot reused later starts with no stale value. A
        // writer refreshing the old key in between leaves its value
        // behind; the next claimer then publishes its key before its own
        // value, and a reader that finds the new key in that instant
        // reads the old one's value (a MAC table lookup sends one frame
        // to the old key's port; the refresh is once a second a key).
        slot.val.store(0, Ordering::Relaxed);
        slot.key
            .compare_exchange(k, TOMBSTONE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Every slot holding a key, as (index, key, value); the value is 0
    /// while its claimer has yet to write it.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let k = s.key.load(Ordering::Acquire);
            (k != EMPTY && k != TOMBSTONE).then(|| (i, k, s.val.load(Ordering::Relaxed)))
        })
    }
}
