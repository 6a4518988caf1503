//! Requests built with netlink-packet-route: the device's own unicast
//! address list (`bridge fdb add MAC dev DEV self`), which is how a NIC's
//! MAC filter is programmed from user space; and namespace ids, which
//! tell which namespace a veth's peer is in.

use super::Netlink;
use netlink_packet_core::Parseable;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

impl Netlink {
    /// Adds `mac` to device `index`'s unicast filter (NTF_SELF: the device
    /// itself, not a bridge's FDB). `Ok(false)` when it was there already,
    /// and so is not ours to remove.
    pub fn add_unicast_filter(&mut self, index: u32, mac: [u8; 6]) -> io::Result<bool> {
        let r = self.request_bytes(|seq| fdb_self(index, mac, seq, true));
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The id this namespace gives the namespace `ns` (RTM_GETNSID with
    /// NETNSA_FD); `None` when it has given it none.
    pub fn nsid_of(&mut self, ns: BorrowedFd<'_>) -> io::Result<Option<i32>> {
        let mut id = None;
        let fd = ns.as_raw_fd() as u32;
        self.query_bytes(
            |seq| {
                let mut n = NsidMessage::default();
                n.attributes.push(NsidAttribute::Fd(fd));
                serialize(
                    RouteNetlinkMessage::GetNsId(n),
                    NLM_F_REQUEST | NLM_F_ACK,
                    seq,
                )
            },
            |_, payload| {
                if let Ok(m) = NsidMessage::parse(payload) {
                    for a in m.attributes {
                        if let NsidAttribute::Id(i) = a {
                            id = (i >= 0).then_some(i);
                        }
                    }
                }
            },
        )?;
        Ok(id)
    }

    /// Removes what [`add_unicast_filter`](Self::add_unicast_filter) added.
    pub fn del_unicast_filter(&mut self, index: u32, mac: [u8; 6]) -> io::Result<()> {
        self.request_bytes(|seq| fdb_self(index, mac, seq, false))
    }
}

fn fdb_self(index: u32, mac: [u8; 6], seq: u32, add: bool) -> Vec<u8> {
    let mut n = NeighbourMessage::default();
    n.header.family = AddressFamily::Bridge;
    n.header.ifindex = index;
    // ndo_dflt_fdb_add takes static entries only.
    n.header.state = NeighbourState::Permanent;
    n.header.flags = NeighbourFlags::Own;
    n.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    let (msg, flags) = if add {
        (
            RouteNetlinkMessage::NewNeighbour(n),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (
            RouteNetlinkMessage::DelNeighbour(n),
            NLM_F_REQUEST | NLM_F_ACK,
        )
    };
    serialize(msg, flags, seq)
}

pub(super) fn serialize(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut m = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
    m.header.flags = flags;
    m.header.sequence_number = seq;
    m.finalize();
    let mut buf = vec![0u8; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}
