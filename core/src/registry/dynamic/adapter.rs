//! [`DynamicStorage`]: a plugin instance as a [`Storage`].
//!
//! Every call runs on tokio's blocking pool (`spawn_blocking`), so plugin
//! functions run concurrently on several threads. Streamed reads call
//! `get_range` in [`READ_CHUNK`] pieces and fail, rather than mix two
//! values, if the value's version changes between pieces; streamed writes
//! use the plugin's `write_*` functions.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use tierfs_plugin_api::{Capabilities as RawCapabilities, PUT_IF_NOT_EXISTS};

use super::instance::{Handle, Instance};
use super::loader::PluginLibrary;
use crate::config::BackendSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    clamp_range, BatchOp, ByteStream, Capabilities, Condition, ListEntry, ListOptions, ListPage, Metadata,
    MetadataChanges, ObjectMeta, PutOptions, Storage, ValueWriter, DEFAULT_LIST_LIMIT,
};

/// Size of each `get_range` call of a streamed read.
pub const READ_CHUNK: u64 = 1 << 20;

/// A backend provided by a plugin library.
#[derive(Clone)]
pub struct DynamicStorage {
    name: Arc<str>,
    instance: Arc<Instance>,
    capabilities: Capabilities,
}

impl fmt::Debug for DynamicStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicStorage")
            .field("name", &self.name)
            .field("type", &self.instance.library().type_name())
            .field("library", &self.instance.library().path())
            .finish()
    }
}

fn task_failed(e: tokio::task::JoinError) -> Error {
    Error::new(ErrorKind::Unavailable, format!("a plugin call failed: {e}"))
}

impl DynamicStorage {
    /// Creates an instance from the backend's settings (passed as JSON).
    pub async fn create(
        library: Arc<PluginLibrary>,
        settings: &BackendSettings<'_>,
    ) -> Result<DynamicStorage> {
        let field = format!("backends.{}", settings.name);
        let json = serde_json::to_string(settings.table).map_err(|e| {
            settings.config.error(&field, &format!("cannot pass the settings to the plugin as JSON: {e}"))
        })?;
        let base_dir = settings.config.source.as_ref().map(|source| match source.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_string_lossy().into_owned(),
            _ => ".".to_owned(),
        });
        let name = settings.name.to_owned();
        let created = tokio::task::spawn_blocking(move || {
            let instance = Instance::create(library, &json, &name, base_dir.as_deref())?;
            let bits = instance.capabilities();
            Ok::<_, Error>((instance, bits))
        })
        .await
        .map_err(task_failed)?;
        let (instance, bits) = created.map_err(|e| match e.kind() {
            ErrorKind::Config => settings.config.error(&field, e.message()),
            _ => e.with_backend(settings.name).with_operation("create"),
        })?;
        let raw = RawCapabilities::from_bits(bits);
        Ok(DynamicStorage {
            name: settings.name.into(),
            instance: Arc::new(instance),
            capabilities: Capabilities {
                atomic_batch: raw.atomic_batch,
                range_read: raw.range_read,
                rename: raw.rename,
                persistent: raw.persistent,
                shared: raw.shared,
                conditional_put: raw.conditional_put,
                streaming: raw.streaming,
                partial_write: false,
            },
        })
    }

    fn ctx(&self, err: Error, key: &str, op: &'static str) -> Error {
        err.or_key(key).with_backend(&*self.name).with_operation(op)
    }

    /// Runs `f` where blocking work runs ([`crate::blocking`]), adding key,
    /// backend and operation to errors.
    async fn blocking<T: Send + 'static>(
        &self,
        key: &str,
        op: &'static str,
        f: impl FnOnce(&Instance) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let instance = self.instance.clone();
        let result = crate::blocking::run("a plugin call", move || f(&instance)).await;
        result.and_then(|r| r).map_err(|e| self.ctx(e, key, op))
    }

    fn metadata_json(metadata: &Metadata) -> Result<String> {
        serde_json::to_string(metadata)
            .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("cannot encode the metadata: {e}")))
    }
}

/// A list page as the plugin encodes it.
#[derive(Deserialize)]
struct RawPage {
    entries: Vec<RawEntry>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawEntry {
    Prefix {
        prefix: String,
    },
    Object {
        key: String,
        size: u64,
        modified_nanos: u64,
        version: String,
        #[serde(default)]
        metadata: Metadata,
    },
}

fn parse_page(json: &[u8]) -> Result<ListPage> {
    let bad = |what: String| {
        Error::new(ErrorKind::Unavailable, format!("the plugin returned a bad list page: {what}"))
    };
    let raw: RawPage = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let mut entries = Vec::with_capacity(raw.entries.len());
    for entry in raw.entries {
        entries.push(match entry {
            RawEntry::Prefix { prefix } => ListEntry::Prefix(prefix),
            RawEntry::Object { key, size, modified_nanos, version, metadata } => {
                let key = Key::new(key.as_str()).map_err(|e| bad(format!("`{key}`: {}", e.message())))?;
                ListEntry::Object(ObjectMeta {
                    key,
                    size,
                    modified: std::time::UNIX_EPOCH + std::time::Duration::from_nanos(modified_nanos),
                    version,
                    metadata,
                })
            }
        });
    }
    Ok(ListPage { entries, next: raw.next })
}

#[async_trait]
impl Storage for DynamicStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        let k = key.clone();
        self.blocking(key, "get", move |inst| inst.get(&k)).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        clamp_range(&range, u64::MAX).map_err(|e| self.ctx(e, key, "get_range"))?;
        let k = key.clone();
        self.blocking(key, "get_range", move |inst| {
            inst.get_range(&k, range.start, range.end).map(|(v, _)| v)
        })
        .await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let metadata = Self::metadata_json(&options.metadata).map_err(|e| self.ctx(e, key, "put"))?;
        let flags = if options.if_not_exists { PUT_IF_NOT_EXISTS } else { 0 };
        let k = key.clone();
        self.blocking(key, "put", move |inst| inst.put(&k, &value, &metadata, flags)).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let k = key.clone();
        self.blocking(key, "delete", move |inst| inst.delete(&k)).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let k = key.clone();
        self.blocking(key, "stat", move |inst| inst.stat(&k)).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate().map_err(|e| self.ctx(e, &options.prefix, "list"))?;
        let options = options.clone();
        let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT) as u64;
        let prefix = options.prefix.clone();
        self.blocking(&prefix, "list", move |inst| {
            let page =
                inst.list(&options.prefix, options.recursive, options.start_after.as_deref(), limit)?;
            parse_page(&page)
        })
        .await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let first_key = ops.first().map(|op| op.key().as_str().to_owned()).unwrap_or_default();
        if !self.instance.has_batch() {
            return Err(self.ctx(
                Error::new(ErrorKind::Unsupported, "this backend does not apply batches"),
                &first_key,
                "batch",
            ));
        }
        let mut encoded = Vec::with_capacity(ops.len());
        let mut values = Vec::new();
        for op in &ops {
            encoded.push(match op {
                BatchOp::Put { key, value, metadata, if_not_exists } => {
                    values.extend_from_slice(value);
                    serde_json::json!({
                        "op": "put",
                        "key": key.as_str(),
                        "metadata": metadata,
                        "len": value.len(),
                        "if_not_exists": if_not_exists,
                    })
                }
                BatchOp::Delete { key } => serde_json::json!({ "op": "delete", "key": key.as_str() }),
            });
        }
        drop(ops);
        let encoded = serde_json::to_vec(&encoded).map_err(|e| {
            self.ctx(
                Error::new(ErrorKind::InvalidInput, format!("cannot encode the batch: {e}")),
                &first_key,
                "batch",
            )
        })?;
        self.blocking(&first_key, "batch", move |inst| inst.batch(&encoded, &values)).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let (start, end) = match range {
            Some(r) => {
                clamp_range(&r, u64::MAX).map_err(|e| self.ctx(e, key, "read"))?;
                (r.start, r.end)
            }
            None => (0, u64::MAX),
        };
        let first_end = start.saturating_add(READ_CHUNK).min(end);
        let k = key.clone();
        let (first, meta) =
            self.blocking(key, "read", move |inst| inst.get_range(&k, start, first_end)).await?;
        let stop = end.min(meta.size);
        let next = start + first.len() as u64;
        let head = stream::iter((!first.is_empty()).then_some(Ok(first)));
        let this = self.clone();
        let key = key.clone();
        let version = meta.version;
        let tail = stream::try_unfold(next, move |pos| {
            let (this, key, version) = (this.clone(), key.clone(), version.clone());
            async move {
                if pos >= stop {
                    return Ok(None);
                }
                let chunk_end = pos.saturating_add(READ_CHUNK).min(stop);
                let k = key.clone();
                let (chunk, meta) =
                    this.blocking(&key, "read", move |inst| inst.get_range(&k, pos, chunk_end)).await?;
                if meta.version != version || chunk.is_empty() {
                    return Err(this.ctx(
                        Error::new(
                            ErrorKind::Unavailable,
                            "the value changed while being read; read it again",
                        )
                        .retryable(true),
                        &key,
                        "read",
                    ));
                }
                let next = pos + chunk.len() as u64;
                Ok(Some((chunk, next)))
            }
        });
        Ok(head.chain(tail).boxed())
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        let metadata = Self::metadata_json(&options.metadata).map_err(|e| self.ctx(e, key, "write"))?;
        let flags = if options.if_not_exists { PUT_IF_NOT_EXISTS } else { 0 };
        let k = key.clone();
        let handle = self.blocking(key, "write", move |inst| inst.write_begin(&k, &metadata, flags)).await?;
        Ok(Box::new(DynamicWriter {
            storage: self.clone(),
            key: key.clone(),
            handle: Arc::new(Mutex::new(Some(handle))),
        }))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        if !self.instance.has_rename() {
            return Err(self.ctx(
                Error::new(ErrorKind::Unsupported, "this backend cannot rename atomically"),
                from,
                "rename",
            ));
        }
        let (f_key, t_key) = (from.clone(), to.clone());
        self.blocking(from, "rename", move |inst| inst.rename(&f_key, &t_key)).await
    }

    /// Natively where the plugin has `set_metadata` (ABI 2); else, or when
    /// it answers `Unsupported`, by rewriting the value with the new map.
    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        if self.instance.has_set_metadata() {
            let k = key.clone();
            let encoded = serde_json::json!({
                "set": changes.set,
                "remove": changes.remove,
                "replace": changes.replace,
            })
            .to_string();
            let if_version = match condition {
                Condition::Exists => None,
                Condition::VersionIs(v) => Some(v.clone()),
            };
            let native = self
                .blocking(key, "set_metadata", move |inst| {
                    inst.set_metadata(&k, &encoded, if_version.as_deref())
                })
                .await;
            match native {
                Err(e) if e.kind() == ErrorKind::Unsupported => {}
                answer => return answer,
            }
        }
        crate::storage::rewrite_metadata(self, key, changes, condition).await
    }

    async fn sync(&self) -> Result<()> {
        self.blocking("", "sync", move |inst| inst.sync()).await
    }
}

/// A streamed write through the plugin's `write_*` functions. The handle
/// sits in a mutex so that a call still running after its future was
/// dropped finishes before the next one (or the abort on drop) starts.
struct DynamicWriter {
    storage: DynamicStorage,
    key: Key,
    handle: Arc<Mutex<Option<Handle>>>,
}

fn writer_closed() -> Error {
    Error::new(ErrorKind::InvalidInput, "the writer was already finished or aborted")
}

impl DynamicWriter {
    fn abort_now(instance: &Instance, slot: &Mutex<Option<Handle>>) -> Result<()> {
        let Some(handle) = slot.lock().take() else { return Ok(()) };
        instance.write_abort(handle)
    }
}

#[async_trait]
impl ValueWriter for DynamicWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let slot = self.handle.clone();
        self.storage
            .blocking(&self.key, "write", move |inst| {
                let guard = slot.lock();
                let Some(handle) = guard.as_ref() else { return Err(writer_closed()) };
                inst.write_chunk(handle, &chunk)
            })
            .await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let (slot, key) = (self.handle.clone(), self.key.clone());
        self.storage
            .blocking(&self.key, "write", move |inst| {
                let Some(handle) = slot.lock().take() else { return Err(writer_closed()) };
                inst.write_finish(handle, &key)
            })
            .await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let slot = self.handle.clone();
        self.storage.blocking(&self.key, "write", move |inst| Self::abort_now(inst, &slot)).await
    }
}

impl Drop for DynamicWriter {
    /// Aborts an unfinished write. Usually at once, like dropping a local
    /// writer removes its blob; if a call on the handle is still running
    /// (its future was dropped), the abort waits for it on the blocking pool.
    fn drop(&mut self) {
        let Some(mut slot) = self.handle.try_lock() else {
            let (instance, slot) = (self.storage.instance.clone(), self.handle.clone());
            let abort = move || {
                if let Err(e) = Self::abort_now(&instance, &slot) {
                    tracing::warn!(error = %e, "aborting a dropped plugin writer failed");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(abort)),
                Err(_) => abort(),
            }
            return;
        };
        let Some(handle) = slot.take() else { return };
        drop(slot);
        if let Err(e) = self.storage.instance.write_abort(handle) {
            tracing::warn!(error = %e, "aborting a dropped plugin writer failed");
        }
    }
}
