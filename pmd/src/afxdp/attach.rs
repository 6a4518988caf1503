//! pollgate's XDP program on one interface: the XSKMAP, the program, and
//! the bpf_link that holds it on the device. Dropping this detaches the
//! program; so does the process dying, because the link is an fd.

use super::bpf;
use std::io;
use std::os::fd::OwnedFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Driver (native) mode, generic (SKB) mode when the driver has none.
    #[default]
    Auto,
    Native,
    Generic,
}

pub struct XdpAttachment {
    // Field order is drop order: the link goes first, detaching the
    // program before the map and program fds close.
    _link: OwnedFd,
    _prog: OwnedFd,
    map: OwnedFd,
    native: bool,
    prog_id: u32,
}

impl XdpAttachment {
    /// Loads the redirect program with a map of `queues` slots and
    /// attaches it to `ifindex`. Refuses, rather than replaces, a program
    /// someone else attached.
    pub fn attach(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        mode: XdpMode,
    ) -> io::Result<XdpAttachment> {
        let map = bpf::create_xskmap(queues.max(1))
            .map_err(|e| io::Error::new(e.kind(), format!("creating the XSKMAP: {e}")))?;
        let prog = bpf::load_redirect_prog(&map)
            .map_err(|e| io::Error::new(e.kind(), format!("loading the XDP program: {e}")))?;
        let attach = |native: bool| bpf::attach_xdp_link(&prog, ifindex, native);
        let attached = match mode {
            XdpMode::Native => attach(true).map(|l| (l, true)),
            XdpMode::Generic => attach(false).map(|l| (l, false)),
            XdpMode::Auto => match attach(true) {
                Ok(l) => Ok((l, true)),
                Err(e) if is_busy(&e) => Err(e),
                Err(_) => attach(false).map(|l| (l, false)),
            },
        };
        let (link, native) = attached.map_err(|e| describe(ifname, e))?;
        let prog_id = bpf::prog_id(&prog).unwrap_or(0);
        Ok(XdpAttachment {
            _link: link,
            _prog: prog,
            map,
            native,
            prog_id,
        })
    }

    pub fn native(&self) -> bool {
        self.native
    }

    /// Kernel id of the attached program (`ip link` shows it).
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// Steers `queue` to the socket `xsk_fd`.
    pub fn insert(&self, queue: u32, xsk_fd: i32) -> io::Result<()> {
        bpf::xskmap_set(&self.map, queue, xsk_fd)
    }

    /// Sends `queue` back to the kernel stack.
    pub fn remove(&self, queue: u32) -> io::Result<()> {
        bpf::xskmap_clear(&self.map, queue)
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
}

fn describe(ifname: &str, e: io::Error) -> io::Error {
    if is_busy(&e) {
        io::Error::new(
            e.kind(),
            format!("{ifname} already has an XDP program attached ({e}); pollgate does not replace a program it does not own: detach it first (ip link set dev {ifname} xdp off)"),
        )
    } else {
        io::Error::new(e.kind(), format!("attaching XDP to {ifname}: {e}"))
    }
}
