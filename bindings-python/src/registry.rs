//! The process-wide backend registry: the built-in types, plugin libraries
//! named by configurations, and backends written in Python.

use std::sync::{Arc, OnceLock};

use tierfs_core::StorageRegistry;

static REGISTRY: OnceLock<Arc<StorageRegistry>> = OnceLock::new();

/// The registry every `tierfs.open()` builds its manager from.
pub fn registry() -> Arc<StorageRegistry> {
    REGISTRY.get_or_init(|| Arc::new(StorageRegistry::with_builtins())).clone()
}
