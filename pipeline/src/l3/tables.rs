//! The L3 state every worker shares: both families' tries, the next-hop
//! table (swapped whole), the neighbour table, and the router's event
//! counters (slow-path events only: ICMP sent, ARP answered).

use super::neighbor::NeighborTable;
use super::nexthop::NextHops;
use super::trie::StrideTrie;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

macro_rules! l3_events {
    ($($field:ident => $name:literal,)*) => {
        /// Counts of what the router sent or answered, by kind.
        #[derive(Debug, Default)]
        pub struct L3Counters {
            $(pub $field: AtomicU64,)*
        }

        impl L3Counters {
            /// (name, value) of every counter.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$(($name, self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

l3_events! {
    arp_replies => "arp_replies_sent",
    arp_requests => "arp_requests_sent",
    nd_adverts => "nd_adverts_sent",
    nd_solicits => "nd_solicits_sent",
    echo_replies => "echo_replies_sent",
    time_exceeded => "icmp_time_exceeded_sent",
    unreachable => "icmp_unreachable_sent",
    too_big => "icmp_too_big_sent",
    icmp_rate_limited => "icmp_rate_limited",
    held => "neighbor_held",
    held_expired => "neighbor_held_expired",
}

#[inline(always)]
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub struct L3Tables {
    pub v4: Arc<StrideTrie>,
    pub v6: Arc<StrideTrie>,
    pub next_hops: ArcSwap<NextHops>,
    pub neighbors: NeighborTable,
    pub counters: L3Counters,
    /// Each worker's NAT counters, kept here so that they outlive the
    /// pipelines a topology change swaps (control path only).
    pub nat_counters: std::sync::Mutex<Vec<Arc<crate::nat::NatCounters>>>,
}

impl L3Tables {
    /// Worker `w`'s NAT counters.
    pub fn nat_counters(&self, w: usize) -> Arc<crate::nat::NatCounters> {
        let mut v = self.nat_counters.lock().unwrap_or_else(|e| e.into_inner());
        while v.len() <= w {
            v.push(Arc::default());
        }
        v[w].clone()
    }

    /// Every worker's NAT counters so far.
    pub fn all_nat_counters(&self) -> Vec<Arc<crate::nat::NatCounters>> {
        self.nat_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
