//! See `src/harness.rs`: the fuzz targets' bodies.
