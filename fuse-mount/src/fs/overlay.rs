//! Overlays: the changed ranges of a large file the store holds, so that a
//! commit sends only those ([`Storage::patch`](tierfs_core::Storage::patch))
//! instead of copying the file in and writing it whole.
//!
//! The changed bytes sit in a sparse [`Spool`] at their own offsets, with
//! the set of changed ranges beside it; a read takes changed bytes from the
//! spool, the others from the store, and zeros past the store's length.
//! The file's length never drops below the store's here: cutting bytes of
//! the stored value turns the overlay into a full spool (see
//! [`FileState::spool`](super::file::FileState::spool)).

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use tierfs_core::Patch;

use super::spool::{Spool, SpoolDir};

/// Changed bytes past which an overlay becomes a full spool: a patch
/// carries its bytes in memory, and a file changed this much is as cheap
/// to write whole.
pub const MAX_CHANGED: u64 = 64 << 20;

/// A stored file overwritten in order from its start for this many bytes
/// is streamed to the store instead (see `FileState::overwrite_stream`).
pub const OVERWRITE_STREAM_MIN: u64 = 8 << 20;

/// Where a piece of a read comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Changed bytes.
    Changed(Bytes),
    /// This range of the stored value.
    Stored(Range<u64>),
    /// Zeros (past the stored value's end).
    Zeros(u64),
}

/// The changes of one file over the value the store holds.
#[derive(Debug)]
pub struct Overlay {
    /// The stored value's length.
    base_len: u64,
    /// The file's length (at least `base_len`).
    len: u64,
    /// The changed bytes, at their offsets.
    spool: Spool,
    /// Changed ranges, merged and sorted: start to end.
    ranges: BTreeMap<u64, u64>,
}

impl Overlay {
    /// No change yet over a stored value of `base_len` bytes.
    pub fn new(dir: &Arc<SpoolDir>, base_len: u64) -> Self {
        Overlay { base_len, len: base_len, spool: Spool::new(dir), ranges: BTreeMap::new() }
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The stored value's length.
    pub fn base_len(&self) -> u64 {
        self.base_len
    }

    /// Bytes changed.
    pub fn changed(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.spool.write_at(offset, data)?;
        self.mark(offset, offset + data.len() as u64);
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }

    /// Sets the length; `len` must not cut the stored value (at least
    /// [`Overlay::base_len`]). Changes past it are dropped; bytes past the
    /// stored value that no change covers read as zeros.
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        debug_assert!(len >= self.base_len);
        if len < self.len {
            let cut: Vec<(u64, u64)> =
                self.ranges.range(..).filter(|(_, e)| **e > len).map(|(s, e)| (*s, *e)).collect();
            for (start, end) in cut {
                self.ranges.remove(&start);
                if start < len {
                    self.ranges.insert(start, end.min(len));
                }
            }
            if self.spool.len() > len {
                self.spool.set_len(len)?;
            }
        }
        self.len = len;
        Ok(())
    }

    /// Records `start..end` as changed, merging neighbours.
    fn mark(&mut self, mut start: u64, mut end: u64) {
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Where the bytes of `offset..offset + size` (clipped to the length)
    /// come from, in order.
    pub fn pieces(&self, offset: u64, size: u64) -> io::Result<Vec<Piece>> {
        let end = (offset + size).min(self.len);
        let mut pieces = Vec::new();
        let mut pos = offset;
        while pos < end {
            // The changed range holding `pos`, or the next one.
            let holding = self.ranges.range(..=pos).next_back().filter(|(_, e)| **e > pos);
            if let Some((_, e)) = holding {
                let stop = (*e).min(end);
                pieces.push(Piece::Changed(self.spool.read_at(pos, (stop - pos) as usize)?));
                pos = stop;
                continue;
            }
            let next = self.ranges.range(pos..).next().map_or(end, |(s, _)| (*s).min(end));
            if pos < self.base_len {
                let stop = next.min(self.base_len);
                pieces.push(Piece::Stored(pos..stop));
                pos = stop;
            } else {
                pieces.push(Piece::Zeros(next - pos));
                pos = next;
            }
        }
        Ok(pieces)
    }

    /// `Some(n)` when the changes are exactly the bytes `0..n` (a file
    /// being overwritten in order from its start).
    pub fn in_order_from_start(&self) -> Option<u64> {
        match self.ranges.iter().next() {
            Some((0, end)) if self.ranges.len() == 1 => Some(*end),
            _ => None,
        }
    }

    /// The ranges of the stored value not changed here.
    pub fn unchanged(&self) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut pos = 0;
        for (s, e) in &self.ranges {
            if *s >= self.base_len {
                break;
            }
            if *s > pos {
                gaps.push(pos..*s);
            }
            pos = pos.max(*e);
        }
        if pos < self.base_len {
            gaps.push(pos..self.base_len);
        }
        gaps
    }

    /// The patch that makes the stored value this file.
    pub fn to_patch(&self) -> io::Result<Patch> {
        let mut patch = Patch::new();
        if self.len != self.base_len {
            patch = patch.set_len(self.len);
        }
        for (s, e) in &self.ranges {
            patch.push_write(*s, self.spool.read_at(*s, (e - s) as usize)?);
        }
        Ok(patch)
    }

    /// The spool of changed bytes (the unchanged ranges still to be filled
    /// in from the store, see [`Overlay::unchanged`]), at the file's length.
    pub fn into_spool(mut self) -> io::Result<Spool> {
        self.spool.set_len(self.len)?;
        Ok(self.spool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(base_len: u64) -> (tempfile::TempDir, Overlay) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SpoolDir::new(tmp.path(), 1 << 20, 1 << 20).unwrap();
        (tmp, Overlay::new(&dir, base_len))
    }

    fn bytes(s: &str) -> Piece {
        Piece::Changed(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn reads_merge_changes_with_the_stored_value() {
        let (_tmp, mut o) = overlay(100);
        o.write_at(10, b"abc").unwrap();
        o.write_at(12, b"XYZ").unwrap();
        o.write_at(40, b"q").unwrap();
        assert_eq!(o.changed(), 6);
        assert_eq!(
            o.pieces(0, 50).unwrap(),
            vec![
                Piece::Stored(0..10),
                bytes("abXYZ"),
                Piece::Stored(15..40),
                bytes("q"),
                Piece::Stored(41..50)
            ]
        );
        assert_eq!(o.unchanged(), vec![0..10, 15..40, 41..100]);
        o.write_at(98, b"tail").unwrap();
        assert_eq!(o.len(), 102);
        assert_eq!(o.pieces(95, 100).unwrap(), vec![Piece::Stored(95..98), bytes("tail")]);
        let patch = o.to_patch().unwrap();
        assert_eq!(patch.new_len(), Some(102));
        let offsets: Vec<u64> = patch.writes().iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, vec![10, 40, 98]);
    }

    #[test]
    fn extensions_read_as_zeros_and_cuts_drop_changes() {
        let (_tmp, mut o) = overlay(10);
        o.set_len(20).unwrap();
        assert_eq!(o.pieces(8, 100).unwrap(), vec![Piece::Stored(8..10), Piece::Zeros(10)]);
        o.write_at(15, b"hi").unwrap();
        o.set_len(16).unwrap();
        assert_eq!(o.pieces(14, 10).unwrap(), vec![Piece::Zeros(1), bytes("h")]);
        o.set_len(18).unwrap();
        assert_eq!(o.pieces(14, 10).unwrap(), vec![Piece::Zeros(1), bytes("h"), Piece::Zeros(2)]);
        let patch = o.to_patch().unwrap();
        assert_eq!(patch.apply_to(b"0123456789").unwrap(), b"0123456789\0\0\0\0\0h\0\0");
        assert_eq!(o.unchanged(), vec![(0..10)]);
    }
}
