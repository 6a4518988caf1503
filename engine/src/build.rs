//! Building what a topology describes: ports and devices, the pipeline
//! of each worker, and the switch (VLAN maps, domains, MAC table) they
//! share. `Engine::start` calls these in order; nothing here runs.

use crate::config::{
    BridgeSpec, Driver, ForwardModeCfg, L2cpCfg, MemberMap, PortKind, Topology, VlanModeCfg,
};
use crate::engine::EngineError;
use pollgate_pipeline::acl::{AclHandle, AclSet, AclStage, FlowCounters, FlowTable};
use pollgate_pipeline::arp_suppress::ArpCache;
use pollgate_pipeline::bridge::{Bridge, Domain, DomainKind};
use pollgate_pipeline::ipvlan::IpVlan;
use pollgate_pipeline::l3::{Interfaces, Route, RouteTable, Router};
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::macvlan::{MacVlan, MacVlanMode};
use pollgate_pipeline::nat::{Nat, Share};
use pollgate_pipeline::storm::StormControl;
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::vlan::{EgressTag, L2cp, PortVlan, VlanMap, VlanMode};
use pollgate_pipeline::vxlan::{Vtep, VtepConfig};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{CrossConnect, DomainId, ForwardMode, Pipeline, PortId};
use pollgate_pmd::afxdp::{
    needs_multi_buffer, AfXdpConfig, AfXdpPort, BindMode, Steer, XdpAttachment, L2_OVERHEAD,
};
use pollgate_pmd::device::if_index;
use pollgate_pmd::ethtool::RxVlanOff;
use pollgate_pmd::mac_filter::MacFilter;
use pollgate_pmd::tap::TapPort;
use pollgate_pmd::veth::{create_veth, Created};
use pollgate_pmd::veth_peer::{Peer, PeerOffloadOff};
use pollgate_pmd::{ring_pair, AnyPort, NullPort, PcapPort, PmdError, UmemLayout};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

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

/// Most frames a null port holds in memory to replay.
const MAX_REPLAY_FRAMES: usize = 1 << 24;

/// Every frame of a capture: what a null port with `rx` replays.
fn capture_frames(path: &std::path::Path) -> Result<Vec<Vec<u8>>, pollgate_pmd::PmdError> {
    let file = |source| pollgate_pmd::PmdError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut r = pollgate_pmd::pcap::PcapReader::open(path).map_err(file)?;
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    while r.next_into(&mut buf).map_err(file)?.is_some() {
        if frames.len() == MAX_REPLAY_FRAMES {
            return Err(file(std::io::Error::other(format!(
                "more than {MAX_REPLAY_FRAMES} frames to replay from memory"
            ))));
        }
        frames.push(std::mem::take(&mut buf));
    }
    if frames.is_empty() {
        return Err(file(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no frame in the capture",
        )));
    }
    Ok(frames)
}

/// Ring pairs span workers, so they are made before any worker's ports.
pub fn build_rings(topo: &Topology) -> Vec<Option<AnyPort>> {
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
/// device, the veth pair pollgate created for it, and the RX VLAN
/// offload it turned off on a device it did not create (back on when
/// the engine drops this, after its workers stopped).
pub struct Device {
    pub xdp: Arc<XdpAttachment>,
    pub created: Option<Arc<Created>>,
    pub rx_vlan: Option<RxVlanOff>,
    /// The unicast filter (or promiscuous mode) of a parent device shared
    /// by macvlan or ipvlan members.
    pub mac_filter: Option<MacFilter>,
    /// The TX offloads turned off on the peer of a veth pollgate did not
    /// create.
    pub peer_offload: Option<PeerOffloadOff>,
}

impl Device {
    /// Whether a socket on this device needs a multi-buffer UMEM.
    pub fn needs_multi_buffer(&self, pool: &UmemLayout) -> bool {
        needs_multi_buffer(self.xdp.mtu(), pool)
    }
}

/// For an `afxdp` port on a veth whose peer pollgate did not create: turns
/// off the peer's TX checksum and VLAN offloads (their partial checksums
/// and metadata tags do not survive AF_XDP), or says what to run by hand.
fn take_peer_offloads(port: &str, iface: &str) -> Option<PeerOffloadOff> {
    let peer = match Peer::of(iface) {
        Ok(Some(p)) => p,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(port, "cannot find the peer of veth {iface}: {e}; if its TX checksum or VLAN offload is on, TCP/UDP from it arrive with partial checksums and tags go missing: turn them off there (ethtool -K PEER tx off txvlan off tx-vlan-stag-hw-insert off)");
            return None;
        }
    };
    let cmd = peer.ethtool_command();
    let at = peer
        .netns
        .clone()
        .unwrap_or_else(|| "this namespace".into());
    match PeerOffloadOff::take(peer) {
        Ok(Some(g)) => {
            tracing::info!(port, "TX checksum and VLAN offloads off on {iface}'s peer {} in {at} while pollgate serves it", g.peer.name);
            Some(g)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(port, "cannot turn off the TX offloads of {iface}'s peer in {at}: {e}; TCP/UDP from it arrive with partial checksums: run {cmd}");
            None
        }
    }
}

/// What the receive filter of port `k`'s device must let in when it is the
/// parent of macvlan or ipvlan bridges: the MACs to add, and whether it
/// must be promiscuous (macvlan passthru).
pub(crate) fn parent_filter(topo: &Topology, k: usize) -> Option<(Vec<[u8; 6]>, bool)> {
    let mut macs = Vec::new();
    let mut promisc = false;
    let mut parent = false;
    for b in topo.bridges.iter().filter(|b| b.driver.parent() == Some(k)) {
        parent = true;
        match &b.driver {
            Driver::MacVlan {
                mode: MacVlanMode::Passthru,
                ..
            } => promisc = true,
            Driver::MacVlan { .. } => {
                macs.extend(b.statics.iter().filter(|s| s.1 != k).map(|s| s.0 .0))
            }
            Driver::IpVlan { .. } => macs.push(topo.ports[k].mac.0),
            Driver::Bridge => {}
        }
    }
    macs.sort_unstable();
    macs.dedup();
    parent.then_some((macs, promisc))
}

/// Creates the veth pairs and attaches the XDP programs of every AF_XDP
/// port, before any socket: a port's queues may be served by different
/// workers, and each one's socket needs the device and the program.
pub fn build_devices(topo: &Topology) -> Result<Vec<Option<Device>>, EngineError> {
    (0..topo.ports.len())
        .map(|k| build_device(topo, k))
        .collect()
}

/// What the XDP program of port `k` takes: all, unless it is an
/// underlay the VTEP shares with the kernel stack.
fn steer_for(topo: &Topology, k: usize) -> Steer {
    match &topo.vtep {
        Some(v) if v.port == k && v.share_underlay => Steer::Vxlan {
            ip: v.ip,
            udp_port: v.udp_port,
        },
        _ => Steer::All,
    }
}

/// The device of port `k`, for AF_XDP ports (`None` for the others).
pub fn build_device(topo: &Topology, k: usize) -> Result<Option<Device>, EngineError> {
    let spec = &topo.ports[k];
    {
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
            _ => return Ok(None),
        };
        let ifindex = if_index(&spec.iface).map_err(dev_err)?;
        // A queue without a socket passes its share of the traffic to the
        // kernel stack: say so rather than lose it silently.
        if let Ok(n) = pollgate_pmd::ethtool::rx_queues(&spec.iface) {
            if n > spec.queues {
                tracing::warn!(
                    port = %spec.name,
                    "{} has {n} RX queues and pollgate serves {}: traffic hashed to the others goes to the kernel stack (set queues = {n})",
                    spec.iface,
                    spec.queues
                );
            }
        }
        // A veth pollgate created has the offload off at its container
        // end, where tags are sent; a device it did not create (a NIC)
        // strips tags on receive unless told not to.
        let rx_vlan = match spec.kind {
            PortKind::Afxdp => match RxVlanOff::take(&spec.iface, ifindex) {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(port = %spec.name, "cannot turn RX VLAN offload off on {}: {e}; VLAN tags the device strips on receive are invisible to pollgate", spec.iface);
                    None
                }
            },
            _ => None,
        };
        let attach = if spec.afxdp.handover {
            XdpAttachment::attach_handover
        } else {
            XdpAttachment::attach
        };
        let xdp = attach(
            &spec.iface,
            ifindex,
            spec.queues,
            spec.afxdp.xdp,
            spec.afxdp.force,
            steer_for(topo, k),
        )
        .map_err(dev_err)?;
        let mac_filter =
            match parent_filter(topo, k) {
                Some((macs, promisc)) => Some(
                    MacFilter::program(&spec.iface, &macs, promisc).map_err(|e| {
                        dev_err(std::io::Error::new(
                    e.kind(),
                    format!("cannot program the unicast filter for the containers sharing it: {e}"),
                ))
                    })?,
                ),
                None => None,
            };
        let peer_offload = match spec.kind {
            PortKind::Afxdp => take_peer_offloads(&spec.name, &spec.iface),
            _ => None,
        };
        Ok(Some(Device {
            xdp: Arc::new(xdp),
            created,
            rx_vlan,
            mac_filter,
            peer_offload,
        }))
    }
}

/// Whether a worker serving `queues` must bind its UMEM for multi-buffer
/// packets: one of its devices has an MTU above what a frame holds.
pub fn worker_needs_multi_buffer(
    queues: &[(usize, u32)],
    devices: &[Option<Device>],
    pool: &UmemLayout,
) -> bool {
    queues.iter().any(|&(k, _)| {
        devices[k]
            .as_ref()
            .is_some_and(|d| d.needs_multi_buffer(pool))
    })
}

/// Largest frame any AF_XDP device of the topology carries (Ethernet and
/// two tags over its MTU), at least a standard frame's slot: the size of
/// a hand-off or capture slot.
pub fn largest_frame(devices: &[Option<Device>]) -> usize {
    devices
        .iter()
        .flatten()
        .map(|d| (d.xdp.mtu() + L2_OVERHEAD) as usize)
        .fold(pollgate_pmd::spsc::SLOT_BYTES, usize::max)
}

/// Opens queue `q` of port `k` for a worker whose pool is `pool`.
/// `umem_owner` is the worker's first AF_XDP socket, which the others
/// share the UMEM with; `multi_buffer` says how it binds the UMEM.
pub fn build_port(
    topo: &Topology,
    (k, q): (usize, u32),
    rings: &mut [Option<AnyPort>],
    devices: &[Option<Device>],
    pool: &UmemLayout,
    umem_owner: &mut Option<RawFd>,
    multi_buffer: bool,
) -> Result<AnyPort, EngineError> {
    let spec = &topo.ports[k];
    let err = |source| EngineError::Port {
        port: spec.name.clone(),
        source,
    };
    Ok(match spec.kind {
        PortKind::Null => AnyPort::Null(match &spec.rx {
            Some(path) => NullPort::replay(&spec.name, capture_frames(path).map_err(err)?),
            None => NullPort::new(
                &spec.name,
                null_template(spec.size, spec.mac, spec.peer_mac),
            ),
        }),
        PortKind::Ring => rings[k].take().expect("ring pairs are built first"),
        PortKind::Vacant => unreachable!("no worker serves a vacant slot"),
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
            let Device { xdp, created, .. } = devices[k].as_ref().expect("devices are built first");
            let name = if spec.queues > 1 {
                format!("{}@{q}", spec.name)
            } else {
                spec.name.clone()
            };
            let cfg = AfXdpConfig {
                queue: q,
                multi_buffer,
                ..spec.afxdp
            };
            let port = AfXdpPort::open_on(
                &name,
                &spec.iface,
                &cfg,
                pool,
                umem_owner,
                Some(xdp.clone()),
            )
            .map_err(err)?;
            if cfg.bind == BindMode::Auto && !port.zero_copy() {
                tracing::warn!(port = %name, "zero-copy is not available on {} (driver {}): bound in copy mode", spec.iface, pollgate_pmd::ethtool::driver_name(&spec.iface));
            }
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

/// The route table of a topology with gateway interfaces: their
/// connected and local routes and the static ones. Sized by `[router]`
/// once; it outlives topology changes as the MAC table does.
pub fn routes_for(topo: &Topology) -> Result<Option<RouteTable>, EngineError> {
    let Some(l3) = &topo.l3 else { return Ok(None) };
    let s = &l3.sizes;
    let mut t = RouteTable::new(s.ipv4_groups, s.ipv6_groups, s.neighbors);
    sync_routes(&mut t, None, topo).map_err(EngineError::Route)?;
    Ok(Some(t))
}

/// Brings the route table to `topo`'s interfaces and config routes;
/// `old` is the topology it was built for (its config routes are the ones
/// replaced; routes added by `ctl` stay).
pub fn sync_routes(
    t: &mut RouteTable,
    old: Option<&Topology>,
    topo: &Topology,
) -> Result<(), String> {
    let empty = Vec::new();
    let ifs = topo.l3.as_ref().map_or(&empty, |l| &l.interfaces);
    t.set_interfaces(Arc::new(Interfaces::new(ifs.clone(), topo.bridges.len())))
        .map_err(|e| format!("route table: {e}"))?;
    let was: &[Route] = old.and_then(|o| o.l3.as_ref()).map_or(&[], |l| &l.routes);
    let now: &[Route] = topo.l3.as_ref().map_or(&[], |l| &l.routes);
    for r in was.iter().filter(|r| !now.contains(r)) {
        let _ = t.remove(r.prefix, Some(r.metric));
    }
    for r in now.iter().filter(|r| !was.contains(r)) {
        t.add(r.clone())
            .map_err(|e| format!("route {}: {e}", r.prefix))?;
    }
    let was_n: &[(u16, IpAddr, MacAddr)] = old
        .and_then(|o| o.l3.as_ref())
        .map_or(&[], |l| &l.neighbors);
    let now_n: &[(u16, IpAddr, MacAddr)] = topo.l3.as_ref().map_or(&[], |l| &l.neighbors);
    let neigh = &t.tables.neighbors;
    for (ifx, ip, _) in was_n.iter().filter(|n| !now_n.contains(n)) {
        neigh.remove(*ifx, *ip);
    }
    for (ifx, ip, mac) in now_n {
        neigh
            .update(*ifx, *ip, Some(mac.0), true, 0, true)
            .ok_or_else(|| format!("neighbor {ip}: the neighbour table is full"))?;
    }
    Ok(())
}

/// Worker `worker`'s pipeline: the stages the topology asks for, over
/// the shared switch, VTEP, ACLs and route table. Also returns the ACL stage's flow
/// counters, which the control socket reads.
pub fn worker_pipeline(
    topo: &Topology,
    switch: Option<&Switch>,
    vtep: Option<&Arc<Vtep>>,
    acls: &[Arc<AclHandle>],
    routes: Option<&RouteTable>,
    worker: usize,
) -> (Pipeline, Option<Arc<FlowCounters>>) {
    let mut pipeline = match switch {
        Some(s) => pipeline_for(topo).with_bridge(s.vlan.clone(), s.bridge.clone()),
        None => pipeline_for(topo),
    };
    let ct = &topo.config.conntrack;
    let nat = topo.l3.as_ref().is_some_and(|l| !l.nat.is_empty());
    if nat || !acls.is_empty() {
        let l2 = l2_cache_bytes(topo.workers.get(worker).and_then(|w| w.core));
        pipeline = pipeline
            .with_flows(FlowTable::new(*ct.size.get_ref(), ct.timeouts()).with_l2_cache(l2));
    }
    if let (Some(r), Some(s), Some(l3)) = (routes, switch, &topo.l3) {
        let mut router = Router::new(
            r.interfaces().clone(),
            r.tables.clone(),
            s.table.clone(),
            l3.sizes.icmp_rate,
        );
        if nat {
            // Hairpinned sessions take the inside gateway's address.
            let addrs: Vec<[u8; 4]> = l3
                .interfaces
                .iter()
                .flat_map(|i| i.v4.iter().map(|a| a.0))
                .collect();
            // Each worker hands out its share of the ports, so a
            // reply's port names the worker holding its session.
            let share = Share {
                index: worker as u16,
                of: topo.workers.len().max(1) as u16,
            };
            router = router.with_nat(Nat::shared(
                Arc::new(l3.nat.clone()),
                &addrs,
                (*ct.size.get_ref() / 8).max(1024),
                r.tables.nat_counters(worker),
                share,
            ));
        }
        pipeline = pipeline.with_router(router);
    }
    if let Some(v) = vtep {
        pipeline = pipeline.with_vxlan(v.clone());
    }
    if acls.is_empty() {
        let counters = pipeline.flows().is_some().then(|| pipeline.flow_counters());
        return (pipeline, counters);
    }
    let stage = AclStage::new(acls, topo.acl_attach.clone(), worker);
    let pipeline = pipeline.with_acl(stage);
    let counters = pipeline.flow_counters();
    (pipeline, Some(counters))
}

/// The VTEP's source MAC: its port's, or on an underlay shared with the
/// kernel the device's own, the one the kernel answers ARP with.
fn vtep_mac(topo: &Topology, spec: &crate::config::VtepSpec) -> MacAddr {
    let port = &topo.ports[spec.port];
    if spec.share_underlay {
        if let Ok(Some(l)) =
            pollgate_pmd::netlink::Netlink::open().and_then(|mut nl| nl.get_link(&port.iface))
        {
            return MacAddr(l.mac);
        }
    }
    port.mac
}

/// The VTEP of the topology, its flood lists and static neighbors set.
pub fn vtep_for(topo: &Topology) -> Option<Arc<Vtep>> {
    let spec = topo.vtep.as_ref()?;
    let vtep = Vtep::new(VtepConfig {
        port: spec.port as PortId,
        ip: spec.ip,
        mac: vtep_mac(topo, spec),
        udp_port: spec.udp_port,
        ttl: spec.ttl,
        df: spec.df,
        mtu: spec.mtu,
        gateway: spec.gateway,
        vnis: spec
            .vnis
            .iter()
            .map(|(v, d, _)| (*v, *d as DomainId))
            .collect(),
        domains: topo.bridges.len(),
        kernel_neighbors: spec.share_underlay,
    });
    for (_, d, flood) in &spec.vnis {
        for ip in flood {
            // The config has at most as many remotes as lines; a full
            // table is reported by `show vxlan` rather than refused here.
            let _ = vtep.set_flood(*d as DomainId, *ip, true);
        }
    }
    for &(ip, mac) in &spec.neighbors {
        vtep.remote_or_insert(ip);
        vtep.learn_neighbor(ip, mac);
    }
    Some(Arc::new(vtep))
}

/// Compiles the topology's ACLs, one live handle each (shared by every
/// worker; `ctl acl add|del` replaces their sets).
pub fn acls_for(topo: &Topology) -> Result<Vec<Arc<AclHandle>>, EngineError> {
    topo.acls
        .iter()
        .map(|a| {
            AclSet::compile(&a.name, a.rules.clone(), a.default, topo.workers.len())
                .map(AclHandle::new)
                .map_err(EngineError::Acl)
        })
        .collect()
}

/// The switch of a topology with bridge domains: VLAN maps, domains and
/// the MAC table every worker shares.
pub struct Switch {
    pub vlan: Arc<VlanMap>,
    pub bridge: Bridge,
    pub table: Arc<MacTable>,
}

/// The engine's MAC table, with the topology's static entries.
pub fn mac_table_for(topo: &Topology) -> Arc<MacTable> {
    let core = topo.workers.first().and_then(|w| w.core);
    let table = Arc::new(
        MacTable::growable(*topo.config.switch.mac_limit.get_ref())
            .with_l2_cache(l2_cache_bytes(core)),
    );
    for (d, b) in topo.bridges.iter().enumerate() {
        for &(mac, k) in &b.statics {
            table.add_static(d as DomainId, mac, k as PortId);
        }
    }
    table
}

/// How a bridge forwards: learning, or sharing its parent port among
/// containers (macvlan, ipvlan).
fn domain_kind(topo: &Topology, b: &BridgeSpec) -> DomainKind {
    match &b.driver {
        Driver::Bridge => DomainKind::Learning,
        Driver::MacVlan { parent, mode } => DomainKind::MacVlan(MacVlan {
            parent: *parent as PortId,
            mode: *mode,
            owner: b
                .members
                .iter()
                .map(|&(k, _)| k as PortId)
                .find(|&k| k != *parent as PortId)
                .unwrap_or(*parent as PortId),
        }),
        Driver::IpVlan { parent, addrs } => {
            let mut v = IpVlan::new(*parent as PortId, topo.ports[*parent].mac);
            for &(ip, k) in addrs {
                let mac = topo.ports[k]
                    .container
                    .as_ref()
                    .and_then(|c| c.mac)
                    .map_or(v.mac, MacAddr);
                match ip {
                    IpAddr::V4(a) => v.add_v4(a.octets(), k as PortId, mac),
                    IpAddr::V6(a) => v.add_v6(a.octets(), k as PortId, mac),
                }
            }
            DomainKind::IpVlan(Arc::new(v))
        }
    }
}

/// The switch of `topo` over `table`, the engine's one MAC table (it
/// outlives topology changes; `add_statics` fills it at start).
pub fn switch_for(topo: &Topology, table: &Arc<MacTable>, arp: &Arc<ArpCache>) -> Option<Switch> {
    if topo.bridges.iter().all(|b| b.name.is_empty()) {
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
                VlanModeCfg::Dot1qTunnel => VlanMode::Tunnel,
            };
            let mut pv = PortVlan::new(mode, tpid);
            pv.default_pcp = p.default_pcp;
            pv.l2cp = match p.l2cp {
                L2cpCfg::Drop => L2cp::Drop,
                L2cpCfg::Tunnel => L2cp::Tunnel,
            };
            vlan.set_port(k as PortId, pv);
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
                    if pv.mode == VlanMode::Tunnel {
                        EgressTag::Customer
                    } else {
                        EgressTag::Untagged
                    }
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
        if topo
            .vtep
            .as_ref()
            .is_some_and(|v| v.vnis.iter().any(|x| x.1 == d as usize))
        {
            members.push(pollgate_pipeline::vxlan::FLOOD_TUNNELS);
        }
        let evpn = topo.vtep.as_ref().is_some_and(|v| {
            v.vnis
                .iter()
                .any(|x| x.1 == d as usize && v.evpn.contains(&x.0))
        });
        domains.push(Domain {
            name: b.name.clone(),
            members,
            kind: domain_kind(topo, b),
            suppress_arp: evpn,
            learn_tunnels: !evpn,
        });
    }
    for (k, pv) in ports_vlan.into_iter().enumerate() {
        if let Some(pv) = pv {
            vlan.set_port(k as PortId, pv);
        }
    }
    let table = table.clone();
    let storm = topo
        .ports
        .iter()
        .map(|p| StormControl::new(p.storm.0, p.storm.1, p.storm.2))
        .collect();
    Some(Switch {
        vlan: Arc::new(vlan),
        bridge: Bridge::new(domains, table.clone(), storm).with_arp(arp.clone()),
        table,
    })
}

/// The L2 size the tables' warming thresholds scale to: `core`'s, or the
/// one they were measured with where the kernel does not say.
fn l2_cache_bytes(core: Option<usize>) -> usize {
    crate::cpu_info::l2_cache_bytes(core)
        .unwrap_or(pollgate_pipeline::cache_size::MEASURED_L2_BYTES)
}
