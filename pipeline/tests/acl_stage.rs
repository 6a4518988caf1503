//! The ACL stage over real frames: verdicts and counters, reflexive
//! permits, and rule sets replaced while batches run.

use pollgate_pipeline::acl::{
    AclAttachments, AclHandle, AclSet, AclStage, Action, FlowTable, FlowTimeouts, Rule,
};
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, DropCounters, DropReason, Parse, Stage, Verdict};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const A: [u8; 4] = [198, 18, 0, 1];
const B: [u8; 4] = [198, 19, 0, 1];

/// (ingress port, source, destination, source port, destination port)
type Flow = (u16, [u8; 4], [u8; 4], u16, u16);

fn rules(text: &[&str]) -> Vec<Rule> {
    text.iter()
        .map(|t| Rule::parse_text(t, &|_, _| None).unwrap())
        .collect()
}

/// Frames in a byte vector, one per 2 KiB slot, loaded into a batch.
fn load(batch: &mut Batch, mem: &mut Vec<u8>, frames: &[Flow]) {
    batch.clear();
    mem.clear();
    for (i, &(port, src, dst, sport, dport)) in frames.iter().enumerate() {
        let f = udp4_frame(
            64,
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            src,
            dst,
            sport,
            dport,
            &[],
        );
        let addr = (i * 2048) as u64;
        mem.resize(i * 2048 + 2048, 0);
        mem[i * 2048..i * 2048 + f.len()].copy_from_slice(&f);
        assert!(batch.push(addr, f.len() as u32, 0, port));
    }
}

/// The ACL stage with the worker's flow table it is run with.
struct Tested {
    acl: AclStage,
    flows: FlowTable,
}

impl Tested {
    fn set_clock(&mut self, now: u64) {
        self.acl.set_clock(now);
    }

    fn flow_stats(&self) -> pollgate_pipeline::conntrack::FlowStats {
        self.flows.stats
    }
}

fn stage(handles: &[Arc<AclHandle>], port_in: Vec<Option<usize>>) -> Tested {
    let at = AclAttachments {
        port_in,
        ..Default::default()
    };
    Tested {
        acl: AclStage::new(handles, at, 0),
        flows: FlowTable::new(1024, FlowTimeouts::default()),
    }
}

fn run(st: &mut Tested, batch: &mut Batch, mem: &mut Vec<u8>, drops: &mut DropCounters) {
    Parse.process(batch, mem, drops);
    st.acl.ingress(batch, mem, drops, &mut st.flows);
}

#[test]
fn denies_are_counted_and_hits_recorded() {
    let set = AclSet::compile(
        "in",
        rules(&["deny proto=udp dport=53", "permit src=198.18.0.0/15"]),
        Action::Deny,
        1,
    )
    .unwrap();
    let h = AclHandle::new(set);
    let mut st = stage(std::slice::from_ref(&h), vec![Some(0), None]);
    let (mut batch, mut mem, mut drops) = (Batch::new(), Vec::new(), DropCounters::default());
    load(
        &mut batch,
        &mut mem,
        &[
            (0, A, B, 1000, 53),
            (0, A, B, 1000, 80),
            (0, [203, 0, 113, 1], B, 1000, 80),
            (1, [203, 0, 113, 1], B, 1000, 53),
        ],
    );
    run(&mut st, &mut batch, &mut mem, &mut drops);
    let v: Vec<_> = (0..4).map(|i| batch.verdict[i]).collect();
    let deny = Verdict::Drop(DropReason::AclDeny);
    // Port 1 has no ACL: its packet is untouched.
    assert_eq!(v, [deny, Verdict::Pending, deny, Verdict::Pending]);
    assert_eq!(drops.get(DropReason::AclDeny), 2);
    let set = h.load();
    assert_eq!(set.hits(0), (1, 64));
    assert_eq!(set.hits(1), (1, 64));
    assert_eq!(set.hits(2), (1, 64), "the default action counts too");
}

#[test]
fn stateful_permit_lets_replies_back_in() {
    let out = AclHandle::new(
        AclSet::compile(
            "out",
            rules(&["permit proto=udp dport=53 stateful"]),
            Action::Deny,
            1,
        )
        .unwrap(),
    );
    let back = AclHandle::new(AclSet::compile("back", vec![], Action::Deny, 1).unwrap());
    let mut st = stage(&[out, back], vec![Some(0), Some(1)]);
    let (mut batch, mut mem, mut drops) = (Batch::new(), Vec::new(), DropCounters::default());
    st.set_clock(1_000_000_000);
    // A reply before any query is denied; after the query it passes; a
    // reply from another port number does not.
    load(&mut batch, &mut mem, &[(1, B, A, 53, 4000)]);
    run(&mut st, &mut batch, &mut mem, &mut drops);
    assert_eq!(batch.verdict[0], Verdict::Drop(DropReason::AclDeny));
    load(
        &mut batch,
        &mut mem,
        &[
            (0, A, B, 4000, 53),
            (1, B, A, 53, 4000),
            (1, B, A, 54, 4000),
        ],
    );
    run(&mut st, &mut batch, &mut mem, &mut drops);
    assert_eq!(batch.verdict[0], Verdict::Pending);
    assert_eq!(batch.verdict[1], Verdict::Pending);
    assert_eq!(batch.verdict[2], Verdict::Drop(DropReason::AclDeny));
    assert_eq!(st.flow_stats().reflexive_permits, 1);
    // Past the UDP idle timeout the reply is denied again.
    st.set_clock(1_000_000_000 + FlowTimeouts::default().udp + 1);
    load(&mut batch, &mut mem, &[(1, B, A, 53, 4000)]);
    run(&mut st, &mut batch, &mut mem, &mut drops);
    assert_eq!(batch.verdict[0], Verdict::Drop(DropReason::AclDeny));
}

/// A control thread swaps between two rule sets as fast as it can while a
/// worker runs batches. Every batch must be judged wholly by one set: no
/// packet passes that neither set permits, and no batch mixes the two.
#[test]
fn live_updates_never_mix_rule_sets() {
    let old = || AclSet::compile("x", rules(&["permit dport=0-999"]), Action::Deny, 1).unwrap();
    let new = || AclSet::compile("x", rules(&["permit dport=500-1499"]), Action::Deny, 1).unwrap();
    let h = AclHandle::new(old());
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (h, stop) = (h.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) && swaps < 5_000 {
                h.replace(if swaps.is_multiple_of(2) {
                    new()
                } else {
                    old()
                });
                swaps += 1;
            }
            swaps
        })
    };
    let mut st = stage(&[h], vec![Some(0)]);
    let (mut batch, mut mem, mut drops) = (Batch::new(), Vec::new(), DropCounters::default());
    // 64 packets with dports 0, 25, …, 1575: each set's verdicts differ.
    let frames: Vec<_> = (0..64u16).map(|i| (0, A, B, 1000, i * 25)).collect();
    let (mut saw_old, mut saw_new) = (0, 0);
    let started = std::time::Instant::now();
    for _ in 0..5_000 {
        load(&mut batch, &mut mem, &frames);
        run(&mut st, &mut batch, &mut mem, &mut drops);
        let passed: Vec<bool> = (0..64)
            .map(|i| batch.verdict[i] == Verdict::Pending)
            .collect();
        let by_old: Vec<bool> = frames.iter().map(|f| f.4 < 1000).collect();
        let by_new: Vec<bool> = frames.iter().map(|f| (500..1500).contains(&f.4)).collect();
        if passed == by_old {
            saw_old += 1;
        } else if passed == by_new {
            saw_new += 1;
        } else {
            panic!("a batch judged by neither set alone: {passed:?}");
        }
        if started.elapsed().as_secs() > 20 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 0);
    eprintln!("{swaps} swaps; batches judged by the old set {saw_old}, by the new {saw_new}");
}
