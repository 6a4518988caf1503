//! Encapsulation: outer Ethernet/IPv4/UDP/VXLAN headers written in place
//! into the frame's headroom, for packets the bridge sent to a remote
//! VTEP (a tunnel port). The UDP source port is a hash of the inner flow,
//! so an ECMP underlay spreads flows and keeps each in order.

use super::vtep::{Vtep, OVERHEAD, TUNNEL_BASE};
use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::l3::csum;
use crate::verdict::{DomainId, DropCounters, DropReason, Verdict};
use crate::vlan::NO_DOMAIN;
use crate::wire::VxlanHeader;

/// Hash of the inner frame's flow: MACs, and for IPv4 the addresses,
/// protocol and ports (not TTL or checksum, which change per packet).
#[inline]
pub fn flow_hash(inner: &[u8]) -> u32 {
    // Every frame the parser let through has 38 bytes; a shorter one
    // hashes its MACs only.
    let Some(b) = inner.get(..38) else {
        return inner
            .iter()
            .take(12)
            .fold(0u32, |h, &x| h.rotate_left(5) ^ x as u32);
    };
    let w8 = |at: usize| {
        u64::from_le_bytes([
            b[at],
            b[at + 1],
            b[at + 2],
            b[at + 3],
            b[at + 4],
            b[at + 5],
            b[at + 6],
            b[at + 7],
        ])
    };
    let w4 = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64;
    let mut h = w8(0) ^ w4(8).rotate_left(32);
    if b[12] == 0x08 && b[13] == 0x00 && b[14] == 0x45 {
        let proto = b[23];
        h ^= w8(26).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (proto as u64) << 56;
        let frag = (b[20] & 0x3f) != 0 || b[21] != 0;
        if !frag && (proto == 6 || proto == 17) {
            h ^= w4(34) << 16;
        }
    }
    h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h ^ (h >> 29)) as u32
}

/// The outer headers towards one remote for one VNI, built once and
/// written in front of each frame with only its lengths, IP id, UDP
/// source port and checksum filled in (VPP's rewrite string, OVS's
/// tunnel header template). Everything in it comes from the VTEP's
/// tables, which can change between bursts: the encap stage keeps a
/// template for one burst's run of packets to the same remote and VNI.
#[derive(Clone, Copy)]
pub struct Template {
    h: [u8; OVERHEAD],
    /// The one's-complement sum of the outer IPv4 header's constant
    /// words (unfolded): adding the length and id gives the checksum.
    sum: u32,
    mtu: usize,
}

impl Template {
    /// The headers for remote `r` of domain `d`'s VNI.
    #[inline]
    pub fn new(vtep: &Vtep, r: usize, d: DomainId) -> Result<Template, DropReason> {
        let vni = vtep.vni_of_domain(d).ok_or(DropReason::VxlanUnknownVni)?;
        let (Some(mac), Some(dst_ip)) = (vtep.next_hop_mac(r), vtep.remote_ip(r)) else {
            return Err(DropReason::VxlanNoNeighbor);
        };
        let c = &vtep.cfg;
        let mut h = [0u8; OVERHEAD];
        h[0..6].copy_from_slice(&mac.0);
        h[6..12].copy_from_slice(&c.mac.0);
        h[12] = 0x08;
        h[14] = 0x45;
        h[20] = if c.df { 0x40 } else { 0 };
        h[22] = c.ttl;
        h[23] = 17;
        h[26..30].copy_from_slice(&c.ip);
        h[30..34].copy_from_slice(&dst_ip);
        h[36..38].copy_from_slice(&c.udp_port.to_be_bytes());
        // UDP checksum 0 over IPv4, as RFC 7348 recommends.
        VxlanHeader::new_unchecked(&mut h[42..50]).emit(vni);
        Ok(Template {
            h,
            sum: csum::sum(&h[14..34]),
            mtu: c.mtu as usize,
        })
    }

    /// Encapsulates the frame at (addr, len, headroom); `tail` bytes of
    /// it follow in chained frames (a jumbo frame), which only the outer
    /// lengths count. Returns the new (addr, len, headroom) of the first
    /// frame.
    #[inline]
    pub fn apply<M: FrameMemory + ?Sized>(
        &self,
        mem: &mut M,
        (addr, len, headroom): (u64, u32, u16),
        tail: u32,
        ip_id: u16,
    ) -> Result<(u64, u32, u16), DropReason> {
        let ip_len = (len + tail) as usize + OVERHEAD - 14;
        if ip_len > self.mtu {
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
        let mut h = self.h;
        // ip_len is at most the MTU, a u16.
        let sum = csum::finish(self.sum + ip_len as u32 + ip_id as u32);
        h[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
        h[18..20].copy_from_slice(&ip_id.to_be_bytes());
        h[24..26].copy_from_slice(&sum.to_be_bytes());
        h[34..36].copy_from_slice(&sport.to_be_bytes());
        h[38..40].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
        f[..OVERHEAD].copy_from_slice(&h);
        Ok((start, len + OVERHEAD as u32, headroom - OVERHEAD as u16))
    }
}

/// Encapsulates the frame at (addr, len, headroom) for remote `r` of
/// domain `d`'s VNI ([`Template::apply`] with a template of its own).
#[inline]
pub fn encap<M: FrameMemory + ?Sized>(
    mem: &mut M,
    vtep: &Vtep,
    at: (u64, u32, u16),
    tail: u32,
    r: usize,
    d: DomainId,
    ip_id: u16,
) -> Result<(u64, u32, u16), DropReason> {
    Template::new(vtep, r, d)?.apply(mem, at, tail, ip_id)
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
        // A local for the loop: through the reference, each packet's
        // increment waited on the store of the one before.
        let mut ip_id = *self.ip_id;
        // The last remote and domain's headers (or why there are none): a
        // burst mostly goes to one.
        let mut template = None;
        for i in 0..batch.len() {
            let Verdict::Forward(p) = batch.verdict[i] else {
                continue;
            };
            if p < TUNNEL_BASE {
                continue;
            }
            ip_id = ip_id.wrapping_add(1);
            let (r, d) = ((p - TUNNEL_BASE) as usize, batch.domain[i]);
            let t = match &template {
                Some((tr, td, t)) if (*tr, *td) == (r, d) => t,
                _ => &template.insert((r, d, Template::new(self.vtep, r, d))).2,
            };
            let at = (batch.addr[i], batch.data_len[i], batch.headroom[i]);
            match t
                .as_ref()
                .map_err(|r| *r)
                .and_then(|t| t.apply(mem, at, batch.tail_len[i], ip_id))
            {
                Ok((a, n, h)) => {
                    batch.addr[i] = a;
                    batch.data_len[i] = n;
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
        *self.ip_id = ip_id;
    }
}
