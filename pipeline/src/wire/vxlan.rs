//! VXLAN header (RFC 7348): flags, reserved bits, 24-bit VNI.

use super::{read_u32, write_u32, WireError};

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
}

pub const HEADER_LEN: usize = 8;
/// IANA UDP port for VXLAN.
pub const UDP_PORT: u16 = 4789;
/// The I flag: the VNI is valid.
pub const FLAG_VNI_VALID: u8 = 0x08;

#[derive(Debug, Clone, Copy)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        VxlanHeader { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_VNI_VALID != 0
    }

    /// The 24-bit VNI; the low byte of the word is reserved and ignored.
    pub fn vni(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VNI) >> 8
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    /// Writes a header with only the I flag set and the reserved bits zero.
    pub fn emit(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        write_u32(b, field::FLAGS, (FLAG_VNI_VALID as u32) << 24);
        write_u32(b, field::VNI, (vni & 0x00ff_ffff) << 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_ignore_reserved() {
        let b = [0x08, 0xaa, 0xbb, 0xcc, 0x12, 0x34, 0x56, 0x9f];
        let h = VxlanHeader::new_checked(&b[..]).unwrap();
        assert!(h.vni_valid());
        assert_eq!(h.vni(), 0x123456);
    }

    #[test]
    fn emit_round_trip() {
        let mut b = [0xffu8; 8];
        VxlanHeader::new_unchecked(&mut b[..]).emit(0xabcdef);
        assert_eq!(b, [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        assert!(VxlanHeader::new_checked(&b[..7]).is_err());
    }
}
