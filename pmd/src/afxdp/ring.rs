//! The four AF_XDP rings, shared with the kernel through mmap: fill and
//! TX are produced by us and consumed by the kernel, RX and completion the
//! other way round. Producer and consumer indices are free-running u32s;
//! each side caches the other's index and only reloads it when the cached
//! value says there is no room (or nothing to read), as libxdp does.

use super::sys::{XdpRingOffset, XDP_RING_NEED_WAKEUP};
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One ring's mapping, unmapped on drop.
struct RingMap {
    base: NonNull<u8>,
    len: usize,
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: base/len are what mmap returned; the ring's pointers
        // into the mapping die with the ring that owns this value.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// Pointers into a mapped ring.
struct RingPtrs<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    _map: RingMap,
}

// SAFETY: the mapping belongs to the ring value alone; moving it to the
// worker thread that uses it moves the only user-space handle.
unsafe impl<T> Send for RingPtrs<T> {}

impl<T> RingPtrs<T> {
    fn map(fd: &OwnedFd, off: &XdpRingOffset, size: u32, pgoff: libc::off_t) -> io::Result<Self> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: maps the ring the kernel created for this socket at the
        // documented page offset; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let at = |o: u64| {
            // SAFETY: the kernel reports offsets inside the mapping it
            // sized (len covers desc + size entries; the indices and the
            // flags word precede the descriptors).
            unsafe { NonNull::new_unchecked(base.as_ptr().add(o as usize)) }
        };
        Ok(RingPtrs {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            mask: size - 1,
            size,
            _map: RingMap { base, len },
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, 4-byte aligned by the
        // kernel; shared with the kernel only through atomic accesses.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as `producer`.
        unsafe { self.flags.as_ref() }
    }

    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask` < size, inside the descriptor array.
        unsafe { self.descs.as_ptr().add((idx & self.mask) as usize) }
    }
}

/// A ring user space produces into (fill, TX).
pub struct ProdRing<T: Copy> {
    r: RingPtrs<T>,
    cached_prod: u32,
    /// Kernel's consumer index plus the ring size: `cached_cons -
    /// cached_prod` is the free room.
    cached_cons: u32,
    _t: PhantomData<T>,
}

impl<T: Copy> ProdRing<T> {
    pub fn map(
        fd: &OwnedFd,
        off: &XdpRingOffset,
        size: u32,
        pgoff: libc::off_t,
    ) -> io::Result<Self> {
        let r = RingPtrs::map(fd, off, size, pgoff)?;
        // Acquire/Relaxed: nothing has been published yet; these are the
        // starting indices.
        let prod = r.producer().load(Ordering::Relaxed);
        let cons = r.consumer().load(Ordering::Acquire);
        Ok(ProdRing {
            cached_prod: prod,
            cached_cons: cons.wrapping_add(size),
            r,
            _t: PhantomData,
        })
    }

    pub fn size(&self) -> u32 {
        self.r.size
    }

    /// Room for `want` entries, or as many as fit.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return want;
        }
        // Acquire: the kernel has finished reading the entries it
        // released before we overwrite them.
        self.cached_cons = self
            .r
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.r.size);
        self.cached_cons.wrapping_sub(self.cached_prod).min(want)
    }

    /// Writes entries at the producer position; call `submit` to publish.
    /// The caller has checked `free` for `i + 1` entries.
    #[inline]
    pub fn write(&mut self, i: u32, v: T) {
        let slot = self.r.slot(self.cached_prod.wrapping_add(i));
        // SAFETY: the slot is in the free region [prod, cons+size): the
        // kernel does not read it until `submit` publishes it.
        unsafe { slot.write(v) }
    }

    /// Publishes `n` written entries.
    #[inline]
    pub fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        // Release: the descriptors written above are visible to the
        // kernel before the new producer index.
        self.r.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Reads back the entries published but not consumed, oldest first,
    /// and forgets them: for a socket the kernel no longer reads from
    /// (its XSKMAP entry gone), so the frames they name return to the
    /// pool instead of closing with the socket.
    pub fn take_back(&mut self, mut each: impl FnMut(T)) -> u32 {
        // Acquire: pairs with the kernel's release of what it consumed.
        let cons = self.r.consumer().load(Ordering::Acquire);
        let n = self.cached_prod.wrapping_sub(cons);
        for i in 0..n {
            let slot = self.r.slot(cons.wrapping_add(i));
            // SAFETY: [cons, prod) holds entries this side wrote and
            // published; the kernel has not consumed them and, with the
            // socket out of the map, will not, so reading cannot race a
            // kernel write (the kernel never writes a producer ring's
            // slots).
            each(unsafe { slot.read() });
        }
        n
    }

    /// Entries published but not yet consumed by the kernel.
    pub fn pending(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.r.consumer().load(Ordering::Acquire))
    }

    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        // Relaxed: a hint; a stale read costs one extra or one late syscall.
        self.r.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

/// A ring user space consumes from (RX, completion).
pub struct ConsRing<T: Copy> {
    r: RingPtrs<T>,
    cached_prod: u32,
    cached_cons: u32,
    _t: PhantomData<T>,
}

impl<T: Copy> ConsRing<T> {
    pub fn map(
        fd: &OwnedFd,
        off: &XdpRingOffset,
        size: u32,
        pgoff: libc::off_t,
    ) -> io::Result<Self> {
        let r = RingPtrs::map(fd, off, size, pgoff)?;
        let prod = r.producer().load(Ordering::Acquire);
        let cons = r.consumer().load(Ordering::Relaxed);
        Ok(ConsRing {
            cached_prod: prod,
            cached_cons: cons,
            r,
            _t: PhantomData,
        })
    }

    /// Entries ready to read, at most `want`.
    #[inline]
    pub fn available(&mut self, want: u32) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n < want {
            // Acquire: the kernel's descriptor writes are visible before
            // we read the entries its producer index covers.
            self.cached_prod = self.r.producer().load(Ordering::Acquire);
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        n.min(want)
    }

    /// Reads entry `i` past the consumer position; the caller has checked
    /// `available` for `i + 1` entries.
    #[inline]
    pub fn read(&self, i: u32) -> T {
        let slot = self.r.slot(self.cached_cons.wrapping_add(i));
        // SAFETY: the slot is in [cons, prod): published by the kernel and
        // not reused until `release` moves the consumer index past it.
        unsafe { slot.read() }
    }

    /// Gives `n` read entries back to the kernel.
    #[inline]
    pub fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        // Release: our reads of the entries happen before the kernel may
        // overwrite them.
        self.r.consumer().store(self.cached_cons, Ordering::Release);
    }
}
