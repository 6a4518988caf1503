//! The reference matcher: a plain first-match scan over the rules, written
//! from the rule's fields rather than from chunks, so it checks the
//! compiled classifier instead of sharing its mistakes.

use super::key::{chunk, AclKey, Family};
use super::rule::Rule;

impl Rule {
    /// Whether the rule matches the key (every present field agrees).
    pub fn matches(&self, k: &AclKey) -> bool {
        let fam = self.families();
        let family_ok = match k.family {
            Family::V4 => fam.v4,
            Family::V6 => fam.v6,
            Family::Other => fam.other,
        };
        family_ok
            && self.src.is_none_or(|p| p.contains(k.src()))
            && self.dst.is_none_or(|p| p.contains(k.dst()))
            && self.proto.is_none_or(|p| k.c[chunk::PROTO] == p as u16)
            && self.sport.contains(k.c[chunk::SPORT])
            && self.dport.contains(k.c[chunk::DPORT])
            && self.ethertype.is_none_or(|e| k.c[chunk::ETHERTYPE] == e)
            && self.vlan.is_none_or(|v| k.c[chunk::VLAN] == v)
            && self.domain.is_none_or(|d| k.c[chunk::DOMAIN] == d)
            && self.in_port.is_none_or(|p| k.c[chunk::IN_PORT] == p)
    }
}

/// Index of the first rule that matches, as the compiled classifier must
/// answer.
pub fn first_match(rules: &[Rule], k: &AclKey) -> Option<u32> {
    rules.iter().position(|r| r.matches(k)).map(|i| i as u32)
}
