//! Typed zero-copy views over packet bytes, in the style of smoltcp's `wire`.
//!
//! Every header has `new_unchecked` (no length check), `check_len` and
//! `new_checked`; getters take `T: AsRef<[u8]>`, setters `T: AsMut<[u8]>`.
//! Offsets live once in a `field` module so a getter and its setter cannot
//! disagree.

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use ethernet::{EtherType, EthernetFrame, MacAddr};
pub use icmp::IcmpPacket;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;
pub use vlan::VlanTag;
pub use vxlan::VxlanHeader;

/// A buffer was too short, or a length field inside it is inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the fixed part of the header.
    Truncated,
    /// A length field disagrees with the header or the buffer.
    BadLength,
    /// A version or flag field holds a value this header cannot carry.
    BadField,
}

pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
