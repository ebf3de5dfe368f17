//! `TieredStorage`: hot and cold tiers with background migration.
//!
//! New writes go to the hot tier. A background pass ([`TieredStorage::migrate_once`],
//! run every `interval_secs` by [`TieredStorage::spawn_migrator`]) moves keys
//! that were neither written nor read for `demote_after_secs` to the cold
//! tier, and a cold key read `promote_after_reads` times moves back up.
//!
//! Invariants, and why no reader ever sees a key missing or stale:
//! - The hot tier is authoritative: a read looks in the hot tier first and
//!   only then in the cold one.
//! - A move copies first and deletes the source second, both under the
//!   key's write lock, which every read of that key holds shared. A reader
//!   therefore sees the key before or after the move, never half-way; a
//!   crash between copy and delete leaves two equal copies, the hot one wins,
//!   and the next pass finishes the move (resumable).
//! - A delete writes a *tombstone* in the hot tier (an empty value with the
//!   metadata `tierfs.tombstone = "1"`) instead of removing the key, so a
//!   cold copy cannot show through; deletes inside a batch are tombstones in
//!   the same atomic batch. The migration pass removes the cold copy first
//!   and the tombstone second.
//! - Listings merge both tiers, the hot entry winning, and drop tombstones.
//!   The hot tier must return metadata in listings (local and memory do).
//!
//! - The access record (each key's last read, and reads of cold keys) is
//!   kept in memory and forgotten by a restart. That changes placement
//!   only: a key read just before a restart is judged by its last write on
//!   the next pass (and may be demoted), and cold reads count towards
//!   promotion from zero again; by the invariants above no key is ever
//!   missing or stale because of it.
//!
//! Capabilities: `rename` is not offered (a move across tiers cannot be
//! atomic); the manager emulates rename by copy and delete.

mod options;
mod policy;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use parking_lot::Mutex;

pub use options::MigrationSettings;
pub use policy::{Tiered, TieredConfig};

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::key_locks::KeyLocks;
use crate::metrics::StorageMetrics;
use crate::storage::{
    copy_value, merge_list, BatchOp, ByteStream, Capabilities, Condition, ListEntry, ListOptions, ListPage,
    MergeSource, Metadata, MetadataChanges, ObjectMeta, Patch, PutOptions, Storage, StorageExt, ValueWriter,
};

/// Metadata key marking a deleted key in the hot tier.
pub const TOMBSTONE: &str = "tierfs.tombstone";

/// What one migration pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Keys moved from hot to cold.
    pub demoted: usize,
    /// Keys moved from cold to hot.
    pub promoted: usize,
    /// Tombstones cleared (with their cold copies).
    pub tombstones_cleared: usize,
}

#[derive(Debug)]
struct Access {
    reads: u32,
    last: Instant,
}

/// Hot and cold tiers as one store.
///
/// ```
/// use std::sync::Arc;
/// use tierfs_core::metrics::StorageMetrics;
/// use tierfs_core::policies::tiered::{MigrationSettings, TieredStorage};
/// use tierfs_core::{Key, MemoryStorage, Storage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (hot, cold) = (Arc::new(MemoryStorage::new("hot")), Arc::new(MemoryStorage::new("cold")));
/// let settings = MigrationSettings { demote_after_secs: 0, ..Default::default() };
/// let tiered = TieredStorage::new("tiered", hot.clone(), cold.clone(), settings, StorageMetrics::new());
/// let key = Key::new("k")?;
/// tiered.put(&key, "v".into(), Default::default()).await?;
/// tiered.demote(&key).await?;                 // move it down by hand
/// assert!(hot.stat(&key).await.is_err());
/// assert_eq!(&tiered.get(&key).await?[..], b"v"); // still there, from cold
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct TieredStorage {
    name: String,
    hot: Arc<dyn Storage>,
    cold: Arc<dyn Storage>,
    settings: MigrationSettings,
    metrics: Arc<StorageMetrics>,
    locks: KeyLocks,
    access: Mutex<HashMap<String, Access>>,
    weak: Weak<TieredStorage>,
}

fn is_tombstone(meta: &ObjectMeta) -> bool {
    meta.metadata.get(TOMBSTONE).is_some_and(|v| v == "1")
}

fn tombstone_meta() -> Metadata {
    let mut m = Metadata::new();
    m.insert(TOMBSTONE.to_owned(), "1".to_owned());
    m
}

/// Where a key lives now.
enum Found {
    Hot(ObjectMeta),
    Cold(ObjectMeta),
    Missing,
}

impl TieredStorage {
    /// Tiers `hot` over `cold`.
    pub fn new(
        name: impl Into<String>,
        hot: Arc<dyn Storage>,
        cold: Arc<dyn Storage>,
        settings: MigrationSettings,
        metrics: Arc<StorageMetrics>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak| TieredStorage {
            name: name.into(),
            hot,
            cold,
            settings,
            metrics,
            locks: KeyLocks::new(),
            access: Mutex::new(HashMap::new()),
            weak: weak.clone(),
        })
    }

    /// Runs [`migrate_once`](Self::migrate_once) every `interval_secs` until
    /// the storage is dropped.
    pub fn spawn_migrator(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let interval = Duration::from_secs(self.settings.interval_secs);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(this) = weak.upgrade() else { return };
                if let Err(e) = this.migrate_once().await {
                    tracing::warn!(policy = %this.name, error = %e, "migration pass failed; retried next pass");
                }
            }
        })
    }

    fn not_found(&self, key: &Key, op: &'static str) -> Error {
        Error::not_found(key.as_str()).with_backend(self.name.clone()).with_operation(op)
    }

    async fn locate(&self, key: &Key) -> Result<Found> {
        match self.hot.stat(key).await {
            Ok(meta) if is_tombstone(&meta) => return Ok(Found::Missing),
            Ok(meta) => return Ok(Found::Hot(meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match self.cold.stat(key).await {
            Ok(meta) => Ok(Found::Cold(meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Found::Missing),
            Err(e) => Err(e),
        }
    }

    fn touch(&self, key: &Key, cold: bool) {
        let promote = {
            let mut access = self.access.lock();
            let a = access.entry(key.to_string()).or_insert(Access { reads: 0, last: Instant::now() });
            a.last = Instant::now();
            if cold {
                a.reads += 1;
            }
            cold && self.settings.promote_after_reads > 0 && a.reads == self.settings.promote_after_reads
        };
        if promote {
            if let Some(this) = self.weak.upgrade() {
                let key = key.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.promote(&key).await {
                        tracing::warn!(policy = %this.name, key = %key, error = %e, "promotion failed");
                    }
                });
            }
        }
    }

    /// Reads with `f` from whichever tier holds the key, hot first.
    async fn read_with<T, F>(&self, key: &Key, op: &'static str, f: F) -> Result<T>
    where
        F: Fn(Arc<dyn Storage>) -> futures::future::BoxFuture<'static, Result<T>>,
    {
        let _shared = self.locks.read(key).await;
        match self.locate(key).await? {
            Found::Hot(_) => {
                self.touch(key, false);
                f(self.hot.clone()).await
            }
            Found::Cold(_) => {
                let r = f(self.cold.clone()).await;
                self.touch(key, true);
                r
            }
            Found::Missing => Err(self.not_found(key, op)),
        }
    }

    /// Moves `key` from the hot to the cold tier now.
    pub async fn demote(&self, key: &Key) -> Result<bool> {
        let _exclusive = self.locks.write(key).await;
        let meta = match self.hot.stat(key).await {
            Ok(meta) if !is_tombstone(&meta) => meta,
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        copy_value(&*self.hot, key, &*self.cold, key, false).await?;
        self.hot.delete(key).await?;
        self.metrics.migration();
        tracing::debug!(policy = %self.name, key = %key, size = meta.size, "demoted");
        Ok(true)
    }

    /// Moves `key` from the cold to the hot tier now.
    pub async fn promote(&self, key: &Key) -> Result<bool> {
        let _exclusive = self.locks.write(key).await;
        match self.hot.stat(key).await {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match copy_value(&*self.cold, key, &*self.hot, key, false).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        self.cold.delete(key).await?;
        self.access.lock().remove(key.as_str());
        self.metrics.migration();
        Ok(true)
    }

    async fn clear_tombstone(&self, key: &Key) -> Result<bool> {
        let _exclusive = self.locks.write(key).await;
        match self.hot.stat(key).await {
            Ok(meta) if is_tombstone(&meta) => {}
            _ => return Ok(false),
        }
        self.cold.delete(key).await?;
        self.hot.delete(key).await?;
        Ok(true)
    }

    /// One migration pass: clears tombstones, demotes keys idle for
    /// `demote_after_secs` (at most `max_moves_per_pass` moves).
    pub async fn migrate_once(&self) -> Result<MigrationReport> {
        let mut report = MigrationReport::default();
        let demote_after = self.settings.demote_after();
        let now = SystemTime::now();
        let mut candidates = Vec::new();
        let mut entries = self.hot.list_stream(ListOptions::recursive(""));
        while let Some(entry) = entries.try_next().await? {
            let ListEntry::Object(meta) = entry else { continue };
            if is_tombstone(&meta) {
                candidates.push((meta.key, true));
            } else if let Some(age) = demote_after {
                let idle_write = now.duration_since(meta.modified).unwrap_or_default() >= age;
                let idle_read =
                    self.access.lock().get(meta.key.as_str()).is_none_or(|a| a.last.elapsed() >= age);
                if idle_write && idle_read {
                    candidates.push((meta.key, false));
                }
            }
            if candidates.len() >= self.settings.max_moves_per_pass {
                break;
            }
        }
        drop(entries);
        for (key, tombstone) in candidates {
            if tombstone {
                report.tombstones_cleared += self.clear_tombstone(&key).await? as usize;
            } else {
                report.demoted += self.demote(&key).await? as usize;
            }
        }
        if let Some(age) = demote_after {
            self.access.lock().retain(|_, a| a.last.elapsed() < age);
        }
        Ok(report)
    }

    /// Checks that none of `keys` exists in either tier (for conditional puts).
    async fn check_absent(&self, keys: &[&Key]) -> Result<()> {
        for key in keys {
            if !matches!(self.locate(key).await?, Found::Missing) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "the key exists and the write asked that it did not",
                )
                .with_key(key.as_str())
                .with_backend(self.name.clone()));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for TieredStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        let (h, c) = (self.hot.capabilities(), self.cold.capabilities());
        Capabilities {
            atomic_batch: h.atomic_batch,
            range_read: h.range_read && c.range_read,
            rename: false,
            persistent: h.persistent && c.persistent,
            shared: h.shared && c.shared,
            conditional_put: true,
            streaming: h.streaming && c.streaming,
            partial_write: h.partial_write && c.partial_write,
        }
    }

    fn is_healthy(&self) -> bool {
        self.hot.is_healthy() && self.cold.is_healthy()
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        let k = key.clone();
        self.read_with(key, "get", move |s| {
            let k = k.clone();
            Box::pin(async move { s.get(&k).await })
        })
        .await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        let k = key.clone();
        self.read_with(key, "get_range", move |s| {
            let (k, range) = (k.clone(), range.clone());
            Box::pin(async move { s.get_range(&k, range).await })
        })
        .await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let _exclusive = self.locks.write(key).await;
        if options.if_not_exists {
            self.check_absent(&[key]).await?;
        }
        let options = PutOptions { if_not_exists: false, ..options };
        self.hot.put(key, value, options).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let _exclusive = self.locks.write(key).await;
        if matches!(self.locate(key).await?, Found::Missing) {
            return Ok(());
        }
        self.hot.put(key, Bytes::new(), PutOptions::with_metadata(tombstone_meta())).await.map(drop)
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let _shared = self.locks.read(key).await;
        match self.locate(key).await? {
            Found::Hot(meta) => Ok(meta),
            Found::Cold(meta) => Ok(meta),
            Found::Missing => Err(self.not_found(key, "stat")),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let sources = [
            MergeSource { storage: self.hot.clone(), keep: None },
            MergeSource { storage: self.cold.clone(), keep: None },
        ];
        let mut page = merge_list(&sources, options).await?;
        page.entries.retain(|e| !matches!(e, ListEntry::Object(meta) if is_tombstone(meta)));
        Ok(page)
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let keys: Vec<&str> = ops.iter().map(|o| o.key().as_str()).collect();
        let _exclusive = self.locks.write_many(&keys).await;
        let conditional: Vec<&Key> = ops
            .iter()
            .filter_map(|o| match o {
                BatchOp::Put { key, if_not_exists: true, .. } => Some(key),
                _ => None,
            })
            .collect();
        self.check_absent(&conditional).await?;
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BatchOp::Put { key, value, metadata, .. } => {
                    BatchOp::Put { key, value, metadata, if_not_exists: false }
                }
                BatchOp::Delete { key } => BatchOp::Put {
                    key,
                    value: Bytes::new(),
                    metadata: tombstone_meta(),
                    if_not_exists: false,
                },
            })
            .collect();
        self.hot.batch(ops).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let k = key.clone();
        self.read_with(key, "read", move |s| {
            let (k, range) = (k.clone(), range.clone());
            Box::pin(async move { s.read(&k, range).await })
        })
        .await
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        if options.if_not_exists {
            let _shared = self.locks.read(key).await;
            self.check_absent(&[key]).await?;
        }
        let options = PutOptions { if_not_exists: false, ..options };
        let inner = self.hot.write(key, options).await?;
        let this = self
            .weak
            .upgrade()
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "the tiered store is closing"))?;
        Ok(Box::new(TieredWriter { tiered: this, key: key.clone(), inner }))
    }

    /// Where the key lives now, under its write lock (so no move overlaps).
    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        let _exclusive = self.locks.write(key).await;
        match self.locate(key).await? {
            Found::Hot(_) => self.hot.set_metadata(key, changes, condition).await,
            Found::Cold(_) => self.cold.set_metadata(key, changes, condition).await,
            Found::Missing => Err(self.not_found(key, "set_metadata")),
        }
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        let _exclusive = self.locks.write(key).await;
        match self.locate(key).await? {
            Found::Hot(_) => self.hot.patch(key, patch, condition).await,
            Found::Cold(_) => self.cold.patch(key, patch, condition).await,
            Found::Missing => Err(self.not_found(key, "patch")),
        }
    }

    async fn sync(&self) -> Result<()> {
        self.hot.sync().await?;
        self.cold.sync().await
    }
}

/// A streamed write into the hot tier, published under the key's lock so
/// it cannot interleave with a move.
struct TieredWriter {
    tiered: Arc<TieredStorage>,
    key: Key,
    inner: Box<dyn ValueWriter>,
}

#[async_trait]
impl ValueWriter for TieredWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let _exclusive = self.tiered.locks.write(&self.key).await;
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    fn is_not_found<T>(r: &Result<T>) -> bool {
        matches!(r, Err(e) if e.kind() == ErrorKind::NotFound)
    }

    fn tiers() -> (Arc<MemoryStorage>, Arc<MemoryStorage>, Arc<TieredStorage>) {
        let (hot, cold) = (Arc::new(MemoryStorage::new("hot")), Arc::new(MemoryStorage::new("cold")));
        let settings =
            MigrationSettings { demote_after_secs: 0, promote_after_reads: 2, ..Default::default() };
        let t = TieredStorage::new("t", hot.clone(), cold.clone(), settings, StorageMetrics::new());
        (hot, cold, t)
    }

    #[tokio::test]
    async fn delete_of_a_cold_key_does_not_show_the_cold_copy() {
        let (_, cold, t) = tiers();
        let k = Key::new("k").unwrap();
        t.put(&k, "v".into(), Default::default()).await.unwrap();
        assert!(t.demote(&k).await.unwrap());
        t.delete(&k).await.unwrap();
        assert!(is_not_found(&t.get(&k).await));
        assert!(cold.stat(&k).await.is_ok(), "cold copy is removed by the next pass");
        let report = t.migrate_once().await.unwrap();
        assert_eq!(report.tombstones_cleared, 1);
        assert!(is_not_found(&cold.stat(&k).await));
        assert!(is_not_found(&t.stat(&k).await));
    }

    #[tokio::test]
    async fn cold_reads_promote() {
        let (hot, _, t) = tiers();
        let k = Key::new("k").unwrap();
        t.put(&k, "v".into(), Default::default()).await.unwrap();
        t.demote(&k).await.unwrap();
        for _ in 0..2 {
            assert_eq!(&t.get(&k).await.unwrap()[..], b"v");
        }
        for _ in 0..100 {
            if hot.stat(&k).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the key was not promoted after two cold reads");
    }
}
