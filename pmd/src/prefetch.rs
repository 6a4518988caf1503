//! Software prefetch: the one hint the pipeline's batched table lookups
//! and the null port's replay need that stable Rust offers only through
//! `unsafe`, which lives in this crate.

/// A software prefetch into all cache levels. A plain load would fetch
/// the same line, but the core does not retire it, nor anything after
/// it, until the line arrives, so a burst's loads fill the window and
/// stall it; a prefetch does not wait for its line (README, Performance,
/// has the figures).
#[inline(always)]
pub fn prefetch(line: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults, whatever the address
    // (unmapped or not ours), and changes no memory or register; SSE,
    // which it needs, is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// Frame memory with no frames, only the prefetch: for a tool that looks
/// a pipeline table up outside a pipeline (`pollgate fib bench`), whose
/// batched lookups prefetch through the frame memory they are given.
pub struct Prefetcher;

impl pollgate_pipeline::FrameMemory for Prefetcher {
    fn bytes(&self, _: u64, _: u32) -> Option<&[u8]> {
        None
    }
    fn bytes_mut(&mut self, _: u64, _: u32) -> Option<&mut [u8]> {
        None
    }
    #[inline(always)]
    fn prefetch(&self, line: *const u8) {
        prefetch(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefetch_of_an_unmapped_address_does_not_fault() {
        // What `prefetch`'s SAFETY comment relies on, tried where a load
        // would take a SIGSEGV: this test passes by not crashing.
        for a in [0usize, 0x1000, usize::MAX - 63] {
            prefetch(a as *const u8);
        }
    }
}
