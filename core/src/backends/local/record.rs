//! The on-disk encoding of one object record in the `objects` table.
//!
//! ```text
//! u8  format (1) | u8 body (0 inline, 1 blob) | u64 size | u64 modified_ns
//! u64 version | [u64 blob_id if body = 1] | u32 n | n x (u32 len, key, u32 len, value)
//! [inline value bytes to the end if body = 0]
//! ```
//! All integers little-endian. The key is the table key and is not repeated.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};
use crate::storage::Metadata;

const FORMAT: u8 = 1;

/// Where a value's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body<'a> {
    /// In the record itself.
    Inline(&'a [u8]),
    /// In the blob file with this id.
    Blob(u64),
}

/// A decoded record borrowing from the stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record<'a> {
    pub size: u64,
    pub modified: SystemTime,
    pub version: u64,
    pub metadata: Metadata,
    pub body: Body<'a>,
}

impl Record<'_> {
    pub fn blob_id(&self) -> Option<u64> {
        match self.body {
            Body::Blob(id) => Some(id),
            Body::Inline(_) => None,
        }
    }
}

pub(super) fn encode(record: &Record<'_>) -> Vec<u8> {
    let meta_len: usize = record.metadata.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let inline_len = match record.body {
        Body::Inline(bytes) => bytes.len(),
        Body::Blob(_) => 8,
    };
    let mut out = Vec::with_capacity(30 + meta_len + inline_len);
    out.push(FORMAT);
    out.push(matches!(record.body, Body::Blob(_)) as u8);
    out.extend_from_slice(&record.size.to_le_bytes());
    let nanos = record.modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    out.extend_from_slice(&nanos.to_le_bytes());
    out.extend_from_slice(&record.version.to_le_bytes());
    if let Body::Blob(id) = record.body {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out.extend_from_slice(&(record.metadata.len() as u32).to_le_bytes());
    for (k, v) in &record.metadata {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    if let Body::Inline(bytes) = record.body {
        out.extend_from_slice(bytes);
    }
    out
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(corrupt("record is truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| corrupt("metadata is not UTF-8"))
    }
}

fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("the store is damaged: {what}; restore the store directory from a backup"),
    )
}

pub(super) fn decode(bytes: &[u8]) -> Result<Record<'_>> {
    let mut c = Cursor { bytes };
    if c.u8()? != FORMAT {
        return Err(corrupt("unknown record format"));
    }
    let is_blob = match c.u8()? {
        0 => false,
        1 => true,
        _ => return Err(corrupt("unknown body kind")),
    };
    let size = c.u64()?;
    let modified = UNIX_EPOCH + Duration::from_nanos(c.u64()?);
    let version = c.u64()?;
    let blob = if is_blob { Some(c.u64()?) } else { None };
    let n = c.u32()?;
    let mut metadata = Metadata::new();
    for _ in 0..n {
        let k = c.string()?;
        let v = c.string()?;
        metadata.insert(k, v);
    }
    let body = match blob {
        Some(id) => Body::Blob(id),
        None if c.bytes.len() as u64 == size => Body::Inline(c.bytes),
        None => return Err(corrupt("inline value length does not match its size")),
    };
    Ok(Record { size, modified, version, metadata, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut metadata = Metadata::new();
        metadata.insert("mode".into(), "0644".into());
        let modified = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        for body in [Body::Inline(b"hello"), Body::Blob(42)] {
            let r = Record { size: 5, modified, version: 7, metadata: metadata.clone(), body };
            assert_eq!(decode(&encode(&r)).unwrap(), r);
        }
    }

    #[test]
    fn rejects_damage() {
        let r = Record {
            size: 3,
            modified: UNIX_EPOCH,
            version: 1,
            metadata: Metadata::new(),
            body: Body::Inline(b"abc"),
        };
        let bytes = encode(&r);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
