//! The harness's report: the search results of each device under test
//! in one JSON document, a Markdown table, and an SVG chart.

use crate::search::SearchResult;
use serde_json::{json, Value};
use std::fmt::Write;

pub struct Entry {
    pub name: String,
    pub result: Value,
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(0.0)
}

/// The figures a reader compares, per DUT.
struct Row {
    name: String,
    zero_loss_mpps: f64,
    /// Lossless at all the generator offered: a lower bound.
    generator_bound: bool,
    max_offered_mpps: f64,
    max_delivered_mpps: f64,
    /// p50, p99, p99.9 at the zero-loss rate, and at the common rate.
    at_zero_loss_us: [f64; 3],
    at_common_us: Option<[f64; 3]>,
    common_mpps: f64,
    /// At a fraction of the DUT's own zero-loss rate, and the fraction.
    at_fraction_us: Option<[f64; 3]>,
    fraction: f64,
}

fn quantiles_us(t: &Value) -> [f64; 3] {
    ["p50_ns", "p99_ns", "p999_ns"].map(|q| num(t, &["latency", q]) / 1000.0)
}

fn rows(entries: &[Entry]) -> Vec<Row> {
    entries
        .iter()
        .map(|e| {
            let r = &e.result;
            let common = &r["latency_at"];
            Row {
                name: e.name.clone(),
                zero_loss_mpps: num(r, &["zero_loss_pps"]) / 1e6,
                generator_bound: r["generator_bound"].as_bool().unwrap_or(false),
                max_offered_mpps: num(r, &["max", "offered_pps"]) / 1e6,
                max_delivered_mpps: num(r, &["max", "received_pps"]) / 1e6,
                at_zero_loss_us: quantiles_us(&r["zero_loss"]),
                at_common_us: common.is_object().then(|| quantiles_us(common)),
                common_mpps: num(common, &["target_pps"]) / 1e6,
                at_fraction_us: r["latency_at_fraction"]
                    .is_object()
                    .then(|| quantiles_us(&r["latency_at_fraction"])),
                fraction: num(r, &["latency_fraction"]),
            }
        })
        .collect()
}

pub fn to_json(entries: &[Entry], meta: Value) -> Value {
    let mut duts = serde_json::Map::new();
    for e in entries {
        duts.insert(e.name.clone(), e.result.clone());
    }
    json!({ "meta": meta, "duts": duts })
}

pub fn result_value(r: &SearchResult) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

pub fn markdown(entries: &[Entry]) -> String {
    let rows = rows(entries);
    // The optional latency columns, present when any DUT has the trial:
    // each a header and a row's cell.
    type Cell = fn(&Row) -> Option<[f64; 3]>;
    let mut extra: Vec<(String, Cell)> = Vec::new();
    if let Some(c) = rows
        .iter()
        .find_map(|r| r.at_common_us.map(|_| r.common_mpps))
    {
        extra.push((format!("latency at {c:.2} Mpps"), |r| r.at_common_us));
    }
    if let Some(f) = rows
        .iter()
        .find_map(|r| r.at_fraction_us.map(|_| r.fraction))
    {
        extra.push((
            format!("latency at {:.0} % of its own zero-loss rate", f * 100.0),
            |r| r.at_fraction_us,
        ));
    }
    let mut o = String::from(
        "| DUT | zero-loss Mpps | offered at max | delivered at max | latency at zero-loss rate p50 / p99 / p99.9 µs |",
    );
    for (header, _) in &extra {
        let _ = write!(o, " {header} p50 / p99 / p99.9 µs |");
    }
    o.push_str("\n|---|---|---|---|---|");
    o.push_str(&"---|".repeat(extra.len()));
    o.push('\n');
    let q = |v: [f64; 3]| format!("{:.1} / {:.1} / {:.1}", v[0], v[1], v[2]);
    for r in rows {
        let _ = write!(
            o,
            "| {} | {}{:.3} | {:.3} | {:.3} | {} |",
            r.name,
            if r.generator_bound { "≥ " } else { "" },
            r.zero_loss_mpps,
            r.max_offered_mpps,
            r.max_delivered_mpps,
            q(r.at_zero_loss_us)
        );
        for (_, cell) in &extra {
            let _ = write!(o, " {} |", cell(&r).map(q).unwrap_or_else(|| "-".into()));
        }
        o.push('\n');
    }
    if entries
        .iter()
        .any(|e| e.result["generator_bound"].as_bool() == Some(true))
    {
        o.push_str("\n≥: no loss at all the generator could offer; the DUT's zero-loss rate is at least this.\n");
    }
    o
}

/// Two bar charts side by side: throughput (zero-loss, delivered at
/// max) and latency at the zero-loss rate (p50, p99, p99.9).
pub fn svg(entries: &[Entry], title: &str) -> String {
    let rows = rows(entries);
    let (w, h) = (960.0, 420.0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        w / 2.0,
        escape(title)
    );
    let panel = |o: &mut String,
                 x0: f64,
                 label: &str,
                 series: &[(&str, &str)],
                 values: &dyn Fn(&Row) -> Vec<f64>| {
        let (pw, top, bottom) = (420.0, 60.0, h - 70.0);
        let max = rows
            .iter()
            .flat_map(values)
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.15;
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"46\" text-anchor=\"middle\">{}</text>",
            x0 + pw / 2.0,
            escape(label)
        );
        let _ = writeln!(
            o,
            "<line x1=\"{x0}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>",
            x0 + pw
        );
        for t in 0..=4 {
            let v = max * t as f64 / 4.0;
            let y = bottom - (bottom - top) * t as f64 / 4.0;
            let _ = writeln!(
                o,
                "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>",
                x0 + pw,
                x0 - 4.0,
                y + 4.0
            );
        }
        let group = pw / rows.len().max(1) as f64;
        let bar = group * 0.8 / series.len() as f64;
        for (i, r) in rows.iter().enumerate() {
            let gx = x0 + group * i as f64 + group * 0.1;
            for (j, v) in values(r).iter().enumerate() {
                let bh = (bottom - top) * v / max;
                let _ = writeln!(
                    o,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {}: {v:.3}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{v:.2}</text>",
                    gx + bar * j as f64,
                    bottom - bh,
                    bar * 0.95,
                    series[j].1,
                    escape(&r.name),
                    series[j].0,
                    gx + bar * j as f64 + bar / 2.0,
                    bottom - bh - 3.0
                );
            }
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                gx + group * 0.4,
                bottom + 16.0,
                escape(&r.name)
            );
        }
        for (j, (name, color)) in series.iter().enumerate() {
            let lx = x0 + 10.0 + 140.0 * j as f64;
            let _ = writeln!(
                o,
                "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                h - 32.0,
                lx + 14.0,
                h - 23.0,
                escape(name)
            );
        }
    };
    panel(
        &mut o,
        60.0,
        "throughput, Mpps",
        &[("zero loss", "#2b6cb0"), ("delivered at max", "#90cdf4")],
        &|r: &Row| vec![r.zero_loss_mpps, r.max_delivered_mpps],
    );
    // Latency compares at equal load where the run measured it so.
    let common = rows
        .iter()
        .find(|r| r.at_common_us.is_some())
        .map(|r| r.common_mpps);
    let label = match common {
        Some(c) => format!("latency at {c:.2} Mpps, µs"),
        None => "latency at the zero-loss rate, µs".to_string(),
    };
    panel(
        &mut o,
        530.0,
        &label,
        &[("p50", "#2f855a"), ("p99", "#dd6b20"), ("p99.9", "#c53030")],
        &|r: &Row| match common {
            Some(_) => r.at_common_us.unwrap_or_default().to_vec(),
            None => r.at_zero_loss_us.to_vec(),
        },
    );
    o.push_str("</svg>\n");
    o
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_chart_carry_every_dut() {
        let e = |name: &str, zl: f64| Entry {
            name: name.into(),
            result: json!({"zero_loss_pps": zl, "generator_bound": zl > 1e6,
                           "max": {"offered_pps": 2e6, "received_pps": 1.5e6},
                           "zero_loss": {"latency": {"p50_ns": 20000, "p99_ns": 90000, "p999_ns": 150000}},
                           "latency_at": {"target_pps": 5e5, "latency": {"p50_ns": 1000, "p99_ns": 2000, "p999_ns": 3000}}}),
        };
        let mut es = [e("pollgate", 2.0e6), e("testpmd", 2.5e4)];
        let md = markdown(&es);
        assert!(!md.contains("of its own zero-loss rate"), "{md}");
        es[1].result["latency_fraction"] = json!(0.8);
        es[1].result["latency_at_fraction"] = json!({"target_pps": 2e4, "latency": {"p50_ns": 4000, "p99_ns": 5000, "p999_ns": 6000}});
        let with = markdown(&es);
        assert!(
            with.contains("latency at 80 % of its own zero-loss rate"),
            "{with}"
        );
        assert!(
            with.contains("| 1.0 / 2.0 / 3.0 | 4.0 / 5.0 / 6.0 |"),
            "{with}"
        );
        assert!(with.contains("| 1.0 / 2.0 / 3.0 | - |"), "{with}");
        assert!(md.contains("latency at 0.50 Mpps"), "{md}");
        assert!(
            md.contains(
                "| pollgate | ≥ 2.000 | 2.000 | 1.500 | 20.0 / 90.0 / 150.0 | 1.0 / 2.0 / 3.0 |"
            ),
            "{md}"
        );
        assert!(md.contains("| testpmd | 0.025 |"), "{md}");
        let s = svg(&es, "t<1>");
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<rect x=").count(), 2 * 2 + 2 * 3 + 5);
        assert!(s.contains("t&lt;1&gt;"));
    }
}
