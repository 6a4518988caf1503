//! The neighbour table: (interface, IP) → MAC, learnt from ARP and ND by
//! every worker, read by every worker per routed packet, aged by the
//! control thread. Open addressing over fixed slots; readers take no lock
//! (a per-slot sequence number tells them a slot changed under them),
//! writers take a mutex that workers only ever `try_lock` — a worker
//! that finds it busy skips learning once, the next ARP teaches it.

use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

/// A resolved MAC is stored with this bit (0: still resolving).
const VALID: u64 = 1 << 48;
/// Set in `flags` for entries from the config (never aged, never
/// replaced by what traffic says).
const STATIC: u32 = 1;
/// Set in `flags` for removed slots: probing goes on past them.
const DELETED: u32 = 2;

/// How long an entry is trusted without confirmation (Linux's
/// base_reachable_time is 30 s): past it the entry is stale and the
/// worker that uses it probes.
pub const REACHABLE_NS: u64 = 30_000_000_000;
/// Unanswered requests are repeated at most this often per neighbour.
pub const RETRY_NS: u64 = 200_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighborState {
    Incomplete,
    Reachable,
    Stale,
    Permanent,
}

impl NeighborState {
    pub fn name(self) -> &'static str {
        match self {
            NeighborState::Incomplete => "incomplete",
            NeighborState::Reachable => "reachable",
            NeighborState::Stale => "stale",
            NeighborState::Permanent => "permanent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborEntry {
    pub ifx: u16,
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    pub state: NeighborState,
    /// Nanoseconds since the last confirmation (or request while
    /// incomplete).
    pub age_ns: u64,
}

#[derive(Default)]
struct Slot {
    /// Odd while a writer changes the slot; 0: never used (ends a probe).
    seq: AtomicU32,
    key_hi: AtomicU64,
    key_lo: AtomicU64,
    ifx: AtomicU32,
    flags: AtomicU32,
    mac: AtomicU64,
    confirmed: AtomicU64,
    requested: AtomicU64,
}

/// What a lookup found: the slot (to stamp requests on) and the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub slot: usize,
    pub mac: Option<[u8; 6]>,
    pub stale: bool,
}

pub struct NeighborTable {
    slots: Box<[Slot]>,
    writer: Mutex<()>,
    /// Entries refused because every slot was taken.
    pub full: AtomicU64,
}

#[inline(always)]
pub fn key_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from_be_bytes(a.octets())) | (0xffff << 32),
        IpAddr::V6(a) => u128::from_be_bytes(a.octets()),
    }
}

/// The table's key of an IPv4 address given as a FIB key (`fib::key_v4`).
#[inline(always)]
pub fn key_of_fib_v4(fib_key: u128) -> u128 {
    (fib_key >> 96) | (0xffff << 32)
}

pub fn ip_of(key: u128) -> IpAddr {
    if key >> 32 == 0xffff {
        IpAddr::from((key as u32).to_be_bytes())
    } else {
        IpAddr::from(key.to_be_bytes())
    }
}

#[inline(always)]
fn mac_word(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&mac);
    u64::from_be_bytes(b) | VALID
}

#[inline(always)]
fn mac_of(w: u64) -> Option<[u8; 6]> {
    if w & VALID == 0 {
        return None;
    }
    let b = w.to_be_bytes();
    Some([b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl NeighborTable {
    /// `capacity` entries (the table has twice as many slots).
    pub fn new(capacity: usize) -> NeighborTable {
        let n = (capacity.max(8) * 2).next_power_of_two();
        NeighborTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            writer: Mutex::new(()),
            full: AtomicU64::new(0),
        }
    }

    #[inline(always)]
    fn start(&self, ifx: u16, key: u128) -> usize {
        let h = ((key as u64) ^ ((key >> 64) as u64).rotate_left(29) ^ ifx as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize & (self.slots.len() - 1)
    }

    /// Reads slot `i` consistently: (ifx, key, flags, mac, confirmed),
    /// or `None` if a writer was changing it.
    #[inline(always)]
    fn read(&self, i: usize) -> Option<(u32, u128, u32, u64, u64)> {
        let s = &self.slots[i];
        let s1 = s.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let key = (u128::from(s.key_hi.load(Ordering::Relaxed)) << 64)
            | u128::from(s.key_lo.load(Ordering::Relaxed));
        let v = (
            s.ifx.load(Ordering::Relaxed),
            key,
            s.flags.load(Ordering::Relaxed),
            s.mac.load(Ordering::Relaxed),
            s.confirmed.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        (s.seq.load(Ordering::Relaxed) == s1).then_some(v)
    }

    fn find(&self, ifx: u16, key: u128) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.start(ifx, key);
        for _ in 0..self.slots.len() {
            if self.slots[i].seq.load(Ordering::Acquire) == 0 {
                return None;
            }
            if let Some((f, k, flags, _, _)) = self.read(i) {
                if flags & DELETED == 0 && f == ifx as u32 && k == key {
                    return Some(i);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The neighbour `ip` on interface `ifx`, as of `now`.
    #[inline]
    pub fn lookup(&self, ifx: u16, ip: IpAddr, now: u64) -> Option<Found> {
        self.lookup_key(ifx, key_of(ip), now)
    }

    /// As `lookup`, by the table's key of the address (`key_of`): the
    /// forwarding path carries addresses as integers in registers.
    #[inline]
    pub fn lookup_key(&self, ifx: u16, key: u128, now: u64) -> Option<Found> {
        let i = self.find(ifx, key)?;
        let (_, _, flags, mac, confirmed) = self.read(i)?;
        Some(Found {
            slot: i,
            mac: mac_of(mac),
            stale: flags & STATIC == 0 && now.saturating_sub(confirmed) > REACHABLE_NS,
        })
    }

    /// Whether a request for the neighbour in `slot` may go now (at most
    /// one per `RETRY_NS`, whichever worker asks): stamps it if so.
    pub fn may_request(&self, slot: usize, now: u64) -> bool {
        let Some(s) = self.slots.get(slot) else {
            return false;
        };
        let last = s.requested.load(Ordering::Relaxed);
        now.saturating_sub(last) >= RETRY_NS
            && s.requested
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn write_slot(&self, i: usize, ifx: u16, key: u128, flags: u32, mac: u64, now: u64) {
        let s = &self.slots[i];
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        s.key_hi.store((key >> 64) as u64, Ordering::Relaxed);
        s.key_lo.store(key as u64, Ordering::Relaxed);
        s.ifx.store(ifx as u32, Ordering::Relaxed);
        s.flags.store(flags, Ordering::Relaxed);
        s.mac.store(mac, Ordering::Relaxed);
        s.confirmed.store(now, Ordering::Relaxed);
        s.seq.store((seq | 1) + 1, Ordering::Release);
    }

    /// Adds or updates an entry. `mac = None` adds an incomplete entry
    /// (a resolution under way) and leaves a known one alone. `blocking`
    /// is for the control thread; a worker passes false and gives up if
    /// another writer holds the table. Returns the slot.
    pub fn update(
        &self,
        ifx: u16,
        ip: IpAddr,
        mac: Option<[u8; 6]>,
        permanent: bool,
        now: u64,
        blocking: bool,
    ) -> Option<usize> {
        let _g = if blocking {
            self.writer.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            self.writer.try_lock().ok()?
        };
        let key = key_of(ip);
        let flags = if permanent { STATIC } else { 0 };
        if let Some(i) = self.find(ifx, key) {
            let (_, _, old_flags, _, _) = self.read(i)?;
            if old_flags & STATIC != 0 && !permanent {
                return Some(i);
            }
            if let Some(m) = mac {
                self.write_slot(i, ifx, key, flags, mac_word(m), now);
            }
            return Some(i);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.start(ifx, key);
        let mut used = 0;
        for _ in 0..self.slots.len() {
            let s = &self.slots[i];
            let free = s.seq.load(Ordering::Relaxed) == 0
                || s.flags.load(Ordering::Relaxed) & DELETED != 0;
            if free {
                let w = mac.map_or(0, mac_word);
                self.write_slot(i, ifx, key, flags, w, now);
                self.slots[i].requested.store(0, Ordering::Relaxed);
                return Some(i);
            }
            used += 1;
            if used > self.slots.len() / 2 {
                break;
            }
            i = (i + 1) & mask;
        }
        self.full.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Records a confirmation for a neighbour that is already known (a
    /// gratuitous ARP, an unsolicited NA): never creates an entry.
    pub fn refresh(&self, ifx: u16, ip: IpAddr, mac: [u8; 6], now: u64) {
        if self.find(ifx, key_of(ip)).is_some() {
            self.update(ifx, ip, Some(mac), false, now, true);
        }
    }

    /// Removes an entry; true if there was one.
    pub fn remove(&self, ifx: u16, ip: IpAddr) -> bool {
        let _g = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let key = key_of(ip);
        let Some(i) = self.find(ifx, key) else {
            return false;
        };
        self.write_slot(i, ifx, key, DELETED, 0, 0);
        true
    }

    /// Removes every entry of interfaces `keep` says no to (interfaces
    /// gone in a topology change), and entries unconfirmed for longer
    /// than `max_age_ns` (incomplete ones after `max_age_ns / 10`).
    pub fn sweep(&self, now: u64, max_age_ns: u64, keep: impl Fn(u16) -> bool) -> usize {
        let _g = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        for i in 0..self.slots.len() {
            let Some((ifx, key, flags, mac, confirmed)) = self.read(i) else {
                continue;
            };
            if self.slots[i].seq.load(Ordering::Relaxed) == 0 || flags & DELETED != 0 {
                continue;
            }
            let limit = if mac & VALID == 0 {
                max_age_ns / 10
            } else {
                max_age_ns
            };
            let old = flags & STATIC == 0 && now.saturating_sub(confirmed) > limit;
            if old || !keep(ifx as u16) {
                self.write_slot(i, ifx as u16, key, DELETED, 0, 0);
                removed += 1;
            }
        }
        removed
    }

    pub fn entries(&self, now: u64) -> Vec<NeighborEntry> {
        (0..self.slots.len())
            .filter_map(|i| {
                if self.slots[i].seq.load(Ordering::Relaxed) == 0 {
                    return None;
                }
                let (ifx, key, flags, mac, confirmed) = self.read(i)?;
                if flags & DELETED != 0 {
                    return None;
                }
                let age_ns = now.saturating_sub(confirmed);
                let state = match (flags & STATIC != 0, mac_of(mac)) {
                    (true, _) => NeighborState::Permanent,
                    (false, None) => NeighborState::Incomplete,
                    (false, Some(_)) if age_ns > REACHABLE_NS => NeighborState::Stale,
                    _ => NeighborState::Reachable,
                };
                Some(NeighborEntry {
                    ifx: ifx as u16,
                    ip: ip_of(key),
                    mac: mac_of(mac),
                    state,
                    age_ns,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_resolve_age_and_fill() {
        let t = NeighborTable::new(8);
        let a = IpAddr::from([198, 18, 1, 10]);
        let s = t.update(1, a, None, false, 0, false).unwrap();
        assert_eq!(t.lookup(1, a, 0).unwrap().mac, None);
        assert!(t.may_request(s, RETRY_NS));
        assert!(!t.may_request(s, RETRY_NS + 1));
        t.update(1, a, Some([2, 0, 0, 0, 1, 10]), false, 5, false);
        let f = t.lookup(1, a, 10).unwrap();
        assert_eq!(f.mac, Some([2, 0, 0, 0, 1, 10]));
        assert!(!f.stale);
        assert!(t.lookup(1, a, REACHABLE_NS + 10).unwrap().stale);
        // Another interface, another entry.
        assert_eq!(t.lookup(2, a, 10), None);
        let v6 = IpAddr::from([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        t.update(1, v6, Some([2, 0, 0, 0, 1, 11]), true, 0, true);
        assert_eq!(t.entries(0).len(), 2);
        assert_eq!(t.sweep(REACHABLE_NS * 20, REACHABLE_NS * 10, |_| true), 1);
        assert_eq!(t.lookup(1, a, 0), None);
        assert!(t.lookup(1, v6, 0).is_some());
        // Full: counted, not a crash.
        for k in 0..64u8 {
            let _ = t.update(3, IpAddr::from([198, 19, 0, k]), None, false, 0, true);
        }
        assert!(t.full.load(Ordering::Relaxed) > 0);
        assert!(t.remove(1, v6));
        assert_eq!(t.lookup(1, v6, 0), None);
    }
}
