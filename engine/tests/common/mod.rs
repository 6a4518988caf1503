//! Helpers the engine's test files share.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use pollgate_pmd::pcap::{PcapReader, PcapWriter};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::create(path).unwrap();
    for f in frames {
        w.write(f).unwrap();
    }
    w.flush().unwrap();
}

/// Every frame of a capture; none if the file was never written.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(mut r) = PcapReader::open(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec.data);
    }
    out
}

/// Whether a namespace test can run: root, and `ip` (iproute2) for what
/// the test builds by hand; prints why it skips otherwise.
pub fn root_with_ip(test: &str) -> bool {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP {test}: needs root (namespaces, veth, XDP)");
        return false;
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIP {test}: no `ip` (iproute2)");
        return false;
    }
    true
}

/// Polls `f` every 50 ms for up to 10 s.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A python with scapy (the venv tools/test.sh makes and names in
/// POLLGATE_PYTHON), or `None` with a printed reason; under CI its
/// absence fails the test.
pub fn scapy_python() -> Option<String> {
    let py = std::env::var("POLLGATE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let have = std::process::Command::new(&py)
        .args(["-c", "import scapy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Some(py);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "scapy missing under CI: tools/test.sh installs it"
    );
    eprintln!("SKIP scapy check: {py} has no scapy (run tools/test.sh, or set POLLGATE_PYTHON)");
    None
}

/// `ip ARGS`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Linux kernel's VTEP in `underlay_ns`, whose eth0 holds
/// 198.18.100.2 facing pollgate's VTEP at 198.18.100.1: a `vxlan`
/// device for `vni` and a bridge to `host_ns` (already made), whose eth0
/// gets `host_addr` and VXLAN's MTU (1450: 50 bytes of it under 1500).
pub fn kernel_vtep(underlay_ns: &str, vni: u32, host_ns: &str, host_addr: &str) {
    let n = underlay_ns;
    let vni = vni.to_string();
    ip(&[
        "-n",
        n,
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni,
        "local",
        "198.18.100.2",
        "remote",
        "198.18.100.1",
        "dstport",
        "4789",
        "dev",
        "eth0",
    ]);
    ip(&["-n", n, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", n, "link", "set", "vx0", "master", "br0"]);
    ip(&[
        "-n", n, "link", "add", "kvc", "type", "veth", "peer", "name", "eth0", "netns", host_ns,
    ]);
    ip(&["-n", n, "link", "set", "kvc", "master", "br0"]);
    for dev in ["vx0", "kvc", "br0"] {
        ip(&["-n", n, "link", "set", dev, "up"]);
    }
    for args in [
        &["addr", "add", host_addr, "dev", "eth0"][..],
        &["link", "set", "eth0", "mtu", "1450"],
        &["link", "set", "eth0", "up"],
        &["link", "set", "lo", "up"],
    ] {
        ip(&[&["-n", host_ns][..], args].concat());
    }
}

/// Namespaces and host devices a script made; removed however the test
/// ends.
#[derive(Default)]
pub struct Script {
    pub netns: Vec<String>,
    pub devs: Vec<String>,
}

impl Script {
    /// Namespace `ns` with `eth0` at `addr`, the other end `dev` here:
    /// what `ip link add … type veth peer … netns` leaves, offloads on.
    pub fn container(&mut self, ns: &str, dev: &str, addr: &str) {
        ip(&["netns", "add", ns]);
        self.netns.push(ns.into());
        ip(&[
            "link",
            "add",
            dev,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "netns",
            ns,
        ]);
        self.devs.push(dev.into());
        ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["link", "set", dev, "up"]);
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        for d in &self.devs {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", d])
                .status();
        }
        for n in &self.netns {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

/// A veth pair in this namespace, both ends up, made as a script would:
/// `name` and `name` + "p"; deleted on drop.
pub struct HostVeth {
    pub index: u32,
}

impl HostVeth {
    pub fn new(name: &str) -> HostVeth {
        let mut nl = pollgate_pmd::netlink::Netlink::open().unwrap();
        nl.create_veth(name, &format!("{name}p"), None, 1).unwrap();
        let pair = HostVeth {
            index: nl.get_link(name).unwrap().unwrap().index,
        };
        for n in [name.to_string(), format!("{name}p")] {
            let l = nl.get_link(&n).unwrap().unwrap();
            nl.set_link(l.index, Some(true), None, None).unwrap();
        }
        pair
    }
}

impl Drop for HostVeth {
    fn drop(&mut self) {
        if let Ok(mut nl) = pollgate_pmd::netlink::Netlink::open() {
            let _ = nl.delete_link(self.index);
        }
    }
}

/// `pollgate run` as its own process (so that it can be killed with
/// SIGKILL), on `body` after an `[engine]` section whose control socket
/// is in `dir`; the config is written to `dir/gw.toml`.
pub fn pollgate_run(dir: &Path, body: &str) -> std::process::Child {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("gw.toml");
    let head = format!(
        "[engine]\nidle = \"backoff\"\nctl_socket = \"{}\"\n",
        dir.join("ctl.sock").display()
    );
    std::fs::write(&path, head + body).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_pollgate"))
        .args(["run", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub fn ctl(sock: &Path, line: &str) -> Result<String, String> {
    pollgate::ctl::request(sock, line)
}

/// pollgate-pktgen, built beside the test binaries by `cargo test
/// --workspace` (tools/test.sh).
pub fn pktgen() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join("pollgate-pktgen");
    assert!(
        p.exists(),
        "{} missing: cargo build -p pollgate-pktgen (tools/test.sh builds the workspace)",
        p.display()
    );
    p
}

/// A paced UDP flow from `tx_ns`'s eth0 to `rx_ns`'s, counted by
/// pollgate-pktgen; its JSON report when it ends.
pub fn paced_flow(
    dir: &Path,
    tx_ns: &str,
    rx_ns: &str,
    pps: u32,
    secs: f64,
) -> std::process::Child {
    let spec = dir.join("flow.toml");
    std::fs::write(
        &spec,
        "name = \"paced\"\nsrc_mac = \"02:00:00:00:40:01\"\ndst_mac = \"02:00:00:00:40:02\"\n\
         src_ip = \"198.18.40.1\"\ndst_ip = \"198.18.40.2\"\nproto = \"udp\"\nsport = 1024\ndport = 1025\n\
         flows = 1\nsize = 64\nrate = \"max\"\n",
    )
    .unwrap();
    Command::new(pktgen())
        .args([
            "run",
            spec.to_str().unwrap(),
            "--tx",
            "eth0",
            "--tx-ns",
            tx_ns,
        ])
        .args(["--rx", "eth0", "--rx-ns", rx_ns, "--ring", "2048", "--json"])
        // A generator spinning on one of two cores leaves pollgate's
        // worker to share the other with its control thread and the
        // kernel: `perf sched` saw the worker preempted for up to 52 ms
        // here, and a flow in CI stalled for 115 ms, longer than a
        // 2048-entry fill ring lasts at 20 kpps.
        .arg("--sleep-idle")
        .args(["--rate", &pps.to_string(), "--duration", &secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What the paced flow reports: (sent, received, lost, max latency ns).
pub fn flow_result(child: std::process::Child) -> (u64, u64, u64, u64) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "pktgen printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    (
        n("sent"),
        n("received"),
        n("lost"),
        v["latency"]["max_ns"].as_u64().unwrap_or(0),
    )
}

pub fn ping(ns: &str, to: &str) -> bool {
    (0..3).any(|_| {
        Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", to])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

pub fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Stops `pollgate run` with SIGINT and returns its summary; panics if
/// it failed (its exit status says whether the frames balanced).
pub fn stop(mut engine: Running) -> String {
    let child = engine.0.take().expect("running");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "pollgate failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A `pollgate run` process, stopped (SIGINT: it removes what it made)
/// however the test ends, so a failed test leaves no engine behind for
/// the next one to trip over.
pub struct Running(Option<std::process::Child>);

impl Running {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

/// `pollgate run` on `dir/gw.toml` (`head` then `body`), its output kept.
pub fn run_engine(dir: &Path, body: &str) -> Running {
    run_engine_on(dir, &(head(dir) + body))
}

/// `pollgate run` on `dir/gw.toml` holding `text`.
pub fn run_engine_on(dir: &Path, text: &str) -> Running {
    std::fs::write(dir.join("gw.toml"), text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pollgate"))
        .args(["run", "--config", dir.join("gw.toml").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let engine = Running(Some(child));
    let sock = dir.join("ctl.sock");
    wait_for("the control socket", || ctl(&sock, "show ports").is_ok());
    engine
}

pub fn head(dir: &Path) -> String {
    head_sized(dir, 512, 16384)
}

/// The `[engine]`, `[afxdp]` (every ring `ring` entries) and `[pool]`
/// sections of a test engine whose control socket is in `dir`. The paced
/// flows' tests take rings that hold a tenth of a second of their flow:
/// on two shared vCPUs a worker can be off its core for that long.
pub fn head_sized(dir: &Path, ring: u32, frames: u32) -> String {
    format!(
        "[engine]\nidle = \"backoff\"\nctl_socket = \"{}\"\n\
         [afxdp]\nrx_ring = {ring}\nfill_ring = {ring}\ntx_ring = {ring}\ncomp_ring = {ring}\n\
         [pool]\nframes = {frames}\n",
        dir.join("ctl.sock").display()
    )
}

/// A TCP stream of `n` bytes from `from` to a listener in `to` at `addr`,
/// echoed back: true when every byte came back as sent.
pub fn tcp_echo(
    from: &pollgate_pmd::netns::NetNs,
    to: &pollgate_pmd::netns::NetNs,
    addr: std::net::SocketAddr,
    n: usize,
) -> bool {
    let listener = to.run(move || std::net::TcpListener::bind(addr)).unwrap();
    // Accepting with a deadline: a handshake that never completes (bad
    // checksums) must fail the test, not hang it.
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        };
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let mut buf = vec![0u8; 65536];
        let mut left = n;
        while left > 0 {
            let k = s.read(&mut buf)?;
            if k == 0 {
                break;
            }
            s.write_all(&buf[..k])?;
            left -= k;
        }
        Ok(())
    });
    let sent: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
    let got = from
        .run(move || {
            let mut c =
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))?;
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            let w = c.try_clone()?;
            let data = sent.clone();
            let writer = std::thread::spawn(move || {
                let mut w = w;
                w.write_all(&data)
            });
            let mut back = vec![0u8; n];
            c.read_exact(&mut back)?;
            writer
                .join()
                .map_err(|_| std::io::Error::other("writer"))??;
            Ok(back == sent)
        })
        .unwrap_or(false);
    let _ = server.join();
    got
}

/// Runs `cmd` in namespace `ns` with sh: (success, stdout + stderr).
pub fn sh(ns: &str, cmd: &str) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
