//! The traffic spec: one small TOML file per scenario. The same spec
//! drives the built-in generator and is rendered into a TRex STL profile
//! and a pktgen-DPDK script, so every tool sends the same frames.

use pollgate_pipeline::wire::MacAddr;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// The classic simple IMIX (7:4:1 of 64, 570 and 1518 bytes): the sizes
/// in the order one IMIX cycle of 12 frames sends them.
pub const IMIX: [(u16, u32); 3] = [(64, 7), (570, 4), (1518, 1)];

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {msg}")]
    Syntax {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{file}: field `{field}`: {msg}")]
    Field {
        file: String,
        field: &'static str,
        msg: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Udp,
    Tcp,
}

/// Largest frame size: a 9000-byte MTU's frame with its FCS.
pub const MAX_FRAME: u16 = 9018;

/// Frame size on the wire, FCS included (as RFC 2544 and pktgen count).
/// A frame too small for its headers and the 18-byte stamp (64 bytes
/// with a VLAN tag, TCP or VXLAN) grows to fit: `frame::len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed(u16),
    Imix,
}

/// Packets per second, or as fast as the port takes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Max,
    Pps(f64),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanSpec {
    pub vni: u32,
    pub src_mac: MacText,
    pub dst_mac: MacText,
    pub src_ip: std::net::Ipv4Addr,
    pub dst_ip: std::net::Ipv4Addr,
    /// First outer UDP source port; flow i uses `sport + i` (the entropy
    /// a VTEP derives from the inner flow, RFC 7348 §5).
    #[serde(default = "default_vxlan_sport")]
    pub sport: u16,
}

fn default_vxlan_sport() -> u16 {
    49152
}

/// A MAC address as TOML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MacText(pub MacAddr);

impl TryFrom<String> for MacText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse::<MacAddr>()
            .map(MacText)
            .map_err(|_| format!("`{s}` is not a MAC address (aa:bb:cc:dd:ee:ff)"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    description: String,
    src_mac: MacText,
    dst_mac: MacText,
    /// VLAN IDs, outermost first: one is 802.1Q, two are QinQ (802.1ad
    /// outer, 802.1Q inner).
    #[serde(default)]
    vlan: Vec<u16>,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    proto: Proto,
    sport: u16,
    dport: u16,
    #[serde(default = "one")]
    flows: u32,
    #[serde(default)]
    vary_src_mac: bool,
    size: toml::Value,
    #[serde(default)]
    rate: Option<toml::Value>,
    vxlan: Option<VxlanSpec>,
}

fn one() -> u32 {
    1
}

/// A checked traffic spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub name: String,
    pub description: String,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub vlan: Vec<u16>,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub proto: Proto,
    pub sport: u16,
    pub dport: u16,
    /// Flow i (0..flows) adds i to the source address and the source port.
    pub flows: u32,
    /// Flow i also adds i to the source MAC (its low 32 bits): N flows
    /// are N stations, as a MAC-flood attack or a big LAN looks.
    pub vary_src_mac: bool,
    pub size: Size,
    pub rate: Rate,
    pub vxlan: Option<VxlanSpec>,
}

impl Spec {
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            file: file.clone(),
            source,
        })?;
        Spec::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| SpecError::Syntax {
            file: file.to_string(),
            line: e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .unwrap_or(0),
            msg: e.message().to_string(),
        })?;
        let bad = |field: &'static str, msg: String| SpecError::Field {
            file: file.to_string(),
            field,
            msg,
        };
        if raw.src_ip.is_ipv4() != raw.dst_ip.is_ipv4() {
            return Err(bad(
                "dst_ip",
                "source and destination must be the same IP version".into(),
            ));
        }
        if raw.vlan.len() > 2 {
            return Err(bad(
                "vlan",
                format!("{} tags: give one (802.1Q) or two (QinQ)", raw.vlan.len()),
            ));
        }
        if let Some(v) = raw.vlan.iter().find(|v| **v == 0 || **v > 4094) {
            return Err(bad("vlan", format!("VLAN ID {v} is outside 1..=4094")));
        }
        if raw.flows == 0 || raw.flows > 65536 {
            return Err(bad("flows", format!("{} is outside 1..=65536", raw.flows)));
        }
        if raw.sport as u32 + raw.flows - 1 > u16::MAX as u32 {
            return Err(bad(
                "sport",
                format!(
                    "sport {} + {} flows passes port 65535",
                    raw.sport, raw.flows
                ),
            ));
        }
        let low32 = match raw.src_ip {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => u128::from(a) as u32,
        };
        if low32 as u64 + raw.flows as u64 - 1 > u32::MAX as u64 {
            return Err(bad(
                "src_ip",
                format!(
                    "{} + {} flows wraps the address's low 32 bits",
                    raw.src_ip, raw.flows
                ),
            ));
        }
        let mac_low = u32::from_be_bytes(raw.src_mac.0 .0[2..6].try_into().expect("4 bytes"));
        if raw.vary_src_mac && mac_low as u64 + raw.flows as u64 - 1 > u32::MAX as u64 {
            return Err(bad(
                "src_mac",
                format!(
                    "{} + {} flows wraps the MAC's low 32 bits",
                    raw.src_mac.0, raw.flows
                ),
            ));
        }
        if let Some(v) = &raw.vxlan {
            if v.vni >= 1 << 24 {
                return Err(bad("vxlan.vni", format!("{} does not fit 24 bits", v.vni)));
            }
            if v.sport as u32 + raw.flows - 1 > u16::MAX as u32 {
                return Err(bad(
                    "vxlan.sport",
                    format!("{} + {} flows passes port 65535", v.sport, raw.flows),
                ));
            }
        }
        let size = match &raw.size {
            toml::Value::String(s) if s == "imix" => Size::Imix,
            toml::Value::Integer(n) if (64..=MAX_FRAME as i64).contains(n) => {
                Size::Fixed(*n as u16)
            }
            other => {
                return Err(bad(
                    "size",
                    format!(
                        "{other} is not allowed: a frame size 64..={MAX_FRAME} (FCS included; above 1518 the ports need an MTU of at least the size less 18) or \"imix\""
                    ),
                ))
            }
        };
        let rate = match &raw.rate {
            None => Rate::Max,
            Some(toml::Value::String(s)) if s == "max" => Rate::Max,
            Some(toml::Value::Integer(n)) if *n > 0 => Rate::Pps(*n as f64),
            Some(toml::Value::Float(n)) if *n > 0.0 => Rate::Pps(*n),
            Some(other) => {
                return Err(bad(
                    "rate",
                    format!("{other} is not allowed: packets per second (> 0) or \"max\""),
                ))
            }
        };
        let spec = Spec {
            name: raw.name,
            description: raw.description,
            src_mac: raw.src_mac.0,
            dst_mac: raw.dst_mac.0,
            vlan: raw.vlan,
            src_ip: raw.src_ip,
            dst_ip: raw.dst_ip,
            proto: raw.proto,
            sport: raw.sport,
            dport: raw.dport,
            flows: raw.flows,
            vary_src_mac: raw.vary_src_mac,
            size,
            rate,
            vxlan: raw.vxlan,
        };
        Ok(spec)
    }

    /// The frame sizes (FCS included) the spec sends, in cycle order:
    /// `IMIX` expands to 7 × 64, 4 × 570, 1 × 1518 interleaved.
    pub fn size_cycle(&self) -> Vec<u16> {
        match self.size {
            Size::Fixed(s) => vec![s],
            Size::Imix => {
                // Spread each size evenly over the 12-frame cycle, so
                // bursts mix sizes as IMIX traffic from a tester does.
                let mut cycle = Vec::with_capacity(12);
                let mut credit = [0i32; 3];
                for _ in 0..12 {
                    for (c, (_, w)) in credit.iter_mut().zip(IMIX) {
                        *c += w as i32;
                    }
                    let (i, _) = credit
                        .iter()
                        .enumerate()
                        .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
                        .expect("three sizes");
                    credit[i] -= 12;
                    cycle.push(IMIX[i].0);
                }
                cycle
            }
        }
    }

    /// The distinct sizes, smallest first.
    pub fn sizes(&self) -> Vec<u16> {
        match self.size {
            Size::Fixed(s) => vec![s],
            Size::Imix => IMIX.iter().map(|(s, _)| *s).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
src_mac = "02:00:00:00:00:01"
dst_mac = "02:00:00:00:00:02"
src_ip = "198.18.0.1"
dst_ip = "198.19.0.1"
proto = "udp"
sport = 1024
dport = 1025
"#;

    #[test]
    fn imix_cycle_is_seven_four_one() {
        let s = Spec::parse("t", &format!("{BASE}size = \"imix\"\n")).unwrap();
        let c = s.size_cycle();
        assert_eq!(c.len(), 12);
        for (size, w) in IMIX {
            assert_eq!(c.iter().filter(|x| **x == size).count() as u32, w);
        }
        // Interleaved, not 7 small frames then the rest.
        assert_ne!(&c[..7], &[64; 7]);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = Spec::parse("f.toml", &format!("{BASE}size = 20\n")).unwrap_err();
        assert!(e.to_string().contains("field `size`"), "{e}");
        let e = Spec::parse("f.toml", &format!("{BASE}size = 64\nvlan = [5000]\n")).unwrap_err();
        assert!(e.to_string().contains("field `vlan`"), "{e}");
        let e = Spec::parse("f.toml", &format!("{BASE}size = 64\nflows = 70000\n")).unwrap_err();
        assert!(e.to_string().contains("field `flows`"), "{e}");
        let e = Spec::parse("f.toml", &format!("{BASE}size = 64\nrate = -3\n")).unwrap_err();
        assert!(e.to_string().contains("field `rate`"), "{e}");
        let e = Spec::parse("f.toml", &format!("{BASE}size = 64\nbogus = 1\n")).unwrap_err();
        assert!(e.to_string().starts_with("f.toml:"), "{e}");
        let e = Spec::parse(
            "f.toml",
            &format!("{BASE}size = 64\n").replace("198.19.0.1", "2001:db8::1"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("field `dst_ip`"), "{e}");
    }

    #[test]
    fn vxlan_outer_sport_defaults_to_the_dynamic_range() {
        let t = format!(
            "{BASE}size = 128\n[vxlan]\nvni = 10\nsrc_mac = \"02:00:00:00:01:01\"\ndst_mac = \"02:00:00:00:01:02\"\nsrc_ip = \"198.18.1.1\"\ndst_ip = \"198.18.1.2\"\n"
        );
        let ok = Spec::parse("f.toml", &t).unwrap();
        assert_eq!(ok.vxlan.unwrap().sport, 49152);
    }
}
