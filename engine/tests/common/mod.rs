//! Helpers the engine's test files share.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use pollgate_pmd::pcap::{PcapReader, PcapWriter};
use std::path::Path;

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::create(path).unwrap();
    for f in frames {
        w.write(f).unwrap();
    }
    w.flush().unwrap();
}

/// Every frame of a capture; none if the file was never written.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(mut r) = PcapReader::open(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec.data);
    }
    out
}
