//! The `portMappings` capability (`podman run -p 8080:80`, and what the
//! reference `portmap` plugin does with iptables DNAT): each mapping
//! becomes a port the engine's NAT publishes towards the container's
//! IPv4 address (`nat publish add`), withdrawn at DEL.

use rscni_plugin::error::Error;
use rscni_plugin::types::{PortMapping, Protocol};
use std::net::Ipv4Addr;

/// `nat publish add` requests for `mappings`, towards `container`;
/// `out` names the `[[nat]]` rule when the engine has several.
pub fn add_requests(
    mappings: &[PortMapping],
    out: Option<&str>,
    container: Option<Ipv4Addr>,
) -> Result<Vec<String>, Error> {
    let mut reqs = Vec::new();
    for m in mappings.iter().filter(|m| !is_v6(m)) {
        let to = container.ok_or_else(|| {
            invalid("the container got no IPv4 address to publish ports to (NAT is IPv4 only)")
        })?;
        let (public, inside) = sides(m, out, to)?;
        reqs.push(format!("nat publish add {public} -> {inside}"));
    }
    Ok(reqs)
}

/// The `nat publish del` requests that withdraw `mappings` published to
/// `container`. Each names the container's side too: the runtime calls
/// DEL after an ADD that failed (a host port another container holds),
/// and that must not withdraw the other container's port. No address
/// (no result cached from an ADD that succeeded): nothing of this
/// container's was published.
pub fn del_requests(
    mappings: &[PortMapping],
    out: Option<&str>,
    container: Option<Ipv4Addr>,
) -> Result<Vec<String>, Error> {
    let Some(to) = container else {
        return Ok(Vec::new());
    };
    mappings
        .iter()
        .filter(|m| !is_v6(m))
        .map(|m| {
            let (public, inside) = sides(m, out, to)?;
            Ok(format!("nat publish del {public} -> {inside}"))
        })
        .collect()
}

/// The first of `mappings` to `container` that `published` (as
/// `engine::published` lists them) lacks, as `PROTO [ADDRESS:]PORT ->
/// ADDRESS:PORT`: what CHECK reports missing.
pub fn missing(
    mappings: &[PortMapping],
    container: Ipv4Addr,
    published: &[(String, String, String)],
) -> Result<Option<String>, Error> {
    for m in mappings.iter().filter(|m| !is_v6(m)) {
        let (side, inside) = sides(m, None, container)?;
        let (proto, public) = side.split_once(' ').unwrap_or_default();
        let there = published.iter().any(|(p, pubd, ins)| {
            // `public` is `[ADDRESS:]PORT`; the engine always says both.
            p == proto
                && *ins == inside
                && match public.split_once(':') {
                    Some(_) => pubd == public,
                    None => pubd.rsplit(':').next() == Some(public),
                }
        });
        if !there {
            return Ok(Some(format!("{side} -> {inside}")));
        }
    }
    Ok(None)
}

/// A mapping for an IPv6 host address (`::` too): NAT is IPv4 only, and
/// as the portmap plugin does with a mapping of the other family, it is
/// left to whatever serves IPv6.
fn is_v6(m: &PortMapping) -> bool {
    m.custom
        .get("hostIP")
        .and_then(|v| v.as_str())
        .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
}

/// A mapping's rule towards `to`: `[out=OUT] PROTO [ADDRESS:]PORT` and
/// `ADDRESS:PORT`, the two sides of `->`.
fn sides(m: &PortMapping, out: Option<&str>, to: Ipv4Addr) -> Result<(String, String), Error> {
    let inside = format!("{to}:{}", port(m.container_port, "containerPort")?);
    Ok((public_side(m, out)?, inside))
}

/// `[out=OUT] PROTO [ADDRESS:]PORT`: the public side of a mapping.
fn public_side(m: &PortMapping, out: Option<&str>) -> Result<String, Error> {
    let proto = match m.protocol {
        None | Some(Protocol::Tcp) => "tcp",
        Some(Protocol::Udp) => "udp",
        Some(Protocol::Sctp) => {
            return Err(invalid("pollgate's NAT publishes tcp and udp, not sctp"))
        }
    };
    let host = port(m.host_port, "hostPort")?;
    // portmap's `hostIP`: none, or the any address, is NAT's own.
    let address = match m.custom.get("hostIP").and_then(|v| v.as_str()) {
        None | Some("") | Some("0.0.0.0") => String::new(),
        // IPv6 ones are left out before this (`is_v6`).
        Some(a) => match a.parse::<Ipv4Addr>() {
            Ok(a) => format!("{a}:"),
            Err(_) => return Err(invalid(&format!("hostIP {a:?} is not an address"))),
        },
    };
    let out = out.map_or(String::new(), |o| format!("out={o} "));
    Ok(format!("{out}{proto} {address}{host}"))
}

fn port(p: u32, what: &str) -> Result<u16, Error> {
    u16::try_from(p)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| invalid(&format!("{what} {p} is out of range: 1..=65535")))
}

fn invalid(why: &str) -> Error {
    Error::InvalidNetworkConfig(format!("pollgate-cni: portMappings: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(json: &str) -> PortMapping {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn mappings_become_publish_requests_and_bad_ones_are_named() {
        let ms = [
            mapping(r#"{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}"#),
            mapping(
                r#"{"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "198.18.30.1"}"#,
            ),
            mapping(r#"{"hostPort": 9090, "containerPort": 90, "hostIP": ""}"#),
        ];
        let c = Some(Ipv4Addr::new(198, 18, 60, 10));
        assert_eq!(
            add_requests(&ms, None, c).unwrap(),
            [
                "nat publish add tcp 8080 -> 198.18.60.10:80",
                "nat publish add udp 198.18.30.1:5353 -> 198.18.60.10:53",
                "nat publish add tcp 9090 -> 198.18.60.10:90",
            ]
        );
        assert_eq!(
            del_requests(&ms[..2], Some("wan"), c).unwrap(),
            [
                "nat publish del out=wan tcp 8080 -> 198.18.60.10:80",
                "nat publish del out=wan udp 198.18.30.1:5353 -> 198.18.60.10:53"
            ]
        );
        assert!(del_requests(&ms, None, None).unwrap().is_empty());
        assert!(add_requests(&[], None, None).unwrap().is_empty());
        // An IPv6 host address is left to whatever serves IPv6.
        let v6 = [
            mapping(r#"{"hostPort": 8080, "containerPort": 80, "hostIP": "::"}"#),
            mapping(r#"{"hostPort": 8080, "containerPort": 80, "hostIP": "2001:2::1"}"#),
        ];
        assert!(add_requests(&v6, None, c).unwrap().is_empty());
        assert!(del_requests(&v6, None, c).unwrap().is_empty());
        for (bad, why) in [
            (
                r#"{"hostPort": 8080, "containerPort": 80, "protocol": "sctp"}"#,
                "sctp",
            ),
            (
                r#"{"hostPort": 70000, "containerPort": 80}"#,
                "hostPort 70000",
            ),
            (
                r#"{"hostPort": 8080, "containerPort": 0}"#,
                "containerPort 0",
            ),
            (
                r#"{"hostPort": 8080, "containerPort": 80, "hostIP": "nope"}"#,
                "not an address",
            ),
        ] {
            let e = add_requests(&[mapping(bad)], None, c).unwrap_err();
            assert!(
                e.to_string().contains(why) || format!("{e:?}").contains(why),
                "{bad}: {e:?}"
            );
        }
        let shown = |rows: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
            rows.iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect()
        };
        let c0 = Ipv4Addr::new(198, 18, 60, 10);
        let all = shown(&[
            ("tcp", "198.18.30.1:8080", "198.18.60.10:80"),
            ("udp", "198.18.30.1:5353", "198.18.60.10:53"),
            ("tcp", "198.18.30.1:9090", "198.18.60.10:90"),
        ]);
        assert_eq!(missing(&ms, c0, &all).unwrap(), None);
        assert_eq!(
            missing(&ms, c0, &all[..2]).unwrap().as_deref(),
            Some("tcp 9090 -> 198.18.60.10:90")
        );
        // Published to another container, or on another address: missing.
        let other = shown(&[("tcp", "198.18.30.1:8080", "198.18.60.11:80")]);
        assert!(missing(&ms[..1], c0, &other).unwrap().is_some());
        let elsewhere = shown(&[("udp", "198.18.30.2:5353", "198.18.60.10:53")]);
        assert!(missing(&ms[1..2], c0, &elsewhere).unwrap().is_some());
        let e = add_requests(&ms[..1], None, None).unwrap_err();
        assert!(format!("{e:?}").contains("no IPv4 address"), "{e:?}");
    }
}
