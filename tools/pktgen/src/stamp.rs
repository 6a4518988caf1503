//! The stamp at the start of each payload: a magic, the sequence number
//! and the send time. The receiver finds it behind whatever headers the
//! DUT left, and reports loss, reordering and latency from it.
//!
//! Layout (18 bytes, so that a 64-byte UDP/IPv4 frame holds it):
//! `magic: u16 | seq: u64 | ts_ns: u64`, big-endian.

use pollgate_pipeline::batch::flags;
use pollgate_pipeline::parse::parse_frame_in;
use pollgate_pipeline::wire::{TcpPacket, UdpPacket};

pub const LEN: usize = 18;
pub const MAGIC: u16 = 0x5047; // "PG"

pub fn write_magic(payload: &mut [u8]) {
    if let Some(m) = payload.get_mut(..2) {
        m.copy_from_slice(&MAGIC.to_be_bytes());
    }
}

/// Writes `seq` and `ts` into `frame` at `at` (where the template left a
/// zero stamp) and fixes the L4 checksum at `csum_at` incrementally
/// (RFC 1624): the zero words the checksum covered become these.
#[inline(always)]
pub fn write(frame: &mut [u8], at: usize, csum_at: usize, udp: bool, seq: u64, ts: u64) {
    let Some(s) = frame.get_mut(at + 2..at + LEN) else {
        return;
    };
    s[..8].copy_from_slice(&seq.to_be_bytes());
    s[8..].copy_from_slice(&ts.to_be_bytes());
    let words = |v: u64| (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    let Some(c) = frame.get_mut(csum_at..csum_at + 2) else {
        return;
    };
    let old = u16::from_be_bytes([c[0], c[1]]);
    let mut sum = (!old) as u64 + words(seq) + words(ts);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut new = !(sum as u16);
    if udp && new == 0 {
        new = 0xffff;
    }
    c.copy_from_slice(&new.to_be_bytes());
}

/// `(seq, ts_ns)` when `payload` starts with a stamp.
#[inline(always)]
pub fn read(payload: &[u8]) -> Option<(u64, u64)> {
    let s = payload.get(..LEN)?;
    if u16::from_be_bytes([s[0], s[1]]) != MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(s[2..10].try_into().ok()?);
    let ts = u64::from_be_bytes(s[10..18].try_into().ok()?);
    Some((seq, ts))
}

/// Where the payload starts: behind VLAN tags, IPv4/IPv6, UDP/TCP, and
/// one VXLAN encapsulation if the DUT left it on (the engine's own parser
/// finds the L4 header). `None` for frames that are not ours (ARP,
/// neighbour discovery…).
pub fn payload_offset(f: &[u8]) -> Option<usize> {
    payload_at(f, f.len(), true)
}

/// As [`payload_offset`] for a frame of `wire_len` bytes of which `f` is
/// the first part (the rest in chained frames).
pub fn payload_offset_in(f: &[u8], wire_len: usize) -> Option<usize> {
    payload_at(f, wire_len, true)
}

fn payload_at(f: &[u8], wire_len: usize, may_recurse: bool) -> Option<usize> {
    let p = parse_frame_in(f, wire_len).ok()?;
    if p.flags & flags::L4 == 0 {
        return None;
    }
    let l4 = f.get(p.l4_off as usize..)?;
    match p.l4_proto {
        17 => {
            let payload = p.l4_off as usize + 8;
            if may_recurse && UdpPacket::new_unchecked(l4).dst_port() == crate::frame::VXLAN_PORT {
                let inner = payload + 8;
                let rest = wire_len.checked_sub(inner)?;
                return payload_at(f.get(inner..)?, rest, false).map(|at| inner + at);
            }
            Some(payload)
        }
        6 => Some(p.l4_off as usize + TcpPacket::new_unchecked(l4).header_len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollgate_pipeline::wire::ipv4::checksum;

    #[test]
    fn incremental_checksum_equals_a_full_one() {
        let mut f = vec![0u8; 40];
        write_magic(&mut f[10..]);
        let full = |f: &[u8]| {
            let mut g = f.to_vec();
            g[4..6].fill(0);
            checksum(&g)
        };
        let c = full(&f);
        f[4..6].copy_from_slice(&c.to_be_bytes());
        for (seq, ts) in [(1u64, 2u64), (u64::MAX, 0), (0xdead_beef, 1 << 60), (0, 0)] {
            let mut g = f.clone();
            write(&mut g, 10, 4, false, seq, ts);
            let mut h = g.clone();
            h[4..6].copy_from_slice(&[0, 0]);
            let want = full(&h);
            let got = u16::from_be_bytes([g[4], g[5]]);
            // 0x0000 and 0xffff are the same ones'-complement number.
            assert!(
                got == want || (got ^ want) == 0xffff,
                "{seq} {ts}: {got:#x} vs {want:#x}"
            );
            assert_eq!(read(&g[10..]), Some((seq, ts)));
        }
    }

    #[test]
    fn short_and_foreign_frames_have_no_stamp() {
        assert_eq!(payload_offset(&[0u8; 10]), None);
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(payload_offset(&arp), None);
        assert_eq!(read(&[0x50, 0x47, 1]), None);
    }
}
