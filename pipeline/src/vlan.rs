//! Per-port VLAN modes and the VLAN stage: which bridge domain an
//! ingress frame belongs to (by its tags and the port's mode), and how a
//! frame of a domain is tagged when it leaves a port. Tags are stripped on
//! ingress and pushed on egress in place, using the frame's headroom; PCP
//! and DEI travel with the packet across re-tagging.

use crate::batch::{flags, Batch};
use crate::frame::FrameMemory;
use crate::stage::Stage;
use crate::verdict::{DomainId, DropCounters, DropReason, PortId, Verdict};
use crate::wire::EtherType;

/// "No domain": the port (or VID) is not in any bridge domain.
pub const NO_DOMAIN: DomainId = DomainId::MAX;
const VID_COUNT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanMode {
    /// Untagged frames only (and priority-tagged, VID 0): one domain.
    Access,
    /// 802.1Q tags select the domain (allowed VIDs); untagged frames go to
    /// the native domain if there is one.
    Trunk,
    /// The outer S-tag (TPID 0x88a8 by default) selects the service
    /// domain; the inner C-tag is carried. A (S, C) pair may select a
    /// domain of its own (selective QinQ), both tags then stripped.
    QinQ,
    /// The customer side of an 802.1ad service (Cisco and OVS call it
    /// dot1q-tunnel): whatever the customer sends, untagged,
    /// priority-tagged or C-tagged with any VID, joins the one service
    /// domain with its tags kept as payload; provider ports push the S-tag
    /// over them, and frames leave here as they were inside the service.
    Tunnel,
}

/// What a customer port does with IEEE L2 control frames
/// (01:80:c2:00:00:00..0f: STP, LACP, LLDP, 802.1X).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L2cp {
    /// Dropped and counted: the customer's control protocols stay on the
    /// customer's side, as 802.1ad's C-VLAN component does by default.
    #[default]
    Drop,
    /// Carried through the service like any other frame.
    Tunnel,
}

/// How one port maps frames to domains.
#[derive(Debug, Clone)]
pub struct PortVlan {
    pub mode: VlanMode,
    /// TPID accepted (and pushed) as the outer tag.
    pub tpid: u16,
    /// Domain of untagged and priority-tagged frames.
    pub untagged: DomainId,
    /// Domain per outer VID (C-VID on trunks, S-VID on QinQ ports).
    by_vid: Box<[DomainId]>,
    /// Selective QinQ: (S-VID, C-VID) -> domain.
    by_pair: Vec<(u16, u16, DomainId)>,
    /// Customer ports: the PCP of the S-tag for frames that come without a
    /// tag of their own.
    pub default_pcp: u8,
    /// Customer ports: L2 control frames tunnelled or dropped.
    pub l2cp: L2cp,
}

impl PortVlan {
    pub fn new(mode: VlanMode, tpid: u16) -> Self {
        PortVlan {
            mode,
            tpid,
            untagged: NO_DOMAIN,
            by_vid: vec![NO_DOMAIN; VID_COUNT].into_boxed_slice(),
            by_pair: Vec::new(),
            default_pcp: 0,
            l2cp: L2cp::Drop,
        }
    }

    pub fn map_vid(&mut self, vid: u16, d: DomainId) {
        self.by_vid[(vid & 0x0fff) as usize] = d;
    }

    pub fn map_pair(&mut self, svid: u16, cvid: u16, d: DomainId) {
        self.by_pair.push((svid, cvid, d));
    }

    /// The domain of a frame with these tags, how many outer tags to
    /// strip, and the TCI whose PCP/DEI the frame keeps.
    #[inline(always)]
    pub fn classify(
        &self,
        tags: u8,
        outer_tpid: u16,
        outer_tci: u16,
        inner_tci: u16,
    ) -> Result<(DomainId, u8, u16), DropReason> {
        let vid = outer_tci & 0x0fff;
        let untagged = |strip: u8, tci: u16| {
            if self.untagged == NO_DOMAIN {
                Err(match self.mode {
                    VlanMode::Access => DropReason::VlanTaggedOnAccess,
                    _ => DropReason::VlanUntaggedNotAllowed,
                })
            } else {
                Ok((self.untagged, strip, tci))
            }
        };
        if self.mode == VlanMode::Tunnel {
            // C-VLAN agnostic: every tag is payload; the customer's own PCP
            // (and DEI) rides on the S-tag where it sent one.
            let tci = if tags == 0 {
                (self.default_pcp as u16) << 13
            } else {
                outer_tci & 0xf000
            };
            return untagged(0, tci);
        }
        if tags == 0 {
            return untagged(0, 0);
        }
        // A priority tag (VID 0) marks an untagged frame with a PCP.
        if tags == 1 && vid == 0 && (outer_tpid == EtherType::VLAN || outer_tpid == self.tpid) {
            return untagged(1, outer_tci);
        }
        if self.mode == VlanMode::Access {
            return Err(DropReason::VlanTaggedOnAccess);
        }
        if outer_tpid != self.tpid {
            return Err(DropReason::VlanWrongTpid);
        }
        if vid == 0x0fff || (tags == 2 && inner_tci & 0x0fff == 0x0fff) {
            return Err(DropReason::VlanReserved);
        }
        if self.mode == VlanMode::QinQ && tags == 2 {
            let cvid = inner_tci & 0x0fff;
            if let Some(&(_, _, d)) = self
                .by_pair
                .iter()
                .find(|(s, c, _)| *s == vid && *c == cvid)
            {
                return Ok((d, 2, outer_tci));
            }
        }
        match self.by_vid[vid as usize] {
            NO_DOMAIN => Err(DropReason::VlanNotAllowed),
            d => Ok((d, 1, outer_tci)),
        }
    }
}

/// What a port does to a frame of a domain on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EgressTag {
    /// Not a member: the frame never goes there.
    #[default]
    NotMember,
    /// Leaves as it is inside the domain (access port, trunk native VLAN).
    Untagged,
    /// Leaves as it is inside the domain, customer tags included: the
    /// customer port of an 802.1ad service (the S-tag was popped on the
    /// provider port).
    Customer,
    /// One tag pushed: C-tag on a trunk, S-tag on a QinQ port.
    Push { tpid: u16, vid: u16 },
    /// S-tag and C-tag pushed (selective QinQ).
    PushPair { tpid: u16, svid: u16, cvid: u16 },
}

/// Every port's VLAN map and the egress tag of each (domain, port).
#[derive(Debug, Clone)]
pub struct VlanMap {
    ports: Vec<Option<PortVlan>>,
    egress: Vec<EgressTag>,
    nports: usize,
    /// Some (domain, port) pushes a tag: without one, egress has nothing
    /// to push, and a burst with no tags carried nothing to refuse.
    pushes: bool,
}

impl VlanMap {
    pub fn new(nports: usize, ndomains: usize) -> Self {
        VlanMap {
            ports: vec![None; nports],
            egress: vec![EgressTag::NotMember; nports * ndomains],
            nports,
            pushes: false,
        }
    }

    pub fn set_port(&mut self, port: PortId, v: PortVlan) {
        self.ports[port as usize] = Some(v);
    }

    pub fn port(&self, port: PortId) -> Option<&PortVlan> {
        self.ports.get(port as usize).and_then(|p| p.as_ref())
    }

    pub fn set_egress(&mut self, domain: DomainId, port: PortId, tag: EgressTag) {
        self.egress[domain as usize * self.nports + port as usize] = tag;
        self.pushes |= matches!(tag, EgressTag::Push { .. } | EgressTag::PushPair { .. });
    }

    #[inline(always)]
    pub fn egress(&self, domain: DomainId, port: PortId) -> EgressTag {
        self.egress
            .get(domain as usize * self.nports + port as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// Refuses a frame that still carries a tag (one carried through a trunk
/// inside another VLAN) on an untagged egress: out of an access port or a
/// trunk's native VLAN its inner tag would put it in that VLAN on the next
/// switch, the double-tagging VLAN hop.
#[inline(always)]
pub fn egress_allowed(tag: EgressTag, carried_tags: u8) -> Result<(), DropReason> {
    if tag == EgressTag::Untagged && carried_tags > 0 {
        Err(DropReason::VlanHopBlocked)
    } else {
        Ok(())
    }
}

/// IEEE 802.1 reserved group addresses 01:80:c2:00:00:00..0f, which a
/// bridge never floods as ordinary multicast (802.1Q table 8-1).
#[inline(always)]
pub fn is_l2_control(dst: &[u8]) -> bool {
    dst.len() >= 6 && dst[..5] == [0x01, 0x80, 0xc2, 0, 0] && dst[5] <= 0x0f
}

/// Removes `n` tags after the MAC addresses: the addresses move forward,
/// the frame starts later. Returns the new (addr, len, headroom).
#[inline(always)]
pub fn strip_tags<M: FrameMemory + ?Sized>(
    mem: &mut M,
    addr: u64,
    len: u32,
    headroom: u16,
    n: u8,
) -> Option<(u64, u32, u16)> {
    let shift = 4 * n as u32;
    let buf = mem.bytes_mut(addr, len)?;
    if (len as usize) < 12 + shift as usize {
        return None;
    }
    buf.copy_within(0..12, shift as usize);
    Some((addr + shift as u64, len - shift, headroom + shift as u16))
}

/// Pushes the egress tag(s) in front of the frame's EtherType, in the
/// frame's headroom; `tci` carries the PCP and DEI to keep.
#[inline(always)]
pub fn push_tags<M: FrameMemory + ?Sized>(
    mem: &mut M,
    addr: u64,
    len: u32,
    headroom: u16,
    tag: EgressTag,
    tci: u16,
) -> Result<(u64, u32, u16), DropReason> {
    let prio = tci & 0xf000;
    let (n, words): (u32, [(u16, u16); 2]) = match tag {
        EgressTag::NotMember | EgressTag::Untagged | EgressTag::Customer => {
            return Ok((addr, len, headroom))
        }
        EgressTag::Push { tpid, vid } => (1, [(tpid, prio | vid), (0, 0)]),
        EgressTag::PushPair { tpid, svid, cvid } => {
            (2, [(tpid, prio | svid), (EtherType::VLAN, prio | cvid)])
        }
    };
    let shift = 4 * n;
    if (headroom as u32) < shift || len < 12 {
        return Err(DropReason::NoHeadroom);
    }
    let start = addr - shift as u64;
    let buf = mem
        .bytes_mut(start, len + shift)
        .ok_or(DropReason::NoHeadroom)?;
    buf.copy_within(shift as usize..shift as usize + 12, 0);
    for (k, (tpid, tci)) in words.iter().take(n as usize).enumerate() {
        let at = 12 + 4 * k;
        buf[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
        buf[at + 2..at + 4].copy_from_slice(&tci.to_be_bytes());
    }
    Ok((start, len + shift, headroom - shift as u16))
}

/// The ingress half of the VLAN stage: domain per packet, tags stripped.
/// Ports without a VLAN map (cross-connected ports) are left alone.
pub struct VlanIngress<'a> {
    pub map: &'a VlanMap,
}

impl Stage for VlanIngress<'_> {
    fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        for i in 0..batch.len() {
            if batch.flags[i] & flags::TUNNEL != 0 {
                // Decapsulated: the VNI chose its domain already.
                continue;
            }
            batch.domain[i] = NO_DOMAIN;
            if batch.verdict[i] != Verdict::Pending {
                continue;
            }
            let Some(pv) = self.map.port(batch.in_port[i]) else {
                continue;
            };
            if pv.mode == VlanMode::Tunnel
                && pv.l2cp == L2cp::Drop
                && mem.bytes(batch.addr[i], 6).is_some_and(is_l2_control)
            {
                batch.verdict[i] = Verdict::Drop(DropReason::L2cpDropped);
                drops.count(DropReason::L2cpDropped);
                continue;
            }
            let r = pv.classify(
                batch.tags[i],
                batch.outer_tpid[i],
                batch.outer_tci[i],
                batch.inner_tci[i],
            );
            let (domain, strip, tci) = match r {
                Ok(x) => x,
                Err(reason) => {
                    batch.verdict[i] = Verdict::Drop(reason);
                    drops.count(reason);
                    continue;
                }
            };
            if strip > 0 {
                let Some((addr, len, headroom)) = strip_tags(
                    mem,
                    batch.addr[i],
                    batch.data_len[i],
                    batch.headroom[i],
                    strip,
                ) else {
                    batch.verdict[i] = Verdict::Drop(DropReason::BadDescriptor);
                    drops.count(DropReason::BadDescriptor);
                    continue;
                };
                let shift = 4 * strip as u16;
                batch.addr[i] = addr;
                batch.data_len[i] = len;
                batch.headroom[i] = headroom;
                batch.l3_off[i] -= shift;
                batch.l4_off[i] = batch.l4_off[i].saturating_sub(shift);
                batch.tags[i] -= strip;
                if batch.tags[i] == 1 {
                    // The carried C-tag is now the outer one.
                    batch.outer_tpid[i] = EtherType::VLAN;
                    batch.outer_tci[i] = batch.inner_tci[i];
                }
            }
            batch.prio[i] = tci;
            batch.domain[i] = domain;
        }
    }
}

/// The egress half for unicast: push the tags the output port needs.
pub struct VlanEgress<'a> {
    pub map: &'a VlanMap,
}

impl Stage for VlanEgress<'_> {
    fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        // Access ports and native VLANs only, and no frame carrying a tag
        // through: every frame leaves as it is.
        if !self.map.pushes && batch.tags[..batch.len()].iter().all(|&t| t == 0) {
            return;
        }
        for i in 0..batch.len() {
            let Verdict::Forward(out) = batch.verdict[i] else {
                continue;
            };
            let d = batch.domain[i];
            if d == NO_DOMAIN {
                continue;
            }
            let tag = self.map.egress(d, out);
            let pushed = match tag {
                EgressTag::Push { .. } | EgressTag::PushPair { .. } => push_tags(
                    mem,
                    batch.addr[i],
                    batch.data_len[i],
                    batch.headroom[i],
                    tag,
                    batch.prio[i],
                ),
                // Nothing to push: the frame leaves as it is (most of
                // them: access ports, native VLANs), unless it carries a
                // tag out of an untagged port.
                _ => match egress_allowed(tag, batch.tags[i]) {
                    Ok(()) => continue,
                    Err(reason) => Err(reason),
                },
            };
            match pushed {
                Ok((addr, len, headroom)) => {
                    batch.addr[i] = addr;
                    batch.data_len[i] = len;
                    batch.headroom[i] = headroom;
                }
                Err(reason) => {
                    batch.verdict[i] = Verdict::Drop(reason);
                    drops.count(reason);
                }
            }
        }
    }
}
