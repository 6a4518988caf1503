//! `pollgate bench --service`: the L2 service paths between two null
//! ports, both directions at once, each port replaying a frame the other
//! direction's stages must handle: an 802.1ad customer port against a
//! QinQ provider port (S-tag pushed one way, popped the other), and the
//! parent and one member of a macvlan or ipvlan bridge (static-MAC or
//! IP demultiplexing, no learning).

use crate::bench::BenchParams;
use crate::config::{self, Topology};
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// null0 a dot1q-tunnel customer port sending C-VID 33, null1 a QinQ
    /// provider port sending S-VID 100 over C-VID 33.
    Customer,
    /// null0 the parent of a macvlan bridge (bridge mode), null1 its
    /// member: the parent's frames go to the member's MAC, the member's to
    /// a MAC on the segment.
    Macvlan,
    /// null0 the parent of an ipvlan L2 bridge, null1 its member
    /// (198.19.0.1): demultiplexed by destination IP, MACs rewritten.
    Ipvlan,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Customer => "dot1q-tunnel customer port <-> qinq provider port",
            Service::Macvlan => "macvlan bridge parent <-> member",
            Service::Ipvlan => "ipvlan l2 parent <-> member",
        }
    }
}

const M0: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const M1: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const SEGMENT: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x99]);

fn udp(
    size: usize,
    src: MacAddr,
    dst: MacAddr,
    sip: [u8; 4],
    dip: [u8; 4],
    tags: &[u8],
) -> Vec<u8> {
    let f = udp4_frame(
        size - tags.len(),
        src,
        dst,
        sip,
        dip,
        1024,
        1025,
        b"pollgate",
    );
    let mut t = f[..12].to_vec();
    t.extend_from_slice(tags);
    t.extend_from_slice(&f[12..]);
    t
}

/// The two frames (null0's, null1's) and the config lines of a service.
fn service(s: Service, size: usize) -> ([Vec<u8>; 2], String) {
    let (a, b) = ([198, 18, 0, 1], [198, 19, 0, 1]);
    match s {
        Service::Customer => (
            [
                udp(size, M0, M1, a, b, &[0x81, 0, 0xa0, 33]),
                udp(size, M1, M0, b, a, &[0x88, 0xa8, 0x60, 100, 0x81, 0, 0xa0, 33]),
            ],
            "[[bridge]]\nname = \"svc\"\nmembers = [{ port = \"null0\" }, { port = \"null1\", svid = 100 }]\n".into(),
        ),
        Service::Macvlan => (
            [udp(size, SEGMENT, M1, a, b, &[]), udp(size, M1, SEGMENT, b, a, &[])],
            "[[bridge]]\nname = \"mv\"\ndriver = \"macvlan\"\nparent = \"null0\"\nmembers = [{ port = \"null0\" }, { port = \"null1\" }]\nstatic_macs = [{ mac = \"02:00:00:00:00:02\", port = \"null1\" }]\n".into(),
        ),
        Service::Ipvlan => (
            [udp(size, SEGMENT, M0, a, b, &[]), udp(size, M0, SEGMENT, b, a, &[])],
            "[[bridge]]\nname = \"iv\"\ndriver = \"ipvlan\"\nparent = \"null0\"\nmembers = [{ port = \"null0\" }, { port = \"null1\", ips = [\"198.19.0.1\"] }]\n".into(),
        ),
    }
}

pub fn topology(p: &BenchParams, s: Service, dir: &Path) -> anyhow::Result<Topology> {
    let (frames, bridge) = service(s, p.size);
    let mut rx = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        let path = dir.join(format!("service{k}.pcap"));
        let mut w = pollgate_pmd::pcap::PcapWriter::create(&path)?;
        w.write(f)?;
        w.flush()?;
        rx.push(path);
    }
    let modes = match s {
        Service::Customer => ["vlan_mode = \"dot1q-tunnel\"", "vlan_mode = \"qinq\""],
        _ => ["", ""],
    };
    let core = p.core.map_or(String::new(), |c| format!("core = {c}\n"));
    let src = format!(
        "[engine]\nburst = {burst}\nidle = \"poll\"\n\
         [[port]]\nname = \"null0\"\nkind = \"null\"\nrx = \"{rx0}\"\nmac = \"{M0}\"\n{m0}\n\
         [[port]]\nname = \"null1\"\nkind = \"null\"\nrx = \"{rx1}\"\nmac = \"{M1}\"\n{m1}\n\
         {bridge}\n[[worker]]\n{core}ports = [\"null0\", \"null1\"]\n",
        burst = p.burst,
        rx0 = rx[0].display(),
        rx1 = rx[1].display(),
        m0 = modes[0],
        m1 = modes[1],
    );
    Ok(config::parse("<bench>", &src)?)
}
