//! A worker: one pinned thread, one frame pool, the ports it serves, and
//! the run-to-completion loop of DPDK's l2fwd — RX burst, pipeline,
//! buffered TX, flush — repeated until told to stop.

use crate::capture::TapWriter;
use crate::stats::SharedWorkerCounters;
use crate::telemetry::{self, WorkerTelemetry};
use pollgate_pipeline::l3::ROUTER_PORT;
use pollgate_pipeline::vlan::{egress_allowed, push_tags, EgressTag};
use pollgate_pipeline::vxlan::{FLOOD_TUNNELS, TUNNEL_BASE};
use pollgate_pipeline::{
    Batch, DomainId, DropCounters, DropReason, FrameMemory, Pipeline, PortId, Verdict, BATCH_SIZE,
};
use pollgate_pmd::port::bump;
use pollgate_pmd::spsc::{Consumer, Producer};
use pollgate_pmd::{AnyPort, FramePool, Port, TxDesc};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How many times, and how far apart, worker 0 announces the gateway
/// addresses after a start or a topology change (keepalived repeats its
/// gratuitous ARPs the same way).
const ANNOUNCE_TIMES: u8 = 3;
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// The hand-off ring tag of a packet for the receiving worker's
/// pipeline (a NAT session's), not for one of its ports: no port id is
/// this large.
const RERUN: u16 = u16::MAX;
/// What goes in front of such a packet in the ring: its ingress port
/// and bridge domain.
pub const RERUN_HEADER: usize = 4;

/// How a worker waits when there is no traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    Poll,
    Backoff,
}

/// Frames queued for one output port, flushed when full or at the end of
/// each loop (so a partial burst never waits longer than one loop).
struct TxBuffer {
    descs: [TxDesc; BATCH_SIZE],
    len: usize,
}

impl TxBuffer {
    fn new() -> Self {
        TxBuffer {
            descs: [TxDesc::default(); BATCH_SIZE],
            len: 0,
        }
    }
}

/// What the control thread asks of a running worker, through its
/// command ring; the worker takes commands between bursts, never with a
/// batch in flight, and answers each on `done`.
pub enum Command {
    /// Serve this port (its socket opened on the worker's UMEM by the
    /// control thread), with its capture tap.
    Add {
        id: PortId,
        port: Box<AnyPort>,
        tap: TapWriter,
        done: mpsc::Sender<()>,
    },
    /// Stop serving every queue of port `id`: the worker drains them
    /// (frames in their rings back to its pool) and hands the ports back,
    /// for the control thread to close.
    Remove {
        id: PortId,
        done: mpsc::Sender<Vec<AnyPort>>,
    },
    /// A new pipeline (ports, VLAN maps, domains, VNIs, ACL attachments)
    /// and port owners, swapped in whole; the worker carries over what
    /// the old one learned (see `Pipeline::carry_over`).
    Snapshot {
        pipeline: Box<Pipeline>,
        owner: Arc<Vec<usize>>,
        done: mpsc::Sender<()>,
    },
}

pub struct Worker {
    pub id: usize,
    pub core: Option<usize>,
    pub pool: FramePool,
    /// Ports served, with their global ids.
    pub ports: Vec<(PortId, AnyPort)>,
    pub pipeline: Pipeline,
    /// The engine's clock origin, shared so every worker learns MACs on
    /// the same time scale the control thread ages them on.
    pub clock: Instant,
    pub burst: usize,
    pub idle: Idle,
    pub counters: SharedWorkerCounters,
    /// Which worker serves each port (by global port id).
    pub owner: Arc<Vec<usize>>,
    /// Rings to the other workers (indexed by worker id; `None` for
    /// this one): frames for their ports are copied in, tagged with the
    /// output port.
    pub to_workers: Vec<Option<Producer>>,
    /// Rings from the other workers, drained every loop.
    pub from_workers: Vec<Consumer>,
    /// Workers whose own input is exhausted (pcap files read to the end);
    /// when it reaches `workers`, all stop once their rings are drained.
    pub exhausted: Arc<AtomicUsize>,
    pub workers: usize,
    /// Capture taps, one per entry of `ports`.
    pub taps: Vec<TapWriter>,
    pub telemetry: WorkerTelemetry,
    pub commands: mpsc::Receiver<Command>,
    /// Frames that went with a port removed at run time: a zero-copy
    /// driver's share of its fill ring, TX not completed by the deadline.
    pub retired: usize,
}

/// What a worker hands back when it stops.
#[derive(Debug, Clone)]
pub struct WorkerReport {
    pub id: usize,
    pub drops: DropCounters,
    /// Frames in the pool plus frames held by ports, after close, plus
    /// frames that left with ports removed at run time (see `retired`).
    pub frames_accounted: usize,
    pub frames_total: usize,
    pub pinned: Option<usize>,
    /// The longest time between two of the worker's polls (sampled
    /// every 64 busy loops and every idle one, so it includes idle
    /// back-off sleeps of up to about 1 ms).
    pub longest_pause: Duration,
}

/// Where frames leave a worker: the TX buffers of its own ports, and the
/// hand-off rings to the workers serving the other ports.
struct Outputs {
    /// Global port id -> index into the worker's ports.
    local: Vec<Option<usize>>,
    tx: Vec<TxBuffer>,
    owner: Arc<Vec<usize>>,
    to_workers: Vec<Option<Producer>>,
    /// Capture taps, indexed like `tx`.
    taps: Vec<TapWriter>,
    /// Whether each port (indexed like `tx`) sends multi-buffer packets.
    chains: Vec<bool>,
}

impl Outputs {
    /// Re-indexes the outputs after the worker's ports changed (between
    /// bursts: every TX buffer is empty then).
    fn reindex(&mut self, ports: &[(PortId, AnyPort)]) {
        let max_id = self.owner.len().max(
            ports
                .iter()
                .map(|(id, _)| *id as usize + 1)
                .max()
                .unwrap_or(0),
        );
        self.local = vec![None; max_id];
        for (i, (id, _)) in ports.iter().enumerate() {
            // A port's first queue takes what other workers hand over.
            if self.local[*id as usize].is_none() {
                self.local[*id as usize] = Some(i);
            }
        }
        self.chains = ports.iter().map(|(_, p)| p.accepts_chains()).collect();
        self.tx = (0..ports.len()).map(|_| TxBuffer::new()).collect();
    }

    /// Sends the packet at `addr` (`len` bytes there, `tail` more in
    /// chained frames) out of port `out`: queued for TX when the port is
    /// ours, else copied to its worker and freed here.
    #[inline(always)]
    fn deliver(
        &mut self,
        out: PortId,
        addr: u64,
        (len, tail): (u32, u32),
        ports: &mut [(PortId, AnyPort)],
        pool: &mut FramePool,
        drops: &mut DropCounters,
    ) {
        if let Some(l) = self.local.get(out as usize).copied().flatten() {
            let queued = self.tx[l].len;
            self.tx[l].len = self.queue(l, queued, (addr, len, tail), ports, pool, drops);
            return;
        }
        let ring = self
            .owner
            .get(out as usize)
            .and_then(|&w| self.to_workers.get_mut(w))
            .and_then(|r| r.as_mut());
        let whole = (len + tail) as usize;
        match ring {
            Some(ring) if whole > ring.slot_bytes() => drops.count(DropReason::FrameTooBig),
            Some(ring) => {
                if !ring.push_with(out, whole, |dst| pool.copy_packet(addr, len, dst)) {
                    drops.count(DropReason::WorkerRingFull);
                }
            }
            None => drops.count(DropReason::NoRoute),
        }
        pool.free_packet(addr, tail);
    }

    /// Queues one packet (`addr`, `len`, `tail`) on our port's TX buffer
    /// `l`, which holds `queued` (the caller keeps the count and stores
    /// it back), sending the buffer when it fills; returns the new count.
    /// A chained packet for a port that takes none is dropped.
    #[inline(always)]
    fn queue(
        &mut self,
        l: usize,
        queued: usize,
        (addr, len, tail): (u64, u32, u32),
        ports: &mut [(PortId, AnyPort)],
        pool: &mut FramePool,
        drops: &mut DropCounters,
    ) -> usize {
        if tail != 0 && !self.chains[l] {
            drops.count(DropReason::FrameTooBig);
            pool.free_packet(addr, tail);
            return queued;
        }
        let buf = &mut self.tx[l];
        buf.descs[queued % BATCH_SIZE] = TxDesc { addr, len, tail };
        if queued + 1 < BATCH_SIZE {
            return queued + 1;
        }
        buf.len = BATCH_SIZE;
        flush(buf, &mut self.taps[l], &mut ports[l].1, pool, drops);
        buf.len
    }

    /// Queues the run of packets from `i` on that go to port `p`, one of
    /// ours (TX buffer `l`), and returns where the run ends. A burst
    /// mostly goes one way: the buffer's fill count stays in a register
    /// for the run, where `deliver`, one packet at a time, loads and
    /// stores it for each, a dependency through memory that bounded the
    /// loop.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn queue_run(
        &mut self,
        l: usize,
        p: PortId,
        batch: &Batch,
        mut i: usize,
        ports: &mut [(PortId, AnyPort)],
        pool: &mut FramePool,
        drops: &mut DropCounters,
    ) -> usize {
        let mut queued = self.tx[l].len;
        while i < batch.len() && batch.verdict[i] == Verdict::Forward(p) {
            let packet = (batch.addr[i], batch.data_len[i], batch.tail_len[i]);
            queued = self.queue(l, queued, packet, ports, pool, drops);
            i += 1;
        }
        self.tx[l].len = queued;
        i
    }

    /// Packet `i` for worker `w`'s pipeline, which holds its NAT
    /// session: copied across behind its ingress port and domain (the
    /// stages before the router have run here: tags stripped, tunnel
    /// decapsulated, ingress ACL applied), and freed here.
    fn hand_over(
        &mut self,
        w: u16,
        batch: &Batch,
        i: usize,
        pool: &mut FramePool,
        drops: &mut DropCounters,
    ) {
        let (addr, len, tail) = (batch.addr[i], batch.data_len[i], batch.tail_len[i]);
        let whole = (len + tail) as usize + RERUN_HEADER;
        match self.to_workers.get_mut(w as usize).and_then(|r| r.as_mut()) {
            Some(ring) if whole > ring.slot_bytes() => drops.count(DropReason::FrameTooBig),
            Some(ring) => {
                let (port, domain) = (batch.in_port[i], batch.domain[i]);
                let pushed = ring.push_with(RERUN, whole, |dst| {
                    let (head, rest) = dst.split_at_mut(RERUN_HEADER);
                    head[0..2].copy_from_slice(&port.to_ne_bytes());
                    head[2..4].copy_from_slice(&domain.to_ne_bytes());
                    pool.copy_packet(addr, len, rest)
                });
                if !pushed {
                    drops.count(DropReason::WorkerRingFull);
                }
            }
            None => drops.count(DropReason::NoRoute),
        }
        pool.free_packet(addr, tail);
    }

    fn flush_all(
        &mut self,
        ports: &mut [(PortId, AnyPort)],
        pool: &mut FramePool,
        drops: &mut DropCounters,
    ) {
        for (i, (buf, tap)) in self.tx.iter_mut().zip(self.taps.iter_mut()).enumerate() {
            flush(buf, tap, &mut ports[i].1, pool, drops);
        }
    }
}

impl Worker {
    /// Runs until `stop` is set, or until every port's input is exhausted.
    pub fn run(mut self, stop: Arc<AtomicBool>) -> WorkerReport {
        let pinned = self
            .core
            .filter(|c| core_affinity::set_for_current(core_affinity::CoreId { id: *c }));
        if self.core.is_some() && pinned.is_none() {
            tracing::warn!(worker = self.id, core = ?self.core, "could not pin worker");
        }
        let mut out = Outputs {
            local: Vec::new(),
            chains: Vec::new(),
            tx: Vec::new(),
            owner: self.owner.clone(),
            to_workers: std::mem::take(&mut self.to_workers),
            taps: std::mem::take(&mut self.taps),
        };
        out.reindex(&self.ports);
        let mut batch = Batch::new();
        // Packets other workers hand over for our NAT sessions.
        let mut rerun = Batch::new();
        let mut drops = DropCounters::default();
        let mut idle_loops = 0u32;
        let burst = self.burst.min(BATCH_SIZE);
        let mut marked_exhausted = false;

        let (mut needs_clock, mut serves_underlay) = self.pipeline_needs(&out);
        let mut next_arp = Instant::now();
        let mut loops = 0u64;
        let (mut last_check, mut longest_pause) = (Instant::now(), Duration::ZERO);
        // Worker 0 announces the gateway addresses (gratuitous ARP,
        // unsolicited NA) at start and after every topology change,
        // `ANNOUNCE_TIMES` times `ANNOUNCE_EVERY` apart: the first may go
        // before a domain's way out is ready (a remote VTEP whose
        // underlay MAC is still being resolved), and a lost announcement
        // leaves hosts with a stale router MAC until they ask.
        let first_announce = if self.id == 0 { ANNOUNCE_TIMES } else { 0 };
        let (mut announces_left, mut next_announce) = (first_announce, Instant::now());
        while !stop.load(Ordering::Relaxed) {
            loops = loops.wrapping_add(1);
            // Every 64th busy loop (tens of microseconds) and every idle
            // one (an idle worker may sleep a millisecond a loop): the
            // check stays off the per-burst path, and a change lands
            // at once either way.
            if idle_loops > 0 || loops.is_multiple_of(64) {
                // The same points time the loop: a pause longer than a
                // fill ring lasts loses frames, whether a command, a
                // syscall or the scheduler (a core shared with other
                // busy threads) caused it.
                let now = Instant::now();
                longest_pause = longest_pause.max(now - last_check);
                last_check = now;
                while let Ok(cmd) = self.commands.try_recv() {
                    self.apply(cmd, &mut out);
                    (needs_clock, serves_underlay) = self.pipeline_needs(&out);
                    (announces_left, next_announce) = (first_announce, now);
                }
                if announces_left > 0 && now >= next_announce {
                    announces_left -= 1;
                    next_announce = now + ANNOUNCE_EVERY;
                    self.announce(&mut out, &mut drops);
                }
            }
            if serves_underlay && loops.is_multiple_of(1024) && Instant::now() >= next_arp {
                request_neighbors(
                    &self.pipeline,
                    &mut out,
                    &mut self.ports,
                    &mut self.pool,
                    &mut drops,
                );
                next_arp = Instant::now() + Duration::from_secs(1);
            }
            if needs_clock {
                self.pipeline
                    .set_clock(self.clock.elapsed().as_nanos() as u64);
            }
            let mut moved = self.receive_handoffs(&mut out, &mut drops, &mut rerun);
            for p in 0..self.ports.len() {
                let (id, port) = &mut self.ports[p];
                port.poll(&mut self.pool);
                batch.clear();
                let n = port.rx_burst(&mut self.pool, &mut batch, *id, burst);
                if n == 0 {
                    continue;
                }
                moved += n;
                let t0 = self.telemetry.start();
                if out.taps[p].active() {
                    for i in 0..n {
                        let (addr, len, tail) =
                            (batch.addr[i], batch.data_len[i], batch.tail_len[i]);
                        out.taps[p].copy_packet(&self.pool, addr, len, tail);
                    }
                }
                self.pipeline.run(&mut batch, &mut self.pool, &mut drops);
                dispatch(
                    &batch,
                    &mut out,
                    &mut self.ports,
                    &mut self.pool,
                    &mut self.pipeline,
                    &mut drops,
                );
                self.telemetry.end(n, t0);
            }
            let requests = self
                .pipeline
                .router_mut()
                .filter(|r| r.has_requests())
                .map(|r| r.take_requests());
            if let Some(frames) = requests {
                self.flood_frames(&frames, &mut out, &mut drops);
            }
            // NAT's sweep gives expired sessions' ports back, traffic
            // or not: every 64th busy loop, and every idle one (an idle
            // loop may sleep a millisecond, and nothing else wants it).
            if needs_clock && (idle_loops > 0 || loops.is_multiple_of(64)) {
                self.pipeline
                    .maintain(self.clock.elapsed().as_nanos() as u64);
            }
            // Held packets leave when their next hop resolves, with or
            // without traffic to carry the router along.
            if loops.is_multiple_of(64) && self.pipeline.router().is_some_and(|r| r.holds()) {
                batch.clear();
                self.pipeline.run(&mut batch, &mut self.pool, &mut drops);
                dispatch(
                    &batch,
                    &mut out,
                    &mut self.ports,
                    &mut self.pool,
                    &mut self.pipeline,
                    &mut drops,
                );
            }
            out.flush_all(&mut self.ports, &mut self.pool, &mut drops);
            if moved > 0 {
                idle_loops = 0;
                if telemetry::ENABLED {
                    bump(&self.counters.busy_polls, 1);
                }
                self.counters.publish_drops(&drops);
                self.pipeline.publish();
            } else {
                if telemetry::ENABLED {
                    bump(&self.counters.idle_polls, 1);
                }
                if idle_loops == 0 {
                    // Traffic just stopped: a good moment to hand over.
                    self.telemetry.publish();
                }
                // A worker whose every port was removed at run time waits
                // for new ones; only finite inputs (captures) run out.
                if !self.ports.is_empty() && self.ports.iter().all(|(_, p)| p.rx_exhausted()) {
                    if !marked_exhausted {
                        marked_exhausted = true;
                        // Release: our last hand-offs are in the rings
                        // before anyone sees us counted.
                        self.exhausted.fetch_add(1, Ordering::Release);
                    }
                    // Acquire: pairs with the other workers' Release. With
                    // everyone done, one last drain empties our rings.
                    if self.exhausted.load(Ordering::Acquire) == self.workers
                        && self.receive_handoffs(&mut out, &mut drops, &mut rerun) == 0
                    {
                        out.flush_all(&mut self.ports, &mut self.pool, &mut drops);
                        break;
                    }
                    out.flush_all(&mut self.ports, &mut self.pool, &mut drops);
                }
                idle_loops = idle_loops.saturating_add(1);
                if self.idle == Idle::Backoff {
                    back_off(idle_loops);
                }
            }
        }

        // Shutdown: nothing new comes in; return every frame to the pool.
        if let Some(r) = self.pipeline.router_mut() {
            for (addr, tail) in r.take_held() {
                self.pool.free_packet(addr, tail);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        for (_, port) in &mut self.ports {
            port.close(&mut self.pool, deadline);
        }
        self.counters.publish_drops(&drops);
        self.telemetry.publish();
        let held: usize = self.ports.iter().map(|(_, p)| p.frames_held()).sum();
        WorkerReport {
            id: self.id,
            drops,
            frames_accounted: self.pool.available() + held + self.retired,
            frames_total: self.pool.total() as usize,
            pinned,
            longest_pause,
        }
    }

    /// Only the bridge (learning, storm control) and the ACL flow table
    /// read the clock: a cross-connect does not pay for a clock read
    /// every loop. The worker serving the VTEP's underlay port resolves
    /// its next hops by ARP, about once a second while any is unknown.
    fn pipeline_needs(&self, out: &Outputs) -> (bool, bool) {
        let underlay = self.pipeline.vxlan().is_some_and(|v| {
            out.local
                .get(v.cfg.port as usize)
                .copied()
                .flatten()
                .is_some()
        });
        (self.pipeline.uses_clock(), underlay)
    }

    /// Applies one command from the control thread (see `Command`); out
    /// of line, so the forwarding loop's code stays as it was.
    #[cold]
    #[inline(never)]
    fn apply(&mut self, cmd: Command, out: &mut Outputs) {
        match cmd {
            Command::Add {
                id,
                port,
                tap,
                done,
            } => {
                self.ports.push((id, *port));
                out.taps.push(tap);
                out.reindex(&self.ports);
                let _ = done.send(());
            }
            Command::Remove { id, done } => {
                // The drain holds up every other port of this worker. A
                // 2048-entry fill ring lasts 107 ms at 19 kpps; with a
                // 200 ms bound here, live_topology once lost 285 frames
                // of its paced flow to a stall of about 120 ms in a
                // reload that removed a port. A TX not completed in
                // 10 ms is stuck (its device going away): its frames
                // are retired from the pool and counted, not waited for.
                let deadline = Instant::now() + REMOVE_DRAIN;
                let mut gone = Vec::new();
                while let Some(i) = self.ports.iter().position(|(p, _)| *p == id) {
                    let (_, mut port) = self.ports.remove(i);
                    out.taps.remove(i);
                    port.close(&mut self.pool, deadline);
                    self.retired += port.frames_held();
                    if port.frames_held() > 0 {
                        tracing::warn!(port = port.name(), frames = port.frames_held(), "frames held by the device's driver or still in flight leave with the port: retired from worker {}'s pool", self.id);
                    }
                    gone.push(port);
                }
                out.reindex(&self.ports);
                let _ = done.send(gone);
            }
            Command::Snapshot {
                pipeline,
                owner,
                done,
            } => {
                let old = std::mem::replace(&mut self.pipeline, *pipeline);
                for (addr, tail) in self.pipeline.carry_over(old) {
                    self.pool.free_packet(addr, tail);
                }
                out.owner = owner;
                out.reindex(&self.ports);
                let _ = done.send(());
            }
        }
    }

    /// Floods a gratuitous ARP for every IPv4 gateway address and an
    /// unsolicited neighbour advertisement for every IPv6 one into its
    /// domain, so that hosts and switches learn (or relearn) the router
    /// MAC, as a router does when an interface comes up.
    #[cold]
    fn announce(&mut self, out: &mut Outputs, drops: &mut DropCounters) {
        let Some(router) = self.pipeline.router() else {
            return;
        };
        let frames = router.announcements();
        self.flood_frames(&frames, out, drops);
    }

    /// Floods frames the router built (announcements, ARP requests, NS)
    /// into their domains, from the router's pseudo-port.
    #[cold]
    fn flood_frames(
        &mut self,
        frames: &[(DomainId, Vec<u8>)],
        out: &mut Outputs,
        drops: &mut DropCounters,
    ) {
        let headroom = self.pool.headroom() as u16;
        for chunk in frames.chunks(BATCH_SIZE) {
            let mut batch = Batch::new();
            for (d, f) in chunk {
                let Some(a) = self.pool.alloc_copy(f) else {
                    drops.count(DropReason::PoolEmpty);
                    continue;
                };
                batch.push(a, f.len() as u32, headroom, ROUTER_PORT);
                let i = batch.len() - 1;
                batch.domain[i] = *d;
                batch.prio[i] = 0;
                batch.verdict[i] = Verdict::Flood(*d);
            }
            dispatch(
                &batch,
                out,
                &mut self.ports,
                &mut self.pool,
                &mut self.pipeline,
                drops,
            );
        }
    }

    /// Frames other workers handed over: for our ports, copied into our
    /// pool and queued for TX; for our NAT sessions (`RERUN`), copied
    /// into `rerun` and run through our pipeline from the router on. At
    /// most a batch per ring per loop.
    fn receive_handoffs(
        &mut self,
        out: &mut Outputs,
        drops: &mut DropCounters,
        rerun: &mut Batch,
    ) -> usize {
        let mut n = 0;
        let headroom = self.pool.headroom() as u16;
        rerun.clear();
        for r in 0..self.from_workers.len() {
            for _ in 0..BATCH_SIZE {
                let pool = &mut self.pool;
                let got = self.from_workers[r].pop_tagged(|tag, bytes| {
                    if tag != RERUN {
                        return Some((tag, None, pool.alloc_chain(bytes), bytes.len() as u32));
                    }
                    let (head, pkt) = bytes.split_at_checked(RERUN_HEADER)?;
                    let port = PortId::from_ne_bytes([head[0], head[1]]);
                    let domain = DomainId::from_ne_bytes([head[2], head[3]]);
                    Some((port, Some(domain), pool.alloc_chain(pkt), pkt.len() as u32))
                });
                let Some(got) = got else {
                    break;
                };
                n += 1;
                let Some((port, domain, frame, whole)) = got else {
                    drops.count(DropReason::BadDescriptor);
                    continue;
                };
                let Some((addr, len)) = frame else {
                    drops.count(DropReason::PoolEmpty);
                    continue;
                };
                let Some(domain) = domain else {
                    out.deliver(
                        port,
                        addr,
                        (len, whole - len),
                        &mut self.ports,
                        &mut self.pool,
                        drops,
                    );
                    continue;
                };
                if rerun.is_full() {
                    self.run_handed(rerun, out, drops);
                }
                let k = rerun.len();
                rerun.push(addr, len, headroom, port);
                rerun.tail_len[k] = whole - len;
                rerun.domain[k] = domain;
            }
        }
        self.run_handed(rerun, out, drops);
        n
    }

    /// Runs packets other workers handed over for our NAT sessions.
    fn run_handed(&mut self, batch: &mut Batch, out: &mut Outputs, drops: &mut DropCounters) {
        if batch.is_empty() {
            return;
        }
        self.pipeline.set_handed(true);
        self.pipeline.run(batch, &mut self.pool, drops);
        self.pipeline.set_handed(false);
        dispatch(
            batch,
            out,
            &mut self.ports,
            &mut self.pool,
            &mut self.pipeline,
            drops,
        );
        batch.clear();
    }
}

/// Moves each packet of the batch to its fate: an output, or back to the
/// pool (drops were counted by the stage that dropped them).
#[inline]
fn dispatch(
    batch: &Batch,
    out: &mut Outputs,
    ports: &mut [(PortId, AnyPort)],
    pool: &mut FramePool,
    pipeline: &mut Pipeline,
    drops: &mut DropCounters,
) {
    let mut i = 0;
    while i < batch.len() {
        if let Verdict::Forward(p) = batch.verdict[i] {
            if let Some(l) = out.local.get(p as usize).copied().flatten() {
                i = out.queue_run(l, p, batch, i, ports, pool, drops);
                continue;
            }
        }
        let (addr, tail) = (batch.addr[i], batch.tail_len[i]);
        match batch.verdict[i] {
            Verdict::Forward(p) => {
                out.deliver(p, addr, (batch.data_len[i], tail), ports, pool, drops)
            }
            Verdict::Drop(_) => pool.free_packet(addr, tail),
            Verdict::Flood(d) => flood(batch, i, d, out, ports, pool, pipeline, drops),
            Verdict::Local => local(batch, i, out, ports, pool, pipeline, drops),
            // The router keeps the frame until the next hop resolves.
            Verdict::Held => {}
            Verdict::Handoff(w) => out.hand_over(w, batch, i, pool, drops),
            // Every stage decides; a packet none did is counted, not lost.
            Verdict::Pending => {
                drops.count(DropReason::NoRoute);
                pool.free_packet(addr, tail);
            }
        }
        i += 1;
    }
}

/// How long a worker waits for a removed port's transmits to complete.
const REMOVE_DRAIN: Duration = Duration::from_millis(10);

/// Most members a flood reaches: every port the config allows, and the
/// VXLAN tunnels' pseudo-member.
pub const MAX_FLOOD: usize = crate::config::MAX_PORTS + 1;

/// Sends packet `i` of the batch to every member of domain `d` but the
/// ingress port (split horizon): one copy per extra destination, the
/// original frame to the last one, each tagged for its port.
#[allow(clippy::too_many_arguments)]
#[inline]
fn flood(
    batch: &Batch,
    i: usize,
    d: DomainId,
    out: &mut Outputs,
    ports: &mut [(PortId, AnyPort)],
    pool: &mut FramePool,
    pipeline: &mut Pipeline,
    drops: &mut DropCounters,
) {
    let (addr, len, headroom) = (batch.addr[i], batch.data_len[i], batch.headroom[i]);
    let tail = batch.tail_len[i];
    let (ingress, skip) = (batch.in_port[i], batch.flood_skip[i]);
    // The members, copied to the stack (the slice borrows the pipeline,
    // which the egress ACL check needs mutably), then narrowed in place
    // to those but the ingress port whose egress ACL lets the packet out.
    let mut targets = [0 as PortId; MAX_FLOOD];
    let members = pipeline.flood_members(d);
    let all = members.len().min(MAX_FLOOD);
    targets[..all].copy_from_slice(&members[..all]);
    let mut n = 0;
    let mut denied = false;
    let mut tunneled = false;
    for k in 0..all {
        let m = targets[k];
        if m == ingress || m == skip {
            continue;
        }
        if m == FLOOD_TUNNELS {
            // Head-end replication, never from one tunnel to another
            // (split horizon).
            if ingress < TUNNEL_BASE {
                tunneled = flood_tunnels(batch, i, d, out, ports, pool, pipeline, drops);
            }
            continue;
        }
        if !pipeline.flood_permits(batch, i, m) {
            denied = true;
            continue;
        }
        // n <= k: the kept members move down over the skipped ones.
        targets[n] = m;
        n += 1;
    }
    if n == 0 {
        if !tunneled {
            drops.count(if denied {
                DropReason::AclDeny
            } else {
                DropReason::NoRoute
            });
        }
        pool.free_packet(addr, tail);
        return;
    }
    let mut left = n;
    for &m in &targets[..n] {
        left -= 1;
        // Copies first, from the untouched original; the original itself
        // goes last, so no copy ever reads a frame already re-tagged.
        let frame = if left == 0 {
            Some(addr)
        } else {
            pool.clone_packet(addr, len, tail)
        };
        let Some(copy) = frame else {
            drops.count(DropReason::PoolEmpty);
            continue;
        };
        let tag = pipeline
            .vlan()
            .map_or(EgressTag::Untagged, |v| v.egress(d, m));
        let pushed = egress_allowed(tag, batch.tags[i])
            .and_then(|()| push_tags(pool, copy, len, headroom, tag, batch.prio[i]));
        match pushed {
            Ok((a, n, _)) => out.deliver(m, a, (n, tail), ports, pool, drops),
            Err(reason) => {
                drops.count(reason);
                pool.free_packet(copy, tail);
            }
        }
    }
}

/// Sends a copy of packet `i` to every remote VTEP in domain `d`'s flood
/// list, encapsulated, out of the underlay port. True if any went out.
#[allow(clippy::too_many_arguments)]
fn flood_tunnels(
    batch: &Batch,
    i: usize,
    d: DomainId,
    out: &mut Outputs,
    ports: &mut [(PortId, AnyPort)],
    pool: &mut FramePool,
    pipeline: &mut Pipeline,
    drops: &mut DropCounters,
) -> bool {
    let Some(vtep) = pipeline.vxlan() else {
        return false;
    };
    let (underlay, set) = (vtep.cfg.port, vtep.flood_set(d));
    let (addr, len, headroom) = (batch.addr[i], batch.data_len[i], batch.headroom[i]);
    let tail = batch.tail_len[i];
    let mut sent = false;
    for (w, mut bits) in set.into_iter().enumerate() {
        while bits != 0 {
            let r = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(copy) = pool.clone_packet(addr, len, tail) else {
                drops.count(DropReason::PoolEmpty);
                continue;
            };
            match pipeline.encap_copy(pool, (copy, len, headroom), tail, r, d) {
                Ok((a, n, _)) => {
                    out.deliver(underlay, a, (n, tail), ports, pool, drops);
                    sent = true;
                }
                Err(reason) => {
                    drops.count(reason);
                    pool.free_packet(copy, tail);
                }
            }
        }
    }
    sent
}

/// A packet for the engine itself: ARP on the VTEP's underlay. A request
/// for our address is answered in place; what else comes is learned from
/// (a neighbor's reply) and freed.
fn local(
    batch: &Batch,
    i: usize,
    out: &mut Outputs,
    ports: &mut [(PortId, AnyPort)],
    pool: &mut FramePool,
    pipeline: &Pipeline,
    drops: &mut DropCounters,
) {
    let (addr, len, tail) = (batch.addr[i], batch.data_len[i], batch.tail_len[i]);
    let reply = match (pipeline.vxlan(), pool.bytes_mut(addr, len)) {
        (Some(v), Some(f)) if tail == 0 => v.handle_arp(f).map(|n| (v.cfg.port, n)),
        _ => None,
    };
    match reply {
        Some((port, n)) => out.deliver(port, addr, (n as u32, 0), ports, pool, drops),
        None => {
            drops.count(DropReason::ArpIgnored);
            pool.free_packet(addr, tail);
        }
    }
}

/// Asks, by ARP on the underlay, for every next hop the VTEP has not
/// resolved (the worker serving the underlay does this about once a
/// second).
fn request_neighbors(
    pipeline: &Pipeline,
    out: &mut Outputs,
    ports: &mut [(PortId, AnyPort)],
    pool: &mut FramePool,
    drops: &mut DropCounters,
) {
    let Some(v) = pipeline.vxlan().filter(|v| !v.cfg.kernel_neighbors) else {
        return;
    };
    for ip in v.unresolved() {
        let mut f = [0u8; 60];
        pollgate_pipeline::wire::arp::emit_frame(&mut f, v.cfg.mac, v.cfg.ip, None, ip);
        match pool.alloc_copy(&f) {
            Some(a) => out.deliver(v.cfg.port, a, (60, 0), ports, pool, drops),
            None => drops.count(DropReason::PoolEmpty),
        }
    }
}

#[inline]
fn flush(
    buf: &mut TxBuffer,
    tap: &mut TapWriter,
    port: &mut AnyPort,
    pool: &mut FramePool,
    drops: &mut DropCounters,
) {
    if buf.len == 0 {
        return;
    }
    if !port.link_up() {
        // The device is gone (its container's namespace deleted, say):
        // the frames are counted and returned, the other ports go on.
        for d in &buf.descs[..buf.len] {
            pool.free_packet(d.addr, d.tail);
        }
        drops.add(DropReason::PortDown, buf.len as u64);
        buf.len = 0;
        return;
    }
    if tap.active() {
        for d in &buf.descs[..buf.len] {
            tap.copy_packet(pool, d.addr, d.len, d.tail);
        }
    }
    let sent = port.tx_burst(pool, &buf.descs[..buf.len]);
    if sent < buf.len {
        // A short TX: the rest are counted and their frames returned.
        let rest = (buf.len - sent) as u64;
        for d in &buf.descs[sent..buf.len] {
            pool.free_packet(d.addr, d.tail);
        }
        bump(&port.counters().tx_full, rest);
        drops.add(DropReason::TxRingFull, rest);
    }
    buf.len = 0;
}

/// Spin briefly, then yield, then sleep with doubling pauses up to 1 ms:
/// an idle engine costs little CPU on a shared machine, and the first
/// packet after a pause waits at most about a millisecond.
fn back_off(idle_loops: u32) {
    match idle_loops {
        0..=255 => std::hint::spin_loop(),
        256..=1023 => std::thread::yield_now(),
        n => {
            let shift = ((n - 1024) / 64).min(7);
            std::thread::sleep(Duration::from_micros(8u64 << shift));
        }
    }
}
