//! Network devices by name and index, in the calling thread's namespace.

use std::io;

/// Index of device `ifname`.
pub fn if_index(ifname: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in device name"))?;
    // SAFETY: valid C string; returns 0 on failure.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network device named {ifname}"),
        ))
    } else {
        Ok(i)
    }
}

/// Name of the device with this index.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires; on
    // success it holds a NUL-terminated name.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8(bytes).ok()
}

/// Whether this process runs with root's effective uid (the tests and the
/// demo that build namespaces and XDP programs need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks at one device's state from the namespace it was made in: its
/// socket is bound to that namespace, so a port opened inside a
/// container's namespace and polled from a thread outside it still sees
/// its own device (a name or index looked up from the thread would find
/// another namespace's device, or none).
pub struct DeviceProbe {
    fd: std::os::fd::OwnedFd,
}

impl DeviceProbe {
    /// A probe for devices of the calling thread's namespace.
    pub fn new() -> io::Result<DeviceProbe> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and nothing else owns it.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(DeviceProbe { fd })
    }

    /// Whether device `index` is administratively up and has its carrier
    /// (IFF_UP and IFF_RUNNING); `None` when there is no such device.
    pub fn running(&self, index: u32) -> Option<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: ifreq is plain data; all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_ifindex = index as libc::c_int;
        // SAFETY: SIOCGIFNAME reads ifr_ifindex and writes the
        // NUL-terminated name into ifr_name, both inside `req`.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFNAME, &mut req) } < 0 {
            return None;
        }
        // SAFETY: `req` now names the device; SIOCGIFFLAGS writes only
        // ifr_flags inside it.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
            return None;
        }
        // SAFETY: SIOCGIFFLAGS succeeded, so the union holds the flags.
        let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
        let want = libc::IFF_UP | libc::IFF_RUNNING;
        Some(flags & want == want)
    }
}
