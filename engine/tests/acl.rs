//! ACLs in a running engine: a deny counts, a rule added through
//! `pollgate ctl` changes forwarding at once, its hits show, deleting it
//! stops the traffic again; bad rules get errors, in the config and on
//! the socket. In memory: no privileges needed.

use pollgate::config;
use pollgate::ctl::{request, CtlServer};
use pollgate::Engine;
use std::sync::Arc;
use std::time::Duration;

const XC: &str = r#"
[engine]
idle = "backoff"
[[port]]
name = "null0"
kind = "null"
acl_in = "in0"
[[port]]
name = "null1"
kind = "null"
[[xconnect]]
ports = ["null0", "null1"]
[[acl]]
name = "in0"
default = "deny"
rules = ["permit proto=tcp dport=80"]
"#;

#[test]
fn runtime_rules_change_forwarding_at_once() {
    let dir = std::env::temp_dir().join(format!("pollgate-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let topo = config::parse("acl.toml", XC).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let state = Arc::new(engine.ctl_state(&topo));
    let _server = CtlServer::start(&sock, state.clone()).unwrap();
    let stats = || -> serde_json::Value {
        serde_json::from_str(&request(&sock, "show stats --json").unwrap()).unwrap()
    };
    // null1 transmits what null0 received and the ACL let through.
    let through = || stats()["ports"][1]["tx_packets"].as_u64().unwrap();
    assert!(
        eventually(|| stats()["ports"][0]["tx_packets"].as_u64().unwrap() > 0),
        "the other direction has no ACL"
    );
    // The null ports send UDP 1024 -> 1025: denied by default.
    assert_eq!(through(), 0);
    let s = stats();
    assert!(
        s["ports"][0]["tx_packets"].as_u64().unwrap() > 0,
        "the other direction has no ACL"
    );
    assert!(s["drops"]["acl_deny"].as_u64().unwrap() > 0, "{s}");

    let r = request(&sock, "acl add in0 at 0 permit proto=udp dport=1025").unwrap();
    assert!(r.contains("added as rule 0"), "{r}");
    // Applied at once over the compiled classifier; the whole list is
    // compiled in the background and swapped in.
    assert!(r.contains("applied in") && r.contains("+ 1 pending"), "{r}");
    assert!(
        eventually(|| {
            let acl: serde_json::Value =
                serde_json::from_str(&request(&sock, "show acl in0 --json").unwrap()).unwrap();
            let kind = acl["acls"][0]["classifier"]["ipv4"]
                .as_str()
                .unwrap()
                .to_string();
            !kind.contains("pending")
        }),
        "the background compile never landed"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while through() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = through();
    assert!(t0 > 0, "the new rule lets the UDP flow through");
    let acl: serde_json::Value =
        serde_json::from_str(&request(&sock, "show acl in0 --json").unwrap()).unwrap();
    let rules = &acl["acls"][0]["rules"];
    assert_eq!(rules[0]["rule"], "permit proto=udp dport=1025");
    assert!(rules[0]["packets"].as_u64().unwrap() > 0, "{acl}");
    assert_eq!(rules[1]["packets"].as_u64().unwrap(), 0);
    assert!(acl["acls"][0]["default_hits"]["packets"].as_u64().unwrap() > 0);
    let body = pollgate::metrics::render(&state);
    assert!(
        body.lines().any(|l| l
            .starts_with("pollgate_acl_rule_packets_total{acl=\"in0\",rule=\"0\"}")
            && !l.ends_with(" 0")),
        "{body}"
    );
    let text = request(&sock, "show acl").unwrap();
    assert!(
        text.contains("port null0 in") && text.contains("(default)"),
        "{text}"
    );

    // Garbage and bad rules get errors; the engine keeps forwarding.
    for bad in [
        "acl add in0 permit dport=70000",
        "acl add in0 frobnicate",
        "acl add nope permit",
        "acl del in0 9",
        "acl del in0 x",
        "show acl nope",
    ] {
        assert!(request(&sock, bad).is_err(), "{bad} should fail");
    }
    // Still forwarding (given a moment: two cores run the whole suite).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while through() <= t0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        through() > t0,
        "the engine keeps forwarding after bad requests"
    );

    let r = request(&sock, "acl del in0 0").unwrap();
    assert!(r.contains("deleted rule 0"), "{r}");
    // Let a batch judged by the old set before the swap drain out.
    std::thread::sleep(Duration::from_millis(300));
    let t1 = through();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(through(), t1, "nothing passes once the rule is gone");
    let summary = engine.shutdown();
    assert!(summary.frames_balanced(), "frames leaked");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_acl_config_names_file_line_and_field() {
    let bad = XC.replace(
        "rules = [\"permit proto=tcp dport=80\"]",
        "rules = [\n  \"permit proto=tcp\",\n  \"permit dport=99999\",\n]",
    );
    let e = config::parse("gw.toml", &bad).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.field.as_str()),
        ("gw.toml", "acl.rules[1]")
    );
    assert_eq!(e.line, 18, "{e}");
    assert!(e.message.contains("dport"), "{e}");
    let e = config::parse(
        "gw.toml",
        &XC.replace("acl_in = \"in0\"", "acl_in = \"in9\""),
    )
    .unwrap_err();
    assert_eq!(e.field, "port.acl_in");
    assert!(e.message.contains("in9"), "{e}");
}

/// `reload` of a changed ACL under traffic: applied at once, no packet
/// lost (no drop of any kind while the permitting rules change shape);
/// a change that needs a restart is refused and changes nothing.
#[test]
fn reload_applies_acl_changes_without_loss_and_refuses_restarts() {
    let dir = std::env::temp_dir().join(format!("pollgate-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sock, file) = (dir.join("ctl.sock"), dir.join("gw.toml"));
    let permit_all = XC.replace(
        "rules = [\"permit proto=tcp dport=80\"]",
        "rules = [\"permit proto=udp\"]",
    );
    std::fs::write(&file, &permit_all).unwrap();
    let topo = config::load(&file).unwrap();
    let engine = Engine::start(&topo).unwrap();
    let state = Arc::new(engine.ctl_state(&topo).with_reload(file.clone()));
    let _server = CtlServer::start(&sock, state.clone()).unwrap();
    let stats = || -> serde_json::Value {
        serde_json::from_str(&request(&sock, "show stats --json").unwrap()).unwrap()
    };
    let through = || stats()["ports"][1]["tx_packets"].as_u64().unwrap();
    let drops = || -> u64 {
        stats()["drops"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v.as_u64())
            .sum()
    };
    assert!(eventually(|| through() > 0));
    assert_eq!(
        request(&sock, "reload").unwrap(),
        "reload: nothing changed\n"
    );
    // Ten reloads under traffic, each with rules that still permit it.
    for i in 0..10 {
        let rules = format!(
            "rules = [\"deny proto=tcp dport={}\", \"permit proto=udp dport=1000-2000\", \"permit src=198.18.0.0/15\"]",
            100 + i
        );
        std::fs::write(
            &file,
            XC.replace("rules = [\"permit proto=tcp dport=80\"]", &rules),
        )
        .unwrap();
        let r = request(&sock, "reload").unwrap();
        assert!(
            r.starts_with("reload applied") && r.contains("acl in0 (3 rules)"),
            "{r}"
        );
    }
    assert_eq!(drops(), 0, "no packet lost across the reloads");
    let acl: serde_json::Value =
        serde_json::from_str(&request(&sock, "show acl --json").unwrap()).unwrap();
    assert!(
        acl["acls"][0]["rules"][1]["packets"].as_u64().unwrap() > 0,
        "{acl}"
    );

    // A restart-only change is refused, and nothing else in it applied.
    let denied = XC.replace("rules = [\"permit proto=tcp dport=80\"]", "rules = []");
    std::fs::write(
        &file,
        denied.replace("idle = \"backoff\"", "idle = \"backoff\"\nburst = 16"),
    )
    .unwrap();
    let e = request(&sock, "reload").unwrap_err();
    assert!(e.contains("restart") && e.contains("[engine]"), "{e}");
    std::fs::write(&file, format!("{denied}\n[conntrack]\nsize = 1024\n")).unwrap();
    let e = request(&sock, "reload").unwrap_err();
    assert!(e.contains("conntrack") && e.contains("restart"), "{e}");
    std::fs::write(&file, "[[port]]\nname = 7\n").unwrap();
    let e = request(&sock, "reload").unwrap_err();
    assert!(e.contains("gw.toml:2"), "{e}");
    assert_eq!(drops(), 0, "refused reloads changed nothing");

    // The deny-all version applies: the flow stops.
    std::fs::write(&file, &denied).unwrap();
    assert!(request(&sock, "reload")
        .unwrap()
        .contains("acl in0 (0 rules)"));
    // Let a batch judged by the old set before the swap drain out.
    std::thread::sleep(Duration::from_millis(300));
    let t = through();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(through(), t);
    assert!(engine.shutdown().frames_balanced());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `f` for up to 3 s: the suite runs on two cores, and a worker may
/// wait its turn.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !f() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
