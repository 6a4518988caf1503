//! 802.1Q / 802.1ad tag body: the 4 bytes that follow a VLAN TPID
//! (TCI, then the EtherType of what comes next).

use super::{read_u16, write_u16, WireError};

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Bytes a tag adds to a frame (TPID + TCI).
pub const TAG_LEN: usize = 4;
/// Length of the view: TCI + inner EtherType.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// VID reserved by 802.1Q; frames carrying it are dropped.
pub const VID_RESERVED: u16 = 4095;

#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI)
    }

    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of the header after this tag.
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    pub fn set_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    /// Replaces the VID, keeping PCP and DEI.
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    pub fn set_ethertype(&mut self, t: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        // PCP 5, DEI 1, VID 0xabc, then IPv4.
        let b = [0xba, 0xbc, 0x08, 0x00];
        let t = VlanTag::new_checked(&b[..]).unwrap();
        assert_eq!(t.pcp(), 5);
        assert!(t.dei());
        assert_eq!(t.vid(), 0xabc);
        assert_eq!(t.ethertype(), 0x0800);
    }

    #[test]
    fn set_vid_keeps_pcp_and_dei() {
        let mut b = [0xba, 0xbc, 0x08, 0x00];
        VlanTag::new_unchecked(&mut b[..]).set_vid(0x123);
        let t = VlanTag::new_unchecked(&b[..]);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (5, true, 0x123));
    }

    #[test]
    fn truncated() {
        assert_eq!(
            VlanTag::new_checked(&[0x81u8, 0x00, 0x01][..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
