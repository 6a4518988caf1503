//! One ACL rule: the fields it matches and what it does. Every field is
//! optional; an absent field matches everything. The text form
//! (`permit src=198.18.0.0/24 proto=tcp dport=80 stateful`) is what
//! `pollgate ctl acl add` takes and `show acl` prints.

use crate::verdict::{DomainId, PortId};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Permit,
    Deny,
}

impl Action {
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        match s {
            "permit" | "allow" | "accept" => Ok(Action::Permit),
            "deny" | "drop" => Ok(Action::Deny),
            _ => Err(RuleError::Value {
                field: "action",
                value: s.to_string(),
                expected: "permit or deny",
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Permit => "permit",
            Action::Deny => "deny",
        }
    }
}

/// An IPv4 or IPv6 prefix. The address is kept left-aligned in a u128 (an
/// IPv4 address in the top 32 bits) so both families split into the same
/// 16-bit chunks from the most significant end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    pub v6: bool,
    /// Left-aligned address with the bits past `len` cleared.
    pub bits: u128,
    pub len: u8,
}

impl IpPrefix {
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, RuleError> {
        let (v6, raw, max) = match addr {
            IpAddr::V4(a) => (false, (u32::from(a) as u128) << 96, 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        if len > max {
            return Err(RuleError::Value {
                field: "prefix",
                value: format!("{addr}/{len}"),
                expected: "a prefix length of at most 32 (IPv4) or 128 (IPv6)",
            });
        }
        Ok(IpPrefix {
            v6,
            bits: raw & mask(len),
            len,
        })
    }

    /// Whether a left-aligned address of the same family is inside.
    #[inline]
    pub fn contains(&self, addr: u128) -> bool {
        addr & mask(self.len) == self.bits
    }

    pub fn parse(s: &str) -> Result<Self, RuleError> {
        let bad = || RuleError::Value {
            field: "prefix",
            value: s.to_string(),
            expected: "ADDRESS or ADDRESS/LEN, IPv4 or IPv6",
        };
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.parse().map_err(|_| bad())?,
            None => max,
        };
        Self::new(addr, len)
    }
}

/// Mask of the top `len` bits of a u128.
#[inline]
pub fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.bits), self.len)
        } else {
            write!(
                f,
                "{}/{}",
                Ipv4Addr::from((self.bits >> 96) as u32),
                self.len
            )
        }
    }
}

/// An inclusive port range; `ANY` is 0..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange { lo: 0, hi: 65535 };

    pub fn is_any(&self) -> bool {
        *self == Self::ANY
    }

    #[inline]
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    pub fn parse(field: &'static str, s: &str) -> Result<Self, RuleError> {
        let bad = || RuleError::Value {
            field,
            value: s.to_string(),
            expected: "PORT or LO-HI with LO <= HI <= 65535",
        };
        let (lo, hi) = match s.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (s, s),
        };
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
        Ok(PortRange { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// For a permit: its flows let their reverse direction back in.
    pub stateful: bool,
    pub src: Option<IpPrefix>,
    pub dst: Option<IpPrefix>,
    pub proto: Option<u8>,
    pub sport: PortRange,
    pub dport: PortRange,
    pub ethertype: Option<u16>,
    /// VID the frame carried on ingress (0: untagged).
    pub vlan: Option<u16>,
    pub domain: Option<DomainId>,
    pub in_port: Option<PortId>,
}

/// Which packet families a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
    pub other: bool,
}

impl Rule {
    pub fn new(action: Action) -> Self {
        Rule {
            action,
            stateful: false,
            src: None,
            dst: None,
            proto: None,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
            ethertype: None,
            vlan: None,
            domain: None,
            in_port: None,
        }
    }

    pub fn families(&self) -> Families {
        let prefix_v6 = [self.src, self.dst].iter().flatten().map(|p| p.v6).next();
        let ip_only = prefix_v6.is_some()
            || self.proto.is_some()
            || !self.sport.is_any()
            || !self.dport.is_any();
        Families {
            v4: prefix_v6 != Some(true),
            v6: prefix_v6 != Some(false),
            other: !ip_only,
        }
    }

    /// Checks what cannot be expressed as a valid rule.
    pub fn validate(&self) -> Result<(), RuleError> {
        if let (Some(s), Some(d)) = (self.src, self.dst) {
            if s.v6 != d.v6 {
                return Err(RuleError::MixedFamilies);
            }
        }
        if self.stateful && self.action != Action::Permit {
            return Err(RuleError::StatefulDeny);
        }
        if let Some(v) = self.vlan {
            if v > 4095 {
                return Err(RuleError::Value {
                    field: "vlan",
                    value: v.to_string(),
                    expected: "a VID 0..=4095",
                });
            }
        }
        Ok(())
    }

    /// Parses the text form. Port and domain names are resolved by
    /// `names(kind, name)` where kind is "port" or "domain".
    pub fn parse_text(
        text: &str,
        names: &dyn Fn(&str, &str) -> Option<u16>,
    ) -> Result<Rule, RuleError> {
        let mut words = text.split_whitespace();
        let action = Action::parse(words.next().ok_or(RuleError::Empty)?)?;
        let mut rule = Rule::new(action);
        for w in words {
            if w == "stateful" {
                rule.stateful = true;
                continue;
            }
            let (k, v) = w.split_once('=').ok_or_else(|| RuleError::Value {
                field: "rule",
                value: w.to_string(),
                expected: "FIELD=VALUE or `stateful`",
            })?;
            rule.set_field(k, v, names)?;
        }
        rule.validate()?;
        Ok(rule)
    }

    /// Sets one field from its text value; shared by the config file
    /// and the text form so both accept the same spellings.
    pub fn set_field(
        &mut self,
        key: &str,
        value: &str,
        names: &dyn Fn(&str, &str) -> Option<u16>,
    ) -> Result<(), RuleError> {
        match key {
            "src" => self.src = Some(IpPrefix::parse(value)?),
            "dst" => self.dst = Some(IpPrefix::parse(value)?),
            "proto" => self.proto = Some(parse_proto(value)?),
            "sport" => self.sport = PortRange::parse("sport", value)?,
            "dport" => self.dport = PortRange::parse("dport", value)?,
            "ethertype" => {
                self.ethertype = Some(parse_u16(value).ok_or_else(|| RuleError::Value {
                    field: "ethertype",
                    value: value.to_string(),
                    expected: "a number such as 0x0800",
                })?)
            }
            "vlan" => {
                self.vlan = Some(parse_u16(value).filter(|&v| v <= 4095).ok_or_else(|| {
                    RuleError::Value {
                        field: "vlan",
                        value: value.to_string(),
                        expected: "a VID 0..=4095",
                    }
                })?)
            }
            "domain" | "bridge" => {
                self.domain = Some(names("domain", value).ok_or_else(|| RuleError::Unknown {
                    kind: "bridge domain",
                    name: value.to_string(),
                })?)
            }
            "vni" => {
                // A VNI is its bridge domain's: the rule matches the domain.
                self.domain = Some(names("vni", value).ok_or_else(|| RuleError::Unknown {
                    kind: "VNI (no bridge maps it)",
                    name: value.to_string(),
                })?)
            }
            "in_port" | "port" => {
                self.in_port = Some(names("port", value).ok_or_else(|| RuleError::Unknown {
                    kind: "port",
                    name: value.to_string(),
                })?)
            }
            "action" => self.action = Action::parse(value)?,
            _ => return Err(RuleError::Field(key.to_string())),
        }
        Ok(())
    }

    /// The text form, with port and domain ids shown through `name`.
    pub fn to_text(&self, name: &dyn Fn(&str, u16) -> String) -> String {
        let mut s = self.action.name().to_string();
        if let Some(p) = self.src {
            s += &format!(" src={p}");
        }
        if let Some(p) = self.dst {
            s += &format!(" dst={p}");
        }
        if let Some(p) = self.proto {
            s += &format!(" proto={}", proto_name(p));
        }
        if !self.sport.is_any() {
            s += &format!(" sport={}", self.sport);
        }
        if !self.dport.is_any() {
            s += &format!(" dport={}", self.dport);
        }
        if let Some(e) = self.ethertype {
            s += &format!(" ethertype={e:#06x}");
        }
        if let Some(v) = self.vlan {
            s += &format!(" vlan={v}");
        }
        if let Some(d) = self.domain {
            s += &format!(" domain={}", name("domain", d));
        }
        if let Some(p) = self.in_port {
            s += &format!(" in_port={}", name("port", p));
        }
        if self.stateful {
            s += " stateful";
        }
        s
    }
}

fn parse_u16(s: &str) -> Option<u16> {
    match s.strip_prefix("0x") {
        Some(h) => u16::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

pub fn parse_proto(s: &str) -> Result<u8, RuleError> {
    match s {
        "icmp" => Ok(1),
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmpv6" | "ipv6-icmp" => Ok(58),
        "gre" => Ok(47),
        "esp" => Ok(50),
        "sctp" => Ok(132),
        _ => s.parse().map_err(|_| RuleError::Value {
            field: "proto",
            value: s.to_string(),
            expected: "tcp, udp, icmp, icmpv6, or a number 0..=255",
        }),
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        _ => p.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("empty rule: it starts with `permit` or `deny`")]
    Empty,
    #[error("unknown rule field `{0}` (fields: src dst proto sport dport ethertype vlan domain vni in_port stateful)")]
    Field(String),
    #[error("bad {field} `{value}`: expected {expected}")]
    Value {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown {kind} `{name}`")]
    Unknown { kind: &'static str, name: String },
    #[error("src and dst are of different IP families")]
    MixedFamilies,
    #[error("`stateful` applies to permit rules only")]
    StatefulDeny,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str, _: &str) -> Option<u16> {
        None
    }

    #[test]
    fn text_round_trip() {
        let t = "permit src=198.18.0.0/15 dst=2001:db8::/32 proto=tcp dport=80 stateful";
        assert_eq!(Rule::parse_text(t, &none), Err(RuleError::MixedFamilies));
        let t = "permit src=198.18.0.0/15 dst=198.19.1.1/32 proto=tcp sport=1024-65535 dport=80 stateful";
        let r = Rule::parse_text(t, &none).unwrap();
        assert_eq!(r.to_text(&|_, i| i.to_string()), t);
        assert_eq!(
            r.families(),
            Families {
                v4: true,
                v6: false,
                other: false
            }
        );
    }

    #[test]
    fn prefixes_are_masked_and_checked() {
        let p = IpPrefix::parse("198.18.7.9/16").unwrap();
        assert_eq!(p.to_string(), "198.18.0.0/16");
        assert!(p.contains((0xc612_ffffu128) << 96));
        assert!(!p.contains((0xc613_0000u128) << 96));
        assert!(IpPrefix::parse("198.18.0.0/33").is_err());
        assert!(IpPrefix::parse("::/0").unwrap().contains(u128::MAX));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = Rule::parse_text("permit dport=90-80", &none).unwrap_err();
        assert!(e.to_string().contains("dport"), "{e}");
        let e = Rule::parse_text("deny stateful", &none).unwrap_err();
        assert_eq!(e, RuleError::StatefulDeny);
        let e = Rule::parse_text("deny colour=red", &none).unwrap_err();
        assert_eq!(e, RuleError::Field("colour".into()));
        let e = Rule::parse_text("deny in_port=nope", &none).unwrap_err();
        assert!(e.to_string().contains("nope"));
    }
}
