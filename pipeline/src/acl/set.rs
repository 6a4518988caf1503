//! A compiled ACL: its rules, default action, one classifier per packet
//! family, and per-worker hit counters. A set is immutable once built; a
//! change makes a new set on the control thread and swaps it in through
//! an [`AclHandle`], so a worker sees the old set or the new one for a
//! whole batch, never a mixture.
//!
//! Compiling thousands of rules takes seconds, which one `acl add` under
//! a live policy cannot wait for. So an edit of one rule makes a set that
//! shares the old set's classifiers and carries the difference as an
//! overlay ([`AclSet::edited`], microseconds): the added rules, checked
//! in order after the classifier's answer, and which compiled rules are
//! gone. The control thread compiles the whole list in the background
//! and swaps that in when it is done; edits made while it compiled are
//! carried onto the new classifiers as a fresh overlay
//! ([`AclSet::rebased`]), so a steady stream of edits still sees its
//! compiles land.

use super::classifier::{Classifier, MAX_RULES};
use super::key::{AclKey, Family};
use super::rule::{Action, Rule};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    #[error("ACL `{name}` has {rules} rules; at most {max} are allowed")]
    TooManyRules {
        name: String,
        rules: usize,
        max: usize,
    },
    #[error("ACL `{name}` rule {index}: {source}")]
    Rule {
        name: String,
        index: usize,
        source: super::rule::RuleError,
    },
}

/// Packets and bytes a rule (or the default action) decided.
#[derive(Default)]
pub struct Hits {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

/// One worker's counters, on cache lines of their own.
#[repr(align(64))]
struct WorkerHits(Box<[Hits]>);

pub struct AclSet {
    pub name: String,
    pub default: Action,
    rules: Vec<Rule>,
    v4: Arc<Classifier>,
    v6: Arc<Classifier>,
    other: Arc<Classifier>,
    /// Edits since the classifiers were compiled.
    overlay: Option<Overlay>,
    /// `[worker][rule]`, with the default action at index `rules.len()`.
    hits: Box<[WorkerHits]>,
    /// Counts carried over from the set this one replaced.
    base: Box<[(u64, u64)]>,
}

/// What an [`AclSet`] has changed since its classifiers were compiled.
#[derive(Clone)]
struct Overlay {
    /// Compiled rule index -> index in `rules` (`GONE`: deleted since).
    map: Vec<u32>,
    /// Indices in `rules` of the rules added since, ascending.
    added: Vec<u32>,
    /// The edits since, in order: a set compiled from an earlier list of
    /// the same chain takes the ones after it ([`AclSet::rebased`]).
    edits: Vec<Edit>,
}

impl Overlay {
    fn identity(n: usize) -> Overlay {
        Overlay {
            map: (0..n as u32).collect(),
            added: Vec::new(),
            edits: Vec::new(),
        }
    }

    /// Follows one edit of a list of `n_old` rules: the list's new
    /// length, or `None` if the edit does not fit it (an index past its
    /// end).
    fn apply(&mut self, edit: Edit, n_old: usize) -> Option<usize> {
        let n_new = match edit {
            Edit::Insert(i) if i <= n_old => {
                let i = i as u32;
                for c in self.map.iter_mut().chain(self.added.iter_mut()) {
                    if *c != GONE && *c >= i {
                        *c += 1;
                    }
                }
                let at = self.added.partition_point(|&a| a < i);
                self.added.insert(at, i);
                n_old + 1
            }
            Edit::Remove(i) if i < n_old => {
                let i = i as u32;
                self.added.retain(|&a| a != i);
                for c in self.map.iter_mut().chain(self.added.iter_mut()) {
                    if *c == i {
                        *c = GONE;
                    } else if *c != GONE && *c > i {
                        *c -= 1;
                    }
                }
                n_old - 1
            }
            _ => return None,
        };
        self.edits.push(edit);
        Some(n_new)
    }
}

const GONE: u32 = u32::MAX;

/// Rules an overlay may carry before an edit compiles the whole list
/// itself: each is a per-packet check.
pub const MAX_OVERLAY: usize = 32;

/// One rule added or removed, by its index in the new or old list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Insert(usize),
    Remove(usize),
}

/// What the ACL decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The matching rule, or `None` for the default action.
    pub rule: Option<u32>,
    pub stateful: bool,
}

impl AclSet {
    pub fn compile(
        name: &str,
        rules: Vec<Rule>,
        default: Action,
        workers: usize,
    ) -> Result<AclSet, AclError> {
        if rules.len() > MAX_RULES {
            return Err(AclError::TooManyRules {
                name: name.to_string(),
                rules: rules.len(),
                max: MAX_RULES,
            });
        }
        for (index, r) in rules.iter().enumerate() {
            r.validate().map_err(|source| AclError::Rule {
                name: name.to_string(),
                index,
                source,
            })?;
        }
        let pick = |f: fn(&super::rule::Families) -> bool| {
            let subset: Vec<(u32, &Rule)> = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| f(&r.families()))
                .map(|(i, r)| (i as u32, r))
                .collect();
            Classifier::compile(&subset)
        };
        let v4 = Arc::new(pick(|f| f.v4));
        let v6 = Arc::new(pick(|f| f.v6));
        let other = Arc::new(pick(|f| f.other));
        let hits = worker_hits(workers, rules.len());
        Ok(AclSet {
            name: name.to_string(),
            default,
            base: vec![(0, 0); rules.len() + 1].into_boxed_slice(),
            rules,
            v4,
            v6,
            other,
            overlay: None,
            hits,
        })
    }

    /// This set with one rule added or removed, without compiling:
    /// `rules` is the new list, `edit` what changed from this set's.
    /// `Err` with `rules` back when the edit does not fit an overlay (too
    /// many pending rules, or an edit that does not match the lists):
    /// compile them then (handed back, so a caller need not copy the
    /// list ahead for that case).
    pub fn edited(
        &self,
        rules: Vec<Rule>,
        edit: Edit,
        workers: usize,
    ) -> Result<AclSet, Vec<Rule>> {
        let (n_old, n_new) = (self.rules.len(), rules.len());
        let mut o = self
            .overlay
            .clone()
            .unwrap_or_else(|| Overlay::identity(n_old));
        let valid = match edit {
            Edit::Insert(i) => rules.get(i).is_some_and(|r| r.validate().is_ok()),
            Edit::Remove(_) => true,
        };
        if !valid || o.apply(edit, n_old) != Some(n_new) || o.added.len() > MAX_OVERLAY {
            return Err(rules);
        }
        Ok(AclSet {
            name: self.name.clone(),
            default: self.default,
            base: vec![(0, 0); n_new + 1].into_boxed_slice(),
            hits: worker_hits(workers, n_new),
            rules,
            v4: self.v4.clone(),
            v6: self.v6.clone(),
            other: self.other.clone(),
            overlay: Some(o),
        })
    }

    /// This set's rules on `compiled`'s classifiers, which were compiled
    /// from `from`'s rules: the edits this set made after `from` become
    /// the overlay. What the background compile swaps in when edits came
    /// while it compiled, where it would otherwise start again and, under
    /// edits as frequent as its compiles are long, never land. `None`
    /// when this set is not an edit of `from` on the same classifiers, or
    /// when the edits since overflow an overlay.
    pub fn rebased(&self, compiled: &AclSet, from: &AclSet, workers: usize) -> Option<AclSet> {
        let (Some(mine), Some(theirs)) = (&self.overlay, &from.overlay) else {
            return None;
        };
        let same_base = Arc::ptr_eq(&self.v4, &from.v4)
            && Arc::ptr_eq(&self.v6, &from.v6)
            && Arc::ptr_eq(&self.other, &from.other);
        if !same_base
            || !mine.edits.starts_with(&theirs.edits)
            || compiled.rules != from.rules
            || compiled.overlay.is_some()
        {
            return None;
        }
        let mut o = Overlay::identity(compiled.rules.len());
        let mut n = compiled.rules.len();
        for &e in &mine.edits[theirs.edits.len()..] {
            n = o.apply(e, n)?;
        }
        if n != self.rules.len() || o.added.len() > MAX_OVERLAY {
            return None;
        }
        Some(AclSet {
            name: self.name.clone(),
            default: self.default,
            base: vec![(0, 0); n + 1].into_boxed_slice(),
            hits: worker_hits(workers, n),
            rules: self.rules.clone(),
            v4: compiled.v4.clone(),
            v6: compiled.v6.clone(),
            other: compiled.other.clone(),
            overlay: (!o.edits.is_empty()).then_some(o),
        })
    }

    /// Rules added since the classifiers were compiled (checked one by
    /// one per packet until the background compile replaces this set).
    pub fn pending(&self) -> usize {
        self.overlay.as_ref().map_or(0, |o| o.added.len())
    }

    /// Whether the classifiers know every rule.
    pub fn is_compiled(&self) -> bool {
        self.overlay.is_none()
    }

    /// The first match among the current rules, given the classifier's
    /// answer `compiled` (an index among the rules it was compiled from).
    #[inline]
    fn resolve(&self, key: &AclKey, compiled: Option<u32>) -> Option<u32> {
        let Some(o) = &self.overlay else {
            return compiled;
        };
        let best = match compiled {
            Some(c) => match o.map.get(c as usize) {
                // The compiled first match is gone: what matches first
                // now may be any later rule. Rare, and only until the
                // background compile lands.
                Some(&GONE) | None => return super::linear::first_match(&self.rules, key),
                Some(&cur) => Some(cur),
            },
            None => None,
        };
        for &a in &o.added {
            if best.is_some_and(|b| a > b) {
                break;
            }
            if self.rules[a as usize].matches(key) {
                return Some(a);
            }
        }
        best
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How each family's rules were compiled (and how many rules wait
    /// for the background compile).
    pub fn kinds(&self) -> [String; 3] {
        let p = match self.pending() {
            0 if self.overlay.is_none() => String::new(),
            n => format!(" + {n} pending"),
        };
        [
            self.v4.kind() + &p,
            self.v6.kind() + &p,
            self.other.kind() + &p,
        ]
    }

    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes() + self.other.memory_bytes()
    }

    /// Index of the first matching rule.
    #[inline]
    pub fn lookup(&self, key: &AclKey) -> Option<u32> {
        let c = self.classifier(key.family).classify(key);
        self.resolve(key, c)
    }

    /// Index of the first matching rule of each key (`u32::MAX`: none).
    /// Keys of one family go through the classifier together.
    #[inline]
    pub fn lookup_many(&self, keys: &[AclKey], out: &mut [u32]) {
        let Some(first) = keys.first() else { return };
        if keys.iter().all(|k| k.family == first.family) {
            self.classifier(first.family).classify_many(keys, out);
            if self.overlay.is_some() {
                for (o, k) in out.iter_mut().zip(keys) {
                    let c = (*o != u32::MAX).then_some(*o);
                    *o = self.resolve(k, c).unwrap_or(u32::MAX);
                }
            }
        } else {
            for (o, k) in out.iter_mut().zip(keys) {
                *o = self.lookup(k).unwrap_or(u32::MAX);
            }
        }
    }

    #[inline]
    fn classifier(&self, f: Family) -> &Classifier {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
            Family::Other => &self.other,
        }
    }

    /// The decision for a rule index as `lookup` gives it.
    #[inline]
    pub fn decision(&self, rule: Option<u32>) -> Decision {
        match rule.and_then(|i| self.rules.get(i as usize).map(|r| (i, r))) {
            Some((i, r)) => Decision {
                action: r.action,
                rule: Some(i),
                stateful: r.stateful,
            },
            None => Decision {
                action: self.default,
                rule: None,
                stateful: false,
            },
        }
    }

    #[inline]
    pub fn decide(&self, key: &AclKey) -> Decision {
        self.decision(self.lookup(key))
    }

    /// Counts a decision on `worker`'s own counters: a plain load and
    /// store, since nobody else writes them.
    #[inline]
    pub fn count(&self, worker: usize, d: &Decision, bytes: u32) {
        let slot = d.rule.map_or(self.rules.len(), |i| i as usize);
        if let Some(h) = self.hits.get(worker).and_then(|w| w.0.get(slot)) {
            bump(&h.packets, 1);
            bump(&h.bytes, bytes as u64);
        }
    }

    /// (packets, bytes) of rule `i`, or of the default action for
    /// `i == rules().len()`, summed over workers.
    pub fn hits(&self, i: usize) -> (u64, u64) {
        let (mut p, mut b) = self.base.get(i).copied().unwrap_or_default();
        for w in self.hits.iter() {
            if let Some(h) = w.0.get(i) {
                p += h.packets.load(Ordering::Relaxed);
                b += h.bytes.load(Ordering::Relaxed);
            }
        }
        (p, b)
    }

    /// Starts this set's counters where `old`'s left off, for each rule
    /// both sets have (matched by content, in order), and for the default.
    /// Linear: a rule is looked for where the last match leaves off, a
    /// few places on (an edit shifts the rest by one), then everywhere.
    pub fn carry_hits_from(&mut self, old: &AclSet) {
        let mut used = vec![false; old.rules.len()];
        let mut next = 0usize;
        for (i, r) in self.rules.iter().enumerate() {
            let near =
                (next..old.rules.len().min(next + 4)).find(|&j| !used[j] && old.rules[j] == *r);
            let found =
                near.or_else(|| (0..old.rules.len()).find(|&j| !used[j] && old.rules[j] == *r));
            if let Some(j) = found {
                used[j] = true;
                next = j + 1;
                self.base[i] = old.hits(j);
            }
        }
        let d = self.rules.len();
        self.base[d] = old.hits(old.rules.len());
    }

    /// `carry_hits_from` for a set of the same list as `old`'s (one
    /// [`rebased`](Self::rebased) from it): rule i's counts are rule i's.
    pub fn carry_hits_same(&mut self, old: &AclSet) {
        for (i, b) in self.base.iter_mut().enumerate() {
            *b = old.hits(i);
        }
    }

    /// `carry_hits_from` for a set [`edited`](Self::edited) from `old`:
    /// the edit says where each rule was, so no rule is compared (that
    /// comparison was a fifth to a third of an edit's time at 10 K rules).
    pub fn carry_hits_across(&mut self, old: &AclSet, edit: Edit) {
        let n = self.rules.len();
        for i in 0..n {
            let j = match edit {
                Edit::Insert(at) if i == at => continue,
                Edit::Insert(at) if i > at => i - 1,
                Edit::Remove(at) if i >= at => i + 1,
                _ => i,
            };
            if let Some(b) = self.base.get_mut(i) {
                *b = old.hits(j);
            }
        }
        if let Some(b) = self.base.get_mut(n) {
            *b = old.hits(old.rules.len());
        }
    }

    pub fn clear_hits(&self) {
        // Workers may add to a counter while it is zeroed; the count it
        // loses is one burst at most, as with `clear stats` everywhere.
        for w in self.hits.iter() {
            for h in w.0.iter() {
                h.packets.store(0, Ordering::Relaxed);
                h.bytes.store(0, Ordering::Relaxed);
            }
        }
    }
}

fn worker_hits(workers: usize, rules: usize) -> Box<[WorkerHits]> {
    (0..workers.max(1))
        .map(|_| WorkerHits((0..rules + 1).map(|_| Hits::default()).collect()))
        .collect()
}

#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// The live ACL of one name: the control thread replaces it, workers pick
/// the new set up at their next batch.
pub struct AclHandle {
    current: ArcSwap<AclSet>,
    generation: AtomicU64,
}

impl AclHandle {
    pub fn new(set: AclSet) -> Arc<AclHandle> {
        Arc::new(AclHandle {
            current: ArcSwap::from_pointee(set),
            generation: AtomicU64::new(0),
        })
    }

    pub fn load(&self) -> Arc<AclSet> {
        self.current.load_full()
    }

    /// Swaps in `set`, carrying the hit counts of unchanged rules over.
    pub fn replace(&self, mut set: AclSet) {
        set.carry_hits_from(&self.current.load());
        self.publish(set);
    }

    /// `replace` for a set [`AclSet::edited`] made from the current one
    /// by `edit`: the counts follow the edit instead of a comparison of
    /// every rule.
    pub fn replace_edited(&self, mut set: AclSet, edit: Edit) {
        set.carry_hits_across(&self.current.load(), edit);
        self.publish(set);
    }

    /// `replace` for a set [`AclSet::rebased`] from `expected`, if
    /// `expected` is still the current set: a set swapped in meanwhile
    /// (a `reload`, which holds no control's lock) wins. The same list,
    /// so each rule keeps its own counts without a comparison.
    pub fn replace_rebased(&self, expected: &Arc<AclSet>, mut set: AclSet) -> bool {
        set.carry_hits_same(expected);
        let was = self.current.compare_and_swap(expected, Arc::new(set));
        let swapped = Arc::ptr_eq(&was, expected);
        if swapped {
            self.generation.fetch_add(1, Ordering::Release);
        }
        swapped
    }

    fn publish(&self, set: AclSet) {
        self.current.store(Arc::new(set));
        // After the store: a worker that sees the new generation loads a
        // set at least this new.
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// A worker's cached reference to a live ACL: one atomic load per batch
/// to notice a replacement, none per packet.
pub struct AclView {
    handle: Arc<AclHandle>,
    set: Arc<AclSet>,
    generation: u64,
}

impl AclView {
    pub fn new(handle: Arc<AclHandle>) -> Self {
        let generation = handle.generation.load(Ordering::Acquire);
        let set = handle.load();
        AclView {
            handle,
            set,
            generation,
        }
    }

    #[inline]
    pub fn refresh(&mut self) {
        let g = self.handle.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.generation = g;
            self.set = self.handle.load();
        }
    }

    #[inline]
    pub fn set(&self) -> &AclSet {
        &self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(t: &str) -> Rule {
        Rule::parse_text(t, &|_, _| None).unwrap()
    }

    /// `n` rules permitting ports 1000.. and a handle on them compiled.
    fn ports_handle(n: u16) -> (Vec<Rule>, Arc<AclHandle>) {
        let list: Vec<Rule> = (0..n)
            .map(|i| rule(&format!("permit dport={}", 1000 + i)))
            .collect();
        let handle = AclHandle::new(AclSet::compile("t", list.clone(), Action::Deny, 2).unwrap());
        (list, handle)
    }

    /// A compile that lands on its edits keeps each rule's counts, and
    /// loses to a set swapped in meanwhile (a reload's).
    #[test]
    fn a_rebased_set_keeps_each_rules_hits_and_yields_to_a_newer_set() {
        let (list, handle) = ports_handle(4);
        let base = handle.load();
        let mut snap_list = list.clone();
        snap_list.insert(1, rule("deny dport=7"));
        let edit = |from: &AclSet, list: &[Rule], e: Edit| {
            handle.replace_edited(from.edited(list.to_vec(), e, 2).ok().unwrap(), e);
            handle.load()
        };
        let snap = edit(&base, &snap_list, Edit::Insert(1));
        let compiled = AclSet::compile("t", snap_list.clone(), Action::Deny, 2).unwrap();
        let mut now_list = snap_list.clone();
        now_list.remove(3);
        let now = edit(&snap, &now_list, Edit::Remove(3));
        for i in 0..now_list.len() as u32 {
            for _ in 0..=i {
                now.count(0, &now.decision(Some(i)), 10);
            }
        }
        let rebased = now.rebased(&compiled, &snap, 2).unwrap();
        assert!(
            rebased.pending() == 0 && !rebased.is_compiled(),
            "a removal rides on it"
        );
        assert!(handle.replace_rebased(&now, rebased));
        let landed = handle.load();
        for i in 0..now_list.len() {
            assert_eq!(
                landed.hits(i),
                ((i + 1) as u64, 10 * (i + 1) as u64),
                "rule {i}"
            );
        }
        // Swapped in behind the compiler's back: its rebase is refused.
        let rebased = landed.rebased(&compiled, &snap, 2);
        assert!(rebased.is_none(), "a landed set is on other classifiers");
        let stale = now.rebased(&compiled, &snap, 2).unwrap();
        assert!(!handle.replace_rebased(&now, stale));
        assert!(Arc::ptr_eq(&handle.load(), &landed));
    }

    #[test]
    fn an_edit_carries_each_rules_hits_to_where_the_rule_went() {
        let (list, handle) = ports_handle(6);
        let old = handle.load();
        for i in 0..6u32 {
            for _ in 0..=i {
                old.count(i as usize % 2, &old.decision(Some(i)), 100);
            }
        }
        old.count(1, &old.decision(None), 60);
        for edit in [
            Edit::Insert(2),
            Edit::Insert(6),
            Edit::Remove(0),
            Edit::Remove(5),
        ] {
            let mut new = list.clone();
            match edit {
                Edit::Insert(i) => new.insert(i, rule("deny dport=7")),
                Edit::Remove(i) => drop(new.remove(i)),
            }
            let mut by_edit = old.edited(new.clone(), edit, 2).ok().unwrap();
            by_edit.carry_hits_across(&old, edit);
            // What matching every rule by value gives.
            let mut by_value = old.edited(new.clone(), edit, 2).ok().unwrap();
            by_value.carry_hits_from(&old);
            for i in 0..=new.len() {
                assert_eq!(by_edit.hits(i), by_value.hits(i), "{edit:?}, rule {i}");
            }
            if let Edit::Insert(i) = edit {
                assert_eq!(by_edit.hits(i), (0, 0));
            }
            assert_eq!(by_edit.hits(new.len()), (1, 60), "the default's count");
        }
        // Through the handle: rule 3 (4 hits) becomes rule 4.
        let mut new = list.clone();
        new.insert(1, rule("deny dport=7"));
        handle.replace_edited(
            old.edited(new, Edit::Insert(1), 2).ok().unwrap(),
            Edit::Insert(1),
        );
        assert_eq!(handle.load().hits(4), (4, 400));
    }
}
