//! The `ctl` verbs of the router: `show routes`, `show neighbors`,
//! `show router` (counters and table sizes), `route add|del`,
//! `neighbor add|del`. Routes added here live beside the config's: a
//! `reload` replaces the config's routes and keeps these.

use crate::ctl::CtlState;
use pollgate_pipeline::l3::{Prefix, Route, RouteTable, Source, Target};
use std::fmt::Write;
use std::net::IpAddr;

const ROUTE_USAGE: &str = "usage: route add PREFIX via GW [GW ...] [metric N] | route add PREFIX dev BRIDGE [metric N] | route add PREFIX blackhole|unreachable [metric N] | route del PREFIX [metric N]";

/// Answers a router verb, or `None` when `words` is not one.
pub fn handle(state: &CtlState, words: &[&str], json: bool) -> Option<Result<String, String>> {
    let now = state.started.elapsed().as_nanos() as u64;
    let reply = match words {
        ["show", "routes"] => with(state, |t, topo| Ok(show_routes(t, topo, json))),
        ["show", "neighbors"] | ["show", "neighbours"] => {
            with(state, |t, topo| Ok(show_neighbors(t, topo, now, json)))
        }
        ["show", "router"] => with(state, |t, _| Ok(show_router(t, json))),
        ["route", "add", prefix, rest @ ..] => with(state, |t, topo| {
            let (target, metric) = parse_target(rest, topo)?;
            let prefix = parse_prefix(prefix)?;
            t.add(Route {
                prefix,
                target,
                metric,
                source: Source::Static,
            })
            .map_err(|e| format!("route: {e}"))?;
            Ok(format!("route {prefix} added\n"))
        }),
        ["route", "del", prefix, rest @ ..] => with(state, |t, _| {
            let prefix = parse_prefix(prefix)?;
            let metric = match rest {
                [] => None,
                ["metric", m] => Some(
                    m.parse::<u32>()
                        .map_err(|_| format!("route.metric: {m:?} is not a number"))?,
                ),
                _ => return Err(ROUTE_USAGE.into()),
            };
            t.remove(prefix, metric)
                .map_err(|e| format!("route: {e}"))?;
            Ok(format!("route {prefix} removed\n"))
        }),
        ["route", ..] => Err(ROUTE_USAGE.into()),
        ["neighbor", "add", dev, ip, mac] => with(state, |t, topo| {
            let ifx = interface(topo, dev)?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("neighbor.ip: {ip:?} is not an IP address"))?;
            let mac: pollgate_pipeline::wire::MacAddr = mac
                .parse()
                .map_err(|e| format!("neighbor.mac: {mac:?}: {e}"))?;
            t.tables
                .neighbors
                .update(ifx, ip, Some(mac.0), true, now, true)
                .ok_or("neighbor: the neighbour table is full")?;
            Ok(format!("neighbor {ip} added on {dev}\n"))
        }),
        ["neighbor", "del", dev, ip] => with(state, |t, topo| {
            let ifx = interface(topo, dev)?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("neighbor.ip: {ip:?} is not an IP address"))?;
            if t.tables.neighbors.remove(ifx, ip) {
                Ok(format!("neighbor {ip} removed from {dev}\n"))
            } else {
                Err(format!("neighbor: no entry for {ip} on {dev}"))
            }
        }),
        _ => return None,
    };
    Some(reply)
}

fn with(
    state: &CtlState,
    f: impl FnOnce(&mut RouteTable, &crate::config::Topology) -> Result<String, String>,
) -> Result<String, String> {
    state.control.with_routes(|t, topo| match t {
        Some(t) => f(t, topo),
        None => Err("this engine has no router: give a [[bridge]] a gateway".into()),
    })
}

fn parse_prefix(s: &str) -> Result<Prefix, String> {
    s.parse::<Prefix>()
        .map_err(|e| format!("route.prefix: {e}"))
}

fn interface(topo: &crate::config::Topology, name: &str) -> Result<u16, String> {
    topo.l3
        .iter()
        .flat_map(|l| &l.interfaces)
        .find(|i| i.name == name)
        .map(|i| i.domain)
        .ok_or_else(|| format!("no bridge with a gateway named {name:?}"))
}

fn parse_target(rest: &[&str], topo: &crate::config::Topology) -> Result<(Target, u32), String> {
    let (rest, metric) = match rest {
        [head @ .., "metric", m] => (
            head,
            m.parse::<u32>()
                .map_err(|_| format!("route.metric: {m:?} is not a number"))?,
        ),
        _ => (rest, 0),
    };
    let target = match rest {
        ["via", gws @ ..] if !gws.is_empty() => Target::Via(
            gws.iter()
                .map(|g| {
                    g.parse::<IpAddr>()
                        .map_err(|_| format!("route.via: {g:?} is not an IP address"))
                })
                .collect::<Result<_, _>>()?,
        ),
        ["dev", dev] => Target::Interface(interface(topo, dev)?),
        ["blackhole"] => Target::Blackhole,
        ["unreachable"] => Target::Unreachable,
        _ => return Err(ROUTE_USAGE.into()),
    };
    Ok((target, metric))
}

fn if_name(topo: &crate::config::Topology, ifx: u16) -> String {
    topo.bridges
        .get(ifx as usize)
        .map_or_else(|| format!("#{ifx}"), |b| b.name.clone())
}

fn show_routes(t: &RouteTable, topo: &crate::config::Topology, json: bool) -> String {
    let views = t.view();
    let kind = |r: &Route| match &r.target {
        Target::Blackhole => "blackhole",
        Target::Unreachable => "unreachable",
        Target::Local(_) => "local",
        _ => "unicast",
    };
    if json {
        let rows: Vec<serde_json::Value> = views
            .iter()
            .map(|v| {
                serde_json::json!({
                    "prefix": v.route.prefix.to_string(),
                    "type": kind(&v.route),
                    "source": v.route.source.name(),
                    "metric": v.route.metric,
                    "active": v.active,
                    "paths": v.paths.iter().map(|(gw, ifx)| serde_json::json!({
                        "via": gw.map(|g| g.to_string()),
                        "dev": if_name(topo, *ifx),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n";
    }
    let mut out = format!(
        "{:<44} {:<10} {:>6} {:<6} NEXT HOP\n",
        "PREFIX", "SOURCE", "METRIC", "ACTIVE"
    );
    for v in &views {
        let hops = match &v.route.target {
            Target::Blackhole | Target::Unreachable => kind(&v.route).to_string(),
            _ if v.paths.is_empty() => "(unresolved)".to_string(),
            _ => v
                .paths
                .iter()
                .map(|(gw, ifx)| match gw {
                    Some(g) => format!("via {g} dev {}", if_name(topo, *ifx)),
                    None => format!("dev {}", if_name(topo, *ifx)),
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "{:<44} {:<10} {:>6} {:<6} {hops}",
            v.route.prefix.to_string(),
            v.route.source.name(),
            v.route.metric,
            if v.active { "*" } else { "" }
        );
    }
    out
}

fn show_neighbors(t: &RouteTable, topo: &crate::config::Topology, now: u64, json: bool) -> String {
    let mut entries = t.tables.neighbors.entries(now);
    entries.sort_by_key(|e| (e.ifx, e.ip));
    let mac = |m: Option<[u8; 6]>| {
        m.map_or("-".to_string(), |m| {
            pollgate_pipeline::wire::MacAddr(m).to_string()
        })
    };
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "ip": e.ip.to_string(),
                    "mac": e.mac.map(|m| pollgate_pipeline::wire::MacAddr(m).to_string()),
                    "dev": if_name(topo, e.ifx),
                    "state": e.state.name(),
                    "age_ms": e.age_ns / 1_000_000,
                })
            })
            .collect();
        return serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n";
    }
    let mut out = format!(
        "{:<40} {:<17} {:<12} {:<10} AGE\n",
        "IP", "MAC", "DEV", "STATE"
    );
    for e in &entries {
        let _ = writeln!(
            out,
            "{:<40} {:<17} {:<12} {:<10} {:.1}s",
            e.ip.to_string(),
            mac(e.mac),
            if_name(topo, e.ifx),
            e.state.name(),
            e.age_ns as f64 / 1e9
        );
    }
    out
}

fn show_router(t: &RouteTable, json: bool) -> String {
    let c = t.tables.counters.snapshot();
    let (m4, m6) = t.fib_memory_bytes();
    let summary = t.fib_summary_state();
    let full = t
        .tables
        .neighbors
        .full
        .load(std::sync::atomic::Ordering::Relaxed);
    if json {
        let mut o = serde_json::Map::new();
        for (k, v) in &c {
            o.insert((*k).into(), (*v).into());
        }
        o.insert("routes".into(), t.len().into());
        o.insert("fib_ipv4_bytes".into(), m4.into());
        o.insert("fib_ipv6_bytes".into(), m6.into());
        for (fam, (on, mixed)) in ["ipv4", "ipv6"].iter().zip(summary) {
            o.insert(format!("fib_{fam}_summary_read"), on.into());
            o.insert(format!("fib_{fam}_summary_mixed"), mixed.into());
        }
        o.insert("neighbor_table_full".into(), full.into());
        return serde_json::Value::Object(o).to_string() + "\n";
    }
    let mut out = format!(
        "routes {}  fib memory: IPv4 {} KiB, IPv6 {} KiB\n",
        t.len(),
        m4 / 1024,
        m6 / 1024
    );
    // Lookups answer from the summary levels only while few of their
    // entries are mixed: say which case the table is in.
    for (fam, (on, mixed)) in ["IPv4", "IPv6"].iter().zip(summary) {
        let _ = writeln!(
            out,
            "{fam} summary: {} ({mixed} of 65536 entries mixed)",
            if on { "read" } else { "skipped" }
        );
    }
    for (k, v) in c {
        let _ = writeln!(out, "{k:<28} {v}");
    }
    let _ = writeln!(out, "{:<28} {full}", "neighbor_table_full");
    out
}
