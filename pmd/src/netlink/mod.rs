//! A small rtnetlink client: just the link and address requests pollgate
//! needs (create veth pairs, move, configure and delete devices, read
//! XDP attachment), synchronous, one request at a time with an ACK.

mod fdb;
mod message;
mod neigh;
mod route;
mod vxlan_link;

pub use fdb::{parse_neigh, NeighEntry, NeighMonitor, NTF_EXT_LEARNED, NTF_MASTER, NTF_SELF};

use message::{Attrs, MsgBuilder};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const NETLINK_ROUTE: libc::c_int = 0;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_NUM_TX_QUEUES: u16 = 31;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_XDP: u16 = 43;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;

/// What `get_link` reports of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub up: bool,
    /// IFF_PROMISC as a user set it (`ip link set promisc on`).
    pub promisc: bool,
    pub mtu: u32,
    pub mac: [u8; 6],
    /// Id of the XDP program attached, if any (any mode).
    pub xdp_prog_id: Option<u32>,
    /// The device this one is linked to: a veth's peer (ifindex in the
    /// namespace `link_netnsid` names, or in ours when that is `None`).
    pub link: Option<u32>,
    pub link_netnsid: Option<i32>,
}

pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 1 })
    }

    fn send(&mut self, msg: &mut MsgBuilder) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        self.send_bytes(bytes)?;
        Ok(seq)
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: `bytes` is valid for its length; the kernel address is
        // the zeroed default (pid 0).
        let n = unsafe {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads replies to `seq` until the ACK (or error), handing each data
    /// message (type, payload) to `on_msg`.
    fn recv(&mut self, seq: u32, mut on_msg: impl FnMut(u16, &[u8])) -> io::Result<()> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes([rest[4], rest[5]]);
                let mseq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
                if len < 16 || len > rest.len() {
                    return Err(io::Error::other("truncated netlink message"));
                }
                let payload = &rest[16..len];
                if mseq == seq {
                    match ty {
                        NLMSG_ERROR => {
                            let code =
                                i32::from_ne_bytes(payload[0..4].try_into().expect("4 bytes"));
                            return if code == 0 {
                                Ok(())
                            } else {
                                Err(io::Error::from_raw_os_error(-code))
                            };
                        }
                        NLMSG_DONE => return Ok(()),
                        _ => on_msg(ty, payload),
                    }
                }
                rest = &rest[(len + 3) & !3..];
            }
        }
    }

    fn request(&mut self, msg: &mut MsgBuilder) -> io::Result<()> {
        let seq = self.send(msg)?;
        self.recv(seq, |_, _| {})
    }

    /// Sends a message another builder serialized for sequence number
    /// `seq` (the rust-netlink crates, for neighbour and FDB requests) and
    /// waits for its ACK.
    fn request_bytes(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        self.query_bytes(build, |_, _| {})
    }

    /// As `request_bytes`, handing each data message of the reply
    /// (type, payload) to `on_msg`.
    fn query_bytes(
        &mut self,
        build: impl FnOnce(u32) -> Vec<u8>,
        on_msg: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send_bytes(&build(seq))?;
        self.recv(seq, on_msg)
    }

    /// Sets or clears a device's IFF_PROMISC (as `ip link set promisc`).
    pub fn set_promisc(&mut self, index: u32, on: bool) -> io::Result<()> {
        let mut m = MsgBuilder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
        let bit = libc::IFF_PROMISC as u32;
        m.ifinfo(index, if on { bit } else { 0 }, bit);
        self.request(&mut m)
    }

    /// Sets or clears a device's IFF_MULTICAST (as `ip link set
    /// multicast`): without it, the kernel sends no IGMP or MLD on it.
    pub fn set_multicast(&mut self, index: u32, on: bool) -> io::Result<()> {
        let mut m = MsgBuilder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
        let bit = libc::IFF_MULTICAST as u32;
        m.ifinfo(index, if on { bit } else { 0 }, bit);
        self.request(&mut m)
    }

    /// Creates a veth pair `name` ↔ `peer` with `queues` RX and TX queues
    /// on each end; the peer is created directly in the namespace
    /// `peer_ns` when given.
    pub fn create_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_ns: Option<BorrowedFd<'_>>,
        queues: u32,
    ) -> io::Result<()> {
        let mut m = MsgBuilder::new(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        m.ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        m.attr_u32(IFLA_NUM_TX_QUEUES, queues);
        m.attr_u32(IFLA_NUM_RX_QUEUES, queues);
        let info = m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        let data = m.nest(IFLA_INFO_DATA);
        let p = m.nest(VETH_INFO_PEER);
        m.ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, peer);
        m.attr_u32(IFLA_NUM_TX_QUEUES, queues);
        m.attr_u32(IFLA_NUM_RX_QUEUES, queues);
        if let Some(ns) = peer_ns {
            m.attr_u32(IFLA_NET_NS_FD, ns.as_raw_fd() as u32);
        }
        m.end(p);
        m.end(data);
        m.end(info);
        self.request(&mut m)
    }

    /// Sets any of: administrative state, MTU, MAC address.
    pub fn set_link(
        &mut self,
        index: u32,
        up: Option<bool>,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
    ) -> io::Result<()> {
        let mut m = MsgBuilder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
        let (flags, change) = match up {
            Some(true) => (libc::IFF_UP as u32, libc::IFF_UP as u32),
            Some(false) => (0, libc::IFF_UP as u32),
            None => (0, 0),
        };
        m.ifinfo(index, flags, change);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        if let Some(mac) = mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        self.request(&mut m)
    }

    /// Attaches XDP program `prog_fd` to `index` the netlink way (-1
    /// detaches). With `expected_fd`, XDP_FLAGS_REPLACE is set: the
    /// kernel swaps programs atomically, and only if the one attached is
    /// still that one.
    pub fn set_xdp(
        &mut self,
        index: u32,
        prog_fd: i32,
        flags: u32,
        expected_fd: Option<i32>,
    ) -> io::Result<()> {
        const XDP_FLAGS_REPLACE: u32 = 1 << 4;
        let mut m = MsgBuilder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.ifinfo(index, 0, 0);
        let x = m.nest(IFLA_XDP | NLA_F_NESTED);
        m.attr_u32(IFLA_XDP_FD, prog_fd as u32);
        let flags = flags
            | if expected_fd.is_some() {
                XDP_FLAGS_REPLACE
            } else {
                0
            };
        m.attr_u32(IFLA_XDP_FLAGS, flags);
        if let Some(e) = expected_fd {
            m.attr_u32(IFLA_XDP_EXPECTED_FD, e as u32);
        }
        m.end(x);
        self.request(&mut m)
    }

    pub fn set_link_up_by_name(&mut self, name: &str) -> io::Result<()> {
        let l = self
            .get_link(name)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no device {name}")))?;
        self.set_link(l.index, Some(true), None, None)
    }

    /// Moves a device into the namespace `ns`.
    pub fn move_to_netns(&mut self, index: u32, ns: BorrowedFd<'_>) -> io::Result<()> {
        let mut m = MsgBuilder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.ifinfo(index, 0, 0);
        m.attr_u32(IFLA_NET_NS_FD, ns.as_raw_fd() as u32);
        self.request(&mut m)
    }

    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut m = MsgBuilder::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.ifinfo(index, 0, 0);
        self.request(&mut m)
    }

    /// Adds an IPv4 address with prefix length to a device.
    pub fn add_ipv4(&mut self, index: u32, addr: [u8; 4], prefix: u8) -> io::Result<()> {
        let mut m = addr_msg(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            index,
            addr,
            prefix,
        );
        self.request(&mut m)
    }

    /// Removes what [`add_ipv4`](Self::add_ipv4) added.
    pub fn del_ipv4(&mut self, index: u32, addr: [u8; 4], prefix: u8) -> io::Result<()> {
        const RTM_DELADDR: u16 = 21;
        let mut m = addr_msg(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, index, addr, prefix);
        self.request(&mut m)
    }

    /// Looks a device up by name; `None` when there is none.
    pub fn get_link(&mut self, name: &str) -> io::Result<Option<LinkInfo>> {
        let mut m = MsgBuilder::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        self.link_query(m)
    }

    /// Looks a device up by index; `None` when there is none.
    pub fn get_link_by_index(&mut self, index: u32) -> io::Result<Option<LinkInfo>> {
        let mut m = MsgBuilder::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.ifinfo(index, 0, 0);
        self.link_query(m)
    }

    fn link_query(&mut self, mut m: MsgBuilder) -> io::Result<Option<LinkInfo>> {
        let seq = self.send(&mut m)?;
        let mut found = None;
        let r = self.recv(seq, |ty, payload| {
            if ty == RTM_NEWLINK && payload.len() >= 16 {
                found = Some(parse_link(payload));
            }
        });
        match r {
            Ok(()) => Ok(found),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An address request: `struct ifaddrmsg { family, prefixlen, flags,
/// scope, index }` and the address as both local and peer.
fn addr_msg(ty: u16, flags: u16, index: u32, addr: [u8; 4], prefix: u8) -> MsgBuilder {
    let mut m = MsgBuilder::new(ty, flags);
    let mut ifa = [0u8; 8];
    ifa[0] = libc::AF_INET as u8;
    ifa[1] = prefix;
    ifa[4..8].copy_from_slice(&index.to_ne_bytes());
    m.raw(&ifa);
    m.attr(IFA_LOCAL, &addr);
    m.attr(IFA_ADDRESS, &addr);
    m
}

fn parse_link(payload: &[u8]) -> LinkInfo {
    let index = u32::from_ne_bytes(payload[4..8].try_into().expect("4 bytes"));
    let flags = u32::from_ne_bytes(payload[8..12].try_into().expect("4 bytes"));
    let mut info = LinkInfo {
        index,
        name: String::new(),
        up: flags & libc::IFF_UP as u32 != 0,
        promisc: flags & libc::IFF_PROMISC as u32 != 0,
        mtu: 0,
        mac: [0; 6],
        xdp_prog_id: None,
        link: None,
        link_netnsid: None,
    };
    for (ty, val) in Attrs::new(&payload[16..]) {
        match ty & !NLA_F_NESTED {
            IFLA_MTU if val.len() >= 4 => {
                info.mtu = u32::from_ne_bytes(val[..4].try_into().expect("4 bytes"))
            }
            IFLA_ADDRESS if val.len() == 6 => info.mac.copy_from_slice(val),
            IFLA_IFNAME => {
                info.name = String::from_utf8_lossy(val)
                    .trim_end_matches('\0')
                    .to_string()
            }
            IFLA_LINK if val.len() >= 4 => {
                info.link = Some(u32::from_ne_bytes(val[..4].try_into().expect("4 bytes")))
            }
            IFLA_LINK_NETNSID if val.len() >= 4 => {
                info.link_netnsid = Some(i32::from_ne_bytes(val[..4].try_into().expect("4 bytes")))
            }
            IFLA_XDP => {
                let mut attached = 0u8;
                let mut id = 0u32;
                for (t, v) in Attrs::new(val) {
                    match t {
                        IFLA_XDP_ATTACHED if !v.is_empty() => attached = v[0],
                        IFLA_XDP_PROG_ID if v.len() >= 4 => {
                            id = u32::from_ne_bytes(v[..4].try_into().expect("4 bytes"))
                        }
                        _ => {}
                    }
                }
                if attached != 0 {
                    info.xdp_prog_id = Some(id);
                }
            }
            _ => {}
        }
    }
    info
}
