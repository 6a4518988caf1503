//! The L3 side of the config: a bridge's `gateway` (its routed interface:
//! addresses, router MAC, MTU), `[[route]]` static routes and the
//! `[router]` table sizes.

use super::*;
use pollgate_pipeline::l3::interface::link_local;
use pollgate_pipeline::l3::{L3Interface, Prefix, Route, Source, Target};
use std::net::IpAddr;

/// A bridge domain's routed interface (`gateway = { … }` in `[[bridge]]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// "198.18.1.1/24", "2001:db8:1::1/64": the interface's addresses and
    /// the connected subnets they make.
    pub addresses: Spanned<Vec<Spanned<String>>>,
    /// The router MAC (default: one derived from the domain's slot).
    pub mac: Option<Spanned<String>>,
    /// The link's IP MTU.
    pub mtu: Option<Spanned<u16>>,
    /// Permanent neighbours: `[{ ip = "...", mac = "..." }]` (as `ip
    /// neigh add … nud permanent`).
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<NeighborSection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteTypeCfg {
    Blackhole,
    Unreachable,
}

/// One gateway or several (equal-cost paths). Untagged enums cannot
/// carry spans: errors point at the route's line.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Via {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub prefix: Spanned<String>,
    pub via: Option<Via>,
    /// A bridge with a gateway: the prefix is on its link.
    pub dev: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub kind: Option<Spanned<RouteTypeCfg>>,
    #[serde(default)]
    pub metric: u32,
}

/// Table sizes, fixed at start.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSection {
    /// IPv4 trie groups of 256 entries (1 KiB each), allocated as used.
    pub ipv4_groups: usize,
    pub ipv6_groups: usize,
    /// Neighbour (ARP/ND) entries.
    pub neighbors: usize,
    /// ICMP errors per second per worker.
    pub icmp_rate: u64,
}

impl Default for RouterSection {
    fn default() -> Self {
        RouterSection {
            ipv4_groups: 1 << 18,
            ipv6_groups: 1 << 19,
            neighbors: 16 * 1024,
            icmp_rate: 1000,
        }
    }
}

/// The L3 part of a topology, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct L3Spec {
    pub interfaces: Vec<L3Interface>,
    /// Permanent neighbours: (interface id, address, MAC).
    pub neighbors: Vec<(u16, IpAddr, MacAddr)>,
    pub routes: Vec<Route>,
    pub sizes: RouterSection,
    pub nat: pollgate_pipeline::nat::NatRules,
}

/// Rewrites each routed port (`gateway` on a `[[port]]`) as the bridge
/// it stands for: named after the port, the port its only (untagged)
/// member, the gateway its own. Everything after (names, members,
/// addresses, routes, NAT, `show topology`, reload) then sees an
/// ordinary bridge with a gateway.
pub(super) fn routed_ports(config: &mut Config) {
    for p in &mut config.ports {
        let Some(gateway) = p.gateway.take() else {
            continue;
        };
        let mut b = BridgeSection::vacant();
        b.vacant = false;
        b.name = p.name.clone();
        b.members = Spanned::new(
            p.name.span(),
            vec![MemberSection {
                port: p.name.clone(),
                vid: None,
                svid: None,
                cvid: None,
                ips: Vec::new(),
            }],
        );
        b.gateway = Some(gateway);
        config.bridge.push(b);
    }
}

/// The router MAC of domain `d` when the config names none: locally
/// administered, "pg" and the domain's slot.
pub fn default_router_mac(d: usize) -> MacAddr {
    MacAddr([0x02, 0x70, 0x67, 0x00, (d >> 8) as u8, d as u8])
}

pub(super) fn prefix_of(
    cx: &Ctx,
    s: &Spanned<String>,
    field: &str,
) -> Result<(IpAddr, u8), ConfigError> {
    let bad = |m: String| cx.err(s.span(), field, format!("{:?}: {m}", s.get_ref()));
    let (a, l) = s
        .get_ref()
        .split_once('/')
        .ok_or_else(|| bad("want ADDRESS/LENGTH".into()))?;
    let addr: IpAddr = a.parse().map_err(|e| bad(format!("{e}")))?;
    let len: u8 = l.parse().map_err(|e| bad(format!("{e}")))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad(format!("length {len} is over {max}")));
    }
    Ok((addr, len))
}

pub(super) fn validate_l3(
    cx: &Ctx,
    config: &Config,
    bridges: &[BridgeSpec],
) -> Result<Option<L3Spec>, ConfigError> {
    let mut interfaces = Vec::new();
    let mut neighbors = Vec::new();
    for (d, b) in config.bridge.iter().enumerate() {
        let Some(g) = &b.gateway else { continue };
        if b.vacant {
            continue;
        }
        if !matches!(bridges.get(d).map(|s| &s.driver), Some(Driver::Bridge)) {
            return Err(cx.err(
                b.name.span(),
                "bridge.gateway",
                "a gateway is for learning bridges (driver = \"bridge\"), not macvlan or ipvlan",
            ));
        }
        let mac = mac(cx, &g.mac, "bridge.gateway.mac", default_router_mac(d))?;
        if mac.is_multicast() || mac.0 == [0; 6] {
            return Err(cx.err(
                g.mac.as_ref().map_or(0..0, |m| m.span()),
                "bridge.gateway.mac",
                "the router MAC must be a unicast address",
            ));
        }
        let mtu = g.mtu.as_ref().map_or(1500, |m| *m.get_ref());
        if let Some(m) = &g.mtu {
            if !(68..=9216).contains(m.get_ref()) {
                return Err(cx.err(
                    m.span(),
                    "bridge.gateway.mtu",
                    format!("{} is out of range: 68..=9216", m.get_ref()),
                ));
            }
        }
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for a in g.addresses.get_ref() {
            match prefix_of(cx, a, "bridge.gateway.addresses")? {
                (IpAddr::V4(ip), len) => v4.push((ip.octets(), len)),
                (IpAddr::V6(ip), len) => v6.push((ip.octets(), len)),
            }
        }
        for n in &g.neighbors {
            let ip: IpAddr = n.ip.get_ref().parse().map_err(|e| {
                cx.err(
                    n.ip.span(),
                    "bridge.gateway.neighbors.ip",
                    format!("{:?}: {e}", n.ip.get_ref()),
                )
            })?;
            let m = super::mac(
                cx,
                &Some(n.mac.clone()),
                "bridge.gateway.neighbors.mac",
                MacAddr([0; 6]),
            )?;
            neighbors.push((d as u16, ip, m));
        }
        if v4.is_empty() && v6.is_empty() {
            return Err(cx.err(
                g.addresses.span(),
                "bridge.gateway.addresses",
                "a gateway needs at least one address",
            ));
        }
        interfaces.push(L3Interface {
            name: b.name.get_ref().clone(),
            domain: d as pollgate_pipeline::DomainId,
            mac,
            mtu,
            v4,
            v6,
            link_local: link_local(mac),
            nat_v4: Vec::new(),
        });
    }
    for (i, a) in interfaces.iter().enumerate() {
        for b in &interfaces[i + 1..] {
            // One subnet, one interface: a connected route names one, and
            // a second interface in the subnet (or one inside it) would
            // take or lose its hosts depending on the route's order (VPP
            // refuses such an address too).
            // Link-local addresses (fe80::/10) are each link's own:
            // every interface may have one in the same prefix.
            let ours = |v4: &[([u8; 4], u8)], v6: &[([u8; 16], u8)]| -> Vec<(IpAddr, u8)> {
                let v4 = v4.iter().map(|x| (IpAddr::from(x.0), x.1));
                let v6 = v6
                    .iter()
                    .filter(|x| x.0[0] != 0xfe || x.0[1] & 0xc0 != 0x80);
                v4.chain(v6.map(|x| (IpAddr::from(x.0), x.1))).collect()
            };
            let (xs, ys) = (ours(&a.v4, &a.v6), ours(&b.v4, &b.v6));
            let mut pairs = xs.iter().flat_map(|x| ys.iter().map(move |y| (*x, *y)));
            let clash = pairs.find_map(|(x, y)| {
                let shorter = x.1.min(y.1);
                let (px, py) = (
                    Prefix::new(x.0, shorter).ok()?,
                    Prefix::new(y.0, shorter).ok()?,
                );
                if x.0 == y.0 {
                    Some(format!("{} is also {:?}'s address", y.0, a.name))
                } else if px == py {
                    Some(format!(
                        "{}/{} overlaps {:?}'s {}/{}: a subnet is on one interface",
                        y.0, y.1, a.name, x.0, x.1
                    ))
                } else {
                    None
                }
            });
            if let Some(why) = clash {
                let span = config.bridge[b.domain as usize]
                    .gateway
                    .as_ref()
                    .map_or(0..0, |g| g.addresses.span());
                return Err(cx.err(span, "bridge.gateway.addresses", why));
            }
        }
    }
    // The check the route table makes when it resolves the gateway.
    let ifs = pollgate_pipeline::l3::Interfaces::new(interfaces.clone(), config.bridge.len());
    let on_link = |ip: IpAddr| ifs.on_link(ip).is_some();
    let mut routes = Vec::new();
    for r in &config.routes {
        let (addr, len) = prefix_of(cx, &r.prefix, "route.prefix")?;
        let prefix = Prefix::new(addr, len)
            .map_err(|e| cx.err(r.prefix.span(), "route.prefix", e.to_string()))?;
        let ways = r.via.is_some() as u8 + r.dev.is_some() as u8 + r.kind.is_some() as u8;
        if ways != 1 {
            return Err(cx.err(
                r.prefix.span(),
                "route",
                "a route has exactly one of via, dev or type",
            ));
        }
        let target = if let Some(via) = &r.via {
            let list: Vec<&String> = match via {
                Via::One(s) => vec![s],
                Via::Many(v) => v.iter().collect(),
            };
            if list.is_empty() || list.len() > pollgate_pipeline::l3::nexthop::MAX_PATHS {
                return Err(cx.err(
                    r.prefix.span(),
                    "route.via",
                    format!(
                        "1 to {} gateways",
                        pollgate_pipeline::l3::nexthop::MAX_PATHS
                    ),
                ));
            }
            let mut gws = Vec::new();
            for s in list {
                let span = r.prefix.span();
                let gw: IpAddr = s
                    .parse()
                    .map_err(|e| cx.err(span.clone(), "route.via", format!("{s:?}: {e}")))?;
                if gw.is_ipv6() != addr.is_ipv6() {
                    return Err(cx.err(
                        span,
                        "route.via",
                        format!("{gw} is not of the prefix's family"),
                    ));
                }
                if !on_link(gw) {
                    return Err(cx.err(
                        span,
                        "route.via",
                        format!("{gw} is on no gateway interface's subnet"),
                    ));
                }
                gws.push(gw);
            }
            Target::Via(gws)
        } else if let Some(dev) = &r.dev {
            let i = interfaces
                .iter()
                .find(|i| &i.name == dev.get_ref())
                .ok_or_else(|| {
                    cx.err(
                        dev.span(),
                        "route.dev",
                        format!("no bridge with a gateway named {:?}", dev.get_ref()),
                    )
                })?;
            Target::Interface(i.domain)
        } else {
            match r.kind.as_ref().map(|k| *k.get_ref()) {
                Some(RouteTypeCfg::Blackhole) => Target::Blackhole,
                _ => Target::Unreachable,
            }
        };
        if routes
            .iter()
            .any(|x: &Route| x.prefix == prefix && x.metric == r.metric)
        {
            return Err(cx.err(r.prefix.span(), "route.prefix", format!("{prefix} metric {} is defined twice (list several gateways in one via for ECMP)", r.metric)));
        }
        routes.push(Route {
            prefix,
            target,
            metric: r.metric,
            source: Source::Static,
        });
    }
    if interfaces.is_empty() && routes.is_empty() && config.nat.is_empty() {
        return Ok(None);
    }
    if let (true, Some(n)) = (interfaces.is_empty(), config.nat.first()) {
        return Err(cx.err(n.out.span(), "nat", "NAT needs a bridge with a gateway"));
    }
    // Hosts the config names (next hops, static neighbours), as parsed
    // above: a NAT address that is one would take its traffic.
    let named: Vec<[u8; 4]> = routes
        .iter()
        .flat_map(|r| match &r.target {
            Target::Via(gws) => gws.clone(),
            _ => Vec::new(),
        })
        .chain(neighbors.iter().map(|n| n.1))
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(a.octets()),
            IpAddr::V6(_) => None,
        })
        .collect();
    let nat = super::nat::validate_nat(cx, config, &mut interfaces, &named)?;
    if interfaces.is_empty() {
        return Err(cx.err(
            config.routes[0].prefix.span(),
            "route",
            "routes need a bridge with a gateway (an L3 interface)",
        ));
    }
    Ok(Some(L3Spec {
        interfaces,
        neighbors,
        routes,
        sizes: config.router.clone(),
        nat,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const BASE: &str = r#"
[[port]]
name = "a"
kind = "null"
[[port]]
name = "b"
kind = "null"
[[bridge]]
name = "lan"
members = [{ port = "a" }]
gateway = { addresses = ["198.18.1.1/24", "2001:2:0:1::1/64"] }
[[bridge]]
name = "wan"
members = [{ port = "b" }]
gateway = { addresses = ["198.18.2.1/24"], mtu = 1280 }
"#;

    #[test]
    fn gateways_and_routes_resolve() {
        let src = format!("{BASE}[[route]]\nprefix = \"198.19.0.0/16\"\nvia = [\"198.18.2.2\", \"198.18.2.3\"]\n[[route]]\nprefix = \"198.18.99.0/24\"\ntype = \"blackhole\"\n");
        let t = parse("gw.toml", &src).unwrap();
        let l3 = t.l3.unwrap();
        assert_eq!(l3.interfaces.len(), 2);
        assert_eq!(l3.interfaces[1].mtu, 1280);
        assert_eq!(l3.interfaces[0].v6.len(), 1);
        assert_eq!(l3.routes.len(), 2);
    }

    #[test]
    fn a_subnet_is_on_one_gateway() {
        let with = |wan: &str| {
            parse(
                "gw.toml",
                &BASE
                    .replace(
                        "addresses = [\"198.18.2.1/24\"]",
                        &format!("addresses = [{wan}]"),
                    )
                    .replace(
                        "\"2001:2:0:1::1/64\"]",
                        "\"2001:2:0:1::1/64\", \"fe80::1/64\"]",
                    ),
            )
        };
        // BASE's lan is 198.18.1.1/24 and 2001:2:0:1::1/64, and here
        // fe80::1/64.
        for (wan, why) in [
            ("\"198.18.1.1/24\"", "is also \"lan\"'s address"),
            ("\"198.18.1.2/24\"", "overlaps \"lan\"'s 198.18.1.1/24"),
            ("\"198.18.1.130/25\"", "overlaps"),
            ("\"198.18.0.1/16\"", "overlaps"),
            ("\"198.18.2.1/24\", \"2001:2:0:1:8000::1/65\"", "overlaps"),
        ] {
            let e = with(wan).unwrap_err();
            assert_eq!(e.field, "bridge.gateway.addresses", "{wan}: {e}");
            assert!(e.message.contains(why), "{wan}: {e}");
        }
        // Neighbouring subnets are two, and each link has its link-local.
        with("\"198.18.0.1/24\", \"2001:2:0:2::1/64\", \"fe80::2/64\"").unwrap();
    }

    #[test]
    fn a_routed_port_is_a_bridge_of_its_own_with_its_gateway() {
        let src = r#"
[[port]]
name = "lanport"
kind = "null"
[[port]]
name = "uplink"
kind = "null"
gateway = { addresses = ["198.18.30.1/24"], mtu = 1400 }
[[bridge]]
name = "lan"
members = [{ port = "lanport" }]
gateway = { addresses = ["198.18.1.1/24"] }
[[route]]
prefix = "0.0.0.0/0"
via = "198.18.30.2"
[[route]]
prefix = "198.19.0.0/16"
dev = "uplink"
"#;
        let t = parse("gw.toml", src).unwrap();
        let up = t.bridges.iter().position(|b| b.name == "uplink").unwrap();
        assert_eq!(t.bridges[up].members.len(), 1);
        assert_eq!(t.ports[t.bridges[up].members[0].0].name, "uplink");
        let l3 = t.l3.as_ref().unwrap();
        let ifc = l3
            .interfaces
            .iter()
            .find(|i| i.domain as usize == up)
            .unwrap();
        assert_eq!(ifc.mtu, 1400);
        assert_eq!(l3.routes.len(), 2);
        // `show topology` writes it back as the bridge it became, and
        // that reads back the same.
        let again = parse("again.toml", &t.to_toml()).unwrap();
        assert_eq!(again.bridges.len(), t.bridges.len());
        // A routed port cannot also be a bridge's untagged member, and its
        // name is taken as a bridge's.
        let e = parse(
            "gw.toml",
            &src.replace(
                "members = [{ port = \"lanport\" }]",
                "members = [{ port = \"uplink\" }]",
            ),
        )
        .unwrap_err();
        assert!(e.field.starts_with("bridge"), "{e}");
        let e = parse(
            "gw.toml",
            &src.replace("name = \"lan\"", "name = \"uplink\""),
        )
        .unwrap_err();
        assert_eq!(e.field, "bridge.name", "{e}");
    }

    #[test]
    fn bad_gateways_and_routes_name_the_line_and_field() {
        let err = |src: String| parse("gw.toml", &src).unwrap_err();
        let e = err(BASE.replace("198.18.1.1/24", "198.18.1.1/33"));
        assert_eq!(
            (e.line, e.field.as_str()),
            (11, "bridge.gateway.addresses"),
            "{e}"
        );
        let e = err(BASE.replace("mtu = 1280", "mtu = 20"));
        assert_eq!(e.field, "bridge.gateway.mtu", "{e}");
        let e = err(BASE.replace("198.18.2.1/24", "198.18.1.1/24"));
        assert!(e.message.contains("also \"lan\"'s address"), "{e}");
        let e = err(format!(
            "{BASE}[[route]]\nprefix = \"198.19.0.0/16\"\nvia = \"203.0.113.1\"\n"
        ));
        // Gateways are named by their route's line (untagged lists carry no span).
        assert_eq!((e.line, e.field.as_str()), (17, "route.via"), "{e}");
        assert!(
            e.message.contains("on no gateway interface's subnet"),
            "{e}"
        );
        let e = err(format!(
            "{BASE}[[route]]\nprefix = \"198.19.0.0/16\"\nvia = \"2001:2:0:1::9\"\n"
        ));
        assert!(e.message.contains("family"), "{e}");
        let e = err(format!("{BASE}[[route]]\nprefix = \"198.19.0.0/16\"\n"));
        assert!(e.message.contains("exactly one of via, dev or type"), "{e}");
        let e = err(format!(
            "{BASE}[[route]]\nprefix = \"198.19.0.0/16\"\ndev = \"nope\"\n"
        ));
        assert_eq!(e.field, "route.dev", "{e}");
        let e = err(format!("{BASE}[[route]]\nprefix = \"198.19.0.0/16\"\ntype = \"blackhole\"\n[[route]]\nprefix = \"198.19.0.0/16\"\ntype = \"unreachable\"\n"));
        assert!(e.message.contains("defined twice"), "{e}");
        let e = err(BASE.replace(
            "gateway = { addresses = [\"198.18.2.1/24\"], mtu = 1280 }",
            "gateway = { addresses = [] }",
        ));
        assert!(e.message.contains("at least one address"), "{e}");
    }
}
