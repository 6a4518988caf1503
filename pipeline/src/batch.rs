//! A burst of packets with struct-of-arrays metadata: stages loop over one
//! field at a time, so each loop touches only the arrays it needs.

use crate::verdict::{DomainId, PortId, Verdict};

/// Most packets in one batch (and one RX/TX burst).
pub const BATCH_SIZE: usize = 64;

/// "No port": never a port's id.
pub const NO_PORT: PortId = PortId::MAX;

/// Per-packet flags set by the parse stage.
pub mod flags {
    pub const IPV4: u8 = 0x01;
    pub const IPV6: u8 = 0x02;
    /// L4 header present and checked (not a later fragment).
    pub const L4: u8 = 0x04;
    /// An IP fragment (first or later).
    pub const FRAGMENT: u8 = 0x08;
    /// Decapsulated from a VXLAN tunnel: the fields describe the inner
    /// frame, `in_port` is the remote VTEP, the domain comes from the VNI.
    pub const TUNNEL: u8 = 0x40;
    /// The parse stage has run on this packet.
    pub const PARSED: u8 = 0x80;
}

/// Up to [`BATCH_SIZE`] packets: frame descriptors, parse results and
/// verdicts, each in its own array indexed by packet slot.
#[derive(Clone)]
pub struct Batch {
    len: usize,
    /// Address of the first packet byte in the frame pool.
    pub addr: [u64; BATCH_SIZE],
    /// Bytes at `addr`, in the packet's first frame: the whole packet
    /// unless it is a multi-buffer (jumbo) chain.
    pub data_len: [u32; BATCH_SIZE],
    /// Bytes in the frames chained after the first (the frame pool holds
    /// the links); 0 for a packet in one frame. Headers are always in the
    /// first frame, so stages read and rewrite `data_len` bytes and only
    /// lengths written into headers need [`Batch::pkt_len`].
    pub tail_len: [u32; BATCH_SIZE],
    /// Free bytes in the frame before `addr`: room to push headers in place.
    pub headroom: [u16; BATCH_SIZE],
    /// Port the packet arrived on.
    pub in_port: [PortId; BATCH_SIZE],
    /// Offset of the L3 header from `addr` (after Ethernet and tags).
    pub l3_off: [u16; BATCH_SIZE],
    /// Offset of the L4 header from `addr`; meaningful with `flags::L4`.
    pub l4_off: [u16; BATCH_SIZE],
    /// EtherType after the VLAN tags.
    pub ethertype: [u16; BATCH_SIZE],
    /// IP protocol of the L4 header (after IPv6 extension headers).
    pub l4_proto: [u8; BATCH_SIZE],
    /// Number of VLAN tags (0..=2).
    pub tags: [u8; BATCH_SIZE],
    /// TPID of the outer tag.
    pub outer_tpid: [u16; BATCH_SIZE],
    /// TCI (PCP, DEI, VID) of the outer and inner tag.
    pub outer_tci: [u16; BATCH_SIZE],
    pub inner_tci: [u16; BATCH_SIZE],
    pub flags: [u8; BATCH_SIZE],
    /// TCI of the tag stripped on ingress: its PCP and DEI go on the tag
    /// pushed on egress (0 for frames that came untagged).
    pub prio: [u16; BATCH_SIZE],
    /// Bridge domain the packet belongs to.
    pub domain: [DomainId; BATCH_SIZE],
    /// A port a flood of this packet skips besides its ingress port: the
    /// VEPA member whose broadcast the external switch sent back
    /// ([`NO_PORT`] for every other packet).
    pub flood_skip: [PortId; BATCH_SIZE],
    pub verdict: [Verdict; BATCH_SIZE],
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub const fn new() -> Self {
        Batch {
            len: 0,
            addr: [0; BATCH_SIZE],
            data_len: [0; BATCH_SIZE],
            tail_len: [0; BATCH_SIZE],
            headroom: [0; BATCH_SIZE],
            in_port: [0; BATCH_SIZE],
            l3_off: [0; BATCH_SIZE],
            l4_off: [0; BATCH_SIZE],
            ethertype: [0; BATCH_SIZE],
            l4_proto: [0; BATCH_SIZE],
            tags: [0; BATCH_SIZE],
            outer_tpid: [0; BATCH_SIZE],
            outer_tci: [0; BATCH_SIZE],
            inner_tci: [0; BATCH_SIZE],
            flags: [0; BATCH_SIZE],
            prio: [0; BATCH_SIZE],
            domain: [0; BATCH_SIZE],
            flood_skip: [NO_PORT; BATCH_SIZE],
            verdict: [Verdict::Pending; BATCH_SIZE],
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        // Never above BATCH_SIZE (`push` sees to it); said here so that a
        // stage's `for i in 0..batch.len()` indexes the metadata arrays
        // without a bounds check per access.
        self.len.min(BATCH_SIZE)
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len == BATCH_SIZE
    }

    /// Free slots left.
    #[inline(always)]
    pub fn room(&self) -> usize {
        BATCH_SIZE - self.len
    }

    /// Length of packet `i` on the wire, all its frames together.
    #[inline(always)]
    pub fn pkt_len(&self, i: usize) -> u32 {
        self.data_len[i] + self.tail_len[i]
    }

    /// Empties the batch. Only the length is reset: `push` rewrites every
    /// field a stage reads before it reads it.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a received frame; returns false (and takes nothing) when full.
    #[inline(always)]
    pub fn push(&mut self, addr: u64, len: u32, headroom: u16, port: PortId) -> bool {
        let i = self.len;
        if i == BATCH_SIZE {
            return false;
        }
        self.addr[i] = addr;
        self.data_len[i] = len;
        self.tail_len[i] = 0;
        self.headroom[i] = headroom;
        self.in_port[i] = port;
        self.flags[i] = 0;
        self.tags[i] = 0;
        self.flood_skip[i] = NO_PORT;
        self.verdict[i] = Verdict::Pending;
        self.len = i + 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_until_full_then_clear() {
        let mut b = Batch::new();
        for i in 0..BATCH_SIZE {
            assert!(b.push(i as u64 * 2048, 64, 256, 1));
        }
        assert!(b.is_full());
        assert!(!b.push(0, 64, 256, 1));
        assert_eq!(b.addr[BATCH_SIZE - 1], (BATCH_SIZE as u64 - 1) * 2048);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.room(), BATCH_SIZE);
    }

    #[test]
    fn push_resets_verdict() {
        let mut b = Batch::new();
        b.push(0, 60, 0, 0);
        b.verdict[0] = Verdict::Local;
        b.clear();
        b.push(0, 60, 0, 0);
        assert_eq!(b.verdict[0], Verdict::Pending);
    }
}
