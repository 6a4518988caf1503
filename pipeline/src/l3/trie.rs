//! The lookup structure of the FIB: a multibit trie over left-aligned
//! 128-bit keys whose first level resolves 24 bits in one index and every
//! later level 8 bits, in groups of 256 entries. For IPv4 that is
//! DIR-24-8 (rte_lpm, rte_fib's `dir24_8`): one load for a prefix up to
//! /24, two past it. For IPv6 it is rte_fib's `trie` layout. Batched
//! lookups walk a whole batch level by level (`lookup_many`).
//!
//! Readers (workers) and the one writer (the control thread) share it
//! without a lock: every entry is an atomic word, the writer changes a
//! range by storing entries one at a time so a reader sees either the old
//! or the new next hop of each address, never a torn value; a group is
//! linked in only once it is filled, and a group unlinked is reused only
//! after a grace period, since a reader may still be inside it.

use crate::frame::FrameMemory;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// An entry: a next-hop id (0: no route), or with this bit a group.
const GROUP: u32 = 1 << 31;
const STRIDE: u32 = 8;
const GROUP_LEN: usize = 1 << STRIDE;
/// Groups per chunk of the arena: chunks are allocated as they are
/// needed, and never move, so readers index them without a lock. 2 MiB
/// each: one huge page where the allocator gives them (the engine's
/// does), so a second-level load is not a TLB miss too.
const CHUNK_GROUPS: usize = 2048;
type Chunk = [AtomicU32; CHUNK_GROUPS * GROUP_LEN];
/// Groups allocated with the trie, in one slice: a table that fits them
/// (a few thousand routes of IPv6, tens of thousands of IPv4) finds each
/// group with an add and a compare, where a chunk's costs loads of the
/// chunk list and of its lazily set pointer at every level of a walk.
/// 8 MiB.
const FIRST_GROUPS: usize = 8192;
/// Bits the first level resolves (tbl24).
const TOP_BITS: u32 = 24;
/// The first level, fixed-size: an index built from the top 24 bits of
/// a key needs no bounds check.
type Top = [AtomicU32; 1 << TOP_BITS];

/// Bits the summary level resolves: one entry for each run of 256 top
/// entries (an IPv4 /16).
const SUMMARY_BITS: u32 = 16;
type Summary = [AtomicU32; 1 << SUMMARY_BITS];
/// Lookups read the root and the summary first while at most this many
/// of the summary's entries are mixed (send a lookup on to the top
/// level). A table with few routes (a default, connected subnets, a
/// handful of statics) has its summary entries all uniform, and a lookup
/// reads 256 KiB of summary instead of a random line of the 64 MiB top
/// level: a TLB miss and a cache miss per packet where the host maps the
/// VM in 4 KiB pages. A table of a million routes has nearly every /16 mixed, and
/// the summary would only add a load: it is skipped.
const SUMMARY_MIXED_MAX: usize = 1 << 12;
/// Bits the root level resolves: one entry for each run of 256 summary
/// entries (an IPv4 /8), 1 KiB in all. A table of a default route and a
/// few subnets (a container host's) has nearly every root entry uniform,
/// and a lookup reads one line of L1 where the summary's 256 KiB, spread
/// over a burst's destinations, is an L2 or L3 load per packet.
const ROOT_BITS: u32 = 8;
type Root = [AtomicU32; 1 << ROOT_BITS];

/// How long an unlinked group waits before reuse: far longer than any
/// reader spends on one lookup, even a descheduled one in a VM.
const GRACE: Duration = Duration::from_secs(1);

/// A next hop's index in the next-hop table; 0 is "no route".
pub type NextHopId = u32;
pub const NO_ROUTE: NextHopId = 0;
/// The largest next-hop id an entry can hold.
pub const MAX_NEXT_HOP: NextHopId = GROUP - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrieError {
    #[error("the FIB has no free group of {GROUP_LEN} entries left (max_groups = {0}): the route is refused")]
    Full(usize),
}

pub struct StrideTrie {
    top: Box<Top>,
    /// Per run of 256 top entries: their next hop where they all agree
    /// and none is a group, else `GROUP` (mixed). Kept by the writer
    /// whether or not lookups read it.
    summary: Box<Summary>,
    /// Per run of 256 summary entries: their next hop where they all
    /// agree and none is mixed, else `GROUP`. Read with the summary.
    root: Box<Root>,
    /// Whether lookups read `root` and `summary` (few enough mixed
    /// summary entries).
    summary_on: AtomicBool,
    /// Groups 0 .. FIRST_GROUPS (or max_groups, if fewer).
    first: Box<[AtomicU32]>,
    /// Groups past `first`, in fixed-size chunks: a group's slice and an
    /// entry's index in it need no bounds check on the lookup path.
    chunks: Box<[OnceLock<Box<Chunk>>]>,
    /// The writer's bookkeeping; readers never touch it.
    arena: Mutex<Arena>,
    max_groups: usize,
    /// Levels below the top the family's keys reach (1 for IPv4).
    levels: usize,
}

#[derive(Default)]
struct Arena {
    /// Groups handed out so far (the arena's high-water mark).
    used: usize,
    free: Vec<u32>,
    /// Unlinked groups in the order they were unlinked.
    quarantine: VecDeque<(Instant, u32)>,
    /// Summary entries that are mixed.
    mixed: usize,
}

/// A fixed-size table of zero entries, on the heap (built there: an
/// array this size on the stack would overflow it).
fn zeroed<const N: usize>() -> Box<[AtomicU32; N]> {
    let t: Box<[AtomicU32]> = (0..N).map(|_| AtomicU32::new(0)).collect();
    t.try_into()
        .unwrap_or_else(|_| unreachable!("collected exactly N entries"))
}

/// The next hop every entry of `run` holds, or `GROUP` (mixed) where
/// they differ or the first is itself a group or mixed: a summary or
/// root entry for the run below it.
fn agreed(run: &[AtomicU32]) -> u32 {
    let v0 = run[0].load(Ordering::Relaxed);
    if v0 & GROUP == 0 && run.iter().all(|e| e.load(Ordering::Relaxed) == v0) {
        v0
    } else {
        GROUP
    }
}

/// Starts bringing in the cache line of entry `x` (`mem`'s prefetch).
#[inline(always)]
fn prefetch_entry<M: FrameMemory + ?Sized>(x: &AtomicU32, mem: &M) {
    mem.prefetch(x.as_ptr().cast_const().cast());
}

#[inline(always)]
fn span_bits(bits_before: u32, stride: u32) -> u32 {
    128 - bits_before - stride
}

impl StrideTrie {
    /// `max_groups`: the most groups of 256 entries (1 KiB each) the trie
    /// may use; the first `FIRST_GROUPS` are taken now, the rest as they
    /// are used, a chunk at a time.
    /// `width`: the family's address bits (32 or 128).
    pub fn new(max_groups: usize, width: u32) -> StrideTrie {
        let first = max_groups.min(FIRST_GROUPS);
        let chunks = (max_groups - first).div_ceil(CHUNK_GROUPS);
        StrideTrie {
            top: zeroed(),
            // Every top entry "no route": every summary entry uniform.
            summary: zeroed(),
            root: zeroed(),
            summary_on: AtomicBool::new(true),
            first: (0..first * GROUP_LEN).map(|_| AtomicU32::new(0)).collect(),
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            arena: Mutex::new(Arena::default()),
            max_groups,
            levels: (width.saturating_sub(TOP_BITS) / STRIDE) as usize,
        }
    }

    #[inline(always)]
    fn group(&self, g: u32) -> &[AtomicU32] {
        let at = g as usize * GROUP_LEN;
        if let Some(s) = self.first.get(at..at + GROUP_LEN) {
            return s;
        }
        let g = g as usize - self.first.len() / GROUP_LEN;
        match self.chunks.get(g / CHUNK_GROUPS).and_then(|c| c.get()) {
            Some(c) => {
                let at = (g % CHUNK_GROUPS) * GROUP_LEN;
                &c[at..at + GROUP_LEN]
            }
            // Never linked: every group id in an entry was allocated first.
            None => &[],
        }
    }

    /// The next hop of `key` (left-aligned: an IPv4 address is the top 32
    /// bits).
    #[inline(always)]
    pub fn lookup(&self, key: u128) -> NextHopId {
        if let Some(nh) = self.summarized((key >> (128 - SUMMARY_BITS)) as usize) {
            return nh;
        }
        let mut e = self.top[(key >> (128 - TOP_BITS)) as usize].load(Ordering::Acquire);
        let mut bits = TOP_BITS;
        while e & GROUP != 0 && bits < 128 {
            bits += STRIDE;
            let idx = ((key >> (128 - bits)) as usize) & (GROUP_LEN - 1);
            e = match self.group(e & !GROUP).get(idx) {
                Some(x) => x.load(Ordering::Acquire),
                None => NO_ROUTE,
            };
        }
        e & !GROUP
    }

    /// The next hop of every key in summary entry `s`, if lookups read
    /// the summary and that entry is uniform.
    #[inline(always)]
    fn summarized(&self, s: usize) -> Option<NextHopId> {
        if !self.summary_on.load(Ordering::Relaxed) {
            return None;
        }
        self.uniform(s)
    }

    /// Summary entry `s`'s next hop, if it is uniform, from its root
    /// entry where that is uniform too (whether or not lookups read the
    /// summary: batches check that once).
    #[inline(always)]
    fn uniform(&self, s: usize) -> Option<NextHopId> {
        let r = self.root[s >> (SUMMARY_BITS - ROOT_BITS)].load(Ordering::Acquire);
        if r & GROUP == 0 {
            return Some(r);
        }
        let e = self.summary[s].load(Ordering::Acquire);
        (e & GROUP == 0).then_some(e)
    }

    /// Looks up every key of `keys` (at most 64) into `out`, walking all
    /// of them one level per round: each round's loads are independent
    /// of each other, so their cache misses overlap instead of queueing
    /// behind one another as one lookup's chain of levels does. The
    /// caller has `warm`ed each key's first-level entry as it gathered
    /// the keys; every later entry is prefetched (through `mem`, the
    /// frame memory's owner) the moment its parent entry names its group,
    /// a round before it is read. Each key's bytes are taken apart once:
    /// a level's index is then a byte load, not a 128-bit shift.
    #[inline]
    pub fn lookup_many<M: FrameMemory + ?Sized>(
        &self,
        keys: &[u128],
        out: &mut [NextHopId],
        mem: &M,
    ) {
        const { assert!(STRIDE == 8) };
        let n = keys.len().min(out.len()).min(64);
        let mut bytes = [[0u8; 16]; 64];
        // Each key's entry to read in the next round, found (and
        // prefetched) in this one; `None`: the key is done.
        let mut next: [Option<&AtomicU32>; 64] = [None; 64];
        // The top level resolves whole bytes (24 bits): level k's index is
        // byte TOP_BITS / 8 + k.
        let mut byte = (TOP_BITS / 8) as usize;
        let mut deeper = false;
        let summary_on = self.summary_on.load(Ordering::Relaxed);
        for i in 0..n {
            let k = keys[i];
            if let Some(nh) = summary_on
                .then(|| self.uniform((k >> (128 - SUMMARY_BITS)) as usize))
                .flatten()
            {
                out[i] = nh;
                continue;
            }
            bytes[i] = k.to_be_bytes();
            let e = self.top[(k >> (128 - TOP_BITS)) as usize].load(Ordering::Acquire);
            if e & GROUP != 0 {
                // Until the walk ends: a group never linked is no route.
                out[i] = NO_ROUTE;
                next[i] = self.descend(e, bytes[i][byte], mem);
                deeper = true;
            } else {
                out[i] = e;
            }
        }
        // A key's answer is written once, when its walk ends; `next` is
        // cleared only then.
        while deeper {
            deeper = false;
            for i in 0..n {
                let Some(x) = next[i] else {
                    continue;
                };
                let e = x.load(Ordering::Acquire);
                // The last level holds no groups: past it, `get` is None.
                match bytes[i].get(byte + 1) {
                    Some(&b) if e & GROUP != 0 => {
                        next[i] = self.descend(e, b, mem);
                        deeper = true;
                    }
                    _ => {
                        out[i] = e & !GROUP;
                        next[i] = None;
                    }
                }
            }
            byte += 1;
        }
    }

    /// `lookup_many` for IPv4 addresses (DIR-24-8), `warm_v4`ed by the
    /// caller as it gathered them, 64 at a time: the tbl24 entries read,
    /// each tbl8 entry found and prefetched as soon as its tbl24 entry
    /// names its group, then the tbl8 entries read.
    #[inline]
    pub fn lookup_many_v4<M: FrameMemory + ?Sized>(
        &self,
        addrs: &[u32],
        out: &mut [NextHopId],
        mem: &M,
    ) {
        let summary_on = self.summary_on.load(Ordering::Relaxed);
        for (addrs, out) in addrs.chunks(64).zip(out.chunks_mut(64)) {
            let n = addrs.len().min(out.len());
            // Each address's tbl8 entry, for those whose tbl24 entry is a
            // group: found once, read in the second pass.
            let mut tbl8: [Option<&AtomicU32>; 64] = [None; 64];
            let mut deeper = false;
            for i in 0..n {
                if let Some(nh) = summary_on
                    .then(|| self.uniform((addrs[i] >> (32 - SUMMARY_BITS)) as usize))
                    .flatten()
                {
                    out[i] = nh;
                    continue;
                }
                let e = self.top[(addrs[i] >> 8) as usize].load(Ordering::Acquire);
                if e & GROUP != 0 {
                    tbl8[i] = self.descend(e, addrs[i] as u8, mem);
                    deeper = true;
                }
                out[i] = e;
            }
            if !deeper {
                continue;
            }
            for i in 0..n {
                if out[i] & GROUP != 0 {
                    out[i] = tbl8[i].map_or(NO_ROUTE, |x| x.load(Ordering::Acquire) & !GROUP);
                }
            }
        }
    }

    /// Starts bringing in `key`'s first-level entry, through `mem`'s
    /// prefetch. A caller gathering a burst's keys for `lookup_many` warms
    /// each one as it goes: a prefetch does not hold up the work behind
    /// it as a load that misses does, so the gathering hides the misses.
    /// At 1 M routes and random addresses, this and the next level's
    /// prefetch in the lookups took a lookup from about 50 cycles to
    /// about 30 (README, Performance).
    #[inline(always)]
    pub fn warm<M: FrameMemory + ?Sized>(&self, key: u128, mem: &M) {
        if self
            .summarized((key >> (128 - SUMMARY_BITS)) as usize)
            .is_none()
        {
            prefetch_entry(&self.top[(key >> (128 - TOP_BITS)) as usize], mem);
        }
    }

    /// `warm` for an IPv4 address.
    #[inline(always)]
    pub fn warm_v4<M: FrameMemory + ?Sized>(&self, a: u32, mem: &M) {
        if self
            .summarized((a >> (32 - SUMMARY_BITS)) as usize)
            .is_none()
        {
            prefetch_entry(&self.top[(a >> 8) as usize], mem);
        }
    }

    /// Entry `idx` of the group that entry `e` links to, prefetched.
    #[inline(always)]
    fn descend<M: FrameMemory + ?Sized>(&self, e: u32, idx: u8, mem: &M) -> Option<&AtomicU32> {
        let x = self.group(e & !GROUP).get(idx as usize);
        if let Some(x) = x {
            prefetch_entry(x, mem);
        }
        x
    }

    /// IPv4's two-step lookup (DIR-24-8), without the general loop.
    #[inline(always)]
    pub fn lookup_v4(&self, a: u32) -> NextHopId {
        if let Some(nh) = self.summarized((a >> (32 - SUMMARY_BITS)) as usize) {
            return nh;
        }
        let e = self.top[(a >> 8) as usize].load(Ordering::Acquire);
        if e & GROUP == 0 {
            return e;
        }
        match self.group(e & !GROUP).get((a & 0xff) as usize) {
            Some(x) => x.load(Ordering::Acquire) & !GROUP,
            None => NO_ROUTE,
        }
    }

    /// Groups in use (linked or waiting out their grace period).
    pub fn groups_in_use(&self) -> usize {
        let a = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        a.used - a.free.len()
    }

    /// Bytes of memory the trie holds (its levels and allocated chunks).
    pub fn memory_bytes(&self) -> usize {
        let chunks = self.chunks.iter().filter(|c| c.get().is_some()).count();
        let levels = self.root.len() + self.summary.len() + self.top.len();
        (levels + self.first.len() + chunks * CHUNK_GROUPS * GROUP_LEN) * 4
    }

    /// Whether lookups read the root and summary levels, and how many
    /// summary entries are mixed (of 65 536): what an operator needs to
    /// see why a table of a few routes looks up faster than a big one.
    pub fn summary_state(&self) -> (bool, usize) {
        let a = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        (self.summary_on.load(Ordering::Relaxed), a.mixed)
    }

    fn alloc_group(&self, a: &mut Arena, fill: u32) -> Result<u32, TrieError> {
        let now = Instant::now();
        while let Some(&(t, g)) = a.quarantine.front() {
            if now.duration_since(t) < GRACE {
                break;
            }
            a.quarantine.pop_front();
            a.free.push(g);
        }
        let g = match a.free.pop() {
            Some(g) => g,
            None => {
                if a.used >= self.max_groups {
                    return Err(TrieError::Full(self.max_groups));
                }
                let g = a.used;
                if let Some(past) = g.checked_sub(self.first.len() / GROUP_LEN) {
                    self.chunks[past / CHUNK_GROUPS].get_or_init(zeroed);
                }
                a.used += 1;
                g as u32
            }
        };
        for e in self.group(g) {
            e.store(fill, Ordering::Relaxed);
        }
        Ok(g)
    }

    fn retire_group(&self, a: &mut Arena, g: u32) {
        // Its own sub-groups are unreachable once it is: retire them too.
        let children: Vec<u32> = self
            .group(g)
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .filter(|e| e & GROUP != 0)
            .map(|e| e & !GROUP)
            .collect();
        for c in children {
            self.retire_group(a, c);
        }
        a.quarantine.push_back((Instant::now(), g));
    }

    /// Sets every key in `lo..=hi` to `nh`. The range must be a union of
    /// whole addresses of the family (aligned at its width).
    /// Refused before anything changes when the arena could run out
    /// midway: a range splits at most two entries per level.
    pub fn write(&self, lo: u128, hi: u128, nh: NextHopId) -> Result<(), TrieError> {
        let mut a = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        let available = self.max_groups - a.used + a.free.len();
        if available < 2 * self.levels {
            return Err(TrieError::Full(self.max_groups));
        }
        let written = self.write_table(&mut a, None, 0, TOP_BITS, lo, hi, nh);
        // After the top level, so that a uniform summary entry is never
        // newer than the entries under it: a reader sees the old next
        // hop or the new one, as from the top level itself.
        let shift = 128 - SUMMARY_BITS;
        for s in (lo >> shift) as usize..=(hi >> shift) as usize {
            self.resummarize(&mut a, s);
        }
        // After the summary, for the same reason.
        let shift = 128 - ROOT_BITS;
        for r in (lo >> shift) as usize..=(hi >> shift) as usize {
            self.resummarize_root(r);
        }
        self.summary_on
            .store(a.mixed <= SUMMARY_MIXED_MAX, Ordering::Release);
        written
    }

    /// Sets summary entry `s` from the 256 top entries under it.
    fn resummarize(&self, a: &mut Arena, s: usize) {
        let run = &self.top[s << (TOP_BITS - SUMMARY_BITS)..(s + 1) << (TOP_BITS - SUMMARY_BITS)];
        let new = agreed(run);
        let old = self.summary[s].swap(new, Ordering::Release);
        match (old & GROUP != 0, new & GROUP != 0) {
            (false, true) => a.mixed += 1,
            (true, false) => a.mixed -= 1,
            _ => {}
        }
    }

    /// Sets root entry `r` from the 256 summary entries under it.
    fn resummarize_root(&self, r: usize) {
        let per = 1 << (SUMMARY_BITS - ROOT_BITS);
        self.root[r].store(
            agreed(&self.summary[r * per..(r + 1) * per]),
            Ordering::Release,
        );
    }

    fn entry(&self, table: Option<u32>, idx: usize) -> &AtomicU32 {
        match table {
            None => &self.top[idx],
            Some(g) => &self.group(g)[idx],
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_table(
        &self,
        a: &mut Arena,
        table: Option<u32>,
        bits_before: u32,
        stride: u32,
        lo: u128,
        hi: u128,
        nh: NextHopId,
    ) -> Result<(), TrieError> {
        let span = span_bits(bits_before, stride);
        let mask = (1u128 << stride) - 1;
        let base = if bits_before == 0 {
            0
        } else {
            lo & !(u128::MAX >> bits_before)
        };
        let low_mask = if span == 0 {
            0
        } else {
            u128::MAX >> (128 - span)
        };
        let (first, last) = ((lo >> span) & mask, (hi >> span) & mask);
        let covered = |idx: u128| {
            let e_lo = base | (idx << span);
            lo <= e_lo && (e_lo | low_mask) <= hi
        };
        // Only the first and last entry can be partly covered: the run
        // between them is plain stores (a short route's millions of
        // tbl24 entries).
        let full_from = if covered(first) { first } else { first + 1 };
        let full_to = if covered(last) {
            Some(last)
        } else {
            last.checked_sub(1)
        };
        if let Some(full_to) = full_to.filter(|t| full_from <= *t) {
            let (from, to) = (full_from as usize, full_to as usize);
            let run: &[AtomicU32] = match table {
                None => &self.top[from..=to],
                Some(g) => &self.group(g)[from..=to],
            };
            let mut retired = Vec::new();
            for e in run {
                let old = e.load(Ordering::Relaxed);
                e.store(nh, Ordering::Release);
                if old & GROUP != 0 {
                    retired.push(old & !GROUP);
                }
            }
            for g in retired {
                self.retire_group(a, g);
            }
        }
        let ends = if first == last {
            [Some(first), None]
        } else {
            [Some(first), Some(last)]
        };
        for idx in ends.into_iter().flatten().filter(|i| !covered(*i)) {
            let e_lo = base | (idx << span);
            let e_hi = e_lo | low_mask;
            let slot = idx as usize;
            let old = self.entry(table, slot).load(Ordering::Relaxed);
            // Part of this entry's range: the group below it takes the
            // difference (made now, from the entry's value, if missing).
            let g = if old & GROUP != 0 {
                old & !GROUP
            } else {
                let g = self.alloc_group(a, old)?;
                self.entry(table, slot).store(GROUP | g, Ordering::Release);
                g
            };
            self.write_table(
                a,
                Some(g),
                bits_before + stride,
                STRIDE,
                lo.max(e_lo),
                hi.min(e_hi),
                nh,
            )?;
            // A group whose entries all agree is one entry again.
            let grp = self.group(g);
            let v0 = grp[0].load(Ordering::Relaxed);
            if v0 & GROUP == 0 && grp.iter().all(|e| e.load(Ordering::Relaxed) == v0) {
                self.entry(table, slot).store(v0, Ordering::Release);
                a.quarantine.push_back((Instant::now(), g));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> u128 {
        (u32::from_be_bytes(a) as u128) << 96
    }

    #[test]
    fn ranges_split_and_collapse_groups() {
        let t = StrideTrie::new(16, 32);
        let ten = v4([198, 18, 1, 0]);
        t.write(ten, ten | (u128::MAX >> 24), 7).unwrap();
        assert_eq!(t.lookup(v4([198, 18, 1, 200])), 7);
        assert_eq!(t.lookup_v4(u32::from_be_bytes([198, 18, 1, 200])), 7);
        assert_eq!(t.groups_in_use(), 0);
        // A /26 inside: one group.
        let sub = v4([198, 18, 1, 64]);
        t.write(sub, sub | (u128::MAX >> 26), 9).unwrap();
        assert_eq!(t.lookup_v4(u32::from_be_bytes([198, 18, 1, 65])), 9);
        assert_eq!(t.lookup_v4(u32::from_be_bytes([198, 18, 1, 1])), 7);
        assert_eq!(t.groups_in_use(), 1);
        // Written back to the /24's next hop: the group collapses.
        t.write(sub, sub | (u128::MAX >> 26), 7).unwrap();
        assert_eq!(t.lookup_v4(u32::from_be_bytes([198, 18, 1, 65])), 7);
        assert_eq!(t.top[(ten >> 104) as usize].load(Ordering::Relaxed), 7);
    }

    /// Every lookup path of `t` on `addrs` against `want`.
    fn agree(t: &StrideTrie, addrs: &[u32], want: impl Fn(u32) -> NextHopId) {
        let mut out = vec![0; addrs.len()];
        t.lookup_many_v4(addrs, &mut out, &Vec::<u8>::new());
        let keys: Vec<u128> = addrs.iter().map(|&a| (a as u128) << 96).collect();
        let mut many = vec![0; addrs.len()];
        for (k, o) in keys.chunks(64).zip(many.chunks_mut(64)) {
            t.lookup_many(k, o, &Vec::<u8>::new());
        }
        for (i, &a) in addrs.iter().enumerate() {
            let w = want(a);
            assert_eq!(t.lookup_v4(a), w, "{a:#x}");
            assert_eq!(t.lookup(keys[i]), w, "{a:#x}");
            assert_eq!(out[i], w, "{a:#x} batched");
            assert_eq!(many[i], w, "{a:#x} batched as a key");
        }
    }

    #[test]
    fn the_summary_answers_for_uniform_runs_and_steps_aside_when_most_are_mixed() {
        let t = StrideTrie::new(1 << 14, 32);
        let route = |a: [u8; 4], len: u32, nh| {
            let lo = v4(a);
            t.write(lo, lo | (u128::MAX >> len), nh).unwrap();
        };
        let ip = |a: [u8; 4]| u32::from_be_bytes(a);
        // A probe in every /16, and around the routes below.
        let mut addrs: Vec<u32> = (0..1u32 << 16).map(|s| (s << 16) | 0x0105).collect();
        addrs.extend([
            ip([198, 18, 1, 5]),
            ip([198, 18, 1, 130]),
            ip([198, 18, 2, 5]),
        ]);
        let root = |b: usize| t.root[b].load(Ordering::Relaxed);
        route([0, 0, 0, 0], 0, 1);
        assert!(t.summary_on.load(Ordering::Relaxed));
        assert!(
            (0..256).all(|b| root(b) == 1),
            "one route: every /8 uniform"
        );
        agree(&t, &addrs, |_| 1);
        // A /24 and a /25 in it make 198.18/16 mixed, and 198/8 with it;
        // the rest stay uniform.
        route([198, 18, 1, 0], 24, 2);
        route([198, 18, 1, 128], 25, 3);
        assert_eq!(root(198), GROUP);
        assert!((0..256).filter(|&b| b != 198).all(|b| root(b) == 1));
        let deep = |a: u32| match a >> 8 {
            x if x == ip([198, 18, 1, 0]) >> 8 && a & 0x80 != 0 => 3,
            x if x == ip([198, 18, 1, 0]) >> 8 => 2,
            _ => 1,
        };
        agree(&t, &addrs, deep);
        assert_eq!(t.arena.lock().unwrap().mixed, 1);
        // A /16 made of 256 /24s of one next hop is uniform again.
        for k in 0..=255 {
            route([198, 20, k, 0], 24, 4);
        }
        assert_eq!(
            t.summary[ip([198, 20, 0, 0]) as usize >> 16].load(Ordering::Relaxed),
            4
        );
        // More mixed /16s than the summary is read for: lookups go to the
        // top level, with the same answers.
        let spread = |k: u32| [(k >> 8) as u8, k as u8, 7, 0];
        for k in 0..SUMMARY_MIXED_MAX as u32 + 1 {
            route(spread(k), 24, 5);
        }
        assert!(!t.summary_on.load(Ordering::Relaxed));
        let spread_or = |a: u32| {
            let k = a >> 16;
            if k <= SUMMARY_MIXED_MAX as u32 && (a >> 8) & 0xff == 7 {
                5
            } else if a >> 16 == ip([198, 20, 0, 0]) >> 16 {
                4
            } else {
                deep(a)
            }
        };
        let mut more = addrs.clone();
        more.extend((0..SUMMARY_MIXED_MAX as u32 + 1).map(|k| ip(spread(k)) | 9));
        agree(&t, &more, spread_or);
        // Withdrawn again (back to the default): the summary is read again.
        for k in 0..SUMMARY_MIXED_MAX as u32 + 1 {
            route(spread(k), 24, 1);
        }
        assert!(t.summary_on.load(Ordering::Relaxed));
        assert!((0..256).filter(|&b| b != 198).all(|b| root(b) == 1));
        // A /8 of one next hop over its mixed runs is uniform again.
        route([198, 0, 0, 0], 8, 6);
        assert_eq!(root(198), 6);
        agree(&t, &[ip([198, 18, 1, 200]), ip([198, 20, 3, 3])], |_| 6);
        // (The trie takes ranges as the FIB resolves them: put back what
        // the /8 covered.)
        route([198, 0, 0, 0], 8, 1);
        route([198, 18, 1, 0], 24, 2);
        route([198, 18, 1, 128], 25, 3);
        route([198, 20, 0, 0], 16, 4);
        assert_eq!(root(198), GROUP);
        agree(&t, &more, |a| {
            if a >> 16 == ip([198, 20, 0, 0]) >> 16 {
                4
            } else {
                deep(a)
            }
        });
    }

    #[test]
    fn a_full_arena_is_an_error() {
        let t = StrideTrie::new(3, 32);
        let a = v4([198, 18, 0, 1]);
        t.write(a, a | (u128::MAX >> 32), 1).unwrap();
        let b = v4([198, 19, 0, 1]);
        t.write(b, b | (u128::MAX >> 32), 1).unwrap();
        let c = v4([198, 19, 1, 1]);
        assert_eq!(
            t.write(c, c | (u128::MAX >> 32), 1),
            Err(TrieError::Full(3))
        );
        assert_eq!(t.lookup_v4(u32::from_be_bytes([198, 19, 1, 1])), 0);
        assert_eq!(t.lookup_v4(u32::from_be_bytes([198, 18, 0, 1])), 1);
    }

    #[test]
    fn groups_past_the_first_slice_live_in_chunks() {
        let n = FIRST_GROUPS + CHUNK_GROUPS + 10;
        // Two spare: a write is refused unless it could split a level.
        let t = StrideTrie::new(n + 2, 32);
        // One host route in each of n distinct /24s: a group each.
        let host = |k: usize| u32::from_be_bytes([198, (k >> 8) as u8, k as u8, 7]);
        for k in 0..n {
            let a = (host(k) as u128) << 96;
            t.write(a, a | (u128::MAX >> 32), k as u32 + 1).unwrap();
        }
        assert_eq!(t.groups_in_use(), n);
        let chunks = t.chunks.iter().filter(|c| c.get().is_some()).count();
        assert_eq!(chunks, 2);
        let addrs: Vec<u32> = (0..n).map(host).collect();
        let mut out = vec![0; n];
        t.lookup_many_v4(&addrs, &mut out, &Vec::<u8>::new());
        for k in 0..n {
            assert_eq!(t.lookup_v4(addrs[k]), k as u32 + 1);
            assert_eq!(out[k], k as u32 + 1);
            assert_eq!(t.lookup_v4(addrs[k] ^ 1), NO_ROUTE);
        }
    }
}
