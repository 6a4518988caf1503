//! The mirror between pollgate and the kernel devices zebra reads and
//! writes (SONiC's fdbsyncd, both ways). Out: the MACs pollgate has on
//! its own ports in an EVPN domain become static FDB entries on `accN`.
//! In: what zebra installs on `vxlanN` (a MAC with `dst VTEP`: a type-2
//! route; the all-zero MAC with `dst VTEP`: a type-3 route, a member of
//! the flood list) becomes tunnel entries in the MAC table and the VTEP's
//! flood lists. Beside it, for an underlay shared with the kernel, the
//! kernel's ARP entries become the VTEP's next-hop MACs.

mod addresses;

use super::kernel::VniDevices;
use super::{EvpnStatus, MirrorCounters, VniStatus};
use crate::live::{Control, LiveView};
use pollgate_pipeline::vxlan::{Vtep, TUNNEL_BASE};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::DomainId;
use pollgate_pmd::netlink::{NeighEntry, NeighMonitor, Netlink, NTF_EXT_LEARNED};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a deletion waits before it is applied: long enough to see
/// whether zebra is stopping (it removes its entries, then exits).
const HOLD: Duration = Duration::from_millis(300);
/// How long a zebra that came back has to install its entries again
/// before what it did not install goes.
const REINSTALL: Duration = Duration::from_secs(3);

/// Whether a zebra runs in this network namespace: a process named
/// `zebra` whose `ns/net` is ours.
fn zebra_running() -> bool {
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|e| {
        let p = e.path();
        std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == "zebra")
            && std::fs::read_link(p.join("ns/net")).ok() == ours
    })
}

/// Receive buffer of the notification socket: 10 000 routes from zebra
/// at once must not overflow it (each notification is about 100 bytes).
const MONITOR_BUFFER: usize = 8 << 20;

struct Vni {
    dev: VniDevices,
    domain: DomainId,
    /// MACs written as static entries on `accN`.
    local: HashSet<[u8; 6]>,
    /// Local hosts' addresses written as ARP entries on `brN` (zebra
    /// advertises MAC+IP), and remote ones zebra installed there.
    local_ips: HashMap<[u8; 4], [u8; 6]>,
    remote_ips: HashMap<[u8; 4], [u8; 6]>,
    /// MACs zebra installed, and the VTEP behind each.
    remote: HashMap<[u8; 6], Ipv4Addr>,
    /// Remote VTEPs of the flood list (type-3 routes).
    floods: BTreeSet<Ipv4Addr>,
    error: Option<String>,
}

/// What zebra has installed on one VNI's VXLAN device: remote MACs and
/// the VTEP behind each, and the flood list.
type Installed = (HashMap<[u8; 6], Ipv4Addr>, BTreeSet<Ipv4Addr>);

pub struct Mirror {
    control: Arc<Control>,
    nl: Netlink,
    monitor: Option<NeighMonitor>,
    vnis: BTreeMap<u32, Vni>,
    view: Option<Arc<LiveView>>,
    vtep: Option<Arc<Vtep>>,
    /// The shared underlay's device index, whose ARP entries are read.
    underlay: Option<u32>,
    /// The VTEP address, when the mirror put it on `lo` itself.
    lo_address: Option<(u32, Ipv4Addr)>,
    ports: usize,
    /// Deletions zebra sent, not yet applied: (when, VNI, MAC, VTEP).
    pending: Vec<(Instant, u32, [u8; 6], Ipv4Addr)>,
    /// Since when zebra has been gone (its deletions kept), and since
    /// when it has been back.
    zebra_down: Option<Instant>,
    zebra_back: Option<Instant>,
    /// A remote VTEP appeared: look its MAC up now, not at the next
    /// periodic pass.
    pub resolve_due: bool,
    counters: MirrorCounters,
    last_error: Option<String>,
}

impl Mirror {
    pub fn new(control: Arc<Control>) -> std::io::Result<Mirror> {
        Ok(Mirror {
            control,
            nl: Netlink::open()?,
            monitor: None,
            vnis: BTreeMap::new(),
            view: None,
            vtep: None,
            underlay: None,
            lo_address: None,
            ports: 0,
            pending: Vec::new(),
            zebra_down: None,
            zebra_back: None,
            resolve_due: false,
            counters: MirrorCounters::default(),
            last_error: None,
        })
    }

    fn fail(&mut self, e: String) {
        tracing::warn!("evpn: {e}");
        self.counters.errors += 1;
        self.last_error = Some(e);
    }

    /// Waits up to `ms` for a notification.
    pub fn wait(&self, ms: i32) {
        match &self.monitor {
            Some(m) => {
                m.wait(ms);
            }
            None => std::thread::sleep(std::time::Duration::from_millis(ms as u64)),
        }
    }

    /// Follows topology changes: VNIs that gained or lost `evpn`, a VTEP
    /// rebuilt (its flood lists start empty and are set again).
    pub fn follow_topology(&mut self) {
        let view = self.control.view();
        if self.view.as_ref().is_some_and(|v| Arc::ptr_eq(v, &view)) {
            return;
        }
        self.view = Some(view.clone());
        // No VTEP and nothing mirrored: nothing to follow, and no copy of
        // the topology made on this thread at every change.
        if view.vtep.is_none() && self.vnis.is_empty() && self.underlay.is_none() {
            self.vtep = None;
            return;
        }
        let topo = self.control.topology();
        self.ports = topo.ports.len();
        let rebuilt = match (&self.vtep, &view.vtep) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (a, b) => a.is_some() != b.is_some(),
        };
        self.vtep = view.vtep.clone();
        let want: BTreeMap<u32, DomainId> = match &topo.vtep {
            Some(s) => s
                .vnis
                .iter()
                .filter(|x| s.evpn.binary_search(&x.0).is_ok())
                .map(|x| (x.0, x.1 as DomainId))
                .collect(),
            None => BTreeMap::new(),
        };
        let gone: Vec<u32> = self
            .vnis
            .keys()
            .filter(|v| !want.contains_key(v))
            .copied()
            .collect();
        for vni in gone {
            if let Some(v) = self.vnis.remove(&vni) {
                for mac in v.remote.keys() {
                    self.control.table().remove_remote(v.domain, MacAddr(*mac));
                }
                v.dev.remove(&mut self.nl);
                tracing::info!(vni, "evpn: kernel mirror removed");
            }
        }
        self.underlay = None;
        if let Some(s) = topo.vtep.as_ref().filter(|s| s.share_underlay) {
            match self.nl.get_link(&topo.ports[s.port].iface) {
                Ok(Some(l)) => self.underlay = Some(l.index),
                _ => self.fail(format!(
                    "the underlay {} has no kernel device to read ARP entries from",
                    topo.ports[s.port].iface
                )),
            }
        }
        if (!want.is_empty() || self.underlay.is_some()) && self.monitor.is_none() {
            match NeighMonitor::open(MONITOR_BUFFER) {
                Ok(m) => self.monitor = Some(m),
                Err(e) => self.fail(format!("subscribing to neighbour notifications: {e}")),
            }
        }
        let mut added = false;
        for (&vni, &domain) in &want {
            if let Some(v) = self.vnis.get_mut(&vni) {
                v.domain = domain;
                continue;
            }
            let spec = topo.vtep.as_ref().expect("a VNI has a VTEP");
            if let Err(e) = self.vtep_address(spec.ip) {
                self.fail(e);
            }
            match VniDevices::create(&mut self.nl, vni, Ipv4Addr::from(spec.ip), spec.udp_port) {
                Ok(dev) => {
                    tracing::info!(
                        vni,
                        "evpn: kernel mirror {}, {}, {}",
                        dev.vxlan.0,
                        dev.bridge.0,
                        dev.access.0
                    );
                    self.vnis.insert(
                        vni,
                        Vni {
                            dev,
                            domain,
                            local: HashSet::new(),
                            local_ips: HashMap::new(),
                            remote_ips: HashMap::new(),
                            remote: HashMap::new(),
                            floods: BTreeSet::new(),
                            error: None,
                        },
                    );
                    added = true;
                }
                Err(e) => self.fail(e),
            }
        }
        if rebuilt {
            if let Some(vtep) = &self.vtep {
                for v in self.vnis.values() {
                    for ip in &v.floods {
                        let _ = vtep.set_flood(v.domain, ip.octets(), true);
                    }
                }
            }
        }
        if added || rebuilt {
            self.resync();
        }
    }

    /// Makes sure a kernel device holds the VTEP address (zebra takes the
    /// VXLAN device's `local` as the VTEP's identity; FRR's guides put it
    /// on `lo`): if none does, it goes on `lo` as a /32 until exit.
    fn vtep_address(&mut self, ip: [u8; 4]) -> Result<(), String> {
        let ip = Ipv4Addr::from(ip);
        if self.lo_address.is_some() {
            return Ok(());
        }
        let have = self
            .nl
            .ipv4_addresses()
            .map_err(|e| format!("reading the addresses: {e}"))?;
        if have.iter().any(|(_, a)| *a == ip) {
            return Ok(());
        }
        let lo = self
            .nl
            .get_link("lo")
            .ok()
            .flatten()
            .ok_or("no lo device")?;
        self.nl
            .add_ipv4(lo.index, ip.octets(), 32)
            .map_err(|e| format!("adding the VTEP address {ip}/32 to lo: {e}"))?;
        self.lo_address = Some((lo.index, ip));
        Ok(())
    }

    /// Reads every entry again (at start, after a VNI is added, after
    /// notifications were lost): what zebra has installed becomes the
    /// mirror's view, what it no longer has goes.
    pub fn resync(&mut self) {
        self.counters.resyncs += 1;
        let fdb = match self.nl.dump_neighbours(true) {
            Ok(f) => f,
            Err(e) => return self.fail(format!("reading the FDB: {e}")),
        };
        let mut seen: HashMap<u32, Installed> = HashMap::new();
        let by_index: HashMap<u32, u32> = self
            .vnis
            .values()
            .map(|v| (v.dev.vxlan.1, v.dev.vni))
            .collect();
        for e in &fdb {
            let (Some(&vni), Some(dst), Some(mac)) = (by_index.get(&e.ifindex), e.dst, e.mac)
            else {
                continue;
            };
            let s = seen.entry(vni).or_default();
            if mac == [0; 6] {
                s.1.insert(dst);
            } else {
                s.0.insert(mac, dst);
            }
        }
        let vnis: Vec<u32> = self.vnis.keys().copied().collect();
        for vni in vnis {
            let (macs, floods) = seen.remove(&vni).unwrap_or_default();
            let v = &self.vnis[&vni];
            let stale_macs: Vec<[u8; 6]> = v
                .remote
                .keys()
                .filter(|m| !macs.contains_key(*m))
                .copied()
                .collect();
            let stale_floods: Vec<Ipv4Addr> = v.floods.difference(&floods).copied().collect();
            for mac in stale_macs {
                self.remote_mac(vni, mac, None);
            }
            for ip in stale_floods {
                self.flood(vni, ip, false);
            }
            for (mac, ip) in macs {
                self.remote_mac(vni, mac, Some(ip));
            }
            for ip in floods {
                self.flood(vni, ip, true);
            }
        }
        if self.underlay.is_some() || !self.vnis.is_empty() {
            match self.nl.dump_neighbours(false) {
                Ok(arp) => {
                    let mut installed: HashMap<u32, HashSet<[u8; 4]>> = HashMap::new();
                    for e in &arp {
                        if let Some(vni) = self.vni_of_bridge(e.ifindex) {
                            if let Some(ip) = e.dst.filter(|_| e.flags & NTF_EXT_LEARNED != 0) {
                                installed.entry(vni).or_default().insert(ip.octets());
                            }
                        }
                        self.event(e);
                    }
                    let stale: Vec<(u32, [u8; 4])> = self
                        .vnis
                        .values()
                        .flat_map(|v| {
                            let have = installed.get(&v.dev.vni);
                            v.remote_ips
                                .keys()
                                .filter(move |ip| !have.is_some_and(|h| h.contains(*ip)))
                                .map(move |ip| (v.dev.vni, *ip))
                        })
                        .collect();
                    for (vni, ip) in stale {
                        self.remote_ip(vni, ip, None);
                    }
                }
                Err(e) => self.fail(format!("reading the ARP table: {e}")),
            }
        }
    }

    /// Applies every notification queued.
    pub fn drain(&mut self) {
        let Some(mut m) = self.monitor.take() else {
            return;
        };
        let mut got = Vec::new();
        let r = m.drain(|e| got.push(e));
        self.monitor = Some(m);
        self.counters.events += got.len() as u64;
        for e in got {
            self.event(&e);
        }
        if let Err(e) = r {
            // ENOBUFS: notifications were lost; the dump has them all.
            self.counters.overflows += 1;
            tracing::warn!("evpn: neighbour notifications lost ({e}): reading everything again");
            self.resync();
        }
    }

    fn event(&mut self, e: &NeighEntry) {
        if !e.bridge {
            if let Some(vni) = self.vni_of_bridge(e.ifindex) {
                // zebra's (extern_learn), not the ones the mirror wrote.
                if let Some(ip) = e.dst.filter(|_| e.flags & NTF_EXT_LEARNED != 0) {
                    let mac = e.mac.filter(|_| !e.deleted);
                    self.remote_ip(vni, ip.octets(), mac);
                }
                return;
            }
            return self.arp(e);
        }
        let Some(vni) = self
            .vnis
            .values()
            .find(|v| v.dev.vxlan.1 == e.ifindex)
            .map(|v| v.dev.vni)
        else {
            return;
        };
        // The bridge's own entry for a MAC on the vxlan port carries no
        // destination: only zebra's `dst VTEP self` entries count.
        let (Some(dst), Some(mac)) = (e.dst, e.mac) else {
            return;
        };
        if e.deleted {
            // Held a moment: zebra deletes everything it installed when
            // it stops, and a restart must not cut this host off.
            self.pending.push((Instant::now(), vni, mac, dst));
        } else if mac == [0; 6] {
            self.pending
                .retain(|p| !(p.1 == vni && p.2 == mac && p.3 == dst));
            self.flood(vni, dst, true);
        } else {
            self.remote_mac(vni, mac, Some(dst));
        }
    }

    /// Applies the deletions older than [`HOLD`]: withdrawals if zebra
    /// still runs; if it has gone, zebra's own clean-up at exit, which is
    /// kept (forwarding goes on with what BGP said last) until zebra has
    /// been back for [`REINSTALL`], when a re-read drops what it did not
    /// install again.
    pub fn settle(&mut self) {
        let now = Instant::now();
        if let Some(since) = self.zebra_down {
            if zebra_running() {
                let back = *self.zebra_back.get_or_insert(now);
                if now.duration_since(back) >= REINSTALL {
                    tracing::info!(
                        "evpn: zebra is back ({:.1?} after it went): reading its entries again",
                        now.duration_since(since)
                    );
                    self.zebra_down = None;
                    self.zebra_back = None;
                    self.pending.clear();
                    self.resync();
                }
            } else {
                self.zebra_back = None;
            }
            return;
        }
        if self
            .pending
            .first()
            .is_none_or(|p| now.duration_since(p.0) < HOLD)
        {
            return;
        }
        if !zebra_running() {
            tracing::warn!(
                "evpn: zebra stopped and removed {} entries: kept until it is back",
                self.pending.len()
            );
            self.counters.held += self.pending.len() as u64;
            self.pending.clear();
            self.zebra_down = Some(now);
            return;
        }
        let due: Vec<_> = self
            .pending
            .iter()
            .filter(|p| now.duration_since(p.0) >= HOLD)
            .copied()
            .collect();
        self.pending.retain(|p| now.duration_since(p.0) < HOLD);
        for (_, vni, mac, dst) in due {
            if mac == [0; 6] {
                self.flood(vni, dst, false);
            } else {
                // A later install for the same MAC went through already.
                let v = self.vnis.get(&vni);
                if v.is_some_and(|v| v.remote.get(&mac) == Some(&dst)) {
                    self.remote_mac(vni, mac, None);
                }
            }
        }
    }

    fn arp(&mut self, e: &NeighEntry) {
        let (Some(vtep), Some(ip), Some(mac)) = (&self.vtep, e.dst, e.mac) else {
            return;
        };
        if Some(e.ifindex) == self.underlay && e.usable() {
            vtep.learn_neighbor(ip.octets(), MacAddr(mac));
            self.counters.neighbours += 1;
        }
    }

    fn flood(&mut self, vni: u32, ip: Ipv4Addr, on: bool) {
        let Some(v) = self.vnis.get_mut(&vni) else {
            return;
        };
        let changed = if on {
            v.floods.insert(ip)
        } else {
            v.floods.remove(&ip)
        };
        if !changed {
            return;
        }
        self.resolve_due |= on;
        if let Some(vtep) = &self.vtep {
            if let Err(e) = vtep.set_flood(v.domain, ip.octets(), on) {
                v.error = Some(format!("flood list {ip}: {e}"));
            }
        }
    }

    /// A remote MAC installed (`Some(vtep)`) or withdrawn (`None`).
    fn remote_mac(&mut self, vni: u32, mac: [u8; 6], at: Option<Ipv4Addr>) {
        let Some(v) = self.vnis.get_mut(&vni) else {
            return;
        };
        let table = self.control.table();
        match at {
            None => {
                if v.remote.remove(&mac).is_some() {
                    table.remove_remote(v.domain, MacAddr(mac));
                    self.counters.remote_removed += 1;
                }
            }
            Some(ip) => {
                if v.remote.get(&mac) == Some(&ip) {
                    return;
                }
                let Some(vtep) = &self.vtep else { return };
                let Some(r) = vtep.remote_or_insert(ip.octets()) else {
                    v.error = Some(format!("{ip}: the remote VTEP table is full"));
                    return;
                };
                v.remote.insert(mac, ip);
                self.resolve_due = true;
                table.add_remote(v.domain, MacAddr(mac), TUNNEL_BASE + r as u16);
                // It is the other VTEP's now: no longer ours to advertise
                // (the local-side pass removes the static entry).
                self.counters.remote_added += 1;
            }
        }
    }

    /// Writes the MACs pollgate has on its own ports into `accN`'s FDB
    /// and removes those it no longer has. Tunnel entries are never
    /// written: a MAC learned from a tunnel advertised as local makes it
    /// flap between VTEPs until FRR's duplicate detection freezes it.
    pub fn sync_local(&mut self) {
        if self.vnis.is_empty() {
            return;
        }
        let ports = self.ports;
        let mut now: HashMap<DomainId, HashSet<[u8; 6]>> = HashMap::new();
        for e in self.control.table().entries(None, 0) {
            if (e.port as usize) < ports && !e.remote {
                now.entry(e.domain).or_default().insert(e.mac.0);
            }
        }
        self.sync_local_ips(&now);
        let empty = HashSet::new();
        for v in self.vnis.values_mut() {
            let have = now.get(&v.domain).unwrap_or(&empty);
            let acc = v.dev.access.1;
            let add: Vec<[u8; 6]> = have.difference(&v.local).copied().collect();
            let del: Vec<[u8; 6]> = v.local.difference(have).copied().collect();
            for mac in add {
                match self.nl.fdb_add_static(acc, mac) {
                    Ok(()) => {
                        v.local.insert(mac);
                        self.counters.fdb_writes += 1;
                    }
                    Err(e) => {
                        self.counters.errors += 1;
                        v.error = Some(format!(
                            "the kernel refused {} on {}: {e}",
                            MacAddr(mac),
                            v.dev.access.0
                        ));
                    }
                }
            }
            for mac in del {
                match self.nl.fdb_del(acc, mac) {
                    Ok(()) => {
                        v.local.remove(&mac);
                        self.counters.fdb_deletes += 1;
                    }
                    Err(e) => {
                        self.counters.errors += 1;
                        v.error = Some(format!(
                            "the kernel refused to remove {} from {}: {e}",
                            MacAddr(mac),
                            v.dev.access.0
                        ));
                    }
                }
            }
        }
    }

    /// Asks the kernel to resolve the remote VTEPs (or the gateway) the
    /// VTEP has no MAC for: on a shared underlay the kernel does ARP.
    pub fn resolve(&mut self) {
        self.resolve_due = false;
        let (Some(ul), Some(vtep)) = (self.underlay, self.vtep.clone()) else {
            return;
        };
        let missing = vtep.unresolved();
        if missing.is_empty() {
            return;
        }
        // The kernel may know them already (an entry that does not
        // change sends no notification): read before asking.
        match self.nl.dump_neighbours(false) {
            Ok(arp) => {
                for e in arp.iter().filter(|e| e.ifindex == ul) {
                    self.arp(e);
                }
            }
            Err(e) => self.fail(format!("reading the ARP table: {e}")),
        }
        for ip in vtep.unresolved() {
            match self.nl.neigh_resolve(ul, Ipv4Addr::from(ip)) {
                Ok(()) => self.counters.resolve_requests += 1,
                Err(e) => {
                    let e = format!("asking the kernel to resolve {}: {e}", Ipv4Addr::from(ip));
                    self.fail(e);
                }
            }
        }
    }

    /// Whether there is anything to mirror (an EVPN VNI, a shared
    /// underlay).
    pub fn active(&self) -> bool {
        !self.vnis.is_empty() || self.underlay.is_some()
    }

    pub fn status(&self) -> EvpnStatus {
        let arp = &self.control.arp().counters;
        let names = self.view.as_ref().map(|v| v.domains()).unwrap_or_default();
        EvpnStatus {
            running: true,
            shared_underlay: self.underlay.is_some(),
            vnis: self
                .vnis
                .values()
                .map(|v| VniStatus {
                    vni: v.dev.vni,
                    domain: names
                        .get(v.domain as usize)
                        .cloned()
                        .unwrap_or_else(|| v.domain.to_string()),
                    devices: vec![
                        v.dev.vxlan.0.clone(),
                        v.dev.bridge.0.clone(),
                        v.dev.access.0.clone(),
                    ],
                    local_macs: v.local.len(),
                    remote_macs: v.remote.len(),
                    local_ips: v.local_ips.len(),
                    remote_ips: v.remote_ips.len(),
                    remote_vteps: v.floods.iter().map(|ip| ip.to_string()).collect(),
                    state: if v.error.is_some() {
                        "error"
                    } else {
                        "in sync"
                    }
                    .into(),
                    last_error: v.error.clone(),
                })
                .collect(),
            counters: MirrorCounters {
                arp_suppressed: arp.suppressed.load(Ordering::Relaxed),
                arp_snooped: arp.snooped.load(Ordering::Relaxed),
                ..self.counters.clone()
            },
            last_error: self.last_error.clone(),
        }
    }

    /// Removes the kernel mirror (zebra withdraws its routes).
    pub fn close(&mut self) {
        for (_, v) in std::mem::take(&mut self.vnis) {
            v.dev.remove(&mut self.nl);
        }
        if let Some((lo, ip)) = self.lo_address.take() {
            let _ = self.nl.del_ipv4(lo, ip.octets(), 32);
        }
    }
}
