//! The running topology and the one way it changes: `Control::apply`
//! takes a desired topology (aligned by `change::align`), plans the
//! changes (`change::plan`) and applies them while the workers forward.
//!
//! Everything that makes a syscall — devices, XDP programs, AF_XDP
//! sockets on a worker's UMEM, netlink — happens here, on the control
//! thread. Workers only take finished things through their command
//! rings between bursts: a port to serve, a port to drain and give back,
//! a new pipeline to swap in whole. A change first builds what it adds
//! (and refuses, changing nothing, if that fails), then hands the new
//! ports over, swaps the pipelines, and only then drains what goes.

use crate::acl_ctl::AclControl;
use crate::bridge_ctl::BridgeView;
use crate::build::{
    build_device, build_port, parent_filter, routes_for, switch_for, sync_routes, vtep_for,
    worker_pipeline, Device,
};
use crate::change::{self, PortChange, Refused};
use crate::config::Topology;
use crate::stats::PortView;
use crate::worker::Command;
use arc_swap::ArcSwap;
use pollgate_pipeline::acl::{AclHandle, AclSet, FlowCounters};
use pollgate_pipeline::arp_suppress::ArpCache;
use pollgate_pipeline::l3::RouteTable;
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::vxlan::Vtep;
use pollgate_pipeline::{DomainId, PortId};
use pollgate_pmd::{AnyPort, Port, UmemLayout};
use std::os::fd::RawFd;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker may take to answer a command: it answers between
/// bursts, so anything near this means it is wedged.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// What `ctl`, metrics and the engine's own loop read of the running
/// topology; replaced whole after each change.
pub struct LiveView {
    pub topo: Arc<Topology>,
    /// `ports[k]` is port `k`'s first queue (a placeholder for a vacant
    /// slot), then one view for every further queue.
    pub ports: Vec<PortView>,
    pub vtep: Option<Arc<Vtep>>,
    pub acl: Option<Arc<AclControl>>,
    pub bridges: Vec<BridgeView>,
}

impl LiveView {
    /// Ports that exist (not vacant slots), with their ids.
    pub fn live_ports(&self) -> impl Iterator<Item = (usize, &PortView)> {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind != VACANT)
    }

    /// Whether any bridge domain exists (not only vacant slots).
    pub fn has_bridges(&self) -> bool {
        self.topo.bridges.iter().any(|b| !b.name.is_empty())
    }

    pub fn domains(&self) -> Vec<String> {
        self.topo.bridges.iter().map(|b| b.name.clone()).collect()
    }
}

/// The kind a placeholder view shows.
pub const VACANT: &str = "vacant";

/// A worker as the control thread reaches it.
pub struct WorkerLink {
    pub cmds: mpsc::Sender<Command>,
    pub layout: UmemLayout,
    /// How the worker's UMEM was registered, once a socket has.
    pub multi_buffer: Option<bool>,
    /// The worker's AF_XDP sockets by port; any of them lends its fd to
    /// a new socket sharing the UMEM.
    pub sockets: Vec<(usize, RawFd)>,
}

/// The control side of the running engine.
pub struct Live {
    pub topo: Topology,
    pub devices: Vec<Option<Device>>,
    pub workers: Vec<WorkerLink>,
    pub table: Arc<MacTable>,
    /// The ARP cache of the domains that suppress ARP (EVPN).
    pub arp: Arc<ArpCache>,
    pub acls: Vec<Arc<AclHandle>>,
    /// Each worker's ACL flow counters (when the pipeline has ACLs).
    pub flows: Vec<Option<Arc<FlowCounters>>>,
    pub vtep: Option<Arc<Vtep>>,
    /// The route table, made when the topology first has a gateway.
    pub routes: Option<RouteTable>,
    /// Per slot, one view per queue.
    pub views: Vec<Vec<PortView>>,
    pub slot_bytes: usize,
}

pub struct Control {
    live: Mutex<Live>,
    view: ArcSwap<LiveView>,
    /// The MAC table, never replaced: readable without waiting for a
    /// change in progress.
    table: Arc<MacTable>,
    arp: Arc<ArpCache>,
    /// What the EVPN mirror last reported (`show evpn`).
    pub evpn: Arc<Mutex<crate::evpn::EvpnStatus>>,
}

fn placeholder(k: usize) -> PortView {
    let (_, reader) = crate::capture::tap(64);
    PortView {
        name: String::new(),
        kind: VACANT,
        detail: format!("slot {k}, free"),
        afxdp: None,
        worker: usize::MAX,
        counters: Default::default(),
        tap: Arc::new(reader),
        xdp: None,
    }
}

fn view_of(port: &AnyPort, worker: usize, tap: Arc<crate::capture::TapReader>) -> PortView {
    let info = port.info();
    PortView {
        name: port.name().to_string(),
        kind: info.kind,
        detail: info.detail,
        afxdp: info.afxdp,
        worker,
        counters: port.counters().clone(),
        tap,
        xdp: match port {
            AnyPort::AfXdp(p) => Some(p.xdp().clone()),
            _ => None,
        },
    }
}

/// Which worker serves each port's queue 0 (`usize::MAX`: none).
pub fn owners(topo: &Topology) -> Vec<usize> {
    let mut owner = vec![usize::MAX; topo.ports.len()];
    for (w, spec) in topo.workers.iter().enumerate() {
        for &(k, q) in &spec.queues {
            if q == 0 {
                owner[k] = w;
            }
        }
    }
    owner
}

impl Live {
    fn publish(&self) -> LiveView {
        let mut ports = Vec::new();
        let mut extra = Vec::new();
        for (k, v) in self.views.iter().enumerate() {
            match v.split_first() {
                Some((first, rest)) => {
                    ports.push(first.clone());
                    extra.extend(rest.iter().cloned());
                }
                None => ports.push(placeholder(k)),
            }
        }
        ports.extend(extra);
        let flows: Option<Vec<_>> = self.flows.iter().cloned().collect();
        LiveView {
            topo: Arc::new(self.topo.clone()),
            ports,
            vtep: self.vtep.clone(),
            acl: match flows {
                Some(f) if !self.acls.is_empty() => {
                    Some(Arc::new(AclControl::new(&self.topo, self.acls.clone(), f)))
                }
                _ => None,
            },
            bridges: crate::bridge_ctl::views(&self.topo),
        }
    }

    /// Opens queue `q` of port `k` of `topo` for worker `w`, on its UMEM.
    fn open(&mut self, topo: &Topology, k: usize, q: u32, w: usize) -> Result<AnyPort, Refused> {
        let spec = &topo.ports[k];
        let link = &self.workers[w];
        let needs_mb = self.devices[k]
            .as_ref()
            .is_some_and(|d| d.needs_multi_buffer(&link.layout));
        let mut owner = link.sockets.first().map(|s| s.1);
        let multi_buffer = link.multi_buffer.unwrap_or(needs_mb);
        let mut rings: Vec<Option<AnyPort>> = (0..topo.ports.len()).map(|_| None).collect();
        let port = build_port(
            topo,
            (k, q),
            &mut rings,
            &self.devices,
            &link.layout,
            &mut owner,
            multi_buffer,
        )
        .map_err(|e| Refused {
            field: format!("port {:?}", spec.name),
            message: e.to_string(),
        })?;
        if let AnyPort::AfXdp(p) = &port {
            let link = &mut self.workers[w];
            link.multi_buffer.get_or_insert(multi_buffer);
            link.sockets.push((k, p.fd()));
        }
        Ok(port)
    }

    /// Hands `port` (queue `q` of slot `k`) to worker `w`.
    fn hand_over(&mut self, k: usize, w: usize, port: AnyPort) -> Result<(), String> {
        let (writer, reader) = crate::capture::tap(self.slot_bytes);
        let view = view_of(&port, w, Arc::new(reader));
        let (done, ack) = mpsc::channel();
        self.workers[w]
            .cmds
            .send(Command::Add {
                id: k as PortId,
                port: Box::new(port),
                tap: writer,
                done,
            })
            .map_err(|_| format!("worker {w} has stopped"))?;
        ack.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| format!("worker {w} did not take port {k}"))?;
        while self.views.len() <= k {
            self.views.push(Vec::new());
        }
        self.views[k].push(view);
        Ok(())
    }

    /// Takes every queue of slot `k` back from the workers serving it,
    /// drained, and closes them here.
    fn take_back(&mut self, k: usize) -> Result<(), String> {
        // Out of the XSKMAP first (a map syscall, here): the kernel sends
        // the queues' traffic to its own stack while the worker drains
        // what the sockets already hold.
        if let Some(d) = self.devices.get(k).and_then(Option::as_ref) {
            for q in 0..self.topo.ports[k].queues {
                let _ = d.xdp.remove(q);
            }
        }
        let workers: Vec<usize> = {
            let mut v: Vec<usize> = self
                .views
                .get(k)
                .map_or(Vec::new(), |v| v.iter().map(|p| p.worker).collect());
            v.sort_unstable();
            v.dedup();
            v
        };
        for w in workers {
            let (done, ack) = mpsc::channel();
            self.workers[w]
                .cmds
                .send(Command::Remove {
                    id: k as PortId,
                    done,
                })
                .map_err(|_| format!("worker {w} has stopped"))?;
            let ports = ack
                .recv_timeout(COMMAND_TIMEOUT)
                .map_err(|_| format!("worker {w} did not give port {k} back"))?;
            self.workers[w].sockets.retain(|s| s.0 != k);
            // Closing the sockets (and what they own) is the control
            // thread's syscall work.
            drop(ports);
        }
        if let Some(v) = self.views.get_mut(k) {
            v.clear();
        }
        Ok(())
    }

    /// Sends every worker its pipeline for `topo` and waits until each
    /// has swapped it in.
    fn swap_pipelines(&mut self, topo: &Topology) -> Result<(), String> {
        let switch = switch_for(topo, &self.table, &self.arp);
        let owner = Arc::new(owners(topo));
        let mut acks = Vec::new();
        for w in 0..self.workers.len() {
            let (pipeline, fc) = worker_pipeline(
                topo,
                switch.as_ref(),
                self.vtep.as_ref(),
                &self.acls,
                self.routes.as_ref(),
                w,
            );
            // A worker that had ACLs keeps its flow table and counters
            // (carry_over); one that gets them now starts these.
            self.flows[w] = match (&self.flows[w], fc) {
                (Some(old), Some(_)) => Some(old.clone()),
                (_, new) => new,
            };
            let (done, ack) = mpsc::channel();
            self.workers[w]
                .cmds
                .send(Command::Snapshot {
                    pipeline: Box::new(pipeline),
                    owner: owner.clone(),
                    done,
                })
                .map_err(|_| format!("worker {w} has stopped"))?;
            acks.push((w, ack));
        }
        for (w, ack) in acks {
            ack.recv_timeout(COMMAND_TIMEOUT)
                .map_err(|_| format!("worker {w} did not take the new pipeline"))?;
        }
        Ok(())
    }
}

impl Control {
    pub fn new(live: Live) -> Control {
        let view = ArcSwap::from_pointee(live.publish());
        Control {
            table: live.table.clone(),
            arp: live.arp.clone(),
            evpn: Default::default(),
            live: Mutex::new(live),
            view,
        }
    }

    pub fn view(&self) -> Arc<LiveView> {
        self.view.load_full()
    }

    /// Drops the devices (veth pairs and namespaces pollgate made, XDP
    /// programs, offloads and filters it changed) once the workers have
    /// stopped: whoever still holds this control (a control server
    /// finishing a request) does not keep them alive.
    pub fn release_devices(&self) {
        let devices = std::mem::take(&mut self.lock().devices);
        drop(devices);
    }

    pub fn table(&self) -> &Arc<MacTable> {
        &self.table
    }

    pub fn arp(&self) -> &Arc<ArpCache> {
        &self.arp
    }

    /// Runs `f` on the route table (`None`: no gateway yet) and the
    /// running topology, with topology changes held off meanwhile.
    pub fn with_routes<R>(&self, f: impl FnOnce(Option<&mut RouteTable>, &Topology) -> R) -> R {
        let mut live = self.lock();
        let l = &mut *live;
        f(l.routes.as_mut(), &l.topo)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running topology (what a change starts from).
    pub fn topology(&self) -> Topology {
        self.lock().topo.clone()
    }

    /// Makes the running topology `desired` (already aligned to it), or
    /// refuses and changes nothing. Returns what was done, in words.
    pub fn apply(&self, desired: Topology) -> Result<String, Refused> {
        let mut live = self.lock();
        let started = Instant::now();
        let plan = change::plan(&live.topo, &desired)?;
        for k in 0..live.topo.ports.len().min(desired.ports.len()) {
            if parent_filter(&live.topo, k) != parent_filter(&desired, k) {
                return Err(Refused {
                    field: "bridge.members".into(),
                    message: format!("the containers sharing parent {:?} (macvlan, ipvlan) changed: its unicast filter is programmed at start; restart to change them", desired.ports[k].name),
                });
            }
        }

        // Everything that can fail is built before anything changes: the
        // changed ACLs compiled, new ports' devices made and their
        // sockets opened on their workers' UMEMs.
        let mut sets = Vec::new();
        for (i, a) in desired.acls.iter().enumerate() {
            let changed = live
                .topo
                .acls
                .get(i)
                .is_none_or(|o| o.rules != a.rules || o.default != a.default);
            if changed {
                let set =
                    AclSet::compile(&a.name, a.rules.clone(), a.default, desired.workers.len())
                        .map_err(|e| Refused {
                            field: format!("acl {:?}", a.name),
                            message: e.to_string(),
                        })?;
                sets.push((i, set));
            }
        }
        let adds = plan.with(PortChange::Add);
        while live.devices.len() < desired.ports.len() {
            live.devices.push(None);
        }
        let mut opened: Vec<(usize, usize, AnyPort)> = Vec::new();
        let built = (|| {
            for &k in &adds {
                live.devices[k] = build_device(&desired, k).map_err(|e| Refused {
                    field: format!("port {:?}", desired.ports[k].name),
                    message: e.to_string(),
                })?;
                for (w, q) in change::served_by(&desired, k) {
                    let port = live.open(&desired, k, q, w)?;
                    opened.push((k, w, port));
                }
            }
            Ok(())
        })();
        if let Err(e) = built {
            // Sockets first, then the devices under them.
            for (k, w, port) in opened {
                live.workers[w].sockets.retain(|s| s.0 != k);
                drop(port);
            }
            for &k in &adds {
                live.devices[k] = None;
            }
            return Err(e);
        }

        // From here on the change is applied.
        let t0 = Instant::now();
        let mut done = Vec::new();
        let fail = |what: String| Refused {
            field: "engine".into(),
            message: format!("{what} (the change is partly applied: see show topology)"),
        };
        for (k, w, port) in opened {
            live.hand_over(k, w, port).map_err(fail)?;
        }
        // Ports whose device or workers changed: their old sockets close
        // before new ones bind the same queues.
        for k in plan
            .closing()
            .filter(|&k| plan.ports[k] != PortChange::Remove)
        {
            live.take_back(k).map_err(fail)?;
            if plan.ports[k] == PortChange::Recreate {
                live.devices[k] = None;
                live.devices[k] = build_device(&desired, k)
                    .map_err(|e| fail(format!("port {:?} rebuilt: {e}", desired.ports[k].name)))?;
            }
            for (w, q) in change::served_by(&desired, k) {
                let port = live
                    .open(&desired, k, q, w)
                    .map_err(|e| fail(e.to_string()))?;
                live.hand_over(k, w, port).map_err(fail)?;
            }
        }
        for (i, set) in sets {
            match live.acls.get(i) {
                Some(h) => h.replace(set),
                None => live.acls.push(AclHandle::new(set)),
            }
            let rules = desired.acls[i].rules.len();
            done.push(format!("acl {} ({rules} rules)", desired.acls[i].name));
        }
        if plan.vtep_rebuilt {
            live.vtep = match (&live.vtep, vtep_for(&desired)) {
                (Some(old), Some(fresh)) => {
                    let v = Arc::new(old.rebuilt(fresh.cfg.clone()));
                    set_floods(&v, &desired);
                    for &(ip, mac) in desired.vtep.iter().flat_map(|s| &s.neighbors) {
                        v.remote_or_insert(ip);
                        v.learn_neighbor(ip, mac);
                    }
                    Some(v)
                }
                (_, fresh) => fresh,
            };
            done.push("vtep".into());
        }
        // Routes are shared tables, changed in place before the workers
        // see the interfaces that need them.
        if live.routes.is_none() && desired.l3.is_some() {
            live.routes = routes_for(&desired).map_err(|e| fail(e.to_string()))?;
            done.push("router".into());
        } else if live.topo.l3 != desired.l3 {
            let l = &mut *live;
            if let Some(t) = l.routes.as_mut() {
                sync_routes(t, Some(&l.topo), &desired).map_err(fail)?;
                done.push("routes".into());
            }
        }
        if plan.pipeline {
            live.swap_pipelines(&desired).map_err(fail)?;
        }
        let removed = plan.with(PortChange::Remove);
        for &k in &removed {
            live.take_back(k).map_err(fail)?;
            live.devices[k] = None;
        }
        // After the swap nothing learns on these ports or in these
        // domains any more, so what is purged stays purged.
        let gone: Vec<PortId> = (plan.ports.iter().enumerate())
            .filter(|(_, c)| matches!(c, PortChange::Remove | PortChange::Recreate))
            .map(|(k, _)| k as PortId)
            .collect();
        let domains: Vec<DomainId> = plan
            .removed_domains
            .iter()
            .map(|&d| d as DomainId)
            .collect();
        let flushed = if gone.is_empty() && domains.is_empty() {
            0
        } else {
            live.table.purge(&gone, &domains)
        };
        let statics = apply_statics(&live.table, &live.topo, &desired);
        if !plan.vtep_rebuilt {
            if let Some(v) = &live.vtep {
                let n = flood_diff(v, &live.topo, &desired);
                if n > 0 {
                    done.push(format!("flood lists ±{n}"));
                }
            }
        }
        let (add, rm, re) = (
            plan.count(PortChange::Add),
            removed.len(),
            plan.count(PortChange::Recreate) + plan.count(PortChange::Resocket),
        );
        if add + rm + re > 0 {
            done.push(format!("ports +{add} -{rm} ~{re}"));
        }
        if statics > 0 {
            done.push(format!("static MACs ±{statics}"));
        }
        if flushed > 0 {
            done.push(format!("{flushed} MAC entries flushed"));
        }
        if plan.pipeline {
            done.push("pipelines swapped".into());
        }
        live.topo = desired;
        let n = live.topo.ports.len();
        live.devices.truncate(n);
        live.views.truncate(n);
        self.view.store(Arc::new(live.publish()));
        Ok(if done.is_empty() {
            "nothing changed\n".to_string()
        } else {
            format!(
                "applied in {:.1} ms (built in {:.1} ms, then {:.1} ms with the workers): {}\n",
                started.elapsed().as_secs_f64() * 1e3,
                (t0 - started).as_secs_f64() * 1e3,
                t0.elapsed().as_secs_f64() * 1e3,
                done.join(", ")
            )
        })
    }
}

/// Sets a fresh VTEP's flood lists from the topology.
fn set_floods(v: &Vtep, topo: &Topology) {
    if let Some(spec) = &topo.vtep {
        for (_, d, flood) in &spec.vnis {
            for ip in flood {
                let _ = v.set_flood(*d as DomainId, *ip, true);
            }
        }
    }
}

/// Applies the difference between two topologies' flood lists to the
/// running VTEP; returns how many entries changed.
fn flood_diff(v: &Vtep, old: &Topology, new: &Topology) -> usize {
    let lists = |t: &Topology| {
        t.vtep
            .as_ref()
            .map(|s| {
                s.vnis
                    .iter()
                    .map(|(_, d, f)| (*d, f.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (a, b) = (lists(old), lists(new));
    let mut n = 0;
    for (d, list) in &a {
        let keep = b.iter().find(|x| x.0 == *d).map(|x| &x.1);
        for ip in list
            .iter()
            .filter(|ip| keep.is_none_or(|k| !k.contains(ip)))
        {
            n += v.set_flood(*d as DomainId, *ip, false).is_ok() as usize;
        }
    }
    for (d, list) in &b {
        let had = a.iter().find(|x| x.0 == *d).map(|x| &x.1);
        for ip in list.iter().filter(|ip| had.is_none_or(|h| !h.contains(ip))) {
            n += v.set_flood(*d as DomainId, *ip, true).is_ok() as usize;
        }
    }
    n
}

/// Applies the difference between two topologies' static MACs to the
/// table; returns how many entries changed.
fn apply_statics(table: &MacTable, old: &Topology, new: &Topology) -> usize {
    let mut n = 0;
    let empty = Vec::new();
    let count = old.bridges.len().max(new.bridges.len());
    for d in 0..count {
        let a = old.bridges.get(d).map_or(&empty, |b| &b.statics);
        let b = new.bridges.get(d).map_or(&empty, |b| &b.statics);
        for &(mac, _) in a.iter().filter(|s| !b.contains(s)) {
            n += table.remove(d as DomainId, mac) as usize;
        }
        for &(mac, port) in b.iter().filter(|s| !a.contains(s)) {
            table.add_static(d as DomainId, mac, port as PortId);
            n += 1;
        }
    }
    n
}
