//! The `custom` policy type: a policy registered under a name with
//! [`StorageRegistry::register_policy`](crate::StorageRegistry::register_policy),
//! given its backends and its own settings table.
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
use serde::Deserialize;

use super::{Member, PolicyContext, PolicyPlugin, PolicySettings};
use crate::error::Result;
use crate::storage::Storage;

/// The `custom` policy type.
#[derive(Debug)]
pub struct Custom;

/// Settings of a `custom` policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomConfig {
    /// The registered policy's name.
    pub name: String,
    /// Its backends, in the order it expects them.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Its settings, read by the policy ([`PolicyContext::parse`]).
    #[serde(default)]
    pub settings: toml::Table,
}

#[async_trait]
impl PolicyPlugin for Custom {
    fn name(&self) -> &str {
        "custom"
    }

    fn members(&self, settings: &PolicySettings<'_>) -> Result<Vec<Member>> {
        let parsed: CustomConfig = settings.parse()?;
        Ok(parsed
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| settings.member(&format!("backends[{i}]"), b))
            .collect())
    }

    async fn build(&self, context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        let parsed: CustomConfig = context.parse()?;
        let plugin = context
            .registry
            .custom_policy(&parsed.name)
            .map_err(|e| context.config.error(&format!("{}.name", context.field), e.message()))?;
        let settings_field = format!("{}.settings", context.field);
        plugin.build(PolicyContext { settings: &parsed.settings, settings_field, ..context }).await
    }
}
