//! pollgate-cni (root): the CNI spec's commands driven by hand as a
//! runtime would (VERSION, ADD, CHECK, DEL twice, ADD with the engine
//! down, ADD onto an interface that exists), then podman 4 with its CNI
//! backend: containers on a pollgate network reach each other and a
//! container the TOML defines (ping, TCP with busybox nc), `podman rm`
//! detaches, a restarted engine serves the same containers again, and 20
//! containers started and removed leave nothing behind.

mod common;

use common::{ctl, netns_exists, root_with_ip, run_engine, stop};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A binary of the workspace, built beside the test binaries.
fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        p.exists(),
        "{} missing: tools/test.sh builds the workspace",
        p.display()
    );
    p
}

const CNI_DIR: &str = "/usr/lib/cni";

/// The reference plugins (host-local) and podman, or a printed reason;
/// under CI their absence fails (tools/test.sh installs them).
fn have(what: &[&str]) -> bool {
    let missing: Vec<&&str> = what.iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} missing under CI: tools/test.sh installs podman, runc, containernetworking-plugins, busybox-static"
    );
    eprintln!("SKIP: {missing:?} missing (tools/test.sh installs them)");
    false
}

struct Net {
    dir: PathBuf,
}

impl Net {
    /// A scratch directory with a CNI plugin directory (the reference
    /// plugins and pollgate-cni), a conflist for network `pgnet` on
    /// bridge br0 of the engine at `dir/ctl.sock`, and host-local's
    /// lease store.
    fn new(tag: &str) -> Net {
        Net::with(tag, "")
    }

    /// As `new`, with `extra` (`"key": value, …`) among the plugin's keys.
    fn with(tag: &str, extra: &str) -> Net {
        let dir = std::env::temp_dir().join(format!("pg-cni-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bin", "net.d", "ipam"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for e in std::fs::read_dir(CNI_DIR).unwrap().flatten() {
            let _ = std::os::unix::fs::symlink(e.path(), dir.join("bin").join(e.file_name()));
        }
        std::os::unix::fs::symlink(sibling("pollgate-cni"), dir.join("bin/pollgate-cni")).unwrap();
        std::fs::write(
            dir.join("net.d/pgnet.conflist"),
            Self::conflist(&dir, extra),
        )
        .unwrap();
        Net { dir }
    }

    fn plugin_conf(dir: &Path, extra: &str) -> String {
        format!(
            r#"{{"type": "pollgate-cni", "ctlSocket": "{}", "bridge": "br0", {extra}
  "ipam": {{"type": "host-local", "dataDir": "{}",
    "ranges": [[{{"subnet": "198.18.60.0/24", "rangeStart": "198.18.60.10", "rangeEnd": "198.18.60.99", "gateway": "198.18.60.1"}}]],
    "routes": [{{"dst": "198.19.0.0/16"}}]}}}}"#,
            dir.join("ctl.sock").display(),
            dir.join("ipam").display()
        )
    }

    fn conflist(dir: &Path, extra: &str) -> String {
        format!(
            "{{\"cniVersion\": \"1.0.0\", \"name\": \"pgnet\", \"plugins\": [{}]}}",
            Self::plugin_conf(dir, extra)
        )
    }

    /// One plugin invocation as a runtime makes it: (exit ok, stdout).
    fn invoke(
        &self,
        command: &str,
        id: &str,
        netns: &str,
        ifname: &str,
    ) -> (bool, serde_json::Value) {
        self.invoke_with(command, id, netns, ifname, "\"cniVersion\": \"1.0.0\"")
    }

    /// As `invoke`, with `head` (the version, and what else the runtime
    /// adds) at the start of the configuration.
    fn invoke_with(
        &self,
        command: &str,
        id: &str,
        netns: &str,
        ifname: &str,
        head: &str,
    ) -> (bool, serde_json::Value) {
        let conf = format!(
            "{{{head}, \"name\": \"pgnet\", {}",
            &Self::plugin_conf(&self.dir, "")[1..]
        );
        let mut child = Command::new(self.dir.join("bin/pollgate-cni"))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", self.dir.join("bin"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A plugin may answer without reading its configuration (VERSION
        // does): as Go's os/exec under libcni, a closed pipe is no error,
        // the exit status and stdout are the answer.
        let written = child.stdin.take().unwrap().write_all(conf.as_bytes());
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        let out = child.wait_with_output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.success(), v)
    }

    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("ipam/pgnet"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.starts_with("198."))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The two tests count pollgate-cni's devices on the host: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const TOML_CONTAINER: &str = r#"
[[port]]
name = "t"
kind = "veth"
netns = "pgcn-t"
netns_create = true
address = "198.18.60.200/24"
[[bridge]]
name = "br0"
members = [{ port = "t" }]
"#;

/// The engine's pollgate-cni ports (named `pgc…`).
fn pgc_ports(sock: &Path) -> usize {
    ctl(sock, "show ports")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("pgc"))
        .count()
}

fn pgc_links() -> usize {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(": pgc"))
        .count()
}

#[test]
fn the_spec_commands_as_a_runtime_drives_them() {
    if !root_with_ip("pollgate-cni spec") || !have(&["/usr/lib/cni/host-local"]) {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let net = Net::new("spec");
    // Removed however the test ends.
    let mut namespaces = common::Script::default();
    let mut netns_add = |n: &str| {
        let _ = Command::new("ip").args(["netns", "del", n]).status();
        common::ip(&["netns", "add", n]);
        namespaces.netns.push(n.to_string());
    };
    netns_add("pgcn-c1");
    let ns = "/run/netns/pgcn-c1";

    let (ok, v) = net.invoke("VERSION", "", "", "");
    assert!(ok, "{v}");
    let versions = v["supportedVersions"].to_string();
    assert!(
        versions.contains("1.0.0") && versions.contains("1.1.0"),
        "{v}"
    );

    // The engine is not running: a clear error, nothing left behind.
    let (ok, v) = net.invoke("ADD", "c1", ns, "eth0");
    assert!(!ok);
    assert_eq!(v["code"], 11, "try again later: {v}");
    assert!(
        v["details"].as_str().unwrap_or("").contains("not running"),
        "{v}"
    );
    assert_eq!(pgc_links(), 0);
    assert!(net.leases().is_empty(), "no address leased");

    let engine = run_engine(&net.dir, TOML_CONTAINER);
    let sock = net.dir.join("ctl.sock");
    let (ok, v) = net.invoke("ADD", "c1", ns, "eth0");
    assert!(ok, "{v}");
    assert_eq!(v["cniVersion"], "1.0.0");
    let ifs = v["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2, "{v}");
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], ns);
    assert!(ifs[1]["mac"].as_str().is_some_and(|m| m.len() == 17), "{v}");
    assert_eq!(v["ips"][0]["interface"], 1, "ips index interfaces: {v}");
    assert_eq!(v["ips"][0]["address"], "198.18.60.10/24");
    let host = ifs[0]["name"].as_str().unwrap().to_string();
    assert!(ctl(&sock, "show ports").unwrap().contains(&host));
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            "pgcn-c1",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "198.18.60.200",
        ])
        .status()
        .unwrap();
    assert!(ping.success(), "the container reaches the TOML's container");
    let route = Command::new("ip")
        .args(["-n", "pgcn-c1", "route", "show", "198.19.0.0/16"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("via 198.18.60.1"),
        "IPAM's route, through its gateway"
    );
    let (ok, v) = net.invoke("CHECK", "c1", ns, "eth0");
    assert!(ok, "{v}");

    // ADD again onto the same interface: refused, the first one intact.
    let (ok, v) = net.invoke("ADD", "c1-again", ns, "eth0");
    assert!(!ok);
    assert!(v["msg"].as_str().unwrap_or("").contains("exists"), "{v}");
    assert_eq!(net.leases().len(), 1, "the refused ADD leased nothing");

    // DEL, twice, and for a container that never was: all succeed.
    for id in ["c1", "c1", "never"] {
        let (ok, v) = net.invoke("DEL", id, ns, "eth0");
        assert!(ok, "DEL {id}: {v}");
    }
    assert!(!ctl(&sock, "show ports").unwrap().contains(&host));
    assert_eq!(pgc_links(), 0);
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    let (ok, _) = net.invoke("CHECK", "c1", ns, "eth0");
    assert!(!ok, "CHECK of a deleted attachment fails");

    // 1.1: STATUS says the engine is there; GC removes what the runtime
    // no longer lists (c2 here), and keeps what it does (c3).
    let v11 = "\"cniVersion\": \"1.1.0\"";
    let (ok, v) = net.invoke_with("STATUS", "", "", "", v11);
    assert!(ok, "{v}");
    netns_add("pgcn-c2");
    netns_add("pgcn-c3");
    for id in ["c2", "c3"] {
        let (ok, v) = net.invoke_with("ADD", id, &format!("/run/netns/pgcn-{id}"), "eth0", v11);
        assert!(ok, "{v}");
    }
    assert_eq!(pgc_links(), 2);
    let valid = format!(
        "{v11}, \"cni.dev/valid-attachments\": [{{\"containerID\": \"c3\", \"ifname\": \"eth0\"}}]"
    );
    let (ok, v) = net.invoke_with("GC", "", "", "", &valid);
    assert!(ok, "{v}");
    assert_eq!(pgc_links(), 1, "c2's pair collected, c3's kept");
    let (ok, v) = net.invoke_with("CHECK", "c3", "/run/netns/pgcn-c3", "eth0", v11);
    assert!(ok, "{v}");
    let (ok, _) = net.invoke_with("DEL", "c3", "/run/netns/pgcn-c3", "eth0", v11);
    assert!(ok);
    let _ = net.invoke_with("DEL", "c2", "/run/netns/pgcn-c2", "eth0", v11);
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    let summary = stop(engine);
    assert!(!summary.contains("LEAK"), "{summary}");
}

/// What the podman tests run: podman, its runtime, host-local IPAM and
/// the busybox the containers' root filesystem is made of.
const PODMAN_NEEDS: &[&str] = &[
    "/usr/bin/podman",
    "/usr/sbin/runc",
    "/usr/lib/cni/host-local",
    "/bin/busybox",
];

struct Podman {
    dir: PathBuf,
    rootfs: PathBuf,
}

impl Podman {
    fn new(net: &Net) -> Podman {
        let dir = net.dir.clone();
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n",
                dir.join("bin").display(),
                dir.join("net.d").display()
            ),
        )
        .unwrap();
        // An image-less container: Debian's busybox-static and its links.
        let rootfs = dir.join("rootfs");
        for d in ["bin", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in ["sh", "ping", "nc", "sleep", "cat", "ip"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        Podman { dir, rootfs }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--runtime", "runc", "--cgroup-manager=cgroupfs"]);
        c
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.cmd().args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// A container on network pgnet running `sleep`; its address.
    fn start(&self, name: &str) -> String {
        let (ok, out) = self.try_start(name, &[], &["sleep", "600"]);
        assert!(ok, "podman run {name}: {out}");
        self.address(name)
    }

    /// `podman run -d` on network pgnet with `extra` options (`-p …`)
    /// running `cmd`: (ok, podman's output).
    fn try_start(&self, name: &str, extra: &[&str], cmd: &[&str]) -> (bool, String) {
        let mut args = vec!["run", "-d", "--name", name, "--network", "pgnet"];
        args.extend(extra);
        args.extend([
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
            "--cap-add",
            "NET_RAW",
            "--rootfs",
            self.rootfs.to_str().unwrap(),
        ]);
        args.extend(cmd);
        self.run(&args)
    }

    fn address(&self, name: &str) -> String {
        let (ok, ip) = self.run(&[
            "inspect",
            name,
            "--format",
            "{{.NetworkSettings.Networks.pgnet.IPAddress}}",
        ]);
        assert!(ok, "{ip}");
        ip.trim().to_string()
    }

    fn rm(&self, name: &str) {
        let (ok, out) = self.run(&["rm", "-f", "-t", "0", name]);
        assert!(ok, "podman rm {name}: {out}");
    }

    fn exec(&self, name: &str, sh: &str) -> (bool, String) {
        self.run(&["exec", name, "sh", "-c", sh])
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-a", "-f", "-t", "0"]).output();
    }
}

#[test]
fn podman_containers_on_a_pollgate_network() {
    if !root_with_ip("podman on pollgate") || !have(PODMAN_NEEDS) {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let net = Net::new("podman");
    let pm = Podman::new(&net);
    let sock = net.dir.join("ctl.sock");
    let body = TOML_CONTAINER;
    let engine = run_engine(&net.dir, body);

    let ip1 = pm.start("pg1");
    let ip2 = pm.start("pg2");
    assert_ne!(ip1, ip2);
    let (ok, out) = pm.exec("pg1", &format!("ping -c 1 -W 2 {ip2}"));
    assert!(ok, "pg1 reaches pg2: {out}");
    let (ok, out) = pm.exec("pg1", "ping -c 1 -W 2 198.18.60.200");
    assert!(ok, "pg1 reaches the TOML's container: {out}");
    // TCP: busybox nc listens in pg2, pg1 sends a line.
    let (ok, out) = pm.run(&[
        "exec",
        "-d",
        "pg2",
        "sh",
        "-c",
        "nc -l -p 8080 > /tmp/pg2-got",
    ]);
    assert!(ok, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (ok, out) = pm.exec(
        "pg1",
        &format!("echo hello-over-pollgate | nc -w 2 {ip2} 8080"),
    );
    assert!(ok, "nc: {out}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, got) = pm.exec("pg2", "cat /tmp/pg2-got");
    assert!(got.contains("hello-over-pollgate"), "TCP payload: {got}");

    // podman rm detaches; podman run attaches again.
    let ports = pgc_ports;
    assert_eq!(ports(&sock), 2);
    pm.rm("pg1");
    assert_eq!(ports(&sock), 1);
    let ip1 = pm.start("pg1");
    let (ok, out) = pm.exec("pg2", &format!("ping -c 1 -W 2 {ip1}"));
    assert!(ok, "pg2 reaches the new pg1: {out}");

    // A restarted engine serves the same containers again (its journal).
    let summary = stop(engine);
    assert!(!summary.contains("LEAK"), "{summary}");
    let engine = run_engine(&net.dir, body);
    assert_eq!(ports(&sock), 2, "both containers attached again");
    let (ok, out) = pm.exec("pg1", &format!("ping -c 1 -W 2 {ip2}"));
    assert!(ok, "after the restart: {out}");

    // 20 containers come and go: nothing left behind.
    let before_links = pgc_links();
    let names: Vec<String> = (0..20).map(|i| format!("pgl{i}")).collect();
    for n in &names {
        pm.start(n);
    }
    assert_eq!(ports(&sock), 22);
    for n in &names {
        pm.rm(n);
    }
    assert_eq!(ports(&sock), 2, "every loop container detached");
    assert_eq!(pgc_links(), before_links, "no veth left");
    assert_eq!(
        net.leases().len(),
        2,
        "only pg1's and pg2's leases: {:?}",
        net.leases()
    );
    pm.rm("pg1");
    pm.rm("pg2");
    assert_eq!(ports(&sock), 0);
    assert!(net.leases().is_empty());
    let summary = stop(engine);
    assert!(!summary.contains("LEAK"), "{summary}");
    assert!(!netns_exists("pgcn-t"));
    drop(pm);
}

/// br0 routed to a server behind `wan`, masqueraded, for `-p`.
const TOML_PUBLISH: &str = r#"
[[port]]
name = "up"
kind = "veth"
netns = "pgcn-sv"
netns_create = true
address = "198.19.61.2/24"
[[bridge]]
name = "br0"
members = []
gateway = { addresses = ["198.18.60.1/24"] }
[[bridge]]
name = "wan"
members = [{ port = "up" }]
gateway = { addresses = ["198.19.61.1/24"] }
[[nat]]
out = "wan"
sources = ["198.18.60.0/24"]
"#;

/// `podman run -p`: the network declares the `portMappings` capability,
/// podman hands the plugin the mapping, and the engine's NAT publishes
/// the container's port on the uplink's address until `podman rm`. A
/// second container asking for the same port is refused, and leaves
/// nothing behind.
#[test]
fn podman_publishes_a_container_port_through_pollgate_nat() {
    if !root_with_ip("podman -p on pollgate") || !have(PODMAN_NEEDS) {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let net = Net::with(
        "publish",
        r#""natOut": "wan", "capabilities": {"portMappings": true},"#,
    );
    let pm = Podman::new(&net);
    let sock = net.dir.join("ctl.sock");
    let engine = run_engine(&net.dir, TOML_PUBLISH);

    let serve = [
        "sh",
        "-c",
        "while true; do echo from-$HOSTNAME | nc -l -p 8080; done",
    ];
    let (ok, out) = pm.try_start("pgweb", &["-p", "8080:8080", "--hostname", "pgweb"], &serve);
    assert!(ok, "podman run -p: {out}");
    let ip = pm.address("pgweb");
    let nat = ctl(&sock, "show nat").unwrap();
    assert!(
        nat.contains(&format!("publish tcp 198.19.61.1:8080 -> {ip}:8080")),
        "{nat}"
    );
    let fetch = || {
        common::sh(
            "pgcn-sv",
            "for i in 1 2 3 4 5; do busybox nc -w 2 198.19.61.1 8080 && exit 0; sleep 0.5; done; exit 1",
        )
    };
    let (ok, got) = fetch();
    assert!(
        ok && got.contains("from-pgweb"),
        "the server reaches the container at the uplink's address: {got}"
    );

    // CHECK, as a runtime sends it with the cached result: the mapping
    // is there; withdrawn behind the plugin's back, CHECK says so.
    let (ok, inspect) = pm.run(&[
        "inspect",
        "pgweb",
        "--format",
        "{{.Id}} {{.NetworkSettings.SandboxKey}}",
    ]);
    assert!(ok, "{inspect}");
    let (id, netns) = inspect.trim().split_once(' ').unwrap();
    let check = || {
        net.invoke_with(
            "CHECK",
            id,
            netns,
            "eth0",
            &format!(
                r#""cniVersion": "1.0.0", "runtimeConfig": {{"portMappings": [{{"hostPort": 8080, "containerPort": 8080}}]}},
  "prevResult": {{"cniVersion": "1.0.0", "interfaces": [{{"name": "pgcx"}}, {{"name": "eth0", "sandbox": "{netns}"}}],
    "ips": [{{"address": "{ip}/24", "interface": 1}}]}}"#
            ),
        )
    };
    let (ok, v) = check();
    assert!(ok, "CHECK with the port published: {v}");
    ctl(&sock, &format!("nat publish del tcp 8080 -> {ip}:8080")).unwrap();
    let (ok, v) = check();
    assert!(!ok && v["code"] == 105, "CHECK without it: {v}");
    ctl(&sock, &format!("nat publish add tcp 8080 -> {ip}:8080")).unwrap();

    // The same host port for another container: refused, nothing left.
    let ports = || pgc_ports(&sock);
    let (ok, out) = pm.try_start("pgdup", &["-p", "8080:8080"], &["sleep", "600"]);
    assert!(!ok, "a second -p 8080 must be refused: {out}");
    assert!(out.contains("twice"), "{out}");
    assert_eq!(ports(), 1, "the refused container's port is gone");
    assert_eq!(net.leases().len(), 1, "and its lease: {:?}", net.leases());
    let (ok, got) = fetch();
    assert!(ok && got.contains("from-pgweb"), "still pgweb's: {got}");
    let _ = pm.run(&["rm", "-f", "-t", "0", "pgdup"]);

    // The plugin's own rollback, with no DEL after it (podman sends one,
    // which would hide a leak): the refused ADD leaves no port, veth
    // pair or lease.
    let mut namespaces = common::Script::default();
    let _ = Command::new("ip").args(["netns", "del", "pgcn-x"]).status();
    common::ip(&["netns", "add", "pgcn-x"]);
    namespaces.netns.push("pgcn-x".into());
    let links = pgc_links();
    let add_in_x = |id: &str, host_port: u16| {
        net.invoke_with(
            "ADD",
            id,
            "/run/netns/pgcn-x",
            "eth0",
            &format!(
                r#""cniVersion": "1.0.0", "runtimeConfig": {{"portMappings": [{{"hostPort": {host_port}, "containerPort": 80, "protocol": "tcp"}}]}}"#
            ),
        )
    };
    let (ok, v) = add_in_x("x1", 8080);
    assert!(!ok, "{v}");
    assert!(v["details"].as_str().unwrap_or("").contains("twice"), "{v}");
    assert_eq!(ports(), 1);
    assert_eq!(pgc_links(), links, "no veth left");
    assert_eq!(net.leases().len(), 1, "no lease left: {:?}", net.leases());
    // The DEL a runtime sends after it, with no cached result, finds no
    // address: pgweb keeps its port.
    let del_uncached = |id: &str| {
        net.invoke_with(
            "DEL",
            id,
            "/run/netns/pgcn-x",
            "eth0",
            r#""cniVersion": "1.0.0", "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}, {"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]}"#,
        )
    };
    let (ok, v) = del_uncached("x1");
    assert!(ok, "{v}");
    let (ok, got) = fetch();
    assert!(ok && got.contains("from-pgweb"), "still pgweb's: {got}");
    // A DEL without the cached result for a container that has its
    // interface: the mapping goes with it (the container's address from
    // the interface).
    let (ok, v) = add_in_x("x2", 8081);
    assert!(ok, "{v}");
    assert!(ctl(&sock, "show nat")
        .unwrap()
        .contains("publish tcp 198.19.61.1:8081"));
    let (ok, v) = del_uncached("x2");
    assert!(ok, "{v}");
    let nat = ctl(&sock, "show nat").unwrap();
    assert!(
        !nat.contains(":8081"),
        "withdrawn without a cached result: {nat}"
    );
    assert!(
        nat.contains("publish tcp 198.19.61.1:8080"),
        "pgweb's stays: {nat}"
    );
    assert_eq!(ports(), 1);
    assert_eq!(pgc_links(), links, "no veth left");
    drop(namespaces);

    // A restarted engine publishes it again with the port (its journal).
    let summary = stop(engine);
    assert!(!summary.contains("LEAK"), "{summary}");
    let engine = run_engine(&net.dir, TOML_PUBLISH);
    assert_eq!(ports(), 1);
    let (ok, got) = fetch();
    assert!(ok && got.contains("from-pgweb"), "after the restart: {got}");

    pm.rm("pgweb");
    let nat = ctl(&sock, "show nat").unwrap();
    assert!(
        !nat.contains("publish"),
        "podman rm withdraws the port: {nat}"
    );
    assert_eq!(ports(), 0);
    let summary = stop(engine);
    assert!(!summary.contains("LEAK"), "{summary}");
    assert!(!netns_exists("pgcn-sv"));
    drop(pm);
}
