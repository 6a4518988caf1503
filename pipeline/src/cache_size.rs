//! Thresholds that depend on the size of the core's L2 cache. Warming a
//! table's lines for a burst (a prefetch pass before the lookups) pays
//! only once the lines the burst can touch no longer fit in L2; below
//! that the pass is extra instructions for lines that are there already.
//! The thresholds were measured on a Xeon with a 2 MiB L2 and are scaled
//! to the L2 the engine finds (a Zen 2 core has 512 KiB): a quarter of
//! the cache either way.

/// The L2 the tables' warming thresholds were measured with.
pub const MEASURED_L2_BYTES: usize = 2 << 20;

/// `measured` (a count taken on a 2 MiB L2) for an L2 of `l2_bytes`.
pub fn scaled(measured: usize, l2_bytes: usize) -> usize {
    // At least one: a table of one entry never warms.
    ((measured as u128 * l2_bytes as u128 / MEASURED_L2_BYTES as u128) as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_follow_the_cache() {
        assert_eq!(scaled(8192, 2 << 20), 8192);
        assert_eq!(scaled(8192, 512 << 10), 2048);
        assert_eq!(scaled(4096, 1280 << 10), 2560);
        assert_eq!(scaled(4096, 0), 1);
    }
}
