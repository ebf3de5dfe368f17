//! `MemoryStorage`: values in a concurrent ordered map, gone with the process.
//!
//! Capabilities: atomic batch, range read, rename, conditional put; not
//! persistent. Bounded only by RAM. Reads share the stored buffer
//! ([`Bytes`]) instead of copying it.

use std::collections::BTreeMap;
use std::ops::{Bound, Range};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream;
use futures::StreamExt;
use parking_lot::RwLock;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    clamp_range, BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, ListPageBuilder,
    Metadata, MetadataChanges, ObjectMeta, Patch, PutOptions, Storage, ValueWriter,
};

/// Chunk size of streamed reads.
const READ_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    meta: ObjectMeta,
}

#[derive(Debug, Default)]
struct Inner {
    map: RwLock<BTreeMap<String, Entry>>,
    version: AtomicU64,
}

/// An in-memory backend.
///
/// ```
/// use tierfs_core::{Key, MemoryStorage, PutOptions, Storage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStorage::new("scratch");
/// let key = Key::new("k")?;
/// store.put(&key, "v".into(), PutOptions::default()).await?;
/// assert_eq!(&store.get(&key).await?[..], b"v");
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    name: Arc<str>,
    inner: Arc<Inner>,
}

impl MemoryStorage {
    /// An empty store named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryStorage { name: name.into().into(), inner: Arc::default() }
    }

    /// The stored value, shared (no copy of its bytes).
    fn value(&self, key: &Key, op: &'static str) -> Result<Bytes> {
        let map = self.inner.map.read();
        map.get(key.as_str()).map(|e| e.value.clone()).ok_or_else(|| self.not_found(key, op))
    }

    fn not_found(&self, key: &Key, op: &'static str) -> Error {
        Error::not_found(key.as_str()).with_backend(&*self.name).with_operation(op)
    }

    fn make_entry(&self, key: &Key, value: Bytes, metadata: Metadata) -> Entry {
        let version = self.inner.version.fetch_add(1, Ordering::Relaxed) + 1;
        let meta = ObjectMeta {
            key: key.clone(),
            size: value.len() as u64,
            modified: SystemTime::now(),
            version: version.to_string(),
            metadata,
        };
        Entry { value, meta }
    }

    fn store(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let entry = self.make_entry(key, value, options.metadata);
        let meta = entry.meta.clone();
        let mut map = self.inner.map.write();
        if options.if_not_exists && map.contains_key(key.as_str()) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "the key exists and the put asked that it did not",
            )
            .with_key(key.as_str())
            .with_backend(&*self.name)
            .with_operation("put"));
        }
        map.insert(key.as_str().to_owned(), entry);
        Ok(meta)
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_batch: true,
            range_read: true,
            rename: true,
            persistent: false,
            shared: false,
            conditional_put: true,
            streaming: true,
            partial_write: true,
        }
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.value(key, "get")
    }

    fn get_now(&self, key: &Key) -> Option<Result<Bytes>> {
        Some(self.value(key, "get"))
    }

    fn put_now(&self, key: &Key, value: &Bytes, options: &PutOptions) -> Option<Result<ObjectMeta>> {
        Some(self.store(key, value.clone(), options.clone()))
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        let map = self.inner.map.read();
        let entry = map.get(key.as_str()).ok_or_else(|| self.not_found(key, "get"))?;
        Ok((entry.meta.clone(), entry.value.clone()))
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        let value = self.value(key, "get_range")?;
        let range = clamp_range(&range, value.len() as u64).map_err(|e| e.or_key(key))?;
        Ok(value.slice(range))
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        self.store(key, value, options)
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.inner.map.write().remove(key.as_str());
        Ok(())
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let map = self.inner.map.read();
        map.get(key.as_str()).map(|e| e.meta.clone()).ok_or_else(|| self.not_found(key, "stat"))
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate().map_err(|e| e.with_backend(&*self.name))?;
        let map = self.inner.map.read();
        let mut page = ListPageBuilder::new(options);
        for (key, entry) in map.range::<String, _>((options.start_bound(), Bound::Unbounded)) {
            if !page.push(key, || Ok(entry.meta.clone()))? {
                break;
            }
        }
        Ok(page.finish())
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let mut staged: Vec<(String, Option<Entry>, bool)> = Vec::with_capacity(ops.len());
        for op in ops {
            staged.push(match op {
                BatchOp::Put { key, value, metadata, if_not_exists } => {
                    let entry = self.make_entry(&key, value, metadata);
                    (key.into_string(), Some(entry), if_not_exists)
                }
                BatchOp::Delete { key } => (key.into_string(), None, false),
            });
        }
        let mut map = self.inner.map.write();
        if let Some((key, ..)) = staged.iter().find(|(key, _, cond)| *cond && map.contains_key(key)) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "the batch asked that this key not exist; nothing was applied",
            )
            .with_key(key.as_str())
            .with_backend(&*self.name)
            .with_operation("batch"));
        }
        for (key, entry, _) in staged {
            match entry {
                Some(entry) => map.insert(key, entry),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let value = self.value(key, "read")?;
        let value = match range {
            Some(r) => value.slice(clamp_range(&r, value.len() as u64).map_err(|e| e.or_key(key))?),
            None => value,
        };
        let chunks: Vec<Bytes> = (0..value.len())
            .step_by(READ_CHUNK)
            .map(|start| value.slice(start..(start + READ_CHUNK).min(value.len())))
            .collect();
        Ok(stream::iter(chunks.into_iter().map(Ok)).boxed())
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        Ok(Box::new(MemoryWriter { store: self.clone(), key: key.clone(), options, chunks: Vec::new() }))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let mut map = self.inner.map.write();
        let mut entry = map.remove(from.as_str()).ok_or_else(|| self.not_found(from, "rename"))?;
        entry.meta.key = to.clone();
        map.insert(to.as_str().to_owned(), entry);
        Ok(())
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        let mut map = self.inner.map.write();
        let entry = map.get_mut(key.as_str()).ok_or_else(|| self.not_found(key, "set_metadata"))?;
        condition
            .check(&entry.meta)
            .map_err(|e| e.with_backend(&*self.name).with_operation("set_metadata"))?;
        changes.apply(&mut entry.meta.metadata);
        entry.meta.version = (self.inner.version.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        Ok(entry.meta.clone())
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        let ctx = |e: Error| e.or_key(key.as_str()).with_backend(&*self.name).with_operation("patch");
        // The new value is built outside the lock, then swapped in if the
        // entry did not change meanwhile (else built again).
        loop {
            let (old, version) = {
                let map = self.inner.map.read();
                let entry = map.get(key.as_str()).ok_or_else(|| self.not_found(key, "patch"))?;
                condition.check(&entry.meta).map_err(ctx)?;
                (entry.value.clone(), entry.meta.version.clone())
            };
            let value = Bytes::from(patch.apply_to(&old).map_err(ctx)?);
            let mut map = self.inner.map.write();
            let entry = map.get_mut(key.as_str()).ok_or_else(|| self.not_found(key, "patch"))?;
            if entry.meta.version != version {
                continue;
            }
            patch.metadata_changes().apply(&mut entry.meta.metadata);
            entry.meta.size = value.len() as u64;
            entry.meta.modified = SystemTime::now();
            entry.meta.version = (self.inner.version.fetch_add(1, Ordering::Relaxed) + 1).to_string();
            entry.value = value;
            return Ok(entry.meta.clone());
        }
    }
}

/// Keeps the chunks as they come (no copy, no regrowth) and joins them once,
/// into a buffer of the exact size, at `finish`.
struct MemoryWriter {
    store: MemoryStorage,
    key: Key,
    options: PutOptions,
    chunks: Vec<Bytes>,
}

#[async_trait]
impl ValueWriter for MemoryWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if !chunk.is_empty() {
            self.chunks.push(chunk);
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let this = *self;
        let value = match <[Bytes; 1]>::try_from(this.chunks) {
            Ok([one]) => one,
            Err(chunks) => {
                let mut joined = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
                for chunk in &chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        };
        this.store.store(&this.key, value, this.options)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
