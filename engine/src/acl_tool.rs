//! `pollgate acl import` and `pollgate acl bench`: ClassBench rule files in,
//! pollgate config or classifier measurements out, so the same rules and
//! trace drive pollgate and `dpdk-test-acl`.

use anyhow::{bail, Context, Result};
use pollgate_pipeline::acl::classbench;
use pollgate_pipeline::acl::linear::first_match;
use pollgate_pipeline::acl::{AclHandle, AclKey, AclSet, Action, Edit, Rule};
use std::path::Path;
use std::time::Instant;

fn read_rules(path: &Path) -> Result<Vec<Rule>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    classbench::parse_rules(&text).with_context(|| format!("{}", path.display()))
}

/// Prints an `[[acl]]` table holding the file's rules, in order.
pub fn import(path: &Path, name: &str, default: Action) -> Result<String> {
    let rules = read_rules(path)?;
    let mut out = format!(
        "# {} rules imported from {}\n[[acl]]\nname = \"{name}\"\ndefault = \"{}\"\nrules = [\n",
        rules.len(),
        path.display(),
        default.name()
    );
    for r in &rules {
        out += &format!("  \"{}\",\n", r.to_text(&|_, i| i.to_string()));
    }
    out += "]\n";
    Ok(out)
}

pub struct BenchReport {
    pub rules: usize,
    pub trace: usize,
    pub build_ms: f64,
    pub memory_bytes: usize,
    pub lookups: u64,
    pub mpps: f64,
    pub ns_per_pkt: f64,
    pub matched_pct: f64,
    pub verified: usize,
    pub kind: String,
    /// One rule added (at a random place) or deleted, as `ctl acl
    /// add|del` applies them before the background compile: median and
    /// slowest of 40 edits (20 of each), microseconds.
    pub update_us: (f64, f64),
}

impl BenchReport {
    pub fn render(&self, json: bool) -> String {
        if json {
            format!(
                "{{\"rules\":{},\"trace\":{},\"build_ms\":{:.2},\"memory_bytes\":{},\"lookups\":{},\"mpps\":{:.2},\"ns_per_pkt\":{:.2},\"matched_pct\":{:.1},\"verified\":{},\"classifier\":\"{}\",\"update_us_median\":{:.1},\"update_us_max\":{:.1}}}",
                self.rules, self.trace, self.build_ms, self.memory_bytes, self.lookups, self.mpps, self.ns_per_pkt, self.matched_pct, self.verified, self.kind, self.update_us.0, self.update_us.1
            )
        } else {
            format!(
                "acl classify: {} rules, {} trace headers ({:.1} % match a rule)\n  {}: build {:.1} ms, {:.2} MiB\n  {} lookups: {:.2} Mpps on one core, {:.2} ns/pkt\n  {} lookups checked against a linear scan: all agree\n  one rule added or deleted live (before the background compile): median {:.1} us, max {:.1} us",
                self.rules,
                self.trace,
                self.matched_pct,
                self.kind,
                self.build_ms,
                self.memory_bytes as f64 / (1 << 20) as f64,
                self.lookups,
                self.mpps,
                self.ns_per_pkt,
                self.verified,
                self.update_us.0,
                self.update_us.1
            )
        }
    }
}

/// Compiles the rules, checks the classifier against a linear scan on
/// the first `verify` headers, then classifies the trace `iters` times in
/// batches of 64, as a worker would.
pub fn bench(rules: &Path, trace: &Path, iters: u32, verify: usize) -> Result<BenchReport> {
    let rules = read_rules(rules)?;
    let text =
        std::fs::read_to_string(trace).with_context(|| format!("reading {}", trace.display()))?;
    let keys: Vec<AclKey> =
        classbench::parse_trace(&text).with_context(|| format!("{}", trace.display()))?;
    if keys.is_empty() {
        bail!("{}: no trace headers", trace.display());
    }
    let n_rules = rules.len();
    let t = Instant::now();
    let set = AclSet::compile("bench", rules.clone(), Action::Deny, 1)?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut matched = 0usize;
    let verified = verify.min(keys.len());
    for k in &keys[..verified] {
        let want = first_match(&rules, k);
        let got = set.lookup(k);
        if got != want {
            bail!("classifier and linear scan disagree on {k:?}: {got:?} vs {want:?}");
        }
    }
    for k in &keys {
        matched += set.lookup(k).is_some() as usize;
    }
    let mut sink = 0u64;
    let t = Instant::now();
    let mut out = [0u32; 64];
    for _ in 0..iters {
        for chunk in keys.chunks(64) {
            set.lookup_many(std::hint::black_box(chunk), &mut out);
            sink = sink.wrapping_add(out[0] as u64);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    let lookups = iters as u64 * keys.len() as u64;
    let (memory_bytes, kind) = (set.memory_bytes(), set.kinds()[0].clone());
    let update_us = time_updates(set, &rules, &keys)?;
    Ok(BenchReport {
        rules: n_rules,
        trace: keys.len(),
        build_ms,
        memory_bytes,
        lookups,
        mpps: lookups as f64 / secs / 1e6,
        ns_per_pkt: secs * 1e9 / lookups as f64,
        matched_pct: 100.0 * matched as f64 / keys.len() as f64,
        verified,
        kind,
        update_us,
    })
}

/// Times what `ctl acl add` and `acl del` do before they answer: the new
/// list, the set over the compiled classifiers ([`AclSet::edited`]), the
/// swap with the hit counts carried over. Each edited set is checked
/// against a linear scan on part of the trace.
fn time_updates(set: AclSet, rules: &[Rule], keys: &[AclKey]) -> Result<(f64, f64)> {
    let handle = AclHandle::new(set);
    let mut times = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for k in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let t = Instant::now();
        let old = handle.load();
        let mut list = old.rules().to_vec();
        let edit = if k % 2 == 0 {
            // A copy of a rule from elsewhere in the list, somewhere.
            let i = (seed % (list.len() as u64 + 1)) as usize;
            let r = rules
                .get((seed >> 32) as usize % rules.len().max(1))
                .cloned();
            list.insert(i, r.unwrap_or_else(|| Rule::new(Action::Permit)));
            Edit::Insert(i)
        } else {
            let i = (seed % list.len() as u64) as usize;
            list.remove(i);
            Edit::Remove(i)
        };
        let Ok(new) = old.edited(list, edit, 1) else {
            bail!("edit {k} did not fit the overlay");
        };
        handle.replace_edited(new, edit);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        let now = handle.load();
        let list = now.rules();
        for key in keys.iter().step_by(keys.len() / 500 + 1) {
            if now.lookup(key) != first_match(list, key) {
                bail!("edited set and linear scan disagree on {key:?}");
            }
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1]))
}
