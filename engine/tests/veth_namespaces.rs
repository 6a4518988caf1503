//! The engine on real veth pairs in network namespaces, through AF_XDP.
//! Needs root; without it each test prints why it skips.

use pollgate::config;
use pollgate::Engine;
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pmd::netlink::Netlink;
use pollgate_pmd::netns::NetNs;
use pollgate_pmd::packet_socket::PacketSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn root(test: &str) -> bool {
    let ok = pollgate_pmd::device::is_root();
    if !ok {
        eprintln!("SKIP {test}: needs root (network namespaces, veth, XDP)");
    }
    ok
}

/// Unique short names per test and process: device names are global.
fn names(tag: &str) -> (String, String) {
    let id = std::process::id() % 100000;
    (format!("pa{tag}{id}"), format!("pb{tag}{id}"))
}

const MARK_PORT: u16 = 47000;

fn frame(i: u32, src: [u8; 6], dst: [u8; 6], size: usize) -> Vec<u8> {
    udp4_frame(
        size,
        MacAddr(src),
        MacAddr(dst),
        [198, 18, 9, 1],
        [198, 18, 9, 2],
        1024 + (i % 1000) as u16,
        MARK_PORT,
        &i.to_be_bytes(),
    )
}

fn is_ours(b: &[u8]) -> bool {
    b.len() >= 42 && b[12..14] == [8, 0] && b[23] == 17 && b[36..38] == MARK_PORT.to_be_bytes()
}

fn veth_pair_config(a: &str, b: &str, xdp_mode: &str, extra: &str) -> String {
    format!(
        r#"
[engine]
forward = "io"
idle = "poll"
[[port]]
name = "{a}"
kind = "veth"
netns = "{a}"
netns_create = true
mode = "copy"
xdp_mode = "{xdp_mode}"
address = "198.18.9.1/24"
container_mac = "02:50:47:09:00:01"
[[port]]
name = "{b}"
kind = "veth"
netns = "{b}"
netns_create = true
mode = "copy"
xdp_mode = "{xdp_mode}"
address = "198.18.9.2/24"
container_mac = "02:50:47:09:00:02"
[[xconnect]]
ports = ["{a}", "{b}"]
{extra}
"#
    )
}

fn exchange(tag: &str, xdp_mode: &str, extra: &str) {
    let (a, b) = names(tag);
    let topo = config::parse("veth.toml", &veth_pair_config(&a, &b, xdp_mode, extra)).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    assert!(
        engine.view().ports[0]
            .detail
            .contains(&format!("copy mode, {xdp_mode} XDP")),
        "{}",
        engine.view().ports[0].detail
    );
    let (na, nb) = (NetNs::open(&a).unwrap(), NetNs::open(&b).unwrap());
    let sa = na.run(|| PacketSocket::open("eth0")).unwrap();
    let sb = nb.run(|| PacketSocket::open("eth0")).unwrap();
    for (from, to, src, dst) in [
        (&sa, &sb, [2, 0x50, 0x47, 9, 0, 1], [2, 0x50, 0x47, 9, 0, 2]),
        (&sb, &sa, [2, 0x50, 0x47, 9, 0, 2], [2, 0x50, 0x47, 9, 0, 1]),
    ] {
        let frames: Vec<Vec<u8>> = (0..200u32)
            .map(|i| frame(i, src, dst, 60 + (i as usize * 13) % 1400))
            .collect();
        for f in &frames {
            from.send(f).unwrap();
            // A little pacing: the receiving kernel's backlog is 1000 frames.
            std::thread::sleep(Duration::from_micros(20));
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < frames.len() && Instant::now() < deadline {
            if let Some(n) = to.recv(&mut buf, Duration::from_millis(100)).unwrap() {
                if is_ours(&buf[..n]) {
                    got.push(buf[..n].to_vec());
                }
            }
        }
        assert_eq!(got.len(), frames.len(), "every frame arrives");
        assert!(got == frames, "frames arrive byte-identical and in order");
    }
    drop((sa, sb, na, nb));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
    let mut nl = Netlink::open().unwrap();
    for n in [&a, &b] {
        assert!(nl.get_link(n).unwrap().is_none(), "{n} removed at shutdown");
        assert!(!NetNs::exists(n), "namespace {n} removed at shutdown");
    }
}

#[test]
fn frames_cross_byte_identical_both_ways_native_xdp() {
    if root("native") {
        // With preferred busy polling on: every empty poll drives NAPI.
        exchange("n", "native", "[afxdp]\nbusy_poll_budget = 64\n");
    }
}

#[test]
fn frames_cross_byte_identical_both_ways_generic_xdp() {
    if root("generic") {
        exchange("g", "generic", "");
    }
}

/// Jumbo frames: with a 9000-byte MTU on both pairs the sockets bind
/// for multi-buffer, each frame over 1792 bytes arrives as a chain of
/// UMEM frames, crosses the engine as one packet and leaves as a chain.
#[test]
fn jumbo_frames_cross_byte_identical_as_multi_buffer_chains() {
    if !root("jumbo") {
        return;
    }
    let (a, b) = names("j");
    let cfg = veth_pair_config(&a, &b, "native", "").replace(
        "container_mac = \"02:50:47:09:00:0",
        "mtu = 9000\ncontainer_mac = \"02:50:47:09:00:0",
    );
    let topo = config::parse("veth.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    for p in &engine.view().ports {
        assert!(p.detail.contains("multi-buffer (MTU 9000)"), "{}", p.detail);
    }
    // The modes in effect, for scripts and for monitoring.
    let state = engine.ctl_state(&topo);
    let ports: serde_json::Value =
        serde_json::from_str(&state.handle("show ports --json").unwrap()).unwrap();
    let m = &ports[0]["afxdp"];
    assert_eq!(
        (&m["bind"], &m["xdp"], &m["multi_buffer"], &m["mtu"]),
        (
            &serde_json::json!("copy"),
            &serde_json::json!("native"),
            &serde_json::json!(true),
            &serde_json::json!(9000)
        ),
        "{ports}"
    );
    let body = pollgate::metrics::render(&state);
    let info = format!(
        "pollgate_port_afxdp_info{{port=\"{a}\",device=\"{a}\",queue=\"0\",driver=\"veth\",bind=\"copy\",xdp=\"native\",multi_buffer=\"true\"}} 1"
    );
    assert!(body.lines().any(|l| l == info), "{info} in\n{body}");
    drop(state);
    let (na, nb) = (NetNs::open(&a).unwrap(), NetNs::open(&b).unwrap());
    let sa = na.run(|| PacketSocket::open("eth0")).unwrap();
    let sb = nb.run(|| PacketSocket::open("eth0")).unwrap();
    // Every size class: one frame, a frame boundary (1792 bytes of
    // data per frame), two to six frames, and the largest, 9014.
    let sizes = [
        60, 1500, 1791, 1792, 1793, 3584, 3585, 5000, 8000, 9000, 9014,
    ];
    for (from, to, src, dst) in [
        (&sa, &sb, [2, 0x50, 0x47, 9, 0, 1], [2, 0x50, 0x47, 9, 0, 2]),
        (&sb, &sa, [2, 0x50, 0x47, 9, 0, 2], [2, 0x50, 0x47, 9, 0, 1]),
    ] {
        let frames: Vec<Vec<u8>> = (0..110u32)
            .map(|i| {
                let mut f = frame(i, src, dst, sizes[i as usize % sizes.len()]);
                // A pattern through the payload: a segment out of place
                // or cut short would show.
                for (k, byte) in f.iter_mut().enumerate().skip(46) {
                    *byte = (k as u32 * 7 + i) as u8;
                }
                f
            })
            .collect();
        for f in &frames {
            from.send(f).unwrap();
            std::thread::sleep(Duration::from_micros(50));
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; 10_000];
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < frames.len() && Instant::now() < deadline {
            if let Some(n) = to.recv(&mut buf, Duration::from_millis(100)).unwrap() {
                if is_ours(&buf[..n]) {
                    got.push(buf[..n].to_vec());
                }
            }
        }
        let lens: Vec<usize> = got.iter().map(|f| f.len()).collect();
        assert_eq!(got.len(), frames.len(), "every frame arrives: {lens:?}");
        for (k, (g, f)) in got.iter().zip(&frames).enumerate() {
            assert!(
                g == f,
                "frame {k} ({} bytes) arrives byte-identical",
                f.len()
            );
        }
    }
    drop((sa, sb, na, nb));
    let summary = engine.shutdown();
    let (rx, tx): (u64, u64) = summary.ports.iter().fold((0, 0), |(r, t), (_, s)| {
        (r + s.rx_packets, t + s.tx_packets)
    });
    // The namespaces' kernels may add a frame of their own (an ICMP error).
    assert!(rx >= 220 && tx == rx, "{}", summary.render());
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn frame_accounting_balances_after_a_million_packets() {
    if !root("million") {
        return;
    }
    let (a, b) = names("m");
    let topo = config::parse("veth.toml", &veth_pair_config(&a, &b, "native", "")).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    // One sender, alternating sides: with the worker that makes two busy
    // threads on this two-core machine, so the measure is the engine's
    // accounting, not CPU starvation.
    let socks: Vec<PacketSocket> = [&a, &b]
        .iter()
        .map(|n| {
            NetNs::open(n)
                .unwrap()
                .run(|| PacketSocket::open("eth0"))
                .unwrap()
        })
        .collect();
    // Addressed to nobody: the far kernel drops them quietly.
    let frames = [
        frame(1, [2, 0x50, 0x47, 9, 0, 1], [2, 0x50, 0x47, 9, 9, 9], 60),
        frame(2, [2, 0x50, 0x47, 9, 0, 2], [2, 0x50, 0x47, 9, 9, 9], 60),
    ];
    // Send until the engine has taken in a million frames (the kernel
    // drops some when other tests share the CPUs), bounded in time.
    let received = |e: &Engine| {
        e.view()
            .ports
            .iter()
            .map(|p| p.counters.snapshot().rx_packets)
            .sum::<u64>()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut sent = 0u64;
    while received(&engine) < 1_050_000 && Instant::now() < deadline {
        let k = (sent & 1) as usize;
        if socks[k].send(&frames[k]).is_ok() {
            sent += 1;
        }
    }
    drop(socks);
    std::thread::sleep(Duration::from_millis(300));
    let summary = engine.shutdown();
    let rx: u64 = summary.ports.iter().map(|(_, s)| s.rx_packets).sum();
    let tx: u64 = summary.ports.iter().map(|(_, s)| s.tx_packets).sum();
    let kernel: u64 = summary.ports.iter().map(|(_, s)| s.kernel_drops).sum();
    eprintln!("sent {sent}, engine rx {rx}, tx {tx}, kernel drops {kernel}");
    assert!(rx >= 1_000_000, "only {rx} packets went through the engine");
    assert!(summary.frames_balanced(), "{}", summary.render());
}

fn pollgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pollgate")
}

use common::wait_for;

#[test]
fn kill_9_leaves_no_xdp_program_and_no_devices() {
    if !root("kill9") {
        return;
    }
    let (a, b) = names("k");
    // A device the test owns: pollgate attaches to it (kind afxdp) and
    // must leave it as it found it.
    let own = format!("pk{}", std::process::id() % 100000);
    let own_peer = format!("{own}p");
    let mut nl = Netlink::open().unwrap();
    nl.create_veth(&own, &own_peer, None, 1).unwrap();
    for n in [&own, &own_peer] {
        let l = nl.get_link(n).unwrap().unwrap();
        nl.set_link(l.index, Some(true), None, None).unwrap();
    }
    let extra = format!("[[port]]\nname = \"{own}\"\nkind = \"afxdp\"\niface = \"{own}\"\n[[port]]\nname = \"null\"\nkind = \"null\"\n[[xconnect]]\nports = [\"{own}\", \"null\"]\n");
    let dir = std::env::temp_dir().join(format!("pollgate-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A control socket of its own: the demo test runs an engine on the
    // default one meanwhile.
    let cfg = veth_pair_config(&a, &b, "native", &extra).replace(
        "[engine]\n",
        &format!("[engine]\nctl_socket = \"{}/ctl.sock\"\n", dir.display()),
    );
    let path = dir.join("gw.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new(pollgate_bin())
        .args(["run", "--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the engine to attach XDP", || {
        nl.get_link(&own)
            .unwrap()
            .and_then(|l| l.xdp_prog_id)
            .is_some()
            && nl.get_link(&b).unwrap().is_some()
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    wait_for("the XDP program to go", || {
        nl.get_link(&own).unwrap().unwrap().xdp_prog_id.is_none()
    });
    wait_for("the devices and namespaces to go", || {
        nl.get_link(&a).unwrap().is_none()
            && nl.get_link(&b).unwrap().is_none()
            && !NetNs::exists(&a)
            && !NetNs::exists(&b)
    });
    // And a restart works on the same names.
    let out = Command::new(pollgate_bin())
        .args([
            "run",
            "--config",
            path.to_str().unwrap(),
            "--duration",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        nl.get_link(&own).unwrap().unwrap().xdp_prog_id.is_none(),
        "clean shutdown detaches too"
    );
    let l = nl.get_link(&own).unwrap().unwrap();
    nl.delete_link(l.index).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two cross-connected veth pairs (a↔b, c↔d) on 198.18.NET.0/24 each, an
/// engine that sleeps when idle.
fn two_pairs([a, b, c, d]: [&str; 4], nets: [u8; 2]) -> String {
    let pair = |x: &str, y: &str, net: u8| {
        format!(
            "[[port]]\nname = \"{x}\"\nkind = \"veth\"\nnetns = \"{x}\"\nnetns_create = true\naddress = \"198.18.{net}.1/24\"\n\
             [[port]]\nname = \"{y}\"\nkind = \"veth\"\nnetns = \"{y}\"\nnetns_create = true\naddress = \"198.18.{net}.2/24\"\n\
             [[xconnect]]\nports = [\"{x}\", \"{y}\"]\n"
        )
    };
    format!(
        "[engine]\nidle = \"backoff\"\n{}{}",
        pair(a, b, nets[0]),
        pair(c, d, nets[1])
    )
}

#[test]
fn deleting_a_container_namespace_is_counted_and_others_keep_forwarding() {
    if !root("netns-delete") {
        return;
    }
    let (a, b) = names("d");
    let (c, d) = names("e");
    let cfg = two_pairs([&a, &b, &c, &d], [10, 11]);
    let topo = config::parse("two.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    NetNs::delete(&a).unwrap();
    wait_for("the port to notice its device is gone", || {
        engine.view().ports[0].counters.snapshot().link_down_events == 1
    });
    // The other cross-connect still forwards.
    let (nc, nd) = (NetNs::open(&c).unwrap(), NetNs::open(&d).unwrap());
    let sc = nc.run(|| PacketSocket::open("eth0")).unwrap();
    let sd = nd.run(|| PacketSocket::open("eth0")).unwrap();
    let f = frame(7, [2, 0, 0, 0, 0, 0xc], [2, 0, 0, 0, 0, 0xd], 100);
    let mut buf = vec![0u8; 2048];
    let mut seen = 0;
    for _ in 0..20 {
        sc.send(&f).unwrap();
        if let Some(n) = sd.recv(&mut buf, Duration::from_millis(200)).unwrap() {
            if buf[..n] == f[..] {
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 19,
        "only {seen}/20 frames crossed the unaffected pair"
    );
    drop((sc, sd, nc, nd));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
    assert!(!NetNs::exists(&b) && !NetNs::exists(&c) && !NetNs::exists(&d));
}

/// Sends `f` from `from` until `to` receives it (or `tries` run out);
/// returns how many of the tries got through.
fn crossings(from: &PacketSocket, to: &PacketSocket, f: &[u8], tries: usize) -> usize {
    let mut buf = vec![0u8; 2048];
    // Late copies of an earlier round do not count for this one.
    while to
        .recv(&mut buf, Duration::from_millis(20))
        .unwrap()
        .is_some()
    {}
    let mut seen = 0;
    for _ in 0..tries {
        from.send(f).unwrap();
        if let Some(n) = to.recv(&mut buf, Duration::from_millis(100)).unwrap() {
            if buf[..n] == f[..] {
                seen += 1;
            }
        }
    }
    seen
}

#[test]
fn a_port_whose_link_goes_down_is_counted_and_forwards_again_when_it_comes_back() {
    if !root("link-down") {
        return;
    }
    let (a, b) = names("l");
    let (c, d) = names("m");
    let cfg = two_pairs([&a, &b, &c, &d], [12, 13]);
    let topo = config::parse("link.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let socks: Vec<PacketSocket> = [&a, &b, &c, &d]
        .iter()
        .map(|n| {
            NetNs::open(n)
                .unwrap()
                .run(|| PacketSocket::open("eth0"))
                .unwrap()
        })
        .collect();
    let ab = frame(1, [2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb], 100);
    let cd = frame(2, [2, 0, 0, 0, 0, 0xc], [2, 0, 0, 0, 0, 0xd], 100);
    assert!(crossings(&socks[0], &socks[1], &ab, 5) >= 4, "a→b before");

    // The host end of a goes down: counted, and c↔d does not notice.
    let mut nl = Netlink::open().unwrap();
    let host_a = nl.get_link(&a).unwrap().unwrap().index;
    nl.set_link(host_a, Some(false), None, None).unwrap();
    wait_for("the port to count its link going down", || {
        engine.view().ports[0].counters.snapshot().link_down_events == 1
    });
    assert_eq!(
        crossings(&socks[1], &socks[0], &ab, 5),
        0,
        "b→a while a is down"
    );
    assert!(
        crossings(&socks[2], &socks[3], &cd, 20) >= 19,
        "c→d unaffected"
    );

    // Back up: a forwards again, with no restart.
    nl.set_link(host_a, Some(true), None, None).unwrap();
    // Both ends' carrier comes back (the kernel's link watch can take a
    // moment for the container's end): wait until both ways forward.
    let back = Instant::now();
    let both = || {
        crossings(&socks[0], &socks[1], &ab, 5) == 5 && crossings(&socks[1], &socks[0], &ab, 5) == 5
    };
    while !both() {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "a never forwarded both ways again: {:?}",
            engine.view().ports[0].counters.snapshot()
        );
    }
    assert_eq!(
        engine.view().ports[0].counters.snapshot().link_down_events,
        1
    );
    drop(socks);
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn an_xdp_program_detached_by_hand_is_counted_and_attached_again() {
    if !root("xdp-detach") {
        return;
    }
    let have_bpftool = Command::new("bpftool")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_bpftool {
        assert!(
            std::env::var_os("CI").is_none(),
            "no bpftool under CI: tools/test.sh installs it"
        );
        eprintln!("SKIP xdp-detach: no bpftool (apt-get install bpftool)");
        return;
    }
    let (a, b) = names("x");
    let topo = config::parse("x.toml", &veth_pair_config(&a, &b, "native", "")).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let (na, nb) = (NetNs::open(&a).unwrap(), NetNs::open(&b).unwrap());
    let sa = na.run(|| PacketSocket::open("eth0")).unwrap();
    let sb = nb.run(|| PacketSocket::open("eth0")).unwrap();
    let f = frame(3, [2, 0x50, 0x47, 9, 0, 1], [2, 0x50, 0x47, 9, 0, 2], 100);
    assert!(crossings(&sa, &sb, &f, 5) >= 4, "a→b before");

    // Detach it the way an operator would: bpftool, by link id.
    let prog = engine.view().ports[0].xdp.as_ref().unwrap().prog_id();
    let out = Command::new("bpftool")
        .args(["-j", "link", "show"])
        .output()
        .unwrap();
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let link = links
        .as_array()
        .and_then(|v| v.iter().find(|l| l["prog_id"] == prog))
        .and_then(|l| l["id"].as_u64())
        .expect("bpftool lists pollgate's XDP link");
    let st = Command::new("bpftool")
        .args(["link", "detach", "id", &link.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "bpftool link detach");
    assert_eq!(
        crossings(&sa, &sb, &f, 3),
        0,
        "nothing is steered to pollgate while detached"
    );

    // The watchdog (once a second while the engine waits) attaches it again.
    engine.wait(Some(Instant::now() + Duration::from_millis(1600)), None);
    assert_eq!(engine.view().ports[0].counters.snapshot().xdp_detached, 1);
    assert_eq!(engine.view().ports[1].counters.snapshot().xdp_detached, 0);
    assert!(crossings(&sa, &sb, &f, 10) >= 9, "a→b after the watchdog");
    drop((sa, sb, na, nb));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn a_starved_fill_ring_is_counted_and_forwarding_recovers_without_leaking_frames() {
    if !root("fill-starved") {
        return;
    }
    let (a, b) = names("f");
    // 64-entry rings and a worker that sleeps when idle: a burst fills
    // the ring in microseconds, long before the worker wakes to refill.
    let cfg = veth_pair_config(&a, &b, "native", "[afxdp]\nrx_ring = 64\nfill_ring = 64\n")
        .replace("idle = \"poll\"", "idle = \"backoff\"");
    let topo = config::parse("starve.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let (na, nb) = (NetNs::open(&a).unwrap(), NetNs::open(&b).unwrap());
    let sa = na.run(|| PacketSocket::open("eth0")).unwrap();
    let sb = nb.run(|| PacketSocket::open("eth0")).unwrap();
    let f = frame(4, [2, 0x50, 0x47, 9, 0, 1], [2, 0x50, 0x47, 9, 0, 2], 100);
    for _ in 0..3000 {
        sa.send(&f).unwrap();
    }
    wait_for("the kernel's fill-ring-empty count", || {
        engine.view().ports[0].counters.snapshot().fill_empty > 0
    });
    assert!(
        crossings(&sa, &sb, &f, 20) >= 19,
        "a→b after the starvation"
    );
    drop((sa, sb, na, nb));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn with_handover_a_restart_replaces_the_program_instead_of_detaching_it() {
    if !root("handover") {
        return;
    }
    let own = format!("ph{}", std::process::id() % 100000);
    let mut nl = Netlink::open().unwrap();
    nl.create_veth(&own, &format!("{own}p"), None, 1).unwrap();
    for n in [own.clone(), format!("{own}p")] {
        let l = nl.get_link(&n).unwrap().unwrap();
        nl.set_link(l.index, Some(true), None, None).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("pollgate-handover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gw.toml");
    std::fs::write(
        &path,
        format!(
            "[engine]\nidle = \"backoff\"\nctl_socket = \"{}/ctl.sock\"\n[afxdp]\nhandover = true\n[[port]]\nname = \"{own}\"\nkind = \"afxdp\"\niface = \"{own}\"\n[[port]]\nname = \"null\"\nkind = \"null\"\n[[xconnect]]\nports = [\"{own}\", \"null\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    let run = || {
        let out = Command::new(pollgate_bin())
            .args([
                "run",
                "--config",
                path.to_str().unwrap(),
                "--duration",
                "0.5",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        nl_prog(&own)
    };
    let first = run().expect("the program stays on the device after exit");
    let second = run().expect("and after the restart");
    assert_ne!(first, second, "the restart replaced it with its own");
    // Someone done with pollgate removes it (ip link set dev … xdp off).
    let l = nl.get_link(&own).unwrap().unwrap();
    nl.set_xdp(l.index, -1, 0, None).unwrap();
    assert_eq!(nl_prog(&own), None);
    nl.delete_link(l.index).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn nl_prog(dev: &str) -> Option<u32> {
    Netlink::open()
        .unwrap()
        .get_link(dev)
        .unwrap()
        .and_then(|l| l.xdp_prog_id)
}

#[test]
fn demo_runs_pings_and_cleans_up() {
    if !root("demo") {
        return;
    }
    if ["pg-web", "pg-db", "pg-app", "pg-cache", "pg-edge"]
        .iter()
        .any(|n| NetNs::exists(n))
    {
        eprintln!("SKIP demo: a demo namespace already exists on this machine");
        return;
    }
    let out = Command::new(pollgate_bin())
        .args(["demo", "--udp-count", "2000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Three pings on the switch, three through the router (the gateway
    // itself, and across the bridges both ways).
    assert_eq!(stdout.matches("5/5 replies").count(), 6, "{stdout}");
    // The switch learned the four office containers and pg-edge.
    let macs = stdout
        .lines()
        .filter(|l| l.contains("02:50:47:00:") && l.contains(" port "))
        .count();
    assert_eq!(macs, 5, "{stdout}");
    assert!(
        stdout.contains("== routes") && stdout.contains("198.18.1.0/24"),
        "{stdout}"
    );
    assert!(
        stdout.contains("== neighbours") && stdout.contains("198.18.1.10"),
        "{stdout}"
    );
    // veth<->veth and veth<->tap bursts arrive (the kernel may drop a
    // few datagrams at its own socket, so no exact count here).
    assert_eq!(stdout.matches("2000 sent").count(), 4, "{stdout}");
    // The ACL on pg-db's port turns pg-app's UDP away, and counts it.
    assert!(stdout.contains("500 sent, 0 received"), "{stdout}");
    assert!(
        stdout.contains("== ACLs") && stdout.contains("deny proto=udp"),
        "{stdout}"
    );
    assert!(stdout.contains("acl_deny "), "{stdout}");
    assert!(stdout.contains("cleaned up"), "{stdout}");
    assert_eq!(
        stdout.matches("accounted\n").count(),
        1,
        "one worker, its frames accounted: {stdout}"
    );
    assert!(!stdout.contains("LEAK"), "{stdout}");
}

#[test]
fn bridge_learns_floods_and_tags_between_access_and_trunk_ports() {
    if !root("bridge") {
        return;
    }
    let id = std::process::id() % 10000;
    let n: Vec<String> = ["a", "b", "c", "t"]
        .iter()
        .map(|x| format!("br{x}{id}"))
        .collect();
    let mut cfg = String::from("[engine]\nidle = \"backoff\"\n");
    for (k, name) in n.iter().enumerate() {
        let mode = if k == 3 {
            "vlan_mode = \"trunk\"\n"
        } else {
            ""
        };
        cfg += &format!("[[port]]\nname = \"{name}\"\nkind = \"veth\"\nnetns = \"{name}\"\nnetns_create = true\ncontainer_mac = \"02:50:47:20:00:0{k}\"\n{mode}");
    }
    cfg += &format!(
        "[[bridge]]\nname = \"red\"\nmembers = [{{ port = \"{}\" }}, {{ port = \"{}\" }}, {{ port = \"{}\" }}, {{ port = \"{}\", vid = 10 }}]\n",
        n[0], n[1], n[2], n[3]
    );
    // The trunk on a second worker: floods, unicast and learning cross
    // between workers.
    cfg += &format!(
        "[[worker]]\nports = [\"{}\", \"{}\", \"{}\"]\n[[worker]]\nports = [\"{}\"]\n",
        n[0], n[1], n[2], n[3]
    );
    let topo = config::parse("bridge.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let socks: Vec<PacketSocket> = n
        .iter()
        .map(|x| {
            NetNs::open(x)
                .unwrap()
                .run(|| PacketSocket::open("eth0"))
                .unwrap()
        })
        .collect();
    let mac = |k: u8| [2, 0x50, 0x47, 0x20, 0, k];
    // Reads what arrives at container `k` within a short while, ours only.
    let arrivals = |k: usize| {
        let mut buf = vec![0u8; 2048];
        let mut got = Vec::new();
        while let Some(len) = socks[k].recv(&mut buf, Duration::from_millis(300)).unwrap() {
            let f = &buf[..len];
            // Untagged or one 802.1Q tag, then our UDP marker.
            let off = if f[12..14] == [0x81, 0] { 4 } else { 0 };
            if f.len() >= 42 + off
                && f[23 + off] == 17
                && f[36 + off..38 + off] == MARK_PORT.to_be_bytes()
            {
                got.push(f.to_vec());
            }
        }
        got
    };
    let tag = |f: &[u8], tci: u16| {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0]);
        t.extend_from_slice(&tci.to_be_bytes());
        t.extend_from_slice(&f[12..]);
        t
    };

    // 1. A broadcasts: everyone else gets it, the trunk tagged VID 10.
    let bcast = frame(1, mac(0), [0xff; 6], 80);
    socks[0].send(&bcast).unwrap();
    assert_eq!(arrivals(1), vec![bcast.clone()]);
    assert_eq!(arrivals(2), vec![bcast.clone()]);
    assert_eq!(arrivals(3), vec![tag(&bcast, 10)]);
    assert!(arrivals(0).is_empty(), "never back out the ingress port");

    // 2. B answers A: A was learned, so only A gets it.
    let reply = frame(2, mac(1), mac(0), 90);
    socks[1].send(&reply).unwrap();
    assert_eq!(arrivals(0), vec![reply.clone()]);
    assert!(
        arrivals(2).is_empty() && arrivals(3).is_empty(),
        "a known unicast is not flooded"
    );

    // 3. The trunk sends VID 10 with PCP 5 to B: B gets it untagged.
    let from_trunk = frame(3, mac(3), mac(1), 100);
    socks[3].send(&tag(&from_trunk, 0xa00a)).unwrap();
    assert_eq!(arrivals(1), vec![from_trunk.clone()]);

    // 4. B answers the trunk host: tagged VID 10, learned on the trunk.
    let back = frame(4, mac(1), mac(3), 100);
    socks[1].send(&back).unwrap();
    assert_eq!(arrivals(3), vec![tag(&back, 10)]);

    // 5. VID 20 is not allowed on the trunk: counted, not forwarded.
    socks[3].send(&tag(&from_trunk, 20)).unwrap();
    assert!(arrivals(1).is_empty());

    let (table, _) = (engine.control.table(), 0u32);
    let entries = table.entries(None, 0);
    for k in [0u8, 1, 3] {
        assert!(
            entries.iter().any(|e| e.mac.0 == mac(k)),
            "MAC {k} learned: {entries:?}"
        );
    }
    drop(socks);
    let summary = engine.shutdown();
    assert_eq!(
        summary
            .drops()
            .get(pollgate_pipeline::DropReason::VlanNotAllowed),
        1,
        "{}",
        summary.render()
    );
    assert!(summary.frames_balanced(), "{}", summary.render());
}

/// Jumbo frames in a bridge: flooded (a chain cloned), tagged on a trunk
/// (the tag pushed into the first frame), handed to another worker (the
/// chain gathered into a ring slot and rebuilt in that worker's pool),
/// and refused, counted, by a port with a standard MTU.
#[test]
fn jumbo_frames_flood_tag_cross_workers_and_stop_at_a_standard_mtu() {
    if !root("jumbo-bridge") {
        return;
    }
    let id = std::process::id() % 10000;
    let n: Vec<String> = ["a", "t", "s"]
        .iter()
        .map(|x| format!("jb{x}{id}"))
        .collect();
    let mut cfg = String::from("[engine]\nidle = \"backoff\"\n");
    for (k, (mtu, mode)) in [(9000, ""), (9000, "vlan_mode = \"trunk\"\n"), (1500, "")]
        .iter()
        .enumerate()
    {
        cfg += &format!("[[port]]\nname = \"{0}\"\nkind = \"veth\"\nnetns = \"{0}\"\nnetns_create = true\nmtu = {mtu}\ncontainer_mac = \"02:50:47:40:00:0{k}\"\n{mode}", n[k]);
    }
    cfg += &format!(
        "[[bridge]]\nname = \"j\"\nmembers = [{{ port = \"{}\" }}, {{ port = \"{}\", vid = 10 }}, {{ port = \"{}\" }}]\n",
        n[0], n[1], n[2]
    );
    cfg += &format!(
        "[[worker]]\nports = [\"{}\", \"{}\"]\n[[worker]]\nports = [\"{}\"]\n",
        n[0], n[2], n[1]
    );
    let topo = config::parse("jumbo-bridge.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let socks: Vec<PacketSocket> = n
        .iter()
        .map(|x| {
            NetNs::open(x)
                .unwrap()
                .run(|| PacketSocket::open("eth0"))
                .unwrap()
        })
        .collect();
    let mac = |k: u8| [2, 0x50, 0x47, 0x40, 0, k];
    let arrivals = |k: usize| {
        let mut buf = vec![0u8; 10_000];
        let mut got = Vec::new();
        while let Some(len) = socks[k].recv(&mut buf, Duration::from_millis(300)).unwrap() {
            let f = &buf[..len];
            let off = if f[12..14] == [0x81, 0] { 4 } else { 0 };
            if f.len() >= 42 + off
                && f[23 + off] == 17
                && f[36 + off..38 + off] == MARK_PORT.to_be_bytes()
            {
                got.push(f.to_vec());
            }
        }
        got
    };
    let tag = |f: &[u8], tci: u16| {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0]);
        t.extend_from_slice(&tci.to_be_bytes());
        t.extend_from_slice(&f[12..]);
        t
    };
    let patterned = |i: u32, src, dst, size| {
        let mut f = frame(i, src, dst, size);
        for (k, byte) in f.iter_mut().enumerate().skip(46) {
            *byte = (k as u32 * 13 + i) as u8;
        }
        f
    };

    // 1. A floods a 9000-byte frame: the trunk (other worker) gets it
    //    tagged; the standard-MTU port cannot, and it is counted.
    let big = patterned(1, mac(0), [0xff; 6], 9000);
    socks[0].send(&big).unwrap();
    assert_eq!(arrivals(1), vec![tag(&big, 10)]);
    assert!(
        arrivals(2).is_empty(),
        "a jumbo frame never reaches MTU 1500"
    );

    // 2. A small flood still reaches both.
    let small = patterned(2, mac(0), [0xff; 6], 1000);
    socks[0].send(&small).unwrap();
    assert_eq!(arrivals(1), vec![tag(&small, 10)]);
    assert_eq!(arrivals(2), vec![small.clone()]);

    // 3. The trunk answers A with a tagged jumbo unicast (A was learned):
    //    A gets it untagged, byte for byte, across the workers.
    let back = patterned(3, mac(1), mac(0), 9014);
    socks[1].send(&tag(&back, 10)).unwrap();
    assert_eq!(arrivals(0), vec![back.clone()]);
    assert!(arrivals(2).is_empty(), "a known unicast is not flooded");

    drop(socks);
    let summary = engine.shutdown();
    assert_eq!(
        summary
            .drops()
            .get(pollgate_pipeline::DropReason::FrameTooBig),
        1,
        "{}",
        summary.render()
    );
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn vlans_separate_trunks_carry_both_qinq_carries_customer_vlans_and_macs_age() {
    if !root("vlans") {
        return;
    }
    let id = std::process::id() % 10000;
    let n: Vec<String> = ["a", "b", "c", "t", "p", "q"]
        .iter()
        .map(|x| format!("vl{x}{id}"))
        .collect();
    // a, b: access in VLAN 10; c: access in VLAN 20; t: trunk with 10 and
    // 20; p, q: QinQ ports of one service, S-VID 100.
    let ports = [
        ("a", "198.18.30.1/24", ""),
        ("b", "198.18.30.2/24", ""),
        ("c", "198.18.30.3/24", ""),
        ("t", "", "vlan_mode = \"trunk\"\n"),
        ("p", "", "vlan_mode = \"qinq\"\n"),
        ("q", "", "vlan_mode = \"qinq\"\n"),
    ];
    let mut cfg = String::from("[engine]\nidle = \"backoff\"\n[switch]\naging = 1\n");
    for (k, (_, addr, mode)) in ports.iter().enumerate() {
        let addr = if addr.is_empty() {
            String::new()
        } else {
            format!("address = \"{addr}\"\n")
        };
        cfg += &format!("[[port]]\nname = \"{0}\"\nkind = \"veth\"\nnetns = \"{0}\"\nnetns_create = true\ncontainer_mac = \"02:50:47:30:00:0{k}\"\n{addr}{mode}", n[k]);
    }
    cfg += &format!("[[bridge]]\nname = \"v10\"\nmembers = [{{ port = \"{}\" }}, {{ port = \"{}\" }}, {{ port = \"{}\", vid = 10 }}]\n", n[0], n[1], n[3]);
    cfg += &format!("[[bridge]]\nname = \"v20\"\nmembers = [{{ port = \"{}\" }}, {{ port = \"{}\", vid = 20 }}]\n", n[2], n[3]);
    cfg += &format!("[[bridge]]\nname = \"svc100\"\nmembers = [{{ port = \"{}\", svid = 100 }}, {{ port = \"{}\", svid = 100 }}]\n", n[4], n[5]);
    let topo = config::parse("vlans.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let ns: Vec<NetNs> = n.iter().map(|x| NetNs::open(x).unwrap()).collect();
    let stop = || false;
    let ping = |from: usize, to: [u8; 4]| {
        pollgate::demo::ping::ping(&ns[from], to.into(), 2, Duration::from_millis(100), &stop)
            .unwrap()
            .received
    };

    // Hosts in VLAN 10 reach each other; the host in VLAN 20 reaches neither.
    assert_eq!(ping(0, [198, 18, 30, 2]), 2, "a -> b in VLAN 10");
    assert_eq!(
        ping(2, [198, 18, 30, 1]),
        0,
        "c in VLAN 20 does not reach a"
    );
    assert_eq!(
        ping(2, [198, 18, 30, 2]),
        0,
        "c in VLAN 20 does not reach b"
    );

    // The trunk carries both VLANs, tagged.
    let sock_t = ns[3].run(|| PacketSocket::open("eth0")).unwrap();
    let sock_c = ns[2].run(|| PacketSocket::open("eth0")).unwrap();
    let sock_a = ns[0].run(|| PacketSocket::open("eth0")).unwrap();
    let bc = |k: u8| frame(k as u32, [2, 0x50, 0x47, 0x30, 0, k], [0xff; 6], 64);
    let on_trunk = |want_vid: u16, f: &[u8]| {
        let mut buf = vec![0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Some(len) = sock_t.recv(&mut buf, Duration::from_millis(200)).unwrap() {
                let g = &buf[..len];
                if len == f.len() + 4 && g[12..14] == [0x81, 0] && g[16..] == f[12..] {
                    return u16::from_be_bytes([g[14], g[15]]) & 0x0fff == want_vid;
                }
            }
        }
        false
    };
    let fa = bc(0);
    sock_a.send(&fa).unwrap();
    assert!(
        on_trunk(10, &fa),
        "VLAN 10 traffic reaches the trunk tagged 10"
    );
    let fc = bc(2);
    sock_c.send(&fc).unwrap();
    assert!(
        on_trunk(20, &fc),
        "VLAN 20 traffic reaches the trunk tagged 20"
    );

    // The QinQ service carries two customer VLANs inside S-VID 100.
    let sock_p = ns[4].run(|| PacketSocket::open("eth0")).unwrap();
    let sock_q = ns[5].run(|| PacketSocket::open("eth0")).unwrap();
    for cvid in [10u16, 20] {
        let inner = frame(
            cvid as u32,
            [2, 0x50, 0x47, 0x30, 0, 4],
            [2, 0x50, 0x47, 0x30, 0, 9],
            80,
        );
        let mut f = inner[..12].to_vec();
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 100, 0x81, 0x00]);
        f.extend_from_slice(&cvid.to_be_bytes());
        f.extend_from_slice(&inner[12..]);
        sock_p.send(&f).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut seen = false;
        let deadline = Instant::now() + Duration::from_secs(2);
        while !seen && Instant::now() < deadline {
            if let Some(len) = sock_q.recv(&mut buf, Duration::from_millis(200)).unwrap() {
                seen = buf[..len] == f[..];
            }
        }
        assert!(
            seen,
            "C-VLAN {cvid} crosses inside S-VID 100, both tags intact"
        );
    }

    // Learned entries age out (aging = 1 s). The QinQ sender went quiet
    // after its two frames; the hosts with IP stacks may still be talking
    // (c keeps asking ARP for hosts it cannot reach).
    let (table, _) = (engine.control.table(), 0u32);
    let quiet = pollgate_pipeline::wire::MacAddr([2, 0x50, 0x47, 0x30, 0, 4]);
    assert_eq!(table.lookup(2, quiet), Some(4), "learned on the QinQ port");
    std::thread::sleep(Duration::from_millis(3200));
    assert!(engine.age_macs() >= 1);
    assert_eq!(
        table.lookup(2, quiet),
        None,
        "aged out: {:?}",
        table.entries(None, 0)
    );
    drop((sock_a, sock_c, sock_t, sock_p, sock_q, ns));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn multi_queue_veth_with_two_workers_serves_every_queue() {
    if !root("multiqueue") {
        return;
    }
    let id = std::process::id() % 10000;
    let (a, b) = (format!("mqa{id}"), format!("mqb{id}"));
    let cfg = format!(
        "[engine]\nidle = \"backoff\"\n\
         [[port]]\nname = \"{a}\"\nkind = \"veth\"\nnetns = \"{a}\"\nnetns_create = true\nqueues = 2\naddress = \"198.18.40.1/24\"\n\
         [[port]]\nname = \"{b}\"\nkind = \"veth\"\nnetns = \"{b}\"\nnetns_create = true\nqueues = 2\naddress = \"198.18.40.2/24\"\n\
         [[xconnect]]\nports = [\"{a}\", \"{b}\"]\n\
         [[worker]]\nports = [\"{a}@0\", \"{b}@0\"]\n[[worker]]\nports = [\"{a}@1\", \"{b}@1\"]\n"
    );
    let topo = config::parse("mq.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    assert_eq!(engine.view().ports.len(), 4, "one socket per (port, queue)");
    // `show ports` says which worker serves which queue.
    let ports: serde_json::Value =
        serde_json::from_str(&engine.ctl_state(&topo).handle("show ports --json").unwrap())
            .unwrap();
    let served: Vec<(String, u64, u64)> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["afxdp"]["queue"].as_u64().unwrap(),
                p["worker"].as_u64().unwrap(),
            )
        })
        .collect();
    for (q, w) in [(0, 0), (1, 1)] {
        for dev in [&a, &b] {
            assert!(
                served.contains(&(format!("{dev}@{q}"), q, w)),
                "{dev} queue {q} on worker {w}: {served:?}"
            );
        }
    }
    let (na, nb) = (NetNs::open(&a).unwrap(), NetNs::open(&b).unwrap());
    let rx = nb
        .run(|| std::net::UdpSocket::bind("198.18.40.2:9000"))
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Count while sending: the socket's buffer would not hold them all.
    let counter = std::thread::spawn(move || {
        let mut got = 0;
        let mut buf = [0u8; 64];
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    // Many flows (source ports): the sending kernel spreads them over the
    // veth's two queues by flow hash.
    let senders: Vec<std::net::UdpSocket> = (0..32)
        .map(|_| {
            na.run(|| std::net::UdpSocket::bind("198.18.40.1:0"))
                .unwrap()
        })
        .collect();
    let per_flow = 50;
    let mut sent = 0;
    for round in 0..per_flow {
        for s in &senders {
            if s.send_to(&[round as u8; 32], "198.18.40.2:9000").is_ok() {
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = counter.join().unwrap();
    let rx_by_queue: Vec<u64> = engine
        .view()
        .ports
        .iter()
        .map(|p| p.counters.snapshot().rx_packets)
        .collect();
    eprintln!("sent {sent}, received {got}, per socket rx {rx_by_queue:?}");
    // The first datagrams may wait on ARP; all the rest must arrive.
    assert!(got + 10 >= sent, "sent {sent}, received {got}");
    // Ports 0 and 1 are a@0 and b@0; the sockets of queue 1 follow.
    let a_q1 = engine
        .view()
        .ports
        .iter()
        .find(|p| p.name == format!("{a}@1"))
        .unwrap()
        .counters
        .snapshot()
        .rx_packets;
    assert!(
        rx_by_queue[0] > 0 && a_q1 > 0,
        "both queues of {a} carried traffic: {rx_by_queue:?}"
    );
    drop((senders, na, nb));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
}

#[test]
fn the_bind_mode_and_unserved_queues_are_reported_and_zero_copy_refused_by_name() {
    if !root("mode-honesty") {
        return;
    }
    let dev = format!("pgh{}", std::process::id() % 100000);
    let peer = format!("{dev}p");
    let mut nl = Netlink::open().unwrap();
    nl.create_veth(&dev, &peer, None, 2).unwrap();
    for n in [&dev, &peer] {
        let l = nl.get_link(n).unwrap().unwrap();
        nl.set_link(l.index, Some(true), None, None).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("pollgate-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = |mode: &str| {
        format!("[engine]\nctl_socket = \"{}/ctl.sock\"\n[[port]]\nname = \"x\"\nkind = \"afxdp\"\niface = \"{dev}\"\nmode = \"{mode}\"\n[[port]]\nname = \"sink\"\nkind = \"null\"\n[[xconnect]]\nports = [\"x\", \"sink\"]\n", dir.display())
    };
    let path = dir.join("gw.toml");
    std::fs::write(&path, cfg("auto")).unwrap();
    let out = Command::new(pollgate_bin())
        .args([
            "run",
            "--config",
            path.to_str().unwrap(),
            "--duration",
            "0.3",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{dev} has 2 RX queues and pollgate serves 1")),
        "{err}"
    );
    assert!(err.contains("(driver veth): bound in copy mode"), "{err}");
    assert!(
        pollgate_pmd::ethtool::rx_vlan_offload(&dev).unwrap(),
        "RX VLAN offload is back on after a normal exit"
    );
    std::fs::write(&path, cfg("zero-copy")).unwrap();
    let out = Command::new(pollgate_bin())
        .args([
            "run",
            "--config",
            path.to_str().unwrap(),
            "--duration",
            "0.3",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("mode = \"zero-copy\" on {dev} (driver veth)")),
        "{err}"
    );
    assert!(
        nl.get_link(&dev).unwrap().unwrap().xdp_prog_id.is_none(),
        "nothing left attached after the refusal"
    );
    let l = nl.get_link(&dev).unwrap().unwrap();
    nl.delete_link(l.index).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stateful permit between two containers: A's requests open the way
/// for B's replies; B cannot start anything itself.
#[test]
fn stateful_acl_lets_replies_back_and_nothing_else() {
    if !root("stateful acl") {
        return;
    }
    let (a, b) = names("acl");
    let acls = format!(
        r#"
[[acl]]
name = "from-a"
default = "deny"
rules = ["permit proto=udp dport={MARK_PORT} stateful"]
[[acl]]
name = "from-b"
default = "deny"
"#
    );
    let mut cfg = veth_pair_config(&a, &b, "native", &acls);
    cfg = cfg.replacen(
        "address = \"198.18.9.1/24\"",
        "address = \"198.18.9.1/24\"\nacl_in = \"from-a\"",
        1,
    );
    cfg = cfg.replacen(
        "address = \"198.18.9.2/24\"",
        "address = \"198.18.9.2/24\"\nacl_in = \"from-b\"",
        1,
    );
    let topo = config::parse("acl.toml", &cfg).unwrap();
    let engine = Engine::start(&topo).expect("engine starts");
    let (na, nb) = (NetNs::open(&a).unwrap(), NetNs::open(&b).unwrap());
    let sa = na.run(|| PacketSocket::open("eth0")).unwrap();
    let sb = nb.run(|| PacketSocket::open("eth0")).unwrap();
    let (ma, mb) = ([2, 0x50, 0x47, 9, 0, 1], [2, 0x50, 0x47, 9, 0, 2]);
    // B → A, from `sport` to A's port 1024 + i.
    let reply = |i: u32, sport: u16| {
        udp4_frame(
            64,
            MacAddr(mb),
            MacAddr(ma),
            [198, 18, 9, 2],
            [198, 18, 9, 1],
            sport,
            1024 + i as u16,
            &i.to_be_bytes(),
        )
    };
    let from_b = |f: &[u8]| {
        f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 17 && f[26..30] == [198, 18, 9, 2]
    };
    let count = |sock: &PacketSocket, want: &dyn Fn(&[u8]) -> bool| {
        let mut buf = vec![0u8; 2048];
        let mut n = 0;
        while let Some(len) = sock.recv(&mut buf, Duration::from_millis(300)).unwrap() {
            n += want(&buf[..len]) as usize;
        }
        n
    };
    let send = |sock: &PacketSocket, frames: &[Vec<u8>]| {
        for f in frames {
            sock.send(f).unwrap();
            std::thread::sleep(Duration::from_micros(50));
        }
    };
    // 1. B starts: denied.
    let early: Vec<_> = (0..50).map(|i| reply(i, MARK_PORT)).collect();
    send(&sb, &early);
    assert_eq!(count(&sa, &from_b), 0, "B cannot open a flow");
    // 2. A's requests pass.
    let requests: Vec<_> = (0..50).map(|i| frame(i, ma, mb, 64)).collect();
    send(&sa, &requests);
    assert_eq!(
        count(&sb, &|f: &[u8]| is_ours(f)),
        50,
        "A's requests arrive"
    );
    // 3. B's replies to them pass; from another port they do not.
    let replies: Vec<_> = (0..50).map(|i| reply(i, MARK_PORT)).collect();
    let strays: Vec<_> = (0..50).map(|i| reply(i, MARK_PORT + 1)).collect();
    send(&sb, &replies);
    send(&sb, &strays);
    assert_eq!(count(&sa, &from_b), 50, "only the replies come back");
    drop((sa, sb, na, nb));
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
    let denied = summary.drops().get(pollgate_pipeline::DropReason::AclDeny);
    // The 100 frames from B that opened nothing, plus whatever the
    // containers' kernels sent on their own (IPv6 router solicitations…).
    assert!(denied >= 100, "acl_deny {denied}");
}

/// Without CAP_NET_ADMIN and CAP_NET_RAW (dropped from the bounding set
/// with setpriv, so even root lacks them) the engine refuses to start
/// with one message naming both, and creates nothing.
#[test]
fn missing_capabilities_are_named_in_one_message_before_anything_is_made() {
    if !root("capabilities") {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP capabilities: no setpriv (util-linux) to drop them");
        return;
    }
    let (a, b) = names("cap");
    let dir = std::env::temp_dir().join(format!("pollgate-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("veth.toml");
    std::fs::write(&cfg, veth_pair_config(&a, &b, "native", "")).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--bounding-set=-net_admin,-net_raw",
            "--",
            pollgate_bin(),
            "run",
            "--duration",
            "1",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("missing privileges"), "{err}");
    assert!(
        err.contains("CAP_NET_ADMIN") && err.contains("CAP_NET_RAW"),
        "{err}"
    );
    assert!(
        !err.contains("CAP_BPF or CAP_SYS_ADMIN"),
        "root keeps CAP_SYS_ADMIN: {err}"
    );
    assert_eq!(err.matches("Error:").count(), 1, "one message: {err}");
    assert_eq!(err.matches("CAP_NET_RAW").count(), 1, "said once: {err}");
    let mut nl = Netlink::open().unwrap();
    for n in [&a, &b] {
        assert!(nl.get_link(n).unwrap().is_none(), "{n} was not created");
        assert!(!NetNs::exists(n), "namespace {n} was not created");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `force = true` over another tool's program: pollgate replaces it, and
/// after `kill -9` the reaper removes pollgate's program (and only it).
#[test]
fn forced_takeover_is_reaped_after_kill_9() {
    if !root("force") {
        return;
    }
    use pollgate_pmd::afxdp::bpf;
    use std::os::fd::AsRawFd;
    let own = format!("pf{}", std::process::id() % 100000);
    let pair = common::HostVeth::new(&own);
    let idx = pair.index;
    let mut nl = Netlink::open().unwrap();
    // A device pollgate did not create: it turns RX VLAN offload off
    // while it serves it (a NIC would strip tags before XDP), and back on.
    use pollgate_pmd::ethtool::rx_vlan_offload;
    assert!(
        rx_vlan_offload(&own).unwrap(),
        "veth starts with rx-vlan on"
    );
    let foreign = bpf::load_pass_prog("other_tool").unwrap();
    let foreign_id = bpf::prog_id(&foreign).unwrap();
    nl.set_xdp(idx, foreign.as_raw_fd(), 1 << 1, None).unwrap();
    let dir = std::env::temp_dir().join(format!("pollgate-force-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gw.toml");
    let cfg = |force: bool| {
        format!(
            "[engine]\nidle = \"backoff\"\nctl_socket = \"{}\"\n[[port]]\nname = \"{own}\"\nkind = \"afxdp\"\niface = \"{own}\"\nxdp_mode = \"generic\"\nforce = {force}\n[[port]]\nname = \"null\"\nkind = \"null\"\n[[xconnect]]\nports = [\"{own}\", \"null\"]\n",
            dir.join("ctl.sock").display()
        )
    };
    // Without force: refused, naming the program.
    std::fs::write(&path, cfg(false)).unwrap();
    let out = Command::new(pollgate_bin())
        .args(["run", "--duration", "1", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("other_tool"), "{err}");
    assert!(rx_vlan_offload(&own).unwrap(), "restored after the refusal");
    // With force: replaced; then killed; the reaper removes ours.
    std::fs::write(&path, cfg(true)).unwrap();
    let mut child = Command::new(pollgate_bin())
        .args(["run", "--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("pollgate's program to replace the other", || {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!("pollgate exited ({status}): {err}");
        }
        nl.get_link(&own)
            .unwrap()
            .and_then(|l| l.xdp_prog_id)
            .is_some_and(|id| id != foreign_id)
    });
    assert!(
        !rx_vlan_offload(&own).unwrap(),
        "off while pollgate serves it"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the reaper to remove pollgate's program", || {
        nl.get_link(&own).unwrap().unwrap().xdp_prog_id.is_none()
    });
    wait_for("the reaper to turn RX VLAN offload back on", || {
        rx_vlan_offload(&own).unwrap()
    });
    let _ = std::fs::remove_dir_all(&dir);
}
