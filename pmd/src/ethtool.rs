//! The few ethtool settings pollgate changes, through the SIOCETHTOOL
//! ioctl (on a socket of the caller's namespace).

use std::io;

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

fn ioctl_value(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = EthtoolValue { cmd, data };
    let mut req = IfReq {
        name: [0; 16],
        data: &mut v,
        _pad: [0; 16],
    };
    let n = ifname.len().min(15);
    req.name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
    // SAFETY: a datagram socket used only for this ioctl, closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCETHTOOL with an ethtool_value command reads and writes
    // one `EthtoolValue` through `req.data`, which points at `v`.
    let r = unsafe { libc::ioctl(s, libc::SIOCETHTOOL, &mut req as *mut IfReq) };
    let e = io::Error::last_os_error();
    // SAFETY: `s` is the socket opened above.
    unsafe { libc::close(s) };
    if r < 0 {
        Err(e)
    } else {
        Ok(v.data)
    }
}

/// Turns TX checksum offload of `ifname` on or off.
///
/// A container's veth end offloads checksums by default: its kernel sends
/// frames whose TCP/UDP checksum is only a partial sum, trusting the skb
/// metadata to tell the receiver. AF_XDP sees bytes, not metadata, so such
/// frames would arrive with bad checksums after crossing pollgate. With
/// offload off the sender computes them in software.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    ioctl_value(ifname, ETHTOOL_STXCSUM, on as u32).map(|_| ())
}

pub fn tx_checksum(ifname: &str) -> io::Result<bool> {
    ioctl_value(ifname, ETHTOOL_GTXCSUM, 0).map(|v| v != 0)
}
