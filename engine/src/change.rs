//! The change model: one function that turns the running topology and a
//! desired one (a config file for `reload`, the running config edited by
//! a `ctl` verb) into the changes that take one to the other, or refuses
//! with the field that cannot change while the engine runs.
//!
//! Ports and bridges keep their ids while the engine runs (MAC entries,
//! flood lists and ACL attachments hold them), so the desired config is
//! first *aligned* to the running one: each port and bridge goes to the
//! slot its name has now, a new one takes a slot a removed one left, and
//! a removed one leaves its slot vacant.

use crate::config::{BridgeSection, Config, PortKind, PortSection, PortSpec, Topology};

/// Reorders `desired`'s ports and bridges into the running topology's
/// slots (see the module comment).
pub fn align(mut desired: Config, current: &Topology) -> Config {
    desired.ports = align_slots(
        current.ports.iter().map(|p| p.name.as_str()).collect(),
        std::mem::take(&mut desired.ports),
        |p| p.name.get_ref().as_str(),
        PortSection::vacant,
        |p| *p.kind.get_ref() == PortKind::Vacant,
    );
    desired.bridge = align_slots(
        current.bridges.iter().map(|b| b.name.as_str()).collect(),
        std::mem::take(&mut desired.bridge),
        |b| b.name.get_ref().as_str(),
        BridgeSection::vacant,
        |b| b.vacant,
    );
    desired
}

fn align_slots<T>(
    slots: Vec<&str>,
    desired: Vec<T>,
    name: impl Fn(&T) -> &str,
    vacant: impl Fn() -> T,
    is_vacant: impl Fn(&T) -> bool,
) -> Vec<T> {
    let mut out: Vec<Option<T>> = slots.iter().map(|_| None).collect();
    let mut fresh = Vec::new();
    for item in desired.into_iter().filter(|i| !is_vacant(i)) {
        match slots
            .iter()
            .position(|s| !s.is_empty() && *s == name(&item))
        {
            Some(i) if out[i].is_none() => out[i] = Some(item),
            _ => fresh.push(item),
        }
    }
    // New names fill the slots that were already vacant first, so churn
    // does not grow the slots. A slot freed by this very change stays
    // vacant until the next one: its port is removed, not rebuilt as
    // another (the removal and the addition are then each whole).
    let mut fresh = fresh.into_iter();
    for (slot, _) in out
        .iter_mut()
        .zip(&slots)
        .filter(|(s, name)| s.is_none() && name.is_empty())
    {
        match fresh.next() {
            Some(item) => *slot = Some(item),
            None => break,
        }
    }
    let mut out: Vec<T> = out
        .into_iter()
        .map(|s| s.unwrap_or_else(&vacant))
        .chain(fresh)
        .collect();
    while out.last().is_some_and(&is_vacant) {
        out.pop();
    }
    out
}

/// The desired topology from `config`: aligned to `current`'s slots,
/// with the running pools' size (a pool cannot grow under its sockets;
/// the check that it still covers the ports then names `pool.frames`),
/// and checked. `src` is the text `config`'s spans point into.
pub fn desired(
    config: Config,
    current: &Topology,
    file: &str,
    src: &str,
    base: &std::path::Path,
) -> Result<Topology, crate::config::ConfigError> {
    let mut c = align(config, current);
    if c.pool.frames.span().is_empty() {
        c.pool.frames = toml::Spanned::new(0..1, current.pool.frames);
    }
    crate::config::validate_config(file, src, base, c)
}

/// What happens to one port slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChange {
    Keep,
    /// A new port in a slot that was vacant (or past the end).
    Add,
    Remove,
    /// Same device, served by other workers or queues: new sockets.
    Resocket,
    /// Its device changed (kind, namespace, queues, rings…): removed and
    /// built again.
    Recreate,
}

/// The changes from one topology to another.
#[derive(Debug, Default)]
pub struct Plan {
    /// One entry per port slot of the larger topology.
    pub ports: Vec<PortChange>,
    /// Domains removed (their MAC entries go with them).
    pub removed_domains: Vec<usize>,
    /// Something the workers' pipelines see changed (a port, a VLAN map,
    /// a domain, a VNI, an ACL attachment, a storm limit…).
    pub pipeline: bool,
    pub vtep_rebuilt: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        !self.pipeline && self.ports.iter().all(|c| *c == PortChange::Keep)
    }

    pub fn count(&self, c: PortChange) -> usize {
        self.ports.iter().filter(|p| **p == c).count()
    }

    /// The slots whose change is `c`.
    pub fn with(&self, c: PortChange) -> Vec<usize> {
        (0..self.ports.len())
            .filter(|&k| self.ports[k] == c)
            .collect()
    }

    /// Ports whose sockets go away (before the new ones open).
    pub fn closing(&self) -> impl Iterator<Item = usize> + '_ {
        self.ports.iter().enumerate().filter_map(|(k, c)| {
            matches!(
                c,
                PortChange::Remove | PortChange::Resocket | PortChange::Recreate
            )
            .then_some(k)
        })
    }
}

/// A port's device: everything but how the pipeline treats it (VLAN mode,
/// storm limits, L2 control frames), which changes without touching it.
fn device_key(p: &PortSpec) -> String {
    let mut d = p.clone();
    d.vlan = None;
    d.storm = (0, 0, 0);
    d.l2cp = Default::default();
    d.default_pcp = 0;
    format!("{d:?}")
}

/// The (worker, queue) pairs serving port `k`.
pub fn served_by(t: &Topology, k: usize) -> Vec<(usize, u32)> {
    let mut v: Vec<(usize, u32)> = t
        .workers
        .iter()
        .enumerate()
        .flat_map(|(w, s)| {
            s.queues
                .iter()
                .filter(move |(p, _)| *p == k)
                .map(move |&(_, q)| (w, q))
        })
        .collect();
    v.sort_unstable();
    v
}

/// Refused: the field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Refused {
    pub field: String,
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> Refused {
    Refused {
        field: field.into(),
        message: message.into(),
    }
}

/// Plans `current` → `desired` (aligned by `align`), or names the first
/// thing that only a restart can change.
pub fn plan(current: &Topology, desired: &Topology) -> Result<Plan, Refused> {
    let (a, b) = (&current.config, &desired.config);
    let (ea, eb) = (&a.engine, &b.engine);
    let engine = |e: &crate::config::EngineSection| {
        format!(
            "{:?}",
            (
                e.forward,
                e.parse,
                e.burst.get_ref(),
                e.idle,
                e.stats_interval,
                &e.ctl_socket,
                &e.metrics
            )
        )
    };
    if engine(ea) != engine(eb) {
        return Err(refuse(
            "engine",
            "[engine] settings are fixed while the engine runs: restart to change them",
        ));
    }
    let (pa, pb) = (&current.pool, &desired.pool);
    if (pa.frame_size, pa.headroom, pa.hugepages) != (pb.frame_size, pb.headroom, pb.hugepages) {
        return Err(refuse(
            "pool",
            "frame size, headroom and hugepages are fixed while the engine runs: restart to change them",
        ));
    }
    if pb.frames > pa.frames {
        return Err(refuse(
            "pool.frames",
            format!(
                "the workers' pools hold {} frames each and this topology needs {}: give fewer ports to a worker, smaller fill rings ([afxdp] fill_ring), or restart with a larger [pool] frames",
                pa.frames, pb.frames
            ),
        ));
    }
    if current.workers.len() != desired.workers.len()
        || current
            .workers
            .iter()
            .zip(&desired.workers)
            .any(|(x, y)| x.core != y.core)
    {
        return Err(refuse(
            "worker",
            "the number of workers and their cores are fixed while the engine runs (ports may move between them): restart to change them",
        ));
    }
    if *a.switch.mac_limit.get_ref() != *b.switch.mac_limit.get_ref() {
        return Err(refuse(
            "switch.mac_limit",
            "the MAC table is sized at start: restart to change it",
        ));
    }
    if *a.conntrack.size.get_ref() != *b.conntrack.size.get_ref()
        || a.conntrack.timeouts() != b.conntrack.timeouts()
    {
        return Err(refuse(
            "conntrack",
            "the flow tables are sized, and their timeouts set, at start: restart to change them",
        ));
    }
    for (i, acl) in current.acls.iter().enumerate() {
        if desired.acls.get(i).map(|x| &x.name) != Some(&acl.name) {
            return Err(refuse(
                "acl",
                format!(
                    "ACL {:?} removed or moved: ACLs may be added (after the others) and their rules changed while the engine runs; restart to remove or reorder them",
                    acl.name
                ),
            ));
        }
    }
    if current.xconnects != desired.xconnects {
        return Err(refuse(
            "xconnect",
            "[[xconnect]] pairs are wired at start: restart to change them",
        ));
    }

    let n = current.ports.len().max(desired.ports.len());
    let vacant = PortSpec::is_vacant;
    let mut plan = Plan::default();
    for k in 0..n {
        let (old, new) = (current.ports.get(k), desired.ports.get(k));
        let change = match (old.filter(|p| !vacant(p)), new.filter(|p| !vacant(p))) {
            (None, None) => PortChange::Keep,
            (None, Some(_)) => PortChange::Add,
            (Some(_), None) => PortChange::Remove,
            (Some(o), Some(p)) if device_key(o) != device_key(p) => PortChange::Recreate,
            (Some(_), Some(_)) if served_by(current, k) != served_by(desired, k) => {
                PortChange::Resocket
            }
            (Some(o), Some(p)) => {
                if format!("{o:?}") != format!("{p:?}") {
                    plan.pipeline = true;
                }
                PortChange::Keep
            }
        };
        if change != PortChange::Keep {
            let name = new.or(old).map_or("", |p| p.name.as_str());
            let ring = |p: Option<&PortSpec>| p.is_some_and(|p| p.kind == PortKind::Ring);
            if ring(old) || ring(new) {
                return Err(refuse(
                    "port.kind",
                    format!("{name:?}: ring ports are paired at start: restart to add, remove or change them"),
                ));
            }
            plan.pipeline = true;
        }
        plan.ports.push(change);
    }
    let nb = current.bridges.len().max(desired.bridges.len());
    for d in 0..nb {
        let (old, new) = (current.bridges.get(d), desired.bridges.get(d));
        let old_live = old.filter(|b| !b.name.is_empty());
        let new_live = new.filter(|b| !b.name.is_empty());
        if old_live.is_some() && new_live.is_none() {
            plan.removed_domains.push(d);
        }
        let same = match (old_live, new_live) {
            (Some(x), Some(y)) => x.members == y.members && x.driver == y.driver,
            (None, None) => true,
            _ => false,
        };
        if !same {
            plan.pipeline = true;
        }
    }
    if format!("{:?}", current.acl_attach) != format!("{:?}", desired.acl_attach)
        || current.acls.len() != desired.acls.len()
    {
        plan.pipeline = true;
    }
    // New NAT rules reach the workers in new pipelines; sessions, ports
    // and counts carry over (the flow table is the worker's).
    let l3_of = |t: &Topology| t.l3.as_ref().map(|l| (l.interfaces.clone(), l.nat.clone()));
    if l3_of(current) != l3_of(desired) {
        plan.pipeline = true;
    }
    if current.l3.is_some() && current.config.router != desired.config.router {
        return Err(refuse(
            "router",
            "[router] sizes the route and neighbour tables at start: restart to change them",
        ));
    }
    let vtep_shape = |t: &Topology| {
        t.vtep.as_ref().map(|v| {
            let mut v = v.clone();
            v.vnis.iter_mut().for_each(|x| x.2.clear());
            (format!("{v:?}"), t.bridges.len())
        })
    };
    if vtep_shape(current) != vtep_shape(desired) {
        plan.vtep_rebuilt = true;
        plan.pipeline = true;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[port]]
name = "a"
kind = "null"
[[port]]
name = "b"
kind = "null"
[[port]]
name = "c"
kind = "null"
[[bridge]]
name = "br0"
members = [{ port = "a" }, { port = "b" }, { port = "c" }]
"#;

    fn topo(src: &str) -> Topology {
        crate::config::parse("t.toml", src).unwrap()
    }

    fn desired(cur: &Topology, src: &str) -> Topology {
        let config: Config = toml::from_str(src).unwrap();
        super::desired(config, cur, "t.toml", src, std::path::Path::new("")).unwrap()
    }

    #[test]
    fn a_removed_port_leaves_its_slot_and_a_new_one_takes_it() {
        let cur = topo(BASE);
        let without_b = BASE
            .replace("[[port]]\nname = \"b\"\nkind = \"null\"\n", "")
            .replace(", { port = \"b\" }", "");
        let t = desired(&cur, &without_b);
        let names: Vec<&str> = t.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "", "c"]);
        let p = plan(&cur, &t).unwrap();
        assert_eq!(
            p.ports,
            [PortChange::Keep, PortChange::Remove, PortChange::Keep]
        );
        assert!(p.pipeline);
        // c keeps its id, so its MAC entries and MAC stay right.
        assert_eq!(t.ports[2].mac, cur.ports[2].mac);

        let with_d = format!("{without_b}[[port]]\nname = \"d\"\nkind = \"null\"\n");
        let t2 = desired(&t, &with_d);
        let names: Vec<&str> = t2.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "d", "c"]);
        assert_eq!(plan(&t, &t2).unwrap().ports[1], PortChange::Add);
    }

    #[test]
    fn nothing_changed_plans_nothing_and_a_vlan_change_only_the_pipeline() {
        let cur = topo(BASE);
        assert!(plan(&cur, &desired(&cur, BASE)).unwrap().is_empty());
        let storm = BASE.replace(
            "name = \"a\"\nkind = \"null\"",
            "name = \"a\"\nkind = \"null\"\nstorm_broadcast = 100",
        );
        let p = plan(&cur, &desired(&cur, &storm)).unwrap();
        assert!(p.pipeline);
        assert_eq!(p.count(PortChange::Keep), 3);
        let resized = BASE.replace(
            "name = \"a\"\nkind = \"null\"",
            "name = \"a\"\nkind = \"null\"\nsize = 128",
        );
        assert_eq!(
            plan(&cur, &desired(&cur, &resized)).unwrap().ports[0],
            PortChange::Recreate
        );
    }

    #[test]
    fn what_only_a_restart_changes_is_refused_by_field() {
        let cur = topo(BASE);
        let e = plan(
            &cur,
            &desired(&cur, &format!("[engine]\nburst = 16\n{BASE}")),
        )
        .unwrap_err();
        assert_eq!(e.field, "engine");
        let e = plan(
            &cur,
            &desired(&cur, &format!("[switch]\nmac_limit = 4096\n{BASE}")),
        )
        .unwrap_err();
        assert_eq!(e.field, "switch.mac_limit");
        let e = plan(
            &cur,
            &desired(
                &cur,
                &format!("{BASE}[[worker]]\nports = [\"a\"]\n[[worker]]\nports = [\"b\", \"c\"]\n"),
            ),
        )
        .unwrap_err();
        assert_eq!(e.field, "worker");
    }

    #[test]
    fn a_removed_bridge_keeps_the_other_domains_ids() {
        let two = format!("{BASE}[[bridge]]\nname = \"br1\"\nmembers = []\n[[bridge]]\nname = \"br2\"\nmembers = []\n");
        let cur = topo(&two);
        let t = desired(
            &cur,
            &two.replace("[[bridge]]\nname = \"br1\"\nmembers = []\n", ""),
        );
        let names: Vec<&str> = t.bridges.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["br0", "", "br2"]);
        assert_eq!(plan(&cur, &t).unwrap().removed_domains, [1]);
    }
}
