//! What the engine needs from the kernel before it touches anything:
//! capabilities (read from /proc/self/status) and the locked-memory limit
//! a UMEM is charged against (raised where the process may). One message
//! names everything missing, instead of an EPERM from whichever syscall
//! happens to come first.

use std::io;

/// Capability numbers from linux/capability.h.
pub mod cap {
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const IPC_LOCK: u32 = 14;
    pub const SYS_ADMIN: u32 = 21;
    pub const BPF: u32 = 39;
}

/// What a topology will do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// AF_XDP sockets and pollgate's XDP program (veth and afxdp ports).
    pub afxdp: bool,
    /// Create devices (veth, tap) and configure them.
    pub devices: bool,
    /// Enter or create network namespaces.
    pub namespaces: bool,
    /// Bytes of frame pool registered as UMEM (locked memory).
    pub umem_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("missing privileges: {}. Run as root, or grant them: setcap cap_net_admin,cap_net_raw,cap_bpf,cap_sys_admin,cap_ipc_lock+ep $(command -v pollgate)", .missing.join("; "))]
pub struct PrivilegeError {
    pub missing: Vec<String>,
}

/// The effective capability set of this process.
pub fn effective() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or_else(|| io::Error::other("no CapEff in /proc/self/status"))?;
    u64::from_str_radix(hex.trim(), 16).map_err(io::Error::other)
}

fn has(caps: u64, c: u32) -> bool {
    caps >> c & 1 == 1
}

/// (soft, hard) RLIMIT_MEMLOCK in bytes (`u64::MAX`: unlimited).
pub fn memlock() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r.rlim_cur, r.rlim_max))
}

/// Raises the soft limit to the hard one, and both to unlimited where
/// the kernel lets us (CAP_SYS_RESOURCE). Returns the soft limit now.
pub fn raise_memlock() -> io::Result<u64> {
    for want in [libc::RLIM_INFINITY, memlock()?.1] {
        let r = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: `r` is a valid rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) } == 0 {
            return Ok(want);
        }
    }
    Ok(memlock()?.0)
}

/// Checks everything `needs` calls for, raising RLIMIT_MEMLOCK first.
pub fn check(needs: Needs) -> Result<(), PrivilegeError> {
    check_with(
        needs,
        effective().unwrap_or(0),
        raise_memlock().unwrap_or(0),
    )
}

/// `check`, given the effective capabilities and the memlock limit.
pub fn check_with(needs: Needs, caps: u64, memlock: u64) -> Result<(), PrivilegeError> {
    let mut missing = Vec::new();
    if (needs.afxdp || needs.devices) && !has(caps, cap::NET_ADMIN) {
        missing.push(
            "CAP_NET_ADMIN (attach XDP programs, create and configure veth/tap devices)"
                .to_string(),
        );
    }
    if needs.afxdp && !has(caps, cap::NET_RAW) {
        missing.push("CAP_NET_RAW (open AF_XDP sockets)".to_string());
    }
    if needs.afxdp && !has(caps, cap::BPF) && !has(caps, cap::SYS_ADMIN) {
        missing.push("CAP_BPF or CAP_SYS_ADMIN (load the XDP program and its XSKMAP)".to_string());
    }
    if needs.namespaces && !has(caps, cap::SYS_ADMIN) {
        missing.push("CAP_SYS_ADMIN (enter and create network namespaces)".to_string());
    }
    if needs.afxdp && !has(caps, cap::IPC_LOCK) && memlock < needs.umem_bytes {
        missing.push(format!(
            "locked memory: RLIMIT_MEMLOCK is {} KiB, the frame pools need {} KiB (raise it with `ulimit -l`, or grant CAP_IPC_LOCK)",
            memlock / 1024,
            needs.umem_bytes.div_ceil(1024)
        ));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = (1 << 40) - 1;

    #[test]
    fn names_every_missing_capability_at_once() {
        let needs = Needs {
            afxdp: true,
            devices: true,
            namespaces: true,
            umem_bytes: 16 << 20,
        };
        assert!(check_with(needs, ALL, 0).is_ok());
        let none = check_with(needs, 0, 64 << 10).unwrap_err();
        assert_eq!(none.missing.len(), 5, "{none}");
        let msg = none.to_string();
        for c in [
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_BPF or CAP_SYS_ADMIN",
            "CAP_SYS_ADMIN (enter",
            "RLIMIT_MEMLOCK is 64 KiB",
        ] {
            assert!(msg.contains(c), "{c}: {msg}");
        }
        // CAP_SYS_ADMIN stands in for CAP_BPF; a high memlock for IPC_LOCK.
        let some = ALL & !(1 << cap::BPF) & !(1 << cap::IPC_LOCK);
        assert!(check_with(needs, some, u64::MAX).is_ok());
        // In-memory ports need nothing.
        assert!(check_with(Needs::default(), 0, 0).is_ok());
    }

    #[test]
    fn reads_this_process() {
        assert!(effective().is_ok());
        let (soft, hard) = memlock().unwrap();
        assert!(soft <= hard);
    }
}
