//! AF_XDP on a real veth pair in a namespace: frames in both directions
//! arrive byte-identical, in native and generic XDP mode. Needs root.

use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use pollgate_pipeline::{Batch, FrameMemory};
use pollgate_pmd::afxdp::{AfXdpConfig, XdpMode};
use pollgate_pmd::netlink::Netlink;
use pollgate_pmd::netns::NetNs;
use pollgate_pmd::packet_socket::PacketSocket;
use pollgate_pmd::veth::{ContainerEnd, VethPort};
use pollgate_pmd::{FramePool, PoolConfig, Port, TxDesc};
use std::time::{Duration, Instant};

fn run(tag: &str, xdp: XdpMode) {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP afxdp_veth::{tag}: needs root (network namespaces, veth, XDP)");
        return;
    }
    let ns_name = format!("pgt-{tag}-{}", std::process::id() % 10000);
    let host = format!("pgt{tag}{}", std::process::id() % 10000);
    let end = ContainerEnd {
        netns: ns_name.clone(),
        create_netns: true,
        ifname: "eth0".into(),
        mac: Some([2, 0x50, 0x47, 0, 0, 1]),
        ipv4: Some(([198, 18, 7, 1], 24)),
        gateway: None,
        mtu: 1500,
    };
    let mut pool = FramePool::new(PoolConfig {
        frames: 4096,
        hugepages: false,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut owner = None;
    let cfg = AfXdpConfig {
        xdp,
        ..AfXdpConfig::default()
    };
    let mut port =
        VethPort::open("c1", &host, &end, &cfg, &mut pool, &mut owner).expect("veth port opens");
    eprintln!("{}", port.info().detail);
    let ns = NetNs::open(&ns_name).unwrap();
    let sock = ns.run(|| PacketSocket::open("eth0")).unwrap();

    // Container -> pollgate.
    let frames: Vec<Vec<u8>> = (0..50u16)
        .map(|i| {
            udp4_frame(
                60 + i as usize * 7,
                MacAddr([2, 0x50, 0x47, 0, 0, 1]),
                MacAddr([2, 0, 0, 0, 0, 9]),
                [198, 18, 7, 1],
                [198, 18, 7, 2],
                1000 + i,
                7,
                &i.to_be_bytes(),
            )
        })
        .collect();
    for f in &frames {
        sock.send(f).unwrap();
    }
    let mut got: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && got.len() < frames.len() {
        port.poll(&mut pool);
        let mut b = Batch::new();
        let n = port.rx_burst(&mut pool, &mut b, 0, 64);
        for i in 0..n {
            let bytes = pool.bytes(b.addr[i], b.data_len[i]).unwrap().to_vec();
            pool.free(b.addr[i]);
            // The container's kernel sends its own packets too (IPv6
            // router solicitations); keep ours.
            if bytes.len() >= 42 && bytes[23] == 17 && bytes[36..38] == [0, 7] {
                got.push(bytes);
            }
        }
    }
    assert_eq!(
        got, frames,
        "frames from the container arrive byte-identical"
    );

    // pollgate -> container.
    for f in &frames {
        let addr = pool.alloc_copy(f).unwrap();
        let mut sent = 0;
        while sent == 0 {
            sent = port.tx_burst(&mut pool, &[TxDesc::new(addr, f.len() as u32)]);
            port.poll(&mut pool);
        }
    }
    let mut buf = vec![0u8; 2048];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && seen.len() < frames.len() {
        port.poll(&mut pool);
        if let Some(n) = sock.recv(&mut buf, Duration::from_millis(50)).unwrap() {
            if n >= 42 && buf[23] == 17 && buf[36..38] == [0, 7] {
                seen.push(buf[..n].to_vec());
            }
        }
    }
    assert_eq!(seen, frames, "frames from pollgate arrive byte-identical");

    // Every frame is back in the pool or held by the kernel for RX.
    port.close(&mut pool, Instant::now() + Duration::from_secs(1));
    assert_eq!(pool.available() + port.frames_held(), pool.total() as usize);
    let s = port.counters().snapshot();
    assert_eq!(s.tx_packets, frames.len() as u64);
    drop(sock);
    drop(ns);
    drop(port);
    let mut nl = Netlink::open().unwrap();
    assert!(
        nl.get_link(&host).unwrap().is_none(),
        "the veth pair is removed"
    );
    assert!(
        !NetNs::exists(&ns_name),
        "the namespace pollgate created is removed"
    );
}

#[test]
fn veth_native_xdp_both_directions() {
    run("n", XdpMode::Native);
}

#[test]
fn veth_generic_xdp_both_directions() {
    run("g", XdpMode::Generic);
}

fn jumbo_end(ns: &str, mtu: u32) -> ContainerEnd {
    ContainerEnd {
        netns: ns.to_string(),
        create_netns: true,
        ifname: "eth0".into(),
        mac: Some([2, 0x50, 0x47, 0, 0, 1]),
        ipv4: None,
        gateway: None,
        mtu,
    }
}

/// One port at MTU 9000 in generic XDP (the native case runs through the
/// engine's tests): a 9000-byte frame comes up as a chain of frames the
/// batch carries as one packet, and a chain goes down as one frame.
#[test]
fn veth_generic_xdp_jumbo_chains_both_directions() {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP afxdp_veth::jumbo: needs root (network namespaces, veth, XDP)");
        return;
    }
    let id = std::process::id() % 10000;
    let (ns_name, host) = (format!("pgt-j-{id}"), format!("pgtj{id}"));
    let mut pool = FramePool::new(PoolConfig {
        frames: 4096,
        hugepages: false,
        ..PoolConfig::default()
    })
    .unwrap();
    let cfg = AfXdpConfig {
        xdp: XdpMode::Generic,
        ..AfXdpConfig::default()
    };
    let mut owner = None;
    let mut port = VethPort::open(
        "j",
        &host,
        &jumbo_end(&ns_name, 9000),
        &cfg,
        &mut pool,
        &mut owner,
    )
    .expect("jumbo veth port opens");
    assert!(port.accepts_chains(), "{}", port.info().detail);
    let ns = NetNs::open(&ns_name).unwrap();
    let sock = ns.run(|| PacketSocket::open("eth0")).unwrap();
    let mut f = udp4_frame(
        9014,
        MacAddr([2, 0x50, 0x47, 0, 0, 1]),
        MacAddr([2, 0, 0, 0, 0, 9]),
        [198, 18, 7, 1],
        [198, 18, 7, 2],
        1000,
        7,
        &[],
    );
    for (k, b) in f.iter_mut().enumerate().skip(42) {
        *b = (k * 31) as u8;
    }
    sock.send(&f).unwrap();
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && got.is_none() {
        port.poll(&mut pool);
        let mut b = Batch::new();
        let n = port.rx_burst(&mut pool, &mut b, 0, 64);
        for i in 0..n {
            let mut whole = vec![0u8; b.pkt_len(i) as usize];
            assert!(pool.copy_packet(b.addr[i], b.data_len[i], &mut whole));
            if whole.len() == f.len() {
                got = Some((b.data_len[i], b.tail_len[i], whole));
            }
            pool.free_packet(b.addr[i], b.tail_len[i]);
        }
    }
    let (head, tail, whole) = got.expect("the jumbo frame arrives");
    assert_eq!((head, tail), (1792, 9014 - 1792), "a chain of frames");
    assert!(whole == f, "arrives byte-identical");

    // Down: the frame as a chain in the pool, sent as one.
    let (addr, len) = pool.alloc_chain(&f).unwrap();
    let d = TxDesc {
        addr,
        len,
        tail: f.len() as u32 - len,
    };
    while port.tx_burst(&mut pool, &[d]) == 0 {
        port.poll(&mut pool);
    }
    let mut buf = vec![0u8; 10_000];
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && seen.is_none() {
        port.poll(&mut pool);
        if let Some(n) = sock.recv(&mut buf, Duration::from_millis(50)).unwrap() {
            if n == f.len() {
                seen = Some(buf[..n].to_vec());
            }
        }
    }
    assert!(seen.as_deref() == Some(&f[..]), "leaves byte-identical");
    port.close(&mut pool, Instant::now() + Duration::from_secs(1));
    assert_eq!(pool.available() + port.frames_held(), pool.total() as usize);
}

/// A worker's UMEM is bound for multi-buffer or not once, by its first
/// socket: a jumbo device joining a UMEM bound without it is refused by
/// name, and what was created for it is removed.
#[test]
fn a_jumbo_device_on_a_umem_without_multi_buffer_is_refused() {
    if !pollgate_pmd::device::is_root() {
        eprintln!("SKIP afxdp_veth::refused: needs root (network namespaces, veth, XDP)");
        return;
    }
    let id = std::process::id() % 10000;
    let mut pool = FramePool::new(PoolConfig {
        frames: 4096,
        hugepages: false,
        ..PoolConfig::default()
    })
    .unwrap();
    let cfg = AfXdpConfig::default();
    let mut owner = None;
    let (ns1, h1) = (format!("pgt-s-{id}"), format!("pgts{id}"));
    let _std = VethPort::open(
        "s",
        &h1,
        &jumbo_end(&ns1, 1500),
        &cfg,
        &mut pool,
        &mut owner,
    )
    .expect("a standard-MTU port opens");
    let (ns2, h2) = (format!("pgt-b-{id}"), format!("pgtb{id}"));
    let e = match VethPort::open(
        "b",
        &h2,
        &jumbo_end(&ns2, 9000),
        &cfg,
        &mut pool,
        &mut owner,
    ) {
        Ok(_) => panic!("a jumbo port joined a UMEM without multi-buffer"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&h2) && e.contains("MTU 9000 needs multi-buffer"),
        "{e}"
    );
    assert!(Netlink::open().unwrap().get_link(&h2).unwrap().is_none());
    assert!(!NetNs::exists(&ns2));
}

/// A peer that sends VLAN tags as skb metadata (a tc program tagging
/// every frame, as a VLAN device with TX VLAN offload does): the veth
/// pollgate creates has that offload off at the container end, so the
/// tag is written into the frame and the AF_XDP port sees it. Turned
/// back on by hand, the tag stays metadata and XDP sees an untagged
/// frame: the failure the setting prevents.
#[test]
fn tags_a_peer_sends_as_metadata_reach_the_port_in_the_frame() {
    if !pollgate_pmd::device::is_root() {
        eprintln!(
            "SKIP afxdp_veth::vlan-metadata: needs root (network namespaces, veth, XDP, tcx)"
        );
        return;
    }
    let id = std::process::id() % 10000;
    let (ns_name, host) = (format!("pgt-v-{id}"), format!("pgtv{id}"));
    let mut pool = FramePool::new(PoolConfig {
        frames: 4096,
        hugepages: false,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut owner = None;
    let mut port = VethPort::open(
        "v",
        &host,
        &jumbo_end(&ns_name, 1500),
        &AfXdpConfig::default(),
        &mut pool,
        &mut owner,
    )
    .expect("veth port opens");
    let ns = NetNs::open(&ns_name).unwrap();
    let ifindex = ns.run(|| pollgate_pmd::device::if_index("eth0")).unwrap();
    let _tagger = match ns
        .run(|| pollgate_pmd::afxdp::bpf::attach_egress_vlan_push(ifindex, 0x200a))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIP afxdp_veth::vlan-metadata: tcx egress programs unavailable ({e}); needs Linux 6.6+");
            return;
        }
    };
    let sock = ns.run(|| PacketSocket::open("eth0")).unwrap();
    let f = udp4_frame(
        100,
        MacAddr([2, 0x50, 0x47, 0, 0, 1]),
        MacAddr([2, 0, 0, 0, 0, 9]),
        [198, 18, 7, 1],
        [198, 18, 7, 2],
        1000,
        7,
        b"tagged",
    );
    // What the port receives of our frame, within a second.
    let mut receive = || {
        sock.send(&f).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            port.poll(&mut pool);
            let mut b = Batch::new();
            let n = port.rx_burst(&mut pool, &mut b, 0, 64);
            let mut ours = None;
            for i in 0..n {
                let bytes = pool.bytes(b.addr[i], b.data_len[i]).unwrap().to_vec();
                pool.free_packet(b.addr[i], b.tail_len[i]);
                if bytes.len() >= 16 && bytes[..12] == f[..12] {
                    ours = Some(bytes);
                }
            }
            if ours.is_some() {
                return ours;
            }
        }
        None
    };
    let got = receive().expect("the frame arrives");
    assert_eq!(&got[12..16], &[0x81, 0x00, 0x20, 0x0a], "tag in the frame");
    assert_eq!(&got[16..], &f[12..]);

    ns.run(|| pollgate_pmd::ethtool::set_tx_vlan_offload("eth0", true))
        .unwrap();
    let got = receive().expect("the frame arrives");
    assert_eq!(got, f, "with the peer's offload on, XDP sees no tag");
    port.close(&mut pool, Instant::now() + Duration::from_secs(1));
}
