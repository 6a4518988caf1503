//! ARP for IPv4 over Ethernet (RFC 826): the only kind a VTEP answers and
//! asks. Offsets are from the start of the ARP header.

use super::{read_u16, WireError};
use crate::wire::MacAddr;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

pub const HEADER_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// An Ethernet/IPv4 ARP packet, or an error.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if read_u16(b, field::HTYPE) != 1
            || read_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(WireError::BadField);
        }
        Ok(p)
    }

    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER)
    }

    pub fn sender_mac(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA..field::SHA + 6])
    }

    pub fn sender_ip(&self) -> [u8; 4] {
        ip(&self.buffer.as_ref()[field::SPA..field::SPA + 4])
    }

    pub fn target_ip(&self) -> [u8; 4] {
        ip(&self.buffer.as_ref()[field::TPA..field::TPA + 4])
    }
}

fn ip(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// Writes a whole Ethernet/ARP frame (42 bytes) into `f`: a request when
/// `target_mac` is `None` (broadcast), a reply otherwise.
pub fn emit_frame(
    f: &mut [u8],
    sender_mac: MacAddr,
    sender_ip: [u8; 4],
    target_mac: Option<MacAddr>,
    target_ip: [u8; 4],
) {
    let dst = target_mac.unwrap_or(MacAddr::BROADCAST);
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&sender_mac.0);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let a = &mut f[14..14 + HEADER_LEN];
    a[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 0]);
    let op = if target_mac.is_some() {
        OP_REPLY
    } else {
        OP_REQUEST
    };
    a[field::OPER..field::OPER + 2].copy_from_slice(&op.to_be_bytes());
    a[field::SHA..field::SHA + 6].copy_from_slice(&sender_mac.0);
    a[field::SPA..field::SPA + 4].copy_from_slice(&sender_ip);
    a[field::THA..field::THA + 6].copy_from_slice(&target_mac.map_or([0; 6], |m| m.0));
    a[field::TPA..field::TPA + 4].copy_from_slice(&target_ip);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_round_trip() {
        let mut f = [0u8; 42];
        let me = MacAddr([2, 0, 0, 0, 0, 1]);
        emit_frame(&mut f, me, [198, 18, 0, 1], None, [198, 18, 0, 2]);
        assert_eq!(&f[0..6], &[0xff; 6]);
        let a = ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(a.operation(), OP_REQUEST);
        assert_eq!(
            (a.sender_mac(), a.sender_ip(), a.target_ip()),
            (me, [198, 18, 0, 1], [198, 18, 0, 2])
        );
        let peer = MacAddr([2, 0, 0, 0, 0, 2]);
        emit_frame(&mut f, peer, [198, 18, 0, 2], Some(me), [198, 18, 0, 1]);
        let a = ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(a.operation(), OP_REPLY);
        assert_eq!(&f[0..6], &me.0);
        assert!(ArpPacket::new_checked(&f[14..30]).is_err());
    }
}
