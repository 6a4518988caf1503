//! `pollgate ctl reload`: reads the config file again and applies what can
//! change under traffic — ACL rules and default actions, bridge static
//! MACs, VXLAN flood lists — or refuses, naming the first thing that needs a restart (ports,
//! workers, wiring, VLAN maps, pools, engine settings). Nothing is applied
//! unless everything in the new file is applicable: a refused reload
//! changes nothing.

use crate::config::{self, Topology};
use crate::ctl::CtlState;
use pollgate_pipeline::acl::AclSet;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Reloader {
    path: PathBuf,
    current: Mutex<Topology>,
}

impl Reloader {
    pub fn new(path: PathBuf, topo: Topology) -> Self {
        Reloader {
            path,
            current: Mutex::new(topo),
        }
    }

    pub fn reload(&self, state: &CtlState) -> Result<String, String> {
        let new = config::load(&self.path).map_err(|e| format!("reload refused: {e}"))?;
        let mut cur = self
            .current
            .lock()
            .map_err(|_| "internal error".to_string())?;
        if let Some(why) = needs_restart(&cur, &new) {
            return Err(format!("reload refused, restart needed: {why}"));
        }
        // Compile every changed ACL before swapping any in.
        let mut sets = Vec::new();
        for (i, (old, a)) in cur.acls.iter().zip(&new.acls).enumerate() {
            if old.rules != a.rules || old.default != a.default {
                let set = AclSet::compile(&a.name, a.rules.clone(), a.default, new.workers.len())
                    .map_err(|e| format!("reload refused: {e}"))?;
                sets.push((i, set));
            }
        }
        let mut done = Vec::new();
        for (i, set) in sets {
            let n = set.rules().len();
            let acl = state.acl.as_ref().ok_or("this engine has no ACLs")?;
            acl.replace(i, set);
            done.push(format!("acl {} ({n} rules)", new.acls[i].name));
        }
        let (mut added, mut removed) = (0, 0);
        if let Some((table, _)) = &state.mac_table {
            for (d, (ob, nb)) in cur.bridges.iter().zip(&new.bridges).enumerate() {
                for &(mac, _) in ob.statics.iter().filter(|s| !nb.statics.contains(s)) {
                    removed += table.remove(d as u16, mac) as usize;
                }
                for &(mac, port) in nb.statics.iter().filter(|s| !ob.statics.contains(s)) {
                    table.add_static(d as u16, mac, port as u16);
                    added += 1;
                }
            }
        }
        if added + removed > 0 {
            done.push(format!("static MACs +{added} -{removed}"));
        }
        if let (Some(v), Some(ov), Some(nv)) = (&state.vtep, &cur.vtep, &new.vtep) {
            let (mut added, mut removed) = (0, 0);
            for ((_, d, old), (_, _, new)) in ov.vnis.iter().zip(&nv.vnis) {
                for ip in old.iter().filter(|ip| !new.contains(ip)) {
                    removed += v.set_flood(*d as u16, *ip, false).is_ok() as usize;
                }
                for ip in new.iter().filter(|ip| !old.contains(ip)) {
                    added += v.set_flood(*d as u16, *ip, true).is_ok() as usize;
                }
            }
            if added + removed > 0 {
                done.push(format!("flood lists +{added} -{removed}"));
            }
        }
        *cur = new;
        Ok(if done.is_empty() {
            "reload: nothing changed\n".to_string()
        } else {
            format!("reload applied: {}\n", done.join(", "))
        })
    }
}

/// The first difference that a running engine cannot take, in words.
fn needs_restart(a: &Topology, b: &Topology) -> Option<String> {
    let (ea, eb) = (&a.config.engine, &b.config.engine);
    let engine_a = (
        ea.forward,
        ea.parse,
        ea.burst.get_ref(),
        ea.idle,
        ea.stats_interval,
        &ea.ctl_socket,
        &ea.metrics,
    );
    let engine_b = (
        eb.forward,
        eb.parse,
        eb.burst.get_ref(),
        eb.idle,
        eb.stats_interval,
        &eb.ctl_socket,
        &eb.metrics,
    );
    if format!("{engine_a:?}") != format!("{engine_b:?}") {
        return Some("[engine] settings changed".into());
    }
    if a.pool != b.pool {
        return Some("[pool] changed".into());
    }
    if a.ports.len() != b.ports.len() {
        return Some(format!("ports: {} → {}", a.ports.len(), b.ports.len()));
    }
    for (pa, pb) in a.ports.iter().zip(&b.ports) {
        if format!("{pa:?}") != format!("{pb:?}") {
            return Some(format!(
                "port {:?} changed (kind, addresses, queues, VLAN mode or storm limits)",
                pb.name
            ));
        }
    }
    if a.xconnects != b.xconnects {
        return Some("[[xconnect]] changed".into());
    }
    if format!("{:?}", a.workers) != format!("{:?}", b.workers) {
        return Some("[[worker]] assignment changed".into());
    }
    if a.bridges.len() != b.bridges.len() {
        return Some("bridges added or removed".into());
    }
    for (ba, bb) in a.bridges.iter().zip(&b.bridges) {
        if ba.name != bb.name || ba.members != bb.members {
            return Some(format!(
                "bridge {:?}: members or their VLAN mapping changed",
                bb.name
            ));
        }
        if ba.driver != bb.driver {
            return Some(format!(
                "bridge {:?}: its driver, parent, mode or member addresses changed",
                bb.name
            ));
        }
        // The parent's unicast filter holds a macvlan's MACs from start.
        let macvlan = matches!(bb.driver, crate::config::Driver::MacVlan { .. });
        if macvlan && ba.statics != bb.statics {
            return Some(format!(
                "bridge {:?}: a macvlan member's MAC changed (the parent's filter is set at start)",
                bb.name
            ));
        }
    }
    let (sa, sb) = (&a.config.switch, &b.config.switch);
    if sa.mac_limit.get_ref() != sb.mac_limit.get_ref() || sa.aging.get_ref() != sb.aging.get_ref()
    {
        return Some("[switch] changed".into());
    }
    let names = |t: &Topology| t.acls.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    if names(a) != names(b) {
        return Some("ACLs added, removed or renamed".into());
    }
    if format!("{:?}", a.acl_attach) != format!("{:?}", b.acl_attach) {
        return Some("an acl_in/acl_out attachment changed".into());
    }
    let strip = |t: &Topology| {
        t.vtep.clone().map(|mut v| {
            for x in &mut v.vnis {
                x.2.clear();
            }
            v
        })
    };
    if strip(a) != strip(b) {
        return Some("[vtep] or a bridge's VNI changed".into());
    }
    let (ca, cb) = (&a.config.conntrack, &b.config.conntrack);
    if ca.size.get_ref() != cb.size.get_ref() || ca.timeouts() != cb.timeouts() {
        return Some("[conntrack] changed".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(mode: &str, ips: &str, mac: &str) -> Topology {
        let src = format!(
            "[[port]]\nname = \"up\"\nkind = \"null\"\n[[port]]\nname = \"c\"\nkind = \"null\"\n\
             [[bridge]]\nname = \"mv\"\ndriver = \"macvlan\"\nparent = \"up\"\nmacvlan_mode = \"{mode}\"\n\
             members = [{{ port = \"up\" }}, {{ port = \"c\" }}]\nstatic_macs = [{{ mac = \"{mac}\", port = \"c\" }}]\n\
             [[port]]\nname = \"d\"\nkind = \"null\"\n[[port]]\nname = \"e\"\nkind = \"null\"\n\
             [[bridge]]\nname = \"iv\"\ndriver = \"ipvlan\"\nparent = \"d\"\n\
             members = [{{ port = \"d\" }}, {{ port = \"e\", ips = [\"{ips}\"] }}]\n"
        );
        config::parse("gw.toml", &src).unwrap()
    }

    #[test]
    fn shared_uplink_changes_need_a_restart() {
        let base = topo("bridge", "198.18.5.1", "02:00:00:00:00:0c");
        assert_eq!(
            needs_restart(&base, &topo("bridge", "198.18.5.1", "02:00:00:00:00:0c")),
            None
        );
        for (other, why) in [
            (
                topo("vepa", "198.18.5.1", "02:00:00:00:00:0c"),
                "bridge \"mv\": its driver, parent, mode",
            ),
            (
                topo("bridge", "198.18.5.2", "02:00:00:00:00:0c"),
                "bridge \"iv\": its driver, parent, mode or member addresses",
            ),
            (
                topo("bridge", "198.18.5.1", "02:00:00:00:00:0d"),
                "bridge \"mv\": a macvlan member's MAC changed",
            ),
        ] {
            let got = needs_restart(&base, &other).unwrap_or_default();
            assert!(got.contains(why), "{got}");
        }
    }
}
