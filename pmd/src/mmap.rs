//! Anonymous memory mappings for frame pools: hugepage-backed where the
//! system has hugepages reserved, ordinary pages otherwise.

use std::io;
use std::ptr::NonNull;

const HUGEPAGE: usize = 2 << 20;

/// An anonymous, page-aligned, zero-filled mapping, unmapped on drop.
pub struct MmapRegion {
    ptr: NonNull<u8>,
    len: usize,
    huge: bool,
}

// SAFETY: the region is plain memory owned by this value; moving the owner
// to another thread moves the only handle to it.
unsafe impl Send for MmapRegion {}

impl MmapRegion {
    /// Maps `len` bytes, trying 2 MiB hugepages first when `len` is a
    /// multiple of 2 MiB and `try_huge` is set.
    pub fn new(len: usize, try_huge: bool) -> io::Result<MmapRegion> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        if try_huge && len.is_multiple_of(HUGEPAGE) {
            if let Some(ptr) = map_huge_2m(len) {
                return Ok(MmapRegion {
                    ptr,
                    len,
                    huge: true,
                });
            }
        }
        let ptr = Self::map(len)?;
        Ok(MmapRegion {
            ptr,
            len,
            huge: false,
        })
    }

    /// Ordinary pages, faulted in.
    fn map(len: usize) -> io::Result<NonNull<u8>> {
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choice touches no existing memory; the result is checked
        // against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_huge(&self) -> bool {
        self.huge
    }
}

/// `len` bytes (a multiple of 2 MiB) of reserved 2 MiB hugepages,
/// faulted in; `None` when there are too few free. The size is asked
/// for explicitly: with `default_hugepagesz=1G` (a common DPDK host) a
/// plain `MAP_HUGETLB` would take a whole 1 GiB page per mapping. The
/// pages are faulted in here because a cgroup's hugetlb limit is charged
/// at fault time (Kubernetes sets it to 0 for pods that ask for no
/// hugepages): past it the first touch is a SIGBUS, here a fallback.
pub(crate) fn map_huge_2m(len: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choice touches no existing memory; checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | libc::MAP_HUGE_2MB,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: `p..p + len` is the mapping just made, which nothing else
    // refers to yet; on failure it is unmapped whole, as mapped.
    unsafe {
        if libc::madvise(p, len, libc::MADV_POPULATE_WRITE) != 0
            // EINVAL: a kernel before 5.14, which cannot populate this
            // way; the mapping is kept, as it was before the check.
            && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
        {
            libc::munmap(p, len);
            return None;
        }
    }
    NonNull::new(p.cast())
}

impl Drop for MmapRegion {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and no reference
        // into the region outlives `self` (every slice borrows from it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
