//! Backends written in Python: a [`StoragePlugin`] whose backends call the
//! methods of a Python object, holding the GIL only around each call.
//!
//! The protocol (documented for users in `tierfs.register_backend` and the
//! README): an instance is made with `cls(**settings)` from the backend's
//! configuration table, and answers
//!
//! - `get(key) -> bytes`: raise `KeyError` (or `tierfs.NotFound`) if missing;
//! - `put(key, data, metadata) -> info | None`;
//! - `delete(key) -> None`: deleting a missing key succeeds;
//! - `stat(key) -> info`: raise `KeyError` if missing;
//! - `list(prefix) -> iterable`: keys starting with `prefix`, each a `str`
//!   or a `(key, info)` pair (which saves a `stat` per key);
//! - optional `get_range(key, start, end) -> bytes` (range reads),
//!   `batch(ops)` (all-or-nothing; ops are `("put", key, data, metadata,
//!   if_absent)` and `("delete", key)`), `rename(src, dst)`, and
//!   `persistent` and `shared` attributes (values survive a restart; other
//!   hosts see them), which storage classes consult.
//!
//! `info` is a dict or an object with `size` (int), and optionally
//! `modified` (seconds or datetime), `version` (str) and `metadata`
//! (dict). Calls run on tokio's blocking pool, so a slow Python backend
//! never stalls the runtime's workers.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use tierfs_core::config::BackendSettings;
use tierfs_core::{
    clamp_range, BatchOp, ByteStream, Capabilities, Error, ErrorKind, Key, ListOptions, ListPage,
    ListPageBuilder, Metadata, ObjectMeta, PutOptions, Storage, StoragePlugin, ValueWriter,
};

use crate::convert::{py_table, time};
use crate::errors::from_py;

/// Chunk size of streamed reads from a Python backend.
const READ_CHUNK: usize = 1 << 20;
const REQUIRED: [&str; 5] = ["get", "put", "delete", "stat", "list"];

/// A backend type implemented by a Python class.
pub struct PythonPlugin {
    type_name: String,
    class: Arc<Py<PyAny>>,
}

impl std::fmt::Debug for PythonPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonPlugin").field("type_name", &self.type_name).finish_non_exhaustive()
    }
}

impl PythonPlugin {
    /// The type `type_name` made by calling `class`.
    pub fn new(type_name: String, class: Py<PyAny>) -> Self {
        PythonPlugin { type_name, class: Arc::new(class) }
    }
}

/// Runs `f` with the GIL on tokio's blocking pool.
async fn with_gil<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: for<'py> FnOnce(Python<'py>) -> Result<T, Error> + Send + 'static,
{
    let shutting_down =
        || Error::new(ErrorKind::Unavailable, "the Python interpreter is shutting down").retryable(false);
    tokio::task::spawn_blocking(move || Python::try_attach(f).unwrap_or_else(|| Err(shutting_down())))
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("the Python backend call failed: {e}")))?
}

#[async_trait]
impl StoragePlugin for PythonPlugin {
    fn type_name(&self) -> &str {
        &self.type_name
    }

    async fn create(&self, settings: BackendSettings<'_>) -> tierfs_core::Result<Arc<dyn Storage>> {
        let class = self.class.clone();
        let table = settings.table.clone();
        let type_name = self.type_name.clone();
        let made = with_gil(move |py| {
            let build = || -> PyResult<(Py<PyAny>, Capabilities)> {
                let kwargs = py_table(py, &table)?;
                let obj = class.bind(py).call((), Some(&kwargs))?;
                let missing: Vec<&str> =
                    REQUIRED.into_iter().filter(|m| !obj.hasattr(*m).unwrap_or(false)).collect();
                if !missing.is_empty() {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "the class registered as `{type_name}` lacks the method(s) {}; a backend \
                         needs get, put, delete, stat and list",
                        missing.join(", ")
                    )));
                }
                let has = |m: &str| obj.hasattr(m).unwrap_or(false);
                let declared = |name: &str| -> PyResult<bool> {
                    match obj.getattr(name) {
                        Ok(v) => v.is_truthy(),
                        Err(_) => Ok(false),
                    }
                };
                let (persistent, shared) = (declared("persistent")?, declared("shared")?);
                let caps = Capabilities {
                    atomic_batch: has("batch"),
                    range_read: has("get_range"),
                    rename: has("rename"),
                    persistent,
                    shared,
                    conditional_put: false,
                    streaming: false,
                    partial_write: false,
                };
                Ok((obj.unbind(), caps))
            };
            build().map_err(|e| Error::new(ErrorKind::Config, from_py(py, &e).message().to_owned()))
        })
        .await
        .map_err(|e| settings.error("type", e.message()))?;
        let (obj, caps) = made;
        Ok(Arc::new(PythonStorage { name: settings.name.to_owned(), obj: Arc::new(obj), caps }))
    }
}

/// One backend: a Python object.
pub struct PythonStorage {
    name: String,
    obj: Arc<Py<PyAny>>,
    caps: Capabilities,
}

impl std::fmt::Debug for PythonStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonStorage").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Reads `info` (a dict or an object) into an `ObjectMeta` for `key`.
fn meta_of(key: &Key, info: &Bound<'_, PyAny>) -> PyResult<ObjectMeta> {
    let field = |name: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        let v = match info.cast::<PyDict>() {
            Ok(d) => d.get_item(name)?,
            Err(_) => info.getattr(name).ok(),
        };
        Ok(v.filter(|v| !v.is_none()))
    };
    let size: u64 = match field("size")? {
        Some(s) => s.extract()?,
        None => {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "stat information needs a `size` (dict key or attribute)",
            ))
        }
    };
    let modified = match field("modified")? {
        Some(m) => time(&m)?,
        None => SystemTime::UNIX_EPOCH,
    };
    let version = match field("version")? {
        Some(v) => v.str()?.to_string(),
        None => format!("{size}@{}", crate::convert::seconds(modified)),
    };
    let metadata: Metadata = match field("metadata")? {
        Some(m) => m.extract()?,
        None => Metadata::new(),
    };
    Ok(ObjectMeta { key: key.clone(), size, modified, version, metadata })
}

fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if value.is_instance_of::<PyBytes>() {
        let backed: PyBackedBytes = value.extract()?;
        return Ok(Bytes::from_owner(backed));
    }
    crate::convert::value(value)
}

impl PythonStorage {
    /// Calls `f` with the object and the GIL, wording errors with this
    /// backend, `key` and `op`.
    async fn call<T, F>(&self, op: &'static str, key: Option<&Key>, f: F) -> tierfs_core::Result<T>
    where
        T: Send + 'static,
        F: for<'py> FnOnce(&Bound<'py, PyAny>) -> PyResult<T> + Send + 'static,
    {
        let obj = self.obj.clone();
        let result = with_gil(move |py| f(obj.bind(py)).map_err(|e| from_py(py, &e))).await;
        result.map_err(|e| {
            let e = e.with_backend(self.name.as_str()).with_operation(op);
            match key {
                Some(k) => e.or_key(k.as_str()),
                None => e,
            }
        })
    }

    fn unsupported(&self, op: &'static str, key: &Key, why: &str) -> Error {
        Error::new(ErrorKind::Unsupported, why.to_owned())
            .with_key(key.as_str())
            .with_backend(self.name.as_str())
            .with_operation(op)
    }
}

#[async_trait]
impl Storage for PythonStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    async fn get(&self, key: &Key) -> tierfs_core::Result<Bytes> {
        let k = key.clone();
        self.call("get", Some(key), move |obj| bytes_of(&obj.call_method1("get", (k.as_str(),))?)).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> tierfs_core::Result<Bytes> {
        if range.start > range.end {
            clamp_range(&range, 0).map_err(|e| e.with_key(key.as_str()).with_backend(self.name.as_str()))?;
        }
        let k = key.clone();
        let ranged = self.caps.range_read;
        self.call("get_range", Some(key), move |obj| {
            if ranged {
                let start = range.start;
                let end = range.end;
                return bytes_of(&obj.call_method1("get_range", (k.as_str(), start, end))?);
            }
            let whole = bytes_of(&obj.call_method1("get", (k.as_str(),))?)?;
            let r = clamp_range(&range, whole.len() as u64)
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.message().to_owned()))?;
            Ok(whole.slice(r))
        })
        .await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> tierfs_core::Result<ObjectMeta> {
        if options.if_not_exists {
            return Err(self.unsupported(
                "put",
                key,
                "a Python backend cannot put only-if-absent atomically; define `batch` and use a batch \
                 with if_absent",
            ));
        }
        let k = key.clone();
        self.call("put", Some(key), move |obj| {
            let py = obj.py();
            let data = PyBytes::new(py, &value);
            let metadata = PyDict::new(py);
            for (mk, mv) in &options.metadata {
                metadata.set_item(mk, mv)?;
            }
            let info = obj.call_method1("put", (k.as_str(), data, metadata))?;
            let info = if info.is_none() { obj.call_method1("stat", (k.as_str(),))? } else { info };
            meta_of(&k, &info)
        })
        .await
    }

    async fn delete(&self, key: &Key) -> tierfs_core::Result<()> {
        let k = key.clone();
        self.call("delete", Some(key), move |obj| {
            match obj.call_method1("delete", (k.as_str(),)) {
                Ok(_) => Ok(()),
                // Deleting a missing key succeeds, whatever the backend thinks.
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(obj.py()) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn stat(&self, key: &Key) -> tierfs_core::Result<ObjectMeta> {
        let k = key.clone();
        self.call("stat", Some(key), move |obj| meta_of(&k, &obj.call_method1("stat", (k.as_str(),))?)).await
    }

    async fn list(&self, options: &ListOptions) -> tierfs_core::Result<ListPage> {
        options.validate().map_err(|e| e.with_backend(self.name.as_str()))?;
        let options = options.clone();
        self.call("list", None, move |obj| {
            let listed = obj.call_method1("list", (options.prefix.as_str(),))?;
            let mut items: Vec<(String, Option<Bound<'_, PyAny>>)> = Vec::new();
            for item in listed.try_iter()? {
                let item = item?;
                if let Ok(s) = item.cast::<PyString>() {
                    items.push((s.to_str()?.to_owned(), None));
                } else {
                    let (k, info): (String, Bound<'_, PyAny>) = item.extract()?;
                    items.push((k, Some(info)));
                }
            }
            items.retain(|(k, _)| k.starts_with(options.prefix.as_str()));
            items.sort_by(|a, b| a.0.cmp(&b.0));
            items.dedup_by(|a, b| a.0 == b.0);
            let start = options.start_bound();
            let mut builder = ListPageBuilder::new(&options);
            for (k, info) in items {
                let in_range = match &start {
                    std::ops::Bound::Included(s) => k.as_str() >= s.as_str(),
                    std::ops::Bound::Excluded(s) => k.as_str() > s.as_str(),
                    std::ops::Bound::Unbounded => true,
                };
                if !in_range {
                    continue;
                }
                let key = Key::new(k.as_str()).map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!("list returned an invalid key: {e}"))
                })?;
                let mut failure = None;
                let more = builder
                    .push(key.as_str(), || {
                        let meta = match &info {
                            Some(info) => meta_of(&key, info),
                            None => obj.call_method1("stat", (key.as_str(),)).and_then(|i| meta_of(&key, &i)),
                        };
                        meta.map_err(|e| {
                            failure = Some(e);
                            Error::new(ErrorKind::Unavailable, "stat failed")
                        })
                    })
                    .map_err(|e| {
                        failure
                            .take()
                            .unwrap_or_else(|| pyo3::exceptions::PyValueError::new_err(e.to_string()))
                    })?;
                if !more {
                    break;
                }
            }
            Ok(builder.finish())
        })
        .await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> tierfs_core::Result<()> {
        let Some(first) = ops.first() else { return Ok(()) };
        if !self.caps.atomic_batch {
            return Err(self.unsupported(
                "batch",
                first.key(),
                "this Python backend has no `batch` method, so it cannot apply a batch all-or-nothing",
            ));
        }
        self.call("batch", None, move |obj| {
            let py = obj.py();
            let mut items = Vec::with_capacity(ops.len());
            for op in &ops {
                let item = match op {
                    BatchOp::Put { key, value, metadata, if_not_exists } => {
                        let meta = PyDict::new(py);
                        for (mk, mv) in metadata {
                            meta.set_item(mk, mv)?;
                        }
                        PyTuple::new(
                            py,
                            [
                                PyString::new(py, "put").into_any(),
                                PyString::new(py, key.as_str()).into_any(),
                                PyBytes::new(py, value).into_any(),
                                meta.into_any(),
                                pyo3::types::PyBool::new(py, *if_not_exists).to_owned().into_any(),
                            ],
                        )?
                    }
                    BatchOp::Delete { key } => PyTuple::new(
                        py,
                        [PyString::new(py, "delete").into_any(), PyString::new(py, key.as_str()).into_any()],
                    )?,
                };
                items.push(item);
            }
            obj.call_method1("batch", (items,))?;
            Ok(())
        })
        .await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> tierfs_core::Result<ByteStream> {
        let value = match range {
            Some(r) => self.get_range(key, r).await?,
            None => self.get(key).await?,
        };
        let chunks: Vec<Bytes> = (0..value.len())
            .step_by(READ_CHUNK)
            .map(|start| value.slice(start..(start + READ_CHUNK).min(value.len())))
            .collect();
        Ok(stream::iter(chunks.into_iter().map(Ok)).boxed())
    }

    async fn write(&self, key: &Key, options: PutOptions) -> tierfs_core::Result<Box<dyn ValueWriter>> {
        if options.if_not_exists {
            return Err(self.unsupported("write", key, "a Python backend cannot write only-if-absent"));
        }
        Ok(Box::new(BufferedWriter {
            store: PythonStorage { name: self.name.clone(), obj: self.obj.clone(), caps: self.caps },
            key: key.clone(),
            options,
            buf: BytesMut::new(),
        }))
    }

    async fn rename(&self, from: &Key, to: &Key) -> tierfs_core::Result<()> {
        if !self.caps.rename {
            return Err(self.unsupported("rename", from, "this Python backend has no `rename` method"));
        }
        let (f, t) = (from.clone(), to.clone());
        self.call("rename", Some(from), move |obj| {
            obj.call_method1("rename", (f.as_str(), t.as_str()))?;
            Ok(())
        })
        .await
    }
}

/// A streamed write to a Python backend: gathered, then one `put`.
/// Python backends do not stream (capability `streaming` is off).
struct BufferedWriter {
    store: PythonStorage,
    key: Key,
    options: PutOptions,
    buf: BytesMut,
}

#[async_trait]
impl ValueWriter for BufferedWriter {
    async fn write(&mut self, chunk: Bytes) -> tierfs_core::Result<()> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> tierfs_core::Result<ObjectMeta> {
        let this = *self;
        this.store.put(&this.key, this.buf.freeze(), this.options).await
    }

    async fn abort(self: Box<Self>) -> tierfs_core::Result<()> {
        Ok(())
    }
}
