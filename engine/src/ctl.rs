//! `pollgate ctl`: the operator's view of a running engine, over a Unix
//! socket (mode 0600: root only). One request per connection, one line:
//!
//! ```text
//! show ports | show stats | show workers | show macs [DOMAIN] | show config
//! clear stats | mac add DOMAIN MAC PORT | mac del DOMAIN MAC
//! capture PORT --count N --out FILE.pcap [--seconds S]
//! ```
//!
//! with `--json` anywhere for scripts. Every malformed request gets an
//! `error: …` reply; the server reads at most one short line with a
//! timeout, so a client that sends garbage or nothing cannot stall it, and
//! it never touches the workers beyond reading their counters.

use crate::live::LiveView;
use crate::stats::{render_drops, PortView, SharedWorkerCounters};
use crate::telemetry::{SharedTelemetry, TelemetrySummary};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::BATCH_SIZE;
use pollgate_pipeline::{DomainId, DropCounters, PortId};
use pollgate_pmd::PortStats;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 1024;

/// What the control server can see of the engine.
pub struct CtlState {
    /// The running topology, and the one way to change it.
    pub control: Arc<crate::live::Control>,
    pub workers: Vec<SharedWorkerCounters>,
    pub config_text: String,
    pub started: Instant,
    /// Counters at the last `clear stats`: workers own the counters (one
    /// writer each), so clearing subtracts a baseline instead of writing.
    /// By port name: ports come and go while the engine runs.
    baseline: Mutex<(HashMap<String, PortStats>, DropCounters)>,
    pub telemetry: Vec<SharedTelemetry>,
    pub reloader: Option<crate::reload::Reloader>,
    /// Burst counts at the last `clear stats`, per worker.
    burst_base: Mutex<Vec<[u64; BATCH_SIZE + 1]>>,
    /// Held through each topology change (`ctl` verb or `reload`): each
    /// edits what the one before it left.
    pub(crate) changing: Mutex<()>,
    /// Where relative paths in the config are taken from.
    pub(crate) base: PathBuf,
    /// Ports attached and published at run time: (name, the `port add`
    /// or `nat publish add` request).
    runtime: Mutex<Vec<(String, String)>>,
    /// Where they are kept across restarts of the engine.
    pub(crate) journal: Option<PathBuf>,
}

impl CtlState {
    pub fn new(
        control: Arc<crate::live::Control>,
        workers: Vec<SharedWorkerCounters>,
        config_text: String,
        started: Instant,
    ) -> Self {
        CtlState {
            control,
            workers,
            config_text,
            started,
            baseline: Mutex::new((HashMap::new(), DropCounters::default())),
            telemetry: Vec::new(),
            reloader: None,
            burst_base: Mutex::new(Vec::new()),
            changing: Mutex::new(()),
            base: PathBuf::new(),
            runtime: Mutex::new(Vec::new()),
            journal: None,
        }
    }

    /// Keeps the ports attached at run time in `path` (and attaches them
    /// again from it at start: `topology_ctl::resume`).
    pub fn with_journal(mut self, path: PathBuf) -> Self {
        self.journal = Some(path);
        self
    }

    /// Records port `name` as attached at run time by `request` (or, with
    /// `None`, as gone), and writes the journal.
    pub(crate) fn remember(&self, name: &str, request: Option<&str>) {
        {
            let mut r = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
            r.retain(|(n, _)| n != name);
            if let Some(line) = request {
                r.push((name.to_string(), line.to_string()));
            }
        }
        self.save_journal();
    }

    /// Drops every run-time entry whose request `gone` says is gone, and
    /// writes the journal.
    pub(crate) fn forget_where(&self, gone: impl Fn(&str) -> bool) {
        self.runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, line)| !gone(line));
        self.save_journal();
    }

    pub(crate) fn runtime(&self) -> Vec<(String, String)> {
        self.runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn save_journal(&self) {
        let Some(path) = &self.journal else { return };
        let mut text = String::from(
            "# ports pollgate attached and published at run time (ctl port add, nat publish add); again at start\n",
        );
        for (_, line) in self.runtime() {
            text.push_str(&line);
            text.push('\n');
        }
        // Written whole, then renamed: a crash leaves the old journal or
        // the new one, never half of one.
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// The running topology as last published.
    pub fn view(&self) -> Arc<LiveView> {
        self.control.view()
    }

    /// Lets `reload` re-read `path` (the file `topo` came from).
    pub fn with_reload(mut self, path: std::path::PathBuf) -> Self {
        self.base = path.parent().map(PathBuf::from).unwrap_or_default();
        self.reloader = Some(crate::reload::Reloader::new(path));
        self
    }

    pub fn with_telemetry(mut self, t: Vec<SharedTelemetry>) -> Self {
        self.burst_base = Mutex::new(vec![[0; BATCH_SIZE + 1]; t.len()]);
        self.telemetry = t;
        self
    }

    /// Burst sizes and latencies of each worker since the last clear.
    pub fn telemetry(&self) -> Vec<TelemetrySummary> {
        let base = self
            .burst_base
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default();
        self.telemetry
            .iter()
            .enumerate()
            .map(|(i, t)| t.summary(base.get(i).unwrap_or(&[0; BATCH_SIZE + 1])))
            .collect()
    }

    /// Drops summed over the workers.
    pub(crate) fn drops(&self) -> DropCounters {
        crate::stats::drops_of(&self.workers)
    }

    fn show_vxlan(&self, view: &LiveView, json: bool) -> Result<String, String> {
        let v = view.vtep.as_ref().ok_or("this engine has no VTEP")?;
        let domains = view.domains();
        let ip = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
        let remotes: Vec<serde_json::Value> = v
            .remotes()
            .into_iter()
            .map(|(a, mac)| serde_json::json!({"ip": ip(a), "next_hop_mac": mac.map(|m| m.to_string())}))
            .collect();
        let vnis: Vec<serde_json::Value> = v
            .cfg
            .vnis
            .iter()
            .map(|&(vni, d)| {
                let set = v.flood_set(d);
                let flood: Vec<String> = (0..pollgate_pipeline::vxlan::MAX_REMOTES)
                    .filter(|r| set[r / 64] >> (r % 64) & 1 == 1)
                    .filter_map(|r| v.remote_ip(r).map(ip))
                    .collect();
                serde_json::json!({"vni": vni, "domain": domains.get(d as usize), "flood": flood})
            })
            .collect();
        let c = &v.cfg;
        let head = serde_json::json!({
            "port": view.ports.get(c.port as usize).map(|p| p.name.clone()),
            "address": ip(c.ip), "mac": c.mac.to_string(), "udp_port": c.udp_port,
            "mtu": c.mtu, "ttl": c.ttl, "df": c.df, "gateway": c.gateway.map(ip),
        });
        if json {
            return Ok(
                serde_json::json!({"vtep": head, "vnis": vnis, "remotes": remotes}).to_string(),
            );
        }
        let mut out = format!(
            "vtep {}:{} on {} ({}), mtu {}, ttl {}, df {}, gateway {}\n",
            head["address"].as_str().unwrap_or("-"),
            c.udp_port,
            head["port"].as_str().unwrap_or("-"),
            head["mac"].as_str().unwrap_or("-"),
            c.mtu,
            c.ttl,
            c.df,
            head["gateway"].as_str().unwrap_or("none (on-link)")
        );
        for x in &vnis {
            out += &format!(
                "vni {} → bridge {}: flood {}\n",
                x["vni"],
                x["domain"].as_str().unwrap_or("-"),
                x["flood"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
        }
        for r in &remotes {
            out += &format!(
                "remote {}: next hop {}\n",
                r["ip"].as_str().unwrap_or("-"),
                r["next_hop_mac"].as_str().unwrap_or("unresolved")
            );
        }
        Ok(out)
    }

    /// Answers one request line.
    pub fn handle(&self, line: &str) -> Result<String, String> {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        let json = words.contains(&"--json");
        words.retain(|w| *w != "--json");
        let view = self.view();
        let acl = || {
            view.acl
                .as_deref()
                .ok_or_else(|| "this engine has no ACLs".to_string())
        };
        let domains = view.domains();
        let table = || {
            if !view.has_bridges() {
                return Err("this engine has no bridge domains".to_string());
            }
            Ok(self.control.table())
        };
        let domain = |name: &str| {
            domains
                .iter()
                .position(|d| !d.is_empty() && d == name)
                .map(|i| i as DomainId)
                .ok_or_else(|| format!("no bridge domain named {name:?}"))
        };
        let port = |name: &str| {
            view.live_ports()
                .find(|(_, p)| p.name == name)
                .map(|(i, _)| i as PortId)
                .ok_or_else(|| format!("no port named {name:?}"))
        };
        let ports: Vec<&PortView> = view.live_ports().map(|(_, p)| p).collect();
        if let Some(reply) = crate::topology_ctl::handle(self, &words, json) {
            return reply;
        }
        if let Some(reply) = crate::l3_ctl::handle(self, &words, json) {
            return reply;
        }
        if let Some(reply) = crate::route_ctl::handle(self, &words, json) {
            return reply;
        }
        if let Some(reply) = crate::evpn_ctl::handle(self, &words, json) {
            return reply;
        }
        if let Some(reply) = crate::nat_ctl::handle(self, &words, json) {
            return reply;
        }
        match words.as_slice() {
            ["show", "ports"] => Ok(if json {
                let v: Vec<_> = ports
                    .iter()
                    .map(|p| {
                        let mut j = serde_json::json!({"name": p.name, "kind": p.kind, "worker": p.worker, "detail": p.detail});
                        if let Some(m) = &p.afxdp {
                            j["afxdp"] = serde_json::json!({
                                "device": m.device, "queue": m.queue, "driver": m.driver,
                                "bind": m.bind(),
                                "xdp": m.xdp(),
                                "multi_buffer": m.multi_buffer, "mtu": m.mtu,
                            });
                        }
                        j
                    })
                    .collect();
                serde_json::Value::from(v).to_string()
            } else {
                ports.iter().map(|p| format!("{:<12} {:<5} worker {}  {}\n", p.name, p.kind, p.worker, p.detail)).collect()
            }),
            ["show", "stats"] => {
                let base = self.baseline.lock().map_err(|_| "internal error".to_string())?;
                let now: Vec<PortStats> = ports.iter().map(|p| p.counters.snapshot()).collect();
                let zero = PortStats::default();
                let based: Vec<&PortStats> = ports.iter().map(|p| base.0.get(&p.name).unwrap_or(&zero)).collect();
                let drops = self.drops().since(&base.1);
                if json {
                    let ports: Vec<_> = ports
                        .iter()
                        .zip(now.iter().zip(based.iter().copied()))
                        .map(|(p, (s, b))| {
                            serde_json::json!({"name": p.name, "rx_packets": s.rx_packets - b.rx_packets, "tx_packets": s.tx_packets - b.tx_packets,
                                "rx_bytes": s.rx_bytes - b.rx_bytes, "tx_bytes": s.tx_bytes - b.tx_bytes, "tx_full": s.tx_full - b.tx_full,
                                "kernel_drops": s.kernel_drops - b.kernel_drops, "fill_empty": s.fill_empty - b.fill_empty, "tx_stalls": s.tx_stalls - b.tx_stalls, "xdp_detached": s.xdp_detached - b.xdp_detached, "link_down_events": s.link_down_events - b.link_down_events})
                        })
                        .collect();
                    let d: serde_json::Map<String, serde_json::Value> = drops.nonzero().map(|(r, n)| (r.name().to_string(), n.into())).collect();
                    Ok(serde_json::json!({"ports": ports, "drops": d}).to_string())
                } else {
                    // Render from the differences: a view whose counters are
                    // the live ones minus the baseline.
                    let mut out = String::new();
                    out.push_str(&format!("{:<12} {:>12} {:>12} {:>9} {:>10} {:>10}\n", "port", "rx-packets", "tx-packets", "tx-full", "kern-drop", "fill-empty"));
                    for (p, (s, b)) in ports.iter().zip(now.iter().zip(based.iter().copied())) {
                        out.push_str(&format!("{:<12} {:>12} {:>12} {:>9} {:>10} {:>10}\n", p.name, s.rx_packets - b.rx_packets, s.tx_packets - b.tx_packets, s.tx_full - b.tx_full, s.kernel_drops - b.kernel_drops, s.fill_empty - b.fill_empty));
                    }
                    out.push_str(&render_drops(&drops));
                    Ok(out)
                }
            }
            ["clear", "stats"] => {
                let mut base = self.baseline.lock().map_err(|_| "internal error".to_string())?;
                *base = (ports.iter().map(|p| (p.name.clone(), p.counters.snapshot())).collect(), self.drops());
                if let Some(a) = &view.acl {
                    a.clear();
                }
                if let Ok(mut b) = self.burst_base.lock() {
                    *b = self.telemetry.iter().map(|t| t.burst_counts()).collect();
                }
                for t in &self.telemetry {
                    t.clear_latency();
                }
                Ok("stats cleared\n".into())
            }
            ["show", "acl", rest @ ..] if rest.len() <= 1 => acl()?.show(rest.first().copied(), json),
            ["acl", "add", name, rule @ ..] if !rule.is_empty() => acl()?.add(name, rule),
            ["acl", "del", name, index] => acl()?.del(name, index),
            ["show", "vxlan"] => self.show_vxlan(&view, json),
            ["show", "bridges"] if json => {
                serde_json::to_string(&view.bridges).map_err(|e| e.to_string())
            }
            ["show", "bridges"] => Ok(crate::bridge_ctl::render(&view.bridges)),
            ["reload"] => self
                .reloader
                .as_ref()
                .ok_or_else(|| "this engine was not started from a config file".to_string())?
                .reload(self),
            ["show", "workers"] => {
                let tel = self.telemetry();
                let mut rows = Vec::new();
                let mut out = String::new();
                for (i, w) in self.workers.iter().enumerate() {
                    let (b, idle) = (w.busy_polls.load(Ordering::Relaxed), w.idle_polls.load(Ordering::Relaxed));
                    let load = if b + idle > 0 { 100.0 * b as f64 / (b + idle) as f64 } else { 0.0 };
                    let ports: Vec<&str> = ports.iter().filter(|p| p.worker == i).map(|p| p.name.as_str()).collect();
                    let t = tel.get(i);
                    if json {
                        rows.push(serde_json::json!({"worker": i, "busy_polls": b, "idle_polls": idle, "load_pct": load, "ports": ports, "telemetry": t}));
                        continue;
                    }
                    out += &format!("worker {i}: {load:.1}% busy ({b} busy, {idle} idle polls), ports {}\n", ports.join(", "));
                    if let Some(t) = t {
                        let h = t.burst_histogram;
                        out += &format!(
                            "  bursts {} (mean {:.1} packets): 1:{} 2-3:{} 4-7:{} 8-15:{} 16-31:{} 32-63:{} 64:{}\n  burst time ({} timed): p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns\n",
                            t.bursts, t.mean_burst, h[0], h[1], h[2], h[3], h[4], h[5], h[6],
                            t.timed_bursts, t.latency_ns_p50, t.latency_ns_p99, t.latency_ns_p999, t.latency_ns_max
                        );
                    }
                }
                Ok(if json { serde_json::Value::from(rows).to_string() } else { out })
            }
            ["show", "macs", rest @ ..] => {
                let t = table()?;
                let domain = match rest {
                    [] => None,
                    [d] | ["--domain", d] => Some(domain(d)?),
                    _ => return Err("usage: show macs [[--domain] DOMAIN]".into()),
                };
                let now = self.started.elapsed().as_secs() as u32;
                let entries = t.entries(domain, now);
                let port_name = |p: PortId| -> String {
                    use pollgate_pipeline::vxlan::TUNNEL_BASE;
                    match (p >= TUNNEL_BASE, &view.vtep) {
                        // A remote VTEP: the tunnel port the MAC was learned on.
                        (true, Some(v)) => v
                            .remote_ip((p - TUNNEL_BASE) as usize)
                            .map_or("vxlan:?".to_string(), |ip| format!("vxlan:{}", std::net::Ipv4Addr::from(ip))),
                        _ => view.ports.get(p as usize).map_or("?".to_string(), |v| v.name.clone()),
                    }
                };
                let dom_name = |d: DomainId| domains.get(d as usize).map_or("?", |v| v.as_str());
                Ok(if json {
                    serde_json::Value::from(
                        entries.iter().map(|e| serde_json::json!({"domain": dom_name(e.domain), "mac": e.mac.to_string(), "port": port_name(e.port), "static": e.is_static, "age": e.age_secs})).collect::<Vec<_>>(),
                    )
                    .to_string()
                } else {
                    let mut out = format!("{} entries (limit {}; {} slots, {} KiB)\n", t.len(), t.limit(), t.capacity(), t.bytes() / 1024);
                    for e in &entries {
                        out.push_str(&format!("{:<10} {}  {:<12} {}\n", dom_name(e.domain), e.mac, port_name(e.port), if e.is_static { "static".to_string() } else { format!("{} s", e.age_secs) }));
                    }
                    out
                })
            }
            ["show", "config"] => Ok(self.config_text.clone()),
            ["capture", name, rest @ ..] => {
                let (p, port) = (port(name)?, *name);
                let (mut count, mut out, mut secs) = (None, None, 10.0f64);
                let mut it = rest.iter();
                while let Some(flag) = it.next() {
                    let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                    match *flag {
                        "--count" => count = Some(val.parse::<u64>().map_err(|_| format!("--count {val:?} is not a number"))?),
                        "--out" => out = Some(*val),
                        "--seconds" => secs = val.parse().map_err(|_| format!("--seconds {val:?} is not a number"))?,
                        _ => return Err(format!("unknown capture option {flag:?}")),
                    }
                }
                let count = count.ok_or("usage: capture PORT --count N --out FILE.pcap [--seconds S]")?;
                let out = out.ok_or("usage: capture PORT --count N --out FILE.pcap [--seconds S]")?;
                if !(1..=1_000_000).contains(&count) || !(0.0..=60.0).contains(&secs) {
                    return Err("--count must be 1..=1000000 and --seconds 0..=60".into());
                }
                let c = view.ports[p as usize].tap.capture(count, Path::new(out), Duration::from_secs_f64(secs)).map_err(|e| format!("{out}: {e}"))?;
                Ok(if json {
                    serde_json::json!({"port": port, "frames": c.frames, "lost": c.lost, "file": out}).to_string()
                } else {
                    format!("captured {} frames of {port} ({} not captured: capture ring full) to {out}\n", c.frames, c.lost)
                })
            }
            ["mac", "add", d, m, p] => {
                let (d, p, t) = (domain(d)?, port(p)?, table()?);
                let mac: MacAddr = m.parse().map_err(|e: &str| format!("{m:?}: {e}"))?;
                if mac.is_multicast() {
                    return Err("a static entry needs a unicast MAC".into());
                }
                match t.add_static(d, mac, p) {
                    pollgate_pipeline::mac_table::Learned::Overflow => Err("the MAC table is full".into()),
                    _ => Ok(format!("added {mac} on {m_port}\n", m_port = view.ports[p as usize].name)),
                }
            }
            ["mac", "del", d, m] => {
                let (d, t) = (domain(d)?, table()?);
                let mac: MacAddr = m.parse().map_err(|e: &str| format!("{m:?}: {e}"))?;
                if t.remove(d, mac) {
                    Ok(format!("removed {mac}\n"))
                } else {
                    Err(format!("{mac} is not in the table"))
                }
            }
            [] => Err("empty request".into()),
            _ => Err(format!("unknown request {line:?}: try show ports|stats|workers|bridges|macs [DOMAIN]|acl [NAME]|vxlan|config, clear stats, mac add DOMAIN MAC PORT, mac del DOMAIN MAC, acl add NAME [at N] RULE, acl del NAME INDEX, show vxlan, show evpn, show nat, show nat sessions [N], vxlan remote add|del DOMAIN IP, reload, capture PORT --count N --out FILE.pcap, show routes|neighbors|router, route add|del PREFIX ..., neighbor add|del BRIDGE IP [MAC], address add|del BRIDGE ADDRESS/LEN, nat add|del ..., nat publish add|del ...")),
        }
    }
}

/// The running control server; stops and removes its socket on drop.
pub struct CtlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CtlServer {
    pub fn start(path: &Path, state: Arc<CtlState>) -> std::io::Result<CtlServer> {
        if path.exists() {
            // A live engine answers; a stale socket from a crash does not.
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} belongs to a running engine", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pg-ctl".into())
            .spawn(move || {
                // A blocking accept: a request is taken the moment it
                // comes. Drop wakes it with a connection of its own.
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok(_) if flag.load(Ordering::Relaxed) => break,
                        // A thread per request: a topology change that
                        // builds devices for a while does not hold up a
                        // `show` (changes queue on the topology's lock).
                        Ok((stream, _)) => {
                            let state = state.clone();
                            let spawned = std::thread::Builder::new()
                                .name("pg-ctl-req".into())
                                .spawn(move || serve(stream, &state));
                            if let Err(e) = spawned {
                                tracing::warn!("control request refused: {e}");
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(CtlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

fn serve(stream: UnixStream, state: &CtlState) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    let reply = match BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line) {
        Ok(_) if line.ends_with('\n') || !line.is_empty() => match state.handle(line.trim()) {
            Ok(s) => s,
            Err(e) => format!("error: {e}\n"),
        },
        Ok(_) => "error: empty request\n".to_string(),
        Err(e) => format!("error: {e}\n"),
    };
    let _ = (&stream).write_all(reply.as_bytes());
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The accept loop wakes on a connection and sees the flag. When
        // the socket file is already gone (removed under us), it cannot
        // be woken: it is left blocked, holding nothing but the listener.
        let woken = UnixStream::connect(&self.path).is_ok();
        if let Some(t) = self.thread.take().filter(|_| woken) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The client side: sends `request`, returns the reply. An `error: …`
/// reply becomes an `Err`.
pub fn request(path: &Path, request: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| format!("{}: {e} (is pollgate running?)", path.display()))?;
    // A change that creates devices and namespaces takes a while.
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    writeln!(s, "{request}").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    match out.strip_prefix("error: ") {
        Some(e) => Err(e.trim_end().to_string()),
        None => Ok(out),
    }
}
