//! The stamp at the start of each payload: a magic, the sequence number
//! and the send time. The receiver finds it behind whatever headers the
//! DUT left, and reports loss, reordering and latency from it.
//!
//! Layout (18 bytes, so that a 64-byte UDP/IPv4 frame holds it):
//! `magic: u16 | seq: u64 | ts_ns: u64`, big-endian.

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
/// one VXLAN encapsulation if the DUT left it on. `None` for frames that
/// are not ours (ARP, neighbour discovery…).
pub fn payload_offset(f: &[u8]) -> Option<usize> {
    payload_at(f, 0, true)
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

fn payload_at(f: &[u8], eth: usize, may_recurse: bool) -> Option<usize> {
    let mut at = eth + 12;
    let mut ty = be16(f, at)?;
    while ty == 0x8100 || ty == 0x88a8 {
        at += 4;
        ty = be16(f, at)?;
    }
    let l3 = at + 2;
    let (proto, l4) = match ty {
        0x0800 => {
            let ihl = (*f.get(l3)? & 0x0f) as usize * 4;
            (*f.get(l3 + 9)?, l3 + ihl)
        }
        0x86dd => (*f.get(l3 + 6)?, l3 + 40),
        _ => return None,
    };
    match proto {
        17 => {
            let payload = l4 + 8;
            if may_recurse && be16(f, l4 + 2)? == crate::frame::VXLAN_PORT {
                return payload_at(f, payload + 8, false);
            }
            Some(payload)
        }
        6 => Some(l4 + ((*f.get(l4 + 12)? >> 4) as usize) * 4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{fold, sum16};

    #[test]
    fn incremental_checksum_equals_a_full_one() {
        let mut f = vec![0u8; 40];
        write_magic(&mut f[10..]);
        let full = |f: &[u8]| !fold(sum16(f) - sum16(&f[4..6]));
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
