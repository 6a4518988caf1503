//! What is translated: masquerade rules (traffic from some prefixes
//! leaving through an interface takes an address of it, or a given one)
//! and published ports (`docker run -p`: a public address and port
//! forwarded to an inside one).

use crate::verdict::DomainId;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masquerade {
    /// The domain whose gateway interface the traffic leaves through.
    pub out: DomainId,
    /// Source prefixes (address, length) translated.
    pub sources: Vec<([u8; 4], u8)>,
    /// The addresses sessions take: one (Docker's masquerade, the
    /// interface's own) or a pool.
    pub pool: Vec<[u8; 4]>,
    /// The ports handed out, inclusive.
    pub ports: (u16, u16),
    /// Sessions a single source address may hold.
    pub per_source: u32,
}

impl Masquerade {
    pub fn covers(&self, src: [u8; 4]) -> bool {
        self.sources
            .iter()
            .any(|(net, len)| in_prefix(src, *net, *len))
    }

    /// The pool address `src`'s sessions take: always the same one for
    /// one inside address ("paired" pooling, RFC 4787 REQ-2), so that a
    /// peer sees one host as one address; a hash spreads the hosts.
    #[inline]
    pub fn address_for(&self, src: [u8; 4]) -> Option<[u8; 4]> {
        let h = u32::from_be_bytes(src).wrapping_mul(0x9e37_79b1) as u64;
        let i = (h * self.pool.len() as u64) >> 32;
        self.pool.get(i as usize).copied()
    }
}

pub fn in_prefix(a: [u8; 4], net: [u8; 4], len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32) as u32)
    };
    u32::from_be_bytes(a) & mask == u32::from_be_bytes(net) & mask
}

/// A published port: packets to `public` are sent to `inside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    pub proto: u8,
    pub public: ([u8; 4], u16),
    pub inside: ([u8; 4], u16),
    pub per_source: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("expected \"tcp|udp [ADDRESS:]PORT -> ADDRESS:PORT\", got {0:?}")]
    Syntax(String),
    #[error("protocol {0:?}: tcp or udp")]
    Protocol(String),
    #[error("{0:?} is not an IPv4 address")]
    Address(String),
    #[error("port {0:?}: 1-65535")]
    Port(String),
}

impl Publish {
    /// Parses `"tcp 198.18.100.1:8080 -> 198.18.1.10:80"`; without an
    /// address on the left, `default` is the public one.
    pub fn parse(s: &str, default: [u8; 4], per_source: u32) -> Result<Publish, PublishError> {
        let syntax = || PublishError::Syntax(s.to_string());
        let (left, right) = s.split_once("->").ok_or_else(syntax)?;
        // A syntax error names the whole rule, not the side it is in.
        let whole = |e| match e {
            PublishError::Syntax(_) => syntax(),
            e => e,
        };
        let (proto, public, port) = parse_public(left).map_err(whole)?;
        Ok(Publish {
            proto,
            public: (public.unwrap_or(default), port),
            inside: parse_inside(right).map_err(whole)?,
            per_source,
        })
    }
}

/// A rule's public side, `tcp|udp [ADDRESS:]PORT` (left of `->`): the
/// protocol, the address if it is given, the port. Also how `ctl`
/// names a rule to withdraw.
pub fn parse_public(left: &str) -> Result<(u8, Option<[u8; 4]>, u16), PublishError> {
    let syntax = || PublishError::Syntax(left.to_string());
    let mut words = left.split_whitespace();
    let proto = match words.next().ok_or_else(syntax)? {
        "tcp" => 6,
        "udp" => 17,
        p => return Err(PublishError::Protocol(p.to_string())),
    };
    let public = words.next().ok_or_else(syntax)?;
    if words.next().is_some() {
        return Err(syntax());
    }
    Ok(match public.rsplit_once(':') {
        Some((a, p)) => (proto, Some(addr(a)?), port(p)?),
        None => (proto, None, port(public)?),
    })
}

/// A rule's inside side, `ADDRESS:PORT` (right of `->`).
pub fn parse_inside(right: &str) -> Result<([u8; 4], u16), PublishError> {
    let (a, p) = right
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| PublishError::Syntax(right.to_string()))?;
    Ok((addr(a)?, port(p)?))
}

fn addr(s: &str) -> Result<[u8; 4], PublishError> {
    s.trim()
        .parse::<Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| PublishError::Address(s.to_string()))
}

fn port(s: &str) -> Result<u16, PublishError> {
    match s.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(PublishError::Port(s.to_string())),
    }
}

/// Every rule, shared by the workers (rebuilt on a change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatRules {
    pub masquerade: Vec<Masquerade>,
    pub publish: Vec<Publish>,
    /// Ports hairpinned sessions (an inside host reaching a published
    /// port) take on the inside interface's address.
    pub hairpin_ports: (u16, u16),
}

impl NatRules {
    pub fn is_empty(&self) -> bool {
        self.masquerade.is_empty() && self.publish.is_empty()
    }

    #[inline]
    pub fn published(&self, proto: u8, dst: [u8; 4], dport: u16) -> Option<&Publish> {
        self.publish
            .iter()
            .find(|p| p.proto == proto && p.public == (dst, dport))
    }

    /// The masquerade rule for a packet from `src` leaving through `out`.
    #[inline]
    pub fn masquerade_for(&self, out: DomainId, src: [u8; 4]) -> Option<&Masquerade> {
        self.masquerade
            .iter()
            .find(|m| m.out == out && m.covers(src))
    }

    /// Whether `src` is inside some masquerade rule (a hairpin source).
    pub fn inside(&self, src: [u8; 4]) -> bool {
        self.masquerade.iter().any(|m| m.covers(src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_publish_rules_and_names_what_is_wrong() {
        let d = [198, 18, 100, 1];
        let p = Publish::parse("tcp 198.18.100.2:8080 -> 198.18.1.10:80", d, 9).unwrap();
        assert_eq!(
            (p.proto, p.public, p.inside),
            (6, ([198, 18, 100, 2], 8080), ([198, 18, 1, 10], 80))
        );
        let p = Publish::parse("udp 53 -> 198.18.1.10:5353", d, 9).unwrap();
        assert_eq!(p.public, (d, 53));
        assert_eq!(
            Publish::parse("sctp 1 -> 1.2.3.4:5", d, 9),
            Err(PublishError::Protocol("sctp".into()))
        );
        assert_eq!(
            Publish::parse("tcp 0 -> 1.2.3.4:5", d, 9),
            Err(PublishError::Port("0".into()))
        );
        assert!(matches!(
            Publish::parse("tcp 80 198.18.1.1:80", d, 9),
            Err(PublishError::Syntax(_))
        ));
    }

    #[test]
    fn prefixes() {
        assert!(in_prefix([198, 18, 1, 77], [198, 18, 1, 0], 24));
        assert!(!in_prefix([198, 18, 2, 77], [198, 18, 1, 0], 24));
        assert!(in_prefix([9, 9, 9, 9], [0, 0, 0, 0], 0));
    }
}
