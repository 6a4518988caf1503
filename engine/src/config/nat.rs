//! `[[nat]]`: masquerade through a gateway interface and the ports it
//! publishes, as Docker's bridge network sets up netfilter
//! (`MASQUERADE` for the network's subnet leaving elsewhere, `DNAT` for
//! `-p`).

use super::*;
use pollgate_pipeline::l3::L3Interface;
use pollgate_pipeline::nat::{Masquerade, NatRules, Publish};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    /// The bridge (with a gateway) traffic leaves through to be
    /// masqueraded, and whose address published ports are on.
    pub out: Spanned<String>,
    /// Source prefixes masqueraded (default: every other gateway's IPv4
    /// subnets).
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Spanned<String>>,
    /// The address sessions take (default: `out`'s first IPv4 one).
    pub address: Option<Spanned<String>>,
    /// Or a pool of them: `"A"`, `"A-B"` or `"A/LEN"` each, as
    /// iptables' `--to-source A-B` and VPP's `nat44 add address A - B`.
    /// An inside host's sessions all take one of them.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pool: Vec<Spanned<String>>,
    /// `[first, last]` port handed out (default `[1024, 65535]`).
    pub ports: Option<Spanned<Vec<u16>>>,
    /// Sessions one source address may hold (default 4096).
    pub per_source: Option<Spanned<u32>>,
    /// `"tcp [ADDRESS:]PORT -> ADDRESS:PORT"`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<Spanned<String>>,
}

const DEFAULT_PER_SOURCE: u32 = 4096;
/// Addresses one pool may have: each costs every worker 24 KiB of port
/// bitmaps.
const MAX_POOL: usize = 256;

/// The rules, and every address they translate to that is not its
/// interface's own is added to that interface's `nat_v4`, so that the
/// router answers ARP for it and receives it. `named`: the hosts the
/// config names (next hops, static neighbours), none of which may be a
/// NAT address.
pub(super) fn validate_nat(
    cx: &Ctx,
    config: &Config,
    interfaces: &mut [L3Interface],
    named: &[[u8; 4]],
) -> Result<NatRules, ConfigError> {
    let mut rules = NatRules {
        hairpin_ports: (1024, 65535),
        ..Default::default()
    };
    for n in &config.nat {
        let out = interfaces
            .iter()
            .find(|i| &i.name == n.out.get_ref())
            .ok_or_else(|| {
                cx.err(
                    n.out.span(),
                    "nat.out",
                    format!("no bridge with a gateway named {:?}", n.out.get_ref()),
                )
            })?;
        let (out_domain, out_name) = (out.domain, out.name.clone());
        // Each address with where it came from, for an error that names
        // it.
        let pool: Vec<([u8; 4], std::ops::Range<usize>, &str)> = match (&n.address, &n.pool[..]) {
            (Some(a), [_, ..]) => {
                return Err(cx.err(a.span(), "nat.pool", "give address or pool, not both"))
            }
            (None, [_, ..]) => pool_of(cx, &n.pool)?
                .into_iter()
                .map(|(a, span)| (a, span, "nat.pool"))
                .collect(),
            (Some(a), []) => {
                let ip = a.get_ref().parse::<Ipv4Addr>().map_err(|e| {
                    cx.err(a.span(), "nat.address", format!("{:?}: {e}", a.get_ref()))
                })?;
                vec![(ip.octets(), a.span(), "nat.address")]
            }
            (None, []) => {
                let ip = out.v4.first().map(|a| a.0).ok_or_else(|| {
                    cx.err(
                        n.out.span(),
                        "nat.out",
                        format!("{:?} has no IPv4 address to masquerade as", out.name),
                    )
                })?;
                vec![(ip, n.out.span(), "nat.out")]
            }
        };
        // Published ports' public addresses are the first pool address
        // unless they say otherwise.
        let address = pool[0].0;
        let mut sources = Vec::new();
        for s in &n.sources {
            match super::l3::prefix_of(cx, s, "nat.sources")? {
                (std::net::IpAddr::V4(a), l) => sources.push((a.octets(), l)),
                _ => {
                    return Err(cx.err(
                        s.span(),
                        "nat.sources",
                        format!("{:?}: NAT is IPv4 (NAT44)", s.get_ref()),
                    ))
                }
            }
        }
        if n.sources.is_empty() {
            sources = interfaces
                .iter()
                .filter(|i| i.domain != out.domain)
                .flat_map(|i| i.v4.iter().copied())
                .collect();
        }
        let ports = match &n.ports {
            Some(p) => match p.get_ref().as_slice() {
                [lo, hi] if lo <= hi && *lo > 0 => (*lo, *hi),
                _ => {
                    return Err(cx.err(
                        p.span(),
                        "nat.ports",
                        "want [FIRST, LAST], 1 <= FIRST <= LAST <= 65535",
                    ))
                }
            },
            None => (1024, 65535),
        };
        let per_source = match &n.per_source {
            Some(p) if *p.get_ref() == 0 => {
                return Err(cx.err(p.span(), "nat.per_source", "at least 1"))
            }
            Some(p) => *p.get_ref(),
            None => DEFAULT_PER_SOURCE,
        };
        let first_publish = rules.publish.len();
        for p in &n.publish {
            let pb = Publish::parse(p.get_ref(), address, per_source)
                .map_err(|e| cx.err(p.span(), "nat.publish", e.to_string()))?;
            if rules
                .publish
                .iter()
                .any(|x: &Publish| x.proto == pb.proto && x.public == pb.public)
            {
                return Err(cx.err(
                    p.span(),
                    "nat.publish",
                    "that public address and port is published twice",
                ));
            }
            rules.publish.push(pb);
        }
        let from_publish = rules.publish[first_publish..]
            .iter()
            .zip(&n.publish)
            .map(|(p, text)| (p.public.0, text.span(), "nat.publish"));
        let wanted: Vec<_> = pool.iter().cloned().chain(from_publish).collect();
        for (a, span, field) in wanted {
            claim(interfaces, named, out_domain, &out_name, a)
                .map_err(|msg| cx.err(span, field, msg))?;
        }
        rules.masquerade.push(Masquerade {
            out: out_domain,
            sources,
            pool: pool.into_iter().map(|(a, ..)| a).collect(),
            ports,
            per_source,
        });
    }
    Ok(rules)
}

/// Gives `out` the NAT address `a` unless it is already its own. The
/// router answers ARP for it and takes its packets, so an address that
/// is some host's is refused: another gateway's own, one on another
/// gateway's subnet, a next hop or neighbour the config names, `out`'s
/// subnet's network or broadcast address, or no unicast address at all.
fn claim(
    interfaces: &mut [L3Interface],
    named: &[[u8; 4]],
    out: pollgate_pipeline::DomainId,
    out_name: &str,
    a: [u8; 4],
) -> Result<(), String> {
    let ip = Ipv4Addr::from(a);
    if ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a[0] >= 240
    {
        return Err(format!("{ip} is not a unicast address"));
    }
    let within = |net: [u8; 4], len: u8| pollgate_pipeline::nat::rules::in_prefix(a, net, len);
    for i in interfaces.iter() {
        if i.domain != out && i.answers_v4(a) {
            return Err(format!(
                "{ip} is {:?}'s address, not {out_name:?}'s to translate to",
                i.name
            ));
        }
        if i.domain != out {
            if let Some((net, len)) = i.v4.iter().find(|(net, len)| within(*net, *len)) {
                return Err(format!(
                    "{ip} is on {:?}'s subnet {}/{len}: a host's there, not {out_name:?}'s to translate to",
                    i.name,
                    Ipv4Addr::from(*net)
                ));
            }
        }
        if i.domain == out && !i.owns_v4(a) {
            let edge = i.v4.iter().any(|(net, len)| {
                let host_bits = u32::MAX.checked_shr(*len as u32).unwrap_or(0);
                *len <= 30 && within(*net, *len) && {
                    let h = u32::from_be_bytes(a) & host_bits;
                    h == 0 || h == host_bits
                }
            });
            if edge {
                return Err(format!(
                    "{ip} is the network or broadcast address of {out_name:?}'s subnet"
                ));
            }
        }
    }
    if named.contains(&a) {
        return Err(format!(
            "{ip} is a next hop or neighbour the config names: a host's, not {out_name:?}'s to translate to"
        ));
    }
    if let Some(i) = interfaces.iter_mut().find(|i| i.domain == out) {
        if !i.answers_v4(a) {
            i.nat_v4.push(a);
        }
    }
    Ok(())
}

/// An address and the span of the config entry that gave it.
type Placed = ([u8; 4], std::ops::Range<usize>);

/// The addresses of `pool`'s entries, in order, each once, with the
/// span of the entry that gave it.
fn pool_of(cx: &Ctx, pool: &[Spanned<String>]) -> Result<Vec<Placed>, ConfigError> {
    let mut out: Vec<Placed> = Vec::new();
    for e in pool {
        let s = e.get_ref().trim();
        let bad = |why: String| cx.err(e.span(), "nat.pool", format!("{s:?}: {why}"));
        let ip = |t: &str| {
            t.trim()
                .parse::<Ipv4Addr>()
                .map(u32::from)
                .map_err(|_| bad(format!("{t:?} is not an IPv4 address")))
        };
        let (first, last) = if let Some((a, b)) = s.split_once('-') {
            (ip(a)?, ip(b)?)
        } else if let Some((a, len)) = s.split_once('/') {
            let len: u32 = match len.parse() {
                Ok(l) if l <= 32 => l,
                _ => return Err(bad("the prefix length is 0 to 32".into())),
            };
            let net = ip(a)? & u32::MAX.checked_shl(32 - len).unwrap_or(0);
            (net, net | u32::MAX.checked_shr(len).unwrap_or(0))
        } else {
            let a = ip(s)?;
            (a, a)
        };
        if first > last {
            return Err(bad("the range runs backwards".into()));
        }
        let too_many = || bad(format!("a pool has at most {MAX_POOL} addresses"));
        if (last - first) as usize >= MAX_POOL {
            return Err(too_many());
        }
        for a in first..=last {
            let a = a.to_be_bytes();
            if !out.iter().any(|(x, _)| *x == a) {
                out.push((a, e.span()));
            }
        }
        if out.len() > MAX_POOL {
            return Err(too_many());
        }
    }
    Ok(out)
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
gateway = { addresses = ["198.18.1.1/24"] }
[[bridge]]
name = "wan"
members = [{ port = "b" }]
gateway = { addresses = ["198.18.2.1/24"] }
[[nat]]
out = "wan"
publish = ["tcp 8080 -> 198.18.1.10:80"]
"#;

    #[test]
    fn masquerades_the_other_subnets_by_default() {
        let t = parse("gw.toml", BASE).unwrap();
        let nat = t.l3.unwrap().nat;
        let m = &nat.masquerade[0];
        assert_eq!((m.out, m.pool.clone()), (1, vec![[198, 18, 2, 1]]));
        assert_eq!(m.sources, vec![([198, 18, 1, 1], 24)]);
        assert_eq!(nat.publish[0].public, ([198, 18, 2, 1], 8080));
    }

    #[test]
    fn a_pool_is_ranges_and_prefixes_and_its_addresses_are_the_uplinks() {
        let with =
            |pool: &str| BASE.replace("out = \"wan\"", &format!("out = \"wan\"\npool = {pool}"));
        let t = parse(
            "gw.toml",
            &with(r#"["198.18.2.10-198.18.2.12", "198.18.2.20/31", "198.18.2.11"]"#),
        )
        .unwrap();
        let l3 = t.l3.unwrap();
        let want: Vec<[u8; 4]> = [10, 11, 12, 20, 21].map(|d| [198, 18, 2, d]).to_vec();
        assert_eq!(l3.nat.masquerade[0].pool, want);
        // Published ports take the first pool address.
        assert_eq!(l3.nat.publish[0].public, ([198, 18, 2, 10], 8080));
        let wan = l3.interfaces.iter().find(|i| i.name == "wan").unwrap();
        assert_eq!(wan.nat_v4, want);
        let lan = l3.interfaces.iter().find(|i| i.name == "lan").unwrap();
        assert!(lan.nat_v4.is_empty());
        // The interface's own address is not added again.
        let t = parse("gw.toml", &with(r#"["198.18.2.1-198.18.2.2"]"#)).unwrap();
        let l3 = t.l3.unwrap();
        let wan = l3.interfaces.iter().find(|i| i.name == "wan").unwrap();
        assert_eq!(wan.nat_v4, vec![[198, 18, 2, 2]]);

        let err = |pool: &str| parse("gw.toml", &with(pool)).unwrap_err();
        for (pool, says) in [
            (r#"["198.18.2.12-198.18.2.10"]"#, "backwards"),
            (r#"["198.18.2.0/23"]"#, "at most 256"),
            (r#"["198.18.2.0/24", "198.18.3.1"]"#, "at most 256"),
            (r#"["198.18.2.300"]"#, "not an IPv4 address"),
            (r#"["198.18.2.0/33"]"#, "0 to 32"),
            (r#"["198.18.1.1"]"#, "\"lan\"'s address"),
            (r#"["198.18.1.50"]"#, "on \"lan\"'s subnet 198.18.1.1/24"),
            (r#"["198.18.2.0/30"]"#, "network or broadcast"),
            (r#"["198.18.2.255"]"#, "network or broadcast"),
            (r#"["224.0.0.9"]"#, "not a unicast address"),
        ] {
            let e = err(pool);
            assert_eq!((e.line, e.field.as_str()), (18, "nat.pool"), "{pool}: {e}");
            assert!(e.message.contains(says), "{pool}: {e}");
        }
        let e = parse(
            "gw.toml",
            &BASE.replace(
                "out = \"wan\"",
                "out = \"wan\"\naddress = \"198.18.2.9\"\npool = [\"198.18.2.10\"]",
            ),
        )
        .unwrap_err();
        assert_eq!(e.field, "nat.pool", "{e}");
        // A pool address that is a route's next hop would take its
        // traffic; the error names the entry's own line.
        let routed = BASE.replace(
            "[[nat]]",
            "[[route]]\nprefix = \"198.19.0.0/16\"\nvia = \"198.18.2.254\"\n[[nat]]",
        );
        let e = parse(
            "gw.toml",
            &routed.replace(
                "out = \"wan\"",
                "out = \"wan\"\npool = [\n\"198.18.2.10\",\n\"198.18.2.250-198.18.2.254\",\n]",
            ),
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (23, "nat.pool"), "{e}");
        assert!(e.message.contains("next hop"), "{e}");
        // Duplicates count once against the limit.
        let t = parse("gw.toml", &with(r#"["198.18.3.0/24", "198.18.3.7"]"#)).unwrap();
        assert_eq!(t.l3.unwrap().nat.masquerade[0].pool.len(), 256);
        // An uplink with IPv6 only still masquerades to a pool.
        let v6 = with(r#"["198.18.2.10"]"#).replace("198.18.2.1/24", "2001:db8:2::1/64");
        let t = parse("gw.toml", &v6).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.l3.unwrap().nat.masquerade[0].pool, vec![[198, 18, 2, 10]]);
        // A published port on another gateway's address names the rule.
        let e = parse(
            "gw.toml",
            &BASE.replace("tcp 8080 ->", "tcp 198.18.1.1:8080 ->"),
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (18, "nat.publish"), "{e}");
        assert!(e.message.contains("\"lan\"'s address"), "{e}");
    }

    #[test]
    fn bad_nat_rules_name_the_line_and_field() {
        let err = |src: String| parse("gw.toml", &src).unwrap_err();
        let e = err(BASE.replace("out = \"wan\"", "out = \"nowhere\""));
        assert_eq!((e.line, e.field.as_str()), (17, "nat.out"), "{e}");
        let e = err(BASE.replace("tcp 8080", "sctp 8080"));
        assert_eq!(e.field, "nat.publish", "{e}");
        assert!(e.message.contains("sctp"), "{e}");
        let e = err(BASE.replace(
            "out = \"wan\"",
            "out = \"wan\"\nsources = [\"2001:2::/48\"]",
        ));
        assert_eq!(e.field, "nat.sources", "{e}");
        let e = err(BASE.replace("out = \"wan\"", "out = \"wan\"\nports = [2000, 1000]"));
        assert_eq!(e.field, "nat.ports", "{e}");
        // Several workers share NAT out (each its share of the ports).
        let two = format!("{BASE}[[worker]]\nports = [\"a\"]\n[[worker]]\nports = [\"b\"]\n");
        assert!(
            parse("gw.toml", &two).is_ok(),
            "{:?}",
            parse("gw.toml", &two).err()
        );
    }
}
