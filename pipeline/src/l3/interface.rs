//! Routed interfaces: a bridge domain's gateway (IRB, a Linux bridge with
//! an address, VPP's BVI). Frames to its router MAC leave L2 for the
//! router; the router's output to the interface enters the domain as if
//! from a member, and the bridge's MAC table says which port it leaves by.

use super::fib::{key_v4, key_v6};
use crate::verdict::DomainId;
use crate::wire::MacAddr;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L3Interface {
    /// The bridge domain's name.
    pub name: String,
    pub domain: DomainId,
    pub mac: MacAddr,
    /// IP MTU of the link: larger packets get "fragmentation needed" /
    /// "packet too big".
    pub mtu: u16,
    pub v4: Vec<([u8; 4], u8)>,
    pub v6: Vec<([u8; 16], u8)>,
    /// fe80::/64 from the MAC (modified EUI-64): the source of ND.
    pub link_local: [u8; 16],
    /// Addresses NAT translates to on this link that are not the
    /// interface's own (a masquerade pool, a published port's public
    /// address): answered by ARP and received as local, as Linux does a
    /// secondary address and VPP its nat44 pool, but never a source of
    /// the router's own packets nor a connected subnet.
    pub nat_v4: Vec<[u8; 4]>,
}

/// fe80::/64 with the interface identifier of RFC 4291 appendix A.
pub fn link_local(mac: MacAddr) -> [u8; 16] {
    let m = mac.0;
    [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ]
}

impl L3Interface {
    /// The interface's IPv4 address on the subnet of `peer` (the first
    /// address if none covers it): the source of what we send to `peer`.
    pub fn v4_source(&self, peer: [u8; 4]) -> Option<[u8; 4]> {
        let p = u32::from_be_bytes(peer);
        self.v4
            .iter()
            .find(|(a, len)| {
                let m = if *len == 0 {
                    0
                } else {
                    u32::MAX << (32 - *len as u32)
                };
                u32::from_be_bytes(*a) & m == p & m
            })
            .or(self.v4.first())
            .map(|(a, _)| *a)
    }

    pub fn v6_source(&self, peer: [u8; 16]) -> [u8; 16] {
        if peer[0] == 0xfe && peer[1] & 0xc0 == 0x80 {
            return self.link_local;
        }
        let p = u128::from_be_bytes(peer);
        self.v6
            .iter()
            .find(|(a, len)| {
                let m = if *len == 0 {
                    0
                } else {
                    u128::MAX << (128 - *len as u32)
                };
                u128::from_be_bytes(*a) & m == p & m
            })
            .or(self.v6.first())
            .map_or(self.link_local, |(a, _)| *a)
    }

    pub fn owns_v4(&self, ip: [u8; 4]) -> bool {
        self.v4.iter().any(|(a, _)| *a == ip)
    }

    /// Whether ARP for `ip` is answered here: an own or a NAT address.
    pub fn answers_v4(&self, ip: [u8; 4]) -> bool {
        self.owns_v4(ip) || self.nat_v4.contains(&ip)
    }

    pub fn owns_v6(&self, ip: [u8; 16]) -> bool {
        ip == self.link_local || self.v6.iter().any(|(a, _)| *a == ip)
    }
}

/// Every routed interface, by the id of its domain: interface ids are
/// domain ids, which stay put while the topology changes, so neighbours
/// and next hops keyed by them stay right.
#[derive(Debug, Clone, Default)]
pub struct Interfaces {
    by_domain: Vec<Option<L3Interface>>,
}

impl Interfaces {
    pub fn new(list: Vec<L3Interface>, domains: usize) -> Interfaces {
        let mut by_domain = vec![None; domains];
        for i in list {
            let d = i.domain as usize;
            if d < by_domain.len() {
                by_domain[d] = Some(i);
            }
        }
        Interfaces { by_domain }
    }

    #[inline(always)]
    pub fn get(&self, ifx: u16) -> Option<&L3Interface> {
        self.by_domain.get(ifx as usize)?.as_ref()
    }

    pub fn iter(&self) -> impl Iterator<Item = &L3Interface> {
        self.by_domain.iter().flatten()
    }

    /// The interface whose subnet holds `ip`, the longest prefix first:
    /// where a gateway at `ip` is reached. An IPv6 link-local address is
    /// on no subnet a prefix says; the first interface with IPv6 takes it.
    pub fn on_link(&self, ip: IpAddr) -> Option<u16> {
        let key = match ip {
            IpAddr::V4(a) => key_v4(a.octets()),
            IpAddr::V6(a) => key_v6(a.octets()),
        };
        let covers = |net: u128, len: u8| {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            net & m == key & m
        };
        let mut best: Option<(u8, u16)> = None;
        for i in self.iter() {
            let nets: Vec<(u128, u8)> = match ip {
                IpAddr::V4(_) => i.v4.iter().map(|(a, l)| (key_v4(*a), *l)).collect(),
                IpAddr::V6(_) => i.v6.iter().map(|(a, l)| (key_v6(*a), *l)).collect(),
            };
            for (net, len) in nets {
                if covers(net, len) && best.is_none_or(|(b, _)| len > b) {
                    best = Some((len, i.domain));
                }
            }
        }
        let link_local = matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
        match best {
            Some((_, d)) => Some(d),
            None if link_local => self.iter().find(|i| !i.v6.is_empty()).map(|i| i.domain),
            None => None,
        }
    }

    pub fn by_name(&self, name: &str) -> Option<u16> {
        self.iter().find(|i| i.name == name).map(|i| i.domain)
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}
