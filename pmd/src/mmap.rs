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
            if let Ok(ptr) = Self::map(len, libc::MAP_HUGETLB) {
                return Ok(MmapRegion {
                    ptr,
                    len,
                    huge: true,
                });
            }
        }
        let ptr = Self::map(len, 0)?;
        Ok(MmapRegion {
            ptr,
            len,
            huge: false,
        })
    }

    fn map(len: usize, extra: libc::c_int) -> io::Result<NonNull<u8>> {
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choice touches no existing memory; the result is checked
        // against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | extra,
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

impl Drop for MmapRegion {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and no reference
        // into the region outlives `self` (every slice borrows from it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
