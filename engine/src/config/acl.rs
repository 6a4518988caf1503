//! `[[acl]]` and `[conntrack]`: rule lists, where they attach, and the
//! flow table of stateful permits.

use super::*;

/// An ordered rule list: `rules` in the text form of `ctl acl add`
/// ("permit src=198.18.0.0/15 proto=tcp dport=80 stateful").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AclSection {
    pub name: Spanned<String>,
    /// "permit" or "deny" for packets no rule matches.
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
}

/// The reflexive-ACL flow table of each worker; timeouts in seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConntrackSection {
    pub size: Spanned<usize>,
    pub tcp_established: u64,
    pub tcp_transient: u64,
    pub udp: u64,
    pub other: u64,
}

impl Default for ConntrackSection {
    fn default() -> Self {
        let t = FlowTimeouts::default();
        ConntrackSection {
            size: Spanned::new(0..0, 65536),
            tcp_established: t.tcp_established / 1_000_000_000,
            tcp_transient: t.tcp_transient / 1_000_000_000,
            udp: t.udp / 1_000_000_000,
            other: t.other / 1_000_000_000,
        }
    }
}

impl ConntrackSection {
    pub fn timeouts(&self) -> FlowTimeouts {
        const S: u64 = 1_000_000_000;
        FlowTimeouts {
            tcp_established: self.tcp_established.saturating_mul(S),
            tcp_transient: self.tcp_transient.saturating_mul(S),
            udp: self.udp.saturating_mul(S),
            other: self.other.saturating_mul(S),
        }
    }
}

/// An ACL with its rules parsed and names resolved.
#[derive(Debug, Clone)]
pub struct AclSpec {
    pub name: String,
    pub default: Action,
    pub rules: Vec<Rule>,
}

/// Parses every `[[acl]]` (rules in text form, names resolved) and where
/// each is attached. An error names the rule by its index in the list.
pub(super) fn validate_acls(
    cx: &Ctx,
    config: &Config,
    ports: &[PortSpec],
    bridges: &[BridgeSpec],
) -> Result<(Vec<AclSpec>, AclAttachments), ConfigError> {
    let names = |kind: &str, name: &str| -> Option<u16> {
        let i = match kind {
            "port" => ports.iter().position(|p| p.name == name),
            "vni" => {
                let v: u32 = name.parse().ok()?;
                config
                    .bridge
                    .iter()
                    .position(|b| b.vni.as_ref().map(|x| *x.get_ref()) == Some(v))
            }
            _ => bridges.iter().position(|b| b.name == name),
        };
        i.map(|i| i as u16)
    };
    let mut acls: Vec<AclSpec> = Vec::new();
    for a in &config.acl {
        let name = a.name.get_ref();
        if name.is_empty() || acls.iter().any(|x| &x.name == name) {
            return Err(cx.err(
                a.name.span(),
                "acl.name",
                format!("{name:?}: ACL names are unique and not empty"),
            ));
        }
        let default = match &a.default {
            None => Action::Deny,
            Some(d) => Action::parse(d.get_ref())
                .map_err(|e| cx.err(d.span(), "acl.default", e.to_string()))?,
        };
        let mut rules = Vec::with_capacity(a.rules.len());
        for (i, r) in a.rules.iter().enumerate() {
            let rule = Rule::parse_text(r.get_ref(), &names).map_err(|e| {
                cx.err(
                    r.span(),
                    &format!("acl.rules[{i}]"),
                    format!("{:?}: {e}", r.get_ref()),
                )
            })?;
            rules.push(rule);
        }
        if rules.len() > pollgate_pipeline::acl::classifier::MAX_RULES {
            return Err(cx.err(
                a.name.span(),
                "acl.rules",
                format!(
                    "{} rules; at most {}",
                    rules.len(),
                    pollgate_pipeline::acl::classifier::MAX_RULES
                ),
            ));
        }
        acls.push(AclSpec {
            name: name.clone(),
            default,
            rules,
        });
    }
    let find = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<usize>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) => acls
                .iter()
                .position(|a| &a.name == s.get_ref())
                .map(Some)
                .ok_or_else(|| {
                    cx.err(
                        s.span(),
                        field,
                        format!("no [[acl]] named {:?}", s.get_ref()),
                    )
                }),
        }
    };
    let mut at = AclAttachments {
        port_in: vec![None; ports.len()],
        port_out: vec![None; ports.len()],
        domain_in: vec![None; bridges.len()],
        domain_out: vec![None; bridges.len()],
    };
    for (i, p) in config.ports.iter().enumerate() {
        at.port_in[i] = find(&p.acl_in, "port.acl_in")?;
        at.port_out[i] = find(&p.acl_out, "port.acl_out")?;
    }
    for (i, b) in config.bridge.iter().enumerate() {
        at.domain_in[i] = find(&b.acl_in, "bridge.acl_in")?;
        at.domain_out[i] = find(&b.acl_out, "bridge.acl_out")?;
    }
    if !(64..=1 << 24).contains(config.conntrack.size.get_ref()) {
        return Err(cx.err(
            config.conntrack.size.span(),
            "conntrack.size",
            format!(
                "{} is out of range: 64..=16777216",
                config.conntrack.size.get_ref()
            ),
        ));
    }
    Ok((acls, at))
}
