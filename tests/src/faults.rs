//! A backend type for tests that need a manager over a backend whose
//! faults they switch: memory stores wrapped in [`FaultStorage`].

use std::sync::Arc;

use parking_lot::Mutex;
use tierfs_core::config::BackendSettings;
use tierfs_core::layers::{FaultHandle, FaultStorage};
use tierfs_core::{MemoryStorage, Storage, StoragePlugin};

/// The backend type `faulty`: each backend it creates is a memory store
/// with injectable faults, whose switches [`handle`](Self::handle) gives.
///
/// ```
/// use std::sync::Arc;
/// use tierfs_core::{Config, StorageManager, StorageRegistry};
/// use tierfs_tests::faults::FaultyPlugin;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let plugin = Arc::new(FaultyPlugin::default());
/// let registry = Arc::new(StorageRegistry::with_builtins());
/// registry.register(plugin.clone()).unwrap();
/// let config = Config::parse("[backends.f]\ntype = \"faulty\"\n", None).unwrap();
/// let manager = StorageManager::with_registry(config, registry).await.unwrap();
/// plugin.handle(0).set_down(true);
/// # drop(manager);
/// # });
/// ```
#[derive(Debug, Default)]
pub struct FaultyPlugin {
    handles: Mutex<Vec<FaultHandle>>,
}

impl FaultyPlugin {
    /// The fault switches of the `i`th backend created (from 0).
    pub fn handle(&self, i: usize) -> FaultHandle {
        self.handles.lock()[i].clone()
    }
}

#[async_trait::async_trait]
impl StoragePlugin for FaultyPlugin {
    fn type_name(&self) -> &str {
        "faulty"
    }

    async fn create(&self, settings: BackendSettings<'_>) -> tierfs_core::Result<Arc<dyn Storage>> {
        let (storage, handle) = FaultStorage::wrap(Arc::new(MemoryStorage::new(settings.name)));
        self.handles.lock().push(handle);
        Ok(storage)
    }
}
