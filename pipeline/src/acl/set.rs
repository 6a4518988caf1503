//! A compiled ACL: its rules, default action, one classifier per packet
//! family, and per-worker hit counters. A set is immutable once built; a
//! change compiles a new set on the control thread and swaps it in through
//! an [`AclHandle`], so a worker sees the old set or the new one for a
//! whole batch, never a mixture.

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
    v4: Classifier,
    v6: Classifier,
    other: Classifier,
    /// `[worker][rule]`, with the default action at index `rules.len()`.
    hits: Box<[WorkerHits]>,
    /// Counts carried over from the set this one replaced.
    base: Box<[(u64, u64)]>,
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
        let v4 = pick(|f| f.v4);
        let v6 = pick(|f| f.v6);
        let other = pick(|f| f.other);
        let slots = rules.len() + 1;
        let hits = (0..workers.max(1))
            .map(|_| WorkerHits((0..slots).map(|_| Hits::default()).collect()))
            .collect();
        Ok(AclSet {
            name: name.to_string(),
            default,
            base: vec![(0, 0); slots].into_boxed_slice(),
            rules,
            v4,
            v6,
            other,
            hits,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How each family's rules were compiled.
    pub fn kinds(&self) -> [String; 3] {
        [self.v4.kind(), self.v6.kind(), self.other.kind()]
    }

    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes() + self.other.memory_bytes()
    }

    /// Index of the first matching rule.
    #[inline]
    pub fn lookup(&self, key: &AclKey) -> Option<u32> {
        self.classifier(key.family).classify(key)
    }

    /// Index of the first matching rule of each key (`u32::MAX`: none).
    /// Keys of one family go through the classifier together.
    #[inline]
    pub fn lookup_many(&self, keys: &[AclKey], out: &mut [u32]) {
        let Some(first) = keys.first() else { return };
        if keys.iter().all(|k| k.family == first.family) {
            self.classifier(first.family).classify_many(keys, out);
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
    pub fn carry_hits_from(&mut self, old: &AclSet) {
        let mut used = vec![false; old.rules.len()];
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(j) = (0..old.rules.len()).find(|&j| !used[j] && old.rules[j] == *r) {
                used[j] = true;
                self.base[i] = old.hits(j);
            }
        }
        let d = self.rules.len();
        self.base[d] = old.hits(old.rules.len());
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
