//! The shape every policy type has: [`PolicyPlugin`], what it reads
//! ([`PolicySettings`]), what it builds with ([`PolicyContext`]) and what
//! the manager asks of it later ([`PolicyHooks`]).
//!
//! A policy type names its member backends from its settings (checked
//! when the configuration is parsed), then builds one [`Storage`] over
//! them when the configuration is applied. Background tasks and hooks it
//! registers through the context belong to that configuration: a reload
//! retires them, and the manager's `scrub`, `sync`, `shutdown` and
//! `explain` reach them.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::config::{parse_table, Config};
use crate::error::{Error, Result};
use crate::metrics::StorageMetrics;
use crate::policies::redundant::ScrubReport;
use crate::registry::StorageRegistry;
use crate::storage::Storage;

/// A policy type registered by name: reads its settings, names its
/// backends and builds a [`Storage`] over them.
///
/// The built-in types (`always_local`, `prefer_cache`, `redundant`,
/// `tiered`, `custom`) implement it like any other; a policy registered
/// with [`StorageRegistry::register_policy`] is configured as
/// `type = "custom"` with `name = "..."`, `backends = [...]` and its own
/// `settings = { ... }`.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use tierfs_core::policies::{PolicyContext, PolicyPlugin};
/// use tierfs_core::{Config, Result, Storage, StorageManager, StorageRegistry};
///
/// /// Serves everything from the first backend it is given.
/// #[derive(Debug)]
/// struct First;
///
/// #[async_trait]
/// impl PolicyPlugin for First {
///     fn name(&self) -> &str {
///         "first"
///     }
///     async fn build(&self, context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
///         context.backends.first().cloned().ok_or_else(|| context.error("backends", "name one"))
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let registry = Arc::new(StorageRegistry::with_builtins());
/// registry.register_policy(Arc::new(First))?;
/// let config = Config::parse(
///     "[backends.m]\ntype = \"memory\"\n\
///      [policy]\ntype = \"custom\"\nname = \"first\"\nbackends = [\"m\"]\n",
///     None,
/// )?;
/// let manager = StorageManager::with_registry(config, registry).await?;
/// assert_eq!(manager.route_of("any").backends, ["m"]);
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait PolicyPlugin: Send + Sync + std::fmt::Debug {
    /// The name configuration uses (`type = "..."` for a built-in,
    /// `name = "..."` under `type = "custom"` for a registered policy).
    fn name(&self) -> &str;

    /// Checks the settings and names the member backends, in order, each
    /// with the field that names it. Runs when the configuration is parsed
    /// (built-in types) and again before building. A registered policy's
    /// members are its `backends = [...]` list, read by the `custom` type,
    /// so it need not implement this.
    fn members(&self, settings: &PolicySettings<'_>) -> Result<Vec<Member>> {
        let _ = settings;
        Ok(Vec::new())
    }

    /// Builds the policy's stack over `context.backends`.
    async fn build(&self, context: PolicyContext<'_>) -> Result<Arc<dyn Storage>>;
}

/// A member backend named by a policy's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The backend's name.
    pub backend: String,
    /// The field that names it (`policy.primary`, `routes[0].policy.backends[1]`).
    pub field: String,
}

/// One policy's settings as configured, with where they came from.
#[derive(Debug, Clone, Copy)]
pub struct PolicySettings<'a> {
    /// The configuration they belong to.
    pub config: &'a Config,
    /// Where the policy is configured (`policy`, `routes[2].policy`).
    pub field: &'a str,
    /// The table, without `type`.
    pub table: &'a toml::Table,
}

impl PolicySettings<'_> {
    /// Deserializes the table into `T` (use `#[serde(deny_unknown_fields)]`),
    /// wording any error with the file and the field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        parse_table(self.config, self.field, self.table)
    }

    /// A `Config` error about `field` of this policy.
    pub fn error(&self, field: &str, message: &str) -> Error {
        self.config.error(&format!("{}.{field}", self.field), message)
    }

    /// The member named at `field` of this policy.
    pub fn member(&self, field: &str, backend: &str) -> Member {
        Member { backend: backend.to_owned(), field: format!("{}.{field}", self.field) }
    }
}

/// What a policy gets to build its stack.
pub struct PolicyContext<'a> {
    /// The configuration being applied.
    pub config: &'a Config,
    /// Where the policy is configured (`policy`, `routes[2].policy`), for errors.
    pub field: String,
    /// The member backends, in the order the settings name them, each
    /// with its health and metrics layers.
    pub backends: Vec<Arc<dyn Storage>>,
    /// The member names, in the same order.
    pub backend_names: Vec<String>,
    /// The settings [`parse`](Self::parse) reads: the policy's table
    /// without `type` for a built-in, the `settings` table for a
    /// registered policy.
    pub settings: &'a toml::Table,
    /// Where `settings` is configured, for errors.
    pub settings_field: String,
    /// The manager's metrics.
    pub metrics: Arc<StorageMetrics>,
    /// The registry the policy came from.
    pub registry: &'a StorageRegistry,
    pub(crate) owned: &'a mut Owned,
}

impl PolicyContext<'_> {
    /// Deserializes the settings into `T`, wording errors with the file and field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        parse_table(self.config, &self.settings_field, self.settings)
    }

    /// A `Config` error about `field` of this policy's settings.
    pub fn error(&self, field: &str, message: &str) -> Error {
        self.config.error(&format!("{}.{field}", self.settings_field), message)
    }

    /// A `Config` error about `field` of the policy itself (such as
    /// `backends` of a registered policy, which is not in its settings).
    pub fn policy_error(&self, field: &str, message: &str) -> Error {
        self.config.error(&format!("{}.{field}", self.field), message)
    }

    /// Hands a background task to the configuration being applied: it is
    /// aborted when that configuration is replaced or the manager drops.
    pub fn spawn(&mut self, task: JoinHandle<()>) {
        self.owned.tasks.push(task);
    }

    /// Registers what the manager asks of the policy later (see [`PolicyHooks`]).
    pub fn hooks(&mut self, hooks: Arc<dyn PolicyHooks>) {
        self.owned.hooks.push(hooks);
    }
}

/// What the manager asks of a built policy besides its [`Storage`]
/// calls. Flushing is the stack's [`Storage::sync`]. Every method has a
/// default that does nothing, so a policy implements only what it has.
#[async_trait]
pub trait PolicyHooks: Send + Sync + std::fmt::Debug {
    /// The configuration that built the policy was replaced, or the
    /// manager shuts down: finish background writes (flush write-back
    /// data) and send later writes straight through, so operations still
    /// running on the old configuration lose nothing.
    async fn retire(&self) -> Result<()> {
        Ok(())
    }

    /// Runs one scrub of the policy's copies now; `None` when it keeps no copies.
    async fn scrub(&self) -> Option<Result<ScrubReport>> {
        None
    }

    /// Where the policy puts `key` now, in words (for `explain`); `None`
    /// when the route's backends say it all.
    fn placement(&self, key: &str) -> Option<String> {
        let _ = key;
        None
    }

    /// Whether a read of `key` would be served by a cache now (for
    /// `explain`); `None` when the policy has no cache.
    fn cache_verdict(&self, key: &str) -> Option<CacheVerdict> {
        let _ = key;
        None
    }
}

/// What the cache of a route would do with a read, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheVerdict {
    /// The route has no cache.
    NoCache,
    /// The cache holds the key (or its unflushed write): no backend is read.
    Hit,
    /// The cache does not hold it: the read goes to the backend.
    Miss,
    /// The cache cannot tell without a round trip (a remote cache).
    Unknown,
}

/// What building policies leaves for the configuration to own. Tasks
/// still here when it drops (a build that failed half-way) are aborted.
#[derive(Debug, Default)]
pub(crate) struct Owned {
    pub tasks: Vec<JoinHandle<()>>,
    pub hooks: Vec<Arc<dyn PolicyHooks>>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
