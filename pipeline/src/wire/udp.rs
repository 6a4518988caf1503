//! UDP header (RFC 768).

use super::{read_u16, write_u16, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer is the L3 payload: the length field must cover the header
    /// and fit inside it.
    pub fn check_len(&self) -> Result<(), WireError> {
        self.check_len_on_wire(self.buffer.as_ref().len())
    }

    /// As [`check_len`](Self::check_len) when the buffer holds only the
    /// first part of the datagram and `wire` bytes of L3 payload exist.
    pub fn check_len_on_wire(&self, wire: usize) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let ul = self.len() as usize;
        if ul < HEADER_LEN || ul > wire.max(len) {
            return Err(WireError::BadLength);
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let b = [0x12, 0xb5, 0x30, 0x39, 0x00, 0x0a, 0xab, 0xcd, 0x77, 0x88];
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(u.src_port(), 4789);
        assert_eq!(u.dst_port(), 12345);
        assert_eq!(u.len(), 10);
        assert_eq!(u.checksum(), 0xabcd);
    }

    #[test]
    fn bad_lengths() {
        let b = [0x12, 0xb5, 0x30, 0x39, 0x00, 0x07, 0xab, 0xcd];
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::BadLength
        );
        let b = [0x12, 0xb5, 0x30, 0x39, 0x00, 0x09, 0xab, 0xcd];
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::BadLength
        );
        assert_eq!(
            UdpPacket::new_checked(&b[..7]).unwrap_err(),
            WireError::Truncated
        );
    }
}
