//! `Custom(name)` policies: a [`PolicyPlugin`] registered under a name in
//! the [`StorageRegistry`](crate::StorageRegistry), built from configuration
//! like the built-in policies.
//!
//! ```toml
//! [policy]
//! type = "custom"
//! name = "split_by_size"
//! backends = ["small", "large"]
//! settings = { threshold_kib = 64 }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::config::{parse_table, Config};
use crate::error::Result;
use crate::metrics::StorageMetrics;
use crate::storage::Storage;

/// What a policy gets to build its stack.
pub struct PolicyContext<'a> {
    /// The configuration being applied.
    pub config: &'a Config,
    /// Where the policy is configured (`policy`, `routes[2].policy`), for errors.
    pub field: String,
    /// The backends named by the policy, in order, with health and metrics layers.
    pub backends: Vec<Arc<dyn Storage>>,
    /// The policy's own settings table.
    pub settings: &'a toml::Table,
    /// The manager's metrics.
    pub metrics: Arc<StorageMetrics>,
    /// Background tasks owned by the manager; aborted when the
    /// configuration is replaced or the manager shuts down.
    pub tasks: &'a mut Vec<tokio::task::JoinHandle<()>>,
}

impl PolicyContext<'_> {
    /// Deserializes the settings into `T`, wording errors with the file and field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        parse_table(self.config, &format!("{}.settings", self.field), self.settings)
    }

    /// A `Config` error about `field` of this policy's settings.
    pub fn error(&self, field: &str, message: &str) -> crate::Error {
        self.config.error(&format!("{}.settings.{field}", self.field), message)
    }
}

/// A policy type registered by name: builds a [`Storage`] over the
/// backends it is given.
#[async_trait]
pub trait PolicyPlugin: Send + Sync + std::fmt::Debug {
    /// The name configuration uses (`name = "..."`).
    fn name(&self) -> &str;

    /// Builds the policy's stack.
    async fn build(&self, context: PolicyContext<'_>) -> Result<Arc<dyn Storage>>;
}
