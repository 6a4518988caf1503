#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../src/harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::pipeline(data));
