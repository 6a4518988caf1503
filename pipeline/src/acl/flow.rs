//! The reflexive-ACL flow table (the conntrack of a stateful permit): a
//! flow a stateful rule permitted lets its reverse direction back in. One
//! table per worker, fixed size, open addressing over a short probe
//! window; when the window is full of live flows the new flow is counted
//! as `table_full` and not tracked, and the packet keeps the verdict its
//! rule gave it.

use super::key::{chunk, AclKey, Family};

/// Idle timeouts, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// A TCP flow that has seen a SYN and an ACK and no FIN or RST.
    pub tcp_established: u64,
    /// TCP opening or closing (SYN only, FIN or RST seen).
    pub tcp_transient: u64,
    pub udp: u64,
    pub other: u64,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        const S: u64 = 1_000_000_000;
        FlowTimeouts {
            tcp_established: 7440 * S,
            tcp_transient: 120 * S,
            udp: 120 * S,
            other: 60 * S,
        }
    }
}

const PROBE: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
enum TcpState {
    None,
    Opening,
    Established,
    Closing,
}

#[derive(Clone, Copy)]
struct Flow {
    key: FlowKey,
    expires: u64,
    tcp: TcpState,
}

/// The 5-tuple a flow is known by, in the direction its rule permitted.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    src: u128,
    dst: u128,
    sport: u16,
    dport: u16,
    proto: u8,
    v6: bool,
}

impl FlowKey {
    fn of(k: &AclKey) -> FlowKey {
        FlowKey {
            src: k.src(),
            dst: k.dst(),
            sport: k.c[chunk::SPORT],
            dport: k.c[chunk::DPORT],
            proto: k.c[chunk::PROTO] as u8,
            v6: k.family == Family::V6,
        }
    }

    fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    fn hash(&self) -> u64 {
        let mut h = (self.src as u64) ^ ((self.src >> 64) as u64).rotate_left(17);
        h ^= ((self.dst as u64) ^ ((self.dst >> 64) as u64).rotate_left(29)).rotate_left(31);
        h ^= (self.sport as u64) << 48 | (self.dport as u64) << 32 | (self.proto as u64) << 8;
        // murmur3's finalizer: every input bit reaches the low bits the
        // slot index is taken from.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    pub reflexive_permits: u64,
    pub table_full: u64,
    /// Flows that replaced an expired one in its slot.
    pub expired: u64,
    /// Slots holding a flow, live or expired and not yet reused.
    pub occupied: u64,
}

pub struct FlowTable {
    slots: Box<[Option<Flow>]>,
    mask: usize,
    timeouts: FlowTimeouts,
    pub stats: FlowStats,
}

/// TCP flag bits as they sit in byte 13 of the header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

impl FlowTable {
    /// A table of `capacity` flows, rounded up to a power of two.
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> Self {
        let n = capacity.max(PROBE).next_power_of_two();
        FlowTable {
            slots: vec![None; n].into_boxed_slice(),
            mask: n - 1,
            timeouts,
            stats: FlowStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn live(&self, now: u64) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|f| f.expires > now)
            .count()
    }

    /// Records (or refreshes) the flow of a packet a stateful rule
    /// permitted.
    pub fn track(&mut self, k: &AclKey, tcp: u8, now: u64) {
        let key = FlowKey::of(k);
        let base = key.hash() as usize;
        let mut free = None;
        for p in 0..PROBE {
            let i = (base + p) & self.mask;
            match &mut self.slots[i] {
                Some(f) if f.key == key && f.expires > now => {
                    f.tcp = advance(f.tcp, tcp);
                    f.expires = now + timeout(&self.timeouts, key.proto, f.tcp);
                    return;
                }
                Some(f) if f.expires <= now => {
                    if free.is_none() {
                        free = Some(i);
                    }
                }
                Some(_) => {}
                None => {
                    free.get_or_insert(i);
                }
            }
        }
        let Some(i) = free else {
            self.stats.table_full += 1;
            return;
        };
        if self.slots[i].is_some() {
            self.stats.expired += 1;
        } else {
            self.stats.occupied += 1;
        }
        let state = advance(TcpState::None, tcp);
        self.slots[i] = Some(Flow {
            key,
            expires: now + timeout(&self.timeouts, key.proto, state),
            tcp: state,
        });
        self.stats.created += 1;
    }

    /// Whether `k` is the reverse direction of a live tracked flow; if so
    /// the flow is refreshed.
    pub fn admits_reverse(&mut self, k: &AclKey, tcp: u8, now: u64) -> bool {
        let key = FlowKey::of(k).reversed();
        let base = key.hash() as usize;
        for p in 0..PROBE {
            let i = (base + p) & self.mask;
            if let Some(f) = &mut self.slots[i] {
                if f.key == key && f.expires > now {
                    f.tcp = advance(f.tcp, tcp);
                    f.expires = now + timeout(&self.timeouts, key.proto, f.tcp);
                    self.stats.reflexive_permits += 1;
                    return true;
                }
            }
        }
        false
    }
}

fn timeout(t: &FlowTimeouts, proto: u8, tcp: TcpState) -> u64 {
    match (proto, tcp) {
        (6, TcpState::Established) => t.tcp_established,
        (6, _) => t.tcp_transient,
        (17, _) => t.udp,
        _ => t.other,
    }
}

fn advance(s: TcpState, flags: u8) -> TcpState {
    use tcp_flags::*;
    if flags & (FIN | RST) != 0 {
        return TcpState::Closing;
    }
    match s {
        TcpState::Closing => TcpState::Closing,
        _ if flags & SYN != 0 && flags & ACK == 0 => TcpState::Opening,
        _ if flags & ACK != 0 => TcpState::Established,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(sport: u16) -> AclKey {
        AclKey::ip(false, 0xc612_0001 << 96, 0xc613_0001 << 96, 17, sport, 53)
    }

    #[test]
    fn reverse_is_admitted_until_idle_timeout() {
        let mut t = FlowTable::new(64, FlowTimeouts::default());
        let k = key(4000);
        assert!(!t.admits_reverse(&k.reversed(), 0, 0));
        t.track(&k, 0, 0);
        assert!(t.admits_reverse(&k.reversed(), 0, 10 * S));
        // The same direction is not "reverse".
        assert!(!t.admits_reverse(&k, 0, 10 * S));
        // Refreshed at 10 s: alive at 129 s, gone at 131 s.
        assert!(t.admits_reverse(&k.reversed(), 0, 129 * S));
        assert!(!t.admits_reverse(&k.reversed(), 0, 250 * S));
    }

    #[test]
    fn tcp_close_shortens_the_timeout() {
        let mut t = FlowTable::new(64, FlowTimeouts::default());
        let mut k = key(4000);
        k.c[chunk::PROTO] = 6;
        t.track(&k, tcp_flags::SYN, 0);
        assert!(t.admits_reverse(&k.reversed(), tcp_flags::SYN | tcp_flags::ACK, S));
        t.track(&k, tcp_flags::ACK, 2 * S);
        assert!(t.admits_reverse(&k.reversed(), tcp_flags::ACK, 1000 * S));
        t.track(&k, tcp_flags::FIN | tcp_flags::ACK, 1001 * S);
        assert!(!t.admits_reverse(&k.reversed(), tcp_flags::ACK, 1200 * S));
    }

    #[test]
    fn flows_differing_in_one_port_spread_over_the_table() {
        // A quarter full: every flow finds a slot in its probe window.
        let mut t = FlowTable::new(4096, FlowTimeouts::default());
        for p in 0..1024 {
            t.track(&key(p), 0, 0);
        }
        assert_eq!((t.stats.created, t.stats.table_full), (1024, 0));
        // Half full: a few windows fill up (linear probing clusters).
        for p in 1024..2048 {
            t.track(&key(p), 0, 0);
        }
        assert!(t.stats.table_full < 20, "{:?}", t.stats);
    }

    #[test]
    fn a_full_table_is_counted_not_grown() {
        let mut t = FlowTable::new(8, FlowTimeouts::default());
        for p in 0..100 {
            t.track(&key(p), 0, 0);
        }
        assert_eq!(t.stats.created, 8);
        assert_eq!(t.stats.table_full, 92);
        assert_eq!(t.live(0), 8);
        // Expired slots are reused.
        t.track(&key(500), 0, 1000 * S);
        assert_eq!(t.stats.created, 9);
    }
}
