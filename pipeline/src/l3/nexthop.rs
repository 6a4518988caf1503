//! Next hops: what a FIB entry points at. The trie holds a next hop's id;
//! the table of next hops is small, rebuilt by the control thread and
//! swapped in whole (workers load it once per batch).

use super::trie::NextHopId;
use std::net::IpAddr;

/// Most paths of one ECMP next hop.
pub const MAX_PATHS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Id 0: no route.
    None,
    /// The destination is on the interface's link: it is its own
    /// neighbour.
    Connected { ifx: u16 },
    /// Through a router on the interface's link.
    Gateway { ifx: u16, ip: IpAddr },
    /// One of pollgate's own addresses (the input hook).
    Local { ifx: u16 },
    /// Dropped and counted, nothing sent back.
    Blackhole,
    /// Dropped with an ICMP destination unreachable.
    Unreachable,
    /// Several paths, one per flow by a hash of its 5-tuple: `n` of the
    /// table's path group `group` (kept out of line, so that a next hop
    /// stays a few bytes and the per-packet copy small).
    Ecmp { group: u32, n: u8 },
}

/// Every next hop, indexed by id (id 0 is `None`).
#[derive(Debug, Clone)]
pub struct NextHops {
    pub list: Vec<NextHop>,
    /// ECMP path groups: next-hop ids of the paths.
    pub groups: Vec<[NextHopId; MAX_PATHS]>,
}

impl Default for NextHops {
    fn default() -> Self {
        NextHops {
            list: vec![NextHop::None],
            groups: Vec::new(),
        }
    }
}

impl NextHops {
    #[inline(always)]
    pub fn get(&self, id: NextHopId) -> NextHop {
        self.list.get(id as usize).copied().unwrap_or(NextHop::None)
    }

    /// The one path of `id` a flow with this hash takes: ECMP resolved,
    /// every other kind as it is.
    #[inline(always)]
    pub fn path(&self, id: NextHopId, hash: u32) -> NextHop {
        match self.get(id) {
            NextHop::Ecmp { group, n } if n > 0 => {
                // Multiply-shift maps the hash onto 0..n without a division.
                let k = ((hash as u64 * n as u64) >> 32) as usize;
                self.groups
                    .get(group as usize)
                    .map_or(NextHop::None, |g| self.get(g[k]))
            }
            other => other,
        }
    }
}

/// The 5-tuple hash ECMP picks paths by: the same for every packet of a
/// flow, spread across flows (a multiply-xorshift mix of the addresses,
/// protocol and ports).
#[inline(always)]
pub fn flow_hash(src: u128, dst: u128, proto: u8, ports: u32) -> u32 {
    let mut h = (src as u64) ^ ((src >> 64) as u64).rotate_left(17);
    h ^= (dst as u64).rotate_left(31) ^ ((dst >> 64) as u64).rotate_left(47);
    h ^= ((proto as u64) << 32) | ports as u64;
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecmp_spreads_flows_and_keeps_each_on_one_path() {
        let mut t = NextHops::default();
        let a = IpAddr::from([198, 18, 2, 2]);
        let b = IpAddr::from([198, 18, 3, 2]);
        t.list.push(NextHop::Gateway { ifx: 1, ip: a });
        t.list.push(NextHop::Gateway { ifx: 2, ip: b });
        let mut paths = [0; MAX_PATHS];
        paths[0] = 1;
        paths[1] = 2;
        t.groups.push(paths);
        t.list.push(NextHop::Ecmp { group: 0, n: 2 });
        let mut on_a = 0;
        for f in 0..64u32 {
            let h = flow_hash(0xc612_0a0a << 96, 0xc612_6401 << 96, 17, 10_000 + f);
            let p = t.path(3, h);
            assert_eq!(p, t.path(3, h));
            if p == t.get(1) {
                on_a += 1;
            }
        }
        assert!((16..=48).contains(&on_a), "{on_a} of 64 flows on one path");
    }
}
