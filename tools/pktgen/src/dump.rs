//! Writes the generator's frames to a pcap file: the template table (what
//! the TRex profile must equal), or the first frames in the order sent
//! (what pktgen-DPDK replays).

use crate::frame;
use crate::spec::Spec;
use pollgate_pmd::pcap::PcapWriter;
use std::path::Path;

/// Every template, size-major then flow: for each size of the spec,
/// flows 0..N, each with a zero stamp.
pub fn templates(spec: &Spec) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for size in spec.sizes() {
        for flow in 0..spec.flows {
            out.push(frame::build(spec, flow, size).bytes);
        }
    }
    out
}

/// The first `n` frames the generator sends, in order, with zero stamps.
pub fn sequence(spec: &Spec, n: u64) -> Vec<Vec<u8>> {
    let cycle = spec.size_cycle();
    (0..n)
        .map(|k| {
            let size = cycle[(k % cycle.len() as u64) as usize];
            frame::build(spec, (k % spec.flows as u64) as u32, size).bytes
        })
        .collect()
}

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let mut w = PcapWriter::create(path)?;
    for (i, f) in frames.iter().enumerate() {
        w.write_at(i as u64 * 1000, f)?;
    }
    Ok(())
}
