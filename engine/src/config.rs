//! The TOML configuration. Parsing is two steps: serde reads the file
//! (syntax, types, unknown fields), then `validate` checks what serde
//! cannot (names that must exist, kinds that need fields). Either step's
//! error names the file, the line and the field; nothing starts until the
//! whole file is good.

use pollgate_pipeline::acl::{AclAttachments, Action, FlowTimeouts, Rule};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pmd::afxdp::{AfXdpConfig, BindMode, XdpMode};
use pollgate_pmd::veth::ContainerEnd;
use pollgate_pmd::PoolConfig;
use serde::Deserialize;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod shared_uplink;
pub use shared_uplink::{Driver, DriverCfg, IpVlanModeCfg, MacVlanModeCfg};

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardModeCfg {
    #[default]
    Io,
    Mac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdleMode {
    /// Spin on empty polls: lowest latency, a full core per worker.
    #[default]
    Poll,
    /// Yield, then sleep with growing pauses, when there is no traffic:
    /// for machines the engine shares.
    Backoff,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    pub forward: ForwardModeCfg,
    /// Run the parse stage (off: frames cross untouched, as testpmd io).
    pub parse: bool,
    pub burst: Spanned<usize>,
    pub idle: IdleMode,
    /// Seconds between live stats lines on stderr (0: none).
    pub stats_interval: u64,
    /// Where `pollgate ctl` finds the engine.
    pub ctl_socket: PathBuf,
    /// Prometheus endpoint, e.g. "127.0.0.1:9100" (off when absent).
    pub metrics: Option<String>,
    /// Log filter, as RUST_LOG takes it ("info", "pollgate=debug"…);
    /// RUST_LOG, when set, wins.
    pub log: Option<Spanned<String>>,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            forward: ForwardModeCfg::Io,
            parse: true,
            burst: Spanned::new(0..0, 32),
            idle: IdleMode::Poll,
            stats_interval: 0,
            ctl_socket: PathBuf::from(DEFAULT_CTL_SOCKET),
            metrics: None,
            log: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    pub frames: Spanned<u32>,
    pub frame_size: Spanned<u32>,
    pub headroom: Spanned<u32>,
    pub hugepages: bool,
}

impl Default for PoolSection {
    fn default() -> Self {
        let d = PoolConfig::default();
        PoolSection {
            frames: Spanned::new(0..0, d.frames),
            frame_size: Spanned::new(0..0, d.frame_size),
            headroom: Spanned::new(0..0, d.headroom),
            hugepages: d.hugepages,
        }
    }
}

impl PoolSection {
    pub fn pool_config(&self) -> PoolConfig {
        PoolConfig {
            frames: *self.frames.get_ref(),
            frame_size: *self.frame_size.get_ref(),
            headroom: *self.headroom.get_ref(),
            hugepages: self.hugepages,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BindModeCfg {
    #[default]
    Auto,
    ZeroCopy,
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeCfg {
    #[default]
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VlanModeCfg {
    Access,
    Trunk,
    Qinq,
    /// The customer side of an 802.1ad service (OVS's and Cisco's name).
    #[serde(rename = "dot1q-tunnel")]
    Dot1qTunnel,
}

/// What a dot1q-tunnel port does with L2 control frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum L2cpCfg {
    #[default]
    Drop,
    Tunnel,
}

/// MAC table settings, shared by every bridge domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchSection {
    /// Most MAC entries over all domains; learning past it is counted.
    pub mac_limit: Spanned<usize>,
    /// Seconds a learned entry lives without traffic.
    pub aging: Spanned<u32>,
}

impl Default for SwitchSection {
    fn default() -> Self {
        SwitchSection {
            mac_limit: Spanned::new(0..0, 1 << 20),
            aging: Spanned::new(0..0, 300),
        }
    }
}

/// A bridge member: a port and the VLAN mapping that joins it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSection {
    pub port: Spanned<String>,
    /// trunk: the C-VID carrying this domain (absent: the native VLAN).
    pub vid: Option<Spanned<u16>>,
    /// qinq: the S-VID selecting this service.
    pub svid: Option<Spanned<u16>>,
    /// qinq: with `svid`, selective QinQ on the (S, C) pair.
    pub cvid: Option<Spanned<u16>>,
    /// ipvlan: the member's addresses (IPv4 or IPv6) besides its port's
    /// `address`.
    #[serde(default)]
    pub ips: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMacSection {
    pub mac: Spanned<String>,
    pub port: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    pub name: Spanned<String>,
    pub members: Spanned<Vec<MemberSection>>,
    #[serde(default)]
    pub static_macs: Vec<StaticMacSection>,
    /// ACLs checked for every packet entering / leaving the domain.
    pub acl_in: Option<Spanned<String>>,
    pub acl_out: Option<Spanned<String>>,
    /// The VXLAN network identifier this domain is carried in.
    pub vni: Option<Spanned<u32>>,
    /// Remote VTEPs (IPv4) that get a copy of the domain's floods.
    #[serde(default)]
    pub flood: Vec<Spanned<String>>,
    /// "bridge" (learning, the default), "macvlan" or "ipvlan".
    pub driver: Option<Spanned<DriverCfg>>,
    /// macvlan/ipvlan: the uplink port the members share.
    pub parent: Option<Spanned<String>>,
    pub macvlan_mode: Option<Spanned<MacVlanModeCfg>>,
    pub ipvlan_mode: Option<Spanned<IpVlanModeCfg>>,
}

/// The VXLAN tunnel endpoint: one, on an underlay port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtepSection {
    pub port: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default = "default_vxlan_port")]
    pub udp_port: u16,
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    #[serde(default = "default_true")]
    pub df: bool,
    /// Underlay IP MTU.
    pub mtu: Option<Spanned<u16>>,
    /// Next hop for every remote VTEP (absent: remotes are on the link).
    pub gateway: Option<Spanned<String>>,
    /// Static ARP entries: `[{ ip = "...", mac = "..." }]`.
    #[serde(default)]
    pub neighbors: Vec<NeighborSection>,
}

fn default_vxlan_port() -> u16 {
    4789
}
fn default_ttl() -> u8 {
    64
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborSection {
    pub ip: Spanned<String>,
    pub mac: Spanned<String>,
}

/// The VTEP, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct VtepSpec {
    pub port: usize,
    pub ip: [u8; 4],
    pub udp_port: u16,
    pub ttl: u8,
    pub df: bool,
    pub mtu: u16,
    pub gateway: Option<[u8; 4]>,
    pub neighbors: Vec<([u8; 4], MacAddr)>,
    /// (VNI, domain, flood list) per VNI-mapped bridge.
    pub vnis: Vec<(u32, usize, Vec<[u8; 4]>)>,
}

/// An ordered rule list: `rules` in the text form of `ctl acl add`
/// ("permit src=198.18.0.0/15 proto=tcp dport=80 stateful").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSection {
    pub name: Spanned<String>,
    /// "permit" or "deny" for packets no rule matches.
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
}

/// The reflexive-ACL flow table of each worker; timeouts in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConntrackSection {
    pub size: Spanned<usize>,
    pub tcp_established: u64,
    pub tcp_transient: u64,
    pub udp: u64,
    pub other: u64,
}

impl Default for ConntrackSection {
    fn default() -> Self {
        let t = FlowTimeouts::default();
        ConntrackSection {
            size: Spanned::new(0..0, 65536),
            tcp_established: t.tcp_established / 1_000_000_000,
            tcp_transient: t.tcp_transient / 1_000_000_000,
            udp: t.udp / 1_000_000_000,
            other: t.other / 1_000_000_000,
        }
    }
}

impl ConntrackSection {
    pub fn timeouts(&self) -> FlowTimeouts {
        const S: u64 = 1_000_000_000;
        FlowTimeouts {
            tcp_established: self.tcp_established.saturating_mul(S),
            tcp_transient: self.tcp_transient.saturating_mul(S),
            udp: self.udp.saturating_mul(S),
            other: self.other.saturating_mul(S),
        }
    }
}

/// An ACL with its rules parsed and names resolved.
#[derive(Debug, Clone)]
pub struct AclSpec {
    pub name: String,
    pub default: Action,
    pub rules: Vec<Rule>,
}

/// How a member joins its domain, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberMap {
    Untagged,
    Vid(u16),
    Svid(u16),
    Pair(u16, u16),
}

#[derive(Debug, Clone)]
pub struct BridgeSpec {
    pub name: String,
    pub members: Vec<(usize, MemberMap)>,
    pub statics: Vec<(MacAddr, usize)>,
    pub driver: Driver,
}

/// AF_XDP ring sizes, shared by every AF_XDP socket.
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: Spanned<String>,
    pub kind: Spanned<PortKind>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XconnectSection {
    pub ports: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// CPU to pin to; unpinned when absent.
    pub core: Option<Spanned<usize>>,
    pub ports: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub pool: PoolSection,
    #[serde(default)]
    pub afxdp: AfXdpSection,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortSection>,
    #[serde(default)]
    pub xconnect: Vec<XconnectSection>,
    #[serde(default)]
    pub switch: SwitchSection,
    #[serde(default)]
    pub bridge: Vec<BridgeSection>,
    #[serde(default, rename = "worker")]
    pub workers: Vec<WorkerSection>,
    #[serde(default)]
    pub acl: Vec<AclSection>,
    #[serde(default)]
    pub conntrack: ConntrackSection,
    pub vtep: Option<VtepSection>,
}

/// A checked configuration: every name resolved to an index.
#[derive(Debug, Clone)]
pub struct Topology {
    pub config: Config,
    /// The file as it was read, for `ctl show config`.
    pub source: String,
    pub pool: PoolConfig,
    pub ports: Vec<PortSpec>,
    /// Pairs of port indices.
    pub xconnects: Vec<(usize, usize)>,
    pub bridges: Vec<BridgeSpec>,
    pub workers: Vec<WorkerSpec>,
    pub acls: Vec<AclSpec>,
    /// Which ACL sits on which port and domain, by index into `acls`.
    pub acl_attach: AclAttachments,
    pub vtep: Option<VtepSpec>,
}

impl Topology {
    /// True when starting this topology creates devices or namespaces.
    pub fn creates_devices(&self) -> bool {
        self.ports
            .iter()
            .any(|p| matches!(p.kind, PortKind::Veth | PortKind::Tap))
    }

    /// True when starting this topology changes devices it did not
    /// create: an `afxdp` port's RX VLAN offload, a shared uplink's
    /// unicast filter or promiscuous mode, a forced XDP program.
    pub fn changes_devices(&self) -> bool {
        self.ports.iter().any(|p| p.kind == PortKind::Afxdp)
    }
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

#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub core: Option<usize>,
    /// Ports with at least one queue served here.
    pub ports: Vec<usize>,
    /// The (port, queue) pairs this worker polls.
    pub queues: Vec<(usize, u32)>,
}

/// The control socket when the config names none.
pub const DEFAULT_CTL_SOCKET: &str = "/run/pollgate.sock";

/// Domain ids are u16 with one value meaning "none".
const MAX_DOMAINS: usize = 0xffff;
/// Most ports one engine runs (a flood's target list lives on the stack).
pub const MAX_PORTS: usize = 1024;

/// Line (1-based) of a byte offset.
fn line_of(src: &str, at: usize) -> usize {
    src[..at.min(src.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    base: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: line_of(self.src, span.start),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

pub fn load(path: &Path) -> Result<Topology, ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        field: "-".into(),
        message: format!("cannot read: {e}"),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_in(&file, &src, &base)
}

/// Parses and validates `src`; `file` names it in errors, and relative
/// paths are taken from the current directory.
pub fn parse(file: &str, src: &str) -> Result<Topology, ConfigError> {
    parse_in(file, src, Path::new(""))
}

/// As `parse`, with relative paths taken from `base` (the directory of
/// the config file, so a config works from wherever it is run).
pub fn parse_in(file: &str, src: &str, base: &Path) -> Result<Topology, ConfigError> {
    let cx = Ctx { file, src, base };
    let config: Config = toml::from_str(src).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().to_string();
        // serde names the offending key in backquotes.
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .unwrap_or("-")
            .to_string();
        cx.err(span, &field, message)
    })?;
    validate(&cx, config)
}

fn mac(
    cx: &Ctx,
    v: &Option<Spanned<String>>,
    field: &str,
    default: MacAddr,
) -> Result<MacAddr, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .get_ref()
            .parse()
            .map_err(|e: &str| cx.err(s.span(), field, format!("{:?}: {e}", s.get_ref()))),
    }
}

fn validate(cx: &Ctx, config: Config) -> Result<Topology, ConfigError> {
    let e = &config.engine;
    let burst = *e.burst.get_ref();
    if burst == 0 || burst > pollgate_pipeline::BATCH_SIZE {
        return Err(cx.err(
            e.burst.span(),
            "engine.burst",
            format!(
                "{burst} is out of range: 1..={}",
                pollgate_pipeline::BATCH_SIZE
            ),
        ));
    }
    if let Some(l) = &e.log {
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(l.get_ref()) {
            return Err(cx.err(l.span(), "engine.log", format!("{:?}: {err}", l.get_ref())));
        }
    }
    let mut pool = config.pool.pool_config();
    if let Err(pollgate_pmd::PmdError::Geometry { field, reason }) = pool.validate() {
        let span = match field {
            "frame_size" => config.pool.frame_size.span(),
            "headroom" => config.pool.headroom.span(),
            _ => config.pool.frames.span(),
        };
        return Err(cx.err(span, &format!("pool.{field}"), reason));
    }
    if config.ports.is_empty() {
        return Err(cx.err(0..0, "port", "no [[port]] defined"));
    }
    if config.ports.len() > MAX_PORTS {
        return Err(cx.err(
            0..0,
            "port",
            format!("{} ports; at most {MAX_PORTS}", config.ports.len()),
        ));
    }

    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, p) in config.ports.iter().enumerate() {
        let name = p.name.get_ref();
        if name.is_empty()
            || name.len() > 15
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(cx.err(
                p.name.span(),
                "port.name",
                format!("{name:?}: use 1-15 characters of [A-Za-z0-9-_.]"),
            ));
        }
        if index.insert(name.clone(), i).is_some() {
            return Err(cx.err(
                p.name.span(),
                "port.name",
                format!("{name:?} is defined twice"),
            ));
        }
    }
    let resolve = |s: &Spanned<String>, field: &str| {
        index
            .get(s.get_ref())
            .copied()
            .ok_or_else(|| cx.err(s.span(), field, format!("no port named {:?}", s.get_ref())))
    };

    let mut ports = Vec::new();
    for (i, p) in config.ports.iter().enumerate() {
        let kind = *p.kind.get_ref();
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

    let mut paired: HashMap<usize, ()> = HashMap::new();
    let mut xconnects = Vec::new();
    for x in &config.xconnect {
        let names = x.ports.get_ref();
        if names.len() != 2 {
            return Err(cx.err(
                x.ports.span(),
                "xconnect.ports",
                format!("needs exactly two ports, got {}", names.len()),
            ));
        }
        let a = resolve(&names[0], "xconnect.ports")?;
        let b = resolve(&names[1], "xconnect.ports")?;
        if a == b {
            return Err(cx.err(
                x.ports.span(),
                "xconnect.ports",
                "a port cannot be connected to itself",
            ));
        }
        for (k, s) in [(a, &names[0]), (b, &names[1])] {
            if paired.insert(k, ()).is_some() {
                return Err(cx.err(
                    s.span(),
                    "xconnect.ports",
                    format!("{:?} is already cross-connected", s.get_ref()),
                ));
            }
        }
        xconnects.push((a, b));
    }

    let bridges = validate_bridges(cx, &config, &mut ports, &resolve, &paired)?;
    let (acls, acl_attach) = validate_acls(cx, &config, &ports, &bridges)?;
    let vtep = validate_vtep(cx, &config, &bridges, &resolve, &paired)?;

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    // Who serves each (port, queue); the owner of a port (for hand-offs
    // from other workers) is the worker of its queue 0.
    let mut served: HashMap<(usize, u32), usize> = HashMap::new();
    let mut owner: Vec<Option<usize>> = vec![None; ports.len()];
    let mut workers = Vec::new();
    for (w, ws) in config.workers.iter().enumerate() {
        if let Some(c) = &ws.core {
            if !cores.is_empty() && !cores.iter().any(|id| id.id == *c.get_ref()) {
                return Err(cx.err(
                    c.span(),
                    "worker.core",
                    format!(
                        "core {} is not available to this process ({} cores)",
                        c.get_ref(),
                        cores.len()
                    ),
                ));
            }
        }
        let mut list = Vec::new();
        let mut queues = Vec::new();
        for s in ws.ports.get_ref() {
            // "name" serves every queue of the port, "name@q" one queue.
            let (name, q) = match s.get_ref().split_once('@') {
                Some((n, q)) => (n, Some(q)),
                None => (s.get_ref().as_str(), None),
            };
            let k = resolve(&Spanned::new(s.span(), name.to_string()), "worker.ports")?;
            let nq = ports[k].queues;
            let qs: Vec<u32> = match q {
                None => (0..nq).collect(),
                Some(q) => match q.parse::<u32>() {
                    Ok(q) if q < nq => vec![q],
                    _ => {
                        return Err(cx.err(
                            s.span(),
                            "worker.ports",
                            format!("{:?}: port {name:?} has queues 0..{nq}", s.get_ref()),
                        ))
                    }
                },
            };
            for q in qs {
                if let Some(prev) = served.insert((k, q), w) {
                    return Err(cx.err(
                        s.span(),
                        "worker.ports",
                        format!("queue {q} of {name:?} is already served by worker {prev}"),
                    ));
                }
                if q == 0 {
                    owner[k] = Some(w);
                }
                queues.push((k, q));
            }
            if !list.contains(&k) {
                list.push(k);
            }
        }
        workers.push(WorkerSpec {
            core: ws.core.as_ref().map(|c| *c.get_ref()),
            ports: list,
            queues,
        });
    }
    if workers.is_empty() {
        // One unpinned worker serves everything.
        let queues: Vec<(usize, u32)> = ports
            .iter()
            .enumerate()
            .flat_map(|(k, p)| (0..p.queues).map(move |q| (k, q)))
            .collect();
        for &(k, q) in &queues {
            served.insert((k, q), 0);
        }
        workers.push(WorkerSpec {
            core: None,
            ports: (0..ports.len()).collect(),
            queues,
        });
        owner.iter_mut().for_each(|o| *o = Some(0));
    }
    for (k, p) in ports.iter().enumerate() {
        if let Some(q) = (0..p.queues).find(|q| !served.contains_key(&(k, *q))) {
            let s = &config.ports[k].name;
            return Err(cx.err(
                s.span(),
                "worker.ports",
                format!(
                    "queue {q} of port {:?} is served by no worker: its traffic would be lost",
                    s.get_ref()
                ),
            ));
        }
    }
    for (k, o) in owner.iter().enumerate() {
        if o.is_none() {
            let s = &config.ports[k].name;
            return Err(cx.err(
                s.span(),
                "worker.ports",
                format!("port {:?} is served by no worker", s.get_ref()),
            ));
        }
    }
    // Each AF_XDP socket keeps its fill ring stocked from its worker's
    // pool; the pool must cover those and a burst per port on top.
    for ws in &workers {
        let fill: u64 = ws
            .queues
            .iter()
            .filter(|&&(k, _)| matches!(ports[k].kind, PortKind::Veth | PortKind::Afxdp))
            .map(|&(k, _)| ports[k].afxdp.fill_size as u64)
            .sum();
        let need = fill + (2 * pollgate_pipeline::BATCH_SIZE * ws.queues.len()) as u64;
        if config.pool.frames.span().is_empty() && (pool.frames as u64) < need * 2 {
            // Not set in the file: size the pool for the ports.
            pool.frames = (need * 2).next_power_of_two() as u32;
        } else if (pool.frames as u64) < need {
            return Err(cx.err(config.pool.frames.span(), "pool.frames", format!("{} frames cannot stock the fill rings of a worker's AF_XDP ports ({fill}) and leave two bursts per port: use at least {}", pool.frames, need.next_power_of_two())));
        }
    }

    Ok(Topology {
        source: cx.src.to_string(),
        config,
        pool,
        ports,
        xconnects,
        bridges,
        workers,
        acls,
        acl_attach,
        vtep,
    })
}

fn ipv4(cx: &Ctx, s: &Spanned<String>, field: &str) -> Result<[u8; 4], ConfigError> {
    s.get_ref()
        .parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| {
            cx.err(
                s.span(),
                field,
                format!("{:?} is not an IPv4 address", s.get_ref()),
            )
        })
}

/// Checks `[vtep]` and the bridges' `vni`/`flood`.
fn validate_vtep(
    cx: &Ctx,
    config: &Config,
    bridges: &[BridgeSpec],
    resolve: &Resolve,
    paired: &HashMap<usize, ()>,
) -> Result<Option<VtepSpec>, ConfigError> {
    let mut vnis: Vec<(u32, usize, Vec<[u8; 4]>)> = Vec::new();
    for (d, b) in config.bridge.iter().enumerate() {
        if let Some(v) = &b.vni {
            let vni = *v.get_ref();
            if !(1..=0x00ff_ffff).contains(&vni) {
                return Err(cx.err(
                    v.span(),
                    "bridge.vni",
                    format!("{vni} is out of range: 1..=16777215"),
                ));
            }
            if vnis.iter().any(|x| x.0 == vni) {
                return Err(cx.err(v.span(), "bridge.vni", format!("VNI {vni} is mapped twice")));
            }
            let flood = b
                .flood
                .iter()
                .map(|f| ipv4(cx, f, "bridge.flood"))
                .collect::<Result<_, _>>()?;
            vnis.push((vni, d, flood));
        } else if let Some(f) = b.flood.first() {
            return Err(cx.err(
                f.span(),
                "bridge.flood",
                "a flood list needs the bridge's `vni`",
            ));
        }
    }
    let Some(v) = &config.vtep else {
        if let Some(b) = config.bridge.iter().find(|b| b.vni.is_some()) {
            let span = b.vni.as_ref().map(|v| v.span()).unwrap_or(0..0);
            return Err(cx.err(span, "bridge.vni", "a VNI needs a [vtep] section"));
        }
        return Ok(None);
    };
    let port = resolve(&v.port, "vtep.port")?;
    if paired.contains_key(&port)
        || bridges
            .iter()
            .any(|b| b.members.iter().any(|m| m.0 == port))
    {
        return Err(cx.err(
            v.port.span(),
            "vtep.port",
            format!(
                "{:?} carries the underlay: it cannot also be cross-connected or a bridge member",
                v.port.get_ref()
            ),
        ));
    }
    let mtu = v.mtu.as_ref().map_or(1500, |m| *m.get_ref());
    if mtu < 576 {
        return Err(cx.err(
            v.mtu.as_ref().map(|m| m.span()).unwrap_or(0..0),
            "vtep.mtu",
            format!("{mtu} is below 576"),
        ));
    }
    let mut neighbors = Vec::new();
    for n in &v.neighbors {
        let ip = ipv4(cx, &n.ip, "vtep.neighbors.ip")?;
        let mac: MacAddr = n.mac.get_ref().parse().map_err(|e: &str| {
            cx.err(
                n.mac.span(),
                "vtep.neighbors.mac",
                format!("{:?}: {e}", n.mac.get_ref()),
            )
        })?;
        neighbors.push((ip, mac));
    }
    Ok(Some(VtepSpec {
        port,
        ip: ipv4(cx, &v.address, "vtep.address")?,
        udp_port: v.udp_port,
        ttl: v.ttl,
        df: v.df,
        mtu,
        gateway: v
            .gateway
            .as_ref()
            .map(|g| ipv4(cx, g, "vtep.gateway"))
            .transpose()?,
        neighbors,
        vnis,
    }))
}

/// Parses every `[[acl]]` (rules in text form, names resolved) and where
/// each is attached. An error names the rule by its index in the list.
fn validate_acls(
    cx: &Ctx,
    config: &Config,
    ports: &[PortSpec],
    bridges: &[BridgeSpec],
) -> Result<(Vec<AclSpec>, AclAttachments), ConfigError> {
    let names = |kind: &str, name: &str| -> Option<u16> {
        let i = match kind {
            "port" => ports.iter().position(|p| p.name == name),
            "vni" => {
                let v: u32 = name.parse().ok()?;
                config
                    .bridge
                    .iter()
                    .position(|b| b.vni.as_ref().map(|x| *x.get_ref()) == Some(v))
            }
            _ => bridges.iter().position(|b| b.name == name),
        };
        i.map(|i| i as u16)
    };
    let mut acls: Vec<AclSpec> = Vec::new();
    for a in &config.acl {
        let name = a.name.get_ref();
        if name.is_empty() || acls.iter().any(|x| &x.name == name) {
            return Err(cx.err(
                a.name.span(),
                "acl.name",
                format!("{name:?}: ACL names are unique and not empty"),
            ));
        }
        let default = match &a.default {
            None => Action::Deny,
            Some(d) => Action::parse(d.get_ref())
                .map_err(|e| cx.err(d.span(), "acl.default", e.to_string()))?,
        };
        let mut rules = Vec::with_capacity(a.rules.len());
        for (i, r) in a.rules.iter().enumerate() {
            let rule = Rule::parse_text(r.get_ref(), &names).map_err(|e| {
                cx.err(
                    r.span(),
                    &format!("acl.rules[{i}]"),
                    format!("{:?}: {e}", r.get_ref()),
                )
            })?;
            rules.push(rule);
        }
        if rules.len() > pollgate_pipeline::acl::classifier::MAX_RULES {
            return Err(cx.err(
                a.name.span(),
                "acl.rules",
                format!(
                    "{} rules; at most {}",
                    rules.len(),
                    pollgate_pipeline::acl::classifier::MAX_RULES
                ),
            ));
        }
        acls.push(AclSpec {
            name: name.clone(),
            default,
            rules,
        });
    }
    let find = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<usize>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) => acls
                .iter()
                .position(|a| &a.name == s.get_ref())
                .map(Some)
                .ok_or_else(|| {
                    cx.err(
                        s.span(),
                        field,
                        format!("no [[acl]] named {:?}", s.get_ref()),
                    )
                }),
        }
    };
    let mut at = AclAttachments {
        port_in: vec![None; ports.len()],
        port_out: vec![None; ports.len()],
        domain_in: vec![None; bridges.len()],
        domain_out: vec![None; bridges.len()],
    };
    for (i, p) in config.ports.iter().enumerate() {
        at.port_in[i] = find(&p.acl_in, "port.acl_in")?;
        at.port_out[i] = find(&p.acl_out, "port.acl_out")?;
    }
    for (i, b) in config.bridge.iter().enumerate() {
        at.domain_in[i] = find(&b.acl_in, "bridge.acl_in")?;
        at.domain_out[i] = find(&b.acl_out, "bridge.acl_out")?;
    }
    if !(64..=1 << 24).contains(config.conntrack.size.get_ref()) {
        return Err(cx.err(
            config.conntrack.size.span(),
            "conntrack.size",
            format!(
                "{} is out of range: 64..=16777216",
                config.conntrack.size.get_ref()
            ),
        ));
    }
    Ok((acls, at))
}

fn kind_name(k: PortKind) -> &'static str {
    match k {
        PortKind::Null => "null",
        PortKind::Ring => "ring",
        PortKind::Pcap => "pcap",
        PortKind::Veth => "veth",
        PortKind::Tap => "tap",
        PortKind::Afxdp => "afxdp",
    }
}

fn check_ifname(cx: &Ctx, n: &Spanned<String>, field: &str) -> Result<(), ConfigError> {
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

fn ring_size(cx: &Ctx, v: &Spanned<u32>, field: &str) -> Result<u32, ConfigError> {
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

fn afxdp_config(cx: &Ctx, a: &AfXdpSection, p: &PortSection) -> Result<AfXdpConfig, ConfigError> {
    Ok(AfXdpConfig {
        queue: 0,
        // Decided per worker when the engine starts (the devices' MTUs).
        multi_buffer: false,
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
fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (a, len) = s.split_once('/')?;
    let ip: std::net::Ipv4Addr = a.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((ip.octets(), len))
}

fn container_end(
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
        mtu,
    }))
}

/// Looks a port name up, or names the line of the bad reference.
type Resolve<'a> = dyn Fn(&Spanned<String>, &str) -> Result<usize, ConfigError> + 'a;

/// Checks `[[bridge]]` sections against the ports' VLAN modes and fills
/// in each member port's mode.
fn validate_bridges(
    cx: &Ctx,
    config: &Config,
    ports: &mut [PortSpec],
    resolve: &Resolve,
    cross_connected: &HashMap<usize, ()>,
) -> Result<Vec<BridgeSpec>, ConfigError> {
    if config.bridge.len() >= (MAX_DOMAINS) {
        return Err(cx.err(
            0..0,
            "bridge",
            format!("at most {} bridge domains", MAX_DOMAINS - 1),
        ));
    }
    // Per port: which untagged / VID / S-VID / (S,C) mappings are taken.
    let mut taken: HashMap<(usize, MemberMap), String> = HashMap::new();
    let mut names: HashMap<&str, ()> = HashMap::new();
    let mut out = Vec::new();
    for b in &config.bridge {
        let name = b.name.get_ref();
        if names.insert(name.as_str(), ()).is_some() {
            return Err(cx.err(
                b.name.span(),
                "bridge.name",
                format!("{name:?} is defined twice"),
            ));
        }
        let mut members = Vec::new();
        for m in b.members.get_ref() {
            let k = resolve(&m.port, "bridge.members.port")?;
            if cross_connected.contains_key(&k) {
                return Err(cx.err(
                    m.port.span(),
                    "bridge.members.port",
                    format!(
                        "{:?} is cross-connected; a port is either cross-connected or in bridges",
                        m.port.get_ref()
                    ),
                ));
            }
            let p = &config.ports[k];
            let mode = p
                .vlan_mode
                .as_ref()
                .map_or(VlanModeCfg::Access, |v| *v.get_ref());
            let tpid = match (&p.tpid, mode) {
                (Some(t), _) => {
                    let v = *t.get_ref();
                    if v != 0x8100 && v != 0x88a8 && v != 0x9100 {
                        return Err(cx.err(
                            t.span(),
                            "port.tpid",
                            format!("{v:#06x}: use 0x8100, 0x88a8 or 0x9100"),
                        ));
                    }
                    v
                }
                (None, VlanModeCfg::Qinq) => 0x88a8,
                (None, _) => 0x8100,
            };
            let vid = |v: &Option<Spanned<u16>>, field: &str| -> Result<Option<u16>, ConfigError> {
                match v {
                    Some(s) if !(1..=4094).contains(s.get_ref()) => Err(cx.err(
                        s.span(),
                        field,
                        format!("{} is out of range: 1..=4094", s.get_ref()),
                    )),
                    Some(s) => Ok(Some(*s.get_ref())),
                    None => Ok(None),
                }
            };
            let (v, sv, cv) = (
                vid(&m.vid, "bridge.members.vid")?,
                vid(&m.svid, "bridge.members.svid")?,
                vid(&m.cvid, "bridge.members.cvid")?,
            );
            let wrong = |field: &str, why: &str| {
                Err(cx.err(
                    m.port.span(),
                    field,
                    format!("port {:?} is a {mode:?} port: {why}", m.port.get_ref()),
                ))
            };
            let map = match mode {
                VlanModeCfg::Access if v.is_some() || sv.is_some() || cv.is_some() => {
                    return wrong(
                        "bridge.members",
                        "an access member carries untagged frames; give no vid/svid/cvid",
                    )
                }
                VlanModeCfg::Access => MemberMap::Untagged,
                VlanModeCfg::Trunk if sv.is_some() || cv.is_some() => {
                    return wrong("bridge.members", "use vid (or nothing for the native VLAN)")
                }
                VlanModeCfg::Trunk => v.map_or(MemberMap::Untagged, MemberMap::Vid),
                VlanModeCfg::Qinq if v.is_some() => {
                    return wrong(
                        "bridge.members.vid",
                        "use svid (and cvid for selective QinQ)",
                    )
                }
                VlanModeCfg::Qinq => match (sv, cv) {
                    (Some(s), Some(c)) => MemberMap::Pair(s, c),
                    (Some(s), None) => MemberMap::Svid(s),
                    (None, None) => MemberMap::Untagged,
                    (None, Some(_)) => return wrong("bridge.members.cvid", "cvid needs svid"),
                },
                VlanModeCfg::Dot1qTunnel if v.is_some() || sv.is_some() || cv.is_some() => {
                    return wrong(
                        "bridge.members",
                        "a customer port joins the service its bridge is, whatever the customer's tags; the S-VID is the provider (qinq) members' svid",
                    )
                }
                VlanModeCfg::Dot1qTunnel => MemberMap::Untagged,
            };
            let one_domain = matches!(mode, VlanModeCfg::Access | VlanModeCfg::Dot1qTunnel);
            if one_domain && taken.keys().any(|(pk, _)| *pk == k) {
                return Err(cx.err(
                    m.port.span(),
                    "bridge.members.port",
                    format!(
                        "{} port {:?} is already in a bridge",
                        if mode == VlanModeCfg::Access {
                            "access"
                        } else {
                            "dot1q-tunnel"
                        },
                        m.port.get_ref()
                    ),
                ));
            }
            if let Some(other) = taken.insert((k, map), name.clone()) {
                return Err(cx.err(
                    m.port.span(),
                    "bridge.members",
                    format!(
                        "port {:?} with this VLAN mapping is already in bridge {other:?}",
                        m.port.get_ref()
                    ),
                ));
            }
            ports[k].vlan = Some((mode, tpid));
            members.push((k, map));
        }
        let mut statics = Vec::new();
        for s in &b.static_macs {
            let mac: MacAddr = s.mac.get_ref().parse().map_err(|e: &str| {
                cx.err(
                    s.mac.span(),
                    "bridge.static_macs.mac",
                    format!("{:?}: {e}", s.mac.get_ref()),
                )
            })?;
            if mac.is_multicast() {
                return Err(cx.err(
                    s.mac.span(),
                    "bridge.static_macs.mac",
                    "a static entry needs a unicast MAC",
                ));
            }
            let k = resolve(&s.port, "bridge.static_macs.port")?;
            if !members.iter().any(|&(m, _)| m == k) {
                return Err(cx.err(
                    s.port.span(),
                    "bridge.static_macs.port",
                    format!("{:?} is not a member of bridge {name:?}", s.port.get_ref()),
                ));
            }
            statics.push((mac, k));
        }
        let driver = shared_uplink::validate_driver(cx, b, &members, &mut statics, ports, resolve)?;
        out.push(BridgeSpec {
            name: name.clone(),
            members,
            statics,
            driver,
        });
    }
    for (k, p) in config.ports.iter().enumerate() {
        let tunnel = matches!(ports[k].vlan, Some((VlanModeCfg::Dot1qTunnel, _)));
        for (set, field) in [
            (p.l2cp.as_ref().map(|x| x.span()), "port.l2cp"),
            (p.default_pcp.as_ref().map(|x| x.span()), "port.default_pcp"),
        ] {
            if let (Some(span), false) = (set, tunnel) {
                return Err(cx.err(
                    span,
                    field,
                    "only a vlan_mode = \"dot1q-tunnel\" bridge member (a customer port) has it",
                ));
            }
        }
    }
    let limit = *config.switch.mac_limit.get_ref();
    if !(16..=1 << 26).contains(&limit) {
        return Err(cx.err(
            config.switch.mac_limit.span(),
            "switch.mac_limit",
            format!("{limit} is out of range: 16..=67108864"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[engine]
forward = "mac"
burst = 32

[[port]]
name = "a"
kind = "null"
size = 60

[[port]]
name = "b"
kind = "null"
mac = "02:aa:bb:cc:dd:ee"

[[xconnect]]
ports = ["a", "b"]
"#;

    #[test]
    fn good_config_resolves() {
        let t = parse("good.toml", GOOD).unwrap();
        assert_eq!(t.ports.len(), 2);
        assert_eq!(t.xconnects, vec![(0, 1)]);
        assert_eq!(t.workers.len(), 1);
        assert_eq!(t.ports[1].mac.to_string(), "02:aa:bb:cc:dd:ee");
        assert_eq!(t.config.engine.forward, ForwardModeCfg::Mac);
    }

    fn err(src: &str) -> ConfigError {
        parse("gw.toml", src).unwrap_err()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = err(&GOOD.replace("burst = 32", "burst = 500"));
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("gw.toml", 4, "engine.burst")
        );

        let e = err(&GOOD.replace("burst = 32", "burst = 32\nlog = \"pollgate=loud\""));
        assert_eq!((e.line, e.field.as_str()), (5, "engine.log"), "{e}");
        assert!(parse(
            "gw.toml",
            &GOOD.replace("burst = 32", "burst = 32\nlog = \"pollgate=debug\"")
        )
        .is_ok());

        let e = err(&GOOD.replace("size = 60", "sise = 60"));
        assert_eq!((e.line, e.field.as_str()), (9, "sise"), "{e}");

        let e = err(&GOOD.replace(r#"ports = ["a", "b"]"#, r#"ports = ["a", "c"]"#));
        assert_eq!((e.line, e.field.as_str()), (17, "xconnect.ports"), "{e}");
        assert!(e.to_string().contains("no port named \"c\""), "{e}");

        let e = err(&GOOD.replace("02:aa:bb:cc:dd:ee", "02:aa:bb"));
        assert_eq!((e.line, e.field.as_str()), (14, "port.mac"), "{e}");

        let e = err(&GOOD.replace(
            r#"kind = "null"
size"#,
            r#"kind = "ring"
size"#,
        ));
        assert_eq!((e.line, e.field.as_str()), (8, "port.peer"), "{e}");

        let e = err(&format!("{GOOD}\n[pool]\nframe_size = 3000\n"));
        assert_eq!((e.line, e.field.as_str()), (20, "pool.frame_size"), "{e}");

        let e = err(&GOOD.replace(r#"forward = "mac""#, r#"forward = "maac""#));
        assert_eq!(e.line, 3, "{e}");

        let e = err("[[port]\nname=1");
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn jumbo_mtus_are_for_veth_ports_up_to_9216() {
        let port = |kind: &str, mtu: u32| {
            format!("[[port]]\nname = \"j\"\nkind = \"{kind}\"\nnetns = \"j\"\nmtu = {mtu}\n[[port]]\nname = \"n\"\nkind = \"null\"\n[[xconnect]]\nports = [\"j\", \"n\"]\n")
        };
        let t = parse("j.toml", &port("veth", 9000)).unwrap();
        assert_eq!(t.ports[0].container.as_ref().unwrap().mtu, 9000);
        let e = err(&port("veth", 9217));
        assert_eq!((e.line, e.field.as_str()), (5, "port.mtu"));
        assert!(e.message.contains("68..=9216"), "{e}");
        let e = err(&port("tap", 9000));
        assert_eq!(e.field, "port.mtu");
        assert!(e.message.contains("tap port"), "{e}");
    }

    #[test]
    fn every_port_needs_a_worker_and_pairs_may_span_workers() {
        let src = format!("{GOOD}\n[[worker]]\nports = [\"a\"]\n[[worker]]\nports = [\"b\"]\n");
        let t = parse("two.toml", &src).unwrap();
        assert_eq!(t.workers.len(), 2);
        let src = format!("{GOOD}\n[[worker]]\nports = [\"a\"]\n");
        let e = err(&src);
        assert!(e.to_string().contains("served by no worker"), "{e}");
    }
}
