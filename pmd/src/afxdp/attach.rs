//! pollgate's XDP program on one interface: the XSKMAP, the program, and
//! what holds it on the device — a bpf_link (the usual case: closing the
//! link fd, or the process dying, detaches it) or, when pollgate replaced
//! a program already there, a netlink attachment made with
//! XDP_FLAGS_REPLACE (atomic: traffic never sees the device without a
//! program) that pollgate removes on exit only if it is still its own.

use super::bpf;
use super::sys::{XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST};
use super::xdp_prog::{Steer, PROG_NAME};
use crate::cleanup;
use crate::netlink::Netlink;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Driver (native) mode, generic (SKB) mode when the driver has none.
    #[default]
    Auto,
    Native,
    Generic,
}

/// A queue's bit in `XdpAttachment::steered`; a port serves at most 64
/// queues (the config's limit), so every queue has its own.
fn queue_bit(queue: u32) -> u64 {
    debug_assert!(queue < 64);
    1 << (queue & 63)
}

pub struct XdpAttachment {
    /// Queues whose map entry holds a socket.
    steered: std::sync::atomic::AtomicU64,
    // Field order is drop order: the link goes first, detaching the
    // program before the map and program fds close.
    /// The bpf_link holding the program on the device; replaced when the
    /// watchdog re-attaches after someone detached it.
    link: Mutex<Option<OwnedFd>>,
    prog: OwnedFd,
    map: OwnedFd,
    native: bool,
    prog_id: u32,
    /// Set when attached by netlink (a replace): (ifindex, mode flags).
    netlink: Option<(u32, u32)>,
    /// A hand-over: left on the device at exit.
    keep: bool,
    ifname: String,
    /// The device's MTU when attached, and whether the program takes
    /// multi-buffer packets (it does above 1500).
    mtu: u32,
    frags: bool,
}

/// What [`XdpAttachment::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpCheck {
    Attached,
    /// It was gone, and is attached again.
    Reattached,
    /// Another program (this id) is attached instead.
    Foreign(u32),
    DeviceGone,
}

fn journal(ifname: &str, ifindex: u32, prog_id: u32, flags: u32) -> cleanup::Resource {
    cleanup::Resource::Xdp {
        name: ifname.to_string(),
        ifindex,
        prog_id,
        flags,
    }
}

/// The name pollgate's program carries (what ownership is judged by).
fn our_name() -> String {
    let end = PROG_NAME.iter().position(|b| *b == 0).unwrap_or(16);
    String::from_utf8_lossy(&PROG_NAME[..end]).into_owned()
}

impl XdpAttachment {
    /// Loads the redirect program with a map of `queues` slots and
    /// attaches it to `ifindex`. A program already there is replaced,
    /// atomically, only if it is pollgate's own (left by a pollgate that
    /// was killed after such a replace) or if `force` is set; otherwise
    /// pollgate refuses, naming the program.
    pub fn attach(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        mode: XdpMode,
        force: bool,
        steer: Steer,
    ) -> io::Result<XdpAttachment> {
        Self::attach_with(ifname, ifindex, queues, mode, force, steer, false)
    }

    /// Like [`attach`](Self::attach), for a hand-over: the program is
    /// attached by netlink and stays on the device when pollgate exits,
    /// so the next pollgate replaces it in one step (XDP_FLAGS_REPLACE)
    /// instead of the device going without a program and getting a new
    /// one (which resets the link on some NICs). Between the two, the
    /// program finds no socket and passes traffic to the kernel stack.
    pub fn attach_handover(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        mode: XdpMode,
        force: bool,
        steer: Steer,
    ) -> io::Result<XdpAttachment> {
        Self::attach_with(ifname, ifindex, queues, mode, force, steer, true)
    }

    fn attach_with(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        mode: XdpMode,
        force: bool,
        steer: Steer,
        keep: bool,
    ) -> io::Result<XdpAttachment> {
        let map = bpf::create_xskmap(queues.max(1))
            .map_err(|e| io::Error::new(e.kind(), format!("creating the XSKMAP: {e}")))?;
        // Above a standard MTU the program must take multi-buffer
        // packets: veth and most drivers refuse a program without
        // `xdp.frags` on a device whose frames exceed a page.
        let mtu = Netlink::open()
            .and_then(|mut nl| nl.get_link(ifname))?
            .map_or(1500, |l| l.mtu);
        let frags = mtu > 1500;
        let prog = bpf::load_redirect_prog(&map, frags, steer).map_err(|e| {
            let hint = if frags {
                format!(" (MTU {mtu} needs a multi-buffer program: Linux 5.18+)")
            } else {
                String::new()
            };
            io::Error::new(e.kind(), format!("loading the XDP program{hint}: {e}"))
        })?;
        let prog_id = bpf::prog_id(&prog).unwrap_or(0);
        // A hand-over never holds the program by a link: it goes the
        // netlink way below, replacing whatever is there (if allowed).
        if !keep {
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
            match attached {
                Ok((link, native)) => {
                    return Ok(XdpAttachment {
                        steered: Default::default(),
                        link: Mutex::new(Some(link)),
                        prog,
                        map,
                        native,
                        prog_id,
                        netlink: None,
                        keep: false,
                        ifname: ifname.to_string(),
                        mtu,
                        frags,
                    })
                }
                // Busy: a program is there; replace it if allowed.
                Err(e) if is_busy(&e) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("attaching XDP to {ifname}: {e}"),
                    ))
                }
            }
        }
        let old = match attached_program(ifname) {
            Ok(o) => Some(o),
            // A hand-over onto a device with no program.
            Err(e) if keep && e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (old_id, old_name) = old.clone().unwrap_or((0, String::new()));
        if old.is_some() && old_name != our_name() && !force {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{ifname} already has XDP program {old_id} ({old_name:?}) attached; pollgate does not replace a program it does not own: detach it (ip link set dev {ifname} xdp off), or set force = true on the port to replace it"),
            ));
        }
        let old = match old {
            Some(_) => Some(bpf::prog_by_id(old_id)?),
            None => None,
        };
        let expected = old.as_ref().map(|o| o.as_raw_fd());
        // No program to replace: attach only if none came meanwhile.
        let extra = if expected.is_none() {
            XDP_FLAGS_UPDATE_IF_NOEXIST
        } else {
            0
        };
        let modes: &[(u32, bool)] = match mode {
            XdpMode::Native => &[(XDP_FLAGS_DRV_MODE, true)],
            XdpMode::Generic => &[(XDP_FLAGS_SKB_MODE, false)],
            XdpMode::Auto => &[(XDP_FLAGS_DRV_MODE, true), (XDP_FLAGS_SKB_MODE, false)],
        };
        let mut nl = Netlink::open()?;
        let mut last = None;
        for &(flags, native) in modes {
            // Outlives a kill -9: the reaper removes it if it is still the
            // program there (not a hand-over's: that one is meant to
            // stay). Journaled before the attach, so a kill between the
            // attach and the journal write cannot leave it behind; the
            // reaper only removes a program whose id matches, so an entry
            // for an attach that never happened is harmless.
            let entry = journal(ifname, ifindex, prog_id, flags);
            if !keep {
                cleanup::created(&entry);
            }
            match nl.set_xdp(ifindex, prog.as_raw_fd(), flags | extra, expected) {
                Ok(()) => {
                    return Ok(XdpAttachment {
                        steered: Default::default(),
                        link: Mutex::new(None),
                        prog,
                        map,
                        native,
                        prog_id,
                        netlink: Some((ifindex, flags)),
                        keep,
                        ifname: ifname.to_string(),
                        mtu,
                        frags,
                    });
                }
                Err(e) => {
                    if !keep {
                        cleanup::removed(&entry);
                    }
                    last = Some(e)
                }
            }
        }
        let last = last.unwrap_or_else(|| io::Error::other("no XDP mode to try"));
        Err(io::Error::new(
            last.kind(),
            format!("replacing XDP program {old_id} ({old_name:?}) on {ifname}: {last} (a program held by a bpf_link, such as a running pollgate's, cannot be replaced)"),
        ))
    }

    pub fn native(&self) -> bool {
        self.native
    }

    /// The device's MTU when the program was attached.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Whether the program takes multi-buffer (jumbo) packets.
    pub fn frags(&self) -> bool {
        self.frags
    }

    /// Kernel id of the attached program (`ip link` shows it).
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// True when this attachment replaced another program (netlink-held).
    pub fn replaced(&self) -> bool {
        self.netlink.is_some()
    }

    /// Checks that this program is still the one on the device, and
    /// attaches it again if it was detached by hand (`bpftool link
    /// detach`, or `ip link set dev … xdp off` on a replaced program).
    /// Another program found in its place is left alone and reported.
    pub fn check(&self) -> io::Result<XdpCheck> {
        let mut nl = Netlink::open()?;
        let Some(info) = nl.get_link(&self.ifname)? else {
            return Ok(XdpCheck::DeviceGone);
        };
        match info.xdp_prog_id {
            Some(id) if id == self.prog_id => Ok(XdpCheck::Attached),
            Some(id) => Ok(XdpCheck::Foreign(id)),
            None => {
                match self.netlink {
                    Some((ifindex, flags)) => {
                        nl.set_xdp(ifindex, self.prog.as_raw_fd(), flags, None)?
                    }
                    None => {
                        let link = bpf::attach_xdp_link(&self.prog, info.index, self.native)?;
                        // A poisoned lock only means a panic elsewhere
                        // mid-swap: the slot is still ours to replace.
                        let mut slot = self.link.lock().unwrap_or_else(|p| p.into_inner());
                        *slot = Some(link);
                    }
                }
                Ok(XdpCheck::Reattached)
            }
        }
    }

    /// Steers `queue` to the socket `xsk_fd`.
    pub fn insert(&self, queue: u32, xsk_fd: i32) -> io::Result<()> {
        bpf::xskmap_set(&self.map, queue, xsk_fd)?;
        self.steered.fetch_or(queue_bit(queue), Ordering::Relaxed);
        Ok(())
    }

    /// Sends `queue` back to the kernel stack. A queue already sent back
    /// costs no syscall: the control thread clears a port's queues before
    /// its worker closes the socket, and the worker's close then makes
    /// none.
    pub fn remove(&self, queue: u32) -> io::Result<()> {
        if self.steered.load(Ordering::Relaxed) & queue_bit(queue) == 0 {
            return Ok(());
        }
        bpf::xskmap_clear(&self.map, queue)?;
        self.steered.fetch_and(!queue_bit(queue), Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for XdpAttachment {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // A netlink attachment outlives our fds: remove it, but only if
        // the program there is still ours (the replace flag checks).
        if let Some((ifindex, flags)) = self.netlink {
            if let Ok(mut nl) = Netlink::open() {
                let _ = nl.set_xdp(ifindex, -1, flags, Some(self.prog.as_raw_fd()));
            }
            cleanup::removed(&journal(&self.ifname, ifindex, self.prog_id, flags));
        }
    }
}

/// Id and name of the program netlink reports on `ifname`.
fn attached_program(ifname: &str) -> io::Result<(u32, String)> {
    let id = Netlink::open()?
        .get_link(ifname)?
        .and_then(|l| l.xdp_prog_id)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{ifname}: busy, but netlink reports no XDP program"),
            )
        })?;
    let fd = bpf::prog_by_id(id)?;
    bpf::prog_info(&fd)
}

fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
}
