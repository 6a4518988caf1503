//! The classic libpcap file format: enough to read what tcpdump, tshark,
//! scapy and trafgen write (either byte order, micro- or nanosecond
//! stamps, Ethernet link type) and to write files they all read.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record accepted on read; anything larger is a corrupt file.
const MAX_RECORD: u32 = 256 * 1024;

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

pub struct PcapReader<R: Read> {
    inner: R,
    swapped: bool,
    nanos: bool,
}

impl PcapReader<BufReader<File>> {
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::new(BufReader::new(File::open(path)?))
    }
}

/// One record: timestamp in nanoseconds since the epoch, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ts_nanos: u64,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

impl<R: Read> PcapReader<R> {
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut h = [0u8; 24];
        inner.read_exact(&mut h)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swapped, nanos) = match magic {
            MAGIC_US => (false, false),
            MAGIC_NS => (false, true),
            m if m.swap_bytes() == MAGIC_US => (true, false),
            m if m.swap_bytes() == MAGIC_NS => (true, true),
            m => return Err(bad(format!("not a pcap file (magic {m:#010x})"))),
        };
        let r = PcapReader {
            inner,
            swapped,
            nanos,
        };
        let link = r.u32_at(&h, 20);
        if link != LINKTYPE_ETHERNET {
            return Err(bad(format!("link type {link} is not Ethernet (1)")));
        }
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// Reads the next record into `buf` (resized to the captured length).
    /// `Ok(None)` at a clean end of file.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<(u64, u32)>> {
        let mut h = [0u8; 16];
        match self.inner.read_exact(&mut h[..1]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        self.inner.read_exact(&mut h[1..])?;
        let sec = self.u32_at(&h, 0) as u64;
        let frac = self.u32_at(&h, 4) as u64;
        let incl = self.u32_at(&h, 8);
        let orig = self.u32_at(&h, 12);
        if incl > MAX_RECORD {
            return Err(bad(format!("record of {incl} bytes: corrupt file")));
        }
        buf.resize(incl as usize, 0);
        self.inner.read_exact(buf)?;
        let ts = sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        Ok(Some((ts, orig)))
    }

    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        let mut data = Vec::new();
        Ok(self
            .next_into(&mut data)?
            .map(|(ts_nanos, orig_len)| Record {
                ts_nanos,
                orig_len,
                data,
            }))
    }
}

pub struct PcapWriter<W: Write> {
    inner: W,
}

impl PcapWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes a microsecond, little-endian, Ethernet file header.
    pub fn new(mut inner: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        inner.write_all(&h)?;
        Ok(PcapWriter { inner })
    }

    pub fn write_at(&mut self, ts_nanos: u64, data: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_nanos / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&(((ts_nanos % 1_000_000_000) / 1000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(data)
    }

    /// Writes a record stamped with the current time.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        self.write_at(now, data)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_at(1_700_000_000_123_456_000, &[1, 2, 3]).unwrap();
        w.write_at(5_000, &[0xaa; 60]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 60);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let a = r.next_record().unwrap().unwrap();
        assert_eq!(a.data, vec![1, 2, 3]);
        assert_eq!(a.ts_nanos, 1_700_000_000_123_456_000);
        assert_eq!(r.next_record().unwrap().unwrap().data.len(), 60);
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn reads_big_endian_nanosecond_files() {
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC_NS.to_be_bytes());
        f.extend_from_slice(&[
            0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1,
        ]);
        f.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 2, 0xde, 0xad]);
        let mut r = PcapReader::new(&f[..]).unwrap();
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!((rec.ts_nanos, rec.data), (2_000_000_007, vec![0xde, 0xad]));
    }

    #[test]
    fn rejects_garbage() {
        assert!(PcapReader::new(&[0u8; 24][..]).is_err());
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_at(0, &[1, 2, 3, 4]).unwrap();
        let mut bytes = w.into_inner();
        bytes.truncate(bytes.len() - 1);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert!(
            r.next_record().is_err(),
            "truncated record is an error, not EOF"
        );
    }
}
