//! Building and walking netlink messages: a header, a fixed family
//! struct, then 4-byte-aligned type-length-value attributes, some nested.

pub struct MsgBuilder {
    buf: Vec<u8>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl MsgBuilder {
    pub fn new(ty: u16, flags: u16) -> MsgBuilder {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        MsgBuilder { buf }
    }

    /// Appends bytes, padded to 4.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// `struct ifinfomsg` with AF_UNSPEC.
    pub fn ifinfo(&mut self, index: u32, flags: u32, change: u32) {
        let mut m = [0u8; 16];
        m[4..8].copy_from_slice(&index.to_ne_bytes());
        m[8..12].copy_from_slice(&flags.to_ne_bytes());
        m[12..16].copy_from_slice(&change.to_ne_bytes());
        self.raw(&m);
    }

    pub fn attr(&mut self, ty: u16, val: &[u8]) {
        let len = (4 + val.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.raw(val);
    }

    pub fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
    }

    /// Opens a nested attribute; returns its offset for `end`.
    pub fn nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    pub fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Writes length and sequence number; returns the message bytes.
    pub fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// Iterates (type, value) over a run of attributes; stops at the first
/// malformed one.
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Attrs { rest: b }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let ty = u16::from_ne_bytes([self.rest[2], self.rest[3]]);
        if len < 4 || len > self.rest.len() {
            return None;
        }
        let val = &self.rest[4..len];
        self.rest = &self.rest[align4(len).min(self.rest.len())..];
        Some((ty, val))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_round_trip() {
        let mut m = MsgBuilder::new(16, 1);
        m.ifinfo(7, 0, 0);
        let n = m.nest(18);
        m.attr_str(1, "veth");
        m.attr_u32(2, 0xdeadbeef);
        m.end(n);
        let bytes = m.finish(42).to_vec();
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(bytes.len() % 4, 0);
        let attrs: Vec<_> = Attrs::new(&bytes[32..]).collect();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].0, 18);
        let inner: Vec<_> = Attrs::new(attrs[0].1).collect();
        assert_eq!(inner[0], (1, &b"veth\0"[..]));
        assert_eq!(inner[1].1, &0xdeadbeefu32.to_ne_bytes());
    }
}
