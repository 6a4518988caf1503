//! Neighbour entries, with netlink-packet-route: a bridge's forwarding
//! database (what zebra reads local MACs from and writes remote MACs and
//! VTEPs to, for BGP EVPN), the kernel's ARP entries (the next hops of a
//! VTEP whose underlay the kernel keeps), and a socket subscribed to their
//! changes.

use super::neigh::serialize;
use super::Netlink;
use netlink_packet_core::{
    NetlinkBuffer, Parseable, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One neighbour entry, of a bridge's FDB (`bridge fdb`) or the ARP
/// table (`ip neigh`), as a dump or a notification carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighEntry {
    pub ifindex: u32,
    /// AF_BRIDGE: an FDB entry; AF_INET: an ARP entry.
    pub bridge: bool,
    pub mac: Option<[u8; 6]>,
    /// NDA_DST: the remote VTEP of a VXLAN FDB entry, the address of an
    /// ARP entry.
    pub dst: Option<Ipv4Addr>,
    /// NUD_* bits.
    pub state: u16,
    /// NTF_* bits (NTF_SELF, NTF_MASTER, NTF_EXT_LEARNED…).
    pub flags: u8,
    /// RTM_DELNEIGH.
    pub deleted: bool,
}

pub const NUD_REACHABLE: u16 = 0x02;
pub const NUD_STALE: u16 = 0x04;
pub const NUD_DELAY: u16 = 0x08;
pub const NUD_PROBE: u16 = 0x10;
pub const NUD_NOARP: u16 = 0x40;
pub const NUD_PERMANENT: u16 = 0x80;
pub const NTF_SELF: u8 = 0x02;
pub const NTF_MASTER: u8 = 0x04;
pub const NTF_EXT_LEARNED: u8 = 0x10;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
/// RTNLGRP_NEIGH as a bind(2) group mask.
const RTMGRP_NEIGH: u32 = 1 << 2;

impl NeighEntry {
    /// An ARP entry whose MAC can be used: confirmed, or stale but not
    /// yet found wrong.
    pub fn usable(&self) -> bool {
        const OK: u16 =
            NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
        !self.deleted && self.state & OK != 0 && self.mac.is_some_and(|m| m != [0; 6])
    }
}

/// Parses one RTM_NEWNEIGH/RTM_DELNEIGH payload; `None` for what is not
/// a neighbour message or carries no family we read.
pub fn parse_neigh(ty: u16, payload: &[u8]) -> Option<NeighEntry> {
    if ty != RTM_NEWNEIGH && ty != RTM_DELNEIGH {
        return None;
    }
    let m = NeighbourMessage::parse(payload).ok()?;
    let bridge = match m.header.family {
        AddressFamily::Bridge => true,
        AddressFamily::Inet => false,
        _ => return None,
    };
    let mut e = NeighEntry {
        ifindex: m.header.ifindex,
        bridge,
        mac: None,
        dst: None,
        state: u16::from(m.header.state),
        flags: m.header.flags.bits(),
        deleted: ty == RTM_DELNEIGH,
    };
    for a in m.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                e.mac = Some(b[..6].try_into().expect("6 bytes"))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => e.dst = Some(ip),
            // An FDB entry's NDA_DST (a VXLAN remote) is not parsed by
            // family: AF_BRIDGE says nothing of the address's.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                e.dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            _ => {}
        }
    }
    Some(e)
}

/// Walks the netlink messages of one datagram, handing each (type,
/// payload) to `f`; stops at a malformed one.
fn each_message(mut rest: &[u8], mut f: impl FnMut(u16, &[u8])) {
    while rest.len() >= 16 {
        let Ok(b) = NetlinkBuffer::new_checked(rest) else {
            return;
        };
        let len = b.length() as usize;
        f(b.message_type(), b.payload());
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
}

fn neigh_msg(family: AddressFamily, ifindex: u32, state: NeighbourState) -> NeighbourMessage {
    let mut n = NeighbourMessage::default();
    n.header.family = family;
    n.header.ifindex = ifindex;
    n.header.state = state;
    n
}

impl Netlink {
    /// `bridge fdb replace MAC dev PORT master static`: the bridge PORT
    /// is a member of learns `mac` on it, as a static entry (NUD_NOARP:
    /// zebra ignores NUD_PERMANENT ones, and advertises these).
    pub fn fdb_add_static(&mut self, port: u32, mac: [u8; 6]) -> io::Result<()> {
        let mut n = neigh_msg(AddressFamily::Bridge, port, NeighbourState::Noarp);
        n.header.flags = NeighbourFlags::Controller;
        n.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.set_neighbour(n)
    }

    /// Removes what [`fdb_add_static`](Self::fdb_add_static) wrote; an
    /// entry already gone is not an error.
    pub fn fdb_del(&mut self, port: u32, mac: [u8; 6]) -> io::Result<()> {
        let mut n = neigh_msg(AddressFamily::Bridge, port, NeighbourState::Noarp);
        n.header.flags = NeighbourFlags::Controller;
        n.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.del_neighbour(n)
    }

    /// RTM_NEWNEIGH, creating or replacing.
    fn set_neighbour(&mut self, n: NeighbourMessage) -> io::Result<()> {
        self.request_bytes(|seq| {
            serialize(
                RouteNetlinkMessage::NewNeighbour(n),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                seq,
            )
        })
    }

    /// RTM_DELNEIGH; an entry already gone is not an error.
    fn del_neighbour(&mut self, n: NeighbourMessage) -> io::Result<()> {
        match self.request_bytes(|seq| {
            serialize(
                RouteNetlinkMessage::DelNeighbour(n),
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
            )
        }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// Every entry of one family (`bridge`: every FDB entry of every
    /// bridge and VXLAN device; else the IPv4 neighbour table).
    pub fn dump_neighbours(&mut self, bridge: bool) -> io::Result<Vec<NeighEntry>> {
        let family = if bridge {
            AddressFamily::Bridge
        } else {
            AddressFamily::Inet
        };
        let mut out = Vec::new();
        self.query_bytes(
            |seq| {
                serialize(
                    RouteNetlinkMessage::GetNeighbour(neigh_msg(family, 0, NeighbourState::None)),
                    NLM_F_REQUEST | NLM_F_DUMP,
                    seq,
                )
            },
            |ty, payload| out.extend(parse_neigh(ty, payload)),
        )?;
        Ok(out)
    }

    /// `ip neigh replace IP lladdr MAC dev INDEX nud noarp`: how a local
    /// host's address is told to zebra (on the VNI's bridge, its SVI),
    /// which advertises it in a type-2 route with the IP.
    pub fn neigh_set(&mut self, ifindex: u32, ip: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
        let mut n = neigh_msg(AddressFamily::Inet, ifindex, NeighbourState::Noarp);
        n.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        n.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.set_neighbour(n)
    }

    /// Removes an ARP entry; one already gone is not an error.
    pub fn neigh_del(&mut self, ifindex: u32, ip: Ipv4Addr) -> io::Result<()> {
        let mut n = neigh_msg(AddressFamily::Inet, ifindex, NeighbourState::None);
        n.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.del_neighbour(n)
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (NTF_USE: what a
    /// packet to it would do, an ARP request if the entry is not
    /// valid); the answer arrives as a neighbour notification.
    pub fn neigh_resolve(&mut self, ifindex: u32, ip: Ipv4Addr) -> io::Result<()> {
        let mut n = neigh_msg(AddressFamily::Inet, ifindex, NeighbourState::None);
        n.header.flags = NeighbourFlags::Use;
        n.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.set_neighbour(n)
    }
}

/// A netlink socket subscribed to neighbour notifications (RTNLGRP_NEIGH:
/// FDB and ARP changes), read without blocking.
pub struct NeighMonitor {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl NeighMonitor {
    /// Subscribes in the calling thread's namespace, with a receive
    /// buffer of `rcvbuf` bytes (a burst of routes from zebra overflows a
    /// small one; an overflow is reported as `ENOBUFS` by `drain`).
    pub fn open(rcvbuf: usize) -> io::Result<NeighMonitor> {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = rcvbuf.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: setsockopt with a c_int value of the stated size; the
        // FORCE variant (root) goes past rmem_max, the plain one is the
        // fallback. Failure leaves the default size: not fatal.
        unsafe {
            let p = &size as *const libc::c_int as *const libc::c_void;
            let len = std::mem::size_of::<libc::c_int>() as u32;
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                p,
                len,
            ) != 0
            {
                libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, p, len);
            }
        }
        // SAFETY: a zeroed sockaddr_nl with family and groups set, of its
        // own size.
        let r = unsafe {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            sa.nl_groups = RTMGRP_NEIGH;
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NeighMonitor {
            fd,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Waits up to `timeout_ms` for the socket to have something.
    pub fn wait(&self, timeout_ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call.
        unsafe { libc::poll(&mut p, 1, timeout_ms) > 0 }
    }

    /// Hands every notification queued now to `f`. `Err(ENOBUFS)`: some
    /// were lost (the buffer overflowed): dump to resynchronise.
    pub fn drain(&mut self, mut f: impl FnMut(NeighEntry)) -> io::Result<usize> {
        let mut n = 0;
        loop {
            // SAFETY: `buf` is writable for its length.
            let got = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if got < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(n),
                    Some(libc::EINTR) => continue,
                    _ => Err(e),
                };
            }
            each_message(&self.buf[..got as usize], |ty, payload| {
                if let Some(e) = parse_neigh(ty, payload) {
                    n += 1;
                    f(e);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_vtep_entry_round_trips_through_the_parser() {
        let mut n = neigh_msg(AddressFamily::Bridge, 7, NeighbourState::Noarp);
        n.header.flags = NeighbourFlags::Own | NeighbourFlags::ExtLearned;
        n.attributes
            .push(NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 1, 1]));
        n.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                Ipv4Addr::new(198, 18, 0, 2),
            )));
        let bytes = serialize(RouteNetlinkMessage::NewNeighbour(n), 0, 1);
        let mut got = Vec::new();
        each_message(&bytes, |ty, p| got.extend(parse_neigh(ty, p)));
        assert_eq!(
            got,
            vec![NeighEntry {
                ifindex: 7,
                bridge: true,
                mac: Some([2, 0, 0, 0, 1, 1]),
                dst: Some(Ipv4Addr::new(198, 18, 0, 2)),
                state: NUD_NOARP,
                flags: NTF_SELF | NTF_EXT_LEARNED,
                deleted: false,
            }]
        );
        // Not a neighbour message: nothing.
        assert_eq!(parse_neigh(16, &bytes[16..]), None);
    }
}
