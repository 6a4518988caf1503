//! `[[bridge]]` drivers other than the learning bridge: containers that
//! share one uplink (the `parent`, as Docker's macvlan and ipvlan drivers
//! call it) without learning. A macvlan member is known by its MAC, an
//! ipvlan member by its IP addresses behind the parent's one MAC.

use super::{BridgeSection, ConfigError, Ctx, MemberMap, PortSpec, Resolve};
use pollgate_pipeline::macvlan::MacVlanMode;
use pollgate_pipeline::wire::MacAddr;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DriverCfg {
    #[default]
    Bridge,
    Macvlan,
    Ipvlan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MacVlanModeCfg {
    /// Docker's default.
    #[default]
    Bridge,
    Vepa,
    Private,
    Passthru,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
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
