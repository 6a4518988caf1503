//! The fuzz targets' corpora, replayed on stable: every input cargo-fuzz
//! kept (fuzz/corpus/TARGET/) and every crash it found and we fixed
//! (fuzz/regressions/TARGET/) goes through the same harness the libFuzzer
//! binaries run, so a fix stays fixed without nightly.

#[path = "../../fuzz/src/harness.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            f(&data);
            n += 1;
        }
    }
    assert!(
        n > 0,
        "no corpus for {target}: fuzz/corpus/{target}/ is empty"
    );
    eprintln!("{target}: {n} inputs replayed");
}

#[test]
fn parse_corpus() {
    replay("parse", harness::parse);
}

#[test]
fn pipeline_corpus() {
    replay("pipeline", harness::pipeline);
}

#[test]
fn config_corpus() {
    replay("config", harness::config);
}

#[test]
fn ctl_corpus() {
    replay("ctl", harness::ctl);
}
