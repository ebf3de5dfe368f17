//! The on-disk format of the log.
//!
//! ```text
//! file   := MAGIC (8 bytes, "TFSALOG" 0x01) group*
//! group  := total_len u64 | head_len u32 | head_crc u32 | head | values
//! head   := seq u64 | modified_nanos u64 | op_count u32 | op*
//! op     := 1 (put)    | key | meta_count u32 | (str str)* | value_len u64 | value_crc u32
//!         | 2 (delete) | key
//!         | 3 (rename) | from | to
//!         | 4 (metadata) | key | meta_count u32 | (str str)*
//! key, str := len u32 | UTF-8 bytes
//! values := the values of the group's puts, back to back in op order
//! ```
//!
//! All integers are little-endian. `total_len` counts the bytes after the
//! 16-byte group header (`head_len` + the values); `head_crc` is the CRC-32
//! of `total_len`, `head_len` and the head. A group is the unit of
//! atomicity: it is applied whole or, if torn by a crash, not at all.
//!
//! A `metadata` op replaces a live key's metadata map and keeps its value
//! where it is (logs with one are not readable by versions before it).

use tierfs_plugin_api::Metadata;

use crate::crc::{crc32, Crc32};

/// First bytes of every log file.
pub const MAGIC: &[u8; 8] = b"TFSALOG\x01";
/// Size of a group header.
pub const GROUP_HEADER: u64 = 16;

const PUT: u8 = 1;
const DELETE: u8 = 2;
const RENAME: u8 = 3;
const METADATA: u8 = 4;

/// One operation of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// Store a value of `len` bytes (in the group's values) with checksum `crc`.
    Put {
        /// The key.
        key: &'a str,
        /// The metadata map.
        metadata: Metadata,
        /// Length of the value.
        len: u64,
        /// CRC-32 of the value.
        crc: u32,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: &'a str,
    },
    /// Move a key's value and metadata to another key.
    Rename {
        /// The key moved.
        from: &'a str,
        /// Where it goes.
        to: &'a str,
    },
    /// Replace a live key's metadata map, keeping its value.
    Metadata {
        /// The key.
        key: &'a str,
        /// The new map.
        metadata: Metadata,
    },
}

/// A decoded group head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// The group's sequence number; the version of everything it writes.
    pub seq: u64,
    /// When the group was written, in nanoseconds since the Unix epoch.
    pub modified_nanos: u64,
    /// The operations, in order.
    pub ops: Vec<Op<'a>>,
}

impl Head<'_> {
    /// Total length of the values the puts announce.
    pub fn values_len(&self) -> Option<u64> {
        self.ops.iter().try_fold(0u64, |sum, op| match op {
            Op::Put { len, .. } => sum.checked_add(*len),
            _ => Some(sum),
        })
    }
}

/// A decoded group header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupHeader {
    /// Bytes after the header.
    pub total_len: u64,
    /// Bytes of the head.
    pub head_len: u32,
    /// Checksum of `total_len`, `head_len` and the head.
    pub head_crc: u32,
}

impl GroupHeader {
    /// Decodes the 16 header bytes.
    pub fn decode(bytes: &[u8; GROUP_HEADER as usize]) -> Self {
        let mut total = [0; 8];
        total.copy_from_slice(&bytes[0..8]);
        let mut head_len = [0; 4];
        head_len.copy_from_slice(&bytes[8..12]);
        let mut crc = [0; 4];
        crc.copy_from_slice(&bytes[12..16]);
        GroupHeader {
            total_len: u64::from_le_bytes(total),
            head_len: u32::from_le_bytes(head_len),
            head_crc: u32::from_le_bytes(crc),
        }
    }

    /// Whether `head` matches the checksum.
    pub fn verify(&self, head: &[u8]) -> bool {
        let mut c = Crc32::new();
        c.update(&self.total_len.to_le_bytes());
        c.update(&self.head_len.to_le_bytes());
        c.update(head);
        c.finish() == self.head_crc
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes a group's header and head for values totalling `values_len`
/// bytes; the caller appends the values. `None` if a string is longer
/// than 4 GiB or the head is.
pub fn encode_prefix(seq: u64, modified_nanos: u64, ops: &[Op<'_>], values_len: u64) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(&seq.to_le_bytes());
    head.extend_from_slice(&modified_nanos.to_le_bytes());
    head.extend_from_slice(&u32::try_from(ops.len()).ok()?.to_le_bytes());
    for op in ops {
        let strings: Vec<&str> = match op {
            Op::Put { key, metadata, .. } | Op::Metadata { key, metadata } => std::iter::once(*key)
                .chain(metadata.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
                .collect(),
            Op::Delete { key } => vec![key],
            Op::Rename { from, to } => vec![from, to],
        };
        if strings.iter().any(|s| u32::try_from(s.len()).is_err()) {
            return None;
        }
        match op {
            Op::Put { key, metadata, len, crc } => {
                head.push(PUT);
                put_str(&mut head, key);
                head.extend_from_slice(&u32::try_from(metadata.len()).ok()?.to_le_bytes());
                for (k, v) in metadata {
                    put_str(&mut head, k);
                    put_str(&mut head, v);
                }
                head.extend_from_slice(&len.to_le_bytes());
                head.extend_from_slice(&crc.to_le_bytes());
            }
            Op::Delete { key } => {
                head.push(DELETE);
                put_str(&mut head, key);
            }
            Op::Rename { from, to } => {
                head.push(RENAME);
                put_str(&mut head, from);
                put_str(&mut head, to);
            }
            Op::Metadata { key, metadata } => {
                head.push(METADATA);
                put_str(&mut head, key);
                head.extend_from_slice(&u32::try_from(metadata.len()).ok()?.to_le_bytes());
                for (k, v) in metadata {
                    put_str(&mut head, k);
                    put_str(&mut head, v);
                }
            }
        }
    }
    let head_len = u32::try_from(head.len()).ok()?;
    let total_len = (head.len() as u64).checked_add(values_len)?;
    let mut c = Crc32::new();
    c.update(&total_len.to_le_bytes());
    c.update(&head_len.to_le_bytes());
    c.update(&head);
    let mut out = Vec::with_capacity(GROUP_HEADER as usize + head.len());
    out.extend_from_slice(&total_len.to_le_bytes());
    out.extend_from_slice(&head_len.to_le_bytes());
    out.extend_from_slice(&c.finish().to_le_bytes());
    out.extend_from_slice(&head);
    Some(out)
}

/// Encodes a whole group whose values are in memory: one buffer for one write.
pub fn encode_group(seq: u64, modified_nanos: u64, ops: &[Op<'_>], values: &[&[u8]]) -> Option<Vec<u8>> {
    let values_len = values.iter().try_fold(0u64, |sum, v| sum.checked_add(v.len() as u64))?;
    let mut out = encode_prefix(seq, modified_nanos, ops, values_len)?;
    out.reserve(usize::try_from(values_len).ok()?);
    for v in values {
        out.extend_from_slice(v);
    }
    Some(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.bytes.len() < n {
            return Err("the head is truncated");
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn str(&mut self) -> Result<&'a str, &'static str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| "a string is not UTF-8")
    }

    fn metadata(&mut self) -> Result<Metadata, &'static str> {
        let n = self.u32()?;
        let mut metadata = Metadata::new();
        for _ in 0..n {
            let k = self.str()?;
            let v = self.str()?;
            metadata.insert(k.to_owned(), v.to_owned());
        }
        Ok(metadata)
    }
}

/// Decodes a head whose checksum was verified.
pub fn decode_head(bytes: &[u8]) -> Result<Head<'_>, &'static str> {
    let mut r = Reader { bytes };
    let seq = r.u64()?;
    let modified_nanos = r.u64()?;
    let count = r.u32()?;
    let mut ops = Vec::new();
    for _ in 0..count {
        ops.push(match r.u8()? {
            PUT => {
                let key = r.str()?;
                let metadata = r.metadata()?;
                let len = r.u64()?;
                let crc = r.u32()?;
                Op::Put { key, metadata, len, crc }
            }
            DELETE => Op::Delete { key: r.str()? },
            RENAME => Op::Rename { from: r.str()?, to: r.str()? },
            METADATA => Op::Metadata { key: r.str()?, metadata: r.metadata()? },
            _ => return Err("unknown operation"),
        });
    }
    if !r.bytes.is_empty() {
        return Err("the head has trailing bytes");
    }
    Ok(Head { seq, modified_nanos, ops })
}

/// Checksum of a value, as stored in its put.
pub fn value_crc(value: &[u8]) -> u32 {
    crc32(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip() {
        let mut metadata = Metadata::new();
        metadata.insert("mode".into(), "644".into());
        let ops = vec![
            Op::Put { key: "a/b", metadata, len: 3, crc: value_crc(b"abc") },
            Op::Delete { key: "gone" },
            Op::Rename { from: "x", to: "y" },
            Op::Metadata { key: "y", metadata: Metadata::from([("k".to_owned(), "v".to_owned())]) },
        ];
        let group = encode_group(7, 99, &ops, &[b"abc"]).unwrap();
        let mut header = [0; GROUP_HEADER as usize];
        header.copy_from_slice(&group[..16]);
        let header = GroupHeader::decode(&header);
        assert_eq!(header.total_len as usize, group.len() - 16);
        let head = &group[16..16 + header.head_len as usize];
        assert!(header.verify(head));
        let decoded = decode_head(head).unwrap();
        assert_eq!(decoded, Head { seq: 7, modified_nanos: 99, ops });
        assert_eq!(decoded.values_len(), Some(3));
        assert_eq!(&group[16 + header.head_len as usize..], b"abc");

        let mut damaged = head.to_vec();
        damaged[3] ^= 1;
        assert!(!header.verify(&damaged));
    }
}
