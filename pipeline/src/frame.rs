//! Access to packet bytes. Frames live in a pool owned by the port layer
//! (an AF_XDP UMEM or an in-memory region); the pipeline only sees them
//! through this trait, so it stays free of `unsafe` and of syscalls.

/// Byte access to the frames of one pool, by address within the pool.
///
/// Implementations must return `None` for any range outside the pool or
/// crossing a frame boundary, so a corrupt descriptor becomes a counted
/// drop rather than a wild access.
pub trait FrameMemory {
    fn bytes(&self, addr: u64, len: u32) -> Option<&[u8]>;
    fn bytes_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]>;
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
