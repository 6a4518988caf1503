//! The ports NAT hands out, per translated address and protocol: one bit
//! each, so a port is never given to two inside endpoints at once and a
//! published port is never given at all.

/// Protocols with their own port space: TCP, UDP, ICMP query ids.
const SPACES: usize = 3;
const WORDS: usize = 65536 / 64;

fn space(proto: u8) -> Option<usize> {
    match proto {
        6 => Some(0),
        17 => Some(1),
        1 => Some(2),
        _ => None,
    }
}

/// Which worker's pool this is, of how many: worker `index` of `of`
/// hands out only the ports `p` with `p % of == index`, so that the
/// destination port of a reply names the worker that holds its session
/// (VPP's nat44 splits its port space per thread the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: u16,
    pub of: u16,
}

impl Share {
    pub const WHOLE: Share = Share { index: 0, of: 1 };

    /// The worker whose ports `port` is of.
    #[inline]
    pub fn owner_of_port(&self, port: u16) -> u16 {
        port % self.of.max(1)
    }

    /// How many of the 65 536 ports are this share's.
    fn owned(&self) -> u64 {
        let of = self.of.max(1) as u64;
        (65536 + of - 1 - self.index as u64) / of
    }
}

pub struct PortPool {
    /// By address, sorted: [`PortPool::knows`] runs per packet with
    /// several workers, over pools of up to 256 addresses.
    addrs: Vec<([u8; 4], Box<[u64]>)>,
    share: Share,
    /// Ports in use, over every address and protocol (other workers'
    /// share not counted).
    pub used: u64,
}

impl PortPool {
    /// A pool for `addrs` (each gets every port of every protocol).
    pub fn new(addrs: &[[u8; 4]]) -> PortPool {
        Self::shared(addrs, Share::WHOLE)
    }

    /// A pool for `addrs` holding only `share`'s ports.
    pub fn shared(addrs: &[[u8; 4]], share: Share) -> PortPool {
        let mut p = PortPool {
            addrs: Vec::new(),
            share,
            used: 0,
        };
        for a in addrs {
            p.add(*a);
        }
        p
    }

    fn index(&self, a: [u8; 4]) -> Result<usize, usize> {
        self.addrs.binary_search_by_key(&a, |(x, _)| *x)
    }

    pub fn addresses(&self) -> impl Iterator<Item = [u8; 4]> + '_ {
        self.addrs.iter().map(|(a, _)| *a)
    }

    /// Whether `a` is one of the pool's addresses.
    #[inline]
    pub fn knows(&self, a: [u8; 4]) -> bool {
        self.index(a).is_ok()
    }

    /// Adds an address (nothing if it is there already). Other workers'
    /// ports start out taken.
    pub fn add(&mut self, a: [u8; 4]) {
        let Err(at) = self.index(a) else {
            return;
        };
        let mut bits = vec![0u64; SPACES * WORDS].into_boxed_slice();
        if self.share.of > 1 {
            for s in 0..SPACES {
                for port in 0..=u16::MAX {
                    if self.share.owner_of_port(port) != self.share.index {
                        bits[s * WORDS + port as usize / 64] |= 1 << (port % 64);
                    }
                }
            }
        }
        self.addrs.insert(at, (a, bits));
    }

    /// Takes over what `old` has in use for the addresses both have;
    /// what it had on an address this pool no longer has is not counted
    /// (its sessions' ports can no longer be given back to it).
    pub fn carry_over(&mut self, old: PortPool) {
        let mut used = old.used;
        // Other workers' ports start out taken in a shared pool.
        let others = (65536 - self.share.owned()) * SPACES as u64;
        for (a, bits) in old.addrs {
            match self.index(a) {
                Ok(i) => self.addrs[i].1 = bits,
                Err(_) => {
                    let taken: u64 = bits.iter().map(|w| w.count_ones() as u64).sum();
                    used -= (taken - others).min(used);
                }
            }
        }
        self.used = used;
    }

    fn words(&mut self, a: [u8; 4], proto: u8) -> Option<&mut [u64]> {
        let s = space(proto)?;
        let i = self.index(a).ok()?;
        Some(&mut self.addrs[i].1[s * WORDS..(s + 1) * WORDS])
    }

    /// Marks `port` used (a published port). False if it already was.
    pub fn reserve(&mut self, a: [u8; 4], proto: u8, port: u16) -> bool {
        let Some(w) = self.words(a, proto) else {
            return false;
        };
        let (i, b) = (port as usize / 64, port % 64);
        if w[i] & (1 << b) != 0 {
            return false;
        }
        w[i] |= 1 << b;
        self.used += 1;
        true
    }

    /// A free port in `lo..=hi`: `want` (the inside port: port
    /// preservation, as Linux masquerade tries first) if it is free,
    /// else the first free one from `hint`'s position on.
    pub fn alloc(
        &mut self,
        a: [u8; 4],
        proto: u8,
        (lo, hi): (u16, u16),
        want: u16,
        hint: u32,
    ) -> Option<u16> {
        if lo > hi {
            return None;
        }
        if (lo..=hi).contains(&want) && self.reserve(a, proto, want) {
            return Some(want);
        }
        let span = (hi - lo) as u32 + 1;
        let start = lo as u32 + hint % span;
        let w = self.words(a, proto)?;
        // Word by word from `start`, wrapping once.
        let mut p = start;
        let mut seen = 0u32;
        while seen < span {
            let i = (p / 64) as usize;
            let free = !w[i];
            let from = p % 64;
            let mask = free & (u64::MAX << from);
            if mask != 0 {
                let port = (i as u32) * 64 + mask.trailing_zeros();
                if port <= hi as u32 && port >= lo as u32 {
                    w[i] |= 1 << (port % 64);
                    self.used += 1;
                    return Some(port as u16);
                }
            }
            let step = 64 - from;
            seen += step;
            p += step;
            if p > hi as u32 {
                p = lo as u32;
            }
        }
        None
    }

    pub fn free(&mut self, a: [u8; 4], proto: u8, port: u16) {
        let Some(w) = self.words(a, proto) else {
            return;
        };
        let (i, b) = (port as usize / 64, port % 64);
        if w[i] & (1 << b) != 0 {
            w[i] &= !(1 << b);
            self.used -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const A: [u8; 4] = [198, 18, 100, 1];

    #[test]
    fn preserves_the_port_when_free_and_never_gives_one_twice() {
        let mut p = PortPool::new(&[A]);
        assert_eq!(p.alloc(A, 17, (1024, 65535), 5000, 0), Some(5000));
        let mut got = std::collections::HashSet::new();
        got.insert(5000);
        for k in 0..2000u32 {
            let port = p.alloc(A, 17, (1024, 65535), 5000, k * 7919).unwrap();
            assert!((1024..=65535).contains(&port));
            assert!(got.insert(port), "{port} twice");
        }
        // TCP has its own space.
        assert_eq!(p.alloc(A, 6, (1024, 65535), 5000, 0), Some(5000));
    }

    #[test]
    fn a_worker_hands_out_only_its_share() {
        let a = [198, 18, 0, 1];
        for index in 0..3 {
            let share = Share { index, of: 3 };
            let mut p = PortPool::shared(&[a], share);
            // The inside port is kept only where it is this worker's.
            let got = p.alloc(a, 17, (1024, 65535), 5000, 0).unwrap();
            assert_eq!(got == 5000, share.owner_of_port(5000) == index);
            let mut n = 1;
            while let Some(port) = p.alloc(a, 17, (1024, 2047), 1024, n) {
                assert_eq!(share.owner_of_port(port), index);
                n += 1;
            }
            assert_eq!(p.used, n as u64);
            assert!(n >= 1024 / 3, "{n}");
        }
    }

    #[test]
    fn carrying_over_drops_the_count_of_an_address_gone() {
        for share in [Share::WHOLE, Share { index: 1, of: 3 }] {
            let b = [198, 18, 100, 2];
            let mut old = PortPool::shared(&[A, b], share);
            for k in 0..10 {
                old.alloc(A, 17, (1024, 65535), 0, k).unwrap();
            }
            for k in 0..7 {
                old.alloc(b, 6, (1024, 65535), 0, k).unwrap();
            }
            assert_eq!(old.used, 17);
            // A reload keeps A and drops b.
            let mut new = PortPool::shared(&[A], share);
            new.carry_over(old);
            assert_eq!(new.used, 10);
            assert!(!new.knows(b));
        }
    }

    #[test]
    fn a_small_range_runs_out_and_comes_back() {
        let mut p = PortPool::new(&[A]);
        assert!(p.reserve(A, 6, 2001));
        let got: Vec<u16> = (0..10)
            .filter_map(|k| p.alloc(A, 6, (2000, 2003), 80, k))
            .collect();
        assert_eq!(got.len(), 3);
        assert!(!got.contains(&2001));
        p.free(A, 6, got[1]);
        assert_eq!(p.alloc(A, 6, (2000, 2003), 80, 0), Some(got[1]));
        // An address the pool does not have gets nothing.
        assert_eq!(p.alloc([1, 2, 3, 4], 6, (2000, 2003), 80, 0), None);
    }
}
