//! `tierfs.AsyncStore`: the same store for asyncio. Every storage method is
//! a coroutine; many tasks may use one store at once.
//!
//! An operation first runs in place without the GIL (one that finishes at
//! once costs no thread hop); one that has to wait moves to the shared tokio
//! runtime, and the event loop goes on with other tasks until it is done.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use tierfs_core::{ErrorKind, Key, PutOptions, Session, Storage};
use tokio::sync::Mutex;

use crate::admin;
use crate::convert::{self, batch_ops, Entry, Stat};
use crate::errors::{to_py, IntoPy};
use crate::file::{is_read_mode, ready, to_pybytes, AsyncReader, AsyncWriter, ReadState, WriteState};
use crate::handle::{principal, StoreCore};
use crate::runtime::run;
use crate::store::{open_core, operation, ListState};

/// A TierFS store for asyncio: the methods of `Store` as coroutines.
///
/// Open one with `tierfs.open_async()` (with or without `await`). One
/// `AsyncStore` may serve many tasks at once.
///
/// Example:
///     >>> import asyncio, tierfs
///     >>> async def main():
///     ...     async with tierfs.open_async(root="/tmp/tierfs-demo") as store:
///     ...         await store.put("a.txt", b"hello")
///     ...         return await asyncio.gather(*(store.get("a.txt") for _ in range(32)))
///     >>> len(asyncio.run(main()))
///     32
#[pyclass(module = "tierfs", name = "AsyncStore", frozen)]
pub struct AsyncStore {
    core: Arc<StoreCore>,
}

impl AsyncStore {
    /// Wraps an opened core.
    pub fn from_core(core: StoreCore) -> Self {
        AsyncStore { core: Arc::new(core) }
    }

    fn session(&self) -> PyResult<Session> {
        self.core.session()
    }

    fn key_and_session(&self, key: &str) -> PyResult<(Session, Key)> {
        Ok((self.session()?, convert::key(key)?))
    }
}

async fn blocking<T, F>(f: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> tierfs_core::Result<T> + Send + 'static,
{
    run(async move {
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            tierfs_core::Error::new(ErrorKind::Unavailable, format!("an administration task failed: {e}"))
        })?
    })
    .await?
    .py_err()
}

#[pymethods]
impl AsyncStore {
    #[new]
    #[pyo3(signature = (config=None, *, root=None, principal=None, roles=None))]
    fn py_new(
        py: Python<'_>,
        config: Option<PathBuf>,
        root: Option<PathBuf>,
        principal: Option<String>,
        roles: Option<Vec<String>>,
    ) -> PyResult<Self> {
        Ok(AsyncStore::from_core(open_core(py, config, root, principal, roles)?))
    }

    /// `await tierfs.open_async(...)` gives the store itself.
    fn __await__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ready(slf.into_any())
    }

    /// The value of `key` as bytes; NotFound (a KeyError) if missing.
    ///
    /// Example:
    ///     >>> await store.get("a.txt")
    ///     b'hello'
    async fn get(&self, key: String) -> PyResult<Py<PyBytes>> {
        let (session, key) = self.key_and_session(&key)?;
        let value = run(async move { session.get(&key).await }).await?.py_err()?;
        Python::attach(|py| Ok(to_pybytes(py, &[value])?.unbind()))
    }

    /// Bytes `start` to `end` (exclusive), clamped to the value's size.
    ///
    /// Example:
    ///     >>> await store.get_range("a.txt", 1, 3)
    ///     b'el'
    async fn get_range(&self, key: String, start: u64, end: u64) -> PyResult<Py<PyBytes>> {
        let (session, key) = self.key_and_session(&key)?;
        let value = run(async move { session.get_range(&key, start..end).await }).await?.py_err()?;
        Python::attach(|py| Ok(to_pybytes(py, &[value])?.unbind()))
    }

    /// Stores `data` under `key`; returns the new Stat (see `Store.put`).
    ///
    /// Example:
    ///     >>> (await store.put("a.txt", b"hello")).size
    ///     5
    #[pyo3(signature = (key, data, *, metadata=None, if_absent=false, storage_class=None))]
    async fn put(
        &self,
        key: String,
        data: Py<PyAny>,
        metadata: Option<Py<PyAny>>,
        if_absent: bool,
        storage_class: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = self.key_and_session(&key)?;
        let (value, metadata) = Python::attach(|py| {
            Ok::<_, PyErr>((
                convert::value(data.bind(py))?,
                convert::metadata(metadata.as_ref().map(|m| m.bind(py)))?,
            ))
        })?;
        let options = PutOptions { metadata, if_not_exists: if_absent, storage_class };
        let meta = run(async move { session.put(&key, value, options).await }).await?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Changes the metadata of `key` without rewriting its value; see
    /// `Store.set_metadata`.
    ///
    /// Example:
    ///     >>> (await store.set_metadata("a.txt", {"owner": "bob"})).metadata["owner"]
    ///     'bob'
    #[pyo3(signature = (key, changes=None, *, remove=None, replace=false, if_version=None))]
    async fn set_metadata(
        &self,
        key: String,
        changes: Option<Py<PyAny>>,
        remove: Option<Vec<String>>,
        replace: bool,
        if_version: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = self.key_and_session(&key)?;
        let (changes, condition) = Python::attach(|py| {
            convert::metadata_changes(changes.as_ref().map(|c| c.bind(py)), remove, replace, if_version)
        })?;
        let meta =
            run(async move { session.set_metadata(&key, &changes, &condition).await }).await?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Writes `data` at `offset` of the existing value of `key`; see
    /// `Store.write_range`.
    ///
    /// Example:
    ///     >>> (await store.write_range("a.txt", 0, "A")).size
    ///     5
    #[pyo3(signature = (key, offset, data, *, if_version=None))]
    async fn write_range(
        &self,
        key: String,
        offset: u64,
        data: Py<PyAny>,
        if_version: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = self.key_and_session(&key)?;
        let value = Python::attach(|py| convert::value(data.bind(py)))?;
        let patch = tierfs_core::Patch::new().write(offset, value);
        let condition = convert::condition(if_version);
        let meta = run(async move { session.patch(&key, &patch, &condition).await }).await?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Changes part of the value of `key` in one step; see `Store.patch`.
    ///
    /// Example:
    ///     >>> (await store.patch("a.txt", [(0, b"A")], length=3)).size
    ///     3
    #[pyo3(signature = (key, writes=None, *, length=None, metadata=None, if_version=None))]
    async fn patch(
        &self,
        key: String,
        writes: Option<Py<PyAny>>,
        length: Option<u64>,
        metadata: Option<Py<PyAny>>,
        if_version: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = self.key_and_session(&key)?;
        let patch = Python::attach(|py| {
            convert::patch(writes.as_ref().map(|w| w.bind(py)), length, metadata.as_ref().map(|m| m.bind(py)))
        })?;
        let condition = convert::condition(if_version);
        let meta = run(async move { session.patch(&key, &patch, &condition).await }).await?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Removes `key`; removing a missing key succeeds.
    ///
    /// Example:
    ///     >>> await store.delete("a.txt")
    async fn delete(&self, key: String) -> PyResult<()> {
        let (session, key) = self.key_and_session(&key)?;
        run(async move { session.delete(&key).await }).await?.py_err()
    }

    /// Size, modification time, version and metadata of `key`.
    ///
    /// Example:
    ///     >>> (await store.stat("a.txt")).size
    ///     5
    async fn stat(&self, key: String) -> PyResult<Stat> {
        let (session, key) = self.key_and_session(&key)?;
        let (meta, class) = run(async move {
            let meta = session.stat(&key).await?;
            Ok::<_, tierfs_core::Error>((meta, session.storage_class(&key).await?))
        })
        .await?
        .py_err()?;
        Ok(Stat::with_class(meta, class))
    }

    /// As `Store.set_storage_class`.
    async fn set_storage_class(&self, key: String, storage_class: Option<String>) -> PyResult<()> {
        let (session, key) = self.key_and_session(&key)?;
        run(async move { session.set_storage_class(&key, storage_class.as_deref()).await }).await?.py_err()
    }

    /// As `Store.storage_class`.
    async fn storage_class(&self, key: String) -> PyResult<Py<PyDict>> {
        let (session, key) = self.key_and_session(&key)?;
        let info = run(async move { session.storage_class(&key).await }).await?.py_err()?;
        Python::attach(|py| Ok(crate::classes::info_dict(py, &info)?.unbind()))
    }

    /// As `Store.set_prefix_class`.
    async fn set_prefix_class(&self, prefix: String, storage_class: Option<String>) -> PyResult<()> {
        let session = self.session()?;
        run(async move { session.set_prefix_class(&prefix, storage_class.as_deref()).await }).await?.py_err()
    }

    /// As `Store.prefix_class`.
    fn prefix_class(&self, prefix: String) -> PyResult<Option<String>> {
        Ok(self.session()?.prefix_class(&prefix))
    }

    /// Whether `key` exists.
    ///
    /// Example:
    ///     >>> await store.exists("a.txt")
    ///     True
    async fn exists(&self, key: String) -> PyResult<bool> {
        let (session, key) = self.key_and_session(&key)?;
        match run(async move { session.stat(&key).await }).await? {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(to_py(e)),
        }
    }

    /// Entries under `prefix` as an async iterator, one page per round trip.
    ///
    /// Example:
    ///     >>> [e.key async for e in store.list("notes/", recursive=False)]
    ///     ['notes/a.txt', 'notes/sub/']
    #[pyo3(signature = (prefix=String::new(), recursive=true, *, page_size=None))]
    fn list(&self, prefix: String, recursive: bool, page_size: Option<usize>) -> PyResult<AsyncListIterator> {
        let options = tierfs_core::ListOptions { prefix, recursive, start_after: None, limit: page_size };
        options.validate().py_err()?;
        Ok(AsyncListIterator {
            session: self.session()?,
            state: Arc::new(Mutex::new(ListState::new(options))),
        })
    }

    /// Applies every operation or none (see `Store.batch`).
    ///
    /// Example:
    ///     >>> await store.batch([("put", "a", b"1"), ("delete", "b")])
    async fn batch(&self, ops: Py<PyAny>) -> PyResult<()> {
        let session = self.session()?;
        let ops = Python::attach(|py| batch_ops(ops.bind(py)))?;
        run(async move { session.batch(ops).await }).await?.py_err()
    }

    /// Moves `src` to `dst`, replacing `dst`.
    ///
    /// Example:
    ///     >>> await store.rename("drafts/a.txt", "final/a.txt")
    async fn rename(&self, src: String, dst: String) -> PyResult<()> {
        let (session, from) = self.key_and_session(&src)?;
        let to = convert::key(&dst)?;
        run(async move { session.rename(&from, &to).await }).await?.py_err()
    }

    /// An async file object streaming `key`: "rb" gives an AsyncReadFile,
    /// "wb" an AsyncWriteFile published by `close()`.
    ///
    /// Example:
    ///     >>> async with await store.open("big.bin", "wb") as f:
    ///     ...     await f.write(b"...")
    #[pyo3(signature = (key, mode=String::from("rb"), *, metadata=None, storage_class=None))]
    async fn open(
        &self,
        key: String,
        mode: String,
        metadata: Option<Py<PyAny>>,
        storage_class: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let (session, k) = self.key_and_session(&key)?;
        if is_read_mode(&mode)? {
            let state = run(async move { ReadState::open(session, k).await }).await?.py_err()?;
            Python::attach(|py| Ok(Py::new(py, AsyncReader::new(state, key))?.into_any()))
        } else {
            let metadata = Python::attach(|py| convert::metadata(metadata.as_ref().map(|m| m.bind(py))))?;
            let options = PutOptions { storage_class, ..PutOptions::with_metadata(metadata) };
            let state = run(async move { WriteState::open(session, k, options).await }).await?.py_err()?;
            Python::attach(|py| Ok(Py::new(py, AsyncWriter::new(state, key))?.into_any()))
        }
    }

    /// The same store acting as another principal (not a coroutine).
    ///
    /// Example:
    ///     >>> bob = store.as_principal("bob")
    #[pyo3(signature = (name, roles=None))]
    fn as_principal(&self, name: String, roles: Option<Vec<String>>) -> PyResult<AsyncStore> {
        Ok(AsyncStore::from_core(self.core.as_principal(principal(Some(name), roles))?))
    }

    /// The principal this store acts as.
    #[getter]
    fn principal(&self) -> String {
        self.core.principal().id().to_owned()
    }

    /// The roles of the principal.
    #[getter]
    fn roles(&self) -> Vec<String> {
        self.core.principal().roles().to_vec()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    /// What every route of the store can do: a flag holds only if it holds
    /// for each backend stack (atomic_batch, range_read, rename, persistent,
    /// conditional_put, streaming). Not a coroutine.
    ///
    /// Example:
    ///     >>> store.capabilities()["atomic_batch"]
    ///     True
    fn capabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let session = self.session()?;
        let caps = py.detach(|| session.capabilities());
        admin::capabilities(py, &caps)
    }

    /// The configured backend names.
    ///
    /// Example:
    ///     >>> await store.backends()
    ///     ['local']
    async fn backends(&self) -> PyResult<Vec<String>> {
        Ok(self.core.handle()?.manager.backend_names())
    }

    /// The access rules in force (see `Store.access_policy`).
    ///
    /// Example:
    ///     >>> (await store.access_policy())["default"]
    ///     'full'
    async fn access_policy(&self) -> PyResult<Py<PyDict>> {
        let session = self.session()?;
        let policy = blocking(move || session.access_policy()).await?;
        Python::attach(|py| Ok(admin::access_policy_dict(py, &policy)?.unbind()))
    }

    /// Replaces every rule (see `Store.set_access_policy`).
    ///
    /// Example:
    ///     >>> await store.set_access_policy({"default": "none", "rules": []})
    async fn set_access_policy(&self, policy: Py<PyAny>) -> PyResult<()> {
        let session = self.session()?;
        let policy = Python::attach(|py| admin::access_policy_from(policy.bind(py)))?;
        run(async move { session.set_access_policy(policy).await }).await?.py_err()
    }

    /// Adds a rule (see `Store.add_rule`).
    ///
    /// Example:
    ///     >>> await store.add_rule("bob", "shared/", "*", "read")
    #[pyo3(signature = (principal, resource, operation=String::from("*"), level=String::from("read")))]
    async fn add_rule(
        &self,
        principal: String,
        resource: String,
        operation: String,
        level: String,
    ) -> PyResult<()> {
        let (session, rule) = (self.session()?, admin::rule(&principal, &resource, &operation, &level)?);
        run(async move { session.add_access_rule(rule).await }).await?.py_err()
    }

    /// Removes a rule (see `Store.remove_rule`).
    ///
    /// Example:
    ///     >>> await store.remove_rule("bob", "shared/", "*", "read")
    #[pyo3(signature = (principal, resource, operation=String::from("*"), level=String::from("read")))]
    async fn remove_rule(
        &self,
        principal: String,
        resource: String,
        operation: String,
        level: String,
    ) -> PyResult<()> {
        let (session, rule) = (self.session()?, admin::rule(&principal, &resource, &operation, &level)?);
        run(async move { session.remove_access_rule(&rule).await }).await?.py_err()
    }

    /// Sets the default or a route's policy (see `Store.set_policy`).
    ///
    /// Example:
    ///     >>> await store.set_policy({"type": "always_local", "backend": "scratch"}, route="tmp/")
    #[pyo3(signature = (policy, route=None))]
    async fn set_policy(&self, policy: Py<PyDict>, route: Option<String>) -> PyResult<()> {
        let session = self.session()?;
        let policy = Python::attach(|py| admin::policy_config(policy.bind(py)))?;
        run(async move { session.set_policy(route.as_deref(), policy).await }).await?.py_err()
    }

    /// Adds a backend (see `Store.add_backend`).
    ///
    /// Example:
    ///     >>> await store.add_backend("scratch", "memory")
    #[pyo3(signature = (name, r#type, **settings))]
    async fn add_backend(&self, name: String, r#type: String, settings: Option<Py<PyDict>>) -> PyResult<()> {
        let session = self.session()?;
        let backend =
            Python::attach(|py| admin::backend_config(&r#type, settings.as_ref().map(|s| s.bind(py))))?;
        run(async move { session.add_backend(&name, backend).await }).await?.py_err()
    }

    /// Removes a backend (see `Store.remove_backend`).
    ///
    /// Example:
    ///     >>> await store.remove_backend("scratch")
    async fn remove_backend(&self, name: String) -> PyResult<()> {
        let session = self.session()?;
        run(async move { session.remove_backend(&name).await }).await?.py_err()
    }

    /// Reloads the configuration (see `Store.reload_config`).
    ///
    /// Example:
    ///     >>> await store.reload_config()
    #[pyo3(signature = (config=None))]
    async fn reload_config(&self, config: Option<PathBuf>) -> PyResult<()> {
        let session = self.session()?;
        let handle = self.core.handle()?;
        let path = config.or_else(|| handle.manager.config().source).ok_or_else(|| {
            to_py(tierfs_core::Error::new(
                ErrorKind::Config,
                "this store was opened without a configuration file; pass the file to reload",
            ))
        })?;
        let config = blocking(move || tierfs_core::Config::load(&path)).await?;
        run(async move { session.reload_config(config).await }).await?.py_err()
    }

    /// Loads plugin libraries not loaded yet (see `Store.reload_plugins`).
    ///
    /// Example:
    ///     >>> await store.reload_plugins()
    async fn reload_plugins(&self) -> PyResult<()> {
        let session = self.session()?;
        run(async move { session.reload_plugins().await }).await?.py_err()
    }

    /// Audit records as dicts (see `Store.audit_log`).
    ///
    /// Example:
    ///     >>> [r["result"] for r in await store.audit_log(principal="bob")]
    ///     ['allowed', 'denied']
    #[pyo3(signature = (principal=None, since=None, until=None, key_prefix=None, result=None, limit=None))]
    #[allow(clippy::too_many_arguments)]
    async fn audit_log(
        &self,
        principal: Option<String>,
        since: Option<Py<PyAny>>,
        until: Option<Py<PyAny>>,
        key_prefix: Option<String>,
        result: Option<String>,
        limit: Option<usize>,
    ) -> PyResult<Py<PyList>> {
        let query = Python::attach(|py| {
            admin::audit_query(
                principal,
                since.as_ref().map(|s| s.bind(py)),
                until.as_ref().map(|u| u.bind(py)),
                key_prefix,
                result,
                limit,
            )
        })?;
        let session = self.session()?;
        let records = blocking(move || session.audit_log(&query)).await?;
        Python::attach(|py| {
            let out = PyList::empty(py);
            for r in &records {
                out.append(convert::audit_record(py, r)?)?;
            }
            Ok(out.unbind())
        })
    }

    /// Counters as a dict (see `Store.metrics`).
    ///
    /// Example:
    ///     >>> (await store.metrics())["backends"]["local"]["get"]["count"]
    ///     32
    async fn metrics(&self) -> PyResult<Py<PyDict>> {
        let snapshot = self.core.handle()?.manager.metrics();
        Python::attach(|py| Ok(convert::metrics(py, &snapshot)?.unbind()))
    }

    /// The metrics in the Prometheus text format.
    ///
    /// Example:
    ///     >>> print(await store.metrics_prometheus())
    async fn metrics_prometheus(&self) -> PyResult<String> {
        Ok(self.core.handle()?.manager.metrics().to_prometheus())
    }

    /// How an operation would be decided and routed (see `Store.explain`).
    ///
    /// Example:
    ///     >>> (await store.explain("read", "a.txt"))["allowed"]
    ///     True
    #[pyo3(signature = (operation, key, principal=None))]
    async fn explain(
        &self,
        operation: String,
        key: String,
        principal: Option<String>,
    ) -> PyResult<Py<PyDict>> {
        let op = self::operation(&operation)?;
        let who = match principal {
            Some(p) => crate::handle::principal(Some(p), None),
            None => self.core.principal().clone(),
        };
        let e = self.session()?.explain(&who, op, &key).py_err()?;
        Python::attach(|py| Ok(admin::explanation(py, &e)?.unbind()))
    }

    /// Flushes write-back caches and makes acknowledged writes durable.
    ///
    /// Example:
    ///     >>> await store.sync()
    async fn sync(&self) -> PyResult<()> {
        let session = self.session()?;
        run(async move { session.sync().await }).await?.py_err()
    }

    /// Flushes and closes this handle (see `Store.close`).
    ///
    /// Example:
    ///     >>> await store.close()
    async fn close(&self) -> PyResult<()> {
        match self.core.take() {
            Some((handle, session)) => run(async move {
                let result = session.sync().await;
                drop(handle);
                result
            })
            .await?
            .py_err(),
            None => Ok(()),
        }
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ready(slf.into_any())
    }

    #[pyo3(signature = (_exc_type=None, exc=None, _tb=None))]
    fn __aexit__<'py>(
        slf: Bound<'py, Self>,
        _exc_type: Option<Bound<'py, PyAny>>,
        exc: Option<Bound<'py, PyAny>>,
        _tb: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method1("_exit", (exc,))
    }

    /// Closes at the end of `async with` (see `Store.__exit__`).
    async fn _exit(&self, exc: Option<Py<PyAny>>) -> PyResult<bool> {
        let closed = self.close().await;
        Python::attach(|py| crate::errors::after_block(py, closed, exc.map(|e| e.into_bound(py))))?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.core.is_closed() { "closed" } else { "open" };
        format!("<tierfs.AsyncStore principal={:?} {state}>", self.core.principal().id())
    }
}

/// An async iterator over a listing, fetching one page per round trip.
///
/// Example:
///     >>> [e.key async for e in store.list("notes/")]
///     ['notes/a.txt', 'notes/b.txt']
#[pyclass(module = "tierfs", name = "AsyncListIterator", frozen)]
pub struct AsyncListIterator {
    session: Session,
    state: Arc<Mutex<ListState>>,
}

#[pymethods]
impl AsyncListIterator {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let buffered = slf.get().state.try_lock().ok().and_then(|mut s| s.pop_buffered());
        match buffered {
            Some(entry) => ready(Bound::new(slf.py(), Entry::new(entry))?.into_any()),
            None => slf.call_method0("_next_page"),
        }
    }

    /// The next entry, fetching a page if needed.
    async fn _next_page(&self) -> PyResult<Entry> {
        let (session, state) = (self.session.clone(), self.state.clone());
        let next = run(async move { state.lock().await.next(&session).await }).await?.py_err()?;
        next.map(Entry::new).ok_or_else(|| PyStopAsyncIteration::new_err(()))
    }
}
