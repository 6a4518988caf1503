//! The switch path on in-memory frames: parse → VLAN ingress (strip a
//! trunk tag) → bridge (learn + lookup in a table of 100 000 MACs) →
//! VLAN egress (push a tag). Packets per second per core.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pollgate_pipeline::bridge::{Bridge, Domain};
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::storm::StormControl;
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::vlan::{EgressTag, PortVlan, VlanMap, VlanMode};
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{
    Batch, CrossConnect, DropCounters, ForwardMode, FrameMemory, Pipeline, Verdict, BATCH_SIZE,
};
use std::sync::Arc;

/// Frames in a byte vector, with the prefetch the engine's frame pool
/// lends the pipeline: without it, the bridge's warm pass over a large
/// table would touch nothing here.
struct Prefetching(Vec<u8>);

impl FrameMemory for Prefetching {
    fn bytes(&self, addr: u64, len: u32) -> Option<&[u8]> {
        self.0.bytes(addr, len)
    }

    fn bytes_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        self.0.bytes_mut(addr, len)
    }

    fn prefetch(&self, line: *const u8) {
        pollgate_pmd::prefetch::prefetch(line)
    }
}

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([2, 0x50, b[0], b[1], b[2], b[3]])
}

fn bench(c: &mut Criterion) {
    // Port 0: trunk, VID 10 -> domain 0. Port 1: access in domain 0.
    let mut vlan = VlanMap::new(2, 1);
    let mut t = PortVlan::new(VlanMode::Trunk, 0x8100);
    t.map_vid(10, 0);
    vlan.set_port(0, t);
    let mut a = PortVlan::new(VlanMode::Access, 0x8100);
    a.untagged = 0;
    vlan.set_port(1, a);
    vlan.set_egress(
        0,
        0,
        EgressTag::Push {
            tpid: 0x8100,
            vid: 10,
        },
    );
    vlan.set_egress(0, 1, EgressTag::Untagged);
    let table = Arc::new(MacTable::new(1 << 20));
    for i in 0..100_000 {
        table.learn(0, mac(i), (i % 2) as u16, 0);
    }
    let bridge = Bridge::new(
        vec![Domain::learning("red", vec![0, 1])],
        table,
        vec![StormControl::unlimited(); 2],
    );
    let mut pipeline = Pipeline::new(true, CrossConnect::new(ForwardMode::Io, 2))
        .with_bridge(Arc::new(vlan), bridge);

    // 64 tagged frames from port 0, each to a different known MAC on port 1.
    let headroom = 64usize;
    let mut mem = Vec::new();
    let mut batch = Batch::new();
    for k in 0..BATCH_SIZE as u32 {
        let mut f = udp4_frame(
            60,
            mac(2 * k),
            mac(2 * k + 1),
            [198, 18, 0, 1],
            [198, 19, 0, 1],
            1024,
            1025,
            b"",
        );
        f.splice(12..12, [0x81, 0x00, 0xa0, 0x0a]);
        let base = mem.len();
        mem.resize(base + headroom, 0);
        mem.extend_from_slice(&f);
        mem.resize(base + 256, 0);
        batch.push((base + headroom) as u64, f.len() as u32, headroom as u16, 0);
    }
    let pristine = (mem.clone(), batch.clone());
    let mut drops = DropCounters::default();
    let mut g = c.benchmark_group("bridge");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    // The stage strips tags in place, so every run first restores the
    // tagged frames (a 16 KiB copy, in cache); `restore_only` measures
    // that copy alone, to subtract.
    g.bench_function("restore_only", |b| {
        b.iter(|| {
            mem.copy_from_slice(&pristine.0);
            batch.clone_from(&pristine.1);
            std::hint::black_box((&mem, &batch));
        })
    });
    g.bench_function("trunk_to_access_known_unicast", |b| {
        b.iter(|| {
            mem.copy_from_slice(&pristine.0);
            batch.clone_from(&pristine.1);
            pipeline.run(&mut batch, &mut mem, &mut drops);
        })
    });

    // A table of 1 M MACs and batches whose addresses are spread over all
    // of it, untagged between two access ports (frames are not modified,
    // so no restore is needed): most lookups miss the caches, as with
    // real traffic of many hosts.
    let mut vlan = VlanMap::new(2, 1);
    for p in 0..2u16 {
        let mut a = PortVlan::new(VlanMode::Access, 0x8100);
        a.untagged = 0;
        vlan.set_port(p, a);
        vlan.set_egress(0, p, EgressTag::Untagged);
    }
    let vlan = Arc::new(vlan);
    let big = Arc::new(MacTable::new(1 << 20));
    let n = 1_000_000u32;
    for i in 0..n {
        big.learn(0, mac(i), (i % 2) as u16, 0);
    }
    let batches = 512u32;
    let mut bmem = Prefetching(Vec::new());
    let mut bbatches = Vec::new();
    for j in 0..batches {
        let mut b = Batch::new();
        for k in 0..BATCH_SIZE as u32 {
            let r = (j * 64 + k).wrapping_mul(2_654_435_761) % (n / 2);
            // Sources on port 0 (even), destinations on port 1 (odd).
            let f = udp4_frame(
                60,
                mac(2 * r),
                mac(2 * ((r * 7 + 13) % (n / 2)) + 1),
                [198, 18, 0, 1],
                [198, 19, 0, 1],
                1024,
                1025,
                b"",
            );
            let base = bmem.0.len();
            bmem.0.resize(base + 64, 0);
            bmem.0.extend_from_slice(&f);
            bmem.0.resize(base + 128, 0);
            b.push((base + 64) as u64, f.len() as u32, 64, 0);
        }
        bbatches.push(b);
    }
    let bridge = Bridge::new(
        vec![Domain::learning("big", vec![0, 1])],
        big.clone(),
        vec![StormControl::unlimited(); 2],
    );
    // Its own name: the check at the end is of the first pipeline.
    let mut big_pipeline = Pipeline::new(true, CrossConnect::new(ForwardMode::Io, 2))
        .with_bridge(vlan.clone(), bridge);
    let mut j = 0usize;
    let mut b = Batch::new();
    g.bench_function("access_1m_macs", |bench| {
        bench.iter(|| {
            b.clone_from(&bbatches[j]);
            j = (j + 1) % bbatches.len();
            big_pipeline.run(&mut b, &mut bmem, &mut drops);
        })
    });
    assert!(
        (0..BATCH_SIZE).all(|i| b.verdict[i] == Verdict::Forward(1)),
        "{:?}",
        &b.verdict[..4]
    );
    g.finish();
    let (mut m, mut b) = pristine.clone();
    pipeline.run(&mut b, &mut m, &mut drops);
    assert!((0..BATCH_SIZE).all(|i| b.verdict[i] == Verdict::Forward(1)));
    assert_eq!(drops.total(), 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
