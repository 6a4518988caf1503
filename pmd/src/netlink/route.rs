//! Addresses and routes, built with netlink-packet-route: what a CNI
//! plugin sets inside a container's namespace (the addresses its IPAM
//! plugin handed out, and the routes that go with them).

use super::neigh::serialize;
use super::Netlink;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::IpAddr;

const NEW: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

impl Netlink {
    /// Every IPv4 address of the namespace, as (device index, address).
    pub fn ipv4_addresses(&mut self) -> io::Result<Vec<(u32, std::net::Ipv4Addr)>> {
        let mut out = Vec::new();
        self.query_bytes(
            |seq| {
                let mut m = AddressMessage::default();
                m.header.family = AddressFamily::Inet;
                serialize(
                    RouteNetlinkMessage::GetAddress(m),
                    NLM_F_REQUEST | netlink_packet_core::NLM_F_DUMP,
                    seq,
                )
            },
            |ty, payload| {
                use netlink_packet_core::Parseable;
                const RTM_NEWADDR: u16 = 20;
                if ty != RTM_NEWADDR {
                    return;
                }
                if let Ok(m) = AddressMessage::parse(payload) {
                    for a in m.attributes {
                        if let AddressAttribute::Local(IpAddr::V4(ip)) = a {
                            out.push((m.header.index, ip));
                        }
                    }
                }
            },
        )?;
        Ok(out)
    }

    /// Adds `addr/prefix` (IPv4 or IPv6) to device `index`.
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = family(addr);
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr));
        m.attributes.push(AddressAttribute::Address(addr));
        self.request_bytes(|seq| serialize(RouteNetlinkMessage::NewAddress(m), NEW, seq))
    }

    /// Adds a route to `dst/prefix` in the main table, through `gateway`
    /// or (without one) directly out of device `index`.
    pub fn add_route(
        &mut self,
        dst: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
        index: u32,
    ) -> io::Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(dst);
        m.header.destination_prefix_length = prefix;
        m.header.table = libc::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.kind = RouteType::Unicast;
        m.header.scope = if gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if prefix > 0 {
            m.attributes
                .push(RouteAttribute::Destination(route_address(dst)));
        }
        if let Some(gw) = gateway {
            m.attributes
                .push(RouteAttribute::Gateway(route_address(gw)));
        }
        m.attributes.push(RouteAttribute::Oif(index));
        self.request_bytes(|seq| serialize(RouteNetlinkMessage::NewRoute(m), NEW, seq))
    }
}
