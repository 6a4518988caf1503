//! `[[bridge]]` drivers other than the learning bridge: containers that
//! share one uplink (the `parent`, as Docker's macvlan and ipvlan drivers
//! call it) without learning. A macvlan member is known by its MAC, an
//! ipvlan member by its IP addresses behind the parent's one MAC.

use super::{BridgeSection, ConfigError, Ctx, MemberMap, PortSpec, Resolve};
use pollgate_pipeline::macvlan::MacVlanMode;
use pollgate_pipeline::wire::MacAddr;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DriverCfg {
    #[default]
    Bridge,
    Macvlan,
    Ipvlan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MacVlanModeCfg {
    /// Docker's default.
    #[default]
    Bridge,
    Vepa,
    Private,
    Passthru,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpVlanModeCfg {
    #[default]
    L2,
    L3,
}

/// How a bridge domain forwards, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    Bridge,
    MacVlan {
        parent: usize,
        mode: MacVlanMode,
    },
    IpVlan {
        parent: usize,
        /// Every member address and its port.
        addrs: Vec<(IpAddr, usize)>,
    },
}

impl Driver {
    pub fn parent(&self) -> Option<usize> {
        match self {
            Driver::Bridge => None,
            Driver::MacVlan { parent, .. } | Driver::IpVlan { parent, .. } => Some(*parent),
        }
    }
}

/// Checks a bridge's driver keys against its members, and gives each
/// macvlan member a MAC (its container end's, or the static entry naming
/// it) and each ipvlan member the parent's MAC, unless its container's
/// MAC is set. `statics` may gain the macvlan members' MACs.
pub(super) fn validate_driver(
    cx: &Ctx,
    b: &BridgeSection,
    members: &[(usize, MemberMap)],
    statics: &mut Vec<(MacAddr, usize)>,
    ports: &mut [PortSpec],
    resolve: &Resolve,
) -> Result<Driver, ConfigError> {
    let driver = b
        .driver
        .as_ref()
        .map_or(DriverCfg::Bridge, |d| *d.get_ref());
    let name = b.name.get_ref();
    let not_here = |field: &str, what: &str| {
        Err(cx.err(b.name.span(), field, format!("bridge {name:?}: {what}")))
    };
    if driver != DriverCfg::Macvlan && b.macvlan_mode.is_some() {
        return not_here(
            "bridge.macvlan_mode",
            "only a driver = \"macvlan\" bridge has one",
        );
    }
    if driver != DriverCfg::Ipvlan {
        if b.ipvlan_mode.is_some() {
            return not_here(
                "bridge.ipvlan_mode",
                "only a driver = \"ipvlan\" bridge has one",
            );
        }
        if let Some(m) = b.members.get_ref().iter().find(|m| !m.ips.is_empty()) {
            return Err(cx.err(
                m.port.span(),
                "bridge.members.ips",
                "addresses tell members apart only in a driver = \"ipvlan\" bridge",
            ));
        }
    }
    if driver == DriverCfg::Bridge {
        if let Some(p) = &b.parent {
            return Err(cx.err(
                p.span(),
                "bridge.parent",
                "a learning bridge has no parent; use driver = \"macvlan\" or \"ipvlan\"",
            ));
        }
        return Ok(Driver::Bridge);
    }
    let Some(parent_name) = &b.parent else {
        return not_here(
            "bridge.parent",
            "a macvlan or ipvlan bridge needs parent = the uplink port its containers share",
        );
    };
    let parent = resolve(parent_name, "bridge.parent")?;
    if !members.iter().any(|&(k, _)| k == parent) {
        return Err(cx.err(
            parent_name.span(),
            "bridge.parent",
            format!(
                "{:?} is not a member of bridge {name:?}: list it in members (with its vid on a trunk)",
                parent_name.get_ref()
            ),
        ));
    }
    if let Some(v) = &b.vni {
        return Err(cx.err(
            v.span(),
            "bridge.vni",
            "a VNI is carried by a learning bridge, not a shared uplink",
        ));
    }
    let mut guests: Vec<usize> = Vec::new();
    for &(k, _) in members {
        if k != parent && !guests.contains(&k) {
            guests.push(k);
        }
    }
    let sections = b.members.get_ref();
    let section_of = |k: usize| {
        sections
            .iter()
            .find(|m| resolve(&m.port, "bridge.members.port").ok() == Some(k))
            .expect("every member comes from a section")
    };
    match driver {
        DriverCfg::Bridge => unreachable!("returned above"),
        DriverCfg::Macvlan => {
            let mode = match b
                .macvlan_mode
                .as_ref()
                .map_or(MacVlanModeCfg::Bridge, |m| *m.get_ref())
            {
                MacVlanModeCfg::Bridge => MacVlanMode::Bridge,
                MacVlanModeCfg::Vepa => MacVlanMode::Vepa,
                MacVlanModeCfg::Private => MacVlanMode::Private,
                MacVlanModeCfg::Passthru => MacVlanMode::Passthru,
            };
            if mode == MacVlanMode::Passthru && guests.len() != 1 {
                return not_here(
                    "bridge.members",
                    &format!(
                        "passthru gives the parent to one member; this bridge has {}",
                        guests.len()
                    ),
                );
            }
            let mut seen: HashMap<MacAddr, usize> = statics.iter().map(|&(m, k)| (m, k)).collect();
            for &k in &guests {
                if statics.iter().any(|&(_, p)| p == k) {
                    continue;
                }
                let p = &mut ports[k];
                let Some(end) = p.container.as_mut() else {
                    return Err(cx.err(
                        section_of(k).port.span(),
                        "bridge.static_macs",
                        format!(
                            "macvlan member {:?} has no container end whose MAC pollgate knows: give it a static_macs entry",
                            p.name
                        ),
                    ));
                };
                // The MAC pollgate sets on the container end is the one
                // it delivers to: never leave it to the kernel's choice.
                let mac = MacAddr(*end.mac.get_or_insert(p.peer_mac.0));
                if let Some(other) = seen.insert(mac, k) {
                    return Err(cx.err(
                        section_of(k).port.span(),
                        "port.container_mac",
                        format!("{mac} is the MAC of member {:?} too", ports[other].name),
                    ));
                }
                statics.push((mac, k));
            }
            Ok(Driver::MacVlan { parent, mode })
        }
        DriverCfg::Ipvlan => {
            if let Some(m) = &b.ipvlan_mode {
                if *m.get_ref() == IpVlanModeCfg::L3 {
                    return Err(cx.err(
                        m.span(),
                        "bridge.ipvlan_mode",
                        "ipvlan's L3 mode is routing, which pollgate's L3 stage is for; use \"l2\"",
                    ));
                }
            }
            if let Some(s) = b.static_macs.first() {
                return Err(cx.err(
                    s.mac.span(),
                    "bridge.static_macs",
                    "ipvlan members share the parent's MAC; they are told apart by ips",
                ));
            }
            let shared = ports[parent].mac;
            let mut addrs: Vec<(IpAddr, usize)> = Vec::new();
            for &k in &guests {
                let section = section_of(k);
                let mut mine: Vec<IpAddr> = Vec::new();
                if let Some(end) = ports[k].container.as_mut() {
                    end.mac.get_or_insert(shared.0);
                    if let Some((ip, _)) = end.ipv4 {
                        mine.push(ip.into());
                    }
                }
                for ip in &section.ips {
                    let a: IpAddr = ip.get_ref().parse().map_err(|_| {
                        cx.err(
                            ip.span(),
                            "bridge.members.ips",
                            format!("{:?} is not an IPv4 or IPv6 address", ip.get_ref()),
                        )
                    })?;
                    mine.push(a);
                }
                if mine.is_empty() {
                    return Err(cx.err(
                        section.port.span(),
                        "bridge.members.ips",
                        format!(
                            "ipvlan member {:?} has no address: give its port an address or the member ips",
                            ports[k].name
                        ),
                    ));
                }
                for a in mine {
                    if let Some(&(_, other)) = addrs.iter().find(|(x, _)| *x == a) {
                        return Err(cx.err(
                            section.port.span(),
                            "bridge.members.ips",
                            format!("{a} is an address of member {:?} too", ports[other].name),
                        ));
                    }
                    addrs.push((a, k));
                }
            }
            Ok(Driver::IpVlan { parent, addrs })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, L2cpCfg, VlanModeCfg};
    use super::*;

    fn ports(extra0: &str) -> String {
        format!(
            "[[port]]\nname = \"up\"\nkind = \"null\"\nmac = \"02:00:00:00:00:aa\"\n{extra0}\n\
             [[port]]\nname = \"c1\"\nkind = \"null\"\n\
             [[port]]\nname = \"c2\"\nkind = \"null\"\n"
        )
    }

    fn err(src: &str) -> String {
        parse("gw.toml", src).unwrap_err().to_string()
    }

    #[test]
    fn macvlan_and_ipvlan_resolve() {
        let src = ports("") + "[[bridge]]\nname = \"mv\"\ndriver = \"macvlan\"\nparent = \"up\"\nmacvlan_mode = \"vepa\"\nmembers = [{ port = \"up\" }, { port = \"c1\" }, { port = \"c2\" }]\nstatic_macs = [{ mac = \"02:00:00:00:00:c1\", port = \"c1\" }, { mac = \"02:00:00:00:00:c2\", port = \"c2\" }]\n";
        let t = parse("gw.toml", &src).unwrap();
        assert_eq!(
            t.bridges[0].driver,
            Driver::MacVlan {
                parent: 0,
                mode: MacVlanMode::Vepa
            }
        );
        let src = ports("") + "[[bridge]]\nname = \"iv\"\ndriver = \"ipvlan\"\nparent = \"up\"\nmembers = [{ port = \"up\" }, { port = \"c1\", ips = [\"198.18.5.1\", \"2001:2::1\"] }, { port = \"c2\", ips = [\"198.18.5.2\"] }]\n";
        let t = parse("gw.toml", &src).unwrap();
        let Driver::IpVlan { parent, addrs } = &t.bridges[0].driver else {
            panic!("ipvlan")
        };
        assert_eq!(*parent, 0);
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[1], ("2001:2::1".parse().unwrap(), 1));
    }

    #[test]
    fn bad_shared_uplinks_name_the_field() {
        let m = "members = [{ port = \"up\" }, { port = \"c1\" }]";
        for (cfg, want) in [
            (
                format!("[[bridge]]\nname = \"b\"\ndriver = \"macvlan\"\n{m}\n"),
                "gw.toml:13: bridge.parent: bridge \"b\": a macvlan or ipvlan bridge needs parent",
            ),
            (
                format!("[[bridge]]\nname = \"b\"\ndriver = \"macvlan\"\nparent = \"c2\"\n{m}\n"),
                "bridge.parent: \"c2\" is not a member of bridge \"b\"",
            ),
            (
                format!("[[bridge]]\nname = \"b\"\ndriver = \"macvlan\"\nparent = \"up\"\n{m}\n"),
                "bridge.static_macs: macvlan member \"c1\" has no container end",
            ),
            (
                "[[bridge]]\nname = \"b\"\ndriver = \"macvlan\"\nparent = \"up\"\nmacvlan_mode = \"passthru\"\nmembers = [{ port = \"up\" }, { port = \"c1\" }, { port = \"c2\" }]\n".to_string(),
                "passthru gives the parent to one member; this bridge has 2",
            ),
            (
                format!("[[bridge]]\nname = \"b\"\nparent = \"up\"\n{m}\n"),
                "bridge.parent: a learning bridge has no parent",
            ),
            (
                format!("[[bridge]]\nname = \"b\"\nmacvlan_mode = \"vepa\"\n{m}\n"),
                "bridge.macvlan_mode: bridge \"b\": only a driver = \"macvlan\" bridge has one",
            ),
            (
                format!("[[bridge]]\nname = \"b\"\ndriver = \"ipvlan\"\nparent = \"up\"\n{m}\n"),
                "bridge.members.ips: ipvlan member \"c1\" has no address",
            ),
            (
                format!("[[bridge]]\nname = \"b\"\ndriver = \"ipvlan\"\nipvlan_mode = \"l3\"\nparent = \"up\"\n{m}\n"),
                "bridge.ipvlan_mode: ipvlan's L3 mode is routing",
            ),
            (
                "[[bridge]]\nname = \"b\"\ndriver = \"ipvlan\"\nparent = \"up\"\nmembers = [{ port = \"up\" }, { port = \"c1\", ips = [\"198.18.5.1\"] }, { port = \"c2\", ips = [\"198.18.5.1\"] }]\n".to_string(),
                "bridge.members.ips: 198.18.5.1 is an address of member \"c1\" too",
            ),
            (
                "[[bridge]]\nname = \"b\"\ndriver = \"ipvlan\"\nparent = \"up\"\nmembers = [{ port = \"up\" }, { port = \"c1\", ips = [\"198.18.5\"] }]\n".to_string(),
                "bridge.members.ips: \"198.18.5\" is not an IPv4 or IPv6 address",
            ),
            (
                "[[bridge]]\nname = \"b\"\nmembers = [{ port = \"up\" }, { port = \"c1\", ips = [\"198.18.5.1\"] }]\n".to_string(),
                "bridge.members.ips: addresses tell members apart only in a driver = \"ipvlan\" bridge",
            ),
            (
                format!("[[bridge]]\nname = \"b\"\ndriver = \"macvlan\"\nparent = \"up\"\nvni = 5000\n{m}\n"),
                "bridge.vni: a VNI is carried by a learning bridge",
            ),
        ] {
            let e = err(&(ports("") + &cfg));
            assert!(e.contains(want), "{e}\n  wanted: {want}");
        }
    }

    #[test]
    fn customer_ports_resolve_and_bad_ones_name_the_field() {
        let src = ports("vlan_mode = \"dot1q-tunnel\"\nl2cp = \"tunnel\"\ndefault_pcp = 5")
            + "[[port]]\nname = \"p\"\nkind = \"null\"\nvlan_mode = \"qinq\"\n[[bridge]]\nname = \"svc\"\nmembers = [{ port = \"up\" }, { port = \"p\", svid = 100 }]\n[[xconnect]]\nports = [\"c1\", \"c2\"]\n";
        let t = parse("gw.toml", &src).unwrap();
        assert_eq!(t.ports[0].vlan, Some((VlanModeCfg::Dot1qTunnel, 0x8100)));
        assert_eq!(
            (t.ports[0].l2cp, t.ports[0].default_pcp),
            (L2cpCfg::Tunnel, 5)
        );
        for (extra, member, want) in [
            ("vlan_mode = \"dot1q-tunnel\"", "{ port = \"up\", svid = 100 }", "bridge.members: port \"up\" is a Dot1qTunnel port: a customer port joins the service its bridge is"),
            ("vlan_mode = \"dot1q-tunnel\"\ndefault_pcp = 8", "{ port = \"up\" }", "gw.toml:6: port.default_pcp: 8 is out of range: 0..=7"),
            ("l2cp = \"tunnel\"", "{ port = \"up\" }", "gw.toml:5: port.l2cp: only a vlan_mode = \"dot1q-tunnel\" bridge member"),
            ("vlan_mode = \"dot1q-tunnel\"\nl2cp = \"pass\"", "{ port = \"up\" }", "unknown variant `pass`"),
        ] {
            let src = ports(extra) + &format!("[[bridge]]\nname = \"svc\"\nmembers = [{member}]\n[[xconnect]]\nports = [\"c1\", \"c2\"]\n");
            let e = err(&src);
            assert!(e.contains(want), "{e}\n  wanted: {want}");
        }
    }
}
