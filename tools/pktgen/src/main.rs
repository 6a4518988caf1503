use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pollgate_pktgen::generator::{Endpoint, Generator};
use pollgate_pktgen::report::{self, Entry};
use pollgate_pktgen::search::{search, SearchConfig};
use pollgate_pktgen::spec::{Rate, Spec};
use pollgate_pktgen::{dump, pktgen_dpdk, trex};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "pollgate-pktgen",
    about = "AF_XDP traffic generator and receiver for pollgate"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Ports {
    /// Interface to send on.
    #[arg(long)]
    tx: String,
    /// Named network namespace of the sending interface.
    #[arg(long)]
    tx_ns: Option<String>,
    /// Interface to receive on (behind the device under test).
    #[arg(long)]
    rx: Option<String>,
    #[arg(long)]
    rx_ns: Option<String>,
    /// AF_XDP RX and fill ring entries.
    #[arg(long, default_value_t = 4096)]
    ring: u32,
    /// AF_XDP TX and completion ring entries: frames the generator may
    /// queue ahead of the kernel (their wait counts in the latency).
    #[arg(long, default_value_t = 256)]
    tx_ring: u32,
    /// Core to pin the generator thread to.
    #[arg(long)]
    core: Option<usize>,
    /// Print a line a second while running.
    #[arg(long)]
    progress: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// At a paced --rate, sleep while no frame is due instead of
    /// polling (latency then includes up to 1 ms of sleep, plus the
    /// timer's slack): leaves the CPU to the device under test on a
    /// machine with few cores. No effect at --rate max or with --attack.
    #[arg(long)]
    sleep_idle: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send the spec's traffic for a time or a count; report what came back.
    Run {
        spec: PathBuf,
        #[command(flatten)]
        ports: Ports,
        /// Packets per second, or "max"; overrides the spec's rate.
        #[arg(long)]
        rate: Option<String>,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        #[arg(long)]
        count: Option<u64>,
        /// A second spec sent at maximum rate meanwhile (an attack the
        /// measured traffic must get through), out of --attack-tx.
        #[arg(long, requires = "attack_tx")]
        attack: Option<PathBuf>,
        #[arg(long)]
        attack_tx: Option<String>,
        #[arg(long)]
        attack_ns: Option<String>,
    },
    /// RFC 2544 throughput: binary search for the highest zero-loss rate,
    /// with latency at that rate.
    Search {
        spec: PathBuf,
        #[command(flatten)]
        ports: Ports,
        /// Seconds per trial.
        #[arg(long, default_value_t = 2.0)]
        trial: f64,
        #[arg(long, default_value_t = 8)]
        steps: u32,
        /// Loss ratio still counted as zero loss.
        #[arg(long, default_value_t = 0.0)]
        tolerance: f64,
        /// Also measure latency at this rate (pps): the same for every
        /// DUT, so their latencies compare at equal load.
        #[arg(long)]
        latency_rate: Option<f64>,
        /// Also measure latency at this fraction of the DUT's own
        /// zero-loss rate (0.8: at 80 %), where each DUT has headroom.
        #[arg(long)]
        latency_fraction: Option<f64>,
    },
    /// Write the generator's frames (zero stamps) to a pcap file.
    Dump {
        spec: PathBuf,
        #[arg(long)]
        pcap: PathBuf,
        /// The first N frames in the order sent, instead of the template
        /// table (every size, then every flow).
        #[arg(long)]
        sequence: Option<u64>,
    },
    /// Render the spec as a TRex STL profile or a pktgen-DPDK script.
    Render {
        target: Target,
        spec: PathBuf,
        /// Write here instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Combine search results (NAME=FILE.json …) into one report: JSON,
    /// a Markdown table on stdout, and an SVG chart.
    Report {
        results: Vec<String>,
        #[arg(long)]
        json: PathBuf,
        #[arg(long)]
        svg: PathBuf,
        #[arg(long, default_value = "")]
        title: String,
        /// Extra facts for the JSON's "meta" (KEY=VALUE).
        #[arg(long = "meta")]
        meta: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Trex,
    Pktgen,
}

fn endpoints(p: &Ports) -> (Endpoint, Option<Endpoint>) {
    let tx = Endpoint {
        iface: p.tx.clone(),
        netns: p.tx_ns.clone(),
    };
    let rx = p.rx.as_ref().map(|i| Endpoint {
        iface: i.clone(),
        netns: p.rx_ns.clone(),
    });
    (tx, rx)
}

fn open(spec: &Spec, p: &Ports) -> Result<Generator> {
    if let Some(c) = p.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            bail!("cannot pin to core {c}");
        }
    }
    let (tx, rx) = endpoints(p);
    let mut g = Generator::open(spec, &tx, rx.as_ref(), p.ring, p.tx_ring)
        .context("opening the AF_XDP sockets")?;
    g.progress = p.progress;
    g.sleep_idle = p.sleep_idle;
    for m in g.modes() {
        eprintln!("pollgate-pktgen: {m}");
    }
    Ok(g)
}

fn parse_rate(s: &str) -> Result<Rate> {
    if s == "max" {
        return Ok(Rate::Max);
    }
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 => Ok(Rate::Pps(p)),
        _ => bail!("--rate {s}: give packets per second (> 0) or \"max\""),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            spec,
            ports,
            rate,
            duration,
            count,
            attack,
            attack_tx,
            attack_ns,
        } => {
            let spec = Spec::load(&spec)?;
            let rate = match rate {
                Some(r) => parse_rate(&r)?,
                None => spec.rate,
            };
            let mut g = open(&spec, &ports)?;
            if let (Some(a), Some(tx)) = (attack, attack_tx) {
                let aspec = Spec::load(&a)?;
                let end = Endpoint {
                    iface: tx,
                    netns: attack_ns,
                };
                g.with_attack(&aspec, &end)
                    .context("opening the attack socket")?;
            }
            let t = g.trial(rate, Duration::from_secs_f64(duration), count);
            g.close();
            if ports.json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!(
                    "sent {} ({:.3} Mpps)  received {} ({:.3} Mpps)  lost {} ({:.4}%)  reordered {}  latency p50 {} ns p99 {} ns p99.9 {} ns max {} ns",
                    t.sent,
                    t.offered_pps / 1e6,
                    t.received,
                    t.received_pps / 1e6,
                    t.lost,
                    t.loss_ratio * 100.0,
                    t.reordered,
                    t.latency.p50_ns,
                    t.latency.p99_ns,
                    t.latency.p999_ns,
                    t.latency.max_ns
                );
                if t.attack_sent > 0 {
                    println!(
                        "attack: sent {} ({:.3} Mpps)",
                        t.attack_sent,
                        t.attack_pps / 1e6
                    );
                }
            }
        }
        Cmd::Search {
            spec,
            ports,
            trial,
            steps,
            tolerance,
            latency_rate,
            latency_fraction,
        } => {
            if let Some(f) = latency_fraction.filter(|f| !(*f > 0.0 && *f <= 1.0)) {
                bail!("--latency-fraction {f}: a fraction of the zero-loss rate, above 0 and at most 1");
            }
            let spec = Spec::load(&spec)?;
            if ports.rx.is_none() {
                bail!("search needs --rx: the receiving side behind the device under test");
            }
            let mut g = open(&spec, &ports)?;
            let cfg = SearchConfig {
                trial: Duration::from_secs_f64(trial),
                steps,
                tolerance,
                resolution: 0.01,
                latency_rate,
                latency_fraction,
            };
            let r = search(&mut g, &cfg, |t| {
                eprintln!(
                    "  trial {:>10}: offered {:9.0} pps  received {:9.0} pps  lost {:8} ({:.4}%)  p99 {} ns",
                    t.target_pps.map(|p| format!("{p:.0} pps")).unwrap_or_else(|| "max".into()),
                    t.offered_pps,
                    t.received_pps,
                    t.lost,
                    t.loss_ratio * 100.0,
                    t.latency.p99_ns
                )
            });
            g.close();
            if ports.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                match (&r.zero_loss_pps, &r.zero_loss) {
                    (Some(p), Some(t)) => println!(
                        "zero-loss rate {:.0} pps; latency there p50 {} ns p99 {} ns p99.9 {} ns max {} ns",
                        p, t.latency.p50_ns, t.latency.p99_ns, t.latency.p999_ns, t.latency.max_ns
                    ),
                    _ => println!("no rate tried was free of loss"),
                }
            }
        }
        Cmd::Dump {
            spec,
            pcap,
            sequence,
        } => {
            let spec = Spec::load(&spec)?;
            let frames = match sequence {
                Some(n) => dump::sequence(&spec, n),
                None => dump::templates(&spec),
            };
            dump::write_pcap(&pcap, &frames)
                .with_context(|| format!("writing {}", pcap.display()))?;
            eprintln!("wrote {} frames to {}", frames.len(), pcap.display());
        }
        Cmd::Render { target, spec, out } => {
            let source = spec.display().to_string();
            let spec = Spec::load(&spec)?;
            let text = match target {
                Target::Trex => trex::render(&spec, &source),
                Target::Pktgen => pktgen_dpdk::render(&spec, &source),
            };
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
        }
        Cmd::Report {
            results,
            json,
            svg,
            title,
            meta,
        } => {
            let mut entries = Vec::new();
            for r in &results {
                let Some((name, file)) = r.split_once('=') else {
                    bail!("{r}: give NAME=FILE.json");
                };
                let text =
                    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
                let result =
                    serde_json::from_str(&text).with_context(|| format!("{file}: not JSON"))?;
                entries.push(Entry {
                    name: name.to_string(),
                    result,
                });
            }
            let mut m = serde_json::Map::new();
            for kv in &meta {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("--meta {kv}: give KEY=VALUE");
                };
                let v = serde_json::from_str(v)
                    .unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
                m.insert(k.to_string(), v);
            }
            let doc = report::to_json(&entries, serde_json::Value::Object(m));
            std::fs::write(&json, serde_json::to_string_pretty(&doc)? + "\n")?;
            std::fs::write(&svg, report::svg(&entries, &title))?;
            print!("{}", report::markdown(&entries));
        }
    }
    Ok(())
}
