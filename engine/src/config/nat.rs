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

pub(super) fn validate_nat(
    cx: &Ctx,
    config: &Config,
    interfaces: &[L3Interface],
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
        let address = match &n.address {
            Some(a) => a
                .get_ref()
                .parse::<Ipv4Addr>()
                .map(|a| a.octets())
                .map_err(|e| cx.err(a.span(), "nat.address", format!("{:?}: {e}", a.get_ref())))?,
            None => out.v4.first().map(|a| a.0).ok_or_else(|| {
                cx.err(
                    n.out.span(),
                    "nat.out",
                    format!("{:?} has no IPv4 address to masquerade as", out.name),
                )
            })?,
        };
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
        rules.masquerade.push(Masquerade {
            out: out.domain,
            sources,
            address,
            ports,
            per_source,
        });
    }
    Ok(rules)
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
        assert_eq!((m.out, m.address), (1, [198, 18, 2, 1]));
        assert_eq!(m.sources, vec![([198, 18, 1, 1], 24)]);
        assert_eq!(nat.publish[0].public, ([198, 18, 2, 1], 8080));
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
