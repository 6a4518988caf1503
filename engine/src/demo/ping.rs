//! ICMP echo from inside a container's namespace, so the demo needs no
//! `ping` binary on a fresh machine.

use pollgate_pipeline::wire::ipv4::checksum;
use pollgate_pmd::netns::NetNs;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct PingResult {
    pub sent: u32,
    pub received: u32,
    pub rtts: Vec<Duration>,
}

impl PingResult {
    pub fn render(&self) -> String {
        let avg = if self.rtts.is_empty() {
            "-".to_string()
        } else {
            let sum: Duration = self.rtts.iter().sum();
            format!(
                "{:.3} ms",
                (sum / self.rtts.len() as u32).as_secs_f64() * 1e3
            )
        };
        format!("{}/{} replies, avg rtt {avg}", self.received, self.sent)
    }
}

fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..56u8).map(|i| i.wrapping_mul(7)));
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Sends `count` echo requests from namespace `ns` to `dst`, one per
/// `interval`, waiting up to a second for each reply.
pub fn ping(
    ns: &NetNs,
    dst: Ipv4Addr,
    count: u16,
    interval: Duration,
    stop: &dyn Fn() -> bool,
) -> std::io::Result<PingResult> {
    let sock = ns.run(|| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let id = (std::process::id() & 0xffff) as u16;
    let to = SockAddr::from(SocketAddrV4::new(dst, 0));
    let mut r = PingResult::default();
    let mut buf = [0u8; 2048];
    for seq in 1..=count {
        if stop() {
            break;
        }
        let t0 = Instant::now();
        sock.send_to(&echo_request(id, seq), &to)?;
        r.sent += 1;
        while t0.elapsed() < Duration::from_secs(1) {
            let Ok(n) = (&sock).read(&mut buf) else {
                continue;
            };
            let bytes = &buf[..n];
            let ihl = ((bytes.first().copied().unwrap_or(0) & 0x0f) as usize) * 4;
            let icmp = match bytes.get(ihl..ihl + 8) {
                Some(i) => i,
                None => continue,
            };
            if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes() {
                r.received += 1;
                r.rtts.push(t0.elapsed());
                break;
            }
        }
        let spent = t0.elapsed();
        if spent < interval {
            std::thread::sleep(interval - spent);
        }
    }
    Ok(r)
}
