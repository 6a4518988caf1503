//! The `ctl` verbs that change the topology: `port add|del`, `bridge
//! add|del`, `bridge member add|del`, `vxlan vni add|del`, `vxlan remote
//! add|del`, and `show topology` (the running topology as a config file).
//! Each edits a copy of the running config and hands it to the one change
//! model (`change::desired`, `Control::apply`), as `reload` does with the
//! file: a refused change names the field and changes nothing.
//!
//! Ports added here (containers, mostly, through `pollgate-cni`) are not in
//! the config file; their requests are kept in a journal beside the
//! control socket, so a `reload` keeps them and a restarted engine
//! attaches them again.

use crate::change;
use crate::config::{BridgeSection, Config, MemberSection, PortSection};
use crate::ctl::CtlState;
use std::path::{Path, PathBuf};

/// Answers a topology verb, or `None` when `words` is not one.
pub fn handle(state: &CtlState, words: &[&str], json: bool) -> Option<Result<String, String>> {
    let reply = match words {
        ["show", "topology"] => return Some(Ok(state.view().topo.to_toml())),
        ["port", "add", rest @ ..] if !rest.is_empty() => port_add(state, rest),
        ["port", "del", name] => port_del(state, name),
        ["bridge", "add", name, rest @ ..] => {
            let name = name.to_string();
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            change(state, move |c| {
                if c.bridge
                    .iter()
                    .any(|b| !b.vacant && *b.name.get_ref() == name)
                {
                    return Err(format!("bridge.name: {name:?} exists"));
                }
                let mut t = table(&rest.iter().map(String::as_str).collect::<Vec<_>>())?;
                t.insert("name".into(), name.clone().into());
                t.entry("members").or_insert(toml::Value::Array(Vec::new()));
                c.bridge.push(section::<BridgeSection>(&t, "bridge")?);
                Ok(())
            })
        }
        ["bridge", "del", name] => {
            let name = name.to_string();
            change(state, move |c| {
                let i = bridge_index(c, &name)?;
                c.bridge.remove(i);
                Ok(())
            })
        }
        ["bridge", "member", "add", bridge, port, rest @ ..] => {
            let (bridge, port) = (bridge.to_string(), port.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            change(state, move |c| {
                let i = bridge_index(c, &bridge)?;
                let mut t = table(&rest.iter().map(String::as_str).collect::<Vec<_>>())?;
                t.insert("port".into(), port.clone().into());
                let m = section::<MemberSection>(&t, "bridge.members")?;
                let mut members = c.bridge[i].members.get_ref().clone();
                members.push(m);
                c.bridge[i].members = toml::Spanned::new(0..0, members);
                Ok(())
            })
        }
        ["bridge", "member", "del", bridge, port] => {
            let (bridge, port) = (bridge.to_string(), port.to_string());
            change(state, move |c| {
                let i = bridge_index(c, &bridge)?;
                let mut members = c.bridge[i].members.get_ref().clone();
                let before = members.len();
                members.retain(|m| *m.port.get_ref() != port);
                if members.len() == before {
                    return Err(format!(
                        "bridge.members: {port:?} is not a member of {bridge:?}"
                    ));
                }
                c.bridge[i].members = toml::Spanned::new(0..0, members);
                Ok(())
            })
        }
        ["vxlan", "vni", "add", bridge, vni, rest @ ..] => {
            let (bridge, vni) = (bridge.to_string(), vni.to_string());
            let mut flood: Vec<String> = Vec::new();
            let mut evpn = false;
            for a in rest {
                if let Some(f) = a.strip_prefix("flood=") {
                    flood.extend(f.split(',').filter(|s| !s.is_empty()).map(str::to_string));
                } else if *a == "evpn" || *a == "evpn=true" {
                    evpn = true;
                } else {
                    return Some(Err(
                        "usage: vxlan vni add BRIDGE VNI [flood=IP,IP…] [evpn]".into()
                    ));
                }
            }
            change(state, move |c| {
                let i = bridge_index(c, &bridge)?;
                let v: u32 = vni
                    .parse()
                    .map_err(|_| format!("bridge.vni: {vni:?} is not a number"))?;
                c.bridge[i].vni = Some(toml::Spanned::new(0..0, v));
                c.bridge[i].evpn = evpn;
                c.bridge[i].flood = flood
                    .iter()
                    .map(|f| toml::Spanned::new(0..0, f.clone()))
                    .collect();
                Ok(())
            })
        }
        ["vxlan", "vni", "del", bridge] => {
            let bridge = bridge.to_string();
            change(state, move |c| {
                let i = bridge_index(c, &bridge)?;
                if c.bridge[i].vni.take().is_none() {
                    return Err(format!("bridge.vni: {bridge:?} has no VNI"));
                }
                c.bridge[i].flood.clear();
                c.bridge[i].evpn = false;
                Ok(())
            })
        }
        ["vxlan", "remote", op @ ("add" | "del"), bridge, ip] => {
            let (add, bridge, ip) = (*op == "add", bridge.to_string(), ip.to_string());
            change(state, move |c| {
                let i = bridge_index(c, &bridge)?;
                let b = &mut c.bridge[i];
                if b.vni.is_none() {
                    return Err(format!("bridge.vni: {bridge:?} has no VNI"));
                }
                let had = b.flood.iter().any(|f| *f.get_ref() == ip);
                match (add, had) {
                    (true, true) => {
                        return Err(format!(
                            "bridge.flood: {ip} is already in the flood list of {bridge:?}"
                        ))
                    }
                    (false, false) => {
                        return Err(format!(
                            "bridge.flood: {ip} is not in the flood list of {bridge:?}"
                        ))
                    }
                    (true, false) => b.flood.push(toml::Spanned::new(0..0, ip.clone())),
                    (false, true) => b.flood.retain(|f| *f.get_ref() != ip),
                }
                Ok(())
            })
        }
        _ => return None,
    };
    Some(reply.map(|msg| {
        if json {
            serde_json::json!({"result": msg.trim_end()}).to_string()
        } else {
            msg
        }
    }))
}

/// Applies `edit` to the running config, through the change model. One
/// change at a time: each edits what the one before it left.
pub(crate) fn change(
    state: &CtlState,
    edit: impl FnOnce(&mut Config) -> Result<(), String>,
) -> Result<String, String> {
    let _one = state.changing.lock().unwrap_or_else(|p| p.into_inner());
    let current = state.control.topology();
    let mut c = current.config.clone();
    edit(&mut c)?;
    let desired = change::desired(c, &current, "ctl", "", &state.base)
        .map_err(|e| format!("{}: {}", e.field, e.message))?;
    state.control.apply(desired).map_err(|e| e.to_string())
}

fn bridge_index(c: &Config, name: &str) -> Result<usize, String> {
    c.bridge
        .iter()
        .position(|b| !b.vacant && b.name.get_ref() == name)
        .ok_or_else(|| format!("bridge: no bridge named {name:?}"))
}

/// `key=value` words (or one inline table, `{ key = value, … }`) as a
/// TOML table. A value that is not TOML (a path, an address) is a string.
pub(crate) fn table(args: &[&str]) -> Result<toml::Table, String> {
    let joined = args.join(" ");
    if joined.trim_start().starts_with('{') {
        let t: toml::Table =
            toml::from_str(&format!("x = {joined}")).map_err(|e| format!("-: {}", e.message()))?;
        return match t.get("x") {
            Some(toml::Value::Table(t)) => Ok(t.clone()),
            _ => Err("-: expected an inline table { key = value, … }".into()),
        };
    }
    let mut t = toml::Table::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("-: {a:?}: expected key=value"))?;
        let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(v.to_string()));
        if t.insert(k.to_string(), value).is_some() {
            return Err(format!("{k}: given twice"));
        }
    }
    Ok(t)
}

/// A config section from a table, its errors naming `what.field`.
pub(crate) fn section<T: serde::de::DeserializeOwned>(
    t: &toml::Table,
    what: &str,
) -> Result<T, String> {
    let text = toml::to_string(t).map_err(|e| format!("{what}: {e}"))?;
    toml::from_str(&text).map_err(|e| {
        let m = e.message().to_string();
        match m.split('`').nth(1).filter(|_| m.contains("field")) {
            Some(f) => format!("{what}.{f}: {m}"),
            None => format!("{what}: {m}"),
        }
    })
}

/// What `port add` takes besides a `[[port]]` table's keys.
struct Attach {
    bridge: Option<String>,
    member: toml::Table,
    worker: Option<usize>,
}

/// Splits a `port add` request into the port's section and where it
/// attaches (`bridge=`, with `vid=`, `svid=`, `cvid=`, `ips=`; `worker=`).
fn parse_port_add(args: &[&str]) -> Result<(PortSection, Attach), String> {
    let mut t = table(args)?;
    let mut member = toml::Table::new();
    for k in ["vid", "svid", "cvid", "ips"] {
        if let Some(v) = t.remove(k) {
            member.insert(k.into(), v);
        }
    }
    let bridge = match t.remove("bridge") {
        Some(toml::Value::String(b)) => Some(b),
        Some(v) => return Err(format!("bridge: {v} is not a bridge name")),
        None => None,
    };
    if bridge.is_none() && !member.is_empty() {
        return Err("bridge: vid, svid, cvid and ips need bridge=NAME".into());
    }
    let worker = match t.remove("worker") {
        Some(toml::Value::Integer(w)) if w >= 0 => Some(w as usize),
        Some(v) => return Err(format!("worker: {v} is not a worker number")),
        None => None,
    };
    Ok((
        section::<PortSection>(&t, "port")?,
        Attach {
            bridge,
            member,
            worker,
        },
    ))
}

/// Adds a port (and its membership) to a config.
fn add_port(c: &mut Config, port: PortSection, at: Attach) -> Result<(), String> {
    let name = port.name.get_ref().clone();
    if c.ports.iter().any(|p| *p.name.get_ref() == name) {
        return Err(format!("port.name: {name:?} exists"));
    }
    if let Some(b) = &at.bridge {
        let i = bridge_index(c, b)?;
        let mut m = at.member.clone();
        m.insert("port".into(), name.clone().into());
        let m = section::<MemberSection>(&m, "bridge.members")?;
        let mut members = c.bridge[i].members.get_ref().clone();
        members.push(m);
        c.bridge[i].members = toml::Spanned::new(0..0, members);
    }
    if !c.workers.is_empty() {
        // The worker asked for, or the one serving the fewest ports.
        let w = match at.worker {
            Some(w) if w < c.workers.len() => w,
            Some(w) => {
                return Err(format!(
                    "worker: {w} is out of range: 0..{}",
                    c.workers.len()
                ))
            }
            None => (0..c.workers.len())
                .min_by_key(|&w| c.workers[w].ports.get_ref().len())
                .unwrap_or(0),
        };
        let mut list = c.workers[w].ports.get_ref().clone();
        list.push(toml::Spanned::new(0..0, name));
        c.workers[w].ports = toml::Spanned::new(0..0, list);
    } else if at.worker.is_some_and(|w| w > 0) {
        return Err("worker: this engine has one worker (0)".into());
    }
    c.ports.push(port);
    Ok(())
}

/// Removes a port and every reference to it that only names it: bridge
/// memberships, static MACs, worker lists. What else refers to it (the
/// VTEP's underlay, a shared uplink's parent) makes the change refused.
fn remove_port(c: &mut Config, name: &str) -> Result<(), String> {
    let before = c.ports.len();
    c.ports.retain(|p| p.name.get_ref() != name);
    if c.ports.len() == before {
        return Err(format!("port: no port named {name:?}"));
    }
    for b in &mut c.bridge {
        let members: Vec<MemberSection> = b
            .members
            .get_ref()
            .iter()
            .filter(|m| m.port.get_ref() != name)
            .cloned()
            .collect();
        b.members = toml::Spanned::new(b.members.span(), members);
        b.static_macs.retain(|s| s.port.get_ref() != name);
    }
    for w in &mut c.workers {
        let list: Vec<toml::Spanned<String>> = w
            .ports
            .get_ref()
            .iter()
            .filter(|p| {
                let p = p.get_ref();
                p != name && !p.strip_prefix(name).is_some_and(|q| q.starts_with('@'))
            })
            .cloned()
            .collect();
        w.ports = toml::Spanned::new(w.ports.span(), list);
    }
    Ok(())
}

fn port_add(state: &CtlState, args: &[&str]) -> Result<String, String> {
    let (port, at) = parse_port_add(args)?;
    let name = port.name.get_ref().clone();
    let done = change(state, |c| add_port(c, port, at))?;
    state.remember(&name, Some(&format!("port add {}", args.join(" "))));
    Ok(done)
}

fn port_del(state: &CtlState, name: &str) -> Result<String, String> {
    let done = change(state, |c| remove_port(c, name))?;
    state.remember(name, None);
    Ok(done)
}

/// Adds the ports attached at run time to `config` (a file being
/// reloaded), unless the file now defines them itself; returns how many.
pub fn with_runtime_ports(state: &CtlState, config: &mut Config) -> usize {
    let mut kept = 0;
    for (name, line) in state.runtime() {
        if !line.starts_with("port add ") {
            continue;
        }
        if config.ports.iter().any(|p| *p.name.get_ref() == name) {
            state.remember(&name, None);
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(2).collect();
        let added = parse_port_add(&words).and_then(|(p, at)| add_port(config, p, at));
        match added {
            Ok(()) => kept += 1,
            Err(e) => tracing::warn!(port = %name, "not kept across the reload: {e}"),
        }
    }
    // After the ports: a container's published port is kept with it.
    crate::l3_ctl::with_runtime_publishes(state, config);
    kept
}

/// The journal of run-time ports beside the control socket.
pub fn journal_path(ctl_socket: &Path) -> PathBuf {
    let mut p = ctl_socket.as_os_str().to_owned();
    p.push(".ports");
    PathBuf::from(p)
}

/// Attaches again the ports a previous run of the engine attached at run
/// time (its journal); a port whose container has gone is dropped from
/// the journal, logged.
pub fn resume(state: &CtlState) -> usize {
    let Some(path) = &state.journal else {
        return 0;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let mut n = 0;
    for line in text.lines().filter(|l| l.starts_with("port add ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match port_add(state, &words[2..]) {
            Ok(_) => n += 1,
            Err(e) => tracing::warn!("not attached again: {line}: {e}"),
        }
    }
    // Then the ports published to them.
    for line in text
        .lines()
        .filter(|l| l.starts_with(crate::l3_ctl::PUBLISH_ADD))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(Err(e)) = crate::l3_ctl::handle(state, &words, false) {
            tracing::warn!("not published again: {line}: {e}");
        }
    }
    // What failed is gone from the journal now.
    state.save_journal();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_words_become_typed_toml() {
        let t = table(&[
            "name=c1",
            "kind=veth",
            "netns=/proc/1/ns/net",
            "queues=2",
            "address=198.18.0.2/24",
        ])
        .unwrap();
        assert_eq!(t["queues"].as_integer(), Some(2));
        assert_eq!(t["netns"].as_str(), Some("/proc/1/ns/net"));
        assert_eq!(t["address"].as_str(), Some("198.18.0.2/24"));
        let t = table(&["{", "name", "=", "\"c2\",", "kind", "=", "\"tap\"", "}"]).unwrap();
        assert_eq!(t["kind"].as_str(), Some("tap"));
        assert!(table(&["name"]).unwrap_err().contains("key=value"));
    }

    #[test]
    fn port_add_takes_its_bridge_and_vlan_apart_and_names_bad_fields() {
        let (p, at) =
            parse_port_add(&["name=c1", "kind=veth", "netns=c1", "bridge=br0", "vid=10"]).unwrap();
        assert_eq!(p.name.get_ref(), "c1");
        assert_eq!(at.bridge.as_deref(), Some("br0"));
        assert_eq!(at.member["vid"].as_integer(), Some(10));
        let e = parse_port_add(&["name=c1", "kind=veth", "netnss=c1"])
            .err()
            .unwrap();
        assert!(e.starts_with("port.netnss:"), "{e}");
        let e = parse_port_add(&["name=c1", "kind=vet"]).err().unwrap();
        assert!(e.starts_with("port"), "{e}");
        let e = parse_port_add(&["name=c1", "kind=veth", "vid=3"])
            .err()
            .unwrap();
        assert!(e.starts_with("bridge:"), "{e}");
    }

    #[test]
    fn removing_a_port_removes_what_only_names_it() {
        let src = r#"
[[port]]
name = "a"
kind = "null"
[[port]]
name = "b"
kind = "null"
[[bridge]]
name = "br0"
members = [{ port = "a" }, { port = "b" }]
static_macs = [{ mac = "02:00:00:00:00:99", port = "b" }]
[[worker]]
ports = ["a", "b"]
"#;
        let mut c = crate::config::read("t.toml", src).unwrap();
        remove_port(&mut c, "b").unwrap();
        assert_eq!(c.bridge[0].members.get_ref().len(), 1);
        assert!(c.bridge[0].static_macs.is_empty());
        assert_eq!(c.workers[0].ports.get_ref().len(), 1);
        crate::config::validate_config("t", src, Path::new(""), c).unwrap();
    }
}
