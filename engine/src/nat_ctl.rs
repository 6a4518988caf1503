//! `show nat`: the NAT rules of the running topology and each worker's
//! session counters (live sessions, made, expired, refused and why);
//! `show nat sessions [N]`: the sessions themselves, as each worker
//! lists them from its own flow table.

use crate::ctl::CtlState;
use pollgate_pipeline::nat::{NatCounters, NatSession};
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sessions `show nat sessions` lists unless told, and the most it will.
const LIST_DEFAULT: usize = 1000;
const LIST_MAX: usize = 100_000;
const NO_ROUTER: &str = "this engine has no router: give a [[bridge]] a gateway";
/// How long a worker has to answer: it does between bursts, within a
/// millisecond or so unless it is stuck.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Answers `show nat` and `show nat sessions`, or `None` when `words` is
/// neither.
pub fn handle(state: &CtlState, words: &[&str], json: bool) -> Option<Result<String, String>> {
    match words {
        ["show", "nat"] => {}
        ["show", "nat", "sessions", rest @ ..] if rest.len() <= 1 => {
            return Some(sessions(state, rest.first().copied(), json))
        }
        _ => return None,
    }
    Some(state.control.with_routes(|t, topo| {
        let (Some(t), Some(l3)) = (t, topo.l3.as_ref()) else {
            return Err(NO_ROUTER.into());
        };
        let rules = &l3.nat;
        let workers = t.tables.all_nat_counters();
        let name = |d: u16| {
            topo.bridges
                .get(d as usize)
                .map_or("?".to_string(), |b| b.name.clone())
        };
        if json {
            let masq: Vec<_> = rules
                .masquerade
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "out": name(m.out),
                        // The first (with no pool, the only) address,
                        // as before pools.
                        "address": m.pool.first().map(|a| Ipv4Addr::from(*a).to_string()),
                        "pool": pool_text(&m.pool),
                        "sources": m.sources.iter().map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(*a))).collect::<Vec<_>>(),
                        "ports": [m.ports.0, m.ports.1],
                        "per_source": m.per_source,
                    })
                })
                .collect();
            let publish: Vec<_> = rules
                .publish
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "proto": if p.proto == 6 { "tcp" } else { "udp" },
                        "public": format!("{}:{}", Ipv4Addr::from(p.public.0), p.public.1),
                        "inside": format!("{}:{}", Ipv4Addr::from(p.inside.0), p.inside.1),
                    })
                })
                .collect();
            let w: Vec<_> = workers.iter().map(|c| counters_json(c)).collect();
            return Ok(serde_json::json!({"masquerade": masq, "publish": publish, "workers": w})
                .to_string()
                + "\n");
        }
        let mut out = String::new();
        for m in &rules.masquerade {
            let src: Vec<String> = m
                .sources
                .iter()
                .map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(*a)))
                .collect();
            let _ = writeln!(
                out,
                "masquerade {} out {} as {} ports {}-{} per source {}",
                src.join(","),
                name(m.out),
                pool_text(&m.pool).join(","),
                m.ports.0,
                m.ports.1,
                m.per_source
            );
        }
        for p in &rules.publish {
            let _ = writeln!(
                out,
                "publish {} {}:{} -> {}:{}",
                if p.proto == 6 { "tcp" } else { "udp" },
                Ipv4Addr::from(p.public.0),
                p.public.1,
                Ipv4Addr::from(p.inside.0),
                p.inside.1
            );
        }
        for (w, c) in workers.iter().enumerate() {
            let j = counters_json(c);
            let _ = write!(out, "worker {w}:");
            if let Some(o) = j.as_object() {
                for (k, v) in o {
                    let _ = write!(out, " {k} {v}");
                }
            }
            out.push('\n');
        }
        Ok(out)
    }))
}

fn pool_text(pool: &[[u8; 4]]) -> Vec<String> {
    pool.iter()
        .map(|a| Ipv4Addr::from(*a).to_string())
        .collect()
}

fn counters_json(c: &NatCounters) -> serde_json::Value {
    let r = Ordering::Relaxed;
    serde_json::json!({
        "sessions": c.sessions.load(r),
        "created": c.created.load(r),
        "expired": c.expired.load(r),
        "hairpin": c.hairpin.load(r),
        "source_limited": c.source_limited.load(r),
        "ports_exhausted": c.ports_exhausted.load(r),
        "table_full": c.table_full.load(r),
        "unsupported": c.unsupported.load(r),
        "icmp_translated": c.icmp_translated.load(r),
        "handed_off": c.handed_off.load(r),
        "ports_used": c.ports_used.load(r),
        "sources": c.sources.load(r),
    })
}

/// `show nat sessions [N]`: asks every worker for up to N of its
/// sessions and waits for their answers.
fn sessions(state: &CtlState, max: Option<&str>, json: bool) -> Result<String, String> {
    let max = match max {
        None => LIST_DEFAULT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=LIST_MAX).contains(&n) => n,
            _ => {
                return Err(format!(
                    "show nat sessions: N must be 1 to {LIST_MAX}, not {s:?}"
                ))
            }
        },
    };
    let workers = state
        .control
        .with_routes(|t, topo| match (t, topo.l3.as_ref()) {
            (Some(t), Some(_)) => Ok(t.tables.all_nat_counters()),
            _ => Err(NO_ROUTER.to_string()),
        })?;
    let lists = ask_workers(&workers, max);
    if json {
        let w: Vec<_> = lists
            .iter()
            .map(|l| match l {
                Some(l) => serde_json::json!(l.iter().map(session_json).collect::<Vec<_>>()),
                None => serde_json::Value::Null,
            })
            .collect();
        return Ok(serde_json::json!({ "workers": w }).to_string() + "\n");
    }
    let mut out = String::new();
    for (w, l) in lists.iter().enumerate() {
        match l {
            None => {
                let _ = writeln!(out, "worker {w}: no answer (no NAT on it, or stopped)");
            }
            Some(l) => {
                let _ = writeln!(out, "worker {w}: {} sessions listed", l.len());
                for s in l {
                    let _ = writeln!(out, "  {}", session_text(s));
                }
            }
        }
    }
    Ok(out)
}

/// Each worker's answer (`None`: none within `ANSWER_WITHIN`). One
/// request at a time: two would take each other's answers.
fn ask_workers(workers: &[Arc<NatCounters>], max: usize) -> Vec<Option<Vec<NatSession>>> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for c in workers {
        c.listing.ask(max);
    }
    let mut lists: Vec<Option<Vec<NatSession>>> = vec![None; workers.len()];
    let deadline = Instant::now() + ANSWER_WITHIN;
    while lists.iter().any(Option::is_none) && Instant::now() < deadline {
        for (l, c) in lists.iter_mut().zip(workers) {
            if l.is_none() {
                *l = c.listing.take();
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    lists
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        p => p.to_string(),
    }
}

fn endpoint(a: [u8; 4], port: u16) -> String {
    format!("{}:{port}", Ipv4Addr::from(a))
}

fn session_text(s: &NatSession) -> String {
    let (o, t) = (&s.orig, &s.translated);
    format!(
        "{} {} -> {} as {} -> {}, expires in {:.1} s",
        proto_name(s.proto),
        endpoint(o.src, o.sport),
        endpoint(o.dst, o.dport),
        endpoint(t.src, t.sport),
        endpoint(t.dst, t.dport),
        s.expires_in_ms as f64 / 1000.0
    )
}

fn session_json(s: &NatSession) -> serde_json::Value {
    let (o, t) = (&s.orig, &s.translated);
    serde_json::json!({
        "proto": proto_name(s.proto),
        "orig": { "src": endpoint(o.src, o.sport), "dst": endpoint(o.dst, o.dport) },
        "translated": { "src": endpoint(t.src, t.sport), "dst": endpoint(t.dst, t.dport) },
        "expires_in_ms": s.expires_in_ms,
    })
}
