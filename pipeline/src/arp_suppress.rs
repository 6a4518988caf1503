//! ARP suppression for domains whose remote hosts a control plane
//! announces (EVPN type-2 routes with an IP): the bridge answers a local
//! host's ARP request for an address it knows, so the broadcast never
//! crosses the fabric, and records the sender of every local ARP packet,
//! which the control plane advertises in turn. One table of every domain,
//! shared by all workers without locks, on the MAC table's slots
//! ([`crate::slot_table`]): fixed capacity, a full table counted.

use crate::slot_table::{Claim, Slots};
use crate::verdict::DomainId;
use crate::wire::MacAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A value with a MAC in it (0 is a slot claimed but not yet written).
const VALID: u64 = 1 << 63;
/// From the control plane (a remote host), not snooped here.
const REMOTE: u64 = 1 << 62;

#[inline(always)]
fn key(domain: DomainId, ip: [u8; 4]) -> u64 {
    // Bit 32 keeps every key, 0.0.0.0 in any domain included, away from
    // EMPTY; bits 33 to 47 are 0, so none is TOMBSTONE.
    ((domain as u64) << 48) | (1 << 32) | u32::from_be_bytes(ip) as u64
}

fn value(mac: MacAddr, remote: bool) -> u64 {
    let m = mac.0;
    VALID
        | if remote { REMOTE } else { 0 }
        | u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

fn mac_of(v: u64) -> MacAddr {
    let b = v.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[derive(Debug, Default)]
pub struct ArpCounters {
    /// Requests answered by the bridge instead of flooded.
    pub suppressed: AtomicU64,
    /// Local senders recorded (new or changed).
    pub snooped: AtomicU64,
    pub overflow: AtomicU64,
}

/// One entry, for the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpEntry {
    pub domain: DomainId,
    pub ip: [u8; 4],
    pub mac: MacAddr,
    pub remote: bool,
}

pub struct ArpCache {
    table: Slots,
    limit: usize,
    live: AtomicUsize,
    pub counters: ArpCounters,
}

impl ArpCache {
    pub fn new(limit: usize) -> ArpCache {
        let n = (limit.max(16) * 2).next_power_of_two();
        ArpCache {
            table: Slots::new(n),
            limit,
            live: AtomicUsize::new(0),
            counters: ArpCounters::default(),
        }
    }

    /// The MAC of `ip` in `domain`, and whether a remote host has it.
    #[inline]
    pub fn lookup(&self, domain: DomainId, ip: [u8; 4]) -> Option<(MacAddr, bool)> {
        let v = self.table.slots[self.table.find(key(domain, ip))?]
            .val
            .load(Ordering::Relaxed);
        (v & VALID != 0).then(|| (mac_of(v), v & REMOTE != 0))
    }

    fn put(&self, domain: DomainId, ip: [u8; 4], v: u64) -> bool {
        let k = key(domain, ip);
        if let Some(i) = self.table.find(k) {
            return self.table.slots[i].val.swap(v, Ordering::Relaxed) != v;
        }
        if self.live.load(Ordering::Relaxed) >= self.limit {
            self.counters.overflow.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match self.table.claim(k, v) {
            Claim::New => {
                self.live.fetch_add(1, Ordering::Relaxed);
                true
            }
            Claim::Known => true,
            Claim::Overflow => {
                self.counters.overflow.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Records what a local ARP packet says of its sender (a host that
    /// moved here takes its address over from the remote entry).
    #[inline]
    pub fn snoop(&self, domain: DomainId, ip: [u8; 4], mac: MacAddr) {
        if ip == [0; 4] || mac.is_multicast() {
            return;
        }
        let v = value(mac, false);
        if let Some(i) = self.table.find(key(domain, ip)) {
            if self.table.slots[i].val.load(Ordering::Relaxed) == v {
                return;
            }
        }
        if self.put(domain, ip, v) {
            self.counters.snooped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A remote host's address, from the control plane.
    pub fn set_remote(&self, domain: DomainId, ip: [u8; 4], mac: MacAddr) {
        self.put(domain, ip, value(mac, true));
    }

    /// Removes `ip`; only a remote entry when `remote_only`.
    pub fn remove(&self, domain: DomainId, ip: [u8; 4], remote_only: bool) -> bool {
        let Some(i) = self.table.find(key(domain, ip)) else {
            return false;
        };
        let v = self.table.slots[i].val.load(Ordering::Relaxed);
        if remote_only && v & REMOTE == 0 {
            return false;
        }
        let killed = self.table.kill(i);
        if killed {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        killed
    }

    pub fn entries(&self) -> Vec<ArpEntry> {
        self.table
            .entries()
            .filter(|e| e.2 & VALID != 0)
            .map(|(_, k, v)| ArpEntry {
                domain: (k >> 48) as DomainId,
                ip: (k as u32).to_be_bytes(),
                mac: mac_of(v),
                remote: v & REMOTE != 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snooped_remote_and_moved_addresses() {
        let c = ArpCache::new(4);
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let ip = [198, 19, 0, 1];
        c.set_remote(1, ip, a);
        assert_eq!(c.lookup(1, ip), Some((a, true)));
        assert_eq!(c.lookup(2, ip), None);
        // The host shows up here: its own ARP takes the address over.
        c.snoop(1, ip, b);
        assert_eq!(c.lookup(1, ip), Some((b, false)));
        assert!(
            !c.remove(1, ip, true),
            "a withdrawal leaves the local entry"
        );
        assert_eq!(c.counters.snooped.load(Ordering::Relaxed), 1);
        c.snoop(1, ip, b);
        assert_eq!(c.counters.snooped.load(Ordering::Relaxed), 1);
        for k in 0..10u8 {
            c.snoop(1, [198, 19, 1, k], a);
        }
        assert_eq!(c.entries().len(), 4);
        assert!(c.counters.overflow.load(Ordering::Relaxed) > 0);
        assert!(c.remove(1, ip, false));
        assert_eq!(c.lookup(1, ip), None);
    }

    #[test]
    fn one_address_in_many_domains_keeps_an_entry_in_each() {
        // A gateway address is the same in every tenant's domain: the
        // hash must not give them all one probe sequence.
        let c = ArpCache::new(256);
        let ip = [198, 18, 0, 1];
        for d in 0..200u16 {
            c.set_remote(d, ip, MacAddr([2, 0, 0, 0, (d >> 8) as u8, d as u8]));
        }
        assert_eq!(c.counters.overflow.load(Ordering::Relaxed), 0);
        for d in 0..200u16 {
            let m = MacAddr([2, 0, 0, 0, (d >> 8) as u8, d as u8]);
            assert_eq!(c.lookup(d, ip), Some((m, true)), "domain {d}");
        }
        let mut seen: Vec<_> = c.entries().into_iter().map(|e| e.domain).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn every_domain_and_address_makes_a_key_a_slot_can_hold() {
        // Neither 0 (an empty slot) nor all ones (a freed one), even for
        // 0.0.0.0 and 255.255.255.255 in the last domain.
        let c = ArpCache::new(16);
        let m = MacAddr([2, 0, 0, 0, 0, 9]);
        for (d, ip) in [(u16::MAX, [0; 4]), (u16::MAX, [255; 4]), (0, [0; 4])] {
            c.set_remote(d, ip, m);
            assert_eq!(c.lookup(d, ip), Some((m, true)), "{d} {ip:?}");
        }
        let mut got: Vec<_> = c.entries().into_iter().map(|e| (e.domain, e.ip)).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            vec![(0, [0; 4]), (u16::MAX, [0; 4]), (u16::MAX, [255; 4])]
        );
        assert!(c.remove(u16::MAX, [0; 4], false));
        assert_eq!(c.entries().len(), 2);
    }
}
