//! Writing the first WAL segment of a restored member:
//! `member/wal/0000000000000000-0000000000000000.wal`.
//!
//! Each record is a length field (u64 little endian; the top byte `0x80 | pad` when the record
//! is padded to 8-byte alignment) followed by a `walpb.Record` whose CRC is the rolling CRC-32C
//! of every record's data in the segment so far.

use std::io::Write;
use std::path::Path;

use crate::store::pb::{self, record};

/// etcd preallocates WAL segments to this size.
pub const SEGMENT_BYTES: u64 = 64 * 1000 * 1000;

/// A WAL segment being written.
#[derive(Debug)]
pub struct WalWriter {
    buf: Vec<u8>,
    crc: u32,
}

impl Default for WalWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl WalWriter {
    /// A new segment, starting with the CRC record (previous CRC 0).
    pub fn new() -> WalWriter {
        let mut w = WalWriter { buf: Vec::new(), crc: 0 };
        w.record(record::CRC, None);
        w
    }

    /// Appends a record.
    pub fn record(&mut self, kind: u64, data: Option<&[u8]>) {
        if let Some(d) = data {
            self.crc = crc32c::crc32c_append(self.crc, d);
        }
        let rec = pb::wal_record(kind, self.crc, data);
        let pad = (8 - rec.len() % 8) % 8;
        let mut len = rec.len() as u64;
        if pad != 0 {
            len |= ((0x80 | pad) as u64) << 56;
        }
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&rec);
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    /// Writes the segment (preallocated as etcd does), fsynced.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        f.write_all(&self.buf)?;
        f.set_len(SEGMENT_BYTES.max(self.buf.len() as u64))?;
        f.sync_all()
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}
