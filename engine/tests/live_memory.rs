//! Live changes on in-memory ports (no root): a port moved between
//! workers keeps forwarding from its new worker, an ACL attached at run
//! time takes effect at once, and the frames balance at the end.

use pollgate::change;
use pollgate::config;
use pollgate::Engine;
use std::path::Path;
use std::time::{Duration, Instant};

const BASE: &str = r#"
[engine]
idle = "backoff"
[[port]]
name = "a"
kind = "null"
[[port]]
name = "b"
kind = "null"
[[bridge]]
name = "br0"
members = [{ port = "a" }, { port = "b" }]
[[acl]]
name = "closed"
default = "deny"
[[worker]]
ports = ["a"]
[[worker]]
ports = ["b"]
"#;

fn apply(engine: &Engine, src: &str) -> Result<String, String> {
    let current = engine.control.topology();
    let wanted = config::read("t.toml", src).map_err(|e| e.to_string())?;
    let desired = change::desired(wanted, &current, "t.toml", src, Path::new(""))
        .map_err(|e| e.to_string())?;
    engine.control.apply(desired).map_err(|e| e.to_string())
}

/// Packets port `name` sent during a tenth of a second.
fn tx_rate(engine: &Engine, name: &str) -> u64 {
    let count = || {
        let v = engine.view();
        v.ports
            .iter()
            .find(|p| p.name == name)
            .map_or(0, |p| p.counters.snapshot().tx_packets)
    };
    let t0 = count();
    std::thread::sleep(Duration::from_millis(100));
    count() - t0
}

#[test]
fn a_port_moves_between_workers_and_an_acl_attaches_while_they_forward() {
    let topo = config::parse("t.toml", BASE).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tx_rate(&engine, "b") == 0 {
        assert!(Instant::now() < deadline, "a's floods reach b");
    }
    let worker_of = |e: &Engine, n: &str| {
        e.view()
            .ports
            .iter()
            .find(|p| p.name == n)
            .map(|p| p.worker)
    };
    assert_eq!(worker_of(&engine, "b"), Some(1));

    // b moves to worker 0: new sockets (for a null port, a new port) on
    // the other worker; it goes on sending.
    let moved = BASE.replace(
        "[[worker]]\nports = [\"a\"]\n[[worker]]\nports = [\"b\"]",
        "[[worker]]\nports = [\"a\", \"b\"]\n[[worker]]\nports = []",
    );
    let r = apply(&engine, &moved).unwrap();
    assert!(r.contains("~1"), "{r}");
    assert_eq!(worker_of(&engine, "b"), Some(0));
    assert!(tx_rate(&engine, "b") > 0, "b forwards from worker 0");

    // An ACL attached at run time: a's traffic stops reaching b.
    let closed = moved.replace(
        "name = \"a\"\nkind = \"null\"",
        "name = \"a\"\nkind = \"null\"\nacl_in = \"closed\"",
    );
    apply(&engine, &closed).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(tx_rate(&engine, "b"), 0, "the ACL denies a's traffic");
    // And detached again.
    apply(&engine, &moved).unwrap();
    assert!(tx_rate(&engine, "b") > 0);

    // What a running engine cannot take is refused, naming the field.
    let e = apply(
        &engine,
        &moved.replace("name = \"closed\"", "name = \"shut\""),
    )
    .unwrap_err();
    assert!(e.starts_with("acl:"), "{e}");
    let e = apply(&engine, &format!("[pool]\nframe_size = 4096\n{moved}")).unwrap_err();
    assert!(e.starts_with("pool"), "{e}");

    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "{}", summary.render());
    let d = summary.drops();
    assert!(d.get(pollgate_pipeline::DropReason::AclDeny) > 0);
}
