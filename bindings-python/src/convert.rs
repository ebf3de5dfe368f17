//! Conversions between Python values and core types: keys, values,
//! metadata, times, settings tables, batch operations, audit records and
//! metrics.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple, PyType,
};
use tierfs_core::audit::{AuditRecord, AuditResult};
use tierfs_core::metrics::MetricsSnapshot;
use tierfs_core::{
    BatchOp, Condition, Error, ErrorKind, Key, ListEntry, Metadata, MetadataChanges, ObjectMeta, Patch,
};

use crate::errors::{to_py, IntoPy};

/// A validated key, or `tierfs.InvalidKey`.
pub fn key(s: &str) -> PyResult<Key> {
    Key::new(s).py_err()
}

/// A value from `bytes` (shared, not copied), a contiguous `memoryview`
/// of `bytes` (shared: `bytes` never change), `bytearray`, other
/// `memoryview`s or any other buffer (copied), or `str` (UTF-8).
pub fn value(data: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if data.is_instance_of::<PyBytes>() {
        let backed: PyBackedBytes = data.extract()?;
        return Ok(Bytes::from_owner(backed));
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(Bytes::from(array.to_vec()));
    }
    if let Ok(text) = data.cast::<PyString>() {
        return Ok(Bytes::copy_from_slice(text.to_str()?.as_bytes()));
    }
    // memoryview, array.array, mmap, numpy arrays: anything with the buffer
    // protocol (and nothing else: `bytes(12)` would make twelve zeros).
    let refused = || {
        Ok::<_, PyErr>(PyTypeError::new_err(format!(
            "a value must be bytes, bytearray, memoryview (or another buffer) or str, not {}",
            data.get_type().name()?
        )))
    };
    if let Some(shared) = bytes_behind_view(data)? {
        return Ok(shared);
    }
    let Ok(view) = pyo3::types::PyMemoryView::from(data) else { return Err(refused()?) };
    let copied = data.py().get_type::<PyBytes>().call1((view,))?;
    let backed: PyBackedBytes = copied.extract()?;
    Ok(Bytes::from_owner(backed))
}

/// The bytes a `memoryview` shows, shared instead of copied, when it is a
/// contiguous view of a `bytes` object (such as `memoryview(data)[a:b]`,
/// the usual way to write a large `bytes` in pieces): a `bytes` object
/// never changes, so holding a reference to it is as good as a copy.
fn bytes_behind_view(data: &Bound<'_, PyAny>) -> PyResult<Option<Bytes>> {
    let Ok(view) = data.cast::<PyMemoryView>() else { return Ok(None) };
    let owner = view.getattr("obj")?;
    let Ok(owner) = owner.cast::<PyBytes>() else { return Ok(None) };
    let Ok(buffer) = PyUntypedBuffer::get(view.as_any()) else { return Ok(None) };
    if !buffer.is_c_contiguous() {
        return Ok(None);
    }
    let base = owner.as_bytes();
    let start = (buffer.buf_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    let end = start.checked_add(buffer.len_bytes());
    let Some(end) = end.filter(|end| start <= base.len() && *end <= base.len()) else { return Ok(None) };
    let backed: PyBackedBytes = owner.extract()?;
    Ok(Some(Bytes::from_owner(backed).slice(start..end)))
}

/// A metadata map from a `dict[str, str]` (or `None`).
pub fn metadata(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Metadata> {
    match obj {
        None => Ok(Metadata::new()),
        Some(o) if o.is_none() => Ok(Metadata::new()),
        Some(o) => o.extract::<BTreeMap<String, String>>().map_err(|_| {
            PyTypeError::new_err("metadata must be a dict of str to str, such as {\"owner\": \"alice\"}")
        }),
    }
}

/// The changes of `set_metadata(key, changes, remove=..., replace=...)`
/// and its condition (`if_version`).
pub fn metadata_changes(
    set: Option<&Bound<'_, PyAny>>,
    remove: Option<Vec<String>>,
    replace: bool,
    if_version: Option<String>,
) -> PyResult<(MetadataChanges, Condition)> {
    let changes = MetadataChanges {
        set: metadata(set)?,
        remove: remove.unwrap_or_default().into_iter().collect(),
        replace,
    };
    let condition = match if_version {
        Some(v) => Condition::VersionIs(v),
        None => Condition::Exists,
    };
    Ok((changes, condition))
}

/// The patch of `patch(key, writes, length=..., metadata=...)`: `writes`
/// an iterable of `(offset, data)` pairs.
pub fn patch(
    writes: Option<&Bound<'_, PyAny>>,
    length: Option<u64>,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<Patch> {
    let mut patch = Patch::new();
    if let Some(len) = length {
        patch = patch.set_len(len);
    }
    if let Some(writes) = writes.filter(|w| !w.is_none()) {
        for item in writes.try_iter()? {
            let item = item?;
            let (offset, data): (u64, Bound<'_, PyAny>) = item.extract().map_err(|_| {
                PyTypeError::new_err(
                    "writes must be (offset, data) pairs, such as [(0, b\"head\"), (4096, b\"page\")]",
                )
            })?;
            patch.push_write(offset, value(&data)?);
        }
    }
    if let Some(metadata) = metadata.filter(|m| !m.is_none()) {
        patch = patch
            .metadata(MetadataChanges { set: self::metadata(Some(metadata))?, ..MetadataChanges::default() });
    }
    Ok(patch)
}

/// The condition of `if_version=...`.
pub fn condition(if_version: Option<String>) -> Condition {
    match if_version {
        Some(v) => Condition::VersionIs(v),
        None => Condition::Exists,
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEZONE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A timezone-aware `datetime` in UTC.
pub fn datetime<'py>(py: Python<'py>, t: SystemTime) -> PyResult<Bound<'py, PyAny>> {
    let datetime = DATETIME.import(py, "datetime", "datetime")?;
    let utc = TIMEZONE.import(py, "datetime", "timezone")?.getattr("utc")?;
    datetime.call_method1("fromtimestamp", (seconds(t), utc))
}

/// A time from a `datetime` (naive ones are local time, as Python takes
/// them) or from seconds since the epoch.
pub fn time(obj: &Bound<'_, PyAny>) -> PyResult<SystemTime> {
    let secs: f64 = if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>() {
        obj.extract()?
    } else if obj.hasattr("timestamp")? {
        obj.call_method0("timestamp")?.extract()?
    } else {
        return Err(PyTypeError::new_err("a time must be a datetime or seconds since the epoch"));
    };
    if !secs.is_finite() {
        return Err(to_py(Error::new(ErrorKind::InvalidInput, format!("{secs} is not a time"))));
    }
    Ok(if secs >= 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    } else {
        UNIX_EPOCH - Duration::from_secs_f64(-secs)
    })
}

/// What `stat` says about a stored value.
///
/// Attributes:
///     key (str): the key.
///     size (int): size of the value in bytes.
///     modified (datetime): when it was last written, timezone-aware, UTC.
///     mtime (float): the same moment in seconds since the Unix epoch.
///     version (str): changes whenever the value changes (opaque).
///     metadata (dict[str, str]): the map stored with the value.
///
/// Example:
///     >>> info = store.stat("reports/q4.csv")
///     >>> info.size, info.metadata
///     (13, {'owner': 'alice'})
#[pyclass(module = "tierfs", name = "Stat", frozen)]
pub struct Stat {
    meta: ObjectMeta,
    class: Option<tierfs_core::ClassInfo>,
}

impl Stat {
    /// Wraps core metadata.
    pub fn new(meta: ObjectMeta) -> Self {
        Stat { meta, class: None }
    }

    /// Wraps core metadata with the key's storage class (`stat`).
    pub fn with_class(meta: ObjectMeta, class: tierfs_core::ClassInfo) -> Self {
        Stat { meta, class: Some(class) }
    }
}

#[pymethods]
impl Stat {
    /// The key.
    #[getter]
    fn key(&self) -> &str {
        self.meta.key.as_str()
    }

    /// Size in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.meta.size
    }

    /// Last write, a timezone-aware `datetime` in UTC.
    #[getter]
    fn modified<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.meta.modified)
    }

    /// Last write in seconds since the Unix epoch.
    #[getter]
    fn mtime(&self) -> f64 {
        seconds(self.meta.modified)
    }

    /// Changes whenever the value changes.
    #[getter]
    fn version(&self) -> &str {
        &self.meta.version
    }

    /// The metadata map (a fresh dict each time).
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.meta.metadata.clone()
    }

    /// The key's storage class (None: its route places it); reported by
    /// `Store.stat`, None on what `put` returns.
    #[getter]
    fn storage_class(&self) -> Option<String> {
        self.class.as_ref().and_then(|c| c.class.clone())
    }

    /// The backends that hold the key; reported by `Store.stat`, else None.
    #[getter]
    fn backends(&self) -> Option<Vec<String>> {
        self.class.as_ref().map(|c| c.backends.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "Stat(key={:?}, size={}, version={:?}, mtime={:.6})",
            self.meta.key.as_str(),
            self.meta.size,
            self.meta.version,
            seconds(self.meta.modified)
        )
    }
}

/// One entry of a listing: a stored value, or a directory (a group of
/// deeper keys, in non-recursive listings).
///
/// Attributes:
///     key (str): the key, or the directory with its trailing "/".
///     is_dir (bool): whether this is a directory entry.
///     size (int): size of the value (0 for a directory).
///     modified (datetime | None): last write, UTC (None for a directory).
///     mtime (float | None): the same in seconds since the epoch.
///     version (str | None): the value's version (None for a directory).
///     metadata (dict[str, str]): the value's metadata ({} for a directory).
///
/// Example:
///     >>> [(e.key, e.is_dir) for e in store.list("reports/", recursive=False)]
///     [('reports/2026/', True), ('reports/readme.txt', False)]
#[pyclass(module = "tierfs", name = "Entry", frozen)]
pub struct Entry {
    entry: ListEntry,
}

impl Entry {
    /// Wraps a core listing entry.
    pub fn new(entry: ListEntry) -> Self {
        Entry { entry }
    }

    fn meta(&self) -> Option<&ObjectMeta> {
        match &self.entry {
            ListEntry::Object(meta) => Some(meta),
            ListEntry::Prefix(_) => None,
        }
    }
}

#[pymethods]
impl Entry {
    /// The key, or the directory name ending in "/".
    #[getter]
    fn key(&self) -> &str {
        self.entry.name()
    }

    /// Whether this entry groups deeper keys.
    #[getter]
    fn is_dir(&self) -> bool {
        matches!(self.entry, ListEntry::Prefix(_))
    }

    /// Size in bytes (0 for a directory).
    #[getter]
    fn size(&self) -> u64 {
        self.meta().map_or(0, |m| m.size)
    }

    /// Last write (UTC `datetime`), or None for a directory.
    #[getter]
    fn modified<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.meta().map(|m| datetime(py, m.modified)).transpose()
    }

    /// Last write in seconds since the epoch, or None for a directory.
    #[getter]
    fn mtime(&self) -> Option<f64> {
        self.meta().map(|m| seconds(m.modified))
    }

    /// The version, or None for a directory.
    #[getter]
    fn version(&self) -> Option<&str> {
        self.meta().map(|m| m.version.as_str())
    }

    /// The metadata map ({} for a directory).
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.meta().map(|m| m.metadata.clone()).unwrap_or_default()
    }

    fn __repr__(&self) -> String {
        match &self.entry {
            ListEntry::Object(m) => format!("Entry(key={:?}, size={})", m.key.as_str(), m.size),
            ListEntry::Prefix(p) => format!("Entry(key={p:?}, is_dir=True)"),
        }
    }
}

/// A put inside `Store.batch`.
///
/// Example:
///     >>> store.batch([tierfs.Put("a", b"1", metadata={"k": "v"}),
///     ...              tierfs.Put("b", b"2", if_absent=True),
///     ...              tierfs.Delete("c")])
#[pyclass(module = "tierfs", name = "Put", frozen)]
pub struct PutOp {
    key: String,
    data: Py<PyAny>,
    metadata: Option<Py<PyAny>>,
    if_absent: bool,
}

#[pymethods]
impl PutOp {
    #[new]
    #[pyo3(signature = (key, data, *, metadata=None, if_absent=false))]
    fn new(key: String, data: Py<PyAny>, metadata: Option<Py<PyAny>>, if_absent: bool) -> Self {
        PutOp { key, data, metadata, if_absent }
    }

    /// The key.
    #[getter]
    fn key(&self) -> &str {
        &self.key
    }

    /// The value.
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyAny> {
        self.data.clone_ref(py)
    }

    /// Fail the whole batch with AlreadyExists if the key exists.
    #[getter]
    fn if_absent(&self) -> bool {
        self.if_absent
    }

    fn __repr__(&self) -> String {
        format!("Put({:?}, ..., if_absent={})", self.key, if self.if_absent { "True" } else { "False" })
    }
}

/// A delete inside `Store.batch` (a missing key is not an error).
///
/// Example:
///     >>> store.batch([tierfs.Delete("old/a"), tierfs.Delete("old/b")])
#[pyclass(module = "tierfs", name = "Delete", frozen)]
pub struct DeleteOp {
    key: String,
}

#[pymethods]
impl DeleteOp {
    #[new]
    fn new(key: String) -> Self {
        DeleteOp { key }
    }

    /// The key.
    #[getter]
    fn key(&self) -> &str {
        &self.key
    }

    fn __repr__(&self) -> String {
        format!("Delete({:?})", self.key)
    }
}

/// Batch operations from `Put`/`Delete` objects or tuples
/// `("put", key, data)`, `("put", key, data, metadata)`, `("delete", key)`.
pub fn batch_ops(ops: &Bound<'_, PyAny>) -> PyResult<Vec<BatchOp>> {
    let mut out = Vec::new();
    for (i, op) in ops.try_iter()?.enumerate() {
        let op = op?;
        let bad = |why: &str| {
            to_py(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "batch operation {i} {why}; write (\"put\", key, data), (\"put\", key, data, metadata), \
                     (\"delete\", key), tierfs.Put(...) or tierfs.Delete(...)"
                ),
            ))
        };
        if let Ok(put) = op.cast::<PutOp>() {
            let put = put.get();
            let py = op.py();
            out.push(BatchOp::Put {
                key: key(&put.key)?,
                value: value(put.data.bind(py))?,
                metadata: metadata(put.metadata.as_ref().map(|m| m.bind(py)))?,
                if_not_exists: put.if_absent,
            });
        } else if let Ok(delete) = op.cast::<DeleteOp>() {
            out.push(BatchOp::delete(key(&delete.get().key)?));
        } else if let Ok(tuple) = op.cast::<PyTuple>() {
            let verb: String = tuple.get_item(0).and_then(|v| v.extract()).map_err(|_| bad("has no verb"))?;
            match (verb.as_str(), tuple.len()) {
                ("put", 3 | 4) => {
                    let k: String = tuple.get_item(1)?.extract()?;
                    let meta = if tuple.len() == 4 { Some(tuple.get_item(3)?) } else { None };
                    out.push(BatchOp::Put {
                        key: key(&k)?,
                        value: value(&tuple.get_item(2)?)?,
                        metadata: metadata(meta.as_ref())?,
                        if_not_exists: false,
                    });
                }
                ("delete", 2) => {
                    let k: String = tuple.get_item(1)?.extract()?;
                    out.push(BatchOp::delete(key(&k)?));
                }
                _ => return Err(bad(&format!("is ({verb:?}, ...) with {} items", tuple.len()))),
            }
        } else {
            return Err(bad(&format!("is a {}", op.get_type().name()?)));
        }
    }
    Ok(out)
}

/// A Python value as a TOML value (for backend settings and policies).
pub fn toml_value(obj: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(toml::Value::Integer(obj.extract()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(obj.extract()?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(toml::Value::String(s.to_str()?.to_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(toml::Value::Table(toml_table(d)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items: PyResult<Vec<toml::Value>> = obj.try_iter()?.map(|i| toml_value(&i?)).collect();
        return Ok(toml::Value::Array(items?));
    }
    if obj.hasattr("__fspath__")? {
        let path: std::path::PathBuf = obj.extract()?;
        return Ok(toml::Value::String(path.display().to_string()));
    }
    Err(PyTypeError::new_err(format!(
        "a setting must be a str, int, float, bool, path, list or dict, not {}",
        obj.get_type().name()?
    )))
}

/// A `dict` as a TOML table.
pub fn toml_table(dict: &Bound<'_, PyDict>) -> PyResult<toml::Table> {
    let mut table = toml::Table::new();
    for (k, v) in dict.iter() {
        if v.is_none() {
            continue;
        }
        table.insert(k.extract::<String>()?, toml_value(&v)?);
    }
    Ok(table)
}

/// A TOML value as a Python value (for settings handed to Python backends).
pub fn py_value<'py>(py: Python<'py>, value: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        toml::Value::String(s) => PyString::new(py, s).into_any(),
        toml::Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        toml::Value::Float(f) => PyFloat::new(py, *f).into_any(),
        toml::Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        toml::Value::Datetime(d) => PyString::new(py, &d.to_string()).into_any(),
        toml::Value::Array(items) => {
            let items: PyResult<Vec<Bound<'py, PyAny>>> = items.iter().map(|v| py_value(py, v)).collect();
            PyList::new(py, items?)?.into_any()
        }
        toml::Value::Table(t) => py_table(py, t)?.into_any(),
    })
}

/// A TOML table as a `dict`.
pub fn py_table<'py>(py: Python<'py>, table: &toml::Table) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in table {
        dict.set_item(k, py_value(py, v)?)?;
    }
    Ok(dict)
}

/// An audit record as a dict (every field of the JSON line, plus
/// `timestamp`, a UTC `datetime`).
pub fn audit_record<'py>(py: Python<'py>, r: &AuditRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("seq", r.seq)?;
    d.set_item("time", &r.time)?;
    d.set_item("timestamp", r.timestamp().map(|t| datetime(py, t)).transpose()?)?;
    d.set_item("principal", &r.principal)?;
    d.set_item("operation", &r.operation)?;
    d.set_item("keys", &r.keys)?;
    d.set_item(
        "result",
        match r.result {
            AuditResult::Allowed => "allowed",
            AuditResult::Denied => "denied",
        },
    )?;
    d.set_item("detail", r.detail.as_deref())?;
    d.set_item("prev", &r.prev)?;
    d.set_item("hash", &r.hash)?;
    Ok(d)
}

/// `"allowed"` / `"denied"` as an audit result.
pub fn audit_result(s: &str) -> PyResult<AuditResult> {
    match s {
        "allowed" => Ok(AuditResult::Allowed),
        "denied" => Ok(AuditResult::Denied),
        other => Err(to_py(Error::new(
            ErrorKind::InvalidInput,
            format!("unknown audit result `{other}`; allowed: \"allowed\", \"denied\""),
        ))),
    }
}

/// A metrics snapshot as nested dicts.
pub fn metrics<'py>(py: Python<'py>, m: &MetricsSnapshot) -> PyResult<Bound<'py, PyDict>> {
    let backends = PyDict::new(py);
    for (name, ops) in &m.backends {
        let per_op = PyDict::new(py);
        for (op, s) in ops {
            let o = PyDict::new(py);
            o.set_item("count", s.count)?;
            o.set_item("errors", s.errors)?;
            o.set_item("bytes_in", s.bytes_in)?;
            o.set_item("bytes_out", s.bytes_out)?;
            let latency = PyDict::new(py);
            latency.set_item("count", s.latency.count)?;
            latency.set_item("sum_seconds", s.latency.sum_us as f64 / 1e6)?;
            latency.set_item("buckets", &s.latency.buckets)?;
            let bounds: Vec<f64> =
                tierfs_core::metrics::BUCKET_BOUNDS_US.iter().map(|b| *b as f64 / 1e6).collect();
            latency.set_item("bucket_bounds_seconds", bounds)?;
            for (label, q) in [("p50_seconds", 0.5), ("p99_seconds", 0.99)] {
                latency.set_item(label, s.latency.quantile_bound_us(q).map(|us| us as f64 / 1e6))?;
            }
            o.set_item("latency", latency)?;
            per_op.set_item(*op, o)?;
        }
        backends.set_item(name, per_op)?;
    }
    let traffic = PyDict::new(py);
    for (name, t) in &m.traffic {
        let entry = PyDict::new(py);
        entry.set_item("sent", t.sent)?;
        entry.set_item("received", t.received)?;
        traffic.set_item(name, entry)?;
    }
    let d = PyDict::new(py);
    d.set_item("backends", backends)?;
    d.set_item("traffic", traffic)?;
    d.set_item("cache_hits", m.cache_hits)?;
    d.set_item("cache_misses", m.cache_misses)?;
    d.set_item("cache_evictions", m.cache_evictions)?;
    d.set_item("repairs", m.repairs)?;
    d.set_item("migrations", m.migrations)?;
    d.set_item("retries", m.retries)?;
    Ok(d)
}
