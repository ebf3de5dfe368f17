//! The process-wide [`StorageRegistry`] every store opens with: the
//! built-in types, plugin libraries named in configurations, and backends
//! registered from JavaScript with `registerBackend`.

use std::sync::{Arc, LazyLock};

use tierfs_core::StorageRegistry;

static REGISTRY: LazyLock<Arc<StorageRegistry>> =
    LazyLock::new(|| Arc::new(StorageRegistry::with_builtins()));

/// The registry shared by every store of this process.
pub fn shared() -> Arc<StorageRegistry> {
    REGISTRY.clone()
}
