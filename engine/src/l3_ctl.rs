//! The `ctl` verbs that change the router's and NAT's config while the
//! engine runs, as `ip address`, VPP's `set interface ip address` and
//! `nat44 add static mapping`, and Docker's `-p` at a container's start
//! do: `address add|del`, `nat add|del`, `nat publish add|del`. Each
//! edits a copy of the running config and goes through the one change
//! model, as `reload` and the topology verbs do (`topology_ctl::change`):
//! a refused change names the field and changes nothing. As with `bridge
//! add`, a `reload` makes the config what the file says again.

use crate::config::{Config, GatewaySection, NatSection};
use crate::ctl::CtlState;
use crate::topology_ctl::{change, section, table};
use pollgate_pipeline::l3::Prefix;
use pollgate_pipeline::nat::rules::{parse_inside, parse_public};
use std::net::Ipv4Addr;

const ADDRESS_USAGE: &str = "usage: address add|del BRIDGE|PORT ADDRESS/LENGTH";
const NAT_USAGE: &str = "usage: nat add KEY=VALUE… (a [[nat]] table: out=, sources=, address=, pool=, ports=, per_source=, publish=) | nat del OUT | nat publish add [out=OUT] PROTO [ADDRESS:]PORT -> ADDRESS:PORT | nat publish del [out=OUT] PROTO [ADDRESS:]PORT [-> ADDRESS:PORT]";

/// Answers an address or NAT verb, or `None` when `words` is not one.
pub fn handle(state: &CtlState, words: &[&str], json: bool) -> Option<Result<String, String>> {
    let reply = match words {
        ["address", op @ ("add" | "del"), name, addr] => {
            let add = *op == "add";
            noted(state, |c| {
                let gone = edit_address(c, add, name, addr)?;
                let done = if add { "added to" } else { "deleted from" };
                Ok(format!("address {addr} {done} {name}\n{gone}"))
            })
        }
        ["address", ..] => Err(ADDRESS_USAGE.into()),
        ["nat", "publish", op @ ("add" | "del"), rest @ ..] if !rest.is_empty() => {
            let add = *op == "add";
            let done = noted(state, |c| edit_publish(c, add, rest));
            if done.is_ok() {
                remember_publish(state, add, rest);
            }
            done
        }
        ["nat", "add", rest @ ..] if !rest.is_empty() => noted(state, |c| {
            let t = table(rest)?;
            let n = section::<NatSection>(&t, "nat")?;
            let out = n.out.get_ref().clone();
            c.nat.push(n);
            Ok(format!("nat out {out} added\n"))
        }),
        ["nat", "del", out] => noted(state, |c| {
            let before = c.nat.len();
            c.nat.retain(|n| n.out.get_ref() != out);
            match before - c.nat.len() {
                0 => Err(format!("nat.out: no [[nat]] rule leaves through {out:?}")),
                k => Ok(format!("{k} nat rule(s) out {out} deleted\n")),
            }
        }),
        ["nat", "add" | "del" | "publish", ..] => Err(NAT_USAGE.into()),
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

/// `change` with an edit that says what it did: its words, then what the
/// change model did.
fn noted(
    state: &CtlState,
    edit: impl FnOnce(&mut Config) -> Result<String, String>,
) -> Result<String, String> {
    let mut said = String::new();
    let applied = change(state, |c| {
        said = edit(c)?;
        Ok(())
    })?;
    Ok(said + &applied)
}

/// Adds `addr` to (or deletes it from) the gateway of bridge `name`, or
/// of the routed port of that name. A bridge's first address makes its
/// gateway; deleting the last removes it, as the interface then has
/// nothing to route with.
fn edit_address(c: &mut Config, add: bool, name: &str, addr: &str) -> Result<String, String> {
    addr.parse::<Prefix>()
        .map_err(|e| format!("bridge.gateway.addresses: {e}"))?;
    // The address itself, not its subnet: 198.18.1.1/24 and
    // 198.18.1.2/24 are two addresses.
    let same = |s: &str| {
        s.split_once('/')
            .and_then(|(a, l)| Some((a.parse::<std::net::IpAddr>().ok()?, l.parse::<u8>().ok()?)))
            == addr
                .split_once('/')
                .and_then(|(a, l)| Some((a.parse().ok()?, l.parse().ok()?)))
    };
    let gateway = if let Some(b) = c
        .bridge
        .iter_mut()
        .find(|b| !b.vacant && b.name.get_ref() == name)
    {
        &mut b.gateway
    } else if let Some(p) = c.ports.iter_mut().find(|p| p.name.get_ref() == name) {
        &mut p.gateway
    } else {
        return Err(format!("bridge: no bridge or port named {name:?}"));
    };
    let mut list: Vec<_> = gateway
        .as_ref()
        .map(|g| g.addresses.get_ref().clone())
        .unwrap_or_default();
    let had = list.iter().any(|a| same(a.get_ref()));
    match (add, had) {
        (true, true) => {
            return Err(format!(
                "bridge.gateway.addresses: {addr} is already on {name:?}"
            ))
        }
        (false, false) => {
            return Err(format!(
                "bridge.gateway.addresses: {addr} is not on {name:?}"
            ))
        }
        // As given, host bits and all: the interface's own address.
        (true, false) => list.push(toml::Spanned::new(0..0, addr.to_string())),
        (false, true) => list.retain(|a| !same(a.get_ref())),
    }
    let first_v4 = |l: &[toml::Spanned<String>]| {
        l.iter()
            .filter_map(|a| a.get_ref().split('/').next()?.parse::<Ipv4Addr>().ok())
            .next()
    };
    let nat_moves = {
        let before = gateway.as_ref().map(|g| first_v4(g.addresses.get_ref()));
        (before.flatten(), first_v4(&list))
    };
    let gone = list.is_empty();
    match gateway {
        _ if gone => *gateway = None,
        Some(g) => g.addresses = toml::Spanned::new(0..0, list),
        None => {
            *gateway = Some(GatewaySection {
                addresses: toml::Spanned::new(0..0, list),
                mac: None,
                mtu: None,
                neighbors: Vec::new(),
            })
        }
    }
    let mut said = if gone {
        format!("{name} has no address left: its gateway is removed\n")
    } else {
        String::new()
    };
    // A `[[nat]]` rule with no address of its own takes `out`'s first
    // IPv4 one: deleting that moves the rule's sessions' address, and
    // they end, which a user would not guess from `address del`.
    let defaulted = c
        .nat
        .iter()
        .any(|n| n.out.get_ref() == name && n.address.is_none() && n.pool.is_empty());
    if let (true, (Some(was), Some(now))) = (defaulted, nat_moves) {
        if was != now {
            said += &format!(
                "NAT out of {name} now translates to {now}, not {was}: sessions on {was} end\n"
            );
        }
    }
    Ok(said)
}

/// Keeps a published port in the journal of what was attached at run
/// time (`CtlState::remember`), beside the containers' ports it is for:
/// a `reload` keeps it (`with_runtime_publishes`), a restarted engine
/// publishes it again (`topology_ctl::resume`). A withdrawal forgets
/// every kept rule it matches.
fn remember_publish(state: &CtlState, add: bool, words: &[&str]) {
    let rule = words.join(" ");
    if add {
        state.remember(
            &format!("publish {rule}"),
            Some(&format!("{PUBLISH_ADD}{rule}")),
        );
        return;
    }
    let Ok(want) = Withdrawal::parse(without_out(&rule)) else {
        return;
    };
    state.forget_where(|line| {
        line.strip_prefix(PUBLISH_ADD)
            .is_some_and(|kept| want.matches(without_out(kept), false))
    });
}

/// How a kept publish rule starts in the journal.
pub(crate) const PUBLISH_ADD: &str = "nat publish add ";

/// A rule's text without its leading `out=BRIDGE`.
fn without_out(rule: &str) -> &str {
    match rule.split_once(' ') {
        Some((w, rest)) if w.starts_with("out=") => rest,
        _ => rule,
    }
}

/// Adds the ports published at run time to `config` (a file being
/// reloaded), unless the file now publishes the same port itself.
pub(crate) fn with_runtime_publishes(state: &CtlState, config: &mut Config) {
    for (key, line) in state.runtime() {
        let Some(rule) = line.strip_prefix(PUBLISH_ADD) else {
            continue;
        };
        let words: Vec<&str> = rule.split_whitespace().collect();
        let in_file = Withdrawal::parse(without_out(rule)).is_ok_and(|w| {
            let public = Withdrawal { inside: None, ..w };
            config
                .nat
                .iter()
                .flat_map(|n| &n.publish)
                .any(|p| public.matches(p.get_ref(), true))
        });
        if in_file {
            state.remember(&key, None);
        } else if let Err(e) = edit_publish(config, true, &words) {
            tracing::warn!(rule, "not kept across the reload: {e}");
        }
    }
}

/// `nat publish add|del [out=OUT] RULE`: the rule goes into (or out of)
/// the `[[nat]]` rule leaving through OUT, which may go unsaid when there
/// is one.
fn edit_publish(c: &mut Config, add: bool, words: &[&str]) -> Result<String, String> {
    let (out, words) = match words.split_first() {
        Some((w, rest)) if w.starts_with("out=") => (Some(&w[4..]), rest),
        _ => (None, words),
    };
    let at: Vec<usize> = (0..c.nat.len())
        .filter(|&i| out.is_none_or(|o| c.nat[i].out.get_ref() == o))
        .collect();
    match (at.first(), out) {
        (None, Some(o)) => return Err(format!("nat.out: no [[nat]] rule leaves through {o:?}")),
        (None, None) => {
            return Err("nat: there is no [[nat]] rule: `nat add out=BRIDGE` first".into())
        }
        _ => {}
    }
    let text = words.join(" ");
    if add {
        // Several rules may leave through one bridge (each its sources
        // and pool): a published port goes with the first, as the
        // file's order gives its address. Rules through several bridges
        // need the one named.
        if at.iter().any(|&i| c.nat[i].out != c.nat[at[0]].out) {
            return Err(
                "nat.out: [[nat]] rules leave through several bridges: say which with out=BRIDGE"
                    .into(),
            );
        }
        // Parsed and checked (the address on `out`, twice published)
        // by the change model, with the rest of the config.
        c.nat[at[0]]
            .publish
            .push(toml::Spanned::new(0..0, text.clone()));
        return Ok(format!("published {text}\n"));
    }
    let want = Withdrawal::parse(&text)?;
    let mut gone = 0;
    for i in at {
        let publish = &mut c.nat[i].publish;
        let before = publish.len();
        publish.retain(|p| !want.matches(p.get_ref(), false));
        gone += before - publish.len();
    }
    match gone {
        0 => Err(format!("nat.publish: nothing published as {text}")),
        _ => Ok(format!("unpublished {text}\n")),
    }
}

/// What `nat publish del` names: `PROTO [ADDRESS:]PORT`, and optionally
/// `-> ADDRESS:PORT`; then only a rule to that inside host goes
/// (pollgate-cni withdraws a container's own mapping, never another's of
/// the same port).
#[derive(Clone, Copy)]
struct Withdrawal {
    public: (u8, Option<[u8; 4]>, u16),
    inside: Option<([u8; 4], u16)>,
}

impl Withdrawal {
    /// Parsed as the config's rules are (`nat::rules::parse_public`,
    /// `parse_inside`), the inside side optional.
    fn parse(text: &str) -> Result<Withdrawal, String> {
        let (public, inside) = match text.split_once("->") {
            Some((p, i)) => (p, Some(i)),
            None => (text, None),
        };
        let inside = inside
            .map(parse_inside)
            .transpose()
            .map_err(|_| format!("nat.publish: {text:?}: want ADDRESS:PORT after ->"))?;
        let public = parse_public(public).map_err(|_| {
            format!("nat.publish: {public:?}: want PROTO [ADDRESS:]PORT, e.g. tcp 8080")
        })?;
        Ok(Withdrawal { public, inside })
    }

    /// Whether publish rule `rule` (`PROTO [ADDRESS:]PORT -> ADDRESS:PORT`)
    /// is one this names: written the same way, with or without its
    /// public address, since a port may be published on `out`'s address
    /// and again on another of the pool's. `loose`: an address left out
    /// on either side matches any (the file may spell a kept rule
    /// otherwise).
    fn matches(&self, rule: &str, loose: bool) -> bool {
        let Ok(have) = Withdrawal::parse(rule) else {
            return false;
        };
        let (to, have, want) = (have.inside, have.public, self.public);
        have.0 == want.0
            && have.2 == want.2
            && (have.1 == want.1 || (loose && (have.1.is_none() || want.1.is_none())))
            && self.inside.is_none_or(|i| to == Some(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[port]]
name = "null0"
kind = "null"
[[port]]
name = "null1"
kind = "null"
[[bridge]]
name = "lan"
members = [{ port = "null0" }]
gateway = { addresses = ["198.18.10.1/24"] }
[[bridge]]
name = "up"
members = [{ port = "null1" }]
gateway = { addresses = ["198.18.30.1/24"] }
[[nat]]
out = "up"
publish = ["tcp 8080 -> 198.18.10.10:80"]
"#;

    fn config() -> Config {
        toml::from_str(BASE).unwrap()
    }

    fn addresses(c: &Config, b: usize) -> Vec<String> {
        c.bridge[b]
            .gateway
            .as_ref()
            .map(|g| {
                g.addresses
                    .get_ref()
                    .iter()
                    .map(|a| a.get_ref().clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn addresses_come_and_go_and_the_last_takes_the_gateway_with_it() {
        let mut c = config();
        edit_address(&mut c, true, "lan", "198.18.11.1/24").unwrap();
        assert_eq!(addresses(&c, 0), ["198.18.10.1/24", "198.18.11.1/24"]);
        let e = edit_address(&mut c, true, "lan", "198.18.11.1/24").unwrap_err();
        assert!(
            e.starts_with("bridge.gateway.addresses:") && e.contains("already"),
            "{e}"
        );
        let e = edit_address(&mut c, false, "lan", "198.18.12.1/24").unwrap_err();
        assert!(e.contains("not on"), "{e}");
        assert!(edit_address(&mut c, true, "lan", "198.18.12.1/99").is_err());
        assert!(edit_address(&mut c, true, "nope", "198.18.12.1/24")
            .unwrap_err()
            .contains("no bridge or port named"));
        edit_address(&mut c, false, "lan", "198.18.10.1/24").unwrap();
        let said = edit_address(&mut c, false, "lan", "198.18.11.1/24").unwrap();
        assert!(said.contains("gateway is removed"), "{said}");
        assert!(c.bridge[0].gateway.is_none());
        // NAT out of `up` takes its first IPv4 address: deleting that
        // says where NAT goes.
        edit_address(&mut c, true, "up", "198.18.31.1/24").unwrap();
        assert_eq!(
            edit_address(&mut c, false, "up", "198.18.31.1/24").unwrap(),
            ""
        );
        edit_address(&mut c, true, "up", "198.18.31.1/24").unwrap();
        let said = edit_address(&mut c, false, "up", "198.18.30.1/24").unwrap();
        assert!(
            said.contains("now translates to 198.18.31.1, not 198.18.30.1"),
            "{said}"
        );
        // A bridge with no gateway gets one with its first address.
        edit_address(&mut c, true, "lan", "2001:2::1/64").unwrap();
        assert_eq!(addresses(&c, 0), ["2001:2::1/64"]);
    }

    #[test]
    fn publish_rules_are_added_to_their_nat_rule_and_deleted_by_their_public_side() {
        let mut c = config();
        edit_publish(&mut c, true, &["udp", "5353", "->", "198.18.10.11:53"]).unwrap();
        edit_publish(
            &mut c,
            true,
            &["out=up", "tcp", "198.18.30.1:9090", "->", "198.18.10.12:80"],
        )
        .unwrap();
        assert_eq!(c.nat[0].publish.len(), 3);
        // A rule is named as it was written: with its public address or
        // without.
        let e = edit_publish(&mut c, false, &["tcp", "198.18.30.1:8080"]).unwrap_err();
        assert!(e.contains("nothing published"), "{e}");
        edit_publish(
            &mut c,
            true,
            &["tcp", "198.18.30.9:8080", "->", "198.18.10.14:80"],
        )
        .unwrap();
        edit_publish(&mut c, false, &["tcp", "8080"]).unwrap();
        let left = |c: &Config| {
            c.nat[0]
                .publish
                .iter()
                .map(|p| p.get_ref().clone())
                .collect::<Vec<_>>()
        };
        assert!(
            left(&c).contains(&"tcp 198.18.30.9:8080 -> 198.18.10.14:80".to_string()),
            "{:?}",
            left(&c)
        );
        edit_publish(&mut c, false, &["tcp", "198.18.30.9:8080"]).unwrap();
        // Naming the inside host too: only a rule to it goes.
        let e = edit_publish(
            &mut c,
            false,
            &["tcp", "198.18.30.1:9090", "->", "198.18.10.13:80"],
        )
        .unwrap_err();
        assert!(e.contains("nothing published"), "{e}");
        assert!(edit_publish(&mut c, false, &["tcp", "198.18.30.1:9090", "->", "nope"]).is_err());
        edit_publish(
            &mut c,
            false,
            &["tcp", "198.18.30.1:9090", "->", "198.18.10.12:80"],
        )
        .unwrap();
        let e = edit_publish(&mut c, false, &["tcp", "5353"]).unwrap_err();
        assert!(e.starts_with("nat.publish: nothing published"), "{e}");
        assert!(edit_publish(&mut c, false, &["sctp", "5353"]).is_err());
        let left: Vec<&String> = c.nat[0].publish.iter().map(|p| p.get_ref()).collect();
        assert_eq!(left, ["udp 5353 -> 198.18.10.11:53"]);
        let e = edit_publish(
            &mut c,
            true,
            &["out=lan", "tcp", "1", "->", "198.18.10.1:1"],
        )
        .unwrap_err();
        assert!(e.starts_with("nat.out:"), "{e}");
        // Two rules out of one bridge: a port goes with the first, and
        // is withdrawn from whichever has it.
        let second = c.nat[0].clone();
        c.nat.push(second);
        edit_publish(&mut c, true, &["tcp", "7070", "->", "198.18.10.15:80"]).unwrap();
        assert!(c.nat[0]
            .publish
            .iter()
            .any(|p| p.get_ref().starts_with("tcp 7070")));
        c.nat[0].publish.clear();
        edit_publish(&mut c, false, &["tcp", "5353"]).unwrap_err();
        edit_publish(&mut c, false, &["udp", "5353"]).unwrap();
        assert!(c.nat[1].publish.is_empty());
        c.nat.clear();
        let e = edit_publish(&mut c, true, &["tcp", "1", "->", "198.18.10.1:1"]).unwrap_err();
        assert!(e.contains("nat add"), "{e}");
    }
}
