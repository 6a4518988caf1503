//! Builders for well-formed test frames: the template a null port replays,
//! the frames a traffic generator sends. Checksums are right so that a
//! kernel on the receiving side accepts them.

use crate::wire::ipv4::checksum;
use crate::wire::MacAddr;

/// An Ethernet/IPv4/UDP frame of exactly `size` bytes (FCS excluded;
/// at least 42). The payload is `payload` followed by a counting pattern.
#[allow(clippy::too_many_arguments)]
pub fn udp4_frame(
    size: usize,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let size = size.max(42 + payload.len());
    let mut f = Vec::with_capacity(size);
    f.extend_from_slice(&dst_mac.0);
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (size - 14) as u16;
    f.extend_from_slice(&[0x45, 0x00]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0x00, 0x01, 0x40, 0x00, 64, 17, 0, 0]);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&dst_ip);
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let udp_len = ip_len - 20;
    f.extend_from_slice(&src_port.to_be_bytes());
    f.extend_from_slice(&dst_port.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let mut i = 0u8;
    while f.len() < size {
        f.push(i);
        i = i.wrapping_add(1);
    }
    let c = udp4_checksum(&f[26..34], &f[34..]);
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f
}

/// UDP checksum over the IPv4 pseudo-header (`addrs` = source then
/// destination) and the datagram; 0 is sent as 0xffff (RFC 768).
pub fn udp4_checksum(addrs: &[u8], udp: &[u8]) -> u16 {
    l4_checksum(addrs, 17, udp, 6)
}

/// TCP or UDP checksum over the pseudo-header (`addrs` = source then
/// destination address, IPv4 or IPv6) and `segment`, whose checksum
/// field at `csum_at` counts as zero. A UDP checksum of 0 is sent as
/// 0xffff (RFC 768).
pub fn l4_checksum(addrs: &[u8], proto: u8, segment: &[u8], csum_at: usize) -> u16 {
    let mut pseudo = Vec::with_capacity(addrs.len() + 4 + segment.len());
    pseudo.extend_from_slice(addrs);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    let at = pseudo.len() + csum_at;
    pseudo.extend_from_slice(segment);
    if let Some(c) = pseudo.get_mut(at..at + 2) {
        c.fill(0);
    }
    match checksum(&pseudo) {
        0 if proto == 17 => 0xffff,
        c => c,
    }
}

/// `inner` as remote VTEP `from` (MAC `from_mac`) sends it to VTEP `to`
/// (MAC `to_mac`) in VNI `vni`, UDP port 4789: what a VTEP's underlay
/// receives. Built with the encap code itself, from the remote's side.
pub fn vxlan_frame(
    from: ([u8; 4], MacAddr),
    to: ([u8; 4], MacAddr),
    vni: u32,
    inner: &[u8],
) -> Vec<u8> {
    use crate::vxlan::{encap, Vtep, VtepConfig, OVERHEAD};
    let remote = Vtep::new(VtepConfig {
        port: 0,
        ip: from.0,
        mac: from.1,
        udp_port: crate::wire::vxlan::UDP_PORT,
        ttl: 64,
        df: true,
        mtu: u16::MAX,
        gateway: None,
        vnis: vec![(vni, 0)],
        domains: 1,
        kernel_neighbors: false,
    });
    let Some(r) = remote.remote_or_insert(to.0) else {
        return Vec::new();
    };
    remote.learn_neighbor(to.0, to.1);
    let mut mem = vec![0u8; OVERHEAD];
    mem.extend_from_slice(inner);
    let at = (OVERHEAD as u64, inner.len() as u32, OVERHEAD as u16);
    match encap(&mut mem, &remote, at, 0, r, 0, 1) {
        Ok(_) => mem,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_frame;

    #[test]
    fn builds_parseable_frames_of_the_asked_size() {
        for size in [60, 64, 128, 1514] {
            let f = udp4_frame(
                size,
                MacAddr([2, 0, 0, 0, 0, 1]),
                MacAddr([2, 0, 0, 0, 0, 2]),
                [198, 18, 0, 1],
                [198, 19, 0, 1],
                1024,
                1025,
                b"pg",
            );
            assert_eq!(f.len(), size);
            let p = parse_frame(&f).unwrap();
            assert_eq!((p.l3_off, p.l4_off, p.l4_proto), (14, 34, 17));
            assert_eq!(checksum(&f[14..34]), 0);
            // Verifying over the pseudo-header gives zero.
            let mut pseudo = f[26..34].to_vec();
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&((size - 34) as u16).to_be_bytes());
            pseudo.extend_from_slice(&f[34..]);
            assert_eq!(checksum(&pseudo), 0);
        }
    }
}
