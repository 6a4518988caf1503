//! The cross-connect on in-memory null ports: RX burst from one port
//! (template copy into pool frames), pipeline, TX burst to the other (frames
//! back to the pool) — the inner loop of `pollgate bench`, without threads.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pollgate::build::null_template;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, CrossConnect, DropCounters, ForwardMode, Pipeline, Verdict};
use pollgate_pmd::{FramePool, NullPort, PoolConfig, Port, TxDesc};

const BURST: usize = 32;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("xconnect");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, mode, parse) in [
        ("io", ForwardMode::Io, false),
        ("mac", ForwardMode::Mac, false),
        ("io_parse", ForwardMode::Io, true),
    ] {
        let mut pool = FramePool::new(PoolConfig {
            hugepages: false,
            ..PoolConfig::default()
        })
        .unwrap();
        let t = null_template(60, MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let mut rx = NullPort::new("null0", t);
        let mut tx = NullPort::new("null1", Vec::new());
        let mut xc = CrossConnect::new(mode, 2);
        xc.connect(0, 1);
        let mut pipeline = Pipeline::new(parse, xc);
        let mut batch = Batch::new();
        let mut drops = DropCounters::default();
        let mut descs = [TxDesc::default(); BURST];
        g.bench_function(name, |b| {
            b.iter(|| {
                batch.clear();
                let n = rx.rx_burst(&mut pool, &mut batch, 0, BURST);
                pipeline.run(&mut batch, &mut pool, &mut drops);
                let mut k = 0;
                for i in 0..n {
                    if let Verdict::Forward(_) = batch.verdict[i] {
                        descs[k] = TxDesc::new(batch.addr[i], batch.data_len[i]);
                        k += 1;
                    }
                }
                tx.tx_burst(&mut pool, &descs[..k]);
            })
        });
        assert_eq!(pool.available(), pool.total() as usize);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
