//! Decapsulation, for packets arriving on the underlay port: VXLAN to our
//! address and UDP port loses its outer headers and continues as the
//! inner frame, in the domain its VNI selects, from the tunnel port of
//! the VTEP that sent it; ARP goes to the engine (`Local`); anything else
//! is a counted drop.

use super::vtep::{Vtep, TUNNEL_BASE};
use crate::batch::{flags, Batch};
use crate::frame::FrameMemory;
use crate::parse::parse_frame_in;
use crate::verdict::{DropCounters, DropReason, Verdict};
use crate::wire::{MacAddr, VxlanHeader};

pub struct Decap<'a> {
    pub vtep: &'a Vtep,
}

impl Decap<'_> {
    pub fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        // The last remote found and its slot, once its next hop is known:
        // a burst off the underlay mostly comes from one VTEP.
        let mut last = None;
        for i in 0..batch.len() {
            if batch.verdict[i] != Verdict::Pending || batch.in_port[i] != self.vtep.cfg.port {
                continue;
            }
            if let Err(r) = self.one(batch, i, mem, &mut last) {
                batch.verdict[i] = Verdict::Drop(r);
                drops.count(r);
            }
        }
    }

    #[inline]
    fn one<M: FrameMemory + ?Sized>(
        &self,
        batch: &mut Batch,
        i: usize,
        mem: &M,
        last: &mut Option<([u8; 4], usize)>,
    ) -> Result<(), DropReason> {
        let c = &self.vtep.cfg;
        if batch.ethertype[i] == 0x0806 && batch.tags[i] == 0 {
            batch.verdict[i] = Verdict::Local;
            return Ok(());
        }
        let f = batch.flags[i];
        if f & flags::IPV4 == 0 || f & flags::L4 == 0 || batch.l4_proto[i] != 17 {
            return Err(DropReason::VxlanNotForUs);
        }
        let (l3, l4) = (batch.l3_off[i] as usize, batch.l4_off[i] as usize);
        let b = mem
            .bytes(batch.addr[i], batch.data_len[i])
            .ok_or(DropReason::BadDescriptor)?;
        let dst_ip = b.get(l3 + 16..l3 + 20).ok_or(DropReason::VxlanNotForUs)?;
        let dport = b
            .get(l4 + 2..l4 + 4)
            .map(|p| u16::from_be_bytes([p[0], p[1]]));
        if dst_ip != c.ip || dport != Some(c.udp_port) {
            return Err(DropReason::VxlanNotForUs);
        }
        let inner_off = l4 + 8 + 8;
        let vx = b.get(l4 + 8..inner_off).ok_or(DropReason::VxlanTruncated)?;
        if b.len() < inner_off + 14 {
            return Err(DropReason::VxlanTruncated);
        }
        let vx = VxlanHeader::new_unchecked(vx);
        if !vx.vni_valid() {
            return Err(DropReason::VxlanBadFlags);
        }
        let domain = self
            .vtep
            .domain_of_vni(vx.vni())
            .ok_or(DropReason::VxlanUnknownVni)?;
        let src_ip = [b[l3 + 12], b[l3 + 13], b[l3 + 14], b[l3 + 15]];
        let r = match *last {
            Some((ip, r)) if ip == src_ip => r,
            _ => {
                let r = self
                    .vtep
                    .remote_or_insert(src_ip)
                    .ok_or(DropReason::VxlanTooManyRemotes)?;
                if c.gateway.is_none() && self.vtep.next_hop_mac(r).is_none() {
                    // On-link remote: its packets come from its own MAC.
                    // ARP confirms later; meanwhile replies need not wait.
                    self.vtep
                        .learn_neighbor(src_ip, MacAddr::from_bytes(&b[6..12]));
                } else {
                    *last = Some((src_ip, r));
                }
                r
            }
        };
        let inner = parse_frame_in(&b[inner_off..], batch.pkt_len(i) as usize - inner_off)?;
        let skip = inner_off as u32;
        batch.addr[i] += skip as u64;
        batch.data_len[i] -= skip;
        batch.headroom[i] = batch.headroom[i].saturating_add(skip as u16);
        batch.l3_off[i] = inner.l3_off;
        batch.l4_off[i] = inner.l4_off;
        batch.ethertype[i] = inner.ethertype;
        batch.l4_proto[i] = inner.l4_proto;
        batch.tags[i] = inner.tags;
        batch.outer_tpid[i] = inner.outer_tpid;
        batch.outer_tci[i] = inner.outer_tci;
        batch.inner_tci[i] = inner.inner_tci;
        batch.flags[i] = inner.flags | flags::TUNNEL;
        batch.prio[i] = 0;
        batch.in_port[i] = TUNNEL_BASE + r as u16;
        batch.domain[i] = domain;
        Ok(())
    }
}
