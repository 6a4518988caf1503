//! Parse stage throughput over full batches of 64-byte UDP frames, plain
//! and QinQ-tagged IPv6. Criterion reports packets per second (elements).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, DropCounters, Parse, Stage, BATCH_SIZE};
use std::hint::black_box;

fn batch_of(frame: &[u8]) -> (Vec<u8>, Batch) {
    let mut mem = Vec::new();
    let mut b = Batch::new();
    for _ in 0..BATCH_SIZE {
        let addr = mem.len() as u64;
        mem.extend_from_slice(frame);
        mem.resize(mem.len().next_multiple_of(128), 0);
        b.push(addr, frame.len() as u32, 0, 0);
    }
    (mem, b)
}

fn qinq_ipv6() -> Vec<u8> {
    let mut f = vec![
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xa8, 0x20, 0x64, 0x81, 0x00, 0x40, 0x0a, 0x86,
        0xdd,
    ];
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, 17, 64]);
    f.extend_from_slice(&[0x20; 32]);
    f.extend_from_slice(&[0x04, 0x00, 0x04, 0x01, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    f
}

fn bench(c: &mut Criterion) {
    let v4 = udp4_frame(
        60,
        MacAddr([2, 0, 0, 0, 0, 1]),
        MacAddr([2, 0, 0, 0, 0, 2]),
        [198, 18, 0, 1],
        [198, 19, 0, 1],
        1024,
        1025,
        b"",
    );
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    for (name, frame) in [("ipv4_udp_64B", v4), ("qinq_ipv6_udp", qinq_ipv6())] {
        let (mut mem, batch) = batch_of(&frame);
        let mut drops = DropCounters::default();
        g.bench_function(name, |bch| {
            bch.iter(|| {
                let mut b = batch.clone();
                Parse.process(&mut b, &mut mem, &mut drops);
                black_box(&b);
            })
        });
        assert_eq!(drops.total(), 0);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
