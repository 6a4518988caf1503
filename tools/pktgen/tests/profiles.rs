//! One traffic definition, three tools: the TRex profiles and pktgen-DPDK
//! scripts committed in tools/ are what the specs render to today, and
//! the TRex profiles build (on scapy, through tools/trex/emulator) the
//! very frames pollgate-pktgen sends.

use pollgate_pktgen::spec::Spec;
use pollgate_pktgen::{dump, pktgen_dpdk, trex};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn specs() -> Vec<(String, PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(tools().join("scenarios"))
        .expect("tools/scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    assert!(v.len() >= 5, "the scenarios are missing: {v:?}");
    v
}

#[test]
fn rendered_profiles_are_up_to_date() {
    for (name, path) in specs() {
        let spec = Spec::load(&path).unwrap();
        let source = format!("tools/scenarios/{name}.toml");
        for (dir, ext, text) in [
            ("trex", "py", trex::render(&spec, &source)),
            ("pktgen-dpdk", "pkt", pktgen_dpdk::render(&spec, &source)),
        ] {
            let file = tools().join(dir).join(format!("{name}.{ext}"));
            let committed = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                committed == text,
                "{} is stale: run tools/render-profiles.sh",
                file.display()
            );
        }
    }
}

/// A python with scapy: tools/test.sh makes one (target/py, scapy from
/// PyPI) and names it in POLLGATE_PYTHON.
fn python() -> Option<String> {
    let py = std::env::var("POLLGATE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import scapy"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "no scapy in {py} under CI: tools/test.sh installs it"
    );
    eprintln!(
        "SKIP TRex profile check: {py} has no scapy (run tools/test.sh, or set POLLGATE_PYTHON)"
    );
    None
}

#[test]
fn trex_profiles_build_the_generators_frames() {
    let Some(py) = python() else { return };
    let dir = std::env::temp_dir().join(format!("pg-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, path) in specs() {
        let spec = Spec::load(&path).unwrap();
        let pcap = dir.join(format!("{name}.pcap"));
        dump::write_pcap(&pcap, &dump::templates(&spec)).unwrap();
        let out = Command::new(&py)
            .arg(tools().join("trex/check_profile.py"))
            .arg(tools().join(format!("trex/{name}.py")))
            .arg(&pcap)
            .output()
            .expect("runs python");
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        let frames = spec.flows as usize * spec.sizes().len();
        assert!(said.contains(&format!("{frames} frames equal")), "{said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
