//! The exceptions of `tierfs`, and the one mapping between core errors and them.
//!
//! Every exception derives from `tierfs.Error` and from the built-in
//! exception that the design contract names for its kind, so both
//! `except tierfs.NotFound` and `except KeyError` work. Each carries the
//! core message and the attributes `key`, `backend`, `operation`, `kind`
//! and `retryable` (`None`/`False` when the core error has none).
//!
//! [`to_py`] maps an [`ErrorKind`] to its class exhaustively: a new kind in
//! core fails to compile here until it is given a class. [`from_py`] is the
//! reverse, for exceptions raised by a backend written in Python.

use pyo3::exceptions::{
    PyConnectionError, PyFileExistsError, PyFileNotFoundError, PyKeyError, PyNotImplementedError,
    PyPermissionError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use tierfs_core::{Error, ErrorKind};

/// The exception classes, created once per process.
pub struct Classes {
    /// `tierfs.Error`.
    pub error: Py<PyType>,
    /// `tierfs.NotFound`.
    pub not_found: Py<PyType>,
    /// `tierfs.PermissionDenied`.
    pub permission_denied: Py<PyType>,
    /// `tierfs.InvalidKey`.
    pub invalid_key: Py<PyType>,
    /// `tierfs.InvalidInput`.
    pub invalid_input: Py<PyType>,
    /// `tierfs.AlreadyExists`.
    pub already_exists: Py<PyType>,
    /// `tierfs.Unsupported`.
    pub unsupported: Py<PyType>,
    /// `tierfs.Unavailable`.
    pub unavailable: Py<PyType>,
    /// `tierfs.ConfigError`.
    pub config: Py<PyType>,
    /// `tierfs.Conflict`.
    pub conflict: Py<PyType>,
    /// `tierfs.QuotaExceeded`.
    pub quota_exceeded: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

const ERROR_DOC: &str = "\
Base class of every TierFS error.

Attributes:
    key: the key the error is about, or None.
    backend: the backend that failed, or None.
    operation: the operation that failed (\"get\", \"put\", ...), or None.
    kind: the core error kind (\"not_found\", \"permission_denied\", ...).
    retryable: whether the same call may succeed if tried again.

Example:
    >>> import tierfs
    >>> store = tierfs.open(root=tmp)
    >>> try:
    ...     store.get(\"missing\")
    ... except tierfs.Error as e:
    ...     print(type(e).__name__, e.key)
    NotFound missing
";

/// Creates `class NAME(*bases)` in module `tierfs` with `doc`.
fn make_class<'py>(
    py: Python<'py>,
    name: &str,
    bases: &[&Bound<'py, PyAny>],
    doc: &str,
    plain_str: bool,
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "tierfs")?;
    namespace.set_item("__qualname__", name)?;
    namespace.set_item("__doc__", doc)?;
    if plain_str {
        // KeyError quotes its message; show the core message as it is.
        let exception = py.get_type::<pyo3::exceptions::PyException>();
        namespace.set_item("__str__", exception.getattr("__str__")?)?;
    }
    let bases = PyTuple::new(py, bases)?;
    let class = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}

/// The exception classes (created on first use).
pub fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let exception = py.get_type::<pyo3::exceptions::PyException>();
        let error = make_class(py, "Error", &[exception.as_any()], ERROR_DOC, false)?;
        let base = error.bind(py).clone().into_any();
        for (attr, value) in [("key", py.None()), ("backend", py.None()), ("operation", py.None())] {
            base.setattr(attr, value)?;
        }
        base.setattr("kind", "error")?;
        base.setattr("retryable", false)?;
        let sub = |name: &str, builtin: Bound<'_, PyType>, doc: &str, plain: bool| {
            make_class(py, name, &[&base, builtin.as_any()], doc, plain)
        };
        let invalid_key = sub(
            "InvalidKey",
            py.get_type::<PyValueError>(),
            "The key breaks the key grammar (empty, `a//b`, `..`, NUL, a leading `/`, too long);\n\
             also a ValueError. `InvalidInput` (a bad range, batch or setting) derives from it.",
            false,
        )?;
        let invalid_input = make_class(
            py,
            "InvalidInput",
            &[invalid_key.bind(py).as_any()],
            "An argument other than the key is wrong (a range, a batch, a setting);\n\
             a subclass of InvalidKey, so `except tierfs.InvalidKey` catches both.",
            false,
        )?;
        Ok(Classes {
            not_found: sub(
                "NotFound",
                py.get_type::<PyKeyError>(),
                "No such key (or backend, rule, ...); also a KeyError.",
                true,
            )?,
            permission_denied: sub(
                "PermissionDenied",
                py.get_type::<PyPermissionError>(),
                "The access policy refuses the operation; also a PermissionError.",
                false,
            )?,
            invalid_key,
            invalid_input,
            already_exists: sub(
                "AlreadyExists",
                py.get_type::<PyFileExistsError>(),
                "The target exists and the operation required that it did not; also a FileExistsError.",
                false,
            )?,
            unsupported: sub(
                "Unsupported",
                py.get_type::<PyNotImplementedError>(),
                "The backend cannot do this (see its capabilities); also a NotImplementedError.",
                false,
            )?,
            unavailable: sub(
                "Unavailable",
                py.get_type::<pyo3::exceptions::PyOSError>(),
                "The backend is down, timed out or failed at I/O, retries spent; also an OSError.",
                false,
            )?,
            config: sub(
                "ConfigError",
                py.get_type::<PyValueError>(),
                "The configuration is invalid; the message names the file and the field. Also a ValueError.",
                false,
            )?,
            conflict: make_class(
                py,
                "Conflict",
                &[&base],
                "A condition on the value's current state failed: it changed since it was read\n\
                 (``set_metadata(..., if_version=...)``). Read it again and retry.",
                false,
            )?,
            quota_exceeded: sub(
                "QuotaExceeded",
                py.get_type::<pyo3::exceptions::PyOSError>(),
                "A quota would be exceeded: the write was refused whole. Also an OSError with errno EDQUOT.",
                false,
            )?,
            error,
        })
    })
}

/// `errno.ENOSPC` on Linux.
const ENOSPC: i32 = 28;

/// `errno.EDQUOT` on Linux.
const EDQUOT: i32 = 122;

/// The class and `kind` name of `kind`: the one mapping of this face.
fn class_of(classes: &Classes, kind: ErrorKind) -> (&Py<PyType>, &'static str) {
    match kind {
        ErrorKind::NotFound => (&classes.not_found, "not_found"),
        ErrorKind::PermissionDenied => (&classes.permission_denied, "permission_denied"),
        ErrorKind::InvalidKey => (&classes.invalid_key, "invalid_key"),
        ErrorKind::InvalidInput => (&classes.invalid_input, "invalid_input"),
        ErrorKind::AlreadyExists => (&classes.already_exists, "already_exists"),
        ErrorKind::Unsupported => (&classes.unsupported, "unsupported"),
        ErrorKind::Unavailable => (&classes.unavailable, "unavailable"),
        ErrorKind::Config => (&classes.config, "config"),
        ErrorKind::Conflict => (&classes.conflict, "conflict"),
        ErrorKind::QuotaExceeded => (&classes.quota_exceeded, "quota_exceeded"),
        // `ErrorKind` is non-exhaustive; a kind added later is an Error until mapped here.
        _ => (&classes.error, "error"),
    }
}

/// The Python exception for a core error.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| match build(py, &err) {
        Ok(e) => e,
        Err(e) => e,
    })
}

fn build(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let classes = classes(py)?;
    let (class, kind) = class_of(classes, err.kind());
    let value = class.bind(py).call1((err.to_string(),))?;
    value.setattr("key", err.key())?;
    value.setattr("backend", err.backend())?;
    value.setattr("operation", err.operation())?;
    value.setattr("kind", kind)?;
    value.setattr("retryable", err.is_retryable())?;
    if err.is_out_of_space() {
        // `tierfs.Unavailable` is an `OSError`: a full device carries its errno.
        value.setattr("errno", ENOSPC)?;
    }
    if err.kind() == ErrorKind::QuotaExceeded {
        value.setattr("errno", EDQUOT)?;
    }
    Ok(PyErr::from_value(value))
}

/// The outcome of closing at the end of a `with` block: the close error is
/// raised, unless the block itself raised `exc`, which then keeps
/// propagating with the close error added as a note.
pub fn after_block(py: Python<'_>, closed: PyResult<()>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
    match (closed, exc) {
        (Err(e), Some(body)) if !body.is_none() => {
            let note = format!("and closing the store failed: {}", e.value(py));
            if body.hasattr("add_note")? {
                body.call_method1("add_note", (note,))?;
            }
            Ok(())
        }
        (closed, _) => closed,
    }
}

/// `Result<T, Error>` to `PyResult<T>`.
pub trait IntoPy<T> {
    /// Maps the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for tierfs_core::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// A core error for an exception raised by Python code (a backend written
/// in Python): the kind follows the exception's class, TierFS's own first.
pub fn from_py(py: Python<'_>, err: &PyErr) -> Error {
    let value = err.value(py);
    let message = match value.str() {
        Ok(s) => s.to_string(),
        Err(_) => String::from("<unprintable exception>"),
    };
    let type_name = match value.get_type().name() {
        Ok(n) => n.to_string(),
        Err(_) => String::from("exception"),
    };
    let is = |class: &Py<PyType>| value.is_instance(class.bind(py)).unwrap_or(false);
    let kind = match classes(py) {
        Ok(c) if is(&c.error) => {
            let table = [
                (&c.not_found, ErrorKind::NotFound),
                (&c.permission_denied, ErrorKind::PermissionDenied),
                (&c.invalid_input, ErrorKind::InvalidInput),
                (&c.invalid_key, ErrorKind::InvalidKey),
                (&c.already_exists, ErrorKind::AlreadyExists),
                (&c.unsupported, ErrorKind::Unsupported),
                (&c.config, ErrorKind::Config),
                (&c.conflict, ErrorKind::Conflict),
                (&c.quota_exceeded, ErrorKind::QuotaExceeded),
            ];
            table.iter().find(|(class, _)| is(class)).map_or(ErrorKind::Unavailable, |(_, k)| *k)
        }
        _ => {
            if err.is_instance_of::<PyKeyError>(py) || err.is_instance_of::<PyFileNotFoundError>(py) {
                ErrorKind::NotFound
            } else if err.is_instance_of::<PyPermissionError>(py) {
                ErrorKind::PermissionDenied
            } else if err.is_instance_of::<PyFileExistsError>(py) {
                ErrorKind::AlreadyExists
            } else if err.is_instance_of::<PyNotImplementedError>(py) {
                ErrorKind::Unsupported
            } else if err.is_instance_of::<PyValueError>(py) {
                ErrorKind::InvalidInput
            } else {
                ErrorKind::Unavailable
            }
        }
    };
    let retryable = err.is_instance_of::<PyTimeoutError>(py) || err.is_instance_of::<PyConnectionError>(py);
    Error::new(kind, format!("the Python backend raised {type_name}: {message}")).retryable(retryable)
}
