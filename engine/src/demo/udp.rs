//! A bounded UDP burst between two containers: the sender in one
//! namespace, the receiver in another, counted at both ends.

use pollgate_pmd::netns::NetNs;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct BurstResult {
    pub sent: u64,
    pub received: u64,
    pub elapsed: Duration,
}

impl BurstResult {
    pub fn render(&self) -> String {
        let loss = if self.sent > 0 {
            100.0 * (self.sent - self.received.min(self.sent)) as f64 / self.sent as f64
        } else {
            0.0
        };
        format!(
            "{} sent, {} received ({:.2}% lost) in {:.2} s, {:.0} datagrams/s",
            self.sent,
            self.received,
            loss,
            self.elapsed.as_secs_f64(),
            self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

/// Where a burst goes: `src` in namespace `from` to `dst`:`port` in `to`.
pub struct Flow<'a> {
    pub from: &'a NetNs,
    pub src: Ipv4Addr,
    pub to: &'a NetNs,
    pub dst: Ipv4Addr,
    pub port: u16,
}

/// How much: up to `count` datagrams of `size` payload bytes at `rate`
/// per second, for at most `limit`.
pub struct Load {
    pub count: u64,
    pub rate: u64,
    pub size: usize,
    pub limit: Duration,
}

pub fn burst(
    flow: &Flow,
    load: &Load,
    stop: &(dyn Fn() -> bool + Sync),
) -> std::io::Result<BurstResult> {
    let Flow {
        from,
        src,
        to,
        dst,
        port,
    } = *flow;
    let Load {
        count,
        rate,
        size,
        limit,
    } = *load;
    let rx = to.run(|| {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_recv_buffer_size(8 << 20)?;
        s.bind(&SocketAddrV4::new(dst, port).into())?;
        Ok(UdpSocket::from(s))
    })?;
    rx.set_read_timeout(Some(Duration::from_millis(50)))?;
    let tx = from.run(|| {
        let s = UdpSocket::bind(SocketAddrV4::new(src, 0))?;
        s.connect(SocketAddrV4::new(dst, port))?;
        Ok(s)
    })?;
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let (received, done) = (received.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut quiet_since: Option<Instant> = None;
            loop {
                match rx.recv(&mut buf) {
                    Ok(_) => {
                        received.fetch_add(1, Ordering::Relaxed);
                        quiet_since = None;
                    }
                    Err(_) if done.load(Ordering::Relaxed) => {
                        // Stop after 300 ms without a datagram once the
                        // sender has finished.
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_millis(300) {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    let payload = vec![0x5au8; size];
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < count && t0.elapsed() < limit && !stop() {
        match tx.send(&payload) {
            Ok(_) => sent += 1,
            // The device queue is full: give it a moment.
            Err(_) => std::thread::sleep(Duration::from_micros(50)),
        }
        if sent.is_multiple_of(32) {
            let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            if let Some(ahead) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
    let elapsed = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = counter.join();
    Ok(BurstResult {
        sent,
        received: received.load(Ordering::Relaxed),
        elapsed,
    })
}
