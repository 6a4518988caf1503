//! The AF_XDP port: one socket on one (device, queue), sharing the
//! worker's UMEM. RX hands frame addresses straight to the batch; TX puts
//! them on the TX ring; the fill ring is kept stocked and the completion
//! ring reaped on every poll, so frames never pile up in the kernel.

use super::attach::{XdpAttachment, XdpMode};
use super::socket::{BindMode, XskConfig, XskSocket};
use super::sys::{XdpDesc, XDP_PKT_CONTD};
use super::xdp_prog::Steer;
use crate::device::{if_index, DeviceProbe};
use crate::ethtool::driver_name;
use crate::pool::{FramePool, UmemLayout};
use crate::port::{bump, AfXdpMode, Port, PortInfo, SharedCounters, TxDesc};
use crate::stall::{Event, StallWatch};
use crate::PmdError;
use pollgate_pipeline::{Batch, PortId};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Ring sizes and modes of an AF_XDP port.
#[derive(Debug, Clone, Copy)]
pub struct AfXdpConfig {
    pub queue: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub bind: BindMode,
    pub xdp: XdpMode,
    pub need_wakeup: bool,
    /// Preferred busy-poll budget; 0 leaves busy polling off.
    pub busy_poll_budget: u32,
    /// Replace (atomically) an XDP program another tool attached.
    pub force: bool,
    /// Leave the XDP program on the device at exit (a hand-over to the
    /// next start): `XdpAttachment::attach_handover`.
    pub handover: bool,
    /// Bind the UMEM for multi-buffer packets (XDP_USE_SG). The engine
    /// sets it for every socket of a worker that serves a jumbo port;
    /// a socket registering the UMEM also turns it on by itself when
    /// its own device's MTU needs it.
    pub multi_buffer: bool,
    /// What the XDP program gives the socket (the rest goes to the
    /// kernel stack).
    pub steer: Steer,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            queue: 0,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            bind: BindMode::Auto,
            xdp: XdpMode::Auto,
            need_wakeup: true,
            busy_poll_budget: 0,
            force: false,
            handover: false,
            steer: Steer::All,
            multi_buffer: false,
        }
    }
}

/// Polls between looks at the clock for housekeeping (checking that the
/// device still exists, reading the kernel's drop statistics), and the
/// time between housekeeping rounds.
const HOUSEKEEPING_POLLS: u32 = 1 << 10;
const HOUSEKEEPING_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);
/// Most completions reaped per poll.
const REAP_MAX: u32 = 256;
/// Most descriptors one multi-buffer packet takes: the kernel builds a
/// packet of at most MAX_SKB_FRAGS (17) fragments and a head.
const MAX_SEGMENTS: u32 = 18;
/// Bytes a frame holds beyond the MTU: Ethernet header and two VLAN tags.
pub const L2_OVERHEAD: u32 = 14 + 8;

/// Whether frames of a device with `mtu` can exceed one frame of `pool`.
pub fn needs_multi_buffer(mtu: u32, pool: &UmemLayout) -> bool {
    mtu + L2_OVERHEAD > pool.data_room()
}

pub struct AfXdpPort {
    name: String,
    ifname: String,
    ifindex: u32,
    queue: u32,
    driver: String,
    // Field order is drop order: the socket closes before the program
    // that feeds it is detached.
    xsk: XskSocket,
    xdp: Arc<XdpAttachment>,
    /// Frames given to the kernel for RX (fill ring, or received and not
    /// yet read from the RX ring).
    fill_held: u32,
    /// Frames on the TX ring or waiting on the completion ring.
    tx_held: u32,
    /// The socket takes and gives descriptor chains (XDP_USE_SG), and
    /// the device's MTU calls for them (so chains may be sent here).
    multi_buffer: bool,
    jumbo: bool,
    link_up: bool,
    /// The device's state, seen from the namespace the port was opened in.
    probe: DeviceProbe,
    /// Busy polling: every empty poll makes the syscall that runs NAPI.
    busy_poll: bool,
    polls: u32,
    last_housekeeping: Instant,
    /// TX completions so far, and the stall bookkeeping over them.
    tx_done: u64,
    stalls: StallWatch,
    counters: SharedCounters,
    /// Devices and namespace this port created; dropped last.
    created: Option<Arc<crate::veth::Created>>,
}

impl AfXdpPort {
    /// Opens an AF_XDP socket on `ifname` (in the caller's namespace) and
    /// steers its queue to it. `umem_owner` is the fd of the worker's
    /// first socket: `None` makes this socket register the pool, and is
    /// then set to it.
    pub fn open(
        name: &str,
        ifname: &str,
        cfg: &AfXdpConfig,
        pool: &mut FramePool,
        umem_owner: &mut Option<RawFd>,
        xdp: Option<Arc<XdpAttachment>>,
    ) -> Result<AfXdpPort, PmdError> {
        let mut port = Self::open_on(name, ifname, cfg, &pool.layout(), umem_owner, xdp)?;
        port.refill(pool);
        Ok(port)
    }

    /// As `open`, for a pool some other thread owns (a running worker's):
    /// the socket binds to the pool's memory, and its fill ring stays
    /// empty until the worker's first `poll` tops it up.
    pub fn open_on(
        name: &str,
        ifname: &str,
        cfg: &AfXdpConfig,
        pool: &UmemLayout,
        umem_owner: &mut Option<RawFd>,
        xdp: Option<Arc<XdpAttachment>>,
    ) -> Result<AfXdpPort, PmdError> {
        let err = |e: io::Error| PmdError::Device {
            dev: ifname.to_string(),
            source: e,
        };
        let ifindex = if_index(ifname).map_err(err)?;
        // The program first, as the engine does for its devices: it reads
        // the MTU the socket's multi-buffer mode depends on. Until the
        // socket is in its map, it passes traffic to the kernel stack.
        let xdp = match xdp {
            Some(x) => x,
            None => {
                let attach = if cfg.handover {
                    XdpAttachment::attach_handover
                } else {
                    XdpAttachment::attach
                };
                Arc::new(
                    attach(
                        ifname,
                        ifindex,
                        cfg.queue + 1,
                        cfg.xdp,
                        cfg.force,
                        cfg.steer,
                    )
                    .map_err(err)?,
                )
            }
        };
        let mtu = xdp.mtu();
        let jumbo = needs_multi_buffer(mtu, pool);
        let multi_buffer = cfg.multi_buffer || (jumbo && umem_owner.is_none());
        if jumbo && !multi_buffer {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MTU {mtu} needs multi-buffer AF_XDP ({} bytes per frame), but the worker's UMEM was registered without it", pool.data_room()),
            )));
        }
        let xsk_cfg = XskConfig {
            ifindex,
            queue: cfg.queue,
            rx_size: cfg.rx_size,
            tx_size: cfg.tx_size,
            fill_size: cfg.fill_size,
            comp_size: cfg.comp_size,
            mode: cfg.bind,
            need_wakeup: cfg.need_wakeup,
            multi_buffer,
        };
        let xsk = XskSocket::new(pool, *umem_owner, &xsk_cfg).map_err(err)?;
        if cfg.busy_poll_budget > 0 {
            xsk.set_busy_poll(cfg.busy_poll_budget).map_err(|e| {
                err(io::Error::new(
                    e.kind(),
                    format!("busy-poll socket options (Linux 5.11+, CAP_NET_ADMIN): {e}"),
                ))
            })?;
        }
        xdp.insert(cfg.queue, xsk.fd()).map_err(|e| {
            err(io::Error::new(
                e.kind(),
                format!("adding the socket to the XSKMAP: {e}"),
            ))
        })?;
        if umem_owner.is_none() {
            *umem_owner = Some(xsk.fd());
        }
        Ok(AfXdpPort {
            name: name.to_string(),
            ifname: ifname.to_string(),
            ifindex,
            queue: cfg.queue,
            driver: driver_name(ifname),
            xsk,
            xdp,
            fill_held: 0,
            tx_held: 0,
            multi_buffer,
            jumbo,
            link_up: true,
            probe: DeviceProbe::new().map_err(err)?,
            busy_poll: cfg.busy_poll_budget > 0,
            polls: 0,
            last_housekeeping: Instant::now(),
            tx_done: 0,
            stalls: StallWatch::default(),
            counters: SharedCounters::default(),
            created: None,
        })
    }

    /// The socket's fd: another socket of the same worker shares the
    /// UMEM through it.
    pub fn fd(&self) -> RawFd {
        self.xsk.fd()
    }

    /// Hands the port the devices it must remove when dropped.
    pub fn owning(mut self, created: Arc<crate::veth::Created>) -> Self {
        self.created = Some(created);
        self
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn xdp(&self) -> &Arc<XdpAttachment> {
        &self.xdp
    }

    /// Whether the kernel bound the socket in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.xsk.zero_copy()
    }

    /// Reads the `n` descriptors on the RX ring as packets, linking the
    /// frames of each multi-buffer packet in the pool, until the batch
    /// holds `room` packets. A packet whose last descriptor is not among
    /// the `n` stays on the ring for the next burst. Returns (descriptors
    /// consumed, packets, bytes).
    fn rx_chains(
        &mut self,
        pool: &mut FramePool,
        batch: &mut Batch,
        id: PortId,
        n: u32,
        room: u32,
    ) -> (u32, u32, u64) {
        let (mut i, mut packets, mut bytes) = (0u32, 0u32, 0u64);
        while i < n && packets < room {
            let mut end = i;
            while end < n && self.xsk.rx.read(end).options & XDP_PKT_CONTD != 0 {
                end += 1;
            }
            if end == n {
                break;
            }
            let head = self.xsk.rx.read(i);
            let mut prev = head.addr;
            let mut tail = 0u32;
            for k in i + 1..=end {
                let seg = self.xsk.rx.read(k);
                pool.link(prev, seg.addr, seg.len);
                tail += seg.len;
                prev = seg.addr;
            }
            let headroom = (head.addr - pool.frame_base(head.addr)) as u16;
            batch.push(head.addr, head.len, headroom, id);
            batch.tail_len[batch.len() - 1] = tail;
            bytes += (head.len + tail) as u64;
            packets += 1;
            i = end + 1;
        }
        (i, packets, bytes)
    }

    /// Descriptors the packet at `d` takes on the TX ring.
    #[inline]
    fn segments(pool: &FramePool, d: &TxDesc) -> u32 {
        if d.tail == 0 {
            return 1;
        }
        let mut n = 1;
        let mut at = d.addr;
        while let Some((next, _)) = pool.next_segment(at) {
            n += 1;
            at = next;
        }
        n
    }

    /// Puts multi-buffer packets on the TX ring, each as a chain of
    /// descriptors (XDP_PKT_CONTD on all but the last), as many whole
    /// packets as fit. Returns (packets taken, descriptors, bytes).
    fn tx_chains(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> (usize, u32, u64) {
        let (mut k, mut bytes) = (0u32, 0u64);
        let mut taken = 0;
        for d in descs {
            let want = k + Self::segments(pool, d);
            if self.xsk.tx.free(want) < want {
                break;
            }
            let (mut at, mut len) = (d.addr, d.len);
            loop {
                let next = if d.tail == 0 { None } else { pool.unlink(at) };
                let options = if next.is_some() { XDP_PKT_CONTD } else { 0 };
                self.xsk.tx.write(
                    k,
                    XdpDesc {
                        addr: at,
                        len,
                        options,
                    },
                );
                k += 1;
                match next {
                    Some((a, l)) => (at, len) = (a, l),
                    None => break,
                }
            }
            bytes += (d.len + d.tail) as u64;
            taken += 1;
        }
        (taken, k, bytes)
    }

    /// Tops the fill ring up from the pool.
    #[inline]
    fn refill(&mut self, pool: &mut FramePool) {
        let want = (self.xsk.fill.size() - self.fill_held).min(pool.available() as u32);
        if want == 0 {
            return;
        }
        let n = self.xsk.fill.free(want);
        // A chunk of frames at a time: one update of the pool's free
        // stack per chunk, not per frame (`FramePool::alloc_frames`).
        let mut bases = [0u64; 64];
        let mut done = 0;
        while done < n {
            let chunk = ((n - done) as usize).min(bases.len());
            let got = pool.alloc_frames(&mut bases[..chunk]);
            for (j, &base) in bases[..got].iter().enumerate() {
                self.xsk.fill.write(done + j as u32, base);
            }
            done += got as u32;
            if got < chunk {
                break;
            }
        }
        self.xsk.fill.submit(done);
        self.fill_held += done;
    }

    /// Returns completed TX frames to the pool.
    #[inline]
    fn reap(&mut self, pool: &mut FramePool) {
        let n = self.xsk.comp.available(REAP_MAX);
        let comp = &self.xsk.comp;
        pool.free_frames((0..n).map(|i| comp.read(i)));
        self.xsk.comp.release(n);
        self.tx_held -= n;
        self.tx_done += n as u64;
    }

    fn mark_down(&mut self, e: &io::Error) {
        if self.link_up {
            self.link_up = false;
            bump(&self.counters.link_down_events, 1);
            tracing_like_warn(&self.name, &self.ifname, e);
        }
    }

    fn housekeeping(&mut self) {
        match self.probe.running(self.ifindex) {
            None => self.mark_down(&io::Error::new(io::ErrorKind::NotFound, "device is gone")),
            Some(false) => self.mark_down(&io::Error::new(
                io::ErrorKind::NotConnected,
                "link is down (admin down or no carrier)",
            )),
            // Back up: the XDP program and the socket survived the link
            // going down, so forwarding resumes as it was.
            Some(true) if !self.link_up => {
                self.link_up = true;
                eprintln!(
                    "pollgate: port {} ({} queue {}) is up again",
                    self.name, self.ifname, self.queue
                );
            }
            Some(true) => {}
        }
        let mut fill_empty = self.counters.fill_empty.load(Ordering::Relaxed);
        if let Ok(s) = self.xsk.statistics() {
            self.counters
                .kernel_drops
                .store(s.rx_dropped + s.rx_ring_full, Ordering::Relaxed);
            fill_empty = s.rx_fill_ring_empty_descs;
            self.counters
                .fill_empty
                .store(fill_empty, Ordering::Relaxed);
        }
        let (tx, fill) = self.stalls.round(self.tx_held, self.tx_done, fill_empty);
        if let Some(Event::TxStalled { outstanding, first }) = tx {
            if first {
                bump(&self.counters.tx_stalls, 1);
                eprintln!(
                    "pollgate: port {} ({} queue {}): TX completions stopped with {outstanding} frames outstanding; kicking the kernel",
                    self.name, self.ifname, self.queue
                );
            }
            // Whatever need_wakeup says: a wakeup is what restarts a
            // copy-mode TX that lost one.
            if let Err(e) = self.xsk.kick_tx() {
                self.mark_down(&e);
            }
        }
        if let Some(Event::FillStarved { times }) = fill {
            eprintln!(
                "pollgate: port {} ({} queue {}): the kernel found the fill ring empty {times} times (frames dropped): the worker's pool is short of frames or the worker falls behind",
                self.name, self.ifname, self.queue
            );
        }
    }
}

/// pmd has no logging dependency: device events go to stderr once, and
/// are counted in `link_down_events`.
fn tracing_like_warn(port: &str, ifname: &str, e: &io::Error) {
    eprintln!("pollgate: port {port} ({ifname}) is down: {e}");
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> PortInfo {
        let m = AfXdpMode {
            device: self.ifname.clone(),
            queue: self.queue,
            driver: self.driver.clone(),
            zero_copy: self.xsk.zero_copy(),
            native_xdp: self.xdp.native(),
            multi_buffer: self.multi_buffer,
            mtu: self.xdp.mtu(),
        };
        PortInfo {
            kind: "afxdp",
            detail: format!(
                "{} queue {} driver {}: {} mode{}, {} XDP (prog id {})",
                m.device,
                m.queue,
                m.driver,
                m.bind(),
                if m.multi_buffer {
                    format!(" multi-buffer (MTU {})", m.mtu)
                } else {
                    String::new()
                },
                m.xdp(),
                self.xdp.prog_id()
            ),
            afxdp: Some(m),
        }
    }

    #[inline]
    fn rx_burst(
        &mut self,
        pool: &mut FramePool,
        batch: &mut Batch,
        id: PortId,
        max: usize,
    ) -> usize {
        let room = max.min(batch.room()) as u32;
        // A multi-buffer packet takes several descriptors.
        let want = if self.multi_buffer {
            room * MAX_SEGMENTS
        } else {
            room
        };
        let n = self.xsk.rx.available(want);
        if n == 0 {
            if (self.busy_poll || self.xsk.fill.needs_wakeup()) && self.link_up {
                bump(&self.counters.wakeups, 1);
                if let Err(e) = self.xsk.wake_rx() {
                    self.mark_down(&e);
                }
            }
            return 0;
        }
        let (n, packets, bytes) = if self.multi_buffer {
            self.rx_chains(pool, batch, id, n, room)
        } else {
            let mut bytes = 0u64;
            for i in 0..n {
                let XdpDesc { addr, len, .. } = self.xsk.rx.read(i);
                let headroom = (addr - pool.frame_base(addr)) as u16;
                batch.push(addr, len, headroom, id);
                bytes += len as u64;
            }
            (n, n, bytes)
        };
        self.xsk.rx.release(n);
        self.fill_held -= n;
        bump(&self.counters.rx_packets, packets as u64);
        bump(&self.counters.rx_bytes, bytes);
        self.refill(pool);
        packets as usize
    }

    #[inline]
    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize {
        if !self.link_up {
            for d in descs {
                pool.free_packet(d.addr, d.tail);
            }
            bump(&self.counters.tx_errors, descs.len() as u64);
            return descs.len();
        }
        self.reap(pool);
        let (taken, n, bytes) = if self.jumbo {
            self.tx_chains(pool, descs)
        } else {
            let n = self.xsk.tx.free(descs.len() as u32);
            let mut bytes = 0u64;
            for (i, d) in descs[..n as usize].iter().enumerate() {
                debug_assert_eq!(d.tail, 0, "the worker sends chains only to jumbo ports");
                self.xsk.tx.write(
                    i as u32,
                    XdpDesc {
                        addr: d.addr,
                        len: d.len,
                        options: 0,
                    },
                );
                bytes += d.len as u64;
            }
            (n as usize, n, bytes)
        };
        self.xsk.tx.submit(n);
        self.tx_held += n;
        bump(&self.counters.tx_packets, taken as u64);
        bump(&self.counters.tx_bytes, bytes);
        if self.xsk.tx.needs_wakeup() {
            bump(&self.counters.wakeups, 1);
            if let Err(e) = self.xsk.kick_tx() {
                self.mark_down(&e);
            }
        }
        taken
    }

    fn accepts_chains(&self) -> bool {
        self.jumbo
    }

    #[inline]
    fn poll(&mut self, pool: &mut FramePool) {
        self.reap(pool);
        self.refill(pool);
        // Copy mode sends a bounded number of frames per kick: keep
        // kicking while the kernel has not taken everything.
        if self.tx_held > 0
            && self.link_up
            && self.xsk.tx.needs_wakeup()
            && self.xsk.tx.pending() > 0
        {
            bump(&self.counters.wakeups, 1);
            if let Err(e) = self.xsk.kick_tx() {
                self.mark_down(&e);
            }
        }
        self.polls = self.polls.wrapping_add(1);
        if self.polls.is_multiple_of(HOUSEKEEPING_POLLS)
            && self.last_housekeeping.elapsed() >= HOUSEKEEPING_PERIOD
        {
            self.last_housekeeping = Instant::now();
            self.housekeeping();
        }
    }

    fn link_up(&self) -> bool {
        self.link_up
    }

    fn frames_held(&self) -> usize {
        (self.fill_held + self.tx_held) as usize
    }

    fn close(&mut self, pool: &mut FramePool, deadline: Instant) {
        // Stop new traffic reaching the socket, then wait for what was
        // queued for TX to complete.
        let _ = self.xdp.remove(self.queue);
        while self.tx_held > 0 && self.link_up && Instant::now() < deadline {
            if self.xsk.tx.needs_wakeup() {
                let _ = self.xsk.kick_tx();
            }
            self.reap(pool);
            std::thread::yield_now();
        }
        self.reap(pool);
        // Frames already received but not read go back to the pool.
        loop {
            let n = self.xsk.rx.available(64);
            if n == 0 {
                break;
            }
            for i in 0..n {
                pool.free(self.xsk.rx.read(i).addr);
            }
            self.xsk.rx.release(n);
            self.fill_held -= n;
        }
        // With the socket out of the map the kernel consumes no more fill
        // entries, nor (after the wait above) TX ones: what it left in
        // either ring is still ours. Frames a zero-copy driver took from
        // the fill ring stay with it until the socket closes.
        self.fill_held -= self.xsk.fill.take_back(|a| pool.free(a));
        self.tx_held -= self.xsk.tx.take_back(|d| pool.free(d.addr));
        self.housekeeping();
    }

    fn counters(&self) -> &SharedCounters {
        &self.counters
    }
}
