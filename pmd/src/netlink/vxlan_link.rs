//! Kernel devices made with netlink-packet-route for a VNI's kernel
//! mirror: a VXLAN device without learning, a bridge, and a bridge port's
//! options (what `ip link add … type vxlan … nolearning`, `ip link add …
//! type bridge` and `ip link set … type bridge_slave neigh_suppress on
//! learning off` send).

use super::neigh::serialize;
use super::Netlink;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVxlan, LinkAttribute,
    LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::io;
use std::net::Ipv4Addr;

impl Netlink {
    fn new_link(&mut self, m: LinkMessage, create: bool) -> io::Result<()> {
        let flags = if create {
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        };
        self.request_bytes(|seq| serialize(RouteNetlinkMessage::NewLink(m), flags, seq))
    }

    /// `ip link add NAME type vxlan id VNI local LOCAL dstport PORT
    /// nolearning`: no remote and no group (a group would switch zebra
    /// to multicast replication).
    pub fn create_vxlan(
        &mut self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
    ) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(vni),
                InfoVxlan::Local(local),
                InfoVxlan::Port(port),
                InfoVxlan::Learning(false),
            ])),
        ]));
        self.new_link(m, true)
    }

    /// `ip link add NAME type bridge`.
    pub fn create_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.new_link(m, true)
    }

    /// `ip link set PORT master BRIDGE`.
    pub fn set_master(&mut self, port: u32, bridge: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = port;
        m.attributes.push(LinkAttribute::Controller(bridge));
        self.new_link(m, false)
    }

    /// `ip link set PORT type bridge_slave neigh_suppress N learning L`.
    pub fn set_bridge_port(
        &mut self,
        port: u32,
        neigh_suppress: bool,
        learning: bool,
    ) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = port;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![
                InfoBridgePort::NeighSupress(neigh_suppress),
                InfoBridgePort::Learning(learning),
            ])),
        ]));
        self.new_link(m, false)
    }
}
