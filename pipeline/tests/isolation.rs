//! Isolation under attack-shaped traffic: an ACL is not bypassed by
//! fragments, IPv6 extension headers or tunnelling, and a MAC flood does
//! not evict learned entries or turn known unicast into floods.

use pollgate_pipeline::acl::{
    AclAttachments, AclHandle, AclSet, AclStage, Action, FlowTable, FlowTimeouts, Rule,
};
use pollgate_pipeline::bridge::{Bridge, Domain};
use pollgate_pipeline::mac_table::MacTable;
use pollgate_pipeline::storm::StormControl;
use pollgate_pipeline::template::{udp4_frame, vxlan_frame};
use pollgate_pipeline::vxlan::{Decap, Vtep, VtepConfig};
use pollgate_pipeline::wire::ipv4::checksum;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, DropCounters, DropReason, Parse, Stage, Verdict};
use std::sync::Arc;

const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// An Ethernet/IPv4 TCP packet to port `dport`, with fragment fields
/// `frag` (flags and offset word) and `l4` bytes of TCP header+payload.
fn ipv4_tcp(dport: u16, frag: u16, l4_len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&B.0);
    f.extend_from_slice(&A.0);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4_len) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 7]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let mut tcp = vec![0u8; l4_len];
    if l4_len >= 4 {
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    }
    if l4_len >= 13 {
        tcp[12] = 0x50;
    }
    f.extend_from_slice(&tcp);
    f.resize(f.len().max(60), 0);
    f
}

/// IPv6 TCP to `dport` behind hop-by-hop, routing and destination
/// options headers.
fn ipv6_tcp_behind_ext_headers(dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&B.0);
    f.extend_from_slice(&A.0);
    f.extend_from_slice(&[0x86, 0xdd]);
    let mut payload = Vec::new();
    payload.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop → routing
    payload.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]); // routing (type 0, 0 left) → dest opts
    payload.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // dest opts → TCP
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 0x50;
    payload.extend_from_slice(&tcp);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 64]); // next header: hop-by-hop
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut dst = src;
    src[15] = 1;
    dst[15] = 2;
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&payload);
    f
}

fn deny_telnet() -> AclStage {
    let rules = ["deny proto=tcp dport=23"]
        .iter()
        .map(|t| Rule::parse_text(t, &|_, _| None).unwrap())
        .collect();
    let h = AclHandle::new(AclSet::compile("guard", rules, Action::Permit, 1).unwrap());
    let at = AclAttachments {
        port_in: vec![Some(0); 4],
        domain_in: vec![Some(0)],
        ..Default::default()
    };
    AclStage::new(&[h], at, 0)
}

fn verdict(frame: &[u8], in_port: u16, vtep: Option<&Vtep>) -> (Verdict, DropCounters) {
    let mut mem = vec![0u8; 128];
    mem.extend_from_slice(frame);
    let mut b = Batch::new();
    b.push(128, frame.len() as u32, 128, in_port);
    let mut drops = DropCounters::default();
    Parse.process(&mut b, &mut mem, &mut drops);
    if let Some(v) = vtep {
        Decap { vtep: v }.process(&mut b, &mut mem, &mut drops);
    }
    let mut flows = FlowTable::new(64, FlowTimeouts::default());
    deny_telnet().ingress(&mut b, &mut mem, &mut drops, &mut flows);
    (b.verdict[0], drops)
}

#[test]
fn acl_is_not_bypassed_by_fragments_ipv6_ext_headers_or_tunnels() {
    let denied = Verdict::Drop(DropReason::AclDeny);
    // Whole packet and first fragment: the ports are there, denied.
    assert_eq!(verdict(&ipv4_tcp(23, 0, 20), 0, None).0, denied);
    assert_eq!(
        verdict(&ipv4_tcp(23, 0x2000, 24), 0, None).0,
        denied,
        "first fragment (MF)"
    );
    // A first fragment too short to hold the ports: malformed, dropped.
    let (v, _) = verdict(&ipv4_tcp(23, 0x2000, 2), 0, None);
    assert_eq!(
        v,
        Verdict::Drop(DropReason::TcpTruncated),
        "tiny first fragment"
    );
    // A fragment at offset 8 bytes could rewrite the ports: dropped.
    let (v, _) = verdict(&ipv4_tcp(80, 1, 20), 0, None);
    assert_eq!(v, Verdict::Drop(DropReason::FragmentOverlapsL4));
    // Later fragments carry no ports; without their first fragment they
    // cannot be reassembled into anything the ACL denied.
    assert_eq!(verdict(&ipv4_tcp(23, 3, 20), 0, None).0, Verdict::Pending);
    // Port 80 passes: the rule is specific, not everything is dropped.
    assert_eq!(verdict(&ipv4_tcp(80, 0, 20), 0, None).0, Verdict::Pending);
    // IPv6: the ACL sees TCP/23 behind three extension headers.
    assert_eq!(verdict(&ipv6_tcp_behind_ext_headers(23), 0, None).0, denied);
    assert_eq!(
        verdict(&ipv6_tcp_behind_ext_headers(80), 0, None).0,
        Verdict::Pending
    );
    // Tunnelled: TCP/23 inside VXLAN is judged after decapsulation.
    let vtep = Vtep::new(VtepConfig {
        port: 3,
        ip: [198, 18, 100, 1],
        mac: A,
        udp_port: 4789,
        ttl: 64,
        df: true,
        mtu: 1500,
        gateway: None,
        vnis: vec![(5000, 0)],
        domains: 1,
        kernel_neighbors: false,
    });
    let inner = ipv4_tcp(23, 0, 20);
    let outer = vxlan_frame(([198, 18, 100, 2], B), ([198, 18, 100, 1], A), 5000, &inner);
    assert_eq!(
        verdict(&outer, 3, Some(&vtep)).0,
        denied,
        "inner TCP/23 inside VXLAN"
    );
}

#[test]
fn a_mac_flood_neither_evicts_learned_entries_nor_floods_known_unicast() {
    let table = Arc::new(MacTable::new(1024));
    let mut bridge = Bridge::new(
        vec![Domain::learning("d", vec![0, 1, 2])],
        table.clone(),
        vec![StormControl::unlimited(); 3],
    );
    let run = |bridge: &mut Bridge, frames: &[(u16, MacAddr, MacAddr)]| -> Vec<Verdict> {
        let mut mem = Vec::new();
        let mut b = Batch::new();
        for (k, &(port, src, dst)) in frames.iter().enumerate() {
            let f = udp4_frame(60, src, dst, [198, 18, 0, 1], [198, 18, 0, 2], 1, 2, b"");
            mem.resize(k * 128, 0);
            mem.extend_from_slice(&f);
            b.push((k * 128) as u64, 60, 0, port);
            b.domain[k] = 0;
        }
        let mut drops = DropCounters::default();
        bridge.process(&mut b, &mut mem, &mut drops);
        (0..frames.len()).map(|i| b.verdict[i]).collect()
    };
    // 100 hosts on port 1 learned first.
    let legit: Vec<MacAddr> = (0..100u8).map(|i| MacAddr([2, 1, 0, 0, 0, i])).collect();
    for chunk in legit.chunks(50) {
        let frames: Vec<_> = chunk.iter().map(|&m| (1, m, MacAddr::BROADCAST)).collect();
        run(&mut bridge, &frames);
    }
    // 200 000 random source MACs from port 2.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..(200_000 / 50) {
        let frames: Vec<_> = (0..50)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = x.to_be_bytes();
                (
                    2,
                    MacAddr([b[0] & 0xfe | 0x02, b[1], b[2], b[3], b[4], b[5]]),
                    A,
                )
            })
            .collect();
        run(&mut bridge, &frames);
    }
    assert!(
        table.len() <= 1024,
        "the table stays within its limit: {}",
        table.len()
    );
    assert!(
        table
            .counters
            .overflow
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // Every legitimate host is still known: traffic to it goes to port 1,
    // not flooded.
    for chunk in legit.chunks(50) {
        let frames: Vec<_> = chunk.iter().map(|&m| (0, A, m)).collect();
        for v in run(&mut bridge, &frames) {
            assert_eq!(v, Verdict::Forward(1));
        }
    }
}
