//! MAC table lookups per second per core at 1 K, 64 K and 1 M entries:
//! a batch of 64 lookups of known MACs spread over the whole table, so at
//! 1 M entries most of them miss the CPU caches as real traffic would.
//! And 1 K and 64 K entries in a table made for the default limit of
//! 1 M entries, at that size ("sized_for_limit", as before it grew) and
//! grown to hold them ("grown"): the engine's table is the second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::wire::MacAddr;
use std::hint::black_box;

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([2, 0x50, b[0], b[1], b[2], b[3]])
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mac_lookup");
    g.throughput(Throughput::Elements(64));
    let tables = [1_000u32, 64_000, 1_000_000]
        .map(|n| (n, format!("{n}_entries"), MacTable::new(n as usize)));
    let limit = 1 << 20;
    let default_limit = [1_000u32, 64_000].into_iter().flat_map(|n| {
        [
            (
                n,
                format!("{n}_entries_sized_for_limit"),
                MacTable::new(limit),
            ),
            (n, format!("{n}_entries_grown"), MacTable::growable(limit)),
        ]
    });
    for (n, name, t) in tables.into_iter().chain(default_limit) {
        for i in 0..n {
            t.learn((i % 4) as u16, mac(i), (i % 8) as u16, 0);
            if i % 256 == 0 {
                t.grow_if_needed();
            }
        }
        while t.grow_if_needed() {}
        assert_eq!(t.len(), n as usize);
        // A fixed pseudo-random walk over all the entries.
        let keys: Vec<(u16, MacAddr)> = (0..n.max(65_536))
            .map(|k| k.wrapping_mul(2_654_435_761) % n)
            .map(|i| ((i % 4) as u16, mac(i)))
            .collect();
        let mut at = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut hits = 0u32;
                for (d, m) in &keys[at..at + 64] {
                    hits += t.lookup(*d, *m).is_some() as u32;
                }
                at = (at + 64) % (keys.len() - 64);
                black_box(hits)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
