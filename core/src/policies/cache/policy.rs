//! The `prefer_cache` policy type: a [`CacheStorage`] in front of one
//! primary backend.
//!
//! ```toml
//! [policy]
//! type = "prefer_cache"
//! primary = "main"
//! cache = { capacity_mib = 256, write = "through" }   # see CacheConfig
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{CacheConfig, CacheStorage};
use crate::error::Result;
use crate::key::Key;
use crate::policies::{CacheVerdict, Member, PolicyContext, PolicyHooks, PolicyPlugin, PolicySettings};
use crate::storage::Storage;

/// The `prefer_cache` policy type.
#[derive(Debug)]
pub struct PreferCache;

/// Settings of a `prefer_cache` policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferCacheConfig {
    /// The backend behind the cache.
    pub primary: String,
    /// The cache.
    #[serde(default)]
    pub cache: CacheConfig,
}

impl PreferCache {
    fn parse(settings: &PolicySettings<'_>) -> Result<PreferCacheConfig> {
        let parsed: PreferCacheConfig = settings.parse()?;
        parsed.cache.to_options().map_err(|e| settings.error("cache", e.message()))?;
        Ok(parsed)
    }
}

#[async_trait]
impl PolicyPlugin for PreferCache {
    fn name(&self) -> &str {
        "prefer_cache"
    }

    fn members(&self, settings: &PolicySettings<'_>) -> Result<Vec<Member>> {
        let parsed = Self::parse(settings)?;
        Ok(vec![settings.member("primary", &parsed.primary)])
    }

    async fn build(&self, mut context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        let parsed: PreferCacheConfig = context.parse()?;
        let options = parsed.cache.to_options().map_err(|e| context.error("cache", e.message()))?;
        let tier = parsed
            .cache
            .build_tier(&options, context.metrics.clone())
            .map_err(|e| context.error("cache", e.message()))?;
        let storage = CacheStorage::new(context.backends[0].clone(), tier, options, context.metrics.clone());
        context.spawn(storage.spawn_flusher());
        context.hooks(Arc::new(Hooks(storage.clone())));
        Ok(storage)
    }
}

/// The cache's write-back ends when its configuration retires; `explain`
/// asks it whether it holds a key.
#[derive(Debug)]
struct Hooks(Arc<CacheStorage>);

#[async_trait]
impl PolicyHooks for Hooks {
    async fn retire(&self) -> Result<()> {
        self.0.shutdown().await
    }

    fn cache_verdict(&self, key: &str) -> Option<CacheVerdict> {
        let verdict = match Key::new(key).map(|k| self.0.serves_now(&k)) {
            Ok(Some(true)) => CacheVerdict::Hit,
            Ok(Some(false)) => CacheVerdict::Miss,
            Ok(None) | Err(_) => CacheVerdict::Unknown,
        };
        Some(verdict)
    }
}
