//! tap ports: a TAP device (IFF_TAP | IFF_NO_PI) whose netdev lives in the
//! container's namespace while pollgate keeps the file descriptor. Frames
//! move with non-blocking read/write, one frame per call (the tun driver
//! has no batched interface), up to a burst per poll.

use crate::pool::FramePool;
use crate::port::{bump, Port, PortInfo, SharedCounters, TxDesc};
use crate::veth::{configure_in_namespace, namespace, ContainerEnd, Created};
use crate::PmdError;
use pollgate_pipeline::{Batch, FrameMemory, PortId};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

pub struct TapPort {
    name: String,
    ifname: String,
    netns: String,
    fd: OwnedFd,
    link_up: bool,
    counters: SharedCounters,
    /// The namespace, when this port created it: declared after `fd` so
    /// it is removed after the fd closes (and the device with it).
    _created: Created,
}

fn err(dev: &str, what: &str, e: io::Error) -> PmdError {
    PmdError::Device {
        dev: dev.to_string(),
        source: io::Error::new(e.kind(), format!("{what}: {e}")),
    }
}

impl TapPort {
    /// Creates tap device `ifname`, moves it into `end.netns` (renamed to
    /// `end.ifname` is not supported by the kernel on move: the device
    /// keeps `ifname`), and configures it there.
    pub fn open(name: &str, ifname: &str, end: &ContainerEnd) -> Result<TapPort, PmdError> {
        let (ns, created) = namespace(end)?;
        let path = std::ffi::CString::new("/dev/net/tun").expect("no NUL");
        // SAFETY: valid C string; the result is checked.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(err(
                ifname,
                "opening /dev/net/tun",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: fresh fd owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReqFlags {
            name: [0; 16],
            flags: IFF_TAP | IFF_NO_PI,
            _pad: [0; 22],
        };
        let n = ifname.len().min(15);
        req.name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReqFlags) } < 0 {
            return Err(err(ifname, "TUNSETIFF", io::Error::last_os_error()));
        }
        let port = TapPort {
            name: name.to_string(),
            ifname: ifname.to_string(),
            netns: end.netns.clone(),
            fd,
            link_up: true,
            counters: SharedCounters::default(),
            _created: Created::namespace(created.then(|| end.netns.clone())),
        };
        let mut nl = crate::netlink::Netlink::open().map_err(|e| err(ifname, "netlink", e))?;
        let link = nl
            .get_link(ifname)
            .map_err(|e| err(ifname, "looking up", e))?
            .ok_or_else(|| {
                err(
                    ifname,
                    "looking up",
                    io::Error::new(io::ErrorKind::NotFound, "tap device vanished"),
                )
            })?;
        nl.move_to_netns(link.index, ns.fd())
            .map_err(|e| err(ifname, "moving into namespace", e))?;
        let inside = ContainerEnd {
            ifname: ifname.to_string(),
            ..end.clone()
        };
        configure_in_namespace(&ns, &inside).map_err(|e| {
            err(
                ifname,
                &format!("configuring in namespace {}", end.netns),
                e,
            )
        })?;
        Ok(port)
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> PortInfo {
        PortInfo {
            kind: "tap",
            detail: format!("{} in netns {}", self.ifname, self.netns),
            afxdp: None,
        }
    }

    fn rx_burst(
        &mut self,
        pool: &mut FramePool,
        batch: &mut Batch,
        id: PortId,
        max: usize,
    ) -> usize {
        let max = max.min(batch.room());
        let headroom = pool.headroom();
        let room = pool.data_room();
        let mut n = 0;
        let mut bytes = 0u64;
        while n < max && self.link_up {
            let Some(base) = pool.alloc() else {
                bump(&self.counters.rx_nombuf, 1);
                break;
            };
            let addr = base + headroom as u64;
            let Some(buf) = pool.bytes_mut(addr, room) else {
                pool.free(base);
                break;
            };
            // SAFETY: `buf` is writable for `room` bytes; read writes at most that.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                pool.free(base);
                if r < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                        _ => {
                            bump(&self.counters.rx_errors, 1);
                            self.link_up = false;
                            bump(&self.counters.link_down_events, 1);
                        }
                    }
                }
                break;
            }
            batch.push(addr, r as u32, headroom as u16, id);
            n += 1;
            bytes += r as u64;
        }
        bump(&self.counters.rx_packets, n as u64);
        bump(&self.counters.rx_bytes, bytes);
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, descs: &[TxDesc]) -> usize {
        let mut packets = 0u64;
        let mut bytes = 0u64;
        for (k, d) in descs.iter().enumerate() {
            let r = match pool.bytes(d.addr, d.len) {
                // SAFETY: `data` is valid for its length.
                Some(data) if self.link_up => unsafe {
                    libc::write(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len())
                },
                _ => -1,
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if self.link_up && e.raw_os_error() == Some(libc::EAGAIN) {
                    // The device queue is full: the rest stay with the caller.
                    bump(&self.counters.tx_packets, packets);
                    bump(&self.counters.tx_bytes, bytes);
                    return k;
                }
                bump(&self.counters.tx_errors, 1);
            } else {
                packets += 1;
                bytes += d.len as u64;
            }
            pool.free_packet(d.addr, d.tail);
        }
        bump(&self.counters.tx_packets, packets);
        bump(&self.counters.tx_bytes, bytes);
        descs.len()
    }

    fn link_up(&self) -> bool {
        self.link_up
    }

    fn counters(&self) -> &SharedCounters {
        &self.counters
    }
}
