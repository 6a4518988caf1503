//! Internet checksum arithmetic for what the router rewrites: the
//! incremental update of RFC 1624 for a changed word (TTL, ICMP type),
//! and a sum without allocation for what it builds (ICMP, ND).

/// One's-complement sum of `data` as 16-bit big-endian words, not folded.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut s: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        s += (*last as u32) << 8;
    }
    s
}

/// Folds a sum to 16 bits and complements it: the checksum field.
#[inline]
pub fn finish(mut s: u32) -> u16 {
    // Two folds carry any u32 into 16 bits (the first leaves at most
    // 0x1fffe), without the loop's branch on the forwarding path.
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered
/// data changed from `old` to `new`: HC' = ~(~HC + ~m + m').
#[inline(always)]
pub fn update(hc: u16, old: u16, new: u16) -> u16 {
    let s = (!hc as u32) + (!old as u32) + new as u32;
    finish(s)
}

/// The ICMPv6 checksum of `msg` (its checksum field zero) from `src` to
/// `dst` (RFC 4443 section 2.3: the pseudo-header of RFC 8200 8.1).
pub fn icmp6(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let s = sum(src) + sum(dst) + msg.len() as u32 + 58 + sum(msg);
    finish(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The incremental update agrees with a full recomputation for
        /// any header and any changed word (the TTL/protocol word of an
        /// IPv4 header, say).
        #[test]
        fn incremental_update_matches_recomputation(
            mut hdr in proptest::collection::vec(any::<u8>(), 20),
            at in 0usize..10,
            new in any::<u16>(),
        ) {
            hdr[10] = 0;
            hdr[11] = 0;
            let at = if at == 5 { 4 } else { at } * 2;
            let c = finish(sum(&hdr));
            let old = u16::from_be_bytes([hdr[at], hdr[at + 1]]);
            hdr[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let full = finish(sum(&hdr));
            let inc = update(c, old, new);
            // 0x0000 and 0xffff are the same one's-complement value.
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0),
                "incremental {inc:#06x} full {full:#06x}");
        }
    }
}
