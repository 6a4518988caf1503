//! Access to packet bytes. Frames live in a pool owned by the port layer
//! (an AF_XDP UMEM or an in-memory region); the pipeline only sees them
//! through this trait, so it stays free of `unsafe` and of syscalls.

/// Byte access to the frames of one pool, by address within the pool,
/// and the pool's owner's prefetch, which the pipeline's tables borrow.
///
/// Implementations must return `None` for any range outside the pool or
/// crossing a frame boundary, so a corrupt descriptor becomes a counted
/// drop rather than a wild access.
pub trait FrameMemory {
    fn bytes(&self, addr: u64, len: u32) -> Option<&[u8]>;
    fn bytes_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]>;

    /// Starts bringing the cache line at `line` in, without waiting for
    /// it: a stage that looks a whole burst up in a table past the caches
    /// issues one per packet first, so that the misses overlap. Callers
    /// pass addresses of their own tables; implementations must never
    /// dereference `line` (any address may come). It is here because the
    /// memory's owner (pmd) is the one crate allowed the `unsafe` a
    /// prefetch takes on stable Rust; the default does nothing.
    #[inline(always)]
    fn prefetch(&self, line: *const u8) {
        let _ = line;
    }
}

/// A plain byte vector as frame memory: tests and tools address it like a
/// pool with no frame boundaries.
impl FrameMemory for Vec<u8> {
    fn bytes(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        self.get(start..start.checked_add(len as usize)?)
    }

    fn bytes_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let start = usize::try_from(addr).ok()?;
        self.get_mut(start..start.checked_add(len as usize)?)
    }
}
