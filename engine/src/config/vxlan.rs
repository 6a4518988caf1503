//! `[vtep]` and the VNI side of `[[bridge]]`: the VXLAN tunnel endpoint,
//! its neighbors and the domains' flood lists.

use super::*;

/// The VXLAN tunnel endpoint: one, on an underlay port.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VtepSection {
    pub port: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default = "default_vxlan_port")]
    pub udp_port: u16,
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    #[serde(default = "default_true")]
    pub df: bool,
    /// Underlay IP MTU.
    pub mtu: Option<Spanned<u16>>,
    /// Next hop for every remote VTEP (absent: remotes are on the link).
    pub gateway: Option<Spanned<String>>,
    /// The kernel keeps the underlay's other traffic: pollgate's XDP
    /// program takes only VXLAN to `address` (and UDP to it it cannot
    /// rule out), and the kernel stack, which must hold `address` on the
    /// device, answers ARP, resolves the next hops pollgate uses and
    /// carries the host's own sessions (BGP to the route reflector).
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub share_underlay: bool,
    /// Static ARP entries: `[{ ip = "...", mac = "..." }]`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<NeighborSection>,
}

pub(super) fn default_vxlan_port() -> u16 {
    4789
}
pub(super) fn default_ttl() -> u8 {
    64
}
pub(super) fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NeighborSection {
    pub ip: Spanned<String>,
    pub mac: Spanned<String>,
}

/// The VTEP, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct VtepSpec {
    pub port: usize,
    pub ip: [u8; 4],
    pub udp_port: u16,
    pub ttl: u8,
    pub df: bool,
    pub mtu: u16,
    pub gateway: Option<[u8; 4]>,
    pub neighbors: Vec<([u8; 4], MacAddr)>,
    /// (VNI, domain, flood list) per VNI-mapped bridge.
    pub vnis: Vec<(u32, usize, Vec<[u8; 4]>)>,
    pub share_underlay: bool,
    /// VNIs whose remotes come from BGP EVPN (`evpn = true`), sorted.
    pub evpn: Vec<u32>,
}

pub(super) fn ipv4(cx: &Ctx, s: &Spanned<String>, field: &str) -> Result<[u8; 4], ConfigError> {
    s.get_ref()
        .parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| {
            cx.err(
                s.span(),
                field,
                format!("{:?} is not an IPv4 address", s.get_ref()),
            )
        })
}

/// Checks `[vtep]` and the bridges' `vni`/`flood`.
pub(super) fn validate_vtep(
    cx: &Ctx,
    config: &Config,
    bridges: &[BridgeSpec],
    resolve: &Resolve,
    paired: &HashMap<usize, ()>,
) -> Result<Option<VtepSpec>, ConfigError> {
    let mut vnis: Vec<(u32, usize, Vec<[u8; 4]>)> = Vec::new();
    let mut evpn = Vec::new();
    for (d, b) in config.bridge.iter().enumerate() {
        if let Some(v) = &b.vni {
            let vni = *v.get_ref();
            if !(1..=0x00ff_ffff).contains(&vni) {
                return Err(cx.err(
                    v.span(),
                    "bridge.vni",
                    format!("{vni} is out of range: 1..=16777215"),
                ));
            }
            if vnis.iter().any(|x| x.0 == vni) {
                return Err(cx.err(v.span(), "bridge.vni", format!("VNI {vni} is mapped twice")));
            }
            let flood = b
                .flood
                .iter()
                .map(|f| ipv4(cx, f, "bridge.flood"))
                .collect::<Result<_, _>>()?;
            vnis.push((vni, d, flood));
            if b.evpn {
                evpn.push(vni);
            }
        } else if b.evpn {
            return Err(cx.err(
                b.name.span(),
                "bridge.evpn",
                "EVPN needs the bridge's `vni`",
            ));
        } else if let Some(f) = b.flood.first() {
            return Err(cx.err(
                f.span(),
                "bridge.flood",
                "a flood list needs the bridge's `vni`",
            ));
        }
    }
    let Some(v) = &config.vtep else {
        if let Some(b) = config.bridge.iter().find(|b| b.vni.is_some()) {
            let span = b.vni.as_ref().map(|v| v.span()).unwrap_or(0..0);
            return Err(cx.err(span, "bridge.vni", "a VNI needs a [vtep] section"));
        }
        return Ok(None);
    };
    let port = resolve(&v.port, "vtep.port")?;
    if paired.contains_key(&port)
        || bridges
            .iter()
            .any(|b| b.members.iter().any(|m| m.0 == port))
    {
        return Err(cx.err(
            v.port.span(),
            "vtep.port",
            format!(
                "{:?} carries the underlay: it cannot also be cross-connected or a bridge member",
                v.port.get_ref()
            ),
        ));
    }
    let mtu = v.mtu.as_ref().map_or(1500, |m| *m.get_ref());
    if mtu < 576 {
        return Err(cx.err(
            v.mtu.as_ref().map(|m| m.span()).unwrap_or(0..0),
            "vtep.mtu",
            format!("{mtu} is below 576"),
        ));
    }
    let mut neighbors = Vec::new();
    for n in &v.neighbors {
        let ip = ipv4(cx, &n.ip, "vtep.neighbors.ip")?;
        let mac: MacAddr = n.mac.get_ref().parse().map_err(|e: &str| {
            cx.err(
                n.mac.span(),
                "vtep.neighbors.mac",
                format!("{:?}: {e}", n.mac.get_ref()),
            )
        })?;
        neighbors.push((ip, mac));
    }
    Ok(Some(VtepSpec {
        port,
        ip: ipv4(cx, &v.address, "vtep.address")?,
        udp_port: v.udp_port,
        ttl: v.ttl,
        df: v.df,
        mtu,
        gateway: v
            .gateway
            .as_ref()
            .map(|g| ipv4(cx, g, "vtep.gateway"))
            .transpose()?,
        neighbors,
        vnis,
        share_underlay: v.share_underlay,
        evpn: {
            evpn.sort_unstable();
            evpn
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const BASE: &str = r#"
[[port]]
name = "ul"
kind = "null"
[[port]]
name = "c1"
kind = "null"
[[bridge]]
name = "b100"
vni = 100
evpn = true
members = [{ port = "c1" }]
[[bridge]]
name = "b200"
vni = 200
flood = ["198.18.0.9"]
members = []
[vtep]
port = "ul"
address = "198.18.0.3"
share_underlay = true
"#;

    #[test]
    fn evpn_vnis_and_a_shared_underlay() {
        let t = parse("h.toml", BASE).unwrap();
        let v = t.vtep.unwrap();
        assert!(v.share_underlay);
        assert_eq!(v.evpn, vec![100]);
        assert_eq!(v.vnis.len(), 2);
    }

    #[test]
    fn evpn_needs_a_vni() {
        let e = parse("h.toml", &BASE.replace("vni = 100\n", "")).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (9, "bridge.evpn"), "{e}");
    }
}
