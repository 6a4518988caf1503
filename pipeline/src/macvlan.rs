//! Containers sharing an uplink the way Linux macvlan does: each member
//! port has its own MAC on the parent's segment, nothing is learned, and
//! the mode decides whether members reach each other inside pollgate
//! (`bridge`), only through the external switch (`vepa`), never
//! (`private`), or whether one member owns the parent (`passthru`).
//! Member MACs are static entries of the domain in the shared MAC table.

use crate::mac_table::MacTable;
use crate::verdict::{DomainId, DropReason, PortId, Verdict};
use crate::wire::MacAddr;

/// Linux's macvlan modes (`ip link add … type macvlan mode M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacVlanMode {
    /// Members reach each other directly; unknown unicast goes out of the
    /// parent.
    Bridge,
    /// Every member frame leaves through the parent; members reach each
    /// other only when the external switch hairpins it back (802.1Qbg).
    Vepa,
    /// As VEPA, but a frame from one member never reaches another, even
    /// hairpinned.
    Private,
    /// One member and the parent, cross-connected: the member owns the
    /// uplink (promiscuous) and everything on it.
    Passthru,
}

impl MacVlanMode {
    pub fn name(self) -> &'static str {
        match self {
            MacVlanMode::Bridge => "bridge",
            MacVlanMode::Vepa => "vepa",
            MacVlanMode::Private => "private",
            MacVlanMode::Passthru => "passthru",
        }
    }
}

/// A macvlan domain: the parent (uplink) port, the mode, and for
/// `passthru` its one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacVlan {
    pub parent: PortId,
    pub mode: MacVlanMode,
    /// `passthru`: the member that owns the parent.
    pub owner: PortId,
}

/// What a macvlan domain decides for one frame: a verdict, and for a
/// flood the member it must also skip (the sender of a hairpinned
/// broadcast, which Linux never sends its own frame back to).
#[inline(always)]
pub fn decide(
    m: &MacVlan,
    table: &MacTable,
    domain: DomainId,
    in_port: PortId,
    dst: MacAddr,
    src: MacAddr,
) -> (Verdict, Option<PortId>) {
    let from_parent = in_port == m.parent;
    if m.mode == MacVlanMode::Passthru {
        let out = if from_parent { m.owner } else { m.parent };
        return (Verdict::Forward(out), None);
    }
    if !from_parent {
        if m.mode != MacVlanMode::Bridge {
            // VEPA and private: the external switch decides.
            return (Verdict::Forward(m.parent), None);
        }
        if dst.is_multicast() {
            return (Verdict::Flood(domain), None);
        }
        return match table.lookup(domain, dst) {
            Some(p) if p == in_port => (Verdict::Drop(DropReason::SameSegment), None),
            Some(p) => (Verdict::Forward(p), None),
            None => (Verdict::Forward(m.parent), None),
        };
    }
    // From the parent: a frame one of our members sent may come back,
    // hairpinned by the switch (VEPA's whole point).
    let sender = match m.mode {
        MacVlanMode::Bridge => None,
        _ => table.lookup(domain, src).filter(|&p| p != m.parent),
    };
    if sender.is_some() && m.mode == MacVlanMode::Private {
        return (Verdict::Drop(DropReason::MacvlanPrivate), None);
    }
    if dst.is_multicast() {
        return (Verdict::Flood(domain), sender);
    }
    match table.lookup(domain, dst) {
        Some(p) if p != m.parent => (Verdict::Forward(p), None),
        _ => (Verdict::Drop(DropReason::MacvlanUnknownDst), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: PortId = 0;
    const A: PortId = 1;
    const B: PortId = 2;
    const MA: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const MB: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
    const HOST: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc]);
    const BC: MacAddr = MacAddr::BROADCAST;

    fn run(
        mode: MacVlanMode,
        in_port: PortId,
        dst: MacAddr,
        src: MacAddr,
    ) -> (Verdict, Option<PortId>) {
        let t = MacTable::new(64);
        t.add_static(0, MA, A);
        t.add_static(0, MB, B);
        let m = MacVlan {
            parent: PARENT,
            mode,
            owner: A,
        };
        decide(&m, &t, 0, in_port, dst, src)
    }

    /// (name, mode, in port, dst, src, what happens)
    type Case = (
        &'static str,
        MacVlanMode,
        PortId,
        MacAddr,
        MacAddr,
        (Verdict, Option<PortId>),
    );

    #[test]
    fn every_mode_as_linux_names_it() {
        use MacVlanMode::*;
        use Verdict::*;
        let cases: &[Case] = &[
            (
                "bridge: member to member",
                Bridge,
                A,
                MB,
                MA,
                (Forward(B), None),
            ),
            (
                "bridge: member to the segment",
                Bridge,
                A,
                HOST,
                MA,
                (Forward(PARENT), None),
            ),
            (
                "bridge: member broadcast",
                Bridge,
                A,
                BC,
                MA,
                (Flood(0), None),
            ),
            (
                "bridge: segment to member",
                Bridge,
                PARENT,
                MA,
                HOST,
                (Forward(A), None),
            ),
            (
                "bridge: segment broadcast",
                Bridge,
                PARENT,
                BC,
                HOST,
                (Flood(0), None),
            ),
            (
                "bridge: segment to nobody here",
                Bridge,
                PARENT,
                HOST,
                MacAddr([2, 0, 0, 0, 0, 0xd]),
                (Drop(DropReason::MacvlanUnknownDst), None),
            ),
            (
                "vepa: member to member goes out",
                Vepa,
                A,
                MB,
                MA,
                (Forward(PARENT), None),
            ),
            (
                "vepa: member broadcast goes out",
                Vepa,
                A,
                BC,
                MA,
                (Forward(PARENT), None),
            ),
            (
                "vepa: hairpinned unicast delivered",
                Vepa,
                PARENT,
                MB,
                MA,
                (Forward(B), None),
            ),
            (
                "vepa: hairpinned broadcast skips its sender",
                Vepa,
                PARENT,
                BC,
                MA,
                (Flood(0), Some(A)),
            ),
            (
                "private: member to member goes out",
                Private,
                A,
                MB,
                MA,
                (Forward(PARENT), None),
            ),
            (
                "private: hairpinned unicast refused",
                Private,
                PARENT,
                MB,
                MA,
                (Drop(DropReason::MacvlanPrivate), None),
            ),
            (
                "private: hairpinned broadcast refused",
                Private,
                PARENT,
                BC,
                MA,
                (Drop(DropReason::MacvlanPrivate), None),
            ),
            (
                "private: segment to member",
                Private,
                PARENT,
                MB,
                HOST,
                (Forward(B), None),
            ),
            (
                "private: segment broadcast",
                Private,
                PARENT,
                BC,
                HOST,
                (Flood(0), None),
            ),
            (
                "passthru: owner out",
                Passthru,
                A,
                HOST,
                MA,
                (Forward(PARENT), None),
            ),
            (
                "passthru: anything in",
                Passthru,
                PARENT,
                HOST,
                MB,
                (Forward(A), None),
            ),
        ];
        for (name, mode, port, dst, src, want) in cases {
            assert_eq!(run(*mode, *port, *dst, *src), *want, "{name}");
        }
    }
}
