//! The engine's global allocator: blocks of 2 MiB and more (the FIB's
//! tbl24 and trie chunks, the MAC table, the flow table) get their own
//! mapping, 2 MiB aligned and advised `MADV_HUGEPAGE`, so the kernel
//! backs them with transparent huge pages where it can. Their lookups go to random places
//! in tens of MiB: with 4 KiB pages every one is a TLB miss as well as a
//! cache miss (DPDK puts the same tables in hugepages). Everything else
//! goes to the system allocator unchanged.
//!
//! Where the system has 2 MiB hugepages reserved (as DPDK needs), a block
//! takes them first: transparent huge pages come only if the kernel finds
//! free 2 MiB blocks at fault time, and on a machine whose memory is
//! fragmented, or mostly reserved for someone else's hugepages, it
//! compacts for each fault and often falls back to 4 KiB pages (the FIB's
//! 100 K-route lookups measured 29-45 cycles from one run to the next
//! beside dpdk-test-fib's 8 GiB of hugepages, 27-28 with nothing
//! reserved). Nothing needs reserving: with none, THP at `madvise`
//! (Debian's default) or `always` does; at `never` the blocks are
//! ordinary pages and nothing else changes.

use std::alloc::{GlobalAlloc, Layout, System};

const HUGEPAGE: usize = 2 << 20;
/// Blocks from this size on are mapped on their own (the FIB's trie
/// chunks are 2 MiB).
const LARGE: usize = HUGEPAGE;

pub struct HugePageAlloc;

fn is_large(l: &Layout) -> bool {
    l.size() >= LARGE && l.align() <= HUGEPAGE
}

/// Bytes a large block's mapping spans.
fn span(size: usize) -> usize {
    size.next_multiple_of(HUGEPAGE)
}

/// A fresh, zero-filled mapping of `size` bytes at a 2 MiB boundary,
/// advised for huge pages; null if the kernel refuses.
fn map_large(size: usize) -> *mut u8 {
    let len = span(size);
    // 2 MiB pages start on a 2 MiB boundary, and `len` is a multiple of
    // them, so `dealloc`'s munmap of `span(size)` unmaps it whole.
    if let Some(p) = crate::mmap::map_huge_2m(len) {
        return p.as_ptr();
    }
    // Over-map by one huge page, then trim to an aligned window.
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choice touches no existing memory; checked against MAP_FAILED.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len + HUGEPAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGEPAGE);
    let (head, tail) = (aligned - start, start + len + HUGEPAGE - (aligned + len));
    // SAFETY: both ranges are the unused ends of the mapping just made,
    // page-aligned (mmap returns page-aligned memory and HUGEPAGE is a
    // multiple of the page size); nothing points into them.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
        // Advice only: a kernel without THP says EINVAL and the block
        // stays in ordinary pages.
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    aligned as *mut u8
}

// SAFETY: large blocks are mappings of their own, aligned to 2 MiB when
// made (a page after an mremap: at least any alignment `is_large`
// admits), zero-filled by the kernel, and unmapped whole with the span
// their size gives; every other layout is
// passed to the system allocator unchanged, alloc and dealloc alike,
// since `is_large` depends on the layout alone.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            return map_large(layout.size());
        }
        // SAFETY: the caller's contract for `alloc` is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            // Fresh anonymous memory is zero already.
            return map_large(layout.size());
        }
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) {
            // SAFETY: `ptr` came from `map_large` for this size (the
            // caller passes the layout it allocated with), which mapped
            // exactly `span(size)` bytes there.
            unsafe {
                libc::munmap(ptr as *mut libc::c_void, span(layout.size()));
            }
            return;
        }
        // SAFETY: `ptr` came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow isize (GlobalAlloc::realloc).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_large(&layout) && !is_large(&new) {
            // SAFETY: both layouts are System's; the caller's contract
            // for `realloc` is System's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if is_large(&layout) && is_large(&new) {
            if span(layout.size()) == span(new_size) {
                // The mapping already spans the new size.
                return ptr;
            }
            // A growing vector: the kernel moves the pages (no copy, no
            // new faults), and the mapping keeps its huge-page advice.
            // SAFETY: `ptr` is the start of a mapping of exactly
            // `span(layout.size())` bytes made by `map_large` (or an
            // earlier mremap here); on failure it is left as it was.
            let q = unsafe {
                libc::mremap(
                    ptr as *mut libc::c_void,
                    span(layout.size()),
                    span(new_size),
                    libc::MREMAP_MAYMOVE,
                )
            };
            if q != libc::MAP_FAILED {
                return q as *mut u8;
            }
            // mremap does not grow a hugetlb mapping: such a block is
            // copied below, the old and the new pages held at once.
        }
        // SAFETY: `new` is a valid layout (above); on success the old
        // block is copied up to the smaller size and freed with the
        // layout it was allocated with.
        unsafe {
            let q = self.alloc(new);
            if !q.is_null() {
                std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The tests that map large blocks run one at a time: where hugepages
    /// are reserved they share them, and the one that reserves its own
    /// counts on finding them free.
    static LARGE_BLOCKS: Mutex<()> = Mutex::new(());

    #[test]
    fn large_blocks_are_aligned_zeroed_and_grow_and_shrink() {
        let _one_at_a_time = LARGE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
        let a = HugePageAlloc;
        let l = Layout::from_size_align(2 * LARGE + 123, 8).unwrap();
        // SAFETY: a valid non-zero layout; the block is written within its
        // size, then freed with the same layout.
        unsafe {
            let p = a.alloc_zeroed(l);
            assert!(!p.is_null());
            assert_eq!(p as usize % HUGEPAGE, 0);
            let s = std::slice::from_raw_parts_mut(p, l.size());
            assert!(s.iter().all(|&b| b == 0));
            s[l.size() - 1] = 7;
            // Grown past its span (moved by the kernel), shrunk below the
            // threshold (copied): the bytes come along.
            let q = a.realloc(p, l, 5 * LARGE);
            assert_eq!(*q.add(l.size() - 1), 7);
            assert!(
                std::slice::from_raw_parts(q.add(l.size()), 5 * LARGE - l.size())
                    .iter()
                    .all(|&b| b == 0)
            );
            let big = Layout::from_size_align(5 * LARGE, 8).unwrap();
            let r = a.realloc(q, big, 100);
            assert!(!r.is_null());
            a.dealloc(r, Layout::from_size_align(100, 8).unwrap());
        }
    }

    /// The page size backing the mapping that holds `addr`, from
    /// /proc/self/smaps, in KiB.
    fn kernel_page_kib(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("KernelPageSize:") {
                    return v.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn reserved_hugepages_back_large_blocks_and_survive_growth() {
        const KNOB: &str = "/proc/sys/vm/nr_hugepages";
        let Some(was) = std::fs::read_to_string(KNOB)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        else {
            eprintln!("SKIP: no {KNOB}");
            return;
        };
        /// Puts the system's reservation back however the test ends.
        struct Restore(u64);
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = std::fs::write(KNOB, self.0.to_string());
            }
        }
        let _one_at_a_time = LARGE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
        // Growing the 2-page block to 3 pages copies it (mremap does not
        // grow a hugetlb mapping): both are held at once.
        if std::fs::write(KNOB, (was + 5).to_string()).is_err() {
            eprintln!("SKIP: reserving hugepages needs root ({KNOB} not writable)");
            return;
        }
        let _restore = Restore(was);
        let a = HugePageAlloc;
        let l = Layout::from_size_align(3 << 20, 8).unwrap();
        // SAFETY: a valid non-zero layout; the block is written within its
        // size, grown, then freed with the layout of its last size.
        let (huge, grown, kept) = unsafe {
            let p = a.alloc_zeroed(l);
            assert!(!p.is_null());
            let huge = kernel_page_kib(p as usize);
            *p.add(l.size() - 1) = 9;
            let q = a.realloc(p, l, 6 << 20);
            assert!(!q.is_null());
            let grown = kernel_page_kib(q as usize);
            let kept = *q.add(l.size() - 1);
            a.dealloc(q, Layout::from_size_align(6 << 20, 8).unwrap());
            (huge, grown, kept)
        };
        // The kernel may have found fewer pages than asked (fragmented
        // memory): then there is nothing to check.
        if huge == Some(4) {
            eprintln!("SKIP: the kernel reserved no hugepages");
            return;
        }
        assert_eq!(huge, Some(2048), "a reserved hugepage backs the block");
        assert_eq!(kept, 9, "its bytes survive growth");
        assert_eq!(grown, Some(2048), "and it stays in hugepages");
    }

    #[test]
    fn a_vec_past_the_threshold_works_as_any() {
        // Through the global allocator of this test binary (System), the
        // same layouts pass; this checks the layout rule itself.
        assert!(is_large(&Layout::array::<u64>(LARGE / 8).unwrap()));
        assert!(!is_large(&Layout::array::<u64>(LARGE / 8 - 1).unwrap()));
        assert!(!is_large(
            &Layout::from_size_align(LARGE, 2 * HUGEPAGE).unwrap()
        ));
    }
}
