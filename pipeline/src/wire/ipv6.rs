//! IPv6 header (RFC 8200) and the walk over its extension headers.

use super::ipv4::protocol;
use super::{read_u16, WireError};

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

pub const HEADER_LEN: usize = 40;

/// Longest extension-header chain walked before the packet is refused:
/// real traffic carries one or two; a long chain is an attack on the walk.
pub const MAX_EXT_HEADERS: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the version and that the payload length fits the buffer.
    /// A zero payload length (jumbogram) is refused: pollgate's frames are
    /// never that large.
    pub fn check_len(&self) -> Result<(), WireError> {
        self.check_len_on_wire(self.buffer.as_ref().len())
    }

    /// As [`check_len`](Self::check_len) for a packet of which the buffer
    /// holds the first part: the payload must end within the `wire` bytes
    /// the packet has from here on.
    pub fn check_len_on_wire(&self, wire: usize) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadField);
        }
        let pl = self.payload_len() as usize;
        if pl == 0 || HEADER_LEN + pl > wire.max(len) {
            return Err(WireError::BadLength);
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (((b[1] & 0x0f) as u32) << 16) | ((b[2] as u32) << 8) | b[3] as u32
    }

    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }
}

/// Where the extension-header walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Protocol number of the first non-extension header.
    pub protocol: u8,
    /// Offset of that header from the start of `payload`.
    pub offset: usize,
    /// A fragment header was seen.
    pub fragment: bool,
    /// A fragment header with a non-zero offset was seen: the upper-layer
    /// header is in another fragment.
    pub later_fragment: bool,
}

/// Walks the extension headers at the start of `payload` (the bytes after
/// the fixed IPv6 header, cut to the payload length) starting with
/// `next_header`.
pub fn skip_extension_headers(
    payload: &[u8],
    mut next_header: u8,
) -> Result<UpperLayer, WireError> {
    let mut off = 0usize;
    let mut fragment = false;
    let mut later_fragment = false;
    for _ in 0..=MAX_EXT_HEADERS {
        let len = match next_header {
            protocol::HOPOPT | protocol::IPV6_ROUTE | protocol::IPV6_OPTS | protocol::MOBILITY => {
                let b = payload.get(off..off + 2).ok_or(WireError::Truncated)?;
                (b[1] as usize + 1) * 8
            }
            protocol::AH => {
                let b = payload.get(off..off + 2).ok_or(WireError::Truncated)?;
                (b[1] as usize + 2) * 4
            }
            protocol::IPV6_FRAG => {
                let b = payload.get(off..off + 8).ok_or(WireError::Truncated)?;
                fragment = true;
                if read_u16(b, 2) & 0xfff8 != 0 {
                    later_fragment = true;
                }
                8
            }
            _ => {
                return Ok(UpperLayer {
                    protocol: next_header,
                    offset: off,
                    fragment,
                    later_fragment,
                })
            }
        };
        if off + len > payload.len() {
            return Err(WireError::Truncated);
        }
        next_header = payload[off];
        off += len;
        if later_fragment {
            // The rest of the chain is in the first fragment.
            return Ok(UpperLayer {
                protocol: next_header,
                offset: off,
                fragment,
                later_fragment,
            });
        }
    }
    Err(WireError::BadLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload_len: u16, next: u8) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = 0x6a;
        b[1] = 0xb1;
        b[2] = 0x23;
        b[3] = 0x45;
        b[4..6].copy_from_slice(&payload_len.to_be_bytes());
        b[6] = next;
        b[7] = 0x40;
        for (i, x) in b[8..40].iter_mut().enumerate() {
            *x = 0x20 + i as u8;
        }
        b
    }

    #[test]
    fn fields() {
        let mut b = header(8, protocol::UDP);
        b.extend_from_slice(&[1, 2, 3, 4, 0, 8, 0, 0]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), protocol::UDP);
        assert_eq!(p.hop_limit(), 0x40);
        assert_eq!(p.src()[0], 0x20);
        assert_eq!(p.dst()[15], 0x20 + 31);
    }

    #[test]
    fn payload_length_mismatch() {
        let mut b = header(16, protocol::UDP);
        b.extend_from_slice(&[0; 8]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadLength
        );
        let b = header(0, protocol::UDP);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadLength
        );
    }

    #[test]
    fn walks_hop_by_hop_and_fragment() {
        // Hop-by-hop (8 bytes) -> fragment (first, MF) -> TCP.
        let mut p = vec![protocol::IPV6_FRAG, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&[protocol::TCP, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        let ul = skip_extension_headers(&p, protocol::HOPOPT).unwrap();
        assert_eq!(
            ul,
            UpperLayer {
                protocol: protocol::TCP,
                offset: 16,
                fragment: true,
                later_fragment: false
            }
        );
        // Non-first fragment: the walk stops at the fragment header.
        p[10] = 0x01;
        let ul = skip_extension_headers(&p, protocol::HOPOPT).unwrap();
        assert!(ul.later_fragment);
    }

    #[test]
    fn truncated_and_long_chains() {
        let p = [protocol::UDP, 3, 0, 0, 0, 0, 0, 0]; // claims 32 bytes
        assert_eq!(
            skip_extension_headers(&p, protocol::IPV6_OPTS).unwrap_err(),
            WireError::Truncated
        );
        let mut chain = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            chain.extend_from_slice(&[protocol::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(
            skip_extension_headers(&chain, protocol::IPV6_OPTS).unwrap_err(),
            WireError::BadLength
        );
    }
}
