//! The generator: one AF_XDP socket sends the spec's frames (in a named
//! namespace if asked), another receives them behind the device under
//! test; one thread runs both, burst by burst, as a pktgen core does.

use crate::frame::{self, Template};
use crate::receiver::{Latency, Receiver};
use crate::spec::{Rate, Spec};
use crate::stamp;
use pollgate_pipeline::{Batch, FrameMemory};
use pollgate_pmd::afxdp::{AfXdpConfig, AfXdpPort};
use pollgate_pmd::netns::NetNs;
use pollgate_pmd::{FramePool, PoolConfig, Port, TxDesc};
use serde::Serialize;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

const BURST: usize = 32;
/// Most RX bursts read per send: enough to keep up with what one send
/// burst brings back, even duplicated by floods.
const RX_BURSTS_PER_POLL: usize = 8;
/// How long the receiver keeps listening after the last frame was sent.
const DRAIN_IDLE: Duration = Duration::from_millis(100);
const DRAIN_MAX: Duration = Duration::from_millis(1000);

/// An interface, in a named namespace or the caller's.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub iface: String,
    pub netns: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("namespace {ns}: {source}")]
    Netns { ns: String, source: std::io::Error },
    #[error("{iface}: {source}")]
    Port {
        iface: String,
        source: pollgate_pmd::PmdError,
    },
    #[error("frame pool: {0}")]
    Pool(pollgate_pmd::PmdError),
    #[error("{iface}: {len}-byte frames need a multi-buffer port; its MTU is too small (set it to at least {mtu})")]
    TooBig {
        iface: String,
        len: usize,
        mtu: usize,
    },
}

/// One trial's outcome. `lost` counts stamped frames sent and not
/// received (frames still in flight when the drain ends count as lost).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trial {
    pub target_pps: Option<f64>,
    pub seconds: f64,
    pub sent: u64,
    pub sent_bytes: u64,
    pub offered_pps: f64,
    pub received: u64,
    pub received_pps: f64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub reordered: u64,
    pub late: u64,
    pub foreign: u64,
    /// Frames that came back on the sending port (floods, replies).
    pub returned: u64,
    /// Frames of the attack stream sent meanwhile (0 without one).
    pub attack_sent: u64,
    pub attack_pps: f64,
    pub latency: Latency,
}

/// A second stream sent at maximum rate from its own port, in the gaps
/// of the measured one: the attack (a MAC flood…) the measured traffic
/// must get through. Its frames carry no stamp and are not received.
struct Attack {
    port: AfXdpPort,
    templates: Vec<Vec<u8>>,
    next: usize,
}

/// How long a sleeping generator waits: until frame `sent` is due at
/// `pps`, `elapsed` ns into the trial, at least 50 µs (a sleep shorter
/// than the timer's slack buys nothing) and at most 1 ms (what it
/// receives meanwhile waits in its RX ring).
fn until_due(sent: u64, pps: f64, elapsed: u64) -> Duration {
    let due_ns = ((sent + 1) as f64 * 1e9 / pps) as u64;
    Duration::from_nanos(due_ns.saturating_sub(elapsed).clamp(50_000, 1_000_000))
}

pub struct Generator {
    templates: Vec<Template>,
    /// Index into `templates` of the frame for packet k: flow k % flows,
    /// size cycle[k % cycle.len()].
    sizes: usize,
    cycle: Vec<usize>,
    flows: usize,
    pool: FramePool,
    tx: AfXdpPort,
    rx: Option<AfXdpPort>,
    attack: Option<Attack>,
    umem_owner: Option<RawFd>,
    cfg: AfXdpConfig,
    seq: u64,
    clock: Instant,
    pub progress: bool,
    /// At a paced rate, sleep while no frame is due and none arrived,
    /// instead of polling: a generator that spins takes a whole core,
    /// which a two-core machine cannot spare beside the device under
    /// test. Latency then includes up to one sleep (at most 1 ms).
    pub sleep_idle: bool,
}

/// Copies `bytes` into fresh frames after their headroom (a chain of
/// them for a jumbo frame): the descriptor that sends it, and the first
/// frame's bytes, where the stamp goes. `None` when the pool is empty.
fn copy_to_frame<'p>(pool: &'p mut FramePool, bytes: &[u8]) -> Option<(TxDesc, &'p mut [u8])> {
    let (addr, len) = pool.alloc_chain(bytes)?;
    let d = TxDesc {
        addr,
        len,
        tail: bytes.len() as u32 - len,
    };
    Some((d, pool.bytes_mut(addr, len)?))
}

fn open_port(
    name: &str,
    end: &Endpoint,
    cfg: &AfXdpConfig,
    pool: &mut FramePool,
    owner: &mut Option<RawFd>,
) -> Result<AfXdpPort, GenError> {
    let port_err = |source| GenError::Port {
        iface: end.iface.clone(),
        source,
    };
    match &end.netns {
        None => AfXdpPort::open(name, &end.iface, cfg, pool, owner, None).map_err(port_err),
        Some(ns) => {
            let netns_err = |source| GenError::Netns {
                ns: ns.clone(),
                source,
            };
            let handle = NetNs::open(ns).map_err(netns_err)?;
            // The socket and the XDP program are made inside the
            // namespace; the socket is then used from this thread.
            let r = handle
                .run(|| Ok(AfXdpPort::open(name, &end.iface, cfg, pool, owner, None)))
                .map_err(netns_err)?;
            r.map_err(port_err)
        }
    }
}

impl Generator {
    /// `ring` sizes the RX and fill rings; `tx_ring` the TX and
    /// completion rings. A short TX ring keeps the generator's own queue,
    /// and so its share of the measured latency, short: when the kernel
    /// falls behind, the offered rate drops (and is reported) instead.
    pub fn open(
        spec: &Spec,
        tx: &Endpoint,
        rx: Option<&Endpoint>,
        ring: u32,
        tx_ring: u32,
    ) -> Result<Generator, GenError> {
        let sizes = spec.sizes();
        let mut templates = Vec::with_capacity(spec.flows as usize * sizes.len());
        for flow in 0..spec.flows {
            for &s in &sizes {
                templates.push(frame::build(spec, flow, s));
            }
        }
        let cycle = spec
            .size_cycle()
            .iter()
            .map(|s| {
                sizes
                    .iter()
                    .position(|x| x == s)
                    .expect("cycle sizes are sizes")
            })
            .collect();
        let frames = (4 * ring + 2 * tx_ring).next_power_of_two().max(4096);
        let mut pool = FramePool::new(PoolConfig {
            frames,
            ..PoolConfig::default()
        })
        .map_err(GenError::Pool)?;
        // Frames longer than one pool frame go out as chains: the UMEM
        // must be bound for multi-buffer, and the TX device's MTU allow it.
        let longest = templates.iter().map(|t| t.bytes.len()).max().unwrap_or(0);
        let cfg = AfXdpConfig {
            rx_size: ring,
            fill_size: ring,
            tx_size: tx_ring,
            comp_size: tx_ring,
            multi_buffer: longest > pool.data_room() as usize,
            ..AfXdpConfig::default()
        };
        let mut owner = None;
        let txp = open_port("tx", tx, &cfg, &mut pool, &mut owner)?;
        if cfg.multi_buffer && !txp.accepts_chains() {
            return Err(GenError::TooBig {
                iface: tx.iface.clone(),
                len: longest,
                mtu: longest - 14,
            });
        }
        let rxp = match rx {
            Some(e) => Some(open_port("rx", e, &cfg, &mut pool, &mut owner)?),
            None => None,
        };
        Ok(Generator {
            templates,
            sizes: sizes.len(),
            cycle,
            flows: spec.flows as usize,
            pool,
            tx: txp,
            rx: rxp,
            attack: None,
            umem_owner: owner,
            cfg,
            seq: 0,
            clock: Instant::now(),
            progress: false,
            sleep_idle: false,
        })
    }

    /// Adds an attack stream: `spec`'s frames (every flow, first size) at
    /// maximum rate out of `tx`, alongside every trial.
    pub fn with_attack(&mut self, spec: &Spec, tx: &Endpoint) -> Result<(), GenError> {
        let size = spec.sizes()[0];
        let templates = (0..spec.flows)
            .map(|f| frame::build(spec, f, size).bytes)
            .collect();
        let port = open_port(
            "attack",
            tx,
            &self.cfg,
            &mut self.pool,
            &mut self.umem_owner,
        )?;
        self.attack = Some(Attack {
            port,
            templates,
            next: 0,
        });
        Ok(())
    }

    /// Sends one burst of the attack stream; returns frames taken.
    fn send_attack(&mut self, batch: &mut Batch) -> u64 {
        let Some(a) = self.attack.as_mut() else {
            return 0;
        };
        let mut descs = [TxDesc::default(); BURST];
        let mut k = 0;
        while k < BURST {
            let Some((d, _)) = copy_to_frame(&mut self.pool, &a.templates[a.next]) else {
                break;
            };
            descs[k] = d;
            a.next = (a.next + 1) % a.templates.len();
            k += 1;
        }
        let taken = a.port.tx_burst(&mut self.pool, &descs[..k]);
        for d in &descs[taken..k] {
            self.pool.free_packet(d.addr, d.tail);
        }
        a.port.poll(&mut self.pool);
        // Whatever the DUT floods back to the attacker is dropped here.
        batch.clear();
        let n = a.port.rx_burst(&mut self.pool, batch, 2, BURST);
        for i in 0..n {
            self.pool.free_packet(batch.addr[i], batch.tail_len[i]);
        }
        taken as u64
    }

    /// "copy"/"zero-copy" and the XDP mode of each socket, for the report.
    pub fn modes(&self) -> Vec<String> {
        let mut v = vec![format!("tx {}", self.tx.info().detail)];
        if let Some(rx) = &self.rx {
            v.push(format!("rx {}", rx.info().detail));
        }
        if let Some(a) = &self.attack {
            v.push(format!("attack {}", a.port.info().detail));
        }
        v
    }

    #[inline(always)]
    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Builds and queues up to `n` frames; returns (frames, bytes) taken.
    fn send(&mut self, n: usize, ts: u64) -> (u64, u64) {
        let mut descs = [TxDesc::default(); BURST];
        let mut k = 0;
        let mut bytes = 0u64;
        while k < n {
            let p = self.seq + k as u64;
            let size = self.cycle[(p % self.cycle.len() as u64) as usize];
            let flow = (p % self.flows as u64) as usize;
            let t = &self.templates[flow * self.sizes + size];
            let Some((d, buf)) = copy_to_frame(&mut self.pool, &t.bytes) else {
                break;
            };
            stamp::write(buf, t.stamp_at, t.l4_csum_at, t.udp, p, ts);
            descs[k] = d;
            bytes += (d.len + d.tail) as u64;
            k += 1;
        }
        let taken = self.tx.tx_burst(&mut self.pool, &descs[..k]);
        for d in &descs[taken..k] {
            bytes -= (d.len + d.tail) as u64;
            self.pool.free_packet(d.addr, d.tail);
        }
        self.seq += taken as u64;
        (taken as u64, bytes)
    }

    /// Receives what is waiting on both sockets; returns frames seen.
    fn receive(&mut self, rcv: &mut Receiver, returned: &mut u64, batch: &mut Batch) -> usize {
        let mut seen = 0;
        if let Some(rx) = self.rx.as_mut() {
            // Drain before sending more: a backlog left on the RX ring
            // would count as the DUT's latency.
            for _ in 0..RX_BURSTS_PER_POLL {
                batch.clear();
                let n = rx.rx_burst(&mut self.pool, batch, 1, BURST);
                if n > 0 {
                    let now = self.clock.elapsed().as_nanos() as u64;
                    for i in 0..n {
                        if let Some(f) = self.pool.bytes(batch.addr[i], batch.data_len[i]) {
                            rcv.frame_in(f, batch.pkt_len(i) as usize, now);
                        }
                        self.pool.free_packet(batch.addr[i], batch.tail_len[i]);
                    }
                    seen += n;
                }
                rx.poll(&mut self.pool);
                if n < BURST {
                    break;
                }
            }
        }
        batch.clear();
        let n = self.tx.rx_burst(&mut self.pool, batch, 0, BURST);
        for i in 0..n {
            self.pool.free_packet(batch.addr[i], batch.tail_len[i]);
        }
        *returned += n as u64;
        seen + n
    }

    /// Sends for `duration` (or `count` frames) at `rate`, then drains
    /// the receiver.
    pub fn trial(&mut self, rate: Rate, duration: Duration, count: Option<u64>) -> Trial {
        let mut rcv = Receiver::new(self.seq);
        let mut batch = Batch::new();
        let (mut sent, mut sent_bytes, mut returned) = (0u64, 0u64, 0u64);
        let mut attack_sent = 0u64;
        let limit = count.unwrap_or(u64::MAX);
        let start = Instant::now();
        let start_ns = self.now_ns();
        let mut last_report = start;
        let mut last_sent = 0u64;
        let mut last_recv = 0u64;
        loop {
            let now_ns = self.now_ns();
            let elapsed = now_ns - start_ns;
            if elapsed >= duration.as_nanos() as u64 || sent >= limit {
                break;
            }
            let due = match rate {
                Rate::Max => BURST as u64,
                Rate::Pps(pps) => ((elapsed as f64 * pps / 1e9) as u64)
                    .saturating_sub(sent)
                    .min(BURST as u64),
            };
            let n = due.min(limit - sent) as usize;
            if n > 0 {
                let (k, b) = self.send(n, now_ns);
                sent += k;
                sent_bytes += b;
            }
            self.tx.poll(&mut self.pool);
            let got = self.receive(&mut rcv, &mut returned, &mut batch);
            attack_sent += self.send_attack(&mut batch);
            // Never with an attack stream: it runs at full rate in the gaps.
            let idle = self.sleep_idle && self.attack.is_none();
            if let (true, Rate::Pps(pps), 0, 0) = (idle, rate, n, got) {
                std::thread::sleep(until_due(sent, pps, elapsed));
            }
            if self.progress && last_report.elapsed() >= Duration::from_secs(1) {
                let secs = last_report.elapsed().as_secs_f64();
                eprintln!(
                    "  t={:5.1}s  tx {:8.3} Mpps  rx {:8.3} Mpps  lost so far {}",
                    start.elapsed().as_secs_f64(),
                    (sent - last_sent) as f64 / secs / 1e6,
                    (rcv.received - last_recv) as f64 / secs / 1e6,
                    sent.saturating_sub(rcv.received)
                );
                last_report = Instant::now();
                last_sent = sent;
                last_recv = rcv.received;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        // Drain: until nothing arrived for DRAIN_IDLE, or DRAIN_MAX.
        let drain = Instant::now();
        let mut idle_since = Instant::now();
        while drain.elapsed() < DRAIN_MAX && idle_since.elapsed() < DRAIN_IDLE {
            self.tx.poll(&mut self.pool);
            if self.receive(&mut rcv, &mut returned, &mut batch) > 0 {
                idle_since = Instant::now();
            }
            if rcv.received >= sent && self.rx.is_some() {
                break;
            }
        }
        let received = rcv.received;
        let lost = if self.rx.is_some() {
            sent.saturating_sub(received)
        } else {
            0
        };
        Trial {
            target_pps: match rate {
                Rate::Max => None,
                Rate::Pps(p) => Some(p),
            },
            seconds,
            sent,
            sent_bytes,
            offered_pps: sent as f64 / seconds,
            received,
            received_pps: received as f64 / seconds,
            lost,
            loss_ratio: if sent > 0 {
                lost as f64 / sent as f64
            } else {
                0.0
            },
            reordered: rcv.reordered,
            late: rcv.late,
            foreign: rcv.foreign,
            returned,
            attack_sent,
            attack_pps: attack_sent as f64 / seconds,
            latency: rcv.latency(),
        }
    }

    /// Returns every frame to the pool (sockets close on drop).
    pub fn close(mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        self.tx.close(&mut self.pool, deadline);
        if let Some(rx) = self.rx.as_mut() {
            rx.close(&mut self.pool, deadline);
        }
        if let Some(a) = self.attack.as_mut() {
            a.port.close(&mut self.pool, deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::until_due;
    use std::time::Duration;

    #[test]
    fn a_sleeping_generator_wakes_for_its_next_frame_within_bounds() {
        // 1 kpps, frame 0 due at 1 ms: sleep until then.
        assert_eq!(until_due(0, 1000.0, 0), Duration::from_millis(1));
        // 20 kpps, frame 10 due at 550 µs, 400 µs in: 150 µs to go.
        assert_eq!(until_due(10, 20_000.0, 400_000), Duration::from_micros(150));
        // Overdue, or due sooner than the timer's slack: the floor.
        assert_eq!(until_due(10, 1000.0, 20_000_000), Duration::from_micros(50));
        assert_eq!(until_due(0, 1e6, 0), Duration::from_micros(50));
        // A slow rate never sleeps past 1 ms: replies wait in the RX ring.
        assert_eq!(until_due(0, 10.0, 0), Duration::from_millis(1));
    }
}
