//! Storage classes from Python: what `Store.storage_class` returns.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tierfs_core::ClassInfo;

/// `{"storage_class", "inherited_from", "backends", "moving"}` of `info`.
pub fn info_dict<'py>(py: Python<'py>, info: &ClassInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("storage_class", info.class.as_deref())?;
    d.set_item("inherited_from", info.inherited_from.as_deref())?;
    d.set_item("backends", info.backends.clone())?;
    d.set_item("moving", info.moving)?;
    Ok(d)
}
