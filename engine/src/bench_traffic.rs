//! Traffic that looks like a network, for `pollgate bench --macs N
//! --flows N`: each null port replays, from memory, frames between N
//! distinct MAC pairs and over N distinct 5-tuples, in a random order (a
//! fixed seed, so runs compare), so that MAC and flow lookups miss the
//! caches as they do on a real segment instead of hitting one entry.

use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use std::path::{Path, PathBuf};

/// Most frames one side replays: the larger of the two counts, at most
/// this (64 MiB of 64-byte frames).
pub const MAX_FRAMES: usize = 1 << 20;

/// Host `m` on side `side` (0: behind null0, 1: behind null1).
fn host_mac(side: u8, m: usize) -> MacAddr {
    let m = m as u32;
    MacAddr([
        2,
        0x10 | side,
        (m >> 24) as u8,
        (m >> 16) as u8,
        (m >> 8) as u8,
        m as u8,
    ])
}

/// xorshift64*: a fixed, fast permutation source, not cryptography.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One side's frames: from its host `i % macs` to the other side's host
/// of the same index, over flow `i % flows`, shuffled.
fn side_frames(side: u8, macs: usize, flows: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
    let n = macs.max(flows).min(MAX_FRAMES);
    let mut frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let (m, f) = (i % macs, i % flows);
            // 5-tuples: a source address in 198.18.0.0/16 (198.19.0.0/16
            // for the other side), then the source port, for more.
            let a = [198, 18 + side, (f >> 8) as u8, f as u8];
            let b = [198, 19 - side, 0, 1];
            let sport = 1024 + (f >> 16) as u16;
            udp4_frame(
                size,
                host_mac(side, m),
                host_mac(1 - side, m),
                a,
                b,
                sport,
                1025,
                b"pollgate",
            )
        })
        .collect();
    let mut rng = Rng(seed | 1);
    for i in (1..frames.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        frames.swap(i, j);
    }
    frames
}

/// The first VLAN `--vlans` spreads host pairs over.
pub const FIRST_VID: u16 = 10;

/// The segment, of `n`, of a frame's host pair: both sides' frames of a
/// pair name it alike (its index is the low four bytes of either MAC).
pub fn segment_of(f: &[u8], n: usize) -> usize {
    let m = f
        .get(8..12)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    m as usize % n.max(1)
}

/// `f` with an 802.1Q tag of `vid` after its MACs.
pub fn tagged(f: &[u8], vid: u16) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00, (vid >> 8) as u8, vid as u8]);
    t.extend_from_slice(&f[12..]);
    t
}

/// Writes both sides' captures into `dir`; returns their paths.
pub fn write(dir: &Path, macs: usize, flows: usize, size: usize) -> anyhow::Result<[PathBuf; 2]> {
    write_wrapped(dir, macs, flows, [size, size], [&|f| f, &|f| f])
}

/// As `write`, each side's frames `sizes[side]` bytes before `wrap[side]`
/// turns them into what that port receives (encapsulated, tagged…).
pub fn write_wrapped(
    dir: &Path,
    macs: usize,
    flows: usize,
    sizes: [usize; 2],
    wrap: [&dyn Fn(Vec<u8>) -> Vec<u8>; 2],
) -> anyhow::Result<[PathBuf; 2]> {
    let mut out = Vec::new();
    for side in 0..2u8 {
        let path = dir.join(format!("mix{side}.pcap"));
        let mut w = pollgate_pmd::pcap::PcapWriter::create(&path)?;
        let s = side as usize;
        for f in side_frames(side, macs, flows, sizes[s], 0x9e37_79b9 + side as u64) {
            w.write(&wrap[s](f))?;
        }
        w.flush()?;
        out.push(path);
    }
    Ok([out[0].clone(), out[1].clone()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_pair_is_in_one_segment_from_either_side() {
        let n = 7;
        let a = side_frames(0, 100, 1, 60, 3);
        let b = side_frames(1, 100, 1, 60, 4);
        let seg = |f: &Vec<u8>| {
            (
                u32::from_be_bytes(f[8..12].try_into().unwrap()),
                segment_of(f, n),
            )
        };
        let from_a: std::collections::HashMap<u32, usize> = a.iter().map(seg).collect();
        for f in &b {
            let (m, s) = seg(f);
            assert_eq!(from_a[&m], s, "pair {m}");
        }
        let used: std::collections::HashSet<usize> = from_a.values().copied().collect();
        assert_eq!(used.len(), n, "100 pairs cover all 7 segments");
        let t = tagged(&a[0], 4000);
        assert_eq!(&t[12..16], &[0x81, 0, 0x0f, 0xa0]);
        assert_eq!(&t[16..], &a[0][12..]);
    }

    #[test]
    fn every_pair_and_flow_appears_once_per_cycle_in_a_shuffled_order() {
        let f = side_frames(0, 1000, 10, 60, 7);
        assert_eq!(f.len(), 1000);
        let macs: std::collections::HashSet<[u8; 12]> =
            f.iter().map(|x| x[..12].try_into().unwrap()).collect();
        assert_eq!(macs.len(), 1000, "1000 distinct MAC pairs");
        let flows: std::collections::HashSet<&[u8]> = f.iter().map(|x| &x[26..36]).collect();
        assert_eq!(flows.len(), 10, "10 distinct 5-tuples");
        let in_order = f
            .windows(2)
            .filter(|w| w[0][11] as i32 + 1 == w[1][11] as i32)
            .count();
        assert!(in_order < 50, "shuffled: {in_order} neighbours in sequence");
        // The other side sends the replies: its source is this side's
        // destination.
        let g = side_frames(1, 1000, 10, 60, 8);
        let back: std::collections::HashSet<[u8; 6]> =
            g.iter().map(|x| x[6..12].try_into().unwrap()).collect();
        assert!(f
            .iter()
            .all(|x| back.contains(&<[u8; 6]>::try_from(&x[0..6]).unwrap())));
    }
}
