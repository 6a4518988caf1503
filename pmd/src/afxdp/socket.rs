//! One AF_XDP socket: its four rings, bound to one (device, queue), on a
//! UMEM that is the worker's frame pool. The first socket of a worker
//! registers the pool as UMEM; the others share it (XDP_SHARED_UMEM), each
//! with fill and completion rings of its own.

use super::ring::{ConsRing, ProdRing};
use super::sys::*;
use crate::pool::UmemLayout;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Which copy mode to bind in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy where the driver supports it, copy otherwise.
    #[default]
    Auto,
    ZeroCopy,
    Copy,
}

#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    pub ifindex: u32,
    pub queue: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub mode: BindMode,
    /// Ask the kernel to set need_wakeup flags (syscalls only when asked).
    pub need_wakeup: bool,
    /// Multi-buffer (XDP_USE_SG): packets larger than a frame arrive and
    /// leave as descriptor chains. A property of the UMEM: the socket
    /// that registers it decides for every socket sharing it.
    pub multi_buffer: bool,
}

pub struct XskSocket {
    pub rx: ConsRing<XdpDesc>,
    pub tx: ProdRing<XdpDesc>,
    pub fill: ProdRing<u64>,
    pub comp: ConsRing<u64>,
    zero_copy: bool,
    multi_buffer: bool,
    // Dropped last: the rings unmap before the socket closes.
    fd: OwnedFd,
}

fn setsockopt<T>(fd: &OwnedFd, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live value of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn getsockopt<T: Default>(fd: RawFd, name: libc::c_int) -> io::Result<T> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is writable for `len` bytes; the kernel writes at most that.
    let r = unsafe {
        libc::getsockopt(
            fd,
            SOL_XDP,
            name,
            &mut v as *mut T as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

fn ctx(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl XskSocket {
    /// Creates and binds a socket. `shared_with` is the fd of the socket
    /// that registered `pool` as UMEM; `None` registers it now.
    pub fn new(
        pool: &UmemLayout,
        shared_with: Option<RawFd>,
        cfg: &XskConfig,
    ) -> io::Result<XskSocket> {
        // SAFETY: plain socket(2); checked below.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(ctx("socket(AF_XDP)", io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        if shared_with.is_none() {
            // The kernel already keeps XDP_PACKET_HEADROOM in front of each
            // packet; ask only for what the pool wants beyond that.
            let headroom = pool.headroom.saturating_sub(XDP_PACKET_HEADROOM);
            let reg = XdpUmemReg {
                addr: pool.addr as u64,
                len: pool.len as u64,
                chunk_size: pool.frame_size,
                headroom,
                flags: 0,
                tx_metadata_len: 0,
            };
            setsockopt(&fd, XDP_UMEM_REG, &reg).map_err(|e| ctx("XDP_UMEM_REG", e))?;
        }
        setsockopt(&fd, XDP_UMEM_FILL_RING, &cfg.fill_size)
            .map_err(|e| ctx("fill ring size", e))?;
        setsockopt(&fd, XDP_UMEM_COMPLETION_RING, &cfg.comp_size)
            .map_err(|e| ctx("completion ring size", e))?;
        setsockopt(&fd, XDP_RX_RING, &cfg.rx_size).map_err(|e| ctx("RX ring size", e))?;
        setsockopt(&fd, XDP_TX_RING, &cfg.tx_size).map_err(|e| ctx("TX ring size", e))?;
        let off: XdpMmapOffsets =
            getsockopt(fd.as_raw_fd(), XDP_MMAP_OFFSETS).map_err(|e| ctx("XDP_MMAP_OFFSETS", e))?;
        let fill = ProdRing::map(&fd, &off.fr, cfg.fill_size, XDP_UMEM_PGOFF_FILL_RING)
            .map_err(|e| ctx("mmap fill ring", e))?;
        let comp = ConsRing::map(&fd, &off.cr, cfg.comp_size, XDP_UMEM_PGOFF_COMPLETION_RING)
            .map_err(|e| ctx("mmap completion ring", e))?;
        let rx = ConsRing::map(&fd, &off.rx, cfg.rx_size, XDP_PGOFF_RX_RING)
            .map_err(|e| ctx("mmap RX ring", e))?;
        let tx = ProdRing::map(&fd, &off.tx, cfg.tx_size, XDP_PGOFF_TX_RING)
            .map_err(|e| ctx("mmap TX ring", e))?;

        let bind = |flags: u16| {
            let sa = SockaddrXdp {
                family: libc::AF_XDP as u16,
                flags,
                ifindex: cfg.ifindex,
                queue_id: cfg.queue,
                shared_umem_fd: shared_with.unwrap_or(0) as u32,
            };
            // SAFETY: `sa` is a complete sockaddr_xdp of the size passed.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sa as *const SockaddrXdp as *const libc::sockaddr,
                    std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        if shared_with.is_some() {
            // A socket sharing a UMEM inherits the owner's mode and wakeup
            // flags; the kernel refuses any of them here.
            bind(XDP_SHARED_UMEM).map_err(|e| ctx("bind (shared UMEM)", e))?;
        } else {
            let wake = if cfg.need_wakeup {
                XDP_USE_NEED_WAKEUP
            } else {
                0
            };
            let sg = if cfg.multi_buffer { XDP_USE_SG } else { 0 };
            let ifname = || crate::device::if_name(cfg.ifindex).unwrap_or_default();
            // Linux before 6.6 does not know the flag (EINVAL); a driver
            // without multi-buffer zero-copy refuses it (EOPNOTSUPP).
            let sg_hint = |e: io::Error| {
                if cfg.multi_buffer {
                    let ifname = ifname();
                    let driver = crate::ethtool::driver_name(&ifname);
                    io::Error::new(e.kind(), format!("{e}; the MTU of {ifname} (driver {driver}) needs multi-buffer AF_XDP (XDP_USE_SG, Linux 6.6+), which was refused: lower the MTU to fit one frame, or use frame_size = 4096"))
                } else {
                    e
                }
            };
            match cfg.mode {
                BindMode::ZeroCopy => bind(wake | sg | XDP_ZEROCOPY).map_err(|e| {
                    let ifname = ifname();
                    let driver = crate::ethtool::driver_name(&ifname);
                    ctx(&format!("mode = \"zero-copy\" on {ifname} (driver {driver}): the driver has no AF_XDP zero-copy support here; use mode = \"auto\" to run in copy mode"), sg_hint(e))
                })?,
                BindMode::Copy => {
                    bind(wake | sg | XDP_COPY).map_err(|e| ctx("bind copy mode", sg_hint(e)))?
                }
                // No mode flag: the kernel tries zero-copy and falls back
                // to copy; XDP_OPTIONS tells which it chose.
                BindMode::Auto => bind(wake | sg).map_err(|e| ctx("bind", sg_hint(e)))?,
            }
        }
        let opts: XdpOptions =
            getsockopt(fd.as_raw_fd(), XDP_OPTIONS).map_err(|e| ctx("XDP_OPTIONS", e))?;
        Ok(XskSocket {
            rx,
            tx,
            fill,
            comp,
            zero_copy: opts.flags & XDP_OPTIONS_ZEROCOPY != 0,
            multi_buffer: cfg.multi_buffer,
            fd,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// Preferred busy polling (Linux 5.11+): the kernel defers the
    /// device's interrupts and lets this socket's syscalls run NAPI,
    /// `budget` packets at a time.
    pub fn set_busy_poll(&self, budget: u32) -> io::Result<()> {
        const SO_BUSY_POLL: libc::c_int = 46;
        const SO_PREFER_BUSY_POLL: libc::c_int = 69;
        const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
        for (name, val) in [
            (SO_PREFER_BUSY_POLL, 1),
            (SO_BUSY_POLL, 20),
            (SO_BUSY_POLL_BUDGET, budget as libc::c_int),
        ] {
            // SAFETY: each option reads one c_int from `val`.
            let r = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    name,
                    &val as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        getsockopt(self.fd.as_raw_fd(), XDP_STATISTICS)
    }

    /// Tells the kernel there is TX work (need_wakeup, or copy mode).
    /// Transient refusals are fine: the next kick retries.
    pub fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length send on our own socket; no buffers.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        transient_ok(r)
    }

    /// Lets the kernel fill the RX ring (fill ring need_wakeup).
    pub fn wake_rx(&self) -> io::Result<()> {
        // SAFETY: a zero-length receive on our own socket; no buffers.
        let r = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        transient_ok(r)
    }
}

/// A wakeup syscall's result: the kernel being busy or out of buffers
/// right now is fine (the next poll retries); anything else (the device
/// went away) is an error.
fn transient_ok(r: isize) -> io::Result<()> {
    if r >= 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::EINTR) => Ok(()),
        _ => Err(e),
    }
}
