//! ClassBench rule and trace files, the format `dpdk-test-acl --rulesf`
//! and `--tracef` read, so one rule set and one trace drive both pollgate
//! and rte_acl.
//!
//! Rule: `@SRC/LEN DST/LEN SPLO : SPHI DPLO : DPHI PROTO/MASK [FLAGS/MASK]`
//! Trace: `SRC DST SPORT DPORT PROTO [FILTER]`, addresses as integers.

use super::key::AclKey;
use super::rule::{Action, IpPrefix, PortRange, Rule};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {msg}")]
pub struct ClassBenchError {
    pub line: usize,
    pub msg: String,
}

/// Parses a ClassBench IPv4 rule file into permit rules, in file order
/// (the first line has the highest priority, as in test-acl).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, ClassBenchError> {
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |msg: String| ClassBenchError { line: n + 1, msg };
        let body = line
            .strip_prefix('@')
            .ok_or_else(|| err("a rule starts with `@`".into()))?;
        let t: Vec<&str> = body.split_whitespace().collect();
        if t.len() < 9 || t[3] != ":" || t[6] != ":" {
            return Err(err(
                "expected `@SRC/LEN DST/LEN LO : HI LO : HI PROTO/MASK`".into(),
            ));
        }
        let mut r = Rule::new(Action::Permit);
        let prefix = |s: &str| IpPrefix::parse(s).map_err(|e| err(e.to_string()));
        r.src = Some(prefix(t[0])?).filter(|p| p.len > 0);
        r.dst = Some(prefix(t[1])?).filter(|p| p.len > 0);
        let ports = |field, lo: &str, hi: &str| {
            PortRange::parse(field, &format!("{lo}-{hi}")).map_err(|e| err(e.to_string()))
        };
        r.sport = ports("sport", t[2], t[4])?;
        r.dport = ports("dport", t[5], t[7])?;
        let (p, m) = t[8]
            .split_once('/')
            .ok_or_else(|| err(format!("bad protocol `{}`: expected VALUE/MASK", t[8])))?;
        let num = |s: &str| {
            let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(h) => u8::from_str_radix(h, 16),
                None => s.parse(),
            };
            v.map_err(|_| err(format!("bad protocol number `{s}`")))
        };
        let (p, m) = (num(p)?, num(m)?);
        r.proto = match m {
            0xff => Some(p),
            0 => None,
            _ => {
                return Err(err(format!(
                    "protocol mask {m:#04x}: only 0xff or 0 are rules"
                )))
            }
        };
        rules.push(r);
    }
    Ok(rules)
}

/// Parses a trace: one key per line.
pub fn parse_trace(text: &str) -> Result<Vec<AclKey>, ClassBenchError> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        let err = |msg: String| ClassBenchError { line: n + 1, msg };
        if t.len() < 5 {
            return Err(err("expected `SRC DST SPORT DPORT PROTO`".into()));
        }
        let num = |s: &str, max: u64| -> Result<u64, ClassBenchError> {
            let v = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            };
            v.ok()
                .filter(|&v| v <= max)
                .ok_or_else(|| err(format!("bad number `{s}`")))
        };
        let src = num(t[0], u32::MAX as u64)? as u128;
        let dst = num(t[1], u32::MAX as u64)? as u128;
        keys.push(AclKey::ip(
            false,
            src << 96,
            dst << 96,
            num(t[4], 255)? as u8,
            num(t[2], 65535)? as u16,
            num(t[3], 65535)? as u16,
        ));
    }
    Ok(keys)
}

/// Writes rules back in ClassBench form (IPv4, permit only): the input of
/// `dpdk-test-acl --rulesf`.
pub fn write_rule(r: &Rule) -> Option<String> {
    let p = |p: Option<IpPrefix>| match p {
        Some(p) if !p.v6 => Some(p.to_string()),
        Some(_) => None,
        None => Some("0.0.0.0/0".to_string()),
    };
    let (proto, mask) = r.proto.map_or((0, 0), |p| (p, 0xff));
    Some(format!(
        "@{}\t{}\t{} : {}\t{} : {}\t{:#04x}/{:#04x}",
        p(r.src)?,
        p(r.dst)?,
        r.sport.lo,
        r.sport.hi,
        r.dport.lo,
        r.dport.hi,
        proto,
        mask
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::linear::first_match;

    #[test]
    fn rules_and_traces_parse() {
        let rules = parse_rules(
            "@198.18.0.0/16\t198.19.1.0/24\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0200\n\
             @0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].proto, Some(6));
        assert_eq!(rules[0].dport, PortRange { lo: 80, hi: 80 });
        assert_eq!(rules[1].src, None);
        let trace =
            parse_trace("3323068417\t3323134209\t1000\t80\t6\t1\n3323068417 1 1 1 17\n").unwrap();
        assert_eq!(first_match(&rules, &trace[0]), Some(0));
        assert_eq!(first_match(&rules, &trace[1]), Some(1));
        let back = write_rule(&rules[0]).unwrap();
        assert_eq!(parse_rules(&back).unwrap()[0], rules[0]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_rules("@1.2.3.4/32 5.6.7.8/32 0 : 65535 80 : 80 0x06/0xFF\n@x").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_rules("@1.2.3.4/32 5.6.7.8/32 0 : 65535 90 : 80 0x06/0xFF").unwrap_err();
        assert!(e.msg.contains("dport"), "{e}");
    }
}
