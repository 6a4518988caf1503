//! The forwarding information base: per family, the routes as the
//! control thread knows them (a RIB: prefix → next hop) and the trie the
//! workers look up. A route change rewrites only the addresses whose
//! longest match it changes: the gaps its more specific routes leave.

use super::trie::{NextHopId, StrideTrie, TrieError, NO_ROUTE};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// An IP prefix, address bits left-aligned in a u128 (an IPv4 address
/// is the top 32 bits), host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub key: u128,
    pub len: u8,
    pub v6: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("`{0}` is not a prefix (want ADDRESS/LENGTH, e.g. 198.18.0.0/15 or 2001:db8::/32)")]
    Syntax(String),
    #[error("prefix length {len} is longer than {max} bits")]
    TooLong { len: u8, max: u8 },
}

#[inline(always)]
pub fn key_v4(a: [u8; 4]) -> u128 {
    (u32::from_be_bytes(a) as u128) << 96
}

#[inline(always)]
pub fn key_v6(a: [u8; 16]) -> u128 {
    u128::from_be_bytes(a)
}

impl Prefix {
    /// The prefix of `addr` of length `len`, host bits cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let (key, v6, max) = match addr {
            IpAddr::V4(a) => (key_v4(a.octets()), false, 32),
            IpAddr::V6(a) => (key_v6(a.octets()), true, 128),
        };
        if len > max {
            return Err(PrefixError::TooLong { len, max });
        }
        Ok(Prefix {
            key: key & mask(len),
            len,
            v6,
        })
    }

    pub fn width(&self) -> u8 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    /// First and last key of the prefix (in the left-aligned space).
    pub fn range(&self) -> (u128, u128) {
        (self.key, self.key | !mask(self.len))
    }

    pub fn contains(&self, key: u128) -> bool {
        key & mask(self.len) == self.key
    }

    pub fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::from(self.key.to_be_bytes())
        } else {
            IpAddr::from(((self.key >> 96) as u32).to_be_bytes())
        }
    }
}

impl std::str::FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let bad = || PrefixError::Syntax(s.to_string());
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        Prefix::new(addr, len)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

#[inline(always)]
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// One family's routes and trie.
pub struct FamilyFib {
    width: u8,
    rib: BTreeMap<(u128, u8), NextHopId>,
    pub trie: Arc<StrideTrie>,
}

impl FamilyFib {
    pub fn new(width: u8, max_groups: usize) -> FamilyFib {
        FamilyFib {
            width,
            rib: BTreeMap::new(),
            trie: Arc::new(StrideTrie::new(max_groups, width as u32)),
        }
    }

    pub fn len(&self) -> usize {
        self.rib.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rib.is_empty()
    }

    pub fn get(&self, p: &Prefix) -> Option<NextHopId> {
        self.rib.get(&(p.key, p.len)).copied()
    }

    pub fn routes(&self) -> impl Iterator<Item = (Prefix, NextHopId)> + '_ {
        let v6 = self.width == 128;
        self.rib
            .iter()
            .map(move |(&(key, len), &nh)| (Prefix { key, len, v6 }, nh))
    }

    /// The next hop of the longest prefix strictly shorter than `p`'s
    /// that covers it: what `p`'s addresses fall back to without it.
    fn covering(&self, p: &Prefix) -> NextHopId {
        (0..p.len)
            .rev()
            .find_map(|l| self.rib.get(&(p.key & mask(l), l)).copied())
            .unwrap_or(NO_ROUTE)
    }

    /// Writes `nh` over `p`'s range except where a more specific route
    /// decides: only the gaps between `p`'s outermost sub-prefixes.
    fn write_gaps(&mut self, p: &Prefix, nh: NextHopId) -> Result<(), TrieError> {
        let (lo, hi) = p.range();
        let mut children = Vec::new();
        let mut covered: Option<u128> = None;
        // A host route has nothing more specific.
        let below =
            (p.len < self.width).then(|| self.rib.range((lo, p.len + 1)..=(hi, self.width)));
        for (&(key, len), _) in below.into_iter().flatten() {
            if covered.is_some_and(|c| key <= c) {
                continue;
            }
            let end = key | !mask(len);
            children.push((key, end));
            covered = Some(end);
        }
        let mut cur = Some(lo);
        for (c_lo, c_hi) in children {
            if let Some(c) = cur {
                if c < c_lo {
                    self.trie.write(c, c_lo - 1, nh)?;
                }
            }
            cur = c_hi.checked_add(1);
        }
        if let Some(c) = cur {
            if c <= hi {
                self.trie.write(c, hi, nh)?;
            }
        }
        Ok(())
    }

    /// Adds or replaces the route for `p`; returns the next hop it had.
    pub fn insert(&mut self, p: Prefix, nh: NextHopId) -> Result<Option<NextHopId>, TrieError> {
        let old = self.get(&p);
        if old == Some(nh) {
            return Ok(old);
        }
        self.write_gaps(&p, nh)?;
        self.rib.insert((p.key, p.len), nh);
        Ok(old)
    }

    /// Removes the route for `p`; its addresses fall back to the covering
    /// route. Returns its next hop.
    pub fn remove(&mut self, p: &Prefix) -> Result<Option<NextHopId>, TrieError> {
        let Some(old) = self.get(p) else {
            return Ok(None);
        };
        let fallback = self.covering(p);
        self.write_gaps(p, fallback)?;
        self.rib.remove(&(p.key, p.len));
        Ok(Some(old))
    }

    #[inline(always)]
    pub fn lookup(&self, key: u128) -> NextHopId {
        self.trie.lookup(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Memory without frames: the lookups' prefetches do nothing here.
    const NO_FRAMES: Vec<u8> = Vec::new();

    fn linear(routes: &[(Prefix, NextHopId)], key: u128) -> NextHopId {
        routes
            .iter()
            .filter(|(p, _)| p.contains(key))
            .max_by_key(|(p, _)| p.len)
            .map_or(NO_ROUTE, |r| r.1)
    }

    #[test]
    fn prefixes_parse_and_print() {
        let p: Prefix = "198.18.7.9/15".parse().unwrap();
        assert_eq!(p.to_string(), "198.18.0.0/15");
        let p: Prefix = "2001:db8::1/32".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert!("198.18.0.0/33".parse::<Prefix>().is_err());
        assert!("198.18.0.0".parse::<Prefix>().is_err());
    }

    #[test]
    fn delete_falls_back_to_the_covering_route() {
        let mut f = FamilyFib::new(32, 64);
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        f.insert(p("0.0.0.0/0"), 1).unwrap();
        f.insert(p("198.18.0.0/16"), 2).unwrap();
        f.insert(p("198.18.1.128/25"), 3).unwrap();
        f.insert(p("198.18.1.130/32"), 4).unwrap();
        let k = |s: &str| p(&format!("{s}/32")).key;
        assert_eq!(f.lookup(k("198.18.1.130")), 4);
        assert_eq!(f.lookup(k("198.18.1.131")), 3);
        assert_eq!(f.lookup(k("198.18.2.1")), 2);
        assert_eq!(f.lookup(k("203.0.113.1")), 1);
        f.remove(&p("198.18.1.128/25")).unwrap();
        assert_eq!(f.lookup(k("198.18.1.131")), 2);
        assert_eq!(f.lookup(k("198.18.1.130")), 4);
        f.remove(&p("198.18.0.0/16")).unwrap();
        assert_eq!(f.lookup(k("198.18.1.131")), 1);
        f.remove(&p("0.0.0.0/0")).unwrap();
        assert_eq!(f.lookup(k("198.18.1.131")), NO_ROUTE);
        assert_eq!(f.lookup(k("198.18.1.130")), 4);
    }

    /// Random prefixes biased the way real tables are (lengths cluster
    /// around the family's common ones), inside a few top-level blocks so
    /// that they nest and share groups.
    fn random_routes(v6: bool, n: usize, seed: u64) -> Vec<(Prefix, NextHopId)> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let r = next();
                let len = if v6 {
                    [29u8, 32, 32, 36, 40, 44, 48, 48, 48, 48, 56, 64, 64, 128][(r % 14) as usize]
                } else {
                    [12u8, 16, 19, 20, 22, 23, 24, 24, 24, 24, 24, 28, 32][(r % 13) as usize]
                };
                // A handful of top bits, random below: prefixes overlap
                // and share the upper levels, as a real table's do.
                let hi = 0x2000 + (next() % 64) as u128;
                let key = (hi << 112) | ((next() as u128) << 48) | (next() as u128 >> 16);
                let key = if v6 {
                    key
                } else {
                    ((0xc6 + (next() % 4) as u128) << 120) | (key & (u128::MAX >> 8))
                };
                let key = key & mask(len);
                (Prefix { key, len, v6 }, (i as u32 % 1000) + 1)
            })
            .collect()
    }

    fn check_against_linear(v6: bool, n: usize, seed: u64, probes: usize) {
        let routes = random_routes(v6, n, seed);
        let mut f = FamilyFib::new(if v6 { 128 } else { 32 }, 1 << 21);
        let mut rib = std::collections::BTreeMap::new();
        for (p, nh) in &routes {
            f.insert(*p, *nh).unwrap();
            rib.insert(*p, *nh);
        }
        // Delete a tenth, so the fallback path is exercised at scale.
        for (p, _) in routes.iter().step_by(10) {
            f.remove(p).unwrap();
            rib.remove(p);
        }
        let live: Vec<_> = rib.into_iter().collect();
        let mut x = seed.wrapping_mul(31) | 1;
        let mut batch = Vec::with_capacity(64);
        for k in 0..probes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half the probes inside a route, half anywhere.
            let key = if k % 2 == 0 && !live.is_empty() {
                let (p, _) = live[(x as usize) % live.len()];
                p.key | (((x as u128) << 64 | x as u128) & !mask(p.len))
            } else {
                ((x as u128) << 64) | x.rotate_left(17) as u128
            };
            let key = if v6 { key } else { key & (u128::MAX << 96) };
            assert_eq!(f.lookup(key), linear(&live, key), "key {key:#x}");
            let mut many = [0u32; 1];
            if v6 {
                f.trie.lookup_many(&[key], &mut many, &NO_FRAMES);
            } else {
                assert_eq!(f.trie.lookup_v4((key >> 96) as u32), f.lookup(key));
                f.trie
                    .lookup_many_v4(&[(key >> 96) as u32], &mut many, &NO_FRAMES);
            }
            assert_eq!(many[0], f.lookup(key));
            // Whole batches too: keys of different depths side by side.
            batch.push(key);
            if batch.len() == 64 || k + 1 == probes {
                let mut out = [0u32; 64];
                if v6 {
                    f.trie.lookup_many(&batch, &mut out, &NO_FRAMES);
                } else {
                    let v4: Vec<u32> = batch.iter().map(|k| (k >> 96) as u32).collect();
                    f.trie.lookup_many_v4(&v4, &mut out, &NO_FRAMES);
                }
                for (j, k) in batch.iter().enumerate() {
                    assert_eq!(out[j], f.lookup(*k), "key {k:#x} in a batch");
                }
                batch.clear();
            }
        }
    }

    #[test]
    fn ipv4_100k_routes_match_a_linear_scan() {
        check_against_linear(false, 100_000, 0x1234_5678, 2_000);
    }

    #[test]
    fn ipv6_100k_routes_match_a_linear_scan() {
        check_against_linear(true, 100_000, 0x9abc_def1, 2_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn small_random_tables_match_a_linear_scan(seed in any::<u64>(), v6 in any::<bool>(), n in 1usize..300) {
            check_against_linear(v6, n, seed, 300);
        }
    }
}
