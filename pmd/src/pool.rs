//! The frame pool: one memory region cut into fixed-size frames, and a
//! stack of the free ones. A worker owns one pool; every port it serves
//! takes frames from it and gives them back, and an AF_XDP UMEM is this
//! same region registered with the kernel, so frames move between ports by
//! address, never by copy.

use crate::mmap::MmapRegion;
use crate::PmdError;
use pollgate_pipeline::FrameMemory;

/// Frame geometry of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Number of frames.
    pub frames: u32,
    /// Bytes per frame: 2048 or 4096 (AF_XDP aligned mode needs a power
    /// of two between 2048 and the page size).
    pub frame_size: u32,
    /// Bytes kept free in front of a received packet so VLAN push and
    /// VXLAN encap can write headers in place.
    pub headroom: u32,
    /// Try hugepages first.
    pub hugepages: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            frames: 8192,
            frame_size: 2048,
            headroom: 256,
            hugepages: true,
        }
    }
}

/// Smallest headroom: room for an 802.1ad + 802.1Q push or a VXLAN
/// encapsulation (50 bytes) with alignment to spare.
pub const MIN_HEADROOM: u32 = 64;

impl PoolConfig {
    /// Checks the geometry so that nothing fails later at bind time.
    pub fn validate(&self) -> Result<(), PmdError> {
        let bad = |field: &'static str, reason: String| Err(PmdError::Geometry { field, reason });
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return bad(
                "frame_size",
                format!("{} is not allowed: use 2048 or 4096", self.frame_size),
            );
        }
        if self.headroom < MIN_HEADROOM {
            return bad(
                "headroom",
                format!("{} is below the minimum of {MIN_HEADROOM}", self.headroom),
            );
        }
        // Leave room for a full 1500-byte-MTU frame plus tags.
        if self.headroom + 1522 > self.frame_size {
            return bad(
                "headroom",
                format!(
                    "{} leaves less than 1522 bytes of a {}-byte frame for the packet",
                    self.headroom, self.frame_size
                ),
            );
        }
        if self.frames < 64 || !self.frames.is_power_of_two() {
            return bad(
                "frames",
                format!("{} must be a power of two, at least 64", self.frames),
            );
        }
        if (self.frames as u64) * (self.frame_size as u64) > (1 << 32) {
            return bad("frames", "pool larger than 4 GiB".to_string());
        }
        Ok(())
    }
}

/// The geometry of a pool's memory, as `XDP_UMEM_REG` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemLayout {
    pub addr: usize,
    pub len: usize,
    pub frame_size: u32,
    pub headroom: u32,
}

impl UmemLayout {
    pub fn data_room(&self) -> u32 {
        self.frame_size - self.headroom
    }
}

pub struct FramePool {
    region: MmapRegion,
    cfg: PoolConfig,
    mask: u64,
    shift: u32,
    free: Vec<u64>,
    /// Multi-buffer chains, like an mbuf's `next`: per frame, the address
    /// of the packet's next segment ([`NO_LINK`] for the last segment
    /// and for every frame not inside a chain), and each tail segment's
    /// length. Whoever consumes a chain (TX, free, clone) clears its
    /// links, so a free frame never carries one.
    next: Vec<u32>,
    seg_len: Vec<u16>,
}

/// No next segment. Never a segment address: the pool is at most 4 GiB
/// and a segment starts at least the headroom into its frame, which
/// leaves it at least `MIN_HEADROOM` bytes before the next frame.
pub const NO_LINK: u32 = u32::MAX;

/// `dst.copy_from_slice(src)` for slices of equal length. Frames of 32
/// to 128 bytes (a replayed minimum-size packet) take two overlapping
/// fixed-size copies, which compile to a few vector moves in place; any
/// other length calls libc's memcpy, whose call and size dispatch cost a
/// 64-byte frame as much as the copy itself.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    fn two<const N: usize>(dst: &mut [u8], src: &[u8]) {
        if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
            *d = *s;
        }
        if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
            *d = *s;
        }
    }
    match src.len() {
        32..=64 if dst.len() == src.len() => two::<32>(dst, src),
        65..=128 if dst.len() == src.len() => two::<64>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

impl FramePool {
    pub fn new(cfg: PoolConfig) -> Result<FramePool, PmdError> {
        cfg.validate()?;
        let len = cfg.frames as usize * cfg.frame_size as usize;
        let region = MmapRegion::new(len, cfg.hugepages).map_err(PmdError::Mmap)?;
        // Lowest addresses on top of the stack: handed out first, so a
        // small run touches the fewest pages.
        let free = (0..cfg.frames as u64)
            .rev()
            .map(|i| i * cfg.frame_size as u64)
            .collect();
        Ok(FramePool {
            region,
            mask: !(cfg.frame_size as u64 - 1),
            shift: cfg.frame_size.trailing_zeros(),
            next: vec![NO_LINK; cfg.frames as usize],
            seg_len: vec![0; cfg.frames as usize],
            cfg,
            free,
        })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    pub fn frame_size(&self) -> u32 {
        self.cfg.frame_size
    }

    pub fn headroom(&self) -> u32 {
        self.cfg.headroom
    }

    /// Largest packet a fresh frame holds after the headroom.
    pub fn data_room(&self) -> u32 {
        self.cfg.frame_size - self.cfg.headroom
    }

    pub fn total(&self) -> u32 {
        self.cfg.frames
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    pub fn is_huge(&self) -> bool {
        self.region.is_huge()
    }

    /// Base address of a free frame.
    #[inline(always)]
    pub fn alloc(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Returns the frame holding `addr` (any address inside it).
    #[inline(always)]
    pub fn free(&mut self, addr: u64) {
        debug_assert!(
            self.free.len() < self.cfg.frames as usize,
            "double free of frame {addr:#x}"
        );
        self.free.push(addr & self.mask);
    }

    /// Takes up to `out.len()` free frames (their base addresses) at
    /// once; returns how many. One update of the free stack's length,
    /// where `alloc` per frame loads and stores it each time, a
    /// dependency through memory that bounds a burst's loop.
    #[inline]
    pub fn alloc_frames(&mut self, out: &mut [u64]) -> usize {
        let n = out.len().min(self.free.len());
        let start = self.free.len() - n;
        out[..n].copy_from_slice(&self.free[start..]);
        self.free.truncate(start);
        n
    }

    /// Frees the frames holding `addrs` (packets of one frame each) with
    /// one update of the free stack's length, as `alloc_frames` takes
    /// them.
    #[inline]
    pub fn free_frames(&mut self, addrs: impl ExactSizeIterator<Item = u64>) {
        debug_assert!(
            self.free.len() + addrs.len() <= self.cfg.frames as usize,
            "double free"
        );
        let mask = self.mask;
        self.free.extend(addrs.map(|a| a & mask));
    }

    /// Writes `data` into the free-of-the-pool frame at `base` (one the
    /// caller took) after the headroom; returns the data address, or
    /// `None` (the frame still the caller's) when `data` is too long.
    #[inline(always)]
    pub fn fill_frame(&mut self, base: u64, data: &[u8]) -> Option<u64> {
        if data.len() > self.data_room() as usize {
            return None;
        }
        let addr = base + self.cfg.headroom as u64;
        copy_short(self.bytes_mut(addr, data.len() as u32)?, data);
        Some(addr)
    }

    /// Base address of the frame holding `addr`.
    #[inline(always)]
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & self.mask
    }

    #[inline(always)]
    fn index(&self, addr: u64) -> usize {
        (addr >> self.shift) as usize
    }

    /// Chains `next` (`len` bytes) after the segment at `prev`: a
    /// multi-buffer packet received in several frames.
    #[inline]
    pub fn link(&mut self, prev: u64, next: u64, len: u32) {
        let (p, n) = (self.index(prev), self.index(next));
        if p < self.next.len() && n < self.next.len() && p != n {
            self.next[p] = next as u32;
            self.seg_len[n] = len as u16;
        }
    }

    /// The segment after the one at `addr`, with its length.
    #[inline]
    pub fn next_segment(&self, addr: u64) -> Option<(u64, u32)> {
        let n = *self.next.get(self.index(addr))?;
        (n != NO_LINK).then(|| (n as u64, self.seg_len[self.index(n as u64)] as u32))
    }

    /// Like [`next_segment`](Self::next_segment), and clears the link:
    /// the segment at `addr` leaves the chain (to the TX ring, say).
    #[inline]
    pub fn unlink(&mut self, addr: u64) -> Option<(u64, u32)> {
        let i = self.index(addr);
        let n = std::mem::replace(self.next.get_mut(i)?, NO_LINK);
        (n != NO_LINK).then(|| (n as u64, self.seg_len[self.index(n as u64)] as u32))
    }

    /// Returns a whole packet to the pool: the frame at `addr` and, when
    /// it has a tail (`tail_len` > 0), every frame chained after it.
    #[inline(always)]
    pub fn free_packet(&mut self, addr: u64, tail_len: u32) {
        if tail_len != 0 {
            self.free_tail(addr);
        }
        self.free(addr);
    }

    #[cold]
    fn free_tail(&mut self, head: u64) {
        let mut at = head;
        // A chain is at most one frame per pool frame: the bound only
        // guards against a link cycle, which would be a bug.
        for _ in 0..self.cfg.frames {
            match self.unlink(at) {
                Some((n, _)) => {
                    if at != head {
                        self.free(at);
                    }
                    at = n;
                }
                None => break,
            }
        }
        if at != head {
            self.free(at);
        }
    }

    /// Copies a whole packet (`len` bytes at `addr`, then its chain) into
    /// fresh frames, each segment at the same offset as the original's.
    /// `None`, with nothing taken, when the pool runs out.
    pub fn clone_packet(&mut self, addr: u64, len: u32, tail_len: u32) -> Option<u64> {
        let head = self.clone_frame(addr, len)?;
        if tail_len == 0 {
            return Some(head);
        }
        let (mut from, mut to) = (addr, head);
        while let Some((seg, seg_len)) = self.next_segment(from) {
            let Some(copy) = self.clone_frame(seg, seg_len) else {
                self.free_packet(head, tail_len);
                return None;
            };
            self.link(to, copy, seg_len);
            (from, to) = (seg, copy);
        }
        Some(head)
    }

    /// Copies a whole packet (`len` bytes at `addr`, then its chain) into
    /// `dst`, which is exactly as long as the packet: a capture, or a
    /// hand-over to another worker's pool. False if the chain does not
    /// add up.
    pub fn copy_packet(&self, addr: u64, len: u32, dst: &mut [u8]) -> bool {
        let Some(b) = self.bytes(addr, len) else {
            return false;
        };
        let Some((first, mut rest)) = dst.split_at_mut_checked(b.len()) else {
            return false;
        };
        first.copy_from_slice(b);
        let mut at = addr;
        while !rest.is_empty() {
            let Some((seg, seg_len)) = self.next_segment(at) else {
                return false;
            };
            let Some(b) = self.bytes(seg, seg_len) else {
                return false;
            };
            let Some((d, r)) = rest.split_at_mut_checked(b.len()) else {
                return false;
            };
            d.copy_from_slice(b);
            rest = r;
            at = seg;
        }
        true
    }

    /// Writes `data` into fresh frames after the headroom, chained when
    /// it is longer than one frame's data room; returns the first frame's
    /// address and the bytes in it. `None`, with nothing taken, when the
    /// pool runs out.
    pub fn alloc_chain(&mut self, data: &[u8]) -> Option<(u64, u32)> {
        let room = self.data_room() as usize;
        let mut chunks = data.chunks(room);
        let first = chunks.next().unwrap_or(&[]);
        let head = self.alloc_copy(first)?;
        let mut prev = head;
        for c in chunks {
            let Some(seg) = self.alloc_copy(c) else {
                self.free_packet(head, (data.len() - first.len()) as u32);
                return None;
            };
            self.link(prev, seg, c.len() as u32);
            prev = seg;
        }
        Some((head, first.len() as u32))
    }

    /// Start of the region and its length, for UMEM registration.
    /// What an AF_XDP socket registers as UMEM: plain numbers, so the
    /// control thread can open a socket on a worker's pool while the
    /// worker owns it.
    pub fn layout(&self) -> UmemLayout {
        UmemLayout {
            addr: self.region.as_ptr() as usize,
            len: self.region.len(),
            frame_size: self.cfg.frame_size,
            headroom: self.cfg.headroom,
        }
    }

    pub fn region(&self) -> (*mut u8, usize) {
        (self.region.as_ptr(), self.region.len())
    }

    /// Writes `data` into a fresh frame after the headroom; returns the
    /// data address, or `None` when the pool is empty or `data` too long.
    pub fn alloc_copy(&mut self, data: &[u8]) -> Option<u64> {
        if data.len() > self.data_room() as usize {
            return None;
        }
        let base = self.alloc()?;
        let addr = self.fill_frame(base, data);
        if addr.is_none() {
            self.free(base);
        }
        addr
    }

    /// Copies the `len` bytes at `addr` into a fresh frame, at the same
    /// offset from the frame start (so the copy has the same headroom).
    /// Returns the copy's address; `None` when the pool is empty.
    pub fn clone_frame(&mut self, addr: u64, len: u32) -> Option<u64> {
        if !self.in_bounds(addr, len) {
            return None;
        }
        let base = self.alloc()?;
        let dst = base + (addr & !self.mask);
        // SAFETY: both ranges passed `in_bounds` (dst has the same offset
        // and length inside its own frame); `base` was just taken from the
        // free stack, so it is a different frame from the one holding
        // `addr`, which the caller owns: the ranges do not overlap and no
        // one else touches either during the copy.
        unsafe {
            let p = self.region.as_ptr();
            std::ptr::copy_nonoverlapping(p.add(addr as usize), p.add(dst as usize), len as usize);
        }
        Some(dst)
    }

    #[inline(always)]
    fn in_bounds(&self, addr: u64, len: u32) -> bool {
        let off = addr & !self.mask;
        off + len as u64 <= self.cfg.frame_size as u64
            && addr + (len as u64) <= self.region.len() as u64
    }
}

impl FrameMemory for FramePool {
    #[inline(always)]
    fn prefetch(&self, line: *const u8) {
        crate::prefetch::prefetch(line)
    }

    #[inline(always)]
    fn bytes(&self, addr: u64, len: u32) -> Option<&[u8]> {
        if !self.in_bounds(addr, len) {
            return None;
        }
        // SAFETY: `in_bounds` keeps [addr, addr+len) inside the mapping and
        // inside one frame. The caller passes only frames it owns (from a
        // batch), which the kernel does not touch while user space owns
        // them; `&self` keeps Rust-side writers away for the borrow.
        Some(unsafe {
            std::slice::from_raw_parts(self.region.as_ptr().add(addr as usize), len as usize)
        })
    }

    #[inline(always)]
    fn bytes_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        if !self.in_bounds(addr, len) {
            return None;
        }
        // SAFETY: as in `bytes`; `&mut self` makes this the only live
        // reference into the pool for the borrow.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.region.as_ptr().add(addr as usize), len as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_copies_write_exactly_the_frame() {
        let src: Vec<u8> = (0..200u32).map(|b| (b * 7 + 3) as u8).collect();
        for n in 0..=200 {
            let mut dst = vec![0xeeu8; n + 8];
            copy_short(&mut dst[4..4 + n], &src[..n]);
            assert_eq!(&dst[4..4 + n], &src[..n], "length {n}");
            assert!(dst[..4].iter().chain(&dst[4 + n..]).all(|&b| b == 0xee));
        }
    }

    fn small() -> PoolConfig {
        PoolConfig {
            frames: 64,
            frame_size: 2048,
            headroom: 256,
            hugepages: false,
        }
    }

    #[test]
    fn alloc_free_round_trip() {
        let mut p = FramePool::new(small()).unwrap();
        assert_eq!(p.available(), 64);
        let a = p.alloc().unwrap();
        assert_eq!(a, 0);
        let b = p.alloc_copy(&[1, 2, 3]).unwrap();
        assert_eq!(b, 2048 + 256);
        assert_eq!(p.bytes(b, 3).unwrap(), &[1, 2, 3]);
        p.free(b + 17);
        p.free(a);
        assert_eq!(p.available(), 64);
        assert_eq!(p.alloc(), Some(0));
        assert_eq!(p.alloc(), Some(2048));
    }

    #[test]
    fn clone_frame_copies_at_the_same_offset() {
        let mut p = FramePool::new(small()).unwrap();
        let a = p.alloc_copy(&[9, 8, 7]).unwrap();
        let b = p.clone_frame(a + 1, 2).unwrap();
        assert_ne!(p.frame_base(a), p.frame_base(b));
        assert_eq!(b - p.frame_base(b), 256 + 1);
        assert_eq!(p.bytes(b, 2).unwrap(), &[8, 7]);
        assert_eq!(p.clone_frame(64 * 2048, 1), None);
    }

    #[test]
    fn frames_taken_and_freed_in_bulk_come_back_whole() {
        let mut p = FramePool::new(small()).unwrap();
        let mut bases = [0u64; 80];
        assert_eq!(p.alloc_frames(&mut bases[..10]), 10);
        assert_eq!(p.available(), 54);
        let mut seen: Vec<u64> = bases[..10].to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10, "each frame taken once");
        let a = p.fill_frame(bases[0], &[1, 2, 3]).unwrap();
        assert_eq!(a, bases[0] + 256);
        assert_eq!(p.bytes(a, 3).unwrap(), &[1, 2, 3]);
        assert_eq!(
            p.fill_frame(bases[1], &[0; 1793]),
            None,
            "past the data room"
        );
        // Any address inside a frame frees that frame.
        p.free_frames(bases[..10].iter().map(|b| b + 300));
        assert_eq!(p.available(), 64);
        assert_eq!(p.alloc_frames(&mut bases), 64, "no more than there are");
        assert!(bases[..64].iter().all(|b| b % 2048 == 0));
        assert_eq!(p.alloc_frames(&mut bases[..1]), 0);
    }

    #[test]
    fn chains_link_clone_copy_and_free_whole() {
        let mut p = FramePool::new(small()).unwrap();
        // 5000 bytes: 1792 + 1792 + 1416 over three frames.
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let (head, len) = p.alloc_chain(&data).unwrap();
        assert_eq!((len, p.available()), (1792, 61));
        let (s1, l1) = p.next_segment(head).unwrap();
        let (s2, l2) = p.next_segment(s1).unwrap();
        assert_eq!((l1, l2, p.next_segment(s2)), (1792, 1416, None));
        let tail = 5000 - len;

        let mut out = vec![0u8; 5000];
        assert!(p.copy_packet(head, len, &mut out));
        assert_eq!(out, data);
        assert!(
            !p.copy_packet(head, len, &mut [0u8; 4999]),
            "length must add up"
        );

        let copy = p.clone_packet(head, len, tail).unwrap();
        assert_eq!(p.available(), 58);
        let mut out2 = vec![0u8; 5000];
        assert!(p.copy_packet(copy, len, &mut out2));
        assert_eq!(out2, data);

        p.free_packet(head, tail);
        p.free_packet(copy, tail);
        assert_eq!(p.available(), 64, "every frame of both chains is back");
        // Free frames carry no link: a new single-frame packet in a frame
        // that was a chain's head has no tail.
        for _ in 0..64 {
            let a = p.alloc().unwrap();
            assert_eq!(p.next_segment(a), None);
        }
    }

    #[test]
    fn a_clone_that_runs_out_of_frames_takes_nothing() {
        let mut p = FramePool::new(small()).unwrap();
        let data = vec![1u8; 1792 * 3];
        let (head, len) = p.alloc_chain(&data).unwrap();
        let mut hold = Vec::new();
        while p.available() > 2 {
            hold.push(p.alloc().unwrap());
        }
        assert_eq!(p.clone_packet(head, len, 1792 * 2), None);
        assert_eq!(p.available(), 2);
        assert_eq!(p.alloc_chain(&data), None);
        assert_eq!(p.available(), 2);
    }

    #[test]
    fn unlinking_walks_a_chain_for_transmit() {
        let mut p = FramePool::new(small()).unwrap();
        let (head, _) = p.alloc_chain(&[5u8; 4000]).unwrap();
        let mut segs = vec![head];
        let mut at = head;
        while let Some((n, _)) = p.unlink(at) {
            segs.push(n);
            at = n;
        }
        assert_eq!(segs.len(), 3);
        // The kernel completes each frame on its own.
        for s in segs {
            assert_eq!(p.next_segment(s), None);
            p.free(s);
        }
        assert_eq!(p.available(), 64);
    }

    #[test]
    fn bounds_are_checked() {
        let mut p = FramePool::new(small()).unwrap();
        assert!(p.bytes(2040, 16).is_none(), "crosses a frame boundary");
        assert!(p.bytes(64 * 2048, 1).is_none(), "past the region");
        assert!(p.bytes_mut(0, 2048).is_some());
        assert!(
            p.alloc_copy(&[0; 1793]).is_none(),
            "longer than the data room"
        );
    }

    #[test]
    fn geometry_is_validated() {
        let bad = |f: fn(&mut PoolConfig)| {
            let mut c = small();
            f(&mut c);
            match c.validate() {
                Err(PmdError::Geometry { field, .. }) => field,
                other => panic!("expected a geometry error, got {other:?}"),
            }
        };
        assert_eq!(bad(|c| c.frame_size = 3000), "frame_size");
        assert_eq!(bad(|c| c.headroom = 32), "headroom");
        assert_eq!(bad(|c| c.headroom = 1024), "headroom");
        assert_eq!(bad(|c| c.frames = 100), "frames");
        assert!(small().validate().is_ok());
    }
}
