//! ICMP the router sends: echo replies for its own addresses, and the
//! errors of RFC 792 / RFC 4443 (time exceeded, destination unreachable,
//! fragmentation needed / packet too big with the next hop's MTU). Each
//! is written over the packet it answers: an error grows the frame
//! forward into its headroom by the new IP and ICMP headers, so the
//! quoted original stays where it is.

use super::csum;

/// Bytes an ICMPv4 error adds in front of the quoted IP header.
pub const V4_GROWTH: usize = 20 + 8;
/// Bytes an ICMPv6 error adds in front of the quoted IPv6 header.
pub const V6_GROWTH: usize = 40 + 8;
/// An ICMPv4 error is at most 576 bytes (RFC 1812 4.3.2.3).
const V4_MAX: usize = 576;
/// An ICMPv6 error is at most the minimum MTU (RFC 4443 2.4 (c)).
const V6_MAX: usize = 1280;

pub const V4_TIME_EXCEEDED: (u8, u8) = (11, 0);
pub const V4_NET_UNREACHABLE: (u8, u8) = (3, 0);
pub const V4_HOST_UNREACHABLE: (u8, u8) = (3, 1);
pub const V4_FRAG_NEEDED: (u8, u8) = (3, 4);
pub const V6_NO_ROUTE: (u8, u8) = (1, 0);
pub const V6_ADDR_UNREACHABLE: (u8, u8) = (1, 3);
pub const V6_TOO_BIG: (u8, u8) = (2, 0);
pub const V6_TIME_EXCEEDED: (u8, u8) = (3, 0);

/// Whether an IPv4 packet may be answered with an error (RFC 1812
/// 4.3.2.7): not about an ICMP error, not a later fragment, not from a
/// broadcast, multicast, loopback or unspecified source.
pub fn v4_may_answer(ip: &[u8], l4: Option<&[u8]>) -> bool {
    let Some(h) = ip.get(..20) else { return false };
    let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    let src = [h[12], h[13], h[14], h[15]];
    if frag_off != 0 || src[0] == 0 || src[0] == 127 || src[0] >= 224 || src == [255; 4] {
        return false;
    }
    if h[9] == 1 {
        // Only echo request/reply and other informational types.
        return l4
            .and_then(|m| m.first())
            .is_some_and(|t| matches!(t, 0 | 8 | 13 | 14));
    }
    true
}

/// The IPv6 rules (RFC 4443 2.4 (e)): not about an ICMPv6 error, not
/// from an unspecified or multicast source.
pub fn v6_may_answer(ip: &[u8], next: u8, l4: Option<&[u8]>) -> bool {
    let Some(h) = ip.get(..40) else { return false };
    if h[8] == 0xff || h[8..24].iter().all(|b| *b == 0) {
        return false;
    }
    if next == 58 {
        return l4.and_then(|m| m.first()).is_some_and(|t| *t >= 128);
    }
    true
}

/// Writes an ICMPv4 error into `buf`, which starts `V4_GROWTH` bytes
/// before the offending frame (untagged Ethernet + IPv4). `rest` is the
/// header's second word (the next-hop MTU for fragmentation needed).
/// Returns the new frame's length.
pub fn write_v4_error(
    buf: &mut [u8],
    frame_len: usize,
    (ty, code): (u8, u8),
    rest: u32,
    src_mac: [u8; 6],
    src_ip: [u8; 4],
) -> Option<usize> {
    let orig = V4_GROWTH;
    let ip = orig + 14;
    let h = buf.get(ip..ip + 20)?;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    let to_ip = [h[12], h[13], h[14], h[15]];
    let mut to_mac = [0u8; 6];
    to_mac.copy_from_slice(buf.get(orig + 6..orig + 12)?);
    let quote = total.min(frame_len - 14).min(V4_MAX - V4_GROWTH);
    let len = 14 + V4_GROWTH + quote;
    let f = buf.get_mut(..len)?;
    f[0..6].copy_from_slice(&to_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let h = &mut f[14..34];
    h[0] = 0x45;
    h[1] = 0xc0; // internetwork control precedence (RFC 1812 4.3.2.5)
    h[2..4].copy_from_slice(&((V4_GROWTH + quote) as u16).to_be_bytes());
    h[4..8].fill(0);
    h[8] = 64;
    h[9] = 1;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src_ip);
    h[16..20].copy_from_slice(&to_ip);
    let c = csum::finish(csum::sum(h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let m = &mut f[34..];
    m[0] = ty;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&rest.to_be_bytes());
    let c = csum::finish(csum::sum(m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Some(len)
}

/// The IPv6 counterpart, `buf` starting `V6_GROWTH` bytes before the
/// offending frame.
pub fn write_v6_error(
    buf: &mut [u8],
    frame_len: usize,
    (ty, code): (u8, u8),
    rest: u32,
    src_mac: [u8; 6],
    src_ip: [u8; 16],
) -> Option<usize> {
    let orig = V6_GROWTH;
    let ip = orig + 14;
    let h = buf.get(ip..ip + 40)?;
    let total = 40 + u16::from_be_bytes([h[4], h[5]]) as usize;
    let mut to_ip = [0u8; 16];
    to_ip.copy_from_slice(&h[8..24]);
    let mut to_mac = [0u8; 6];
    to_mac.copy_from_slice(buf.get(orig + 6..orig + 12)?);
    let quote = total.min(frame_len - 14).min(V6_MAX - V6_GROWTH);
    let len = 14 + V6_GROWTH + quote;
    let f = buf.get_mut(..len)?;
    f[0..6].copy_from_slice(&to_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let h = &mut f[14..54];
    h[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    h[4..6].copy_from_slice(&((8 + quote) as u16).to_be_bytes());
    h[6] = 58;
    h[7] = 64;
    h[8..24].copy_from_slice(&src_ip);
    h[24..40].copy_from_slice(&to_ip);
    let (s, d) = (src_ip, to_ip);
    let m = &mut f[54..];
    m[0] = ty;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&rest.to_be_bytes());
    let c = csum::icmp6(&s, &d, m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Some(len)
}

/// Turns an ICMPv4 echo request (Ethernet at 0, IPv4 at `l3`, ICMP at
/// `l4`) into its reply from `mac`; false if it is not a request.
pub fn v4_echo_reply(f: &mut [u8], l3: usize, l4: usize, mac: [u8; 6]) -> bool {
    if f.get(l4) != Some(&8) || f.len() < l4 + 8 || f.len() < l3 + 20 {
        return false;
    }
    swap_macs(f, mac);
    let ihl = ((f[l3] & 0x0f) as usize) * 4;
    let (src, dst) = (l3 + 12, l3 + 16);
    for k in 0..4 {
        f.swap(src + k, dst + k);
    }
    f[l3 + 8] = 64;
    f[l3 + 10..l3 + 12].fill(0);
    let c = csum::finish(csum::sum(&f[l3..l3 + ihl.min(f.len() - l3)]));
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    let old = u16::from_be_bytes([f[l4], f[l4 + 1]]);
    f[l4] = 0;
    let new = u16::from_be_bytes([f[l4], f[l4 + 1]]);
    let hc = u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]);
    f[l4 + 2..l4 + 4].copy_from_slice(&csum::update(hc, old, new).to_be_bytes());
    true
}

/// The ICMPv6 echo reply (type 128 → 129). Swapping the addresses leaves
/// the pseudo-header's sum as it was, so only the type word changes.
pub fn v6_echo_reply(f: &mut [u8], l3: usize, l4: usize, mac: [u8; 6]) -> bool {
    if f.get(l4) != Some(&128) || f.len() < l4 + 8 || f.len() < l3 + 40 {
        return false;
    }
    swap_macs(f, mac);
    for k in 0..16 {
        f.swap(l3 + 8 + k, l3 + 24 + k);
    }
    f[l3 + 7] = 64;
    let old = u16::from_be_bytes([f[l4], f[l4 + 1]]);
    f[l4] = 129;
    let new = u16::from_be_bytes([f[l4], f[l4 + 1]]);
    let hc = u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]);
    f[l4 + 2..l4 + 4].copy_from_slice(&csum::update(hc, old, new).to_be_bytes());
    true
}

fn swap_macs(f: &mut [u8], mac: [u8; 6]) {
    f.copy_within(6..12, 0);
    f[6..12].copy_from_slice(&mac);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; V4_GROWTH];
        let mut e = vec![0u8; 14 + len];
        e[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
        e[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x0b]);
        e[12..14].copy_from_slice(&[8, 0]);
        let ip = &mut e[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 1;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[198, 18, 1, 10]);
        ip[16..20].copy_from_slice(&[198, 19, 0, 1]);
        f.extend(e);
        f
    }

    #[test]
    fn a_v4_error_quotes_the_packet_and_checks() {
        let mut f = udp4(1400);
        let n = write_v4_error(
            &mut f,
            14 + 1400,
            V4_FRAG_NEEDED,
            1280,
            [2, 0, 0, 0, 0, 1],
            [198, 18, 1, 1],
        )
        .unwrap();
        assert_eq!(n, 14 + 576);
        let e = etherparse::SlicedPacket::from_ethernet(&f[..n]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = e.net else {
            panic!()
        };
        assert_eq!(ip.header().source(), [198, 18, 1, 1]);
        assert_eq!(ip.header().destination(), [198, 18, 1, 10]);
        assert_eq!(csum::finish(csum::sum(&f[14..34])), 0);
        assert_eq!(csum::finish(csum::sum(&f[34..n])), 0);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(u16::from_be_bytes([f[40], f[41]]), 1280);
        // The quoted header is the original's.
        assert_eq!(&f[42 + 12..42 + 16], &[198, 18, 1, 10]);
        assert!(v4_may_answer(&f[42..], None));
    }

    #[test]
    fn echo_reply_checksums_verify() {
        let mut e = udp4(28);
        let mut f = e.split_off(V4_GROWTH);
        f[14 + 9] = 1;
        f[34] = 8;
        f[36..38].copy_from_slice(
            &csum::finish(csum::sum(&[8, 0, 0, 0, 0x12, 0x34, 0, 1])).to_be_bytes(),
        );
        f[38..42].copy_from_slice(&[0x12, 0x34, 0, 1]);
        assert!(v4_echo_reply(&mut f, 14, 34, [2, 0, 0, 0, 0, 1]));
        assert_eq!(f[34], 0);
        assert_eq!(csum::finish(csum::sum(&f[34..42])), 0);
        assert_eq!(csum::finish(csum::sum(&f[14..34])), 0);
        assert_eq!(&f[14 + 16..14 + 20], &[198, 18, 1, 10]);
    }
}
