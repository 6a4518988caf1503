//! The TOML configuration. Parsing is two steps: serde reads the file
//! (syntax, types, unknown fields), then `validate` checks what serde
//! cannot (names that must exist, kinds that need fields). Either step's
//! error names the file, the line and the field; nothing starts until the
//! whole file is good.

use pollgate_pipeline::wire::MacAddr;
use pollgate_pmd::PoolConfig;
use serde::Deserialize;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

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
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            forward: ForwardModeCfg::Io,
            parse: true,
            burst: Spanned::new(0..0, 32),
            idle: IdleMode::Poll,
            stats_interval: 0,
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
    #[serde(default, rename = "port")]
    pub ports: Vec<PortSection>,
    #[serde(default)]
    pub xconnect: Vec<XconnectSection>,
    #[serde(default, rename = "worker")]
    pub workers: Vec<WorkerSection>,
}

/// A checked configuration: every name resolved to an index.
#[derive(Debug, Clone)]
pub struct Topology {
    pub config: Config,
    pub pool: PoolConfig,
    pub ports: Vec<PortSpec>,
    /// Pairs of port indices.
    pub xconnects: Vec<(usize, usize)>,
    pub workers: Vec<WorkerSpec>,
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
}

#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub core: Option<usize>,
    pub ports: Vec<usize>,
}

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
    let pool = config.pool.pool_config();
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
                forbid(p.rx.is_some() || p.tx.is_some(), "port.rx/tx")?;
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
        let own = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, i as u8 + 1]);
        ports.push(PortSpec {
            name: p.name.get_ref().clone(),
            kind,
            mac: mac(cx, &p.mac, "port.mac", own)?,
            peer_mac: mac(
                cx,
                &p.peer_mac,
                "port.peer_mac",
                MacAddr([0x02, 0, 0, 0, 0x01, i as u8 + 1]),
            )?,
            size,
            peer,
            slots,
            rx: p.rx.as_ref().map(|s| cx.base.join(s.get_ref())),
            tx: p.tx.as_ref().map(|s| cx.base.join(s.get_ref())),
            looping: p.looping,
        });
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

    let cores = core_affinity::get_core_ids().unwrap_or_default();
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
        for s in ws.ports.get_ref() {
            let k = resolve(s, "worker.ports")?;
            if let Some(prev) = owner[k] {
                return Err(cx.err(
                    s.span(),
                    "worker.ports",
                    format!("{:?} is already served by worker {prev}", s.get_ref()),
                ));
            }
            owner[k] = Some(w);
            list.push(k);
        }
        workers.push(WorkerSpec {
            core: ws.core.as_ref().map(|c| *c.get_ref()),
            ports: list,
        });
    }
    if workers.is_empty() {
        // One unpinned worker serves everything.
        workers.push(WorkerSpec {
            core: None,
            ports: (0..ports.len()).collect(),
        });
        owner.iter_mut().for_each(|o| *o = Some(0));
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
    // Frames move between ports by address within a worker's pool, so a
    // cross-connect must stay inside one worker.
    for (x, &(a, b)) in config.xconnect.iter().zip(&xconnects) {
        if owner[a] != owner[b] {
            return Err(cx.err(x.ports.span(), "xconnect.ports", format!("{:?} and {:?} are served by different workers; a cross-connect must stay within one worker", ports[a].name, ports[b].name)));
        }
    }

    Ok(Topology {
        config,
        pool,
        ports,
        xconnects,
        workers,
    })
}

fn kind_name(k: PortKind) -> &'static str {
    match k {
        PortKind::Null => "null",
        PortKind::Ring => "ring",
        PortKind::Pcap => "pcap",
    }
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
    fn cross_connect_must_stay_in_one_worker() {
        let src = format!("{GOOD}\n[[worker]]\nports = [\"a\"]\n[[worker]]\nports = [\"b\"]\n");
        let e = err(&src);
        assert_eq!(e.field, "xconnect.ports", "{e}");
        let src = format!("{GOOD}\n[[worker]]\nports = [\"a\"]\n");
        let e = err(&src);
        assert!(e.to_string().contains("served by no worker"), "{e}");
    }
}
