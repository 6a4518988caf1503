//! The ACLs as `pollgate ctl` sees them: `show acl`, `acl add`, `acl del`.
//! An edit of one rule swaps in, at once, a set that carries it as an
//! overlay on the compiled classifiers (`AclSet::edited`: microseconds
//! whatever the size of the list); a thread of its own then compiles the
//! whole list and swaps that in, with the edits that came while it
//! compiled as the new set's overlay (`AclSet::rebased`). Workers pick
//! each set up at their next batch.

use crate::config::Topology;
use pollgate_pipeline::acl::classifier::MAX_RULES;
use pollgate_pipeline::acl::{AclHandle, AclSet, Edit, FlowCounters, Rule};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};

pub struct AclControl {
    names: Vec<String>,
    handles: Vec<Arc<AclHandle>>,
    flows: Vec<Arc<FlowCounters>>,
    /// Where each ACL is attached, for `show acl`.
    attached: Vec<Vec<String>>,
    ports: Vec<String>,
    domains: Vec<String>,
    workers: usize,
    /// (VNI, domain) of VNI-mapped bridges, for `vni=` in rules.
    vnis: Vec<(u32, u16)>,
    /// One update at a time: each is a read-modify-write of a rule list.
    update: Arc<Mutex<()>>,
    /// ACLs whose overlay the background compiler should fold in; the
    /// compiler's thread starts with the first edit that needs it (a
    /// control is made anew at every topology change).
    compile: Mutex<Option<mpsc::Sender<usize>>>,
}

impl AclControl {
    pub fn new(
        topo: &Topology,
        handles: Vec<Arc<AclHandle>>,
        flows: Vec<Arc<FlowCounters>>,
    ) -> Self {
        let at = &topo.acl_attach;
        let ports: Vec<String> = topo.ports.iter().map(|p| p.name.clone()).collect();
        let domains: Vec<String> = topo.bridges.iter().map(|b| b.name.clone()).collect();
        let places = [
            (&at.port_in, "port", "in", &ports),
            (&at.port_out, "port", "out", &ports),
            (&at.domain_in, "bridge", "in", &domains),
            (&at.domain_out, "bridge", "out", &domains),
        ];
        let attached = (0..topo.acls.len())
            .map(|a| {
                let mut v = Vec::new();
                for (list, kind, dir, names) in places {
                    for (i, x) in list.iter().enumerate() {
                        if *x == Some(a) {
                            v.push(format!("{kind} {} {dir}", names[i]));
                        }
                    }
                }
                v
            })
            .collect();
        AclControl {
            names: topo.acls.iter().map(|a| a.name.clone()).collect(),
            compile: Mutex::new(None),
            handles,
            flows,
            attached,
            ports,
            domains,
            workers: topo.workers.len(),
            vnis: topo
                .vtep
                .as_ref()
                .map(|v| v.vnis.iter().map(|x| (x.0, x.1 as u16)).collect())
                .unwrap_or_default(),
            update: Arc::new(Mutex::new(())),
        }
    }

    fn find(&self, name: &str) -> Result<usize, String> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("no ACL named {name:?} (ACLs: {})", self.names.join(" ")))
    }

    fn id_of(&self, kind: &str, name: &str) -> Option<u16> {
        if kind == "vni" {
            let v: u32 = name.parse().ok()?;
            return self.vnis.iter().find(|x| x.0 == v).map(|x| x.1);
        }
        let list = if kind == "port" {
            &self.ports
        } else {
            &self.domains
        };
        list.iter().position(|n| n == name).map(|i| i as u16)
    }

    fn name_of(&self, kind: &str, id: u16) -> String {
        let list = if kind == "port" {
            &self.ports
        } else {
            &self.domains
        };
        list.get(id as usize)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// `show acl [NAME]`: rules with their hit counters, then the flow
    /// tables.
    pub fn show(&self, only: Option<&str>, json: bool) -> Result<String, String> {
        if let Some(n) = only {
            self.find(n)?;
        }
        let mut out = String::new();
        let mut js = Vec::new();
        for (a, h) in self.handles.iter().enumerate() {
            if only.is_some_and(|n| n != self.names[a]) {
                continue;
            }
            let set = h.load();
            let rules: Vec<(String, u64, u64)> = set
                .rules()
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let (p, b) = set.hits(i);
                    (r.to_text(&|k, id| self.name_of(k, id)), p, b)
                })
                .collect();
            let (dp, db) = set.hits(set.rules().len());
            let kinds = set.kinds();
            if json {
                js.push(serde_json::json!({
                    "name": self.names[a],
                    "default": set.default.name(),
                    "attached": self.attached[a],
                    "classifier": {"ipv4": kinds[0], "ipv6": kinds[1], "other": kinds[2]},
                    "memory_bytes": set.memory_bytes(),
                    "rules": rules.iter().enumerate().map(|(i, (t, p, b))| serde_json::json!({"index": i, "rule": t, "packets": p, "bytes": b})).collect::<Vec<_>>(),
                    "default_hits": {"packets": dp, "bytes": db},
                }));
                continue;
            }
            out += &format!(
                "acl {} (default {}; on {}; ipv4 {}, ipv6 {}, {} KiB)\n",
                self.names[a],
                set.default.name(),
                if self.attached[a].is_empty() {
                    "nothing".to_string()
                } else {
                    self.attached[a].join(", ")
                },
                kinds[0],
                kinds[1],
                set.memory_bytes() / 1024
            );
            out += &format!("  {:>5} {:>14} {:>16}  rule\n", "#", "packets", "bytes");
            for (i, (t, p, b)) in rules.iter().enumerate() {
                out += &format!("  {i:>5} {p:>14} {b:>16}  {t}\n");
            }
            out += &format!(
                "  {:>5} {dp:>14} {db:>16}  {} (default)\n",
                "-",
                set.default.name()
            );
        }
        let flows: Vec<serde_json::Value> = self
            .flows
            .iter()
            .enumerate()
            .map(|(w, f)| {
                serde_json::json!({
                    "worker": w,
                    "created": f.created.load(Ordering::Relaxed),
                    "reflexive_permits": f.reflexive_permits.load(Ordering::Relaxed),
                    "table_full": f.table_full.load(Ordering::Relaxed),
                    "occupied": f.occupied.load(Ordering::Relaxed),
                    "capacity": f.capacity.load(Ordering::Relaxed),
                })
            })
            .collect();
        if json {
            return Ok(serde_json::json!({"acls": js, "flows": flows}).to_string());
        }
        for f in &flows {
            out += &format!(
                "flows worker {}: {} created, {} reflexive permits, {} table full, {}/{} slots used\n",
                f["worker"], f["created"], f["reflexive_permits"], f["table_full"], f["occupied"], f["capacity"]
            );
        }
        Ok(out)
    }

    /// (ACL name, rule index or `None` for the default, packets) of every
    /// rule, for metrics.
    pub fn rule_packets(&self) -> Vec<(String, Option<usize>, u64)> {
        let mut out = Vec::new();
        for (name, h) in self.names.iter().zip(&self.handles) {
            let set = h.load();
            let n = set.rules().len();
            for i in 0..=n {
                out.push((name.clone(), (i < n).then_some(i), set.hits(i).0));
            }
        }
        out
    }

    /// Replaces ACL `a`'s rules with `edit(rules)`: at once as an overlay
    /// on the compiled set, the whole list compiled in the background; or
    /// compiled here when the overlay is full.
    fn edit(
        &self,
        name: &str,
        edit: impl FnOnce(&mut Vec<Rule>) -> Result<(String, Edit), String>,
    ) -> Result<String, String> {
        let a = self.find(name)?;
        let _one = self
            .update
            .lock()
            .map_err(|_| "internal error".to_string())?;
        let old = self.handles[a].load();
        let mut rules = old.rules().to_vec();
        let (msg, change) = edit(&mut rules)?;
        let t = std::time::Instant::now();
        let quick = if rules.len() <= MAX_RULES {
            old.edited(rules, change, self.workers)
        } else {
            Err(rules)
        };
        let (set, overlaid) = match quick {
            Ok(set) => (set, true),
            Err(rules) => (
                AclSet::compile(name, rules, old.default, self.workers)
                    .map_err(|e| e.to_string())?,
                false,
            ),
        };
        let how = if overlaid { "applied" } else { "compiled" };
        let kinds = set.kinds();
        let pending = !set.is_compiled();
        // Under `update`: the handle still holds `old`, the set edited.
        if overlaid {
            self.handles[a].replace_edited(set, change);
        } else {
            self.handles[a].replace(set);
        }
        if pending {
            if let Ok(mut tx) = self.compile.lock() {
                let tx = tx.get_or_insert_with(|| {
                    let (tx, rx) = mpsc::channel();
                    let (handles, update) = (self.handles.clone(), self.update.clone());
                    let workers = self.workers;
                    // Ends when the control goes (its sender with it).
                    let _ = std::thread::Builder::new()
                        .name("pg-acl-compile".into())
                        .spawn(move || compile_in_background(rx, handles, update, workers));
                    tx
                });
                let _ = tx.send(a);
            }
        }
        Ok(format!(
            "{msg}; {how} in {:.3} ms ({}){}\n",
            t.elapsed().as_secs_f64() * 1e3,
            kinds[0],
            if pending {
                "; compiling the whole list in the background"
            } else {
                ""
            }
        ))
    }

    /// `acl add NAME [at N] RULE…`: at the end, or before rule N.
    pub fn add(&self, name: &str, words: &[&str]) -> Result<String, String> {
        let (at, text) = match words {
            ["at", n, rest @ ..] => (
                Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("bad position {n:?}"))?,
                ),
                rest.join(" "),
            ),
            rest => (None, rest.join(" ")),
        };
        let rule = Rule::parse_text(&text, &|k, n| self.id_of(k, n)).map_err(|e| e.to_string())?;
        self.edit(name, |rules| {
            let i = at.unwrap_or(rules.len());
            if i > rules.len() {
                return Err(format!(
                    "position {i} is past the end ({} rules)",
                    rules.len()
                ));
            }
            rules.insert(i, rule);
            Ok((format!("added as rule {i} of {name}"), Edit::Insert(i)))
        })
    }

    /// `acl del NAME INDEX`.
    pub fn del(&self, name: &str, index: &str) -> Result<String, String> {
        let i: usize = index
            .parse()
            .map_err(|_| format!("bad rule index {index:?}"))?;
        self.edit(name, |rules| {
            if i >= rules.len() {
                return Err(format!("{name} has no rule {i} ({} rules)", rules.len()));
            }
            rules.remove(i);
            Ok((format!("deleted rule {i} of {name}"), Edit::Remove(i)))
        })
    }

    /// Swaps in a set compiled elsewhere (`reload`).
    pub fn replace(&self, index: usize, set: AclSet) {
        if let (Ok(_one), Some(h)) = (self.update.lock(), self.handles.get(index)) {
            h.replace(set);
        }
    }

    pub fn clear(&self) {
        for h in &self.handles {
            h.load().clear_hits();
        }
    }
}

/// The background compiler: for each ACL it is told of, compiles the
/// current list while workers run on the overlay, and swaps the result in.
/// Edits that came meanwhile ride on it as a new overlay (the list is
/// then compiled again); it started over instead until 2026-12-08, and
/// under edits as frequent as its compiles are long (a 10 K-rule list
/// takes seconds) never landed, while every 33rd edit compiled the whole
/// list itself.
fn compile_in_background(
    rx: mpsc::Receiver<usize>,
    handles: Vec<Arc<AclHandle>>,
    update: Arc<Mutex<()>>,
    workers: usize,
) {
    // Edits answer first: a compile on their core made their p99 1.5 ms.
    if let Err(e) = pollgate_pmd::background::yield_to_others() {
        tracing::debug!("the ACL compiler runs at the default priority: {e}");
    }
    while let Ok(first) = rx.recv() {
        let mut todo = vec![first];
        todo.extend(rx.try_iter());
        todo.sort_unstable();
        todo.dedup();
        for a in todo {
            let Some(h) = handles.get(a) else { continue };
            loop {
                let snap = h.load();
                if snap.is_compiled() {
                    break;
                }
                let t = std::time::Instant::now();
                let compiled =
                    match AclSet::compile(&snap.name, snap.rules().to_vec(), snap.default, workers)
                    {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(acl = %snap.name, "background compile failed: {e}");
                            break;
                        }
                    };
                // Rebased outside the lock (it copies and compares the
                // list; an edit waiting on the lock meanwhile took 2 ms),
                // swapped in under it unless an edit came in between.
                for _ in 0..8 {
                    let now = h.load();
                    let Some(set) = now.rebased(&compiled, &snap, workers) else {
                        break;
                    };
                    let pending = set.pending();
                    let Ok(_one) = update.lock() else { return };
                    if h.replace_rebased(&now, set) {
                        tracing::info!(
                            acl = %snap.name,
                            "{} rules compiled in {:.0} ms; {} added since ride on it as an overlay",
                            snap.rules().len(),
                            t.elapsed().as_secs_f64() * 1e3,
                            pending
                        );
                        break;
                    }
                }
            }
        }
    }
}
