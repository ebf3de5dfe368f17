//! Partial updates of a value: [`Patch`], and the streamed rewrite that
//! serves as [`Storage::patch`](crate::Storage::patch) where a backend has
//! nothing better.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::key_locks::KeyLocks;
use crate::storage::{Condition, MetadataChanges, ObjectMeta, PutOptions, Storage};

/// Bytes a streamed rewrite moves at a time.
const CHUNK: u64 = 1 << 20;

/// Rewrites of one key run one at a time in the process.
static REWRITES: std::sync::LazyLock<KeyLocks> = std::sync::LazyLock::new(KeyLocks::new);

/// A change of part of a value: an optional new length, bytes written at
/// offsets, and metadata changes, applied together by
/// [`Storage::patch`](crate::Storage::patch).
///
/// The new length applies first (a truncation, or an extension with
/// zeros), then the writes in the order given (a later write wins where
/// two overlap). A write past the end extends the value, with zeros in any
/// gap. The metadata changes apply to the value's map.
///
/// ```
/// use tierfs_core::{Key, MemoryStorage, Patch, PutOptions, Condition, Storage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStorage::new("m");
/// let key = Key::new("log.txt")?;
/// store.put(&key, "hello world".into(), PutOptions::default()).await?;
/// // Change one word and append a line: only these bytes travel.
/// let patch = Patch::new().write(6, "there").write(11, "!\n");
/// let meta = store.patch(&key, &patch, &Condition::Exists).await?;
/// assert_eq!(meta.size, 13);
/// assert_eq!(&store.get(&key).await?[..], b"hello there!\n");
/// // Truncate to the first word.
/// store.patch(&key, &Patch::new().set_len(5), &Condition::Exists).await?;
/// assert_eq!(&store.get(&key).await?[..], b"hello");
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    len: Option<u64>,
    writes: Vec<(u64, Bytes)>,
    metadata: MetadataChanges,
}

impl Patch {
    /// A patch that changes nothing.
    pub fn new() -> Self {
        Patch::default()
    }

    /// Writes `data` at `offset`.
    pub fn write(mut self, offset: u64, data: impl Into<Bytes>) -> Self {
        self.push_write(offset, data);
        self
    }

    /// Writes `data` at `offset` (for patches built in a loop).
    pub fn push_write(&mut self, offset: u64, data: impl Into<Bytes>) {
        let data = data.into();
        if !data.is_empty() {
            self.writes.push((offset, data));
        }
    }

    /// Sets the length before the writes: a truncation, or an extension
    /// with zeros.
    pub fn set_len(mut self, len: u64) -> Self {
        self.len = Some(len);
        self
    }

    /// Changes the metadata too.
    pub fn metadata(mut self, changes: MetadataChanges) -> Self {
        self.metadata = changes;
        self
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[(u64, Bytes)] {
        &self.writes
    }

    /// The length set before the writes, if any.
    pub fn new_len(&self) -> Option<u64> {
        self.len
    }

    /// The metadata changes.
    pub fn metadata_changes(&self) -> &MetadataChanges {
        &self.metadata
    }

    /// Bytes carried by the writes.
    pub fn data_len(&self) -> u64 {
        self.writes.iter().map(|(_, d)| d.len() as u64).sum()
    }

    /// The value's length after the patch, from its length before.
    pub fn final_len(&self, old: u64) -> u64 {
        let base = self.len.unwrap_or(old);
        self.writes.iter().map(|(o, d)| o + d.len() as u64).fold(base, u64::max)
    }

    /// Refuses a patch whose writes end past `u64::MAX`.
    pub fn validate(&self) -> Result<()> {
        for (offset, data) in &self.writes {
            if offset.checked_add(data.len() as u64).is_none() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "a write of {} bytes at offset {offset} ends past the largest offset",
                        data.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Copies into `buf`, which holds the patched value's bytes from
    /// `offset` on, every write's bytes that fall in it, in order.
    pub fn overlay(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        for (at, data) in &self.writes {
            let (start, stop) = ((*at).max(offset), (at + data.len() as u64).min(end));
            if start < stop {
                let src = &data[(start - at) as usize..(stop - at) as usize];
                buf[(start - offset) as usize..(stop - offset) as usize].copy_from_slice(src);
            }
        }
    }

    /// The patched bytes of a whole value held in memory.
    pub fn apply_to(&self, old: &[u8]) -> Result<Vec<u8>> {
        self.validate()?;
        let len = usize::try_from(self.final_len(old.len() as u64))
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "the patched value would not fit in memory"))?;
        let keep = old.len().min(self.len.map_or(usize::MAX, |l| l as usize));
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&old[..keep]);
        out.resize(len, 0);
        self.overlay(0, &mut out);
        Ok(out)
    }
}

/// Applies `patch` to `key` on `store` by reading the value and writing it
/// again, streamed, with the patch laid over it: the fallback of
/// [`Storage::patch`](crate::Storage::patch) for backends that cannot
/// change part of a value. It costs a read and a write of the whole value.
/// Patches of one key through this function run one at a time in the
/// process, so concurrent patches never lose each other here; but the
/// condition is checked before the rewrite starts, not atomically with it,
/// so another kind of write (or a patch from another process) that lands
/// while the value is being copied may be overwritten. Readers see the old
/// value or the new one, never a mix.
pub async fn rewrite_patched<S: Storage + ?Sized>(
    store: &S,
    key: &Key,
    patch: &Patch,
    condition: &Condition,
) -> Result<ObjectMeta> {
    patch.validate().map_err(|e| e.or_key(key.as_str()).with_operation("patch"))?;
    let _one_at_a_time = REWRITES.write(key.as_str()).await;
    let meta = store.stat(key).await?;
    condition.check(&meta)?;
    let old_len = meta.size;
    let new_len = patch.final_len(old_len);
    let keep = old_len.min(patch.new_len().unwrap_or(u64::MAX));
    let metadata = patch.metadata_changes().applied_to(meta.metadata);
    let mut writer = store.write(key, PutOptions::with_metadata(metadata)).await?;
    let written = async {
        let mut pos = 0u64;
        if keep > 0 {
            let mut old = store.read(key, Some(0..keep)).await?;
            while let Some(chunk) = old.next().await {
                let mut chunk = BytesMut::from(&chunk?[..]);
                patch.overlay(pos, &mut chunk);
                pos += chunk.len() as u64;
                writer.write(chunk.freeze()).await?;
            }
            if pos != keep {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "the value changed while it was being patched; nothing was changed, retry",
                ));
            }
        }
        while pos < new_len {
            let mut chunk = BytesMut::zeroed((new_len - pos).min(CHUNK) as usize);
            patch.overlay(pos, &mut chunk);
            pos += chunk.len() as u64;
            writer.write(chunk.freeze()).await?;
        }
        Ok(())
    }
    .await;
    match written {
        Ok(()) => writer.finish().await,
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(backend = %store.name(), key = %key, error = %abort, "could not discard a failed patch");
            }
            Err(e.or_key(key.as_str()).with_operation("patch"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_length_then_writes_in_order() {
        let p = Patch::new().set_len(3).write(5, "xy").write(0, "AB").write(1, "c");
        assert_eq!(p.final_len(10), 7);
        assert_eq!(p.apply_to(b"0123456789").unwrap(), b"Ac2\0\0xy");
        assert_eq!(Patch::new().write(2, "zz").apply_to(b"abcdef").unwrap(), b"abzzef");
        assert_eq!(Patch::new().set_len(8).apply_to(b"abc").unwrap(), b"abc\0\0\0\0\0");
        assert_eq!(Patch::new().apply_to(b"same").unwrap(), b"same");
    }

    #[test]
    fn overlay_clips_writes_to_the_window() {
        let p = Patch::new().write(2, "abcdef").write(9, "Z");
        let mut buf = [b'.'; 5];
        p.overlay(4, &mut buf);
        assert_eq!(&buf, b"cdef.");
        let mut buf = [b'.'; 3];
        p.overlay(8, &mut buf);
        assert_eq!(&buf, b".Z.");
    }

    #[test]
    fn a_write_past_the_largest_offset_is_refused() {
        let p = Patch::new().write(u64::MAX - 1, "abc");
        assert_eq!(p.validate().unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}
