//! `tierfs.Store`: the blocking API. Every storage call releases the GIL
//! for its whole duration; a `Store` is safe to share between threads.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use tierfs_core::access::StorageOperationType;
use tierfs_core::{ErrorKind, ListEntry, ListOptions, PutOptions, Session, Storage};

use crate::admin;
use crate::convert::{self, batch_ops, key, Entry, Stat};
use crate::errors::IntoPy;
use crate::file::{self, is_read_mode, to_pybytes, ReadState, Reader, WriteState, Writer};
use crate::handle::{open_manager, principal, StoreCore};
use crate::runtime::block_on;

/// A TierFS store: the whole manager (routes, policies, access control,
/// audit, backends) seen by one principal.
///
/// Open one with `tierfs.open()`. Every call releases the GIL while the
/// storage works, and one `Store` may be shared by many threads.
///
/// Example:
///     >>> import tierfs
///     >>> with tierfs.open(root="/tmp/tierfs-demo") as store:
///     ...     store.put("reports/q4.csv", b"region,total\n")
///     ...     store.get("reports/q4.csv")
///     b'region,total\n'
#[pyclass(module = "tierfs", name = "Store", frozen)]
pub struct Store {
    pub(crate) core: Arc<StoreCore>,
}

/// Opens a store; see `tierfs.open` in `__init__.py` for the documentation.
pub fn open_core(
    py: Python<'_>,
    config: Option<PathBuf>,
    root: Option<PathBuf>,
    principal_name: Option<String>,
    roles: Option<Vec<String>>,
) -> PyResult<StoreCore> {
    let handle = open_manager(py, config, root)?;
    Ok(StoreCore::new(handle, principal(principal_name, roles)))
}

impl Store {
    fn session(&self) -> PyResult<Session> {
        self.core.session()
    }
}

/// Parses `operation` for `explain`.
pub fn operation(op: &str) -> PyResult<StorageOperationType> {
    op.parse::<StorageOperationType>().py_err()
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (config=None, *, root=None, principal=None, roles=None))]
    fn py_new(
        py: Python<'_>,
        config: Option<PathBuf>,
        root: Option<PathBuf>,
        principal: Option<String>,
        roles: Option<Vec<String>>,
    ) -> PyResult<Self> {
        Ok(Store { core: Arc::new(open_core(py, config, root, principal, roles)?) })
    }

    /// The value of `key` as bytes.
    ///
    /// Raises NotFound (a KeyError) if the key is missing.
    ///
    /// Example:
    ///     >>> store.get("notes/today.txt")
    ///     b'hello'
    fn get<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyBytes>> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let value = block_on(py, async move { session.get(&key).await })?.py_err()?;
        to_pybytes(py, &[value])
    }

    /// Bytes `start` to `end` (exclusive) of the value, clamped to its size.
    ///
    /// Example:
    ///     >>> store.get_range("notes/today.txt", 1, 3)
    ///     b'el'
    fn get_range<'py>(
        &self,
        py: Python<'py>,
        key: String,
        start: u64,
        end: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let value = block_on(py, async move { session.get_range(&key, start..end).await })?.py_err()?;
        to_pybytes(py, &[value])
    }

    /// Stores `data` (bytes, bytearray, memoryview or str, encoded UTF-8)
    /// under `key`, replacing value and metadata; returns the new Stat.
    ///
    /// `if_absent=True` fails with AlreadyExists if the key exists.
    /// `storage_class` keeps the key in that class (`"persistent"`,
    /// `"distributed"`, `"cache_only"` or a configured one) from now on;
    /// a class nobody can provide raises Unsupported before anything is
    /// written.
    ///
    /// Example:
    ///     >>> store.put("notes/today.txt", "hello", metadata={"owner": "alice"}).size
    ///     5
    ///     >>> store.put("scratch/t.bin", b"x", storage_class="persistent").size
    ///     1
    #[pyo3(signature = (key, data, *, metadata=None, if_absent=false, storage_class=None))]
    fn put(
        &self,
        py: Python<'_>,
        key: String,
        data: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        if_absent: bool,
        storage_class: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let value = convert::value(data)?;
        let options =
            PutOptions { metadata: convert::metadata(metadata)?, if_not_exists: if_absent, storage_class };
        let meta = block_on(py, async move { session.put(&key, value, options).await })?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Changes the metadata of `key` without rewriting its value; returns
    /// the new Stat. `changes` maps entries to set, `remove` names entries
    /// to drop, `replace=True` makes the map exactly `changes`. With
    /// `if_version`, only while the value's version is that one, else
    /// Conflict; a missing key is NotFound. Backends that keep metadata
    /// apart (memory, local, s3, plugins that implement it) write no byte
    /// of the value.
    ///
    /// Example:
    ///     >>> v = store.stat("notes/today.txt").version
    ///     >>> store.set_metadata("notes/today.txt", {"owner": "bob"}, if_version=v).metadata["owner"]
    ///     'bob'
    #[pyo3(signature = (key, changes=None, *, remove=None, replace=false, if_version=None))]
    fn set_metadata(
        &self,
        py: Python<'_>,
        key: String,
        changes: Option<&Bound<'_, PyAny>>,
        remove: Option<Vec<String>>,
        replace: bool,
        if_version: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let (changes, condition) = convert::metadata_changes(changes, remove, replace, if_version)?;
        let meta =
            block_on(py, async move { session.set_metadata(&key, &changes, &condition).await })?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Writes `data` at `offset` of the existing value of `key`, extending
    /// it (zeros fill any gap); returns the new Stat. Only these bytes are
    /// written where the backend changes values in place (local, memory);
    /// others rewrite the value. With `if_version`, only while the value's
    /// version is that one, else Conflict; a missing key is NotFound.
    ///
    /// Example:
    ///     >>> store.put("log.txt", "hello world")
    ///     >>> store.write_range("log.txt", 6, "there").size
    ///     11
    #[pyo3(signature = (key, offset, data, *, if_version=None))]
    fn write_range(
        &self,
        py: Python<'_>,
        key: String,
        offset: u64,
        data: &Bound<'_, PyAny>,
        if_version: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let patch = tierfs_core::Patch::new().write(offset, convert::value(data)?);
        let condition = convert::condition(if_version);
        let meta = block_on(py, async move { session.patch(&key, &patch, &condition).await })?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Changes part of the value of `key` in one step: `length` first
    /// (truncates, or extends with zeros), then `writes`, `(offset, data)`
    /// pairs in order, and `metadata` entries set; all of it or nothing,
    /// even across a crash, where the backend changes values in place
    /// (`Capabilities.partial_write`: local, memory). Returns the new Stat.
    /// With `if_version`, only while the value's version is that one, else
    /// Conflict; a missing key is NotFound.
    ///
    /// Example:
    ///     >>> store.put("db.bin", bytes(8192))
    ///     >>> store.patch("db.bin", [(0, b"head"), (4096, b"page")], length=16384).size
    ///     16384
    #[pyo3(signature = (key, writes=None, *, length=None, metadata=None, if_version=None))]
    fn patch(
        &self,
        py: Python<'_>,
        key: String,
        writes: Option<&Bound<'_, PyAny>>,
        length: Option<u64>,
        metadata: Option<&Bound<'_, PyAny>>,
        if_version: Option<String>,
    ) -> PyResult<Stat> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let patch = convert::patch(writes, length, metadata)?;
        let condition = convert::condition(if_version);
        let meta = block_on(py, async move { session.patch(&key, &patch, &condition).await })?.py_err()?;
        Ok(Stat::new(meta))
    }

    /// Removes `key`; removing a missing key succeeds.
    ///
    /// Example:
    ///     >>> store.delete("notes/today.txt")
    fn delete(&self, py: Python<'_>, key: String) -> PyResult<()> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        block_on(py, async move { session.delete(&key).await })?.py_err()
    }

    /// Size, modification time, version and metadata of `key`, with its
    /// storage class and the backends that hold it.
    ///
    /// Example:
    ///     >>> store.stat("notes/today.txt").size
    ///     5
    ///     >>> store.stat("notes/today.txt").backends
    ///     ['local']
    fn stat(&self, py: Python<'_>, key: String) -> PyResult<Stat> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let (meta, class) = block_on(py, async move {
            let meta = session.stat(&key).await?;
            Ok::<_, tierfs_core::Error>((meta, session.storage_class(&key).await?))
        })?
        .py_err()?;
        Ok(Stat::with_class(meta, class))
    }

    /// Keeps `key` in storage class `storage_class` from now on (None
    /// takes its own class off: it inherits its directory's, or its route
    /// places it). The data moves in the background; reads find it
    /// throughout. Raises Unsupported for a class no backend provides.
    ///
    /// Example:
    ///     >>> store.set_storage_class("notes/today.txt", "persistent")
    fn set_storage_class(&self, py: Python<'_>, key: String, storage_class: Option<String>) -> PyResult<()> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        block_on(py, async move { session.set_storage_class(&key, storage_class.as_deref()).await })?.py_err()
    }

    /// The storage class of `key`: a dict with `storage_class` (or None),
    /// `inherited_from` (the prefix it comes from, or None), `backends`
    /// (those holding the key) and `moving` (its data still moving there).
    ///
    /// Example:
    ///     >>> store.storage_class("notes/today.txt")["storage_class"]
    ///     'persistent'
    fn storage_class<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyDict>> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        let info = block_on(py, async move { session.storage_class(&key).await })?.py_err()?;
        crate::classes::info_dict(py, &info)
    }

    /// Gives every key under `prefix` ("dir/", or "" for all) storage class
    /// `storage_class` unless a key has its own; later keys there get it
    /// too. Existing keys move in the background. None takes it off.
    ///
    /// Example:
    ///     >>> store.set_prefix_class("scratch/", "cache_only")
    fn set_prefix_class(
        &self,
        py: Python<'_>,
        prefix: String,
        storage_class: Option<String>,
    ) -> PyResult<()> {
        let session = self.session()?;
        block_on(py, async move { session.set_prefix_class(&prefix, storage_class.as_deref()).await })?
            .py_err()
    }

    /// The storage class in force under `prefix` (its own or inherited), or None.
    ///
    /// Example:
    ///     >>> store.prefix_class("scratch/")
    ///     'cache_only'
    fn prefix_class(&self, prefix: String) -> PyResult<Option<String>> {
        Ok(self.session()?.prefix_class(&prefix))
    }

    /// Whether `key` exists (False when missing; other errors are raised).
    ///
    /// Example:
    ///     >>> store.exists("notes/today.txt")
    ///     True
    fn exists(&self, py: Python<'_>, key: String) -> PyResult<bool> {
        let (session, key) = (self.session()?, convert::key(&key)?);
        match block_on(py, async move { session.stat(&key).await })? {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(crate::errors::to_py(e)),
        }
    }

    /// Entries under `prefix`, streamed page by page (an iterator, not a list).
    ///
    /// `recursive=True` gives every key below the prefix; `False` gives
    /// direct children, with deeper keys grouped into directory entries
    /// (`is_dir`, key ending in "/"). `page_size` sets how many entries one
    /// round trip fetches (default 1000).
    ///
    /// Example:
    ///     >>> [e.key for e in store.list("notes/")]
    ///     ['notes/a.txt', 'notes/sub/b.txt']
    ///     >>> [e.key for e in store.list("notes/", recursive=False)]
    ///     ['notes/a.txt', 'notes/sub/']
    #[pyo3(signature = (prefix=String::new(), recursive=true, *, page_size=None))]
    fn list(&self, prefix: String, recursive: bool, page_size: Option<usize>) -> PyResult<ListIterator> {
        let options = ListOptions { prefix, recursive, start_after: None, limit: page_size };
        options.validate().py_err()?;
        Ok(ListIterator { session: self.session()?, state: Mutex::new(ListState::new(options)) })
    }

    /// Applies every operation or none.
    ///
    /// `ops` is a list of `("put", key, data)`, `("put", key, data, metadata)`,
    /// `("delete", key)`, `tierfs.Put(key, data, metadata=..., if_absent=...)`
    /// or `tierfs.Delete(key)`. All keys must route to one backend stack.
    ///
    /// Example:
    ///     >>> store.batch([("put", "a", b"1"), ("delete", "b"), tierfs.Put("c", b"3", if_absent=True)])
    fn batch(&self, py: Python<'_>, ops: &Bound<'_, PyAny>) -> PyResult<()> {
        let session = self.session()?;
        let ops = batch_ops(ops)?;
        block_on(py, async move { session.batch(ops).await })?.py_err()
    }

    /// Moves the value and metadata of `src` to `dst`, replacing `dst`.
    ///
    /// Example:
    ///     >>> store.rename("drafts/a.txt", "final/a.txt")
    fn rename(&self, py: Python<'_>, src: String, dst: String) -> PyResult<()> {
        let (session, from, to) = (self.session()?, key(&src)?, key(&dst)?);
        block_on(py, async move { session.rename(&from, &to).await })?.py_err()
    }

    /// A binary file object streaming the value of `key`.
    ///
    /// Mode "rb" reads chunk by chunk (seekable); mode "wb" writes chunk by
    /// chunk and publishes the value atomically on `close()`. Leaving a
    /// `with` block by an exception, or calling `abort()`, discards the
    /// write and keeps the previous value. Memory stays bounded by one
    /// chunk (4 MiB) whatever the size of the value. `storage_class`
    /// (mode "wb") keeps the key in that class, as for `put`.
    ///
    /// Example:
    ///     >>> with store.open("big.bin", "wb") as f:
    ///     ...     for part in parts:
    ///     ...         f.write(part)
    ///     >>> with store.open("big.bin", "rb") as f:
    ///     ...     head = f.read(16)
    #[pyo3(signature = (key, mode="rb", *, metadata=None, storage_class=None))]
    fn open<'py>(
        &self,
        py: Python<'py>,
        key: String,
        mode: &str,
        metadata: Option<&Bound<'py, PyAny>>,
        storage_class: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (session, k) = (self.session()?, convert::key(&key)?);
        if is_read_mode(mode)? {
            let state = block_on(py, async move { ReadState::open(session, k).await })?.py_err()?;
            file::read_file(py, Reader::new(state), &key)
        } else {
            let options =
                PutOptions { storage_class, ..PutOptions::with_metadata(convert::metadata(metadata)?) };
            let state = block_on(py, async move { WriteState::open(session, k, options).await })?.py_err()?;
            file::write_file(py, Writer::new(state), &key)
        }
    }

    /// The same store (same manager) acting as another principal.
    ///
    /// Example:
    ///     >>> bob = store.as_principal("bob", roles=["staff"])
    ///     >>> bob.get("public/readme.txt")
    #[pyo3(signature = (name, roles=None))]
    fn as_principal(&self, name: String, roles: Option<Vec<String>>) -> PyResult<Store> {
        Ok(Store { core: Arc::new(self.core.as_principal(principal(Some(name), roles))?) })
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
    ///     >>> store.backends()
    ///     ['local']
    fn backends(&self) -> PyResult<Vec<String>> {
        Ok(self.core.handle()?.manager.backend_names())
    }

    /// The access rules in force (needs admin on `*`), as
    /// `{"default": level, "rules": [{"principal", "resource", "operation", "level"}]}`.
    ///
    /// Example:
    ///     >>> store.access_policy()["default"]
    ///     'full'
    fn access_policy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let session = self.session()?;
        let policy = py.detach(|| session.access_policy()).py_err()?;
        admin::access_policy_dict(py, &policy)
    }

    /// Replaces every rule (admin on `*`); takes the dict `access_policy()` returns.
    ///
    /// Example:
    ///     >>> store.set_access_policy({"default": "none", "rules": [
    ///     ...     {"principal": "*", "resource": "public/", "level": "read"}]})
    fn set_access_policy(&self, py: Python<'_>, policy: &Bound<'_, PyAny>) -> PyResult<()> {
        let (session, policy) = (self.session()?, admin::access_policy_from(policy)?);
        block_on(py, async move { session.set_access_policy(policy).await })?.py_err()
    }

    /// Adds a rule: `principal` (user id, "role:NAME" or "*") gets `level`
    /// ("none", "read", "write", "admin", "full") for `operation` ("read",
    /// "write", "delete", "list", "batch", "admin" or "*") on `resource`
    /// (a key, a prefix "a/b/", "@backend" or "*"). Needs admin on the
    /// resource, and grants at most what the caller holds there.
    ///
    /// Example:
    ///     >>> store.add_rule("bob", "shared/", "*", "read")
    #[pyo3(signature = (principal, resource, operation="*", level="read"))]
    fn add_rule(
        &self,
        py: Python<'_>,
        principal: &str,
        resource: &str,
        operation: &str,
        level: &str,
    ) -> PyResult<()> {
        let (session, rule) = (self.session()?, admin::rule(principal, resource, operation, level)?);
        block_on(py, async move { session.add_access_rule(rule).await })?.py_err()
    }

    /// Removes the rule written with the same four parts; NotFound if absent.
    ///
    /// Example:
    ///     >>> store.remove_rule("bob", "shared/", "*", "read")
    #[pyo3(signature = (principal, resource, operation="*", level="read"))]
    fn remove_rule(
        &self,
        py: Python<'_>,
        principal: &str,
        resource: &str,
        operation: &str,
        level: &str,
    ) -> PyResult<()> {
        let (session, rule) = (self.session()?, admin::rule(principal, resource, operation, level)?);
        block_on(py, async move { session.remove_access_rule(&rule).await })?.py_err()
    }

    /// Sets the default policy (`route=None`, admin on `*`) or the policy
    /// of a route prefix such as "tmp/" (admin on the prefix). `policy` is
    /// written like the `[policy]` table of the configuration file.
    ///
    /// Example:
    ///     >>> store.set_policy({"type": "always_local", "backend": "scratch"}, route="tmp/")
    #[pyo3(signature = (policy, route=None))]
    fn set_policy(&self, py: Python<'_>, policy: &Bound<'_, PyDict>, route: Option<String>) -> PyResult<()> {
        let (session, policy) = (self.session()?, admin::policy_config(policy)?);
        block_on(py, async move { session.set_policy(route.as_deref(), policy).await })?.py_err()
    }

    /// Adds a backend named `name` of type `type` with `settings` (as in a
    /// `[backends.NAME]` table; admin on "@name").
    ///
    /// Example:
    ///     >>> store.add_backend("scratch", "memory")
    ///     >>> store.add_backend("archive", "local", path="/srv/archive")
    #[pyo3(signature = (name, r#type, **settings))]
    fn add_backend(
        &self,
        py: Python<'_>,
        name: String,
        r#type: &str,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let (session, backend) = (self.session()?, admin::backend_config(r#type, settings)?);
        block_on(py, async move { session.add_backend(&name, backend).await })?.py_err()
    }

    /// Removes a backend that no route or policy uses (admin on "@name").
    ///
    /// Example:
    ///     >>> store.remove_backend("scratch")
    fn remove_backend(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let session = self.session()?;
        block_on(py, async move { session.remove_backend(&name).await })?.py_err()
    }

    /// Reloads the configuration (admin on `*`) from `config`, or from the
    /// file the store was opened from. A configuration that fails
    /// validation changes nothing.
    ///
    /// Example:
    ///     >>> store.reload_config()
    #[pyo3(signature = (config=None))]
    fn reload_config(&self, py: Python<'_>, config: Option<PathBuf>) -> PyResult<()> {
        let session = self.session()?;
        let handle = self.core.handle()?;
        block_on(py, async move {
            let path = match config.or_else(|| handle.manager.config().source) {
                Some(p) => p,
                None => {
                    return Err(tierfs_core::Error::new(
                        ErrorKind::Config,
                        "this store was opened without a configuration file; pass the file to reload",
                    ))
                }
            };
            let config = tierfs_core::Config::load(&path)?;
            session.reload_config(config).await
        })?
        .py_err()
    }

    /// Loads plugin libraries the configuration names that are not loaded yet (admin on `*`).
    ///
    /// Example:
    ///     >>> store.reload_plugins()
    fn reload_plugins(&self, py: Python<'_>) -> PyResult<()> {
        let session = self.session()?;
        block_on(py, async move { session.reload_plugins().await })?.py_err()
    }

    /// Audit records matching every given filter, oldest first, as dicts
    /// (seq, time, timestamp, principal, operation, keys, result, detail,
    /// prev, hash). `since`/`until` take a datetime or seconds since the
    /// epoch; `result` is "allowed" or "denied"; `limit` keeps the most
    /// recent (default 1000). Needs admin on `*`.
    ///
    /// Example:
    ///     >>> [r["operation"] for r in store.audit_log(principal="bob", result="denied")]
    ///     ['write']
    #[pyo3(signature = (principal=None, since=None, until=None, key_prefix=None, result=None, limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn audit_log<'py>(
        &self,
        py: Python<'py>,
        principal: Option<String>,
        since: Option<&Bound<'py, PyAny>>,
        until: Option<&Bound<'py, PyAny>>,
        key_prefix: Option<String>,
        result: Option<String>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let query = admin::audit_query(principal, since, until, key_prefix, result, limit)?;
        let session = self.session()?;
        let records = py.detach(|| session.audit_log(&query)).py_err()?;
        let out = PyList::empty(py);
        for r in &records {
            out.append(convert::audit_record(py, r)?)?;
        }
        Ok(out)
    }

    /// Counters per backend and operation (count, errors, bytes, latency),
    /// the network bytes of remote backends (``traffic``: ``sent`` and
    /// ``received`` per ``s3`` backend), cache hits and misses, repairs,
    /// migrations and retries, as a dict.
    ///
    /// Example:
    ///     >>> store.metrics()["backends"]["local"]["put"]["count"]
    ///     3
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        convert::metrics(py, &self.core.handle()?.manager.metrics())
    }

    /// The metrics in the Prometheus text exposition format.
    ///
    /// Example:
    ///     >>> print(store.metrics_prometheus())
    fn metrics_prometheus(&self) -> PyResult<String> {
        Ok(self.core.handle()?.manager.metrics().to_prometheus())
    }

    /// How `operation` on `key` by `principal` (default: this store's)
    /// would be decided and routed, without doing it. Explaining another
    /// principal's rights needs admin on the key; every explanation is
    /// audited; `cache` says whether a cache holds the key only when this
    /// store's principal may read it (else None); `placement` says where
    /// the route's policy puts the key among its backends when it chooses
    /// (the owners of a sharded policy; else None); `storage_class` gives
    /// the key's class, where it comes from and its backends (else None).
    ///
    /// Example:
    ///     >>> store.explain("write", "public/a.txt", principal="bob")["allowed"]
    ///     False
    #[pyo3(signature = (operation, key, principal=None))]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        operation: &str,
        key: &str,
        principal: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let op = self::operation(operation)?;
        let who = match principal {
            Some(p) => crate::handle::principal(Some(p), None),
            None => self.core.principal().clone(),
        };
        let e = self.session()?.explain(&who, op, key).py_err()?;
        admin::explanation(py, &e)
    }

    /// Flushes write-back caches and makes acknowledged writes durable.
    ///
    /// Example:
    ///     >>> store.sync()
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let session = self.session()?;
        block_on(py, async move { session.sync().await })?.py_err()
    }

    /// Flushes and closes this handle; later calls raise InvalidInput. The
    /// backends close when the last store on them (including `as_principal`
    /// views and `tierfs://` file systems) is closed or collected.
    ///
    /// Example:
    ///     >>> store.close()
    ///     >>> store.closed
    ///     True
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match self.core.take() {
            Some((handle, session)) => {
                let result = block_on(py, async move { session.sync().await });
                py.detach(move || drop(handle));
                result?.py_err()
            }
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes; if the block raised, a failure to close is added to that
    /// exception as a note instead of replacing it.
    #[pyo3(signature = (_exc_type=None, exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let closed = self.close(py);
        crate::errors::after_block(py, closed, exc)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.core.is_closed() { "closed" } else { "open" };
        format!("<tierfs.Store principal={:?} {state}>", self.core.principal().id())
    }
}

/// Paging state shared by the sync and async listing iterators.
pub struct ListState {
    options: ListOptions,
    buffer: VecDeque<ListEntry>,
    done: bool,
}

impl ListState {
    /// Before the first page.
    pub fn new(options: ListOptions) -> Self {
        ListState { options, buffer: VecDeque::new(), done: false }
    }

    /// The next entry, fetching the next page when the buffer runs out.
    pub async fn next(&mut self, session: &Session) -> tierfs_core::Result<Option<ListEntry>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Ok(Some(e));
            }
            if self.done {
                return Ok(None);
            }
            let page = session.list(&self.options).await?;
            match page.next {
                Some(after) => self.options.start_after = Some(after),
                None => self.done = true,
            }
            self.buffer.extend(page.entries);
        }
    }

    /// Whether an entry is buffered (no round trip needed).
    pub fn pop_buffered(&mut self) -> Option<ListEntry> {
        self.buffer.pop_front()
    }
}

/// An iterator over a listing, fetching one page per round trip.
///
/// Example:
///     >>> it = store.list("notes/", page_size=100)
///     >>> next(it).key
///     'notes/a.txt'
#[pyclass(module = "tierfs", name = "ListIterator", frozen)]
pub struct ListIterator {
    session: Session,
    state: Mutex<ListState>,
}

#[pymethods]
impl ListIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Entry>> {
        if let Some(e) = self.state.lock().pop_buffered() {
            return Ok(Some(Entry::new(e)));
        }
        let session = self.session.clone();
        let state = &self.state;
        let entry = py.detach(|| {
            let rt = crate::runtime::runtime();
            rt.map(|rt| {
                let mut state = state.lock();
                crate::runtime::block_on_detached(rt, state.next(&session))
            })
        })?;
        Ok(entry.py_err()?.map(Entry::new))
    }
}
