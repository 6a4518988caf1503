//! `pollgate ctl show bridges`: every bridge domain, how it forwards
//! (learning bridge, macvlan mode, ipvlan L2) and its members with their
//! VLAN mapping; for a shared uplink the parent and what tells the members
//! apart (their MACs or their addresses).

use crate::config::{Driver, MemberMap, Topology, VlanModeCfg};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub port: String,
    /// "access", "trunk vid 10", "qinq svid 100", "dot1q-tunnel", …
    pub vlan: String,
    /// macvlan: the member's MAC; ipvlan: its addresses.
    pub key: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BridgeView {
    pub name: String,
    pub driver: String,
    pub parent: Option<String>,
    pub members: Vec<MemberView>,
}

pub fn views(topo: &Topology) -> Vec<BridgeView> {
    topo.bridges
        .iter()
        .map(|b| {
            let parent = b.driver.parent();
            let members = b
                .members
                .iter()
                .map(|&(k, map)| {
                    let mode = topo.ports[k].vlan.map(|v| v.0);
                    let vlan = match (mode, map) {
                        (Some(VlanModeCfg::Dot1qTunnel), _) => "dot1q-tunnel".to_string(),
                        (Some(VlanModeCfg::Trunk), MemberMap::Untagged) => "trunk native".into(),
                        (Some(VlanModeCfg::Qinq), MemberMap::Untagged) => "qinq untagged".into(),
                        (_, MemberMap::Untagged) => "access".into(),
                        (_, MemberMap::Vid(v)) => format!("trunk vid {v}"),
                        (_, MemberMap::Svid(s)) => format!("qinq svid {s}"),
                        (_, MemberMap::Pair(s, c)) => format!("qinq svid {s} cvid {c}"),
                    };
                    let key = match &b.driver {
                        _ if Some(k) == parent => vec!["parent".to_string()],
                        Driver::Bridge => Vec::new(),
                        Driver::MacVlan { .. } => b
                            .statics
                            .iter()
                            .filter(|s| s.1 == k)
                            .map(|s| s.0.to_string())
                            .collect(),
                        Driver::IpVlan { addrs, .. } => addrs
                            .iter()
                            .filter(|a| a.1 == k)
                            .map(|a| a.0.to_string())
                            .collect(),
                    };
                    MemberView {
                        port: topo.ports[k].name.clone(),
                        vlan,
                        key,
                    }
                })
                .collect();
            let driver = match &b.driver {
                Driver::Bridge => "bridge".to_string(),
                Driver::MacVlan { mode, .. } => format!("macvlan {}", mode.name()),
                Driver::IpVlan { parent, .. } => {
                    format!("ipvlan l2 (shared MAC {})", topo.ports[*parent].mac)
                }
            };
            BridgeView {
                name: b.name.clone(),
                driver,
                parent: parent.map(|k| topo.ports[k].name.clone()),
                members,
            }
        })
        .collect()
}

pub fn render(bridges: &[BridgeView]) -> String {
    let mut out = String::new();
    for b in bridges {
        out += &format!("{}: {}\n", b.name, b.driver);
        for m in &b.members {
            let key = if m.key.is_empty() {
                String::new()
            } else {
                format!("  {}", m.key.join(" "))
            };
            let line = format!("  {:<16} {:<24}{key}", m.port, m.vlan);
            out += line.trim_end();
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_drivers_parents_and_what_tells_members_apart() {
        let src = "[[port]]\nname = \"up\"\nkind = \"null\"\nmac = \"02:00:00:00:00:aa\"\nvlan_mode = \"trunk\"\n\
                   [[port]]\nname = \"c1\"\nkind = \"null\"\n\
                   [[port]]\nname = \"c2\"\nkind = \"null\"\nvlan_mode = \"dot1q-tunnel\"\n\
                   [[port]]\nname = \"p\"\nkind = \"null\"\nvlan_mode = \"qinq\"\n\
                   [[bridge]]\nname = \"iv\"\ndriver = \"ipvlan\"\nparent = \"up\"\nmembers = [{ port = \"up\", vid = 10 }, { port = \"c1\", ips = [\"198.18.5.1\", \"2001:2::1\"] }]\n\
                   [[bridge]]\nname = \"svc\"\nmembers = [{ port = \"c2\" }, { port = \"p\", svid = 100 }]\n";
        let t = crate::config::parse("gw.toml", src).unwrap();
        let text = render(&views(&t));
        assert_eq!(
            text,
            "iv: ipvlan l2 (shared MAC 02:00:00:00:00:aa)\n\
             \x20 up               trunk vid 10              parent\n\
             \x20 c1               access                    198.18.5.1 2001:2::1\n\
             svc: bridge\n\
             \x20 c2               dot1q-tunnel\n\
             \x20 p                qinq svid 100\n"
        );
    }
}
