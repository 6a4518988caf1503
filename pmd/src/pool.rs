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

pub struct FramePool {
    region: MmapRegion,
    cfg: PoolConfig,
    mask: u64,
    free: Vec<u64>,
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

    /// Base address of the frame holding `addr`.
    #[inline(always)]
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & self.mask
    }

    /// Start of the region and its length, for UMEM registration.
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
        let addr = base + self.cfg.headroom as u64;
        match self.bytes_mut(addr, data.len() as u32) {
            Some(dst) => {
                dst.copy_from_slice(data);
                Some(addr)
            }
            None => {
                self.free(base);
                None
            }
        }
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
