//! The engine end to end on in-memory and pcap ports: no privileges needed.

mod common;

use common::{read_pcap, write_pcap};
use pollgate::config;
use pollgate::Engine;
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pollgate-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn frame(i: u16) -> Vec<u8> {
    udp4_frame(
        60 + (i as usize % 100),
        MacAddr([2, 0, 0, 0, 0, 0xa]),
        MacAddr([2, 0, 0, 0, 0, 0xb]),
        [198, 18, 0, 1],
        [198, 19, 0, 1],
        1000 + i,
        2000,
        &i.to_be_bytes(),
    )
}

fn pollgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pollgate"))
        .args(args)
        .output()
        .expect("pollgate runs")
}

#[test]
fn pcap_replay_forwards_valid_frames_and_counts_malformed() {
    let dir = tmpdir("replay");
    let mut frames: Vec<Vec<u8>> = (0..500).map(frame).collect();
    let mut bad_ihl = frame(7);
    bad_ihl[14] = 0x43;
    let mut tags3 = frame(8);
    tags3.splice(12..12, [0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3]);
    frames.insert(100, vec![0xff; 10]);
    frames.insert(200, bad_ihl);
    frames.insert(300, tags3);
    write_pcap(&dir.join("in.pcap"), &frames);
    std::fs::write(
        dir.join("gw.toml"),
        r#"
[engine]
forward = "io"
[[port]]
name = "in"
kind = "pcap"
rx = "in.pcap"
[[port]]
name = "out"
kind = "pcap"
tx = "out.pcap"
[[xconnect]]
ports = ["in", "out"]
"#,
    )
    .unwrap();
    let out = pollgate(&[
        "run",
        "--config",
        dir.join("gw.toml").to_str().unwrap(),
        "--duration",
        "20",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = read_pcap(&dir.join("out.pcap"));
    let want: Vec<Vec<u8>> = (0..500).map(frame).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "frames differ after io forwarding");
    for name in ["runt_frame", "ipv4_bad_ihl", "too_many_tags"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{stdout}"));
        assert!(line.split_whitespace().nth(1) == Some("1"), "{line}");
    }
    let accounting = stdout
        .lines()
        .find(|l| l.ends_with("accounted"))
        .unwrap_or_else(|| panic!("no accounting line:\n{stdout}"));
    let (have, total) = accounting
        .split_whitespace()
        .find(|w| w.contains('/'))
        .and_then(|w| w.split_once('/'))
        .expect("frames N/M");
    assert_eq!(have, total, "{accounting}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mac_mode_rewrites_addresses() {
    let dir = tmpdir("mac");
    write_pcap(&dir.join("in.pcap"), &[frame(1), frame(2)]);
    let cfg = format!(
        r#"
[engine]
forward = "mac"
[[port]]
name = "in"
kind = "pcap"
rx = "{0}/in.pcap"
[[port]]
name = "out"
kind = "pcap"
tx = "{0}/out.pcap"
mac = "02:11:11:11:11:11"
peer_mac = "02:22:22:22:22:22"
[[xconnect]]
ports = ["in", "out"]
"#,
        dir.display()
    );
    let topo = config::parse("mac.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).unwrap();
    engine.wait(Some(Instant::now() + Duration::from_secs(20)), None);
    let summary = engine.shutdown();
    assert!(summary.frames_balanced());
    let got = read_pcap(&dir.join("out.pcap"));
    assert_eq!(got.len(), 2);
    for (g, mut w) in got.into_iter().zip([frame(1), frame(2)]) {
        w[0..6].copy_from_slice(&[2, 0x22, 0x22, 0x22, 0x22, 0x22]);
        w[6..12].copy_from_slice(&[2, 0x11, 0x11, 0x11, 0x11, 0x11]);
        assert_eq!(g, w);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_workers_over_a_ring_balance_frames_after_a_million_packets() {
    let src = r#"
[engine]
forward = "io"
idle = "backoff"
[[port]]
name = "gen0"
kind = "null"
[[port]]
name = "wire0"
kind = "ring"
peer = "wire1"
[[port]]
name = "wire1"
kind = "ring"
peer = "wire0"
[[port]]
name = "gen1"
kind = "null"
[[xconnect]]
ports = ["gen0", "wire0"]
[[xconnect]]
ports = ["wire1", "gen1"]
[[worker]]
ports = ["gen0", "wire0"]
[[worker]]
ports = ["wire1", "gen1"]
"#;
    let topo = config::parse("mem.toml", src).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let crossed = |e: &Engine| e.view().ports[2].counters.snapshot().rx_packets;
    let deadline = Instant::now() + Duration::from_secs(60);
    while crossed(&engine) < 1_000_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = engine.shutdown();
    let s: Vec<_> = summary.ports.iter().map(|(_, s)| *s).collect();
    assert!(
        s[2].rx_packets >= 1_000_000,
        "only {} packets crossed the ring",
        s[2].rx_packets
    );
    // Conservation: what wire1 received, wire0 sent (the ring may still
    // hold frames in flight, never invents any).
    assert!(s[2].rx_packets <= s[1].tx_packets);
    assert!(s[1].rx_packets <= s[2].tx_packets);
    // Every packet gen0 made was sent on wire0 or dropped for a full ring.
    assert_eq!(s[0].rx_packets, s[1].tx_packets + s[1].tx_full);
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn bad_config_names_file_line_and_field_and_starts_nothing() {
    let dir = tmpdir("badcfg");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[engine]\nforward = \"io\"\nburst = 0\n[[port]]\nname = \"a\"\nkind = \"null\"\n",
    )
    .unwrap();
    let out = pollgate(&["run", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: engine.burst", path.display())),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("stopped"),
        "nothing may run"
    );

    std::fs::write(
        &path,
        "[[port]]\nname = \"a\"\nkind = \"pcap\"\nrx = \"missing.pcap\"\n",
    )
    .unwrap();
    let out = pollgate(&["run", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:4: port.rx"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pollgate bench ARGS --json`: its result, after checking that it ran,
/// forwarded, balanced its frames and dropped nothing, while measured or
/// before.
fn bench(args: &[&str]) -> serde_json::Value {
    let out = pollgate(&[&["bench"], args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["packets"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["frames_balanced"], true, "{v}");
    assert_eq!(v["drops"], 0, "{v}");
    assert_eq!(v["drops_total"], 0, "{v}");
    v
}

#[test]
fn bench_runs_and_balances() {
    bench(&["--seconds", "0.2", "--forward", "mac", "--parse"]);
}

#[test]
fn the_bench_runs_a_switch_per_worker() {
    let v = bench(&["--l2", "--workers", "2", "--seconds", "0.3"]);
    assert_eq!(v["workers"], 2);
    // Every port of both pairs forwards.
    let ports = v["port_mpps"].as_array().unwrap();
    assert_eq!(ports.len(), 4, "{v}");
    assert!(ports.iter().all(|p| p[1].as_f64().unwrap() > 0.0), "{v}");
    let refused = pollgate(&["bench", "--gateway", "--workers", "2", "--seconds", "0.1"]);
    assert!(!refused.status.success());
}

#[test]
fn the_gateway_bench_runs_every_stage_both_ways() {
    let v = bench(&[
        "--gateway",
        "--macs",
        "64",
        "--flows",
        "64",
        "--seconds",
        "0.3",
    ]);
    // Both directions: encapsulated out of the underlay, tagged out of
    // the trunk, at the same rate (each side's frames answer the other's).
    let port = |n: &str| {
        v["port_mpps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == n)
            .and_then(|p| p[1].as_f64())
            .unwrap()
    };
    let (encap, decap) = (port("null0"), port("null1"));
    assert!(encap > 0.0 && decap > 0.0, "{v}");
    assert!((encap / decap - 1.0).abs() < 0.2, "{v}");
}

#[test]
fn vlans_and_vnis_spread_the_host_pairs_over_their_own_bridges() {
    // A tag or VNI no bridge has would be a counted drop: none means every
    // frame met its segment's bridge, both ways.
    for args in [
        &["--l2", "--vlans", "3"][..],
        &["--gateway", "--vlans", "4"][..],
        &["--gateway", "--vnis", "4"][..],
    ] {
        let v = bench(&[args, &["--macs", "60", "--seconds", "0.3"]].concat());
        assert_eq!(v["drops_total"], 0, "{v}");
        let ports = v["port_mpps"].as_array().unwrap();
        assert!(ports.iter().all(|p| p[1].as_f64().unwrap() > 0.0), "{v}");
        let label = v["forward"].as_str().unwrap();
        assert!(
            label.contains("VLANs 10-12")
                || label.contains("VNIs 5000-5003 underlay <-> VLANs 10-13"),
            "{label}"
        );
    }
    let refused = pollgate(&["bench", "--l2", "--vnis", "2", "--seconds", "0.1"]);
    assert!(!refused.status.success());
}

#[test]
fn a_cross_connect_between_workers_hands_frames_over() {
    let src = r#"
[engine]
idle = "backoff"
[[port]]
name = "gen0"
kind = "null"
[[port]]
name = "sink"
kind = "pcap"
tx = "/dev/null"
[[xconnect]]
ports = ["gen0", "sink"]
[[worker]]
ports = ["gen0"]
[[worker]]
ports = ["sink"]
"#;
    let topo = config::parse("handoff.toml", src).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.view().ports[1].counters.snapshot().tx_packets < 100_000
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let summary = engine.shutdown();
    let s: Vec<_> = summary.ports.iter().map(|(_, s)| *s).collect();
    assert!(s[1].tx_packets >= 100_000, "{}", summary.render());
    // Every frame gen0 made went across or was counted as a full ring.
    let handed = s[1].tx_packets
        + summary
            .drops()
            .get(pollgate_pipeline::DropReason::WorkerRingFull);
    assert!(
        handed <= s[0].rx_packets && s[0].rx_packets - handed <= 1024,
        "{}",
        summary.render()
    );
    assert!(summary.frames_balanced(), "{}", summary.render());
}
