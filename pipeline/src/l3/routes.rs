//! The route table as the control thread keeps it: every candidate route
//! per prefix (connected and local ones from interface addresses, static
//! ones from the config or `ctl route add`), the best of each installed
//! in the FIB, equal-cost gateways merged into one ECMP next hop.

use super::fib::{FamilyFib, Prefix};
use super::interface::Interfaces;
use super::neighbor::NeighborTable;
use super::nexthop::{NextHop, NextHops, MAX_PATHS};
use super::tables::{L3Counters, L3Tables};
use super::trie::{NextHopId, TrieError, MAX_NEXT_HOP};
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Local,
    Connected,
    Static,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Connected => "connected",
            Source::Static => "static",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// On an interface's link (by interface id).
    Interface(u16),
    /// Through these gateways (one path each; the interface is found
    /// from the connected routes).
    Via(Vec<IpAddr>),
    Local(u16),
    Blackhole,
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: Prefix,
    pub target: Target,
    pub metric: u32,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    Fib(#[from] TrieError),
    #[error("gateway {0} is on no interface's subnet")]
    GatewayOffLink(IpAddr),
    #[error("gateway {gw} is not of the route's family ({prefix})")]
    FamilyMismatch { gw: IpAddr, prefix: Prefix },
    #[error("more than {MAX_PATHS} equal-cost paths")]
    TooManyPaths,
    #[error("the next-hop table is full")]
    NextHopsFull,
    #[error("no static route for {0}")]
    NoSuchRoute(Prefix),
}

/// What `show routes` prints of one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub route: Route,
    /// Installed in the FIB (the best candidate of its prefix).
    pub active: bool,
    /// The paths it resolved to: (gateway or none, interface id).
    pub paths: Vec<(Option<IpAddr>, u16)>,
}

pub struct RouteTable {
    pub tables: Arc<L3Tables>,
    fib4: FamilyFib,
    fib6: FamilyFib,
    candidates: BTreeMap<Prefix, Vec<Route>>,
    next_hops: NextHops,
    interned: HashMap<NextHop, NextHopId>,
    ifs: Arc<Interfaces>,
}

impl RouteTable {
    pub fn new(groups4: usize, groups6: usize, neighbors: usize) -> RouteTable {
        let fib4 = FamilyFib::new(32, groups4);
        let fib6 = FamilyFib::new(128, groups6);
        let tables = Arc::new(L3Tables {
            v4: fib4.trie.clone(),
            v6: fib6.trie.clone(),
            next_hops: ArcSwap::from_pointee(NextHops::default()),
            neighbors: NeighborTable::new(neighbors),
            counters: L3Counters::default(),
            nat_counters: Default::default(),
        });
        RouteTable {
            tables,
            fib4,
            fib6,
            candidates: BTreeMap::new(),
            next_hops: NextHops::default(),
            interned: HashMap::new(),
            ifs: Arc::new(Interfaces::default()),
        }
    }

    pub fn interfaces(&self) -> &Arc<Interfaces> {
        &self.ifs
    }

    /// Replaces the interfaces: their connected and local routes follow,
    /// and every static route is resolved again against them.
    pub fn set_interfaces(&mut self, ifs: Arc<Interfaces>) -> Result<(), RouteError> {
        self.ifs = ifs;
        let mut touched: Vec<Prefix> = Vec::new();
        for (p, rs) in self.candidates.iter_mut() {
            let before = rs.len();
            rs.retain(|r| r.source == Source::Static);
            if rs.len() != before || !rs.is_empty() {
                touched.push(*p);
            }
        }
        let ifs = self.ifs.clone();
        for i in ifs.iter() {
            let v4 = i.v4.iter().map(|&(a, l)| (IpAddr::from(a), l, 32));
            let v6 = i.v6.iter().map(|&(a, l)| (IpAddr::from(a), l, 128));
            for (a, len, host) in v4.chain(v6) {
                let connected = Prefix::new(a, len).ok();
                self.push(
                    connected,
                    Target::Interface(i.domain),
                    Source::Connected,
                    &mut touched,
                );
                let local = Prefix::new(a, host).ok();
                self.push(local, Target::Local(i.domain), Source::Local, &mut touched);
            }
            // A NAT address with no session is the router's own: its
            // packets meet the input hook instead of going back out.
            for &a in &i.nat_v4 {
                let local = Prefix::new(IpAddr::from(a), 32).ok();
                self.push(local, Target::Local(i.domain), Source::Local, &mut touched);
            }
        }
        self.candidates.retain(|_, rs| !rs.is_empty());
        touched.sort();
        touched.dedup();
        // Static routes first resolve against the new connected routes.
        for p in touched {
            self.install(p)?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        p: Option<Prefix>,
        target: Target,
        source: Source,
        touched: &mut Vec<Prefix>,
    ) {
        let Some(prefix) = p else { return };
        let r = Route {
            prefix,
            target,
            metric: 0,
            source,
        };
        let rs = self.candidates.entry(prefix).or_default();
        if !rs.contains(&r) {
            rs.push(r);
        }
        touched.push(prefix);
    }

    /// Adds (or replaces: same prefix, same metric) a static route.
    pub fn add(&mut self, r: Route) -> Result<(), RouteError> {
        if let Target::Via(gws) = &r.target {
            if gws.len() > MAX_PATHS {
                return Err(RouteError::TooManyPaths);
            }
            for gw in gws {
                if gw.is_ipv6() != r.prefix.v6 {
                    return Err(RouteError::FamilyMismatch {
                        gw: *gw,
                        prefix: r.prefix,
                    });
                }
                self.ifs
                    .on_link(*gw)
                    .ok_or(RouteError::GatewayOffLink(*gw))?;
            }
        }
        let p = r.prefix;
        let rs = self.candidates.entry(p).or_default();
        let old = rs.clone();
        rs.retain(|x| !(x.source == Source::Static && x.metric == r.metric));
        rs.push(r);
        if let Err(e) = self.install(p) {
            // Refused: the candidates go back to what they were.
            if old.is_empty() {
                self.candidates.remove(&p);
            } else {
                self.candidates.insert(p, old);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Removes the static routes of `p` (of one metric, or all).
    pub fn remove(&mut self, p: Prefix, metric: Option<u32>) -> Result<(), RouteError> {
        let rs = self
            .candidates
            .get_mut(&p)
            .ok_or(RouteError::NoSuchRoute(p))?;
        let before = rs.len();
        rs.retain(|x| !(x.source == Source::Static && metric.is_none_or(|m| m == x.metric)));
        if rs.len() == before {
            return Err(RouteError::NoSuchRoute(p));
        }
        if rs.is_empty() {
            self.candidates.remove(&p);
        }
        self.install(p)
    }

    /// The paths of route `r` as next hops (empty: it does not resolve).
    fn resolve(&self, r: &Route) -> Vec<NextHop> {
        match &r.target {
            Target::Interface(ifx) => vec![NextHop::Connected { ifx: *ifx }],
            Target::Local(ifx) => vec![NextHop::Local { ifx: *ifx }],
            Target::Blackhole => vec![NextHop::Blackhole],
            Target::Unreachable => vec![NextHop::Unreachable],
            Target::Via(gws) => gws
                .iter()
                .filter_map(|gw| {
                    self.ifs
                        .on_link(*gw)
                        .map(|ifx| NextHop::Gateway { ifx, ip: *gw })
                })
                .collect(),
        }
    }

    fn intern(&mut self, nh: NextHop) -> Result<NextHopId, RouteError> {
        if let Some(id) = self.interned.get(&nh) {
            return Ok(*id);
        }
        let id = self.next_hops.list.len() as NextHopId;
        if id > MAX_NEXT_HOP {
            return Err(RouteError::NextHopsFull);
        }
        self.next_hops.list.push(nh);
        self.interned.insert(nh, id);
        Ok(id)
    }

    /// Installs the best candidate of `p` (or removes `p` from the FIB).
    fn install(&mut self, p: Prefix) -> Result<(), RouteError> {
        let nh = match self.best(p) {
            None => None,
            Some(paths) => {
                let id = if paths.len() == 1 {
                    self.intern(paths[0])?
                } else {
                    let mut ids = [0; MAX_PATHS];
                    for (k, path) in paths.iter().take(MAX_PATHS).enumerate() {
                        ids[k] = self.intern(*path)?;
                    }
                    let group = match self.next_hops.groups.iter().position(|g| *g == ids) {
                        Some(g) => g as u32,
                        None => {
                            self.next_hops.groups.push(ids);
                            (self.next_hops.groups.len() - 1) as u32
                        }
                    };
                    self.intern(NextHop::Ecmp {
                        group,
                        n: paths.len().min(MAX_PATHS) as u8,
                    })?
                };
                Some(id)
            }
        };
        // Workers must know a next hop before any trie entry names it.
        self.tables
            .next_hops
            .store(Arc::new(self.next_hops.clone()));
        let fib = if p.v6 { &mut self.fib6 } else { &mut self.fib4 };
        match nh {
            Some(id) => fib.insert(p, id)?,
            None => fib.remove(&p)?,
        };
        Ok(())
    }

    /// The paths of the best candidates of `p`: lowest source rank, then
    /// lowest metric; equal ones merged (ECMP).
    fn best(&self, p: Prefix) -> Option<Vec<NextHop>> {
        let rs = self.candidates.get(&p)?;
        let mut ranked: Vec<&Route> = rs.iter().filter(|r| !self.resolve(r).is_empty()).collect();
        ranked.sort_by_key(|r| (r.source, r.metric));
        let first = ranked.first()?;
        let mut paths = Vec::new();
        for r in ranked
            .iter()
            .filter(|r| r.source == first.source && r.metric == first.metric)
        {
            for nh in self.resolve(r) {
                if !paths.contains(&nh) {
                    paths.push(nh);
                }
            }
        }
        paths.truncate(MAX_PATHS);
        Some(paths)
    }

    /// Installs many static routes at once without publishing the
    /// next-hop table per route (benchmarks and large configs).
    pub fn add_bulk(
        &mut self,
        routes: impl IntoIterator<Item = Route>,
    ) -> Result<usize, RouteError> {
        let mut n = 0;
        for r in routes {
            let p = r.prefix;
            let paths = self.resolve(&r);
            self.candidates.entry(p).or_default().push(r);
            let Some(first) = paths.first() else { continue };
            let id = self.intern(*first)?;
            if n == 0 || self.tables.next_hops.load().list.len() != self.next_hops.list.len() {
                self.tables
                    .next_hops
                    .store(Arc::new(self.next_hops.clone()));
            }
            let fib = if p.v6 { &mut self.fib6 } else { &mut self.fib4 };
            fib.insert(p, id)?;
            n += 1;
        }
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.fib4.len() + self.fib6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fib_memory_bytes(&self) -> (usize, usize) {
        (self.fib4.trie.memory_bytes(), self.fib6.trie.memory_bytes())
    }

    /// [`super::trie::StrideTrie::summary_state`] of the IPv4 and the IPv6 FIB.
    pub fn fib_summary_state(&self) -> [(bool, usize); 2] {
        [
            self.fib4.trie.summary_state(),
            self.fib6.trie.summary_state(),
        ]
    }

    /// Every candidate route, best first within its prefix.
    pub fn view(&self) -> Vec<RouteView> {
        let mut out = Vec::new();
        for (p, rs) in &self.candidates {
            let installed = if p.v6 {
                self.fib6.get(p)
            } else {
                self.fib4.get(p)
            };
            let mut rs: Vec<&Route> = rs.iter().collect();
            rs.sort_by_key(|r| (r.source, r.metric));
            let best = rs
                .iter()
                .find(|r| !self.resolve(r).is_empty())
                .map(|r| (r.source, r.metric));
            for r in rs {
                let paths: Vec<(Option<IpAddr>, u16)> = self
                    .resolve(r)
                    .into_iter()
                    .filter_map(|nh| match nh {
                        NextHop::Connected { ifx } | NextHop::Local { ifx } => Some((None, ifx)),
                        NextHop::Gateway { ifx, ip } => Some((Some(ip), ifx)),
                        _ => None,
                    })
                    .collect();
                out.push(RouteView {
                    route: r.clone(),
                    active: installed.is_some() && best == Some((r.source, r.metric)),
                    paths,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l3::interface::{link_local, L3Interface};
    use crate::wire::MacAddr;

    fn ifs() -> Arc<Interfaces> {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let a = L3Interface {
            name: "a".into(),
            domain: 0,
            mac,
            mtu: 1500,
            v4: vec![([198, 18, 1, 1], 24)],
            v6: vec![],
            link_local: link_local(mac),
            nat_v4: Vec::new(),
        };
        let mut b = a.clone();
        b.name = "b".into();
        b.domain = 1;
        b.v4 = vec![([198, 18, 2, 1], 24)];
        Arc::new(Interfaces::new(vec![a, b], 2))
    }

    fn lookup(t: &RouteTable, ip: [u8; 4]) -> NextHop {
        let id = t.tables.v4.lookup_v4(u32::from_be_bytes(ip));
        t.tables.next_hops.load().get(id)
    }

    #[test]
    fn connected_local_static_and_ecmp() {
        let mut t = RouteTable::new(64, 64, 64);
        t.set_interfaces(ifs()).unwrap();
        assert_eq!(lookup(&t, [198, 18, 1, 9]), NextHop::Connected { ifx: 0 });
        assert_eq!(lookup(&t, [198, 18, 1, 1]), NextHop::Local { ifx: 0 });
        let p: Prefix = "198.19.0.0/16".parse().unwrap();
        let gw = |s: [u8; 4]| IpAddr::from(s);
        assert_eq!(
            t.add(Route {
                prefix: p,
                target: Target::Via(vec![gw([203, 0, 113, 1])]),
                metric: 0,
                source: Source::Static
            }),
            Err(RouteError::GatewayOffLink(gw([203, 0, 113, 1])))
        );
        assert_eq!(lookup(&t, [198, 19, 0, 1]), NextHop::None);
        t.add(Route {
            prefix: p,
            target: Target::Via(vec![gw([198, 18, 1, 2]), gw([198, 18, 2, 2])]),
            metric: 0,
            source: Source::Static,
        })
        .unwrap();
        assert!(matches!(
            lookup(&t, [198, 19, 0, 1]),
            NextHop::Ecmp { n: 2, .. }
        ));
        // A lower metric wins; removing it brings the ECMP route back.
        t.add(Route {
            prefix: p,
            target: Target::Blackhole,
            metric: 0,
            source: Source::Static,
        })
        .unwrap();
        assert_eq!(lookup(&t, [198, 19, 0, 1]), NextHop::Blackhole);
        t.add(Route {
            prefix: p,
            target: Target::Via(vec![gw([198, 18, 2, 2])]),
            metric: 5,
            source: Source::Static,
        })
        .unwrap();
        t.remove(p, Some(0)).unwrap();
        assert_eq!(
            lookup(&t, [198, 19, 0, 1]),
            NextHop::Gateway {
                ifx: 1,
                ip: gw([198, 18, 2, 2])
            }
        );
        // Interface b gone: its gateway no longer resolves.
        let only_a = Arc::new(Interfaces::new(ifs().iter().take(1).cloned().collect(), 2));
        t.set_interfaces(only_a).unwrap();
        assert_eq!(lookup(&t, [198, 19, 0, 1]), NextHop::None);
        assert_eq!(lookup(&t, [198, 18, 2, 9]), NextHop::None);
        assert!(t.view().iter().any(|v| v.route.prefix == p && !v.active));
    }
}
