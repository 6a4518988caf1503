//! The fields an ACL looks at, cut into 16-bit chunks: the classifier
//! indexes one table per chunk, and both address families share the layout
//! (an IPv4 address fills the first two chunks of its 128-bit slot).

use crate::batch::{flags, Batch};
use crate::wire::EtherType;

/// Chunk positions in [`AclKey::c`].
pub mod chunk {
    /// Eight chunks of the source address, most significant first.
    pub const SRC: usize = 0;
    pub const DST: usize = 8;
    pub const SPORT: usize = 16;
    pub const DPORT: usize = 17;
    pub const PROTO: usize = 18;
    pub const ETHERTYPE: usize = 19;
    pub const VLAN: usize = 20;
    pub const DOMAIN: usize = 21;
    pub const IN_PORT: usize = 22;
    pub const COUNT: usize = 23;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
    /// Not IP: only ethertype, VLAN, domain and port fields apply.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclKey {
    pub family: Family,
    pub c: [u16; chunk::COUNT],
}

impl AclKey {
    pub const EMPTY: AclKey = AclKey {
        family: Family::Other,
        c: [0; chunk::COUNT],
    };

    /// Left-aligned source address (IPv4 in the top 32 bits).
    pub fn src(&self) -> u128 {
        addr_of(&self.c[chunk::SRC..chunk::SRC + 8])
    }

    pub fn dst(&self) -> u128 {
        addr_of(&self.c[chunk::DST..chunk::DST + 8])
    }

    pub fn set_src(&mut self, a: u128) {
        put_addr(&mut self.c[chunk::SRC..chunk::SRC + 8], a);
    }

    pub fn set_dst(&mut self, a: u128) {
        put_addr(&mut self.c[chunk::DST..chunk::DST + 8], a);
    }

    /// The key of the same flow seen from the other end.
    #[inline]
    pub fn reversed(&self) -> AclKey {
        let mut r = *self;
        r.c[chunk::SRC..chunk::SRC + 8].copy_from_slice(&self.c[chunk::DST..chunk::DST + 8]);
        r.c[chunk::DST..chunk::DST + 8].copy_from_slice(&self.c[chunk::SRC..chunk::SRC + 8]);
        r.c.swap(chunk::SPORT, chunk::DPORT);
        r
    }

    /// Builds the key of packet `i` of a parsed batch from its bytes.
    /// Short or odd packets get zeros where a field is missing: the parse
    /// stage has already dropped malformed ones, so this never guesses
    /// for a packet that reaches the ACL.
    #[inline]
    pub fn from_packet(batch: &Batch, i: usize, bytes: &[u8], vlan: u16) -> AclKey {
        let mut k = AclKey::EMPTY;
        let f = batch.flags[i];
        let l3 = batch.l3_off[i] as usize;
        if f & flags::IPV4 != 0 {
            k.family = Family::V4;
            copy_chunks(
                &mut k.c[chunk::SRC..chunk::SRC + 2],
                bytes.get(l3 + 12..l3 + 16),
            );
            copy_chunks(
                &mut k.c[chunk::DST..chunk::DST + 2],
                bytes.get(l3 + 16..l3 + 20),
            );
        } else if f & flags::IPV6 != 0 {
            k.family = Family::V6;
            copy_chunks(
                &mut k.c[chunk::SRC..chunk::SRC + 8],
                bytes.get(l3 + 8..l3 + 24),
            );
            copy_chunks(
                &mut k.c[chunk::DST..chunk::DST + 8],
                bytes.get(l3 + 24..l3 + 40),
            );
        }
        if k.family != Family::Other {
            let proto = batch.l4_proto[i];
            k.c[chunk::PROTO] = proto as u16;
            // Ports exist only on the first fragment of a ported protocol;
            // later fragments match port rules as port 0, as in rte_acl.
            if f & flags::L4 != 0 && matches!(proto, 6 | 17 | 132) {
                let l4 = batch.l4_off[i] as usize;
                copy_chunks(
                    &mut k.c[chunk::SPORT..chunk::SPORT + 2],
                    bytes.get(l4..l4 + 4),
                );
            }
        }
        k.c[chunk::ETHERTYPE] = batch.ethertype[i];
        k.c[chunk::VLAN] = vlan;
        k.c[chunk::DOMAIN] = batch.domain[i];
        k.c[chunk::IN_PORT] = batch.in_port[i];
        k
    }

    /// A key from plain fields (tests, benchmarks, ClassBench traces).
    #[allow(clippy::too_many_arguments)]
    pub fn ip(v6: bool, src: u128, dst: u128, proto: u8, sport: u16, dport: u16) -> AclKey {
        let mut k = AclKey::EMPTY;
        k.family = if v6 { Family::V6 } else { Family::V4 };
        k.set_src(src);
        k.set_dst(dst);
        k.c[chunk::PROTO] = proto as u16;
        k.c[chunk::SPORT] = sport;
        k.c[chunk::DPORT] = dport;
        k.c[chunk::ETHERTYPE] = if v6 { EtherType::IPV6 } else { EtherType::IPV4 };
        k
    }
}

fn addr_of(c: &[u16]) -> u128 {
    c.iter().fold(0u128, |a, &x| (a << 16) | x as u128)
}

fn put_addr(c: &mut [u16], a: u128) {
    for (i, x) in c.iter_mut().enumerate() {
        *x = (a >> (112 - 16 * i)) as u16;
    }
}

#[inline(always)]
fn copy_chunks(dst: &mut [u16], src: Option<&[u8]>) {
    if let Some(s) = src {
        for (d, b) in dst.iter_mut().zip(s.chunks_exact(2)) {
            *d = u16::from_be_bytes([b[0], b[1]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_reverse() {
        let k = AclKey::ip(
            false,
            0xc612_0001u128 << 96,
            0xc613_0002u128 << 96,
            6,
            1000,
            80,
        );
        assert_eq!(k.c[chunk::SRC], 0xc612);
        assert_eq!(k.c[chunk::SRC + 1], 0x0001);
        assert_eq!(k.src() >> 96, 0xc612_0001);
        let r = k.reversed();
        assert_eq!(r.src(), k.dst());
        assert_eq!((r.c[chunk::SPORT], r.c[chunk::DPORT]), (80, 1000));
        assert_eq!(r.reversed(), k);
    }
}
