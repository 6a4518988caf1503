//! What happens to a packet when the pipeline is done with it, and why
//! packets are dropped. Drop reasons are declared once, with their counter
//! names, so a counter cannot drift from its label (VPP's `foreach_*_error`).

/// Index of a port in the engine's port table.
pub type PortId = u16;
/// Index of a bridge domain.
pub type DomainId = u16;

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// Why a packet was dropped; each reason has its own counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The counter's name, as shown by stats and metrics.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            pub const fn description(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $doc,)*
                }
            }

            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    RuntFrame => "runt_frame": "shorter than an Ethernet header",
    VlanTruncated => "vlan_truncated": "a VLAN tag cut off by the end of the frame",
    TooManyTags => "too_many_tags": "more than two stacked VLAN tags",
    Ipv4Truncated => "ipv4_truncated": "shorter than a 20-byte IPv4 header",
    Ipv4BadVersion => "ipv4_bad_version": "EtherType IPv4 but version field is not 4",
    Ipv4BadIhl => "ipv4_bad_ihl": "IPv4 IHL below 5 or past the end of the frame",
    Ipv4BadTotalLength => "ipv4_bad_total_length": "IPv4 total length below the header or past the end of the frame",
    Ipv6Truncated => "ipv6_truncated": "shorter than a 40-byte IPv6 header",
    Ipv6BadVersion => "ipv6_bad_version": "EtherType IPv6 but version field is not 6",
    Ipv6BadPayloadLength => "ipv6_bad_payload_length": "IPv6 payload length zero or past the end of the frame",
    Ipv6BadExtHeader => "ipv6_bad_ext_header": "IPv6 extension header chain truncated or too long",
    UdpTruncated => "udp_truncated": "shorter than a UDP header",
    UdpBadLength => "udp_bad_length": "UDP length below 8 or past the end of the IP payload",
    TcpTruncated => "tcp_truncated": "shorter than a TCP header",
    TcpBadDataOffset => "tcp_bad_data_offset": "TCP data offset below 5 words or past the end of the IP payload",
    IcmpTruncated => "icmp_truncated": "shorter than an ICMP header",
    FragmentOverlapsL4 => "fragment_overlaps_l4": "an IPv4 TCP fragment at offset 8, which could rewrite the ports an ACL judged (RFC 1858)",
    BadDescriptor => "bad_descriptor": "frame address or length outside the frame pool",
    NoRoute => "no_route": "no output port for this ingress port",
    TxRingFull => "tx_ring_full": "the output port's TX ring had no room",
    PortDown => "port_down": "the output port is down or gone",
    PoolEmpty => "pool_empty": "no free frame for a copy",
    VlanTaggedOnAccess => "vlan_tagged_on_access": "a tagged frame (VID not 0) on an access port",
    VlanUntaggedNotAllowed => "vlan_untagged_not_allowed": "an untagged frame on a trunk without a native VLAN, or a QinQ port without an S-tag",
    VlanNotAllowed => "vlan_not_allowed": "a VID outside the port's allowed list",
    VlanReserved => "vlan_reserved": "VID 4095, reserved by 802.1Q",
    VlanWrongTpid => "vlan_wrong_tpid": "an outer tag whose TPID the port does not accept",
    NoHeadroom => "no_headroom": "no room in the frame to push a tag",
    VlanHopBlocked => "vlan_hop_blocked": "a frame still carrying a VLAN tag about to leave untagged (access port, native VLAN): it would hop into that VLAN",
    SameSegment => "same_segment": "destination MAC is on the ingress port",
    StormBroadcast => "storm_broadcast": "over the port's broadcast rate limit",
    StormMulticast => "storm_multicast": "over the port's multicast rate limit",
    StormUnknownUnicast => "storm_unknown_unicast": "over the port's unknown-unicast rate limit",
    SrcMacMulticast => "src_mac_multicast": "a group address as source MAC",
    WorkerRingFull => "worker_ring_full": "the hand-off ring to the worker serving the output port was full",
    AclDeny => "acl_deny": "denied by an ACL rule or an ACL's default action",
    VxlanNotForUs => "vxlan_not_for_us": "underlay traffic that is neither VXLAN to our VTEP nor ARP",
    VxlanTruncated => "vxlan_truncated": "a VXLAN packet too short for its header and an inner Ethernet header",
    VxlanBadFlags => "vxlan_bad_flags": "a VXLAN header without the I flag",
    VxlanUnknownVni => "vxlan_unknown_vni": "a VNI no bridge domain maps",
    VxlanTooManyRemotes => "vxlan_too_many_remotes": "a packet from a new remote VTEP with the remote table full",
    VxlanNoNeighbor => "vxlan_no_neighbor": "the remote VTEP's (or gateway's) MAC is not resolved yet",
    VxlanTooBig => "vxlan_too_big": "larger than the underlay MTU once encapsulated",
    ArpIgnored => "arp_ignored": "an ARP packet on the underlay not for our VTEP address",
    L2cpDropped => "l2cp_dropped": "an L2 control frame (01:80:c2:00:00:0x: STP, LACP, LLDP) on a customer port that does not tunnel them",
    MacvlanUnknownDst => "macvlan_unknown_dst": "a unicast frame from a macvlan parent for a MAC no member has",
    MacvlanPrivate => "macvlan_private": "a frame from one member of a private macvlan to another, hairpinned back by the external switch",
    IpvlanUnknownDst => "ipvlan_unknown_dst": "a frame from an ipvlan parent for an IP address no member has",
    IpvlanNotIp => "ipvlan_not_ip": "a unicast frame from an ipvlan parent that is neither IPv4, IPv6 nor ARP: members are told apart by IP",
    L3NotIp => "l3_not_ip": "to a router MAC but neither IPv4, IPv6 nor ARP",
    L3NoRoute => "l3_no_route": "no FIB route for the destination, or an unreachable route (ICMP unreachable sent where allowed)",
    L3Blackhole => "l3_blackhole": "routed to a blackhole route",
    TtlExceeded => "ttl_exceeded": "IPv4 TTL or IPv6 hop limit would reach zero (ICMP time exceeded sent where allowed)",
    IpTooBig => "ip_too_big": "larger than the egress interface's MTU: pollgate does not fragment (ICMP fragmentation needed / packet too big sent for DF and IPv6)",
    NeighborUnresolved => "neighbor_unresolved": "the next hop's MAC did not resolve within a second of the packet's arrival, or more packets waited for it than the router holds (4 per neighbour, 64 per worker)",
    L3LocalDropped => "l3_local_dropped": "to one of pollgate's own addresses but not ICMP echo, ARP or ND",
    NdConsumed => "nd_consumed": "an ARP reply or neighbour advertisement for pollgate: learnt from, then freed",
    NatSourceLimit => "nat_source_limit": "a new NAT session from a source that already holds its limit of sessions (`per_source`)",
    NatPortsExhausted => "nat_ports_exhausted": "a new NAT session with no port left on its address in the rule's range",
    NatTableFull => "nat_table_full": "a new NAT session with the flow table's window (or the per-source table) full: counted, not tracked, not sent untranslated",
    NatUnsupported => "nat_unsupported": "to be masqueraded but with no ports to translate by: neither TCP, UDP nor an ICMP query, or a later fragment",
    FrameTooBig => "frame_too_big": "a multi-buffer (jumbo) frame for a port whose MTU, or hand-off ring to its worker, cannot carry it",
}

/// Where a packet goes after the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// No stage has decided yet.
    #[default]
    Pending,
    /// Transmit on one port.
    Forward(PortId),
    /// Transmit on every member of a bridge domain but the ingress port.
    Flood(DomainId),
    /// Free the frame and count the reason.
    Drop(DropReason),
    /// For the engine itself (ARP for its VTEP address, for example).
    Local,
    /// Kept by the router while its next hop resolves: the frame is the
    /// router's until it puts the packet back into a later batch.
    Held,
    /// For another worker, which holds the packet's NAT session: the
    /// worker copies it across, and that worker runs it through its own
    /// pipeline as if it had received it.
    Handoff(u16),
}

/// Per-worker drop counters, one per reason. Plain integers: a worker owns
/// its counters and publishes them off the packet path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }
}

impl DropCounters {
    #[inline(always)]
    pub fn count(&mut self, reason: DropReason) {
        self.counts[reason.index()] += 1;
    }

    pub fn add(&mut self, reason: DropReason, n: u64) {
        self.counts[reason.index()] += n;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was counted after `base`, reason by reason.
    pub fn since(&self, base: &DropCounters) -> DropCounters {
        DropCounters {
            counts: std::array::from_fn(|i| self.counts[i].saturating_sub(base.counts[i])),
        }
    }

    /// Non-zero counters with their names.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.counts[r.index()]))
            .filter(|(_, n)| *n != 0)
    }

    pub fn as_array(&self) -> &[u64; DropReason::COUNT] {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_reason_by_reason() {
        let (mut base, mut now) = (DropCounters::default(), DropCounters::default());
        base.add(DropReason::AclDeny, 5);
        now.add(DropReason::AclDeny, 7);
        now.add(DropReason::RuntFrame, 3);
        let d = now.since(&base);
        assert_eq!(
            (d.get(DropReason::AclDeny), d.get(DropReason::RuntFrame)),
            (2, 3)
        );
        // A counter below its base (cleared meanwhile) reads zero.
        assert_eq!(base.since(&now).get(DropReason::AclDeny), 0);
    }

    #[test]
    fn names_are_unique_and_indexed_in_order() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(!r.description().is_empty());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_count() {
        let mut c = DropCounters::default();
        c.count(DropReason::TooManyTags);
        c.add(DropReason::RuntFrame, 3);
        assert_eq!(c.get(DropReason::TooManyTags), 1);
        assert_eq!(c.total(), 4);
        assert_eq!(c.nonzero().count(), 2);
    }
}
