//! A bounded single-producer single-consumer ring of packet slots: the
//! wire between two in-memory ports that may live on different workers.
//! Each slot holds one frame's bytes; the producer copies in, the consumer
//! copies out into its own pool (the two workers own different pools).

use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Largest frame a slot of [`channel`] carries.
pub const SLOT_BYTES: usize = 2048;

struct Slot {
    /// What the producer says the frame is for (an output port).
    tag: u16,
    len: usize,
    data: Box<[u8]>,
}

struct Shared {
    /// Next slot the producer writes; only the producer stores it.
    head: CachePadded<AtomicUsize>,
    /// Next slot the consumer reads; only the consumer stores it.
    tail: CachePadded<AtomicUsize>,
    slots: Box<[UnsafeCell<Slot>]>,
    mask: usize,
    slot_bytes: usize,
}

// SAFETY: a slot is written only by the producer while it lies in
// [tail, tail+cap) outside [tail, head), and read only by the consumer
// while it lies in [tail, head); the Release store of `head` after the
// write and the Acquire load before the read order the two, and the same
// holds for `tail` in the other direction. No slot is ever accessed from
// both sides at once.
unsafe impl Sync for Shared {}
// SAFETY: see `Sync`; the slots are plain bytes.
unsafe impl Send for Shared {}

pub struct Producer {
    shared: Arc<Shared>,
    head: usize,
    cached_tail: usize,
}

pub struct Consumer {
    shared: Arc<Shared>,
    tail: usize,
    cached_head: usize,
}

/// A ring of `slots` entries (rounded up to a power of two).
pub fn channel(slots: usize) -> (Producer, Consumer) {
    channel_sized(slots, SLOT_BYTES)
}

/// A ring of `slots` entries of `slot_bytes` each: jumbo frames need
/// slots the size of the largest frame.
pub fn channel_sized(slots: usize, slot_bytes: usize) -> (Producer, Consumer) {
    let cap = slots.max(2).next_power_of_two();
    let slots = (0..cap)
        .map(|_| {
            UnsafeCell::new(Slot {
                tag: 0,
                len: 0,
                data: vec![0; slot_bytes].into_boxed_slice(),
            })
        })
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: cap - 1,
        slot_bytes,
    });
    (
        Producer {
            shared: shared.clone(),
            head: 0,
            cached_tail: 0,
        },
        Consumer {
            shared,
            tail: 0,
            cached_head: 0,
        },
    )
}

impl Producer {
    fn cap(&self) -> usize {
        self.shared.mask + 1
    }

    /// Copies `data` into the next free slot. False when the ring is full
    /// or `data` longer than a slot.
    pub fn push(&mut self, data: &[u8]) -> bool {
        self.push_tagged(0, data)
    }

    /// As `push`, with a tag the consumer gets back with the frame.
    pub fn push_tagged(&mut self, tag: u16, data: &[u8]) -> bool {
        self.push_with(tag, data.len(), |dst| {
            dst.copy_from_slice(data);
            true
        })
    }

    /// Lets `fill` write a `len`-byte frame straight into the next free
    /// slot (a multi-buffer packet gathered from its frames). False when
    /// the ring is full, `len` longer than a slot, or `fill` fails.
    pub fn push_with(
        &mut self,
        tag: u16,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> bool {
        if self.head - self.cached_tail == self.cap() {
            // Acquire: the consumer's reads of the slots it released are
            // done before we overwrite them.
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            if self.head - self.cached_tail == self.cap() {
                return false;
            }
        }
        let cell = &self.shared.slots[self.head & self.shared.mask];
        // SAFETY: head - tail < cap, so this slot is outside [tail, head):
        // the consumer does not read it until `head` is published below.
        let slot = unsafe { &mut *cell.get() };
        let Some(dst) = slot.data.get_mut(..len) else {
            return false;
        };
        if !fill(dst) {
            return false;
        }
        slot.len = len;
        slot.tag = tag;
        self.head += 1;
        // Release: the slot's bytes are visible before the consumer sees
        // the new head.
        self.shared.head.store(self.head, Ordering::Release);
        true
    }

    /// Largest frame a slot carries.
    pub fn slot_bytes(&self) -> usize {
        self.shared.slot_bytes
    }

    /// Slots in use, as the producer last saw them.
    pub fn len(&self) -> usize {
        self.head - self.shared.tail.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Consumer {
    /// Hands the oldest frame to `f` and frees its slot. `None` when empty.
    pub fn pop<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.pop_tagged(|_, d| f(d))
    }

    /// As `pop`, handing `f` the frame's tag too.
    pub fn pop_tagged<R>(&mut self, f: impl FnOnce(u16, &[u8]) -> R) -> Option<R> {
        if self.tail == self.cached_head {
            // Acquire: pairs with the producer's Release of `head`.
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if self.tail == self.cached_head {
                return None;
            }
        }
        let cell = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: tail < head, so the producer has finished this slot and
        // will not touch it again until `tail` moves past it below.
        let slot = unsafe { &*cell.get() };
        let r = f(slot.tag, &slot.data[..slot.len]);
        self.tail += 1;
        // Release: our reads of the slot happen before the producer may
        // reuse it.
        self.shared.tail.store(self.tail, Ordering::Release);
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_full() {
        let (mut p, mut c) = channel(4);
        for i in 0..4u8 {
            assert!(p.push(&[i; 10]));
        }
        assert!(!p.push(&[9]));
        assert_eq!(c.pop(|b| b.to_vec()), Some(vec![0; 10]));
        assert!(p.push(&[4; 3]));
        for want in [1u8, 2, 3] {
            assert_eq!(c.pop(|b| b[0]), Some(want));
        }
        assert_eq!(c.pop(|b| b.len()), Some(3));
        assert_eq!(c.pop(|b| b.len()), None);
        assert!(!p.push(&[0; SLOT_BYTES + 1]));
    }

    #[test]
    fn sized_slots_carry_jumbo_frames() {
        let (mut p, mut c) = channel_sized(2, 9022);
        let frame: Vec<u8> = (0..9022u32).map(|i| i as u8).collect();
        assert!(p.push_tagged(7, &frame));
        assert!(!p.push_with(1, 9023, |_| true), "longer than a slot");
        assert!(!p.push_with(1, 10, |_| false), "the filler failed");
        assert_eq!(c.pop_tagged(|t, b| (t, b.to_vec())), Some((7, frame)));
        assert_eq!(c.pop(|b| b.len()), None);
    }

    #[test]
    fn across_threads_in_order() {
        let (mut p, mut c) = channel(64);
        let n = 200_000u32;
        let t = std::thread::spawn(move || {
            let mut i = 0u32;
            while i < n {
                if p.push(&i.to_le_bytes()) {
                    i += 1;
                }
            }
        });
        let mut next = 0u32;
        while next < n {
            if let Some(v) = c.pop(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) {
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
    }
}
