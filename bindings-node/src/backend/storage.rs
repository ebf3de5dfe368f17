//! `JsStorage`: the core [`Storage`] trait over a JavaScript backend object.
//!
//! Capabilities: `atomic_batch` when the object has `batch`, `range_read`
//! when it has `getRange`, `persistent` and `conditional_put` when it
//! declares them; never `rename` (the manager copies instead) nor
//! `streaming`: `read` fetches the whole value and hands it out in chunks,
//! and `write` gathers the value and stores it with one `put` on `finish`.

use std::collections::HashMap;
use std::ops::{Bound, Range};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use napi::bindgen_prelude::Buffer;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use tierfs_core::{
    clamp_range, BatchOp, ByteStream, Capabilities, Error, ErrorKind, Key, ListOptions, ListPage,
    ListPageBuilder, ObjectMeta, PutOptions, Result, Storage, ValueWriter,
};

use super::protocol::{BackendBatchOp, BackendRequest, BackendStat};
use super::Remote;
use crate::convert::from_millis;

/// Entries asked of the JavaScript `list` at a time.
const LIST_BATCH: u32 = 1000;
/// Chunk size of `read`.
const READ_CHUNK: usize = 1 << 20;
/// The largest offset a JavaScript number holds exactly.
const MAX_SAFE: u64 = 9_007_199_254_740_991;

/// A backend whose methods are JavaScript functions.
#[derive(Debug)]
pub struct JsStorage(Arc<Instance>);

/// One instance on the JavaScript side; the dispatcher forgets it when the
/// last handle (the backend, or a writer still open) is dropped.
struct Instance {
    name: String,
    instance: u32,
    caps: Capabilities,
    remote: Arc<Remote>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsStorage")
            .field("name", &self.name)
            .field("type", &self.remote.type_name)
            .field("instance", &self.instance)
            .finish()
    }
}

impl JsStorage {
    /// The backend `name`, instance `instance` of the dispatcher behind `remote`.
    pub fn new(name: String, instance: u32, caps: Capabilities, remote: Arc<Remote>) -> Self {
        JsStorage(Arc::new(Instance { name, instance, caps, remote }))
    }
}

impl Instance {
    fn request(&self, op: &str) -> BackendRequest {
        BackendRequest::new(op, self.instance)
    }

    fn meta(&self, key: &Key, stat: BackendStat) -> Result<ObjectMeta> {
        if !(stat.size.is_finite() && stat.size >= 0.0) {
            return Err(self.bad(key, &format!("returned size {}", stat.size)));
        }
        let modified = match stat.modified_ms {
            Some(ms) => from_millis(ms).map_err(|e| self.bad(key, e.message()))?,
            None => SystemTime::UNIX_EPOCH,
        };
        let version = stat.version.unwrap_or_else(|| {
            // A backend without versions: size and time change with the value.
            format!("{}-{}", stat.size, stat.modified_ms.unwrap_or(0.0))
        });
        Ok(ObjectMeta {
            key: key.clone(),
            size: stat.size as u64,
            modified,
            version,
            metadata: stat.metadata.map(|m| m.into_iter().collect()).unwrap_or_default(),
        })
    }

    fn bad(&self, key: &Key, what: &str) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!("backend type `{}` {what}; fix the JavaScript backend", self.remote.type_name),
        )
        .with_key(key.as_str())
        .with_backend(&self.name)
    }

    fn data(&self, key: &Key, data: Option<Buffer>) -> Result<Bytes> {
        data.map(|d| Bytes::copy_from_slice(&d)).ok_or_else(|| self.bad(key, "returned no data"))
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        if options.if_not_exists && !self.caps.conditional_put {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "backend type `{}` does not declare `conditionalPut`, so it cannot refuse an existing key atomically",
                    self.remote.type_name
                ),
            )
            .with_key(key.as_str())
            .with_backend(&self.name)
            .with_operation("put"));
        }
        let size = value.len() as u64;
        let mut req = self.request("put").key(key);
        req.data = Some(buffer(value));
        req.metadata = Some(options.metadata.clone().into_iter().collect::<HashMap<_, _>>());
        req.if_not_exists = Some(options.if_not_exists);
        let res = self.remote.call(&self.name, "put", req).await?;
        match res.stat {
            Some(stat) => self.meta(key, stat),
            None => {
                let now = SystemTime::now();
                let ms = crate::convert::millis(now);
                Ok(ObjectMeta {
                    key: key.clone(),
                    size,
                    modified: now,
                    version: format!("{size}-{ms}"),
                    metadata: options.metadata,
                })
            }
        }
    }

    async fn fetch(&self, key: &Key, range: Option<Range<u64>>, op: &'static str) -> Result<Bytes> {
        match range {
            Some(r) if self.caps.range_read => {
                let mut req = self.request("getRange").key(key);
                req.start = Some(r.start.min(MAX_SAFE) as f64);
                req.end = Some(r.end.min(MAX_SAFE) as f64);
                let res = self.remote.call(&self.name, op, req).await?;
                let data = self.data(key, res.data)?;
                // The range asked for, at most, even if the method gave more.
                let want = (r.end - r.start.min(r.end)).min(data.len() as u64) as usize;
                Ok(data.slice(..want))
            }
            Some(r) => {
                let res = self.remote.call(&self.name, op, self.request("get").key(key)).await?;
                let data = self.data(key, res.data)?;
                let r = clamp_range(&r, data.len() as u64).map_err(|e| e.or_key(key))?;
                Ok(data.slice(r))
            }
            None => {
                let res = self.remote.call(&self.name, op, self.request("get").key(key)).await?;
                self.data(key, res.data)
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Let the dispatcher forget the instance; if the process is exiting
        // there is nothing left to forget.
        let _ = self.remote.dispatch.call(self.request("release"), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

fn buffer(bytes: Bytes) -> Buffer {
    Buffer::from(Vec::from(bytes))
}

#[async_trait]
impl Storage for JsStorage {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn capabilities(&self) -> Capabilities {
        self.0.caps
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.0.fetch(key, None, "get").await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        clamp_range(&range, u64::MAX).map_err(|e| e.or_key(key))?;
        self.0.fetch(key, Some(range), "get_range").await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        self.0.put(key, value, options).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        match self.0.remote.call(&self.0.name, "delete", self.0.request("delete").key(key)).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        }
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let res = self.0.remote.call(&self.0.name, "stat", self.0.request("stat").key(key)).await?;
        let stat = res.stat.ok_or_else(|| self.0.bad(key, "returned no stat"))?;
        self.0.meta(key, stat)
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        let mut builder = ListPageBuilder::new(options);
        let mut cursor = options.start_bound();
        loop {
            let mut req = self.0.request("list");
            req.prefix = Some(options.prefix.clone());
            req.limit = Some(LIST_BATCH);
            match &cursor {
                Bound::Included(s) => {
                    req.start_after = Some(s.clone());
                    req.inclusive = Some(true);
                }
                Bound::Excluded(s) => {
                    req.start_after = Some(s.clone());
                    req.inclusive = Some(false);
                }
                Bound::Unbounded => {}
            }
            let res = self.0.remote.call(&self.0.name, "list", req).await?;
            let mut entries = res.entries.unwrap_or_default();
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            let full = entries.len() >= LIST_BATCH as usize;
            let mut last = None;
            for entry in entries {
                let Some(name) = entry.key.clone() else {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("backend type `{}` listed an entry without `key`", self.0.remote.type_name),
                    )
                    .with_backend(&self.0.name));
                };
                let more = builder.push(&name, || {
                    let key = Key::new(name.as_str()).map_err(|e| e.with_backend(&self.0.name))?;
                    self.0.meta(&key, entry)
                })?;
                if !more {
                    return Ok(builder.finish());
                }
                last = Some(name);
            }
            match last {
                Some(last) if full => cursor = Bound::Excluded(last),
                _ => return Ok(builder.finish()),
            }
        }
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        if !self.0.caps.atomic_batch {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "backend type `{}` has no `batch` method, so a batch cannot be applied all-or-nothing; \
                     add one or issue the operations one by one",
                    self.0.remote.type_name
                ),
            )
            .with_backend(&self.0.name)
            .with_operation("batch"));
        }
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BatchOp::Put { key, value, metadata, if_not_exists } => BackendBatchOp {
                    op: "put".into(),
                    key: key.into_string(),
                    data: Some(buffer(value)),
                    metadata: Some(metadata.into_iter().collect()),
                    if_not_exists: Some(if_not_exists),
                },
                BatchOp::Delete { key } => BackendBatchOp {
                    op: "delete".into(),
                    key: key.into_string(),
                    data: None,
                    metadata: None,
                    if_not_exists: None,
                },
            })
            .collect();
        let mut req = self.0.request("batch");
        req.ops = Some(ops);
        self.0.remote.call(&self.0.name, "batch", req).await.map(drop)
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let value = self.0.fetch(key, range, "read").await?;
        let chunks: Vec<Result<Bytes>> = (0..value.len())
            .step_by(READ_CHUNK)
            .map(|start| Ok(value.slice(start..(start + READ_CHUNK).min(value.len()))))
            .collect();
        Ok(stream::iter(chunks).boxed())
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        Ok(Box::new(JsWriter { storage: self.0.clone(), key: key.clone(), options, buf: BytesMut::new() }))
    }
}

/// Gathers a streamed value, then stores it with one `put`.
struct JsWriter {
    storage: Arc<Instance>,
    key: Key,
    options: PutOptions,
    buf: BytesMut,
}

#[async_trait]
impl ValueWriter for JsWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let value = self.buf.freeze();
        self.storage.put(&self.key, value, self.options.clone()).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
