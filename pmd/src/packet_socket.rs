//! AF_PACKET raw sockets bound to one device: how tests and tools put
//! exact frames on a wire and read exact frames off it, from inside a
//! container's namespace (open it within `NetNs::run`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

const ETH_P_ALL: u16 = 0x0003;

impl PacketSocket {
    /// Opens a raw socket on `ifname` in the calling thread's namespace,
    /// receiving every EtherType.
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let ifindex = crate::device::if_index(ifname)?;
        // SAFETY: plain socket(2), checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                ETH_P_ALL.to_be() as i32,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fd owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A deep receive buffer: tests send bursts before they read.
        let rcvbuf: libc::c_int = 8 << 20;
        // SAFETY: SO_RCVBUFFORCE reads one c_int (root only; harmless
        // when refused).
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &rcvbuf as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        // The receive path takes an outer VLAN tag off into metadata before
        // packet sockets see the frame; auxdata hands it back (as libpcap
        // uses it) so `recv` can put it where it was on the wire.
        let one: libc::c_int = 1;
        // SAFETY: PACKET_AUXDATA reads one c_int.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        // SAFETY: a zeroed sockaddr_ll is valid; fields set below.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ETH_P_ALL.to_be();
        sa.sll_ifindex = ifindex as i32;
        // SAFETY: `sa` is a complete sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is valid for its length; the socket is bound, so
        // no address is needed.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives one frame the device received (not ones sent from this
    /// host), waiting at most `timeout`. `Ok(None)` on timeout.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Ok(None);
            }
            // Room for the tag we may put back.
            let cap = buf.len().saturating_sub(4);
            // SAFETY: zeroed sockaddr_ll, iovec, msghdr and cmsg space are
            // valid; recvmsg fills them within the lengths given.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: cap,
            };
            let mut cbuf = [0u64; 16];
            // SAFETY: as above.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = &mut sa as *mut libc::sockaddr_ll as *mut libc::c_void;
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            // SAFETY: `msg` points at live buffers of the lengths it states.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if sa.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let mut n = n as usize;
            if let Some((tpid, tci)) = vlan_from_auxdata(&msg) {
                if n >= 12 {
                    buf.copy_within(12..n, 16);
                    buf[12..14].copy_from_slice(&tpid.to_be_bytes());
                    buf[14..16].copy_from_slice(&tci.to_be_bytes());
                    n += 4;
                }
            }
            return Ok(Some(n));
        }
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// The VLAN tag the kernel took off a received frame, from the
/// PACKET_AUXDATA control message.
fn vlan_from_auxdata(msg: &libc::msghdr) -> Option<(u16, u16)> {
    const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
    const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
    // SAFETY: CMSG_FIRSTHDR/NXTHDR walk the control buffer recvmsg filled,
    // within msg_controllen; each header is checked before its data is read.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: `c` points at a complete cmsghdr inside the buffer.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_PACKET && h.cmsg_type == libc::PACKET_AUXDATA {
            // SAFETY: a PACKET_AUXDATA message carries a tpacket_auxdata;
            // read_unaligned because cmsg data has no alignment promise.
            let aux: libc::tpacket_auxdata = unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::tpacket_auxdata)
            };
            if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                    aux.tp_vlan_tpid
                } else {
                    0x8100
                };
                return Some((tpid, aux.tp_vlan_tci));
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
    None
}
