//! The running engine: starts a worker thread per `[[worker]]` on what
//! `build` made, waits, ages MACs, and stops everything cleanly.

use crate::build::{
    acls_for, build_devices, build_port, build_rings, largest_frame, mac_table_for, routes_for,
    switch_for, vtep_for, worker_needs_multi_buffer, worker_pipeline,
};
use crate::config::{IdleMode, Topology};
use crate::live::{Control, Live, LiveView, WorkerLink};
use crate::stats::{render_drops, render_ports, LiveStats, PortView, SharedWorkerCounters};
use crate::telemetry::{SharedTelemetry, WorkerTelemetry};
use crate::worker::{Idle, Worker, WorkerReport};
use pollgate_pipeline::arp_suppress::ArpCache;
use pollgate_pipeline::{DropCounters, PortId};
use pollgate_pmd::afxdp::XdpCheck;
use pollgate_pmd::spsc::{self, Consumer, Producer};
use pollgate_pmd::{AnyPort, FramePool, PmdError, Port, PortStats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames buffered from one worker to another.
const HANDOFF_SLOTS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("port {port}: {source}")]
    Port { port: String, source: PmdError },
    #[error("worker {worker}: {source}")]
    Pool { worker: usize, source: PmdError },
    #[error("cannot start worker thread: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Acl(#[from] pollgate_pipeline::acl::AclError),
    #[error(transparent)]
    Privileges(#[from] pollgate_pmd::privileges::PrivilegeError),
    #[error("{0}")]
    Route(String),
}

/// A running engine.
/// Addresses the ARP cache of the EVPN domains holds (local and remote):
/// 2 MB of slots.
const ARP_CACHE: usize = 1 << 16;

pub struct Engine {
    pub workers: Vec<SharedWorkerCounters>,
    handles: Vec<JoinHandle<WorkerReport>>,
    stop: Arc<AtomicBool>,
    pub started: Instant,
    /// The running topology: what changes it, and what it looks like
    /// now. Its devices drop as soon as the workers have stopped.
    pub control: Arc<Control>,
    /// Each worker's burst sizes and latencies.
    pub telemetry: Vec<SharedTelemetry>,
    /// What the XDP watchdog last found for each program id.
    xdp_seen: std::sync::Mutex<Vec<(u32, XdpCheck)>>,
    /// The EVPN kernel mirror's thread.
    evpn: Option<crate::evpn::Evpn>,
    /// The thread that grows the MAC table.
    keeper: Option<JoinHandle<()>>,
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
                "worker {} (core {}): longest pause between polls {:.1} ms; frames {}/{} accounted{}\n",
                r.id,
                r.pinned.map_or("-".to_string(), |c| c.to_string()),
                r.longest_pause.as_secs_f64() * 1e3,
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

/// The privileges a topology calls for.
fn needs(topo: &Topology) -> pollgate_pmd::privileges::Needs {
    use crate::config::PortKind;
    let kind = |k: &[PortKind]| topo.ports.iter().any(|p| k.contains(&p.kind));
    let afxdp_workers = topo
        .workers
        .iter()
        .filter(|w| {
            w.ports
                .iter()
                .any(|&k| matches!(topo.ports[k].kind, PortKind::Veth | PortKind::Afxdp))
        })
        .count() as u64;
    pollgate_pmd::privileges::Needs {
        afxdp: kind(&[PortKind::Veth, PortKind::Afxdp]),
        devices: kind(&[PortKind::Veth, PortKind::Tap]),
        namespaces: topo.ports.iter().any(|p| p.container.is_some()),
        umem_bytes: afxdp_workers * topo.pool.frames as u64 * topo.pool.frame_size as u64,
    }
}

impl Engine {
    /// Builds every port and pool first, then starts the workers: a
    /// failure leaves nothing running.
    pub fn start(topo: &Topology) -> Result<Engine, EngineError> {
        // Before anything is created: one message naming all that is
        // missing, rather than an EPERM from the first syscall.
        pollgate_pmd::privileges::check(needs(topo))?;
        // The frame pools before the tables: both take reserved hugepages
        // first, and the pools' UMEMs are what the reservation the README
        // suggests is sized for; the tables fall back to transparent huge
        // pages where the pools left none.
        let mut pools = Vec::new();
        for w in 0..topo.workers.len() {
            pools.push(
                FramePool::new(topo.pool)
                    .map_err(|source| EngineError::Pool { worker: w, source })?,
            );
        }
        let mut rings = build_rings(topo);
        let table = mac_table_for(topo);
        let arp = Arc::new(ArpCache::new(ARP_CACHE));
        let switch = switch_for(topo, &table, &arp);
        let acls = acls_for(topo)?;
        let vtep = vtep_for(topo);
        let routes = routes_for(topo)?;
        let mut flow_counters = Vec::new();
        let mut telemetry = Vec::new();
        let started = Instant::now();
        let mut workers = Vec::new();
        let mut worker_counters = Vec::new();
        let nw = topo.workers.len();
        let owner = crate::live::owners(topo);
        let devices = build_devices(topo)?;
        // Hand-off and capture slots hold the largest frame of any port.
        let slot_bytes = largest_frame(&devices);
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
                    let (p, c) = spsc::channel_sized(
                        HANDOFF_SLOTS,
                        slot_bytes + crate::worker::RERUN_HEADER,
                    );
                    *slot = Some(p);
                    from[b].push(c);
                }
            }
        }
        let mut readers: Vec<Vec<Arc<crate::capture::TapReader>>> = Vec::new();
        let mut links = Vec::new();
        let mut from = from.into_iter();
        let mut to = to.into_iter();
        for ((w, spec), pool) in topo.workers.iter().enumerate().zip(pools) {
            let mut umem_owner = None;
            let layout = pool.layout();
            let multi_buffer = worker_needs_multi_buffer(&spec.queues, &devices, &layout);
            let mut sockets = Vec::new();
            let mut taps = Vec::new();
            let mut worker_readers = Vec::new();
            let mut ports: Vec<(PortId, AnyPort)> = Vec::new();
            for &(k, q) in &spec.queues {
                // On error, ports built so far drop here and remove what
                // they created: nothing is left half-configured.
                let port = build_port(
                    topo,
                    (k, q),
                    &mut rings,
                    &devices,
                    &layout,
                    &mut umem_owner,
                    multi_buffer,
                )?;
                if let AnyPort::AfXdp(p) = &port {
                    sockets.push((k, p.fd()));
                }
                tracing::info!(port = %topo.ports[k].name, worker = w, "{}", port.info().detail);
                ports.push((k as PortId, port));
                let (writer, reader) = crate::capture::tap(slot_bytes);
                taps.push(writer);
                worker_readers.push(Arc::new(reader));
            }
            readers.push(worker_readers);
            let counters = SharedWorkerCounters::default();
            worker_counters.push(counters.clone());
            let (pipeline, fc) = worker_pipeline(
                topo,
                switch.as_ref(),
                vtep.as_ref(),
                &acls,
                routes.as_ref(),
                w,
            );
            flow_counters.push(fc);
            let (cmds, commands) = std::sync::mpsc::channel();
            links.push(WorkerLink {
                cmds,
                layout,
                multi_buffer: (!sockets.is_empty()).then_some(multi_buffer),
                sockets,
            });
            workers.push(Worker {
                id: w,
                core: spec.core,
                pool,
                ports,
                pipeline,
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
                taps,
                telemetry: {
                    let t = crate::telemetry::shared();
                    telemetry.push(t.clone());
                    WorkerTelemetry::new(t)
                },
                commands,
                retired: 0,
            });
        }
        // Per slot, a view of each queue, in the order the workers serve
        // them.
        let mut views: Vec<Vec<PortView>> = (0..topo.ports.len()).map(|_| Vec::new()).collect();
        for (w, worker) in workers.iter().enumerate() {
            for (j, (id, port)) in worker.ports.iter().enumerate() {
                let info = port.info();
                views[*id as usize].push(PortView {
                    name: port.name().to_string(),
                    kind: info.kind,
                    detail: info.detail,
                    afxdp: info.afxdp,
                    worker: w,
                    counters: port.counters().clone(),
                    tap: readers[w][j].clone(),
                    xdp: match port {
                        AnyPort::AfXdp(p) => Some(p.xdp().clone()),
                        _ => None,
                    },
                });
            }
        }
        for v in &mut views {
            // Queue 0 first: it is the port's own view.
            v.sort_by_key(|p| p.name.contains('@') && !p.name.ends_with("@0"));
        }
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
        // Without it the table stays at its first size: learns past that
        // overflow (counted) and their frames are flooded, as at the limit.
        let keeper = crate::mac_keeper::spawn(table.clone(), stop.clone())
            .map_err(|e| tracing::error!("the MAC table keeper cannot start: {e}"))
            .ok();
        let control = Arc::new(Control::new(Live {
            topo: topo.clone(),
            devices,
            workers: links,
            table,
            arp,
            acls,
            flows: flow_counters,
            vtep,
            routes,
            views,
            slot_bytes,
        }));
        // The workers run already: a mirror that cannot start is said,
        // and `show evpn` says it is not running.
        let evpn = crate::evpn::Evpn::start(control.clone(), control.evpn.clone())
            .map_err(|e| tracing::error!("the EVPN mirror cannot start: {e}"))
            .ok();
        Ok(Engine {
            evpn,
            keeper,
            workers: worker_counters,
            handles,
            stop,
            started,
            control,
            telemetry,
            xdp_seen: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn stop_and_join(&mut self) -> Vec<WorkerReport> {
        self.stop.store(true, Ordering::Relaxed);
        let reports = std::mem::take(&mut self.handles)
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect();
        if let Some(mut e) = self.evpn.take() {
            e.stop();
        }
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
        // The workers closed their ports; what those ports' devices were
        // goes now, not when the last holder of the control lets go.
        self.control.release_devices();
        reports
    }

    /// What `pollgate ctl` may see of this engine.
    pub fn ctl_state(&self, topo: &Topology) -> crate::ctl::CtlState {
        crate::ctl::CtlState::new(
            self.control.clone(),
            self.workers.clone(),
            topo.source.clone(),
            self.started,
        )
        .with_telemetry(self.telemetry.clone())
    }

    /// The running topology as the control thread last published it.
    pub fn view(&self) -> Arc<LiveView> {
        self.control.view()
    }

    /// `[switch] aging` of the running topology (it changes with it).
    fn aging(&self) -> u32 {
        *self.view().topo.config.switch.aging.get_ref()
    }

    /// Removes MAC entries older than the aging time (the control thread
    /// calls this about once a second).
    pub fn age_macs(&self) -> usize {
        self.control
            .table()
            .age(self.started.elapsed().as_secs() as u32, self.aging())
    }

    /// Removes neighbours unconfirmed for five minutes (incomplete ones
    /// after 30 s) and those of gateway interfaces that are gone.
    pub fn age_neighbors(&self) -> usize {
        let now = self.started.elapsed().as_nanos() as u64;
        self.control.with_routes(|t, topo| {
            let Some(t) = t else { return 0 };
            let ifs: Vec<u16> = topo
                .l3
                .iter()
                .flat_map(|l| &l.interfaces)
                .map(|i| i.domain)
                .collect();
            t.tables
                .neighbors
                .sweep(now, 300_000_000_000, |ifx| ifs.contains(&ifx))
        })
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// True once every worker has returned (all input exhausted).
    pub fn finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Finds XDP programs detached by hand and attaches them again:
    /// counted in the port's `xdp_detached` and logged; a program someone
    /// attached in place of ours is logged, not fought over. Each change
    /// is reported once.
    pub fn watch_xdp(&self) {
        let mut seen = self.xdp_seen.lock().unwrap_or_else(|p| p.into_inner());
        // The queues of a port share one program: check it once.
        let mut checked = Vec::new();
        let view = self.view();
        for p in &view.ports {
            let Some(x) = &p.xdp else { continue };
            let id = x.prog_id();
            if checked.contains(&id) {
                continue;
            }
            checked.push(id);
            let now = match x.check() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(port = %p.name, "checking the XDP program: {e}");
                    continue;
                }
            };
            let before = seen.iter().find(|(i, _)| *i == id).map(|(_, c)| *c);
            match now {
                XdpCheck::Reattached => {
                    p.counters.xdp_detached.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(port = %p.name, prog_id = id, "the XDP program was detached by hand: attached it again");
                }
                XdpCheck::Foreign(other) if before != Some(now) => {
                    p.counters.xdp_detached.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(port = %p.name, prog_id = id, "XDP program {other} was attached in place of pollgate's: the port receives nothing until it is removed");
                }
                _ => {}
            }
            seen.retain(|(i, _)| *i != id);
            seen.push((id, now));
        }
    }

    /// Waits until `stop` is set by someone else, `deadline` passes, or
    /// every worker has finished; prints a stats line every `interval`.
    pub fn wait(&self, deadline: Option<Instant>, interval: Option<Duration>) {
        let mut last_aging = Instant::now();
        let mut live = interval.map(|iv| LiveStats::new(&self.view().ports, iv));
        while !self.stop.load(Ordering::Relaxed) && !self.finished() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            if last_aging.elapsed() >= Duration::from_secs(1) {
                last_aging = Instant::now();
                self.age_macs();
                self.age_neighbors();
                self.watch_xdp();
            }
            if let Some(table) = live.as_mut().and_then(LiveStats::tick) {
                eprint!("{table}");
            }
        }
    }

    /// Stops the workers, waits for them to close their ports, and
    /// returns the final counters and frame accounting.
    pub fn shutdown(mut self) -> Summary {
        let reports = self.stop_and_join();
        let view = self.view();
        let t = self.control.table();
        let has_bridges = view.has_bridges();
        Summary {
            elapsed: self.started.elapsed(),
            ports: view
                .live_ports()
                .map(|(_, p)| (p.clone(), p.counters.snapshot()))
                .collect(),
            reports,
            macs: has_bridges.then(|| {
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
