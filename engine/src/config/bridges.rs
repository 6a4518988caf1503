//! `[[bridge]]` and `[switch]`: bridge domains, their members and each
//! member's VLAN mapping (the ports' VLAN modes), static MACs.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VlanModeCfg {
    Access,
    Trunk,
    Qinq,
    /// The customer side of an 802.1ad service (OVS's and Cisco's name).
    #[serde(rename = "dot1q-tunnel")]
    Dot1qTunnel,
}

/// What a dot1q-tunnel port does with L2 control frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum L2cpCfg {
    #[default]
    Drop,
    Tunnel,
}

/// MAC table settings, shared by every bridge domain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchSection {
    /// Most MAC entries over all domains; learning past it is counted.
    pub mac_limit: Spanned<usize>,
    /// Seconds a learned entry lives without traffic.
    pub aging: Spanned<u32>,
}

impl Default for SwitchSection {
    fn default() -> Self {
        SwitchSection {
            mac_limit: Spanned::new(0..0, 1 << 20),
            aging: Spanned::new(0..0, 300),
        }
    }
}

/// A bridge member: a port and the VLAN mapping that joins it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSection {
    pub port: Spanned<String>,
    /// trunk: the C-VID carrying this domain (absent: the native VLAN).
    pub vid: Option<Spanned<u16>>,
    /// qinq: the S-VID selecting this service.
    pub svid: Option<Spanned<u16>>,
    /// qinq: with `svid`, selective QinQ on the (S, C) pair.
    pub cvid: Option<Spanned<u16>>,
    /// ipvlan: the member's addresses (IPv4 or IPv6) besides its port's
    /// `address`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMacSection {
    pub mac: Spanned<String>,
    pub port: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    pub name: Spanned<String>,
    pub members: Spanned<Vec<MemberSection>>,
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_macs: Vec<StaticMacSection>,
    /// ACLs checked for every packet entering / leaving the domain.
    pub acl_in: Option<Spanned<String>>,
    pub acl_out: Option<Spanned<String>>,
    /// The VXLAN network identifier this domain is carried in.
    pub vni: Option<Spanned<u32>>,
    /// Remote VTEPs (IPv4) that get a copy of the domain's floods.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flood: Vec<Spanned<String>>,
    /// BGP EVPN through FRR finds this VNI's remote VTEPs and MACs: the
    /// kernel mirror (vxlanN, brN, accN) is made for zebra to read and
    /// write, and MACs are not learned from the tunnel.
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub evpn: bool,
    /// "bridge" (learning, the default), "macvlan" or "ipvlan".
    pub driver: Option<Spanned<DriverCfg>>,
    /// macvlan/ipvlan: the uplink port the members share.
    pub parent: Option<Spanned<String>>,
    pub macvlan_mode: Option<Spanned<MacVlanModeCfg>>,
    pub ipvlan_mode: Option<Spanned<IpVlanModeCfg>>,
    /// The domain's routed interface (IRB): addresses, router MAC, MTU.
    pub gateway: Option<GatewaySection>,
    /// A slot a removed bridge left (domain ids stay put while the
    /// engine runs, as port ids do). Never written in a file.
    #[serde(skip)]
    pub vacant: bool,
}

impl BridgeSection {
    pub fn vacant() -> BridgeSection {
        BridgeSection {
            name: Spanned::new(0..0, String::new()),
            members: Spanned::new(0..0, Vec::new()),
            static_macs: Vec::new(),
            acl_in: None,
            acl_out: None,
            vni: None,
            flood: Vec::new(),
            evpn: false,
            driver: None,
            parent: None,
            macvlan_mode: None,
            ipvlan_mode: None,
            gateway: None,
            vacant: true,
        }
    }
}

/// How a member joins its domain, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberMap {
    Untagged,
    Vid(u16),
    Svid(u16),
    Pair(u16, u16),
}

#[derive(Debug, Clone)]
pub struct BridgeSpec {
    pub name: String,
    pub members: Vec<(usize, MemberMap)>,
    pub statics: Vec<(MacAddr, usize)>,
    pub driver: Driver,
}

/// Domain ids are u16 with one value meaning "none".
pub(super) const MAX_DOMAINS: usize = 0xffff;

/// Checks `[[bridge]]` sections against the ports' VLAN modes and fills
/// in each member port's mode.
pub(super) fn validate_bridges(
    cx: &Ctx,
    config: &Config,
    ports: &mut [PortSpec],
    resolve: &Resolve,
    cross_connected: &HashMap<usize, ()>,
) -> Result<Vec<BridgeSpec>, ConfigError> {
    if config.bridge.len() >= (MAX_DOMAINS) {
        return Err(cx.err(
            0..0,
            "bridge",
            format!("at most {} bridge domains", MAX_DOMAINS - 1),
        ));
    }
    // Per port: which untagged / VID / S-VID / (S,C) mappings are taken.
    let mut taken: HashMap<(usize, MemberMap), String> = HashMap::new();
    let mut names: HashMap<&str, ()> = HashMap::new();
    let mut out = Vec::new();
    for b in &config.bridge {
        if b.vacant {
            out.push(BridgeSpec {
                name: String::new(),
                members: Vec::new(),
                statics: Vec::new(),
                driver: Driver::Bridge,
            });
            continue;
        }
        let name = b.name.get_ref();
        if names.insert(name.as_str(), ()).is_some() {
            return Err(cx.err(
                b.name.span(),
                "bridge.name",
                format!("{name:?} is defined twice"),
            ));
        }
        let mut members = Vec::new();
        for m in b.members.get_ref() {
            let k = resolve(&m.port, "bridge.members.port")?;
            if cross_connected.contains_key(&k) {
                return Err(cx.err(
                    m.port.span(),
                    "bridge.members.port",
                    format!(
                        "{:?} is cross-connected; a port is either cross-connected or in bridges",
                        m.port.get_ref()
                    ),
                ));
            }
            let p = &config.ports[k];
            let mode = p
                .vlan_mode
                .as_ref()
                .map_or(VlanModeCfg::Access, |v| *v.get_ref());
            let tpid = match (&p.tpid, mode) {
                (Some(t), _) => {
                    let v = *t.get_ref();
                    if v != 0x8100 && v != 0x88a8 && v != 0x9100 {
                        return Err(cx.err(
                            t.span(),
                            "port.tpid",
                            format!("{v:#06x}: use 0x8100, 0x88a8 or 0x9100"),
                        ));
                    }
                    v
                }
                (None, VlanModeCfg::Qinq) => 0x88a8,
                (None, _) => 0x8100,
            };
            let vid = |v: &Option<Spanned<u16>>, field: &str| -> Result<Option<u16>, ConfigError> {
                match v {
                    Some(s) if !(1..=4094).contains(s.get_ref()) => Err(cx.err(
                        s.span(),
                        field,
                        format!("{} is out of range: 1..=4094", s.get_ref()),
                    )),
                    Some(s) => Ok(Some(*s.get_ref())),
                    None => Ok(None),
                }
            };
            let (v, sv, cv) = (
                vid(&m.vid, "bridge.members.vid")?,
                vid(&m.svid, "bridge.members.svid")?,
                vid(&m.cvid, "bridge.members.cvid")?,
            );
            let wrong = |field: &str, why: &str| {
                Err(cx.err(
                    m.port.span(),
                    field,
                    format!("port {:?} is a {mode:?} port: {why}", m.port.get_ref()),
                ))
            };
            let map = match mode {
                VlanModeCfg::Access if v.is_some() || sv.is_some() || cv.is_some() => {
                    return wrong(
                        "bridge.members",
                        "an access member carries untagged frames; give no vid/svid/cvid",
                    )
                }
                VlanModeCfg::Access => MemberMap::Untagged,
                VlanModeCfg::Trunk if sv.is_some() || cv.is_some() => {
                    return wrong("bridge.members", "use vid (or nothing for the native VLAN)")
                }
                VlanModeCfg::Trunk => v.map_or(MemberMap::Untagged, MemberMap::Vid),
                VlanModeCfg::Qinq if v.is_some() => {
                    return wrong(
                        "bridge.members.vid",
                        "use svid (and cvid for selective QinQ)",
                    )
                }
                VlanModeCfg::Qinq => match (sv, cv) {
                    (Some(s), Some(c)) => MemberMap::Pair(s, c),
                    (Some(s), None) => MemberMap::Svid(s),
                    (None, None) => MemberMap::Untagged,
                    (None, Some(_)) => return wrong("bridge.members.cvid", "cvid needs svid"),
                },
                VlanModeCfg::Dot1qTunnel if v.is_some() || sv.is_some() || cv.is_some() => {
                    return wrong(
                        "bridge.members",
                        "a customer port joins the service its bridge is, whatever the customer's tags; the S-VID is the provider (qinq) members' svid",
                    )
                }
                VlanModeCfg::Dot1qTunnel => MemberMap::Untagged,
            };
            let one_domain = matches!(mode, VlanModeCfg::Access | VlanModeCfg::Dot1qTunnel);
            if one_domain && taken.keys().any(|(pk, _)| *pk == k) {
                return Err(cx.err(
                    m.port.span(),
                    "bridge.members.port",
                    format!(
                        "{} port {:?} is already in a bridge",
                        if mode == VlanModeCfg::Access {
                            "access"
                        } else {
                            "dot1q-tunnel"
                        },
                        m.port.get_ref()
                    ),
                ));
            }
            if let Some(other) = taken.insert((k, map), name.clone()) {
                return Err(cx.err(
                    m.port.span(),
                    "bridge.members",
                    format!(
                        "port {:?} with this VLAN mapping is already in bridge {other:?}",
                        m.port.get_ref()
                    ),
                ));
            }
            ports[k].vlan = Some((mode, tpid));
            members.push((k, map));
        }
        let mut statics = Vec::new();
        for s in &b.static_macs {
            let mac: MacAddr = s.mac.get_ref().parse().map_err(|e: &str| {
                cx.err(
                    s.mac.span(),
                    "bridge.static_macs.mac",
                    format!("{:?}: {e}", s.mac.get_ref()),
                )
            })?;
            if mac.is_multicast() {
                return Err(cx.err(
                    s.mac.span(),
                    "bridge.static_macs.mac",
                    "a static entry needs a unicast MAC",
                ));
            }
            let k = resolve(&s.port, "bridge.static_macs.port")?;
            if !members.iter().any(|&(m, _)| m == k) {
                return Err(cx.err(
                    s.port.span(),
                    "bridge.static_macs.port",
                    format!("{:?} is not a member of bridge {name:?}", s.port.get_ref()),
                ));
            }
            statics.push((mac, k));
        }
        let driver = shared_uplink::validate_driver(cx, b, &members, &mut statics, ports, resolve)?;
        out.push(BridgeSpec {
            name: name.clone(),
            members,
            statics,
            driver,
        });
    }
    for (k, p) in config.ports.iter().enumerate() {
        let tunnel = matches!(ports[k].vlan, Some((VlanModeCfg::Dot1qTunnel, _)));
        for (set, field) in [
            (p.l2cp.as_ref().map(|x| x.span()), "port.l2cp"),
            (p.default_pcp.as_ref().map(|x| x.span()), "port.default_pcp"),
        ] {
            if let (Some(span), false) = (set, tunnel) {
                return Err(cx.err(
                    span,
                    field,
                    "only a vlan_mode = \"dot1q-tunnel\" bridge member (a customer port) has it",
                ));
            }
        }
    }
    let limit = *config.switch.mac_limit.get_ref();
    if !(16..=1 << 26).contains(&limit) {
        return Err(cx.err(
            config.switch.mac_limit.span(),
            "switch.mac_limit",
            format!("{limit} is out of range: 16..=67108864"),
        ));
    }
    Ok(out)
}
