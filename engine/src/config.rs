//! The TOML configuration. Parsing is two steps: serde reads the file
//! (syntax, types, unknown fields), then `validate` checks what serde
//! cannot (names that must exist, kinds that need fields). Either step's
//! error names the file, the line and the field; nothing starts until the
//! whole file is good. Each concept's sections, resolved form and checks
//! are a file of `config/`: ports, bridges (with VLAN maps), shared
//! uplinks, VXLAN, ACLs, workers; this file holds the engine and pool
//! sections and runs the checks in order. (The submodules take the
//! imports below through `use super::*`.)

use pollgate_pipeline::acl::{AclAttachments, Action, FlowTimeouts, Rule};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pmd::afxdp::{AfXdpConfig, BindMode, XdpMode};
use pollgate_pmd::veth::ContainerEnd;
use pollgate_pmd::PoolConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod acl;
mod bridges;
mod l3;
mod nat;
mod ports;
mod shared_uplink;
mod vxlan;
mod workers;
pub use acl::*;
pub use bridges::*;
pub use l3::*;
pub use nat::*;
pub use ports::*;
pub use shared_uplink::{Driver, DriverCfg, IpVlanModeCfg, MacVlanModeCfg};
pub use vxlan::*;
pub use workers::*;

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardModeCfg {
    #[default]
    Io,
    Mac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdleMode {
    /// Spin on empty polls: lowest latency, a full core per worker.
    #[default]
    Poll,
    /// Yield, then sleep with growing pauses, when there is no traffic:
    /// for machines the engine shares.
    Backoff,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xconnect: Vec<XconnectSection>,
    #[serde(default)]
    pub switch: SwitchSection,
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bridge: Vec<BridgeSection>,
    #[serde(default, rename = "worker")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerSection>,
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclSection>,
    #[serde(default)]
    pub conntrack: ConntrackSection,
    pub vtep: Option<VtepSection>,
    #[serde(default, rename = "route")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub router: RouterSection,
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nat: Vec<NatSection>,
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
    /// Gateway interfaces and static routes (`None`: no router).
    pub l3: Option<L3Spec>,
}

impl Topology {
    /// The topology as a config file: what `reload` needs to reproduce
    /// it (vacant slots are not written).
    pub fn to_toml(&self) -> String {
        let mut c = self.config.clone();
        c.ports.retain(|p| *p.kind.get_ref() != PortKind::Vacant);
        c.bridge.retain(|b| !b.vacant);
        toml::to_string(&c).unwrap_or_else(|e| format!("# cannot write the topology: {e}\n"))
    }

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

/// The control socket when the config names none.
pub const DEFAULT_CTL_SOCKET: &str = "/run/pollgate.sock";

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
    let config = read(file, src)?;
    validate(&Ctx { file, src, base }, config)
}

/// Checks a config that is already read (the running one after a `ctl`
/// edit, or a file aligned to the running slots); `src` is the text its
/// spans point into.
pub fn validate_config(
    file: &str,
    src: &str,
    base: &Path,
    config: Config,
) -> Result<Topology, ConfigError> {
    validate(&Ctx { file, src, base }, config)
}

/// Reads `src` as a config without checking it.
pub fn read(file: &str, src: &str) -> Result<Config, ConfigError> {
    let cx = Ctx {
        file,
        src,
        base: Path::new(""),
    };
    toml::from_str(src).map_err(|e| {
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
    })
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

fn validate(cx: &Ctx, mut config: Config) -> Result<Topology, ConfigError> {
    l3::routed_ports(&mut config);
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
        if *p.kind.get_ref() == PortKind::Vacant {
            continue;
        }
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

    let mut ports = validate_ports(cx, &config, &resolve)?;
    let (xconnects, paired) = validate_xconnects(cx, &config, &resolve)?;

    let bridges = validate_bridges(cx, &config, &mut ports, &resolve, &paired)?;
    let (acls, acl_attach) = validate_acls(cx, &config, &ports, &bridges)?;
    let vtep = validate_vtep(cx, &config, &bridges, &resolve, &paired)?;
    let l3 = validate_l3(cx, &config, &bridges)?;

    let workers = validate_workers(cx, &config, &ports, &resolve, &mut pool)?;
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
        l3,
    })
}

/// Looks a port name up, or names the line of the bad reference.
type Resolve<'a> = dyn Fn(&Spanned<String>, &str) -> Result<usize, ConfigError> + 'a;

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
