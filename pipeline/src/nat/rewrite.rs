//! Reading an IPv4 packet's 5-tuple and rewriting its addresses and
//! ports in place, every checksum they are under updated incrementally
//! (RFC 1624): the IPv4 header's, TCP's and UDP's (over the
//! pseudo-header), an ICMP query's identifier. An ICMP error's quoted
//! packet is translated too, with the ICMP checksum recomputed over it.

use crate::conntrack::Tuple4;
use crate::l3::csum;

/// How a packet's L4 header gives its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP or UDP: source and destination port.
    Ports,
    /// ICMP echo or timestamp: the identifier is both "ports".
    Query,
    /// An ICMP error quoting a packet (destination unreachable, time
    /// exceeded, parameter problem).
    Error,
    /// Nothing to translate by: another protocol, or a later fragment.
    Opaque,
}

/// What NAT reads of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub tuple: Tuple4,
    pub proto: u8,
    pub l4: L4,
    /// TCP flags (0 for other protocols).
    pub tcp: u8,
}

fn a4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads the IPv4 packet at `l3` whose L4 header (when `has_l4`) is at
/// `l4`.
pub fn read(f: &[u8], l3: usize, l4: usize, has_l4: bool) -> Option<Read> {
    let h = f.get(l3..l3 + 20)?;
    let proto = h[9];
    let mut t = Tuple4 {
        src: a4(&h[12..16]),
        dst: a4(&h[16..20]),
        sport: 0,
        dport: 0,
    };
    let mut tcp = 0;
    let kind = match proto {
        6 | 17 if has_l4 => {
            let p = f.get(l4..l4 + 4)?;
            t.sport = be16(&p[0..2]);
            t.dport = be16(&p[2..4]);
            if proto == 6 {
                tcp = *f.get(l4 + 13)?;
            }
            L4::Ports
        }
        1 if has_l4 => match *f.get(l4)? {
            0 | 8 | 13 | 14 => {
                let id = be16(f.get(l4 + 4..l4 + 6)?);
                t.sport = id;
                t.dport = id;
                L4::Query
            }
            3 | 11 | 12 => L4::Error,
            _ => L4::Opaque,
        },
        _ => L4::Opaque,
    };
    Some(Read {
        tuple: t,
        proto,
        l4: kind,
        tcp,
    })
}

/// The checksum `hc` after the covered bytes `old` became `new` (equal
/// even lengths).
#[inline]
fn adjust(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut s = !hc as u32;
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        s += !be16(o) as u32 + be16(n) as u32;
    }
    csum::finish(s)
}

fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites the packet from tuple `from` to `to`: addresses, ports (or
/// the ICMP identifier) and their checksums. False if the frame is too
/// short for what it claims (nothing is then written).
pub fn write(f: &mut [u8], l3: usize, l4: usize, r: &Read, to: &Tuple4) -> bool {
    let from = &r.tuple;
    if from == to {
        return true;
    }
    let l4_end = match r.l4 {
        L4::Ports if r.proto == 6 => l4 + 18,
        L4::Ports => l4 + 8,
        L4::Query => l4 + 6,
        _ => l3 + 20,
    };
    if f.len() < l4_end.max(l3 + 20) {
        return false;
    }
    let (old_a, new_a) = (addrs(from), addrs(to));
    let hc = be16(&f[l3 + 10..]);
    put16(f, l3 + 10, adjust(hc, &old_a, &new_a));
    f[l3 + 12..l3 + 16].copy_from_slice(&to.src);
    f[l3 + 16..l3 + 20].copy_from_slice(&to.dst);
    match r.l4 {
        L4::Ports => {
            let at = if r.proto == 6 { l4 + 16 } else { l4 + 6 };
            let c = be16(&f[at..]);
            // UDP's zero means "no checksum" and stays so.
            if r.proto == 6 || c != 0 {
                let mut c = adjust(c, &addrs_ports(from), &addrs_ports(to));
                if r.proto == 17 && c == 0 {
                    c = 0xffff;
                }
                put16(f, at, c);
            }
            put16(f, l4, to.sport);
            put16(f, l4 + 2, to.dport);
        }
        L4::Query => {
            // The identifier is both "ports" of a query's tuple.
            let id = to.sport;
            let c = be16(&f[l4 + 2..]);
            put16(
                f,
                l4 + 2,
                adjust(c, &from.sport.to_be_bytes(), &id.to_be_bytes()),
            );
            put16(f, l4 + 4, id);
        }
        _ => {}
    }
    true
}

fn addrs(t: &Tuple4) -> [u8; 8] {
    let mut a = [0u8; 8];
    a[..4].copy_from_slice(&t.src);
    a[4..].copy_from_slice(&t.dst);
    a
}

/// Addresses then ports: what an L4 checksum covers of a tuple (on the
/// stack: this runs for every translated packet).
fn addrs_ports(t: &Tuple4) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&addrs(t));
    b[8..].copy_from_slice(&ports(t));
    b
}

fn ports(t: &Tuple4) -> [u8; 4] {
    let mut p = [0u8; 4];
    p[..2].copy_from_slice(&t.sport.to_be_bytes());
    p[2..].copy_from_slice(&t.dport.to_be_bytes());
    p
}

/// An ICMP error's quoted packet: where it is and what it was.
#[derive(Debug, Clone, Copy)]
pub struct Quoted {
    pub l3: usize,
    pub l4: usize,
    pub read: Read,
}

/// The packet an ICMP error at `l4` quotes, if it quotes enough of it
/// (its IP header and 8 bytes: the ports or the identifier).
pub fn quoted(f: &[u8], l4: usize) -> Option<Quoted> {
    let l3 = l4 + 8;
    let ihl = (*f.get(l3)? & 0x0f) as usize * 4;
    if ihl < 20 || f.get(l3)? >> 4 != 4 {
        return None;
    }
    let q4 = l3 + ihl;
    f.get(q4..q4 + 8)?;
    let frag = be16(f.get(l3 + 6..l3 + 8)?) & 0x1fff;
    let read = read(f, l3, q4, frag == 0)?;
    Some(Quoted { l3, l4: q4, read })
}

/// Rewrites an ICMP error: the quoted packet to `inner` (its L4 checksum
/// only where the quote holds it), the outer header to `outer`, the
/// ICMP checksum recomputed over the message.
pub fn write_error(
    f: &mut [u8],
    l3: usize,
    l4: usize,
    outer: &Read,
    q: &Quoted,
    inner: &Tuple4,
    new_outer: &Tuple4,
) -> bool {
    let total = be16(&f[l3 + 2..]) as usize;
    let end = (l3 + total).min(f.len());
    let from = q.read.tuple;
    // The quote's IP header and ports, by hand: its L4 checksum may be
    // cut off.
    let hc = be16(&f[q.l3 + 10..]);
    put16(f, q.l3 + 10, adjust(hc, &addrs(&from), &addrs(inner)));
    f[q.l3 + 12..q.l3 + 16].copy_from_slice(&inner.src);
    f[q.l3 + 16..q.l3 + 20].copy_from_slice(&inner.dst);
    match q.read.l4 {
        L4::Ports => {
            let at = if q.read.proto == 6 {
                q.l4 + 16
            } else {
                q.l4 + 6
            };
            if at + 2 <= end {
                let c = be16(&f[at..]);
                if q.read.proto == 6 || c != 0 {
                    let (old, new) = (addrs_ports(&from), addrs_ports(inner));
                    put16(f, at, adjust(c, &old, &new));
                }
            }
            put16(f, q.l4, inner.sport);
            put16(f, q.l4 + 2, inner.dport);
        }
        L4::Query => {
            let c = be16(&f[q.l4 + 2..]);
            put16(
                f,
                q.l4 + 2,
                adjust(c, &from.sport.to_be_bytes(), &inner.sport.to_be_bytes()),
            );
            put16(f, q.l4 + 4, inner.sport);
        }
        _ => {}
    }
    let o = Read {
        l4: L4::Opaque,
        ..*outer
    };
    write(f, l3, l4, &o, new_outer);
    f[l4 + 2..l4 + 4].fill(0);
    let c = csum::finish(csum::sum(&f[l4..end]));
    put16(f, l4 + 2, c);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet + IPv4 + TCP/UDP/echo frame with correct checksums.
    fn frame(proto: u8, t: &Tuple4, payload: &[u8], zero_udp: bool) -> Vec<u8> {
        let l4_len = match proto {
            6 => 20,
            _ => 8,
        } + payload.len();
        let mut f = vec![0u8; 14 + 20 + l4_len];
        f[12..14].copy_from_slice(&[8, 0]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&[0x12, 0x34]);
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&t.src);
        ip[16..20].copy_from_slice(&t.dst);
        let c = csum::finish(csum::sum(ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let l4 = &mut f[34..];
        match proto {
            1 => {
                l4[0] = 8;
                l4[4..6].copy_from_slice(&t.sport.to_be_bytes());
            }
            _ => {
                l4[0..2].copy_from_slice(&t.sport.to_be_bytes());
                l4[2..4].copy_from_slice(&t.dport.to_be_bytes());
                if proto == 6 {
                    l4[12] = 0x50;
                    l4[13] = 0x12;
                } else {
                    l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                }
            }
        }
        let hl = if proto == 6 { 20 } else { 8 };
        l4[hl..].copy_from_slice(payload);
        let c = l4_checksum(&f, proto);
        let at = match proto {
            6 => 34 + 16,
            17 => 34 + 6,
            _ => 34 + 2,
        };
        if !(proto == 17 && zero_udp) {
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f
    }

    /// The L4 checksum computed from scratch (its field taken as zero).
    fn l4_checksum(f: &[u8], proto: u8) -> u16 {
        let mut l4 = f[34..].to_vec();
        let at = match proto {
            6 => 16,
            17 => 6,
            _ => 2,
        };
        l4[at..at + 2].fill(0);
        if proto == 1 {
            return csum::finish(csum::sum(&l4));
        }
        let pseudo = csum::sum(&f[26..34]) + proto as u32 + l4.len() as u32;
        let c = csum::finish(pseudo + csum::sum(&l4));
        if proto == 17 && c == 0 {
            0xffff
        } else {
            c
        }
    }

    fn tuple4() -> impl Strategy<Value = Tuple4> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(src, dst, sport, dport)| Tuple4 {
                src,
                dst,
                sport,
                dport,
            })
    }

    proptest! {
        /// Translating to any tuple leaves every checksum equal to a
        /// full recomputation, touches nothing but the addresses, ports
        /// and checksums, and translating back restores every byte.
        #[test]
        fn translation_and_its_inverse(
            proto in prop::sample::select(vec![1u8, 6, 17]),
            from in tuple4(),
            mut to in tuple4(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            zero_udp in any::<bool>(),
        ) {
            let mut from = from;
            if proto == 1 {
                from.dport = from.sport;
                to.dport = to.sport;
            }
            let orig = frame(proto, &from, &payload, zero_udp);
            let mut f = orig.clone();
            let r = read(&f, 14, 34, true).unwrap();
            prop_assert_eq!(r.tuple, from);
            prop_assert!(write(&mut f, 14, 34, &r, &to));
            let back = read(&f, 14, 34, true).unwrap();
            prop_assert_eq!(back.tuple, to);
            prop_assert_eq!(csum::finish(csum::sum(&f[14..34])), 0);
            let at = match proto { 6 => 50, 17 => 40, _ => 36 };
            let got = u16::from_be_bytes([f[at], f[at + 1]]);
            if proto == 17 && zero_udp {
                prop_assert_eq!(got, 0);
            } else {
                prop_assert_eq!(got, l4_checksum(&f, proto));
            }
            let hl = if proto == 6 { 20 } else { 8 };
            prop_assert_eq!(&f[34 + hl..], &orig[34 + hl..]);
            prop_assert_eq!(&f[14..24], &orig[14..24]);
            prop_assert!(write(&mut f, 14, 34, &back, &from));
            if proto == 17 && !zero_udp {
                // 0x0000 and 0xffff are the same one's-complement zero;
                // UDP writes the latter.
                let c = |v: &[u8]| u16::from_be_bytes([v[40], v[41]]);
                prop_assert_eq!(c(&f) % 0xffff, c(&orig) % 0xffff);
                let (mut a, mut b) = (f.clone(), orig.clone());
                a[40..42].fill(0);
                b[40..42].fill(0);
                prop_assert_eq!(a, b);
            } else if proto == 6 {
                let c = |v: &[u8]| u16::from_be_bytes([v[50], v[51]]);
                prop_assert_eq!(c(&f) % 0xffff, c(&orig) % 0xffff);
                let (mut a, mut b) = (f.clone(), orig.clone());
                a[50..52].fill(0);
                b[50..52].fill(0);
                a[24..26].fill(0);
                b[24..26].fill(0);
                prop_assert_eq!(a, b);
            } else {
                let (mut a, mut b) = (f.clone(), orig.clone());
                for v in [&mut a, &mut b] {
                    v[24..26].fill(0);
                    v[36..38].fill(0);
                }
                prop_assert_eq!(a, b);
            }
        }
    }
}
