//! The VTEP's shared state: its address, the VNI ↔ domain map, the remote
//! VTEPs (learned from traffic or configured), their next-hop MACs, and
//! each domain's flood list. Workers read it per packet and may add a
//! remote; the control thread edits flood lists: all atomics, no locks.

use crate::verdict::{DomainId, PortId};
use crate::wire::arp::{self, ArpPacket};
use crate::wire::MacAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Remote VTEP `r` appears as port `TUNNEL_BASE + r`: the MAC table
/// learns inner MACs against it like against any port.
pub const TUNNEL_BASE: PortId = 0x8000;
/// The member a VNI-mapped domain floods to: every remote of its list.
pub const FLOOD_TUNNELS: PortId = 0x7fff;
pub const MAX_REMOTES: usize = 256;
/// Outer Ethernet + IPv4 + UDP + VXLAN.
pub const OVERHEAD: usize = 14 + 20 + 8 + 8;

/// A resolved MAC, stored with this bit set (0 = not resolved).
const VALID: u64 = 1 << 48;

#[derive(Debug, Clone)]
pub struct VtepConfig {
    /// The underlay port.
    pub port: PortId,
    pub ip: [u8; 4],
    pub mac: MacAddr,
    pub udp_port: u16,
    pub ttl: u8,
    pub df: bool,
    /// Underlay IP MTU: an encapsulated packet larger is dropped.
    pub mtu: u16,
    /// Next hop for every remote; `None`: remotes are on the link.
    pub gateway: Option<[u8; 4]>,
    /// (VNI, domain) pairs.
    pub vnis: Vec<(u32, DomainId)>,
    pub domains: usize,
    /// The kernel resolves next hops (an underlay shared with it): the
    /// VTEP sends no ARP requests of its own, and sees no replies.
    pub kernel_neighbors: bool,
}

pub struct Vtep {
    pub cfg: VtepConfig,
    remote_ip: Box<[AtomicU32]>,
    remote_mac: Box<[AtomicU64]>,
    gateway_mac: AtomicU64,
    /// Per domain, a bitset of remotes (MAX_REMOTES bits).
    flood: Box<[[AtomicU64; MAX_REMOTES / 64]]>,
    /// Sorted (VNI, domain) for the per-packet lookup.
    by_vni: Vec<(u32, DomainId)>,
    vni_of: Vec<Option<u32>>,
}

#[inline]
fn ip_u32(ip: [u8; 4]) -> u32 {
    u32::from_be_bytes(ip)
}

/// Where a remote's probe sequence starts in the table.
#[inline]
fn first_slot(ip: u32) -> usize {
    (ip.wrapping_mul(0x9e37_79b1) >> 24) as usize
}

impl Vtep {
    pub fn new(cfg: VtepConfig) -> Vtep {
        let mut by_vni = cfg.vnis.clone();
        by_vni.sort_unstable();
        let mut vni_of = vec![None; cfg.domains];
        for &(v, d) in &cfg.vnis {
            if let Some(slot) = vni_of.get_mut(d as usize) {
                *slot = Some(v);
            }
        }
        Vtep {
            remote_ip: (0..MAX_REMOTES).map(|_| AtomicU32::new(0)).collect(),
            remote_mac: (0..MAX_REMOTES).map(|_| AtomicU64::new(0)).collect(),
            gateway_mac: AtomicU64::new(0),
            flood: (0..cfg.domains)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            by_vni,
            vni_of,
            cfg,
        }
    }

    /// A VTEP with a new configuration (VNIs added or removed, domains
    /// renumbered) that keeps this one's remotes in the same slots, so MAC
    /// entries pointing at tunnel ports stay right, and their resolved
    /// next hops. Flood lists start empty: the caller sets them.
    pub fn rebuilt(&self, cfg: VtepConfig) -> Vtep {
        let same_next_hop = cfg.gateway == self.cfg.gateway && cfg.port == self.cfg.port;
        let v = Vtep::new(cfg);
        for (to, from) in v.remote_ip.iter().zip(self.remote_ip.iter()) {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        if same_next_hop {
            for (to, from) in v.remote_mac.iter().zip(self.remote_mac.iter()) {
                to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            v.gateway_mac
                .store(self.gateway_mac.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        v
    }

    #[inline]
    pub fn domain_of_vni(&self, vni: u32) -> Option<DomainId> {
        self.by_vni
            .binary_search_by_key(&vni, |&(v, _)| v)
            .ok()
            .map(|i| self.by_vni[i].1)
    }

    #[inline]
    pub fn vni_of_domain(&self, d: DomainId) -> Option<u32> {
        self.vni_of.get(d as usize).copied().flatten()
    }

    /// The slot of remote `ip`, if known.
    #[inline]
    pub fn remote(&self, ip: [u8; 4]) -> Option<usize> {
        let v = ip_u32(ip);
        let start = first_slot(v);
        for k in 0..MAX_REMOTES {
            let i = (start + k) % MAX_REMOTES;
            match self.remote_ip[i].load(Ordering::Acquire) {
                0 => return None,
                x if x == v => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// The slot of remote `ip`, added if new (`None`: table full or
    /// 0.0.0.0). Slots are never freed: a remote keeps its port id.
    pub fn remote_or_insert(&self, ip: [u8; 4]) -> Option<usize> {
        // Known remotes (every packet after a remote's first) take loads
        // only; the compare-exchange is for the new ones.
        if let Some(r) = self.remote(ip) {
            return Some(r);
        }
        let v = ip_u32(ip);
        if v == 0 {
            return None;
        }
        let start = first_slot(v);
        for k in 0..MAX_REMOTES {
            let i = (start + k) % MAX_REMOTES;
            match self.remote_ip[i].compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(i),
                Err(x) if x == v => return Some(i),
                Err(_) => {}
            }
        }
        None
    }

    pub fn remote_ip(&self, r: usize) -> Option<[u8; 4]> {
        match self.remote_ip.get(r)?.load(Ordering::Acquire) {
            0 => None,
            v => Some(v.to_be_bytes()),
        }
    }

    /// The MAC to send remote `r`'s packets to: the gateway's, or its own.
    #[inline]
    pub fn next_hop_mac(&self, r: usize) -> Option<MacAddr> {
        let v = match self.cfg.gateway {
            Some(_) => self.gateway_mac.load(Ordering::Relaxed),
            None => self.remote_mac.get(r)?.load(Ordering::Relaxed),
        };
        (v & VALID != 0).then(|| MacAddr::from_bytes(&v.to_be_bytes()[2..8]))
    }

    /// Records an IP → MAC binding (an ARP reply or request, a static
    /// entry) for the gateway or a remote.
    pub fn learn_neighbor(&self, ip: [u8; 4], mac: MacAddr) {
        let mut b = [0u8; 8];
        b[2..8].copy_from_slice(&mac.0);
        let v = u64::from_be_bytes(b) | VALID;
        if self.cfg.gateway == Some(ip) {
            self.gateway_mac.store(v, Ordering::Relaxed);
        }
        if let Some(r) = self.remote(ip) {
            self.remote_mac[r].store(v, Ordering::Relaxed);
        }
    }

    /// Addresses that still need an ARP request.
    pub fn unresolved(&self) -> Vec<[u8; 4]> {
        match self.cfg.gateway {
            Some(g) if self.gateway_mac.load(Ordering::Relaxed) & VALID == 0 => vec![g],
            Some(_) => Vec::new(),
            None => (0..MAX_REMOTES)
                .filter(|&r| self.remote_mac[r].load(Ordering::Relaxed) & VALID == 0)
                .filter_map(|r| self.remote_ip(r))
                .collect(),
        }
    }

    /// Adds or removes remote `ip` in domain `d`'s flood list.
    pub fn set_flood(&self, d: DomainId, ip: [u8; 4], on: bool) -> Result<(), &'static str> {
        let words = self.flood.get(d as usize).ok_or("no such domain")?;
        let r = if on {
            self.remote_or_insert(ip)
                .ok_or("the remote table is full")?
        } else {
            self.remote(ip).ok_or("not a known remote")?
        };
        let bit = 1u64 << (r % 64);
        if on {
            words[r / 64].fetch_or(bit, Ordering::Relaxed);
        } else {
            words[r / 64].fetch_and(!bit, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Remotes in domain `d`'s flood list, as a bitset snapshot.
    #[inline]
    pub fn flood_set(&self, d: DomainId) -> [u64; MAX_REMOTES / 64] {
        match self.flood.get(d as usize) {
            Some(w) => std::array::from_fn(|k| w[k].load(Ordering::Relaxed)),
            None => [0; MAX_REMOTES / 64],
        }
    }

    /// Handles an ARP frame that came in on the underlay: learns the
    /// sender if it is a neighbor we need, and turns a request for our
    /// address into the reply, in place. `Some(len)`: send the frame back.
    pub fn handle_arp(&self, f: &mut [u8]) -> Option<usize> {
        let arp = ArpPacket::new_checked(f.get(14..)?).ok()?;
        let (op, smac, sip, tip) = (
            arp.operation(),
            arp.sender_mac(),
            arp.sender_ip(),
            arp.target_ip(),
        );
        if self.cfg.gateway == Some(sip) || self.remote(sip).is_some() {
            self.learn_neighbor(sip, smac);
        }
        if op != arp::OP_REQUEST || tip != self.cfg.ip {
            return None;
        }
        arp::emit_frame(f.get_mut(..42)?, self.cfg.mac, self.cfg.ip, Some(smac), sip);
        // Keep the request's length (padded to the Ethernet minimum) and
        // zero what followed the ARP header.
        f[42..].fill(0);
        Some(f.len())
    }

    /// (remote ip, resolved next-hop MAC) of every known remote.
    pub fn remotes(&self) -> Vec<([u8; 4], Option<MacAddr>)> {
        (0..MAX_REMOTES)
            .filter_map(|r| self.remote_ip(r).map(|ip| (ip, self.next_hop_mac(r))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vtep(gateway: Option<[u8; 4]>) -> Vtep {
        Vtep::new(VtepConfig {
            port: 0,
            ip: [198, 18, 100, 1],
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            udp_port: 4789,
            ttl: 64,
            df: true,
            mtu: 1500,
            gateway,
            vnis: vec![(5000, 1), (10, 0)],
            domains: 2,
            kernel_neighbors: false,
        })
    }

    #[test]
    fn remotes_flood_lists_and_neighbors() {
        let v = vtep(None);
        assert_eq!(v.domain_of_vni(5000), Some(1));
        assert_eq!(v.domain_of_vni(5001), None);
        assert_eq!(v.vni_of_domain(0), Some(10));
        let a = [198, 18, 100, 2];
        assert_eq!(v.remote(a), None);
        v.set_flood(1, a, true).unwrap();
        let r = v.remote(a).unwrap();
        assert_eq!(v.remote_or_insert(a), Some(r));
        assert_eq!(v.flood_set(1)[r / 64] >> (r % 64) & 1, 1);
        assert_eq!(v.unresolved(), vec![a]);
        v.learn_neighbor(a, MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(v.next_hop_mac(r), Some(MacAddr([2, 0, 0, 0, 0, 2])));
        assert!(v.unresolved().is_empty());
        v.set_flood(1, a, false).unwrap();
        assert_eq!(v.flood_set(1), [0; 4]);
        // Fill the table: the 257th remote is refused, not a crash.
        for k in 0..300u32 {
            let ip = (0xc612_0000 + k).to_be_bytes();
            let _ = v.remote_or_insert(ip);
        }
        assert_eq!(v.remotes().len(), MAX_REMOTES);
        assert_eq!(v.remote_or_insert([203, 0, 113, 9]), None);
    }

    #[test]
    fn a_gateway_is_every_remote_s_next_hop() {
        let g = [198, 18, 100, 254];
        let v = vtep(Some(g));
        let r = v.remote_or_insert([198, 19, 0, 7]).unwrap();
        assert_eq!(v.next_hop_mac(r), None);
        assert_eq!(v.unresolved(), vec![g]);
        v.learn_neighbor(g, MacAddr([2, 0, 0, 0, 0, 0xfe]));
        assert_eq!(v.next_hop_mac(r), Some(MacAddr([2, 0, 0, 0, 0, 0xfe])));
    }
}
