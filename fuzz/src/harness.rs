//! The fuzz targets' bodies, shared by the libFuzzer binaries
//! (`fuzz_targets/`) and the stable corpus replay
//! (`engine/tests/fuzz_corpus.rs`). Each must never panic, whatever the
//! input; where the code promises more (frames stay inside their frame,
//! config errors name the file), the harness checks that too.

use pollgate::build::{acls_for, routes_for, switch_for, vtep_for, worker_pipeline};
use pollgate::config::{self, Topology};
use pollgate_pipeline::{Batch, DropCounters, Parse, Stage, Verdict, BATCH_SIZE};
use std::sync::OnceLock;

const GATEWAY: &str = include_str!("../gateway.toml");
const FRAME: usize = 2048;
const HEADROOM: usize = 256;

/// One frame, through the parser and the parse stage; and as a
/// multi-buffer frame's first segment, cut after every length: the head
/// parser never panics, and once the head holds every header it can
/// read (the L4 header's offset plus the longest TCP header), it agrees
/// with the parser that saw the whole frame.
pub fn parse(data: &[u8]) {
    let whole = pollgate_pipeline::parse_frame(data);
    // Headers end within a few hundred bytes: cuts past that add nothing.
    for cut in (0..=data.len().min(640)).chain([data.len()]) {
        let head = pollgate_pipeline::parse::parse_frame_in(&data[..cut], data.len());
        if let Ok(p) = whole {
            let l4 = p.flags & pollgate_pipeline::batch::flags::L4 != 0;
            if l4 && cut >= (p.l4_off as usize + 60).min(data.len()) {
                assert_eq!(head, whole, "head of {cut} bytes");
            }
        }
    }
    let mut mem = vec![0u8; HEADROOM];
    mem.extend_from_slice(data);
    let mut b = Batch::new();
    b.push(HEADROOM as u64, data.len() as u32, HEADROOM as u16, 0);
    let mut drops = DropCounters::default();
    Parse.process(&mut b, &mut mem, &mut drops);
}

fn gateway() -> &'static Topology {
    static TOPO: OnceLock<Topology> = OnceLock::new();
    TOPO.get_or_init(|| config::parse("gateway.toml", GATEWAY).expect("fuzz/gateway.toml is valid"))
}

/// Frames for the pipeline: records of `[in_port][len lo][len hi][bytes]`,
/// up to a batch of them; a short tail is one more frame. The in-port
/// byte's upper bits give some frames a multi-buffer tail (bytes in
/// chained frames the stages never read, up to 7 KiB).
fn frames(data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 && out.len() < BATCH_SIZE {
        let port = rest[0] as u16 % 7;
        let tail = if rest[0] & 0x80 != 0 {
            (rest[0] as u32 >> 2 & 0x1f) * 231
        } else {
            0
        };
        let len = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(FRAME - HEADROOM);
        let body = &rest[3..];
        let take = len.min(body.len());
        out.push((port, tail, &body[..take]));
        rest = &body[take..];
    }
    out
}

/// Batches through the whole pipeline of `fuzz/gateway.toml` (VLAN,
/// QinQ, VXLAN, ACLs, router, bridge), twice over (the second pass sees what the
/// first learned). Every packet gets a verdict, and a packet kept stays
/// inside its frame, after its headroom is used for pushed headers.
pub fn pipeline(data: &[u8]) {
    let topo = gateway();
    let switch = switch_for(
        topo,
        &pollgate::build::mac_table_for(topo),
        &std::sync::Arc::new(pollgate_pipeline::arp_suppress::ArpCache::new(1024)),
    );
    let vtep = vtep_for(topo);
    let acls = acls_for(topo).expect("the gateway's ACLs compile");
    // The route table (its tries are 128 MiB) is made once: what the
    // router learns from one input (neighbours) the next ones see.
    static ROUTES: OnceLock<pollgate_pipeline::l3::RouteTable> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        routes_for(topo)
            .expect("the gateway's routes install")
            .expect("the gateway has a router")
    });
    let (mut p, _) = worker_pipeline(topo, switch.as_ref(), vtep.as_ref(), &acls, Some(routes), 0);
    let input = frames(data);
    for _pass in 0..2 {
        let mut mem = vec![0u8; FRAME * BATCH_SIZE];
        let mut b = Batch::new();
        for (i, (port, tail, f)) in input.iter().enumerate() {
            let at = i * FRAME + HEADROOM;
            mem[at..at + f.len()].copy_from_slice(f);
            b.push(at as u64, f.len() as u32, HEADROOM as u16, *port);
            b.tail_len[i] = *tail;
        }
        let mut drops = DropCounters::default();
        p.run(&mut b, &mut mem, &mut drops);
        let tails: Vec<u32> = input.iter().map(|f| f.1).collect();
        assert_eq!(&b.tail_len[..b.len()], &tails[..], "tails are carried");
        for i in 0..b.len() {
            assert!(
                b.verdict[i] != Verdict::Pending,
                "packet {i} left without a verdict"
            );
            if matches!(b.verdict[i], Verdict::Drop(_)) {
                continue;
            }
            let frame = (b.addr[i] as usize / FRAME) * FRAME;
            let end = b.addr[i] as usize + b.data_len[i] as usize;
            assert!(
                frame == i * FRAME && end <= frame + FRAME,
                "packet {i} left its frame: addr {} len {}",
                b.addr[i],
                b.data_len[i]
            );
        }
    }
}

/// Any text as a config file: an error, or a topology; an error names
/// the file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = config::parse("fuzz.toml", text) {
        let msg = e.to_string();
        assert!(
            msg.starts_with("fuzz.toml"),
            "error without the file name: {msg}"
        );
    }
}

fn ctl_state() -> &'static pollgate::ctl::CtlState {
    // The engine lives as long as the fuzzing process, beside its state.
    static ENGINE: OnceLock<(pollgate::Engine, pollgate::ctl::CtlState)> = OnceLock::new();
    &ENGINE
        .get_or_init(|| {
            // The gateway on pcap ports that receive nothing: the workers
            // idle, and every table the control socket shows exists.
            let text = GATEWAY
                .replace("kind = \"null\"", "kind = \"pcap\"\ntx = \"/dev/null\"")
                .replace("[engine]", "[engine]\nidle = \"backoff\"");
            let topo = config::parse("gateway.toml", &text).expect("valid");
            let engine = pollgate::Engine::start(&topo).expect("the engine starts on pcap ports");
            let state = engine.ctl_state(&topo);
            (engine, state)
        })
        .1
}

/// Request lines to the control socket's handler: an answer or an error,
/// never a panic. `capture` is left out: it writes the file it is given
/// and waits up to a minute; so are the verbs that change the topology
/// (`port`, `bridge`, `vxlan`): a lucky input would create namespaces
/// and devices on the fuzzing machine. Their parsing has unit tests
/// (engine/src/topology_ctl.rs) and the engine's tests apply them.
pub fn ctl(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let state = ctl_state();
    for line in text.lines().take(16) {
        if matches!(
            line.split_whitespace().next(),
            Some("capture" | "port" | "bridge" | "vxlan")
        ) {
            continue;
        }
        let _ = state.handle(line);
    }
}
