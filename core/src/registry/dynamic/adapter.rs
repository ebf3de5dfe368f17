//! [`DynamicStorage`]: a plugin instance as a [`Storage`].
//!
//! Every call runs on tokio's blocking pool (`spawn_blocking`), so plugin
//! functions run concurrently on several threads. Streamed reads call
//! `get_range` in [`READ_CHUNK`] pieces and fail, rather than mix two
//! values, if the value's version changes between pieces; streamed writes
//! use the plugin's `write_*` functions.

use std::ffi::c_void;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use tierfs_plugin_api::abi::{Instance as RawInstance, WriteHandle};
use tierfs_plugin_api::{
    Capabilities as RawCapabilities, HostBytes, PluginBuffer, RawError, RawStat, PUT_IF_NOT_EXISTS,
};

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

/// One live plugin instance; destroyed when the last user drops it.
struct Instance {
    ptr: RawInstance,
    library: Arc<PluginLibrary>,
}

// SAFETY: the plugin ABI requires instances to be usable from any thread,
// concurrently (see `tierfs_plugin_api::abi`).
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the last reference: no call on the instance is running and
        // every write handle holds an `Arc` of it, so all are gone.
        unsafe { (self.library.functions().destroy)(self.ptr) };
    }
}

impl Instance {
    /// Calls a plugin function with a fresh error report, then checks it.
    fn call(
        &self,
        f: impl FnOnce(RawInstance, *mut RawError) -> tierfs_plugin_api::PluginStatus,
    ) -> Result<()> {
        let mut error = RawError::empty();
        let status = f(self.ptr, &mut error);
        self.library.check(status, error)
    }

    fn bytes_and_stat(
        &self,
        key: &Key,
        value: PluginBuffer,
        stat: RawStat,
        called: Result<()>,
    ) -> Result<(Bytes, ObjectMeta)> {
        let value = self.library.take_bytes(value);
        let stat = self.library.take_stat(key, stat);
        called?;
        Ok((value, stat?))
    }

    fn fetch_range(&self, key: &Key, start: u64, end: u64) -> Result<(Bytes, ObjectMeta)> {
        let f = self.library.functions();
        let (mut value, mut stat) = (PluginBuffer::empty(), RawStat::empty());
        let called = self.call(|p, e| {
            // SAFETY: a live instance; arguments valid for the call; fresh out-parameters.
            unsafe { (f.get_range)(p, HostBytes::new(key.as_bytes()), start, end, &mut value, &mut stat, e) }
        });
        self.bytes_and_stat(key, value, stat, called)
    }

    fn stat_of(&self, key: &Key, raw: RawStat, called: Result<()>) -> Result<ObjectMeta> {
        let stat = self.library.take_stat(key, raw);
        called?;
        stat
    }
}

/// A raw write handle that may move between threads (the ABI allows it;
/// the mutex around it keeps calls one at a time).
#[derive(Clone, Copy)]
struct Handle(WriteHandle);

// SAFETY: the plugin ABI lets a write handle be used from any thread, one
// call at a time, which the `Mutex` holding it guarantees.
unsafe impl Send for Handle {}

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
            .field("type", &self.instance.library.type_name())
            .field("library", &self.instance.library.path())
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
        let lib = library;
        let created = tokio::task::spawn_blocking(move || {
            let f = *lib.functions();
            let mut ptr: RawInstance = std::ptr::null_mut();
            let mut error = RawError::empty();
            let base = base_dir.as_deref().map_or(HostBytes::absent(), |d| HostBytes::new(d.as_bytes()));
            // SAFETY: arguments valid for the call; fresh out-parameters.
            let status = unsafe {
                (f.create)(
                    HostBytes::new(json.as_bytes()),
                    HostBytes::new(name.as_bytes()),
                    base,
                    &mut ptr,
                    &mut error,
                )
            };
            lib.check(status, error)?;
            if ptr.is_null() {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("the plugin `{}` reported success but made no instance", lib.type_name()),
                ));
            }
            let instance = Instance { ptr, library: lib };
            // SAFETY: a live instance.
            let bits = unsafe { (f.capabilities)(instance.ptr) };
            Ok((instance, bits))
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
                conditional_put: raw.conditional_put,
                streaming: raw.streaming,
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
        self.blocking(key, "get", move |inst| {
            let f = inst.library.functions();
            let mut value = PluginBuffer::empty();
            let called = inst.call(|p, e| {
                // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
                unsafe { (f.get)(p, HostBytes::new(k.as_bytes()), &mut value, e) }
            });
            let value = inst.library.take_bytes(value);
            called.map(|()| value)
        })
        .await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        clamp_range(&range, u64::MAX).map_err(|e| self.ctx(e, key, "get_range"))?;
        let k = key.clone();
        self.blocking(key, "get_range", move |inst| {
            inst.fetch_range(&k, range.start, range.end).map(|(v, _)| v)
        })
        .await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let metadata = Self::metadata_json(&options.metadata).map_err(|e| self.ctx(e, key, "put"))?;
        let flags = if options.if_not_exists { PUT_IF_NOT_EXISTS } else { 0 };
        let k = key.clone();
        self.blocking(key, "put", move |inst| {
            let f = inst.library.functions();
            let mut stat = RawStat::empty();
            let called = inst.call(|p, e| {
                // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
                unsafe {
                    (f.put)(
                        p,
                        HostBytes::new(k.as_bytes()),
                        HostBytes::new(&value),
                        HostBytes::new(metadata.as_bytes()),
                        flags,
                        &mut stat,
                        e,
                    )
                }
            });
            inst.stat_of(&k, stat, called)
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let k = key.clone();
        self.blocking(key, "delete", move |inst| {
            let f = inst.library.functions();
            // SAFETY: a live instance; arguments valid for the call.
            inst.call(|p, e| unsafe { (f.delete)(p, HostBytes::new(k.as_bytes()), e) })
        })
        .await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let k = key.clone();
        self.blocking(key, "stat", move |inst| {
            let f = inst.library.functions();
            let mut stat = RawStat::empty();
            // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
            let called = inst.call(|p, e| unsafe { (f.stat)(p, HostBytes::new(k.as_bytes()), &mut stat, e) });
            inst.stat_of(&k, stat, called)
        })
        .await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate().map_err(|e| self.ctx(e, &options.prefix, "list"))?;
        let options = options.clone();
        let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT) as u64;
        let prefix = options.prefix.clone();
        self.blocking(&prefix, "list", move |inst| {
            let f = inst.library.functions();
            let start_after =
                options.start_after.as_deref().map_or(HostBytes::absent(), |s| HostBytes::new(s.as_bytes()));
            let mut page = PluginBuffer::empty();
            let called = inst.call(|p, e| {
                // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
                unsafe {
                    (f.list)(
                        p,
                        HostBytes::new(options.prefix.as_bytes()),
                        options.recursive,
                        start_after,
                        limit,
                        &mut page,
                        e,
                    )
                }
            });
            let page = inst.library.take_vec(page);
            called?;
            parse_page(&page)
        })
        .await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let first_key = ops.first().map(|op| op.key().as_str().to_owned()).unwrap_or_default();
        if self.instance.library.functions().batch.is_none() {
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
        self.blocking(&first_key, "batch", move |inst| {
            let f = inst.library.functions();
            let Some(batch) = f.batch else {
                return Err(Error::new(ErrorKind::Unsupported, "this backend does not apply batches"));
            };
            // SAFETY: a live instance; arguments valid for the call.
            inst.call(|p, e| unsafe { batch(p, HostBytes::new(&encoded), HostBytes::new(&values), e) })
        })
        .await
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
            self.blocking(key, "read", move |inst| inst.fetch_range(&k, start, first_end)).await?;
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
                    this.blocking(&key, "read", move |inst| inst.fetch_range(&k, pos, chunk_end)).await?;
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
        let handle = self
            .blocking(key, "write", move |inst| {
                let f = inst.library.functions();
                let mut handle: WriteHandle = std::ptr::null_mut::<c_void>();
                inst.call(|p, e| {
                    // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
                    unsafe {
                        (f.write_begin)(
                            p,
                            HostBytes::new(k.as_bytes()),
                            HostBytes::new(metadata.as_bytes()),
                            flags,
                            &mut handle,
                            e,
                        )
                    }
                })?;
                if handle.is_null() {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "the plugin reported success but made no writer",
                    ));
                }
                Ok(Handle(handle))
            })
            .await?;
        Ok(Box::new(DynamicWriter {
            storage: self.clone(),
            key: key.clone(),
            handle: Arc::new(Mutex::new(Some(handle))),
        }))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        if self.instance.library.functions().rename.is_none() {
            return Err(self.ctx(
                Error::new(ErrorKind::Unsupported, "this backend cannot rename atomically"),
                from,
                "rename",
            ));
        }
        let (f_key, t_key) = (from.clone(), to.clone());
        self.blocking(from, "rename", move |inst| {
            let Some(rename) = inst.library.functions().rename else {
                return Err(Error::new(ErrorKind::Unsupported, "this backend cannot rename atomically"));
            };
            inst.call(|p, e| {
                // SAFETY: a live instance; arguments valid for the call.
                unsafe { rename(p, HostBytes::new(f_key.as_bytes()), HostBytes::new(t_key.as_bytes()), e) }
            })
        })
        .await
    }

    /// Natively where the plugin has `set_metadata` (ABI 2); else, or when
    /// it answers `Unsupported`, by rewriting the value with the new map.
    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        if self.instance.library.functions().set_metadata.is_some() {
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
                    let Some(set_metadata) = inst.library.functions().set_metadata else {
                        return Err(Error::new(ErrorKind::Unsupported, "no set_metadata"));
                    };
                    let version =
                        if_version.as_deref().map_or(HostBytes::absent(), |v| HostBytes::new(v.as_bytes()));
                    let mut stat = RawStat::empty();
                    let called = inst.call(|p, e| {
                        // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
                        unsafe {
                            set_metadata(
                                p,
                                HostBytes::new(k.as_bytes()),
                                HostBytes::new(encoded.as_bytes()),
                                version,
                                &mut stat,
                                e,
                            )
                        }
                    });
                    inst.stat_of(&k, stat, called)
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
        if self.instance.library.functions().sync.is_none() {
            return Ok(());
        }
        self.blocking("", "sync", move |inst| match inst.library.functions().sync {
            // SAFETY: a live instance.
            Some(sync) => inst.call(|p, e| unsafe { sync(p, e) }),
            None => Ok(()),
        })
        .await
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
        let Some(Handle(handle)) = slot.lock().take() else { return Ok(()) };
        let f = instance.library.functions();
        // SAFETY: a live handle, given up here; the instance outlives it.
        instance.call(|p, e| unsafe { (f.write_abort)(p, handle, e) })
    }
}

#[async_trait]
impl ValueWriter for DynamicWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let slot = self.handle.clone();
        self.storage
            .blocking(&self.key, "write", move |inst| {
                let guard = slot.lock();
                let Some(Handle(handle)) = *guard else { return Err(writer_closed()) };
                let f = inst.library.functions();
                // SAFETY: a live handle, used by this thread alone while locked.
                inst.call(|p, e| unsafe { (f.write_chunk)(p, handle, HostBytes::new(&chunk), e) })
            })
            .await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let (slot, key) = (self.handle.clone(), self.key.clone());
        self.storage
            .blocking(&self.key, "write", move |inst| {
                let Some(Handle(handle)) = slot.lock().take() else { return Err(writer_closed()) };
                let f = inst.library.functions();
                let mut stat = RawStat::empty();
                // SAFETY: a live handle, given up here; fresh out-parameter.
                let called = inst.call(|p, e| unsafe { (f.write_finish)(p, handle, &mut stat, e) });
                inst.stat_of(&key, stat, called)
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
        let Some(Handle(handle)) = slot.take() else { return };
        drop(slot);
        let instance = &self.storage.instance;
        let f = instance.library.functions();
        // SAFETY: a live handle, given up here; the instance outlives it.
        if let Err(e) = instance.call(|p, e| unsafe { (f.write_abort)(p, handle, e) }) {
            tracing::warn!(error = %e, "aborting a dropped plugin writer failed");
        }
    }
}
