//! The native half of the `tierfs` Python package (`tierfs._native`).
//!
//! A thin adapter: it converts Python values, calls the core
//! (`StorageManager`, `Session`, the registry) and maps errors once, in
//! [`errors`]. The Python half (`python/tierfs/`) adds the `io` wrappers,
//! the fsspec file system and the documentation users read.
//!
//! Threads and the GIL: one multi-threaded tokio runtime per process
//! ([`runtime`]); every blocking call releases the GIL while storage works,
//! and backends written in Python take it only around each call into them.
#![deny(missing_docs)]

pub mod admin;
pub mod aio;
pub mod backend;
pub mod classes;
pub mod convert;
pub mod errors;
pub mod file;
pub mod handle;
pub mod registry;
pub mod runtime;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::errors::IntoPy;

/// Opens a store (see `tierfs.open` for the documentation users read).
#[pyfunction]
#[pyo3(signature = (config=None, *, root=None, principal=None, roles=None))]
fn open(
    py: Python<'_>,
    config: Option<PathBuf>,
    root: Option<PathBuf>,
    principal: Option<String>,
    roles: Option<Vec<String>>,
) -> PyResult<store::Store> {
    Ok(store::Store { core: Arc::new(store::open_core(py, config, root, principal, roles)?) })
}

/// Opens an async store (see `tierfs.open_async`).
#[pyfunction]
#[pyo3(signature = (config=None, *, root=None, principal=None, roles=None))]
fn open_async(
    py: Python<'_>,
    config: Option<PathBuf>,
    root: Option<PathBuf>,
    principal: Option<String>,
    roles: Option<Vec<String>>,
) -> PyResult<aio::AsyncStore> {
    Ok(aio::AsyncStore::from_core(store::open_core(py, config, root, principal, roles)?))
}

/// Registers `cls` as backend type `name` in the process-wide registry
/// (see `tierfs.register_backend`).
#[pyfunction]
fn register_backend(name: String, cls: Bound<'_, PyAny>) -> PyResult<()> {
    if !cls.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "register_backend needs a class (or a callable) that makes the backend object",
        ));
    }
    let plugin = backend::PythonPlugin::new(name, cls.unbind());
    registry::registry().register(Arc::new(plugin)).py_err()
}

/// The registered backend type names, sorted.
#[pyfunction]
fn backend_types() -> Vec<String> {
    registry::registry().types()
}

/// Flushes every open manager (registered with `atexit` by `tierfs`).
#[pyfunction]
fn _flush_all(py: Python<'_>) -> PyResult<()> {
    let managers = handle::live_managers();
    if managers.is_empty() {
        return Ok(());
    }
    let rt = runtime::runtime()?;
    py.detach(|| {
        for m in managers {
            let _ = runtime::block_on_detached(rt, m.manager.sync());
        }
    });
    Ok(())
}

/// The `tierfs._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(open_async, m)?)?;
    m.add_function(wrap_pyfunction!(register_backend, m)?)?;
    m.add_function(wrap_pyfunction!(backend_types, m)?)?;
    m.add_function(wrap_pyfunction!(_flush_all, m)?)?;
    m.add_class::<store::Store>()?;
    m.add_class::<store::ListIterator>()?;
    m.add_class::<aio::AsyncStore>()?;
    m.add_class::<aio::AsyncListIterator>()?;
    m.add_class::<convert::Stat>()?;
    m.add_class::<convert::Entry>()?;
    m.add_class::<convert::PutOp>()?;
    m.add_class::<convert::DeleteOp>()?;
    m.add_class::<file::Reader>()?;
    m.add_class::<file::Writer>()?;
    m.add_class::<file::AsyncReader>()?;
    m.add_class::<file::AsyncWriter>()?;
    let classes = errors::classes(py)?;
    for (name, class) in [
        ("Error", &classes.error),
        ("NotFound", &classes.not_found),
        ("PermissionDenied", &classes.permission_denied),
        ("InvalidKey", &classes.invalid_key),
        ("InvalidInput", &classes.invalid_input),
        ("AlreadyExists", &classes.already_exists),
        ("Unsupported", &classes.unsupported),
        ("Unavailable", &classes.unavailable),
        ("ConfigError", &classes.config),
        ("Conflict", &classes.conflict),
        ("QuotaExceeded", &classes.quota_exceeded),
    ] {
        m.add(name, class.clone_ref(py))?;
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
