//! Builds the workers, ports and pipelines a topology describes, runs
//! them, and stops them cleanly.

use crate::config::{ForwardModeCfg, IdleMode, PortKind, Topology};
use crate::config::{MemberMap, VlanModeCfg};
use crate::stats::{render_drops, render_ports, PortView, SharedWorkerCounters};
use crate::worker::{Idle, Worker, WorkerReport};
use pollgate_pipeline::bridge::{Bridge, Domain};
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::storm::StormControl;
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::vlan::{EgressTag, PortVlan, VlanMap, VlanMode};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{CrossConnect, DomainId, DropCounters, ForwardMode, Pipeline, PortId};
use pollgate_pmd::afxdp::{AfXdpConfig, AfXdpPort, XdpAttachment};
use pollgate_pmd::device::if_index;
use pollgate_pmd::spsc::{self, Consumer, Producer};
use pollgate_pmd::tap::TapPort;
use pollgate_pmd::veth::{create_veth, Created};
use pollgate_pmd::{ring_pair, AnyPort, FramePool, NullPort, PcapPort, PmdError, Port, PortStats};
use std::os::fd::RawFd;

/// Frames buffered from one worker to another.
const HANDOFF_SLOTS: usize = 1024;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("port {port}: {source}")]
    Port { port: String, source: PmdError },
    #[error("worker {worker}: {source}")]
    Pool { worker: usize, source: PmdError },
    #[error("cannot start worker thread: {0}")]
    Spawn(std::io::Error),
}

/// The UDP template a null port replays.
pub fn null_template(size: usize, src: MacAddr, dst: MacAddr) -> Vec<u8> {
    udp4_frame(
        size,
        src,
        dst,
        [198, 18, 0, 1],
        [198, 19, 0, 1],
        1024,
        1025,
        b"pollgate",
    )
}

/// Ring pairs span workers, so they are made before any worker's ports.
fn build_rings(topo: &Topology) -> Vec<Option<AnyPort>> {
    let mut slots: Vec<Option<AnyPort>> = (0..topo.ports.len()).map(|_| None).collect();
    for (i, spec) in topo.ports.iter().enumerate() {
        if spec.kind == PortKind::Ring && slots[i].is_none() {
            let j = spec.peer.expect("validated: ring ports have a peer");
            let (a, b) = ring_pair(&spec.name, &topo.ports[j].name, spec.slots);
            slots[i] = Some(AnyPort::Ring(a));
            slots[j] = Some(AnyPort::Ring(b));
        }
    }
    slots
}

/// What AF_XDP ports share across their queues: the XDP program on the
/// device, and the veth pair pollgate created for it.
type Device = (Arc<XdpAttachment>, Option<Arc<Created>>);

/// Creates the veth pairs and attaches the XDP programs of every AF_XDP
/// port, before any socket: a port's queues may be served by different
/// workers, and each one's socket needs the device and the program.
fn build_devices(topo: &Topology) -> Result<Vec<Option<Device>>, EngineError> {
    let mut out = Vec::new();
    for spec in &topo.ports {
        let err = |source| EngineError::Port {
            port: spec.name.clone(),
            source,
        };
        let dev_err = |e: std::io::Error| {
            err(PmdError::Device {
                dev: spec.iface.clone(),
                source: e,
            })
        };
        let created = match spec.kind {
            PortKind::Veth => {
                let end = spec
                    .container
                    .as_ref()
                    .expect("validated: veth ports have a namespace");
                Some(create_veth(&spec.iface, end, spec.queues).map_err(err)?)
            }
            PortKind::Afxdp => None,
            _ => {
                out.push(None);
                continue;
            }
        };
        let ifindex = if_index(&spec.iface).map_err(dev_err)?;
        let xdp = XdpAttachment::attach(&spec.iface, ifindex, spec.queues, spec.afxdp.xdp)
            .map_err(dev_err)?;
        out.push(Some((Arc::new(xdp), created)));
    }
    Ok(out)
}

/// Opens queue `q` of port `k` for a worker whose pool is `pool`.
/// `umem_owner` is the worker's first AF_XDP socket, which the others
/// share the UMEM with.
fn build_port(
    topo: &Topology,
    (k, q): (usize, u32),
    rings: &mut [Option<AnyPort>],
    devices: &[Option<Device>],
    pool: &mut FramePool,
    umem_owner: &mut Option<RawFd>,
) -> Result<AnyPort, EngineError> {
    let spec = &topo.ports[k];
    let err = |source| EngineError::Port {
        port: spec.name.clone(),
        source,
    };
    Ok(match spec.kind {
        PortKind::Null => AnyPort::Null(NullPort::new(
            &spec.name,
            null_template(spec.size, spec.mac, spec.peer_mac),
        )),
        PortKind::Ring => rings[k].take().expect("ring pairs are built first"),
        PortKind::Pcap => AnyPort::Pcap(
            PcapPort::open(&spec.name, spec.rx.clone(), spec.tx.clone(), spec.looping)
                .map_err(err)?,
        ),
        PortKind::Tap => {
            let end = spec
                .container
                .as_ref()
                .expect("validated: tap ports have a namespace");
            AnyPort::Tap(TapPort::open(&spec.name, &spec.iface, end).map_err(err)?)
        }
        PortKind::Veth | PortKind::Afxdp => {
            let (xdp, created) = devices[k].as_ref().expect("devices are built first");
            let name = if spec.queues > 1 {
                format!("{}@{q}", spec.name)
            } else {
                spec.name.clone()
            };
            let cfg = AfXdpConfig {
                queue: q,
                ..spec.afxdp
            };
            let port = AfXdpPort::open(
                &name,
                &spec.iface,
                &cfg,
                pool,
                umem_owner,
                Some(xdp.clone()),
            )
            .map_err(err)?;
            AnyPort::AfXdp(match created {
                Some(c) => port.owning(c.clone()),
                None => port,
            })
        }
    })
}

pub fn pipeline_for(topo: &Topology) -> Pipeline {
    let mode = match topo.config.engine.forward {
        ForwardModeCfg::Io => ForwardMode::Io,
        ForwardModeCfg::Mac => ForwardMode::Mac,
    };
    let mut xc = CrossConnect::new(mode, topo.ports.len());
    for &(a, b) in &topo.xconnects {
        xc.connect(a as PortId, b as PortId);
    }
    for (i, p) in topo.ports.iter().enumerate() {
        xc.set_rewrite(i as PortId, p.mac, p.peer_mac);
    }
    Pipeline::new(topo.config.engine.parse, xc)
}

/// The switch of a topology with bridge domains: VLAN maps, domains and
/// the MAC table every worker shares.
pub struct Switch {
    pub vlan: Arc<VlanMap>,
    pub bridge: Bridge,
    pub table: Arc<MacTable>,
    pub aging: u32,
}

pub fn switch_for(topo: &Topology) -> Option<Switch> {
    if topo.bridges.is_empty() {
        return None;
    }
    let n = topo.ports.len();
    let mut vlan = VlanMap::new(n, topo.bridges.len());
    for (k, p) in topo.ports.iter().enumerate() {
        if let Some((mode, tpid)) = p.vlan {
            let mode = match mode {
                VlanModeCfg::Access => VlanMode::Access,
                VlanModeCfg::Trunk => VlanMode::Trunk,
                VlanModeCfg::Qinq => VlanMode::QinQ,
            };
            vlan.set_port(k as PortId, PortVlan::new(mode, tpid));
        }
    }
    let mut ports_vlan: Vec<Option<PortVlan>> =
        (0..n).map(|k| vlan.port(k as PortId).cloned()).collect();
    let mut domains = Vec::new();
    for (d, b) in topo.bridges.iter().enumerate() {
        let d = d as DomainId;
        let mut members: Vec<PortId> = Vec::new();
        for &(k, map) in &b.members {
            let pv = ports_vlan[k]
                .as_mut()
                .expect("validated: bridge ports have a VLAN mode");
            let tag = match map {
                MemberMap::Untagged => {
                    pv.untagged = d;
                    EgressTag::Untagged
                }
                MemberMap::Vid(v) | MemberMap::Svid(v) => {
                    pv.map_vid(v, d);
                    EgressTag::Push {
                        tpid: pv.tpid,
                        vid: v,
                    }
                }
                MemberMap::Pair(s, c) => {
                    pv.map_pair(s, c, d);
                    EgressTag::PushPair {
                        tpid: pv.tpid,
                        svid: s,
                        cvid: c,
                    }
                }
            };
            vlan.set_egress(d, k as PortId, tag);
            if !members.contains(&(k as PortId)) {
                members.push(k as PortId);
            }
        }
        domains.push(Domain {
            name: b.name.clone(),
            members,
        });
    }
    for (k, pv) in ports_vlan.into_iter().enumerate() {
        if let Some(pv) = pv {
            vlan.set_port(k as PortId, pv);
        }
    }
    let table = Arc::new(MacTable::new(*topo.config.switch.mac_limit.get_ref()));
    for (d, b) in topo.bridges.iter().enumerate() {
        for &(mac, k) in &b.statics {
            table.add_static(d as DomainId, mac, k as PortId);
        }
    }
    let storm = topo
        .ports
        .iter()
        .map(|p| StormControl::new(p.storm.0, p.storm.1, p.storm.2))
        .collect();
    Some(Switch {
        vlan: Arc::new(vlan),
        bridge: Bridge::new(domains, table.clone(), storm),
        table,
        aging: *topo.config.switch.aging.get_ref(),
    })
}

/// A running engine.
pub struct Engine {
    pub ports: Vec<PortView>,
    pub workers: Vec<SharedWorkerCounters>,
    handles: Vec<JoinHandle<WorkerReport>>,
    stop: Arc<AtomicBool>,
    pub started: Instant,
    /// The shared MAC table and its aging time, when there are bridges.
    pub mac_table: Option<(Arc<MacTable>, u32)>,
}

/// What the engine reports when it has stopped.
pub struct Summary {
    pub elapsed: Duration,
    pub ports: Vec<(PortView, PortStats)>,
    pub reports: Vec<WorkerReport>,
    /// MAC table at the end: entries, learned, moves, overflows, aged.
    pub macs: Option<[u64; 5]>,
}

impl Summary {
    pub fn drops(&self) -> DropCounters {
        let mut d = DropCounters::default();
        for r in &self.reports {
            for (reason, n) in r.drops.nonzero() {
                d.add(reason, n);
            }
        }
        d
    }

    /// True when every frame of every pool is back where it belongs.
    pub fn frames_balanced(&self) -> bool {
        self.reports
            .iter()
            .all(|r| r.frames_accounted == r.frames_total)
    }

    pub fn render(&self) -> String {
        let views: Vec<PortView> = self.ports.iter().map(|(v, _)| v.clone()).collect();
        let mut out = format!(
            "pollgate stopped after {:.2} s\n",
            self.elapsed.as_secs_f64()
        );
        out.push_str(&render_ports(&views, self.elapsed.as_secs_f64(), None));
        out.push_str(&render_drops(&self.drops()));
        if let Some([n, learned, moves, overflow, aged]) = self.macs {
            out.push_str(&format!("mac table: {n} entries; learned {learned}, moves {moves}, overflows {overflow}, aged {aged}\n"));
        }
        for r in &self.reports {
            out.push_str(&format!(
                "worker {} (core {}): frames {}/{} accounted{}\n",
                r.id,
                r.pinned.map_or("-".to_string(), |c| c.to_string()),
                r.frames_accounted,
                r.frames_total,
                if r.frames_accounted == r.frames_total {
                    ""
                } else {
                    "  LEAK"
                }
            ));
        }
        out
    }
}

impl Engine {
    /// Builds every port and pool first, then starts the workers: a
    /// failure leaves nothing running.
    pub fn start(topo: &Topology) -> Result<Engine, EngineError> {
        let mut rings = build_rings(topo);
        let switch = switch_for(topo);
        let started = Instant::now();
        let mut workers = Vec::new();
        let mut views = Vec::new();
        let mut worker_counters = Vec::new();
        let nw = topo.workers.len();
        let mut owner = vec![0usize; topo.ports.len()];
        for (w, spec) in topo.workers.iter().enumerate() {
            for &(k, q) in &spec.queues {
                if q == 0 {
                    owner[k] = w;
                }
            }
        }
        let devices = build_devices(topo)?;
        let owner = Arc::new(owner);
        let exhausted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // A hand-off ring for every ordered pair of workers: a frame for a
        // port another worker serves is copied across (its own pool and
        // UMEM are that worker's).
        let mut to: Vec<Vec<Option<Producer>>> =
            (0..nw).map(|_| (0..nw).map(|_| None).collect()).collect();
        let mut from: Vec<Vec<Consumer>> = (0..nw).map(|_| Vec::new()).collect();
        for (a, row) in to.iter_mut().enumerate() {
            for (b, slot) in row.iter_mut().enumerate() {
                if a != b {
                    let (p, c) = spsc::channel(HANDOFF_SLOTS);
                    *slot = Some(p);
                    from[b].push(c);
                }
            }
        }
        let mut from = from.into_iter();
        let mut to = to.into_iter();
        for (w, spec) in topo.workers.iter().enumerate() {
            let mut pool = FramePool::new(topo.pool)
                .map_err(|source| EngineError::Pool { worker: w, source })?;
            let mut umem_owner = None;
            let mut ports: Vec<(PortId, AnyPort)> = Vec::new();
            for &(k, q) in &spec.queues {
                // On error, ports built so far drop here and remove what
                // they created: nothing is left half-configured.
                let port = build_port(
                    topo,
                    (k, q),
                    &mut rings,
                    &devices,
                    &mut pool,
                    &mut umem_owner,
                )?;
                tracing::info!(port = %topo.ports[k].name, worker = w, "{}", port.info().detail);
                ports.push((k as PortId, port));
            }
            let counters = SharedWorkerCounters::default();
            worker_counters.push(counters.clone());
            workers.push(Worker {
                id: w,
                core: spec.core,
                pool,
                ports,
                pipeline: match &switch {
                    Some(s) => pipeline_for(topo).with_bridge(s.vlan.clone(), s.bridge.clone()),
                    None => pipeline_for(topo),
                },
                clock: started,
                burst: *topo.config.engine.burst.get_ref(),
                idle: match topo.config.engine.idle {
                    IdleMode::Poll => Idle::Poll,
                    IdleMode::Backoff => Idle::Backoff,
                },
                counters,
                owner: owner.clone(),
                to_workers: to.next().unwrap_or_default(),
                from_workers: from.next().unwrap_or_default(),
                exhausted: exhausted.clone(),
                workers: nw,
            });
        }
        // One view per port (its queue 0, so views[k] is port k), then
        // one for every further queue.
        let mut extra = Vec::new();
        for (k, spec) in topo.ports.iter().enumerate() {
            for (w, worker) in workers.iter().enumerate() {
                for (id, port) in &worker.ports {
                    if *id as usize != k {
                        continue;
                    }
                    let info = port.info();
                    let view = PortView {
                        name: port.name().to_string(),
                        kind: info.kind,
                        detail: info.detail,
                        worker: w,
                        counters: port.counters().clone(),
                    };
                    let queue0 =
                        port.name() == spec.name || port.name() == format!("{}@0", spec.name);
                    if queue0 && views.len() == k {
                        views.push(view);
                    } else {
                        extra.push(view);
                    }
                }
            }
        }
        views.extend(extra);
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for worker in workers {
            let flag = stop.clone();
            let h = std::thread::Builder::new()
                .name(format!("pg-worker-{}", worker.id))
                .spawn(move || worker.run(flag));
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(EngineError::Spawn(e));
                }
            }
        }
        Ok(Engine {
            ports: views,
            workers: worker_counters,
            handles,
            stop,
            started,
            mac_table: switch.map(|s| (s.table, s.aging)),
        })
    }

    fn stop_and_join(&mut self) -> Vec<WorkerReport> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.handles)
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect()
    }

    /// Removes MAC entries older than the aging time (the control thread
    /// calls this about once a second).
    pub fn age_macs(&self) -> usize {
        match &self.mac_table {
            Some((t, aging)) => t.age(self.started.elapsed().as_secs() as u32, *aging),
            None => 0,
        }
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// True once every worker has returned (all input exhausted).
    pub fn finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Waits until `stop` is set by someone else, `deadline` passes, or
    /// every worker has finished; prints a stats line every `interval`.
    pub fn wait(&self, deadline: Option<Instant>, interval: Option<Duration>) {
        let mut last = Instant::now();
        let mut last_aging = Instant::now();
        let mut prev: Vec<PortStats> = self.ports.iter().map(|p| p.counters.snapshot()).collect();
        while !self.stop.load(Ordering::Relaxed) && !self.finished() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            if last_aging.elapsed() >= Duration::from_secs(1) {
                last_aging = Instant::now();
                self.age_macs();
            }
            if let Some(iv) = interval {
                if last.elapsed() >= iv {
                    let secs = last.elapsed().as_secs_f64();
                    eprint!("{}", render_ports(&self.ports, secs, Some(&prev)));
                    prev = self.ports.iter().map(|p| p.counters.snapshot()).collect();
                    last = Instant::now();
                }
            }
        }
    }

    /// Stops the workers, waits for them to close their ports, and
    /// returns the final counters and frame accounting.
    pub fn shutdown(mut self) -> Summary {
        let reports = self.stop_and_join();
        Summary {
            elapsed: self.started.elapsed(),
            ports: self
                .ports
                .iter()
                .map(|p| (p.clone(), p.counters.snapshot()))
                .collect(),
            reports,
            macs: self.mac_table.as_ref().map(|(t, _)| {
                let c = &t.counters;
                let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                [
                    t.len() as u64,
                    r(&c.learned),
                    r(&c.moves),
                    r(&c.overflow),
                    r(&c.aged),
                ]
            }),
        }
    }
}

/// An engine dropped without `shutdown` (an error path, a panicking test)
/// still stops its workers, which close their ports and remove what they
/// created.
impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
