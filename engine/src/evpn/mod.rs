//! BGP EVPN with FRR as the control plane: pollgate is the data plane
//! under zebra and bgpd, joined through the kernel as SONiC joins its
//! ASIC (`kernel`: the devices zebra sees; `mirror`: the MACs and VTEPs
//! copied both ways). A thread of its own runs it, off the workers.

mod kernel;
mod mirror;

use crate::live::Control;
use mirror::Mirror;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What `show evpn` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EvpnStatus {
    pub running: bool,
    /// The VTEP's underlay is shared with the kernel stack.
    pub shared_underlay: bool,
    pub vnis: Vec<VniStatus>,
    pub counters: MirrorCounters,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VniStatus {
    pub vni: u32,
    pub domain: String,
    pub devices: Vec<String>,
    /// MACs written to the kernel for zebra to advertise.
    pub local_macs: usize,
    /// MACs zebra installed (type-2 routes of other VTEPs).
    pub remote_macs: usize,
    /// Local hosts' addresses written for zebra (MAC+IP routes).
    pub local_ips: usize,
    /// Remote hosts' addresses zebra installed: answered here (ARP
    /// suppression).
    pub remote_ips: usize,
    /// The flood list (type-3 routes).
    pub remote_vteps: Vec<String>,
    pub state: String,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorCounters {
    /// Static FDB entries written and removed on `accN`.
    pub fdb_writes: u64,
    pub fdb_deletes: u64,
    /// ARP entries written and removed on `brN` (local MAC+IP).
    pub neigh_writes: u64,
    pub neigh_deletes: u64,
    /// ARP requests the bridge answered, local senders it recorded.
    pub arp_suppressed: u64,
    pub arp_snooped: u64,
    /// Neighbour notifications read.
    pub events: u64,
    pub remote_added: u64,
    pub remote_removed: u64,
    /// ARP entries of the shared underlay taken as next hops.
    pub neighbours: u64,
    pub resolve_requests: u64,
    /// Full re-reads (start, new VNI, lost notifications).
    pub resyncs: u64,
    /// Deletions kept because zebra had stopped (its clean-up at exit).
    pub held: u64,
    /// Notifications lost to a full socket buffer.
    pub overflows: u64,
    pub errors: u64,
}

/// How often local MACs are compared with what the kernel was given.
const LOCAL_PERIOD: Duration = Duration::from_millis(100);
const RESOLVE_PERIOD: Duration = Duration::from_secs(1);

/// The mirror's thread.
pub struct Evpn {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Evpn {
    /// Starts the thread; it idles until the topology has an EVPN VNI or
    /// a shared underlay, and follows live changes.
    pub fn start(control: Arc<Control>, status: Arc<Mutex<EvpnStatus>>) -> std::io::Result<Evpn> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut mirror = Mirror::new(control)?;
        let handle = std::thread::Builder::new()
            .name("pollgate-evpn".into())
            .spawn(move || {
                let mut last_local = Instant::now();
                let mut last_resolve = Instant::now();
                let (mut was_active, mut first) = (false, true);
                while !flag.load(Ordering::Relaxed) {
                    mirror.follow_topology();
                    mirror.drain();
                    mirror.settle();
                    if last_local.elapsed() >= LOCAL_PERIOD {
                        last_local = Instant::now();
                        mirror.sync_local();
                    }
                    if mirror.resolve_due || last_resolve.elapsed() >= RESOLVE_PERIOD {
                        last_resolve = Instant::now();
                        mirror.resolve();
                    }
                    // An idle mirror (no VTEP) publishes once and then
                    // allocates nothing on its thread.
                    let active = mirror.active();
                    if active || was_active || first {
                        if let Ok(mut s) = status.lock() {
                            *s = mirror.status();
                        }
                    }
                    (was_active, first) = (active, false);
                    mirror.wait(LOCAL_PERIOD.as_millis() as i32);
                }
                mirror.close();
                if let Ok(mut s) = status.lock() {
                    s.running = false;
                    s.vnis.clear();
                }
            })?;
        Ok(Evpn {
            handle: Some(handle),
            stop,
        })
    }

    /// Stops the thread, which removes the kernel mirror.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Evpn {
    fn drop(&mut self) {
        self.stop();
    }
}
