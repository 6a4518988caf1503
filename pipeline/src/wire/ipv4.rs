//! IPv4 header (RFC 791), options included.

use super::{read_u16, read_u32, write_u16, WireError};

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Minimum header length (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;

/// IP protocol numbers pollgate dispatches on.
pub mod protocol {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
}

#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the version, that IHL covers at least 20 bytes and fits the
    /// buffer, and that total length covers the header and fits the buffer
    /// (the buffer may be longer: Ethernet pads short frames).
    pub fn check_len(&self) -> Result<(), WireError> {
        self.check_len_on_wire(self.buffer.as_ref().len())
    }

    /// As [`check_len`](Self::check_len) for a packet of which the buffer
    /// holds the first part: the header must be in the buffer, the total
    /// length within the `wire` bytes the packet has from here on (a
    /// multi-buffer frame's later segments hold the rest).
    pub fn check_len_on_wire(&self, wire: usize) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadField);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN || hl > len {
            return Err(WireError::BadField);
        }
        let total = self.total_len() as usize;
        if total < hl || total > wire.max(len) {
            return Err(WireError::BadLength);
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS_FRAG] & 0x40 != 0
    }

    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS_FRAG] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & 0x1fff) * 8
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src(&self) -> [u8; 4] {
        read_u32(self.buffer.as_ref(), field::SRC).to_be_bytes()
    }

    pub fn dst(&self) -> [u8; 4] {
        read_u32(self.buffer.as_ref(), field::DST).to_be_bytes()
    }

    /// True when the one's-complement sum over the header is all ones.
    pub fn verify_checksum(&self) -> bool {
        checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::TOTAL_LEN, len);
    }

    /// Recomputes the header checksum over the current header bytes.
    pub fn fill_checksum(&mut self) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let hl = self.header_len();
        let c = checksum(&self.buffer.as_ref()[..hl]);
        write_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// RFC 1071 Internet checksum of `data` (folded, complemented).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    // IHL 6 (one option word), TOS 0xb8, DF, TTL 0x3f, UDP.
    const PKT: [u8; 28] = [
        0x46, 0xb8, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x11, 0x00, 0x00, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x13, 0x00, 0x02, 0x01, 0x01, 0x01, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn fields_and_checksum() {
        let mut b = PKT;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.tos(), 0xb8);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.ttl(), 0x3f);
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.src(), [198, 18, 0, 1]);
        assert_eq!(p.dst(), [198, 19, 0, 2]);
    }

    #[test]
    fn bad_ihl_and_total_len() {
        let mut b = PKT;
        b[0] = 0x44; // IHL 4 < 5
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadField
        );
        let mut b = PKT;
        b[0] = 0x4f; // IHL 15: 60 bytes, past the buffer
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadField
        );
        let mut b = PKT;
        b[3] = 0x40; // total length 64 > 28
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadLength
        );
        let mut b = PKT;
        b[3] = 0x10; // total length 16 < header
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadLength
        );
        assert_eq!(
            Ipv4Packet::new_checked(&PKT[..19]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn checksum_known_value() {
        // RFC 1071 example words 0001 f203 f4f5 f6f7 sum to ddf2 -> complement 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }
}
