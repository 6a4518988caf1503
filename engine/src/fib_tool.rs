//! `pollgate fib bench`: the FIB on one core over the route and address
//! files `dpdk-test-fib` writes (`-w ROUTES -u IPS`), so pollgate's trie
//! and rte_fib look up the same addresses in the same table.

use anyhow::{bail, Context, Result};
use pollgate_pipeline::l3::fib::{key_v4, key_v6};
use pollgate_pipeline::l3::{FamilyFib, Prefix};
use pollgate_pmd::prefetch::Prefetcher;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

pub struct FibReport {
    pub v6: bool,
    pub routes: usize,
    pub lookups: u64,
    pub build_ms: f64,
    pub memory_bytes: usize,
    pub mlookups: f64,
    pub ns: f64,
    pub cycles: f64,
    pub mhz: f64,
    pub verified: usize,
}

impl FibReport {
    pub fn render(&self, json: bool) -> String {
        let fam = if self.v6 { "ipv6" } else { "ipv4" };
        if json {
            format!(
                "{{\"family\":\"{fam}\",\"routes\":{},\"lookups\":{},\"build_ms\":{:.1},\"memory_bytes\":{},\"mlookups_per_s\":{:.2},\"ns_per_lookup\":{:.2},\"cycles_per_lookup\":{:.1},\"mhz\":{:.0},\"verified\":{}}}",
                self.routes, self.lookups, self.build_ms, self.memory_bytes, self.mlookups, self.ns, self.cycles, self.mhz, self.verified
            )
        } else {
            format!(
                "fib {fam}: {} routes, built in {:.1} ms, {:.1} MiB\n  {} lookups: {:.2} M/s on one core, {:.2} ns = {:.1} cycles at {:.0} MHz each\n  {} lookups checked against a linear longest-prefix scan: all agree",
                self.routes, self.build_ms, self.memory_bytes as f64 / (1 << 20) as f64, self.lookups, self.mlookups, self.ns, self.cycles, self.mhz, self.verified
            )
        }
    }
}

fn read_routes(path: &Path) -> Result<Vec<(Prefix, u32)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut w = line.split_whitespace();
        let (Some(p), nh) = (w.next(), w.next()) else {
            continue;
        };
        let prefix: Prefix = p
            .parse()
            .with_context(|| format!("{}:{}", path.display(), n + 1))?;
        // rte_fib's next hops are 64-bit; the trie keeps 31 bits, which
        // a random next hop is folded into (0 would mean "no route").
        let nh: u64 = nh
            .unwrap_or("1")
            .parse()
            .with_context(|| format!("{}:{}: next hop", path.display(), n + 1))?;
        out.push((prefix, ((nh % 0x7fff_fffe) + 1) as u32));
    }
    Ok(out)
}

fn read_ips(path: &Path) -> Result<Vec<u128>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let a: IpAddr = l
                .trim()
                .parse()
                .with_context(|| format!("{}: {l:?}", path.display()))?;
            Ok(match a {
                IpAddr::V4(a) => key_v4(a.octets()),
                IpAddr::V6(a) => key_v6(a.octets()),
            })
        })
        .collect()
}

pub fn bench(
    routes: &Path,
    ips: &Path,
    iters: u32,
    verify: usize,
    groups: usize,
) -> Result<FibReport> {
    let routes = read_routes(routes)?;
    let keys = read_ips(ips)?;
    if routes.is_empty() || keys.is_empty() {
        bail!("no routes or no addresses to look up");
    }
    let v6 = routes[0].0.v6;
    let mut fib = FamilyFib::new(if v6 { 128 } else { 32 }, groups);
    let t = Instant::now();
    for (p, nh) in &routes {
        fib.insert(*p, *nh)?;
    }
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    // Later duplicates replace earlier ones, as in the trie.
    let mut rib = std::collections::HashMap::new();
    for (p, nh) in &routes {
        rib.insert(*p, *nh);
    }
    let verified = verify.min(keys.len());
    for &k in &keys[..verified] {
        let want = rib
            .iter()
            .filter(|(p, _)| p.contains(k))
            .max_by_key(|(p, _)| p.len)
            .map_or(0, |(_, nh)| *nh);
        let got = fib.lookup(k);
        let mut many = [0u32; 1];
        if v6 {
            fib.trie.lookup_many(&[k], &mut many, &Prefetcher);
        } else {
            fib.trie
                .lookup_many_v4(&[(k >> 96) as u32], &mut many, &Prefetcher);
        }
        if got != want || many[0] != want {
            bail!("the trie and a linear scan disagree on {k:#x}: {got} vs {want}");
        }
    }
    let trie = fib.trie.clone();
    let mut sink = 0u32;
    let t = Instant::now();
    // In batches of 64, each address warmed as it is gathered, as the
    // router stage looks a burst up.
    let mut out = [0u32; 64];
    if v6 {
        for _ in 0..iters {
            for chunk in keys.chunks(64) {
                let chunk = std::hint::black_box(chunk);
                for &k in chunk {
                    trie.warm(k, &Prefetcher);
                }
                trie.lookup_many(chunk, &mut out, &Prefetcher);
                sink = sink.wrapping_add(out[0] ^ out[63]);
            }
        }
    } else {
        let v4: Vec<u32> = keys.iter().map(|k| (k >> 96) as u32).collect();
        for _ in 0..iters {
            for chunk in v4.chunks(64) {
                let chunk = std::hint::black_box(chunk);
                for &a in chunk {
                    trie.warm_v4(a, &Prefetcher);
                }
                trie.lookup_many_v4(chunk, &mut out, &Prefetcher);
                sink = sink.wrapping_add(out[0] ^ out[63]);
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    let lookups = iters as u64 * keys.len() as u64;
    let ns = secs * 1e9 / lookups as f64;
    let mhz = crate::cpu_info::mhz();
    Ok(FibReport {
        v6,
        routes: fib.len(),
        lookups,
        build_ms,
        memory_bytes: trie.memory_bytes(),
        mlookups: lookups as f64 / secs / 1e6,
        ns,
        cycles: ns * mhz / 1e3,
        mhz,
        verified,
    })
}
