//! Hosts' addresses in the mirror (EVPN type-2 routes with an IP): local
//! hosts' addresses, snooped by the bridge from their ARP, written as ARP
//! entries on `brN` (the VNI's SVI to zebra), and remote hosts' addresses
//! zebra installs there read into the ARP cache the bridge answers from.

use super::Mirror;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::DomainId;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

impl Mirror {
    pub(super) fn vni_of_bridge(&self, ifindex: u32) -> Option<u32> {
        self.vnis
            .values()
            .find(|v| v.dev.bridge.1 == ifindex)
            .map(|v| v.dev.vni)
    }

    /// A remote host's address zebra installed on `brN` (`Some(mac)`) or
    /// removed: the ARP cache answers for it, or no longer.
    pub(super) fn remote_ip(&mut self, vni: u32, ip: [u8; 4], mac: Option<[u8; 6]>) {
        let Some(v) = self.vnis.get_mut(&vni) else {
            return;
        };
        let cache = self.control.arp();
        match mac {
            Some(m) => {
                if v.remote_ips.insert(ip, m) != Some(m) {
                    cache.set_remote(v.domain, ip, MacAddr(m));
                }
            }
            None => {
                if v.remote_ips.remove(&ip).is_some() {
                    cache.remove(v.domain, ip, true);
                }
            }
        }
    }

    /// Writes the addresses of local hosts (snooped from their ARP, their
    /// MAC still local) as ARP entries on `brN`, for zebra to advertise
    /// with their MAC, and removes those whose MAC went: `local` holds
    /// each domain's local MACs now.
    pub(super) fn sync_local_ips(&mut self, local: &HashMap<DomainId, HashSet<[u8; 6]>>) {
        let cache = self.control.arp().clone();
        let evpn: HashSet<DomainId> = self.vnis.values().map(|v| v.domain).collect();
        let mut want: HashMap<DomainId, HashMap<[u8; 4], [u8; 6]>> = HashMap::new();
        for e in cache.entries() {
            if e.remote || !evpn.contains(&e.domain) {
                continue;
            }
            if local.get(&e.domain).is_some_and(|m| m.contains(&e.mac.0)) {
                want.entry(e.domain).or_default().insert(e.ip, e.mac.0);
            } else {
                // The host went (or moved away): so did its address here.
                cache.remove(e.domain, e.ip, false);
            }
        }
        let empty = HashMap::new();
        for v in self.vnis.values_mut() {
            let want = want.get(&v.domain).unwrap_or(&empty);
            let br = v.dev.bridge.1;
            let add: Vec<([u8; 4], [u8; 6])> = want
                .iter()
                .filter(|(ip, mac)| v.local_ips.get(*ip) != Some(*mac))
                .map(|(ip, mac)| (*ip, *mac))
                .collect();
            let del: Vec<[u8; 4]> = v
                .local_ips
                .keys()
                .filter(|ip| !want.contains_key(*ip))
                .copied()
                .collect();
            for (ip, mac) in add {
                match self.nl.neigh_set(br, Ipv4Addr::from(ip), mac) {
                    Ok(()) => {
                        v.local_ips.insert(ip, mac);
                        self.counters.neigh_writes += 1;
                    }
                    Err(e) => {
                        self.counters.errors += 1;
                        v.error = Some(format!(
                            "the kernel refused {} at {} on {}: {e}",
                            Ipv4Addr::from(ip),
                            MacAddr(mac),
                            v.dev.bridge.0
                        ));
                    }
                }
            }
            for ip in del {
                if self.nl.neigh_del(br, Ipv4Addr::from(ip)).is_ok() {
                    v.local_ips.remove(&ip);
                    self.counters.neigh_deletes += 1;
                }
            }
        }
    }
}
