use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pollgate::bench::{self, BenchParams};
use pollgate::config::{self, ForwardModeCfg};
use pollgate::Engine;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Large tables (FIB, MAC and flow tables) in huge pages: reserved ones
/// where there are any free, transparent ones otherwise.
#[global_allocator]
static ALLOC: pollgate_pmd::HugePageAlloc = pollgate_pmd::HugePageAlloc;

#[derive(Parser)]
#[command(
    name = "pollgate",
    version,
    about = "A poll-mode L2 gateway over AF_XDP"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fwd {
    Io,
    Mac,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the engine on a configuration file until Ctrl-C.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Check a configuration file and print the topology it describes.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Measure the pipeline between two in-memory null ports on one core.
    Bench {
        /// Take pool geometry and engine settings from this file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, value_enum, default_value = "io")]
        forward: Fwd,
        /// Run the parse stage too (testpmd io mode does not parse).
        #[arg(long)]
        parse: bool,
        /// Switch between the ports (bridge domain, MAC learning) instead
        /// of cross-connecting them.
        #[arg(long)]
        l2: bool,
        /// Check every packet against this ClassBench rule file as an
        /// ingress ACL (default permit).
        #[arg(long)]
        acl: Option<PathBuf>,
        /// VXLAN: null0 a VTEP underlay replaying VXLAN (decap), null1 a
        /// bridge port sending to a MAC behind the tunnel (encap).
        #[arg(long)]
        vxlan: bool,
        /// Write the two captures --macs/--flows replay (mix0.pcap for
        /// null0, mix1.pcap for null1) into this folder and exit: the
        /// same frames for testpmd and OVS-DPDK on net_pcap ports.
        #[arg(long)]
        write_pcaps: Option<PathBuf>,
        /// Workers, each with its own pair of null ports (and bridge
        /// domain), pinned to cores --core, --core + 1, …
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// The whole gateway both ways: null0 a VTEP underlay (VNI 5000),
        /// null1 a VLAN trunk (VID 10) bridged to it, with the ACL of
        /// --acl on both and the MACs and flows of --macs and --flows.
        #[arg(long)]
        gateway: bool,
        /// An L2 service path between the ports: a dot1q-tunnel customer
        /// port against a QinQ provider port, or a macvlan or ipvlan
        /// bridge's parent and member.
        #[arg(long, value_enum)]
        service: Option<pollgate::bench_service::Service>,
        /// Distinct source/destination MAC pairs per port, replayed from
        /// memory in random order (the switch learns them); up to 1048576.
        #[arg(long, default_value_t = 1)]
        macs: usize,
        /// Distinct 5-tuples per port (for the ACL and its flow table; with
        /// --routes, distinct destinations).
        #[arg(long, default_value_t = 1)]
        flows: usize,
        /// VLANs the MAC pairs spread over (host pair i in VLAN 10 + i % N):
        /// with --l2 both ports are trunks and each VLAN its own bridge;
        /// with --gateway each VLAN is bridged to its own VNI.
        #[arg(long, default_value_t = 1)]
        vlans: usize,
        /// With --gateway: VNIs (5000 + i % N), each bridged to its own
        /// VLAN, so the same count as --vlans (either one sets both).
        #[arg(long, default_value_t = 1)]
        vnis: usize,
        /// Route instead: IPv4 between two gateway interfaces through this
        /// many FIB routes (dpdk-test-fib's depth distribution), at least
        /// two: 1 installs a /1 towards each side.
        #[arg(long, default_value_t = 0)]
        routes: usize,
        /// With --routes: masquerade the first side through the second
        /// side's gateway, --flows sessions (replies come back).
        #[arg(long)]
        nat: bool,
        /// Frame size on the wire, FCS included, as testpmd counts it.
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 32)]
        burst: usize,
        /// Core to pin the worker to.
        #[arg(long)]
        core: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Build four containers on this machine, run the engine between them,
    /// send real traffic, show stats, clean up (needs root).
    Demo {
        /// Datagrams per UDP burst.
        #[arg(long, default_value_t = 20000)]
        udp_count: u64,
        /// Datagrams per second of each burst.
        #[arg(long, default_value_t = 50000)]
        udp_rate: u64,
        /// Keep the topology up this many seconds after the traffic.
        #[arg(long, default_value_t = 0.0)]
        hold: f64,
        /// Print the built-in topology as a config file and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Ask a running engine: show ports|stats|workers|macs [DOMAIN]|acl
    /// [NAME]|config, clear stats, mac add DOMAIN MAC PORT, mac del DOMAIN
    /// MAC, acl add NAME [at N] RULE, acl del NAME INDEX, reload.
    Ctl {
        /// The engine's control socket.
        #[arg(long, default_value = pollgate::config::DEFAULT_CTL_SOCKET)]
        socket: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[arg(required = true, trailing_var_arg = true)]
        request: Vec<String>,
    },
    /// ACL tools: import ClassBench rules, measure the classifier.
    Acl {
        #[command(subcommand)]
        cmd: AclCmd,
    },
    /// FIB tools: measure the route lookup on dpdk-test-fib's files.
    Fib {
        #[command(subcommand)]
        cmd: FibCmd,
    },
    /// The core's clock, measured with a chain of one-cycle adds (what
    /// the perf/ scripts turn ns per packet into cycles with), beside
    /// what /proc/cpuinfo says.
    CpuClock {
        /// Pin to this core first (the one the benchmark ran on).
        #[arg(long)]
        core: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Internal: removes what a killed engine left behind.
    #[command(name = "__reap", hide = true)]
    Reap,
}

#[derive(Subcommand)]
enum AclCmd {
    /// Print an [[acl]] config table holding a rule file's rules.
    Import {
        #[arg(long, value_enum, default_value = "classbench")]
        format: AclFormat,
        #[arg(long, default_value = "imported")]
        name: String,
        /// Action for packets no rule matches.
        #[arg(long, default_value = "deny")]
        default: String,
        file: PathBuf,
    },
    /// Classify a ClassBench trace against a ClassBench rule file on one
    /// core: the input of `dpdk-test-acl --rulesf/--tracef`.
    Bench {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        trace: PathBuf,
        #[arg(long, default_value_t = 50)]
        iters: u32,
        /// Headers checked against a linear scan before timing.
        #[arg(long, default_value_t = 5000)]
        verify: usize,
        /// Core to pin to.
        #[arg(long)]
        core: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FibCmd {
    /// Look up an address file in a route file on one core: the files
    /// `dpdk-test-fib -w ROUTES -u IPS` writes (IPv4 or IPv6).
    Bench {
        #[arg(long)]
        routes: PathBuf,
        #[arg(long)]
        ips: PathBuf,
        #[arg(long, default_value_t = 5)]
        iters: u32,
        /// Addresses checked against a linear scan before timing.
        #[arg(long, default_value_t = 200)]
        verify: usize,
        /// Trie groups of 256 entries the table may take.
        #[arg(long, default_value_t = 1 << 21)]
        groups: usize,
        #[arg(long)]
        core: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AclFormat {
    Classbench,
}

/// Errors end the process with one clear message (and no backtrace,
/// whatever RUST_BACKTRACE says: a bad config is not a crash).
fn main() {
    if let Err(e) = real_main() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    // RUST_LOG first, then the config's [engine] log, then "info". A
    // config that does not load is reported by the command itself.
    let from_config = match &cli.cmd {
        Cmd::Run { config, .. } => config::load(config)
            .ok()
            .and_then(|t| t.config.engine.log.map(|l| l.into_inner())),
        _ => None,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(from_config.as_deref().unwrap_or("info"))
            }),
        )
        .init();
    match cli.cmd {
        Cmd::Run { config, duration } => run(&config, duration),
        Cmd::Demo {
            udp_count,
            udp_rate,
            hold,
            print_config,
        } => {
            if print_config {
                print!("{}", pollgate::demo::TOPOLOGY);
                return Ok(());
            }
            pollgate::demo::run(&pollgate::demo::DemoOptions {
                udp_count,
                udp_rate,
                hold: Duration::from_secs_f64(hold.max(0.0)),
            })
        }
        Cmd::Ctl {
            socket,
            json,
            request,
        } => {
            let mut line = request.join(" ");
            if json {
                line.push_str(" --json");
            }
            match pollgate::ctl::request(&socket, &line) {
                Ok(reply) => {
                    print!("{reply}");
                    if !reply.ends_with('\n') {
                        println!();
                    }
                    Ok(())
                }
                Err(e) => anyhow::bail!("{e}"),
            }
        }
        Cmd::Acl { cmd } => acl(cmd),
        Cmd::Fib {
            cmd:
                FibCmd::Bench {
                    routes,
                    ips,
                    iters,
                    verify,
                    groups,
                    core,
                    json,
                },
        } => {
            if let Some(c) = core {
                core_affinity::set_for_current(core_affinity::CoreId { id: c });
            }
            let r = pollgate::fib_tool::bench(&routes, &ips, iters, verify, groups)?;
            println!("{}", r.render(json));
            Ok(())
        }
        Cmd::CpuClock { core, json } => {
            if let Some(c) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                    anyhow::bail!("--core {c}: cannot pin to it");
                }
            }
            let measured =
                pollgate_pmd::core_clock::measure_mhz(std::time::Duration::from_millis(50))
                    .ok_or_else(|| anyhow::anyhow!("the clock is measured on x86-64 only"))?;
            let reported = pollgate::cpu_info::mhz();
            let tsc =
                pollgate_pmd::core_clock::measure_tsc_mhz(std::time::Duration::from_millis(50))
                    .unwrap_or(0.0);
            let round = |m: f64| (m * 10.0).round() / 10.0;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"core": core, "measured_mhz": round(measured), "tsc_mhz": round(tsc), "cpuinfo_mhz": reported})
                );
            } else {
                println!("{measured:.0} MHz measured (a chain of one-cycle adds); rdtsc counts at {tsc:.0} MHz; /proc/cpuinfo says {reported:.0} MHz");
            }
            Ok(())
        }
        Cmd::Reap => {
            pollgate::reaper::run();
            Ok(())
        }
        Cmd::Check { config } => {
            let topo = config::load(&config)?;
            println!(
                "{}: {} ports, {} cross-connects, {} bridges, {} workers",
                config.display(),
                topo.ports.len(),
                topo.xconnects.len(),
                topo.bridges.len(),
                topo.workers.len()
            );
            for a in &topo.acls {
                // Compiling here catches what only the classifier can
                // refuse, and shows what the rules cost.
                let set = pollgate_pipeline::acl::AclSet::compile(
                    &a.name,
                    a.rules.clone(),
                    a.default,
                    1,
                )?;
                println!(
                    "  acl {}: {} rules, default {}, {} ({} KiB)",
                    a.name,
                    a.rules.len(),
                    a.default.name(),
                    set.kinds()[0],
                    set.memory_bytes().div_ceil(1024)
                );
            }
            if let Some(v) = &topo.vtep {
                println!(
                    "  vtep {} on {}, {} VNIs",
                    std::net::Ipv4Addr::from(v.ip),
                    topo.ports[v.port].name,
                    v.vnis.len()
                );
            }
            Ok(())
        }
        Cmd::Bench {
            config,
            seconds,
            forward,
            parse,
            l2,
            acl,
            vxlan,
            gateway,
            write_pcaps,
            workers,
            service,
            macs,
            flows,
            vlans,
            vnis,
            routes,
            nat,
            size,
            burst,
            core,
            json,
        } => {
            anyhow::ensure!(!nat || routes > 0, "--nat: give --routes N too");
            let max = pollgate::bench_traffic::MAX_FRAMES;
            anyhow::ensure!((1..=max).contains(&macs), "--macs {macs}: use 1..={max}");
            anyhow::ensure!((1..=max).contains(&flows), "--flows {flows}: use 1..={max}");
            let segments = pollgate::bench::segments(vlans, vnis, l2, gateway)?;
            anyhow::ensure!((64..=1518).contains(&size), "--size {size}: use 64..=1518");
            anyhow::ensure!((1..=64).contains(&burst), "--burst {burst}: use 1..=64");
            anyhow::ensure!(
                (1..=64).contains(&workers),
                "--workers {workers}: use 1..=64"
            );
            anyhow::ensure!(
                workers == 1 || (!gateway && !vxlan && service.is_none()),
                "--workers {workers}: the switch and the cross-connect run on several workers; --gateway, --vxlan and --service on one"
            );
            let base = config.map(|c| config::load(&c)).transpose()?;
            let params = BenchParams {
                seconds,
                forward: match forward {
                    Fwd::Io => ForwardModeCfg::Io,
                    Fwd::Mac => ForwardModeCfg::Mac,
                },
                parse,
                l2,
                size: size - 4,
                burst,
                core,
                base,
                acl,
                vxlan,
                gateway,
                workers,
                service,
                macs,
                flows,
                segments,
                routes,
                nat,
            };
            if let Some(dir) = write_pcaps {
                std::fs::create_dir_all(&dir)?;
                for p in bench::write_pcaps(&params, &dir)? {
                    println!("{}", p.display());
                }
                return Ok(());
            }
            let r = bench::run(&params)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", r.render());
            }
            anyhow::ensure!(r.frames_balanced, "frame accounting did not balance");
            Ok(())
        }
    }
}

fn run(path: &std::path::Path, duration: Option<f64>) -> Result<()> {
    let topo = config::load(path)?;
    // The reaper undoes, after a kill -9, what pollgate made or changed:
    // the devices it made, the settings it changed on devices it did not
    // (offloads, filters, an XDP program attached over another's).
    // Ports added at run time (`ctl port add`) make devices too: the
    // reaper runs whenever it can, and must when the file asks for them.
    if let Err(e) = pollgate::reaper::spawn() {
        if topo.creates_devices() || topo.changes_devices() {
            return Err(e).context("starting the cleanup process");
        }
        tracing::warn!(
            "no cleanup process ({e}): devices added at run time are not removed after a kill -9"
        );
    }
    let engine = Engine::start(&topo).context("starting the engine")?;
    let ctl_path = &topo.config.engine.ctl_socket;
    let state = std::sync::Arc::new(
        engine
            .ctl_state(&topo)
            .with_reload(path.to_path_buf())
            .with_journal(pollgate::topology_ctl::journal_path(ctl_path)),
    );
    // Before the socket answers: a runtime's CHECK right after a restart
    // sees its containers attached.
    let resumed = pollgate::topology_ctl::resume(&state);
    if resumed > 0 {
        tracing::info!("attached again {resumed} ports a previous run attached at run time");
    }
    let _ctl = pollgate::ctl::CtlServer::start(ctl_path, state.clone())
        .with_context(|| format!("starting the control socket {}", ctl_path.display()))?;
    let _metrics = match &topo.config.engine.metrics {
        Some(addr) => {
            let m = pollgate::metrics::MetricsServer::start(addr, state)
                .with_context(|| format!("starting the metrics endpoint on {addr}"))?;
            tracing::info!("Prometheus metrics on http://{}/metrics", m.addr);
            Some(m)
        }
        None => None,
    };
    let stop = engine.stop_flag();
    ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    tracing::info!(
        ports = engine.view().live_ports().count(),
        workers = engine.workers.len(),
        "pollgate running; Ctrl-C stops"
    );
    let interval = match topo.config.engine.stats_interval {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
    engine.wait(deadline, interval);
    let summary = engine.shutdown();
    print!("{}", summary.render());
    anyhow::ensure!(
        summary.frames_balanced(),
        "frame accounting did not balance"
    );
    Ok(())
}

fn acl(cmd: AclCmd) -> Result<()> {
    use pollgate::acl_tool;
    use pollgate_pipeline::acl::Action;
    match cmd {
        AclCmd::Import {
            format: AclFormat::Classbench,
            name,
            default,
            file,
        } => {
            let default = Action::parse(&default)?;
            let table = acl_tool::import(&file, &name, default)?;
            // A reader that stops early (`| head`) is no error.
            if let Err(e) =
                std::io::Write::write_all(&mut std::io::stdout().lock(), table.as_bytes())
            {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
        AclCmd::Bench {
            rules,
            trace,
            iters,
            verify,
            core,
            json,
        } => {
            if let Some(c) = core {
                core_affinity::set_for_current(core_affinity::CoreId { id: c });
            }
            let r = acl_tool::bench(&rules, &trace, iters, verify)?;
            println!("{}", r.render(json));
        }
    }
    Ok(())
}
