//! The Prometheus text endpoint (`[engine] metrics = "127.0.0.1:9100"`):
//! `GET /metrics` renders the same counters `pollgate ctl` shows, with
//! prometheus-client for the exposition format. Off unless configured;
//! a scrape only reads the workers' counters.

use crate::ctl::CtlState;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabel {
    port: String,
}

/// An AF_XDP queue's modes as labels of a constant-1 info series, the
/// Prometheus way to expose state: a fallback to copy mode or generic
/// XDP shows in every scrape.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AfXdpLabel {
    port: String,
    device: String,
    queue: String,
    driver: String,
    bind: String,
    xdp: String,
    multi_buffer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabel {
    worker: String,
    quantile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    acl: String,
    rule: String,
}

/// Renders every counter in the Prometheus text format.
pub fn render(state: &CtlState) -> String {
    let mut reg = Registry::with_prefix("pollgate");
    let view = state.view();
    let ports: Vec<&crate::stats::PortView> = view.live_ports().map(|(_, p)| p).collect();
    let port_counter = |reg: &mut Registry,
                        name: &str,
                        help: &str,
                        get: &dyn Fn(&pollgate_pmd::PortStats) -> u64| {
        let f = Family::<PortLabel, Counter>::default();
        for p in &ports {
            f.get_or_create(&PortLabel {
                port: p.name.clone(),
            })
            .inc_by(get(&p.counters.snapshot()));
        }
        reg.register(name, help, f);
    };
    port_counter(&mut reg, "port_rx_packets", "Packets received", &|s| {
        s.rx_packets
    });
    port_counter(&mut reg, "port_tx_packets", "Packets transmitted", &|s| {
        s.tx_packets
    });
    port_counter(&mut reg, "port_rx_bytes", "Bytes received", &|s| s.rx_bytes);
    port_counter(&mut reg, "port_tx_bytes", "Bytes transmitted", &|s| {
        s.tx_bytes
    });
    port_counter(
        &mut reg,
        "port_tx_full",
        "Frames refused by a full TX ring",
        &|s| s.tx_full,
    );
    port_counter(
        &mut reg,
        "port_rx_nombuf",
        "Frames not received for lack of a free frame",
        &|s| s.rx_nombuf,
    );
    port_counter(
        &mut reg,
        "port_kernel_drops",
        "Frames the kernel dropped before the socket",
        &|s| s.kernel_drops,
    );
    port_counter(
        &mut reg,
        "port_fill_empty",
        "Times the kernel found the fill ring empty",
        &|s| s.fill_empty,
    );
    port_counter(&mut reg, "port_wakeups", "need_wakeup syscalls", &|s| {
        s.wakeups
    });
    port_counter(
        &mut reg,
        "port_tx_stalls",
        "Times TX completions stopped for a second with frames outstanding",
        &|s| s.tx_stalls,
    );
    port_counter(
        &mut reg,
        "port_link_down_events",
        "Times the port's link went down or its device away",
        &|s| s.link_down_events,
    );
    port_counter(
        &mut reg,
        "port_xdp_detached",
        "Times the port's XDP program was found detached (and attached again)",
        &|s| s.xdp_detached,
    );

    // Every reason, zeros included: a series that exists from the start
    // graphs and alerts better than one that appears on the first drop.
    let info = Family::<AfXdpLabel, Gauge>::default();
    for p in &ports {
        if let Some(m) = &p.afxdp {
            info.get_or_create(&AfXdpLabel {
                port: p.name.clone(),
                device: m.device.clone(),
                queue: m.queue.to_string(),
                driver: m.driver.clone(),
                bind: m.bind().to_string(),
                xdp: m.xdp().to_string(),
                multi_buffer: m.multi_buffer.to_string(),
            })
            .set(1);
        }
    }
    reg.register(
        "port_afxdp_info",
        "AF_XDP queue modes in effect (bind, XDP attach, multi-buffer); always 1",
        info,
    );

    let drops = Family::<ReasonLabel, Counter>::default();
    let totals = state.drops();
    for r in pollgate_pipeline::DropReason::ALL {
        let n = totals.get(*r);
        drops
            .get_or_create(&ReasonLabel {
                reason: r.name().to_string(),
            })
            .inc_by(n);
    }
    reg.register("drops", "Packets dropped by the pipeline, by reason", drops);

    let busy = Family::<WorkerLabel, Counter>::default();
    let idle = Family::<WorkerLabel, Counter>::default();
    for (i, w) in state.workers.iter().enumerate() {
        let l = WorkerLabel {
            worker: i.to_string(),
        };
        busy.get_or_create(&l)
            .inc_by(w.busy_polls.load(Ordering::Relaxed));
        idle.get_or_create(&l)
            .inc_by(w.idle_polls.load(Ordering::Relaxed));
    }
    reg.register("worker_busy_polls", "Poll loops that moved packets", busy);
    reg.register("worker_idle_polls", "Poll loops that found nothing", idle);

    let bursts = Family::<WorkerLabel, Counter>::default();
    let timing = Family::<QuantileLabel, Gauge>::default();
    for (i, t) in state.telemetry().iter().enumerate() {
        let worker = i.to_string();
        bursts
            .get_or_create(&WorkerLabel {
                worker: worker.clone(),
            })
            .inc_by(t.bursts);
        for (q, v) in [
            ("0.5", t.latency_ns_p50),
            ("0.99", t.latency_ns_p99),
            ("0.999", t.latency_ns_p999),
            ("1", t.latency_ns_max),
        ] {
            timing
                .get_or_create(&QuantileLabel {
                    worker: worker.clone(),
                    quantile: q.to_string(),
                })
                .set(v as i64);
        }
    }
    reg.register("worker_bursts", "Bursts processed", bursts);
    reg.register(
        "worker_burst_time_ns",
        "Time from RX to TX queueing of a burst (sampled), by quantile",
        timing,
    );

    if let Some(acl) = &view.acl {
        let hits = Family::<RuleLabel, Counter>::default();
        for (acl, rule, packets) in acl.rule_packets() {
            let rule = rule.map_or("default".to_string(), |i| i.to_string());
            hits.get_or_create(&RuleLabel { acl, rule }).inc_by(packets);
        }
        reg.register(
            "acl_rule_packets",
            "Packets decided by an ACL rule (or its default)",
            hits,
        );
    }

    if view.has_bridges() {
        let t = state.control.table();
        let g: Gauge = Gauge::default();
        g.set(t.len() as i64);
        reg.register("mac_entries", "MAC table entries", g);
        for (name, help, v) in [
            ("mac_learned", "MAC addresses learned", &t.counters.learned),
            (
                "mac_moves",
                "MAC addresses seen moving between ports",
                &t.counters.moves,
            ),
            (
                "mac_overflows",
                "Learning refused by a full table (at its limit, or filling faster than it grows)",
                &t.counters.overflow,
            ),
            ("mac_aged", "MAC entries aged out", &t.counters.aged),
        ] {
            let c: Counter = Counter::default();
            c.inc_by(v.load(Ordering::Relaxed));
            reg.register(name, help, c);
        }
    }
    state.control.with_routes(|t, _| {
        let Some(t) = t else { return };
        let g: Gauge = Gauge::default();
        g.set(t.len() as i64);
        reg.register("routes", "Routes in the FIB (both families)", g);
        let now = state.started.elapsed().as_nanos() as u64;
        let n: Gauge = Gauge::default();
        n.set(t.tables.neighbors.entries(now).len() as i64);
        reg.register("neighbors", "Neighbour (ARP/ND) entries", n);
        let events = Family::<ReasonLabel, Counter>::default();
        for (name, v) in t.tables.counters.snapshot() {
            events
                .get_or_create(&ReasonLabel {
                    reason: name.to_string(),
                })
                .inc_by(v);
        }
        reg.register(
            "router_events",
            "What the router sent or answered (ARP, ND, ICMP), by kind",
            events,
        );
        nat_metrics(&mut reg, &t.tables.all_nat_counters());
    });
    // The EVPN mirror's counters, by kind (its struct's field names).
    let evpn = match state.control.evpn.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    if evpn.running && !evpn.vnis.is_empty() {
        let f = Family::<KindLabel, Counter>::default();
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&evpn.counters) {
            for (k, v) in m {
                f.get_or_create(&KindLabel { kind: k })
                    .inc_by(v.as_u64().unwrap_or(0));
            }
        }
        reg.register(
            "evpn_mirror",
            "What the EVPN kernel mirror wrote, read and answered, by kind",
            f,
        );
        let macs = Family::<KindLabel, Gauge>::default();
        for (kind, n) in [
            (
                "local",
                evpn.vnis.iter().map(|v| v.local_macs).sum::<usize>(),
            ),
            ("remote", evpn.vnis.iter().map(|v| v.remote_macs).sum()),
        ] {
            macs.get_or_create(&KindLabel { kind: kind.into() })
                .set(n as i64);
        }
        reg.register("evpn_macs", "MACs of the EVPN VNIs, local and remote", macs);
    }
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

/// The HTTP listener; stops on drop.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl MetricsServer {
    pub fn start(addr: &str, state: Arc<CtlState>) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pg-metrics".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => answer(s, &state),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
            addr,
        })
    }
}

fn answer(mut s: TcpStream, state: &CtlState) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    // The request head may come in several segments (a client writing
    // "GET ", the path and the rest one by one): read to its blank line,
    // the buffer's end, or the timeout.
    let mut head = [0u8; 1024];
    let mut n = 0;
    while n < head.len() && !head[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let (status, body) = if head[..n].starts_with(b"GET /metrics") {
        ("200 OK", render(state))
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    let reply = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = s.write_all(reply.as_bytes());
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// NAT's sessions and ports in use (gauges) and its events by kind, each
/// summed over the workers (`show nat` has them per worker).
fn nat_metrics(
    reg: &mut Registry,
    workers: &[std::sync::Arc<pollgate_pipeline::nat::NatCounters>],
) {
    if workers.is_empty() {
        return;
    }
    let r = Ordering::Relaxed;
    let sum = |f: fn(&pollgate_pipeline::nat::NatCounters) -> &std::sync::atomic::AtomicU64| {
        workers.iter().map(|c| f(c).load(r)).sum::<u64>()
    };
    for (name, help, v) in [
        ("nat_sessions", "Live NAT sessions", sum(|c| &c.sessions)),
        (
            "nat_ports_used",
            "Translated ports held by NAT sessions",
            sum(|c| &c.ports_used),
        ),
    ] {
        let g: Gauge = Gauge::default();
        g.set(v as i64);
        reg.register(name, help, g);
    }
    let events = Family::<KindLabel, Counter>::default();
    for (kind, v) in [
        ("created", sum(|c| &c.created)),
        ("expired", sum(|c| &c.expired)),
        ("hairpin", sum(|c| &c.hairpin)),
        ("source_limited", sum(|c| &c.source_limited)),
        ("ports_exhausted", sum(|c| &c.ports_exhausted)),
        ("table_full", sum(|c| &c.table_full)),
        ("unsupported", sum(|c| &c.unsupported)),
        ("icmp_translated", sum(|c| &c.icmp_translated)),
        ("handed_off", sum(|c| &c.handed_off)),
    ] {
        events
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc_by(v);
    }
    reg.register(
        "nat_events",
        "NAT sessions made, expired and refused, packets hairpinned, ICMP errors translated, packets handed to the worker holding their session, by kind",
        events,
    );
}
