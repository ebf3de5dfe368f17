//! `StorageManager`: the main entry point. It owns the configured backends,
//! routes each operation by prefix to a policy stack, and keeps metrics.
//!
//! ```
//! use tierfs_core::{Config, Key, StorageManager, Storage};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let config = Config::parse(
//!     r#"
//!     [backends.main]
//!     type = "memory"
//!     [backends.scratch]
//!     type = "memory"
//!
//!     [policy]
//!     type = "always_local"
//!     backend = "main"
//!
//!     [[routes]]
//!     prefix = "tmp/"
//!     backend = "scratch"
//!     "#,
//!     None,
//! )?;
//! let manager = StorageManager::open(config).await?;
//! let store = manager.session("alice");
//! store.put(&Key::new("tmp/x")?, "scratch data".into(), Default::default()).await?;
//! assert_eq!(manager.route_of("tmp/x").backends, ["scratch"]);
//! assert_eq!(manager.metrics().backends["scratch"]["put"].count, 1);
//! manager.shutdown().await?;
//! # Ok::<_, tierfs_core::Error>(())
//! # }).unwrap();
//! ```

mod router;
mod session;
mod state;

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

pub use router::Route;
pub use session::Session;

use crate::access::Principal;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::{MetricsSnapshot, StorageMetrics};
use crate::registry::StorageRegistry;
use crate::storage::Storage;
use state::ManagerState;

#[derive(Debug)]
pub(crate) struct Shared {
    registry: Arc<StorageRegistry>,
    metrics: Arc<StorageMetrics>,
    state: RwLock<Arc<ManagerState>>,
    /// Serializes reconfigurations; operations never take it.
    reconfigure: tokio::sync::Mutex<()>,
}

/// Where a key goes: its route and policy (see [`StorageManager::route_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The matching route prefix; empty for the default route.
    pub prefix: String,
    /// The policy kind (`always_local`, `prefer_cache`, ...).
    pub policy: &'static str,
    /// The backends of that policy, in order.
    pub backends: Vec<String>,
}

/// The storage manager. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct StorageManager {
    shared: Arc<Shared>,
}

impl StorageManager {
    /// Opens the backends and policies of `config`, with the built-in
    /// backend types. Must run inside a tokio runtime (background tasks).
    pub async fn open(config: Config) -> Result<Self> {
        Self::with_registry(config, Arc::new(StorageRegistry::with_builtins())).await
    }

    /// The embedded default: one persistent local store in `root` or the
    /// user's data directory.
    pub async fn open_default(root: Option<&Path>) -> Result<Self> {
        Self::open(Config::embedded_default(root)?).await
    }

    /// Opens `config` with backend types and policies from `registry`.
    pub async fn with_registry(config: Config, registry: Arc<StorageRegistry>) -> Result<Self> {
        let metrics = StorageMetrics::new();
        let state = ManagerState::build(config, &registry, &metrics, None).await?;
        Ok(StorageManager {
            shared: Arc::new(Shared {
                registry,
                metrics,
                state: RwLock::new(Arc::new(state)),
                reconfigure: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The manager as seen by `principal`.
    pub fn session(&self, principal: impl Into<Principal>) -> Session {
        Session::new(self.shared.clone(), principal.into())
    }

    /// The registry backends and policies come from.
    pub fn registry(&self) -> &Arc<StorageRegistry> {
        &self.shared.registry
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.shared.state.read().config.clone()
    }

    /// The metrics at this moment.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// The names of the configured backends.
    pub fn backend_names(&self) -> Vec<String> {
        self.shared.state.read().backends.keys().cloned().collect()
    }

    /// Backend `name` as policies see it (health and metrics layers on).
    pub fn backend(&self, name: &str) -> Result<Arc<dyn Storage>> {
        let state = self.shared.state.read();
        state.backends.get(name).map(|b| b.managed.clone()).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no backend named `{name}`; configured: {}",
                    state.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Whether backend `name` is believed reachable.
    pub fn backend_healthy(&self, name: &str) -> Result<bool> {
        Ok(self.backend(name)?.is_healthy())
    }

    /// The route, policy and backends serving `key`, without touching any backend.
    pub fn route_of(&self, key: &str) -> RouteInfo {
        let state = self.shared.state.read();
        let route = state.router.route(key);
        RouteInfo {
            prefix: route.prefix.clone(),
            policy: route.policy.kind(),
            backends: route.backends.clone(),
        }
    }

    /// Applies a new configuration: it is validated and built completely
    /// first (backends whose settings did not change are kept open), then
    /// swapped in at once. Operations already running finish on the old
    /// configuration; later ones use the new. On error nothing changes.
    pub async fn reconfigure(&self, config: Config) -> Result<()> {
        let _one_at_a_time = self.shared.reconfigure.lock().await;
        let old = self.shared.state.read().clone();
        let new =
            ManagerState::build(config, &self.shared.registry, &self.shared.metrics, Some(&old)).await?;
        *self.shared.state.write() = Arc::new(new);
        // Write-back data of the old stacks reaches the backends.
        old.sync().await
    }

    /// Flushes write-back caches and makes acknowledged writes durable.
    pub async fn sync(&self) -> Result<()> {
        let state = self.shared.state.read().clone();
        state.sync().await
    }

    /// Flushes everything; background tasks end when the last handle drops.
    pub async fn shutdown(&self) -> Result<()> {
        self.sync().await
    }
}
