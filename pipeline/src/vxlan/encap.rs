//! Encapsulation: outer Ethernet/IPv4/UDP/VXLAN headers written in place
//! into the frame's headroom, for packets the bridge sent to a remote
//! VTEP (a tunnel port). The UDP source port is a hash of the inner flow,
//! so an ECMP underlay spreads flows and keeps each in order.

use super::vtep::{Vtep, OVERHEAD, TUNNEL_BASE};
use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::verdict::{DomainId, DropCounters, DropReason, Verdict};
use crate::vlan::NO_DOMAIN;
use crate::wire::ipv4::checksum;
use crate::wire::VxlanHeader;

/// Hash of the inner frame's flow: MACs, and for IPv4 the addresses,
/// protocol and ports (not TTL or checksum, which change per packet).
#[inline]
pub fn flow_hash(inner: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ x as u32).wrapping_mul(0x0100_0193);
        }
    };
    eat(inner.get(0..12).unwrap_or(&[]));
    if inner.get(12..14) == Some(&[0x08, 0x00]) && inner.get(14).is_some_and(|v| v & 0x0f == 5) {
        eat(inner.get(23..24).unwrap_or(&[]));
        eat(inner.get(26..34).unwrap_or(&[]));
        let frag = inner
            .get(20..22)
            .is_some_and(|f| f[0] & 0x3f != 0 || f[1] != 0);
        if !frag && matches!(inner.get(23), Some(6 | 17)) {
            eat(inner.get(34..38).unwrap_or(&[]));
        }
    }
    h ^ (h >> 16)
}

/// Encapsulates the frame at (addr, len, headroom) for remote `r` of
/// domain `d`'s VNI. Returns the new (addr, len, headroom).
#[inline]
pub fn encap<M: FrameMemory + ?Sized>(
    mem: &mut M,
    vtep: &Vtep,
    (addr, len, headroom): (u64, u32, u16),
    r: usize,
    d: DomainId,
    ip_id: u16,
) -> Result<(u64, u32, u16), DropReason> {
    let vni = vtep.vni_of_domain(d).ok_or(DropReason::VxlanUnknownVni)?;
    let (Some(mac), Some(dst_ip)) = (vtep.next_hop_mac(r), vtep.remote_ip(r)) else {
        return Err(DropReason::VxlanNoNeighbor);
    };
    let ip_len = len as usize + OVERHEAD - 14;
    if ip_len > vtep.cfg.mtu as usize {
        return Err(DropReason::VxlanTooBig);
    }
    if (headroom as usize) < OVERHEAD {
        return Err(DropReason::NoHeadroom);
    }
    let start = addr - OVERHEAD as u64;
    let f = mem
        .bytes_mut(start, len + OVERHEAD as u32)
        .ok_or(DropReason::BadDescriptor)?;
    let sport = 0xc000 | (flow_hash(&f[OVERHEAD..]) as u16 & 0x3fff);
    let c = &vtep.cfg;
    f[0..6].copy_from_slice(&mac.0);
    f[6..12].copy_from_slice(&c.mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&(if c.df { 0x4000u16 } else { 0 }).to_be_bytes());
    ip[8] = c.ttl;
    ip[9] = 17;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&c.ip);
    ip[16..20].copy_from_slice(&dst_ip);
    let sum = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&c.udp_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    // Zero UDP checksum over IPv4, as RFC 7348 recommends.
    udp[6..8].copy_from_slice(&[0, 0]);
    VxlanHeader::new_unchecked(&mut f[42..50]).emit(vni);
    Ok((start, len + OVERHEAD as u32, headroom - OVERHEAD as u16))
}

/// The encap stage: `Forward(tunnel port)` becomes `Forward(underlay)`
/// with the outer headers in front.
pub struct Encap<'a> {
    pub vtep: &'a Vtep,
    pub ip_id: &'a mut u16,
}

impl Encap<'_> {
    pub fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        for i in 0..batch.len() {
            let Verdict::Forward(p) = batch.verdict[i] else {
                continue;
            };
            if p < TUNNEL_BASE {
                continue;
            }
            *self.ip_id = self.ip_id.wrapping_add(1);
            let at = (batch.addr[i], batch.pkt_len[i], batch.headroom[i]);
            match encap(
                mem,
                self.vtep,
                at,
                (p - TUNNEL_BASE) as usize,
                batch.domain[i],
                *self.ip_id,
            ) {
                Ok((a, n, h)) => {
                    batch.addr[i] = a;
                    batch.pkt_len[i] = n;
                    batch.headroom[i] = h;
                    batch.verdict[i] = Verdict::Forward(self.vtep.cfg.port);
                    // An underlay frame now: no VLAN egress for it.
                    batch.domain[i] = NO_DOMAIN;
                }
                Err(r) => {
                    batch.verdict[i] = Verdict::Drop(r);
                    drops.count(r);
                }
            }
        }
    }
}
