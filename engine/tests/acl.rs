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
    std::thread::sleep(Duration::from_millis(200));
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
    std::thread::sleep(Duration::from_millis(100));
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
    assert!(through() > t0);

    let r = request(&sock, "acl del in0 0").unwrap();
    assert!(r.contains("deleted rule 0"), "{r}");
    std::thread::sleep(Duration::from_millis(50));
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
