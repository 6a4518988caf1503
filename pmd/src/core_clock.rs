//! The core's clock as it runs, measured rather than read: cycles per
//! packet are ns per packet times this. `/proc/cpuinfo`'s "cpu MHz" is
//! what the hypervisor or the base clock says, not what a boosting core
//! does under load, and hardware cycle counters are not offered in these
//! VMs (`perf` has only `cpu-clock`). A chain of dependent register-to-
//! register adds takes one cycle each on every x86-64 core of the last
//! fifteen years (Intel since Nehalem, AMD since K8, Zen included), so
//! their count over a wall-clock interval is the clock. Register
//! operands, not immediates: Intel's Golden Cove and later can fold an
//! add of a small immediate at rename, which would read high. The chain
//! needs assembly: a compiler folds any chain of adds written in Rust
//! into one.
//!
//! Peers count cycles with rdtsc (rte_fib, OVS's pmd-stats), whose rate
//! is neither: [`measure_tsc_mhz`] times it, so their figures can be put
//! in the same unit.

use std::time::{Duration, Instant};

/// Adds per pass of the loop: enough that the loop's own decrement and
/// branch, which run beside the chain, never lengthen it.
#[cfg(target_arch = "x86_64")]
const ADDS_PER_PASS: u64 = 16;

/// Runs `passes` passes of [`ADDS_PER_PASS`] dependent adds.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn add_chain(passes: u64) {
    if passes == 0 {
        return;
    }
    // SAFETY: the block only adds to and counts down two registers it
    // owns (`acc`, `n`), reads a third (`one`), touches no memory and no
    // stack, and leaves the flags clobbered, which `asm!` assumes unless
    // told otherwise.
    unsafe {
        std::arch::asm!(
            "2:",
            "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}",
            "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}",
            "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}",
            "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}", "add {acc}, {one}",
            "dec {n}",
            "jnz 2b",
            acc = inout(reg) 0u64 => _,
            n = inout(reg) passes => _,
            one = in(reg) 1u64,
            options(nomem, nostack),
        );
    }
}

/// The clock of the core this thread runs on, in MHz: the best of a few
/// intervals of about `window` each (an interval the thread was
/// descheduled in only reads low). `None` off x86-64.
pub fn measure_mhz(window: Duration) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        // Calibrate a pass count that fills the window at 5 GHz or less.
        let passes = (window.as_secs_f64() * 5e9 / ADDS_PER_PASS as f64).max(1000.0) as u64;
        add_chain(passes / 10); // wake the core up from any idle clock
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            add_chain(passes);
            let secs = t.elapsed().as_secs_f64();
            if secs > 0.0 {
                best = best.max((passes * ADDS_PER_PASS) as f64 / secs / 1e6);
            }
        }
        (best > 0.0).then_some(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = window;
        None
    }
}

/// The rate rdtsc counts at, in MHz, timed over about `window` of
/// wall clock. `None` off x86-64.
pub fn measure_tsc_mhz(window: Duration) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let t = Instant::now();
        let c0 = tsc();
        while t.elapsed() < window {
            std::hint::spin_loop();
        }
        let (c1, secs) = (tsc(), t.elapsed().as_secs_f64());
        (secs > 0.0 && c1 > c0).then(|| (c1 - c0) as f64 / secs / 1e6)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = window;
        None
    }
}

#[cfg(target_arch = "x86_64")]
fn tsc() -> u64 {
    // SAFETY: RDTSC reads a counter; it writes no memory and is in every
    // x86-64 CPU.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_clock_is_a_plausible_one() {
        let Some(mhz) = measure_mhz(Duration::from_millis(20)) else {
            return;
        };
        // Any x86-64 core running this: between 400 MHz (a throttled
        // laptop) and 7 GHz. A chain the compiler had folded, or an
        // interval wrongly timed, lands far outside.
        assert!((400.0..7000.0).contains(&mhz), "{mhz} MHz");
        let tsc = measure_tsc_mhz(Duration::from_millis(20)).unwrap();
        assert!((400.0..7000.0).contains(&tsc), "TSC at {tsc} MHz");
    }
}
