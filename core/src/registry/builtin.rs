//! The built-in backend types, registered like any plugin.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::StoragePlugin;
use crate::backends::local::{LocalOptions, LocalStorage, DEFAULT_CACHE_SIZE};
use crate::backends::memory::MemoryStorage;
use crate::config::BackendSettings;
use crate::error::Result;
use crate::storage::Storage;

/// The `memory` type: [`MemoryStorage`]. No settings.
#[derive(Debug)]
pub struct MemoryPlugin;

/// Settings of a `memory` backend: none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {}

#[async_trait]
impl StoragePlugin for MemoryPlugin {
    fn type_name(&self) -> &str {
        "memory"
    }

    async fn create(&self, settings: BackendSettings<'_>) -> Result<Arc<dyn Storage>> {
        let MemorySettings {} = settings.parse()?;
        Ok(Arc::new(MemoryStorage::new(settings.name)))
    }
}

/// The `local` type: [`LocalStorage`].
#[derive(Debug)]
pub struct LocalPlugin;

/// Settings of a `local` backend.
///
/// ```toml
/// [backends.main]
/// type = "local"
/// path = "/var/lib/tierfs"   # required; relative to the configuration file
/// cache_mib = 64             # optional: database page cache, 1 to 65536 MiB
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Directory of the store; created if missing.
    pub path: PathBuf,
    /// Database page cache in MiB (default 64).
    pub cache_mib: Option<u64>,
}

#[async_trait]
impl StoragePlugin for LocalPlugin {
    fn type_name(&self) -> &str {
        "local"
    }

    async fn create(&self, settings: BackendSettings<'_>) -> Result<Arc<dyn Storage>> {
        let parsed: LocalSettings = settings.parse()?;
        let cache_size = match parsed.cache_mib {
            None => DEFAULT_CACHE_SIZE,
            Some(mib @ 1..=65536) => (mib as usize) << 20,
            Some(mib) => {
                return Err(
                    settings.error("cache_mib", &format!("{mib} is out of range; allowed: 1 to 65536"))
                )
            }
        };
        if parsed.path.as_os_str().is_empty() {
            return Err(settings.error("path", "is empty; give the directory that holds the store"));
        }
        let root = settings.config.resolve_path(&parsed.path);
        let name = settings.name.to_owned();
        let storage =
            tokio::task::spawn_blocking(move || LocalStorage::open(name, &root, LocalOptions { cache_size }))
                .await
                .map_err(|e| settings.error("path", &format!("opening the store failed: {e}")))??;
        // With access rules, a store other users can read around them is refused.
        if settings.config.access.is_some() {
            storage.check_private().map_err(|e| settings.error("path", e.message()))?;
        }
        Ok(Arc::new(storage))
    }
}

/// The `s3` type: `backends::s3::S3Storage`, any S3-compatible object
/// store (settings: `backends::s3::S3Settings`). Registered in every build;
/// without the `s3` cargo feature, creating one is a configuration error
/// saying so.
#[derive(Debug)]
pub struct S3Plugin;

#[async_trait]
impl StoragePlugin for S3Plugin {
    fn type_name(&self) -> &str {
        "s3"
    }

    #[cfg(feature = "s3")]
    async fn create(&self, settings: BackendSettings<'_>) -> Result<Arc<dyn Storage>> {
        let parsed: crate::backends::s3::S3Settings = settings.parse()?;
        let storage =
            crate::backends::s3::S3Storage::connect(settings.name, &parsed, Some(&settings)).await?;
        Ok(Arc::new(storage))
    }

    #[cfg(not(feature = "s3"))]
    async fn create(&self, settings: BackendSettings<'_>) -> Result<Arc<dyn Storage>> {
        Err(settings.error(
            "type",
            "this build of TierFS has no `s3` backend: build tierfs-core with the `s3` feature (on by default)",
        ))
    }
}
