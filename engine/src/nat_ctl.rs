//! `show nat`: the NAT rules of the running topology and each worker's
//! session counters (live sessions, made, expired, refused and why).

use crate::ctl::CtlState;
use pollgate_pipeline::nat::NatCounters;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

/// Answers `show nat`, or `None` when `words` is not it.
pub fn handle(state: &CtlState, words: &[&str], json: bool) -> Option<Result<String, String>> {
    if words != ["show", "nat"] {
        return None;
    }
    Some(state.control.with_routes(|t, topo| {
        let (Some(t), Some(l3)) = (t, topo.l3.as_ref()) else {
            return Err("this engine has no router: give a [[bridge]] a gateway".into());
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
                        "address": Ipv4Addr::from(m.address).to_string(),
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
                Ipv4Addr::from(m.address),
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
