//! The bpf(2) calls pollgate makes: create the XSKMAP, load the redirect
//! program, attach it through a bpf_link, and put sockets in the map.
//! Everything returns an owned fd: closing the link fd (or the process
//! dying) detaches the program, so a crash never leaves it behind.

use super::sys::*;
use super::xdp_prog::{program, Insn, Steer, PROG_NAME};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// # Safety
/// `attr` must point to a `BPF_ATTR_SIZE`-byte attribute block laid out as
/// `cmd` expects; pointers inside it must be valid for the call.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: forwarded from the caller: `attr` is a valid attribute
    // block of `size_of::<T>()` bytes for `cmd`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: a successful bpf() that creates an object returns a new fd
    // that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Creates an XSKMAP with one slot per queue.
pub fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..8].copy_from_slice(b"pg_xsks\0");
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: name,
        _pad: [0; BPF_ATTR_SIZE - 44],
    };
    // SAFETY: `attr` is a complete, zero-padded BPF_MAP_CREATE block.
    unsafe { bpf(BPF_MAP_CREATE, &mut attr) }.map(owned)
}

/// Puts socket `xsk_fd` at index `queue` of the XSKMAP.
pub fn xskmap_set(map: &OwnedFd, queue: u32, xsk_fd: i32) -> io::Result<()> {
    let key = queue;
    let value = xsk_fd as u32;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad0: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
        _pad: [0; BPF_ATTR_SIZE - 32],
    };
    // SAFETY: key and value live on this stack frame for the call.
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(|_| ())
}

/// Removes the socket at index `queue`, so that queue's traffic goes to
/// the kernel stack again.
pub fn xskmap_clear(map: &OwnedFd, queue: u32) -> io::Result<()> {
    let key = queue;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad0: 0,
        key: &key as *const u32 as u64,
        value: 0,
        flags: 0,
        _pad: [0; BPF_ATTR_SIZE - 32],
    };
    // SAFETY: key lives on this stack frame for the call.
    unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) }.map(|_| ())
}

/// Loads the redirect program for `map`, marked as handling multi-buffer
/// packets when `frags` is set (it only redirects: it never reads past
/// the first buffer). On failure the verifier's log is part of the error.
pub fn load_redirect_prog(map: &OwnedFd, frags: bool, steer: Steer) -> io::Result<OwnedFd> {
    let insns: Vec<Insn> = program(map.as_raw_fd(), steer);
    let license = b"GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attempt = |log_level: u32, expected_attach_type: u32| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level,
            log_size: if log_level > 0 { log.len() as u32 } else { 0 },
            log_buf: if log_level > 0 {
                log.as_mut_ptr() as u64
            } else {
                0
            },
            kern_version: 0,
            prog_flags: if frags { BPF_F_XDP_HAS_FRAGS } else { 0 },
            prog_name: *PROG_NAME,
            prog_ifindex: 0,
            expected_attach_type,
            _pad: [0; BPF_ATTR_SIZE - 72],
        };
        // SAFETY: insns, license and log outlive the call; sizes match.
        unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map(owned)
    };
    match attempt(0, BPF_XDP) {
        Ok(fd) => Ok(fd),
        // Kernels before 5.x reject an expected attach type for XDP.
        Err(_) => match attempt(0, 0) {
            Ok(fd) => Ok(fd),
            Err(_) => attempt(1, 0).map_err(|e| {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                io::Error::new(
                    e.kind(),
                    format!(
                        "{e}; verifier: {}",
                        String::from_utf8_lossy(&log[..end]).trim()
                    ),
                )
            }),
        },
    }
}

/// Attaches `prog` to `ifindex` through a bpf_link, in driver mode
/// (`native`) or generic mode. The returned fd owns the attachment.
pub fn attach_xdp_link(prog: &OwnedFd, ifindex: u32, native: bool) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: if native {
            XDP_FLAGS_DRV_MODE
        } else {
            XDP_FLAGS_SKB_MODE
        },
        _pad: [0; BPF_ATTR_SIZE - 16],
    };
    // SAFETY: a complete, zero-padded BPF_LINK_CREATE block.
    unsafe { bpf(BPF_LINK_CREATE, &mut attr) }.map(owned)
}

/// The first fields of `struct bpf_prog_info`: enough for the name.
#[repr(C)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// Kernel id and name of a loaded program.
pub fn prog_info(prog: &OwnedFd) -> io::Result<(u32, String)> {
    // SAFETY: all-zero is a valid ProgInfoHead (plain integers).
    let mut info: ProgInfoHead = unsafe { std::mem::zeroed() };
    let mut attr = InfoByFdAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as u64,
        _pad: [0; BPF_ATTR_SIZE - 16],
    };
    // SAFETY: `info` is writable for `info_len` bytes during the call.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    let end = info.name.iter().position(|b| *b == 0).unwrap_or(16);
    Ok((
        info.id,
        String::from_utf8_lossy(&info.name[..end]).into_owned(),
    ))
}

/// Kernel id of a loaded program (what netlink reports as attached).
pub fn prog_id(prog: &OwnedFd) -> io::Result<u32> {
    prog_info(prog).map(|(id, _)| id)
}

/// An fd for the loaded program with kernel id `id` (to inspect it, or to
/// name it as the one a replace expects).
pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
        _pad: [0; BPF_ATTR_SIZE - 12],
    };
    // SAFETY: a complete, zero-padded BPF_PROG_GET_FD_BY_ID block.
    unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }.map(owned)
}

/// Loads a program that passes every packet to the kernel stack, under
/// `name`: what another tool's XDP program looks like, for tests.
/// Loads [`vlan_push`](super::xdp_prog::vlan_push) and attaches it to
/// the egress of `ifindex` (in the caller's namespace) with a tcx link,
/// which detaches when the returned fd closes. For tests: a peer that
/// sends VLAN tags as skb metadata.
pub fn attach_egress_vlan_push(ifindex: u32, tci: u16) -> io::Result<OwnedFd> {
    let insns = super::xdp_prog::vlan_push(tci);
    let license = b"GPL\0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SCHED_CLS,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: *b"pg_vlan_push\0\0\0\0",
        prog_ifindex: 0,
        expected_attach_type: BPF_TCX_EGRESS,
        _pad: [0; BPF_ATTR_SIZE - 72],
    };
    // SAFETY: insns and license outlive the call; sizes match.
    let prog = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map(owned)?;
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_TCX_EGRESS,
        flags: 0,
        _pad: [0; BPF_ATTR_SIZE - 16],
    };
    // SAFETY: a complete, zero-padded BPF_LINK_CREATE block.
    unsafe { bpf(BPF_LINK_CREATE, &mut attr) }.map(owned)
}

pub fn load_pass_prog(name: &str) -> io::Result<OwnedFd> {
    let insns = super::xdp_prog::pass_all();
    let license = b"GPL\0";
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: BPF_XDP,
        _pad: [0; BPF_ATTR_SIZE - 72],
    };
    // SAFETY: insns and license outlive the call; sizes match.
    unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map(owned)
}
