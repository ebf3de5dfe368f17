//! Backend types from shared libraries, through the stable C ABI of the
//! `tierfs-plugin-api` crate.
//!
//! - [`loader`] opens a library, checks its ABI version before touching
//!   anything else, and validates its vtable; every failure is a `Config`
//!   error saying what to fix.
//! - [`instance`] holds a live plugin instance and makes every call into
//!   it as a safe method: the one place with `unsafe` besides the loader.
//! - [`adapter`] turns an instance into a [`Storage`]:
//!   each call runs on tokio's blocking pool, so a plugin's functions are
//!   called concurrently from several threads and its instances must be
//!   thread-safe (the ABI requires it).
//!
//! The library stays loaded for as long as anything from it lives: the
//! [`DynamicPlugin`], each backend it created, each streamed read or write,
//! and each value buffer still borrowed from the plugin hold an `Arc` of it.

mod adapter;
mod instance;
mod loader;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::StoragePlugin;
use crate::config::BackendSettings;
use crate::error::Result;
use crate::storage::Storage;
use loader::PluginLibrary;

/// The plugin ABI version this build speaks (`tierfs_plugin_api::ABI_VERSION`).
pub const PLUGIN_ABI_VERSION: u32 = tierfs_plugin_api::ABI_VERSION;

/// Loads the plugin library at `path`; returns the backend types it provides.
pub(super) fn load(path: &Path) -> Result<Vec<Arc<dyn StoragePlugin>>> {
    let library = Arc::new(PluginLibrary::open(path)?);
    Ok(vec![Arc::new(DynamicPlugin { library })])
}

/// A backend type provided by a plugin library.
#[derive(Debug)]
pub struct DynamicPlugin {
    library: Arc<PluginLibrary>,
}

#[async_trait]
impl StoragePlugin for DynamicPlugin {
    fn type_name(&self) -> &str {
        self.library.type_name()
    }

    async fn create(&self, settings: BackendSettings<'_>) -> Result<Arc<dyn Storage>> {
        let storage = adapter::DynamicStorage::create(self.library.clone(), &settings).await?;
        Ok(Arc::new(storage))
    }
}
