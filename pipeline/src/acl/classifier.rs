//! The compiled classifier: per-chunk equivalence classes with aggregated
//! bit vectors (Lakshman–Stiliadis bit vectors, Baboescu–Varghese
//! aggregation, RFC-style 16-bit chunk tables for the per-field step).
//!
//! Each key chunk (16 bits of an address, a port, the protocol…) indexes
//! a table that gives its equivalence class; each class owns a bit vector
//! with one bit per rule, set where the rule accepts that chunk value.
//! Rules are numbered in priority order, so the first bit set in the AND of
//! all chunks' vectors is the first matching rule. The aggregate vectors
//! (one bit per 64-rule word) let a lookup skip the words that are zero in
//! any chunk, so with thousands of rules a lookup reads a few words per
//! chunk rather than all of them. Chunks that every rule wildcards are left
//! out at compile time, and chunks with few classes are merged pairwise
//! through cross-product tables (RFC's later phases), so a lookup ANDs
//! four or five vectors where an IPv4 key has seven chunks.

use super::dfa::DfaSet;
use super::key::{chunk, AclKey};
use super::rule::{PortRange, Rule};
use std::collections::HashMap;

/// Most rules one classifier holds: class ids are u16 and a chunk has at
/// most 2 × rules + 1 classes.
pub const MAX_RULES: usize = 32_000;

/// Most entries of a cross-product table: 2 MiB, a table that stays in
/// a core's L2 beside the vectors it saves reading.
const PRODUCT_MAX: usize = 1 << 20;
/// Most vector words a merge may AND at compile time (a quarter of a
/// second or so).
const PRODUCT_WORK: usize = 1 << 28;
/// Most bytes all merged chunks' vectors may take together: a merge can
/// make tens of thousands of classes, each a whole vector.
const MERGED_BYTES: usize = 32 << 20;

/// A key chunk's table: the chunk value → its class. Values past the end
/// share the last class.
struct Leaf {
    /// Position of the chunk in `AclKey::c`.
    key: usize,
    table: Box<[u16]>,
}

/// The cross product of two classes (the later phases of Gupta and
/// McKeown's recursive flow classification): `a`'s class × `b_classes` +
/// `b`'s class → class. `a` and `b` are registers: the leaves' classes
/// first, then each product's in order, so a key's classes are computed
/// in one pass without recursion.
struct Product {
    a: usize,
    b: usize,
    b_classes: usize,
    table: Box<[u16]>,
}

/// The classes a chunk's vectors are indexed by, and the register its
/// class is found in.
struct Chunk {
    reg: usize,
    /// Class-major bit vectors, `words` per class.
    bits: Box<[u64]>,
    /// Class-major aggregates, `agg_words` per class.
    agg: Box<[u64]>,
    classes: usize,
}

/// Registers a key's classes take: one per leaf, one per product (each
/// product replaces two chunks with one, so fewer than leaves).
const REGS: usize = 2 * chunk::COUNT;

pub struct BitVector {
    leaves: Vec<Leaf>,
    products: Vec<Product>,
    chunks: Vec<Chunk>,
    /// Rule index (in the whole ACL) of each local bit, ascending.
    rules: Box<[u32]>,
    words: usize,
    agg_words: usize,
}

impl BitVector {
    /// Compiles `rules`, given as (index in the ACL, rule) in ascending
    /// index order. At most [`MAX_RULES`].
    pub fn compile(rules: &[(u32, &Rule)]) -> BitVector {
        assert!(rules.len() <= MAX_RULES, "caller checks MAX_RULES");
        let n = rules.len();
        let words = n.div_ceil(64).max(1);
        let agg_words = words.div_ceil(64);
        let mut leaves = Vec::new();
        let mut chunks = Vec::new();
        for key in 0..chunk::COUNT {
            let ranges: Vec<(u32, u32)> = rules
                .iter()
                .map(|(_, r)| chunk_range(r, key))
                .map(|(lo, hi)| (lo as u32, hi as u32))
                .collect();
            if ranges.iter().all(|&(lo, hi)| lo == 0 && hi == 0xffff) {
                continue;
            }
            let (table, bits, classes) = build_chunk(&ranges, words);
            chunks.push(Chunk {
                reg: leaves.len(),
                agg: aggregate(&bits, classes, words, agg_words),
                bits,
                classes,
            });
            leaves.push(Leaf { key, table });
        }
        let mut products: Vec<Product> = Vec::new();
        let mut merged_bytes = 0;
        // The two chunks with the fewest classes (ports and protocol, then
        // address halves where few rules cut them) merged into one, while
        // their cross product is small: fewer vectors to AND for every
        // candidate word, and the merged vector's aggregate is exact where
        // the AND of two aggregates lets false candidates through.
        loop {
            chunks.sort_by_key(|c| c.classes);
            let [a, b, ..] = &chunks[..] else { break };
            let product = a.classes * b.classes;
            if product > PRODUCT_MAX || product * words > PRODUCT_WORK {
                break;
            }
            let room = MERGED_BYTES.saturating_sub(merged_bytes) / (8 * words);
            let Some((table, bits, classes)) = cross(a, b, words, room) else {
                break;
            };
            let b = chunks.remove(1);
            let a = chunks.remove(0);
            merged_bytes += 8 * bits.len();
            products.push(Product {
                a: a.reg,
                b: b.reg,
                b_classes: b.classes,
                table,
            });
            chunks.push(Chunk {
                reg: leaves.len() + products.len() - 1,
                agg: aggregate(&bits, classes, words, agg_words),
                bits,
                classes,
            });
        }
        // Most selective first: a lookup that fails early stops early.
        chunks.sort_by_key(|c| std::cmp::Reverse(c.classes));
        BitVector {
            leaves,
            products,
            chunks,
            rules: rules.iter().map(|(i, _)| *i).collect(),
            words,
            agg_words,
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Bytes of lookup structure.
    pub fn memory_bytes(&self) -> usize {
        let tables = self.leaves.iter().map(|l| &l.table);
        let tables = tables.chain(self.products.iter().map(|p| &p.table));
        tables.map(|t| 2 * t.len()).sum::<usize>()
            + self
                .chunks
                .iter()
                .map(|c| 8 * (c.bits.len() + c.agg.len()))
                .sum::<usize>()
            + 4 * self.rules.len()
    }

    /// The first matching rule's index in the ACL.
    #[inline]
    pub fn classify(&self, key: &AclKey) -> Option<u32> {
        // A group of one: a lone lookup (a batch of mixed families goes
        // key by key) does not set up a whole group's arrays.
        let mut out = [u32::MAX];
        self.classify_in_groups::<1>(std::slice::from_ref(key), &mut out);
        (out[0] != u32::MAX).then_some(out[0])
    }

    /// The first matching rule of each key (`u32::MAX`: none), a group
    /// of keys at a time, step by step: every key's chunk classes, then
    /// every key's first aggregate word, then every key's first candidate
    /// word. With thousands of rules the vectors are far outside the
    /// caches, and one key's steps are a chain of misses; a group's
    /// same steps are independent loads whose misses overlap. A key its
    /// first candidate word does not decide finishes alone.
    #[inline]
    pub fn classify_many(&self, keys: &[AclKey], out: &mut [u32]) {
        self.classify_in_groups::<GROUP>(keys, out);
    }

    #[inline]
    fn classify_in_groups<const N: usize>(&self, keys: &[AclKey], out: &mut [u32]) {
        if self.rules.is_empty() {
            out.iter_mut().for_each(|o| *o = u32::MAX);
            return;
        }
        if self.chunks.is_empty() {
            out.iter_mut().for_each(|o| *o = self.rules[0]);
            return;
        }
        for (keys, out) in keys.chunks(N).zip(out.chunks_mut(N)) {
            self.classify_group::<N>(keys, out);
        }
    }

    #[inline]
    fn classify_group<const N: usize>(&self, keys: &[AclKey], out: &mut [u32]) {
        let n = keys.len().min(out.len()).min(N);
        let nch = self.chunks.len();
        let mut class = [[0usize; chunk::COUNT]; N];
        for (k, key) in keys[..n].iter().enumerate() {
            let mut reg = [0usize; REGS];
            for (r, l) in reg.iter_mut().zip(&self.leaves) {
                *r = l.table[(key.c[l.key] as usize).min(l.table.len() - 1)] as usize;
            }
            for (i, p) in self.products.iter().enumerate() {
                reg[self.leaves.len() + i] = p.table[reg[p.a] * p.b_classes + reg[p.b]] as usize;
            }
            for (c, ch) in class[k].iter_mut().zip(&self.chunks) {
                *c = reg[ch.reg];
            }
        }
        let (w, aw) = (self.words, self.agg_words);
        let mut agg = [0u64; N];
        for k in 0..n {
            let mut a = !0u64;
            for (ch, &c) in self.chunks.iter().zip(&class[k][..nch]) {
                a &= ch.agg[c * aw];
            }
            agg[k] = a;
        }
        for k in 0..n {
            let class = &class[k][..nch];
            let mut a = agg[k];
            if a != 0 {
                let word = a.trailing_zeros() as usize;
                // A false candidate (every aggregate has the word, no
                // rule has it in all chunks) is mostly 0 after the most
                // selective chunks, which come first: the rest of its
                // vectors are not read.
                let mut m = !0u64;
                for (ch, &c) in self.chunks.iter().zip(class) {
                    m &= ch.bits[c * w + word];
                    if m == 0 {
                        break;
                    }
                }
                if m != 0 {
                    out[k] = self.rules[word * 64 + m.trailing_zeros() as usize];
                    continue;
                }
                a &= a - 1;
            }
            out[k] = self.finish(class, a).unwrap_or(u32::MAX);
        }
    }

    /// The scan of one key from aggregate word 0's remaining candidates
    /// `agg` on.
    fn finish(&self, class: &[usize], mut agg: u64) -> Option<u32> {
        let (w, aw) = (self.words, self.agg_words);
        for a in 0..aw {
            if a > 0 {
                agg = !0u64;
                for (ch, &c) in self.chunks.iter().zip(class) {
                    agg &= ch.agg[c * aw + a];
                }
            }
            while agg != 0 {
                let word = a * 64 + agg.trailing_zeros() as usize;
                let mut m = !0u64;
                for (ch, &c) in self.chunks.iter().zip(class) {
                    m &= ch.bits[c * w + word];
                    if m == 0 {
                        break;
                    }
                }
                if m != 0 {
                    return Some(self.rules[word * 64 + m.trailing_zeros() as usize]);
                }
                agg &= agg - 1;
            }
        }
        None
    }
}

/// Keys a bit-vector lookup walks together.
const GROUP: usize = 32;

/// A compiled classifier for one packet family: the DFA where it fits its
/// memory budget (the usual case, measured faster at every size), the
/// bit-vector classifier otherwise.
pub enum Classifier {
    Dfa(DfaSet),
    BitVector(BitVector),
}

impl Classifier {
    pub fn compile(rules: &[(u32, &Rule)]) -> Classifier {
        let mut chunks: Vec<(usize, usize)> = (0..chunk::COUNT)
            .filter(|&c| rules.iter().any(|(_, r)| chunk_range(r, c) != (0, 0xffff)))
            .map(|c| {
                let mut ranges: Vec<(u16, u16)> =
                    rules.iter().map(|(_, r)| chunk_range(r, c)).collect();
                ranges.sort_unstable();
                ranges.dedup();
                (ranges.len(), c)
            })
            .collect();
        // Fields with few distinct ranges first: the DFA's early levels
        // then fan out little, and the address bytes, where rules end and
        // get pruned, come last.
        chunks.sort_unstable();
        let chunks: Vec<usize> = chunks.into_iter().map(|(_, c)| c).collect();

        // One DFA, or the merged bit vectors: on ClassBench's acl1 10 K,
        // the one set here that fits in two DFAs and not in one, the bit
        // vectors classified faster than the two DFAs walked in turn
        // (33-40 against 30-33 Mpps over several runs), and a second DFA's failed build
        // costs seconds. One DFA stays several times faster at 1 K.
        match DfaSet::build(rules, &chunks) {
            Some(d) => Classifier::Dfa(d),
            None => Classifier::BitVector(BitVector::compile(rules)),
        }
    }

    pub fn memory_bytes(&self) -> usize {
        match self {
            Classifier::Dfa(d) => d.memory_bytes(),
            Classifier::BitVector(b) => b.memory_bytes(),
        }
    }

    /// "dfa×N" or "bit-vector", for `show acl` and the benchmark.
    pub fn kind(&self) -> String {
        match self {
            Classifier::Dfa(d) => format!("dfa x{}", d.groups()),
            Classifier::BitVector(_) => "bit-vector".to_string(),
        }
    }

    /// First matching rule of each key (`u32::MAX`: none).
    #[inline]
    pub fn classify_many(&self, keys: &[AclKey], out: &mut [u32]) {
        match self {
            Classifier::Dfa(d) => d.classify_many(keys, out),
            Classifier::BitVector(b) => b.classify_many(keys, out),
        }
    }

    #[inline]
    pub fn classify(&self, key: &AclKey) -> Option<u32> {
        match self {
            Classifier::Dfa(d) => d.classify(key),
            Classifier::BitVector(b) => b.classify(key),
        }
    }
}

/// The inclusive range a rule accepts on one chunk.
pub fn chunk_range(r: &Rule, key: usize) -> (u16, u16) {
    const ANY: (u16, u16) = (0, 0xffff);
    let exact = |v: Option<u16>| v.map_or(ANY, |v| (v, v));
    let prefix = |p: Option<super::rule::IpPrefix>, j: usize| {
        let Some(p) = p else { return ANY };
        let fixed = (p.len as usize).saturating_sub(16 * j).min(16);
        let v = (p.bits >> (112 - 16 * j)) as u16;
        if fixed == 0 {
            return ANY;
        }
        let m = (0xffffu32 << (16 - fixed)) as u16;
        (v & m, (v & m) | !m)
    };
    let range = |p: PortRange| (p.lo, p.hi);
    match key {
        k if (chunk::SRC..chunk::SRC + 8).contains(&k) => prefix(r.src, k - chunk::SRC),
        k if (chunk::DST..chunk::DST + 8).contains(&k) => prefix(r.dst, k - chunk::DST),
        chunk::SPORT => range(r.sport),
        chunk::DPORT => range(r.dport),
        chunk::PROTO => exact(r.proto.map(u16::from)),
        chunk::ETHERTYPE => exact(r.ethertype),
        chunk::VLAN => exact(r.vlan),
        chunk::DOMAIN => exact(r.domain),
        chunk::IN_PORT => exact(r.in_port),
        _ => ANY,
    }
}

/// Sweeps the chunk's value space once: at every range boundary the set
/// of rules covering the value changes, and each distinct set becomes a
/// class.
/// Returns the value → class table, the classes' vectors and their number.
#[allow(clippy::type_complexity)]
fn build_chunk(ranges: &[(u32, u32)], words: usize) -> (Box<[u16]>, Box<[u64]>, usize) {
    let mut events: Vec<(u32, usize, bool)> = Vec::with_capacity(2 * ranges.len());
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        events.push((lo, i, true));
        if hi < 0xffff {
            events.push((hi + 1, i, false));
        }
    }
    events.sort_unstable();
    let last_point = events.last().map_or(0, |e| e.0);
    let table_len = ((last_point + 1) as usize).next_power_of_two().min(1 << 16);
    let mut table = vec![0u16; table_len];
    let mut current = vec![0u64; words];
    let mut classes: HashMap<Vec<u64>, u16> = HashMap::new();
    let mut bits: Vec<u64> = Vec::new();
    let mut e = 0;
    let mut start = 0u32;
    while (start as usize) < table_len {
        while e < events.len() && events[e].0 == start {
            let (_, i, on) = events[e];
            if on {
                current[i / 64] |= 1 << (i % 64);
            } else {
                current[i / 64] &= !(1 << (i % 64));
            }
            e += 1;
        }
        let end = events
            .get(e)
            .map_or(table_len as u32, |ev| ev.0)
            .min(table_len as u32);
        let next_id = classes.len() as u16;
        let id = *classes.entry(current.clone()).or_insert_with(|| {
            bits.extend_from_slice(&current);
            next_id
        });
        table[start as usize..end as usize].fill(id);
        start = end;
    }
    (
        table.into_boxed_slice(),
        bits.into_boxed_slice(),
        classes.len(),
    )
}

/// One bit per word of each class's vector: set where the word is not 0.
fn aggregate(bits: &[u64], classes: usize, words: usize, agg_words: usize) -> Box<[u64]> {
    let mut agg = vec![0u64; classes * agg_words];
    for c in 0..classes {
        for w in 0..words {
            if bits[c * words + w] != 0 {
                agg[c * agg_words + w / 64] |= 1 << (w % 64);
            }
        }
    }
    agg.into_boxed_slice()
}

/// The cross product of `a`'s and `b`'s classes: the table from a pair
/// to its class, the classes' vectors (the ANDs of theirs, one class per
/// distinct AND) and their number. `None` past `max_classes` or u16's
/// class ids.
#[allow(clippy::type_complexity)]
fn cross(
    a: &Chunk,
    b: &Chunk,
    words: usize,
    max_classes: usize,
) -> Option<(Box<[u16]>, Box<[u64]>, usize)> {
    let mut classes: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut bits: Vec<u64> = Vec::new();
    let mut table = vec![0u16; a.classes * b.classes];
    let mut v = vec![0u64; words];
    for ca in 0..a.classes {
        for cb in 0..b.classes {
            let (va, vb) = (
                &a.bits[ca * words..][..words],
                &b.bits[cb * words..][..words],
            );
            for ((x, y), z) in va.iter().zip(vb).zip(&mut v) {
                *z = x & y;
            }
            let next_id = classes.len();
            let id = *classes.entry(v.clone()).or_insert_with(|| {
                bits.extend_from_slice(&v);
                next_id
            });
            if id >= max_classes {
                return None;
            }
            table[ca * b.classes + cb] = u16::try_from(id).ok()?;
        }
    }
    Some((
        table.into_boxed_slice(),
        bits.into_boxed_slice(),
        classes.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::key::Family;
    use crate::acl::linear::first_match;

    fn none(_: &str, _: &str) -> Option<u16> {
        None
    }

    /// Rules over ports and protocol (few classes each, so they merge)
    /// and addresses, and keys across them.
    fn rules_and_keys() -> (Vec<Rule>, Vec<AclKey>) {
        let mut rules = Vec::new();
        for i in 0..300u32 {
            let t = format!(
                "permit src=198.18.{}.0/24 dst=198.19.{}.{}/32 proto={} sport={}-{} dport={}",
                i % 7,
                i % 5,
                i % 250,
                ["tcp", "udp", "icmp"][i as usize % 3],
                1000 + i % 4,
                2000 + i % 9,
                [22, 80, 443, 53][i as usize % 4],
            );
            rules.push(Rule::parse_text(&t, &none).unwrap());
        }
        rules.push(Rule::parse_text("deny dport=80", &none).unwrap());
        let mut keys = Vec::new();
        let mut x = 0x2545_f491u32;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut k = AclKey::EMPTY;
            k.family = Family::V4;
            // Half the keys inside rule j, half anywhere near the rules.
            let j = x % 300;
            let inside = x & 1 == 0;
            let (c, d) = if inside {
                (j % 7, ((j % 5) << 8) | (j % 250))
            } else {
                (x % 8, x % 1536)
            };
            k.set_src(((0xc612_0000 | (c << 8) | ((x >> 8) % 256)) as u128) << 96);
            k.set_dst(((0xc613_0000 | d) as u128) << 96);
            let i = if inside {
                j as usize
            } else {
                (x >> 20) as usize
            };
            k.c[chunk::PROTO] = [6, 17, 1, 47][i % if inside { 3 } else { 4 }];
            k.c[chunk::SPORT] = if inside {
                1000 + (j % 4) as u16
            } else {
                998 + (x >> 22) as u16 % 8
            };
            k.c[chunk::DPORT] = [22, 80, 443, 53, 8080][i % if inside { 4 } else { 5 }];
            keys.push(k);
        }
        (rules, keys)
    }

    fn compile_all(rules: &[Rule]) -> BitVector {
        let indexed: Vec<(u32, &Rule)> = (0..).zip(rules).collect();
        BitVector::compile(&indexed)
    }

    #[test]
    fn merged_chunks_answer_as_the_linear_scan() {
        let (rules, keys) = rules_and_keys();
        let b = compile_all(&rules);
        assert!(!b.products.is_empty(), "ports and protocol merge");
        assert!(b.chunks.len() < b.leaves.len());
        let mut specific = 0;
        let mut out = vec![0u32; keys.len()];
        b.classify_many(&keys, &mut out);
        let mut matched = 0;
        for (k, got) in keys.iter().zip(&out) {
            let want = first_match(&rules, k);
            assert_eq!((*got != u32::MAX).then_some(*got), want, "key {k:?}");
            matched += want.is_some() as usize;
            specific += want.is_some_and(|w| w < 300) as usize;
        }
        assert!(matched > keys.len() / 10, "only {matched} keys matched");
        assert!(
            specific > 50,
            "only {specific} keys matched an address rule"
        );
    }

    #[test]
    fn a_merge_past_its_class_budget_is_refused() {
        let (rules, _) = rules_and_keys();
        let b = compile_all(&rules);
        // A chunk crossed with itself has its own classes again.
        let x = &b.chunks[0];
        assert!(x.classes > 1);
        assert!(cross(x, x, b.words, x.classes - 1).is_none());
        let (_, _, classes) = cross(x, x, b.words, x.classes).unwrap();
        assert_eq!(classes, x.classes);
    }
}
