//! Named network namespaces, the iproute2 way (`/run/netns/NAME` is a bind
//! mount of the namespace), so `ip netns exec NAME …` works on what
//! pollgate creates, and pollgate can use what `ip netns add` created.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const NETNS_DIR: &str = "/run/netns";

/// An open handle on a named namespace.
pub struct NetNs {
    name: String,
    file: File,
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// # Safety
/// Only the calling thread's network namespace changes; callers run this
/// on a thread that exits (or switches back) before any other work.
unsafe fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fd is an open nsfs file; CLONE_NEWNET checks its kind.
    check(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) })
}

impl NetNs {
    /// Where namespace `name` is: `/run/netns/NAME` for a name, the path
    /// itself for an absolute path (`/proc/PID/ns/net`, a runtime's bind
    /// mount), as podman, containerd and Docker hand them out.
    pub fn path(name: &str) -> PathBuf {
        if name.starts_with('/') {
            PathBuf::from(name)
        } else {
            Path::new(NETNS_DIR).join(name)
        }
    }

    pub fn exists(name: &str) -> bool {
        Self::path(name).exists()
    }

    pub fn open(name: &str) -> io::Result<NetNs> {
        let file = File::open(Self::path(name))?;
        Ok(NetNs {
            name: name.to_string(),
            file,
        })
    }

    /// Creates `/run/netns/NAME` holding a new, empty network namespace
    /// (loopback up, like `ip netns add` followed by `ip link set lo up`).
    pub fn create(name: &str) -> io::Result<NetNs> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad namespace name {name:?}"),
            ));
        }
        std::fs::create_dir_all(NETNS_DIR)?;
        make_shared_mount(Path::new(NETNS_DIR))?;
        let path = Self::path(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let target = cstr(&path)?;
        // A thread of its own: unshare changes only this thread, which
        // ends right after the bind mount.
        let made = std::thread::spawn(move || -> io::Result<()> {
            // SAFETY: affects only this short-lived thread.
            check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
            let src = CString::new("/proc/thread-self/ns/net").expect("no NUL");
            // SAFETY: both paths are valid C strings; a bind mount of our
            // own namespace file onto the placeholder created above.
            check(unsafe {
                libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            })?;
            crate::netlink::Netlink::open()?.set_link_up_by_name("lo")
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?;
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Self::open(name)
    }

    /// Unmounts and removes `/run/netns/NAME`; the namespace dies when its
    /// last user (process, socket, device) is gone.
    pub fn delete(name: &str) -> io::Result<()> {
        // Only what `create` made: never a runtime's namespace by path.
        if name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a namespace pollgate created"),
            ));
        }
        let path = Self::path(name);
        let c = cstr(&path)?;
        // SAFETY: valid C string; MNT_DETACH unmounts lazily, never
        // touching memory of ours.
        let _ = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        std::fs::remove_file(&path)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` on a thread inside this namespace. Sockets `f` opens stay
    /// in the namespace after it returns.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> io::Result<R> + Send) -> io::Result<R> {
        let fd = self.file.as_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: the scoped thread exists only to run `f` in the
                // namespace and ends right after.
                unsafe { setns_net(fd) }?;
                f()
            })
            .join()
            .map_err(|_| io::Error::other("namespace thread panicked"))?
        })
    }
}

/// `mount --make-shared` on `dir`, bind-mounting it onto itself first if
/// it is not a mount point yet (what iproute2 does for /run/netns), so
/// namespace mounts made later are seen in every mount namespace.
fn make_shared_mount(dir: &Path) -> io::Result<()> {
    let c = cstr(dir)?;
    let none = CString::new("none").expect("no NUL");
    // SAFETY: valid C strings; changes mount propagation of one directory.
    let shared = || unsafe {
        libc::mount(
            none.as_ptr(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_SHARED | libc::MS_REC,
            std::ptr::null(),
        )
    };
    if shared() == 0 {
        return Ok(());
    }
    // SAFETY: bind-mounts the directory onto itself.
    check(unsafe {
        libc::mount(
            c.as_ptr(),
            c.as_ptr(),
            none.as_ptr(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    })?;
    check(shared())
}
