//! `[[port]]` and `[afxdp]`: port kinds, their keys, AF_XDP ring
//! geometry, and the container end of veth and tap ports.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// Replays a template at full speed, discards what it is sent (net_null).
    Null,
    /// One side of an in-memory pair (net_ring).
    Ring,
    /// Reads a capture, writes a capture.
    Pcap,
    /// A veth pair pollgate creates; the far end goes into a container's
    /// namespace, AF_XDP runs on the near end.
    Veth,
    /// A TAP device in a container's namespace.
    Tap,
    /// AF_XDP on an existing device (a NIC queue).
    Afxdp,
    /// A slot a removed port left: port ids stay put while the engine
    /// runs (MAC entries and flood lists hold them), so a later port
    /// takes the slot instead of every port after it moving down. Never
    /// written in a file.
    #[serde(skip)]
    Vacant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BindModeCfg {
    #[default]
    Auto,
    ZeroCopy,
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeCfg {
    #[default]
    Auto,
    Native,
    Generic,
}

/// AF_XDP ring sizes, shared by every AF_XDP socket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AfXdpSection {
    pub rx_ring: Spanned<u32>,
    pub tx_ring: Spanned<u32>,
    pub fill_ring: Spanned<u32>,
    pub comp_ring: Spanned<u32>,
    /// Syscalls only when the kernel asks (XDP_USE_NEED_WAKEUP).
    pub need_wakeup: bool,
    /// Preferred busy polling with this NAPI budget (0: off).
    pub busy_poll_budget: Spanned<u32>,
    /// Leave the XDP programs on the devices at exit, so the next start
    /// replaces them in one step instead of detaching and attaching.
    pub handover: bool,
}

impl Default for AfXdpSection {
    fn default() -> Self {
        let d = AfXdpConfig::default();
        AfXdpSection {
            rx_ring: Spanned::new(0..0, d.rx_size),
            tx_ring: Spanned::new(0..0, d.tx_size),
            fill_ring: Spanned::new(0..0, d.fill_size),
            comp_ring: Spanned::new(0..0, d.comp_size),
            need_wakeup: d.need_wakeup,
            busy_poll_budget: Spanned::new(0..0, 0),
            handover: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: Spanned<String>,
    pub kind: Spanned<PortKind>,
    /// A routed port (an uplink with an address and no bridge, VPP's
    /// `set interface ip address`): read as a bridge of its own, named
    /// after the port, with this port its only member and this gateway
    /// (see `config::l3::routed_ports`).
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySection>,
    /// This port's MAC (source MAC in `mac` forwarding).
    pub mac: Option<Spanned<String>>,
    /// Destination MAC written on frames leaving this port in `mac` mode.
    pub peer_mac: Option<Spanned<String>>,
    /// null: template frame size in bytes (60..=1514, without FCS).
    pub size: Option<Spanned<usize>>,
    /// ring: the name of the other side.
    pub peer: Option<Spanned<String>>,
    /// ring: frames of buffering each way.
    pub slots: Option<Spanned<usize>>,
    /// pcap: capture to replay.
    pub rx: Option<Spanned<PathBuf>>,
    /// pcap: capture to write.
    pub tx: Option<Spanned<PathBuf>>,
    /// pcap: replay `rx` forever.
    #[serde(rename = "loop", default)]
    pub looping: bool,
    /// veth: host-side device name; tap: device name; afxdp: the device.
    /// Defaults to the port name.
    pub iface: Option<Spanned<String>>,
    /// afxdp/veth: how many queues to serve (0..N), one socket each.
    pub queues: Option<Spanned<u32>>,
    /// afxdp/veth: "auto", "zero-copy" or "copy".
    pub mode: Option<Spanned<BindModeCfg>>,
    /// afxdp/veth: "auto", "native" or "generic" XDP attach.
    pub xdp_mode: Option<Spanned<XdpModeCfg>>,
    /// veth/tap: the container's network namespace: a name
    /// (`/run/netns/NAME`) or an absolute path (`/proc/PID/ns/net`, a
    /// runtime's bind mount).
    pub netns: Option<Spanned<String>>,
    /// veth/tap: the namespace of this process (`/proc/PID/ns/net`).
    pub netns_pid: Option<Spanned<u32>>,
    /// veth/tap: create the namespace if missing (and remove it after).
    #[serde(default)]
    pub netns_create: bool,
    /// veth: device name inside the namespace (default eth0).
    pub netns_ifname: Option<Spanned<String>>,
    /// veth/tap: IPv4 address/prefix of the container's end.
    pub address: Option<Spanned<String>>,
    /// veth/tap: MAC of the container's end.
    pub container_mac: Option<Spanned<String>>,
    /// veth/tap: the container's default route (IPv4): usually its
    /// bridge's gateway address.
    pub container_gateway: Option<Spanned<String>>,
    /// veth/tap: MTU of both ends (default 1500).
    pub mtu: Option<Spanned<u32>>,
    /// Bridge ports: "access" (default), "trunk" or "qinq".
    pub vlan_mode: Option<Spanned<VlanModeCfg>>,
    /// Outer TPID: 0x8100 on trunks, 0x88a8 on QinQ ports by default.
    pub tpid: Option<Spanned<u16>>,
    /// dot1q-tunnel: L2 control frames "drop" (default) or "tunnel".
    pub l2cp: Option<Spanned<L2cpCfg>>,
    /// dot1q-tunnel: PCP of the S-tag over frames sent untagged (0..=7).
    pub default_pcp: Option<Spanned<u8>>,
    /// Storm control, packets per second flooded (0 or absent: no limit).
    pub storm_broadcast: Option<u64>,
    pub storm_multicast: Option<u64>,
    pub storm_unknown_unicast: Option<u64>,
    /// afxdp/veth: replace an XDP program another tool attached to the
    /// device (atomically), instead of refusing to start.
    #[serde(default)]
    pub force: bool,
    /// Names of the ACLs checked on the way in and out of this port.
    pub acl_in: Option<Spanned<String>>,
    pub acl_out: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct PortSpec {
    pub name: String,
    pub kind: PortKind,
    pub mac: MacAddr,
    pub peer_mac: MacAddr,
    pub size: usize,
    pub peer: Option<usize>,
    pub slots: usize,
    pub rx: Option<PathBuf>,
    pub tx: Option<PathBuf>,
    pub looping: bool,
    pub iface: String,
    pub afxdp: AfXdpConfig,
    pub container: Option<ContainerEnd>,
    /// RX/TX queues served, 0..queues (1 for non-AF_XDP ports).
    pub queues: u32,
    /// Mode and outer TPID, for bridge ports.
    pub vlan: Option<(VlanModeCfg, u16)>,
    /// dot1q-tunnel: L2 control frames tunnelled, and the default PCP.
    pub l2cp: L2cpCfg,
    pub default_pcp: u8,
    /// Storm control (broadcast, multicast, unknown unicast), pps.
    pub storm: (u64, u64, u64),
}

impl PortSpec {
    fn vacant() -> PortSpec {
        PortSpec {
            name: String::new(),
            kind: PortKind::Vacant,
            mac: MacAddr([0; 6]),
            peer_mac: MacAddr([0; 6]),
            size: 60,
            peer: None,
            slots: 0,
            rx: None,
            tx: None,
            looping: false,
            iface: String::new(),
            afxdp: AfXdpConfig::default(),
            container: None,
            queues: 0,
            vlan: None,
            l2cp: L2cpCfg::Drop,
            default_pcp: 0,
            storm: (0, 0, 0),
        }
    }

    pub fn is_vacant(&self) -> bool {
        self.kind == PortKind::Vacant
    }
}

impl PortSection {
    /// The section standing for a vacant slot.
    pub fn vacant() -> PortSection {
        PortSection {
            name: Spanned::new(0..0, String::new()),
            kind: Spanned::new(0..0, PortKind::Vacant),
            gateway: None,
            mac: None,
            peer_mac: None,
            size: None,
            peer: None,
            slots: None,
            rx: None,
            tx: None,
            looping: false,
            iface: None,
            queues: None,
            mode: None,
            xdp_mode: None,
            netns: None,
            netns_pid: None,
            netns_create: false,
            netns_ifname: None,
            address: None,
            container_mac: None,
            container_gateway: None,
            mtu: None,
            vlan_mode: None,
            tpid: None,
            l2cp: None,
            default_pcp: None,
            storm_broadcast: None,
            storm_multicast: None,
            storm_unknown_unicast: None,
            force: false,
            acl_in: None,
            acl_out: None,
        }
    }
}

pub(super) fn kind_name(k: PortKind) -> &'static str {
    match k {
        PortKind::Null => "null",
        PortKind::Ring => "ring",
        PortKind::Pcap => "pcap",
        PortKind::Veth => "veth",
        PortKind::Tap => "tap",
        PortKind::Afxdp => "afxdp",
        PortKind::Vacant => "vacant",
    }
}

pub(super) fn check_ifname(cx: &Ctx, n: &Spanned<String>, field: &str) -> Result<(), ConfigError> {
    let v = n.get_ref();
    if v.is_empty() || v.len() > 15 || v.contains('/') || v.contains(char::is_whitespace) {
        return Err(cx.err(
            n.span(),
            field,
            format!("{v:?} is not a valid device name (1-15 characters, no '/' or spaces)"),
        ));
    }
    Ok(())
}

pub(super) fn ring_size(cx: &Ctx, v: &Spanned<u32>, field: &str) -> Result<u32, ConfigError> {
    let n = *v.get_ref();
    if !(64..=16384).contains(&n) || !n.is_power_of_two() {
        return Err(cx.err(
            v.span(),
            field,
            format!("{n} must be a power of two in 64..=16384"),
        ));
    }
    Ok(n)
}

/// Largest MTU of a port pollgate creates: 9216, what data-centre
/// switches allow; a 9000-byte MTU takes six 2048-byte frames.
pub const MAX_JUMBO_MTU: u16 = 9216;

pub(super) fn afxdp_config(
    cx: &Ctx,
    a: &AfXdpSection,
    p: &PortSection,
) -> Result<AfXdpConfig, ConfigError> {
    Ok(AfXdpConfig {
        queue: 0,
        // Decided per worker when the engine starts (the devices' MTUs).
        multi_buffer: false,
        // Decided when the device is built: the VTEP's, if it shares it.
        steer: pollgate_pmd::afxdp::Steer::All,
        rx_size: ring_size(cx, &a.rx_ring, "afxdp.rx_ring")?,
        tx_size: ring_size(cx, &a.tx_ring, "afxdp.tx_ring")?,
        fill_size: ring_size(cx, &a.fill_ring, "afxdp.fill_ring")?,
        comp_size: ring_size(cx, &a.comp_ring, "afxdp.comp_ring")?,
        bind: match p.mode.as_ref().map(|m| *m.get_ref()).unwrap_or_default() {
            BindModeCfg::Auto => BindMode::Auto,
            BindModeCfg::ZeroCopy => BindMode::ZeroCopy,
            BindModeCfg::Copy => BindMode::Copy,
        },
        xdp: match p
            .xdp_mode
            .as_ref()
            .map(|m| *m.get_ref())
            .unwrap_or_default()
        {
            XdpModeCfg::Auto => XdpMode::Auto,
            XdpModeCfg::Native => XdpMode::Native,
            XdpModeCfg::Generic => XdpMode::Generic,
        },
        need_wakeup: a.need_wakeup,
        force: p.force,
        handover: a.handover,
        busy_poll_budget: match *a.busy_poll_budget.get_ref() {
            b @ 0..=1024 => b,
            b => {
                return Err(cx.err(
                    a.busy_poll_budget.span(),
                    "afxdp.busy_poll_budget",
                    format!("{b} is out of range: 0 (off) ..= 1024"),
                ))
            }
        },
    })
}

/// "198.18.0.1/24" -> address and prefix length.
pub(super) fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (a, len) = s.split_once('/')?;
    let ip: std::net::Ipv4Addr = a.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((ip.octets(), len))
}

pub(super) fn container_end(
    cx: &Ctx,
    p: &PortSection,
    kind: PortKind,
) -> Result<Option<ContainerEnd>, ConfigError> {
    let netns = match (&p.netns, &p.netns_pid) {
        (None, None) => return Ok(None),
        (Some(_), Some(pid)) => {
            return Err(cx.err(
                pid.span(),
                "port.netns_pid",
                "give netns or netns_pid, not both",
            ))
        }
        (None, Some(pid)) => {
            if p.netns_create {
                return Err(cx.err(
                    pid.span(),
                    "port.netns_create",
                    "a process's namespace exists already; netns_create needs a netns name",
                ));
            }
            format!("/proc/{}/ns/net", pid.get_ref())
        }
        (Some(n), None) if n.get_ref().starts_with('/') => {
            if p.netns_create {
                return Err(cx.err(
                    n.span(),
                    "port.netns_create",
                    "pollgate creates namespaces by name (under /run/netns), not at a path",
                ));
            }
            if n.get_ref().len() > 4096 || n.get_ref().contains('\0') {
                return Err(cx.err(n.span(), "port.netns", "not a usable path"));
            }
            n.get_ref().clone()
        }
        (Some(n), None) => {
            check_ifname(cx, n, "port.netns")?;
            n.get_ref().clone()
        }
    };
    let ifname = match (&p.netns_ifname, kind) {
        (Some(n), PortKind::Veth) => {
            check_ifname(cx, n, "port.netns_ifname")?;
            n.get_ref().clone()
        }
        (Some(n), _) => {
            return Err(cx.err(
                n.span(),
                "port.netns_ifname",
                "only veth ports rename the container's device",
            ))
        }
        (None, _) => "eth0".to_string(),
    };
    let ipv4 = match &p.address {
        Some(a) => Some(parse_cidr(a.get_ref()).ok_or_else(|| {
            cx.err(
                a.span(),
                "port.address",
                format!(
                    "{:?} is not an IPv4 address/prefix like 198.18.0.1/24",
                    a.get_ref()
                ),
            )
        })?),
        None => None,
    };
    let mac = match &p.container_mac {
        Some(m) => Some(
            m.get_ref()
                .parse::<MacAddr>()
                .map_err(|e| {
                    cx.err(
                        m.span(),
                        "port.container_mac",
                        format!("{:?}: {e}", m.get_ref()),
                    )
                })?
                .0,
        ),
        None => None,
    };
    let gateway = match &p.container_gateway {
        Some(g) => Some(
            g.get_ref()
                .parse::<std::net::Ipv4Addr>()
                .map_err(|e| {
                    cx.err(
                        g.span(),
                        "port.container_gateway",
                        format!("{:?}: {e}", g.get_ref()),
                    )
                })?
                .octets(),
        ),
        None => None,
    };
    let mtu = p.mtu.as_ref().map_or(1500, |m| *m.get_ref());
    // A veth port's frames larger than a UMEM frame travel as multi-buffer
    // AF_XDP chains, up to the usual jumbo limit of switches. A tap port
    // reads each frame into one frame of the pool: Ethernet + two tags +
    // MTU must fit after the headroom.
    let (max_mtu, why) = match kind {
        PortKind::Veth => (
            MAX_JUMBO_MTU as u32,
            "the largest jumbo MTU pollgate carries",
        ),
        _ => (
            2048 - 256 - 14 - 8,
            "a tap port reads each frame into one 2048-byte frame",
        ),
    };
    if !(68..=max_mtu).contains(&mtu) {
        let m = p.mtu.as_ref().expect("default is in range");
        return Err(cx.err(
            m.span(),
            "port.mtu",
            format!("{mtu} is out of range: 68..={max_mtu} ({why})"),
        ));
    }
    Ok(Some(ContainerEnd {
        netns,
        create_netns: p.netns_create,
        ifname,
        mac,
        ipv4,
        gateway,
        mtu,
    }))
}

/// Checks every `[[port]]` against its kind and resolves it; no two
/// ports on one device.
pub(super) fn validate_ports(
    cx: &Ctx,
    config: &Config,
    resolve: &Resolve,
) -> Result<Vec<PortSpec>, ConfigError> {
    let mut ports = Vec::new();
    for (i, p) in config.ports.iter().enumerate() {
        let kind = *p.kind.get_ref();
        if kind == PortKind::Vacant {
            ports.push(PortSpec::vacant());
            continue;
        }
        let need = |v: bool, field: &str| {
            if v {
                Ok(())
            } else {
                Err(cx.err(
                    p.kind.span(),
                    field,
                    format!("required for kind = {:?}", kind_name(kind)),
                ))
            }
        };
        let forbid = |v: bool, field: &str| {
            if v {
                Err(cx.err(
                    p.name.span(),
                    field,
                    format!("not used by kind = {:?}", kind_name(kind)),
                ))
            } else {
                Ok(())
            }
        };
        let size = match &p.size {
            Some(s) if !(60..=1514).contains(s.get_ref()) => {
                return Err(cx.err(
                    s.span(),
                    "port.size",
                    format!("{} is out of range: 60..=1514", s.get_ref()),
                ))
            }
            Some(s) => *s.get_ref(),
            None => 64 - 4,
        };
        let mut peer = None;
        match kind {
            PortKind::Null => {
                forbid(p.peer.is_some(), "port.peer")?;
                // `rx` on a null port: replay the first frame of that
                // capture instead of the built-in UDP frame.
                forbid(p.tx.is_some(), "port.tx")?;
                if let Some(rx) = &p.rx {
                    if !cx.base.join(rx.get_ref()).is_file() {
                        return Err(cx.err(
                            rx.span(),
                            "port.rx",
                            format!("{} is not a readable file", rx.get_ref().display()),
                        ));
                    }
                }
            }
            PortKind::Ring => {
                need(p.peer.is_some(), "port.peer")?;
                forbid(p.rx.is_some() || p.tx.is_some(), "port.rx/tx")?;
                let s = p.peer.as_ref().expect("checked");
                let j = resolve(s, "port.peer")?;
                let other = &config.ports[j];
                if j == i
                    || *other.kind.get_ref() != PortKind::Ring
                    || other.peer.as_ref().map(|q| q.get_ref()) != Some(p.name.get_ref())
                {
                    return Err(cx.err(
                        s.span(),
                        "port.peer",
                        format!(
                            "{:?} must be another ring port whose peer is {:?}",
                            s.get_ref(),
                            p.name.get_ref()
                        ),
                    ));
                }
                peer = Some(j);
            }
            PortKind::Veth | PortKind::Tap => {
                need(p.netns.is_some() || p.netns_pid.is_some(), "port.netns")?;
                forbid(p.peer.is_some(), "port.peer")?;
                forbid(p.rx.is_some() || p.tx.is_some(), "port.rx/tx")?;
            }
            PortKind::Afxdp => {
                need(p.iface.is_some(), "port.iface")?;
                forbid(
                    p.netns.is_some() || p.netns_pid.is_some() || p.address.is_some(),
                    "port.netns/address",
                )?;
                forbid(p.peer.is_some(), "port.peer")?;
            }
            PortKind::Vacant => unreachable!("vacant slots are skipped above"),
            PortKind::Pcap => {
                need(p.rx.is_some() || p.tx.is_some(), "port.rx or port.tx")?;
                forbid(p.peer.is_some(), "port.peer")?;
                if let Some(rx) = &p.rx {
                    if !cx.base.join(rx.get_ref()).is_file() {
                        return Err(cx.err(
                            rx.span(),
                            "port.rx",
                            format!("{} is not a readable file", rx.get_ref().display()),
                        ));
                    }
                }
            }
        }
        let slots = p.slots.as_ref().map_or(1024, |s| *s.get_ref());
        if !(2..=1 << 20).contains(&slots) {
            let s = p.slots.as_ref().expect("default is in range");
            return Err(cx.err(
                s.span(),
                "port.slots",
                format!("{slots} is out of range: 2..=1048576"),
            ));
        }
        let iface = match &p.iface {
            Some(n) => {
                check_ifname(cx, n, "port.iface")?;
                n.get_ref().clone()
            }
            None => p.name.get_ref().clone(),
        };
        let afxdp = afxdp_config(cx, &config.afxdp, p)?;
        let container = container_end(cx, p, kind)?;
        let container_mac = container.as_ref().and_then(|c| c.mac).map(MacAddr);
        let own = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, i as u8 + 1]);
        ports.push(PortSpec {
            name: p.name.get_ref().clone(),
            kind,
            mac: mac(cx, &p.mac, "port.mac", own)?,
            peer_mac: mac(
                cx,
                &p.peer_mac,
                "port.peer_mac",
                container_mac.unwrap_or(MacAddr([0x02, 0, 0, 0, 0x01, i as u8 + 1])),
            )?,
            size,
            peer,
            slots,
            rx: p.rx.as_ref().map(|s| cx.base.join(s.get_ref())),
            tx: p.tx.as_ref().map(|s| cx.base.join(s.get_ref())),
            looping: p.looping,
            iface,
            afxdp,
            container,
            queues: match &p.queues {
                Some(q) if !matches!(kind, PortKind::Veth | PortKind::Afxdp) => {
                    return Err(cx.err(
                        q.span(),
                        "port.queues",
                        "only veth and afxdp ports have queues",
                    ))
                }
                Some(q) if !(1..=64).contains(q.get_ref()) => {
                    return Err(cx.err(
                        q.span(),
                        "port.queues",
                        format!("{} is out of range: 1..=64", q.get_ref()),
                    ))
                }
                Some(q) => *q.get_ref(),
                None => 1,
            },
            vlan: None,
            l2cp: p.l2cp.as_ref().map_or(L2cpCfg::Drop, |l| *l.get_ref()),
            default_pcp: match &p.default_pcp {
                Some(v) if *v.get_ref() > 7 => {
                    return Err(cx.err(
                        v.span(),
                        "port.default_pcp",
                        format!("{} is out of range: 0..=7", v.get_ref()),
                    ))
                }
                Some(v) => *v.get_ref(),
                None => 0,
            },
            storm: (
                p.storm_broadcast.unwrap_or(0),
                p.storm_multicast.unwrap_or(0),
                p.storm_unknown_unicast.unwrap_or(0),
            ),
        });
    }

    // One XDP program per device: two ports on one device would fight
    // over it (several queues of one device come with multi-queue ports).
    let mut ifaces: HashMap<&str, usize> = HashMap::new();
    for (i, p) in ports.iter().enumerate() {
        if matches!(p.kind, PortKind::Veth | PortKind::Tap | PortKind::Afxdp) {
            if let Some(j) = ifaces.insert(p.iface.as_str(), i) {
                return Err(cx.err(
                    config.ports[i].name.span(),
                    "port.iface",
                    format!(
                        "device {} is already used by port {:?}",
                        p.iface, ports[j].name
                    ),
                ));
            }
        }
    }
    Ok(ports)
}
