//! `pollgate bench --routes N`: the router on two null ports. null0 sits
//! in domain "a" (gateway 198.18.1.1/24), null1 in domain "b" (gateway
//! 198.18.2.1/24). Each replays IPv4 UDP frames to its gateway's router
//! MAC whose destinations fall in N routes (`dpdk-test-fib`'s depth
//! distribution: a few short prefixes, the rest spread over /13…/32), half
//! of them through a next hop on the other side, half back the way they
//! came: every packet takes the FIB lookup, the TTL and checksum update,
//! the neighbour and MAC rewrite, then the bridge's output port.
//! `--flows N` sets how many distinct destinations each side replays.
//! With `--nat`, side 0 is masqueraded through side 1's gateway address:
//! one inside host (the next hop on side 0) on every port of 1024..65535 towards up to 16 servers
//! a port (`flows` sessions), and side 1 replays the servers' replies to
//! the public address and those ports, which NAT turns back.

use crate::bench::BenchParams;
use crate::bench_traffic::Rng;
use crate::config::{self, Topology};
use pollgate_pipeline::l3::{Prefix, Route, Source, Target};
use pollgate_pipeline::template::udp4_frame;
use pollgate_pipeline::wire::MacAddr;
use std::net::IpAddr;
use std::path::Path;

const HOST: [MacAddr; 2] = [MacAddr([2, 0, 0, 0, 1, 2]), MacAddr([2, 0, 0, 0, 2, 2])];
const ROUTER: [MacAddr; 2] = [
    MacAddr([2, 0x70, 0x67, 0, 0, 0]),
    MacAddr([2, 0x70, 0x67, 0, 0, 1]),
];
/// The next hop on each side (the host behind that null port).
const NEXT_HOP: [[u8; 4]; 2] = [[198, 18, 1, 2], [198, 18, 2, 2]];

/// `n` prefixes with dpdk-test-fib's default depth distribution; even
/// ones through side 1's next hop, odd ones through side 0's.
pub fn routes(n: usize) -> Vec<(Prefix, usize)> {
    let mut rng = Rng(0x5eed_f1b0);
    let mut out = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::new();
    let mut k = 0;
    // Depths 1..12 take 2^(d-1) each (as many as exist), the rest share
    // /13…/32 equally.
    let mut per_depth: Vec<(u8, usize)> = (1..=12u8).map(|d| (d, 1usize << (d - 1))).collect();
    let short: usize = per_depth.iter().map(|x| x.1).sum();
    let rest = n.saturating_sub(short);
    per_depth.extend((13..=32u8).map(|d| (d, rest / 20)));
    for (d, count) in per_depth {
        for _ in 0..count {
            if out.len() >= n {
                break;
            }
            let a = (rng.next() >> 32) as u32;
            let Ok(p) = Prefix::new(IpAddr::from(a.to_be_bytes()), d) else {
                continue;
            };
            // Keep the gateways' own subnets out of the table.
            if (p.key >> 112) as u16 == 0xc612 || !seen.insert(p) {
                continue;
            }
            out.push((p, 1 - (k % 2)));
            k += 1;
        }
    }
    // Duplicates drawn above leave a shortfall: long prefixes fill it.
    while out.len() < n {
        let d = 13 + (rng.next() % 20) as u8;
        let a = (rng.next() >> 32) as u32;
        let Ok(p) = Prefix::new(IpAddr::from(a.to_be_bytes()), d) else {
            continue;
        };
        if (p.key >> 112) as u16 != 0xc612 && seen.insert(p) {
            out.push((p, 1 - (k % 2)));
            k += 1;
        }
    }
    out
}

/// The topology; the routes are installed after start (`install`).
pub fn topology(p: &BenchParams, dir: &Path) -> anyhow::Result<Topology> {
    let table = routes(p.routes.max(2));
    let flows = p.flows.clamp(1, 1 << 20);
    let mut rng = Rng(0xfeed_beef);
    if p.nat {
        write_nat_flows(p, &table, flows, dir)?;
    }
    for side in (0..2usize).filter(|_| !p.nat) {
        // Destinations inside routes that lead to the other side.
        let towards: Vec<&(Prefix, usize)> = table.iter().filter(|r| r.1 != side).collect();
        let path = dir.join(format!("routed{side}.pcap"));
        let mut w = pollgate_pmd::pcap::PcapWriter::create(&path)?;
        for f in 0..flows {
            let (pfx, _) = towards[(rng.next() % towards.len() as u64) as usize];
            let hostmask = if pfx.len == 0 {
                u128::MAX
            } else {
                !(u128::MAX << (128 - pfx.len as u32))
            };
            let key = pfx.key | (((rng.next() as u128) << 96) & hostmask);
            let dst = ((key >> 96) as u32).to_be_bytes();
            let src = [198, 18, 1 + side as u8, 10 + (f % 200) as u8];
            w.write(&udp4_frame(
                p.size.max(60),
                HOST[side],
                ROUTER[side],
                src,
                dst,
                1024 + (f >> 8) as u16,
                1025,
                b"pollgate",
            ))?;
        }
        w.flush()?;
    }
    let pool = crate::bench::pool_section(p);
    let core = p.core.map_or(String::new(), |c| format!("core = {c}\n"));
    let groups = (p.routes * 2).max(1 << 16);
    let nat = if p.nat {
        // Two entries a session and a mapping per inside port, at a
        // quarter of the table.
        let size = (flows * 8).next_power_of_two().max(1 << 16);
        format!(
            "[conntrack]\nsize = {size}\n[[nat]]\nout = \"b\"\nsources = [\"198.18.1.0/24\"]\nper_source = {}\n",
            flows * 2
        )
    } else {
        String::new()
    };
    let src = format!(
        r#"
[engine]
burst = {burst}
idle = "poll"
{pool}
[router]
ipv4_groups = {groups}
[[port]]
name = "null0"
kind = "null"
rx = "{a}"
[[port]]
name = "null1"
kind = "null"
rx = "{b}"
[[bridge]]
name = "a"
members = [{{ port = "null0" }}]
static_macs = [{{ mac = "{h0}", port = "null0" }}]
gateway = {{ addresses = ["198.18.1.1/24"], mac = "{r0}", neighbors = [{{ ip = "198.18.1.2", mac = "{h0}" }}] }}
[[bridge]]
name = "b"
members = [{{ port = "null1" }}]
static_macs = [{{ mac = "{h1}", port = "null1" }}]
gateway = {{ addresses = ["198.18.2.1/24"], mac = "{r1}", neighbors = [{{ ip = "198.18.2.2", mac = "{h1}" }}] }}
[[worker]]
{core}ports = ["null0", "null1"]
{nat}"#,
        burst = p.burst,
        a = dir.join("routed0.pcap").display(),
        b = dir.join("routed1.pcap").display(),
        h0 = HOST[0],
        h1 = HOST[1],
        r0 = ROUTER[0],
        r1 = ROUTER[1],
    );
    Ok(config::parse("<bench>", &src)?)
}

/// NAT's traffic: side 0 from 198.18.1.2, port `1024 + f % 64512`,
/// to the `f / 64512`-th server (in a route towards side 1); side 1 the
/// replies, to the public address 198.18.2.1 and the same port (which
/// masquerade keeps: each inside port is its own mapping).
fn write_nat_flows(
    p: &BenchParams,
    table: &[(Prefix, usize)],
    flows: usize,
    dir: &Path,
) -> anyhow::Result<()> {
    const PORTS: usize = 65536 - 1024;
    // Servers in the first prefix routed to side 1.
    let Some((pfx, _)) = table.iter().find(|r| r.1 == 1 && r.0.len <= 24) else {
        anyhow::bail!("--nat: no route towards side 1 holds the servers");
    };
    let base = (pfx.key >> 96) as u32;
    let servers: Vec<[u8; 4]> = (0..flows.div_ceil(PORTS) as u32)
        .map(|k| (base + 1 + k).to_be_bytes())
        .collect();
    let mut out = pollgate_pmd::pcap::PcapWriter::create(&dir.join("routed0.pcap"))?;
    let mut back = pollgate_pmd::pcap::PcapWriter::create(&dir.join("routed1.pcap"))?;
    let size = p.size.max(60);
    for f in 0..flows {
        let port = (1024 + f % PORTS) as u16;
        let srv = servers[f / PORTS];
        let inside = NEXT_HOP[0];
        out.write(&udp4_frame(
            size,
            HOST[0],
            ROUTER[0],
            inside,
            srv,
            port,
            53,
            b"pollgate",
        ))?;
        back.write(&udp4_frame(
            size,
            HOST[1],
            ROUTER[1],
            srv,
            [198, 18, 2, 1],
            53,
            port,
            b"pollgate",
        ))?;
    }
    out.flush()?;
    back.flush()?;
    Ok(())
}

/// The bench's routes, as the route table takes them.
pub fn install_list(n: usize) -> Vec<Route> {
    routes(n.max(2))
        .into_iter()
        .map(|(prefix, side)| Route {
            prefix,
            target: Target::Via(vec![IpAddr::from(NEXT_HOP[side])]),
            metric: 0,
            source: Source::Static,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_depth_distribution_and_alternate_sides() {
        let r = routes(10_000);
        assert_eq!(r.len(), 10_000);
        assert!(
            r.iter().filter(|x| x.0.len == 1).count() <= 2,
            "two /1s at most"
        );
        let long = r.iter().filter(|x| x.0.len > 12).count();
        assert!(long > 5000, "{long}");
        let side0 = r.iter().filter(|x| x.1 == 0).count();
        assert!((4900..=5100).contains(&side0), "{side0}");
    }
}

#[cfg(test)]
mod topo_tests {
    use super::*;

    #[test]
    fn the_next_hops_are_resolved_and_routes_lead_across() {
        let dir = std::env::temp_dir().join(format!("pg-br-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = BenchParams {
            routes: 1000,
            flows: 16,
            size: 60,
            burst: 32,
            ..BenchParams::default()
        };
        let topo = topology(&p, &dir).unwrap();
        assert_eq!(topo.l3.as_ref().unwrap().neighbors.len(), 2);
        let mut t = crate::build::routes_for(&topo).unwrap().unwrap();
        t.add_bulk(install_list(1000)).unwrap();
        for side in 0..2u16 {
            let n = t
                .tables
                .neighbors
                .lookup(side, IpAddr::from(NEXT_HOP[side as usize]), 1)
                .unwrap();
            assert_eq!(n.mac, Some(HOST[side as usize].0));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
