//! The fast classifier: a DFA over the key, built by subset construction,
//! as rte_acl's merged tries are. Each level reads one symbol of the key
//! and indexes the current state's transition row, so a lookup is one
//! dependent load per level whatever the number of rules; a batch walks
//! all its packets level by level so their loads overlap.
//!
//! A level's symbol is either one byte of a chunk (256-entry rows) or,
//! for a chunk whose rules cut it into at most 256 equivalence classes
//! (protocol, ports, often the high half of addresses), the chunk's class
//! from a table lookup that does not depend on the state: one level
//! instead of two, with rows as long as the class count.
//!
//! A state is the list of (sub-)rules still able to match, in priority
//! order. Once the first of them matches whatever the remaining bytes are,
//! every later rule is dropped from the state: that pruning is what keeps
//! the state count near the rule count instead of exploding. Where it does
//! grow past the budget the rule set is classified by bit vectors instead
//! (`classifier.rs`); a `DfaSet` still walks its DFAs as groups, each
//! lowest matching index winning, though it is built with one.

use super::classifier::chunk_range;
use super::key::{chunk, AclKey};
use super::rule::Rule;
use std::collections::HashMap;

/// Most states one DFA may have.
pub const MAX_STATES: usize = 65_535;
/// Most transition entries one DFA may have (4 bytes each).
pub const MAX_ENTRIES: usize = 8 << 20;

const NO_RULE: u32 = u32::MAX;

/// Most levels a DFA has: two per key chunk.
const MAX_LEVELS: usize = 2 * chunk::COUNT;

/// Most classes a class level may have (its row length).
const MAX_CLASSES: usize = 1024;

enum Symbol {
    /// One byte of the chunk.
    Byte { shift: u8 },
    /// The chunk's equivalence class; values past the table's end share
    /// its last class.
    Class { table: Box<[u16]> },
}

struct Level {
    chunk: usize,
    symbol: Symbol,
    /// Symbols this level can produce.
    width: usize,
    /// Rows are `1 << stride` entries apart: a shift, not a multiply, on
    /// the lookup's dependency chain.
    stride: u32,
    /// For class levels, a value of each class.
    reps: Vec<u16>,
}

impl Level {
    #[inline(always)]
    fn symbol(&self, k: &AclKey) -> usize {
        let v = k.c[self.chunk];
        match &self.symbol {
            Symbol::Byte { shift } => ((v >> shift) & 0xff) as usize,
            Symbol::Class { table } => table[(v as usize).min(table.len() - 1)] as usize,
        }
    }

    /// The value range a sub-rule range covers on this level, and the
    /// symbol value to test it with.
    fn probe(&self, sym: usize) -> u16 {
        match self.symbol {
            Symbol::Byte { .. } => sym as u16,
            Symbol::Class { .. } => self.reps[sym],
        }
    }
}

pub struct Dfa {
    levels: Vec<Level>,
    /// Rows of all states, level by level, back to back. An entry is the
    /// next state's index within the next level; on the last level, an
    /// index into `results`. u16 entries keep the tables half the size.
    flat: Box<[u16]>,
    /// Where each level's rows start in `flat`.
    base: Box<[u32]>,
    /// Distinct results of the walk (rule index or `NO_RULE`).
    results: Box<[u32]>,
    /// The result when there are no levels at all.
    constant: u32,
}

struct SubRule {
    rule: u32,
    /// Inclusive range per level: byte values on byte levels, chunk
    /// values on class levels.
    ranges: Vec<(u16, u16)>,
    /// First level from which every range is a wildcard.
    wild_from: usize,
}

/// Chooses each chunk's levels: a class level where the rules cut the
/// chunk into at most 256 classes, two byte levels otherwise (one for the
/// protocol, whose high byte is always zero).
fn plan_levels(rules: &[(u32, &Rule)], chunks: &[usize]) -> Vec<Level> {
    let mut levels = Vec::new();
    for &c in chunks {
        let mut ranges: Vec<(u16, u16)> = rules.iter().map(|(_, r)| chunk_range(r, c)).collect();
        ranges.sort_unstable();
        ranges.dedup();
        if let Some((table, reps)) = classes(&ranges) {
            levels.push(Level {
                chunk: c,
                width: reps.len(),
                stride: reps.len().next_power_of_two().trailing_zeros(),
                symbol: Symbol::Class {
                    table: table.into_boxed_slice(),
                },
                reps,
            });
            continue;
        }
        if c != chunk::PROTO {
            levels.push(Level {
                chunk: c,
                symbol: Symbol::Byte { shift: 8 },
                width: 256,
                stride: 8,
                reps: Vec::new(),
            });
        }
        levels.push(Level {
            chunk: c,
            symbol: Symbol::Byte { shift: 0 },
            width: 256,
            stride: 8,
            reps: Vec::new(),
        });
    }
    levels
}

/// Equivalence classes of a chunk's values under `ranges` (values are
/// equivalent when every range holds both or neither): a value→class
/// table and a value of each class, or `None` past 256 classes.
fn classes(ranges: &[(u16, u16)]) -> Option<(Vec<u16>, Vec<u16>)> {
    if ranges.len() > 4 * MAX_CLASSES {
        return None;
    }
    let mut events: Vec<(u32, usize, bool)> = Vec::with_capacity(2 * ranges.len());
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        events.push((lo as u32, i, true));
        events.push((hi as u32 + 1, i, false));
    }
    events.sort_unstable();
    let last = events
        .iter()
        .map(|e| e.0)
        .filter(|&p| p <= 0xffff)
        .max()
        .unwrap_or(0);
    let len = ((last + 1) as usize).next_power_of_two().min(1 << 16);
    let words = ranges.len().div_ceil(64).max(1);
    let mut member = vec![0u64; words];
    let mut ids: HashMap<Vec<u64>, u16> = HashMap::new();
    let mut reps: Vec<u16> = Vec::new();
    let mut table = vec![0u16; len];
    let (mut e, mut start) = (0, 0u32);
    while (start as usize) < len {
        while e < events.len() && events[e].0 == start {
            let (_, i, on) = events[e];
            if on {
                member[i / 64] |= 1 << (i % 64);
            } else {
                member[i / 64] &= !(1 << (i % 64));
            }
            e += 1;
        }
        let end = events.get(e).map_or(len as u32, |ev| ev.0).min(len as u32);
        let id = match ids.get(&member) {
            Some(&id) => id,
            None => {
                if reps.len() == MAX_CLASSES {
                    return None;
                }
                let id = reps.len() as u16;
                ids.insert(member.clone(), id);
                reps.push(start as u16);
                id
            }
        };
        table[start as usize..end as usize].fill(id);
        start = end;
    }
    Some((table, reps))
}

impl Dfa {
    /// Builds one DFA over `rules` (index, rule), or `None` past the
    /// state or memory budget.
    fn build(rules: &[(u32, &Rule)], chunks: &[usize]) -> Option<Dfa> {
        let levels = plan_levels(rules, chunks);
        let subs = expand(rules, &levels);
        let root: Vec<u32> = prune((0..subs.len() as u32).collect(), &subs, 0);
        if levels.is_empty() {
            let constant = root.first().map_or(NO_RULE, |&s| subs[s as usize].rule);
            return Some(Dfa {
                levels,
                flat: Box::new([]),
                base: Box::new([]),
                results: Box::new([]),
                constant,
            });
        }
        // rows[d][i]: next-state index (within depth d + 1) per symbol of
        // state i at depth d.
        let mut rows: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut current: Vec<Vec<u32>> = vec![root];
        let (mut states, mut entries) = (1usize, 0usize);
        for (l, level) in levels.iter().enumerate() {
            let mut ids: HashMap<Vec<u32>, u32> = HashMap::new();
            let mut following: Vec<Vec<u32>> = Vec::new();
            let mut level_rows = Vec::with_capacity(current.len());
            for alive in &current {
                let mut row = Vec::with_capacity(level.width);
                for (lo, hi, set) in transitions(alive, &subs, level, l) {
                    let set = prune(set, &subs, l + 1);
                    let id = *ids.entry(set).or_insert_with_key(|s| {
                        following.push(s.clone());
                        following.len() as u32 - 1
                    });
                    row.extend(std::iter::repeat_n(id, hi - lo + 1));
                }
                entries += row.len();
                level_rows.push(row);
                if states + following.len() > MAX_STATES || entries > MAX_ENTRIES {
                    return None;
                }
            }
            states += following.len();
            rows.push(level_rows);
            current = following;
        }
        let results: Vec<u32> = current
            .iter()
            .map(|alive| alive.first().map_or(NO_RULE, |&s| subs[s as usize].rule))
            .collect();
        Some(minimize(levels, rows, results))
    }

    fn memory_bytes(&self) -> usize {
        2 * self.flat.len()
            + 4 * self.results.len()
            + self
                .levels
                .iter()
                .map(|l| match &l.symbol {
                    Symbol::Class { table } => 2 * table.len(),
                    Symbol::Byte { .. } => 0,
                })
                .sum::<usize>()
    }
}

/// Merges equivalent states level by level from the last (an acyclic DFA
/// minimizes bottom-up): final states by their result, then states whose
/// rows lead to the same merged states. Then lays the rows out back to
/// back, entries pointing at row offsets.
fn minimize(levels: Vec<Level>, rows: Vec<Vec<Vec<u32>>>, results: Vec<u32>) -> Dfa {
    let depth = levels.len();
    // class[d][i]: merged id of state i at depth d; reps[d]: a state of
    // each merged id. Depth `depth` holds the results themselves.
    let mut class: Vec<Vec<u32>> = vec![Vec::new(); depth + 1];
    let mut reps: Vec<Vec<usize>> = vec![Vec::new(); depth + 1];
    class[depth] = results.clone();
    for d in (0..depth).rev() {
        let mut seen: HashMap<Vec<u32>, u32> = HashMap::new();
        let below = &class[d + 1];
        let mut mine = Vec::with_capacity(rows[d].len());
        for (i, row) in rows[d].iter().enumerate() {
            let key: Vec<u32> = row.iter().map(|&t| below[t as usize]).collect();
            let n = reps[d].len() as u32;
            mine.push(*seen.entry(key).or_insert_with(|| {
                reps[d].push(i);
                n
            }));
        }
        class[d] = mine;
    }
    // Final states merged by result: their ids index `results`.
    let mut results: Vec<u32> = Vec::new();
    let mut result_id: HashMap<u32, u16> = HashMap::new();
    for &r in &class[depth] {
        result_id.entry(r).or_insert_with(|| {
            results.push(r);
            results.len() as u16 - 1
        });
    }
    let mut base = Vec::with_capacity(depth);
    let mut at = 0u32;
    for (d, level) in levels.iter().enumerate() {
        base.push(at);
        at += (reps[d].len() << level.stride) as u32;
    }
    let mut flat = Vec::with_capacity(at as usize);
    for d in 0..depth {
        for &i in &reps[d] {
            for &t in &rows[d][i] {
                let merged = class[d + 1][t as usize];
                flat.push(if d + 1 == depth {
                    result_id[&merged]
                } else {
                    merged as u16
                });
            }
            // Padding up to the stride: no symbol reaches it.
            flat.resize(flat.len() + (1 << levels[d].stride) - levels[d].width, 0);
        }
    }
    Dfa {
        levels,
        flat: flat.into_boxed_slice(),
        base: base.into_boxed_slice(),
        results: results.into_boxed_slice(),
        constant: NO_RULE,
    }
}

/// Splits each rule into sub-rules whose every level is a single range:
/// a class level takes the chunk range as it is, byte levels need a port
/// range that crosses high-byte values cut into up to three pieces.
fn expand(rules: &[(u32, &Rule)], levels: &[Level]) -> Vec<SubRule> {
    let mut out = Vec::new();
    for &(idx, r) in rules {
        let mut partial: Vec<Vec<(u16, u16)>> = vec![Vec::new()];
        let mut l = 0;
        while l < levels.len() {
            let lv = &levels[l];
            let (lo, hi) = chunk_range(r, lv.chunk);
            let (pieces, used): (Vec<Vec<(u16, u16)>>, usize) = match lv.symbol {
                Symbol::Class { .. } => (vec![vec![(lo, hi)]], 1),
                Symbol::Byte { shift: 0 } => (vec![vec![(lo & 0xff, hi & 0xff)]], 1),
                Symbol::Byte { .. } => (
                    byte_pieces(lo, hi)
                        .into_iter()
                        .map(|((a, b), (c, d))| vec![(a as u16, b as u16), (c as u16, d as u16)])
                        .collect(),
                    2,
                ),
            };
            partial = partial
                .into_iter()
                .flat_map(|p| {
                    pieces.iter().map(move |piece| {
                        let mut q = p.clone();
                        q.extend_from_slice(piece);
                        q
                    })
                })
                .collect();
            l += used;
        }
        for ranges in partial {
            let wild_from = ranges
                .iter()
                .zip(levels)
                .rposition(|(&(a, b), lv)| a != 0 || b < max_symbol_value(lv))
                .map_or(0, |p| p + 1);
            out.push(SubRule {
                rule: idx,
                ranges,
                wild_from,
            });
        }
    }
    out
}

fn max_symbol_value(lv: &Level) -> u16 {
    match lv.symbol {
        Symbol::Byte { .. } => 0xff,
        Symbol::Class { .. } => 0xffff,
    }
}

/// A 16-bit range as (high-byte range, low-byte range) pairs whose union
/// is exactly the range.
fn byte_pieces(lo: u16, hi: u16) -> Vec<((u8, u8), (u8, u8))> {
    let (lh, ll) = ((lo >> 8) as u8, lo as u8);
    let (hh, hl) = ((hi >> 8) as u8, hi as u8);
    if lh == hh {
        return vec![((lh, lh), (ll, hl))];
    }
    let mut v = Vec::new();
    let mid_lo = if ll == 0 { lh } else { lh + 1 };
    let mid_hi = if hl == 255 { hh } else { hh - 1 };
    if ll != 0 {
        v.push(((lh, lh), (ll, 255)));
    }
    if mid_lo <= mid_hi {
        v.push(((mid_lo, mid_hi), (0, 255)));
    }
    if hl != 255 {
        v.push(((hh, hh), (0, hl)));
    }
    v
}

/// Drops every sub-rule behind the first one that is sure to match from
/// level `l` on (its remaining ranges are all wildcards).
fn prune(mut alive: Vec<u32>, subs: &[SubRule], l: usize) -> Vec<u32> {
    if let Some(p) = alive.iter().position(|&s| subs[s as usize].wild_from <= l) {
        alive.truncate(p + 1);
    }
    alive
}

/// The row of a state at level `l`: runs of symbols (inclusive) and the
/// sub-rules alive after each, covering every symbol in order.
fn transitions(
    alive: &[u32],
    subs: &[SubRule],
    level: &Level,
    l: usize,
) -> Vec<(usize, usize, Vec<u32>)> {
    let keep = |v: u16| -> Vec<u32> {
        alive
            .iter()
            .copied()
            .filter(|&s| {
                let (a, b) = subs[s as usize].ranges[l];
                a <= v && v <= b
            })
            .collect()
    };
    match level.symbol {
        Symbol::Class { .. } => (0..level.width)
            .map(|c| (c, c, keep(level.probe(c))))
            .collect(),
        Symbol::Byte { .. } => {
            let mut cuts: Vec<u16> = vec![0, 256];
            for &s in alive {
                let (a, b) = subs[s as usize].ranges[l];
                cuts.push(a);
                cuts.push(b + 1);
            }
            cuts.sort_unstable();
            cuts.dedup();
            cuts.windows(2)
                .map(|w| {
                    (
                        w[0] as usize,
                        w[1] as usize - 1,
                        keep(level.probe(w[0] as usize)),
                    )
                })
                .collect()
        }
    }
}

/// One or more DFAs over one rule set.
pub struct DfaSet {
    groups: Vec<Dfa>,
}

impl DfaSet {
    /// Builds the DFA for `rules`; `None` when it exceeds the budget (the
    /// classifier then uses bit vectors: splitting the rules over several
    /// DFAs walked in turn measured slower than those).
    pub fn build(rules: &[(u32, &Rule)], chunks: &[usize]) -> Option<DfaSet> {
        Some(DfaSet {
            groups: vec![Dfa::build(rules, chunks)?],
        })
    }

    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    pub fn memory_bytes(&self) -> usize {
        self.groups.iter().map(Dfa::memory_bytes).sum()
    }

    #[inline]
    pub fn classify(&self, key: &AclKey) -> Option<u32> {
        let mut best = NO_RULE;
        for g in &self.groups {
            let mut r = g.constant;
            if !g.levels.is_empty() {
                let mut id = 0usize;
                for (lv, &base) in g.levels.iter().zip(g.base.iter()) {
                    id = g.flat[base as usize + (id << lv.stride) + lv.symbol(key)] as usize;
                }
                r = g.results[id];
            }
            best = best.min(r);
        }
        (best != NO_RULE).then_some(best)
    }

    /// Classifies many keys (`u32::MAX`: no match), walking them level by
    /// level together so the loads of different keys overlap.
    #[inline]
    pub fn classify_many(&self, keys: &[AclKey], out: &mut [u32]) {
        const LANES: usize = 16;
        // Zeroed once: each group writes the rows of its levels for every
        // lane it walks before reading them. Lanes past a short last
        // chunk are zeroed again below, as they were before any group.
        let mut off = [[0u32; LANES]; MAX_LEVELS];
        for (ks, os) in keys.chunks(LANES).zip(out.chunks_mut(LANES)) {
            os.fill(NO_RULE);
            if ks.len() < LANES {
                for row in off.iter_mut() {
                    row[ks.len()..].fill(0);
                }
            }
            for g in &self.groups {
                if g.levels.is_empty() {
                    for o in os.iter_mut() {
                        *o = (*o).min(g.constant);
                    }
                    continue;
                }
                // Each level's row base plus symbol does not depend on the
                // state: work it out for all lanes first, so the walk
                // below is one add, shift and load per step.
                for ((lv, &base), row) in g.levels.iter().zip(g.base.iter()).zip(off.iter_mut()) {
                    match &lv.symbol {
                        Symbol::Byte { shift } => {
                            for (o, k) in row.iter_mut().zip(ks) {
                                *o = base + ((k.c[lv.chunk] >> shift) & 0xff) as u32;
                            }
                        }
                        Symbol::Class { table } => {
                            let last = table.len() - 1;
                            for (o, k) in row.iter_mut().zip(ks) {
                                *o = base + table[(k.c[lv.chunk] as usize).min(last)] as u32;
                            }
                        }
                    }
                }
                let mut id = [0usize; LANES];
                for (lv, row) in g.levels.iter().zip(off.iter()) {
                    let stride = lv.stride;
                    for (a, &o) in id.iter_mut().zip(row.iter()) {
                        *a = g.flat[o as usize + (*a << stride)] as usize;
                    }
                }
                let at: [u32; LANES] =
                    std::array::from_fn(|i| g.results.get(id[i]).copied().unwrap_or(NO_RULE));
                for (o, &a) in os.iter_mut().zip(&at) {
                    *o = (*o).min(a);
                }
            }
        }
    }
}
